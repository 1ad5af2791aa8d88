/*
 * Incremental Server-Sent Events parser: the event-stream grammar of the
 * HTML standard's server-sent events chapter, with the deviations
 * llmgw_sse.h documents (id is per event; finish dispatches a last event
 * whose closing blank line is missing).
 *
 * Memory: one buffer per parser, allocated from the parser's pool, grown by
 * doubling up to max_event + 1 bytes and then reused for every event, so a
 * long stream costs no allocation per event. It holds the pending event from
 * both ends:
 *
 *   0           data_len      + line_len        cap - back_len          cap
 *   | data lines | current line |   ...free...   | value\0 ... value\0 |
 *   (joined by "\n")                             <- event:/id: values, newest first
 *
 * The front is the event's data followed by the line being read. A complete
 * `data:` line is moved down onto the end of the data (it starts there, so
 * the move is in place). `event:` and `id:` values are appended at the back;
 * a repeated field leaves its old value behind as dead space, so every line
 * of an event counts against max_event, as the header promises. Back values
 * are addressed by their distance from the end, which survives growth.
 *
 * Not thread-safe; one parser per stream. The callback must not feed the
 * parser that called it.
 */
#include <string.h>
#include "llmgw_sse.h"

/* Smallest buffer, sized for typical provider events. */
#define SSE_INITIAL_SIZE 1024

struct llmgw_sse_parser_t {
    apr_pool_t *pool;
    llmgw_sse_event_fn fn;
    void *baton;
    apr_size_t max_event; /* bound on data_len + line_len + back_len */
    char *buf;
    apr_size_t cap;        /* allocated bytes; at most max_event + 1 */
    apr_size_t data_len;   /* joined data at buf[0..] */
    apr_size_t line_len;   /* pending line at buf[data_len..] */
    apr_size_t back_len;   /* values packed at the end of buf */
    apr_size_t event_rpos; /* event value at buf + cap - event_rpos; 0 = none */
    apr_size_t event_len;
    apr_size_t id_rpos;  /* id value (NUL-terminated) at buf + cap - id_rpos; 0 = none */
    int data_seen;       /* a data line arrived: the event will be dispatched */
    int cr_pending;      /* the last feed ended in CR: a leading LF closes nothing */
    int first_line;      /* a UTF-8 BOM may still open the stream */
    apr_status_t status; /* sticky failure: feed and finish repeat it until reset */
};

static void event_clear(llmgw_sse_parser_t *sp)
{
    sp->data_len = 0;
    sp->back_len = 0;
    sp->event_rpos = 0;
    sp->event_len = 0;
    sp->id_rpos = 0;
    sp->data_seen = 0;
}

void llmgw_sse_parser_reset(llmgw_sse_parser_t *sp)
{
    event_clear(sp);
    sp->line_len = 0;
    sp->cr_pending = 0;
    sp->first_line = 1;
    sp->status = APR_SUCCESS;
}

apr_status_t llmgw_sse_parser_create(llmgw_sse_parser_t **out, apr_pool_t *p, apr_size_t max_event,
                                     llmgw_sse_event_fn fn, void *baton)
{
    llmgw_sse_parser_t *sp;

    if (!out || !p || !fn || max_event == 0 || max_event == (apr_size_t)-1)
        return APR_EINVAL;
    sp = apr_pcalloc(p, sizeof(*sp));
    sp->pool = p;
    sp->fn = fn;
    sp->baton = baton;
    sp->max_event = max_event;
    sp->cap = (max_event < SSE_INITIAL_SIZE ? max_event : SSE_INITIAL_SIZE) + 1;
    sp->buf = apr_palloc(p, sp->cap);
    llmgw_sse_parser_reset(sp);
    *out = sp;
    return APR_SUCCESS;
}

/*
 * Make room for @p extra more bytes of the current line, keeping one byte
 * for the NUL that ends the data at dispatch. Old buffers stay in the pool
 * until it dies; doubling bounds them to about max_event in total.
 */
static apr_status_t ensure_room(llmgw_sse_parser_t *sp, apr_size_t extra)
{
    apr_size_t used = sp->data_len + sp->line_len + sp->back_len;
    apr_size_t need, cap;
    char *buf;

    if (extra > sp->max_event - used)
        return APR_ENOSPC;
    need = used + extra + 1;
    if (need <= sp->cap)
        return APR_SUCCESS;
    cap = sp->cap;
    while (cap < need)
        cap = cap > (sp->max_event + 1) / 2 ? sp->max_event + 1 : cap * 2;
    buf = apr_palloc(sp->pool, cap);
    memcpy(buf, sp->buf, sp->data_len + sp->line_len);
    memcpy(buf + cap - sp->back_len, sp->buf + sp->cap - sp->back_len, sp->back_len);
    sp->buf = buf;
    sp->cap = cap;
    return APR_SUCCESS;
}

