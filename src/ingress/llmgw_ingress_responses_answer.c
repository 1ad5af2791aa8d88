/*
 * The OpenAI Responses dialect, answer side (ingress.md 3.4-3.6, 4.7, 4.8):
 * a canonical chat.completion becomes a Response object, and canonical
 * chunks become the Responses event stream.
 *
 * The stream is a state machine over the items of the answer. Each item
 * (message, function call, reasoning summary) gets the next output_index
 * when it opens and is closed before the terminal event, so that
 * `output_item.done` and the final `response.output` carry the same items.
 * For "Checking." then one tool call, the events are:
 *
 *   seq 0  response.created             (PREAMBLE: held back by the glue
 *   seq 1  response.in_progress          until content follows)
 *   seq 2  response.output_item.added   output_index 0, message msg_gw…
 *   seq 3  response.content_part.added  content_index 0
 *   seq 4  response.output_text.delta   "Checking."
 *   seq 5  response.output_text.done
 *   seq 6  response.content_part.done
 *   seq 7  response.output_item.done   (the call closes the message first)
 *   seq 8  response.output_item.added   output_index 1, function_call fc_gw…
 *   seq 9  response.function_call_arguments.delta ...
 *   seq 10 response.function_call_arguments.done  (at finish_reason)
 *   seq 11 response.output_item.done
 *   seq 12 response.completed          (FINAL: only once the canonical stream
 *                                        ended, so that the usage chunk that
 *                                        follows finish_reason is in it)
 *
 * Memory: the state and one small struct per item come from st->pool; the
 * texts grow on the heap (a long answer must not grow the request pool per
 * token) and are freed by a cleanup of st->pool; events are built and
 * serialised on jansson's heap and released before the call returns.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_buf.h"
#include "llmgw_json.h"
#include "llmgw_responses.h"
#include "llmgw_responses_private.h"
#include "../providers/llmgw_provider_util.h"

/* ---------------------------------------------------------------------- */
/* Ids (ingress.md 2.4)                                                   */
/* ---------------------------------------------------------------------- */

const char *llmgw_responses_mint_id(apr_pool_t *p, const char *prefix, int n,
                                    llmgw_ingress_random_fn rnd, void *baton)
{
    apr_size_t plen = strlen(prefix);
    char *out;

    if (n < 1)
        n = 1;
    if (n > 64)
        n = 64;
    out = apr_palloc(p, plen + (apr_size_t)n + 1);
    memcpy(out, prefix, plen);
    llmgw_prov_random_chars(out + plen, (apr_size_t)n, rnd, baton);
    out[plen + (apr_size_t)n] = '\0';
    return out;
}

/* ---------------------------------------------------------------------- */
/* The Response object (ingress.md 3.4, 4.7)                              */
/* ---------------------------------------------------------------------- */

int llmgw_rsp_wants_summary(const json_t *client)
{
    json_t *r = json_object_get(client, "reasoning");
    const char *s = llmgw_json_str(r, "summary");

    if (!s)
        s = llmgw_json_str(r, "generate_summary");
    return s && strcmp(s, "none") != 0;
}

/* The client's member @p key, or @p dflt (stolen) when absent. */
static void echo(json_t *r, const json_t *c, const char *key, json_t *dflt)
{
    json_t *v = json_object_get(c, key);

    if (!llmgw_json_is_absent(v)) {
        json_object_set(r, key, v);
        json_decref(dflt);
    }
    else {
        json_object_set_new(r, key, dflt);
    }
}

json_t *llmgw_rsp_skeleton(const json_t *c, const char *id, apr_time_t created, const char *model,
                           const char *status)
{
    static const char *const OPTIONAL[] = {"safety_identifier", "prompt_cache_key", "service_tier",
                                           "top_logprobs",      "max_tool_calls",   NULL};
    json_t *r = json_object(), *reasoning = json_object_get(c, "reasoning");
    json_t *text = json_object_get(c, "text"), *v, *format;
    const char *const *k;
    const char *summary;

    if (!model || !*model)
        model = llmgw_json_str(c, "model");
    json_object_set_new(r, "id", json_string(id));
    json_object_set_new(r, "object", json_string("response"));
    json_object_set_new(r, "created_at", json_integer((json_int_t)created));
    json_object_set_new(r, "status", json_string(status));
    json_object_set_new(r, "background", json_false());
    json_object_set_new(r, "completed_at", json_null());
    json_object_set_new(r, "error", json_null());
    json_object_set_new(r, "incomplete_details", json_null());
    echo(r, c, "instructions", json_null());
    echo(r, c, "max_output_tokens", json_null());
    echo(r, c, "metadata", json_object());
    json_object_set_new(r, "model", json_string(model ? model : ""));
    json_object_set_new(r, "output", json_array());
    echo(r, c, "parallel_tool_calls", json_true());
    echo(r, c, "previous_response_id", json_null());
    summary = llmgw_json_str(reasoning, "summary");
    if (!summary)
        summary = llmgw_json_str(reasoning, "generate_summary");
    v = json_object_get(reasoning, "effort");
    json_object_set_new(r, "reasoning",
                        json_pack("{s:O, s:o}", "effort", json_is_string(v) ? v : json_null(),
                                  "summary", summary ? json_string(summary) : json_null()));
    json_object_set_new(r, "store", json_boolean(!json_is_false(json_object_get(c, "store"))));
    echo(r, c, "temperature", json_real(1.0));
    v = json_object_get(text, "format");
    format = json_is_object(v) ? json_incref(v) : json_pack("{s:s}", "type", "text");
    v = json_object_get(text, "verbosity");
    json_object_set_new(r, "text",
                        json_pack("{s:o, s:o}", "format", format, "verbosity",
                                  json_is_string(v) ? json_incref(v) : json_string("medium")));
    echo(r, c, "tool_choice", json_string("auto"));
    echo(r, c, "tools", json_array());
    echo(r, c, "top_p", json_real(1.0));
    echo(r, c, "truncation", json_string("disabled"));
    json_object_set_new(r, "usage", json_null());
    echo(r, c, "user", json_null());
    for (k = OPTIONAL; *k; k++) {
        v = json_object_get(c, *k);
        if (!llmgw_json_is_absent(v))
            json_object_set(r, *k, v);
    }
    return r;
}

