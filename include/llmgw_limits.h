/**
 * @file llmgw_limits.h
 * @brief Exact request, token, concurrency and spend limits across every
 *        httpd child, in a shared-memory segment of their own.
 *
 * One slot per limited thing: a virtual key, a listed principal, each
 * principal that the `"*"` entry covers (a dynamic slot, claimed the first
 * time that principal is seen), and each backend with `limits:`. The glue
 * makes the segment in post_config next to the statistics segment, in
 * s->process->pool, so it survives graceful restarts; slots are keyed by
 * name (qualified by the gateway's scope, llmgw_slots.h), so the counters
 * of a key that keeps its name survive a graceful restart that edits the
 * key list, a new name starts at zero and a removed one is retired (never
 * given to another name while the segment lives: children of the previous
 * generation may still write to it). Every function works on a plain
 * `void *base`, so the unit tests use malloc'ed memory and fork().
 *
 * Layout (bytes):
 *
 *   base
 *   +----------------------------------------------------------------+ 0
 *   | header (64)  magic "LGWL" | version | capacity | slot_size |    |
 *   |              nrows | row_size | rows_used | dyn_lock |         |
 *   |              refresh_at (monotonic, ledger refresh claim) | .. |
 *   +----------------------------------------------------------------+ 64
 *   | slot 0 (256 bytes)                                             |
 *   |     0  name[64]                key ("k:team-a", "p:alice@vh") |
 *   |    64  state, lock             FREE/ACTIVE/RETIRED/DYNAMIC;    |
 *   |                                lock: pid of the holder, 0 free |
 *   |    72  hash, kind, index                                       |
 *   |    88  req_start, req_count    request window (monotonic)      |
 *   |   104  tok_start, tok_count    token window (monotonic)        |
 *   |   120  concurrent              requests in flight              |
 *   |   128  period_start            budget period (wall clock, UTC) |
 *   |   136  spent_base, local_total, committed_total, reserved      |
 *   |                                nano-USD, see "Budgets"         |
 *   |   168  requests, refused[4], prompt_tokens, completion_tokens,|
 *   |        cost_total, last_used   lifetime counters (status page) |
 *   +----------------------------------------------------------------+ 64 + 256
 *   | slot 1 ... slot capacity-1                                     |
 *   +----------------------------------------------------------------+ R = 64 + 256 * capacity
 *   | row 0 (row_size = 64 + 16 * capacity)                          |
 *   |     0  pid (0: shared row, never owned)                         |
 *   |    64  {concurrent u32, pad, reserved u64}[capacity]            |
 *   +----------------------------------------------------------------+ R + row_size
 *   | row 1 ... row nrows-1: one per child process, claimed by pid   |
 *   +----------------------------------------------------------------+
 *
 * Exactness. Everything one admission decides about one slot (window
 * roll-over, rpm, tpm, concurrency, budget) is read and written inside
 * that slot's lock, a 32-bit word in the slot taken with a compare-and-swap
 * from 0 to the holder's pid and released with an atomic store (both full
 * barriers, apr_atomic_*). The critical section is a few dozen
 * instructions with no system call and no allocation. So the admissions
 * of one slot, from any thread of any child, are totally ordered by the
 * lock, each sees every earlier one's effect, and a check such as
 * `req_count < rpm` followed by `req_count++` cannot interleave with
 * another: N children together admit exactly `rpm` requests in a window,
 * never more (the counter only grows inside the lock), never fewer (a
 * refusal happens only when the counter already holds `rpm` admitted
 * requests of this window). Refusals change no limit counter, so a refused
 * request costs nothing.
 *
 * A child killed while holding a lock (kill -9 between two instructions)
 * would block the slot for ever: a waiter that has spun for
 * LLMGW_LIMITS_LOCK_STALE checks the holder with kill(pid, 0) and, when
 * that process is gone (ESRCH), takes the lock over with a
 * compare-and-swap from the dead pid. Threads of one process share a pid;
 * that is fine, the CAS from 0 is what excludes, the pid only says who to
 * check.
 *
 * Windows. A window is 60 s starting with the first request after the
 * previous window ended (not aligned to the clock): at most `rpm` requests
 * and `tpm` tokens are admitted in it; both use the monotonic clock
 * (llmgw_stats_time_t.mono), the same for every process, so stepping the
 * wall clock neither resets nor prolongs a window. The x-ratelimit-reset-*
 * headers and Retry-After tell when the current window ends.
 *
 * Tokens: reservation and reconciliation. A request reserves its estimate
 * (llmgw_access_estimate: prompt + max output) in the token window when it
 * is admitted: the check is `tok_count + estimate <= tpm`. When it is done
 * the glue settles: the reserved estimate is replaced by the tokens the
 * provider reported (streams included), or refunded when the request
 * failed; a settlement whose window has ended meanwhile only adds tokens
 * that exceed the reservation to the new window (the old one is gone, and
 * a refund there would free tokens nobody reserved). Concurrency is taken
 * at admission and given back at settlement.
 *
 * Budgets. The spend of a period is
 *
 *   spent = spent_base + local_total
 *
 * local_total: the cost of every request this httpd answered in the period
 * (added at settlement, on the request path, so it is exact at once);
 * spent_base: what the ledger database knew from elsewhere, set by a
 * refresh (startup, then every LLMGW_LIMITS_REFRESH by one child's ledger
 * writer) as `database total - committed_total`, where committed_total is
 * the part of local_total whose ledger rows this httpd had committed when
 * the refresh's query started. Rows committed between reading
 * committed_total and the query are counted twice until the next refresh:
 * the error is on the safe side. With several httpd nodes on one
 * PostgreSQL database, spent_base carries the other nodes' spend, at most
 * one refresh interval old. A request is admitted while
 * `spent + reserved < budget`, where reserved is the estimated cost of the
 * requests in flight (taken at admission, given back at settlement), so a
 * burst of concurrent requests cannot all slip under the same remaining
 * amount; the last admitted request may take the spend past the budget by
 * its own cost, no more. When the wall clock enters a new period the base
 * and totals restart at zero.
 *
 * Crashes. What a request holds while in flight (one concurrent, its
 * reserved cost) is also counted in its child's row; when the parent has
 * reaped a child it gives back whatever the child's row still holds
 * (llmgw_limits_child_release), so a crashed child does not leave a key
 * "at its concurrency limit" for ever. Token reservations need no such
 * care: their window ends by itself.
 *
 * Backends. A backend with `limits: {rpm, tpm}` has a slot too. Pool
 * expansion asks llmgw_limits_backend_full() whether one more request
 * would exceed the provider's quota and, if so, skips the member like a
 * cooling one; an attempt that starts takes one request and its estimate
 * unconditionally (llmgw_limits_backend_take), and its end settles the
 * tokens (refunded for a failed attempt: a failed attempt is not usage;
 * the request stays counted, since the provider counted it). Backend
 * limits steer; a race between two children may let a request or two past
 * them, which the provider's own 429 then handles as before.
 */
