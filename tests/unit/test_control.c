/* Check suite of the status page's controls: nonces and actions (src/llmgw_control.c). */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include "llmgw_control.h"
#include "llmgw_stats.h"
#include "test_util.h"

#define SEC(n) apr_time_from_sec(n)
/* A monotonic "now" well away from 0, as a host that has been up a while. */
#define NOW (SEC(86400) + 123456)
#define CTX "127.0.0.1:8080 /llmgw-status"
#define TTL LLMGW_CONTROL_NONCE_TTL

/* A fresh segment (with its own random key) in test_pool. */
static void *segment(void)
{
    apr_size_t size = llmgw_stats_size(2, 2);
    char *raw = apr_palloc(test_pool, size + 64);
    void *base = (void *)(((apr_uintptr_t)raw + 63) & ~(apr_uintptr_t)63);

    ck_assert_int_eq(llmgw_stats_init(base, 2, 2, apr_time_now()), APR_SUCCESS);
    return base;
}

static const char *nonce_at(void *base, const char *ctx, apr_time_t t)
{
    const char *n = NULL;

    ck_assert_int_eq(llmgw_control_nonce(test_pool, base, ctx, t, &n), APR_SUCCESS);
    ck_assert_ptr_nonnull(n);
    return n;
}

static apr_status_t check(void *base, const char *ctx, const char *nonce, apr_time_t now)
{
    return llmgw_control_nonce_check(test_pool, base, ctx, nonce, now, TTL);
}

START_TEST(test_nonce_round_trip)
{
    void *base = segment();
    const char *n = nonce_at(base, CTX, NOW), *n2;

    ck_assert_uint_eq(strlen(n), LLMGW_CONTROL_NONCE_LEN);
    ck_assert_int_eq(n[16], '.');
    ck_assert_int_eq(check(base, CTX, n, NOW), APR_SUCCESS);
    /* Accepted as often as it is sent while it is fresh (a page's forms share it). */
    ck_assert_int_eq(check(base, CTX, n, NOW + SEC(5)), APR_SUCCESS);
    ck_assert_int_eq(check(base, CTX, n, NOW + TTL), APR_SUCCESS);
    /* Each render has its own. */
    n2 = nonce_at(base, CTX, NOW + 1);
    ck_assert_str_ne(n, n2);
    ck_assert_int_eq(check(base, CTX, n2, NOW + 1), APR_SUCCESS);
}
END_TEST

START_TEST(test_nonce_missing_stale_future)
{
    void *base = segment();
    const char *n = nonce_at(base, CTX, NOW);

    ck_assert_int_eq(check(base, CTX, NULL, NOW), APR_ENOENT);
    ck_assert_int_eq(check(base, CTX, "", NOW), APR_ENOENT);
    /* Stale: one microsecond past its lifetime. */
    ck_assert_int_eq(check(base, CTX, n, NOW + TTL + 1), APR_TIMEUP);
    /* From the future (a clock this host never showed): refused, bar a second of slack. */
    ck_assert_int_eq(check(base, CTX, n, NOW - SEC(1)), APR_SUCCESS);
    ck_assert_int_eq(check(base, CTX, n, NOW - SEC(2)), APR_TIMEUP);
    ck_assert_int_eq(llmgw_control_nonce_check(test_pool, base, CTX, n, NOW + SEC(20), SEC(10)),
                     APR_TIMEUP);
}
END_TEST

