/**
 * @file llmgw_stats.h
 * @brief Per-backend statistics in one shared-memory segment, shared by
 *        every httpd child, and the cooldown (circuit breaker) state.
 *
 * The glue creates one anonymous apr_shm segment in post_config (in
 * s->process->pool, so it survives graceful restarts), calls
 * llmgw_stats_init() on a new one and llmgw_stats_assign() on every
 * (re)start; children inherit the mapping and only update counters. Every
 * function here works on a plain `void *base`, so the unit tests use
 * malloc'ed memory.
 *
 * Layout (all offsets in bytes, little details in the structs below):
 *
 *   base
 *   +----------------------------------------------------------------+ 0
 *   | header (128 bytes)                                             |
 *   |     0  magic "LGWS" | layout_version | capacity | slot_size    |
 *   |    16  created (wall clock) | generation | nrows | rows_used | |
 *   |        row_size | reserved                                     |
 *   |    64  control_key[32]      random at init: the HMAC key of    |
 *   |                             the status page's nonces           |
 *   |    96  reserved                                                |
 *   +----------------------------------------------------------------+ 128
 *   | slot 0 (256 bytes, 64-aligned)                                 |
 *   |     0  name[64]                      key; "" while FREE        |
 *   |    64  state, kind                   FREE/ACTIVE/RETIRED, type |
 *   |    72  index, consecutive_failures               32-bit        |
 *   |    80  latency_ewma_us, ttfb_ewma_us              32-bit        |
 *   |    88  latency_samples, rr_cursor                 32-bit        |
 *   |    96  requests, successes, errors[6], retries,   64-bit        |
 *   |        fallbacks, aborted, prompt_tokens,                      |
 *   |        completion_tokens                                       |
 *   |   200  cooldown_until, probe_since               monotonic     |
 *   |   216  last_success, last_failure                wall clock    |
 *   |   232  drained                       0/1, set by an operator   |
 *   |   236  reserved                                  (0 = none)    |
 *   |   240  cooldown_period                 the last one armed, us |
 *   |   248  reserved                                  (0 = none)    |
 *   +----------------------------------------------------------------+ 384
 *   | slot 1 ... slot capacity-1                                     |
 *   +----------------------------------------------------------------+ R = 128 + 256 * capacity
 *   | row 0 (row_size = 64 + I + C, I = capacity * 4 and             |
 *   |        C = capacity * 104, each rounded up to 64)              |
 *   |     0  pid (0: shared row, never owned) | slots | reserved      |
 *   |    64  inflight[capacity]                32-bit, per slot      |
 *   |  64+I  counts[capacity]                  llmgw_stats_counts_t: |
 *   |        requests, successes, errors[6], retries, fallbacks,     |
 *   |        aborted, prompt_tokens, completion_tokens (64-bit)      |
 *   +----------------------------------------------------------------+ R + row_size
 *   | row 1 ... row nrows-1: one per child process (pid, 0 = free)  |
 *   +----------------------------------------------------------------+ R + row_size * nrows
 *
 * One slot per configured backend, pools included (a pool's slot holds its
 * round-robin cursor, and the glue may count the pool's own requests,
 * fallbacks and outcomes there). Slots are keyed by name (the glue makes
 * the key; with several gateways it is the backend name qualified by the
 * gateway, llmgw_slots.h): a name keeps its slot, and so its counters,
 * across graceful restarts. A slot whose name left the configuration
 * becomes RETIRED and is never handed to another name while the segment
 * lives, because children of the previous generation may still be writing
 * to it (apache-notes.md 5.2).
 *
 * In-flight attempts are counted per child process, in rows the readers
 * sum (httpd's scoreboard does the same for its workers): a child claims a
 * free row in child_init (llmgw_stats_child_claim) and, when it dies, the
 * parent zeroes and frees it (llmgw_stats_child_release), so a child killed
 * in the middle of requests does not leave them counted for ever. Row 0
 * is shared by processes that found no free row; only what they count can
 * outlive them. Rows are claimed by pid rather than indexed by scoreboard
 * slot: a 2.4 child does not know its slot in child_init, and event/worker
 * give a slot to a new child while the exiting one still finishes requests
 * (MPM_CHILD_LOST_SLOT).
 *
 * The hot counters are sharded the same way: an attempt's requests,
 * successes, errors, retries, fallbacks, aborts and tokens are added to
 * its process's row (counts[slot]), so threads of different children never
 * write one cache line; readers (llmgw_stats_counts, the snapshots, the
 * strategies' features) add the slot's own fields and every row. The
 * slot's own fields take what is recorded without a row (NULL) and what
 * released rows held: llmgw_stats_child_release folds a dead child's counts
 * into them, so totals survive the child. The breaker's fields, the
 * latency averages and the times stay in the slot: every child must see
 * them at once.
 *
 * Clocks: deadlines kept here (cooldown_until, probe_since) are on the
 * monotonic clock, CLOCK_MONOTONIC, which is one clock for every process of
 * the host, so that stepping the wall clock neither expires every cooldown
 * at once nor freezes them. Wall-clock times are only kept to be shown
 * (created, last_success, last_failure). Every function taking a time gets
 * both (llmgw_stats_time_t), and uses each for its purpose.
 *
 * Concurrency: the identity fields (name, state, kind, index), the header
 * and the rows' layout are written only by llmgw_stats_init/assign, which
 * run in the single-threaded parent; a row's pid is claimed and released
 * with CAS. Everything else is updated lock-free with apr_atomic_*;
 * readers load field by field, so a snapshot is not atomic across fields,
 * which is fine for metrics (mod_status reads the scoreboard the same way).
 *
 * 64-bit fields use APR's 64-bit atomics. Where 8-byte atomics are not
 * lock-free APR falls back to a process-local mutex, which would be wrong
 * across processes, so llmgw_stats.c refuses to build where the compiler
 * has no lock-free 8-byte atomics (_Static_assert; it checks the compiler,
 * not how APR was built). On 32-bit targets APR before 1.7.4 reads 64-bit fields
 * with a plain load that may tear; the updates stay atomic, a torn
 * counter only shows in one status page, and a torn cooldown deadline at
 * worst misjudges one availability check (the probe CAS then fails safely).
 *
 * Cooldown state machine of one backend (times injected by the caller):
 *
 *   AVAILABLE --failure #threshold (or 401/402/403)--> COOLING
 *   COOLING   --now >= cooldown_until-->  probe possible
 *   probe possible --first llmgw_stats_available() wins the CAS--> PROBE
 *                  (every other caller sees COOLING while it runs)
 *   PROBE --success--> AVAILABLE (counters of the breaker reset)
 *   PROBE --failure--> COOLING again for another cooldown period
 *
 * The period is the caller's: the pool's policy (llmgw_pool_cooldown_next)
 * starts short and doubles after each failed probe; the slot keeps the last
 * period armed (cooldown_period, llmgw_stats_cooldown_period) so that the next
 * one can be derived from it, and a success forgets it.
 *   PROBE --llmgw_stats_probe_release() (attempt never made)--> probe possible
 *
 * A probe that never ends (its child died) is given up after
 * LLMGW_STATS_PROBE_STALE and the next caller probes.
 *
 * Drain: an operator may take a backend out of rotation from the status
 * page (llmgw_stats_set_drained). The flag lives in the slot, so every
 * child sees it at once and it survives graceful restarts with the slot's
 * counters; pools skip a drained member as they skip a cooling one, but it
 * is never probed: only the operator brings it back. It is independent of
 * the breaker, which keeps counting the attempts still running.
 */
