/*
 * Schema checks of the client's OpenAI request (see llmgw_validate.h).
 *
 * Every function returns the first problem found as a 400 llmgw_error_t, or
 * NULL. The order of the checks is part of the contract: a request with
 * several problems always reports the same one, whatever the backend.
 */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_validate.h"
#include "llmgw_json.h"

static const char *const valid_roles[] = {"system", "developer", "user", "assistant",
                                          "tool",   "function",  NULL};

/* Roles whose messages OpenAI refuses without content: an assistant turn may
 * carry only tool_calls, and a legacy function result may be null. */
static const char *const content_roles[] = {"system", "developer", "user", "tool", NULL};

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0)
            return 1;
    }
    return 0;
}

static llmgw_error_t *missing(apr_pool_t *p, const char *param)
{
    return llmgw_error_make(p, 400, NULL, "missing_required_parameter", param,
                            "Missing required parameter: '%s'.", param);
}

static llmgw_error_t *wrong_type(apr_pool_t *p, const char *key, const char *what)
{
    return llmgw_error_make(p, 400, NULL, "invalid_type", key, "'%s' must be %s", key, what);
}

/*
 * One content part: an object with a string `type`; the two parts every
 * backend reads carry what they must (a string `text`, an `image_url` object
 * with a string `url`). OpenAI refuses the same, and a translator must never
 * be handed a part whose text is null or a number.
 */
static llmgw_error_t *validate_part(apr_pool_t *p, const json_t *part, const char *path)
{
    const char *type = json_string_value(json_object_get(part, "type"));
    const json_t *image;

    if (!json_is_object(part))
        return llmgw_error_make(p, 400, NULL, "invalid_value", path, "%s must be an object", path);
    if (!type)
        return missing(p, apr_pstrcat(p, path, ".type", NULL));
    if (strcmp(type, "text") == 0 && !json_is_string(json_object_get(part, "text")))
        return wrong_type(p, apr_pstrcat(p, path, ".text", NULL), "a string");
    if (strcmp(type, "image_url") != 0)
        return NULL;
    image = json_object_get(part, "image_url");
    if (!json_is_object(image))
        return wrong_type(p, apr_pstrcat(p, path, ".image_url", NULL), "an object");
    if (!json_is_string(json_object_get(image, "url")))
        return missing(p, apr_pstrcat(p, path, ".image_url.url", NULL));
    return NULL;
}

static llmgw_error_t *validate_parts(apr_pool_t *p, const json_t *parts, const char *param)
{
    llmgw_error_t *e;
    size_t i;
    json_t *part;

    json_array_foreach (parts, i, part) {
        if ((e = validate_part(p, part, apr_psprintf(p, "%s[%" APR_SIZE_T_FMT "]", param, i))))
            return e;
    }
    return NULL;
}

/* messages[i].content: a string or an array of parts; null or absent only
 * for the roles that may go without (content_roles). */
static llmgw_error_t *validate_content(apr_pool_t *p, const json_t *m, const char *path,
                                       const char *role)
{
    const json_t *content = json_object_get(m, "content");
    const char *param = apr_pstrcat(p, path, ".content", NULL);
    int required = in_list(content_roles, role);

    if (json_is_string(content))
        return NULL;
    if (json_is_array(content))
        return validate_parts(p, content, param);
    if (!required && llmgw_json_is_absent(content))
        return NULL;
    if (!content)
        return missing(p, param);
    return llmgw_error_make(p, 400, NULL, "invalid_value", param, "%s must be %s", param,
                            required ? "a string or an array of content parts"
                                     : "a string, an array of content parts or null");
}

static llmgw_error_t *validate_message(apr_pool_t *p, const json_t *m, size_t i)
{
    const char *path = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "]", i);
    const json_t *role = json_object_get(m, "role");

    if (!json_is_object(m))
        return llmgw_error_make(p, 400, NULL, "invalid_value", path, "%s must be an object", path);
    if (!json_is_string(role))
        return missing(p, apr_pstrcat(p, path, ".role", NULL));
    if (!in_list(valid_roles, json_string_value(role)))
        return llmgw_error_make(p, 400, NULL, "invalid_value", apr_pstrcat(p, path, ".role", NULL),
                                "Invalid value for role: '%s'", json_string_value(role));
    return validate_content(p, m, path, json_string_value(role));
}

