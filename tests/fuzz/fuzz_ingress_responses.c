/*
 * The OpenAI Responses ingress dialect: the input is whatever a client or an
 * upstream may send. It goes through
 *   - when it parses as JSON, as the client's request: decode (the request
 *     is left untouched; a canonical request is an object with messages),
 *     check_backend for every backend type with and without drop, the
 *     store's expansion, native_request for an openai and an azure-openai
 *     backend (http(s) URL and headers without line breaks, a JSON body, no
 *     secret unless the input held it), and as a canonical chat.completion
 *     through encode_response and as a record through input_items;
 *   - as an SSE stream of canonical chunks (each event's data one chunk)
 *     through stream_chunk, stream_end and error_event, with an emit that
 *     checks every frame: `event: <type>` then one `data:` line with a JSON
 *     object of that type, sequence_number 0, 1, 2... without gaps, every
 *     item done before the terminal event and the terminal response's
 *     output holding exactly the items done, in output_index order;
 *   - as a native answer: native_observe, native_event per SSE event, and
 *     native_error (a 4xx/5xx error, never NULL).
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
#include "llmgw_json.h"
#include "llmgw_responses.h"
#include "llmgw_responses_store.h"
#include "llmgw_sse.h"

#define FUZZ_MAX_EVENT (1 << 20)
#define FUZZ_CREATED 1764000000
#define SECRET_OA "sk-fuzz-rsp-Tz8Kq2Lw5Nv1"
#define SECRET_AZ "az-fuzz-rsp-Xc4Bm7Pd3Rj9"

static const llmgw_ingress_t *const R = &llmgw_ingress_responses;

typedef struct {
    apr_pool_t *pool;
    const uint8_t *data;
    size_t size;
} ctx_t;

static void check_no_secret(const ctx_t *c, const char *secret, const char *text, size_t len)
{
    size_t n = strlen(secret);

    if (!text || memmem(c->data, c->size, secret, n))
        return;
    FUZZ_CHECK(!memmem(text, len, secret, n));
}

static void check_json_object(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);

    FUZZ_CHECK(json_is_object(j));
    json_decref(j);
}

static void check_error(const ctx_t *c, const llmgw_error_t *e)
{
    apr_size_t len = 0;
    const char *text;

    FUZZ_CHECK(e != NULL);
    FUZZ_CHECK(e->status >= 400 && e->status <= 599);
    FUZZ_CHECK(e->type != NULL && e->message != NULL);
    text = R->error_json(c->pool, e, &len);
    FUZZ_CHECK(text != NULL && len == strlen(text));
    check_json_object(text, len);
    check_no_secret(c, SECRET_OA, text, len);
    check_no_secret(c, SECRET_AZ, text, len);
}

/* ---- requests ------------------------------------------------------------- */

static llmgw_backend_t *backend(apr_pool_t *p, llmgw_backend_type_e type)
{
    llmgw_backend_t *b = apr_pcalloc(p, sizeof(*b));

    b->name = "fuzz";
    b->type = type;
    if (type == LLMGW_BACKEND_AZURE_OPENAI) {
        b->api_key = SECRET_AZ;
        b->endpoint = "https://contoso-ai.openai.azure.com";
        b->deployment_name = "gpt4o-weather";
        b->api_version = "2024-10-21";
    }
    else {
        b->api_key = SECRET_OA;
        b->org_id = "org-fuzz";
    }
    b->models = apr_array_make(p, 1, sizeof(const char *));
    b->timeout = b->connect_timeout = b->first_byte_timeout = b->idle_timeout = LLMGW_UNSET;
    b->max_retries = b->max_tokens = LLMGW_UNSET;
    return b;
}

static int has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static void fuzz_native_request(const ctx_t *c, const json_t *client, llmgw_backend_type_e type)
{
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    int i;

    memset(&out, 0, sizeof(out));
    rv = R->native_request(c->pool, backend(c->pool, type), client, (const char *)c->data, c->size,
                           "gpt-4.1", c->size & 1, NULL, &out, &err);
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == LLMGW_EBADREQ);
        check_error(c, err);
        return;
    }
    FUZZ_CHECK(strncmp(out.url, "https://", 8) == 0);
    FUZZ_CHECK(!has_line_break(out.url) && !strchr(out.url, ' '));
    for (i = 0; i < out.headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(out.headers, i, const char *);
        FUZZ_CHECK(strchr(h, ':') != NULL && !has_line_break(h));
    }
    FUZZ_CHECK(out.body != NULL);
    check_json_object(out.body, out.body_len);
}

