/*
 * The llmgw handler: read the body, route, and hand the request to the
 * dispatcher (llmgw_dispatch.h), wired here to libcurl (the transport) and to
 * httpd's output filters (the sink): JSON, or a live SSE stream.
 *
 * Threading: everything here runs on the request's own thread; the libcurl
 * callbacks (the dispatcher's on_data and check, and through them the sink)
 * run inside llmgw_upstream_perform on that same thread, so they may use r
 * and its filters.
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
#include "llmgw_dispatch.h"
#include "llmgw_json.h"
#include "llmgw_provider.h"
#include "llmgw_stats.h"
#include "llmgw_validate.h"
#include "llmgw_pool.h"
#include "llmgw_route.h"
#include "llmgw_redact.h"
#include "llmgw_google_auth.h"
#include "llmgw_fetch.h"
#include "llmgw_ingress.h"
#include "llmgw_responses.h"
#include "llmgw_responses_store.h"
#include "llmgw_responses_db.h"

/* Largest first buffer for a request body, whatever Content-Length says. */
#define BODY_PREALLOC_MAX (256 * 1024)
/* Largest single SSE event accepted from an upstream. */
#define LLMGW_MAX_SSE_EVENT (8 * 1024 * 1024)
/* The logged status of a request whose client went away (answer_client_gone). */
#define LLMGW_STATUS_CLIENT_GONE 499

/* Per-child caches, set in child_init: the upstream client and the
 * Vertex AI access tokens. */
static llmgw_upstream_t *child_upstream;
static llmgw_google_auth_t *child_google_auth;

void llmgw_handler_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = llmgw_upstream_child_create(&child_upstream, pchild, 64);
    if (rv != APR_SUCCESS)
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            LLMGW_LOGNO(00003) "cannot create the upstream client of this child "
                               "(libcurl must be 7.85 or later and take CURLOPT_PROTOCOLS_STR): "
                               "its gateway requests are answered 500");
    rv = llmgw_google_auth_create(&child_google_auth, pchild);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00012) "cannot create the Vertex AI token cache of this child");
    llmgw_ingress_glue_child_init(pchild, s); /* the response stores of this child */
}

/* One client request. */
typedef struct {
    request_rec *r;
    const llmgw_config_t *gw;
    const llmgw_route_t *route;
    apr_time_t t0;
    llmgw_call_t call;   /* the client's request, bound to no backend */
    llmgw_dispatch_t *d; /* once the request is dispatched */
    const char *token;   /* the last access token minted for it (redaction) */

    /* streaming */
    apr_bucket_brigade *bb;    /* reused for every frame */
    apr_bucket_brigade *probe; /* scratch for the client-gone check */
    int client_gone;

    /* a client dialect (ingress.md): NULL for the OpenAI apis */
    const llmgw_ingress_t *ing;
    const json_t *client;       /* the dialect request as received */
    const json_t *echo;         /* what the answer echoes (Responses: store as honoured) */
    llmgw_ingress_request_t in; /* what decoding it produced */
    llmgw_ingress_stream_t ist; /* the dialect's stream encoder */
    int ist_ready, ist_failed;  /* initialised; ended by an in-band error */
    llmgw_route_sub_e sub;      /* the sub-path of a dialect route */
    /* Responses with a response store (ingress.md 5) */
    llmgw_responses_db_t *store; /* NULL: none (no ledger, or it failed to open) */
    const char *owner;           /* the key or principal asking; NULL: an open gateway */
    json_t *input;               /* the client's input, item_reference resolved */
    json_t *chain;               /* records of previous_response_id, oldest first; or NULL */
    int recorded;                /* the record of this answer was written */
    int history;                 /* the input named stored items or a previous response */

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

/* The access-log variables of DESIGN.md 2, as the dispatcher's result says now. */
static void set_log_env(req_t *q, const llmgw_dispatch_result_t *res)
{
    request_rec *r = q->r;

    if (res->backend)
        apr_table_setn(r->subprocess_env, "LLMGW_BACKEND", res->backend->name);
    if (res->attempts > 0) {
        apr_table_setn(r->subprocess_env, "LLMGW_ATTEMPTS", apr_itoa(r->pool, res->attempts));
        apr_table_setn(
            r->subprocess_env, "LLMGW_UPSTREAM_MS",
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)(res->upstream_time / 1000)));
    }
    if (res->model)
        apr_table_setn(r->subprocess_env, "LLMGW_MODEL", res->model);
}

static void set_gateway_headers(req_t *q)
{
    request_rec *r = q->r;
    const llmgw_dispatch_result_t *res = q->d ? llmgw_dispatch_result(q->d) : NULL;
    apr_interval_time_t overhead = apr_time_now() - q->t0 - (res ? res->upstream_time : 0);

    if (overhead < 0)
        overhead = 0;
    if (res && res->backend)
        apr_table_setn(r->err_headers_out, "x-llmgw-backend", res->backend->name);
    if (res && res->attempts > 0)
        apr_table_setn(r->err_headers_out, "x-llmgw-attempts", apr_itoa(r->pool, res->attempts));
    apr_table_setn(r->err_headers_out, "x-llmgw-overhead-ms",
                   apr_psprintf(r->pool, "%.3f", (double)overhead / 1000.0));
    if (res && res->dropped && res->dropped->nelts > 0) {
        const char *names = dropped_header(r->pool, res->dropped);
        if (names)
            apr_table_setn(r->err_headers_out, "x-llmgw-dropped-params", names);
    }
    if (res)
        set_log_env(q, res);
}

