/*
 * Check suite of src/llmgw_dispatch.c: the outcome table of providers.md 9.2,
 * outcome by outcome, with a fake transport (scripted upstream answers in
 * the providers' real wire formats, through the real translators), a clock
 * the test controls, and a sink that records what the client would get.
 *
 * The fake transport keeps llmgw_upstream_perform's contract: it calls
 * opts->check every 100 ms of (fake) time while it waits, ends a transfer
 * that waited past first_byte_timeout, idle_timeout or the deadline, and
 * hands 2xx stream bodies to opts->on_data event by event.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "llmgw_dispatch.h"
#include "llmgw_json.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000)
#define MS(n) apr_time_from_msec(n)
#define SEC(n) apr_time_from_sec(n)

enum { END_CLEAN = 0, END_RESET, END_STALL };

/* One scripted upstream answer. */
typedef struct {
    const char *host;  /* the backend's name is its endpoint's host */
    llmgw_fail_e fail; /* a transport failure instead of an answer */
    int status;        /* 0: 200 */
    const char *body;  /* non-2xx and non-streaming bodies */
    const char *retry_after;
    apr_array_header_t *events; /* const char *: SSE text of each event */
    apr_interval_time_t gap;    /* before each event */
    apr_interval_time_t first_gap;
    int end;   /* after the events */
    int batch; /* events per on_data call (one socket read); 0: 1 */
    int resend_refused;
    int used;
} answer_t;

typedef struct {
    const char *host;
    json_t *body;
    apr_time_t t, t_end;
    const apr_array_header_t *headers;
} req_rec_t;

typedef struct {
    llmgw_config_t *cfg;
    void *stats;
    int *slot_of;
    int nslots;
    llmgw_stats_row_t *row;
    apr_time_t clock;
    apr_array_header_t *script; /* answer_t * */
    apr_array_header_t *reqs;   /* req_rec_t */
    apr_array_header_t *sleeps; /* apr_interval_time_t */
    json_t *got;                /* what the sink received, in order */
    apr_array_header_t *notes;  /* llmgw_dispatch_note_t */
    int gone_after_chunks;      /* the client leaves after this many chunks; 0: never */
    apr_time_t gone_at;         /* or at this time; 0: never */
    int chunks;
    apr_array_header_t *flushes; /* int: chunks received at each flush */
    int tokens;                  /* prepare mints access tokens */
    int reauths;                 /* prepare calls asking for a new token */
    int wants_json;
    int sparse_chunks;         /* chunks that reached the sink without their "id" */
    apr_array_header_t *texts; /* const char *: every chunk frame the sink got, as sent */
    apr_size_t max_body;       /* 0: 64 KiB */
    /* prm.translator: this provider for backend translate_for, the built-in for the others */
    const llmgw_provider_t *translator;
    const char *translate_for;
    llmgw_transport_t t;
    llmgw_sink_t s;
    const llmgw_dispatch_result_t *res;
} world_t;

static world_t *W;

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */

static const char base_yaml[] =
    "backends:\n"
    "  - name: a\n"
    "    type: openai\n"
    "    config: {apiKey: ka, endpoint: 'http://a/v1', defaultModel: m-a, maxRetries: 1,\n"
    "             firstByteTimeout: 5s, idleTimeout: 5s, timeout: 60s}\n"
    "  - name: b\n"
    "    type: openai\n"
    "    config: {apiKey: kb, endpoint: 'http://b/v1', defaultModel: m-b, maxRetries: 0,\n"
    "             firstByteTimeout: 5s, idleTimeout: 5s}\n"
    "  - name: c\n"
    "    type: anthropic\n"
    "    config: {apiKey: kc, endpoint: 'http://c', defaultModel: claude, maxRetries: 0,\n"
    "             prefill: true, idleTimeout: 5s}\n"
    "  - name: m\n"
    "    type: mistral\n"
    "    config: {apiKey: km, endpoint: 'http://m/v1', defaultModel: mistral-small,\n"
    "             maxRetries: 0, prefill: true}\n"
    "  - name: big\n"
    "    type: openai\n"
    "    config: {apiKey: kbig, endpoint: 'http://big/v1', defaultModel: m-big, maxRetries: 0}\n"
    "  - name: x\n"
    "    type: openai\n"
    "    config: {apiKey: kx, endpoint: 'http://x/v1', defaultModel: m-x, maxRetries: 0,\n"
    "             contextFallback: big, firstTokenTimeout: 2s, firstByteTimeout: 5s}\n"
    "  - name: ab\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [a, b]\n"
    "  - name: xbig\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [x, b, big]\n"
    "  - name: abc\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [a, b, c]\n"
    "  - name: am\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [a, m]\n"
    "  - name: cool\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1\n"
    "    cooldown: 30s\n"
    "    backends: [a, b]\n"
    "  - name: cm\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [c, m]\n"
    "  - name: cap\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    maxAttempts: 2\n"
    "    backends: [a, b]\n"
    "  - name: nest\n"
    "    type: pool\n"
    "    strategy: priority\n"
    "    failureThreshold: 1000\n"
    "    backends: [ab, c]\n"
    "routes:\n"
    "  - {name: a, path: /a, api: chat, backend: a}\n"
    "  - {name: x, path: /x, api: chat, backend: x}\n"
    "  - {name: ab, path: /ab, api: chat, backend: ab}\n"
    "  - {name: xbig, path: /xbig, api: chat, backend: xbig}\n"
    "  - {name: abc, path: /abc, api: chat, backend: abc, streamRecovery: continue}\n"
    "  - {name: abcn, path: /abcn, api: chat, backend: abc}\n"
    "  - {name: abuf, path: /abuf, api: chat, backend: ab, streamRecovery: buffer}\n"
    "  - {name: am, path: /am, api: chat, backend: am, streamRecovery: continue}\n"
    "  - {name: cm, path: /cm, api: chat, backend: cm, streamRecovery: continue}\n"
    "  - {name: cool, path: /cool, api: chat, backend: cool}\n"
    "  - {name: cap, path: /cap, api: chat, backend: cap}\n"
    "  - {name: nest, path: /nest, api: chat, backend: nest}\n";

static const llmgw_backend_t *be(const char *name)
{
    const llmgw_backend_t *b = llmgw_config_backend(W->cfg, name);

    ck_assert_ptr_nonnull(b);
    return b;
}

static llmgw_stats_slot_t *slot(const char *name)
{
    return llmgw_stats_slot(W->stats, W->slot_of[be(name)->index]);
}

/* ---------------------------------------------------------------------- */
/* The fake transport                                                     */

static llmgw_stats_time_t fake_now(void *baton)
{
    llmgw_stats_time_t t = {W->clock, W->clock};
    return t;
}

static void fake_sleep(void *baton, apr_interval_time_t usec)
{
    W->clock += usec;
    APR_ARRAY_PUSH(W->sleeps, apr_interval_time_t) = usec;
}

static double fake_random(void *baton)
{
    return 0.5; /* no jitter: llmgw_backoff gives 0.5 s, 1 s, 2 s ... */
}

static void fake_note(void *baton, const llmgw_dispatch_note_t *n)
{
    *(llmgw_dispatch_note_t *)apr_array_push(W->notes) = *n;
}

static llmgw_error_t *fake_prepare(void *baton, llmgw_call_t *call, int reauth)
{
    if (reauth)
        W->reauths++;
    if (W->tokens)
        call->access_token = reauth ? "token-2" : "token-1";
    return NULL;
}

static const char *host_of(const char *url)
{
    const char *s = strstr(url, "//") + 2, *e = strchr(s, '/');

    return apr_pstrmemdup(test_pool, s, e ? (apr_size_t)(e - s) : strlen(s));
}

/* Let @p d of fake time pass in 100 ms slices, as the upstream loop does. */
static llmgw_fail_e advance(const llmgw_upstream_opts_t *o, apr_interval_time_t d)
{
    while (d > 0) {
        apr_interval_time_t step = d < MS(100) ? d : MS(100);
        llmgw_fail_e f;

        W->clock += step;
        d -= step;
        if (W->clock >= o->deadline)
            return LLMGW_FAIL_TIMEOUT;
        if (o->check && (f = o->check(o->baton)) != LLMGW_FAIL_NONE)
            return f;
    }
    return LLMGW_FAIL_NONE;
}

static answer_t *next_answer(const char *host)
{
    int i;

    for (i = 0; i < W->script->nelts; i++) {
        answer_t *a = APR_ARRAY_IDX(W->script, i, answer_t *);
        if (!a->used && strcmp(a->host, host) == 0) {
            a->used = 1;
            return a;
        }
    }
    ck_abort_msg("request to %s was not scripted", host);
    return NULL;
}

