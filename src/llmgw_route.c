/*
 * Routing: which route a request path names, whether its method is allowed,
 * and the models list of a models route. Everything is read from the shared
 * configuration; results come from the pool passed in.
 */
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "llmgw_route.h"

/* Deeper than this is a cycle the loader should have refused; stop there. */
#define MAX_POOL_DEPTH 16

int llmgw_route_method_bit(const char *method)
{
    if (!method)
        return 0;
    if (strcmp(method, "GET") == 0)
        return LLMGW_METHOD_GET;
    if (strcmp(method, "HEAD") == 0)
        return LLMGW_METHOD_HEAD;
    if (strcmp(method, "POST") == 0)
        return LLMGW_METHOD_POST;
    if (strcmp(method, "OPTIONS") == 0)
        return LLMGW_METHOD_OPTIONS;
    if (strcmp(method, "DELETE") == 0)
        return LLMGW_METHOD_DELETE;
    return 0;
}

const char *llmgw_route_allow(apr_pool_t *p, int methods)
{
    const char *s = "";

    if (methods & LLMGW_METHOD_GET)
        s = "GET, HEAD, ";
    else if (methods & LLMGW_METHOD_HEAD)
        s = "HEAD, ";
    if (methods & LLMGW_METHOD_POST)
        s = apr_pstrcat(p, s, "POST, ", NULL);
    if (methods & LLMGW_METHOD_DELETE)
        s = apr_pstrcat(p, s, "DELETE, ", NULL);
    return apr_pstrcat(p, s, "OPTIONS", NULL);
}

static int method_allowed(const llmgw_route_t *route, int bit)
{
    if (bit == LLMGW_METHOD_OPTIONS)
        return 1;
    if (bit == LLMGW_METHOD_HEAD)
        return (route->methods & (LLMGW_METHOD_GET | LLMGW_METHOD_HEAD)) != 0;
    return (route->methods & bit) != 0;
}

/* Routes that serve sub-paths of their own path. */
#define SUB_APIS (LLMGW_API_MODELS | LLMGW_API_RESPONSES | LLMGW_API_MESSAGES)

/*
 * "<models route>/<id>": the route, and everything after "<path>/" as the
 * id, slashes included ("meta-llama/Llama-3.3-70B-Instruct-Turbo"); the
 * same for the sub-paths of a responses or messages route ("resp_1",
 * "resp_1/input_items", "count_tokens"). With several such routes nested in
 * one another the longest path wins.
 */
static const llmgw_route_t *models_item_route(const llmgw_config_t *cfg, const char *uri,
                                              const char **id)
{
    const llmgw_route_t *best = NULL;
    apr_size_t best_len = 0;
    int i;

    for (i = 0; i < cfg->routes->nelts; i++) {
        const llmgw_route_t *r = APR_ARRAY_IDX(cfg->routes, i, const llmgw_route_t *);
        apr_size_t n = strlen(r->path);
        if (!(r->api & SUB_APIS) || n <= best_len || strncmp(uri, r->path, n) != 0 ||
            uri[n] != '/' || uri[n + 1] == '\0' || uri[n + 1] == '/')
            continue;
        best = r;
        best_len = n;
    }
    if (best)
        *id = uri + best_len + 1;
    return best;
}

/*
 * SDKs send "vendor/model" as "vendor%2Fmodel" (encodeURIComponent). httpd
 * refuses %2F in a path unless AllowEncodedSlashes is set, and with NoDecode
 * (what README recommends) it leaves exactly that escape undecoded.
 */
