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

const char *llmgw_json_dump(apr_pool_t *p, const json_t *j, apr_size_t *len)
{
    /* Sizing pass first, so the text lands in one exact pool allocation. */
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    char *buf;

    if (n == 0) {
        if (len)
            *len = 0;
        return NULL;
    }
    buf = apr_palloc(p, n + 1);
    n = json_dumpb(j, buf, n, JSON_COMPACT);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
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
