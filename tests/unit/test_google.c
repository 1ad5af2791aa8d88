/*
 * The `google` translator, from JSON vectors in data/google/:
 *   request/<case>.in.json   {"backend":{...},"call":{...},"request":{...}}
 *   request/<case>.expected.json  {"method","url","stream","headers","body","dropped"?}
 *                                 or {"rv","error"}
 *   response/<case>.in.json  {"call":{...},"request":{...}?,"body":<json>} or "raw":"<bytes>"
 *   error/<case>.in.json     {"status":N,"body":<json>|"raw":"<bytes>","must_not_contain":[...]}
 *   stream/<case>.in.json    {"call":{...},"request":{...}?,"events":[<json>|"<data>"],"end":bool}
 *
 * Ids the translator makes up are random; before comparing, every
 * "call_gw" + 22 base62 characters becomes "call_gw*" and every
 * "chatcmpl-gw" + 22 becomes "chatcmpl-gw*" (the shape is checked on the way).
 * Plus cases that are clearer in C: the thought-signature round trip, the
 * SSE parser end to end, emit failures, retry hints.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h> /* before test_util.h, which uses apr_array_header_t */
#include "test_util.h"
#include "llmgw_provider.h"
#include "llmgw_json.h"
#include "llmgw_google_auth.h"

static const llmgw_provider_t *P = &llmgw_provider_google;

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
    case APR_EINVAL:
        return "einval";
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

static json_t *load(const char *dir, const char *name, const char *suffix)
{
    json_t *j = test_load_json(apr_pstrcat(test_pool, "google/", dir, "/", name, suffix, NULL));
    return llmgw_json_pool_own(test_pool, j);
}

static const char *vector_name(const char *dir, int i)
{
    apr_array_header_t *names =
        test_list_dir(apr_pstrcat(test_pool, "google/", dir, NULL), ".in.json");
    const char *file;

    ck_assert_int_lt(i, names->nelts);
    file = APR_ARRAY_IDX(names, i, const char *);
    return apr_pstrmemdup(test_pool, file, strlen(file) - strlen(".in.json"));
}

static llmgw_backend_t *make_backend(const json_t *b)
{
    llmgw_backend_t *be = apr_pcalloc(test_pool, sizeof(*be));
    const char *unsupported = str_or(b, "unsupportedParams", "error");

    be->name = str_or(b, "name", "gemini-test");
    be->type = LLMGW_BACKEND_GOOGLE;
    be->api_key = str_or(b, "apiKey", b ? NULL : "AIza-test-key");
    be->endpoint = str_or(b, "endpoint", NULL);
    be->project_id = str_or(b, "projectId", NULL);
    be->location = str_or(b, "location", NULL);
    be->credentials_file = str_or(b, "credentialsFile", NULL);
    be->models = apr_array_make(test_pool, 1, sizeof(const char *));
    be->timeout = be->connect_timeout = LLMGW_UNSET;
    be->first_byte_timeout = be->idle_timeout = LLMGW_UNSET;
    be->max_retries = be->max_tokens = LLMGW_UNSET;
    be->unsupported_drop = strcmp(unsupported, "drop") == 0;
    return be;
}

static int flag(const json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

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
    call->model = str_or(c, "model", "gemini-2.5-flash");
    call->stream = flag(c, "stream", stream);
    call->include_usage = flag(
        c, "include_usage", call->stream && json_is_true(json_object_get(opts, "include_usage")));
    call->created = 1764000000;
    call->dropped = apr_array_make(test_pool, 1, sizeof(const char *));
    call->access_token = str_or(c, "access_token", NULL);
    return call;
}

static json_t *error_to_json(const llmgw_error_t *e)
{
    if (!e)
        return json_null();
    return json_pack("{s:i, s:s?, s:s?, s:s?, s:s?}", "status", e->status, "type", e->type, "code",
                     e->code, "param", e->param, "message", e->message);
}

static void assert_error(const llmgw_error_t *got, const json_t *expected, const char *name)
{
    ck_assert_msg(got != NULL, "%s: no error", name);
    ck_assert_json_eq(llmgw_json_pool_own(test_pool, error_to_json(got)), expected);
}

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

/*
 * Replace made-up ids by fixed placeholders in a string; checks that what
 * follows each prefix is exactly 22 base62 characters.
 */
