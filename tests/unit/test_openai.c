/*
 * The `openai` translator, from JSON vectors in data/openai/:
 *   request/<case>.in.json   {"backend":{...},"call":{...},"request":{...}}
 *   request/<case>.expected.json  {"method","url","stream","headers","body"} or {"rv","error"}
 *   response/<case>.in.json  {"call":{...},"body":<json>} or {"call":{...},"raw":"<bytes>"}
 *   error/<case>.in.json     {"status":N,"body":<json>} or {"status":N,"raw":"<bytes>"}
 *   stream/<case>.in.json    {"call":{...},"request":{...}?,"events":[<chunk>|"<data>"],"end":bool}
 * plus a few cases that are clearer in C (emit failures, truncation, SSE parser round trip).
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

static const llmgw_provider_t *P = &llmgw_provider_openai;

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

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

/* A vector file, owned by test_pool. */
static json_t *load(const char *dir, const char *name, const char *suffix)
{
    json_t *j = test_load_json(apr_pstrcat(test_pool, "openai/", dir, "/", name, suffix, NULL));
    return llmgw_json_pool_own(test_pool, j);
}

/* The base name of vector @p i in @p dir ("case" for "case.in.json"). */
static const char *vector_name(const char *dir, int i)
{
    apr_array_header_t *names =
        test_list_dir(apr_pstrcat(test_pool, "openai/", dir, NULL), ".in.json");
    const char *file;

    ck_assert_int_lt(i, names->nelts);
    file = APR_ARRAY_IDX(names, i, const char *);
    return apr_pstrmemdup(test_pool, file, strlen(file) - strlen(".in.json"));
}

static llmgw_backend_t *make_backend(const json_t *b)
{
    llmgw_backend_t *be = apr_pcalloc(test_pool, sizeof(*be));

    be->name = str_or(b, "name", "openai-test");
    be->type = LLMGW_BACKEND_OPENAI;
    be->api_key = str_or(b, "apiKey", NULL);
    be->org_id = str_or(b, "orgId", NULL);
    be->project = str_or(b, "project", NULL);
    be->endpoint = str_or(b, "endpoint", NULL);
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

    call->pool = test_pool;
    call->backend = be;
    call->api = strcmp(api, "embeddings") == 0 ? LLMGW_API_EMBEDDINGS
                : strcmp(api, "models") == 0   ? LLMGW_API_MODELS
                                               : LLMGW_API_CHAT;
    call->body = request;
    call->model = str_or(c, "model", "gpt-test");
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

static void assert_error(const llmgw_error_t *got, const json_t *expected, const char *name)
{
    json_t *g = llmgw_json_pool_own(test_pool, error_to_json(got));
    apr_size_t len;
    const char *text;
    json_t *wire;

    ck_assert_msg(got != NULL, "%s: no error", name);
    ck_assert_json_eq(g, expected);
    /* The client-facing form must carry the same message. */
    text = llmgw_error_json(test_pool, got, &len);
    wire = llmgw_json_pool_own(test_pool, test_parse_json(text, len));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(wire, "error"), "message")),
                     got->message);
}

/* Sorted JSON array of the header lines, so that order does not matter. */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

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

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(request_vectors)
{
    const char *name = vector_name("request", _i);
    json_t *in = load("request", name, ".in.json");
    json_t *exp = load("request", name, ".expected.json");
    json_t *request = json_object_get(in, "request");
    json_t *before = llmgw_json_pool_own(test_pool, json_deep_copy(request));
    llmgw_call_t *call = make_call(json_object_get(in, "call"), request,
                                   make_backend(json_object_get(in, "backend")));
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    rv = P->build_request(call, &out, &err);
    ck_assert_msg(json_equal(request, before), "%s: the client's body was modified", name);
    ck_assert_msg(strcmp(rv_name(rv), str_or(exp, "rv", "success")) == 0, "%s: rv %s", name,
                  rv_name(rv));
    if (rv != APR_SUCCESS) {
        assert_error(err, json_object_get(exp, "error"), name);
        return;
    }
    ck_assert_str_eq(out.method, json_string_value(json_object_get(exp, "method")));
    ck_assert_str_eq(out.url, json_string_value(json_object_get(exp, "url")));
    ck_assert_int_eq(out.stream, json_is_true(json_object_get(exp, "stream")));
    ck_assert_json_eq(sorted_lines((const char **)out.headers->elts, out.headers->nelts),
                      sorted_json_lines(json_object_get(exp, "headers")));
    ck_assert_ptr_nonnull(out.body);
    ck_assert_uint_eq(out.body_len, strlen(out.body));
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    ck_assert_json_eq(body, json_object_get(exp, "body"));
}
END_TEST

