/*
 * Access, limits, spend and the ledger in httpd (DESIGN.md 11): who is
 * asking (a virtual key, or what an httpd auth module established), the
 * refusals in OpenAI's shape with x-ratelimit-* headers and Retry-After,
 * the limits segment (include/llmgw_limits.h) made in post_config next to
 * the statistics segment, the ledger writers started in child_init and
 * drained when a child exits (include/llmgw_ledger.h), and the access
 * section of the status page.
 *
 * The handler calls in at a few one-line seams (mod_llmgw_private.h):
 * identify after routing, admit once the body is parsed, usage when a
 * provider reports it, attempt begin/end around each upstream attempt, and
 * the pool's limit check. Everything a request holds (its reservation, its
 * concurrency) is given back by a pre-cleanup of the request pool, which
 * runs on every way a request ends, after the access log line is written,
 * so the settlement and the ledger row see the final status.
 *
 * Per-request state lives in r->request_config (our module's slot), from
 * r->pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_atomic.h>
#include <apr_file_info.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <jansson.h>
#include <ap_mpm.h>
#include <http_main.h>
#include <unixd.h>
#include "mod_llmgw_private.h"
#include "llmgw_access.h"
#include "llmgw_error.h"
#include "llmgw_json.h"
#include "llmgw_ledger.h"
#include "llmgw_limits.h"
#include "llmgw_pool.h"
#include "llmgw_pricing.h"
#include "llmgw_provider.h"
#include "llmgw_slots.h"

#define LIMITS_USERDATA_KEY "llmgw-limits-shm"

/* One ledger database of this generation, and its writer in this child. */
typedef struct {
    const llmgw_ledger_cfg_t *cfg;
    llmgw_ledger_writer_t *writer; /* child_init */
    server_rec *s;                 /* for the writer's log lines */
} ledger_t;

/* A gateway's access state (one per gateway; vhosts that inherit share it). */
typedef struct llmgw_access_srv {
    const llmgw_config_t *gw;
    const char *scope;
    int *entry_slot;   /* limits slot per access entry index, -1 */
    int *backend_slot; /* limits slot per backend index, -1 */
    int any_dynamic;   /* the "*" principal has limits or a budget: a slot per principal */
    int has_backend_limits;
    ledger_t *ledger; /* NULL: no ledger */
} llmgw_access_srv_t;

/* What one request holds; r->request_config. */
typedef struct {
    request_rec *r;
    llmgw_access_srv_t *as;
    const llmgw_access_entry_t *entry; /* NULL: open gateway */
    const char *who;                   /* key or principal name; NULL: open */
    int slot;                          /* its limits slot, -1 */
    llmgw_limits_hold_t hold;
    int admitted;
    apr_int64_t est_prompt, est_output;
    const char *requested_model;
    const char *sent_model;
    const char *route;   /* for the ledger row (not read back from the environment) */
    const char *backend; /* the backend of the last attempt */
    const char *model;   /* what answered, as the provider said */
    int attempts;
    int have_usage;
    llmgw_usage_t usage;
    apr_int64_t cost; /* nano-USD; -1: unpriced or unknown */
    llmgw_limits_hold_t attempt;
} access_req_t;

/* The segment of this generation (parent, inherited by children) and this child's row. */
static void *limits_base;
static llmgw_limits_row_t *limits_row;
/* Every ledger of this generation (pconf). */
static apr_array_header_t *ledgers;

static apr_status_t reset_statics(void *data)
{
    limits_base = NULL;
    limits_row = NULL;
    ledgers = NULL;
    return APR_SUCCESS;
}

static llmgw_srv_cfg *srv_cfg(server_rec *s)
{
    return ap_get_module_config(s->module_config, &llmgw_module);
}

static access_req_t *req_state(request_rec *r)
{
    return ap_get_module_config(r->request_config, &llmgw_module);
}

/* ---------------------------------------------------------------------- */
/* Configuration time                                                       */

const char *llmgw_access_cfg_check(cmd_parms *cmd, llmgw_config_t *gw)
{
    llmgw_ledger_cfg_t *l = (llmgw_ledger_cfg_t *)gw->ledger;
    const char *msg = NULL;

    if (!l)
        return NULL;
    /* A relative SQLite file is under ServerRoot, like every path httpd reads. */
    if (strcmp(l->driver, "sqlite3") == 0 && l->params[0] != '/') {
        const char *abs = ap_server_root_relative(cmd->pool, l->params);
        if (!abs)
            return apr_psprintf(cmd->pool, "%s:%lu:%lu: ledger: invalid path", gw->path,
                                l->mark.line, l->mark.column);
        l->params = abs;
    }
    if (llmgw_ledger_driver_check(cmd->pool, l->driver, &msg) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s:%lu:%lu: ledger: %s", gw->path, l->driver_mark.line,
                            l->driver_mark.column, msg);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* post_config: the limits segment and the ledgers                          */

static const char *entry_key(apr_pool_t *p, const char *scope, const llmgw_access_entry_t *e)
{
    return llmgw_slots_key(
        p, scope, apr_pstrcat(p, e->kind == LLMGW_ACCESS_KIND_KEY ? "k:" : "p:", e->name, NULL));
}

static const char *dynamic_key(apr_pool_t *p, const char *scope, const char *principal)
{
    return llmgw_slots_key(p, scope, apr_pstrcat(p, "d:", principal, NULL));
}

static int limited(const llmgw_limits_cfg_t *l)
{
    return l->rpm > 0 || l->tpm > 0 || l->concurrent > 0;
}

/* The gateways of this configuration: the main server's, then each vhost's own. */
static apr_array_header_t *gateways(apr_pool_t *p, server_rec *main_s)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(server_rec *));
    llmgw_srv_cfg *mc = srv_cfg(main_s);
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        if (c && c->gw && (s == main_s || c->gw != mc->gw))
            APR_ARRAY_PUSH(out, server_rec *) = s;
    }
    return out;
}

static ledger_t *ledger_for(apr_pool_t *pconf, server_rec *s, const llmgw_ledger_cfg_t *cfg)
{
    ledger_t *l;
    int i;

    for (i = 0; i < ledgers->nelts; i++) {
        l = APR_ARRAY_IDX(ledgers, i, ledger_t *);
        if (strcmp(l->cfg->driver, cfg->driver) == 0 && strcmp(l->cfg->params, cfg->params) == 0)
            return l;
    }
    l = apr_pcalloc(pconf, sizeof(*l));
    l->cfg = cfg;
    l->s = s;
    APR_ARRAY_PUSH(ledgers, ledger_t *) = l;
    return l;
}

