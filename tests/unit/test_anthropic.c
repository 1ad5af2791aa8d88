/*
 * The `anthropic` translator, from JSON vectors in data/anthropic/:
 *   request/<case>.in.json   {"backend":{...},"call":{...},"request":{...}}
 *   request/<case>.expected.json  {"method","url","stream","headers","body","dropped"?}
 *                                 or {"rv","error"}
 *   response/<case>.in.json  {"call":{...},"request":{...}?,"body":<json>} or {...,"raw":"<bytes>"}
 *   error/<case>.in.json     {"status":N,"body":<json>} or {"status":N,"raw":"<bytes>"}
 *   stream/<case>.in.json    {"call":{...},"request":{...}?,"events":[...],"end":bool}
 *     where an event is a JSON object (sent with `event: <its type>`), a string
 *     (raw data, no event name) or {"event":name,"data":<object or string>}.
 * plus cases that are clearer in C (emit failures, pool growth, SSE round trip).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "test_vectors.h"
#include "llmgw_json.h"

extern const llmgw_provider_t llmgw_provider_anthropic;
static const llmgw_provider_t *P = &llmgw_provider_anthropic;
static const char *const DIRS[] = {"anthropic", NULL};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static llmgw_backend_t *make_backend(const json_t *b)
{
    return test_backend(b, LLMGW_BACKEND_ANTHROPIC, "claude");
}

static llmgw_call_t *make_call(const json_t *c, json_t *request, const llmgw_backend_t *be)
{
    return test_call(c, request, be, "claude-test");
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

static llmgw_call_t *request_call(const json_t *in, json_t *request)
{
    return make_call(json_object_get(in, "call"), request,
                     make_backend(json_object_get(in, "backend")));
}

/* The body is written, not dumped (llmgw_json.h): still jansson's compact form, byte for byte. */
static void assert_body_canonical(llmgw_call_t *call, const char *name)
{
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    json_t *j;
    char *canon;

    ck_assert_int_eq(P->build_request(call, &out, &err), APR_SUCCESS);
    j = test_parse_json(out.body, out.body_len);
    canon = json_dumps(j, JSON_COMPACT);
    ck_assert_msg(strlen(canon) == out.body_len && memcmp(canon, out.body, out.body_len) == 0,
                  "%s: the body is not jansson's compact form: %s", name, out.body);
    free(canon);
    json_decref(j);
}

START_TEST(request_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "request", _i);
    llmgw_call_t *call = request_call(v.in, json_object_get(v.in, "request"));
    json_t *dropped = json_object_get(v.exp, "dropped");
    llmgw_error_t *err;

    if (test_check_request(P, call, &v, &err) != APR_SUCCESS)
        return;
    if (!dropped)
        dropped = llmgw_json_pool_own(test_pool, json_array());
    ck_assert_json_eq(test_dropped_json(call), dropped);
    assert_body_canonical(call, v.name);
}
END_TEST

/* Building twice gives the same bytes: nothing of the first build leaks into the second. */
START_TEST(request_build_twice_same)
{
    json_t *in = test_vector_named("anthropic", "request", "worked_example_10_3").in;
    json_t *request = json_object_get(in, "request");
    llmgw_call_t *call = request_call(in, request);
    llmgw_http_request_t a, b;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(P->build_request(call, &a, &err), APR_SUCCESS);
    ck_assert_int_eq(P->build_request(call, &b, &err), APR_SUCCESS);
    ck_assert_uint_eq(a.body_len, b.body_len);
    ck_assert_int_eq(memcmp(a.body, b.body, a.body_len), 0);
}
END_TEST

/* The key goes in x-api-key only, never in the URL or the body. */
START_TEST(request_key_only_in_header)
{
    json_t *in = test_vector_named("anthropic", "request", "worked_example_10_3").in;
    llmgw_call_t *call = request_call(in, json_object_get(in, "request"));
    const char *key = call->backend->api_key;
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    int i, seen = 0;

    ck_assert_ptr_nonnull(key);
    ck_assert_int_eq(P->build_request(call, &out, &err), APR_SUCCESS);
    ck_assert_ptr_null(strstr(out.body, key));
    ck_assert_ptr_null(strstr(out.url, key));
    for (i = 0; i < out.headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(out.headers, i, const char *);
        if (strstr(h, key)) {
            ck_assert_str_eq(h, apr_pstrcat(test_pool, "x-api-key: ", key, NULL));
            seen++;
        }
    }
    ck_assert_int_eq(seen, 1);
}
END_TEST

