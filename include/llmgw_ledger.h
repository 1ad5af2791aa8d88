/**
 * @file llmgw_ledger.h
 * @brief The usage ledger: one database row per admitted request, written
 *        through apr_dbd by a writer thread per child, off the request path.
 *
 * `ledger: {driver: sqlite3, params: /var/lib/apache2/llmgw/ledger.db}`
 * (the default kind: one file, no server) or `{driver: pgsql, params:
 * "host=db dbname=llmgw user=llmgw"}` (several httpd nodes sharing budgets).
 * The drivers are APR-util's, from Debian's libaprutil1-dbd-sqlite3 and
 * libaprutil1-dbd-pgsql; configtest loads the one named and names the
 * package when it is missing (llmgw_ledger_driver_check).
 *
 * The table, created on first start (llmgw_ledger_prepare, in the parent):
 *
 *   llmgw_ledger(id, time_us, time, kind, name, route, backend,
 *                requested_model, model, prompt_tokens, cached_tokens,
 *                completion_tokens, cost_nusd, cost_usd, status, error,
 *                attempts)
 *
 * time_us is the answer's wall-clock time in microseconds since the epoch
 * (time: the same as RFC 3339 UTC text, for people), kind is "key" or
 * "principal", name the key's or principal's name (never a key),
 * cost_nusd the exact cost in nano-USD (NULL: unpriced) and cost_usd the
 * same in USD for people. Budgets sum cost_nusd by name from the start of
 * their period (llmgw_ledger_totals), reading the period's rows through an
 * index on time_us; an index on a value that only grows is the cheapest to
 * keep up on insert (always the right-most page), and the ids are plain
 * row ids (no AUTOINCREMENT bookkeeping per row).
 *
 * The writer. Requests hand rows to llmgw_ledger_submit, which only takes
 * a mutex and appends to a bounded ring (`queue:`, default
 * LLMGW_LEDGER_DEFAULT_QUEUE rows); one thread per child and per database
 * takes up to LLMGW_LEDGER_BATCH rows at a time, gathered for at most 50 ms,
 * and inserts them in one transaction (SQLite in WAL mode with
 * synchronous=NORMAL: no fsync per transaction). When the database cannot be reached or refuses the
 * batch, the rows stay in the writer and the ring, the error log says so once (and again when it
 * recovers, with how many rows waited), and the writer retries with a back-off of 1 s doubling up
 * to 30 s. Only when the ring is full are new rows refused, counted and logged: the request path
 * never waits for the database.
 *
 * What can be lost. On graceful restart and stop a child drains its writer
 * before it exits: every row is written (if the database is down then, the
 * child waits up to LLMGW_LEDGER_DRAIN for it and logs how many rows it
 * could not write). A crash of a child (a signal, kill -9) loses the rows
 * in its ring and batch: those of requests answered in the last moments,
 * normally under a second's worth, at most `queue:` rows. A crash of the
 * machine itself can also lose SQLite's last transactions (no fsync per
 * commit); PostgreSQL follows its own synchronous_commit. The budget
 * counters in shared memory (llmgw_limits.h) had already counted their
 * cost, so the budget still holds while the segment lives; only the
 * history misses them.
 *
 * Threads: llmgw_ledger_submit from any request thread; everything else
 * from the thread or process documented at each function.
 */
#ifndef LLMGW_LEDGER_H
#define LLMGW_LEDGER_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_access.h"

#define LLMGW_LEDGER_DEFAULT_QUEUE 10000
#define LLMGW_LEDGER_MAX_QUEUE 1000000
/** Rows per transaction. */
#define LLMGW_LEDGER_BATCH 256
/**
 * How long a request waits for room in a full queue while the database
 * answers (the writer is behind, not stuck): under sustained overload the
 * gateway slows to what the database takes instead of losing rows. While
 * the database does not answer, a full queue refuses at once.
 */
#define LLMGW_LEDGER_FULL_WAIT apr_time_from_sec(2)
/**
 * How long a child exiting waits for its rows to be written when the
 * database does not answer: well within the time httpd gives a child to
 * exit on stop before it kills it.
 */
#define LLMGW_LEDGER_DRAIN apr_time_from_sec(4)

/** `ledger:` of a gateway.yaml. */
typedef struct llmgw_ledger_cfg_t {
    const char *driver; /**< "sqlite3" or "pgsql" */
    const char
        *params; /**< the file (relative paths already made absolute by the glue) or conninfo */
    int queue;   /**< ring size; LLMGW_UNSET: LLMGW_LEDGER_DEFAULT_QUEUE */
    llmgw_mark_t mark, driver_mark;
} llmgw_ledger_cfg_t;

