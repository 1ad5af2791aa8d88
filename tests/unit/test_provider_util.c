/*
 * Check suite for the rules every translator shares, written once in
 * src/providers/llmgw_provider_util.c: data URIs and base64, finish-reason
 * tables, usage objects, refused credentials, Anthropic's error statuses and
 * the id generator.
 */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "../../src/providers/llmgw_provider_util.h"
#include "test_util.h"

START_TEST(test_data_uri_shapes)
{
    const char *media = "untouched", *data = "untouched";

    ck_assert_int_eq(
        llmgw_prov_data_uri(test_pool, "data:image/PNG;base64,iVBORw0K", &media, &data), 1);
    ck_assert_str_eq(media, "image/png");
    ck_assert_str_eq(data, "iVBORw0K");
    /* The scheme in any case, parameters before ;base64, the first comma ends the header. */
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "DATA:text/plain;charset=utf-8;BASE64,aGk=,x",
                                         &media, &data),
                     1);
    ck_assert_str_eq(media, "text/plain");
    ck_assert_str_eq(data, "aGk=,x");
    /* No media type: the shape holds, the translator decides. */
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "data:;base64,aGk=", &media, &data), 1);
    ck_assert_str_eq(media, "");
    /* Not base64, no payload, no comma, another scheme: refused, out-parameters untouched. */
    media = data = "untouched";
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "data:text/plain,hello", &media, &data), 0);
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "data:image/png;base64,", &media, &data), 0);
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "data:image/png;base64", &media, &data), 0);
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "data:base64,aGk=", &media, &data), 0);
    ck_assert_int_eq(llmgw_prov_data_uri(test_pool, "https://x/a.png", &media, &data), 0);
    ck_assert_str_eq(media, "untouched");
    ck_assert_str_eq(data, "untouched");
}
END_TEST

START_TEST(test_base64)
{
    ck_assert_int_eq(llmgw_prov_base64_ok("aGk="), 1);
    ck_assert_int_eq(llmgw_prov_base64_ok("aA+/0Z=="), 1);
    ck_assert_int_eq(llmgw_prov_base64_ok("abc"), 1);
    ck_assert_int_eq(llmgw_prov_base64_ok(""), 0);
    ck_assert_int_eq(llmgw_prov_base64_ok("a=b"), 0);  /* padding only at the end */
    ck_assert_int_eq(llmgw_prov_base64_ok("a==="), 0); /* at most two */
    ck_assert_int_eq(llmgw_prov_base64_ok("a b"), 0);  /* no white space */
    ck_assert_int_eq(llmgw_prov_base64_ok("a-_b"), 0); /* not the URL alphabet */
}
END_TEST

static const llmgw_prov_finish_map_t map[] = {{"tool_use", "tool_calls"},
                                              {"max_tokens", "length"},
                                              {"refusal", "content_filter"},
                                              {NULL, NULL}};

START_TEST(test_finish_reason_table)
{
    ck_assert_str_eq(llmgw_prov_finish_reason(map, "max_tokens", 0), "length");
    ck_assert_str_eq(llmgw_prov_finish_reason(map, "refusal", 1), "content_filter");
    ck_assert_str_eq(llmgw_prov_finish_reason(map, "tool_use", 0), "tool_calls");
    ck_assert_str_eq(llmgw_prov_finish_reason(map, "tool_use", 1), "function_call");
    /* Unknown, NULL: the answer ended normally. */
    ck_assert_str_eq(llmgw_prov_finish_reason(map, "end_turn", 0), "stop");
    ck_assert_str_eq(llmgw_prov_finish_reason(map, NULL, 1), "stop");
    ck_assert_ptr_eq(llmgw_prov_finish_row(map, "refusal"), &map[2]);
    ck_assert_ptr_null(llmgw_prov_finish_row(map, "REFUSAL"));
    ck_assert_ptr_null(llmgw_prov_finish_row(map, NULL));
}
END_TEST

START_TEST(test_usage_object)
{
    llmgw_usage_t u;
    json_t *j;
    char *text;

    memset(&u, 0, sizeof(u));
    u.prompt_tokens = 12;
    u.completion_tokens = 5;
    u.total_tokens = 17;
    j = llmgw_prov_usage_json(&u);
    llmgw_prov_usage_detail(j, "prompt_tokens_details", "cached_tokens", 4);
    llmgw_prov_usage_detail(j, "prompt_tokens_details", "cache_write_tokens", 2);
    llmgw_prov_usage_detail(j, "completion_tokens_details", "reasoning_tokens", 3);
    text = json_dumps(j, JSON_COMPACT);
    ck_assert_str_eq(text,
                     "{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":4,\"cache_write_tokens\":2},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":3}}");
    free(text);
    json_decref(j);
}
END_TEST

