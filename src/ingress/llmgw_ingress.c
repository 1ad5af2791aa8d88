/*
 * The dialect registry (which ingress translator serves a route) and the
 * passthrough translators: for a backend that speaks the client's dialect
 * natively (ingress.md 4.1, 4.2, 7.1) the dispatcher is handed a
 * llmgw_provider_t built from the dialect's native_* functions, so that the
 * attempts, retries, fail-over and statistics of llmgw_dispatch.c apply to
 * native calls unchanged while the client's bytes go upstream and the
 * upstream's bytes come back as they are.
 *
 * Pure, like every translator: no I/O. Per-event scratch (the re-framed
 * SSE event) is heap memory freed before the call returns.
 */
#include <stdlib.h>
#include <string.h>
#include "llmgw_ingress.h"
#include "llmgw_json.h"
#include "../providers/llmgw_provider_util.h"

const llmgw_ingress_t *llmgw_ingress_get(llmgw_dialect_e d)
{
    switch (d) {
    case LLMGW_DIALECT_RESPONSES:
        return &llmgw_ingress_responses;
    case LLMGW_DIALECT_MESSAGES:
        return &llmgw_ingress_messages;
    default:
        return NULL;
    }
}

const llmgw_ingress_t *llmgw_ingress_for_api(llmgw_api_e api)
{
    switch (api) {
    case LLMGW_API_RESPONSES:
        return &llmgw_ingress_responses;
    case LLMGW_API_MESSAGES:
        return &llmgw_ingress_messages;
    default:
        return NULL;
    }
}

int llmgw_ingress_is_native(const llmgw_ingress_t *ing, llmgw_backend_type_e type)
{
    return ing && type < LLMGW_BACKEND_TYPE_COUNT && (ing->native_types & (1u << type)) != 0;
}

/* ---------------------------------------------------------------------- */
/* Passthrough as a translator                                            */

static apr_status_t pt_build(const llmgw_ingress_t *ing, llmgw_call_t *call,
                             llmgw_http_request_t *out, llmgw_error_t **err)
{
    return ing->native_request(call->pool, call->backend, call->body, call->raw_body, call->raw_len,
                               call->model, call->stream, call->headers_in, out, err);
}

/* The upstream's 2xx body goes to the client as it is; usage and model are read from it. */
static apr_status_t pt_parse(const llmgw_ingress_t *ing, llmgw_call_t *call, const char *body,
                             apr_size_t len, llmgw_response_t *out, llmgw_error_t **err)
{
    const char *model = NULL;

    if (ing->native_observe(call->pool, body, len, &out->usage, &model) != APR_SUCCESS) {
        *err = llmgw_error_make(call->pool, 502, "server_error", "bad_gateway", NULL,
                                "The upstream answer is not a JSON object.");
        return LLMGW_EUPSTREAM;
    }
    out->body = body;
    out->len = len;
    out->model = model ? model : call->model;
    return APR_SUCCESS;
}

static llmgw_error_t *pt_error(const llmgw_ingress_t *ing, llmgw_call_t *call, int status,
                               const char *body, apr_size_t len)
{
    return ing->native_error(call->pool, status, body, len);
}

static apr_status_t pt_init(llmgw_stream_t *st)
{
    st->priv = NULL;
    return APR_SUCCESS;
}

/* The event again as SSE ("event: name\ndata: ...\n\n"), through emit. */
static apr_status_t pt_emit(llmgw_stream_t *st, llmgw_chunk_kind_e kind,
                            const llmgw_sse_event_t *ev)
{
    apr_size_t n = (ev->event_len ? ev->event_len + 8 : 0) + ev->data_len + 8;
    char *frame = malloc(n + 1), *w = frame;
    apr_status_t rv;

    if (!frame)
        return APR_ENOMEM;
    if (ev->event_len) {
        memcpy(w, "event: ", 7);
        memcpy(w + 7, ev->event, ev->event_len);
        w += 7 + ev->event_len;
        *w++ = '\n';
    }
    memcpy(w, "data: ", 6);
    memcpy(w + 6, ev->data, ev->data_len);
    w += 6 + ev->data_len;
    memcpy(w, "\n\n", 2);
    w += 2;
    /* The frame stands for itself: a non-NULL chunk (NULL means the end). */
    rv = st->emit(st->baton, kind, json_null(), frame, (apr_size_t)(w - frame));
    free(frame);
    return rv;
}

