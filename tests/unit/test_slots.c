/* Check suite for the slots of several gateways (src/llmgw_slots.c). */
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "llmgw_config.h"
#include "llmgw_slots.h"
#include "llmgw_pool.h"
#include "llmgw_stats.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000)
#define AT(t) ((llmgw_stats_time_t){(t), (t)})

/* Gateway A: a backend "shared" (the same name as B's) and a pool. */
static const char yaml_a[] = "backends:\n"
                             "  - {name: shared, type: openai, config: {apiKey: ka}}\n"
                             "  - {name: only-a, type: anthropic, config: {apiKey: ka}}\n"
                             "  - {name: pool, type: pool, backends: [{name: shared}]}\n"
                             "routes: []\n";
/* Gateway B: its own "shared" and "pool". */
static const char yaml_b[] = "backends:\n"
                             "  - {name: pool, type: pool, backends: [{name: shared}]}\n"
                             "  - {name: shared, type: mistral, config: {apiKey: kb}}\n"
                             "routes: []\n";

static llmgw_config_t *parse(const char *yaml)
{
    llmgw_config_t *cfg;
    const char *err = NULL;

    ck_assert_msg(llmgw_config_parse(&cfg, test_pool, test_pool, "t.yaml", yaml, strlen(yaml),
                                     &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    return cfg;
}

static void *segment(int capacity)
{
    apr_size_t size = llmgw_stats_size(capacity, 2);
    void *base = apr_pcalloc(test_pool, size);

    ck_assert_int_eq(llmgw_stats_init(base, capacity, 2, T0), APR_SUCCESS);
    return base;
}

static int slot_of(const llmgw_slots_gateway_t *g, const char *name)
{
    const llmgw_backend_t *b = llmgw_config_backend(g->cfg, name);

    ck_assert_ptr_nonnull(b);
    return g->slot_of[b->index];
}

static void setup(void)
{
    test_pool_setup();
    apr_atomic_init(test_pool);
}

START_TEST(test_keys)
{
    /* The main server's gateway keeps plain names; others are qualified. */
    ck_assert_str_eq(llmgw_slots_key(test_pool, "", "a"), "a");
    ck_assert_str_eq(llmgw_slots_key(test_pool, NULL, "a"), "a");
    ck_assert_str_eq(llmgw_slots_key(test_pool, "127.0.0.1:8443 b.example", "a"),
                     "a@127.0.0.1:8443 b.example");
    /* Another scope, another key; and a qualified key is never a plain name (no '@' in names). */
    ck_assert_str_ne(llmgw_slots_key(test_pool, "x", "a"), llmgw_slots_key(test_pool, "y", "a"));
    ck_assert_ptr_nonnull(strchr(llmgw_slots_key(test_pool, "x", "a"), '@'));
}
END_TEST

/*
 * Two virtual hosts with the same backend name: separate slots, so one
 * tenant's failures never cool the other's backend down.
 */
START_TEST(test_same_name_in_two_gateways)
{
    void *base = segment(16);
    llmgw_slots_gateway_t gws[2] = {{"", parse(yaml_a), NULL},
                                    {"b:80 b.test", parse(yaml_b), NULL}};
    llmgw_stats_slot_t *sa, *sb;
    int i;

    ck_assert_int_eq(llmgw_slots_count(gws, 2), 5);
    ck_assert_int_eq(llmgw_slots_assign(base, gws, 2, test_pool), APR_SUCCESS);
    ck_assert_int_ne(slot_of(&gws[0], "shared"), slot_of(&gws[1], "shared"));
    ck_assert_int_ne(slot_of(&gws[0], "pool"), slot_of(&gws[1], "pool"));
    sa = llmgw_stats_slot(base, slot_of(&gws[0], "shared"));
    sb = llmgw_stats_slot(base, slot_of(&gws[1], "shared"));
    ck_assert_str_eq(sa->name, "shared");
    ck_assert_str_eq(sb->name, "shared@b:80 b.test");
    ck_assert_uint_eq(sa->kind, LLMGW_BACKEND_OPENAI);
    ck_assert_uint_eq(sb->kind, LLMGW_BACKEND_MISTRAL);
    for (i = 0; i < 3; i++)
        llmgw_pool_record_failure(sa, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 3,
                                  apr_time_from_sec(30));
    ck_assert_int_eq(llmgw_stats_peek(sa, AT(T0)), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_peek(sb, AT(T0)), LLMGW_STATS_AVAILABLE);
    ck_assert_uint_eq(sb->errors[LLMGW_STATS_ERR_CONNECT], 0);
}
END_TEST

/*
 * Assignment sees every gateway at once: nothing of A retires because B
 * lacks it, and a graceful restart keeps the counters of every (gateway,
 * backend) that still exists.
 */
START_TEST(test_assign_across_gateways_and_restarts)
{
    void *base = segment(16);
    llmgw_slots_gateway_t gen1[2] = {{"", parse(yaml_a), NULL}, {"vb", parse(yaml_b), NULL}};
    llmgw_slots_gateway_t gen2[2] = {{"", parse(yaml_a), NULL}, {"vb", parse(yaml_b), NULL}};
    llmgw_slots_gateway_t gen3[1] = {{"vb", parse(yaml_b), NULL}};
    llmgw_stats_snapshot_t *snap;
    int i;

    ck_assert_int_eq(llmgw_slots_assign(base, gen1, 2, test_pool), APR_SUCCESS);
    llmgw_stats_success(llmgw_stats_slot(base, slot_of(&gen1[0], "only-a")), NULL, AT(T0), 1000, -1,
                        5, 6);
    llmgw_stats_success(llmgw_stats_slot(base, slot_of(&gen1[1], "shared")), NULL, AT(T0), 1000, -1,
                        7, 8);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 5);
    ck_assert_int_eq(snap->retired, 0);

    /* Graceful restart with both gateways: every slot and counter stays. */
    ck_assert_int_eq(llmgw_slots_assign(base, gen2, 2, test_pool), APR_SUCCESS);
    for (i = 0; i < 2; i++) {
        const char *names[] = {"shared", "pool", "only-a"};
        int j;
        for (j = 0; j < (i == 0 ? 3 : 2); j++)
            ck_assert_int_eq(slot_of(&gen2[i], names[j]), slot_of(&gen1[i], names[j]));
    }
    ck_assert_uint_eq(llmgw_stats_slot(base, slot_of(&gen2[0], "only-a"))->prompt_tokens, 5);
    ck_assert_uint_eq(llmgw_stats_slot(base, slot_of(&gen2[1], "shared"))->prompt_tokens, 7);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 5);
    ck_assert_int_eq(snap->retired, 0);

    /* The main server's gateway goes away: its three slots retire, B's stay. */
    ck_assert_int_eq(llmgw_slots_assign(base, gen3, 1, test_pool), APR_SUCCESS);
    ck_assert_int_eq(slot_of(&gen3[0], "shared"), slot_of(&gen1[1], "shared"));
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 2);
    ck_assert_int_eq(snap->retired, 3);
}
END_TEST

START_TEST(test_assign_no_room_changes_nothing)
{
    void *base = segment(4);
    llmgw_slots_gateway_t gws[2] = {{"", parse(yaml_a), NULL}, {"vb", parse(yaml_b), NULL}};
    llmgw_stats_snapshot_t *snap;

    ck_assert_int_eq(llmgw_slots_assign(base, gws, 2, test_pool), APR_ENOSPC);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 0);
    /* No gateway at all: nothing to assign, and nothing fails. */
    ck_assert_int_eq(llmgw_slots_assign(base, NULL, 0, test_pool), APR_SUCCESS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("slots");

    tcase_add_checked_fixture(tc, setup, test_pool_teardown);
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_same_name_in_two_gateways);
    tcase_add_test(tc, test_assign_across_gateways_and_restarts);
    tcase_add_test(tc, test_assign_no_room_changes_nothing);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
