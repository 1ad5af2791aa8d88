/*
 * The Anthropic Messages ingress dialect (llmgw_ingress_messages): the input
 * is whatever a client or an upstream may send. It goes through
 *   - decode (a /v1/messages and a count_tokens request), check_backend for
 *     every backend type with and without unsupportedParams: drop, and
 *     drop_fields, when the input parses as JSON;
 *   - native_request and llmgw_messages_count_request (every backend type),
 *     with the input as the client's bytes;
 *   - encode_response, with the input as a canonical chat.completion;
 *   - the stream encoder, with the input as an SSE stream of canonical
 *     chunks (each event's data one chunk), then stream_end, as the glue
 *     drives it; and with the input as a JSON array of chunks;
 *   - native_observe, native_event (the input as Anthropic's SSE stream)
 *     and native_error;
 *   - the error body and the in-stream error event for a status the first
 *     two bytes pick.
 * Besides memory safety this checks what the glue relies on: errors are
 * well-formed Anthropic errors, the canonical request is an object, the
 * client's body is left untouched, the native body is the client's JSON
 * with the model replaced, upstream headers carry no line break and no
 * client credential, every stream frame is `event: <type>` + one line of
 * JSON whose type is that name, blocks open and close in order,
 * message_start comes first and nothing follows message_stop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <string.h>
#include <jansson.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "fuzz.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_ingress.h"
#include "llmgw_ingress_messages.h"
#include "llmgw_json.h"
#include "llmgw_sse.h"

#define FUZZ_MAX_EVENT (1 << 20)
#define BACKEND_KEY "sk-ant-fuzz-Rz7Qp3Xn9Lw2"
#define CLIENT_KEY "client-fuzz-Hy5Tb8Km1Vd4"

static const llmgw_ingress_t *D = &llmgw_ingress_messages;

static const llmgw_backend_t *make_backend(apr_pool_t *p, llmgw_backend_type_e type, int drop)
{
    llmgw_backend_t *be = apr_pcalloc(p, sizeof(*be));

    be->name = "fuzz";
    be->type = type;
    be->api_key = BACKEND_KEY;
    be->endpoint = type == LLMGW_BACKEND_META || type == LLMGW_BACKEND_AZURE_OPENAI
                       ? "https://fuzz.example.com"
                       : NULL;
    be->deployment_name = "dep";
    be->api_version = drop ? "v1" : "2024-10-21";
    be->project_id = drop && type == LLMGW_BACKEND_GOOGLE ? "proj" : NULL;
    be->location = "europe-west4";
    be->default_model = "fuzz-model";
    be->models = apr_array_make(p, 1, sizeof(const char *));
    be->timeout = be->connect_timeout = LLMGW_UNSET;
    be->first_byte_timeout = be->idle_timeout = LLMGW_UNSET;
    be->max_retries = be->max_tokens = LLMGW_UNSET;
    be->unsupported_drop = drop;
    be->failure_threshold = be->max_attempts = LLMGW_UNSET;
    be->cooldown = LLMGW_UNSET;
    be->fallback = 1;
    return be;
}

static void check_json_object(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);

    FUZZ_CHECK(json_is_object(j));
    json_decref(j);
}

/* An error as the client would get it: an HTTP status and Anthropic's body. */
static void check_error(apr_pool_t *p, const llmgw_error_t *e)
{
    apr_size_t len = 0;
    const char *body;
    json_t *j;

    FUZZ_CHECK(e != NULL);
    FUZZ_CHECK(e->status >= 400 && e->status <= 599);
    FUZZ_CHECK(e->message != NULL);
    body = llmgw_messages_error_body(p, e, "req_fuzz", &len);
    FUZZ_CHECK(body != NULL && len == strlen(body));
    j = json_loadb(body, len, 0, NULL);
    FUZZ_CHECK(json_is_object(j));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "type")), "error") == 0);
    FUZZ_CHECK(json_is_string(json_object_get(json_object_get(j, "error"), "type")));
    FUZZ_CHECK(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
}

static void check_http_request(const llmgw_http_request_t *out, const char *model)
{
    int i;

    FUZZ_CHECK(out->method && strcmp(out->method, "POST") == 0);
    FUZZ_CHECK(out->url && !strpbrk(out->url, "\r\n ?"));
    FUZZ_CHECK(out->headers != NULL);
    for (i = 0; i < out->headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(out->headers, i, const char *);
        FUZZ_CHECK(h && strchr(h, ':') && !strpbrk(h, "\r\n"));
        FUZZ_CHECK(!strstr(h, CLIENT_KEY));
    }
    FUZZ_CHECK(out->body != NULL);
    check_json_object(out->body, out->body_len);
    if (model) {
        json_t *j = json_loadb(out->body, out->body_len, JSON_ALLOW_NUL, NULL);
        const char *m = json_string_value(json_object_get(j, "model"));
        FUZZ_CHECK(m && strcmp(m, model) == 0);
        json_decref(j);
    }
}

