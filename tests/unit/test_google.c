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
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "test_vectors.h"
#include "llmgw_json.h"
#include "llmgw_google_auth.h"
#include "llmgw_provider_google.h"

static const llmgw_provider_t *P = &llmgw_provider_google;
static const char *const DIRS[] = {"google", NULL};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static llmgw_backend_t *make_backend(const json_t *b)
{
    llmgw_backend_t *be = test_backend(b, LLMGW_BACKEND_GOOGLE, "gemini-test");

    if (!b)
        be->api_key = "AIza-test-key";
    return be;
}

static llmgw_call_t *make_call(const json_t *c, json_t *request, const llmgw_backend_t *be)
{
    return test_call(c, request ? request : test_empty_object(), be, "gemini-2.5-flash");
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

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(request_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "request", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"),
                                   make_backend(json_object_get(v.in, "backend")));
    json_t *want_dropped = json_object_get(v.exp, "dropped");
    llmgw_error_t *err;

    if (test_check_request(P, call, &v, &err) != APR_SUCCESS)
        return;
    ck_assert_json_eq(test_dropped_json(call),
                      want_dropped ? want_dropped : llmgw_json_pool_own(test_pool, json_array()));
}
END_TEST

START_TEST(provider_identity)
{
    ck_assert_ptr_eq(llmgw_provider_get(LLMGW_BACKEND_GOOGLE), P);
    test_assert_provider(P, "google", LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
}
END_TEST

/* Two builds of one call give the same bytes: nothing of the first leaks into the second. */
START_TEST(request_build_twice)
{
    json_t *in = test_vector_named("google", "request", "tool_results_merged_in_call_order").in;
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

/* The refs of remote_images as [[url, param], ...] (owned by test_pool). */
static json_t *remote_images_json(const llmgw_backend_t *be, const char *request)
{
    json_t *body = llmgw_json_pool_own(test_pool, test_parse_json(request, strlen(request)));
    llmgw_call_t *call = make_call(NULL, body, be);
    apr_array_header_t *refs = apr_array_make(test_pool, 2, sizeof(llmgw_image_ref_t));
    json_t *out = llmgw_json_pool_own(test_pool, json_array());
    int i;

    P->remote_images(call, refs);
    for (i = 0; i < refs->nelts; i++) {
        const llmgw_image_ref_t *r = &APR_ARRAY_IDX(refs, i, llmgw_image_ref_t);
        json_array_append_new(out, json_pack("[s, s]", r->url, r->param));
    }
    return out;
}

/*
 * The glue fetches exactly what remote_images lists: the http(s) images of
 * user messages, in order, duplicates included; never data URIs, the URIs
 * Google reads itself, other roles, malformed parts or embeddings.
 */
START_TEST(remote_images_listed)
{
    static const char request[] =
        "{\"messages\":["
        "{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"https://a.example/sys.png\"}}]},"
        "{\"role\":\"user\",\"content\":\"https://a.example/text.png\"},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"https://a.example/t.png\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://a.example/1.png\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"gs://b/2.png\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://generativelanguage.googleapis.com/v1beta/files/f1\"}},"
        "{\"type\":\"image_url\",\"image_url\":{}},"
        "{\"type\":\"image_url\",\"image_url\":\"HTTP://a.example/3.png\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://a.example/4.png\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"ok\"},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://a.example/1.png\"}}]}]}";
    llmgw_backend_t *aistudio = make_backend(NULL);
    llmgw_backend_t *vertex = make_backend(NULL);
    const char *want_aistudio =
        "[[\"https://a.example/1.png\", \"messages[2].content[1].image_url.url\"],"
        " [\"HTTP://a.example/3.png\", \"messages[2].content[6].image_url.url\"],"
        " [\"https://a.example/1.png\", \"messages[4].content[0].image_url.url\"]]";
    json_t *want =
        llmgw_json_pool_own(test_pool, test_parse_json(want_aistudio, strlen(want_aistudio)));
    llmgw_call_t *emb;
    apr_array_header_t *refs = apr_array_make(test_pool, 2, sizeof(llmgw_image_ref_t));

    vertex->api_key = NULL;
    vertex->project_id = "acme-prod";
    vertex->location = "europe-west4";
    ck_assert_json_eq(remote_images_json(aistudio, request), want);
    /* Vertex AI reads gs:// itself and refuses Files API URIs: neither is fetched. */
    ck_assert_json_eq(remote_images_json(vertex, request), want);
    emb = make_call(llmgw_json_pool_own(test_pool, json_pack("{s:s}", "api", "embeddings")),
                    llmgw_json_pool_own(test_pool, json_pack("{s:s}", "input", "https://x/y.png")),
                    aistudio);
    P->remote_images(emb, refs);
    ck_assert_int_eq(refs->nelts, 0);
}
END_TEST

/* Only google needs image bytes: every other type passes image URLs on (providers.md 3-8). */
START_TEST(remote_images_only_google)
{
    int t;

    for (t = 0; t < LLMGW_BACKEND_POOL; t++) {
        const llmgw_provider_t *prov = llmgw_provider_get((llmgw_backend_type_e)t);
        if (prov)
            ck_assert_msg((prov->remote_images != NULL) == (t == LLMGW_BACKEND_GOOGLE),
                          "%s: remote_images", prov->type);
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses and errors                                                   */
/* ---------------------------------------------------------------------- */

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "response", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), test_vector_request(v.in),
                                   make_backend(json_object_get(v.in, "backend")));
    llmgw_response_t out;
    json_t *body;

    if (test_check_response(P, call, &v, &out, &body) != APR_SUCCESS)
        return;
    test_assert_json_named(llmgw_json_pool_own(test_pool, masked(body)),
                           json_object_get(v.exp, "body"), v.name);
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
    json_t *delay = json_object_get(v.exp, "retry_delay_ms");
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v.in, &len);

    test_check_error(P, make_call(NULL, NULL, make_backend(NULL)), &v);
    ck_assert_int_eq(llmgw_google_retry_delay(bytes, len),
                     json_is_integer(delay) ? json_integer_value(delay) * 1000 : -1);
}
END_TEST

