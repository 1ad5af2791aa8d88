/* Check suite for the shared statistics segment (src/llmgw_stats.c). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_shm.h>
#include <sys/wait.h>
#include <unistd.h>
#include "llmgw_config.h"
#include "llmgw_stats.h"
#include "llmgw_pool.h"
#include "llmgw_stats_render.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000)
#define SEC(n) apr_time_from_sec(n)
#define MS(n) ((apr_interval_time_t)(n)*1000)
/* A moment where both clocks read @p t (the tests of clock steps set them apart). */
#define AT(t) ((llmgw_stats_time_t){(t), (t)})
#define ROWS 4
#define PID 4242

/* The in-flight row of the latest segment(): this test process's, as a child would claim it. */
static llmgw_stats_row_t *row;

/* A fresh segment of @p capacity slots in test_pool (64-aligned, like a page would be). */
static void *segment(int capacity)
{
    apr_size_t size = llmgw_stats_size(capacity, ROWS);
    char *raw = apr_palloc(test_pool, size + 64);
    void *base = (void *)(((apr_uintptr_t)raw + 63) & ~(apr_uintptr_t)63);

    memset(raw, 0xa5, size + 64); /* garbage, as fresh shared memory might hold */
    ck_assert_int_eq(llmgw_stats_init(base, capacity, ROWS, T0), APR_SUCCESS);
    row = llmgw_stats_child_claim(base, PID);
    ck_assert_ptr_nonnull(row);
    return base;
}

/* In-flight attempts of the slot @p s points to, summed over the rows. */
static apr_uint32_t inflight(void *base, const llmgw_stats_slot_t *s)
{
    return llmgw_stats_inflight(base, (int)s->index);
}

static void assign_ok(void *base, const char *const *names, int n, int *slots)
{
    ck_assert_int_eq(llmgw_stats_assign(base, names, NULL, n, slots), APR_SUCCESS);
}

static void setup(void)
{
    test_pool_setup();
    apr_atomic_init(test_pool);
}

/* ------------------------------------------------------------------ */
/* Layout                                                              */

/* The slot's hot counters as readers see them: its own fields plus every row. */
static llmgw_stats_counts_t cnt(void *base, const llmgw_stats_slot_t *s)
{
    llmgw_stats_counts_t c;

    llmgw_stats_counts(base, (int)s->index, &c);
    return c;
}

START_TEST(test_size_and_init)
{
    void *base;
    char *misaligned;

    ck_assert_uint_eq(sizeof(llmgw_stats_header_t), 128);
    ck_assert_uint_eq(sizeof(llmgw_stats_slot_t) % 64, 0);
    /* Header, slots, then rows of a 64-byte head, 4 bytes a slot (in flight) and
     * 104 bytes a slot (the hot counters), each in whole cache lines. */
    ck_assert_uint_eq(sizeof(llmgw_stats_counts_t), 104);
    ck_assert_uint_eq(llmgw_stats_size(10, 3),
                      128 + 10 * sizeof(llmgw_stats_slot_t) + 3 * (64 + 64 + 1088));
    ck_assert_uint_eq(llmgw_stats_size(16, 1),
                      128 + 16 * sizeof(llmgw_stats_slot_t) + 64 + 64 + 1664);
    ck_assert_uint_eq(llmgw_stats_size(17, 1),
                      128 + 17 * sizeof(llmgw_stats_slot_t) + 64 + 128 + 1792);
    ck_assert_uint_eq(llmgw_stats_size(0, 1), 0);
    ck_assert_uint_eq(llmgw_stats_size(1, 0), 0);
    ck_assert_int_eq(llmgw_stats_capacity_for(3), 64);
    ck_assert_int_eq(llmgw_stats_capacity_for(50), 100);
    ck_assert_int_eq(llmgw_stats_rows_for(16), 33);
    ck_assert_int_eq(llmgw_stats_rows_for(0), 3);
    ck_assert_int_eq(llmgw_stats_rows_for(200000), LLMGW_STATS_MAX_ROWS);

    base = segment(4);
    ck_assert(llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 4, ROWS));
    ck_assert(llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 2, 1));
    /* Needs more slots or rows than it has, or the memory is smaller than it claims. */
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 5, ROWS));
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 4, ROWS + 1));
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS - 1), 1, 1));
    ck_assert(!llmgw_stats_fits(NULL, 4096, 1, 1));
    /* Every slot starts FREE and zero, and knows its number. */
    ck_assert_int_eq(llmgw_stats_slot(base, 3)->state, LLMGW_STATS_SLOT_FREE);
    ck_assert_uint_eq(cnt(base, llmgw_stats_slot(base, 3)).requests, 0);
    ck_assert_uint_eq(llmgw_stats_slot(base, 3)->index, 3);
    ck_assert_ptr_null(llmgw_stats_slot(base, 4));
    ck_assert_ptr_null(llmgw_stats_slot(base, -1));
    ck_assert_ptr_null(llmgw_stats_slot(NULL, 0));
    ck_assert_uint_eq(inflight(base, llmgw_stats_slot(base, 3)), 0);

    misaligned = (char *)base + 4;
    ck_assert_int_eq(llmgw_stats_init(misaligned, 2, 1, T0), APR_EINVAL);
    ck_assert_int_eq(llmgw_stats_init(base, 0, 1, T0), APR_EINVAL);
    ck_assert_int_eq(llmgw_stats_init(base, 2, 0, T0), APR_EINVAL);
}
END_TEST

START_TEST(test_fits_rejects_other_layouts)
{
    void *base = segment(4);
    llmgw_stats_header_t *h = base;
    const char *names[] = {"a"};
    int slot;

    h->layout_version++;
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 1, 1));
    ck_assert_int_eq(llmgw_stats_assign(base, names, NULL, 1, &slot), APR_EINVAL);
    h->layout_version--;
    h->slot_size += 64;
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 1, 1));
    h->slot_size -= 64;
    h->row_size += 64;
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 1, 1));
    ck_assert_ptr_null(llmgw_stats_child_claim(base, 1));
    h->row_size -= 64;
    h->magic = 0;
    ck_assert(!llmgw_stats_fits(base, llmgw_stats_size(4, ROWS), 1, 1));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Slot assignment across restarts                                     */

START_TEST(test_assign_restarts)
{
    void *base = segment(6);
    const char *gen1[] = {"a", "b", "c"};
    const char *gen2[] = {"d", "c", "b"};
    const char *gen3[] = {"e", "a"};
    int s1[3], s2[3], s3[2];
    llmgw_stats_snapshot_t *snap;

    assign_ok(base, gen1, 3, s1);
    ck_assert_int_eq(s1[0], 0);
    ck_assert_int_eq(s1[1], 1);
    ck_assert_int_eq(s1[2], 2);
    llmgw_stats_begin(llmgw_stats_slot(base, s1[0]), row);
    llmgw_stats_begin(llmgw_stats_slot(base, s1[1]), row);
    llmgw_stats_begin(llmgw_stats_slot(base, s1[1]), row);

    /* Graceful restart: b and c keep their slots and counters, d is new, a retires. */
    assign_ok(base, gen2, 3, s2);
    ck_assert_int_eq(s2[2], s1[1]);
    ck_assert_int_eq(s2[1], s1[2]);
    ck_assert_int_eq(s2[0], 3);
    ck_assert_uint_eq(cnt(base, llmgw_stats_slot(base, s2[2])).requests, 2);
    ck_assert_uint_eq(cnt(base, llmgw_stats_slot(base, s2[0])).requests, 0);
    ck_assert_int_eq(llmgw_stats_slot(base, 0)->state, LLMGW_STATS_SLOT_RETIRED);
    ck_assert_str_eq(llmgw_stats_slot(base, 0)->name, "a");

    /* Old-generation children still writing to a's slot do not disturb anyone. */
    llmgw_stats_begin(llmgw_stats_slot(base, 0), row);

    /* Next restart: e never gets a retired slot; a comes back to its own. */
    assign_ok(base, gen3, 2, s3);
    ck_assert_int_eq(s3[0], 4);
    ck_assert_int_eq(s3[1], 0);
    ck_assert_uint_eq(cnt(base, llmgw_stats_slot(base, 0)).requests, 2);
    ck_assert_int_eq(llmgw_stats_slot(base, 1)->state, LLMGW_STATS_SLOT_RETIRED);
    ck_assert_int_eq(llmgw_stats_slot(base, 3)->state, LLMGW_STATS_SLOT_RETIRED);

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 2);
    ck_assert_int_eq(snap->retired, 3);
    ck_assert_uint_eq(snap->generation, 3);
    ck_assert_str_eq(snap->items[0].name, "a");
    ck_assert_str_eq(snap->items[1].name, "e");
}
END_TEST

START_TEST(test_assign_full)
{
    void *base = segment(3);
    const char *gen1[] = {"a", "b", "c"};
    const char *gen2[] = {"a", "b", "x"};
    const char *gen3[] = {"c", "b"};
    int s[3];

    assign_ok(base, gen1, 3, s);
    /* c would retire and x needs a slot: none is FREE, retired ones are not reused. */
    ck_assert_int_eq(llmgw_stats_assign(base, gen2, NULL, 3, s), APR_ENOSPC);
    /* Nothing changed: c is still active, the generation did not move. */
    ck_assert_int_eq(llmgw_stats_slot(base, 2)->state, LLMGW_STATS_SLOT_ACTIVE);
    ck_assert_uint_eq(((llmgw_stats_header_t *)base)->generation, 1);
    /* Dropping a name needs no new slot. */
    assign_ok(base, gen3, 2, s);
    ck_assert_int_eq(s[0], 2);
    ck_assert_int_eq(s[1], 1);
    ck_assert_int_eq(llmgw_stats_slot(base, 0)->state, LLMGW_STATS_SLOT_RETIRED);
}
END_TEST

