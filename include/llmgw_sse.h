/**
 * @file llmgw_sse.h
 * @brief Incremental Server-Sent Events parser.
 *
 * Bytes arrive from libcurl in arbitrary pieces; the parser accepts any
 * split, down to one byte at a time. It handles LF, CRLF and CR line ends,
 * `:` comments, `event:`, `id:`, multi-line `data:` (joined with "\n") and
 * dispatches an event on each blank line, through a callback, without
 * allocating per event: the event's strings point into the parser's buffer
 * and are valid only during the callback.
 *
 * Events with no data lines are not dispatched (as in the HTML spec).
 * An event larger than the parser's bound fails the feed with APR_ENOSPC.
 */
#ifndef LLMGW_SSE_H
#define LLMGW_SSE_H

#include "llmgw.h"

typedef struct {
    const char *event; /**< value of `event:`, "" when none ("message") */
    apr_size_t event_len;
    const char *data; /**< data lines joined by "\n", NUL-terminated */
    apr_size_t data_len;
    const char *id; /**< last `id:` of this event, "" when none */
} llmgw_sse_event_t;

/** Called once per event; a non-success return stops the feed and is returned by it. */
typedef apr_status_t (*llmgw_sse_event_fn)(void *baton, const llmgw_sse_event_t *ev);

typedef struct llmgw_sse_parser_t llmgw_sse_parser_t;

/**
 * @param max_event largest event (all its lines) accepted, e.g. 4 MiB
 * The parser's buffer grows from @p p up to @p max_event and is then reused.
 */
apr_status_t llmgw_sse_parser_create(llmgw_sse_parser_t **out, apr_pool_t *p, apr_size_t max_event,
                                     llmgw_sse_event_fn fn, void *baton);

/** Feed bytes. Returns APR_SUCCESS, APR_ENOSPC, or the callback's failure. */
apr_status_t llmgw_sse_parser_feed(llmgw_sse_parser_t *sp, const char *data, apr_size_t len);

/**
 * End of input. An event whose last line was complete but that lacks the
 * closing blank line is dispatched (servers that close right after the last
 * `data:` line); an unterminated partial line is discarded and
 * APR_INCOMPLETE is returned.
 */
apr_status_t llmgw_sse_parser_finish(llmgw_sse_parser_t *sp);

/** Reset to the initial state (for reuse across attempts). */
void llmgw_sse_parser_reset(llmgw_sse_parser_t *sp);

#endif /* LLMGW_SSE_H */
