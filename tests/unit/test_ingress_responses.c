/*
 * The OpenAI Responses ingress dialect (src/ingress/llmgw_ingress_responses*.c,
 * llmgw_responses_store.c), from JSON vectors in data/ingress_responses/<kind>/:
 *
 *   decode          in {"request"}                  expected {"rv"?, "error"} or
 *                                                   {"canonical", "stream", "store", "model",
 *                                                    "previous_response_id",
 *                                                    "max_output_tokens", "needs_history"}
 *   check           in {"request", "type", "drop"?} expected {"error", "dropped"?}
 *                   (and every request passes for openai and azure-openai)
 *   response        in {"request", "completion", "stored"?}  expected {"response"} or
 *                                                            {"rv", "error"}
 *   stream          in {"request", "chunks", "end"?, "error"?, "stored"?}
 *                   expected {"frames": [{"kind", "json"}], "end_rv"?, "done", "final"}
 *   native_request  in {"backend", "type", "request", "raw"?, "model", "stream"?}
 *                   expected {"method", "url", "headers", "body", "raw_forwarded"} or error
 *   native_observe  in {"body" | "raw"}             expected {"rv", "usage", "model"}
 *   native_event    in {"events": [{"event", "data"}]}  expected {"results": [...]}
 *   native_error    in {"status", "body" | "raw"}   expected {"error"}
 *   expand          in {"request", "chain"?, "referenced"?, "backend"?}
 *                   expected {"canonical"?, "native_body"?} or {"error"}
 *   record          in {"request", "input", "response", "owner", "backend", ...}
 *                   expected {"record"} or {"rv"}
 *   input_items     in {"record", "after"?, "limit"?, "order"?}  expected {"page"} or {"error"}
 *
 * Gateway-minted ids are random: answers are compared after each one is
 * replaced by "<prefix>#<n>" (n counting the distinct ids of that prefix in
 * order of appearance), so a vector still says which ids are equal and
 * which differ; completed_at of a stream (the clock at its end) becomes
 * "<now>" once checked to be no earlier than created_at.
 *
 * ingress.md section 8, the Responses items, and what guards them:
 *
 *  1  input string + instructions  decode/string_input_instructions, response/text_only
 *  2  parallel calls grouped        decode/parallel_calls_grouped, test anthropic_turns
 *  3  assistant merges calls;       decode/assistant_text_merges_calls,
 *     [fc A, user X, out A]         decode/output_after_user_moved
 *  4  orphan output; text array;    decode/orphan_output, decode/output_text_array,
 *     image relocated; ""           decode/output_image_relocated, decode/output_empty
 *  5  reasoning items dropped /     decode/reasoning_items_dropped,
 *     forwarded byte-identical      native_request/openai_raw_reasoning_forwarded
 *  6  strict presence; tool_choice; decode/tools_strict_presence, decode/tool_choice_function,
 *     nested form refused           decode/nested_tool_refused, decode/nested_tool_choice_refused
 *  7  built-ins etc. on translated  check/web_search_tool, check/conversation, check/prompt,
 *     backends; forwarded natively  check/truncation_auto, check/image_file_id,
 *                                   decode/background_refused, native_request/openai_web_search
 *  8  text.format, effort,          decode/format_json_schema, decode/format_json_object_effort,
 *     max_output_tokens; store echo response/store_false_echo, stream/store_false_echo
 *  9  length / content_filter       response/length_incomplete, response/content_filter,
 *                                   stream/length_incomplete, stream/content_filter
 * 10  tool_calls completed, id !=   response/tool_calls
 *     call_id
 * 11  usage details                 response/usage_cached_reasoning, response/text_only
 * 12  text stream order; role + ""  stream/text_basic, stream/role_empty_then_tool
 *     then a call: no message item
 * 13  interleaved parallel calls    stream/two_calls_interleaved
 * 14  text then call                stream/text_then_call
 * 15  usage after finish            stream/text_basic, stream/usage_in_finish_chunk
 * 16  failure after commit          stream/error_after_commit, stream/end_without_finish
 * 17  failure before content        stream/end_without_content, stream/error_before_content
 * 18  two turns                     expand/two_turns_tool_output, test two_turns_through_store
 * 19  unknown / foreign id          expand/chain_broken, expand/failed_parent,
 *                                   test record_visibility, test store_errors
 * 20  no store; cancel              test store_errors
 * 21  input_items paging            input_items/ (all), record/ids_minted
 *
 * Beyond the checklist: decode/bad_* (malformed requests), decode/images_and_files,
 * decode/tool_choice_without_tools, stream/reasoning_summary, stream/logprobs,
 * stream/text_call_text (text after a call), native_* (passthrough URLs, headers, usage).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "test_vectors.h"
#include "llmgw_json.h"
#include "llmgw_ingress.h"
#include "llmgw_responses.h"
#include "llmgw_responses_store.h"

static const char *const DIRS[] = {"ingress_responses", NULL};
static const llmgw_ingress_t *const R = &llmgw_ingress_responses;

#define CREATED 1764000000
#define COMPLETED 1764000002

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

/* A seeded xorshift64: reproducible ids. */
static void seeded_random(void *baton, unsigned char *buf, apr_size_t len)
{
    apr_uint64_t *x = baton;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        buf[i] = (unsigned char)(*x >> 32);
    }
}

static apr_uint64_t *new_seed(apr_uint64_t seed)
{
    apr_uint64_t *x = apr_palloc(test_pool, sizeof(*x));
    *x = seed;
    return x;
}

