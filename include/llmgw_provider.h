/**
 * @file llmgw_provider.h
 * @brief The translator interface: one llmgw_provider_t per backend type.
 *
 * A translator is pure. It turns the client's OpenAI request plus the
 * backend's configuration into an upstream HTTP request (URL, headers,
 * body), and the upstream's answer (a JSON body, an error body, or SSE
 * events one at a time) back into OpenAI output. It performs no I/O, so it
 * is tested from JSON vectors and fuzzed.
 *
 * Lifetimes: everything a translator allocates comes from call->pool (the
 * request pool) except per-event scratch in streams, which must not grow the
 * request pool per event (a long stream would grow it per token): use
 * jansson's own heap (json_decref) and emit through the callback, which
 * copies.
 *
 * Streams: the translator emits complete SSE frames ("data: ...\n\n")
 * through llmgw_stream_t.emit, tagged PREAMBLE (role-only chunks the
 * gateway may hold back), CONTENT (anything carrying content, tool calls or
 * a finish_reason) or FINAL (usage chunk, "data: [DONE]"). Each frame comes
 * with the chat chunk it serialises, as JSON, so that the dispatcher
 * (llmgw_dispatch.h) can read and splice chunks and a client dialect can
 * re-encode them without parsing the bytes again. The dispatcher holds
 * back PREAMBLE frames until the first CONTENT frame so that a failure
 * before any content can still be retried invisibly.
 *
 * Remote images: a provider whose API takes image bytes rather than URLs
 * (google) lists, through remote_images, the http(s) images a request
 * needs; the glue fetches them with the guard of llmgw_fetch.h and hands
 * the results back in call->images, from which build_request inlines them.
 * The translator itself never touches the network.
 */
#ifndef LLMGW_PROVIDER_H
#define LLMGW_PROVIDER_H

#include <jansson.h>
#include <apr_hash.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_sse.h"

/** A remote image a request names, which the translator needs as bytes. */
typedef struct {
    const char *url;   /**< as the client wrote it (borrowed from the request) */
    const char *param; /**< where it is, for errors: "messages[1].content[0].image_url.url" */
} llmgw_image_ref_t;

/** A fetched image, ready to inline. */
typedef struct {
    const char *mime_type; /**< "image/png": lowercase, without parameters */
    const char *base64;    /**< the bytes in standard base64 (with padding) */
    apr_size_t size;       /**< number of bytes before encoding */
} llmgw_image_t;

/** One client request bound to one backend. */
typedef struct {
    apr_pool_t *pool; /**< request pool */
    const llmgw_backend_t *backend;
    llmgw_api_e api;
    json_t *body;                  /**< client's request, borrowed; do not modify */
    const char *model;             /**< upstream model id to use (resolved; never NULL) */
    int stream;                    /**< client asked for "stream": true */
    int include_usage;             /**< client asked stream_options.include_usage */
    apr_time_t created;            /**< seconds for `created` when the translator makes ids */
    apr_array_header_t *dropped;   /**< const char *: parameters dropped (unsupportedParams: drop);
                                        only names the translator knows, as they become a header */
    apr_array_header_t *ignored;   /**< const char *: unknown client keys left out, or NULL; for the
                                        log only, never a header (the client wrote them) */
    const char *raw_body;          /**< the client's body as received (call->body parsed from it) */
    apr_size_t raw_len;            /**< may be forwarded as is when nothing in it changes */
    const char *access_token;      /**< OAuth2 token the glue obtained (Vertex AI), else NULL */
    apr_hash_t *images;            /**< url -> const llmgw_image_t *: remote images the glue
                                        fetched for remote_images, or NULL */
    const apr_table_t *headers_in; /**< client headers a dialect passthrough forwards
                                        (anthropic-version, anthropic-beta), or NULL */
} llmgw_call_t;

/** An upstream request. Headers may hold secrets: never log them. */
typedef struct {
    const char *method; /**< "POST" or "GET" */
    const char *url;
    const apr_array_header_t *headers; /**< const char *, "Name: value" */
    /** headers is a backend's prepared list (llmgw_provider_prepare): it
     *  lives, unchanged, as long as the configuration, so a transfer may
     *  recognise it by address */
    int headers_fixed;
    const char *body; /**< NULL for GET */
    apr_size_t body_len;
    int stream; /**< the upstream answers with SSE */
} llmgw_http_request_t;

typedef struct {
    int present;
    apr_int64_t prompt_tokens;
    apr_int64_t completion_tokens;
    apr_int64_t total_tokens;
    apr_int64_t cached_tokens;      /**< of prompt_tokens, read from cache (0 when unknown) */
    apr_int64_t reasoning_tokens;   /**< of completion_tokens, spent reasoning (0 when unknown) */
    apr_int64_t cache_write_tokens; /**< of prompt_tokens, written to cache (0 when unknown) */
} llmgw_usage_t;

/** A translated non-streaming answer. */
typedef struct {
    const char *body; /**< OpenAI JSON for the client, counted by len */
    apr_size_t len;
    llmgw_usage_t usage;
    const char *model; /**< model the upstream reports, or call->model */
} llmgw_response_t;

typedef enum {
    LLMGW_CHUNK_PREAMBLE = 0,
    LLMGW_CHUNK_CONTENT,
    LLMGW_CHUNK_FINAL
} llmgw_chunk_kind_e;

/**
 * Hand one complete SSE frame on. @p data is copied before return. @p chunk
 * is the chat chunk the frame serialises (borrowed, valid during the call;
 * the callee must not keep or change it), NULL for "data: [DONE]".
 */
