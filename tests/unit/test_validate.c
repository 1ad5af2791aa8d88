/*
 * llmgw_validate_request, from JSON vectors in data/validate/<api>/ (api:
 * chat, embeddings, models):
 *   <case>.in.json        {"body":<any JSON>} or {"raw":"<JSON text>"}
 *   <case>.expected.json  {"error":null} or {"error":{"status","type","code","param","message"}}
 * "raw" keeps what a re-serialised body would lose (escapes, 10.0 vs 10).
 * The text is parsed as the handler parses a client's body, except that any
 * JSON value is accepted, so that scalars reach the validator too.
 */
#include <stdlib.h>
#include <string.h>
#include "test_vectors.h"
#include "llmgw_json.h"
#include "llmgw_validate.h"

static const char *const DIRS[] = {"validate", NULL};

/* The vector's body, parsed; owned by test_pool. */
static json_t *vector_body(const test_vector_t *v)
{
    apr_size_t len;
    const char *text = test_upstream_bytes(v->in, &len);
    json_error_t jerr;
    json_t *body = json_loadb(text, len, JSON_DECODE_ANY, &jerr);

    ck_assert_msg(body != NULL, "%s: invalid JSON: %s", v->name, jerr.text);
    return llmgw_json_pool_own(test_pool, body);
}

/* Validate vector @p i of @p kind for @p api against its expected error (or none). */
static void check_vector(const char *kind, llmgw_api_e api, int i)
{
    test_vector_t v = test_vector_at(DIRS, kind, i);
    json_t *body = vector_body(&v);
    json_t *before = llmgw_json_pool_own(test_pool, json_deep_copy(body));
    json_t *expected = json_object_get(v.exp, "error");
    llmgw_error_t *e = llmgw_validate_request(test_pool, api, body);

    ck_assert_msg(expected != NULL, "%s: no \"error\" in the expected file", v.name);
    ck_assert_msg(json_equal(body, before), "%s: the body was modified", v.name);
    if (json_is_null(expected))
        ck_assert_msg(e == NULL, "%s: refused: %s (param %s)", v.name, e ? e->message : "",
                      e && e->param ? e->param : "null");
    else
        test_assert_error(e, expected, v.name);
}

START_TEST(chat_vectors)
{
    check_vector("chat", LLMGW_API_CHAT, _i);
}
END_TEST

START_TEST(embeddings_vectors)
{
    check_vector("embeddings", LLMGW_API_EMBEDDINGS, _i);
}
END_TEST

START_TEST(models_vectors)
{
    check_vector("models", LLMGW_API_MODELS, _i);
}
END_TEST

/* No parsed body at all is refused like any other non-object, never dereferenced. */
START_TEST(null_body_refused)
{
    llmgw_error_t *e = llmgw_validate_request(test_pool, LLMGW_API_CHAT, NULL);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "invalid_json");
    ck_assert_ptr_null(e->param);
}
END_TEST

/* The rules are per API: a valid request of one API is not one of the other. */
START_TEST(rules_follow_the_api)
{
    json_t *chat = test_vector_named("validate", "chat", "valid_minimal").in;
    json_t *emb = test_vector_named("validate", "embeddings", "valid_string").in;
    llmgw_error_t *e;

    e = llmgw_validate_request(test_pool, LLMGW_API_EMBEDDINGS, json_object_get(chat, "body"));
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->param, "input");
    e = llmgw_validate_request(test_pool, LLMGW_API_CHAT, json_object_get(emb, "body"));
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->param, "messages");
}
END_TEST

/* A long conversation is checked to its end: the problem in the last message is found. */
START_TEST(long_conversation_checked_to_the_end)
{
    json_t *msgs = json_array();
    json_t *body = llmgw_json_pool_own(test_pool, json_pack("{s:o}", "messages", msgs));
    llmgw_error_t *e;
    int i;

    for (i = 0; i < 5000; i++)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "x"));
    ck_assert_ptr_null(llmgw_validate_request(test_pool, LLMGW_API_CHAT, body));
    json_array_append_new(msgs, json_pack("{s:s}", "role", "user"));
    e = llmgw_validate_request(test_pool, LLMGW_API_CHAT, body);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->param, "messages[5000].content");
}
END_TEST

static Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc;

    tc = test_fixture("chat");
    tcase_add_loop_test(tc, chat_vectors, 0, test_vector_count(DIRS, "chat"));
    tcase_add_test(tc, long_conversation_checked_to_the_end);
    suite_add_tcase(s, tc);

    tc = test_fixture("embeddings");
    tcase_add_loop_test(tc, embeddings_vectors, 0, test_vector_count(DIRS, "embeddings"));
    suite_add_tcase(s, tc);

    tc = test_fixture("any");
    tcase_add_loop_test(tc, models_vectors, 0, test_vector_count(DIRS, "models"));
    tcase_add_test(tc, null_body_refused);
    tcase_add_test(tc, rules_follow_the_api);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(validate_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
