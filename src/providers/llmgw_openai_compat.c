/*
 * The OpenAI-compatible core: request framing, answers, errors and streams
 * for every dialect (see llmgw_openai_compat.h), and at the end the request
 * bodies of the dialects that are rebuilt from a whitelist (meta, mistral).
 *
 * Memory: everything per request comes from call->pool; per stream event
 * only jansson's heap and a stack buffer are used, so a long stream does not
 * grow the request pool.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <apr_hash.h>
#include <apr_sha1.h>
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

/* Member @p key of @p obj, or NULL when absent or JSON null. Borrowed. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Copy member @p key from @p from to @p to when present (shared reference). */
static void copy_member(json_t *to, const json_t *from, const char *key)
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

void llmgw_oai_bearer_auth(const llmgw_call_t *call, apr_array_header_t *headers)
{
    const char *key = call->backend->api_key;

    if (key && *key)
        llmgw_prov_push_header(headers,
                               apr_pstrcat(call->pool, "Authorization: Bearer ", key, NULL));
}

apr_status_t llmgw_oai_build_request(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                     llmgw_http_request_t *out, llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    const char *base = b->endpoint ? b->endpoint : d->default_endpoint;
    llmgw_oai_body_fn make_body;
    const char *path;
    apr_array_header_t *h;
    int stream = 0;
    json_t *body = NULL;
    apr_status_t rv;

    switch (call->api) {
    case LLMGW_API_CHAT:
        path = "/chat/completions";
        make_body = d->chat_body;
        stream = call->stream;
        break;
    case LLMGW_API_EMBEDDINGS:
        path = "/embeddings";
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
    if (!base) {
        *err = llmgw_error_make(call->pool, 500, NULL, NULL, NULL,
                                "backend \"%s\" (%s) has no endpoint", b->name, d->type);
        return LLMGW_EUNSUPPORTED;
    }
    if (call->raw_body && d->raw_body_ok && d->raw_body_ok(call) &&
        llmgw_json_verbatim_ok(call->raw_body, call->raw_len)) {
        /* The common case of a pass-through dialect: nothing to change, so
         * the client's bytes go out as they came (no serialisation), unless
         * jansson read them more leniently than the provider would. */
        out->body = call->raw_body;
        out->body_len = call->raw_len;
    }
    else {
        rv = make_body(call, &body, err);
        if (rv != APR_SUCCESS)
            return rv;
        out->body = llmgw_json_dump(call->pool, body, &out->body_len);
        json_decref(body);
        if (!out->body)
            return APR_ENOMEM;
    }

    h = apr_array_make(call->pool, 7, sizeof(const char *));
    d->auth(call, h);
    llmgw_prov_push_header(h, "Content-Type: application/json");
    llmgw_prov_push_header(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    llmgw_prov_push_header(h, "Expect:");
    out->method = "POST";
    out->url = d->url ? d->url(call, base, path) : apr_pstrcat(call->pool, base, path, NULL);
    out->headers = h;
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
static int bound_usage(json_t *usage, const llmgw_usage_t *u)
{
    if (!json_is_object(usage) || (llmgw_prov_token_count_clean(usage, "prompt_tokens") &&
                                   llmgw_prov_token_count_clean(usage, "completion_tokens") &&
                                   llmgw_prov_token_count_clean(usage, "total_tokens")))
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
        copy_member(out, usage, "prompt_tokens_details");
    if (json_is_object(json_object_get(usage, "completion_tokens_details")))
        copy_member(out, usage, "completion_tokens_details");
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
static char *content_text(apr_pool_t *p, const json_t *content)
{
    json_t *j = content_json(content);
    char *out = j ? apr_pstrmemdup(p, json_string_value(j), json_string_length(j)) : NULL;

    json_decref(j);
    return out;
}

/* A tool-call `arguments` value: a string as is, anything else serialised. */
static json_t *arguments_json(const json_t *v)
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
    args = arguments_json(json_object_get(fn, "arguments"));
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
        copy_member(call, fn, "name");
        copy_member(call, fn, "arguments");
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
        copy_member(out, msg, "annotations");
    if (json_is_object(json_object_get(msg, "audio")))
        copy_member(out, msg, "audio");
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
        copy_member(out, j, "system_fingerprint");
    if (json_is_string(json_object_get(j, "service_tier")))
        copy_member(out, j, "service_tier");
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

apr_status_t llmgw_oai_parse_response(const llmgw_oai_dialect_t *d, llmgw_call_t *call,
                                      const char *body, apr_size_t len, llmgw_response_t *out,
                                      llmgw_error_t **err)
{
    json_t *j = json_loadb(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, NULL);
    json_t *answer;
    const char *model;

    if (!json_is_object(j) || is_no_answer(call, j)) {
        json_decref(j);
        *err = llmgw_prov_bad_response(call->pool, NULL);
        return LLMGW_EUPSTREAM;
    }
    if (!d->normalise) {
        read_usage(json_object_get(j, "usage"), &out->usage);
        model = llmgw_json_str(j, "model");
        out->model = model && *model ? apr_pstrdup(call->pool, model) : call->model;
        /* json_loadb accepted exactly one document (whitespace aside): the
         * upstream's own bytes go out (no re-dump), unless jansson read them
         * more leniently than a client would (llmgw_json_verbatim_ok) or
         * their counts are not what the gateway accounted. */
        if (!llmgw_json_verbatim_ok(body, len) ||
            bound_usage(json_object_get(j, "usage"), &out->usage)) {
            out->body = llmgw_json_dump(call->pool, j, &out->len);
            json_decref(j);
            return out->body ? APR_SUCCESS : APR_ENOMEM;
        }
        out->body = body;
        out->len = len;
        json_decref(j);
        return APR_SUCCESS;
    }
    else {
        answer = call->api == LLMGW_API_EMBEDDINGS ? normalise_embeddings(call, d, j, &out->usage)
                                                   : normalise_completion(call, j, &out->usage);
        if (!answer) {
            json_decref(j);
            *err = llmgw_prov_bad_response(call->pool, NULL);
            return LLMGW_EUPSTREAM;
        }
        json_decref(j);
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

/* OpenAI's code for an upstream status, where the upstream gave none or only a number. */
static const char *standard_code(int status)
{
    switch (status) {
    case 404:
        return "model_not_found";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_exceeded";
    case 502:
        return "bad_gateway";
    case 503:
        return "upstream_unavailable";
    case 504:
        return "upstream_timeout";
    default:
        return NULL;
    }
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
    j = body && len ? json_loadb(body, len, JSON_ALLOW_NUL, NULL) : NULL;
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

/* One parsed chunk object: account, filter, classify, forward. */
static apr_status_t forward_chunk(llmgw_stream_t *st, json_t *chunk)
{
    json_t *usage = json_object_get(chunk, "usage");
    json_t *choices = json_object_get(chunk, "choices");
    int preamble;
    apr_status_t rv;

    if (json_is_object(usage)) {
        read_usage(usage, &st->usage);
        bound_usage(usage, &st->usage);
        st->usage_seen = 1;
        if (!choices || json_array_size(choices) == 0) {
            /* The usage chunk we asked for ourselves is not the client's. */
            if (!st->call->include_usage)
                return APR_SUCCESS;
            return llmgw_prov_emit_json(st, LLMGW_CHUNK_FINAL, chunk);
        }
    }
    if (!json_is_array(choices))
        return llmgw_prov_malformed(st);
    rv = track_choices(st, choices, &preamble);
    if (rv != APR_SUCCESS)
        return rv;
    if (!st->call->include_usage)
        json_object_del(chunk, "usage");
    return llmgw_prov_emit_json(st, preamble ? LLMGW_CHUNK_PREAMBLE : LLMGW_CHUNK_CONTENT, chunk);
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
        copy_member(out, from, "system_fingerprint");
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

static apr_status_t on_chunk(llmgw_stream_t *st, json_t *chunk)
{
    oai_stream_t *os = st->priv;
    json_t *e = json_object_get(chunk, "error");

    if (!llmgw_json_is_absent(e))
        return stream_error_event(st, e);
    if (!os->d->normalise) {
        note_model(st, chunk);
        return forward_chunk(st, chunk);
    }
    return normalise_chunk(st, chunk);
}

apr_status_t llmgw_oai_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)
{
    const char *d;
    apr_size_t n;
    json_t *chunk;
    apr_status_t rv;

    if (st->done)
        return APR_EOF;
    llmgw_prov_event_data(ev, &d, &n);
    if (n == 0)
        return APR_SUCCESS; /* nothing to say: a keep-alive of sorts */
    if (llmgw_prov_is_done_marker(d, n))
        return on_done(st);

    chunk = json_loadb(d, n, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return llmgw_prov_malformed(st);
    }
    rv = on_chunk(st, chunk);
    json_decref(chunk);
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

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies: tool-call ids                                          */
/* ---------------------------------------------------------------------- */

static const char BASE62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_short_id(const char *id)
{
    apr_size_t n = 0;

    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return n == 9;
}

const char *llmgw_oai_short_tool_id(apr_pool_t *p, const char *id)
{
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    char *out;
    int i;

    if (is_short_id(id))
        return id;
    apr_sha1_init(&ctx);
    apr_sha1_update(&ctx, id, (unsigned int)strlen(id));
    apr_sha1_final(digest, &ctx);
    out = apr_palloc(p, 10);
    for (i = 0; i < 9; i++)
        out[i] = BASE62[digest[i] % 62];
    out[9] = '\0';
    return out;
}

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies: top-level fields                                       */
/* ---------------------------------------------------------------------- */

typedef struct {
    llmgw_call_t *call;
    const llmgw_oai_profile_t *prof;
    llmgw_error_t **err;
    json_t *out;            /* the body under construction */
    apr_hash_t *tool_names; /* upstream tool-call id -> function name */
    apr_hash_t *legacy_ids; /* function name -> upstream id of its latest legacy call */
    int legacy_calls;       /* legacy function calls seen so far */
} rebuild_t;

typedef apr_status_t (*field_fn)(rebuild_t *rb, const char *key, json_t *v);

static apr_status_t bad_value(rebuild_t *rb, const char *param, const char *what)
{
    *rb->err = llmgw_error_make(rb->call->pool, 400, NULL, "invalid_value", param,
                                "Invalid value for '%s': %s.", param, what);
    return LLMGW_EBADREQ;
}

static apr_status_t f_skip(rebuild_t *rb, const char *key, json_t *v)
{
    return APR_SUCCESS;
}

static apr_status_t f_copy(rebuild_t *rb, const char *key, json_t *v)
{
    json_object_set(rb->out, key, v);
    return APR_SUCCESS;
}

/* Does not change the answer (end-user ids, storage, caching hints): left out, named. */
static apr_status_t f_harmless(rebuild_t *rb, const char *key, json_t *v)
{
    llmgw_oai_note_dropped(rb->call, key);
    return APR_SUCCESS;
}

/* A key the gateway does not know: left out (hosts refuse unknown keys) and
 * logged, but never named in a header, since the client wrote it. */
static apr_status_t f_unknown(rebuild_t *rb, const char *key, json_t *v)
{
    llmgw_oai_note_ignored(rb->call, key);
    return APR_SUCCESS;
}

static apr_status_t f_unsupported(rebuild_t *rb, const char *key, json_t *v)
{
    return llmgw_oai_unsupported(rb->call, key, "unsupported_parameter", rb->err);
}

static apr_status_t f_stop(rebuild_t *rb, const char *key, json_t *v)
{
    if (json_is_string(v) && rb->prof->stop_array)
        json_object_set_new(rb->out, key, json_pack("[O]", v));
    else
        json_object_set(rb->out, key, v);
    return APR_SUCCESS;
}

static apr_status_t f_n(rebuild_t *rb, const char *key, json_t *v)
{
    if (rb->prof->max_n && json_is_integer(v) && json_integer_value(v) > rb->prof->max_n)
        return llmgw_oai_unsupported(rb->call, key, "unsupported_value", rb->err);
    return f_copy(rb, key, v);
}

static apr_status_t f_seed(rebuild_t *rb, const char *key, json_t *v)
{
    json_object_set(rb->out, rb->prof->seed_field, v);
    return APR_SUCCESS;
}

static apr_status_t f_parallel(rebuild_t *rb, const char *key, json_t *v)
{
    if (rb->prof->parallel_tool_calls)
        return f_copy(rb, key, v);
    /* true is what the host does anyway; only false asks for something. */
    if (json_is_false(v))
        return llmgw_oai_unsupported(rb->call, key, "unsupported_value", rb->err);
    return APR_SUCCESS;
}

static apr_status_t f_logprobs(rebuild_t *rb, const char *key, json_t *v)
{
    json_t *top = member(rb->call->body, "top_logprobs");

    switch (rb->prof->logprobs) {
    case LLMGW_OAI_LOGPROBS_OPENAI:
        f_copy(rb, key, v);
        if (top)
            json_object_set(rb->out, "top_logprobs", top);
        return APR_SUCCESS;
    case LLMGW_OAI_LOGPROBS_INTEGER:
        /* Together: logprobs is the number of alternatives (providers.md 8.2). */
        if (json_is_true(v))
            json_object_set_new(rb->out, key,
                                json_is_integer(top) ? json_copy(top) : json_integer(1));
        return APR_SUCCESS;
    default:
        if (!json_is_true(v))
            return APR_SUCCESS;
        return llmgw_oai_unsupported(rb->call, key, "unsupported_parameter", rb->err);
    }
}

static apr_status_t f_reasoning(rebuild_t *rb, const char *key, json_t *v)
{
    if (!rb->prof->reasoning_effort)
        return f_unsupported(rb, key, v);
    /* OpenAI's "max" has no Mistral twin; "xhigh" is the nearest (7.2). */
    if (json_is_string(v) && strcmp(json_string_value(v), "max") == 0)
        json_object_set_new(rb->out, key, json_string("xhigh"));
    else
        json_object_set(rb->out, key, v);
    return APR_SUCCESS;
}

static apr_status_t f_prediction(rebuild_t *rb, const char *key, json_t *v)
{
    return rb->prof->prediction ? f_copy(rb, key, v) : f_unsupported(rb, key, v);
}

static apr_status_t f_response_format(rebuild_t *rb, const char *key, json_t *v)
{
    const char *type = llmgw_json_str(v, "type");
    json_t *js = json_object_get(v, "json_schema"), *out;

    if (type && (strcmp(type, "text") == 0 || strcmp(type, "json_object") == 0)) {
        json_object_set_new(rb->out, key, json_pack("{s:s}", "type", type));
        return APR_SUCCESS;
    }
    if (!type || strcmp(type, "json_schema") != 0 || !json_is_object(js))
        return llmgw_oai_unsupported(rb->call, "response_format", "unsupported_value", rb->err);
    if (rb->prof->schema_required && !json_is_object(json_object_get(js, "schema")))
        return llmgw_oai_unsupported(rb->call, "response_format.json_schema.schema",
                                     "unsupported_value", rb->err);
    out = json_object();
    copy_member(out, js, "name");
    copy_member(out, js, "description");
    copy_member(out, js, "schema");
    copy_member(out, js, "strict");
    json_object_set_new(rb->out, key,
                        json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", out));
    return APR_SUCCESS;
}

static const struct {
    const char *name;
    field_fn fn;
} chat_fields[] = {
    /* built elsewhere */
    {"model", f_skip},
    {"messages", f_skip},
    {"stream", f_skip},
    {"stream_options", f_skip},
    {"tools", f_skip},
    {"tool_choice", f_skip},
    {"functions", f_skip},
    {"function_call", f_skip},
    {"max_tokens", f_skip},
    {"max_completion_tokens", f_skip},
    {"top_logprobs", f_skip},
    /* the common subset */
    {"temperature", f_copy},
    {"top_p", f_copy},
    {"presence_penalty", f_copy},
    {"frequency_penalty", f_copy},
    {"stop", f_stop},
    {"n", f_n},
    {"seed", f_seed},
    {"response_format", f_response_format},
    {"parallel_tool_calls", f_parallel},
    {"logprobs", f_logprobs},
    {"reasoning_effort", f_reasoning},
    {"prediction", f_prediction},
    /* no effect on the answer */
    {"user", f_harmless},
    {"safety_identifier", f_harmless},
    {"store", f_harmless},
    {"metadata", f_harmless},
    {"service_tier", f_harmless},
    {"prompt_cache_key", f_harmless},
    {"prompt_cache_retention", f_harmless},
    {"prompt_cache_options", f_harmless},
    /* would change the answer: refused unless unsupportedParams: drop */
    {"logit_bias", f_unsupported},
    {"modalities", f_unsupported},
    {"audio", f_unsupported},
    {"web_search_options", f_unsupported},
    {"verbosity", f_unsupported},
    {"moderation", f_unsupported},
    {NULL, NULL}};

static field_fn field_handler(const char *key)
{
    int i;

    for (i = 0; chat_fields[i].name; i++)
        if (strcmp(chat_fields[i].name, key) == 0)
            return chat_fields[i].fn;
    /* Unknown fields are never copied (Mistral 422s, Groq 400s). */
    return f_unknown;
}

static apr_status_t rebuild_fields(rebuild_t *rb)
{
    const char *key;
    json_t *v, *max;

    json_object_foreach (rb->call->body, key, v) {
        apr_status_t rv;

        if (json_is_null(v))
            continue;
        rv = field_handler(key)(rb, key, v);
        if (rv != APR_SUCCESS)
            return rv;
    }
    /* max_completion_tokens wins when both are given. */
    max = member(rb->call->body, "max_completion_tokens");
    if (!max)
        max = member(rb->call->body, "max_tokens");
    if (max)
        json_object_set(rb->out, "max_tokens", max);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies: tools                                                  */
/* ---------------------------------------------------------------------- */

/* The client's tools, or its legacy functions as tools (new reference). */
static json_t *client_tools(const json_t *body)
{
    json_t *tools = member(body, "tools"), *fns = member(body, "functions"), *out, *f;
    size_t i;

    if (tools || !json_is_array(fns))
        return tools ? json_incref(tools) : NULL;
    out = json_array();
    json_array_foreach (fns, i, f) {
        json_array_append_new(out, json_pack("{s:s, s:O}", "type", "function", "function", f));
    }
    return out;
}

/* The client's tool_choice, or its legacy function_call as one (new reference). */
static json_t *client_tool_choice(const json_t *body)
{
    json_t *choice = member(body, "tool_choice"), *fc = member(body, "function_call");

    if (choice || !fc)
        return choice ? json_incref(choice) : NULL;
    if (json_is_string(fc))
        return json_incref(fc);
    return json_pack("{s:s, s:{s:O?}}", "type", "function", "function", "name",
                     json_object_get(fc, "name"));
}

static apr_status_t rebuild_tool(rebuild_t *rb, const json_t *tool, size_t i, json_t *list)
{
    apr_pool_t *p = rb->call->pool;
    const char *type = llmgw_json_str(tool, "type");
    json_t *fn = json_object_get(tool, "function"), *out, *params;

    if (type && strcmp(type, "function") != 0)
        return llmgw_oai_unsupported(rb->call,
                                     apr_psprintf(p, "tools[%" APR_SIZE_T_FMT "].type", i),
                                     "unsupported_value", rb->err);
    if (!llmgw_json_str(fn, "name"))
        return bad_value(rb, apr_psprintf(p, "tools[%" APR_SIZE_T_FMT "].function.name", i),
                         "a function needs a name");
    out = json_pack("{s:O}", "name", json_object_get(fn, "name"));
    copy_member(out, fn, "description");
    params = member(fn, "parameters");
    if (params)
        json_object_set(out, "parameters", params);
    else if (rb->prof->tools_need_parameters)
        json_object_set_new(out, "parameters",
                            json_pack("{s:s, s:{}}", "type", "object", "properties"));
    if (member(fn, "strict"))
        copy_member(out, fn, "strict");
    json_array_append_new(list, json_pack("{s:s, s:o}", "type", "function", "function", out));
    return APR_SUCCESS;
}

/* tool_choice in the profile's words; *allowed receives allowed_tools' list (borrowed). */
static apr_status_t rebuild_tool_choice(rebuild_t *rb, const json_t *choice, json_t **out,
                                        const json_t **allowed)
{
    const char *s = json_is_string(choice) ? json_string_value(choice) : NULL;
    const char *type = llmgw_json_str(choice, "type");
    json_t *at = json_object_get(choice, "allowed_tools");

    *out = NULL;
    *allowed = NULL;
    if (type && strcmp(type, "allowed_tools") == 0 && json_is_object(at)) {
        /* Emulated faithfully: only the allowed tools are sent. */
        *allowed = json_object_get(at, "tools");
        s = llmgw_json_str(at, "mode");
    }
    if (s && (strcmp(s, "auto") == 0 || strcmp(s, "none") == 0)) {
        *out = json_string(s);
        return APR_SUCCESS;
    }
    if (s && strcmp(s, "required") == 0) {
        *out = json_string(rb->prof->required_choice);
        return APR_SUCCESS;
    }
    if (!s && type && strcmp(type, "function") == 0 &&
        llmgw_json_str(json_object_get(choice, "function"), "name")) {
        *out = json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name",
                         json_object_get(json_object_get(choice, "function"), "name"));
        return APR_SUCCESS;
    }
    return llmgw_oai_unsupported(rb->call, "tool_choice", "unsupported_value", rb->err);
}

static apr_status_t rebuild_tools(rebuild_t *rb)
{
    json_t *tools = client_tools(rb->call->body), *choice = client_tool_choice(rb->call->body);
    json_t *list = json_array(), *new_choice = NULL, *t;
    const json_t *allowed = NULL;
    apr_status_t rv = APR_SUCCESS;
    size_t i;

    if (choice)
        rv = rebuild_tool_choice(rb, choice, &new_choice, &allowed);
    json_array_foreach (tools, i, t) {
        const char *name = llmgw_json_str(json_object_get(t, "function"), "name");

        if (rv != APR_SUCCESS)
            break;
        if (llmgw_prov_tool_allowed(allowed, name ? name : ""))
            rv = rebuild_tool(rb, t, i, list);
    }
    if (rv == APR_SUCCESS && json_array_size(list) > 0) {
        json_object_set(rb->out, "tools", list);
        if (new_choice)
            json_object_set(rb->out, "tool_choice", new_choice);
    }
    json_decref(list);
    json_decref(new_choice);
    json_decref(tools);
    json_decref(choice);
    return rv;
}

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies: messages                                               */
/* ---------------------------------------------------------------------- */

static const char *msg_param(rebuild_t *rb, size_t i, const char *rest)
{
    return apr_psprintf(rb->call->pool, "messages[%" APR_SIZE_T_FMT "]%s", i, rest);
}

/* Flattened text of a content value; "" for null or absent. */
static json_t *text_content(rebuild_t *rb, const json_t *content)
{
    char *text = content_text(rb->call->pool, content);
    return json_string(text ? text : "");
}

/* A data: URI must carry base64 data (providers.md 2.2); other URLs pass as they are. */
static int data_uri_ok(apr_pool_t *p, const char *url)
{
    const char *media, *data;

    return strncasecmp(url, "data:", 5) != 0 || llmgw_prov_data_uri(p, url, &media, &data);
}

static apr_status_t image_part(rebuild_t *rb, const json_t *part, const char *param, json_t **out)
{
    json_t *img = json_object_get(part, "image_url");
    const char *url = json_is_string(img) ? json_string_value(img) : llmgw_json_str(img, "url");
    const char *url_param = apr_pstrcat(rb->call->pool, param, ".image_url.url", NULL);
    json_t *o;

    if (!url || !*url)
        return bad_value(rb, url_param, "an image part needs a url");
    if (!data_uri_ok(rb->call->pool, url))
        return bad_value(rb, url_param, "a data URI must be data:<type>;base64,<data>");
    o = json_pack("{s:s}", "url", url);
    if (json_is_string(json_object_get(img, "detail")))
        copy_member(o, img, "detail");
    *out = json_pack("{s:s, s:o}", "type", "image_url", "image_url", o);
    return APR_SUCCESS;
}

/* One user content part in the host's shape; *out NULL when dropped. */
static apr_status_t user_part(rebuild_t *rb, const json_t *part, const char *param, json_t **out)
{
    const char *type = llmgw_json_str(part, "type");

    *out = NULL;
    if (type && strcmp(type, "text") == 0 && llmgw_json_str(part, "text")) {
        /* Rebuilt, so OpenAI's per-part prompt_cache_breakpoint stays behind. */
        *out = json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(part, "text"));
        return APR_SUCCESS;
    }
    if (type && strcmp(type, "image_url") == 0)
        return image_part(rb, part, param, out);
    return llmgw_oai_unsupported(rb->call, param, "unsupported_value", rb->err);
}

static apr_status_t conv_user(rebuild_t *rb, const json_t *m, size_t i, json_t **out)
{
    json_t *content = json_object_get(m, "content"), *parts, *part;
    size_t j;

    if (!json_is_array(content)) {
        *out = json_pack("{s:s, s:o}", "role", "user", "content", text_content(rb, content));
        return APR_SUCCESS;
    }
    parts = json_array();
    json_array_foreach (content, j, part) {
        json_t *conv;
        apr_status_t rv = user_part(
            rb, part,
            msg_param(rb, i, apr_psprintf(rb->call->pool, ".content[%" APR_SIZE_T_FMT "]", j)),
            &conv);
        if (rv != APR_SUCCESS) {
            json_decref(parts);
            return rv;
        }
        if (conv)
            json_array_append_new(parts, conv);
    }
    *out = json_pack("{s:s, s:o}", "role", "user", "content", parts);
    return APR_SUCCESS;
}

static const char *upstream_id(rebuild_t *rb, const char *id)
{
    return rb->prof->short_tool_ids ? llmgw_oai_short_tool_id(rb->call->pool, id) : id;
}

/* One assistant tool call, remembered by id for the tool messages that answer it. */
static apr_status_t conv_tool_call(rebuild_t *rb, const json_t *tc, const char *param, json_t *list)
{
    json_t *fn = json_object_get(tc, "function"), *args;
    const char *id = llmgw_json_str(tc, "id"), *name = llmgw_json_str(fn, "name");

    if (!id || !*id || !name)
        return bad_value(rb, param, "a tool call needs an id and a function name");
    id = upstream_id(rb, id);
    apr_hash_set(rb->tool_names, id, APR_HASH_KEY_STRING, apr_pstrdup(rb->call->pool, name));
    args = arguments_json(json_object_get(fn, "arguments"));
    json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type", "function",
                                          "function", "name", name, "arguments",
                                          args ? args : json_string("{}")));
    return APR_SUCCESS;
}

/* A legacy function_call in history: a tool call with id call_fn_<k> (2.1 rule 3). */
static json_t *legacy_tool_calls(rebuild_t *rb, const json_t *fc)
{
    const char *name = llmgw_json_str(fc, "name");
    const char *id;

    if (!name)
        return NULL;
    id = apr_psprintf(rb->call->pool, "call_fn_%d", ++rb->legacy_calls);
    apr_hash_set(rb->legacy_ids, apr_pstrdup(rb->call->pool, name), APR_HASH_KEY_STRING, id);
    return json_pack("[{s:s, s:s, s:{s:s, s:O?}}]", "id", id, "type", "function", "function",
                     "name", name, "arguments", json_object_get(fc, "arguments"));
}

static apr_status_t conv_assistant(rebuild_t *rb, const json_t *m, size_t i, json_t **out)
{
    json_t *tcs = member(m, "tool_calls"), *legacy = NULL, *list, *tc;
    char *text = content_text(rb->call->pool, json_object_get(m, "content"));
    apr_status_t rv = APR_SUCCESS;
    size_t j;

    if (!tcs && json_is_object(member(m, "function_call")))
        tcs = legacy = legacy_tool_calls(rb, json_object_get(m, "function_call"));
    list = json_array();
    json_array_foreach (tcs, j, tc) {
        rv = conv_tool_call(
            rb, tc,
            msg_param(rb, i, apr_psprintf(rb->call->pool, ".tool_calls[%" APR_SIZE_T_FMT "]", j)),
            list);
        if (rv != APR_SUCCESS)
            break;
    }
    json_decref(legacy);
    if (rv != APR_SUCCESS) {
        json_decref(list);
        return rv;
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        *out = json_pack("{s:s, s:s}", "role", "assistant", "content", text ? text : "");
        return APR_SUCCESS;
    }
    *out = json_pack("{s:s, s:o, s:o}", "role", "assistant", "content",
                     text && *text ? json_string(text) : json_null(), "tool_calls", list);
    return APR_SUCCESS;
}

static json_t *tool_message(rebuild_t *rb, const char *id, const char *name, const json_t *content)
{
    json_t *out = json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id", id, "content",
                            text_content(rb, content));

    if (!name)
        name = apr_hash_get(rb->tool_names, id, APR_HASH_KEY_STRING);
    if (rb->prof->tool_message_name && name)
        json_object_set_new(out, "name", json_string(name));
    return out;
}

static apr_status_t conv_tool(rebuild_t *rb, const json_t *m, size_t i, json_t **out)
{
    const char *id = llmgw_json_str(m, "tool_call_id");

    if (!id || !*id) {
        *rb->err =
            llmgw_error_make(rb->call->pool, 400, NULL, "missing_required_parameter",
                             msg_param(rb, i, ".tool_call_id"), "Missing required parameter: '%s'.",
                             msg_param(rb, i, ".tool_call_id"));
        return LLMGW_EBADREQ;
    }
    *out = tool_message(rb, upstream_id(rb, id), llmgw_json_str(m, "name"),
                        json_object_get(m, "content"));
    return APR_SUCCESS;
}

/* Legacy role "function": the answer to the latest legacy call of that name. */
static apr_status_t conv_function(rebuild_t *rb, const json_t *m, size_t i, json_t **out)
{
    const char *name = llmgw_json_str(m, "name");
    const char *id = name ? apr_hash_get(rb->legacy_ids, name, APR_HASH_KEY_STRING) : NULL;

    if (!id)
        return bad_value(rb, msg_param(rb, i, ".name"),
                         "a function message must answer an earlier function_call");
    *out = tool_message(rb, upstream_id(rb, id), name, json_object_get(m, "content"));
    return APR_SUCCESS;
}

static apr_status_t conv_message(rebuild_t *rb, const json_t *m, size_t i, json_t **out)
{
    const char *role = llmgw_json_str(m, "role");

    *out = NULL;
    if (!role)
        return bad_value(rb, msg_param(rb, i, ".role"), "a message needs a role");
    if (strcmp(role, "tool") != 0 && strcmp(role, "function") != 0 && member(m, "name"))
        llmgw_oai_note_dropped(rb->call, "messages[].name");
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
        *out = json_pack("{s:s, s:o}", "role", "system", "content",
                         text_content(rb, json_object_get(m, "content")));
        return APR_SUCCESS;
    }
    if (strcmp(role, "user") == 0)
        return conv_user(rb, m, i, out);
    if (strcmp(role, "assistant") == 0)
        return conv_assistant(rb, m, i, out);
    if (strcmp(role, "tool") == 0)
        return conv_tool(rb, m, i, out);
    if (strcmp(role, "function") == 0)
        return conv_function(rb, m, i, out);
    return bad_value(rb, msg_param(rb, i, ".role"), "unknown role");
}

/* User content as an array of parts (new reference). */
static json_t *as_parts(const json_t *content)
{
    if (json_is_array(content))
        return json_copy((json_t *)content);
    return json_pack("[{s:s, s:O}]", "type", "text", "text", (json_t *)content);
}

/* Append @p m (stolen), keeping the host's conversation rules (providers.md 7.3). */
static void append_message(rebuild_t *rb, json_t *list, json_t *m)
{
    json_t *prev = json_array_get(list, json_array_size(list) - 1);
    const char *prev_role = llmgw_json_str(prev, "role"), *role = llmgw_json_str(m, "role");
    int user = strcmp(role, "user") == 0;

    if (user && prev_role && strcmp(prev_role, "tool") == 0 && rb->prof->bridge)
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "role", "assistant", "content", rb->prof->bridge));
    if (user && prev_role && strcmp(prev_role, "user") == 0 && rb->prof->merge_user_turns) {
        json_t *a = json_object_get(prev, "content"), *b = json_object_get(m, "content");
        if (json_is_string(a) && json_is_string(b)) {
            json_object_set_new(
                prev, "content",
                json_pack("s++", json_string_value(a), "\n\n", json_string_value(b)));
        }
        else {
            json_t *parts = as_parts(a);
            json_array_extend(parts, json_is_array(b) ? b : json_object_get(m, "content"));
            if (!json_is_array(b))
                json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", b));
            json_object_set_new(prev, "content", parts);
        }
        json_decref(m);
        return;
    }
    json_array_append_new(list, m);
}

static apr_status_t rebuild_messages(rebuild_t *rb)
{
    json_t *msgs = json_object_get(rb->call->body, "messages"), *list = json_array(), *m, *last;
    size_t i;

    if (!json_is_array(msgs)) {
        json_decref(list);
        return bad_value(rb, "messages", "expected an array of messages");
    }
    json_array_foreach (msgs, i, m) {
        json_t *conv;
        apr_status_t rv = json_is_object(m)
                              ? conv_message(rb, m, i, &conv)
                              : bad_value(rb, msg_param(rb, i, ""), "a message must be an object");
        if (rv != APR_SUCCESS) {
            json_decref(list);
            return rv;
        }
        if (conv)
            append_message(rb, list, conv);
    }
    last = json_array_get(list, json_array_size(list) - 1);
    if (rb->prof->prefix_trailing_assistant &&
        strcmp(llmgw_json_str(last, "role") ? llmgw_json_str(last, "role") : "", "assistant") == 0)
        json_object_set_new(last, "prefix", json_true());
    json_object_set_new(rb->out, "messages", list);
    return APR_SUCCESS;
}

apr_status_t llmgw_oai_rebuild_chat(llmgw_call_t *call, const llmgw_oai_profile_t *prof,
                                    json_t **out, llmgw_error_t **err)
{
    rebuild_t rb;
    apr_status_t rv;

    memset(&rb, 0, sizeof(rb));
    rb.call = call;
    rb.prof = prof;
    rb.err = err;
    rb.tool_names = apr_hash_make(call->pool);
    rb.legacy_ids = apr_hash_make(call->pool);
    rb.out = json_pack("{s:s}", "model", call->model);
    if (!rb.out) {
        *err = llmgw_error_make(call->pool, 400, NULL, "invalid_value", "model",
                                "the model name is not valid UTF-8");
        return LLMGW_EBADREQ;
    }
    rv = rebuild_messages(&rb);
    if (rv == APR_SUCCESS)
        rv = rebuild_fields(&rb);
    if (rv == APR_SUCCESS)
        rv = rebuild_tools(&rb);
    if (rv != APR_SUCCESS) {
        json_decref(rb.out);
        return rv;
    }
    if (call->stream) {
        json_object_set_new(rb.out, "stream", json_true());
        if (prof->stream_usage_option)
            json_object_set_new(rb.out, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    *out = rb.out;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Rebuilt bodies: embeddings                                             */
/* ---------------------------------------------------------------------- */

/* Strings only: token-id inputs belong to OpenAI's tokenizers (providers.md 2.6). */
static int text_input(const json_t *input)
{
    json_t *v;
    size_t i;

    if (json_is_string(input))
        return 1;
    if (!json_is_array(input) || json_array_size(input) == 0)
        return 0;
    json_array_foreach (input, i, v) {
        if (!json_is_string(v))
            return 0;
    }
    return 1;
}

apr_status_t llmgw_oai_rebuild_embeddings(llmgw_call_t *call, const char *dimensions_field,
                                          json_t **out, llmgw_error_t **err)
{
    json_t *input = json_object_get(call->body, "input"), *body, *v;
    const char *key;

    if (!text_input(input)) {
        *err = llmgw_error_make(call->pool, 400, "invalid_request_error", "unsupported_value",
                                "input", "backend \"%s\" (%s) takes text input only, not token ids",
                                call->backend->name, llmgw_backend_type_name(call->backend->type));
        return LLMGW_EBADREQ;
    }
    body = json_pack("{s:s, s:O, s:s}", "model", call->model, "input", input, "encoding_format",
                     "float");
    if (!body) {
        *err = llmgw_error_make(call->pool, 400, NULL, "invalid_value", "model",
                                "the model name is not valid UTF-8");
        return LLMGW_EBADREQ;
    }
    json_object_foreach (call->body, key, v) {
        if (json_is_null(v) || strcmp(key, "model") == 0 || strcmp(key, "input") == 0 ||
            strcmp(key, "encoding_format") == 0)
            continue;
        if (strcmp(key, "dimensions") == 0 && dimensions_field) {
            json_object_set(body, dimensions_field, v);
            continue;
        }
        if (strcmp(key, "dimensions") == 0) {
            apr_status_t rv = llmgw_oai_unsupported(call, key, "unsupported_parameter", err);
            if (rv != APR_SUCCESS) {
                json_decref(body);
                return rv;
            }
            continue;
        }
        if (strcmp(key, "user") == 0)
            llmgw_oai_note_dropped(call, key);
        else
            llmgw_oai_note_ignored(call, key);
    }
    *out = body;
    return APR_SUCCESS;
}