START_TEST(provider_identity)
{
    test_assert_provider(P, "anthropic", LLMGW_API_CHAT);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses and errors                                                   */
/* ---------------------------------------------------------------------- */

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "response", _i);
    llmgw_call_t *call =
        make_call(json_object_get(v.in, "call"), test_vector_request(v.in), make_backend(NULL));
    llmgw_response_t out;
    json_t *body;

    if (test_check_response(P, call, &v, &out, &body) != APR_SUCCESS)
        return;
    ck_assert_msg(!strchr(out.body, '\n'), "%s: body not compact", v.name);
    test_assert_json_named(body, json_object_get(v.exp, "body"), v.name);
    {
        /* Written, not dumped: still byte for byte jansson's compact form. */
        char *canon = json_dumps(body, JSON_COMPACT);
        ck_assert_msg(strlen(canon) == out.len && memcmp(canon, out.body, out.len) == 0,
                      "%s: body is not jansson's compact form: %s", v.name, out.body);
        free(canon);
    }
}
END_TEST

START_TEST(response_null_body)
{
    test_check_null_response(P, make_call(NULL, NULL, make_backend(NULL)));
}
END_TEST

/* Tool arguments are compact JSON that reads back to exactly the tool input. */
START_TEST(response_arguments_round_trip)
{
    static const char *body =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
        "\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":"
        "{\"x\":0.1,\"y\":[1,2.5,1e300,0.30000000000000004],\"s\":\"caf\\u00e9 \\\"q\\\"\","
        "\"n\":null,\"o\":{\"t\":true}}}],\"stop_reason\":\"tool_use\","
        "\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}";
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    json_t *res, *native, *args;
    const char *text;

    ck_assert_int_eq(P->parse_response(call, body, strlen(body), &out, &err), APR_SUCCESS);
    res = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.len));
    native = llmgw_json_pool_own(test_pool, test_parse_json(body, strlen(body)));
    text = json_string_value(json_object_get(
        json_object_get(
            json_array_get(
                json_object_get(
                    json_object_get(json_array_get(json_object_get(res, "choices"), 0), "message"),
                    "tool_calls"),
                0),
            "function"),
        "arguments"));
    ck_assert_ptr_nonnull(text);
    args = llmgw_json_pool_own(test_pool, test_parse_json(text, strlen(text)));
    ck_assert_json_eq(
        args, json_object_get(json_array_get(json_object_get(native, "content"), 0), "input"));
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
    test_check_null_error(P, make_call(NULL, NULL, make_backend(NULL)), 500);
}
END_TEST

START_TEST(error_long_message_truncated)
{
    char *msg = apr_palloc(test_pool, 3001);
    const char *body;
    llmgw_call_t *call = make_call(NULL, NULL, make_backend(NULL));
    llmgw_error_t *e;
    apr_size_t n;

    /* "é" is two bytes, after one ASCII byte: a cut at 1997 would split one. */
    msg[0] = 'x';
    for (n = 1; n + 1 < 3000; n += 2)
        memcpy(msg + n, "\xc3\xa9", 2);
    msg[n] = '\0';
    body = apr_pstrcat(test_pool,
                       "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                       "\"message\":\"",
                       msg, "\"}}", NULL);
    e = P->parse_error(call, 400, body, strlen(body));
    n = strlen(e->message);
    ck_assert_uint_le(n, 2000);
    ck_assert_uint_ge(n, 1990);
    ck_assert_str_eq(e->message + n - 3, "...");
    ck_assert_int_eq((n - 3 - 1) % 2, 0);
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

/* Feed one vector event (see the file comment for the forms). */
static apr_status_t feed(const llmgw_provider_t *prov, llmgw_stream_t *st, const json_t *item)
{
    const char *event = "";
    const json_t *data = item;

    if (json_is_object(item) && json_object_get(item, "event") && json_object_get(item, "data")) {
        event = json_string_value(json_object_get(item, "event"));
        data = json_object_get(item, "data");
    }
    else if (json_is_object(item) && llmgw_json_str(item, "type")) {
        event = llmgw_json_str(item, "type");
    }
    return test_feed(prov, st, event, data);
}

/* Rule 6 of providers.md 2.4 with include_usage: "usage":null on every chunk but the last. */
static void assert_usage_members(const json_t *frames, const char *name)
{
    size_t i;
    json_t *f;

    json_array_foreach (frames, i, f) {
        json_t *j = json_object_get(f, "json");
        json_t *u = json_object_get(j, "usage");
        int usage_chunk = json_array_size(json_object_get(j, "choices")) == 0;

        if (!j)
            continue;
        ck_assert_msg(u != NULL, "%s: frame %zu lacks usage", name, i);
        ck_assert_msg(usage_chunk ? json_is_object(u) : json_is_null(u),
                      "%s: frame %zu has the wrong usage", name, i);
    }
}

/* Every chunk shares id, object, created and model (providers.md 2.4 rule 1). */
static void assert_same_ids(const json_t *frames, const char *name)
{
    json_t *first = NULL, *f;
    size_t i;

    json_array_foreach (frames, i, f) {
        json_t *j = json_object_get(f, "json");
        if (!j)
            continue;
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
        if (!first) {
            first = j;
            continue;
        }
        ck_assert_msg(
            json_equal(json_object_get(j, "id"), json_object_get(first, "id")) &&
                json_equal(json_object_get(j, "model"), json_object_get(first, "model")) &&
                json_equal(json_object_get(j, "created"), json_object_get(first, "created")),
            "%s: frame %zu differs in id/model/created", name, i);
    }
}

START_TEST(stream_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    test_recorder_t rec = {0};
    llmgw_call_t *call =
        stream_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"));

    test_check_stream(P, test_stream(P, call, &rec), &rec, &v, feed);
    if (call->include_usage)
        assert_usage_members(rec.frames, v.name);
    assert_same_ids(rec.frames, v.name);
}
END_TEST

/*
 * A chat client's stream (frames_only: the chunk objects are not read, so
 * they are not made) gets the same bytes as one whose chunks are read, and
 * every chunk is jansson's compact serialisation of itself.
 */
START_TEST(stream_frames_only_same_bytes)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    json_t *c = json_object_get(v.in, "call"), *req = json_object_get(v.in, "request");

    ck_assert_str_eq(test_stream_bytes(P, stream_call(c, req), &v, feed, 1),
                     test_stream_bytes(P, stream_call(c, req), &v, feed, 0));
}
END_TEST

