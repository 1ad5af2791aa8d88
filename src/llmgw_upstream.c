/*
 * The libcurl client of the gateway (see llmgw_upstream.h for the design).
 *
 * Lifetimes: the handle stack and the share object belong to the child pool;
 * each transfer borrows one (multi, easy) pair and returns it. Buffered
 * bodies live in the request pool.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "llmgw_upstream.h"

/* Idle connections older than this are not reused: providers and load
 * balancers close theirs after about two minutes. */
#define UPSTREAM_MAX_CONN_AGE 118L
/* How often the transfer loop wakes up to check deadlines and the client. */
#define UPSTREAM_SLICE_MS 100

typedef struct handle_t handle_t;
struct handle_t {
    CURLM *multi;
    CURL *easy;
    handle_t *next;
    /* The header list of this handle's last transfer, kept for the next:
     * the requests of one backend repeat the same headers, and rebuilding
     * the list cost an allocation per header per request. */
    struct curl_slist *hdrs;
    /* The prepared list (llmgw_http_request_t.headers_fixed) hdrs was made
     * from, or NULL: such a list lives unchanged as long as the child, so
     * its address alone says the slist is still right. */
    const apr_array_header_t *hdrs_from;
    char errbuf[CURL_ERROR_SIZE];
};

struct llmgw_upstream_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex; /* guards idle/idle_count */
    handle_t *idle;
    int idle_count;
    int max_idle;
    CURLSH *share;
    apr_thread_mutex_t *share_mutex[CURL_LOCK_DATA_LAST];
};

/* One transfer in flight. */
typedef struct {
    const llmgw_upstream_opts_t *opts;
    llmgw_upstream_result_t *res;
    apr_pool_t *pool;
    CURL *easy;
    apr_time_t start;
    apr_time_t last_data;
    int got_headers;
    int got_body;
    int status_2xx;
    char *buf; /* body buffer, from the request pool */
    apr_size_t len, cap;
    int too_big;
    int requests;       /* requests this transfer sent (CURLOPT_PREREQFUNCTION) */
    int resend_refused; /* the second one was refused */
} xfer_t;

static apr_status_t global_cleanup(void *data)
{
    curl_global_cleanup();
    return APR_SUCCESS;
}

/* CURLOPT_PROTOCOLS_STR arrived in 7.85; an older libcurl at run time (the
 * module built elsewhere) would ignore it and follow any scheme. */
#define UPSTREAM_MIN_CURL 0x075500

