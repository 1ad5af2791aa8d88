/*
 * The OpenAI Responses dialect, request side (ingress.md 3.1-3.3, 4.3-4.6):
 * validation, the canonical chat request, and which translated backends can
 * honour a request. The answer side (Response objects, the event stream,
 * native passthrough) is llmgw_ingress_responses_answer.c; the store is
 * llmgw_responses_store.c.
 *
 * decode validates everything every backend would refuse (schema errors,
 * `background:true`, the chat-style nested tool shape, `conversation` with
 * `previous_response_id`) and builds the canonical request. What only a
 * translated backend cannot do (built-in tools, `conversation`, `prompt`,
 * `file_id` inputs...) passes decode, since an openai or azure-openai
 * backend takes it natively; check_backend refuses it per candidate, and the
 * canonical form simply leaves it out.
 *
 * Input items become chat messages by the algorithm of ingress.md 4.4. The
 * example that shows every step:
 *
 *   input: [user "Weather?", fc A, reasoning, fc B, out B, out A (text+image)]
 *   ->     user "Weather?"
 *          assistant tool_calls [A, B]   (one message: the reasoning item
 *                                         between the calls does not split it)
 *          tool A, tool B                (in the order of tool_calls, not of input)
 *          user ["Output of tool call A:", image]   (chat tools carry text only)
 *
 * Memory: the canonical request is built on jansson's heap and handed to
 * the request pool (llmgw_json_pool_own); bookkeeping comes from the pool.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "llmgw_responses.h"
#include "llmgw_responses_private.h"

/* Chat tools carry text only: what an image-only tool output says there. */
#define OUTPUT_ATTACHED "(the output is attached below)"
/* Several providers reject empty tool results (ingress.md 4.4 step 5). */
#define NO_OUTPUT "(no output)"

/* ---------------------------------------------------------------------- */
/* Errors and paths                                                       */
/* ---------------------------------------------------------------------- */

llmgw_error_t *llmgw_rsp_bad(apr_pool_t *p, const char *code, const char *param, const char *fmt,
                             ...)
{
    llmgw_error_t *e = llmgw_error_make(p, 400, "invalid_request_error", code, param, NULL);
    va_list ap;

    va_start(ap, fmt);
    e->message = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    return e;
}

const char *llmgw_rsp_path(apr_pool_t *p, const char *fmt, ...)
{
    const char *s;
    va_list ap;

    va_start(ap, fmt);
    s = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    return s;
}

static llmgw_error_t *bad_type(apr_pool_t *p, const char *param, const char *expected)
{
    return llmgw_rsp_bad(p, "invalid_type", param, "Invalid type for '%s': expected %s.", param,
                         expected);
}

static llmgw_error_t *missing(apr_pool_t *p, const char *param)
{
    return llmgw_rsp_bad(p, "missing_required_parameter", param,
                         "Missing required parameter: '%s'.", param);
}

static llmgw_error_t *bad_value(apr_pool_t *p, const char *param, const char *why)
{
    return llmgw_rsp_bad(p, "invalid_value", param, "Invalid value for '%s': %s.", param, why);
}

/* ---------------------------------------------------------------------- */
/* Small JSON checks                                                      */
/* ---------------------------------------------------------------------- */

static int str_is(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static int one_of(const char *s, const char *const *set)
{
    for (; *set; set++) {
        if (strcmp(s, *set) == 0)
            return 1;
    }
    return 0;
}

/* A non-empty string member, else the error for it (missing or of the wrong type). */
static llmgw_error_t *need_string(apr_pool_t *p, const json_t *obj, const char *key,
                                  const char *param)
{
    json_t *v = json_object_get(obj, key);

    if (llmgw_json_is_absent(v))
        return missing(p, param);
    if (!json_is_string(v))
        return bad_type(p, param, "a string");
    if (json_string_length(v) == 0)
        return bad_value(p, param, "expected a non-empty string");
    return NULL;
}

/* An optional member of a JSON type (null counts as absent). */
static llmgw_error_t *opt_type(apr_pool_t *p, const json_t *obj, const char *key, const char *param,
                               json_type type)
{
    json_t *v = json_object_get(obj, key);

    if (llmgw_json_is_absent(v))
        return NULL;
    switch (type) {
    case JSON_STRING:
        return json_is_string(v) ? NULL : bad_type(p, param, "a string");
    case JSON_OBJECT:
        return json_is_object(v) ? NULL : bad_type(p, param, "an object");
    case JSON_ARRAY:
        return json_is_array(v) ? NULL : bad_type(p, param, "an array");
    case JSON_TRUE:
        return json_is_boolean(v) ? NULL : bad_type(p, param, "a boolean");
    default:
        return NULL;
    }
}

/* An optional number in [lo, hi] (integers only when @p integer; @p hi < 0: no upper bound). */
static llmgw_error_t *opt_number(apr_pool_t *p, const json_t *obj, const char *key, double lo,
                                 double hi, int integer)
{
    json_t *v = json_object_get(obj, key);
    const char *what = integer ? "integer" : "number";
    double d;

    if (llmgw_json_is_absent(v))
        return NULL;
    if (integer ? !json_is_integer(v) : !json_is_number(v))
        return bad_type(p, key, integer ? "an integer" : "a number");
    d = json_number_value(v);
    if (d < lo || (hi >= 0 && d > hi)) {
        const char *code = integer ? "integer_out_of_range" : "decimal_out_of_range";
        if (hi < 0)
            return llmgw_rsp_bad(p, code, key,
                                 "Invalid '%s': %s below minimum value (expected at "
                                 "least %g).",
                                 key, what, lo);
        return llmgw_rsp_bad(p, code, key, "Invalid '%s': %s out of range (expected %g to %g).",
                             key, what, lo, hi);
    }
    return NULL;
}

const char *llmgw_rsp_item_type(const json_t *item)
{
    const char *type = llmgw_json_str(item, "type");

    if (type)
        return type;
    if (llmgw_json_is_absent(json_object_get(item, "type")) && json_object_get(item, "role"))
        return "message";
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Validation: content parts and input items                              */
/* ---------------------------------------------------------------------- */

static const char *const IMAGE_DETAILS[] = {"auto", "low", "high", "original", NULL};
static const char *const ROLES[] = {"user", "assistant", "system", "developer", NULL};

/* Part j of list @p list ("content" or "output") of input item i. */
static llmgw_error_t *check_part(apr_pool_t *p, const json_t *part, int i, const char *list, int j)
{
    const char *type;
    json_t *v;

    if (!json_is_object(part))
        return bad_type(p, llmgw_rsp_path(p, "input[%d].%s[%d]", i, list, j), "an object");
    if (llmgw_json_is_absent(json_object_get(part, "type")))
        return missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].type", i, list, j));
    type = llmgw_json_str(part, "type");
    if (!type)
        return bad_type(p, llmgw_rsp_path(p, "input[%d].%s[%d].type", i, list, j), "a string");
    if (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0) {
        if (!json_is_string(json_object_get(part, "text")))
            return json_object_get(part, "text")
                       ? bad_type(p, llmgw_rsp_path(p, "input[%d].%s[%d].text", i, list, j),
                                  "a string")
                       : missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].text", i, list, j));
    }
    else if (strcmp(type, "refusal") == 0) {
        if (!json_is_string(json_object_get(part, "refusal")))
            return missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].refusal", i, list, j));
    }
    else if (strcmp(type, "input_image") == 0) {
        if (!llmgw_json_str(part, "image_url") && !llmgw_json_str(part, "file_id"))
            return missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].image_url", i, list, j));
        v = json_object_get(part, "detail");
        if (!llmgw_json_is_absent(v) &&
            !(json_is_string(v) && one_of(json_string_value(v), IMAGE_DETAILS)))
            return bad_value(p, llmgw_rsp_path(p, "input[%d].%s[%d].detail", i, list, j),
                             "expected one of 'auto', 'low', 'high' or 'original'");
    }
    else if (strcmp(type, "input_file") == 0) {
        if (!llmgw_json_str(part, "file_data") && !llmgw_json_str(part, "file_url") &&
            !llmgw_json_str(part, "file_id"))
            return missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].file_data", i, list, j));
    }
    else if (strcmp(type, "input_audio") == 0) {
        v = json_object_get(part, "input_audio");
        if (!json_is_object(v) || !llmgw_json_str(v, "data") || !llmgw_json_str(v, "format"))
            return missing(p, llmgw_rsp_path(p, "input[%d].%s[%d].input_audio", i, list, j));
    }
    /* Other part types: a native backend may know them; check_backend
     * refuses them for translated ones. */
    return NULL;
}