START_TEST(test_credentials_and_statuses)
{
    ck_assert_int_eq(llmgw_prov_credentials_refused(401), 1);
    ck_assert_int_eq(llmgw_prov_credentials_refused(403), 1);
    ck_assert_int_eq(llmgw_prov_credentials_refused(402), 0);
    ck_assert_int_eq(llmgw_prov_credentials_refused(400), 0);
    ck_assert_int_eq(llmgw_prov_credentials_refused(407), 0);
    ck_assert_int_eq(llmgw_prov_anthropic_status("rate_limit_error", 500), 429);
    ck_assert_int_eq(llmgw_prov_anthropic_status("overloaded_error", 500), 529);
    ck_assert_int_eq(llmgw_prov_anthropic_status("authentication_error", 500), 401);
    ck_assert_int_eq(llmgw_prov_anthropic_status("no_such_error", 502), 502);
    ck_assert_int_eq(llmgw_prov_anthropic_status(NULL, 500), 500);
}
END_TEST

/* A fixed source: bytes 0, 1, 2, ... so the characters are the alphabet in order. */
static void counting(void *baton, unsigned char *buf, apr_size_t len)
{
    unsigned *next = baton;
    apr_size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (unsigned char)((*next)++ % 256);
}

START_TEST(test_ids)
{
    char out[70];
    unsigned next = 0;
    const char *id, *other;
    apr_size_t i;

    llmgw_prov_random_chars(out, 64, counting, &next);
    out[64] = '\0';
    ck_assert_str_eq(out, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01");
    /* Bytes 248..255 are skipped (uniform characters), then the count goes on. */
    next = 246;
    llmgw_prov_random_chars(out, 4, counting, &next);
    out[4] = '\0';
    ck_assert_str_eq(out, "yz01");
    id = llmgw_prov_mint_id(test_pool, "chatcmpl-", 24);
    other = llmgw_prov_mint_id(test_pool, "chatcmpl-", 24);
    ck_assert_uint_eq(strlen(id), 9 + 24);
    ck_assert_str_ne(id, other);
    ck_assert_int_eq(strncmp(id, "chatcmpl-", 9), 0);
    for (i = 9; id[i]; i++)
        ck_assert_msg(apr_isalnum(id[i]), "id character %c", id[i]);
    ck_assert_int_eq(llmgw_prov_id_chars_ok(id + 9), 1);
    ck_assert_int_eq(llmgw_prov_id_chars_ok("toolu_01-AB"), 1);
    ck_assert_int_eq(llmgw_prov_id_chars_ok(""), 0);
    ck_assert_int_eq(llmgw_prov_id_chars_ok("call.1"), 0);
}
END_TEST

START_TEST(test_array_grow)
{
    typedef struct {
        int seen;
        apr_int64_t tokens;
    } slot_t;
    slot_t *a = NULL, *again;
    int cap = 0, i;

    /* The first index makes an array of `first` zeroed elements. */
    a = llmgw_prov_array_grow(test_pool, a, &cap, 0, 2, sizeof(slot_t));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cap, 2);
    ck_assert_int_eq(a[0].seen, 0);
    ck_assert_int_eq(a[1].seen, 0);
    a[1].seen = 1;
    a[1].tokens = 42;
    /* An index that fits changes nothing. */
    again = llmgw_prov_array_grow(test_pool, a, &cap, 1, 2, sizeof(slot_t));
    ck_assert_ptr_eq(again, a);
    ck_assert_int_eq(cap, 2);
    /* A far index doubles until it fits; the old elements come along, new ones are zero. */
    a = llmgw_prov_array_grow(test_pool, a, &cap, 9, 2, sizeof(slot_t));
    ck_assert_int_eq(cap, 16);
    ck_assert_int_eq(a[1].seen, 1);
    ck_assert_int_eq(a[1].tokens, 42);
    for (i = 2; i < cap; i++)
        ck_assert_int_eq(a[i].seen, 0);
    /* Exactly at the capacity grows too. */
    a = llmgw_prov_array_grow(test_pool, a, &cap, 16, 2, sizeof(slot_t));
    ck_assert_int_eq(cap, 32);
    ck_assert_int_eq(a[1].tokens, 42);
}
END_TEST

START_TEST(test_status_code)
{
    ck_assert_str_eq(llmgw_prov_status_code(413), "request_too_large");
    ck_assert_str_eq(llmgw_prov_status_code(429), "rate_limit_exceeded");
    ck_assert_str_eq(llmgw_prov_status_code(502), "bad_gateway");
    ck_assert_str_eq(llmgw_prov_status_code(503), "upstream_unavailable");
    ck_assert_str_eq(llmgw_prov_status_code(504), "upstream_timeout");
    /* 404 means different things per API: the caller decides. */
    ck_assert_ptr_null(llmgw_prov_status_code(404));
    ck_assert_ptr_null(llmgw_prov_status_code(400));
    ck_assert_ptr_null(llmgw_prov_status_code(500));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_util");
    TCase *tc = test_fixture("provider_util");

    tcase_add_test(tc, test_data_uri_shapes);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_finish_reason_table);
    tcase_add_test(tc, test_usage_object);
    tcase_add_test(tc, test_credentials_and_statuses);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_array_grow);
    tcase_add_test(tc, test_status_code);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
