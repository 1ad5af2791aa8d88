/* Check suite for the redaction of secrets in provider text (src/llmgw_redact.c). */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_redact.h"
#include "test_util.h"

#define KEY "sk-ant-api03-0123456789abcdefghijklmnopqrstuvwxyz"
#define GKEY "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv"

static llmgw_secrets_t *secrets(void)
{
    llmgw_secrets_t *s = llmgw_secrets_make(test_pool);

    llmgw_secrets_add(s, KEY);
    llmgw_secrets_add(s, GKEY);
    llmgw_secrets_add(s, KEY); /* once */
    llmgw_secrets_add(s, "short");
    llmgw_secrets_add(s, NULL);
    return s;
}

static const char *red(const char *text, const char *extra)
{
    return llmgw_redact(test_pool, text, secrets(), extra);
}

START_TEST(test_whole_secrets)
{
    ck_assert_int_eq(secrets()->items->nelts, 2);
    ck_assert_str_eq(red("invalid x-api-key " KEY, NULL), "invalid x-api-key [redacted]");
    ck_assert_str_eq(red("Quota exceeded for key " GKEY ".", NULL),
                     "Quota exceeded for key [redacted].");
    ck_assert_str_eq(red(KEY KEY " and " GKEY, NULL), "[redacted][redacted] and [redacted]");
    ck_assert_str_eq(red(KEY, NULL), "[redacted]");
}
END_TEST

START_TEST(test_fragments)
{
    /* A truncated echo of 16 characters or more is secret too. */
    ck_assert_str_eq(red("key sk-ant-api03-0123... was refused", NULL),
                     "key [redacted]... was refused");
    ck_assert_str_eq(red("ends in 0123456789abcdef!", NULL), "ends in [redacted]!");
    /* Shorter overlaps are ordinary text (OpenAI's own masking shows 4-8 characters). */
    ck_assert_str_eq(red("sk-ant-api03 is the prefix", NULL), "sk-ant-api03 is the prefix");
    ck_assert_str_eq(red("Incorrect API key provided: sk-ant-a***wxyz.", NULL),
                     "Incorrect API key provided: sk-ant-a***wxyz.");
}
END_TEST

START_TEST(test_nothing_to_do)
{
    const char *text = "no secret here";
    llmgw_secrets_t *empty = llmgw_secrets_make(test_pool);

    /* Unchanged text is the same pointer: no copy on the common path. */
    ck_assert_ptr_eq(red(text, NULL), text);
    ck_assert_ptr_eq(llmgw_redact(test_pool, text, empty, NULL), text);
    ck_assert_ptr_eq(llmgw_redact(test_pool, text, NULL, NULL), text);
    ck_assert_ptr_null(red(NULL, NULL));
    ck_assert_str_eq(red("", NULL), "");
    /* Short secrets would match words: never used. */
    ck_assert_str_eq(red("a short answer", NULL), "a short answer");
}
END_TEST

START_TEST(test_extra_secret)
{
    const char *token = "ya29.a0AfB_byC-minted-token-0123456789";

    ck_assert_str_eq(red("bad token ya29.a0AfB_byC-minted-token-0123456789 here", token),
                     "bad token [redacted] here");
    ck_assert_str_eq(llmgw_redact(test_pool, "x " GKEY, NULL, GKEY), "x [redacted]");
}
END_TEST

START_TEST(test_error_fields)
{
    llmgw_error_t e = {401, "authentication_error " KEY, "code-" GKEY, "param " KEY,
                       "invalid x-api-key " KEY};
    llmgw_error_t clean = {400, "invalid_request_error", NULL, NULL, "fine"};
    const llmgw_error_t *r = llmgw_redact_error(test_pool, &e, secrets(), NULL);

    ck_assert_ptr_ne(r, &e);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(r->message, "invalid x-api-key [redacted]");
    ck_assert_str_eq(r->type, "authentication_error [redacted]");
    ck_assert_str_eq(r->code, "code-[redacted]");
    ck_assert_str_eq(r->param, "param [redacted]");
    /* The original is left alone; a clean error is returned as it is. */
    ck_assert_str_eq(e.message, "invalid x-api-key " KEY);
    ck_assert_ptr_eq(llmgw_redact_error(test_pool, &clean, secrets(), NULL), &clean);
    ck_assert_ptr_null(llmgw_redact_error(test_pool, NULL, secrets(), NULL));
}
END_TEST

START_TEST(test_dense_text)
{
    /* Many secrets back to back: the output buffer bound holds. */
    const char *text = "";
    int i;

    for (i = 0; i < 50; i++)
        text = apr_pstrcat(test_pool, text, "ABCDEFGH", NULL);
    ck_assert_str_eq(llmgw_redact(test_pool, "xABCDEFGHy", NULL, "ABCDEFGH"), "x[redacted]y");
    text = llmgw_redact(test_pool, text, NULL, "ABCDEFGH");
    ck_assert_uint_eq(strlen(text), 50 * strlen(LLMGW_REDACTED));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redact");
    TCase *tc = test_fixture("redact");

    tcase_add_test(tc, test_whole_secrets);
    tcase_add_test(tc, test_fragments);
    tcase_add_test(tc, test_nothing_to_do);
    tcase_add_test(tc, test_extra_secret);
    tcase_add_test(tc, test_error_fields);
    tcase_add_test(tc, test_dense_text);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
