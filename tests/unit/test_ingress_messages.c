/*
 * The Anthropic Messages ingress dialect (llmgw_ingress_messages), from JSON
 * vectors in data/ingress_messages/<kind>/<case>.{in,expected}.json:
 *
 *   decode    in {"request", "count"?}            expected {"canonical","stream","model",
 *                                                  "max_output_tokens"} or {"rv","error"}
 *   backend   in {"request","type","drop"?}       expected {"error","dropped","canonical"?}
 *             (check_backend, then drop_fields on the decoded canonical request)
 *   response  in {"request","completion"}         expected {"body"} or {"rv","error"}
 *   stream    in {"request","chunks","end"}       expected {"rv","frames","done","error"}
 *             frames: [{"kind","event","data"}], the message id fixed as "msg_gw_test"
 *   error     in {"error"}                        expected {"body","event"}
 *   native    in {"backend","request","raw"?,"model","stream","headers"}
 *                                                 expected {"url","headers","stream",
 *                                                  "body" | "body_text"}
 *   observe   in {"body"} or {"events":[{"event","data"}]}
 *                                                 expected {"usage","model","kinds"?,"rvs"?}
 *   native_error  in {"status","body"|"raw"}      expected {"error"}
 *   count     in {"backend","type","request","model"?,"headers"?,"access_token"?}
 *                                                 expected {"url","headers","body"} or
 *                                                  {"rv","error"}
 *
 * ingress.md section 8, Messages items, and where each is tested:
 *
 *   22 system string / blocks, cache_control gone  decode/system_string,
 *                                                  decode/system_blocks_cache_control
 *   23 [tool_result A, B (is_error), text]          decode/tool_results_error_then_text,
 *      image inside a tool_result relocated         decode/tool_result_image_relocated
 *   24 tool_use input {} -> "{}"; images, PDFs      decode/tool_use_empty_input,
 *                                                  decode/images_base64_and_url,
 *                                                  decode/documents_pdf_text_content
 *   25 tool_choice any/tool/none, parallel; budgets decode/tool_choice_*,
 *      1024/8000/32000 -> low/medium/high           decode/thinking_budget_*
 *   26 server tool, top_k, 5 stop_sequences,        backend/server_tool_mistral,
 *      prefill on openai -> 400 naming the field    backend/top_k_openai, backend/stop5_openai,
 *      (Anthropic shape: error/check_backend_shape) backend/prefill_openai;
 *      ?beta=true never forwarded                   native/(all) (URL), count/anthropic_*;
 *      (Bearer instead of x-api-key: the glue's)
 *   27 tool-call-only answer, empty answer,         response/tool_calls_only,
 *      inverse usage with cache read and write      response/empty_answer,
 *                                                   response/usage_cache_read_write
 *   28 the 7.6 stream byte for byte, input {} on    stream/worked_example_7_6 (and the C test
 *      tool starts, contiguous indices, empty        stream_worked_example_bytes),
 *      fragments skipped, no stray {}               stream/two_tools_streamed_arguments
 *   29 message_start input estimate > 0,            stream/(all) (message_start usage),
 *      cumulative message_delta counters            stream/usage_after_finish_cache
 *   30 mid-stream failure: error event, no          stream/interleaved_tool_fragment_fails,
 *      message_stop; every class -> status, type    stream/end_without_finish_fails,
 *                                                   error/(all) (400..529), error_event_*
 *   31 passthrough: model rewritten, thinking        native/model_rewritten_thinking_intact,
 *      bytes intact, one version, beta union, no     native/beta_union_one_version,
 *      client key                                    native/unknown_version_replaced
 *   32 Gemini "__thought__" ids round trip          response/gemini_thought_id,
 *                                                   decode/gemini_thought_id_back, C test
 *                                                   tool_ids_round_trip
 *   33 count_tokens: anthropic passthrough, openai  count/anthropic_passthrough,
 *      /responses/input_tokens, mistral 400,         count/openai_input_tokens,
 *      system and tools counted                      count/mistral_refused, count/google_*,
 *                                                   C test estimate_counts_everything
 * Malformed input: decode/bad_*, stream/<case>_fails, observe/not_json, native_error/(all).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "test_vectors.h"
#include "llmgw_json.h"
#include "llmgw_ingress.h"
#include "llmgw_ingress_messages.h"
#include "../../src/ingress/llmgw_ingress_messages_private.h"

static const llmgw_ingress_t *D = &llmgw_ingress_messages;
static const char *const DIRS[] = {"ingress_messages", NULL};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static void assert_rv(apr_status_t rv, const test_vector_t *v, const llmgw_error_t *err)
{
    const char *want = test_str_or(v->exp, "rv", "success");

    ck_assert_msg(strcmp(test_rv_name(rv), want) == 0, "%s: rv %s, expected %s (%s)", v->name,
                  test_rv_name(rv), want, err && err->message ? err->message : "no error");
}

static llmgw_backend_type_e type_named(const char *name)
{
    static const struct {
        const char *name;
        llmgw_backend_type_e type;
    } types[] = {{"openai", LLMGW_BACKEND_OPENAI},
                 {"anthropic", LLMGW_BACKEND_ANTHROPIC},
                 {"azure-openai", LLMGW_BACKEND_AZURE_OPENAI},
                 {"google", LLMGW_BACKEND_GOOGLE},
                 {"meta", LLMGW_BACKEND_META},
                 {"mistral", LLMGW_BACKEND_MISTRAL}};
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (name && strcmp(types[i].name, name) == 0)
            return types[i].type;
    }
    ck_abort_msg("unknown backend type %s", name ? name : "(none)");
    return LLMGW_BACKEND_OPENAI;
}

/* A deep copy of the vector's request, and a check that nothing changes it. */
static json_t *request_of(const test_vector_t *v)
{
    return json_object_get(v->in, "request");
}

static json_t *pristine(const json_t *j)
{
    return llmgw_json_pool_own(test_pool, json_deep_copy(j));
}

static json_t *strings_json(const apr_array_header_t *a)
{
    json_t *arr = llmgw_json_pool_own(test_pool, json_array());
    int i;

    for (i = 0; a && i < a->nelts; i++)
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(a, i, const char *)));
    return arr;
}

/* The client's headers of a vector: [[name, value], ...] (a name may repeat). */
static apr_table_t *headers_of(const json_t *in)
{
    json_t *pairs = json_object_get(in, "headers"), *pair;
    apr_table_t *t = apr_table_make(test_pool, 4);
    size_t i;

    json_array_foreach (pairs, i, pair)
        apr_table_add(t, json_string_value(json_array_get(pair, 0)),
                      json_string_value(json_array_get(pair, 1)));
    return t;
}

