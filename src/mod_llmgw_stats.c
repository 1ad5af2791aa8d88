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
#include <util_script.h>
#include <mod_status.h>
#include <jansson.h>
#include "mod_llmgw_private.h"
#include "llmgw_control.h"
#include "llmgw_error.h"
#include "llmgw_json.h"
#include "llmgw_slots.h"
#include "llmgw_stats.h"
#include "llmgw_stats_render.h"

#define STATS_USERDATA_KEY "llmgw-stats-shm"

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

/* What the statistics segment must hold this generation (stats_fit's need). */
typedef struct {
    int nbackends, nrows;
} stats_need_t;

static int stats_fit(const void *base, apr_size_t size, const void *need_)
{
    const stats_need_t *need = need_;

    return llmgw_stats_fits(base, size, need->nbackends, need->nrows);
}

/* The segment of the previous generation, or a new one when it no longer fits. */
static apr_status_t shm_get(server_rec *s, int nbackends, int nrows, int fresh, apr_shm_t **out)
{
    static const llmgw_shm_kind_t kind = {STATS_USERDATA_KEY, stats_fit, llmgw_stats_size,
                                          llmgw_stats_init};
    stats_need_t need = {nbackends, nrows};
    llmgw_shm_outcome_t how;
    apr_status_t rv;

    /* A replacement gets room to grow: a config that outgrew its segment once may again. */
    rv = llmgw_shm_cfg_get(s, &kind, &need, llmgw_stats_capacity_for(nbackends),
                           llmgw_stats_capacity_for(nbackends * 2), nrows, fresh, out, &how);
    if (how.replaced)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     LLMGW_LOGNO(00010) "statistics segment too small for %d backends (or of "
                                        "an older layout); starting a new one (counters "
                                        "restart at zero)",
                     nbackends);
    if (how.create_failed)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00009) "cannot create %" APR_SIZE_T_FMT
                                        " bytes of shared memory for the statistics",
                     how.size);
    return rv;
}

/* Rows for the most children the MPM may run at once (ServerLimit). */
static int stats_rows(void)
{
    int limit = 0;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1)
        limit = 16;
    return llmgw_stats_rows_for(limit);
}

/*
 * Hang each gateway's runtime record off the server that owns it, and off
 * the vhosts that inherit the main server's gateway (they share its record).
 */
static void hang_runtimes(apr_pool_t *pconf, server_rec *main_s, void *base,
                          const llmgw_slots_gateway_t *gws, server_rec **owners, int n)
{
    llmgw_srv_cfg *mc = srv_cfg(main_s);
    server_rec *s;
    int i;

    for (i = 0; i < n; i++) {
        llmgw_runtime_t *rt = apr_pcalloc(pconf, sizeof(*rt));
        rt->gw = gws[i].cfg;
        rt->scope = gws[i].scope;
        rt->stats = base;
        rt->slot_of = gws[i].slot_of;
        rt->nslots = gws[i].cfg->backends->nelts;
        srv_cfg(owners[i])->rt = rt;
    }
    for (s = main_s->next; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        if (c && c->gw && c->gw == mc->gw)
            c->rt = mc->rt;
    }
}

const llmgw_runtime_t *llmgw_glue_runtime(server_rec *s)
{
    llmgw_srv_cfg *c = s ? srv_cfg(s) : NULL;

    return c ? c->rt : NULL;
}

/* The segment of this generation (every runtime record has the same), NULL when none. */
static void *generation_stats(server_rec *main_s)
{
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        if (c && c->rt)
            return c->rt->stats;
    }
    return NULL;
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
    hang_runtimes(pconf, s, apr_shm_baseaddr_get(shm), gws, owners, ngw);
    if (ngw > 1)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     LLMGW_LOGNO(00140) "%d gateways (virtual hosts with their own "
                                        "LLMGatewayConfig) share the statistics segment",
                     ngw);
    return OK;
}

