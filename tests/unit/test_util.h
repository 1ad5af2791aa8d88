/* Helpers shared by the Check suites. */
#ifndef LLMGW_TEST_UTIL_H
#define LLMGW_TEST_UTIL_H

#include <check.h>
#include <jansson.h>
#include <apr_pools.h>
#include <apr_tables.h>

/** A fresh pool per test: created in setup, destroyed in teardown. */
extern apr_pool_t *test_pool;
void test_pool_setup(void);
void test_pool_teardown(void);

/** Read LLMGW_TEST_DATA/<rel> whole (NUL-terminated) from test_pool; fails the test if missing. */
char *test_read_file(const char *rel, apr_size_t *len);

/** Load LLMGW_TEST_DATA/<rel> as JSON (new reference); fails the test if missing or invalid. */
json_t *test_load_json(const char *rel);

/** Parse a JSON text (new reference); fails the test if invalid. */
json_t *test_parse_json(const char *text, apr_size_t len);

/**
 * Fail the test unless @p got equals @p expected (json_equal), printing both.
 * Does not steal references.
 */
#define ck_assert_json_eq(got, expected) test_assert_json_eq((got), (expected), __FILE__, __LINE__)
void test_assert_json_eq(const json_t *got, const json_t *expected, const char *file, int line);

/** Names of the files in LLMGW_TEST_DATA/<dir> ending in @p suffix, sorted. */
apr_array_header_t *test_list_dir(const char *dir, const char *suffix);

/** A test case named @p name whose tests each get a fresh test_pool. */
TCase *test_fixture(const char *name);

/** Run one suite with the TAP-less default output; returns the number of failures. */
int test_run_suite(Suite *s);

#endif