json_t *llmgw_rsp_usage(const json_t *u)
{
    apr_int64_t in = 0, out = 0, cached = 0, reasoning = 0, written = 0;
    json_t *pd = json_object_get(u, "prompt_tokens_details");
    json_t *details;

    if (!json_is_object(u))
        return NULL;
    llmgw_prov_token_count(u, "prompt_tokens", &in);
    llmgw_prov_token_count(u, "completion_tokens", &out);
    llmgw_prov_token_count(pd, "cached_tokens", &cached);
    llmgw_prov_token_count(json_object_get(u, "completion_tokens_details"), "reasoning_tokens",
                           &reasoning);
    /* Both *_details objects always, zeros included: the SDK types require them. */
    details = json_pack("{s:I}", "cached_tokens", (json_int_t)cached);
    if (llmgw_prov_token_count(pd, "cache_write_tokens", &written))
        json_object_set_new(details, "cache_write_tokens", json_integer((json_int_t)written));
    return json_pack("{s:I, s:o, s:I, s:{s:I}, s:I}", "input_tokens", (json_int_t)in,
                     "input_tokens_details", details, "output_tokens", (json_int_t)out,
                     "output_tokens_details", "reasoning_tokens", (json_int_t)reasoning,
                     "total_tokens", (json_int_t)(in + out));
}

json_t *llmgw_responses_echo_request(apr_pool_t *p, const json_t *client, int stored)
{
    json_t *copy = json_is_object(client) ? json_copy((json_t *)client) : json_object();

    json_object_set_new(copy, "store", json_boolean(stored));
    return llmgw_json_pool_own(p, copy);
}

/* status and incomplete_details for a finish_reason (4.7). */
static const char *status_of(const char *finish, const char **reason)
{
    *reason = NULL;
    if (finish && strcmp(finish, "length") == 0)
        *reason = "max_output_tokens";
    else if (finish && strcmp(finish, "content_filter") == 0)
        *reason = "content_filter";
    return *reason ? "incomplete" : "completed";
}

/* Set status, completed_at and incomplete_details of a final response. */
static void finish_response(json_t *r, const char *finish, apr_time_t completed)
{
    const char *reason;
    const char *status = status_of(finish, &reason);

    json_object_set_new(r, "status", json_string(status));
    if (!reason)
        json_object_set_new(r, "completed_at", json_integer((json_int_t)completed));
    else
        json_object_set_new(r, "incomplete_details", json_pack("{s:s}", "reason", reason));
}

static json_t *text_part(const char *text, size_t len, json_t *annotations)
{
    return json_pack("{s:s, s:s%, s:o}", "type", "output_text", "text", text, len, "annotations",
                     annotations ? annotations : json_array());
}

static json_t *refusal_part(const char *text, size_t len)
{
    return json_pack("{s:s, s:s%}", "type", "refusal", "refusal", text, len);
}

static json_t *message_item(const char *id, const char *status, json_t *content)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", "message", "status", status,
                     "role", "assistant", "content", content);
}

static json_t *call_item(const char *id, const char *call_id, const char *name, const char *args,
                         size_t args_len, const char *status)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s%, s:s}", "type", "function_call", "id", id,
                     "call_id", call_id, "name", name, "arguments", args, args_len, "status",
                     status);
}

static json_t *reasoning_item(const char *id, const char *text, size_t len)
{
    return json_pack("{s:s, s:s, s:[{s:s, s:s%}]}", "id", id, "type", "reasoning", "summary",
                     "type", "summary_text", "text", text, len);
}

