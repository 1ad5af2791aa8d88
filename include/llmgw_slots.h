/**
 * @file llmgw_slots.h
 * @brief Which statistics slot each backend of each gateway uses.
 *
 * One httpd may run several gateways: the main server's LLMGatewayConfig
 * and one for every virtual host with an LLMGatewayConfig of its own. Each
 * gateway has its own state (counters, cooldowns, round-robin cursors), so
 * the same backend name in two gateways must never share a slot. The glue
 * gives every gateway a scope, a string that tells it apart from the others
 * and stays the same across graceful restarts; a slot's key is the backend
 * name qualified by that scope (llmgw_slots_key).
 *
 * Slot assignment must see every gateway at once: llmgw_stats_assign()
 * retires every slot whose key it is not given, so assigning gateway by
 * gateway would retire all but the last one's. llmgw_slots_assign() makes
 * the keys of all gateways, assigns them in one llmgw_stats_assign() call
 * and hands each gateway its slot_of table.
 *
 * This is config walking on top of the statistics mechanism, kept out of
 * llmgw_stats.c, which only knows slots by name. Parent only,
 * single-threaded (post_config).
 */
#ifndef LLMGW_SLOTS_H
#define LLMGW_SLOTS_H

#include "llmgw.h"
#include "llmgw_config.h"

/** One gateway: a parsed gateway.yaml and the scope that keeps its state apart. */
typedef struct {
    const char *scope;         /**< "" for the main server's gateway, else unique and stable */
    const llmgw_config_t *cfg; /**< its configuration */
    int *slot_of;              /**< set by llmgw_slots_assign: slot per llmgw_backend_t.index */
} llmgw_slots_gateway_t;

/**
 * The slot key of backend @p name in the gateway @p scope: the name itself
 * for the main server's gateway (scope ""), else "name@scope". Backend
 * names never contain '@' (the loader allows letters, digits, '.', '_'
 * and '-'), so two different (scope, name) pairs never make the same key.
 * @return a key from @p p
 */
const char *llmgw_slots_key(apr_pool_t *p, const char *scope, const char *name);

/** Backends of the @p n gateways together, pools included. */
int llmgw_slots_count(const llmgw_slots_gateway_t *gws, int n);

/**
 * Assign a stats slot to every backend of every gateway in one
 * llmgw_stats_assign() call, so nothing of one gateway is retired because
 * another lacks it, and set each gateway's slot_of (from @p p, indexed by
 * llmgw_backend_t.index).
 * @return APR_SUCCESS; as llmgw_stats_assign otherwise (APR_ENOSPC: nothing
 *         was changed, the caller needs a bigger segment)
 */
apr_status_t llmgw_slots_assign(void *base, llmgw_slots_gateway_t *gws, int n, apr_pool_t *p);

#endif /* LLMGW_SLOTS_H */