/* A list of parts, or a string: message content and function call output. */
static llmgw_error_t *check_parts(apr_pool_t *p, const json_t *v, int i, const char *list)
{
    llmgw_error_t *e;
    size_t j;
    json_t *part;

    if (json_is_string(v))
        return NULL;
    if (llmgw_json_is_absent(v))
        return missing(p, llmgw_rsp_path(p, "input[%d].%s", i, list));
    if (!json_is_array(v))
        return bad_type(p, llmgw_rsp_path(p, "input[%d].%s", i, list), "a string or an array");
    json_array_foreach (v, j, part) {
        if ((e = check_part(p, part, i, list, (int)j)) != NULL)
            return e;
    }
    return NULL;
}

static llmgw_error_t *check_item(apr_pool_t *p, const json_t *item, int i, int *references)
{
    const char *type, *role;

    if (!json_is_object(item))
        return bad_type(p, llmgw_rsp_path(p, "input[%d]", i), "an object");
    type = llmgw_rsp_item_type(item);
    if (!type)
        return json_object_get(item, "type")
                   ? bad_type(p, llmgw_rsp_path(p, "input[%d].type", i), "a string")
                   : missing(p, llmgw_rsp_path(p, "input[%d].type", i));
    if (strcmp(type, "message") == 0) {
        role = llmgw_json_str(item, "role");
        if (!role)
            return missing(p, llmgw_rsp_path(p, "input[%d].role", i));
        if (!one_of(role, ROLES))
            return bad_value(p, llmgw_rsp_path(p, "input[%d].role", i),
                             "expected one of 'user', 'assistant', 'system' or 'developer'");
        return check_parts(p, json_object_get(item, "content"), i, "content");
    }
    if (strcmp(type, "function_call") == 0) {
        llmgw_error_t *e;
        if ((e = need_string(p, item, "call_id", llmgw_rsp_path(p, "input[%d].call_id", i))) ||
            (e = need_string(p, item, "name", llmgw_rsp_path(p, "input[%d].name", i))))
            return e;
        if (!json_is_string(json_object_get(item, "arguments")))
            return json_object_get(item, "arguments")
                       ? bad_type(p, llmgw_rsp_path(p, "input[%d].arguments", i), "a string")
                       : missing(p, llmgw_rsp_path(p, "input[%d].arguments", i));
        return NULL;
    }
    if (strcmp(type, "function_call_output") == 0) {
        llmgw_error_t *e =
            need_string(p, item, "call_id", llmgw_rsp_path(p, "input[%d].call_id", i));
        return e ? e : check_parts(p, json_object_get(item, "output"), i, "output");
    }
    if (strcmp(type, "item_reference") == 0) {
        (*references)++;
        return need_string(p, item, "id", llmgw_rsp_path(p, "input[%d].id", i));
    }
    /* reasoning items are accepted in any shape (clients replay them
     * imperfectly, ingress.md 4.4 step 4); built-in tool items are for
     * native backends (check_backend). */
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Validation: tools, tool_choice, text, the rest                         */
/* ---------------------------------------------------------------------- */

/* A function tool in the flat shape; the chat-style nested one is refused everywhere. */
static llmgw_error_t *check_function(apr_pool_t *p, const json_t *t, const char *at)
{
    llmgw_error_t *e;

    if (json_object_get(t, "function")) {
        const char *param = apr_pstrcat(p, at, ".function", NULL);
        return llmgw_rsp_bad(p, "unknown_parameter", param,
                             "Unknown parameter: '%s'. Function tools of the Responses API are "
                             "flat: {\"type\": \"function\", \"name\": ...}.",
                             param);
    }
    if ((e = need_string(p, t, "name", apr_pstrcat(p, at, ".name", NULL))) ||
        (e = opt_type(p, t, "description", apr_pstrcat(p, at, ".description", NULL),
                      JSON_STRING)) ||
        (e = opt_type(p, t, "parameters", apr_pstrcat(p, at, ".parameters", NULL), JSON_OBJECT)) ||
        (e = opt_type(p, t, "strict", apr_pstrcat(p, at, ".strict", NULL), JSON_TRUE)))
        return e;
    return NULL;
}

/* Tools of `tools` or of an allowed_tools choice (@p at: "tools", "tool_choice.tools"). */
static llmgw_error_t *check_tool_list(apr_pool_t *p, const json_t *tools, const char *at)
{
    llmgw_error_t *e;
    size_t i;
    json_t *t;

    if (llmgw_json_is_absent(tools))
        return NULL;
    if (!json_is_array(tools))
        return bad_type(p, at, "an array");
    json_array_foreach (tools, i, t) {
        const char *ti = llmgw_rsp_path(p, "%s[%d]", at, (int)i);
        const char *type;
        if (!json_is_object(t))
            return bad_type(p, ti, "an object");
        if ((e = need_string(p, t, "type", apr_pstrcat(p, ti, ".type", NULL))) != NULL)
            return e;
        type = llmgw_json_str(t, "type");
        if (strcmp(type, "function") == 0 && (e = check_function(p, t, ti)) != NULL)
            return e;
    }
    return NULL;
}

static llmgw_error_t *check_tool_choice(apr_pool_t *p, const json_t *tc)
{
    static const char *const MODES[] = {"none", "auto", "required", NULL};
    const char *type;
    llmgw_error_t *e;

    if (llmgw_json_is_absent(tc))
        return NULL;
    if (json_is_string(tc))
        return one_of(json_string_value(tc), MODES)
                   ? NULL
                   : bad_value(p, "tool_choice",
                               "expected 'none', 'auto', 'required' or an object");
    if (!json_is_object(tc))
        return bad_type(p, "tool_choice", "a string or an object");
    if ((e = need_string(p, tc, "type", "tool_choice.type")) != NULL)
        return e;
    type = llmgw_json_str(tc, "type");
    if (strcmp(type, "function") == 0)
        return check_function(p, tc, "tool_choice");
    if (strcmp(type, "allowed_tools") == 0) {
        json_t *mode = json_object_get(tc, "mode");
        if (!llmgw_json_is_absent(mode) && !str_is(mode, "auto") && !str_is(mode, "required"))
            return bad_value(p, "tool_choice.mode", "expected 'auto' or 'required'");
        if (!json_is_array(json_object_get(tc, "tools")))
            return missing(p, "tool_choice.tools");
        return check_tool_list(p, json_object_get(tc, "tools"), "tool_choice.tools");
    }
    return NULL;
}

static llmgw_error_t *check_text(apr_pool_t *p, const json_t *text)
{
    json_t *format;
    const char *type;
    llmgw_error_t *e;

    if (llmgw_json_is_absent(text))
        return NULL;
    if (!json_is_object(text))
        return bad_type(p, "text", "an object");
    if ((e = opt_type(p, text, "verbosity", "text.verbosity", JSON_STRING)) != NULL)
        return e;
    format = json_object_get(text, "format");
    if (llmgw_json_is_absent(format))
        return NULL;
    if (!json_is_object(format))
        return bad_type(p, "text.format", "an object");
    if ((e = need_string(p, format, "type", "text.format.type")) != NULL)
        return e;
    type = llmgw_json_str(format, "type");
    if (strcmp(type, "text") == 0 || strcmp(type, "json_object") == 0)
        return NULL;
    if (strcmp(type, "json_schema") != 0)
        return bad_value(p, "text.format.type",
                         "expected one of 'text', 'json_schema' or 'json_object'");
    if ((e = need_string(p, format, "name", "text.format.name")) != NULL)
        return e;
    if (!json_is_object(json_object_get(format, "schema")))
        return json_object_get(format, "schema") ? bad_type(p, "text.format.schema", "an object")
                                                 : missing(p, "text.format.schema");
    if ((e = opt_type(p, format, "description", "text.format.description", JSON_STRING)) ||
        (e = opt_type(p, format, "strict", "text.format.strict", JSON_TRUE)))
        return e;
    return NULL;
}

static llmgw_error_t *check_metadata(apr_pool_t *p, const json_t *md)
{
    const char *key;
    json_t *v;

    if (llmgw_json_is_absent(md))
        return NULL;
    if (!json_is_object(md))
        return bad_type(p, "metadata", "an object");
    if (json_object_size(md) > 16)
        return bad_value(p, "metadata", "at most 16 key-value pairs");
    json_object_foreach ((json_t *)md, key, v) {
        if (strlen(key) > 64)
            return bad_value(p, "metadata", "keys are at most 64 characters long");
        if (!json_is_string(v))
            return bad_type(p, llmgw_rsp_path(p, "metadata.%s", key), "a string");
        if (json_string_length(v) > 512)
            return bad_value(p, "metadata", "values are at most 512 characters long");
    }
    return NULL;
}

static llmgw_error_t *check_scalars(apr_pool_t *p, const json_t *c)
{
    static const char *const BOOLS[] = {"stream", "store", "background", "parallel_tool_calls",
                                        NULL};
    static const char *const STRINGS[] = {
        "model", "instructions", "user", "safety_identifier", "prompt_cache_key", "service_tier",
        NULL};
    const char *const *k;
    json_t *v;
    llmgw_error_t *e;

    for (k = BOOLS; *k; k++) {
        if ((e = opt_type(p, c, *k, *k, JSON_TRUE)) != NULL)
            return e;
    }
    for (k = STRINGS; *k; k++) {
        if ((e = opt_type(p, c, *k, *k, JSON_STRING)) != NULL)
            return e;
    }
    v = json_object_get(c, "safety_identifier");
    if (json_is_string(v) && json_string_length(v) > 64)
        return bad_value(p, "safety_identifier", "at most 64 characters long");
    if ((e = opt_number(p, c, "temperature", 0, 2, 0)) ||
        (e = opt_number(p, c, "top_p", 0, 1, 0)) ||
        (e = opt_number(p, c, "max_output_tokens", 1, -1, 1)) ||
        (e = opt_number(p, c, "top_logprobs", 0, 20, 1)) ||
        (e = opt_type(p, c, "include", "include", JSON_ARRAY)) ||
        (e = opt_type(p, c, "reasoning", "reasoning", JSON_OBJECT)) ||
        (e = opt_type(p, c, "stream_options", "stream_options", JSON_OBJECT)))
        return e;
    v = json_object_get(c, "reasoning");
    if ((e = opt_type(p, v, "effort", "reasoning.effort", JSON_STRING)) ||
        (e = opt_type(p, v, "summary", "reasoning.summary", JSON_STRING)))
        return e;
    v = json_object_get(c, "truncation");
    if (!llmgw_json_is_absent(v) && !str_is(v, "auto") && !str_is(v, "disabled"))
        return bad_value(p, "truncation", "expected 'auto' or 'disabled'");
    if (!llmgw_json_is_absent(json_object_get(c, "stream_options")) &&
        !json_is_true(json_object_get(c, "stream")))
        return bad_value(p, "stream_options", "only allowed when 'stream' is true");
    return NULL;
}

/* Everything but the input items, in the order a reader scans a request. */
static llmgw_error_t *check_request(apr_pool_t *p, const json_t *c)
{
    json_t *prev = json_object_get(c, "previous_response_id");
    json_t *conv = json_object_get(c, "conversation");
    llmgw_error_t *e;

    if ((e = check_scalars(p, c)) != NULL)
        return e;
    if (json_is_true(json_object_get(c, "background")))
        return llmgw_error_make(p, 400, "invalid_request_error", "background_not_supported",
                                "background",
                                "Background responses are not supported by this gateway; send "
                                "the request without 'background'.");
    if (!llmgw_json_is_absent(prev) &&
        (e = need_string(p, c, "previous_response_id", "previous_response_id")) != NULL)
        return e;
    if (!llmgw_json_is_absent(conv) && !json_is_string(conv) && !json_is_object(conv))
        return bad_type(p, "conversation", "a string or an object");
    if (!llmgw_json_is_absent(conv) && !llmgw_json_is_absent(prev))
        return llmgw_rsp_bad(p, NULL, "conversation",
                             "Mutually exclusive parameters: provide either "
                             "'previous_response_id' or 'conversation', not both.");
    if ((e = check_metadata(p, json_object_get(c, "metadata"))) ||
        (e = check_tool_list(p, json_object_get(c, "tools"), "tools")) ||
        (e = check_tool_choice(p, json_object_get(c, "tool_choice"))) ||
        (e = check_text(p, json_object_get(c, "text"))))
        return e;
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Canonical content                                                      */
/* ---------------------------------------------------------------------- */

/* A text part's text, for the part types that carry text in a message. */
static const json_t *part_text(const json_t *part)
{
    const char *type = llmgw_json_str(part, "type");

    if (type && (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0))
        return json_object_get(part, "text");
    return NULL;
}

/*
 * A media part (image, file, audio) as a chat part (new reference), or NULL
 * when it is none or has no chat form (a file_id: check_backend refuses it).
 * prompt_cache_breakpoint and the like are not copied.
 */
static json_t *media_part(const json_t *part)
{
    const char *type = llmgw_json_str(part, "type");
    const char *s;
    json_t *inner;

    if (!type)
        return NULL;
    if (strcmp(type, "input_image") == 0 && (s = llmgw_json_str(part, "image_url")) != NULL) {
        const char *detail = llmgw_json_str(part, "detail");
        inner = json_pack("{s:s}", "url", s);
        if (detail)
            json_object_set_new(inner, "detail",
                                json_string(strcmp(detail, "original") == 0 ? "high" : detail));
        return json_pack("{s:s, s:o}", "type", "image_url", "image_url", inner);
    }
    if (strcmp(type, "input_file") == 0 && (s = llmgw_json_str(part, "file_data")) != NULL) {
        const char *name = llmgw_json_str(part, "filename");
        inner = json_pack("{s:s}", "file_data", s);
        if (name)
            json_object_set_new(inner, "filename", json_string(name));
        return json_pack("{s:s, s:o}", "type", "file", "file", inner);
    }
    if (strcmp(type, "input_audio") == 0 && json_is_object(json_object_get(part, "input_audio")))
        return json_pack("{s:s, s:O}", "type", "input_audio", "input_audio",
                         json_object_get(part, "input_audio"));
    return NULL;
}

/*
 * The content of a user / system / developer message (new reference), or
 * NULL when nothing is left once empty texts are dropped (4.4 step 1).
 */
static json_t *user_content(const json_t *content)
{
    json_t *parts, *part;
    size_t j;

    if (json_is_string(content))
        return json_string_length(content) ? json_incref((json_t *)content) : NULL;
    parts = json_array();
    json_array_foreach (content, j, part) {
        const json_t *text = part_text(part);
        json_t *media;
        if (!text && str_is(json_object_get(part, "type"), "refusal"))
            text = json_object_get(part, "refusal");
        if (json_is_string(text) && json_string_length(text) > 0)
            json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", text));
        else if ((media = media_part(part)) != NULL)
            json_array_append_new(parts, media);
    }
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return NULL;
    }
    return parts;
}

/* Append @p v's string to @p buf (a json string grown by concatenation). */
static void text_append(json_t **buf, const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return;
    if (!*buf) {
        *buf = json_stringn(json_string_value(v), json_string_length(v));
        return;
    }
    {
        size_t a = json_string_length(*buf), b = json_string_length(v);
        char *joined = malloc(a + b + 1);
        if (!joined)
            return;
        memcpy(joined, json_string_value(*buf), a);
        memcpy(joined + a, json_string_value(v), b);
        json_string_setn_nocheck(*buf, joined, a + b);
        free(joined);
    }
}

/* ---------------------------------------------------------------------- */
/* Input items -> canonical messages (ingress.md 4.4)                     */
/* ---------------------------------------------------------------------- */

typedef enum { ENT_MSG, ENT_ASST, ENT_TOOL } ent_kind_e;

typedef struct {
    ent_kind_e kind;
    json_t *msg;         /* owned by conv_t.holder */
    json_t *calls;       /* ENT_ASST: its tool_calls (inside msg), or NULL */
    const char *call_id; /* ENT_TOOL */
    json_t *relocated;   /* ENT_TOOL: media parts for the synthetic user message, or NULL */
    int src;             /* index in the client's input; -1 for history */
    int placed;          /* ENT_TOOL: already behind its assistant message */
} entry_t;

typedef struct {
    apr_pool_t *p;
    json_t *holder;           /* owns every message made, released at the end */
    apr_array_header_t *ents; /* entry_t */
    apr_hash_t *owner;        /* call_id -> int * index of the first assistant entry naming it */
    int open_asst;            /* the assistant entry function calls join, or -1 */
} conv_t;

static entry_t *push(conv_t *cv, ent_kind_e kind, json_t *msg, int src)
{
    entry_t *e = apr_array_push(cv->ents);

    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->msg = msg;
    e->src = src;
    json_array_append_new(cv->holder, msg);
    return e;
}

static void add_message(conv_t *cv, const json_t *item, int src)
{
    const char *role = llmgw_json_str(item, "role");
    json_t *content = json_object_get(item, "content");
    json_t *text = NULL, *refusals, *part, *msg;
    size_t j;

    if (strcmp(role, "assistant") != 0) {
        json_t *c = user_content(content);
        cv->open_asst = -1;
        if (c)
            push(cv, ENT_MSG, json_pack("{s:s, s:o}", "role", role, "content", c), src);
        return;
    }
    /* Assistant: output_text texts concatenated (input_text too: lenient,
     * 3.2), refusals kept as refusal parts, annotations dropped. */
    refusals = json_array();
    if (json_is_string(content))
        text_append(&text, content);
    json_array_foreach (content, j, part) {
        const json_t *t = part_text(part);
        if (t)
            text_append(&text, t);
        else if (str_is(json_object_get(part, "type"), "refusal") &&
                 json_string_length(json_object_get(part, "refusal")) > 0)
            json_array_append_new(refusals, json_pack("{s:s, s:O}", "type", "refusal", "refusal",
                                                      json_object_get(part, "refusal")));
    }
    if (json_array_size(refusals) > 0) {
        if (text)
            json_array_insert_new(refusals, 0,
                                  json_pack("{s:s, s:o}", "type", "text", "text", text));
        msg = json_pack("{s:s, s:o}", "role", "assistant", "content", refusals);
    }
    else {
        json_decref(refusals);
        msg = json_pack("{s:s, s:o}", "role", "assistant", "content", text ? text : json_null());
    }
    push(cv, ENT_ASST, msg, src);
    cv->open_asst = cv->ents->nelts - 1;
}

static void add_call(conv_t *cv, const json_t *item, int src)
{
    const char *call_id = llmgw_json_str(item, "call_id");
    json_t *args = json_object_get(item, "arguments");
    entry_t *e;
    int *idx;

    if (cv->open_asst < 0) {
        push(cv, ENT_ASST, json_pack("{s:s, s:n}", "role", "assistant", "content"), src);
        cv->open_asst = cv->ents->nelts - 1;
    }
    e = &APR_ARRAY_IDX(cv->ents, cv->open_asst, entry_t);
    if (!e->calls) {
        e->calls = json_array();
        json_object_set_new(e->msg, "tool_calls", e->calls);
    }
    json_array_append_new(e->calls,
                          json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", call_id, "type", "function",
                                    "function", "name", llmgw_json_str(item, "name"), "arguments",
                                    json_string_length(args) ? json_string_value(args) : "{}",
                                    json_string_length(args) ? json_string_length(args) : 2));
    if (!apr_hash_get(cv->owner, call_id, APR_HASH_KEY_STRING)) {
        idx = apr_palloc(cv->p, sizeof(*idx));
        *idx = cv->open_asst;
        apr_hash_set(cv->owner, apr_pstrdup(cv->p, call_id), APR_HASH_KEY_STRING, idx);
    }
}

