/**
 * @file llmgw_responses.h
 * @brief What the OpenAI Responses dialect offers besides its
 *        llmgw_ingress_t table (ingress.md 2.4, 3, 4).
 *
 * llmgw_ingress_responses (llmgw_ingress.h) is the dialect as the handler
 * drives it. The functions here are the pieces the table cannot carry:
 * encoding with a chosen response id and a given clock and randomness (so
 * the answer can be reproduced in tests and its id known before it is
 * built), the final response object of a stream (for the store record,
 * written before the terminal event leaves), the echo of `store` when the
 * gateway does not store, and the native upstream requests of the
 * retrieve / delete / input_items endpoints.
 *
 * The response store itself (previous_response_id, item_reference, the
 * record, GET / DELETE / input_items answers) is in llmgw_responses_store.h.
 *
 * Lifetimes as in llmgw_ingress.h: results come from the pool passed in.
 */
#ifndef LLMGW_RESPONSES_H
#define LLMGW_RESPONSES_H

#include <jansson.h>
#include "llmgw_ingress.h"

/** Length of the random part of a response id (`resp_gw` + 32 base62). */
#define LLMGW_RESPONSES_ID_CHARS 32
/** Length of the random part of an item id (`msg_gw`, `fc_gw`, `rs_gw`, ... + 24 base62). */
#define LLMGW_RESPONSES_ITEM_ID_CHARS 24

/**
 * A gateway-minted id: @p prefix followed by @p n base62 characters drawn
 * uniformly from @p rnd (NULL: apr_generate_random_bytes). From @p p.
 * @p n is at most 64.
 */
const char *llmgw_responses_mint_id(apr_pool_t *p, const char *prefix, int n,
                                    llmgw_ingress_random_fn rnd, void *baton);

/** How llmgw_responses_encode builds an answer. Zeroed means the defaults. */
typedef struct {
    const char *id;                 /**< the response id; NULL: minted */
    apr_time_t completed;           /**< seconds for completed_at; 0: now */
    llmgw_ingress_random_fn random; /**< for minted ids; NULL: APR's generator */
    void *random_baton;
} llmgw_responses_opts_t;

/**
 * A canonical chat.completion (@p completion, borrowed) as a Response object
 * (ingress.md 4.7) echoing @p client; *out is a new reference owned by @p p.
 * llmgw_ingress_responses.encode_response is this with default @p opts.
 * A completion that is no chat.completion: LLMGW_EUPSTREAM, *err a 502.
 */
apr_status_t llmgw_responses_encode(apr_pool_t *p, const llmgw_responses_opts_t *opts,
                                    const json_t *client, const json_t *completion,
                                    apr_time_t created, json_t **out, llmgw_error_t **err);

/**
 * The request to echo in answers (@p client, borrowed), with `store` set to
 * @p stored: the gateway answers `"store": false` when it will not store the
 * response, whatever the client asked (ingress.md 4.6, checklist 8). A
 * shallow copy owned by @p p; pass it as `client` to encode_response and as
 * llmgw_ingress_stream_t.client.
 */
json_t *llmgw_responses_echo_request(apr_pool_t *p, const json_t *client, int stored);

/**
 * The final response object of a stream (status completed, incomplete or
 * failed), available once the terminal event is built: in the emit callback
 * of the FINAL frame, and after error_event returned. The glue writes the
 * store record from it before the terminal event leaves (ingress.md 2.1
 * step 5). Borrowed, valid while st->pool lives; NULL before.
 */
const json_t *llmgw_responses_stream_response(const llmgw_ingress_stream_t *st);

/**
 * The Response object carried by a native stream's terminal event
 * (response.completed / .incomplete / .failed), for the store record of a
 * native answer; NULL for any other event. New reference owned by @p p.
 */
json_t *llmgw_responses_native_terminal(apr_pool_t *p, const llmgw_sse_event_t *ev);

/**
 * The upstream request of GET / DELETE /v1/responses/{id}[/input_items]
 * forwarded to a native backend (openai or azure-openai, ingress.md 4.1,
 * 4.2, 5.5). @p method "GET" or "DELETE"; @p sub NULL or "input_items";
 * @p query the client's query string without '?' (NULL: none), appended as
 * it is. A backend of another type: LLMGW_EUNSUPPORTED with *err a 500.
 */
apr_status_t llmgw_responses_native_resource(apr_pool_t *p, const llmgw_backend_t *b,
                                             const char *method, const char *id, const char *sub,
                                             const char *query, llmgw_http_request_t *out,
                                             llmgw_error_t **err);

#endif /* LLMGW_RESPONSES_H */
