/*
 * The llmgw handler: read the body, route, call the upstream with retries,
 * and answer with JSON or a live SSE stream.
 *
 * Threading: everything here runs on the request's own thread; the libcurl
 * callbacks (on_data, client_gone) run inside llmgw_upstream_perform on that
 * same thread, so they may use r and its filters.
 *
 * Memory: per-request data comes from r->pool; stream frames go through one
 * reused brigade (apr_brigade_write copies into recycled heap buckets), so a
 * long stream does not grow the request pool per event.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>
#include "mod_llmgw_private.h"
#include <scoreboard.h>
#include "llmgw_error.h"
#include "llmgw_json.h"
#include "llmgw_provider.h"
#include "llmgw_sse.h"
#include "llmgw_stats.h"
#include "llmgw_validate.h"
#include "llmgw_pool.h"
#include "llmgw_route.h"
#include "llmgw_redact.h"
#include "llmgw_google_auth.h"
#include "llmgw_fetch.h"

/* Largest first buffer for a request body, whatever Content-Length says. */
#define BODY_PREALLOC_MAX (256 * 1024)
/* Largest single SSE event accepted from an upstream. */
#define LLMGW_MAX_SSE_EVENT (8 * 1024 * 1024)
/* The logged status of a request whose client went away (answer_client_gone). */
#define LLMGW_STATUS_CLIENT_GONE 499
/* A retry hint longer than this is not waited for (providers.md 9.2). */
#define LLMGW_MAX_RETRY_WAIT apr_time_from_sec(10)

/* Per-child caches, set in child_init: the upstream client and the
 * Vertex AI access tokens. */
static llmgw_upstream_t *child_upstream;
static llmgw_google_auth_t *child_google_auth;

void llmgw_handler_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = llmgw_upstream_child_create(&child_upstream, pchild, 64);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00003) "cannot create the upstream client of this child");
    rv = llmgw_google_auth_create(&child_google_auth, pchild);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00012) "cannot create the Vertex AI token cache of this child");
}

/* One client request. */
typedef struct {
    request_rec *r;
    const llmgw_config_t *gw;
    const llmgw_route_t *route;
    const llmgw_backend_t *backend;
    apr_time_t t0;
    apr_interval_time_t upstream_time; /* inside upstream transfers and retry waits */
    int attempts;
    llmgw_call_t call;
    const llmgw_provider_t *prov;

    /* streaming */
    apr_bucket_brigade *bb;    /* reused for every frame */
    apr_bucket_brigade *held;  /* preamble frames not yet sent */
    apr_bucket_brigade *probe; /* scratch for the client-gone check */
    int committed;             /* status and headers have left */
    int client_gone;
    llmgw_sse_parser_t *parser;
    llmgw_stream_t st;
    apr_status_t event_rv;  /* first failure of the translator, if any */
    int upstream_done;      /* the translator saw the terminal event */
    int answered;           /* a candidate answered the request */
    llmgw_fail_e last_fail; /* the request's last failure, for the pool's own slot */
    int last_status;
    int max_attempts; /* cap across a pool's members; 0 = none (lone backend) */

    /* remote images, fetched once for every member with the same imageFetch */
    const llmgw_image_fetch_t *images_cfg; /* settings of the last fetch; NULL: none yet */
    apr_hash_t *images;                    /* what it fetched */
    llmgw_error_t *images_err;             /* or why it was refused */
} req_t;

/* ---------------------------------------------------------------------- */
/* Response helpers                                                         */

/*
 * Parameter names as translators spell them ("messages[].name"). Anything
 * else never becomes a header: translators only name parameters they know,
 * and this keeps a slip from putting a client's string (a CRLF, 20 KB) on
 * the wire after the upstream call was made.
 */
static int param_name_ok(const char *s)
{
    apr_size_t n = 0;

    for (; *s; s++, n++) {
        if (n >= 64 || !(apr_isalnum(*s) || strchr("_.[]-", *s)))
            return 0;
    }
    return n > 0;
}

static const char *dropped_header(apr_pool_t *p, const apr_array_header_t *dropped)
{
    const char *out = NULL;
    int i;

    for (i = 0; i < dropped->nelts; i++) {
        const char *name = APR_ARRAY_IDX(dropped, i, const char *);
        if (param_name_ok(name))
            out = out ? apr_pstrcat(p, out, ",", name, NULL) : name;
    }
    return out;
}

static void set_gateway_headers(req_t *q)
{
    request_rec *r = q->r;
    apr_interval_time_t overhead = apr_time_now() - q->t0 - q->upstream_time;

    if (overhead < 0)
        overhead = 0;
    if (q->backend) {
        apr_table_setn(r->err_headers_out, "x-llmgw-backend", q->backend->name);
        apr_table_setn(r->subprocess_env, "LLMGW_BACKEND", q->backend->name);
    }
    if (q->attempts > 0) {
        const char *n = apr_itoa(r->pool, q->attempts);
        apr_table_setn(r->err_headers_out, "x-llmgw-attempts", n);
        apr_table_setn(r->subprocess_env, "LLMGW_ATTEMPTS", n);
        apr_table_setn(
            r->subprocess_env, "LLMGW_UPSTREAM_MS",
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)(q->upstream_time / 1000)));
    }
    apr_table_setn(r->err_headers_out, "x-llmgw-overhead-ms",
                   apr_psprintf(r->pool, "%.3f", (double)overhead / 1000.0));
    if (q->call.model)
        apr_table_setn(r->subprocess_env, "LLMGW_MODEL", q->call.model);
    if (q->call.dropped && q->call.dropped->nelts > 0) {
        const char *names = dropped_header(r->pool, q->call.dropped);
        if (names)
            apr_table_setn(r->err_headers_out, "x-llmgw-dropped-params", names);
    }
}

static void set_usage_env(req_t *q, const llmgw_usage_t *u)
{
    if (!u->present)
        return;
    apr_table_setn(q->r->subprocess_env, "LLMGW_PROMPT_TOKENS",
                   apr_psprintf(q->r->pool, "%" APR_INT64_T_FMT, u->prompt_tokens));
    apr_table_setn(q->r->subprocess_env, "LLMGW_COMPLETION_TOKENS",
                   apr_psprintf(q->r->pool, "%" APR_INT64_T_FMT, u->completion_tokens));
}

