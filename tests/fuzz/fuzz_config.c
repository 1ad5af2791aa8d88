/*
 * gateway.yaml loader: any bytes either fail with a located message or give
 * a configuration whose references are all resolved and whose pools form no
 * cycle, which is what the handler relies on without checking again.
 */
#include <string.h>
#include "fuzz.h"
#include "llmgw_config.h"

#define FUZZ_NAME "fuzz.yaml"

/* A pool's members, followed down: more levels than there are backends means a cycle. */
static void check_pool_depth(const llmgw_config_t *cfg, const llmgw_backend_t *b, int depth)
{
    int i;

    FUZZ_CHECK(depth <= cfg->backends->nelts);
    if (b->type != LLMGW_BACKEND_POOL)
        return;
    FUZZ_CHECK(b->members != NULL);
    for (i = 0; i < b->members->nelts; i++) {
        const llmgw_pool_member_t *m = &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
        FUZZ_CHECK(m->backend != NULL);
        check_pool_depth(cfg, m->backend, depth + 1);
    }
}

static void check_backends(const llmgw_config_t *cfg)
{
    int i;

    for (i = 0; i < cfg->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(cfg->backends, i, const llmgw_backend_t *);
        FUZZ_CHECK(b->name != NULL);
        FUZZ_CHECK(b->index == i);
        FUZZ_CHECK((unsigned)b->type < LLMGW_BACKEND_TYPE_COUNT);
        FUZZ_CHECK(llmgw_config_backend(cfg, b->name) == b);
        FUZZ_CHECK(strcmp(llmgw_backend_type_name(b->type), "unknown") != 0);
        FUZZ_CHECK(llmgw_backend_timeout(b) > 0);
        FUZZ_CHECK(llmgw_backend_connect_timeout(b) > 0);
        FUZZ_CHECK(llmgw_backend_first_byte_timeout(b) > 0);
        FUZZ_CHECK(llmgw_backend_idle_timeout(b) > 0);
        FUZZ_CHECK(llmgw_backend_max_retries(b) >= 0);
        check_pool_depth(cfg, b, 0);
    }
}

static void check_routes(const llmgw_config_t *cfg)
{
    int i;

    for (i = 0; i < cfg->routes->nelts; i++) {
        const llmgw_route_t *r = APR_ARRAY_IDX(cfg->routes, i, const llmgw_route_t *);
        FUZZ_CHECK(r->path != NULL && r->path[0] == '/');
        FUZZ_CHECK(llmgw_config_route(cfg, r->path) == r);
        FUZZ_CHECK(r->backend != NULL);
        FUZZ_CHECK(llmgw_config_backend(cfg, r->backend->name) == r->backend);
        FUZZ_CHECK(r->methods != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool(), *ptemp;
    llmgw_config_t *cfg = NULL;
    const char *errmsg = NULL;
    apr_status_t rv;

    FUZZ_CHECK(apr_pool_create(&ptemp, p) == APR_SUCCESS);
    rv = llmgw_config_parse(&cfg, p, ptemp, FUZZ_NAME, (const char *)data, size, &errmsg);
    if (rv == APR_SUCCESS) {
        FUZZ_CHECK(cfg != NULL && errmsg == NULL);
        check_backends(cfg);
        check_routes(cfg);
    }
    else {
        /* Every failure names the file, so that configtest points at it. */
        FUZZ_CHECK(errmsg != NULL);
        FUZZ_CHECK(strncmp(errmsg, FUZZ_NAME ":", sizeof(FUZZ_NAME)) == 0);
    }
    apr_pool_destroy(p);
    return 0;
}
