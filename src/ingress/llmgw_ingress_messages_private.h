/*
 * What the files of the Messages dialect share: llmgw_ingress_messages.c
 * (requests: decode, check_backend, and the table), _answer.c (answers and
 * the stream encoder), _native.c (error bodies and the passthrough),
 * _count.c (count_tokens, the estimate, the models listing). Not installed,
 * not used outside src/ingress.
 */
#ifndef LLMGW_INGRESS_MESSAGES_PRIVATE_H
#define LLMGW_INGRESS_MESSAGES_PRIVATE_H

#include "llmgw_ingress.h"
#include "llmgw_ingress_messages.h"

/** The version assumed when the client sends none (ingress.md 6.1, lenient). */
#define LLMGW_MSG_DEFAULT_VERSION "2023-06-01"

/** Anthropic's API base when the backend names no endpoint. */
#define LLMGW_MSG_DEFAULT_ENDPOINT "https://api.anthropic.com"

/** Prefix of a canonical tool id carried in an Anthropic tool_use id (ingress.md 2.4). */
#define LLMGW_MSG_B64_ID_PREFIX "toolu_gwb64_"

/** Per image (or PDF) in the token estimate: Anthropic's cap for one image. */
#define LLMGW_MSG_IMAGE_TOKENS 1600

/** Anthropic's counters (input_tokens excludes the cache counters). */
typedef struct {
    apr_int64_t input;
    apr_int64_t output;
    apr_int64_t cache_read;
    apr_int64_t cache_write;
} llmgw_msg_usage_t;

int llmgw_msg_str_eq(const char *a, const char *b);

/** @p prefix followed by 24 random base62 characters, from @p p. */
const char *llmgw_msg_mint_id(apr_pool_t *p, const char *prefix);

/** Canonical tool-call id -> the tool_use id the client sees (ingress.md 2.4), from @p p. */
const char *llmgw_msg_tool_id_out(apr_pool_t *p, const char *id);

/** A tool_use id from the client -> the canonical id it stands for, from @p p. */
const char *llmgw_msg_tool_id_in(apr_pool_t *p, const char *id);

/** finish_reason -> stop_reason (ingress.md 7.5); never NULL. */
const char *llmgw_msg_stop_reason(const char *finish_reason);

/** The canonical usage object (may be NULL) -> Anthropic counters (ingress.md 7.5). */
void llmgw_msg_usage_from_canonical(const json_t *usage, llmgw_msg_usage_t *out);

/** The Anthropic usage object of @p u (new reference). */
json_t *llmgw_msg_usage_json(const llmgw_msg_usage_t *u);

/**
 * Compact JSON of @p j with the shortest numbers that read back the same
 * (jansson alone prints 38.7 as 38.700000000000003), from @p p; NULL when it
 * cannot be serialised.
 */
const char *llmgw_msg_dump_short(apr_pool_t *p, const json_t *j);

/**
 * Frame "event: <name>\ndata: <compact @p j>\n\n" and hand it to st->emit
 * (@p j is not released). Uses the stack or jansson's heap, never st->pool.
 */
apr_status_t llmgw_msg_emit(llmgw_ingress_stream_t *st, llmgw_chunk_kind_e kind, const char *name,
                            const json_t *j);

/**
 * Decode a Messages request (ingress.md 7.2, 7.3); @p count: a count_tokens
 * request (no max_tokens, never a stream).
 */
apr_status_t llmgw_msg_decode(apr_pool_t *p, const json_t *client, int count,
                              llmgw_ingress_request_t *out, llmgw_error_t **err);

/** The 400 naming the first field a translated backend cannot honour (ingress.md 7.4). */
llmgw_error_t *llmgw_msg_check_backend(apr_pool_t *p, const json_t *client,
                                       llmgw_backend_type_e type, int drop,
                                       apr_array_header_t *dropped);

/** The passthrough headers of ingress.md 7.1 (key, one version, the beta union). */
apr_array_header_t *llmgw_msg_native_headers(apr_pool_t *p, const llmgw_backend_t *b,
                                             const apr_table_t *headers_in);

/**
 * The client's body with `model` set to @p model (ingress.md 7.1): the
 * client's bytes when they already say so, else the bytes with only the
 * model's value replaced. From @p p.
 */
apr_status_t llmgw_msg_native_body(apr_pool_t *p, const json_t *client, const char *raw,
                                   apr_size_t raw_len, const char *model, const char **body,
                                   apr_size_t *len);

/** Anthropic's error object {"type":T,"message":M} for @p e (new reference). */
json_t *llmgw_msg_error_object(apr_pool_t *p, const llmgw_error_t *e);

int llmgw_msg_all_space(const char *s, apr_size_t n);

/* The functions of the llmgw_ingress_t table (see there), by file. */

/* llmgw_ingress_messages_answer.c */
apr_status_t llmgw_msg_encode_response(apr_pool_t *p, const json_t *client,
                                       const json_t *completion, apr_time_t created, json_t **out,
                                       llmgw_error_t **err);
const char *llmgw_msg_error_event(llmgw_ingress_stream_t *st, const llmgw_error_t *e,
                                  apr_size_t *len);
apr_status_t llmgw_msg_stream_init(llmgw_ingress_stream_t *st);
apr_status_t llmgw_msg_stream_chunk(llmgw_ingress_stream_t *st, const json_t *chunk);
apr_status_t llmgw_msg_stream_end(llmgw_ingress_stream_t *st);

/* llmgw_ingress_messages_native.c */
const char *llmgw_msg_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len);
apr_status_t llmgw_msg_native_request(apr_pool_t *p, const llmgw_backend_t *b, const json_t *client,
                                      const char *raw, apr_size_t raw_len, const char *model,
                                      int stream, const apr_table_t *headers_in,
                                      llmgw_http_request_t *out, llmgw_error_t **err);
apr_status_t llmgw_msg_native_observe(apr_pool_t *p, const char *body, apr_size_t len,
                                      llmgw_usage_t *usage, const char **model);
apr_status_t llmgw_msg_native_event(apr_pool_t *p, const llmgw_sse_event_t *ev,
                                    llmgw_chunk_kind_e *kind, llmgw_usage_t *usage,
                                    const char **model);
llmgw_error_t *llmgw_msg_native_error(apr_pool_t *p, int status, const char *body, apr_size_t len);

#endif /* LLMGW_INGRESS_MESSAGES_PRIVATE_H */
