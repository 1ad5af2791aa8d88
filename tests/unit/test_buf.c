/* Check suite for the growable heap buffer (src/llmgw_buf.c). */
#include <string.h>
#include "llmgw_buf.h"
#include "test_util.h"

START_TEST(test_empty)
{
    llmgw_buf_t b = LLMGW_BUF_INIT;

    /* Nothing allocated until the first add, yet the text is a valid string. */
    ck_assert_ptr_null(b.data);
    ck_assert_str_eq(llmgw_buf_text(&b), "");
    llmgw_buf_reset(&b);
    ck_assert_ptr_null(b.data);
    llmgw_buf_free(&b);
    llmgw_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_add_terminates)
{
    llmgw_buf_t b = LLMGW_BUF_INIT;

    ck_assert_int_eq(llmgw_buf_add(&b, "Check", 5), APR_SUCCESS);
    ck_assert_int_eq(llmgw_buf_add(&b, "ing.xyz", 4), APR_SUCCESS);
    ck_assert_uint_eq(b.len, 9);
    ck_assert_str_eq(llmgw_buf_text(&b), "Checking.");
    ck_assert_int_eq(b.data[b.len], '\0');
    /* an empty add changes nothing */
    ck_assert_int_eq(llmgw_buf_add(&b, "", 0), APR_SUCCESS);
    ck_assert_str_eq(llmgw_buf_text(&b), "Checking.");
    llmgw_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_grows_per_token)
{
    /* Many small adds, as a stream delivers them, across several doublings. */
    llmgw_buf_t b = LLMGW_BUF_INIT;
    char expect[20001];
    int i;

    for (i = 0; i < 20000; i++) {
        char c = (char)('a' + i % 26);

        ck_assert_int_eq(llmgw_buf_add(&b, &c, 1), APR_SUCCESS);
        expect[i] = c;
        ck_assert_uint_gt(b.cap, b.len);
    }
    expect[20000] = '\0';
    ck_assert_uint_eq(b.len, 20000);
    ck_assert_str_eq(llmgw_buf_text(&b), expect);
    llmgw_buf_free(&b);
}
END_TEST

START_TEST(test_one_large_add)
{
    /* One add larger than several doublings of the first allocation. */
    llmgw_buf_t b = LLMGW_BUF_INIT;
    apr_size_t n = 100000;
    char *big = apr_palloc(test_pool, n);

    memset(big, 'x', n);
    ck_assert_int_eq(llmgw_buf_add(&b, "<", 1), APR_SUCCESS);
    ck_assert_int_eq(llmgw_buf_add(&b, big, n), APR_SUCCESS);
    ck_assert_uint_eq(b.len, n + 1);
    ck_assert_uint_gt(b.cap, b.len);
    ck_assert_int_eq(b.data[0], '<');
    ck_assert_int_eq(b.data[n], 'x');
    ck_assert_int_eq(b.data[n + 1], '\0');
    llmgw_buf_free(&b);
}
END_TEST

START_TEST(test_reset_keeps_memory)
{
    llmgw_buf_t b = LLMGW_BUF_INIT;
    const char *was;
    apr_size_t cap;

    ck_assert_int_eq(llmgw_buf_add(&b, "held frame", 10), APR_SUCCESS);
    was = b.data;
    cap = b.cap;
    llmgw_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(llmgw_buf_text(&b), "");
    ck_assert_ptr_eq(b.data, was);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_int_eq(llmgw_buf_add(&b, "next", 4), APR_SUCCESS);
    ck_assert_str_eq(llmgw_buf_text(&b), "next");
    llmgw_buf_free(&b);
}
END_TEST

START_TEST(test_binary_records)
{
    /* dispatch keeps an index of fixed-size records in one */
    typedef struct {
        int kind;
        apr_size_t off, len;
    } rec_t;
    llmgw_buf_t b = LLMGW_BUF_INIT;
    rec_t r;
    int i;

    for (i = 0; i < 100; i++) {
        r.kind = i;
        r.off = (apr_size_t)i * 10;
        r.len = (apr_size_t)i;
        ck_assert_int_eq(llmgw_buf_add(&b, &r, sizeof(r)), APR_SUCCESS);
    }
    ck_assert_uint_eq(b.len, 100 * sizeof(rec_t));
    for (i = 0; i < 100; i++) {
        const rec_t *got = (const rec_t *)(void *)b.data + i;

        ck_assert_int_eq(got->kind, i);
        ck_assert_uint_eq(got->off, (apr_size_t)i * 10);
        ck_assert_uint_eq(got->len, (apr_size_t)i);
    }
    llmgw_buf_free(&b);
}
END_TEST

START_TEST(test_overflow_refused)
{
    /* A size that cannot be represented is refused, and the buffer is intact. */
    llmgw_buf_t b = LLMGW_BUF_INIT;

    ck_assert_int_eq(llmgw_buf_add(&b, "abc", 3), APR_SUCCESS);
    ck_assert_int_eq(llmgw_buf_add(&b, "", ((apr_size_t)-1) - 1), APR_ENOMEM);
    ck_assert_int_eq(llmgw_buf_add(&b, "", ((apr_size_t)-1) / 2 + 1), APR_ENOMEM);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_str_eq(llmgw_buf_text(&b), "abc");
    llmgw_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = test_fixture("buf");

    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_add_terminates);
    tcase_add_test(tc, test_grows_per_token);
    tcase_add_test(tc, test_one_large_add);
    tcase_add_test(tc, test_reset_keeps_memory);
    tcase_add_test(tc, test_binary_records);
    tcase_add_test(tc, test_overflow_refused);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
