/*
 * The OpenAI dialects `azure-openai`, `meta` and `mistral`, from JSON vectors
 * in data/<dialect>/ (dialect: azure, meta, mistral):
 *   request/<case>.in.json   {"backend":{...},"call":{...},"request":{...}}
 *   request/<case>.expected.json  {"method","url","stream","headers","body","dropped"?}
 *                                 or {"rv","error","dropped"?}
 *   response/<case>.in.json  {"call":{...},"request":{...}?,"body":<json>} or "raw"
 *   error/<case>.in.json     {"backend":{...}?,"status":N,"body":<json>} or "raw",
 *                            "must_not_contain":[...]
 *   stream/<case>.in.json    {"call":{...},"request":{...}?,"events":[<chunk>|"<data>"],"end":bool}
 * plus a few cases that are clearer in C (registry, id mapping, SSE round trip, emit
 * failures, generated ids).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_tables.h> /* before test_util.h, which uses apr_array_header_t */
#include "test_util.h"
#include "llmgw_provider.h"
#include "llmgw_json.h"
#include "../../src/providers/llmgw_openai_compat.h"

static const char *const DIALECTS[] = {"azure", "meta", "mistral", NULL};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static const llmgw_provider_t *provider_of(const char *dialect)
{
    if (strcmp(dialect, "azure") == 0)
        return &llmgw_provider_azure_openai;
    if (strcmp(dialect, "meta") == 0)
        return &llmgw_provider_meta;
    return &llmgw_provider_mistral;
}

static llmgw_backend_type_e type_of(const char *dialect)
{
    if (strcmp(dialect, "azure") == 0)
        return LLMGW_BACKEND_AZURE_OPENAI;
    if (strcmp(dialect, "meta") == 0)
        return LLMGW_BACKEND_META;
    return LLMGW_BACKEND_MISTRAL;
}

static const char *rv_name(apr_status_t rv)
{
    switch (rv) {
    case APR_SUCCESS:
        return "success";
    case APR_EOF:
        return "eof";
    case LLMGW_EBADREQ:
        return "ebadreq";
    case LLMGW_EUNSUPPORTED:
        return "eunsupported";
    case LLMGW_EUPSTREAM:
        return "eupstream";
    case LLMGW_ESTREAM:
        return "estream";
    case LLMGW_ECLIENTGONE:
        return "eclientgone";
    default:
        return apr_psprintf(test_pool, "status %d", rv);
    }
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = llmgw_json_str(obj, key);
    return s ? apr_pstrdup(test_pool, s) : dflt;
}

/* One vector: which dialect, which file. */
typedef struct {
    const char *dialect;
    const char *name; /* base name, without ".in.json" */
    json_t *in;
    json_t *exp;
} vector_t;

/* Vector @p i of kind @p kind, counting through the dialects in order. */
static vector_t vector_at(const char *kind, int i)
{
    vector_t v = {0};
    int d;

    for (d = 0; DIALECTS[d]; d++) {
        const char *dir = apr_pstrcat(test_pool, DIALECTS[d], "/", kind, NULL);
        apr_array_header_t *names = test_list_dir(dir, ".in.json");
        const char *file, *base;

        if (i >= names->nelts) {
            i -= names->nelts;
            continue;
        }
        file = APR_ARRAY_IDX(names, i, const char *);
        base = apr_pstrmemdup(test_pool, file, strlen(file) - strlen(".in.json"));
        v.dialect = DIALECTS[d];
        v.name = apr_pstrcat(test_pool, dir, "/", base, NULL);
        v.in = llmgw_json_pool_own(
            test_pool, test_load_json(apr_pstrcat(test_pool, v.name, ".in.json", NULL)));
        v.exp = llmgw_json_pool_own(
            test_pool, test_load_json(apr_pstrcat(test_pool, v.name, ".expected.json", NULL)));
        return v;
    }
    ck_abort_msg("no vector %d of kind %s", i, kind);
    return v;
}