void llmgw_stats_child_init(apr_pool_t *pchild, server_rec *s)
{
    void *base = generation_stats(s);
    llmgw_stats_row_t *row;
    server_rec *v;

    if (!base)
        return;
    row = llmgw_stats_child_claim(base, (apr_uint32_t)getpid());
    /* This child's copy of every record (vhosts that share one set it again). */
    for (v = s; v; v = v->next) {
        llmgw_srv_cfg *c = srv_cfg(v);
        if (c && c->rt)
            c->rt->row = row;
    }
    if (row && row->pid == 0)
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
    void *base = generation_stats(s);

    if (state != MPM_CHILD_EXITED || !base || pid <= 0)
        return;
    dropped = llmgw_stats_child_release(base, (apr_uint32_t)pid);
    if (dropped > 0)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     LLMGW_LOGNO(00142) "child %" APR_PID_T_FMT
                                        " ended with %d upstream attempts in flight; "
                                        "no longer counting them",
                     pid, dropped);
}

/* ---------------------------------------------------------------------- */
/* The status handler                                                       */

typedef enum { FMT_HTML, FMT_JSON, FMT_PROMETHEUS, FMT_AUTO } status_fmt_e;

/* Longest form a control POST may send: three short fields. */
#define CONTROL_FORM_MAX 4096
/* Reload periods the page accepts (?refresh=N), in seconds. */
#define REFRESH_MIN 1
#define REFRESH_MAX 3600

/*
 * The value of @p name in the query string ("a=1&refresh=5"), or NULL; a
 * bare "auto" is a name without a value (""). Values are used as numbers or
 * compared, never echoed, so they are not unescaped.
 */
static const char *query_arg(request_rec *r, const char *name)
{
    char *args, *pair, *last;
    apr_size_t n = strlen(name);

    if (!r->args)
        return NULL;
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        if (strncmp(pair, name, n) == 0 && (pair[n] == '=' || pair[n] == '\0'))
            return pair[n] == '=' ? pair + n + 1 : "";
    }
    return NULL;
}

static status_fmt_e status_format(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    const char *fmt = query_arg(r, "format");

    if (fmt && strcmp(fmt, "json") == 0)
        return FMT_JSON;
    if (fmt && strcmp(fmt, "prometheus") == 0)
        return FMT_PROMETHEUS;
    if ((fmt && strcmp(fmt, "auto") == 0) || query_arg(r, "auto"))
        return FMT_AUTO; /* mod_status's spelling, ?auto, too */
    if (fmt && strcmp(fmt, "html") == 0)
        return FMT_HTML;
    if (accept && ap_strstr_c(accept, "application/json"))
        return FMT_JSON;
    return FMT_HTML;
}

/* ?refresh=N as seconds in [REFRESH_MIN, REFRESH_MAX], 0 when absent or not a number. */
static int status_refresh(request_rec *r)
{
    const char *v = query_arg(r, "refresh");
    char *end = NULL;
    apr_int64_t n;

    if (!v || !*v)
        return 0;
    n = apr_strtoi64(v, &end, 10);
    if (!end || *end || n <= 0)
        return 0;
    return n < REFRESH_MIN ? REFRESH_MIN : n > REFRESH_MAX ? REFRESH_MAX : (int)n;
}

/*
 * The gateway of the (virtual) host serving @p r: its backends' slots and
 * names, in configuration order. Other vhosts' gateways are not shown, not
 * even on the main server's page: their backend names may be the same, and
 * one tenant's page should not show another's traffic.
 */
