/* Check suite for the limits segment (src/llmgw_limits.c). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include "llmgw_limits.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000) /* 2023-11-14, a Tuesday */
#define SEC(n) apr_time_from_sec(n)
#define AT(t) ((llmgw_stats_time_t){(t), (t)})
#define ROWS 9

static void setup(void)
{
    test_pool_setup();
    apr_atomic_init(test_pool);
}

static void *segment(int capacity)
{
    apr_size_t size = llmgw_limits_size(capacity, ROWS);
    void *base = apr_pcalloc(test_pool, size);

    ck_assert_int_eq(llmgw_limits_init(base, capacity, ROWS, T0), APR_SUCCESS);
    return base;
}

static llmgw_limits_cfg_t lim(apr_int64_t rpm, apr_int64_t tpm, apr_int64_t concurrent)
{
    llmgw_limits_cfg_t l = {rpm ? rpm : LLMGW_UNSET, tpm ? tpm : LLMGW_UNSET,
                            concurrent ? concurrent : LLMGW_UNSET};
    return l;
}

/* One slot assigned to "k:a". */
static llmgw_limits_slot_t *one_slot(void **base_out)
{
    void *base = segment(4);
    const char *names[] = {"k:a"};
    int slot;

    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 1, 0, &slot), APR_SUCCESS);
    if (base_out)
        *base_out = base;
    return llmgw_limits_slot(base, slot);
}

START_TEST(test_layout_and_assign)
{
    void *base = segment(4);
    const char *first[] = {"k:a", "k:b", "b:openai"};
    const char *second[] = {"k:b", "k:c"};
    int kinds[] = {0, 0, LLMGW_LIMITS_KIND_BACKEND};
    int s1[3], s2[2];
    llmgw_limits_slot_t *b;

    ck_assert_uint_eq(llmgw_limits_size(4, ROWS), 64 + 4 * 256 + ROWS * (64 + 4 * 16));
    ck_assert_int_eq(llmgw_limits_init(NULL, 4, ROWS, T0), APR_EINVAL);
    ck_assert_int_eq(llmgw_limits_assign(base, first, kinds, 3, 0, s1), APR_SUCCESS);
    ck_assert_int_ne(s1[0], s1[1]);
    b = llmgw_limits_slot(base, s1[1]);
    b->requests = 7; /* as if used */
    /* A graceful restart keeps "k:b" (and its counters), retires "k:a" and
     * "b:openai" and gives "k:c" the one free slot left. */
    ck_assert_int_eq(llmgw_limits_assign(base, second, NULL, 2, 0, s2), APR_SUCCESS);
    ck_assert_int_eq(s2[0], s1[1]);
    ck_assert_int_eq(llmgw_limits_slot(base, s2[0])->requests, 7);
    ck_assert_int_eq(llmgw_limits_slot(base, s1[0])->state, LLMGW_LIMITS_RETIRED);
    ck_assert_int_eq(llmgw_limits_slot(base, s2[1])->requests, 0);
    /* Retired slots are never reused: a fifth name does not fit. */
    {
        const char *third[] = {"k:b", "k:c", "k:d"};
        int s3[3];
        ck_assert_int_eq(llmgw_limits_assign(base, third, NULL, 3, 0, s3), APR_ENOSPC);
        ck_assert(!llmgw_limits_fits(base, llmgw_limits_size(4, ROWS), third, 3, 0, ROWS));
        ck_assert(llmgw_limits_fits(base, llmgw_limits_size(4, ROWS), second, 2, 0, ROWS));
    }
    /* Returning names keep their old slot: "k:a" comes back to its own. */
    {
        const char *back[] = {"k:a"};
        int s4;
        ck_assert_int_eq(llmgw_limits_assign(base, back, NULL, 1, 0, &s4), APR_SUCCESS);
        ck_assert_int_eq(s4, s1[0]);
    }
}
END_TEST

