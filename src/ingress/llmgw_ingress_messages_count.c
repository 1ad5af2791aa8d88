/*
 * The Messages dialect's other endpoints: POST /v1/messages/count_tokens
 * (ingress.md 6.6, 7.7), the token estimate, and Anthropic's shape of
 * GET /v1/models. See llmgw_ingress_messages.h for the contract.
 *
 * count_tokens never guesses silently: a backend that can count is asked
 * (natively, through OpenAI's /responses/input_tokens, or Gemini's
 * countTokens); one that cannot is refused with a 400 that says so, and
 * the estimate exists only for the glue's explicit `countTokens: estimate`.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_time.h>
#include "llmgw_ingress_messages_private.h"
#include "llmgw_json.h"
#include "../providers/llmgw_provider_util.h"

#define str_eq llmgw_msg_str_eq

#define OPENAI_DEFAULT_ENDPOINT "https://api.openai.com/v1"

/* Anthropic's page size: default and largest (GET /v1/models). */
#define MODELS_DEFAULT_LIMIT 20
#define MODELS_MAX_LIMIT 1000

/* ---------------------------------------------------------------------- */
/* The estimate (ingress.md 7.6)                                          */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_int64_t bytes;
    apr_int64_t images;
} est_t;

static void est_string(est_t *e, const json_t *s)
{
    if (json_is_string(s))
        e->bytes += (apr_int64_t)json_string_length(s);
}

/* Compact size of @p j: tool inputs and schemas are text the model reads too. */
static void est_json(est_t *e, const json_t *j)
{
    if (j)
        e->bytes += (apr_int64_t)json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void est_blocks(est_t *e, const json_t *content, int depth);

static void est_block(est_t *e, const json_t *b, int depth)
{
    const char *type = llmgw_json_str(b, "type");
    json_t *src = json_object_get(b, "source");
    const char *st = llmgw_json_str(src, "type");

    if (str_eq(type, "text")) {
        est_string(e, json_object_get(b, "text"));
    }
    else if (str_eq(type, "image")) {
        e->images++;
    }
    else if (str_eq(type, "document")) {
        est_string(e, json_object_get(b, "title"));
        est_string(e, json_object_get(b, "context"));
        if (str_eq(st, "text"))
            est_string(e, json_object_get(src, "data"));
        else if (str_eq(st, "content"))
            est_blocks(e, json_object_get(src, "content"), depth + 1);
        else
            e->images++; /* a PDF: counted like one image (⚠ heuristic) */
    }
    else if (str_eq(type, "tool_use") || str_eq(type, "server_tool_use")) {
        est_string(e, json_object_get(b, "name"));
        est_json(e, json_object_get(b, "input"));
    }
    else if (str_eq(type, "tool_result")) {
        est_blocks(e, json_object_get(b, "content"), depth + 1);
    }
    else if (str_eq(type, "search_result")) {
        est_string(e, json_object_get(b, "title"));
        est_blocks(e, json_object_get(b, "content"), depth + 1);
    }
}

static void est_blocks(est_t *e, const json_t *content, int depth)
{
    json_t *b;
    size_t i;

    if (json_is_string(content)) {
        est_string(e, content);
        return;
    }
    if (depth > 4)
        return;
    json_array_foreach (content, i, b)
        est_block(e, b, depth);
}

apr_int64_t llmgw_messages_estimate_tokens(const json_t *client)
{
    est_t e = {0, 0};
    json_t *m, *t;
    size_t i;
    apr_int64_t n;

    est_blocks(&e, json_object_get(client, "system"), 0);
    json_array_foreach (json_object_get(client, "messages"), i, m)
        est_blocks(&e, json_object_get(m, "content"), 0);
    json_array_foreach (json_object_get(client, "tools"), i, t) {
        if (llmgw_json_str(t, "type") && !str_eq(llmgw_json_str(t, "type"), "custom")) {
            est_json(&e, t);
            continue;
        }
        est_string(&e, json_object_get(t, "name"));
        est_string(&e, json_object_get(t, "description"));
        est_json(&e, json_object_get(t, "input_schema"));
    }
    n = (e.bytes + 3) / 4 + e.images * LLMGW_MSG_IMAGE_TOKENS;
    return n > 0 ? n : 1;
}

/* ---------------------------------------------------------------------- */
/* count_tokens: requests                                                 */
/* ---------------------------------------------------------------------- */

static llmgw_error_t *cannot_count(apr_pool_t *p, const char *model, const llmgw_backend_t *b,
                                   const char *why)
{
    return llmgw_error_make(p, 400, "invalid_request_error", "unsupported_value", NULL,
                            "count_tokens is not supported for model '%s' (backend type %s): %s",
                            model ? model : "", llmgw_backend_type_name(b->type), why);
}

/* The text of a canonical system message. */
static void system_text(apr_pool_t *p, const json_t *content, apr_array_header_t *out)
{
    json_t *part;
    size_t i;

    if (json_is_string(content)) {
        APR_ARRAY_PUSH(out, const char *) = json_string_value(content);
        return;
    }
    json_array_foreach (content, i, part) {
        const char *t = llmgw_json_str(part, "text");
        if (t)
            APR_ARRAY_PUSH(out, const char *) = t;
    }
    (void)p;
}

/* Canonical user parts -> Responses input content (new reference). */
static json_t *responses_parts(const json_t *content)
{
    json_t *out = json_array(), *part;
    size_t i;

    json_array_foreach (content, i, part) {
        const char *type = llmgw_json_str(part, "type");
        json_t *file = json_object_get(part, "file");

        if (str_eq(type, "text"))
            json_array_append_new(out, json_pack("{s:s, s:O}", "type", "input_text", "text",
                                                 json_object_get(part, "text")));
        else if (str_eq(type, "image_url"))
            json_array_append_new(
                out, json_pack("{s:s, s:O, s:s}", "type", "input_image", "image_url",
                               json_object_get(json_object_get(part, "image_url"), "url"), "detail",
                               "auto"));
        else if (str_eq(type, "file"))
            json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "type", "input_file",
                                                 "file_data", json_object_get(file, "file_data"),
                                                 "filename", json_object_get(file, "filename")));
    }
    return out;
}

