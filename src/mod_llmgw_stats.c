/*
 * The shared statistics segment and the llmgw-status handler.
 *
 * The segment is an anonymous apr_shm anchored in s->process->pool: it is
 * made once, found again through pool userdata on every graceful restart
 * (so counters of backends that keep their name survive), and inherited by
 * every child through fork, under every MPM. Slots are assigned by name in
 * the single-threaded parent; the request path only does atomics.
 *
 * Every virtual host with an LLMGatewayConfig of its own is a gateway of
 * its own, with its own slots (llmgw_slots.h): the same backend name in two
 * vhosts never shares counters or cooldowns. A vhost without one inherits
 * the main server's gateway and so its state. The status page shows the
 * gateway of the (virtual) host it is served by.
 *
 * In-flight attempts are counted in per-child rows (llmgw_stats.h): each
 * child claims one in child_init, and the parent frees the row of every
 * child that ended, from the MPM's child_status hook, so a child killed in
 * the middle of a request does not leave it counted.
 *
 * apr_shm and its cleanup belong to libapr, which is never unloaded, so
 * anchoring it in the process pool is safe although our DSO is reloaded on
 * every restart (apache-notes 5.1).
 */
#include <unistd.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_atomic.h>
#include <ap_mpm.h>
#include <http_main.h>
#include "mod_llmgw_private.h"
#include "llmgw_slots.h"
#include "llmgw_stats.h"

#define STATS_USERDATA_KEY "llmgw-stats-shm"

/* The segment of this generation: set in the parent, inherited by children. */
static void *stats_base;
/* This child's in-flight row (child_init); NULL in the parent. */
static llmgw_stats_row_t *stats_row;

void *llmgw_glue_stats_base(void)
{
    return stats_base;
}

llmgw_stats_row_t *llmgw_glue_stats_row(void)
{
    return stats_row;
}

static apr_status_t reset_base(void *data)
{
    stats_base = NULL;
    stats_row = NULL;
    return APR_SUCCESS;
}

static llmgw_srv_cfg *srv_cfg(server_rec *s)
{
    return ap_get_module_config(s->module_config, &llmgw_module);
}

/*
 * The scope of a virtual host's own gateway: its <VirtualHost> addresses as
 * written and its ServerName, e.g. "127.0.0.1:8443 api.example.com". Why
 * this and not where the <VirtualHost> block is defined (file:line):
 * - it must survive graceful restarts, and it does as long as the vhost
 *   answers at the same addresses under the same name, whatever is edited
 *   around it, whereas inserting one line above the block would move
 *   file:line and silently reset that vhost's counters and cooldowns;
 * - mod_macro makes several vhosts from one definition, which share its
 *   file:line;
 * - it names what clients reach, which is what an operator recognises.
 * Two vhosts with the same addresses and ServerName (httpd routes a name
 * to the first of them) are told apart by "#2", "#3"... in definition
 * order. By post_config httpd has filled in a missing ServerName (from the
 * main server or the address), so the name is always there.
 */
static const char *vhost_scope(apr_pool_t *p, server_rec *s, apr_hash_t *seen)
{
    const char *scope = "";
    server_addr_rec *a;
    int n;

    for (a = s->addrs; a; a = a->next)
        scope = apr_pstrcat(p, scope, a->virthost ? a->virthost : "?", " ", NULL);
    scope = apr_pstrcat(p, scope, s->server_hostname ? s->server_hostname : "", NULL);
    if (!*scope)
        scope = "vhost";
    for (n = 2; apr_hash_get(seen, scope, APR_HASH_KEY_STRING); n++) {
        const char *other = apr_psprintf(p, "%s#%d", scope, n);
        if (!apr_hash_get(seen, other, APR_HASH_KEY_STRING)) {
            scope = other;
            break;
        }
    }
    apr_hash_set(seen, scope, APR_HASH_KEY_STRING, "");
    return scope;
}

/*
 * The gateways of this configuration, and for each the server that owns it:
 * the main server's (scope ""), then every vhost with its own
 * LLMGatewayConfig. A vhost without one has the main server's parsed config
 * (llmgw_merge_srv copies the pointer), which is how it is recognised.
 */