/* Names and kinds of every limits slot the gateways need, and each gateway's state. */
static void collect(apr_pool_t *pconf, apr_array_header_t *gws, apr_array_header_t *names,
                    apr_array_header_t *kinds, int *dynamic)
{
    int g, i;

    *dynamic = 0;
    for (g = 0; g < gws->nelts; g++) {
        server_rec *s = APR_ARRAY_IDX(gws, g, server_rec *);
        llmgw_srv_cfg *c = srv_cfg(s);
        const llmgw_config_t *gw = c->gw;
        const llmgw_access_cfg_t *a = gw->access;
        llmgw_access_srv_t *as = apr_pcalloc(pconf, sizeof(*as));

        as->gw = gw;
        as->scope = c->rt ? c->rt->scope : "";
        as->backend_slot = apr_palloc(pconf, sizeof(int) * (apr_size_t)(gw->backends->nelts + 1));
        for (i = 0; i < gw->backends->nelts; i++) {
            const llmgw_backend_t *b = APR_ARRAY_IDX(gw->backends, i, const llmgw_backend_t *);
            as->backend_slot[b->index] = -1;
            if (b->type == LLMGW_BACKEND_POOL || !limited(&b->limits))
                continue;
            as->has_backend_limits = 1;
            as->backend_slot[b->index] = -2 - names->nelts; /* resolved after assign */
            APR_ARRAY_PUSH(names, const char *) =
                llmgw_slots_key(pconf, as->scope, apr_pstrcat(pconf, "b:", b->name, NULL));
            APR_ARRAY_PUSH(kinds, int) = LLMGW_LIMITS_KIND_BACKEND;
        }
        if (a) {
            as->entry_slot = apr_palloc(pconf, sizeof(int) * (apr_size_t)(a->entries->nelts + 1));
            for (i = 0; i < a->entries->nelts; i++) {
                const llmgw_access_entry_t *e =
                    APR_ARRAY_IDX(a->entries, i, const llmgw_access_entry_t *);
                as->entry_slot[i] = -2 - names->nelts;
                APR_ARRAY_PUSH(names, const char *) = entry_key(pconf, as->scope, e);
                APR_ARRAY_PUSH(kinds, int) = e->kind == LLMGW_ACCESS_KIND_KEY
                                                 ? LLMGW_LIMITS_KIND_KEY
                                                 : LLMGW_LIMITS_KIND_PRINCIPAL;
            }
            as->any_dynamic = a->any && (limited(&a->any->limits) || a->any->budget.nusd > 0);
            if (as->any_dynamic)
                *dynamic += LLMGW_LIMITS_DYNAMIC;
        }
        if (gw->ledger)
            as->ledger = ledger_for(pconf, s, gw->ledger);
        /* A gateway without any of it pays nothing per request. */
        c->access = a || as->has_backend_limits || gw->ledger || gw->pricing ? as : NULL;
    }
}

/* What the limits segment must hold this generation (limits_fit's need). */
typedef struct {
    apr_array_header_t *names;
    int dynamic, nrows;
} limits_need_t;

static int limits_fit(const void *base, apr_size_t size, const void *need_)
{
    const limits_need_t *need = need_;

    return llmgw_limits_fits(base, size, (const char *const *)need->names->elts, need->names->nelts,
                             need->dynamic, need->nrows);
}

static apr_status_t segment_get(server_rec *s, apr_array_header_t *names, int dynamic, int nrows,
                                int fresh, apr_shm_t **out)
{
    static const llmgw_shm_kind_t kind = {LIMITS_USERDATA_KEY, limits_fit, llmgw_limits_size,
                                          llmgw_limits_init};
    limits_need_t need = {names, dynamic, nrows};
    int capacity = names->nelts * 2 + dynamic + 16;
    llmgw_shm_outcome_t how;
    apr_status_t rv;

    rv = llmgw_shm_cfg_get(s, &kind, &need, capacity, capacity, nrows, fresh, out, &how);
    if (how.replaced)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     LLMGW_LOGNO(00270) "limits segment too small for %d keys, principals and "
                                        "limited backends; starting a new one (windows and "
                                        "counters restart; budgets are read again from the "
                                        "ledger)",
                     names->nelts);
    if (how.create_failed)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00271) "cannot create %" APR_SIZE_T_FMT
                                        " bytes of shared memory for the access limits",
                     how.size);
    return rv;
}

/* Hand every gateway (and the vhosts inheriting it) its slots. */
static void distribute(server_rec *main_s, apr_array_header_t *gws, const int *slots)
{
    llmgw_srv_cfg *mc = srv_cfg(main_s);
    server_rec *s;
    int g, i;

    for (g = 0; g < gws->nelts; g++) {
        llmgw_access_srv_t *as = srv_cfg(APR_ARRAY_IDX(gws, g, server_rec *))->access;
        if (!as)
            continue;
        for (i = 0; i < as->gw->backends->nelts; i++) {
            if (as->backend_slot[i] <= -2)
                as->backend_slot[i] = slots[-2 - as->backend_slot[i]];
        }
        for (i = 0; as->gw->access && i < as->gw->access->entries->nelts; i++)
            as->entry_slot[i] = slots[-2 - as->entry_slot[i]];
    }
    for (s = main_s->next; s; s = s->next) {
        llmgw_srv_cfg *c = srv_cfg(s);
        if (c && c->gw && c->gw == mc->gw)
            c->access = mc->access;
    }
}

/* Period totals from the ledger into every budgeted slot of gateways using @p l. */
static void refresh_budgets(apr_pool_t *p, ledger_t *l, llmgw_ledger_writer_t *w, int log_errors)
{
    apr_time_t now = apr_time_now();
    int period, i;

    for (period = LLMGW_PERIOD_DAY; period <= LLMGW_PERIOD_MONTH; period++) {
        apr_hash_t *totals = NULL;
        apr_array_header_t *todo = apr_array_make(p, 8, sizeof(int));
        apr_array_header_t *before = apr_array_make(p, 8, sizeof(apr_int64_t));
        apr_array_header_t *budgets = apr_array_make(p, 8, sizeof(const llmgw_budget_cfg_t *));
        apr_array_header_t *who = apr_array_make(p, 8, sizeof(const char *));
        const llmgw_access_srv_t *dyn_as = NULL;
        const char *msg = NULL;
        server_rec *v;

        /* What each slot had committed before the query (llmgw_limits.h "Budgets"). */
        for (v = ap_server_conf; v; v = v->next) {
            llmgw_srv_cfg *c = srv_cfg(v);
            const llmgw_access_srv_t *as = c ? c->access : NULL;
            const llmgw_access_cfg_t *a = as ? as->gw->access : NULL;
            if (!a || as->ledger != l ||
                (v != ap_server_conf && c->gw == srv_cfg(ap_server_conf)->gw))
                continue;
            for (i = 0; i < a->entries->nelts; i++) {
                const llmgw_access_entry_t *e =
                    APR_ARRAY_IDX(a->entries, i, const llmgw_access_entry_t *);
                if (e->budget.nusd <= 0 || (int)e->budget.period != period)
                    continue;
                APR_ARRAY_PUSH(todo, int) = as->entry_slot[i];
                APR_ARRAY_PUSH(before, apr_int64_t) = llmgw_limits_committed_total(
                    llmgw_limits_slot(limits_base, as->entry_slot[i]), &e->budget, now);
                APR_ARRAY_PUSH(budgets, const llmgw_budget_cfg_t *) = &e->budget;
                APR_ARRAY_PUSH(who, const char *) = strcmp(e->name, "*") ? e->name : NULL;
            }
            if (as->any_dynamic && (int)a->any->budget.period == period && a->any->budget.nusd > 0)
                dyn_as = as;
        }
        if (todo->nelts == 0 && !dyn_as)
            continue;
        if (llmgw_ledger_totals(p, w, l->cfg, llmgw_period_start((llmgw_period_e)period, now),
                                &totals, &msg) != APR_SUCCESS) {
            if (log_errors)
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, l->s,
                             LLMGW_LOGNO(00272) "cannot read this %s's spend from the ledger "
                                                "(%s): %s; budgets count only the spend of "
                                                "this server until it answers",
                             llmgw_period_name((llmgw_period_e)period), l->cfg->driver, msg);
            return;
        }
        for (i = 0; i < todo->nelts; i++) {
            const char *name = APR_ARRAY_IDX(who, i, const char *);
            apr_int64_t *t = name ? apr_hash_get(totals, name, APR_HASH_KEY_STRING) : NULL;
            llmgw_limits_set_base(llmgw_limits_slot(limits_base, APR_ARRAY_IDX(todo, i, int)),
                                  APR_ARRAY_IDX(budgets, i, const llmgw_budget_cfg_t *), now,
                                  t ? *t : 0, APR_ARRAY_IDX(before, i, apr_int64_t));
        }
        if (dyn_as) {
            /* Principals under "*" with spend this period: their own slots. */
            apr_hash_index_t *hi;
            const llmgw_access_cfg_t *a = dyn_as->gw->access;
            for (hi = apr_hash_first(p, totals); hi; hi = apr_hash_next(hi)) {
                const char *name = apr_hash_this_key(hi);
                int slot;
                if (apr_hash_get(a->by_name, name, APR_HASH_KEY_STRING))
                    continue;
                slot = llmgw_limits_dynamic(limits_base, dynamic_key(p, dyn_as->scope, name));
                if (slot >= 0)
                    llmgw_limits_set_base(
                        llmgw_limits_slot(limits_base, slot), &a->any->budget, now,
                        *(apr_int64_t *)apr_hash_this_val(hi),
                        llmgw_limits_committed_total(llmgw_limits_slot(limits_base, slot),
                                                     &a->any->budget, now));
            }
        }
    }
}

