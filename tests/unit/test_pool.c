/* Check suite for pools: candidates, the fallback decision table, the final error
 * (src/llmgw_pool.c). */
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "llmgw_config.h"
#include "llmgw_pool.h"
#include "llmgw_stats.h"
#include "test_util.h"

#define T0 apr_time_from_sec(1700000000)
#define SEC(n) apr_time_from_sec(n)
/* Both clocks at @p t. */
#define AT(t) ((llmgw_stats_time_t){(t), (t)})

/* Three providers; a and c list gpt-4o, b does not; d has no defaultModel. */
static const char backends_yaml[] =
    "backends:\n"
    "  - name: a\n"
    "    type: openai\n"
    "    config: {apiKey: k, defaultModel: gpt-4o, models: [gpt-4o, gpt-4o-mini]}\n"
    "  - name: b\n"
    "    type: anthropic\n"
    "    config: {apiKey: k, defaultModel: claude-x}\n"
    "  - name: c\n"
    "    type: mistral\n"
    "    config: {apiKey: k, defaultModel: m-large, models: [gpt-4o]}\n"
    "  - name: d\n"
    "    type: openai\n"
    "    config: {apiKey: k, maxRetries: 1}\n";

typedef struct {
    llmgw_config_t *cfg;
    void *stats;
    int *slot_of;
    llmgw_pool_env_t env;
} world_t;

/* Parse backends_yaml plus @p pools_yaml with @p opts, with a stats segment holding every
 * backend. */
static world_t *world_opts(const char *pools_yaml, const llmgw_config_opts_t *opts)
{
    world_t *w = apr_pcalloc(test_pool, sizeof(*w));
    const char *text = apr_pstrcat(test_pool, backends_yaml, pools_yaml, "routes: []\n", NULL);
    const char *err = NULL;
    const char **names;
    int i, n;
    apr_size_t size;

    ck_assert_msg(llmgw_config_parse_opts(&w->cfg, test_pool, test_pool, "t.yaml", text,
                                          strlen(text), opts, &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    n = w->cfg->backends->nelts;
    names = apr_pcalloc(test_pool, sizeof(*names) * n);
    for (i = 0; i < n; i++)
        names[i] = APR_ARRAY_IDX(w->cfg->backends, i, const llmgw_backend_t *)->name;
    size = llmgw_stats_size(16, 4);
    w->stats = apr_pcalloc(test_pool, size);
    ck_assert_int_eq(llmgw_stats_init(w->stats, 16, 4, T0), APR_SUCCESS);
    w->slot_of = apr_pcalloc(test_pool, sizeof(int) * n);
    ck_assert_int_eq(llmgw_stats_assign(w->stats, names, NULL, n, w->slot_of), APR_SUCCESS);
    w->env.stats = w->stats;
    w->env.slot_of = w->slot_of;
    w->env.nslots = n;
    w->env.now = AT(T0);
    w->env.seed = 1;
    return w;
}

static world_t *world(const char *pools_yaml)
{
    return world_opts(pools_yaml, NULL);
}

static const llmgw_backend_t *be(world_t *w, const char *name)
{
    const llmgw_backend_t *b = llmgw_config_backend(w->cfg, name);

    ck_assert_ptr_nonnull(b);
    return b;
}

static llmgw_stats_slot_t *slot(world_t *w, const char *name)
{
    return llmgw_stats_slot(w->stats, w->slot_of[be(w, name)->index]);
}

/* Candidates of @p target as "name:model name:model ...", probes marked with "!". */
static const char *cands(world_t *w, const char *target, const char *model, apr_status_t expect,
                         llmgw_candidates_t **out)
{
    llmgw_candidates_t *c;
    const char *s = "";
    int i;

    ck_assert_int_eq(llmgw_pool_candidates(test_pool, be(w, target), model, &w->env, &c), expect);
    for (i = 0; i < c->nelts; i++)
        s = apr_pstrcat(test_pool, s, i ? " " : "", c->items[i].probe ? "!" : "",
                        c->items[i].backend->name, ":", c->items[i].model, NULL);
    if (out)
        *out = c;
    return s;
}

static void setup(void)
{
    test_pool_setup();
    apr_atomic_init(test_pool);
}

/* ------------------------------------------------------------------ */
/* Model resolution (DESIGN.md 5)                                      */

START_TEST(test_lone_backend)
{
    world_t *w = world("");
    llmgw_candidates_t *c;
    int i;

    ck_assert_str_eq(cands(w, "a", "gpt-4o-mini", APR_SUCCESS, &c), "a:gpt-4o-mini");
    ck_assert_ptr_null(c->items[0].pool);
    ck_assert_int_eq(c->items[0].slot, w->slot_of[be(w, "a")->index]);
    ck_assert_int_eq(c->items[0].pool_slot, -1);
    ck_assert_int_eq(c->items[0].prefers_model, 1);
    /* Any model the client names is passed on; none means the defaultModel. */
    ck_assert_str_eq(cands(w, "b", "claude-other", APR_SUCCESS, NULL), "b:claude-other");
    ck_assert_str_eq(cands(w, "b", NULL, APR_SUCCESS, NULL), "b:claude-x");
    ck_assert_str_eq(cands(w, "b", "", APR_SUCCESS, NULL), "b:claude-x");
    ck_assert_str_eq(cands(w, "d", NULL, LLMGW_EBADREQ, NULL), "");
    ck_assert_str_eq(cands(w, "d", "anything", APR_SUCCESS, NULL), "d:anything");
    /* A models: list restricts the backend: anything else is refused, not replaced. */
    ck_assert_str_eq(cands(w, "a", "gpt-9-ultra", LLMGW_ENOMODEL, NULL), "");
    ck_assert_str_eq(cands(w, "c", "m-large", APR_SUCCESS, NULL), "c:m-large");
    /* A lone backend is tried even while cooling: there is nothing else. */
    for (i = 0; i < 5; i++)
        llmgw_pool_record_failure(slot(w, "a"), NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, SEC(30));
    ck_assert_str_eq(cands(w, "a", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
    ck_assert_int_eq(llmgw_pool_failure_threshold(NULL), 0);
}
END_TEST

START_TEST(test_pool_models)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: b}, {name: a}, {name: c}]\n");
    llmgw_candidates_t *c;

    /* a and c list gpt-4o and come first; b falls back with its own model. */
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, &c), "a:gpt-4o c:gpt-4o b:claude-x");
    ck_assert_int_eq(c->items[0].prefers_model, 1);
    ck_assert_int_eq(c->items[2].prefers_model, 0);
    ck_assert_ptr_eq(c->items[0].pool, be(w, "p"));
    ck_assert_int_eq(c->items[0].pool_slot, w->slot_of[be(w, "p")->index]);
    /* Listed as defaultModel counts as listed. */
    ck_assert_str_eq(cands(w, "p", "claude-x", APR_SUCCESS, NULL), "b:claude-x a:gpt-4o c:m-large");
    /* Nobody lists it: refused before any provider is asked, never replaced. */
    ck_assert_str_eq(cands(w, "p", "llama-3", LLMGW_ENOMODEL, &c), "");
    ck_assert_int_eq(c->nelts, 0);
    /* No model, or the pool's own name: every member with its own default. */
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "b:claude-x a:gpt-4o c:m-large");
    ck_assert_str_eq(cands(w, "p", "p", APR_SUCCESS, &c), "b:claude-x a:gpt-4o c:m-large");
    ck_assert_int_eq(c->items[0].prefers_model, 0);
}
END_TEST

