/*
 * The `google` translator (providers.md 6): Gemini on AI Studio and on
 * Vertex AI. One JSON translation, two transports:
 *
 *   AI Studio  <endpoint>/v1beta/models/<model>:<method>     x-goog-api-key
 *   Vertex AI  <host>/v1/projects/<p>/locations/<l>/publishers/google/models/<model>:<method>
 *              Authorization: Bearer <call->access_token>
 *
 * The native body is built from scratch (unknown client fields are never
 * copied). Messages become `contents` with strict user/model alternation:
 * tool results are gathered into one user content that answers the model
 * turn directly before it, in the order of its calls (providers.md 6.4).
 *
 * Thought signatures travel inside the OpenAI tool-call id as
 * "<base>__thought__<signature>" (6.6), so a stateless client round-trips
 * them without knowing; base ids we made up ("call_gw...") never go back to
 * Google, ids Google made do.
 *
 * Gemini streams have no terminator: every event is a partial response, the
 * finishReason comes with the last one and the end of the HTTP body ends the
 * stream. Finish chunks are therefore written in stream_end, which refuses
 * (LLMGW_ESTREAM) a body that ended before every candidate had finished.
 *
 * This file holds the answers, errors and streams and the translator's
 * table; the request side is llmgw_provider_google_request.c.
 *
 * Memory: requests and whole answers use call->pool; stream events use only
 * jansson's heap and a stack buffer (plus a few one-off allocations when the
 * stream starts), so a long stream does not grow the request pool.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"
#include "llmgw_provider_google.h"
#include "llmgw_provider_google_private.h"

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

/* A non-negative token count, 0 when absent or nonsense. */
static apr_int64_t count_of(const json_t *obj, const char *key)
{
    apr_int64_t n = 0;

    llmgw_prov_token_count(obj, key, &n);
    return n;
}

/* ---------------------------------------------------------------------- */
/* Answers: pieces shared by responses and streams                        */
/* ---------------------------------------------------------------------- */

/* finishReason -> finish_reason (6.8): STOP, OTHER, MALFORMED_FUNCTION_CALL and the rest end
 * normally; the filters' reasons are content_filter. */
static const llmgw_prov_finish_map_t finish_map[] = {{"MAX_TOKENS", "length"},
                                                     {"CONTINUATION", "length"},
                                                     {"SAFETY", "content_filter"},
                                                     {"BLOCKLIST", "content_filter"},
                                                     {"PROHIBITED_CONTENT", "content_filter"},
                                                     {"SPII", "content_filter"},
                                                     {"IMAGE_SAFETY", "content_filter"},
                                                     {"IMAGE_PROHIBITED_CONTENT", "content_filter"},
                                                     {"LANGUAGE", "content_filter"},
                                                     {"RECITATION", "content_filter"},
                                                     {"IMAGE_RECITATION", "content_filter"},
                                                     {NULL, NULL}};

/*
 * finishReason -> finish_reason. *filter receives a static copy of the
 * native reason when the answer was cut by a filter, else NULL.
 */
static const char *map_finish(const char *native, const char **filter)
{
    const llmgw_prov_finish_map_t *row = llmgw_prov_finish_row(finish_map, native);

    *filter = row && strcmp(row->finish, "content_filter") == 0 ? row->native : NULL;
    return llmgw_prov_finish_reason(finish_map, native, 0);
}

/* Where a filter cut the answer, the client learns why (as a refusal). */
static json_t *filter_refusal(const char *reason)
{
    return json_sprintf("Gemini stopped the response (finishReason %s).", reason);
}

typedef struct {
    llmgw_usage_t u;
    apr_int64_t cached;
    apr_int64_t thoughts;
} gusage_t;

/* usageMetadata -> usage (6.8): thinking counts as completion, tool-use prompt as prompt. */
static void read_usage(const json_t *um, gusage_t *g)
{
    memset(g, 0, sizeof(*g));
    if (!json_is_object(um))
        return;
    g->u.present = 1;
    g->thoughts = count_of(um, "thoughtsTokenCount");
    g->cached = count_of(um, "cachedContentTokenCount");
    g->u.prompt_tokens = llmgw_prov_tokens_sum(count_of(um, "promptTokenCount"),
                                               count_of(um, "toolUsePromptTokenCount"));
    g->u.completion_tokens =
        llmgw_prov_tokens_sum(count_of(um, "candidatesTokenCount"), g->thoughts);
    g->u.total_tokens = llmgw_prov_tokens_sum(g->u.prompt_tokens, g->u.completion_tokens);
    g->u.cached_tokens = g->cached; /* billed lower (pricing: cachedInput) */
    g->u.reasoning_tokens = g->thoughts;
}

