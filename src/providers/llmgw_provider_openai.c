/*
 * The `openai` translator (providers.md 3): a near pass-through.
 *
 * Requests keep every client field, unknown ones included; only `model` is
 * replaced and the stream fields are adjusted. Legacy `functions` /
 * `function_call` are forwarded as they are: OpenAI still accepts them and
 * answers in the legacy shape, so normalising here would also force us to
 * convert every answer back (providers.md 2.1 rule 4) for no gain.
 *
 * Streams are always asked for usage upstream (the gateway accounts tokens
 * even when the client did not ask); when the client did not ask, the usage
 * chunk is dropped and the `"usage":null` members are removed, so the
 * client sees exactly what OpenAI would have sent it (providers.md 2.4).
 *
 * Memory: everything per request comes from call->pool; per stream event
 * only jansson's heap and a stack buffer are used, so a long stream does not
 * grow the request pool.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_json.h"

#define OPENAI_DEFAULT_ENDPOINT "https://api.openai.com/v1"

/* Upstream messages longer than this (bytes) are cut, "..." included. */
#define OPENAI_MAX_MESSAGE 2000

/* OpenAI caps n at 128; anything far above is a broken upstream, not a
 * reason to grow the request pool. */
#define OPENAI_MAX_CHOICES 1024

/* Most chunks are a few hundred bytes: frame them on the stack. */
#define OPENAI_FRAME_STACK 4096

#define SSE_PREFIX "data: "
#define SSE_PREFIX_LEN (sizeof(SSE_PREFIX) - 1)
#define SSE_DONE "data: [DONE]\n\n"

/* Stream state kept in llmgw_stream_t.priv, from call->pool. */
typedef struct {
    unsigned char *finished; /* per choice index: a finish_reason arrived */
    int cap;                 /* slots in finished */
    int seen;                /* highest choice index seen + 1 */
    int expected;            /* choices the request asked for (n) */
    int nfinished;           /* indexes with a finish_reason */
} openai_stream_t;

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

static void push_header(apr_array_header_t *h, const char *line)
{
    APR_ARRAY_PUSH(h, const char *) = line;
}

static apr_array_header_t *make_headers(llmgw_call_t *call, int stream)
{
    const llmgw_backend_t *b = call->backend;
    apr_pool_t *p = call->pool;
    apr_array_header_t *h = apr_array_make(p, 7, sizeof(const char *));

    if (b->api_key && *b->api_key)
        push_header(h, apr_pstrcat(p, "Authorization: Bearer ", b->api_key, NULL));
    if (b->org_id && *b->org_id)
        push_header(h, apr_pstrcat(p, "OpenAI-Organization: ", b->org_id, NULL));
    if (b->project && *b->project)
        push_header(h, apr_pstrcat(p, "OpenAI-Project: ", b->project, NULL));
    push_header(h, "Content-Type: application/json");
    push_header(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    push_header(h, "Expect:");
    return h;
}

/*
 * Make @p body (a shallow copy of the client's) ask for what we need. A
 * streamed answer must carry usage; a non-streamed request must not carry
 * stream_options at all (OpenAI answers 400 to it).
 */
static void set_stream_fields(json_t *body, int stream)
{
    json_t *opts;

    if (!stream) {
        json_object_del(body, "stream_options");
        if (json_is_true(json_object_get(body, "stream")))
            json_object_del(body, "stream");
        return;
    }
    json_object_set_new(body, "stream", json_true());
    opts = json_object_get(body, "stream_options");
    if (json_is_object(opts))
        opts = json_copy(opts); /* the client's object is shared: never edit it */
    else if (!opts || json_is_null(opts))
        opts = json_object();
    else
        return; /* a wrong type: OpenAI's own 400 tells the client best */
    json_object_set_new(opts, "include_usage", json_true());
    json_object_set_new(body, "stream_options", opts);
}

static apr_status_t openai_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                         llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    const char *base = b->endpoint ? b->endpoint : OPENAI_DEFAULT_ENDPOINT;
    const char *path;
    int stream = 0;
    json_t *body;

    switch (call->api) {
    case LLMGW_API_CHAT:
        path = "/chat/completions";
        stream = call->stream;
        break;
    case LLMGW_API_EMBEDDINGS:
        path = "/embeddings";
        break;
    default:
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "backend \"%s\" (openai) does not serve this API", b->name);
        return LLMGW_EUNSUPPORTED;
    }
    if (!json_is_object(call->body)) {
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "the request body must be a JSON object");
        return LLMGW_EBADREQ;
    }

    /* Shallow: members stay shared with the client's body, so top-level
     * members may be replaced or removed but never edited in place. */
    body = json_copy(call->body);
    if (!body)
        return APR_ENOMEM;
    if (json_object_set_new(body, "model", json_string(call->model)) != 0) {
        json_decref(body);
        *err = llmgw_error_make(call->pool, 400, NULL, "invalid_value", "model",
                                "the model name is not valid UTF-8");
        return LLMGW_EBADREQ;
    }
    if (call->api == LLMGW_API_CHAT)
        set_stream_fields(body, stream);
    out->body = llmgw_json_dump(call->pool, body, &out->body_len);
    json_decref(body);
    if (!out->body)
        return APR_ENOMEM;

    out->method = "POST";
    out->url = apr_pstrcat(call->pool, base, path, NULL);
    out->headers = make_headers(call, stream);
    out->stream = stream;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