static llmgw_backend_t *make_backend(const char *dialect, const json_t *b)
{
    llmgw_backend_t *be = apr_pcalloc(test_pool, sizeof(*be));
    const char *policy = str_or(b, "unsupportedParams", "error");

    be->name = str_or(b, "name", apr_pstrcat(test_pool, dialect, "-test", NULL));
    be->type = type_of(dialect);
    be->api_key = str_or(b, "apiKey", NULL);
    be->endpoint = str_or(b, "endpoint", NULL);
    be->deployment_name = str_or(b, "deploymentName", NULL);
    be->api_version = str_or(b, "apiVersion", NULL);
    be->default_model = str_or(b, "defaultModel", NULL);
    be->unsupported_drop = strcmp(policy, "drop") == 0;
    be->models = apr_array_make(test_pool, 1, sizeof(const char *));
    be->timeout = be->connect_timeout = LLMGW_UNSET;
    be->first_byte_timeout = be->idle_timeout = LLMGW_UNSET;
    be->max_retries = be->max_tokens = LLMGW_UNSET;
    return be;
}

static int flag(const json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A call as the glue would make it: stream flags from the body unless the vector overrides. */
static llmgw_call_t *make_call(const json_t *c, json_t *request, const llmgw_backend_t *be)
{
    llmgw_call_t *call = apr_pcalloc(test_pool, sizeof(*call));
    const char *api = str_or(c, "api", "chat");
    json_t *opts = json_object_get(request, "stream_options");
    int stream = json_is_true(json_object_get(request, "stream"));

    if (!request)
        request = llmgw_json_pool_own(test_pool, json_object());
    call->pool = test_pool;
    call->backend = be;
    call->api = strcmp(api, "embeddings") == 0 ? LLMGW_API_EMBEDDINGS
                : strcmp(api, "models") == 0   ? LLMGW_API_MODELS
                                               : LLMGW_API_CHAT;
    call->body = request;
    call->model = str_or(c, "model", "model-test");
    call->stream = flag(c, "stream", stream);
    call->include_usage = flag(
        c, "include_usage", call->stream && json_is_true(json_object_get(opts, "include_usage")));
    call->created = 1764000000;
    call->dropped = apr_array_make(test_pool, 1, sizeof(const char *));
    return call;
}

/* llmgw_error_t as {"status","type","code","param","message"} (new reference). */
static json_t *error_to_json(const llmgw_error_t *e)
{
    if (!e)
        return json_null();
    return json_pack("{s:i, s:s?, s:s?, s:s?, s:s?}", "status", e->status, "type", e->type, "code",
                     e->code, "param", e->param, "message", e->message);
}

/* ck_assert_json_eq, naming the vector when they differ. */
static void assert_json_named(const json_t *got, const json_t *expected, const char *name)
{
    if (!got || !expected || !json_equal(got, expected))
        fprintf(stderr, "vector %s:\n", name);
    ck_assert_json_eq(got, expected);
}

static void assert_error(const llmgw_error_t *got, const json_t *expected, const char *name)
{
    json_t *g = llmgw_json_pool_own(test_pool, error_to_json(got));
    apr_size_t len;
    const char *text;
    json_t *wire;

    ck_assert_msg(got != NULL, "%s: no error", name);
    assert_json_named(g, expected, name);
    /* The client-facing form must be valid JSON carrying the same message. */
    text = llmgw_error_json(test_pool, got, &len);
    wire = llmgw_json_pool_own(test_pool, test_parse_json(text, len));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(wire, "error"), "message")),
                     got->message);
}

