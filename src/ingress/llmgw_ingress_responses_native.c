/*
 * The Responses dialect on backends that speak it: openai and azure-openai
 * (ingress.md 4.1, 4.2). Nothing is translated, so nothing is lost: the
 * client's bytes go upstream as they came unless the model must change, and
 * the answer comes back as the upstream sent it (events, ids,
 * sequence_number). The gateway only reads it, for usage and the model.
 *
 *   openai                 POST <endpoint>/responses
 *   azure-openai, v1       POST <endpoint>/openai/v1/responses      (apiVersion: v1)
 *   azure-openai, dated    POST <endpoint>/openai/responses?api-version=<v>
 *
 * Azure has no /deployments/<d>/ segment for Responses: the deployment is
 * named in the body's `model` in both styles (openai-node's AzureOpenAI
 * inserts it only for chat, completions, embeddings, audio, images and
 * batches). The dated style needs an api-version that knows Responses
 * (2025-03-01-preview introduced it): the backend's apiVersion when it is
 * that recent, else AZURE_RESPONSES_VERSION.
 */
#include <string.h>
#include <apr_escape.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "llmgw_responses.h"
#include "llmgw_responses_private.h"
#include "../providers/llmgw_provider_util.h"

#define OPENAI_ENDPOINT "https://api.openai.com/v1"
/* ingress.md 4.2: the default responsesApiVersion. */
#define AZURE_RESPONSES_VERSION "2025-04-01-preview"
/* The first api-version with the Responses API. */
#define AZURE_RESPONSES_SINCE "2025-03-01"

/* ---------------------------------------------------------------------- */
/* URLs and headers                                                       */
/* ---------------------------------------------------------------------- */

static int azure_v1(const llmgw_backend_t *b)
{
    return b->api_version && strcmp(b->api_version, "v1") == 0;
}

/* Is @p v dated (YYYY-MM-DD...)? */
static int dated(const char *v)
{
    int i;

    for (i = 0; i < 10; i++) {
        int dash = i == 4 || i == 7;
        if (!v[i] || (dash ? v[i] != '-' : (v[i] < '0' || v[i] > '9')))
            return 0;
    }
    return 1;
}

static const char *azure_version(const llmgw_backend_t *b)
{
    const char *v = b->api_version;

    if (!v || !*v)
        return AZURE_RESPONSES_VERSION;
    /* "preview", "latest": undated names of the newest versions. */
    if (!dated(v))
        return v;
    return strncmp(v, AZURE_RESPONSES_SINCE, 10) >= 0 ? v : AZURE_RESPONSES_VERSION;
}

static llmgw_error_t *config_error(apr_pool_t *p, const llmgw_backend_t *b, const char *why)
{
    return llmgw_error_make(p, 500, "server_error", NULL, NULL, "backend \"%s\" (%s) %s", b->name,
                            llmgw_backend_type_name(b->type), why);
}

/* The URL of @p path ("/responses", "/responses/<id>..."), with the client's @p query. */
static apr_status_t upstream_url(apr_pool_t *p, const llmgw_backend_t *b, const char *path,
                                 const char *query, const char **url, llmgw_error_t **err)
{
    const char *base = b->endpoint;
    const char *q = query && *query ? query : NULL;

    if (b->type == LLMGW_BACKEND_OPENAI) {
        *url = apr_pstrcat(p, base && *base ? base : OPENAI_ENDPOINT, path, q ? "?" : "",
                           q ? q : "", NULL);
        return APR_SUCCESS;
    }
    if (b->type != LLMGW_BACKEND_AZURE_OPENAI) {
        *err = config_error(p, b, "does not speak the Responses API");
        return LLMGW_EUNSUPPORTED;
    }
    if (!base || !*base) {
        *err = config_error(p, b, "has no endpoint");
        return LLMGW_EUNSUPPORTED;
    }
    if (azure_v1(b))
        *url = apr_pstrcat(p, base, "/openai/v1", path, q ? "?" : "", q ? q : "", NULL);
    else
        *url = apr_pstrcat(p, base, "/openai", path,
                           "?api-version=", apr_pescape_urlencoded(p, azure_version(b)),
                           q ? "&" : "", q ? q : "", NULL);
    return APR_SUCCESS;
}

/* The backend's credentials, as its chat translator sends them (providers.md 3.1, 4.2). */
static apr_array_header_t *auth_headers(apr_pool_t *p, const llmgw_backend_t *b)
{
    apr_array_header_t *h = apr_array_make(p, 7, sizeof(const char *));
    const char *key = b->api_key;

    if (b->type == LLMGW_BACKEND_AZURE_OPENAI) {
        if (key && *key)
            llmgw_prov_push_header(h, apr_pstrcat(p, "api-key: ", key, NULL));
        return h;
    }
    if (key && *key)
        llmgw_prov_push_header(h, apr_pstrcat(p, "Authorization: Bearer ", key, NULL));
    if (b->org_id && *b->org_id)
        llmgw_prov_push_header(h, apr_pstrcat(p, "OpenAI-Organization: ", b->org_id, NULL));
    if (b->project && *b->project)
        llmgw_prov_push_header(h, apr_pstrcat(p, "OpenAI-Project: ", b->project, NULL));
    return h;
}