#ifndef LLMGW_STATS_H
#define LLMGW_STATS_H

#include "llmgw.h"
#include "llmgw_error.h"

#define LLMGW_STATS_MAGIC 0x5357474cU /* "LGWS" read as little-endian bytes */
#define LLMGW_STATS_LAYOUT_VERSION 4U
/** Longest stored name, NUL included; longer names are shortened (see assign). */
#define LLMGW_STATS_NAME_MAX 64
/** Slot kind when the backend type is not known. */
#define LLMGW_STATS_KIND_UNKNOWN 0xffffffffU
/** A probe running longer than this is taken to be lost (its child died). */
#define LLMGW_STATS_PROBE_STALE apr_time_from_sec(900)
/** Bytes of the segment's control key (llmgw_stats_control_key). */
#define LLMGW_STATS_KEY_LEN 32
/** Most per-child rows of a segment (llmgw_stats_rows_for). */
#define LLMGW_STATS_MAX_ROWS 4097

/**
 * A moment on both clocks. Deadlines kept in shared memory compare with
 * @c mono; @c wall is only stored where a time is shown to people.
 */
typedef struct {
    apr_time_t mono; /**< CLOCK_MONOTONIC in microseconds: the same in every process */
    apr_time_t wall; /**< apr_time_now() */
} llmgw_stats_time_t;