static int collect_gateways(apr_pool_t *p, server_rec *main_s, llmgw_slots_gateway_t **gws_out,
                            server_rec ***owners_out)
{
    llmgw_srv_cfg *mc = srv_cfg(main_s);
    apr_array_header_t *gws = apr_array_make(p, 4, sizeof(llmgw_slots_gateway_t));
    apr_array_header_t *owners = apr_array_make(p, 4, sizeof(server_rec *));
    apr_hash_t *seen = apr_hash_make(p);
    server_rec *s;

    apr_hash_set(seen, "", APR_HASH_KEY_STRING, "");
    for (s = main_s; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        llmgw_slots_gateway_t *g;

        if (!c || !c->gw || (s != main_s && c->gw == mc->gw))
            continue;
        g = apr_array_push(gws);
        g->scope = s == main_s ? "" : vhost_scope(p, s, seen);
        g->cfg = c->gw;
        g->slot_of = NULL;
        APR_ARRAY_PUSH(owners, server_rec *) = s;
    }
    *gws_out = (llmgw_slots_gateway_t *)gws->elts;
    *owners_out = (server_rec **)owners->elts;
    return gws->nelts;
}

static apr_status_t shm_make(server_rec *s, int capacity, int nrows, apr_shm_t **out)
{
    apr_size_t size = llmgw_stats_size(capacity, nrows);
    apr_status_t rv = apr_shm_create(out, size, NULL, s->process->pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00009) "cannot create %" APR_SIZE_T_FMT
                                        " bytes of shared memory for the statistics",
                     size);
        return rv;
    }
    rv = llmgw_stats_init(apr_shm_baseaddr_get(*out), capacity, nrows, apr_time_now());
    if (rv == APR_SUCCESS)
        apr_pool_userdata_set(*out, STATS_USERDATA_KEY, apr_pool_cleanup_null, s->process->pool);
    return rv;
}

/* The segment of the previous generation, or a new one when it no longer fits. */
static apr_status_t shm_get(server_rec *s, int nbackends, int nrows, int fresh, apr_shm_t **out)
{
    void *ud = NULL;
    apr_shm_t *old;
    int capacity = llmgw_stats_capacity_for(nbackends);

    apr_pool_userdata_get(&ud, STATS_USERDATA_KEY, s->process->pool);
    old = ud;
    if (old && !fresh &&
        llmgw_stats_fits(apr_shm_baseaddr_get(old), apr_shm_size_get(old), nbackends, nrows)) {
        *out = old;
        return APR_SUCCESS;
    }
    if (old) {
        /* Children of the old generation may still write to it: it goes
         * with the process pool at shutdown rather than now. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     LLMGW_LOGNO(00010) "statistics segment too small for %d backends (or of "
                                        "an older layout); starting a new one (counters "
                                        "restart at zero)",
                     nbackends);
        capacity = llmgw_stats_capacity_for(nbackends * 2);
    }
    return shm_make(s, capacity, nrows, out);
}

/* Rows for the most children the MPM may run at once (ServerLimit). */
static int stats_rows(void)
{
    int limit = 0;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1)
        limit = 16;
    return llmgw_stats_rows_for(limit);
}

/* Hand each server its gateway's slots; vhosts that inherit share the main server's. */
static void distribute_slots(server_rec *main_s, const llmgw_slots_gateway_t *gws,
                             server_rec **owners, int n)
{
    llmgw_srv_cfg *mc = srv_cfg(main_s);
    server_rec *s;
    int i;

    for (i = 0; i < n; i++) {
        llmgw_srv_cfg *c = srv_cfg(owners[i]);
        c->slot_of = gws[i].slot_of;
        c->nslots = gws[i].cfg->backends->nelts;
    }
    for (s = main_s->next; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        if (c && c->gw && c->gw == mc->gw) {
            c->slot_of = mc->slot_of;
            c->nslots = mc->nslots;
        }
    }
}

int llmgw_stats_post_config(apr_pool_t *pconf, server_rec *s)
{
    llmgw_slots_gateway_t *gws;
    server_rec **owners;
    int ngw = collect_gateways(pconf, s, &gws, &owners);
    int n = llmgw_slots_count(gws, ngw), nrows;
    apr_shm_t *shm;
    apr_status_t rv;

    /* The first pass at start-up is thrown away: no side effects there. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG || n == 0)
        return OK;
    apr_atomic_init(pconf);
    nrows = stats_rows();
    if ((rv = shm_get(s, n, nrows, 0, &shm)) != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    /* All gateways in one assignment: slots of one vhost's backends must
     * not retire because another vhost's file lacks them. */
    rv = llmgw_slots_assign(apr_shm_baseaddr_get(shm), gws, ngw, pconf);
    if (rv == APR_ENOSPC) {
        /* Retired slots are never reused; a config that keeps renaming
         * backends eventually needs a bigger segment. */
        if ((rv = shm_get(s, n, nrows, 1, &shm)) != APR_SUCCESS)
            return HTTP_INTERNAL_SERVER_ERROR;
        rv = llmgw_slots_assign(apr_shm_baseaddr_get(shm), gws, ngw, pconf);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00011) "cannot assign statistics slots");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    distribute_slots(s, gws, owners, ngw);
    stats_base = apr_shm_baseaddr_get(shm);
    apr_pool_cleanup_register(pconf, NULL, reset_base, apr_pool_cleanup_null);
    if (ngw > 1)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     LLMGW_LOGNO(00140) "%d gateways (virtual hosts with their own "
                                        "LLMGatewayConfig) share the statistics segment",
                     ngw);
    return OK;
}