static const char *decode_slashes(apr_pool_t *p, const char *id)
{
    char *out, *w;
    const char *r;

    if (!strstr(id, "%2F") && !strstr(id, "%2f"))
        return id;
    out = w = apr_pstrdup(p, id);
    for (r = id; *r; r++) {
        if (r[0] == '%' && r[1] == '2' && (r[2] == 'F' || r[2] == 'f')) {
            *w++ = '/';
            r += 2;
        }
        else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return out;
}

/*
 * What a dialect sub-path is (ingress.md 1) and the methods it takes;
 * LLMGW_SUB_NONE for a path the dialect does not have.
 */
static llmgw_route_sub_e dialect_sub(apr_pool_t *p, llmgw_api_e api, const char *rest,
                                     const char **id, int *methods)
{
    const char *slash = strchr(rest, '/');

    if (api == LLMGW_API_MESSAGES) {
        *methods = LLMGW_METHOD_POST;
        return strcmp(rest, "count_tokens") == 0 ? LLMGW_SUB_COUNT_TOKENS : LLMGW_SUB_NONE;
    }
    if (!slash) {
        *id = rest;
        *methods = LLMGW_METHOD_GET | LLMGW_METHOD_DELETE;
        return LLMGW_SUB_RESPONSE;
    }
    *id = apr_pstrmemdup(p, rest, (apr_size_t)(slash - rest));
    if (strcmp(slash + 1, "input_items") == 0) {
        *methods = LLMGW_METHOD_GET;
        return LLMGW_SUB_INPUT_ITEMS;
    }
    if (strcmp(slash + 1, "cancel") == 0) {
        *methods = LLMGW_METHOD_POST;
        return LLMGW_SUB_CANCEL;
    }
    return LLMGW_SUB_NONE;
}

void llmgw_route_match(const llmgw_config_t *cfg, apr_pool_t *p, const char *uri, int method_bit,
                       llmgw_route_match_t *out)
{
    int methods;

    memset(out, 0, sizeof(*out));
    out->route = llmgw_config_route(cfg, uri);
    if (!out->route) {
        const char *rest = NULL;

        out->route = models_item_route(cfg, uri, &rest);
        if (out->route && out->route->api == LLMGW_API_MODELS)
            out->model_id = decode_slashes(p, rest);
        else if (out->route) {
            out->sub = dialect_sub(p, out->route->api, rest, &out->resource_id, &out->sub_methods);
            if (out->sub == LLMGW_SUB_NONE)
                out->route = NULL;
        }
    }
    if (!out->route) {
        out->verdict = LLMGW_ROUTE_NOT_FOUND;
        return;
    }
    methods = out->sub != LLMGW_SUB_NONE ? out->sub_methods : out->route->methods;
    out->allow = llmgw_route_allow(p, methods);
    if (out->sub != LLMGW_SUB_NONE) {
        if (!method_bit || (method_bit != LLMGW_METHOD_OPTIONS && !(methods & method_bit) &&
                            !(method_bit == LLMGW_METHOD_HEAD && (methods & LLMGW_METHOD_GET))))
            out->verdict = LLMGW_ROUTE_NOT_ALLOWED;
        else if (method_bit == LLMGW_METHOD_OPTIONS)
            out->verdict = LLMGW_ROUTE_OPTIONS;
        else
            out->verdict = LLMGW_ROUTE_FOUND;
        return;
    }
    if (!method_bit || !method_allowed(out->route, method_bit))
        out->verdict = LLMGW_ROUTE_NOT_ALLOWED;
    else if (method_bit == LLMGW_METHOD_OPTIONS)
        out->verdict = LLMGW_ROUTE_OPTIONS;
    else
        out->verdict = LLMGW_ROUTE_FOUND;
}

/* ------------------------------------------------------------------ */
/* Models                                                              */

typedef struct {
    apr_pool_t *p;
    json_t *list;
    apr_hash_t *seen;
    json_int_t created;
} models_ctx_t;

/* Pools are virtual models of the gateway itself. */
#define POOL_OWNER "llmgw"

static void add_model(models_ctx_t *c, const llmgw_backend_t *b, const char *id)
{
    const char *owner =
        b->type == LLMGW_BACKEND_POOL ? POOL_OWNER : llmgw_backend_type_name(b->type);

    if (!id || apr_hash_get(c->seen, id, APR_HASH_KEY_STRING))
        return;
    apr_hash_set(c->seen, id, APR_HASH_KEY_STRING, id);
    json_array_append_new(c->list, json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model",
                                             "created", c->created, "owned_by", owner));
}

static void collect_models(models_ctx_t *c, const llmgw_backend_t *b, int depth)
{
    int i;

    if (depth > MAX_POOL_DEPTH)
        return;
    if (b->type == LLMGW_BACKEND_POOL) {
        add_model(c, b, b->name);
        for (i = 0; b->aliases && i < b->aliases->nelts; i++)
            add_model(c, b, APR_ARRAY_IDX(b->aliases, i, const char *));
        for (i = 0; b->members && i < b->members->nelts; i++) {
            const llmgw_pool_member_t *m = &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
            if (m->backend)
                collect_models(c, m->backend, depth + 1);
        }
        return;
    }
    add_model(c, b, b->default_model);
    for (i = 0; b->models && i < b->models->nelts; i++)
        add_model(c, b, APR_ARRAY_IDX(b->models, i, const char *));
}

json_t *llmgw_route_models_json(apr_pool_t *p, const llmgw_route_t *route, const char *id,
                                apr_int64_t created)
{
    models_ctx_t c = {p, llmgw_json_pool_own(p, json_array()), apr_hash_make(p),
                      (json_int_t)created};
    json_t *m;
    size_t i;

    if (route->backend)
        collect_models(&c, route->backend, 0);
    if (!id)
        return llmgw_json_pool_own(p, json_pack("{s:s,s:O}", "object", "list", "data", c.list));
    json_array_foreach (c.list, i, m) {
        if (strcmp(llmgw_json_str(m, "id"), id) == 0)
            return m;
    }
    return NULL;
}
