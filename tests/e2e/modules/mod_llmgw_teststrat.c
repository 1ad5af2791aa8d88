/*
 * A third-party module for the end-to-end tests (test_strategy_provider.py):
 * it adds the pool strategy "reverse" to mod_llmgw the way any module would,
 * with nothing of mod_llmgw but its header (llmgw_strategy.h).
 *
 * reverse: the members in reverse listed order, available ones first; the
 * unavailable ones follow, also reversed (callers drop them).
 *
 * Built by the test: apxs -c -I<repo>/include mod_llmgw_teststrat.c
 */
#include <httpd.h>
#include <http_config.h>
#include <ap_provider.h>
#include "llmgw_strategy.h"

static apr_status_t reverse_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                   volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    int i, k = 0;

    (void)seed; /* no randomness and no shared cursor: the order is fixed */
    (void)rr;
    if (!cands || !order || !n_usable || n < 0)
        return APR_EINVAL;
    for (i = n - 1; i >= 0; i--) {
        if (cands[i].available)
            order[k++] = i;
    }
    *n_usable = k;
    for (i = n - 1; i >= 0; i--) {
        if (!cands[i].available)
            order[k++] = i;
    }
    return *n_usable > 0 ? APR_SUCCESS : APR_ENOENT;
}

/* The tests also build it with -DTESTSTRAT_REPLACE_PRIORITY, to replace that built-in. */
#ifdef TESTSTRAT_REPLACE_PRIORITY
#define TESTSTRAT_NAME "priority"
#else
#define TESTSTRAT_NAME "reverse"
#endif

static const llmgw_strategy_t reverse = {TESTSTRAT_NAME, reverse_select};

static void teststrat_register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, LLMGW_STRATEGY_PROVIDER_GROUP, TESTSTRAT_NAME,
                         LLMGW_STRATEGY_PROVIDER_VERSION, &reverse);
}

AP_DECLARE_MODULE(llmgw_teststrat) = {STANDARD20_MODULE_STUFF,  NULL, NULL, NULL, NULL, NULL,
                                      teststrat_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                                      AP_MODULE_FLAG_NONE
#endif
};