START_TEST(test_assign_long_names_and_kinds)
{
    void *base = segment(4);
    char *long1 = apr_pstrcat(test_pool, apr_psprintf(test_pool, "%0100d", 7), "-east", NULL);
    char *long2 = apr_pstrcat(test_pool, apr_psprintf(test_pool, "%0100d", 7), "-west", NULL);
    char *exact = apr_psprintf(test_pool, "%063d", 1); /* 63 bytes: fits as is */
    const char *names[] = {long1, long2, exact, long1};
    int kinds[] = {LLMGW_BACKEND_OPENAI, LLMGW_BACKEND_ANTHROPIC, LLMGW_BACKEND_POOL,
                   LLMGW_BACKEND_OPENAI};
    int s[4], again[4];
    llmgw_stats_snapshot_t *snap;

    ck_assert_int_eq(llmgw_stats_assign(base, names, kinds, 4, s), APR_SUCCESS);
    /* Same 100-byte prefix, different names: different slots. Duplicates share one. */
    ck_assert_int_ne(s[0], s[1]);
    ck_assert_int_eq(s[0], s[3]);
    ck_assert_str_eq(llmgw_stats_slot(base, s[2])->name, exact);
    ck_assert_uint_lt(strlen(llmgw_stats_slot(base, s[0])->name), LLMGW_STATS_NAME_MAX);
    ck_assert_uint_eq(llmgw_stats_slot(base, s[1])->kind, LLMGW_BACKEND_ANTHROPIC);
    /* Long names find their slot again after a restart. */
    assign_ok(base, names, 4, again);
    ck_assert_int_eq(again[0], s[0]);
    ck_assert_int_eq(again[1], s[1]);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 3);
    ck_assert_int_eq(snap->items[2].kind, LLMGW_BACKEND_POOL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Recording                                                           */

/*
 * Hot counters are sharded: what a child records goes to its own row, not
 * to the slot every child shares, and readers add the slot and the rows.
 * A dead child's counts are folded into the slot when its row is released,
 * so the totals survive it, and the next owner of the row starts at zero.
 */
START_TEST(test_counters_sharded_per_child)
{
    void *base = segment(2);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 1);
    llmgw_stats_row_t *other = llmgw_stats_child_claim(base, PID + 1), *next;
    llmgw_stats_counts_t c;

    llmgw_stats_begin(s, row);
    llmgw_stats_success(s, row, AT(T0), MS(10), MS(5), 11, 22);
    llmgw_stats_end(s, row);
    llmgw_stats_begin(s, other);
    llmgw_pool_record_failure(s, other, AT(T0), LLMGW_FAIL_HTTP, 503, 0, 0);
    llmgw_stats_retry(s, other);
    llmgw_stats_fallback(s, other);
    llmgw_stats_protocol_error(s, other);
    llmgw_pool_record_failure(s, other, AT(T0), LLMGW_FAIL_CLIENT_GONE, 0, 0, 0);
    llmgw_stats_end(s, other);
    /* Nothing was written to the shared slot's counters. */
    ck_assert_uint_eq(s->requests, 0);
    ck_assert_uint_eq(s->successes, 0);
    ck_assert_uint_eq(s->errors[LLMGW_STATS_ERR_5XX], 0);
    ck_assert_uint_eq(s->retries, 0);
    ck_assert_uint_eq(s->prompt_tokens, 0);
    /* Readers see the sums; the other slot's column is untouched. */
    c = cnt(base, s);
    ck_assert_uint_eq(c.requests, 2);
    ck_assert_uint_eq(c.successes, 1);
    ck_assert_uint_eq(c.errors[LLMGW_STATS_ERR_5XX], 1);
    ck_assert_uint_eq(c.errors[LLMGW_STATS_ERR_PROTOCOL], 1);
    ck_assert_uint_eq(c.retries, 1);
    ck_assert_uint_eq(c.fallbacks, 1);
    ck_assert_uint_eq(c.aborted, 1);
    ck_assert_uint_eq(c.prompt_tokens, 11);
    ck_assert_uint_eq(c.completion_tokens, 22);
    ck_assert_uint_eq(llmgw_stats_requests(base, 1), 2);
    ck_assert_uint_eq(cnt(base, llmgw_stats_slot(base, 0)).requests, 0);
    /* The other child dies: its counts move into the slot, the sums stay. */
    ck_assert_int_eq(llmgw_stats_child_release(base, PID + 1), 0);
    ck_assert_uint_eq(s->requests, 1);
    ck_assert_uint_eq(s->errors[LLMGW_STATS_ERR_5XX], 1);
    c = cnt(base, s);
    ck_assert_uint_eq(c.requests, 2);
    ck_assert_uint_eq(c.retries, 1);
    ck_assert_uint_eq(c.aborted, 1);
    ck_assert_uint_eq(c.prompt_tokens, 11);
    /* Its row starts from zero for the next child. */
    next = llmgw_stats_child_claim(base, PID + 2);
    ck_assert_ptr_eq(next, other);
    llmgw_stats_begin(s, next);
    llmgw_stats_end(s, next);
    ck_assert_uint_eq(cnt(base, s).requests, 3);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_5XX], 1);
}
END_TEST

/* Each row stops at LLMGW_TOKENS_MAX, and so does their sum. */
START_TEST(test_sharded_tokens_sum_capped)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    llmgw_stats_row_t *other = llmgw_stats_child_claim(base, PID + 1);

    llmgw_stats_success(s, row, AT(T0), MS(1), -1, LLMGW_TOKENS_MAX, 5);
    llmgw_stats_success(s, other, AT(T0), MS(1), -1, LLMGW_TOKENS_MAX, 5);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
    ck_assert_uint_eq(cnt(base, s).completion_tokens, 10);
    ck_assert_int_eq(llmgw_stats_child_release(base, PID + 1), 0);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
    ck_assert_uint_eq(s->prompt_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
}
END_TEST

START_TEST(test_counters_by_class)
{
    void *base = segment(2);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);

    llmgw_stats_begin(s, row);
    llmgw_stats_begin(s, row);
    ck_assert_uint_eq(cnt(base, s).requests, 2);
    ck_assert_uint_eq(inflight(base, s), 2);
    llmgw_stats_success(s, NULL, AT(T0 + 5), MS(200), MS(50), 11, 22);
    llmgw_stats_end(s, row);
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 400, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 404, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 429, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 503, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_TIMEOUT, 0, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_IDLE, 0, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0 + 9), LLMGW_FAIL_RESET, 0, 5, SEC(30));
    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_CLIENT_GONE, 0, 5, SEC(30));
    llmgw_stats_retry(s, NULL);
    llmgw_stats_fallback(s, NULL);
    llmgw_stats_fallback(s, NULL);
    llmgw_stats_end(s, row);
    llmgw_stats_end(s, row); /* unpaired: must not wrap below zero */

    ck_assert_uint_eq(cnt(base, s).successes, 1);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_4XX], 2);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_429], 1);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_5XX], 1);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_TIMEOUT], 2);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_CONNECT], 1);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_PROTOCOL], 1);
    ck_assert_uint_eq(cnt(base, s).aborted, 1);
    ck_assert_uint_eq(cnt(base, s).retries, 1);
    ck_assert_uint_eq(cnt(base, s).fallbacks, 2);
    ck_assert_uint_eq(inflight(base, s), 0);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, 11);
    ck_assert_uint_eq(cnt(base, s).completion_tokens, 22);
    ck_assert_int_eq((apr_time_t)s->last_success, T0 + 5);
    ck_assert_int_eq((apr_time_t)s->last_failure, T0 + 9);
    /* Retryable ones (429 503 timeout idle connect reset) count toward the breaker;
     * 400/404 and the client leaving do not. */
    ck_assert_uint_eq(s->consecutive_failures, 6);
    /* Unknown usage is not counted; NULL slots are ignored everywhere. */
    llmgw_stats_success(s, NULL, AT(T0), MS(1), -1, -1, -1);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, 11);
    llmgw_stats_begin(NULL, row);
    llmgw_stats_end(NULL, row);
    llmgw_stats_begin(s, NULL); /* no row: counted, not in flight */
    ck_assert_uint_eq(cnt(base, s).requests, 3);
    ck_assert_uint_eq(inflight(base, s), 0);
    llmgw_stats_success(NULL, NULL, AT(T0), 1, 1, 1, 1);
    ck_assert_int_eq(llmgw_pool_record_failure(NULL, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, 1), 0);
    llmgw_stats_retry(NULL, NULL);
    llmgw_stats_fallback(NULL, NULL);
    ck_assert_int_eq(llmgw_stats_available(NULL, AT(T0)), LLMGW_STATS_AVAILABLE);
}
END_TEST

START_TEST(test_classify)
{
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_HTTP, 401), LLMGW_STATS_ERR_4XX);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_HTTP, 429), LLMGW_STATS_ERR_429);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_HTTP, 529), LLMGW_STATS_ERR_5XX);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_HTTP, 302), LLMGW_STATS_ERR_5XX);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_STREAM, 0), LLMGW_STATS_ERR_PROTOCOL);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_PROTOCOL, 0), LLMGW_STATS_ERR_PROTOCOL);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_INTERNAL, 0), -1);
    ck_assert_int_eq(llmgw_stats_classify(LLMGW_FAIL_NONE, 0), -1);
    ck_assert_str_eq(llmgw_stats_err_name(LLMGW_STATS_ERR_TIMEOUT), "timeout");
    ck_assert_str_eq(llmgw_stats_err_name(LLMGW_STATS_ERR_COUNT), "unknown");
}
END_TEST

START_TEST(test_ewma)
{
    volatile apr_uint32_t v = 0;
    int i;

    llmgw_stats_ewma_update(&v, 1000);
    ck_assert_uint_eq(v, 1000); /* first sample sets it */
    llmgw_stats_ewma_update(&v, 2000);
    ck_assert_uint_eq(v, 1125); /* + (2000 - 1000) / 8 */
    llmgw_stats_ewma_update(&v, 125);
    ck_assert_uint_eq(v, 1000); /* - (1125 - 125) / 8 */
    for (i = 0; i < 100; i++)
        llmgw_stats_ewma_update(&v, 80000);
    ck_assert_uint_ge(v, 79000);
    ck_assert_uint_le(v, 80000);
    for (i = 0; i < 100; i++)
        llmgw_stats_ewma_update(&v, 5000);
    ck_assert_uint_le(v, 5100);
    /* Clamped: 0 stays "measured", huge samples do not overflow. */
    v = 0;
    llmgw_stats_ewma_update(&v, 0);
    ck_assert_uint_eq(v, 1);
    llmgw_stats_ewma_update(&v, apr_time_from_sec(100000));
    ck_assert_uint_gt(v, 1);
    v = 0;
    llmgw_stats_ewma_update(&v, apr_time_from_sec(100000));
    ck_assert_uint_eq(v, APR_UINT32_MAX - 1);
}
END_TEST

