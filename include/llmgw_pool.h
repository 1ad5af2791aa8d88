/**
 * @file llmgw_pool.h
 * @brief Pools: the ordered candidates of a request, the retry/fallback
 *        decision after a failed attempt, and the error when all failed.
 *
 * A route names a backend or a pool; pools may list pools. For one request
 * llmgw_pool_candidates() flattens that tree depth-first into the list of
 * provider backends to try, in order: at each level the pool's strategy
 * (llmgw_strategy.h) orders its members, members cooling down are dropped,
 * a member whose cooldown is over (its probe is due) is moved to the front
 * of its level so it gets probed promptly, members an operator drained
 * (llmgw_stats_set_drained) are dropped and never probed, and a pool with `fallback:
 * false` contributes only its first choice. A backend reachable twice
 * appears once, at its first place. Each candidate carries the model to
 * send (DESIGN.md 5).
 *
 * The dispatcher (llmgw_dispatch.h) then runs, per candidate (all functions
 * below are pure; the stats calls are llmgw_stats.h):
 *
 *   av = llmgw_stats_available(slot, now)   COOLING: skip (another request
 *                                           took the probe); PROBE: this is it
 *   loop:
 *     llmgw_stats_begin(slot) ... attempt ... llmgw_stats_end(slot)
 *     ok    -> llmgw_stats_success(...), answer
 *     fail  -> cooled = llmgw_pool_record_failure(slot, row, now, fail, status,
 *                          llmgw_pool_failure_threshold(c->pool),
 *                          llmgw_pool_cooldown_next(c->pool, last period, probe))
 *              switch (llmgw_pool_next(&outcome)), the outcome refined by
 *              the dispatcher's own rows (timeouts, context windows, ...):
 *              RETRY_SAME  -> llmgw_stats_retry(slot), back off, loop
 *              NEXT_MEMBER -> llmgw_stats_fallback(slot and pool slot), next
 *              STOP        -> answer with the failure (FINAL: the provider's
 *                             own error; committed: in-band error event)
 *   nothing left -> llmgw_pool_exhausted(...)
 */
#ifndef LLMGW_POOL_H
#define LLMGW_POOL_H

#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_stats.h"
#include "llmgw_strategy.h"

/** Deepest nesting of pools followed (configtest rejects cycles). */
#define LLMGW_POOL_MAX_DEPTH 8

/** One backend to try. */
typedef struct {
    const llmgw_backend_t *backend; /**< a provider backend, never a pool */
    const llmgw_backend_t *pool;    /**< the pool listing it directly; NULL for a lone backend */
    const char *model;              /**< model to send (never NULL) */
    int prefers_model;              /**< the backend lists the requested model */
    int probe;                      /**< its cooldown is over: the attempt would be its probe */
    int slot;                       /**< stats slot of backend, -1 when none */
    int pool_slot;                  /**< stats slot of pool, -1 when none */
} llmgw_candidate_t;

typedef struct {
    int nelts;
    llmgw_candidate_t *items;
    int cooling;                       /**< members left out: cooling down */
    apr_interval_time_t cooldown_left; /**< least cooldown left among those, -1 when none */
    int no_model;                      /**< members left out: no model to send */
    int drained;                       /**< members (or the target) left out: drained */
    int limited;                       /**< members left out: at their own limits (full) */
    apr_interval_time_t limited_left;  /**< least wait among those, -1 when none */
} llmgw_candidates_t;

/**
 * Would one more request exceed @p b's own `limits:` (its provider's
 * quota, llmgw_limits.h)? @p wait receives how long until that clears.
 */
typedef int (*llmgw_pool_full_fn)(void *baton, const llmgw_backend_t *b, apr_interval_time_t *wait);

/** What the expansion reads besides the configuration. */
typedef struct {
    void *stats;            /**< shared stats segment, or NULL (all members available) */
    const int *slot_of;     /**< stats slot per llmgw_backend_t.index, or NULL */
    int nslots;             /**< entries in slot_of */
    llmgw_stats_time_t now; /**< for cooldowns (llmgw_stats_time_now()) */
    apr_uint64_t seed;      /**< randomness for this request's strategies */
    /** Backends with limits: a pool member that is full is skipped like a
     *  cooling one, so the pool steers away from it before its provider
     *  answers 429. NULL: no backend of the route has limits. */
    llmgw_pool_full_fn full;
    void *full_baton;
} llmgw_pool_env_t;