/* Is @p s a minted id ("<prefix>_gw" + 24 or 32 base62)? *plen gets the prefix length. */
static int minted(const char *s, size_t *plen)
{
    const char *gw = strstr(s, "_gw");
    size_t n, i;

    if (!gw || gw == s)
        return 0;
    for (i = 0; s + i < gw; i++) {
        if (s[i] < 'a' || s[i] > 'z')
            return 0;
    }
    n = strlen(gw + 3);
    if (n != LLMGW_RESPONSES_ITEM_ID_CHARS && n != LLMGW_RESPONSES_ID_CHARS)
        return 0;
    for (i = 0; i < n; i++) {
        char c = gw[3 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    *plen = (size_t)(gw - s) + 3;
    return 1;
}

/* Replaces minted ids by "<prefix>#<n>": @p seen maps id -> placeholder. */
typedef struct {
    json_t *seen;   /* id -> placeholder */
    json_t *counts; /* prefix -> count */
} masker_t;

static masker_t *masker_new(void)
{
    masker_t *m = apr_pcalloc(test_pool, sizeof(*m));
    m->seen = llmgw_json_pool_own(test_pool, json_object());
    m->counts = llmgw_json_pool_own(test_pool, json_object());
    return m;
}

static json_t *mask(masker_t *m, const json_t *j)
{
    size_t plen;

    if (json_is_string(j) && minted(json_string_value(j), &plen)) {
        const char *s = json_string_value(j);
        json_t *ph = json_object_get(m->seen, s);
        if (!ph) {
            const char *prefix = apr_pstrmemdup(test_pool, s, plen);
            json_int_t n = json_integer_value(json_object_get(m->counts, prefix)) + 1;
            json_object_set_new(m->counts, prefix, json_integer(n));
            ph = json_string(apr_psprintf(test_pool, "%s#%d", prefix, (int)n));
            json_object_set_new(m->seen, s, ph);
        }
        return json_incref(ph);
    }
    if (json_is_object(j)) {
        json_t *out = json_object(), *v;
        const char *k;
        json_object_foreach ((json_t *)j, k, v)
            json_object_set_new(out, k, mask(m, v));
        return out;
    }
    if (json_is_array(j)) {
        json_t *out = json_array(), *v;
        size_t i;
        json_array_foreach (j, i, v)
            json_array_append_new(out, mask(m, v));
        return out;
    }
    return json_incref((json_t *)j);
}

static json_t *masked(masker_t *m, const json_t *j)
{
    return llmgw_json_pool_own(test_pool, mask(m, j));
}

/* A stream's completed_at is the clock: no earlier than created_at, then "<now>". */
static void mask_clock(json_t *response)
{
    json_t *c = json_object_get(response, "completed_at");

    if (!json_is_integer(c))
        return;
    ck_assert_int_ge(json_integer_value(c),
                     json_integer_value(json_object_get(response, "created_at")));
    json_object_set_new(response, "completed_at", json_string("<now>"));
}

static json_t *member_or_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v ? v : json_null();
}

static json_t *str_or_null(const char *s)
{
    return llmgw_json_pool_own(test_pool, s ? json_string(s) : json_null());
}

static json_t *request_of(const test_vector_t *v)
{
    return test_vector_request(v->in);
}

static llmgw_backend_type_e type_named(const char *name)
{
    int t;

    for (t = 0; t < LLMGW_BACKEND_TYPE_COUNT; t++) {
        if (strcmp(llmgw_backend_type_name((llmgw_backend_type_e)t), name) == 0)
            return (llmgw_backend_type_e)t;
    }
    ck_abort_msg("unknown backend type %s", name);
    return LLMGW_BACKEND_OPENAI;
}

/* ---------------------------------------------------------------------- */
/* decode                                                                 */
/* ---------------------------------------------------------------------- */

START_TEST(decode_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "decode", _i);
    json_t *req = request_of(&v);
    json_t *before = llmgw_json_pool_own(test_pool, json_deep_copy(req));
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv = R->decode(test_pool, req, &out, &err);
    json_t *got;

    ck_assert_msg(json_equal(req, before), "%s: the client's request was modified", v.name);
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "rv", "success")) == 0,
                  "%s: rv %s (%s)", v.name, test_rv_name(rv), err ? err->message : "-");
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    got = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:O, s:b, s:b, s:O, s:O, s:I, s:b}", "canonical",
                  out.canonical ? out.canonical : json_null(), "stream", out.stream, "store",
                  out.store, "model", str_or_null(out.model), "previous_response_id",
                  str_or_null(out.previous_response_id), "max_output_tokens",
                  (json_int_t)out.max_output_tokens, "needs_history", out.needs_history));
    test_assert_json_named(got, v.exp, v.name);
}
END_TEST

/* The whole decoded conversation through the Anthropic translator (checklist 2). */
START_TEST(anthropic_turns)
{
    test_vector_t v = test_vector_named("ingress_responses", "decode", "parallel_calls_grouped");
    json_t *body, *msgs;
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    llmgw_http_request_t http;
    llmgw_backend_t *be = test_backend(NULL, LLMGW_BACKEND_ANTHROPIC, "claude");
    llmgw_call_t *call;

    ck_assert_int_eq(R->decode(test_pool, request_of(&v), &out, &err), APR_SUCCESS);
    call = test_call(NULL, out.canonical, be, "claude-sonnet-4-6");
    ck_assert_int_eq(llmgw_provider_anthropic.build_request(call, &http, &err), APR_SUCCESS);
    body = llmgw_json_pool_own(test_pool, test_parse_json(http.body, http.body_len));
    msgs = json_object_get(body, "messages");
    /* user, one assistant turn with both tool_use blocks, one user turn with both results */
    ck_assert_uint_eq(json_array_size(msgs), 3);
    ck_assert_str_eq(llmgw_json_str(json_array_get(msgs, 1), "role"), "assistant");
    ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(msgs, 1), "content")), 2);
    ck_assert_str_eq(llmgw_json_str(json_array_get(msgs, 2), "role"), "user");
    ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(msgs, 2), "content")), 2);
    ck_assert_str_eq(
        llmgw_json_str(json_array_get(json_object_get(json_array_get(msgs, 2), "content"), 0),
                       "tool_use_id"),
        "call_A");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* check_backend                                                          */
/* ---------------------------------------------------------------------- */