/* Canonical url_citation annotations, flattened (4.7); new reference. */
static json_t *flat_annotations(const json_t *message)
{
    json_t *out = json_array(), *a;
    size_t i;

    json_array_foreach (json_object_get(message, "annotations"), i, a) {
        json_t *c = json_object_get(a, "url_citation");
        json_t *flat;
        if (!json_is_object(c))
            continue;
        flat = json_pack("{s:s}", "type", "url_citation");
        json_object_update(flat, c);
        json_array_append_new(out, flat);
    }
    return out;
}

static int wants_logprobs(const json_t *client)
{
    size_t i;
    json_t *v;

    json_array_foreach (json_object_get(client, "include"), i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), "message.output_text.logprobs") == 0)
            return 1;
    }
    return 0;
}

/* The answer text: a string, or the texts of an array of parts. */
static const char *completion_text(apr_pool_t *p, const json_t *content, size_t *len)
{
    const char *out = "";
    size_t i;
    json_t *part;

    *len = 0;
    if (json_is_string(content)) {
        *len = json_string_length(content);
        return json_string_value(content);
    }
    json_array_foreach (content, i, part) {
        const char *t = llmgw_json_str(part, "text");
        if (t)
            out = apr_pstrcat(p, out, t, NULL);
    }
    *len = strlen(out);
    return out;
}

apr_status_t llmgw_responses_encode(apr_pool_t *p, const llmgw_responses_opts_t *opts,
                                    const json_t *client, const json_t *completion,
                                    apr_time_t created, json_t **out, llmgw_error_t **err)
{
    static const llmgw_responses_opts_t defaults = {0};
    json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *message = json_object_get(choice, "message");
    json_t *r, *output, *v, *call, *usage;
    const char *finish = llmgw_json_str(choice, "finish_reason");
    const char *reason, *item_status, *id, *text, *refusal;
    size_t len, i;

    if (!opts)
        opts = &defaults;
    if (!json_is_object(completion) || !json_is_object(message)) {
        *err = llmgw_prov_bad_response(p, "the upstream answer is not a chat completion");
        return LLMGW_EUPSTREAM;
    }
    item_status = strcmp(status_of(finish, &reason), "completed") == 0 ? "completed" : "incomplete";
    id = opts->id ? opts->id
                  : llmgw_responses_mint_id(p, "resp_gw", LLMGW_RESPONSES_ID_CHARS, opts->random,
                                            opts->random_baton);
    r = llmgw_rsp_skeleton(client, id, created, llmgw_json_str(completion, "model"), "completed");
    output = json_object_get(r, "output");
#define MINT(prefix)                                                                               \
    llmgw_responses_mint_id(p, prefix, LLMGW_RESPONSES_ITEM_ID_CHARS, opts->random,                \
                            opts->random_baton)
    v = json_object_get(message, "reasoning_content");
    if (llmgw_rsp_wants_summary(client) && json_is_string(v) && json_string_length(v) > 0)
        json_array_append_new(
            output, reasoning_item(MINT("rs_gw"), json_string_value(v), json_string_length(v)));
    text = completion_text(p, json_object_get(message, "content"), &len);
    refusal = llmgw_json_str(message, "refusal");
    if (len > 0 || (refusal && *refusal)) {
        json_t *content = json_array();
        if (len > 0) {
            json_t *part = text_part(text, len, flat_annotations(message));
            json_t *lp = json_object_get(json_object_get(choice, "logprobs"), "content");
            if (wants_logprobs(client))
                json_object_set_new(part, "logprobs",
                                    json_is_array(lp) ? json_incref(lp) : json_array());
            json_array_append_new(content, part);
        }
        if (refusal && *refusal)
            json_array_append_new(content, refusal_part(refusal, strlen(refusal)));
        json_array_append_new(output, message_item(MINT("msg_gw"), item_status, content));
    }
    json_array_foreach (json_object_get(message, "tool_calls"), i, call) {
        json_t *fn = json_object_get(call, "function");
        json_t *args = json_object_get(fn, "arguments");
        const char *call_id = llmgw_json_str(call, "id");
        const char *name = llmgw_json_str(fn, "name");
        /* Never an empty id: strict clients reject it (2.4). */
        if (!call_id || !*call_id)
            call_id = MINT("call_gw");
        json_array_append_new(output, call_item(MINT("fc_gw"), call_id, name ? name : "",
                                                json_is_string(args) ? json_string_value(args) : "",
                                                json_string_length(args), item_status));
    }
#undef MINT
    finish_response(r, finish, opts->completed ? opts->completed : apr_time_sec(apr_time_now()));
    usage = llmgw_rsp_usage(json_object_get(completion, "usage"));
    json_object_set_new(r, "usage", usage ? usage : json_null());
    *out = llmgw_json_pool_own(p, r);
    return APR_SUCCESS;
}

apr_status_t llmgw_rsp_encode_response(apr_pool_t *p, const json_t *client,
                                       const json_t *completion, apr_time_t created, json_t **out,
                                       llmgw_error_t **err)
{
    return llmgw_responses_encode(p, NULL, client, completion, created, out, err);
}

const char *llmgw_rsp_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len)
{
    return llmgw_error_json(p, e, len);
}

/* ---------------------------------------------------------------------- */
/* Stream state (ingress.md 4.8)                                          */
/* ---------------------------------------------------------------------- */