START_TEST(test_nonce_forged)
{
    void *base = segment(), *other = segment();
    const char *n = nonce_at(base, CTX, NOW);
    char *t;
    int i;

    /* Another segment (httpd stopped and started): another key. */
    ck_assert_int_eq(check(other, CTX, n, NOW), APR_EINVAL);
    /* Another page or virtual host. */
    ck_assert_int_eq(check(base, "127.0.0.1:8080 /other", n, NOW), APR_EINVAL);
    ck_assert_int_eq(check(base, CTX "x", n, NOW), APR_EINVAL);
    /* Any flipped digit, in the time (to make a stale nonce fresh) or the MAC. */
    for (i = 0; i < LLMGW_CONTROL_NONCE_LEN; i++) {
        if (i == 16)
            continue;
        t = apr_pstrdup(test_pool, n);
        t[i] = t[i] == '0' ? '1' : '0';
        ck_assert_msg(check(base, CTX, t, NOW) == APR_EINVAL, "digit %d", i);
    }
    /* A fresh time with an old MAC. */
    t = apr_pstrdup(test_pool, n);
    memcpy(t, nonce_at(base, CTX, NOW + SEC(700)), 16);
    ck_assert_int_eq(check(base, CTX, t, NOW + SEC(700)), APR_EINVAL);
    /* Malformed: length, separator, case, characters. */
    ck_assert_int_eq(check(base, CTX, apr_pstrcat(test_pool, n, "0", NULL), NOW), APR_EINVAL);
    ck_assert_int_eq(check(base, CTX, apr_pstrndup(test_pool, n, 80), NOW), APR_EINVAL);
    t = apr_pstrdup(test_pool, n);
    t[16] = '-';
    ck_assert_int_eq(check(base, CTX, t, NOW), APR_EINVAL);
    t = apr_pstrdup(test_pool, n);
    for (i = 17; i < LLMGW_CONTROL_NONCE_LEN; i++)
        t[i] = apr_toupper(t[i]);
    ck_assert_int_eq(check(base, CTX, t, NOW), APR_EINVAL);
    ck_assert_int_eq(check(base, CTX, apr_psprintf(test_pool, "%081d", 0), NOW), APR_EINVAL);
    /* No segment, no key: nothing is accepted and nothing is made. */
    ck_assert_int_eq(check(NULL, CTX, n, NOW), APR_EINVAL);
    ck_assert_int_eq(llmgw_control_nonce(test_pool, NULL, CTX, NOW, &n), APR_EINVAL);
}
END_TEST

/* The point of keeping the key in the segment: a nonce one child makes, another checks. */
START_TEST(test_nonce_across_processes)
{
    apr_size_t size = llmgw_stats_size(2, 2);
    apr_shm_t *shm;
    void *base;
    const char *n;
    int fds[2], status;
    char buf[LLMGW_CONTROL_NONCE_LEN + 1];
    pid_t pid;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, test_pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    ck_assert_int_eq(llmgw_stats_init(base, 2, 2, apr_time_now()), APR_SUCCESS);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The child that rendered the page. */
        const char *mine = NULL;
        close(fds[0]);
        if (llmgw_control_nonce(test_pool, base, CTX, NOW, &mine) != APR_SUCCESS ||
            write(fds[1], mine, LLMGW_CONTROL_NONCE_LEN) != LLMGW_CONTROL_NONCE_LEN)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(read(fds[0], buf, LLMGW_CONTROL_NONCE_LEN), LLMGW_CONTROL_NONCE_LEN);
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The child that receives the POST. */
    ck_assert_int_eq(check(base, CTX, buf, NOW + SEC(3)), APR_SUCCESS);
    n = nonce_at(base, CTX, NOW);
    ck_assert_str_eq(n, buf); /* same key, same context, same time */
    apr_shm_destroy(shm);
}
END_TEST

START_TEST(test_actions)
{
    ck_assert_int_eq(llmgw_control_action("drain"), LLMGW_CONTROL_DRAIN);
    ck_assert_int_eq(llmgw_control_action("enable"), LLMGW_CONTROL_ENABLE);
    ck_assert_int_eq(llmgw_control_action("Drain"), LLMGW_CONTROL_NONE);
    ck_assert_int_eq(llmgw_control_action("drain "), LLMGW_CONTROL_NONE);
    ck_assert_int_eq(llmgw_control_action(""), LLMGW_CONTROL_NONE);
    ck_assert_int_eq(llmgw_control_action(NULL), LLMGW_CONTROL_NONE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("control");
    TCase *tc = test_fixture("control");

    tcase_add_test(tc, test_nonce_round_trip);
    tcase_add_test(tc, test_nonce_missing_stale_future);
    tcase_add_test(tc, test_nonce_forged);
    tcase_add_test(tc, test_nonce_across_processes);
    tcase_add_test(tc, test_actions);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
