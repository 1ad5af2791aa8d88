/*
 * The limits segment: slots, their locks, windows, reservations,
 * settlements, budgets and per-child rows (include/llmgw_limits.h has the
 * layout and the argument for exactness).
 *
 * Every field below `lock` in a slot is read and written with the slot's
 * lock held; the lock's CAS and store are full barriers, so plain accesses
 * inside are ordered. The per-child cells are updated with atomics (several
 * threads of one child share a row).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "llmgw_limits.h"

_Static_assert(sizeof(llmgw_limits_header_t) == 64, "header is one cache line");
_Static_assert(sizeof(llmgw_limits_slot_t) == 256, "slots are 256 bytes");
_Static_assert(sizeof(llmgw_limits_row_t) == 64, "a row's cells start on a cache line");
_Static_assert(sizeof(llmgw_limits_cell_t) == 16, "cells are 16 bytes");

#define HDR_SIZE sizeof(llmgw_limits_header_t)
#define SLOT_SIZE sizeof(llmgw_limits_slot_t)
#define MAX_CAPACITY 65536
#define MAX_ROWS 4097
/* Busy-wait this many times before yielding the CPU. */
#define SPINS 64

static llmgw_limits_header_t *header(const void *base)
{
    return (llmgw_limits_header_t *)base;
}

static llmgw_limits_slot_t *slot_at(const void *base, int i)
{
    return (llmgw_limits_slot_t *)((char *)base + HDR_SIZE + (apr_size_t)i * SLOT_SIZE);
}

static apr_size_t row_size_for(int capacity)
{
    return sizeof(llmgw_limits_row_t) + (apr_size_t)capacity * sizeof(llmgw_limits_cell_t);
}

static llmgw_limits_row_t *row_at(const void *base, int i)
{
    const llmgw_limits_header_t *h = base;

    return (llmgw_limits_row_t *)((char *)base + HDR_SIZE + (apr_size_t)h->capacity * SLOT_SIZE +
                                  (apr_size_t)i * h->row_size);
}

static int is_ours(const void *base)
{
    const llmgw_limits_header_t *h = base;

    return base && h->magic == LLMGW_LIMITS_MAGIC &&
           h->layout_version == LLMGW_LIMITS_LAYOUT_VERSION && h->slot_size == SLOT_SIZE &&
           h->capacity >= 1 && h->capacity <= MAX_CAPACITY && h->nrows >= 1 &&
           h->nrows <= MAX_ROWS && h->row_size == row_size_for((int)h->capacity);
}

apr_size_t llmgw_limits_size(int capacity, int nrows)
{
    if (capacity < 1 || capacity > MAX_CAPACITY || nrows < 1 || nrows > MAX_ROWS)
        return 0;
    return HDR_SIZE + (apr_size_t)capacity * SLOT_SIZE + (apr_size_t)nrows * row_size_for(capacity);
}

apr_status_t llmgw_limits_init(void *base, int capacity, int nrows, apr_time_t created)
{
    llmgw_limits_header_t *h = base;
    apr_size_t size = llmgw_limits_size(capacity, nrows);
    int i;

    if (!base || !size || ((apr_uintptr_t)base & 7))
        return APR_EINVAL;
    memset(base, 0, size);
    h->magic = LLMGW_LIMITS_MAGIC;
    h->layout_version = LLMGW_LIMITS_LAYOUT_VERSION;
    h->capacity = (apr_uint32_t)capacity;
    h->slot_size = SLOT_SIZE;
    h->nrows = (apr_uint32_t)nrows;
    h->row_size = (apr_uint32_t)row_size_for(capacity);
    h->rows_used = 1;
    h->created = (apr_uint64_t)created;
    for (i = 0; i < capacity; i++)
        slot_at(base, i)->index = (apr_uint32_t)i;
    for (i = 0; i < nrows; i++)
        row_at(base, i)->cells = (apr_uint32_t)capacity;
    return APR_SUCCESS;
}

