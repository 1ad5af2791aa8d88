/*
 * The usage ledger through apr_dbd (include/llmgw_ledger.h has the design:
 * the table, the writer, and what a crash can lose).
 *
 * Threads: the ring is shared by request threads (submit) and the writer
 * thread under one mutex; the database connection belongs to the writer
 * thread alone (apr_dbd handles are not thread-safe), and so does every
 * pool it allocates from after start. Rows are malloc'ed by submit and
 * freed by the writer once written (or given up at exit): they outlive the
 * request that made them, so no request pool may own them.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_dbd.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include "llmgw_ledger.h"
#include "llmgw_pricing.h"

#define BACKOFF_MIN apr_time_from_sec(1)
#define BACKOFF_MAX apr_time_from_sec(30)
#define IDLE_WAKE apr_time_from_sec(1)
/*
 * A batch waits this long for more rows before it is written (unless it is
 * full, or the writer stops): under load one transaction carries many rows
 * instead of one, which is what keeps the writer's cost per request small.
 */
#define LINGER apr_time_from_msec(50)
/* Rows per multi-row INSERT: one statement (one parse of its parameters, one
 * VDBE run) for many rows; 16 x 16 parameters stay far below every driver's
 * bound. The rest of a batch goes row by row. */
#define MULTI_ROWS 16
#define ROW_PARAMS 16

struct llmgw_ledger_writer_t {
    apr_pool_t *pool; /* the writer's; its connection has a subpool */
    const llmgw_ledger_cfg_t *cfg;
    llmgw_ledger_hooks_t hooks;
    const apr_dbd_driver_t *driver;
    int pgsql;

    /* The writer thread's own. */
    apr_pool_t *conn_pool;
    apr_dbd_t *handle;
    apr_dbd_prepared_t *insert;
    apr_dbd_prepared_t *insert_multi; /* MULTI_ROWS rows */

    /* Under mu. */
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cond;
    apr_thread_cond_t *space; /* signalled when rows leave a full ring */
    int waiters;              /* submitters waiting on space */
    int db_down;              /* the last write failed: no waiting for room */
    llmgw_ledger_row_t **ring;
    int cap, head, count;
    int stopping;
    int idle; /* the writer waits for rows (not lingering over a batch) */
    apr_time_t stop_deadline;
    apr_uint64_t written, lost, in_batch;

    apr_thread_t *thread;
    int joined;
};

const char *llmgw_ledger_kind_name(llmgw_access_kind_e k)
{
    return k == LLMGW_ACCESS_KIND_PRINCIPAL ? "principal" : "key";
}

const char *llmgw_ledger_driver_package(const char *driver)
{
    if (!driver)
        return NULL;
    if (strcmp(driver, "sqlite3") == 0)
        return "libaprutil1-dbd-sqlite3";
    if (strcmp(driver, "pgsql") == 0)
        return "libaprutil1-dbd-pgsql";
    return NULL;
}

apr_status_t llmgw_ledger_driver_check(apr_pool_t *p, const char *driver, const char **msg)
{
    const apr_dbd_driver_t *drv;
    const char *pkg = llmgw_ledger_driver_package(driver);
    apr_status_t rv;

    *msg = NULL;
    if (!pkg) {
        *msg = apr_psprintf(p, "unknown ledger driver \"%s\" (expected sqlite3 or pgsql)",
                            driver ? driver : "");
        return APR_ENOTIMPL;
    }
    apr_dbd_init(p);
    rv = apr_dbd_get_driver(p, driver, &drv);
    if (rv == APR_SUCCESS)
        return rv;
    if (rv == APR_EDSOOPEN || rv == APR_ENOTIMPL)
        *msg = apr_psprintf(p,
                            "the apr_dbd driver \"%s\" is not installed: install the Debian "
                            "package %s",
                            driver, pkg);
    else
        *msg = apr_psprintf(p, "the apr_dbd driver \"%s\" cannot be loaded (Debian package %s)",
                            driver, pkg);
    return rv;
}