static llmgw_error_t *validate_messages(apr_pool_t *p, const json_t *msgs)
{
    llmgw_error_t *e;
    size_t i;
    json_t *m;

    if (!msgs)
        return missing(p, "messages");
    if (!json_is_array(msgs))
        return llmgw_error_make(p, 400, NULL, "invalid_value", "messages",
                                "'messages' must be an array of message objects");
    if (json_array_size(msgs) == 0)
        return llmgw_error_make(p, 400, NULL, "invalid_value", "messages",
                                "'messages' must contain at least one message");
    json_array_foreach (msgs, i, m) {
        if ((e = validate_message(p, m, i)) != NULL)
            return e;
    }
    return NULL;
}

/* A JSON null means "use the default" (the OpenAI SDKs send it), so every
 * optional parameter accepts null besides its own type. */
static int is_bool(const json_t *v)
{
    return json_is_null(v) || json_is_boolean(v);
}

static int is_positive_int(const json_t *v)
{
    return json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 1);
}

static int is_array(const json_t *v)
{
    return json_is_null(v) || json_is_array(v);
}

/* A number in [lo, hi], or null: the ranges OpenAI enforces, so that a
 * request OpenAI would refuse is refused for every backend alike. */
static llmgw_error_t *check_number(apr_pool_t *p, const json_t *body, const char *key, double lo,
                                   double hi, const char *range)
{
    const json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_number(v))
        return wrong_type(p, key, "a number");
    if (json_number_value(v) < lo || json_number_value(v) > hi)
        return llmgw_error_make(p, 400, NULL, "invalid_value", key, "'%s' must be %s", key, range);
    return NULL;
}

/* @p key, when present, must satisfy @p ok (else: "'key' must be <what>"). */
static llmgw_error_t *check_type(apr_pool_t *p, const json_t *body, const char *key,
                                 int (*ok)(const json_t *), const char *what)
{
    const json_t *v = json_object_get(body, key);

    if (!v || ok(v))
        return NULL;
    return wrong_type(p, key, what);
}

/* stream_options is refused without stream:true, as OpenAI does (providers.md 2.1). */
static llmgw_error_t *validate_stream_options(apr_pool_t *p, const json_t *body)
{
    const json_t *so = json_object_get(body, "stream_options");
    const json_t *v;

    if (!so || json_is_null(so))
        return NULL;
    if (!json_is_object(so))
        return wrong_type(p, "stream_options", "an object");
    if (!json_is_true(json_object_get(body, "stream")))
        return llmgw_error_make(p, 400, NULL, "invalid_value", "stream_options",
                                "The 'stream_options' parameter is only allowed when "
                                "'stream' is enabled.");
    v = json_object_get(so, "include_usage");
    if (v && !json_is_boolean(v))
        return wrong_type(p, "stream_options.include_usage", "a boolean");
    return NULL;
}

/* tools[i]: an object with a string `type`; a function tool names its function. */
static llmgw_error_t *validate_tools(apr_pool_t *p, const json_t *tools)
{
    const char *path, *type;
    size_t i;
    json_t *t;

    json_array_foreach (tools, i, t) {
        path = apr_psprintf(p, "tools[%" APR_SIZE_T_FMT "]", i);
        if (!json_is_object(t))
            return llmgw_error_make(p, 400, NULL, "invalid_value", path, "%s must be an object",
                                    path);
        type = json_string_value(json_object_get(t, "type"));
        if (!type)
            return missing(p, apr_pstrcat(p, path, ".type", NULL));
        if (strcmp(type, "function") == 0 &&
            !json_is_string(json_object_get(json_object_get(t, "function"), "name")))
            return missing(p, apr_pstrcat(p, path, ".function.name", NULL));
    }
    return NULL;
}

static llmgw_error_t *validate_chat(apr_pool_t *p, const json_t *body)
{
    llmgw_error_t *e;

    if ((e = validate_messages(p, json_object_get(body, "messages"))) ||
        (e = check_type(p, body, "stream", is_bool, "a boolean")) ||
        (e = check_number(p, body, "temperature", 0, 2, "between 0 and 2")) ||
        (e = check_number(p, body, "top_p", 0, 1, "between 0 and 1")) ||
        (e = check_type(p, body, "n", is_positive_int, "an integer of at least 1")) ||
        (e = check_type(p, body, "max_tokens", is_positive_int, "an integer of at least 1")) ||
        (e = check_type(p, body, "max_completion_tokens", is_positive_int,
                        "an integer of at least 1")) ||
        (e = check_type(p, body, "tools", is_array, "an array")) ||
        (e = validate_tools(p, json_object_get(body, "tools"))))
        return e;
    return validate_stream_options(p, body);
}