START_TEST(test_pool_aliases)
{
    world_t *w = world("  - name: fast\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    aliases: [team-fast]\n"
                       "    backends: [{name: c}, {name: a}]\n"
                       "  - name: all\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    aliases: [team-default, everything]\n"
                       "    backends: [{name: b}, {name: fast}]\n");

    /* An alias is the pool as a virtual model. */
    ck_assert_str_eq(cands(w, "all", "team-default", APR_SUCCESS, NULL),
                     "b:claude-x c:m-large a:gpt-4o");
    ck_assert_str_eq(cands(w, "all", "everything", APR_SUCCESS, NULL),
                     "b:claude-x c:m-large a:gpt-4o");
    /* A nested pool's name or alias selects that pool alone. */
    ck_assert_str_eq(cands(w, "all", "fast", APR_SUCCESS, NULL), "c:m-large a:gpt-4o");
    ck_assert_str_eq(cands(w, "all", "team-fast", APR_SUCCESS, NULL), "c:m-large a:gpt-4o");
    /* A model of a nested member is taken across the tree; unknown ones are refused. */
    ck_assert_str_eq(cands(w, "all", "gpt-4o-mini", APR_SUCCESS, NULL),
                     "a:gpt-4o-mini c:m-large b:claude-x");
    ck_assert_str_eq(cands(w, "all", "gpt-9-ultra", LLMGW_ENOMODEL, NULL), "");
    ck_assert_int_eq(llmgw_pool_named(be(w, "all"), "everything"), 1);
    ck_assert_int_eq(llmgw_pool_named(be(w, "all"), "team-fast"), 0);
    ck_assert_int_eq(llmgw_pool_named(be(w, "a"), "a"), 0);
}
END_TEST

START_TEST(test_pool_member_without_default)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: d}, {name: b}]\n"
                       "  - name: q\n"
                       "    type: pool\n"
                       "    backends: [{name: d}]\n");
    llmgw_candidates_t *c;

    /* d has no defaultModel: it sends the request's model, or is left out. */
    ck_assert_str_eq(cands(w, "p", "llama-3", APR_SUCCESS, NULL), "d:llama-3 b:claude-x");
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "b:claude-x");
    ck_assert_int_eq(c->no_model, 1);
    /* Nobody can serve a request without a model: the client must name one. */
    cands(w, "q", NULL, LLMGW_EBADREQ, &c);
    ck_assert_int_eq(c->nelts, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Cooldown in the candidate list                                      */

START_TEST(test_cooling_members)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    failureThreshold: 2\n"
                       "    cooldown: 20s\n"
                       "    backends: [{name: a}, {name: b}, {name: c}]\n");
    const llmgw_backend_t *p = be(w, "p");
    llmgw_candidates_t *c;

    ck_assert_int_eq(llmgw_pool_failure_threshold(p), 2);
    ck_assert_int_eq(llmgw_pool_cooldown(p), SEC(20));
    llmgw_pool_record_failure(slot(w, "b"), NULL, AT(T0 - SEC(5)), LLMGW_FAIL_HTTP, 503, 2,
                              SEC(20));
    llmgw_pool_record_failure(slot(w, "b"), NULL, AT(T0 - SEC(5)), LLMGW_FAIL_HTTP, 503, 2,
                              SEC(20));
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "a:gpt-4o c:m-large");
    ck_assert_int_eq(c->cooling, 1);
    ck_assert_int_eq(c->cooldown_left, SEC(15));
    /* Everyone cooling: nothing to try, and how long until one is back. */
    llmgw_pool_record_failure(slot(w, "a"), NULL, AT(T0), LLMGW_FAIL_HTTP, 401, 2, SEC(20));
    llmgw_pool_record_failure(slot(w, "c"), NULL, AT(T0 - SEC(12)), LLMGW_FAIL_HTTP, 403, 2,
                              SEC(20));
    cands(w, "p", NULL, APR_ENOENT, &c);
    ck_assert_int_eq(c->nelts, 0);
    ck_assert_int_eq(c->cooling, 3);
    ck_assert_int_eq(c->cooldown_left, SEC(8));
}
END_TEST

/* A member at its own limits (llmgw_pool_env_t.full) is skipped like a cooling one. */
static int full_names(void *baton, const llmgw_backend_t *b, apr_interval_time_t *wait)
{
    const char *full = baton;

    if (!strstr(full, b->name))
        return 0;
    *wait = b->name[0] == 'a' ? SEC(7) : SEC(3);
    return 1;
}