START_TEST(check_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "check", _i);
    json_t *req = request_of(&v);
    llmgw_backend_type_e type = type_named(test_str_or(v.in, "type", "mistral"));
    int drop = json_is_true(json_object_get(v.in, "drop"));
    apr_array_header_t *dropped = apr_array_make(test_pool, 2, sizeof(const char *));
    json_t *want_dropped = json_object_get(v.exp, "dropped");
    llmgw_error_t *e;

    e = R->check_backend(test_pool, req, type, drop, dropped);
    ck_assert_json_eq(test_error_json(e), member_or_null(v.exp, "error"));
    ck_assert_json_eq(test_sorted_lines((const char **)dropped->elts, dropped->nelts),
                      test_sorted_json_lines(want_dropped
                                                 ? want_dropped
                                                 : llmgw_json_pool_own(test_pool, json_array())));
    /* What decode accepts, a native backend takes as it is. */
    ck_assert_ptr_null(R->check_backend(test_pool, req, LLMGW_BACKEND_OPENAI, 0, dropped));
    ck_assert_ptr_null(R->check_backend(test_pool, req, LLMGW_BACKEND_AZURE_OPENAI, 0, dropped));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Non-streaming answers                                                  */
/* ---------------------------------------------------------------------- */

/* The request as the glue passes it for echoes: `store` as the gateway will do it. */
static json_t *echo_client(const test_vector_t *v)
{
    json_t *stored = json_object_get(v->in, "stored");
    json_t *req = request_of(v);

    if (json_is_boolean(stored))
        return llmgw_responses_echo_request(test_pool, req, json_is_true(stored));
    return req;
}

START_TEST(response_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "response", _i);
    llmgw_responses_opts_t opts = {NULL, COMPLETED, seeded_random, new_seed(7)};
    json_t *out = NULL;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    rv = llmgw_responses_encode(test_pool, &opts, echo_client(&v),
                                json_object_get(v.in, "completion"), CREATED, &out, &err);
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "rv", "success")) == 0, "%s: rv %s",
                  v.name, test_rv_name(rv));
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    test_assert_json_named(masked(masker_new(), out), json_object_get(v.exp, "response"), v.name);
}
END_TEST

/* Through the table: default opts mint the id and read the clock. */
START_TEST(encode_through_table)
{
    test_vector_t v = test_vector_named("ingress_responses", "response", "text_only");
    json_t *out = NULL;
    llmgw_error_t *err = NULL;
    size_t plen;
    const char *id;
    apr_time_t now = apr_time_sec(apr_time_now());

    ck_assert_int_eq(R->encode_response(test_pool, request_of(&v),
                                        json_object_get(v.in, "completion"), now, &out, &err),
                     APR_SUCCESS);
    id = llmgw_json_str(out, "id");
    ck_assert(minted(id, &plen));
    ck_assert_uint_eq(strlen(id), strlen("resp_gw") + LLMGW_RESPONSES_ID_CHARS);
    ck_assert_int_ge(json_integer_value(json_object_get(out, "completed_at")), now);
    /* No answer at all: a 502, never a crash. */
    ck_assert_int_eq(R->encode_response(test_pool, request_of(&v), NULL, now, &out, &err),
                     LLMGW_EUPSTREAM);
    ck_assert_int_eq(err->status, 502);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    json_t *frames;
    masker_t *m;
    llmgw_ingress_stream_t *st;
    int calls;
    int fail_at;             /* 1-based emit call that fails, 0 = never */
    int final_seen_response; /* the final response was available in the FINAL emit */
} recorder_t;

static const char *kind_name(llmgw_chunk_kind_e kind)
{
    return kind == LLMGW_CHUNK_PREAMBLE  ? "preamble"
           : kind == LLMGW_CHUNK_CONTENT ? "content"
                                         : "final";
}

/*
 * One frame: "event: <type>\ndata: <json>\n\n", the JSON on one line with
 * the same type; recorded as {"kind", "json"} with ids and the clock masked.
 */
static json_t *parse_frame(recorder_t *r, const char *kind, const char *data, apr_size_t len,
                           apr_size_t *used)
{
    const char *nl, *dl, *end;
    const char *type;
    json_t *j, *shown;

    ck_assert_msg(len > 8 && memcmp(data, "event: ", 7) == 0, "frame without event: line");
    nl = memchr(data, '\n', len);
    ck_assert_ptr_nonnull(nl);
    dl = nl + 1;
    ck_assert_msg(memcmp(dl, "data: ", 6) == 0, "frame without data: line");
    end = memchr(dl, '\n', len - (apr_size_t)(dl - data));
    ck_assert_ptr_nonnull(end);
    ck_assert_msg(end + 1 < data + len && end[1] == '\n', "frame not closed by a blank line");
    j = test_parse_json(dl + 6, (apr_size_t)(end - dl - 6));
    type = llmgw_json_str(j, "type");
    ck_assert_ptr_nonnull(type);
    ck_assert_msg((apr_size_t)(nl - data - 7) == strlen(type) &&
                      memcmp(data + 7, type, strlen(type)) == 0,
                  "event name differs from the JSON type %s", type);
    mask_clock(json_object_get(j, "response"));
    shown = mask(r->m, j);
    json_decref(j);
    *used = (apr_size_t)(end + 2 - data);
    return json_pack("{s:s, s:o}", "kind", kind, "json", shown);
}

static apr_status_t record_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                const char *data, apr_size_t len)
{
    recorder_t *r = baton;
    apr_size_t used;

    ck_assert_ptr_null(chunk); /* ingress frames carry no chat chunk */
    if (++r->calls == r->fail_at)
        return LLMGW_ECLIENTGONE;
    if (kind == LLMGW_CHUNK_FINAL)
        r->final_seen_response = llmgw_responses_stream_response(r->st) != NULL;
    json_array_append_new(r->frames, parse_frame(r, kind_name(kind), data, len, &used));
    ck_assert_uint_eq(used, len);
    return APR_SUCCESS;
}

