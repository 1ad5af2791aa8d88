/*
 * Canonical answers as Messages answers: a chat.completion as a message
 * (ingress.md 7.5), and the stream encoder (7.6), canonical
 * chat.completion.chunk objects in, Anthropic's named events out.
 *
 *   first content  message_start (usage: the estimate) + ping   PREAMBLE
 *   text           content_block_start text, text_delta...      CONTENT
 *   tool call j    content_block_start tool_use (input {}),
 *                  input_json_delta per non-empty fragment       CONTENT
 *   finish_reason  content_block_stop of the open block          CONTENT
 *   [DONE]         message_delta (stop_reason, usage), message_stop  FINAL
 *
 * Blocks are numbered in the order they open, across kinds, so block index
 * and canonical tool index differ (text, then tool 0, is block 1). A block
 * never reopens: a fragment for a tool call whose block was closed cannot be
 * represented, and fails the stream (the glue sends the error event).
 * Reasoning text (delta.reasoning_content) is not turned into thinking
 * blocks: no valid signature can be made for them, and an unsigned thinking
 * block breaks the client's next turn against Anthropic.
 *
 * Memory: per stream, a few pool allocations (state, id, model, one slot
 * per tool call, doubling); per event only the stack and jansson's heap.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_ingress_messages_private.h"
#include "llmgw_json.h"

#define str_eq llmgw_msg_str_eq

/* ---------------------------------------------------------------------- */
/* Answers (ingress.md 7.5)                                               */
/* ---------------------------------------------------------------------- */

static llmgw_error_t *bad_answer(apr_pool_t *p, const char *what)
{
    return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL, "%s", what);
}

/* The text of a canonical message: content (string or text parts), then a refusal. */
static json_t *answer_text(const json_t *msg)
{
    json_t *content = json_object_get(msg, "content"), *part;
    json_t *refusal = json_object_get(msg, "refusal");
    json_t *pieces = json_array(), *out;
    apr_size_t total = 0, at = 0;
    size_t i;
    char *buf;

    if (json_is_string(content))
        json_array_append(pieces, content);
    json_array_foreach (content, i, part) {
        json_t *t = json_object_get(part, "text");
        if (str_eq(llmgw_json_str(part, "type"), "text") && json_is_string(t))
            json_array_append(pieces, t);
    }
    /* Messages has no refusal block: the text is shown, stop_reason says refusal. */
    if (json_is_string(refusal))
        json_array_append(pieces, refusal);
    json_array_foreach (pieces, i, part)
        total += json_string_length(part);
    buf = malloc(total + 1);
    if (!buf) {
        json_decref(pieces);
        return NULL;
    }
    json_array_foreach (pieces, i, part) {
        memcpy(buf + at, json_string_value(part), json_string_length(part));
        at += json_string_length(part);
    }
    out = json_stringn(buf, total);
    free(buf);
    json_decref(pieces);
    return out;
}

/* A canonical tool call -> a tool_use block (new reference); NULL: arguments not an object. */
static json_t *tool_use_of(apr_pool_t *p, const char *id, const json_t *fn)
{
    json_t *args = json_object_get(fn, "arguments");
    const char *name = llmgw_json_str(fn, "name");
    const char *s = json_string_value(args);
    json_t *input;

    if (!name)
        return NULL;
    if (llmgw_json_is_absent(args) || (s && llmgw_msg_all_space(s, json_string_length(args))))
        input = json_object();
    else if (json_is_object(args))
        input = json_incref(args);
    else
        input = s ? llmgw_json_load(s, json_string_length(args), JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object(input)) {
        json_decref(input);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", llmgw_msg_tool_id_out(p, id),
                     "name", name, "input", input);
}