START_TEST(test_long_names_stay_apart)
{
    void *base = segment(4);
    char a[200], b[200];
    const char *names[2] = {a, b};
    int s[2];

    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[150] = 'y';
    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 2, 0, s), APR_SUCCESS);
    ck_assert_int_ne(s[0], s[1]);
}
END_TEST

/* rpm: a window of 60 s from its first request; refusals change nothing. */
START_TEST(test_rpm_window)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(3, 0, 0);
    llmgw_limits_hold_t h;
    llmgw_limits_verdict_t v;
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(i)), 0, 0, &h, &v),
                         APR_SUCCESS);
        ck_assert_int_eq(v.limit_requests, 3);
        ck_assert_int_eq(v.remaining_requests, 2 - i);
        ck_assert_int_eq(v.reset_requests, SEC(60 - i));
        ck_assert_int_eq(v.limit_tokens, -1);
        llmgw_limits_settle(s, NULL, &h, AT(T0 + SEC(i)), NULL, 5, 5, -1);
    }
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(20)), 0, 0, &h, &v),
                     APR_EAGAIN);
    ck_assert_int_eq(v.refused, LLMGW_REFUSED_RPM);
    ck_assert_int_eq(v.retry_after, SEC(40));
    ck_assert_int_eq(v.remaining_requests, 0);
    ck_assert_int_eq(h.slot, -1);
    ck_assert_int_eq(s->req_count, 3);
    ck_assert_int_eq(s->requests, 3);
    ck_assert_int_eq(s->refused[LLMGW_REFUSED_RPM], 1);
    /* 59.999 s after the first request: still refused; at 60 s a new window. */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(60) - 1), 0, 0, &h, &v),
                     APR_EAGAIN);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(60)), 0, 0, &h, &v),
                     APR_SUCCESS);
    ck_assert_int_eq(v.remaining_requests, 2);
    ck_assert_int_eq(v.reset_requests, SEC(60));
}
END_TEST

/* tpm: reserve the estimate, replace it by the usage, refund a failure. */
START_TEST(test_tokens_reserve_reconcile_refund)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(0, 100, 0);
    llmgw_limits_hold_t a, b, c;
    llmgw_limits_verdict_t v;

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0), 60, 0, &a, &v), APR_SUCCESS);
    ck_assert_int_eq(v.remaining_tokens, 40);
    /* 60 reserved + 50 > 100: refused, and nothing changes. */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(1)), 50, 0, &b, &v),
                     APR_EAGAIN);
    ck_assert_int_eq(v.refused, LLMGW_REFUSED_TPM);
    ck_assert_int_eq(v.retry_after, SEC(59));
    ck_assert_int_eq(s->tok_count, 60);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(1)), 40, 0, &b, &v),
                     APR_SUCCESS);
    ck_assert_int_eq(v.remaining_tokens, 0);
    /* The first answer used 7 + 3 tokens: 50 come back. */
    llmgw_limits_settle(s, NULL, &a, AT(T0 + SEC(2)), NULL, 7, 3, -1);
    ck_assert_int_eq(s->tok_count, 50);
    ck_assert_int_eq(s->prompt_tokens, 7);
    ck_assert_int_eq(s->completion_tokens, 3);
    /* Settling twice does nothing more. */
    llmgw_limits_settle(s, NULL, &a, AT(T0 + SEC(2)), NULL, 7, 3, -1);
    ck_assert_int_eq(s->tok_count, 50);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(3)), 50, 0, &c, &v),
                     APR_SUCCESS);
    /* The second failed: all 40 reserved come back. */
    llmgw_limits_settle(s, NULL, &b, AT(T0 + SEC(4)), NULL, 0, 0, -1);
    ck_assert_int_eq(s->tok_count, 60);
    /* The third used more than it reserved (a provider ignoring max_tokens). */
    llmgw_limits_settle(s, NULL, &c, AT(T0 + SEC(5)), NULL, 30, 45, -1);
    ck_assert_int_eq(s->tok_count, 85);
    ck_assert_int_eq(s->concurrent, 0);
}
END_TEST