/** Both clocks now; any process, any thread. */
llmgw_stats_time_t llmgw_stats_time_now(void);

typedef enum {
    LLMGW_STATS_SLOT_FREE = 0,
    LLMGW_STATS_SLOT_ACTIVE = 1,
    LLMGW_STATS_SLOT_RETIRED = 2
} llmgw_stats_slot_state_e;

/** Error classes counted per backend (the `class` label of llmgw_errors_total). */
typedef enum {
    LLMGW_STATS_ERR_4XX = 0,  /**< upstream 4xx other than 429 */
    LLMGW_STATS_ERR_429,      /**< upstream 429: rate limited */
    LLMGW_STATS_ERR_5XX,      /**< upstream 5xx (and any other non-2xx answer) */
    LLMGW_STATS_ERR_TIMEOUT,  /**< connect/first-byte/overall timeout, idle stream */
    LLMGW_STATS_ERR_CONNECT,  /**< DNS, TCP, TLS: nothing was sent */
    LLMGW_STATS_ERR_PROTOCOL, /**< reset after sending, malformed or cut answer */
    LLMGW_STATS_ERR_COUNT
} llmgw_stats_err_e;

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t layout_version;
    apr_uint32_t capacity;            /**< number of slots */
    apr_uint32_t slot_size;           /**< sizeof(llmgw_stats_slot_t) at creation */
    apr_uint64_t created;             /**< wall-clock apr_time_t of llmgw_stats_init */
    volatile apr_uint32_t generation; /**< number of llmgw_stats_assign runs */
    apr_uint32_t nrows;               /**< per-child rows, row 0 (shared) included */
    volatile apr_uint32_t rows_used;  /**< rows ever claimed, + 1: readers sum these */
    apr_uint32_t row_size;            /**< bytes per row */
    apr_uint64_t reserved[3];
    /** Random bytes drawn when the segment is made: a secret every child
     *  shares and that survives graceful restarts with the segment. */
    unsigned char control_key[LLMGW_STATS_KEY_LEN];
    apr_uint64_t reserved2[4];
} llmgw_stats_header_t;

typedef struct {
    char name[LLMGW_STATS_NAME_MAX];
    volatile apr_uint32_t state; /**< llmgw_stats_slot_state_e */
    volatile apr_uint32_t kind;  /**< llmgw_backend_type_e, or LLMGW_STATS_KIND_UNKNOWN */

    apr_uint32_t index; /**< this slot's number: its column in the per-child rows */
    volatile apr_uint32_t consecutive_failures;
    volatile apr_uint32_t latency_ewma_us; /**< whole attempt; 0 = no sample yet */
    volatile apr_uint32_t ttfb_ewma_us;    /**< time to first byte; 0 = no sample yet */
    volatile apr_uint32_t latency_samples; /**< since creation or the last recovery */
    volatile apr_uint32_t rr_cursor;       /**< round-robin turn of a pool */

    volatile apr_uint64_t requests; /**< attempts started */
    volatile apr_uint64_t successes;
    volatile apr_uint64_t errors[LLMGW_STATS_ERR_COUNT];
    volatile apr_uint64_t retries;
    volatile apr_uint64_t fallbacks;
    volatile apr_uint64_t aborted; /**< ended by the client or the gateway, not the upstream */
    volatile apr_uint64_t prompt_tokens;
    volatile apr_uint64_t completion_tokens;

    volatile apr_uint64_t cooldown_until; /**< monotonic apr_time_t; 0 = not cooling */
    volatile apr_uint64_t probe_since;    /**< monotonic time a probe started; 0 = none */
    volatile apr_uint64_t last_success;   /**< wall-clock apr_time_t; 0 = never */
    volatile apr_uint64_t last_failure;   /**< wall-clock apr_time_t; 0 = never */
    volatile apr_uint32_t drained;        /**< 1: an operator took it out of rotation */
    apr_uint32_t reserved32;
    /** the period of the last cooldown armed (us); 0 since creation or the last success */
    volatile apr_uint64_t cooldown_period;
    apr_uint64_t reserved[1];
} llmgw_stats_slot_t;

