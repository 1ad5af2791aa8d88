/**
 * @file llmgw_route.h
 * @brief (path, method) -> route, and the models list a models route answers.
 *
 * Pure functions over the read-only configuration; the httpd glue turns the
 * verdict into a response (404 unknown_url, 405 with Allow, 204 with Allow
 * for OPTIONS) and sends the models JSON built here.
 *
 * A path matches a route exactly. A responses route also serves "/{id}",
 * "/{id}/input_items" and "/{id}/cancel" below its path, a messages route
 * "/count_tokens" (ingress.md 1), each with its own methods (DELETE only
 * there). A path "<models route>/<id>" also matches
 * a models route, with everything after "<path>/" as the model id, slashes
 * included (the glue passes r->uri, already URL-decoded by httpd; only an
 * encoded slash "%2F", which httpd leaves alone under `AllowEncodedSlashes
 * NoDecode`, is decoded in the id).
 */
#ifndef LLMGW_ROUTE_H
#define LLMGW_ROUTE_H

#include <jansson.h>
#include "llmgw_config.h"

/** What to do with a request. */
typedef enum {
    LLMGW_ROUTE_NOT_FOUND = 0, /**< no route: 404 unknown_url */
    LLMGW_ROUTE_NOT_ALLOWED,   /**< route found, method not allowed: 405 + allow */
    LLMGW_ROUTE_OPTIONS,       /**< OPTIONS on a route: 204 + allow */
    LLMGW_ROUTE_FOUND          /**< serve it */
} llmgw_route_verdict_e;

/** A dialect route's sub-path (ingress.md 1). */
typedef enum {
    LLMGW_SUB_NONE = 0,    /**< the route's own path */
    LLMGW_SUB_RESPONSE,    /**< responses: "/{id}" (GET, DELETE) */
    LLMGW_SUB_INPUT_ITEMS, /**< responses: "/{id}/input_items" (GET) */
    LLMGW_SUB_CANCEL,      /**< responses: "/{id}/cancel" (POST) */
    LLMGW_SUB_COUNT_TOKENS /**< messages: "/count_tokens" (POST) */
} llmgw_route_sub_e;

typedef struct {
    llmgw_route_verdict_e verdict;
    const llmgw_route_t *route; /**< set unless NOT_FOUND */
    const char *model_id;       /**< "/models/{id}": the id; else NULL */
    llmgw_route_sub_e sub;      /**< a responses or messages route's sub-path */
    const char *resource_id;    /**< the {id} of a responses sub-path, else NULL */
    int sub_methods;            /**< LLMGW_METHOD_* bits the sub-path takes */
    const char *allow;          /**< the Allow header value, set unless NOT_FOUND */
} llmgw_route_match_t;

/**
 * The LLMGW_METHOD_* bit of a method name as httpd spells it (case
 * sensitive: "GET", "HEAD", "POST", "OPTIONS"); 0 for any other method.
 */
int llmgw_route_method_bit(const char *method);

/**
 * The Allow header value for a route's @p methods: "GET, HEAD, " when GET
 * (or "HEAD, " for HEAD alone), then "POST, ", always ending in "OPTIONS".
 */
const char *llmgw_route_allow(apr_pool_t *p, int methods);

/**
 * Match @p uri and @p method_bit (llmgw_route_method_bit; 0 = a method the
 * gateway never allows) against @p cfg. OPTIONS is allowed on every route,
 * HEAD wherever GET or HEAD is. Strings come from @p p.
 */
void llmgw_route_match(const llmgw_config_t *cfg, apr_pool_t *p, const char *uri, int method_bit,
                       llmgw_route_match_t *out);

/**
 * The models a route's backend serves, OpenAI style: each pool reachable
 * from it adds its name and aliases (virtual models, owned_by "llmgw"),
 * each provider backend reachable through nested pools (depth first, in
 * member order) adds its defaultModel and then its models:, each id once, as
 * {"id", "object": "model", "created", "owned_by": backend type}.
 * With @p id NULL: {"object": "list", "data": [...]}; else the one model
 * with that id, or NULL when there is none. The result is owned by @p p.
 */
json_t *llmgw_route_models_json(apr_pool_t *p, const llmgw_route_t *route, const char *id,
                                apr_int64_t created);

#endif /* LLMGW_ROUTE_H */
