/* Check suite for the pool strategies (src/strategies/, registry in src/llmgw_pool.c). */
#include <stdlib.h>
#include <string.h>
#include "llmgw_strategy.h"
#include "test_util.h"

#define MAXC 8

/* A candidate: available, serving the model, weight 1, nothing measured. */
static llmgw_strategy_cand_t cand(void)
{
    llmgw_strategy_cand_t c;

    memset(&c, 0, sizeof(c));
    c.weight = 1;
    c.available = 1;
    c.prefers_model = 1;
    return c;
}

static llmgw_strategy_cand_t measured(apr_uint32_t latency_ms, apr_uint32_t samples)
{
    llmgw_strategy_cand_t c = cand();

    c.latency_us = latency_ms * 1000;
    c.ttfb_us = latency_ms * 500;
    c.samples = samples;
    c.requests = samples;
    return c;
}

/* Run @p st and return the order as letters, "|" after the usable prefix. */
static const char *order_of(const llmgw_strategy_t *st, const llmgw_strategy_cand_t *c, int n,
                            apr_uint64_t seed, volatile apr_uint32_t *rr, apr_status_t *rv_out)
{
    int order[MAXC], usable = -1, i, seen[MAXC] = {0};
    char *s = apr_pcalloc(test_pool, 2 * MAXC + 2), *o = s;
    apr_status_t rv = st->select(c, n, seed, rr, order, &usable);

    ck_assert_int_ge(usable, 0);
    ck_assert_int_le(usable, n);
    for (i = 0; i < n; i++) {
        /* Always a permutation of every member. */
        ck_assert_int_ge(order[i], 0);
        ck_assert_int_lt(order[i], n);
        ck_assert_int_eq(seen[order[i]]++, 0);
        if (i == usable)
            *o++ = '|';
        *o++ = (char)('a' + order[i]);
        /* The usable prefix is exactly the available members. */
        ck_assert_int_eq(c[order[i]].available != 0, i < usable);
    }
    if (rv_out)
        *rv_out = rv;
    else
        ck_assert_int_eq(rv, APR_SUCCESS);
    return s;
}

/* First choice of @p st over @p draws seeds from a fixed sequence; counts per member. */
static void first_counts(const llmgw_strategy_t *st, const llmgw_strategy_cand_t *c, int n,
                         int draws, apr_uint64_t seed0, int *counts, int *second)
{
    apr_uint64_t rng = seed0;
    int order[MAXC], usable, i;

    memset(counts, 0, sizeof(int) * n);
    if (second)
        memset(second, 0, sizeof(int) * n);
    for (i = 0; i < draws; i++) {
        ck_assert_int_eq(st->select(c, n, llmgw_strategy_rand(&rng), NULL, order, &usable),
                         APR_SUCCESS);
        counts[order[0]]++;
        if (second && n > 1)
            second[order[1]]++;
    }
}

/* ------------------------------------------------------------------ */
/* Registry                                                            */

START_TEST(test_registry)
{
    static const struct {
        llmgw_strategy_e e;
        const char *name;
    } rows[] = {{LLMGW_STRATEGY_LATENCY, "latency"},
                {LLMGW_STRATEGY_WEIGHTED, "weighted"},
                {LLMGW_STRATEGY_ROUND_ROBIN, "round-robin"},
                {LLMGW_STRATEGY_PRIORITY, "priority"},
                {LLMGW_STRATEGY_LEAST_BUSY, "least-busy"}};
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const llmgw_strategy_t *st = llmgw_strategy_get(rows[i].e);
        ck_assert_ptr_nonnull(st);
        ck_assert_str_eq(st->name, rows[i].name);
        ck_assert_ptr_eq(llmgw_strategy_find(rows[i].name), st);
    }
    ck_assert_ptr_null(llmgw_strategy_get((llmgw_strategy_e)99));
    ck_assert_ptr_null(llmgw_strategy_get((llmgw_strategy_e)-1));
    ck_assert_ptr_null(llmgw_strategy_find("fastest"));
    ck_assert_ptr_null(llmgw_strategy_find(NULL));
}
END_TEST