static apr_status_t gateway_snapshot(request_rec *r, llmgw_stats_snapshot_t **snap)
{
    const llmgw_runtime_t *rt = llmgw_glue_runtime(r->server);
    int i, n = rt ? rt->nslots : 0;
    int *slots = apr_palloc(r->pool, sizeof(int) * (apr_size_t)(n + 1));
    const char **names = apr_palloc(r->pool, sizeof(char *) * (apr_size_t)(n + 1));
    apr_status_t rv;

    if (!rt)
        return APR_ENOENT;
    for (i = 0; i < n; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(rt->gw->backends, i, const llmgw_backend_t *);
        slots[i] = rt->slot_of[b->index];
        names[i] = b->name;
    }
    rv = llmgw_stats_snapshot_slots(r->pool, rt->stats, llmgw_stats_time_now(), slots, names, n,
                                    snap);
    if (rv == APR_SUCCESS)
        (*snap)->generation = (apr_uint32_t)ap_state_query(AP_SQ_CONFIG_GEN);
    return rv;
}

/* The stats slot of backend @p name of this host's gateway, or NULL. */
static llmgw_stats_slot_t *gateway_slot(request_rec *r, const char *name)
{
    const llmgw_runtime_t *rt = llmgw_glue_runtime(r->server);
    const llmgw_backend_t *b;

    if (!rt || !name)
        return NULL;
    b = llmgw_config_backend(rt->gw, name);
    if (!b || b->index < 0 || b->index >= rt->nslots)
        return NULL;
    return llmgw_stats_slot(rt->stats, rt->slot_of[b->index]);
}

/* LLMGatewayStatusControl of the location serving @p r. */
static int control_enabled(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);

    return d && d->status_control == 1;
}

/*
 * What a nonce is valid for: this virtual host (as configured, so that every
 * child and every generation agree) and the page's path. A nonce shown on
 * one vhost's page is refused by another's.
 */
static const char *control_context(request_rec *r)
{
    return apr_psprintf(r->pool, "%s:%u %s",
                        r->server->server_hostname ? r->server->server_hostname : "",
                        (unsigned)r->server->port, r->uri);
}

static int send_status_error(request_rec *r, int status, const char *code, const char *param,
                             const char *msg)
{
    apr_size_t len;
    const char *body = llmgw_error_json(
        r->pool, llmgw_error_make(r->pool, status, NULL, code, param, "%s", msg), &len);

    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/* The form fields of a control POST, each its first occurrence (NULL when absent). */
typedef struct {
    const char *nonce, *backend, *action;
} control_form_t;

static int read_control_form(request_rec *r, control_form_t *f)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_array_header_t *pairs = NULL;
    int rc, i;

    memset(f, 0, sizeof(*f));
    if (!ct || ap_cstr_casecmpn(ct, "application/x-www-form-urlencoded", 33) != 0)
        return HTTP_UNSUPPORTED_MEDIA_TYPE;
    rc = ap_parse_form_data(r, NULL, &pairs, 8, CONTROL_FORM_MAX);
    if (rc != OK)
        return rc;
    for (i = 0; pairs && i < pairs->nelts; i++) {
        ap_form_pair_t *pair = &APR_ARRAY_IDX(pairs, i, ap_form_pair_t);
        const char **slot = strcmp(pair->name, "nonce") == 0     ? &f->nonce
                            : strcmp(pair->name, "backend") == 0 ? &f->backend
                            : strcmp(pair->name, "action") == 0  ? &f->action
                                                                 : NULL;
        apr_off_t len;
        apr_size_t size;
        char *buf;

        if (!slot || *slot || apr_brigade_length(pair->value, 1, &len) != APR_SUCCESS ||
            len > CONTROL_FORM_MAX)
            continue;
        size = (apr_size_t)len;
        buf = apr_palloc(r->pool, size + 1);
        if (apr_brigade_flatten(pair->value, buf, &size) != APR_SUCCESS)
            continue;
        buf[size] = '\0';
        *slot = buf;
    }
    return OK;
}

/*
 * POST to the page: drain or re-enable a backend of this host's gateway
 * (DESIGN.md 8), with the nonce of a page rendered in the last ten minutes.
 * A form post is answered 303 See Other back to the page (so reloading it
 * does not post again); a client asking for JSON gets the backend's state.
 */