static apr_status_t fake_perform(void *baton, apr_pool_t *p, const llmgw_http_request_t *req,
                                 const llmgw_upstream_opts_t *o, llmgw_upstream_result_t *res)
{
    const char *host = host_of(req->url);
    answer_t *a = next_answer(host);
    req_rec_t *rec = apr_array_push(W->reqs);
    apr_time_t start = W->clock;
    llmgw_fail_e f;
    int i;

    memset(res, 0, sizeof(*res));
    memset(rec, 0, sizeof(*rec));
    rec->host = host;
    rec->t = W->clock;
    rec->headers = req->headers;
    if (req->body)
        rec->body = llmgw_json_pool_own(test_pool, test_parse_json(req->body, req->body_len));
    res->resend_refused = a->resend_refused;
    if (a->fail == LLMGW_FAIL_TIMEOUT) {
        f = advance(o, o->first_byte_timeout);
        res->fail = f ? f : LLMGW_FAIL_TIMEOUT;
        goto out;
    }
    if (a->fail != LLMGW_FAIL_NONE) {
        f = advance(o, MS(10));
        res->fail = f ? f : a->fail;
        goto out;
    }
    if ((f = advance(o, MS(20))) != LLMGW_FAIL_NONE) {
        res->fail = f;
        goto out;
    }
    res->status = a->status ? a->status : 200;
    res->retry_after = a->retry_after;
    res->ttfb = W->clock - start;
    if (res->status != 200 || !o->on_data) {
        res->body = a->body ? a->body : "";
        res->body_len = strlen(res->body);
        goto out;
    }
    for (i = 0; a->events && i < a->events->nelts; i++) {
        const char *ev = APR_ARRAY_IDX(a->events, i, const char *);
        apr_status_t rv;
        int k;

        for (k = 1; k < a->batch && i + 1 < a->events->nelts; k++)
            ev = apr_pstrcat(test_pool, ev, APR_ARRAY_IDX(a->events, ++i, const char *), NULL);

        if ((f = advance(o, i == 0 && a->first_gap ? a->first_gap : a->gap)) != LLMGW_FAIL_NONE) {
            res->fail = f;
            goto out;
        }
        if ((rv = o->on_data(o->baton, ev, strlen(ev))) != APR_SUCCESS) {
            res->sink_status = rv;
            goto out;
        }
    }
    if (a->end == END_RESET)
        res->fail = LLMGW_FAIL_RESET;
    else if (a->end == END_STALL)
        res->fail = (f = advance(o, o->idle_timeout)) ? f : LLMGW_FAIL_IDLE;
out:
    res->elapsed = W->clock - start;
    rec->t_end = W->clock;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* The recording sink                                                     */

static void got(json_t *ev)
{
    json_object_set_new(ev, "t", json_integer(W->clock - T0));
    json_array_append_new(W->got, ev);
}

static int fake_gone(void *baton)
{
    return (W->gone_after_chunks && W->chunks >= W->gone_after_chunks) ||
           (W->gone_at && W->clock >= W->gone_at);
}

static apr_status_t sink_answer(void *baton, const char *body, apr_size_t len)
{
    got(json_pack("{s:s, s:o}", "ev", "answer", "body", test_parse_json(body, len)));
    return APR_SUCCESS;
}

static apr_status_t sink_open(void *baton)
{
    got(json_pack("{s:s}", "ev", "open"));
    return APR_SUCCESS;
}

static const char *kind_name(llmgw_chunk_kind_e k)
{
    return k == LLMGW_CHUNK_PREAMBLE ? "P" : k == LLMGW_CHUNK_CONTENT ? "C" : "F";
}

static apr_status_t sink_chunk(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                               const char *frame, apr_size_t len)
{
    json_t *j;

    if (fake_gone(baton))
        return LLMGW_ECLIENTGONE;
    ck_assert_uint_gt(len, 8);
    ck_assert_msg(memcmp(frame, "data: ", 6) == 0 && memcmp(frame + len - 2, "\n\n", 2) == 0,
                  "not one SSE frame");
    j = test_parse_json(frame + 6, len - 8);
    /* Without wants_json only the frame counts (the translator may read chunks sparsely). */
    if (W->wants_json)
        ck_assert_msg(chunk && json_equal(chunk, j), "chunk JSON and frame differ");
    if (chunk && !json_object_get(chunk, "id"))
        W->sparse_chunks++;
    APR_ARRAY_PUSH(W->texts, const char *) = apr_pstrmemdup(test_pool, frame, len);
    got(json_pack("{s:s, s:s, s:o}", "ev", "chunk", "kind", kind_name(kind), "json", j));
    W->chunks++;
    return APR_SUCCESS;
}

static apr_status_t sink_flush(void *baton)
{
    APR_ARRAY_PUSH(W->flushes, int) = W->chunks;
    return APR_SUCCESS;
}

static apr_status_t sink_close(void *baton)
{
    got(json_pack("{s:s}", "ev", "close"));
    return APR_SUCCESS;
}

static json_t *error_json(const llmgw_error_t *e)
{
    return json_pack("{s:i, s:s?, s:s?, s:s?}", "status", e->status, "code", e->code, "type",
                     e->type, "message", e->message);
}

static apr_status_t sink_abort(void *baton, const llmgw_error_t *e)
{
    got(json_pack("{s:s, s:o}", "ev", "abort", "error", error_json(e)));
    return APR_SUCCESS;
}

static apr_status_t sink_error(void *baton, const llmgw_error_t *e, apr_interval_time_t retry_after,
                               int exhausted)
{
    got(json_pack("{s:s, s:o, s:I, s:b}", "ev", "error", "error", error_json(e), "retry_after",
                  (json_int_t)retry_after, "exhausted", exhausted));
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* The world, and running a request                                       */

static void setup(void)
{
    const char *err = NULL;
    const char **names;
    int i, n;

    test_pool_setup();
    apr_atomic_init(test_pool);
    W = apr_pcalloc(test_pool, sizeof(*W));
    ck_assert_msg(llmgw_config_parse(&W->cfg, test_pool, test_pool, "t.yaml", base_yaml,
                                     strlen(base_yaml), &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    n = W->cfg->backends->nelts;
    names = apr_pcalloc(test_pool, sizeof(*names) * n);
    for (i = 0; i < n; i++)
        names[i] = APR_ARRAY_IDX(W->cfg->backends, i, const llmgw_backend_t *)->name;
    W->stats = apr_pcalloc(test_pool, llmgw_stats_size(32, 4));
    ck_assert_int_eq(llmgw_stats_init(W->stats, 32, 4, T0), APR_SUCCESS);
    W->slot_of = apr_pcalloc(test_pool, sizeof(int) * n);
    W->nslots = n;
    ck_assert_int_eq(llmgw_stats_assign(W->stats, names, NULL, n, W->slot_of), APR_SUCCESS);
    W->row = llmgw_stats_child_claim(W->stats, 4242);
    W->clock = T0;
    W->script = apr_array_make(test_pool, 8, sizeof(answer_t *));
    W->reqs = apr_array_make(test_pool, 8, sizeof(req_rec_t));
    W->sleeps = apr_array_make(test_pool, 8, sizeof(apr_interval_time_t));
    W->notes = apr_array_make(test_pool, 8, sizeof(llmgw_dispatch_note_t));
    W->flushes = apr_array_make(test_pool, 8, sizeof(int));
    W->texts = apr_array_make(test_pool, 8, sizeof(const char *));
    W->got = llmgw_json_pool_own(test_pool, json_array());
    W->t.perform = fake_perform;
    W->t.prepare = fake_prepare;
    W->t.sleep = fake_sleep;
    W->t.now = fake_now;
    W->t.random = fake_random;
    W->t.note = fake_note;
    W->s.gone = fake_gone;
    W->s.answer = sink_answer;
    W->s.open = sink_open;
    W->s.chunk = sink_chunk;
    W->s.flush = sink_flush;
    W->s.close = sink_close;
    W->s.abort = sink_abort;
    W->s.error = sink_error;
}

static void teardown(void)
{
    W = NULL;
    test_pool_teardown();
}

/* A chat request: stream (with usage) or not, the given model (NULL: none). */
static json_t *chat(int stream, const char *model)
{
    json_t *j = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content",
                          "say one two three four");

    if (model)
        json_object_set_new(j, "model", json_string(model));
    if (stream) {
        json_object_set_new(j, "stream", json_true());
        json_object_set_new(j, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return llmgw_json_pool_own(test_pool, j);
}

static const llmgw_provider_t *pick_translator(void *baton, const llmgw_backend_t *b)
{
    world_t *w = baton;

    return strcmp(b->name, w->translate_for) == 0 ? w->translator : llmgw_provider_get(b->type);
}

static const llmgw_dispatch_result_t *run_body(const char *path, json_t *body)
{
    llmgw_call_t call;
    llmgw_dispatch_params_t prm;
    llmgw_dispatch_t *d;
    const llmgw_route_t *route = llmgw_config_route(W->cfg, path);
    const char *model = llmgw_json_str(body, "model");

    ck_assert_ptr_nonnull(route);
    memset(&call, 0, sizeof(call));
    call.pool = test_pool;
    call.api = route->api;
    call.body = body;
    call.raw_body = llmgw_json_dump(test_pool, body, &call.raw_len);
    call.stream = json_is_true(json_object_get(body, "stream"));
    call.include_usage =
        call.stream &&
        json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    call.created = 1700000000;
    memset(&prm, 0, sizeof(prm));
    prm.route = route;
    prm.call = &call;
    prm.model = model;
    prm.stats = W->stats;
    prm.slot_of = W->slot_of;
    prm.nslots = W->nslots;
    prm.row = W->row;
    prm.seed = 1;
    prm.max_body = W->max_body ? W->max_body : 64 * 1024;
    prm.max_event = 64 * 1024;
    W->s.wants_json = W->wants_json;
    if (W->translator) {
        prm.translator = pick_translator;
        prm.translator_baton = W;
    }
    ck_assert_int_eq(llmgw_dispatch_create(&d, test_pool, &prm, &W->t, &W->s), APR_SUCCESS);
    ck_assert_int_eq(llmgw_dispatch_run(d), APR_SUCCESS);
    W->res = llmgw_dispatch_result(d);
    /* Every attempt's in-flight count went back down. */
    ck_assert_uint_eq(llmgw_stats_inflight(W->stats, W->slot_of[be("a")->index]), 0);
    return W->res;
}

static const llmgw_dispatch_result_t *run(const char *path, int stream)
{
    return run_body(path, chat(stream, NULL));
}

/* ---------------------------------------------------------------------- */
/* Scripting answers                                                      */

static answer_t *answer(const char *host)
{
    answer_t *a = apr_pcalloc(test_pool, sizeof(*a));

    a->host = host;
    APR_ARRAY_PUSH(W->script, answer_t *) = a;
    return a;
}

static answer_t *fail_with(const char *host, llmgw_fail_e f)
{
    answer_t *a = answer(host);
    a->fail = f;
    return a;
}

static answer_t *http(const char *host, int status, const char *body)
{
    answer_t *a = answer(host);
    a->status = status;
    a->body = body;
    return a;
}

static const char *frame(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    const char *out = apr_psprintf(test_pool, "data: %s\n\n", s);

    free(s);
    json_decref(j);
    return out;
}

static const char *named(const char *event, json_t *j)
{
    return apr_pstrcat(test_pool, "event: ", event, "\n", frame(j), NULL);
}

/* The pieces of "a|b|c". */
static apr_array_header_t *pieces(const char *text)
{
    apr_array_header_t *out = apr_array_make(test_pool, 4, sizeof(const char *));
    const char *s = text;

    for (;;) {
        const char *bar = strchr(s, '|');
        APR_ARRAY_PUSH(out, const char *) =
            apr_pstrmemdup(test_pool, s, bar ? (apr_size_t)(bar - s) : strlen(s));
        if (!bar)
            return out;
        s = bar + 1;
    }
}

static json_t *oai_chunk(const char *host, json_t *delta, const char *finish)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:o}]}", "id",
                     apr_pstrcat(test_pool, "chatcmpl-", host, NULL), "object",
                     "chat.completion.chunk", "created", 1700000001, "model",
                     apr_pstrcat(test_pool, "m-", host, NULL), "choices", "index", 0, "delta",
                     delta, "finish_reason", finish ? json_string(finish) : json_null());
}

