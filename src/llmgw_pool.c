/*
 * Pools: candidate expansion (nested pools flattened depth-first, with the
 * strategy of each level), the retry/fallback decision table, and the error
 * a client gets when every candidate failed, and the circuit breaker's
 * policy: which failures count against a member and when it cools down
 * (the shared stats only keep the counters and deadlines it sets).
 *
 * Everything here is pure apart from reading the shared stats (and the
 * round-robin strategy bumping its pool's cursor); results come from the
 * request pool passed in.
 */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_pool.h"
#include "llmgw_stats.h"

int llmgw_pool_failure_threshold(const llmgw_backend_t *pool)
{
    if (!pool)
        return 0;
    return pool->failure_threshold == LLMGW_UNSET ? LLMGW_DEFAULT_FAILURE_THRESHOLD
                                                  : pool->failure_threshold;
}

apr_interval_time_t llmgw_pool_cooldown(const llmgw_backend_t *pool)
{
    if (!pool || pool->cooldown == LLMGW_UNSET)
        return LLMGW_DEFAULT_COOLDOWN;
    return pool->cooldown;
}

apr_interval_time_t llmgw_pool_cooldown_next(const llmgw_backend_t *pool, apr_interval_time_t last,
                                             int probe)
{
    apr_interval_time_t cap = llmgw_pool_cooldown(pool);
    apr_interval_time_t next;

    if (last > 0 && !probe)
        next = last;
    else if (last > 0)
        next = last > cap / 2 ? cap : 2 * last;
    else
        next = LLMGW_COOLDOWN_BASE;
    return next < cap ? next : cap;
}

int llmgw_pool_record_failure(llmgw_stats_slot_t *s, llmgw_stats_row_t *row, llmgw_stats_time_t now,
                              llmgw_fail_e fail, int status, int threshold,
                              apr_interval_time_t cooldown)
{
    int cls = llmgw_stats_classify(fail, status);
    llmgw_action_e action;

    if (!s)
        return 0;
    llmgw_stats_error(s, row, now, cls);
    if (cls < 0 || threshold <= 0)
        return 0;
    action = llmgw_error_action(fail, status);
    if (action == LLMGW_ACTION_FALLBACK && (status == 401 || status == 402 || status == 403))
        return llmgw_stats_strike(s, now, 1, cooldown);
    if (action != LLMGW_ACTION_RETRY)
        return 0;
    return llmgw_stats_strike(s, now, threshold, cooldown);
}

/* ------------------------------------------------------------------ */
/* Candidate expansion                                                 */

typedef struct {
    apr_pool_t *p;
    const llmgw_pool_env_t *env;
    const char *model;
    apr_uint64_t rng;
    llmgw_candidates_t *out;
} expand_t;

/* One member of a pool level: its candidates and what its parent's strategy sees. */
typedef struct {
    apr_array_header_t *list; /* llmgw_candidate_t, in order */
    llmgw_strategy_cand_t feat;
    int probe; /* its first candidate is due a probe */
} member_t;

static int slot_of(const expand_t *x, const llmgw_backend_t *b)
{
    const llmgw_pool_env_t *env = x->env;

    if (!env->stats || !env->slot_of || b->index < 0 || b->index >= env->nslots)
        return -1;
    return env->slot_of[b->index];
}

static llmgw_stats_slot_t *slot_ptr(const expand_t *x, int slot)
{
    return slot >= 0 ? llmgw_stats_slot(x->env->stats, slot) : NULL;
}

/* An operator took @p b out of rotation: it is left out, counted, never probed. */
static int drained(expand_t *x, const llmgw_backend_t *b)
{
    if (!llmgw_stats_drained(slot_ptr(x, slot_of(x, b))))
        return 0;
    x->out->drained++;
    return 1;
}

/*
 * The model a pool member sends (DESIGN.md 5): the request's when the
 * member takes it, else its own defaultModel (cross-provider fallback);
 * NULL when it has neither.
 */
