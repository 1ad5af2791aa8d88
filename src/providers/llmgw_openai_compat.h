/**
 * @file llmgw_openai_compat.h
 * @brief One translator for every OpenAI-compatible API, parameterised by a dialect.
 *
 * `openai`, `azure-openai`, `meta` and `mistral` all speak the Chat
 * Completions / Embeddings dialect of OpenAI; what differs is small: the URL,
 * the credential header, which request fields the upstream takes, and how far
 * its answers stray from OpenAI's shape. The core here does everything once
 * (request framing, answer parsing, stream tracking, error normalisation) and
 * asks a llmgw_oai_dialect_t for the differences.
 *
 * Two families of dialect:
 *  - pass-through (openai, azure-openai): the client's body is copied and
 *    edited, unknown fields included (providers.md 2.1);
 *  - rebuilt (meta, mistral): the body is built from scratch from a
 *    whitelist described by a llmgw_oai_profile_t, never copying an unknown
 *    field (Mistral answers 422 to one, Groq 400).
 *
 * Answers of every dialect but openai are normalised: only OpenAI's members
 * are kept, finish reasons outside OpenAI's set are mapped, streams get one
 * stable id/created/model, empty annotation chunks are dropped, and usage is
 * moved into its own chunk just before [DONE] (providers.md 4.5, 7.4, 8.3).
 * openai's answers are forwarded as OpenAI sent them.
 *
 * Memory: as llmgw_provider.h says, everything per request comes from
 * call->pool, and per stream event only jansson's heap is used.
 */
#ifndef LLMGW_OPENAI_COMPAT_H
#define LLMGW_OPENAI_COMPAT_H

#include "llmgw_json.h"
#include "llmgw_provider.h"

typedef struct llmgw_oai_dialect_t llmgw_oai_dialect_t;

/** Builds the upstream body for one API (new reference in *out). */
typedef apr_status_t (*llmgw_oai_body_fn)(llmgw_call_t *call, json_t **out, llmgw_error_t **err);

struct llmgw_oai_dialect_t {
    const char *type;             /**< YAML type name, for messages */
    const char *default_endpoint; /**< base URL when the backend has none; NULL: required */
    /**
     * Normalise answers to OpenAI's exact shape (see the file comment) and
     * errors to OpenAI's type/code vocabulary. 0 for openai itself.
     */
    int normalise;
    /** Embeddings come back as floats; base64 output is encoded here (providers.md 2.6). */
    int local_base64;
    /** URL for @p path ("/chat/completions", "/embeddings"); NULL: base + path. */
    const char *(*url)(const llmgw_backend_t *b, apr_pool_t *p, const char *base, const char *path);
    /** Append the credential header(s) to @p headers ("Name: value" strings). */
    void (*auth)(const llmgw_backend_t *b, apr_pool_t *p, apr_array_header_t *headers);
    llmgw_oai_body_fn chat_body;
    llmgw_oai_body_fn embeddings_body;
    /**
     * 1 when the client's raw body (call->raw_body) is exactly what the body
     * function would produce, so it can be sent without a re-serialisation.
     * Optional (NULL: never).
     */
    int (*raw_body_ok)(const llmgw_call_t *call);
    /**
     * Refine a normalised upstream error (@p body: the parsed error body or
     * NULL). Returns the error to use; may return @p e. Optional.
     */
    llmgw_error_t *(*fix_error)(llmgw_call_t *call, int status, const json_t *body,
                                llmgw_error_t *e);
};

/* ---------------------------------------------------------------------- */
/* The provider functions, for a dialect                                  */
/* ---------------------------------------------------------------------- */

/**
 * What an openai answer (llmgw_oai_parse_response) and stream chunk
 * (llmgw_oai_stream_event, frames only) are read for when they go out as
 * the upstream sent them (llmgw_json_pick); the fuzz target
 * tests/fuzz/fuzz_json_pick.c holds these very lists against jansson.
 */
extern const llmgw_json_pick_t llmgw_oai_pick_answer[];
extern const llmgw_json_pick_t llmgw_oai_pick_chunk[];

/** An openai-style backend's request constants (llmgw_provider_t.prepare). */
typedef struct {
    const char *chat_url;
    const char *embeddings_url;
    const apr_array_header_t *headers;        /**< for answers in one piece */
    const apr_array_header_t *stream_headers; /**< for SSE answers */
} llmgw_oai_fixed_t;

/** The constants of @p b's requests, from @p p; NULL when it has no endpoint. */
const void *llmgw_oai_prepare(const llmgw_oai_dialect_t *d, const llmgw_backend_t *b,
                              apr_pool_t *p);
apr_status_t llmgw_oai_build_request(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                     llmgw_http_request_t *out, llmgw_error_t **err);
apr_status_t llmgw_oai_parse_response(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                      const char *body, apr_size_t len, llmgw_response_t *out,
                                      llmgw_error_t **err);
llmgw_error_t *llmgw_oai_parse_error(const llmgw_oai_dialect_t *d, llmgw_call_t *call, int status,
                                     const char *body, apr_size_t len);
/** Remembers @p d in st->priv; stream_event and stream_end read it from there. */
apr_status_t llmgw_oai_stream_init(const llmgw_oai_dialect_t *d, llmgw_stream_t *st);
apr_status_t llmgw_oai_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev);
apr_status_t llmgw_oai_stream_end(llmgw_stream_t *st);

/* ---------------------------------------------------------------------- */
/* Helpers for the pass-through dialects                                  */
/* ---------------------------------------------------------------------- */