/*
 * An OpenAI stream of @p text ("a|b|c"): events 1 (role), 2.. (content),
 * then the finish, the usage (prompt 7, completion = pieces) and [DONE].
 */
static answer_t *oai_stream(const char *host, const char *text)
{
    answer_t *a = answer(host);
    apr_array_header_t *p = pieces(text);
    int i;

    a->events = apr_array_make(test_pool, 8, sizeof(const char *));
    APR_ARRAY_PUSH(a->events, const char *) =
        frame(oai_chunk(host, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL));
    for (i = 0; i < p->nelts; i++)
        APR_ARRAY_PUSH(a->events, const char *) = frame(oai_chunk(
            host, json_pack("{s:s}", "content", APR_ARRAY_IDX(p, i, const char *)), NULL));
    APR_ARRAY_PUSH(a->events, const char *) = frame(oai_chunk(host, json_object(), "stop"));
    APR_ARRAY_PUSH(a->events, const char *) = frame(json_pack(
        "{s:s, s:s, s:i, s:s, s:[], s:{s:i, s:i, s:i}}", "id",
        apr_pstrcat(test_pool, "chatcmpl-", host, NULL), "object", "chat.completion.chunk",
        "created", 1700000001, "model", apr_pstrcat(test_pool, "m-", host, NULL), "choices",
        "usage", "prompt_tokens", 7, "completion_tokens", p->nelts, "total_tokens", 7 + p->nelts));
    APR_ARRAY_PUSH(a->events, const char *) = "data: [DONE]\n\n";
    return a;
}

/* Keep the first @p n events, then end as @p end says. */
static answer_t *cut(answer_t *a, int n, int end)
{
    a->events->nelts = n;
    a->end = end;
    return a;
}

/* An Anthropic stream of @p text: message_start (input 11, output 1), the text, message_delta. */
static answer_t *anth_stream(const char *host, const char *text)
{
    answer_t *a = answer(host);
    apr_array_header_t *p = pieces(text);
    int i;

    a->events = apr_array_make(test_pool, 8, sizeof(const char *));
    APR_ARRAY_PUSH(a->events, const char *) = named(
        "message_start", json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:{s:i, s:i}}}", "type",
                                   "message_start", "message", "id", "msg_c1", "type", "message",
                                   "role", "assistant", "model", "claude", "content", "stop_reason",
                                   "usage", "input_tokens", 11, "output_tokens", 1));
    APR_ARRAY_PUSH(a->events, const char *) = named(
        "content_block_start", json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start",
                                         "index", 0, "content_block", "type", "text", "text", ""));
    for (i = 0; i < p->nelts; i++)
        APR_ARRAY_PUSH(a->events, const char *) = named(
            "content_block_delta",
            json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta", "index", 0,
                      "delta", "type", "text_delta", "text", APR_ARRAY_IDX(p, i, const char *)));
    APR_ARRAY_PUSH(a->events, const char *) = named(
        "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0));
    APR_ARRAY_PUSH(a->events, const char *) =
        named("message_delta", json_pack("{s:s, s:{s:s, s:n}, s:{s:i}}", "type", "message_delta",
                                         "delta", "stop_reason", "end_turn", "stop_sequence",
                                         "usage", "output_tokens", p->nelts));
    APR_ARRAY_PUSH(a->events, const char *) =
        named("message_stop", json_pack("{s:s}", "type", "message_stop"));
    return a;
}

/* A non-streaming OpenAI answer. */
static answer_t *oai_ok(const char *host, const char *text)
{
    answer_t *a = answer(host);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:i, s:i, s:i}}",
                          "id", apr_pstrcat(test_pool, "chatcmpl-", host, NULL), "object",
                          "chat.completion", "created", 1700000001, "model",
                          apr_pstrcat(test_pool, "m-", host, NULL), "choices", "index", 0,
                          "message", "role", "assistant", "content", text, "finish_reason", "stop",
                          "usage", "prompt_tokens", 7, "completion_tokens", 3, "total_tokens", 10);

    a->body = llmgw_json_dump(test_pool, j, NULL);
    json_decref(j);
    return a;
}

static const char *oai_error(const char *message, const char *code)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type",
                          "invalid_request_error", "param", "code", code);
    const char *s = llmgw_json_dump(test_pool, j, NULL);

    json_decref(j);
    return s;
}

/* ---------------------------------------------------------------------- */
/* Looking at the outcome                                                 */

/* The hosts asked, in order: "a a b". */
static const char *asked(void)
{
    const char *s = "";
    int i;

    for (i = 0; i < W->reqs->nelts; i++)
        s = apr_pstrcat(test_pool, s, i ? " " : "", APR_ARRAY_IDX(W->reqs, i, req_rec_t).host,
                        NULL);
    return s;
}

static req_rec_t *req(int i)
{
    ck_assert_int_lt(i, W->reqs->nelts);
    return &APR_ARRAY_IDX(W->reqs, i, req_rec_t);
}

/* What the client got: "open P C C C F close", "error 502", "answer". */
static const char *seq(void)
{
    const char *s = "";
    size_t i;
    json_t *ev;

    json_array_foreach (W->got, i, ev) {
        const char *name = llmgw_json_str(ev, "ev");
        const char *item = name;

        if (strcmp(name, "chunk") == 0)
            item = llmgw_json_str(ev, "kind");
        else if (strcmp(name, "error") == 0 || strcmp(name, "abort") == 0)
            item = apr_psprintf(
                test_pool, "%s %d", name,
                (int)json_integer_value(json_object_get(json_object_get(ev, "error"), "status")));
        s = apr_pstrcat(test_pool, s, i ? " " : "", item, NULL);
    }
    return s;
}

static json_t *got_ev(int i)
{
    json_t *ev = json_array_get(W->got, i < 0 ? json_array_size(W->got) + i : (size_t)i);

    ck_assert_ptr_nonnull(ev);
    return ev;
}

/* The error the client got (plain or in-band). */
static json_t *got_error(void)
{
    return json_object_get(got_ev(-1), "error");
}

static const char *err_code(void)
{
    return llmgw_json_str(got_error(), "code");
}

static const char *err_message(void)
{
    return llmgw_json_str(got_error(), "message");
}

static json_t *chunk_at(int i)
{
    return json_object_get(got_ev(i), "json");
}

/* The text of the streamed answer, and how many chunks carried a role / a finish. */
static const char *text(int *roles, int *finishes)
{
    const char *s = "";
    size_t i, k;
    json_t *ev, *c;

    *roles = *finishes = 0;
    json_array_foreach (W->got, i, ev) {
        json_array_foreach (json_object_get(json_object_get(ev, "json"), "choices"), k, c) {
            json_t *delta = json_object_get(c, "delta");
            const char *t = llmgw_json_str(delta, "content");
            if (t)
                s = apr_pstrcat(test_pool, s, t, NULL);
            *roles += json_object_get(delta, "role") != NULL;
            *finishes += !llmgw_json_is_absent(json_object_get(c, "finish_reason"));
        }
    }
    return s;
}