static void add_output(conv_t *cv, const json_t *item, int src)
{
    const char *call_id = llmgw_json_str(item, "call_id");
    json_t *output = json_object_get(item, "output");
    json_t *text = NULL, *relocated = NULL, *part, *content;
    size_t j;
    entry_t *e;

    cv->open_asst = -1;
    if (json_is_string(output))
        text_append(&text, output);
    json_array_foreach (output, j, part) {
        const json_t *t = part_text(part);
        json_t *media;
        if (t)
            text_append(&text, t);
        else if ((media = media_part(part)) != NULL) {
            if (!relocated)
                relocated = json_array();
            json_array_append_new(relocated, media);
        }
    }
    content = text ? text : json_string(relocated ? OUTPUT_ATTACHED : NO_OUTPUT);
    e = push(
        cv, ENT_TOOL,
        json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id", call_id, "content", content),
        src);
    e->call_id = apr_pstrdup(cv->p, call_id);
    if (relocated) {
        e->relocated = relocated;
        json_array_append_new(cv->holder, relocated);
    }
}

/* One item of the effective input; src -1 for history. */
static void add_item(conv_t *cv, const json_t *item, int src)
{
    const char *type = llmgw_rsp_item_type(item);

    if (!type)
        return;
    if (strcmp(type, "message") == 0 && llmgw_json_str(item, "role"))
        add_message(cv, item, src);
    else if (strcmp(type, "function_call") == 0 && llmgw_json_str(item, "call_id") &&
             llmgw_json_str(item, "name"))
        add_call(cv, item, src);
    else if (strcmp(type, "function_call_output") == 0 && llmgw_json_str(item, "call_id"))
        add_output(cv, item, src);
    else if (strcmp(type, "reasoning") != 0)
        /* Built-in tool items (native only) and anything unknown end a run
         * of function calls; reasoning items do not (4.4 step 3). */
        cv->open_asst = -1;
}

