/*
 * The attempts of one client request: candidate order, retries, fail-over,
 * the stream commit point and stream recovery. The design, the states and
 * the decision table are in include/llmgw_dispatch.h.
 *
 * Everything runs on the caller's thread; the transport calls back into
 * on_data and attempt_check from inside perform. Memory: the request pool
 * for per-attempt records, heap buffers (freed by a cleanup of that pool)
 * for held frames and the partial answer, jansson's heap for chunks that
 * are rewritten (decref'd at once).
 */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_buf.h"
#include "llmgw_dispatch.h"
#include "llmgw_json.h"
#include "llmgw_pool.h"
#include "llmgw_sse.h"

/* The longest sleep of a backoff between two looks at the client. */
#define WAIT_SLICE apr_time_from_msec(100)

typedef enum { TURN_ANSWERED, TURN_NEXT, TURN_STOP, TURN_RECOVER } turn_e;

/* A frame held back (preamble, or every frame of a buffer route). */
typedef struct {
    llmgw_chunk_kind_e kind;
    apr_size_t off, len;
} held_t;

/* How one attempt ended. */
typedef struct {
    int ok;
    llmgw_fail_e fail;
    int status;
    llmgw_error_t *error;     /* what the client would see for it, when known */
    apr_interval_time_t hint; /* retry hint, -1 when none */
    apr_interval_time_t elapsed, ttfb;
    llmgw_usage_t usage;
    int resend_refused;
} outcome_t;

struct llmgw_dispatch_t {
    apr_pool_t *p;
    llmgw_dispatch_params_t prm;
    const llmgw_transport_t *t;
    const llmgw_sink_t *s;
    llmgw_dispatch_result_t res;
    llmgw_recovery_e recovery; /* the route's; NONE once a buffered answer was released */

    /* what is sent: the client's body, or it with the partial answer as a prefill */
    json_t *body;
    const char *raw_body;
    apr_size_t raw_len;

    /* candidates */
    llmgw_candidates_t *cl;
    int next;                     /* next index of cl */
    apr_array_header_t *tried;    /* const llmgw_backend_t *: given a turn already */
    apr_array_header_t *failures; /* llmgw_pool_failure_t: each turn's last failure */
    llmgw_candidate_t extra;      /* a contextFallback to try before cl's next */
    int has_extra;
    int max_attempts; /* a pool's maxAttempts; 0: no cap */
    llmgw_stats_slot_t *pool_slot;

    /* the current turn */
    llmgw_candidate_t cur;
    llmgw_stats_slot_t *slot;
    const llmgw_provider_t *prov;
    llmgw_call_t call;
    llmgw_http_request_t hreq;
    apr_time_t deadline; /* of the turn (the backend's timeout), wall clock */

    /* the current attempt of a stream */
    llmgw_sse_parser_t *parser;
    llmgw_stream_t st;
    apr_status_t event_rv; /* the translator's first failure */
    int upstream_done;     /* the translator saw the terminal event */
    int malformed;         /* malformed events of this attempt */
    int content_seen;      /* the translator emitted a CONTENT frame */
    int sent;              /* a frame of this attempt reached the client */
    int unflushed;         /* frames went to the sink since its last flush */
    apr_time_t attempt_start;
    apr_interval_time_t first_token_timeout; /* 0: none */

    /* the client's side */
    int opened, closed, gone;
    llmgw_buf_t held, held_ix; /* frame bytes; held_t entries */

    /* streamRecovery continue */
    int recovering;      /* the stream is open; further attempts continue it */
    int unrecoverable;   /* a tool call, another choice or a finish reached the client */
    llmgw_buf_t partial; /* content of choice 0 the client received */
    const char *id;      /* the stream's identity, as the client saw it first */
    json_int_t created;
    const char *model;
    const char *ws_stripped;    /* stripped from the prefill: not to be sent again */
    const char *ws_left;        /* what of it the current continuation has not repeated yet */
    llmgw_usage_t usage_before; /* of the attempts the answer so far came from */
};

/* ---------------------------------------------------------------------- */
/* Small pieces                                                           */

static apr_status_t buf_free(void *data)
{
    llmgw_dispatch_t *d = data;

    llmgw_buf_free(&d->held);
    llmgw_buf_free(&d->held_ix);
    llmgw_buf_free(&d->partial);
    return APR_SUCCESS;
}

static llmgw_stats_time_t now(llmgw_dispatch_t *d)
{
    return d->t->now(d->t->baton);
}

static void note(llmgw_dispatch_t *d, llmgw_note_e kind, const llmgw_dispatch_note_t *more)
{
    llmgw_dispatch_note_t n;

    if (!d->t->note)
        return;
    if (more)
        n = *more;
    else
        memset(&n, 0, sizeof(n));
    n.kind = kind;
    if (!n.backend)
        n.backend = d->cur.backend;
    d->t->note(d->t->baton, &n);
}

static int client_gone(llmgw_dispatch_t *d)
{
    if (!d->gone && d->s->gone && d->s->gone(d->s->baton))
        d->gone = 1;
    return d->gone;
}

/* A sink callback's status: any failure means the client is gone. */
static apr_status_t sink_rv(llmgw_dispatch_t *d, apr_status_t rv)
{
    if (rv == APR_SUCCESS)
        return APR_SUCCESS;
    d->gone = 1;
    return LLMGW_ECLIENTGONE;
}

/*
 * What chunk() took goes to the client now: once per upstream read, however
 * many frames it held (a FLUSH per frame cost a write per frame), and at the
 * end of every attempt, so nothing waits through a retry's backoff.
 */
static apr_status_t flush_sink(llmgw_dispatch_t *d)
{
    if (!d->unflushed || !d->s->flush || d->gone)
        return APR_SUCCESS;
    d->unflushed = 0;
    return sink_rv(d, d->s->flush(d->s->baton));
}

static llmgw_stats_slot_t *slot_of(llmgw_dispatch_t *d, int slot)
{
    return slot >= 0 ? llmgw_stats_slot(d->prm.stats, slot) : NULL;
}

static int backend_slot(llmgw_dispatch_t *d, const llmgw_backend_t *b)
{
    if (!d->prm.stats || !d->prm.slot_of || b->index < 0 || b->index >= d->prm.nslots)
        return -1;
    return d->prm.slot_of[b->index];
}

static void usage_add(llmgw_usage_t *to, const llmgw_usage_t *u)
{
    if (!u->present)
        return;
    to->present = 1;
    to->prompt_tokens += u->prompt_tokens;
    to->completion_tokens += u->completion_tokens;
    to->total_tokens += u->total_tokens;
    to->cached_tokens += u->cached_tokens;
    to->reasoning_tokens += u->reasoning_tokens;
}

static int has_code(const outcome_t *o, const char *code)
{
    return o->error && o->error->code && strcmp(o->error->code, code) == 0;
}