/* SQLite: the children (User) write the file and create its -wal/-shm beside it. */
static void sqlite_hand_over(apr_pool_t *p, server_rec *s, const char *path, int made_dir)
{
    const char *suffixes[] = {"", "-wal", "-shm", NULL};
    int i;

    if (geteuid() != 0)
        return;
    for (i = 0; suffixes[i]; i++) {
        const char *f = apr_pstrcat(p, path, suffixes[i], NULL);
        if (chown(f, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0 && i == 0)
            ap_log_error(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), s,
                         LLMGW_LOGNO(00273) "ledger: cannot give %s to httpd's User", f);
    }
    if (made_dir) {
        char *dir = apr_pstrdup(p, path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0)
                ap_log_error(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), s,
                             LLMGW_LOGNO(00274) "ledger: cannot give directory %s to httpd's "
                                                "User",
                             dir);
        }
    }
}

static void ledgers_prepare(apr_pool_t *ptemp, server_rec *s)
{
    int i;

    for (i = 0; i < ledgers->nelts; i++) {
        ledger_t *l = APR_ARRAY_IDX(ledgers, i, ledger_t *);
        const char *msg = NULL;
        int made_dir = 0;

        if (strcmp(l->cfg->driver, "sqlite3") == 0) {
            char *dir = apr_pstrdup(ptemp, l->cfg->params);
            char *slash = strrchr(dir, '/');
            apr_finfo_t fi;
            if (slash && slash != dir) {
                *slash = '\0';
                if (apr_stat(&fi, dir, APR_FINFO_TYPE, ptemp) != APR_SUCCESS) {
                    made_dir = apr_dir_make_recursive(dir,
                                                      APR_FPROT_UREAD | APR_FPROT_UWRITE |
                                                          APR_FPROT_UEXECUTE | APR_FPROT_GREAD |
                                                          APR_FPROT_GEXECUTE,
                                                      ptemp) == APR_SUCCESS;
                }
            }
        }
        if (llmgw_ledger_prepare(ptemp, l->cfg, &msg) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, l->s,
                         LLMGW_LOGNO(00275) "ledger (%s): %s; requests are answered and their "
                                            "rows wait until the database can be written",
                         l->cfg->driver, msg ? msg : "error");
            continue;
        }
        if (strcmp(l->cfg->driver, "sqlite3") == 0)
            sqlite_hand_over(ptemp, l->s, l->cfg->params, made_dir);
        refresh_budgets(ptemp, l, NULL, 1);
    }
}

int llmgw_access_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    apr_array_header_t *gws, *names, *kinds;
    int dynamic, nrows, limit = 0, *slots;
    apr_shm_t *shm;
    apr_status_t rv;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    apr_pool_cleanup_register(pconf, NULL, reset_statics, apr_pool_cleanup_null);
    ledgers = apr_array_make(pconf, 2, sizeof(ledger_t *));
    gws = gateways(ptemp, s);
    names = apr_array_make(ptemp, 16, sizeof(const char *));
    kinds = apr_array_make(ptemp, 16, sizeof(int));
    collect(pconf, gws, names, kinds, &dynamic);
    if (names->nelts == 0 && ledgers->nelts == 0)
        return OK;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1)
        limit = 16;
    nrows = llmgw_stats_rows_for(limit);
    apr_atomic_init(pconf);
    if (names->nelts > 0) {
        slots = apr_pcalloc(ptemp, sizeof(int) * (apr_size_t)(names->nelts + 1));
        if (segment_get(s, names, dynamic, nrows, 0, &shm) != APR_SUCCESS)
            return HTTP_INTERNAL_SERVER_ERROR;
        rv = llmgw_limits_assign(apr_shm_baseaddr_get(shm), (const char *const *)names->elts,
                                 (const int *)kinds->elts, names->nelts, dynamic, slots);
        if (rv == APR_ENOSPC && segment_get(s, names, dynamic, nrows, 1, &shm) == APR_SUCCESS)
            rv = llmgw_limits_assign(apr_shm_baseaddr_get(shm), (const char *const *)names->elts,
                                     (const int *)kinds->elts, names->nelts, dynamic, slots);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         LLMGW_LOGNO(00276) "cannot assign the access limits' slots");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        limits_base = apr_shm_baseaddr_get(shm);
        distribute(s, gws, slots);
    }
    else
        distribute(s, gws, NULL);
    ledgers_prepare(ptemp, s);
    return OK;
}

/* ---------------------------------------------------------------------- */
/* child_init: this child's row and its ledger writers                     */

static void ledger_log(void *baton, int level, apr_status_t rv, const char *msg)
{
    ledger_t *l = baton;

    if (level == 0)
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, l->s, LLMGW_LOGNO(00277) "ledger (%s): %s",
                     l->cfg->driver, msg);
    else
        ap_log_error(APLOG_MARK, APLOG_NOTICE, rv, l->s, LLMGW_LOGNO(00278) "ledger (%s): %s",
                     l->cfg->driver, msg);
}

static void ledger_committed(void *baton, const llmgw_ledger_row_t *row)
{
    if (row->slot >= 0 && row->budget)
        llmgw_limits_committed(llmgw_limits_slot(limits_base, row->slot), row->budget, row->time,
                               row->cost);
}

/* The writer thread, connected: one child in the whole server refreshes per interval. */
static void ledger_refresh(void *baton, llmgw_ledger_writer_t *w)
{
    ledger_t *l = baton;
    apr_pool_t *p;

    if (!limits_base || !llmgw_limits_refresh_claim(limits_base, llmgw_stats_time_now().mono))
        return;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return;
    refresh_budgets(p, l, w, 0);
    apr_pool_destroy(p);
}