START_TEST(test_full_members_skipped)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: a}, {name: b}, {name: c}]\n");
    llmgw_candidates_t *c;

    w->env.full = full_names;
    w->env.full_baton = "a";
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "b:claude-x c:m-large");
    ck_assert_int_eq(c->limited, 1);
    ck_assert_int_eq(c->limited_left, SEC(7));
    ck_assert_int_eq(c->cooling, 0);
    /* All full: nothing to try, and when the first frees up. */
    w->env.full_baton = "a b c";
    cands(w, "p", NULL, APR_ENOENT, &c);
    ck_assert_int_eq(c->limited, 3);
    ck_assert_int_eq(c->limited_left, SEC(3));
    /* A lone backend is always its own candidate. */
    ck_assert_str_eq(cands(w, "a", NULL, APR_SUCCESS, &c), "a:gpt-4o");
    ck_assert_int_eq(c->limited, 0);
}
END_TEST

/* DESIGN.md 6: short at first, doubling after each failed probe up to cooldown:. */
START_TEST(test_adaptive_cooldown)
{
    world_t *w = world("  - {name: p, type: pool, cooldown: 30s, backends: [a, b]}\n"
                       "  - {name: q, type: pool, cooldown: 1s, backends: [a, b]}\n"
                       "  - {name: r, type: pool, backends: [a, b]}\n");
    const llmgw_backend_t *p = be(w, "p");
    apr_interval_time_t last = 0, seq[] = {SEC(2), SEC(4), SEC(8), SEC(16), SEC(30), SEC(30)};
    unsigned i;

    ck_assert_int_eq(llmgw_pool_cooldown_next(p, 0, 0), LLMGW_COOLDOWN_BASE);
    ck_assert_int_eq(LLMGW_COOLDOWN_BASE, SEC(2));
    for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        last = llmgw_pool_cooldown_next(p, last, i > 0);
        ck_assert_int_eq(last, seq[i]);
    }
    /* No probe failed (a straggler of before the cooldown): no doubling. */
    ck_assert_int_eq(llmgw_pool_cooldown_next(p, SEC(8), 0), SEC(8));
    /* A probe failing right after a success (last forgotten): the base again. */
    ck_assert_int_eq(llmgw_pool_cooldown_next(p, 0, 1), SEC(2));
    /* cooldown: below the base caps it; unset is the default cap. */
    ck_assert_int_eq(llmgw_pool_cooldown_next(be(w, "q"), 0, 0), SEC(1));
    ck_assert_int_eq(llmgw_pool_cooldown_next(be(w, "q"), SEC(1), 1), SEC(1));
    ck_assert_int_eq(llmgw_pool_cooldown_next(be(w, "r"), SEC(16), 1), LLMGW_DEFAULT_COOLDOWN);
    ck_assert_int_eq(llmgw_pool_cooldown_next(NULL, 0, 0), LLMGW_COOLDOWN_BASE);
}
END_TEST

START_TEST(test_down_member_skipped_probed_returned)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    failureThreshold: 3\n"
                       "    cooldown: 30s\n"
                       "    backends: [{name: b}, {name: a}]\n");
    const llmgw_backend_t *p = be(w, "p");
    llmgw_stats_slot_t *sb = slot(w, "b");
    llmgw_candidates_t *c;
    int i;

    /* b, the primary, fails three times in a row: skipped for 30 s. */
    for (i = 0; i < 3; i++)
        llmgw_pool_record_failure(sb, NULL, AT(T0), LLMGW_FAIL_CONNECT, 0,
                                  llmgw_pool_failure_threshold(p), llmgw_pool_cooldown(p));
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
    w->env.now = AT(T0 + SEC(29));
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
    /* Cooldown over: b is put first, as the probe. */
    w->env.now = AT(T0 + SEC(30));
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "!b:claude-x a:gpt-4o");
    /* One request claims the probe; concurrent requests no longer list b. */
    ck_assert_int_eq(llmgw_stats_available(sb, w->env.now), LLMGW_STATS_PROBE);
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
    /* The probe succeeds: b is primary again. */
    llmgw_stats_success(sb, NULL, AT(w->env.now.mono + SEC(1)), 200000, 50000, 10, 10);
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "b:claude-x a:gpt-4o");
}
END_TEST

START_TEST(test_drained_members)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    failureThreshold: 1\n"
                       "    cooldown: 30s\n"
                       "    backends: [{name: a}, {name: b}, {name: c}]\n");
    llmgw_candidates_t *c;

    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "a:gpt-4o b:claude-x c:m-large");
    /* Drained: left out, counted apart from cooling members. */
    ck_assert_int_eq(llmgw_stats_set_drained(slot(w, "a"), 1), 0);
    ck_assert_int_eq(llmgw_stats_set_drained(slot(w, "a"), 1), 1);
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "b:claude-x c:m-large");
    ck_assert_int_eq(c->drained, 1);
    ck_assert_int_eq(c->cooling, 0);
    /* gpt-4o, which a and c list: c first, b falls back with its own model. */
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "c:gpt-4o b:claude-x");
    /* A drained member whose cooldown is over is not probed: only the operator brings it back. */
    llmgw_pool_record_failure(slot(w, "a"), NULL, AT(T0 - SEC(60)), LLMGW_FAIL_CONNECT, 0, 1,
                              SEC(30));
    ck_assert_int_eq(llmgw_stats_peek(slot(w, "a"), AT(T0)), LLMGW_STATS_PROBE);
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "b:claude-x c:m-large");
    /* Every member drained or cooling: nothing to try. */
    llmgw_stats_set_drained(slot(w, "b"), 1);
    llmgw_pool_record_failure(slot(w, "c"), NULL, AT(T0 - SEC(5)), LLMGW_FAIL_CONNECT, 0, 1,
                              SEC(30));
    cands(w, "p", NULL, APR_ENOENT, &c);
    ck_assert_int_eq(c->nelts, 0);
    ck_assert_int_eq(c->drained, 2);
    ck_assert_int_eq(c->cooling, 1);
    ck_assert_int_eq(c->cooldown_left, SEC(25));
    /* Re-enabled: back at once, a (cooldown over) as the probe. */
    ck_assert_int_eq(llmgw_stats_set_drained(slot(w, "a"), 0), 1);
    ck_assert_int_eq(llmgw_stats_set_drained(slot(w, "b"), 0), 1);
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, &c), "!a:gpt-4o b:claude-x");
    ck_assert_int_eq(c->drained, 0);
}
END_TEST

