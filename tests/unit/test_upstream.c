/*
 * The libcurl client (src/llmgw_upstream.c) end to end, against the loopback
 * server of test_http_server.h: what a transfer reports (status, headers,
 * body, timings, connection reuse) and how each way of failing is classified
 * (connect refused or timed out, first byte, idle stream, overall deadline,
 * reset, body too large, client gone, sink failure), plus the two guards of
 * its fixed options: http and https only, and no proxy from the environment.
 *
 * Time bounds are generous on purpose (a shared, slow machine, valgrind):
 * a test asserts that a 10 s stall ended "well before" its 10 s, never that a
 * 300 ms timeout took 300 ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_tables.h> /* before test_util.h, which uses apr_array_header_t */
#include "test_util.h"
#include "test_http_server.h"
#include "llmgw_upstream.h"

#define MS(n) ((apr_interval_time_t)(n)*1000)
/* How long a stalling answer of the server lasts unless its client leaves. */
#define STALL_MS 10000
/* "Well before the stall would have ended". */
#define WELL_BEFORE MS(5000)

/* ---------------------------------------------------------------------- */
/* The server's answers, by path                                          */
/* ---------------------------------------------------------------------- */

static const char OK_BODY[] = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}";
static const char ERR_BODY[] = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}";

static int send_chunk(int fd, const char *data, size_t n)
{
    if (test_http_sendf(fd, "%zx\r\n", n) != 0 || test_http_send(fd, data, n) != 0)
        return -1;
    return test_http_send(fd, "\r\n", 2);
}

static int send_stream_head(int fd)
{
    return test_http_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n");
}

/* /stream/<events>/<gap ms>[/stall]: SSE events "data: <i>\n\n", one chunk each. */
static int answer_stream(test_http_server_t *s, int fd, const char *spec)
{
    int events = 0, gap = 0, i;
    char stall[8] = "", ev[32];

    if (sscanf(spec, "%d/%d/%7s", &events, &gap, stall) < 2)
        return 0;
    if (send_stream_head(fd) != 0)
        return 0;
    for (i = 1; i <= events; i++) {
        if (i > 1 && gap > 0 && test_http_wait(s, fd, gap) != 0)
            return 0;
        snprintf(ev, sizeof(ev), "data: %d\n\n", i);
        if (send_chunk(fd, ev, strlen(ev)) != 0)
            return 0;
    }
    if (strcmp(stall, "stall") == 0) {
        test_http_wait(s, fd, STALL_MS);
        return 0;
    }
    test_http_send(fd, "0\r\n\r\n", 5);
    return 1;
}

