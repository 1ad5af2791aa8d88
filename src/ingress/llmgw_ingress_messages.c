/*
 * The Anthropic Messages dialect (ingress.md 6, 7): POST /v1/messages onto
 * the canonical chat form and back.
 *
 * Requests: decode validates what Anthropic itself would refuse (a missing
 * max_tokens, an empty text block, a malformed tool) and builds the
 * canonical request: system first, each user turn split into its tool
 * results (first, as tool messages) and the rest, assistant turns into
 * content plus tool_calls. Anything a translated backend cannot honour
 * (server tools, beta fields, file sources, a prefill where the backend has
 * none) is left out of the canonical form and refused by check_backend,
 * which names the field in Anthropic's dotted notation ("tools.1.type"), so
 * that the same request still goes natively to an anthropic backend.
 *
 * A prefill (a trailing assistant turn) stays in the canonical form for the
 * backends that continue one (mistral, google); check_backend refuses it
 * for the others, and with unsupportedParams: drop, drop_fields takes it
 * out again, as it does the canonical top_k and stop behind dropped fields.
 *
 * The other files: _answer.c (canonical answers and streams as Messages
 * answers), _native.c (error bodies, the passthrough to anthropic),
 * _count.c (count_tokens, the estimate, the models listing).
 *
 * Memory: per request everything comes from the pool passed in, or is a
 * jansson value released before returning or owned by that pool.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <apr_base64.h>
#include <apr_strings.h>
#include "llmgw_ingress_messages_private.h"
#include "llmgw_json.h"
#include "../providers/llmgw_provider_util.h"

/* ---------------------------------------------------------------------- */
/* Shared helpers (llmgw_ingress_messages_private.h)                      */
/* ---------------------------------------------------------------------- */

int llmgw_msg_str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

#define str_eq llmgw_msg_str_eq

const char *llmgw_msg_mint_id(apr_pool_t *p, const char *prefix)
{
    return llmgw_prov_mint_id(p, prefix, 24);
}

static int id_chars_ok(const char *id)
{
    return llmgw_prov_id_chars_ok(id);
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * ingress.md 2.4: an id Anthropic accepts goes as it is; any other (Gemini's
 * "__thought__..." signatures, ids with dots or colons) travels base64url
 * encoded and comes back decoded. Ids that already carry the prefix are
 * encoded too, so decoding never mistakes one for an encoded id.
 */
const char *llmgw_msg_tool_id_out(apr_pool_t *p, const char *id)
{
    char *b64, *s;
    int n;

    if (!id || !*id)
        return llmgw_msg_mint_id(p, "toolu_gw");
    if (id_chars_ok(id) && !has_prefix(id, LLMGW_MSG_B64_ID_PREFIX))
        return id;
    b64 = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)strlen(id)));
    n = apr_base64_encode_binary(b64, (const unsigned char *)id, (int)strlen(id));
    while (n > 0 && (b64[n - 1] == '\0' || b64[n - 1] == '='))
        b64[--n] = '\0';
    for (s = b64; *s; s++) {
        if (*s == '+')
            *s = '-';
        else if (*s == '/')
            *s = '_';
    }
    return apr_pstrcat(p, LLMGW_MSG_B64_ID_PREFIX, b64, NULL);
}

const char *llmgw_msg_tool_id_in(apr_pool_t *p, const char *id)
{
    const char *enc;
    apr_size_t n, i;
    char *std;
    unsigned char *raw;
    int len;
    json_t *check;

    if (!id || !has_prefix(id, LLMGW_MSG_B64_ID_PREFIX))
        return id;
    enc = id + strlen(LLMGW_MSG_B64_ID_PREFIX);
    n = strlen(enc);
    if (n == 0 || n % 4 == 1 || !id_chars_ok(enc))
        return id;
    std = apr_palloc(p, n + 3);
    for (i = 0; i < n; i++)
        std[i] = enc[i] == '-' ? '+' : enc[i] == '_' ? '/' : enc[i];
    while (i % 4)
        std[i++] = '=';
    std[i] = '\0';
    raw = apr_palloc(p, (apr_size_t)apr_base64_decode_len(std) + 1);
    len = apr_base64_decode_binary(raw, std);
    if (len <= 0)
        return id;
    raw[len] = '\0';
    /* Only text that can be a JSON string (UTF-8, no NUL) is a canonical id. */
    check = memchr(raw, '\0', (apr_size_t)len) ? NULL : json_stringn((const char *)raw, len);
    if (!check)
        return id;
    json_decref(check);
    return (const char *)raw;
}

/* The providers' finish-reason table read the other way: OpenAI's reason first. */
static const llmgw_prov_finish_map_t stop_reasons[] = {{"length", "max_tokens"},
                                                       {"tool_calls", "tool_use"},
                                                       {"function_call", "tool_use"},
                                                       {"content_filter", "refusal"},
                                                       {NULL, NULL}};

const char *llmgw_msg_stop_reason(const char *finish_reason)
{
    const llmgw_prov_finish_map_t *row = llmgw_prov_finish_row(stop_reasons, finish_reason);

    return row ? row->finish : "end_turn";
}

void llmgw_msg_usage_from_canonical(const json_t *usage, llmgw_msg_usage_t *out)
{
    json_t *details = json_object_get(usage, "prompt_tokens_details");
    apr_int64_t prompt = 0;

    memset(out, 0, sizeof(*out));
    llmgw_prov_token_count(usage, "prompt_tokens", &prompt);
    llmgw_prov_token_count(usage, "completion_tokens", &out->output);
    llmgw_prov_token_count(details, "cached_tokens", &out->cache_read);
    llmgw_prov_token_count(details, "cache_write_tokens", &out->cache_write);
    /* prompt_tokens includes both cache counters; Anthropic's input_tokens does not. */
    out->input = prompt - out->cache_read - out->cache_write;
    if (out->input < 0)
        out->input = 0;
}

json_t *llmgw_msg_usage_json(const llmgw_msg_usage_t *u)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)u->input, "output_tokens",
                     (json_int_t)u->output, "cache_creation_input_tokens",
                     (json_int_t)u->cache_write, "cache_read_input_tokens",
                     (json_int_t)u->cache_read);
}