static int send_json(req_t *q, int status, const char *body, apr_size_t len)
{
    request_rec *r = q->r;

    set_gateway_headers(q);
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/*
 * Provider text reaches clients and logs through here only: every
 * configured credential and the token minted for this request go
 * (DESIGN.md 10), whatever the provider type.
 */
static const llmgw_error_t *redacted(req_t *q, const llmgw_error_t *e)
{
    return llmgw_redact_error(q->r->pool, e, q->gw ? q->gw->secrets : NULL, q->call.access_token);
}

static int send_error(req_t *q, const llmgw_error_t *e)
{
    apr_size_t len;
    const char *body;

    e = redacted(q, e);
    body = llmgw_error_json(q->r->pool, e, &len);
    if (e->status >= 400 && !apr_table_get(q->r->subprocess_env, "LLMGW_ERROR"))
        apr_table_setn(q->r->subprocess_env, "LLMGW_ERROR",
                       e->code ? e->code : (e->type ? e->type : "error"));
    return send_json(q, e->status, body, len);
}

static int fail_request(req_t *q, int status, const char *code, const char *param, const char *msg)
{
    return send_error(q, llmgw_error_make(q->r->pool, status, NULL, code, param, "%s", msg));
}

/* ---------------------------------------------------------------------- */
/* Models, answered from the configuration                                 */

static int serve_models(req_t *q, const char *id)
{
    apr_int64_t created = apr_time_sec(
        ap_scoreboard_image ? ap_scoreboard_image->global->restart_time : q->r->request_time);
    json_t *out = llmgw_route_models_json(q->r->pool, q->route, id, created);
    const char *body;
    apr_size_t len;

    if (!out)
        return send_error(q, llmgw_error_make(q->r->pool, HTTP_NOT_FOUND, NULL, "model_not_found",
                                              "model", "The model '%s' does not exist", id));
    body = llmgw_json_dump(q->r->pool, out, &len);
    return send_json(q, HTTP_OK, body, len);
}

/* ---------------------------------------------------------------------- */
/* Request body                                                             */

static int read_body(req_t *q, char **out, apr_size_t *out_len)
{
    request_rec *r = q->r;
    apr_off_t limit = llmgw_max_body(r);
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_size_t cap = 8192, len = 0;
    char *buf;
    int eos = 0;

    /* Refuse before reading, so that no "100 Continue" goes out first. */
    if (cl && apr_atoi64(cl) > limit) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    /* Content-Length is the client's claim: it sizes the first buffer only up
     * to a modest bound, and the buffer grows as data really arrives. */
    if (cl && apr_atoi64(cl) > 0)
        cap = (apr_size_t)(apr_atoi64(cl) < BODY_PREALLOC_MAX ? apr_atoi64(cl) + 1
                                                              : BODY_PREALLOC_MAX);
    buf = apr_palloc(r->pool, cap);
    while (!eos) {
        apr_bucket *b;
        apr_status_t rv =
            ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ, 65536);
        if (rv != APR_SUCCESS)
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;
            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b))
                continue;
            if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS)
                return HTTP_BAD_REQUEST;
            if ((apr_off_t)(len + n) > limit) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            if (len + n + 1 > cap) {
                char *nb;
                while (len + n + 1 > cap)
                    cap *= 2;
                nb = apr_palloc(r->pool, cap);
                memcpy(nb, buf, len);
                buf = nb;
            }
            memcpy(buf + len, data, n);
            len += n;
        }
        apr_brigade_cleanup(bb);
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return OK;
}

static int content_type_ok(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t n = strlen("application/json");

    if (!ct)
        return 1;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* ---------------------------------------------------------------------- */
/* Streaming to the client                                                  */

/*
 * Polled while nothing is written to the client (waiting for an upstream,
 * between retries, between stream events); non-zero once the client is gone.
 *
 * HTTP/1.1: a speculative non-blocking read sees a closed connection as EOF
 * (a pipelined next request reads as data and is not consumed).
 *
 * HTTP/2 (mod_http2): r->connection is the stream's secondary connection
 * (c->master != NULL), whose input is the request body alone; once that is
 * consumed a read returns EOF while the client is still waiting, so a read
 * proves nothing there (apache-notes 3.4). mod_http2 sets c->aborted on the
 * secondary connection when the client resets the stream or the connection
 * ends, and writes (pass_frame) fail then: those are the only signals used.
 */
static int client_gone_check(void *baton)
{
    req_t *q = baton;
    conn_rec *c = q->r->connection;
    apr_status_t rv;

    if (q->client_gone || c->aborted)
        return q->client_gone = 1;
    if (c->master)
        return 0;
    rv = ap_get_brigade(c->input_filters, q->probe, AP_MODE_SPECULATIVE, APR_NONBLOCK_READ, 1);
    apr_brigade_cleanup(q->probe);
    if (rv == APR_SUCCESS || APR_STATUS_IS_EAGAIN(rv))
        return 0;
    return q->client_gone = 1;
}

static llmgw_fail_e client_check(void *baton)
{
    return client_gone_check(baton) ? LLMGW_FAIL_CLIENT_GONE : LLMGW_FAIL_NONE;
}

static void commit_stream(req_t *q)
{
    request_rec *r = q->r;

    q->committed = 1;
    set_gateway_headers(q);
    r->status = HTTP_OK;
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    ap_set_content_type(r, "text/event-stream");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
}

static apr_status_t pass_frame(req_t *q, const char *data, apr_size_t len)
{
    conn_rec *c = q->r->connection;
    apr_status_t rv;

    if (q->held && !APR_BRIGADE_EMPTY(q->held))
        APR_BRIGADE_CONCAT(q->bb, q->held);
    apr_brigade_write(q->bb, NULL, NULL, data, len);
    APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(q->r->output_filters, q->bb);
    apr_brigade_cleanup(q->bb);
    if (rv != APR_SUCCESS || c->aborted) {
        q->client_gone = 1;
        return LLMGW_ECLIENTGONE;
    }
    return APR_SUCCESS;
}

static apr_status_t stream_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                const char *data, apr_size_t len)
{
    req_t *q = baton;

    if (q->client_gone)
        return LLMGW_ECLIENTGONE;
    /* Hold the preamble back: until content flows, a failure can still be
     * retried without the client noticing. */
    if (kind == LLMGW_CHUNK_PREAMBLE && !q->committed) {
        apr_brigade_write(q->held, NULL, NULL, data, len);
        return APR_SUCCESS;
    }
    if (!q->committed)
        commit_stream(q);
    return pass_frame(q, data, len);
}