static int handler(test_http_server_t *s, int fd, const test_http_request_t *req, void *baton)
{
    const char *p = req->path;
    char body[4096];
    int n, a, b;

    if (strcmp(p, "/ok") == 0) {
        test_http_sendf(fd,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n%s",
                        strlen(OK_BODY), OK_BODY);
        return 1;
    }
    if (strcmp(p, "/close") == 0) {
        test_http_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        return 0;
    }
    if (strcmp(p, "/429") == 0) {
        test_http_sendf(fd,
                        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                        "Retry-After: 7\r\nretry-after-ms: 1500\r\nContent-Length: %zu\r\n\r\n%s",
                        strlen(ERR_BODY), ERR_BODY);
        return 1;
    }
    if (strcmp(p, "/500") == 0) {
        test_http_sendf(fd, "HTTP/1.1 500 Internal Server Error\r\nCONTENT-TYPE: text/plain\r\n"
                            "RETRY-AFTER:   3  \r\nContent-Length: 5\r\n\r\nboom\n");
        return 1;
    }
    if (sscanf(p, "/size/%d", &n) == 1) { /* n bytes with a Content-Length */
        memset(body, 'x', sizeof(body));
        test_http_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n);
        for (; n > 0; n -= (int)sizeof(body))
            if (test_http_send(fd, body, n < (int)sizeof(body) ? (size_t)n : sizeof(body)) != 0)
                return 0;
        return 1;
    }
    if (sscanf(p, "/chunked/%d", &n) == 1) { /* n bytes, chunked, without a length */
        memset(body, 'y', sizeof(body));
        test_http_sendf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (; n > 0; n -= 1000)
            if (send_chunk(fd, body, n < 1000 ? (size_t)n : 1000) != 0)
                return 0;
        test_http_send(fd, "0\r\n\r\n", 5);
        return 1;
    }
    if (sscanf(p, "/slow/%d/%d", &a, &b) == 2) { /* a ms before the head, b ms before the body */
        if (test_http_wait(s, fd, a) != 0)
            return 0;
        test_http_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        if (test_http_wait(s, fd, b) != 0)
            return 0;
        test_http_send(fd, "ok", 2);
        return 1;
    }
    if (strncmp(p, "/stream/", 8) == 0)
        return answer_stream(s, fd, p + 8);
    if (strcmp(p, "/stall") == 0) { /* read the request, answer nothing */
        test_http_wait(s, fd, STALL_MS);
        return 0;
    }
    if (strcmp(p, "/head-stall") == 0) { /* the head, then nothing */
        send_stream_head(fd);
        test_http_wait(s, fd, STALL_MS);
        return 0;
    }
    if (strcmp(p, "/trickle") == 0) { /* a byte every 50 ms, for ever */
        send_stream_head(fd);
        for (n = 0; n < STALL_MS / 50; n++)
            if (send_chunk(fd, "z", 1) != 0 || test_http_wait(s, fd, 50) != 0)
                break;
        return 0;
    }
    if (strcmp(p, "/drop") == 0) /* the request was read: close without a word */
        return 0;
    if (strcmp(p, "/rst") == 0) {
        test_http_reset(fd);
        return 0;
    }
    if (strcmp(p, "/partial") == 0) { /* 10 bytes of the 100 announced */
        test_http_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        return 0;
    }
    if (strcmp(p, "/to-file") == 0) {
        test_http_sendf(fd, "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\n"
                            "Content-Length: 5\r\n\r\nmoved");
        return 1;
    }
    if (strcmp(p, "/to-ok") == 0) {
        test_http_sendf(fd,
                        "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 5\r\n\r\nmoved");
        return 1;
    }
    test_http_sendf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return 1;
}

/* ---------------------------------------------------------------------- */
/* Fixture and helpers                                                    */
/* ---------------------------------------------------------------------- */

static test_http_server_t *server;
static llmgw_upstream_t *up;

static void setup(void)
{
    test_pool_setup();
    ck_assert_int_eq(llmgw_upstream_global_init(test_pool), APR_SUCCESS);
    ck_assert_int_eq(llmgw_upstream_child_create(&up, test_pool, 4), APR_SUCCESS);
    server = test_http_server_start(handler, NULL);
    ck_assert_ptr_nonnull(server);
}

static void teardown(void)
{
    test_http_server_stop(server);
    server = NULL;
    /* The pool's cleanups free the handles, then curl_global_cleanup. */
    test_pool_teardown();
    up = NULL;
}

static const char *url(const char *path)
{
    return test_http_server_url(server, test_pool, path);
}

/* Generous settings: whatever a test is not about never fires. */
static llmgw_upstream_opts_t opts(void)
{
    llmgw_upstream_opts_t o;

    memset(&o, 0, sizeof(o));
    o.connect_timeout = apr_time_from_sec(5);
    o.first_byte_timeout = apr_time_from_sec(15);
    o.deadline = apr_time_now() + apr_time_from_sec(20);
    o.max_body = 1024 * 1024;
    return o;
}