/* ------------------------------------------------------------------ */
/* What every strategy shares                                          */

START_TEST(test_all_skip_unavailable)
{
    const llmgw_strategy_t *st = llmgw_strategy_get((llmgw_strategy_e)_i);
    llmgw_strategy_cand_t c[4] = {measured(10, 50), measured(20, 50), measured(30, 50),
                                  measured(40, 50)};
    apr_uint32_t rr = 0;
    apr_uint64_t rng = 99;
    int k;

    /* a and c are cooling: whatever the seed, they come last, in listed order. */
    c[0].available = 0;
    c[2].available = 0;
    for (k = 0; k < 200; k++) {
        const char *o = order_of(st, c, 4, llmgw_strategy_rand(&rng), &rr, NULL);
        ck_assert_msg(strcmp(o + 2, "|ac") == 0, "%s: %s", st->name, o);
        ck_assert(o[0] == 'b' || o[0] == 'd');
    }
}
END_TEST

START_TEST(test_all_none_available)
{
    const llmgw_strategy_t *st = llmgw_strategy_get((llmgw_strategy_e)_i);
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    apr_status_t rv;
    int order[3], usable;

    c[0].available = c[1].available = c[2].available = 0;
    ck_assert_str_eq(order_of(st, c, 3, 7, NULL, &rv), "|abc");
    ck_assert_int_eq(rv, APR_ENOENT);
    ck_assert_int_eq(st->select(c, 0, 7, NULL, order, &usable), APR_ENOENT);
    ck_assert_int_eq(usable, 0);
    ck_assert_int_eq(st->select(c, -1, 7, NULL, order, &usable), APR_EINVAL);
}
END_TEST

START_TEST(test_all_prefer_model)
{
    const llmgw_strategy_t *st = llmgw_strategy_get((llmgw_strategy_e)_i);
    /* a is the fastest, least busy, heaviest and first listed, but only c lists the model. */
    llmgw_strategy_cand_t c[3] = {measured(5, 50), measured(50, 50), measured(500, 50)};
    apr_uint32_t rr = 0;
    apr_uint64_t rng = 5;
    int k;

    c[0].weight = 1000;
    c[0].prefers_model = 0;
    c[1].prefers_model = 0;
    c[2].inflight = 9;
    for (k = 0; k < 200; k++) {
        const char *o = order_of(st, c, 3, llmgw_strategy_rand(&rng), &rr, NULL);
        ck_assert_msg(o[0] == 'c', "%s: %s", st->name, o);
    }
}
END_TEST

