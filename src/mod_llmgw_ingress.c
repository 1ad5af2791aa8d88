/*
 * The endpoints of the client dialects besides their main POST (ingress.md
 * 1): POST /v1/messages/count_tokens, the stored-response sub-paths of a
 * responses route (GET / DELETE /v1/responses/{id}, .../input_items,
 * .../cancel), and Anthropic's shape of GET /v1/models.
 *
 * These are single upstream exchanges outside the dispatcher on purpose:
 * count_tokens outcomes must not feed the circuit breaker or the usage
 * accounting (ingress.md 7.7), and a stored response belongs to the backend
 * that made it.
 *
 * Threading and memory: the request's thread and r->pool only.
 */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "mod_llmgw_private.h"
#include <util_script.h> /* ap_args_to_table */
#include "llmgw_ingress.h"
#include "llmgw_ingress_messages.h"
#include "llmgw_json.h"
#include "llmgw_responses.h"
#include "llmgw_responses_store.h"
#include "llmgw_redact.h"
#include "llmgw_google_auth.h"
#include "llmgw_responses_db.h"
#include <apr_thread_mutex.h>

static int send_body(request_rec *r, int status, const char *body, apr_size_t len)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

static int send_err(request_rec *r, const llmgw_config_t *gw, const llmgw_error_t *e)
{
    apr_size_t len;
    const char *body;

    e = llmgw_redact_error(r->pool, e, gw ? gw->secrets : NULL, NULL);
    body = llmgw_glue_error_json(r, e, &len);
    if (!apr_table_get(r->subprocess_env, "LLMGW_ERROR"))
        apr_table_setn(r->subprocess_env, "LLMGW_ERROR",
                       e->code ? e->code : (e->type ? e->type : "error"));
    return send_body(r, e->status, body, len);
}

/* One exchange with @p b, bounded by its timeouts; 0 when it could not happen (*err set). */
static int exchange(request_rec *r, llmgw_upstream_t *up, const llmgw_backend_t *b,
                    const llmgw_http_request_t *req, llmgw_upstream_result_t *res,
                    llmgw_error_t **err)
{
    llmgw_upstream_opts_t opts;

    memset(&opts, 0, sizeof(opts));
    opts.connect_timeout = llmgw_backend_connect_timeout(b);
    opts.first_byte_timeout = llmgw_backend_first_byte_timeout(b);
    opts.idle_timeout = llmgw_backend_idle_timeout(b);
    opts.deadline = apr_time_now() + llmgw_backend_timeout(b);
    opts.max_body = (apr_size_t)llmgw_max_upstream_body(r);
    if (llmgw_upstream_perform(up, r->pool, req, &opts, res) != APR_SUCCESS ||
        res->fail != LLMGW_FAIL_NONE) {
        *err = llmgw_error_make(r->pool, res->fail == LLMGW_FAIL_TIMEOUT ? 504 : 502, NULL,
                                "upstream_unavailable", NULL, "Backend \"%s\" did not answer (%s).",
                                b->name, llmgw_fail_name(r->pool, res->fail, 0));
        return 0;
    }
    apr_table_setn(r->err_headers_out, "x-llmgw-backend", b->name);
    apr_table_setn(r->subprocess_env, "LLMGW_BACKEND", b->name);
    return 1;
}

/* ---------------------------------------------------------------------- */
/* count_tokens (ingress.md 7.7)                                           */

/* Provider backends reachable from @p b, depth first in member order. */
static void leaves(const llmgw_backend_t *b, apr_array_header_t *out, int depth)
{
    int i;

    if (b->type != LLMGW_BACKEND_POOL) {
        APR_ARRAY_PUSH(out, const llmgw_backend_t *) = b;
        return;
    }
    for (i = 0; depth < 16 && b->members && i < b->members->nelts; i++) {
        const llmgw_pool_member_t *m = &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
        if (m->backend)
            leaves(m->backend, out, depth + 1);
    }
}

/* Does @p b serve @p model (its models: list or defaultModel; no list: any)? */
static int serves(const llmgw_backend_t *b, const char *model)
{
    int i;

    if (!model || !b->models || b->models->nelts == 0)
        return 1;
    if (b->default_model && strcmp(b->default_model, model) == 0)
        return 1;
    for (i = 0; i < b->models->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(b->models, i, const char *), model) == 0)
            return 1;
    }
    return 0;
}