/* Once per answered request, before a non-streamed body leaves (x-llmgw-cost). */
static void set_usage_env(req_t *q, const llmgw_usage_t *u, const char *model)
{
    llmgw_access_glue_usage(q->r, u, model); /* access seam: usage and cost */
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
    return llmgw_redact_error(q->r->pool, e, q->gw ? q->gw->secrets : NULL, q->token);
}

/*
 * The error body in the request's dialect (Anthropic-shaped on a messages
 * route, ingress.md 6.7), for every refusal of a gateway request: the
 * handler's, the access glue's and httpd's own (mod_llmgw_errors.c). The
 * handler names the dialect in r->notes once the route is known.
 */
const char *llmgw_glue_error_json(request_rec *r, const llmgw_error_t *e, apr_size_t *len)
{
    const char *api = apr_table_get(r->notes, LLMGW_NOTE_API);
    const llmgw_ingress_t *ing = api ? llmgw_ingress_for_api((llmgw_api_e)atoi(api)) : NULL;

    return ing ? ing->error_json(r->pool, e, len) : llmgw_error_json(r->pool, e, len);
}

static int send_error(req_t *q, const llmgw_error_t *e)
{
    apr_size_t len;
    const char *body;

    e = redacted(q, e);
    body = llmgw_glue_error_json(q->r, e, &len);
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
    /* Anthropic clients send anthropic-version and read their own shape. */
    if (!id && (body = llmgw_ingress_glue_models(q->r, out, created, &len)) != NULL)
        return send_json(q, HTTP_OK, body, len);
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
/* The sink: what the client gets                                          */

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

/* Send what is queued in q->bb, then FLUSH: one write for all of it. */
static apr_status_t pass_queued(req_t *q)
{
    conn_rec *c = q->r->connection;
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(q->r->output_filters, q->bb);
    apr_brigade_cleanup(q->bb);
    if (rv != APR_SUCCESS || c->aborted) {
        q->client_gone = 1;
        return LLMGW_ECLIENTGONE;
    }
    return APR_SUCCESS;
}

/* Queue a frame for the next pass (apr_brigade_write copies into heap buckets). */
static apr_status_t queue_frame(req_t *q, const char *data, apr_size_t len)
{
    return apr_brigade_write(q->bb, NULL, NULL, data, len);
}

/* A frame and everything queued before it, now. */
static apr_status_t pass_frame(req_t *q, const char *data, apr_size_t len)
{
    queue_frame(q, data, len);
    return pass_queued(q);
}

static int sink_gone(void *baton)
{
    return client_gone_check(baton);
}

/* Did the current attempt go to a backend that speaks the client's dialect? */
/*
 * Whether backend @p b gets the client's dialect as it is. Not once the
 * dialect's own stream encoder has started: a continuation (streamRecovery)
 * splices canonical chunks into that stream, so every later member is
 * translated, whatever it speaks.
 */
static int native_for(const req_t *q, const llmgw_backend_t *b)
{
    return q->ing && b && !q->ist_ready && llmgw_ingress_is_native(q->ing, b->type);
}

static int answered_natively(const req_t *q)
{
    return native_for(q, llmgw_dispatch_result(q->d)->backend);
}

/*
 * Store the response object @p response as its record (ingress.md 5.3),
 * before it leaves: an immediate follow-up turn must find it. A failure is
 * logged and the answer still goes out (the client's next turn then gets
 * previous_response_not_found, which says what happened).
 */
static void record_response(req_t *q, const json_t *response, int native_stored)
{
    const llmgw_dispatch_result_t *res = q->d ? llmgw_dispatch_result(q->d) : NULL;
    llmgw_responses_record_in_t in;
    json_t *record = NULL;
    const char *msg = NULL;
    apr_status_t rv;

    if (!q->store || q->recorded || !response || !q->in.store || !q->input)
        return;
    q->recorded = 1;
    memset(&in, 0, sizeof(in));
    in.client = q->client;
    in.input = q->input;
    in.response = response;
    in.owner = q->owner;
    in.backend = res && res->backend ? res->backend->name : NULL;
    in.native_stored = native_stored;
    in.ttl = LLMGW_RESPONSES_TTL;
    if (llmgw_responses_record(q->r->pool, &in, &record) != APR_SUCCESS)
        return; /* not a storable response (store:false, in progress) */
    rv = llmgw_responses_db_put(q->store, q->r->pool, record, &msg);
    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, q->r,
                      LLMGW_LOGNO(00362) "response %s not stored: %s",
                      llmgw_json_str(response, "id") ? llmgw_json_str(response, "id") : "-",
                      msg ? msg : "error");
}