static llmgw_http_request_t *request(const char *method, const char *u, const char *body)
{
    llmgw_http_request_t *req = apr_pcalloc(test_pool, sizeof(*req));
    apr_array_header_t *h;

    req->method = method;
    req->url = u;
    h = apr_array_make(test_pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(h, const char *) = "Authorization: Bearer sk-unit-test";
    req->headers = h;
    if (body) {
        APR_ARRAY_PUSH(h, const char *) = "Content-Type: application/json";
        req->body = body;
        req->body_len = strlen(body);
    }
    return req;
}

static llmgw_upstream_result_t perform_req(const llmgw_http_request_t *req,
                                           const llmgw_upstream_opts_t *o)
{
    llmgw_upstream_result_t res;

    ck_assert_int_eq(llmgw_upstream_perform(up, test_pool, req, o, &res), APR_SUCCESS);
    return res;
}

static llmgw_upstream_result_t get(const char *path, const llmgw_upstream_opts_t *o)
{
    return perform_req(request("GET", url(path), NULL), o);
}

/* What a streaming caller saw: its on_data and check callbacks record here. */
typedef struct {
    char data[8192];
    apr_size_t len;
    int calls;
    int fail_at;         /* on_data fails on this call (0: never) */
    apr_time_t gone_at;  /* client_gone answers yes from then on (0: never) */
    apr_time_t gone_now; /* when it first did */
    int gone_polls;
    llmgw_fail_e gone_fail; /* what the check answers then (0: client gone) */
} sink_t;

static apr_status_t on_data(void *baton, const char *data, apr_size_t len)
{
    sink_t *k = baton;

    k->calls++;
    if (k->fail_at && k->calls >= k->fail_at)
        return APR_ECONNABORTED;
    if (k->len + len < sizeof(k->data)) {
        memcpy(k->data + k->len, data, len);
        k->len += len;
        k->data[k->len] = '\0';
    }
    return APR_SUCCESS;
}

static llmgw_fail_e client_gone(void *baton)
{
    sink_t *k = baton;
    apr_time_t now = apr_time_now();

    k->gone_polls++;
    if (!k->gone_at || now < k->gone_at)
        return LLMGW_FAIL_NONE;
    if (!k->gone_now)
        k->gone_now = now;
    return k->gone_fail ? k->gone_fail : LLMGW_FAIL_CLIENT_GONE;
}

static llmgw_upstream_opts_t stream_opts(sink_t *k)
{
    llmgw_upstream_opts_t o = opts();

    memset(k, 0, sizeof(*k));
    o.on_data = on_data;
    o.check = client_gone;
    o.baton = k;
    return o;
}

/*
 * Connections the server still holds open, after waiting (boundedly) for it
 * to notice the client's close on its own thread: 0 after an aborted
 * transfer shows that the client dropped the connection.
 */
static unsigned open_connections(void)
{
    int i;

    for (i = 0; i < 250 && test_http_server_open_connections(server) > 0; i++)
        usleep(20 * 1000);
    return test_http_server_open_connections(server);
}

/* ---------------------------------------------------------------------- */
/* Complete exchanges                                                     */
/* ---------------------------------------------------------------------- */

START_TEST(test_2xx_status_headers_body)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res =
        perform_req(request("POST", url("/ok"), "{\"model\":\"m\",\"messages\":[]}"), &o);
    const char *head, *body;
    apr_size_t body_len;

    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(res.sink_status, APR_SUCCESS);
    ck_assert_str_eq(res.content_type, "application/json");
    ck_assert_int_eq(res.body_len, strlen(OK_BODY));
    ck_assert_str_eq(res.body, OK_BODY);
    ck_assert_ptr_null(res.retry_after);
    ck_assert_ptr_null(res.retry_after_ms);
    /* What went out: the method, the caller's headers, the body as given. */
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_msg(strncmp(head, "POST /ok HTTP/1.1\r\n", 19) == 0, "%s", head);
    ck_assert_ptr_nonnull(strstr(head, "\r\nAuthorization: Bearer sk-unit-test\r\n"));
    ck_assert_ptr_nonnull(strstr(head, "\r\nContent-Type: application/json\r\n"));
    ck_assert_str_eq(body, "{\"model\":\"m\",\"messages\":[]}");
    ck_assert_int_eq(test_http_server_requests(server), 1);
}
END_TEST

START_TEST(test_non_2xx_is_a_complete_exchange)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res = get("/429", &o);

    /* A non-2xx answer is an outcome, not a transport failure: the caller
     * classifies it from the status, the body and the retry hints. */
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 429);
    ck_assert_str_eq(res.body, ERR_BODY);
    ck_assert_int_eq(res.body_len, strlen(ERR_BODY));
    ck_assert_str_eq(res.retry_after, "7");
    ck_assert_str_eq(res.retry_after_ms, "1500");
    ck_assert_str_eq(res.content_type, "application/json");
    /* Header names in any case, values without the surrounding blanks. */
    res = get("/500", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 500);
    ck_assert_str_eq(res.body, "boom\n");
    ck_assert_str_eq(res.content_type, "text/plain");
    ck_assert_str_eq(res.retry_after, "3");
    ck_assert_ptr_null(res.retry_after_ms);
    res = get("/missing", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 404);
    ck_assert_int_eq(res.body_len, 0);
    ck_assert_str_eq(res.body, "");
}
END_TEST