static json_t *usage_json(const gusage_t *g)
{
    json_t *j = llmgw_prov_usage_json(&g->u);

    llmgw_prov_usage_detail(j, "prompt_tokens_details", "cached_tokens", g->cached);
    llmgw_prov_usage_detail(j, "completion_tokens_details", "reasoning_tokens", g->thoughts);
    return j;
}

/* The OpenAI id of a functionCall part (6.6), new reference. */
static json_t *tool_call_id(const json_t *part)
{
    const char *nid = llmgw_json_str(json_object_get(part, "functionCall"), "id");
    const char *sig = llmgw_json_str(part, "thoughtSignature");
    char base[sizeof(GW_ID_PREFIX) + RANDOM_ID_CHARS];

    if (!nid || !*nid) {
        memcpy(base, GW_ID_PREFIX, sizeof(GW_ID_PREFIX) - 1);
        llmgw_prov_random_chars(base + sizeof(GW_ID_PREFIX) - 1, RANDOM_ID_CHARS, NULL, NULL);
        base[sizeof(base) - 1] = '\0';
        nid = base;
    }
    if (sig && *sig)
        return json_sprintf("%s" THOUGHT_SEP "%s", nid, sig);
    return json_string(nid);
}

/* A functionCall part -> an OpenAI tool call (new reference), NULL when malformed. */
static json_t *tool_call_json(const json_t *part)
{
    json_t *fc = json_object_get(part, "functionCall");
    const char *name = llmgw_json_str(fc, "name");
    json_t *args = json_object_get(fc, "args");
    json_t *empty = NULL, *out;
    char *text;

    if (!json_is_object(fc) || !name || !*name ||
        (!llmgw_json_is_absent(args) && !json_is_object(args)))
        return NULL;
    if (llmgw_json_is_absent(args))
        args = empty = json_object();
    text = json_dumps(args, JSON_COMPACT);
    json_decref(empty);
    if (!text)
        return NULL;
    out = json_pack("{s:o, s:s, s:{s:s, s:s}}", "id", tool_call_id(part), "type", "function",
                    "function", "name", name, "arguments", text);
    free(text);
    return out;
}

/* The legacy shape of a tool call: {"name","arguments"} (new reference). */
static json_t *legacy_call(const json_t *tool_call)
{
    return json_deep_copy(json_object_get(tool_call, "function"));
}

static json_t *token_bytes(const char *token)
{
    json_t *b = json_array();
    const unsigned char *s;

    for (s = (const unsigned char *)token; *s; s++)
        json_array_append_new(b, json_integer(*s));
    return b;
}

static json_t *logprob_entry(const json_t *c)
{
    const char *token = llmgw_json_str(c, "token");
    json_t *lp = json_object_get(c, "logProbability");

    if (!token)
        token = "";
    return json_pack("{s:s, s:f, s:o}", "token", token, "logprob",
                     json_is_number(lp) ? json_number_value(lp) : 0.0, "bytes", token_bytes(token));
}

/* logprobsResult -> OpenAI choice logprobs (new reference). */
static json_t *logprobs_json(const json_t *lr)
{
    json_t *chosen = json_object_get(lr, "chosenCandidates");
    json_t *top = json_object_get(lr, "topCandidates");
    json_t *content = json_array();
    size_t i, j;
    json_t *c, *t;

    json_array_foreach (chosen, i, c) {
        json_t *entry = logprob_entry(c);
        json_t *alts = json_array();

        json_array_foreach (json_object_get(json_array_get(top, i), "candidates"), j, t) {
            json_array_append_new(alts, logprob_entry(t));
        }
        json_object_set_new(entry, "top_logprobs", alts);
        json_array_append_new(content, entry);
    }
    return json_pack("{s:o, s:n}", "content", content, "refusal");
}

/* The position of a candidate: its `index`, else its place in the array; -1 if absurd. */
static int candidate_index(const json_t *cand, size_t pos)
{
    json_t *v = json_object_get(cand, "index");
    json_int_t k = json_is_integer(v) ? json_integer_value(v) : (json_int_t)pos;

    return k >= 0 && k < GOOGLE_MAX_CHOICES ? (int)k : -1;
}

