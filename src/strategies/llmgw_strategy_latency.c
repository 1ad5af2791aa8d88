/*
 * latency: the member with the lowest latency average (EWMA of whole
 * successful attempts, shared by every process) first, the others as the
 * fallback order from fast to slow; ties by time to first byte, then listed
 * order. Averages only move when a member is used, so two rules keep them
 * honest, both applied within the best available tier:
 *
 *  1. Measure first: a member with fewer than LATENCY_MIN_SAMPLES samples,
 *     counting attempts already in flight to it, goes first. This covers a
 *     new backend and one just back from cooldown (its average restarts at
 *     recovery). Counting in-flight attempts stops a burst of concurrent
 *     requests from all landing on the one unmeasured member.
 *  2. Explore: otherwise, with probability LATENCY_EXPLORE (5 %), a member
 *     other than the fastest, drawn uniformly, goes first, so a slow member
 *     that has become fast again is noticed.
 *
 * Worked example: pool [a, b, c], all available and serving the model.
 *
 *   member  EWMA    samples  in flight
 *   a       120 ms  40       0
 *   b        45 ms  50       2
 *   c         0     0        0      (just added)
 *
 *   rule 1: c has 0 + 0 < 3 samples   -> order c, b, a
 *
 * Later c has 3 samples and averages 60 ms:
 *
 *   sorted by EWMA                     b (45), c (60), a (120)
 *   draw 0.61 >= 0.05                  -> order b, c, a       (95 % of requests)
 *   draw 0.02 <  0.05, then pick 1 of
 *   the 2 others with 0.70 -> a        -> order a, b, c       (2.5 % each for a and c)
 *
 * When the exploring member fails, the request falls back along the rest of
 * the order, which starts with the fastest member.
 */
#include "llmgw_strategy.h"

#define LATENCY_MIN_SAMPLES 3
#define LATENCY_EXPLORE 0.05

static int cmp_u32(apr_uint32_t a, apr_uint32_t b)
{
    return a < b ? -1 : a > b;
}

static int latency_cmp(const llmgw_strategy_cand_t *cands, int a, int b)
{
    int c = cmp_u32(cands[a].latency_us, cands[b].latency_us);

    return c ? c : cmp_u32(cands[a].ttfb_us, cands[b].ttfb_us);
}

/* Move order[pos] to order[start], shifting the ones between down by one. */
static void to_front(int *order, int start, int pos)
{
    int x = order[pos];

    for (; pos > start; pos--)
        order[pos] = order[pos - 1];
    order[start] = x;
}

static apr_uint64_t exposure(const llmgw_strategy_cand_t *c)
{
    return (apr_uint64_t)c->samples + c->inflight;
}

/*
 * Rule 1: the least measured member under the bar; ties drawn at random so
 * concurrent selections spread. -1 when every member is measured.
 */
static int least_measured(const llmgw_strategy_cand_t *cands, const int *order, int start, int end,
                          apr_uint64_t *rng)
{
    apr_uint64_t best = LATENCY_MIN_SAMPLES;
    int i, pick = -1, ties = 0;

    for (i = start; i < end; i++) {
        apr_uint64_t e = exposure(&cands[order[i]]);
        if (e < best) {
            best = e;
            pick = i;
            ties = 1;
        }
        else if (e == best && pick >= 0 && llmgw_strategy_rand(rng) % (apr_uint64_t)++ties == 0) {
            pick = i; /* reservoir sampling: each tie kept with probability 1/ties */
        }
    }
    return pick;
}

static apr_status_t latency_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                   volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    apr_status_t rv = llmgw_strategy_sort(cands, n, latency_cmp, order, n_usable);
    apr_uint64_t rng = seed;
    int start, end, pick;

    if (rv != APR_SUCCESS)
        return rv;
    llmgw_strategy_tier_span(cands, order, n, 0, &start, &end);
    if (start == end)
        llmgw_strategy_tier_span(cands, order, n, 1, &start, &end);
    if (end - start < 2)
        return APR_SUCCESS;
    pick = least_measured(cands, order, start, end, &rng);
    if (pick < 0 && llmgw_strategy_unit(&rng) < LATENCY_EXPLORE)
        pick = start + 1 + (int)(llmgw_strategy_unit(&rng) * (end - start - 1));
    if (pick > start)
        to_front(order, start, pick);
    return APR_SUCCESS;
}

const llmgw_strategy_t llmgw_strategy_latency = {"latency", latency_select};