static apr_status_t on_sse_event(void *baton, const llmgw_sse_event_t *ev)
{
    req_t *q = baton;
    apr_status_t rv;

    if (q->upstream_done)
        return APR_SUCCESS; /* anything after the terminal event is ignored */
    rv = q->prov->stream_event(&q->st, ev);
    if (rv == APR_EOF) {
        q->upstream_done = 1;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS && q->event_rv == APR_SUCCESS)
        q->event_rv = rv;
    return rv;
}

static apr_status_t on_stream_data(void *baton, const char *data, apr_size_t len)
{
    req_t *q = baton;
    apr_status_t rv;

    if (q->upstream_done)
        return APR_SUCCESS;
    rv = llmgw_sse_parser_feed(q->parser, data, len);
    if (rv == APR_ENOSPC && !q->st.error)
        q->st.error = llmgw_error_make(q->r->pool, 502, NULL, "bad_gateway", NULL,
                                       "upstream sent an oversized stream event");
    return rv;
}

/* ---------------------------------------------------------------------- */
/* Attempts                                                                 */

typedef struct {
    int ok;
    llmgw_fail_e fail;
    int status;
    llmgw_error_t *error;     /* what the client should see for this failure, if known */
    apr_interval_time_t hint; /* retry hint, -1 when none */
    apr_interval_time_t elapsed, ttfb;
    llmgw_usage_t usage; /* of a successful attempt */
} attempt_t;

static void attempt_opts(req_t *q, llmgw_upstream_opts_t *o, apr_time_t deadline)
{
    const llmgw_backend_t *b = q->backend;

    memset(o, 0, sizeof(*o));
    o->connect_timeout = llmgw_backend_connect_timeout(b);
    o->first_byte_timeout = llmgw_backend_first_byte_timeout(b);
    o->idle_timeout = llmgw_backend_idle_timeout(b);
    o->deadline = deadline;
    o->check = client_check;
    o->baton = q;
    o->max_body = (apr_size_t)llmgw_max_upstream_body(q->r);
}

static void attempt_http_error(req_t *q, const llmgw_upstream_result_t *res, attempt_t *a)
{
    a->fail = LLMGW_FAIL_HTTP;
    a->status = res->status;
    a->error = q->prov->parse_error(&q->call, res->status, res->body, res->body_len);
    a->hint = llmgw_retry_after_parse(res->retry_after_ms, res->retry_after, apr_time_now());
    /* Some providers put their hint in the body (providers.md 9.1: after the headers). */
    if (a->hint < 0 && q->prov->retry_hint)
        a->hint = q->prov->retry_hint(res->body, res->body_len);
}

static void attempt_plain(req_t *q, const llmgw_http_request_t *hreq, apr_time_t deadline,
                          attempt_t *a)
{
    llmgw_upstream_opts_t o;
    llmgw_upstream_result_t res;
    llmgw_response_t out;
    llmgw_error_t *err = NULL;

    attempt_opts(q, &o, deadline);
    if (llmgw_upstream_perform(child_upstream, q->r->pool, hreq, &o, &res) != APR_SUCCESS) {
        a->fail = LLMGW_FAIL_INTERNAL;
        return;
    }
    q->upstream_time += res.elapsed;
    a->elapsed = res.elapsed;
    a->ttfb = res.ttfb;
    if (res.fail != LLMGW_FAIL_NONE) {
        a->fail = res.fail;
        return;
    }
    if (res.status < 200 || res.status >= 300) {
        attempt_http_error(q, &res, a);
        return;
    }
    memset(&out, 0, sizeof(out));
    if (q->prov->parse_response(&q->call, res.body, res.body_len, &out, &err) != APR_SUCCESS) {
        a->fail = LLMGW_FAIL_PROTOCOL;
        a->error = err;
        return;
    }
    a->ok = 1;
    a->usage = out.usage;
    set_usage_env(q, &out.usage);
    if (out.model)
        q->call.model = out.model;
    send_json(q, HTTP_OK, out.body, out.len);
}

static void stream_reset(req_t *q)
{
    memset(&q->st, 0, sizeof(q->st));
    q->st.call = &q->call;
    q->st.emit = stream_emit;
    q->st.baton = q;
    q->event_rv = APR_SUCCESS;
    q->upstream_done = 0;
    apr_brigade_cleanup(q->held);
    llmgw_sse_parser_reset(q->parser);
}

/* The upstream body ended: dispatch a last event and finalise if complete. */
static apr_status_t stream_finish(req_t *q)
{
    if (!q->upstream_done) {
        apr_status_t rv = llmgw_sse_parser_finish(q->parser);
        if (q->event_rv != APR_SUCCESS)
            return q->event_rv;
        (void)rv; /* a partial last line is simply not an event */
    }
    if (q->upstream_done)
        return APR_SUCCESS;
    return q->prov->stream_end(&q->st);
}

static void attempt_stream(req_t *q, const llmgw_http_request_t *hreq, apr_time_t deadline,
                           attempt_t *a)
{
    llmgw_upstream_opts_t o;
    llmgw_upstream_result_t res;
    apr_status_t rv;

    stream_reset(q);
    if (q->prov->stream_init(&q->st) != APR_SUCCESS) {
        a->fail = LLMGW_FAIL_INTERNAL;
        return;
    }
    attempt_opts(q, &o, deadline);
    o.on_data = on_stream_data;
    if (llmgw_upstream_perform(child_upstream, q->r->pool, hreq, &o, &res) != APR_SUCCESS) {
        a->fail = LLMGW_FAIL_INTERNAL;
        return;
    }
    q->upstream_time += res.elapsed;
    a->elapsed = res.elapsed;
    a->ttfb = res.ttfb;
    if (q->client_gone || res.sink_status == LLMGW_ECLIENTGONE ||
        res.fail == LLMGW_FAIL_CLIENT_GONE) {
        a->fail = LLMGW_FAIL_CLIENT_GONE;
        return;
    }
    if (res.fail == LLMGW_FAIL_NONE && res.sink_status == APR_SUCCESS &&
        (res.status < 200 || res.status >= 300)) {
        attempt_http_error(q, &res, a);
        return;
    }
    if (res.sink_status != APR_SUCCESS) {
        a->fail = LLMGW_FAIL_PROTOCOL;
        a->error = q->st.error;
        return;
    }
    if (res.fail != LLMGW_FAIL_NONE && !q->upstream_done) {
        a->fail = res.fail;
        return;
    }
    rv = stream_finish(q);
    if (rv == LLMGW_ECLIENTGONE || q->client_gone) {
        a->fail = LLMGW_FAIL_CLIENT_GONE;
        return;
    }
    if (rv != APR_SUCCESS) {
        a->fail = q->event_rv != APR_SUCCESS ? LLMGW_FAIL_PROTOCOL : LLMGW_FAIL_STREAM;
        a->error = q->st.error;
        return;
    }
    a->ok = 1;
    a->usage = q->st.usage;
    if (q->st.model)
        q->call.model = q->st.model;
    set_usage_env(q, &q->st.usage);
}

