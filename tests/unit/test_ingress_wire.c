/* Check suite for the wiring of the client dialects: the registry and the
 * passthrough translators (src/ingress/llmgw_ingress.c), and the response
 * store in an SQLite file (src/llmgw_responses_db.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_dbd.h>
#include <apr_strings.h>
#include "llmgw_ingress.h"
#include "llmgw_json.h"
#include "llmgw_responses_db.h"
#include "test_util.h"

/* ---------------------------------------------------------------------- */
/* Registry                                                               */

START_TEST(test_registry)
{
    ck_assert_ptr_eq(llmgw_ingress_for_api(LLMGW_API_RESPONSES), &llmgw_ingress_responses);
    ck_assert_ptr_eq(llmgw_ingress_for_api(LLMGW_API_MESSAGES), &llmgw_ingress_messages);
    ck_assert_ptr_null(llmgw_ingress_for_api(LLMGW_API_CHAT));
    ck_assert_ptr_null(llmgw_ingress_for_api(LLMGW_API_MODELS));
    ck_assert_ptr_eq(llmgw_ingress_get(LLMGW_DIALECT_MESSAGES), &llmgw_ingress_messages);
    ck_assert_ptr_null(llmgw_ingress_get(LLMGW_DIALECT_CHAT));
    ck_assert(llmgw_ingress_is_native(&llmgw_ingress_responses, LLMGW_BACKEND_OPENAI));
    ck_assert(llmgw_ingress_is_native(&llmgw_ingress_responses, LLMGW_BACKEND_AZURE_OPENAI));
    ck_assert(!llmgw_ingress_is_native(&llmgw_ingress_responses, LLMGW_BACKEND_ANTHROPIC));
    ck_assert(llmgw_ingress_is_native(&llmgw_ingress_messages, LLMGW_BACKEND_ANTHROPIC));
    ck_assert(!llmgw_ingress_is_native(&llmgw_ingress_messages, LLMGW_BACKEND_MISTRAL));
    ck_assert(!llmgw_ingress_is_native(&llmgw_ingress_messages, LLMGW_BACKEND_POOL));
    ck_assert(!llmgw_ingress_is_native(NULL, LLMGW_BACKEND_OPENAI));
    ck_assert_ptr_nonnull(llmgw_ingress_passthrough(&llmgw_ingress_messages));
    ck_assert_ptr_ne(llmgw_ingress_passthrough(&llmgw_ingress_messages),
                     llmgw_ingress_passthrough(&llmgw_ingress_responses));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Passthrough                                                            */

typedef struct {
    int frames, ends;
    llmgw_chunk_kind_e kinds[16];
    char text[4096];
    apr_size_t len;
} sink_t;

static apr_status_t collect(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                            const char *data, apr_size_t len)
{
    sink_t *s = baton;

    if (!chunk) {
        s->ends++;
        return APR_SUCCESS;
    }
    ck_assert_int_lt(s->frames, 16);
    s->kinds[s->frames++] = kind;
    ck_assert_uint_lt(s->len + len, sizeof(s->text));
    memcpy(s->text + s->len, data, len);
    s->len += len;
    s->text[s->len] = '\0';
    return APR_SUCCESS;
}

static llmgw_sse_event_t event(const char *name, const char *data)
{
    llmgw_sse_event_t ev;

    ev.event = name;
    ev.event_len = strlen(name);
    ev.data = data;
    ev.data_len = strlen(data);
    ev.id = "";
    return ev;
}

static llmgw_backend_t *anthropic_backend(void)
{
    llmgw_backend_t *b = apr_pcalloc(test_pool, sizeof(*b));

    b->name = "claude";
    b->type = LLMGW_BACKEND_ANTHROPIC;
    b->api_key = "sk-ant-secret";
    b->endpoint = "http://127.0.0.1:9";
    return b;
}

START_TEST(test_passthrough_request_and_answer)
{
    const llmgw_provider_t *pt = llmgw_ingress_passthrough(&llmgw_ingress_messages);
    static const char raw[] = "{\"model\":\"claude-x\",\"max_tokens\":10,\"future_field\":1,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    static const char answer[] = "{\"id\":\"msg_1\",\"type\":\"message\",\"model\":\"claude-x-1\","
                                 "\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}";
    apr_table_t *hin = apr_table_make(test_pool, 2);
    llmgw_http_request_t req;
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    llmgw_call_t call;
    json_t *sent;
    int i, version = 0;

    apr_table_setn(hin, "anthropic-version", "2023-06-01");
    memset(&call, 0, sizeof(call));
    call.pool = test_pool;
    call.backend = anthropic_backend();
    call.api = LLMGW_API_CHAT;
    call.body = test_parse_json(raw, strlen(raw));
    call.raw_body = raw;
    call.raw_len = strlen(raw);
    call.model = "claude-x";
    call.headers_in = hin;
    memset(&req, 0, sizeof(req));
    ck_assert_int_eq(pt->build_request(&call, &req, &err), APR_SUCCESS);
    ck_assert_str_eq(req.url, "http://127.0.0.1:9/v1/messages");
    /* The client's own request, unknown fields and all. */
    sent = test_parse_json(req.body, req.body_len);
    ck_assert_int_eq(json_integer_value(json_object_get(sent, "future_field")), 1);
    json_decref(sent);
    for (i = 0; i < req.headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(req.headers, i, const char *);
        if (strncasecmp(h, "anthropic-version:", 18) == 0)
            version++;
    }
    ck_assert_int_eq(version, 1);
    json_decref(call.body);

    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(pt->parse_response(&call, answer, strlen(answer), &out, &err), APR_SUCCESS);
    ck_assert_ptr_eq(out.body, answer); /* the bytes as they came */
    ck_assert_uint_eq(out.len, strlen(answer));
    ck_assert(out.usage.present);
    ck_assert_int_eq(out.usage.prompt_tokens, 7);
    ck_assert_int_eq(out.usage.completion_tokens, 3);
    ck_assert_str_eq(out.model, "claude-x-1");
    ck_assert_int_eq(pt->parse_response(&call, "[1]", 3, &out, &err), LLMGW_EUPSTREAM);
    ck_assert_int_eq(err->status, 502);
    err = pt->parse_error(&call, 529,
                          "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                          "\"message\":\"busy\"}}",
                          76);
    ck_assert_int_eq(err->status, 529);
}
END_TEST

START_TEST(test_passthrough_stream)
{
    const llmgw_provider_t *pt = llmgw_ingress_passthrough(&llmgw_ingress_messages);
    llmgw_call_t call;
    llmgw_stream_t st;
    sink_t s;
    llmgw_sse_event_t ev;

    memset(&call, 0, sizeof(call));
    call.pool = test_pool;
    call.backend = anthropic_backend();
    memset(&st, 0, sizeof(st));
    memset(&s, 0, sizeof(s));
    st.call = &call;
    st.emit = collect;
    st.baton = &s;
    ck_assert_int_eq(pt->stream_init(&st), APR_SUCCESS);
    ev = event("message_start", "{\"type\":\"message_start\",\"message\":{\"model\":\"claude-x-1\","
                                "\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}");
    ck_assert_int_eq(pt->stream_event(&st, &ev), APR_SUCCESS);
    ev = event("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                      "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}");
    ck_assert_int_eq(pt->stream_event(&st, &ev), APR_SUCCESS);
    ck_assert(st.content_emitted);
    /* One unreadable event: malformed, nothing emitted for it. */
    ev = event("content_block_delta", "{\"type\":");
    ck_assert_int_eq(pt->stream_event(&st, &ev), LLMGW_EMALFORMED);
    ck_assert_ptr_nonnull(st.error);
    ck_assert_int_eq(s.frames, 2);
    ev = event("message_delta", "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}");
    ck_assert_int_eq(pt->stream_event(&st, &ev), APR_SUCCESS);
    ev = event("message_stop", "{\"type\":\"message_stop\"}");
    ck_assert_int_eq(pt->stream_event(&st, &ev), APR_EOF);
    ck_assert(st.done);
    ck_assert_int_eq(s.ends, 1);
    ck_assert_int_eq(s.frames, 4);
    ck_assert_int_eq(s.kinds[0], LLMGW_CHUNK_PREAMBLE);
    ck_assert_int_eq(s.kinds[1], LLMGW_CHUNK_CONTENT);
    ck_assert_int_eq(s.kinds[3], LLMGW_CHUNK_FINAL);
    /* Re-framed unchanged. */
    ck_assert_ptr_nonnull(strstr(s.text, "event: content_block_delta\ndata: {\"type\":\"content_"
                                         "block_delta\",\"index\":0,\"delta\":{\"type\":\"text_"
                                         "delta\",\"text\":\"Hi\"}}\n\n"));
    ck_assert_ptr_nonnull(strstr(s.text, "event: message_stop\ndata: {\"type\":\"message_stop\"}"
                                         "\n\n"));
    ck_assert_str_eq(st.model, "claude-x-1");
    ck_assert(st.usage.present);
    ck_assert_int_eq(st.usage.prompt_tokens, 12);
    ck_assert_int_eq(st.usage.completion_tokens, 5);
}
END_TEST

START_TEST(test_passthrough_stream_error_and_cut)
{
    const llmgw_provider_t *pt = llmgw_ingress_passthrough(&llmgw_ingress_messages);
    llmgw_call_t call;
    llmgw_stream_t st;
    sink_t s;
    llmgw_sse_event_t ev;

    memset(&call, 0, sizeof(call));
    call.pool = test_pool;
    memset(&st, 0, sizeof(st));
    memset(&s, 0, sizeof(s));
    st.call = &call;
    st.emit = collect;
    st.baton = &s;
    ev = event("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                        "\"message\":\"Overloaded\"}}");
    ck_assert_int_eq(pt->stream_event(&st, &ev), LLMGW_EUPSTREAM);
    ck_assert_ptr_nonnull(st.error);
    ck_assert_int_eq(st.error->status, 529);
    ck_assert_int_eq(s.frames, 0); /* the glue writes the error event */
    st.error = NULL;
    ck_assert_int_eq(pt->stream_end(&st), LLMGW_ESTREAM);
    ck_assert_ptr_nonnull(st.error);
    ck_assert_int_eq(s.ends, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The response store                                                     */

static apr_status_t tmpdir_remove(void *dir)
{
    char cmd[128];

    apr_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (const char *)dir);
    return system(cmd) == 0 ? APR_SUCCESS : APR_EGENERAL;
}

static llmgw_responses_db_t *open_store(void)
{
    char *dir = apr_pstrdup(test_pool, "/tmp/llmgw-rstore-XXXXXX");
    llmgw_ledger_cfg_t *cfg = apr_pcalloc(test_pool, sizeof(*cfg));
    llmgw_responses_db_t *db = NULL;
    const char *msg = NULL;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    apr_pool_cleanup_register(test_pool, dir, tmpdir_remove, apr_pool_cleanup_null);
    cfg->driver = "sqlite3";
    cfg->params = apr_pstrcat(test_pool, dir, "/ledger.db", NULL);
    ck_assert_msg(llmgw_responses_db_open(&db, test_pool, cfg, &msg) == APR_SUCCESS, "%s",
                  msg ? msg : "?");
    return db;
}

static json_t *record(const char *id, const char *owner, apr_int64_t expires)
{
    char text[1024];

    apr_snprintf(
        text, sizeof(text),
        "{\"id\":\"%s\",\"owner\":\"%s\",\"created_at\":1,\"expires_at\":%" APR_INT64_T_FMT
        ",\"previous_response_id\":null,"
        "\"input_items\":[{\"id\":\"msg_in_%s\",\"type\":\"message\",\"role\":\"user\","
        "\"content\":[{\"type\":\"input_text\",\"text\":\"hi\"}]}],"
        "\"output_items\":[{\"id\":\"fc_%s\",\"type\":\"function_call\",\"call_id\":\"c1\","
        "\"name\":\"f\",\"arguments\":\"{}\"},{\"type\":\"reasoning\",\"summary\":[]}],"
        "\"response\":{\"id\":\"%s\",\"object\":\"response\"},\"backend\":\"b\","
        "\"native_stored\":false}",
        id, owner, expires, id, id, id);
    return llmgw_json_pool_own(test_pool, test_parse_json(text, strlen(text)));
}

START_TEST(test_store_put_get_scoped)
{
    llmgw_responses_db_t *db = open_store();
    apr_time_t now = 1000;
    json_t *got = NULL, *item = NULL;
    const char *msg = NULL;

    ck_assert_int_eq(llmgw_responses_db_put(db, test_pool, record("resp_1", "team-a", 2000), &msg),
                     APR_SUCCESS);
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_1", "team-a", now, &got, &msg),
                     APR_SUCCESS);
    ck_assert_json_eq(got, record("resp_1", "team-a", 2000));
    /* Another owner, or an open gateway's "", does not see it. */
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_1", "team-b", now, &got, &msg),
                     APR_NOTFOUND);
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_1", NULL, now, &got, &msg),
                     APR_NOTFOUND);
    /* Expired. */
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_1", "team-a", 2000, &got, &msg),
                     APR_NOTFOUND);
    /* Items with an id, for item_reference; the reasoning item without one is not a row. */
    ck_assert_int_eq(
        llmgw_responses_db_item(db, test_pool, "fc_resp_1", "team-a", now, &item, &msg),
        APR_SUCCESS);
    ck_assert_str_eq(llmgw_json_str(item, "call_id"), "c1");
    ck_assert_int_eq(
        llmgw_responses_db_item(db, test_pool, "msg_in_resp_1", "team-a", now, &item, &msg),
        APR_SUCCESS);
    ck_assert_int_eq(
        llmgw_responses_db_item(db, test_pool, "fc_resp_1", "team-b", now, &item, &msg),
        APR_NOTFOUND);
    /* A quote in an id is data, not SQL. */
    ck_assert_int_eq(
        llmgw_responses_db_get(db, test_pool, "x' OR '1'='1", "team-a", now, &got, &msg),
        APR_NOTFOUND);
}
END_TEST