/* What one item of an embeddings input array may be; all items must agree. */
typedef enum { INPUT_TEXT, INPUT_TOKEN, INPUT_TOKENS, INPUT_OTHER } input_kind_e;

static int is_token(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int is_token_array(const json_t *v)
{
    size_t i;
    json_t *t;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return 0;
    json_array_foreach (v, i, t) {
        if (!is_token(t))
            return 0;
    }
    return 1;
}

static input_kind_e input_kind(const json_t *v)
{
    if (json_is_string(v))
        return INPUT_TEXT;
    if (json_is_integer(v))
        return INPUT_TOKEN;
    if (json_is_array(v))
        return INPUT_TOKENS;
    return INPUT_OTHER;
}

/* Whether item @p v is a valid item of an input of @p kind. */
static int input_item_ok(input_kind_e kind, const json_t *v)
{
    switch (kind) {
    case INPUT_TEXT:
        return json_is_string(v) && json_string_length(v) > 0;
    case INPUT_TOKEN:
        return is_token(v);
    case INPUT_TOKENS:
        return is_token_array(v);
    default:
        return 0;
    }
}

static const char *const input_item_what[] = {
    [INPUT_TEXT] = "a non-empty string",
    [INPUT_TOKEN] = "a token id (a non-negative integer)",
    [INPUT_TOKENS] = "a non-empty array of token ids",
    [INPUT_OTHER] = "a string, a token id or an array of token ids",
};

/* OpenAI takes a list of texts, one token list, or a list of token lists;
 * the first item says which, and an empty text is refused. */
static llmgw_error_t *validate_input_array(apr_pool_t *p, const json_t *in)
{
    input_kind_e kind = input_kind(json_array_get(in, 0));
    size_t i;
    json_t *v;

    json_array_foreach (in, i, v) {
        if (!input_item_ok(kind, v)) {
            const char *param = apr_psprintf(p, "input[%" APR_SIZE_T_FMT "]", i);
            return llmgw_error_make(p, 400, NULL, "invalid_value", param, "'%s' must be %s", param,
                                    input_item_what[kind]);
        }
    }
    return NULL;
}

static llmgw_error_t *validate_input(apr_pool_t *p, const json_t *in)
{
    if (!in)
        return missing(p, "input");
    if (json_is_string(in) && json_string_length(in) == 0)
        return llmgw_error_make(p, 400, NULL, "invalid_value", "input",
                                "'input' must not be an empty string");
    if (json_is_string(in))
        return NULL;
    if (!json_is_array(in) || json_array_size(in) == 0)
        return llmgw_error_make(p, 400, NULL, "invalid_value", "input",
                                "'input' must be a string or a non-empty array");
    return validate_input_array(p, in);
}

/* OpenAI's rule for `dimensions` (a positive integer), plus a ceiling: the
 * value becomes the size of every vector an upstream builds. */
static llmgw_error_t *validate_dimensions(apr_pool_t *p, const json_t *body)
{
    const json_t *v = json_object_get(body, "dimensions");

    if (llmgw_json_is_absent(v))
        return NULL;
    if (!json_is_integer(v))
        return wrong_type(p, "dimensions", "an integer");
    if (json_integer_value(v) < 1 || json_integer_value(v) > LLMGW_MAX_EMBEDDING_DIMENSIONS)
        return llmgw_error_make(p, 400, NULL, "invalid_value", "dimensions",
                                "'dimensions' must be between 1 and %d",
                                LLMGW_MAX_EMBEDDING_DIMENSIONS);
    return NULL;
}

static llmgw_error_t *validate_embeddings(apr_pool_t *p, const json_t *body)
{
    llmgw_error_t *e = validate_input(p, json_object_get(body, "input"));

    return e ? e : validate_dimensions(p, body);
}

static int is_string(const json_t *v)
{
    return json_is_string(v);
}

llmgw_error_t *llmgw_validate_request(apr_pool_t *p, llmgw_api_e api, const json_t *body)
{
    llmgw_error_t *e;

    if (!json_is_object(body))
        return llmgw_error_make(p, 400, NULL, "invalid_json", NULL,
                                "The request body must be a JSON object.");
    /* model may be absent (the backend's defaultModel), but never another type. */
    if ((e = check_type(p, body, "model", is_string, "a string")) != NULL)
        return e;
    switch (api) {
    case LLMGW_API_CHAT:
        return validate_chat(p, body);
    case LLMGW_API_EMBEDDINGS:
        return validate_embeddings(p, body);
    default:
        return NULL;
    }
}