void llmgw_access_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i;

    if (limits_base)
        limits_row = llmgw_limits_child_claim(limits_base, (apr_uint32_t)getpid());
    for (i = 0; ledgers && i < ledgers->nelts; i++) {
        ledger_t *l = APR_ARRAY_IDX(ledgers, i, ledger_t *);
        llmgw_ledger_hooks_t hooks = {ledger_log, ledger_committed, ledger_refresh, l};
        apr_status_t rv = llmgw_ledger_writer_start(&l->writer, pchild, l->cfg, &hooks);
        if (rv != APR_SUCCESS)
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         LLMGW_LOGNO(00279) "cannot start the ledger writer of this child");
    }
}

void llmgw_access_child_status(server_rec *s, pid_t pid, ap_generation_t gen, int slot,
                               mpm_child_status state)
{
    int released;

    if (state != MPM_CHILD_EXITED || !limits_base || pid <= 0)
        return;
    released = llmgw_limits_child_release(limits_base, (apr_uint32_t)pid);
    if (released > 0)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     LLMGW_LOGNO(00280) "child %" APR_PID_T_FMT
                                        " ended with %d admitted request(s) in flight; their "
                                        "concurrency and reserved spend are given back",
                     pid, released);
}

/* ---------------------------------------------------------------------- */
/* Refusals                                                                 */

static int refuse(request_rec *r, const llmgw_error_t *e)
{
    apr_size_t len;
    const char *body = llmgw_glue_error_json(r, e, &len); /* in the client's dialect */

    apr_table_setn(r->subprocess_env, "LLMGW_ERROR", e->code ? e->code : "refused");
    r->status = e->status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/* OpenAI's duration form of the x-ratelimit-reset-* headers: "1s", "6m0s", "250ms". */
static const char *reset_text(apr_pool_t *p, apr_interval_time_t t)
{
    apr_int64_t ms = (t + 999) / 1000;

    if (ms < 1000)
        return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", ms);
    if (ms < 60000)
        return apr_psprintf(p, "%" APR_INT64_T_FMT "s", (ms + 999) / 1000);
    return apr_psprintf(p, "%" APR_INT64_T_FMT "m%" APR_INT64_T_FMT "s", ms / 60000,
                        (ms % 60000 + 999) / 1000);
}

/* Set once per request (admission), so added without a search for an earlier value. */
static void ratelimit_headers(request_rec *r, const llmgw_limits_verdict_t *v)
{
    apr_table_t *h = r->err_headers_out;

    if (v->limit_requests >= 0) {
        apr_table_addn(h, "x-ratelimit-limit-requests",
                       apr_off_t_toa(r->pool, (apr_off_t)v->limit_requests));
        apr_table_addn(h, "x-ratelimit-remaining-requests",
                       apr_off_t_toa(r->pool, (apr_off_t)v->remaining_requests));
        apr_table_addn(h, "x-ratelimit-reset-requests", reset_text(r->pool, v->reset_requests));
    }
    if (v->limit_tokens >= 0) {
        apr_table_addn(h, "x-ratelimit-limit-tokens",
                       apr_off_t_toa(r->pool, (apr_off_t)v->limit_tokens));
        apr_table_addn(h, "x-ratelimit-remaining-tokens",
                       apr_off_t_toa(r->pool, (apr_off_t)v->remaining_tokens));
        apr_table_addn(h, "x-ratelimit-reset-tokens", reset_text(r->pool, v->reset_tokens));
    }
}

static void retry_after(request_rec *r, apr_interval_time_t wait)
{
    if (wait < 0)
        return;
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                (apr_int64_t)((wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC)));
}

static int refuse_limited(request_rec *r, const char *who, const llmgw_limits_cfg_t *lim,
                          const llmgw_limits_verdict_t *v, apr_int64_t tokens)
{
    static const char *const what[] = {"requests per minute (RPM)", "tokens per minute (TPM)",
                                       "concurrent requests"};
    apr_int64_t limit = v->refused == LLMGW_REFUSED_RPM   ? lim->rpm
                        : v->refused == LLMGW_REFUSED_TPM ? lim->tpm
                                                          : lim->concurrent;
    const char *type = v->refused == LLMGW_REFUSED_TPM ? "tokens" : "requests";
    llmgw_error_t *e;

    if (v->refused == LLMGW_REFUSED_BUDGET) {
        e = llmgw_error_make(r->pool, 429, "insufficient_quota", "insufficient_quota", NULL,
                             "\"%s\" has used its budget of %s USD for this %s; it is available "
                             "again when the next %s starts.",
                             who, llmgw_usd_format(r->pool, v->budget), "period", "period");
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00281) "\"%s\": budget used (%s of %s USD): refused", who,
                      llmgw_usd_format(r->pool, v->spent), llmgw_usd_format(r->pool, v->budget));
        return refuse(r, e);
    }
    if (v->refused == LLMGW_REFUSED_TPM && v->retry_after < 0)
        e = llmgw_error_make(r->pool, 429, type, "rate_limit_exceeded", NULL,
                             "Request too large for \"%s\" on tokens per minute (TPM): Limit "
                             "%" APR_INT64_T_FMT ", Requested %" APR_INT64_T_FMT
                             ". Send fewer tokens or a smaller max_tokens.",
                             who, limit, tokens);
    else
        e = llmgw_error_make(r->pool, 429, type, "rate_limit_exceeded", NULL,
                             "Rate limit reached for \"%s\" on %s: Limit %" APR_INT64_T_FMT
                             ". Please try again in %s.",
                             who, what[v->refused], limit,
                             reset_text(r->pool, v->retry_after > 0 ? v->retry_after : 0));
    retry_after(r, v->retry_after);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  LLMGW_LOGNO(00282) "\"%s\": %s limit reached: refused", who, what[v->refused]);
    return refuse(r, e);
}

/* ---------------------------------------------------------------------- */
/* Identify and admit                                                       */

static access_req_t *state_make(request_rec *r, llmgw_access_srv_t *as)
{
    access_req_t *st = apr_pcalloc(r->pool, sizeof(*st));

    st->r = r;
    st->as = as;
    st->slot = -1;
    st->hold.slot = -1;
    st->attempt.slot = -1;
    st->cost = -1;
    ap_set_module_config(r->request_config, &llmgw_module, st);
    return st;
}

static const char *principal_of(request_rec *r, const llmgw_access_cfg_t *a)
{
    if (a->source == LLMGW_SOURCE_HEADER)
        return apr_table_get(r->headers_in, a->source_name);
    /* REMOTE_USER is r->user: httpd only copies it into the environment
     * for CGI-like handlers (ap_add_common_vars). */
    if (strcmp(a->source_name, "REMOTE_USER") == 0)
        return r->user;
    return apr_table_get(r->subprocess_env, a->source_name);
}

static int unauthorized(request_rec *r, const char *msg)
{
    return refuse(r, llmgw_error_make(r->pool, 401, "invalid_request_error", "invalid_api_key",
                                      NULL, "%s", msg));
}

/* The slot of the request's entry: its own, or a principal's dynamic one under "*". */
static int entry_slot(request_rec *r, access_req_t *st, int listed)
{
    const llmgw_access_entry_t *e = st->entry;
    int slot = st->as->entry_slot ? st->as->entry_slot[e->index] : -1;
    int dyn;

    if (listed || e->kind == LLMGW_ACCESS_KIND_KEY || !st->as->any_dynamic)
        return slot;
    dyn = llmgw_limits_dynamic(limits_base, dynamic_key(r->pool, st->as->scope, st->who));
    if (dyn >= 0)
        return dyn;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  LLMGW_LOGNO(00283) "no free limits slot for principal \"%s\" (at most %d "
                                     "principals under \"*\"): it shares the limits of \"*\"",
                  ap_escape_logitem(r->pool, st->who), LLMGW_LIMITS_DYNAMIC);
    return slot;
}

