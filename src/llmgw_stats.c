/*
 * Shared per-backend statistics: segment layout, slot assignment, lock-free
 * recording, the cooldown mechanism (counters and deadlines: when a failure
 * counts against a backend is the pool's policy, llmgw_pool_record_failure)
 * and snapshots. The layout diagram is in include/llmgw_stats.h; the
 * renderers of a snapshot are src/llmgw_stats_render.c.
 *
 * Nothing here allocates on the request path; recording functions touch
 * only the slot with apr_atomic_*. The snapshot allocates from the caller's
 * pool (the status request's).
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "llmgw_stats.h"

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
/* A slot's own counters are read and written as one llmgw_stats_counts_t. */
#define SAME_OFFSET(f)                                                                             \
    _Static_assert(offsetof(llmgw_stats_slot_t, f) - offsetof(llmgw_stats_slot_t, requests) ==     \
                       offsetof(llmgw_stats_counts_t, f),                                          \
                   "slot counters are laid out as llmgw_stats_counts_t: " #f)
SAME_OFFSET(successes);
SAME_OFFSET(errors);
SAME_OFFSET(retries);
SAME_OFFSET(fallbacks);
SAME_OFFSET(aborted);
SAME_OFFSET(prompt_tokens);
SAME_OFFSET(completion_tokens);
_Static_assert(offsetof(llmgw_stats_slot_t, cooldown_until) -
                       offsetof(llmgw_stats_slot_t, requests) ==
                   sizeof(llmgw_stats_counts_t),
               "slot counters end where llmgw_stats_counts_t ends");

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

#define ROUND64(n) (((apr_size_t)(n) + 63) & ~(apr_size_t)63)

/* A row's bytes: its 64-byte head, the in-flight counts, the hot counters, whole cache lines. */
static apr_size_t row_size_for(int capacity)
{
    return sizeof(llmgw_stats_row_t) + ROUND64((apr_size_t)capacity * sizeof(apr_uint32_t)) +
           ROUND64((apr_size_t)capacity * sizeof(llmgw_stats_counts_t));
}

/* The counts of slot @p idx in @p row (idx < row->slots). */
static llmgw_stats_counts_t *row_counts(const llmgw_stats_row_t *row, apr_uint32_t idx)
{
    return (llmgw_stats_counts_t *)((char *)row + sizeof(llmgw_stats_row_t) +
                                    ROUND64((apr_size_t)row->slots * sizeof(apr_uint32_t))) +
           idx;
}

/* The slot's own counters (what is recorded without a row, and released rows' counts). */
static llmgw_stats_counts_t *slot_counts(const llmgw_stats_slot_t *s)
{
    return (llmgw_stats_counts_t *)(void *)&s->requests;
}

/* Where an attempt recorded by the process owning @p row counts. */
static llmgw_stats_counts_t *counts_for(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    return row && s->index < row->slots ? row_counts(row, s->index) : slot_counts(s);
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
    int r, nrows = (int)header(base)->nrows;

    memset(s, 0, SLOT_SIZE);
    /* A FREE slot was never written by anyone; its column is cleared anyway,
     * so a new name starts from zero in every row too. */
    for (r = 0; r < nrows; r++)
        memset((void *)row_counts(row_at(base, r), (apr_uint32_t)idx), 0,
               sizeof(llmgw_stats_counts_t));
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
        memset((void *)row_counts(row, 0), 0,
               (apr_size_t)row->slots * sizeof(llmgw_stats_counts_t));
        /* Readers sum rows [0, rows_used): raise it to cover this one. */
        do {
            used = apr_atomic_read32(&h->rows_used);
        } while (used < (apr_uint32_t)i + 1 &&
                 apr_atomic_cas32(&h->rows_used, (apr_uint32_t)i + 1, used) != used);
        return row;
    }
    return row_at(base, 0);
}

static void add_tokens(volatile apr_uint64_t *counter, apr_int64_t n);

/* Move the counts @p from (a dead child's) into @p to, field by field. */
static void fold_counts(llmgw_stats_counts_t *to, llmgw_stats_counts_t *from)
{
    int e;

    apr_atomic_add64(&to->requests, apr_atomic_xchg64(&from->requests, 0));
    apr_atomic_add64(&to->successes, apr_atomic_xchg64(&from->successes, 0));
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        apr_atomic_add64(&to->errors[e], apr_atomic_xchg64(&from->errors[e], 0));
    apr_atomic_add64(&to->retries, apr_atomic_xchg64(&from->retries, 0));
    apr_atomic_add64(&to->fallbacks, apr_atomic_xchg64(&from->fallbacks, 0));
    apr_atomic_add64(&to->aborted, apr_atomic_xchg64(&from->aborted, 0));
    add_tokens(&to->prompt_tokens, (apr_int64_t)apr_atomic_xchg64(&from->prompt_tokens, 0));
    add_tokens(&to->completion_tokens, (apr_int64_t)apr_atomic_xchg64(&from->completion_tokens, 0));
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
        for (j = 0; j < row->slots; j++) {
            dropped += apr_atomic_xchg32(&row->inflight[j], 0);
            fold_counts(slot_counts(slot_at(base, (int)j)), row_counts(row, j));
        }
        /* Counts first, owner last: whoever claims it next finds it clean. */
        apr_atomic_set32(&row->pid, 0);
        return (int)dropped;
    }
    return -1;
}