static int is_base62(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return strlen(s) == n;
}

/* ---------------------------------------------------------------------- */
/* Decode                                                                 */
/* ---------------------------------------------------------------------- */

START_TEST(decode_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "decode", _i);
    json_t *req = request_of(&v), *before = pristine(req);
    int count = json_is_true(json_object_get(v.in, "count"));
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    rv = count ? llmgw_msg_decode(test_pool, req, 1, &out, &err)
               : D->decode(test_pool, req, &out, &err);
    ck_assert_msg(json_equal(req, before), "%s: the client's body was modified", v.name);
    assert_rv(rv, &v, err);
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    test_assert_json_named(out.canonical, json_object_get(v.exp, "canonical"), v.name);
    ck_assert_int_eq(out.stream, json_is_true(json_object_get(v.exp, "stream")));
    if (json_is_string(json_object_get(v.exp, "model")))
        ck_assert_str_eq(out.model, json_string_value(json_object_get(v.exp, "model")));
    else
        ck_assert_ptr_null(out.model);
    ck_assert_int_eq(out.max_output_tokens,
                     json_integer_value(json_object_get(v.exp, "max_output_tokens")));
    ck_assert_int_eq(out.store, 0);
    ck_assert_ptr_null(out.previous_response_id);
}
END_TEST

/* Not a JSON object at all: a 400 in Anthropic's wording, whatever it is. */
START_TEST(decode_not_an_object)
{
    static const char *const texts[] = {"[]", "\"hi\"", "42", "null", NULL};
    int i;

    for (i = 0; texts[i]; i++) {
        json_t *j = llmgw_json_pool_own(test_pool, json_loads(texts[i], JSON_DECODE_ANY, NULL));
        llmgw_ingress_request_t out;
        llmgw_error_t *err = NULL;

        ck_assert_int_eq(D->decode(test_pool, j, &out, &err), LLMGW_EBADREQ);
        ck_assert_int_eq(err->status, 400);
        ck_assert_str_eq(err->message, "The request body must be a JSON object.");
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* check_backend and drop_fields                                          */
/* ---------------------------------------------------------------------- */

START_TEST(backend_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "backend", _i);
    json_t *req = request_of(&v), *before = pristine(req);
    llmgw_backend_type_e type = type_named(test_str_or(v.in, "type", NULL));
    int drop = json_is_true(json_object_get(v.in, "drop"));
    apr_array_header_t *dropped = apr_array_make(test_pool, 2, sizeof(const char *));
    json_t *exp_err = json_object_get(v.exp, "error");
    json_t *exp_dropped = json_object_get(v.exp, "dropped");
    llmgw_error_t *e = D->check_backend(test_pool, req, type, drop, dropped);

    ck_assert_msg(json_equal(req, before), "%s: the client's body was modified", v.name);
    if (json_is_null(exp_err) || !exp_err)
        ck_assert_msg(e == NULL, "%s: refused: %s", v.name, e ? e->message : "");
    else
        test_assert_error(e, exp_err, v.name);
    test_assert_json_named(strings_json(dropped),
                           exp_dropped ? exp_dropped : llmgw_json_pool_own(test_pool, json_array()),
                           v.name);
    /* The same request is never refused by the backend that speaks it natively. */
    ck_assert_ptr_null(D->check_backend(test_pool, req, LLMGW_BACKEND_ANTHROPIC, 0, NULL));
    if (json_object_get(v.exp, "canonical")) {
        llmgw_ingress_request_t out;
        llmgw_error_t *err = NULL;
        const json_t *fit;

        ck_assert_int_eq(D->decode(test_pool, req, &out, &err), APR_SUCCESS);
        fit = D->drop_fields(test_pool, out.canonical, dropped);
        test_assert_json_named(fit, json_object_get(v.exp, "canonical"), v.name);
        if (dropped->nelts == 0)
            ck_assert_ptr_eq(fit, out.canonical);
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Responses                                                              */
/* ---------------------------------------------------------------------- */

/* The minted id: "msg_gw" + 24 base62, replaced by "<id>" for comparison. */
static void mask_message_id(json_t *body, const char *name)
{
    const char *id = llmgw_json_str(body, "id");

    ck_assert_msg(id && strncmp(id, "msg_gw", 6) == 0 && is_base62(id + 6, 24), "%s: id %s", name,
                  id ? id : "(none)");
    json_object_set_new(body, "id", json_string("<id>"));
}

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "response", _i);
    json_t *req = request_of(&v), *completion = json_object_get(v.in, "completion");
    json_t *before = pristine(completion), *out = NULL;
    llmgw_error_t *err = NULL;
    apr_status_t rv = D->encode_response(test_pool, req, completion, 1764000000, &out, &err);

    ck_assert_msg(json_equal(completion, before), "%s: the completion was modified", v.name);
    assert_rv(rv, &v, err);
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    mask_message_id(out, v.name);
    test_assert_json_named(out, json_object_get(v.exp, "body"), v.name);
}
END_TEST

/* Two answers never share an id. */
START_TEST(response_ids_unique)
{
    json_t *completion = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}", "model", "m", "choices", "index", 0,
                  "message", "role", "assistant", "content", "hi", "finish_reason", "stop"));
    json_t *a = NULL, *b = NULL;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(D->encode_response(test_pool, NULL, completion, 0, &a, &err), APR_SUCCESS);
    ck_assert_int_eq(D->encode_response(test_pool, NULL, completion, 0, &b, &err), APR_SUCCESS);
    ck_assert_str_ne(llmgw_json_str(a, "id"), llmgw_json_str(b, "id"));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    json_t *frames; /* [{"kind","event","data"}] owned by test_pool */
    json_t *raw;    /* the bytes of every frame, as strings */
    int calls;
    int fail_at; /* 1-based emit call that fails, 0 = never */
} rec_t;

static const char *kind_name(llmgw_chunk_kind_e kind)
{
    return kind == LLMGW_CHUNK_PREAMBLE  ? "preamble"
           : kind == LLMGW_CHUNK_CONTENT ? "content"
                                         : "final";
}

