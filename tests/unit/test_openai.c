/*
 * The `openai` translator, from JSON vectors in data/openai/:
 *   request/<case>.in.json   {"backend":{...},"call":{...},"request":{...}}
 *   request/<case>.expected.json  {"method","url","stream","headers","body"} or {"rv","error"}
 *   response/<case>.in.json  {"call":{...},"body":<json>} or {"call":{...},"raw":"<bytes>"}
 *                            (answers go out as the upstream's bytes, unless the expected
 *                            file says "verbatim": false: then they must be rewritten)
 *   error/<case>.in.json     {"status":N,"body":<json>} or {"status":N,"raw":"<bytes>"}
 *   stream/<case>.in.json    {"call":{...},"request":{...}?,"events":[<chunk>|"<data>"],"end":bool}
 * plus a few cases that are clearer in C (emit failures, truncation, SSE parser round trip).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "test_vectors.h"
#include "llmgw_json.h"

static const llmgw_provider_t *P = &llmgw_provider_openai;
static const char *const DIRS[] = {"openai", NULL};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static llmgw_backend_t *make_backend(const json_t *b)
{
    return test_backend(b, LLMGW_BACKEND_OPENAI, "openai-test");
}

static llmgw_call_t *make_call(const json_t *c, json_t *request, const llmgw_backend_t *be)
{
    return test_call(c, request, be, "gpt-test");
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(request_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "request", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"),
                                   make_backend(json_object_get(v.in, "backend")));
    llmgw_error_t *err;

    test_check_request(P, call, &v, &err);
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

/* Build @p len bytes of @p text as the glue would, with the raw bytes attached; returns the
 * body sent. */
static const char *build_raw_len(const char *text, apr_size_t len, const char *model,
                                 llmgw_http_request_t *out)
{
    json_t *request = llmgw_json_pool_own(test_pool, test_parse_json(text, len));
    llmgw_call_t *call = make_call(NULL, request, make_backend(NULL));
    llmgw_error_t *err = NULL;

    call->model = model;
    call->raw_body = text;
    call->raw_len = len;
    ck_assert_int_eq(P->build_request(call, out, &err), APR_SUCCESS);
    return out->body;
}

static const char *build_raw(const char *text, const char *model, llmgw_http_request_t *out)
{
    return build_raw_len(text, strlen(text), model, out);
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

/* jansson takes a raw NUL after a number; the provider's parser would not. */
START_TEST(request_raw_body_with_nul_rebuilt)
{
    static const char nul[] = "{\"model\":\"m\",\"n\":1\0,\"messages\":[]}";
    llmgw_http_request_t out;
    json_t *sent;

    ck_assert_ptr_ne(build_raw_len(nul, sizeof(nul) - 1, "m", &out), nul);
    ck_assert_uint_eq(strlen(out.body), out.body_len);
    sent = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    ck_assert_int_eq(json_integer_value(json_object_get(sent, "n")), 1);
}
END_TEST

START_TEST(provider_identity)
{
    ck_assert_ptr_eq(llmgw_provider_get(LLMGW_BACKEND_OPENAI), P);
    test_assert_provider(P, "openai", LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses and errors                                                   */
/* ---------------------------------------------------------------------- */

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "response", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), NULL, make_backend(NULL));
    llmgw_response_t out;
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v.in, &len);
    json_t *body;

    if (test_check_response(P, call, &v, &out, &body) != APR_SUCCESS)
        return;
    /* openai answers are forwarded byte for byte: no re-serialisation, except
     * where a vector says the gateway must rewrite them ("verbatim": false). */
    if (json_is_false(json_object_get(v.exp, "verbatim")))
        ck_assert_msg(out.len != len || memcmp(out.body, bytes, len) != 0,
                      "%s: body is the upstream's bytes, not rewritten", v.name);
    else
        ck_assert_msg(out.len == len && memcmp(out.body, bytes, len) == 0,
                      "%s: body is not the upstream's bytes", v.name);
    test_assert_json_named(body, json_object_get(v.exp, "body"), v.name);
}
END_TEST

START_TEST(response_null_body)
{
    test_check_null_response(P, make_call(NULL, NULL, make_backend(NULL)));
}
END_TEST

START_TEST(error_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "error", _i);

    test_check_error(P, make_call(NULL, NULL, make_backend(NULL)), &v);
}
END_TEST

START_TEST(error_null_body)
{
    test_check_null_error(P, make_call(NULL, NULL, make_backend(NULL)), 504);
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

static llmgw_call_t *stream_call(const json_t *c, const json_t *request)
{
    return make_call(c, test_stream_request(request), make_backend(NULL));
}

/* A stream of a plain streaming call, recording into @p rec. */
static llmgw_stream_t *plain_stream(test_recorder_t *rec)
{
    return test_stream(P, stream_call(NULL, NULL), rec);
}

static apr_status_t feed_text(llmgw_stream_t *st, const char *data)
{
    return test_feed_text(P, st, "", data);
}

START_TEST(stream_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    test_recorder_t rec = {0};
    llmgw_call_t *call =
        stream_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"));

    test_check_stream(P, test_stream(P, call, &rec), &rec, &v, NULL);
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    rec.fail_at = 2;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, ROLE_CHUNK), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, HELLO_CHUNK), LLMGW_ECLIENTGONE);
    test_assert_client_left(st, &rec, 1);
}
END_TEST