static apr_status_t line_append(llmgw_sse_parser_t *sp, const char *bytes, apr_size_t n)
{
    apr_status_t rv;

    if (n == 0)
        return APR_SUCCESS;
    rv = ensure_room(sp, n);
    if (rv != APR_SUCCESS)
        return rv;
    memcpy(sp->buf + sp->data_len + sp->line_len, bytes, n);
    sp->line_len += n;
    return APR_SUCCESS;
}

/*
 * Copy a value to the back of the buffer, NUL-terminated, and return its
 * distance from the end. The value lives in the current line, which is at
 * least one byte longer (its field name), so it always fits; the regions
 * may overlap, hence memmove.
 */
static apr_size_t back_push(llmgw_sse_parser_t *sp, const char *value, apr_size_t len)
{
    char *dst;

    sp->back_len += len + 1;
    dst = sp->buf + sp->cap - sp->back_len;
    memmove(dst, value, len);
    dst[len] = '\0';
    return sp->back_len;
}

static apr_status_t dispatch(llmgw_sse_parser_t *sp)
{
    llmgw_sse_event_t ev;
    apr_status_t rv;

    /* Blocks without data (event-only, id-only) are dropped, as in HTML. */
    if (!sp->data_seen) {
        event_clear(sp);
        return APR_SUCCESS;
    }
    sp->buf[sp->data_len] = '\0';
    ev.data = sp->buf;
    ev.data_len = sp->data_len;
    ev.event = sp->event_rpos ? sp->buf + sp->cap - sp->event_rpos : "";
    ev.event_len = sp->event_rpos ? sp->event_len : 0;
    ev.id = sp->id_rpos ? sp->buf + sp->cap - sp->id_rpos : "";
    rv = sp->fn(sp->baton, &ev);
    event_clear(sp);
    return rv;
}

static void field_data(llmgw_sse_parser_t *sp, const char *value, apr_size_t len)
{
    /* The line starts at buf + data_len, so this only ever moves bytes down. */
    if (sp->data_seen)
        sp->buf[sp->data_len++] = '\n';
    memmove(sp->buf + sp->data_len, value, len);
    sp->data_len += len;
    sp->data_seen = 1;
}

/* One complete line, at buf + data_len; consumes it. */
static apr_status_t process_line(llmgw_sse_parser_t *sp)
{
    const char *line = sp->buf + sp->data_len, *colon, *value;
    apr_size_t len = sp->line_len, name_len, value_len;

    sp->line_len = 0;
    if (sp->first_line) {
        sp->first_line = 0;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            len -= 3;
        }
    }
    if (len == 0)
        return dispatch(sp);
    if (line[0] == ':')
        return APR_SUCCESS;
    colon = memchr(line, ':', len);
    name_len = colon ? (apr_size_t)(colon - line) : len;
    value = colon ? colon + 1 : line + len;
    value_len = len - (apr_size_t)(value - line);
    if (value_len > 0 && *value == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        field_data(sp, value, value_len);
    }
    else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        sp->event_rpos = back_push(sp, value, value_len);
        sp->event_len = value_len;
    }
    else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        /* HTML ignores ids containing NUL; ours are NUL-terminated anyway. */
        if (!memchr(value, '\0', value_len))
            sp->id_rpos = back_push(sp, value, value_len);
    }
    /* "retry" and unknown fields are ignored. */
    return APR_SUCCESS;
}

static const char *find_eol(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (*s == '\n' || *s == '\r')
            return s;
    }
    return NULL;
}

static apr_status_t feed(llmgw_sse_parser_t *sp, const char *data, apr_size_t len)
{
    const char *end = data + len, *eol;
    apr_status_t rv;

    if (sp->cr_pending && len > 0) {
        sp->cr_pending = 0;
        if (*data == '\n')
            data++;
    }
    while (data < end) {
        eol = find_eol(data, end);
        rv = line_append(sp, data, (apr_size_t)((eol ? eol : end) - data));
        if (rv != APR_SUCCESS || !eol)
            return rv;
        data = eol + 1;
        if (*eol == '\r') {
            if (data == end)
                sp->cr_pending = 1;
            else if (*data == '\n')
                data++;
        }
        rv = process_line(sp);
        if (rv != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_sse_parser_feed(llmgw_sse_parser_t *sp, const char *data, apr_size_t len)
{
    if (sp->status == APR_SUCCESS)
        sp->status = feed(sp, data, len);
    return sp->status;
}

/* Ends the stream: whatever the outcome, the parser is left reset for reuse. */
apr_status_t llmgw_sse_parser_finish(llmgw_sse_parser_t *sp)
{
    apr_status_t rv = sp->status;

    if (rv == APR_SUCCESS) {
        /* A cut inside a line may have split a data value: drop the whole event. */
        if (sp->line_len > 0)
            rv = APR_INCOMPLETE;
        else
            rv = dispatch(sp);
    }
    llmgw_sse_parser_reset(sp);
    return rv;
}