/* Every chunk carries this id. */
static void assert_one_id(const char *id)
{
    size_t i;
    json_t *ev;

    json_array_foreach (W->got, i, ev) {
        json_t *j = json_object_get(ev, "json");
        if (j)
            ck_assert_str_eq(llmgw_json_str(j, "id"), id);
    }
}

static int notes_of(llmgw_note_e kind)
{
    int i, n = 0;

    for (i = 0; i < W->notes->nelts; i++)
        n += APR_ARRAY_IDX(W->notes, i, llmgw_dispatch_note_t).kind == kind;
    return n;
}

static const llmgw_dispatch_note_t *note_of(llmgw_note_e kind)
{
    int i;

    for (i = 0; i < W->notes->nelts; i++)
        if (APR_ARRAY_IDX(W->notes, i, llmgw_dispatch_note_t).kind == kind)
            return &APR_ARRAY_IDX(W->notes, i, llmgw_dispatch_note_t);
    ck_abort_msg("no note of kind %d", kind);
    return NULL;
}

static apr_interval_time_t slept(void)
{
    apr_interval_time_t total = 0;
    int i;

    for (i = 0; i < W->sleeps->nelts; i++)
        total += APR_ARRAY_IDX(W->sleeps, i, apr_interval_time_t);
    return total;
}

static const llmgw_dispatch_attempt_t *try_at(int i)
{
    ck_assert_int_lt(i, W->res->tries->nelts);
    return &APR_ARRAY_IDX(W->res->tries, i, llmgw_dispatch_attempt_t);
}

/* The hot counters of backend @p name, summed over the slot and the rows. */
static llmgw_stats_counts_t counts(const char *name)
{
    llmgw_stats_counts_t c;

    llmgw_stats_counts(W->stats, W->slot_of[be(name)->index], &c);
    return c;
}

static apr_uint64_t errors(const char *name, llmgw_stats_err_e cls)
{
    return counts(name).errors[cls];
}

#define ck_seq(expected) ck_assert_str_eq(seq(), expected)
#define ck_asked(expected) ck_assert_str_eq(asked(), expected)

/* Forget what the last request did (the world, its stats and clock stay). */
static void reset_run(void)
{
    json_array_clear(W->got);
    apr_array_clear(W->reqs);
    apr_array_clear(W->sleeps);
    apr_array_clear(W->notes);
    W->chunks = 0;
}

static const char *malformed_event = "data: {\"id\":\"chatcmpl-a\",\"choices\":[{\"delta\":\n\n";

static int str_is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* An event inserted before event @p at (0-based) of @p a. */
static void insert_event(answer_t *a, int at, const char *ev)
{
    int i;

    APR_ARRAY_PUSH(a->events, const char *) = NULL;
    for (i = a->events->nelts - 1; i > at; i--)
        APR_ARRAY_IDX(a->events, i, const char *) = APR_ARRAY_IDX(a->events, i - 1, const char *);
    APR_ARRAY_IDX(a->events, at, const char *) = ev;
}

/* The text of a request's trailing assistant message (a prefill), or NULL. */
static const char *prefill_of(const req_rec_t *r, int *prefix)
{
    json_t *msgs = json_object_get(r->body, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *content = json_object_get(last, "content"), *b;
    const char *s = "";
    size_t i;

    *prefix = json_is_true(json_object_get(last, "prefix"));
    if (!str_is(llmgw_json_str(last, "role"), "assistant"))
        return NULL;
    if (json_is_string(content))
        return json_string_value(content);
    json_array_foreach (content, i, b)
        s = apr_pstrcat(test_pool, s, llmgw_json_str(b, "text"), NULL);
    return s;
}

/* ====================================================================== */
/* providers.md 9.2, row by row                                           */

/* A member of a nested pool that fails over counts the fallback in the pool
 * it belongs to (the status page's per-pool fallbacks), not only the route's. */
START_TEST(test_nested_pool_counts_its_own_fallback)
{
    fail_with("a", LLMGW_FAIL_CONNECT);
    fail_with("a", LLMGW_FAIL_CONNECT);
    oai_ok("b", "from b");
    run("/nest", 0);
    ck_asked("a a b");
    ck_assert_str_eq(W->res->backend->name, "b");
    ck_assert_uint_eq(counts("a").fallbacks, 1);
    ck_assert_uint_eq(counts("ab").fallbacks, 1);
    ck_assert_uint_eq(counts("nest").fallbacks, 0);
    ck_assert_uint_eq(counts("nest").successes, 1);
}
END_TEST

START_TEST(test_connect_error_retried_then_failed_over)
{
    fail_with("a", LLMGW_FAIL_CONNECT);
    fail_with("a", LLMGW_FAIL_CONNECT);
    oai_ok("b", "from b");
    run("/ab", 0);
    ck_asked("a a b");
    ck_seq("answer");
    ck_assert_int_eq(W->res->attempts, 3);
    ck_assert_str_eq(W->res->backend->name, "b");
    ck_assert_int_eq(W->res->answered, 1);
    /* A backoff of 0.5 s between a's attempts (no jitter here), none before b. */
    ck_assert_int_eq(slept(), MS(500));
    ck_assert_int_eq(req(1)->t - req(0)->t_end, MS(500));
    ck_assert_int_eq(req(2)->t, req(1)->t_end);
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_CONNECT), 2);
    ck_assert_uint_eq(counts("a").retries, 1);
    ck_assert_uint_eq(counts("a").fallbacks, 1);
    ck_assert_uint_eq(counts("ab").fallbacks, 1);
    ck_assert_uint_eq(counts("b").successes, 1);
    ck_assert_uint_eq(counts("ab").successes, 1);
    ck_assert_int_eq(notes_of(LLMGW_NOTE_RETRY), 1);
    ck_assert_int_eq(note_of(LLMGW_NOTE_RETRY)->delay, MS(500));
}
END_TEST

START_TEST(test_connect_error_exhausted_is_502)
{
    fail_with("a", LLMGW_FAIL_CONNECT);
    fail_with("a", LLMGW_FAIL_CONNECT);
    run("/a", 0);
    ck_asked("a a");
    ck_seq("error 502");
    ck_assert_str_eq(err_code(), "bad_gateway");
    ck_assert_int_eq(json_is_true(json_object_get(got_ev(0), "exhausted")), 1);
    ck_assert_int_eq(W->res->fail, LLMGW_FAIL_CONNECT);
    ck_assert_int_eq(notes_of(LLMGW_NOTE_EXHAUSTED), 1);
}
END_TEST

/* A member that never answered is not asked again: the next one at once. */
START_TEST(test_first_byte_timeout_fails_over_at_once)
{
    fail_with("a", LLMGW_FAIL_TIMEOUT);
    oai_ok("b", "from b");
    run("/ab", 0);
    ck_asked("a b");
    ck_seq("answer");
    ck_assert_int_eq(req(0)->t_end - req(0)->t, SEC(5)); /* a's firstByteTimeout */
    ck_assert_int_eq(req(1)->t, req(0)->t_end);
    ck_assert_int_eq(slept(), 0);
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_TIMEOUT), 1);
    ck_assert_uint_eq(counts("a").retries, 0);
}
END_TEST

START_TEST(test_first_byte_timeout_lone_is_504_after_one_attempt)
{
    fail_with("a", LLMGW_FAIL_TIMEOUT); /* a has maxRetries 1: not used for a silent member */
    run("/a", 0);
    ck_asked("a");
    ck_seq("error 504");
    ck_assert_str_eq(err_code(), "upstream_timeout");
    ck_assert_int_eq(W->res->attempts, 1);
}
END_TEST

/* Headers, keep-alives and a role chunk are no token: firstTokenTimeout ends the wait. */
START_TEST(test_first_token_timeout_fails_over)
{
    answer_t *x = answer("x");
    int i, roles, finishes;

    x->events = apr_array_make(test_pool, 12, sizeof(const char *));
    APR_ARRAY_PUSH(x->events, const char *) =
        frame(oai_chunk("x", json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL));
    for (i = 0; i < 10; i++)
        APR_ARRAY_PUSH(x->events, const char *) = ": keep-alive\n\n";
    APR_ARRAY_PUSH(x->events, const char *) =
        frame(oai_chunk("x", json_pack("{s:s}", "content", "too late"), NULL));
    x->gap = MS(500);
    oai_stream("b", "from |b");
    run("/xbig", 1);
    ck_asked("x b");
    /* x's firstTokenTimeout is 2 s, from the start of its attempt (100 ms checks). */
    ck_assert_int_ge(req(0)->t_end - req(0)->t, SEC(2));
    ck_assert_int_lt(req(0)->t_end - req(0)->t, SEC(2) + MS(100));
    ck_assert_int_eq(req(1)->t, req(0)->t_end);
    ck_seq("open P C C C F close");
    ck_assert_str_eq(text(&roles, &finishes), "from b");
    ck_assert_int_eq(roles, 1);
    ck_assert_int_eq(errors("x", LLMGW_STATS_ERR_TIMEOUT), 1);
    ck_assert_int_eq(try_at(0)->fail, LLMGW_FAIL_TIMEOUT);
}
END_TEST