/* The frames error_event returned, recorded like emitted ones (kind "returned"). */
static void record_returned(recorder_t *r, const char *data, apr_size_t len)
{
    apr_size_t used;

    while (len > 0) {
        json_array_append_new(r->frames, parse_frame(r, "returned", data, len, &used));
        data += used;
        len -= used;
    }
}

static llmgw_ingress_stream_t *new_stream(const json_t *client, recorder_t *r, apr_uint64_t seed)
{
    llmgw_ingress_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    r->frames = llmgw_json_pool_own(test_pool, json_array());
    r->m = masker_new();
    r->st = st;
    st->pool = test_pool;
    st->client = client;
    st->emit = record_emit;
    st->baton = r;
    st->created = CREATED;
    st->random = seeded_random;
    st->random_baton = new_seed(seed);
    ck_assert_int_eq(R->stream_init(st), APR_SUCCESS);
    return st;
}

static llmgw_error_t *error_from(const json_t *e)
{
    return llmgw_error_make(test_pool, (int)json_integer_value(json_object_get(e, "status")),
                            test_str_or(e, "type", NULL), test_str_or(e, "code", NULL),
                            test_str_or(e, "param", NULL), "%s",
                            test_str_or(e, "message", "failed"));
}

/* Frame by frame, so that a difference names the frame and fits in Check's message. */
static void assert_frames(const json_t *got, const json_t *exp, const char *name)
{
    size_t i, n = json_array_size(got) < json_array_size(exp) ? json_array_size(got)
                                                              : json_array_size(exp);

    for (i = 0; i < n; i++)
        test_assert_json_named(json_array_get(got, i), json_array_get(exp, i),
                               apr_psprintf(test_pool, "%s, frame %" APR_SIZE_T_FMT, name, i));
    ck_assert_msg(json_array_size(got) == json_array_size(exp), "%s: %zu frames, expected %zu",
                  name, json_array_size(got), json_array_size(exp));
}

START_TEST(stream_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "stream", _i);
    recorder_t r = {0};
    llmgw_ingress_stream_t *st = new_stream(echo_client(&v), &r, 11);
    json_t *chunk, *e = json_object_get(v.in, "error");
    apr_status_t rv = APR_SUCCESS;
    const json_t *final;
    size_t i;

    json_array_foreach (json_object_get(v.in, "chunks"), i, chunk) {
        rv = R->stream_chunk(st, chunk);
        ck_assert_msg(rv == APR_SUCCESS, "%s: chunk %zu: %d", v.name, i, rv);
    }
    if (json_is_true(json_object_get(v.in, "end"))) {
        rv = R->stream_end(st);
        ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "end_rv", "success")) == 0,
                      "%s: stream_end %s", v.name, test_rv_name(rv));
    }
    if (e) {
        apr_size_t len;
        const char *frames = R->error_event(st, error_from(e), &len);
        record_returned(&r, frames, len);
    }
    assert_frames(r.frames, json_object_get(v.exp, "frames"), v.name);
    ck_assert_int_eq(st->done, json_is_true(json_object_get(v.exp, "done")));
    /* The store record is written from the final object, before the terminal event. */
    final = llmgw_responses_stream_response(st);
    if (st->done) {
        json_t *last = json_object_get(
            json_object_get(json_array_get(r.frames, json_array_size(r.frames) - 1), "json"),
            "response");
        json_t *f = masked(r.m, final);
        mask_clock(f);
        ck_assert_json_eq(f, last);
        if (!e)
            ck_assert_int_eq(r.final_seen_response, 1);
    }
    else {
        ck_assert_ptr_null(final);
    }
}
END_TEST

/* A new attempt (the glue fell over before content) starts the numbering afresh. */
START_TEST(stream_reinit_restarts)
{
    json_t *req = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s, s:b}", "model", "m", "input", "Hi", "stream", 1));
    json_t *chunk =
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:[{s:i, s:{s:s}}]}", "model", "m",
                                                 "choices", "index", 0, "delta", "content", "Hi"));
    recorder_t r = {0};
    llmgw_ingress_stream_t *st = new_stream(req, &r, 3);
    const char *id = st->id;

    ck_assert_int_eq(R->stream_chunk(st, chunk), APR_SUCCESS);
    ck_assert_uint_eq(json_array_size(r.frames), 5);
    ck_assert_int_eq(R->stream_init(st), APR_SUCCESS);
    ck_assert_str_eq(st->id, id); /* the id the client may already hold */
    json_array_clear(r.frames);
    ck_assert_int_eq(R->stream_chunk(st, chunk), APR_SUCCESS);
    ck_assert_uint_eq(json_array_size(r.frames), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_array_get(r.frames, 0), "json"), "sequence_number")),
                     0);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_array_get(r.frames, 2), "json"), "output_index")),
                     0);
}
END_TEST

/* The client left: the emit failure comes back, and nothing is counted as done. */
START_TEST(stream_emit_failure)
{
    json_t *req =
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:s}", "model", "m", "input", "Hi"));
    json_t *text = llmgw_json_pool_own(test_pool, json_pack("{s:[{s:i, s:{s:s}}]}", "choices",
                                                            "index", 0, "delta", "content", "Hi"));
    json_t *stop =
        llmgw_json_pool_own(test_pool, json_pack("{s:[{s:i, s:{}, s:s}]}", "choices", "index", 0,
                                                 "delta", "finish_reason", "stop"));
    recorder_t r = {0};
    llmgw_ingress_stream_t *st;

    st = new_stream(req, &r, 5);
    r.fail_at = 3; /* output_item.added */
    ck_assert_int_eq(R->stream_chunk(st, text), LLMGW_ECLIENTGONE);
    st = new_stream(req, &r, 5);
    ck_assert_int_eq(R->stream_chunk(st, text), APR_SUCCESS);
    ck_assert_int_eq(R->stream_chunk(st, stop), APR_SUCCESS);
    r.fail_at = r.calls + 1; /* the terminal event */
    ck_assert_int_eq(R->stream_end(st), LLMGW_ECLIENTGONE);
    ck_assert_int_eq(st->done, 0);
}
END_TEST

