/*
 * gateway.yaml -> llmgw_config_t.
 *
 * Two passes. The libyaml event stream is first turned into a small tree of
 * nodes that keeps the line:column of every node (llmgw_config_yaml.c). The
 * tree is then walked with one table per mapping (backend, config, pool member,
 * route): each key names the backend types that accept it, the types that
 * require it and a parser that writes one field of the target struct. Names
 * (route -> backend, pool -> member) are recorded as references and resolved
 * once the whole file is read, because routes may come before backends.
 *
 * Secrets: messages quote a value only when it was written literally in the
 * file, never what a ${VAR} expanded to, and never quote apiKey at all.
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <yaml.h>

#include "llmgw_config.h"
#include "llmgw_strategy.h"
#include "llmgw_redact.h"
#include "llmgw_config_private.h"

static const char *const backend_type_names[LLMGW_BACKEND_TYPE_COUNT + 1] = {
    "openai", "anthropic", "azure-openai", "google", "meta", "mistral", "pool", NULL};
static const char *const unsupported_names[] = {"error", "drop", NULL};
/* Index i names the api 1 << i (llmgw_api_e). */
static const char *const api_names[] = {"chat",      "embeddings", "models",
                                        "responses", "messages",   NULL};
/* In llmgw_recovery_e order. */
static const char *const recovery_names[] = {"none", "continue", "buffer", NULL};

static const char *join_names(cfg_ctx_t *c, const char *const *names, unsigned mask)
{
    const char *out = NULL;
    int i;

    for (i = 0; names[i]; i++) {
        if (mask & (1u << i))
            out = out ? apr_pstrcat(c->tmp, out, ", ", names[i], NULL) : names[i];
    }
    return out ? out : "";
}

/* ---- value parsers --------------------------------------------------- */

static apr_status_t key_skip(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    return APR_SUCCESS; /* read before the other keys */
}

static apr_status_t key_string(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a string", &s);

    if (rv == APR_SUCCESS && s)
        *FIELD(obj, k, const char *) = apr_pstrdup(c->p, s);
    return rv;
}

/* The value is not quoted in messages: a URL may carry credentials. */
static apr_status_t key_url(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    char *url;
    apr_size_t n, scheme;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a URL", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    scheme = strncasecmp(s, "http://", 7) == 0 ? 7 : strncasecmp(s, "https://", 8) == 0 ? 8 : 0;
    url = apr_pstrdup(c->p, s);
    for (n = strlen(url); n > scheme && url[n - 1] == '/'; n--)
        url[n - 1] = '\0';
    if (!scheme || n == scheme)
        return llmgw_cfg_fail(c, v->mark, "%s must be a URL starting with http:// or https://",
                              k->name);
    *FIELD(obj, k, const char *) = url;
    return APR_SUCCESS;
}

static apr_status_t key_duration(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_interval_time_t d;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a duration", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    if (llmgw_duration_parse(s, &d) != APR_SUCCESS)
        return llmgw_cfg_fail(
            c, v->mark, "%s must be a duration with a unit, such as 250ms, 30s, 2m or 1h, not %s",
            k->name, llmgw_cfg_shown(c, v, s));
    if (d == 0 && k->min > 0)
        return llmgw_cfg_fail(c, v->mark, "%s must be longer than zero", k->name);
    *FIELD(obj, k, apr_interval_time_t) = d;
    return APR_SUCCESS;
}

/*
 * The decimal digits that start @p s (one at least) as *n, when it is at
 * most @p max; *rest is what follows them (a unit, or ""). Integers,
 * durations and sizes all read their digits here, so that each refuses a
 * number too large the same way instead of wrapping around.
 */