static void assert_not_leaked(const char *text, const json_t *banned, const char *name)
{
    size_t i;
    json_t *word;

    json_array_foreach (banned, i, word) {
        ck_assert_msg(!strstr(text, json_string_value(word)), "%s: leaks \"%s\": %s", name,
                      json_string_value(word), text);
    }
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted JSON array of C strings, so that order does not matter. */
static json_t *sorted_lines(const char **lines, int n)
{
    json_t *arr = llmgw_json_pool_own(test_pool, json_array());
    const char **copy = apr_pmemdup(test_pool, lines, sizeof(*lines) * (apr_size_t)(n ? n : 1));
    int i;

    qsort(copy, (size_t)n, sizeof(*copy), cmp_cstr);
    for (i = 0; i < n; i++)
        json_array_append_new(arr, json_string(copy[i]));
    return arr;
}

static json_t *sorted_json_lines(const json_t *arr)
{
    int n = (int)json_array_size(arr), i;
    const char **lines = apr_pcalloc(test_pool, sizeof(*lines) * (apr_size_t)(n + 1));

    for (i = 0; i < n; i++)
        lines[i] = json_string_value(json_array_get(arr, (size_t)i));
    return sorted_lines(lines, n);
}

static void assert_dropped(const llmgw_call_t *call, const json_t *exp, const char *name)
{
    json_t *want = json_object_get(exp, "dropped");
    json_t *empty = llmgw_json_pool_own(test_pool, json_array());

    ck_assert_json_eq(sorted_lines((const char **)call->dropped->elts, call->dropped->nelts),
                      sorted_json_lines(want ? want : empty));
    (void)name;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(request_vectors)
{
    vector_t v = vector_at("request", _i);
    const llmgw_provider_t *P = provider_of(v.dialect);
    json_t *request = json_object_get(v.in, "request");
    json_t *before = llmgw_json_pool_own(test_pool, json_deep_copy(request));
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), request,
                                   make_backend(v.dialect, json_object_get(v.in, "backend")));
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    rv = P->build_request(call, &out, &err);
    ck_assert_msg(json_equal(request, before), "%s: the client's body was modified", v.name);
    ck_assert_msg(strcmp(rv_name(rv), str_or(v.exp, "rv", "success")) == 0, "%s: rv %s", v.name,
                  rv_name(rv));
    assert_dropped(call, v.exp, v.name);
    if (rv != APR_SUCCESS) {
        assert_error(err, json_object_get(v.exp, "error"), v.name);
        assert_not_leaked(llmgw_error_json(test_pool, err, NULL),
                          json_object_get(v.in, "must_not_contain"), v.name);
        return;
    }
    ck_assert_str_eq(out.method, json_string_value(json_object_get(v.exp, "method")));
    ck_assert_str_eq(out.url, json_string_value(json_object_get(v.exp, "url")));
    ck_assert_int_eq(out.stream, json_is_true(json_object_get(v.exp, "stream")));
    ck_assert_json_eq(sorted_lines((const char **)out.headers->elts, out.headers->nelts),
                      sorted_json_lines(json_object_get(v.exp, "headers")));
    ck_assert_ptr_nonnull(out.body);
    ck_assert_uint_eq(out.body_len, strlen(out.body));
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    assert_json_named(body, json_object_get(v.exp, "body"), v.name);
}
END_TEST

