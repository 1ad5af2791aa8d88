/*
 * Shared per-backend statistics: segment layout, slot assignment, lock-free
 * recording, the cooldown state machine, and the snapshot renderers (JSON,
 * Prometheus text, HTML). The layout diagram is in include/llmgw_stats.h.
 *
 * Nothing here allocates on the request path; recording functions touch
 * only the slot with apr_atomic_*. The snapshot and renderers allocate
 * from the caller's pool (the status request's).
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <jansson.h>
#include "llmgw_stats.h"
#include "llmgw_json.h"

/*
 * APR's 64-bit atomics fall back to a process-local mutex where the CPU has
 * no lock-free 8-byte operations; on shared memory that would silently lose
 * updates between children. This assertion only asks the compiler
 * whether this target has lock-free 8-byte atomics, and refuses the build
 * where it has none. It cannot see how the APR library we link was built
 * (APR picks its builtin atomics or its mutex fallback when APR itself is
 * configured), so it makes the fallback unlikely rather than proving it
 * absent.
 */
_Static_assert(__atomic_always_lock_free(sizeof(apr_uint64_t), 0),
               "llmgw_stats needs lock-free 64-bit atomics across processes");
_Static_assert(sizeof(llmgw_stats_header_t) == 128, "header is two whole cache lines");
_Static_assert(sizeof(llmgw_stats_slot_t) % 64 == 0, "slots are whole cache lines");
_Static_assert(offsetof(llmgw_stats_slot_t, requests) % 8 == 0, "64-bit fields are aligned");
_Static_assert(sizeof(llmgw_stats_row_t) == 64, "a row's counters start on a cache line");

#define HDR_SIZE sizeof(llmgw_stats_header_t)
#define SLOT_SIZE sizeof(llmgw_stats_slot_t)

/* Largest capacity accepted, so size arithmetic cannot overflow. */
#define MAX_CAPACITY 65536

/* Atomic access to fields of a const slot (the readers) needs a cast. */
#define R32(f) apr_atomic_read32((volatile apr_uint32_t *)&(f))
#define R64(f) apr_atomic_read64((volatile apr_uint64_t *)&(f))

static llmgw_stats_header_t *header(const void *base)
{
    return (llmgw_stats_header_t *)base;
}

static llmgw_stats_slot_t *slot_at(const void *base, int i)
{
    return (llmgw_stats_slot_t *)((char *)base + HDR_SIZE + (apr_size_t)i * SLOT_SIZE);
}

/* A row's bytes: its 64-byte head, then one counter per slot, whole cache lines. */
static apr_size_t row_size_for(int capacity)
{
    return sizeof(llmgw_stats_row_t) + (((apr_size_t)capacity * sizeof(apr_uint32_t) + 63) & ~63);
}

static llmgw_stats_row_t *row_at(const void *base, int i)
{
    const llmgw_stats_header_t *h = base;

    return (llmgw_stats_row_t *)((char *)base + HDR_SIZE + (apr_size_t)h->capacity * SLOT_SIZE +
                                 (apr_size_t)i * h->row_size);
}

static int is_ours(const void *base)
{
    const llmgw_stats_header_t *h = header(base);

    return base && h->magic == LLMGW_STATS_MAGIC &&
           h->layout_version == LLMGW_STATS_LAYOUT_VERSION && h->slot_size == SLOT_SIZE &&
           h->capacity >= 1 && h->capacity <= MAX_CAPACITY && h->nrows >= 1 &&
           h->nrows <= LLMGW_STATS_MAX_ROWS && h->row_size == row_size_for((int)h->capacity);
}

apr_size_t llmgw_stats_size(int capacity, int nrows)
{
    if (capacity < 1 || capacity > MAX_CAPACITY || nrows < 1 || nrows > LLMGW_STATS_MAX_ROWS)
        return 0;
    return HDR_SIZE + (apr_size_t)capacity * SLOT_SIZE + (apr_size_t)nrows * row_size_for(capacity);
}

int llmgw_stats_rows_for(int max_children)
{
    if (max_children < 1)
        max_children = 1;
    if (max_children > (LLMGW_STATS_MAX_ROWS - 1) / 2)
        return LLMGW_STATS_MAX_ROWS;
    return 2 * max_children + 1;
}

llmgw_stats_time_t llmgw_stats_time_now(void)
{
    llmgw_stats_time_t t;
    struct timespec ts;

    t.wall = apr_time_now();
    /* CLOCK_MONOTONIC is system-wide on Linux and the BSDs: every child
     * reads the same clock, so a deadline one child sets is valid in the
     * others. It cannot fail with a valid clock id; should it, the wall
     * clock is the only time there is. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
        t.mono = (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + (apr_time_t)(ts.tv_nsec / 1000);
    else
        t.mono = t.wall;
    return t;
}

int llmgw_stats_capacity_for(int nbackends)
{
    if (nbackends > MAX_CAPACITY / 2)
        return MAX_CAPACITY;
    return nbackends * 2 > 64 ? nbackends * 2 : 64;
}

apr_status_t llmgw_stats_init(void *base, int capacity, int nrows, apr_time_t created)
{
    llmgw_stats_header_t *h = base;
    apr_size_t size = llmgw_stats_size(capacity, nrows);
    apr_status_t rv;
    int i;

    if (!base || ((apr_uintptr_t)base & 7) != 0 || size == 0)
        return APR_EINVAL;
    memset(base, 0, size);
    h->magic = LLMGW_STATS_MAGIC;
    h->layout_version = LLMGW_STATS_LAYOUT_VERSION;
    h->capacity = (apr_uint32_t)capacity;
    h->slot_size = SLOT_SIZE;
    h->created = (apr_uint64_t)created;
    h->nrows = (apr_uint32_t)nrows;
    h->rows_used = 1; /* the shared row 0 */
    h->row_size = (apr_uint32_t)row_size_for(capacity);
    /* The key of the status page's nonces: drawn once per segment, so every
     * child of every generation that shares the segment verifies them. */
    rv = apr_generate_random_bytes(h->control_key, sizeof(h->control_key));
    if (rv != APR_SUCCESS) {
        h->magic = 0; /* not a usable segment */
        return rv;
    }
    for (i = 0; i < capacity; i++)
        slot_at(base, i)->index = (apr_uint32_t)i;
    for (i = 0; i < nrows; i++)
        row_at(base, i)->slots = (apr_uint32_t)capacity;
    return APR_SUCCESS;
}

int llmgw_stats_fits(const void *base, apr_size_t size, int capacity, int nrows)
{
    const llmgw_stats_header_t *h = base;

    if (!base || size < HDR_SIZE || !is_ours(base))
        return 0;
    return h->capacity >= (apr_uint32_t)(capacity > 0 ? capacity : 1) &&
           h->nrows >= (apr_uint32_t)(nrows > 0 ? nrows : 1) &&
           llmgw_stats_size((int)h->capacity, (int)h->nrows) <= size;
}

