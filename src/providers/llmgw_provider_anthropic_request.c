/*
 * The `anthropic` translator's request side (providers.md 5.2-5.4): the
 * Messages API body built from an OpenAI chat request: content blocks,
 * turns with tool_use / tool_result pairing, tools and tool_choice,
 * parameters (thinking, JSON mode), headers. Answers, errors and streams
 * are llmgw_provider_anthropic.c, which holds the translator's table.
 *
 * Memory: everything per request comes from call->pool.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"
#include "llmgw_provider_anthropic_private.h"

#define str_eq llmgw_anthropic_str_eq

#define ANTHROPIC_DEFAULT_ENDPOINT "https://api.anthropic.com"
#define ANTHROPIC_VERSION "2023-06-01"

/* providers.md 5.2: the json_object emulation. */
#define JSON_OBJECT_INSTRUCTION "Respond with a single valid JSON object and nothing else."

/* providers.md 5.3 rule 5: the API wants the first turn to be the user's. */
#define FIRST_TURN_PLACEHOLDER "."

/* ---------------------------------------------------------------------- */
/* Requests: context and errors                                           */
/* ---------------------------------------------------------------------- */

typedef struct {
    llmgw_call_t *call;
    apr_pool_t *p;
    const json_t *req;   /* the client's body, borrowed, never modified */
    json_t *system;      /* text blocks for `system` (new reference) */
    json_t *system_text; /* or, until a second one comes, the one plain string (borrowed) */
    int system_plain;    /* every system block came from a plain string */
    json_t *turns;       /* [{"role","content": [blocks] or a string}] (new reference) */
    json_t *used_tools;  /* names of tools called in the history (new reference) */
    json_t *legacy_open; /* legacy calls awaiting their result: [{"name","id"}] */
    int legacy;          /* the client used `functions` */
    int legacy_calls;    /* legacy function_call ordinal */
    llmgw_error_t **err;
} build_t;

static apr_status_t fail(build_t *bx, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static apr_status_t fail(build_t *bx, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *bx->err = llmgw_prov_vbad_request(bx->p, code, param, fmt, ap);
    va_end(ap);
    return LLMGW_EBADREQ;
}

/*
 * A top-level parameter Anthropic cannot honour: refused, or dropped and
 * recorded when the backend allows it. @p param is a static string.
 */
static apr_status_t refuse_param(build_t *bx, const char *param, const char *code, const char *why)
{
    llmgw_call_t *call = bx->call;

    if (call->backend->unsupported_drop == 1) {
        if (!call->dropped)
            call->dropped = apr_array_make(bx->p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(call->dropped, const char *) = param;
        return APR_SUCCESS;
    }
    return fail(bx, code, param, "'%s' is not supported by backend \"%s\" (anthropic): %s.", param,
                call->backend->name, why);
}

/*
 * The body's members other than model and messages, each a new reference or
 * NULL (absent); written in this order by write_body.
 */
typedef struct {
    json_t *output_config;
    apr_int64_t max_tokens;
    json_t *system;
    json_t *tools;
    json_t *tool_choice;
    json_t *temperature;
    json_t *top_p;
    json_t *stop_sequences;
    const char *user_id; /* metadata.user_id */
} body_t;

/* ---------------------------------------------------------------------- */
/* Requests: content blocks                                               */
/* ---------------------------------------------------------------------- */

/* {"type":"text","text":s} sharing the client's string (new reference). */
static json_t *text_block(json_t *s)
{
    json_t *b = json_object();

    json_object_set_new(b, "type", json_string("text"));
    json_object_set(b, "text", s);
    return b;
}

static int is_empty_string(const json_t *s)
{
    return json_is_string(s) && json_string_length(s) == 0;
}

/* Append @p s as a text block unless it is empty (the API rejects empty blocks). */
static void push_text(json_t *blocks, json_t *s)
{
    if (!is_empty_string(s))
        json_array_append_new(blocks, text_block(s));
}

/*
 * A base64 data URI with a media type (providers.md 2.2): the media type
 * lower-cased, from the pool (image/jpg read as image/jpeg); the payload
 * points into @p uri. Returns 0 for anything that is not base64 data.
 */
static int parse_data_uri(apr_pool_t *p, const char *uri, const char **media, const char **data)
{
    if (!llmgw_prov_data_uri(p, uri, media, data) || !**media)
        return 0;
    if (strcmp(*media, "image/jpg") == 0)
        *media = "image/jpeg";
    return llmgw_prov_base64_ok(*data);
}

static int image_type_ok(const char *media)
{
    return str_eq(media, "image/jpeg") || str_eq(media, "image/png") ||
           str_eq(media, "image/gif") || str_eq(media, "image/webp");
}

/* {"type":kind,"source":{"type":"base64","media_type":m,"data":d}} (new reference). */
static json_t *base64_block(const char *kind, const char *media, const char *data)
{
    return json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", kind, "source", "type", "base64",
                     "media_type", media, "data", data);
}

static apr_status_t image_part(build_t *bx, const json_t *part, const char *param, json_t *blocks)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url = json_is_string(iu) ? json_string_value(iu) : llmgw_json_str(iu, "url");
    const char *uparam = apr_pstrcat(bx->p, param, ".image_url.url", NULL);
    const char *media, *data;

    if (!url)
        return fail(bx, "invalid_value", uparam, "'%s' must be a URL or a data URI.", uparam);
    if (strncasecmp(url, "data:", 5) == 0) {
        if (!parse_data_uri(bx->p, url, &media, &data))
            return fail(bx, "invalid_value", uparam,
                        "'%s' is not a valid base64 data URI (data:<type>;base64,<data>).", uparam);
        if (!image_type_ok(media))
            return fail(bx, "unsupported_value", uparam,
                        "Image type '%s' is not supported by Anthropic models "
                        "(use image/jpeg, image/png, image/gif or image/webp).",
                        media);
        json_array_append_new(blocks, base64_block("image", media, data));
        return APR_SUCCESS;
    }
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
        return fail(bx, "invalid_value", uparam, "'%s' must be an http(s) URL or a data URI.",
                    uparam);
    json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source",
                                            "type", "url", "url", url));
    return APR_SUCCESS;
}

