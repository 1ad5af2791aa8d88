/*
 * The Messages dialect's error bodies (ingress.md 6.7) and the native
 * passthrough to anthropic backends (7.1): the client's bytes go upstream
 * with only `model` replaced (thinking signatures bind the exact content),
 * the backend's key, one anthropic-version and the union of the client's
 * betas; the answer is forwarded as it is and only observed for usage and
 * model.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_ingress_messages_private.h"
#include "llmgw_json.h"
#include "../providers/llmgw_provider_util.h"

#define str_eq llmgw_msg_str_eq

/* Anthropic's versions (ingress.md 6.1): the client's is forwarded when it is one of them. */
static const char *const known_versions[] = {"2023-06-01", "2026-10-21", NULL};

/* Bounds on what the client's anthropic-beta headers may add upstream. */
#define MAX_BETAS 32
#define MAX_BETA_LEN 100

/* ---------------------------------------------------------------------- */
/* Errors (ingress.md 6.7)                                                */
/* ---------------------------------------------------------------------- */

const char *llmgw_messages_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    case 408:
    case 504:
        return "timeout_error";
    default:
        break;
    }
    return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
}

const char *llmgw_messages_request_id(apr_pool_t *p)
{
    return llmgw_msg_mint_id(p, "req_gw");
}

/* Codes that only repeat what the type and the message already say. */
static int generic_code(const char *code)
{
    static const char *const generic[] = {"invalid_value",
                                          "unsupported_value",
                                          "unsupported_parameter",
                                          "invalid_type",
                                          "missing_required_parameter",
                                          "unknown_parameter",
                                          "invalid_request_error",
                                          NULL};
    int i;

    for (i = 0; generic[i]; i++) {
        if (str_eq(generic[i], code))
            return 1;
    }
    return 0;
}

/*
 * The OpenAI body of llmgw_error.c is built first: it makes message and code
 * valid UTF-8 (they may quote upstream text), which jansson requires.
 */
json_t *llmgw_msg_error_object(apr_pool_t *p, const llmgw_error_t *e)
{
    const char *oai = llmgw_error_json(p, e, NULL);
    json_t *j = oai ? json_loads(oai, 0, NULL) : NULL;
    json_t *inner = json_object_get(j, "error"), *out;
    const char *msg = llmgw_json_str(inner, "message");
    const char *code = llmgw_json_str(inner, "code");

    if (!msg || !*msg)
        msg = apr_psprintf(p, "request failed with HTTP status %d", e->status);
    if (code && !generic_code(code) && !strstr(msg, code) &&
        !str_eq(code, llmgw_messages_error_type(e->status)))
        msg = apr_psprintf(p, "%s (%s)", msg, code);
    out = json_pack("{s:s, s:s}", "type", llmgw_messages_error_type(e->status), "message", msg);
    json_decref(j);
    return out;
}

const char *llmgw_messages_error_body(apr_pool_t *p, const llmgw_error_t *e, const char *request_id,
                                      apr_size_t *len)
{
    json_t *inner = llmgw_msg_error_object(p, e), *j;
    const char *text;

    if (!inner)
        return NULL;
    j = json_pack("{s:s, s:o, s:s}", "type", "error", "error", inner, "request_id",
                  request_id ? request_id : llmgw_messages_request_id(p));
    text = j ? llmgw_json_dump(p, j, len) : NULL;
    json_decref(j);
    return text;
}

const char *llmgw_msg_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len)
{
    return llmgw_messages_error_body(p, e, NULL, len);
}

/* ---------------------------------------------------------------------- */
/* Native passthrough (ingress.md 7.1)                                    */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *betas; /* const char *, de-duplicated, in order */
} betas_t;