START_TEST(test_drained_targets)
{
    world_t *w = world("  - name: inner\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    aliases: [fast]\n"
                       "    backends: [{name: a}, {name: b}]\n"
                       "  - name: outer\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: inner}, {name: c}]\n");
    llmgw_candidates_t *c;

    /* A drained nested pool is skipped as a member, its members with it. */
    llmgw_stats_set_drained(slot(w, "inner"), 1);
    ck_assert_str_eq(cands(w, "outer", NULL, APR_SUCCESS, &c), "c:m-large");
    ck_assert_int_eq(c->drained, 1);
    /* ...and, named as the model, it is drained as a whole. */
    cands(w, "outer", "fast", APR_ENOENT, &c);
    ck_assert_int_eq(c->drained, 1);
    cands(w, "inner", NULL, APR_ENOENT, &c);
    llmgw_stats_set_drained(slot(w, "inner"), 0);
    /* The route's pool drained: nothing, whatever its members. */
    llmgw_stats_set_drained(slot(w, "outer"), 1);
    cands(w, "outer", NULL, APR_ENOENT, &c);
    ck_assert_int_eq(c->drained, 1);
    ck_assert_int_eq(c->nelts, 0);
    llmgw_stats_set_drained(slot(w, "outer"), 0);
    /* A lone backend: a cooldown never refuses it, a drain does. */
    llmgw_pool_record_failure(slot(w, "a"), NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, SEC(30));
    ck_assert_str_eq(cands(w, "a", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
    llmgw_stats_set_drained(slot(w, "a"), 1);
    cands(w, "a", NULL, APR_ENOENT, &c);
    ck_assert_int_eq(c->drained, 1);
    /* The client's mistake still comes first. */
    cands(w, "a", "no-such-model", LLMGW_ENOMODEL, NULL);
}
END_TEST

START_TEST(test_probe_goes_first_whatever_the_strategy)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: latency\n"
                       "    fallback: false\n"
                       "    backends: [{name: a}, {name: c}]\n");
    int i;

    /* c is slow; a is fast; c's cooldown is over. */
    for (i = 0; i < 10; i++) {
        llmgw_stats_success(slot(w, "a"), NULL, AT(T0), 10000, -1, 0, 0);
        llmgw_stats_success(slot(w, "c"), NULL, AT(T0), 900000, -1, 0, 0);
    }
    llmgw_pool_record_failure(slot(w, "c"), NULL, AT(T0 - SEC(60)), LLMGW_FAIL_TIMEOUT, 0, 1,
                              SEC(30));
    /* Even with fallback off (one candidate), the probe is what gets sent. */
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "!c:gpt-4o");
    ck_assert_int_eq(llmgw_stats_available(slot(w, "c"), AT(T0)), LLMGW_STATS_PROBE);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "a:gpt-4o");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Strategies through the pool                                         */

START_TEST(test_weighted_pool)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: weighted\n"
                       "    backends: [{name: a, weight: 70}, {name: b, weight: 30}]\n");
    apr_uint64_t rng = 5;
    int i, first_a = 0;

    for (i = 0; i < 10000; i++) {
        llmgw_candidates_t *c;
        w->env.seed = llmgw_strategy_rand(&rng);
        ck_assert_int_eq(llmgw_pool_candidates(test_pool, be(w, "p"), NULL, &w->env, &c),
                         APR_SUCCESS);
        ck_assert_int_eq(c->nelts, 2);
        first_a += strcmp(c->items[0].backend->name, "a") == 0;
    }
    ck_assert_msg(first_a >= 6800 && first_a <= 7200, "a first %d of 10000", first_a);
}
END_TEST

/*
 * least-busy reads the in-flight attempts of every child's row: a child
 * that died with an attempt running shuns its backend only until the
 * parent frees the child's row.
 */
START_TEST(test_least_busy_sums_rows_and_forgets_dead_children)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: least-busy\n"
                       "    backends: [{name: a}, {name: c}]\n");
    llmgw_stats_row_t *r1 = llmgw_stats_child_claim(w->stats, 101);
    llmgw_stats_row_t *r2 = llmgw_stats_child_claim(w->stats, 102);

    /* Same latency for both: the order is decided by what is in flight. */
    llmgw_stats_success(slot(w, "a"), NULL, AT(T0), 100000, -1, 0, 0);
    llmgw_stats_success(slot(w, "c"), NULL, AT(T0), 100000, -1, 0, 0);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "a:gpt-4o c:gpt-4o");
    llmgw_stats_begin(slot(w, "a"), r1);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "c:gpt-4o a:gpt-4o");
    /* One in flight each, in two children: a tie again. */
    llmgw_stats_begin(slot(w, "c"), r2);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "a:gpt-4o c:gpt-4o");
    llmgw_stats_end(slot(w, "c"), r2);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "c:gpt-4o a:gpt-4o");
    /* Child 101 is killed in the middle of its attempt: once its row is freed, a is back. */
    ck_assert_int_eq(llmgw_stats_child_release(w->stats, 101), 1);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "a:gpt-4o c:gpt-4o");
}
END_TEST

START_TEST(test_round_robin_shared_cursor)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: round-robin\n"
                       "    backends: [{name: a}, {name: b}, {name: c}]\n");
    llmgw_stats_slot_t *ps = slot(w, "p");

    /* The cursor lives in the pool's slot: every "process" sharing it rotates together. */
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "a:gpt-4o b:claude-x c:m-large");
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "b:claude-x c:m-large a:gpt-4o");
    ck_assert_uint_eq(ps->rr_cursor, 2);
    ps->rr_cursor = 8;
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "c:m-large a:gpt-4o b:claude-x");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Strategies from elsewhere (another httpd module, here the test)     */

