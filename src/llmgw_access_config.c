/*
 * access:, pricing:, ledger: of gateway.yaml, and a backend's limits:
 * (DESIGN.md 11), read on behalf of src/llmgw_config.c with its key-table
 * machinery (src/llmgw_config_private.h), so that messages carry
 * file:line:column like every other mistake in the file.
 *
 * Checks that need the whole file run last (llmgw_cfg_access_check): an
 * allowlist pattern must name a model or a route that exists, and a
 * budget needs a price for every model its key may use, because a spend
 * that cannot be priced cannot be held to a budget.
 */
#include <limits.h>
#include <string.h>
#include <apr_fnmatch.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include "llmgw_config_private.h"
#include "llmgw_access.h"
#include "llmgw_ledger.h"
#include "llmgw_pricing.h"

static const char *const period_names[] = {"day", "week", "month", NULL};
static const char *const driver_names[] = {"sqlite3", "pgsql", NULL};

/* ---- small parsers ------------------------------------------------------ */

static apr_status_t key_count(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s, *p;
    apr_int64_t n = 0;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a number", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    for (p = s; *p >= '0' && *p <= '9'; p++) {
        if (n > (APR_INT64_MAX - 9) / 10)
            break;
        n = n * 10 + (*p - '0');
    }
    if (*p || p == s || n < 1)
        return llmgw_cfg_fail(c, v->mark, "%s must be a whole number of at least 1, not %s",
                              k->name, llmgw_cfg_shown(c, v, s));
    *FIELD(obj, k, apr_int64_t) = n;
    return APR_SUCCESS;
}

#define L(f) offsetof(llmgw_limits_cfg_t, f)
static const cfg_key_t entry_limit_keys[] = {
    {"rpm", T_ANY, 0, key_count, L(rpm)},
    {"tpm", T_ANY, 0, key_count, L(tpm)},
    {"concurrent", T_ANY, 0, key_count, L(concurrent)},
    {NULL},
};
static const cfg_key_t backend_limit_keys[] = {
    {"rpm", T_ANY, 0, key_count, L(rpm)},
    {"tpm", T_ANY, 0, key_count, L(tpm)},
    {NULL},
};

static apr_status_t limits_read(cfg_ctx_t *c, const cfg_node_t *v, const cfg_key_t *table,
                                llmgw_limits_cfg_t *lim)
{
    const char *owner = c->owner;
    unsigned typebit = c->typebit;
    apr_status_t rv;

    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark,
                              "limits must be a mapping such as {rpm: 60, tpm: 100000}, "
                              "not %s",
                              llmgw_cfg_kind_name(v));
    c->owner = apr_pstrcat(c->tmp, owner ? owner : "", owner ? " " : "", "limits", NULL);
    c->typebit = T_OTHER;
    rv = llmgw_cfg_keys_apply(c, v, table, lim);
    c->owner = owner;
    c->typebit = typebit;
    return rv;
}

apr_status_t llmgw_cfg_key_backend_limits(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                          void *obj)
{
    return limits_read(c, v, backend_limit_keys, FIELD(obj, k, llmgw_limits_cfg_t));
}

static apr_status_t key_entry_limits(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                     void *obj)
{
    return limits_read(c, v, entry_limit_keys, &((llmgw_access_entry_t *)obj)->limits);
}

static apr_status_t key_usd(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_int64_t n;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "an amount in USD", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    if (llmgw_usd_parse(s, &n) != APR_SUCCESS || (n == 0 && k->min > 0))
        return llmgw_cfg_fail(c, v->mark,
                              "%s must be an amount in USD such as 2.50 (at most 9 decimals%s), "
                              "not %s",
                              k->name, k->min > 0 ? ", above 0" : "", llmgw_cfg_shown(c, v, s));
    *FIELD(obj, k, apr_int64_t) = n;
    return APR_SUCCESS;
}