apr_status_t llmgw_upstream_global_init(apr_pool_t *pconf)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

    if (!v || v->version_num < UPSTREAM_MIN_CURL)
        return APR_ENOTIMPL;
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return APR_EGENERAL;
    /* Reference counted: each pass pairs its init with a cleanup on pconf. */
    apr_pool_cleanup_register(pconf, NULL, global_cleanup, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    llmgw_upstream_t *up = u;
    if (d >= 0 && d < CURL_LOCK_DATA_LAST && up->share_mutex[d])
        apr_thread_mutex_lock(up->share_mutex[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    llmgw_upstream_t *up = u;
    if (d >= 0 && d < CURL_LOCK_DATA_LAST && up->share_mutex[d])
        apr_thread_mutex_unlock(up->share_mutex[d]);
}

static void handle_destroy(handle_t *h)
{
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->hdrs);
    free(h);
}

static apr_status_t child_cleanup(void *data)
{
    llmgw_upstream_t *up = data;
    handle_t *h, *next;

    for (h = up->idle; h; h = next) {
        next = h->next;
        handle_destroy(h);
    }
    up->idle = NULL;
    if (up->share)
        curl_share_cleanup(up->share);
    up->share = NULL;
    return APR_SUCCESS;
}

static handle_t *handle_get(llmgw_upstream_t *up);
static void handle_put(llmgw_upstream_t *up, handle_t *h, int reusable);

apr_status_t llmgw_upstream_child_create(llmgw_upstream_t **out, apr_pool_t *pchild, int max_idle)
{
    llmgw_upstream_t *up = apr_pcalloc(pchild, sizeof(*up));
    apr_status_t rv;
    handle_t *h;
    int i;

    up->pool = pchild;
    up->max_idle = max_idle > 0 ? max_idle : 64;
    rv = apr_thread_mutex_create(&up->mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv != APR_SUCCESS)
        return rv;
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        rv = apr_thread_mutex_create(&up->share_mutex[i], APR_THREAD_MUTEX_DEFAULT, pchild);
        if (rv != APR_SUCCESS)
            return rv;
    }
    /* DNS and TLS sessions are shared; connections are not (unsupported
     * across threads in libcurl 7.88): reuse comes from the handle stack. */
    up->share = curl_share_init();
    if (!up->share)
        return APR_ENOMEM;
    curl_share_setopt(up->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(up->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(up->share, CURLSHOPT_USERDATA, up);
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    apr_pool_cleanup_register(pchild, up, child_cleanup, apr_pool_cleanup_null);
    /* One handle now, so that a libcurl refusing the fixed options is found
     * here, in child_init, and not by the first request. */
    h = handle_get(up);
    if (!h)
        return APR_ENOTIMPL;
    handle_put(up, h, 1);
    *out = up;
    return APR_SUCCESS;
}

static CURLcode set_fixed_options(llmgw_upstream_t *up, handle_t *h);

static handle_t *handle_get(llmgw_upstream_t *up)
{
    handle_t *h;

    apr_thread_mutex_lock(up->mutex);
    h = up->idle;
    if (h) {
        up->idle = h->next;
        up->idle_count--;
    }
    apr_thread_mutex_unlock(up->mutex);
    if (h)
        return h;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy || set_fixed_options(up, h) != CURLE_OK) {
        handle_destroy(h);
        return NULL;
    }
    return h;
}

static void handle_put(llmgw_upstream_t *up, handle_t *h, int reusable)
{
    if (reusable) {
        apr_thread_mutex_lock(up->mutex);
        if (up->idle_count < up->max_idle) {
            h->next = up->idle;
            up->idle = h;
            up->idle_count++;
            h = NULL;
        }
        apr_thread_mutex_unlock(up->mutex);
    }
    if (h)
        handle_destroy(h);
}

/*
 * The body goes straight into the request pool: most answers fit the first
 * block, and growth doubles, so at most as much again is left unused. A
 * malloc'ed buffer here made glibc consolidate its free lists on every
 * request (seen in profiles).
 */
static int buf_append(xfer_t *x, const char *data, apr_size_t n)
{
    if (x->len + n > x->opts->max_body) {
        x->too_big = 1;
        return -1;
    }
    if (x->len + n + 1 > x->cap) {
        apr_size_t cap = x->cap ? x->cap * 2 : 8192;
        char *nb;
        while (cap < x->len + n + 1)
            cap *= 2;
        nb = apr_palloc(x->pool, cap);
        if (x->len)
            memcpy(nb, x->buf, x->len);
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    return 0;
}

static const char *header_value(apr_pool_t *p, const char *line, apr_size_t n, const char *name)
{
    apr_size_t nl = strlen(name);
    const char *v, *end = line + n;

    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return NULL;
    v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return apr_pstrmemdup(p, v, (apr_size_t)(end - v));
}

/* 1 for the status line of an interim answer ("HTTP/1.1 100 Continue"). */
static int status_line_interim(const char *line, apr_size_t n)
{
    const char *sp = memchr(line, ' ', n);

    return sp && sp + 1 < line + n && sp[1] == '1';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    apr_size_t n = size * nmemb;
    const char *v;

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue, say): forget the old. */
        x->res->retry_after = x->res->retry_after_ms = x->res->content_type = NULL;
        /* An interim 1xx is not the answer: libcurl asks for "100 Continue"
         * before a body over 1 MiB, and a server that sends it at once and
         * then stalls must still meet the first-byte timeout. */
        if (!x->got_headers && !status_line_interim(data, n)) {
            x->got_headers = 1;
            x->res->ttfb = apr_time_now() - x->start;
        }
        return n;
    }
    if ((v = header_value(x->pool, data, n, "retry-after")) != NULL)
        x->res->retry_after = v;
    else if ((v = header_value(x->pool, data, n, "retry-after-ms")) != NULL)
        x->res->retry_after_ms = v;
    else if ((v = header_value(x->pool, data, n, "content-type")) != NULL)
        x->res->content_type = v;
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    apr_size_t n = size * nmemb;
    apr_status_t rv;

    if (!x->got_body) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        x->res->status = (int)code;
        x->status_2xx = code >= 200 && code < 300;
        x->got_body = 1;
    }
    x->last_data = apr_time_now();
    if (!x->status_2xx || !x->opts->on_data)
        return buf_append(x, data, n) == 0 ? n : 0;
    rv = x->opts->on_data(x->opts->baton, data, n);
    if (rv != APR_SUCCESS) {
        x->res->sink_status = rv;
        return 0; /* CURLE_WRITE_ERROR: abort the transfer */
    }
    return n;
}