/* `file` parts: inline PDFs become documents; uploaded OpenAI files mean nothing here. */
static apr_status_t file_part(build_t *bx, const json_t *part, const char *param, json_t *blocks)
{
    json_t *file = json_object_get(part, "file");
    const char *fd = llmgw_json_str(file, "file_data");
    const char *name = llmgw_json_str(file, "filename");
    const char *media, *data;
    json_t *doc;

    if (json_object_get(file, "file_id"))
        return fail(bx, "unsupported_value", apr_pstrcat(bx->p, param, ".file.file_id", NULL),
                    "Files uploaded to OpenAI cannot be used with Anthropic models; "
                    "send the file inline as file_data.");
    param = apr_pstrcat(bx->p, param, ".file.file_data", NULL);
    if (!fd || !parse_data_uri(bx->p, fd, &media, &data))
        return fail(bx, "invalid_value", param, "'%s' must be a base64 data URI.", param);
    if (!str_eq(media, "application/pdf"))
        return fail(bx, "unsupported_value", param,
                    "File type '%s' is not supported by Anthropic models (use application/pdf).",
                    media);
    doc = base64_block("document", media, data);
    if (name && *name)
        json_object_set_new(doc, "title", json_string(name));
    json_array_append_new(blocks, doc);
    return APR_SUCCESS;
}

/* One part of a user message. */
static apr_status_t user_part(build_t *bx, const json_t *part, const char *param, json_t *blocks)
{
    const char *type = llmgw_json_str(part, "type");
    json_t *text = json_object_get(part, "text");

    if (str_eq(type, "text") && json_is_string(text)) {
        push_text(blocks, text);
        return APR_SUCCESS;
    }
    if (str_eq(type, "image_url"))
        return image_part(bx, part, param, blocks);
    if (str_eq(type, "file"))
        return file_part(bx, part, param, blocks);
    if (str_eq(type, "input_audio"))
        return fail(bx, "unsupported_value", param,
                    "Audio input is not supported by Anthropic models.");
    return fail(bx, "invalid_value", param, "'%s' is not a valid content part (type '%s').", param,
                type ? type : "(none)");
}

/* Text-only content (system, tool, assistant): strings and text/refusal parts. */
static apr_status_t text_parts(build_t *bx, const json_t *content, const char *param,
                               int refusal_ok, json_t *blocks)
{
    size_t j;
    json_t *part;

    if (json_is_string(content)) {
        push_text(blocks, (json_t *)content);
        return APR_SUCCESS;
    }
    if (llmgw_json_is_absent(content))
        return APR_SUCCESS;
    if (!json_is_array(content))
        return fail(bx, "invalid_type", param, "'%s' must be a string or an array of parts.",
                    param);
    json_array_foreach (content, j, part) {
        const char *type = llmgw_json_str(part, "type");
        json_t *text = json_object_get(part, str_eq(type, "refusal") ? "refusal" : "text");

        if (!json_is_string(text) ||
            !(str_eq(type, "text") || (refusal_ok && str_eq(type, "refusal"))))
            return fail(bx, "invalid_value",
                        apr_psprintf(bx->p, "%s[%" APR_SIZE_T_FMT "]", param, j),
                        "'%s[%" APR_SIZE_T_FMT "]' must be a text part here.", param, j);
        push_text(blocks, text);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Requests: messages (providers.md 5.3)                                  */
/* ---------------------------------------------------------------------- */

/* Append blocks (stolen) as a turn, merging with the previous turn of the same role. */
static void add_turn(build_t *bx, const char *role, json_t *blocks)
{
    size_t n = json_array_size(bx->turns);
    json_t *last = n ? json_array_get(bx->turns, n - 1) : NULL;

    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return;
    }
    if (last && str_eq(llmgw_json_str(last, "role"), role)) {
        json_t *content = json_object_get(last, "content");

        if (json_is_string(content)) {
            /* A text turn (add_text_turn) takes blocks after it. */
            json_t *first = json_array();
            push_text(first, content);
            json_object_set_new(last, "content", first);
            content = first;
        }
        json_array_extend(content, blocks);
        json_decref(blocks);
        return;
    }
    json_array_append_new(bx->turns, json_pack("{s:s, s:o}", "role", role, "content", blocks));
}

/*
 * A user message that is one non-empty string, the usual one, as a turn in
 * the API's short form from the start: no block to make and undo
 * (shorten_turn). 0 when it must join the previous user turn as a block.
 */
static int add_text_turn(build_t *bx, json_t *text)
{
    size_t n = json_array_size(bx->turns);
    json_t *last = n ? json_array_get(bx->turns, n - 1) : NULL;
    json_t *turn;

    if (last && str_eq(llmgw_json_str(last, "role"), "user"))
        return 0;
    turn = json_object();
    json_object_set_new_nocheck(turn, "role", json_string_nocheck("user"));
    json_object_set_nocheck(turn, "content", text);
    json_array_append_new(bx->turns, turn);
    return 1;
}

static int tool_id_ok(const char *id)
{
    return llmgw_prov_id_chars_ok(id);
}

/*
 * providers.md 5.3 rule 7: Anthropic wants ids matching ^[a-zA-Z0-9_-]+$;
 * ids made by other providers are mapped deterministically, so that a
 * tool_use and its tool_result still agree.
 */
static const char *tool_id(apr_pool_t *p, const char *id)
{
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    char hex[25];
    int i;

    if (tool_id_ok(id))
        return id;
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, (const unsigned char *)id, (unsigned int)strlen(id));
    apr_sha1_final(digest, &ctx);
    for (i = 0; i < 12; i++)
        apr_snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return apr_pstrcat(p, "t_", hex, NULL);
}

/* The one plain system string, kept aside (system_message), as a block after all. */
static void system_blocks(build_t *bx)
{
    if (bx->system_text)
        push_text(bx->system, bx->system_text);
    bx->system_text = NULL;
}

static apr_status_t system_message(build_t *bx, const json_t *m, const char *param)
{
    json_t *content = json_object_get(m, "content");
    json_t *blocks;
    apr_status_t rv;

    /* The usual system prompt, one string, becomes `system` as it is (set_system). */
    if (json_is_string(content) && !is_empty_string(content) && !bx->system_text &&
        json_array_size(bx->system) == 0) {
        bx->system_text = content;
        return APR_SUCCESS;
    }
    system_blocks(bx);
    blocks = json_array();
    rv = text_parts(bx, content, apr_pstrcat(bx->p, param, ".content", NULL), 0, blocks);
    if (rv == APR_SUCCESS) {
        if (!json_is_string(content) && json_array_size(blocks) > 0)
            bx->system_plain = 0;
        json_array_extend(bx->system, blocks);
    }
    json_decref(blocks);
    return rv;
}