/* A token count, or 0 when absent or nonsense; returns 1 when present. */
static int usage_count(const json_t *usage, const char *key, apr_int64_t *out)
{
    json_t *v = json_object_get(usage, key);
    double d;

    *out = 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (apr_int64_t)json_integer_value(v);
        return 1;
    }
    /* Some OpenAI-compatible servers write counts as 12.0. */
    d = json_is_real(v) ? json_real_value(v) : -1.0;
    if (d >= 0.0 && d < 9007199254740992.0) {
        *out = (apr_int64_t)d;
        return 1;
    }
    return 0;
}

static void read_usage(const json_t *usage, llmgw_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(usage))
        return;
    out->present = 1;
    usage_count(usage, "prompt_tokens", &out->prompt_tokens);
    usage_count(usage, "completion_tokens", &out->completion_tokens);
    if (!usage_count(usage, "total_tokens", &out->total_tokens))
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
}

static llmgw_error_t *bad_response(apr_pool_t *p)
{
    return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                            "upstream returned an invalid response");
}

/* A 2xx body that is only an error report is no answer for the client. */
static int is_error_only(const llmgw_call_t *call, const json_t *j)
{
    const char *payload = call->api == LLMGW_API_EMBEDDINGS ? "data" : "choices";
    json_t *e = json_object_get(j, "error");

    return e && !json_is_null(e) && !json_object_get(j, payload);
}

static apr_status_t openai_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                          llmgw_response_t *out, llmgw_error_t **err)
{
    json_t *j = json_loadb(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, NULL);
    const char *model;

    if (!json_is_object(j) || is_error_only(call, j)) {
        json_decref(j);
        *err = bad_response(call->pool);
        return LLMGW_EUPSTREAM;
    }
    read_usage(json_object_get(j, "usage"), &out->usage);
    model = llmgw_json_str(j, "model");
    out->model = model && *model ? apr_pstrdup(call->pool, model) : call->model;
    /* Re-serialised rather than forwarded, so the client always gets one
     * valid JSON document whatever bytes surrounded it upstream. */
    out->body = llmgw_json_dump(call->pool, j, &out->len);
    json_decref(j);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/* A copy of @p s of at most OPENAI_MAX_MESSAGE bytes, cut on a UTF-8 boundary. */
static const char *clip_message(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s);
    apr_size_t cut = OPENAI_MAX_MESSAGE - 3;

    if (n <= OPENAI_MAX_MESSAGE)
        return apr_pstrdup(p, s);
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return apr_pstrcat(p, apr_pstrmemdup(p, s, cut), "...", NULL);
}

/* Error codes are strings in OpenAI's shape; some compatible servers send numbers. */
static const char *error_code(apr_pool_t *p, const json_t *e)
{
    json_t *v = json_object_get(e, "code");

    if (json_is_string(v) && *json_string_value(v))
        return apr_pstrdup(p, json_string_value(v));
    if (json_is_integer(v))
        return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(v));
    return NULL;
}

static const char *opt_str(apr_pool_t *p, const json_t *e, const char *key)
{
    const char *s = llmgw_json_str(e, key);
    return s && *s ? apr_pstrdup(p, s) : NULL;
}

static llmgw_error_t *generic_error(apr_pool_t *p, int status)
{
    return llmgw_error_make(p, status, NULL, NULL, NULL, "upstream returned HTTP %d", status);
}

static llmgw_error_t *error_from_object(apr_pool_t *p, int status, const json_t *e)
{
    const char *msg = llmgw_json_str(e, "message");

    if (msg && *msg)
        msg = clip_message(p, msg);
    else
        msg = apr_psprintf(p, "upstream returned HTTP %d", status);
    return llmgw_error_make(p, status, opt_str(p, e, "type"), error_code(p, e),
                            opt_str(p, e, "param"), "%s", msg);
}