/* A settlement after its window ended only adds what exceeded the reservation. */
START_TEST(test_settle_after_window)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(0, 1000, 0);
    llmgw_limits_hold_t a, b, c;
    llmgw_limits_verdict_t v;

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0), 100, 0, &a, &v), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0), 100, 0, &b, &v), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0 + SEC(61)), 10, 0, &c, &v),
                     APR_SUCCESS);
    ck_assert_int_eq(s->tok_count, 10);
    llmgw_limits_settle(s, NULL, &a, AT(T0 + SEC(62)), NULL, 0, 0, -1); /* refund: old window */
    ck_assert_int_eq(s->tok_count, 10);
    llmgw_limits_settle(s, NULL, &b, AT(T0 + SEC(62)), NULL, 100, 30, -1);
    ck_assert_int_eq(s->tok_count, 40);
}
END_TEST

START_TEST(test_request_larger_than_tpm)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(0, 100, 0);
    llmgw_limits_hold_t h;
    llmgw_limits_verdict_t v;

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0), 101, 0, &h, &v), APR_EAGAIN);
    ck_assert_int_eq(v.refused, LLMGW_REFUSED_TPM);
    ck_assert_int_eq(v.retry_after, -1);
}
END_TEST

START_TEST(test_concurrency)
{
    void *base;
    llmgw_limits_slot_t *s = one_slot(&base);
    llmgw_limits_row_t *row = llmgw_limits_child_claim(base, 4242);
    llmgw_limits_cfg_t l = lim(0, 0, 2);
    llmgw_limits_hold_t a, b, c;
    llmgw_limits_verdict_t v;

    ck_assert_ptr_nonnull(row);
    ck_assert_int_eq(llmgw_limits_admit(s, row, &l, NULL, AT(T0), 1, 0, &a, &v), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_admit(s, row, &l, NULL, AT(T0), 1, 0, &b, &v), APR_SUCCESS);
    ck_assert_int_eq(row->cell[s->index].concurrent, 2);
    ck_assert_int_eq(llmgw_limits_admit(s, row, &l, NULL, AT(T0), 1, 0, &c, &v), APR_EAGAIN);
    ck_assert_int_eq(v.refused, LLMGW_REFUSED_CONCURRENT);
    llmgw_limits_settle(s, row, &a, AT(T0), NULL, 1, 0, -1);
    ck_assert_int_eq(row->cell[s->index].concurrent, 1);
    ck_assert_int_eq(llmgw_limits_admit(s, row, &l, NULL, AT(T0), 1, 0, &c, &v), APR_SUCCESS);
}
END_TEST

/* Budgets: spent + in flight must stay below the budget; periods restart at zero. */
START_TEST(test_budget)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(0, 0, 0);
    llmgw_budget_cfg_t bud = {1000, LLMGW_PERIOD_DAY};
    llmgw_limits_hold_t a, b, c;
    llmgw_limits_verdict_t v;
    apr_time_t day = llmgw_period_start(LLMGW_PERIOD_DAY, T0);

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 600, &a, &v), APR_SUCCESS);
    ck_assert_int_eq(v.budget, 1000);
    /* 600 in flight: a second request still fits under 1000... */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 500, &b, &v), APR_SUCCESS);
    /* ...but with 1100 in flight nothing more is admitted. */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 1, &c, &v), APR_EAGAIN);
    ck_assert_int_eq(v.refused, LLMGW_REFUSED_BUDGET);
    ck_assert_int_eq(v.retry_after, day + SEC(86400) - T0);
    /* The first cost 300, the second failed (nothing). */
    llmgw_limits_settle(s, NULL, &a, AT(T0), &bud, 5, 5, 300);
    llmgw_limits_settle(s, NULL, &b, AT(T0), &bud, 0, 0, -1);
    ck_assert_int_eq(s->reserved, 0);
    ck_assert_int_eq(s->local_total, 300);
    /* The ledger knew of 650 more (another node): 950 spent, 50 left. */
    llmgw_limits_set_base(s, &bud, T0, 650, 0);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 100, &c, &v), APR_SUCCESS);
    ck_assert_int_eq(v.spent, 950);
    llmgw_limits_settle(s, NULL, &c, AT(T0), &bud, 5, 5, 100);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 0, &c, &v), APR_EAGAIN);
    /* The next day starts at zero. */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(day + SEC(86400)), 10, 0, &c, &v),
                     APR_SUCCESS);
    ck_assert_int_eq(v.spent, 0);
    ck_assert_int_eq(s->cost_total, 400);
}
END_TEST