static apr_status_t feed_text(llmgw_stream_t *st, const char *event, const char *data)
{
    return test_feed_text(P, st, event, data);
}

static const char *MSG_START =
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,"
    "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}";
static const char *TEXT_START =
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}";
static const char *TEXT_DELTA = "{\"type\":\"content_block_delta\",\"index\":0,"
                                "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}";
static const char *MSG_DELTA =
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}";
static const char *MSG_STOP = "{\"type\":\"message_stop\"}";

START_TEST(stream_emit_failure_propagates)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    rec.fail_at = 2;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, "message_start", MSG_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_start", TEXT_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_delta", TEXT_DELTA), LLMGW_ECLIENTGONE);
    test_assert_client_left(st, &rec, 1);
}
END_TEST

START_TEST(stream_emit_failure_on_done)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    rec.fail_at = 4; /* role, text, finish, [DONE] */
    rec.fail_rv = APR_ECONNRESET;
    ck_assert_int_eq(feed_text(st, "message_start", MSG_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_delta", TEXT_DELTA), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_delta", MSG_DELTA), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_stop", MSG_STOP), APR_ECONNRESET);
    ck_assert_int_eq(st->done, 0);
    ck_assert_ptr_null(st->error);
}
END_TEST

START_TEST(stream_emit_failure_at_end)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    rec.fail_at = 4;
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, "message_start", MSG_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_delta", TEXT_DELTA), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_delta", MSG_DELTA), APR_SUCCESS);
    ck_assert_int_eq(P->stream_end(st), LLMGW_ECLIENTGONE);
    ck_assert_int_eq(st->done, 0);
}
END_TEST

START_TEST(stream_nothing_after_done)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    ck_assert_int_eq(feed_text(st, "message_start", MSG_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_delta", MSG_DELTA), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_stop", MSG_STOP), APR_EOF);
    ck_assert_int_eq(feed_text(st, "content_block_delta", TEXT_DELTA), APR_EOF);
    ck_assert_int_eq(feed_text(st, "message_stop", MSG_STOP), APR_EOF);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 3);
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* A text delta larger than any stack buffer is forwarded whole. */
START_TEST(stream_large_delta)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);
    char *text = apr_palloc(test_pool, 100001);
    json_t *ev, *delta;

    memset(text, 'x', 100000);
    text[100000] = '\0';
    ev = llmgw_json_pool_own(test_pool,
                             json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta",
                                       "index", 0, "delta", "type", "text_delta", "text", text));
    ck_assert_int_eq(feed(P, st, ev), APR_SUCCESS);
    ck_assert_int_eq(json_array_size(rec.frames), 2);
    delta = json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_array_get(rec.frames, 1), "json"), "choices"), 0),
        "delta");
    ck_assert_str_eq(json_string_value(json_object_get(delta, "content")), text);
    ck_assert_int_eq(st->content_emitted, 1);
}
END_TEST