START_TEST(test_first_token_timeout_lone_is_504)
{
    answer_t *x = answer("x");
    int i;

    x->events = apr_array_make(test_pool, 12, sizeof(const char *));
    for (i = 0; i < 10; i++)
        APR_ARRAY_PUSH(x->events, const char *) = ": keep-alive\n\n";
    x->gap = MS(500);
    run("/x", 1);
    ck_asked("x");
    ck_seq("error 504");
    ck_assert_str_eq(err_code(), "upstream_timeout");
    /* Not for plain requests: the answer is the first token. */
    reset_run();
    x = oai_ok("x", "slow but whole");
    x->first_gap = SEC(3);
    run("/x", 0);
    ck_seq("answer");
}
END_TEST

START_TEST(test_400_is_final_with_the_provider_message)
{
    http("a", 400, oai_error("Distinctive complaint", "bad_thing"));
    run("/ab", 0);
    ck_asked("a");
    ck_seq("error 400");
    ck_assert_str_eq(err_message(), "Distinctive complaint");
    ck_assert_str_eq(err_code(), "bad_thing");
    ck_assert_int_eq(json_is_true(json_object_get(got_ev(0), "exhausted")), 0);
    ck_assert_int_eq(W->res->attempts, 1);
}
END_TEST

START_TEST(test_context_window_tries_the_context_fallback_first)
{
    http("x", 400,
         oai_error("This model's maximum context length is 8192 tokens.",
                   "context_length_exceeded"));
    oai_ok("big", "roomy");
    run("/xbig", 0);
    ck_asked("x big"); /* big before b, at once */
    ck_seq("answer");
    ck_assert_int_eq(slept(), 0);
    ck_assert_str_eq(W->res->backend->name, "big");
    ck_assert_str_eq(json_string_value(json_object_get(req(1)->body, "model")), "m-big");
    ck_assert_int_eq(notes_of(LLMGW_NOTE_CONTEXT), 1);
    ck_assert_str_eq(note_of(LLMGW_NOTE_CONTEXT)->other->name, "big");
    /* Then the pool's next members. */
    reset_run();
    http("x", 400, oai_error("too long", "context_length_exceeded"));
    http("big", 400, oai_error("still too long", "context_length_exceeded"));
    oai_ok("b", "b has room");
    run("/xbig", 0);
    ck_asked("x big b");
    ck_seq("answer");
    /* No window large enough: the provider's own 400. */
    reset_run();
    http("x", 400, oai_error("too long for x", "context_length_exceeded"));
    http("big", 400, oai_error("too long for big", "context_length_exceeded"));
    http("b", 400, oai_error("too long for b", "context_length_exceeded"));
    run("/xbig", 0);
    ck_asked("x big b");
    ck_seq("error 400");
    ck_assert_str_eq(err_message(), "too long for b");
    ck_assert_str_eq(err_code(), "context_length_exceeded");
}
END_TEST

START_TEST(test_context_window_lone_backend_uses_its_fallback)
{
    http("x", 400, oai_error("too long", "context_length_exceeded"));
    oai_ok("big", "roomy");
    run("/x", 0);
    ck_asked("x big");
    ck_seq("answer");
    /* A context error elsewhere does not hide a member that was merely down. */
    reset_run();
    http("x", 400, oai_error("too long", "context_length_exceeded"));
    http("big", 503, NULL);
    http("b", 503, NULL);
    run("/xbig", 0);
    ck_asked("x big b");
    ck_seq("error 503");
}
END_TEST

START_TEST(test_content_filter_is_final)
{
    http("a", 400,
         oai_error("The response was filtered due to the prompt triggering the content "
                   "management policy.",
                   "content_filter"));
    run("/ab", 0);
    ck_asked("a");
    ck_seq("error 400");
    ck_assert_str_eq(err_code(), "content_filter");
}
END_TEST

START_TEST(test_401_fails_over_and_cools_the_member)
{
    http("a", 401, oai_error("Incorrect API key provided: ka.", "invalid_api_key"));
    oai_ok("b", "from b");
    run("/ab", 0);
    ck_asked("a b");
    ck_seq("answer");
    ck_assert_int_eq(llmgw_stats_peek(slot("a"), fake_now(NULL)), LLMGW_STATS_COOLING);
    ck_assert_int_eq(llmgw_stats_cooldown_period(slot("a")), LLMGW_COOLDOWN_BASE);
    /* A lone backend: 502 upstream_auth_failed, none of the provider's text. */
    reset_run();
    http("a", 403, oai_error("key ka is not allowed", NULL));
    run("/a", 0);
    ck_seq("error 502");
    ck_assert_str_eq(err_code(), "upstream_auth_failed");
    ck_assert_ptr_null(strstr(err_message(), "ka"));
}
END_TEST

/* A 401 on a minted token (Vertex AI): a new token, once. */
START_TEST(test_401_with_a_minted_token_reauths_once)
{
    W->tokens = 1;
    http("a", 401, NULL);
    oai_ok("a", "with a new token");
    run("/a", 0);
    ck_asked("a a");
    ck_seq("answer");
    ck_assert_int_eq(W->reauths, 1);
    ck_assert_int_eq(W->res->attempts, 2);
    reset_run();
    W->reauths = 0;
    http("a", 401, NULL);
    http("a", 401, NULL);
    run("/a", 0);
    ck_asked("a a");
    ck_seq("error 502");
    ck_assert_int_eq(W->reauths, 1);
}
END_TEST

START_TEST(test_402_and_404_fail_over)
{
    http("a", 402, NULL);
    oai_ok("b", "b pays");
    run("/ab", 0);
    ck_asked("a b");
    ck_seq("answer");
    /* a sits out its cooldown (402 is the gateway's account), then is probed. */
    reset_run();
    oai_ok("b", "a cooling");
    run("/ab", 0);
    ck_asked("b");
    reset_run();
    W->clock += LLMGW_COOLDOWN_BASE;
    http("a", 404, oai_error("The model m-a does not exist", "model_not_found"));
    oai_ok("b", "b has it");
    run("/ab", 0);
    ck_asked("a b");
    ck_seq("answer");
    reset_run();
    http("a", 404, oai_error("no such model here", "model_not_found"));
    http("b", 404, oai_error("nor here", "model_not_found"));
    run("/ab", 0);
    ck_seq("error 404");
    ck_assert_str_eq(err_code(), "model_not_found");
}
END_TEST

START_TEST(test_408_409_retried_413_final)
{
    http("a", 408, NULL);
    oai_ok("a", "second time");
    run("/ab", 0);
    ck_asked("a a");
    reset_run();
    http("a", 409, NULL);
    oai_ok("a", "second time");
    run("/ab", 0);
    ck_asked("a a");
    reset_run();
    http("a", 413, oai_error("Request too large for m-a.", "request_too_large"));
    run("/ab", 0);
    ck_asked("a");
    ck_seq("error 413");
}
END_TEST

/* providers.md 9.2: an upstream 422 is the gateway's translation at fault: 400, logged. */
START_TEST(test_422_reaches_the_client_as_400)
{
    http("a", 422, oai_error("Unprocessable thing", NULL));
    run("/ab", 0);
    ck_asked("a");
    ck_seq("error 400");
    ck_assert_str_eq(err_message(), "Unprocessable thing");
    ck_assert_int_eq(notes_of(LLMGW_NOTE_UPSTREAM_422), 1);
}
END_TEST

START_TEST(test_429_retry_after)
{
    /* A hint up to 10 s is waited for, exactly. */
    http("a", 429, NULL)->retry_after = "1";
    oai_ok("a", "after the wait");
    run("/ab", 0);
    ck_asked("a a");
    ck_assert_int_eq(slept(), SEC(1));
    ck_assert_int_eq(req(1)->t - req(0)->t_end, SEC(1));
    /* A longer hint is not: the next member at once. */
    reset_run();
    http("a", 429, NULL)->retry_after = "30";
    oai_ok("b", "no waiting");
    run("/ab", 0);
    ck_asked("a b");
    ck_assert_int_eq(slept(), 0);
    /* Everyone rate limited: 429 with the smallest hint. */
    reset_run();
    http("a", 429, NULL)->retry_after = "3";
    http("a", 429, NULL)->retry_after = "3";
    http("b", 429, NULL)->retry_after = "2";
    run("/ab", 0);
    ck_asked("a a b");
    ck_seq("error 429");
    ck_assert_int_eq(json_integer_value(json_object_get(got_ev(0), "retry_after")), SEC(2));
}
END_TEST

START_TEST(test_quota_sits_the_member_out)
{
    http("a", 429, oai_error("You exceeded your current quota.", "insufficient_quota"));
    oai_ok("b", "b has quota");
    run("/ab", 0);
    ck_asked("a b");
    ck_assert_int_eq(slept(), 0);
    ck_assert_int_eq(llmgw_stats_peek(slot("a"), fake_now(NULL)), LLMGW_STATS_COOLING);
    reset_run();
    oai_ok("b", "a skipped");
    run("/ab", 0);
    ck_asked("b");
}
END_TEST