/* spent_base = database total - what we had committed before the query. */
START_TEST(test_budget_refresh_arithmetic)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(0, 0, 0);
    llmgw_budget_cfg_t bud = {1000000, LLMGW_PERIOD_MONTH};
    llmgw_limits_hold_t a;
    llmgw_limits_verdict_t v;
    apr_int64_t before;

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 1, 0, &a, &v), APR_SUCCESS);
    llmgw_limits_settle(s, NULL, &a, AT(T0), &bud, 1, 1, 700);
    llmgw_limits_committed(s, &bud, T0, 700);
    before = llmgw_limits_committed_total(s, &bud, T0);
    ck_assert_int_eq(before, 700);
    /* The database holds our 700 and 2000 of others. */
    llmgw_limits_set_base(s, &bud, T0, 2700, before);
    llmgw_limits_peek(s, &l, &bud, AT(T0), &v);
    ck_assert_int_eq(v.spent, 2700);
    /* A row of last month committed now does not count in this month. */
    llmgw_limits_committed(s, &bud, T0 - SEC(40 * 86400), 5);
    ck_assert_int_eq(llmgw_limits_committed_total(s, &bud, T0), 700);
}
END_TEST

/*
 * The exactness the gateway promises: children racing on one key admit
 * exactly rpm requests in a window. Forked processes on anonymous shared
 * memory, as httpd's children are.
 */
START_TEST(test_processes_admit_exactly)
{
    enum { CHILDREN = 8, TRIES = 60, RPM = 50 };
    apr_size_t size = llmgw_limits_size(2, ROWS);
    const char *names[] = {"k:race"};
    apr_shm_t *shm;
    void *base;
    llmgw_limits_slot_t *s;
    llmgw_limits_cfg_t l = lim(RPM, 0, 0);
    pid_t pids[CHILDREN];
    int i, status, slot, admitted = 0;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, test_pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    ck_assert_int_eq(llmgw_limits_init(base, 2, ROWS, T0), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 1, 0, &slot), APR_SUCCESS);
    s = llmgw_limits_slot(base, slot);
    for (i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            llmgw_limits_row_t *row = llmgw_limits_child_claim(base, (apr_uint32_t)getpid());
            int t, ok = 0;
            for (t = 0; t < TRIES; t++) {
                llmgw_limits_hold_t h;
                llmgw_limits_verdict_t v;
                if (llmgw_limits_admit(s, row, &l, NULL, AT(T0 + t), 1, 0, &h, &v) == APR_SUCCESS) {
                    ok++;
                    llmgw_limits_settle(s, row, &h, AT(T0 + t), NULL, 1, 0, -1);
                }
            }
            _exit(ok);
        }
    }
    for (i = 0; i < CHILDREN; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status));
        admitted += WEXITSTATUS(status);
    }
    ck_assert_int_eq(admitted, RPM);
    ck_assert_int_eq(s->requests, RPM);
    ck_assert_int_eq(s->refused[LLMGW_REFUSED_RPM], CHILDREN * TRIES - RPM);
    ck_assert_int_eq(s->concurrent, 0);
    apr_shm_destroy(shm);
}
END_TEST