static const char *member_model(const llmgw_backend_t *b, const char *model, int *prefers)
{
    *prefers = model && llmgw_backend_accepts(b, model, 1);
    if (*prefers)
        return model;
    return b->default_model;
}

static void read_features(const expand_t *x, llmgw_strategy_cand_t *f, const llmgw_stats_slot_t *s)
{
    llmgw_stats_load_t load;

    llmgw_stats_load(x->env->stats, s, &load);
    f->inflight = load.inflight;
    f->latency_us = load.latency_us;
    f->ttfb_us = load.ttfb_us;
    f->samples = load.samples;
    f->requests = load.requests;
}

static void note_cooling(expand_t *x, const llmgw_stats_slot_t *s)
{
    /* 0 when expired, and a probe is already running */
    apr_interval_time_t left = llmgw_stats_cooldown_left(s, x->env->now.mono);

    if (left < 0)
        left = 0;
    x->out->cooling++;
    if (x->out->cooldown_left < 0 || left < x->out->cooldown_left)
        x->out->cooldown_left = left;
}

/* A provider backend as a member of @p pool: zero or one candidate. */
static void leaf_member(expand_t *x, const llmgw_backend_t *b, const llmgw_backend_t *pool,
                        member_t *m)
{
    llmgw_candidate_t *c;
    llmgw_stats_slot_t *s = slot_ptr(x, slot_of(x, b));
    llmgw_stats_avail_e avail = llmgw_stats_peek(s, x->env->now);
    int prefers;
    const char *model = member_model(b, x->model, &prefers);
    apr_interval_time_t wait = -1;

    m->feat.prefers_model = prefers;
    if (drained(x, b))
        return;
    if (s)
        read_features(x, &m->feat, s);
    if (avail == LLMGW_STATS_COOLING) {
        note_cooling(x, s);
        return;
    }
    /* At its provider's quota: unavailable to the strategy, like a cooling
     * member, until its window ends (lone backends are not asked: they are
     * always their own candidate). */
    if (x->env->full && model && x->env->full(x->env->full_baton, b, &wait)) {
        x->out->limited++;
        if (wait >= 0 && (x->out->limited_left < 0 || wait < x->out->limited_left))
            x->out->limited_left = wait;
        return;
    }
    if (!model) {
        x->out->no_model++;
        return;
    }
    m->feat.available = 1;
    m->probe = avail == LLMGW_STATS_PROBE;
    c = apr_array_push(m->list);
    c->backend = b;
    c->pool = pool;
    c->model = model;
    c->prefers_model = prefers;
    c->probe = m->probe;
    c->slot = slot_of(x, b);
    c->pool_slot = slot_of(x, pool);
}

static int listed(const apr_array_header_t *list, const llmgw_backend_t *b)
{
    int i;

    for (i = 0; i < list->nelts; i++) {
        if (APR_ARRAY_IDX(list, i, llmgw_candidate_t).backend == b)
            return 1;
    }
    return 0;
}

static void append_new(apr_array_header_t *into, const apr_array_header_t *from)
{
    int i;

    for (i = 0; i < from->nelts; i++) {
        const llmgw_candidate_t *c = &APR_ARRAY_IDX(from, i, llmgw_candidate_t);
        if (!listed(into, c->backend))
            *(llmgw_candidate_t *)apr_array_push(into) = *c;
    }
}

