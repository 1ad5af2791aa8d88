/* jansson helpers tied to APR pools. */
#include <stdlib.h>
#include <string.h>
#include "llmgw_json.h"

static apr_status_t json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *llmgw_json_pool_own(apr_pool_t *p, json_t *j)
{
    if (j)
        apr_pool_cleanup_register(p, j, json_cleanup, apr_pool_cleanup_null);
    return j;
}

void llmgw_json_buf_init(llmgw_json_buf_t *b)
{
    b->data = b->inline_data;
    b->len = 0;
    b->cap = sizeof(b->inline_data);
    b->failed = 0;
}

apr_status_t llmgw_json_buf_add(llmgw_json_buf_t *b, const char *data, apr_size_t n)
{
    if (b->failed)
        return APR_ENOMEM;
    if (n > b->cap - b->len) {
        apr_size_t cap = b->cap * 2;
        char *grown;

        while (cap - b->len < n) {
            if (cap > ((apr_size_t)-1) / 2) {
                b->failed = 1;
                return APR_ENOMEM;
            }
            cap *= 2;
        }
        grown = b->data == b->inline_data ? malloc(cap) : realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return APR_ENOMEM;
        }
        if (b->data == b->inline_data)
            memcpy(grown, b->inline_data, b->len);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return APR_SUCCESS;
}

/* jansson hands over one token at a time, often a single byte: that stays here. */
static int buf_dump_cb(const char *data, size_t n, void *baton)
{
    llmgw_json_buf_t *b = baton;

    if (n == 1 && b->len < b->cap && !b->failed) {
        b->data[b->len++] = *data;
        return 0;
    }
    return llmgw_json_buf_add(b, data, n) == APR_SUCCESS ? 0 : -1;
}

apr_status_t llmgw_json_buf_dump(llmgw_json_buf_t *b, const json_t *j)
{
    apr_size_t at = b->len;

    if (j && json_dump_callback(j, buf_dump_cb, b, JSON_COMPACT) == 0)
        return APR_SUCCESS;
    if (b->failed)
        return APR_ENOMEM;
    b->len = at;
    return APR_EINVAL;
}

/* jansson's serialisation of @p v, whatever its type; failures poison @p b. */
static apr_status_t buf_dump_any(llmgw_json_buf_t *b, const json_t *v)
{
    if (json_dump_callback(v, buf_dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
        return APR_SUCCESS;
    b->failed = 1;
    return APR_EINVAL;
}

/* Bytes jansson writes into a string as they are, needing no check either:
 * printable ASCII other than the quote and the backslash. */
static int plain_ascii(const char *s, apr_size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] > 0x7e || u[i] == '"' || u[i] == '\\')
            return 0;
    }
    return 1;
}

static apr_status_t buf_quoted(llmgw_json_buf_t *b, const char *s, apr_size_t n)
{
    llmgw_json_buf_lit(b, "\"");
    llmgw_json_buf_add(b, s, n);
    return llmgw_json_buf_lit(b, "\"");
}

apr_status_t llmgw_json_buf_strn(llmgw_json_buf_t *b, const char *s, apr_size_t n)
{
    json_t *j;
    apr_status_t rv;

    if (plain_ascii(s, n))
        return buf_quoted(b, s, n);
    if (!(j = json_stringn(s, n))) {
        b->failed = 1;
        return APR_EINVAL;
    }
    rv = buf_dump_any(b, j);
    json_decref(j);
    return rv;
}

apr_status_t llmgw_json_buf_str(llmgw_json_buf_t *b, const char *s)
{
    if (!s) {
        b->failed = 1; /* as json_pack refuses a NULL "s" */
        return APR_EINVAL;
    }
    return llmgw_json_buf_strn(b, s, strlen(s));
}

apr_status_t llmgw_json_buf_int(llmgw_json_buf_t *b, apr_int64_t v)
{
    char digits[24];
    char *at = digits + sizeof(digits);
    apr_uint64_t u = v < 0 ? 0 - (apr_uint64_t)v : (apr_uint64_t)v;

    do {
        *--at = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--at = '-';
    return llmgw_json_buf_add(b, at, (apr_size_t)(digits + sizeof(digits) - at));
}

apr_status_t llmgw_json_buf_value(llmgw_json_buf_t *b, const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_NULL:
        return llmgw_json_buf_lit(b, "null");
    case JSON_TRUE:
        return llmgw_json_buf_lit(b, "true");
    case JSON_FALSE:
        return llmgw_json_buf_lit(b, "false");
    case JSON_INTEGER:
        return llmgw_json_buf_int(b, json_integer_value(v));
    case JSON_STRING:
        if (plain_ascii(json_string_value(v), json_string_length(v)))
            return buf_quoted(b, json_string_value(v), json_string_length(v));
        return buf_dump_any(b, v);
    default:
        return buf_dump_any(b, v);
    }
}

void llmgw_json_buf_free(llmgw_json_buf_t *b)
{
    if (b->data != b->inline_data)
        free(b->data);
    llmgw_json_buf_init(b);
}

const char *llmgw_json_dump(apr_pool_t *p, const json_t *j, apr_size_t *len)
{
    llmgw_json_buf_t b;
    char *text = NULL;

    llmgw_json_buf_init(&b);
    if (llmgw_json_buf_dump(&b, j) == APR_SUCCESS && b.len > 0) {
        text = apr_palloc(p, b.len + 1);
        memcpy(text, b.data, b.len);
        text[b.len] = '\0';
    }
    if (len)
        *len = text ? b.len : 0;
    llmgw_json_buf_free(&b);
    return text;
}

const char *llmgw_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int llmgw_json_is_absent(const json_t *v)
{
    return !v || json_is_null(v);
}

int llmgw_json_verbatim_ok(const char *text, apr_size_t len)
{
    /* Everything else jansson accepts is strict JSON; a NUL can never be
     * valid outside a string (where JSON_ALLOW_NUL reads the escaped form). */
    return len == 0 || memchr(text, '\0', len) == NULL;
}