/* ingress.md 7.7: the canonical request as a Responses body (4.4 inverted). */
static json_t *responses_body(apr_pool_t *p, const json_t *canonical, const char *model)
{
    json_t *input = json_array(), *m, *tc, *t, *tools = NULL;
    json_t *choice = json_object_get(canonical, "tool_choice");
    apr_array_header_t *sys = apr_array_make(p, 2, sizeof(const char *));
    json_t *body;
    size_t i, k;

    json_array_foreach (json_object_get(canonical, "messages"), i, m) {
        const char *role = llmgw_json_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (str_eq(role, "system")) {
            system_text(p, content, sys);
        }
        else if (str_eq(role, "user")) {
            json_array_append_new(
                input, json_pack("{s:s, s:s, s:o}", "type", "message", "role", "user", "content",
                                 json_is_string(content) ? json_incref(content)
                                                         : responses_parts(content)));
        }
        else if (str_eq(role, "assistant")) {
            if (json_is_string(content) && json_string_length(content) > 0)
                json_array_append_new(input, json_pack("{s:s, s:s, s:[{s:s, s:O}]}", "type",
                                                       "message", "role", "assistant", "content",
                                                       "type", "output_text", "text", content));
            json_array_foreach (json_object_get(m, "tool_calls"), k, tc) {
                json_t *fn = json_object_get(tc, "function");
                json_array_append_new(
                    input, json_pack("{s:s, s:O, s:O, s:O}", "type", "function_call", "call_id",
                                     json_object_get(tc, "id"), "name", json_object_get(fn, "name"),
                                     "arguments", json_object_get(fn, "arguments")));
            }
        }
        else if (str_eq(role, "tool")) {
            json_array_append_new(
                input, json_pack("{s:s, s:O, s:O}", "type", "function_call_output", "call_id",
                                 json_object_get(m, "tool_call_id"), "output", content));
        }
    }
    body = json_pack("{s:s, s:o}", "model", model, "input", input);
    if (sys->nelts > 0)
        json_object_set_new(body, "instructions", json_string(apr_array_pstrcat(p, sys, '\n')));
    json_array_foreach (json_object_get(canonical, "tools"), i, t) {
        json_t *fn = json_object_get(t, "function"), *flat;
        const char *key;
        json_t *v;

        if (!tools)
            tools = json_array();
        flat = json_pack("{s:s}", "type", "function");
        json_object_foreach (fn, key, v)
            json_object_set(flat, key, v);
        json_array_append_new(tools, flat);
    }
    if (tools)
        json_object_set_new(body, "tools", tools);
    if (json_is_string(choice))
        json_object_set(body, "tool_choice", choice);
    else if (json_is_object(choice))
        json_object_set_new(
            body, "tool_choice",
            json_pack("{s:s, s:O}", "type", "function", "name",
                      json_object_get(json_object_get(choice, "function"), "name")));
    return body;
}