/* Stable: members due a probe first, the rest in the strategy's order. */
static void probes_first(const member_t *members, int *order, int n_usable)
{
    int i, j, k = 0;

    for (i = 0; i < n_usable; i++) {
        if (!members[order[i]].probe)
            continue;
        for (j = i; j > k; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
        k++;
    }
}

static apr_status_t expand_pool(expand_t *x, const llmgw_backend_t *pool, int depth,
                                member_t *self);

static apr_status_t expand_member(expand_t *x, const llmgw_pool_member_t *pm,
                                  const llmgw_backend_t *pool, int depth, member_t *m)
{
    memset(m, 0, sizeof(*m));
    m->list = apr_array_make(x->p, 2, sizeof(llmgw_candidate_t));
    if (!pm->backend)
        return APR_SUCCESS; /* unresolved: configtest prevents it */
    if (pm->backend->type == LLMGW_BACKEND_POOL && drained(x, pm->backend)) {
        m->feat.weight = pm->weight;
        return APR_SUCCESS; /* a drained nested pool: no candidates, like a dead member */
    }
    if (pm->backend->type == LLMGW_BACKEND_POOL) {
        apr_status_t rv = expand_pool(x, pm->backend, depth + 1, m);
        if (rv != APR_SUCCESS)
            return rv;
    }
    else {
        leaf_member(x, pm->backend, pool, m);
    }
    m->feat.weight = pm->weight;
    return APR_SUCCESS;
}

/* A strategy from another module is trusted no further than its output. */
static int order_valid(const int *order, int n, int n_usable, char *seen)
{
    int i;

    if (n_usable < 0 || n_usable > n)
        return 0;
    for (i = 0; i < n; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]])
            return 0;
        seen[order[i]] = 1;
    }
    return 1;
}

/*
 * Order one pool level and flatten it into self->list. A nested pool looks
 * to its parent's strategy like its own first choice (that is what would
 * serve the request), with the weight the parent gives it.
 */
static apr_status_t expand_pool(expand_t *x, const llmgw_backend_t *pool, int depth, member_t *self)
{
    const llmgw_strategy_t *st = pool->strategy;
    int i, n = pool->members ? pool->members->nelts : 0, n_usable = 0;
    member_t *members;
    llmgw_strategy_cand_t *feats;
    int *order;
    llmgw_stats_slot_t *own = slot_ptr(x, slot_of(x, pool));
    apr_status_t rv;

    if (depth > LLMGW_POOL_MAX_DEPTH || !st || !st->select)
        return APR_EINVAL;
    if (n == 0)
        return APR_SUCCESS;
    members = apr_pcalloc(x->p, sizeof(*members) * n);
    feats = apr_pcalloc(x->p, sizeof(*feats) * n);
    order = apr_pcalloc(x->p, sizeof(*order) * n);
    for (i = 0; i < n; i++) {
        rv = expand_member(x, &APR_ARRAY_IDX(pool->members, i, llmgw_pool_member_t), pool, depth,
                           &members[i]);
        if (rv != APR_SUCCESS)
            return rv;
        feats[i] = members[i].feat;
    }
    rv = st->select(feats, n, llmgw_strategy_rand(&x->rng), llmgw_stats_rr_cursor(own), order,
                    &n_usable);
    if (rv != APR_SUCCESS && rv != APR_ENOENT)
        return rv;
    if (!order_valid(order, n, n_usable, apr_pcalloc(x->p, (apr_size_t)n)))
        return APR_EINVAL;
    probes_first(members, order, n_usable);
    if (!pool->fallback && n_usable > 1)
        n_usable = 1;
    for (i = 0; i < n_usable; i++)
        append_new(self->list, members[order[i]].list);
    if (n_usable > 0) {
        self->feat = members[order[0]].feat;
        self->probe = members[order[0]].probe;
    }
    self->feat.available = self->list->nelts > 0;
    return APR_SUCCESS;
}

static llmgw_candidates_t *candidates_new(apr_pool_t *p)
{
    llmgw_candidates_t *out = apr_pcalloc(p, sizeof(*out));

    out->cooldown_left = -1;
    out->limited_left = -1;
    return out;
}

