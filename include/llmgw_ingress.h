/**
 * @file llmgw_ingress.h
 * @brief Client dialects: the OpenAI Responses API and the Anthropic Messages
 *        API onto the canonical chat form, and back (ingress.md).
 *
 * The gateway's core speaks one form, the canonical OpenAI Chat Completions
 * request / chunk / response (providers.md 2.1-2.4). A client dialect is an
 * ingress translator: pure functions, like the provider translators, from
 * the client's request to the canonical request, and from the canonical
 * answer (a chat.completion object, or chat.completion.chunk objects one at
 * a time) to what the client expects. Chat Completions is the identity
 * dialect and has no table here.
 *
 *   client JSON --decode--> canonical request --provider--> upstream
 *   client <--encode_response / stream_*-- canonical answer <--provider--
 *
 * Where a backend speaks the dialect natively (Responses on openai and
 * azure-openai, Messages on anthropic) the request is sent as it is
 * (native_request) and the answer forwarded as it is, only observed for
 * usage and model (native_observe / native_event); see ingress.md 4.1, 4.2,
 * 7.1.
 *
 * Lifetimes: everything comes from the pool passed in (the request pool),
 * except per-event scratch in streams, which uses jansson's heap and is
 * released before the call returns (a long stream must not grow the request
 * pool per event). json_t arguments are borrowed unless said otherwise.
 */
#ifndef LLMGW_INGRESS_H
#define LLMGW_INGRESS_H

#include <jansson.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_provider.h"
#include "llmgw_sse.h"

typedef enum {
    LLMGW_DIALECT_CHAT = 0, /**< OpenAI Chat Completions: the identity */
    LLMGW_DIALECT_RESPONSES,
    LLMGW_DIALECT_MESSAGES
} llmgw_dialect_e;

/** What decoding a client request produced. */
typedef struct {
    json_t *canonical; /**< the canonical chat request; new reference owned by the pool */
    int stream;        /**< the client asked for a stream */
    const char *model; /**< the client's model, NULL when it gave none */
    int store;         /**< Responses: store the answer (default 1); else 0 */
    const char *previous_response_id; /**< Responses: NULL when none */
    apr_int64_t max_output_tokens;    /**< what the client allows, -1 when unbounded */
    /**
     * Responses: the request names previous_response_id or an
     * item_reference, so it cannot be translated before the response store
     * supplied the history: canonical is NULL until then
     * (llmgw_responses_store.h). Native passthrough needs no canonical form.
     */
    int needs_history;
} llmgw_ingress_request_t;

/**
 * Fills @p buf with @p len random bytes: where gateway-minted ids
 * (ingress.md 2.4) take their randomness. Tests pass a seeded generator so
 * that ids are reproducible; NULL everywhere means APR's
 * apr_generate_random_bytes.
 */
typedef void (*llmgw_ingress_random_fn)(void *baton, unsigned char *buf, apr_size_t len);

typedef struct llmgw_ingress_stream_t llmgw_ingress_stream_t;

/**
 * Per-request stream state, owned by the caller, filled by the dialect.
 * Frames go out through emit, tagged PREAMBLE (held back by the glue until
 * the first CONTENT frame, so that a failure before content can still fail
 * over), CONTENT, or FINAL (the terminal events).
 */
struct llmgw_ingress_stream_t {
    apr_pool_t *pool;     /**< request pool: small per-stream allocations only */
    const json_t *client; /**< the client's request (borrowed) */
    llmgw_emit_fn emit;   /**< frames of the dialect: its chunk argument is always NULL */
    void *baton;
    apr_time_t created; /**< seconds, for created_at */
    const char *id;     /**< the id to present (minted by stream_init when NULL) */
    int done;           /**< the terminal event was emitted */
    void *priv;         /**< dialect-private state */
    /** Randomness for minted ids (with random_baton); NULL: APR's generator. */
    llmgw_ingress_random_fn random;
    void *random_baton;
    /**
     * Why stream_chunk or stream_end failed (set with a failure return,
     * from pool): the canonical stream cannot be represented in the
     * dialect, or it ended before it was complete. The dialect emits
     * nothing for it; the glue sends error_event(st, error) as for an
     * upstream failure after the commit point.
     */
    llmgw_error_t *error;
};