/* Rows readers sum: [0, rows_used). */
static apr_uint32_t rows_in_use(const void *base)
{
    const llmgw_stats_header_t *h = base;
    apr_uint32_t used = R32(h->rows_used);

    return used > h->nrows ? h->nrows : used;
}

apr_uint32_t llmgw_stats_inflight(const void *base, int index)
{
    const llmgw_stats_header_t *h = base;
    apr_uint32_t i, used, sum = 0;

    if (!base || !is_ours(base) || index < 0 || (apr_uint32_t)index >= h->capacity)
        return 0;
    used = rows_in_use(base);
    for (i = 0; i < used; i++)
        sum += R32(row_at(base, (int)i)->inflight[index]);
    return sum;
}

static apr_uint64_t cap_tokens(apr_uint64_t n)
{
    return n > (apr_uint64_t)LLMGW_TOKENS_MAX ? (apr_uint64_t)LLMGW_TOKENS_MAX : n;
}

/* Add the counts of @p c into @p sum (plain reads of atomics, field by field). */
static void counts_add(llmgw_stats_counts_t *sum, const llmgw_stats_counts_t *c)
{
    int e;

    sum->requests += R64(c->requests);
    sum->successes += R64(c->successes);
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        sum->errors[e] += R64(c->errors[e]);
    sum->retries += R64(c->retries);
    sum->fallbacks += R64(c->fallbacks);
    sum->aborted += R64(c->aborted);
    sum->prompt_tokens += R64(c->prompt_tokens);
    sum->completion_tokens += R64(c->completion_tokens);
}

void llmgw_stats_counts(const void *base, int index, llmgw_stats_counts_t *out)
{
    apr_uint32_t i, used;

    memset(out, 0, sizeof(*out));
    if (!base || !is_ours(base) || index < 0 || (apr_uint32_t)index >= header(base)->capacity)
        return;
    counts_add(out, slot_counts(slot_at(base, index)));
    used = rows_in_use(base);
    for (i = 0; i < used; i++)
        counts_add(out, row_counts(row_at(base, (int)i), (apr_uint32_t)index));
    out->prompt_tokens = cap_tokens(out->prompt_tokens);
    out->completion_tokens = cap_tokens(out->completion_tokens);
}

apr_uint64_t llmgw_stats_requests(const void *base, int index)
{
    apr_uint32_t i, used;
    apr_uint64_t n;

    if (!base || !is_ours(base) || index < 0 || (apr_uint32_t)index >= header(base)->capacity)
        return 0;
    n = R64(slot_at(base, index)->requests);
    used = rows_in_use(base);
    for (i = 0; i < used; i++)
        n += R64(row_counts(row_at(base, (int)i), (apr_uint32_t)index)->requests);
    return n;
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
    apr_atomic_inc64(&counts_for(s, row)->requests);
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

void llmgw_stats_success(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                         apr_interval_time_t latency, apr_interval_time_t ttfb,
                         apr_int64_t prompt_tokens, apr_int64_t completion_tokens)
{
    llmgw_stats_counts_t *c;

    if (!s)
        return;
    c = counts_for(s, row);
    recover(s);
    apr_atomic_inc64(&c->successes);
    llmgw_stats_ewma_update(&s->latency_ewma_us, latency);
    if (ttfb >= 0)
        llmgw_stats_ewma_update(&s->ttfb_ewma_us, ttfb);
    apr_atomic_inc32(&s->latency_samples);
    add_tokens(&c->prompt_tokens, prompt_tokens);
    add_tokens(&c->completion_tokens, completion_tokens);
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

void llmgw_stats_error(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                       int cls)
{
    if (!s)
        return;
    if (cls < 0 || cls >= LLMGW_STATS_ERR_COUNT) {
        apr_atomic_inc64(&counts_for(s, row)->aborted);
        return;
    }
    apr_atomic_inc64(&counts_for(s, row)->errors[cls]);
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

void llmgw_stats_protocol_error(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    if (s)
        apr_atomic_inc64(&counts_for(s, row)->errors[LLMGW_STATS_ERR_PROTOCOL]);
}

void llmgw_stats_retry(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    if (s)
        apr_atomic_inc64(&counts_for(s, row)->retries);
}

void llmgw_stats_fallback(llmgw_stats_slot_t *s, llmgw_stats_row_t *row)
{
    if (s)
        apr_atomic_inc64(&counts_for(s, row)->fallbacks);
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
    out->requests = llmgw_stats_requests(base, (int)s->index);
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
    llmgw_stats_counts_t c;
    int e;

    v->slot = i;
    if (name)
        apr_cpystrn(v->name, name, LLMGW_STATS_NAME_MAX);
    else
        apr_cpystrn(v->name, s->name, LLMGW_STATS_NAME_MAX);
    /* What a kind means is the configuration's business (the renderers name it). */
    v->kind = kind == LLMGW_STATS_KIND_UNKNOWN || kind > INT_MAX ? -1 : (int)kind;
    llmgw_stats_counts(base, i, &c);
    v->requests = c.requests;
    v->successes = c.successes;
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        v->errors[e] = c.errors[e];
    v->retries = c.retries;
    v->fallbacks = c.fallbacks;
    v->aborted = c.aborted;
    v->prompt_tokens = c.prompt_tokens;
    v->completion_tokens = c.completion_tokens;
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