const char *llmgw_msg_dump_short(apr_pool_t *p, const json_t *j)
{
    static const int precisions[] = {15, 16, 17};
    size_t i;

    for (i = 0; i < sizeof(precisions) / sizeof(precisions[0]); i++) {
        char *text =
            json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precisions[i]));
        json_t *back = text ? json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
        int last = i + 1 == sizeof(precisions) / sizeof(precisions[0]);
        const char *out = NULL;

        if (text && ((back && json_equal(back, j)) || last))
            out = apr_pstrdup(p, text);
        json_decref(back);
        free(text);
        if (out || last)
            return out;
    }
    return NULL;
}

apr_status_t llmgw_msg_emit(llmgw_ingress_stream_t *st, llmgw_chunk_kind_e kind, const char *name,
                            const json_t *j)
{
    char stack[LLMGW_PROV_FRAME_STACK];
    size_t name_len = strlen(name);
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    /* "event: " name "\n" "data: " json "\n\n" */
    size_t total = 7 + name_len + 1 + 6 + n + 2;
    char *buf, *at;
    apr_status_t rv;

    if (n == 0)
        return APR_ENOMEM;
    buf = total <= sizeof(stack) ? stack : malloc(total);
    if (!buf)
        return APR_ENOMEM;
    at = buf;
    memcpy(at, "event: ", 7);
    at += 7;
    memcpy(at, name, name_len);
    at += name_len;
    memcpy(at, "\ndata: ", 7);
    at += 7;
    json_dumpb(j, at, n, JSON_COMPACT);
    at += n;
    memcpy(at, "\n\n", 2);
    rv = st->emit(st->baton, kind, NULL, buf, total);
    if (buf != stack)
        free(buf);
    return rv;
}

/* ---------------------------------------------------------------------- */
/* Requests: context and errors                                           */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    const json_t *req; /* the client's body, borrowed, never modified */
    int count;         /* a count_tokens request */
    llmgw_error_t **err;
    json_t *msgs; /* canonical messages under construction (new reference) */
} dec_t;

static apr_status_t bad(dec_t *d, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A 400 the way Anthropic words them: "<path>: <what is wrong>". */
static apr_status_t bad(dec_t *d, const char *param, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(d->p, fmt, ap);
    va_end(ap);
    *d->err = llmgw_error_make(d->p, 400, "invalid_request_error", NULL, param, "%s%s%s",
                               param ? param : "", param ? ": " : "", msg);
    return LLMGW_EBADREQ;
}

static const char *sub(dec_t *d, const char *base, const char *member)
{
    return apr_pstrcat(d->p, base, ".", member, NULL);
}

static const char *idx(dec_t *d, const char *base, size_t i)
{
    return apr_psprintf(d->p, "%s.%" APR_SIZE_T_FMT, base, i);
}

int llmgw_msg_all_space(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
            return 0;
    }
    return 1;
}

/* {"type":"text","text":s} sharing @p s (new reference). */
static json_t *text_part(json_t *s)
{
    return json_pack("{s:s, s:O}", "type", "text", "text", s);
}

/* a + b + c as a new JSON string, without a pool copy (images can be megabytes). */
static json_t *joined_string(const char *a, const char *b, const char *c, apr_size_t clen)
{
    apr_size_t al = strlen(a), bl = strlen(b);
    char *buf = malloc(al + bl + clen + 1);
    json_t *s;

    if (!buf)
        return NULL;
    memcpy(buf, a, al);
    memcpy(buf + al, b, bl);
    memcpy(buf + al + bl, c, clen);
    s = json_stringn(buf, al + bl + clen);
    free(buf);
    return s;
}

/* ---------------------------------------------------------------------- */
/* Requests: content blocks (ingress.md 7.3 step 2)                       */
/* ---------------------------------------------------------------------- */

/* A text block's text (borrowed): a non-empty string, with non-space text in user turns. */
static apr_status_t block_text(dec_t *d, const json_t *b, const char *param, int user,
                               json_t **text)
{
    json_t *t = json_object_get(b, "text");

    if (!json_is_string(t))
        return bad(d, sub(d, param, "text"), "Input should be a valid string");
    if (json_string_length(t) == 0)
        return bad(d, sub(d, param, "text"), "text content blocks must be non-empty");
    if (user && llmgw_msg_all_space(json_string_value(t), json_string_length(t)))
        return bad(d, sub(d, param, "text"),
                   "text content blocks must contain non-whitespace text");
    *text = t;
    return APR_SUCCESS;
}

static int image_type_ok(const char *media)
{
    return str_eq(media, "image/jpeg") || str_eq(media, "image/png") ||
           str_eq(media, "image/gif") || str_eq(media, "image/webp");
}

/* {"type":"image_url","image_url":{"url":u}} taking @p url (new reference, NULL on ENOMEM). */
static json_t *image_url_part(json_t *url)
{
    return url ? json_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url", url) : NULL;
}

/* An image block -> an image_url part; file sources (and kinds added later) are check_backend's. */
static apr_status_t image_part(dec_t *d, const json_t *b, const char *param, json_t *parts)
{
    json_t *src = json_object_get(b, "source"), *part;
    const char *type = llmgw_json_str(src, "type");
    const char *sparam = sub(d, param, "source");

    if (!json_is_object(src))
        return bad(d, sparam, "Field required");
    if (str_eq(type, "base64")) {
        const char *media = llmgw_json_str(src, "media_type");
        json_t *data = json_object_get(src, "data");

        if (!image_type_ok(media))
            return bad(d, sub(d, sparam, "media_type"),
                       "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'");
        if (!json_is_string(data))
            return bad(d, sub(d, sparam, "data"), "Field required");
        part = image_url_part(joined_string(apr_pstrcat(d->p, "data:", media, NULL), ";base64,",
                                            json_string_value(data), json_string_length(data)));
        if (!part)
            return APR_ENOMEM;
        json_array_append_new(parts, part);
        return APR_SUCCESS;
    }
    if (str_eq(type, "url")) {
        json_t *url = json_object_get(src, "url");

        if (!json_is_string(url))
            return bad(d, sub(d, sparam, "url"), "Field required");
        json_array_append_new(parts, image_url_part(json_incref(url)));
        return APR_SUCCESS;
    }
    if (!type)
        return bad(d, sub(d, sparam, "type"), "Field required");
    return APR_SUCCESS;
}