/* The connection's memory of its last key (one per connection; an HTTP/2 stream has its own). */
static llmgw_access_key_memo_t *key_memo(conn_rec *c)
{
    void *memo = NULL;

    apr_pool_userdata_get(&memo, "llmgw-access-key-memo", c->pool);
    if (!memo) {
        memo = apr_pcalloc(c->pool, sizeof(llmgw_access_key_memo_t));
        apr_pool_userdata_setn(memo, "llmgw-access-key-memo", NULL, c->pool);
    }
    return memo;
}

int llmgw_access_glue_identify(request_rec *r, const llmgw_route_t *route)
{
    llmgw_srv_cfg *c = srv_cfg(r->server);
    llmgw_access_srv_t *as = c ? c->access : NULL;
    const llmgw_access_cfg_t *a = as ? as->gw->access : NULL;
    access_req_t *st;
    int listed = 0;

    if (!as)
        return DECLINED;
    st = state_make(r, as);
    if (!a)
        return DECLINED;
    if (a->mode == LLMGW_ACCESS_KEYS) {
        const char *key =
            llmgw_access_key_from_header(r->pool, apr_table_get(r->headers_in, "Authorization"), 0);
        if (!key)
            key =
                llmgw_access_key_from_header(r->pool, apr_table_get(r->headers_in, "x-api-key"), 1);
        if (!key)
            return unauthorized(r, "You didn't provide an API key. You need to provide your API "
                                   "key in an Authorization header using Bearer auth (i.e. "
                                   "Authorization: Bearer YOUR_KEY).");
        st->entry =
            llmgw_access_find_key_memo(a, key, key_memo(r->connection), r->connection->pool);
        if (!st->entry)
            return unauthorized(r, "Incorrect API key provided.");
        st->who = st->entry->name;
    }
    else {
        const char *who = principal_of(r, a);
        if (!who || !*who)
            return unauthorized(r, apr_psprintf(r->pool,
                                                "The request carries no identity (%s:%s is not "
                                                "set by any authentication of this location).",
                                                a->source == LLMGW_SOURCE_ENV ? "env" : "header",
                                                a->source_name));
        /* It is the ledger's name column and the key of its counters: kept whole. */
        if (strlen(who) >= sizeof(((llmgw_ledger_row_t *)0)->name))
            return unauthorized(r, "The request's identity is too long for the gateway.");
        st->entry = llmgw_access_find_principal(a, who, &listed);
        if (!st->entry)
            return unauthorized(r, "This identity may not use the gateway.");
        st->who = apr_pstrdup(r->pool, who);
    }
    apr_table_setn(r->subprocess_env, "LLMGW_KEY", st->who);
    if (llmgw_access_check_expiry(st->entry, r->request_time) == LLMGW_ACCESS_EXPIRED) {
        char date[APR_RFC822_DATE_LEN];
        apr_rfc822_date(date, st->entry->expires);
        return unauthorized(
            r, apr_psprintf(r->pool, "The API key \"%s\" expired on %s.", st->entry->name, date));
    }
    st->slot = entry_slot(r, st, listed);
    if (!llmgw_access_route_allowed(st->entry, route->name))
        return refuse(
            r, llmgw_error_make(r->pool, 403, "invalid_request_error", "route_not_allowed", NULL,
                                "\"%s\" may not use route \"%s\".", st->who, route->name));
    return DECLINED;
}

static apr_status_t request_done(void *data);

int llmgw_access_glue_admit(request_rec *r, const llmgw_route_t *route, const void *json_body,
                            const char *model)
{
    access_req_t *st = req_state(r);
    const llmgw_access_entry_t *e;
    const llmgw_price_t *price;
    llmgw_limits_verdict_t v;
    apr_int64_t cost;
    apr_status_t rv;

    if (!st)
        return DECLINED;
    st->requested_model = model;
    st->route = route->name;
    llmgw_access_estimate(json_body, route->api, &st->est_prompt, &st->est_output);
    /* From here on the request is settled (and written to the ledger) when it ends. */
    apr_pool_pre_cleanup_register(r->pool, st, request_done);
    st->admitted = 1;
    if (!(e = st->entry))
        return DECLINED;
    if (!llmgw_access_model_allowed(e, model)) {
        st->admitted = 0;
        if (!model)
            return refuse(r, llmgw_error_make(r->pool, 403, "invalid_request_error",
                                              "model_not_allowed", "model",
                                              "\"%s\" must name a model it may use.", st->who));
        return refuse(r, llmgw_error_make(r->pool, 403, "invalid_request_error",
                                          "model_not_allowed", "model",
                                          "\"%s\" may not use model \"%s\".", st->who, model));
    }
    if (st->slot < 0)
        return DECLINED;
    price = llmgw_pricing_find(st->as->gw->pricing, model);
    cost = price ? llmgw_pricing_estimate(price, st->est_prompt, st->est_output) : 0;
    rv = llmgw_limits_admit(llmgw_limits_slot(limits_base, st->slot), limits_row, &e->limits,
                            &e->budget, llmgw_stats_time_now(), st->est_prompt + st->est_output,
                            cost, &st->hold, &v);
    ratelimit_headers(r, &v);
    if (rv != APR_SUCCESS) {
        st->admitted = 0;
        return refuse_limited(r, st->who, &e->limits, &v, st->est_prompt + st->est_output);
    }
    return DECLINED;
}

/* ---------------------------------------------------------------------- */
/* Usage, attempts, settlement                                             */

void llmgw_access_glue_usage(request_rec *r, const void *usage, const char *model)
{
    access_req_t *st = req_state(r);
    const llmgw_usage_t *u = usage;
    const llmgw_price_t *price;

    if (!st || !u->present)
        return;
    st->have_usage = 1;
    st->usage = *u;
    st->model = model;
    price = llmgw_pricing_for(st->as->gw->pricing, model, st->sent_model);
    if (!price) {
        st->cost = -1;
        if (st->as->gw->pricing) {
            apr_table_setn(r->subprocess_env, "LLMGW_COST", "unpriced");
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          LLMGW_LOGNO(00284) "model \"%s\" has no price in pricing:; its cost "
                                             "is not counted",
                          ap_escape_logitem(r->pool, model ? model : "-"));
        }
        return;
    }
    st->cost = llmgw_pricing_cost(price, u);
    apr_table_setn(r->subprocess_env, "LLMGW_COST", llmgw_usd_format(r->pool, st->cost));
    apr_table_setn(r->err_headers_out, "x-llmgw-cost", llmgw_usd_format(r->pool, st->cost));
}

static apr_int64_t attempt_tokens(const access_req_t *st)
{
    return st->est_prompt + st->est_output;
}

void llmgw_access_glue_attempt_begin(request_rec *r, const llmgw_backend_t *b, const char *model)
{
    access_req_t *st = req_state(r);
    int slot;

    if (!st)
        return;
    st->sent_model = model;
    st->backend = b->name;
    st->attempts++;
    slot = st->as->backend_slot ? st->as->backend_slot[b->index] : -1;
    if (slot >= 0)
        llmgw_limits_backend_take(llmgw_limits_slot(limits_base, slot), llmgw_stats_time_now(),
                                  attempt_tokens(st), &st->attempt);
}

