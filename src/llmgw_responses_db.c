/*
 * Stored responses in the ledger's database (include/llmgw_responses_db.h).
 *
 * One connection per child, opened by the first request that needs it and
 * shared by the child's threads under a mutex: an apr_dbd handle is not
 * thread-safe, and a response lookup is a single indexed row. Statements
 * are prepared once per connection ("%s" arguments: apr_dbd maps them to
 * each driver's placeholders, so no client text is ever spliced into SQL).
 */
#include <string.h>
#include <apr_dbd.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "llmgw_json.h"
#include "llmgw_responses_db.h"

/* Remove expired rows on every this many puts of a child. */
#define PURGE_EVERY 64

enum { S_GET, S_ITEM, S_PUT, S_PUT_ITEM, S_DEL, S_DEL_ITEMS, S_PURGE, S_PURGE_ITEMS, S_COUNT };

static const char *const statements[S_COUNT] = {
    "SELECT record FROM llmgw_responses WHERE id = %s AND owner = %s AND expires_at > CAST(%s AS "
    "BIGINT)",
    "SELECT item FROM llmgw_response_items WHERE id = %s AND owner = %s AND expires_at > CAST(%s "
    "AS BIGINT)",
    "INSERT INTO llmgw_responses (id, owner, expires_at, record) VALUES (%s, %s, CAST(%s AS "
    "BIGINT), %s)",
    "INSERT INTO llmgw_response_items (id, response_id, owner, expires_at, item) "
    "VALUES (%s, %s, %s, CAST(%s AS BIGINT), %s) ON CONFLICT (id) DO NOTHING",
    "DELETE FROM llmgw_responses WHERE id = %s AND owner = %s",
    "DELETE FROM llmgw_response_items WHERE response_id = %s AND owner = %s",
    "DELETE FROM llmgw_responses WHERE expires_at <= CAST(%s AS BIGINT)",
    "DELETE FROM llmgw_response_items WHERE expires_at <= CAST(%s AS BIGINT)",
};

/* Both drivers take these as they are (BIGINT: seconds since the epoch). */
static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS llmgw_responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "expires_at BIGINT NOT NULL, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS llmgw_response_items (id TEXT PRIMARY KEY, "
    "response_id TEXT NOT NULL, owner TEXT NOT NULL, expires_at BIGINT NOT NULL, "
    "item TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS llmgw_response_items_response ON llmgw_response_items "
    "(response_id)",
    NULL};

struct llmgw_responses_db_t {
    apr_pool_t *pool;
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_dbd_prepared_t *st[S_COUNT];
    apr_thread_mutex_t *mutex;
    unsigned puts;
};

static const char *db_error(apr_pool_t *p, llmgw_responses_db_t *db, int rv, const char *what)
{
    const char *e = apr_dbd_error(db->driver, db->handle, rv);

    return apr_psprintf(p, "%s: %s", what, e && *e ? e : "database error");
}

static apr_status_t db_close(void *data)
{
    llmgw_responses_db_t *db = data;

    if (db->handle)
        apr_dbd_close(db->driver, db->handle);
    db->handle = NULL;
    return APR_SUCCESS;
}

apr_status_t llmgw_responses_db_open(llmgw_responses_db_t **out, apr_pool_t *p,
                                     const llmgw_ledger_cfg_t *cfg, const char **msg)
{
    llmgw_responses_db_t *db;
    apr_pool_t *sub;
    const char *err = NULL;
    apr_status_t rv;
    int i, n, sqlite = strcmp(cfg->driver, "sqlite3") == 0;

    *out = NULL;
    if ((rv = apr_pool_create(&sub, p)) != APR_SUCCESS)
        return rv;
    db = apr_pcalloc(sub, sizeof(*db));
    db->pool = sub;
    apr_dbd_init(sub);
    if ((rv = apr_dbd_get_driver(sub, cfg->driver, &db->driver)) != APR_SUCCESS) {
        *msg = apr_psprintf(p, "cannot load the apr_dbd driver %s", cfg->driver);
        goto leave;
    }
    if ((rv = apr_dbd_open_ex(db->driver, sub, cfg->params, &db->handle, &err)) != APR_SUCCESS) {
        *msg = apr_psprintf(p, "cannot open the %s database: %s", cfg->driver,
                            err && *err ? err : "no reason given");
        db->handle = NULL;
        goto leave;
    }
    apr_pool_cleanup_register(sub, db, db_close, apr_pool_cleanup_null);
    /* SQLite: the ledger's writers use the same file; wait for them. */
    if (sqlite) {
        apr_dbd_results_t *res = NULL;
        apr_dbd_row_t *row;
        if (apr_dbd_select(db->driver, sub, db->handle, &res, "PRAGMA busy_timeout = 10000", 0) ==
            0)
            while (apr_dbd_get_row(db->driver, sub, res, &row, -1) == 0)
                ;
    }
    for (i = 0; schema[i]; i++) {
        int e = apr_dbd_query(db->driver, db->handle, &n, schema[i]);
        if (e) {
            *msg = db_error(p, db, e, "cannot create the response tables");
            rv = APR_EGENERAL;
            goto leave;
        }
    }
    for (i = 0; i < S_COUNT; i++) {
        int e = apr_dbd_prepare(db->driver, sub, db->handle, statements[i], NULL, &db->st[i]);
        if (e) {
            *msg = db_error(p, db, e, "cannot prepare a response statement");
            rv = APR_EGENERAL;
            goto leave;
        }
    }
    if ((rv = apr_thread_mutex_create(&db->mutex, APR_THREAD_MUTEX_DEFAULT, sub)) != APR_SUCCESS) {
        *msg = "cannot create the response store's mutex";
        goto leave;
    }
    *out = db;
    return APR_SUCCESS;
leave:
    apr_pool_destroy(sub);
    return rv != APR_SUCCESS ? rv : APR_EGENERAL;
}