typedef apr_status_t (*llmgw_emit_fn)(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                      const char *data, apr_size_t len);

/** Per-attempt stream state, owned by the glue, filled by the translator. */
typedef struct {
    llmgw_call_t *call;
    llmgw_emit_fn emit;
    void *baton;
    int content_emitted; /**< a CONTENT frame has been emitted */
    int finish_seen;     /**< a finish_reason has been seen for every choice */
    int usage_seen;      /**< the upstream's usage has arrived */
    int done;            /**< the stream is complete and "data: [DONE]" was emitted */
    /**
     * Set by the glue before stream_init: past the translator, only the
     * frames' bytes are read, never the chunk objects handed to emit (a chat
     * client, no continuation). A translator that forwards frames verbatim
     * may then hand emit a chunk holding only what it read itself.
     */
    int frames_only;
    llmgw_usage_t usage;
    const char *model;    /**< as reported by the upstream (call->pool), or NULL */
    llmgw_error_t *error; /**< why the stream failed (set with a failure return) */
    void *priv;           /**< translator-private state (call->pool) */
} llmgw_stream_t;

typedef struct llmgw_provider_t {
    const char *type; /**< "openai", ... as in YAML */
    unsigned apis;    /**< LLMGW_API_* bits this type serves (models is always local) */

    /**
     * Build the upstream request. A client request the backend cannot honour
     * returns LLMGW_EBADREQ with *err set (usually 400 unsupported_parameter).
     */
    apr_status_t (*build_request)(llmgw_call_t *call, llmgw_http_request_t *out,
                                  llmgw_error_t **err);

    /** Translate a 2xx body. Malformed input: LLMGW_EUPSTREAM with *err set (502). */
    apr_status_t (*parse_response)(llmgw_call_t *call, const char *body, apr_size_t len,
                                   llmgw_response_t *out, llmgw_error_t **err);

    /**
     * Translate a non-2xx upstream answer into the error the client would
     * see for it (status kept, provider message kept, OpenAI shape). Never
     * NULL, whatever the body (empty, HTML, truncated JSON).
     */
    llmgw_error_t *(*parse_error)(llmgw_call_t *call, int status, const char *body, apr_size_t len);

    /** Prepare st->priv; st->call/emit/baton are set by the caller. */
    apr_status_t (*stream_init)(llmgw_stream_t *st);

    /**
     * One upstream SSE event. Returns APR_SUCCESS to go on, APR_EOF when the
     * upstream signalled the end and the translator emitted "data: [DONE]"
     * (st->done set), LLMGW_EMALFORMED (st->error set) when this one event
     * could not be understood and was dropped (the caller decides whether
     * the stream goes on), or a failure (LLMGW_EUPSTREAM for an error the
     * upstream reported, LLMGW_ESTREAM, or the emit callback's status) with
     * st->error set for upstream faults.
     */
    apr_status_t (*stream_event)(llmgw_stream_t *st, const llmgw_sse_event_t *ev);

    /**
     * The upstream body ended without the terminal event. When the stream is
     * complete anyway (finish_reason seen, and usage when the client asked
     * for it), emit what is missing (usage chunk, "data: [DONE]"), set
     * st->done and return APR_SUCCESS; else set st->error and return
     * LLMGW_ESTREAM. Never emits an error frame itself: the glue does.
     */
    apr_status_t (*stream_end)(llmgw_stream_t *st);

    /**
     * Optional: a retry hint carried in a non-2xx body (Google's
     * RetryInfo.retryDelay), used when the headers gave none. -1 when none.
     */
    apr_interval_time_t (*retry_hint)(const char *body, apr_size_t len);

    /**
     * Optional: the remote (http/https) images build_request will need in
     * call->images, appended to @p out as llmgw_image_ref_t in request order
     * (a URL named twice is listed twice). URIs the provider reads itself
     * (gs://, Files API) and data URIs are not listed; malformed parts are
     * skipped, build_request refuses them. NULL for providers that pass
     * image URLs on.
     */
    void (*remote_images)(const llmgw_call_t *call, apr_array_header_t *out);

    /**
     * Optional: what never changes in @p b's upstream requests (URLs, header
     * lists with the credential), built once per configuration into @p p;
     * build_request uses it when backend->fixed is set and builds the same
     * per request otherwise. NULL when nothing could be prepared.
     */
    const void *(*prepare)(const llmgw_backend_t *b, apr_pool_t *p);
} llmgw_provider_t;

/** The translator for @p type, or NULL when that type is not implemented yet. */
const llmgw_provider_t *llmgw_provider_get(llmgw_backend_type_e type);

/**
 * Prepare every provider backend of @p cfg (llmgw_provider_t.prepare) from
 * @p p, the configuration's pool: once in the parent, so every child
 * inherits the result and a request builds no URL or header list.
 */
void llmgw_provider_prepare(llmgw_config_t *cfg, apr_pool_t *p);

/* The built-in translators (src/providers/llmgw_provider_*.c). */
extern const llmgw_provider_t llmgw_provider_openai;
extern const llmgw_provider_t llmgw_provider_azure_openai;
extern const llmgw_provider_t llmgw_provider_meta;
extern const llmgw_provider_t llmgw_provider_mistral;
extern const llmgw_provider_t llmgw_provider_anthropic;
extern const llmgw_provider_t llmgw_provider_google;

#endif /* LLMGW_PROVIDER_H */