/* "chatcmpl-<responseId>", or a fresh id (jansson string, new reference). */
static json_t *completion_id(const json_t *resp)
{
    const char *rid = llmgw_json_str(resp, "responseId");
    char gen[RANDOM_ID_CHARS + 1];

    if (rid && *rid)
        return json_sprintf("chatcmpl-%s", rid);
    llmgw_prov_random_chars(gen, RANDOM_ID_CHARS, NULL, NULL);
    gen[RANDOM_ID_CHARS] = '\0';
    return json_sprintf("chatcmpl-gw%s", gen);
}

/* ---------------------------------------------------------------------- */
/* Answers: non-streaming chat                                            */
/* ---------------------------------------------------------------------- */

/* One candidate -> one choice (new reference), NULL when malformed. */
static json_t *candidate_choice(llmgw_call_t *call, const json_t *cand, size_t pos)
{
    int k = candidate_index(cand, pos);
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_t *calls = json_array(), *message, *choice, *lr;
    const char *text = NULL, *filter, *finish;
    size_t i;
    json_t *part;

    if (!json_is_object(cand) || k < 0 || (!llmgw_json_is_absent(parts) && !json_is_array(parts))) {
        json_decref(calls);
        return NULL;
    }
    json_array_foreach (parts, i, part) {
        const char *t = llmgw_json_str(part, "text");

        if (json_object_get(part, "functionCall")) {
            json_t *tc = tool_call_json(part);
            if (!tc) {
                json_decref(calls);
                return NULL;
            }
            json_array_append_new(calls, tc);
        }
        else if (t && !json_is_true(json_object_get(part, "thought"))) {
            text = apr_pstrcat(call->pool, text ? text : "", t, NULL);
        }
    }
    finish = map_finish(llmgw_json_str(cand, "finishReason"), &filter);
    message = json_pack("{s:s, s:s?, s:n}", "role", "assistant", "content", text, "refusal");
    if (filter)
        json_object_set_new(message, "refusal", filter_refusal(filter));
    if (json_array_size(calls) > 0 && llmgw_prov_legacy_functions(call->body)) {
        json_object_set_new(message, "function_call", legacy_call(json_array_get(calls, 0)));
        finish = "function_call";
    }
    else if (json_array_size(calls) > 0) {
        json_object_set(message, "tool_calls", calls);
        finish = "tool_calls"; /* Gemini says STOP for tool calls */
    }
    json_decref(calls);
    choice = json_pack("{s:i, s:o, s:n, s:s}", "index", k, "message", message, "logprobs",
                       "finish_reason", finish);
    lr = json_object_get(cand, "logprobsResult");
    if (json_is_object(lr) && json_is_true(json_object_get(call->body, "logprobs")))
        json_object_set_new(choice, "logprobs", logprobs_json(lr));
    return choice;
}

/* A prompt blocked before any candidate (6.8 Rule): one empty content_filter choice. */
static json_t *blocked_choice(void)
{
    return json_pack("{s:i, s:{s:s, s:n, s:n}, s:n, s:s}", "index", 0, "message", "role",
                     "assistant", "content", "refusal", "logprobs", "finish_reason",
                     "content_filter");
}