/* The client's stream_options object is shared by the shallow copy: it must not gain members. */
START_TEST(request_shared_members_untouched)
{
    json_t *request = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:s, s:s}], s:b, s:{s:b}}", "model", "a", "messages", "role", "user",
                  "content", "Hi", "stream", 1, "stream_options", "include_obfuscation", 0));
    json_t *opts = json_object_get(request, "stream_options");
    llmgw_call_t *call = make_call(NULL, request, make_backend(NULL));
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(P->build_request(call, &out, &err), APR_SUCCESS);
    ck_assert_ptr_eq(json_object_get(request, "stream_options"), opts);
    ck_assert_int_eq(json_object_size(opts), 1);
    ck_assert_ptr_null(json_object_get(opts, "include_usage"));
    ck_assert_str_eq(json_string_value(json_object_get(request, "model")), "a");
    /* Building twice gives the same bytes: nothing leaked from the first build. */
    {
        llmgw_http_request_t again;
        ck_assert_int_eq(P->build_request(call, &again, &err), APR_SUCCESS);
        ck_assert_str_eq(again.body, out.body);
    }
}
END_TEST

/* Build @p text as the glue would, with the raw bytes attached; returns the body sent. */
static const char *build_raw(const char *text, const char *model, llmgw_http_request_t *out)
{
    json_t *request = llmgw_json_pool_own(test_pool, test_parse_json(text, strlen(text)));
    llmgw_call_t *call = make_call(NULL, request, make_backend(NULL));
    llmgw_error_t *err = NULL;

    call->model = model;
    call->raw_body = text;
    call->raw_len = strlen(text);
    ck_assert_int_eq(P->build_request(call, out, &err), APR_SUCCESS);
    return out->body;
}

START_TEST(request_raw_body_forwarded_when_unchanged)
{
    static const char *plain =
        "{\"model\": \"m\",  \"messages\": [{\"role\":\"user\",\"content\":\"x\"}]}";
    static const char *stream_usage = "{\"model\":\"m\",\"stream\":true,\"stream_options\":"
                                      "{\"include_usage\":true},\"messages\":[]}";
    llmgw_http_request_t out;

    /* Same model, nothing to edit: the very bytes the client sent. */
    ck_assert_ptr_eq(build_raw(plain, "m", &out), plain);
    ck_assert_uint_eq(out.body_len, strlen(plain));
    ck_assert_ptr_eq(build_raw(stream_usage, "m", &out), stream_usage);
}
END_TEST

START_TEST(request_raw_body_rebuilt_when_edited)
{
    static const char *plain =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    static const char *stream = "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";
    static const char *no_model = "{\"messages\":[]}";
    llmgw_http_request_t out;
    json_t *sent;

    /* Another model: rewritten. */
    ck_assert_ptr_ne(build_raw(plain, "other", &out), plain);
    sent = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    ck_assert_str_eq(json_string_value(json_object_get(sent, "model")), "other");
    /* A stream without include_usage: the gateway must add it. */
    ck_assert_ptr_ne(build_raw(stream, "m", &out), stream);
    sent = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    ck_assert(
        json_is_true(json_object_get(json_object_get(sent, "stream_options"), "include_usage")));
    /* No model in the request (defaultModel used): rewritten. */
    ck_assert_ptr_ne(build_raw(no_model, "m", &out), no_model);
}
END_TEST