static apr_status_t key_period(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    int i;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a period", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    for (i = 0; period_names[i]; i++) {
        if (strcmp(s, period_names[i]) == 0) {
            *FIELD(obj, k, llmgw_period_e) = (llmgw_period_e)(i + 1);
            return APR_SUCCESS;
        }
    }
    return llmgw_cfg_fail(c, v->mark, "period must be day, week or month, not %s",
                          llmgw_cfg_shown(c, v, s));
}

#define BU(f) offsetof(llmgw_budget_cfg_t, f)
static const cfg_key_t budget_keys[] = {
    {"usd", T_ANY, T_ANY, key_usd, BU(nusd), 1},
    {"period", T_ANY, 0, key_period, BU(period)},
    {NULL},
};

static apr_status_t key_budget(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_access_entry_t *e = obj;
    const char *owner = c->owner;
    unsigned typebit = c->typebit;
    apr_status_t rv;

    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark,
                              "budget must be a mapping such as {usd: 50, period: month}, not %s",
                              llmgw_cfg_kind_name(v));
    c->owner = apr_pstrcat(c->tmp, owner, " budget", NULL);
    c->typebit = T_ANY;
    e->budget.period = LLMGW_PERIOD_MONTH;
    rv = llmgw_cfg_keys_apply(c, v, budget_keys, &e->budget);
    c->owner = owner;
    c->typebit = typebit;
    e->budget_mark = v->mark;
    return rv;
}

static apr_status_t key_globs(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_access_entry_t *e = obj;
    apr_array_header_t *globs;
    const char *s;
    apr_status_t rv;
    int i;

    if (v->kind != NODE_SEQ || v->items->nelts == 0)
        return llmgw_cfg_fail(c, v->mark,
                              "%s must be a non-empty sequence of names or patterns "
                              "such as [\"gpt-4o*\"]",
                              k->name);
    globs = apr_array_make(c->p, v->items->nelts, sizeof(const char *));
    for (i = 0; i < v->items->nelts; i++) {
        if ((rv = llmgw_cfg_value_text(c, k->name, NODE_AT(v, i), "a pattern", 0, &s)) !=
            APR_SUCCESS)
            return rv;
        APR_ARRAY_PUSH(globs, const char *) = apr_pstrdup(c->p, s);
    }
    if (strcmp(k->name, "models") == 0) {
        e->models = globs;
        e->models_mark = v->mark;
    }
    else {
        e->routes = globs;
        e->routes_mark = v->mark;
    }
    return APR_SUCCESS;
}

static apr_status_t key_expires(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a time", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    if (llmgw_access_time_parse(s, &((llmgw_access_entry_t *)obj)->expires) != APR_SUCCESS)
        return llmgw_cfg_fail(c, v->mark,
                              "expires must be an RFC 3339 time such as \"2027-01-01T00:00:00Z\", "
                              "not %s",
                              llmgw_cfg_shown(c, v, s));
    return APR_SUCCESS;
}

static apr_status_t key_skip(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    return APR_SUCCESS; /* read before the other keys */
}

/* sha256: 64 hex digits; the hash of a key is not a secret, but it is still never shown whole. */
static apr_status_t key_sha256(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_access_entry_t *e = obj;
    const char *s;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a SHA-256 hash", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    if (llmgw_access_digest_parse(s, e->digest) != APR_SUCCESS)
        return llmgw_cfg_fail(c, v->mark,
                              "sha256 must be 64 hexadecimal digits (the SHA-256 of the key, as "
                              "scripts/llmgw-key prints it), not %lu characters%s",
                              (unsigned long)strlen(s),
                              strlen(s) == 64 ? " with a character that is not a hex digit" : "");
    return APR_SUCCESS;
}

static const cfg_key_t key_entry_keys[] = {
    {"name", T_ANY, T_ANY, key_skip},       {"sha256", T_ANY, T_ANY, key_sha256},
    {"models", T_ANY, 0, key_globs},        {"routes", T_ANY, 0, key_globs},
    {"limits", T_ANY, 0, key_entry_limits}, {"budget", T_ANY, 0, key_budget},
    {"expires", T_ANY, 0, key_expires},     {NULL},
};