START_TEST(test_success_updates_averages)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);

    llmgw_stats_success(s, NULL, AT(T0), MS(400), MS(100), 0, 0);
    llmgw_stats_success(s, NULL, AT(T0), MS(800), -1, 0, 0);
    ck_assert_uint_eq(s->latency_ewma_us, 450000);
    ck_assert_uint_eq(s->ttfb_ewma_us, 100000); /* unknown TTFB leaves it alone */
    ck_assert_uint_eq(s->latency_samples, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The cooldown state machine                                          */

START_TEST(test_cooldown_threshold_probe_recovery)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    const apr_interval_time_t cd = SEC(30);

    llmgw_stats_success(s, NULL, AT(T0), MS(100), MS(10), 0, 0);
    ck_assert_int_eq(llmgw_pool_record_failure(s, NULL, AT(T0 + 1), LLMGW_FAIL_HTTP, 500, 3, cd),
                     0);
    ck_assert_int_eq(llmgw_pool_record_failure(s, NULL, AT(T0 + 2), LLMGW_FAIL_TIMEOUT, 0, 3, cd),
                     0);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + 3)), LLMGW_STATS_AVAILABLE);
    /* The third consecutive failure opens the breaker. */
    ck_assert_int_eq(
        llmgw_pool_record_failure(s, NULL, AT(T0 + SEC(1)), LLMGW_FAIL_CONNECT, 0, 3, cd), 1);
    ck_assert_int_eq((apr_time_t)s->cooldown_until, T0 + SEC(31));
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(1))), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(31) - 1)), LLMGW_STATS_COOLING);
    /* Expired: peek does not claim; then exactly one caller gets the probe. */
    ck_assert_int_eq(llmgw_stats_peek(s, AT(T0 + SEC(31))), LLMGW_STATS_PROBE);
    ck_assert_int_eq(llmgw_stats_peek(s, AT(T0 + SEC(31))), LLMGW_STATS_PROBE);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(31))), LLMGW_STATS_PROBE);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(31))), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(40))), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_peek(s, AT(T0 + SEC(40))), LLMGW_STATS_COOLING);
    /* The probe succeeds: available, breaker reset, latency measured afresh. */
    llmgw_stats_success(s, NULL, AT(T0 + SEC(41)), MS(7), MS(3), 1, 1);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(41))), LLMGW_STATS_AVAILABLE);
    ck_assert_uint_eq(s->consecutive_failures, 0);
    ck_assert_uint_eq(s->cooldown_until, 0);
    ck_assert_uint_eq(s->probe_since, 0);
    ck_assert_uint_eq(s->latency_samples, 1);
    ck_assert_uint_eq(s->latency_ewma_us, 7000);
    /* And it takes the full threshold again to cool down. */
    ck_assert_int_eq(
        llmgw_pool_record_failure(s, NULL, AT(T0 + SEC(42)), LLMGW_FAIL_HTTP, 503, 3, cd), 0);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(42))), LLMGW_STATS_AVAILABLE);
}
END_TEST

START_TEST(test_cooldown_rearm_on_probe_failure)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    const apr_interval_time_t cd = SEC(10);

    ck_assert_int_eq(llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 502, 1, cd), 1);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(10))), LLMGW_STATS_PROBE);
    /* The probe fails: a fresh cooldown from the failure's time, probe over. */
    ck_assert_int_eq(
        llmgw_pool_record_failure(s, NULL, AT(T0 + SEC(12)), LLMGW_FAIL_HTTP, 502, 1, cd), 1);
    ck_assert_int_eq((apr_time_t)s->cooldown_until, T0 + SEC(22));
    ck_assert_uint_eq(s->probe_since, 0);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(21))), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(22))), LLMGW_STATS_PROBE);
}
END_TEST

START_TEST(test_cooldown_release_and_stale_probe)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);

    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, SEC(5));
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(5))), LLMGW_STATS_PROBE);
    /* The winner did not attempt after all: the next caller probes. */
    llmgw_stats_probe_release(s);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(6))), LLMGW_STATS_PROBE);
    /* That probe is lost (its child died): others wait, then take over. */
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(6) + LLMGW_STATS_PROBE_STALE - 1)),
                     LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(6) + LLMGW_STATS_PROBE_STALE)),
                     LLMGW_STATS_PROBE);
}
END_TEST

START_TEST(test_cooldown_rules)
{
    void *base = segment(3);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0), *t = llmgw_stats_slot(base, 1),
                       *u = llmgw_stats_slot(base, 2);
    int i;

    /* Failures that are not consecutive do not open the breaker. */
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(
            llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 500, 3, SEC(30)), 0);
        ck_assert_int_eq(
            llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 500, 3, SEC(30)), 0);
        llmgw_stats_success(s, NULL, AT(T0), MS(10), -1, -1, -1);
    }
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0)), LLMGW_STATS_AVAILABLE);
    /* The gateway's credential rejected: cooldown at once (providers.md 9.2). */
    ck_assert_int_eq(llmgw_pool_record_failure(t, NULL, AT(T0), LLMGW_FAIL_HTTP, 401, 5, SEC(30)),
                     1);
    ck_assert_int_eq(llmgw_stats_available(t, AT(T0 + 1)), LLMGW_STATS_COOLING);
    /* Client errors never do, however many; nor does threshold 0 (a lone backend). */
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(
            llmgw_pool_record_failure(u, NULL, AT(T0), LLMGW_FAIL_HTTP, 400, 1, SEC(30)), 0);
        ck_assert_int_eq(
            llmgw_pool_record_failure(u, NULL, AT(T0), LLMGW_FAIL_HTTP, 500, 0, SEC(30)), 0);
    }
    ck_assert_int_eq(llmgw_stats_available(u, AT(T0)), LLMGW_STATS_AVAILABLE);
    /* A cooldown starting at time 0 still counts (0 means "none" in the slot). */
    ck_assert_int_eq(llmgw_pool_record_failure(u, NULL, AT(0), LLMGW_FAIL_CONNECT, 0, 1, 0), 1);
    ck_assert_int_eq(llmgw_stats_available(u, AT(0)), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(u, AT(1)), LLMGW_STATS_PROBE);
}
END_TEST

/* The period armed is kept for the next one (llmgw_pool_cooldown_next), and a success forgets it.
 */
START_TEST(test_cooldown_period_kept_and_forgotten)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);

    ck_assert_int_eq(llmgw_stats_cooldown_period(s), 0);
    ck_assert_int_eq(llmgw_stats_cooldown_period(NULL), 0);
    ck_assert_int_eq(llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_HTTP, 503, 1, SEC(2)),
                     1);
    ck_assert_int_eq(llmgw_stats_cooldown_period(s), SEC(2));
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0 + SEC(2))), LLMGW_STATS_PROBE);
    ck_assert_int_eq(
        llmgw_pool_record_failure(s, NULL, AT(T0 + SEC(3)), LLMGW_FAIL_HTTP, 503, 1, SEC(4)), 1);
    ck_assert_int_eq(llmgw_stats_cooldown_period(s), SEC(4));
    ck_assert_int_eq((apr_time_t)s->cooldown_until, T0 + SEC(7));
    /* An explicit cooldown (quota) is a period too. */
    llmgw_stats_cool(s, AT(T0 + SEC(8)), SEC(30));
    ck_assert_int_eq(llmgw_stats_cooldown_period(s), SEC(30));
    llmgw_stats_success(s, NULL, AT(T0 + SEC(40)), MS(5), -1, -1, -1);
    ck_assert_int_eq(llmgw_stats_cooldown_period(s), 0);
}
END_TEST