START_TEST(test_all_deterministic)
{
    const llmgw_strategy_t *st = llmgw_strategy_get((llmgw_strategy_e)_i);
    llmgw_strategy_cand_t c[5] = {measured(30, 9), measured(10, 1), measured(20, 50), cand(),
                                  measured(40, 50)};
    apr_uint32_t rr1 = 41, rr2 = 41;
    apr_uint64_t seed;

    c[3].weight = 4;
    for (seed = 1; seed < 100; seed++) {
        const char *o1 = order_of(st, c, 5, seed * 7919, &rr1, NULL);
        const char *o2 = order_of(st, c, 5, seed * 7919, &rr2, NULL);
        ck_assert_str_eq(o1, o2);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* priority                                                            */

START_TEST(test_priority)
{
    const llmgw_strategy_t *st = &llmgw_strategy_priority;
    llmgw_strategy_cand_t c[3] = {measured(900, 50), measured(5, 50), cand()};

    /* Listed order, whatever the statistics say. */
    ck_assert_str_eq(order_of(st, c, 3, 1, NULL, NULL), "abc");
    /* The worked example: b cooling, only c serves the model. */
    c[1].available = 0;
    c[0].prefers_model = 0;
    c[1].prefers_model = 0;
    ck_assert_str_eq(order_of(st, c, 3, 1, NULL, NULL), "ca|b");
}
END_TEST

/* ------------------------------------------------------------------ */
/* least-busy                                                          */

START_TEST(test_least_busy)
{
    const llmgw_strategy_t *st = &llmgw_strategy_least_busy;
    llmgw_strategy_cand_t c[3] = {measured(300, 900), measured(900, 500), measured(450, 700)};

    /* The worked example of the file. */
    c[0].inflight = 4;
    c[1].inflight = 1;
    c[2].inflight = 1;
    ck_assert_str_eq(order_of(st, c, 3, 1, NULL, NULL), "cba");
    /* Idle: the fastest. */
    c[0].inflight = c[1].inflight = c[2].inflight = 0;
    ck_assert_str_eq(order_of(st, c, 3, 1, NULL, NULL), "acb");
    /* Equal in flight and latency: fewer requests first, then listed order. */
    c[0] = c[1] = c[2] = measured(100, 10);
    c[1].requests = 3;
    ck_assert_str_eq(order_of(st, c, 3, 1, NULL, NULL), "bac");
    /* Busy fast member loses to an idle slow one. */
    c[0] = measured(10, 50);
    c[0].inflight = 2;
    c[1] = measured(800, 50);
    c[1].inflight = 1;
    ck_assert_str_eq(order_of(st, c, 2, 1, NULL, NULL), "ba");
}
END_TEST

/* ------------------------------------------------------------------ */
/* round-robin                                                         */

START_TEST(test_round_robin_rotation)
{
    const llmgw_strategy_t *st = &llmgw_strategy_round_robin;
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    apr_uint32_t cursor = 7;

    /* The worked example: each selection takes the next turn. */
    ck_assert_str_eq(order_of(st, c, 3, 1, &cursor, NULL), "bca");
    ck_assert_uint_eq(cursor, 8);
    ck_assert_str_eq(order_of(st, c, 3, 1, &cursor, NULL), "cab");
    ck_assert_str_eq(order_of(st, c, 3, 1, &cursor, NULL), "abc");
    /* b cooling: the rotation runs over a and c only. */
    c[1].available = 0;
    ck_assert_str_eq(order_of(st, c, 3, 1, &cursor, NULL), "ac|b");
    ck_assert_str_eq(order_of(st, c, 3, 1, &cursor, NULL), "ca|b");
    ck_assert_uint_eq(cursor, 12);
}
END_TEST

START_TEST(test_round_robin_shared_counter)
{
    const llmgw_strategy_t *st = &llmgw_strategy_round_robin;
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    apr_uint32_t shared = 1000;
    int counts[3] = {0}, order[3], usable, i, last = -1;

    /*
     * Two "processes" alternate on the same cursor: together they rotate
     * perfectly, which a per-process cursor would not (each would restart at a).
     */
    for (i = 0; i < 3000; i++) {
        ck_assert_int_eq(st->select(c, 3, (apr_uint64_t)i, &shared, order, &usable), APR_SUCCESS);
        ck_assert_int_ne(order[0], last);
        last = order[0];
        counts[order[0]]++;
    }
    ck_assert_int_eq(counts[0], 1000);
    ck_assert_int_eq(counts[1], 1000);
    ck_assert_int_eq(counts[2], 1000);
    ck_assert_uint_eq(shared, 4000);
}
END_TEST

START_TEST(test_round_robin_without_cursor)
{
    const llmgw_strategy_t *st = &llmgw_strategy_round_robin;
    llmgw_strategy_cand_t c[4] = {cand(), cand(), cand(), cand()};
    int counts[4];

    /* No stats segment: the seed picks the turn, still spreading evenly. */
    first_counts(st, c, 4, 4000, 3, counts, NULL);
    ck_assert_int_gt(counts[0], 900);
    ck_assert_int_gt(counts[1], 900);
    ck_assert_int_gt(counts[2], 900);
    ck_assert_int_gt(counts[3], 900);
}
END_TEST

/* ------------------------------------------------------------------ */
/* weighted                                                            */

START_TEST(test_weighted_70_30)
{
    const llmgw_strategy_t *st = &llmgw_strategy_weighted;
    llmgw_strategy_cand_t c[2] = {cand(), cand()};
    int first[2], second[2];

    c[0].weight = 70;
    c[1].weight = 30;
    first_counts(st, c, 2, 10000, 12345, first, second);
    /* Tolerance +-2 percentage points: 4.4 standard deviations at n = 10,000. */
    ck_assert_msg(first[0] >= 6800 && first[0] <= 7200, "a first %d of 10000", first[0]);
    ck_assert_int_eq(first[0] + first[1], 10000);
    /* Without replacement: the fallback is always the other one. */
    ck_assert_int_eq(second[0], first[1]);
    ck_assert_int_eq(second[1], first[0]);
}
END_TEST

START_TEST(test_weighted_three_and_fallback_order)
{
    const llmgw_strategy_t *st = &llmgw_strategy_weighted;
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    int first[3], second[3];

    c[0].weight = 50;
    c[1].weight = 30;
    c[2].weight = 20;
    first_counts(st, c, 3, 10000, 777, first, second);
    ck_assert_msg(abs(first[0] - 5000) <= 200, "a %d", first[0]);
    ck_assert_msg(abs(first[1] - 3000) <= 200, "b %d", first[1]);
    ck_assert_msg(abs(first[2] - 2000) <= 200, "c %d", first[2]);
    /*
     * b second: a first then b (0.5 * 30/50) or c first then b (0.2 * 30/80)
     * = 0.375; c second: 0.5 * 20/50 + 0.3 * 20/70 = 0.286.
     */
    ck_assert_msg(abs(second[1] - 3750) <= 200, "b second %d", second[1]);
    ck_assert_msg(abs(second[2] - 2857) <= 200, "c second %d", second[2]);
}
END_TEST

START_TEST(test_weighted_zero_weight)
{
    const llmgw_strategy_t *st = &llmgw_strategy_weighted;
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    apr_uint64_t rng = 1;
    int k;

    /* A weight-0 member is a standby: never drawn, but still a fallback, last. */
    c[0].weight = 0;
    c[1].weight = 1;
    c[2].weight = 3;
    for (k = 0; k < 500; k++) {
        const char *o = order_of(st, c, 3, llmgw_strategy_rand(&rng), NULL, NULL);
        ck_assert_msg(o[2] == 'a', "%s", o);
    }
    /* Every available weight 0: listed order. */
    c[1].weight = c[2].weight = 0;
    ck_assert_str_eq(order_of(st, c, 3, 42, NULL, NULL), "abc");
}
END_TEST

START_TEST(test_weighted_skips_unavailable_heavy)
{
    const llmgw_strategy_t *st = &llmgw_strategy_weighted;
    llmgw_strategy_cand_t c[3] = {cand(), cand(), cand()};
    int first[3];

    /* The heavy member is cooling: the others share the traffic 1:1. */
    c[0].weight = 98;
    c[0].available = 0;
    first_counts(st, c, 3, 4000, 4, first, NULL);
    ck_assert_int_eq(first[0], 0);
    ck_assert_msg(abs(first[1] - 2000) <= 150, "b %d", first[1]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* latency                                                             */

START_TEST(test_latency_prefers_faster_and_explores)
{
    const llmgw_strategy_t *st = &llmgw_strategy_latency;
    llmgw_strategy_cand_t c[3] = {measured(120, 40), measured(45, 50), measured(60, 30)};
    int first[3], second[3];

    first_counts(st, c, 3, 10000, 2024, first, second);
    /* 95 % to the fastest, the 5 % exploration split evenly between the other two. */
    ck_assert_msg(first[1] >= 9350 && first[1] <= 9650, "fastest first %d", first[1]);
    ck_assert_msg(first[0] >= 150 && first[0] <= 350, "slowest explored %d", first[0]);
    ck_assert_msg(first[2] >= 150 && first[2] <= 350, "middle explored %d", first[2]);
    /* The fallback order runs from fast to slow: after an exploring pick, the fastest. */
    ck_assert_int_eq(second[2], first[1]);
    ck_assert_int_eq(second[1], first[0] + first[2]);
}
END_TEST

START_TEST(test_latency_measures_new_member)
{
    const llmgw_strategy_t *st = &llmgw_strategy_latency;
    llmgw_strategy_cand_t c[3] = {measured(120, 40), measured(45, 50), cand()};
    apr_uint64_t rng = 17;
    int k;

    /* The worked example: c was never measured, so it goes first. */
    for (k = 0; k < 100; k++)
        ck_assert_str_eq(order_of(st, c, 3, llmgw_strategy_rand(&rng), NULL, NULL), "cba");
    /* Two samples plus one attempt in flight already reach the bar of 3. */
    c[2] = measured(60, 2);
    c[2].inflight = 1;
    {
        int first[3];
        first_counts(st, c, 3, 1000, 21, first, NULL);
        ck_assert_int_ge(first[1], 930); /* the fastest, exploration aside */
    }
    /* Two samples and nothing in flight: still being measured. */
    c[2].inflight = 0;
    ck_assert_str_eq(order_of(st, c, 3, 3, NULL, NULL), "cba");
}
END_TEST

START_TEST(test_latency_spreads_unmeasured)
{
    const llmgw_strategy_t *st = &llmgw_strategy_latency;
    llmgw_strategy_cand_t c[3] = {measured(10, 90), cand(), cand()};
    int first[3];

    /* Two new members at once: measured alternately, not one of them only. */
    first_counts(st, c, 3, 2000, 8, first, NULL);
    ck_assert_int_eq(first[0], 0);
    ck_assert_msg(abs(first[1] - 1000) <= 120, "b %d", first[1]);
}
END_TEST

START_TEST(test_latency_recovered_member)
{
    const llmgw_strategy_t *st = &llmgw_strategy_latency;
    llmgw_strategy_cand_t c[2] = {measured(80, 100), measured(5, 100)};
    int first[2];

    /* b (fast) cooling: a serves. */
    c[1].available = 0;
    ck_assert_str_eq(order_of(st, c, 2, 1, NULL, NULL), "a|b");
    /* b recovered: its average restarted (0 samples), so it is measured at once. */
    c[1] = cand();
    ck_assert_str_eq(order_of(st, c, 2, 1, NULL, NULL), "ba");
    /* Once measured fast again it takes the traffic back. */
    c[1] = measured(5, 3);
    first_counts(st, c, 2, 1000, 6, first, NULL);
    ck_assert_int_ge(first[1], 930);
}
END_TEST

START_TEST(test_latency_ties_by_ttfb)
{
    const llmgw_strategy_t *st = &llmgw_strategy_latency;
    llmgw_strategy_cand_t c[2] = {measured(100, 50), measured(100, 50)};
    int first[2];

    c[0].ttfb_us = 90000;
    c[1].ttfb_us = 20000;
    first_counts(st, c, 2, 1000, 31, first, NULL);
    ck_assert_int_ge(first[1], 930); /* a only when exploring */
    ck_assert_int_gt(first[0], 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("strategy");
    TCase *tc = tcase_create("strategy");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, test_registry);
    tcase_add_loop_test(tc, test_all_skip_unavailable, 0, 5);
    tcase_add_loop_test(tc, test_all_none_available, 0, 5);
    tcase_add_loop_test(tc, test_all_prefer_model, 0, 5);
    tcase_add_loop_test(tc, test_all_deterministic, 0, 5);
    tcase_add_test(tc, test_priority);
    tcase_add_test(tc, test_least_busy);
    tcase_add_test(tc, test_round_robin_rotation);
    tcase_add_test(tc, test_round_robin_shared_counter);
    tcase_add_test(tc, test_round_robin_without_cursor);
    tcase_add_test(tc, test_weighted_70_30);
    tcase_add_test(tc, test_weighted_three_and_fallback_order);
    tcase_add_test(tc, test_weighted_zero_weight);
    tcase_add_test(tc, test_weighted_skips_unavailable_heavy);
    tcase_add_test(tc, test_latency_prefers_faster_and_explores);
    tcase_add_test(tc, test_latency_measures_new_member);
    tcase_add_test(tc, test_latency_spreads_unmeasured);
    tcase_add_test(tc, test_latency_recovered_member);
    tcase_add_test(tc, test_latency_ties_by_ttfb);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