void llmgw_stats_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (!stats_base)
        return;
    stats_row = llmgw_stats_child_claim(stats_base, (apr_uint32_t)getpid());
    if (stats_row && stats_row->pid == 0)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     LLMGW_LOGNO(00141) "no free in-flight row for child %" APR_PID_T_FMT
                                        "; its attempts count in the shared row, where a "
                                        "crash of this child would leave them",
                     getpid());
}

void llmgw_stats_child_status(server_rec *s, pid_t pid, ap_generation_t gen, int slot,
                              mpm_child_status state)
{
    int dropped;

    /* The MPM calls this in the parent once it has reaped the child: the
     * row can no longer be written to. A child that only lost its
     * scoreboard slot (LOST_SLOT) is still running; its row stays. */
    if (state != MPM_CHILD_EXITED || !stats_base || pid <= 0)
        return;
    dropped = llmgw_stats_child_release(stats_base, (apr_uint32_t)pid);
    if (dropped > 0)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     LLMGW_LOGNO(00142) "child %" APR_PID_T_FMT
                                        " ended with %d upstream attempts in flight; "
                                        "no longer counting them",
                     pid, dropped);
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

/*
 * The gateway of the (virtual) host serving @p r: its backends' slots and
 * names, in configuration order. Other vhosts' gateways are not shown, not
 * even on the main server's page: their backend names may be the same, and
 * one tenant's page should not show another's traffic.
 */
static apr_status_t gateway_snapshot(request_rec *r, llmgw_stats_snapshot_t **snap)
{
    llmgw_srv_cfg *c = srv_cfg(r->server);
    int i, n = c && c->gw && c->slot_of ? c->nslots : 0;
    int *slots = apr_palloc(r->pool, sizeof(int) * (apr_size_t)(n + 1));
    const char **names = apr_palloc(r->pool, sizeof(char *) * (apr_size_t)(n + 1));

    if (!c || !c->gw || !c->slot_of)
        return APR_ENOENT;
    for (i = 0; i < n; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(c->gw->backends, i, const llmgw_backend_t *);
        slots[i] = c->slot_of[b->index];
        names[i] = b->name;
    }
    return llmgw_stats_snapshot_slots(r->pool, stats_base, llmgw_stats_time_now(), slots, names, n,
                                      snap);
}

int llmgw_status_handler(request_rec *r)
{
    llmgw_stats_snapshot_t *snap;
    const char *body = NULL, *type = "text/html; charset=utf-8";
    apr_size_t len = 0;
    apr_status_t rv;

    if (!r->handler || strcmp(r->handler, LLMGW_STATUS_HANDLER) != 0)
        return DECLINED;
    /* GET (and HEAD) only: httpd's 405 says so in Allow. */
    ap_allow_standard_methods(r, MERGE_ALLOW, M_GET, -1);
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    rv = stats_base ? gateway_snapshot(r, &snap) : APR_ENOENT;
    if (rv == APR_ENOENT) {
        r->status = HTTP_SERVICE_UNAVAILABLE;
        ap_set_content_type(r, "text/plain; charset=utf-8");
        ap_rputs("mod_llmgw: no statistics (no LLMGatewayConfig with backends for this "
                 "server)\n",
                 r);
        return OK;
    }
    if (rv != APR_SUCCESS)
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