/* A skipped malformed stream event: a protocol error, nothing for the breaker. */
START_TEST(test_protocol_error_does_not_feed_the_breaker)
{
    void *base = segment(1);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    int i;

    for (i = 0; i < 10; i++)
        llmgw_stats_protocol_error(s, NULL);
    llmgw_stats_protocol_error(NULL, NULL);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_PROTOCOL], 10);
    ck_assert_uint_eq(s->consecutive_failures, 0);
    ck_assert_uint_eq(cnt(base, s).successes, 0);
    ck_assert_int_eq(llmgw_stats_available(s, AT(T0)), LLMGW_STATS_AVAILABLE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

START_TEST(test_time_now)
{
    llmgw_stats_time_t a = llmgw_stats_time_now(), b;
    apr_time_t wall = apr_time_now();

    b = llmgw_stats_time_now();
    ck_assert_int_ge(b.mono, a.mono);
    ck_assert_int_gt(a.mono, 0);
    /* The wall clock is apr_time_now(); the monotonic one counts from boot, not 1970. */
    ck_assert_int_le(a.wall, wall);
    ck_assert_int_lt(wall - a.wall, SEC(5));
    ck_assert_int_lt(a.mono, a.wall - SEC(86400));
}
END_TEST

/*
 * Cooldowns and probes follow the monotonic clock whatever the wall clock
 * does: stepping it back an hour must not freeze a cooldown, stepping it a
 * day ahead must not expire every cooldown (or every probe) at once. The
 * wall clock only shows in last_failure / last_success.
 */
START_TEST(test_clock_step_does_not_affect_cooldown)
{
    void *base = segment(2);
    const char *names[] = {"x", "y"};
    int slots[2];
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    const apr_time_t M = SEC(5000); /* monotonic: seconds since boot */
    const apr_interval_time_t cd = SEC(30);
    llmgw_stats_time_t t = {M, T0};
    llmgw_stats_snapshot_t *snap;

    assign_ok(base, names, 2, slots);

    ck_assert_int_eq(llmgw_pool_record_failure(s, NULL, t, LLMGW_FAIL_CONNECT, 0, 1, cd), 1);
    ck_assert_int_eq((apr_time_t)s->cooldown_until, M + cd);
    ck_assert_int_eq((apr_time_t)s->last_failure, T0);
    /* The wall clock jumps a day ahead one second later: still cooling. */
    t = (llmgw_stats_time_t){M + SEC(1), T0 + SEC(86400)};
    ck_assert_int_eq(llmgw_stats_peek(s, t), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_available(s, t), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, t, &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->items[0].health, LLMGW_STATS_IN_COOLDOWN);
    /* ... and back an hour: the cooldown still ends 30 s after it began. */
    t = (llmgw_stats_time_t){M + cd - 1, T0 - SEC(3600)};
    ck_assert_int_eq(llmgw_stats_available(s, t), LLMGW_STATS_COOLING);
    t = (llmgw_stats_time_t){M + cd, T0 - SEC(3600) + 1};
    ck_assert_int_eq(llmgw_stats_available(s, t), LLMGW_STATS_PROBE);
    /* A running probe is not declared lost because the wall clock leapt past the stale limit. */
    t = (llmgw_stats_time_t){M + cd + SEC(1), T0 + LLMGW_STATS_PROBE_STALE * 2};
    ck_assert_int_eq(llmgw_stats_available(s, t), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, t, &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->items[0].health, LLMGW_STATS_PROBING);
    /* The probe succeeds: the time shown is the wall clock's. */
    llmgw_stats_success(s, NULL, t, MS(5), -1, -1, -1);
    ck_assert_int_eq((apr_time_t)s->last_success, T0 + LLMGW_STATS_PROBE_STALE * 2);
    ck_assert_int_eq(llmgw_stats_peek(s, t), LLMGW_STATS_AVAILABLE);
    /* The remaining time shown is monotonic, whatever the wall clock says. */
    llmgw_stats_cool(llmgw_stats_slot(base, 1), (llmgw_stats_time_t){M, T0}, cd);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base,
                                          (llmgw_stats_time_t){M + SEC(10), T0 - SEC(99)}, &snap),
                     APR_SUCCESS);
    ck_assert_int_eq(snap->items[1].cooldown_until - snap->now.mono, SEC(20));
    ck_assert_int_eq(snap->now.wall, T0 - SEC(99));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Per-child rows of in-flight attempts                                */

START_TEST(test_child_rows)
{
    void *base = segment(3);
    llmgw_stats_header_t *h = base;
    llmgw_stats_slot_t *x = llmgw_stats_slot(base, 0), *y = llmgw_stats_slot(base, 1);
    llmgw_stats_row_t *a = row, *b, *c, *shared;

    /* Rows by pid: the same pid finds its row again, another gets another. */
    ck_assert_ptr_eq(llmgw_stats_child_claim(base, PID), a);
    b = llmgw_stats_child_claim(base, PID + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert_uint_eq(b->pid, PID + 1);
    ck_assert_uint_eq(h->rows_used, 3);
    ck_assert_ptr_null(llmgw_stats_child_claim(base, 0));
    ck_assert_ptr_null(llmgw_stats_child_claim(NULL, 1));

    /* Two children with attempts in flight: readers sum the rows. */
    llmgw_stats_begin(x, a);
    llmgw_stats_begin(x, a);
    llmgw_stats_begin(y, a);
    llmgw_stats_begin(x, b);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 0), 3);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 1), 1);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 3), 0);
    ck_assert_uint_eq(llmgw_stats_inflight(base, -1), 0);

    /* Child a dies mid-request: the parent frees its row, its three attempts go. */
    ck_assert_int_eq(llmgw_stats_child_release(base, PID), 3);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 0), 1);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 1), 0);
    ck_assert_uint_eq(a->pid, 0);
    ck_assert_int_eq(llmgw_stats_child_release(base, PID), -1);
    ck_assert_int_eq(llmgw_stats_child_release(base, 999), -1);
    /* b's attempt ends normally. */
    llmgw_stats_end(x, b);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 0), 0);

    /* Its replacement takes the free row, clean. */
    c = llmgw_stats_child_claim(base, PID + 2);
    ck_assert_ptr_eq(c, a);
    ck_assert_uint_eq(c->inflight[0], 0);
    ck_assert_ptr_nonnull(llmgw_stats_child_claim(base, PID + 3));
    /* Every row taken: the shared row 0, counted like the others. */
    shared = llmgw_stats_child_claim(base, PID + 4);
    ck_assert_ptr_nonnull(shared);
    ck_assert_uint_eq(shared->pid, 0);
    ck_assert_ptr_eq(llmgw_stats_child_claim(base, PID + 5), shared);
    llmgw_stats_begin(y, shared);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 1), 1);
    /* Nobody owns row 0: releasing a pid never clears it. */
    ck_assert_int_eq(llmgw_stats_child_release(base, 0), -1);
    ck_assert_int_eq(llmgw_stats_child_release(base, PID + 4), -1);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 1), 1);
    llmgw_stats_end(y, shared);
    ck_assert_uint_eq(llmgw_stats_inflight(base, 1), 0);
    ck_assert_uint_eq(h->rows_used, ROWS);
}
END_TEST

START_TEST(test_snapshot_slots)
{
    void *base = segment(6);
    const char *keys[] = {"a", "a@vhost-b", "pool@vhost-b"};
    int kinds[] = {LLMGW_BACKEND_OPENAI, LLMGW_BACKEND_OPENAI, LLMGW_BACKEND_POOL};
    int s[3], mine[2], bad[1] = {6};
    const char *names[] = {"pool", "a"};
    llmgw_stats_snapshot_t *snap;

    ck_assert_int_eq(llmgw_stats_assign(base, keys, kinds, 3, s), APR_SUCCESS);
    llmgw_stats_begin(llmgw_stats_slot(base, s[1]), row);
    llmgw_stats_success(llmgw_stats_slot(base, s[0]), NULL, AT(T0), MS(10), -1, -1, -1);
    mine[0] = s[2];
    mine[1] = s[1];
    ck_assert_int_eq(llmgw_stats_snapshot_slots(test_pool, base, AT(T0), mine, names, 2, &snap),
                     APR_SUCCESS);
    /* The slots asked for, in that order, under the names given. */
    ck_assert_int_eq(snap->nelts, 2);
    ck_assert_str_eq(snap->items[0].name, "pool");
    ck_assert_int_eq(snap->items[0].kind, LLMGW_BACKEND_POOL);
    ck_assert_str_eq(snap->items[1].name, "a");
    ck_assert_int_eq(snap->items[1].slot, s[1]);
    ck_assert_uint_eq(snap->items[1].inflight, 1);
    ck_assert_uint_eq(snap->items[1].successes, 0); /* the other "a" succeeded */
    ck_assert_int_eq(snap->capacity, 6);
    ck_assert_int_eq(llmgw_stats_snapshot_slots(test_pool, base, AT(T0), bad, names, 1, &snap),
                     APR_EINVAL);
    ck_assert_int_eq(llmgw_stats_snapshot_slots(test_pool, base, AT(T0), NULL, NULL, 0, &snap),
                     APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Threads hammering one slot                                          */

#define THREADS 4
#define ROUNDS 20000

typedef struct {
    llmgw_stats_slot_t *slot;
    llmgw_stats_row_t *row; /* the in-flight row of the "child" this thread belongs to */
    int id;
    volatile apr_uint32_t *go;
    int probes_won;
} worker_t;

static void *APR_THREAD_FUNC hammer(apr_thread_t *th, void *data)
{
    worker_t *w = data;
    int i;

    while (!apr_atomic_read32(w->go))
        ;
    for (i = 0; i < ROUNDS; i++) {
        llmgw_stats_begin(w->slot, w->row);
        if (i % 4 == 3)
            llmgw_pool_record_failure(w->slot, w->row, AT(T0), LLMGW_FAIL_HTTP, 503, 0, 0);
        else
            llmgw_stats_success(w->slot, w->row, AT(T0), MS(1 + w->id), -1, 3, 5);
        if (i % 10 == 0)
            llmgw_stats_retry(w->slot, w->row);
        llmgw_stats_end(w->slot, w->row);
    }
    return NULL;
}

static void *APR_THREAD_FUNC race_probe(apr_thread_t *th, void *data)
{
    worker_t *w = data;
    int i;

    while (!apr_atomic_read32(w->go))
        ;
    for (i = 0; i < 1000; i++)
        w->probes_won += llmgw_stats_available(w->slot, AT(T0 + SEC(60))) == LLMGW_STATS_PROBE;
    return NULL;
}

static void run_threads(apr_thread_start_t fn, worker_t *w)
{
    apr_thread_t *th[THREADS];
    volatile apr_uint32_t go = 0;
    apr_status_t rv;
    int i;

    for (i = 0; i < THREADS; i++) {
        w[i].go = &go;
        w[i].id = i;
        ck_assert_int_eq(apr_thread_create(&th[i], NULL, fn, &w[i], test_pool), APR_SUCCESS);
    }
    apr_atomic_set32(&go, 1);
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(apr_thread_join(&rv, th[i]), APR_SUCCESS);
        ck_assert_int_eq(rv, APR_SUCCESS);
    }
}

START_TEST(test_threads_exact_totals)
{
    void *base = segment(1);
    worker_t w[THREADS];
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    const apr_uint64_t total = (apr_uint64_t)THREADS * ROUNDS;
    int i;

    memset(w, 0, sizeof(w));
    /* Two threads share one child's row, the others have a row each. */
    for (i = 0; i < THREADS; i++) {
        w[i].slot = s;
        w[i].row = i < 2 ? row : llmgw_stats_child_claim(base, PID + (apr_uint32_t)i);
    }
    run_threads(hammer, w);
    ck_assert_uint_eq(cnt(base, s).requests, total);
    ck_assert_uint_eq(cnt(base, s).successes, total * 3 / 4);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_5XX], total / 4);
    ck_assert_uint_eq(cnt(base, s).retries, (apr_uint64_t)THREADS * (ROUNDS / 10));
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, total * 3 / 4 * 3);
    ck_assert_uint_eq(cnt(base, s).completion_tokens, total * 3 / 4 * 5);
    ck_assert_uint_eq(inflight(base, s), 0);
    ck_assert_uint_eq(s->latency_samples, total * 3 / 4);
    /* The average stays within the samples' range (1..4 ms): no torn update. */
    ck_assert_uint_ge(s->latency_ewma_us, 1000);
    ck_assert_uint_le(s->latency_ewma_us, 4000);
}
END_TEST

