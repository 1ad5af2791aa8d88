/*
 * The shared statistics segment and the llmgw-status handler.
 *
 * The segment is an anonymous apr_shm anchored in s->process->pool: it is
 * made once, found again through pool userdata on every graceful restart
 * (so counters of backends that keep their name survive), and inherited by
 * every child through fork, under every MPM. Slots are assigned by name in
 * the single-threaded parent; the request path only does atomics.
 *
 * apr_shm and its cleanup belong to libapr, which is never unloaded, so
 * anchoring it in the process pool is safe although our DSO is reloaded on
 * every restart (apache-notes 5.1).
 */
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_atomic.h>
#include <http_main.h>
#include "mod_llmgw_private.h"
#include "llmgw_stats.h"

#define STATS_USERDATA_KEY "llmgw-stats-shm"

/* The segment of this generation: set in the parent, inherited by children. */
static void *stats_base;

void *llmgw_glue_stats_base(void)
{
    return stats_base;
}

static apr_status_t reset_base(void *data)
{
    stats_base = NULL;
    return APR_SUCCESS;
}

static int count_backends(server_rec *s)
{
    int n = 0;

    for (; s; s = s->next) {
        llmgw_srv_cfg *c = ap_get_module_config(s->module_config, &llmgw_module);
        if (c && c->gw)
            n += c->gw->backends->nelts;
    }
    return n;
}

static apr_status_t shm_make(server_rec *s, int capacity, apr_shm_t **out)
{
    apr_size_t size = llmgw_stats_size(capacity);
    apr_status_t rv = apr_shm_create(out, size, NULL, s->process->pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00009) "cannot create %" APR_SIZE_T_FMT
                                        " bytes of shared memory for the statistics",
                     size);
        return rv;
    }
    rv = llmgw_stats_init(apr_shm_baseaddr_get(*out), capacity, apr_time_now());
    if (rv == APR_SUCCESS)
        apr_pool_userdata_set(*out, STATS_USERDATA_KEY, apr_pool_cleanup_null, s->process->pool);
    return rv;
}

/* The segment of the previous generation, or a new one when it no longer fits. */
static apr_status_t shm_get(server_rec *s, int nbackends, int fresh, apr_shm_t **out)
{
    void *ud = NULL;
    apr_shm_t *old;
    int capacity = llmgw_stats_capacity_for(nbackends);

    apr_pool_userdata_get(&ud, STATS_USERDATA_KEY, s->process->pool);
    old = ud;
    if (old && !fresh &&
        llmgw_stats_fits(apr_shm_baseaddr_get(old), apr_shm_size_get(old), nbackends)) {
        *out = old;
        return APR_SUCCESS;
    }
    if (old) {
        /* Children of the old generation may still write to it: it goes
         * with the process pool at shutdown rather than now. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     LLMGW_LOGNO(00010) "statistics segment too small for %d backends; "
                                        "starting a new one (counters restart at zero)",
                     nbackends);
        capacity = llmgw_stats_capacity_for(nbackends * 2);
    }
    return shm_make(s, capacity, out);
}

static apr_status_t assign_all(server_rec *s, void *base, apr_pool_t *pconf)
{
    apr_status_t rv = APR_SUCCESS;

    for (; s; s = s->next) {
        llmgw_srv_cfg *c = ap_get_module_config(s->module_config, &llmgw_module);
        if (!c || !c->gw)
            continue;
        rv = llmgw_stats_assign_config(base, c->gw, pconf, &c->slot_of);
        if (rv != APR_SUCCESS)
            return rv;
        c->nslots = c->gw->backends->nelts;
    }
    return rv;
}

int llmgw_stats_post_config(apr_pool_t *pconf, server_rec *s)
{
    int n = count_backends(s);
    apr_shm_t *shm;
    apr_status_t rv;

    /* The first pass at start-up is thrown away: no side effects there. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG || n == 0)
        return OK;
    apr_atomic_init(pconf);
    if ((rv = shm_get(s, n, 0, &shm)) != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    rv = assign_all(s, apr_shm_baseaddr_get(shm), pconf);
    if (rv == APR_ENOSPC) {
        /* Retired slots are never reused; a config that keeps renaming
         * backends eventually needs a bigger segment. */
        if ((rv = shm_get(s, n, 1, &shm)) != APR_SUCCESS)
            return HTTP_INTERNAL_SERVER_ERROR;
        rv = assign_all(s, apr_shm_baseaddr_get(shm), pconf);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00011) "cannot assign statistics slots");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    stats_base = apr_shm_baseaddr_get(shm);
    apr_pool_cleanup_register(pconf, NULL, reset_base, apr_pool_cleanup_null);
    return OK;
}

/* ---------------------------------------------------------------------- */
/* The status handler                                                       */

typedef enum { FMT_HTML, FMT_JSON, FMT_PROMETHEUS } status_fmt_e;

static status_fmt_e status_format(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    if (r->args) {
        if (ap_strstr_c(r->args, "format=json"))
            return FMT_JSON;
        if (ap_strstr_c(r->args, "format=prometheus"))
            return FMT_PROMETHEUS;
        if (ap_strstr_c(r->args, "format=html"))
            return FMT_HTML;
    }
    if (accept && ap_strstr_c(accept, "application/json"))
        return FMT_JSON;
    return FMT_HTML;
}

int llmgw_status_handler(request_rec *r)
{
    llmgw_stats_snapshot_t *snap;
    const char *body = NULL, *type = "text/html; charset=utf-8";
    apr_size_t len = 0;

    if (!r->handler || strcmp(r->handler, LLMGW_STATUS_HANDLER) != 0)
        return DECLINED;
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    if (!stats_base) {
        r->status = HTTP_SERVICE_UNAVAILABLE;
        ap_set_content_type(r, "text/plain; charset=utf-8");
        ap_rputs("mod_llmgw: no statistics (no LLMGatewayConfig with backends)\n", r);
        return OK;
    }
    if (llmgw_stats_snapshot(r->pool, stats_base, apr_time_now(), &snap) != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    snap->generation = (apr_uint32_t)ap_state_query(AP_SQ_CONFIG_GEN);
    switch (status_format(r)) {
    case FMT_JSON:
        body = llmgw_stats_json(r->pool, snap, &len);
        type = "application/json";
        break;
    case FMT_PROMETHEUS:
        body = llmgw_stats_prometheus(r->pool, snap, &len);
        type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    default:
        body = llmgw_stats_html(r->pool, snap, &len);
    }
    if (!body)
        return HTTP_INTERNAL_SERVER_ERROR;
    ap_set_content_type(r, type);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}