static int beta_token_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > MAX_BETA_LEN)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* One anthropic-beta header value: comma-separated names, each kept once. */
static int collect_betas(void *baton, const char *key, const char *value)
{
    betas_t *bs = baton;
    const char *s = value;

    (void)key;
    while (s && *s) {
        const char *end = strchr(s, ',');
        apr_size_t n = end ? (apr_size_t)(end - s) : strlen(s);
        const char *name;
        int i, seen = 0;

        while (n > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        /* Only names the API could know: nothing else reaches an upstream header. */
        if (beta_token_ok(s, n) && bs->betas->nelts < MAX_BETAS) {
            name = apr_pstrmemdup(bs->p, s, n);
            for (i = 0; i < bs->betas->nelts; i++)
                seen |= str_eq(APR_ARRAY_IDX(bs->betas, i, const char *), name);
            if (!seen)
                APR_ARRAY_PUSH(bs->betas, const char *) = name;
        }
        s = end ? end + 1 : NULL;
    }
    return 1;
}

apr_array_header_t *llmgw_msg_native_headers(apr_pool_t *p, const llmgw_backend_t *b,
                                             const apr_table_t *headers_in)
{
    apr_array_header_t *h = apr_array_make(p, 6, sizeof(const char *));
    const char *asked = headers_in ? apr_table_get(headers_in, "anthropic-version") : NULL;
    const char *version = LLMGW_MSG_DEFAULT_VERSION;
    betas_t bs = {p, apr_array_make(p, 4, sizeof(const char *))};
    int i;

    if (b->api_key && *b->api_key)
        APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "x-api-key: ", b->api_key, NULL);
    /* Exactly one version: the client's when Anthropic knows it, never two. */
    for (i = 0; asked && known_versions[i]; i++) {
        if (str_eq(asked, known_versions[i]))
            version = known_versions[i];
    }
    APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "anthropic-version: ", version, NULL);
    if (headers_in)
        apr_table_do(collect_betas, &bs, headers_in, "anthropic-beta", NULL);
    if (bs.betas->nelts > 0)
        APR_ARRAY_PUSH(h, const char *) =
            apr_pstrcat(p, "anthropic-beta: ", apr_array_pstrcat(p, bs.betas, ','), NULL);
    APR_ARRAY_PUSH(h, const char *) = "content-type: application/json";
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    APR_ARRAY_PUSH(h, const char *) = "Expect:";
    return h;
}

static apr_size_t skip_ws(const char *s, apr_size_t n, apr_size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* End (one past the closing quote) of the string opening at s[i], or 0. */
static apr_size_t string_end(const char *s, apr_size_t n, apr_size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/* End of the JSON value starting at s[i], or 0 when it is cut short. */
static apr_size_t value_end(const char *s, apr_size_t n, apr_size_t i)
{
    apr_size_t depth = 0;

    if (i >= n)
        return 0;
    if (s[i] == '"')
        return string_end(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && !strchr(",}] \t\r\n", s[i]))
            i++;
        return i;
    }
    for (; i < n; i++) {
        if (s[i] == '"') {
            apr_size_t e = string_end(s, n, i);
            if (!e)
                return 0;
            i = e - 1;
        }
        else if (s[i] == '{' || s[i] == '[') {
            depth++;
        }
        else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

/*
 * The spans of the values of top-level "model" members in @p s, into @p at
 * (pairs of apr_size_t: start, end), and where the object opens. Returns 0
 * when the text is not one object this scanner follows (then the body is
 * re-serialised instead).
 */
static int model_spans(const char *s, apr_size_t n, apr_array_header_t *at, apr_size_t *open)
{
    apr_size_t i = skip_ws(s, n, 0);

    if (i >= n || s[i] != '{')
        return 0;
    *open = i;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}')
        return skip_ws(s, n, i + 1) == n;
    for (;;) {
        apr_size_t kend, vend;
        int is_model;

        /* An escaped key may spell "model" too: leave those to jansson. */
        if (i >= n || s[i] != '"' || !(kend = string_end(s, n, i)) || memchr(s + i, '\\', kend - i))
            return 0;
        is_model = kend - i == 7 && memcmp(s + i, "\"model\"", 7) == 0;
        i = skip_ws(s, n, kend);
        if (i >= n || s[i] != ':')
            return 0;
        i = skip_ws(s, n, i + 1);
        if (!(vend = value_end(s, n, i)))
            return 0;
        if (is_model) {
            APR_ARRAY_PUSH(at, apr_size_t) = i;
            APR_ARRAY_PUSH(at, apr_size_t) = vend;
        }
        i = skip_ws(s, n, vend);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, n, i + 1);
            continue;
        }
        if (i < n && s[i] == '}')
            return skip_ws(s, n, i + 1) == n;
        return 0;
    }
}

/* The client's object with `model` set, serialised again (strings round-trip exactly). */
static apr_status_t reserialise(apr_pool_t *p, const json_t *client, const char *model,
                                const char **body, apr_size_t *len)
{
    json_t *copy = json_copy((json_t *)client);
    const char *text;

    if (!copy)
        return APR_ENOMEM;
    json_object_set_new(copy, "model", json_string(model));
    text = llmgw_msg_dump_short(p, copy);
    json_decref(copy);
    if (!text)
        return APR_ENOMEM;
    *body = text;
    *len = strlen(text);
    return APR_SUCCESS;
}