START_TEST(stream_emit_failure_on_done)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);
    char *text = apr_palloc(test_pool, 100001);
    json_t *chunk;

    memset(text, 'x', 100000);
    text[100000] = '\0';
    chunk = llmgw_json_pool_own(test_pool,
                                json_pack("{s:s, s:[{s:i, s:{s:s}, s:n}]}", "id", "c", "choices",
                                          "index", 0, "delta", "content", text, "finish_reason"));
    ck_assert_int_eq(test_feed(P, st, "", chunk), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 1);
    ck_assert_json_eq(json_object_get(json_array_get(rec.frames, 0), "json"), chunk);
    ck_assert_int_eq(st->content_emitted, 1);
}
END_TEST

/* Records the frames a stream emits, byte for byte. */
typedef struct {
    apr_array_header_t *frames; /* const char *, NUL-terminated copies */
    apr_array_header_t *lens;   /* apr_size_t */
} raw_recorder_t;

static apr_status_t raw_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                             const char *data, apr_size_t len)
{
    raw_recorder_t *r = baton;

    (void)kind;
    (void)chunk;
    APR_ARRAY_PUSH(r->frames, const char *) = apr_pstrmemdup(test_pool, data, len);
    APR_ARRAY_PUSH(r->lens, apr_size_t) = len;
    return APR_SUCCESS;
}

static llmgw_stream_t *raw_stream(raw_recorder_t *r, int include_usage)
{
    json_t *c = json_pack("{s:b}", "include_usage", include_usage);
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    r->frames = apr_array_make(test_pool, 4, sizeof(const char *));
    r->lens = apr_array_make(test_pool, 4, sizeof(apr_size_t));
    st->call = stream_call(c, NULL);
    json_decref(c);
    st->emit = raw_emit;
    st->baton = r;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    return st;
}

/* Feeds one event whose data is the first @p len bytes of @p data (NULs included). */
static apr_status_t feed_bytes(llmgw_stream_t *st, const char *data, apr_size_t len)
{
    llmgw_sse_event_t ev = {0};

    ev.data = data;
    ev.data_len = len;
    return P->stream_event(st, &ev);
}

static const char *raw_frame(const raw_recorder_t *r, int i, apr_size_t *len)
{
    ck_assert_int_gt(r->frames->nelts, i);
    *len = APR_ARRAY_IDX(r->lens, i, apr_size_t);
    return APR_ARRAY_IDX(r->frames, i, const char *);
}

/*
 * A chunk the client would receive unchanged goes on as the upstream's own
 * bytes (its spacing, key order and escapes), not serialised anew, and so
 * does the usage chunk the client asked for.
 */
START_TEST(stream_chunk_bytes_verbatim)
{
    static const char chunk[] =
        "{ \"model\" : \"m\", \"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9 \\/\"},"
        "\"finish_reason\":null}],\"usage\":null}";
    static const char finish[] =
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}] }";
    static const char usage[] = "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2, "
                                "\"completion_tokens\":3,\"total_tokens\":5}}";
    raw_recorder_t r;
    llmgw_stream_t *st = raw_stream(&r, 1);
    apr_size_t len;

    ck_assert_int_eq(feed_text(st, chunk), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, finish), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, usage), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "[DONE]"), APR_EOF);
    ck_assert_int_eq(r.frames->nelts, 4);
    ck_assert_str_eq(raw_frame(&r, 0, &len), apr_pstrcat(test_pool, "data: ", chunk, "\n\n", NULL));
    ck_assert_str_eq(raw_frame(&r, 1, &len),
                     apr_pstrcat(test_pool, "data: ", finish, "\n\n", NULL));
    ck_assert_str_eq(raw_frame(&r, 2, &len), apr_pstrcat(test_pool, "data: ", usage, "\n\n", NULL));
    ck_assert_int_eq(st->usage.total_tokens, 5);
    ck_assert_str_eq(st->model, "m");
}
END_TEST

/*
 * Bytes that would not reach the client as the same document are serialised
 * anew: a line break between tokens (a multi-line data field would end the
 * frame's data line), a NUL jansson skipped after a number, a usage member
 * the client did not ask for, counts the gateway bounded.
 */