/** One process's share of a slot's hot counters (the row's counts[], see the layout above). */
typedef struct {
    volatile apr_uint64_t requests;
    volatile apr_uint64_t successes;
    volatile apr_uint64_t errors[LLMGW_STATS_ERR_COUNT];
    volatile apr_uint64_t retries;
    volatile apr_uint64_t fallbacks;
    volatile apr_uint64_t aborted;
    volatile apr_uint64_t prompt_tokens;
    volatile apr_uint64_t completion_tokens;
} llmgw_stats_counts_t;

/** One process's in-flight attempts and counts per slot (see the layout above). */
typedef struct {
    volatile apr_uint32_t pid; /**< owning child; 0 = free (row 0: shared, never owned) */
    apr_uint32_t slots;        /**< entries in inflight[] (the capacity) */
    apr_uint32_t reserved[14];
    volatile apr_uint32_t inflight[]; /**< attempts this process has running, per slot */
} llmgw_stats_row_t;

/** Bytes of shared memory for @p capacity slots and @p nrows per-child rows. */
apr_size_t llmgw_stats_size(int capacity, int nrows);

/** A capacity with room to grow for @p nbackends backends: max(64, 2 * n). */
int llmgw_stats_capacity_for(int nbackends);

/**
 * Rows for at most @p max_children child processes at a time (httpd's
 * ServerLimit): twice that, because exiting children of event/worker may
 * live on beside the ones that took over their scoreboard slots, plus the
 * shared row 0; at most LLMGW_STATS_MAX_ROWS.
 */
int llmgw_stats_rows_for(int max_children);

/**
 * Format a new segment: header with a fresh random control key, every slot
 * FREE and zero, every row free.
 * @param base      at least llmgw_stats_size(@p capacity, @p nrows) bytes, 8-byte
 *                  aligned (apr_shm gives page alignment; 64 avoids false sharing)
 * @param nrows     per-child rows, the shared row 0 included (>= 1)
 * @param created   wall-clock creation time recorded in the header
 * @return APR_SUCCESS, APR_EINVAL for a NULL/misaligned base, capacity < 1
 *         or nrows < 1, or the error of apr_generate_random_bytes
 */
apr_status_t llmgw_stats_init(void *base, int capacity, int nrows, apr_time_t created);

/**
 * 1 when @p base holds a segment of this layout (magic, version, slot size)
 * that fits in @p size bytes and has at least @p capacity slots and @p nrows
 * rows; 0 when the caller must create and init a new segment. Whether the
 * names of a new configuration fit is llmgw_stats_assign's APR_ENOSPC.
 */
int llmgw_stats_fits(const void *base, apr_size_t size, int capacity, int nrows);

/**
 * Map backend names to slots; parent only, single-threaded, on every
 * (re)start. Known names (ACTIVE or RETIRED) keep their slot and counters;
 * new names take the first FREE slot, zeroed; ACTIVE slots whose name is
 * not in @p names become RETIRED and are never given to another name.
 * Names of LLMGW_STATS_NAME_MAX bytes or more are stored as a prefix plus a
 * hash of the whole name, so distinct names never share a slot.
 *
 * @param names  @p n names (duplicates get the same slot)
 * @param kinds  @p n backend types (llmgw_backend_type_e), or NULL
 * @param out_slot receives the slot index of each name
 * @return APR_SUCCESS; APR_ENOSPC when the free slots do not suffice, and
 *         then nothing was changed; APR_EINVAL for a segment that is not ours
 */