typedef enum { IT_MESSAGE, IT_CALL, IT_REASONING } item_kind_e;

typedef struct {
    item_kind_e kind;
    const char *id;
    int output_index;
    int open;
    int text_index;    /* message: content_index of the output_text part, -1: none */
    int refusal_index; /* message: content_index of the refusal part, -1: none */
    int next_content;
    int tool_index; /* call: the canonical tool_calls[].index */
    const char *call_id, *name;
    llmgw_buf_t text; /* message text, call arguments, reasoning text */
    llmgw_buf_t refusal;
    json_t *logprobs; /* message: the text's logprobs so far, when the client asked */
    json_t *done;     /* the item as output_item.done carried it */
} item_t;

typedef struct {
    llmgw_ingress_stream_t *st;
    apr_int64_t seq;
    int next_output_index;
    int committed, finished;
    int summary;
    int logprobs;              /* include: message.output_text.logprobs */
    apr_array_header_t *items; /* item_t *, in output_index order */
    item_t *msg, *reasoning;   /* the open message / reasoning item, or NULL */
    const char *model;         /* as the chunks report it */
    const char *finish;
    json_t *usage;        /* Responses usage, once the usage chunk came */
    json_t *final;        /* the terminal response object */
    llmgw_buf_t *collect; /* error_event: frames are collected, not emitted */
} rst_t;

static apr_status_t rst_cleanup(void *data)
{
    rst_t *s = data;
    int i;

    for (i = 0; i < s->items->nelts; i++) {
        item_t *it = APR_ARRAY_IDX(s->items, i, item_t *);
        llmgw_buf_free(&it->text);
        llmgw_buf_free(&it->refusal);
        json_decref(it->done);
        json_decref(it->logprobs);
        it->done = it->logprobs = NULL;
    }
    json_decref(s->usage);
    json_decref(s->final);
    s->usage = s->final = NULL;
    return APR_SUCCESS;
}

const json_t *llmgw_responses_stream_response(const llmgw_ingress_stream_t *st)
{
    const rst_t *s = st ? st->priv : NULL;

    return s ? s->final : NULL;
}

/* A new event {"type", "sequence_number"}: numbers run from 0 without gaps. */
static json_t *event_new(rst_t *s, const char *type)
{
    return json_pack("{s:s, s:I}", "type", type, "sequence_number", (json_int_t)s->seq++);
}

/* Frame and send @p ev (stolen): `event: <type>`, `data: <json>`, a blank line. */
static apr_status_t send_event(rst_t *s, llmgw_chunk_kind_e kind, json_t *ev)
{
    char stack[LLMGW_PROV_FRAME_STACK];
    const char *type = llmgw_json_str(ev, "type");
    char *data, *frame;
    apr_size_t tl, dl, n;
    apr_status_t rv;

    data = ev && type ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (!data) {
        json_decref(ev);
        return APR_ENOMEM;
    }
    tl = strlen(type);
    dl = strlen(data);
    n = 7 + tl + 7 + dl + 2;
    frame = n <= sizeof(stack) ? stack : malloc(n);
    if (!frame) {
        free(data);
        json_decref(ev);
        return APR_ENOMEM;
    }
    memcpy(frame, "event: ", 7);
    memcpy(frame + 7, type, tl);
    memcpy(frame + 7 + tl, "\ndata: ", 7);
    memcpy(frame + 14 + tl, data, dl);
    memcpy(frame + 14 + tl + dl, "\n\n", 2);
    rv = s->collect ? llmgw_buf_add(s->collect, frame, n)
                    : s->st->emit(s->st->baton, kind, NULL, frame, n);
    if (frame != stack)
        free(frame);
    free(data);
    json_decref(ev);
    return rv;
}

/* The member the item events name it by, and its output_index. */
static void set_item_ref(json_t *ev, const item_t *it)
{
    json_object_set_new(ev, "item_id", json_string(it->id));
    json_object_set_new(ev, "output_index", json_integer(it->output_index));
}

static apr_time_t created_at(const llmgw_ingress_stream_t *st)
{
    return st->created ? st->created : apr_time_sec(apr_time_now());
}

/* The preamble, at the first content (2.3): response.created, response.in_progress. */
static apr_status_t commit(rst_t *s)
{
    llmgw_ingress_stream_t *st = s->st;
    json_t *skel, *ev;
    apr_status_t rv;

    if (s->committed)
        return APR_SUCCESS;
    s->committed = 1;
    skel = llmgw_rsp_skeleton(st->client, st->id, created_at(st), s->model, "in_progress");
    ev = event_new(s, "response.created");
    json_object_set(ev, "response", skel);
    rv = send_event(s, LLMGW_CHUNK_PREAMBLE, ev);
    if (rv == APR_SUCCESS) {
        ev = event_new(s, "response.in_progress");
        json_object_set(ev, "response", skel);
        rv = send_event(s, LLMGW_CHUNK_PREAMBLE, ev);
    }
    json_decref(skel);
    return rv;
}