static char *mask_ids(const char *s)
{
    static const char *const prefixes[] = {"chatcmpl-gw", "call_gw", NULL};
    char *out = apr_palloc(test_pool, strlen(s) + 1), *o = out;
    int i;

    while (*s) {
        for (i = 0; prefixes[i]; i++) {
            apr_size_t n = strlen(prefixes[i]), k;
            if (strncmp(s, prefixes[i], n) != 0)
                continue;
            for (k = 0; k < 22; k++)
                ck_assert_msg(apr_isalnum(s[n + k]), "made-up id too short: %s", s);
            ck_assert_msg(!apr_isalnum(s[n + 22]), "made-up id too long: %s", s);
            memcpy(o, prefixes[i], n);
            o += n;
            *o++ = '*';
            s += n + 22;
            break;
        }
        if (!prefixes[i])
            *o++ = *s++;
    }
    *o = '\0';
    return out;
}

/* A deep copy of @p j with every string passed through mask_ids (new reference). */
static json_t *masked(const json_t *j)
{
    const char *key;
    json_t *v, *out;
    size_t i;

    if (json_is_string(j))
        return json_string(mask_ids(json_string_value(j)));
    if (json_is_object(j)) {
        out = json_object();
        json_object_foreach ((json_t *)j, key, v) {
            json_object_set_new(out, key, masked(v));
        }
        return out;
    }
    if (json_is_array(j)) {
        out = json_array();
        json_array_foreach (j, i, v) {
            json_array_append_new(out, masked(v));
        }
        return out;
    }
    return json_deep_copy(j);
}

static json_t *dropped_json(const llmgw_call_t *call)
{
    json_t *arr = llmgw_json_pool_own(test_pool, json_array());
    int i;

    for (i = 0; i < call->dropped->nelts; i++)
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(call->dropped, i, const char *)));
    return arr;
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
    json_t *want_dropped = json_object_get(exp, "dropped");
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    rv = P->build_request(call, &out, &err);
    ck_assert_msg(json_equal(request, before), "%s: the client's body was modified", name);
    ck_assert_msg(strcmp(rv_name(rv), str_or(exp, "rv", "success")) == 0, "%s: rv %s (%s)", name,
                  rv_name(rv), err ? err->message : "");
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
    ck_assert_json_eq(dropped_json(call),
                      want_dropped ? want_dropped : llmgw_json_pool_own(test_pool, json_array()));
}
END_TEST

START_TEST(provider_identity)
{
    ck_assert_ptr_eq(llmgw_provider_get(LLMGW_BACKEND_GOOGLE), P);
    ck_assert_str_eq(P->type, "google");
    ck_assert_uint_eq(P->apis, LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
    ck_assert_ptr_nonnull(P->build_request);
    ck_assert_ptr_nonnull(P->parse_response);
    ck_assert_ptr_nonnull(P->parse_error);
    ck_assert_ptr_nonnull(P->stream_init);
    ck_assert_ptr_nonnull(P->stream_event);
    ck_assert_ptr_nonnull(P->stream_end);
}
END_TEST

/* Two builds of one call give the same bytes: nothing of the first leaks into the second. */
START_TEST(request_build_twice)
{
    json_t *in = load("request", "tool_results_merged_in_call_order", ".in.json");
    llmgw_call_t *call = make_call(json_object_get(in, "call"), json_object_get(in, "request"),
                                   make_backend(json_object_get(in, "backend")));
    llmgw_http_request_t a, b;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(P->build_request(call, &a, &err), APR_SUCCESS);
    ck_assert_int_eq(P->build_request(call, &b, &err), APR_SUCCESS);
    ck_assert_str_eq(a.body, b.body);
    ck_assert_str_eq(a.url, b.url);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses and errors                                                   */
/* ---------------------------------------------------------------------- */

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

static json_t *request_of(const json_t *in)
{
    json_t *r = json_object_get(in, "request");
    return r ? r : llmgw_json_pool_own(test_pool, json_object());
}

START_TEST(response_vectors)
{
    const char *name = vector_name("response", _i);
    json_t *in = load("response", name, ".in.json");
    json_t *exp = load("response", name, ".expected.json");
    llmgw_call_t *call = make_call(json_object_get(in, "call"), request_of(in),
                                   make_backend(json_object_get(in, "backend")));
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
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.len));
    ck_assert_json_eq(llmgw_json_pool_own(test_pool, masked(body)), json_object_get(exp, "body"));
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
    json_t *delay = json_object_get(exp, "retry_delay_ms");
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
    ck_assert_int_eq(llmgw_google_retry_delay(bytes, len),
                     json_is_integer(delay) ? json_integer_value(delay) * 1000 : -1);
}
END_TEST