/*
 * The same counting across processes, as httpd's children do it: the
 * segment is anonymous shared memory (what post_config makes) and each
 * worker is a forked process with its own in-flight row. Threads in one
 * process would not prove that updates survive between address spaces.
 */
START_TEST(test_processes_exact_totals)
{
    apr_size_t size = llmgw_stats_size(1, ROWS);
    const apr_uint64_t total = (apr_uint64_t)THREADS * ROUNDS;
    volatile apr_uint32_t go = 1;
    apr_shm_t *shm;
    void *base;
    llmgw_stats_slot_t *s;
    pid_t pids[THREADS];
    int i, status;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, test_pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    ck_assert_int_eq(llmgw_stats_init(base, 1, ROWS, T0), APR_SUCCESS);
    s = llmgw_stats_slot(base, 0);
    for (i = 0; i < THREADS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            worker_t w = {s, llmgw_stats_child_claim(base, (apr_uint32_t)getpid()), i, &go, 0};
            int r;
            for (r = 0; r < ROUNDS; r++) {
                llmgw_stats_begin(w.slot, w.row);
                if (r % 4 == 3)
                    llmgw_pool_record_failure(w.slot, w.row, AT(T0), LLMGW_FAIL_HTTP, 503, 0, 0);
                else
                    llmgw_stats_success(w.slot, w.row, AT(T0), MS(1 + w.id), -1, 3, 5);
                llmgw_stats_end(w.slot, w.row);
            }
            _exit(w.row ? 0 : 3);
        }
    }
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: %d", i, status);
    }
    ck_assert_uint_eq(cnt(base, s).requests, total);
    ck_assert_uint_eq(cnt(base, s).successes, total * 3 / 4);
    ck_assert_uint_eq(cnt(base, s).errors[LLMGW_STATS_ERR_5XX], total / 4);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, total * 3 / 4 * 3);
    ck_assert_uint_eq(inflight(base, s), 0);
    apr_shm_destroy(shm);
}
END_TEST

/*
 * Drain is a flag in the slot: set in one process, seen by every other at
 * once, kept across graceful restarts (assign) with the slot, and never a
 * new name's when it takes a free slot.
 */
START_TEST(test_drain_shared_and_kept)
{
    apr_size_t size = llmgw_stats_size(4, ROWS);
    const char *gen1[] = {"a", "b"}, *gen2[] = {"b", "c"}, *gen3[] = {"a", "b", "c"};
    int s1[2], s2[2], s3[3], status;
    apr_shm_t *shm;
    void *base;
    pid_t pid;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, test_pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    ck_assert_int_eq(llmgw_stats_init(base, 4, ROWS, T0), APR_SUCCESS);
    assign_ok(base, gen1, 2, s1);
    ck_assert(!llmgw_stats_drained(llmgw_stats_slot(base, s1[0])));
    ck_assert(!llmgw_stats_drained(NULL));
    ck_assert_int_eq(llmgw_stats_set_drained(NULL, 1), 0);
    /* Another process (a child serving the status page) drains a... */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(llmgw_stats_set_drained(llmgw_stats_slot(base, s1[0]), 1) == 0 ? 0 : 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* ...and this one sees it. */
    ck_assert(llmgw_stats_drained(llmgw_stats_slot(base, s1[0])));
    ck_assert(!llmgw_stats_drained(llmgw_stats_slot(base, s1[1])));
    llmgw_stats_set_drained(llmgw_stats_slot(base, s1[1]), 1);
    /* Graceful restart without a: b stays drained, c (new) is not. */
    assign_ok(base, gen2, 2, s2);
    ck_assert_int_eq(s2[0], s1[1]);
    ck_assert(llmgw_stats_drained(llmgw_stats_slot(base, s2[0])));
    ck_assert(!llmgw_stats_drained(llmgw_stats_slot(base, s2[1])));
    /* a comes back to its slot, still drained: only an operator re-enables it. */
    assign_ok(base, gen3, 3, s3);
    ck_assert_int_eq(s3[0], s1[0]);
    ck_assert(llmgw_stats_drained(llmgw_stats_slot(base, s3[0])));
    /* A drain leaves the breaker alone, and the breaker leaves the drain alone. */
    llmgw_pool_record_failure(llmgw_stats_slot(base, s3[0]), NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1,
                              SEC(30));
    llmgw_stats_success(llmgw_stats_slot(base, s3[0]), NULL, AT(T0 + SEC(40)), MS(5), -1, 1, 1);
    ck_assert(llmgw_stats_drained(llmgw_stats_slot(base, s3[0])));
    ck_assert_int_eq(llmgw_stats_set_drained(llmgw_stats_slot(base, s3[0]), 0), 1);
    ck_assert(!llmgw_stats_drained(llmgw_stats_slot(base, s3[0])));
    apr_shm_destroy(shm);
}
END_TEST

START_TEST(test_control_key)
{
    void *a = segment(2), *b = segment(2);
    const unsigned char *ka = llmgw_stats_control_key(a), *kb = llmgw_stats_control_key(b);
    unsigned char before[LLMGW_STATS_KEY_LEN], zero[LLMGW_STATS_KEY_LEN];
    const char *names[] = {"x"};
    int slot;

    ck_assert_ptr_nonnull(ka);
    ck_assert_ptr_nonnull(kb);
    memset(zero, 0, sizeof(zero));
    /* Random per segment (not the garbage segment() filled in, not zero). */
    ck_assert(memcmp(ka, kb, LLMGW_STATS_KEY_LEN) != 0);
    ck_assert(memcmp(ka, zero, LLMGW_STATS_KEY_LEN) != 0);
    /* The same for the segment's whole life: assign (a graceful restart) keeps it. */
    memcpy(before, ka, sizeof(before));
    assign_ok(a, names, 1, &slot);
    ck_assert(memcmp(llmgw_stats_control_key(a), before, LLMGW_STATS_KEY_LEN) == 0);
    ck_assert_ptr_null(llmgw_stats_control_key(NULL));
    ((llmgw_stats_header_t *)a)->magic = 0;
    ck_assert_ptr_null(llmgw_stats_control_key(a));
}
END_TEST

START_TEST(test_threads_one_probe_winner)
{
    void *base = segment(1);
    worker_t w[THREADS];
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0);
    int i, won = 0;

    llmgw_pool_record_failure(s, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, SEC(30));
    memset(w, 0, sizeof(w));
    for (i = 0; i < THREADS; i++)
        w[i].slot = s;
    run_threads(race_probe, w);
    for (i = 0; i < THREADS; i++)
        won += w[i].probes_won;
    ck_assert_int_eq(won, 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Snapshot and renderers                                              */

/* A segment with three backends in known states, at time T0 + 100 s. */
static void *populated(void)
{
    void *base = segment(8);
    const char *names[] = {"openai-a", "claude \"b\"\\x", "llm-pool"};
    int kinds[] = {LLMGW_BACKEND_OPENAI, LLMGW_BACKEND_ANTHROPIC, LLMGW_BACKEND_POOL};
    int s[3], i;
    llmgw_stats_slot_t *a, *b;

    ck_assert_int_eq(llmgw_stats_assign(base, names, kinds, 3, s), APR_SUCCESS);
    a = llmgw_stats_slot(base, s[0]);
    b = llmgw_stats_slot(base, s[1]);
    for (i = 0; i < 4; i++) {
        llmgw_stats_begin(a, row);
        llmgw_stats_success(a, NULL, AT(T0 + SEC(50)), MS(250), MS(40), 100, 20);
        llmgw_stats_end(a, row);
    }
    llmgw_stats_begin(a, row);
    llmgw_pool_record_failure(a, NULL, AT(T0 + SEC(60)), LLMGW_FAIL_HTTP, 429, 5, SEC(30));
    llmgw_stats_end(a, row);
    llmgw_stats_begin(a, row); /* one still in flight */
    llmgw_stats_retry(a, NULL);
    for (i = 0; i < 3; i++) {
        llmgw_stats_begin(b, row);
        llmgw_pool_record_failure(b, NULL, AT(T0 + SEC(90)), LLMGW_FAIL_TIMEOUT, 0, 3, SEC(30));
        llmgw_stats_end(b, row);
    }
    llmgw_stats_fallback(llmgw_stats_slot(base, s[2]), NULL);
    llmgw_stats_set_drained(llmgw_stats_slot(base, s[2]), 1);
    return base;
}

START_TEST(test_snapshot_states)
{
    void *base = populated();
    llmgw_stats_snapshot_t *snap;
    const llmgw_stats_view_t *a, *b;

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0 + SEC(100)), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 3);
    ck_assert_int_eq(snap->capacity, 8);
    a = &snap->items[0];
    b = &snap->items[1];
    ck_assert_int_eq(a->health, LLMGW_STATS_UP);
    ck_assert_int_eq(b->health, LLMGW_STATS_IN_COOLDOWN);
    ck_assert_uint_eq(llmgw_stats_view_errors(a), 1);
    ck_assert(llmgw_stats_view_error_rate(a) > 0.199 && llmgw_stats_view_error_rate(a) < 0.201);
    ck_assert(llmgw_stats_view_error_rate(b) == 1.0);
    ck_assert(llmgw_stats_view_error_rate(&snap->items[2]) == 0.0);
    /* Past the cooldown with a probe claimed: probing. */
    ck_assert_int_eq(llmgw_stats_available(llmgw_stats_slot(base, 1), AT(T0 + SEC(120))),
                     LLMGW_STATS_PROBE);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0 + SEC(121)), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->items[1].health, LLMGW_STATS_PROBING);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, NULL, AT(T0), &snap), APR_EINVAL);
}
END_TEST

static json_t *backend_json(json_t *root, const char *name)
{
    json_t *list = json_object_get(root, "backends"), *b;
    size_t i;

    json_array_foreach (list, i, b) {
        if (strcmp(json_string_value(json_object_get(b, "name")), name) == 0)
            return b;
    }
    ck_abort_msg("backend %s not in JSON", name);
    return NULL;
}