static int is_context(const outcome_t *o)
{
    return o->fail == LLMGW_FAIL_HTTP && o->status >= 400 && o->status < 500 &&
           has_code(o, "context_length_exceeded");
}

/* ---------------------------------------------------------------------- */
/* The client's stream                                                    */

static int buffering(const llmgw_dispatch_t *d)
{
    return d->recovery == LLMGW_RECOVERY_BUFFER && d->call.stream;
}

static apr_status_t open_stream(llmgw_dispatch_t *d)
{
    if (d->opened)
        return APR_SUCCESS;
    d->opened = 1;
    d->res.committed = 1;
    return sink_rv(d, d->s->open(d->s->baton));
}

/*
 * What the client has received, for a continuation (streamRecovery
 * continue): the text of choice 0, the stream's identity, and whether
 * anything went out that a prefill cannot continue (a tool call: its
 * arguments cannot be prefilled; another choice; a finish_reason; a
 * refusal). Runs for every chunk of such a route, so it walks the members
 * once instead of looking each up by name (no hashing): the cost of
 * `continue` while nothing fails.
 */
static void track_delta(llmgw_dispatch_t *d, const json_t *delta)
{
    const char *key;
    json_t *v;

    json_object_foreach ((json_t *)delta, key, v) {
        if (strcmp(key, "content") == 0) {
            if (json_is_string(v) && json_string_length(v) > 0 &&
                llmgw_buf_add(&d->partial, json_string_value(v), json_string_length(v)) !=
                    APR_SUCCESS)
                d->unrecoverable = 1;
        }
        else if ((strcmp(key, "tool_calls") == 0 || strcmp(key, "function_call") == 0 ||
                  strcmp(key, "refusal") == 0) &&
                 !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
            d->unrecoverable = 1;
        }
    }
}

static void track(llmgw_dispatch_t *d, const json_t *chunk)
{
    json_t *choices = json_object_get(chunk, "choices"), *c, *v;
    const char *key;
    size_t i;

    if (!d->id && llmgw_json_str(chunk, "id")) {
        d->id = apr_pstrdup(d->p, llmgw_json_str(chunk, "id"));
        d->created = json_integer_value(json_object_get(chunk, "created"));
        d->model = llmgw_json_str(chunk, "model")
                       ? apr_pstrdup(d->p, llmgw_json_str(chunk, "model"))
                       : NULL;
    }
    json_array_foreach (choices, i, c) {
        json_object_foreach (c, key, v) {
            if (strcmp(key, "delta") == 0)
                track_delta(d, v);
            else if ((strcmp(key, "index") == 0 && json_integer_value(v) != 0) ||
                     (strcmp(key, "finish_reason") == 0 && !json_is_null(v)))
                d->unrecoverable = 1;
        }
    }
}

static apr_status_t deliver(llmgw_dispatch_t *d, llmgw_chunk_kind_e kind, const json_t *chunk,
                            const char *frame, apr_size_t len)
{
    apr_status_t rv = sink_rv(d, d->s->chunk(d->s->baton, kind, chunk, frame, len));

    d->sent = 1;
    d->unflushed = 1;
    if (rv == APR_SUCCESS && chunk && d->recovery == LLMGW_RECOVERY_CONTINUE)
        track(d, chunk);
    return rv;
}

static apr_status_t hold(llmgw_dispatch_t *d, llmgw_chunk_kind_e kind, const char *frame,
                         apr_size_t len)
{
    held_t h;

    h.kind = kind;
    h.off = d->held.len;
    h.len = len;
    if (llmgw_buf_add(&d->held, frame, len) != APR_SUCCESS ||
        llmgw_buf_add(&d->held_ix, &h, sizeof(h)) != APR_SUCCESS)
        return APR_ENOMEM;
    return APR_SUCCESS;
}

static void drop_held(llmgw_dispatch_t *d)
{
    llmgw_buf_reset(&d->held);
    llmgw_buf_reset(&d->held_ix);
}

/* Hand the held frames on, in order (the stream must be open). */
static apr_status_t release(llmgw_dispatch_t *d)
{
    apr_size_t i, n = d->held_ix.len / sizeof(held_t);
    apr_status_t rv = APR_SUCCESS;

    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        const held_t *h = (const held_t *)(void *)d->held_ix.data + i;
        const char *frame = d->held.data + h->off;
        json_t *chunk = NULL;

        /* "data: " + JSON + "\n\n": parsed again only for a sink that wants it. */
        if (d->s->wants_json && h->len > 8)
            chunk = llmgw_json_load(frame + 6, h->len - 8, 0, NULL);
        rv = deliver(d, h->kind, chunk, frame, h->len);
        json_decref(chunk);
    }
    drop_held(d);
    return rv;
}

/* A rewritten chunk (continuation) goes out as a new frame. */
static apr_status_t deliver_json(llmgw_dispatch_t *d, llmgw_chunk_kind_e kind, const json_t *c)
{
    llmgw_json_buf_t b;
    apr_status_t rv;

    llmgw_json_buf_init(&b);
    llmgw_json_buf_add(&b, "data: ", 6);
    rv = llmgw_json_buf_dump(&b, c);
    if (rv == APR_SUCCESS)
        rv = llmgw_json_buf_add(&b, "\n\n", 2);
    rv = rv == APR_SUCCESS ? deliver(d, kind, c, b.data, b.len) : APR_ENOMEM;
    llmgw_json_buf_free(&b);
    return rv;
}

/* The whitespace the prefill lost, as the continuation repeats it: not sent twice. */
static void skip_repeated_ws(llmgw_dispatch_t *d, json_t *delta)
{
    json_t *content = json_object_get(delta, "content");
    const char *s;

    if (!d->ws_left || !json_is_string(content))
        return;
    s = json_string_value(content);
    while (*s && *d->ws_left && *s == *d->ws_left) {
        s++;
        d->ws_left++;
    }
    if (*s || !*d->ws_left)
        d->ws_left = NULL; /* the continuation has moved past it */
    json_object_set_new(delta, "content", json_string(s));
}

/* Nothing left to say: no content, no tool call, no finish. */
static int says_nothing(const json_t *choice)
{
    json_t *delta = json_object_get(choice, "delta");
    json_t *content = json_object_get(delta, "content");

    return llmgw_json_is_absent(json_object_get(choice, "finish_reason")) &&
           json_object_size(delta) == (json_object_get(delta, "content") ? 1u : 0u) &&
           (!content || (json_is_string(content) && json_string_length(content) == 0));
}

/*
 * A chunk of a continuation, spliced into the open stream: the client has
 * its role chunk; every chunk carries the stream's id, created and model;
 * a repeat of the stripped whitespace is cut; the usage sums the attempts
 * the answer came from.
 */
