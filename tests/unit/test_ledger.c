/* Check suite for the ledger and its writer (src/llmgw_ledger.c), on SQLite files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <apr_dbd.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "llmgw_ledger.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000)

typedef struct {
    apr_thread_mutex_t *mu;
    int committed;
    apr_int64_t committed_cost;
    int errors, infos;
    char last_error[512];
    int refreshes;
} hooks_state_t;

static void on_log(void *baton, int level, apr_status_t rv, const char *msg)
{
    hooks_state_t *h = baton;

    apr_thread_mutex_lock(h->mu);
    if (level == 0) {
        h->errors++;
        apr_cpystrn(h->last_error, msg, sizeof(h->last_error));
    }
    else
        h->infos++;
    apr_thread_mutex_unlock(h->mu);
}

static void on_committed(void *baton, const llmgw_ledger_row_t *row)
{
    hooks_state_t *h = baton;

    apr_thread_mutex_lock(h->mu);
    h->committed++;
    h->committed_cost += row->cost > 0 ? row->cost : 0;
    apr_thread_mutex_unlock(h->mu);
}

static void on_refresh(void *baton, llmgw_ledger_writer_t *w)
{
    hooks_state_t *h = baton;

    apr_thread_mutex_lock(h->mu);
    h->refreshes++;
    apr_thread_mutex_unlock(h->mu);
}

static apr_status_t tmpdir_remove(void *dir)
{
    char cmd[128];

    apr_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (const char *)dir);
    return system(cmd) == 0 ? APR_SUCCESS : APR_EGENERAL;
}

/* A fresh directory, removed with the test's pool. */
static const char *tmpdir(void)
{
    char *dir = apr_pstrdup(test_pool, "/tmp/llmgw-ledger-XXXXXX");

    ck_assert_ptr_nonnull(mkdtemp(dir));
    apr_pool_cleanup_register(test_pool, dir, tmpdir_remove, apr_pool_cleanup_null);
    return dir;
}

static llmgw_ledger_cfg_t *sqlite_cfg(const char *path)
{
    llmgw_ledger_cfg_t *c = apr_pcalloc(test_pool, sizeof(*c));

    c->driver = "sqlite3";
    c->params = path;
    c->queue = 100;
    return c;
}

static llmgw_ledger_row_t row_of(const char *name, apr_int64_t cost, apr_time_t when)
{
    llmgw_ledger_row_t r;

    memset(&r, 0, sizeof(r));
    r.time = when;
    r.kind = LLMGW_ACCESS_KIND_KEY;
    apr_cpystrn(r.name, name, sizeof(r.name));
    apr_cpystrn(r.route, "chat", sizeof(r.route));
    apr_cpystrn(r.backend, "openai", sizeof(r.backend));
    apr_cpystrn(r.requested_model, "gpt-4o", sizeof(r.requested_model));
    apr_cpystrn(r.model, "gpt-4o-2024-08-06", sizeof(r.model));
    r.prompt_tokens = 10;
    r.cached_tokens = 0;
    r.completion_tokens = 5;
    r.cost = cost;
    r.status = 200;
    r.attempts = 1;
    r.slot = -1;
    return r;
}

static hooks_state_t *hooks_make(llmgw_ledger_hooks_t *hooks)
{
    hooks_state_t *h = apr_pcalloc(test_pool, sizeof(*h));

    apr_thread_mutex_create(&h->mu, APR_THREAD_MUTEX_DEFAULT, test_pool);
    hooks->log = on_log;
    hooks->committed = on_committed;
    hooks->refresh = on_refresh;
    hooks->baton = h;
    return h;
}