/* ------------------------------------------------------------------ */
/* Slot assignment (parent only)                                       */

/* FNV-1a: stable across processes and builds, enough to tell names apart. */
static apr_uint64_t name_hash(const char *s)
{
    apr_uint64_t h = 14695981039346656037ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/*
 * The key stored in a slot. Names that fit are kept as they are; longer
 * ones become a prefix plus "~" and 16 hex digits of the whole name's hash,
 * so two long names sharing a prefix never share counters.
 */
static void slot_key(const char *name, char key[LLMGW_STATS_NAME_MAX])
{
    apr_size_t n = strlen(name);
    const apr_size_t prefix = LLMGW_STATS_NAME_MAX - 1 - 17;

    if (n < LLMGW_STATS_NAME_MAX) {
        memcpy(key, name, n + 1);
        return;
    }
    memcpy(key, name, prefix);
    apr_snprintf(key + prefix, LLMGW_STATS_NAME_MAX - prefix, "~%016" APR_UINT64_T_HEX_FMT,
                 name_hash(name));
}

/* Slot holding @p key (ACTIVE or RETIRED), or -1. */
static int slot_find(const void *base, const char *key)
{
    int i, cap = (int)header(base)->capacity;

    for (i = 0; i < cap; i++) {
        const llmgw_stats_slot_t *s = slot_at(base, i);
        if (s->state != LLMGW_STATS_SLOT_FREE && strcmp(s->name, key) == 0)
            return i;
    }
    return -1;
}

static int slot_first_free(const void *base)
{
    int i, cap = (int)header(base)->capacity;

    for (i = 0; i < cap; i++) {
        if (slot_at(base, i)->state == LLMGW_STATS_SLOT_FREE)
            return i;
    }
    return -1;
}

/* Slots that new names would need: distinct names without a slot yet. */
static int slots_needed(const void *base, const char *const *names, int n, apr_size_t *free_out)
{
    char key[LLMGW_STATS_NAME_MAX], other[LLMGW_STATS_NAME_MAX];
    int i, j, needed = 0, cap = (int)header(base)->capacity;
    apr_size_t nfree = 0;

    for (i = 0; i < cap; i++)
        nfree += slot_at(base, i)->state == LLMGW_STATS_SLOT_FREE;
    for (i = 0; i < n; i++) {
        int dup = 0;
        slot_key(names[i], key);
        if (slot_find(base, key) >= 0)
            continue;
        for (j = 0; j < i && !dup; j++) {
            slot_key(names[j], other);
            dup = strcmp(key, other) == 0;
        }
        needed += !dup;
    }
    *free_out = nfree;
    return needed;
}

static void slot_take(void *base, int idx, const char *key)
{
    llmgw_stats_slot_t *s = slot_at(base, idx);

    memset(s, 0, SLOT_SIZE);
    memcpy(s->name, key, strlen(key) + 1);
    s->kind = LLMGW_STATS_KIND_UNKNOWN;
    s->index = (apr_uint32_t)idx;
}

static int in_names(const char *key, const char *const *names, int n)
{
    char other[LLMGW_STATS_NAME_MAX];
    int i;

    for (i = 0; i < n; i++) {
        slot_key(names[i], other);
        if (strcmp(key, other) == 0)
            return 1;
    }
    return 0;
}

apr_status_t llmgw_stats_assign(void *base, const char *const *names, const int *kinds, int n,
                                int *out_slot)
{
    char key[LLMGW_STATS_NAME_MAX];
    apr_size_t nfree;
    int i, cap;

    if (!base || !is_ours(base) || n < 0 || (n > 0 && (!names || !out_slot)))
        return APR_EINVAL;
    /* Check room first, so a failure leaves the segment as it was. */
    if ((apr_size_t)slots_needed(base, names, n, &nfree) > nfree)
        return APR_ENOSPC;
    cap = (int)header(base)->capacity;
    for (i = 0; i < cap; i++) {
        llmgw_stats_slot_t *s = slot_at(base, i);
        if (s->state == LLMGW_STATS_SLOT_ACTIVE && !in_names(s->name, names, n))
            s->state = LLMGW_STATS_SLOT_RETIRED;
    }
    for (i = 0; i < n; i++) {
        llmgw_stats_slot_t *s;
        int idx;

        slot_key(names[i], key);
        idx = slot_find(base, key);
        if (idx < 0) {
            idx = slot_first_free(base);
            slot_take(base, idx, key);
        }
        s = slot_at(base, idx);
        if (kinds)
            s->kind = kinds[i] >= 0 ? (apr_uint32_t)kinds[i] : LLMGW_STATS_KIND_UNKNOWN;
        s->state = LLMGW_STATS_SLOT_ACTIVE;
        out_slot[i] = idx;
    }
    apr_atomic_inc32(&header(base)->generation);
    return APR_SUCCESS;
}

llmgw_stats_slot_t *llmgw_stats_slot(void *base, int index)
{
    if (!base || index < 0 || (apr_uint32_t)index >= header(base)->capacity)
        return NULL;
    return slot_at(base, index);
}

const unsigned char *llmgw_stats_control_key(const void *base)
{
    return base && is_ours(base) ? header(base)->control_key : NULL;
}

/* ------------------------------------------------------------------ */
/* Per-child rows of in-flight attempts                                */

llmgw_stats_row_t *llmgw_stats_child_claim(void *base, apr_uint32_t pid)
{
    llmgw_stats_header_t *h = base;
    int i, nrows;

    if (!base || !is_ours(base) || pid == 0)
        return NULL;
    nrows = (int)h->nrows;
    for (i = 1; i < nrows; i++) {
        if (apr_atomic_read32(&row_at(base, i)->pid) == pid)
            return row_at(base, i);
    }
    for (i = 1; i < nrows; i++) {
        llmgw_stats_row_t *row = row_at(base, i);
        apr_uint32_t used;

        if (apr_atomic_cas32(&row->pid, pid, 0) != 0)
            continue;
        /* Ours now: nobody else writes here. A released row is zero
         * already; clearing it again is cheap insurance. */
        memset((void *)row->inflight, 0, (apr_size_t)row->slots * sizeof(apr_uint32_t));
        /* Readers sum rows [0, rows_used): raise it to cover this one. */
        do {
            used = apr_atomic_read32(&h->rows_used);
        } while (used < (apr_uint32_t)i + 1 &&
                 apr_atomic_cas32(&h->rows_used, (apr_uint32_t)i + 1, used) != used);
        return row;
    }
    return row_at(base, 0);
}

int llmgw_stats_child_release(void *base, apr_uint32_t pid)
{
    int i, nrows;

    if (!base || !is_ours(base) || pid == 0)
        return -1;
    nrows = (int)header(base)->nrows;
    for (i = 1; i < nrows; i++) {
        llmgw_stats_row_t *row = row_at(base, i);
        apr_uint32_t j, dropped = 0;

        if (apr_atomic_read32(&row->pid) != pid)
            continue;
        for (j = 0; j < row->slots; j++)
            dropped += apr_atomic_xchg32(&row->inflight[j], 0);
        /* Counts first, owner last: whoever claims it next finds it clean. */
        apr_atomic_set32(&row->pid, 0);
        return (int)dropped;
    }
    return -1;
}

apr_uint32_t llmgw_stats_inflight(const void *base, int index)
{
    const llmgw_stats_header_t *h = base;
    apr_uint32_t i, used, sum = 0;

    if (!base || !is_ours(base) || index < 0 || (apr_uint32_t)index >= h->capacity)
        return 0;
    used = R32(h->rows_used);
    if (used > h->nrows)
        used = h->nrows;
    for (i = 0; i < used; i++)
        sum += R32(row_at(base, (int)i)->inflight[index]);
    return sum;
}

/* ------------------------------------------------------------------ */
/* Recording                                                           */

static const char *const err_names[LLMGW_STATS_ERR_COUNT] = {"4xx",     "429",     "5xx",
                                                             "timeout", "connect", "protocol"};

const char *llmgw_stats_err_name(llmgw_stats_err_e e)
{
    return (int)e >= 0 && e < LLMGW_STATS_ERR_COUNT ? err_names[e] : "unknown";
}

int llmgw_stats_classify(llmgw_fail_e fail, int status)
{
    switch (fail) {
    case LLMGW_FAIL_CONNECT:
        return LLMGW_STATS_ERR_CONNECT;
    case LLMGW_FAIL_TIMEOUT:
    case LLMGW_FAIL_IDLE:
        return LLMGW_STATS_ERR_TIMEOUT;
    case LLMGW_FAIL_RESET:
    case LLMGW_FAIL_PROTOCOL:
    case LLMGW_FAIL_STREAM:
        return LLMGW_STATS_ERR_PROTOCOL;
    case LLMGW_FAIL_HTTP:
        if (status == 429)
            return LLMGW_STATS_ERR_429;
        return status >= 400 && status < 500 ? LLMGW_STATS_ERR_4XX : LLMGW_STATS_ERR_5XX;
    default:
        return -1;
    }
}

void llmgw_stats_begin(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    if (!s)
        return;
    apr_atomic_inc64(&s->requests);
    if (row && s->index < row->slots)
        apr_atomic_inc32(&row->inflight[s->index]);
}

void llmgw_stats_end(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    volatile apr_uint32_t *v;
    apr_uint32_t old;

    if (!s || !row || s->index >= row->slots)
        return;
    v = &row->inflight[s->index];
    /* A CAS loop instead of dec32, so an unpaired end cannot wrap to 2^32-1. */
    do {
        old = apr_atomic_read32(v);
        if (old == 0)
            return;
    } while (apr_atomic_cas32(v, old - 1, old) != old);
}

void llmgw_stats_ewma_update(volatile apr_uint32_t *v, apr_interval_time_t sample)
{
    apr_uint32_t old, nv, us;

    /* 0 means "no sample yet", so the fastest possible sample is 1 us. */
    if (sample < 1)
        us = 1;
    else if (sample > (apr_interval_time_t)APR_UINT32_MAX - 1)
        us = APR_UINT32_MAX - 1;
    else
        us = (apr_uint32_t)sample;
    do {
        old = apr_atomic_read32(v);
        nv = old ? (apr_uint32_t)((apr_int64_t)old + (((apr_int64_t)us - (apr_int64_t)old) / 8))
                 : us;
        if (nv == 0)
            nv = 1;
    } while (apr_atomic_cas32(v, nv, old) != old);
}

/* A cooling backend answered: forget its breaker state and stale latency. */
static void recover(llmgw_stats_slot_t *s)
{
    if (apr_atomic_read64(&s->cooldown_until) != 0 &&
        apr_atomic_xchg64(&s->cooldown_until, 0) != 0) {
        apr_atomic_set32(&s->latency_samples, 0);
        apr_atomic_set32(&s->latency_ewma_us, 0);
        apr_atomic_set32(&s->ttfb_ewma_us, 0);
    }
    if (apr_atomic_read64(&s->probe_since) != 0)
        apr_atomic_set64(&s->probe_since, 0);
    if (apr_atomic_read32(&s->consecutive_failures) != 0)
        apr_atomic_set32(&s->consecutive_failures, 0);
    if (apr_atomic_read64(&s->cooldown_period) != 0)
        apr_atomic_set64(&s->cooldown_period, 0);
}

/*
 * Token counters stop at LLMGW_TOKENS_MAX rather than wrap: one provider's
 * absurd count (already bounded by the translators) must not turn the
 * totals of every later request into nonsense.
 */
static void add_tokens(volatile apr_uint64_t *counter, apr_int64_t n)
{
    apr_uint64_t old, nv;

    if (n <= 0)
        return;
    if (n > LLMGW_TOKENS_MAX)
        n = LLMGW_TOKENS_MAX;
    do {
        old = apr_atomic_read64(counter);
        if (old >= (apr_uint64_t)LLMGW_TOKENS_MAX)
            return;
        nv = old + (apr_uint64_t)n; /* both <= 2^53 - 1: no wrap */
        if (nv > (apr_uint64_t)LLMGW_TOKENS_MAX)
            nv = (apr_uint64_t)LLMGW_TOKENS_MAX;
    } while (apr_atomic_cas64(counter, nv, old) != old);
}

void llmgw_stats_success(llmgw_stats_slot_t *s, llmgw_stats_time_t now, apr_interval_time_t latency,
                         apr_interval_time_t ttfb, apr_int64_t prompt_tokens,
                         apr_int64_t completion_tokens)
{
    if (!s)
        return;
    recover(s);
    apr_atomic_inc64(&s->successes);
    llmgw_stats_ewma_update(&s->latency_ewma_us, latency);
    if (ttfb >= 0)
        llmgw_stats_ewma_update(&s->ttfb_ewma_us, ttfb);
    apr_atomic_inc32(&s->latency_samples);
    add_tokens(&s->prompt_tokens, prompt_tokens);
    add_tokens(&s->completion_tokens, completion_tokens);
    apr_atomic_set64(&s->last_success, (apr_uint64_t)now.wall);
}

/* Start (or extend) a cooldown and end any probe: it failed. */
static void arm(llmgw_stats_slot_t *s, llmgw_stats_time_t now, apr_interval_time_t cooldown)
{
    apr_time_t until = now.mono + (cooldown > 0 ? cooldown : 0);

    /* 0 means "not cooling"; a cooldown at time 0 (tests) must still count. */
    apr_atomic_set64(&s->cooldown_until, (apr_uint64_t)(until > 0 ? until : 1));
    apr_atomic_set64(&s->cooldown_period, (apr_uint64_t)(cooldown > 0 ? cooldown : 0));
    apr_atomic_set64(&s->probe_since, 0);
}

void llmgw_stats_error(llmgw_stats_slot_t *s, llmgw_stats_time_t now, int cls)
{
    if (!s)
        return;
    if (cls < 0 || cls >= LLMGW_STATS_ERR_COUNT) {
        apr_atomic_inc64(&s->aborted);
        return;
    }
    apr_atomic_inc64(&s->errors[cls]);
    apr_atomic_set64(&s->last_failure, (apr_uint64_t)now.wall);
}

int llmgw_stats_strike(llmgw_stats_slot_t *s, llmgw_stats_time_t now, int threshold,
                       apr_interval_time_t cooldown)
{
    apr_uint32_t count;

    if (!s)
        return 0;
    count = apr_atomic_inc32(&s->consecutive_failures) + 1;
    if (count < (apr_uint32_t)(threshold > 0 ? threshold : 1))
        return 0;
    arm(s, now, cooldown);
    return 1;
}

void llmgw_stats_cool(llmgw_stats_slot_t *s, llmgw_stats_time_t now, apr_interval_time_t cooldown)
{
    if (!s)
        return;
    arm(s, now, cooldown);
}

apr_interval_time_t llmgw_stats_cooldown_period(const llmgw_stats_slot_t *s)
{
    return s ? (apr_interval_time_t)R64(s->cooldown_period) : 0;
}

void llmgw_stats_protocol_error(llmgw_stats_slot_t *s)
{
    if (s)
        apr_atomic_inc64(&s->errors[LLMGW_STATS_ERR_PROTOCOL]);
}

void llmgw_stats_retry(llmgw_stats_slot_t *s)
{
    if (s)
        apr_atomic_inc64(&s->retries);
}

void llmgw_stats_fallback(llmgw_stats_slot_t *s)
{
    if (s)
        apr_atomic_inc64(&s->fallbacks);
}

/* A probe is running and recent enough to be alive (monotonic times). */
static int probe_running(apr_uint64_t since, apr_time_t mono)
{
    return since != 0 && mono - (apr_time_t)since < LLMGW_STATS_PROBE_STALE;
}

llmgw_stats_avail_e llmgw_stats_peek(const llmgw_stats_slot_t *s, llmgw_stats_time_t now)
{
    apr_uint64_t until;

    if (!s)
        return LLMGW_STATS_AVAILABLE;
    until = R64(s->cooldown_until);
    if (until == 0)
        return LLMGW_STATS_AVAILABLE;
    if (now.mono < (apr_time_t)until || probe_running(R64(s->probe_since), now.mono))
        return LLMGW_STATS_COOLING;
    return LLMGW_STATS_PROBE;
}

llmgw_stats_avail_e llmgw_stats_available(llmgw_stats_slot_t *s, llmgw_stats_time_t now)
{
    apr_uint64_t since, mark = (apr_uint64_t)(now.mono > 0 ? now.mono : 1);
    llmgw_stats_avail_e a = llmgw_stats_peek(s, now);

    if (a != LLMGW_STATS_PROBE)
        return a;
    /* Exactly one caller moves probe_since from the value it read. */
    since = apr_atomic_read64(&s->probe_since);
    if (probe_running(since, now.mono))
        return LLMGW_STATS_COOLING;
    if (apr_atomic_cas64(&s->probe_since, mark, since) != since)
        return LLMGW_STATS_COOLING;
    return LLMGW_STATS_PROBE;
}

apr_interval_time_t llmgw_stats_cooldown_left(const llmgw_stats_slot_t *s, apr_time_t mono)
{
    apr_uint64_t until = s ? R64(s->cooldown_until) : 0;
    apr_interval_time_t left = (apr_time_t)until - mono;

    if (until == 0)
        return -1;
    return left > 0 ? left : 0;
}

void llmgw_stats_load(const void *base, const llmgw_stats_slot_t *s, llmgw_stats_load_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    out->inflight = llmgw_stats_inflight(base, (int)s->index);
    out->latency_us = R32(s->latency_ewma_us);
    out->ttfb_us = R32(s->ttfb_ewma_us);
    out->samples = R32(s->latency_samples);
    out->requests = R64(s->requests);
}

volatile apr_uint32_t *llmgw_stats_rr_cursor(llmgw_stats_slot_t *s)
{
    return s ? &s->rr_cursor : NULL;
}

void llmgw_stats_probe_release(llmgw_stats_slot_t *s)
{
    if (s)
        apr_atomic_set64(&s->probe_since, 0);
}

int llmgw_stats_set_drained(llmgw_stats_slot_t *s, int drained)
{
    if (!s)
        return 0;
    return apr_atomic_xchg32(&s->drained, drained ? 1 : 0) != 0;
}

int llmgw_stats_drained(const llmgw_stats_slot_t *s)
{
    return s && R32(s->drained) != 0;
}

/* ------------------------------------------------------------------ */
/* Snapshot                                                            */

static llmgw_stats_health_e health_of(const llmgw_stats_view_t *v, apr_time_t mono)
{
    if (v->cooldown_until == 0)
        return LLMGW_STATS_UP;
    if (mono >= v->cooldown_until && probe_running((apr_uint64_t)v->probe_since, mono))
        return LLMGW_STATS_PROBING;
    return LLMGW_STATS_IN_COOLDOWN;
}

static void view_read(llmgw_stats_view_t *v, const void *base, int i, const char *name,
                      apr_time_t mono)
{
    const llmgw_stats_slot_t *s = slot_at(base, i);
    apr_uint32_t kind = R32(s->kind);
    int e;

    v->slot = i;
    if (name)
        apr_cpystrn(v->name, name, LLMGW_STATS_NAME_MAX);
    else
        apr_cpystrn(v->name, s->name, LLMGW_STATS_NAME_MAX);
    v->kind = kind < (apr_uint32_t)LLMGW_BACKEND_TYPE_COUNT ? (int)kind : -1;
    v->requests = R64(s->requests);
    v->successes = R64(s->successes);
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        v->errors[e] = R64(s->errors[e]);
    v->retries = R64(s->retries);
    v->fallbacks = R64(s->fallbacks);
    v->aborted = R64(s->aborted);
    v->prompt_tokens = R64(s->prompt_tokens);
    v->completion_tokens = R64(s->completion_tokens);
    v->inflight = llmgw_stats_inflight(base, i);
    v->consecutive_failures = R32(s->consecutive_failures);
    v->latency_ewma_us = R32(s->latency_ewma_us);
    v->ttfb_ewma_us = R32(s->ttfb_ewma_us);
    v->latency_samples = R32(s->latency_samples);
    v->cooldown_until = (apr_time_t)R64(s->cooldown_until);
    v->probe_since = (apr_time_t)R64(s->probe_since);
    v->last_success = (apr_time_t)R64(s->last_success);
    v->last_failure = (apr_time_t)R64(s->last_failure);
    v->drained = R32(s->drained) != 0;
    v->health = health_of(v, mono);
}

/* The segment-wide part of a snapshot, with room for @p n items. */
static llmgw_stats_snapshot_t *snapshot_make(apr_pool_t *p, const void *base,
                                             llmgw_stats_time_t now, int n)
{
    const llmgw_stats_header_t *h = header(base);
    llmgw_stats_snapshot_t *snap = apr_pcalloc(p, sizeof(*snap));
    int i;

    snap->created = (apr_time_t)h->created;
    snap->now = now;
    snap->generation = R32(h->generation);
    snap->capacity = (int)h->capacity;
    for (i = 0; i < snap->capacity; i++)
        snap->retired += R32(slot_at(base, i)->state) == LLMGW_STATS_SLOT_RETIRED;
    snap->items = apr_pcalloc(p, sizeof(llmgw_stats_view_t) * (apr_size_t)(n > 0 ? n : 1));
    return snap;
}

apr_status_t llmgw_stats_snapshot(apr_pool_t *p, const void *base, llmgw_stats_time_t now,
                                  llmgw_stats_snapshot_t **out)
{
    llmgw_stats_snapshot_t *snap;
    int i;

    if (!base || !is_ours(base))
        return APR_EINVAL;
    snap = snapshot_make(p, base, now, (int)header(base)->capacity);
    for (i = 0; i < snap->capacity; i++) {
        if (R32(slot_at(base, i)->state) == LLMGW_STATS_SLOT_ACTIVE)
            view_read(&snap->items[snap->nelts++], base, i, NULL, now.mono);
    }
    *out = snap;
    return APR_SUCCESS;
}

apr_status_t llmgw_stats_snapshot_slots(apr_pool_t *p, const void *base, llmgw_stats_time_t now,
                                        const int *slots, const char *const *names, int n,
                                        llmgw_stats_snapshot_t **out)
{
    llmgw_stats_snapshot_t *snap;
    int i;

    if (!base || !is_ours(base) || n < 0 || (n > 0 && (!slots || !names)))
        return APR_EINVAL;
    for (i = 0; i < n; i++) {
        if (slots[i] < 0 || (apr_uint32_t)slots[i] >= header(base)->capacity)
            return APR_EINVAL;
    }
    snap = snapshot_make(p, base, now, n);
    for (i = 0; i < n; i++)
        view_read(&snap->items[snap->nelts++], base, slots[i], names[i], now.mono);
    *out = snap;
    return APR_SUCCESS;
}

apr_uint64_t llmgw_stats_view_errors(const llmgw_stats_view_t *v)
{
    apr_uint64_t n = 0;
    int e;

    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        n += v->errors[e];
    return n;
}

double llmgw_stats_view_error_rate(const llmgw_stats_view_t *v)
{
    apr_uint64_t errors = llmgw_stats_view_errors(v), done = v->successes + errors;

    return done ? (double)errors / (double)done : 0.0;
}

const char *llmgw_stats_health_name(llmgw_stats_health_e h)
{
    switch (h) {
    case LLMGW_STATS_IN_COOLDOWN:
        return "cooldown";
    case LLMGW_STATS_PROBING:
        return "probing";
    default:
        return "up";
    }
}

static const char *kind_name(int kind)
{
    return kind >= 0 ? llmgw_backend_type_name((llmgw_backend_type_e)kind) : "unknown";
}

/* Cooldown left at monotonic time @p now, 0 when not cooling or already expired. */
static apr_interval_time_t cooldown_left(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->cooldown_until > now ? v->cooldown_until - now : 0;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static json_t *json_time_or_null(apr_time_t t)
{
    return t ? json_real((double)t / APR_USEC_PER_SEC) : json_null();
}

static json_t *json_ms_or_null(apr_uint32_t us)
{
    return us ? json_real((double)us / 1000.0) : json_null();
}

static json_t *json_count(apr_uint64_t n)
{
    /* json_int_t is long long; a counter never gets near 2^63, but clamp anyway. */
    return json_integer(n > (apr_uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)n);
}

/* Both counters stop at LLMGW_TOKENS_MAX, and so does their sum. */
static apr_uint64_t tokens_total(const llmgw_stats_view_t *v)
{
    apr_uint64_t t = v->prompt_tokens + v->completion_tokens;
    return t > (apr_uint64_t)LLMGW_TOKENS_MAX ? (apr_uint64_t)LLMGW_TOKENS_MAX : t;
}

static json_t *view_json(const llmgw_stats_view_t *v, apr_time_t now)
{
    json_t *o = json_object(), *errors = json_object(), *tokens = json_object();
    int e;

    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        json_object_set_new(errors, err_names[e], json_count(v->errors[e]));
    json_object_set_new(tokens, "prompt", json_count(v->prompt_tokens));
    json_object_set_new(tokens, "completion", json_count(v->completion_tokens));
    json_object_set_new(tokens, "total", json_count(tokens_total(v)));
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "type", json_string(kind_name(v->kind)));
    json_object_set_new(o, "slot", json_integer(v->slot));
    json_object_set_new(o, "state", json_string(llmgw_stats_health_name(v->health)));
    json_object_set_new(o, "drained", json_boolean(v->drained));
    json_object_set_new(o, "requests", json_count(v->requests));
    json_object_set_new(o, "successes", json_count(v->successes));
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "errors_total", json_count(llmgw_stats_view_errors(v)));
    json_object_set_new(o, "aborted", json_count(v->aborted));
    json_object_set_new(o, "retries", json_count(v->retries));
    json_object_set_new(o, "fallbacks", json_count(v->fallbacks));
    json_object_set_new(o, "inflight", json_integer(v->inflight));
    json_object_set_new(o, "error_rate", json_real(llmgw_stats_view_error_rate(v)));
    json_object_set_new(o, "latency_ms", json_ms_or_null(v->latency_ewma_us));
    json_object_set_new(o, "ttfb_ms", json_ms_or_null(v->ttfb_ewma_us));
    json_object_set_new(o, "latency_samples", json_integer(v->latency_samples));
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "consecutive_failures", json_integer(v->consecutive_failures));
    json_object_set_new(o, "cooldown_remaining_ms",
                        json_integer((json_int_t)(cooldown_left(v, now) / 1000)));
    json_object_set_new(o, "last_success", json_time_or_null(v->last_success));
    json_object_set_new(o, "last_failure", json_time_or_null(v->last_failure));
    return o;
}