START_TEST(test_5xx_retried_then_failed_over_then_503)
{
    http("a", 500, NULL);
    http("a", 503, NULL);
    oai_ok("b", "b is up");
    run("/ab", 0);
    ck_asked("a a b");
    ck_seq("answer");
    reset_run();
    http("a", 502, NULL);
    http("a", 529, NULL);
    run("/a", 0);
    ck_seq("error 503");
    ck_assert_str_eq(err_code(), "upstream_unavailable");
}
END_TEST

START_TEST(test_tool_use_failed_is_retried_once)
{
    const char *e = oai_error("Failed to call a function.", "tool_use_failed");

    http("a", 400, e);
    oai_ok("a", "second try");
    run("/ab", 0);
    ck_asked("a a");
    ck_seq("answer");
    /* Once only: then the next member. */
    reset_run();
    http("a", 400, e);
    http("a", 400, e);
    oai_ok("b", "b calls it");
    run("/ab", 0);
    ck_asked("a a b");
}
END_TEST

START_TEST(test_max_attempts_caps_the_request)
{
    http("a", 500, NULL); /* a may retry once, but the cap keeps the last attempt for b */
    http("b", 500, NULL);
    run("/cap", 0);
    ck_asked("a b");
    ck_seq("error 503");
    ck_assert_int_eq(W->res->attempts, 2);
}
END_TEST

START_TEST(test_unknown_model_is_404_before_any_provider)
{
    run_body("/ab", chat(0, "nope"));
    ck_asked("");
    ck_seq("error 404");
    ck_assert_str_eq(err_code(), "model_not_found");
    ck_assert_int_eq(W->res->attempts, 0);
}
END_TEST

START_TEST(test_refused_resend_is_counted_and_retried)
{
    fail_with("a", LLMGW_FAIL_RESET)->resend_refused = 1;
    oai_ok("a", "fresh connection");
    run("/a", 0);
    ck_asked("a a");
    ck_assert_int_eq(W->res->attempts, 2);
    ck_assert_int_eq(notes_of(LLMGW_NOTE_RESEND), 1);
}
END_TEST

/* ====================================================================== */
/* Streams                                                                */

START_TEST(test_stream_preamble_held_until_content)
{
    int roles, finishes;
    answer_t *a = oai_stream("a", "echo: |one |two");

    a->gap = MS(300);
    run("/ab", 1);
    ck_seq("open P C C C C F close");
    /* The role chunk left with the first content, not 300 ms before it. */
    ck_assert_int_eq(json_integer_value(json_object_get(got_ev(0), "t")),
                     json_integer_value(json_object_get(got_ev(2), "t")));
    ck_assert_str_eq(text(&roles, &finishes), "echo: one two");
    ck_assert_int_eq(roles, 1);
    ck_assert_int_eq(finishes, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(chunk_at(-2), "usage"),
                                                        "completion_tokens")),
                     3);
    ck_assert_int_eq(W->res->usage.present, 1);
    ck_assert_int_eq(W->res->usage.prompt_tokens, 7);
    ck_assert_int_eq(W->res->committed, 1);
}
END_TEST

START_TEST(test_stream_cut_before_content_is_retried_invisibly)
{
    int roles, finishes;

    cut(oai_stream("a", "lost"), 1, END_RESET); /* the role chunk, then the cut */
    oai_stream("a", "echo: |again");
    run("/ab", 1);
    ck_asked("a a");
    ck_seq("open P C C C F close");
    ck_assert_str_eq(text(&roles, &finishes), "echo: again");
    ck_assert_int_eq(roles, 1);
}
END_TEST

START_TEST(test_stream_without_done_after_its_finish_is_complete)
{
    answer_t *a = oai_stream("a", "echo: |done");

    a->events->nelts--; /* no [DONE] */
    run("/a", 1);
    ck_asked("a");
    ck_seq("open P C C C F close");
    ck_assert_int_eq(W->res->answered, 1);
}
END_TEST

/* One unparseable event inside a healthy stream is skipped, noted, counted. */
START_TEST(test_malformed_event_is_skipped)
{
    int roles, finishes;
    answer_t *a = oai_stream("a", "echo: |one |two");

    insert_event(a, 3, malformed_event);
    run("/a", 1);
    ck_asked("a");
    ck_seq("open P C C C C F close");
    ck_assert_str_eq(text(&roles, &finishes), "echo: one two");
    ck_assert_int_eq(W->res->answered, 1);
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_PROTOCOL), 1);
    ck_assert_uint_eq(counts("a").successes, 1);
    ck_assert_int_eq(notes_of(LLMGW_NOTE_MALFORMED), 1);
    ck_assert_str_eq(note_of(LLMGW_NOTE_MALFORMED)->backend->name, "a");
    /* Two are still a healthy stream, noted once. */
    reset_run();
    a = oai_stream("a", "echo: |one |two");
    insert_event(a, 3, malformed_event);
    insert_event(a, 1, malformed_event);
    run("/a", 1);
    ck_seq("open P C C C C F close");
    ck_assert_int_eq(notes_of(LLMGW_NOTE_MALFORMED), 1);
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_PROTOCOL), 3);
}
END_TEST

/* A stream that keeps sending garbage fails at the threshold. */
START_TEST(test_garbage_stream_fails)
{
    answer_t *a = oai_stream("a", "echo: |one |two");
    int i;

    for (i = 0; i <= LLMGW_DISPATCH_MAX_MALFORMED; i++)
        insert_event(a, 3, malformed_event);
    run("/a", 1);
    ck_asked("a");
    ck_seq("open P C C abort 502");
    ck_assert_str_eq(err_message(), "upstream kept sending malformed stream events");
    ck_assert_int_eq(notes_of(LLMGW_NOTE_GARBAGE), 1);
    /* Before any content: retried invisibly like any protocol failure. */
    reset_run();
    a = oai_stream("a", "echo: |one");
    for (i = 0; i <= LLMGW_DISPATCH_MAX_MALFORMED; i++)
        insert_event(a, 1, malformed_event);
    oai_stream("a", "echo: |clean");
    run("/a", 1);
    ck_asked("a a");
    ck_seq("open P C C C F close");
}
END_TEST

START_TEST(test_cut_after_content_without_recovery_ends_with_an_error_event)
{
    int roles, finishes;

    cut(oai_stream("a", "echo: |one |two |three"), 3, END_RESET);
    run("/abcn", 1);
    ck_asked("a"); /* content reached the client: no fallback */
    ck_seq("open P C C abort 502");
    ck_assert_str_eq(text(&roles, &finishes), "echo: one ");
    ck_assert_int_eq(finishes, 0);
    ck_assert_int_eq(W->res->answered, 0);
    ck_assert_int_eq(W->res->fail, LLMGW_FAIL_RESET);
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_PROTOCOL), 1);
    ck_assert_uint_eq(errors("abc", LLMGW_STATS_ERR_PROTOCOL), 1);
    /* A stall after content: the same, as a timeout. */
    reset_run();
    cut(oai_stream("a", "echo: |one |two |three"), 3, END_STALL);
    run("/abcn", 1);
    ck_seq("open P C C abort 504");
    ck_assert_str_eq(err_code(), "upstream_timeout");
}
END_TEST

/*
 * streamRecovery continue: a is cut after "echo: one "; b declares no prefill
 * and is skipped; c (anthropic, prefill) continues from "echo: one" and its
 * continuation is spliced in.
 */
START_TEST(test_continue_splices_the_continuation)
{
    int roles, finishes, prefix;
    const llmgw_dispatch_note_t *n;

    cut(oai_stream("a", "echo: |one |two |three |four"), 3, END_RESET);
    anth_stream("c", " two| three| four");
    run("/abc", 1);
    ck_asked("a c");
    ck_assert_str_eq(prefill_of(req(1), &prefix), "echo: one"); /* no trailing space */
    ck_assert_str_eq(text(&roles, &finishes), "echo: one two three four");
    ck_assert_int_eq(roles, 1);
    ck_assert_int_eq(finishes, 1);
    ck_seq("open P C C C C C C F close");
    assert_one_id("chatcmpl-a");
    ck_assert_str_eq(llmgw_json_str(chunk_at(-2), "model"), "m-a");
    ck_assert_int_eq(json_integer_value(json_object_get(chunk_at(-2), "created")), 1700000001);
    ck_assert_int_eq(W->res->answered, 1);
    ck_assert_int_eq(W->res->recovered, 1);
    ck_assert_int_eq(W->res->attempts, 2);
    ck_assert_int_eq(try_at(0)->fail, LLMGW_FAIL_RESET);
    ck_assert_int_eq(try_at(0)->content_sent, 1);
    ck_assert_int_eq(try_at(0)->prefill, 0);
    ck_assert_int_eq(try_at(1)->fail, LLMGW_FAIL_NONE);
    ck_assert_int_eq(try_at(1)->prefill, 1);
    ck_assert_str_eq(W->res->backend->name, "c");
    n = note_of(LLMGW_NOTE_RECOVERING);
    ck_assert_str_eq(n->backend->name, "a");
    ck_assert_uint_eq(n->count, strlen("echo: one "));
    /* a's cut counts for a, the answer for c. */
    ck_assert_int_eq(errors("a", LLMGW_STATS_ERR_PROTOCOL), 1);
    ck_assert_uint_eq(counts("c").successes, 1);
    ck_assert_uint_eq(counts("abc").successes, 1);
}
END_TEST