/*
 * Called before each request the transfer sends. A second one is libcurl
 * re-sending on a fresh connection after the reused one died without an
 * answer (see llmgw_upstream.h): refused, so that every request a provider
 * sees is an attempt the caller counted.
 */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    xfer_t *x = ud;

    if (++x->requests > 1) {
        x->resend_refused = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/*
 * Options that never change for a handle: set once, when it is made. The
 * protocol restriction must take: without it a redirect or a crafted
 * endpoint could reach file:// or any other scheme libcurl speaks.
 */
static CURLcode set_fixed_options(llmgw_upstream_t *up, handle_t *h)
{
    CURL *e = h->easy;
    CURLcode cc;

    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if ((cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK)
        return cc;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, UPSTREAM_MAX_CONN_AGE);
    /* Only the endpoints of gateway.yaml: no proxy picked up from whatever
     * environment httpd happened to be started with. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_SHARE, up->share);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    return CURLE_OK;
}

/*
 * Options of one transfer. Every option that varies is set on every
 * transfer, so the handle needs no curl_easy_reset (which would also throw
 * away the fixed options above).
 */
static void set_options(CURL *e, const llmgw_http_request_t *req, const llmgw_upstream_opts_t *opts,
                        struct curl_slist *hdrs, xfer_t *x)
{
    apr_interval_time_t left = opts->deadline - apr_time_now();
    long total_ms = left > 1000 ? (long)(left / 1000) : 1;
    long connect_ms = (long)(opts->connect_timeout / 1000);

    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms > 0 ? connect_ms : 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         req->method && strcmp(req->method, "POST") != 0 ? req->method : NULL);
    }
    else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         req->method && strcmp(req->method, "GET") != 0 ? req->method : NULL);
    }
}

/* Which deadline, if any, has passed. */
static llmgw_fail_e check_deadlines(xfer_t *x, apr_time_t now)
{
    const llmgw_upstream_opts_t *o = x->opts;
    int first_byte_seen = x->opts->on_data ? x->got_body : x->got_headers;

    if (now >= o->deadline)
        return LLMGW_FAIL_TIMEOUT;
    if (!first_byte_seen && o->first_byte_timeout > 0 && now - x->start >= o->first_byte_timeout)
        return LLMGW_FAIL_TIMEOUT;
    if (first_byte_seen && o->on_data && o->idle_timeout > 0 &&
        now - x->last_data >= o->idle_timeout)
        return LLMGW_FAIL_IDLE;
    return LLMGW_FAIL_NONE;
}

static int poll_ms(xfer_t *x, apr_time_t now)
{
    apr_interval_time_t wait = apr_time_from_msec(UPSTREAM_SLICE_MS);
    apr_interval_time_t left = x->opts->deadline - now;
    if (left < wait)
        wait = left;
    if (!x->got_headers && x->opts->first_byte_timeout > 0) {
        apr_interval_time_t fb = x->start + x->opts->first_byte_timeout - now;
        if (fb < wait)
            wait = fb;
    }
    return wait > 1000 ? (int)(wait / 1000) : 1;
}

static llmgw_fail_e map_curl_code(CURLcode cc, xfer_t *x)
{
    long request_bytes = 0;

    switch (cc) {
    case CURLE_OK:
        return LLMGW_FAIL_NONE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return LLMGW_FAIL_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout before the request went out is a connect failure. The
         * connect time cannot tell: it is 0 on a reused connection too. */
        curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &request_bytes);
        return request_bytes == 0 && !x->got_headers ? LLMGW_FAIL_CONNECT : LLMGW_FAIL_TIMEOUT;
    case CURLE_WRITE_ERROR:
        return x->too_big ? LLMGW_FAIL_PROTOCOL : LLMGW_FAIL_NONE;
    case CURLE_ABORTED_BY_CALLBACK:
        /* Ours: the silent re-send was refused; the first request went out. */
        return LLMGW_FAIL_RESET;
    default:
        return LLMGW_FAIL_RESET;
    }
}

static void collect(xfer_t *x, handle_t *h)
{
    llmgw_upstream_result_t *res = x->res;
    long code = 0;
    curl_off_t total = 0;
    long conns = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code)
        res->status = (int)code;
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total);
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns);
    res->new_connections = conns;
    res->resend_refused = x->resend_refused;
    res->elapsed = apr_time_now() - x->start;
    if (x->buf) {
        x->buf[x->len] = '\0';
        res->body = x->buf;
        res->body_len = x->len;
    }
    else {
        res->body = "";
        res->body_len = 0;
    }
    if (h->errbuf[0])
        res->detail = apr_pstrdup(x->pool, h->errbuf);
}