/* A query string goes into the URL as it is: only printable ASCII without spaces. */
static int query_ok(const char *q)
{
    for (; q && *q; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

apr_status_t llmgw_rsp_native_request(apr_pool_t *p, const llmgw_backend_t *b, const json_t *client,
                                      const char *raw, apr_size_t raw_len, const char *model,
                                      int stream, const apr_table_t *headers_in,
                                      llmgw_http_request_t *out, llmgw_error_t **err)
{
    const char *send = model, *given;
    apr_status_t rv;
    apr_array_header_t *h;

    (void)headers_in; /* organisation and project come from the config, not the client */
    if (!json_is_object(client)) {
        *err = llmgw_rsp_bad(p, NULL, NULL, "The request body must be a JSON object.");
        return LLMGW_EBADREQ;
    }
    if (json_is_true(json_object_get(client, "background"))) {
        *err = llmgw_error_make(p, 400, "invalid_request_error", "background_not_supported",
                                "background",
                                "Background responses are not supported by this gateway; send "
                                "the request without 'background'.");
        return LLMGW_EBADREQ;
    }
    if ((rv = upstream_url(p, b, "/responses", NULL, &out->url, err)) != APR_SUCCESS)
        return rv;
    /* Azure's model is its deployment, in both URL styles (4.2). */
    if (b->type == LLMGW_BACKEND_AZURE_OPENAI && b->deployment_name && *b->deployment_name)
        send = b->deployment_name;
    given = llmgw_json_str(client, "model");
    if (raw && (!send || (given && strcmp(given, send) == 0))) {
        /* Nothing to change: the client's bytes, unknown fields and all. */
        out->body = raw;
        out->body_len = raw_len;
    }
    else {
        json_t *body = json_copy((json_t *)client);
        json_t *m = send ? json_string(send) : NULL;
        if (send && !m) {
            json_decref(body);
            *err = llmgw_rsp_bad(p, "invalid_value", "model", "The model name is not valid UTF-8.");
            return LLMGW_EBADREQ;
        }
        if (m)
            json_object_set_new(body, "model", m);
        out->body = llmgw_json_dump(p, body, &out->body_len);
        json_decref(body);
        if (!out->body)
            return APR_ENOMEM;
    }
    h = auth_headers(p, b);
    llmgw_prov_push_header(h, "Content-Type: application/json");
    llmgw_prov_push_header(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    llmgw_prov_push_header(h, "Expect:");
    out->method = "POST";
    out->headers = h;
    out->stream = stream;
    return APR_SUCCESS;
}

apr_status_t llmgw_responses_native_resource(apr_pool_t *p, const llmgw_backend_t *b,
                                             const char *method, const char *id, const char *sub,
                                             const char *query, llmgw_http_request_t *out,
                                             llmgw_error_t **err)
{
    const char *path;
    apr_array_header_t *h;
    apr_status_t rv;

    if (!id || !*id || (sub && strcmp(sub, "input_items") != 0) || !query_ok(query) || !method ||
        (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)) {
        *err = llmgw_rsp_bad(p, "invalid_value", NULL, "Invalid request for a stored response.");
        return LLMGW_EBADREQ;
    }
    path = apr_pstrcat(p, "/responses/", apr_pescape_path_segment(p, id), sub ? "/" : "",
                       sub ? sub : "", NULL);
    if ((rv = upstream_url(p, b, path, query, &out->url, err)) != APR_SUCCESS)
        return rv;
    h = auth_headers(p, b);
    llmgw_prov_push_header(h, "Accept: application/json");
    out->headers = h;
    out->method = strcmp(method, "GET") == 0 ? "GET" : "DELETE";
    out->body = NULL;
    out->body_len = 0;
    out->stream = 0;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

/* Responses usage (input/output tokens, their details) as the gateway counts it. */
static int read_usage(const json_t *u, llmgw_usage_t *out)
{
    if (!json_is_object(u))
        return 0;
    memset(out, 0, sizeof(*out));
    out->present = 1;
    llmgw_prov_token_count(u, "input_tokens", &out->prompt_tokens);
    llmgw_prov_token_count(u, "output_tokens", &out->completion_tokens);
    if (!llmgw_prov_token_count(u, "total_tokens", &out->total_tokens))
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    llmgw_prov_token_count(json_object_get(u, "input_tokens_details"), "cached_tokens",
                           &out->cached_tokens);
    llmgw_prov_token_count(json_object_get(u, "output_tokens_details"), "reasoning_tokens",
                           &out->reasoning_tokens);
    return 1;
}

static void read_model(apr_pool_t *p, const json_t *response, const char **model)
{
    const char *m = llmgw_json_str(response, "model");

    if (m && *m)
        *model = apr_pstrdup(p, m);
}

apr_status_t llmgw_rsp_native_observe(apr_pool_t *p, const char *body, apr_size_t len,
                                      llmgw_usage_t *usage, const char **model)
{
    json_t *j = body ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;

    *model = NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return LLMGW_EUPSTREAM;
    }
    read_usage(json_object_get(j, "usage"), usage);
    read_model(p, j, model);
    json_decref(j);
    return APR_SUCCESS;
}

static int is_terminal(const char *type)
{
    return strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
           strcmp(type, "response.failed") == 0;
}

/* The event's JSON (new reference) and its type (the JSON's, else the SSE name); NULL if
 * unreadable. */
static json_t *parse_event(const llmgw_sse_event_t *ev, const char **type)
{
    const char *data;
    apr_size_t len;
    json_t *j;

    llmgw_prov_event_data(ev, &data, &len);
    j = len ? llmgw_json_load(data, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    *type = llmgw_json_str(j, "type");
    if (!*type)
        *type = ev->event && *ev->event ? ev->event : "";
    return j;
}

apr_status_t llmgw_rsp_native_event(apr_pool_t *p, const llmgw_sse_event_t *ev,
                                    llmgw_chunk_kind_e *kind, llmgw_usage_t *usage,
                                    const char **model)
{
    const char *type;
    json_t *j = parse_event(ev, &type), *response;
    apr_status_t rv = APR_SUCCESS;

    *kind = LLMGW_CHUNK_CONTENT;
    *model = NULL;
    if (!j)
        return APR_EINVAL;
    response = json_object_get(j, "response");
    read_model(p, response, model);
    if (strcmp(type, "response.created") == 0 || strcmp(type, "response.in_progress") == 0 ||
        strcmp(type, "response.queued") == 0) {
        *kind = LLMGW_CHUNK_PREAMBLE;
    }
    else if (is_terminal(type)) {
        *kind = LLMGW_CHUNK_FINAL;
        read_usage(json_object_get(response, "usage"), usage);
        rv = APR_EOF;
    }
    else if (strcmp(type, "error") == 0) {
        rv = LLMGW_EUPSTREAM;
    }
    json_decref(j);
    return rv;
}

json_t *llmgw_responses_native_terminal(apr_pool_t *p, const llmgw_sse_event_t *ev)
{
    const char *type;
    json_t *j = parse_event(ev, &type), *response = NULL;

    if (j && is_terminal(type) && json_is_object(json_object_get(j, "response")))
        response = llmgw_json_pool_own(p, json_incref(json_object_get(j, "response")));
    json_decref(j);
    return response;
}

llmgw_error_t *llmgw_rsp_native_error(apr_pool_t *p, int status, const char *body, apr_size_t len)
{
    json_t *j, *e, *code;
    const char *c = NULL, *type, *param, *msg;
    llmgw_error_t *out;

    if (status < 400 || status > 599)
        return llmgw_prov_odd_status(p, status);
    /* The gateway's own key was refused: not the client's fault, and some
     * upstreams echo part of the key, so none of their text goes out. */
    if (llmgw_prov_credentials_refused(status))
        return llmgw_prov_auth_failed(p, status);
    j = body && len ? llmgw_json_load(body, len, JSON_ALLOW_NUL, NULL) : NULL;
    e = json_object_get(j, "error");
    if (!json_is_object(e)) {
        json_decref(j);
        return llmgw_error_make(p, status, NULL, llmgw_prov_status_code(status), NULL,
                                "upstream returned HTTP %d", status);
    }
    /* OpenAI's shape passes as it is; Azure's (no type, numeric codes) is
     * normalised (providers.md 4.6); a content-filter 400 keeps its code. */
    code = json_object_get(e, "code");
    if (json_is_string(code) && json_string_length(code) > 0 &&
        strspn(json_string_value(code), "0123456789") < json_string_length(code))
        c = json_string_value(code);
    else
        c = llmgw_prov_status_code(status);
    type = llmgw_json_str(e, "type");
    param = llmgw_json_str(e, "param");
    msg = llmgw_prov_upstream_message(p, llmgw_json_str(e, "message"), status);
    out = llmgw_error_make(p, status, type && *type ? type : NULL, c,
                           param && *param ? param : NULL, "%s", msg);
    json_decref(j);
    return out;
}