/* ---- requests --------------------------------------------------------- */

static void fuzz_requests(apr_pool_t *p, json_t *client, const uint8_t *data, size_t size)
{
    json_t *pristine = json_deep_copy(client);
    apr_table_t *headers = apr_table_make(p, 4);
    llmgw_ingress_request_t req;
    llmgw_error_t *err = NULL;
    llmgw_http_request_t out;
    int type, drop, ok;

    apr_table_add(headers, "anthropic-version", "2023-06-01");
    apr_table_add(headers, "anthropic-beta", "a-1, b-2,\r\nx: y");
    apr_table_add(headers, "x-api-key", CLIENT_KEY);
    ok = D->decode(p, client, &req, &err) == APR_SUCCESS;
    FUZZ_CHECK(json_equal(client, pristine));
    if (!ok)
        check_error(p, err);
    else
        FUZZ_CHECK(json_is_object(req.canonical));
    for (type = 0; type < LLMGW_BACKEND_POOL; type++) {
        for (drop = 0; drop < 2; drop++) {
            apr_array_header_t *dropped = apr_array_make(p, 2, sizeof(const char *));
            llmgw_error_t *e =
                D->check_backend(p, client, (llmgw_backend_type_e)type, drop, dropped);
            const llmgw_backend_t *b = make_backend(p, (llmgw_backend_type_e)type, drop);
            int i;

            if (e)
                check_error(p, e);
            if (type == LLMGW_BACKEND_ANTHROPIC)
                FUZZ_CHECK(e == NULL && dropped->nelts == 0);
            if (!drop)
                FUZZ_CHECK(dropped->nelts == 0);
            for (i = 0; i < dropped->nelts; i++)
                FUZZ_CHECK(!strpbrk(APR_ARRAY_IDX(dropped, i, const char *), "\r\n:,"));
            if (ok && !e) {
                const json_t *fit = D->drop_fields(p, req.canonical, dropped);
                FUZZ_CHECK(json_is_object(fit));
            }
            memset(&out, 0, sizeof(out));
            err = NULL;
            if (llmgw_messages_count_request(p, b, client, (const char *)data, size, NULL, headers,
                                             drop ? "ya29.fuzz" : NULL, &out, &err) == APR_SUCCESS)
                check_http_request(&out, NULL);
            else
                check_error(p, err);
            FUZZ_CHECK(json_equal(client, pristine));
        }
    }
    memset(&out, 0, sizeof(out));
    err = NULL;
    if (json_is_object(client)) {
        const llmgw_backend_t *b = make_backend(p, LLMGW_BACKEND_ANTHROPIC, 0);
        FUZZ_CHECK(D->native_request(p, b, client, (const char *)data, size, "claude-fuzz", 1,
                                     headers, &out, &err) == APR_SUCCESS);
        check_http_request(&out, "claude-fuzz");
        FUZZ_CHECK(D->native_request(p, b, client, NULL, 0, "claude-\"q\\", 0, NULL, &out, &err) ==
                   APR_SUCCESS);
        check_http_request(&out, "claude-\"q\\");
    }
    FUZZ_CHECK(llmgw_messages_estimate_tokens(client) >= 1);
    FUZZ_CHECK(json_equal(client, pristine));
    json_decref(pristine);
}

static void fuzz_response(apr_pool_t *p, json_t *completion)
{
    json_t *client = json_pack("{s:s}", "model", "fuzz-model"), *out = NULL;
    llmgw_error_t *err = NULL;
    apr_size_t len;

    if (D->encode_response(p, client, completion, 0, &out, &err) == APR_SUCCESS) {
        const char *text = llmgw_json_dump(p, out, &len);
        FUZZ_CHECK(json_is_object(out) && text);
        FUZZ_CHECK(json_is_array(json_object_get(out, "content")));
        FUZZ_CHECK(json_is_string(json_object_get(out, "stop_reason")));
    }
    else {
        check_error(p, err);
    }
    json_decref(client);
}

/* ---- the stream encoder ------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    llmgw_ingress_stream_t *st;
    int frames;
    int started, stopped, open, next;
    apr_status_t rv; /* the first failure of stream_chunk */
} run_t;