/* Reverse listed order, available members first. */
static apr_status_t reverse_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                   volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    int i, k = 0;

    for (i = n - 1; i >= 0; i--) {
        if (cands[i].available)
            order[k++] = i;
    }
    *n_usable = k;
    for (i = n - 1; i >= 0; i--) {
        if (!cands[i].available)
            order[k++] = i;
    }
    return *n_usable ? APR_SUCCESS : APR_ENOENT;
}

/* Names its first member twice: not a permutation. */
static apr_status_t broken_select(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                  volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    int i;

    for (i = 0; i < n; i++)
        order[i] = 0;
    *n_usable = n;
    return APR_SUCCESS;
}

static const llmgw_strategy_t reverse = {"reverse", reverse_select};
static const llmgw_strategy_t broken = {"broken", broken_select};

static const llmgw_strategy_t *test_resolve(void *baton, const char *name)
{
    if (strcmp(name, "reverse") == 0)
        return &reverse;
    if (strcmp(name, "broken") == 0)
        return &broken;
    return llmgw_strategy_find(name);
}

static const llmgw_config_opts_t test_opts = {test_resolve, NULL, NULL};

START_TEST(test_foreign_strategy_orders_the_pool)
{
    world_t *w = world_opts("  - name: p\n"
                            "    type: pool\n"
                            "    strategy: reverse\n"
                            "    failureThreshold: 1\n"
                            "    cooldown: 20s\n"
                            "    backends: [{name: a}, {name: b}, {name: c}]\n"
                            "  - name: outer\n"
                            "    type: pool\n"
                            "    strategy: priority\n"
                            "    backends: [{name: p}, {name: d}]\n",
                            &test_opts);

    ck_assert_ptr_eq(be(w, "p")->strategy, &reverse);
    ck_assert_str_eq(cands(w, "p", "gpt-4o", APR_SUCCESS, NULL), "c:gpt-4o b:claude-x a:gpt-4o");
    ck_assert_str_eq(cands(w, "outer", "gpt-4o", APR_SUCCESS, NULL),
                     "c:gpt-4o b:claude-x a:gpt-4o d:gpt-4o");
    /* A member cooling down is dropped whatever the strategy said. */
    llmgw_pool_record_failure(slot(w, "b"), NULL, AT(T0), LLMGW_FAIL_HTTP, 503, 1, SEC(20));
    ck_assert_str_eq(cands(w, "p", NULL, APR_SUCCESS, NULL), "c:m-large a:gpt-4o");
}
END_TEST