static item_t *item_new(rst_t *s, item_kind_e kind, const char *prefix)
{
    llmgw_ingress_stream_t *st = s->st;
    item_t *it = apr_pcalloc(st->pool, sizeof(*it));

    it->kind = kind;
    it->id = llmgw_responses_mint_id(st->pool, prefix, LLMGW_RESPONSES_ITEM_ID_CHARS, st->random,
                                     st->random_baton);
    it->output_index = s->next_output_index++;
    it->open = 1;
    it->text_index = it->refusal_index = -1;
    APR_ARRAY_PUSH(s->items, item_t *) = it;
    return it;
}

static apr_status_t item_added(rst_t *s, const item_t *it, json_t *item)
{
    json_t *ev = event_new(s, "response.output_item.added");

    json_object_set_new(ev, "output_index", json_integer(it->output_index));
    json_object_set_new(ev, "item", item);
    return send_event(s, LLMGW_CHUNK_CONTENT, ev);
}

/* output_item.done with the final item, which is also kept for `output`. */
static apr_status_t item_done(rst_t *s, item_t *it, json_t *item)
{
    json_t *ev = event_new(s, "response.output_item.done");

    it->open = 0;
    it->done = item;
    json_object_set_new(ev, "output_index", json_integer(it->output_index));
    json_object_set(ev, "item", item);
    return send_event(s, LLMGW_CHUNK_CONTENT, ev);
}

/* ---- message items ------------------------------------------------------ */

static apr_status_t close_message(rst_t *s, item_t *it, const char *status)
{
    json_t *parts = json_array(), *ev, *part;
    apr_status_t rv = APR_SUCCESS;
    int ci;

    s->msg = NULL;
    for (ci = 0; ci < it->next_content && rv == APR_SUCCESS; ci++) {
        int is_text = ci == it->text_index;
        const llmgw_buf_t *b = is_text ? &it->text : &it->refusal;
        ev = event_new(s, is_text ? "response.output_text.done" : "response.refusal.done");
        set_item_ref(ev, it);
        json_object_set_new(ev, "content_index", json_integer(ci));
        json_object_set_new(ev, is_text ? "text" : "refusal",
                            json_stringn(llmgw_buf_text(b), b->len));
        if (is_text)
            json_object_set_new(ev, "logprobs",
                                it->logprobs ? json_incref(it->logprobs) : json_array());
        if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
            break;
        part = is_text ? text_part(llmgw_buf_text(b), b->len, NULL)
                       : refusal_part(llmgw_buf_text(b), b->len);
        /* As the non-streaming answer has it (4.7). */
        if (is_text && s->logprobs)
            json_object_set_new(part, "logprobs",
                                it->logprobs ? json_incref(it->logprobs) : json_array());
        ev = event_new(s, "response.content_part.done");
        set_item_ref(ev, it);
        json_object_set_new(ev, "content_index", json_integer(ci));
        json_object_set(ev, "part", part);
        json_array_append_new(parts, part);
        rv = send_event(s, LLMGW_CHUNK_CONTENT, ev);
    }
    if (rv != APR_SUCCESS) {
        json_decref(parts);
        return rv;
    }
    return item_done(s, it, message_item(it->id, status, parts));
}

static apr_status_t close_reasoning(rst_t *s, item_t *it, const char *status);

static apr_status_t open_message(rst_t *s)
{
    apr_status_t rv;
    item_t *it;

    if (s->reasoning && (rv = close_reasoning(s, s->reasoning, "completed")) != APR_SUCCESS)
        return rv;
    it = s->msg = item_new(s, IT_MESSAGE, "msg_gw");
    return item_added(s, it,
                      json_pack("{s:s, s:s, s:s, s:s, s:[]}", "id", it->id, "type", "message",
                                "status", "in_progress", "role", "assistant", "content"));
}

/*
 * Text or refusal (@p refusal) for the open message, opening what is needed;
 * @p lp: the chunk's logprobs.content, or NULL.
 */
static apr_status_t on_text(rst_t *s, const char *t, apr_size_t n, int refusal, const json_t *lp)
{
    apr_status_t rv;
    item_t *it;
    int *index;
    json_t *ev;

    if (!s->msg && (rv = open_message(s)) != APR_SUCCESS)
        return rv;
    it = s->msg;
    index = refusal ? &it->refusal_index : &it->text_index;
    if (*index < 0) {
        *index = it->next_content++;
        ev = event_new(s, "response.content_part.added");
        set_item_ref(ev, it);
        json_object_set_new(ev, "content_index", json_integer(*index));
        json_object_set_new(ev, "part", refusal ? refusal_part("", 0) : text_part("", 0, NULL));
        if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
            return rv;
    }
    if ((rv = llmgw_buf_add(refusal ? &it->refusal : &it->text, t, n)) != APR_SUCCESS)
        return rv;
    ev = event_new(s, refusal ? "response.refusal.delta" : "response.output_text.delta");
    set_item_ref(ev, it);
    json_object_set_new(ev, "content_index", json_integer(*index));
    json_object_set_new(ev, "delta", json_stringn(t, n));
    if (!refusal) {
        if (s->logprobs && json_is_array(lp)) {
            if (!it->logprobs)
                it->logprobs = json_array();
            json_array_extend(it->logprobs, (json_t *)lp);
        }
        json_object_set_new(ev, "logprobs",
                            s->logprobs && json_is_array(lp) ? json_incref((json_t *)lp)
                                                             : json_array());
    }
    return send_event(s, LLMGW_CHUNK_CONTENT, ev);
}