/* The Response object of a native answer (a body, or a terminal stream frame). */
static void record_native(req_t *q, const char *data, apr_size_t len, int frame)
{
    json_t *response = NULL;

    if (!q->store || q->route->api != LLMGW_API_RESPONSES)
        return;
    if (frame) {
        llmgw_sse_event_t ev;
        const char *d = NULL, *end = data + len, *line = data;

        /* A frame of the passthrough: "event: x\ndata: {...}\n\n". */
        while (line && line < end) {
            const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
            if ((apr_size_t)(end - line) > 6 && memcmp(line, "data: ", 6) == 0) {
                d = line + 6;
                break;
            }
            line = nl ? nl + 1 : NULL;
        }
        if (!d)
            return;
        memset(&ev, 0, sizeof(ev));
        ev.event = "";
        ev.id = "";
        ev.data = apr_pstrmemdup(q->r->pool, d, (apr_size_t)(end - d));
        ev.data_len = strlen(ev.data);
        response = llmgw_responses_native_terminal(q->r->pool, &ev);
    }
    else {
        response = llmgw_json_pool_own(q->r->pool, llmgw_json_load(data, len, 0, NULL));
    }
    if (response)
        record_response(q, response, !json_is_false(json_object_get(q->client, "store")));
}

/* A canonical chat.completion, as the client's dialect answers it. */
static apr_status_t dialect_answer(req_t *q, const char *body, apr_size_t len)
{
    json_t *completion = llmgw_json_pool_own(q->r->pool, llmgw_json_load(body, len, 0, NULL));
    llmgw_error_t *err = NULL;
    json_t *out = NULL;
    const char *text;
    apr_size_t n;

    if (!completion ||
        q->ing->encode_response(q->r->pool, q->echo, completion, apr_time_sec(q->r->request_time),
                                &out, &err) != APR_SUCCESS) {
        send_error(q, err ? err
                          : llmgw_error_make(q->r->pool, 502, "server_error", "bad_gateway", NULL,
                                             "The upstream answer could not be translated."));
        return APR_SUCCESS;
    }
    record_response(q, out, 0);
    text = llmgw_json_dump(q->r->pool, out, &n);
    send_json(q, HTTP_OK, text, n);
    return APR_SUCCESS;
}

static apr_status_t sink_answer(void *baton, const char *body, apr_size_t len)
{
    req_t *q = baton;
    const llmgw_dispatch_result_t *res = llmgw_dispatch_result(q->d);

    set_usage_env(q, &res->usage, res->model);
    if (q->ing && !answered_natively(q))
        dialect_answer(q, body, len);
    else {
        if (q->ing)
            record_native(q, body, len, 0);
        send_json(q, HTTP_OK, body, len);
    }
    return q->r->connection->aborted ? LLMGW_ECLIENTGONE : APR_SUCCESS;
}

/* The stream commits: status and headers go out with its first chunk. */
static apr_status_t sink_open(void *baton)
{
    req_t *q = baton;
    request_rec *r = q->r;

    if (!q->bb)
        q->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    set_gateway_headers(q);
    r->status = HTTP_OK;
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    ap_set_content_type(r, "text/event-stream");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    return APR_SUCCESS;
}

/* Frames of the dialect's stream encoder go to the client as they come. */
static apr_status_t dialect_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                 const char *data, apr_size_t len)
{
    req_t *q = baton;

    /* The terminal event: the record is written before it leaves. */
    if (kind == LLMGW_CHUNK_FINAL && q->store && q->route->api == LLMGW_API_RESPONSES)
        record_response(q, llmgw_responses_stream_response(&q->ist), 0);
    return queue_frame(q, data, len);
}

static apr_status_t dialect_stream(req_t *q)
{
    if (q->ist_ready)
        return APR_SUCCESS;
    memset(&q->ist, 0, sizeof(q->ist));
    q->ist.pool = q->r->pool;
    q->ist.client = q->echo;
    q->ist.emit = dialect_emit;
    q->ist.baton = q;
    q->ist.created = apr_time_sec(q->r->request_time);
    q->ist_ready = 1;
    return q->ing->stream_init(&q->ist);
}

/*
 * The canonical stream could not be represented in the dialect (ingress.md
 * 7.6) or ended incomplete: the dialect's in-band error ends it. The
 * dispatcher is not told (for it the upstream answered); later chunks are
 * dropped.
 */
static apr_status_t dialect_failed(req_t *q, const llmgw_error_t *e)
{
    apr_size_t len;
    const char *frame;

    q->ist_failed = 1;
    e = redacted(q, e ? e
                      : llmgw_error_make(q->r->pool, 502, "server_error", "bad_gateway", NULL,
                                         "The upstream stream could not be translated."));
    apr_table_setn(q->r->subprocess_env, "LLMGW_ERROR", e->code ? e->code : "stream_failed");
    frame = q->ing->error_event(&q->ist, e, &len);
    q->r->connection->keepalive = AP_CONN_CLOSE;
    return frame ? pass_frame(q, frame, len) : APR_SUCCESS;
}

/*
 * The OpenAI dialect forwards the translator's frame as it is, and so does a
 * native passthrough; a client dialect re-encodes the canonical chunk. Frames
 * are queued: the dispatcher flushes once per upstream read (sink_flush), so
 * frames libcurl delivered together reach the client in one write.
 */
