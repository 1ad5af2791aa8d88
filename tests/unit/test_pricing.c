/* Check suite for prices and costs (src/llmgw_pricing.c) and pricing: in gateway.yaml. */
#include <stdlib.h>
#include <string.h>
#include "llmgw_config.h"
#include "llmgw_pricing.h"
#include "test_util.h"

static const llmgw_pricing_t *pricing_of(const char *yaml)
{
    llmgw_config_t *cfg;
    const char *err = NULL;

    ck_assert_msg(llmgw_config_parse(&cfg, test_pool, test_pool, "t.yaml", yaml, strlen(yaml),
                                     &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    return cfg->pricing;
}

static const char *parse_error(const char *yaml)
{
    llmgw_config_t *cfg;
    const char *err = NULL;

    ck_assert_int_ne(
        llmgw_config_parse(&cfg, test_pool, test_pool, "t.yaml", yaml, strlen(yaml), &err),
        APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    return err;
}

#define BACKENDS                                                                                   \
    "backends:\n  - {name: a, type: openai, config: {apiKey: k, models: [gpt-4o, o1]}}\n"          \
    "routes:\n  - {name: chat, path: /v1/chat/completions, backend: a}\n"

START_TEST(test_usd_parse)
{
    apr_int64_t n;

    ck_assert_int_eq(llmgw_usd_parse("2.50", &n), APR_SUCCESS);
    ck_assert_int_eq(n, 2500000000LL);
    ck_assert_int_eq(llmgw_usd_parse("0.075", &n), APR_SUCCESS);
    ck_assert_int_eq(n, 75000000LL);
    ck_assert_int_eq(llmgw_usd_parse("50", &n), APR_SUCCESS);
    ck_assert_int_eq(n, 50000000000LL);
    ck_assert_int_eq(llmgw_usd_parse("0.000000001", &n), APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(llmgw_usd_parse("0", &n), APR_SUCCESS);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(llmgw_usd_parse("0.0000000001", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse("-1", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse("1e3", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse("1.", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse(".5", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse("", &n), APR_EINVAL);
    ck_assert_int_eq(llmgw_usd_parse("99999999999", &n), APR_EINVAL);
}
END_TEST

START_TEST(test_usd_format)
{
    ck_assert_str_eq(llmgw_usd_format(test_pool, 2500000000LL), "2.5");
    ck_assert_str_eq(llmgw_usd_format(test_pool, 1500), "0.0000015");
    ck_assert_str_eq(llmgw_usd_format(test_pool, 0), "0");
    ck_assert_str_eq(llmgw_usd_format(test_pool, 7000000000LL), "7");
    ck_assert_str_eq(llmgw_usd_format(test_pool, -500000000LL), "-0.5");
    ck_assert_str_eq(llmgw_usd_format(test_pool, 1), "0.000000001");
    ck_assert_str_eq(llmgw_usd_format(test_pool, 123456789012345678LL), "123456789.012345678");
}
END_TEST

/* cost = ((prompt - cached) * input + cached * cachedInput + completion * output) / 1e6 */
START_TEST(test_cost)
{
    const llmgw_pricing_t *pr =
        pricing_of(BACKENDS "pricing:\n"
                            "  gpt-4o: {input: 2.50, cachedInput: 1.25, output: 10.00}\n"
                            "  o1: {input: 15, output: 60}\n");
    const llmgw_price_t *p = llmgw_pricing_find(pr, "gpt-4o");
    llmgw_usage_t u = {1, 1000, 200, 1200, 400, 0};

    ck_assert_ptr_nonnull(p);
    /* 600 * 2.5 + 400 * 1.25 + 200 * 10 = 1500 + 500 + 2000 = 4000 USD per million tokens
     * = 0.004 USD = 4 000 000 nano-USD. */
    ck_assert_int_eq(llmgw_pricing_cost(p, &u), 4000000);
    /* cachedInput defaults to input. */
    p = llmgw_pricing_find(pr, "o1");
    ck_assert_int_eq(p->cached_input, p->input);
    u.cached_tokens = 0;
    ck_assert_int_eq(llmgw_pricing_cost(p, &u), 1000 * 15000 + 200 * 60000);
    /* Cached beyond the prompt is clamped; negative counts count nothing. */
    u.cached_tokens = 5000;
    u.completion_tokens = -3;
    ck_assert_int_eq(llmgw_pricing_cost(llmgw_pricing_find(pr, "gpt-4o"), &u), 1000 * 1250);
    ck_assert_int_eq(llmgw_pricing_estimate(llmgw_pricing_find(pr, "gpt-4o"), 100, 50),
                     100 * 2500 + 50 * 10000);
}
END_TEST

START_TEST(test_cost_rounding)
{
    llmgw_price_t p = {"m", 0, 37500000 /* $0.0375 / M */, 37500000, 1};
    llmgw_usage_t u = {1, 3, 1, 4, 0, 0};

    /* 3 * 37.5 = 112.5 -> 113 (half up); one output token at $0.000000001/M rounds to 0. */
    ck_assert_int_eq(llmgw_pricing_cost(&p, &u), 113);
}
END_TEST

START_TEST(test_lookup_order)
{
    const llmgw_pricing_t *pr = pricing_of(BACKENDS "pricing:\n"
                                                    "  \"gpt-4o-*\": {input: 3, output: 12}\n"
                                                    "  gpt-4o: {input: 2.50, output: 10}\n"
                                                    "  \"*\": {input: 100, output: 100}\n");

    /* Exact first, then globs in file order. */
    ck_assert_int_eq(llmgw_pricing_find(pr, "gpt-4o")->input, 2500000000LL);
    ck_assert_int_eq(llmgw_pricing_find(pr, "gpt-4o-2024-08-06")->input, 3000000000LL);
    ck_assert_int_eq(llmgw_pricing_find(pr, "claude")->input, 100000000000LL);
    /* The model that answered first, then the one sent. */
    ck_assert_int_eq(llmgw_pricing_for(pr, "gpt-4o", "o1")->input, 2500000000LL);
    ck_assert_ptr_null(llmgw_pricing_for(NULL, "gpt-4o", "o1"));
    pr = pricing_of(BACKENDS "pricing:\n  gpt-4o: {input: 1}\n");
    ck_assert_ptr_null(llmgw_pricing_for(pr, "x-unknown", "o1"));
    ck_assert_ptr_nonnull(llmgw_pricing_for(pr, "gpt-4o-2024", "gpt-4o"));
}
END_TEST

START_TEST(test_pricing_errors)
{
    ck_assert_str_eq(parse_error(BACKENDS "pricing:\n  gpt-4o: {input: -1}\n"),
                     "t.yaml:6:19: pricing \"gpt-4o\": input must be an amount in USD such as "
                     "2.50 (at most 9 decimals), not \"-1\"");
    ck_assert_str_eq(parse_error(BACKENDS "pricing:\n  gpt-4o: {output: 1}\n"),
                     "t.yaml:6:11: pricing \"gpt-4o\": missing required key \"input\"");
    ck_assert_str_eq(parse_error(BACKENDS "pricing:\n  gpt-4o: {input: 1, cached: 1}\n"),
                     "t.yaml:6:22: pricing \"gpt-4o\": unknown key \"cached\"");
    ck_assert_str_eq(parse_error(BACKENDS "pricing: [gpt-4o]\n"),
                     "t.yaml:5:10: pricing: must be a mapping of model names to {input, "
                     "cachedInput, output} (USD per million tokens), not a sequence");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pricing");
    TCase *tc = test_fixture("pricing");

    tcase_add_test(tc, test_usd_parse);
    tcase_add_test(tc, test_usd_format);
    tcase_add_test(tc, test_cost);
    tcase_add_test(tc, test_cost_rounding);
    tcase_add_test(tc, test_lookup_order);
    tcase_add_test(tc, test_pricing_errors);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