int llmgw_ingress_glue_count(request_rec *r, const llmgw_config_t *gw, const llmgw_route_t *route,
                             const json_t *body, const char *raw, apr_size_t raw_len,
                             llmgw_upstream_t *up, llmgw_google_auth_t *ga)
{
    apr_array_header_t *members = apr_array_make(r->pool, 4, sizeof(const llmgw_backend_t *));
    const char *model = llmgw_json_str(body, "model");
    llmgw_error_t *err = NULL, *first = NULL;
    int i;

    leaves(route->backend, members, 0);
    /* The model named by the pool (or none) is every member's own default. */
    if (model && route->backend->type == LLMGW_BACKEND_POOL &&
        strcmp(model, route->backend->name) == 0)
        model = NULL;
    for (i = 0; i < members->nelts; i++) {
        const llmgw_backend_t *b = APR_ARRAY_IDX(members, i, const llmgw_backend_t *);
        const char *send = model && serves(b, model) ? model : b->default_model;
        const char *token = NULL;
        llmgw_http_request_t req;
        llmgw_upstream_result_t res;
        apr_int64_t tokens;
        const char *out;
        apr_size_t n;
        apr_status_t rv;

        if (model && !serves(b, model))
            continue;
        if (b->type == LLMGW_BACKEND_GOOGLE && b->project_id &&
            llmgw_google_auth_token(ga, up, b, r->pool, &token, &err) != APR_SUCCESS)
            return send_err(r, gw, err);
        memset(&req, 0, sizeof(req));
        rv = llmgw_messages_count_request(r->pool, b, body, raw, raw_len, send ? send : model,
                                          r->headers_in, token, &req, &err);
        if (rv == LLMGW_EUNSUPPORTED) {
            if (!first)
                first = err; /* a later member may count */
            continue;
        }
        if (rv != APR_SUCCESS)
            return send_err(r, gw, err);
        if (!exchange(r, up, b, &req, &res, &err))
            return send_err(r, gw, err);
        if (res.status < 200 || res.status >= 300)
            return send_err(
                r, gw,
                llmgw_ingress_messages.native_error(r->pool, res.status, res.body, res.body_len));
        if (b->type == LLMGW_BACKEND_ANTHROPIC)
            return send_body(r, 200, res.body, res.body_len);
        if (llmgw_messages_count_parse(r->pool, b->type, res.body, res.body_len, &tokens, &err) !=
            APR_SUCCESS)
            return send_err(r, gw, err);
        out = llmgw_messages_count_body(r->pool, tokens, &n);
        return send_body(r, 200, out, n);
    }
    if (!first)
        first =
            llmgw_error_make(r->pool, 400, "invalid_request_error", NULL, "model",
                             "No backend of this route serves model '%s'.", model ? model : "-");
    return send_err(r, gw, first);
}

/* ---------------------------------------------------------------------- */
/* Stored responses (ingress.md 3.7, 5.5)                                  */

/* The query value @p name, or NULL. */
static const char *arg(request_rec *r, const char *name)
{
    apr_table_t *args = NULL;

    ap_args_to_table(r, &args);
    return args ? apr_table_get(args, name) : NULL;
}

/*
 * A store operation that did not succeed: an id the store does not have for
 * this key (DECLINED when the route's native backend may have it upstream,
 * else 404), or a store that cannot be reached (503, logged).
 */
static int store_unanswered(request_rec *r, const llmgw_config_t *gw, const llmgw_route_match_t *m,
                            apr_status_t rv, const char *msg)
{
    if (rv == APR_NOTFOUND)
        return llmgw_ingress_is_native(&llmgw_ingress_responses, m->route->backend->type)
                   ? DECLINED
                   : send_err(r, gw, llmgw_responses_error_not_found(r->pool, m->resource_id));
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LLMGW_LOGNO(00363) "response store: %s",
                  msg ? msg : "error");
    return send_err(r, gw,
                    llmgw_error_make(r->pool, 503, NULL, "store_unavailable", NULL,
                                     "The response store cannot be reached."));
}

/*
 * GET / DELETE / input_items from the gateway's store, for the key that
 * created the response only (another key's id is as unknown as a missing
 * one: 404). DECLINED when the store does not have it and the route's
 * native backend may (it stored its own responses upstream).
 */
static int from_store(request_rec *r, const llmgw_config_t *gw, const llmgw_route_match_t *m)
{
    struct llmgw_responses_db_t *db = llmgw_ingress_glue_store(r, gw);
    const char *owner = apr_table_get(r->subprocess_env, "LLMGW_KEY"), *msg = NULL;
    const json_t *body = NULL;
    json_t *record = NULL, *page = NULL;
    llmgw_error_t *err = NULL;
    apr_status_t rv;

    if (!db)
        return DECLINED;
    if (r->method_number == M_DELETE) {
        rv = llmgw_responses_db_delete(db, r->pool, m->resource_id, owner, &msg);
        if (rv != APR_SUCCESS)
            return store_unanswered(r, gw, m, rv, msg);
        body = llmgw_responses_deleted(r->pool, m->resource_id);
    }
    else {
        rv = llmgw_responses_db_get(db, r->pool, m->resource_id, owner,
                                    apr_time_sec(r->request_time), &record, &msg);
        if (rv != APR_SUCCESS)
            return store_unanswered(r, gw, m, rv, msg);
        if (m->sub == LLMGW_SUB_INPUT_ITEMS) {
            if (llmgw_responses_input_items(r->pool, record, arg(r, "after"), arg(r, "limit"),
                                            arg(r, "order"), &page, &err) != APR_SUCCESS)
                return send_err(r, gw, err);
            body = page;
        }
        else if (llmgw_responses_retrieve(r->pool, record, arg(r, "stream"),
                                          arg(r, "starting_after"), &body, &err) != APR_SUCCESS) {
            return send_err(r, gw, err);
        }
    }
    {
        apr_size_t len;
        const char *text = llmgw_json_dump(r->pool, body, &len);
        return send_body(r, 200, text, len);
    }
}