/* A route to one backend: itself, whatever its cooldown. */
static apr_status_t lone_backend(expand_t *x, const llmgw_backend_t *b)
{
    llmgw_candidate_t *c;
    const char *model = x->model ? x->model : b->default_model;

    if (x->model && !llmgw_backend_accepts(b, x->model, 0))
        return LLMGW_ENOMODEL;
    if (!model) {
        x->out->no_model = 1;
        return LLMGW_EBADREQ;
    }
    /* Unlike a cooldown, a drain is an operator's decision: honoured even
     * where there is nothing to fall back to. */
    if (drained(x, b))
        return APR_ENOENT;
    c = apr_pcalloc(x->p, sizeof(*c));
    c->backend = b;
    c->model = model;
    c->prefers_model = x->model && llmgw_backend_serves(b, x->model);
    c->slot = slot_of(x, b);
    c->pool_slot = -1;
    x->out->items = c;
    x->out->nelts = 1;
    return APR_SUCCESS;
}

/* The pool under @p b (itself included) that @p model names, depth first. */
static const llmgw_backend_t *named_pool(const llmgw_backend_t *b, const char *model, int depth)
{
    int i;

    if (depth > LLMGW_POOL_MAX_DEPTH || b->type != LLMGW_BACKEND_POOL)
        return NULL;
    if (llmgw_pool_named(b, model))
        return b;
    for (i = 0; b->members && i < b->members->nelts; i++) {
        const llmgw_backend_t *m = APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t).backend;
        const llmgw_backend_t *found = m ? named_pool(m, model, depth + 1) : NULL;
        if (found)
            return found;
    }
    return NULL;
}

/* 1 when some provider backend under the pool @p b takes @p model. */
static int pool_accepts(const llmgw_backend_t *b, const char *model, int depth)
{
    int i;

    if (depth > LLMGW_POOL_MAX_DEPTH)
        return 0;
    for (i = 0; b->members && i < b->members->nelts; i++) {
        const llmgw_backend_t *m = APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t).backend;
        if (!m)
            continue;
        if (m->type == LLMGW_BACKEND_POOL ? pool_accepts(m, model, depth + 1)
                                          : llmgw_backend_accepts(m, model, 1))
            return 1;
    }
    return 0;
}

apr_status_t llmgw_pool_candidates(apr_pool_t *p, const llmgw_backend_t *target, const char *model,
                                   const llmgw_pool_env_t *env, llmgw_candidates_t **out)
{
    expand_t x;
    member_t root;
    const llmgw_backend_t *route_target;
    apr_status_t rv;

    *out = candidates_new(p);
    if (!target || !env)
        return APR_EINVAL;
    x.p = p;
    x.env = env;
    x.model = model && *model ? model : NULL;
    x.rng = env->seed;
    x.out = *out;
    if (target->type != LLMGW_BACKEND_POOL)
        return lone_backend(&x, target);
    route_target = target;
    if (x.model) {
        /* A pool's name or alias is a virtual model: that pool, every
         * member with its own defaultModel. A model nobody takes is never
         * silently replaced by another. */
        const llmgw_backend_t *named = named_pool(target, x.model, 0);
        if (named) {
            target = named;
            x.model = NULL;
        }
        else if (!pool_accepts(target, x.model, 0)) {
            return LLMGW_ENOMODEL;
        }
    }
    /* The route's pool, or the pool its model names, drained as a whole. */
    if (drained(&x, route_target) || (target != route_target && drained(&x, target)))
        return APR_ENOENT;
    memset(&root, 0, sizeof(root));
    root.list = apr_array_make(p, 4, sizeof(llmgw_candidate_t));
    rv = expand_pool(&x, target, 0, &root);
    if (rv != APR_SUCCESS)
        return rv;
    (*out)->nelts = root.list->nelts;
    (*out)->items = (llmgw_candidate_t *)root.list->elts;
    if (root.list->nelts > 0)
        return APR_SUCCESS;
    return (*out)->no_model > 0 && (*out)->cooling == 0 && (*out)->drained == 0 ? LLMGW_EBADREQ
                                                                                : APR_ENOENT;
}

/* ------------------------------------------------------------------ */
/* The decision table                                                  */