static apr_status_t splice(llmgw_dispatch_t *d, llmgw_chunk_kind_e kind, const json_t *chunk)
{
    json_t *c, *choices, *choice, *usage;
    apr_status_t rv;
    size_t i;

    if (kind == LLMGW_CHUNK_PREAMBLE)
        return APR_SUCCESS;
    c = json_deep_copy(chunk);
    if (!c)
        return APR_ENOMEM;
    if (d->id) {
        json_object_set_new(c, "id", json_string(d->id));
        json_object_set_new(c, "created", json_integer(d->created));
    }
    if (d->model)
        json_object_set_new(c, "model", json_string(d->model));
    choices = json_object_get(c, "choices");
    json_array_foreach (choices, i, choice) {
        json_t *delta = json_object_get(choice, "delta");

        json_object_del(delta, "role");
        skip_repeated_ws(d, delta);
    }
    choice = json_array_get(choices, 0);
    if (kind == LLMGW_CHUNK_CONTENT && json_array_size(choices) == 1 && says_nothing(choice)) {
        json_decref(c);
        return APR_SUCCESS;
    }
    usage = json_object_get(c, "usage");
    if (json_is_object(usage) && d->usage_before.present) {
        const char *keys[] = {"prompt_tokens", "completion_tokens", "total_tokens"};
        const apr_int64_t add[] = {d->usage_before.prompt_tokens, d->usage_before.completion_tokens,
                                   d->usage_before.total_tokens};
        for (i = 0; i < 3; i++)
            json_object_set_new(
                usage, keys[i],
                json_integer(json_integer_value(json_object_get(usage, keys[i])) + add[i]));
    }
    rv = deliver_json(d, kind, c);
    json_decref(c);
    return rv;
}

/* Frames of the translator (llmgw_emit_fn). */
static apr_status_t on_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                            const char *data, apr_size_t len)
{
    llmgw_dispatch_t *d = baton;
    apr_status_t rv;

    if (d->gone)
        return LLMGW_ECLIENTGONE;
    if (kind == LLMGW_CHUNK_CONTENT)
        d->content_seen = 1;
    if (!chunk) {
        /* "data: [DONE]": a buffered answer goes out once judged complete. */
        if (buffering(d))
            return APR_SUCCESS;
        if (!d->opened &&
            ((rv = open_stream(d)) != APR_SUCCESS || (rv = release(d)) != APR_SUCCESS))
            return rv;
        d->closed = 1;
        d->unflushed = 0; /* close() sends what is queued */
        return sink_rv(d, d->s->close(d->s->baton));
    }
    if (buffering(d)) {
        if ((rv = hold(d, kind, data, len)) != APR_SUCCESS || !d->prm.max_body ||
            d->held.len <= d->prm.max_body)
            return rv;
        /* Too big to hold: stream it from here on, as a route without recovery. */
        note(d, LLMGW_NOTE_BUFFER_LIMIT, NULL);
        d->recovery = LLMGW_RECOVERY_NONE;
        if ((rv = open_stream(d)) != APR_SUCCESS)
            return rv;
        return release(d);
    }
    if (d->recovering)
        return splice(d, kind, chunk);
    if (!d->opened) {
        /* Hold the preamble back: until content flows, a failure can still be
         * retried without the client noticing. */
        if (kind == LLMGW_CHUNK_PREAMBLE)
            return hold(d, kind, data, len);
        if ((rv = open_stream(d)) != APR_SUCCESS || (rv = release(d)) != APR_SUCCESS)
            return rv;
    }
    return deliver(d, kind, chunk, data, len);
}

/* ---------------------------------------------------------------------- */
/* Upstream events                                                        */

static apr_status_t on_sse_event(void *baton, const llmgw_sse_event_t *ev)
{
    llmgw_dispatch_t *d = baton;
    apr_status_t rv;

    if (d->upstream_done)
        return APR_SUCCESS; /* anything after the terminal event is ignored */
    rv = d->prov->stream_event(&d->st, ev);
    if (rv == APR_EOF) {
        d->upstream_done = 1;
        return APR_SUCCESS;
    }
    if (rv == LLMGW_EMALFORMED) {
        llmgw_stats_protocol_error(d->slot, d->prm.row);
        if (++d->malformed <= LLMGW_DISPATCH_MAX_MALFORMED) {
            if (d->malformed == 1)
                note(d, LLMGW_NOTE_MALFORMED, NULL);
            d->st.error = NULL;
            return APR_SUCCESS; /* one bad event in a healthy stream: skipped */
        }
        note(d, LLMGW_NOTE_GARBAGE, NULL);
        d->st.error = llmgw_error_make(d->p, 502, "server_error", "bad_gateway", NULL,
                                       "upstream kept sending malformed stream events");
    }
    if (rv != APR_SUCCESS && d->event_rv == APR_SUCCESS)
        d->event_rv = rv;
    return rv;
}

static apr_status_t on_data(void *baton, const char *data, apr_size_t len)
{
    llmgw_dispatch_t *d = baton;
    apr_status_t rv;

    if (d->upstream_done)
        return APR_SUCCESS;
    rv = llmgw_sse_parser_feed(d->parser, data, len);
    if (rv == APR_ENOSPC && !d->st.error)
        d->st.error = llmgw_error_make(d->p, 502, NULL, "bad_gateway", NULL,
                                       "upstream sent an oversized stream event");
    /* Everything this read produced goes out together. */
    if (flush_sink(d) != APR_SUCCESS && rv == APR_SUCCESS) {
        if (d->event_rv == APR_SUCCESS)
            d->event_rv = LLMGW_ECLIENTGONE;
        rv = LLMGW_ECLIENTGONE;
    }
    return rv;
}

/* Polled by the transport about every 100 ms while an attempt runs. */
static llmgw_fail_e attempt_check(void *baton)
{
    llmgw_dispatch_t *d = baton;

    if (client_gone(d))
        return LLMGW_FAIL_CLIENT_GONE;
    /* Headers and keep-alives are no answer: a member silent past its
     * firstTokenTimeout has not answered (providers.md 9.2). */
    if (d->first_token_timeout > 0 && !d->content_seen &&
        now(d).wall - d->attempt_start >= d->first_token_timeout)
        return LLMGW_FAIL_TIMEOUT;
    return LLMGW_FAIL_NONE;
}

/* ---------------------------------------------------------------------- */
/* One attempt                                                            */

static void attempt_opts(llmgw_dispatch_t *d, llmgw_upstream_opts_t *o)
{
    const llmgw_backend_t *b = d->cur.backend;

    memset(o, 0, sizeof(*o));
    o->connect_timeout = llmgw_backend_connect_timeout(b);
    o->first_byte_timeout = llmgw_backend_first_byte_timeout(b);
    o->idle_timeout = llmgw_backend_idle_timeout(b);
    o->deadline = d->deadline;
    o->check = attempt_check;
    o->baton = d;
    o->max_body = d->prm.max_body;
    d->attempt_start = now(d).wall;
    d->first_token_timeout = d->call.stream ? llmgw_backend_first_token_timeout(b) : 0;
}

