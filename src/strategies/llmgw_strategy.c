/*
 * The registry of built-in pool strategies: the table the httpd glue
 * registers as providers (mod_llmgw_strategy.c) and the config loader
 * resolves `strategy:` names through (llmgw_config.c). It sits below both
 * config and pool, so neither reaches into the other for it.
 */
#include <string.h>
#include "llmgw_strategy.h"

static const llmgw_strategy_t *const strategies[] = {
    [LLMGW_STRATEGY_LATENCY] = &llmgw_strategy_latency,
    [LLMGW_STRATEGY_WEIGHTED] = &llmgw_strategy_weighted,
    [LLMGW_STRATEGY_ROUND_ROBIN] = &llmgw_strategy_round_robin,
    [LLMGW_STRATEGY_PRIORITY] = &llmgw_strategy_priority,
    [LLMGW_STRATEGY_LEAST_BUSY] = &llmgw_strategy_least_busy,
};

#define NSTRATEGIES ((int)(sizeof(strategies) / sizeof(strategies[0])))

const llmgw_strategy_t *llmgw_strategy_get(llmgw_strategy_e e)
{
    return (int)e >= 0 && (int)e < NSTRATEGIES ? strategies[e] : NULL;
}

const llmgw_strategy_t *llmgw_strategy_find(const char *name)
{
    int i;

    for (i = 0; name && i < NSTRATEGIES; i++) {
        if (strcmp(strategies[i]->name, name) == 0)
            return strategies[i];
    }
    return NULL;
}
