/*
 * The OpenAI-compatible core: request framing, answers, errors and streams
 * for every dialect (see llmgw_openai_compat.h). The request bodies of the
 * dialects that are rebuilt from a whitelist (meta, mistral) are
 * llmgw_provider_rebuild.c.
 *
 * Memory: everything per request comes from call->pool; per stream event
 * only jansson's heap and a stack buffer are used, so a long stream does not
 * grow the request pool.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_openai_compat.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"

/* OpenAI caps n at 128; anything far above is a broken upstream, not a
 * reason to grow the request pool. */
#define OAI_MAX_CHOICES 1024

/* Per choice index, in oai_stream_t.flags. */
#define CHOICE_FINISHED 0x01
#define CHOICE_ROLE_SENT 0x02

/* Stream state kept in llmgw_stream_t.priv, from call->pool. */
typedef struct {
    const llmgw_oai_dialect_t *d;
    unsigned char *flags; /* per choice index: CHOICE_* */
    int cap;              /* slots in flags */
    int seen;             /* highest choice index seen + 1 */
    int expected;         /* choices the request asked for (n) */
    int nfinished;        /* indexes with a finish_reason */
    int legacy;           /* the client used legacy functions */
    /* normalising dialects: one identity for every chunk */
    const char *id;
    json_int_t created;
    const char *model;
    json_t *usage; /* the latest usage object, held until [DONE]; freed by a pool cleanup */
} oai_stream_t;

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

/* Copy member @p key from @p from to @p to when present (shared reference). */
void llmgw_oai_copy_member(json_t *to, const json_t *from, const char *key)
{
    json_t *v = json_object_get(from, key);

    if (v)
        json_object_set(to, key, v);
}

/* "chatcmpl-" and 24 random characters, for answers that came without an id. */
static const char *make_id(apr_pool_t *p, const char *prefix)
{
    return llmgw_prov_mint_id(p, prefix, 24);
}

/* ---------------------------------------------------------------------- */
/* Unsupported parameters                                                 */
/* ---------------------------------------------------------------------- */

static int already_dropped(const llmgw_call_t *call, const char *param)
{
    int i;

    for (i = 0; i < call->dropped->nelts; i++)
        if (strcmp(APR_ARRAY_IDX(call->dropped, i, const char *), param) == 0)
            return 1;
    return 0;
}

void llmgw_oai_note_dropped(llmgw_call_t *call, const char *param)
{
    if (call->dropped && !already_dropped(call, param))
        APR_ARRAY_PUSH(call->dropped, const char *) = apr_pstrdup(call->pool, param);
}

void llmgw_oai_note_ignored(llmgw_call_t *call, const char *key)
{
    if (call->ignored)
        APR_ARRAY_PUSH(call->ignored, const char *) = apr_pstrdup(call->pool, key);
}