static void http_error(llmgw_dispatch_t *d, const llmgw_upstream_result_t *r, outcome_t *o)
{
    o->fail = LLMGW_FAIL_HTTP;
    o->status = r->status;
    o->error = d->prov->parse_error(&d->call, r->status, r->body, r->body_len);
    o->hint = llmgw_retry_after_parse(r->retry_after_ms, r->retry_after, now(d).wall);
    /* Some providers put their hint in the body (providers.md 9.1: after the headers). */
    if (o->hint < 0 && d->prov->retry_hint)
        o->hint = d->prov->retry_hint(r->body, r->body_len);
}

/* The transport's view of the exchange; 0 when it could not even start. */
static int perform(llmgw_dispatch_t *d, const llmgw_upstream_opts_t *opts,
                   llmgw_upstream_result_t *r, outcome_t *o)
{
    apr_status_t rv = d->t->perform(d->t->baton, d->p, &d->hreq, opts, r);

    if (rv != APR_SUCCESS) {
        o->fail = LLMGW_FAIL_INTERNAL;
        return 0;
    }
    d->res.upstream_time += r->elapsed;
    o->elapsed = r->elapsed;
    o->ttfb = r->ttfb;
    o->resend_refused = r->resend_refused;
    if (d->gone || r->fail == LLMGW_FAIL_CLIENT_GONE || r->sink_status == LLMGW_ECLIENTGONE) {
        d->gone = 1;
        o->fail = LLMGW_FAIL_CLIENT_GONE;
        return 0;
    }
    return 1;
}

static void attempt_plain(llmgw_dispatch_t *d, outcome_t *o)
{
    llmgw_upstream_opts_t opts;
    llmgw_upstream_result_t r;
    llmgw_response_t out;
    llmgw_error_t *err = NULL;

    attempt_opts(d, &opts);
    if (!perform(d, &opts, &r, o))
        return;
    if (r.fail != LLMGW_FAIL_NONE) {
        o->fail = r.fail;
        return;
    }
    if (r.status < 200 || r.status >= 300) {
        http_error(d, &r, o);
        return;
    }
    memset(&out, 0, sizeof(out));
    if (d->prov->parse_response(&d->call, r.body, r.body_len, &out, &err) != APR_SUCCESS) {
        o->fail = LLMGW_FAIL_PROTOCOL;
        o->error = err;
        return;
    }
    o->ok = 1;
    o->usage = out.usage;
    if (out.model)
        d->res.model = out.model;
    d->res.usage = out.usage;
    d->res.answered = 1;
    sink_rv(d, d->s->answer(d->s->baton, out.body, out.len));
}

static void stream_reset(llmgw_dispatch_t *d)
{
    memset(&d->st, 0, sizeof(d->st));
    d->st.call = &d->call;
    d->st.emit = on_emit;
    d->st.baton = d;
    /* Only a continuation (track, splice) and a dialect sink read chunk objects. */
    d->st.frames_only = !d->s->wants_json && d->recovery != LLMGW_RECOVERY_CONTINUE;
    d->event_rv = APR_SUCCESS;
    d->upstream_done = d->malformed = d->content_seen = d->sent = 0;
    if (!d->opened || buffering(d))
        drop_held(d);
    if (d->recovering)
        d->ws_left = d->ws_stripped;
    llmgw_sse_parser_reset(d->parser);
}

/* The upstream body ended: a last event, then complete or incomplete. */
static apr_status_t stream_finish(llmgw_dispatch_t *d)
{
    if (!d->upstream_done) {
        (void)llmgw_sse_parser_finish(d->parser); /* a partial last line is no event */
        if (d->event_rv != APR_SUCCESS)
            return d->event_rv;
    }
    if (d->upstream_done)
        return APR_SUCCESS;
    return d->prov->stream_end(&d->st);
}

/* A complete stream: what was held goes out (buffer), and the end. */
static apr_status_t stream_deliver_end(llmgw_dispatch_t *d)
{
    apr_status_t rv;

    if (d->closed)
        return APR_SUCCESS;
    if ((rv = open_stream(d)) != APR_SUCCESS || (rv = release(d)) != APR_SUCCESS)
        return rv;
    d->closed = 1;
    d->unflushed = 0; /* close() sends what is queued */
    return sink_rv(d, d->s->close(d->s->baton));
}

static void attempt_stream_run(llmgw_dispatch_t *d, outcome_t *o)
{
    llmgw_upstream_opts_t opts;
    llmgw_upstream_result_t r;
    apr_status_t rv;

    stream_reset(d);
    if (d->prov->stream_init(&d->st) != APR_SUCCESS) {
        o->fail = LLMGW_FAIL_INTERNAL;
        return;
    }
    attempt_opts(d, &opts);
    opts.on_data = on_data;
    if (!perform(d, &opts, &r, o))
        return;
    o->usage = d->st.usage;
    if (r.fail == LLMGW_FAIL_NONE && r.sink_status == APR_SUCCESS &&
        (r.status < 200 || r.status >= 300)) {
        http_error(d, &r, o);
        return;
    }
    if (r.sink_status != APR_SUCCESS) {
        o->fail = LLMGW_FAIL_PROTOCOL;
        o->error = d->st.error;
        return;
    }
    if (r.fail != LLMGW_FAIL_NONE && !d->upstream_done) {
        o->fail = r.fail;
        return;
    }
    rv = stream_finish(d);
    o->usage = d->st.usage;
    if (rv == APR_SUCCESS)
        rv = stream_deliver_end(d);
    if (rv == LLMGW_ECLIENTGONE || d->gone) {
        d->gone = 1;
        o->fail = LLMGW_FAIL_CLIENT_GONE;
        return;
    }
    if (rv != APR_SUCCESS) {
        o->fail = d->event_rv != APR_SUCCESS ? LLMGW_FAIL_PROTOCOL : LLMGW_FAIL_STREAM;
        o->error = d->st.error;
        return;
    }
    o->ok = 1;
    if (d->st.model)
        d->res.model = d->st.model;
}

static void attempt_stream(llmgw_dispatch_t *d, outcome_t *o)
{
    attempt_stream_run(d, o);
    /* Frames of a failed attempt's last read go out before a retry waits or
     * the dispatcher returns (a failure marks the client gone). */
    (void)flush_sink(d);
}

/* One upstream request, counted and recorded (issue 11 reads the records). */
static void attempt(llmgw_dispatch_t *d, outcome_t *o)
{
    llmgw_dispatch_attempt_t *a = apr_array_push(d->res.tries);

    memset(o, 0, sizeof(*o));
    o->hint = -1;
    memset(a, 0, sizeof(*a));
    a->backend = d->cur.backend;
    a->model = d->call.model;
    a->probe = d->cur.probe;
    a->prefill = d->recovering;
    d->res.attempts++;
    if (d->t->attempt_begin)
        d->t->attempt_begin(d->t->baton, a);
    llmgw_stats_begin(d->slot, d->prm.row);
    if (d->call.stream)
        attempt_stream(d, o);
    else
        attempt_plain(d, o);
    llmgw_stats_end(d->slot, d->prm.row);
    /* @p a is still valid: nothing pushes onto res.tries during an attempt. */
    a->fail = o->ok ? LLMGW_FAIL_NONE : o->fail;
    a->status = o->fail == LLMGW_FAIL_HTTP ? o->status : 0;
    a->usage = o->usage;
    a->elapsed = o->elapsed;
    a->ttfb = o->ttfb;
    a->content_sent = d->sent;
    if (d->t->attempt_end)
        d->t->attempt_end(d->t->baton, a);
}