static apr_status_t openai_count(apr_pool_t *p, const llmgw_backend_t *b, const json_t *canonical,
                                 const char *model, llmgw_http_request_t *out, llmgw_error_t **err)
{
    apr_array_header_t *h = apr_array_make(p, 5, sizeof(const char *));
    json_t *body;

    if (b->type == LLMGW_BACKEND_AZURE_OPENAI) {
        /* Only the v1 URLs are known to have it (⚠ unverified on Azure). */
        if (!str_eq(b->api_version, "v1") || !b->endpoint || !b->deployment_name) {
            *err = cannot_count(p, model, b,
                                "token counting needs the v1 URLs (apiVersion: v1) on Azure");
            return LLMGW_EUNSUPPORTED;
        }
        out->url = apr_pstrcat(p, b->endpoint, "/openai/v1/responses/input_tokens", NULL);
        model = b->deployment_name;
        if (b->api_key && *b->api_key)
            APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "api-key: ", b->api_key, NULL);
    }
    else {
        out->url = apr_pstrcat(p, b->endpoint ? b->endpoint : OPENAI_DEFAULT_ENDPOINT,
                               "/responses/input_tokens", NULL);
        if (b->api_key && *b->api_key)
            APR_ARRAY_PUSH(h, const char *) =
                apr_pstrcat(p, "Authorization: Bearer ", b->api_key, NULL);
        if (b->org_id && *b->org_id)
            APR_ARRAY_PUSH(h, const char *) =
                apr_pstrcat(p, "OpenAI-Organization: ", b->org_id, NULL);
        if (b->project && *b->project)
            APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "OpenAI-Project: ", b->project, NULL);
    }
    APR_ARRAY_PUSH(h, const char *) = "Content-Type: application/json";
    APR_ARRAY_PUSH(h, const char *) = "Expect:";
    body = responses_body(p, canonical, model);
    out->body = body ? llmgw_json_dump(p, body, &out->body_len) : NULL;
    json_decref(body);
    if (!out->body)
        return APR_ENOMEM;
    out->method = "POST";
    out->headers = h;
    out->stream = 0;
    return APR_SUCCESS;
}

/*
 * Gemini counts what generateContent would send: the google translator
 * builds that request, then it goes to :countTokens, wrapped for the
 * Gemini API, or (Vertex AI) with only the members countTokens takes.
 */