apr_status_t llmgw_stats_assign(void *base, const char *const *names, const int *kinds, int n,
                                int *out_slot);

/** Slot @p index, or NULL when @p base is NULL or @p index is out of range. */
llmgw_stats_slot_t *llmgw_stats_slot(void *base, int index);

/**
 * The segment's control key, LLMGW_STATS_KEY_LEN random bytes drawn by
 * llmgw_stats_init: the same in every child, for as long as the segment
 * lives (graceful restarts included). NULL when @p base is not ours.
 */
const unsigned char *llmgw_stats_control_key(const void *base);

/** Map an outcome to its error class; -1 when it is not the upstream's fault. */
int llmgw_stats_classify(llmgw_fail_e fail, int status);

/** "4xx", "429", "5xx", "timeout", "connect", "protocol". */
const char *llmgw_stats_err_name(llmgw_stats_err_e e);

/*
 * Per-child rows of in-flight attempts.
 */

/**
 * Claim a free row for process @p pid; child_init. A row @p pid already
 * holds is returned again. Its counts start at zero.
 * @return the row; the shared row 0 when every row is taken; NULL when
 *         @p base is not a segment of ours or @p pid is 0
 */
llmgw_stats_row_t *llmgw_stats_child_claim(void *base, apr_uint32_t pid);

/**
 * Process @p pid has ended: add its row's counts to the slots' own fields,
 * zero the row and free it; parent only (the MPM's child_status hook),
 * after the child was reaped, so nothing writes to the row any more.
 * @return the attempts that were still counted in flight in the row, or -1
 *         when @p pid held no row
 */
int llmgw_stats_child_release(void *base, apr_uint32_t pid);

/** In-flight attempts of slot @p index: the sum over the rows in use. 0 for a bad base/index. */
apr_uint32_t llmgw_stats_inflight(const void *base, int index);

/**
 * The hot counters of slot @p index: its own fields plus every row in use
 * (tokens capped at LLMGW_TOKENS_MAX). All zero for a bad base/index.
 */
void llmgw_stats_counts(const void *base, int index, llmgw_stats_counts_t *out);

/** Attempts started on slot @p index (the requests of llmgw_stats_counts). */
apr_uint64_t llmgw_stats_requests(const void *base, int index);

/*
 * Recording, from any thread of any child. Each function accepts a NULL
 * slot and then does nothing, so the glue need not test for a missing
 * segment. @p row is the recording process's (llmgw_stats_child_claim):
 * the counts go there; with NULL they go to the slot's own fields.
 */

/**
 * An attempt starts: requests++, and one more in flight in @p row (this
 * process's, from llmgw_stats_child_claim; NULL counts no in-flight).
 * Pair with llmgw_stats_end on the same row.
 */
void llmgw_stats_begin(llmgw_stats_slot_t *s, llmgw_stats_row_t *row);

/** The attempt is over, whatever happened: one less in flight in @p row (never below 0). */
void llmgw_stats_end(llmgw_stats_slot_t *s, llmgw_stats_row_t *row);

/**
 * A successful attempt. Clears the breaker (consecutive failures, cooldown,
 * probe); a backend that was cooling starts a fresh latency average so the
 * latency strategy measures it again.
 * @param latency  whole attempt
 * @param ttfb     time to first byte, < 0 when unknown
 * @param prompt_tokens, completion_tokens  usage, < 0 when unknown
 */
void llmgw_stats_success(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                         apr_interval_time_t latency, apr_interval_time_t ttfb,
                         apr_int64_t prompt_tokens, apr_int64_t completion_tokens);

/**
 * A failed attempt of class @p cls (llmgw_stats_classify): counts it and
 * stamps last_failure; a class < 0 (not the upstream's fault) counts as
 * aborted. The breaker is not touched: whether a failure counts against the
 * backend is the pool's policy (llmgw_pool_record_failure).
 */