apr_uint64_t llmgw_limits_hash(const char *name)
{
    apr_uint64_t h = 1469598103934665603ULL;

    for (; *name; name++) {
        h ^= (unsigned char)*name;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The stored form of a name: itself, or a prefix and a hash of the whole when too long. */
static void name_key(const char *name, char key[LLMGW_LIMITS_NAME_MAX])
{
    apr_size_t n = strlen(name);

    memset(key, 0, LLMGW_LIMITS_NAME_MAX);
    if (n < LLMGW_LIMITS_NAME_MAX) {
        memcpy(key, name, n);
        return;
    }
    apr_snprintf(key, LLMGW_LIMITS_NAME_MAX, "%.46s#%016" APR_UINT64_T_HEX_FMT, name,
                 llmgw_limits_hash(name));
}

/* ---- locks ------------------------------------------------------------- */

/*
 * Take a lock word: CAS 0 -> our pid. After LLMGW_LIMITS_LOCK_STALE of
 * waiting, a holder that no longer exists (it died inside the critical
 * section) is replaced, again by CAS so that only one waiter does it.
 */
static void lock_word(volatile apr_uint32_t *w)
{
    apr_uint32_t me = (apr_uint32_t)getpid(), holder;
    apr_time_t since = 0;
    int spins = 0;

    for (;;) {
        holder = apr_atomic_cas32(w, me, 0);
        if (holder == 0)
            return;
        if (++spins < SPINS)
            continue;
        sched_yield();
        if (!since) {
            since = apr_time_now();
            continue;
        }
        if (apr_time_now() - since < LLMGW_LIMITS_LOCK_STALE)
            continue;
        if (holder != me && kill((pid_t)holder, 0) != 0 && errno == ESRCH)
            apr_atomic_cas32(w, 0, holder);
        since = apr_time_now();
    }
}

static void unlock_word(volatile apr_uint32_t *w)
{
    apr_atomic_set32(w, 0);
}

/* ---- assignment (parent) ------------------------------------------------- */

static int find_named(const void *base, const char *key, int want_dynamic)
{
    const llmgw_limits_header_t *h = base;
    apr_uint64_t hash = llmgw_limits_hash(key);
    int i;

    for (i = 0; i < (int)h->capacity; i++) {
        llmgw_limits_slot_t *s = slot_at(base, i);
        apr_uint32_t st = apr_atomic_read32(&s->state);
        int wanted = want_dynamic ? st == LLMGW_LIMITS_DYNAMIC_SLOT
                                  : (st == LLMGW_LIMITS_ACTIVE || st == LLMGW_LIMITS_RETIRED);
        if (wanted && s->hash == hash && strncmp(s->name, key, LLMGW_LIMITS_NAME_MAX) == 0)
            return i;
    }
    return -1;
}

static int free_slots(const void *base)
{
    const llmgw_limits_header_t *h = base;
    int i, n = 0;

    for (i = 0; i < (int)h->capacity; i++)
        n += apr_atomic_read32(&slot_at(base, i)->state) == LLMGW_LIMITS_FREE;
    return n;
}

static int new_names(const void *base, const char *const *names, int n)
{
    char key[LLMGW_LIMITS_NAME_MAX];
    int i, fresh = 0;

    for (i = 0; i < n; i++) {
        name_key(names[i], key);
        fresh += find_named(base, key, 0) < 0;
    }
    return fresh;
}

int llmgw_limits_fits(const void *base, apr_size_t size, const char *const *names, int n,
                      int dynamic, int nrows)
{
    const llmgw_limits_header_t *h = base;

    if (!is_ours(base) || llmgw_limits_size((int)h->capacity, (int)h->nrows) > size ||
        (int)h->nrows < nrows)
        return 0;
    return free_slots(base) >= new_names(base, names, n) + dynamic;
}

static void slot_zero(llmgw_limits_slot_t *s)
{
    apr_uint32_t index = s->index;

    memset((char *)s + offsetof(llmgw_limits_slot_t, hash), 0,
           SLOT_SIZE - offsetof(llmgw_limits_slot_t, hash));
    s->index = index;
}

static int in_keys(const char *key, char (*keys)[LLMGW_LIMITS_NAME_MAX], int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(keys[i], key) == 0)
            return 1;
    }
    return 0;
}