/* A document block -> file / text / image parts (ingress.md 7.3 step 2). */
static apr_status_t document_parts(dec_t *d, const json_t *b, const char *param, json_t *parts)
{
    json_t *src = json_object_get(b, "source");
    const char *type = llmgw_json_str(src, "type");
    const char *sparam = sub(d, param, "source");
    const char *title = llmgw_json_str(b, "title");
    json_t *context = json_object_get(b, "context");

    if (!json_is_object(src))
        return bad(d, sparam, "Field required");
    if (!type)
        return bad(d, sub(d, sparam, "type"), "Field required");
    /* The context is part of what the model is given: keep it, ahead of the document. */
    if (json_is_string(context) && json_string_length(context) > 0 &&
        (str_eq(type, "base64") || str_eq(type, "text") || str_eq(type, "content")))
        json_array_append_new(parts, text_part(context));
    if (str_eq(type, "base64")) {
        json_t *data = json_object_get(src, "data"), *file;

        if (!str_eq(llmgw_json_str(src, "media_type"), "application/pdf"))
            return bad(d, sub(d, sparam, "media_type"), "Input should be 'application/pdf'");
        if (!json_is_string(data))
            return bad(d, sub(d, sparam, "data"), "Field required");
        file = joined_string("data:application/pdf", ";base64,", json_string_value(data),
                             json_string_length(data));
        if (!file)
            return APR_ENOMEM;
        json_array_append_new(parts, json_pack("{s:s, s:{s:o, s:s}}", "type", "file", "file",
                                               "file_data", file, "filename",
                                               title && *title ? title : "document.pdf"));
        return APR_SUCCESS;
    }
    if (str_eq(type, "text")) {
        json_t *data = json_object_get(src, "data"), *text;

        if (!json_is_string(data))
            return bad(d, sub(d, sparam, "data"), "Field required");
        if (title && *title)
            text = joined_string(title, "\n", json_string_value(data), json_string_length(data));
        else
            text = json_incref(data);
        if (!text)
            return APR_ENOMEM;
        if (json_string_length(text) > 0)
            json_array_append_new(parts, json_pack("{s:s, s:o}", "type", "text", "text", text));
        else
            json_decref(text);
        return APR_SUCCESS;
    }
    if (str_eq(type, "content")) {
        json_t *content = json_object_get(src, "content"), *cb;
        const char *cparam = sub(d, sparam, "content");
        size_t k;

        if (json_is_string(content)) {
            if (json_string_length(content) > 0)
                json_array_append_new(parts, text_part(content));
            return APR_SUCCESS;
        }
        if (!json_is_array(content))
            return bad(d, cparam, "Input should be a valid string or list");
        json_array_foreach (content, k, cb) {
            const char *kparam = idx(d, cparam, k);
            const char *ktype = llmgw_json_str(cb, "type");
            json_t *text;
            apr_status_t rv = APR_SUCCESS;

            if (str_eq(ktype, "text")) {
                if ((rv = block_text(d, cb, kparam, 0, &text)) == APR_SUCCESS)
                    json_array_append_new(parts, text_part(text));
            }
            else if (str_eq(ktype, "image")) {
                rv = image_part(d, cb, kparam, parts);
            }
            else {
                return bad(d, sub(d, kparam, "type"), "Input should be 'text' or 'image'");
            }
            if (rv != APR_SUCCESS)
                return rv;
        }
        return APR_SUCCESS;
    }
    /* url and file sources, and kinds added later: check_backend refuses them. */
    return APR_SUCCESS;
}

/*
 * A tool_result -> a tool message in @p tools; its images and documents go
 * to @p reloc, headed by a line naming the call, since chat tool messages
 * carry text only (ingress.md 7.3 step 2, 4.4 step 5).
 */
