/*
 * The whitelist-rebuild translator of the OpenAI-compatible dialects whose
 * hosts refuse what they do not know (meta's Llama hosts, mistral): the
 * request body is rebuilt field by field from what the host takes (its
 * llmgw_oai_profile_t), with tool-call ids, tools and messages in the
 * host's shape, and embeddings inputs checked. Answers, errors and streams
 * of these dialects are the framework's (llmgw_openai_compat.c).
 *
 * Memory: everything per request comes from call->pool.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_hash.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include "llmgw_openai_compat.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"

/* Member @p key of @p obj, or NULL when absent or JSON null. Borrowed. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
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
    llmgw_oai_copy_member(out, js, "name");
    llmgw_oai_copy_member(out, js, "description");
    llmgw_oai_copy_member(out, js, "schema");
    llmgw_oai_copy_member(out, js, "strict");
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
    llmgw_oai_copy_member(out, fn, "description");
    params = member(fn, "parameters");
    if (params)
        json_object_set(out, "parameters", params);
    else if (rb->prof->tools_need_parameters)
        json_object_set_new(out, "parameters",
                            json_pack("{s:s, s:{}}", "type", "object", "properties"));
    if (member(fn, "strict"))
        llmgw_oai_copy_member(out, fn, "strict");
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
    char *text = llmgw_oai_content_text(rb->call->pool, content);
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
        llmgw_oai_copy_member(o, img, "detail");
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
    args = llmgw_oai_arguments_json(json_object_get(fn, "arguments"));
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
    char *text = llmgw_oai_content_text(rb->call->pool, json_object_get(m, "content"));
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