static const char *src_param(apr_pool_t *p, int src, const char *member)
{
    if (src < 0)
        return "previous_response_id";
    return llmgw_rsp_path(p, "input[%d]%s%s", src, member ? "." : "", member ? member : "");
}

/*
 * Steps 6 and 7: every tool message right behind the assistant message that
 * made its call, in the order of its tool_calls, then one synthetic user
 * message with the media of their outputs; everything else stays in order.
 */
static llmgw_error_t *order_messages(conv_t *cv, json_t *messages)
{
    apr_pool_t *p = cv->p;
    const char *unanswered = NULL; /* a call without output, behind the last message */
    int i, k, n = cv->ents->nelts;

    for (i = 0; i < n; i++) {
        entry_t *t = &APR_ARRAY_IDX(cv->ents, i, entry_t);
        if (t->kind == ENT_TOOL && !apr_hash_get(cv->owner, t->call_id, APR_HASH_KEY_STRING))
            return llmgw_rsp_bad(p, "invalid_value", src_param(p, t->src, "call_id"),
                                 "No function call with call_id '%s' was found for this "
                                 "function_call_output.",
                                 t->call_id);
    }
    for (i = 0; i < n; i++) {
        entry_t *e = &APR_ARRAY_IDX(cv->ents, i, entry_t);
        json_t *call, *reloc = NULL;
        size_t c;

        if (e->kind == ENT_TOOL)
            continue;
        if (e->kind == ENT_ASST && !e->calls && json_is_null(json_object_get(e->msg, "content")))
            continue; /* an empty assistant message that no call joined */
        if (unanswered)
            return llmgw_rsp_bad(p, "invalid_value", "input",
                                 "No tool output found for function call %s.", unanswered);
        json_array_append(messages, e->msg);
        json_array_foreach (e->calls, c, call) {
            const char *id = llmgw_json_str(call, "id");
            int answered = 0;
            for (k = 0; k < n; k++) {
                entry_t *t = &APR_ARRAY_IDX(cv->ents, k, entry_t);
                int *owner;
                if (t->kind != ENT_TOOL || t->placed || strcmp(t->call_id, id) != 0)
                    continue;
                owner = apr_hash_get(cv->owner, id, APR_HASH_KEY_STRING);
                if (*owner != i)
                    continue;
                t->placed = answered = 1;
                json_array_append(messages, t->msg);
                if (t->relocated) {
                    if (!reloc)
                        reloc = json_array();
                    json_array_append_new(
                        reloc, json_pack("{s:s, s:s}", "type", "text", "text",
                                         apr_pstrcat(p, "Output of tool call ", id, ":", NULL)));
                    json_array_extend(reloc, t->relocated);
                }
            }
            if (!answered && !unanswered)
                unanswered = apr_pstrdup(p, id);
        }
        if (reloc)
            json_array_append_new(messages,
                                  json_pack("{s:s, s:o}", "role", "user", "content", reloc));
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Canonical request fields (ingress.md 4.3, 4.5)                         */
/* ---------------------------------------------------------------------- */

/* A flat function tool (or tool_choice entry) as the nested chat one (new reference). */
static json_t *nested_function(const json_t *t, int full)
{
    json_t *fn = json_pack("{s:s}", "name", llmgw_json_str(t, "name"));
    json_t *v;

    if (full) {
        if (json_is_string(v = json_object_get(t, "description")))
            json_object_set(fn, "description", v);
        if (json_is_object(v = json_object_get(t, "parameters")))
            json_object_set(fn, "parameters", v);
        /* Copied only when given: an omitted strict stays omitted (3.3). */
        if (json_is_boolean(v = json_object_get(t, "strict")))
            json_object_set(fn, "strict", v);
    }
    return json_pack("{s:s, s:o}", "type", "function", "function", fn);
}

/* The function tools of @p tools, nested (new reference; NULL when there are none). */
static json_t *nested_tools(const json_t *tools, int full)
{
    json_t *out = NULL, *t;
    size_t i;

    json_array_foreach (tools, i, t) {
        if (!str_is(json_object_get(t, "type"), "function"))
            continue;
        if (!out)
            out = json_array();
        json_array_append_new(out, nested_function(t, full));
    }
    return out;
}

static void map_tool_choice(json_t *canon, const json_t *tc)
{
    const char *type;

    if (json_is_string(tc)) {
        json_object_set(canon, "tool_choice", (json_t *)tc);
        return;
    }
    type = llmgw_json_str(tc, "type");
    if (!type)
        return;
    if (strcmp(type, "function") == 0)
        json_object_set_new(canon, "tool_choice", nested_function(tc, 0));
    else if (strcmp(type, "allowed_tools") == 0) {
        json_t *tools = nested_tools(json_object_get(tc, "tools"), 0);
        const char *mode = llmgw_json_str(tc, "mode");
        json_object_set_new(canon, "tool_choice",
                            json_pack("{s:s, s:{s:s, s:o}}", "type", "allowed_tools",
                                      "allowed_tools", "mode", mode ? mode : "auto", "tools",
                                      tools ? tools : json_array()));
    }
    /* Built-in selectors have no chat form: check_backend refuses them. */
}

static void map_text(json_t *canon, const json_t *text)
{
    json_t *format = json_object_get(text, "format");
    const char *type = llmgw_json_str(format, "type");
    json_t *v;

    if (json_is_string(v = json_object_get(text, "verbosity")))
        json_object_set(canon, "verbosity", v);
    if (!type || strcmp(type, "text") == 0)
        return;
    if (strcmp(type, "json_object") == 0) {
        json_object_set_new(canon, "response_format", json_pack("{s:s}", "type", "json_object"));
        return;
    }
    /* json_schema: flat here, nested under `json_schema` in chat. */
    {
        json_t *js = json_pack("{s:O, s:O}", "name", json_object_get(format, "name"), "schema",
                               json_object_get(format, "schema"));
        if (json_is_string(v = json_object_get(format, "description")))
            json_object_set(js, "description", v);
        if (json_is_boolean(v = json_object_get(format, "strict")))
            json_object_set(js, "strict", v);
        json_object_set_new(canon, "response_format",
                            json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js));
    }
}

static int includes(const json_t *client, const char *what)
{
    size_t i;
    json_t *v;

    json_array_foreach (json_object_get(client, "include"), i, v) {
        if (str_is(v, what))
            return 1;
    }
    return 0;
}

/* Everything of the canonical request but `messages`. */
static void map_fields(json_t *canon, const json_t *c)
{
    static const char *const SAME[] = {"temperature",
                                       "top_p",
                                       "user",
                                       "safety_identifier",
                                       "prompt_cache_key",
                                       "service_tier",
                                       "moderation",
                                       "prompt_cache_options",
                                       "prompt_cache_retention",
                                       NULL};
    const char *const *k;
    json_t *v, *tools;

    if (json_is_string(v = json_object_get(c, "model")))
        json_object_set(canon, "model", v);
    for (k = SAME; *k; k++) {
        v = json_object_get(c, *k);
        if (!llmgw_json_is_absent(v))
            json_object_set(canon, *k, v);
    }
    /* tool_choice and parallel_tool_calls mean nothing without function
     * tools, and chat APIs refuse them alone (Responses clients send them
     * anyway, or alongside built-in tools only). */
    if ((tools = nested_tools(json_object_get(c, "tools"), 1)) != NULL) {
        json_object_set_new(canon, "tools", tools);
        if (!llmgw_json_is_absent(v = json_object_get(c, "tool_choice")))
            map_tool_choice(canon, v);
        if (json_is_boolean(v = json_object_get(c, "parallel_tool_calls")))
            json_object_set(canon, "parallel_tool_calls", v);
    }
    map_text(canon, json_object_get(c, "text"));
    if (json_is_string(v = json_object_get(json_object_get(c, "reasoning"), "effort")))
        json_object_set(canon, "reasoning_effort", v);
    if (json_is_integer(v = json_object_get(c, "max_output_tokens")))
        json_object_set(canon, "max_completion_tokens", v);
    if (includes(c, "message.output_text.logprobs")) {
        json_object_set_new(canon, "logprobs", json_true());
        if (json_is_integer(v = json_object_get(c, "top_logprobs")))
            json_object_set(canon, "top_logprobs", v);
    }
    if (json_is_true(json_object_get(c, "stream"))) {
        /* Usage goes into the terminal event: always ask for it (2.3). */
        json_object_set_new(canon, "stream", json_true());
        json_object_set_new(canon, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
}

/* The client's input as a list of items (new reference): a string is one user message. */
static json_t *own_input(const json_t *client)
{
    json_t *input = json_object_get(client, "input");

    if (json_is_string(input))
        return json_pack("[{s:s, s:s, s:O}]", "type", "message", "role", "user", "content", input);
    if (json_is_array(input))
        return json_incref(input);
    return json_array();
}

apr_status_t llmgw_rsp_canonical(apr_pool_t *p, const json_t *client, const json_t *history,
                                 const json_t *input, llmgw_ingress_request_t *out,
                                 llmgw_error_t **err)
{
    conv_t cv;
    json_t *canon, *messages, *items, *item, *v;
    llmgw_error_t *e;
    size_t i;

    cv.p = p;
    cv.holder = json_array();
    cv.ents = apr_array_make(p, 16, sizeof(entry_t));
    cv.owner = apr_hash_make(p);
    cv.open_asst = -1;
    json_array_foreach (history, i, item)
        add_item(&cv, item, -1);
    /* History and input are one conversation: a call in the last stored
     * output may be answered by the first new item (5.1). */
    items = input ? json_incref((json_t *)input) : own_input(client);
    json_array_foreach (items, i, item)
        add_item(&cv, item, (int)i);
    json_decref(items);

    messages = json_array();
    v = json_object_get(client, "instructions");
    if (json_is_string(v) && json_string_length(v) > 0)
        json_array_append_new(messages, json_pack("{s:s, s:O}", "role", "system", "content", v));
    e = order_messages(&cv, messages);
    json_decref(cv.holder);
    if (!e && json_array_size(messages) == 0)
        e = missing(p, "input");
    if (e) {
        json_decref(messages);
        *err = e;
        return LLMGW_EBADREQ;
    }
    canon = json_object();
    map_fields(canon, client);
    json_object_set_new(canon, "messages", messages);
    out->canonical = llmgw_json_pool_own(p, canon);
    out->needs_history = 0;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* decode                                                                 */
/* ---------------------------------------------------------------------- */

static apr_status_t responses_decode(apr_pool_t *p, const json_t *client,
                                     llmgw_ingress_request_t *out, llmgw_error_t **err)
{
    json_t *input, *item, *v;
    int references = 0;
    size_t i;
    llmgw_error_t *e;

    memset(out, 0, sizeof(*out));
    out->store = 1;
    out->max_output_tokens = -1;
    if (!json_is_object(client)) {
        *err = llmgw_rsp_bad(p, NULL, NULL, "The request body must be a JSON object.");
        return LLMGW_EBADREQ;
    }
    if ((e = check_request(p, client)) != NULL) {
        *err = e;
        return LLMGW_EBADREQ;
    }
    input = json_object_get(client, "input");
    if (!llmgw_json_is_absent(input) && !json_is_string(input) && !json_is_array(input)) {
        *err = bad_type(p, "input", "a string or an array");
        return LLMGW_EBADREQ;
    }
    json_array_foreach (input, i, item) {
        if ((e = check_item(p, item, (int)i, &references)) != NULL) {
            *err = e;
            return LLMGW_EBADREQ;
        }
    }
    out->stream = json_is_true(json_object_get(client, "stream"));
    if (json_is_string(v = json_object_get(client, "model")))
        out->model = apr_pstrdup(p, json_string_value(v));
    out->store = !json_is_false(json_object_get(client, "store"));
    if (json_is_string(v = json_object_get(client, "previous_response_id")))
        out->previous_response_id = apr_pstrdup(p, json_string_value(v));
    if (json_is_integer(v = json_object_get(client, "max_output_tokens")))
        out->max_output_tokens = json_integer_value(v);
    if (out->previous_response_id || references) {
        out->needs_history = 1;
        return APR_SUCCESS;
    }
    /* `prompt` and `conversation` supply input upstream: native only, and
     * check_backend refuses them elsewhere, so no canonical form is needed. */
    if (llmgw_json_is_absent(input) &&
        (!llmgw_json_is_absent(json_object_get(client, "prompt")) ||
         !llmgw_json_is_absent(json_object_get(client, "conversation"))))
        return APR_SUCCESS;
    return llmgw_rsp_canonical(p, client, NULL, NULL, out, err);
}

/* ---------------------------------------------------------------------- */
/* check_backend (ingress.md 4.6)                                         */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    const char *type; /* the backend type's name, for messages */
    int drop;
    apr_array_header_t *dropped;
} fit_t;

/*
 * A field the backend cannot honour: NULL when it may be dropped and the
 * backend drops (it is then named in `dropped`), else the 400.
 */
static llmgw_error_t *refuse(fit_t *f, int droppable, const char *code, const char *param,
                             const char *what)
{
    if (droppable && f->drop) {
        if (f->dropped)
            APR_ARRAY_PUSH(f->dropped, const char *) = param;
        return NULL;
    }
    return llmgw_rsp_bad(f->p, code, param,
                         "%s is not supported by a backend of type %s (only openai and "
                         "azure-openai backends take it).",
                         what, f->type);
}

static llmgw_error_t *fit_part(fit_t *f, const json_t *part, int i, const char *list, int j)
{
    const char *type = llmgw_json_str(part, "type");
    apr_pool_t *p = f->p;

    if (!type)
        return NULL;
    if (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0 ||
        strcmp(type, "refusal") == 0 || strcmp(type, "input_audio") == 0)
        return NULL;
    if (strcmp(type, "input_image") == 0) {
        if (llmgw_json_str(part, "image_url"))
            return NULL;
        return refuse(f, 0, "unsupported_value",
                      llmgw_rsp_path(p, "input[%d].%s[%d].file_id", i, list, j),
                      "An image given by file_id");
    }
    if (strcmp(type, "input_file") == 0) {
        if (llmgw_json_str(part, "file_data"))
            return NULL;
        if (llmgw_json_str(part, "file_id"))
            return refuse(f, 0, "unsupported_value",
                          llmgw_rsp_path(p, "input[%d].%s[%d].file_id", i, list, j),
                          "A file given by file_id");
        return refuse(f, 0, "unsupported_value",
                      llmgw_rsp_path(p, "input[%d].%s[%d].file_url", i, list, j),
                      "A file given by file_url");
    }
    return refuse(f, 0, "unsupported_value", llmgw_rsp_path(p, "input[%d].%s[%d].type", i, list, j),
                  apr_psprintf(p, "Content of type '%s'", type));
}

static llmgw_error_t *fit_parts(fit_t *f, const json_t *parts, int i, const char *list)
{
    llmgw_error_t *e;
    json_t *part;
    size_t j;

    json_array_foreach (parts, j, part) {
        if ((e = fit_part(f, part, i, list, (int)j)) != NULL)
            return e;
    }
    return NULL;
}

static llmgw_error_t *fit_input(fit_t *f, const json_t *input)
{
    static const char *const ITEMS[] = {"message",   "function_call",  "function_call_output",
                                        "reasoning", "item_reference", NULL};
    llmgw_error_t *e;
    json_t *item;
    size_t i;

    json_array_foreach (input, i, item) {
        const char *type = llmgw_rsp_item_type(item);
        if (!type)
            continue;
        if (!one_of(type, ITEMS))
            return refuse(f, 0, "unsupported_value", llmgw_rsp_path(f->p, "input[%d].type", (int)i),
                          apr_psprintf(f->p, "An input item of type '%s'", type));
        if ((e = fit_parts(f, json_object_get(item, "content"), (int)i, "content")) ||
            (e = fit_parts(f, json_object_get(item, "output"), (int)i, "output")))
            return e;
    }
    return NULL;
}

static llmgw_error_t *fit_tools(fit_t *f, const json_t *tools)
{
    static const char *const EXTRAS[] = {"allowed_callers", "output_schema", NULL};
    const char *const *k;
    json_t *t;
    size_t i;

    json_array_foreach (tools, i, t) {
        const char *type = llmgw_json_str(t, "type");
        if (type && strcmp(type, "function") != 0)
            return refuse(f, 0, "unsupported_value", llmgw_rsp_path(f->p, "tools[%d].type", (int)i),
                          apr_psprintf(f->p, "A tool of type '%s'", type));
        if (json_is_true(json_object_get(t, "defer_loading")))
            return refuse(f, 0, "unsupported_parameter",
                          llmgw_rsp_path(f->p, "tools[%d].defer_loading", (int)i),
                          "'defer_loading'");
        for (k = EXTRAS; *k; k++) {
            if (!llmgw_json_is_absent(json_object_get(t, *k)))
                return refuse(f, 0, "unsupported_parameter",
                              llmgw_rsp_path(f->p, "tools[%d].%s", (int)i, *k),
                              apr_psprintf(f->p, "'%s'", *k));
        }
    }
    return NULL;
}

static llmgw_error_t *fit_tool_choice(fit_t *f, const json_t *tc)
{
    const char *type = llmgw_json_str(tc, "type");
    json_t *t;
    size_t i;

    if (!json_is_object(tc) || !type || strcmp(type, "function") == 0)
        return NULL;
    if (strcmp(type, "allowed_tools") != 0)
        return refuse(f, 0, "unsupported_value", "tool_choice",
                      apr_psprintf(f->p, "A tool_choice of type '%s'", type));
    json_array_foreach (json_object_get(tc, "tools"), i, t) {
        if (!str_is(json_object_get(t, "type"), "function"))
            return refuse(f, 0, "unsupported_value",
                          llmgw_rsp_path(f->p, "tool_choice.tools[%d].type", (int)i),
                          "An allowed tool that is not a function");
    }
    return NULL;
}

static llmgw_error_t *responses_check_backend(apr_pool_t *p, const json_t *client,
                                              llmgw_backend_type_e type, int drop,
                                              apr_array_header_t *dropped)
{
    /* Parameters that only shape or bound the answer: dropping them
     * (unsupportedParams: drop) changes no content the client sent. */
    static const char *const DROPPABLE[] = {"context_management", "max_tool_calls", NULL};
    fit_t f = {p, llmgw_backend_type_name(type), drop, dropped};
    json_t *reasoning = json_object_get(client, "reasoning");
    const char *const *k;
    llmgw_error_t *e;

    if (type < LLMGW_BACKEND_TYPE_COUNT && (llmgw_ingress_responses.native_types & (1u << type)))
        return NULL;
    if (!llmgw_json_is_absent(json_object_get(client, "conversation")))
        return refuse(&f, 0, "unsupported_parameter", "conversation", "'conversation'");
    if (!llmgw_json_is_absent(json_object_get(client, "prompt")))
        return refuse(&f, 0, "unsupported_parameter", "prompt", "'prompt'");
    for (k = DROPPABLE; *k; k++) {
        if (!llmgw_json_is_absent(json_object_get(client, *k)) &&
            (e = refuse(&f, 1, "unsupported_parameter", *k, apr_psprintf(p, "'%s'", *k))))
            return e;
    }
    if (!llmgw_json_is_absent(json_object_get(reasoning, "context")) &&
        (e = refuse(&f, 1, "unsupported_parameter", "reasoning.context", "'reasoning.context'")))
        return e;
    if (!llmgw_json_is_absent(json_object_get(reasoning, "mode")) &&
        (e = refuse(&f, 1, "unsupported_parameter", "reasoning.mode", "'reasoning.mode'")))
        return e;
    if (str_is(json_object_get(client, "truncation"), "auto") &&
        (e = refuse(&f, 1, "unsupported_value", "truncation", "truncation 'auto'")))
        return e;
    if ((e = fit_tools(&f, json_object_get(client, "tools"))) ||
        (e = fit_tool_choice(&f, json_object_get(client, "tool_choice"))) ||
        (e = fit_input(&f, json_object_get(client, "input"))))
        return e;
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* The table                                                              */
/* ---------------------------------------------------------------------- */

const llmgw_ingress_t llmgw_ingress_responses = {
    .dialect = LLMGW_DIALECT_RESPONSES,
    .name = "responses",
    .native_types = (1u << LLMGW_BACKEND_OPENAI) | (1u << LLMGW_BACKEND_AZURE_OPENAI),
    .decode = responses_decode,
    .check_backend = responses_check_backend,
    .encode_response = llmgw_rsp_encode_response,
    .error_json = llmgw_rsp_error_json,
    .error_event = llmgw_rsp_error_event,
    .stream_init = llmgw_rsp_stream_init,
    .stream_chunk = llmgw_rsp_stream_chunk,
    .stream_end = llmgw_rsp_stream_end,
    .native_request = llmgw_rsp_native_request,
    .native_observe = llmgw_rsp_native_observe,
    .native_event = llmgw_rsp_native_event,
    .native_error = llmgw_rsp_native_error,
};
