/*
 * Statistics slots of every gateway: keys qualified by the gateway's scope,
 * and one assignment for all gateways at once (see include/llmgw_slots.h).
 */
#include <apr_strings.h>
#include "llmgw_slots.h"
#include "llmgw_stats.h"

const char *llmgw_slots_key(apr_pool_t *p, const char *scope, const char *name)
{
    if (!scope || !*scope)
        return name;
    return apr_pstrcat(p, name, "@", scope, NULL);
}

int llmgw_slots_count(const llmgw_slots_gateway_t *gws, int n)
{
    int i, total = 0;

    for (i = 0; i < n; i++)
        total += gws[i].cfg ? gws[i].cfg->backends->nelts : 0;
    return total;
}

apr_status_t llmgw_slots_assign(void *base, llmgw_slots_gateway_t *gws, int n, apr_pool_t *p)
{
    int total = llmgw_slots_count(gws, n), i, j, k = 0;
    const char **keys = apr_palloc(p, sizeof(*keys) * (apr_size_t)(total + 1));
    int *kinds = apr_palloc(p, sizeof(*kinds) * (apr_size_t)(total + 1));
    int *slots = apr_palloc(p, sizeof(*slots) * (apr_size_t)(total + 1));
    apr_status_t rv;

    for (i = 0; i < n; i++) {
        const apr_array_header_t *backends = gws[i].cfg ? gws[i].cfg->backends : NULL;
        for (j = 0; backends && j < backends->nelts; j++) {
            const llmgw_backend_t *b = APR_ARRAY_IDX(backends, j, const llmgw_backend_t *);
            keys[k] = llmgw_slots_key(p, gws[i].scope, b->name);
            kinds[k] = (int)b->type;
            k++;
        }
    }
    rv = llmgw_stats_assign(base, keys, kinds, total, slots);
    if (rv != APR_SUCCESS)
        return rv;
    for (i = 0, k = 0; i < n; i++) {
        const apr_array_header_t *backends = gws[i].cfg ? gws[i].cfg->backends : NULL;
        int nb = backends ? backends->nelts : 0;

        gws[i].slot_of = apr_pcalloc(p, sizeof(int) * (apr_size_t)(nb + 1));
        for (j = 0; j < nb; j++) {
            const llmgw_backend_t *b = APR_ARRAY_IDX(backends, j, const llmgw_backend_t *);
            if (b->index >= 0 && b->index < nb)
                gws[i].slot_of[b->index] = slots[k];
            k++;
        }
    }
    return APR_SUCCESS;
}
