/**
 * @file llmgw_strategy.h
 * @brief Pool strategies: pure functions that order a pool's members.
 *
 * A strategy sees a read-only snapshot of the members (weights, shared
 * statistics, availability, whether each serves the requested model) and
 * writes the whole candidate order: the first choice, then the fallback
 * order (DESIGN.md 7). It does no I/O and keeps no state of its own; the
 * only shared state is the round-robin cursor, an atomic counter in the
 * pool's stats slot, so rotation is global across processes rather than
 * per child. Randomness comes from one 64-bit seed, so a test with a fixed
 * seed gets a fixed order.
 *
 * Every strategy orders in tiers, and only within a tier by its own rule:
 *   tier 0  available, serves the requested model
 *   tier 1  available, does not list it (will use its defaultModel)
 *   tier 2  unavailable (cooling down), in listed order; callers drop these
 * The number of available members is returned, so callers can cut there.
 *
 * Each built-in strategy lives in src/strategies/llmgw_strategy_<name>.c
 * with a worked example in its opening comment; llmgw_strategy_get() finds
 * one by its llmgw_strategy_e, llmgw_strategy_find() by its YAML name.
 *
 * Strategies from other modules. mod_llmgw registers the built-ins as httpd
 * providers (ap_provider.h) in the group LLMGW_STRATEGY_PROVIDER_GROUP,
 * version LLMGW_STRATEGY_PROVIDER_VERSION, named as in gateway.yaml, and
 * resolves every `strategy:` there when LLMGatewayConfig is read. Another
 * module adds one from its register_hooks, whatever its LoadModule order:
 *
 *   static const llmgw_strategy_t reverse = {"reverse", reverse_select};
 *   static void register_hooks(apr_pool_t *p)
 *   {
 *       ap_register_provider(p, LLMGW_STRATEGY_PROVIDER_GROUP, "reverse",
 *                            LLMGW_STRATEGY_PROVIDER_VERSION, &reverse);
 *   }
 *
 * The provider is a pointer to a llmgw_strategy_t that lives as long as the
 * module (a static); its select follows the contract below and is called by
 * many threads of many children at once, so it keeps no state of its own. A
 * module needs only this header (and llmgw.h) at build time:
 * the inline helpers below work there, llmgw_strategy_sort() and the rest of
 * mod_llmgw do not. Registering a built-in's name replaces the built-in. The
 * version changes whenever llmgw_strategy_cand_t or the select contract does.
 */
#ifndef LLMGW_STRATEGY_H
#define LLMGW_STRATEGY_H

#include "llmgw.h"

/** httpd provider group and version of pool strategies (see above). */
#define LLMGW_STRATEGY_PROVIDER_GROUP "llmgw_strategy"
#define LLMGW_STRATEGY_PROVIDER_VERSION "0"

/** The built-in strategies, in the order their names are listed in messages. */
typedef enum {
    LLMGW_STRATEGY_LATENCY = 0,
    LLMGW_STRATEGY_WEIGHTED,
    LLMGW_STRATEGY_ROUND_ROBIN,
    LLMGW_STRATEGY_PRIORITY,
    LLMGW_STRATEGY_LEAST_BUSY
} llmgw_strategy_e;

/** One member as a strategy sees it. */
typedef struct {
    int weight;              /**< from the pool (weighted); >= 0 */
    apr_uint32_t inflight;   /**< attempts running now, all processes */
    apr_uint32_t latency_us; /**< EWMA of whole attempts; 0 = never measured */
    apr_uint32_t ttfb_us;    /**< EWMA of time to first byte; 0 = never measured */
    apr_uint32_t samples;    /**< latency samples since creation or recovery */
    apr_uint64_t requests;   /**< attempts ever started */
    int available;           /**< 0 while cooling down */
    int prefers_model;       /**< lists the requested model */
} llmgw_strategy_cand_t;

/**
 * Order @p n candidates.
 * @param cands  read-only snapshot
 * @param seed   randomness for this selection (weighted draws, exploration)
 * @param rr     the pool's shared round-robin cursor, or NULL (then @p seed
 *               picks the turn)
 * @param order  receives a permutation of 0..n-1, best first, available
 *               members before unavailable ones
 * @param n_usable receives the number of available members (a prefix of @p order)
 * @return APR_SUCCESS; APR_ENOENT when no member is available (@p order is
 *         still filled); APR_EINVAL for bad arguments
 */
typedef apr_status_t (*llmgw_strategy_select_fn)(const llmgw_strategy_cand_t *cands, int n,
                                                 apr_uint64_t seed, volatile apr_uint32_t *rr,
                                                 int *order, int *n_usable);

/* Also declared in llmgw_config.h (a pool's configuration points at one);
 * C11 allows the same typedef twice, so neither header needs the other. */
typedef struct llmgw_strategy_t llmgw_strategy_t;
struct llmgw_strategy_t {
    const char *name; /**< as written in gateway.yaml */
    llmgw_strategy_select_fn select;
};

extern const llmgw_strategy_t llmgw_strategy_latency;
extern const llmgw_strategy_t llmgw_strategy_weighted;
extern const llmgw_strategy_t llmgw_strategy_round_robin;
extern const llmgw_strategy_t llmgw_strategy_priority;
extern const llmgw_strategy_t llmgw_strategy_least_busy;

/** The built-in strategy @p e, or NULL for an unknown value. */
const llmgw_strategy_t *llmgw_strategy_get(llmgw_strategy_e e);

/** The built-in strategy named @p name ("round-robin"), or NULL. */
const llmgw_strategy_t *llmgw_strategy_find(const char *name);

/* ------------------------------------------------------------------ */
/* Helpers shared by the strategies                                    */

/** Tier of a candidate (see the top of this file). */
static inline int llmgw_strategy_tier(const llmgw_strategy_cand_t *c)
{
    return c->available ? (c->prefers_model ? 0 : 1) : 2;
}

/** splitmix64: a small, well-mixed PRNG; advances @p state. */
static inline apr_uint64_t llmgw_strategy_rand(apr_uint64_t *state)
{
    apr_uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/** A uniform value in [0, 1) from @p state. */
static inline double llmgw_strategy_unit(apr_uint64_t *state)
{
    return (double)(llmgw_strategy_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

/** Compare two candidates (by position): < 0 when @p a goes first. */
typedef int (*llmgw_strategy_cmp_fn)(const llmgw_strategy_cand_t *cands, int a, int b);

/**
 * Fill @p order with 0..n-1 sorted by tier, then @p cmp (NULL: listed
 * order), stable; count the available members. Insertion sort: pools are
 * small. Returns what a select function returns.
 */
apr_status_t llmgw_strategy_sort(const llmgw_strategy_cand_t *cands, int n,
                                 llmgw_strategy_cmp_fn cmp, int *order, int *n_usable);

/** [start, end) of the run of tier @p tier in an @p order sorted by tier. */
void llmgw_strategy_tier_span(const llmgw_strategy_cand_t *cands, const int *order, int n, int tier,
                              int *start, int *end);

#endif /* LLMGW_STRATEGY_H */