/* The usage chunk sums every attempt the answer came from (c reported 11 + 1 before its cut). */
START_TEST(test_continue_sums_the_usage)
{
    int roles, finishes, prefix;
    json_t *usage;

    cut(anth_stream("c", "echo: |one |two"), 4, END_STALL); /* start, block, 2 deltas */
    oai_stream("m", "two");
    run("/cm", 1);
    ck_asked("c m");
    ck_assert_str_eq(prefill_of(req(1), &prefix), "echo: one");
    ck_assert_int_eq(prefix, 1); /* Mistral: prefix: true */
    ck_assert_str_eq(text(&roles, &finishes), "echo: one two");
    usage = json_object_get(chunk_at(-2), "usage");
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "prompt_tokens")), 11 + 7);
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "completion_tokens")), 1 + 1);
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "total_tokens")), 20);
    ck_assert_int_eq(W->res->usage.prompt_tokens, 18);
    ck_assert_int_eq(W->res->usage.completion_tokens, 2);
    ck_assert_int_eq(try_at(0)->usage.prompt_tokens, 11);
    ck_assert_int_eq(try_at(1)->usage.prompt_tokens, 7);
    assert_one_id(llmgw_json_str(chunk_at(1), "id"));
}
END_TEST

/* Whitespace the prefill lost is sent once, however the continuation splits it. */
START_TEST(test_continue_whitespace_once)
{
    int roles, finishes, prefix;

    cut(oai_stream("a", "echo:|\n\n|one"), 3, END_RESET);
    anth_stream("c", "\n|\nnext| line");
    run("/abc", 1);
    ck_assert_str_eq(prefill_of(req(1), &prefix), "echo:");
    ck_assert_str_eq(text(&roles, &finishes), "echo:\n\nnext line");
}
END_TEST

/* A prefill member failing before content: the next prefill member takes over. */
START_TEST(test_continue_falls_over_between_prefill_members)
{
    int roles, finishes, prefix;

    cut(oai_stream("a", "echo: |one |two"), 3, END_RESET);
    http("m", 503, NULL);
    oai_stream("b", "not asked");
    run("/am", 1);
    ck_asked("a m");
    ck_seq("open P C C abort 503"); /* the last failure: recovery's */
    /* no prefill member is left: the error event of the cut, never b */
    reset_run();
    cut(oai_stream("a", "echo: |one |two"), 3, END_RESET);
    run("/abcn", 1);
    ck_asked("a");
    ck_seq("open P C C abort 502");
    (void)roles;
    (void)finishes;
    (void)prefix;
}
END_TEST

/* A cut inside a tool call cannot be prefilled: continue answers the error event. */
START_TEST(test_continue_refuses_a_tool_call)
{
    answer_t *a = answer("a");

    a->events = apr_array_make(test_pool, 4, sizeof(const char *));
    APR_ARRAY_PUSH(a->events, const char *) =
        frame(oai_chunk("a", json_pack("{s:s, s:n}", "role", "assistant", "content"), NULL));
    APR_ARRAY_PUSH(a->events, const char *) = frame(oai_chunk(
        "a",
        json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", 0, "id", "call_1",
                  "type", "function", "function", "name", "weather", "arguments", "{\"ci"),
        NULL));
    a->end = END_RESET;
    run("/abc", 1);
    ck_asked("a");
    ck_seq("open P C abort 502");
}
END_TEST

/* streamRecovery buffer: nothing reaches the client until the answer is complete. */
START_TEST(test_buffer_retries_invisibly_and_releases_at_once)
{
    int roles, finishes;
    answer_t *b;
    size_t i;
    json_t *ev;

    W->wants_json = 1;
    cut(oai_stream("a", "echo: |one |two"), 4, END_RESET);
    cut(oai_stream("a", "echo: |one |two"), 3, END_STALL);
    b = oai_stream("b", "echo: |whole |answer");
    b->gap = MS(100);
    run("/abuf", 1);
    ck_asked("a a b");
    ck_seq("open P C C C C F close");
    ck_assert_str_eq(text(&roles, &finishes), "echo: whole answer");
    ck_assert_int_eq(roles, 1);
    /* All of it at once, when b's stream was over. */
    json_array_foreach (W->got, i, ev)
        ck_assert_int_eq(json_integer_value(json_object_get(ev, "t")), req(2)->t_end - T0);
    ck_assert_int_eq(W->res->answered, 1);
    /* A tool call cut: recovered too. */
    reset_run();
    cut(oai_stream("a", "echo: |x"), 2, END_RESET);
    http("a", 500, NULL);
    oai_stream("b", "fine");
    run("/abuf", 1);
    ck_asked("a a b");
    ck_seq("open P C C F close");
}
END_TEST

/* A held answer larger than max_body is released and streams on, without recovery. */
START_TEST(test_buffer_limit_streams_on)
{
    int roles, finishes;

    W->max_body = 600; /* about three frames */
    cut(oai_stream("a", "echo: |one |two |three |four"), 6, END_RESET);
    run("/abuf", 1);
    ck_asked("a"); /* its content reached the client: no retry, no fallback */
    ck_assert_str_eq(text(&roles, &finishes), "echo: one two three four");
    ck_assert_int_eq(finishes, 0);
    ck_seq("open P C C C C C abort 502");
    ck_assert_int_eq(notes_of(LLMGW_NOTE_BUFFER_LIMIT), 1);
}
END_TEST

/* Every attempt failing: a plain JSON error, the stream was never opened. */
START_TEST(test_buffer_all_failed_is_a_plain_error)
{
    cut(oai_stream("a", "echo: |one |two"), 4, END_RESET);
    cut(oai_stream("a", "echo: |one |two"), 4, END_RESET);
    http("b", 503, NULL);
    run("/abuf", 1);
    ck_seq("error 503");
    ck_assert_int_eq(W->res->committed, 0);
}
END_TEST

/* ====================================================================== */
/* The client leaves                                                      */

START_TEST(test_client_gone_during_a_backoff)
{
    http("a", 429, NULL)->retry_after = "3";
    W->gone_at = T0 + SEC(1);
    run("/ab", 0);
    ck_asked("a");
    ck_seq("");
    ck_assert_int_eq(W->res->client_gone, 1);
    ck_assert_int_lt(slept(), SEC(2));
}
END_TEST

/*
 * One flush per upstream read, however many frames it produced: the sink
 * queues chunks and the dispatcher flushes once after each read, and not
 * after the read that closed the stream (close sends what is queued).
 */
START_TEST(test_stream_one_flush_per_read)
{
    answer_t *a = oai_stream("a", "one|two|three|four");

    a->batch = 3; /* [role one two] [three four finish] [usage DONE] */
    run("/a", 1);
    ck_seq("open P C C C C C F close");
    ck_assert_int_eq(W->flushes->nelts, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(W->flushes, 0, int), 3);
    ck_assert_int_eq(APR_ARRAY_IDX(W->flushes, 1, int), 6);
}
END_TEST

/*
 * A chat client reads frames only: the openai translator reads its chunks
 * sparsely (llmgw_stream_t.frames_only). A sink that reads the JSON, and a
 * continuation route (which tracks the content), get whole chunks.
 */
START_TEST(test_chunks_read_sparsely_only_for_frames)
{
    int before;

    oai_stream("a", "one|two");
    run("/a", 1);
    ck_seq("open P C C C F close");
    ck_assert_int_gt(W->sparse_chunks, 0);

    W->sparse_chunks = 0;
    W->wants_json = 1;
    before = W->chunks;
    oai_stream("a", "one|two");
    run("/a", 1);
    ck_assert_int_eq(W->chunks - before, 5);
    ck_assert_int_eq(W->sparse_chunks, 0);

    W->wants_json = 0;
    before = W->chunks;
    oai_stream("a", "one|two");
    run("/abc", 1);
    ck_assert_int_eq(W->chunks - before, 5);
    ck_assert_int_eq(W->sparse_chunks, 0);
}
END_TEST

/*
 * OpenAI adds "usage":null to every chunk once the gateway asks for usage;
 * a client that did not ask gets each chunk without it, cut out of the
 * upstream's bytes (first, middle or last member), the rest as sent.
 */