static struct curl_slist *make_headers(const llmgw_http_request_t *req)
{
    struct curl_slist *list = NULL, *n;
    int i;

    for (i = 0; req->headers && i < req->headers->nelts; i++) {
        n = curl_slist_append(list, APR_ARRAY_IDX(req->headers, i, const char *));
        if (!n) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = n;
    }
    return list;
}

/* @p list holds exactly the headers of @p req, in order. */
static int same_headers(const struct curl_slist *list, const llmgw_http_request_t *req)
{
    int i, n = req->headers ? req->headers->nelts : 0;

    for (i = 0; i < n; i++, list = list->next) {
        if (!list || strcmp(list->data, APR_ARRAY_IDX(req->headers, i, const char *)) != 0)
            return 0;
    }
    return list == NULL;
}

/*
 * The header list for @p req on @p h: the previous transfer's when every
 * header is the same (a backend's static headers and auth), else built
 * anew (another backend, a refreshed token, per-request headers). The list
 * stays with the handle: the easy handle points to it until the next
 * transfer sets another.
 */
static struct curl_slist *headers_for(handle_t *h, const llmgw_http_request_t *req)
{
    if (h->hdrs && req->headers_fixed && h->hdrs_from == req->headers)
        return h->hdrs;
    if (h->hdrs && same_headers(h->hdrs, req)) {
        h->hdrs_from = req->headers_fixed ? req->headers : NULL;
        return h->hdrs;
    }
    curl_slist_free_all(h->hdrs);
    h->hdrs = make_headers(req);
    h->hdrs_from = h->hdrs && req->headers_fixed ? req->headers : NULL;
    return h->hdrs;
}

/* Drive the transfer until it completes, a deadline passes or the client goes. */
static CURLcode run(handle_t *h, xfer_t *x)
{
    apr_time_t next_check = x->start + apr_time_from_msec(UPSTREAM_SLICE_MS);
    int running = 1;

    while (running) {
        apr_time_t now;
        llmgw_fail_e f;
        CURLMsg *msg;
        int left;

        if (curl_multi_perform(h->multi, &running) != CURLM_OK)
            return CURLE_RECV_ERROR;
        while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE)
                return msg->data.result;
        }
        if (!running)
            break;
        now = apr_time_now();
        f = check_deadlines(x, now);
        if (f != LLMGW_FAIL_NONE) {
            x->res->fail = f;
            return CURLE_OPERATION_TIMEDOUT;
        }
        if (x->opts->check && now >= next_check) {
            next_check = now + apr_time_from_msec(UPSTREAM_SLICE_MS);
            f = x->opts->check(x->opts->baton);
            if (f != LLMGW_FAIL_NONE) {
                x->res->fail = f;
                return CURLE_ABORTED_BY_CALLBACK;
            }
        }
        curl_multi_wait(h->multi, NULL, 0, poll_ms(x, now), NULL);
    }
    return CURLE_OK;
}

apr_status_t llmgw_upstream_perform(llmgw_upstream_t *up, apr_pool_t *p,
                                    const llmgw_http_request_t *req,
                                    const llmgw_upstream_opts_t *opts, llmgw_upstream_result_t *res)
{
    handle_t *h;
    struct curl_slist *hdrs;
    xfer_t x;
    CURLcode cc;

    memset(res, 0, sizeof(*res));
    memset(&x, 0, sizeof(x));
    h = handle_get(up);
    if (!h)
        return APR_ENOMEM;
    hdrs = headers_for(h, req);
    x.opts = opts;
    x.res = res;
    x.pool = p;
    x.easy = h->easy;
    x.start = x.last_data = apr_time_now();
    h->errbuf[0] = '\0';
    set_options(h->easy, req, opts, hdrs, &x);
    curl_multi_add_handle(h->multi, h->easy);
    cc = run(h, &x);
    if (res->fail == LLMGW_FAIL_NONE && res->sink_status == APR_SUCCESS)
        res->fail = map_curl_code(cc, &x);
    collect(&x, h);
    curl_multi_remove_handle(h->multi, h->easy);
    /* A transfer we cut short leaves its connection in an unknown state;
     * libcurl closes such connections itself, so the pair stays reusable. */
    handle_put(up, h, 1);
    return APR_SUCCESS;
}