#ifndef LLMGW_LIMITS_H
#define LLMGW_LIMITS_H

#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_access.h"
#include "llmgw_stats.h"

#define LLMGW_LIMITS_MAGIC 0x4c57474cU /* "LGWL" read as little-endian bytes */
#define LLMGW_LIMITS_LAYOUT_VERSION 1U
#define LLMGW_LIMITS_NAME_MAX 64
/** The length of a request or token window. */
#define LLMGW_LIMITS_WINDOW apr_time_from_sec(60)
/** A lock held this long is checked for a dead holder. */
#define LLMGW_LIMITS_LOCK_STALE apr_time_from_msec(50)
/** How often one child's ledger writer re-reads the period totals. */
#define LLMGW_LIMITS_REFRESH apr_time_from_sec(30)
/** Dynamic slots kept for the principals a "*" entry covers, per gateway. */
#define LLMGW_LIMITS_DYNAMIC 1024

typedef enum {
    LLMGW_LIMITS_FREE = 0,
    LLMGW_LIMITS_ACTIVE,       /**< assigned by name in the parent */
    LLMGW_LIMITS_RETIRED,      /**< its name left the configuration */
    LLMGW_LIMITS_DYNAMIC_SLOT, /**< claimed by a child for a principal under "*" */
    LLMGW_LIMITS_CLAIMING      /**< being claimed: its name is not written yet */
} llmgw_limits_state_e;

typedef enum {
    LLMGW_LIMITS_KIND_KEY = 0,
    LLMGW_LIMITS_KIND_PRINCIPAL,
    LLMGW_LIMITS_KIND_BACKEND
} llmgw_limits_kind_e;

/** What refused a request (the refused[] counters and the error code). */
typedef enum {
    LLMGW_REFUSED_RPM = 0,
    LLMGW_REFUSED_TPM,
    LLMGW_REFUSED_CONCURRENT,
    LLMGW_REFUSED_BUDGET,
    LLMGW_REFUSED_COUNT
} llmgw_refused_e;

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t layout_version;
    apr_uint32_t capacity;
    apr_uint32_t slot_size;
    apr_uint32_t nrows;
    apr_uint32_t row_size;
    volatile apr_uint32_t rows_used;
    volatile apr_uint32_t dyn_lock;   /**< pid claiming a dynamic slot, 0 free */
    volatile apr_uint64_t refresh_at; /**< monotonic: next ledger refresh due */
    apr_uint64_t created;             /**< wall clock */
    volatile apr_uint32_t dyn_used;   /**< dynamic slots claimed (under dyn_lock) */
    apr_uint32_t dyn_max;             /**< most dynamic slots (set by assign) */
    apr_uint64_t reserved[1];
} llmgw_limits_header_t;