/* The store's expansion, with the input as its own history and references. */
static void fuzz_expand(const ctx_t *c, const json_t *client)
{
    json_t *ids = llmgw_responses_referenced_ids(c->pool, client), *input = NULL, *body;
    json_t *items = json_object(), *chain, *history = NULL, *id;
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    size_t i;

    /* Every reference resolves to a user message, so that expansion proceeds. */
    json_array_foreach (ids, i, id)
        json_object_set_new(items, json_string_value(id),
                            json_pack("{s:s, s:s, s:s}", "type", "message", "role", "user",
                                      "content", "referenced"));
    llmgw_json_pool_own(c->pool, items);
    if (llmgw_responses_resolve_input(c->pool, client, items, &input, &err) != APR_SUCCESS) {
        check_error(c, err);
        return;
    }
    chain = llmgw_json_pool_own(
        c->pool, json_pack("[{s:s, s:n, s:O, s:[], s:{s:s}, s:s, s:b}]", "id", "resp_f",
                           "previous_response_id", "input_items", input, "output_items", "response",
                           "status", "completed", "backend", "oa", "native_stored", 1));
    if (llmgw_responses_history(c->pool, chain, "resp_f", &history, &err) != APR_SUCCESS) {
        check_error(c, err);
        return;
    }
    if (llmgw_responses_expand(c->pool, client, history, input, &out, &err) == APR_SUCCESS)
        FUZZ_CHECK(json_is_array(json_object_get(out.canonical, "messages")));
    else
        check_error(c, err);
    body = llmgw_responses_native_body(c->pool, client, chain, input, "oa");
    FUZZ_CHECK(json_is_array(json_object_get(body, "input")));
}

static void fuzz_request(const ctx_t *c, const json_t *client)
{
    json_t *pristine = json_deep_copy(client), *page = NULL;
    apr_array_header_t *dropped = apr_array_make(c->pool, 4, sizeof(const char *));
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    int type, drop;

    rv = R->decode(c->pool, client, &out, &err);
    FUZZ_CHECK(json_equal(client, pristine));
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == LLMGW_EBADREQ);
        check_error(c, err);
    }
    else if (out.canonical) {
        FUZZ_CHECK(!out.needs_history);
        FUZZ_CHECK(json_is_array(json_object_get(out.canonical, "messages")));
        FUZZ_CHECK(json_array_size(json_object_get(out.canonical, "messages")) > 0);
    }
    if (rv == APR_SUCCESS) {
        for (type = 0; type < LLMGW_BACKEND_POOL; type++) {
            for (drop = 0; drop < 2; drop++) {
                llmgw_error_t *e =
                    R->check_backend(c->pool, client, (llmgw_backend_type_e)type, drop, dropped);
                if (e)
                    check_error(c, e);
                FUZZ_CHECK(!e || !(R->native_types & (1u << type)));
            }
        }
        if (out.needs_history)
            fuzz_expand(c, client);
        fuzz_native_request(c, client, LLMGW_BACKEND_OPENAI);
        fuzz_native_request(c, client, LLMGW_BACKEND_AZURE_OPENAI);
    }
    FUZZ_CHECK(json_equal(client, pristine));
    json_decref(pristine);
    /* The same bytes as a canonical answer, and as a stored record. */
    {
        json_t *resp = NULL;
        json_t *req = json_pack("{s:s, s:s}", "model", "m", "input", "x");
        if (R->encode_response(c->pool, req, client, FUZZ_CREATED, &resp, &err) == APR_SUCCESS)
            FUZZ_CHECK(json_is_array(json_object_get(resp, "output")));
        else
            check_error(c, err);
        json_decref(req);
    }
    if (llmgw_responses_input_items(c->pool, client, NULL, "3", "asc", &page, &err) == APR_SUCCESS)
        FUZZ_CHECK(json_array_size(json_object_get(page, "data")) <= 3);
    else
        check_error(c, err);
}

/* ---- the event stream ------------------------------------------------------ */