/* A child that dies with requests in flight: the parent gives them back. */
START_TEST(test_child_crash_released)
{
    apr_size_t size = llmgw_limits_size(2, ROWS);
    const char *names[] = {"k:c"};
    llmgw_limits_cfg_t l = lim(0, 0, 2);
    llmgw_budget_cfg_t bud = {1000, LLMGW_PERIOD_DAY};
    apr_shm_t *shm;
    void *base;
    llmgw_limits_slot_t *s;
    llmgw_limits_hold_t h;
    llmgw_limits_verdict_t v;
    pid_t pid;
    int slot, status;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, test_pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    ck_assert_int_eq(llmgw_limits_init(base, 2, ROWS, T0), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 1, 0, &slot), APR_SUCCESS);
    s = llmgw_limits_slot(base, slot);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        llmgw_limits_row_t *row = llmgw_limits_child_claim(base, (apr_uint32_t)getpid());
        llmgw_limits_admit(s, row, &l, &bud, AT(T0), 1, 100, &h, &v);
        llmgw_limits_admit(s, row, &l, &bud, AT(T0), 1, 200, &h, &v);
        _exit(0); /* no settlement: as if killed */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(s->concurrent, 2);
    ck_assert_int_eq(s->reserved, 300);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 1, 0, &h, &v), APR_EAGAIN);
    ck_assert_int_eq(llmgw_limits_child_release(base, (apr_uint32_t)pid), 2);
    ck_assert_int_eq(s->concurrent, 0);
    ck_assert_int_eq(s->reserved, 0);
    ck_assert_int_eq(llmgw_limits_child_release(base, (apr_uint32_t)pid), -1);
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 1, 0, &h, &v), APR_SUCCESS);
    apr_shm_destroy(shm);
}
END_TEST

/* A lock left by a process that died is taken over. */
START_TEST(test_dead_holder_lock)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(5, 0, 0);
    llmgw_limits_hold_t h;
    llmgw_limits_verdict_t v;
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    s->lock = (apr_uint32_t)pid; /* it "died inside the critical section" */
    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, NULL, AT(T0), 0, 0, &h, &v), APR_SUCCESS);
    ck_assert_int_eq(s->lock, 0);
}
END_TEST

START_TEST(test_dynamic_slots)
{
    void *base = segment(6);
    const char *names[] = {"p:*", "p:alice"};
    int s[2], bob, bob2, carol, dave;

    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 2, 2, s), APR_SUCCESS);
    bob = llmgw_limits_dynamic(base, "d:bob");
    ck_assert_int_ge(bob, 0);
    ck_assert_int_ne(bob, s[0]);
    ck_assert_int_ne(bob, s[1]);
    bob2 = llmgw_limits_dynamic(base, "d:bob");
    ck_assert_int_eq(bob, bob2);
    carol = llmgw_limits_dynamic(base, "d:carol");
    ck_assert_int_ge(carol, 0);
    ck_assert_int_ne(carol, bob);
    /* Two dynamic slots were kept: a third principal has none. */
    dave = llmgw_limits_dynamic(base, "d:dave");
    ck_assert_int_eq(dave, -1);
    ck_assert_int_eq(llmgw_limits_slot(base, bob)->state, LLMGW_LIMITS_DYNAMIC_SLOT);
    /* A graceful restart keeps them (and they are not names of the config). */
    ck_assert_int_eq(llmgw_limits_assign(base, names, NULL, 2, 1, s), APR_SUCCESS);
    ck_assert_int_eq(llmgw_limits_dynamic(base, "d:bob"), bob);
    ck_assert_int_ge(llmgw_limits_dynamic(base, "d:dave"), 0);
}
END_TEST