apr_status_t llmgw_msg_native_body(apr_pool_t *p, const json_t *client, const char *raw,
                                   apr_size_t raw_len, const char *model, const char **body,
                                   apr_size_t *len)
{
    const char *asked = llmgw_json_str(client, "model");
    apr_array_header_t *spans;
    apr_size_t open = 0, from = 0;
    json_t *enc_j;
    char *enc;
    struct iovec *vec;
    int i, k = 0;

    if (!raw)
        return reserialise(p, client, model ? model : (asked ? asked : ""), body, len);
    if (!model || str_eq(asked, model)) {
        *body = raw;
        *len = raw_len;
        return APR_SUCCESS;
    }
    spans = apr_array_make(p, 2, sizeof(apr_size_t));
    /* A model member the scanner cannot see (an escaped key): re-serialise. */
    if (!model_spans(raw, raw_len, spans, &open) || (asked && spans->nelts == 0))
        return reserialise(p, client, model, body, len);
    enc_j = json_string(model);
    enc = enc_j ? json_dumps(enc_j, JSON_ENCODE_ANY) : NULL;
    json_decref(enc_j);
    if (!enc)
        return APR_ENOMEM;
    vec = apr_palloc(p, sizeof(*vec) * (apr_size_t)(spans->nelts + 3));
    if (spans->nelts == 0) {
        /* No model in the body: add it first. */
        int empty = raw[skip_ws(raw, raw_len, open + 1)] == '}';
        vec[k].iov_base = (void *)raw;
        vec[k++].iov_len = open + 1;
        vec[k].iov_base = apr_pstrcat(p, "\"model\":", enc, empty ? "" : ",", NULL);
        vec[k].iov_len = strlen(vec[k].iov_base);
        k++;
        from = open + 1;
    }
    for (i = 0; i < spans->nelts; i += 2) {
        apr_size_t start = APR_ARRAY_IDX(spans, i, apr_size_t);
        vec[k].iov_base = (void *)(raw + from);
        vec[k++].iov_len = start - from;
        vec[k].iov_base = apr_pstrdup(p, enc);
        vec[k].iov_len = strlen(enc);
        k++;
        from = APR_ARRAY_IDX(spans, i + 1, apr_size_t);
    }
    vec[k].iov_base = (void *)(raw + from);
    vec[k++].iov_len = raw_len - from;
    free(enc);
    *body = apr_pstrcatv(p, vec, (apr_size_t)k, len);
    return APR_SUCCESS;
}

apr_status_t llmgw_msg_native_request(apr_pool_t *p, const llmgw_backend_t *b, const json_t *client,
                                      const char *raw, apr_size_t raw_len, const char *model,
                                      int stream, const apr_table_t *headers_in,
                                      llmgw_http_request_t *out, llmgw_error_t **err)
{
    apr_status_t rv;

    if (!json_is_object(client)) {
        *err = llmgw_error_make(p, 400, "invalid_request_error", NULL, NULL,
                                "The request body must be a JSON object.");
        return LLMGW_EBADREQ;
    }
    rv = llmgw_msg_native_body(p, client, raw, raw_len, model, &out->body, &out->body_len);
    if (rv != APR_SUCCESS)
        return rv;
    out->method = "POST";
    /* Never the client's query string (?beta=true): the betas travel in the header. */
    out->url = apr_pstrcat(p, b->endpoint ? b->endpoint : LLMGW_MSG_DEFAULT_ENDPOINT,
                           "/v1/messages", NULL);
    out->headers = llmgw_msg_native_headers(p, b, headers_in);
    out->stream = stream;
    return APR_SUCCESS;
}