typedef struct {
    char name[LLMGW_LIMITS_NAME_MAX];
    volatile apr_uint32_t state;
    volatile apr_uint32_t lock;
    apr_uint64_t hash;
    apr_uint32_t kind;
    apr_uint32_t index;
    /* Below: read and written under the lock only. */
    apr_int64_t req_start, req_count;
    apr_int64_t tok_start, tok_count;
    apr_int64_t concurrent;
    apr_int64_t period_start;
    apr_int64_t spent_base, local_total, committed_total, reserved;
    apr_int64_t requests;
    apr_int64_t refused[LLMGW_REFUSED_COUNT];
    apr_int64_t prompt_tokens, completion_tokens, cost_total;
    apr_int64_t last_used;
    apr_int64_t pad[2];
} llmgw_limits_slot_t;

/** One child's share of what is in flight per slot. */
typedef struct {
    volatile apr_uint32_t concurrent;
    apr_uint32_t pad;
    volatile apr_uint64_t reserved; /**< nano-USD */
} llmgw_limits_cell_t;

typedef struct {
    volatile apr_uint32_t pid; /**< owning child; 0 free (row 0: shared, never owned) */
    apr_uint32_t cells;        /**< entries in cell[] (the capacity) */
    apr_uint32_t reserved[14];
    llmgw_limits_cell_t cell[];
} llmgw_limits_row_t;

/** Bytes for @p capacity slots and @p nrows rows; 0 when out of range. */
apr_size_t llmgw_limits_size(int capacity, int nrows);

/** Format a new segment (8-byte aligned @p base); APR_EINVAL for bad arguments. */
apr_status_t llmgw_limits_init(void *base, int capacity, int nrows, apr_time_t created);

/** 1 when @p base holds a segment of this layout with room for @p needed new names and @p nrows
 * rows. */
int llmgw_limits_fits(const void *base, apr_size_t size, const char *const *names, int n,
                      int dynamic, int nrows);

/**
 * Parent, single-threaded, every (re)start: map @p n names to slots, as
 * llmgw_stats_assign does (known names keep slot and counters, new ones
 * take a free zeroed slot, ACTIVE names not given are RETIRED), and keep
 * @p dynamic FREE slots for principals claimed later.
 * @return APR_SUCCESS; APR_ENOSPC (nothing changed) when it does not fit
 */
apr_status_t llmgw_limits_assign(void *base, const char *const *names, const int *kinds, int n,
                                 int dynamic, int *out_slot);

/** Slot @p index, NULL for a NULL base or an index out of range. */
llmgw_limits_slot_t *llmgw_limits_slot(void *base, int index);

/**
 * The dynamic slot of key @p name (a principal under "*"): found, or
 * claimed from the FREE slots. Any child, any thread.
 * @return the slot index, or -1 when the segment has no free slot left
 */
int llmgw_limits_dynamic(void *base, const char *name);

/* Per-child rows, as in llmgw_stats.h. */
llmgw_limits_row_t *llmgw_limits_child_claim(void *base, apr_uint32_t pid);
/** Parent, after reaping @p pid: give back what its row holds. Returns the requests released, -1
 * without a row. */
int llmgw_limits_child_release(void *base, apr_uint32_t pid);

/** The x-ratelimit-* values of one slot after a decision (-1: no such limit). */
typedef struct {
    apr_int64_t limit_requests, remaining_requests;
    apr_interval_time_t reset_requests; /**< until the request window ends */
    apr_int64_t limit_tokens, remaining_tokens;
    apr_interval_time_t reset_tokens;
    apr_interval_time_t retry_after; /**< refusals: when it may succeed; -1 unknown */
    llmgw_refused_e refused;         /**< refusals: what refused */
    apr_int64_t budget, spent;       /**< nano-USD; budget 0: none */
} llmgw_limits_verdict_t;

/** What one admitted request holds until it is settled. */
typedef struct {
    int slot;              /**< -1: nothing held */
    apr_int64_t tok_start; /**< the token window its reservation is in */
    apr_int64_t tokens;    /**< reserved */
    apr_int64_t cost;      /**< reserved nano-USD */
    int concurrent;        /**< holds one concurrent */
} llmgw_limits_hold_t;

