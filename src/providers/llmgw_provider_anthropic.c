/*
 * The `anthropic` translator (providers.md 5): OpenAI chat completions to
 * and from the Claude Messages API.
 *
 * Requests are rebuilt from scratch, never copied: system and developer
 * messages are hoisted into `system`, the rest becomes strictly alternating
 * user/assistant turns, tool calls and results become tool_use/tool_result
 * blocks. A client field Anthropic cannot honour is refused with a 400 that
 * names it, or dropped and recorded in call->dropped when the backend says
 * `unsupportedParams: drop` (DESIGN.md 4). Fields that change nothing in the
 * answer (store, service_tier, prompt_cache_key, ...) and unknown fields are
 * not forwarded (providers.md 2.1).
 *
 * Answers: content blocks become message content and tool_calls; streams are
 * translated event by event (providers.md 5.6 and 10.3), so the client sees
 * every token as soon as Anthropic sends it.
 *
 * This file holds the answers, errors and streams and the translator's
 * table; the request side is llmgw_provider_anthropic_request.c.
 *
 * Memory: per request everything comes from call->pool or is a jansson value
 * freed before returning. Per stream event only jansson's heap and a stack
 * buffer are used; call->pool grows only once per stream (id, model) and when
 * the block table doubles for a new content block, never per token.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"
#include "llmgw_provider_anthropic_private.h"

/* Content blocks per message we track in a stream; far above any real answer. */
#define ANTHROPIC_MAX_BLOCKS 65536

/* Anthropic's token counters, kept apart until the OpenAI sums are made. */
typedef struct {
    int present;
    apr_int64_t input;
    apr_int64_t cache_write;
    apr_int64_t cache_read;
    apr_int64_t output;
    apr_int64_t thinking;
    int has_thinking;
} native_usage_t;

/* ---------------------------------------------------------------------- */
/* Shared helpers                                                         */
/* ---------------------------------------------------------------------- */

#define str_eq llmgw_anthropic_str_eq

/* Take every counter @p usage carries (stream counters are cumulative). */
static void usage_update(native_usage_t *u, const json_t *usage)
{
    json_t *details = json_object_get(usage, "output_tokens_details");

    if (!json_is_object(usage))
        return;
    u->present = 1;
    llmgw_prov_token_count(usage, "input_tokens", &u->input);
    llmgw_prov_token_count(usage, "cache_creation_input_tokens", &u->cache_write);
    llmgw_prov_token_count(usage, "cache_read_input_tokens", &u->cache_read);
    llmgw_prov_token_count(usage, "output_tokens", &u->output);
    if (llmgw_prov_token_count(details, "thinking_tokens", &u->thinking))
        u->has_thinking = 1;
}

/* providers.md 5.5: cached input counts as prompt, thinking as completion. */
static void usage_totals(const native_usage_t *u, llmgw_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    out->present = u->present;
    out->prompt_tokens =
        llmgw_prov_tokens_sum(llmgw_prov_tokens_sum(u->input, u->cache_write), u->cache_read);
    out->completion_tokens = u->output;
    out->total_tokens = llmgw_prov_tokens_sum(out->prompt_tokens, out->completion_tokens);
    out->cached_tokens = u->cache_read; /* billed lower (pricing: cachedInput) */
}

