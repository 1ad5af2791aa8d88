/*
 * Translators: the input is whatever an upstream or a client may send. For
 * every provider llmgw_provider_get knows, in two backend configurations,
 * the input goes through
 *   - parse_response, as a 2xx body (chat, and embeddings when served);
 *   - parse_error, as the body of an answer whose status (300-599) the first two
 *     bytes pick;
 *   - stream_init, the real SSE parser into stream_event, then stream_end
 *     as the glue calls them, with an emit callback that checks each frame;
 *   - remote_images and build_request, when the input parses as JSON, as
 *     the client's body, with every listed image "fetched" as the glue would;
 *   - the retry hints the glue reads from a failed answer: Gemini's
 *     RetryInfo in the body, and the input as a Retry-After value.
 * Besides memory safety this checks what the glue relies on: outputs are
 * JSON where the contract says so, errors are never NULL, streams frame
 * correctly and stop after [DONE], the client's body is left untouched, no
 * header or URL carries a line break, and no secret of the backend leaks to
 * the client unless the input itself contained it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <string.h>
#include <jansson.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "fuzz.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_google_auth.h"
#include "llmgw_provider_google.h"
#include "llmgw_provider.h"
#include "llmgw_sse.h"
#include "llmgw_validate.h"

#define FUZZ_MAX_EVENT (1 << 20)
#define FUZZ_CREATED 1764000000

/* One plausible backend configuration (the fields a translator reads). */
typedef struct {
    const char *api_key;
    const char *endpoint;
    const char *org_id;
    const char *project;
    const char *project_id;
    const char *location;
    const char *deployment;
    const char *api_version;
    const char *chat_model;
    const char *embed_model;
    const char *access_token; /* what the glue would pass for Vertex AI */
    int max_tokens;
    int drop;
} variant_t;

typedef struct {
    llmgw_backend_type_e type;
    variant_t v[2];
} provider_case_t;

/* The secrets are long and odd enough that the fuzzer will not write them by chance. */
static const provider_case_t cases[] = {
    {LLMGW_BACKEND_OPENAI,
     {{.api_key = "sk-fuzz-oa-Qm7Zt2Vw9Xk4",
       .chat_model = "gpt-4o",
       .embed_model = "text-embedding-3-small",
       .max_tokens = LLMGW_UNSET},
      {.api_key = "sk-fuzz-oa-Qm7Zt2Vw9Xk4",
       .endpoint = "http://127.0.0.1:18080/v1",
       .org_id = "org-Gw4abc",
       .project = "proj_77",
       .chat_model = "gpt-4o-mini",
       .embed_model = "text-embedding-3-large",
       .max_tokens = LLMGW_UNSET,
       .drop = 1}}},
    {LLMGW_BACKEND_AZURE_OPENAI,
     {{.api_key = "az-fuzz-Hc8Lr3Pn6Dy1",
       .endpoint = "https://contoso-ai.openai.azure.com",
       .deployment = "gpt4o-weather",
       .api_version = "2024-10-21",
       .chat_model = "assistant-default",
       .embed_model = "embed-default",
       .max_tokens = LLMGW_UNSET},
      {.api_key = "az-fuzz-Hc8Lr3Pn6Dy1",
       .endpoint = "https://contoso-ai.openai.azure.com",
       .deployment = "gpt4o-weather",
       .api_version = "v1",
       .chat_model = "assistant-default",
       .embed_model = "embed-default",
       .max_tokens = LLMGW_UNSET,
       .drop = 1}}},
    {LLMGW_BACKEND_GOOGLE,
     {{.api_key = "AIza-fuzz-Jb5Ns8Rk2Wq7",
       .chat_model = "gemini-2.5-flash",
       .embed_model = "gemini-embedding-001",
       .max_tokens = LLMGW_UNSET},
      {.project_id = "acme-prod",
       .location = "europe-west4",
       .access_token = "ya29.fuzz-Tg4Vd9Lp1Hs6",
       .chat_model = "gemini-2.5-pro",
       .embed_model = "text-embedding-005",
       .max_tokens = LLMGW_UNSET,
       .drop = 1}}},
    {LLMGW_BACKEND_META,
     {{.api_key = "sk-fuzz-meta-Fx3Kc7Mz5Bq2",
       .endpoint = "https://api.together.xyz/v1",
       .chat_model = "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
       .embed_model = "BAAI/bge-large-en-v1.5",
       .max_tokens = LLMGW_UNSET},
      {.endpoint = "http://127.0.0.1:8000/v1",
       .chat_model = "llama-3.1-8b",
       .embed_model = "nomic-embed-text",
       .max_tokens = LLMGW_UNSET,
       .drop = 1}}},
    {LLMGW_BACKEND_MISTRAL,
     {{.api_key = "sk-fuzz-mi-Wr6Yt1Gn8Ce3",
       .chat_model = "mistral-medium-latest",
       .embed_model = "mistral-embed",
       .max_tokens = LLMGW_UNSET},
      {.api_key = "sk-fuzz-mi-Wr6Yt1Gn8Ce3",
       .endpoint = "http://127.0.0.1:18080/mock/v1",
       .chat_model = "open-mistral-nemo",
       .embed_model = "codestral-embed",
       .max_tokens = LLMGW_UNSET,
       .drop = 1}}},
    {LLMGW_BACKEND_ANTHROPIC,
     {{.api_key = "sk-ant-fuzz-Pv2Xs9Kd4Lm8",
       .chat_model = "claude-sonnet-4-6",
       .max_tokens = LLMGW_UNSET},
      {.api_key = "sk-ant-fuzz-Pv2Xs9Kd4Lm8",
       .chat_model = "claude-haiku-4-5",
       .max_tokens = 1000,
       .drop = 1}}},
};