void llmgw_stats_error(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                       int cls);

/**
 * One more consecutive failure; the @p threshold-th one, and every further
 * one, (re)arms the cooldown: cooldown_until = now.mono + @p cooldown (kept
 * as the slot's cooldown_period), and ends any probe. A @p threshold of 1
 * or less arms it at once.
 * @return 1 when this strike armed the cooldown, else 0 (0 for a NULL slot)
 */
int llmgw_stats_strike(llmgw_stats_slot_t *s, llmgw_stats_time_t now, int threshold,
                       apr_interval_time_t cooldown);

/**
 * The period of the last cooldown armed on @p s, 0 when none was since its
 * creation or its last success (0 for a NULL slot).
 */
apr_interval_time_t llmgw_stats_cooldown_period(const llmgw_stats_slot_t *s);

/**
 * One stream event of an otherwise healthy attempt could not be understood
 * and was skipped: counted as a protocol error; the breaker is not fed.
 */
void llmgw_stats_protocol_error(llmgw_stats_slot_t *s, llmgw_stats_row_t *row);

/** The attempt will be repeated on the same backend. */
void llmgw_stats_retry(llmgw_stats_slot_t *s, llmgw_stats_row_t *row);

/**
 * Put a backend in cooldown now, whatever its failure count: for failures
 * that waiting will not clear (an exhausted quota, providers.md 9.2).
 */
void llmgw_stats_cool(llmgw_stats_slot_t *s, llmgw_stats_time_t now, apr_interval_time_t cooldown);

/** The request moves on to the next candidate (count it on the member left, and the pool). */
void llmgw_stats_fallback(llmgw_stats_slot_t *s, llmgw_stats_row_t *row);

typedef enum {
    LLMGW_STATS_AVAILABLE = 0, /**< not cooling: use it */
    LLMGW_STATS_COOLING,       /**< skip it */
    LLMGW_STATS_PROBE          /**< cooldown over: the caller's attempt is the single probe */
} llmgw_stats_avail_e;

/**
 * Claim the right to use a backend now. When its cooldown has expired,
 * exactly one caller (across processes) gets LLMGW_STATS_PROBE; it must end
 * the probe with llmgw_stats_success/failure, or llmgw_stats_probe_release
 * when it does not make the attempt after all. A NULL slot is AVAILABLE.
 */
llmgw_stats_avail_e llmgw_stats_available(llmgw_stats_slot_t *s, llmgw_stats_time_t now);

/**
 * As llmgw_stats_available, without claiming: LLMGW_STATS_PROBE means a
 * probe could start now. For ordering candidates.
 */
llmgw_stats_avail_e llmgw_stats_peek(const llmgw_stats_slot_t *s, llmgw_stats_time_t now);

/**
 * Time left in the cooldown of @p s at monotonic @p mono: -1 when it is not
 * cooling (or NULL), 0 when the cooldown is over and only a probe is due.
 */
apr_interval_time_t llmgw_stats_cooldown_left(const llmgw_stats_slot_t *s, apr_time_t mono);

/** What a strategy reads of a backend: its load and latency now. */
typedef struct {
    apr_uint32_t inflight;   /**< attempts running, all processes */
    apr_uint32_t latency_us; /**< EWMA of whole attempts; 0 = no sample */
    apr_uint32_t ttfb_us;    /**< EWMA of time to first byte; 0 = no sample */
    apr_uint32_t samples;    /**< latency samples since creation or recovery */
    apr_uint64_t requests;   /**< attempts ever started */
} llmgw_stats_load_t;

/** Read @p s of the segment @p base into @p out (zeros for a NULL slot); each field atomically. */
void llmgw_stats_load(const void *base, const llmgw_stats_slot_t *s, llmgw_stats_load_t *out);

/** The round-robin cursor of a pool's slot, for its strategy; NULL for a NULL slot. */
volatile apr_uint32_t *llmgw_stats_rr_cursor(llmgw_stats_slot_t *s);