static apr_status_t check_frame(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                const char *data, apr_size_t len)
{
    run_t *r = baton;
    const char *nl, *payload, *type;
    apr_size_t plen, nlen;
    json_t *j, *index;
    int k;

    FUZZ_CHECK(chunk == NULL); /* ingress frames carry no chat chunk */
    FUZZ_CHECK(!r->stopped);
    FUZZ_CHECK(len > 16 && memcmp(data, "event: ", 7) == 0);
    nl = memchr(data, '\n', len);
    FUZZ_CHECK(nl && memcmp(nl + 1, "data: ", 6) == 0);
    FUZZ_CHECK(memcmp(data + len - 2, "\n\n", 2) == 0);
    nlen = (apr_size_t)(nl - data - 7);
    payload = nl + 7;
    plen = (apr_size_t)(data + len - 2 - payload);
    FUZZ_CHECK(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen));
    j = json_loadb(payload, plen, 0, NULL);
    FUZZ_CHECK(json_is_object(j));
    type = json_string_value(json_object_get(j, "type"));
    FUZZ_CHECK(type && strlen(type) == nlen && memcmp(type, data + 7, nlen) == 0);
    index = json_object_get(j, "index");
    k = json_is_integer(index) ? (int)json_integer_value(index) : -1;
    if (r->frames++ == 0)
        FUZZ_CHECK(strcmp(type, "message_start") == 0);
    if (strcmp(type, "message_start") == 0) {
        FUZZ_CHECK(!r->started && kind == LLMGW_CHUNK_PREAMBLE);
        r->started = 1;
    }
    else if (strcmp(type, "content_block_start") == 0) {
        FUZZ_CHECK(kind == LLMGW_CHUNK_CONTENT && r->open < 0 && k == r->next);
        r->open = k;
        r->next++;
    }
    else if (strcmp(type, "content_block_delta") == 0) {
        FUZZ_CHECK(kind == LLMGW_CHUNK_CONTENT && r->open == k && k >= 0);
    }
    else if (strcmp(type, "content_block_stop") == 0) {
        FUZZ_CHECK(kind == LLMGW_CHUNK_CONTENT && r->open == k && k >= 0);
        r->open = -1;
    }
    else if (strcmp(type, "message_delta") == 0) {
        FUZZ_CHECK(kind == LLMGW_CHUNK_FINAL && r->open < 0);
    }
    else if (strcmp(type, "message_stop") == 0) {
        FUZZ_CHECK(kind == LLMGW_CHUNK_FINAL);
        r->stopped = 1;
    }
    else {
        FUZZ_CHECK(strcmp(type, "ping") == 0);
    }
    json_decref(j);
    return APR_SUCCESS;
}

static void feed_chunk(run_t *r, const char *data, apr_size_t len)
{
    json_t *chunk = json_loadb(data, len, 0, NULL);
    apr_status_t rv;

    if (!chunk)
        return; /* the glue parses the provider's frames; only JSON reaches the encoder */
    rv = D->stream_chunk(r->st, chunk);
    if (rv != APR_SUCCESS && r->rv == APR_SUCCESS) {
        FUZZ_CHECK(r->st->error != NULL);
        check_error(r->p, r->st->error);
        r->rv = rv;
    }
    json_decref(chunk);
}

static apr_status_t on_chunk_event(void *baton, const llmgw_sse_event_t *ev)
{
    run_t *r = baton;

    if (r->rv == APR_SUCCESS && !r->st->done)
        feed_chunk(r, ev->data, ev->data_len);
    return APR_SUCCESS;
}

static run_t *new_run(apr_pool_t *p, const json_t *client)
{
    run_t *r = apr_pcalloc(p, sizeof(*r));
    llmgw_ingress_stream_t *st = apr_pcalloc(p, sizeof(*st));

    r->p = p;
    r->open = -1;
    r->st = st;
    st->pool = p;
    st->client = client;
    st->emit = check_frame;
    st->baton = r;
    FUZZ_CHECK(D->stream_init(st) == APR_SUCCESS && st->id && *st->id);
    return r;
}

/* As the glue: stream_end when nothing failed, else the error event once. */
static void finish_run(run_t *r)
{
    apr_size_t len = 0;
    const char *frame;

    if (r->rv == APR_SUCCESS) {
        apr_status_t rv = D->stream_end(r->st);

        if (rv == APR_SUCCESS) {
            FUZZ_CHECK(r->st->done && r->stopped && r->open < 0);
            return;
        }
        FUZZ_CHECK(rv == LLMGW_ESTREAM && !r->st->done && r->st->error);
        check_error(r->p, r->st->error);
    }
    frame = D->error_event(r->st, r->st->error, &len);
    FUZZ_CHECK(frame && len == strlen(frame) && memcmp(frame, "event: error\ndata: ", 19) == 0);
    check_json_object(frame + 19, len - 21);
    FUZZ_CHECK(r->st->done);
}

