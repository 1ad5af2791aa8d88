/*
 * A growable, NUL-terminated heap buffer (include/llmgw_buf.h): why it is
 * on the heap and not in a pool is explained there.
 */
#include <stdlib.h>
#include <string.h>
#include "llmgw_buf.h"

/*
 * The first allocation. Small enough that a short answer wastes little,
 * and doubling from it reaches any size in a handful of reallocs.
 */
#define BUF_FIRST_CAP 256

apr_status_t llmgw_buf_add(llmgw_buf_t *b, const void *data, apr_size_t n)
{
    /* room for the terminator too; compared so that no sum can wrap */
    if (n >= b->cap - b->len) {
        apr_size_t cap = b->cap ? b->cap : BUF_FIRST_CAP;
        char *grown;

        if (n >= ((apr_size_t)-1) - b->len)
            return APR_ENOMEM;
        while (cap - b->len <= n) {
            if (cap > ((apr_size_t)-1) / 2)
                return APR_ENOMEM;
            cap *= 2;
        }
        grown = realloc(b->data, cap);
        if (!grown)
            return APR_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return APR_SUCCESS;
}

const char *llmgw_buf_text(const llmgw_buf_t *b)
{
    return b->data ? b->data : "";
}

void llmgw_buf_reset(llmgw_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void llmgw_buf_free(llmgw_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