static json_int_t jint(json_t *o, const char *path)
{
    json_t *v = o;
    char *copy = apr_pstrdup(test_pool, path), *last, *key;

    for (key = apr_strtok(copy, ".", &last); key; key = apr_strtok(NULL, ".", &last))
        v = json_object_get(v, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

/* Token counters stop at LLMGW_TOKENS_MAX instead of wrapping, and so does their total. */
START_TEST(test_tokens_stop_at_ceiling)
{
    void *base = segment(2);
    llmgw_stats_slot_t *s;
    const char *names[] = {"big"};
    int kinds[] = {LLMGW_BACKEND_OPENAI}, slots[1];
    llmgw_stats_snapshot_t *snap;
    const char *text;
    apr_size_t len;
    json_t *root;

    ck_assert_int_eq(llmgw_stats_assign(base, names, kinds, 1, slots), APR_SUCCESS);
    s = llmgw_stats_slot(base, slots[0]);
    llmgw_stats_success(s, NULL, AT(T0), MS(1), -1, LLMGW_TOKENS_MAX - 1, 5);
    llmgw_stats_success(s, NULL, AT(T0), MS(1), -1, 7, INT64_MAX);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
    ck_assert_uint_eq(cnt(base, s).completion_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
    llmgw_stats_success(s, NULL, AT(T0), MS(1), -1, 1, 1);
    ck_assert_uint_eq(cnt(base, s).prompt_tokens, (apr_uint64_t)LLMGW_TOKENS_MAX);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    text = llmgw_stats_json(test_pool, snap, NULL, &len);
    root = test_parse_json(text, len);
    ck_assert_int_eq(jint(json_array_get(json_object_get(root, "backends"), 0), "tokens.total"),
                     LLMGW_TOKENS_MAX);
    json_decref(root);
}
END_TEST

START_TEST(test_render_json)
{
    llmgw_stats_snapshot_t *snap;
    apr_size_t len;
    const char *text;
    json_t *root, *a, *b, *pool;

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, populated(), AT(T0 + SEC(100)), &snap),
                     APR_SUCCESS);
    text = llmgw_stats_json(test_pool, snap, NULL, &len);
    ck_assert_uint_eq(len, strlen(text));
    root = test_parse_json(text, len);
    ck_assert_int_eq(jint(root, "generation"), 1);
    ck_assert(json_real_value(json_object_get(root, "created")) == 1700000000.0);
    ck_assert(json_real_value(json_object_get(root, "time")) == 1700000100.0);
    ck_assert_int_eq(json_array_size(json_object_get(root, "backends")), 3);

    a = backend_json(root, "openai-a");
    ck_assert_str_eq(json_string_value(json_object_get(a, "type")), "openai");
    ck_assert_str_eq(json_string_value(json_object_get(a, "state")), "up");
    ck_assert_int_eq(jint(a, "requests"), 6);
    ck_assert_int_eq(jint(a, "successes"), 4);
    ck_assert_int_eq(jint(a, "errors.429"), 1);
    ck_assert_int_eq(jint(a, "errors.5xx"), 0);
    ck_assert_int_eq(jint(a, "errors_total"), 1);
    ck_assert_int_eq(jint(a, "retries"), 1);
    ck_assert_int_eq(jint(a, "inflight"), 1);
    ck_assert_int_eq(jint(a, "tokens.prompt"), 400);
    ck_assert_int_eq(jint(a, "tokens.completion"), 80);
    ck_assert_int_eq(jint(a, "tokens.total"), 480);
    ck_assert(json_real_value(json_object_get(a, "error_rate")) == 0.2);
    ck_assert(json_real_value(json_object_get(a, "latency_ms")) == 250.0);
    ck_assert(json_real_value(json_object_get(a, "ttfb_ms")) == 40.0);
    ck_assert_int_eq(jint(a, "cooldown_remaining_ms"), 0);
    ck_assert(json_real_value(json_object_get(a, "last_success")) == 1700000050.0);

    b = backend_json(root, "claude \"b\"\\x");
    ck_assert_str_eq(json_string_value(json_object_get(b, "state")), "cooldown");
    ck_assert_int_eq(jint(b, "errors.timeout"), 3);
    ck_assert_int_eq(jint(b, "consecutive_failures"), 3);
    ck_assert_int_eq(jint(b, "cooldown_remaining_ms"), 20000);
    ck_assert(json_is_null(json_object_get(b, "latency_ms")));
    ck_assert(json_is_null(json_object_get(b, "last_success")));

    pool = backend_json(root, "llm-pool");
    ck_assert_str_eq(json_string_value(json_object_get(pool, "type")), "pool");
    ck_assert_int_eq(jint(pool, "fallbacks"), 1);
    ck_assert(json_is_true(json_object_get(pool, "drained")));
    ck_assert(json_is_false(json_object_get(a, "drained")));
    /* Without control (no page, or a page without a nonce), no nonce is given out. */
    ck_assert_ptr_null(json_object_get(root, "control"));
    json_decref(root);
}
END_TEST

START_TEST(test_render_json_control)
{
    llmgw_stats_snapshot_t *snap;
    llmgw_stats_page_t page = {NULL, 5};
    apr_size_t len;
    const char *text;
    json_t *root, *control;

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, populated(), AT(T0 + SEC(100)), &snap),
                     APR_SUCCESS);
    text = llmgw_stats_json(test_pool, snap, &page, &len);
    root = test_parse_json(text, len);
    ck_assert_ptr_null(json_object_get(root, "control"));
    json_decref(root);
    page.nonce = "0123.abcd";
    text = llmgw_stats_json(test_pool, snap, &page, &len);
    root = test_parse_json(text, len);
    control = json_object_get(root, "control");
    ck_assert_str_eq(json_string_value(json_object_get(control, "nonce")), "0123.abcd");
    ck_assert_int_eq(json_array_size(json_object_get(control, "actions")), 2);
    json_decref(root);
}
END_TEST

/*
 * A strict parser of the Prometheus text format 0.0.4, enough to hold our
 * output to it: every line is a comment (# HELP name text / # TYPE name
 * counter|gauge) or a sample `name{label="value",...} number`; each family
 * has exactly one HELP and one TYPE, both before its first sample; the
 * samples of a family are contiguous; counters end in _total; label values
 * use only the escapes \\ \" \n; no duplicate series.
 */
typedef struct {
    apr_hash_t *help, *type, *done, *series, *values;
    const char *current; /* family whose samples are being read */
} prom_t;

/* Return a message from the enclosing parser function when @p cond holds. */
#define PROM_FAIL_IF(cond, ...)                                                                    \
    do {                                                                                           \
        if (cond)                                                                                  \
            return apr_psprintf(test_pool, __VA_ARGS__);                                           \
    } while (0)