START_TEST(error_null_body)
{
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_error_t *e = P->parse_error(call, 503, NULL, 0);

    ck_assert_int_eq(e->status, 503);
    ck_assert_str_eq(e->type, "server_error");
    ck_assert_str_eq(e->message, "upstream returned HTTP 503");
    ck_assert_int_eq(llmgw_google_retry_delay(NULL, 0), -1);
}
END_TEST

START_TEST(error_long_message_clipped)
{
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    char *big = apr_palloc(test_pool, 5001);
    json_t *body;
    char *text;
    llmgw_error_t *e;

    memset(big, 'x', 5000);
    big[5000] = '\0';
    body = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", 400, "message", big, "status",
                     "INVALID_ARGUMENT");
    text = json_dumps(body, JSON_COMPACT);
    e = P->parse_error(call, 400, text, strlen(text));
    free(text);
    json_decref(body);
    ck_assert_uint_eq(strlen(e->message), 2000);
    ck_assert_str_eq(e->message + 1997, "...");
    ck_assert_str_eq(e->code, "invalid_argument");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Thought signatures: answer -> client -> next request (6.6)            */
/* ---------------------------------------------------------------------- */

/* The tool call of an answer, as the client would store it. */
static json_t *answer_tool_calls(const char *native)
{
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    json_t *body;

    ck_assert_int_eq(P->parse_response(call, native, strlen(native), &out, &err), APR_SUCCESS);
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.len));
    return json_object_get(
        json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message"),
        "tool_calls");
}

/* The next request's model content after sending @p calls back with results. */
static json_t *next_request_contents(json_t *calls, const char *model)
{
    json_t *request = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:[{s:s, s:s}, {s:s, s:n, s:O}]}", "messages", "role", "user", "content",
                  "Weather in Lisbon?", "role", "assistant", "content", "tool_calls", calls));
    json_t *msgs = json_object_get(request, "messages");
    llmgw_call_t *call;
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    size_t i;
    json_t *tc, *body;

    json_array_foreach (calls, i, tc) {
        json_array_append_new(msgs, json_pack("{s:s, s:O, s:s}", "role", "tool", "tool_call_id",
                                              json_object_get(tc, "id"), "content", "{\"t\":21}"));
    }
    call = make_call(llmgw_json_pool_own(test_pool, json_pack("{s:s}", "model", model)), request,
                     make_backend(NULL));
    ck_assert_int_eq(P->build_request(call, &out, &err), APR_SUCCESS);
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    return json_object_get(body, "contents");
}

START_TEST(thought_signature_round_trip)
{
    const char *native =
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":["
        "{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Lisbon\"}},"
        "\"thoughtSignature\":\"Q1NpZy8r+==\"},"
        "{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},\"finishReason\":\"STOP\"}]}";
    json_t *calls = answer_tool_calls(native);
    const char *id0 = json_string_value(json_object_get(json_array_get(calls, 0), "id"));
    const char *id1 = json_string_value(json_object_get(json_array_get(calls, 1), "id"));
    json_t *contents, *model_parts, *answers;

    ck_assert_int_eq(json_array_size(calls), 2);
    ck_assert_msg(strncmp(id0, "call_gw", 7) == 0 && strstr(id0, "__thought__Q1NpZy8r+==") &&
                      strlen(id0) == 7 + 22 + 11 + 11,
                  "id %s", id0);
    ck_assert_msg(strncmp(id1, "call_gw", 7) == 0 && strlen(id1) == 29, "id %s", id1);
    ck_assert_str_ne(id0, id1);

    contents = next_request_contents(calls, "gemini-2.5-flash");
    ck_assert_int_eq(json_array_size(contents), 3);
    model_parts = json_object_get(json_array_get(contents, 1), "parts");
    answers = json_object_get(json_array_get(contents, 2), "parts");
    /* The signature goes back unchanged; our made-up ids do not go back at all. */
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(model_parts, 0), "thoughtSignature")),
        "Q1NpZy8r+==");
    ck_assert_ptr_null(json_object_get(json_array_get(model_parts, 1), "thoughtSignature"));
    ck_assert_ptr_null(
        json_object_get(json_object_get(json_array_get(model_parts, 0), "functionCall"), "id"));
    ck_assert_str_eq(
        llmgw_json_str(json_object_get(json_array_get(answers, 1), "functionResponse"), "name"),
        "get_time");
    ck_assert_ptr_null(
        json_object_get(json_object_get(json_array_get(answers, 0), "functionResponse"), "id"));
}
END_TEST