/* What one provider run needs: the input, the pool, the backend and its secrets. */
typedef struct {
    const llmgw_provider_t *P;
    const variant_t *v;
    const llmgw_backend_t *be;
    apr_pool_t *pool;
    const uint8_t *data;
    size_t size;
} ctx_t;

static const llmgw_backend_t *make_backend(apr_pool_t *p, llmgw_backend_type_e type,
                                           const variant_t *v)
{
    llmgw_backend_t *be = apr_pcalloc(p, sizeof(*be));

    be->name = "fuzz";
    be->type = type;
    be->api_key = v->api_key;
    be->endpoint = v->endpoint;
    be->org_id = v->org_id;
    be->project = v->project;
    be->project_id = v->project_id;
    be->location = v->location;
    be->deployment_name = v->deployment;
    be->api_version = v->api_version;
    be->default_model = v->chat_model;
    be->models = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(be->models, const char *) = v->chat_model;
    if (v->embed_model)
        APR_ARRAY_PUSH(be->models, const char *) = v->embed_model;
    be->timeout = be->connect_timeout = LLMGW_UNSET;
    be->first_byte_timeout = be->idle_timeout = LLMGW_UNSET;
    be->max_retries = LLMGW_UNSET;
    be->max_tokens = v->max_tokens;
    be->unsupported_drop = v->drop;
    be->failure_threshold = be->max_attempts = LLMGW_UNSET;
    be->cooldown = LLMGW_UNSET;
    be->fallback = 1;
    return be;
}

static llmgw_call_t *make_call(const ctx_t *c, llmgw_api_e api, json_t *body)
{
    llmgw_call_t *call = apr_pcalloc(c->pool, sizeof(*call));

    call->pool = c->pool;
    call->backend = c->be;
    call->api = api;
    call->body = body;
    call->model = api == LLMGW_API_EMBEDDINGS ? c->v->embed_model : c->v->chat_model;
    call->created = FUZZ_CREATED;
    call->dropped = apr_array_make(c->pool, 2, sizeof(const char *));
    call->access_token = c->v->access_token;
    return call;
}

/* A secret may appear in client-facing output only when the input carried it. */
static void check_secret(const ctx_t *c, const char *secret, const char *text, size_t len)
{
    size_t n;

    if (!secret || !text)
        return;
    n = strlen(secret);
    if (memmem(c->data, c->size, secret, n))
        return;
    FUZZ_CHECK(!memmem(text, len, secret, n));
}