static apr_status_t tool_result(dec_t *d, const json_t *b, const char *param, json_t *tools,
                                json_t *reloc)
{
    json_t *id = json_object_get(b, "tool_use_id");
    json_t *content = json_object_get(b, "content");
    const char *cparam = sub(d, param, "content");
    const char *call_id;
    apr_size_t total = 0;
    json_t *texts = json_array(), *media = json_array(), *cb, *text;
    apr_status_t rv = APR_SUCCESS;
    size_t k;
    char *buf, *at;
    const char *prefix = json_is_true(json_object_get(b, "is_error")) ? "Error: " : "";

    if (!json_is_string(id) || json_string_length(id) == 0) {
        json_decref(texts);
        json_decref(media);
        return bad(d, sub(d, param, "tool_use_id"), "Field required");
    }
    call_id = llmgw_msg_tool_id_in(d->p, json_string_value(id));
    if (json_is_string(content)) {
        json_array_append(texts, content);
    }
    else if (json_is_array(content)) {
        json_array_foreach (content, k, cb) {
            const char *kparam = idx(d, cparam, k);
            const char *ktype = llmgw_json_str(cb, "type");

            if (!json_is_object(cb))
                rv = bad(d, kparam, "Input should be a valid dictionary");
            else if (str_eq(ktype, "text") &&
                     (rv = block_text(d, cb, kparam, 0, &text)) == APR_SUCCESS)
                json_array_append(texts, text);
            else if (str_eq(ktype, "image"))
                rv = image_part(d, cb, kparam, media);
            else if (str_eq(ktype, "document"))
                rv = document_parts(d, cb, kparam, media);
            else if (!ktype)
                rv = bad(d, sub(d, kparam, "type"), "Field required");
            /* search_result and kinds added later: check_backend's */
            if (rv != APR_SUCCESS)
                break;
        }
    }
    else if (!llmgw_json_is_absent(content)) {
        rv = bad(d, cparam, "Input should be a valid string or list");
    }
    if (rv != APR_SUCCESS) {
        json_decref(texts);
        json_decref(media);
        return rv;
    }
    json_array_foreach (texts, k, text)
        total += json_string_length(text);
    /* Several providers refuse empty tool results; an output that is only
     * images says where it went. */
    if (total == 0) {
        const char *none =
            json_array_size(media) ? "(the output follows in the next message)" : "(no output)";
        json_decref(texts);
        texts = json_pack("[s]", none);
        total = strlen(none);
    }
    buf = malloc(strlen(prefix) + total + 1);
    if (!buf) {
        json_decref(texts);
        json_decref(media);
        return APR_ENOMEM;
    }
    at = buf + strlen(prefix);
    memcpy(buf, prefix, strlen(prefix));
    json_array_foreach (texts, k, text) {
        memcpy(at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    json_array_append_new(tools,
                          json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id", call_id,
                                    "content", json_stringn(buf, (size_t)(at - buf))));
    free(buf);
    json_decref(texts);
    if (json_array_size(media) > 0) {
        json_array_append_new(reloc,
                              json_pack("{s:s, s:s}", "type", "text", "text",
                                        apr_psprintf(d->p, "Output of tool call %s:", call_id)));
        json_array_extend(reloc, media);
    }
    json_decref(media);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Requests: turns (ingress.md 7.3)                                       */
/* ---------------------------------------------------------------------- */

static apr_status_t empty_turn(dec_t *d, const char *param)
{
    return bad(d, param,
               "all messages must have non-empty content except for the optional final "
               "assistant message");
}

static apr_status_t user_turn(dec_t *d, const json_t *content, const char *param)
{
    const char *cparam = sub(d, param, "content");
    json_t *tools, *reloc, *rest, *b;
    apr_status_t rv = APR_SUCCESS;
    size_t j;

    if (json_is_string(content)) {
        if (json_string_length(content) == 0)
            return empty_turn(d, param);
        json_array_append_new(d->msgs, json_pack("{s:s, s:O}", "role", "user", "content", content));
        return APR_SUCCESS;
    }
    if (!json_is_array(content))
        return bad(d, cparam, "Input should be a valid string or list");
    if (json_array_size(content) == 0)
        return empty_turn(d, param);
    tools = json_array();
    reloc = json_array();
    rest = json_array();
    json_array_foreach (content, j, b) {
        const char *bparam = idx(d, cparam, j);
        const char *type = llmgw_json_str(b, "type");
        json_t *text;

        if (!json_is_object(b))
            rv = bad(d, bparam, "Input should be a valid dictionary");
        else if (!type)
            rv = bad(d, sub(d, bparam, "type"), "Field required");
        else if (str_eq(type, "text")) {
            if ((rv = block_text(d, b, bparam, 1, &text)) == APR_SUCCESS)
                json_array_append_new(rest, text_part(text));
        }
        else if (str_eq(type, "image"))
            rv = image_part(d, b, bparam, rest);
        else if (str_eq(type, "document"))
            rv = document_parts(d, b, bparam, rest);
        else if (str_eq(type, "tool_result"))
            rv = tool_result(d, b, bparam, tools, reloc);
        /* search_result, blocks of other roles, kinds added later: check_backend's */
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_SUCCESS) {
        json_array_extend(d->msgs, tools);
        json_array_extend(reloc, rest);
        if (json_array_size(reloc) > 0)
            json_array_append_new(d->msgs,
                                  json_pack("{s:s, s:O}", "role", "user", "content", reloc));
    }
    json_decref(tools);
    json_decref(reloc);
    json_decref(rest);
    return rv;
}

/* A tool_use block -> a canonical tool call (new reference in *out). */
static apr_status_t tool_call(dec_t *d, const json_t *b, const char *param, json_t **out)
{
    const char *id = llmgw_json_str(b, "id");
    const char *name = llmgw_json_str(b, "name");
    json_t *input = json_object_get(b, "input");
    const char *args;

    if (!id || !*id)
        return bad(d, sub(d, param, "id"), "Field required");
    if (!name || !*name)
        return bad(d, sub(d, param, "name"), "Field required");
    if (!llmgw_json_is_absent(input) && !json_is_object(input))
        return bad(d, sub(d, param, "input"), "Input should be a valid dictionary");
    args = json_is_object(input) ? llmgw_msg_dump_short(d->p, input) : "{}";
    if (!args)
        return APR_ENOMEM;
    *out = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", llmgw_msg_tool_id_in(d->p, id), "type",
                     "function", "function", "name", name, "arguments", args);
    return *out ? APR_SUCCESS : APR_ENOMEM;
}

static apr_status_t assistant_turn(dec_t *d, const json_t *content, const char *param)
{
    const char *cparam = sub(d, param, "content");
    json_t *texts, *calls, *b, *msg, *text;
    apr_size_t total = 0;
    apr_status_t rv = APR_SUCCESS;
    size_t j;

    if (json_is_string(content)) {
        if (json_string_length(content) > 0)
            json_array_append_new(d->msgs,
                                  json_pack("{s:s, s:O}", "role", "assistant", "content", content));
        return APR_SUCCESS;
    }
    if (!json_is_array(content))
        return bad(d, cparam, "Input should be a valid string or list");
    texts = json_array();
    calls = json_array();
    json_array_foreach (content, j, b) {
        const char *bparam = idx(d, cparam, j);
        const char *type = llmgw_json_str(b, "type");
        json_t *tc = NULL;

        if (!json_is_object(b))
            rv = bad(d, bparam, "Input should be a valid dictionary");
        else if (!type)
            rv = bad(d, sub(d, bparam, "type"), "Field required");
        else if (str_eq(type, "text")) {
            if ((rv = block_text(d, b, bparam, 0, &text)) == APR_SUCCESS) {
                json_array_append(texts, text);
                total += json_string_length(text);
            }
        }
        else if (str_eq(type, "tool_use")) {
            if ((rv = tool_call(d, b, bparam, &tc)) == APR_SUCCESS)
                json_array_append_new(calls, tc);
        }
        /* thinking and redacted_thinking: no carrier in chat (their signatures
         * mean nothing elsewhere); server-tool blocks: check_backend's */
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_SUCCESS && (total > 0 || json_array_size(calls) > 0)) {
        char *buf = total ? malloc(total) : NULL;
        apr_size_t at = 0;

        if (total && !buf) {
            rv = APR_ENOMEM;
        }
        else {
            json_array_foreach (texts, j, text) {
                memcpy(buf + at, json_string_value(text), json_string_length(text));
                at += json_string_length(text);
            }
            msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            total ? json_stringn(buf, total) : json_null());
            if (json_array_size(calls) > 0)
                json_object_set(msg, "tool_calls", calls);
            json_array_append_new(d->msgs, msg);
            free(buf);
        }
    }
    json_decref(texts);
    json_decref(calls);
    return rv;
}

/* System text (top-level `system`, or a role:"system" entry) -> a system message. */
static apr_status_t system_message(dec_t *d, const json_t *content, const char *param)
{
    json_t *parts, *b;
    size_t j;

    if (llmgw_json_is_absent(content))
        return APR_SUCCESS;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0)
            json_array_append_new(d->msgs,
                                  json_pack("{s:s, s:O}", "role", "system", "content", content));
        return APR_SUCCESS;
    }
    if (!json_is_array(content))
        return bad(d, param, "Input should be a valid string or list");
    parts = json_array();
    json_array_foreach (content, j, b) {
        const char *bparam = idx(d, param, j);
        json_t *text = json_object_get(b, "text");

        if (!str_eq(llmgw_json_str(b, "type"), "text")) {
            json_decref(parts);
            return bad(d, sub(d, bparam, "type"), "Input should be 'text'");
        }
        if (!json_is_string(text)) {
            json_decref(parts);
            return bad(d, sub(d, bparam, "text"), "Input should be a valid string");
        }
        /* cache_control and citations are hints: gone; empty blocks carry nothing */
        if (json_string_length(text) > 0)
            json_array_append_new(parts, text_part(text));
    }
    if (json_array_size(parts) > 0)
        json_array_append_new(d->msgs, json_pack("{s:s, s:o}", "role", "system", "content", parts));
    else
        json_decref(parts);
    return APR_SUCCESS;
}