/* ---- reasoning items (4.5 Option) ----------------------------------------- */

static json_t *summary_ref(rst_t *s, const item_t *it, const char *type)
{
    json_t *ev = event_new(s, type);

    set_item_ref(ev, it);
    json_object_set_new(ev, "summary_index", json_integer(0));
    return ev;
}

static apr_status_t close_reasoning(rst_t *s, item_t *it, const char *status)
{
    const char *text = llmgw_buf_text(&it->text);
    json_t *ev;
    apr_status_t rv;

    (void)status; /* reasoning items carry no status (3.4) */
    s->reasoning = NULL;
    ev = summary_ref(s, it, "response.reasoning_summary_text.done");
    json_object_set_new(ev, "text", json_stringn(text, it->text.len));
    if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
        return rv;
    ev = summary_ref(s, it, "response.reasoning_summary_part.done");
    json_object_set_new(
        ev, "part", json_pack("{s:s, s:s%}", "type", "summary_text", "text", text, it->text.len));
    if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
        return rv;
    return item_done(s, it, reasoning_item(it->id, text, it->text.len));
}

static apr_status_t on_reasoning(rst_t *s, const char *t, apr_size_t n)
{
    apr_status_t rv;
    item_t *it = s->reasoning;
    json_t *ev;

    if (!it) {
        if (s->msg && (rv = close_message(s, s->msg, "completed")) != APR_SUCCESS)
            return rv;
        it = s->reasoning = item_new(s, IT_REASONING, "rs_gw");
        rv = item_added(
            s, it, json_pack("{s:s, s:s, s:[]}", "id", it->id, "type", "reasoning", "summary"));
        if (rv != APR_SUCCESS)
            return rv;
        ev = summary_ref(s, it, "response.reasoning_summary_part.added");
        json_object_set_new(ev, "part",
                            json_pack("{s:s, s:s}", "type", "summary_text", "text", ""));
        if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
            return rv;
    }
    if ((rv = llmgw_buf_add(&it->text, t, n)) != APR_SUCCESS)
        return rv;
    ev = summary_ref(s, it, "response.reasoning_summary_text.delta");
    json_object_set_new(ev, "delta", json_stringn(t, n));
    return send_event(s, LLMGW_CHUNK_CONTENT, ev);
}

/* ---- function call items -------------------------------------------------- */

static apr_status_t close_call(rst_t *s, item_t *it, const char *status)
{
    json_t *ev = event_new(s, "response.function_call_arguments.done");
    apr_status_t rv;

    set_item_ref(ev, it);
    json_object_set_new(ev, "name", json_string(it->name));
    json_object_set_new(ev, "arguments", json_stringn(llmgw_buf_text(&it->text), it->text.len));
    if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
        return rv;
    return item_done(
        s, it,
        call_item(it->id, it->call_id, it->name, llmgw_buf_text(&it->text), it->text.len, status));
}

static item_t *find_call(rst_t *s, int tool_index)
{
    int i;

    for (i = 0; i < s->items->nelts; i++) {
        item_t *it = APR_ARRAY_IDX(s->items, i, item_t *);
        if (it->kind == IT_CALL && it->tool_index == tool_index)
            return it;
    }
    return NULL;
}

/* One delta.tool_calls[] fragment (@p pos: its place in the array, when it has no index). */
static apr_status_t on_tool_fragment(rst_t *s, const json_t *frag, int pos)
{
    llmgw_ingress_stream_t *st = s->st;
    json_t *index = json_object_get(frag, "index");
    json_t *fn = json_object_get(frag, "function");
    json_t *args = json_object_get(fn, "arguments");
    const char *name = llmgw_json_str(fn, "name");
    int tool_index = json_is_integer(index) ? (int)json_integer_value(index) : pos;
    item_t *it = find_call(s, tool_index);
    apr_status_t rv;
    json_t *ev;

    if (!json_is_object(frag))
        return APR_SUCCESS;
    if (!it) {
        const char *call_id = llmgw_json_str(frag, "id");
        if ((s->reasoning && (rv = close_reasoning(s, s->reasoning, "completed")) != APR_SUCCESS) ||
            (s->msg && (rv = close_message(s, s->msg, "completed")) != APR_SUCCESS))
            return rv;
        it = item_new(s, IT_CALL, "fc_gw");
        it->tool_index = tool_index;
        it->call_id = call_id && *call_id ? apr_pstrdup(st->pool, call_id)
                                          : llmgw_responses_mint_id(st->pool, "call_gw",
                                                                    LLMGW_RESPONSES_ITEM_ID_CHARS,
                                                                    st->random, st->random_baton);
        it->name = apr_pstrdup(st->pool, name ? name : "");
        rv = item_added(s, it, call_item(it->id, it->call_id, it->name, "", 0, "in_progress"));
        if (rv != APR_SUCCESS)
            return rv;
    }
    else if (!*it->name && name && *name) {
        it->name = apr_pstrdup(st->pool, name);
    }
    /* Empty fragments carry nothing; a closed call cannot take more. */
    if (!it->open || !json_is_string(args) || json_string_length(args) == 0)
        return APR_SUCCESS;
    if ((rv = llmgw_buf_add(&it->text, json_string_value(args), json_string_length(args))) !=
        APR_SUCCESS)
        return rv;
    ev = event_new(s, "response.function_call_arguments.delta");
    set_item_ref(ev, it);
    json_object_set(ev, "delta", args);
    return send_event(s, LLMGW_CHUNK_CONTENT, ev);
}