/**
 * Admit one request to @p slot under @p lim and @p budget, all or nothing
 * (see "Exactness"); on success @p hold says what it holds, and @p row (this
 * child's, may be NULL) counts it for crash recovery.
 * @param tokens  the request's estimate (prompt + output)
 * @param cost    its estimated cost in nano-USD (0 when unpriced)
 * @return APR_SUCCESS, or APR_EAGAIN (refused: @p v says why and when to
 *         retry); APR_EINVAL for a NULL slot
 */
apr_status_t llmgw_limits_admit(llmgw_limits_slot_t *slot, llmgw_limits_row_t *row,
                                const llmgw_limits_cfg_t *lim, const llmgw_budget_cfg_t *budget,
                                llmgw_stats_time_t now, apr_int64_t tokens, apr_int64_t cost,
                                llmgw_limits_hold_t *hold, llmgw_limits_verdict_t *v);

/**
 * Settle what @p hold holds: tokens become @p used_tokens (0: refund),
 * concurrency and reserved cost are given back, @p cost (nano-USD, < 0:
 * none) is added to the period's spend, prompt/completion counters grow.
 * Idempotent: @p hold is emptied.
 */
void llmgw_limits_settle(llmgw_limits_slot_t *slot, llmgw_limits_row_t *row,
                         llmgw_limits_hold_t *hold, llmgw_stats_time_t now,
                         const llmgw_budget_cfg_t *budget, apr_int64_t prompt,
                         apr_int64_t completion, apr_int64_t cost);

/** The x-ratelimit-* values of @p slot now, without admitting anything. */
void llmgw_limits_peek(llmgw_limits_slot_t *slot, const llmgw_limits_cfg_t *lim,
                       const llmgw_budget_cfg_t *budget, llmgw_stats_time_t now,
                       llmgw_limits_verdict_t *v);

/* Backends (see "Backends"). */

/**
 * 1 when one more request of @p tokens would exceed @p lim in @p slot now;
 * @p wait (may be NULL) receives how long until its window ends.
 */
int llmgw_limits_backend_full(llmgw_limits_slot_t *slot, const llmgw_limits_cfg_t *lim,
                              llmgw_stats_time_t now, apr_int64_t tokens,
                              apr_interval_time_t *wait);
/** An attempt starts: one request and @p tokens, whatever the limits; fills @p hold. */
void llmgw_limits_backend_take(llmgw_limits_slot_t *slot, llmgw_stats_time_t now,
                               apr_int64_t tokens, llmgw_limits_hold_t *hold);

/* Budgets and the ledger (see "Budgets"). */

/**
 * A ledger row of @p cost nano-USD, of a request answered at wall-clock
 * @p when, was committed: committed_total grows when it is of the current
 * period of @p budget.
 */
void llmgw_limits_committed(llmgw_limits_slot_t *slot, const llmgw_budget_cfg_t *budget,
                            apr_time_t when, apr_int64_t cost);

/** committed_total of @p slot for the period of @p budget at @p now (before a refresh query). */
apr_int64_t llmgw_limits_committed_total(llmgw_limits_slot_t *slot,
                                         const llmgw_budget_cfg_t *budget, apr_time_t now);

/**
 * A refresh read @p db_total for the period of @p budget at @p now, with
 * @p committed_before = llmgw_limits_committed_total() read before its
 * query: spent_base = db_total - committed_before.
 */
void llmgw_limits_set_base(llmgw_limits_slot_t *slot, const llmgw_budget_cfg_t *budget,
                           apr_time_t now, apr_int64_t db_total, apr_int64_t committed_before);

/**
 * Claim the next refresh: 1 for exactly one caller per LLMGW_LIMITS_REFRESH
 * (any child), who then refreshes every budgeted slot.
 */
int llmgw_limits_refresh_claim(void *base, apr_time_t mono);

/** A copy of one slot, read under its lock. */
typedef struct {
    llmgw_limits_slot_t s;
    apr_int64_t spent; /**< spent_base + local_total, 0 outside the current period */
} llmgw_limits_view_t;

/** Copy slot @p index now (rolling expired windows and periods in the copy only). */
apr_status_t llmgw_limits_view(void *base, int index, const llmgw_budget_cfg_t *budget,
                               llmgw_stats_time_t now, llmgw_limits_view_t *out);

/** Hash of a name (FNV-1a 64), as kept in the slot to find dynamic names fast. */
apr_uint64_t llmgw_limits_hash(const char *name);

#endif /* LLMGW_LIMITS_H */
