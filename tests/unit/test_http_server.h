/*
 * A tiny HTTP/1.1 server on 127.0.0.1 for the suites of the libcurl clients
 * (test_upstream.c, test_fetch.c), in the spirit of mod_auth_openidc's
 * test/http_server.h.
 *
 * An accept thread hands each connection to a thread of its own. That thread
 * reads requests (the head, then a Content-Length body, answering
 * "Expect: 100-continue" first as httpd does) and passes each to the suite's
 * handler, which writes the answer with the helpers below and says whether
 * the connection stays open for another request. The server counts
 * connections and requests, so a test can tell that a refused URL was never
 * connected to, or that a second transfer reused the first connection.
 *
 * Threads: handlers run on the server's threads, never on the test's, so
 * they must not call ck_assert*, and the server uses malloc, not APR pools
 * (pools are not thread-safe). Every wait is bounded and ends early when the
 * server stops or the client closes the connection, so a slow run (valgrind,
 * a loaded machine) only gets slower, never stuck.
 */
#ifndef LLMGW_TEST_HTTP_SERVER_H
#define LLMGW_TEST_HTTP_SERVER_H

#include <stddef.h>
#include <apr_pools.h>

typedef struct test_http_server_t test_http_server_t;

/** One request as the server read it; valid during the handler call only. */
typedef struct {
    char method[16];
    char path[512];
    const char *head; /**< request line and headers, NUL-terminated */
    const char *body; /**< the body, NUL-terminated ("" when none) */
    size_t body_len;
    unsigned connection; /**< 1 for the first connection accepted, 2 for the next, ... */
    unsigned nth;        /**< 1 for the first request of its connection */
} test_http_request_t;

/**
 * Answer @p req on the socket @p fd. Runs on a server thread.
 * @return non-zero to keep the connection open for another request, 0 to
 * close it (after test_http_reset: with a TCP RST).
 */
typedef int (*test_http_handler_fn)(test_http_server_t *s, int fd, const test_http_request_t *req,
                                    void *baton);

/** Listen on 127.0.0.1 (a free port) and serve until test_http_server_stop; NULL on failure. */
test_http_server_t *test_http_server_start(test_http_handler_fn handler, void *baton);

/** Stop accepting, wake every waiting handler, join all threads and free the server. */
void test_http_server_stop(test_http_server_t *s);

int test_http_server_port(const test_http_server_t *s);

/** "http://127.0.0.1:<port><path>", from @p p. */
const char *test_http_server_url(const test_http_server_t *s, apr_pool_t *p, const char *path);

/** Connections accepted so far. */
unsigned test_http_server_connections(test_http_server_t *s);

/** Requests read so far (whole heads and bodies, handed to the handler). */
unsigned test_http_server_requests(test_http_server_t *s);

/**
 * Connections accepted and not yet closed by the server. A connection ends
 * when its handler returns 0 or the client closes it; a handler that is
 * stalling or streaming notices the client's close within a few ms (a
 * failed send, or test_http_wait), so 0 here after an aborted transfer
 * shows that the client really dropped the connection.
 */
unsigned test_http_server_open_connections(test_http_server_t *s);

/**
 * The head and body of the latest request, copied into @p p (from the test's
 * thread); "" when there was none.
 */
void test_http_server_last(test_http_server_t *s, apr_pool_t *p, const char **head,
                           const char **body, apr_size_t *body_len);

/** Send all of @p data; 0, or -1 once the client is gone. */
int test_http_send(int fd, const void *data, size_t n);

/** Send a formatted string (at most 4 KiB); 0, or -1 once the client is gone. */
int test_http_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Sleep @p ms on behalf of a handler. Returns 0 after the whole wait, or -1
 * as soon as the server stops or the client closes the connection, so a
 * stalling answer ends with its transfer.
 */
int test_http_wait(test_http_server_t *s, int fd, int ms);

/** Make the coming close of @p fd a TCP RST (SO_LINGER 0); the handler then returns 0. */
void test_http_reset(int fd);

#endif