/* Rows in the table (a connection of the test's own). */
static int count_rows(const char *path, const char *where)
{
    const apr_dbd_driver_t *d;
    apr_dbd_t *h;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *err = NULL;
    int n = -1;

    ck_assert_int_eq(apr_dbd_get_driver(test_pool, "sqlite3", &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open_ex(d, test_pool, path, &h, &err), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_select(d, test_pool, h, &res,
                                    apr_pstrcat(test_pool, "SELECT COUNT(*) FROM llmgw_ledger ",
                                                where ? where : "", NULL),
                                    0),
                     0);
    while (apr_dbd_get_row(d, test_pool, res, &row, -1) == 0)
        n = atoi(apr_dbd_get_entry(d, row, 0));
    apr_dbd_close(d, h);
    return n;
}

static int wait_for(hooks_state_t *h, int committed, int seconds)
{
    int i, got = 0;

    for (i = 0; i < seconds * 20; i++) {
        apr_thread_mutex_lock(h->mu);
        got = h->committed;
        apr_thread_mutex_unlock(h->mu);
        if (got >= committed)
            break;
        apr_sleep(apr_time_from_msec(50));
    }
    return got;
}

static void setup(void)
{
    test_pool_setup();
    apr_dbd_init(test_pool);
}

START_TEST(test_prepare_creates_schema)
{
    const char *path = apr_pstrcat(test_pool, tmpdir(), "/ledger.db", NULL);
    const char *msg = NULL;
    apr_hash_t *totals;

    ck_assert_msg(llmgw_ledger_prepare(test_pool, sqlite_cfg(path), &msg) == APR_SUCCESS, "%s",
                  msg);
    ck_assert_int_eq(count_rows(path, NULL), 0);
    /* Twice: the table exists already, nothing fails. */
    ck_assert_int_eq(llmgw_ledger_prepare(test_pool, sqlite_cfg(path), &msg), APR_SUCCESS);
    ck_assert_int_eq(llmgw_ledger_totals(test_pool, NULL, sqlite_cfg(path), 0, &totals, &msg),
                     APR_SUCCESS);
    ck_assert_int_eq(apr_hash_count(totals), 0);
}
END_TEST

/* Rows reach the table, off the caller's thread, and the totals add them up by name. */
START_TEST(test_writer_writes_and_totals)
{
    const char *path = apr_pstrcat(test_pool, tmpdir(), "/ledger.db", NULL);
    llmgw_ledger_cfg_t *cfg = sqlite_cfg(path);
    llmgw_ledger_hooks_t hooks;
    hooks_state_t *h = hooks_make(&hooks);
    llmgw_ledger_writer_t *w;
    apr_pool_t *child;
    apr_hash_t *totals;
    const char *msg;
    apr_uint64_t written, waiting, lost;
    llmgw_ledger_row_t r;
    int i;

    ck_assert_int_eq(llmgw_ledger_prepare(test_pool, cfg, &msg), APR_SUCCESS);
    apr_pool_create(&child, test_pool);
    ck_assert_int_eq(llmgw_ledger_writer_start(&w, child, cfg, &hooks), APR_SUCCESS);
    for (i = 0; i < 30; i++) {
        r = row_of(i % 3 ? "team-a" : "team-b", 1000 + i, T0 + i);
        ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    }
    r = row_of("team-c", -1, T0 - apr_time_from_sec(3600)); /* unpriced, an hour earlier */
    r.prompt_tokens = -1;
    ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    ck_assert_int_eq(wait_for(h, 31, 10), 31);
    llmgw_ledger_counts(w, &written, &waiting, &lost);
    ck_assert_uint_eq(written, 31);
    ck_assert_uint_eq(lost, 0);
    ck_assert_int_eq(count_rows(path, NULL), 31);
    ck_assert_int_eq(count_rows(path, "WHERE cost_nusd IS NULL AND prompt_tokens IS NULL "
                                      "AND name = 'team-c'"),
                     1);
    ck_assert_int_eq(count_rows(path, "WHERE kind = 'key' AND model = 'gpt-4o-2024-08-06' AND "
                                      "status = 200 AND attempts = 1 AND time LIKE '2023-11-14T%'"),
                     31);
    ck_assert_int_eq(llmgw_ledger_totals(test_pool, NULL, cfg, T0, &totals, &msg), APR_SUCCESS);
    /* team-a: i = 1,2,4,5,...,29 (20 rows); team-b: i = 0,3,...,27 (10 rows). */
    ck_assert_int_eq(*(apr_int64_t *)apr_hash_get(totals, "team-a", APR_HASH_KEY_STRING),
                     20 * 1000 + (435 - 135));
    ck_assert_int_eq(*(apr_int64_t *)apr_hash_get(totals, "team-b", APR_HASH_KEY_STRING),
                     10 * 1000 + 135);
    ck_assert_ptr_null(apr_hash_get(totals, "team-c", APR_HASH_KEY_STRING));
    ck_assert_int_eq(h->committed_cost, 30 * 1000 + 435);
    apr_pool_destroy(child); /* stops the writer */
    ck_assert_int_eq(h->errors, 0);
}
END_TEST

/*
 * More rows than the queue holds, faster than one transaction takes: while
 * the database answers, a full queue makes the request wait for room
 * instead of losing its row.
 */
START_TEST(test_full_queue_waits_while_the_database_answers)
{
    const char *path = apr_pstrcat(test_pool, tmpdir(), "/ledger.db", NULL);
    llmgw_ledger_cfg_t *cfg = sqlite_cfg(path);
    llmgw_ledger_hooks_t hooks;
    hooks_state_t *h = hooks_make(&hooks);
    llmgw_ledger_writer_t *w;
    apr_pool_t *child;
    const char *msg;
    apr_uint64_t written, waiting, lost;
    llmgw_ledger_row_t r = row_of("k", 1, T0);
    int i;

    cfg->queue = 4;
    ck_assert_int_eq(llmgw_ledger_prepare(test_pool, cfg, &msg), APR_SUCCESS);
    apr_pool_create(&child, test_pool);
    ck_assert_int_eq(llmgw_ledger_writer_start(&w, child, cfg, &hooks), APR_SUCCESS);
    for (i = 0; i < 300; i++)
        ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    ck_assert_int_eq(wait_for(h, 300, 10), 300);
    llmgw_ledger_counts(w, &written, &waiting, &lost);
    ck_assert_uint_eq(lost, 0);
    ck_assert_uint_eq(written, 300);
    apr_pool_destroy(child);
    ck_assert_int_eq(count_rows(path, NULL), 300);
    ck_assert_int_eq(h->errors, 0);
}
END_TEST

/* Stopping writes everything queued first (graceful restart). */
START_TEST(test_stop_drains)
{
    const char *path = apr_pstrcat(test_pool, tmpdir(), "/ledger.db", NULL);
    llmgw_ledger_cfg_t *cfg = sqlite_cfg(path);
    llmgw_ledger_hooks_t hooks;
    hooks_state_t *h = hooks_make(&hooks);
    llmgw_ledger_writer_t *w;
    apr_pool_t *child;
    const char *msg;
    llmgw_ledger_row_t r = row_of("k", 1, T0);
    int i;

    cfg->queue = 2000;
    ck_assert_int_eq(llmgw_ledger_prepare(test_pool, cfg, &msg), APR_SUCCESS);
    apr_pool_create(&child, test_pool);
    ck_assert_int_eq(llmgw_ledger_writer_start(&w, child, cfg, &hooks), APR_SUCCESS);
    for (i = 0; i < 1500; i++)
        ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    apr_pool_destroy(child);
    ck_assert_int_eq(count_rows(path, NULL), 1500);
    ck_assert_int_eq(h->errors, 0);
}
END_TEST

/*
 * The database cannot be written (its directory is gone): rows wait, the
 * error is logged once, a full ring refuses and counts; once the database
 * is back the rows that waited are written.
 */
START_TEST(test_database_down_rows_wait)
{
    const char *dir = tmpdir();
    const char *path = apr_pstrcat(test_pool, dir, "/sub/ledger.db", NULL);
    llmgw_ledger_cfg_t *cfg = sqlite_cfg(path);
    llmgw_ledger_hooks_t hooks;
    hooks_state_t *h = hooks_make(&hooks);
    llmgw_ledger_writer_t *w;
    apr_pool_t *child;
    const char *msg;
    apr_uint64_t written, waiting, lost;
    llmgw_ledger_row_t r = row_of("k", 5, T0);
    int i, errors;

    cfg->queue = 10;
    apr_pool_create(&child, test_pool);
    ck_assert_int_eq(llmgw_ledger_writer_start(&w, child, cfg, &hooks), APR_SUCCESS);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    for (i = 0; i < 40 && !h->errors; i++)
        apr_sleep(apr_time_from_msec(50));
    apr_thread_mutex_lock(h->mu);
    errors = h->errors;
    apr_thread_mutex_unlock(h->mu);
    ck_assert_int_eq(errors, 1);
    ck_assert_msg(strstr(h->last_error, "row(s) wait") != NULL, "%s", h->last_error);
    /* 5 waiting (in the writer's batch); 10 more fill the ring; then refusals. */
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_EAGAIN);
    llmgw_ledger_counts(w, &written, &waiting, &lost);
    ck_assert_uint_eq(written, 0);
    ck_assert_uint_eq(waiting, 15);
    ck_assert_uint_eq(lost, 1);
    /* The database comes back. */
    ck_assert_int_eq(mkdir(apr_pstrcat(test_pool, dir, "/sub", NULL), 0700), 0);
    ck_assert_int_eq(llmgw_ledger_prepare(test_pool, cfg, &msg), APR_SUCCESS);
    ck_assert_int_eq(wait_for(h, 15, 10), 15);
    ck_assert_int_eq(count_rows(path, NULL), 15);
    ck_assert_int_eq(h->infos, 1); /* "reachable again" */
    apr_pool_destroy(child);
}
END_TEST