START_TEST(test_foreign_strategy_bad_order_refused)
{
    world_t *w = world_opts("  - name: p\n"
                            "    type: pool\n"
                            "    strategy: broken\n"
                            "    backends: [{name: a}, {name: b}]\n",
                            &test_opts);
    llmgw_candidates_t *c;

    cands(w, "p", NULL, APR_EINVAL, &c);
    ck_assert_int_eq(c->nelts, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Nested pools                                                        */

START_TEST(test_nested_pools)
{
    world_t *w = world("  - name: inner\n"
                       "    type: pool\n"
                       "    strategy: round-robin\n"
                       "    backends: [{name: a}, {name: b}]\n"
                       "  - name: outer\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: inner}, {name: a}, {name: c}]\n");
    llmgw_candidates_t *c;

    /* Depth-first with each level's strategy; a appears once, at its first place. */
    ck_assert_str_eq(cands(w, "outer", NULL, APR_SUCCESS, &c), "a:gpt-4o b:claude-x c:m-large");
    ck_assert_ptr_eq(c->items[0].pool, be(w, "inner"));
    ck_assert_ptr_eq(c->items[2].pool, be(w, "outer"));
    ck_assert_str_eq(cands(w, "outer", NULL, APR_SUCCESS, NULL), "b:claude-x a:gpt-4o c:m-large");
    /* The inner pool counts as serving gpt-4o when its first choice does. */
    ck_assert_str_eq(cands(w, "outer", "gpt-4o", APR_SUCCESS, NULL),
                     "a:gpt-4o b:claude-x c:gpt-4o");
}
END_TEST

START_TEST(test_nested_fallback_false)
{
    world_t *w = world("  - name: inner\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    fallback: false\n"
                       "    backends: [{name: b}, {name: a}]\n"
                       "  - name: outer\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    backends: [{name: inner}, {name: c}]\n"
                       "  - name: single\n"
                       "    type: pool\n"
                       "    strategy: priority\n"
                       "    fallback: false\n"
                       "    backends: [{name: inner}, {name: c}]\n");

    /* A pool without fallback contributes only its first choice. */
    ck_assert_str_eq(cands(w, "outer", NULL, APR_SUCCESS, NULL), "b:claude-x c:m-large");
    ck_assert_str_eq(cands(w, "single", NULL, APR_SUCCESS, NULL), "b:claude-x");
    /* Its first choice cooling: the next available one stands in. */
    llmgw_pool_record_failure(slot(w, "b"), NULL, AT(T0), LLMGW_FAIL_CONNECT, 0, 1, SEC(30));
    ck_assert_str_eq(cands(w, "outer", NULL, APR_SUCCESS, NULL), "a:gpt-4o c:m-large");
}
END_TEST

START_TEST(test_nesting_depth_bound)
{
    const char *yaml = "";
    world_t *w;
    int i;

    /* pool0 -> pool1 -> ... -> pool9 -> a: ten levels, deeper than the bound. */
    for (i = 0; i < 10; i++)
        yaml = apr_psprintf(test_pool,
                            "%s  - name: pool%d\n    type: pool\n    backends: [{name: %s}]\n",
                            yaml, i, i < 9 ? apr_psprintf(test_pool, "pool%d", i + 1) : "a");
    w = world(yaml);
    cands(w, "pool0", NULL, APR_EINVAL, NULL);
    /* LLMGW_POOL_MAX_DEPTH + 1 levels are fine. */
    ck_assert_str_eq(cands(w, "pool1", NULL, APR_SUCCESS, NULL), "a:gpt-4o");
}
END_TEST

START_TEST(test_without_stats)
{
    world_t *w = world("  - name: p\n"
                       "    type: pool\n"
                       "    strategy: round-robin\n"
                       "    backends: [{name: a}, {name: b}]\n");
    llmgw_candidates_t *c;

    /* No segment (e.g. before child_init): everything available, no slots. */
    w->env.stats = NULL;
    ck_assert_int_eq(llmgw_pool_candidates(test_pool, be(w, "p"), NULL, &w->env, &c), APR_SUCCESS);
    ck_assert_int_eq(c->nelts, 2);
    ck_assert_int_eq(c->items[0].slot, -1);
    ck_assert_int_eq(c->items[0].pool_slot, -1);
    ck_assert_int_eq(llmgw_pool_candidates(test_pool, NULL, NULL, &w->env, &c), APR_EINVAL);
    /* Defaults when the pool sets nothing. */
    ck_assert_int_eq(llmgw_pool_failure_threshold(be(w, "p")), LLMGW_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_int_eq(llmgw_pool_cooldown(be(w, "p")), LLMGW_DEFAULT_COOLDOWN);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The decision table                                                  */

START_TEST(test_decision_table)
{
    static const struct {
        llmgw_fail_e fail;
        int status;
        int attempts, max_retries, fallback, committed, cooling;
        apr_interval_time_t hint;
        llmgw_pool_next_e want;
    } rows[] = {
        /* retryable: same member while retries last, then the next one */
        {LLMGW_FAIL_HTTP, 500, 1, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_HTTP, 500, 2, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_HTTP, 500, 3, 2, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
        {LLMGW_FAIL_HTTP, 500, 3, 2, 0, 0, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_HTTP, 503, 1, 0, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
        {LLMGW_FAIL_CONNECT, 0, 1, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_TIMEOUT, 0, 1, 2, 0, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_RESET, 0, 1, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_HTTP, 529, 1, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        /* 429: wait for a short hint; a long one moves on at once */
        {LLMGW_FAIL_HTTP, 429, 1, 2, 1, 0, 0, SEC(2), LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_HTTP, 429, 1, 2, 1, 0, 0, SEC(10), LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_HTTP, 429, 1, 2, 1, 0, 0, SEC(11), LLMGW_POOL_NEXT_MEMBER},
        {LLMGW_FAIL_HTTP, 429, 1, 2, 0, 0, 0, SEC(60), LLMGW_POOL_STOP},
        /* the member just went into cooldown: do not hammer it */
        {LLMGW_FAIL_HTTP, 503, 1, 2, 1, 0, 1, -1, LLMGW_POOL_NEXT_MEMBER},
        {LLMGW_FAIL_HTTP, 503, 1, 2, 0, 0, 1, -1, LLMGW_POOL_STOP},
        /* the gateway's credential or the model: no retry, but another member may */
        {LLMGW_FAIL_HTTP, 401, 1, 2, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
        {LLMGW_FAIL_HTTP, 403, 1, 2, 0, 0, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_HTTP, 404, 1, 2, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
        /* the client's request is wrong: never retried, never failed over */
        {LLMGW_FAIL_HTTP, 400, 1, 2, 1, 0, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_HTTP, 413, 1, 2, 1, 0, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_HTTP, 422, 1, 2, 1, 0, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_CLIENT_GONE, 0, 1, 2, 1, 0, 0, -1, LLMGW_POOL_STOP},
        /* bytes already reached the client: nothing can be redone */
        {LLMGW_FAIL_STREAM, 0, 1, 2, 1, 1, 0, -1, LLMGW_POOL_STOP},
        {LLMGW_FAIL_IDLE, 0, 1, 2, 1, 1, 0, -1, LLMGW_POOL_STOP},
        /* ...but before the first byte a broken stream is an ordinary failure */
        {LLMGW_FAIL_STREAM, 0, 1, 2, 1, 0, 0, -1, LLMGW_POOL_RETRY_SAME},
        {LLMGW_FAIL_PROTOCOL, 0, 3, 2, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
        /* an unset maxRetries counts as none */
        {LLMGW_FAIL_HTTP, 502, 1, LLMGW_UNSET, 1, 0, 0, -1, LLMGW_POOL_NEXT_MEMBER},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        llmgw_pool_outcome_t o;
        memset(&o, 0, sizeof(o));
        o.action = llmgw_error_action(rows[i].fail, rows[i].status);
        o.attempts = rows[i].attempts;
        o.max_retries = rows[i].max_retries;
        o.fallback = rows[i].fallback;
        o.committed = rows[i].committed;
        o.cooling = rows[i].cooling;
        o.hint = rows[i].hint;
        o.max_wait = SEC(10);
        ck_assert_msg(llmgw_pool_next(&o) == rows[i].want, "row %d: got %d, want %d", (int)i,
                      llmgw_pool_next(&o), rows[i].want);
    }
}
END_TEST

START_TEST(test_decision_no_wait_limit)
{
    llmgw_pool_outcome_t o;

    memset(&o, 0, sizeof(o));
    o.action = LLMGW_ACTION_RETRY;
    o.attempts = 1;
    o.max_retries = 1;
    o.hint = SEC(3600);
    o.max_wait = -1;
    ck_assert_int_eq(llmgw_pool_next(&o), LLMGW_POOL_RETRY_SAME);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Every candidate failed                                              */

static llmgw_pool_failure_t failure(const char *backend, llmgw_fail_e fail, int status,
                                    apr_interval_time_t hint)
{
    llmgw_pool_failure_t f;

    memset(&f, 0, sizeof(f));
    f.backend = backend;
    f.fail = fail;
    f.status = status;
    f.hint = hint;
    return f;
}

START_TEST(test_exhausted_all_cooling)
{
    apr_interval_time_t ra;
    llmgw_error_t *e = llmgw_pool_exhausted(test_pool, "llm-pool", NULL, 0, 2, 0, SEC(12), &ra);

    ck_assert_int_eq(e->status, 503);
    ck_assert_str_eq(e->code, "upstream_unavailable");
    ck_assert_ptr_nonnull(strstr(e->message, "llm-pool"));
    ck_assert_ptr_nonnull(strstr(e->message, "cooling down"));
    ck_assert_int_eq(ra, SEC(12));
}
END_TEST

START_TEST(test_exhausted_drained)
{
    apr_interval_time_t ra;
    llmgw_error_t *e;
    llmgw_pool_failure_t f[1];

    /* Only drained members: no Retry-After, a drain has no end the gateway knows. */
    e = llmgw_pool_exhausted(test_pool, "llm-pool", NULL, 0, 0, 2, -1, &ra);
    ck_assert_int_eq(e->status, 503);
    ck_assert_str_eq(e->code, "upstream_unavailable");
    ck_assert_ptr_nonnull(strstr(e->message, "\"llm-pool\" is drained"));
    ck_assert_int_eq(ra, -1);
    /* Drained and cooling: the cooldown's end is worth telling. */
    e = llmgw_pool_exhausted(test_pool, "llm-pool", NULL, 0, 1, 2, SEC(7), &ra);
    ck_assert_ptr_nonnull(strstr(e->message, "1 cooling down"));
    ck_assert_ptr_nonnull(strstr(e->message, "2 drained"));
    ck_assert_int_eq(ra, SEC(7));
    e = llmgw_pool_exhausted(test_pool, NULL, NULL, 0, 0, 1, -1, &ra);
    ck_assert_int_eq(e->status, 503);
    ck_assert_ptr_nonnull(strstr(e->message, "backend is drained"));
    /* Some tried and failed, others drained: both in the message. */
    f[0] = failure("a", LLMGW_FAIL_HTTP, 500, -1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 1, 1, 1, SEC(3), &ra);
    ck_assert_ptr_nonnull(
        strstr(e->message, "all 1 tried member(s) failed, 1 cooling down, 1 drained"));
}
END_TEST

START_TEST(test_exhausted_rate_limited)
{
    llmgw_pool_failure_t f[3] = {failure("a", LLMGW_FAIL_HTTP, 429, SEC(20)),
                                 failure("b", LLMGW_FAIL_HTTP, 429, -1),
                                 failure("c", LLMGW_FAIL_HTTP, 429, SEC(7))};
    llmgw_error_t quota;
    apr_interval_time_t ra;
    llmgw_error_t *e = llmgw_pool_exhausted(test_pool, "p", f, 3, 0, 0, -1, &ra);

    /* All rate limited: 429 with the smallest hint. */
    ck_assert_int_eq(e->status, 429);
    ck_assert_str_eq(e->code, "rate_limit_exceeded");
    ck_assert_int_eq(ra, SEC(7));
    ck_assert_ptr_nonnull(strstr(e->message, "Pool \"p\": all 3 tried member(s) failed"));
    ck_assert_ptr_nonnull(strstr(e->message, "\"c\""));
    /* No hints at all: no Retry-After. */
    f[0].hint = f[2].hint = -1;
    e = llmgw_pool_exhausted(test_pool, "p", f, 3, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 429);
    ck_assert_int_eq(ra, -1);
    /* Every one out of quota: waiting will not help. */
    memset(&quota, 0, sizeof(quota));
    quota.status = 429;
    quota.code = "insufficient_quota";
    f[0].error = f[1].error = f[2].error = &quota;
    f[1].hint = SEC(1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 3, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 429);
    ck_assert_str_eq(e->code, "insufficient_quota");
    ck_assert_int_eq(ra, -1);
}
END_TEST

START_TEST(test_exhausted_mixed)
{
    static const struct {
        llmgw_fail_e fail1;
        int status1;
        llmgw_fail_e fail2;
        int status2;
        int want;
        const char *code;
    } rows[] = {
        {LLMGW_FAIL_TIMEOUT, 0, LLMGW_FAIL_TIMEOUT, 0, 504, "upstream_timeout"},
        {LLMGW_FAIL_HTTP, 503, LLMGW_FAIL_IDLE, 0, 504, "upstream_timeout"},
        {LLMGW_FAIL_TIMEOUT, 0, LLMGW_FAIL_HTTP, 500, 503, "upstream_unavailable"},
        {LLMGW_FAIL_HTTP, 529, LLMGW_FAIL_HTTP, 503, 503, "upstream_unavailable"},
        {LLMGW_FAIL_HTTP, 503, LLMGW_FAIL_CONNECT, 0, 502, "bad_gateway"},
        {LLMGW_FAIL_CONNECT, 0, LLMGW_FAIL_RESET, 0, 502, "bad_gateway"},
        {LLMGW_FAIL_HTTP, 500, LLMGW_FAIL_HTTP, 401, 502, "upstream_auth_failed"},
        /* a 429 among others does not decide: the last other failure does */
        {LLMGW_FAIL_HTTP, 503, LLMGW_FAIL_HTTP, 429, 503, "upstream_unavailable"},
        {LLMGW_FAIL_TIMEOUT, 0, LLMGW_FAIL_HTTP, 429, 504, "upstream_timeout"},
        /* 404 from some only: another backend knew the model */
        {LLMGW_FAIL_HTTP, 404, LLMGW_FAIL_HTTP, 502, 503, "upstream_unavailable"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        llmgw_pool_failure_t f[2] = {failure("a", rows[i].fail1, rows[i].status1, -1),
                                     failure("b", rows[i].fail2, rows[i].status2, SEC(3))};
        apr_interval_time_t ra;
        llmgw_error_t *e = llmgw_pool_exhausted(test_pool, "p", f, 2, 1, 0, SEC(5), &ra);
        ck_assert_msg(e->status == rows[i].want, "row %d: status %d", (int)i, e->status);
        ck_assert_str_eq(e->code, rows[i].code);
        ck_assert_int_eq(ra, -1);
        ck_assert_ptr_nonnull(strstr(e->message, "1 cooling down"));
    }
}
END_TEST

/* providers.md 9.2: no member's window was large enough: the provider's own 400. */
START_TEST(test_exhausted_context_window)
{
    llmgw_error_t *ctx_a = llmgw_error_make(test_pool, 400, "invalid_request_error",
                                            "context_length_exceeded", "messages", "a: too long");
    llmgw_error_t *ctx_b = llmgw_error_make(test_pool, 400, "invalid_request_error",
                                            "context_length_exceeded", NULL, "b: too long");
    llmgw_pool_failure_t f[2] = {failure("a", LLMGW_FAIL_HTTP, 400, -1),
                                 failure("b", LLMGW_FAIL_HTTP, 400, -1)};
    apr_interval_time_t ra;
    llmgw_error_t *e;

    f[0].error = ctx_a;
    f[1].error = ctx_b;
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "context_length_exceeded");
    ck_assert_str_eq(e->message, "b: too long");
    ck_assert_ptr_null(e->param);
    ck_assert_int_eq(ra, -1);
    /* A member that was merely down decides over a context error. */
    f[1] = failure("b", LLMGW_FAIL_HTTP, 503, -1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 503);
    f[1] = f[0];
    f[0] = failure("b", LLMGW_FAIL_TIMEOUT, 0, -1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 504);
}
END_TEST

/* Members that refused the request themselves (translation) are no upstream failures. */
START_TEST(test_exhausted_refusals)
{
    llmgw_error_t refused;
    llmgw_pool_failure_t f[2];
    apr_interval_time_t ra;
    llmgw_error_t *e;

    memset(&refused, 0, sizeof(refused));
    refused.status = 400;
    refused.type = "invalid_request_error";
    refused.code = "unsupported_value";
    refused.param = "input";
    refused.message = "Token-id input cannot be sent to the google backend; send text.";
    /* Refused, then rate limited: the 429 with its hint, not a 500. */
    f[0] = failure("gem", LLMGW_FAIL_INTERNAL, 400, -1);
    f[0].error = &refused;
    f[1] = failure("oai", LLMGW_FAIL_HTTP, 429, SEC(3));
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 429);
    ck_assert_str_eq(e->code, "rate_limit_exceeded");
    ck_assert_int_eq(ra, SEC(3));
    /* Refused, then timed out: 504. */
    f[1] = failure("oai", LLMGW_FAIL_TIMEOUT, 0, -1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 504);
    /* Every member refused: the refusal itself. */
    f[1] = f[0];
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 400);
    ck_assert_str_eq(e->code, "unsupported_value");
    ck_assert_str_eq(e->param, "input");
    ck_assert_ptr_nonnull(strstr(e->message, "Token-id input cannot be sent"));
    ck_assert_int_eq(ra, -1);
    /* A real internal failure (no refusal) still decides as one. */
    f[1] = failure("oai", LLMGW_FAIL_INTERNAL, 0, -1);
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 500);
}
END_TEST

START_TEST(test_exhausted_not_found_and_lone)
{
    llmgw_error_t provider;
    llmgw_pool_failure_t f[2] = {failure("a", LLMGW_FAIL_HTTP, 404, -1),
                                 failure("b", LLMGW_FAIL_HTTP, 404, -1)};
    apr_interval_time_t ra;
    llmgw_error_t *e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);

    /* Nobody knows the model: 404, not a gateway error. */
    ck_assert_int_eq(e->status, 404);
    ck_assert_str_eq(e->code, "model_not_found");
    /* The provider's own message when it gave one. */
    memset(&provider, 0, sizeof(provider));
    provider.status = 404;
    provider.type = "invalid_request_error";
    provider.code = "model_not_found";
    provider.message = "The model `gpt-9` does not exist";
    f[1].error = &provider;
    e = llmgw_pool_exhausted(test_pool, "p", f, 2, 0, 0, -1, &ra);
    ck_assert_ptr_nonnull(strstr(e->message, "The model `gpt-9` does not exist"));
    /* A lone backend: the plain exhausted error, no pool wording. */
    f[0] = failure("solo", LLMGW_FAIL_TIMEOUT, 0, -1);
    e = llmgw_pool_exhausted(test_pool, NULL, f, 1, 0, 0, -1, &ra);
    ck_assert_int_eq(e->status, 504);
    ck_assert_str_eq(e->message,
                     llmgw_error_exhausted(test_pool, LLMGW_FAIL_TIMEOUT, 0, "solo")->message);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");

    tcase_add_checked_fixture(tc, setup, test_pool_teardown);
    tcase_add_test(tc, test_lone_backend);
    tcase_add_test(tc, test_least_busy_sums_rows_and_forgets_dead_children);
    tcase_add_test(tc, test_pool_models);
    tcase_add_test(tc, test_pool_member_without_default);
    tcase_add_test(tc, test_pool_aliases);
    tcase_add_test(tc, test_cooling_members);
    tcase_add_test(tc, test_full_members_skipped);
    tcase_add_test(tc, test_adaptive_cooldown);
    tcase_add_test(tc, test_down_member_skipped_probed_returned);
    tcase_add_test(tc, test_drained_members);
    tcase_add_test(tc, test_drained_targets);
    tcase_add_test(tc, test_probe_goes_first_whatever_the_strategy);
    tcase_add_test(tc, test_weighted_pool);
    tcase_add_test(tc, test_round_robin_shared_cursor);
    tcase_add_test(tc, test_foreign_strategy_orders_the_pool);
    tcase_add_test(tc, test_foreign_strategy_bad_order_refused);
    tcase_add_test(tc, test_nested_pools);
    tcase_add_test(tc, test_nested_fallback_false);
    tcase_add_test(tc, test_nesting_depth_bound);
    tcase_add_test(tc, test_without_stats);
    tcase_add_test(tc, test_decision_table);
    tcase_add_test(tc, test_decision_no_wait_limit);
    tcase_add_test(tc, test_exhausted_all_cooling);
    tcase_add_test(tc, test_exhausted_drained);
    tcase_add_test(tc, test_exhausted_rate_limited);
    tcase_add_test(tc, test_exhausted_mixed);
    tcase_add_test(tc, test_exhausted_context_window);
    tcase_add_test(tc, test_exhausted_refusals);
    tcase_add_test(tc, test_exhausted_not_found_and_lone);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
