/**
 * @file llmgw_buf.h
 * @brief A growable, NUL-terminated byte buffer on the heap.
 *
 * For what grows per token or per frame for as long as a request lives: the
 * text of a streamed answer, frames held back from the client. Such a buffer
 * must not come from the request pool, because a pool only grows: every
 * doubling would leave the old copy behind until the request ends, and a
 * stream can run for minutes. So the bytes live on the heap (realloc), and
 * the owner frees them, usually from a cleanup of the pool that holds the
 * llmgw_buf_t itself.
 *
 * The contents are always NUL-terminated once anything was added, so text
 * can be handed to jansson or strchr as is; the terminator is not counted
 * in len. Binary records may be stored too (the start of data is aligned
 * as malloc aligns).
 *
 * A zeroed struct (LLMGW_BUF_INIT, `= {0}`, apr_pcalloc) is an empty buffer;
 * nothing is allocated until the first add. One thread at a time.
 *
 * llmgw_json_buf_t (llmgw_json.h) is a different trade-off and does not sit
 * on this one: see the comment there.
 */
#ifndef LLMGW_BUF_H
#define LLMGW_BUF_H

#include "llmgw.h"

/** A heap buffer; read data and len directly, change them only through the functions below. */
typedef struct {
    char *data;     /**< NULL until the first add; then NUL-terminated, malloc'd */
    apr_size_t len; /**< bytes held, without the terminator */
    apr_size_t cap; /**< bytes allocated */
} llmgw_buf_t;

/** An empty buffer, for initialisers. */
#define LLMGW_BUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/**
 * Append @p n bytes of @p data (which must not point into @p b).
 * @return APR_SUCCESS, or APR_ENOMEM when memory runs out or the size would
 *         overflow; @p b then holds what it held before.
 */
apr_status_t llmgw_buf_add(llmgw_buf_t *b, const void *data, apr_size_t n);

/** The contents as a string: "" (static) when nothing was added yet. Borrowed from @p b. */
const char *llmgw_buf_text(const llmgw_buf_t *b);

/** Empty @p b but keep its memory for reuse. */
void llmgw_buf_reset(llmgw_buf_t *b);

/** Release @p b's memory; it is an empty buffer again afterwards (safe to call twice). */
void llmgw_buf_free(llmgw_buf_t *b);

#endif /* LLMGW_BUF_H */