static const cfg_key_t principal_entry_keys[] = {
    {"name", T_ANY, T_ANY, key_skip},
    {"models", T_ANY, 0, key_globs},
    {"routes", T_ANY, 0, key_globs},
    {"limits", T_ANY, 0, key_entry_limits},
    {"budget", T_ANY, 0, key_budget},
    {"expires", T_ANY, 0, key_expires},
    {NULL},
};

/* ---- entries ------------------------------------------------------------ */

static llmgw_access_entry_t *entry_new(cfg_ctx_t *c, llmgw_access_cfg_t *a, const cfg_node_t *n,
                                       llmgw_access_kind_e kind)
{
    llmgw_access_entry_t *e = apr_pcalloc(c->p, sizeof(*e));

    e->kind = kind;
    e->index = a->entries->nelts;
    e->mark = n->mark;
    e->limits.rpm = e->limits.tpm = e->limits.concurrent = LLMGW_UNSET;
    return e;
}

static apr_status_t entry_name(cfg_ctx_t *c, const cfg_node_t *n, llmgw_access_kind_e kind,
                               apr_hash_t *names, const char **out)
{
    const cfg_node_t *v = llmgw_cfg_map_get(n, "name");
    const cfg_node_t *other;
    const char *s;
    apr_status_t rv;

    if (!v || llmgw_cfg_is_null(v))
        return llmgw_cfg_fail(c, v ? v->mark : n->mark, "missing required key \"name\"");
    if ((rv = llmgw_cfg_value_text(c, "name", v, "a name", 0, &s)) != APR_SUCCESS)
        return rv;
    if (kind == LLMGW_ACCESS_KIND_KEY && !llmgw_cfg_name_ok(s))
        return llmgw_cfg_fail(c, v->mark,
                              "key name %s may only contain letters, digits, '.', '_' and '-' "
                              "(it is shown in logs, the ledger and the status page)",
                              llmgw_cfg_shown(c, v, s));
    if (strlen(s) > 100)
        return llmgw_cfg_fail(c, v->mark, "name %s is longer than 100 characters",
                              llmgw_cfg_shown(c, v, s));
    if ((other = apr_hash_get(names, s, APR_HASH_KEY_STRING)))
        return llmgw_cfg_fail(c, v->mark, "duplicate %s name %s (first at line %lu)",
                              kind == LLMGW_ACCESS_KIND_KEY ? "key" : "principal",
                              llmgw_cfg_shown(c, v, s), other->mark.line);
    apr_hash_set(names, apr_pstrdup(c->tmp, s), APR_HASH_KEY_STRING, v);
    *out = apr_pstrdup(c->p, s);
    c->owner = apr_psprintf(c->tmp, "%s \"%s\"",
                            kind == LLMGW_ACCESS_KIND_KEY ? "key" : "principal", *out);
    return APR_SUCCESS;
}