/** One request. Plain memory: it outlives the request (malloc'ed by submit). */
typedef struct {
    apr_time_t time; /**< wall clock */
    llmgw_access_kind_e kind;
    char name[128];
    char route[64];
    char backend[64];
    char requested_model[128];
    char model[128];
    apr_int64_t prompt_tokens, cached_tokens, completion_tokens; /**< -1: unknown */
    apr_int64_t cost;                                            /**< nano-USD; -1: unpriced */
    int status;
    char error[48];
    int attempts;
    /* For the committed hook: which budget counter the row's cost is in. */
    int slot;                         /**< limits slot, -1: none */
    const llmgw_budget_cfg_t *budget; /**< the entry's budget (configuration memory) */
} llmgw_ledger_row_t;

typedef struct llmgw_ledger_writer_t llmgw_ledger_writer_t;

/** Messages of the writer thread, for the glue to log (level: 0 error, 1 warn, 2 info). */
typedef void (*llmgw_ledger_log_fn)(void *baton, int level, apr_status_t rv, const char *msg);
/** A row was committed (writer thread). */
typedef void (*llmgw_ledger_committed_fn)(void *baton, const llmgw_ledger_row_t *row);
/**
 * Time for a budget refresh (writer thread, connected): the glue decides
 * (llmgw_limits_refresh_claim) and reads totals with llmgw_ledger_totals.
 */
typedef void (*llmgw_ledger_refresh_fn)(void *baton, llmgw_ledger_writer_t *w);

typedef struct {
    llmgw_ledger_log_fn log;
    llmgw_ledger_committed_fn committed;
    llmgw_ledger_refresh_fn refresh;
    void *baton;
} llmgw_ledger_hooks_t;

/** The Debian package of an apr_dbd driver ("libaprutil1-dbd-sqlite3"), NULL when unknown. */
const char *llmgw_ledger_driver_package(const char *driver);

/**
 * Configuration time: load apr_dbd driver @p driver (apr_dbd_init first).
 * @param msg  why not: unknown driver, or its package is not installed
 */
apr_status_t llmgw_ledger_driver_check(apr_pool_t *p, const char *driver, const char **msg);

/**
 * Parent, real start: connect, create the table and its index when they
 * do not exist (sqlite3: also WAL journal mode, so children's writers and
 * readers do not block each other), disconnect.
 */
apr_status_t llmgw_ledger_prepare(apr_pool_t *p, const llmgw_ledger_cfg_t *cfg, const char **msg);

/**
 * Sum of cost_nusd per name of rows with time_us >= @p since, into @p out
 * (name -> apr_int64_t *, from @p p). Through the writer's connection
 * (refresh hook), or a connection of its own when @p w is NULL and @p cfg
 * is given (the parent at start-up).
 */
apr_status_t llmgw_ledger_totals(apr_pool_t *p, llmgw_ledger_writer_t *w,
                                 const llmgw_ledger_cfg_t *cfg, apr_time_t since, apr_hash_t **out,
                                 const char **msg);

/**
 * child_init: start the writer thread of @p cfg. It is stopped and drained
 * by a pre-cleanup of @p pchild (before the child's pools go away).
 */
apr_status_t llmgw_ledger_writer_start(llmgw_ledger_writer_t **out, apr_pool_t *pchild,
                                       const llmgw_ledger_cfg_t *cfg,
                                       const llmgw_ledger_hooks_t *hooks);

/**
 * Hand a row to the writer (copied; any thread). APR_EAGAIN when the ring
 * is full (the row is counted as lost), APR_EOF when the writer stopped.
 */
apr_status_t llmgw_ledger_submit(llmgw_ledger_writer_t *w, const llmgw_ledger_row_t *row);

/** Stop the writer: write what is queued (up to @p wait), then end the thread. Idempotent. */
void llmgw_ledger_writer_stop(llmgw_ledger_writer_t *w, apr_interval_time_t wait);

/** Rows written, waiting and lost so far (any thread). */
void llmgw_ledger_counts(llmgw_ledger_writer_t *w, apr_uint64_t *written, apr_uint64_t *waiting,
                         apr_uint64_t *lost);

/** Text of a row's kind: "key" or "principal". */
const char *llmgw_ledger_kind_name(llmgw_access_kind_e k);

#endif /* LLMGW_LEDGER_H */
