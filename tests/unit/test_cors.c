/* Check suite of CORS for browser applications (src/llmgw_cors.c). */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_config.h"
#include "llmgw_cors.h"
#include "test_util.h"

/* A setting made of @p n arguments; fails the test on a configuration error. */
static llmgw_cors_t *cors_of(int n, const char *const *args)
{
    llmgw_cors_t *c = llmgw_cors_make(test_pool);
    int i;

    for (i = 0; i < n; i++) {
        const char *err = llmgw_cors_add(test_pool, c, args[i]);
        ck_assert_msg(err == NULL, "%s: %s", args[i], err);
    }
    return c;
}

/* The error of adding @p arg after @p first (NULL: to an empty setting). */
static const char *add_error(const char *first, const char *arg)
{
    llmgw_cors_t *c = llmgw_cors_make(test_pool);

    if (first)
        ck_assert_ptr_null(llmgw_cors_add(test_pool, c, first));
    return llmgw_cors_add(test_pool, c, arg);
}

START_TEST(test_origins_normalised)
{
    static const char *const args[] = {"HTTPS://App.Example.COM:443", "http://127.0.0.1:8080",
                                       "http://localhost:80", "https://[::1]:8443",
                                       "capacitor://localhost"};
    llmgw_cors_t *c = cors_of(5, args);

    ck_assert_int_eq(c->origins->nelts, 5);
    ck_assert_str_eq(APR_ARRAY_IDX(c->origins, 0, const char *), "https://app.example.com");
    ck_assert_str_eq(APR_ARRAY_IDX(c->origins, 1, const char *), "http://127.0.0.1:8080");
    ck_assert_str_eq(APR_ARRAY_IDX(c->origins, 2, const char *), "http://localhost");
    ck_assert_str_eq(APR_ARRAY_IDX(c->origins, 3, const char *), "https://[::1]:8443");
    ck_assert_str_eq(APR_ARRAY_IDX(c->origins, 4, const char *), "capacitor://localhost");
    ck_assert(llmgw_cors_credentials(c));
}
END_TEST

START_TEST(test_bad_arguments)
{
    static const char *const bad[] = {"https://app.example.com/",
                                      "https://app.example.com/x",
                                      "https://app.example.com?q",
                                      "https://u:p@app.example.com",
                                      "app.example.com",
                                      "https://",
                                      "https://app.example.com:0",
                                      "https://app.example.com:99999",
                                      "https://app.example.com:x",
                                      "https://*.example.com",
                                      "null",
                                      "NULL",
                                      "1http://a.example",
                                      "https://a b.example"};
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(add_error(NULL, bad[i]) != NULL, "accepted %s", bad[i]);
    ck_assert_ptr_nonnull(strstr(add_error(NULL, "https://a.example/"), "trailing slash"));
    ck_assert_ptr_nonnull(strstr(add_error(NULL, "https://*.example.com"), "wildcards"));
    /* * and off stand alone. */
    ck_assert_ptr_nonnull(add_error("*", "https://a.example"));
    ck_assert_ptr_nonnull(add_error("https://a.example", "*"));
    ck_assert_ptr_nonnull(add_error("off", "https://a.example"));
    ck_assert_ptr_nonnull(add_error("https://a.example", "off"));
    ck_assert_ptr_nonnull(add_error("*", "*"));
    ck_assert_ptr_nonnull(add_error("*", "off"));
}
END_TEST