static void check_no_secrets(const ctx_t *c, const char *text, size_t len)
{
    check_secret(c, c->v->api_key, text, len);
    check_secret(c, c->v->access_token, text, len);
}

/* JSON as RFC 8259 has it: "\u0000" in a string is valid (and forwarded as is). */
static void check_json_object(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);

    FUZZ_CHECK(json_is_object(j));
    json_decref(j);
}

/* An error as the client would get it: a status, and valid JSON without secrets. */
static void check_error(const ctx_t *c, const llmgw_error_t *e)
{
    apr_size_t len = 0;
    const char *text;

    FUZZ_CHECK(e != NULL);
    FUZZ_CHECK(e->status >= 400 && e->status <= 599);
    FUZZ_CHECK(e->type != NULL && e->message != NULL);
    text = llmgw_error_json(c->pool, e, &len);
    FUZZ_CHECK(text != NULL && len == strlen(text));
    check_json_object(text, len);
    check_no_secrets(c, text, len);
}

static void fuzz_response(const ctx_t *c, llmgw_api_e api)
{
    llmgw_call_t *call = make_call(c, api, NULL);
    llmgw_response_t out;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    memset(&out, 0, sizeof(out));
    rv = c->P->parse_response(call, (const char *)c->data, c->size, &out, &err);
    if (rv != APR_SUCCESS) {
        check_error(c, err);
        return;
    }
    /* Bodies are counted, not terminated: one forwarded as is is the input itself. */
    FUZZ_CHECK(out.body != NULL);
    FUZZ_CHECK(out.model != NULL);
    check_json_object(out.body, out.len);
    check_no_secrets(c, out.body, out.len);
}

static void fuzz_error(const ctx_t *c)
{
    llmgw_call_t *call = make_call(c, LLMGW_API_CHAT, NULL);
    int status = c->size >= 2 ? 300 + ((c->data[0] << 8) | c->data[1]) % 300 : 500;
    llmgw_error_t *e = c->P->parse_error(call, status, (const char *)c->data, c->size);

    /* The status may be mapped (401 from the upstream is the gateway's fault: 502). */
    check_error(c, e);
}

/* ---- streams ------------------------------------------------------------ */

typedef struct {
    const ctx_t *c;
    llmgw_stream_t *st;
    int content_sent;      /* a CONTENT frame went out */
    int done_sent;         /* "data: [DONE]" went out */
    int upstream_done;     /* stream_event answered APR_EOF */
    apr_status_t event_rv; /* the first failure of stream_event */
} stream_run_t;

/* The framing the glue forwards as is: one data line, a blank line, JSON or [DONE]. */
static apr_status_t record_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                const char *data, apr_size_t len)
{
    stream_run_t *s = baton;
    const char *payload;
    apr_size_t plen;

    FUZZ_CHECK(!s->done_sent);
    FUZZ_CHECK(kind == LLMGW_CHUNK_PREAMBLE || kind == LLMGW_CHUNK_CONTENT ||
               kind == LLMGW_CHUNK_FINAL);
    FUZZ_CHECK(len > 8 && memcmp(data, "data: ", 6) == 0);
    FUZZ_CHECK(memcmp(data + len - 2, "\n\n", 2) == 0);
    payload = data + 6;
    plen = len - 8;
    FUZZ_CHECK(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen));
    check_no_secrets(s->c, data, len);
    if (kind == LLMGW_CHUNK_CONTENT)
        s->content_sent = 1;
    if (plen == 6 && memcmp(payload, "[DONE]", 6) == 0) {
        s->done_sent = 1;
        return APR_SUCCESS;
    }
    check_json_object(payload, plen);
    return APR_SUCCESS;
}

/* As the glue's on_sse_event: events after the terminal one are ignored. */
static apr_status_t on_sse(void *baton, const llmgw_sse_event_t *ev)
{
    stream_run_t *s = baton;
    apr_status_t rv;

    if (s->upstream_done)
        return APR_SUCCESS;
    rv = s->c->P->stream_event(s->st, ev);
    if (rv == APR_EOF) {
        FUZZ_CHECK(s->st->done && s->done_sent);
        s->upstream_done = 1;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(s->st->error != NULL);
        check_error(s->c, s->st->error);
        if (s->event_rv == APR_SUCCESS)
            s->event_rv = rv;
    }
    return rv;
}