/**
 * The candidates for a request to @p target (a backend or a pool).
 *
 * Model (DESIGN.md 5): a lone backend uses @p model, else its defaultModel,
 * and refuses a model its models: list does not name. In a pool, a model
 * that is the name or an alias of the pool or of a pool under it selects
 * that pool as a virtual model: every member with its own defaultModel.
 * Otherwise a member uses @p model when it takes it
 * (llmgw_backend_accepts), else its defaultModel; members that take
 * @p model come first at every level; a member left without any model is
 * left out; and a model no member takes is refused (LLMGW_ENOMODEL), never
 * replaced.
 *
 * A lone backend is always its own single candidate, cooling or not: there
 * is nothing to fall back to, and refusing would only turn a possibly
 * passing outage into certain errors. (Record its failures with threshold
 * llmgw_pool_failure_threshold(NULL) == 0.) A drain, an operator's decision,
 * is honoured everywhere: a drained lone backend, route pool, or pool the
 * model names has no candidates (APR_ENOENT, drained = 1).
 *
 * @param model  the request's model, or NULL
 * @param out    allocated from @p p; filled even on APR_ENOENT/LLMGW_EBADREQ
 * @return APR_SUCCESS with at least one candidate; APR_ENOENT when every
 *         member is cooling down or drained (answer with llmgw_pool_exhausted,
 *         n = 0);
 *         LLMGW_EBADREQ when no member has a model to send (a 400: the
 *         request must name one); LLMGW_ENOMODEL when no backend of the
 *         route takes @p model (a 404 model_not_found); APR_EINVAL for pools nested deeper than
 *         LLMGW_POOL_MAX_DEPTH or a NULL target
 */
apr_status_t llmgw_pool_candidates(apr_pool_t *p, const llmgw_backend_t *target, const char *model,
                                   const llmgw_pool_env_t *env, llmgw_candidates_t **out);

/** Consecutive failures before cooldown for members of @p pool; 0 (no breaker) for NULL. */
int llmgw_pool_failure_threshold(const llmgw_backend_t *pool);

/** Longest cooldown of members of @p pool: `cooldown:` (default when unset). */
apr_interval_time_t llmgw_pool_cooldown(const llmgw_backend_t *pool);

/**
 * The cooldown to arm after a failure of a member of @p pool (adaptive, DESIGN.md
 * 6): a blip costs seconds, a dead provider is not hammered.
 *
 *   @p probe failed          min(2 * @p last, cooldown)   (first: LLMGW_COOLDOWN_BASE)
 *   otherwise, @p last > 0   @p last   (a request still in flight when the
 *                                      member cooled: no doubling without a probe)
 *   otherwise                min(LLMGW_COOLDOWN_BASE, cooldown)
 *
 * where cooldown is llmgw_pool_cooldown(@p pool) and @p last the member's
 * llmgw_stats_cooldown_period (0 after a success). E.g. with cooldown 30s:
 * 2 s, then 4, 8, 16, 30, 30 s after failed probes; back to 2 s once a probe
 * succeeded.
 */
apr_interval_time_t llmgw_pool_cooldown_next(const llmgw_backend_t *pool, apr_interval_time_t last,
                                             int probe);

/**
 * The circuit breaker's policy for a failed attempt on the backend of slot
 * @p s: count its class (llmgw_stats_error), then feed the breaker.
 * Retryable failures (llmgw_error_action() == RETRY) are strikes: the
 * @p threshold-th consecutive one, and every further one, (re)arms the
 * cooldown for @p cooldown. 401/402/403 arm it at once (the gateway's
 * credential or billing, providers.md 9.2). Client errors (400, 404, ...)
 * and client/gateway aborts (CLIENT_GONE, INTERNAL) are counted but leave
 * the breaker alone. A failed probe re-arms the cooldown.
 * @param row        this child's counter row (NULL: the slot's own counters)
 * @param threshold  consecutive failures before cooldown; <= 0 disables it
 * @param cooldown   the period to arm (kept as the slot's cooldown_period)
 * @return 1 when the backend is cooling because of this failure, else 0
 */