START_TEST(test_usage_null_cut_from_verbatim_chunks)
{
    static const char *const events[] = {
        "data: {\"usage\":null,\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\", \"usage\":null, \"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"one\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"two\"},"
        "\"finish_reason\":null}] , \"usage\" : null }\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
        "\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,"
        "\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
        "data: [DONE]\n\n"};
    answer_t *a = answer("a");
    json_t *body = chat(1, NULL);
    size_t i;

    json_object_del(body, "stream_options"); /* the client does not ask for usage */
    a->events = apr_array_make(test_pool, 8, sizeof(const char *));
    for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        APR_ARRAY_PUSH(a->events, const char *) = events[i];
    run_body("/a", body);
    ck_seq("open P C C C close");
    ck_assert_int_eq(W->res->usage.total_tokens, 9);
    ck_assert_str_eq(APR_ARRAY_IDX(W->texts, 0, const char *),
                     "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                     "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    ck_assert_str_eq(APR_ARRAY_IDX(W->texts, 1, const char *),
                     "data: {\"id\":\"c1\", \"choices\":[{\"index\":0,\"delta\":"
                     "{\"content\":\"one\"},\"finish_reason\":null}]}\n\n");
    ck_assert_str_eq(APR_ARRAY_IDX(W->texts, 2, const char *),
                     "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"two\"},\"finish_reason\":null}]  }\n\n");
    ck_assert_str_eq(APR_ARRAY_IDX(W->texts, 3, const char *),
                     "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},"
                     "\"finish_reason\":\"stop\"}]}\n\n");
    ck_assert_int_eq(W->sparse_chunks, 3); /* the held opening comes back as bytes only */
}
END_TEST

START_TEST(test_client_gone_mid_stream)
{
    answer_t *a = oai_stream("a", "echo: |one |two |three");

    W->gone_after_chunks = 2;
    run("/abc", 1);
    ck_asked("a");
    ck_seq("open P C");
    ck_assert_int_eq(W->res->client_gone, 1);
    ck_assert_int_eq(try_at(0)->fail, LLMGW_FAIL_CLIENT_GONE);
    ck_assert_uint_eq(counts("a").aborted, 1);
    (void)a;
}
END_TEST

/* ====================================================================== */
/* Cooldown                                                               */

/* DESIGN.md 6: short at first, doubling after each failed probe, reset by a success. */
START_TEST(test_adaptive_cooldown)
{
    http("a", 500, NULL);
    oai_ok("b", "1");
    run("/cool", 0);
    ck_asked("a b");
    ck_assert_int_eq(llmgw_stats_cooldown_period(slot("a")), SEC(2));
    /* Skipped while cooling. */
    reset_run();
    W->clock += SEC(1);
    oai_ok("b", "2");
    run("/cool", 0);
    ck_asked("b");
    /* The probe fails: twice as long. */
    reset_run();
    W->clock += SEC(1);
    http("a", 500, NULL);
    oai_ok("b", "3");
    run("/cool", 0);
    ck_asked("a b");
    ck_assert_int_eq(llmgw_stats_cooldown_period(slot("a")), SEC(4));
    ck_assert_int_eq((apr_time_t)slot("a")->cooldown_until - W->clock,
                     SEC(4) - MS(20)); /* from a's failure; b took 20 ms since */
    /* The next probe answers: the member is back, and its next cooldown short again. */
    reset_run();
    W->clock += SEC(4);
    oai_ok("a", "back");
    run("/cool", 0);
    ck_asked("a");
    ck_assert_int_eq(llmgw_stats_cooldown_period(slot("a")), 0);
    ck_assert_int_eq(llmgw_stats_peek(slot("a"), fake_now(NULL)), LLMGW_STATS_AVAILABLE);
}
END_TEST

/* Every probe outcome releases the probe: here a client 4xx. */
START_TEST(test_probe_released_on_a_client_error)
{
    http("a", 500, NULL);
    oai_ok("b", "1");
    run("/cool", 0);
    reset_run();
    W->clock += SEC(3);
    http("a", 400, oai_error("not for this model", NULL));
    run("/cool", 0);
    ck_asked("a");
    ck_seq("error 400");
    ck_assert_int_eq(llmgw_stats_peek(slot("a"), fake_now(NULL)), LLMGW_STATS_PROBE);
}
END_TEST

/* ====================================================================== */

/* ---------------------------------------------------------------------- */
/* A translator chosen per candidate (a client dialect's passthrough)      */

static apr_status_t raw_build(llmgw_call_t *call, llmgw_http_request_t *out, llmgw_error_t **err)
{
    out->method = "POST";
    out->url = "http://c2/native";
    out->headers = apr_array_make(call->pool, 1, sizeof(const char *));
    out->body = "{\"native\":true}";
    out->body_len = strlen(out->body);
    return APR_SUCCESS;
}

static apr_status_t raw_parse(llmgw_call_t *call, const char *body, apr_size_t len,
                              llmgw_response_t *out, llmgw_error_t **err)
{
    out->body = body;
    out->len = len;
    out->usage.present = 1;
    out->usage.prompt_tokens = 5;
    out->model = "native-model";
    return APR_SUCCESS;
}

static llmgw_error_t *raw_error(llmgw_call_t *call, int status, const char *body, apr_size_t len)
{
    return llmgw_error_make(call->pool, status, NULL, "native_error", NULL, "native %d", status);
}

static const llmgw_provider_t raw_provider = {
    .type = "raw",
    .apis = LLMGW_API_CHAT,
    .build_request = raw_build,
    .parse_response = raw_parse,
    .parse_error = raw_error,
};

START_TEST(test_translator_per_candidate)
{
    W->translator = &raw_provider;
    W->translate_for = "m";
    fail_with("c", LLMGW_FAIL_CONNECT);
    answer("c2")->body = "{\"native\":\"answer\"}";
    run("/cm", 0);
    ck_assert_msg(W->res->answered, "attempts %d, last %s, %s", W->res->attempts,
                  W->res->backend ? W->res->backend->name : "-",
                  W->res->error ? W->res->error->message : "-");
    ck_assert_str_eq(W->res->backend->name, "m");
    ck_assert_str_eq(W->res->model, "native-model");
    ck_assert_int_eq(W->res->usage.prompt_tokens, 5);
    /* c got the anthropic translation, m the other translator's request as it is. */
    ck_assert_ptr_nonnull(json_object_get(req(0)->body, "messages"));
    ck_assert_ptr_nonnull(json_object_get(req(0)->body, "max_tokens"));
    ck_assert(json_is_true(json_object_get(req(1)->body, "native")));
    ck_assert_str_eq(llmgw_json_str(json_object_get(got_ev(0), "body"), "native"), "answer");
}
END_TEST

static Suite *dispatch_suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("table");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_connect_error_retried_then_failed_over);
    tcase_add_test(tc, test_nested_pool_counts_its_own_fallback);
    tcase_add_test(tc, test_connect_error_exhausted_is_502);
    tcase_add_test(tc, test_first_byte_timeout_fails_over_at_once);
    tcase_add_test(tc, test_first_byte_timeout_lone_is_504_after_one_attempt);
    tcase_add_test(tc, test_first_token_timeout_fails_over);
    tcase_add_test(tc, test_first_token_timeout_lone_is_504);
    tcase_add_test(tc, test_400_is_final_with_the_provider_message);
    tcase_add_test(tc, test_context_window_tries_the_context_fallback_first);
    tcase_add_test(tc, test_context_window_lone_backend_uses_its_fallback);
    tcase_add_test(tc, test_content_filter_is_final);
    tcase_add_test(tc, test_401_fails_over_and_cools_the_member);
    tcase_add_test(tc, test_401_with_a_minted_token_reauths_once);
    tcase_add_test(tc, test_402_and_404_fail_over);
    tcase_add_test(tc, test_408_409_retried_413_final);
    tcase_add_test(tc, test_422_reaches_the_client_as_400);
    tcase_add_test(tc, test_429_retry_after);
    tcase_add_test(tc, test_quota_sits_the_member_out);
    tcase_add_test(tc, test_5xx_retried_then_failed_over_then_503);
    tcase_add_test(tc, test_tool_use_failed_is_retried_once);
    tcase_add_test(tc, test_max_attempts_caps_the_request);
    tcase_add_test(tc, test_unknown_model_is_404_before_any_provider);
    tcase_add_test(tc, test_refused_resend_is_counted_and_retried);
    suite_add_tcase(s, tc);

    tc = tcase_create("streams");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stream_preamble_held_until_content);
    tcase_add_test(tc, test_stream_cut_before_content_is_retried_invisibly);
    tcase_add_test(tc, test_stream_without_done_after_its_finish_is_complete);
    tcase_add_test(tc, test_malformed_event_is_skipped);
    tcase_add_test(tc, test_garbage_stream_fails);
    tcase_add_test(tc, test_cut_after_content_without_recovery_ends_with_an_error_event);
    tcase_add_test(tc, test_continue_splices_the_continuation);
    tcase_add_test(tc, test_continue_sums_the_usage);
    tcase_add_test(tc, test_continue_whitespace_once);
    tcase_add_test(tc, test_continue_falls_over_between_prefill_members);
    tcase_add_test(tc, test_continue_refuses_a_tool_call);
    tcase_add_test(tc, test_buffer_retries_invisibly_and_releases_at_once);
    tcase_add_test(tc, test_buffer_all_failed_is_a_plain_error);
    tcase_add_test(tc, test_buffer_limit_streams_on);
    suite_add_tcase(s, tc);

    tc = tcase_create("client_and_cooldown");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_client_gone_during_a_backoff);
    tcase_add_test(tc, test_client_gone_mid_stream);
    tcase_add_test(tc, test_stream_one_flush_per_read);
    tcase_add_test(tc, test_chunks_read_sparsely_only_for_frames);
    tcase_add_test(tc, test_usage_null_cut_from_verbatim_chunks);
    tcase_add_test(tc, test_adaptive_cooldown);
    tcase_add_test(tc, test_probe_released_on_a_client_error);
    tcase_add_test(tc, test_translator_per_candidate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(dispatch_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