START_TEST(test_allow_origin)
{
    static const char *const listed[] = {"https://app.example.com", "http://127.0.0.1:8080"};
    static const char *const any[] = {"*"}, *const off[] = {"OFF"};
    llmgw_cors_t *c = cors_of(2, listed), *a = cors_of(1, any), *o = cors_of(1, off);

    /* A listed origin is echoed as the browser sent it. */
    ck_assert_str_eq(llmgw_cors_allow_origin(c, "https://app.example.com"),
                     "https://app.example.com");
    ck_assert_str_eq(llmgw_cors_allow_origin(c, "https://APP.example.com"),
                     "https://APP.example.com");
    ck_assert_str_eq(llmgw_cors_allow_origin(c, "http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    /* Anything else, however close, is not. */
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "http://app.example.com"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "https://app.example.com:8443"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "https://app.example.com.evil.test"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "https://evil.test/https://app.example.com"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "http://127.0.0.1:8081"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, "null"));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, ""));
    ck_assert_ptr_null(llmgw_cors_allow_origin(c, NULL));
    /* "*": any origin, answered "*", without credentials. */
    ck_assert_str_eq(llmgw_cors_allow_origin(a, "https://anyone.test"), "*");
    ck_assert_ptr_null(llmgw_cors_allow_origin(a, NULL));
    ck_assert(!llmgw_cors_credentials(a));
    /* off, or nothing configured: no CORS. */
    ck_assert_ptr_null(llmgw_cors_allow_origin(o, "https://app.example.com"));
    ck_assert(!llmgw_cors_credentials(o));
    ck_assert_ptr_null(llmgw_cors_allow_origin(NULL, "https://app.example.com"));
    ck_assert(!llmgw_cors_credentials(NULL));
}
END_TEST

START_TEST(test_allow_headers)
{
    /* What the OpenAI SDK's browser build asks for: reflected, lowercased. */
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "Authorization,Content-Type,"
                                                         "X-Stainless-Lang, x-stainless-os, "
                                                         "x-stainless-retry-count"),
                     "authorization, content-type, x-stainless-lang, x-stainless-os, "
                     "x-stainless-retry-count");
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool,
                                              "anthropic-version,x-api-key,"
                                              "anthropic-dangerous-direct-browser-access"),
                     "anthropic-version, x-api-key, anthropic-dangerous-direct-browser-access");
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "openai-organization, openai-project"),
                     "openai-organization, openai-project");
    /* One header the gateway does not expect: the fixed list, which lacks it. */
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "authorization, x-secret"),
                     LLMGW_CORS_ALLOW_HEADERS);
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "x-stainless-"), LLMGW_CORS_ALLOW_HEADERS);
    /* Parts of a listed name are not that name. */
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "author"), LLMGW_CORS_ALLOW_HEADERS);
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "content-type-x"),
                     LLMGW_CORS_ALLOW_HEADERS);
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, "x-stainless-os\r\nx: y"),
                     LLMGW_CORS_ALLOW_HEADERS);
    ck_assert_ptr_null(llmgw_cors_allow_headers(test_pool, NULL));
    ck_assert_ptr_null(llmgw_cors_allow_headers(test_pool, " , "));
    /* Every name of the fixed list is acceptable on its own. */
    ck_assert_str_eq(llmgw_cors_allow_headers(test_pool, LLMGW_CORS_ALLOW_HEADERS),
                     LLMGW_CORS_ALLOW_HEADERS);
}
END_TEST

START_TEST(test_allow_methods)
{
    ck_assert_str_eq(llmgw_cors_allow_methods(test_pool, LLMGW_METHOD_POST), "POST");
    ck_assert_str_eq(llmgw_cors_allow_methods(test_pool, LLMGW_METHOD_GET), "GET, HEAD");
    ck_assert_str_eq(llmgw_cors_allow_methods(test_pool, LLMGW_METHOD_GET | LLMGW_METHOD_POST),
                     "GET, HEAD, POST");
    ck_assert_str_eq(llmgw_cors_allow_methods(test_pool, LLMGW_METHOD_HEAD), "HEAD");
    ck_assert_str_eq(llmgw_cors_allow_methods(test_pool, LLMGW_METHOD_OPTIONS), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cors");
    TCase *tc = test_fixture("cors");

    tcase_add_test(tc, test_origins_normalised);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_allow_origin);
    tcase_add_test(tc, test_allow_headers);
    tcase_add_test(tc, test_allow_methods);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