START_TEST(test_backend_steering)
{
    llmgw_limits_slot_t *s = one_slot(NULL);
    llmgw_limits_cfg_t l = lim(2, 100, 0);
    llmgw_limits_hold_t a, b;
    apr_interval_time_t wait;

    ck_assert(!llmgw_limits_backend_full(s, &l, AT(T0), 30, &wait));
    llmgw_limits_backend_take(s, AT(T0), 30, &a);
    ck_assert(!llmgw_limits_backend_full(s, &l, AT(T0), 30, &wait));
    /* 30 + 80 tokens would pass the provider's tpm. */
    ck_assert(llmgw_limits_backend_full(s, &l, AT(T0 + SEC(10)), 80, &wait));
    ck_assert_int_eq(wait, SEC(50));
    llmgw_limits_backend_take(s, AT(T0 + SEC(1)), 30, &b);
    /* Two requests: the rpm is reached. */
    ck_assert(llmgw_limits_backend_full(s, &l, AT(T0 + SEC(1)), 0, &wait));
    /* A failed attempt gives its tokens back, but the provider counted the request. */
    llmgw_limits_settle(s, NULL, &b, AT(T0 + SEC(2)), NULL, 0, 0, -1);
    ck_assert_int_eq(s->tok_count, 30);
    ck_assert_int_eq(s->req_count, 2);
    ck_assert(!llmgw_limits_backend_full(s, &l, AT(T0 + SEC(60)), 80, &wait));
}
END_TEST

START_TEST(test_refresh_claim_once)
{
    void *base = segment(2);
    int i, won = 0;

    for (i = 0; i < 10; i++)
        won += llmgw_limits_refresh_claim(base, T0);
    ck_assert_int_eq(won, 1);
    ck_assert(!llmgw_limits_refresh_claim(base, T0 + LLMGW_LIMITS_REFRESH - 1));
    ck_assert(llmgw_limits_refresh_claim(base, T0 + LLMGW_LIMITS_REFRESH));
}
END_TEST

START_TEST(test_view)
{
    void *base;
    llmgw_limits_slot_t *s = one_slot(&base);
    llmgw_limits_cfg_t l = lim(10, 0, 0);
    llmgw_budget_cfg_t bud = {5000, LLMGW_PERIOD_WEEK};
    llmgw_limits_hold_t h;
    llmgw_limits_verdict_t v;
    llmgw_limits_view_t view;

    ck_assert_int_eq(llmgw_limits_admit(s, NULL, &l, &bud, AT(T0), 10, 0, &h, &v), APR_SUCCESS);
    llmgw_limits_settle(s, NULL, &h, AT(T0), &bud, 4, 6, 1234);
    ck_assert_int_eq(llmgw_limits_view(base, (int)s->index, &bud, AT(T0 + SEC(1)), &view),
                     APR_SUCCESS);
    ck_assert_int_eq(view.s.req_count, 1);
    ck_assert_int_eq(view.spent, 1234);
    /* Seen after the window and in the next week: both read as restarted. */
    ck_assert_int_eq(llmgw_limits_view(base, (int)s->index, &bud, AT(T0 + SEC(8 * 86400)), &view),
                     APR_SUCCESS);
    ck_assert_int_eq(view.s.req_count, 0);
    ck_assert_int_eq(view.spent, 0);
    ck_assert_int_eq(view.s.cost_total, 1234);
    /* ...without changing the slot itself. */
    ck_assert_int_eq(s->req_count, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");

    tcase_add_checked_fixture(tc, setup, test_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layout_and_assign);
    tcase_add_test(tc, test_long_names_stay_apart);
    tcase_add_test(tc, test_rpm_window);
    tcase_add_test(tc, test_tokens_reserve_reconcile_refund);
    tcase_add_test(tc, test_settle_after_window);
    tcase_add_test(tc, test_request_larger_than_tpm);
    tcase_add_test(tc, test_concurrency);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_budget_refresh_arithmetic);
    tcase_add_test(tc, test_processes_admit_exactly);
    tcase_add_test(tc, test_child_crash_released);
    tcase_add_test(tc, test_dead_holder_lock);
    tcase_add_test(tc, test_dynamic_slots);
    tcase_add_test(tc, test_backend_steering);
    tcase_add_test(tc, test_refresh_claim_once);
    tcase_add_test(tc, test_view);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