START_TEST(provider_identity)
{
    ck_assert_ptr_eq(llmgw_provider_get(LLMGW_BACKEND_OPENAI), P);
    ck_assert_str_eq(P->type, "openai");
    ck_assert_uint_eq(P->apis, LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
    ck_assert_ptr_nonnull(P->build_request);
    ck_assert_ptr_nonnull(P->parse_response);
    ck_assert_ptr_nonnull(P->parse_error);
    ck_assert_ptr_nonnull(P->stream_init);
    ck_assert_ptr_nonnull(P->stream_event);
    ck_assert_ptr_nonnull(P->stream_end);
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
    const char *name = vector_name("response", _i);
    json_t *in = load("response", name, ".in.json");
    json_t *exp = load("response", name, ".expected.json");
    llmgw_call_t *call = make_call(json_object_get(in, "call"), NULL, make_backend(NULL));
    json_t *usage = json_object_get(exp, "usage");
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    apr_size_t len;
    const char *bytes = upstream_bytes(in, &len);
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    rv = P->parse_response(call, bytes, len, &out, &err);
    ck_assert_msg(strcmp(rv_name(rv), str_or(exp, "rv", "success")) == 0, "%s: rv %s", name,
                  rv_name(rv));
    if (rv != APR_SUCCESS) {
        assert_error(err, json_object_get(exp, "error"), name);
        return;
    }
    ck_assert_ptr_nonnull(out.body);
    ck_assert_uint_eq(out.len, strlen(out.body));
    /* openai answers are forwarded byte for byte: no re-serialisation. */
    ck_assert_msg(out.len == len && memcmp(out.body, bytes, len) == 0,
                  "%s: body is not the upstream's bytes", name);
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.len));
    ck_assert_json_eq(body, json_object_get(exp, "body"));
    ck_assert_str_eq(out.model, json_string_value(json_object_get(exp, "model")));
    ck_assert_int_eq(out.usage.present, json_is_true(json_object_get(usage, "present")));
    ck_assert_int_eq(out.usage.prompt_tokens,
                     json_integer_value(json_object_get(usage, "prompt_tokens")));
    ck_assert_int_eq(out.usage.completion_tokens,
                     json_integer_value(json_object_get(usage, "completion_tokens")));
    ck_assert_int_eq(out.usage.total_tokens,
                     json_integer_value(json_object_get(usage, "total_tokens")));
}
END_TEST

START_TEST(response_null_body)
{
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_response_t out;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(P->parse_response(call, NULL, 0, &out, &err), LLMGW_EUPSTREAM);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "bad_gateway");
}
END_TEST

START_TEST(error_vectors)
{
    const char *name = vector_name("error", _i);
    json_t *in = load("error", name, ".in.json");
    json_t *exp = load("error", name, ".expected.json");
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    json_t *banned = json_object_get(in, "must_not_contain");
    apr_size_t len, wire_len, i;
    const char *bytes = upstream_bytes(in, &len);
    llmgw_error_t *e;
    const char *wire;
    json_t *word;

    e = P->parse_error(call, (int)json_integer_value(json_object_get(in, "status")), bytes, len);
    assert_error(e, json_object_get(exp, "error"), name);
    wire = llmgw_error_json(test_pool, e, &wire_len);
    json_array_foreach (banned, i, word) {
        ck_assert_msg(!strstr(wire, json_string_value(word)), "%s: error leaks \"%s\": %s", name,
                      json_string_value(word), wire);
    }
}
END_TEST

START_TEST(error_null_body)
{
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_error_t *e = P->parse_error(call, 504, NULL, 0);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->status, 504);
    ck_assert_str_eq(e->type, "server_error");
    ck_assert_str_eq(e->message, "upstream returned HTTP 504");
}
END_TEST

/* A 400 whose message is @p msg repeated @p times; returns the translated message. */
static const char *long_error_message(const char *msg, int times)
{
    apr_size_t unit = strlen(msg);
    char *big = apr_palloc(test_pool, unit * (apr_size_t)times + 1);
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    json_t *body;
    char *text;
    llmgw_error_t *e;
    int i;

    for (i = 0; i < times; i++)
        memcpy(big + unit * (apr_size_t)i, msg, unit);
    big[unit * (apr_size_t)times] = '\0';
    body = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", big, "type",
                     "invalid_request_error", "param", "code", "invalid_value");
    text = json_dumps(body, JSON_COMPACT);
    e = P->parse_error(call, 400, text, strlen(text));
    free(text);
    json_decref(body);
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "invalid_value");
    return e->message;
}

START_TEST(error_long_message_truncated)
{
    const char *m = long_error_message("a", 5000);
    apr_size_t n = strlen(m);

    ck_assert_uint_le(n, 2000);
    ck_assert_uint_ge(n, 1990);
    ck_assert_str_eq(m + n - 3, "...");
    ck_assert_int_eq(strspn(m, "a"), n - 3);
}
END_TEST

START_TEST(error_long_message_utf8_boundary)
{
    /* "é" is two bytes: a cut at an odd offset would split one. */
    const char *m = long_error_message("\xc3\xa9", 1500);
    apr_size_t n = strlen(m);
    json_t *s;

    ck_assert_uint_le(n, 2000);
    ck_assert_str_eq(m + n - 3, "...");
    ck_assert_int_eq((n - 3) % 2, 0);
    s = json_string(m); /* NULL when not valid UTF-8 */
    ck_assert_ptr_nonnull(s);
    json_decref(s);
}
END_TEST