/* End a stream whose content already reached the client: in-band error. */
static void stream_fail_inband(req_t *q, const attempt_t *a)
{
    apr_size_t len;
    const llmgw_error_t *e = a->error;
    const char *frame;

    if (!e)
        e = llmgw_error_exhausted(q->r->pool, a->fail, a->status, q->backend->name);
    e = redacted(q, e);
    apr_table_setn(q->r->subprocess_env, "LLMGW_ERROR",
                   llmgw_fail_name(q->r->pool, a->fail, a->status));
    frame = llmgw_error_sse(q->r->pool, e, &len);
    pass_frame(q, frame, len);
    q->r->connection->keepalive = AP_CONN_CLOSE;
}

static double random_unit(void)
{
    apr_uint32_t v = 0;
    if (apr_generate_random_bytes((unsigned char *)&v, sizeof(v)) != APR_SUCCESS)
        v = (apr_uint32_t)apr_time_now();
    return (double)v / 4294967296.0;
}

/* Wait before the next attempt, watching the client. 0 when the wait fits. */
static int backoff_wait(req_t *q, apr_interval_time_t delay, apr_time_t deadline)
{
    apr_time_t start = apr_time_now(), end = start + delay;

    if (end >= deadline)
        return -1;
    while (apr_time_now() < end) {
        apr_interval_time_t left = end - apr_time_now();
        apr_sleep(left < apr_time_from_msec(100) ? left : apr_time_from_msec(100));
        if (client_gone_check(q))
            return -1;
    }
    q->upstream_time += apr_time_now() - start;
    return 0;
}

/* What ends a candidate's turn. */
typedef enum { TURN_ANSWERED, TURN_NEXT, TURN_STOP } turn_e;

/*
 * The client left before its answer was complete. The access log must not
 * show a success (%>s is r->status), so the request ends with
 * LLMGW_STATUS_CLIENT_GONE, nginx's 499 "client closed request", the status
 * log tools already read as "the client gave up". Nobody receives it: the
 * connection is marked aborted so that httpd writes nothing more (for an
 * unknown code it would put "500" on the wire), and the handler returns OK
 * with r->status set rather than the status itself, so httpd neither builds
 * an error page nor logs the request as failed in the error log.
 */
static int answer_client_gone(req_t *q)
{
    request_rec *r = q->r;

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  LLMGW_LOGNO(00004) "client went away; upstream transfer to \"%s\" aborted",
                  q->backend ? q->backend->name : "-");
    apr_table_setn(r->subprocess_env, "LLMGW_ERROR", "client_gone");
    r->status = LLMGW_STATUS_CLIENT_GONE;
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

static void set_retry_after(request_rec *r, apr_interval_time_t wait)
{
    if (wait < 0)
        return;
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                (apr_int64_t)((wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC)));
}

/*
 * Every candidate failed (or the last one stopped the request). A lone
 * backend's non-retryable 4xx keeps the provider's own status and message;
 * everything else is summarised as providers.md 9.2 says.
 */
static int answer_failed(req_t *q, const llmgw_candidates_t *cl,
                         const llmgw_pool_failure_t *failures, int n)
{
    request_rec *r = q->r;
    const llmgw_pool_failure_t *last = n > 0 ? &failures[n - 1] : NULL;
    apr_interval_time_t retry_after = -1;
    llmgw_error_t *e;
    llmgw_action_e action =
        last ? llmgw_error_action(last->fail, last->status) : LLMGW_ACTION_RETRY;

    if (last)
        apr_table_setn(r->subprocess_env, "LLMGW_ERROR",
                       llmgw_fail_name(r->pool, last->fail, last->status));
    if (last && last->error &&
        (action == LLMGW_ACTION_FINAL || (n == 1 && action == LLMGW_ACTION_FALLBACK)))
        return send_error(q, last->error);
    e = llmgw_pool_exhausted(
        r->pool, q->route->backend->type == LLMGW_BACKEND_POOL ? q->route->backend->name : NULL,
        failures, n, cl ? cl->cooling : 0, cl ? cl->cooldown_left : -1, &retry_after);
    set_retry_after(r, retry_after);
    apr_table_setn(r->err_headers_out, "x-should-retry", "false");
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  LLMGW_LOGNO(00005) "route \"%s\": every upstream attempt failed (%d attempt(s), "
                                     "last: %s)",
                  q->route->name, q->attempts,
                  last ? llmgw_fail_name(r->pool, last->fail, last->status) : "all cooling down");
    return send_error(q, e);
}

static void attempt_run(req_t *q, const llmgw_http_request_t *hreq, apr_time_t deadline,
                        attempt_t *a)
{
    memset(a, 0, sizeof(*a));
    a->hint = -1;
    q->attempts++;
    if (q->call.stream)
        attempt_stream(q, hreq, deadline, a);
    else
        attempt_plain(q, hreq, deadline, a);
}

static void stats_success(req_t *q, llmgw_stats_slot_t *slot, const attempt_t *a)
{
    const llmgw_usage_t *u = &a->usage;
    llmgw_stats_success(slot, llmgw_stats_time_now(), a->elapsed, a->ttfb,
                        u->present ? u->prompt_tokens : -1, u->present ? u->completion_tokens : -1);
}