static apr_status_t sink_chunk(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                               const char *frame, apr_size_t len)
{
    req_t *q = baton;

    if (q->client_gone)
        return LLMGW_ECLIENTGONE;
    if (!q->ing)
        return queue_frame(q, frame, len);
    if (answered_natively(q)) {
        if (kind == LLMGW_CHUNK_FINAL)
            record_native(q, frame, len, 1);
        return queue_frame(q, frame, len);
    }
    if (q->ist_failed || !json_is_object(chunk))
        return APR_SUCCESS;
    if (dialect_stream(q) != APR_SUCCESS || q->ing->stream_chunk(&q->ist, chunk) != APR_SUCCESS)
        return q->client_gone ? LLMGW_ECLIENTGONE : dialect_failed(q, q->ist.error);
    return APR_SUCCESS;
}

static apr_status_t sink_flush(void *baton)
{
    req_t *q = baton;

    if (q->client_gone)
        return LLMGW_ECLIENTGONE;
    return APR_BRIGADE_EMPTY(q->bb) ? APR_SUCCESS : pass_queued(q);
}

static apr_status_t sink_close(void *baton)
{
    static const char done[] = "data: [DONE]\n\n";
    req_t *q = baton;

    if (!q->ing)
        return pass_frame(baton, done, sizeof(done) - 1);
    /* A native stream ended with its own terminal event; [DONE] is OpenAI chat's.
     * What is still queued (the dialect's terminal events) leaves now. */
    if (!answered_natively(q) && !q->ist_failed &&
        (dialect_stream(q) != APR_SUCCESS || q->ing->stream_end(&q->ist) != APR_SUCCESS))
        return q->client_gone ? LLMGW_ECLIENTGONE : dialect_failed(q, q->ist.error);
    return sink_flush(q);
}

/* The stream's content already reached the client: an in-band error ends it. */
static apr_status_t sink_abort(void *baton, const llmgw_error_t *e)
{
    req_t *q = baton;
    const llmgw_dispatch_result_t *res = llmgw_dispatch_result(q->d);
    apr_size_t len;
    const char *frame;

    e = redacted(q, e);
    apr_table_setn(q->r->subprocess_env, "LLMGW_ERROR",
                   llmgw_fail_name(q->r->pool, res->fail, res->status));
    if (q->ing) {
        if (q->ist_failed)
            return sink_flush(q);
        q->ist_failed = 1;
        if (dialect_stream(q) != APR_SUCCESS)
            return APR_ENOMEM;
        frame = q->ing->error_event(&q->ist, e, &len);
    }
    else
        frame = llmgw_error_sse(q->r->pool, e, &len);
    q->r->connection->keepalive = AP_CONN_CLOSE;
    return pass_frame(q, frame, len);
}

static void set_retry_after(request_rec *r, apr_interval_time_t wait)
{
    if (wait < 0)
        return;
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                (apr_int64_t)((wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC)));
}

static apr_status_t sink_error(void *baton, const llmgw_error_t *e, apr_interval_time_t retry_after,
                               int exhausted)
{
    req_t *q = baton;
    const llmgw_dispatch_result_t *res = llmgw_dispatch_result(q->d);

    if (res->fail != LLMGW_FAIL_NONE)
        apr_table_setn(q->r->subprocess_env, "LLMGW_ERROR",
                       llmgw_fail_name(q->r->pool, res->fail, res->status));
    set_retry_after(q->r, retry_after);
    if (exhausted)
        apr_table_setn(q->r->err_headers_out, "x-should-retry", "false");
    send_error(q, e);
    return q->r->connection->aborted ? LLMGW_ECLIENTGONE : APR_SUCCESS;
}

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
static int answer_client_gone(req_t *q, const llmgw_dispatch_result_t *res)
{
    request_rec *r = q->r;

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  LLMGW_LOGNO(00004) "client went away; upstream transfer to \"%s\" aborted",
                  res->backend ? res->backend->name : "-");
    apr_table_setn(r->subprocess_env, "LLMGW_ERROR", "client_gone");
    r->status = LLMGW_STATUS_CLIENT_GONE;
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

/* ---------------------------------------------------------------------- */
/* The transport: libcurl, time, and what a backend needs first             */

static apr_status_t transport_perform(void *baton, apr_pool_t *p, const llmgw_http_request_t *req,
                                      const llmgw_upstream_opts_t *opts,
                                      llmgw_upstream_result_t *res)
{
    return llmgw_upstream_perform(child_upstream, p, req, opts, res);
}

static void transport_sleep(void *baton, apr_interval_time_t usec)
{
    apr_sleep(usec);
}

static llmgw_stats_time_t transport_now(void *baton)
{
    return llmgw_stats_time_now();
}

/*
 * Randomness for backoff jitter and pool strategies: nothing secret, so a
 * per-thread splitmix64 seeded once from the OS, rather than a getrandom
 * system call per request. The seed is taken on a thread's first request,
 * which is always in a child (the parent serves none), so no two children
 * share a sequence through fork.
 */
static _Thread_local apr_uint64_t rng_state;
static _Thread_local int rng_seeded;