/* error_event without a prepared stream still answers a well-formed failure; after the end,
 * nothing. */
START_TEST(stream_error_edges)
{
    json_t *req =
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:s}", "model", "m", "input", "Hi"));
    llmgw_ingress_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));
    recorder_t r = {0};
    llmgw_error_t *e = llmgw_error_make(test_pool, 429, NULL, "rate_limit_exceeded", NULL, "slow");
    const char *frames;
    apr_size_t len;

    r.frames = llmgw_json_pool_own(test_pool, json_array());
    r.m = masker_new();
    st->pool = test_pool;
    st->client = req;
    st->emit = record_emit;
    st->baton = &r;
    r.st = st;
    frames = R->error_event(st, e, &len);
    record_returned(&r, frames, len);
    ck_assert_uint_eq(json_array_size(r.frames), 4); /* created, in_progress, error, failed */
    ck_assert_str_eq(llmgw_json_str(json_object_get(json_array_get(r.frames, 2), "json"), "code"),
                     "rate_limit_exceeded");
    ck_assert_int_eq(st->done, 1);
    frames = R->error_event(st, e, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(R->stream_end(st), APR_SUCCESS);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Native passthrough                                                     */
/* ---------------------------------------------------------------------- */

START_TEST(native_request_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native_request", _i);
    json_t *req = request_of(&v);
    llmgw_backend_type_e type = type_named(test_str_or(v.in, "type", "openai"));
    llmgw_backend_t *be = test_backend(json_object_get(v.in, "backend"), type, "native");
    char *raw = json_is_true(json_object_get(v.in, "raw")) ? json_dumps(req, JSON_COMPACT) : NULL;
    const char *raw_copy = raw ? apr_pstrdup(test_pool, raw) : NULL;
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;
    json_t *body;

    free(raw);
    memset(&out, 0, sizeof(out));
    rv = R->native_request(test_pool, be, req, raw_copy, raw_copy ? strlen(raw_copy) : 0,
                           test_str_or(v.in, "model", NULL),
                           json_is_true(json_object_get(v.in, "stream")), NULL, &out, &err);
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "rv", "success")) == 0,
                  "%s: rv %s (%s)", v.name, test_rv_name(rv), err ? err->message : "-");
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    ck_assert_str_eq(out.method, "POST");
    ck_assert_str_eq(out.url, test_str_or(v.exp, "url", ""));
    ck_assert_int_eq(out.stream, json_is_true(json_object_get(v.in, "stream")));
    ck_assert_json_eq(test_sorted_lines((const char **)out.headers->elts, out.headers->nelts),
                      test_sorted_json_lines(json_object_get(v.exp, "headers")));
    ck_assert_int_eq(raw_copy && out.body == raw_copy,
                     json_is_true(json_object_get(v.exp, "raw_forwarded")));
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    test_assert_json_named(body, json_object_get(v.exp, "body"), v.name);
}
END_TEST

static json_t *usage_json(const llmgw_usage_t *u)
{
    return llmgw_json_pool_own(test_pool,
                               json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}", "present", u->present,
                                         "prompt_tokens", (json_int_t)u->prompt_tokens,
                                         "completion_tokens", (json_int_t)u->completion_tokens,
                                         "total_tokens", (json_int_t)u->total_tokens,
                                         "cached_tokens", (json_int_t)u->cached_tokens,
                                         "reasoning_tokens", (json_int_t)u->reasoning_tokens));
}

START_TEST(native_observe_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native_observe", _i);
    llmgw_usage_t u;
    const char *model = NULL;
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v.in, &len);
    apr_status_t rv;

    memset(&u, 0, sizeof(u));
    rv = R->native_observe(test_pool, bytes, len, &u, &model);
    test_assert_json_named(
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:O, s:O}", "rv", test_rv_name(rv), "usage",
                                                 usage_json(&u), "model", str_or_null(model))),
        v.exp, v.name);
}
END_TEST

START_TEST(native_event_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native_event", _i);
    json_t *results = llmgw_json_pool_own(test_pool, json_array()), *item;
    llmgw_usage_t u;
    size_t i;

    memset(&u, 0, sizeof(u));
    json_array_foreach (json_object_get(v.in, "events"), i, item) {
        json_t *data = json_object_get(item, "data");
        char *text = json_is_string(data) ? NULL : json_dumps(data, JSON_COMPACT);
        const char *name = test_str_or(item, "event", "");
        llmgw_sse_event_t ev = {name, strlen(name), text ? text : json_string_value(data),
                                text ? strlen(text) : json_string_length(data), ""};
        llmgw_chunk_kind_e kind = LLMGW_CHUNK_CONTENT;
        const char *model = NULL;
        apr_status_t rv = R->native_event(test_pool, &ev, &kind, &u, &model);
        json_t *terminal = llmgw_responses_native_terminal(test_pool, &ev);
        free(text);
        json_array_append_new(results, json_pack("{s:s, s:s, s:O, s:b}", "rv", test_rv_name(rv),
                                                 "kind", kind_name(kind), "model",
                                                 str_or_null(model), "terminal", terminal != NULL));
    }
    test_assert_json_named(results, json_object_get(v.exp, "results"), v.name);
    ck_assert_json_eq(usage_json(&u), json_object_get(v.exp, "usage"));
}
END_TEST

START_TEST(native_error_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "native_error", _i);
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v.in, &len);
    llmgw_error_t *e = R->native_error(
        test_pool, (int)json_integer_value(json_object_get(v.in, "status")), bytes, len);

    test_assert_error(e, json_object_get(v.exp, "error"), v.name);
    test_assert_not_leaked(R->error_json(test_pool, e, NULL),
                           json_object_get(v.in, "must_not_contain"), v.name);
}
END_TEST