static apr_status_t entries_read(cfg_ctx_t *c, llmgw_access_cfg_t *a, const cfg_node_t *list,
                                 llmgw_access_kind_e kind)
{
    const char *what = kind == LLMGW_ACCESS_KIND_KEY ? "keys" : "principals";
    apr_hash_t *names = apr_hash_make(c->tmp);
    apr_hash_t *digests = apr_hash_make(c->tmp);
    apr_status_t rv;
    int i;

    if (list->kind != NODE_SEQ || list->items->nelts == 0)
        return llmgw_cfg_fail(c, list->mark, "access %s must be a non-empty sequence", what);
    for (i = 0; i < list->items->nelts; i++) {
        const cfg_node_t *n = NODE_AT(list, i);
        llmgw_access_entry_t *e;
        const llmgw_access_entry_t *twin;

        c->owner = apr_psprintf(c->tmp, "access %s #%d", what, i + 1);
        if (n->kind != NODE_MAP)
            return llmgw_cfg_fail(c, n->mark, "each entry must be a mapping with a name, not %s",
                                  llmgw_cfg_kind_name(n));
        e = entry_new(c, a, n, kind);
        if ((rv = entry_name(c, n, kind, names, &e->name)) != APR_SUCCESS ||
            (rv = llmgw_cfg_keys_apply(
                 c, n, kind == LLMGW_ACCESS_KIND_KEY ? key_entry_keys : principal_entry_keys, e)) !=
                APR_SUCCESS)
            return rv;
        if (kind == LLMGW_ACCESS_KIND_KEY) {
            twin = apr_hash_get(digests, e->digest, LLMGW_ACCESS_DIGEST);
            if (twin)
                return llmgw_cfg_fail(c, llmgw_cfg_map_get(n, "sha256")->mark,
                                      "the same sha256 as key \"%s\" (line %lu): two names for "
                                      "one key",
                                      twin->name, twin->mark.line);
            apr_hash_set(digests, e->digest, LLMGW_ACCESS_DIGEST, e);
        }
        else if (strcmp(e->name, "*") == 0)
            a->any = e;
        else
            apr_hash_set(a->by_name, e->name, APR_HASH_KEY_STRING, e);
        APR_ARRAY_PUSH(a->entries, llmgw_access_entry_t *) = e;
    }
    c->owner = NULL;
    return APR_SUCCESS;
}

static apr_status_t principal_source(cfg_ctx_t *c, const cfg_node_t *v, llmgw_access_cfg_t *a)
{
    const char *s, *name;
    apr_status_t rv = llmgw_cfg_value_text(c, "principal", v, "a source", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    if (strncmp(s, "env:", 4) == 0)
        a->source = LLMGW_SOURCE_ENV;
    else if (strncmp(s, "header:", 7) == 0)
        a->source = LLMGW_SOURCE_HEADER;
    name = strchr(s, ':') + (a->source ? 1 : 0);
    if (!a->source || !*name || strpbrk(name, " \t:"))
        return llmgw_cfg_fail(c, v->mark,
                              "principal must be env:VARIABLE (e.g. env:REMOTE_USER, set by an "
                              "httpd auth module) or header:NAME, not %s",
                              llmgw_cfg_shown(c, v, s));
    a->source_name = apr_pstrdup(c->p, name);
    return APR_SUCCESS;
}

static apr_status_t md_free(void *md)
{
    EVP_MD_free(md);
    return APR_SUCCESS;
}

static apr_status_t access_read(cfg_ctx_t *c, const cfg_node_t *v)
{
    llmgw_access_cfg_t *a = apr_pcalloc(c->p, sizeof(*a));
    const cfg_node_t *keys, *principal, *principals;
    apr_status_t rv;
    int i;

    c->owner = "access";
    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark, "must be a mapping with keys, or principal, not %s",
                              llmgw_cfg_kind_name(v));
    for (i = 0; i < v->items->nelts; i += 2) {
        const cfg_node_t *k = NODE_AT(v, i);
        if (strcmp(k->text, "keys") && strcmp(k->text, "principal") &&
            strcmp(k->text, "principals"))
            return llmgw_cfg_fail(
                c, k->mark, "unknown key \"%s\" (expected keys, principal or principals)", k->text);
    }
    keys = llmgw_cfg_map_get(v, "keys");
    principal = llmgw_cfg_map_get(v, "principal");
    principals = llmgw_cfg_map_get(v, "principals");
    a->entries = apr_array_make(c->p, 8, sizeof(llmgw_access_entry_t *));
    a->by_name = apr_hash_make(c->p);
    a->mark = v->mark;
    if (keys && principal)
        return llmgw_cfg_fail(c, principal->mark,
                              "keys and principal exclude each other: a gateway identifies "
                              "clients by virtual keys or by what an httpd auth module set");
    if (principals && !principal)
        return llmgw_cfg_fail(c, principals->mark,
                              "principals needs principal: (where the identity comes from, e.g. "
                              "principal: env:REMOTE_USER)");
    if (!keys && !principal)
        return llmgw_cfg_fail(c, v->mark, "needs keys, or principal (e.g. env:REMOTE_USER)");
    if (keys) {
        a->mode = LLMGW_ACCESS_KEYS;
        rv = entries_read(c, a, keys, LLMGW_ACCESS_KIND_KEY);
        a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (a->sha256)
            apr_pool_cleanup_register(c->p, a->sha256, md_free, apr_pool_cleanup_null);
    }
    else {
        a->mode = LLMGW_ACCESS_PRINCIPAL;
        rv = principal_source(c, principal, a);
        if (rv == APR_SUCCESS && principals)
            rv = entries_read(c, a, principals, LLMGW_ACCESS_KIND_PRINCIPAL);
        if (rv == APR_SUCCESS && !principals) {
            /* principal: alone admits every identity, without limits. */
            llmgw_access_entry_t *e = entry_new(c, a, principal, LLMGW_ACCESS_KIND_PRINCIPAL);
            e->name = "*";
            a->any = e;
            APR_ARRAY_PUSH(a->entries, llmgw_access_entry_t *) = e;
        }
    }
    c->owner = NULL;
    if (rv == APR_SUCCESS)
        c->cfg->access = a;
    return rv;
}