START_TEST(providers_registered)
{
    const char *const types[] = {"azure-openai", "meta", "mistral"};
    int d;

    for (d = 0; DIALECTS[d]; d++) {
        const llmgw_provider_t *P = provider_of(DIALECTS[d]);

        ck_assert_ptr_eq(llmgw_provider_get(type_of(DIALECTS[d])), P);
        ck_assert_str_eq(P->type, types[d]);
        ck_assert_uint_eq(P->apis, LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
        ck_assert_ptr_nonnull(P->build_request);
        ck_assert_ptr_nonnull(P->parse_response);
        ck_assert_ptr_nonnull(P->parse_error);
        ck_assert_ptr_nonnull(P->stream_init);
        ck_assert_ptr_nonnull(P->stream_event);
        ck_assert_ptr_nonnull(P->stream_end);
    }
}
END_TEST

static int is_short_id(const char *id)
{
    apr_size_t i;

    for (i = 0; id[i]; i++)
        if (!strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", id[i]))
            return 0;
    return i == 9;
}

START_TEST(short_tool_ids)
{
    const char *const ids[] = {"call_Vd81mQ2f", "chatcmpl-tool-9f2e", "call_fn_1", "", "x",
                               "abcdefghij",    "ÿ\xc3\xa9"};
    apr_size_t i;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const char *a = llmgw_oai_short_tool_id(test_pool, ids[i]);
        const char *b = llmgw_oai_short_tool_id(test_pool, apr_pstrdup(test_pool, ids[i]));

        ck_assert_msg(is_short_id(a), "\"%s\" -> \"%s\"", ids[i], a);
        ck_assert_str_eq(a, b);
        ck_assert_str_ne(a, ids[i]);
    }
    /* Compliant ids (Mistral's own) go back unchanged: round trips are stable. */
    ck_assert_str_eq(llmgw_oai_short_tool_id(test_pool, "Xb7TqR2mK"), "Xb7TqR2mK");
    ck_assert_str_ne(llmgw_oai_short_tool_id(test_pool, "call_1"),
                     llmgw_oai_short_tool_id(test_pool, "call_2"));
}
END_TEST

/* The tool-call ids of a Mistral body: every tool_call_id answers an id sent before it. */
START_TEST(mistral_ids_paired)
{
    json_t *request = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:s,s:s}, {s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}},{s:s,s:s,s:{s:s,s:s}}]},"
                  "{s:s,s:s,s:s}, {s:s,s:s,s:s}]}",
                  "model", "m", "messages", "role", "user", "content", "Weather?", "role",
                  "assistant", "content", "tool_calls", "id", "call_Lisbon_0001", "type",
                  "function", "function", "name", "get_weather", "arguments", "{}", "id",
                  "toolu_01Porto", "type", "function", "function", "name", "get_weather",
                  "arguments", "{}", "role", "tool", "tool_call_id", "toolu_01Porto", "content",
                  "18", "role", "tool", "tool_call_id", "call_Lisbon_0001", "content", "21"));
    llmgw_call_t *call = make_call(NULL, request, make_backend("mistral", NULL));
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    json_t *body, *msgs;
    const char *a, *b;

    ck_assert_int_eq(llmgw_provider_mistral.build_request(call, &out, &err), APR_SUCCESS);
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    msgs = json_object_get(body, "messages");
    a = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(msgs, 1), "tool_calls"), 0), "id"));
    b = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(msgs, 1), "tool_calls"), 1), "id"));
    ck_assert(is_short_id(a) && is_short_id(b));
    ck_assert_str_ne(a, b);
    ck_assert_str_eq(llmgw_json_str(json_array_get(msgs, 2), "tool_call_id"), b);
    ck_assert_str_eq(llmgw_json_str(json_array_get(msgs, 3), "tool_call_id"), a);
    ck_assert_str_eq(llmgw_json_str(json_array_get(msgs, 2), "name"), "get_weather");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses and errors                                                   */
/* ---------------------------------------------------------------------- */

/* The upstream bytes of a vector: "raw" as is, or "body" pretty-printed. */
static const char *upstream_bytes(const json_t *in, apr_size_t *len)
{
    json_t *raw = json_object_get(in, "raw");
    char *text;
    const char *copy;

    if (json_is_string(raw)) {
        *len = json_string_length(raw);
        return json_string_value(raw);
    }
    text = json_dumps(json_object_get(in, "body"), JSON_INDENT(2) | JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(text);
    copy = apr_pstrdup(test_pool, text);
    free(text);
    *len = strlen(copy);
    return copy;
}

START_TEST(response_vectors)
{
    vector_t v = vector_at("response", _i);
    const llmgw_provider_t *P = provider_of(v.dialect);
    json_t *request = json_object_get(v.in, "request");
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), request,
                                   make_backend(v.dialect, json_object_get(v.in, "backend")));
    json_t *usage = json_object_get(v.exp, "usage");
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    apr_size_t len;
    const char *bytes = upstream_bytes(v.in, &len);
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    rv = P->parse_response(call, bytes, len, &out, &err);
    ck_assert_msg(strcmp(rv_name(rv), str_or(v.exp, "rv", "success")) == 0, "%s: rv %s", v.name,
                  rv_name(rv));
    if (rv != APR_SUCCESS) {
        assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    ck_assert_ptr_nonnull(out.body);
    ck_assert_uint_eq(out.len, strlen(out.body));
    ck_assert_msg(!strchr(out.body, '\n'), "%s: body not compact", v.name);
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.len));
    assert_json_named(body, json_object_get(v.exp, "body"), v.name);
    ck_assert_str_eq(out.model, json_string_value(json_object_get(v.exp, "model")));
    ck_assert_int_eq(out.usage.present, json_is_true(json_object_get(usage, "present")));
    ck_assert_int_eq(out.usage.prompt_tokens,
                     json_integer_value(json_object_get(usage, "prompt_tokens")));
    ck_assert_int_eq(out.usage.completion_tokens,
                     json_integer_value(json_object_get(usage, "completion_tokens")));
    ck_assert_int_eq(out.usage.total_tokens,
                     json_integer_value(json_object_get(usage, "total_tokens")));
}
END_TEST

