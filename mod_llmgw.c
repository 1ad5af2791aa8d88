/*
 * mod_llmgw: an LLM gateway inside Apache httpd 2.4.
 *
 * This file is the module record and the hook registration only; the work
 * is done in src/mod_llmgw_*.c (glue) and src/llmgw_*.c (core).
 */
#define LLMGW_MODULE_MAIN 1
#include "src/mod_llmgw_private.h"
#include <ap_mpm.h>
#include <http_main.h>
#include <mod_status.h>
#include "llmgw_version.h"
#include <curl/curl.h>

static int llmgw_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    apr_status_t rv;

    /* curl_global_init belongs in the single-threaded parent, before any
     * fork; it is reference counted, so running in both passes is fine. */
    rv = llmgw_upstream_global_init(pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     LLMGW_LOGNO(00001) "libcurl cannot be used: %s (mod_llmgw needs libcurl "
                                        "7.85 or later; this process has %s)",
                     rv == APR_ENOTIMPL ? "too old" : "curl_global_init failed", curl_version());
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (llmgw_stats_post_config(pconf, s) != OK)
        return HTTP_INTERNAL_SERVER_ERROR;
    /* After the statistics: it reads the gateways' scopes they set. */
    if (llmgw_access_post_config(pconf, ptemp, s) != OK)
        return HTTP_INTERNAL_SERVER_ERROR;
    llmgw_config_post_config(s);
    llmgw_strategy_post_config(s);
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     LLMGW_LOGNO(00002) "mod_llmgw %s configured (generation %d)", LLMGW_VERSION,
                     ap_state_query(AP_SQ_CONFIG_GEN));
    return OK;
}

static void llmgw_child_init(apr_pool_t *pchild, server_rec *s)
{
    llmgw_stats_child_init(pchild, s);
    llmgw_access_child_init(pchild, s);
    llmgw_handler_child_init(pchild, s);
}

static void llmgw_register_hooks(apr_pool_t *p)
{
    llmgw_strategy_register(p);
    ap_hook_post_config(llmgw_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(llmgw_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Parent side of the per-child in-flight rows: a reaped child's row is freed. */
    ap_hook_child_status(llmgw_stats_child_status, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_status(llmgw_access_child_status, NULL, NULL, APR_HOOK_MIDDLE);
    /* FIRST: claim our URIs before core and mod_alias map them to files. */
    ap_hook_translate_name(llmgw_translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(llmgw_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    /* After the location walk (LLMGatewayCORS is known), before authentication
     * (so a 401 carries the CORS headers too). */
    ap_hook_header_parser(llmgw_cors_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(llmgw_cors_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(llmgw_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(llmgw_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* An optional hook: it runs only where mod_status is loaded, whatever
     * the LoadModule order (mod_status looks its hooks up by name). */
    APR_OPTIONAL_HOOK(ap, status_hook, llmgw_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
    llmgw_errors_register(p);
}

AP_DECLARE_MODULE(llmgw) = {STANDARD20_MODULE_STUFF, llmgw_create_dir, llmgw_merge_dir,
                            llmgw_create_srv,        llmgw_merge_srv,  llmgw_cmds,
                            llmgw_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                            AP_MODULE_FLAG_NONE
#endif
};