/**
 * A shallow copy of the client's body (new reference): members stay shared
 * with the client's body, so top-level members may be replaced or removed
 * but never edited in place. `model` is set to @p model, or removed when
 * @p model is NULL. LLMGW_EBADREQ when @p model is not valid UTF-8.
 */
apr_status_t llmgw_oai_copy_body(llmgw_call_t *call, const char *model, json_t **out,
                                 llmgw_error_t **err);

/**
 * Make a copied chat body ask for what the gateway needs: a streamed answer
 * carries usage (stream_options.include_usage when @p usage_option), a
 * non-streamed request carries no stream fields at all.
 */
void llmgw_oai_set_stream_fields(json_t *body, int stream, int usage_option);

/** Replace `developer` messages of a copied body by `system` ones (copies, never edits). */
void llmgw_oai_developer_to_system(json_t *body);

/* ---------------------------------------------------------------------- */
/* Unsupported parameters (DESIGN.md 4)                                   */
/* ---------------------------------------------------------------------- */

/**
 * A parameter the backend cannot honour. With `unsupportedParams: drop` the
 * name goes to call->dropped and APR_SUCCESS is returned (the caller then
 * leaves it out); otherwise *err is a 400 with @p code
 * ("unsupported_parameter" or "unsupported_value") naming @p param, and
 * LLMGW_EBADREQ is returned.
 */
apr_status_t llmgw_oai_unsupported(llmgw_call_t *call, const char *param, const char *code,
                                   llmgw_error_t **err);

/** A parameter left out because it does not change the answer (user, metadata...): named only. */
void llmgw_oai_note_dropped(llmgw_call_t *call, const char *param);

/** A key of the client's the gateway does not know, left out: logged, never a header. */
void llmgw_oai_note_ignored(llmgw_call_t *call, const char *key);

/* ---------------------------------------------------------------------- */
/* Helpers the rebuild translator shares with the framework               */
/* ---------------------------------------------------------------------- */

/** Copy member @p key from @p from to @p to when present (shared reference). */
void llmgw_oai_copy_member(json_t *to, const json_t *from, const char *key);

/** A content value as one string (text parts joined), from @p p; NULL when it has no text form. */
char *llmgw_oai_content_text(apr_pool_t *p, const json_t *content);

/** A tool-call `arguments` value: a string as is, anything else serialised (new reference). */
json_t *llmgw_oai_arguments_json(const json_t *v);

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies (meta, mistral): llmgw_provider_rebuild.c               */
/* ---------------------------------------------------------------------- */

typedef enum {
    LLMGW_OAI_LOGPROBS_OPENAI = 0, /**< logprobs: bool + top_logprobs, as OpenAI */
    LLMGW_OAI_LOGPROBS_INTEGER,    /**< logprobs: k (Together) */
    LLMGW_OAI_LOGPROBS_NONE        /**< not supported */
} llmgw_oai_logprobs_e;

/** What an upstream takes, for llmgw_oai_rebuild_chat(). */
typedef struct {
    const char *seed_field;      /**< name of `seed` upstream ("seed", "random_seed") */
    const char *required_choice; /**< what tool_choice "required" becomes ("any") */
    int stream_usage_option;     /**< send stream_options.include_usage when streaming */
    int max_n;                   /**< largest `n` taken; 0: any */
    int stop_array;              /**< `stop` must be an array */
    int parallel_tool_calls;     /**< `parallel_tool_calls` is taken */
    llmgw_oai_logprobs_e logprobs;
    int tools_need_parameters; /**< a function without parameters gets an empty schema */
    int schema_required;       /**< response_format json_schema must carry `schema` */
    int reasoning_effort;      /**< `reasoning_effort` taken (OpenAI "max" -> "xhigh") */
    int prediction;            /**< `prediction` taken */
    /* conversation constraints */
    int tool_message_name;         /**< tool messages carry the function's name */
    int short_tool_ids;            /**< tool-call ids must match ^[a-zA-Z0-9]{9}$ */
    const char *bridge;            /**< assistant text inserted between tool and user; NULL: none */
    int prefix_trailing_assistant; /**< a trailing assistant message gets "prefix": true */
    int merge_user_turns;          /**< consecutive user messages become one */
} llmgw_oai_profile_t;

/** The chat body for @p prof, from scratch (new reference in *out). */
apr_status_t llmgw_oai_rebuild_chat(llmgw_call_t *call, const llmgw_oai_profile_t *prof,
                                    json_t **out, llmgw_error_t **err);

/**
 * The embeddings body from scratch: model, input (strings only; token ids
 * are another tokenizer's), encoding_format float, and `dimensions` under
 * the name @p dimensions_field (NULL: not supported).
 */
apr_status_t llmgw_oai_rebuild_embeddings(llmgw_call_t *call, const char *dimensions_field,
                                          json_t **out, llmgw_error_t **err);

/**
 * A tool-call id that matches ^[a-zA-Z0-9]{9}$: @p id itself when it does,
 * else 9 base62 characters derived from SHA-1(@p id), the same for the same
 * id in every request, so tool_calls[].id and tool_call_id stay paired.
 */
const char *llmgw_oai_short_tool_id(apr_pool_t *p, const char *id);

/** "Authorization: Bearer <key>" when the backend has a key. */
void llmgw_oai_bearer_auth(const llmgw_backend_t *b, apr_pool_t *p, apr_array_header_t *headers);

#endif /* LLMGW_OPENAI_COMPAT_H */