apr_status_t llmgw_oai_unsupported(llmgw_call_t *call, const char *param, const char *code,
                                   llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    int value = strcmp(code, "unsupported_value") == 0;

    if (b->unsupported_drop == 1) {
        llmgw_oai_note_dropped(call, param);
        return APR_SUCCESS;
    }
    *err = llmgw_error_make(call->pool, 400, "invalid_request_error", code, param,
                            value ? "Unsupported value for '%s': backend \"%s\" (%s) does not "
                                    "support it."
                                  : "Unsupported parameter: '%s' is not supported by backend "
                                    "\"%s\" (%s).",
                            param, b->name, llmgw_backend_type_name(b->type));
    return LLMGW_EBADREQ;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

apr_status_t llmgw_oai_copy_body(llmgw_call_t *call, const char *model, json_t **out,
                                 llmgw_error_t **err)
{
    json_t *body = json_copy(call->body);

    if (!body)
        return APR_ENOMEM;
    if (!model) {
        json_object_del(body, "model");
    }
    else if (json_object_set_new(body, "model", json_string(model)) != 0) {
        json_decref(body);
        *err = llmgw_error_make(call->pool, 400, NULL, "invalid_value", "model",
                                "the model name is not valid UTF-8");
        return LLMGW_EBADREQ;
    }
    *out = body;
    return APR_SUCCESS;
}

void llmgw_oai_set_stream_fields(json_t *body, int stream, int usage_option)
{
    json_t *opts;

    if (!stream) {
        json_object_del(body, "stream_options");
        if (json_is_true(json_object_get(body, "stream")))
            json_object_del(body, "stream");
        return;
    }
    json_object_set_new(body, "stream", json_true());
    if (!usage_option) {
        json_object_del(body, "stream_options");
        return;
    }
    opts = json_object_get(body, "stream_options");
    if (json_is_object(opts))
        opts = json_copy(opts); /* the client's object is shared: never edit it */
    else if (!opts || json_is_null(opts))
        opts = json_object();
    else
        return; /* a wrong type: the upstream's own 400 tells the client best */
    json_object_set_new(opts, "include_usage", json_true());
    json_object_set_new(body, "stream_options", opts);
}

void llmgw_oai_developer_to_system(json_t *body)
{
    json_t *msgs = json_object_get(body, "messages"), *copy, *m;
    size_t i;

    if (!json_is_array(msgs))
        return;
    copy = json_array();
    json_array_foreach (msgs, i, m) {
        const char *role = llmgw_json_str(m, "role");

        if (role && strcmp(role, "developer") == 0) {
            json_t *sys = json_copy(m);
            json_object_set_new(sys, "role", json_string("system"));
            json_array_append_new(copy, sys);
        }
        else {
            json_array_append(copy, m);
        }
    }
    json_object_set_new(body, "messages", copy);
}

void llmgw_oai_bearer_auth(const llmgw_backend_t *b, apr_pool_t *p, apr_array_header_t *headers)
{
    if (b->api_key && *b->api_key)
        llmgw_prov_push_header(headers, apr_pstrcat(p, "Authorization: Bearer ", b->api_key, NULL));
}

static const apr_array_header_t *make_headers(const llmgw_oai_dialect_t *d,
                                              const llmgw_backend_t *b, apr_pool_t *p, int stream)
{
    apr_array_header_t *h = apr_array_make(p, 7, sizeof(const char *));

    d->auth(b, p, h);
    llmgw_prov_push_header(h, "Content-Type: application/json");
    llmgw_prov_push_header(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    llmgw_prov_push_header(h, "Expect:");
    return h;
}

static const char *make_url(const llmgw_oai_dialect_t *d, const llmgw_backend_t *b, apr_pool_t *p,
                            const char *base, const char *path)
{
    return d->url ? d->url(b, p, base, path) : apr_pstrcat(p, base, path, NULL);
}

const void *llmgw_oai_prepare(const llmgw_oai_dialect_t *d, const llmgw_backend_t *b, apr_pool_t *p)
{
    const char *base = b->endpoint ? b->endpoint : d->default_endpoint;
    llmgw_oai_fixed_t *f;

    if (!base)
        return NULL;
    f = apr_palloc(p, sizeof(*f));
    f->chat_url = make_url(d, b, p, base, "/chat/completions");
    f->embeddings_url = make_url(d, b, p, base, "/embeddings");
    f->headers = make_headers(d, b, p, 0);
    f->stream_headers = make_headers(d, b, p, 1);
    return f;
}

/* The request body: the client's own bytes when nothing changes, else built. */
static apr_status_t make_request_body(const llmgw_oai_dialect_t *d, llmgw_oai_body_fn make_body,
                                      llmgw_call_t *call, llmgw_http_request_t *out,
                                      llmgw_error_t **err)
{
    json_t *body = NULL;
    apr_status_t rv;

    if (call->raw_body && d->raw_body_ok && d->raw_body_ok(call) &&
        llmgw_json_verbatim_ok(call->raw_body, call->raw_len)) {
        /* The common case of a pass-through dialect: nothing to change, so
         * the client's bytes go out as they came (no serialisation), unless
         * jansson read them more leniently than the provider would. */
        out->body = call->raw_body;
        out->body_len = call->raw_len;
        return APR_SUCCESS;
    }
    rv = make_body(call, &body, err);
    if (rv != APR_SUCCESS)
        return rv;
    out->body = llmgw_json_dump(call->pool, body, &out->body_len);
    json_decref(body);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

apr_status_t llmgw_oai_build_request(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                     llmgw_http_request_t *out, llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    const llmgw_oai_fixed_t *f = b->fixed;
    llmgw_oai_body_fn make_body;
    int stream = 0;
    apr_status_t rv;

    switch (call->api) {
    case LLMGW_API_CHAT:
        make_body = d->chat_body;
        stream = call->stream;
        break;
    case LLMGW_API_EMBEDDINGS:
        make_body = d->embeddings_body;
        break;
    default:
        make_body = NULL;
        break;
    }
    if (!make_body) {
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "backend \"%s\" (%s) does not serve this API", b->name, d->type);
        return LLMGW_EUNSUPPORTED;
    }
    if (!json_is_object(call->body)) {
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "the request body must be a JSON object");
        return LLMGW_EBADREQ;
    }
    if (!b->endpoint && !d->default_endpoint) {
        *err = llmgw_error_make(call->pool, 500, NULL, NULL, NULL,
                                "backend \"%s\" (%s) has no endpoint", b->name, d->type);
        return LLMGW_EUNSUPPORTED;
    }
    rv = make_request_body(d, make_body, call, out, err);
    if (rv != APR_SUCCESS)
        return rv;
    /* Prepared once per configuration; built here only for a backend that
     * was not (unit tests, a configuration made in code). */
    if (!f && !(f = llmgw_oai_prepare(d, b, call->pool)))
        return APR_ENOMEM;
    out->method = "POST";
    out->url = call->api == LLMGW_API_CHAT ? f->chat_url : f->embeddings_url;
    out->headers = stream ? f->stream_headers : f->headers;
    out->headers_fixed = f == b->fixed;
    out->stream = stream;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Usage                                                                  */
/* ---------------------------------------------------------------------- */

/* A token count, or 0 when absent or nonsense; returns 1 when present. */
static int usage_count(const json_t *usage, const char *key, apr_int64_t *out)
{
    *out = 0;
    return llmgw_prov_token_count(usage, key, out);
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
        out->total_tokens = llmgw_prov_tokens_sum(out->prompt_tokens, out->completion_tokens);
    /* Cached input is billed lower (pricing: cachedInput). */
    usage_count(json_object_get(usage, "prompt_tokens_details"), "cached_tokens",
                &out->cached_tokens);
    usage_count(json_object_get(usage, "completion_tokens_details"), "reasoning_tokens",
                &out->reasoning_tokens);
}

/*
 * The counts an openai answer carries verbatim must be what the gateway
 * accounted (llmgw_prov_token_count): when one is not (a negative, a count
 * past LLMGW_TOKENS_MAX, a string), the three counts of @p usage (borrowed,
 * changed in place) are replaced with the gateway's reading @p u. Returns 1
 * when it changed anything.
 */
static int usage_clean(const json_t *usage)
{
    return !json_is_object(usage) || (llmgw_prov_token_count_clean(usage, "prompt_tokens") &&
                                      llmgw_prov_token_count_clean(usage, "completion_tokens") &&
                                      llmgw_prov_token_count_clean(usage, "total_tokens"));
}

static int bound_usage(json_t *usage, const llmgw_usage_t *u)
{
    if (usage_clean(usage))
        return 0;
    json_object_set_new(usage, "prompt_tokens", json_integer((json_int_t)u->prompt_tokens));
    json_object_set_new(usage, "completion_tokens", json_integer((json_int_t)u->completion_tokens));
    json_object_set_new(usage, "total_tokens", json_integer((json_int_t)u->total_tokens));
    return 1;
}

/*
 * OpenAI's usage object from an upstream one (new reference), with
 * total = prompt + completion (providers.md 2.3) and @p u filled to match.
 */
static json_t *clean_usage(const json_t *usage, llmgw_usage_t *u)
{
    json_t *out;

    read_usage(usage, u);
    u->total_tokens = llmgw_prov_tokens_sum(u->prompt_tokens, u->completion_tokens);
    out = llmgw_prov_usage_json(u);
    if (json_is_object(json_object_get(usage, "prompt_tokens_details")))
        llmgw_oai_copy_member(out, usage, "prompt_tokens_details");
    if (json_is_object(json_object_get(usage, "completion_tokens_details")))
        llmgw_oai_copy_member(out, usage, "completion_tokens_details");
    return out;
}

/* The usage object of a chunk or body: OpenAI's place, or Groq's x_groq.usage. Borrowed. */
static json_t *find_usage(const json_t *j)
{
    json_t *u = json_object_get(j, "usage");

    if (json_is_object(u))
        return u;
    u = json_object_get(json_object_get(j, "x_groq"), "usage");
    return json_is_object(u) ? u : NULL;
}

/* ---------------------------------------------------------------------- */
/* Normalised answers: the pieces                                         */
/* ---------------------------------------------------------------------- */

/* finish_reason in OpenAI's vocabulary (providers.md 7.4, 8.3). "stop", Together's "eos",
 * Mistral's "error" and anything unknown end normally. */
static const llmgw_prov_finish_map_t finish_map[] = {
    {"tool_calls", "tool_calls"}, {"function_call", "tool_calls"},      {"length", "length"},
    {"model_length", "length"},   {"content_filter", "content_filter"}, {NULL, NULL}};

/* NULL stays NULL. */
static const char *map_finish(const json_t *v, int legacy)
{
    if (llmgw_json_is_absent(v))
        return NULL;
    return llmgw_prov_finish_reason(finish_map, json_is_string(v) ? json_string_value(v) : NULL,
                                    legacy);
}

static json_t *finish_json(const char *finish)
{
    return finish ? json_string(finish) : json_null();
}

/* A text part of a content array (not Mistral's "thinking" scratchpad): its text, or NULL. */
static const json_t *part_text(const json_t *part)
{
    const char *type = llmgw_json_str(part, "type");
    json_t *text = json_object_get(part, "text");

    return json_is_string(text) && (!type || strcmp(type, "text") == 0) ? text : NULL;
}

/*
 * A content value as one JSON string (new reference): a string as is, the
 * text parts of an array joined; NULL for anything else. Built on jansson's
 * heap, not a pool: streams call it once per event.
 */
static json_t *content_json(const json_t *content)
{
    size_t i, len = 0, at = 0;
    const json_t *text;
    json_t *part, *out;
    char *buf;

    if (json_is_string(content))
        return json_copy((json_t *)content);
    if (!json_is_array(content))
        return NULL;
    json_array_foreach (content, i, part) {
        if ((text = part_text(part)) != NULL)
            len += json_string_length(text);
    }
    buf = malloc(len + 1);
    if (!buf)
        return NULL;
    json_array_foreach (content, i, part) {
        if ((text = part_text(part)) != NULL) {
            memcpy(buf + at, json_string_value(text), json_string_length(text));
            at += json_string_length(text);
        }
    }
    out = json_stringn(buf, len);
    free(buf);
    return out;
}

/* content_json() as a C string from @p p (requests: once per message). */
char *llmgw_oai_content_text(apr_pool_t *p, const json_t *content)
{
    json_t *j = content_json(content);
    char *out = j ? apr_pstrmemdup(p, json_string_value(j), json_string_length(j)) : NULL;

    json_decref(j);
    return out;
}

/* A tool-call `arguments` value: a string as is, anything else serialised. */
json_t *llmgw_oai_arguments_json(const json_t *v)
{
    char *text;
    json_t *out;

    if (json_is_string(v))
        return json_copy((json_t *)v);
    if (!v)
        return NULL;
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    out = json_string(text ? text : "");
    free(text);
    return out;
}

/*
 * One tool call (or stream fragment of one) in OpenAI's shape: index when
 * @p with_index, id, type (added as "function" where the call starts),
 * function {name, arguments}. New reference.
 */
static json_t *clean_tool_call(const json_t *tc, int with_index, size_t pos)
{
    json_t *out = json_object(), *fn = json_object_get(tc, "function"), *f = json_object();
    json_t *idx = json_object_get(tc, "index"), *args;
    const char *id = llmgw_json_str(tc, "id");
    const char *name = llmgw_json_str(fn, "name");

    if (with_index)
        json_object_set_new(out, "index",
                            json_is_integer(idx) ? json_copy(idx) : json_integer((json_int_t)pos));
    if (id)
        json_object_set_new(out, "id", json_string(id));
    if (id || name || !with_index)
        json_object_set_new(out, "type", json_string("function"));
    if (name)
        json_object_set_new(f, "name", json_string(name));
    args = llmgw_oai_arguments_json(json_object_get(fn, "arguments"));
    if (args)
        json_object_set_new(f, "arguments", args);
    else if (!with_index)
        json_object_set_new(f, "arguments", json_string(""));
    json_object_set_new(out, "function", f);
    return out;
}

static json_t *clean_tool_calls(const json_t *tcs, int with_index)
{
    json_t *out = json_array(), *tc;
    size_t i;

    json_array_foreach (tcs, i, tc) {
        if (json_is_object(tc))
            json_array_append_new(out, clean_tool_call(tc, with_index, i));
    }
    return out;
}

/* Legacy shape: the first tool call becomes function_call {name, arguments}. */
static void tool_calls_to_function_call(json_t *msg)
{
    json_t *tc = json_array_get(json_object_get(msg, "tool_calls"), 0);
    json_t *fn = json_object_get(tc, "function");

    if (json_is_object(fn)) {
        json_t *call = json_object();
        llmgw_oai_copy_member(call, fn, "name");
        llmgw_oai_copy_member(call, fn, "arguments");
        json_object_set_new(msg, "function_call", call);
    }
    json_object_del(msg, "tool_calls");
}

static json_t *clean_logprobs(const json_t *choice)
{
    json_t *lp = json_object_get(choice, "logprobs");

    /* Together sends a bare number here: not OpenAI's object, so nothing. */
    return json_is_object(lp) ? json_copy(lp) : json_null();
}

/* ---------------------------------------------------------------------- */
/* Normalised answers: chat completions and embeddings                    */
/* ---------------------------------------------------------------------- */

static json_t *clean_message(const json_t *msg, int legacy)
{
    json_t *out = json_object(), *tcs = json_object_get(msg, "tool_calls");
    json_t *refusal = json_object_get(msg, "refusal");
    json_t *text = content_json(json_object_get(msg, "content"));
    int has_calls = json_is_array(tcs) && json_array_size(tcs) > 0;

    json_object_set_new(out, "role", json_string("assistant"));
    /* Tool calls with empty text: OpenAI says null (providers.md 10.5). */
    if (!text || (has_calls && json_string_length(text) == 0)) {
        json_decref(text);
        text = json_null();
    }
    json_object_set_new(out, "content", text);
    json_object_set_new(out, "refusal", json_is_string(refusal) ? json_copy(refusal) : json_null());
    if (has_calls)
        json_object_set_new(out, "tool_calls", clean_tool_calls(tcs, 0));
    if (json_is_array(json_object_get(msg, "annotations")))
        llmgw_oai_copy_member(out, msg, "annotations");
    if (json_is_object(json_object_get(msg, "audio")))
        llmgw_oai_copy_member(out, msg, "audio");
    if (legacy && has_calls)
        tool_calls_to_function_call(out);
    return out;
}

static json_t *clean_choice(const json_t *c, size_t pos, int legacy)
{
    json_t *idx = json_object_get(c, "index");
    json_t *msg = json_object_get(c, "message");

    return json_pack("{s:o, s:o, s:o, s:o}", "index",
                     json_is_integer(idx) ? json_copy(idx) : json_integer((json_int_t)pos),
                     "message", clean_message(json_is_object(msg) ? msg : NULL, legacy), "logprobs",
                     clean_logprobs(c), "finish_reason",
                     finish_json(map_finish(json_object_get(c, "finish_reason"), legacy)));
}

/* Upstream string member, or @p dflt when absent or empty. */
static const char *str_or(const json_t *j, const char *key, const char *dflt)
{
    const char *s = llmgw_json_str(j, key);
    return s && *s ? s : dflt;
}

/* The whole completion in OpenAI's shape (new reference), or NULL when it has no choices. */
static json_t *normalise_completion(llmgw_call_t *call, const json_t *j, llmgw_usage_t *u)
{
    json_t *choices = json_object_get(j, "choices"), *out, *list, *c, *created;
    int legacy = llmgw_prov_legacy_functions(call->body);
    const char *id = str_or(j, "id", NULL);
    size_t i;

    if (!json_is_array(choices))
        return NULL;
    list = json_array();
    json_array_foreach (choices, i, c) {
        if (json_is_object(c))
            json_array_append_new(list, clean_choice(c, i, legacy));
    }
    created = json_object_get(j, "created");
    out = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id ? id : make_id(call->pool, "chatcmpl-"),
                    "object", "chat.completion", "created",
                    json_is_integer(created) && json_integer_value(created) > 0
                        ? json_integer_value(created)
                        : (json_int_t)call->created,
                    "model", str_or(j, "model", call->model), "choices", list);
    if (!out)
        return NULL; /* a non-UTF-8 id or model cannot come from a JSON parser; be safe */
    if (find_usage(j))
        json_object_set_new(out, "usage", clean_usage(find_usage(j), u));
    if (json_is_string(json_object_get(j, "system_fingerprint")))
        llmgw_oai_copy_member(out, j, "system_fingerprint");
    if (json_is_string(json_object_get(j, "service_tier")))
        llmgw_oai_copy_member(out, j, "service_tier");
    return out;
}

static int wants_base64(const llmgw_call_t *call)
{
    const char *f = llmgw_json_str(call->body, "encoding_format");
    return f && strcmp(f, "base64") == 0;
}

static json_t *clean_embedding(apr_pool_t *p, const json_t *item, size_t pos, int base64)
{
    json_t *idx = json_object_get(item, "index"), *vec = json_object_get(item, "embedding");
    json_t *emb;

    if (json_is_array(vec))
        emb = base64 ? llmgw_prov_float32_base64(p, vec) : json_copy(vec);
    else if (json_is_string(vec))
        emb = json_copy(vec); /* already base64: the upstream did it for us */
    else
        emb = NULL;
    if (!emb)
        return NULL;
    return json_pack("{s:s, s:o, s:o}", "object", "embedding", "index",
                     json_is_integer(idx) ? json_copy(idx) : json_integer((json_int_t)pos),
                     "embedding", emb);
}

static json_t *normalise_embeddings(llmgw_call_t *call, const llmgw_oai_dialect_t *d,
                                    const json_t *j, llmgw_usage_t *u)
{
    json_t *data = json_object_get(j, "data"), *list, *item, *usage;
    int base64 = d->local_base64 && wants_base64(call);
    size_t i;

    if (!json_is_array(data))
        return NULL;
    list = json_array();
    json_array_foreach (data, i, item) {
        json_t *e = clean_embedding(call->pool, item, i, base64);
        if (!e) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, e);
    }
    read_usage(json_object_get(j, "usage"), u);
    /* Embeddings have no completion: Mistral's completion_tokens: 0 is dropped. */
    if (!usage_count(json_object_get(j, "usage"), "total_tokens", &u->total_tokens))
        u->total_tokens = u->prompt_tokens;
    u->completion_tokens = 0;
    usage = json_pack("{s:I, s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens, "total_tokens",
                      (json_int_t)u->total_tokens);
    return json_pack("{s:s, s:o, s:s, s:o}", "object", "list", "data", list, "model",
                     str_or(j, "model", call->model), "usage", usage);
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

/*
 * A 2xx body without the answer's payload (the choices of a completion, the
 * data of embeddings, as an array) is no answer for the client, whatever
 * else it holds: an error report ({"error":...}, vLLM's flat
 * {"object":"error","message":...}) is not passed on as a success, and its
 * text, which may quote the gateway's key, not at all.
 */
static int is_no_answer(const llmgw_call_t *call, const json_t *j)
{
    const char *payload = call->api == LLMGW_API_EMBEDDINGS ? "data" : "choices";

    return !json_is_array(json_object_get(j, payload));
}

/* What a verbatim answer is read for: its model, its usage and that it is one. */
static const llmgw_json_pick_t pick_cached[] = {{"cached_tokens", NULL, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_reasoning[] = {{"reasoning_tokens", NULL, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_usage[] = {{"prompt_tokens", NULL, 0},
                                               {"completion_tokens", NULL, 0},
                                               {"total_tokens", NULL, 0},
                                               {"prompt_tokens_details", pick_cached, 0},
                                               {"completion_tokens_details", pick_reasoning, 0},
                                               {NULL, NULL, 0}};
const llmgw_json_pick_t llmgw_oai_pick_answer[] = {{"model", NULL, 0},
                                                   {"usage", pick_usage, 0},
                                                   {"choices", NULL, 1},
                                                   {"data", NULL, 1},
                                                   {NULL, NULL, 0}};

/*
 * An answer forwarded as the upstream sent it (openai). Only the members
 * the gateway reads are parsed (llmgw_json_pick), unless the recogniser is
 * unsure or the counts must be rewritten: then the whole answer is.
 */
static apr_status_t verbatim_answer(llmgw_call_t *call, const char *body, apr_size_t len,
                                    llmgw_response_t *out, llmgw_error_t **err)
{
    json_t *j = llmgw_json_pick(body, len, llmgw_oai_pick_answer);
    const char *model;
    int whole = 0;

    if (!j || !usage_clean(json_object_get(j, "usage"))) {
        json_decref(j);
        j = llmgw_json_load(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, NULL);
        whole = 1;
    }
    if (!json_is_object(j) || is_no_answer(call, j)) {
        json_decref(j);
        *err = llmgw_prov_bad_response(call->pool, NULL);
        return LLMGW_EUPSTREAM;
    }
    read_usage(json_object_get(j, "usage"), &out->usage);
    model = llmgw_json_str(j, "model");
    out->model = model && *model ? apr_pstrdup(call->pool, model) : call->model;
    /* The text was read as exactly one document (whitespace aside): the
     * upstream's own bytes go out (no re-dump), unless jansson read them
     * more leniently than a client would (llmgw_json_verbatim_ok) or their
     * counts are not what the gateway accounted. */
    if (whole && (!llmgw_json_verbatim_ok(body, len) ||
                  bound_usage(json_object_get(j, "usage"), &out->usage))) {
        out->body = llmgw_json_dump(call->pool, j, &out->len);
        json_decref(j);
        return out->body ? APR_SUCCESS : APR_ENOMEM;
    }
    out->body = body;
    out->len = len;
    json_decref(j);
    return APR_SUCCESS;
}

apr_status_t llmgw_oai_parse_response(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                      const char *body, apr_size_t len, llmgw_response_t *out,
                                      llmgw_error_t **err)
{
    json_t *j, *answer;
    const char *model;

    if (!d->normalise)
        return verbatim_answer(call, body, len, out, err);
    j = llmgw_json_load(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(j) || is_no_answer(call, j)) {
        json_decref(j);
        *err = llmgw_prov_bad_response(call->pool, NULL);
        return LLMGW_EUPSTREAM;
    }
    answer = call->api == LLMGW_API_EMBEDDINGS ? normalise_embeddings(call, d, j, &out->usage)
                                               : normalise_completion(call, j, &out->usage);
    json_decref(j);
    if (!answer) {
        *err = llmgw_prov_bad_response(call->pool, NULL);
        return LLMGW_EUPSTREAM;
    }
    model = llmgw_json_str(answer, "model");
    out->model = model && *model ? apr_pstrdup(call->pool, model) : call->model;
    out->body = llmgw_json_dump(call->pool, answer, &out->len);
    json_decref(answer);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

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

/* openai: OpenAI's own error object, kept as it is. */
static llmgw_error_t *error_from_object(apr_pool_t *p, int status, const json_t *e)
{
    const char *msg = llmgw_prov_upstream_message(p, llmgw_json_str(e, "message"), status);

    return llmgw_error_make(p, status, opt_str(p, e, "type"), error_code(p, e),
                            opt_str(p, e, "param"), "%s", msg);
}

/* OpenAI's code for an upstream status, where the upstream gave none or only a number:
 * on a chat or embeddings call, a 404 names a model the upstream does not have. */
static const char *standard_code(int status)
{
    return status == 404 ? "model_not_found" : llmgw_prov_status_code(status);
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* A message value as text: a string as is, an object or array serialised (Mistral 7.7). */
static const char *message_text(apr_pool_t *p, const json_t *v)
{
    char *text;
    const char *out;

    if (json_is_string(v))
        return *json_string_value(v) ? json_string_value(v) : NULL;
    if (!json_is_object(v) && !json_is_array(v))
        return NULL;
    text = json_dumps(v, JSON_COMPACT);
    out = text ? apr_pstrdup(p, text) : NULL;
    free(text);
    return out;
}

/*
 * Every error shape of the compatible hosts (providers.md 4.6, 7.7, 8.4):
 * {"error":{...}}, {"error":"text"}, flat {"object":"error","message":...},
 * {"message":...} and FastAPI's {"detail":...}. `type` follows the status
 * (hosts use their own words: "BadRequestError", "error", null), and codes
 * that are only a number give way to OpenAI's code for the status.
 */
static llmgw_error_t *normalised_error(apr_pool_t *p, int status, const json_t *j)
{
    json_t *inner = json_object_get(j, "error");
    const json_t *e = json_is_object(inner) ? inner : j;
    const char *msg = NULL, *code;

    if (json_is_string(inner))
        msg = json_string_value(inner);
    if (!msg)
        msg = message_text(p, json_object_get(e, "message"));
    if (!msg)
        msg = message_text(p, json_object_get(e, "detail"));
    msg = llmgw_prov_upstream_message(p, msg, status);
    code = error_code(p, e);
    if (!code || all_digits(code))
        code = standard_code(status);
    return llmgw_error_make(p, status, NULL, code, opt_str(p, e, "param"), "%s", msg);
}

llmgw_error_t *llmgw_oai_parse_error(const llmgw_oai_dialect_t *d, llmgw_call_t *call, int status,
                                     const char *body, apr_size_t len)
{
    apr_pool_t *p = call->pool;
    json_t *j, *e;
    llmgw_error_t *out;

    /* Only error statuses are passed on as they are. */
    if (status < 400 || status > 599)
        return llmgw_prov_odd_status(p, status);
    j = body && len ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!d->normalise) {
        e = json_object_get(j, "error");
        out = json_is_object(e) ? error_from_object(p, status, e) : generic_error(p, status);
    }
    else {
        out = json_is_object(j) ? normalised_error(p, status, j)
                                : llmgw_error_make(p, status, NULL, standard_code(status), NULL,
                                                   "upstream returned HTTP %d", status);
    }
    if (d->fix_error)
        out = d->fix_error(call, status, json_is_object(j) ? j : NULL, out);
    json_decref(j);
    /* The gateway's own key was refused: not the client's fault, and some
     * upstreams echo part of the key, so none of their text goes out. */
    if (llmgw_prov_credentials_refused(out->status))
        return llmgw_prov_auth_failed(p, status);
    return llmgw_error_from_upstream(p, out);
}

/* ---------------------------------------------------------------------- */
/* Streams: framing and bookkeeping                                       */
/* ---------------------------------------------------------------------- */

static apr_status_t release_usage(void *data)
{
    oai_stream_t *os = data;

    json_decref(os->usage);
    os->usage = NULL;
    return APR_SUCCESS;
}

apr_status_t llmgw_oai_stream_init(const llmgw_oai_dialect_t *d, llmgw_stream_t *st)
{
    apr_pool_t *p = st->call->pool;
    oai_stream_t *os = apr_pcalloc(p, sizeof(*os));

    os->d = d;
    os->expected = llmgw_prov_choices_asked(st->call->body, OAI_MAX_CHOICES);
    os->legacy = d->normalise && llmgw_prov_legacy_functions(st->call->body);
    apr_pool_cleanup_register(p, os, release_usage, apr_pool_cleanup_null);
    st->priv = os;
    return APR_SUCCESS;
}

/* Make room for choice @p k. */
static void grow_choices(llmgw_stream_t *st, int k)
{
    oai_stream_t *os = st->priv;

    if (k >= os->cap) {
        int cap = os->cap ? os->cap : 4;
        unsigned char *grown;

        while (cap <= k)
            cap *= 2;
        grown = apr_pcalloc(st->call->pool, (apr_size_t)cap);
        if (os->cap)
            memcpy(grown, os->flags, (apr_size_t)os->cap);
        os->flags = grown;
        os->cap = cap;
    }
}

/* Remember that choice @p k exists: every choice seen must finish. */
static void note_choice(llmgw_stream_t *st, int k)
{
    oai_stream_t *os = st->priv;

    grow_choices(st, k);
    if (k >= os->seen)
        os->seen = k + 1;
}

static void note_finished(llmgw_stream_t *st, int k)
{
    oai_stream_t *os = st->priv;

    note_choice(st, k);
    if (!(os->flags[k] & CHOICE_FINISHED)) {
        os->flags[k] |= CHOICE_FINISHED;
        os->nfinished++;
    }
}

/* A choice that only opens the message (role, empty content): held back by the glue. */
static int is_role_only(const json_t *choice)
{
    json_t *delta = json_object_get(choice, "delta");
    const char *key;
    json_t *v;

    if (!llmgw_json_is_absent(json_object_get(choice, "finish_reason")) ||
        !llmgw_json_is_absent(json_object_get(choice, "logprobs")))
        return 0;
    if (llmgw_json_is_absent(delta))
        return 1;
    if (!json_is_object(delta))
        return 0;
    json_object_foreach (delta, key, v) {
        int empty = json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);

        if (strcmp(key, "role") == 0)
            continue;
        if ((strcmp(key, "content") == 0 || strcmp(key, "refusal") == 0) && empty)
            continue;
        return 0;
    }
    return 1;
}

/* The choice index of @p c, or -1 when it is missing or out of range. */
static int choice_index(const json_t *c)
{
    json_t *idx = json_object_get(c, "index");
    json_int_t k = json_is_integer(idx) ? json_integer_value(idx) : -1;

    return k < 0 || k >= OAI_MAX_CHOICES ? -1 : (int)k;
}

/* Track finish_reason per choice; *preamble says whether the chunk carries nothing yet. */
static apr_status_t track_choices(llmgw_stream_t *st, const json_t *choices, int *preamble)
{
    oai_stream_t *os = st->priv;
    size_t i;
    json_t *c;

    *preamble = 1;
    json_array_foreach (choices, i, c) {
        int k = choice_index(c);

        if (k < 0)
            return llmgw_prov_malformed(st);
        note_choice(st, k);
        if (!llmgw_json_is_absent(json_object_get(c, "finish_reason")))
            note_finished(st, k);
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

    if (code && all_digits(code) && ((oai_stream_t *)st->priv)->d->normalise)
        code = NULL;
    msg = msg && *msg ? llmgw_prov_clip_message(p, msg)
                      : "upstream reported an error during the stream";
    st->error =
        llmgw_error_make(p, 502, "server_error", code ? code : "bad_gateway", NULL, "%s", msg);
    return LLMGW_EUPSTREAM;
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

/* ---------------------------------------------------------------------- */
/* Streams: openai, forwarded as sent                                     */
/* ---------------------------------------------------------------------- */

/*
 * Hand @p chunk on: as the upstream's own bytes @p text when the client
 * would receive the same document (@p verbatim: nothing removed or bounded;
 * and bytes any parser reads as jansson did), else serialised anew.
 */
static apr_status_t forward_frame(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *chunk,
                                  const char *text, apr_size_t len, int verbatim)
{
    if (verbatim && llmgw_prov_frame_verbatim_ok(text, len))
        return llmgw_prov_emit_raw(st, kind, chunk, text, len);
    return llmgw_prov_emit_json(st, kind, chunk);
}

/* One parsed chunk object (whose text is @p text): account, filter, classify, forward. */
static apr_status_t forward_chunk(llmgw_stream_t *st, json_t *chunk, const char *text,
                                  apr_size_t len)
{
    json_t *usage = json_object_get(chunk, "usage");
    json_t *choices = json_object_get(chunk, "choices");
    int preamble, verbatim = 1;
    apr_status_t rv;

    if (json_is_object(usage)) {
        read_usage(usage, &st->usage);
        if (bound_usage(usage, &st->usage))
            verbatim = 0;
        st->usage_seen = 1;
        if (!choices || json_array_size(choices) == 0) {
            /* The usage chunk we asked for ourselves is not the client's. */
            if (!st->call->include_usage)
                return APR_SUCCESS;
            return forward_frame(st, LLMGW_CHUNK_FINAL, chunk, text, len, verbatim);
        }
    }
    if (!json_is_array(choices))
        return llmgw_prov_malformed(st);
    rv = track_choices(st, choices, &preamble);
    if (rv != APR_SUCCESS)
        return rv;
    if (!st->call->include_usage && json_object_get(chunk, "usage")) {
        json_object_del(chunk, "usage");
        verbatim = 0;
    }
    return forward_frame(st, preamble ? LLMGW_CHUNK_PREAMBLE : LLMGW_CHUNK_CONTENT, chunk, text,
                         len, verbatim);
}

/* ---------------------------------------------------------------------- */
/* Streams: normalised dialects                                           */
/* ---------------------------------------------------------------------- */

/* An empty string, or null: nothing to say in a delta that is not the first. */
static int is_empty_text(const json_t *v)
{
    return json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

/* Legacy shape for a delta: tool call 0's fragments become function_call fragments. */
static void delta_to_function_call(json_t *delta)
{
    json_t *tc = json_array_get(json_object_get(delta, "tool_calls"), 0);
    json_t *fn = json_object_get(tc, "function");

    if (json_is_object(fn) && json_integer_value(json_object_get(tc, "index")) == 0)
        json_object_set(delta, "function_call", fn);
    json_object_del(delta, "tool_calls");
}

/*
 * The delta of choice @p k in OpenAI's shape (new reference): the role only
 * once per choice, no empty text after the opening delta, tool-call
 * fragments with `type` where a call starts, nothing else.
 */
static json_t *clean_delta(llmgw_stream_t *st, int k, const json_t *in)
{
    oai_stream_t *os = st->priv;
    int opening = !(os->flags[k] & CHOICE_ROLE_SENT);
    json_t *out = json_object(), *content = json_object_get(in, "content");
    json_t *refusal = json_object_get(in, "refusal"), *tcs = json_object_get(in, "tool_calls");

    if (opening && json_is_string(json_object_get(in, "role")))
        json_object_set_new(out, "role", json_string("assistant"));
    if (json_is_array(content)) {
        json_t *text = content_json(content);
        if (text && (json_string_length(text) > 0 || opening))
            json_object_set_new(out, "content", text);
        else
            json_decref(text);
    }
    else if ((json_is_string(content) || json_is_null(content)) &&
             (opening || !is_empty_text(content))) {
        json_object_set(out, "content", content);
    }
    if ((json_is_string(refusal) || json_is_null(refusal)) && (opening || !is_empty_text(refusal)))
        json_object_set(out, "refusal", refusal);
    if (json_is_array(tcs) && json_array_size(tcs) > 0)
        json_object_set_new(out, "tool_calls", clean_tool_calls(tcs, 1));
    if (os->legacy && json_object_get(out, "tool_calls"))
        delta_to_function_call(out);
    return out;
}

/* One choice of a chunk (new reference), or NULL when it says nothing (Azure filter notes). */
static json_t *clean_stream_choice(llmgw_stream_t *st, const json_t *c, int k)
{
    oai_stream_t *os = st->priv;
    const char *finish = map_finish(json_object_get(c, "finish_reason"), os->legacy);
    json_t *delta = clean_delta(st, k, json_object_get(c, "delta"));
    json_t *logprobs = clean_logprobs(c);

    if (json_object_size(delta) == 0 && !finish && json_is_null(logprobs)) {
        json_decref(delta);
        json_decref(logprobs);
        return NULL;
    }
    /* Every choice opens with the role, even where the upstream forgot it. */
    if (!(os->flags[k] & CHOICE_ROLE_SENT)) {
        json_object_set_new(delta, "role", json_string("assistant"));
        os->flags[k] |= CHOICE_ROLE_SENT;
    }
    return json_pack("{s:i, s:o, s:o, s:o}", "index", k, "delta", delta, "logprobs", logprobs,
                     "finish_reason", finish_json(finish));
}

/* The kept choices of @p choices (new reference), or NULL with st->error set. */
static json_t *clean_stream_choices(llmgw_stream_t *st, const json_t *choices)
{
    json_t *out = json_array(), *c;
    size_t i;

    json_array_foreach (choices, i, c) {
        int k = choice_index(c);
        json_t *kept;

        if (k < 0 || !json_is_object(c)) {
            json_decref(out);
            llmgw_prov_malformed(st);
            return NULL;
        }
        grow_choices(st, k);
        kept = clean_stream_choice(st, c, k);
        if (kept)
            json_array_append_new(out, kept);
    }
    return out;
}

/* The first real chunk fixes id/created/model for the whole stream (chunk rule 1). */
static void fix_identity(llmgw_stream_t *st, const json_t *chunk)
{
    oai_stream_t *os = st->priv;
    apr_pool_t *p = st->call->pool;
    json_t *created = json_object_get(chunk, "created");

    if (os->id)
        return;
    os->id = str_or(chunk, "id", NULL);
    os->id = os->id ? apr_pstrdup(p, os->id) : make_id(p, "chatcmpl-");
    os->created = json_is_integer(created) && json_integer_value(created) > 0
                      ? json_integer_value(created)
                      : (json_int_t)st->call->created;
    os->model = apr_pstrdup(p, str_or(chunk, "model", st->call->model));
}

/* A chunk with the stream's identity around @p choices (stolen). New reference. */
static json_t *make_chunk(llmgw_stream_t *st, json_t *choices, const json_t *from)
{
    oai_stream_t *os = st->priv;
    json_t *out =
        json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", os->id, "object", "chat.completion.chunk",
                  "created", os->created, "model", os->model, "choices", choices);

    if (out && json_is_string(json_object_get(from, "system_fingerprint")))
        llmgw_oai_copy_member(out, from, "system_fingerprint");
    return out;
}

static void hold_usage(llmgw_stream_t *st, const json_t *usage)
{
    oai_stream_t *os = st->priv;

    json_decref(os->usage);
    os->usage = clean_usage(usage, &st->usage);
    st->usage_seen = 1;
}

/* The usage chunk the client asked for, just before [DONE] (providers.md 7.4, 8.3). */
static apr_status_t emit_held_usage(llmgw_stream_t *st)
{
    oai_stream_t *os = st->priv;
    json_t *chunk;
    apr_status_t rv;

    if (!st->call->include_usage || !os->usage || !os->id)
        return APR_SUCCESS;
    chunk = make_chunk(st, json_array(), NULL);
    if (!chunk)
        return APR_ENOMEM;
    json_object_set(chunk, "usage", os->usage);
    rv = llmgw_prov_emit_json(st, LLMGW_CHUNK_FINAL, chunk);
    json_decref(chunk);
    return rv;
}

static apr_status_t normalise_chunk(llmgw_stream_t *st, json_t *chunk)
{
    json_t *usage = find_usage(chunk), *choices = json_object_get(chunk, "choices"), *kept, *out;
    int preamble;
    apr_status_t rv;

    if (usage)
        hold_usage(st, usage);
    if (!json_is_array(choices)) {
        /* A usage-only event may come without choices at all. */
        return usage && !choices ? APR_SUCCESS : llmgw_prov_malformed(st);
    }
    kept = clean_stream_choices(st, choices);
    if (!kept)
        return LLMGW_EMALFORMED;
    /* Annotation-only chunks (Azure's prompt filter results) and usage-only
     * chunks carry nothing for the client now. */
    if (json_array_size(kept) == 0) {
        json_decref(kept);
        return APR_SUCCESS;
    }
    note_model(st, chunk);
    fix_identity(st, chunk);
    out = make_chunk(st, kept, chunk);
    if (!out)
        return APR_ENOMEM;
    if (st->call->include_usage)
        json_object_set_new(out, "usage", json_null());
    rv = track_choices(st, json_object_get(out, "choices"), &preamble);
    if (rv == APR_SUCCESS)
        rv = llmgw_prov_emit_json(st, preamble ? LLMGW_CHUNK_PREAMBLE : LLMGW_CHUNK_CONTENT, out);
    json_decref(out);
    return rv;
}

/* ---------------------------------------------------------------------- */
/* Streams: events                                                        */
/* ---------------------------------------------------------------------- */

static apr_status_t on_done(llmgw_stream_t *st)
{
    apr_status_t rv;

    /* [DONE] before every choice finished: the answer is cut short. */
    if (!st->finish_seen)
        return llmgw_prov_incomplete(st);
    rv = emit_held_usage(st);
    if (rv == APR_SUCCESS)
        rv = llmgw_prov_emit_done(st);
    return rv == APR_SUCCESS ? APR_EOF : rv;
}

static apr_status_t on_chunk(llmgw_stream_t *st, json_t *chunk, const char *text, apr_size_t len)
{
    oai_stream_t *os = st->priv;
    json_t *e = json_object_get(chunk, "error");

    if (!llmgw_json_is_absent(e))
        return stream_error_event(st, e);
    if (!os->d->normalise) {
        note_model(st, chunk);
        return forward_chunk(st, chunk, text, len);
    }
    return normalise_chunk(st, chunk);
}

/* What forward_chunk reads of a chunk (is_role_only, track_choices, note_model, read_usage). */
static const llmgw_json_pick_t pick_delta[] = {
    {"role", NULL, 0}, {"content", NULL, 0}, {"refusal", NULL, 0}, {"*", NULL, 1}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_choice[] = {{"index", NULL, 0},
                                                {"finish_reason", NULL, 0},
                                                {"logprobs", NULL, 1},
                                                {"delta", pick_delta, 0},
                                                {NULL, NULL, 0}};
const llmgw_json_pick_t llmgw_oai_pick_chunk[] = {{"model", NULL, 0},
                                                  {"usage", pick_usage, 0},
                                                  {"choices", pick_choice, 0},
                                                  {"error", NULL, 1},
                                                  {NULL, NULL, 0}};

/*
 * A chunk of a frames-only stream (llmgw_stream_t.frames_only) that will go
 * out as the upstream sent it, read sparsely: only what forward_chunk
 * reads. The one change a verbatim chunk may need, the `"usage":null`
 * OpenAI adds to every chunk once asked for usage (the gateway asks, for
 * its accounting, whether the client did or not), is made on the bytes:
 * *text and *len then describe the chunk without it. NULL when the chunk
 * would not go out as sent (an error event, a usage to read and remove, or
 * to bound; bytes that cannot stand on one data line) or the recogniser is
 * unsure: the caller parses it in full.
 */
static json_t *sparse_chunk(llmgw_stream_t *st, const char **text, apr_size_t *len,
                            llmgw_json_buf_t *scratch)
{
    llmgw_json_cut_t cut;
    json_t *chunk, *usage;

    if (!st->frames_only || ((oai_stream_t *)st->priv)->d->normalise ||
        !llmgw_prov_frame_verbatim_ok(*text, *len) ||
        !(chunk = llmgw_json_pick_cut(*text, *len, llmgw_oai_pick_chunk, "usage", &cut)))
        return NULL;
    usage = json_object_get(chunk, "usage");
    if (json_object_get(chunk, "error") || !usage_clean(usage) ||
        (usage && !st->call->include_usage && (!json_is_null(usage) || cut.to <= cut.from))) {
        json_decref(chunk);
        return NULL;
    }
    if (usage && !st->call->include_usage) {
        /* In @p scratch, not the request pool: a long stream would keep every chunk. */
        llmgw_json_buf_add(scratch, *text, cut.from);
        if (llmgw_json_buf_add(scratch, *text + cut.to, *len - cut.to) != APR_SUCCESS) {
            json_decref(chunk);
            return NULL;
        }
        *text = scratch->data;
        *len = scratch->len;
        json_object_del(chunk, "usage");
    }
    return chunk;
}

apr_status_t llmgw_oai_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)
{
    const char *d;
    apr_size_t n;
    json_t *chunk;
    llmgw_json_buf_t scratch;
    apr_status_t rv;

    if (st->done)
        return APR_EOF;
    llmgw_prov_event_data(ev, &d, &n);
    if (n == 0)
        return APR_SUCCESS; /* nothing to say: a keep-alive of sorts */
    if (llmgw_prov_is_done_marker(d, n))
        return on_done(st);

    llmgw_json_buf_init(&scratch);
    chunk = sparse_chunk(st, &d, &n, &scratch);
    if (!chunk)
        chunk = llmgw_json_load(d, n, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        llmgw_json_buf_free(&scratch);
        return llmgw_prov_malformed(st);
    }
    rv = on_chunk(st, chunk, d, n);
    json_decref(chunk);
    llmgw_json_buf_free(&scratch);
    return rv;
}

apr_status_t llmgw_oai_stream_end(llmgw_stream_t *st)
{
    apr_status_t rv;

    if (st->done)
        return APR_SUCCESS;
    /* Complete without the sentinel: every choice finished, and the usage
     * the client asked for arrived. */
    if (!st->finish_seen || (st->call->include_usage && !st->usage_seen))
        return llmgw_prov_incomplete(st);
    rv = emit_held_usage(st);
    return rv == APR_SUCCESS ? llmgw_prov_emit_done(st) : rv;
}