typedef struct {
    const ctx_t *c;
    llmgw_ingress_stream_t *st;
    apr_int64_t seq; /* the next sequence_number */
    int terminal;    /* a terminal event went out */
    json_t *added;   /* output_index (string) -> item id */
    json_t *done;    /* output_index (string) -> item id */
    apr_status_t chunk_rv;
} run_t;

static int is_terminal(const char *type)
{
    return strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
           strcmp(type, "response.failed") == 0;
}

/* Every item added is done, and the final output is exactly those items in order. */
static void check_terminal(run_t *r, const json_t *response)
{
    json_t *output = json_object_get(response, "output"), *item;
    size_t i;

    FUZZ_CHECK(json_object_size(r->added) == json_object_size(r->done));
    FUZZ_CHECK(json_array_size(output) == json_object_size(r->done));
    json_array_foreach (output, i, item) {
        char key[32];
        snprintf(key, sizeof(key), "%zu", i);
        FUZZ_CHECK(json_equal(json_object_get(r->done, key), json_object_get(item, "id")));
    }
    FUZZ_CHECK(llmgw_responses_stream_response(r->st) != NULL);
}

static void check_frame(run_t *r, const char *data, apr_size_t len, apr_size_t *used)
{
    const char *nl, *end, *type;
    json_t *j, *item, *oi;
    char key[32];

    FUZZ_CHECK(!r->terminal);
    FUZZ_CHECK(len > 16 && memcmp(data, "event: ", 7) == 0);
    nl = memchr(data, '\n', len);
    FUZZ_CHECK(nl != NULL && (apr_size_t)(nl - data) + 7 < len);
    FUZZ_CHECK(memcmp(nl + 1, "data: ", 6) == 0);
    end = memchr(nl + 1, '\n', len - (apr_size_t)(nl + 1 - data));
    FUZZ_CHECK(end != NULL && end + 1 < data + len && end[1] == '\n');
    *used = (apr_size_t)(end + 2 - data);
    j = json_loadb(nl + 7, (apr_size_t)(end - nl - 7), JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(j));
    type = json_string_value(json_object_get(j, "type"));
    FUZZ_CHECK(type && strlen(type) == (apr_size_t)(nl - data - 7) &&
               memcmp(data + 7, type, strlen(type)) == 0);
    FUZZ_CHECK(json_integer_value(json_object_get(j, "sequence_number")) == r->seq);
    r->seq++;
    item = json_object_get(j, "item");
    oi = json_object_get(j, "output_index");
    snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, json_integer_value(oi));
    if (strcmp(type, "response.output_item.added") == 0) {
        FUZZ_CHECK(json_is_integer(oi) && !json_object_get(r->added, key));
        FUZZ_CHECK(json_string_length(json_object_get(item, "id")) > 0);
        json_object_set(r->added, key, json_object_get(item, "id"));
    }
    else if (strcmp(type, "response.output_item.done") == 0) {
        FUZZ_CHECK(json_equal(json_object_get(r->added, key), json_object_get(item, "id")));
        FUZZ_CHECK(!json_object_get(r->done, key));
        json_object_set(r->done, key, json_object_get(item, "id"));
    }
    else if (json_object_get(j, "item_id")) {
        /* A delta or part event names an item that is open. */
        FUZZ_CHECK(json_equal(json_object_get(r->added, key), json_object_get(j, "item_id")));
        FUZZ_CHECK(!json_object_get(r->done, key));
    }
    if (is_terminal(type)) {
        r->terminal = 1;
        check_terminal(r, json_object_get(j, "response"));
    }
    json_decref(j);
}

static apr_status_t on_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                            const char *data, apr_size_t len)
{
    run_t *r = baton;
    apr_size_t used;

    FUZZ_CHECK(chunk == NULL); /* ingress frames carry no chat chunk */
    FUZZ_CHECK(kind == LLMGW_CHUNK_PREAMBLE || kind == LLMGW_CHUNK_CONTENT ||
               kind == LLMGW_CHUNK_FINAL);
    check_frame(r, data, len, &used);
    FUZZ_CHECK(used == len);
    /* Only the terminal events are FINAL. */
    FUZZ_CHECK((kind == LLMGW_CHUNK_FINAL) == r->terminal);
    return APR_SUCCESS;
}

static apr_status_t on_chunk(void *baton, const llmgw_sse_event_t *ev)
{
    run_t *r = baton;
    json_t *chunk = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL);
    apr_status_t rv;

    if (!chunk)
        return APR_SUCCESS;
    rv = R->stream_chunk(r->st, chunk);
    json_decref(chunk);
    FUZZ_CHECK(rv == APR_SUCCESS);
    return APR_SUCCESS;
}