const char *llmgw_stats_json(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len)
{
    json_t *root = json_object(), *list = json_array();
    const char *text;
    int i;

    for (i = 0; i < snap->nelts; i++)
        json_array_append_new(list, view_json(&snap->items[i], snap->now.mono));
    json_object_set_new(root, "generation", json_integer(snap->generation));
    json_object_set_new(root, "created", json_time_or_null(snap->created));
    json_object_set_new(root, "time", json_time_or_null(snap->now.wall));
    json_object_set_new(root, "capacity", json_integer(snap->capacity));
    json_object_set_new(root, "retired", json_integer(snap->retired));
    json_object_set_new(root, "backends", list);
    if (page && page->nonce)
        json_object_set_new(
            root, "control",
            json_pack("{s:s,s:[s,s]}", "nonce", page->nonce, "actions", "drain", "enable"));
    text = llmgw_json_dump(p, root, len);
    json_decref(root);
    return text;
}

/* ------------------------------------------------------------------ */
/* Text building for the Prometheus and HTML renderers                 */

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts; /* const char *, joined at the end */
} text_t;

static void text_init(text_t *t, apr_pool_t *p)
{
    t->p = p;
    t->parts = apr_array_make(p, 256, sizeof(const char *));
}

static void text_add(text_t *t, const char *s)
{
    APR_ARRAY_PUSH(t->parts, const char *) = s;
}