/* Checks the framing ("event: <name>\ndata: <one line of JSON>\n\n") and records it. */
static apr_status_t record(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                           const char *data, apr_size_t len)
{
    rec_t *r = baton;
    const char *nl, *payload;
    apr_size_t plen;
    json_t *j;
    char *name;

    ck_assert_ptr_null(chunk); /* ingress frames carry no chat chunk */
    if (++r->calls == r->fail_at)
        return LLMGW_ECLIENTGONE;
    json_array_append_new(r->raw, json_stringn(data, len));
    ck_assert_msg(len > 16 && memcmp(data, "event: ", 7) == 0, "frame without an event line");
    nl = memchr(data, '\n', len);
    ck_assert_ptr_nonnull(nl);
    name = apr_pstrmemdup(test_pool, data + 7, (apr_size_t)(nl - data - 7));
    ck_assert_msg(memcmp(nl + 1, "data: ", 6) == 0, "no data line after the event line");
    ck_assert_msg(memcmp(data + len - 2, "\n\n", 2) == 0, "frame does not end with a blank line");
    payload = nl + 7;
    plen = (apr_size_t)(data + len - 2 - payload);
    ck_assert_msg(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen),
                  "data spans several lines");
    j = test_parse_json(payload, plen);
    /* The event name is the data's type: the SDK dispatches on the name. */
    ck_assert_str_eq(name, llmgw_json_str(j, "type"));
    json_array_append_new(
        r->frames, json_pack("{s:s, s:s, s:o}", "kind", kind_name(kind), "event", name, "data", j));
    return APR_SUCCESS;
}

static llmgw_ingress_stream_t *new_stream(const json_t *client, rec_t *r)
{
    llmgw_ingress_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    r->frames = llmgw_json_pool_own(test_pool, json_array());
    r->raw = llmgw_json_pool_own(test_pool, json_array());
    st->pool = test_pool;
    st->client = client;
    st->emit = record;
    st->baton = r;
    st->created = 1764000000;
    st->id = "msg_gw_test";
    ck_assert_int_eq(D->stream_init(st), APR_SUCCESS);
    return st;
}

/* Feed the chunks of stream vector @p in, then end the stream if it says so; the last rv. */
static apr_status_t play(llmgw_ingress_stream_t *st, const json_t *in)
{
    json_t *chunk;
    size_t i;
    apr_status_t rv;

    json_array_foreach (json_object_get(in, "chunks"), i, chunk) {
        if ((rv = D->stream_chunk(st, chunk)) != APR_SUCCESS)
            return rv;
    }
    return json_is_true(json_object_get(in, "end")) ? D->stream_end(st) : APR_SUCCESS;
}

/* What any Messages stream must satisfy, whatever the vector says. */
static void assert_stream_rules(const json_t *frames, int done, const char *name)
{
    json_t *f;
    size_t i;
    int started = 0, stopped = 0, open = -1, next = 0, content = 0;

    json_array_foreach (frames, i, f) {
        const char *ev = llmgw_json_str(f, "event");
        const char *kind = llmgw_json_str(f, "kind");
        json_t *data = json_object_get(f, "data");
        json_int_t index = json_integer_value(json_object_get(data, "index"));
        json_t *cb;

        ck_assert_msg(!stopped, "%s: %s after message_stop", name, ev);
        if (i == 0)
            ck_assert_msg(strcmp(ev, "message_start") == 0, "%s: starts with %s", name, ev);
        if (strcmp(ev, "message_start") == 0) {
            ck_assert_msg(!started, "%s: two message_start", name);
            started = 1;
            /* Clients size their context meter from it (ingress.md 7.6). */
            ck_assert_int_gt(
                json_integer_value(json_object_get(
                    json_object_get(json_object_get(data, "message"), "usage"), "input_tokens")),
                0);
        }
        if (strcmp(ev, "message_start") == 0 || strcmp(ev, "ping") == 0)
            ck_assert_msg(strcmp(kind, "preamble") == 0 || content, "%s: %s is not preamble", name,
                          ev);
        if (strncmp(ev, "content_block", 13) == 0) {
            ck_assert_str_eq(kind, "content");
            content = 1;
        }
        if (strcmp(ev, "content_block_start") == 0) {
            ck_assert_msg(open < 0 && index == next, "%s: block %d opened out of order", name,
                          (int)index);
            open = (int)index;
            next++;
            cb = json_object_get(data, "content_block");
            /* Clients need the empty input object on tool starts (ingress.md 7.6). */
            if (strcmp(llmgw_json_str(cb, "type"), "tool_use") == 0)
                ck_assert_msg(json_is_object(json_object_get(cb, "input")) &&
                                  json_object_size(json_object_get(cb, "input")) == 0,
                              "%s: tool_use start without input {}", name);
        }
        if (strcmp(ev, "content_block_delta") == 0)
            ck_assert_msg(open == index, "%s: delta for block %d, open %d", name, (int)index, open);
        if (strcmp(ev, "content_block_stop") == 0) {
            ck_assert_msg(open == index, "%s: stop for block %d, open %d", name, (int)index, open);
            open = -1;
        }
        if (strcmp(ev, "message_delta") == 0 || strcmp(ev, "message_stop") == 0) {
            ck_assert_str_eq(kind, "final");
            ck_assert_msg(open < 0, "%s: %s with block %d open", name, ev, open);
        }
        if (strcmp(ev, "message_stop") == 0)
            stopped = 1;
    }
    ck_assert_int_eq(stopped, done);
}

START_TEST(stream_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    json_t *req = request_of(&v);
    rec_t r = {0};
    llmgw_ingress_stream_t *st = new_stream(req, &r);
    apr_status_t rv = play(st, v.in);
    json_t *exp_err = json_object_get(v.exp, "error");

    assert_rv(rv, &v, st->error);
    test_assert_json_named(r.frames, json_object_get(v.exp, "frames"), v.name);
    ck_assert_int_eq(st->done, json_is_true(json_object_get(v.exp, "done")));
    if (exp_err && !json_is_null(exp_err))
        test_assert_error(st->error, exp_err, v.name);
    else
        ck_assert_ptr_null(st->error);
    assert_stream_rules(r.frames, st->done, v.name);
    /* Nothing after the terminal event, whatever comes. */
    if (st->done) {
        size_t n = json_array_size(r.frames);

        ck_assert_int_eq(D->stream_chunk(st, json_array_get(json_object_get(v.in, "chunks"), 0)),
                         APR_SUCCESS);
        ck_assert_int_eq(D->stream_end(st), APR_SUCCESS);
        ck_assert_uint_eq(json_array_size(r.frames), n);
    }
}
END_TEST