START_TEST(native_resource_requests)
{
    llmgw_backend_t *oa = test_backend(NULL, LLMGW_BACKEND_OPENAI, "oa");
    json_t *az_cfg = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s, s:s, s:s}", "apiKey", "az-key", "endpoint",
                             "https://contoso.openai.azure.com", "deploymentName", "gpt4o",
                             "apiVersion", "2024-10-21"));
    llmgw_backend_t *az = test_backend(az_cfg, LLMGW_BACKEND_AZURE_OPENAI, "az");
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;

    oa->api_key = "sk-test";
    ck_assert_int_eq(llmgw_responses_native_resource(test_pool, oa, "GET", "resp_1/x", NULL,
                                                     "include=a", &out, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(out.url, "https://api.openai.com/v1/responses/resp_1%2fx?include=a");
    ck_assert_ptr_null(out.body);
    ck_assert_int_eq(llmgw_responses_native_resource(test_pool, az, "DELETE", "resp_1",
                                                     "input_items", "limit=2", &out, &err),
                     APR_SUCCESS);
    /* An api-version older than Responses: the default one. */
    ck_assert_str_eq(out.url, "https://contoso.openai.azure.com/openai/responses/resp_1/"
                              "input_items?api-version=2025-04-01-preview&limit=2");
    ck_assert_str_eq(out.method, "DELETE");
    ck_assert_str_eq(APR_ARRAY_IDX(out.headers, 0, const char *), "api-key: az-key");
    ck_assert_int_eq(
        llmgw_responses_native_resource(test_pool, oa, "GET", "r", NULL, "a=b\r\nX: y", &out, &err),
        LLMGW_EBADREQ);
    ck_assert_int_eq(
        llmgw_responses_native_resource(test_pool, oa, "POST", "r", NULL, NULL, &out, &err),
        LLMGW_EBADREQ);
    ck_assert_int_eq(
        llmgw_responses_native_resource(test_pool, test_backend(NULL, LLMGW_BACKEND_MISTRAL, "mi"),
                                        "GET", "r", NULL, NULL, &out, &err),
        LLMGW_EUNSUPPORTED);
    ck_assert_int_eq(err->status, 500);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Store                                                                  */
/* ---------------------------------------------------------------------- */

START_TEST(expand_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "expand", _i);
    json_t *req = request_of(&v), *chain = json_object_get(v.in, "chain");
    json_t *input = NULL, *history = NULL;
    const char *prev = llmgw_json_str(req, "previous_response_id");
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    ck_assert_int_eq(R->decode(test_pool, req, &out, &err), APR_SUCCESS);
    ck_assert_int_eq(out.needs_history, 1);
    ck_assert_ptr_null(out.canonical);
    ck_assert_json_eq(llmgw_responses_referenced_ids(test_pool, req),
                      json_object_get(v.in, "referenced_ids"));
    rv = llmgw_responses_resolve_input(test_pool, req, json_object_get(v.in, "referenced"), &input,
                                       &err);
    if (rv == APR_SUCCESS && prev)
        rv = llmgw_responses_history(test_pool, chain, prev, &history, &err);
    if (rv == APR_SUCCESS)
        rv = llmgw_responses_expand(test_pool, req, history, input, &out, &err);
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "rv", "success")) == 0,
                  "%s: rv %s (%s)", v.name, test_rv_name(rv), err ? err->message : "-");
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    test_assert_json_named(out.canonical, json_object_get(v.exp, "canonical"), v.name);
    ck_assert_int_eq(out.needs_history, 0);
    if (json_object_get(v.exp, "native_body"))
        test_assert_json_named(llmgw_responses_native_body(test_pool, req, chain, input,
                                                           test_str_or(v.in, "backend", "oa")),
                               json_object_get(v.exp, "native_body"), v.name);
}
END_TEST

START_TEST(record_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "record", _i);
    llmgw_responses_record_in_t in;
    json_t *record = NULL;
    apr_status_t rv;

    memset(&in, 0, sizeof(in));
    in.client = request_of(&v);
    in.input = json_object_get(v.in, "input");
    in.response = json_object_get(v.in, "response");
    in.owner = test_str_or(v.in, "owner", NULL);
    in.backend = test_str_or(v.in, "backend", "b");
    in.native_stored = json_is_true(json_object_get(v.in, "native_stored"));
    in.ttl = apr_time_from_sec(3600);
    in.random = seeded_random;
    in.random_baton = new_seed(13);
    rv = llmgw_responses_record(test_pool, &in, &record);
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(v.exp, "rv", "success")) == 0, "%s: rv %s",
                  v.name, test_rv_name(rv));
    if (rv == APR_SUCCESS)
        test_assert_json_named(masked(masker_new(), record), json_object_get(v.exp, "record"),
                               v.name);
}
END_TEST

START_TEST(input_items_vectors)
{
    test_vector_t v = test_vector_at(DIRS, "input_items", _i);
    json_t *page = NULL;
    llmgw_error_t *err = NULL;
    apr_status_t rv = llmgw_responses_input_items(
        test_pool, json_object_get(v.in, "record"), test_str_or(v.in, "after", NULL),
        test_str_or(v.in, "limit", NULL), test_str_or(v.in, "order", NULL), &page, &err);

    if (json_object_get(v.exp, "error")) {
        ck_assert_int_eq(rv, LLMGW_EBADREQ);
        test_assert_error(err, json_object_get(v.exp, "error"), v.name);
        return;
    }
    ck_assert_int_eq(rv, APR_SUCCESS);
    test_assert_json_named(page, json_object_get(v.exp, "page"), v.name);
}
END_TEST