static apr_status_t convert_messages(dec_t *d)
{
    json_t *msgs = json_object_get(d->req, "messages"), *m;
    apr_status_t rv;
    size_t i;

    if ((rv = system_message(d, json_object_get(d->req, "system"), "system")) != APR_SUCCESS)
        return rv;
    if (!msgs)
        return bad(d, "messages", "Field required");
    if (!json_is_array(msgs))
        return bad(d, "messages", "Input should be a valid list");
    if (json_array_size(msgs) == 0)
        return bad(d, "messages", "at least one message is required");
    json_array_foreach (msgs, i, m) {
        const char *param = idx(d, "messages", i);
        const char *role = llmgw_json_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (!json_is_object(m))
            return bad(d, param, "Input should be a valid dictionary");
        if (!content)
            return bad(d, sub(d, param, "content"), "Field required");
        if (str_eq(role, "user"))
            rv = user_turn(d, content, param);
        else if (str_eq(role, "assistant"))
            rv = assistant_turn(d, content, param);
        /* Version 2026-10-21 admits system entries; accepted under either
         * version (lenient, as the assumed anthropic-version is). */
        else if (str_eq(role, "system"))
            rv = system_message(d, content, sub(d, param, "content"));
        else
            rv = bad(d, sub(d, param, "role"), "Input should be 'user' or 'assistant'");
        if (rv != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Requests: tools, thinking, output (ingress.md 7.2)                     */
/* ---------------------------------------------------------------------- */

/* Client tools -> canonical function tools; server tools are check_backend's. */
static apr_status_t convert_tools(dec_t *d, json_t *body)
{
    json_t *tools = json_object_get(d->req, "tools"), *t, *list;
    size_t i;

    if (llmgw_json_is_absent(tools))
        return APR_SUCCESS;
    if (!json_is_array(tools))
        return bad(d, "tools", "Input should be a valid list");
    list = json_array();
    json_array_foreach (tools, i, t) {
        const char *param = idx(d, "tools", i);
        const char *type = llmgw_json_str(t, "type");
        const char *name = llmgw_json_str(t, "name");
        json_t *schema = json_object_get(t, "input_schema");
        json_t *desc = json_object_get(t, "description");
        json_t *strict = json_object_get(t, "strict");
        json_t *fn;

        if (!json_is_object(t)) {
            json_decref(list);
            return bad(d, param, "Input should be a valid dictionary");
        }
        if (type && !str_eq(type, "custom"))
            continue;
        if (!name || !*name) {
            json_decref(list);
            return bad(d, sub(d, param, "name"), "Field required");
        }
        if (!json_is_object(schema)) {
            json_decref(list);
            return bad(d, sub(d, param, "input_schema"), "Field required");
        }
        fn = json_pack("{s:s}", "name", name);
        if (json_is_string(desc) && json_string_length(desc) > 0)
            json_object_set(fn, "description", desc);
        json_object_set(fn, "parameters", schema);
        if (json_is_boolean(strict))
            json_object_set(fn, "strict", strict);
        json_array_append_new(list, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    if (json_array_size(list) > 0)
        json_object_set(body, "tools", list);
    json_decref(list);
    return APR_SUCCESS;
}

static apr_status_t convert_tool_choice(dec_t *d, json_t *body)
{
    json_t *tc = json_object_get(d->req, "tool_choice");
    const char *type = llmgw_json_str(tc, "type");
    const char *name = llmgw_json_str(tc, "name");
    int has_tools = json_array_size(json_object_get(body, "tools")) > 0;
    json_t *choice;

    if (llmgw_json_is_absent(tc))
        return APR_SUCCESS;
    if (!json_is_object(tc))
        return bad(d, "tool_choice", "Input should be a valid dictionary");
    if (str_eq(type, "auto"))
        choice = json_string("auto");
    else if (str_eq(type, "any"))
        choice = json_string("required");
    else if (str_eq(type, "none"))
        choice = json_string("none");
    else if (str_eq(type, "tool")) {
        if (!name || !*name)
            return bad(d, "tool_choice.name", "Field required");
        choice = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
    }
    else {
        return bad(d, "tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'");
    }
    /* Chat refuses a tool_choice without tools: with none defined, it says nothing. */
    if (has_tools) {
        json_object_set(body, "tool_choice", choice);
        if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")) && !str_eq(type, "none"))
            json_object_set_new(body, "parallel_tool_calls", json_false());
    }
    json_decref(choice);
    return APR_SUCCESS;
}

/*
 * thinking budgets -> reasoning_effort (ingress.md 7.2, a gateway
 * convention); output_config.effort wins. Disabled and adaptive thinking
 * leave the model's default: "none" is not a value every chat model takes.
 */
static apr_status_t convert_reasoning(dec_t *d, json_t *body)
{
    json_t *th = json_object_get(d->req, "thinking");
    json_t *oc = json_object_get(d->req, "output_config");
    json_t *effort = json_object_get(oc, "effort");
    const char *type = llmgw_json_str(th, "type");
    const char *e = llmgw_json_str(oc, "effort");

    if (!llmgw_json_is_absent(th)) {
        json_t *budget = json_object_get(th, "budget_tokens");

        if (!json_is_object(th))
            return bad(d, "thinking", "Input should be a valid dictionary");
        if (str_eq(type, "enabled")) {
            json_int_t n = json_is_integer(budget) ? json_integer_value(budget) : -1;

            if (!json_is_integer(budget))
                return bad(d, "thinking.enabled.budget_tokens", "Field required");
            if (n < 1024)
                return bad(d, "thinking.enabled.budget_tokens",
                           "Input should be greater than or equal to 1024");
            json_object_set_new(body, "reasoning_effort",
                                json_string(n <= 4096    ? "low"
                                            : n <= 16384 ? "medium"
                                                         : "high"));
        }
        else if (!str_eq(type, "disabled") && !str_eq(type, "adaptive")) {
            return bad(d, "thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'");
        }
    }
    if (!llmgw_json_is_absent(oc) && !json_is_object(oc))
        return bad(d, "output_config", "Input should be a valid dictionary");
    if (llmgw_json_is_absent(effort))
        return APR_SUCCESS;
    if (!(str_eq(e, "low") || str_eq(e, "medium") || str_eq(e, "high") || str_eq(e, "xhigh") ||
          str_eq(e, "max")))
        return bad(d, "output_config.effort",
                   "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'");
    json_object_set(body, "reasoning_effort", effort);
    return APR_SUCCESS;
}

/* output_config.format (or the beta output_format) -> response_format. */
static apr_status_t convert_format(dec_t *d, json_t *body)
{
    const char *param = "output_config.format";
    json_t *f = json_object_get(json_object_get(d->req, "output_config"), "format");
    json_t *schema;

    if (llmgw_json_is_absent(f)) {
        param = "output_format";
        f = json_object_get(d->req, param);
    }
    if (llmgw_json_is_absent(f))
        return APR_SUCCESS;
    schema = json_object_get(f, "schema");
    if (!json_is_object(f) || !str_eq(llmgw_json_str(f, "type"), "json_schema"))
        return bad(d, sub(d, param, "type"), "Input should be 'json_schema'");
    if (!json_is_object(schema))
        return bad(d, sub(d, param, "schema"), "Field required");
    json_object_set_new(body, "response_format",
                        json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
                                  "name", "response", "schema", schema, "strict", 0));
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Requests: the whole request                                            */
/* ---------------------------------------------------------------------- */

static apr_status_t convert_scalars(dec_t *d, json_t *body, llmgw_ingress_request_t *out)
{
    json_t *max = json_object_get(d->req, "max_tokens");
    json_t *stream = json_object_get(d->req, "stream");
    json_t *stop = json_object_get(d->req, "stop_sequences"), *s;
    json_t *meta = json_object_get(d->req, "metadata");
    json_t *user = json_object_get(meta, "user_id");
    static const char *const numbers[] = {"temperature", "top_p", NULL};
    size_t i;

    if (!d->count) {
        if (!max)
            return bad(d, "max_tokens", "Field required");
        if (!json_is_integer(max))
            return bad(d, "max_tokens", "Input should be a valid integer");
        if (json_integer_value(max) < 0)
            return bad(d, "max_tokens", "Input should be greater than or equal to 0");
        out->max_output_tokens = (apr_int64_t)json_integer_value(max);
        /* 0 (a cache warm-up) means nothing elsewhere: check_backend refuses it. */
        if (json_integer_value(max) > 0)
            json_object_set(body, "max_completion_tokens", max);
        if (!llmgw_json_is_absent(stream) && !json_is_boolean(stream))
            return bad(d, "stream", "Input should be a valid boolean");
        out->stream = json_is_true(stream);
        if (out->stream) {
            json_object_set_new(body, "stream", json_true());
            json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
        }
    }
    for (i = 0; numbers[i]; i++) {
        json_t *v = json_object_get(d->req, numbers[i]);

        if (llmgw_json_is_absent(v))
            continue;
        if (!json_is_number(v))
            return bad(d, numbers[i], "Input should be a valid number");
        json_object_set(body, numbers[i], v);
    }
    s = json_object_get(d->req, "top_k");
    if (!llmgw_json_is_absent(s)) {
        if (!json_is_integer(s))
            return bad(d, "top_k", "Input should be a valid integer");
        json_object_set(body, "top_k", s);
    }
    if (!llmgw_json_is_absent(stop)) {
        if (!json_is_array(stop))
            return bad(d, "stop_sequences", "Input should be a valid list");
        json_array_foreach (stop, i, s) {
            if (!json_is_string(s))
                return bad(d, idx(d, "stop_sequences", i), "Input should be a valid string");
        }
        if (json_array_size(stop) > 0)
            json_object_set(body, "stop", stop);
    }
    if (!llmgw_json_is_absent(meta)) {
        if (!json_is_object(meta))
            return bad(d, "metadata", "Input should be a valid dictionary");
        if (!llmgw_json_is_absent(user) && !json_is_string(user))
            return bad(d, "metadata.user_id", "Input should be a valid string");
        if (json_is_string(user) && json_string_length(user) > 0)
            json_object_set(body, "user", user);
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_msg_decode(apr_pool_t *p, const json_t *client, int count,
                              llmgw_ingress_request_t *out, llmgw_error_t **err)
{
    dec_t d;
    json_t *body, *model;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    out->max_output_tokens = -1;
    memset(&d, 0, sizeof(d));
    d.p = p;
    d.req = client;
    d.count = count;
    d.err = err;
    if (!json_is_object(client))
        return bad(&d, NULL, "The request body must be a JSON object.");
    model = json_object_get(client, "model");
    /* No model: the route's default (DESIGN.md 5); Anthropic's SDKs always send one. */
    if (!llmgw_json_is_absent(model) && (!json_is_string(model) || json_string_length(model) == 0))
        return bad(&d, "model", "Input should be a valid string");
    body = llmgw_json_pool_own(p, json_object());
    if (json_is_string(model)) {
        out->model = apr_pstrdup(p, json_string_value(model));
        json_object_set(body, "model", model);
    }
    d.msgs = json_array();
    json_object_set(body, "messages", d.msgs);
    rv = convert_scalars(&d, body, out);
    if (rv == APR_SUCCESS)
        rv = convert_messages(&d);
    if (rv == APR_SUCCESS)
        rv = convert_tools(&d, body);
    if (rv == APR_SUCCESS)
        rv = convert_tool_choice(&d, body);
    if (rv == APR_SUCCESS)
        rv = convert_reasoning(&d, body);
    if (rv == APR_SUCCESS)
        rv = convert_format(&d, body);
    json_decref(d.msgs);
    if (rv != APR_SUCCESS)
        return rv;
    out->canonical = body;
    return APR_SUCCESS;
}

static apr_status_t messages_decode(apr_pool_t *p, const json_t *client,
                                    llmgw_ingress_request_t *out, llmgw_error_t **err)
{
    return llmgw_msg_decode(p, client, 0, out, err);
}

/* ---------------------------------------------------------------------- */
/* Translated backends: what they cannot honour (ingress.md 7.4)         */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    llmgw_backend_type_e type;
    int drop;
    apr_array_header_t *dropped;
    const char *model;
    llmgw_error_t *err; /* the first refusal */
} chk_t;

static void note_dropped(chk_t *c, const char *param)
{
    int i;

    if (!c->dropped)
        return;
    for (i = 0; i < c->dropped->nelts; i++) {
        if (str_eq(APR_ARRAY_IDX(c->dropped, i, const char *), param))
            return;
    }
    APR_ARRAY_PUSH(c->dropped, const char *) = apr_pstrdup(c->p, param);
}

/*
 * @p param cannot go to this backend. With unsupportedParams: drop a
 * droppable field is listed instead (its name is the gateway's: a fixed
 * member or an indexed path, never a key the client made up). Returns 1
 * when the scan stops (refused).
 */
static int refuse(chk_t *c, const char *param, const char *value, int droppable)
{
    const char *type = llmgw_backend_type_name(c->type);

    if (c->drop && droppable) {
        note_dropped(c, param);
        return 0;
    }
    if (value)
        c->err = llmgw_error_make(c->p, 400, "invalid_request_error", "unsupported_value", param,
                                  "%s: '%s' is not supported by model '%s' (backend type %s)",
                                  param, value, c->model, type);
    else
        c->err = llmgw_error_make(c->p, 400, "invalid_request_error", "unsupported_parameter",
                                  param, "%s: not supported by model '%s' (backend type %s)", param,
                                  c->model, type);
    return 1;
}

static const char *chk_sub(chk_t *c, const char *base, const char *member)
{
    return apr_pstrcat(c->p, base, ".", member, NULL);
}

static const char *chk_idx(chk_t *c, const char *base, size_t i)
{
    return apr_psprintf(c->p, "%s.%" APR_SIZE_T_FMT, base, i);
}

static int check_image(chk_t *c, const json_t *b, const char *param)
{
    const char *st = llmgw_json_str(json_object_get(b, "source"), "type");

    if (str_eq(st, "base64") || str_eq(st, "url"))
        return 0;
    return refuse(c, chk_sub(c, param, "source.type"), st ? st : "(none)", 1);
}

static int check_document(chk_t *c, const json_t *b, const char *param)
{
    json_t *src = json_object_get(b, "source"), *cb;
    const char *st = llmgw_json_str(src, "type");
    size_t k;

    /* Citations cannot be produced by a chat model. */
    if (json_is_true(json_object_get(json_object_get(b, "citations"), "enabled")) &&
        refuse(c, chk_sub(c, param, "citations"), NULL, 1))
        return 1;
    if (str_eq(st, "content")) {
        json_array_foreach (json_object_get(src, "content"), k, cb) {
            if (str_eq(llmgw_json_str(cb, "type"), "image") &&
                check_image(c, cb, chk_idx(c, chk_sub(c, param, "source.content"), k)))
                return 1;
        }
        return 0;
    }
    if (str_eq(st, "base64") || str_eq(st, "text"))
        return 0;
    /* url PDFs (the gateway does not fetch) and file ids */
    return refuse(c, chk_sub(c, param, "source.type"), st ? st : "(none)", 1);
}

enum { IN_USER, IN_ASSISTANT, IN_TOOL_RESULT };

static int check_blocks(chk_t *c, const json_t *content, const char *param, int where)
{
    json_t *b;
    size_t j;

    json_array_foreach (content, j, b) {
        const char *bparam = chk_idx(c, param, j);
        const char *type = llmgw_json_str(b, "type");
        int ok;

        if (where == IN_ASSISTANT)
            ok = str_eq(type, "text") || str_eq(type, "tool_use") || str_eq(type, "thinking") ||
                 str_eq(type, "redacted_thinking");
        else
            ok = str_eq(type, "text") || str_eq(type, "image") || str_eq(type, "document") ||
                 (where == IN_USER && str_eq(type, "tool_result"));
        /* server tool blocks, search_result, and kinds added later */
        if (!ok) {
            if (refuse(c, chk_sub(c, bparam, "type"), type ? type : "(none)", 1))
                return 1;
            continue;
        }
        if ((str_eq(type, "image") && check_image(c, b, bparam)) ||
            (str_eq(type, "document") && check_document(c, b, bparam)))
            return 1;
        if (str_eq(type, "tool_result") &&
            check_blocks(c, json_object_get(b, "content"), chk_sub(c, bparam, "content"),
                         IN_TOOL_RESULT))
            return 1;
    }
    return 0;
}

/* Does this assistant turn reach the canonical form (text or a tool call)? */
static int assistant_has_content(const json_t *content)
{
    json_t *b;
    size_t j;

    if (json_is_string(content))
        return json_string_length(content) > 0;
    json_array_foreach (content, j, b) {
        const char *type = llmgw_json_str(b, "type");
        if (str_eq(type, "tool_use") ||
            (str_eq(type, "text") && json_string_length(json_object_get(b, "text")) > 0))
            return 1;
    }
    return 0;
}

/* Backends that continue a trailing assistant turn (ingress.md 7.3 step 4). */
static int has_prefill(llmgw_backend_type_e type)
{
    return type == LLMGW_BACKEND_MISTRAL || type == LLMGW_BACKEND_GOOGLE;
}

static int check_messages(chk_t *c, const json_t *msgs)
{
    json_t *m, *last;
    size_t i, n = json_array_size(msgs);

    json_array_foreach (msgs, i, m) {
        const char *role = llmgw_json_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (json_is_array(content) &&
            check_blocks(c, content, chk_sub(c, chk_idx(c, "messages", i), "content"),
                         str_eq(role, "assistant") ? IN_ASSISTANT : IN_USER))
            return 1;
    }
    last = n ? json_array_get(msgs, n - 1) : NULL;
    if (!str_eq(llmgw_json_str(last, "role"), "assistant") ||
        !assistant_has_content(json_object_get(last, "content")) || has_prefill(c->type))
        return 0;
    if (c->drop) {
        note_dropped(c, "messages");
        return 0;
    }
    c->err = llmgw_error_make(c->p, 400, "invalid_request_error", "unsupported_value", "messages",
                              "messages: assistant prefill is not supported by this backend "
                              "(model '%s', backend type %s)",
                              c->model, llmgw_backend_type_name(c->type));
    return 1;
}

static int check_tools(chk_t *c, const json_t *tools)
{
    static const char *const refused[] = {"input_examples", "defer_loading", "allowed_callers",
                                          NULL};
    json_t *t;
    size_t i;
    int k;

    json_array_foreach (tools, i, t) {
        const char *param = chk_idx(c, "tools", i);
        const char *type = llmgw_json_str(t, "type");

        if (type && !str_eq(type, "custom")) {
            if (refuse(c, chk_sub(c, param, "type"), type, 1))
                return 1;
            continue;
        }
        for (k = 0; refused[k]; k++) {
            if (!llmgw_json_is_absent(json_object_get(t, refused[k])) &&
                refuse(c, chk_sub(c, param, refused[k]), NULL, 1))
                return 1;
        }
    }
    return 0;
}

/* Beta fields the gateway knows by name (so they may be listed as dropped). */
static int known_beta(const char *key)
{
    return str_eq(key, "container") || str_eq(key, "mcp_servers") ||
           str_eq(key, "context_management") || str_eq(key, "speed");
}

/* Members that translate (or are checked deeper), or are hints dropped silently. */
static int translated_key(const char *key)
{
    static const char *const keys[] = {"model",          "messages",     "system",
                                       "metadata",       "stream",       "temperature",
                                       "top_p",          "tool_choice",  "thinking",
                                       "output_format",  "max_tokens",   "top_k",
                                       "stop_sequences", "tools",        "output_config",
                                       "cache_control",  "service_tier", NULL};
    int i;

    for (i = 0; keys[i]; i++) {
        if (str_eq(keys[i], key))
            return 1;
    }
    return 0;
}

static int check_member(chk_t *c, const char *key, const json_t *v)
{
    const char *k;
    json_t *x;

    if (str_eq(key, "max_tokens"))
        return json_is_integer(v) && json_integer_value(v) == 0 && refuse(c, "max_tokens", "0", 1);
    if (str_eq(key, "top_k"))
        return !llmgw_json_is_absent(v) && c->type != LLMGW_BACKEND_GOOGLE &&
               c->type != LLMGW_BACKEND_META && refuse(c, "top_k", NULL, 1);
    if (str_eq(key, "stop_sequences")) {
        if (json_array_size(v) <= 4 ||
            (c->type != LLMGW_BACKEND_OPENAI && c->type != LLMGW_BACKEND_AZURE_OPENAI))
            return 0;
        if (refuse(c, "stop_sequences", NULL, 1)) {
            c->err->code = "unsupported_value";
            c->err->message = apr_psprintf(
                c->p,
                "stop_sequences: %" APR_SIZE_T_FMT " given, but model '%s' (backend type %s) "
                "takes at most 4",
                json_array_size(v), c->model, llmgw_backend_type_name(c->type));
        }
        return c->err != NULL;
    }
    if (str_eq(key, "tools"))
        return check_tools(c, v);
    if (str_eq(key, "messages"))
        return check_messages(c, v);
    if (str_eq(key, "output_config")) {
        json_object_foreach ((json_t *)v, k, x) {
            if (!str_eq(k, "effort") && !str_eq(k, "format") &&
                refuse(c, apr_pstrcat(c->p, "output_config.", k, NULL), NULL, 0))
                return 1;
        }
        return 0;
    }
    if (translated_key(key))
        return 0;
    /* inference_geo is a data-residency guarantee: never dropped. Unknown
     * members are refused too (Anthropic refuses what it does not know, and
     * a name the client made up never goes into a response header). */
    return refuse(c, key, NULL, known_beta(key));
}

llmgw_error_t *llmgw_msg_check_backend(apr_pool_t *p, const json_t *client,
                                       llmgw_backend_type_e type, int drop,
                                       apr_array_header_t *dropped)
{
    chk_t c;
    const char *key;
    json_t *v;

    if (type == LLMGW_BACKEND_ANTHROPIC || !json_is_object(client))
        return NULL;
    memset(&c, 0, sizeof(c));
    c.p = p;
    c.type = type;
    c.drop = drop;
    c.dropped = dropped;
    c.model = llmgw_json_str(client, "model");
    if (!c.model)
        c.model = "";
    json_object_foreach ((json_t *)client, key, v) {
        if (check_member(&c, key, v))
            return c.err;
    }
    return NULL;
}

static llmgw_error_t *messages_check_backend(apr_pool_t *p, const json_t *client,
                                             llmgw_backend_type_e type, int drop,
                                             apr_array_header_t *dropped)
{
    return llmgw_msg_check_backend(p, client, type, drop, dropped);
}

static int was_dropped(const apr_array_header_t *dropped, const char *param)
{
    int i;

    for (i = 0; dropped && i < dropped->nelts; i++) {
        if (str_eq(APR_ARRAY_IDX(dropped, i, const char *), param))
            return 1;
    }
    return 0;
}

/* The canonical fields behind dropped members: top_k, stop, the prefill turn. */
static const json_t *messages_drop_fields(apr_pool_t *p, const json_t *canonical,
                                          const apr_array_header_t *dropped)
{
    json_t *copy, *msgs;
    size_t n;

    if (!was_dropped(dropped, "top_k") && !was_dropped(dropped, "stop_sequences") &&
        !was_dropped(dropped, "messages"))
        return canonical;
    copy = llmgw_json_pool_own(p, json_copy((json_t *)canonical));
    if (!copy)
        return NULL;
    if (was_dropped(dropped, "top_k"))
        json_object_del(copy, "top_k");
    if (was_dropped(dropped, "stop_sequences"))
        json_object_del(copy, "stop");
    msgs = json_object_get(copy, "messages");
    n = json_array_size(msgs);
    if (was_dropped(dropped, "messages") && n > 0 &&
        str_eq(llmgw_json_str(json_array_get(msgs, n - 1), "role"), "assistant")) {
        msgs = json_copy(msgs);
        json_array_remove(msgs, n - 1);
        json_object_set_new(copy, "messages", msgs);
    }
    return copy;
}

const llmgw_ingress_t llmgw_ingress_messages = {
    .dialect = LLMGW_DIALECT_MESSAGES,
    .name = "messages",
    .native_types = 1u << LLMGW_BACKEND_ANTHROPIC,
    .decode = messages_decode,
    .check_backend = messages_check_backend,
    .encode_response = llmgw_msg_encode_response,
    .error_json = llmgw_msg_error_json,
    .error_event = llmgw_msg_error_event,
    .stream_init = llmgw_msg_stream_init,
    .stream_chunk = llmgw_msg_stream_chunk,
    .stream_end = llmgw_msg_stream_end,
    .native_request = llmgw_msg_native_request,
    .native_observe = llmgw_msg_native_observe,
    .native_event = llmgw_msg_native_event,
    .native_error = llmgw_msg_native_error,
    .drop_fields = messages_drop_fields,
};