apr_status_t llmgw_limits_assign(void *base, const char *const *names, const int *kinds, int n,
                                 int dynamic, int *out_slot)
{
    llmgw_limits_header_t *h = base;
    char(*keys)[LLMGW_LIMITS_NAME_MAX];
    int i, j;

    if (!is_ours(base) || n < 0 || dynamic < 0)
        return APR_EINVAL;
    if (free_slots(base) < new_names(base, names, n) + dynamic)
        return APR_ENOSPC;
    keys = malloc(sizeof(*keys) * (apr_size_t)(n + 1));
    if (!keys)
        return APR_ENOMEM;
    for (i = 0; i < n; i++) {
        name_key(names[i], keys[i]);
        out_slot[i] = find_named(base, keys[i], 0);
        if (out_slot[i] >= 0) {
            llmgw_limits_slot_t *s = slot_at(base, out_slot[i]);
            s->kind = kinds ? (apr_uint32_t)kinds[i] : 0;
            apr_atomic_set32(&s->state, LLMGW_LIMITS_ACTIVE);
            continue;
        }
        /* A FREE slot, taken by CAS: a child of the previous generation may
         * be claiming one for a dynamic principal at this very moment. */
        for (j = 0; j < (int)h->capacity; j++) {
            llmgw_limits_slot_t *s = slot_at(base, j);
            if (apr_atomic_cas32(&s->state, LLMGW_LIMITS_CLAIMING, LLMGW_LIMITS_FREE) !=
                LLMGW_LIMITS_FREE)
                continue;
            slot_zero(s);
            memcpy(s->name, keys[i], LLMGW_LIMITS_NAME_MAX);
            s->hash = llmgw_limits_hash(keys[i]);
            s->kind = kinds ? (apr_uint32_t)kinds[i] : 0;
            apr_atomic_set32(&s->state, LLMGW_LIMITS_ACTIVE);
            out_slot[i] = j;
            break;
        }
        if (out_slot[i] < 0) {
            free(keys);
            return APR_ENOSPC; /* only if a child took the last slots meanwhile */
        }
    }
    for (j = 0; j < (int)h->capacity; j++) {
        llmgw_limits_slot_t *s = slot_at(base, j);
        if (apr_atomic_read32(&s->state) == LLMGW_LIMITS_ACTIVE && !in_keys(s->name, keys, n))
            apr_atomic_set32(&s->state, LLMGW_LIMITS_RETIRED);
    }
    free(keys);
    h->dyn_max = apr_atomic_read32(&h->dyn_used) + (apr_uint32_t)dynamic;
    return APR_SUCCESS;
}

llmgw_limits_slot_t *llmgw_limits_slot(void *base, int index)
{
    if (!base || index < 0 || index >= (int)header(base)->capacity)
        return NULL;
    return slot_at(base, index);
}

int llmgw_limits_dynamic(void *base, const char *name)
{
    llmgw_limits_header_t *h = base;
    char key[LLMGW_LIMITS_NAME_MAX];
    int i, found;

    if (!is_ours(base) || !name)
        return -1;
    name_key(name, key);
    if ((found = find_named(base, key, 1)) >= 0)
        return found;
    lock_word(&h->dyn_lock);
    found = find_named(base, key, 1);
    for (i = 0; found < 0 && h->dyn_used < h->dyn_max && i < (int)h->capacity; i++) {
        llmgw_limits_slot_t *s = slot_at(base, i);
        if (apr_atomic_cas32(&s->state, LLMGW_LIMITS_CLAIMING, LLMGW_LIMITS_FREE) !=
            LLMGW_LIMITS_FREE)
            continue;
        slot_zero(s);
        memcpy(s->name, key, LLMGW_LIMITS_NAME_MAX);
        s->hash = llmgw_limits_hash(key);
        s->kind = LLMGW_LIMITS_KIND_PRINCIPAL;
        apr_atomic_set32(&s->state, LLMGW_LIMITS_DYNAMIC_SLOT);
        h->dyn_used++;
        found = i;
    }
    unlock_word(&h->dyn_lock);
    return found;
}