/* ---- closing -------------------------------------------------------------- */

/* Close every open item, in output_index order. */
static apr_status_t close_all(rst_t *s, const char *status)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < s->items->nelts && rv == APR_SUCCESS; i++) {
        item_t *it = APR_ARRAY_IDX(s->items, i, item_t *);
        if (!it->open)
            continue;
        rv = it->kind == IT_MESSAGE     ? close_message(s, it, status)
             : it->kind == IT_REASONING ? close_reasoning(s, it, status)
                                        : close_call(s, it, status);
    }
    return rv;
}

/* The final response object, `output` = every item as it was done; kept in s->final. */
static json_t *final_response(rst_t *s, const char *status)
{
    llmgw_ingress_stream_t *st = s->st;
    json_t *r = llmgw_rsp_skeleton(st->client, st->id, created_at(st), s->model, status);
    json_t *output = json_object_get(r, "output");
    int i;

    for (i = 0; i < s->items->nelts; i++) {
        item_t *it = APR_ARRAY_IDX(s->items, i, item_t *);
        if (it->done)
            json_array_append(output, it->done);
    }
    json_object_set(r, "usage", s->usage ? s->usage : json_null());
    json_decref(s->final);
    s->final = r;
    return r;
}

/* The in-band failure (3.6): open items closed as incomplete, `error`, `response.failed`. */
static apr_status_t fail(rst_t *s, const llmgw_error_t *e)
{
    const char *code = e->status == 429 ? "rate_limit_exceeded" : "server_error";
    const char *message = e->message ? e->message : "the upstream failed";
    json_t *param = e->param ? json_string(e->param) : json_null();
    json_t *ev, *r;
    apr_status_t rv;

    if ((rv = commit(s)) != APR_SUCCESS || (rv = close_all(s, "incomplete")) != APR_SUCCESS) {
        json_decref(param);
        return rv;
    }
    /* Flat as documented, nested as observed; clients read one or the other. */
    ev = event_new(s, "error");
    json_object_set_new(ev, "code", json_string(code));
    json_object_set_new(ev, "message", json_string(message));
    json_object_set(ev, "param", param);
    json_object_set_new(ev, "error",
                        json_pack("{s:s, s:s, s:s, s:o}", "type",
                                  e->type ? e->type : "server_error", "code", code, "message",
                                  message, "param", param));
    if ((rv = send_event(s, LLMGW_CHUNK_CONTENT, ev)) != APR_SUCCESS)
        return rv;
    r = final_response(s, "failed");
    json_object_set_new(r, "error", json_pack("{s:s, s:s}", "code", code, "message", message));
    ev = event_new(s, "response.failed");
    json_object_set(ev, "response", r);
    rv = send_event(s, LLMGW_CHUNK_FINAL, ev);
    if (rv == APR_SUCCESS)
        s->st->done = 1;
    return rv;
}

/* ---------------------------------------------------------------------- */
/* The stream callbacks                                                   */
/* ---------------------------------------------------------------------- */

apr_status_t llmgw_rsp_stream_init(llmgw_ingress_stream_t *st)
{
    rst_t *s;

    /* A new attempt starts afresh (a failure before content fell over). */
    if (st->priv)
        apr_pool_cleanup_run(st->pool, st->priv, rst_cleanup);
    s = apr_pcalloc(st->pool, sizeof(*s));
    s->st = st;
    s->items = apr_array_make(st->pool, 4, sizeof(item_t *));
    s->summary = llmgw_rsp_wants_summary(st->client);
    s->logprobs = wants_logprobs(st->client);
    if (!st->id)
        st->id = llmgw_responses_mint_id(st->pool, "resp_gw", LLMGW_RESPONSES_ID_CHARS, st->random,
                                         st->random_baton);
    st->done = 0;
    apr_pool_cleanup_register(st->pool, s, rst_cleanup, apr_pool_cleanup_null);
    st->priv = s;
    return APR_SUCCESS;
}