static void text_addf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_addf(text_t *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    text_add(t, apr_pvsprintf(t->p, fmt, ap));
    va_end(ap);
}

static const char *text_done(text_t *t, apr_size_t *len)
{
    const char *s = apr_array_pstrcat(t->p, t->parts, 0);

    if (len)
        *len = strlen(s);
    return s;
}

/* ------------------------------------------------------------------ */
/* Prometheus text exposition 0.0.4                                    */

/* A label value: backslash, double quote and line feed are escaped. */
static const char *prom_label(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 1), *o = out;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        }
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

typedef enum { PROM_COUNTER, PROM_GAUGE } prom_type_e;

static void prom_family(text_t *t, const char *name, prom_type_e type, const char *help)
{
    text_addf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
              type == PROM_COUNTER ? "counter" : "gauge");
}

/* One integer-valued sample per backend, for every backend of the snapshot (now: monotonic). */
typedef apr_uint64_t (*prom_value_fn)(const llmgw_stats_view_t *v, apr_time_t now);

static void prom_per_backend(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels,
                             const char *name, prom_value_fn fn)
{
    int i;

    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "%s{backend=\"%s\"} %" APR_UINT64_T_FMT "\n", name, labels[i],
                  fn(&snap->items[i], snap->now.mono));
}

static apr_uint64_t pv_requests(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->requests;
}