/* Anthropic's counters in @p j (a usage object) replace those in @p u that it carries. */
static int native_usage_update(const json_t *j, llmgw_usage_t *u)
{
    apr_int64_t input, output, cache_read, cache_write, thinking;

    if (!json_is_object(j))
        return 0;
    cache_read = u->cached_tokens;
    cache_write = u->cache_write_tokens;
    input = u->prompt_tokens - cache_read - cache_write;
    output = u->completion_tokens;
    thinking = u->reasoning_tokens;
    llmgw_prov_token_count(j, "input_tokens", &input);
    llmgw_prov_token_count(j, "output_tokens", &output);
    llmgw_prov_token_count(j, "cache_read_input_tokens", &cache_read);
    llmgw_prov_token_count(j, "cache_creation_input_tokens", &cache_write);
    llmgw_prov_token_count(json_object_get(j, "output_tokens_details"), "thinking_tokens",
                           &thinking);
    if (input < 0)
        input = 0;
    u->present = 1;
    u->prompt_tokens = input + cache_read + cache_write;
    u->completion_tokens = output;
    u->total_tokens = u->prompt_tokens + u->completion_tokens;
    u->cached_tokens = cache_read;
    u->cache_write_tokens = cache_write;
    u->reasoning_tokens = thinking;
    return 1;
}

apr_status_t llmgw_msg_native_observe(apr_pool_t *p, const char *body, apr_size_t len,
                                      llmgw_usage_t *usage, const char **model)
{
    json_t *j = body ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    const char *m = llmgw_json_str(j, "model");

    memset(usage, 0, sizeof(*usage));
    if (!json_is_object(j)) {
        json_decref(j);
        return LLMGW_EUPSTREAM;
    }
    native_usage_update(json_object_get(j, "usage"), usage);
    if (m && *m && model)
        *model = apr_pstrdup(p, m);
    json_decref(j);
    return APR_SUCCESS;
}

/*
 * What each upstream event is to the glue: message_start, ping and block
 * starts are preamble (held back, so a failure before the first delta can
 * still fail over), deltas, block stops and message_delta are content,
 * message_stop ends the stream (APR_EOF). An `error` event gives
 * LLMGW_EUPSTREAM; data that is not a JSON object APR_EINVAL (skip it).
 */
apr_status_t llmgw_msg_native_event(apr_pool_t *p, const llmgw_sse_event_t *ev,
                                    llmgw_chunk_kind_e *kind, llmgw_usage_t *usage,
                                    const char **model)
{
    const char *d;
    apr_size_t n;
    json_t *j;
    const char *type;
    apr_status_t rv = APR_SUCCESS;

    *kind = LLMGW_CHUNK_PREAMBLE;
    llmgw_prov_event_data(ev, &d, &n);
    j = n ? llmgw_json_load(d, n, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return APR_EINVAL;
    }
    type = llmgw_json_str(j, "type");
    if (!type && ev->event && *ev->event)
        type = ev->event;
    if (str_eq(type, "message_start")) {
        json_t *msg = json_object_get(j, "message");
        const char *m = llmgw_json_str(msg, "model");

        native_usage_update(json_object_get(msg, "usage"), usage);
        if (m && *m && model && !*model)
            *model = apr_pstrdup(p, m);
    }
    else if (str_eq(type, "content_block_delta") || str_eq(type, "content_block_stop")) {
        *kind = LLMGW_CHUNK_CONTENT;
    }
    else if (str_eq(type, "message_delta")) {
        *kind = LLMGW_CHUNK_CONTENT;
        native_usage_update(json_object_get(j, "usage"), usage);
    }
    else if (str_eq(type, "message_stop")) {
        *kind = LLMGW_CHUNK_FINAL;
        rv = APR_EOF;
    }
    else if (str_eq(type, "error")) {
        *kind = LLMGW_CHUNK_FINAL;
        rv = LLMGW_EUPSTREAM;
    }
    json_decref(j);
    return rv;
}

/* Anthropic's HTTP status for an error type (in-stream errors carry only the type). */
static int status_of_type(const char *type)
{
    return llmgw_prov_anthropic_status(type, 500);
}

/*
 * The anthropic translator's reading of an error body (providers.md 5.7:
 * credential and billing failures become the gateway's 502, the provider's
 * text otherwise kept), with one difference for this dialect: 529 stays
 * 529, since Anthropic clients know it (ingress.md 6.7). @p status 0: an
 * in-stream `error` event, the status from its type.
 */
llmgw_error_t *llmgw_msg_native_error(apr_pool_t *p, int status, const char *body, apr_size_t len)
{
    llmgw_call_t call;
    llmgw_error_t *e;

    if (status == 0) {
        json_t *j = body && len ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
        status = status_of_type(llmgw_json_str(json_object_get(j, "error"), "type"));
        json_decref(j);
    }
    memset(&call, 0, sizeof(call));
    call.pool = p;
    e = llmgw_provider_anthropic.parse_error(&call, status, body, len);
    if (status == 529 && e->status == 503)
        e->status = 529;
    return e;
}
