/* The loopback HTTP server of the libcurl client suites (see test_http_server.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <apr_strings.h>
#include "test_http_server.h"

/* At most this many connections per server (a test makes a handful). */
#define MAX_CONNS 64
/* Request heads and bodies beyond these close the connection. */
#define MAX_HEAD 16384
#define MAX_BODY (16 * 1024 * 1024)
/* Every blocking wait is cut into slices this long, to notice a stop. */
#define SLICE_MS 20
/* How long a kept-alive connection waits for its next request. */
#define KEEPALIVE_MS 30000

typedef struct {
    test_http_server_t *s;
    int fd;
    unsigned id;
    pthread_t thread;
} conn_t;

struct test_http_server_t {
    int fd;
    int port;
    test_http_handler_fn handler;
    void *baton;
    pthread_t accept_thread;
    pthread_mutex_t mutex; /* guards everything below */
    int stop;
    unsigned connections, closed, requests;
    conn_t *conns[MAX_CONNS];
    int nconns;
    char *last_head, *last_body;
    size_t last_body_len;
};

static int stopping(test_http_server_t *s)
{
    int stop;

    pthread_mutex_lock(&s->mutex);
    stop = s->stop;
    pthread_mutex_unlock(&s->mutex);
    return stop;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int test_http_send(int fd, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int test_http_sendf(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -1;
    return test_http_send(fd, buf, (size_t)n);
}

void test_http_reset(int fd)
{
    struct linger l = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/* 1 when the client has closed (or reset) @p fd; data it sent is left unread. */
static int client_closed(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int test_http_wait(test_http_server_t *s, int fd, int ms)
{
    long end = now_ms() + ms;

    for (;;) {
        struct pollfd pfd = {fd, POLLIN | POLLRDHUP, 0};
        long left = end - now_ms();

        if (stopping(s))
            return -1;
        if (left <= 0)
            return 0;
        if (poll(&pfd, 1, left < SLICE_MS ? (int)left : SLICE_MS) > 0) {
            if (client_closed(fd))
                return -1;
            /* The client sent something while we stall: nothing to do
             * with it, but do not spin on it either. */
            usleep(SLICE_MS * 1000);
        }
    }
}

/*
 * Receive into @p buf at @p *have until @p done says so; 0, or -1 when the
 * client closed, the server stops, the buffer is full or @p limit_ms passes.
 */
static int recv_more(test_http_server_t *s, int fd, char *buf, size_t cap, size_t *have,
                     long limit_ms)
{
    long end = now_ms() + limit_ms;

    while (!stopping(s) && now_ms() < end) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;

        if (*have >= cap)
            return -1;
        if (poll(&pfd, 1, SLICE_MS) <= 0)
            continue;
        r = recv(fd, buf + *have, cap - *have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        *have += (size_t)r;
        return 0;
    }
    return -1;
}

/* The value of header @p name in @p head, or NULL (a pointer into head). */
static const char *header(const char *head, const char *name)
{
    size_t n = strlen(name);
    const char *line = strstr(head, "\r\n");

    while (line && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            line += n + 1;
            while (*line == ' ' || *line == '\t')
                line++;
            return line;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

static void record(test_http_server_t *s, const char *head, const char *body, size_t body_len)
{
    char *h = strdup(head), *b = malloc(body_len + 1);

    if (b) {
        memcpy(b, body, body_len);
        b[body_len] = '\0';
    }
    pthread_mutex_lock(&s->mutex);
    free(s->last_head);
    free(s->last_body);
    s->last_head = h;
    s->last_body = b;
    s->last_body_len = b ? body_len : 0;
    s->requests++;
    pthread_mutex_unlock(&s->mutex);
}

/* Requests of one connection, one after the other, until the handler or the client closes. */
static void *conn_main(void *data)
{
    conn_t *c = data;
    test_http_server_t *s = c->s;
    char *buf = malloc(MAX_HEAD + 1);
    size_t have = 0;
    unsigned nth = 0;
    int keep = 1;

    while (buf && keep && !stopping(s)) {
        test_http_request_t req;
        char *end, *body = NULL;
        const char *v;
        size_t head_len, body_len = 0, got, used;

        memset(&req, 0, sizeof(req));
        buf[have] = '\0';
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            if (recv_more(s, c->fd, buf, MAX_HEAD, &have, KEEPALIVE_MS) != 0)
                goto leave;
            buf[have] = '\0';
        }
        head_len = (size_t)(end - buf) + 4;
        end[2] = '\0'; /* the head keeps the CRLF of its last header line */
        if (sscanf(buf, "%15s %511s", req.method, req.path) != 2)
            break;
        if ((v = header(buf, "content-length")) != NULL)
            body_len = strtoul(v, NULL, 10);
        if (body_len > MAX_BODY)
            break;
        if ((v = header(buf, "expect")) != NULL && strncasecmp(v, "100-continue", 12) == 0 &&
            test_http_sendf(c->fd, "HTTP/1.1 100 Continue\r\n\r\n") != 0)
            break;
        body = malloc(body_len + 1);
        if (!body)
            break;
        got = have - head_len < body_len ? have - head_len : body_len;
        used = head_len + got;
        memcpy(body, buf + head_len, got);
        while (got < body_len) {
            if (recv_more(s, c->fd, body, body_len, &got, KEEPALIVE_MS) != 0) {
                free(body);
                goto leave;
            }
        }
        body[body_len] = '\0';
        record(s, buf, body, body_len);
        req.head = buf;
        req.body = body;
        req.body_len = body_len;
        req.connection = c->id;
        req.nth = ++nth;
        keep = s->handler(s, c->fd, &req, s->baton);
        /* What followed the body (a pipelined request) stays for the next round. */
        memmove(buf, buf + used, have - used);
        have -= used;
        free(body);
    }
leave:
    free(buf);
    close(c->fd);
    pthread_mutex_lock(&s->mutex);
    s->closed++;
    pthread_mutex_unlock(&s->mutex);
    return NULL;
}

static void *accept_main(void *data)
{
    test_http_server_t *s = data;

    while (!stopping(s)) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        conn_t *c;
        int fd;

        if (poll(&pfd, 1, SLICE_MS) <= 0)
            continue;
        fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            continue;
        c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&s->mutex);
        if (!c || s->nconns == MAX_CONNS) {
            pthread_mutex_unlock(&s->mutex);
            free(c);
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        c->id = ++s->connections;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            pthread_mutex_unlock(&s->mutex);
            free(c);
            close(fd);
            continue;
        }
        s->conns[s->nconns++] = c;
        pthread_mutex_unlock(&s->mutex);
    }
    return NULL;
}

test_http_server_t *test_http_server_start(test_http_handler_fn handler, void *baton)
{
    test_http_server_t *s = calloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    if (!s)
        return NULL;
    s->handler = handler;
    s->baton = baton;
    pthread_mutex_init(&s->mutex, NULL);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 16) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) != 0 ||
        pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
        if (s->fd >= 0)
            close(s->fd);
        pthread_mutex_destroy(&s->mutex);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    return s;
}

void test_http_server_stop(test_http_server_t *s)
{
    int i;

    if (!s)
        return;
    pthread_mutex_lock(&s->mutex);
    s->stop = 1;
    pthread_mutex_unlock(&s->mutex);
    /* The accept thread adds no connection once it has ended. */
    pthread_join(s->accept_thread, NULL);
    for (i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i]->thread, NULL);
        free(s->conns[i]);
    }
    close(s->fd);
    free(s->last_head);
    free(s->last_body);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