/* Keys the client sent that the backend's translator does not know. */
static void log_ignored(req_t *q)
{
    const apr_array_header_t *ig = q->call.ignored;
    const char *names = "";
    int i;

    if (!ig || ig->nelts == 0 || !APLOGrdebug(q->r))
        return;
    for (i = 0; i < ig->nelts && i < 8; i++) {
        const char *k = APR_ARRAY_IDX(ig, i, const char *);
        names = apr_pstrcat(q->r->pool, names, i ? ", " : "",
                            ap_escape_logitem(q->r->pool, apr_pstrndup(q->r->pool, k, 64)), NULL);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, q->r,
                  LLMGW_LOGNO(00021) "backend \"%s\": %d unknown request key(s) left out: %s%s",
                  q->backend->name, ig->nelts, names, ig->nelts > 8 ? ", ..." : "");
}

static int same_fetch_settings(const llmgw_image_fetch_t *a, const llmgw_image_fetch_t *b)
{
    int i;

    if (a == b)
        return 1;
    if (llmgw_image_fetch_max_bytes(a) != llmgw_image_fetch_max_bytes(b) ||
        llmgw_image_fetch_timeout(a) != llmgw_image_fetch_timeout(b) ||
        a->allow_hosts->nelts != b->allow_hosts->nelts)
        return 0;
    for (i = 0; i < a->allow_hosts->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(a->allow_hosts, i, const char *),
                   APR_ARRAY_IDX(b->allow_hosts, i, const char *)) != 0)
            return 0;
    }
    return 1;
}

static int images_cover(apr_hash_t *images, const apr_array_header_t *refs)
{
    int i;

    for (i = 0; i < refs->nelts; i++) {
        if (!apr_hash_get(images, APR_ARRAY_IDX(refs, i, llmgw_image_ref_t).url,
                          APR_HASH_KEY_STRING))
            return 0;
    }
    return 1;
}

/*
 * Remote images the translator needs as bytes (google, providers.md 6.4):
 * fetched with the guard of llmgw_fetch.h before any provider is contacted,
 * once per request for every member with the same imageFetch settings. A
 * fetch the guard or the image server refused is the client's problem: a
 * 400 naming the part. The time spent counts as upstream time, not as the
 * gateway's own overhead.
 */
static llmgw_error_t *prepare_images(req_t *q, const llmgw_backend_t *b)
{
    request_rec *r = q->r;
    apr_array_header_t *refs = apr_array_make(r->pool, 4, sizeof(llmgw_image_ref_t));
    const llmgw_image_ref_t *failed = NULL;
    llmgw_fetch_result_t res;
    apr_time_t start;
    apr_status_t rv;

    q->call.images = NULL;
    q->prov->remote_images(&q->call, refs);
    if (refs->nelts == 0)
        return NULL;
    if (q->images_cfg && same_fetch_settings(q->images_cfg, &b->image_fetch) &&
        (q->images_err || images_cover(q->images, refs))) {
        q->call.images = q->images;
        return q->images_err;
    }
    start = apr_time_now();
    q->images_err = NULL;
    rv = llmgw_fetch_images(r->pool, &b->image_fetch, refs, &q->images, &failed, &res,
                            &q->images_err);
    q->upstream_time += apr_time_now() - start;
    q->images_cfg = &b->image_fetch;
    if (rv == LLMGW_EBADREQ) {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, r,
            LLMGW_LOGNO(00120) "backend \"%s\": image of %s refused (%s): host \"%s\"%s%s%s%s, "
                               "%d redirect(s)%s%s",
            b->name, failed->param, llmgw_fetch_outcome_name(r->pool, &res),
            res.host ? res.host : "-", res.blocked_addr ? ", address " : "",
            res.blocked_addr ? res.blocked_addr : "",
            res.blocked_addr ? apr_pstrcat(r->pool, " (", res.blocked_class, ")", NULL) : "",
            res.status ? apr_psprintf(r->pool, ", HTTP %d", res.status) : "", res.redirects,
            res.detail ? ": " : "", res.detail ? res.detail : "");
        return q->images_err;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      LLMGW_LOGNO(00121) "backend \"%s\": cannot fetch remote images", b->name);
        q->images_cfg = NULL;
        return llmgw_error_make(r->pool, 500, NULL, NULL, NULL,
                                "The gateway could not fetch the request's images.");
    }
    if (APLOGrdebug(r))
        ap_log_rerror(
            APLOG_MARK, APLOG_DEBUG, 0, r,
            LLMGW_LOGNO(00122) "backend \"%s\": fetched %u remote image(s) in %" APR_TIME_T_FMT
                               " ms",
            b->name, apr_hash_count(q->images), apr_time_as_msec(apr_time_now() - start));
    q->call.images = q->images;
    return NULL;
}

/* Prepare q->call and the upstream request for candidate @p c. */
static llmgw_error_t *candidate_prepare(req_t *q, const llmgw_candidate_t *c,
                                        llmgw_http_request_t *hreq)
{
    request_rec *r = q->r;
    const llmgw_backend_t *b = c->backend;
    llmgw_error_t *err = NULL;

    q->backend = b;
    q->prov = llmgw_provider_get(b->type);
    if (!q->prov || !(q->prov->apis & q->route->api))
        return llmgw_error_make(r->pool, HTTP_NOT_IMPLEMENTED, "server_error", "not_implemented",
                                NULL,
                                "Backend \"%s\" has type \"%s\", which this version of "
                                "mod_llmgw does not implement yet for this route.",
                                b->name, llmgw_backend_type_name(b->type));
    q->call.backend = b;
    q->call.model = c->model;
    q->call.dropped = apr_array_make(r->pool, 2, sizeof(const char *));
    q->call.ignored = apr_array_make(r->pool, 2, sizeof(const char *));
    q->call.access_token = NULL;
    if (q->prov->remote_images && (err = prepare_images(q, b)) != NULL)
        return err;
    if (b->type == LLMGW_BACKEND_GOOGLE && b->project_id) {
        /* Vertex AI: a cached token, refreshed by one thread before expiry. */
        if (llmgw_google_auth_token(child_google_auth, child_upstream, b, r->pool,
                                    &q->call.access_token, &err) != APR_SUCCESS)
            return err ? err
                       : llmgw_error_make(r->pool, 502, NULL, "upstream_auth_failed", NULL,
                                          "Backend \"%s\": no Vertex AI access token.", b->name);
    }
    if (APLOGrdebug(r))
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      LLMGW_LOGNO(00007) "route \"%s\" -> backend \"%s\" (%s), model \"%s\"%s%s",
                      q->route->name, b->name, llmgw_backend_type_name(b->type), c->model,
                      q->call.stream ? ", stream" : "", c->probe ? ", probe" : "");
    memset(hreq, 0, sizeof(*hreq));
    if (q->prov->build_request(&q->call, hreq, &err) != APR_SUCCESS)
        return err ? err
                   : llmgw_error_make(r->pool, 500, NULL, NULL, NULL,
                                      "The gateway could not translate this request.");
    log_ignored(q);
    return NULL;
}