/* The JSON of the one text column of @p stmt's first row; APR_NOTFOUND when none. */
static apr_status_t select_json(llmgw_responses_db_t *db, apr_pool_t *p, int stmt, const char *id,
                                const char *owner, apr_time_t now, json_t **out, const char **msg)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *text = NULL;
    apr_status_t rv = APR_NOTFOUND;
    int e;

    *out = NULL;
    apr_thread_mutex_lock(db->mutex);
    e = apr_dbd_pvselect(db->driver, p, db->handle, &res, db->st[stmt], 0, id, owner ? owner : "",
                         apr_psprintf(p, "%" APR_TIME_T_FMT, now));
    if (e) {
        *msg = db_error(p, db, e, "cannot read the response store");
        rv = APR_EGENERAL;
    }
    else {
        /* Read every row so the statement is finished before the next one. */
        while (apr_dbd_get_row(db->driver, p, res, &row, -1) == 0) {
            if (!text)
                text = apr_pstrdup(p, apr_dbd_get_entry(db->driver, row, 0));
        }
    }
    apr_thread_mutex_unlock(db->mutex);
    if (rv == APR_EGENERAL || !text)
        return rv;
    *out = llmgw_json_pool_own(p, json_loads(text, 0, NULL));
    if (!*out) {
        *msg = "a stored response is not valid JSON";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_responses_db_get(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                    const char *owner, apr_time_t now, json_t **record,
                                    const char **msg)
{
    return select_json(db, p, S_GET, id, owner, now, record, msg);
}

apr_status_t llmgw_responses_db_item(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                     const char *owner, apr_time_t now, json_t **item,
                                     const char **msg)
{
    return select_json(db, p, S_ITEM, id, owner, now, item, msg);
}

/* Items with an id of @p items, each as its own row. */
static int put_items(llmgw_responses_db_t *db, apr_pool_t *p, const json_t *items,
                     const char *response_id, const char *owner, const char *expires)
{
    const json_t *item;
    size_t i;
    int n, e = 0;

    json_array_foreach ((json_t *)items, i, item) {
        const char *id = llmgw_json_str(item, "id");
        const char *text;
        if (!id || !*id)
            continue;
        text = llmgw_json_dump(p, item, NULL);
        if (!text)
            return -1;
        if ((e = apr_dbd_pvquery(db->driver, p, db->handle, &n, db->st[S_PUT_ITEM], id, response_id,
                                 owner, expires, text)) != 0)
            return e;
    }
    return 0;
}

apr_status_t llmgw_responses_db_put(llmgw_responses_db_t *db, apr_pool_t *p, const json_t *record,
                                    const char **msg)
{
    const char *id = llmgw_json_str(record, "id");
    const char *owner = llmgw_json_str(record, "owner");
    const char *expires =
        apr_psprintf(p, "%" APR_INT64_T_FMT,
                     (apr_int64_t)json_integer_value(json_object_get(record, "expires_at")));
    const char *text = llmgw_json_dump(p, record, NULL);
    int n, e;

    if (!id || !text) {
        *msg = "the response record has no id";
        return APR_EINVAL;
    }
    apr_thread_mutex_lock(db->mutex);
    e = apr_dbd_query(db->driver, db->handle, &n, "BEGIN");
    if (!e)
        e = apr_dbd_pvquery(db->driver, p, db->handle, &n, db->st[S_PUT], id, owner ? owner : "",
                            expires, text);
    if (!e)
        e = put_items(db, p, json_object_get(record, "input_items"), id, owner ? owner : "",
                      expires);
    if (!e)
        e = put_items(db, p, json_object_get(record, "output_items"), id, owner ? owner : "",
                      expires);
    if (!e && ++db->puts % PURGE_EVERY == 0) {
        const char *now = apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_sec(apr_time_now()));
        e = apr_dbd_pvquery(db->driver, p, db->handle, &n, db->st[S_PURGE], now);
        if (!e)
            e = apr_dbd_pvquery(db->driver, p, db->handle, &n, db->st[S_PURGE_ITEMS], now);
    }
    if (!e)
        e = apr_dbd_query(db->driver, db->handle, &n, "COMMIT");
    if (e) {
        *msg = db_error(p, db, e, "cannot store the response");
        apr_dbd_query(db->driver, db->handle, &n, "ROLLBACK");
    }
    apr_thread_mutex_unlock(db->mutex);
    return e ? APR_EGENERAL : APR_SUCCESS;
}

apr_status_t llmgw_responses_db_delete(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                       const char *owner, const char **msg)
{
    int n = 0, m = 0, e;

    apr_thread_mutex_lock(db->mutex);
    e = apr_dbd_pvquery(db->driver, p, db->handle, &n, db->st[S_DEL], id, owner ? owner : "");
    if (!e && n > 0)
        e = apr_dbd_pvquery(db->driver, p, db->handle, &m, db->st[S_DEL_ITEMS], id,
                            owner ? owner : "");
    if (e)
        *msg = db_error(p, db, e, "cannot delete the response");
    apr_thread_mutex_unlock(db->mutex);
    if (e)
        return APR_EGENERAL;
    return n > 0 ? APR_SUCCESS : APR_NOTFOUND;
}