int llmgw_pool_record_failure(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                              llmgw_fail_e fail, int status, int threshold,
                              apr_interval_time_t cooldown);

/* ------------------------------------------------------------------ */
/* After a failed attempt                                              */

typedef enum {
    LLMGW_POOL_RETRY_SAME = 1, /**< back off, then try this member again */
    LLMGW_POOL_NEXT_MEMBER,    /**< try the next candidate now */
    LLMGW_POOL_STOP            /**< answer the client with this failure */
} llmgw_pool_next_e;

typedef struct {
    llmgw_action_e action;        /**< llmgw_error_action(fail, status) */
    int attempts;                 /**< attempts on this member, the failed one included */
    int max_retries;              /**< llmgw_backend_max_retries(member) */
    int fallback;                 /**< the pool may fall back and a next candidate exists */
    int committed;                /**< response bytes already reached the client */
    int cooling;                  /**< llmgw_pool_record_failure returned 1 for this failure */
    apr_interval_time_t hint;     /**< upstream retry hint, -1 when none */
    apr_interval_time_t max_wait; /**< longest hint worth waiting for; < 0: no limit */
} llmgw_pool_outcome_t;

/**
 * The fallback decision table (DESIGN.md 6, providers.md 9.2), first
 * matching row wins:
 *
 *   committed                                   STOP         (in-band error)
 *   action FINAL (400, 404*, 413, 422, ...)     STOP         (*404 is FALLBACK)
 *   action RETRY, attempts <= max_retries,
 *     member not cooling, hint <= max_wait      RETRY_SAME
 *   action RETRY or FALLBACK, fallback          NEXT_MEMBER
 *   otherwise                                   STOP
 */
llmgw_pool_next_e llmgw_pool_next(const llmgw_pool_outcome_t *o);

/** The last failure of one candidate, for llmgw_pool_exhausted. */
typedef struct {
    const char *backend; /**< its name */
    llmgw_fail_e fail;
    int status;                 /**< upstream HTTP status for LLMGW_FAIL_HTTP */
    apr_interval_time_t hint;   /**< retry hint, -1 when none */
    const llmgw_error_t *error; /**< the provider's translated error, or NULL */
} llmgw_pool_failure_t;

/**
 * The client's error when every candidate failed or was cooling
 * (providers.md 9.2 last column, DESIGN.md 6):
 *
 *   nothing attempted (all cooling      503 upstream_unavailable,
 *   or drained)                         Retry-After = least cooldown left
 *                                       (none when only drained ones remain)
 *   every failure an HTTP 429           429 rate_limit_exceeded (insufficient_quota
 *                                       when every one says so), Retry-After =
 *                                       smallest hint
 *   every failure an HTTP 404           404 model_not_found (the last provider error)
 *   every failure a 400 context_length_ the last provider's 400, as it said it
 *   exceeded (no window large enough)   (no pool context added)
 *   otherwise                           llmgw_error_exhausted() of the last
 *                                       failure that is neither a 429 nor a
 *                                       context 400: 504 timeouts, 503 5xx,
 *                                       502 connect/reset/auth, ...
 *
 * A member that refused the request before any upstream was contacted (its
 * translator's 4xx, recorded as LLMGW_FAIL_INTERNAL with that error) is no
 * upstream failure: the rows above look at the other failures, and only when
 * every member refused is the last refusal the answer (its own status,
 * message and code), never a 500 "internal error".
 *
 * The message names the pool (when @p pool_name is set), the counts and the
 * last backend's error class; never a key.
 *
 * @param failures     @p n last failures, in attempt order
 * @param cooling      members skipped because they were cooling down
 * @param drained      members (or the target) skipped because an operator drained them
 * @param cooldown_left least cooldown left among those, -1 when none
 * @param retry_after  receives the Retry-After delay, -1 for none
 * @return an error from @p p
 */
llmgw_error_t *llmgw_pool_exhausted(apr_pool_t *p, const char *pool_name,
                                    const llmgw_pool_failure_t *failures, int n, int cooling,
                                    int drained, apr_interval_time_t cooldown_left,
                                    apr_interval_time_t *retry_after);

#endif /* LLMGW_POOL_H */
