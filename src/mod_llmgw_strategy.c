/*
 * Pool strategies as httpd providers (DESIGN.md 1, llmgw_strategy.h).
 *
 * The built-ins are registered from register_hooks like any other module's
 * strategy would be. gateway.yaml names are resolved with ap_lookup_provider()
 * when LLMGatewayConfig is read: by then every loaded module's register_hooks
 * has run, whatever the order of the LoadModule lines, so a strategy from
 * another module is found and an unknown name fails configtest with the list
 * of every registered name.
 */
#include <stdlib.h>
#include <string.h>
#include <ap_provider.h>
#include "mod_llmgw_private.h"
#include "llmgw_strategy.h"

static const llmgw_strategy_t *lookup(const char *name)
{
    return ap_lookup_provider(LLMGW_STRATEGY_PROVIDER_GROUP, name, LLMGW_STRATEGY_PROVIDER_VERSION);
}

/* A module that registered a built-in's name first keeps it: replacing a
 * built-in then works whichever module is loaded first. */
void llmgw_strategy_register(apr_pool_t *p)
{
    const llmgw_strategy_t *st;
    int e;

    for (e = 0; (st = llmgw_strategy_get((llmgw_strategy_e)e)); e++) {
        if (!lookup(st->name))
            ap_register_provider(p, LLMGW_STRATEGY_PROVIDER_GROUP, st->name,
                                 LLMGW_STRATEGY_PROVIDER_VERSION, st);
    }
}

static const llmgw_strategy_t *resolve(void *baton, const char *name)
{
    return lookup(name);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The built-ins in their usual order, then the other modules' names sorted
 * (the provider hash has no order of its own); NULL-terminated. */
static const char *const *known_names(apr_pool_t *p)
{
    apr_array_header_t *all =
        ap_list_provider_names(p, LLMGW_STRATEGY_PROVIDER_GROUP, LLMGW_STRATEGY_PROVIDER_VERSION);
    apr_array_header_t *out = apr_array_make(p, all->nelts + 1, sizeof(const char *));
    const llmgw_strategy_t *st;
    int e, i, first_other;

    for (e = 0; (st = llmgw_strategy_get((llmgw_strategy_e)e)); e++) {
        if (lookup(st->name))
            APR_ARRAY_PUSH(out, const char *) = st->name;
    }
    first_other = out->nelts;
    for (i = 0; i < all->nelts; i++) {
        const char *name = APR_ARRAY_IDX(all, i, ap_list_provider_names_t).provider_name;
        if (!llmgw_strategy_find(name))
            APR_ARRAY_PUSH(out, const char *) = name;
    }
    qsort(out->elts + first_other * sizeof(const char *), (size_t)(out->nelts - first_other),
          sizeof(const char *), name_cmp);
    APR_ARRAY_PUSH(out, const char *) = NULL;
    return (const char *const *)(void *)out->elts;
}

void llmgw_strategy_config_opts(apr_pool_t *p, llmgw_config_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->resolve_strategy = resolve;
    opts->strategy_names = known_names(p);
}

/* Which pools run code from another module: the first place to look when
 * one of them misbehaves. */
static void log_foreign(server_rec *s, const llmgw_config_t *gw)
{
    int i;

    for (i = 0; i < gw->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(gw->backends, i, const llmgw_backend_t *);
        if (b->type != LLMGW_BACKEND_POOL || b->strategy == llmgw_strategy_find(b->strategy_name))
            continue;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     LLMGW_LOGNO(00020) "%s: pool \"%s\" uses strategy \"%s\" from another module",
                     gw->path, b->name, b->strategy_name);
    }
}

void llmgw_strategy_post_config(server_rec *s)
{
    const llmgw_config_t *seen = NULL;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return;
    for (; s; s = s->next) {
        llmgw_srv_cfg *c = ap_get_module_config(s->module_config, &llmgw_module);
        /* Virtual hosts without their own file share the main server's. */
        if (!c || !c->gw || c->gw == seen)
            continue;
        seen = c->gw;
        log_foreign(s, c->gw);
    }
}