static int may_retry_here(const llmgw_pool_outcome_t *o)
{
    int max_retries = o->max_retries > 0 ? o->max_retries : 0;

    if (o->action != LLMGW_ACTION_RETRY || o->cooling || o->attempts > max_retries)
        return 0;
    return o->hint < 0 || o->max_wait < 0 || o->hint <= o->max_wait;
}

llmgw_pool_next_e llmgw_pool_next(const llmgw_pool_outcome_t *o)
{
    if (o->committed || o->action == LLMGW_ACTION_FINAL)
        return LLMGW_POOL_STOP;
    if (may_retry_here(o))
        return LLMGW_POOL_RETRY_SAME;
    if (o->fallback && (o->action == LLMGW_ACTION_RETRY || o->action == LLMGW_ACTION_FALLBACK))
        return LLMGW_POOL_NEXT_MEMBER;
    return LLMGW_POOL_STOP;
}

/* ------------------------------------------------------------------ */
/* Every candidate failed                                              */

static int is_http(const llmgw_pool_failure_t *f, int status)
{
    return f->fail == LLMGW_FAIL_HTTP && f->status == status;
}

static int all_http(const llmgw_pool_failure_t *f, int n, int status)
{
    int i;

    for (i = 0; i < n; i++) {
        if (!is_http(&f[i], status))
            return 0;
    }
    return n > 0;
}

static int has_code(const llmgw_pool_failure_t *f, const char *code)
{
    return f->error && f->error->code && strcmp(f->error->code, code) == 0;
}

/* ", 2 cooling down, 1 drained": the members that were not tried, and why. */
static const char *skipped(apr_pool_t *p, int cooling, int drained)
{
    return apr_pstrcat(p, cooling ? apr_psprintf(p, ", %d cooling down", cooling) : "",
                       drained ? apr_psprintf(p, ", %d drained", drained) : "", NULL);
}

static const char *context(apr_pool_t *p, const char *pool_name, int n, int cooling, int drained)
{
    if (!pool_name)
        return "";
    return apr_psprintf(p, "Pool \"%s\": all %d tried member(s) failed%s; last: ", pool_name, n,
                        skipped(p, cooling, drained));
}

/* Nothing was tried: every candidate cooling down or drained. */
static llmgw_error_t *none_available(apr_pool_t *p, const char *pool_name, int cooling, int drained,
                                     apr_interval_time_t cooldown_left,
                                     apr_interval_time_t *retry_after)
{
    /* A drain lasts until an operator ends it: no time to tell the client. */
    *retry_after = cooling > 0 && cooldown_left >= 0 ? cooldown_left : -1;
    if (drained == 0 && !pool_name)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                                "The backend is cooling down after repeated failures.");
    if (drained == 0)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                                "Pool \"%s\": every member is cooling down after repeated "
                                "failures.",
                                pool_name);
    if (!pool_name)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                                "The backend is drained (taken out of rotation by an operator).");
    if (cooling == 0)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                                "Pool \"%s\" is drained: no member is in rotation (taken out "
                                "by an operator).",
                                pool_name);
    return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                            "Pool \"%s\": no member is available (%d cooling down after "
                            "repeated failures, %d drained by an operator).",
                            pool_name, cooling, drained);
}

static llmgw_error_t *all_rate_limited(apr_pool_t *p, const llmgw_pool_failure_t *f, int n,
                                       apr_interval_time_t *retry_after)
{
    int i, quota = 1;
    const llmgw_pool_failure_t *last = &f[n - 1];

    for (i = 0; i < n; i++) {
        quota = quota && has_code(&f[i], "insufficient_quota");
        if (f[i].hint >= 0 && (*retry_after < 0 || f[i].hint < *retry_after))
            *retry_after = f[i].hint;
    }
    if (quota) {
        /* Waiting does not clear a quota: no Retry-After. */
        *retry_after = -1;
        return llmgw_error_make(p, 429, "insufficient_quota", "insufficient_quota", NULL,
                                "backend \"%s\" has exhausted its quota", last->backend);
    }
    return llmgw_error_exhausted(p, last->fail, last->status, last->backend);
}

