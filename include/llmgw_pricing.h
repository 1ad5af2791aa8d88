/**
 * @file llmgw_pricing.h
 * @brief What a request cost: `pricing:` of gateway.yaml applied to the
 *        provider's reported usage.
 *
 * Prices are USD per million tokens, as providers publish them, for input,
 * cached input (prompt tokens the provider read from its cache, billed
 * lower; llmgw_usage_t.cached_tokens) and output. Money is never a float
 * here: a price is read from its decimal text into nano-USD (1e-9 USD) per
 * million tokens, exactly ("2.50" -> 2 500 000 000), and a cost is
 *
 *   cost = ((prompt - cached) * input + cached * cachedInput
 *           + completion * output) / 1e6          nano-USD, rounded half up
 *
 * in 64-bit integers (a request would need billions of tokens to overflow).
 * nano-USD resolve the cheapest prices in use ($0.01 per million tokens is
 * 10 nano-USD per token) and sum exactly, so a budget is checked against
 * the same number the ledger adds up.
 *
 * Which price applies: the model that answered (the provider's own name,
 * e.g. "gpt-4o-2024-08-06"), else the model that was sent, each first by
 * exact name and then against the entries written as glob patterns
 * ("gpt-4o-*"), in file order. A model with no price has no cost: it is
 * reported (LLMGW_COST is "unpriced", the log says which model), never
 * guessed.
 */
#ifndef LLMGW_PRICING_H
#define LLMGW_PRICING_H

#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_provider.h"

/** One entry of `pricing:`. */
typedef struct {
    const char *model;        /**< as written: an exact name or a glob */
    int glob;                 /**< the name holds *, ? or [ */
    apr_int64_t input;        /**< nano-USD per million tokens */
    apr_int64_t cached_input; /**< cachedInput, else input */
    apr_int64_t output;
    llmgw_mark_t mark;
} llmgw_price_t;

typedef struct llmgw_pricing_t {
    apr_array_header_t *prices; /**< llmgw_price_t *, file order */
    apr_hash_t *exact;          /**< model -> llmgw_price_t * (non-glob entries) */
} llmgw_pricing_t;

/**
 * Parse a non-negative decimal USD amount ("2.50", "0.075", "50", at most 9
 * decimals) into nano-USD. APR_EINVAL for anything else (signs, exponents,
 * more than 9 decimals, more than 9 223 372 036 USD).
 */
apr_status_t llmgw_usd_parse(const char *text, apr_int64_t *nusd);

/** @p nusd as decimal USD with up to 9 decimals, trailing zeros trimmed ("0.0015"), from @p p. */
const char *llmgw_usd_format(apr_pool_t *p, apr_int64_t nusd);

/** The price of @p model (exact, then globs in file order); NULL when none or no pricing. */
const llmgw_price_t *llmgw_pricing_find(const llmgw_pricing_t *pr, const char *model);

/**
 * The price for an answer: @p actual (what answered) first, then @p sent.
 * Either may be NULL.
 */
const llmgw_price_t *llmgw_pricing_for(const llmgw_pricing_t *pr, const char *actual,
                                       const char *sent);

/**
 * Cost of @p u at @p price in nano-USD (see the file comment). Cached
 * tokens beyond the prompt are clamped to it; negative counts count 0.
 */
apr_int64_t llmgw_pricing_cost(const llmgw_price_t *price, const llmgw_usage_t *u);

/** Cost of @p prompt input and @p output output tokens at @p price (an estimate). */
apr_int64_t llmgw_pricing_estimate(const llmgw_price_t *price, apr_int64_t prompt,
                                   apr_int64_t output);

#endif /* LLMGW_PRICING_H */