typedef struct llmgw_ingress_t {
    llmgw_dialect_e dialect;
    const char *name;      /**< "responses", "messages": as in a route's api: */
    unsigned native_types; /**< bits (1u << llmgw_backend_type_e) that speak it natively */

    /**
     * Validate and translate the client's request. A request the dialect
     * refuses (schema error, a refused field such as built-in tools) returns
     * LLMGW_EBADREQ with *err set; err->param is the JSON path in the
     * dialect's own notation (ingress.md 2.1).
     */
    apr_status_t (*decode)(apr_pool_t *p, const json_t *client, llmgw_ingress_request_t *out,
                           llmgw_error_t **err);

    /**
     * Can a translated backend of @p type honour @p client (ingress.md 4.6,
     * 7.4)? NULL when it can, else the 400 naming the first offending field.
     * @p drop is the backend's unsupportedParams: drop; droppable fields are
     * then appended to @p dropped (const char *) instead of refused.
     */
    llmgw_error_t *(*check_backend)(apr_pool_t *p, const json_t *client, llmgw_backend_type_e type,
                                    int drop, apr_array_header_t *dropped);

    /** A canonical chat.completion (borrowed) -> the dialect's answer (new, pool-owned). */
    apr_status_t (*encode_response)(apr_pool_t *p, const json_t *client, const json_t *completion,
                                    apr_time_t created, json_t **out, llmgw_error_t **err);

    /** The dialect's JSON error body for @p e (status kept). */
    const char *(*error_json)(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len);

    /** The in-stream error, after the commit point: complete SSE frame(s). */
    const char *(*error_event)(llmgw_ingress_stream_t *st, const llmgw_error_t *e, apr_size_t *len);

    /** Prepare st->priv (and st->id when NULL). */
    apr_status_t (*stream_init)(llmgw_ingress_stream_t *st);

    /** One canonical chat.completion.chunk (borrowed). */
    apr_status_t (*stream_chunk)(llmgw_ingress_stream_t *st, const json_t *chunk);

    /**
     * The canonical stream completed (the equivalent of "data: [DONE]"):
     * emit the terminal events and set st->done.
     */
    apr_status_t (*stream_end)(llmgw_ingress_stream_t *st);

    /**
     * Native passthrough: the upstream request for a backend that speaks the
     * dialect (its type is in native_types). @p model is the resolved model
     * to send (a pool member may substitute its own). @p headers_in gives
     * client headers the dialect forwards (anthropic-version,
     * anthropic-beta), or NULL.
     */
    apr_status_t (*native_request)(apr_pool_t *p, const llmgw_backend_t *b, const json_t *client,
                                   const char *raw, apr_size_t raw_len, const char *model,
                                   int stream, const apr_table_t *headers_in,
                                   llmgw_http_request_t *out, llmgw_error_t **err);

    /** Native passthrough, non-streaming: usage and model of a 2xx body. */
    apr_status_t (*native_observe)(apr_pool_t *p, const char *body, apr_size_t len,
                                   llmgw_usage_t *usage, const char **model);

    /**
     * Native passthrough, streaming: observe one upstream event (usage,
     * model, whether it is content or preamble, whether it is terminal).
     * Sets *kind for the glue's hold-back; returns APR_EOF after the
     * terminal event.
     */
    apr_status_t (*native_event)(apr_pool_t *p, const llmgw_sse_event_t *ev,
                                 llmgw_chunk_kind_e *kind, llmgw_usage_t *usage,
                                 const char **model);

    /** The native error body -> a gateway error (status kept), never NULL. */
    llmgw_error_t *(*native_error)(apr_pool_t *p, int status, const char *body, apr_size_t len);

    /**
     * Optional (NULL: nothing to do). After check_backend dropped fields
     * into @p dropped (unsupportedParams: drop), the canonical request for
     * that backend: @p canonical (borrowed) without the canonical fields
     * the dropped ones became (e.g. Messages `top_k`, `stop_sequences`, a
     * prefill turn), as a new pool-owned value; @p canonical itself when
     * none of them is in it. Fields check_backend refuses that never reach
     * the canonical form (server tools, beta fields) need nothing here.
     */
    const json_t *(*drop_fields)(apr_pool_t *p, const json_t *canonical,
                                 const apr_array_header_t *dropped);
} llmgw_ingress_t;

/** The dialect @p d, or NULL for LLMGW_DIALECT_CHAT. */
const llmgw_ingress_t *llmgw_ingress_get(llmgw_dialect_e d);

/**
 * The registry: the dialect a route of @p api serves (LLMGW_API_RESPONSES,
 * LLMGW_API_MESSAGES), NULL for the OpenAI apis (chat is the identity).
 */
const llmgw_ingress_t *llmgw_ingress_for_api(llmgw_api_e api);

/** Does a backend of @p type speak dialect @p ing natively (passthrough)? */
int llmgw_ingress_is_native(const llmgw_ingress_t *ing, llmgw_backend_type_e type);

/**
 * The translator the dispatcher uses for a native backend of @p ing: its
 * build_request is native_request over call->body / raw_body (the client's
 * own request) and call->headers_in; a 2xx body is passed on as it is
 * (parse_response observes usage and model); stream events are passed on
 * re-framed but unchanged, tagged by native_event, each with json_null() as
 * their chunk (there is no chat chunk), and the terminal event is followed
 * by the end frame (chunk NULL, no bytes). Static; NULL for an unknown table.
 */
const llmgw_provider_t *llmgw_ingress_passthrough(const llmgw_ingress_t *ing);

extern const llmgw_ingress_t llmgw_ingress_responses;
extern const llmgw_ingress_t llmgw_ingress_messages;

#endif /* LLMGW_INGRESS_H */