/* ---------------------------------------------------------------------- */
/* One candidate's turn                                                   */

/* The translator's request for the current candidate. */
static llmgw_error_t *translate(llmgw_dispatch_t *d, int reauth)
{
    llmgw_error_t *err = NULL;
    llmgw_dispatch_note_t n;

    if (d->t->prepare) {
        apr_time_t start = now(d).wall;

        err = d->t->prepare(d->t->baton, &d->call, reauth);
        d->res.upstream_time += now(d).wall - start;
        if (err)
            return err;
    }
    if (!reauth) {
        memset(&n, 0, sizeof(n));
        n.model = d->call.model;
        n.probe = d->cur.probe;
        n.prefill = d->recovering;
        note(d, LLMGW_NOTE_CANDIDATE, &n);
    }
    memset(&d->hreq, 0, sizeof(d->hreq));
    if (d->prov->build_request(&d->call, &d->hreq, &err) != APR_SUCCESS)
        return err ? err
                   : llmgw_error_make(d->p, 500, NULL, NULL, NULL,
                                      "The gateway could not translate this request.");
    if (!reauth && d->call.ignored && d->call.ignored->nelts > 0) {
        memset(&n, 0, sizeof(n));
        n.names = d->call.ignored;
        note(d, LLMGW_NOTE_IGNORED_KEYS, &n);
    }
    return NULL;
}

/* Bind the request to candidate @p c. */
static llmgw_error_t *bind_candidate(llmgw_dispatch_t *d, const llmgw_candidate_t *c)
{
    const llmgw_backend_t *b = c->backend;

    d->cur = *c;
    d->slot = slot_of(d, c->slot);
    d->prov = d->prm.translator ? d->prm.translator(d->prm.translator_baton, b)
                                : llmgw_provider_get(b->type);
    d->res.backend = b;
    d->res.model = c->model;
    d->call = *d->prm.call;
    d->call.body = d->body;
    d->call.raw_body = d->raw_body;
    d->call.raw_len = d->raw_len;
    d->call.backend = b;
    d->call.model = c->model;
    d->call.dropped = apr_array_make(d->p, 2, sizeof(const char *));
    d->call.ignored = apr_array_make(d->p, 2, sizeof(const char *));
    d->call.access_token = NULL;
    d->call.images = NULL;
    d->res.dropped = d->call.dropped;
    if (!d->prov || !(d->prov->apis & d->call.api))
        return llmgw_error_make(d->p, 501, "server_error", "not_implemented", NULL,
                                "Backend \"%s\" has type \"%s\", which this version of "
                                "mod_llmgw does not implement yet for this route.",
                                b->name, llmgw_backend_type_name(b->type));
    return translate(d, 0);
}

static int tried(const llmgw_dispatch_t *d, const llmgw_backend_t *b)
{
    int i;

    for (i = 0; i < d->tried->nelts; i++) {
        if (APR_ARRAY_IDX(d->tried, i, const llmgw_backend_t *) == b)
            return 1;
    }
    return 0;
}

/* A candidate that may still get a turn. */
static int eligible(const llmgw_dispatch_t *d, const llmgw_candidate_t *c)
{
    return !tried(d, c->backend) && (!d->recovering || c->backend->prefill);
}

static int more_candidates(const llmgw_dispatch_t *d)
{
    int i;

    if (d->has_extra)
        return 1;
    for (i = d->next; i < d->cl->nelts; i++) {
        if (eligible(d, &d->cl->items[i]))
            return 1;
    }
    return 0;
}

/* The backend's contextFallback as a candidate, when it may still be tried. */
static int context_candidate(llmgw_dispatch_t *d, const llmgw_candidate_t *from,
                             llmgw_candidate_t *out)
{
    const llmgw_backend_t *fb = from->backend->context_fallback;
    const char *model;

    if (!fb || tried(d, fb))
        return 0;
    model = d->prm.model && llmgw_backend_accepts(fb, d->prm.model, 1) ? d->prm.model
                                                                       : fb->default_model;
    if (!model)
        return 0;
    memset(out, 0, sizeof(*out));
    out->backend = fb;
    out->pool = from->pool;
    out->model = model;
    out->prefers_model = model == d->prm.model;
    out->slot = backend_slot(d, fb);
    out->pool_slot = from->pool_slot;
    return 1;
}

/*
 * Chat requests are not idempotent for billing: a pool caps the attempts of
 * one client request across its members (maxAttempts). A retry on the same
 * member never takes the last attempt while another member is waiting.
 */
static llmgw_pool_next_e apply_cap(const llmgw_dispatch_t *d, llmgw_pool_next_e next,
                                   int can_fall_back)
{
    int left = d->max_attempts - d->res.attempts;

    if (d->max_attempts <= 0 || next == LLMGW_POOL_STOP)
        return next;
    if (left <= 0)
        return LLMGW_POOL_STOP;
    if (next == LLMGW_POOL_RETRY_SAME && can_fall_back && left <= 1)
        return LLMGW_POOL_NEXT_MEMBER;
    return next;
}

