/*
 * The `meta` translator (providers.md 8): Llama behind an OpenAI-compatible
 * host named by `endpoint` (required), as a dialect of the
 * OpenAI-compatible core.
 *
 * The hosts differ in what they refuse, so the body is rebuilt from the
 * common subset of 8.2 with a per-host profile, chosen from the endpoint's
 * host name: Together, Groq and Fireworks by their public API hosts, and
 * every other host (vLLM, llama.cpp, Meta's own API, a test server) as a
 * generic OpenAI-compatible server, which is what vLLM is.
 *
 *   host       stop        n>1   logprobs   parallel_tool_calls  stream usage
 *   together   array only  yes   integer k  not sent             final chunk
 *   groq       as given    no    refused    sent                 x_groq.usage
 *   fireworks  as given    yes   OpenAI     not sent             final chunk
 *   generic    as given    yes   OpenAI     sent                 asked for
 *
 * Authentication is optional (self-hosted servers often run without a key).
 * Answers are normalised by the core (eos -> stop, usage relocated, extras
 * such as x_groq, timings and prompt stripped).
 */
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include "llmgw_openai_compat.h"
#include "llmgw_json.h"

/* Shared by every host: the fields of 8.2 and OpenAI's conversation rules. */
#define META_COMMON                                                                                \
    .seed_field = "seed", .required_choice = "required", .tools_need_parameters = 0,               \
    .schema_required = 0, .reasoning_effort = 0, .prediction = 0, .tool_message_name = 0,          \
    .short_tool_ids = 0, .bridge = NULL, .prefix_trailing_assistant = 0, .merge_user_turns = 0

static const llmgw_oai_profile_t together_profile = {
    META_COMMON,     .stream_usage_option = 0, .max_n = 0,
    .stop_array = 1, .parallel_tool_calls = 0, .logprobs = LLMGW_OAI_LOGPROBS_INTEGER,
};

static const llmgw_oai_profile_t groq_profile = {
    META_COMMON,     .stream_usage_option = 0, .max_n = 1,
    .stop_array = 0, .parallel_tool_calls = 1, .logprobs = LLMGW_OAI_LOGPROBS_NONE,
};

static const llmgw_oai_profile_t fireworks_profile = {
    META_COMMON,     .stream_usage_option = 0, .max_n = 128,
    .stop_array = 0, .parallel_tool_calls = 0, .logprobs = LLMGW_OAI_LOGPROBS_OPENAI,
};

static const llmgw_oai_profile_t generic_profile = {
    META_COMMON,     .stream_usage_option = 1, .max_n = 0,
    .stop_array = 0, .parallel_tool_calls = 1, .logprobs = LLMGW_OAI_LOGPROBS_OPENAI,
};

/* Does the host of @p url end with the domain @p domain? */
static int host_is(apr_pool_t *p, const char *url, const char *domain)
{
    const char *start = strstr(url, "://");
    apr_size_t n, dn = strlen(domain);
    const char *host;

    start = start ? start + 3 : url;
    n = strcspn(start, "/:?#");
    host = apr_pstrmemdup(p, start, n);
    if (n < dn || strcasecmp(host + n - dn, domain) != 0)
        return 0;
    return n == dn || host[n - dn - 1] == '.';
}

static const llmgw_oai_profile_t *host_profile(const llmgw_call_t *call)
{
    const char *url = call->backend->endpoint ? call->backend->endpoint : "";
    apr_pool_t *p = call->pool;

    if (host_is(p, url, "together.xyz") || host_is(p, url, "together.ai"))
        return &together_profile;
    if (host_is(p, url, "groq.com"))
        return &groq_profile;
    if (host_is(p, url, "fireworks.ai"))
        return &fireworks_profile;
    return &generic_profile;
}

static apr_status_t meta_chat_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    return llmgw_oai_rebuild_chat(call, host_profile(call), out, err);
}

static apr_status_t meta_embeddings_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    return llmgw_oai_rebuild_embeddings(call, "dimensions", out, err);
}

static int mentions(const char *text, const char *what)
{
    apr_size_t n = strlen(what);

    for (; text && *text; text++)
        if (strncasecmp(text, what, n) == 0)
            return 1;
    return 0;
}

/* Prompt plus max_tokens beyond the context: Together documents 403, answers 400 (8.4). */
static int context_too_long(int status, const llmgw_error_t *e)
{
    if (status != 400 && status != 403)
        return 0;
    if (mentions(e->message, "context length") || mentions(e->message, "context window") ||
        mentions(e->message, "context_length"))
        return 1;
    return status == 400 && e->param && strcmp(e->param, "max_tokens") == 0 &&
           mentions(e->message, "input validation error");
}

static llmgw_error_t *meta_fix_error(llmgw_call_t *call, int status, const json_t *body,
                                     llmgw_error_t *e)
{
    apr_pool_t *p = call->pool;

    if (context_too_long(status, e))
        return llmgw_error_make(p, 400, NULL, "context_length_exceeded", e->param, "%s",
                                e->message);
    /* Together's spend limit: the gateway's account, not the client's request. */
    if (status == 402)
        return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                                "the upstream refused the gateway's account (HTTP 402)");
    /* Groq's flex tier is out of capacity: an overload like any 503 (8.2). */
    if (status == 498)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL, "%s",
                                e->message);
    return e;
}

static const llmgw_oai_dialect_t meta_dialect = {
    .type = "meta",
    .default_endpoint = NULL,
    .normalise = 1,
    .local_base64 = 1,
    .url = NULL,
    .auth = llmgw_oai_bearer_auth,
    .chat_body = meta_chat_body,
    .embeddings_body = meta_embeddings_body,
    .fix_error = meta_fix_error,
};

static apr_status_t meta_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                       llmgw_error_t **err)
{
    return llmgw_oai_build_request(&meta_dialect, call, out, err);
}

static apr_status_t meta_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                        llmgw_response_t *out, llmgw_error_t **err)
{
    return llmgw_oai_parse_response(&meta_dialect, call, body, len, out, err);
}

static llmgw_error_t *meta_parse_error(llmgw_call_t *call, int status, const char *body,
                                       apr_size_t len)
{
    return llmgw_oai_parse_error(&meta_dialect, call, status, body, len);
}

static apr_status_t meta_stream_init(llmgw_stream_t *st)
{
    return llmgw_oai_stream_init(&meta_dialect, st);
}

static const void *meta_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    return llmgw_oai_prepare(&meta_dialect, b, p);
}

const llmgw_provider_t llmgw_provider_meta = {
    .type = "meta",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = meta_build_request,
    .parse_response = meta_parse_response,
    .parse_error = meta_parse_error,
    .stream_init = meta_stream_init,
    .stream_event = llmgw_oai_stream_event,
    .stream_end = llmgw_oai_stream_end,
    .prepare = meta_prepare,
};