/* ingress.md 7.6's example, byte for byte up to key order: text, then one tool call. */
START_TEST(stream_worked_example_bytes)
{
    static const char *const expected[] = {
        "event: message_start\ndata: "
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_gw_test\",\"type\":\"message\","
        "\"role\":\"assistant\",\"model\":\"gpt-4.1-mini-2025-04-14\",\"content\":[],"
        "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":N,"
        "\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}"
        "\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking the weather.\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
        "\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_Q2k8\",\"name\":\"get_weather\","
        "\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":"
        "\\\"Lisbon\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":412,\"output_tokens\":"
        "58,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        NULL};
    test_vector_t v = test_vector_named("ingress_messages", "stream", "worked_example_7_6");
    rec_t r = {0};
    llmgw_ingress_stream_t *st = new_stream(request_of(&v), &r);
    json_t *got;
    size_t i;

    ck_assert_int_eq(play(st, v.in), APR_SUCCESS);
    ck_assert_uint_eq(json_array_size(r.raw), 10);
    json_array_foreach (r.raw, i, got) {
        const char *want = expected[i];
        const char *n = strstr(want, "\"input_tokens\":N");
        json_t *gj, *wj;
        const char *gd, *wd;

        if (n) {
            /* The estimate: substitute what was sent, it is checked positive elsewhere. */
            json_t *f = json_array_get(r.frames, i);
            json_int_t est = json_integer_value(json_object_get(
                json_object_get(json_object_get(json_object_get(f, "data"), "message"), "usage"),
                "input_tokens"));
            want = apr_psprintf(test_pool, "%.*s\"input_tokens\":%" APR_INT64_T_FMT "%s",
                                (int)(n - want), want, (apr_int64_t)est,
                                n + strlen("\"input_tokens\":N"));
        }
        /* Same event line, same blank-line framing, same JSON (key order aside). */
        gd = strstr(json_string_value(got), "\ndata: ");
        wd = strstr(want, "\ndata: ");
        ck_assert_int_eq((int)(gd - json_string_value(got)), (int)(wd - want));
        ck_assert_int_eq(memcmp(json_string_value(got), want, (size_t)(wd - want)), 0);
        ck_assert_str_eq(json_string_value(got) + json_string_length(got) - 2, "\n\n");
        gj = test_parse_json(gd + 7, strlen(gd + 7) - 2);
        wj = test_parse_json(wd + 7, strlen(wd + 7) - 2);
        ck_assert_json_eq(gj, wj);
        json_decref(gj);
        json_decref(wj);
    }
}
END_TEST

/* The client went away: the emit failure comes back and nothing is sent after it. */
START_TEST(stream_emit_failure_propagates)
{
    test_vector_t v = test_vector_named("ingress_messages", "stream", "worked_example_7_6");
    int k;

    for (k = 1; k <= 10; k++) {
        rec_t r = {0};
        llmgw_ingress_stream_t *st;

        r.fail_at = k;
        st = new_stream(request_of(&v), &r);
        ck_assert_int_eq(play(st, v.in), LLMGW_ECLIENTGONE);
        ck_assert_int_eq(r.calls, k);
        ck_assert_int_eq(st->done, 0);
        ck_assert_ptr_null(st->error);
    }
}
END_TEST

static apr_status_t count_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                               const char *data, apr_size_t len)
{
    ck_assert_ptr_null(chunk); /* ingress frames carry no chat chunk */
    (void)kind;
    (void)data;
    (void)len;
    ++*(int *)baton;
    return APR_SUCCESS;
}

/*
 * Per-event memory must not come from the request pool (llmgw_ingress.h):
 * after the blocks are open, thousands of deltas leave the pool's bump
 * pointer where it was.
 */
START_TEST(stream_events_do_not_grow_pool)
{
    json_t *req = llmgw_json_pool_own(test_pool, json_pack("{s:s, s:i, s:[{s:s, s:s}]}", "model",
                                                           "m", "max_tokens", 100, "messages",
                                                           "role", "user", "content", "hi"));
    json_t *text = llmgw_json_pool_own(test_pool, json_pack("{s:s, s:[{s:i, s:{s:s}}]}", "model",
                                                            "m", "choices", "index", 0, "delta",
                                                            "content", "a few more words of text"));
    json_t *tool = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:i, s:{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}}]}", "model", "m",
                  "choices", "index", 0, "delta", "tool_calls", "index", 0, "id", "call_1", "type",
                  "function", "function", "name", "f", "arguments", ""));
    json_t *args = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:i, s:{s:[{s:i, s:{s:s}}]}}]}", "model", "m", "choices", "index", 0,
                  "delta", "tool_calls", "index", 0, "function", "arguments", "{\"a\":1,"));
    llmgw_ingress_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));
    int emitted = 0, i;
    char *before, *after;

    st->pool = test_pool;
    st->client = req;
    st->emit = count_emit;
    st->baton = &emitted;
    ck_assert_int_eq(D->stream_init(st), APR_SUCCESS);
    ck_assert_int_eq(D->stream_chunk(st, text), APR_SUCCESS);
    ck_assert_int_eq(D->stream_chunk(st, tool), APR_SUCCESS);
    before = apr_palloc(test_pool, 8);
    for (i = 0; i < 5000; i++)
        ck_assert_int_eq(D->stream_chunk(st, args), APR_SUCCESS);
    after = apr_palloc(test_pool, 8);
    ck_assert_ptr_eq(after, before + 8);
    /* start, ping, text start, text delta, text stop, tool start; then one delta each */
    ck_assert_int_eq(emitted, 6 + 5000);
}
END_TEST