/* ---- pricing ------------------------------------------------------------- */

#define PR(f) offsetof(llmgw_price_t, f)
static const cfg_key_t price_keys[] = {
    {"input", T_ANY, T_ANY, key_usd, PR(input)},
    {"cachedInput", T_ANY, 0, key_usd, PR(cached_input)},
    {"output", T_ANY, 0, key_usd, PR(output)},
    {NULL},
};

static apr_status_t pricing_read(cfg_ctx_t *c, const cfg_node_t *v)
{
    llmgw_pricing_t *pr = apr_pcalloc(c->p, sizeof(*pr));
    apr_status_t rv;
    int i;

    c->owner = "pricing";
    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark,
                              "must be a mapping of model names to {input, cachedInput, output} "
                              "(USD per million tokens), not %s",
                              llmgw_cfg_kind_name(v));
    pr->prices = apr_array_make(c->p, v->items->nelts / 2 + 1, sizeof(llmgw_price_t *));
    pr->exact = apr_hash_make(c->p);
    for (i = 0; i + 1 < v->items->nelts; i += 2) {
        const cfg_node_t *k = NODE_AT(v, i), *m = NODE_AT(v, i + 1);
        llmgw_price_t *price = apr_pcalloc(c->p, sizeof(*price));

        price->model = apr_pstrdup(c->p, k->text);
        price->mark = k->mark;
        price->cached_input = -1;
        c->owner = apr_psprintf(c->tmp, "pricing \"%s\"", price->model);
        if (!*k->text)
            return llmgw_cfg_fail(c, k->mark, "a model name must not be empty");
        if (m->kind != NODE_MAP)
            return llmgw_cfg_fail(c, m->mark,
                                  "must be a mapping such as {input: 2.50, output: 10.00}, not %s",
                                  llmgw_cfg_kind_name(m));
        c->typebit = T_ANY;
        if ((rv = llmgw_cfg_keys_apply(c, m, price_keys, price)) != APR_SUCCESS)
            return rv;
        if (price->cached_input < 0)
            price->cached_input = price->input;
        price->glob = strpbrk(price->model, "*?[") != NULL;
        if (!price->glob)
            apr_hash_set(pr->exact, price->model, APR_HASH_KEY_STRING, price);
        APR_ARRAY_PUSH(pr->prices, llmgw_price_t *) = price;
    }
    c->owner = NULL;
    c->cfg->pricing = pr;
    return APR_SUCCESS;
}

/* ---- ledger -------------------------------------------------------------- */