START_TEST(error_vectors)
{
    vector_t v = vector_at("error", _i);
    const llmgw_provider_t *P = provider_of(v.dialect);
    llmgw_call_t *call =
        make_call(NULL, NULL, make_backend(v.dialect, json_object_get(v.in, "backend")));
    apr_size_t len, wire_len;
    const char *bytes = upstream_bytes(v.in, &len);
    llmgw_error_t *e;

    e = P->parse_error(call, (int)json_integer_value(json_object_get(v.in, "status")), bytes, len);
    assert_error(e, json_object_get(v.exp, "error"), v.name);
    assert_not_leaked(llmgw_error_json(test_pool, e, &wire_len),
                      json_object_get(v.in, "must_not_contain"), v.name);
}
END_TEST

START_TEST(error_null_body)
{
    int d;

    for (d = 0; DIALECTS[d]; d++) {
        llmgw_call_t *call = make_call(NULL, NULL, make_backend(DIALECTS[d], NULL));
        llmgw_error_t *e = provider_of(DIALECTS[d])->parse_error(call, 500, NULL, 0);

        ck_assert_int_eq(e->status, 500);
        ck_assert_str_eq(e->type, "server_error");
        ck_assert_str_eq(e->message, "upstream returned HTTP 500");
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    json_t *frames; /* [{"kind":..., "json"|"text":...}], owned by test_pool */
    int calls;
    int fail_at; /* 1-based emit call that fails, 0 = never */
    apr_status_t fail_rv;
} recorder_t;

static const char *kind_name(llmgw_chunk_kind_e kind)
{
    switch (kind) {
    case LLMGW_CHUNK_PREAMBLE:
        return "preamble";
    case LLMGW_CHUNK_CONTENT:
        return "content";
    default:
        return "final";
    }
}

/* Checks the SSE framing and records the payload as JSON for comparison. */
static apr_status_t record_emit(void *baton, llmgw_chunk_kind_e kind, const char *data,
                                apr_size_t len)
{
    recorder_t *r = baton;
    const char *payload;
    apr_size_t plen;
    json_t *frame;

    if (++r->calls == r->fail_at)
        return r->fail_rv;
    ck_assert_uint_gt(len, 8);
    ck_assert_msg(memcmp(data, "data: ", 6) == 0, "frame does not start with data:");
    ck_assert_msg(memcmp(data + len - 2, "\n\n", 2) == 0, "frame does not end with a blank line");
    payload = data + 6;
    plen = len - 8;
    ck_assert_msg(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen),
                  "frame spans several lines");
    if (plen == 6 && memcmp(payload, "[DONE]", 6) == 0)
        frame = json_pack("{s:s, s:s}", "kind", kind_name(kind), "text", "[DONE]");
    else
        frame = json_pack("{s:s, s:o}", "kind", kind_name(kind), "json",
                          test_parse_json(payload, plen));
    json_array_append_new(r->frames, frame);
    return APR_SUCCESS;
}

static llmgw_stream_t *make_stream(const llmgw_provider_t *P, llmgw_call_t *call, recorder_t *rec)
{
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    rec->frames = llmgw_json_pool_own(test_pool, json_array());
    st->call = call;
    st->emit = record_emit;
    st->baton = rec;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    return st;
}