/** Give up a claimed probe without an outcome (e.g. the client left first). */
void llmgw_stats_probe_release(llmgw_stats_slot_t *s);

/**
 * Take a backend out of rotation (@p drained 1) or put it back (0); any
 * process, any thread. Attempts already running finish; pools stop
 * choosing it (llmgw_pool_candidates) until it is re-enabled. The breaker
 * state is left alone. A NULL slot is ignored.
 * @return the previous value (0 for a NULL slot)
 */
int llmgw_stats_set_drained(llmgw_stats_slot_t *s, int drained);

/** 1 when an operator drained the backend; 0 otherwise and for NULL. */
int llmgw_stats_drained(const llmgw_stats_slot_t *s);

/**
 * Lock-free EWMA with alpha 1/8 in microseconds: the first sample sets the
 * value, later ones move it an eighth of the way. A lost race retries.
 */
void llmgw_stats_ewma_update(volatile apr_uint32_t *v, apr_interval_time_t sample);

/* ------------------------------------------------------------------ */
/* Reading: snapshots (rendered by llmgw_stats_render.h)               */

typedef enum {
    LLMGW_STATS_UP = 0,
    LLMGW_STATS_IN_COOLDOWN, /**< skipped; remaining time in cooldown_until - now.mono */
    LLMGW_STATS_PROBING      /**< cooldown over, one probe request is running */
} llmgw_stats_health_e;

/** A plain copy of one slot. */
typedef struct {
    int slot;
    char name[LLMGW_STATS_NAME_MAX]; /**< the slot's key, or the name the caller gave */
    int kind;                        /**< as assigned (llmgw_backend_type_e), or -1 unknown */
    llmgw_stats_health_e health;
    apr_uint64_t requests, successes, errors[LLMGW_STATS_ERR_COUNT];
    apr_uint64_t retries, fallbacks, aborted, prompt_tokens, completion_tokens;
    apr_uint32_t inflight, consecutive_failures, latency_ewma_us, ttfb_ewma_us, latency_samples;
    apr_time_t cooldown_until, probe_since; /**< monotonic */
    apr_time_t last_success, last_failure;  /**< wall clock */
    int drained;                            /**< taken out of rotation by an operator */
} llmgw_stats_view_t;

typedef struct {
    apr_time_t created;      /**< the segment's creation (wall clock) */
    llmgw_stats_time_t now;  /**< when the snapshot was taken */
    apr_uint32_t generation; /**< assign runs; the glue may overwrite it with httpd's */
    int capacity;
    int retired; /**< RETIRED slots of the segment */
    int nelts;
    llmgw_stats_view_t *items; /**< the slots listed, in order */
} llmgw_stats_snapshot_t;

/**
 * Copy every ACTIVE slot of @p base, in slot order and named by their keys,
 * into @p p. Torn reads across fields are accepted; each field is read
 * atomically.
 * @return APR_SUCCESS, or APR_EINVAL when @p base is not a segment of ours
 */
apr_status_t llmgw_stats_snapshot(apr_pool_t *p, const void *base, llmgw_stats_time_t now,
                                  llmgw_stats_snapshot_t **out);

/**
 * Copy the @p n slots @p slots into @p p, in that order, the i-th named
 * @p names[i]: one gateway's backends, as its status page shows them.
 * @return APR_SUCCESS; APR_EINVAL when @p base is not a segment of ours or
 *         a slot number is out of range
 */
apr_status_t llmgw_stats_snapshot_slots(apr_pool_t *p, const void *base, llmgw_stats_time_t now,
                                        const int *slots, const char *const *names, int n,
                                        llmgw_stats_snapshot_t **out);

/** Sum of the error classes. */
apr_uint64_t llmgw_stats_view_errors(const llmgw_stats_view_t *v);

/** errors / (successes + errors), 0 when nothing finished. */
double llmgw_stats_view_error_rate(const llmgw_stats_view_t *v);

/** "up", "cooldown", "probing". */
const char *llmgw_stats_health_name(llmgw_stats_health_e h);

#endif /* LLMGW_STATS_H */