/* Checklist 18 end to end: turn 1 answered and recorded, turn 2 expanded from the record. */
START_TEST(two_turns_through_store)
{
    json_t *turn1 = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:{s:s, s:{s:{s:s}}}}]}", "model", "m",
                             "instructions", "Be brief.", "input", "Weather in Lisbon?", "tools",
                             "type", "function", "name", "get_weather", "parameters", "type",
                             "object", "properties", "city", "type", "string"));
    json_t *completion = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:[{s:i, s:{s:s, s:n, s:[{s:s, s:s, s:{s:s, s:s}}]}, s:s}]}",
                             "model", "m-1", "choices", "index", 0, "message", "role", "assistant",
                             "content", "tool_calls", "id", "call_7", "type", "function",
                             "function", "name", "get_weather", "arguments",
                             "{\"city\":\"Lisbon\"}", "finish_reason", "tool_calls"));
    json_t *resp1, *input1, *rec1, *turn2, *input2, *history, *chain, *msgs;
    llmgw_responses_opts_t opts = {NULL, COMPLETED, seeded_random, new_seed(21)};
    llmgw_responses_record_in_t in;
    llmgw_ingress_request_t out;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(R->decode(test_pool, turn1, &out, &err), APR_SUCCESS);
    ck_assert_int_eq(
        llmgw_responses_encode(test_pool, &opts, turn1, completion, CREATED, &resp1, &err),
        APR_SUCCESS);
    ck_assert_int_eq(llmgw_responses_resolve_input(test_pool, turn1, NULL, &input1, &err),
                     APR_SUCCESS);
    memset(&in, 0, sizeof(in));
    in.client = turn1;
    in.input = input1;
    in.response = resp1;
    in.owner = "key-1";
    in.backend = "claude";
    ck_assert_int_eq(llmgw_responses_record(test_pool, &in, &rec1), APR_SUCCESS);

    turn2 = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s, s:[{s:s, s:s, s:s}]}", "model", "m",
                             "previous_response_id", llmgw_json_str(resp1, "id"), "input", "type",
                             "function_call_output", "call_id", "call_7", "output", "18C"));
    ck_assert_int_eq(R->decode(test_pool, turn2, &out, &err), APR_SUCCESS);
    ck_assert_int_eq(out.needs_history, 1);
    chain = llmgw_json_pool_own(test_pool, json_pack("[O]", rec1));
    ck_assert_int_eq(llmgw_responses_resolve_input(test_pool, turn2, NULL, &input2, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(
        llmgw_responses_history(test_pool, chain, llmgw_json_str(resp1, "id"), &history, &err),
        APR_SUCCESS);
    ck_assert_int_eq(llmgw_responses_expand(test_pool, turn2, history, input2, &out, &err),
                     APR_SUCCESS);
    msgs = json_object_get(out.canonical, "messages");
    /* turn-1 input, turn-1 output, the new output; turn-1 instructions absent */
    ck_assert_json_eq(
        msgs,
        llmgw_json_pool_own(test_pool,
                            json_pack("[{s:s, s:[{s:s, s:s}]}, {s:s, s:n, s:[{s:s, s:s, "
                                      "s:{s:s, s:s}}]}, {s:s, s:s, s:s}]",
                                      "role", "user", "content", "type", "text", "text",
                                      "Weather in Lisbon?", "role", "assistant", "content",
                                      "tool_calls", "id", "call_7", "type", "function", "function",
                                      "name", "get_weather", "arguments", "{\"city\":\"Lisbon\"}",
                                      "role", "tool", "tool_call_id", "call_7", "content", "18C")));
    ck_assert_str_eq(llmgw_json_str(out.canonical, "model"), "m");
    ck_assert_ptr_null(json_object_get(out.canonical, "tools"));
    /* The echo keeps the client's previous_response_id (5.4 step 4). */
    ck_assert_str_eq(out.previous_response_id, llmgw_json_str(resp1, "id"));
}
END_TEST

START_TEST(record_visibility)
{
    json_t *rec =
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:s, s:I}", "id", "resp_1", "owner",
                                                 "key-1", "expires_at", (json_int_t)2000));

    ck_assert_int_eq(llmgw_responses_record_visible(rec, "key-1", 1999), 1);
    ck_assert_int_eq(llmgw_responses_record_visible(rec, "key-1", 2000), 0); /* expired */
    ck_assert_int_eq(llmgw_responses_record_visible(rec, "key-2", 1000), 0); /* foreign */
    ck_assert_int_eq(llmgw_responses_record_visible(rec, NULL, 1000), 0);
    json_object_set_new(rec, "owner", json_string(""));
    ck_assert_int_eq(llmgw_responses_record_visible(rec, NULL, 1000), 1); /* an open gateway */
}
END_TEST

START_TEST(store_errors)
{
    json_t *prev = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s}", "previous_response_id", "resp_9", "input", "x"));
    json_t *ref = llmgw_json_pool_own(test_pool, json_pack("{s:[{s:s, s:s}, {s:s, s:s}]}", "input",
                                                           "role", "user", "content", "x", "type",
                                                           "item_reference", "id", "msg_1"));
    json_t *rec = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:{s:s}}", "id", "resp_1", "response", "id", "resp_1"));
    const json_t *body;
    llmgw_error_t *e;

    e = llmgw_responses_error_previous_not_found(test_pool, "resp_9");
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "previous_response_not_found");
    ck_assert_str_eq(e->param, "previous_response_id");
    ck_assert_str_eq(e->message, "Previous response with id 'resp_9' not found.");
    e = llmgw_responses_error_store_disabled(test_pool, prev);
    ck_assert_str_eq(e->code, "response_store_disabled");
    ck_assert_str_eq(e->param, "previous_response_id");
    e = llmgw_responses_error_store_disabled(test_pool, ref);
    ck_assert_str_eq(e->param, "input[1]");
    e = llmgw_responses_error_store_disabled_endpoint(test_pool);
    ck_assert_int_eq(e->status, 400);
    e = llmgw_responses_error_cancel(test_pool);
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "background_not_supported");
    ck_assert_ptr_null(e->param);
    ck_assert_str_eq(e->message, "Cancelling is only possible for background responses, which "
                                 "this gateway does not support.");
    e = llmgw_responses_error_not_found(test_pool, "resp_1");
    ck_assert_int_eq(e->status, 404);
    ck_assert_str_eq(e->code, "not_found");
    ck_assert_json_eq(
        llmgw_responses_deleted(test_pool, "resp_1"),
        llmgw_json_pool_own(test_pool, json_pack("{s:s, s:s, s:b}", "id", "resp_1", "object",
                                                 "response", "deleted", 1)));
    ck_assert_int_eq(llmgw_responses_retrieve(test_pool, rec, NULL, NULL, &body, &e), APR_SUCCESS);
    ck_assert_str_eq(llmgw_json_str(body, "id"), "resp_1");
    ck_assert_int_eq(llmgw_responses_retrieve(test_pool, rec, "true", NULL, &body, &e),
                     LLMGW_EBADREQ);
    ck_assert_str_eq(e->code, "background_not_supported");
    ck_assert_int_eq(llmgw_responses_retrieve(test_pool, rec, "false", "3", &body, &e),
                     LLMGW_EBADREQ);
    ck_assert_str_eq(e->param, "starting_after");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The table and ids                                                      */