/* After the commit point, the glue sends error_event: one event, and the stream is over. */
START_TEST(error_event_after_content)
{
    test_vector_t v = test_vector_named("ingress_messages", "stream", "end_without_finish_fails");
    rec_t r = {0};
    llmgw_ingress_stream_t *st = new_stream(request_of(&v), &r);
    apr_size_t len = 0;
    const char *frame;

    ck_assert_int_eq(play(st, v.in), LLMGW_ESTREAM);
    ck_assert_ptr_nonnull(st->error);
    frame = D->error_event(st, st->error, &len);
    ck_assert_str_eq(frame, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                            "\"api_error\",\"message\":\"upstream stream ended before the "
                            "response was complete (upstream_stream_truncated)\"}}\n\n");
    ck_assert_uint_eq(len, strlen(frame));
    ck_assert_int_eq(st->done, 1);
    /* Nothing more: no message_delta, no message_stop. */
    ck_assert_int_eq(D->stream_end(st), APR_SUCCESS);
    ck_assert_uint_eq(json_array_size(r.frames), 5);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

static llmgw_error_t *error_from(const json_t *e)
{
    return llmgw_error_make(test_pool, (int)json_integer_value(json_object_get(e, "status")),
                            llmgw_json_str(e, "type"), llmgw_json_str(e, "code"),
                            llmgw_json_str(e, "param"), "%s", llmgw_json_str(e, "message"));
}

START_TEST(error_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "error", _i);
    llmgw_error_t *e = error_from(json_object_get(v.in, "error"));
    llmgw_ingress_stream_t st;
    apr_size_t len = 0;
    const char *body = llmgw_messages_error_body(test_pool, e, "req_test", &len);
    const char *generic = D->error_json(test_pool, e, NULL);
    const char *frame;
    json_t *got, *g2;

    ck_assert_ptr_nonnull(body);
    ck_assert_uint_eq(len, strlen(body));
    got = llmgw_json_pool_own(test_pool, test_parse_json(body, len));
    test_assert_json_named(got, json_object_get(v.exp, "body"), v.name);
    /* The table's error_json is the same body with a minted request id. */
    g2 = llmgw_json_pool_own(test_pool, test_parse_json(generic, strlen(generic)));
    ck_assert_msg(strncmp(llmgw_json_str(g2, "request_id"), "req_gw", 6) == 0 &&
                      is_base62(llmgw_json_str(g2, "request_id") + 6, 24),
                  "request id %s", llmgw_json_str(g2, "request_id"));
    json_object_set_new(g2, "request_id", json_string("req_test"));
    ck_assert_json_eq(g2, got);
    /* The status is kept: only the body changes (ingress.md 6.7). */
    ck_assert_int_eq(e->status, (int)json_integer_value(
                                    json_object_get(json_object_get(v.in, "error"), "status")));
    memset(&st, 0, sizeof(st));
    st.pool = test_pool;
    frame = D->error_event(&st, e, &len);
    ck_assert_uint_eq(len, strlen(frame));
    ck_assert_int_eq(strncmp(frame, "event: error\ndata: ", 19), 0);
    ck_assert_str_eq(frame + len - 2, "\n\n");
    got = llmgw_json_pool_own(test_pool, test_parse_json(frame + 19, len - 21));
    test_assert_json_named(got, json_object_get(v.exp, "event"), v.name);
}
END_TEST