static int metric_char(char c, int first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

static const char *prom_name(const char **p, const char **name)
{
    const char *s = *p;

    PROM_FAIL_IF(!metric_char(**p, 1), "bad metric name at: %s", s);
    while (metric_char(**p, 0))
        (*p)++;
    *name = apr_pstrndup(test_pool, s, (apr_size_t)(*p - s));
    return NULL;
}

/* One label value after its opening quote, unescaped; *p past the closing quote. */
static const char *prom_label_value(const char **p, const char *line, const char **out)
{
    char *value = apr_palloc(test_pool, strlen(*p) + 1), *v = value;

    for (; **p != '"'; (*p)++) {
        PROM_FAIL_IF(**p == '\0' || **p == '\n', "unterminated label value: %s", line);
        if (**p == '\\') {
            (*p)++;
            PROM_FAIL_IF(**p != '\\' && **p != '"' && **p != 'n', "bad escape: %s", line);
            *v++ = **p == 'n' ? '\n' : **p;
        }
        else {
            *v++ = **p;
        }
    }
    *v = '\0';
    (*p)++;
    *out = value;
    return NULL;
}

/* Parse `{a="x",b="y"}` into a canonical string "a=x\x1fb=y\x1f"; *p past it. */
static const char *prom_labels(const char **p, const char *line, const char **out)
{
    *out = "";
    if (**p != '{')
        return NULL;
    (*p)++;
    while (**p != '}') {
        const char *start = *p, *name, *value = NULL, *err;
        PROM_FAIL_IF(!isalpha((unsigned char)**p) && **p != '_', "bad label name: %s", line);
        while (isalnum((unsigned char)**p) || **p == '_')
            (*p)++;
        name = apr_pstrndup(test_pool, start, (apr_size_t)(*p - start));
        PROM_FAIL_IF(**p != '=' || (*p)[1] != '"', "expected =\" in: %s", line);
        *p += 2;
        if ((err = prom_label_value(p, line, &value)) != NULL)
            return err;
        *out = apr_pstrcat(test_pool, *out, name, "=", value, "\x1f", NULL);
        if (**p == ',')
            (*p)++;
        else
            PROM_FAIL_IF(**p != '}', "expected , or } in: %s", line);
    }
    (*p)++;
    return NULL;
}

static const char *prom_comment(prom_t *pr, const char *line)
{
    const char *p = line + 2, *name, *err;
    int is_help = strncmp(p, "HELP ", 5) == 0;
    apr_size_t n;

    PROM_FAIL_IF(!is_help && strncmp(p, "TYPE ", 5) != 0, "unknown comment: %s", line);
    p += 5;
    if ((err = prom_name(&p, &name)) != NULL)
        return err;
    PROM_FAIL_IF(*p != ' ' || p[1] == '\0', "missing text: %s", line);
    PROM_FAIL_IF(apr_hash_get(pr->done, name, APR_HASH_KEY_STRING) ||
                     (pr->current && strcmp(pr->current, name) == 0),
                 "HELP/TYPE after samples: %s", line);
    if (is_help) {
        PROM_FAIL_IF(apr_hash_get(pr->help, name, APR_HASH_KEY_STRING), "second HELP: %s", line);
        apr_hash_set(pr->help, name, APR_HASH_KEY_STRING, p + 1);
        return NULL;
    }
    PROM_FAIL_IF(apr_hash_get(pr->type, name, APR_HASH_KEY_STRING), "second TYPE: %s", line);
    PROM_FAIL_IF(strcmp(p + 1, "counter") != 0 && strcmp(p + 1, "gauge") != 0,
                 "unexpected type: %s", line);
    n = strlen(name);
    PROM_FAIL_IF(strcmp(p + 1, "counter") == 0 && (n <= 6 || strcmp(name + n - 6, "_total") != 0),
                 "counter without _total: %s", name);
    apr_hash_set(pr->type, name, APR_HASH_KEY_STRING, p + 1);
    return NULL;
}

static const char *prom_sample(prom_t *pr, const char *line)
{
    const char *p = line, *name, *labels, *key, *err;
    char *end;
    double value;

    if ((err = prom_name(&p, &name)) != NULL || (err = prom_labels(&p, line, &labels)) != NULL)
        return err;
    key = apr_pstrcat(test_pool, name, "\x1e", labels, NULL);
    PROM_FAIL_IF(!apr_hash_get(pr->help, name, APR_HASH_KEY_STRING), "no HELP before: %s", line);
    PROM_FAIL_IF(!apr_hash_get(pr->type, name, APR_HASH_KEY_STRING), "no TYPE before: %s", line);
    if (!pr->current || strcmp(pr->current, name) != 0) {
        PROM_FAIL_IF(apr_hash_get(pr->done, name, APR_HASH_KEY_STRING), "family split: %s", line);
        if (pr->current)
            apr_hash_set(pr->done, pr->current, APR_HASH_KEY_STRING, "");
        pr->current = name;
    }
    PROM_FAIL_IF(*p != ' ', "expected one space before the value: %s", line);
    p++;
    value = strtod(p, &end);
    PROM_FAIL_IF(end == p || *end != '\0' || isspace((unsigned char)*p), "bad value: %s", line);
    PROM_FAIL_IF(value < 0, "negative value: %s", line);
    PROM_FAIL_IF(apr_hash_get(pr->series, key, APR_HASH_KEY_STRING), "duplicate: %s", line);
    apr_hash_set(pr->series, key, APR_HASH_KEY_STRING, "");
    apr_hash_set(pr->values, key, APR_HASH_KEY_STRING, apr_pstrdup(test_pool, p));
    return NULL;
}

/* NULL when @p text is valid; else what is wrong. */
static const char *prom_parse(const char *text, prom_t **out)
{
    prom_t *pr = apr_pcalloc(test_pool, sizeof(*pr));
    char *copy = apr_pstrdup(test_pool, text), *line, *next;
    const char *err;

    pr->help = apr_hash_make(test_pool);
    pr->type = apr_hash_make(test_pool);
    pr->done = apr_hash_make(test_pool);
    pr->series = apr_hash_make(test_pool);
    pr->values = apr_hash_make(test_pool);
    PROM_FAIL_IF(!*text || text[strlen(text) - 1] != '\n', "output must end with a newline");
    for (line = copy; *line; line = next) {
        next = strchr(line, '\n');
        *next++ = '\0';
        PROM_FAIL_IF(*line == '\0', "empty line");
        err = line[0] == '#' ? prom_comment(pr, line) : prom_sample(pr, line);
        if (err)
            return err;
    }
    *out = pr;
    return NULL;
}

/* The value of a series, e.g. ("llmgw_requests_total", "backend=a\x1f"). */
static const char *prom_value(prom_t *pr, const char *name, const char *labels)
{
    const char *v = apr_hash_get(pr->values, apr_pstrcat(test_pool, name, "\x1e", labels, NULL),
                                 APR_HASH_KEY_STRING);

    ck_assert_msg(v != NULL, "no series %s{%s}", name, labels);
    return v;
}

#define L(k, v) k "=" v "\x1f"

START_TEST(test_render_prometheus)
{
    llmgw_stats_snapshot_t *snap;
    apr_size_t len;
    const char *text;
    prom_t *pr;
    const char *err;
    const char *b = L("backend", "claude \"b\"\\x");

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, populated(), AT(T0 + SEC(100)), &snap),
                     APR_SUCCESS);
    text = llmgw_stats_prometheus(test_pool, snap, &len);
    ck_assert_uint_eq(len, strlen(text));
    err = prom_parse(text, &pr);
    ck_assert_msg(err == NULL, "%s", err);
    /* The hostile name is escaped in the text and round-trips through the parser. */
    ck_assert_ptr_nonnull(strstr(text, "backend=\"claude \\\"b\\\"\\\\x\""));
    ck_assert_str_eq(prom_value(pr, "llmgw_requests_total", L("backend", "openai-a")), "6");
    ck_assert_str_eq(prom_value(pr, "llmgw_requests_total", b), "3");
    ck_assert_str_eq(
        prom_value(pr, "llmgw_errors_total", L("backend", "openai-a") L("class", "429")), "1");
    ck_assert_str_eq(
        prom_value(pr, "llmgw_errors_total", L("backend", "claude \"b\"\\x") L("class", "timeout")),
        "3");
    ck_assert_str_eq(prom_value(pr, "llmgw_retries_total", L("backend", "openai-a")), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_fallbacks_total", L("backend", "llm-pool")), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_inflight", L("backend", "openai-a")), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_latency_ewma_seconds", L("backend", "openai-a")),
                     "0.250000");
    ck_assert_str_eq(prom_value(pr, "llmgw_ttfb_ewma_seconds", L("backend", "openai-a")),
                     "0.040000");
    ck_assert_str_eq(
        prom_value(pr, "llmgw_tokens_total", L("backend", "openai-a") L("kind", "prompt")), "400");
    ck_assert_str_eq(
        prom_value(pr, "llmgw_tokens_total", L("backend", "openai-a") L("kind", "completion")),
        "80");
    ck_assert_str_eq(prom_value(pr, "llmgw_cooldown", L("backend", "openai-a")), "0");
    ck_assert_str_eq(prom_value(pr, "llmgw_cooldown", b), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_cooldown_remaining_seconds", b), "20.000000");
    ck_assert_str_eq(prom_value(pr, "llmgw_consecutive_failures", b), "3");
    ck_assert_str_eq(prom_value(pr, "llmgw_drained", L("backend", "llm-pool")), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_drained", L("backend", "openai-a")), "0");
    ck_assert_str_eq(
        prom_value(pr, "llmgw_backend_info", L("backend", "llm-pool") L("type", "pool")), "1");
    ck_assert_str_eq(prom_value(pr, "llmgw_stats_created_seconds", ""), "1700000000.000000");
    /* Every family announced is used, and types are right. */
    ck_assert_str_eq(apr_hash_get(pr->type, "llmgw_inflight", APR_HASH_KEY_STRING), "gauge");
    ck_assert_str_eq(apr_hash_get(pr->type, "llmgw_errors_total", APR_HASH_KEY_STRING), "counter");
}
END_TEST

START_TEST(test_prometheus_parser_rejects)
{
    /* The test parser must itself be strict, or the test above proves nothing. */
    static const char *const bad[] = {
        "x_total 1\n",                                                  /* no HELP/TYPE */
        "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"1} 1\n", /* unterminated */
        "# HELP x h\n# TYPE x counter\nx 1\n",                          /* counter w/o _total */
        "# HELP x h\n# HELP x h\n# TYPE x gauge\nx 1\n",                /* HELP twice */
        "# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx 2\n", /* split */
        "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",                            /* bad escape */
        "# HELP x h\n# TYPE x gauge\nx  1\n",                                      /* two spaces */
        "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",                                  /* duplicate */
    };
    static const char good[] = "# HELP x_total h\n# TYPE x_total counter\n"
                               "x_total{a=\"q\\\"\\\\\\n\",b=\"\"} 1.5\n";
    prom_t *pr;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(prom_parse(bad[i], &pr) != NULL, "accepted bad input %d", (int)i);
    ck_assert_ptr_null(prom_parse(good, &pr));
    ck_assert_str_eq(prom_value(pr, "x_total", L("a", "q\"\\\n") L("b", "")), "1.5");
}
END_TEST

START_TEST(test_render_html)
{
    void *base = segment(2);
    const char *names[] = {"<script>alert('x')</script>&", "ok"};
    int kinds[] = {LLMGW_BACKEND_MISTRAL, LLMGW_BACKEND_OPENAI};
    int s[2];
    llmgw_stats_snapshot_t *snap;
    apr_size_t len;
    const char *html;

    ck_assert_int_eq(llmgw_stats_assign(base, names, kinds, 2, s), APR_SUCCESS);
    llmgw_stats_begin(llmgw_stats_slot(base, s[1]), row);
    llmgw_stats_success(llmgw_stats_slot(base, s[1]), NULL, AT(T0), MS(1234), MS(56), 7, 8);
    llmgw_pool_record_failure(llmgw_stats_slot(base, s[0]), NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1,
                              SEC(30));
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0 + SEC(10)), &snap), APR_SUCCESS);
    html = llmgw_stats_html(test_pool, snap, NULL, &len);
    ck_assert_uint_eq(len, strlen(html));
    ck_assert_ptr_nonnull(strstr(html, "<!DOCTYPE html>"));
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
    ck_assert_ptr_nonnull(strstr(html, "<span class=\"state cooldown\">cooldown</span>"));
    ck_assert_ptr_nonnull(strstr(html, "<span class=\"state up\">up</span>"));
    ck_assert_ptr_nonnull(strstr(html, "20.0 s"));    /* cooldown remaining */
    ck_assert_ptr_nonnull(strstr(html, "1234.0 ms")); /* latency */
    ck_assert_ptr_nonnull(strstr(html, "56.0 ms"));   /* TTFB */
    ck_assert_ptr_nonnull(strstr(html, "7 / 8"));     /* tokens */
    ck_assert_ptr_nonnull(strstr(html, "100.0 %"));   /* error rate of the failed one */
    ck_assert_ptr_nonnull(strstr(html, "mistral"));
    ck_assert_ptr_nonnull(strstr(html, "</html>"));

    /* No backends: still a page. */
    ck_assert_int_eq(llmgw_stats_assign(base, NULL, NULL, 0, NULL), APR_SUCCESS);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    ck_assert_int_eq(snap->nelts, 0);
    ck_assert_ptr_nonnull(strstr(llmgw_stats_html(test_pool, snap, NULL, NULL), "No backends"));
    ck_assert_ptr_nonnull(llmgw_stats_prometheus(test_pool, snap, NULL));
}
END_TEST