static apr_uint64_t rng_next(void)
{
    apr_uint64_t z;

    if (!rng_seeded) {
        if (apr_generate_random_bytes((unsigned char *)&rng_state, sizeof(rng_state)) !=
            APR_SUCCESS)
            rng_state = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)&rng_state;
        rng_seeded = 1;
    }
    z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double random_unit(void *baton)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* 53 bits: [0, 1) */
}

static apr_uint64_t random_seed(void)
{
    return rng_next();
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
 * 400 naming the part. The dispatcher counts the time as upstream time.
 */
static llmgw_error_t *prepare_images(req_t *q, llmgw_call_t *call, const llmgw_provider_t *prov)
{
    request_rec *r = q->r;
    const llmgw_backend_t *b = call->backend;
    apr_array_header_t *refs = apr_array_make(r->pool, 4, sizeof(llmgw_image_ref_t));
    const llmgw_image_ref_t *failed = NULL;
    llmgw_fetch_result_t res;
    apr_time_t start;
    apr_status_t rv;

    call->images = NULL;
    prov->remote_images(call, refs);
    if (refs->nelts == 0)
        return NULL;
    if (q->images_cfg && same_fetch_settings(q->images_cfg, &b->image_fetch) &&
        (q->images_err || images_cover(q->images, refs))) {
        call->images = q->images;
        return q->images_err;
    }
    start = apr_time_now();
    q->images_err = NULL;
    rv = llmgw_fetch_images(r->pool, &b->image_fetch, refs, &q->images, &failed, &res,
                            &q->images_err);
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
    call->images = q->images;
    return NULL;
}

/*
 * A client dialect, per candidate (ingress.md 2.1 step 3): a backend that
 * speaks it natively gets the client's own request (its translator is the
 * passthrough, see dialect_translator); any other must be able to honour
 * the request (check_backend: else it is skipped with the 400 naming the
 * field) and gets the canonical request, without what unsupportedParams:
 * drop dropped.
 */
static llmgw_error_t *prepare_dialect(req_t *q, llmgw_call_t *call)
{
    const llmgw_backend_t *b = call->backend;
    llmgw_error_t *err;

    if (native_for(q, b)) {
        call->body = (json_t *)q->client;
        call->raw_body = q->call.raw_body;
        call->raw_len = q->call.raw_len;
        call->headers_in = q->r->headers_in;
        /* History from the gateway's store: a backend that stored the last
         * turn itself continues upstream, any other gets it inline. */
        if (q->history &&
            !(q->chain && llmgw_responses_native_continues(
                              json_array_get(q->chain, json_array_size(q->chain) - 1), b->name))) {
            call->body =
                llmgw_responses_native_body(q->r->pool, q->client, q->chain, q->input, b->name);
            call->raw_body = NULL;
            call->raw_len = 0;
        }
        return NULL;
    }
    call->raw_body = NULL; /* the canonical form was built, never received */
    call->raw_len = 0;
    if (q->in.needs_history && !q->in.canonical)
        return llmgw_responses_error_store_disabled(q->r->pool, q->client);
    if ((err = q->ing->check_backend(q->r->pool, q->client, b->type, b->unsupported_drop,
                                     call->dropped)) != NULL)
        return err;
    if (call->dropped->nelts > 0 && q->ing->drop_fields)
        call->body = (json_t *)q->ing->drop_fields(q->r->pool, call->body, call->dropped);
    return NULL;
}

/* The dispatcher's translator for @p b: the dialect's passthrough where it is native. */
static const llmgw_provider_t *dialect_translator(void *baton, const llmgw_backend_t *b)
{
    req_t *q = baton;

    return native_for(q, b) ? llmgw_ingress_passthrough(q->ing) : llmgw_provider_get(b->type);
}

/*
 * What a backend needs before its request can be built: remote images, and
 * for Vertex AI an access token (a cached one, refreshed by one thread
 * before expiry; @p reauth: the provider refused it, a new one).
 */
static llmgw_error_t *transport_prepare(void *baton, llmgw_call_t *call, int reauth)
{
    req_t *q = baton;
    const llmgw_backend_t *b = call->backend;
    const llmgw_provider_t *prov = llmgw_provider_get(b->type);
    llmgw_error_t *err = NULL;

    if (q->ing && !reauth && (err = prepare_dialect(q, call)) != NULL)
        return err;
    if (native_for(q, b))
        prov = NULL; /* the client's own request goes upstream: nothing to fetch */
    if (!reauth && prov && prov->remote_images && (err = prepare_images(q, call, prov)) != NULL)
        return err;
    if (b->type == LLMGW_BACKEND_GOOGLE && b->project_id) {
        if (reauth)
            llmgw_google_auth_invalidate(child_google_auth, b);
        if (llmgw_google_auth_token(child_google_auth, child_upstream, b, q->r->pool,
                                    &call->access_token, &err) != APR_SUCCESS)
            return err ? err
                       : llmgw_error_make(q->r->pool, 502, NULL, "upstream_auth_failed", NULL,
                                          "Backend \"%s\": no Vertex AI access token.", b->name);
        q->token = call->access_token;
    }
    return NULL;
}

/* Keys the client sent that the backend's translator does not know. */
static void log_ignored(req_t *q, const llmgw_dispatch_note_t *n)
{
    const apr_array_header_t *ig = n->names;
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
                  n->backend->name, ig->nelts, names, ig->nelts > 8 ? ", ..." : "");
}