static int is_quota(const attempt_t *a)
{
    return a->fail == LLMGW_FAIL_HTTP && a->error && a->error->code &&
           strcmp(a->error->code, "insufficient_quota") == 0;
}

/*
 * Chat requests are not idempotent for billing: a pool caps the attempts of
 * one client request across its members (maxAttempts, default 3). A retry
 * on the same member never takes the last attempt while another member is
 * waiting for its turn.
 */
static llmgw_pool_next_e apply_attempt_cap(req_t *q, llmgw_pool_next_e next, int can_fall_back)
{
    int left = q->max_attempts - q->attempts;

    if (q->max_attempts <= 0 || next == LLMGW_POOL_STOP)
        return next;
    if (left <= 0)
        return LLMGW_POOL_STOP;
    if (next == LLMGW_POOL_RETRY_SAME && can_fall_back && left <= 1)
        return LLMGW_POOL_NEXT_MEMBER;
    return next;
}

/*
 * Vertex AI answers 401 when a cached token was revoked or expired early:
 * drop it, fetch a new one and try once more (providers.md 9.2).
 */
static int vertex_reauth(req_t *q, const llmgw_candidate_t *c, const attempt_t *a, int *done,
                         llmgw_http_request_t *hreq)
{
    const llmgw_backend_t *b = c->backend;

    if (*done || a->fail != LLMGW_FAIL_HTTP || a->status != HTTP_UNAUTHORIZED ||
        b->type != LLMGW_BACKEND_GOOGLE || !b->project_id || q->committed)
        return 0;
    *done = 1;
    llmgw_google_auth_invalidate(child_google_auth, b);
    return candidate_prepare(q, c, hreq) == NULL;
}

/*
 * One candidate: attempts with retries until it succeeds, the decision
 * table says to move on, or the request must stop. @p fail receives the
 * candidate's last failure.
 */
static turn_e candidate_attempts(req_t *q, const llmgw_candidate_t *c, int has_next,
                                 llmgw_pool_failure_t *fail)
{
    const llmgw_backend_t *b = c->backend;
    llmgw_stats_slot_t *slot = llmgw_stats_slot(llmgw_glue_stats_base(), c->slot);
    llmgw_stats_slot_t *pool_slot = llmgw_stats_slot(llmgw_glue_stats_base(), c->pool_slot);
    apr_time_t deadline = apr_time_now() + llmgw_backend_timeout(b);
    llmgw_http_request_t hreq;
    llmgw_pool_outcome_t o;
    attempt_t a;
    int attempts = 0, reauth = 0;

    memset(fail, 0, sizeof(*fail));
    fail->backend = b->name;
    fail->hint = -1;
    fail->error = candidate_prepare(q, c, &hreq);
    if (fail->error) {
        /* Not an upstream failure: the request cannot be sent to this
         * member at all (translation refused, type not implemented, no
         * token). Its error is the answer unless another member can try. */
        fail->fail = LLMGW_FAIL_INTERNAL;
        fail->status = fail->error->status;
        return has_next && c->pool && c->pool->fallback ? TURN_NEXT : TURN_STOP;
    }
    for (;;) {
        apr_interval_time_t delay;
        llmgw_pool_next_e next;

        attempts++;
        llmgw_stats_begin(slot, llmgw_glue_stats_row());
        attempt_run(q, &hreq, deadline, &a);
        llmgw_stats_end(slot, llmgw_glue_stats_row());
        if (a.ok) {
            stats_success(q, slot, &a);
            return TURN_ANSWERED;
        }
        fail->fail = a.fail;
        fail->status = a.status;
        fail->hint = a.hint;
        fail->error = a.error;
        if (vertex_reauth(q, c, &a, &reauth, &hreq))
            continue;
        memset(&o, 0, sizeof(o));
        o.cooling = llmgw_stats_failure(slot, llmgw_stats_time_now(), a.fail, a.status,
                                        llmgw_pool_failure_threshold(c->pool),
                                        llmgw_pool_cooldown(c->pool));
        if (a.fail == LLMGW_FAIL_CLIENT_GONE || q->client_gone)
            return TURN_STOP;
        o.action = llmgw_error_action(a.fail, a.status);
        /* A 400 the translator recognised as the gateway's own credential or
         * account problem (Gemini API_KEY_INVALID, FAILED_PRECONDITION) is
         * not the client's fault: another member may serve it. */
        if (a.fail == LLMGW_FAIL_HTTP && a.status == HTTP_BAD_REQUEST && a.error &&
            a.error->status >= 500)
            o.action = LLMGW_ACTION_FALLBACK;
        if (is_quota(&a)) {
            /* Waiting will not clear an exhausted quota: no retry here, and
             * the member sits out (providers.md 9.2). */
            o.action = LLMGW_ACTION_FALLBACK;
            if (c->pool && llmgw_pool_failure_threshold(c->pool) > 0) {
                apr_interval_time_t cd = llmgw_pool_cooldown(c->pool);
                llmgw_stats_cool(slot, llmgw_stats_time_now(), a.hint > cd ? a.hint : cd);
                o.cooling = 1;
            }
        }
        o.attempts = attempts;
        o.max_retries = llmgw_backend_max_retries(b);
        o.fallback = has_next && c->pool && c->pool->fallback;
        o.committed = q->committed;
        o.hint = a.hint;
        o.max_wait = LLMGW_MAX_RETRY_WAIT;
        next = llmgw_pool_next(&o);
        next = apply_attempt_cap(q, next, o.fallback);
        if (next == LLMGW_POOL_NEXT_MEMBER) {
            llmgw_stats_fallback(slot);
            llmgw_stats_fallback(pool_slot);
            return TURN_NEXT;
        }
        if (next == LLMGW_POOL_STOP)
            return TURN_STOP;
        llmgw_stats_retry(slot);
        delay = a.hint >= 0 ? a.hint : llmgw_backoff(attempts, random_unit());
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, q->r,
            LLMGW_LOGNO(
                00006) "backend \"%s\" attempt %d failed (%s); retrying in %" APR_INT64_T_FMT " ms",
            b->name, attempts, llmgw_fail_name(q->r->pool, a.fail, a.status),
            (apr_int64_t)(delay / 1000));
        if (backoff_wait(q, delay, deadline) != 0) {
            if (q->client_gone)
                return TURN_STOP;
            return o.fallback ? TURN_NEXT : TURN_STOP;
        }
    }
}