static apr_status_t user_message(build_t *bx, const json_t *m, const char *param)
{
    json_t *content = json_object_get(m, "content");
    json_t *blocks, *part;
    size_t j;

    if (json_is_string(content) && !is_empty_string(content) && add_text_turn(bx, content))
        return APR_SUCCESS;
    param = apr_pstrcat(bx->p, param, ".content", NULL);
    if (json_is_string(content) || llmgw_json_is_absent(content)) {
        blocks = json_array();
        if (json_is_string(content))
            push_text(blocks, content);
        add_turn(bx, "user", blocks);
        return APR_SUCCESS;
    }
    if (!json_is_array(content))
        return fail(bx, "invalid_type", param, "'%s' must be a string or an array of parts.",
                    param);
    blocks = json_array();
    json_array_foreach (content, j, part) {
        apr_status_t rv =
            user_part(bx, part, apr_psprintf(bx->p, "%s[%" APR_SIZE_T_FMT "]", param, j), blocks);
        if (rv != APR_SUCCESS) {
            json_decref(blocks);
            return rv;
        }
    }
    add_turn(bx, "user", blocks);
    return APR_SUCCESS;
}

/* A tool call's arguments string -> the tool_use input object (new reference). */
static apr_status_t tool_input(build_t *bx, const json_t *args, const char *param, json_t **out)
{
    const char *s = json_is_string(args) ? json_string_value(args) : NULL;
    apr_size_t n = s ? json_string_length(args) : 0;

    *out = NULL;
    if (json_is_object(args)) {
        *out = json_incref((json_t *)args); /* lenient: some clients send the object */
        return APR_SUCCESS;
    }
    if (llmgw_json_is_absent(args) || (s && strspn(s, " \t\r\n") == n)) {
        *out = json_object();
        return APR_SUCCESS;
    }
    if (s)
        *out = llmgw_json_load(s, n, 0, NULL);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return fail(bx, "invalid_value", param,
                    "'%s' must be a JSON object encoded as a string (Anthropic needs the tool "
                    "input as an object).",
                    param);
    }
    return APR_SUCCESS;
}

/* {"type":"tool_use",...} for one call; @p id already mapped. */
static apr_status_t tool_use_block(build_t *bx, const char *id, const json_t *fn, const char *param,
                                   json_t *blocks)
{
    const char *name = llmgw_json_str(fn, "name");
    json_t *input;
    apr_status_t rv;

    if (!name || !*name)
        return fail(bx, "invalid_value", apr_pstrcat(bx->p, param, ".name", NULL),
                    "'%s.name' must be a non-empty string.", param);
    rv = tool_input(bx, json_object_get(fn, "arguments"),
                    apr_pstrcat(bx->p, param, ".arguments", NULL), &input);
    if (rv != APR_SUCCESS)
        return rv;
    json_object_set_new(bx->used_tools, name, json_true());
    json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id,
                                            "name", name, "input", input));
    return APR_SUCCESS;
}