START_TEST(test_stream_2xx_goes_to_on_data_non_2xx_is_buffered)
{
    sink_t k;
    llmgw_upstream_opts_t o = stream_opts(&k);
    llmgw_upstream_result_t res = get("/stream/3/0", &o);

    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.content_type, "text/event-stream");
    ck_assert_str_eq(k.data, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    ck_assert_int_eq(res.body_len, 0);
    /* An error answer to a streaming request is buffered for the caller to
     * parse, never passed to the sink. */
    o = stream_opts(&k);
    res = get("/429", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 429);
    ck_assert_int_eq(k.calls, 0);
    ck_assert_str_eq(res.body, ERR_BODY);
    ck_assert_str_eq(res.retry_after_ms, "1500");
}
END_TEST

START_TEST(test_body_over_max_body)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;

    o.max_body = 3000;
    res = get("/size/3000", &o); /* exactly the limit */
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.body_len, 3000);
    ck_assert_int_eq(strlen(res.body), 3000);
    res = get("/size/3001", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_PROTOCOL);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_le(res.body_len, 3000);
    /* Without a Content-Length the limit holds as the body arrives. */
    res = get("/chunked/3000", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.body_len, 3000);
    res = get("/chunked/20000", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_PROTOCOL);
    ck_assert_uint_le(res.body_len, 3000);
    /* A body larger than the first buffer (8 KiB) grows intact. */
    o.max_body = 100000;
    res = get("/chunked/50000", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.body_len, 50000);
    ck_assert_int_eq(strspn(res.body, "y"), 50000);
    ck_assert_int_eq(res.body[50000], '\0');
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Connecting                                                             */
/* ---------------------------------------------------------------------- */

/* A loopback port that refuses connections: bound, never listening (kept by the caller, so no
 * other process can take it meanwhile). */
static int refusing_port(int *fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(*fd, 0);
    ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

START_TEST(test_connect_refused)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    int fd, port = refusing_port(&fd);

    res = perform_req(request("GET", apr_psprintf(test_pool, "http://127.0.0.1:%d/v1", port), NULL),
                      &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_CONNECT);
    ck_assert_int_eq(res.status, 0);
    ck_assert_ptr_nonnull(res.detail);
    ck_assert_msg(res.elapsed < WELL_BEFORE, "a refused connect took %" APR_TIME_T_FMT " us",
                  res.elapsed);
    close(fd);
}
END_TEST

/*
 * A listener whose accept queue is full and which never accepts: Linux drops
 * further SYNs, so a connect to it stays pending until the client gives up.
 * Filled with non-blocking connects until one does not complete.
 */
static int full_listener(int *lfd, int *fill, int max_fill, int *nfill)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int pending = 0;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(*lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(*lfd, 0), 0);
    ck_assert_int_eq(getsockname(*lfd, (struct sockaddr *)&a, &len), 0);
    for (*nfill = 0; *nfill < max_fill && !pending; (*nfill)++) {
        struct pollfd pfd;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        ck_assert_int_ge(fd, 0);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            ck_assert_int_eq(errno, EINPROGRESS);
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        pending = poll(&pfd, 1, 300) == 0;
        fill[*nfill] = fd;
    }
    ck_assert_msg(pending, "could not fill the accept queue of a loopback listener");
    return ntohs(a.sin_port);
}

