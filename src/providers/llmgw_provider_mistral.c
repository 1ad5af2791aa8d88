/*
 * The `mistral` translator (providers.md 7), a dialect of the
 * OpenAI-compatible core.
 *
 * Mistral validates strictly: any field it does not know, at any level, is a
 * 422. So the body is rebuilt from the whitelist of 7.2 (the core's
 * llmgw_oai_rebuild_chat with the profile below): seed -> random_seed,
 * tool_choice "required" -> "any", a json_schema response_format must carry
 * its schema, functions get an empty parameter schema when they have none.
 * The conversation is fitted to Mistral's rules (7.3): tool-call ids that are
 * not 9 alphanumerics are mapped the same way in tool_calls[].id and
 * tool_call_id, an assistant "bridge" goes between a tool result and a user
 * turn, a trailing assistant message becomes a prefix.
 *
 * Answers are normalised by the core (usage moved out of the finish chunk,
 * model_length -> length, tool-call `type` added). Errors come in several
 * shapes with object-valued messages (7.7); a 422 is the gateway's fault, not
 * the client's, but the client still gets a 400 that it can read.
 */
#include <string.h>
#include "llmgw_openai_compat.h"
#include "llmgw_json.h"
#include "llmgw_provider_util.h"

/* What the gateway says for the client between a tool result and a user turn. */
#define MISTRAL_BRIDGE "OK."

static const llmgw_oai_profile_t mistral_profile = {
    .seed_field = "random_seed",
    .required_choice = "any",
    .stream_usage_option = 0, /* usage arrives in the final chunk anyway */
    .max_n = 0,
    .stop_array = 0,
    .parallel_tool_calls = 1,
    .logprobs = LLMGW_OAI_LOGPROBS_NONE,
    .tools_need_parameters = 1,
    .schema_required = 1,
    .reasoning_effort = 1,
    .prediction = 1,
    .tool_message_name = 1,
    .short_tool_ids = 1,
    .bridge = MISTRAL_BRIDGE,
    .prefix_trailing_assistant = 1,
    .merge_user_turns = 1,
};

static apr_status_t mistral_chat_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    return llmgw_oai_rebuild_chat(call, &mistral_profile, out, err);
}

/* mistral-embed has a fixed size; other embedding models take output_dimension (7.5). */
static apr_status_t mistral_embeddings_body(llmgw_call_t *call, json_t **out, llmgw_error_t **err)
{
    int fixed = strncmp(call->model, "mistral-embed", 13) == 0;

    return llmgw_oai_rebuild_embeddings(call, fixed ? NULL : "output_dimension", out, err);
}

static llmgw_error_t *mistral_fix_error(llmgw_call_t *call, int status, const json_t *body,
                                        llmgw_error_t *e)
{
    /* A 422 means our body broke Mistral's schema (7.7): the client gets
     * Mistral's explanation as an ordinary invalid request. */
    if (status == 422) {
        e->status = 400;
        e->type = "invalid_request_error";
    }
    /* "Prompt contains 33025 tokens and 0 draft tokens, too large for model
     * with 32768 maximum context length" (providers.md 9.2). */
    if (status == 400 && (llmgw_prov_mentions(e->message, "too large for model") ||
                          llmgw_prov_mentions(e->message, "maximum context length")))
        return llmgw_prov_context_exceeded(call->pool, e->message);
    return e;
}

static const llmgw_oai_dialect_t mistral_dialect = {
    .type = "mistral",
    .default_endpoint = "https://api.mistral.ai/v1",
    .normalise = 1,
    .local_base64 = 1,
    .url = NULL,
    .auth = llmgw_oai_bearer_auth,
    .chat_body = mistral_chat_body,
    .embeddings_body = mistral_embeddings_body,
    .fix_error = mistral_fix_error,
};

static apr_status_t mistral_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                          llmgw_error_t **err)
{
    return llmgw_oai_build_request(&mistral_dialect, call, out, err);
}

static apr_status_t mistral_parse_response(llmgw_call_t *call, const char *body, apr_size_t len,
                                           llmgw_response_t *out, llmgw_error_t **err)
{
    return llmgw_oai_parse_response(&mistral_dialect, call, body, len, out, err);
}

static llmgw_error_t *mistral_parse_error(llmgw_call_t *call, int status, const char *body,
                                          apr_size_t len)
{
    return llmgw_oai_parse_error(&mistral_dialect, call, status, body, len);
}

static apr_status_t mistral_stream_init(llmgw_stream_t *st)
{
    return llmgw_oai_stream_init(&mistral_dialect, st);
}

static const void *mistral_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    return llmgw_oai_prepare(&mistral_dialect, b, p);
}

const llmgw_provider_t llmgw_provider_mistral = {
    .type = "mistral",
    .apis = LLMGW_API_CHAT | LLMGW_API_EMBEDDINGS,
    .build_request = mistral_build_request,
    .parse_response = mistral_parse_response,
    .parse_error = mistral_parse_error,
    .stream_init = mistral_stream_init,
    .stream_event = llmgw_oai_stream_event,
    .stream_end = llmgw_oai_stream_end,
    .prepare = mistral_prepare,
};