static apr_status_t tool_calls(build_t *bx, const json_t *calls, const char *param, json_t *blocks)
{
    size_t j;
    json_t *tc;

    if (llmgw_json_is_absent(calls))
        return APR_SUCCESS;
    if (!json_is_array(calls))
        return fail(bx, "invalid_type", param, "'%s' must be an array.", param);
    json_array_foreach (calls, j, tc) {
        const char *p = apr_psprintf(bx->p, "%s[%" APR_SIZE_T_FMT "]", param, j);
        const char *id = llmgw_json_str(tc, "id");
        const char *type = llmgw_json_str(tc, "type");
        apr_status_t rv;

        if (type && !str_eq(type, "function"))
            return fail(bx, "unsupported_value", apr_pstrcat(bx->p, p, ".type", NULL),
                        "Only function tool calls can be sent to Anthropic models.");
        if (!id)
            return fail(bx, "missing_required_parameter", apr_pstrcat(bx->p, p, ".id", NULL),
                        "Missing required parameter: '%s.id'.", p);
        rv = tool_use_block(bx, tool_id(bx->p, id), json_object_get(tc, "function"),
                            apr_pstrcat(bx->p, p, ".function", NULL), blocks);
        if (rv != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Legacy assistant function_call (providers.md 2.1 rule 3). */
static apr_status_t legacy_call(build_t *bx, const json_t *fc, const char *param, json_t *blocks)
{
    const char *id, *name = llmgw_json_str(fc, "name");

    if (llmgw_json_is_absent(fc))
        return APR_SUCCESS;
    id = apr_psprintf(bx->p, "call_fn_%d", ++bx->legacy_calls);
    if (name)
        json_array_append_new(bx->legacy_open, json_pack("{s:s, s:s}", "name", name, "id", id));
    return tool_use_block(bx, id, fc, param, blocks);
}

static apr_status_t assistant_message(build_t *bx, const json_t *m, const char *param)
{
    json_t *blocks = json_array();
    apr_status_t rv;

    rv = text_parts(bx, json_object_get(m, "content"), apr_pstrcat(bx->p, param, ".content", NULL),
                    1, blocks);
    if (rv == APR_SUCCESS)
        rv = tool_calls(bx, json_object_get(m, "tool_calls"),
                        apr_pstrcat(bx->p, param, ".tool_calls", NULL), blocks);
    if (rv == APR_SUCCESS)
        rv = legacy_call(bx, json_object_get(m, "function_call"),
                         apr_pstrcat(bx->p, param, ".function_call", NULL), blocks);
    if (rv != APR_SUCCESS) {
        json_decref(blocks);
        return rv;
    }
    add_turn(bx, "assistant", blocks);
    return APR_SUCCESS;
}

/* A tool_result block in a user turn; empty results carry no content at all. */
static apr_status_t tool_result(build_t *bx, const char *id, const json_t *content,
                                const char *param)
{
    json_t *texts = json_array();
    json_t *block;
    apr_status_t rv;

    rv = text_parts(bx, content, param, 0, texts);
    if (rv != APR_SUCCESS) {
        json_decref(texts);
        return rv;
    }
    block = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", id);
    if (json_is_string(content) && json_array_size(texts) == 1)
        json_object_set(block, "content", (json_t *)content);
    else if (json_array_size(texts) > 0)
        json_object_set(block, "content", texts);
    json_decref(texts);
    add_turn(bx, "user", json_pack("[o]", block));
    return APR_SUCCESS;
}

static apr_status_t tool_message(build_t *bx, const json_t *m, const char *param)
{
    const char *id = llmgw_json_str(m, "tool_call_id");

    if (!id)
        return fail(bx, "missing_required_parameter",
                    apr_pstrcat(bx->p, param, ".tool_call_id", NULL),
                    "Missing required parameter: '%s.tool_call_id'.", param);
    return tool_result(bx, tool_id(bx->p, id), json_object_get(m, "content"),
                       apr_pstrcat(bx->p, param, ".content", NULL));
}

/* Legacy role "function": the result of the oldest open call of that name. */
static apr_status_t function_message(build_t *bx, const json_t *m, const char *param)
{
    const char *name = llmgw_json_str(m, "name");
    size_t k;
    json_t *open;

    json_array_foreach (bx->legacy_open, k, open) {
        if (str_eq(llmgw_json_str(open, "name"), name)) {
            const char *id = apr_pstrdup(bx->p, llmgw_json_str(open, "id"));
            json_array_remove(bx->legacy_open, k);
            return tool_result(bx, id, json_object_get(m, "content"),
                               apr_pstrcat(bx->p, param, ".content", NULL));
        }
    }
    return fail(bx, "invalid_value", apr_pstrcat(bx->p, param, ".name", NULL),
                "'%s' answers no earlier assistant function_call named '%s'.", param,
                name ? name : "");
}

static apr_status_t one_message(build_t *bx, const json_t *m, size_t i)
{
    const char *param = apr_psprintf(bx->p, "messages[%" APR_SIZE_T_FMT "]", i);
    const char *role = llmgw_json_str(m, "role");

    if (str_eq(role, "system") || str_eq(role, "developer"))
        return system_message(bx, m, param);
    if (str_eq(role, "user"))
        return user_message(bx, m, param);
    if (str_eq(role, "assistant"))
        return assistant_message(bx, m, param);
    if (str_eq(role, "tool"))
        return tool_message(bx, m, param);
    if (str_eq(role, "function"))
        return function_message(bx, m, param);
    return fail(bx, "invalid_value", apr_pstrcat(bx->p, param, ".role", NULL),
                "Invalid value for '%s.role': '%s'.", param, role ? role : "(none)");
}

/* Inside a user turn, tool_result blocks must come first (stable otherwise). */
static void results_first(json_t *turn)
{
    json_t *content = json_object_get(turn, "content");
    json_t *sorted, *rest, *b;
    size_t i;

    if (!json_is_array(content))
        return; /* a text turn */
    sorted = json_array();
    rest = json_array();
    json_array_foreach (content, i, b) {
        int result = str_eq(llmgw_json_str(b, "type"), "tool_result");
        json_array_append(result ? sorted : rest, b);
    }
    json_array_extend(sorted, rest);
    json_object_set_new(turn, "content", sorted);
    json_decref(rest);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* providers.md 5.3 rule 6: a prefill must not end in whitespace. */
static void strip_prefill(build_t *bx)
{
    size_t n = json_array_size(bx->turns);
    json_t *turn = n ? json_array_get(bx->turns, n - 1) : NULL;
    json_t *content = json_object_get(turn, "content");
    size_t k = json_array_size(content);
    json_t *last = k ? json_array_get(content, k - 1) : NULL;
    json_t *text = json_object_get(last, "text");
    const char *s;
    size_t len;

    if (!str_eq(llmgw_json_str(turn, "role"), "assistant") || !json_is_string(text))
        return;
    s = json_string_value(text);
    len = json_string_length(text);
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len == json_string_length(text))
        return;
    if (len > 0) {
        json_object_set_new(last, "text", json_stringn(s, len));
        return;
    }
    json_array_remove(content, k - 1);
    if (json_array_size(content) == 0)
        json_array_remove(bx->turns, n - 1);
}

/* A turn that is one plain text block is sent as a string, the API's short form. */
static void shorten_turn(json_t *turn)
{
    json_t *content = json_object_get(turn, "content");
    json_t *b = json_array_get(content, 0);

    if (json_array_size(content) == 1 && json_object_size(b) == 2 &&
        str_eq(llmgw_json_str(b, "type"), "text"))
        json_object_set(turn, "content", json_object_get(b, "text"));
}

static apr_status_t finish_turns(build_t *bx)
{
    size_t i;
    json_t *turn;

    json_array_foreach (bx->turns, i, turn) {
        if (str_eq(llmgw_json_str(turn, "role"), "user"))
            results_first(turn);
    }
    strip_prefill(bx);
    if (json_array_size(bx->turns) == 0)
        return fail(bx, "invalid_value", "messages",
                    "'messages' must contain at least one user or assistant message with "
                    "content.");
    turn = json_array_get(bx->turns, 0);
    if (str_eq(llmgw_json_str(turn, "role"), "assistant"))
        json_array_insert_new(
            bx->turns, 0,
            json_pack("{s:s, s:s}", "role", "user", "content", FIRST_TURN_PLACEHOLDER));
    json_array_foreach (bx->turns, i, turn) {
        shorten_turn(turn);
    }
    return APR_SUCCESS;
}

static apr_status_t convert_messages(build_t *bx)
{
    json_t *msgs = json_object_get(bx->req, "messages");
    size_t i;
    json_t *m;

    if (!json_is_array(msgs))
        return fail(bx, "invalid_type", "messages", "'messages' must be an array of messages.");
    json_array_foreach (msgs, i, m) {
        apr_status_t rv;

        if (!json_is_object(m))
            return fail(bx, "invalid_type", apr_psprintf(bx->p, "messages[%" APR_SIZE_T_FMT "]", i),
                        "'messages[%" APR_SIZE_T_FMT "]' must be an object.", i);
        rv = one_message(bx, m, i);
        if (rv != APR_SUCCESS)
            return rv;
    }
    return finish_turns(bx);
}

/* ---------------------------------------------------------------------- */
/* Requests: tools and tool_choice (providers.md 5.4)                     */
/* ---------------------------------------------------------------------- */

/* JSON Schema for input_schema: the root must say type "object" (new reference). */
static json_t *input_schema(const json_t *params)
{
    json_t *s;

    if (!json_is_object(params))
        return json_pack("{s:s, s:{}}", "type", "object", "properties");
    if (json_object_get(params, "type"))
        return json_incref((json_t *)params);
    s = json_copy((json_t *)params); /* shallow: the members stay the client's */
    json_object_set_new(s, "type", json_string("object"));
    return s;
}

/* One OpenAI function definition -> an Anthropic tool (new reference in *out). */
static apr_status_t tool_def(build_t *bx, const json_t *fn, const char *param, json_t **out)
{
    const char *name = llmgw_json_str(fn, "name");
    json_t *desc = json_object_get(fn, "description");
    json_t *params = json_object_get(fn, "parameters");
    json_t *t;

    if (!name || !*name)
        return fail(bx, "invalid_value", apr_pstrcat(bx->p, param, ".name", NULL),
                    "'%s.name' must be a non-empty string.", param);
    if (!llmgw_json_is_absent(params) && !json_is_object(params))
        return fail(bx, "invalid_type", apr_pstrcat(bx->p, param, ".parameters", NULL),
                    "'%s.parameters' must be a JSON Schema object.", param);
    t = json_pack("{s:s}", "name", name);
    if (json_is_string(desc) && json_string_length(desc) > 0)
        json_object_set(t, "description", desc);
    json_object_set_new(t, "input_schema", input_schema(params));
    if (json_is_true(json_object_get(fn, "strict")))
        json_object_set_new(t, "strict", json_true());
    *out = t;
    return APR_SUCCESS;
}

/* Name of the tool a tools[] item defines, NULL when it is no function tool. */
static const char *defined_name(const json_t *item, int legacy)
{
    return llmgw_json_str(legacy ? item : json_object_get(item, "function"), "name");
}

/* tools / legacy functions -> Anthropic tools (new reference in *out, NULL when none). */
static apr_status_t convert_tools(build_t *bx, const json_t *allowed, json_t **out)
{
    const char *key = bx->legacy ? "functions" : "tools";
    json_t *tools = json_object_get(bx->req, key);
    json_t *list;
    size_t i;
    json_t *item;

    *out = NULL;
    if (llmgw_json_is_absent(tools))
        return APR_SUCCESS;
    if (!json_is_array(tools))
        return fail(bx, "invalid_type", key, "'%s' must be an array.", key);
    list = json_array();
    json_array_foreach (tools, i, item) {
        const char *param = apr_psprintf(bx->p, "%s[%" APR_SIZE_T_FMT "]", key, i);
        const char *type = llmgw_json_str(item, "type");
        json_t *t = NULL;
        apr_status_t rv;

        if (!bx->legacy && !str_eq(type, "function")) {
            json_decref(list);
            return fail(bx, "unsupported_value", param,
                        "Only function tools can be used with Anthropic models ('%s' has type "
                        "'%s').",
                        param, type ? type : "(none)");
        }
        if (!llmgw_prov_tool_allowed(allowed, defined_name(item, bx->legacy)))
            continue;
        rv = tool_def(bx, bx->legacy ? item : json_object_get(item, "function"),
                      bx->legacy ? param : apr_pstrcat(bx->p, param, ".function", NULL), &t);
        if (rv != APR_SUCCESS) {
            json_decref(list);
            return rv;
        }
        json_array_append_new(list, t);
    }
    *out = list;
    return APR_SUCCESS;
}

static json_t *choice_of_type(const char *type)
{
    return json_pack("{s:s}", "type", type);
}

/* Legacy function_call -> an Anthropic tool_choice (new reference in *out). */
static apr_status_t legacy_choice(build_t *bx, const json_t *fc, json_t **out)
{
    const char *s = json_is_string(fc) ? json_string_value(fc) : NULL;
    const char *name = llmgw_json_str(fc, "name");

    if (str_eq(s, "auto") || str_eq(s, "none"))
        *out = choice_of_type(s);
    else if (name)
        *out = json_pack("{s:s, s:s}", "type", "tool", "name", name);
    else if (!llmgw_json_is_absent(fc))
        return fail(bx, "invalid_value", "function_call",
                    "'function_call' must be \"none\", \"auto\" or {\"name\": ...}.");
    return APR_SUCCESS;
}

/*
 * tool_choice -> an Anthropic tool_choice (new reference in *out, NULL when
 * absent). *allowed receives the allowed_tools list (borrowed), if any.
 */
static apr_status_t map_choice(build_t *bx, const json_t *tc, json_t **out, json_t **allowed)
{
    const char *s = json_is_string(tc) ? json_string_value(tc) : NULL;
    const char *type = llmgw_json_str(tc, "type");
    json_t *at = json_object_get(tc, "allowed_tools");
    const char *mode = llmgw_json_str(at, "mode");

    *out = NULL;
    *allowed = NULL;
    if (bx->legacy && llmgw_json_is_absent(tc))
        return legacy_choice(bx, json_object_get(bx->req, "function_call"), out);
    if (llmgw_json_is_absent(tc))
        return APR_SUCCESS;
    if (str_eq(s, "auto") || str_eq(s, "none"))
        *out = choice_of_type(s);
    else if (str_eq(s, "required"))
        *out = choice_of_type("any");
    else if (str_eq(type, "function") && llmgw_json_str(json_object_get(tc, "function"), "name"))
        *out = json_pack("{s:s, s:s}", "type", "tool", "name",
                         llmgw_json_str(json_object_get(tc, "function"), "name"));
    else if (str_eq(type, "allowed_tools") && json_is_array(json_object_get(at, "tools")) &&
             (str_eq(mode, "auto") || str_eq(mode, "required"))) {
        *out = choice_of_type(str_eq(mode, "auto") ? "auto" : "any");
        *allowed = json_object_get(at, "tools");
    }
    else if (str_eq(type, "custom"))
        return fail(bx, "unsupported_value", "tool_choice",
                    "Custom tools cannot be used with Anthropic models.");
    else
        return fail(bx, "invalid_value", "tool_choice",
                    "Invalid value for 'tool_choice': expected \"none\", \"auto\", \"required\", "
                    "a function or allowed_tools.");
    return APR_SUCCESS;
}

/*
 * The API refuses a history with tool_use blocks unless tools are defined:
 * when the client sends none, declare the ones the history used and forbid
 * calling them, which is what "no tools" means to the client.
 */
static json_t *history_tools(build_t *bx)
{
    json_t *list = json_array();
    const char *name;
    json_t *v;

    json_object_foreach (bx->used_tools, name, v) {
        json_array_append_new(list, json_pack("{s:s, s:{s:s, s:{}}}", "name", name, "input_schema",
                                              "type", "object", "properties"));
    }
    return list;
}

static apr_status_t set_tools(build_t *bx, body_t *body)
{
    json_t *choice, *allowed, *tools;
    int serial = bx->legacy || json_is_false(json_object_get(bx->req, "parallel_tool_calls"));
    apr_status_t rv;

    rv = map_choice(bx, json_object_get(bx->req, "tool_choice"), &choice, &allowed);
    if (rv == APR_SUCCESS)
        rv = convert_tools(bx, allowed, &tools);
    if (rv != APR_SUCCESS) {
        json_decref(choice);
        return rv;
    }
    if (json_array_size(tools) == 0) {
        const char *type = llmgw_json_str(choice, "type");
        int forced = type && !str_eq(type, "auto") && !str_eq(type, "none");

        json_decref(tools);
        json_decref(choice);
        if (forced)
            return fail(bx, "invalid_value", bx->legacy ? "function_call" : "tool_choice",
                        "A tool must be called, but no tool is defined.");
        if (json_object_size(bx->used_tools) == 0)
            return APR_SUCCESS;
        body->tools = history_tools(bx);
        body->tool_choice = choice_of_type("none");
        return APR_SUCCESS;
    }
    if (serial && !choice)
        choice = choice_of_type("auto");
    if (serial && !str_eq(llmgw_json_str(choice, "type"), "none"))
        json_object_set_new(choice, "disable_parallel_tool_use", json_true());
    body->tools = tools;
    body->tool_choice = choice;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Requests: parameters (providers.md 5.2)                                */
/* ---------------------------------------------------------------------- */

static int number_is(const json_t *v, double x)
{
    return json_is_number(v) && json_number_value(v) == x;
}

/* 1 when @p v asks for nothing beyond what Anthropic does anyway. */
typedef int (*harmless_fn)(const json_t *v);

static int harmless_null(const json_t *v)
{
    return llmgw_json_is_absent(v);
}

static int harmless_false(const json_t *v)
{
    return llmgw_json_is_absent(v) || json_is_false(v);
}

static int harmless_zero(const json_t *v)
{
    return llmgw_json_is_absent(v) || number_is(v, 0.0);
}

static int harmless_one(const json_t *v)
{
    return llmgw_json_is_absent(v) || number_is(v, 1.0);
}

static int harmless_empty(const json_t *v)
{
    return llmgw_json_is_absent(v) || (json_is_object(v) && json_object_size(v) == 0);
}

static int harmless_text_only(const json_t *v)
{
    return llmgw_json_is_absent(v) || (json_is_array(v) && json_array_size(v) == 1 &&
                                       str_eq(json_string_value(json_array_get(v, 0)), "text"));
}

static int harmless_medium(const json_t *v)
{
    return llmgw_json_is_absent(v) || str_eq(json_string_value(v), "medium");
}

/* Anthropic does not reason unless asked: "none"/"minimal" need nothing. */
static int harmless_effort(const json_t *v)
{
    const char *s = json_string_value(v);
    return llmgw_json_is_absent(v) || str_eq(s, "none") || str_eq(s, "minimal");
}

static const struct {
    const char *name;
    const char *code;
    harmless_fn harmless;
    const char *why;
} unsupported_params[] = {
    {"n", "unsupported_value", harmless_one, "only one choice can be generated"},
    {"logprobs", "unsupported_parameter", harmless_false, "log probabilities are not available"},
    {"top_logprobs", "unsupported_parameter", harmless_zero, "log probabilities are not available"},
    {"logit_bias", "unsupported_parameter", harmless_empty, "token biases cannot be applied"},
    {"presence_penalty", "unsupported_parameter", harmless_zero,
     "repetition penalties are not available"},
    {"frequency_penalty", "unsupported_parameter", harmless_zero,
     "repetition penalties are not available"},
    {"seed", "unsupported_parameter", harmless_null, "sampling cannot be seeded"},
    {"modalities", "unsupported_value", harmless_text_only, "only text output is available"},
    {"audio", "unsupported_parameter", harmless_null, "audio output is not available"},
    {"web_search_options", "unsupported_parameter", harmless_null,
     "OpenAI's web search is not available"},
    {"verbosity", "unsupported_parameter", harmless_medium, "verbosity cannot be set"},
    {"reasoning_effort", "unsupported_value", harmless_effort,
     "reasoning effort is not mapped to Anthropic thinking"},
};

#define UNSUPPORTED_COUNT (sizeof(unsupported_params) / sizeof(unsupported_params[0]))

static apr_status_t check_unsupported(build_t *bx)
{
    const json_t *given[UNSUPPORTED_COUNT] = {0};
    const char *key;
    size_t key_len, i;
    json_t *v;

    /* One pass over the handful of members a client sends, not a lookup
     * per name; refused in the table's order all the same. */
    json_object_keylen_foreach ((json_t *)bx->req, key, key_len, v) {
        if (strlen(key) != key_len)
            continue; /* a NUL inside: no parameter's name */
        for (i = 0; i < UNSUPPORTED_COUNT; i++) {
            if (key[0] == unsupported_params[i].name[0] &&
                strcmp(key, unsupported_params[i].name) == 0) {
                given[i] = v;
                break;
            }
        }
    }
    for (i = 0; i < UNSUPPORTED_COUNT; i++) {
        apr_status_t rv;

        if (unsupported_params[i].harmless(given[i]))
            continue;
        rv = refuse_param(bx, unsupported_params[i].name, unsupported_params[i].code,
                          unsupported_params[i].why);
        if (rv != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* max_completion_tokens, else max_tokens, else the backend's maxTokens. */
static apr_status_t set_max_tokens(build_t *bx, body_t *body)
{
    static const char *const keys[] = {"max_completion_tokens", "max_tokens"};
    int dflt = bx->call->backend->max_tokens;
    size_t i;

    for (i = 0; i < 2; i++) {
        json_t *v = json_object_get(bx->req, keys[i]);

        if (llmgw_json_is_absent(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return fail(bx, "invalid_value", keys[i], "'%s' must be an integer of at least 1.",
                        keys[i]);
        body->max_tokens = json_integer_value(v);
        return APR_SUCCESS;
    }
    if (dflt == LLMGW_UNSET || dflt < 1)
        dflt = LLMGW_DEFAULT_ANTHROPIC_MAX_TOKENS;
    body->max_tokens = dflt;
    return APR_SUCCESS;
}

/*
 * providers.md 5.1/5.2: temperature clamped to Anthropic's 0..1; top_p only
 * without temperature, since newer models refuse the two together.
 */
static apr_status_t set_sampling(build_t *bx, body_t *body)
{
    json_t *t = json_object_get(bx->req, "temperature");
    json_t *top = json_object_get(bx->req, "top_p");

    if (!llmgw_json_is_absent(t) && !json_is_number(t))
        return fail(bx, "invalid_type", "temperature", "'temperature' must be a number.");
    if (!llmgw_json_is_absent(top) && !json_is_number(top))
        return fail(bx, "invalid_type", "top_p", "'top_p' must be a number.");
    if (json_is_number(t)) {
        double x = json_number_value(t);
        if (x > 1.0 || x < 0.0)
            body->temperature = json_real(x > 1.0 ? 1.0 : 0.0);
        else
            body->temperature = json_incref(t);
    }
    if (!json_is_number(top))
        return APR_SUCCESS;
    if (!json_is_number(t)) {
        body->top_p = json_incref(top);
        return APR_SUCCESS;
    }
    if (number_is(top, 1.0))
        return APR_SUCCESS;
    return refuse_param(bx, "top_p", "unsupported_parameter",
                        "Anthropic models accept temperature or top_p, not both");
}

static apr_status_t set_stop(build_t *bx, body_t *body)
{
    json_t *seqs;

    if (!llmgw_prov_stop_sequences(json_object_get(bx->req, "stop"), &seqs))
        return fail(bx, "invalid_type", "stop", "'stop' must be a string or an array of strings.");
    body->stop_sequences = seqs;
    return APR_SUCCESS;
}

/* safety_identifier (or the older user) is the opaque end-user id. */
static void set_metadata(build_t *bx, body_t *body)
{
    const char *id = llmgw_json_str(bx->req, "safety_identifier");

    if (!id || !*id)
        id = llmgw_json_str(bx->req, "user");
    if (id && *id)
        body->user_id = id;
}

static void add_system_text(build_t *bx, const char *text)
{
    json_t *s = json_string(text);

    system_blocks(bx);
    json_array_append_new(bx->system, text_block(s));
    json_decref(s);
}

/* providers.md 5.2: json_schema -> output_config.format; json_object -> an instruction. */
static apr_status_t set_response_format(build_t *bx, body_t *body)
{
    json_t *rf = json_object_get(bx->req, "response_format");
    const char *type = llmgw_json_str(rf, "type");
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");

    if (llmgw_json_is_absent(rf) || str_eq(type, "text"))
        return APR_SUCCESS;
    if (str_eq(type, "json_schema") && json_is_object(schema)) {
        body->output_config =
            json_pack("{s:{s:s, s:O}}", "format", "type", "json_schema", "schema", schema);
        return APR_SUCCESS;
    }
    if (str_eq(type, "json_object") || str_eq(type, "json_schema")) {
        add_system_text(bx, JSON_OBJECT_INSTRUCTION);
        return APR_SUCCESS;
    }
    return refuse_param(bx, "response_format", "unsupported_value",
                        "only text, json_object and json_schema formats are available");
}

/* `system` as a string when it is one plain string, else text blocks. */
static void set_system(build_t *bx, body_t *body)
{
    size_t n = json_array_size(bx->system);

    if (bx->system_text) {
        body->system = json_incref(bx->system_text);
        return;
    }
    if (n == 0)
        return;
    if (n == 1 && bx->system_plain)
        body->system = json_incref(json_object_get(json_array_get(bx->system, 0), "text"));
    else
        body->system = json_incref(bx->system);
}

/* ---------------------------------------------------------------------- */
/* Requests: the whole request                                            */
/* ---------------------------------------------------------------------- */

/* What never changes in a backend's requests (llmgw_anthropic_prepare). */
typedef struct {
    const char *url;
    const apr_array_header_t *headers;
} fixed_t;

const void *llmgw_anthropic_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    fixed_t *f = apr_palloc(p, sizeof(*f));
    apr_array_header_t *h = apr_array_make(p, 5, sizeof(const char *));

    if (b->api_key && *b->api_key)
        APR_ARRAY_PUSH(h, const char *) = apr_pstrcat(p, "x-api-key: ", b->api_key, NULL);
    APR_ARRAY_PUSH(h, const char *) = "anthropic-version: " ANTHROPIC_VERSION;
    APR_ARRAY_PUSH(h, const char *) = "content-type: application/json";
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    APR_ARRAY_PUSH(h, const char *) = "Expect:";
    f->headers = h;
    f->url = apr_pstrcat(p, b->endpoint ? b->endpoint : ANTHROPIC_DEFAULT_ENDPOINT, "/v1/messages",
                         NULL);
    return f;
}

/*
 * A content block: a plain text block (the usual one) written, anything
 * else as jansson writes it.
 */
static void write_block(llmgw_json_buf_t *b, const json_t *block)
{
    json_t *text = json_object_get(block, "text");

    if (json_object_size(block) != 2 || !json_is_string(text) ||
        !str_eq(llmgw_json_str(block, "type"), "text")) {
        llmgw_json_buf_value(b, block);
        return;
    }
    llmgw_json_buf_lit(b, "{\"type\":\"text\",\"text\":");
    llmgw_json_buf_value(b, text);
    llmgw_json_buf_lit(b, "}");
}

/* The turns ({"role","content"} each, content a string or blocks), written. */
static void write_turns(llmgw_json_buf_t *b, const json_t *turns)
{
    size_t i, k;
    json_t *turn, *block;

    llmgw_json_buf_lit(b, "[");
    json_array_foreach (turns, i, turn) {
        json_t *content = json_object_get(turn, "content");

        if (i > 0)
            llmgw_json_buf_lit(b, ",");
        if (json_object_size(turn) != 2 || !content) {
            llmgw_json_buf_value(b, turn); /* any other shape: as jansson writes it */
            continue;
        }
        llmgw_json_buf_lit(b, "{\"role\":");
        llmgw_json_buf_value(b, json_object_get(turn, "role"));
        llmgw_json_buf_lit(b, ",\"content\":");
        if (!json_is_array(content)) {
            llmgw_json_buf_value(b, content);
        }
        else {
            llmgw_json_buf_lit(b, "[");
            json_array_foreach (content, k, block) {
                if (k > 0)
                    llmgw_json_buf_lit(b, ",");
                write_block(b, block);
            }
            llmgw_json_buf_lit(b, "]");
        }
        llmgw_json_buf_lit(b, "}");
    }
    llmgw_json_buf_lit(b, "]");
}

/* `,"name":` and @p v, unless @p v is NULL (absent). */
static void write_member(llmgw_json_buf_t *b, const char *comma_name, apr_size_t len,
                         const json_t *v)
{
    if (!v)
        return;
    llmgw_json_buf_add(b, comma_name, len);
    llmgw_json_buf_value(b, v);
}

#define WRITE_MEMBER(b, name, v) write_member((b), ",\"" name "\":", sizeof(name) + 3, (v))

/*
 * The body, written (llmgw_json.h): a Messages API request has one shape,
 * and the messages hold most of its bytes. From bx->p; NULL when writing
 * failed.
 */
static const char *write_body(build_t *bx, const body_t *body, apr_size_t *len)
{
    llmgw_json_buf_t b;
    const char *text = NULL;

    llmgw_json_buf_init(&b);
    llmgw_json_buf_lit(&b, "{\"model\":");
    llmgw_json_buf_str(&b, bx->call->model);
    WRITE_MEMBER(&b, "output_config", body->output_config);
    llmgw_json_buf_lit(&b, ",\"max_tokens\":");
    llmgw_json_buf_int(&b, body->max_tokens);
    WRITE_MEMBER(&b, "system", body->system);
    llmgw_json_buf_lit(&b, ",\"messages\":");
    write_turns(&b, bx->turns);
    WRITE_MEMBER(&b, "tools", body->tools);
    WRITE_MEMBER(&b, "tool_choice", body->tool_choice);
    WRITE_MEMBER(&b, "temperature", body->temperature);
    WRITE_MEMBER(&b, "top_p", body->top_p);
    WRITE_MEMBER(&b, "stop_sequences", body->stop_sequences);
    if (body->user_id) {
        llmgw_json_buf_lit(&b, ",\"metadata\":{\"user_id\":");
        llmgw_json_buf_str(&b, body->user_id);
        llmgw_json_buf_lit(&b, "}");
    }
    if (bx->call->stream)
        llmgw_json_buf_lit(&b, ",\"stream\":true");
    llmgw_json_buf_lit(&b, "}");
    if (!b.failed)
        text = apr_pstrmemdup(bx->p, b.data, b.len);
    *len = text ? b.len : 0;
    llmgw_json_buf_free(&b);
    return text;
}

static void body_release(body_t *body)
{
    json_decref(body->output_config);
    json_decref(body->system);
    json_decref(body->tools);
    json_decref(body->tool_choice);
    json_decref(body->temperature);
    json_decref(body->top_p);
    json_decref(body->stop_sequences);
}

static apr_status_t build_body(build_t *bx, body_t *body)
{
    json_t *model = json_string(bx->call->model);
    apr_status_t rv;

    if (!model)
        return fail(bx, "invalid_value", "model", "The model name is not valid UTF-8.");
    json_decref(model);
    if ((rv = check_unsupported(bx)) != APR_SUCCESS || (rv = convert_messages(bx)) != APR_SUCCESS ||
        (rv = set_response_format(bx, body)) != APR_SUCCESS ||
        (rv = set_max_tokens(bx, body)) != APR_SUCCESS)
        return rv;
    set_system(bx, body);
    if ((rv = set_tools(bx, body)) != APR_SUCCESS || (rv = set_sampling(bx, body)) != APR_SUCCESS ||
        (rv = set_stop(bx, body)) != APR_SUCCESS)
        return rv;
    set_metadata(bx, body);
    return APR_SUCCESS;
}

apr_status_t llmgw_anthropic_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                           llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    const fixed_t *f;
    build_t bx;
    body_t body;
    apr_status_t rv;

    memset(&bx, 0, sizeof(bx));
    bx.call = call;
    bx.p = call->pool;
    bx.req = call->body;
    bx.err = err;
    if (call->api != LLMGW_API_CHAT) {
        *err =
            llmgw_error_make(call->pool, 400, "invalid_request_error", "unsupported_value", "model",
                             "backend \"%s\" (anthropic) serves chat completions only", b->name);
        return LLMGW_EUNSUPPORTED;
    }
    if (!json_is_object(call->body))
        return fail(&bx, NULL, NULL, "The request body must be a JSON object.");

    bx.legacy = llmgw_prov_legacy_functions(call->body);
    bx.system = json_array();
    bx.system_plain = 1;
    bx.turns = json_array();
    bx.used_tools = json_object();
    bx.legacy_open = json_array();
    memset(&body, 0, sizeof(body));
    rv = build_body(&bx, &body);
    if (rv == APR_SUCCESS) {
        out->body = write_body(&bx, &body, &out->body_len);
        rv = out->body ? APR_SUCCESS : APR_ENOMEM;
    }
    body_release(&body);
    json_decref(bx.system);
    json_decref(bx.turns);
    json_decref(bx.used_tools);
    json_decref(bx.legacy_open);
    if (rv != APR_SUCCESS)
        return rv;

    /* Prepared once per configuration; built here only for a backend that
     * was not (unit tests, a configuration made in code). */
    f = b->fixed ? b->fixed : llmgw_anthropic_prepare(b, call->pool);
    out->method = "POST";
    out->url = f->url;
    out->headers = f->headers;
    out->headers_fixed = f == b->fixed;
    out->stream = call->stream;
    return APR_SUCCESS;
}