static llmgw_error_t *openai_parse_error(llmgw_call_t *call, int status, const char *body,
                                         apr_size_t len)
{
    apr_pool_t *p = call->pool;
    json_t *j, *e;
    llmgw_error_t *out;

    /* The gateway's own key was refused: not the client's fault, and
     * OpenAI's 401 text echoes part of the key, so none of it goes out. */
    if (status == 401 || status == 403)
        return llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                                "the upstream rejected the gateway's credentials (HTTP %d)",
                                status);
    /* Only error statuses are passed on as they are. */
    if (status < 400 || status > 599)
        return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                                "upstream returned HTTP %d", status);

    j = body && len ? json_loadb(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    e = json_object_get(j, "error");
    out = json_is_object(e) ? error_from_object(p, status, e) : generic_error(p, status);
    json_decref(j);
    return out;
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

static apr_status_t stream_fail(llmgw_stream_t *st, apr_status_t rv, const char *msg)
{
    st->error =
        llmgw_error_make(st->call->pool, 502, "server_error", "bad_gateway", NULL, "%s", msg);
    return rv;
}

static apr_status_t malformed(llmgw_stream_t *st)
{
    return stream_fail(st, LLMGW_EUPSTREAM, "upstream sent a malformed stream event");
}

static apr_status_t incomplete(llmgw_stream_t *st)
{
    return stream_fail(st, LLMGW_ESTREAM, "upstream stream ended before the response was complete");
}

static apr_status_t openai_stream_init(llmgw_stream_t *st)
{
    openai_stream_t *os = apr_pcalloc(st->call->pool, sizeof(*os));
    json_t *n = json_object_get(st->call->body, "n");

    os->expected = 1;
    if (json_is_integer(n) && json_integer_value(n) > 1 &&
        json_integer_value(n) <= OPENAI_MAX_CHOICES)
        os->expected = (int)json_integer_value(n);
    st->priv = os;
    return APR_SUCCESS;
}

/* Frame @p j as "data: <json>\n\n" and hand it to the client. */
static apr_status_t emit_json(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *j)
{
    char stack[OPENAI_FRAME_STACK];
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    size_t total = SSE_PREFIX_LEN + n + 2;
    char *buf;
    apr_status_t rv;

    if (n == 0)
        return APR_ENOMEM;
    buf = total <= sizeof(stack) ? stack : malloc(total);
    if (!buf)
        return APR_ENOMEM;
    memcpy(buf, SSE_PREFIX, SSE_PREFIX_LEN);
    json_dumpb(j, buf + SSE_PREFIX_LEN, n, JSON_COMPACT);
    memcpy(buf + SSE_PREFIX_LEN + n, "\n\n", 2);
    rv = st->emit(st->baton, kind, buf, total);
    if (buf != stack)
        free(buf);
    if (rv == APR_SUCCESS && kind == LLMGW_CHUNK_CONTENT)
        st->content_emitted = 1;
    return rv;
}

static apr_status_t emit_done(llmgw_stream_t *st)
{
    apr_status_t rv = st->emit(st->baton, LLMGW_CHUNK_FINAL, SSE_DONE, sizeof(SSE_DONE) - 1);

    if (rv == APR_SUCCESS)
        st->done = 1;
    return rv;
}

/* Remember that choice @p k exists and whether it has finished. */
static void note_choice(llmgw_stream_t *st, int k, int finished)
{
    openai_stream_t *os = st->priv;

    if (k >= os->cap) {
        int cap = os->cap ? os->cap : 4;
        unsigned char *grown;

        while (cap <= k)
            cap *= 2;
        grown = apr_pcalloc(st->call->pool, (apr_size_t)cap);
        if (os->cap)
            memcpy(grown, os->finished, (apr_size_t)os->cap);
        os->finished = grown;
        os->cap = cap;
    }
    if (k >= os->seen)
        os->seen = k + 1;
    if (finished && !os->finished[k]) {
        os->finished[k] = 1;
        os->nfinished++;
    }
}

static int is_null_or_absent(const json_t *v)
{
    return !v || json_is_null(v);
}

/* A choice that only opens the message (role, empty content): held back by the glue. */
static int is_role_only(const json_t *choice)
{
    json_t *delta = json_object_get(choice, "delta");
    const char *key;
    json_t *v;

    if (!is_null_or_absent(json_object_get(choice, "finish_reason")) ||
        !is_null_or_absent(json_object_get(choice, "logprobs")))
        return 0;
    if (is_null_or_absent(delta))
        return 1;
    if (!json_is_object(delta))
        return 0;
    json_object_foreach(delta, key, v)
    {
        int empty = json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);

        if (strcmp(key, "role") == 0)
            continue;
        if ((strcmp(key, "content") == 0 || strcmp(key, "refusal") == 0) && empty)
            continue;
        return 0;
    }
    return 1;
}