/* Upstream text may be anything: the body is JSON all the same. */
START_TEST(error_invalid_utf8_message)
{
    llmgw_error_t *e =
        llmgw_error_make(test_pool, 529, NULL, NULL, NULL, "bad \xff byte from upstream");
    apr_size_t len = 0;
    const char *body = llmgw_messages_error_body(test_pool, e, "req_x", &len);
    json_t *j = llmgw_json_pool_own(test_pool, test_parse_json(body, len));

    ck_assert_str_eq(llmgw_json_str(json_object_get(j, "error"), "type"), "overloaded_error");
    ck_assert_str_eq(llmgw_json_str(json_object_get(j, "error"), "message"),
                     "bad \xef\xbf\xbd byte from upstream");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Native passthrough                                                     */
/* ---------------------------------------------------------------------- */

static void assert_http_request(const llmgw_http_request_t *out, const test_vector_t *v)
{
    json_t *exp = v->exp;
    json_t *text = json_object_get(exp, "body_text");

    ck_assert_str_eq(out->method, "POST");
    ck_assert_str_eq(out->url, json_string_value(json_object_get(exp, "url")));
    ck_assert_int_eq(out->stream, json_is_true(json_object_get(exp, "stream")));
    test_assert_json_named(
        test_sorted_lines((const char **)out->headers->elts, out->headers->nelts),
        test_sorted_json_lines(json_object_get(exp, "headers")), v->name);
    ck_assert_ptr_nonnull(out->body);
    if (json_is_string(text)) {
        /* Byte-exact: thinking signatures bind the client's exact bytes. */
        ck_assert_uint_eq(out->body_len, json_string_length(text));
        ck_assert_int_eq(memcmp(out->body, json_string_value(text), out->body_len), 0);
    }
    else {
        json_t *body = llmgw_json_pool_own(
            test_pool, json_loadb(out->body, out->body_len, JSON_ALLOW_NUL, NULL));
        test_assert_json_named(body, json_object_get(exp, "body"), v->name);
    }
}

/* The client's bytes: "raw" as is, else the request serialised compactly. */
static const char *raw_of(const test_vector_t *v, apr_size_t *len)
{
    json_t *raw = json_object_get(v->in, "raw");

    if (json_is_string(raw)) {
        *len = json_string_length(raw);
        return json_string_value(raw);
    }
    return llmgw_json_dump(test_pool, request_of(v), len);
}

/* The client's request as the glue parses it. */
static json_t *client_of(const test_vector_t *v)
{
    apr_size_t len;
    const char *raw = raw_of(v, &len);

    return llmgw_json_pool_own(test_pool, json_loadb(raw, len, JSON_ALLOW_NUL, NULL));
}

START_TEST(native_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native", _i);
    llmgw_backend_t *b =
        test_backend(json_object_get(v.in, "backend"), LLMGW_BACKEND_ANTHROPIC, "claude");
    json_t *client = client_of(&v);
    apr_size_t len;
    const char *raw = raw_of(&v, &len);
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    memset(&out, 0, sizeof(out));
    rv = D->native_request(test_pool, b, client, raw, len, test_str_or(v.in, "model", NULL),
                           json_is_true(json_object_get(v.in, "stream")), headers_of(v.in), &out,
                           &err);
    assert_rv(rv, &v, err);
    assert_http_request(&out, &v);
}
END_TEST

/* Only the model's value changes: everything else is the client's bytes. */
START_TEST(native_body_splice_exact)
{
    static const struct {
        const char *raw;
        const char *model;
        const char *want;
    } cases[] = {
        {"{\"model\":\"a\",\"x\":0.1}", "b", "{\"model\":\"b\",\"x\":0.1}"},
        {" { \"max_tokens\" : 5 , \"model\" : \"claude\" } ", "m\"q",
         " { \"max_tokens\" : 5 , \"model\" : \"m\\\"q\" } "},
        {"{\"messages\":[{\"model\":\"inner\"}],\"model\":\"a\"}", "z",
         "{\"messages\":[{\"model\":\"inner\"}],\"model\":\"z\"}"},
        {"{\"model\":\"a\",\"t\":\"}{\\\"model\\\":1\",\"model\":\"a\"}", "q",
         "{\"model\":\"q\",\"t\":\"}{\\\"model\\\":1\",\"model\":\"q\"}"},
        {"{\"max_tokens\":1}", "new", "{\"model\":\"new\",\"max_tokens\":1}"},
        {"{\"model\":\"same\",\"temperature\":0.70}", "same",
         "{\"model\":\"same\",\"temperature\":0.70}"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *client = llmgw_json_pool_own(test_pool, json_loads(cases[i].raw, 0, NULL));
        const char *body;
        apr_size_t len;

        ck_assert_ptr_nonnull(client);
        ck_assert_int_eq(llmgw_msg_native_body(test_pool, client, cases[i].raw,
                                               strlen(cases[i].raw), cases[i].model, &body, &len),
                         APR_SUCCESS);
        ck_assert_uint_eq(len, strlen(cases[i].want));
        ck_assert_int_eq(memcmp(body, cases[i].want, len), 0);
    }
}
END_TEST

/* A key the scanner cannot match (escaped): the object is re-serialised, model replaced. */
START_TEST(native_body_escaped_key)
{
    const char *raw = "{\"mod\\u0065l\":\"a\",\"x\":\"\\u0000y\",\"t\":0.7}";
    json_t *client = llmgw_json_pool_own(test_pool, json_loads(raw, JSON_ALLOW_NUL, NULL));
    json_t *back;
    const char *body;
    apr_size_t len;

    ck_assert_int_eq(llmgw_msg_native_body(test_pool, client, raw, strlen(raw), "b", &body, &len),
                     APR_SUCCESS);
    back = llmgw_json_pool_own(test_pool, json_loadb(body, len, JSON_ALLOW_NUL, NULL));
    ck_assert_str_eq(llmgw_json_str(back, "model"), "b");
    ck_assert_uint_eq(json_string_length(json_object_get(back, "x")), 2);
    ck_assert_ptr_nonnull(strstr(body, "\"t\":0.7"));
    /* The same key twice, once escaped: whichever jansson keeps, it is the new model. */
    raw = "{\"model\":\"a\",\"mod\\u0065l\":\"a\"}";
    client = llmgw_json_pool_own(test_pool, json_loads(raw, 0, NULL));
    ck_assert_int_eq(llmgw_msg_native_body(test_pool, client, raw, strlen(raw), "b", &body, &len),
                     APR_SUCCESS);
    back = llmgw_json_pool_own(test_pool, json_loadb(body, len, 0, NULL));
    ck_assert_str_eq(llmgw_json_str(back, "model"), "b");
}
END_TEST

START_TEST(observe_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "observe", _i);
    json_t *events = json_object_get(v.in, "events"), *ev;
    json_t *kinds = llmgw_json_pool_own(test_pool, json_array());
    json_t *rvs = llmgw_json_pool_own(test_pool, json_array());
    json_t *exp_usage = json_object_get(v.exp, "usage");
    llmgw_usage_t u;
    const char *model = NULL;
    apr_status_t rv = APR_SUCCESS;
    size_t i;

    memset(&u, 0, sizeof(u));
    if (!events) {
        apr_size_t len;
        const char *body = test_upstream_bytes(v.in, &len);

        rv = D->native_observe(test_pool, body, len, &u, &model);
    }
    json_array_foreach (events, i, ev) {
        json_t *data = json_object_get(ev, "data");
        char *text = json_is_string(data) ? NULL : json_dumps(data, JSON_COMPACT);
        const char *name = test_str_or(ev, "event", "");
        llmgw_sse_event_t sse = {name, strlen(name), text ? text : json_string_value(data),
                                 text ? strlen(text) : json_string_length(data), ""};
        llmgw_chunk_kind_e kind = LLMGW_CHUNK_CONTENT;

        rv = D->native_event(test_pool, &sse, &kind, &u, &model);

        free(text);
        json_array_append_new(kinds, json_string(kind_name(kind)));
        json_array_append_new(rvs, json_string(test_rv_name(rv)));
    }
    if (!events)
        assert_rv(rv, &v, NULL);
    if (events) {
        test_assert_json_named(kinds, json_object_get(v.exp, "kinds"), v.name);
        test_assert_json_named(rvs, json_object_get(v.exp, "rvs"), v.name);
    }
    test_assert_json_named(
        llmgw_json_pool_own(test_pool,
                            json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "present", u.present,
                                      "prompt_tokens", (json_int_t)u.prompt_tokens,
                                      "completion_tokens", (json_int_t)u.completion_tokens,
                                      "total_tokens", (json_int_t)u.total_tokens, "cached_tokens",
                                      (json_int_t)u.cached_tokens, "cache_write_tokens",
                                      (json_int_t)u.cache_write_tokens, "reasoning_tokens",
                                      (json_int_t)u.reasoning_tokens)),
        exp_usage, v.name);
    if (json_is_string(json_object_get(v.exp, "model")))
        ck_assert_str_eq(model, json_string_value(json_object_get(v.exp, "model")));
    else
        ck_assert_ptr_null(model);
}
END_TEST

START_TEST(native_error_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native_error", _i);
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v.in, &len);
    int status = (int)json_integer_value(json_object_get(v.in, "status"));
    llmgw_error_t *e = D->native_error(test_pool, status, bytes, len);

    test_assert_error(e, json_object_get(v.exp, "error"), v.name);
    test_assert_not_leaked(llmgw_messages_error_body(test_pool, e, "req_test", NULL),
                           json_object_get(v.in, "must_not_contain"), v.name);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* count_tokens                                                           */
/* ---------------------------------------------------------------------- */

START_TEST(count_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "count", _i);
    llmgw_backend_t *b = test_backend(json_object_get(v.in, "backend"),
                                      type_named(test_str_or(v.in, "type", NULL)), "counter");
    json_t *client = client_of(&v), *before = pristine(client);
    apr_size_t len;
    const char *raw = raw_of(&v, &len);
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    rv = llmgw_messages_count_request(test_pool, b, client, raw, len,
                                      test_str_or(v.in, "model", NULL), headers_of(v.in),
                                      test_str_or(v.in, "access_token", NULL), &out, &err);
    ck_assert_msg(json_equal(client, before), "%s: the client's body was modified", v.name);
    assert_rv(rv, &v, err);
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    assert_http_request(&out, &v);
}
END_TEST

