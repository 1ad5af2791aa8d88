/*
 * SSE parser: the input is an upstream byte stream. It is parsed three
 * times, whole, cut in two where the first byte says, and one byte at a
 * time; the header promises that any split gives the same events and the
 * same outcome, so the three runs must agree. A fourth run, whole, with a
 * bound small enough to be hit often, must give a prefix of those events,
 * and all of them when it does not fail with APR_ENOSPC. Every event must
 * respect its bound and be NUL-terminated where the header says so.
 *
 * The first byte picks the cut (its low seven bits, as a fraction of the
 * input) and, when its high bit is set, an event after which the callback
 * fails, to check that the failure stops the feed and sticks.
 */
#include <string.h>
#include <apr_tables.h>
#include "fuzz.h"
#include "llmgw_sse.h"

#define FUZZ_MAX_EVENT 4096
#define FUZZ_SMALL_EVENT 100
#define FUZZ_CALLBACK_FAILURE APR_EGENERAL

typedef struct {
    uint64_t hash; /* FNV-1a over every event's fields and their lengths */
    unsigned events;
    unsigned fail_at;        /* 1-based event whose callback fails; 0 = none */
    apr_size_t max_event;    /* the parser's bound */
    apr_array_header_t *seq; /* uint64_t: the hash after each event */
} record_t;

static void hash_bytes(record_t *r, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    size_t i;

    for (i = 0; i < n; i++) {
        r->hash ^= b[i];
        r->hash *= 0x100000001b3ULL;
    }
}

static void hash_field(record_t *r, const char *s, size_t n)
{
    hash_bytes(r, &n, sizeof(n));
    hash_bytes(r, s, n);
}

static apr_status_t on_event(void *baton, const llmgw_sse_event_t *ev)
{
    record_t *r = baton;

    FUZZ_CHECK(r->fail_at == 0 || r->events < r->fail_at);
    FUZZ_CHECK(ev->data != NULL && ev->event != NULL && ev->id != NULL);
    FUZZ_CHECK(ev->data_len + ev->event_len + strlen(ev->id) <= r->max_event);
    FUZZ_CHECK(ev->data[ev->data_len] == '\0');
    FUZZ_CHECK(ev->event[ev->event_len] == '\0');
    hash_field(r, ev->event, ev->event_len);
    hash_field(r, ev->data, ev->data_len);
    hash_field(r, ev->id, strlen(ev->id));
    r->events++;
    APR_ARRAY_PUSH(r->seq, uint64_t) = r->hash;
    return r->events == r->fail_at ? FUZZ_CALLBACK_FAILURE : APR_SUCCESS;
}

typedef struct {
    record_t rec;
    apr_status_t fed;      /* the last feed's status */
    apr_status_t finished; /* llmgw_sse_parser_finish */
} outcome_t;

/*
 * Parse @p data with a bound of @p max_event, fed in pieces of at most
 * @p piece bytes, the first one @p first bytes long.
 */
static outcome_t run(apr_pool_t *p, const uint8_t *data, size_t size, apr_size_t max_event,
                     size_t first, size_t piece, unsigned fail_at)
{
    outcome_t o = {{0xcbf29ce484222325ULL, 0, fail_at, max_event, NULL}, APR_SUCCESS, APR_SUCCESS};
    llmgw_sse_parser_t *sp;
    size_t off = 0, n = first;

    o.rec.seq = apr_array_make(p, 16, sizeof(uint64_t));
    FUZZ_CHECK(llmgw_sse_parser_create(&sp, p, max_event, on_event, &o.rec) == APR_SUCCESS);
    while (off < size) {
        if (n > size - off)
            n = size - off;
        o.fed = llmgw_sse_parser_feed(sp, (const char *)data + off, n);
        off += n;
        n = piece;
    }
    o.finished = llmgw_sse_parser_finish(sp);
    /* A stopped feed sticks until finish; finish resets the parser for reuse. */
    if (o.fed != APR_SUCCESS)
        FUZZ_CHECK(o.finished == o.fed);
    FUZZ_CHECK(llmgw_sse_parser_feed(sp, "data: x\n", 8) == APR_SUCCESS);
    return o;
}

static void check_same(const outcome_t *a, const outcome_t *b)
{
    FUZZ_CHECK(a->rec.events == b->rec.events);
    FUZZ_CHECK(a->rec.hash == b->rec.hash);
    FUZZ_CHECK(a->fed == b->fed);
    FUZZ_CHECK(a->finished == b->finished);
}

/* The run with the smaller bound stops at the first event too big for it, and only there. */
static void check_prefix(const outcome_t *small, const outcome_t *big)
{
    if (small->fed != APR_ENOSPC) {
        check_same(small, big);
        return;
    }
    FUZZ_CHECK(small->finished == APR_ENOSPC);
    FUZZ_CHECK(small->rec.events <= big->rec.events);
    if (small->rec.events > 0)
        FUZZ_CHECK(APR_ARRAY_IDX(small->rec.seq, small->rec.events - 1, uint64_t) ==
                   APR_ARRAY_IDX(big->rec.seq, small->rec.events - 1, uint64_t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    unsigned ctl = size ? data[0] : 0;
    size_t cut = ((ctl & 0x7f) * size) / 128;
    unsigned fail_at = (ctl & 0x80) ? (ctl & 0x0f) + 1 : 0;
    outcome_t whole, split, bytes, small;

    whole = run(p, data, size, FUZZ_MAX_EVENT, size, size, fail_at);
    split = run(p, data, size, FUZZ_MAX_EVENT, cut, size, fail_at);
    bytes = run(p, data, size, FUZZ_MAX_EVENT, 1, 1, fail_at);
    small = run(p, data, size, FUZZ_SMALL_EVENT, size, size, fail_at);
    check_same(&whole, &split);
    check_same(&whole, &bytes);
    check_prefix(&small, &whole);
    FUZZ_CHECK(whole.fed == APR_SUCCESS || whole.fed == APR_ENOSPC ||
               whole.fed == FUZZ_CALLBACK_FAILURE);
    if (whole.rec.events == fail_at && fail_at)
        FUZZ_CHECK(whole.finished == FUZZ_CALLBACK_FAILURE);
    apr_pool_destroy(p);
    return 0;
}