static int status_control(request_rec *r)
{
    const llmgw_runtime_t *rt = llmgw_glue_runtime(r->server);
    control_form_t f;
    llmgw_control_action_e action;
    llmgw_stats_slot_t *slot;
    apr_status_t rv;
    const char *accept = apr_table_get(r->headers_in, "Accept");
    int rc, was;

    if (!control_enabled(r))
        return send_status_error(r, HTTP_FORBIDDEN, "status_control_disabled", NULL,
                                 "Draining and enabling backends is not allowed here "
                                 "(no LLMGatewayStatusControl on for this location).");
    if (!rt)
        return send_status_error(r, HTTP_SERVICE_UNAVAILABLE, "not_configured", NULL,
                                 "No gateway is configured for this server.");
    rc = read_control_form(r, &f);
    if (rc == HTTP_UNSUPPORTED_MEDIA_TYPE)
        return send_status_error(r, rc, "unsupported_media_type", NULL,
                                 "Send the form as application/x-www-form-urlencoded.");
    if (rc != OK)
        return send_status_error(r, HTTP_BAD_REQUEST, "invalid_form", NULL,
                                 "The form could not be read.");
    rv = llmgw_control_nonce_check(r->pool, rt->stats, control_context(r), f.nonce,
                                   llmgw_stats_time_now().mono, LLMGW_CONTROL_NONCE_TTL);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00330) "status page: control request refused: %s nonce",
                      rv == APR_ENOENT   ? "no"
                      : rv == APR_TIMEUP ? "expired"
                                         : "invalid");
        return send_status_error(
            r, HTTP_FORBIDDEN, "invalid_nonce", "nonce",
            rv == APR_ENOENT   ? "The request carries no nonce: use the status page's buttons."
            : rv == APR_TIMEUP ? "The page is too old: reload it and try again."
                               : "The nonce is not valid here: reload the page and try again.");
    }
    action = llmgw_control_action(f.action);
    if (action == LLMGW_CONTROL_NONE)
        return send_status_error(r, HTTP_BAD_REQUEST, "invalid_action", "action",
                                 "The action must be \"drain\" or \"enable\".");
    slot = gateway_slot(r, f.backend);
    if (!slot)
        return send_status_error(r, HTTP_BAD_REQUEST, "unknown_backend", "backend",
                                 "This gateway has no backend of that name.");
    was = llmgw_stats_set_drained(slot, action == LLMGW_CONTROL_DRAIN);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  LLMGW_LOGNO(00331) "status page: backend \"%s\" %s by %s%s%s%s", f.backend,
                  action == LLMGW_CONTROL_DRAIN ? "drained" : "enabled", r->useragent_ip,
                  r->user ? " (user " : "", r->user ? r->user : "", r->user ? ")" : "");
    if (accept && ap_strstr_c(accept, "application/json")) {
        apr_size_t len;
        json_t *o = json_pack("{s:s,s:b,s:b}", "backend", f.backend, "drained",
                              action == LLMGW_CONTROL_DRAIN, "changed",
                              was != (action == LLMGW_CONTROL_DRAIN));
        const char *body = llmgw_json_dump(r->pool, o, &len);

        json_decref(o);
        ap_set_content_type(r, "application/json");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        ap_set_content_length(r, (apr_off_t)len);
        if (!r->header_only)
            ap_rwrite(body, (int)len, r);
        return OK;
    }
    /* Back to the page as it was asked for (its query, ?refresh=N, included). */
    apr_table_setn(r->headers_out, "Location", r->unparsed_uri);
    return HTTP_SEE_OTHER;
}

/*
 * The page may carry forms that change the gateway: it must not be framed
 * by another site (clickjacking) nor load anything from elsewhere. The
 * empty icon it declares needs img-src data:.
 */
