/*
 * The `openai` translator (providers.md 3): a near pass-through, and the
 * reference dialect of the OpenAI-compatible core (llmgw_openai_compat.c).
 *
 * Requests keep every client field, unknown ones included; only `model` is
 * replaced and the stream fields are adjusted. Legacy `functions` /
 * `function_call` are forwarded as they are: OpenAI still accepts them and
 * answers in the legacy shape, so normalising here would also force us to
 * convert every answer back (providers.md 2.1 rule 4) for no gain.
 *
 * Streams are always asked for usage upstream (the gateway accounts tokens
 * even when the client did not ask); when the client did not ask, the usage
 * chunk is dropped and the `"usage":null` members are removed, so the
 * client sees exactly what OpenAI would have sent it (providers.md 2.4).
 * Answers are otherwise forwarded as OpenAI sent them (dialect.normalise 0).
 */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "llmgw_openai_compat.h"

static void openai_auth(const llmgw_backend_t *b, apr_pool_t *p, apr_array_header_t *h)
{
    llmgw_oai_bearer_auth(b, p, h);
    if (b->org_id && *b->org_id)
        APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "OpenAI-Organization: ", b->org_id, NULL);
    if (b->project && *b->project)
        APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "OpenAI-Project: ", b->project, NULL);
}

static apr_status_t openai_chat_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    apr_status_t rv = llmgw_oai_copy_body(call, call->model, out, err);

    if (rv == APR_SUCCESS)
        llmgw_oai_set_stream_fields(*out, call->stream, 1);
    return rv;
}

static apr_status_t openai_embeddings_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    return llmgw_oai_copy_body(call, call->model, out, err);
}

/*
 * The client's bytes can go upstream unchanged when its model is the one to
 * send and the stream fields need no edit: a non-streaming request without
 * stream_options, or a stream that already asks for usage.
 */
static int openai_raw_body_ok(const llmgw_call_t *call)
{
    const json_t *body = call->body;
    const json_t *so = json_object_get(body, "stream_options");
    const char *model = llmgw_json_str(body, "model");

    if (!model || !call->model || strcmp(model, call->model) != 0)
        return 0;
    if (call->api == LLMGW_API_EMBEDDINGS)
        return 1;
    if (!call->stream)
        return !so && !json_is_true(json_object_get(body, "stream"));
    return json_is_true(json_object_get(body, "stream")) &&
           json_is_true(json_object_get(so, "include_usage"));
}

static const llmgw_oai_dialect_t openai_dialect = {
    .type = "openai",
    .default_endpoint = "https://api.openai.com/v1",
    .normalise = 0,
    .local_base64 = 0,
    .url = NULL,
    .auth = openai_auth,
    .chat_body = openai_chat_body,
    .embeddings_body = openai_embeddings_body,
    .raw_body_ok = openai_raw_body_ok,
    .fix_error = NULL,
};

static apr_status_t openai_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                         llmgw_error_t **err)
{
    return llmgw_oai_build_request(&openai_dialect, call, out, err);
}

static apr_status_t openai_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                          llmgw_response_t *out, llmgw_error_t **err)
{
    return llmgw_oai_parse_response(&openai_dialect, call, body, len, out, err);
}

static llmgw_error_t *openai_parse_error(llmgw_call_t *call, int status, const char *body,
                                         apr_size_t len)
{
    return llmgw_oai_parse_error(&openai_dialect, call, status, body, len);
}

static apr_status_t openai_stream_init(llmgw_stream_t *st)
{
    return llmgw_oai_stream_init(&openai_dialect, st);
}

static const void *openai_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    return llmgw_oai_prepare(&openai_dialect, b, p);
}

const llmgw_provider_t llmgw_provider_openai = {
    .type = "openai",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .parse_error = openai_parse_error,
    .stream_init = openai_stream_init,
    .stream_event = llmgw_oai_stream_event,
    .stream_end = llmgw_oai_stream_end,
    .prepare = openai_prepare,
};