void llmgw_access_glue_attempt_end(request_rec *r, const llmgw_backend_t *b, const void *usage)
{
    access_req_t *st = req_state(r);
    const llmgw_usage_t *u = usage;

    if (!st || st->attempt.slot < 0)
        return;
    /* A failed attempt is not usage: its tokens go back (the request stays counted). */
    llmgw_limits_settle(llmgw_limits_slot(limits_base, st->attempt.slot), NULL, &st->attempt,
                        llmgw_stats_time_now(), NULL, u && u->present ? u->prompt_tokens : 0,
                        u && u->present ? u->completion_tokens : 0, -1);
}

static int backend_full(void *baton, const llmgw_backend_t *b, apr_interval_time_t *wait)
{
    access_req_t *st = baton;
    int slot = st->as->backend_slot[b->index];

    if (slot < 0)
        return 0;
    return llmgw_limits_backend_full(llmgw_limits_slot(limits_base, slot), &b->limits,
                                     llmgw_stats_time_now(), attempt_tokens(st), wait);
}

void llmgw_access_glue_pool_full(request_rec *r, llmgw_pool_full_fn *fn, void **baton)
{
    access_req_t *st = req_state(r);

    if (!st || !st->as->has_backend_limits || !limits_base)
        return;
    *fn = backend_full;
    *baton = st;
}

static void copy(char *dst, apr_size_t n, const char *v)
{
    apr_cpystrn(dst, v ? v : "", n);
}

/*
 * The request is over, whatever happened (r->pool pre-cleanup, after the
 * access log line): settle what it held and write its ledger row.
 *
 *   usage reported       tokens and cost as the provider said
 *   no usage, content    a stream cut (or its client gone) after content
 *   reached the client   reached the client: the provider billed it, so
 *                        the reservation counts (tokens and estimated cost)
 *   otherwise            nothing was used: everything is refunded
 */