static llmgw_call_t *stream_call(const char *dialect, const json_t *c, json_t *request,
                                 const json_t *backend)
{
    if (!request)
        request = llmgw_json_pool_own(test_pool, json_object());
    json_object_set_new(request, "stream", json_true());
    return make_call(c, request, make_backend(dialect, backend));
}

/* Feed one event whose data is @p item: a string as is, anything else serialised. */
static apr_status_t feed(const llmgw_provider_t *P, llmgw_stream_t *st, const json_t *item)
{
    llmgw_sse_event_t ev = {"", 0, NULL, 0, ""};
    char *text = NULL;
    apr_status_t rv;

    if (json_is_string(item)) {
        ev.data = json_string_value(item);
        ev.data_len = json_string_length(item);
    }
    else {
        text = json_dumps(item, JSON_COMPACT);
        ev.data = text;
        ev.data_len = strlen(text);
    }
    rv = P->stream_event(st, &ev);
    free(text);
    return rv;
}

/* Chunk rule 1 and rule 6: one identity; usage members only when asked for. */
static void assert_chunk_rules(const llmgw_call_t *call, const json_t *frames, const char *name)
{
    const char *id = NULL;
    size_t i;
    json_t *f;

    json_array_foreach (frames, i, f) {
        json_t *j = json_object_get(f, "json");

        if (!j || json_object_get(j, "error"))
            continue;
        ck_assert_str_eq(llmgw_json_str(j, "object"), "chat.completion.chunk");
        if (!id)
            id = llmgw_json_str(j, "id");
        ck_assert_msg(strcmp(llmgw_json_str(j, "id"), id) == 0, "%s: frame %zu changes id", name,
                      i);
        ck_assert_msg(call->include_usage == (json_object_get(j, "usage") != NULL),
                      "%s: frame %zu: usage member does not follow include_usage", name, i);
    }
}

START_TEST(stream_vectors)
{
    vector_t v = vector_at("stream", _i);
    const llmgw_provider_t *P = provider_of(v.dialect);
    json_t *request = json_deep_copy(json_object_get(v.in, "request"));
    llmgw_call_t *call = stream_call(v.dialect, json_object_get(v.in, "call"),
                                     request ? llmgw_json_pool_own(test_pool, request) : NULL,
                                     json_object_get(v.in, "backend"));
    json_t *usage = json_object_get(v.exp, "usage");
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(P, call, &rec);
    apr_status_t rv = APR_SUCCESS;
    size_t i;
    json_t *ev, *got_error;

    json_array_foreach (json_object_get(v.in, "events"), i, ev) {
        rv = feed(P, st, ev);
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_SUCCESS && json_is_true(json_object_get(v.in, "end")))
        rv = P->stream_end(st);

    ck_assert_msg(strcmp(rv_name(rv), str_or(v.exp, "rv", "")) == 0, "%s: rv %s", v.name,
                  rv_name(rv));
    assert_json_named(rec.frames, json_object_get(v.exp, "frames"), v.name);
    assert_chunk_rules(call, rec.frames, v.name);
    ck_assert_int_eq(st->done, json_is_true(json_object_get(v.exp, "done")));
    ck_assert_int_eq(st->finish_seen, json_is_true(json_object_get(v.exp, "finish_seen")));
    ck_assert_int_eq(st->usage_seen, json_is_true(json_object_get(v.exp, "usage_seen")));
    ck_assert_int_eq(st->content_emitted, json_is_true(json_object_get(v.exp, "content_emitted")));
    if (json_is_string(json_object_get(v.exp, "model")))
        ck_assert_str_eq(st->model, json_string_value(json_object_get(v.exp, "model")));
    else
        ck_assert_ptr_null(st->model);
    got_error = llmgw_json_pool_own(test_pool, error_to_json(st->error));
    ck_assert_json_eq(got_error, json_object_get(v.exp, "error"));
    if (usage) {
        ck_assert_int_eq(st->usage.present, 1);
        ck_assert_int_eq(st->usage.prompt_tokens,
                         json_integer_value(json_object_get(usage, "prompt_tokens")));
        ck_assert_int_eq(st->usage.completion_tokens,
                         json_integer_value(json_object_get(usage, "completion_tokens")));
        ck_assert_int_eq(st->usage.total_tokens,
                         json_integer_value(json_object_get(usage, "total_tokens")));
    }
}
END_TEST