/* ---- rows ------------------------------------------------------------ */

llmgw_limits_row_t *llmgw_limits_child_claim(void *base, apr_uint32_t pid)
{
    llmgw_limits_header_t *h = base;
    int i;

    if (!is_ours(base) || pid == 0)
        return NULL;
    for (i = 1; i < (int)h->nrows; i++) {
        if (apr_atomic_read32(&row_at(base, i)->pid) == pid)
            return row_at(base, i);
    }
    for (i = 1; i < (int)h->nrows; i++) {
        llmgw_limits_row_t *row = row_at(base, i);
        if (apr_atomic_cas32(&row->pid, pid, 0) == 0) {
            apr_uint32_t used;
            while ((used = apr_atomic_read32(&h->rows_used)) < (apr_uint32_t)i + 1 &&
                   apr_atomic_cas32(&h->rows_used, (apr_uint32_t)i + 1, used) != used)
                ;
            return row;
        }
    }
    return row_at(base, 0);
}

int llmgw_limits_child_release(void *base, apr_uint32_t pid)
{
    llmgw_limits_header_t *h = base;
    int i, j, released = 0;

    if (!is_ours(base) || pid == 0)
        return -1;
    for (i = 1; i < (int)h->nrows; i++) {
        llmgw_limits_row_t *row = row_at(base, i);
        if (apr_atomic_read32(&row->pid) != pid)
            continue;
        for (j = 0; j < (int)h->capacity; j++) {
            llmgw_limits_cell_t *cell = &row->cell[j];
            apr_uint32_t c = apr_atomic_read32(&cell->concurrent);
            apr_uint64_t r = apr_atomic_read64(&cell->reserved);
            llmgw_limits_slot_t *s = slot_at(base, j);
            if (!c && !r)
                continue;
            lock_word(&s->lock);
            s->concurrent = s->concurrent > (apr_int64_t)c ? s->concurrent - c : 0;
            s->reserved = s->reserved > (apr_int64_t)r ? s->reserved - (apr_int64_t)r : 0;
            unlock_word(&s->lock);
            apr_atomic_set32(&cell->concurrent, 0);
            apr_atomic_set64(&cell->reserved, 0);
            released += (int)c;
        }
        apr_atomic_set32(&row->pid, 0);
        return released;
    }
    return -1;
}

/* ---- windows and periods (lock held) --------------------------------- */

static apr_time_t mono_of(llmgw_stats_time_t now)
{
    return now.mono > 0 ? now.mono : 1; /* 0 means "no window" */
}

static void roll_windows(llmgw_limits_slot_t *s, apr_time_t mono)
{
    if (s->req_start && mono - s->req_start >= LLMGW_LIMITS_WINDOW)
        s->req_start = s->req_count = 0;
    if (s->tok_start && mono - s->tok_start >= LLMGW_LIMITS_WINDOW)
        s->tok_start = s->tok_count = 0;
}

static void roll_period(llmgw_limits_slot_t *s, const llmgw_budget_cfg_t *b, apr_time_t wall)
{
    apr_time_t ps;

    if (!b || !b->nusd)
        return;
    ps = llmgw_period_start(b->period, wall);
    if (ps > s->period_start) {
        s->period_start = ps;
        s->spent_base = s->local_total = s->committed_total = 0;
    }
}

static apr_interval_time_t left_of(apr_time_t start, apr_time_t mono)
{
    apr_interval_time_t left = start ? start + LLMGW_LIMITS_WINDOW - mono : 0;
    return left > 0 ? left : 0;
}

