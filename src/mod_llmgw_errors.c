/*
 * httpd's own refusals inside gateway locations, answered in JSON.
 *
 * Some requests are refused by httpd itself, before or instead of our
 * handler: a malformed chunked body or one over LimitRequestBody (the HTTP
 * input filter, while the handler reads the body), 401 and 403 from the
 * authn/authz modules, a 405 from the status handler, and any status a
 * handler returns to httpd. httpd answers those with its HTML error page;
 * the clients of a gateway parse JSON (providers.md 2.5).
 *
 * Every such answer is made by ap_send_error_response, which runs the
 * insert_error_filter hook once it has reset the output filters. For a
 * request of a gateway location (LLMGateway on, SetHandler llmgw or
 * llmgw-status) that hook adds LLMGW_JSON_ERROR, a filter that sets the
 * JSON content type and replaces the HTML it is given with OpenAI's error
 * shape for r->status. Headers httpd set for the status (Allow on a 405,
 * WWW-Authenticate on a 401) are kept. Requests httpd refuses before it
 * knows their location (a malformed request line or header) are not the
 * gateway's, and keep httpd's page. An ErrorDocument configured for the
 * status still wins: a URL is served by ap_die's redirect, a text as is.
 *
 * Threading: the filter's state lives in f->ctx, from r->pool.
 */
#include <string.h>
#include <apr_strings.h>
#include <util_filter.h>
#include <mod_core.h> /* ap_response_code_string */
#include "mod_llmgw_private.h"
#include "llmgw_error.h"

#define JSON_ERROR_FILTER "LLMGW_JSON_ERROR"

/* Is @p name one of our handlers? */
static int our_handler(const char *name)
{
    return name && (strcmp(name, LLMGW_HANDLER) == 0 || strcmp(name, LLMGW_STATUS_HANDLER) == 0);
}

/*
 * Is @p r served by the gateway? LLMGateway on sets r->handler at
 * translate_name; SetHandler only in the type_checker hook, after authn and
 * authz, so for their refusals the location's SetHandler is read from the
 * core's configuration (kept as an ap_expr: evaluated here, on the error
 * path only).
 */
static int gateway_request(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL, *handler;

    if (our_handler(r->handler) || (d && d->enabled == 1))
        return 1;
    if (!core || !core->expr_handler)
        return 0;
    handler = ap_expr_str_exec(r, core->expr_handler, &err);
    return !err && our_handler(handler);
}

/* The sentence and code of httpd's refusal @p status, for the client. */
static llmgw_error_t *refusal(request_rec *r, int status)
{
    apr_pool_t *p = r->pool;
    const char *line = ap_get_status_line(status);
    /* ap_get_status_line answers "500 Internal Server Error" for a status
     * it does not know: then say the status itself. */
    const char *reason = strncmp(line, apr_itoa(p, status), 3) == 0 ? line + 4 : "Error";

    switch (status) {
    case HTTP_BAD_REQUEST:
        return llmgw_error_make(p, status, NULL, "bad_request", NULL,
                                "The request could not be read (malformed HTTP, for example "
                                "the chunked framing of its body).");
    case HTTP_UNAUTHORIZED:
        return llmgw_error_make(p, status, NULL, "authentication_required", NULL,
                                "Authentication is required to use this gateway.");
    case HTTP_FORBIDDEN:
        return llmgw_error_make(p, status, NULL, "forbidden", NULL,
                                "Access to this gateway location is denied.");
    case HTTP_NOT_FOUND:
        return llmgw_error_make(p, status, NULL, "unknown_url", NULL, "Unknown request URL.");
    case HTTP_METHOD_NOT_ALLOWED:
        return llmgw_error_make(p, status, NULL, "method_not_allowed", NULL,
                                "Method %s is not allowed for this URL.", r->method);
    case HTTP_REQUEST_ENTITY_TOO_LARGE:
        return llmgw_error_make(p, status, NULL, "request_too_large", NULL,
                                "The request body exceeds the limit of %" APR_OFF_T_FMT " bytes.",
                                ap_get_limit_req_body(r));
    default:
        return llmgw_error_make(p, status, NULL, NULL, NULL, "%s.", reason);
    }
}

typedef struct {
    int seen; /* the first brigade went by: the headers are ours */
} json_error_ctx;

/*
 * Drop the HTML of httpd's error page and put the JSON error before its
 * EOS. Metadata buckets (flush, EOS) pass through.
 */
static apr_status_t json_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    json_error_ctx *ctx = f->ctx;
    apr_bucket *b, *next;

    if (!ctx) {
        ctx = f->ctx = apr_pcalloc(r->pool, sizeof(*ctx));
        if (r->status < 400) {
            /* A redirect or a header-only answer: nothing of ours to say. */
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        ctx->seen = 1;
        ap_set_content_type(r, "application/json");
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = next) {
        next = APR_BUCKET_NEXT(b);
        if (APR_BUCKET_IS_EOS(b)) {
            apr_size_t len = 0;
            const char *body = llmgw_glue_error_json(r, refusal(r, r->status), &len);

            if (body && !r->header_only) {
                APR_BUCKET_INSERT_BEFORE(
                    b, apr_bucket_pool_create(body, len, r->pool, f->c->bucket_alloc));
                ap_set_content_length(r, (apr_off_t)len);
            }
            ap_remove_output_filter(f);
            break;
        }
        if (!APR_BUCKET_IS_METADATA(b))
            apr_bucket_delete(b);
    }
    /* Nothing left of a piece of the HTML page: hold the headers back until
     * the EOS, when the length of the JSON is known. */
    if (APR_BRIGADE_EMPTY(bb))
        return APR_SUCCESS;
    return ap_pass_brigade(f->next, bb);
}

static void llmgw_insert_error_filter(request_rec *r)
{
    if (r->status >= 400 && gateway_request(r) &&
        !ap_response_code_string(r, ap_index_of_response(r->status)))
        ap_add_output_filter(JSON_ERROR_FILTER, NULL, r, r->connection);
}

void llmgw_errors_register(apr_pool_t *p)
{
    /* CONTENT_SET: before the protocol filters that write the headers, so
     * the content type and length are ours when they go out. */
    ap_register_output_filter(JSON_ERROR_FILTER, json_error_filter, NULL, AP_FTYPE_CONTENT_SET);
    ap_hook_insert_error_filter(llmgw_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
