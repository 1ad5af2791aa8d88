/*
 * weighted: the first choice is drawn with probability proportional to the
 * weights; the fallback order continues the draw without replacement, so a
 * heavier member is also more likely to be the first fallback. Members of
 * weight 0 are never drawn: they come after the others of their tier, in
 * listed order (a standby). Tiers are drawn one after the other.
 *
 * Worked example: pool [a: 50, b: 30, c: 20], all available and serving
 * the model; the seed yields the uniform values 0.83, 0.15:
 *
 *   draw 1: 0.83 * 100 = 83.0; cumulative a 50, b 80, c 100 -> c
 *   draw 2: 0.15 *  80 = 12.0; cumulative a 50, b 80        -> a
 *   last:   b
 *   order   c, a, b
 *
 * Over many selections a is first 50 % of the time, b 30 %, c 20 %.
 */
#include "llmgw_strategy.h"

static apr_uint64_t weight_of(const llmgw_strategy_cand_t *c)
{
    return c->weight > 0 ? (apr_uint64_t)c->weight : 0;
}

/* Draw one member of order[start..end) by weight and swap it to @p start. */
static void draw_one(const llmgw_strategy_cand_t *cands, int *order, int start, int end,
                     apr_uint64_t total, apr_uint64_t *rng)
{
    double target = llmgw_strategy_unit(rng) * (double)total;
    apr_uint64_t acc = 0;
    int i, pick = start, tmp;

    for (i = start; i < end; i++) {
        apr_uint64_t w = weight_of(&cands[order[i]]);
        if (w == 0)
            continue;
        acc += w;
        pick = i; /* rounding at the very top falls on the last positive one */
        if (target < (double)acc)
            break;
    }
    /* Move the pick to the front, keeping the rest in listed order. */
    tmp = order[pick];
    for (i = pick; i > start; i--)
        order[i] = order[i - 1];
    order[start] = tmp;
}

static void draw_tier(const llmgw_strategy_cand_t *cands, int *order, int start, int end,
                      apr_uint64_t *rng)
{
    apr_uint64_t total = 0;
    int i;

    for (i = start; i < end; i++)
        total += weight_of(&cands[order[i]]);
    for (; start < end && total > 0; start++) {
        draw_one(cands, order, start, end, total, rng);
        total -= weight_of(&cands[order[start]]);
    }
}

static apr_status_t weighted_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                    volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    apr_status_t rv = llmgw_strategy_sort(cands, n, NULL, order, n_usable);
    apr_uint64_t rng = seed;
    int tier, start, end;

    if (rv != APR_SUCCESS)
        return rv;
    for (tier = 0; tier < 2; tier++) {
        llmgw_strategy_tier_span(cands, order, n, tier, &start, &end);
        draw_tier(cands, order, start, end, &rng);
    }
    return APR_SUCCESS;
}

const llmgw_strategy_t llmgw_strategy_weighted = {"weighted", weighted_select};