static apr_status_t key_driver(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_ledger_cfg_t *l = obj;
    const char *s;
    int i;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a driver name", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    l->driver_mark = v->mark;
    for (i = 0; driver_names[i]; i++) {
        if (strcmp(s, driver_names[i]) == 0) {
            l->driver = driver_names[i];
            return APR_SUCCESS;
        }
    }
    return llmgw_cfg_fail(c, v->mark,
                          "unknown driver %s (expected sqlite3, the default kind: one file, or "
                          "pgsql, for several httpd nodes sharing budgets)",
                          llmgw_cfg_shown(c, v, s));
}

/* The value is never quoted in messages: a conninfo may hold a password. */
static apr_status_t key_params(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_status_t rv = llmgw_cfg_value_text(c, k->name, v, "a string", 0, &s);

    if (rv == APR_SUCCESS)
        ((llmgw_ledger_cfg_t *)obj)->params = apr_pstrdup(c->p, s);
    return rv;
}

static apr_status_t key_queue(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    apr_int64_t n = 0;
    cfg_key_t tmp = *k;
    apr_status_t rv;

    tmp.offset = 0;
    if ((rv = key_count(c, &tmp, v, &n)) != APR_SUCCESS)
        return rv;
    if (n > LLMGW_LEDGER_MAX_QUEUE)
        return llmgw_cfg_fail(c, v->mark, "queue must be at most %d rows", LLMGW_LEDGER_MAX_QUEUE);
    ((llmgw_ledger_cfg_t *)obj)->queue = (int)n;
    return APR_SUCCESS;
}

static const cfg_key_t ledger_keys[] = {
    {"driver", T_ANY, T_ANY, key_driver},
    {"params", T_ANY, T_ANY, key_params},
    {"queue", T_ANY, 0, key_queue},
    {NULL},
};

static apr_status_t ledger_read(cfg_ctx_t *c, const cfg_node_t *v)
{
    llmgw_ledger_cfg_t *l = apr_pcalloc(c->p, sizeof(*l));
    apr_status_t rv;

    c->owner = "ledger";
    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark,
                              "must be a mapping such as {driver: sqlite3, params: "
                              "/var/lib/apache2/llmgw/ledger.db}, not %s",
                              llmgw_cfg_kind_name(v));
    l->queue = LLMGW_UNSET;
    l->mark = v->mark;
    c->typebit = T_ANY;
    rv = llmgw_cfg_keys_apply(c, v, ledger_keys, l);
    c->owner = NULL;
    if (rv == APR_SUCCESS)
        c->cfg->ledger = l;
    return rv;
}

apr_status_t llmgw_cfg_access_read(cfg_ctx_t *c, const cfg_node_t *root)
{
    const cfg_node_t *v;
    apr_status_t rv;

    if ((v = llmgw_cfg_map_get(root, "pricing")) && !llmgw_cfg_is_null(v) &&
        (rv = pricing_read(c, v)) != APR_SUCCESS)
        return rv;
    if ((v = llmgw_cfg_map_get(root, "ledger")) && !llmgw_cfg_is_null(v) &&
        (rv = ledger_read(c, v)) != APR_SUCCESS)
        return rv;
    if ((v = llmgw_cfg_map_get(root, "access")) && !llmgw_cfg_is_null(v) &&
        (rv = access_read(c, v)) != APR_SUCCESS)
        return rv;
    return APR_SUCCESS;
}

/* ---- whole-file checks ------------------------------------------------- */