/* Drive one stream as the glue does: the upstream bytes, then stream_end unless it ended. */
static void run_stream(const ctx_t *c, stream_run_t *s, llmgw_stream_t *st, int include_usage)
{
    llmgw_call_t *call = make_call(c, LLMGW_API_CHAT, NULL);
    llmgw_sse_parser_t *sp;
    apr_status_t rv;

    call->stream = 1;
    call->include_usage = include_usage;
    s->c = c;
    s->st = st;
    st->call = call;
    st->emit = record_emit;
    st->baton = s;
    FUZZ_CHECK(c->P->stream_init(st) == APR_SUCCESS);
    FUZZ_CHECK(llmgw_sse_parser_create(&sp, c->pool, FUZZ_MAX_EVENT, on_sse, s) == APR_SUCCESS);
    (void)llmgw_sse_parser_feed(sp, (const char *)c->data, c->size);
    (void)llmgw_sse_parser_finish(sp);
    if (s->upstream_done || s->event_rv != APR_SUCCESS)
        return;
    rv = c->P->stream_end(st);
    if (rv == APR_SUCCESS) {
        FUZZ_CHECK(st->done && s->done_sent);
        return;
    }
    FUZZ_CHECK(rv == LLMGW_ESTREAM);
    FUZZ_CHECK(!st->done);
    check_error(c, st->error);
}

static void fuzz_stream(const ctx_t *c, int include_usage)
{
    llmgw_stream_t *st = apr_pcalloc(c->pool, sizeof(*st));
    stream_run_t *s = apr_pcalloc(c->pool, sizeof(*s));

    run_stream(c, s, st, include_usage);
    /* The glue commits the response on content_emitted: it must say what went out. */
    FUZZ_CHECK(st->content_emitted == s->content_sent);
}

/* ---- requests ----------------------------------------------------------- */

static int has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static void check_http_request(const llmgw_http_request_t *out)
{
    int i;

    FUZZ_CHECK(out->method != NULL);
    FUZZ_CHECK(strcmp(out->method, "POST") == 0 || strcmp(out->method, "GET") == 0);
    FUZZ_CHECK(out->url != NULL);
    FUZZ_CHECK(strncmp(out->url, "http://", 7) == 0 || strncmp(out->url, "https://", 8) == 0);
    FUZZ_CHECK(!has_line_break(out->url) && !strchr(out->url, ' '));
    FUZZ_CHECK(out->headers != NULL);
    for (i = 0; i < out->headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(out->headers, i, const char *);
        FUZZ_CHECK(h != NULL && strchr(h, ':') != NULL && !has_line_break(h));
    }
    if (strcmp(out->method, "GET") == 0)
        return;
    FUZZ_CHECK(out->body != NULL);
    check_json_object(out->body, out->body_len);
}

/*
 * As the glue does for a translator that needs image bytes: each listed
 * image is "fetched" (the same tiny PNG) into call->images. A listed ref
 * always names a URL and a part of a message.
 */
static void fetch_listed_images(const ctx_t *c, llmgw_call_t *call)
{
    static const llmgw_image_t fetched = {"image/png", "iVBORw0KGgo=", 8};
    apr_array_header_t *refs = apr_array_make(c->pool, 2, sizeof(llmgw_image_ref_t));
    int i;

    c->P->remote_images(call, refs);
    call->images = apr_hash_make(c->pool);
    for (i = 0; i < refs->nelts; i++) {
        const llmgw_image_ref_t *ref = &APR_ARRAY_IDX(refs, i, llmgw_image_ref_t);
        FUZZ_CHECK(ref->url != NULL && ref->param != NULL);
        FUZZ_CHECK(strncmp(ref->param, "messages[", 9) == 0);
        apr_hash_set(call->images, ref->url, APR_HASH_KEY_STRING, &fetched);
    }
}

