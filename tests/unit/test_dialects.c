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
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "test_vectors.h"
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

static llmgw_backend_t *make_backend(const char *dialect, const json_t *b)
{
    return test_backend(b, type_of(dialect), apr_pstrcat(test_pool, dialect, "-test", NULL));
}

static llmgw_call_t *make_call(const json_t *c, json_t *request, const llmgw_backend_t *be)
{
    return test_call(c, request ? request : test_empty_object(), be, "model-test");
}

static void assert_dropped(const llmgw_call_t *call, const json_t *exp, const char *name)
{
    json_t *want = json_object_get(exp, "dropped");
    json_t *empty = llmgw_json_pool_own(test_pool, json_array());

    json_t *ignored = json_object_get(exp, "ignored");

    ck_assert_json_eq(test_sorted_lines((const char **)call->dropped->elts, call->dropped->nelts),
                      test_sorted_json_lines(want ? want : empty));
    /* Keys the client invented are never named in the header, only logged. */
    ck_assert_json_eq(test_sorted_lines((const char **)call->ignored->elts, call->ignored->nelts),
                      test_sorted_json_lines(ignored ? ignored : empty));
    (void)name;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(request_vectors)
{
    test_vector_t v = test_vector_at(DIALECTS, "request", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"),
                                   make_backend(v.dir, json_object_get(v.in, "backend")));
    llmgw_error_t *err;
    apr_status_t rv = test_check_request(provider_of(v.dir), call, &v, &err);

    assert_dropped(call, v.exp, v.name);
    if (rv != APR_SUCCESS)
        test_assert_not_leaked(llmgw_error_json(test_pool, err, NULL),
                               json_object_get(v.in, "must_not_contain"), v.name);
}
END_TEST

START_TEST(providers_registered)
{
    const char *const types[] = {"azure-openai", "meta", "mistral"};
    int d;

    for (d = 0; DIALECTS[d]; d++) {
        const llmgw_provider_t *P = provider_of(DIALECTS[d]);

        ck_assert_ptr_eq(llmgw_provider_get(type_of(DIALECTS[d])), P);
        test_assert_provider(P, types[d], LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS);
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

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIALECTS, "response", _i);
    llmgw_call_t *call = make_call(json_object_get(v.in, "call"), json_object_get(v.in, "request"),
                                   make_backend(v.dir, json_object_get(v.in, "backend")));
    llmgw_response_t out;
    json_t *body;

    if (test_check_response(provider_of(v.dir), call, &v, &out, &body) != APR_SUCCESS)
        return;
    ck_assert_msg(!strchr(out.body, '\n'), "%s: body not compact", v.name);
    test_assert_json_named(body, json_object_get(v.exp, "body"), v.name);
}
END_TEST

START_TEST(error_vectors)
{
    test_vector_t v = test_vector_at(DIALECTS, "error", _i);
    llmgw_call_t *call =
        make_call(NULL, NULL, make_backend(v.dir, json_object_get(v.in, "backend")));

    test_check_error(provider_of(v.dir), call, &v);
}
END_TEST

START_TEST(error_null_body)
{
    int d;

    for (d = 0; DIALECTS[d]; d++)
        test_check_null_error(provider_of(DIALECTS[d]),
                              make_call(NULL, NULL, make_backend(DIALECTS[d], NULL)), 500);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

static llmgw_call_t *stream_call(const char *dialect, const json_t *c, const json_t *request,
                                 const json_t *backend)
{
    return make_call(c, test_stream_request(request), make_backend(dialect, backend));
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
    test_vector_t v = test_vector_at(DIALECTS, "stream", _i);
    const llmgw_provider_t *P = provider_of(v.dir);
    llmgw_call_t *call =
        stream_call(v.dir, json_object_get(v.in, "call"), json_object_get(v.in, "request"),
                    json_object_get(v.in, "backend"));
    test_recorder_t rec = {0};

    test_check_stream(P, test_stream(P, call, &rec), &rec, &v, NULL);
    assert_chunk_rules(call, rec.frames, v.name);
}
END_TEST

static apr_status_t feed_text(const llmgw_provider_t *P, llmgw_stream_t *st, const char *data)
{
    return test_feed_text(P, st, "", data);
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st;
    const char *id;
    size_t i;
    json_t *f;

    call->include_usage = 1;
    call->model = "llama-test";
    st = test_stream(&llmgw_provider_meta, call, &rec);
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st;

    call->include_usage = 1;
    st = test_stream(&llmgw_provider_mistral, call, &rec);
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
    test_recorder_t rec = {0};
    llmgw_stream_t *st;
    json_t *last;

    call->include_usage = 1;
    st = test_stream(&llmgw_provider_mistral, call, &rec);
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

/* providers.md 10.2/10.5/10.6 as wire bytes, one byte at a time, through the real SSE parser. */
static void sse_round_trip(const char *dialect, const char *name)
{
    test_vector_t v = test_vector_named(dialect, "stream", name);
    llmgw_call_t *call =
        stream_call(dialect, json_object_get(v.in, "call"), NULL, json_object_get(v.in, "backend"));
    test_recorder_t rec = {0};
    llmgw_stream_t *st = test_stream(provider_of(dialect), call, &rec);

    test_assert_sse_replay(provider_of(dialect), st, &rec,
                           test_sse_text(json_object_get(v.in, "events")), &v);
}

START_TEST(stream_through_sse_parser)
{
    sse_round_trip("azure", "worked_example_tool_calls");
    sse_round_trip("mistral", "worked_example_tool_calls");
    sse_round_trip("meta", "together_worked_example");
}
END_TEST

/* ---------------------------------------------------------------------- */

static Suite *dialects_suite(void)
{
    Suite *s = suite_create("dialects");
    TCase *tc;

    tc = test_fixture("request");
    tcase_add_loop_test(tc, request_vectors, 0, test_vector_count(DIALECTS, "request"));
    tcase_add_test(tc, providers_registered);
    tcase_add_test(tc, short_tool_ids);
    tcase_add_test(tc, mistral_ids_paired);
    suite_add_tcase(s, tc);

    tc = test_fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIALECTS, "response"));
    suite_add_tcase(s, tc);

    tc = test_fixture("error");
    tcase_add_loop_test(tc, error_vectors, 0, test_vector_count(DIALECTS, "error"));
    tcase_add_test(tc, error_null_body);
    suite_add_tcase(s, tc);

    tc = test_fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIALECTS, "stream"));
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