int test_http_server_port(const test_http_server_t *s)
{
    return s->port;
}

const char *test_http_server_url(const test_http_server_t *s, apr_pool_t *p, const char *path)
{
    return apr_psprintf(p, "http://127.0.0.1:%d%s", s->port, path);
}

static unsigned counter(test_http_server_t *s, const unsigned *which)
{
    unsigned n;

    pthread_mutex_lock(&s->mutex);
    n = *which;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

unsigned test_http_server_connections(test_http_server_t *s)
{
    return counter(s, &s->connections);
}

unsigned test_http_server_requests(test_http_server_t *s)
{
    return counter(s, &s->requests);
}

unsigned test_http_server_open_connections(test_http_server_t *s)
{
    unsigned n;

    pthread_mutex_lock(&s->mutex);
    n = s->connections - s->closed;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

void test_http_server_last(test_http_server_t *s, apr_pool_t *p, const char **head,
                           const char **body, apr_size_t *body_len)
{
    pthread_mutex_lock(&s->mutex);
    *head = apr_pstrdup(p, s->last_head ? s->last_head : "");
    *body = s->last_body ? apr_pstrmemdup(p, s->last_body, s->last_body_len) : "";
    *body_len = s->last_body ? s->last_body_len : 0;
    pthread_mutex_unlock(&s->mutex);
}