/* The decision table of llmgw_dispatch.h for an attempt that failed before content. */
static llmgw_pool_next_e decide(llmgw_dispatch_t *d, const outcome_t *o, int attempts, int cooling,
                                int *fallback)
{
    const llmgw_candidate_t *c = &d->cur;
    llmgw_pool_outcome_t po;
    llmgw_candidate_t fb;

    memset(&po, 0, sizeof(po));
    po.action = llmgw_error_action(o->fail, o->status);
    po.max_retries = llmgw_backend_max_retries(c->backend);
    *fallback = more_candidates(d) && c->pool && c->pool->fallback;
    /* A 400 the translator recognised as the gateway's own credential or
     * account problem (Gemini API_KEY_INVALID, FAILED_PRECONDITION). */
    if (o->fail == LLMGW_FAIL_HTTP && o->status == 400 && o->error && o->error->status >= 500)
        po.action = LLMGW_ACTION_FALLBACK;
    if (has_code(o, "insufficient_quota") && o->fail == LLMGW_FAIL_HTTP) {
        /* Waiting will not clear an exhausted quota: the member sits out. */
        po.action = LLMGW_ACTION_FALLBACK;
        if (c->pool && llmgw_pool_failure_threshold(c->pool) > 0) {
            apr_interval_time_t cd = llmgw_pool_cooldown(c->pool);
            llmgw_stats_cool(d->slot, now(d), o->hint > cd ? o->hint : cd);
            cooling = 1;
        }
    }
    /* A member that never answered (no headers, no first token, a stall
     * before content, the overall deadline) is not asked again. */
    if (o->fail == LLMGW_FAIL_TIMEOUT || o->fail == LLMGW_FAIL_IDLE)
        po.action = LLMGW_ACTION_FALLBACK;
    /* A larger window may answer: the contextFallback first, then the pool. */
    if (is_context(o)) {
        po.action = LLMGW_ACTION_FALLBACK;
        if (context_candidate(d, c, &fb)) {
            llmgw_dispatch_note_t n;

            memset(&n, 0, sizeof(n));
            n.other = fb.backend;
            n.error = o->error;
            note(d, LLMGW_NOTE_CONTEXT, &n);
            d->extra = fb;
            d->has_extra = 1;
            *fallback = 1;
        }
    }
    /* Groq's tool_use_failed is not deterministic: once more here, then on. */
    if (o->fail == LLMGW_FAIL_HTTP && o->status == 400 && has_code(o, "tool_use_failed")) {
        po.action = LLMGW_ACTION_RETRY;
        po.max_retries = 1;
    }
    po.attempts = attempts;
    po.fallback = *fallback;
    po.cooling = cooling;
    po.hint = o->hint;
    po.max_wait = LLMGW_DISPATCH_MAX_RETRY_WAIT;
    return apply_cap(d, llmgw_pool_next(&po), *fallback);
}

/* Wait before the next attempt, watching the client. APR_SUCCESS when the wait fits. */
static apr_status_t backoff(llmgw_dispatch_t *d, apr_interval_time_t delay)
{
    apr_time_t start = now(d).wall, end = start + delay, t;

    if (end >= d->deadline)
        return APR_TIMEUP;
    while ((t = now(d).wall) < end) {
        d->t->sleep(d->t->baton, end - t < WAIT_SLICE ? end - t : WAIT_SLICE);
        if (client_gone(d))
            return LLMGW_ECLIENTGONE;
    }
    d->res.upstream_time += now(d).wall - start;
    return APR_SUCCESS;
}

/* The continuation can take over when the partial answer can be prefilled. */
static int can_continue(const llmgw_dispatch_t *d)
{
    apr_size_t n = d->partial.len;

    if (d->recovery != LLMGW_RECOVERY_CONTINUE || d->unrecoverable || !d->opened)
        return 0;
    while (n > 0 && strchr(" \t\r\n", d->partial.data[n - 1]))
        n--;
    return n > 0;
}

/*
 * Attempts on one candidate until it answers, the table says move on, or
 * the request must stop. @p f receives the candidate's last failure.
 */