static apr_status_t feed_text(const llmgw_provider_t *P, llmgw_stream_t *st, const char *data)
{
    llmgw_sse_event_t ev = {"", 0, data, strlen(data), ""};
    return P->stream_event(st, &ev);
}

static const char *TEXT_CHUNK =
    "{\"object\":\"chat.completion.chunk\",\"created\":0,\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}";
static const char *FINISH_USAGE_CHUNK =
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}";

/* An upstream that sends no id, created or model still gets one identity per stream. */
START_TEST(stream_identity_generated)
{
    llmgw_call_t *call = stream_call("meta", NULL, NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st;
    const char *id;
    size_t i;
    json_t *f;

    call->include_usage = 1;
    call->model = "llama-test";
    st = make_stream(&llmgw_provider_meta, call, &rec);
    ck_assert_int_eq(feed_text(&llmgw_provider_meta, st, TEXT_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(&llmgw_provider_meta, st, FINISH_USAGE_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(&llmgw_provider_meta, st, "[DONE]"), APR_EOF);
    ck_assert_int_eq(json_array_size(rec.frames), 4);
    id = llmgw_json_str(json_object_get(json_array_get(rec.frames, 0), "json"), "id");
    ck_assert_int_eq(strncmp(id, "chatcmpl-", 9), 0);
    ck_assert_uint_eq(strlen(id), 9 + 24);
    json_array_foreach (rec.frames, i, f) {
        json_t *j = json_object_get(f, "json");
        if (!j)
            continue;
        ck_assert_str_eq(llmgw_json_str(j, "id"), id);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "created")), 1764000000);
        ck_assert_str_eq(llmgw_json_str(j, "model"), "llama-test");
    }
    ck_assert_int_eq(st->usage.total_tokens, 4);
}
END_TEST