START_TEST(native_id_round_trip)
{
    const char *native = "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":"
                         "\"fc-7\",\"name\":\"lookup\",\"args\":{\"q\":\"x\"}},"
                         "\"thoughtSignature\":\"c2ln\"}]}}]}";
    json_t *calls = answer_tool_calls(native);
    json_t *contents;
    json_t *fc, *fr;

    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(calls, 0), "id")),
                     "fc-7__thought__c2ln");
    contents = next_request_contents(calls, "gemini-3-pro-preview");
    fc = json_object_get(json_array_get(json_object_get(json_array_get(contents, 1), "parts"), 0),
                         "functionCall");
    fr = json_object_get(json_array_get(json_object_get(json_array_get(contents, 2), "parts"), 0),
                         "functionResponse");
    ck_assert_str_eq(llmgw_json_str(fc, "id"), "fc-7");
    ck_assert_str_eq(llmgw_json_str(fr, "id"), "fc-7");
    ck_assert_str_eq(
        llmgw_json_str(json_array_get(json_object_get(json_array_get(contents, 1), "parts"), 0),
                       "thoughtSignature"),
        "c2ln");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    json_t *frames;
    int calls;
    int fail_at;
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

static apr_status_t record_emit(void *baton, llmgw_chunk_kind_e kind, const char *data,
                                apr_size_t len)
{
    recorder_t *r = baton;
    const char *payload;
    apr_size_t plen;
    json_t *frame, *j;

    if (++r->calls == r->fail_at)
        return r->fail_rv;
    ck_assert_uint_gt(len, 8);
    ck_assert_msg(memcmp(data, "data: ", 6) == 0, "frame does not start with data:");
    ck_assert_msg(memcmp(data + len - 2, "\n\n", 2) == 0, "frame does not end with a blank line");
    payload = data + 6;
    plen = len - 8;
    ck_assert_msg(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen),
                  "frame spans several lines");
    if (plen == 6 && memcmp(payload, "[DONE]", 6) == 0) {
        frame = json_pack("{s:s, s:s}", "kind", kind_name(kind), "text", "[DONE]");
    }
    else {
        j = test_parse_json(payload, plen);
        frame = json_pack("{s:s, s:o}", "kind", kind_name(kind), "json", masked(j));
        json_decref(j);
    }
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
    json_t *ev;

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
    ck_assert_json_eq(llmgw_json_pool_own(test_pool, error_to_json(st->error)),
                      json_object_get(exp, "error"));
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

static const char *TEXT_EVENT = "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{"
                                "\"text\":\"Hi\"}]},\"index\":0}],\"responseId\":\"r1\"}";
static const char *FINISH_EVENT =
    "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"!\"}]},"
    "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,"
    "\"candidatesTokenCount\":2,\"totalTokenCount\":5},\"responseId\":\"r1\"}";

START_TEST(stream_emit_failure_propagates)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    rec.fail_at = 2; /* the role chunk passes, the text does not */
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, TEXT_EVENT), LLMGW_ECLIENTGONE);
    ck_assert_ptr_null(st->error);
    ck_assert_int_eq(st->content_emitted, 0);
    ck_assert_int_eq(json_array_size(rec.frames), 1);
}
END_TEST

START_TEST(stream_emit_failure_at_end)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);

    ck_assert_int_eq(feed_text(st, TEXT_EVENT), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, FINISH_EVENT), APR_SUCCESS);
    rec.fail_at = rec.calls + 2; /* the finish chunk passes, [DONE] does not */
    rec.fail_rv = APR_ECONNRESET;
    ck_assert_int_eq(P->stream_end(st), APR_ECONNRESET);
    ck_assert_int_eq(st->done, 0);
    ck_assert_ptr_null(st->error);
}
END_TEST