static int has(apr_int64_t limit)
{
    return limit != LLMGW_UNSET && limit > 0;
}

static void verdict_fill(const llmgw_limits_slot_t *s, const llmgw_limits_cfg_t *lim,
                         const llmgw_budget_cfg_t *b, apr_time_t mono, llmgw_limits_verdict_t *v)
{
    v->limit_requests = has(lim->rpm) ? lim->rpm : -1;
    v->remaining_requests = has(lim->rpm) ? lim->rpm - s->req_count : -1;
    if (has(lim->rpm) && v->remaining_requests < 0)
        v->remaining_requests = 0;
    v->reset_requests = left_of(s->req_start, mono);
    v->limit_tokens = has(lim->tpm) ? lim->tpm : -1;
    v->remaining_tokens = has(lim->tpm) ? lim->tpm - s->tok_count : -1;
    if (has(lim->tpm) && v->remaining_tokens < 0)
        v->remaining_tokens = 0;
    v->reset_tokens = left_of(s->tok_start, mono);
    v->budget = b ? b->nusd : 0;
    v->spent = s->spent_base + s->local_total;
}

/* ---- admission and settlement ------------------------------------------ */

static void cell_add(llmgw_limits_row_t *row, int index, int concurrent, apr_int64_t cost)
{
    llmgw_limits_cell_t *cell;

    if (!row || index < 0 || index >= (int)row->cells)
        return;
    cell = &row->cell[index];
    if (concurrent > 0)
        apr_atomic_inc32(&cell->concurrent);
    else if (concurrent < 0 && apr_atomic_read32(&cell->concurrent) > 0)
        apr_atomic_dec32(&cell->concurrent);
    if (cost)
        apr_atomic_add64(&cell->reserved, (apr_uint64_t)cost);
}

apr_status_t llmgw_limits_admit(llmgw_limits_slot_t *s, llmgw_limits_row_t *row,
                                const llmgw_limits_cfg_t *lim, const llmgw_budget_cfg_t *budget,
                                llmgw_stats_time_t now, apr_int64_t tokens, apr_int64_t cost,
                                llmgw_limits_hold_t *hold, llmgw_limits_verdict_t *v)
{
    apr_time_t mono = mono_of(now);
    const llmgw_budget_cfg_t *b = budget && budget->nusd > 0 ? budget : NULL;
    int refused = -1;

    memset(hold, 0, sizeof(*hold));
    hold->slot = -1;
    memset(v, 0, sizeof(*v));
    v->retry_after = -1;
    if (!s)
        return APR_EINVAL;
    if (tokens < 0)
        tokens = 0;
    if (cost < 0)
        cost = 0;
    lock_word(&s->lock);
    roll_windows(s, mono);
    roll_period(s, b, now.wall);
    if (has(lim->rpm) && s->req_count >= lim->rpm) {
        refused = LLMGW_REFUSED_RPM;
        v->retry_after = left_of(s->req_start, mono);
    }
    else if (has(lim->tpm) && s->tok_count + tokens > lim->tpm) {
        refused = LLMGW_REFUSED_TPM;
        /* A request larger than the whole limit never fits: no time helps. */
        v->retry_after = tokens > lim->tpm ? -1 : left_of(s->tok_start, mono);
    }
    else if (has(lim->concurrent) && s->concurrent >= lim->concurrent) {
        refused = LLMGW_REFUSED_CONCURRENT;
        v->retry_after = apr_time_from_sec(1);
    }
    else if (b && s->spent_base + s->local_total + s->reserved >= b->nusd) {
        refused = LLMGW_REFUSED_BUDGET;
        v->retry_after = llmgw_period_next(b->period, now.wall) - now.wall;
    }
    if (refused >= 0) {
        s->refused[refused]++;
        v->refused = (llmgw_refused_e)refused;
        verdict_fill(s, lim, b, mono, v);
        unlock_word(&s->lock);
        return APR_EAGAIN;
    }
    if (!s->req_start)
        s->req_start = mono;
    if (!s->tok_start)
        s->tok_start = mono;
    s->req_count++;
    s->tok_count += tokens;
    s->concurrent++;
    s->reserved += cost;
    s->requests++;
    s->last_used = now.wall;
    hold->slot = (int)s->index;
    hold->tok_start = s->tok_start;
    hold->tokens = tokens;
    hold->cost = cost;
    hold->concurrent = 1;
    verdict_fill(s, lim, b, mono, v);
    unlock_word(&s->lock);
    cell_add(row, (int)s->index, 1, cost);
    return APR_SUCCESS;
}