/* Provider text for the log: redacted, as what reaches clients is. */
static const char *note_text(req_t *q, const llmgw_dispatch_note_t *n)
{
    const llmgw_error_t *e = n->error ? redacted(q, n->error) : NULL;

    return e && e->message ? ap_escape_logitem(q->r->pool, e->message) : "-";
}

/* The dispatcher's notes, each at its own log id. */
/* Access seams: a backend's own limits take tokens per attempt; a failed one refunds them. */
static void transport_attempt_begin(void *baton, const llmgw_dispatch_attempt_t *a)
{
    req_t *q = baton;

    llmgw_access_glue_attempt_begin(q->r, a->backend, a->model);
}

static void transport_attempt_end(void *baton, const llmgw_dispatch_attempt_t *a)
{
    req_t *q = baton;

    llmgw_access_glue_attempt_end(q->r, a->backend, a->fail == LLMGW_FAIL_NONE ? &a->usage : NULL);
}

static void transport_note(void *baton, const llmgw_dispatch_note_t *n)
{
    req_t *q = baton;
    request_rec *r = q->r;
    const char *name = n->backend ? n->backend->name : "-";
    const char *what = llmgw_fail_name(r->pool, n->fail, n->status);

    switch (n->kind) {
    case LLMGW_NOTE_CANDIDATE:
        if (APLOGrdebug(r))
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          LLMGW_LOGNO(00007) "route \"%s\" -> backend \"%s\" (%s), model "
                                             "\"%s\"%s%s%s",
                          q->route->name, name, llmgw_backend_type_name(n->backend->type), n->model,
                          q->call.stream ? ", stream" : "", n->probe ? ", probe" : "",
                          n->prefill ? ", continuing with a prefill" : "");
        break;
    case LLMGW_NOTE_IGNORED_KEYS:
        log_ignored(q, n);
        break;
    case LLMGW_NOTE_RETRY:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00006) "backend \"%s\" attempt %d failed (%s); retrying in "
                                         "%" APR_INT64_T_FMT " ms",
                      name, n->attempt, what, (apr_int64_t)(n->delay / 1000));
        break;
    case LLMGW_NOTE_MALFORMED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      LLMGW_LOGNO(00240) "backend \"%s\" sent a malformed stream event; skipped "
                                         "(the stream goes on; up to %d are skipped per attempt)",
                      name, LLMGW_DISPATCH_MAX_MALFORMED);
        break;
    case LLMGW_NOTE_GARBAGE:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      LLMGW_LOGNO(00241) "backend \"%s\" kept sending malformed stream events "
                                         "(more than %d): attempt failed",
                      name, LLMGW_DISPATCH_MAX_MALFORMED);
        break;
    case LLMGW_NOTE_CONTEXT:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00242) "backend \"%s\": the request exceeds its context window "
                                         "(%s); trying its contextFallback \"%s\"",
                      name, note_text(q, n), n->other ? n->other->name : "-");
        break;
    case LLMGW_NOTE_UPSTREAM_422:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      LLMGW_LOGNO(00243) "backend \"%s\" refused the gateway's translation of "
                                         "the request (HTTP 422, answered as 400): %s",
                      name, note_text(q, n));
        break;
    case LLMGW_NOTE_RESEND:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00244) "backend \"%s\": the reused connection died before an "
                                         "answer; libcurl's silent re-send refused, counted as "
                                         "an attempt",
                      name);
        break;
    case LLMGW_NOTE_RECOVERING:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00245) "route \"%s\": stream from backend \"%s\" failed (%s) "
                                         "after %" APR_SIZE_T_FMT " bytes of content; continuing "
                                         "it on a prefill member",
                      q->route->name, name, what, n->count);
        break;
    case LLMGW_NOTE_STREAM_FAILED:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00246) "route \"%s\": stream from backend \"%s\" failed (%s) "
                                         "after content reached the client; ended with an error "
                                         "event",
                      q->route->name, name, what);
        break;
    case LLMGW_NOTE_BUFFER_LIMIT:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      LLMGW_LOGNO(00247) "route \"%s\": the held answer of backend \"%s\" "
                                         "outgrew LLMGatewayMaxUpstreamBody; streamed from here "
                                         "on without recovery",
                      q->route->name, name);
        break;
    case LLMGW_NOTE_EXHAUSTED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      LLMGW_LOGNO(00005) "route \"%s\": every upstream attempt failed (%d "
                                         "attempt(s), last: %s)",
                      q->route->name, (int)n->count,
                      n->fail != LLMGW_FAIL_NONE ? what
                                                 : "none in rotation (cooling down or drained)");
        break;
    case LLMGW_NOTE_ALL_LIMITED:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      LLMGW_LOGNO(00285) "route \"%s\": every member is at its own limits "
                                         "(rpm/tpm of its provider): refused",
                      q->route->name);
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* Dispatch                                                                 */

/*
 * The request goes to the dispatcher. Issue 11's admission step (keys,
 * limits, a token reservation) belongs before llmgw_dispatch_run, its
 * completion step (usage, cost, refunds of failed attempts) after it, on
 * llmgw_dispatch_result(): final usage, and each attempt in res->tries.
 */