static apr_uint64_t pv_successes(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->successes;
}

static apr_uint64_t pv_aborted(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->aborted;
}

static apr_uint64_t pv_retries(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->retries;
}

static apr_uint64_t pv_fallbacks(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->fallbacks;
}

static apr_uint64_t pv_inflight(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->inflight;
}

static apr_uint64_t pv_cooldown(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->health != LLMGW_STATS_UP;
}

static apr_uint64_t pv_consecutive(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->consecutive_failures;
}

static apr_uint64_t pv_drained(const llmgw_stats_view_t *v, apr_time_t now)
{
    return (apr_uint64_t)v->drained;
}

/* Microseconds as seconds, exactly (no binary floating point). */
static const char *prom_seconds(apr_pool_t *p, apr_uint64_t us)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT, us / 1000000,
                        us % 1000000);
}

static void prom_counters(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels)
{
    int i, e;

    prom_family(t, "llmgw_requests_total", PROM_COUNTER,
                "Upstream attempts started (for a pool: requests routed to it).");
    prom_per_backend(t, snap, labels, "llmgw_requests_total", pv_requests);
    prom_family(t, "llmgw_successes_total", PROM_COUNTER, "Attempts that succeeded.");
    prom_per_backend(t, snap, labels, "llmgw_successes_total", pv_successes);
    prom_family(t, "llmgw_errors_total", PROM_COUNTER, "Failed attempts by error class.");
    for (i = 0; i < snap->nelts; i++) {
        for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
            text_addf(t, "llmgw_errors_total{backend=\"%s\",class=\"%s\"} %" APR_UINT64_T_FMT "\n",
                      labels[i], err_names[e], snap->items[i].errors[e]);
    }
    prom_family(t, "llmgw_aborted_total", PROM_COUNTER,
                "Attempts ended by the client or the gateway, not the upstream.");
    prom_per_backend(t, snap, labels, "llmgw_aborted_total", pv_aborted);
    prom_family(t, "llmgw_retries_total", PROM_COUNTER, "Attempts repeated on the same backend.");
    prom_per_backend(t, snap, labels, "llmgw_retries_total", pv_retries);
    prom_family(t, "llmgw_fallbacks_total", PROM_COUNTER,
                "Times a request moved on to the next pool member.");
    prom_per_backend(t, snap, labels, "llmgw_fallbacks_total", pv_fallbacks);
    prom_family(t, "llmgw_tokens_total", PROM_COUNTER, "Tokens used by successful attempts.");
    for (i = 0; i < snap->nelts; i++) {
        const llmgw_stats_view_t *v = &snap->items[i];
        text_addf(t, "llmgw_tokens_total{backend=\"%s\",kind=\"prompt\"} %" APR_UINT64_T_FMT "\n",
                  labels[i], v->prompt_tokens);
        text_addf(t,
                  "llmgw_tokens_total{backend=\"%s\",kind=\"completion\"} %" APR_UINT64_T_FMT "\n",
                  labels[i], v->completion_tokens);
    }
}