void llmgw_limits_settle(llmgw_limits_slot_t *s, llmgw_limits_row_t *row, llmgw_limits_hold_t *hold,
                         llmgw_stats_time_t now, const llmgw_budget_cfg_t *budget,
                         apr_int64_t prompt, apr_int64_t completion, apr_int64_t cost)
{
    apr_time_t mono = mono_of(now);
    const llmgw_budget_cfg_t *b = budget && budget->nusd > 0 ? budget : NULL;
    apr_int64_t used = (prompt > 0 ? prompt : 0) + (completion > 0 ? completion : 0);

    if (!s || hold->slot != (int)s->index)
        return;
    lock_word(&s->lock);
    roll_windows(s, mono);
    roll_period(s, b, now.wall);
    if (s->tok_start && s->tok_start == hold->tok_start) {
        s->tok_count += used - hold->tokens;
        if (s->tok_count < 0)
            s->tok_count = 0;
    }
    else if (used > hold->tokens) {
        /* Its window is gone: only what exceeded the reservation is new. */
        if (!s->tok_start)
            s->tok_start = mono;
        s->tok_count += used - hold->tokens;
    }
    if (hold->concurrent && s->concurrent > 0)
        s->concurrent--;
    s->reserved = s->reserved > hold->cost ? s->reserved - hold->cost : 0;
    if (cost > 0) {
        if (b)
            s->local_total += cost;
        s->cost_total += cost;
    }
    s->prompt_tokens += prompt > 0 ? prompt : 0;
    s->completion_tokens += completion > 0 ? completion : 0;
    unlock_word(&s->lock);
    cell_add(row, (int)s->index, hold->concurrent ? -1 : 0, -hold->cost);
    hold->slot = -1;
    hold->concurrent = 0;
    hold->cost = hold->tokens = 0;
}

void llmgw_limits_peek(llmgw_limits_slot_t *s, const llmgw_limits_cfg_t *lim,
                       const llmgw_budget_cfg_t *budget, llmgw_stats_time_t now,
                       llmgw_limits_verdict_t *v)
{
    llmgw_limits_slot_t copy;
    const llmgw_budget_cfg_t *b = budget && budget->nusd > 0 ? budget : NULL;

    memset(v, 0, sizeof(*v));
    v->retry_after = -1;
    if (!s)
        return;
    lock_word(&s->lock);
    memcpy(&copy, s, sizeof(copy));
    unlock_word(&s->lock);
    roll_windows(&copy, mono_of(now));
    roll_period(&copy, b, now.wall);
    verdict_fill(&copy, lim, b, mono_of(now), v);
}

/* ---- backends ------------------------------------------------------------ */

int llmgw_limits_backend_full(llmgw_limits_slot_t *s, const llmgw_limits_cfg_t *lim,
                              llmgw_stats_time_t now, apr_int64_t tokens, apr_interval_time_t *wait)
{
    llmgw_limits_slot_t copy;
    apr_time_t mono = mono_of(now);
    int full = 0;

    if (wait)
        *wait = -1;
    if (!s || (!has(lim->rpm) && !has(lim->tpm)))
        return 0;
    lock_word(&s->lock);
    memcpy(&copy, s, sizeof(copy));
    unlock_word(&s->lock);
    roll_windows(&copy, mono);
    if (has(lim->rpm) && copy.req_count + 1 > lim->rpm) {
        full = 1;
        if (wait)
            *wait = left_of(copy.req_start, mono);
    }
    if (has(lim->tpm) && copy.tok_count > 0 && copy.tok_count + tokens > lim->tpm) {
        apr_interval_time_t left = left_of(copy.tok_start, mono);
        if (wait && (!full || left > *wait))
            *wait = left;
        full = 1;
    }
    return full;
}