/* The OpenAI usage object. */
static void write_usage(llmgw_json_buf_t *b, const native_usage_t *u)
{
    llmgw_usage_t t;

    usage_totals(u, &t);
    llmgw_json_buf_lit(b, "{\"prompt_tokens\":");
    llmgw_json_buf_int(b, t.prompt_tokens);
    llmgw_json_buf_lit(b, ",\"completion_tokens\":");
    llmgw_json_buf_int(b, t.completion_tokens);
    llmgw_json_buf_lit(b, ",\"total_tokens\":");
    llmgw_json_buf_int(b, t.total_tokens);
    llmgw_json_buf_lit(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    llmgw_json_buf_int(b, u->cache_read);
    if (u->cache_write > 0) {
        llmgw_json_buf_lit(b, ",\"cache_write_tokens\":");
        llmgw_json_buf_int(b, u->cache_write);
    }
    llmgw_json_buf_lit(b, "}");
    if (u->has_thinking) {
        llmgw_json_buf_lit(b, ",\"completion_tokens_details\":{\"reasoning_tokens\":");
        llmgw_json_buf_int(b, u->thinking);
        llmgw_json_buf_lit(b, "}");
    }
    llmgw_json_buf_lit(b, "}");
}

/* providers.md 5.5: stop_reason -> finish_reason; unknown reasons end normally. */
static const llmgw_prov_finish_map_t finish_map[] = {{"tool_use", "tool_calls"},
                                                     {"max_tokens", "length"},
                                                     {"model_context_window_exceeded", "length"},
                                                     {"refusal", "content_filter"},
                                                     {NULL, NULL}};

static const char *finish_reason(const char *stop_reason, int legacy)
{
    return llmgw_prov_finish_reason(finish_map, stop_reason, legacy);
}

/*
 * Compact JSON with the shortest numbers that still read back the same
 * (jansson prints 38.7 as 38.700000000000003), for the arguments strings the
 * client sees. From @p p; NULL when @p j cannot be serialised.
 */
static const char *dump_short(apr_pool_t *p, const json_t *j)
{
    static const int precisions[] = {15, 16, 17};
    size_t i;

    for (i = 0; i < sizeof(precisions) / sizeof(precisions[0]); i++) {
        char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(precisions[i]));
        json_t *back = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
        int same = back && json_equal(back, j);
        const char *out = same || i + 1 == 3 ? apr_pstrdup(p, text ? text : "") : NULL;

        json_decref(back);
        free(text);
        if (out)
            return *out ? out : NULL;
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Answers (providers.md 5.5)                                             */
/* ---------------------------------------------------------------------- */

/*
 * The text of every text block, in order, as one JSON string (new
 * reference): the block's own string when there is one; null when none.
 */
static json_t *joined_text(const json_t *content)
{
    apr_size_t total = 0, at = 0;
    size_t i;
    json_t *b, *out, *only = NULL;
    char *buf;
    int blocks = 0;

    json_array_foreach (content, i, b) {
        json_t *t = json_object_get(b, "text");
        if (str_eq(llmgw_json_str(b, "type"), "text") && json_is_string(t)) {
            total += json_string_length(t);
            only = t;
            blocks++;
        }
    }
    if (blocks < 2)
        return blocks ? json_incref(only) : json_null();
    buf = malloc(total + 1);
    if (!buf)
        return NULL;
    json_array_foreach (content, i, b) {
        json_t *t = json_object_get(b, "text");
        if (str_eq(llmgw_json_str(b, "type"), "text") && json_is_string(t)) {
            memcpy(buf + at, json_string_value(t), json_string_length(t));
            at += json_string_length(t);
        }
    }
    out = json_stringn_nocheck(buf, total);
    free(buf);
    return out;
}

/* One OpenAI function (name and arguments) for @p name and @p args. */
static void write_function(llmgw_json_buf_t *b, const char *name, const char *args)
{
    llmgw_json_buf_lit(b, "{\"name\":");
    llmgw_json_buf_str(b, name);
    llmgw_json_buf_lit(b, ",\"arguments\":");
    llmgw_json_buf_str(b, args);
    llmgw_json_buf_lit(b, "}");
}

/*
 * The message's tool_calls member (function_call in the legacy shape: the
 * first call only) for the tool_use blocks of @p content; nothing when there
 * are none. -1 when a tool_use block is malformed.
 */
static int write_tool_calls(llmgw_json_buf_t *b, apr_pool_t *p, const json_t *content, int legacy)
{
    size_t i;
    json_t *blk;
    int n = 0;

    json_array_foreach (content, i, blk) {
        const char *id = llmgw_json_str(blk, "id"), *name = llmgw_json_str(blk, "name"), *args;
        json_t *input = json_object_get(blk, "input");

        if (!str_eq(llmgw_json_str(blk, "type"), "tool_use"))
            continue;
        if (!id || !name)
            return -1;
        if (!(args = llmgw_json_is_absent(input) ? "{}" : dump_short(p, input)))
            return -1;
        if (legacy) {
            if (n++ == 0) {
                llmgw_json_buf_lit(b, ",\"function_call\":");
                write_function(b, name, args);
            }
            continue;
        }
        if (n++ == 0)
            llmgw_json_buf_lit(b, ",\"tool_calls\":[{\"id\":");
        else
            llmgw_json_buf_lit(b, ",{\"id\":");
        llmgw_json_buf_str(b, id);
        llmgw_json_buf_lit(b, ",\"type\":\"function\",\"function\":");
        write_function(b, name, args);
        llmgw_json_buf_lit(b, "}");
    }
    if (n > 0 && !legacy)
        llmgw_json_buf_lit(b, "]");
    return 0;
}

static const char *completion_id(apr_pool_t *p, const char *native, apr_time_t created)
{
    if (native && *native)
        return apr_pstrcat(p, "chatcmpl-", native, NULL);
    return apr_psprintf(p, "chatcmpl-llmgw-%" APR_TIME_T_FMT, created);
}

/*
 * The chat completion for the Messages API answer @p j, written (not built
 * and dumped: llmgw_json.h) into @p b; -1 when @p j is malformed.
 */
static int write_answer(llmgw_json_buf_t *b, llmgw_call_t *call, const json_t *j, const char *model,
                        const native_usage_t *u)
{
    int legacy = llmgw_prov_legacy_functions(call->body);
    json_t *content = json_object_get(j, "content");
    json_t *text = joined_text(content);
    int rc = text ? 0 : -1;

    llmgw_json_buf_lit(b, "{\"id\":");
    llmgw_json_buf_str(b, completion_id(call->pool, llmgw_json_str(j, "id"), call->created));
    llmgw_json_buf_lit(b, ",\"object\":\"chat.completion\",\"created\":");
    llmgw_json_buf_int(b, call->created);
    llmgw_json_buf_lit(b, ",\"model\":");
    llmgw_json_buf_str(b, model);
    llmgw_json_buf_lit(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":");
    llmgw_json_buf_value(b, text);
    llmgw_json_buf_lit(b, ",\"refusal\":null");
    json_decref(text);
    if (rc == 0)
        rc = write_tool_calls(b, call->pool, content, legacy);
    llmgw_json_buf_lit(b, "},\"logprobs\":null,\"finish_reason\":");
    llmgw_json_buf_str(b, finish_reason(llmgw_json_str(j, "stop_reason"), legacy));
    llmgw_json_buf_lit(b, "}]");
    if (u->present) {
        llmgw_json_buf_lit(b, ",\"usage\":");
        write_usage(b, u);
    }
    llmgw_json_buf_lit(b, "}");
    return rc;
}

static apr_status_t anthropic_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                             llmgw_response_t *out, llmgw_error_t **err)
{
    apr_pool_t *p = call->pool;
    json_t *j = llmgw_json_load(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, NULL);
    const char *type = llmgw_json_str(j, "type");
    const char *model = llmgw_json_str(j, "model");
    llmgw_json_buf_t b;
    native_usage_t u;
    int rc = -1;

    memset(&u, 0, sizeof(u));
    llmgw_json_buf_init(&b);
    model = model && *model ? apr_pstrdup(p, model) : call->model;
    usage_update(&u, json_object_get(j, "usage"));
    if (json_is_array(json_object_get(j, "content")) && (!type || str_eq(type, "message")))
        rc = write_answer(&b, call, j, model, &u);
    json_decref(j);
    if (rc != 0) {
        llmgw_json_buf_free(&b);
        *err = llmgw_prov_bad_response(p, NULL);
        return LLMGW_EUPSTREAM;
    }
    out->model = model;
    usage_totals(&u, &out->usage);
    out->body = b.failed ? NULL : apr_pstrmemdup(p, b.data, b.len);
    out->len = out->body ? b.len : 0;
    llmgw_json_buf_free(&b);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Errors (providers.md 5.7)                                              */
/* ---------------------------------------------------------------------- */

/* The HTTP status Anthropic uses for an error type (stream errors carry only the type). */
static int status_of_type(const char *type)
{
    return llmgw_prov_anthropic_status(type, 502);
}

/* A spend cap: waiting does not help (providers.md 9.1). */
static int is_spend_limit(const char *code)
{
    return str_eq(code, "enforced_spend_limit_reached") ||
           str_eq(code, "contract_spend_limit_reached");
}

/*
 * The client-facing error for an Anthropic error of HTTP @p status; @p e is
 * the body's "error" object or NULL. Credential and billing problems are the
 * gateway's, so their provider text is not passed on.
 */
static llmgw_error_t *map_error(apr_pool_t *p, int status, const json_t *e)
{
    const char *msg = llmgw_prov_upstream_message(p, llmgw_json_str(e, "message"), status);
    const char *code = llmgw_json_str(json_object_get(e, "details"), "error_code");

    if (llmgw_prov_credentials_refused(status))
        return llmgw_prov_auth_failed(p, status);
    switch (status) {
    case 402:
        return llmgw_error_make(p, 502, "server_error", "upstream_billing_error", NULL,
                                "the upstream refused the gateway's account for billing "
                                "reasons (HTTP 402)");
    case 404:
        if (strncmp(msg, "model:", 6) == 0)
            return llmgw_error_make(p, 404, "invalid_request_error", "model_not_found", "model",
                                    "%s", msg);
        return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL, "%s", msg);
    case 413:
        return llmgw_error_make(p, 413, "invalid_request_error", "request_too_large", NULL, "%s",
                                msg);
    case 429:
        return llmgw_error_make(p, 429, "rate_limit_error",
                                is_spend_limit(code) ? "insufficient_quota" : "rate_limit_exceeded",
                                NULL, "%s", msg);
    case 400:
        /* "prompt is too long: 208310 tokens > 200000 maximum", or the input
         * plus max_tokens past the window (providers.md 9.2). */
        if (llmgw_prov_mentions(msg, "prompt is too long") ||
            llmgw_prov_mentions(msg, "exceed context limit"))
            return llmgw_prov_context_exceeded(p, msg);
        break;
    case 504:
        return llmgw_error_make(p, 504, "server_error", "upstream_timeout", NULL, "%s", msg);
    case 529:
        return llmgw_error_make(p, 503, "server_error", "upstream_overloaded", NULL, "%s", msg);
    default:
        break;
    }
    if (status < 400 || status > 599)
        return llmgw_prov_odd_status(p, status);
    return llmgw_error_make(p, status, NULL, NULL, NULL, "%s", msg);
}

static llmgw_error_t *anthropic_parse_error(llmgw_call_t *call, int status, const char *body,
                                            apr_size_t len)
{
    json_t *j = body && len ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    llmgw_error_t *out = map_error(call->pool, status, json_is_object(e) ? e : NULL);

    json_decref(j);
    return llmgw_error_from_upstream(call->pool, out);
}

/* ---------------------------------------------------------------------- */
/* Streams (providers.md 5.6)                                             */
/* ---------------------------------------------------------------------- */

enum { BLOCK_UNKNOWN = 0, BLOCK_TEXT, BLOCK_TOOL, BLOCK_IGNORED };

typedef struct {
    unsigned char kind;
    int tool; /* OpenAI tool-call index for BLOCK_TOOL */
} block_t;

/* Stream state kept in llmgw_stream_t.priv, from call->pool. */
typedef struct {
    const char *id;  /* "chatcmpl-<message id>" */
    int started;     /* the role chunk was emitted */
    int finished;    /* the finish chunk was emitted */
    int tools;       /* tool calls so far */
    int legacy;      /* answer in the legacy function_call shape */
    block_t *blocks; /* by native content-block index */
    int cap;
    native_usage_t usage;
} anth_stream_t;

static apr_status_t anthropic_stream_init(llmgw_stream_t *st)
{
    anth_stream_t *as = apr_pcalloc(st->call->pool, sizeof(*as));

    as->legacy = llmgw_prov_legacy_functions(st->call->body);
    st->priv = as;
    return APR_SUCCESS;
}

/* Chunks are written, not built and dumped (llmgw_json.h): there is one per token. */
static void chunk_open(llmgw_stream_t *st, llmgw_json_buf_t *b)
{
    anth_stream_t *as = st->priv;

    llmgw_prov_chunk_open(b, as->id, st->call->created, st->model ? st->model : st->call->model);
}

/* chunk_open, then choice 0 up to its delta, which the caller writes. */
static void delta_open(llmgw_stream_t *st, llmgw_json_buf_t *b)
{
    chunk_open(st, b);
    llmgw_json_buf_lit(b, ",\"choices\":[{\"index\":0,\"delta\":");
}

/* End the chunk delta_open began, with @p finish (NULL: none yet), and emit it. */
static apr_status_t delta_close(llmgw_stream_t *st, llmgw_chunk_kind_e kind, llmgw_json_buf_t *b,
                                const char *finish)
{
    llmgw_json_buf_lit(b, ",\"logprobs\":null");
    llmgw_prov_chunk_close(b, finish, st->call->include_usage);
    return llmgw_prov_emit_frame(st, kind, b);
}

/* The chunk for choice 0 whose delta is the JSON text @p delta, with @p finish (NULL: none yet). */
static apr_status_t emit_delta(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const char *delta,
                               const char *finish)
{
    llmgw_json_buf_t b;

    llmgw_json_buf_init(&b);
    delta_open(st, &b);
    llmgw_json_buf_add(&b, delta, strlen(delta));
    return delta_close(st, kind, &b, finish);
}

/* The role chunk, once, before anything else (held back by the glue until content). */
static apr_status_t ensure_started(llmgw_stream_t *st)
{
    anth_stream_t *as = st->priv;

    if (as->started)
        return APR_SUCCESS;
    if (!as->id)
        as->id = completion_id(st->call->pool, NULL, st->call->created);
    as->started = 1;
    return emit_delta(st, LLMGW_CHUNK_PREAMBLE, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
}

static apr_status_t emit_text(llmgw_stream_t *st, const json_t *text)
{
    llmgw_json_buf_t b;
    apr_status_t rv;

    if (!json_is_string(text) || json_string_length(text) == 0)
        return APR_SUCCESS;
    if ((rv = ensure_started(st)) != APR_SUCCESS)
        return rv;
    llmgw_json_buf_init(&b);
    delta_open(st, &b);
    llmgw_json_buf_lit(&b, "{\"content\":");
    llmgw_json_buf_value(&b, text);
    llmgw_json_buf_lit(&b, "}");
    return delta_close(st, LLMGW_CHUNK_CONTENT, &b, NULL);
}

/* A tool-call fragment: the opening one carries id/name, later ones arguments only. */
static apr_status_t emit_tool(llmgw_stream_t *st, int index, const char *id, const char *name,
                              const json_t *args)
{
    anth_stream_t *as = st->priv;
    llmgw_json_buf_t b;
    apr_status_t rv;

    if ((rv = ensure_started(st)) != APR_SUCCESS)
        return rv;
    llmgw_json_buf_init(&b);
    delta_open(st, &b);
    if (as->legacy) {
        llmgw_json_buf_lit(&b, "{\"function_call\":{");
    }
    else {
        llmgw_json_buf_lit(&b, "{\"tool_calls\":[{\"index\":");
        llmgw_json_buf_int(&b, index);
        if (id) {
            llmgw_json_buf_lit(&b, ",\"id\":");
            llmgw_json_buf_str(&b, id);
            llmgw_json_buf_lit(&b, ",\"type\":\"function\"");
        }
        llmgw_json_buf_lit(&b, ",\"function\":{");
    }
    if (name) {
        llmgw_json_buf_lit(&b, "\"name\":");
        llmgw_json_buf_str(&b, name);
        llmgw_json_buf_lit(&b, ",");
    }
    llmgw_json_buf_lit(&b, "\"arguments\":");
    if (args)
        llmgw_json_buf_value(&b, args);
    else
        llmgw_json_buf_lit(&b, "\"\"");
    if (as->legacy)
        llmgw_json_buf_lit(&b, "}}");
    else
        llmgw_json_buf_lit(&b, "}}]}");
    return delta_close(st, LLMGW_CHUNK_CONTENT, &b, NULL);
}

/* The slot for native block @p index, NULL when the index is out of bounds. */
static block_t *block_at(llmgw_stream_t *st, const json_t *index, int grow)
{
    anth_stream_t *as = st->priv;
    json_int_t k = json_is_integer(index) ? json_integer_value(index) : -1;

    if (k < 0 || k >= ANTHROPIC_MAX_BLOCKS)
        return NULL;
    if (grow)
        as->blocks =
            llmgw_prov_array_grow(st->call->pool, as->blocks, &as->cap, (int)k, 8, sizeof(block_t));
    return k < as->cap ? &as->blocks[k] : NULL;
}

static void note_model(llmgw_stream_t *st, const char *model)
{
    if (!st->model && model && *model)
        st->model = apr_pstrdup(st->call->pool, model);
}

static apr_status_t on_message_start(llmgw_stream_t *st, const json_t *ev)
{
    anth_stream_t *as = st->priv;
    json_t *msg = json_object_get(ev, "message");

    if (!json_is_object(msg))
        return llmgw_prov_malformed(st);
    if (!as->id)
        as->id = completion_id(st->call->pool, llmgw_json_str(msg, "id"), st->call->created);
    note_model(st, llmgw_json_str(msg, "model"));
    usage_update(&as->usage, json_object_get(msg, "usage"));
    usage_totals(&as->usage, &st->usage);
    return ensure_started(st);
}

static apr_status_t on_block_start(llmgw_stream_t *st, const json_t *ev)
{
    anth_stream_t *as = st->priv;
    json_t *cb = json_object_get(ev, "content_block");
    const char *type = llmgw_json_str(cb, "type");
    block_t *b = block_at(st, json_object_get(ev, "index"), 1);
    const char *id, *name;

    if (!b || !json_is_object(cb))
        return llmgw_prov_malformed(st);
    if (str_eq(type, "text")) {
        b->kind = BLOCK_TEXT;
        return emit_text(st, json_object_get(cb, "text"));
    }
    if (!str_eq(type, "tool_use") || (as->legacy && as->tools > 0)) {
        b->kind = BLOCK_IGNORED; /* thinking, server tools, a 2nd legacy call... */
        return APR_SUCCESS;
    }
    id = llmgw_json_str(cb, "id");
    name = llmgw_json_str(cb, "name");
    if (!id || !name)
        return llmgw_prov_malformed(st);
    b->kind = BLOCK_TOOL;
    b->tool = as->tools++;
    return emit_tool(st, b->tool, id, name, NULL);
}

static apr_status_t on_block_delta(llmgw_stream_t *st, const json_t *ev)
{
    json_t *delta = json_object_get(ev, "delta");
    const char *type = llmgw_json_str(delta, "type");
    block_t *b = block_at(st, json_object_get(ev, "index"), 0);
    json_t *partial;

    if (!json_is_object(delta))
        return llmgw_prov_malformed(st);
    if (str_eq(type, "text_delta")) {
        if (b && b->kind != BLOCK_TEXT && b->kind != BLOCK_UNKNOWN)
            return APR_SUCCESS;
        return emit_text(st, json_object_get(delta, "text"));
    }
    if (!str_eq(type, "input_json_delta") || !b || b->kind != BLOCK_TOOL)
        return APR_SUCCESS; /* thinking, signatures, citations, server tools */
    partial = json_object_get(delta, "partial_json");
    if (!json_is_string(partial) || json_string_length(partial) == 0)
        return APR_SUCCESS;
    return emit_tool(st, b->tool, NULL, NULL, partial);
}

static apr_status_t emit_finish(llmgw_stream_t *st, const char *stop_reason)
{
    anth_stream_t *as = st->priv;
    apr_status_t rv;

    if ((rv = ensure_started(st)) != APR_SUCCESS)
        return rv;
    as->finished = 1;
    st->finish_seen = 1;
    return emit_delta(st, LLMGW_CHUNK_CONTENT, "{}", finish_reason(stop_reason, as->legacy));
}

static apr_status_t on_message_delta(llmgw_stream_t *st, const json_t *ev)
{
    anth_stream_t *as = st->priv;
    json_t *usage = json_object_get(ev, "usage");
    const char *stop = llmgw_json_str(json_object_get(ev, "delta"), "stop_reason");

    if (json_is_object(usage)) {
        usage_update(&as->usage, usage);
        usage_totals(&as->usage, &st->usage);
        st->usage_seen = 1;
    }
    if (!stop || as->finished)
        return APR_SUCCESS;
    return emit_finish(st, stop);
}

/* The tail of a complete stream: the usage chunk if asked, then [DONE]. */
static apr_status_t emit_tail(llmgw_stream_t *st)
{
    anth_stream_t *as = st->priv;
    apr_status_t rv;

    if (st->call->include_usage) {
        llmgw_json_buf_t b;

        llmgw_json_buf_init(&b);
        chunk_open(st, &b);
        llmgw_json_buf_lit(&b, ",\"choices\":[],\"usage\":");
        write_usage(&b, &as->usage);
        llmgw_json_buf_lit(&b, "}");
        if ((rv = llmgw_prov_emit_frame(st, LLMGW_CHUNK_FINAL, &b)) != APR_SUCCESS)
            return rv;
    }
    return llmgw_prov_emit_done(st);
}

/* message_stop ends the message even without a stop_reason ("null -> stop"). */
static apr_status_t on_message_stop(llmgw_stream_t *st)
{
    anth_stream_t *as = st->priv;
    apr_status_t rv;

    if (!as->finished && (rv = emit_finish(st, NULL)) != APR_SUCCESS)
        return rv;
    rv = emit_tail(st);
    return rv == APR_SUCCESS ? APR_EOF : rv;
}

/* An in-band error: mapped as the same error over HTTP would be (providers.md 5.7). */
static apr_status_t on_error_event(llmgw_stream_t *st, const json_t *ev)
{
    json_t *e = json_object_get(ev, "error");
    const char *type = llmgw_json_str(e, "type");

    st->error = map_error(st->call->pool, status_of_type(type), json_is_object(e) ? e : NULL);
    if (!llmgw_json_str(e, "message"))
        st->error->message = "upstream reported an error during the stream";
    if (!st->error->code)
        st->error->code = "bad_gateway";
    return LLMGW_EUPSTREAM;
}

static apr_status_t dispatch(llmgw_stream_t *st, const char *type, const json_t *ev)
{
    if (str_eq(type, "content_block_delta"))
        return on_block_delta(st, ev);
    if (str_eq(type, "content_block_start"))
        return on_block_start(st, ev);
    if (str_eq(type, "message_start"))
        return on_message_start(st, ev);
    if (str_eq(type, "message_delta"))
        return on_message_delta(st, ev);
    if (str_eq(type, "message_stop"))
        return on_message_stop(st);
    if (str_eq(type, "error"))
        return on_error_event(st, ev);
    return APR_SUCCESS; /* ping, content_block_stop, and types added later */
}

static apr_status_t anthropic_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)
{
    const char *d, *type;
    apr_size_t n;
    json_t *j;
    apr_status_t rv;

    if (st->done)
        return APR_EOF;
    llmgw_prov_event_data(ev, &d, &n);
    if (n == 0)
        return APR_SUCCESS;
    j = llmgw_json_load(d, n, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return llmgw_prov_malformed(st);
    }
    /* The data's own type is authoritative; the event name is only a fallback. */
    type = llmgw_json_str(j, "type");
    if (!type && ev->event && *ev->event)
        type = ev->event;
    rv = dispatch(st, type, j);
    json_decref(j);
    return rv;
}

static apr_status_t anthropic_stream_end(llmgw_stream_t *st)
{
    anth_stream_t *as = st->priv;

    if (st->done)
        return APR_SUCCESS;
    /* A stop_reason arrived: only message_stop is missing, nothing of the answer. */
    if (as->finished)
        return emit_tail(st);
    return llmgw_prov_stream_fail(st, LLMGW_ESTREAM, "upstream_stream_truncated",
                                  "upstream stream ended before the response was complete");
}

const llmgw_provider_t llmgw_provider_anthropic = {
    .type = "anthropic",
    .apis = LLMGW_API_CHAT,
    .build_request = llmgw_anthropic_build_request,
    .prepare = llmgw_anthropic_prepare,
    .parse_response = anthropic_parse_response,
    .parse_error = anthropic_parse_error,
    .stream_init = anthropic_stream_init,
    .stream_event = anthropic_stream_event,
    .stream_end = anthropic_stream_end,
};