START_TEST(stream_chunk_rewritten_when_not_verbatim)
{
    static const char lines[] = "{\"id\":\"c\",\n\"choices\":[{\"index\":0,\"delta\":"
                                "{\"content\":\"a\"},\"finish_reason\":null}]}";
    static const char nul[] = "{\"id\":\"c\",\"created\":1\0,\"choices\":[{\"index\":0,\"delta\":"
                              "{\"content\":\"b\"},\"finish_reason\":null}]}";
    static const char unasked[] = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":"
                                  "{\"content\":\"c\"},\"finish_reason\":null}],\"usage\":null}";
    static const char past[] =
        "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":9007199254740993,\"total_tokens\":9007199254740994}}";
    raw_recorder_t r, r2;
    llmgw_stream_t *st = raw_stream(&r, 1), *st2 = raw_stream(&r2, 0);
    const char *f;
    apr_size_t len;

    ck_assert_int_eq(feed_text(st, lines), APR_SUCCESS);
    ck_assert_int_eq(feed_bytes(st, nul, sizeof(nul) - 1), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, past), APR_SUCCESS);
    ck_assert_int_eq(r.frames->nelts, 3);
    f = raw_frame(&r, 0, &len);
    ck_assert_str_eq(f,
                     "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
                     "\"finish_reason\":null}]}\n\n");
    f = raw_frame(&r, 1, &len);
    ck_assert_ptr_null(memchr(f, '\0', len));
    ck_assert_ptr_nonnull(strstr(f, "\"created\":1,"));
    f = raw_frame(&r, 2, &len);
    ck_assert_ptr_null(strstr(f, "9007199254740993"));

    ck_assert_int_eq(feed_text(st2, unasked), APR_SUCCESS);
    ck_assert_int_eq(r2.frames->nelts, 1);
    ck_assert_ptr_null(strstr(raw_frame(&r2, 0, &len), "usage"));
}
END_TEST

/*
 * llmgw_json_dump serialises in one pass into a buffer that starts inline and
 * grows: documents on both sides of every growth step come out as jansson's
 * own compact text, complete and NUL-terminated.
 */
START_TEST(json_dump_across_buffer_growth)
{
    static const apr_size_t sizes[] = {0, 1, 2030, 2034, 2035, 2036, 2037, 4090, 4100, 8200, 70000};
    apr_size_t i;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *text = apr_palloc(test_pool, sizes[i] + 1);
        json_t *j;
        char *want;
        const char *got;
        apr_size_t len = 12345;

        memset(text, 'y', sizes[i]);
        text[sizes[i]] = '\0';
        j = json_pack("{s:s}", "t", text);
        want = json_dumps(j, JSON_COMPACT);
        got = llmgw_json_dump(test_pool, j, &len);
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_str_eq(got, want);
        free(want);
        json_decref(j);
    }
}
END_TEST

/* providers.md 10.1 as wire bytes, one byte at a time, through the real SSE parser. */
START_TEST(stream_through_sse_parser)
{
    test_vector_t v = test_vector_named("openai", "stream", "tool_calls_forwarded");
    test_recorder_t rec = {0};
    llmgw_stream_t *st = test_stream(P, stream_call(json_object_get(v.in, "call"), NULL), &rec);

    test_assert_sse_replay(P, st, &rec, test_sse_text(json_object_get(v.in, "events")), &v);
}
END_TEST

/* ---------------------------------------------------------------------- */

static Suite *openai_suite(void)
{
    Suite *s = suite_create("openai");
    TCase *tc;

    tc = test_fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, test_vector_count(DIRS, "request"));
    tcase_add_test(tc, request_shared_members_untouched);
    tcase_add_test(tc, provider_identity);
    tcase_add_test(tc, request_raw_body_forwarded_when_unchanged);
    tcase_add_test(tc, request_raw_body_rebuilt_when_edited);
    tcase_add_test(tc, request_raw_body_with_nul_rebuilt);
    suite_add_tcase(s, tc);

    tc = test_fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIRS, "response"));
    tcase_add_test(tc, response_null_body);
    suite_add_tcase(s, tc);

    tc = test_fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, test_vector_count(DIRS, "error"));
    tcase_add_test(tc, error_null_body);
    tcase_add_test(tc, error_long_message_truncated);
    tcase_add_test(tc, error_long_message_utf8_boundary);
    tcase_add_test(tc, error_message_at_limit_kept);
    suite_add_tcase(s, tc);

    tc = test_fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIRS, "stream"));
    tcase_add_test(tc, stream_emit_failure_propagates);
    tcase_add_test(tc, stream_emit_failure_on_done);
    tcase_add_test(tc, stream_emit_failure_at_end);
    tcase_add_test(tc, stream_nothing_after_done);
    tcase_add_test(tc, stream_large_chunk);
    tcase_add_test(tc, json_dump_across_buffer_growth);
    tcase_add_test(tc, stream_chunk_bytes_verbatim);
    tcase_add_test(tc, stream_chunk_rewritten_when_not_verbatim);
    tcase_add_test(tc, stream_through_sse_parser);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(openai_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