static void prom_gauges(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels)
{
    int i;

    prom_family(t, "llmgw_inflight", PROM_GAUGE, "Attempts in progress.");
    prom_per_backend(t, snap, labels, "llmgw_inflight", pv_inflight);
    prom_family(t, "llmgw_latency_ewma_seconds", PROM_GAUGE,
                "Moving average (alpha 1/8) of successful attempt latency; 0 before any sample.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_latency_ewma_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, snap->items[i].latency_ewma_us));
    prom_family(t, "llmgw_ttfb_ewma_seconds", PROM_GAUGE,
                "Moving average (alpha 1/8) of time to first byte; 0 before any sample.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_ttfb_ewma_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, snap->items[i].ttfb_ewma_us));
    prom_family(t, "llmgw_cooldown", PROM_GAUGE,
                "1 while the backend is skipped by the circuit breaker (cooling or probing).");
    prom_per_backend(t, snap, labels, "llmgw_cooldown", pv_cooldown);
    prom_family(t, "llmgw_cooldown_remaining_seconds", PROM_GAUGE,
                "Time left in the current cooldown.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_cooldown_remaining_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, (apr_uint64_t)cooldown_left(&snap->items[i], snap->now.mono)));
    prom_family(t, "llmgw_consecutive_failures", PROM_GAUGE,
                "Retryable failures since the last success.");
    prom_per_backend(t, snap, labels, "llmgw_consecutive_failures", pv_consecutive);
    prom_family(t, "llmgw_drained", PROM_GAUGE,
                "1 while an operator has taken the backend out of rotation (status page).");
    prom_per_backend(t, snap, labels, "llmgw_drained", pv_drained);
    prom_family(t, "llmgw_backend_info", PROM_GAUGE, "Backend type, as a label; always 1.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_backend_info{backend=\"%s\",type=\"%s\"} 1\n", labels[i],
                  prom_label(t->p, kind_name(snap->items[i].kind)));
    prom_family(t, "llmgw_stats_created_seconds", PROM_GAUGE,
                "Unix time the statistics segment was created (counters start there).");
    text_addf(t, "llmgw_stats_created_seconds %s\n",
              prom_seconds(t->p, (apr_uint64_t)(snap->created > 0 ? snap->created : 0)));
}

const char *llmgw_stats_prometheus(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len)
{
    const char **labels = apr_palloc(p, sizeof(const char *) * (snap->nelts + 1));
    text_t t;
    int i;

    for (i = 0; i < snap->nelts; i++)
        labels[i] = prom_label(p, snap->items[i].name);
    text_init(&t, p);
    prom_counters(&t, snap, labels);
    prom_gauges(&t, snap, labels);
    return text_done(&t, len);
}

/* ------------------------------------------------------------------ */
/* HTML                                                                */

static const char *html_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out;

    for (c = s; *c; c++)
        n += strchr("<>&\"'", *c) ? 6 : 1;
    out = apr_palloc(p, n + 1);
    out[0] = '\0';
    for (n = 0, c = s; *c; c++) {
        const char *rep = *c == '<'    ? "&lt;"
                          : *c == '>'  ? "&gt;"
                          : *c == '&'  ? "&amp;"
                          : *c == '"'  ? "&quot;"
                          : *c == '\'' ? "&#39;"
                                       : NULL;
        if (rep) {
            memcpy(out + n, rep, strlen(rep));
            n += strlen(rep);
        }
        else {
            out[n++] = *c;
        }
    }
    out[n] = '\0';
    return out;
}

static const char *html_ms(apr_pool_t *p, apr_uint32_t us)
{
    return us ? apr_psprintf(p, "%.1f ms", (double)us / 1000.0) : "&ndash;";
}

static const char *html_time(apr_pool_t *p, apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN];

    if (!t || apr_rfc822_date(buf, t) != APR_SUCCESS)
        return "&ndash;";
    return apr_pstrdup(p, buf);
}

static const char *html_cooldown(apr_pool_t *p, const llmgw_stats_view_t *v, apr_time_t now)
{
    apr_interval_time_t left = cooldown_left(v, now);

    if (v->health == LLMGW_STATS_UP)
        return "&ndash;";
    if (v->health == LLMGW_STATS_PROBING)
        return "probe running";
    if (left == 0)
        return "over: next request probes";
    return apr_psprintf(p, "%.1f s", (double)left / APR_USEC_PER_SEC);
}

static const char *html_errors(apr_pool_t *p, const llmgw_stats_view_t *v)
{
    text_t t;
    int e;

    text_init(&t, p);
    text_addf(&t, "%" APR_UINT64_T_FMT, llmgw_stats_view_errors(v));
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++) {
        if (v->errors[e])
            text_addf(&t, " <small>%s:%" APR_UINT64_T_FMT "</small>", err_names[e], v->errors[e]);
    }
    return text_done(&t, NULL);
}