START_TEST(error_null_body)
{
    test_check_null_error(P, make_call(NULL, NULL, make_backend(NULL)), 503);
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

/* Recorded frames carry made-up ids masked (see the file comment). */
static llmgw_stream_t *make_stream(llmgw_call_t *call, test_recorder_t *rec)
{
    rec->mask = masked;
    return test_stream(P, call, rec);
}

static llmgw_call_t *stream_call(const json_t *c, const json_t *request)
{
    return make_call(c, test_stream_request(request), make_backend(NULL));
}

/* A stream of a plain streaming call, recording into @p rec. */
static llmgw_stream_t *plain_stream(test_recorder_t *rec)
{
    return make_stream(stream_call(NULL, NULL), rec);
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

    test_check_stream(P, make_stream(call, &rec), &rec, &v, NULL);
}
END_TEST

/*
 * A chat client's stream (frames_only: the chunk objects are not read, so
 * they are not made) gets the same bytes as one whose chunks are read, and
 * every chunk is jansson's compact serialisation of itself (made-up ids
 * differ from run to run: masked).
 */
START_TEST(stream_frames_only_same_bytes)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    json_t *c = json_object_get(v.in, "call"), *req = json_object_get(v.in, "request");
    const char *only = test_stream_bytes(P, stream_call(c, req), &v, NULL, 1);
    const char *full = test_stream_bytes(P, stream_call(c, req), &v, NULL, 0);

    ck_assert_str_eq(mask_ids(only), mask_ids(full));
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

    rec.fail_at = 2; /* the role chunk passes, the text does not */
    rec.fail_rv = LLMGW_ECLIENTGONE;
    ck_assert_int_eq(feed_text(st, TEXT_EVENT), LLMGW_ECLIENTGONE);
    test_assert_client_left(st, &rec, 1);
}
END_TEST

START_TEST(stream_emit_failure_at_end)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);

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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);
    char *text = apr_palloc(test_pool, 100001);
    json_t *ev, *got;

    memset(text, 'y', 100000);
    text[100000] = '\0';
    ev = llmgw_json_pool_own(test_pool, json_pack("{s:[{s:{s:[{s:s}]}}]}", "candidates", "content",
                                                  "parts", "text", text));
    ck_assert_int_eq(test_feed(P, st, "", ev), APR_SUCCESS);
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

/* providers.md 10.4 as wire bytes (CRLF), one byte at a time, through the SSE parser. */
START_TEST(stream_through_sse_parser)
{
    test_vector_t v = test_vector_named("google", "stream", "example_10_4_include_usage");
    llmgw_call_t *call =
        stream_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"));
    test_recorder_t rec = {0};
    llmgw_stream_t *st = make_stream(call, &rec);
    const char *bytes = test_sse_text(json_object_get(v.in, "events"));
    llmgw_sse_parser_t *sp;
    apr_size_t fed;

    ck_assert_int_eq(test_sse_replay(P, st, bytes, &fed, &sp), APR_SUCCESS);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    /* Gemini has no terminator: the end of the body completes the stream. */
    ck_assert_int_eq(st->done, 0);
    ck_assert_int_eq(P->stream_end(st), APR_SUCCESS);
    ck_assert_json_eq(rec.frames, json_object_get(v.exp, "frames"));
    ck_assert_int_eq(st->done, 1);
}
END_TEST

/* Every chunk of one stream carries the same id; tool ids differ from each other. */
START_TEST(stream_ids_stable)
{
    test_recorder_t rec = {0};
    llmgw_stream_t *st = plain_stream(&rec);
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

static Suite *google_suite(void)
{
    Suite *s = suite_create("google");
    TCase *tc;

    tc = test_fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, test_vector_count(DIRS, "request"));
    tcase_add_test(tc, provider_identity);
    tcase_add_test(tc, request_build_twice);
    tcase_add_test(tc, remote_images_listed);
    tcase_add_test(tc, remote_images_only_google);
    suite_add_tcase(s, tc);

    tc = test_fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIRS, "response"));
    tcase_add_test(tc, response_null_body);
    tcase_add_test(tc, thought_signature_round_trip);
    tcase_add_test(tc, native_id_round_trip);
    suite_add_tcase(s, tc);

    tc = test_fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, test_vector_count(DIRS, "error"));
    tcase_add_test(tc, error_null_body);
    tcase_add_test(tc, error_long_message_clipped);
    suite_add_tcase(s, tc);

    tc = test_fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIRS, "stream"));
    tcase_add_loop_test(tc, stream_frames_only_same_bytes, 0, test_vector_count(DIRS, "stream"));
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