static apr_status_t request_done(void *data)
{
    access_req_t *st = data;
    request_rec *r = st->r;
    llmgw_stats_time_t now = llmgw_stats_time_now();
    apr_int64_t prompt = 0, completion = 0, cached = 0, cost = -1;
    int delivered = r->sent_bodyct && (r->status == HTTP_OK || r->status == 499);
    const llmgw_budget_cfg_t *budget = st->entry ? &st->entry->budget : NULL;
    ledger_t *l = st->as->ledger;

    if (st->attempt.slot >= 0)
        llmgw_limits_settle(llmgw_limits_slot(limits_base, st->attempt.slot), NULL, &st->attempt,
                            now, NULL, 0, 0, -1);
    if (!st->admitted)
        return APR_SUCCESS;
    if (st->have_usage) {
        prompt = st->usage.prompt_tokens;
        completion = st->usage.completion_tokens;
        cached = st->usage.cached_tokens;
        cost = st->cost;
    }
    else if (delivered) {
        const llmgw_price_t *price =
            llmgw_pricing_for(st->as->gw->pricing, st->sent_model, st->requested_model);
        prompt = st->est_prompt;
        completion = st->est_output;
        cost = price ? llmgw_pricing_estimate(price, prompt, completion) : -1;
    }
    if (st->hold.slot >= 0)
        llmgw_limits_settle(llmgw_limits_slot(limits_base, st->hold.slot), limits_row, &st->hold,
                            now, budget, prompt, completion, cost);
    if (l && l->writer) {
        llmgw_ledger_row_t row;

        memset(&row, 0, sizeof(row));
        row.time = now.wall;
        row.kind = st->entry ? st->entry->kind : LLMGW_ACCESS_KIND_KEY;
        apr_cpystrn(row.name, st->who ? st->who : "-", sizeof(row.name));
        copy(row.route, sizeof(row.route), st->route);
        copy(row.backend, sizeof(row.backend), st->backend);
        copy(row.requested_model, sizeof(row.requested_model), st->requested_model);
        copy(row.model, sizeof(row.model), st->model ? st->model : st->sent_model);
        copy(row.error, sizeof(row.error), apr_table_get(r->subprocess_env, "LLMGW_ERROR"));
        row.prompt_tokens = st->have_usage || delivered ? prompt : -1;
        row.cached_tokens = st->have_usage ? cached : -1;
        row.completion_tokens = st->have_usage || delivered ? completion : -1;
        row.cost = cost;
        row.status = r->status;
        row.attempts = st->attempts;
        row.slot = budget && budget->nusd > 0 ? st->slot : -1;
        row.budget = budget;
        if (llmgw_ledger_submit(l->writer, &row) == APR_EAGAIN)
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          LLMGW_LOGNO(00286) "ledger queue full (%s waits for its database): "
                                             "this request's row is lost",
                          l->cfg->driver);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Status                                                                   */

typedef struct {
    const char *name;
    int listed;
    const llmgw_access_entry_t *e;
    llmgw_limits_view_t view;
    llmgw_limits_verdict_t v;
} entry_view_t;

static apr_array_header_t *entry_views(request_rec *r, const llmgw_access_srv_t *as)
{
    const llmgw_access_cfg_t *a = as->gw->access;
    apr_array_header_t *out = apr_array_make(r->pool, 8, sizeof(entry_view_t));
    llmgw_stats_time_t now = llmgw_stats_time_now();
    apr_size_t plen = strlen("d:");
    const char *suffix = *as->scope ? apr_pstrcat(r->pool, "@", as->scope, NULL) : "";
    int i;

    for (i = 0; i < a->entries->nelts; i++) {
        entry_view_t *ev = apr_array_push(out);
        ev->e = APR_ARRAY_IDX(a->entries, i, const llmgw_access_entry_t *);
        ev->name = ev->e->name;
        ev->listed = 1;
        llmgw_limits_view(limits_base, as->entry_slot[i], &ev->e->budget, now, &ev->view);
        llmgw_limits_peek(llmgw_limits_slot(limits_base, as->entry_slot[i]), &ev->e->limits,
                          &ev->e->budget, now, &ev->v);
    }
    if (!as->any_dynamic)
        return out;
    for (i = 0; i < LLMGW_LIMITS_DYNAMIC * 64; i++) {
        llmgw_limits_slot_t *s = llmgw_limits_slot(limits_base, i);
        apr_size_t n, sl = strlen(suffix);
        entry_view_t *ev;
        if (!s)
            break;
        if (apr_atomic_read32(&s->state) != LLMGW_LIMITS_DYNAMIC_SLOT ||
            strncmp(s->name, "d:", plen) != 0)
            continue;
        n = strnlen(s->name, LLMGW_LIMITS_NAME_MAX);
        if (n < plen + sl || strcmp(s->name + n - sl, suffix) != 0 || (!sl && strchr(s->name, '@')))
            continue;
        ev = apr_array_push(out);
        ev->e = a->any;
        ev->name = apr_pstrndup(r->pool, s->name + plen, n - plen - sl);
        ev->listed = 0;
        llmgw_limits_view(limits_base, i, &a->any->budget, now, &ev->view);
        llmgw_limits_peek(s, &a->any->limits, &a->any->budget, now, &ev->v);
    }
    return out;
}

static json_t *limit_or_null(apr_int64_t v)
{
    return v > 0 ? json_integer((json_int_t)v) : json_null();
}

static json_t *entry_json(request_rec *r, const entry_view_t *ev)
{
    const llmgw_limits_slot_t *s = &ev->view.s;
    const llmgw_access_entry_t *e = ev->e;
    json_t *o = json_object();
    json_t *refused = json_object();
    static const char *const reasons[] = {"rpm", "tpm", "concurrent", "budget"};
    int i;

    json_object_set_new(o, "name", json_string(ev->name));
    json_object_set_new(o, "kind", json_string(llmgw_ledger_kind_name(e->kind)));
    if (e->kind == LLMGW_ACCESS_KIND_PRINCIPAL)
        json_object_set_new(o, "listed", json_boolean(ev->listed));
    json_object_set_new(o, "requests", json_integer(s->requests));
    for (i = 0; i < LLMGW_REFUSED_COUNT; i++)
        json_object_set_new(refused, reasons[i], json_integer(s->refused[i]));
    json_object_set_new(o, "refused", refused);
    json_object_set_new(o, "tokens",
                        json_pack("{s:I,s:I}", "prompt", (json_int_t)s->prompt_tokens, "completion",
                                  (json_int_t)s->completion_tokens));
    json_object_set_new(o, "inflight", json_integer(s->concurrent));
    json_object_set_new(o, "cost_usd", json_real((double)s->cost_total / 1e9));
    json_object_set_new(o, "limits",
                        json_pack("{s:o,s:o,s:o}", "rpm", limit_or_null(e->limits.rpm), "tpm",
                                  limit_or_null(e->limits.tpm), "concurrent",
                                  limit_or_null(e->limits.concurrent)));
    json_object_set_new(
        o, "remaining",
        json_pack("{s:o,s:o,s:o}", "requests",
                  e->limits.rpm > 0 ? json_integer(ev->v.remaining_requests) : json_null(),
                  "tokens", e->limits.tpm > 0 ? json_integer(ev->v.remaining_tokens) : json_null(),
                  "concurrent",
                  e->limits.concurrent > 0 ? json_integer(e->limits.concurrent - s->concurrent)
                                           : json_null()));
    json_object_set_new(o, "reset_requests_ms",
                        json_integer((json_int_t)(ev->v.reset_requests / 1000)));
    json_object_set_new(o, "reset_tokens_ms",
                        json_integer((json_int_t)(ev->v.reset_tokens / 1000)));
    if (e->budget.nusd > 0) {
        apr_int64_t left = e->budget.nusd - ev->view.spent - s->reserved;
        json_object_set_new(o, "budget",
                            json_pack("{s:f,s:s,s:f,s:f,s:f}", "usd", (double)e->budget.nusd / 1e9,
                                      "period", llmgw_period_name(e->budget.period), "spent_usd",
                                      (double)ev->view.spent / 1e9, "inflight_usd",
                                      (double)s->reserved / 1e9, "remaining_usd",
                                      (double)(left > 0 ? left : 0) / 1e9));
    }
    else
        json_object_set_new(o, "budget", json_null());
    if (e->expires > 0)
        json_object_set_new(o, "expires", json_integer((json_int_t)apr_time_sec(e->expires)));
    return o;
}

static const char *prom_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i, j = 0;
    char *out = apr_palloc(p, 2 * n + 1);

    for (i = 0; i < n; i++) {
        if (s[i] == '\\' || s[i] == '"') {
            out[j++] = '\\';
            out[j++] = s[i];
        }
        else if (s[i] == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        }
        else
            out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

static const char *html_escape(apr_pool_t *p, const char *s)
{
    return ap_escape_html2(p, s, 1);
}

static const char *status_prometheus(request_rec *r, apr_array_header_t *views, const char *label)
{
    apr_pool_t *p = r->pool;
    const char *t = "";
    static const char *const reasons[] = {"rpm", "tpm", "concurrent", "budget"};
    int i, j;
    /* Principals under "*" are summed into label "*": labels stay bounded by the config. */
    entry_view_t agg;
    int have_agg = 0;
    apr_array_header_t *rows = apr_array_make(p, views->nelts, sizeof(entry_view_t *));

    memset(&agg, 0, sizeof(agg));
    for (i = 0; i < views->nelts; i++) {
        entry_view_t *ev = &APR_ARRAY_IDX(views, i, entry_view_t);
        if (ev->listed && strcmp(ev->name, "*") != 0) {
            APR_ARRAY_PUSH(rows, entry_view_t *) = ev;
            continue;
        }
        if (!have_agg) {
            agg = *ev;
            agg.name = "*";
            have_agg = 1;
            continue;
        }
        agg.view.s.requests += ev->view.s.requests;
        for (j = 0; j < LLMGW_REFUSED_COUNT; j++)
            agg.view.s.refused[j] += ev->view.s.refused[j];
        agg.view.s.prompt_tokens += ev->view.s.prompt_tokens;
        agg.view.s.completion_tokens += ev->view.s.completion_tokens;
        agg.view.s.cost_total += ev->view.s.cost_total;
        agg.view.s.concurrent += ev->view.s.concurrent;
        agg.view.spent += ev->view.spent;
    }
    if (have_agg)
        APR_ARRAY_PUSH(rows, entry_view_t *) = &agg;
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_requests_total Requests admitted, per key or principal.\n"
                    "# TYPE llmgw_access_requests_total counter\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        t = apr_psprintf(p, "%sllmgw_access_requests_total{%s=\"%s\"} %" APR_INT64_T_FMT "\n", t,
                         label, prom_escape(p, ev->name), ev->view.s.requests);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_refused_total Requests refused by a limit or budget.\n"
                    "# TYPE llmgw_access_refused_total counter\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        for (j = 0; j < LLMGW_REFUSED_COUNT; j++)
            t = apr_psprintf(p,
                             "%sllmgw_access_refused_total{%s=\"%s\",reason=\"%s\"} "
                             "%" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), reasons[j], ev->view.s.refused[j]);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_tokens_total Tokens used, per key or principal.\n"
                    "# TYPE llmgw_access_tokens_total counter\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        t = apr_psprintf(p,
                         "%sllmgw_access_tokens_total{%s=\"%s\",kind=\"prompt\"} %" APR_INT64_T_FMT
                         "\nllmgw_access_tokens_total{%s=\"%s\",kind=\"completion\"} "
                         "%" APR_INT64_T_FMT "\n",
                         t, label, prom_escape(p, ev->name), ev->view.s.prompt_tokens, label,
                         prom_escape(p, ev->name), ev->view.s.completion_tokens);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_cost_usd_total Cost of the answers since the counters "
                    "started.\n# TYPE llmgw_access_cost_usd_total counter\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        t = apr_psprintf(p, "%sllmgw_access_cost_usd_total{%s=\"%s\"} %s\n", t, label,
                         prom_escape(p, ev->name), llmgw_usd_format(p, ev->view.s.cost_total));
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_inflight Admitted requests in flight.\n"
                    "# TYPE llmgw_access_inflight gauge\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        t = apr_psprintf(p, "%sllmgw_access_inflight{%s=\"%s\"} %" APR_INT64_T_FMT "\n", t, label,
                         prom_escape(p, ev->name), ev->view.s.concurrent);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_limit Configured limits (rpm, tpm, concurrent).\n"
                    "# TYPE llmgw_access_limit gauge\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        const llmgw_limits_cfg_t *l = &ev->e->limits;
        if (ev != &agg && l->rpm > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_limit{%s=\"%s\",limit=\"rpm\"} %" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), l->rpm);
        if (ev != &agg && l->tpm > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_limit{%s=\"%s\",limit=\"tpm\"} %" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), l->tpm);
        if (ev != &agg && l->concurrent > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_limit{%s=\"%s\",limit=\"concurrent\"} "
                             "%" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), l->concurrent);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_remaining What is left of each limit in its window.\n"
                    "# TYPE llmgw_access_remaining gauge\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        const llmgw_limits_cfg_t *l = &ev->e->limits;
        if (ev == &agg)
            continue;
        if (l->rpm > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_remaining{%s=\"%s\",limit=\"rpm\"} "
                             "%" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), ev->v.remaining_requests);
        if (l->tpm > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_remaining{%s=\"%s\",limit=\"tpm\"} "
                             "%" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name), ev->v.remaining_tokens);
        if (l->concurrent > 0)
            t = apr_psprintf(p,
                             "%sllmgw_access_remaining{%s=\"%s\",limit=\"concurrent\"} "
                             "%" APR_INT64_T_FMT "\n",
                             t, label, prom_escape(p, ev->name),
                             l->concurrent - ev->view.s.concurrent);
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_spend_usd Spend of the current budget period.\n"
                    "# TYPE llmgw_access_spend_usd gauge\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        if (ev->e->budget.nusd > 0 && ev != &agg)
            t = apr_psprintf(p, "%sllmgw_access_spend_usd{%s=\"%s\",period=\"%s\"} %s\n", t, label,
                             prom_escape(p, ev->name), llmgw_period_name(ev->e->budget.period),
                             llmgw_usd_format(p, ev->view.spent));
    }
    t = apr_pstrcat(p, t,
                    "# HELP llmgw_access_budget_usd The budget of the period.\n"
                    "# TYPE llmgw_access_budget_usd gauge\n",
                    NULL);
    for (i = 0; i < rows->nelts; i++) {
        entry_view_t *ev = APR_ARRAY_IDX(rows, i, entry_view_t *);
        if (ev->e->budget.nusd > 0 && ev != &agg)
            t = apr_psprintf(p, "%sllmgw_access_budget_usd{%s=\"%s\",period=\"%s\"} %s\n", t, label,
                             prom_escape(p, ev->name), llmgw_period_name(ev->e->budget.period),
                             llmgw_usd_format(p, ev->e->budget.nusd));
    }
    return t;
}