static void fuzz_stream(apr_pool_t *p, const uint8_t *data, size_t size, const json_t *client)
{
    run_t *r = new_run(p, client);
    llmgw_sse_parser_t *sp;

    FUZZ_CHECK(llmgw_sse_parser_create(&sp, p, FUZZ_MAX_EVENT, on_chunk_event, r) == APR_SUCCESS);
    (void)llmgw_sse_parser_feed(sp, (const char *)data, size);
    (void)llmgw_sse_parser_finish(sp);
    finish_run(r);
}

static void fuzz_chunk_array(apr_pool_t *p, const json_t *chunks, const json_t *client)
{
    run_t *r = new_run(p, client);
    json_t *c;
    size_t i;

    json_array_foreach (chunks, i, c) {
        apr_status_t rv = D->stream_chunk(r->st, c);
        if (rv != APR_SUCCESS) {
            FUZZ_CHECK(r->st->error != NULL);
            check_error(p, r->st->error);
            r->rv = rv;
            break;
        }
    }
    finish_run(r);
}

/* ---- native answers ------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    llmgw_usage_t usage;
    const char *model;
    int ended;
} native_run_t;

static apr_status_t on_native_event(void *baton, const llmgw_sse_event_t *ev)
{
    native_run_t *n = baton;
    llmgw_chunk_kind_e kind = (llmgw_chunk_kind_e)-1;
    apr_status_t rv;

    if (n->ended)
        return APR_SUCCESS;
    rv = D->native_event(n->p, ev, &kind, &n->usage, &n->model);
    FUZZ_CHECK(kind == LLMGW_CHUNK_PREAMBLE || kind == LLMGW_CHUNK_CONTENT ||
               kind == LLMGW_CHUNK_FINAL);
    FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EOF || rv == APR_EINVAL || rv == LLMGW_EUPSTREAM);
    if (rv == LLMGW_EUPSTREAM)
        check_error(n->p, D->native_error(n->p, 0, ev->data, ev->data_len));
    if (rv == APR_EOF)
        n->ended = 1;
    /* Usage stays consistent: the total is the sum, the parts within it. */
    FUZZ_CHECK(n->usage.total_tokens == n->usage.prompt_tokens + n->usage.completion_tokens);
    FUZZ_CHECK(n->usage.cached_tokens + n->usage.cache_write_tokens <= n->usage.prompt_tokens);
    return APR_SUCCESS;
}

static void fuzz_native(apr_pool_t *p, const uint8_t *data, size_t size)
{
    native_run_t *n = apr_pcalloc(p, sizeof(*n));
    llmgw_sse_parser_t *sp;
    llmgw_usage_t u;
    const char *model = NULL;
    int status = size >= 2 ? 400 + ((data[0] << 8) | data[1]) % 200 : 529;

    n->p = p;
    FUZZ_CHECK(llmgw_sse_parser_create(&sp, p, FUZZ_MAX_EVENT, on_native_event, n) == APR_SUCCESS);
    (void)llmgw_sse_parser_feed(sp, (const char *)data, size);
    (void)llmgw_sse_parser_finish(sp);
    if (D->native_observe(p, (const char *)data, size, &u, &model) == APR_SUCCESS)
        FUZZ_CHECK(u.total_tokens == u.prompt_tokens + u.completion_tokens);
    check_error(p, D->native_error(p, status, (const char *)data, size));
    check_error(p, D->native_error(p, 0, (const char *)data, size));
}

static void fuzz_errors(apr_pool_t *p, const uint8_t *data, size_t size)
{
    int status = size >= 2 ? 400 + ((data[0] << 8) | data[1]) % 200 : 500;
    const char *msg = apr_pstrmemdup(p, (const char *)data, size);
    llmgw_error_t *e =
        llmgw_error_make(p, status, NULL, size > 3 ? msg + 3 : NULL, NULL, "%s", msg);
    llmgw_ingress_stream_t st;
    apr_size_t len = 0;
    const char *frame;

    check_error(p, e);
    memset(&st, 0, sizeof(st));
    st.pool = p;
    frame = D->error_event(&st, e, &len);
    FUZZ_CHECK(frame && len == strlen(frame));
    FUZZ_CHECK(!memchr(frame + 19, '\n', len - 21));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *client = json_is_object(j) ? j : NULL;

    if (j) {
        fuzz_requests(p, j, data, size);
        fuzz_response(p, j);
    }
    fuzz_stream(p, data, size, client);
    if (json_is_array(j))
        fuzz_chunk_array(p, j, client);
    fuzz_native(p, data, size);
    fuzz_errors(p, data, size);
    json_decref(j);
    apr_pool_destroy(p);
    return 0;
}