START_TEST(test_store_items_keep_first_row_and_delete)
{
    llmgw_responses_db_t *db = open_store();
    json_t *second = record("resp_2", "team-a", 5000), *item = NULL, *got = NULL;
    const char *msg = NULL;

    ck_assert_int_eq(llmgw_responses_db_put(db, test_pool, record("resp_1", "team-a", 5000), &msg),
                     APR_SUCCESS);
    /* resp_2 sends resp_1's function call again, with its id: no conflict. */
    json_array_append(
        json_object_get(second, "input_items"),
        json_array_get(json_object_get(record("resp_1", "team-a", 5000), "output_items"), 0));
    ck_assert_int_eq(llmgw_responses_db_put(db, test_pool, second, &msg), APR_SUCCESS);
    ck_assert_int_eq(llmgw_responses_db_item(db, test_pool, "fc_resp_1", "team-a", 10, &item, &msg),
                     APR_SUCCESS);
    /* The same response id twice is refused, and leaves nothing behind. */
    ck_assert_int_eq(llmgw_responses_db_put(db, test_pool, record("resp_2", "team-a", 5000), &msg),
                     APR_EGENERAL);
    ck_assert_int_eq(llmgw_responses_db_delete(db, test_pool, "resp_1", "team-b", &msg),
                     APR_NOTFOUND);
    ck_assert_int_eq(llmgw_responses_db_delete(db, test_pool, "resp_1", "team-a", &msg),
                     APR_SUCCESS);
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_1", "team-a", 10, &got, &msg),
                     APR_NOTFOUND);
    ck_assert_int_eq(llmgw_responses_db_delete(db, test_pool, "resp_1", "team-a", &msg),
                     APR_NOTFOUND);
    ck_assert_int_eq(llmgw_responses_db_get(db, test_pool, "resp_2", "team-a", 10, &got, &msg),
                     APR_SUCCESS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ingress_wire");
    apr_pool_t *global;
    TCase *tc;

    /* apr_dbd's driver table lives in APR's global pool: keep APR up for the
     * whole suite (see test_ledger.c). */
    apr_initialize();
    apr_pool_create(&global, NULL);
    apr_dbd_init(global);
    tc = test_fixture("ingress_wire");
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_passthrough_request_and_answer);
    tcase_add_test(tc, test_passthrough_stream);
    tcase_add_test(tc, test_passthrough_stream_error_and_cut);
    tcase_add_test(tc, test_store_put_get_scoped);
    tcase_add_test(tc, test_store_items_keep_first_row_and_delete);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