apr_status_t llmgw_msg_encode_response(apr_pool_t *p, const json_t *client,
                                       const json_t *completion, apr_time_t created, json_t **out,
                                       llmgw_error_t **err)
{
    json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *calls = json_object_get(msg, "tool_calls"), *fc = json_object_get(msg, "function_call");
    json_t *content, *text, *tc, *body;
    const char *model = llmgw_json_str(completion, "model");
    const char *stop;
    llmgw_msg_usage_t u;
    size_t i;

    (void)created;
    if (!json_is_object(msg)) {
        *err = bad_answer(p, "upstream returned an invalid response");
        return LLMGW_EUPSTREAM;
    }
    if (!model || !*model)
        model = llmgw_json_str(client, "model");
    content = llmgw_json_pool_own(p, json_array());
    text = answer_text(msg);
    if (!text)
        return APR_ENOMEM;
    /* Never an empty text block: clients send it back and Anthropic refuses it. */
    if (json_string_length(text) > 0)
        json_array_append_new(content, json_pack("{s:s, s:o}", "type", "text", "text", text));
    else
        json_decref(text);
    json_array_foreach (calls, i, tc) {
        json_t *block = tool_use_of(p, llmgw_json_str(tc, "id"), json_object_get(tc, "function"));

        if (!block) {
            *err = bad_answer(p, "upstream returned invalid tool arguments");
            return LLMGW_EUPSTREAM;
        }
        json_array_append_new(content, block);
    }
    if (json_is_object(fc) && json_array_size(calls) == 0) {
        json_t *block = tool_use_of(p, NULL, fc);

        if (!block) {
            *err = bad_answer(p, "upstream returned invalid tool arguments");
            return LLMGW_EUPSTREAM;
        }
        json_array_append_new(content, block);
    }
    stop = llmgw_msg_stop_reason(llmgw_json_str(choice, "finish_reason"));
    llmgw_msg_usage_from_canonical(json_object_get(completion, "usage"), &u);
    body = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:n, s:o, s:o}", "id",
                     llmgw_msg_mint_id(p, "msg_gw"), "type", "message", "role", "assistant",
                     "model", model ? model : "", "content", content, "stop_reason", stop,
                     "stop_sequence", "stop_details",
                     str_eq(stop, "refusal") ? json_pack("{s:s, s:n, s:n}", "type", "refusal",
                                                         "category", "explanation")
                                             : json_null(),
                     "usage", llmgw_msg_usage_json(&u));
    if (!body)
        return APR_ENOMEM;
    *out = llmgw_json_pool_own(p, body);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Streams (ingress.md 7.6)                                               */
/* ---------------------------------------------------------------------- */

/* Tool calls per message we follow; far above any real answer. */
#define MAX_TOOLS 4096

enum { OPEN_NONE = 0, OPEN_TEXT, OPEN_TOOL };

typedef struct {
    json_int_t canonical; /* the canonical tool-call index */
    int block;            /* its content block */
} tool_slot_t;

typedef struct {
    int started;    /* message_start went out */
    int finished;   /* a finish_reason arrived */
    int open;       /* OPEN_*: the kind of the open block */
    int open_index; /* its index */
    int next_index; /* the next block's index */
    tool_slot_t *tools;
    int ntools, cap;
    const char *model;
    const char *stop_reason;
    int usage_seen;
    llmgw_msg_usage_t usage;
    apr_int64_t estimate; /* message_start's input_tokens */
} msg_stream_t;

apr_status_t llmgw_msg_stream_init(llmgw_ingress_stream_t *st)
{
    msg_stream_t *ms = apr_pcalloc(st->pool, sizeof(*ms));

    ms->estimate = llmgw_messages_estimate_tokens(st->client);
    if (!st->id)
        st->id = llmgw_msg_mint_id(st->pool, "msg_gw");
    st->priv = ms;
    return APR_SUCCESS;
}

static apr_status_t emit_new(llmgw_ingress_stream_t *st, llmgw_chunk_kind_e kind, const char *name,
                             json_t *j)
{
    apr_status_t rv = j ? llmgw_msg_emit(st, kind, name, j) : APR_ENOMEM;

    json_decref(j);
    return rv;
}

static apr_status_t fail(llmgw_ingress_stream_t *st, apr_status_t rv, const char *code,
                         const char *msg)
{
    st->error = llmgw_error_make(st->pool, 502, "server_error", code, NULL, "%s", msg);
    return rv;
}

/* message_start and ping, once, before the first block (held back by the glue). */
static apr_status_t ensure_started(llmgw_ingress_stream_t *st)
{
    msg_stream_t *ms = st->priv;
    const char *model = ms->model ? ms->model : llmgw_json_str(st->client, "model");
    apr_status_t rv;

    if (ms->started)
        return APR_SUCCESS;
    ms->started = 1;
    rv = emit_new(st, LLMGW_CHUNK_PREAMBLE, "message_start",
                  json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:I, s:i, s:i, s:i}}}",
                            "type", "message_start", "message", "id", st->id, "type", "message",
                            "role", "assistant", "model", model ? model : "", "content",
                            "stop_reason", "stop_sequence", "usage", "input_tokens",
                            (json_int_t)ms->estimate, "output_tokens", 0,
                            "cache_creation_input_tokens", 0, "cache_read_input_tokens", 0));
    if (rv == APR_SUCCESS)
        rv = emit_new(st, LLMGW_CHUNK_PREAMBLE, "ping", json_pack("{s:s}", "type", "ping"));
    return rv;
}

static apr_status_t stop_open(llmgw_ingress_stream_t *st)
{
    msg_stream_t *ms = st->priv;

    if (ms->open == OPEN_NONE)
        return APR_SUCCESS;
    ms->open = OPEN_NONE;
    return emit_new(st, LLMGW_CHUNK_CONTENT, "content_block_stop",
                    json_pack("{s:s, s:i}", "type", "content_block_stop", "index", ms->open_index));
}