START_TEST(error_message_at_limit_kept)
{
    const char *m = long_error_message("b", 2000);

    ck_assert_uint_eq(strlen(m), 2000);
    ck_assert_int_eq(strspn(m, "b"), 2000);
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

static llmgw_stream_t *make_stream(llmgw_call_t *call, recorder_t *rec)
{
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    rec->frames = llmgw_json_pool_own(test_pool, json_array());
    st->call = call;
    st->emit = record_emit;
    st->baton = rec;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    return st;
}

static llmgw_call_t *stream_call(const json_t *c, json_t *request)
{
    if (!request)
        request = llmgw_json_pool_own(test_pool, json_object());
    json_object_set_new(request, "stream", json_true());
    return make_call(c, request, make_backend(NULL));
}

/* Feed one event whose data is @p item: a string as is, anything else serialised. */
static apr_status_t feed(llmgw_stream_t *st, const json_t *item)
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

static apr_status_t feed_text(llmgw_stream_t *st, const char *data)
{
    llmgw_sse_event_t ev = {"", 0, data, strlen(data), ""};
    return P->stream_event(st, &ev);
}

static void assert_no_usage_member(const json_t *frames, const char *name)
{
    size_t i;
    json_t *f;

    json_array_foreach (frames, i, f) {
        json_t *j = json_object_get(f, "json");
        ck_assert_msg(!json_object_get(j, "usage"), "%s: frame %zu carries usage", name, i);
    }
}

START_TEST(stream_vectors)
{
    const char *name = vector_name("stream", _i);
    json_t *in = load("stream", name, ".in.json");
    json_t *exp = load("stream", name, ".expected.json");
    json_t *request = json_deep_copy(json_object_get(in, "request"));
    llmgw_call_t *call = stream_call(json_object_get(in, "call"),
                                     request ? llmgw_json_pool_own(test_pool, request) : NULL);
    json_t *usage = json_object_get(exp, "usage");
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    apr_status_t rv = APR_SUCCESS;
    size_t i;
    json_t *ev, *got_error;

    json_array_foreach (json_object_get(in, "events"), i, ev) {
        rv = feed(st, ev);
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_SUCCESS && json_is_true(json_object_get(in, "end")))
        rv = P->stream_end(st);

    ck_assert_msg(strcmp(rv_name(rv), str_or(exp, "rv", "")) == 0, "%s: rv %s", name, rv_name(rv));
    ck_assert_json_eq(rec.frames, json_object_get(exp, "frames"));
    if (!call->include_usage)
        assert_no_usage_member(rec.frames, name);
    ck_assert_int_eq(st->done, json_is_true(json_object_get(exp, "done")));
    ck_assert_int_eq(st->finish_seen, json_is_true(json_object_get(exp, "finish_seen")));
    ck_assert_int_eq(st->usage_seen, json_is_true(json_object_get(exp, "usage_seen")));
    ck_assert_int_eq(st->content_emitted, json_is_true(json_object_get(exp, "content_emitted")));
    if (json_is_string(json_object_get(exp, "model")))
        ck_assert_str_eq(st->model, json_string_value(json_object_get(exp, "model")));
    else
        ck_assert_ptr_null(st->model);
    got_error = llmgw_json_pool_own(test_pool, error_to_json(st->error));
    ck_assert_json_eq(got_error, json_object_get(exp, "error"));
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

static const char *ROLE_CHUNK =
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}],\"usage\":null}";
static const char *HELLO_CHUNK =
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],"
    "\"usage\":null}";
static const char *FINISH_CHUNK =
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}";

START_TEST(stream_emit_failure_propagates)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    rec.fail_at = 2;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, ROLE_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, HELLO_CHUNK), LLMGW_ECLIENTGONE);
    /* The client left: not an upstream fault, and nothing counts as delivered. */
    ck_assert_ptr_null(st->error);
    ck_assert_int_eq(st->content_emitted, 0);
    ck_assert_int_eq(json_array_size(rec.frames), 1);
}
END_TEST