START_TEST(test_connect_timeout)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    int lfd, fill[16], nfill, i;
    int port = full_listener(&lfd, fill, 16, &nfill);

    o.connect_timeout = MS(300);
    res = perform_req(request("GET", apr_psprintf(test_pool, "http://127.0.0.1:%d/v1", port), NULL),
                      &o);
    /* Nothing was sent: a connect failure, safe to try elsewhere. */
    ck_assert_int_eq(res.fail, LLMGW_FAIL_CONNECT);
    ck_assert_int_eq(res.status, 0);
    ck_assert_msg(res.elapsed >= MS(250), "gave up after %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_msg(res.elapsed < WELL_BEFORE,
                  "connect timeout of 300 ms took %" APR_TIME_T_FMT " us", res.elapsed);
    for (i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Timeouts                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(test_first_byte_timeout)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    sink_t k;

    o.first_byte_timeout = MS(300);
    res = get("/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_int_eq(res.status, 0);
    ck_assert_msg(res.elapsed >= MS(250) && res.elapsed < WELL_BEFORE,
                  "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_uint_eq(open_connections(), 0);
    /* Streaming, the first byte is the first byte of the body: a head alone
     * does not stop the clock. */
    o = stream_opts(&k);
    o.first_byte_timeout = MS(300);
    o.idle_timeout = apr_time_from_sec(15);
    res = get("/head-stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(k.calls, 0);
    ck_assert_msg(res.elapsed >= MS(250) && res.elapsed < WELL_BEFORE,
                  "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
}
END_TEST

/*
 * libcurl asks for "Expect: 100-continue" before a body over 1 MiB (prompts
 * with inlined images get there). The interim 100 is not the answer: the
 * first-byte timeout still runs, and ttfb is not measured to it.
 */
START_TEST(test_first_byte_timeout_after_100_continue)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    apr_size_t n = 1536 * 1024;
    char *big = apr_palloc(test_pool, n + 1);
    const char *head, *body;
    apr_size_t body_len;

    memset(big, 'b', n);
    big[n] = '\0';
    o.first_byte_timeout = MS(500);
    res = perform_req(request("POST", url("/stall"), big), &o);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_msg(strstr(head, "Expect: 100-continue") != NULL, "no Expect header: %s", head);
    ck_assert_int_eq(body_len, n);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_msg(res.elapsed < WELL_BEFORE,
                  "a first-byte timeout of 500 ms took %" APR_TIME_T_FMT " us", res.elapsed);
    /* With an answer after 300 ms, ttfb is the answer's. */
    o = opts();
    res = perform_req(request("POST", url("/slow/300/0"), big), &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_msg(res.ttfb >= MS(290), "ttfb %" APR_TIME_T_FMT " us", res.ttfb);
}
END_TEST

START_TEST(test_idle_timeout_in_a_stream)
{
    sink_t k;
    llmgw_upstream_opts_t o = stream_opts(&k);
    llmgw_upstream_result_t res;

    o.idle_timeout = MS(400);
    res = get("/stream/2/0/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_IDLE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(k.data, "data: 1\n\ndata: 2\n\n");
    ck_assert_msg(res.elapsed >= MS(350) && res.elapsed < WELL_BEFORE,
                  "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_uint_eq(open_connections(), 0);
    /* Silence is measured from the latest data, not from the start: 15
     * events 100 ms apart outlast the idle timeout. */
    o = stream_opts(&k);
    o.idle_timeout = MS(1000);
    res = get("/stream/15/100", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_ptr_nonnull(strstr(k.data, "data: 15\n\n"));
    ck_assert_msg(res.elapsed >= MS(1400), "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
}
END_TEST

START_TEST(test_overall_deadline)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    sink_t k;

    /* A body that never ends, buffered. */
    o.deadline = apr_time_now() + MS(500);
    res = get("/trickle", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_int_eq(res.status, 200);
    ck_assert_msg(res.elapsed >= MS(450) && res.elapsed < WELL_BEFORE,
                  "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    /* Streamed: data keeps flowing, so neither first-byte nor idle fires. */
    o = stream_opts(&k);
    o.idle_timeout = MS(1000);
    o.deadline = apr_time_now() + MS(1500);
    res = get("/trickle", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_int_ge(k.calls, 1);
    ck_assert_msg(res.elapsed >= MS(1450) && res.elapsed < WELL_BEFORE,
                  "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    /* Before any answer, the deadline wins over a longer first-byte timeout. */
    o = opts();
    o.deadline = apr_time_now() + MS(300);
    res = get("/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_msg(res.elapsed < WELL_BEFORE, "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Broken connections                                                     */
/* ---------------------------------------------------------------------- */

START_TEST(test_reset_after_request)
{
    static const char *const paths[] = {"/drop", "/rst", "/partial"};
    llmgw_upstream_opts_t o = opts();
    int i;

    for (i = 0; i < 3; i++) {
        llmgw_upstream_result_t res = perform_req(request("POST", url(paths[i]), "{}"), &o);

        ck_assert_msg(res.fail == LLMGW_FAIL_RESET, "%s: fail %d (%s)", paths[i], res.fail,
                      res.detail ? res.detail : "");
        ck_assert_ptr_nonnull(res.detail);
        /* The request had reached the server: not a connect failure. */
        ck_assert_uint_eq(test_http_server_requests(server), (unsigned)i + 1);
    }
}
END_TEST

START_TEST(test_client_gone_aborts_the_transfer)
{
    sink_t k;
    llmgw_upstream_opts_t o = stream_opts(&k);
    llmgw_upstream_result_t res;
    apr_time_t start = apr_time_now();

    k.gone_at = start + MS(300);
    res = get("/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_CLIENT_GONE);
    ck_assert_int_ne(k.gone_now, 0);
    ck_assert_int_ge(k.gone_polls, 2); /* polled before the client went, too */
    /* Polled every ~100 ms: the abort follows the client within a slice or
     * two, asserted here with room for a slow machine. */
    ck_assert_msg(apr_time_now() - k.gone_now < MS(1500),
                  "aborted %" APR_TIME_T_FMT " us after the client went",
                  apr_time_now() - k.gone_now);
    ck_assert_uint_eq(open_connections(), 0);
    /* In the middle of a stream too. */
    o = stream_opts(&k);
    k.gone_at = apr_time_now() + MS(300);
    res = get("/stream/100/100", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_CLIENT_GONE);
    ck_assert_int_ge(k.calls, 1);
    ck_assert_msg(res.elapsed < WELL_BEFORE, "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_uint_eq(open_connections(), 0);
}
END_TEST

/* A deadline of the caller's own (time to first token) ends the transfer
 * with the failure the check names, not as a client that left. */
START_TEST(test_check_timeout_ends_the_transfer)
{
    sink_t k;
    llmgw_upstream_opts_t o = stream_opts(&k);
    llmgw_upstream_result_t res;

    k.gone_at = apr_time_now() + MS(300);
    k.gone_fail = LLMGW_FAIL_TIMEOUT;
    res = get("/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    ck_assert_msg(res.elapsed < WELL_BEFORE, "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_uint_eq(open_connections(), 0);
}
END_TEST

START_TEST(test_sink_failure_aborts_the_transfer)
{
    sink_t k;
    llmgw_upstream_opts_t o = stream_opts(&k);
    llmgw_upstream_result_t res;

    k.fail_at = 2;
    res = get("/stream/100/100", &o); /* 10 s of events */
    ck_assert_int_eq(res.sink_status, APR_ECONNABORTED);
    /* The sink's own failure is not an upstream fault. */
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(k.calls, 2); /* never called again after it failed */
    ck_assert_str_eq(k.data, "data: 1\n\n");
    ck_assert_msg(res.elapsed < WELL_BEFORE, "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    ck_assert_uint_eq(open_connections(), 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Connection reuse                                                       */
/* ---------------------------------------------------------------------- */

START_TEST(test_keepalive_reuse)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    const char *head, *body;
    apr_size_t body_len;

    res = perform_req(request("POST", url("/ok"), "{\"a\":1}"), &o);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(res.new_connections, 1);
    /* The same handle, the same connection: and a GET after a POST is a
     * GET without the previous body. */
    res = get("/ok", &o);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(res.new_connections, 0);
    ck_assert_uint_eq(test_http_server_connections(server), 1);
    ck_assert_uint_eq(test_http_server_requests(server), 2);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_msg(strncmp(head, "GET /ok HTTP/1.1\r\n", 18) == 0, "%s", head);
    ck_assert_ptr_null(strstr(head, "Content-Length"));
    ck_assert_int_eq(body_len, 0);
    /* A connection the server closes is not reused. */
    res = get("/close", &o);
    ck_assert_int_eq(res.status, 200);
    res = get("/ok", &o);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(res.new_connections, 1);
    ck_assert_uint_eq(test_http_server_connections(server), 2);
}
END_TEST

/*
 * A handle keeps its last header list for the next transfer: the same
 * headers go out again, and a changed one (a refreshed token, another
 * backend), one more or one fewer is never sent stale.
 */
START_TEST(test_header_list_reused_only_when_identical)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_http_request_t *req = request("POST", url("/ok"), "{\"a\":1}");
    llmgw_upstream_result_t res;
    const char *head, *body;
    apr_size_t body_len;
    apr_array_header_t *h;

    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    res = perform_req(request("POST", url("/ok"), "{\"a\":2}"), &o);
    ck_assert_int_eq(res.status, 200);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_ptr_nonnull(strstr(head, "\r\nAuthorization: Bearer sk-unit-test\r\n"));
    ck_assert_ptr_nonnull(strstr(head, "\r\nContent-Type: application/json\r\n"));
    ck_assert_str_eq(body, "{\"a\":2}");

    h = apr_array_copy(test_pool, req->headers);
    req->headers = h;
    APR_ARRAY_IDX(h, 0, const char *) = "Authorization: Bearer sk-refreshed";
    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_ptr_nonnull(strstr(head, "\r\nAuthorization: Bearer sk-refreshed\r\n"));
    ck_assert_ptr_null(strstr(head, "sk-unit-test"));

    APR_ARRAY_PUSH(h, const char *) = "X-Extra: 1";
    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_ptr_nonnull(strstr(head, "\r\nX-Extra: 1\r\n"));

    h->nelts = 1;
    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_ptr_null(strstr(head, "X-Extra"));
    ck_assert_ptr_null(strstr(head, "Content-Type: application/json"));
    ck_assert_ptr_nonnull(strstr(head, "\r\nAuthorization: Bearer sk-refreshed\r\n"));

    /* Prepared lists (one per backend) are told apart by address. */
    req->headers_fixed = 1;
    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    h = apr_array_make(test_pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(h, const char *) = "Authorization: Bearer sk-other-backend";
    req->headers = h;
    res = perform_req(req, &o);
    ck_assert_int_eq(res.status, 200);
    test_http_server_last(server, test_pool, &head, &body, &body_len);
    ck_assert_ptr_nonnull(strstr(head, "\r\nAuthorization: Bearer sk-other-backend\r\n"));
    ck_assert_ptr_null(strstr(head, "sk-refreshed"));
}
END_TEST

START_TEST(test_handle_reusable_after_an_aborted_transfer)
{
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;

    o.first_byte_timeout = MS(300);
    res = get("/stall", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_TIMEOUT);
    /* The cut connection is not handed to the next transfer. */
    o = opts();
    res = get("/ok", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, OK_BODY);
    ck_assert_int_eq(res.new_connections, 1);
    ck_assert_uint_eq(test_http_server_connections(server), 2);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The fixed options: schemes and proxies                                 */
/* ---------------------------------------------------------------------- */

START_TEST(test_only_http_and_https)
{
    int port = test_http_server_port(server);
    const char *const bad[] = {
        "file:///etc/passwd",
        apr_psprintf(test_pool, "ftp://127.0.0.1:%d/x", port),
        apr_psprintf(test_pool, "dict://127.0.0.1:%d/d:x", port),
        apr_psprintf(test_pool, "gopher://127.0.0.1:%d/x", port),
        apr_psprintf(test_pool, "telnet://127.0.0.1:%d", port),
    };
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        res = perform_req(request("GET", bad[i], NULL), &o);
        ck_assert_msg(res.fail == LLMGW_FAIL_CONNECT, "%s: fail %d, status %d, %zu bytes", bad[i],
                      res.fail, res.status, res.body_len);
        ck_assert_int_eq(res.body_len, 0);
    }
    /* None of them got as far as a connection. */
    ck_assert_uint_eq(test_http_server_connections(server), 0);
    /* Redirects are answers, never followed: not to file://, not even to http. */
    res = get("/to-file", &o);
    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(res.status, 302);
    ck_assert_str_eq(res.body, "moved");
    res = get("/to-ok", &o);
    ck_assert_int_eq(res.status, 302);
    ck_assert_str_eq(res.body, "moved");
    ck_assert_uint_eq(test_http_server_requests(server), 2);
}
END_TEST

/* Set (or unset, @p value NULL) an environment variable, remembering the old value in @p saved. */
static void env_set(const char *name, const char *value, const char **saved)
{
    const char *old = getenv(name);

    *saved = old ? apr_pstrdup(test_pool, old) : NULL;
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

START_TEST(test_no_proxy_from_the_environment)
{
    static const char *const names[] = {"http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                        "all_proxy",  "no_proxy",    "NO_PROXY"};
    const char *saved[7];
    int fd, port = refusing_port(&fd), i;
    const char *dead = apr_psprintf(test_pool, "http://127.0.0.1:%d", port);
    llmgw_upstream_opts_t o = opts();
    llmgw_upstream_result_t res;

    for (i = 0; i < 7; i++)
        env_set(names[i], i < 5 ? dead : NULL, &saved[i]);
    res = get("/ok", &o);
    for (i = 0; i < 7; i++) {
        if (saved[i])
            setenv(names[i], saved[i], 1);
        else
            unsetenv(names[i]);
    }
    close(fd);
    ck_assert_msg(res.fail == LLMGW_FAIL_NONE, "fail %d (%s)", res.fail,
                  res.detail ? res.detail : "");
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(test_http_server_requests(server), 1);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Timings                                                                */
/* ---------------------------------------------------------------------- */

START_TEST(test_elapsed_and_ttfb)
{
    llmgw_upstream_opts_t o = opts();
    apr_time_t before = apr_time_now();
    llmgw_upstream_result_t res = get("/slow/200/300", &o);
    apr_interval_time_t outside = apr_time_now() - before;

    ck_assert_int_eq(res.fail, LLMGW_FAIL_NONE);
    ck_assert_str_eq(res.body, "ok");
    /* The head went out 200 ms after the request arrived, the body 300 ms
     * later. Only lower bounds hold: a head read late shortens the gap
     * the client sees between the two. */
    ck_assert_msg(res.ttfb >= MS(190), "ttfb %" APR_TIME_T_FMT " us", res.ttfb);
    ck_assert_msg(res.elapsed >= MS(490) && res.elapsed > res.ttfb,
                  "elapsed %" APR_TIME_T_FMT " us, ttfb %" APR_TIME_T_FMT " us", res.elapsed,
                  res.ttfb);
    ck_assert_msg(res.elapsed <= outside, "elapsed %" APR_TIME_T_FMT " us > %" APR_TIME_T_FMT,
                  res.elapsed, outside);
    /* A quick answer: small but positive figures, in order. */
    res = get("/ok", &o);
    ck_assert_int_gt(res.ttfb, 0);
    ck_assert_int_ge(res.elapsed, res.ttfb);
    ck_assert_msg(res.elapsed < WELL_BEFORE, "elapsed %" APR_TIME_T_FMT " us", res.elapsed);
    /* No answer, no ttfb. */
    o.first_byte_timeout = MS(200);
    res = get("/stall", &o);
    ck_assert_int_eq(res.ttfb, 0);
    ck_assert_int_gt(res.elapsed, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("loopback");

    tcase_add_checked_fixture(tc, setup, teardown);
    /* valgrind makes every transfer much slower. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_2xx_status_headers_body);
    tcase_add_test(tc, test_non_2xx_is_a_complete_exchange);
    tcase_add_test(tc, test_stream_2xx_goes_to_on_data_non_2xx_is_buffered);
    tcase_add_test(tc, test_body_over_max_body);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_first_byte_timeout);
    tcase_add_test(tc, test_first_byte_timeout_after_100_continue);
    tcase_add_test(tc, test_idle_timeout_in_a_stream);
    tcase_add_test(tc, test_overall_deadline);
    tcase_add_test(tc, test_reset_after_request);
    tcase_add_test(tc, test_client_gone_aborts_the_transfer);
    tcase_add_test(tc, test_check_timeout_ends_the_transfer);
    tcase_add_test(tc, test_sink_failure_aborts_the_transfer);
    tcase_add_test(tc, test_keepalive_reuse);
    tcase_add_test(tc, test_header_list_reused_only_when_identical);
    tcase_add_test(tc, test_handle_reusable_after_an_aborted_transfer);
    tcase_add_test(tc, test_only_http_and_https);
    tcase_add_test(tc, test_no_proxy_from_the_environment);
    tcase_add_test(tc, test_elapsed_and_ttfb);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