int llmgw_ingress_glue_sub(request_rec *r, const llmgw_config_t *gw, const llmgw_route_t *route,
                           const llmgw_route_match_t *m, llmgw_upstream_t *up)
{
    const llmgw_backend_t *b = route->backend;
    int rv;
    llmgw_http_request_t req;
    llmgw_upstream_result_t res;
    llmgw_error_t *err = NULL;

    if (m->sub == LLMGW_SUB_CANCEL)
        return send_err(r, gw, llmgw_responses_error_cancel(r->pool));
    if ((rv = from_store(r, gw, m)) != DECLINED)
        return rv;
    /* Without a gateway store, only a route with one native backend has the
     * response: the one that made and stored it (ingress.md checklist 20). */
    if (!llmgw_ingress_is_native(&llmgw_ingress_responses, b->type))
        return send_err(r, gw,
                        llmgw_ingress_glue_store(r, gw)
                            ? llmgw_responses_error_not_found(r->pool, m->resource_id)
                            : llmgw_responses_error_store_disabled_endpoint(r->pool));
    memset(&req, 0, sizeof(req));
    if (llmgw_responses_native_resource(r->pool, b, r->method_number == M_DELETE ? "DELETE" : "GET",
                                        m->resource_id,
                                        m->sub == LLMGW_SUB_INPUT_ITEMS ? "input_items" : NULL,
                                        r->args, &req, &err) != APR_SUCCESS)
        return send_err(r, gw, err);
    if (!exchange(r, up, b, &req, &res, &err))
        return send_err(r, gw, err);
    if (res.status < 200 || res.status >= 300)
        return send_err(
            r, gw,
            llmgw_ingress_responses.native_error(r->pool, res.status, res.body, res.body_len));
    return send_body(r, res.status, res.body, res.body_len);
}

/* ---------------------------------------------------------------------- */
/* Models                                                                  */

const char *llmgw_ingress_glue_models(request_rec *r, const json_t *openai_list,
                                      apr_int64_t created, apr_size_t *len)
{
    apr_table_t *args = NULL;
    const char *limit, *after, *before;
    json_t *page;

    if (!apr_table_get(r->headers_in, "anthropic-version"))
        return NULL;
    ap_args_to_table(r, &args);
    limit = args ? apr_table_get(args, "limit") : NULL;
    after = args ? apr_table_get(args, "after_id") : NULL;
    before = args ? apr_table_get(args, "before_id") : NULL;
    page = llmgw_messages_models_json(r->pool, llmgw_messages_model_ids(r->pool, openai_list),
                                      created, limit ? atoi(limit) : 0, after, before);
    return llmgw_json_dump(r->pool, page, len);
}

/* ---------------------------------------------------------------------- */
/* The response store of a gateway: one connection per child               */

static apr_pool_t *child_pool;
static apr_thread_mutex_t *child_mutex;
static apr_hash_t *child_stores; /* const llmgw_ledger_cfg_t * -> llmgw_responses_db_t *, or
                                    &store_failed once opening it failed */
static char store_failed;

void llmgw_ingress_glue_child_init(apr_pool_t *pchild, server_rec *s)
{
    child_pool = pchild;
    child_stores = apr_hash_make(pchild);
    if (apr_thread_mutex_create(&child_mutex, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     LLMGW_LOGNO(00360) "cannot create the response store mutex of this child");
        child_mutex = NULL;
    }
}

llmgw_responses_db_t *llmgw_ingress_glue_store(request_rec *r, const llmgw_config_t *gw)
{
    llmgw_responses_db_t *db = NULL;
    void *v;

    if (!gw->ledger || !child_mutex)
        return NULL;
    apr_thread_mutex_lock(child_mutex);
    v = apr_hash_get(child_stores, &gw->ledger, sizeof(gw->ledger));
    if (!v) {
        const char *msg = NULL;
        apr_status_t rv = llmgw_responses_db_open(&db, child_pool, gw->ledger, &msg);
        if (rv != APR_SUCCESS) {
            /* Logged once per child: the gateway then answers as one without a store. */
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                          LLMGW_LOGNO(00361) "response store (ledger %s): %s; responses are "
                                             "not stored by this process",
                          gw->ledger->driver, msg ? msg : "error");
            db = NULL;
        }
        v = db ? (void *)db : (void *)&store_failed;
        apr_hash_set(child_stores, apr_pmemdup(child_pool, &gw->ledger, sizeof(gw->ledger)),
                     sizeof(gw->ledger), v);
    }
    apr_thread_mutex_unlock(child_mutex);
    return v == &store_failed ? NULL : v;
}