START_TEST(count_parse_answers)
{
    apr_int64_t n = -1;
    llmgw_error_t *err = NULL;
    apr_size_t len;
    const char *body;

    ck_assert_int_eq(llmgw_messages_count_parse(test_pool, LLMGW_BACKEND_ANTHROPIC,
                                                "{\"input_tokens\":2095}", 21, &n, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 2095);
    body = "{\"object\":\"response.input_tokens\",\"input_tokens\":11}";
    ck_assert_int_eq(
        llmgw_messages_count_parse(test_pool, LLMGW_BACKEND_OPENAI, body, strlen(body), &n, &err),
        APR_SUCCESS);
    ck_assert_int_eq(n, 11);
    body = "{\"totalTokens\":31,\"promptTokensDetails\":[]}";
    ck_assert_int_eq(
        llmgw_messages_count_parse(test_pool, LLMGW_BACKEND_GOOGLE, body, strlen(body), &n, &err),
        APR_SUCCESS);
    ck_assert_int_eq(n, 31);
    /* Gemini's key is not OpenAI's: a body without the count is the upstream's fault. */
    ck_assert_int_eq(
        llmgw_messages_count_parse(test_pool, LLMGW_BACKEND_OPENAI, body, strlen(body), &n, &err),
        LLMGW_EUPSTREAM);
    ck_assert_int_eq(err->status, 502);
    ck_assert_int_eq(
        llmgw_messages_count_parse(test_pool, LLMGW_BACKEND_OPENAI, "<html>", 6, &n, &err),
        LLMGW_EUPSTREAM);
    body = llmgw_messages_count_body(test_pool, 2095, &len);
    ck_assert_str_eq(body, "{\"input_tokens\":2095}");
    ck_assert_uint_eq(len, strlen(body));
}
END_TEST

/* System, tools and images count, not only message text (ingress.md 7.7). */
START_TEST(estimate_counts_everything)
{
    json_t *base =
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:[{s:s, s:s}]}", "model", "m", "messages",
                                                 "role", "user", "content", "abcdefgh"));
    json_t *more = llmgw_json_pool_own(test_pool, json_deep_copy(base));
    apr_int64_t a = llmgw_messages_estimate_tokens(base), b;

    ck_assert_int_eq(a, 2); /* 8 bytes / 4 */
    json_object_set_new(more, "system", json_string("0123456789012345"));
    b = llmgw_messages_estimate_tokens(more);
    ck_assert_int_eq(b, 6);
    json_object_set_new(more, "tools",
                        json_pack("[{s:s, s:s, s:{s:s}}]", "name", "get_weather", "description",
                                  "Weather.", "input_schema", "type", "object"));
    ck_assert_int_gt(llmgw_messages_estimate_tokens(more), b + 5);
    b = llmgw_messages_estimate_tokens(more);
    json_array_append_new(json_object_get(more, "messages"),
                          json_pack("{s:s, s:[{s:s, s:{s:s, s:s, s:s}}]}", "role", "user",
                                    "content", "type", "image", "source", "type", "base64",
                                    "media_type", "image/png", "data", "iVBORw0KGgo="));
    ck_assert_int_eq(llmgw_messages_estimate_tokens(more), b + LLMGW_MSG_IMAGE_TOKENS);
    /* Never 0, not even for nothing. */
    ck_assert_int_eq(llmgw_messages_estimate_tokens(NULL), 1);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Models                                                                 */
/* ---------------------------------------------------------------------- */

static apr_array_header_t *ids_of(const char *const *names)
{
    apr_array_header_t *a = apr_array_make(test_pool, 4, sizeof(const char *));

    for (; *names; names++)
        APR_ARRAY_PUSH(a, const char *) = *names;
    return a;
}

static json_t *page_ids(const json_t *page)
{
    json_t *out = llmgw_json_pool_own(test_pool, json_array()), *m;
    size_t i;

    json_array_foreach (json_object_get(page, "data"), i, m)
        json_array_append(out, json_object_get(m, "id"));
    return out;
}

START_TEST(models_listing_shape)
{
    static const char *const names[] = {"claude-sonnet", "gpt-4.1-mini", "llm-pool", NULL};
    json_t *page = llmgw_messages_models_json(test_pool, ids_of(names), 1764000000, 0, NULL, NULL);
    json_t *want = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}], s:b, "
                  "s:s, s:s}",
                  "data", "type", "model", "id", "claude-sonnet", "display_name", "claude-sonnet",
                  "created_at", "2025-11-24T16:00:00Z", "type", "model", "id", "gpt-4.1-mini",
                  "display_name", "gpt-4.1-mini", "created_at", "2025-11-24T16:00:00Z", "type",
                  "model", "id", "llm-pool", "display_name", "llm-pool", "created_at",
                  "2025-11-24T16:00:00Z", "has_more", 0, "first_id", "claude-sonnet", "last_id",
                  "llm-pool"));

    ck_assert_json_eq(page, want);
    ck_assert_json_eq(llmgw_messages_model_json(test_pool, "llm-pool", 1764000000),
                      json_array_get(json_object_get(want, "data"), 2));
}
END_TEST

/* Anthropic's cursor pagination: limit, after_id, before_id, has_more. */
START_TEST(models_listing_pages)
{
    static const char *const names[] = {"a", "b", "c", "d", "e", NULL};
    apr_array_header_t *ids = ids_of(names);
    json_t *page;

    page = llmgw_messages_models_json(test_pool, ids, 0, 2, NULL, NULL);
    ck_assert_json_eq(page_ids(page), llmgw_json_pool_own(test_pool, json_pack("[s,s]", "a", "b")));
    ck_assert(json_is_true(json_object_get(page, "has_more")));
    page = llmgw_messages_models_json(test_pool, ids, 0, 2, "b", NULL);
    ck_assert_json_eq(page_ids(page), llmgw_json_pool_own(test_pool, json_pack("[s,s]", "c", "d")));
    ck_assert(json_is_true(json_object_get(page, "has_more")));
    page = llmgw_messages_models_json(test_pool, ids, 0, 2, "d", NULL);
    ck_assert_json_eq(page_ids(page), llmgw_json_pool_own(test_pool, json_pack("[s]", "e")));
    ck_assert(json_is_false(json_object_get(page, "has_more")));
    ck_assert_str_eq(llmgw_json_str(page, "first_id"), "e");
    page = llmgw_messages_models_json(test_pool, ids, 0, 2, NULL, "d");
    ck_assert_json_eq(page_ids(page), llmgw_json_pool_own(test_pool, json_pack("[s,s]", "b", "c")));
    ck_assert(json_is_true(json_object_get(page, "has_more")));
    page = llmgw_messages_models_json(test_pool, ids, 0, 5, NULL, "b");
    ck_assert_json_eq(page_ids(page), llmgw_json_pool_own(test_pool, json_pack("[s]", "a")));
    ck_assert(json_is_false(json_object_get(page, "has_more")));
    /* An unknown cursor: an empty page, never another model's. */
    page = llmgw_messages_models_json(test_pool, ids, 0, 2, "zz", NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 0);
    ck_assert(json_is_null(json_object_get(page, "first_id")));
    ck_assert(json_is_null(json_object_get(page, "last_id")));
    ck_assert(json_is_false(json_object_get(page, "has_more")));
    /* The default page is Anthropic's 20. */
    {
        apr_array_header_t *many = apr_array_make(test_pool, 30, sizeof(const char *));
        int i;

        for (i = 0; i < 25; i++)
            APR_ARRAY_PUSH(many, const char *) = apr_psprintf(test_pool, "m%02d", i);
        page = llmgw_messages_models_json(test_pool, many, 0, -1, NULL, NULL);
        ck_assert_uint_eq(json_array_size(json_object_get(page, "data")), 20);
        ck_assert(json_is_true(json_object_get(page, "has_more")));
        ck_assert_str_eq(llmgw_json_str(page, "last_id"), "m19");
    }
}
END_TEST