static apr_status_t pt_event(const llmgw_ingress_t *ing, llmgw_stream_t *st,
                             const llmgw_sse_event_t *ev)
{
    llmgw_chunk_kind_e kind = LLMGW_CHUNK_PREAMBLE;
    const char *model = NULL, *data;
    apr_size_t len;
    apr_status_t rv = ing->native_event(st->call->pool, ev, &kind, &st->usage, &model);

    if (model && !st->model)
        st->model = model;
    if (st->usage.present)
        st->usage_seen = 1;
    if (rv == APR_EINVAL) {
        st->error = llmgw_error_make(st->call->pool, 502, "server_error", "bad_gateway", NULL,
                                     "upstream sent a stream event that is not a JSON object");
        return LLMGW_EMALFORMED;
    }
    if (rv == LLMGW_EUPSTREAM) {
        llmgw_prov_event_data(ev, &data, &len);
        st->error = ing->native_error(st->call->pool, 0, data, len);
        return rv;
    }
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return rv;
    if (kind == LLMGW_CHUNK_CONTENT)
        st->content_emitted = 1;
    if (pt_emit(st, kind, ev) != APR_SUCCESS)
        return LLMGW_ECLIENTGONE;
    if (rv == APR_EOF) {
        apr_status_t erv;

        st->done = st->finish_seen = 1;
        /* The end of the stream, as a chat translator's "data: [DONE]" is. */
        erv = st->emit(st->baton, LLMGW_CHUNK_FINAL, NULL, "", 0);
        return erv == APR_SUCCESS ? APR_EOF : erv;
    }
    return APR_SUCCESS;
}

/* A native stream is complete only with its terminal event. */
static apr_status_t pt_end(llmgw_stream_t *st)
{
    st->error = llmgw_error_make(st->call->pool, 502, "server_error", "stream_incomplete", NULL,
                                 "The upstream stream ended before its terminal event.");
    return LLMGW_ESTREAM;
}

#define PASSTHROUGH(ING, NAME)                                                                     \
    static apr_status_t NAME##_build(llmgw_call_t *c, llmgw_http_request_t *o, llmgw_error_t **e)  \
    {                                                                                              \
        return pt_build(&ING, c, o, e);                                                            \
    }                                                                                              \
    static apr_status_t NAME##_parse(llmgw_call_t *c, const char *b, apr_size_t n,                 \
                                     llmgw_response_t *o, llmgw_error_t **e)                       \
    {                                                                                              \
        return pt_parse(&ING, c, b, n, o, e);                                                      \
    }                                                                                              \
    static llmgw_error_t *NAME##_error(llmgw_call_t *c, int s, const char *b, apr_size_t n)        \
    {                                                                                              \
        return pt_error(&ING, c, s, b, n);                                                         \
    }                                                                                              \
    static apr_status_t NAME##_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)              \
    {                                                                                              \
        return pt_event(&ING, st, ev);                                                             \
    }                                                                                              \
    static const llmgw_provider_t NAME = {                                                         \
        .type = #NAME,                                                                             \
        .apis = LLMGW_API_CHAT,                                                                    \
        .build_request = NAME##_build,                                                             \
        .parse_response = NAME##_parse,                                                            \
        .parse_error = NAME##_error,                                                               \
        .stream_init = pt_init,                                                                    \
        .stream_event = NAME##_event,                                                              \
        .stream_end = pt_end,                                                                      \
    }

PASSTHROUGH(llmgw_ingress_responses, responses_passthrough);
PASSTHROUGH(llmgw_ingress_messages, messages_passthrough);

const llmgw_provider_t *llmgw_ingress_passthrough(const llmgw_ingress_t *ing)
{
    if (ing == &llmgw_ingress_responses)
        return &responses_passthrough;
    if (ing == &llmgw_ingress_messages)
        return &messages_passthrough;
    return NULL;
}