static int dispatch(req_t *q, const char *model)
{
    request_rec *r = q->r;
    llmgw_srv_cfg *sc = ap_get_module_config(r->server->module_config, &llmgw_module);
    const llmgw_dispatch_result_t *res;
    llmgw_dispatch_params_t prm;
    llmgw_transport_t t;
    llmgw_sink_t s;
    apr_status_t rv;

    memset(&t, 0, sizeof(t));
    t.perform = transport_perform;
    t.prepare = transport_prepare;
    t.sleep = transport_sleep;
    t.now = transport_now;
    t.random = random_unit;
    t.note = transport_note;
    t.attempt_begin = transport_attempt_begin;
    t.attempt_end = transport_attempt_end;
    t.baton = q;
    memset(&s, 0, sizeof(s));
    s.gone = sink_gone;
    s.answer = sink_answer;
    s.open = sink_open;
    s.chunk = sink_chunk;
    s.flush = sink_flush;
    s.close = sink_close;
    s.abort = sink_abort;
    s.error = sink_error;
    s.baton = q;
    memset(&prm, 0, sizeof(prm));
    prm.route = q->route;
    prm.call = &q->call;
    prm.model = model;
    if (sc->rt) {
        prm.stats = sc->rt->stats;
        prm.slot_of = sc->rt->slot_of;
        prm.nslots = sc->rt->nslots;
        prm.row = sc->rt->row;
    }
    prm.seed = q->route->backend->type == LLMGW_BACKEND_POOL ? random_seed() : 0;
    prm.max_body = (apr_size_t)llmgw_max_upstream_body(r);
    prm.max_event = LLMGW_MAX_SSE_EVENT;
    llmgw_access_glue_pool_full(r, &prm.full, &prm.full_baton); /* access seam: backend limits */
    if (q->ing) {
        prm.translator = dialect_translator;
        prm.translator_baton = q;
        s.wants_json = 1; /* held canonical chunks are re-encoded too */
    }
    rv = llmgw_dispatch_create(&q->d, r->pool, &prm, &t, &s);
    if (rv == APR_SUCCESS)
        rv = llmgw_dispatch_run(q->d);
    if (rv != APR_SUCCESS && !q->d)
        return fail_request(q, 500, NULL, NULL, "The gateway could not dispatch the request.");
    res = llmgw_dispatch_result(q->d);
    set_log_env(q, res);
    if (res->client_gone)
        return answer_client_gone(q, res);
    /* A stream's usage is known at its end, after its headers left. */
    if (res->answered && q->call.stream)
        set_usage_env(q, &res->usage, res->model);
    return OK;
}

/* ---------------------------------------------------------------------- */
/* The handler                                                              */

static int serve_call(req_t *q, json_t *body)
{
    request_rec *r = q->r;
    json_t *model = json_object_get(body, "model");
    json_t *so = json_object_get(body, "stream_options");
    int rc;

    q->call.pool = r->pool;
    q->call.api = q->route->api;
    q->call.body = body;
    q->call.stream =
        q->route->api == LLMGW_API_CHAT && json_is_true(json_object_get(body, "stream"));
    q->call.include_usage = q->call.stream && json_is_true(json_object_get(so, "include_usage"));
    if (q->ing) {
        /* The canonical request goes to the dispatcher; dialect streams end
         * with usage, so it is always asked for (ingress.md 2.3). */
        q->call.api = LLMGW_API_CHAT;
        q->call.stream = q->in.stream;
        q->call.include_usage = q->in.stream;
        model = q->in.model ? json_string(q->in.model) : NULL;
        if (model)
            llmgw_json_pool_own(r->pool, model);
    }
    q->call.created = apr_time_sec(r->request_time);
    q->probe = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    /* Access seam: model allowlist, limits, budget; the reservation is made here. */
    rc = llmgw_access_glue_admit(
        r, q->route, body,
        json_is_string(model) && *json_string_value(model) ? json_string_value(model) : NULL);
    if (rc != DECLINED)
        return rc;
    if (!json_is_string(model) || !*json_string_value(model))
        return dispatch(q, NULL);
    apr_table_setn(r->subprocess_env, "LLMGW_REQUESTED_MODEL", json_string_value(model));
    return dispatch(q, json_string_value(model));
}

/*
 * The store's part of a Responses request (ingress.md 5.4): item_reference
 * items are looked up (owner-scoped), previous_response_id's chain is
 * walked, and the canonical request is built from history + input.
 * DECLINED to go on, else the request was answered (a 400).
 */