/* A non-empty string member of the delta, or NULL. */
static const json_t *delta_text(const json_t *delta, const char *key)
{
    json_t *v = json_object_get(delta, key);

    return json_is_string(v) && json_string_length(v) > 0 ? v : NULL;
}

/* The choice the Responses answer follows: index 0 (Responses has no `n`). */
static const json_t *first_choice(const json_t *chunk)
{
    json_t *choice;
    size_t i;

    json_array_foreach (json_object_get(chunk, "choices"), i, choice) {
        json_t *index = json_object_get(choice, "index");
        if (!json_is_integer(index) || json_integer_value(index) == 0)
            return json_is_object(choice) ? choice : NULL;
    }
    return NULL;
}

apr_status_t llmgw_rsp_stream_chunk(llmgw_ingress_stream_t *st, const json_t *chunk)
{
    rst_t *s = st->priv;
    const json_t *choice, *delta, *t;
    json_t *usage, *frag;
    const char *model, *finish;
    apr_status_t rv;
    size_t i;

    if (!s)
        return APR_EINVAL;
    if (st->done || !json_is_object(chunk))
        return APR_SUCCESS;
    model = llmgw_json_str(chunk, "model");
    if (!s->model && model && *model)
        s->model = apr_pstrdup(st->pool, model);
    if ((usage = llmgw_rsp_usage(json_object_get(chunk, "usage"))) != NULL) {
        json_decref(s->usage);
        s->usage = usage;
    }
    choice = first_choice(chunk);
    if (!choice || s->finished)
        return APR_SUCCESS;
    delta = json_object_get(choice, "delta");
    /* Role-only chunks and empty texts open nothing (never an empty message item). */
    if (s->summary && (t = delta_text(delta, "reasoning_content")) != NULL &&
        ((rv = commit(s)) != APR_SUCCESS ||
         (rv = on_reasoning(s, json_string_value(t), json_string_length(t))) != APR_SUCCESS))
        return rv;
    if ((t = delta_text(delta, "content")) != NULL &&
        ((rv = commit(s)) != APR_SUCCESS ||
         (rv = on_text(s, json_string_value(t), json_string_length(t), 0,
                       json_object_get(json_object_get(choice, "logprobs"), "content"))) !=
             APR_SUCCESS))
        return rv;
    if ((t = delta_text(delta, "refusal")) != NULL &&
        ((rv = commit(s)) != APR_SUCCESS ||
         (rv = on_text(s, json_string_value(t), json_string_length(t), 1, NULL)) != APR_SUCCESS))
        return rv;
    json_array_foreach (json_object_get(delta, "tool_calls"), i, frag) {
        if ((rv = commit(s)) != APR_SUCCESS ||
            (rv = on_tool_fragment(s, frag, (int)i)) != APR_SUCCESS)
            return rv;
    }
    finish = llmgw_json_str(choice, "finish_reason");
    if (finish) {
        const char *reason;
        const char *status =
            strcmp(status_of(finish, &reason), "completed") == 0 ? "completed" : "incomplete";
        s->finished = 1;
        s->finish = apr_pstrdup(st->pool, finish);
        /* The terminal event waits for the end of the stream: the usage
         * chunk comes after this one (4.8 rule 4). */
        if ((rv = commit(s)) != APR_SUCCESS || (rv = close_all(s, status)) != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_rsp_stream_end(llmgw_ingress_stream_t *st)
{
    rst_t *s = st->priv;
    const char *reason;
    json_t *r, *ev;
    apr_status_t rv;

    if (!s)
        return APR_EINVAL;
    if (st->done)
        return APR_SUCCESS;
    if (!s->finished) {
        llmgw_error_t e = {502, "server_error", "bad_gateway", NULL,
                           "the upstream stream ended before the answer was complete"};
        /* Nothing sent yet: the glue may still fall over, so send nothing. */
        if (!s->committed)
            return LLMGW_ESTREAM;
        rv = fail(s, &e);
        return rv == APR_SUCCESS ? LLMGW_ESTREAM : rv;
    }
    r = final_response(s, "completed");
    finish_response(r, s->finish, apr_time_sec(apr_time_now()));
    status_of(s->finish, &reason);
    ev = event_new(s, reason ? "response.incomplete" : "response.completed");
    json_object_set(ev, "response", r);
    rv = send_event(s, LLMGW_CHUNK_FINAL, ev);
    if (rv == APR_SUCCESS)
        st->done = 1;
    return rv;
}

const char *llmgw_rsp_error_event(llmgw_ingress_stream_t *st, const llmgw_error_t *e,
                                  apr_size_t *len)
{
    llmgw_buf_t frames = LLMGW_BUF_INIT;
    rst_t *s;
    const char *out;

    *len = 0;
    if (!st->priv && llmgw_rsp_stream_init(st) != APR_SUCCESS)
        return "";
    s = st->priv;
    if (st->done)
        return "";
    s->collect = &frames;
    (void)fail(s, e);
    s->collect = NULL;
    out = frames.data ? apr_pstrmemdup(st->pool, frames.data, frames.len) : "";
    *len = frames.len;
    llmgw_buf_free(&frames);
    return out;
}