static void fuzz_stream(const ctx_t *c, const json_t *client)
{
    llmgw_ingress_stream_t *st = apr_pcalloc(c->pool, sizeof(*st));
    run_t *r = apr_pcalloc(c->pool, sizeof(*r));
    llmgw_sse_parser_t *sp;
    llmgw_error_t *e = llmgw_error_make(c->pool, 502, NULL, "bad_gateway", NULL, "cut");
    apr_status_t rv;
    const char *frames;
    apr_size_t len, used;

    r->c = c;
    r->st = st;
    r->added = llmgw_json_pool_own(c->pool, json_object());
    r->done = llmgw_json_pool_own(c->pool, json_object());
    st->pool = c->pool;
    st->client = client;
    st->emit = on_emit;
    st->baton = r;
    st->created = FUZZ_CREATED;
    FUZZ_CHECK(R->stream_init(st) == APR_SUCCESS);
    FUZZ_CHECK(llmgw_sse_parser_create(&sp, c->pool, FUZZ_MAX_EVENT, on_chunk, r) == APR_SUCCESS);
    (void)llmgw_sse_parser_feed(sp, (const char *)c->data, c->size);
    (void)llmgw_sse_parser_finish(sp);
    /* As the glue: the end, or (first byte odd) a failure after the chunks. */
    if (c->size == 0 || !(c->data[0] & 1)) {
        rv = R->stream_end(st);
        FUZZ_CHECK(rv == APR_SUCCESS || rv == LLMGW_ESTREAM);
        FUZZ_CHECK(st->done == (rv == APR_SUCCESS || r->terminal));
    }
    frames = R->error_event(st, e, &len);
    FUZZ_CHECK(frames != NULL);
    while (len > 0) {
        check_frame(r, frames, len, &used);
        frames += used;
        len -= used;
    }
    FUZZ_CHECK(st->done && r->terminal);
}

/* ---- native answers --------------------------------------------------------- */

static apr_status_t on_native(void *baton, const llmgw_sse_event_t *ev)
{
    const ctx_t *c = baton;
    llmgw_chunk_kind_e kind;
    llmgw_usage_t u;
    const char *model;
    apr_status_t rv;

    memset(&u, 0, sizeof(u));
    rv = R->native_event(c->pool, ev, &kind, &u, &model);
    FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EOF || rv == APR_EINVAL || rv == LLMGW_EUPSTREAM);
    FUZZ_CHECK((rv == APR_EOF) == (kind == LLMGW_CHUNK_FINAL));
    /* Only a terminal event carries the final response (when it has one). */
    if (rv != APR_EOF)
        FUZZ_CHECK(llmgw_responses_native_terminal(c->pool, ev) == NULL);
    FUZZ_CHECK(!u.present || u.total_tokens >= 0);
    return APR_SUCCESS;
}

static void fuzz_native(const ctx_t *c)
{
    llmgw_usage_t u;
    const char *model;
    llmgw_sse_parser_t *sp;
    int status = c->size >= 2 ? 300 + ((c->data[0] << 8) | c->data[1]) % 300 : 500;

    memset(&u, 0, sizeof(u));
    (void)R->native_observe(c->pool, (const char *)c->data, c->size, &u, &model);
    check_error(c, R->native_error(c->pool, status, (const char *)c->data, c->size));
    FUZZ_CHECK(llmgw_sse_parser_create(&sp, c->pool, FUZZ_MAX_EVENT, on_native, (void *)c) ==
               APR_SUCCESS);
    (void)llmgw_sse_parser_feed(sp, (const char *)c->data, c->size);
    (void)llmgw_sse_parser_finish(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    ctx_t c = {p, data, size};
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *client = json_is_object(body) ? body : NULL;
    json_t *plain = json_pack("{s:s, s:s, s:b, s:{s:s}}", "model", "m", "input", "x", "stream", 1,
                              "reasoning", "summary", "auto");

    if (body)
        fuzz_request(&c, body);
    fuzz_stream(&c, client ? client : plain);
    fuzz_native(&c);
    json_decref(plain);
    json_decref(body);
    apr_pool_destroy(p);
    return 0;
}