/* Every model name the file knows: provider models and defaults, pools and aliases. */
static void known_models(cfg_ctx_t *c, apr_hash_t *provider, apr_hash_t *virt)
{
    int i, j;

    for (i = 0; i < c->cfg->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(c->cfg->backends, i, const llmgw_backend_t *);
        if (b->type == LLMGW_BACKEND_POOL) {
            apr_hash_set(virt, b->name, APR_HASH_KEY_STRING, b);
            for (j = 0; b->aliases && j < b->aliases->nelts; j++)
                apr_hash_set(virt, APR_ARRAY_IDX(b->aliases, j, const char *), APR_HASH_KEY_STRING,
                             b);
            continue;
        }
        if (b->default_model)
            apr_hash_set(provider, b->default_model, APR_HASH_KEY_STRING, b);
        for (j = 0; b->models && j < b->models->nelts; j++)
            apr_hash_set(provider, APR_ARRAY_IDX(b->models, j, const char *), APR_HASH_KEY_STRING,
                         b);
    }
}

static int glob_hits(apr_hash_t *names, const char *glob)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, names); hi; hi = apr_hash_next(hi)) {
        if (apr_fnmatch(glob, apr_hash_this_key(hi), 0) == APR_SUCCESS)
            return 1;
    }
    return 0;
}

static apr_status_t entry_check(cfg_ctx_t *c, const llmgw_access_entry_t *e, apr_hash_t *provider,
                                apr_hash_t *virt, apr_hash_t *routes)
{
    apr_hash_index_t *hi;
    int i;

    c->owner = apr_psprintf(c->tmp, "%s \"%s\"",
                            e->kind == LLMGW_ACCESS_KIND_KEY ? "key" : "principal", e->name);
    for (i = 0; e->models && i < e->models->nelts; i++) {
        const char *g = APR_ARRAY_IDX(e->models, i, const char *);
        if (!glob_hits(provider, g) && !glob_hits(virt, g))
            return llmgw_cfg_fail(c, e->models_mark,
                                  "models: \"%s\" names no model of this file (list it in a "
                                  "backend's models: or defaultModel, or name a pool)",
                                  g);
    }
    for (i = 0; e->routes && i < e->routes->nelts; i++) {
        const char *g = APR_ARRAY_IDX(e->routes, i, const char *);
        if (!glob_hits(routes, g))
            return llmgw_cfg_fail(c, e->routes_mark, "routes: \"%s\" names no route of this file",
                                  g);
    }
    if (!e->budget.nusd)
        return APR_SUCCESS;
    /* A budget holds only what can be priced: every provider model it may use. */
    for (hi = apr_hash_first(c->tmp, provider); hi; hi = apr_hash_next(hi)) {
        const char *model = apr_hash_this_key(hi);
        if (!llmgw_access_model_allowed(e, model) && e->models)
            continue;
        if (!llmgw_pricing_find(c->cfg->pricing, model))
            return llmgw_cfg_fail(c, e->budget_mark,
                                  "a budget needs a price for every model it allows, and model "
                                  "\"%s\" has none in pricing:",
                                  model);
    }
    if (!c->cfg->pricing)
        return llmgw_cfg_fail(c, e->budget_mark,
                              "a budget needs pricing: (USD per million tokens "
                              "for the models it allows)");
    return APR_SUCCESS;
}

apr_status_t llmgw_cfg_access_check(cfg_ctx_t *c)
{
    const llmgw_access_cfg_t *a = c->cfg->access;
    apr_hash_t *provider = apr_hash_make(c->tmp), *virt = apr_hash_make(c->tmp);
    apr_hash_t *routes = apr_hash_make(c->tmp);
    apr_status_t rv;
    int i;

    if (!a)
        return APR_SUCCESS;
    known_models(c, provider, virt);
    for (i = 0; i < c->cfg->routes->nelts; i++) {
        const llmgw_route_t *r = APR_ARRAY_IDX(c->cfg->routes, i, const llmgw_route_t *);
        apr_hash_set(routes, r->name, APR_HASH_KEY_STRING, r);
    }
    for (i = 0; i < a->entries->nelts; i++) {
        rv = entry_check(c, APR_ARRAY_IDX(a->entries, i, const llmgw_access_entry_t *), provider,
                         virt, routes);
        if (rv != APR_SUCCESS)
            return rv;
    }
    c->owner = NULL;
    return APR_SUCCESS;
}