/* The State cell: the breaker's state, and whether an operator drained it. */
static const char *html_state(apr_pool_t *p, const llmgw_stats_view_t *v)
{
    const char *h = llmgw_stats_health_name(v->health);

    return apr_pstrcat(p, "<span class=\"state ", h, "\">", h, "</span>",
                       v->drained ? " <span class=\"state drained\">drained</span>" : "", NULL);
}

/*
 * The Action cell: one form per backend posting to the page itself (no
 * action attribute: the page's URL, query included), so an operator's click
 * is a POST with the nonce of the page it was made on.
 */
static const char *html_action(apr_pool_t *p, const llmgw_stats_view_t *v, const char *nonce)
{
    const char *name = html_escape(p, v->name);

    return apr_pstrcat(p,
                       "<td class=\"act\"><form method=\"post\">"
                       "<input type=\"hidden\" name=\"nonce\" value=\"",
                       html_escape(p, nonce), "\"><input type=\"hidden\" name=\"backend\" value=\"",
                       name, "\"><button type=\"submit\" name=\"action\" value=\"",
                       v->drained ? "enable" : "drain", "\" title=\"",
                       v->drained ? "Put " : "Take ", name,
                       v->drained ? " back into rotation" : " out of rotation", "\">",
                       v->drained ? "Enable" : "Drain", "</button></form></td>", NULL);
}

static void html_row(text_t *t, const llmgw_stats_view_t *v, apr_time_t now, const char *nonce)
{
    text_addf(t,
              "<tr data-backend=\"%s\"><td class=\"name\">%s</td><td>%s</td>"
              "<td class=\"st\">%s</td>%s"
              "<td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td><td>%s</td>"
              "<td>%.1f %%</td><td>%u</td><td>%s</td><td>%s</td>"
              "<td>%" APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT "</td>"
              "<td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td>"
              "<td>%u</td><td>%s</td><td>%s</td></tr>\n",
              html_escape(t->p, v->name), html_escape(t->p, v->name),
              html_escape(t->p, kind_name(v->kind)), html_state(t->p, v),
              nonce ? html_action(t->p, v, nonce) : "", v->requests, v->successes,
              html_errors(t->p, v), 100.0 * llmgw_stats_view_error_rate(v), v->inflight,
              html_ms(t->p, v->latency_ewma_us), html_ms(t->p, v->ttfb_ewma_us), v->prompt_tokens,
              v->completion_tokens, v->retries, v->fallbacks, v->consecutive_failures,
              html_cooldown(t->p, v, now), html_time(t->p, v->last_failure));
}

/*
 * Narrow screens: the viewport is the device's, the page never scrolls
 * sideways (the table does, inside its box, with the name column stuck to
 * the left), and buttons are big enough for a finger. The empty icon keeps
 * browsers from asking for /favicon.ico (a 404 in the console).
 */
static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<title>mod_llmgw status</title>\n<style>\n"
    "body{font-family:system-ui,sans-serif;margin:1em;color:#222}\n"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.2em}\n"
    ".scroll{overflow-x:auto;max-width:100%}\n"
    "table{border-collapse:collapse}\n"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}\n"
    "th{background:#eee}\n"
    "td.name{text-align:left;font-family:monospace;position:sticky;left:0;background:#fff}\n"
    "th.name{text-align:left;position:sticky;left:0}\n"
    "td.st,td.act{text-align:left}form{margin:0}\n"
    "button{font:inherit;padding:.3em .9em;min-height:2.4em;min-width:5em}\n"
    ".state{padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:bold}\n"
    ".up{background:#2e7d32}.cooldown{background:#c62828}.probing{background:#ef6c00}\n"
    ".drained{background:#546e7a}\n"
    "nav a{margin-right:.8em}small{color:#666}\n"
    "</style></head><body>\n<h1>mod_llmgw status</h1>\n";