START_TEST(stream_nothing_after_done)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    size_t n;

    ck_assert_int_eq(feed_text(st, FINISH_EVENT), APR_SUCCESS);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    n = json_array_size(rec.frames);
    ck_assert_int_eq(feed_text(st, TEXT_EVENT), APR_EOF);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), n);
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* A text part larger than the stack frame buffer is forwarded whole. */
START_TEST(stream_large_part)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    char *text = apr_palloc(test_pool, 100001);
    json_t *ev, *got;

    memset(text, 'y', 100000);
    text[100000] = '\0';
    ev = llmgw_json_pool_own(test_pool, json_pack("{s:[{s:{s:[{s:s}]}}]}", "candidates", "content",
                                                  "parts", "text", text));
    ck_assert_int_eq(feed(st, ev), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 2);
    got = json_object_get(
        json_object_get(
            json_array_get(
                json_object_get(json_object_get(json_array_get(rec.frames, 1), "json"), "choices"),
                0),
            "delta"),
        "content");
    ck_assert_uint_eq(json_string_length(got), 100000);
}
END_TEST

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

/* providers.md 10.4 as wire bytes (CRLF), one byte at a time, through the SSE parser. */
START_TEST(stream_through_sse_parser)
{
    json_t *in = load("stream", "example_10_4_include_usage", ".in.json");
    json_t *exp = load("stream", "example_10_4_include_usage", ".expected.json");
    llmgw_call_t *call =
        stream_call(json_object_get(in, "call"),
                    llmgw_json_pool_own(test_pool, json_deep_copy(json_object_get(in, "request"))));
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    const char *bytes = sse_text(json_object_get(in, "events"));
    llmgw_sse_parser_t *sp;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i, n = strlen(bytes);

    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, 1 << 20, on_sse, st), APR_SUCCESS);
    for (i = 0; i < n && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, bytes + i, 1);
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    /* Gemini has no terminator: the end of the body completes the stream. */
    ck_assert_int_eq(st->done, 0);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_json_eq(rec.frames, json_object_get(exp, "frames"));
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* Every chunk of one stream carries the same id; tool ids differ from each other. */
START_TEST(stream_ids_stable)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    const char *ev =
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\"}},"
        "{\"functionCall\":{\"name\":\"b\",\"args\":{\"x\":1}}}]},"
        "\"finishReason\":\"STOP\"}]}";
    size_t i;
    json_t *f;

    ck_assert_int_eq(feed_text(st, ev), APR_SUCCESS);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 5);
    json_array_foreach (rec.frames, i, f) {
        json_t *j = json_object_get(f, "json");
        if (j)
            ck_assert_str_eq(llmgw_json_str(j, "id"), "chatcmpl-gw*");
    }
}
END_TEST

/* ---------------------------------------------------------------------- */

static int count_vectors(const char *dir)
{
    char path[1024];
    const char *suffix = ".in.json";
    size_t sl = strlen(suffix);
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/google/%s", LLMGW_TEST_DATA, dir);
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

static Suite *google_suite(void)
{
    Suite *s = suite_create("google");
    TCase *tc;

    tc = fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, count_vectors("request"));
    tcase_add_test(tc, provider_identity);
    tcase_add_test(tc, request_build_twice);
    suite_add_tcase(s, tc);

    tc = fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, count_vectors("response"));
    tcase_add_test(tc, response_null_body);
    tcase_add_test(tc, thought_signature_round_trip);
    tcase_add_test(tc, native_id_round_trip);
    suite_add_tcase(s, tc);

    tc = fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, count_vectors("error"));
    tcase_add_test(tc, error_null_body);
    tcase_add_test(tc, error_long_message_clipped);
    suite_add_tcase(s, tc);

    tc = fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, count_vectors("stream"));
    tcase_add_test(tc, stream_emit_failure_propagates);
    tcase_add_test(tc, stream_emit_failure_at_end);
    tcase_add_test(tc, stream_nothing_after_done);
    tcase_add_test(tc, stream_large_part);
    tcase_add_test(tc, stream_through_sse_parser);
    tcase_add_test(tc, stream_ids_stable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(google_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