static turn_e turn(llmgw_dispatch_t *d, const llmgw_candidate_t *c, llmgw_pool_failure_t *f)
{
    int attempts = 0, reauth = 0, fallback;
    outcome_t o;

    memset(f, 0, sizeof(*f));
    f->backend = c->backend->name;
    f->hint = -1;
    f->error = bind_candidate(d, c);
    if (f->error) {
        /* Not an upstream failure: the request cannot be sent to this member
         * (translation refused, type not implemented, no token). Its error is
         * the answer unless another member can try. */
        f->fail = LLMGW_FAIL_INTERNAL;
        f->status = f->error->status;
        return more_candidates(d) && c->pool && c->pool->fallback ? TURN_NEXT : TURN_STOP;
    }
    d->deadline = now(d).wall + llmgw_backend_timeout(c->backend);
    for (;;) {
        llmgw_pool_next_e next;
        apr_interval_time_t delay;
        llmgw_dispatch_note_t n;
        int cooling;

        attempts++;
        attempt(d, &o);
        if (o.ok) {
            const llmgw_usage_t *u = &o.usage;
            llmgw_stats_time_t t = now(d);

            llmgw_stats_success(d->slot, d->prm.row, t, o.elapsed, o.ttfb,
                                u->present ? u->prompt_tokens : -1,
                                u->present ? u->completion_tokens : -1);
            return TURN_ANSWERED;
        }
        f->fail = o.fail;
        f->status = o.status;
        f->hint = o.hint;
        f->error = o.error;
        if (o.resend_refused)
            note(d, LLMGW_NOTE_RESEND, NULL);
        /* Vertex AI answers 401 when a cached token was revoked or expired
         * early: a new one, and once more (providers.md 9.2). */
        if (o.fail == LLMGW_FAIL_HTTP && o.status == 401 && d->call.access_token && !reauth &&
            !d->sent) {
            reauth = 1;
            f->error = translate(d, 1);
            if (!f->error)
                continue;
            f->fail = LLMGW_FAIL_INTERNAL;
            f->status = f->error->status;
            return TURN_STOP;
        }
        cooling = llmgw_pool_record_failure(
            d->slot, d->prm.row, now(d), o.fail, o.status, llmgw_pool_failure_threshold(c->pool),
            llmgw_pool_cooldown_next(c->pool, llmgw_stats_cooldown_period(d->slot), c->probe));
        if (o.fail == LLMGW_FAIL_CLIENT_GONE || d->gone)
            return TURN_STOP;
        if (d->sent) {
            /* Content of this attempt reached the client: only recovery can help. */
            return can_continue(d) ? TURN_RECOVER : TURN_STOP;
        }
        next = decide(d, &o, attempts, cooling, &fallback);
        if (next == LLMGW_POOL_NEXT_MEMBER) {
            /* The pool the candidate is a member of, nested ones included:
             * that pool moved on, not necessarily the route's. */
            llmgw_stats_fallback(d->slot, d->prm.row);
            llmgw_stats_fallback(slot_of(d, c->pool_slot), d->prm.row);
            return TURN_NEXT;
        }
        if (next == LLMGW_POOL_STOP) {
            if (o.fail == LLMGW_FAIL_HTTP && o.status == 422) {
                memset(&n, 0, sizeof(n));
                n.fail = o.fail;
                n.status = o.status;
                n.error = o.error;
                note(d, LLMGW_NOTE_UPSTREAM_422, &n);
            }
            return TURN_STOP;
        }
        llmgw_stats_retry(d->slot, d->prm.row);
        delay = o.hint >= 0 ? o.hint : llmgw_backoff(attempts, d->t->random(d->t->baton));
        memset(&n, 0, sizeof(n));
        n.attempt = attempts;
        n.fail = o.fail;
        n.status = o.status;
        n.delay = delay;
        note(d, LLMGW_NOTE_RETRY, &n);
        if (backoff(d, delay) != APR_SUCCESS) {
            if (d->gone)
                return TURN_STOP;
            return fallback ? TURN_NEXT : TURN_STOP;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Stream recovery (continue)                                             */

/*
 * From now on attempts continue the open stream: the partial answer, without
 * its trailing whitespace (Anthropic refuses it, providers.md 5.3 rule 6),
 * becomes a trailing assistant message that the translators of prefill
 * members send as a prefill (Anthropic) or a prefix (Mistral).
 */
static apr_status_t start_recovery(llmgw_dispatch_t *d, const llmgw_usage_t *cut_usage)
{
    apr_size_t n = d->partial.len;
    json_t *body, *msgs;
    llmgw_dispatch_note_t note_;

    while (n > 0 && strchr(" \t\r\n", d->partial.data[n - 1]))
        n--;
    d->ws_stripped = apr_pstrndup(d->p, d->partial.data + n, d->partial.len - n);
    usage_add(&d->usage_before, cut_usage);
    body = json_copy(d->prm.call->body);
    msgs = json_copy(json_object_get(body, "messages"));
    if (!body || !msgs) {
        json_decref(body);
        json_decref(msgs);
        return APR_ENOMEM;
    }
    json_array_append_new(
        msgs, json_pack("{s:s, s:s%}", "role", "assistant", "content", d->partial.data, n));
    json_object_set_new(body, "messages", msgs);
    d->body = llmgw_json_pool_own(d->p, body);
    d->raw_body = NULL; /* the body changed: never forwarded as received */
    d->raw_len = 0;
    d->recovering = 1;
    memset(&note_, 0, sizeof(note_));
    note_.count = d->partial.len;
    note_.fail = d->res.fail;
    note(d, LLMGW_NOTE_RECOVERING, &note_);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* The request                                                            */

/* The next candidate to give a turn, its probe claimed; 0 when none is left. */
static int select_next(llmgw_dispatch_t *d, llmgw_candidate_t *c)
{
    for (;;) {
        llmgw_stats_slot_t *slot;
        llmgw_stats_avail_e avail;

        if (d->has_extra) {
            *c = d->extra;
            d->has_extra = 0;
        }
        else if (d->next < d->cl->nelts) {
            *c = d->cl->items[d->next++];
        }
        else {
            return 0;
        }
        if (!eligible(d, c))
            continue;
        slot = slot_of(d, c->slot);
        avail = llmgw_stats_available(slot, now(d));
        /* Another request took this member's probe meanwhile, or an
         * operator drained it since the candidates were ordered. */
        if (c->pool && (avail == LLMGW_STATS_COOLING || llmgw_stats_drained(slot))) {
            if (avail == LLMGW_STATS_PROBE)
                llmgw_stats_probe_release(slot);
            continue;
        }
        if (d->max_attempts > 0 && d->res.attempts >= d->max_attempts) {
            if (avail == LLMGW_STATS_PROBE)
                llmgw_stats_probe_release(slot);
            return 0;
        }
        c->probe = avail == LLMGW_STATS_PROBE;
        APR_ARRAY_PUSH(d->tried, const llmgw_backend_t *) = c->backend;
        return 1;
    }
}

static const llmgw_pool_failure_t *last_failure(const llmgw_dispatch_t *d)
{
    int n = d->failures->nelts;

    return n > 0 ? &APR_ARRAY_IDX(d->failures, n - 1, llmgw_pool_failure_t) : NULL;
}

/* providers.md 9.2: a 422 is the gateway's translation at fault; the client gets a 400. */
static const llmgw_error_t *client_status(llmgw_dispatch_t *d, const llmgw_error_t *e)
{
    llmgw_error_t *copy;

    if (e->status != 422)
        return e;
    copy = apr_pmemdup(d->p, e, sizeof(*e));
    copy->status = 400;
    return copy;
}

static void answer_error(llmgw_dispatch_t *d, const llmgw_error_t *e, apr_interval_time_t retry,
                         int exhausted)
{
    d->res.error = e;
    sink_rv(d, d->s->error(d->s->baton, e, retry, exhausted));
}

/*
 * Nothing was sent and nothing answered. A lone backend's non-retryable
 * 4xx keeps the provider's own status and message; everything else is
 * summarised as providers.md 9.2 says.
 */
static void answer_failed(llmgw_dispatch_t *d)
{
    const llmgw_pool_failure_t *last = last_failure(d);
    const llmgw_backend_t *target = d->prm.route->backend;
    apr_interval_time_t retry_after = -1;
    llmgw_action_e action = last ? llmgw_error_action(last->fail, last->status) : 0;
    llmgw_dispatch_note_t n;
    llmgw_error_t *e;

    if (last && last->error &&
        (action == LLMGW_ACTION_FINAL ||
         (d->failures->nelts == 1 && action == LLMGW_ACTION_FALLBACK))) {
        answer_error(d, client_status(d, last->error), -1, 0);
        return;
    }
    e = llmgw_pool_exhausted(d->p, target->type == LLMGW_BACKEND_POOL ? target->name : NULL,
                             (const llmgw_pool_failure_t *)d->failures->elts, d->failures->nelts,
                             d->cl ? d->cl->cooling : 0, d->cl ? d->cl->drained : 0,
                             d->cl ? d->cl->cooldown_left : -1, &retry_after);
    memset(&n, 0, sizeof(n));
    n.count = (apr_size_t)d->res.attempts;
    if (last) {
        n.fail = last->fail;
        n.status = last->status;
    }
    note(d, LLMGW_NOTE_EXHAUSTED, &n);
    answer_error(d, e, retry_after, 1);
}

/* The stream is open and cannot be completed: an in-band error ends it. */
static void answer_aborted(llmgw_dispatch_t *d)
{
    const llmgw_pool_failure_t *last = last_failure(d);
    const llmgw_error_t *e = last ? last->error : NULL;
    llmgw_dispatch_note_t n;

    if (!e)
        e = llmgw_error_exhausted(d->p, last ? last->fail : LLMGW_FAIL_INTERNAL,
                                  last ? last->status : 0, last ? last->backend : NULL);
    memset(&n, 0, sizeof(n));
    if (last) {
        n.fail = last->fail;
        n.status = last->status;
    }
    note(d, LLMGW_NOTE_STREAM_FAILED, &n);
    d->res.error = e;
    d->unflushed = 0; /* abort() sends what is queued */
    sink_rv(d, d->s->abort(d->s->baton, e));
}

/*
 * Every member is at its own provider limits (issue 11's per-backend rpm/tpm):
 * nothing was tried, and waiting is what helps, so a 429 with the least wait.
 */
static void all_limited(llmgw_dispatch_t *d)
{
    apr_interval_time_t wait = d->cl->limited_left > 0 ? d->cl->limited_left : 0;
    llmgw_dispatch_note_t n;

    memset(&n, 0, sizeof(n));
    n.delay = wait;
    note(d, LLMGW_NOTE_ALL_LIMITED, &n);
    answer_error(d,
                 llmgw_error_make(d->p, 429, "requests", "rate_limit_exceeded", NULL,
                                  "Every backend of this route is at its provider's rate limit. "
                                  "Please try again in %" APR_INT64_T_FMT " s.",
                                  (apr_int64_t)((wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC)),
                 wait, 1);
}

/* The candidates; 0 when the request was answered already (404, 400, ...). */
static int candidates(llmgw_dispatch_t *d)
{
    const llmgw_backend_t *target = d->prm.route->backend;
    llmgw_pool_env_t env;
    apr_status_t rv;

    memset(&env, 0, sizeof(env));
    env.stats = d->prm.stats;
    env.slot_of = d->prm.stats ? d->prm.slot_of : NULL;
    env.nslots = d->prm.stats ? d->prm.nslots : 0;
    env.now = now(d);
    env.seed = d->prm.seed;
    env.full = d->prm.full;
    env.full_baton = d->prm.full_baton;
    rv = llmgw_pool_candidates(d->p, target, d->prm.model, &env, &d->cl);
    if (rv == APR_SUCCESS)
        return 1;
    if (rv == APR_ENOENT && d->cl->limited > 0 && d->cl->cooling == 0) {
        all_limited(d);
        return 0;
    }
    if (rv == LLMGW_ENOMODEL)
        answer_error(d,
                     llmgw_error_make(d->p, 404, "invalid_request_error", "model_not_found",
                                      "model",
                                      "The model '%s' does not exist or is not served by this "
                                      "route.",
                                      d->prm.model),
                     -1, 0);
    else if (rv == LLMGW_EBADREQ)
        answer_error(d,
                     llmgw_error_make(d->p, 400, NULL, "missing_required_parameter", "model",
                                      "You must provide a model parameter (no backend of this "
                                      "route has a defaultModel)."),
                     -1, 0);
    else if (rv == APR_ENOENT)
        answer_failed(d);
    else
        answer_error(d,
                     llmgw_error_make(d->p, 500, NULL, NULL, NULL,
                                      "The gateway could not order this route's backends."),
                     -1, 0);
    return 0;
}

apr_status_t llmgw_dispatch_create(llmgw_dispatch_t **out, apr_pool_t *p,
                                   const llmgw_dispatch_params_t *params,
                                   const llmgw_transport_t *t, const llmgw_sink_t *s)
{
    llmgw_dispatch_t *d = apr_pcalloc(p, sizeof(*d));
    const llmgw_backend_t *target = params->route->backend;
    apr_status_t rv;

    d->p = p;
    d->prm = *params;
    d->t = t;
    d->s = s;
    d->recovery = params->route->stream_recovery;
    d->body = params->call->body;
    d->raw_body = params->call->raw_body;
    d->raw_len = params->call->raw_len;
    d->tried = apr_array_make(p, 4, sizeof(const llmgw_backend_t *));
    d->failures = apr_array_make(p, 4, sizeof(llmgw_pool_failure_t));
    d->res.tries = apr_array_make(p, 4, sizeof(llmgw_dispatch_attempt_t));
    d->res.fail = LLMGW_FAIL_NONE;
    d->call = *params->call;
    apr_pool_cleanup_register(p, d, buf_free, apr_pool_cleanup_null);
    if (params->call->stream) {
        rv = llmgw_sse_parser_create(&d->parser, p,
                                     params->max_event ? params->max_event : 8 * 1024 * 1024,
                                     on_sse_event, d);
        if (rv != APR_SUCCESS)
            return rv;
    }
    if (target->type == LLMGW_BACKEND_POOL) {
        int slot = backend_slot(d, target);

        d->pool_slot = slot_of(d, slot);
        d->max_attempts =
            target->max_attempts != LLMGW_UNSET ? target->max_attempts : LLMGW_DEFAULT_MAX_ATTEMPTS;
    }
    *out = d;
    return APR_SUCCESS;
}

/* A route to a pool also counts in the pool's own slot. */
static void pool_outcome(llmgw_dispatch_t *d, llmgw_stats_time_t start)
{
    llmgw_stats_time_t end = now(d);
    const llmgw_error_t *e = d->res.error;

    if (!d->pool_slot)
        return;
    if (d->res.answered)
        llmgw_stats_success(d->pool_slot, d->prm.row, end, end.mono - start.mono, -1, -1, -1);
    else
        /* What failed, not the status sent: a stream cut after its content
         * went out had status 200 and is still a failure of its kind. */
        llmgw_pool_record_failure(
            d->pool_slot, d->prm.row, end,
            d->gone                          ? LLMGW_FAIL_CLIENT_GONE
            : d->res.fail != LLMGW_FAIL_NONE ? d->res.fail
                                             : LLMGW_FAIL_HTTP,
            d->res.fail != LLMGW_FAIL_NONE ? d->res.status : (e ? e->status : 0), 0, 0);
}

apr_status_t llmgw_dispatch_run(llmgw_dispatch_t *d)
{
    llmgw_stats_time_t start = now(d);
    llmgw_candidate_t c;
    apr_status_t rv = APR_SUCCESS;

    llmgw_stats_begin(d->pool_slot, d->prm.row);
    if (!candidates(d))
        goto leave;
    while (select_next(d, &c)) {
        llmgw_pool_failure_t *f = apr_array_push(d->failures);
        turn_e tn = turn(d, &c, f);

        /* Every way a probe's turn ends releases the probe (DESIGN.md 6);
         * releasing twice is harmless. */
        if (c.probe)
            llmgw_stats_probe_release(d->slot);
        if (tn == TURN_ANSWERED) {
            apr_array_pop(d->failures);
            d->res.answered = 1;
            d->res.fail = LLMGW_FAIL_NONE;
            d->res.status = 0;
            break;
        }
        d->res.fail = f->fail;
        d->res.status = f->status;
        if (d->gone)
            break;
        if (tn == TURN_RECOVER) {
            const llmgw_dispatch_attempt_t *a =
                &APR_ARRAY_IDX(d->res.tries, d->res.tries->nelts - 1, llmgw_dispatch_attempt_t);
            if ((rv = start_recovery(d, &a->usage)) != APR_SUCCESS)
                break;
            continue;
        }
        if (tn == TURN_STOP || (d->opened && !d->recovering))
            break;
    }
    if (d->res.answered) {
        if (d->recovering) {
            const llmgw_dispatch_attempt_t *a =
                &APR_ARRAY_IDX(d->res.tries, d->res.tries->nelts - 1, llmgw_dispatch_attempt_t);
            d->res.recovered = 1;
            d->res.usage = d->usage_before;
            usage_add(&d->res.usage, &a->usage);
        }
        else if (d->call.stream) {
            d->res.usage =
                APR_ARRAY_IDX(d->res.tries, d->res.tries->nelts - 1, llmgw_dispatch_attempt_t)
                    .usage;
        }
    }
    else if (!d->gone) {
        if (d->opened)
            answer_aborted(d);
        else
            answer_failed(d);
    }
leave:
    d->res.client_gone = d->gone;
    pool_outcome(d, start);
    llmgw_stats_end(d->pool_slot, d->prm.row);
    return rv;
}

const llmgw_dispatch_result_t *llmgw_dispatch_result(const llmgw_dispatch_t *d)
{
    return &d->res;
}