static int digits_parse(const char *s, apr_int64_t max, apr_int64_t *n, const char **rest)
{
    apr_int64_t v = 0;

    if (!s || !apr_isdigit(*s))
        return 0;
    for (; apr_isdigit(*s); s++) {
        if (v > (max - (*s - '0')) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    *n = v;
    *rest = s;
    return 1;
}

static int int_parse(const char *s, long *out)
{
    apr_int64_t n;
    const char *rest;

    if (!digits_parse(s, INT_MAX, &n, &rest) || *rest)
        return 0;
    *out = (long)n;
    return 1;
}

static apr_status_t key_int(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    long n;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "an integer", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    if (!int_parse(s, &n) || n < k->min || n > k->max) {
        if (k->max == INT_MAX)
            return llmgw_cfg_fail(c, v->mark, "%s must be an integer of at least %ld, not %s",
                                  k->name, k->min, llmgw_cfg_shown(c, v, s));
        return llmgw_cfg_fail(c, v->mark, "%s must be an integer from %ld to %ld, not %s", k->name,
                              k->min, k->max, llmgw_cfg_shown(c, v, s));
    }
    *FIELD(obj, k, int) = (int)n;
    return APR_SUCCESS;
}

static apr_status_t key_bool(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    static const char *const words[] = {"false", "no", "off", "true", "yes", "on", NULL};
    const char *s;
    int i;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "true or false", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    for (i = 0; words[i]; i++) {
        if (strcasecmp(s, words[i]) == 0) {
            *FIELD(obj, k, int) = i >= 3;
            return APR_SUCCESS;
        }
    }
    return llmgw_cfg_fail(c, v->mark, "%s must be true or false, not %s", k->name,
                          llmgw_cfg_shown(c, v, s));
}

/* Index of the value in k->choices, or -1 when the (optional) value is absent. */
static apr_status_t choice_index(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, int *idx)
{
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a string", &s);

    *idx = -1;
    if (rv != APR_SUCCESS || !s)
        return rv;
    for (*idx = 0; k->choices[*idx]; (*idx)++) {
        if (strcmp(s, k->choices[*idx]) == 0)
            return APR_SUCCESS;
    }
    return llmgw_cfg_fail(c, v->mark, "%s must be one of %s, not %s", k->name,
                          join_names(c, k->choices, ~0u), llmgw_cfg_shown(c, v, s));
}

static apr_status_t key_choice(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    int i;
    apr_status_t rv = choice_index(c, k, v, &i);

    if (rv == APR_SUCCESS && i >= 0)
        *FIELD(obj, k, int) = i;
    return rv;
}

static const char *const *builtin_strategy_names(cfg_ctx_t *c)
{
    apr_array_header_t *names = apr_array_make(c->tmp, 8, sizeof(const char *));
    const llmgw_strategy_t *st;
    int e;

    for (e = 0; (st = llmgw_strategy_get((llmgw_strategy_e)e)); e++)
        APR_ARRAY_PUSH(names, const char *) = st->name;
    APR_ARRAY_PUSH(names, const char *) = NULL;
    return (const char *const *)(void *)names->elts;
}

/* "latency, weighted, ..." for the message about an unknown strategy. */
static const char *strategy_names(cfg_ctx_t *c)
{
    const char *const *names = c->opts->strategy_names;
    const char *out = NULL;
    int i;

    if (!names)
        names = builtin_strategy_names(c);
    for (i = 0; names[i]; i++)
        out = out ? apr_pstrcat(c->tmp, out, ", ", names[i], NULL) : names[i];
    return out ? out : "(none)";
}

static const llmgw_strategy_t *strategy_resolve(cfg_ctx_t *c, const char *name)
{
    if (c->opts->resolve_strategy)
        return c->opts->resolve_strategy(c->opts->baton, name);
    return llmgw_strategy_find(name);
}

static apr_status_t key_strategy(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_backend_t *b = obj;
    const llmgw_strategy_t *st;
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a string", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    st = strategy_resolve(c, s);
    if (!st)
        return llmgw_cfg_fail(c, v->mark, "strategy must be one of %s, not %s", strategy_names(c),
                              llmgw_cfg_shown(c, v, s));
    if (!st->select)
        return llmgw_cfg_fail(c, v->mark, "strategy %s is registered without a select function",
                              llmgw_cfg_shown(c, v, s));
    b->strategy_name = apr_pstrdup(c->p, s);
    b->strategy = st;
    return APR_SUCCESS;
}

static apr_status_t key_api(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    int i;
    apr_status_t rv = choice_index(c, k, v, &i);

    if (rv == APR_SUCCESS && i >= 0)
        ((llmgw_route_t *)obj)->api = (llmgw_api_e)(1 << i);
    return rv;
}

static apr_status_t key_models(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    apr_array_header_t *models = *FIELD(obj, k, apr_array_header_t *);
    const char *s;
    apr_status_t rv;
    int i;

    if (v->kind != NODE_SEQ)
        return llmgw_cfg_fail(c, v->mark, "%s must be a sequence of model names, not %s", k->name,
                              llmgw_cfg_kind_name(v));
    for (i = 0; i < v->items->nelts; i++) {
        if ((rv = llmgw_cfg_value_text(c, k->name, NODE_AT(v, i), "a model name", 0, &s)) !=
            APR_SUCCESS)
            return rv;
        APR_ARRAY_PUSH(models, const char *) = apr_pstrdup(c->p, s);
    }
    return APR_SUCCESS;
}

static apr_status_t key_aliases(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_backend_t *b = obj;
    const char *s;
    apr_status_t rv;
    int i;

    if (v->kind != NODE_SEQ)
        return llmgw_cfg_fail(c, v->mark, "aliases must be a sequence of model names, not %s",
                              llmgw_cfg_kind_name(v));
    for (i = 0; i < v->items->nelts; i++) {
        cfg_alias_t *a;
        if ((rv = llmgw_cfg_value_text(c, k->name, NODE_AT(v, i), "a model name", 0, &s)) !=
            APR_SUCCESS)
            return rv;
        if (!*s)
            return llmgw_cfg_fail(c, NODE_AT(v, i)->mark, "an alias must not be empty");
        s = apr_pstrdup(c->p, s);
        APR_ARRAY_PUSH(b->aliases, const char *) = s;
        a = apr_array_push(c->aliases);
        a->name = s;
        a->pool = b;
        a->node = NODE_AT(v, i);
    }
    return APR_SUCCESS;
}

static apr_status_t key_size(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    const char *s;
    apr_off_t n;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a size", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    if (llmgw_size_parse(s, &n) != APR_SUCCESS)
        return llmgw_cfg_fail(c, v->mark, "%s must be a size such as 512K, 20M or 1G, not %s",
                              k->name, llmgw_cfg_shown(c, v, s));
    if (n < k->min || n > (apr_off_t)k->max)
        return llmgw_cfg_fail(c, v->mark, "%s must be from %ld bytes to %ldM, not %s", k->name,
                              k->min, k->max / (1024 * 1024), llmgw_cfg_shown(c, v, s));
    *FIELD(obj, k, apr_off_t) = n;
    return APR_SUCCESS;
}

/*
 * One allowHosts entry: a host name (compared without case and without a
 * trailing dot) or an IP literal, kept in the canonical text form the fetch
 * compares against, so "::0001" and "[::1]" both name ::1.
 */
static apr_status_t allow_host(cfg_ctx_t *c, const cfg_node_t *v, const char *s, const char **out)
{
    unsigned char addr[16];
    char canon[64];
    apr_size_t n = strlen(s);
    char *h, *p;

    if (n > 2 && s[0] == '[' && s[n - 1] == ']')
        s = apr_pstrmemdup(c->tmp, s + 1, n - 2);
    if (strchr(s, ':')) {
        if (inet_pton(AF_INET6, s, addr) != 1)
            return llmgw_cfg_fail(c, v->mark,
                                  "allowHosts: %s is not an IPv6 address (a port or a URL "
                                  "cannot be listed, only the host)",
                                  llmgw_cfg_shown(c, v, s));
        *out = apr_pstrdup(c->p, inet_ntop(AF_INET6, addr, canon, sizeof(canon)));
        return APR_SUCCESS;
    }
    if (inet_pton(AF_INET, s, addr) == 1) {
        *out = apr_pstrdup(c->p, inet_ntop(AF_INET, addr, canon, sizeof(canon)));
        return APR_SUCCESS;
    }
    h = apr_pstrdup(c->p, s);
    n = strlen(h);
    if (n > 1 && h[n - 1] == '.')
        h[--n] = '\0';
    for (p = h; *p; p++) {
        if (*p == '*')
            return llmgw_cfg_fail(c, v->mark,
                                  "allowHosts: %s: wildcards are not supported; list each "
                                  "host by name",
                                  llmgw_cfg_shown(c, v, s));
        if (!apr_isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
            return llmgw_cfg_fail(c, v->mark, "allowHosts: %s is not a host name or an IP address",
                                  llmgw_cfg_shown(c, v, s));
        *p = (char)apr_tolower(*p);
    }
    if (!*h || *h == '.' || strstr(h, ".."))
        return llmgw_cfg_fail(c, v->mark, "allowHosts: %s is not a host name or an IP address",
                              llmgw_cfg_shown(c, v, s));
    *out = h;
    return APR_SUCCESS;
}

static apr_status_t key_hosts(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    apr_array_header_t *hosts = *FIELD(obj, k, apr_array_header_t *);
    const char *s, *h = NULL;
    apr_status_t rv;
    int i;

    if (v->kind != NODE_SEQ)
        return llmgw_cfg_fail(c, v->mark, "%s must be a sequence of host names, not %s", k->name,
                              llmgw_cfg_kind_name(v));
    for (i = 0; i < v->items->nelts; i++) {
        const cfg_node_t *item = NODE_AT(v, i);
        if ((rv = llmgw_cfg_value_text(c, k->name, item, "a host name", 0, &s)) != APR_SUCCESS ||
            (rv = allow_host(c, item, s, &h)) != APR_SUCCESS)
            return rv;
        APR_ARRAY_PUSH(hosts, const char *) = h;
    }
    return APR_SUCCESS;
}

/* ---- key tables ------------------------------------------------------ */

static apr_status_t keys_apply(cfg_ctx_t *c, const cfg_node_t *map, const cfg_key_t *table,
                               void *obj);
static apr_status_t key_config(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj);
static apr_status_t key_image_fetch(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                    void *obj);
static apr_status_t key_members(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj);
static apr_status_t key_member_name(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                    void *obj);
static apr_status_t key_path(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj);
static apr_status_t key_methods(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj);
static apr_status_t key_route_backend(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                      void *obj);
static apr_status_t key_context_fallback(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                         void *obj);

#define B(f) offsetof(llmgw_backend_t, f)
#define KEY_API_KEY_REQUIRED (T(OPENAI) | T(ANTHROPIC) | T(AZURE_OPENAI) | T(MISTRAL))

static const cfg_key_t config_keys[] = {
    {"apiKey", T_PROVIDERS, KEY_API_KEY_REQUIRED, key_string, B(api_key)},
    {"orgId", T(OPENAI), 0, key_string, B(org_id)},
    {"project", T(OPENAI), 0, key_string, B(project)},
    {"endpoint", T_PROVIDERS, T(AZURE_OPENAI) | T(META), key_url, B(endpoint)},
    {"defaultModel", T_PROVIDERS, 0, key_string, B(default_model)},
    {"models", T_PROVIDERS, 0, key_models, B(models)},
    {"timeout", T_PROVIDERS, 0, key_duration, B(timeout), 1},
    {"connectTimeout", T_PROVIDERS, 0, key_duration, B(connect_timeout), 1},
    {"firstByteTimeout", T_PROVIDERS, 0, key_duration, B(first_byte_timeout), 1},
    {"firstTokenTimeout", T_PROVIDERS, 0, key_duration, B(first_token_timeout), 1},
    {"idleTimeout", T_PROVIDERS, 0, key_duration, B(idle_timeout), 1},
    {"maxRetries", T_PROVIDERS, 0, key_int, B(max_retries), 0, 10},
    {"maxTokens", T(ANTHROPIC), 0, key_int, B(max_tokens), 1, INT_MAX},
    {"deploymentName", T(AZURE_OPENAI), T(AZURE_OPENAI), key_string, B(deployment_name)},
    {"apiVersion", T(AZURE_OPENAI), T(AZURE_OPENAI), key_string, B(api_version)},
    {"projectId", T(GOOGLE), 0, key_string, B(project_id)},
    {"location", T(GOOGLE), 0, key_string, B(location)},
    {"credentialsFile", T(GOOGLE), 0, key_string, B(credentials_file)},
    {"unsupportedParams", T_PROVIDERS, 0, key_choice, B(unsupported_drop), 0, 0, unsupported_names},
    {"imageFetch", T(GOOGLE), 0, key_image_fetch, B(image_fetch)},
    {"limits", T_PROVIDERS, 0, llmgw_cfg_key_backend_limits, B(limits)},
    /* Only where providers.md documents a continuation of a trailing assistant
     * message: Anthropic's prefill (5.3 rule 6), Mistral's prefix (7.3). */
    {"prefill", T(ANTHROPIC) | T(MISTRAL), 0, key_bool, B(prefill)},
    {"contextFallback", T_PROVIDERS, 0, key_context_fallback, B(context_fallback)},
    {NULL},
};

#define F(f) offsetof(llmgw_image_fetch_t, f)

/* imageFetch: only where a translator fetches remote images (google, providers.md 6.4). */
static const cfg_key_t image_fetch_keys[] = {
    {"allowHosts", T_ANY, 0, key_hosts, F(allow_hosts)},
    {"maxBytes", T_ANY, 0, key_size, F(max_bytes), 1, LLMGW_MAX_IMAGE_MAX_BYTES},
    {"timeout", T_ANY, 0, key_duration, F(timeout), 1},
    {NULL},
};

static const cfg_key_t backend_keys[] = {
    {"name", T_ANY, 0, key_skip},
    {"type", T_ANY, 0, key_skip},
    {"config", T_PROVIDERS, T_PROVIDERS, key_config},
    {"strategy", T(POOL), 0, key_strategy},
    {"fallback", T(POOL), 0, key_bool, B(fallback)},
    {"failureThreshold", T(POOL), 0, key_int, B(failure_threshold), 1, INT_MAX},
    {"cooldown", T(POOL), 0, key_duration, B(cooldown), 0},
    {"maxAttempts", T(POOL), 0, key_int, B(max_attempts), 1, 100},
    {"backends", T(POOL), T(POOL), key_members},
    {"aliases", T(POOL), 0, key_aliases, B(aliases)},
    {NULL},
};

static const cfg_key_t member_keys[] = {
    {"name", T_ANY, T_ANY, key_member_name},
    {"weight", T_ANY, 0, key_int, offsetof(llmgw_pool_member_t, weight), 0, 1000000},
    {NULL},
};

static const cfg_key_t route_keys[] = {
    {"name", T_ANY, T_ANY, key_skip},
    {"path", T_ANY, T_ANY, key_path},
    {"methods", T_ANY, 0, key_methods},
    {"backend", T_ANY, T_ANY, key_route_backend},
    {"api", T_ANY, 0, key_api, 0, 0, 0, api_names},
    {"streamRecovery", T_ANY, 0, key_choice, offsetof(llmgw_route_t, stream_recovery), 0, 0,
     recovery_names},
    {NULL},
};

static const cfg_key_t *key_find(const cfg_key_t *table, const char *name)
{
    for (; table->name; table++) {
        if (strcmp(table->name, name) == 0)
            return table;
    }
    return NULL;
}

static apr_status_t key_unknown(cfg_ctx_t *c, const cfg_node_t *k, const cfg_key_t *table)
{
    const char *hint = "";

    if (table == backend_keys && key_find(config_keys, k->text))
        hint = " (provider settings go under config:)";
    return llmgw_cfg_fail(c, k->mark, "unknown key \"%s\"%s", k->text, hint);
}

static apr_status_t key_not_for_type(cfg_ctx_t *c, const cfg_node_t *k, const cfg_key_t *key)
{
    int many = (key->types & (key->types - 1)) != 0;

    return llmgw_cfg_fail(c, k->mark, "%s is only valid for type%s %s, not %s", key->name,
                          many ? "s" : "", join_names(c, backend_type_names, key->types),
                          join_names(c, backend_type_names, c->typebit));
}

static apr_status_t keys_apply(cfg_ctx_t *c, const cfg_node_t *map, const cfg_key_t *table,
                               void *obj)
{
    apr_uint32_t seen = 0;
    const cfg_key_t *key;
    apr_status_t rv;
    int i;

    for (i = 0; i + 1 < map->items->nelts; i += 2) {
        const cfg_node_t *k = NODE_AT(map, i), *v = NODE_AT(map, i + 1);
        if (!(key = key_find(table, k->text)))
            return key_unknown(c, k, table);
        if (!(key->types & c->typebit))
            return key_not_for_type(c, k, key);
        seen |= 1u << (key - table);
        if (llmgw_cfg_is_null(v) && (key->required & c->typebit))
            return llmgw_cfg_fail(c, v->mark, "%s has no value", key->name);
        if (!llmgw_cfg_is_null(v) && (rv = key->parse(c, key, v, obj)) != APR_SUCCESS)
            return rv;
    }
    for (key = table; key->name; key++) {
        if ((key->required & c->typebit) && !(seen & (1u << (key - table))))
            return llmgw_cfg_fail(c, map->mark, "missing required key \"%s\"", key->name);
    }
    return APR_SUCCESS;
}

/* ---- backends -------------------------------------------------------- */

static void ref_add(cfg_ctx_t *c, const char *name, const cfg_node_t *v,
                    const llmgw_backend_t **slot)
{
    cfg_ref_t *ref = apr_array_push(c->refs);

    ref->name = name;
    ref->shown = llmgw_cfg_shown(c, v, name);
    ref->owner = c->owner;
    ref->mark = v->mark;
    ref->slot = slot;
}

static apr_status_t key_config(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark, "config must be a mapping, not %s",
                              llmgw_cfg_kind_name(v));
    return keys_apply(c, v, config_keys, obj);
}

static apr_status_t key_image_fetch(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                    void *obj)
{
    const char *owner = c->owner;
    apr_status_t rv;

    if (v->kind != NODE_MAP)
        return llmgw_cfg_fail(c, v->mark, "imageFetch must be a mapping, not %s",
                              llmgw_cfg_kind_name(v));
    c->owner = apr_pstrcat(c->tmp, owner, " imageFetch", NULL);
    rv = keys_apply(c, v, image_fetch_keys, FIELD(obj, k, llmgw_image_fetch_t));
    c->owner = owner;
    return rv;
}

/* A backend name, resolved (and checked, contexts_check) once every backend is read. */
static apr_status_t key_context_fallback(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                         void *obj)
{
    llmgw_backend_t *b = obj;
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a backend name", &s);

    if (rv != APR_SUCCESS || !s)
        return rv;
    b->context_fallback_name = apr_pstrdup(c->p, s);
    b->context_fallback_mark = v->mark;
    ref_add(c, b->context_fallback_name, v, FIELD(obj, k, const llmgw_backend_t *));
    return APR_SUCCESS;
}

static apr_status_t key_member_name(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                    void *obj)
{
    llmgw_pool_member_t *m = obj;
    const char *s;
    apr_status_t rv = llmgw_cfg_value_text(c, "member name", v, "a backend name", 0, &s);

    if (rv != APR_SUCCESS)
        return rv;
    m->name = apr_pstrdup(c->p, s);
    m->mark = v->mark;
    ref_add(c, m->name, v, &m->backend);
    return APR_SUCCESS;
}

static apr_status_t member_read(cfg_ctx_t *c, const cfg_node_t *v, llmgw_pool_member_t *m)
{
    m->weight = 1;
    if (v->kind == NODE_MAP)
        return keys_apply(c, v, member_keys, m);
    if (v->kind == NODE_SCALAR && !llmgw_cfg_is_null(v))
        return key_member_name(c, NULL, v, m);
    return llmgw_cfg_fail(c, v->mark,
                          "each member must be a backend name or a mapping with name and "
                          "weight");
}

static apr_status_t members_read(cfg_ctx_t *c, const cfg_node_t *v, llmgw_backend_t *b)
{
    apr_hash_t *seen = apr_hash_make(c->tmp);
    llmgw_pool_member_t *m;
    apr_status_t rv;
    int i;

    /* Sized once: references point into the array, so it must never move. */
    b->members = apr_array_make(c->p, v->items->nelts, sizeof(llmgw_pool_member_t));
    for (i = 0; i < v->items->nelts; i++) {
        m = apr_array_push(b->members);
        if ((rv = member_read(c, NODE_AT(v, i), m)) != APR_SUCCESS)
            return rv;
        if (apr_hash_get(seen, m->name, APR_HASH_KEY_STRING))
            return llmgw_cfg_fail(c, m->mark, "member %s is listed twice",
                                  APR_ARRAY_IDX(c->refs, c->refs->nelts - 1, cfg_ref_t).shown);
        apr_hash_set(seen, m->name, APR_HASH_KEY_STRING, m);
    }
    return APR_SUCCESS;
}

static apr_status_t key_members(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_backend_t *b = obj;
    const char *owner = c->owner;
    unsigned typebit = c->typebit;
    apr_status_t rv;

    if (v->kind != NODE_SEQ || v->items->nelts == 0)
        return llmgw_cfg_fail(c, v->mark, "backends must be a non-empty sequence of backend names");
    c->owner = apr_psprintf(c->tmp, "pool \"%s\"", b->name);
    c->typebit = T_OTHER;
    rv = members_read(c, v, b);
    c->owner = owner;
    c->typebit = typebit;
    return rv;
}

static int name_chars_ok(const char *s)
{
    for (; *s; s++) {
        if (!apr_isalnum(*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    }
    return 1;
}

/* name: first, so that every later message can name the backend. */
static apr_status_t backend_name(cfg_ctx_t *c, const cfg_node_t *n, llmgw_backend_t *b)
{
    const cfg_node_t *v = llmgw_cfg_map_get(n, "name");
    const llmgw_backend_t *other;
    const char *s;
    apr_status_t rv;

    if (!v || llmgw_cfg_is_null(v))
        return llmgw_cfg_fail(c, v ? v->mark : n->mark, "missing required key \"name\"");
    if ((rv = llmgw_cfg_value_text(c, "name", v, "a string", 0, &s)) != APR_SUCCESS)
        return rv;
    if (!name_chars_ok(s))
        return llmgw_cfg_fail(c, v->mark,
                              "name %s may only contain letters, digits, '.', '_' and '-'",
                              llmgw_cfg_shown(c, v, s));
    other = apr_hash_get(c->cfg->backend_by_name, s, APR_HASH_KEY_STRING);
    if (other)
        return llmgw_cfg_fail(c, v->mark, "duplicate backend name %s (first at line %lu)",
                              llmgw_cfg_shown(c, v, s), other->mark.line);
    b->name = apr_pstrdup(c->p, s);
    apr_hash_set(c->cfg->backend_by_name, b->name, APR_HASH_KEY_STRING, b);
    c->owner = apr_psprintf(c->tmp, "backend \"%s\"", b->name);
    return APR_SUCCESS;
}

static apr_status_t backend_type(cfg_ctx_t *c, const cfg_node_t *n, llmgw_backend_t *b)
{
    const cfg_node_t *v = llmgw_cfg_map_get(n, "type");
    const char *s;
    apr_status_t rv;
    int i;

    if (!v || llmgw_cfg_is_null(v))
        return llmgw_cfg_fail(c, v ? v->mark : n->mark, "missing required key \"type\"");
    if ((rv = llmgw_cfg_value_text(c, "type", v, "a string", 0, &s)) != APR_SUCCESS)
        return rv;
    for (i = 0; i < LLMGW_BACKEND_TYPE_COUNT; i++) {
        if (strcmp(s, backend_type_names[i]) == 0) {
            b->type = (llmgw_backend_type_e)i;
            c->typebit = 1u << i;
            return APR_SUCCESS;
        }
    }
    return llmgw_cfg_fail(c, v->mark, "unknown type %s (expected one of %s)",
                          llmgw_cfg_shown(c, v, s), join_names(c, backend_type_names, ~0u));
}

static apr_status_t google_check(cfg_ctx_t *c, const cfg_node_t *n, llmgw_backend_t *b)
{
    const cfg_node_t *config = llmgw_cfg_map_get(n, "config");
    const cfg_node_t *file = llmgw_cfg_map_get(config, "credentialsFile");
    const cfg_node_t *project = llmgw_cfg_map_get(config, "projectId");
    llmgw_mark_t m = config->mark;

    /* Where a message about the key file points (llmgw_google_cfg_load_sa). */
    b->credentials_mark = file ? file->mark : project ? project->mark : m;

    if (!b->project_id != !b->location)
        return llmgw_cfg_fail(c, m, "projectId and location must be given together (Vertex AI)");
    if (!b->api_key && !b->project_id)
        return llmgw_cfg_fail(c, m,
                              "a google backend needs apiKey (Gemini API), or projectId and "
                              "location (Vertex AI)");
    if (b->credentials_file && !b->project_id)
        return llmgw_cfg_fail(c, m, "credentialsFile is only used with projectId and location");
    return APR_SUCCESS;
}

static apr_status_t pool_check(cfg_ctx_t *c, const cfg_node_t *n, const llmgw_backend_t *b)
{
    int i;

    if (b->strategy != &llmgw_strategy_weighted)
        return APR_SUCCESS;
    for (i = 0; i < b->members->nelts; i++) {
        if (APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t).weight > 0)
            return APR_SUCCESS;
    }
    return llmgw_cfg_fail(c, llmgw_cfg_map_get(n, "backends")->mark,
                          "a weighted pool needs at least one member with a weight above 0");
}

static llmgw_backend_t *backend_new(cfg_ctx_t *c, const cfg_node_t *n, int index)
{
    llmgw_backend_t *b = apr_pcalloc(c->p, sizeof(*b));

    b->index = index;
    b->mark = n->mark;
    b->models = apr_array_make(c->p, 2, sizeof(const char *));
    b->members = apr_array_make(c->p, 2, sizeof(llmgw_pool_member_t));
    b->aliases = apr_array_make(c->p, 1, sizeof(const char *));
    b->timeout = b->connect_timeout = LLMGW_UNSET;
    b->first_byte_timeout = b->idle_timeout = b->first_token_timeout = LLMGW_UNSET;
    b->max_retries = b->max_tokens = b->failure_threshold = LLMGW_UNSET;
    b->cooldown = LLMGW_UNSET;
    b->max_attempts = LLMGW_UNSET;
    b->limits.rpm = b->limits.tpm = b->limits.concurrent = LLMGW_UNSET;
    b->image_fetch.allow_hosts = apr_array_make(c->p, 2, sizeof(const char *));
    b->image_fetch.max_bytes = LLMGW_UNSET;
    b->image_fetch.timeout = LLMGW_UNSET;
    b->strategy = &llmgw_strategy_latency;
    b->strategy_name = llmgw_strategy_latency.name;
    b->fallback = 1;
    return b;
}

static apr_status_t backend_read(cfg_ctx_t *c, const cfg_node_t *n, int index)
{
    llmgw_backend_t *b;
    apr_status_t rv;

    c->owner = apr_psprintf(c->tmp, "backend #%d", index + 1);
    if (n->kind != NODE_MAP)
        return llmgw_cfg_fail(c, n->mark,
                              "each backend must be a mapping with name and type, not %s",
                              llmgw_cfg_kind_name(n));
    b = backend_new(c, n, index);
    if ((rv = backend_name(c, n, b)) != APR_SUCCESS ||
        (rv = backend_type(c, n, b)) != APR_SUCCESS ||
        (rv = keys_apply(c, n, backend_keys, b)) != APR_SUCCESS)
        return rv;
    if (b->type == LLMGW_BACKEND_GOOGLE && (rv = google_check(c, n, b)) != APR_SUCCESS)
        return rv;
    if (b->type == LLMGW_BACKEND_POOL && (rv = pool_check(c, n, b)) != APR_SUCCESS)
        return rv;
    /* Azure always serves its deployment: that is the model of a request
     * that names none, and what /v1/models lists for it. */
    if (b->type == LLMGW_BACKEND_AZURE_OPENAI && !b->default_model)
        b->default_model = b->deployment_name;
    APR_ARRAY_PUSH(c->cfg->backends, llmgw_backend_t *) = b;
    return APR_SUCCESS;
}

/* ---- routes ---------------------------------------------------------- */

static apr_status_t route_name(cfg_ctx_t *c, const cfg_node_t *n, llmgw_route_t *r)
{
    const cfg_node_t *v = llmgw_cfg_map_get(n, "name"), *other;
    const char *s;
    apr_status_t rv;

    if (!v || llmgw_cfg_is_null(v))
        return llmgw_cfg_fail(c, v ? v->mark : n->mark, "missing required key \"name\"");
    if ((rv = llmgw_cfg_value_text(c, "name", v, "a string", 0, &s)) != APR_SUCCESS)
        return rv;
    if ((other = apr_hash_get(c->route_names, s, APR_HASH_KEY_STRING)))
        return llmgw_cfg_fail(c, v->mark, "duplicate route name %s (first at line %lu)",
                              llmgw_cfg_shown(c, v, s), other->mark.line);
    apr_hash_set(c->route_names, s, APR_HASH_KEY_STRING, v);
    r->name = apr_pstrdup(c->p, s);
    c->owner = apr_psprintf(c->tmp, "route \"%s\"", r->name);
    return APR_SUCCESS;
}

static apr_status_t key_path(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    llmgw_route_t *r = obj;
    const llmgw_route_t *other;
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a string", &s);

    if (rv != APR_SUCCESS)
        return rv;
    if (s[0] != '/' || strpbrk(s, "?# "))
        return llmgw_cfg_fail(c, v->mark,
                              "path %s must start with '/' and hold no '?', '#' or space",
                              llmgw_cfg_shown(c, v, s));
    if ((other = llmgw_config_route(c->cfg, s)))
        return llmgw_cfg_fail(c, v->mark, "path %s is already used by route \"%s\"",
                              llmgw_cfg_shown(c, v, s), other->name);
    r->path = apr_pstrdup(c->p, s);
    apr_hash_set(c->cfg->route_by_path, r->path, APR_HASH_KEY_STRING, r);
    return APR_SUCCESS;
}

static apr_status_t key_methods(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v, void *obj)
{
    static const char *const names[] = {"GET", "POST", "HEAD", "OPTIONS", NULL};
    llmgw_route_t *r = obj;
    const char *s;
    apr_status_t rv;
    int i, j;

    if (v->kind != NODE_SEQ || v->items->nelts == 0)
        return llmgw_cfg_fail(c, v->mark,
                              "methods must be a non-empty sequence such as [\"POST\"]");
    for (i = 0; i < v->items->nelts; i++) {
        const cfg_node_t *item = NODE_AT(v, i);
        if ((rv = llmgw_cfg_value_text(c, "methods", item, "a method", 0, &s)) != APR_SUCCESS)
            return rv;
        for (j = 0; names[j] && strcasecmp(s, names[j]) != 0; j++)
            ;
        if (!names[j])
            return llmgw_cfg_fail(c, item->mark,
                                  "unknown method %s (expected GET, POST, HEAD or "
                                  "OPTIONS)",
                                  llmgw_cfg_shown(c, item, s));
        r->methods |= 1 << j;
    }
    return APR_SUCCESS;
}

static apr_status_t key_route_backend(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                      void *obj)
{
    llmgw_route_t *r = obj;
    const char *s;
    apr_status_t rv = llmgw_cfg_key_text(c, k, v, "a backend name", &s);

    if (rv != APR_SUCCESS)
        return rv;
    r->backend_name = apr_pstrdup(c->p, s);
    ref_add(c, r->backend_name, v, &r->backend);
    return APR_SUCCESS;
}

/* The api: value naming @p api. */
static const char *api_name(llmgw_api_e api)
{
    int i;

    for (i = 0; api_names[i]; i++) {
        if (api == (llmgw_api_e)(1 << i))
            return api_names[i];
    }
    return "?";
}

static int path_ends_with(const char *path, const char *suffix)
{
    apr_size_t n = strlen(path), m = strlen(suffix);
    return n >= m && strcmp(path + n - m, suffix) == 0;
}

/* What the route serves, its default methods, and whether the two fit. */
static apr_status_t route_finish(cfg_ctx_t *c, const cfg_node_t *n, llmgw_route_t *r)
{
    const cfg_node_t *methods = llmgw_cfg_map_get(n, "methods");
    int need;

    if (!r->api)
        r->api = path_ends_with(r->path, "/chat/completions") ? LLMGW_API_CHAT
                 : path_ends_with(r->path, "/embeddings")     ? LLMGW_API_EMBEDDINGS
                 : path_ends_with(r->path, "/models")         ? LLMGW_API_MODELS
                 : path_ends_with(r->path, "/responses")      ? LLMGW_API_RESPONSES
                 : path_ends_with(r->path, "/messages")       ? LLMGW_API_MESSAGES
                                                              : 0;
    if (!r->api)
        return llmgw_cfg_fail(c, llmgw_cfg_map_get(n, "path")->mark,
                              "cannot tell what the path serves: end it with /chat/completions, "
                              "/embeddings, /models, /responses or /messages, or set api: chat, "
                              "embeddings, models, responses or messages");
    need = r->api == LLMGW_API_MODELS ? LLMGW_METHOD_GET : LLMGW_METHOD_POST;
    if (!r->methods)
        r->methods = need;
    if (!(r->methods & need))
        return llmgw_cfg_fail(c, methods->mark, "a %s route must allow %s", api_name(r->api),
                              need == LLMGW_METHOD_GET ? "GET" : "POST");
    if (r->methods & LLMGW_METHOD_GET)
        r->methods |= LLMGW_METHOD_HEAD;
    /* Recovery splices canonical chunks before a dialect's encoder (ingress.md 2.3). */
    if (r->stream_recovery != LLMGW_RECOVERY_NONE &&
        (r->api == LLMGW_API_EMBEDDINGS || r->api == LLMGW_API_MODELS))
        return llmgw_cfg_fail(
            c, llmgw_cfg_map_get(n, "streamRecovery")->mark,
            "streamRecovery is only for chat, responses and messages routes, not %s "
            "%s route",
            r->api == LLMGW_API_EMBEDDINGS ? "an" : "a", api_name(r->api));
    return APR_SUCCESS;
}

static apr_status_t route_read(cfg_ctx_t *c, const cfg_node_t *n, int index)
{
    llmgw_route_t *r;
    apr_status_t rv;

    c->owner = apr_psprintf(c->tmp, "route #%d", index + 1);
    c->typebit = T_OTHER;
    if (n->kind != NODE_MAP)
        return llmgw_cfg_fail(c, n->mark,
                              "each route must be a mapping with name, path and backend, "
                              "not %s",
                              llmgw_cfg_kind_name(n));
    r = apr_pcalloc(c->p, sizeof(*r));
    r->mark = n->mark;
    if ((rv = route_name(c, n, r)) != APR_SUCCESS ||
        (rv = keys_apply(c, n, route_keys, r)) != APR_SUCCESS ||
        (rv = route_finish(c, n, r)) != APR_SUCCESS)
        return rv;
    APR_ARRAY_PUSH(c->cfg->routes, llmgw_route_t *) = r;
    return APR_SUCCESS;
}

/* ---- whole file ------------------------------------------------------ */

static apr_status_t refs_resolve(cfg_ctx_t *c)
{
    int i;

    for (i = 0; i < c->refs->nelts; i++) {
        cfg_ref_t *ref = &APR_ARRAY_IDX(c->refs, i, cfg_ref_t);
        *ref->slot = llmgw_config_backend(c->cfg, ref->name);
        c->owner = ref->owner;
        if (!*ref->slot)
            return llmgw_cfg_fail(c, ref->mark, "backend %s is not defined", ref->shown);
    }
    c->owner = NULL;
    return APR_SUCCESS;
}

/* contextFallback names another provider backend: a pool would need its own policy. */
static apr_status_t contexts_check(cfg_ctx_t *c)
{
    int i;

    for (i = 0; i < c->cfg->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(c->cfg->backends, i, const llmgw_backend_t *);
        const llmgw_backend_t *fb = b->context_fallback;

        if (!fb)
            continue;
        c->owner = apr_psprintf(c->tmp, "backend \"%s\"", b->name);
        if (fb == b)
            return llmgw_cfg_fail(
                c, b->context_fallback_mark,
                "contextFallback names the backend itself; name one with a larger "
                "context window");
        if (fb->type == LLMGW_BACKEND_POOL)
            return llmgw_cfg_fail(
                c, b->context_fallback_mark,
                "contextFallback must name a provider backend, not the pool \"%s\"", fb->name);
    }
    c->owner = NULL;
    return APR_SUCCESS;
}

static apr_status_t cycle_fail(cfg_ctx_t *c, apr_array_header_t *stack, const llmgw_backend_t *to,
                               const llmgw_pool_member_t *m)
{
    const char *chain = to->name;
    int i;

    for (i = stack->nelts - 1; APR_ARRAY_IDX(stack, i, const llmgw_backend_t *) != to; i--)
        ;
    for (i++; i < stack->nelts; i++)
        chain = apr_pstrcat(c->tmp, chain, " -> ",
                            APR_ARRAY_IDX(stack, i, const llmgw_backend_t *)->name, NULL);
    return llmgw_cfg_fail(c, m->mark, "pool cycle: %s -> %s", chain, to->name);
}

/* Depth-first walk; state: 0 unvisited, 1 on the stack, 2 done. */
static apr_status_t pool_visit(cfg_ctx_t *c, const llmgw_backend_t *b, char *state,
                               apr_array_header_t *stack)
{
    apr_status_t rv;
    int i;

    state[b->index] = 1;
    APR_ARRAY_PUSH(stack, const llmgw_backend_t *) = b;
    for (i = 0; i < b->members->nelts; i++) {
        const llmgw_pool_member_t *m = &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
        if (m->backend->type != LLMGW_BACKEND_POOL || state[m->backend->index] == 2)
            continue;
        if (state[m->backend->index] == 1)
            return cycle_fail(c, stack, m->backend, m);
        if ((rv = pool_visit(c, m->backend, state, stack)) != APR_SUCCESS)
            return rv;
    }
    state[b->index] = 2;
    apr_array_pop(stack);
    return APR_SUCCESS;
}

static apr_status_t pools_check_cycles(cfg_ctx_t *c)
{
    apr_array_header_t *all = c->cfg->backends;
    apr_array_header_t *stack = apr_array_make(c->tmp, 8, sizeof(const llmgw_backend_t *));
    char *state = apr_pcalloc(c->tmp, (apr_size_t)all->nelts);
    apr_status_t rv;
    int i;

    for (i = 0; i < all->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(all, i, const llmgw_backend_t *);
        if (b->type == LLMGW_BACKEND_POOL && !state[i] &&
            (rv = pool_visit(c, b, state, stack)) != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Every credential the file holds, so that provider text can be redacted (DESIGN.md 10). */
static void secrets_collect(cfg_ctx_t *c)
{
    int i;

    c->cfg->secrets = llmgw_secrets_make(c->p);
    for (i = 0; i < c->cfg->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(c->cfg->backends, i, const llmgw_backend_t *);
        llmgw_secrets_add(c->cfg->secrets, b->api_key);
    }
}

/*
 * A pool's name and aliases are model names clients send (DESIGN.md 5):
 * each must lead to one pool only.
 */
static apr_status_t aliases_check(cfg_ctx_t *c)
{
    apr_hash_t *taken = apr_hash_make(c->tmp);
    int i;

    for (i = 0; i < c->cfg->backends->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(c->cfg->backends, i, const llmgw_backend_t *);
        if (b->type == LLMGW_BACKEND_POOL)
            apr_hash_set(taken, b->name, APR_HASH_KEY_STRING, b);
    }
    for (i = 0; i < c->aliases->nelts; i++) {
        const cfg_alias_t *a = &APR_ARRAY_IDX(c->aliases, i, cfg_alias_t);
        const llmgw_backend_t *other = apr_hash_get(taken, a->name, APR_HASH_KEY_STRING);
        if (other) {
            const char *what = llmgw_cfg_shown(c, a->node, a->name);
            c->owner = apr_psprintf(c->tmp, "pool \"%s\"", a->pool->name);
            if (other != a->pool)
                return llmgw_cfg_fail(c, a->node->mark, "alias %s is already a name of pool \"%s\"",
                                      what, other->name);
            if (strcmp(other->name, a->name) == 0)
                return llmgw_cfg_fail(c, a->node->mark, "alias %s is the pool's own name", what);
            return llmgw_cfg_fail(c, a->node->mark, "alias %s is listed twice", what);
        }
        apr_hash_set(taken, a->name, APR_HASH_KEY_STRING, a->pool);
    }
    return APR_SUCCESS;
}

/* The value under a required top-level key: a sequence, non-empty if @p nonempty. */
/* Anthropic has no embeddings API (providers.md 5.8); every other type has. */
static int type_serves(llmgw_backend_type_e type, llmgw_api_e api)
{
    return api != LLMGW_API_EMBEDDINGS || type != LLMGW_BACKEND_ANTHROPIC;
}

/* Some backend reachable from @p b can serve @p api (pools: any member). */
static int backend_serves_api(const llmgw_backend_t *b, llmgw_api_e api, int depth)
{
    int i;

    if (b->type != LLMGW_BACKEND_POOL)
        return type_serves(b->type, api);
    for (i = 0; depth < 32 && b->members && i < b->members->nelts; i++) {
        const llmgw_pool_member_t *m = &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
        if (m->backend && backend_serves_api(m->backend, api, depth + 1))
            return 1;
    }
    return 0;
}

/* Refused at configtest time rather than at the first request. */
static apr_status_t routes_check_apis(cfg_ctx_t *c)
{
    int i;

    for (i = 0; i < c->cfg->routes->nelts; i++) {
        const llmgw_route_t *r = APR_ARRAY_IDX(c->cfg->routes, i, const llmgw_route_t *);
        if (r->api == LLMGW_API_MODELS || backend_serves_api(r->backend, r->api, 0))
            continue;
        return llmgw_cfg_fail(
            c, r->mark,
            "route \"%s\": backend \"%s\" cannot serve embeddings (the %s API has "
            "none)",
            r->name, r->backend->name,
            r->backend->type == LLMGW_BACKEND_POOL ? "pool's members' providers"
                                                   : llmgw_backend_type_name(r->backend->type));
    }
    return APR_SUCCESS;
}

/* Both lists must be present but may be empty: "backends: []" with "routes: []" is a gateway
 * that serves nothing yet, which is what the Debian package installs before it is configured. */
static apr_status_t top_list(cfg_ctx_t *c, const cfg_node_t *root, const char *key,
                             const cfg_node_t **out)
{
    const cfg_node_t *v = llmgw_cfg_map_get(root, key);

    *out = v;
    if (!v || llmgw_cfg_is_null(v))
        return llmgw_cfg_fail(c, v ? v->mark : root->mark, "missing required key \"%s\"", key);
    if (v->kind != NODE_SEQ)
        return llmgw_cfg_fail(c, v->mark, "%s must be a sequence, not %s", key,
                              llmgw_cfg_kind_name(v));
    return APR_SUCCESS;
}

static apr_status_t config_build(cfg_ctx_t *c, const cfg_node_t *root)
{
    const cfg_node_t *backends, *routes;
    apr_status_t rv;
    int i;

    if (root->kind != NODE_MAP)
        return llmgw_cfg_fail(c, root->mark,
                              "the top level must be a mapping with backends and "
                              "routes, not %s",
                              llmgw_cfg_is_null(root) ? "an empty document"
                                                      : llmgw_cfg_kind_name(root));
    for (i = 0; i < root->items->nelts; i += 2) {
        const cfg_node_t *k = NODE_AT(root, i);
        if (strcmp(k->text, "backends") != 0 && strcmp(k->text, "routes") != 0 &&
            strcmp(k->text, "access") != 0 && strcmp(k->text, "pricing") != 0 &&
            strcmp(k->text, "ledger") != 0)
            return llmgw_cfg_fail(c, k->mark,
                                  "unknown top-level key \"%s\" (expected backends, routes, "
                                  "access, pricing or ledger)",
                                  k->text);
    }
    if ((rv = top_list(c, root, "backends", &backends)) != APR_SUCCESS ||
        (rv = top_list(c, root, "routes", &routes)) != APR_SUCCESS)
        return rv;
    for (i = 0; i < backends->items->nelts; i++) {
        if ((rv = backend_read(c, NODE_AT(backends, i), i)) != APR_SUCCESS)
            return rv;
    }
    for (i = 0; i < routes->items->nelts; i++) {
        if ((rv = route_read(c, NODE_AT(routes, i), i)) != APR_SUCCESS)
            return rv;
    }
    if ((rv = refs_resolve(c)) != APR_SUCCESS || (rv = pools_check_cycles(c)) != APR_SUCCESS ||
        (rv = aliases_check(c)) != APR_SUCCESS || (rv = contexts_check(c)) != APR_SUCCESS)
        return rv;
    secrets_collect(c);
    if ((rv = routes_check_apis(c)) != APR_SUCCESS ||
        (rv = llmgw_cfg_access_read(c, root)) != APR_SUCCESS)
        return rv;
    return llmgw_cfg_access_check(c);
}

apr_status_t llmgw_config_parse(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                                const char *name, const char *text, apr_size_t len,
                                const char **errmsg)
{
    return llmgw_config_parse_opts(out, p, ptemp, name, text, len, NULL, errmsg);
}

apr_status_t llmgw_config_parse_opts(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                                     const char *name, const char *text, apr_size_t len,
                                     const llmgw_config_opts_t *opts, const char **errmsg)
{
    static const llmgw_config_opts_t builtin = {NULL};
    cfg_ctx_t ctx = {0};
    cfg_node_t *root = NULL;
    llmgw_config_t *cfg = apr_pcalloc(p, sizeof(*cfg));
    apr_status_t rv;

    *out = NULL;
    cfg->path = apr_pstrdup(p, name);
    cfg->backends = apr_array_make(p, 8, sizeof(llmgw_backend_t *));
    cfg->routes = apr_array_make(p, 8, sizeof(llmgw_route_t *));
    cfg->backend_by_name = apr_hash_make(p);
    cfg->route_by_path = apr_hash_make(p);
    ctx.p = p;
    ctx.file = name;
    ctx.text = text ? text : "";
    ctx.len = text ? len : 0;
    ctx.cfg = cfg;
    ctx.opts = opts ? opts : &builtin;
    if ((rv = apr_pool_create(&ctx.tmp, ptemp)) != APR_SUCCESS)
        return rv;
    ctx.refs = apr_array_make(ctx.tmp, 16, sizeof(cfg_ref_t));
    ctx.route_names = apr_hash_make(ctx.tmp);
    ctx.aliases = apr_array_make(ctx.tmp, 4, sizeof(cfg_alias_t));
    rv = llmgw_cfg_tree_parse(&ctx, &root);
    if (rv == APR_SUCCESS)
        rv = config_build(&ctx, root);
    /* The scratch pool holds expanded secrets: give it back now, not with ptemp. */
    apr_pool_destroy(ctx.tmp);
    if (rv == APR_SUCCESS)
        *out = cfg;
    if (errmsg)
        *errmsg = ctx.errmsg          ? ctx.errmsg
                  : rv == APR_SUCCESS ? NULL
                                      : apr_psprintf(p, "%s: out of memory", name);
    return rv;
}

static apr_status_t file_read(apr_pool_t *p, const char *path, char **buf, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);

    if (rv != APR_SUCCESS)
        return rv;
    if ((rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f)) != APR_SUCCESS)
        goto leave;
    *len = (apr_size_t)fi.size;
    *buf = apr_palloc(p, *len + 1);
    (*buf)[*len] = '\0';
    if (*len > 0)
        rv = apr_file_read_full(f, *buf, *len, NULL);
leave:
    apr_file_close(f);
    return rv;
}

apr_status_t llmgw_config_load(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                               const char *path, const char **errmsg)
{
    char *buf, err[120];
    apr_size_t len;
    apr_status_t rv = file_read(ptemp, path, &buf, &len);

    *out = NULL;
    if (rv == APR_SUCCESS)
        return llmgw_config_parse(out, p, ptemp, path, buf, len, errmsg);
    if (errmsg)
        *errmsg = apr_psprintf(p, "%s: cannot read the file: %s", path,
                               apr_strerror(rv, err, sizeof(err)));
    return rv;
}

/* ---- durations, names and getters ------------------------------------- */

apr_status_t llmgw_duration_parse(const char *text, apr_interval_time_t *out)
{
    apr_int64_t n, unit;
    const char *s;

    if (!digits_parse(text, APR_INT64_MAX, &n, &s))
        return APR_EINVAL;
    /* A bare number has no unit: "connectTimeout: 5" could mean seconds or
     * milliseconds, so only 0, which means the same in every unit, may go
     * without one. */
    if (!*s && n != 0)
        return APR_EINVAL;
    unit = !strcmp(s, "") || !strcmp(s, "s") ? APR_USEC_PER_SEC
           : !strcmp(s, "ms")                ? 1000
           : !strcmp(s, "m")                 ? 60 * APR_USEC_PER_SEC
           : !strcmp(s, "h")                 ? 3600 * APR_USEC_PER_SEC
                                             : 0;
    if (!unit || n > APR_INT64_MAX / unit)
        return APR_EINVAL;
    *out = n * unit;
    return APR_SUCCESS;
}

apr_status_t llmgw_size_parse(const char *text, apr_off_t *out)
{
    apr_int64_t n, unit;
    const char *s;

    if (!digits_parse(text, APR_INT64_MAX, &n, &s))
        return APR_EINVAL;
    unit = !*s                                  ? 1
           : !strcmp(s, "K") || !strcmp(s, "k") ? 1024
           : !strcmp(s, "M") || !strcmp(s, "m") ? 1024 * 1024
           : !strcmp(s, "G") || !strcmp(s, "g") ? (apr_int64_t)1024 * 1024 * 1024
                                                : 0;
    if (!unit || n > APR_INT64_MAX / unit)
        return APR_EINVAL;
    *out = (apr_off_t)(n * unit);
    return APR_SUCCESS;
}

const char *llmgw_backend_type_name(llmgw_backend_type_e type)
{
    if ((unsigned)type >= LLMGW_BACKEND_TYPE_COUNT)
        return "unknown";
    return backend_type_names[type];
}

const llmgw_backend_t *llmgw_config_backend(const llmgw_config_t *cfg, const char *name)
{
    return name ? apr_hash_get(cfg->backend_by_name, name, APR_HASH_KEY_STRING) : NULL;
}

const llmgw_route_t *llmgw_config_route(const llmgw_config_t *cfg, const char *path)
{
    return path ? apr_hash_get(cfg->route_by_path, path, APR_HASH_KEY_STRING) : NULL;
}

static apr_interval_time_t or_default(apr_interval_time_t v, apr_interval_time_t dflt)
{
    return v == LLMGW_UNSET ? dflt : v;
}

apr_interval_time_t llmgw_backend_timeout(const llmgw_backend_t *b)
{
    return or_default(b->timeout, LLMGW_DEFAULT_TIMEOUT);
}

apr_interval_time_t llmgw_backend_connect_timeout(const llmgw_backend_t *b)
{
    return or_default(b->connect_timeout, LLMGW_DEFAULT_CONNECT_TIMEOUT);
}

apr_interval_time_t llmgw_backend_first_byte_timeout(const llmgw_backend_t *b)
{
    return or_default(b->first_byte_timeout, LLMGW_DEFAULT_FIRST_BYTE_TIMEOUT);
}

apr_interval_time_t llmgw_backend_idle_timeout(const llmgw_backend_t *b)
{
    return or_default(b->idle_timeout, LLMGW_DEFAULT_IDLE_TIMEOUT);
}

apr_interval_time_t llmgw_backend_first_token_timeout(const llmgw_backend_t *b)
{
    return or_default(b->first_token_timeout, llmgw_backend_first_byte_timeout(b));
}

int llmgw_backend_max_retries(const llmgw_backend_t *b)
{
    return b->max_retries == LLMGW_UNSET ? LLMGW_DEFAULT_MAX_RETRIES : b->max_retries;
}

int llmgw_backend_accepts(const llmgw_backend_t *b, const char *model, int in_pool)
{
    int listless = !b->models || b->models->nelts == 0;

    if (!model || b->type == LLMGW_BACKEND_POOL)
        return 0;
    if (llmgw_backend_serves(b, model))
        return 1;
    return listless && (!in_pool || !b->default_model);
}

int llmgw_pool_named(const llmgw_backend_t *pool, const char *name)
{
    int i;

    if (!name || pool->type != LLMGW_BACKEND_POOL)
        return 0;
    if (strcmp(pool->name, name) == 0)
        return 1;
    for (i = 0; pool->aliases && i < pool->aliases->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(pool->aliases, i, const char *), name) == 0)
            return 1;
    }
    return 0;
}

apr_off_t llmgw_image_fetch_max_bytes(const llmgw_image_fetch_t *f)
{
    return f->max_bytes == LLMGW_UNSET ? LLMGW_DEFAULT_IMAGE_MAX_BYTES : f->max_bytes;
}

apr_interval_time_t llmgw_image_fetch_timeout(const llmgw_image_fetch_t *f)
{
    return or_default(f->timeout, LLMGW_DEFAULT_IMAGE_TIMEOUT);
}

int llmgw_backend_serves(const llmgw_backend_t *b, const char *model)
{
    int i;

    if (!model)
        return 0;
    if (b->default_model && strcmp(b->default_model, model) == 0)
        return 1;
    for (i = 0; b->models && i < b->models->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(b->models, i, const char *), model) == 0)
            return 1;
    }
    return 0;
}

/* ---- for the other loader files (llmgw_config_private.h) ------------------ */

apr_status_t llmgw_cfg_keys_apply(cfg_ctx_t *c, const cfg_node_t *map, const cfg_key_t *table,
                                  void *obj)
{
    return keys_apply(c, map, table, obj);
}

int llmgw_cfg_name_ok(const char *s)
{
    return name_chars_ok(s);
}