static apr_status_t google_count(apr_pool_t *p, const llmgw_backend_t *b, const json_t *canonical,
                                 const char *model, const char *access_token,
                                 llmgw_http_request_t *out, llmgw_error_t **err)
{
    static const char *const vertex_keep[] = {"contents", "systemInstruction", "tools",
                                              "generationConfig", NULL};
    llmgw_call_t call;
    json_t *gen, *body;
    const char *colon;
    apr_status_t rv;
    int i;

    memset(&call, 0, sizeof(call));
    call.pool = p;
    call.backend = b;
    call.api = LLMGW_API_CHAT;
    call.body = (json_t *)canonical;
    call.model = model;
    call.dropped = apr_array_make(p, 2, sizeof(const char *));
    call.access_token = access_token;
    rv = llmgw_provider_google.build_request(&call, out, err);
    if (rv != APR_SUCCESS)
        return rv;
    colon = strrchr(out->url, ':');
    gen = llmgw_json_load(out->body, out->body_len, JSON_ALLOW_NUL, NULL);
    if (!colon || !json_is_object(gen)) {
        json_decref(gen);
        *err = cannot_count(p, model, b, "the request cannot be counted");
        return LLMGW_EUNSUPPORTED;
    }
    out->url = apr_pstrcat(p, apr_pstrmemdup(p, out->url, (apr_size_t)(colon - out->url)),
                           ":countTokens", NULL);
    if (b->project_id && *b->project_id) {
        body = json_object();
        for (i = 0; vertex_keep[i]; i++) {
            json_t *v = json_object_get(gen, vertex_keep[i]);
            if (v)
                json_object_set(body, vertex_keep[i], v);
        }
    }
    else {
        json_object_set_new(gen, "model", json_string(apr_pstrcat(p, "models/", model, NULL)));
        body = json_pack("{s:O}", "generateContentRequest", gen);
    }
    json_decref(gen);
    out->body = body ? llmgw_json_dump(p, body, &out->body_len) : NULL;
    json_decref(body);
    out->stream = 0;
    return out->body ? APR_SUCCESS : APR_ENOMEM;
}

apr_status_t llmgw_messages_count_request(apr_pool_t *p, const llmgw_backend_t *b,
                                          const json_t *client, const char *raw, apr_size_t raw_len,
                                          const char *model, const apr_table_t *headers_in,
                                          const char *access_token, llmgw_http_request_t *out,
                                          llmgw_error_t **err)
{
    llmgw_ingress_request_t req;
    apr_array_header_t *dropped = apr_array_make(p, 2, sizeof(const char *));
    const json_t *canonical;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    rv = llmgw_msg_decode(p, client, 1, &req, err);
    if (rv != APR_SUCCESS)
        return rv;
    if (!model)
        model = req.model;
    if (b->type == LLMGW_BACKEND_ANTHROPIC) {
        rv = llmgw_msg_native_body(p, client, raw, raw_len, model, &out->body, &out->body_len);
        if (rv != APR_SUCCESS)
            return rv;
        out->method = "POST";
        out->url = apr_pstrcat(p, b->endpoint ? b->endpoint : LLMGW_MSG_DEFAULT_ENDPOINT,
                               "/v1/messages/count_tokens", NULL);
        out->headers = llmgw_msg_native_headers(p, b, headers_in);
        return APR_SUCCESS;
    }
    if (b->type != LLMGW_BACKEND_OPENAI && b->type != LLMGW_BACKEND_AZURE_OPENAI &&
        b->type != LLMGW_BACKEND_GOOGLE) {
        *err = cannot_count(p, model, b, "the provider has no token-counting API");
        return LLMGW_EUNSUPPORTED;
    }
    if (!model || !*model) {
        *err = llmgw_error_make(p, 400, "invalid_request_error", NULL, "model",
                                "model: Field required");
        return LLMGW_EBADREQ;
    }
    /* What the backend could not be sent is not counted either. */
    if ((*err = llmgw_msg_check_backend(p, client, b->type, b->unsupported_drop == 1, dropped)))
        return LLMGW_EBADREQ;
    canonical = req.canonical;
    if (dropped->nelts > 0)
        canonical = llmgw_ingress_messages.drop_fields(p, canonical, dropped);
    if (!canonical)
        return APR_ENOMEM;
    if (b->type == LLMGW_BACKEND_GOOGLE)
        return google_count(p, b, canonical, model, access_token, out, err);
    return openai_count(p, b, canonical, model, out, err);
}