void llmgw_limits_backend_take(llmgw_limits_slot_t *s, llmgw_stats_time_t now, apr_int64_t tokens,
                               llmgw_limits_hold_t *hold)
{
    apr_time_t mono = mono_of(now);

    memset(hold, 0, sizeof(*hold));
    hold->slot = -1;
    if (!s)
        return;
    lock_word(&s->lock);
    roll_windows(s, mono);
    if (!s->req_start)
        s->req_start = mono;
    if (!s->tok_start)
        s->tok_start = mono;
    s->req_count++;
    s->tok_count += tokens > 0 ? tokens : 0;
    s->requests++;
    s->last_used = now.wall;
    hold->slot = (int)s->index;
    hold->tok_start = s->tok_start;
    hold->tokens = tokens > 0 ? tokens : 0;
    unlock_word(&s->lock);
}

/* ---- budgets and the ledger -------------------------------------------- */

void llmgw_limits_committed(llmgw_limits_slot_t *s, const llmgw_budget_cfg_t *budget,
                            apr_time_t when, apr_int64_t cost)
{
    if (!s || !budget || budget->nusd <= 0 || cost <= 0)
        return;
    lock_word(&s->lock);
    if (llmgw_period_start(budget->period, when) == s->period_start)
        s->committed_total += cost;
    unlock_word(&s->lock);
}

apr_int64_t llmgw_limits_committed_total(llmgw_limits_slot_t *s, const llmgw_budget_cfg_t *budget,
                                         apr_time_t now)
{
    apr_int64_t v;

    if (!s)
        return 0;
    lock_word(&s->lock);
    roll_period(s, budget, now);
    v = s->committed_total;
    unlock_word(&s->lock);
    return v;
}

void llmgw_limits_set_base(llmgw_limits_slot_t *s, const llmgw_budget_cfg_t *budget, apr_time_t now,
                           apr_int64_t db_total, apr_int64_t committed_before)
{
    if (!s || !budget || budget->nusd <= 0)
        return;
    lock_word(&s->lock);
    roll_period(s, budget, now);
    if (llmgw_period_start(budget->period, now) == s->period_start) {
        s->spent_base = db_total - committed_before;
        if (s->spent_base < 0)
            s->spent_base = 0;
    }
    unlock_word(&s->lock);
}

int llmgw_limits_refresh_claim(void *base, apr_time_t mono)
{
    llmgw_limits_header_t *h = base;
    apr_uint64_t due;

    if (!is_ours(base))
        return 0;
    due = apr_atomic_read64(&h->refresh_at);
    if ((apr_uint64_t)mono < due)
        return 0;
    return apr_atomic_cas64(&h->refresh_at, (apr_uint64_t)(mono + LLMGW_LIMITS_REFRESH), due) ==
           due;
}

apr_status_t llmgw_limits_view(void *base, int index, const llmgw_budget_cfg_t *budget,
                               llmgw_stats_time_t now, llmgw_limits_view_t *out)
{
    llmgw_limits_slot_t *s = llmgw_limits_slot(base, index);
    const llmgw_budget_cfg_t *b = budget && budget->nusd > 0 ? budget : NULL;

    if (!s || !is_ours(base))
        return APR_EINVAL;
    lock_word(&s->lock);
    memcpy(&out->s, s, sizeof(out->s));
    unlock_word(&s->lock);
    roll_windows(&out->s, mono_of(now));
    roll_period(&out->s, b, now.wall);
    out->spent = b ? out->s.spent_base + out->s.local_total : out->s.cost_total;
    return APR_SUCCESS;
}
