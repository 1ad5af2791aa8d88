/*
 * The `azure-openai` translator (providers.md 4): OpenAI's body on Azure's
 * URLs, as a dialect of the OpenAI-compatible core.
 *
 * Deployment style (the default):
 *   <endpoint>/openai/deployments/<deploymentName>/chat/completions?api-version=<apiVersion>
 * with no `model` in the body (the deployment selects it). With
 * `apiVersion: v1` the v1 style is used instead: <endpoint>/openai/v1/...,
 * and `model` is the deployment name. Either way the request's model does
 * not choose anything: Azure always uses its deployment, and the answer's
 * `model` is what Azure reports (the deployment's underlying model).
 *
 * The body is the client's, as for openai (unknown fields included), less
 * what Azure must not see: `developer` becomes `system` (4.3), Azure-only
 * extensions such as `data_sources` are never sent, and fields that the
 * configured api-version predates are mapped or refused (4.1). Answers are
 * normalised by the core: content-filter annotations stripped, the empty
 * first stream chunk dropped, one stable id per stream.
 */
#include <string.h>
#include <apr_escape.h>
#include <apr_strings.h>
#include "llmgw_openai_compat.h"
#include "llmgw_json.h"

/* api-versions from this date on take max_completion_tokens,
 * parallel_tool_calls and stream_options (providers.md 4.1). */
#define AZURE_MODERN_PARAMS "2024-09-01"
/* ... and structured outputs (json_schema) from this one. */
#define AZURE_JSON_SCHEMA "2024-08-01"

static int is_v1(const llmgw_backend_t *b)
{
    const char *v = b->api_version;
    return v && strcmp(v, "v1") == 0;
}

/*
 * Does the configured api-version date from @p since or later? Versions
 * that are not dated ("v1", "preview", "latest") are the newest there are.
 */
static int version_at_least(const llmgw_call_t *call, const char *since)
{
    const char *v = call->backend->api_version;
    int i;

    if (!v)
        return 1;
    for (i = 0; i < 10; i++) {
        int dash = i == 4 || i == 7;
        if (!v[i] || (dash ? v[i] != '-' : (v[i] < '0' || v[i] > '9')))
            return 1;
    }
    return strncmp(v, since, 10) >= 0;
}

/* NULL until the backend names what the URL needs (the body check says so). */
static const char *azure_url(const llmgw_backend_t *b, apr_pool_t *p, const char *base,
                             const char *path)
{
    if (is_v1(b))
        return apr_pstrcat(p, base, "/openai/v1", path, NULL);
    if (!b->deployment_name || !b->api_version)
        return NULL;
    return apr_pstrcat(p, base, "/openai/deployments/",
                       apr_pescape_path_segment(p, b->deployment_name), path,
                       "?api-version=", apr_pescape_urlencoded(p, b->api_version), NULL);
}

static void azure_auth(const llmgw_backend_t *b, apr_pool_t *p, apr_array_header_t *h)
{
    if (b->api_key && *b->api_key)
        APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "api-key: ", b->api_key, NULL);
}

/* v1 names the deployment in `model`; the deployment URLs carry none. */
static apr_status_t azure_copy(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    if (!call->backend->deployment_name || (!is_v1(call->backend) && !call->backend->api_version)) {
        *err = llmgw_error_make(call->pool, 500, NULL, NULL, NULL,
                                "backend \"%s\" (azure-openai) needs deploymentName and "
                                "apiVersion",
                                call->backend->name);
        return LLMGW_EUNSUPPORTED;
    }
    return llmgw_oai_copy_body(call, is_v1(call->backend) ? call->backend->deployment_name : NULL,
                               out, err);
}

/* A field the configured api-version does not know yet. */
static apr_status_t too_new(llmgw_call_t *call, json_t *body, const char *key, const char *code,
                            llmgw_error_t **err)
{
    apr_status_t rv = llmgw_oai_unsupported(call, key, code, err);

    json_object_del(body, key);
    return rv;
}

static int is_json_schema(const json_t *rf)
{
    const char *type = llmgw_json_str(rf, "type");
    return type && strcmp(type, "json_schema") == 0;
}

/* Older api-versions (4.1): map what maps, refuse (or drop) the rest. */
static apr_status_t fit_api_version(llmgw_call_t *call, json_t *body, llmgw_error_t **err)
{
    json_t *mct = json_object_get(body, "max_completion_tokens");
    apr_status_t rv = APR_SUCCESS;

    if (!version_at_least(call, AZURE_JSON_SCHEMA) &&
        is_json_schema(json_object_get(body, "response_format")))
        rv = too_new(call, body, "response_format", "unsupported_value", err);
    if (rv != APR_SUCCESS || version_at_least(call, AZURE_MODERN_PARAMS))
        return rv;
    if (mct && !json_is_null(mct)) {
        /* The same bound under its older name, for the non-reasoning models
         * that such versions serve. */
        json_object_set(body, "max_tokens", mct);
        json_object_del(body, "max_completion_tokens");
    }
    if (json_object_get(body, "parallel_tool_calls"))
        rv = too_new(call, body, "parallel_tool_calls", "unsupported_parameter", err);
    return rv;
}

static apr_status_t azure_chat_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    json_t *body;
    apr_status_t rv = azure_copy(call, &body, err);

    if (rv != APR_SUCCESS)
        return rv;
    json_object_del(body, "data_sources");
    llmgw_oai_developer_to_system(body);
    rv = fit_api_version(call, body, err);
    if (rv != APR_SUCCESS) {
        json_decref(body);
        return rv;
    }
    /* Without stream_options support the stream carries no usage (4.1). */
    llmgw_oai_set_stream_fields(body, call->stream, version_at_least(call, AZURE_MODERN_PARAMS));
    *out = body;
    return APR_SUCCESS;
}

static apr_status_t azure_embeddings_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    apr_status_t rv = azure_copy(call, out, err);

    /* Floats upstream whatever the version; base64 is done by the core. */
    if (rv == APR_SUCCESS)
        json_object_del(*out, "encoding_format");
    return rv;
}

static const llmgw_oai_dialect_t azure_dialect = {
    .type = "azure-openai",
    .default_endpoint = NULL,
    .normalise = 1,
    .local_base64 = 1,
    .url = azure_url,
    .auth = azure_auth,
    .chat_body = azure_chat_body,
    .embeddings_body = azure_embeddings_body,
    .fix_error = NULL,
};

static apr_status_t azure_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                        llmgw_error_t **err)
{
    return llmgw_oai_build_request(&azure_dialect, call, out, err);
}

static apr_status_t azure_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                         llmgw_response_t *out, llmgw_error_t **err)
{
    return llmgw_oai_parse_response(&azure_dialect, call, body, len, out, err);
}

static llmgw_error_t *azure_parse_error(llmgw_call_t *call, int status, const char *body,
                                        apr_size_t len)
{
    return llmgw_oai_parse_error(&azure_dialect, call, status, body, len);
}

static apr_status_t azure_stream_init(llmgw_stream_t *st)
{
    return llmgw_oai_stream_init(&azure_dialect, st);
}

static const void *azure_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    return llmgw_oai_prepare(&azure_dialect, b, p);
}

const llmgw_provider_t llmgw_provider_azure_openai = {
    .type = "azure-openai",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = azure_build_request,
    .parse_response = azure_parse_response,
    .parse_error = azure_parse_error,
    .stream_init = azure_stream_init,
    .stream_event = llmgw_oai_stream_event,
    .stream_end = llmgw_oai_stream_end,
    .prepare = azure_prepare,
};
