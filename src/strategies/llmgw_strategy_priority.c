/*
 * priority: the members in the order the pool lists them. The first
 * available one gets every request; the others are the fallback order.
 *
 * Worked example: pool [a, b, c], b cooling down, the request asks for
 * "gpt-4o", which only c lists (a and c are available):
 *
 *   tiers   c -> 0 (available, serves the model)
 *           a -> 1 (available, would use its defaultModel)
 *           b -> 2 (cooling)
 *   order   c, a | b        n_usable = 2, so callers try c, then a
 *
 * This file also holds the stable tier sort every strategy builds on:
 * priority is that sort with no further rule.
 */
#include "llmgw_strategy.h"

/* a goes before b: lower tier, then the strategy's rule, then listed order. */
static int before(const llmgw_strategy_cand_t *cands, llmgw_strategy_cmp_fn cmp, int a, int b)
{
    int ta = llmgw_strategy_tier(&cands[a]), tb = llmgw_strategy_tier(&cands[b]), c;

    if (ta != tb)
        return ta < tb;
    /* Unavailable members keep their listed order: no rule applies to them. */
    if (cmp && ta < 2 && (c = cmp(cands, a, b)) != 0)
        return c < 0;
    return a < b;
}

apr_status_t llmgw_strategy_sort(const llmgw_strategy_cand_t *cands, int n,
                                 llmgw_strategy_cmp_fn cmp, int *order, int *n_usable)
{
    int i, j, usable = 0;

    if (!cands || !order || !n_usable || n < 0)
        return APR_EINVAL;
    for (i = 0; i < n; i++) {
        int x = order[i] = i;
        for (j = i; j > 0 && before(cands, cmp, x, order[j - 1]); j--)
            order[j] = order[j - 1];
        order[j] = x;
        usable += cands[i].available != 0;
    }
    *n_usable = usable;
    return usable ? APR_SUCCESS : APR_ENOENT;
}

void llmgw_strategy_tier_span(const llmgw_strategy_cand_t *cands, const int *order, int n, int tier,
                              int *start, int *end)
{
    int i = 0;

    while (i < n && llmgw_strategy_tier(&cands[order[i]]) < tier)
        i++;
    *start = i;
    while (i < n && llmgw_strategy_tier(&cands[order[i]]) == tier)
        i++;
    *end = i;
}

static apr_status_t priority_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                    volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    return llmgw_strategy_sort(cands, n, NULL, order, n_usable);
}

const llmgw_strategy_t llmgw_strategy_priority = {"priority", priority_select};