/* A database still down at exit: the writer gives up after its wait and says how many rows. */
START_TEST(test_stop_with_database_down)
{
    const char *path = apr_pstrcat(test_pool, tmpdir(), "/missing/ledger.db", NULL);
    llmgw_ledger_cfg_t *cfg = sqlite_cfg(path);
    llmgw_ledger_hooks_t hooks;
    hooks_state_t *h = hooks_make(&hooks);
    llmgw_ledger_writer_t *w;
    apr_pool_t *child;
    llmgw_ledger_row_t r = row_of("k", 5, T0);
    apr_time_t start;

    apr_pool_create(&child, test_pool);
    ck_assert_int_eq(llmgw_ledger_writer_start(&w, child, cfg, &hooks), APR_SUCCESS);
    ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_SUCCESS);
    start = apr_time_now();
    llmgw_ledger_writer_stop(w, apr_time_from_msec(300));
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(5));
    ck_assert_int_eq(llmgw_ledger_submit(w, &r), APR_EOF);
    ck_assert_msg(strstr(h->last_error, "2 ledger row(s) could not be written") != NULL, "%s",
                  h->last_error);
    apr_pool_destroy(child);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ledger");
    apr_pool_t *global;

    /* apr_dbd keeps its driver table in APR's global pool, and apr_dbd_init
     * runs only once per process: hold APR initialised for the whole suite,
     * so that the fixtures' apr_terminate does not tear it down between tests
     * when they run in one process (CK_FORK=no, valgrind). */
    apr_initialize();
    apr_pool_create(&global, NULL);
    apr_dbd_init(global);
    TCase *tc = tcase_create("ledger");

    tcase_add_checked_fixture(tc, setup, test_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prepare_creates_schema);
    tcase_add_test(tc, test_writer_writes_and_totals);
    tcase_add_test(tc, test_stop_drains);
    tcase_add_test(tc, test_full_queue_waits_while_the_database_answers);
    tcase_add_test(tc, test_database_down_rows_wait);
    tcase_add_test(tc, test_stop_with_database_down);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