START_TEST(stream_emit_failure_on_done)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    rec.fail_at = 3;
    rec.fail_rv = APR_ECONNRESET;
    ck_assert_int_eq(feed_text(st, HELLO_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, FINISH_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "[DONE]"), APR_ECONNRESET);
    ck_assert_int_eq(st->done, 0);
    ck_assert_ptr_null(st->error);
}
END_TEST

START_TEST(stream_emit_failure_at_end)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    rec.fail_at = 3;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, HELLO_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, FINISH_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(P->stream_end(st), LLMGW_ECLIENTGONE);
    ck_assert_int_eq(st->done, 0);
}
END_TEST

START_TEST(stream_nothing_after_done)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    ck_assert_int_eq(feed_text(st, FINISH_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "[DONE]"), APR_EOF);
    ck_assert_int_eq(feed_text(st, HELLO_CHUNK), APR_EOF);
    ck_assert_int_eq(feed_text(st, "[DONE]"), APR_EOF);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 2);
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* A chunk larger than any stack buffer is forwarded whole. */
START_TEST(stream_large_chunk)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    char *text = apr_palloc(test_pool, 100001);
    json_t *chunk;

    memset(text, 'x', 100000);
    text[100000] = '\0';
    chunk = llmgw_json_pool_own(test_pool,
                                json_pack("{s:s, s:[{s:i, s:{s:s}, s:n}]}", "id", "c", "choices",
                                          "index", 0, "delta", "content", text, "finish_reason"));
    ck_assert_int_eq(feed(st, chunk), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 1);
    ck_assert_json_eq(json_object_get(json_array_get(rec.frames, 0), "json"), chunk);
    ck_assert_int_eq(st->content_emitted, 1);
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

static apr_status_t on_sse(void *baton, const llmgw_sse_event_t *ev)
{
    return P->stream_event(baton, ev);
}

/* providers.md 10.1 as wire bytes, one byte at a time, through the real SSE parser. */
START_TEST(stream_through_sse_parser)
{
    json_t *in = load("stream", "tool_calls_forwarded", ".in.json");
    json_t *exp = load("stream", "tool_calls_forwarded", ".expected.json");
    llmgw_call_t *call = stream_call(json_object_get(in, "call"), NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    const char *bytes = sse_text(json_object_get(in, "events"));
    llmgw_sse_parser_t *sp;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i, n = strlen(bytes);

    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, 1 << 20, on_sse, st), APR_SUCCESS);
    for (i = 0; i < n && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, bytes + i, 1);
    /* [DONE] is dispatched on the CR of its closing blank line. */
    ck_assert_int_eq(rv, APR_EOF);
    ck_assert_uint_ge(i, n - 1);
    ck_assert_json_eq(rec.frames, json_object_get(exp, "frames"));
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* ---------------------------------------------------------------------- */

/* Before any test runs, so without Check's assertions (they need a running test). */
static int count_vectors(const char *dir)
{
    char path[1024];
    const char *suffix = ".in.json";
    size_t sl = strlen(suffix);
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/openai/%s", LLMGW_TEST_DATA, dir);
    d = opendir(path);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(EXIT_FAILURE);
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl > sl && strcmp(de->d_name + nl - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static TCase *fixture(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    return tc;
}

static Suite *openai_suite(void)
{
    Suite *s = suite_create("openai");
    TCase *tc;

    tc = fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, count_vectors("request"));
    tcase_add_test(tc, request_shared_members_untouched);
    tcase_add_test(tc, provider_identity);
    tcase_add_test(tc, request_raw_body_forwarded_when_unchanged);
    tcase_add_test(tc, request_raw_body_rebuilt_when_edited);
    suite_add_tcase(s, tc);

    tc = fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, count_vectors("response"));
    tcase_add_test(tc, response_null_body);
    suite_add_tcase(s, tc);

    tc = fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, count_vectors("error"));
    tcase_add_test(tc, error_null_body);
    tcase_add_test(tc, error_long_message_truncated);
    tcase_add_test(tc, error_long_message_utf8_boundary);
    tcase_add_test(tc, error_message_at_limit_kept);
    suite_add_tcase(s, tc);

    tc = fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, count_vectors("stream"));
    tcase_add_test(tc, stream_emit_failure_propagates);
    tcase_add_test(tc, stream_emit_failure_on_done);
    tcase_add_test(tc, stream_emit_failure_at_end);
    tcase_add_test(tc, stream_nothing_after_done);
    tcase_add_test(tc, stream_large_chunk);
    tcase_add_test(tc, stream_through_sse_parser);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(openai_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