/* Occurrences of @p needle in @p hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
        n++;
    return n;
}

START_TEST(test_render_html_controls)
{
    void *base = segment(2);
    const char *names[] = {"a\"><b>", "ok"};
    int s[2];
    llmgw_stats_snapshot_t *snap;
    llmgw_stats_page_t page = {"n0nce.\"x<", 0};
    const char *html, *table;

    ck_assert_int_eq(llmgw_stats_assign(base, names, NULL, 2, s), APR_SUCCESS);
    llmgw_stats_set_drained(llmgw_stats_slot(base, s[1]), 1);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);

    /* Read-only: no form, no Action column, the drained one marked all the same. */
    html = llmgw_stats_html(test_pool, snap, NULL, NULL);
    ck_assert_ptr_null(strstr(html, "<form"));
    ck_assert_ptr_null(strstr(html, "<th>Action</th>"));
    ck_assert_ptr_nonnull(strstr(html, "<span class=\"state drained\">drained</span>"));
    ck_assert_int_eq(count_of(html, "class=\"state drained\""), 1);
    /* A phone: the device's width, the table scrolling in its own box. */
    ck_assert_ptr_nonnull(strstr(html, "name=\"viewport\" content=\"width=device-width"));
    ck_assert_ptr_nonnull(strstr(html, "<div class=\"scroll\"><table>"));
    /* Refresh links, none active. */
    ck_assert_ptr_nonnull(strstr(html, "<a href=\"?refresh=5\">"));
    ck_assert_ptr_nonnull(strstr(html, "<strong>off</strong>"));

    /* With control: one POST form per backend, carrying the escaped nonce and name. */
    page.refresh = 5;
    html = llmgw_stats_html(test_pool, snap, &page, NULL);
    ck_assert_int_eq(count_of(html, "<form method=\"post\">"), 2);
    ck_assert_int_eq(count_of(html, "name=\"nonce\" value=\"n0nce.&quot;x&lt;\""), 2);
    ck_assert_ptr_null(strstr(html, "n0nce.\"x<"));
    ck_assert_ptr_nonnull(strstr(html, "<th>Action</th>"));
    ck_assert_ptr_nonnull(strstr(html, "name=\"backend\" value=\"a&quot;&gt;&lt;b&gt;\""));
    ck_assert_ptr_null(strstr(html, "<b>"));
    /* The drained one offers Enable, the other Drain. */
    ck_assert_int_eq(count_of(html, "value=\"enable\""), 1);
    ck_assert_int_eq(count_of(html, "value=\"drain\""), 1);
    ck_assert_ptr_nonnull(strstr(html, "<tr data-backend=\"ok\">"));
    ck_assert_ptr_nonnull(strstr(html, "<strong>every 5 s</strong>"));
    ck_assert_ptr_nonnull(strstr(html, "<a href=\"?\">off</a>"));

    /* The /server-status section: the table alone, never a form or a page. */
    table = llmgw_stats_html_table(test_pool, snap, NULL);
    ck_assert_ptr_null(strstr(table, "<form"));
    ck_assert_ptr_null(strstr(table, "<html"));
    ck_assert_ptr_null(strstr(table, "<th>Action</th>"));
    ck_assert_int_eq(count_of(table, "<tr data-backend="), 2);
}
END_TEST

START_TEST(test_render_auto)
{
    llmgw_stats_snapshot_t *snap;
    void *base = populated();
    const char *names[] = {"bad\nname: 1"};
    apr_size_t len;
    const char *text, *line;
    int slot, nlines = 0;

    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0 + SEC(100)), &snap), APR_SUCCESS);
    text = llmgw_stats_auto(test_pool, snap, &len);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackends: 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Name: openai-a\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Type: openai\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]State: up\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Requests: 6\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Errors429: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]InFlight: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]LatencyMs: 250.000\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]PromptTokens: 400\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[1]State: cooldown\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[1]CooldownRemainingMs: 20000\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[2]Drained: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Drained: 0\n"));
    /* Every line is "Key: value". */
    for (line = text; *line; line = strchr(line, '\n') + 1) {
        ck_assert_ptr_nonnull(strchr(line, '\n'));
        ck_assert_msg(strstr(line, ": ") && strstr(line, ": ") < strchr(line, '\n'), "%s", line);
        nlines++;
    }
    ck_assert_int_eq(nlines, 1 + 3 * 23); /* 23 keys a backend */
    /* A name cannot start a line of its own. */
    ck_assert_int_eq(llmgw_stats_assign(base, names, NULL, 1, &slot), APR_SUCCESS);
    ck_assert_int_eq(llmgw_stats_snapshot(test_pool, base, AT(T0), &snap), APR_SUCCESS);
    text = llmgw_stats_auto(test_pool, snap, NULL);
    ck_assert_ptr_nonnull(strstr(text, "LLMGatewayBackend[0]Name: bad?name: 1\n"));
}
END_TEST

/*
 * The mechanism alone, without the pool's policy: a class counted, strikes
 * that arm at the threshold, the time left, and what a strategy reads.
 */
START_TEST(test_mechanism_without_policy)
{
    void *base = segment(2);
    llmgw_stats_slot_t *s = llmgw_stats_slot(base, 0), *pool = llmgw_stats_slot(base, 1);
    llmgw_stats_load_t load;
    llmgw_stats_counts_t c;

    llmgw_stats_error(s, NULL, AT(T0), LLMGW_STATS_ERR_429);
    llmgw_stats_error(s, NULL, AT(T0), -1); /* not the upstream's fault */
    llmgw_stats_counts(base, 0, &c);
    ck_assert_uint_eq(c.errors[LLMGW_STATS_ERR_429], 1);
    ck_assert_uint_eq(c.aborted, 1);
    ck_assert_int_eq((apr_time_t)s->last_failure, T0);
    /* Counting is not a strike: the breaker is the caller's to feed. */
    ck_assert_uint_eq(s->consecutive_failures, 0);
    ck_assert_int_eq(llmgw_stats_cooldown_left(s, T0), -1);
    ck_assert_int_eq(llmgw_stats_strike(s, AT(T0), 3, SEC(10)), 0);
    ck_assert_int_eq(llmgw_stats_strike(s, AT(T0), 3, SEC(10)), 0);
    ck_assert_int_eq(llmgw_stats_strike(s, AT(T0 + SEC(1)), 3, SEC(10)), 1);
    ck_assert_int_eq(llmgw_stats_cooldown_left(s, T0 + SEC(4)), SEC(7));
    ck_assert_int_eq(llmgw_stats_cooldown_left(s, T0 + SEC(60)), 0); /* over: a probe is due */
    ck_assert_int_eq(llmgw_stats_strike(NULL, AT(T0), 1, SEC(1)), 0);
    ck_assert_int_eq(llmgw_stats_cooldown_left(NULL, T0), -1);

    llmgw_stats_begin(s, row);
    llmgw_stats_success(s, NULL, AT(T0 + SEC(61)), MS(250), MS(40), 3, 4);
    llmgw_stats_end(s, row);
    llmgw_stats_begin(s, row);
    llmgw_stats_load(base, s, &load);
    ck_assert_uint_eq(load.inflight, 1);
    ck_assert_uint_eq(load.latency_us, MS(250));
    ck_assert_uint_eq(load.ttfb_us, MS(40));
    ck_assert_uint_eq(load.samples, 1);
    ck_assert_uint_eq(load.requests, 2);
    llmgw_stats_load(base, NULL, &load);
    ck_assert_uint_eq(load.requests, 0);
    ck_assert_ptr_eq((const void *)llmgw_stats_rr_cursor(pool), (const void *)&pool->rr_cursor);
    ck_assert_ptr_null((const void *)llmgw_stats_rr_cursor(NULL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");

    tcase_add_checked_fixture(tc, setup, test_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mechanism_without_policy);
    tcase_add_test(tc, test_size_and_init);
    tcase_add_test(tc, test_fits_rejects_other_layouts);
    tcase_add_test(tc, test_assign_restarts);
    tcase_add_test(tc, test_assign_full);
    tcase_add_test(tc, test_assign_long_names_and_kinds);
    tcase_add_test(tc, test_counters_by_class);
    tcase_add_test(tc, test_counters_sharded_per_child);
    tcase_add_test(tc, test_sharded_tokens_sum_capped);
    tcase_add_test(tc, test_tokens_stop_at_ceiling);
    tcase_add_test(tc, test_classify);
    tcase_add_test(tc, test_ewma);
    tcase_add_test(tc, test_success_updates_averages);
    tcase_add_test(tc, test_cooldown_threshold_probe_recovery);
    tcase_add_test(tc, test_cooldown_rearm_on_probe_failure);
    tcase_add_test(tc, test_cooldown_release_and_stale_probe);
    tcase_add_test(tc, test_cooldown_rules);
    tcase_add_test(tc, test_cooldown_period_kept_and_forgotten);
    tcase_add_test(tc, test_protocol_error_does_not_feed_the_breaker);
    tcase_add_test(tc, test_time_now);
    tcase_add_test(tc, test_clock_step_does_not_affect_cooldown);
    tcase_add_test(tc, test_child_rows);
    tcase_add_test(tc, test_snapshot_slots);
    tcase_add_test(tc, test_threads_exact_totals);
    tcase_add_test(tc, test_processes_exact_totals);
    tcase_add_test(tc, test_drain_shared_and_kept);
    tcase_add_test(tc, test_control_key);
    tcase_add_test(tc, test_threads_one_probe_winner);
    tcase_add_test(tc, test_snapshot_states);
    tcase_add_test(tc, test_render_json);
    tcase_add_test(tc, test_render_json_control);
    tcase_add_test(tc, test_render_prometheus);
    tcase_add_test(tc, test_prometheus_parser_rejects);
    tcase_add_test(tc, test_render_html);
    tcase_add_test(tc, test_render_html_controls);
    tcase_add_test(tc, test_render_auto);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