/* The relocated usage chunk is the client's: a failure to send it is reported, not hidden. */
START_TEST(stream_emit_failure_on_usage)
{
    llmgw_call_t *call = stream_call("mistral", NULL, NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st;

    call->include_usage = 1;
    st = make_stream(&llmgw_provider_mistral, call, &rec);
    rec.fail_at = 3;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(&llmgw_provider_mistral, st, TEXT_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(&llmgw_provider_mistral, st, FINISH_USAGE_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(&llmgw_provider_mistral, st, "[DONE]"), LLMGW_ECLIENTGONE);
    ck_assert_int_eq(st->done, 0);
    ck_assert_ptr_null(st->error);
    ck_assert_int_eq(json_array_size(rec.frames), 2);
}
END_TEST

START_TEST(stream_end_emits_held_usage)
{
    llmgw_call_t *call = stream_call("mistral", NULL, NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st;
    json_t *last;

    call->include_usage = 1;
    st = make_stream(&llmgw_provider_mistral, call, &rec);
    ck_assert_int_eq(feed_text(&llmgw_provider_mistral, st, TEXT_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(&llmgw_provider_mistral, st, FINISH_USAGE_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(llmgw_provider_mistral.stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(st->done, 1);
    ck_assert_int_eq(json_array_size(rec.frames), 4);
    last = json_object_get(json_array_get(rec.frames, 2), "json");
    ck_assert_int_eq(json_array_size(json_object_get(last, "choices")), 0);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(last, "usage"), "total_tokens")), 4);
    /* Idempotent once done. */
    ck_assert_int_eq(llmgw_provider_mistral.stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 4);
}
END_TEST

/* SSE bytes of a stream vector, with CRLF line ends. */
static const char *sse_text(const json_t *events)
{
    const char *out = "";
    size_t i;
    json_t *ev;

    json_array_foreach (events, i, ev) {
        char *text = json_is_string(ev) ? NULL : json_dumps(ev, JSON_COMPACT);
        out = apr_pstrcat(test_pool, out, "data: ", text ? text : json_string_value(ev), "\r\n\r\n",
                          NULL);
        free(text);
    }
    return out;
}

typedef struct {
    const llmgw_provider_t *P;
    llmgw_stream_t *st;
} sse_baton_t;

static apr_status_t on_sse(void *baton, const llmgw_sse_event_t *ev)
{
    sse_baton_t *b = baton;
    return b->P->stream_event(b->st, ev);
}

/* providers.md 10.2/10.5/10.6 as wire bytes, one byte at a time, through the real SSE parser. */
static void sse_round_trip(const char *dialect, const char *name)
{
    const char *base = apr_pstrcat(test_pool, dialect, "/stream/", name, NULL);
    json_t *in = llmgw_json_pool_own(
        test_pool, test_load_json(apr_pstrcat(test_pool, base, ".in.json", NULL)));
    json_t *exp = llmgw_json_pool_own(
        test_pool, test_load_json(apr_pstrcat(test_pool, base, ".expected.json", NULL)));
    llmgw_call_t *call =
        stream_call(dialect, json_object_get(in, "call"), NULL, json_object_get(in, "backend"));
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(provider_of(dialect), call, &rec);
    sse_baton_t baton = {provider_of(dialect), st};
    const char *bytes = sse_text(json_object_get(in, "events"));
    llmgw_sse_parser_t *sp;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i, n = strlen(bytes);

    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, 1 << 20, on_sse, &baton), APR_SUCCESS);
    for (i = 0; i < n && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, bytes + i, 1);
    ck_assert_int_eq(rv, APR_EOF);
    ck_assert_json_eq(rec.frames, json_object_get(exp, "frames"));
    ck_assert_int_eq(st->done, 1);
}

START_TEST(stream_through_sse_parser)
{
    sse_round_trip("azure", "worked_example_tool_calls");
    sse_round_trip("mistral", "worked_example_tool_calls");
    sse_round_trip("meta", "together_worked_example");
}
END_TEST

/* ---------------------------------------------------------------------- */

/* Before any test runs, so without Check's assertions (they need a running test). */
static int count_vectors(const char *kind)
{
    const char *suffix = ".in.json";
    size_t sl = strlen(suffix);
    int n = 0, d;

    for (d = 0; DIALECTS[d]; d++) {
        char path[1024];
        struct dirent *de;
        DIR *dir;

        snprintf(path, sizeof(path), "%s/%s/%s", LLMGW_TEST_DATA, DIALECTS[d], kind);
        dir = opendir(path);
        if (!dir) {
            fprintf(stderr, "cannot open %s\n", path);
            exit(EXIT_FAILURE);
        }
        while ((de = readdir(dir)) != NULL) {
            size_t nl = strlen(de->d_name);
            if (nl > sl && strcmp(de->d_name + nl - sl, suffix) == 0)
                n++;
        }
        closedir(dir);
    }
    return n;
}

static TCase *fixture(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    return tc;
}

static Suite *dialects_suite(void)
{
    Suite *s = suite_create("dialects");
    TCase *tc;

    tc = fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, count_vectors("request"));
    tcase_add_test(tc, providers_registered);
    tcase_add_test(tc, short_tool_ids);
    tcase_add_test(tc, mistral_ids_paired);
    suite_add_tcase(s, tc);

    tc = fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, count_vectors("response"));
    suite_add_tcase(s, tc);

    tc = fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, count_vectors("error"));
    tcase_add_test(tc, error_null_body);
    suite_add_tcase(s, tc);

    tc = fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, count_vectors("stream"));
    tcase_add_test(tc, stream_identity_generated);
    tcase_add_test(tc, stream_emit_failure_on_usage);
    tcase_add_test(tc, stream_end_emits_held_usage);
    tcase_add_test(tc, stream_through_sse_parser);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(dialects_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