static void fuzz_request(const ctx_t *c, llmgw_api_e api, json_t *body, const json_t *pristine)
{
    llmgw_call_t *call = make_call(c, api, body);
    const char *model = json_string_value(json_object_get(body, "model"));
    json_t *so = json_object_get(body, "stream_options");
    llmgw_http_request_t out;
    llmgw_error_t *err = NULL;
    llmgw_error_t *refused = llmgw_validate_request(c->pool, api, body);
    apr_status_t rv;

    /* The validator's verdict must be a well-formed client error, and it must
     * not touch the body. Translators still get every body, refused or not:
     * they must not rely on the glue having validated it. */
    if (refused)
        check_error(c, refused);
    FUZZ_CHECK(json_equal(body, pristine));
    /* As the glue fills the call from the client's body. */
    if (model && *model)
        call->model = model;
    call->stream = api == LLMGW_API_CHAT && json_is_true(json_object_get(body, "stream"));
    call->include_usage = call->stream && json_is_true(json_object_get(so, "include_usage"));
    call->raw_body = (const char *)c->data;
    call->raw_len = c->size;
    if (c->P->remote_images) {
        fetch_listed_images(c, call);
        FUZZ_CHECK(json_equal(body, pristine));
    }
    memset(&out, 0, sizeof(out));
    rv = c->P->build_request(call, &out, &err);
    FUZZ_CHECK(json_equal(body, pristine));
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == LLMGW_EBADREQ);
        check_error(c, err);
        return;
    }
    check_http_request(&out);
}

/* ---- retry hints ---------------------------------------------------------- */

/* A hint is a delay or -1, never anything negative besides. */
static void fuzz_hints(apr_pool_t *p, const uint8_t *data, size_t size)
{
    const char *text = apr_pstrmemdup(p, (const char *)data, size);
    apr_interval_time_t d;

    d = llmgw_google_retry_delay((const char *)data, size);
    FUZZ_CHECK(d == -1 || d >= 0);
    d = llmgw_go_duration_parse(text);
    FUZZ_CHECK(d == -1 || d >= 0);
    d = llmgw_retry_after_parse(text, NULL, (apr_time_t)FUZZ_CREATED * APR_USEC_PER_SEC);
    FUZZ_CHECK(d == -1 || d >= 0);
    d = llmgw_retry_after_parse(NULL, text, (apr_time_t)FUZZ_CREATED * APR_USEC_PER_SEC);
    FUZZ_CHECK(d == -1 || d >= 0);
}

/* ---- the target ----------------------------------------------------------- */

static void fuzz_provider(const ctx_t *c, int variant, json_t *body, const json_t *pristine)
{
    int embeddings = (c->P->apis & LLMGW_API_EMBEDDINGS) && c->v->embed_model;

    fuzz_response(c, LLMGW_API_CHAT);
    if (embeddings)
        fuzz_response(c, LLMGW_API_EMBEDDINGS);
    fuzz_error(c);
    fuzz_stream(c, variant);
    if (!body)
        return;
    fuzz_request(c, LLMGW_API_CHAT, body, pristine);
    if (embeddings)
        fuzz_request(c, LLMGW_API_EMBEDDINGS, body, pristine);
}

static const provider_case_t *case_for(llmgw_backend_type_e type)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].type == type)
            return &cases[i];
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *pristine = body ? json_deep_copy(body) : NULL;
    int type, k;

    for (type = 0; type < LLMGW_BACKEND_TYPE_COUNT; type++) {
        const llmgw_provider_t *P = llmgw_provider_get((llmgw_backend_type_e)type);
        const provider_case_t *pc = case_for((llmgw_backend_type_e)type);
        if (!P)
            continue;
        /* A new translator needs its configurations here before it is fuzzed. */
        FUZZ_CHECK(pc != NULL);
        for (k = 0; k < 2; k++) {
            ctx_t c = {P, &pc->v[k], NULL, NULL, data, size};
            FUZZ_CHECK(apr_pool_create(&c.pool, p) == APR_SUCCESS);
            c.be = make_backend(c.pool, pc->type, c.v);
            fuzz_provider(&c, k, body, pristine);
            apr_pool_destroy(c.pool);
        }
    }
    fuzz_hints(p, data, size);
    json_decref(pristine);
    json_decref(body);
    apr_pool_destroy(p);
    return 0;
}
