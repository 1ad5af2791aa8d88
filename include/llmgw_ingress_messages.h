/**
 * @file llmgw_ingress_messages.h
 * @brief What the Anthropic Messages dialect offers besides its
 *        llmgw_ingress_t table (ingress.md 6, 7): Anthropic-shaped errors
 *        with a request id, POST /v1/messages/count_tokens, and Anthropic's
 *        shape of GET /v1/models.
 *
 * All functions are pure and thread-safe; results come from the pool
 * passed in, json_t results are owned by that pool.
 *
 * How llmgw_ingress_messages fills the llmgw_ingress_t contract:
 *   - decode refuses only what Anthropic itself refuses; fields a translated
 *     backend cannot honour are left out of the canonical request, so
 *     check_backend must run before the canonical request goes to a
 *     translated backend (it never refuses anything for anthropic).
 *   - stream_chunk / stream_end fail with st->error set and nothing
 *     emitted: LLMGW_EUPSTREAM (a chunk that cannot be represented: a tool
 *     call fragment after its block closed, a tool call without a name, a
 *     chunk that is no object), LLMGW_ESTREAM (the end without a
 *     finish_reason). The terminal events wait for stream_end, after the
 *     usage chunk. message_start and ping are PREAMBLE, blocks CONTENT,
 *     message_delta and message_stop FINAL.
 *   - native_event: message_start, ping, content_block_start and unknown
 *     events are PREAMBLE; deltas, block stops and message_delta CONTENT;
 *     message_stop FINAL with APR_EOF; an `error` event FINAL with
 *     LLMGW_EUPSTREAM (native_error(p, 0, data, len) reads its status from
 *     its type); data that is not a JSON object APR_EINVAL (skip it).
 *     *usage accumulates across calls (pass the same struct).
 *   - native_error keeps 529 (Anthropic clients know it); the credential
 *     and billing statuses become the gateway's 502 (providers.md 5.7).
 *
 * count_tokens (ingress.md 7.7) goes, per backend type:
 *   anthropic              passthrough to <endpoint>/v1/messages/count_tokens;
 *                          the upstream body is the client's answer
 *   openai, azure-openai   a Responses body built from the canonical request,
 *   (v1 URLs)              POST .../responses/input_tokens
 *   google                 the generateContent body of the google translator,
 *                          POST .../models/<m>:countTokens
 *   mistral, meta, azure   refused: 400 invalid_request_error saying the
 *   deployment URLs        provider has no token-counting API (never 404 or
 *                          5xx: clients suspend backends or retry on those)
 * The estimate (Option `countTokens: estimate`) is llmgw_messages_estimate_tokens;
 * the glue then adds `x-llmgw-estimated: true`. count_tokens outcomes must not
 * feed the circuit breaker or the usage accounting.
 */
#ifndef LLMGW_INGRESS_MESSAGES_H
#define LLMGW_INGRESS_MESSAGES_H

#include <jansson.h>
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_provider.h"

/** "req_gw" and 24 random base62 characters: the `request-id` of gateway answers. */
const char *llmgw_messages_request_id(apr_pool_t *p);

/** Anthropic's `error.type` for an HTTP status (ingress.md 6.7); never NULL. */
const char *llmgw_messages_error_type(int status);

/**
 * {"type":"error","error":{"type","message"},"request_id"} for @p e, the
 * type from its status; the gateway's code, where it says more than the
 * type, goes into the message. @p request_id NULL: a new one is minted (the
 * glue passes the id it also sends as the `request-id` header).
 */
const char *llmgw_messages_error_body(apr_pool_t *p, const llmgw_error_t *e, const char *request_id,
                                      apr_size_t *len);

/* ---------------------------------------------------------------------- */
/* count_tokens                                                           */
/* ---------------------------------------------------------------------- */

/**
 * The upstream request that counts the tokens of the count_tokens request
 * @p client for backend @p b, which serves it as @p model.
 * @param raw, raw_len  the client's bytes (forwarded to anthropic), may be NULL
 * @param headers_in    the client's headers (anthropic-version, anthropic-beta), may be NULL
 * @param access_token  the OAuth2 token of a Vertex AI backend, else NULL
 * @return APR_SUCCESS with @p out set; LLMGW_EBADREQ (invalid request, or a
 *         field the backend cannot honour) or LLMGW_EUNSUPPORTED (the
 *         backend cannot count) with the 400 in *err.
 */
apr_status_t llmgw_messages_count_request(apr_pool_t *p, const llmgw_backend_t *b,
                                          const json_t *client, const char *raw, apr_size_t raw_len,
                                          const char *model, const apr_table_t *headers_in,
                                          const char *access_token, llmgw_http_request_t *out,
                                          llmgw_error_t **err);

/**
 * The token count in a 2xx count answer of a backend of @p type:
 * `input_tokens` (anthropic, openai, azure-openai) or `totalTokens`
 * (google). LLMGW_EUPSTREAM with a 502 in *err when there is none.
 */
apr_status_t llmgw_messages_count_parse(apr_pool_t *p, llmgw_backend_type_e type, const char *body,
                                        apr_size_t len, apr_int64_t *tokens, llmgw_error_t **err);

/** The client's answer {"input_tokens":N}, from @p p. */
const char *llmgw_messages_count_body(apr_pool_t *p, apr_int64_t tokens, apr_size_t *len);

/**
 * The estimate of ingress.md 7.6 for a Messages request (or count_tokens
 * request): UTF-8 bytes of its text (system, messages, tool inputs and
 * results, tool definitions with their schemas) / 4, rounded up, plus
 * LLMGW_MSG_IMAGE_TOKENS per image or PDF. At least 1. A heuristic (⚠):
 * it is what message_start reports before the upstream counts.
 */
apr_int64_t llmgw_messages_estimate_tokens(const json_t *client);

/* ---------------------------------------------------------------------- */
/* Models (GET /v1/models when the client sends anthropic-version)       */
/* ---------------------------------------------------------------------- */

/**
 * Anthropic's model object {"type":"model","id","display_name","created_at"}
 * (display_name = the id, created_at = @p created in RFC 3339).
 */
json_t *llmgw_messages_model_json(apr_pool_t *p, const char *id, apr_int64_t created);

/**
 * Anthropic's model page {"data":[...],"has_more","first_id","last_id"} over
 * @p ids (const char *, in order), paginated as Anthropic does: at most
 * @p limit (<= 0: 20; capped at 1000) models after @p after_id or before
 * @p before_id (the last ones before it; NULL: none). An id not in the list
 * gives an empty page.
 */
json_t *llmgw_messages_models_json(apr_pool_t *p, const apr_array_header_t *ids,
                                   apr_int64_t created, int limit, const char *after_id,
                                   const char *before_id);

/** The ids of an OpenAI model list (llmgw_route_models_json's), as const char *. */
apr_array_header_t *llmgw_messages_model_ids(apr_pool_t *p, const json_t *openai_list);

#endif /* LLMGW_INGRESS_MESSAGES_H */
