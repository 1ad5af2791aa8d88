/*
 * least-busy: fewest attempts in flight first (across every process, from
 * the shared inflight gauge); ties go to the lower latency average, then to
 * the member that has had fewer requests, then to the listed order.
 *
 * Worked example: pool [a, b, c], all available and serving the model:
 *
 *   member  inflight  latency EWMA  requests
 *   a       4         300 ms        900
 *   b       1         900 ms        500
 *   c       1         450 ms        700
 *
 *   order   c (1 in flight, faster than b), b (1 in flight), a (4)
 *
 * On an idle pool (nothing in flight) this routes to the fastest member;
 * members never measured (latency 0) come first there, so they get measured,
 * and among those the one with fewer requests, which spreads the first ones.
 */
#include "llmgw_strategy.h"

static int cmp_u64(apr_uint64_t a, apr_uint64_t b)
{
    return a < b ? -1 : a > b;
}

static int least_busy_cmp(const llmgw_strategy_cand_t *cands, int a, int b)
{
    const llmgw_strategy_cand_t *x = &cands[a], *y = &cands[b];
    int c = cmp_u64(x->inflight, y->inflight);

    if (c == 0)
        c = cmp_u64(x->latency_us, y->latency_us);
    if (c == 0)
        c = cmp_u64(x->requests, y->requests);
    return c;
}

static apr_status_t least_busy_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                      volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    return llmgw_strategy_sort(cands, n, least_busy_cmp, order, n_usable);
}

const llmgw_strategy_t llmgw_strategy_least_busy = {"least-busy", least_busy_select};