/*
 * Every way a probe's turn ends releases the probe (DESIGN.md 6): a
 * success or a failure that re-arms the cooldown already cleared it, but a
 * client 4xx, the client leaving or an internal error would otherwise keep
 * the member "probing" until the probe goes stale (15 minutes), not for the
 * configured cooldown. Releasing twice is harmless.
 */
static turn_e candidate_turn(req_t *q, const llmgw_candidate_t *c, int has_next,
                             llmgw_pool_failure_t *fail)
{
    turn_e turn = candidate_attempts(q, c, has_next, fail);

    if (c->probe)
        llmgw_stats_probe_release(llmgw_stats_slot(llmgw_glue_stats_base(), c->slot));
    return turn;
}

static apr_uint64_t random_seed(void)
{
    apr_uint64_t v = 0;
    if (apr_generate_random_bytes((unsigned char *)&v, sizeof(v)) != APR_SUCCESS)
        v = (apr_uint64_t)apr_time_now();
    return v;
}

static int walk_candidates(req_t *q, const char *model, const llmgw_pool_env_t *penv)
{
    request_rec *r = q->r;
    llmgw_pool_env_t env = *penv;
    llmgw_candidates_t *cl = NULL;
    llmgw_pool_failure_t *failures;
    apr_status_t rv;
    int i, nf = 0;

    rv = llmgw_pool_candidates(r->pool, q->route->backend, model, &env, &cl);
    if (rv == LLMGW_ENOMODEL)
        return send_error(
            q, llmgw_error_make(
                   r->pool, HTTP_NOT_FOUND, "invalid_request_error", "model_not_found", "model",
                   "The model '%s' does not exist or is not served by this route.", model));
    if (rv == LLMGW_EBADREQ)
        return fail_request(q, 400, "missing_required_parameter", "model",
                            "You must provide a model parameter (no backend of this route has "
                            "a defaultModel).");
    if (rv == APR_ENOENT)
        return answer_failed(q, cl, NULL, 0);
    if (rv != APR_SUCCESS)
        return fail_request(q, 500, NULL, NULL,
                            "The gateway could not order this route's backends.");
    failures = apr_pcalloc(r->pool, sizeof(*failures) * (apr_size_t)cl->nelts);
    for (i = 0; i < cl->nelts; i++) {
        const llmgw_candidate_t *c = &cl->items[i];
        llmgw_stats_slot_t *slot = llmgw_stats_slot(env.stats, c->slot);
        llmgw_stats_avail_e avail = llmgw_stats_available(slot, llmgw_stats_time_now());
        turn_e turn;
        llmgw_candidate_t mine = *c;

        /* Another request took this member's probe meanwhile. */
        if (avail == LLMGW_STATS_COOLING && c->pool)
            continue;
        if (q->max_attempts > 0 && q->attempts >= q->max_attempts) {
            if (avail == LLMGW_STATS_PROBE)
                llmgw_stats_probe_release(slot);
            break;
        }
        mine.probe = avail == LLMGW_STATS_PROBE;
        turn = candidate_turn(q, &mine, i + 1 < cl->nelts, &failures[nf]);
        if (turn == TURN_ANSWERED) {
            q->answered = 1;
            return OK;
        }
        nf++;
        q->last_fail = failures[nf - 1].fail;
        q->last_status = failures[nf - 1].status;
        if (q->client_gone || failures[nf - 1].fail == LLMGW_FAIL_CLIENT_GONE)
            return answer_client_gone(q);
        if (q->committed) {
            attempt_t a;
            memset(&a, 0, sizeof(a));
            a.fail = failures[nf - 1].fail;
            a.status = failures[nf - 1].status;
            a.error = (llmgw_error_t *)failures[nf - 1].error;
            stream_fail_inband(q, &a);
            return OK;
        }
        if (turn == TURN_STOP)
            break;
    }
    return answer_failed(q, cl, failures, nf);
}

/*
 * A route to a pool also counts in the pool's own slot: requests routed to
 * it and whether the pool as a whole answered (no breaker at that level).
 */