static const char *limit_cell(apr_pool_t *p, apr_int64_t limit, apr_int64_t remaining)
{
    if (limit <= 0)
        return "&ndash;";
    return apr_psprintf(p, "%" APR_INT64_T_FMT " of %" APR_INT64_T_FMT, remaining, limit);
}

static const char *status_html(request_rec *r, apr_array_header_t *views, const char *label)
{
    apr_pool_t *p = r->pool;
    const char *t = apr_psprintf(
        p,
        "<h2>Access</h2>\n<table class=\"access\">\n<tr><th>%s</th><th>requests</th>"
        "<th>refused</th><th>prompt tokens</th><th>completion tokens</th><th>in flight</th>"
        "<th>requests left</th><th>tokens left</th><th>spend (period)</th><th>budget</th></tr>\n",
        label);
    int i, j;

    for (i = 0; i < views->nelts; i++) {
        entry_view_t *ev = &APR_ARRAY_IDX(views, i, entry_view_t);
        const llmgw_limits_cfg_t *l = &ev->e->limits;
        apr_int64_t refused = 0;
        for (j = 0; j < LLMGW_REFUSED_COUNT; j++)
            refused += ev->view.s.refused[j];
        t = apr_psprintf(
            p,
            "%s<tr><td>%s</td><td>%" APR_INT64_T_FMT "</td><td>%" APR_INT64_T_FMT
            "</td><td>%" APR_INT64_T_FMT "</td><td>%" APR_INT64_T_FMT "</td><td>%" APR_INT64_T_FMT
            "</td><td>%s</td><td>%s</td><td>%s USD</td><td>%s</td></tr>\n",
            t, html_escape(p, ev->name), ev->view.s.requests, refused, ev->view.s.prompt_tokens,
            ev->view.s.completion_tokens, ev->view.s.concurrent,
            limit_cell(p, l->rpm, ev->v.remaining_requests),
            limit_cell(p, l->tpm, ev->v.remaining_tokens),
            llmgw_usd_format(p, ev->e->budget.nusd > 0 ? ev->view.spent : ev->view.s.cost_total),
            ev->e->budget.nusd > 0
                ? apr_psprintf(p, "%s USD per %s", llmgw_usd_format(p, ev->e->budget.nusd),
                               llmgw_period_name(ev->e->budget.period))
                : "&ndash;");
    }
    return apr_pstrcat(p, t, "</table>\n", NULL);
}

const char *llmgw_access_glue_status(request_rec *r, int json, int prometheus, const char *body,
                                     apr_size_t *len)
{
    llmgw_srv_cfg *c = srv_cfg(r->server);
    const llmgw_access_srv_t *as = c ? c->access : NULL;
    const llmgw_access_cfg_t *a = as ? as->gw->access : NULL;
    apr_array_header_t *views;
    const char *label, *extra;
    apr_size_t n = *len;

    if (!a || !limits_base || !body)
        return body;
    views = entry_views(r, as);
    label = a->mode == LLMGW_ACCESS_KEYS ? "key" : "principal";
    if (json) {
        json_t *o = json_object(), *list = json_array();
        int i;
        for (i = 0; i < views->nelts; i++)
            json_array_append_new(list, entry_json(r, &APR_ARRAY_IDX(views, i, entry_view_t)));
        json_object_set_new(o, "mode",
                            json_string(a->mode == LLMGW_ACCESS_KEYS ? "keys" : "principal"));
        json_object_set_new(o, "entries", list);
        if (as->ledger && as->ledger->writer) {
            apr_uint64_t written, waiting, lost;
            llmgw_ledger_counts(as->ledger->writer, &written, &waiting, &lost);
            json_object_set_new(o, "ledger",
                                json_pack("{s:s,s:I,s:I,s:I}", "driver", as->ledger->cfg->driver,
                                          "written", (json_int_t)written, "waiting",
                                          (json_int_t)waiting, "lost", (json_int_t)lost));
        }
        llmgw_json_pool_own(r->pool, o);
        extra = llmgw_json_dump(r->pool, o, NULL);
        /* Into the statistics object: {"generation":...,"access":{...}} */
        while (n > 0 && body[n - 1] != '}')
            n--;
        if (n == 0)
            return body;
        body = apr_pstrcat(r->pool, apr_pstrndup(r->pool, body, n - 1), ",\"access\":", extra, "}",
                           NULL);
    }
    else if (prometheus)
        body = apr_pstrcat(r->pool, body, status_prometheus(r, views, label), NULL);
    else {
        const char *end = ap_strstr_c(body, "</body>");
        extra = status_html(r, views, label);
        body = end ? apr_pstrcat(r->pool, apr_pstrndup(r->pool, body, (apr_size_t)(end - body)),
                                 extra, end, NULL)
                   : apr_pstrcat(r->pool, body, extra, NULL);
    }
    *len = strlen(body);
    return body;
}