START_TEST(models_ids_from_openai_list)
{
    json_t *list = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:[{s:s, s:s}, {s:s}, {s:s, s:s}]}", "object", "list", "data", "id", "x",
                  "object", "model", "object", "model", "id", "y", "object", "model"));
    apr_array_header_t *ids = llmgw_messages_model_ids(test_pool, list);

    ck_assert_int_eq(ids->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 0, const char *), "x");
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 1, const char *), "y");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Identifiers and the table                                              */
/* ---------------------------------------------------------------------- */

/* ingress.md 2.4: any canonical id survives the trip to the client and back. */
START_TEST(tool_ids_round_trip)
{
    static const char *const ids[] = {"call_Q2k8",
                                      "toolu_01A9",
                                      "__thought__CiQBcsjafQ+/xyz==",
                                      "fc:1.2 with spaces",
                                      "toolu_gwb64_looks_encoded",
                                      "\xc3\xa9t\xc3\xa9",
                                      NULL};
    int i;

    for (i = 0; ids[i]; i++) {
        const char *out = llmgw_msg_tool_id_out(test_pool, ids[i]);
        const char *c;

        for (c = out; *c; c++)
            ck_assert_msg((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                              (*c >= '0' && *c <= '9') || *c == '_' || *c == '-',
                          "%s: '%c' in %s", ids[i], *c, out);
        ck_assert_str_eq(llmgw_msg_tool_id_in(test_pool, out), ids[i]);
    }
    ck_assert_str_eq(llmgw_msg_tool_id_out(test_pool, "call_Q2k8"), "call_Q2k8");
    /* No id at all: one is minted (strict servers reject empty ids). */
    ck_assert_int_eq(strncmp(llmgw_msg_tool_id_out(test_pool, ""), "toolu_gw", 8), 0);
    ck_assert_int_eq(strncmp(llmgw_msg_tool_id_out(test_pool, NULL), "toolu_gw", 8), 0);
    /* What is not a valid encoding stays as the client wrote it. */
    ck_assert_str_eq(llmgw_msg_tool_id_in(test_pool, "toolu_gwb64_A"), "toolu_gwb64_A");
    ck_assert_str_eq(llmgw_msg_tool_id_in(test_pool, "toolu_gwb64_AA"), "toolu_gwb64_AA");
    ck_assert_str_eq(llmgw_msg_tool_id_in(test_pool, "toolu_gwb64_"), "toolu_gwb64_");
}
END_TEST

START_TEST(table_identity)
{
    ck_assert_int_eq(D->dialect, LLMGW_DIALECT_MESSAGES);
    ck_assert_str_eq(D->name, "messages");
    ck_assert_uint_eq(D->native_types, 1u << LLMGW_BACKEND_ANTHROPIC);
    ck_assert_ptr_nonnull(D->decode);
    ck_assert_ptr_nonnull(D->check_backend);
    ck_assert_ptr_nonnull(D->encode_response);
    ck_assert_ptr_nonnull(D->error_json);
    ck_assert_ptr_nonnull(D->error_event);
    ck_assert_ptr_nonnull(D->stream_init);
    ck_assert_ptr_nonnull(D->stream_chunk);
    ck_assert_ptr_nonnull(D->stream_end);
    ck_assert_ptr_nonnull(D->native_request);
    ck_assert_ptr_nonnull(D->native_observe);
    ck_assert_ptr_nonnull(D->native_event);
    ck_assert_ptr_nonnull(D->native_error);
    ck_assert_ptr_nonnull(D->drop_fields);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Suite                                                                  */
/* ---------------------------------------------------------------------- */

int main(void)
{
    Suite *s = suite_create("ingress_messages");
    TCase *tc;

    tc = test_fixture("requests");
    tcase_add_loop_test(tc, decode_vectors, 0, test_vector_count(DIRS, "decode"));
    tcase_add_test(tc, decode_not_an_object);
    tcase_add_loop_test(tc, backend_vectors, 0, test_vector_count(DIRS, "backend"));
    suite_add_tcase(s, tc);

    tc = test_fixture("answers");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIRS, "response"));
    tcase_add_test(tc, response_ids_unique);
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIRS, "stream"));
    tcase_add_test(tc, stream_worked_example_bytes);
    tcase_add_test(tc, stream_emit_failure_propagates);
    tcase_add_test(tc, stream_events_do_not_grow_pool);
    tcase_add_test(tc, error_event_after_content);
    suite_add_tcase(s, tc);

    tc = test_fixture("errors");
    tcase_add_loop_test(tc, error_vectors, 0, test_vector_count(DIRS, "error"));
    tcase_add_test(tc, error_invalid_utf8_message);
    suite_add_tcase(s, tc);

    tc = test_fixture("native");
    tcase_add_loop_test(tc, native_vectors, 0, test_vector_count(DIRS, "native"));
    tcase_add_test(tc, native_body_splice_exact);
    tcase_add_test(tc, native_body_escaped_key);
    tcase_add_loop_test(tc, observe_vectors, 0, test_vector_count(DIRS, "observe"));
    tcase_add_loop_test(tc, native_error_vectors, 0, test_vector_count(DIRS, "native_error"));
    suite_add_tcase(s, tc);

    tc = test_fixture("count_tokens");
    tcase_add_loop_test(tc, count_vectors, 0, test_vector_count(DIRS, "count"));
    tcase_add_test(tc, count_parse_answers);
    tcase_add_test(tc, estimate_counts_everything);
    suite_add_tcase(s, tc);

    tc = test_fixture("models_and_ids");
    tcase_add_test(tc, models_listing_shape);
    tcase_add_test(tc, models_listing_pages);
    tcase_add_test(tc, models_ids_from_openai_list);
    tcase_add_test(tc, tool_ids_round_trip);
    tcase_add_test(tc, table_identity);
    suite_add_tcase(s, tc);

    return test_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