static int run_candidates(req_t *q, const char *model)
{
    request_rec *r = q->r;
    llmgw_srv_cfg *sc = ap_get_module_config(r->server->module_config, &llmgw_module);
    const llmgw_backend_t *target = q->route->backend;
    llmgw_stats_slot_t *pool_slot = NULL;
    llmgw_pool_env_t env;
    llmgw_stats_time_t start = llmgw_stats_time_now(), end;
    int rc;

    memset(&env, 0, sizeof(env));
    env.stats = llmgw_glue_stats_base();
    env.slot_of = env.stats ? sc->slot_of : NULL;
    env.nslots = env.stats ? sc->nslots : 0;
    env.now = start;
    if (target->type == LLMGW_BACKEND_POOL) {
        /* Randomness only matters when a pool has to choose. */
        env.seed = random_seed();
        if (env.slot_of && target->index < env.nslots)
            pool_slot = llmgw_stats_slot(env.stats, env.slot_of[target->index]);
        q->max_attempts =
            target->max_attempts != LLMGW_UNSET ? target->max_attempts : LLMGW_DEFAULT_MAX_ATTEMPTS;
    }
    llmgw_stats_begin(pool_slot, llmgw_glue_stats_row());
    rc = walk_candidates(q, model, &env);
    llmgw_stats_end(pool_slot, llmgw_glue_stats_row());
    end = llmgw_stats_time_now();
    if (pool_slot && q->answered)
        llmgw_stats_success(pool_slot, end, end.mono - start.mono, -1, -1, -1);
    else if (pool_slot)
        /* What failed, not r->status: a stream cut after its content went
         * out has status 200 and is still a failure of its kind. */
        llmgw_stats_failure(pool_slot, end,
                            q->client_gone ? LLMGW_FAIL_CLIENT_GONE
                            : q->last_fail ? q->last_fail
                                           : LLMGW_FAIL_HTTP,
                            q->last_fail ? q->last_status : r->status, 0, 0);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* The handler                                                              */

static int serve_call(req_t *q, json_t *body)
{
    request_rec *r = q->r;
    json_t *model = json_object_get(body, "model");
    json_t *so = json_object_get(body, "stream_options");

    q->call.pool = r->pool;
    q->call.api = q->route->api;
    q->call.body = body;
    q->call.stream =
        q->route->api == LLMGW_API_CHAT && json_is_true(json_object_get(body, "stream"));
    q->call.include_usage = q->call.stream && json_is_true(json_object_get(so, "include_usage"));
    q->call.created = apr_time_sec(r->request_time);
    if (q->call.stream) {
        conn_rec *c = r->connection;
        q->bb = apr_brigade_create(r->pool, c->bucket_alloc);
        q->held = apr_brigade_create(r->pool, c->bucket_alloc);
        llmgw_sse_parser_create(&q->parser, r->pool, LLMGW_MAX_SSE_EVENT, on_sse_event, q);
    }
    q->probe = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if (!json_is_string(model) || !*json_string_value(model))
        return run_candidates(q, NULL);
    apr_table_setn(r->subprocess_env, "LLMGW_REQUESTED_MODEL", json_string_value(model));
    return run_candidates(q, json_string_value(model));
}

static int serve_post(req_t *q)
{
    request_rec *r = q->r;
    char *text = NULL;
    apr_size_t len = 0;
    json_error_t jerr;
    json_t *body;
    llmgw_error_t *e;
    int rc;

    if (!content_type_ok(r))
        return fail_request(q, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                            "Content-Type must be application/json.");
    rc = read_body(q, &text, &len);
    if (rc == AP_FILTER_ERROR)
        return rc; /* the input filter has already answered */
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE)
        return send_error(
            q, llmgw_error_make(r->pool, 413, NULL, "request_too_large", NULL,
                                "The request body exceeds the limit of %" APR_OFF_T_FMT " bytes.",
                                llmgw_max_body(r)));
    if (rc != OK)
        return fail_request(q, rc, NULL, NULL, "The request body could not be read.");
    if (len == 0)
        return fail_request(q, 400, "invalid_json", NULL,
                            "The request body is empty; expected a JSON object.");
    body = llmgw_json_pool_own(r->pool, json_loadb(text, len, 0, &jerr));
    if (!body)
        return send_error(q, llmgw_error_make(r->pool, 400, NULL, "invalid_json", NULL,
                                              "We could not parse the JSON body of your request "
                                              "(line %d, column %d: %s).",
                                              jerr.line, jerr.column, jerr.text));
    if ((e = llmgw_validate_request(r->pool, q->route->api, body)) != NULL)
        return send_error(q, e);
    q->call.raw_body = text;
    q->call.raw_len = len;
    return serve_call(q, body);
}

int llmgw_handler(request_rec *r)
{
    llmgw_srv_cfg *sc;
    req_t q;
    llmgw_route_match_t m;
    int bit;

    if (!r->handler || strcmp(r->handler, LLMGW_HANDLER) != 0)
        return DECLINED;
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.t0 = apr_time_now();
    sc = ap_get_module_config(r->server->module_config, &llmgw_module);
    q.gw = sc ? sc->gw : NULL;
    if (!q.gw)
        return fail_request(&q, 500, "not_configured", NULL,
                            "The gateway is not configured (no LLMGatewayConfig for this server).");
    /* child_init logged why (LLMGW00003); answer cleanly instead of crashing. */
    if (!child_upstream)
        return fail_request(&q, 500, "gateway_unavailable", NULL,
                            "The gateway could not start its upstream client in this process.");
    bit = llmgw_route_method_bit(r->method);
    if (bit == LLMGW_METHOD_GET && r->header_only)
        bit = LLMGW_METHOD_HEAD;
    llmgw_route_match(q.gw, r->pool, r->uri, bit, &m);
    if (m.verdict == LLMGW_ROUTE_NOT_FOUND)
        return fail_request(
            &q, HTTP_NOT_FOUND, "unknown_url", NULL,
            apr_psprintf(r->pool, "Unknown request URL: %s %s.", r->method, r->uri));
    q.route = m.route;
    apr_table_setn(r->subprocess_env, "LLMGW_ROUTE", q.route->name);
    if (m.verdict == LLMGW_ROUTE_NOT_ALLOWED) {
        apr_table_setn(r->err_headers_out, "Allow", m.allow);
        return send_error(
            &q, llmgw_error_make(r->pool, HTTP_METHOD_NOT_ALLOWED, NULL, "method_not_allowed", NULL,
                                 "Method %s is not allowed for %s.", r->method, r->uri));
    }
    if (m.verdict == LLMGW_ROUTE_OPTIONS) {
        apr_table_setn(r->headers_out, "Allow", m.allow);
        r->status = HTTP_NO_CONTENT;
        return OK;
    }
    if (q.route->api == LLMGW_API_MODELS)
        return serve_models(&q, m.model_id);
    if (m.model_id)
        return fail_request(&q, HTTP_NOT_FOUND, "unknown_url", NULL, "Unknown request URL.");
    return serve_post(&q);
}

/* Fast path: claim the URI before the filesystem is walked (apache-notes 2.1). */
int llmgw_translate_name(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);

    if (!d || d->enabled != 1)
        return DECLINED;
    r->filename = apr_pstrcat(r->pool, "llmgw:", r->uri, NULL);
    r->handler = LLMGW_HANDLER;
    return OK;
}

int llmgw_map_to_storage(request_rec *r)
{
    return (r->filename && strncmp(r->filename, "llmgw:", 6) == 0) ? OK : DECLINED;
}