/* ---------------------------------------------------------------------- */

START_TEST(table_complete)
{
    ck_assert_int_eq(R->dialect, LLMGW_DIALECT_RESPONSES);
    ck_assert_str_eq(R->name, "responses");
    ck_assert_uint_eq(R->native_types,
                      (1u << LLMGW_BACKEND_OPENAI) | (1u << LLMGW_BACKEND_AZURE_OPENAI));
    ck_assert_ptr_nonnull(R->decode);
    ck_assert_ptr_nonnull(R->check_backend);
    ck_assert_ptr_nonnull(R->encode_response);
    ck_assert_ptr_nonnull(R->error_json);
    ck_assert_ptr_nonnull(R->error_event);
    ck_assert_ptr_nonnull(R->stream_init);
    ck_assert_ptr_nonnull(R->stream_chunk);
    ck_assert_ptr_nonnull(R->stream_end);
    ck_assert_ptr_nonnull(R->native_request);
    ck_assert_ptr_nonnull(R->native_observe);
    ck_assert_ptr_nonnull(R->native_event);
    ck_assert_ptr_nonnull(R->native_error);
}
END_TEST

START_TEST(minted_ids)
{
    json_t *seen = llmgw_json_pool_own(test_pool, json_object());
    const char *a, *b;
    size_t plen;
    int i;

    a = llmgw_responses_mint_id(test_pool, "msg_gw", 24, seeded_random, new_seed(99));
    b = llmgw_responses_mint_id(test_pool, "msg_gw", 24, seeded_random, new_seed(99));
    ck_assert_str_eq(a, b); /* the same seed, the same id */
    ck_assert(minted(a, &plen));
    ck_assert_uint_eq(plen, strlen("msg_gw"));
    for (i = 0; i < 500; i++) {
        const char *id = llmgw_responses_mint_id(test_pool, "resp_gw", 32, NULL, NULL);
        ck_assert(minted(id, &plen));
        ck_assert_msg(!json_object_get(seen, id), "id %s minted twice", id);
        json_object_set_new(seen, id, json_true());
    }
    /* Every base62 character turns up: the mapping is not lopsided. */
    {
        int hit[128] = {0}, n = 0;
        a = llmgw_responses_mint_id(test_pool, "x_gw", 64, seeded_random, new_seed(1));
        for (i = 0; i < 200; i++) {
            const char *s = llmgw_responses_mint_id(test_pool, "x_gw", 64, NULL, NULL) + 4;
            for (; *s; s++)
                hit[(int)*s] = 1;
        }
        for (i = 0; i < 128; i++)
            n += hit[i];
        ck_assert_int_eq(n, 62);
    }
}
END_TEST

static Suite *responses_suite(void)
{
    Suite *s = suite_create("ingress_responses");
    TCase *tc;

    tc = test_fixture("request");
    tcase_add_loop_test(tc, decode_vectors, 0, test_vector_count(DIRS, "decode"));
    tcase_add_loop_test(tc, check_vectors, 0, test_vector_count(DIRS, "check"));
    tcase_add_test(tc, anthropic_turns);
    tcase_add_test(tc, table_complete);
    tcase_add_test(tc, minted_ids);
    suite_add_tcase(s, tc);

    tc = test_fixture("response");
    tcase_add_loop_test(tc, response_vectors, 0, test_vector_count(DIRS, "response"));
    tcase_add_test(tc, encode_through_table);
    suite_add_tcase(s, tc);

    tc = test_fixture("stream");
    tcase_add_loop_test(tc, stream_vectors, 0, test_vector_count(DIRS, "stream"));
    tcase_add_test(tc, stream_reinit_restarts);
    tcase_add_test(tc, stream_emit_failure);
    tcase_add_test(tc, stream_error_edges);
    suite_add_tcase(s, tc);

    tc = test_fixture("native");
    tcase_add_loop_test(tc, native_request_vectors, 0, test_vector_count(DIRS, "native_request"));
    tcase_add_loop_test(tc, native_observe_vectors, 0, test_vector_count(DIRS, "native_observe"));
    tcase_add_loop_test(tc, native_event_vectors, 0, test_vector_count(DIRS, "native_event"));
    tcase_add_loop_test(tc, native_error_vectors, 0, test_vector_count(DIRS, "native_error"));
    tcase_add_test(tc, native_resource_requests);
    suite_add_tcase(s, tc);

    tc = test_fixture("store");
    tcase_add_loop_test(tc, expand_vectors, 0, test_vector_count(DIRS, "expand"));
    tcase_add_loop_test(tc, record_vectors, 0, test_vector_count(DIRS, "record"));
    tcase_add_loop_test(tc, input_items_vectors, 0, test_vector_count(DIRS, "input_items"));
    tcase_add_test(tc, two_turns_through_store);
    tcase_add_test(tc, record_visibility);
    tcase_add_test(tc, store_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(responses_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