static void set_page_headers(request_rec *r)
{
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    apr_table_setn(r->headers_out, "X-Frame-Options", "DENY");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
}

int llmgw_status_handler(request_rec *r)
{
    llmgw_stats_snapshot_t *snap;
    llmgw_stats_page_t page;
    const char *body = NULL, *type = "text/html; charset=utf-8";
    apr_size_t len = 0;
    apr_status_t rv;
    status_fmt_e fmt;

    if (!r->handler || strcmp(r->handler, LLMGW_STATUS_HANDLER) != 0)
        return DECLINED;
    /* The Allow header of a 405. */
    if (control_enabled(r))
        ap_allow_methods(r, REPLACE_ALLOW, "GET", "POST", NULL);
    else
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
    if (r->method_number == M_POST)
        return status_control(r);
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    rv = gateway_snapshot(r, &snap);
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
    memset(&page, 0, sizeof(page));
    fmt = status_format(r);
    /* A nonce only where it may be used, and only on what people and scripts
     * read to act: the page and its JSON. */
    if (control_enabled(r) && (fmt == FMT_HTML || fmt == FMT_JSON) &&
        llmgw_control_nonce(r->pool, llmgw_glue_runtime(r->server)->stats, control_context(r),
                            snap->now.mono, &page.nonce) != APR_SUCCESS)
        page.nonce = NULL;
    switch (fmt) {
    case FMT_JSON:
        body = llmgw_stats_json(r->pool, snap, &page, &len);
        type = "application/json";
        break;
    case FMT_PROMETHEUS:
        body = llmgw_stats_prometheus(r->pool, snap, &len);
        type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    case FMT_AUTO:
        body = llmgw_stats_auto(r->pool, snap, &len);
        type = "text/plain; charset=utf-8";
        break;
    default:
        page.refresh = status_refresh(r);
        if (page.refresh > 0)
            apr_table_setn(r->headers_out, "Refresh", apr_itoa(r->pool, page.refresh));
        set_page_headers(r);
        body = llmgw_stats_html(r->pool, snap, &page, &len);
    }
    if (!body)
        return HTTP_INTERNAL_SERVER_ERROR;
    body = llmgw_access_glue_status(r, status_format(r) == FMT_JSON,
                                    status_format(r) == FMT_PROMETHEUS, body, &len);
    ap_set_content_type(r, type);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/*
 * mod_status's hook: the gateway of the (virtual) host serving
 * /server-status, as a table in the HTML page (a plain list with
 * ?notable), and as "Key: value" lines in ?auto. Never the controls: they
 * belong to the llmgw-status page and its LLMGatewayStatusControl.
 */
int llmgw_status_hook(request_rec *r, int flags)
{
    llmgw_stats_snapshot_t *snap;
    int i;

    if (gateway_snapshot(r, &snap) != APR_SUCCESS)
        return OK;
    if (flags & AP_STATUS_SHORT) {
        ap_rputs(llmgw_stats_auto(r->pool, snap, NULL), r);
        return OK;
    }
    ap_rputs("<hr />\n<h2>LLM gateway (mod_llmgw)</h2>\n", r);
    if (!(flags & AP_STATUS_NOTABLE)) {
        ap_rputs(llmgw_stats_html_table(r->pool, snap, NULL), r);
        return OK;
    }
    for (i = 0; i < snap->nelts; i++) {
        const llmgw_stats_view_t *v = &snap->items[i];
        ap_rprintf(r,
                   "<p>%s: %s%s, %" APR_UINT64_T_FMT " requests, %" APR_UINT64_T_FMT
                   " successes, %" APR_UINT64_T_FMT " errors, %u in flight</p>\n",
                   ap_escape_html(r->pool, v->name), llmgw_stats_health_name(v->health),
                   v->drained ? " (drained)" : "", v->requests, v->successes,
                   llmgw_stats_view_errors(v), v->inflight);
    }
    return OK;
}
