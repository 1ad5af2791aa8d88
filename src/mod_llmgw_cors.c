/*
 * CORS for browser applications, the httpd side (the values come from
 * src/llmgw_cors.c): the Access-Control-* headers of every answer of a
 * location with LLMGatewayCORS, and the rest of a preflight's answer.
 *
 * The headers go into err_headers_out from the header_parser hook: that runs
 * after the location walk (so this location's LLMGatewayCORS is known) and
 * before authentication, and err_headers_out survives into the gateway's
 * answers, JSON errors and streams. httpd's own refusals (a 401 of an auth
 * module, a 413 of LimitRequestBody) may be made from fresh header tables,
 * so the insert_error_filter hook, which httpd runs for each of them, sets
 * the headers again (as mod_headers does for "Header always"): a page
 * cannot read an error without them.
 */
#include <apr_strings.h>
#include "mod_llmgw_private.h"
#include "llmgw_cors.h"

/* The location's setting; NULL when LLMGatewayCORS is not set (or is off). */
static const llmgw_cors_t *location_cors(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);

    return d && d->cors && !d->cors->off ? d->cors : NULL;
}

static int is_preflight(request_rec *r)
{
    return r->method_number == M_OPTIONS &&
           apr_table_get(r->headers_in, "Access-Control-Request-Method") != NULL;
}

/*
 * Set the answer's Access-Control-* headers in err_headers_out. Idempotent:
 * it runs from header_parser and again when httpd makes an error response
 * of its own, which may start from fresh header tables.
 */
static void set_cors_headers(request_rec *r)
{
    const llmgw_cors_t *cors = location_cors(r);
    const char *allow, *vary;

    if (!cors)
        return;
    /* The answer depends on Origin even when there is none: caches must know. */
    vary = apr_table_get(r->err_headers_out, "Vary");
    if (!vary || !ap_find_token(r->pool, vary, "Origin"))
        apr_table_mergen(r->err_headers_out, "Vary", "Origin");
    allow = llmgw_cors_allow_origin(cors, apr_table_get(r->headers_in, "Origin"));
    if (!allow)
        return; /* no header at all: the browser refuses */
    apr_table_setn(r->err_headers_out, "Access-Control-Allow-Origin", allow);
    if (llmgw_cors_credentials(cors))
        apr_table_setn(r->err_headers_out, "Access-Control-Allow-Credentials", "true");
    if (!is_preflight(r))
        apr_table_setn(r->err_headers_out, "Access-Control-Expose-Headers",
                       LLMGW_CORS_EXPOSE_HEADERS);
}

int llmgw_cors_header_parser(request_rec *r)
{
    set_cors_headers(r);
    return DECLINED;
}

void llmgw_cors_insert_error_filter(request_rec *r)
{
    set_cors_headers(r);
}

void llmgw_cors_preflight(request_rec *r, int methods)
{
    const char *headers;

    /* Only an allowed origin's preflight (header_parser said yes) gets the rest. */
    if (!is_preflight(r) || !location_cors(r) ||
        !apr_table_get(r->err_headers_out, "Access-Control-Allow-Origin"))
        return;
    apr_table_setn(r->err_headers_out, "Access-Control-Allow-Methods",
                   llmgw_cors_allow_methods(r->pool, methods));
    headers = llmgw_cors_allow_headers(
        r->pool, apr_table_get(r->headers_in, "Access-Control-Request-Headers"));
    if (headers)
        apr_table_setn(r->err_headers_out, "Access-Control-Allow-Headers", headers);
    apr_table_setn(r->err_headers_out, "Access-Control-Max-Age",
                   apr_itoa(r->pool, LLMGW_CORS_MAX_AGE));
    apr_table_mergen(r->err_headers_out, "Vary",
                     "Access-Control-Request-Method, Access-Control-Request-Headers");
}