static const char *dbd_error(apr_pool_t *p, const apr_dbd_driver_t *d, apr_dbd_t *h, int rv)
{
    const char *e = h ? apr_dbd_error(d, h, rv) : NULL;
    return apr_pstrdup(p, e && *e ? e : "unknown database error");
}

/* Run a statement that may return rows (PRAGMA), reading them all. */
static apr_status_t run_select(apr_pool_t *p, const apr_dbd_driver_t *d, apr_dbd_t *h,
                               const char *sql, const char **msg)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv = apr_dbd_select(d, p, h, &res, sql, 0);

    if (rv) {
        *msg = dbd_error(p, d, h, rv);
        return APR_EGENERAL;
    }
    while (apr_dbd_get_row(d, p, res, &row, -1) == 0)
        ;
    return APR_SUCCESS;
}

static apr_status_t run(apr_pool_t *p, const apr_dbd_driver_t *d, apr_dbd_t *h, const char *sql,
                        const char **msg)
{
    int n = 0, rv = apr_dbd_query(d, h, &n, sql);

    if (rv) {
        *msg = dbd_error(p, d, h, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t connect_db(apr_pool_t *p, const apr_dbd_driver_t *d, const char *driver,
                               const char *params, apr_dbd_t **h, const char **msg)
{
    const char *err = NULL;
    apr_status_t rv = apr_dbd_open_ex(d, p, params, h, &err);

    if (rv != APR_SUCCESS) {
        *msg = apr_psprintf(p, "cannot open the %s database: %s", driver,
                            err && *err ? err : "no reason given");
        *h = NULL;
        return rv;
    }
    /* SQLite: wait for the other children's writers rather than fail, and in
     * WAL mode commit without an fsync each (a crash of the machine, not of
     * httpd, can lose the last transactions; the WAL stays consistent). */
    if (strcmp(driver, "sqlite3") == 0 &&
        (run_select(p, d, *h, "PRAGMA busy_timeout = 10000", msg) != APR_SUCCESS ||
         run_select(p, d, *h, "PRAGMA synchronous = NORMAL", msg) != APR_SUCCESS)) {
        apr_dbd_close(d, *h);
        *h = NULL;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static const char *const schema_sqlite[] = {
    "PRAGMA journal_mode = WAL",
    "CREATE TABLE IF NOT EXISTS llmgw_ledger ("
    "id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, time TEXT NOT NULL, "
    "kind TEXT NOT NULL, name TEXT NOT NULL, route TEXT, backend TEXT, requested_model TEXT, "
    "model TEXT, prompt_tokens INTEGER, cached_tokens INTEGER, completion_tokens INTEGER, "
    "cost_nusd INTEGER, cost_usd REAL, status INTEGER NOT NULL, error TEXT, attempts INTEGER)",
    "CREATE INDEX IF NOT EXISTS llmgw_ledger_time ON llmgw_ledger (time_us)", NULL};

static const char *const schema_pgsql[] = {
    "CREATE TABLE IF NOT EXISTS llmgw_ledger ("
    "id BIGSERIAL PRIMARY KEY, time_us BIGINT NOT NULL, time TEXT NOT NULL, "
    "kind TEXT NOT NULL, name TEXT NOT NULL, route TEXT, backend TEXT, requested_model TEXT, "
    "model TEXT, prompt_tokens BIGINT, cached_tokens BIGINT, completion_tokens BIGINT, "
    "cost_nusd BIGINT, cost_usd NUMERIC(24,9), status INTEGER NOT NULL, error TEXT, "
    "attempts INTEGER)",
    "CREATE INDEX IF NOT EXISTS llmgw_ledger_time ON llmgw_ledger (time_us)", NULL};

apr_status_t llmgw_ledger_prepare(apr_pool_t *p, const llmgw_ledger_cfg_t *cfg, const char **msg)
{
    const apr_dbd_driver_t *d;
    const char *const *sql;
    apr_dbd_t *h;
    apr_status_t rv;
    int i;

    if ((rv = llmgw_ledger_driver_check(p, cfg->driver, msg)) != APR_SUCCESS ||
        (rv = apr_dbd_get_driver(p, cfg->driver, &d)) != APR_SUCCESS ||
        (rv = connect_db(p, d, cfg->driver, cfg->params, &h, msg)) != APR_SUCCESS)
        return rv;
    sql = strcmp(cfg->driver, "pgsql") == 0 ? schema_pgsql : schema_sqlite;
    for (i = 0; sql[i] && rv == APR_SUCCESS; i++) {
        rv = strncmp(sql[i], "PRAGMA", 6) == 0 ? run_select(p, d, h, sql[i], msg)
                                               : run(p, d, h, sql[i], msg);
        if (rv != APR_SUCCESS)
            *msg = apr_psprintf(p, "cannot create the ledger table: %s", *msg);
    }
    apr_dbd_close(d, h);
    return rv;
}

apr_status_t llmgw_ledger_totals(apr_pool_t *p, llmgw_ledger_writer_t *w,
                                 const llmgw_ledger_cfg_t *cfg, apr_time_t since, apr_hash_t **out,
                                 const char **msg)
{
    const apr_dbd_driver_t *d = w ? w->driver : NULL;
    apr_dbd_t *h = w ? w->handle : NULL;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv = APR_SUCCESS;
    const char *sql;
    int own = 0, err;

    *out = apr_hash_make(p);
    *msg = NULL;
    if (!w) {
        if ((rv = apr_dbd_get_driver(p, cfg->driver, &d)) != APR_SUCCESS ||
            (rv = connect_db(p, d, cfg->driver, cfg->params, &h, msg)) != APR_SUCCESS) {
            if (!*msg)
                *msg = "the ledger driver cannot be loaded";
            return rv;
        }
        own = 1;
    }
    if (!h) {
        *msg = "not connected";
        return APR_EGENERAL;
    }
    sql = apr_psprintf(p,
                       "SELECT name, SUM(cost_nusd) FROM llmgw_ledger WHERE time_us >= "
                       "%" APR_INT64_T_FMT " GROUP BY name",
                       (apr_int64_t)since);
    err = apr_dbd_select(d, p, h, &res, sql, 0);
    if (err) {
        *msg = dbd_error(p, d, h, err);
        rv = APR_EGENERAL;
    }
    while (!err && apr_dbd_get_row(d, p, res, &row, -1) == 0) {
        const char *name = apr_dbd_get_entry(d, row, 0);
        const char *sum = apr_dbd_get_entry(d, row, 1);
        apr_int64_t *v = apr_palloc(p, sizeof(*v));
        if (!name)
            continue;
        *v = sum ? apr_atoi64(sum) : 0;
        apr_hash_set(*out, apr_pstrdup(p, name), APR_HASH_KEY_STRING, v);
    }
    if (own)
        apr_dbd_close(d, h);
    return rv;
}

/* ---- the writer ----------------------------------------------------------- */

static void wlog(llmgw_ledger_writer_t *w, int level, apr_status_t rv, const char *msg)
{
    if (w->hooks.log)
        w->hooks.log(w->hooks.baton, level, rv, msg);
}

static void disconnect(llmgw_ledger_writer_t *w)
{
    if (w->handle)
        apr_dbd_close(w->driver, w->handle);
    w->handle = NULL;
    w->insert = w->insert_multi = NULL;
    if (w->conn_pool)
        apr_pool_destroy(w->conn_pool);
    w->conn_pool = NULL;
}

/* The INSERT of @p rows rows, with apr_dbd's typed parameters (row_params). */
static const char *insert_sql(apr_pool_t *p, int rows)
{
    static const char values[] = "(%lld, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %lld, %s, "
                                 "%d, %s, %d)";
    apr_array_header_t *parts = apr_array_make(p, rows * 2 + 1, sizeof(const char *));
    int i;

    APR_ARRAY_PUSH(parts, const char *) =
        "INSERT INTO llmgw_ledger (time_us, time, kind, name, route, backend, "
        "requested_model, model, prompt_tokens, cached_tokens, completion_tokens, cost_nusd, "
        "cost_usd, status, error, attempts) VALUES ";
    for (i = 0; i < rows; i++) {
        if (i > 0)
            APR_ARRAY_PUSH(parts, const char *) = ", ";
        APR_ARRAY_PUSH(parts, const char *) = values;
    }
    return apr_array_pstrcat(p, parts, 0);
}

static apr_status_t ensure_connected(llmgw_ledger_writer_t *w, const char **msg)
{
    apr_status_t rv;
    int err;

    if (w->handle)
        return APR_SUCCESS;
    if ((rv = apr_pool_create(&w->conn_pool, w->pool)) != APR_SUCCESS)
        return rv;
    rv = connect_db(w->conn_pool, w->driver, w->cfg->driver, w->cfg->params, &w->handle, msg);
    if (rv != APR_SUCCESS) {
        *msg = apr_pstrdup(w->pool, *msg);
        disconnect(w);
        return rv;
    }
    err = apr_dbd_prepare(w->driver, w->conn_pool, w->handle, insert_sql(w->conn_pool, 1), NULL,
                          &w->insert);
    if (!err)
        err = apr_dbd_prepare(w->driver, w->conn_pool, w->handle,
                              insert_sql(w->conn_pool, MULTI_ROWS), NULL, &w->insert_multi);
    if (err) {
        *msg = apr_psprintf(w->pool, "cannot prepare the ledger insert: %s",
                            dbd_error(w->conn_pool, w->driver, w->handle, err));
        disconnect(w);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static const char *opt_str(const char *s)
{
    return s && *s ? s : NULL;
}

/* A count or cost that may be unknown (-1): a pointer to it, or NULL for SQL NULL. */
static const apr_int64_t *opt_int(const apr_int64_t *v)
{
    return *v < 0 ? NULL : v;
}

static char *put_digits(char *s, int v, int n)
{
    for (s += n; n > 0; n--, v /= 10)
        *--s = (char)('0' + v % 10);
    return s;
}

/* "2026-01-31T23:59:59.123456Z", by hand (one per row). */
static const char *rfc3339(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;
    char *s = apr_palloc(p, 28);

    apr_time_exp_gmt(&x, t);
    put_digits(s, x.tm_year + 1900, 4);
    s[4] = '-';
    put_digits(s + 5, x.tm_mon + 1, 2);
    s[7] = '-';
    put_digits(s + 8, x.tm_mday, 2);
    s[10] = 'T';
    put_digits(s + 11, x.tm_hour, 2);
    s[13] = ':';
    put_digits(s + 14, x.tm_min, 2);
    s[16] = ':';
    put_digits(s + 17, x.tm_sec, 2);
    s[19] = '.';
    put_digits(s + 20, x.tm_usec, 6);
    s[26] = 'Z';
    s[27] = '\0';
    return s;
}

/*
 * The parameters of one row, typed as insert_sql declares them (numbers are
 * bound as numbers, not formatted as text for the database to parse back;
 * NULL is SQL NULL).
 */
static void row_params(apr_pool_t *p, const llmgw_ledger_row_t *r, const void **a)
{
    a[0] = &r->time;
    a[1] = rfc3339(p, r->time);
    a[2] = llmgw_ledger_kind_name(r->kind);
    a[3] = r->name;
    a[4] = opt_str(r->route);
    a[5] = opt_str(r->backend);
    a[6] = opt_str(r->requested_model);
    a[7] = opt_str(r->model);
    a[8] = opt_int(&r->prompt_tokens);
    a[9] = opt_int(&r->cached_tokens);
    a[10] = opt_int(&r->completion_tokens);
    a[11] = opt_int(&r->cost);
    a[12] = r->cost < 0 ? NULL : llmgw_usd_format(p, r->cost);
    a[13] = &r->status;
    a[14] = opt_str(r->error);
    a[15] = &r->attempts;
}

/* @p n rows (1 or MULTI_ROWS) in one statement. */
static int insert_rows(llmgw_ledger_writer_t *w, apr_pool_t *p, llmgw_ledger_row_t *const *rows,
                       int n)
{
    const void *args[MULTI_ROWS * ROW_PARAMS];
    int i, changed = 0;

    for (i = 0; i < n; i++)
        row_params(p, rows[i], args + i * ROW_PARAMS);
    return apr_dbd_pbquery(w->driver, p, w->handle, &changed, n == 1 ? w->insert : w->insert_multi,
                           args);
}

/*
 * One transaction for the whole batch: all rows or none. BEGIN and COMMIT
 * are plain statements rather than apr_dbd_transaction_start/end: the pgsql
 * driver of APR-util 1.6 dereferences a NULL transaction when BEGIN fails
 * on a connection the server has closed (the database restarting), which
 * would take the whole child down with it.
 */
static apr_status_t write_batch(llmgw_ledger_writer_t *w, apr_pool_t *p,
                                llmgw_ledger_row_t *const *rows, int n, const char **msg)
{
    apr_status_t rv = ensure_connected(w, msg);
    int i, nrows = 0, err;

    if (rv != APR_SUCCESS)
        return rv;
    err = apr_dbd_query(w->driver, w->handle, &nrows, "BEGIN");
    for (i = 0; !err && i + MULTI_ROWS <= n; i += MULTI_ROWS)
        err = insert_rows(w, p, rows + i, MULTI_ROWS);
    for (; !err && i < n; i++)
        err = insert_rows(w, p, rows + i, 1);
    if (!err)
        err = apr_dbd_query(w->driver, w->handle, &nrows, "COMMIT");
    if (err) {
        *msg = apr_pstrdup(w->pool, dbd_error(p, w->driver, w->handle, err));
        apr_dbd_query(w->driver, w->handle, &nrows, "ROLLBACK");
        disconnect(w);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static void *APR_THREAD_FUNC writer_main(apr_thread_t *t, void *data)
{
    llmgw_ledger_writer_t *w = data;
    llmgw_ledger_row_t *batch[LLMGW_LEDGER_BATCH];
    apr_pool_t *scratch;
    apr_time_t next_try = 0, backoff = 0, down_since = 0, batch_since = 0;
    int nb = 0, i;

    apr_pool_create(&scratch, w->pool);
    apr_thread_mutex_lock(w->mu);
    for (;;) {
        const char *msg = NULL;
        apr_time_t now;
        apr_status_t rv;

        while (nb < LLMGW_LEDGER_BATCH && w->count > 0) {
            batch[nb++] = w->ring[w->head];
            w->head = (w->head + 1) % w->cap;
            w->count--;
        }
        if (w->waiters && w->count < w->cap)
            apr_thread_cond_broadcast(w->space);
        w->in_batch = (apr_uint64_t)nb;
        now = apr_time_now();
        if (w->stopping && (nb == 0 || now >= w->stop_deadline))
            break;
        if (nb > 0 && !batch_since)
            batch_since = now;
        if (nb > 0 && nb < LLMGW_LEDGER_BATCH && !w->stopping && now - batch_since < LINGER) {
            apr_thread_cond_timedwait(w->cond, w->mu, LINGER - (now - batch_since));
            continue;
        }
        if (nb == 0 || now < next_try) {
            apr_interval_time_t wait = nb == 0 ? IDLE_WAKE : next_try - now;
            w->idle = nb == 0;
            apr_thread_cond_timedwait(w->cond, w->mu, wait < IDLE_WAKE ? wait : IDLE_WAKE);
            w->idle = 0;
            if (nb == 0 && !w->stopping && w->count == 0 && w->hooks.refresh && w->handle) {
                apr_thread_mutex_unlock(w->mu);
                w->hooks.refresh(w->hooks.baton, w);
                apr_thread_mutex_lock(w->mu);
            }
            continue;
        }
        apr_thread_mutex_unlock(w->mu);
        apr_pool_clear(scratch);
        rv = write_batch(w, scratch, batch, nb, &msg);
        if (rv == APR_SUCCESS) {
            for (i = 0; i < nb; i++) {
                if (w->hooks.committed)
                    w->hooks.committed(w->hooks.baton, batch[i]);
                free(batch[i]);
            }
            if (down_since)
                wlog(w, 2, APR_SUCCESS,
                     apr_psprintf(scratch,
                                  "ledger database reachable again after %" APR_TIME_T_FMT
                                  " s; writing the rows that waited",
                                  apr_time_sec(apr_time_now() - down_since)));
            down_since = 0;
            backoff = 0;
            batch_since = 0;
            apr_thread_mutex_lock(w->mu);
            w->db_down = 0;
            w->written += (apr_uint64_t)nb;
            nb = 0;
            w->in_batch = 0;
            if (w->hooks.refresh && w->count == 0) {
                apr_thread_mutex_unlock(w->mu);
                w->hooks.refresh(w->hooks.baton, w);
                apr_thread_mutex_lock(w->mu);
            }
            continue;
        }
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2) : BACKOFF_MIN;
        next_try = apr_time_now() + backoff;
        apr_thread_mutex_lock(w->mu);
        w->db_down = 1; /* submitters stop waiting for room */
        apr_thread_cond_broadcast(w->space);
        apr_thread_mutex_unlock(w->mu);
        if (!down_since) {
            down_since = apr_time_now();
            apr_thread_mutex_lock(w->mu);
            i = w->count + nb;
            apr_thread_mutex_unlock(w->mu);
            wlog(w, 0, rv,
                 apr_psprintf(scratch,
                              "cannot write to the ledger database (%s): %s; %d row(s) wait "
                              "and are written once it answers (retrying every %d s at most)",
                              w->cfg->driver, msg ? msg : "error", i,
                              (int)apr_time_sec(BACKOFF_MAX)));
        }
        apr_thread_mutex_lock(w->mu);
    }
    i = w->count + nb;
    for (; nb > 0; nb--)
        free(batch[nb - 1]);
    while (w->count > 0) {
        free(w->ring[w->head]);
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
    w->lost += (apr_uint64_t)i;
    w->in_batch = 0;
    apr_thread_mutex_unlock(w->mu);
    if (i > 0)
        wlog(w, 0, APR_SUCCESS,
             apr_psprintf(scratch,
                          "%d ledger row(s) could not be written before this process ended "
                          "(the database did not answer in time); they are lost",
                          i));
    disconnect(w);
    apr_pool_destroy(scratch);
    /* Returning, not apr_thread_exit(): pthread_exit's forced unwind trips
     * ASan's no-return stack unpoisoning on some kernels, and the join
     * reads the status APR keeps, which is APR_SUCCESS either way. */
    return NULL;
}

static apr_status_t writer_cleanup(void *data)
{
    llmgw_ledger_writer_stop(data, LLMGW_LEDGER_DRAIN);
    return APR_SUCCESS;
}

apr_status_t llmgw_ledger_writer_start(llmgw_ledger_writer_t **out, apr_pool_t *pchild,
                                       const llmgw_ledger_cfg_t *cfg,
                                       const llmgw_ledger_hooks_t *hooks)
{
    llmgw_ledger_writer_t *w;
    apr_pool_t *pool;
    apr_status_t rv;

    *out = NULL;
    if ((rv = apr_pool_create(&pool, pchild)) != APR_SUCCESS)
        return rv;
    w = apr_pcalloc(pool, sizeof(*w));
    w->pool = pool;
    w->cfg = cfg;
    w->hooks = *hooks;
    w->cap = cfg->queue > 0 ? cfg->queue : LLMGW_LEDGER_DEFAULT_QUEUE;
    w->ring = apr_pcalloc(pool, sizeof(*w->ring) * (apr_size_t)w->cap);
    if ((rv = apr_dbd_get_driver(pool, cfg->driver, &w->driver)) != APR_SUCCESS ||
        (rv = apr_thread_mutex_create(&w->mu, APR_THREAD_MUTEX_DEFAULT, pool)) != APR_SUCCESS ||
        (rv = apr_thread_cond_create(&w->cond, pool)) != APR_SUCCESS ||
        (rv = apr_thread_cond_create(&w->space, pool)) != APR_SUCCESS ||
        (rv = apr_thread_create(&w->thread, NULL, writer_main, w, pool)) != APR_SUCCESS) {
        apr_pool_destroy(pool);
        return rv;
    }
    /* A pre-cleanup: it runs before pchild's subpools (the writer's) are destroyed. */
    apr_pool_pre_cleanup_register(pchild, w, writer_cleanup);
    *out = w;
    return APR_SUCCESS;
}

/*
 * Under w->mu, the ring full while the database answers: the writer is
 * behind, so wait (bounded by LLMGW_LEDGER_FULL_WAIT) for the room its next
 * batch makes rather than lose the row.
 */
static void wait_for_room(llmgw_ledger_writer_t *w)
{
    apr_time_t until = apr_time_now() + LLMGW_LEDGER_FULL_WAIT, now;

    w->waiters++;
    while (w->count >= w->cap && !w->db_down && !w->stopping && (now = apr_time_now()) < until) {
        if (w->idle) {
            w->idle = 0;
            apr_thread_cond_signal(w->cond);
        }
        apr_thread_cond_timedwait(w->space, w->mu, until - now);
    }
    w->waiters--;
}

apr_status_t llmgw_ledger_submit(llmgw_ledger_writer_t *w, const llmgw_ledger_row_t *row)
{
    llmgw_ledger_row_t *copy;

    if (!w)
        return APR_EOF;
    copy = malloc(sizeof(*copy));
    if (!copy)
        return APR_ENOMEM;
    memcpy(copy, row, sizeof(*copy));
    apr_thread_mutex_lock(w->mu);
    if (w->stopping) {
        apr_thread_mutex_unlock(w->mu);
        free(copy);
        return APR_EOF;
    }
    if (w->count >= w->cap && !w->db_down)
        wait_for_room(w);
    if (w->stopping) {
        apr_thread_mutex_unlock(w->mu);
        free(copy);
        return APR_EOF;
    }
    if (w->count >= w->cap) {
        w->lost++;
        apr_thread_mutex_unlock(w->mu);
        free(copy);
        return APR_EAGAIN;
    }
    w->ring[(w->head + w->count) % w->cap] = copy;
    w->count++;
    /* Wake the writer only when it is idle or a batch is full; otherwise it
     * is lingering over a batch, or writing one, and comes back by itself:
     * no wake-up (and no context switch) per request. */
    if (w->idle || w->count == LLMGW_LEDGER_BATCH) {
        w->idle = 0;
        apr_thread_cond_signal(w->cond);
    }
    apr_thread_mutex_unlock(w->mu);
    return APR_SUCCESS;
}

void llmgw_ledger_writer_stop(llmgw_ledger_writer_t *w, apr_interval_time_t wait)
{
    apr_status_t trv;

    if (!w || w->joined)
        return;
    apr_thread_mutex_lock(w->mu);
    w->stopping = 1;
    w->stop_deadline = apr_time_now() + wait;
    apr_thread_cond_signal(w->cond);
    apr_thread_cond_broadcast(w->space);
    apr_thread_mutex_unlock(w->mu);
    apr_thread_join(&trv, w->thread);
    w->joined = 1;
}

void llmgw_ledger_counts(llmgw_ledger_writer_t *w, apr_uint64_t *written, apr_uint64_t *waiting,
                         apr_uint64_t *lost)
{
    *written = *waiting = *lost = 0;
    if (!w)
        return;
    apr_thread_mutex_lock(w->mu);
    *written = w->written;
    *waiting = (apr_uint64_t)w->count + w->in_batch;
    *lost = w->lost;
    apr_thread_mutex_unlock(w->mu);
}
