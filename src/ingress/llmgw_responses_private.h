/*
 * Shared by the files of the Responses dialect (llmgw_ingress_responses.c:
 * requests; llmgw_ingress_responses_answer.c: answers, streams, native
 * passthrough; llmgw_responses_store.c: the store). Not a public interface.
 */
#ifndef LLMGW_RESPONSES_PRIVATE_H
#define LLMGW_RESPONSES_PRIVATE_H

#include <stdarg.h>
#include <jansson.h>
#include "llmgw_responses.h"

/** A 400 invalid_request_error with @p code and @p param (copied), from @p p. */
llmgw_error_t *llmgw_rsp_bad(apr_pool_t *p, const char *code, const char *param, const char *fmt,
                             ...) __attribute__((format(printf, 4, 5)));

/** "input[i]"-style paths, from @p p. */
const char *llmgw_rsp_path(apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** The type of input item @p item: its `type`, "message" for a typed-by-role message, or NULL. */
const char *llmgw_rsp_item_type(const json_t *item);

/**
 * The canonical request from @p client with @p history (NULL: none) before
 * @p input (NULL: the client's own input, as given). The request side's
 * core, shared by decode and the store's expansion.
 */
apr_status_t llmgw_rsp_canonical(apr_pool_t *p, const json_t *client, const json_t *history,
                                 const json_t *input, llmgw_ingress_request_t *out,
                                 llmgw_error_t **err);

/** Did the client ask for reasoning summaries (ingress.md 4.5)? */
int llmgw_rsp_wants_summary(const json_t *client);

/**
 * The Response object skeleton echoing @p client (ingress.md 3.4): every
 * member, `output` empty, `usage` null, `status` @p status (new reference,
 * jansson's heap).
 */
json_t *llmgw_rsp_skeleton(const json_t *client, const char *id, apr_time_t created,
                           const char *model, const char *status);

/** The Responses usage of a chat usage object (new reference), or NULL when it is none. */
json_t *llmgw_rsp_usage(const json_t *chat_usage);

/* The stream callbacks of the table (llmgw_ingress_responses_answer.c). */
apr_status_t llmgw_rsp_encode_response(apr_pool_t *p, const json_t *client,
                                       const json_t *completion, apr_time_t created, json_t **out,
                                       llmgw_error_t **err);
const char *llmgw_rsp_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len);
const char *llmgw_rsp_error_event(llmgw_ingress_stream_t *st, const llmgw_error_t *e,
                                  apr_size_t *len);
apr_status_t llmgw_rsp_stream_init(llmgw_ingress_stream_t *st);
apr_status_t llmgw_rsp_stream_chunk(llmgw_ingress_stream_t *st, const json_t *chunk);
apr_status_t llmgw_rsp_stream_end(llmgw_ingress_stream_t *st);
apr_status_t llmgw_rsp_native_request(apr_pool_t *p, const llmgw_backend_t *b, const json_t *client,
                                      const char *raw, apr_size_t raw_len, const char *model,
                                      int stream, const apr_table_t *headers_in,
                                      llmgw_http_request_t *out, llmgw_error_t **err);
apr_status_t llmgw_rsp_native_observe(apr_pool_t *p, const char *body, apr_size_t len,
                                      llmgw_usage_t *usage, const char **model);
apr_status_t llmgw_rsp_native_event(apr_pool_t *p, const llmgw_sse_event_t *ev,
                                    llmgw_chunk_kind_e *kind, llmgw_usage_t *usage,
                                    const char **model);
llmgw_error_t *llmgw_rsp_native_error(apr_pool_t *p, int status, const char *body, apr_size_t len);

#endif /* LLMGW_RESPONSES_PRIVATE_H */