static apr_status_t parse_chat(llmgw_call_t *call, json_t *j, llmgw_response_t *out,
                               llmgw_error_t **err)
{
    json_t *cands = json_object_get(j, "candidates");
    const char *block = llmgw_json_str(json_object_get(j, "promptFeedback"), "blockReason");
    const char *model = llmgw_json_str(j, "modelVersion");
    json_t *choices = json_array(), *resp, *c;
    gusage_t g;
    size_t i;

    if (!llmgw_json_is_absent(cands) && !json_is_array(cands)) {
        json_decref(choices);
        *err = llmgw_prov_bad_response(call->pool, "candidates is not an array");
        return LLMGW_EUPSTREAM;
    }
    json_array_foreach (cands, i, c) {
        json_t *choice = candidate_choice(call, c, i);
        if (!choice) {
            json_decref(choices);
            *err = llmgw_prov_bad_response(call->pool, "malformed candidate");
            return LLMGW_EUPSTREAM;
        }
        json_array_append_new(choices, choice);
    }
    if (json_array_size(choices) == 0 && block)
        json_array_append_new(choices, blocked_choice());
    if (json_array_size(choices) == 0) {
        json_decref(choices);
        *err = llmgw_prov_bad_response(call->pool, "no candidates");
        return LLMGW_EUPSTREAM;
    }
    out->model = model && *model ? apr_pstrdup(call->pool, model) : call->model;
    resp =
        json_pack("{s:o, s:s, s:I, s:s, s:o}", "id", completion_id(j), "object", "chat.completion",
                  "created", (json_int_t)call->created, "model", out->model, "choices", choices);
    read_usage(json_object_get(j, "usageMetadata"), &g);
    out->usage = g.u;
    if (g.u.present)
        json_object_set_new(resp, "usage", usage_json(&g));
    out->body = llmgw_json_dump(call->pool, resp, &out->len);
    json_decref(resp);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Answers: embeddings                                                    */
/* ---------------------------------------------------------------------- */

/* The vectors of any of the three native shapes (borrowed values arrays in @p out). */
static int embedding_vectors(const json_t *j, json_t *out, apr_int64_t *tokens, int *counted)
{
    json_t *single = json_object_get(json_object_get(j, "embedding"), "values");
    json_t *list = json_object_get(j, "embeddings");
    json_t *preds = json_object_get(j, "predictions");
    size_t i;
    json_t *e;

    *tokens = 0;
    *counted = 0;
    if (single) {
        json_array_append(out, single);
        if (json_is_object(json_object_get(j, "usageMetadata"))) {
            *tokens = count_of(json_object_get(j, "usageMetadata"), "promptTokenCount");
            *counted = 1;
        }
        return 1;
    }
    if (json_is_array(list)) {
        json_array_foreach (list, i, e) {
            json_array_append(out, json_object_get(e, "values"));
        }
        return 1;
    }
    if (!json_is_array(preds))
        return 0;
    json_array_foreach (preds, i, e) {
        json_t *emb = json_object_get(e, "embeddings");
        json_t *stats = json_object_get(emb, "statistics");

        json_array_append(out, json_object_get(emb, "values"));
        if (json_is_object(stats)) {
            *tokens = llmgw_prov_tokens_sum(*tokens, count_of(stats, "token_count"));
            *counted = 1;
        }
    }
    return 1;
}

static int numbers_only(const json_t *values)
{
    size_t i;
    json_t *v;

    if (!json_is_array(values) || json_array_size(values) == 0)
        return 0;
    json_array_foreach (values, i, v) {
        if (!json_is_number(v))
            return 0;
    }
    return 1;
}

static apr_status_t parse_embeddings(llmgw_call_t *call, const json_t *j, llmgw_response_t *out,
                                     llmgw_error_t **err)
{
    json_t *input = json_object_get(call->body, "input");
    size_t want = json_is_array(input) ? json_array_size(input) : 1, i;
    int b64 = strcmp(llmgw_json_str(call->body, "encoding_format")
                         ? llmgw_json_str(call->body, "encoding_format")
                         : "",
                     "base64") == 0;
    json_t *vectors = json_array(), *data = json_array(), *v, *resp;
    apr_int64_t tokens;
    int counted;

    if (!embedding_vectors(j, vectors, &tokens, &counted) || json_array_size(vectors) != want) {
        json_decref(vectors);
        json_decref(data);
        *err = llmgw_prov_bad_response(call->pool, "embeddings do not match the inputs");
        return LLMGW_EUPSTREAM;
    }
    json_array_foreach (vectors, i, v) {
        if (!numbers_only(v)) {
            json_decref(vectors);
            json_decref(data);
            *err = llmgw_prov_bad_response(call->pool, "embedding values are not numbers");
            return LLMGW_EUPSTREAM;
        }
        json_array_append_new(
            data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", (int)i, "embedding",
                            b64 ? llmgw_prov_float32_base64(call->pool, v) : json_incref(v)));
    }
    json_decref(vectors);
    resp = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                     call->model, "usage", "prompt_tokens", (json_int_t)tokens, "total_tokens",
                     (json_int_t)tokens);
    memset(&out->usage, 0, sizeof(out->usage));
    out->usage.present = counted;
    out->usage.prompt_tokens = out->usage.total_tokens = tokens;
    out->model = call->model;
    out->body = llmgw_json_dump(call->pool, resp, &out->len);
    json_decref(resp);
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