static int with_history(req_t *q, const json_t *body)
{
    request_rec *r = q->r;
    apr_time_t now = apr_time_sec(r->request_time);
    json_t *ids = llmgw_responses_referenced_ids(r->pool, body), *items = NULL, *id, *hist = NULL;
    const char *prev = q->in.previous_response_id, *msg = NULL;
    llmgw_error_t *err = NULL;
    size_t i;

    q->owner = apr_table_get(r->subprocess_env, "LLMGW_KEY");
    if (json_array_size(ids) > 0) {
        items = llmgw_json_pool_own(r->pool, json_object());
        json_array_foreach (ids, i, id) {
            json_t *item = NULL;
            if (llmgw_responses_db_item(q->store, r->pool, json_string_value(id), q->owner, now,
                                        &item, &msg) == APR_SUCCESS)
                json_object_set(items, json_string_value(id), item);
        }
    }
    if (llmgw_responses_resolve_input(r->pool, body, items, &q->input, &err) != APR_SUCCESS)
        return send_error(q, err);
    if (!q->in.needs_history)
        return DECLINED;
    q->history = 1;
    if (prev) {
        const char *at = prev;
        int depth = 0;

        q->chain = llmgw_json_pool_own(r->pool, json_array());
        while (at && depth++ < LLMGW_RESPONSES_MAX_DEPTH) {
            json_t *rec = NULL;
            if (llmgw_responses_db_get(q->store, r->pool, at, q->owner, now, &rec, &msg) !=
                APR_SUCCESS)
                return send_error(q, llmgw_responses_error_previous_not_found(r->pool, prev));
            json_array_insert(q->chain, 0, rec);
            at = llmgw_json_str(rec, "previous_response_id");
        }
        if (llmgw_responses_history(r->pool, q->chain, prev, &hist, &err) != APR_SUCCESS)
            return send_error(q, err);
    }
    if (llmgw_responses_expand(r->pool, body, hist, q->input, &q->in, &err) != APR_SUCCESS)
        return send_error(q, err);
    return DECLINED;
}

/*
 * A client dialect's request (ingress.md 2.1): decoded and validated into
 * the canonical chat request, which the dispatcher sends on like a chat
 * request; the answer is encoded back by the sink.
 */
static int serve_dialect(req_t *q, json_t *body)
{
    request_rec *r = q->r;
    llmgw_error_t *err = NULL;

    q->client = body;
    q->echo = body;
    if (q->ing->decode(r->pool, body, &q->in, &err) != APR_SUCCESS)
        return send_error(q, err ? err
                                 : llmgw_error_make(r->pool, 400, "invalid_request_error", NULL,
                                                    NULL, "The request could not be decoded."));
    if (q->route->api == LLMGW_API_RESPONSES) {
        int rc;

        q->store = llmgw_ingress_glue_store(r, q->gw);
        /* No response store: store:true is answered as store:false
         * (ingress.md 5.5, checklist 8). previous_response_id and
         * item_reference can still go to a native backend, which has the
         * history (checklist 20); prepare_dialect refuses the others. */
        q->echo = llmgw_responses_echo_request(r->pool, body, q->store ? q->in.store : 0);
        if (q->store && (rc = with_history(q, body)) != DECLINED)
            return rc;
    }
    return serve_call(q, q->in.canonical ? q->in.canonical : body);
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
    body = llmgw_json_pool_own(r->pool, llmgw_json_load(text, len, 0, &jerr));
    if (!body)
        return send_error(q, llmgw_error_make(r->pool, 400, NULL, "invalid_json", NULL,
                                              "We could not parse the JSON body of your request "
                                              "(line %d, column %d: %s).",
                                              jerr.line, jerr.column, jerr.text));
    q->call.raw_body = text;
    q->call.raw_len = len;
    if (q->sub == LLMGW_SUB_COUNT_TOKENS)
        return llmgw_ingress_glue_count(r, q->gw, q->route, body, text, len, child_upstream,
                                        child_google_auth);
    if (q->ing)
        return serve_dialect(q, body);
    if ((e = llmgw_validate_request(r->pool, q->route->api, body)) != NULL)
        return send_error(q, e);
    return serve_call(q, body);
}

int llmgw_handler(request_rec *r)
{
    llmgw_srv_cfg *sc;
    req_t q;
    llmgw_route_match_t m;
    int bit, rc;

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
    q.ing = llmgw_ingress_for_api(q.route->api);
    if (q.ing)
        apr_table_setn(r->notes, LLMGW_NOTE_API, apr_itoa(r->pool, q.route->api));
    apr_table_setn(r->subprocess_env, "LLMGW_ROUTE", q.route->name);
    if (m.verdict == LLMGW_ROUTE_NOT_ALLOWED) {
        apr_table_setn(r->err_headers_out, "Allow", m.allow);
        return send_error(
            &q, llmgw_error_make(r->pool, HTTP_METHOD_NOT_ALLOWED, NULL, "method_not_allowed", NULL,
                                 "Method %s is not allowed for %s.", r->method, r->uri));
    }
    if (m.verdict == LLMGW_ROUTE_OPTIONS) {
        apr_table_setn(r->headers_out, "Allow", m.allow);
        llmgw_cors_preflight(r, q.route->methods);
        r->status = HTTP_NO_CONTENT;
        return OK;
    }
    /* Access seam: who is asking, and may they use this route (before the body). */
    if ((rc = llmgw_access_glue_identify(r, q.route)) != DECLINED)
        return rc;
    if (q.route->api == LLMGW_API_MODELS)
        return serve_models(&q, m.model_id);
    q.sub = m.sub;
    if (m.sub != LLMGW_SUB_NONE && m.sub != LLMGW_SUB_COUNT_TOKENS)
        return llmgw_ingress_glue_sub(r, q.gw, q.route, &m, child_upstream);
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