apr_status_t llmgw_messages_count_parse(apr_pool_t *p, llmgw_backend_type_e type, const char *body,
                                        apr_size_t len, apr_int64_t *tokens, llmgw_error_t **err)
{
    json_t *j = body ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    const char *key = type == LLMGW_BACKEND_GOOGLE ? "totalTokens" : "input_tokens";
    int ok = llmgw_prov_token_count(j, key, tokens);

    json_decref(j);
    if (ok)
        return APR_SUCCESS;
    *err = llmgw_prov_bad_response(p, apr_pstrcat(p, "no ", key, NULL));
    return LLMGW_EUPSTREAM;
}

const char *llmgw_messages_count_body(apr_pool_t *p, apr_int64_t tokens, apr_size_t *len)
{
    const char *body = apr_psprintf(p, "{\"input_tokens\":%" APR_INT64_T_FMT "}", tokens);

    if (len)
        *len = strlen(body);
    return body;
}

/* ---------------------------------------------------------------------- */
/* Models                                                                 */
/* ---------------------------------------------------------------------- */

json_t *llmgw_messages_model_json(apr_pool_t *p, const char *id, apr_int64_t created)
{
    apr_time_exp_t tm;
    char stamp[32];
    apr_size_t n = 0;

    if (apr_time_exp_gmt(&tm, apr_time_from_sec(created)) != APR_SUCCESS ||
        apr_strftime(stamp, &n, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) != APR_SUCCESS)
        apr_cpystrn(stamp, "1970-01-01T00:00:00Z", sizeof(stamp));
    return llmgw_json_pool_own(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id", id,
                                            "display_name", id, "created_at", stamp));
}

static int index_of(const apr_array_header_t *ids, const char *id)
{
    int i;

    for (i = 0; ids && i < ids->nelts; i++) {
        if (str_eq(APR_ARRAY_IDX(ids, i, const char *), id))
            return i;
    }
    return -1;
}

json_t *llmgw_messages_models_json(apr_pool_t *p, const apr_array_header_t *ids,
                                   apr_int64_t created, int limit, const char *after_id,
                                   const char *before_id)
{
    int n = ids ? ids->nelts : 0, start = 0, end, i, more;
    json_t *data = json_array(), *page;

    if (limit <= 0)
        limit = MODELS_DEFAULT_LIMIT;
    if (limit > MODELS_MAX_LIMIT)
        limit = MODELS_MAX_LIMIT;
    if (after_id) {
        start = index_of(ids, after_id) < 0 ? n : index_of(ids, after_id) + 1;
        end = start + limit < n ? start + limit : n;
        more = end < n;
    }
    else if (before_id) {
        end = index_of(ids, before_id) < 0 ? 0 : index_of(ids, before_id);
        start = end - limit > 0 ? end - limit : 0;
        more = start > 0;
    }
    else {
        end = limit < n ? limit : n;
        more = end < n;
    }
    for (i = start; i < end; i++)
        json_array_append(
            data, llmgw_messages_model_json(p, APR_ARRAY_IDX(ids, i, const char *), created));
    page = json_pack("{s:o, s:b}", "data", data, "has_more", more);
    json_object_set_new(page, "first_id",
                        end > start ? json_string(APR_ARRAY_IDX(ids, start, const char *))
                                    : json_null());
    json_object_set_new(page, "last_id",
                        end > start ? json_string(APR_ARRAY_IDX(ids, end - 1, const char *))
                                    : json_null());
    return llmgw_json_pool_own(p, page);
}

apr_array_header_t *llmgw_messages_model_ids(apr_pool_t *p, const json_t *openai_list)
{
    apr_array_header_t *ids = apr_array_make(p, 8, sizeof(const char *));
    json_t *m;
    size_t i;

    json_array_foreach (json_object_get(openai_list, "data"), i, m) {
        const char *id = llmgw_json_str(m, "id");
        if (id)
            APR_ARRAY_PUSH(ids, const char *) = apr_pstrdup(p, id);
    }
    return ids;
}