static void html_columns(text_t *t, int control)
{
    text_add(t, "<div class=\"scroll\"><table>\n<tr><th class=\"name\">Backend</th><th>Type</th>"
                "<th>State</th>");
    if (control)
        text_add(t, "<th>Action</th>");
    text_add(t, "<th>Requests</th><th>Successes</th><th>Errors</th><th>Error rate</th>"
                "<th>In flight</th><th>Latency</th><th>TTFB</th>"
                "<th>Tokens (prompt / completion)</th><th>Retries</th><th>Fallbacks</th>"
                "<th>Consecutive failures</th><th>Cooldown</th><th>Last failure</th></tr>\n");
}

/* The backends table; with a nonce, an Action column of drain / enable forms. */
static void html_backends(text_t *t, const llmgw_stats_snapshot_t *snap, const char *nonce)
{
    int i;

    if (snap->nelts == 0) {
        text_add(t, "<p>No backends are configured.</p>\n");
        return;
    }
    html_columns(t, nonce != NULL);
    for (i = 0; i < snap->nelts; i++)
        html_row(t, &snap->items[i], snap->now.mono, nonce);
    text_add(t, "</table></div>\n");
}

/*
 * The page's sections, in order. Each renders one heading and what is
 * under it; a new section (per-key usage, say) is one more function here.
 */
typedef void (*html_section_fn)(text_t *t, const llmgw_stats_snapshot_t *snap,
                                const llmgw_stats_page_t *page);

static void section_backends(text_t *t, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page)
{
    text_add(t, "<h2>Backends</h2>\n");
    html_backends(t, snap, page ? page->nonce : NULL);
    text_add(t, "<p><small>Latency and TTFB are moving averages of successful attempts.");
    if (page && page->nonce)
        text_add(t, " A drained backend finishes what it is doing and gets no new requests "
                    "until it is enabled again; pools skip it, a route to it alone answers "
                    "503.");
    text_add(t, "</small></p>\n");
}

static const html_section_fn html_sections[] = {section_backends};

/* Links that set the page's reload period (the glue turns ?refresh=N into a Refresh header). */
static void html_refresh_nav(text_t *t, int refresh)
{
    static const int periods[] = {5, 30};
    apr_size_t i;

    text_add(t, "<nav>Refresh: ");
    for (i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        if (refresh == periods[i])
            text_addf(t, "<strong>every %d s</strong> ", periods[i]);
        else
            text_addf(t, "<a href=\"?refresh=%d\">every %d s</a> ", periods[i], periods[i]);
    }
    if (refresh > 0)
        text_add(t, "<a href=\"?\">off</a>");
    else
        text_add(t, "<strong>off</strong>");
    if (refresh > 0 && refresh != periods[0] && refresh != periods[1])
        text_addf(t, " (now every %d s)", refresh);
    text_add(t, "</nav>\n");
}

const char *llmgw_stats_html(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len)
{
    text_t t;
    apr_size_t i;

    text_init(&t, p);
    text_add(&t, html_head);
    text_addf(&t,
              "<p>Now: %s. Counters since %s (configuration generation %u; "
              "%d of %d slots used, %d retired).</p>\n",
              html_time(p, snap->now.wall), html_time(p, snap->created), snap->generation,
              snap->nelts, snap->capacity, snap->retired);
    html_refresh_nav(&t, page ? page->refresh : 0);
    for (i = 0; i < sizeof(html_sections) / sizeof(html_sections[0]); i++)
        html_sections[i](&t, snap, page);
    text_add(&t, "<p><small>Also as <code>?format=json</code>, <code>?format=prometheus</code> "
                 "and <code>?auto</code>.</small></p>\n</body></html>\n");
    return text_done(&t, len);
}

const char *llmgw_stats_html_table(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len)
{
    text_t t;

    text_init(&t, p);
    html_backends(&t, snap, NULL);
    return text_done(&t, len);
}

/* ------------------------------------------------------------------ */
/* "Key: value" lines (mod_status's ?auto)                             */

/* A name on one line: control characters become '?'. */
static const char *auto_value(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *c;

    for (c = out; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    }
    return out;
}

static const char *const auto_err_keys[LLMGW_STATS_ERR_COUNT] = {
    "Errors4xx", "Errors429", "Errors5xx", "ErrorsTimeout", "ErrorsConnect", "ErrorsProtocol"};

static void auto_u64(text_t *t, int i, const char *key, apr_uint64_t v)
{
    text_addf(t, "LLMGatewayBackend[%d]%s: %" APR_UINT64_T_FMT "\n", i, key, v);
}

const char *llmgw_stats_auto(apr_pool_t *p, const llmgw_stats_snapshot_t *snap, apr_size_t *len)
{
    text_t t;
    int i, e;

    text_init(&t, p);
    text_addf(&t, "LLMGatewayBackends: %d\n", snap->nelts);
    for (i = 0; i < snap->nelts; i++) {
        const llmgw_stats_view_t *v = &snap->items[i];

        text_addf(&t, "LLMGatewayBackend[%d]Name: %s\n", i, auto_value(p, v->name));
        text_addf(&t, "LLMGatewayBackend[%d]Type: %s\n", i, auto_value(p, kind_name(v->kind)));
        text_addf(&t, "LLMGatewayBackend[%d]State: %s\n", i, llmgw_stats_health_name(v->health));
        auto_u64(&t, i, "Drained", (apr_uint64_t)v->drained);
        auto_u64(&t, i, "Requests", v->requests);
        auto_u64(&t, i, "Successes", v->successes);
        auto_u64(&t, i, "Errors", llmgw_stats_view_errors(v));
        for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
            auto_u64(&t, i, auto_err_keys[e], v->errors[e]);
        auto_u64(&t, i, "Aborted", v->aborted);
        auto_u64(&t, i, "Retries", v->retries);
        auto_u64(&t, i, "Fallbacks", v->fallbacks);
        auto_u64(&t, i, "InFlight", v->inflight);
        text_addf(&t, "LLMGatewayBackend[%d]LatencyMs: %.3f\n", i,
                  (double)v->latency_ewma_us / 1000.0);
        text_addf(&t, "LLMGatewayBackend[%d]TTFBMs: %.3f\n", i, (double)v->ttfb_ewma_us / 1000.0);
        auto_u64(&t, i, "PromptTokens", v->prompt_tokens);
        auto_u64(&t, i, "CompletionTokens", v->completion_tokens);
        auto_u64(&t, i, "ConsecutiveFailures", v->consecutive_failures);
        auto_u64(&t, i, "CooldownRemainingMs",
                 (apr_uint64_t)(cooldown_left(v, snap->now.mono) / 1000));
    }
    return text_done(&t, len);
}