/* Close the open block and open block next_index with @p block (stolen). */
static apr_status_t start_block(llmgw_ingress_stream_t *st, int kind, json_t *block)
{
    msg_stream_t *ms = st->priv;
    apr_status_t rv;

    if ((rv = ensure_started(st)) != APR_SUCCESS || (rv = stop_open(st)) != APR_SUCCESS) {
        json_decref(block);
        return rv;
    }
    ms->open = kind;
    ms->open_index = ms->next_index++;
    return emit_new(st, LLMGW_CHUNK_CONTENT, "content_block_start",
                    block ? json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index",
                                      ms->open_index, "content_block", block)
                          : NULL);
}

static apr_status_t emit_delta(llmgw_ingress_stream_t *st, json_t *delta)
{
    msg_stream_t *ms = st->priv;

    return emit_new(st, LLMGW_CHUNK_CONTENT, "content_block_delta",
                    delta ? json_pack("{s:s, s:i, s:o}", "type", "content_block_delta", "index",
                                      ms->open_index, "delta", delta)
                          : NULL);
}

static apr_status_t on_text(llmgw_ingress_stream_t *st, json_t *text)
{
    msg_stream_t *ms = st->priv;
    apr_status_t rv;

    if (!json_is_string(text) || json_string_length(text) == 0)
        return APR_SUCCESS;
    if (ms->open != OPEN_TEXT &&
        (rv = start_block(st, OPEN_TEXT, json_pack("{s:s, s:s}", "type", "text", "text", ""))) !=
            APR_SUCCESS)
        return rv;
    return emit_delta(st, json_pack("{s:s, s:O}", "type", "text_delta", "text", text));
}

static tool_slot_t *find_tool(msg_stream_t *ms, json_int_t canonical)
{
    int i;

    for (i = 0; i < ms->ntools; i++) {
        if (ms->tools[i].canonical == canonical)
            return &ms->tools[i];
    }
    return NULL;
}

static tool_slot_t *add_tool(llmgw_ingress_stream_t *st, json_int_t canonical)
{
    msg_stream_t *ms = st->priv;

    if (ms->ntools == ms->cap) {
        int cap = ms->cap ? ms->cap * 2 : 4;
        tool_slot_t *grown = apr_palloc(st->pool, sizeof(*grown) * (apr_size_t)cap);

        if (ms->ntools)
            memcpy(grown, ms->tools, sizeof(*grown) * (apr_size_t)ms->ntools);
        ms->tools = grown;
        ms->cap = cap;
    }
    ms->tools[ms->ntools].canonical = canonical;
    return &ms->tools[ms->ntools++];
}

static apr_status_t on_tool_fragment(llmgw_ingress_stream_t *st, const json_t *frag, size_t pos)
{
    msg_stream_t *ms = st->priv;
    json_t *index = json_object_get(frag, "index");
    json_int_t k = json_is_integer(index) ? json_integer_value(index) : (json_int_t)pos;
    json_t *fn = json_object_get(frag, "function");
    json_t *args = json_object_get(fn, "arguments");
    int has_args = json_is_string(args) && json_string_length(args) > 0;
    tool_slot_t *slot = find_tool(ms, k);
    const char *name;
    apr_status_t rv;

    if (slot) {
        /* Empty fragments carry nothing: never a delta for them. */
        if (!has_args)
            return APR_SUCCESS;
        if (ms->open != OPEN_TOOL || ms->open_index != slot->block)
            return fail(st, LLMGW_EUPSTREAM, "bad_gateway",
                        "upstream interleaved the arguments of tool calls, which a Messages "
                        "stream cannot represent");
        return emit_delta(
            st, json_pack("{s:s, s:O}", "type", "input_json_delta", "partial_json", args));
    }
    name = llmgw_json_str(fn, "name");
    if (!name || !*name)
        return fail(st, LLMGW_EUPSTREAM, "bad_gateway",
                    "upstream started a tool call without a name");
    if (ms->ntools >= MAX_TOOLS)
        return fail(st, LLMGW_EUPSTREAM, "bad_gateway", "upstream sent too many tool calls");
    /* input {} is required by clients on the start event (ingress.md 7.6). */
    rv = start_block(st, OPEN_TOOL,
                     json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id",
                               llmgw_msg_tool_id_out(st->pool, llmgw_json_str(frag, "id")), "name",
                               name, "input"));
    if (rv != APR_SUCCESS)
        return rv;
    slot = add_tool(st, k);
    slot->block = ms->open_index;
    if (!has_args)
        return APR_SUCCESS;
    return emit_delta(st,
                      json_pack("{s:s, s:O}", "type", "input_json_delta", "partial_json", args));
}

