#include <stdlib.h>
#include <string.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "test_util.h"

apr_pool_t *test_pool;

void test_pool_setup(void)
{
    apr_initialize();
    ck_assert_int_eq(apr_pool_create(&test_pool, NULL), APR_SUCCESS);
}

void test_pool_teardown(void)
{
    apr_pool_destroy(test_pool);
    test_pool = NULL;
    apr_terminate();
}

char *test_read_file(const char *rel, apr_size_t *len)
{
    const char *path = apr_pstrcat(test_pool, LLMGW_TEST_DATA, "/", rel, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, test_pool) != APR_SUCCESS)
        ck_abort_msg("cannot open %s", path);
    ck_assert_int_eq(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    n = (apr_size_t)fi.size;
    buf = apr_palloc(test_pool, n + 1);
    if (n > 0)
        ck_assert_int_eq(apr_file_read_full(f, buf, n, NULL), APR_SUCCESS);
    buf[n] = '\0';
    apr_file_close(f);
    if (len)
        *len = n;
    return buf;
}

json_t *test_parse_json(const char *text, apr_size_t len)
{
    json_error_t e;
    /* "\u0000" is valid JSON (a client's JSON.parse reads it); jansson asks. */
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, &e);
    if (!j)
        ck_abort_msg("invalid JSON at %d:%d: %s", e.line, e.column, e.text);
    return j;
}

json_t *test_load_json(const char *rel)
{
    apr_size_t n;
    char *text = test_read_file(rel, &n);
    json_error_t e;
    /* Vectors may spell upstream bytes with NULs ("raw": "...\u0000..."). */
    json_t *j = json_loadb(text, n, JSON_ALLOW_NUL, &e);
    if (!j)
        ck_abort_msg("%s: invalid JSON at %d:%d: %s", rel, e.line, e.column, e.text);
    return j;
}

void test_assert_json_eq(const json_t *got, const json_t *expected, const char *file, int line)
{
    char *g, *x;
    if (got && expected && json_equal(got, expected))
        return;
    g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1)) : strdup("(null)");
    x = expected ? json_dumps(expected, JSON_SORT_KEYS | JSON_INDENT(1)) : strdup("(null)");
    ck_abort_msg("%s:%d: JSON differs\n--- got\n%s\n--- expected\n%s", file, line, g, x);
    free(g); /* not reached: ck_abort_msg does not return */
    free(x);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

apr_array_header_t *test_list_dir(const char *dir, const char *suffix)
{
    const char *path = apr_pstrcat(test_pool, LLMGW_TEST_DATA, "/", dir, NULL);
    apr_array_header_t *out = apr_array_make(test_pool, 16, sizeof(const char *));
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_size_t sl = strlen(suffix);

    if (apr_dir_open(&d, path, test_pool) != APR_SUCCESS)
        ck_abort_msg("cannot open directory %s", path);
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        apr_size_t nl = strlen(fi.name);
        if (fi.filetype == APR_REG && nl > sl && strcmp(fi.name + nl - sl, suffix) == 0)
            APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(test_pool, fi.name);
    }
    apr_dir_close(d);
    qsort(out->elts, (size_t)out->nelts, sizeof(const char *), cmp_str);
    return out;
}

TCase *test_fixture(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    return tc;
}

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}