static apr_status_t null_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                              const char *data, apr_size_t len)
{
    (*(int *)baton)++;
    return APR_SUCCESS;
}

/*
 * Per-event memory must not come from the request pool (llmgw_provider.h):
 * after the stream is set up, thousands of deltas leave the pool's bump
 * pointer where it was.
 */
START_TEST(stream_events_do_not_grow_pool)
{
    llmgw_call_t *call = stream_call(NULL, NULL);
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));
    static const char *tool_start =
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}";
    static const char *tool_delta =
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"a\\\":1\"}}";
    int emitted = 0, i;
    char *before, *after;

    call->include_usage = 1;
    st->call = call;
    st->emit = null_emit;
    st->baton = &emitted;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_start", MSG_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_start", TEXT_START), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "content_block_start", tool_start), APR_SUCCESS);
    before = apr_palloc(test_pool, 8);
    for (i = 0; i < 5000; i++) {
        ck_assert_int_eq(feed_text(st, "content_block_delta", TEXT_DELTA), APR_SUCCESS);
        ck_assert_int_eq(feed_text(st, "content_block_delta", tool_delta), APR_SUCCESS);
        ck_assert_int_eq(feed_text(st, "ping", "{\"type\":\"ping\"}"), APR_SUCCESS);
    }
    ck_assert_int_eq(feed_text(st, "message_delta", MSG_DELTA), APR_SUCCESS);
    ck_assert_int_eq(feed_text(st, "message_stop", MSG_STOP), APR_EOF);
    after = apr_palloc(test_pool, 8);
    ck_assert_ptr_eq(after, before + 8);
    ck_assert_int_eq(emitted, 2 + 10000 + 3); /* role, tool; deltas; finish, usage, [DONE] */
}
END_TEST

/* SSE bytes of a stream vector: named events, CRLF line ends. */
static const char *sse_text(const json_t *events)
{
    const char *out = "";
    size_t i;
    json_t *ev;

    json_array_foreach (events, i, ev) {
        char *text = json_dumps(ev, JSON_COMPACT);
        out = apr_pstrcat(test_pool, out, "event: ", llmgw_json_str(ev, "type"), "\r\ndata: ", text,
                          "\r\n\r\n", NULL);
        free(text);
    }
    return out;
}

/* providers.md 10.3 as wire bytes, one byte at a time, through the real SSE parser. */
START_TEST(stream_through_sse_parser)
{
    test_vector_t v = test_vector_named("anthropic", "stream", "worked_example_10_3");
    test_recorder_t rec = {0};
    llmgw_stream_t *st = test_stream(P, stream_call(json_object_get(v.in, "call"), NULL), &rec);

    test_assert_sse_replay(P, st, &rec, sse_text(json_object_get(v.in, "events")), &v);
}
END_TEST

/* ---------------------------------------------------------------------- */

static Suite *anthropic_suite(void)
{
    Suite *s = suite_create("anthropic");
    TCase *tc;

    tc = test_fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, test_vector_count(DIRS, "request"));
    tcase_add_test(tc, request_build_twice_same);
    tcase_add_test(tc, request_key_only_in_header);
    tcase_add_test(tc, provider_identity);
    suite_add_tcase(s, tc);

    tc = test_fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIRS, "response"));
    tcase_add_test(tc, response_null_body);
    tcase_add_test(tc, response_arguments_round_trip);
    suite_add_tcase(s, tc);

    tc = test_fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, test_vector_count(DIRS, "error"));
    tcase_add_test(tc, error_null_body);
    tcase_add_test(tc, error_long_message_truncated);
    suite_add_tcase(s, tc);

    tc = test_fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIRS, "stream"));
    tcase_add_loop_test(tc, stream_frames_only_same_bytes, 0, test_vector_count(DIRS, "stream"));
    tcase_add_test(tc, stream_emit_failure_propagates);
    tcase_add_test(tc, stream_emit_failure_on_done);
    tcase_add_test(tc, stream_emit_failure_at_end);
    tcase_add_test(tc, stream_nothing_after_done);
    tcase_add_test(tc, stream_large_delta);
    tcase_add_test(tc, stream_events_do_not_grow_pool);
    tcase_add_test(tc, stream_through_sse_parser);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(anthropic_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