/* The choice a Messages answer has: index 0 (the only one a Messages request asks for). */
static const json_t *first_choice(const json_t *chunk)
{
    json_t *choices = json_object_get(chunk, "choices"), *c;
    size_t i;

    json_array_foreach (choices, i, c) {
        json_t *index = json_object_get(c, "index");
        if (!index || (json_is_integer(index) && json_integer_value(index) == 0))
            return c;
    }
    return NULL;
}

apr_status_t llmgw_msg_stream_chunk(llmgw_ingress_stream_t *st, const json_t *chunk)
{
    msg_stream_t *ms = st->priv;
    const json_t *choice;
    json_t *delta, *calls, *frag, *usage;
    const char *model, *finish;
    apr_status_t rv;
    size_t i;

    if (st->done)
        return APR_SUCCESS;
    if (!json_is_object(chunk))
        return fail(st, LLMGW_EUPSTREAM, "bad_gateway", "upstream sent a malformed chunk");
    model = llmgw_json_str(chunk, "model");
    if (!ms->model && model && *model)
        ms->model = apr_pstrdup(st->pool, model);
    usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        llmgw_msg_usage_from_canonical(usage, &ms->usage);
        ms->usage_seen = 1;
    }
    choice = first_choice(chunk);
    delta = json_object_get(choice, "delta");
    if ((rv = on_text(st, json_object_get(delta, "content"))) != APR_SUCCESS ||
        (rv = on_text(st, json_object_get(delta, "refusal"))) != APR_SUCCESS)
        return rv;
    calls = json_object_get(delta, "tool_calls");
    json_array_foreach (calls, i, frag) {
        if ((rv = on_tool_fragment(st, frag, i)) != APR_SUCCESS)
            return rv;
    }
    finish = llmgw_json_str(choice, "finish_reason");
    if (!finish)
        return APR_SUCCESS;
    /* The terminal events wait for the usage chunk, which follows (ingress.md 2.3). */
    ms->finished = 1;
    ms->stop_reason = llmgw_msg_stop_reason(finish);
    if ((rv = ensure_started(st)) != APR_SUCCESS)
        return rv;
    return stop_open(st);
}

apr_status_t llmgw_msg_stream_end(llmgw_ingress_stream_t *st)
{
    msg_stream_t *ms = st->priv;
    json_t *delta, *usage;
    apr_status_t rv;

    if (st->done)
        return APR_SUCCESS;
    if (!ms->finished)
        return fail(st, LLMGW_ESTREAM, "upstream_stream_truncated",
                    "upstream stream ended before the response was complete");
    /* Content after the finish_reason (a lenient upstream) opened a block again. */
    if ((rv = stop_open(st)) != APR_SUCCESS)
        return rv;
    delta = json_pack("{s:s, s:n}", "stop_reason", ms->stop_reason, "stop_sequence");
    if (str_eq(ms->stop_reason, "refusal"))
        json_object_set_new(
            delta, "stop_details",
            json_pack("{s:s, s:n, s:n}", "type", "refusal", "category", "explanation"));
    /* The counters are cumulative and replace message_start's: without the
     * upstream's usage, only the required output_tokens (the estimate stays). */
    usage =
        ms->usage_seen ? llmgw_msg_usage_json(&ms->usage) : json_pack("{s:i}", "output_tokens", 0);
    rv = emit_new(
        st, LLMGW_CHUNK_FINAL, "message_delta",
        json_pack("{s:s, s:o, s:o}", "type", "message_delta", "delta", delta, "usage", usage));
    if (rv == APR_SUCCESS)
        rv = emit_new(st, LLMGW_CHUNK_FINAL, "message_stop",
                      json_pack("{s:s}", "type", "message_stop"));
    if (rv == APR_SUCCESS)
        st->done = 1;
    return rv;
}

/* ingress.md 6.7: one error event, then the connection closes (no message_stop). */
const char *llmgw_msg_error_event(llmgw_ingress_stream_t *st, const llmgw_error_t *e,
                                  apr_size_t *len)
{
    json_t *inner = llmgw_msg_error_object(st->pool, e), *j;
    const char *data, *frame;

    if (!inner)
        return NULL;
    j = json_pack("{s:s, s:o}", "type", "error", "error", inner);
    data = j ? llmgw_json_dump(st->pool, j, NULL) : NULL;
    json_decref(j);
    if (!data)
        return NULL;
    /* Compact JSON escapes every line break: the event is one data line. */
    frame = apr_pstrcat(st->pool, "event: error\ndata: ", data, "\n\n", NULL);
    if (len)
        *len = strlen(frame);
    st->done = 1;
    return frame;
}