static llmgw_error_t *all_not_found(apr_pool_t *p, const llmgw_pool_failure_t *last)
{
    if (last->error && last->error->status == 404)
        return llmgw_error_make(p, 404, last->error->type, last->error->code, last->error->param,
                                "%s", last->error->message);
    return llmgw_error_make(p, 404, NULL, "model_not_found", "model",
                            "backend \"%s\" does not know the requested model", last->backend);
}

/* A 400 saying the request exceeds the member's context window (translators normalise it). */
static int is_context(const llmgw_pool_failure_t *f)
{
    return f->fail == LLMGW_FAIL_HTTP && f->status >= 400 && f->status < 500 &&
           has_code(f, "context_length_exceeded");
}

static int all_context(const llmgw_pool_failure_t *f, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (!is_context(&f[i]))
            return 0;
    }
    return n > 0;
}

/*
 * The last failure that is neither a 429 nor a context window exceeded:
 * those only decide when all failures were of their kind (another member
 * that was merely down says more about what to do next).
 */
static const llmgw_pool_failure_t *deciding(const llmgw_pool_failure_t *f, int n)
{
    int i;

    for (i = n - 1; i >= 0; i--) {
        if (!is_http(&f[i], 429) && !is_context(&f[i]))
            return &f[i];
    }
    return &f[n - 1];
}

/*
 * A member whose translator refused the request (a 4xx of the gateway's own,
 * no upstream contacted): the candidate loop records it as an internal
 * failure carrying that error. It says nothing about the upstreams.
 */
static int is_refusal(const llmgw_pool_failure_t *f)
{
    return f->fail == LLMGW_FAIL_INTERNAL && f->error && f->error->status >= 400 &&
           f->error->status < 500;
}

/* The failures of @p f that are not refusals (a copy from @p p), *m of them. */
static const llmgw_pool_failure_t *upstream_failures(apr_pool_t *p, const llmgw_pool_failure_t *f,
                                                     int n, int *m)
{
    llmgw_pool_failure_t *out = apr_palloc(p, sizeof(*out) * (apr_size_t)n);
    int i;

    *m = 0;
    for (i = 0; i < n; i++) {
        if (!is_refusal(&f[i]))
            out[(*m)++] = f[i];
    }
    return out;
}

llmgw_error_t *llmgw_pool_exhausted(apr_pool_t *p, const char *pool_name,
                                    const llmgw_pool_failure_t *failures, int n, int cooling,
                                    int drained, apr_interval_time_t cooldown_left,
                                    apr_interval_time_t *retry_after)
{
    const llmgw_pool_failure_t *last, *tried;
    llmgw_error_t *e;
    int m;

    *retry_after = -1;
    if (n <= 0 || !failures)
        return none_available(p, pool_name, cooling, drained, cooldown_left, retry_after);
    if (all_context(failures, n)) {
        /* No member's window was large enough: the last provider's own 400. */
        const llmgw_error_t *le = failures[n - 1].error;
        return llmgw_error_make(p, 400, le->type, le->code, le->param, "%s", le->message);
    }
    tried = upstream_failures(p, failures, n, &m);
    if (m == 0) {
        /* Every member refused the request itself: the last refusal is the answer. */
        e = apr_pmemdup(p, failures[n - 1].error, sizeof(*e));
    }
    else if (all_http(tried, m, 429))
        e = all_rate_limited(p, tried, m, retry_after);
    else if (all_http(tried, m, 404))
        e = all_not_found(p, &tried[m - 1]);
    else {
        last = deciding(tried, m);
        e = llmgw_error_exhausted(p, last->fail, last->status, last->backend);
    }
    e->message = apr_pstrcat(p, context(p, pool_name, n, cooling, drained), e->message, NULL);
    return e;
}