static apr_status_t google_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                          llmgw_response_t *out, llmgw_error_t **err)
{
    json_t *j = llmgw_json_load(body ? body : "", body ? len : 0, 0, NULL);
    apr_status_t rv;

    if (!json_is_object(j)) {
        json_decref(j);
        *err = llmgw_prov_bad_response(call->pool, "not a JSON object");
        return LLMGW_EUPSTREAM;
    }
    if (call->api == LLMGW_API_EMBEDDINGS)
        rv = parse_embeddings(call, j, out, err);
    else
        rv = parse_chat(call, j, out, err);
    json_decref(j);
    return rv;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/* Does any details[] entry (google.rpc.ErrorInfo) carry this reason? */
static int has_reason(const json_t *e, const char *reason)
{
    size_t i;
    json_t *d;

    json_array_foreach (json_object_get(e, "details"), i, d) {
        const char *r = llmgw_json_str(d, "reason");
        if (r && strcmp(r, reason) == 0)
            return 1;
    }
    return 0;
}

/* A Google error object ({"code","message","status","details"}) in the OpenAI shape. */
static llmgw_error_t *google_error(apr_pool_t *p, int status, const json_t *e)
{
    const char *gstatus = llmgw_json_str(e, "status");
    const char *msg = llmgw_json_str(e, "message");
    char *code = NULL;

    if (llmgw_prov_credentials_refused(status) || has_reason(e, "API_KEY_INVALID") ||
        (gstatus &&
         (strcmp(gstatus, "UNAUTHENTICATED") == 0 || strcmp(gstatus, "PERMISSION_DENIED") == 0)))
        return llmgw_prov_auth_failed(p, status);
    msg = llmgw_prov_upstream_message(p, msg, status);
    if (gstatus && *gstatus) {
        char *s;
        code = apr_pstrdup(p, gstatus);
        for (s = code; *s; s++)
            *s = (char)apr_tolower(*s);
    }
    /* Billing or region: the gateway's account, not the client's request. */
    if (gstatus && strcmp(gstatus, "FAILED_PRECONDITION") == 0)
        return llmgw_error_make(p, 502, "server_error", code, NULL, "%s", msg);
    if (status == 404)
        return llmgw_error_make(p, 404, NULL, "model_not_found", "model", "%s", msg);
    /* "The input token count (N) exceeds the maximum number of tokens allowed (M)." */
    if (status == 400 && llmgw_prov_mentions(msg, "token count") &&
        llmgw_prov_mentions(msg, "exceeds the maximum number of tokens"))
        return llmgw_prov_context_exceeded(p, msg);
    return llmgw_error_make(p, status, NULL, code, NULL, "%s", msg);
}

/* The error object of a Google error body, also in the array form ([{"error":...}]). */
static json_t *error_object(json_t *j)
{
    if (json_is_array(j))
        j = json_array_get(j, 0);
    return json_object_get(j, "error");
}

static llmgw_error_t *google_parse_error(llmgw_call_t *call, int status, const char *body,
                                         apr_size_t len)
{
    apr_pool_t *p = call->pool;
    json_t *j, *e;
    llmgw_error_t *out;

    if (llmgw_prov_credentials_refused(status))
        return llmgw_prov_auth_failed(p, status);
    if (status < 400 || status > 599)
        return llmgw_prov_odd_status(p, status);
    j = body && len ? llmgw_json_load(body, len, 0, NULL) : NULL;
    e = error_object(j);
    if (json_is_object(e))
        out = google_error(p, status, e);
    else
        out = llmgw_error_make(p, status, NULL, NULL, NULL, "upstream returned HTTP %d", status);
    json_decref(j);
    return llmgw_error_from_upstream(p, out);
}

apr_interval_time_t llmgw_google_retry_delay(const char *body, apr_size_t len)
{
    json_t *j = body && len ? llmgw_json_load(body, len, 0, NULL) : NULL;
    apr_interval_time_t out = -1;
    size_t i;
    json_t *d;

    json_array_foreach (json_object_get(error_object(j), "details"), i, d) {
        const char *type = llmgw_json_str(d, "@type");
        const char *delay = llmgw_json_str(d, "retryDelay");

        if (type && delay && strstr(type, "google.rpc.RetryInfo")) {
            out = llmgw_go_duration_parse(delay);
            break;
        }
    }
    json_decref(j);
    return out;
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

/* One candidate of a stream. */
typedef struct {
    int seen;             /* the candidate has appeared */
    int role_sent;        /* its role chunk went out */
    int ntools;           /* tool calls emitted */
    const char *finish;   /* mapped finish_reason once the native one arrived */
    const char *filtered; /* native reason when a filter cut it (static) */
    int blocked;          /* the prompt itself was blocked (6.8: no refusal text) */
} gcand_t;

/* Stream state in llmgw_stream_t.priv, from call->pool. */
typedef struct {
    gcand_t *cands;
    int cap;
    int seen;      /* highest candidate index + 1 */
    int expected;  /* candidates asked for (n) */
    int nfinished; /* candidates with a finishReason */
    const char *id;
    const char *model;
    int legacy;
    int logprobs;
    gusage_t usage;
} gstream_t;

static apr_status_t google_stream_init(llmgw_stream_t *st)
{
    gstream_t *gs = apr_pcalloc(st->call->pool, sizeof(*gs));

    gs->expected = llmgw_prov_choices_asked(st->call->body, GOOGLE_MAX_CHOICES);
    gs->legacy = llmgw_prov_legacy_functions(st->call->body);
    gs->logprobs = json_is_true(json_object_get(st->call->body, "logprobs"));
    st->priv = gs;
    return APR_SUCCESS;
}

/* Chunks are written, not built and dumped (llmgw_json.h): there is one per token. */
static void chunk_open(llmgw_stream_t *st, llmgw_json_buf_t *b)
{
    gstream_t *gs = st->priv;

    llmgw_prov_chunk_open(b, gs->id, st->call->created, gs->model);
}

/*
 * Emit the chunk for choice @p k with @p delta (stolen), or, when @p delta
 * is NULL, the text delta {"content": @p text}; @p logprobs (stolen) or
 * null; @p finish or null.
 */
static apr_status_t emit_chunk(llmgw_stream_t *st, llmgw_chunk_kind_e kind, int k, json_t *delta,
                               const char *text, json_t *logprobs, const char *finish)
{
    llmgw_json_buf_t b;

    llmgw_json_buf_init(&b);
    chunk_open(st, &b);
    llmgw_json_buf_lit(&b, ",\"choices\":[{\"index\":");
    llmgw_json_buf_int(&b, k);
    llmgw_json_buf_lit(&b, ",\"delta\":");
    if (delta) {
        llmgw_json_buf_value(&b, delta);
    }
    else {
        llmgw_json_buf_lit(&b, "{\"content\":");
        llmgw_json_buf_str(&b, text);
        llmgw_json_buf_lit(&b, "}");
    }
    llmgw_json_buf_lit(&b, ",\"logprobs\":");
    llmgw_json_buf_value(&b, logprobs);
    llmgw_prov_chunk_close(&b, finish, st->call->include_usage);
    json_decref(delta);
    json_decref(logprobs);
    return llmgw_prov_emit_frame(st, kind, &b);
}

/* Id and model come with the first event; they are fixed for the whole stream. */
static void note_first_event(llmgw_stream_t *st, const json_t *ev)
{
    gstream_t *gs = st->priv;
    const char *model;
    json_t *id;

    if (gs->id)
        return;
    id = completion_id(ev);
    gs->id = apr_pstrdup(st->call->pool, json_string_value(id));
    json_decref(id);
    model = llmgw_json_str(ev, "modelVersion");
    if (model && *model)
        st->model = apr_pstrdup(st->call->pool, model);
    gs->model = st->model ? st->model : st->call->model;
}

static gcand_t *candidate_slot(llmgw_stream_t *st, int k)
{
    gstream_t *gs = st->priv;

    gs->cands = llmgw_prov_array_grow(st->call->pool, gs->cands, &gs->cap, k, 2, sizeof(gcand_t));
    if (k >= gs->seen)
        gs->seen = k + 1;
    gs->cands[k].seen = 1;
    return &gs->cands[k];
}

static void update_finish_seen(llmgw_stream_t *st)
{
    gstream_t *gs = st->priv;

    st->finish_seen = gs->nfinished >= (gs->seen > gs->expected ? gs->seen : gs->expected);
}

static apr_status_t emit_role(llmgw_stream_t *st, int k, gcand_t *c)
{
    if (c->role_sent)
        return APR_SUCCESS;
    c->role_sent = 1;
    return emit_chunk(st, LLMGW_CHUNK_PREAMBLE, k,
                      json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL,
                      NULL);
}

static apr_status_t emit_text(llmgw_stream_t *st, int k, const char *text, const json_t *lr)
{
    gstream_t *gs = st->priv;

    return emit_chunk(st, LLMGW_CHUNK_CONTENT, k, NULL, text,
                      lr && gs->logprobs ? logprobs_json(lr) : NULL, NULL);
}

/* A functionCall arrives whole: one chunk with the complete arguments (6.9). */
static apr_status_t emit_tool_call(llmgw_stream_t *st, int k, gcand_t *c, const json_t *part)
{
    gstream_t *gs = st->priv;
    json_t *tc = tool_call_json(part);
    json_t *delta;

    if (!tc)
        return llmgw_prov_malformed(st);
    if (gs->legacy) {
        /* Legacy clients get the first call as function_call; they cannot take more. */
        delta = c->ntools == 0 ? json_pack("{s:o}", "function_call", legacy_call(tc)) : NULL;
        json_decref(tc);
        c->ntools++;
        return delta ? emit_chunk(st, LLMGW_CHUNK_CONTENT, k, delta, NULL, NULL, NULL)
                     : APR_SUCCESS;
    }
    json_object_set_new(tc, "index", json_integer(c->ntools++));
    delta = json_pack("{s:[o]}", "tool_calls", tc);
    return emit_chunk(st, LLMGW_CHUNK_CONTENT, k, delta, NULL, NULL, NULL);
}

static void note_finish(llmgw_stream_t *st, gcand_t *c, const char *native)
{
    gstream_t *gs = st->priv;
    const char *filter;

    if (c->finish)
        return;
    c->finish = map_finish(native, &filter);
    c->filtered = filter;
    gs->nfinished++;
}

/* The new parts of one candidate, as they come. */
static apr_status_t on_candidate(llmgw_stream_t *st, const json_t *cand, size_t pos)
{
    int k = candidate_index(cand, pos);
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_t *lr = json_object_get(cand, "logprobsResult");
    const char *finish = llmgw_json_str(cand, "finishReason");
    gcand_t *c;
    size_t i;
    json_t *part;
    apr_status_t rv;

    if (!json_is_object(cand) || k < 0 || (!llmgw_json_is_absent(parts) && !json_is_array(parts)))
        return llmgw_prov_malformed(st);
    c = candidate_slot(st, k);
    if ((rv = emit_role(st, k, c)) != APR_SUCCESS)
        return rv;
    json_array_foreach (parts, i, part) {
        const char *text = llmgw_json_str(part, "text");

        if (json_object_get(part, "functionCall"))
            rv = emit_tool_call(st, k, c, part);
        else if (text && *text && !json_is_true(json_object_get(part, "thought")))
            rv = emit_text(st, k, text, json_is_object(lr) ? lr : NULL);
        if (rv != APR_SUCCESS)
            return rv;
        if (text && *text)
            lr = NULL; /* logprobs go with the first text of the event */
    }
    if (finish)
        note_finish(st, c, finish);
    return APR_SUCCESS;
}

/* No candidates: a blocked prompt (6.8), or an event with only usage. */
static apr_status_t on_no_candidates(llmgw_stream_t *st, const json_t *ev)
{
    gstream_t *gs = st->priv;
    const char *block = llmgw_json_str(json_object_get(ev, "promptFeedback"), "blockReason");
    gcand_t *c;

    if (!block)
        return APR_SUCCESS;
    c = candidate_slot(st, 0);
    if (!c->finish) {
        c->finish = "content_filter";
        c->blocked = 1;
        gs->nfinished++;
    }
    return emit_role(st, 0, c);
}

/* An in-band error from the upstream: the client will see its message. */
static apr_status_t stream_error_event(llmgw_stream_t *st, const json_t *e)
{
    json_t *code = json_object_get(e, "code");
    int status =
        json_is_integer(code) && json_integer_value(code) >= 400 && json_integer_value(code) <= 599
            ? (int)json_integer_value(code)
            : 502;

    st->error = google_error(st->call->pool, status, e);
    return LLMGW_EUPSTREAM;
}

static apr_status_t on_event(llmgw_stream_t *st, const json_t *ev)
{
    gstream_t *gs = st->priv;
    json_t *cands = json_object_get(ev, "candidates");
    json_t *um = json_object_get(ev, "usageMetadata");
    size_t i;
    json_t *c;
    apr_status_t rv = APR_SUCCESS;

    if (!llmgw_json_is_absent(json_object_get(ev, "error")))
        return stream_error_event(st, json_object_get(ev, "error"));
    if (!llmgw_json_is_absent(cands) && !json_is_array(cands))
        return llmgw_prov_malformed(st);
    note_first_event(st, ev);
    if (json_is_object(um)) {
        read_usage(um, &gs->usage); /* cumulative: the last one is final */
        st->usage = gs->usage.u;
        st->usage_seen = 1;
    }
    if (json_array_size(cands) == 0)
        rv = on_no_candidates(st, ev);
    json_array_foreach (cands, i, c) {
        if ((rv = on_candidate(st, c, i)) != APR_SUCCESS)
            break;
    }
    update_finish_seen(st);
    return rv;
}

/* The chunk that carries the usage, after every choice finished. */
static apr_status_t emit_usage_chunk(llmgw_stream_t *st)
{
    gstream_t *gs = st->priv;
    json_t *usage = usage_json(&gs->usage);
    llmgw_json_buf_t b;

    llmgw_json_buf_init(&b);
    chunk_open(st, &b);
    llmgw_json_buf_lit(&b, ",\"choices\":[],\"usage\":");
    if (!usage)
        b.failed = 1;
    llmgw_json_buf_value(&b, usage);
    llmgw_json_buf_lit(&b, "}");
    json_decref(usage);
    return llmgw_prov_emit_frame(st, LLMGW_CHUNK_FINAL, &b);
}

/* Finish chunks for every candidate, the usage chunk if asked, then [DONE]. */
static apr_status_t finalize(llmgw_stream_t *st)
{
    gstream_t *gs = st->priv;
    apr_status_t rv = APR_SUCCESS;
    int k;

    if (!st->finish_seen || !gs->id)
        return llmgw_prov_incomplete(st);
    for (k = 0; k < gs->seen && rv == APR_SUCCESS; k++) {
        gcand_t *c = &gs->cands[k];
        const char *finish = c->finish;

        if (!c->seen)
            continue;
        if (c->ntools > 0)
            finish = gs->legacy ? "function_call" : "tool_calls";
        rv = emit_role(st, k, c);
        if (rv == APR_SUCCESS && c->filtered && !c->blocked && c->ntools == 0)
            rv = emit_chunk(st, LLMGW_CHUNK_CONTENT, k,
                            json_pack("{s:o}", "refusal", filter_refusal(c->filtered)), NULL, NULL,
                            NULL);
        if (rv == APR_SUCCESS)
            rv = emit_chunk(st, LLMGW_CHUNK_CONTENT, k, json_object(), NULL, NULL, finish);
    }
    if (rv == APR_SUCCESS && st->call->include_usage && st->usage_seen)
        rv = emit_usage_chunk(st);
    if (rv == APR_SUCCESS)
        rv = llmgw_prov_emit_done(st);
    return rv;
}

static apr_status_t google_stream_event(llmgw_stream_t *st, const llmgw_sse_event_t *ev)
{
    const char *d;
    apr_size_t n;
    json_t *j;
    apr_status_t rv;

    if (st->done)
        return APR_EOF;
    llmgw_prov_event_data(ev, &d, &n);
    if (n == 0)
        return APR_SUCCESS;
    /* Gemini never sends this; a relay in front of it might. */
    if (llmgw_prov_is_done_marker(d, n)) {
        rv = finalize(st);
        return rv == APR_SUCCESS ? APR_EOF : rv;
    }
    j = llmgw_json_load(d, n, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return llmgw_prov_malformed(st);
    }
    rv = on_event(st, j);
    json_decref(j);
    return rv;
}

static apr_status_t google_stream_end(llmgw_stream_t *st)
{
    if (st->done)
        return APR_SUCCESS;
    return finalize(st);
}

const llmgw_provider_t llmgw_provider_google = {
    .type = "google",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = llmgw_google_build_request,
    .prepare = llmgw_google_prepare,
    .parse_response = google_parse_response,
    .parse_error = google_parse_error,
    .stream_init = google_stream_init,
    .stream_event = google_stream_event,
    .stream_end = google_stream_end,
    .retry_hint = llmgw_google_retry_delay,
    .remote_images = llmgw_google_remote_images,
};