/* Track finish_reason per choice; *preamble says whether the chunk carries nothing yet. */
static apr_status_t track_choices(llmgw_stream_t *st, const json_t *choices, int *preamble)
{
    openai_stream_t *os = st->priv;
    size_t i;
    json_t *c;

    *preamble = 1;
    json_array_foreach(choices, i, c)
    {
        json_t *idx = json_object_get(c, "index");
        json_int_t k = json_is_integer(idx) ? json_integer_value(idx) : -1;

        if (k < 0 || k >= OPENAI_MAX_CHOICES)
            return malformed(st);
        note_choice(st, (int)k, !is_null_or_absent(json_object_get(c, "finish_reason")));
        if (!is_role_only(c))
            *preamble = 0;
    }
    st->finish_seen = os->nfinished >= (os->seen > os->expected ? os->seen : os->expected);
    return APR_SUCCESS;
}

/* An in-band error from the upstream: the client will see its message. */
static apr_status_t stream_error_event(llmgw_stream_t *st, const json_t *e)
{
    apr_pool_t *p = st->call->pool;
    const char *msg = json_is_string(e) ? json_string_value(e) : llmgw_json_str(e, "message");
    const char *code = error_code(p, e);

    msg = msg && *msg ? clip_message(p, msg) : "upstream reported an error during the stream";
    st->error =
        llmgw_error_make(p, 502, "server_error", code ? code : "bad_gateway", NULL, "%s", msg);
    return LLMGW_EUPSTREAM;
}

static apr_status_t on_done(llmgw_stream_t *st)
{
    apr_status_t rv;

    /* [DONE] before every choice finished: the answer is cut short. */
    if (!st->finish_seen)
        return incomplete(st);
    rv = emit_done(st);
    return rv == APR_SUCCESS ? APR_EOF : rv;
}

static void note_model(llmgw_stream_t *st, const json_t *chunk)
{
    const char *model;

    if (st->model)
        return;
    model = llmgw_json_str(chunk, "model");
    if (model && *model)
        st->model = apr_pstrdup(st->call->pool, model);
}

/* One parsed chunk object: account, filter, classify, forward. */
static apr_status_t on_chunk(llmgw_stream_t *st, json_t *chunk)
{
    json_t *e = json_object_get(chunk, "error");
    json_t *usage = json_object_get(chunk, "usage");
    json_t *choices = json_object_get(chunk, "choices");
    int preamble;
    apr_status_t rv;

    if (!is_null_or_absent(e))
        return stream_error_event(st, e);
    note_model(st, chunk);
    if (json_is_object(usage)) {
        read_usage(usage, &st->usage);
        st->usage_seen = 1;
        if (!choices || json_array_size(choices) == 0) {
            /* The usage chunk we asked for ourselves is not the client's. */
            if (!st->call->include_usage)
                return APR_SUCCESS;
            return emit_json(st, LLMGW_CHUNK_FINAL, chunk);
        }
    }
    if (!json_is_array(choices))
        return malformed(st);
    rv = track_choices(st, choices, &preamble);
    if (rv != APR_SUCCESS)
        return rv;
    if (!st->call->include_usage)
        json_object_del(chunk, "usage");
    return emit_json(st, preamble ? LLMGW_CHUNK_PREAMBLE : LLMGW_CHUNK_CONTENT, chunk);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static apr_status_t openai_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)
{
    const char *d = ev->data ? ev->data : "";
    apr_size_t n = ev->data ? ev->data_len : 0;
    json_t *chunk;
    apr_status_t rv;

    if (st->done)
        return APR_EOF;
    while (n > 0 && is_space(*d)) {
        d++;
        n--;
    }
    while (n > 0 && is_space(d[n - 1]))
        n--;
    if (n == 0)
        return APR_SUCCESS; /* nothing to say: a keep-alive of sorts */
    if (n == 6 && memcmp(d, "[DONE]", 6) == 0)
        return on_done(st);

    chunk = json_loadb(d, n, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return malformed(st);
    }
    rv = on_chunk(st, chunk);
    json_decref(chunk);
    return rv;
}

static apr_status_t openai_stream_end(llmgw_stream_t *st)
{
    if (st->done)
        return APR_SUCCESS;
    /* Complete without the sentinel: every choice finished, and the usage
     * chunk the client asked for was forwarded. */
    if (!st->finish_seen || (st->call->include_usage && !st->usage_seen))
        return incomplete(st);
    return emit_done(st);
}

const llmgw_provider_t llmgw_provider_openai = {
    .type = "openai",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .parse_error = openai_parse_error,
    .stream_init = openai_stream_init,
    .stream_event = openai_stream_event,
    .stream_end = openai_stream_end,
};
