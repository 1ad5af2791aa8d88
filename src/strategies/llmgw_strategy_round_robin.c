/*
 * round-robin: each selection takes the next turn of the pool's shared
 * cursor (an atomic counter in the pool's stats slot, so turns are global
 * across every child, not per process) and rotates the listed order by it,
 * within each tier.
 *
 * Worked example: pool [a, b, c], all available and serving the model.
 *
 *   cursor 7 -> turn 7, 7 % 3 = 1   order b, c, a   (cursor becomes 8)
 *   cursor 8 -> turn 8, 8 % 3 = 2   order c, a, b
 *   cursor 9 -> turn 9, 9 % 3 = 0   order a, b, c
 *
 * With b cooling down, the available tier is [a, c]:
 *
 *   turn 10, 10 % 2 = 0             order a, c | b
 *   turn 11, 11 % 2 = 1             order c, a | b
 *
 * The fallback order is the rest of the rotation, so each member is also
 * the first fallback equally often. Without a cursor (no stats segment) the
 * seed picks the turn.
 */
#include <apr_atomic.h>
#include "llmgw_strategy.h"

static void reverse(int *order, int i, int j)
{
    for (j--; i < j; i++, j--) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Rotate order[start..end) left by @p turn (three reversals, in place). */
static void rotate(int *order, int start, int end, apr_uint32_t turn)
{
    int k;

    if (end - start < 2)
        return;
    k = start + (int)(turn % (apr_uint32_t)(end - start));
    reverse(order, start, k);
    reverse(order, k, end);
    reverse(order, start, end);
}

static apr_status_t round_robin_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                       volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    apr_status_t rv = llmgw_strategy_sort(cands, n, NULL, order, n_usable);
    apr_uint32_t turn;
    int tier, start, end;

    if (rv != APR_SUCCESS)
        return rv;
    turn = rr ? apr_atomic_inc32(rr) : (apr_uint32_t)(seed >> 32);
    for (tier = 0; tier < 2; tier++) {
        llmgw_strategy_tier_span(cands, order, n, tier, &start, &end);
        rotate(order, start, end, turn);
    }
    return APR_SUCCESS;
}

const llmgw_strategy_t llmgw_strategy_round_robin = {"round-robin", round_robin_select};
