/*
 * Private header of the httpd glue (mod_llmgw.c, src/mod_llmgw_*.c).
 * Core files (src/llmgw_*.c) never include it.
 */
#ifndef MOD_LLMGW_PRIVATE_H
#define MOD_LLMGW_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_core.h>
#include <ap_mpm.h>
#include <apr_shm.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_cors.h"
#include "llmgw_stats.h"
#include "llmgw_upstream.h"
#include "llmgw_pool.h"
#include "llmgw_error.h"
#include "llmgw_route.h"
#include <jansson.h>

/* mod_llmgw.c declares the module itself (AP_DECLARE_MODULE); doing both
 * in one file is a duplicate definition. */
#ifndef LLMGW_MODULE_MAIN
APLOG_USE_MODULE(llmgw);
#endif
extern module AP_MODULE_DECLARE_DATA llmgw_module;

/* Our log ids; the next free number is in src/next-logno. */
#define LLMGW_LOGNO(n) "LLMGW" #n ": "

/* Default request-body limit (LLMGatewayMaxBody). */
#define LLMGW_DEFAULT_MAX_BODY (4 * 1024 * 1024)
/* Default limit of a buffered (non-streaming) upstream answer
 * (LLMGatewayMaxUpstreamBody): each worker thread may hold one. */
#define LLMGW_DEFAULT_MAX_UPSTREAM_BODY (16 * 1024 * 1024)

/* The handler name of SetHandler / LLMGateway on. */
#define LLMGW_HANDLER "llmgw"
#define LLMGW_STATUS_HANDLER "llmgw-status"

/*
 * One gateway's runtime state for one generation (post_config to the next
 * restart), hung off the server config of every server that serves the
 * gateway, as mod_proxy_balancer hangs its shared state off balancer->s.
 * mod_llmgw_stats.c makes it from pconf in post_config, so a restart starts
 * clean without a global to reset; afterwards only child_init writes it
 * (the row, in the child's own copy). The handler, the status page and the
 * access layer read it instead of file-level globals.
 */
typedef struct {
    const llmgw_config_t *gw; /* the parsed gateway.yaml this generation serves */
    const char *scope;        /* the gateway's scope (llmgw_slots.h); "" for the main server's */
    void *stats;              /* the shared statistics segment of this generation */
    const int *slot_of;       /* stats slot per backend index of gw */
    int nslots;               /* entries in slot_of */
    llmgw_stats_row_t *row;   /* this child's in-flight row (child_init); NULL in the parent */
} llmgw_runtime_t;

typedef struct {
    const char *config_path;     /* LLMGatewayConfig, resolved */
    llmgw_config_t *gw;          /* parsed gateway.yaml (pconf), NULL when not configured; a vhost
                                  * without its own LLMGatewayConfig has the main server's pointer */
    apr_off_t max_body;          /* LLMGW_UNSET when not set here */
    apr_off_t max_upstream_body; /* LLMGW_UNSET when not set here */
    llmgw_runtime_t *rt;         /* this generation's runtime (post_config); NULL before, and when
                                  * there is no statistics segment */
    const char *kept_reason;     /* why this server's own file was refused and its previous
                                  * version kept (live restart); logged in post_config, once
                                  * the error log is open; never inherited */
    struct llmgw_access_srv *access; /* access, limits and ledger state (mod_llmgw_access.c),
                                      * post_config; NULL when the gateway has none */
} llmgw_srv_cfg;

typedef struct {
    int enabled;                 /* LLMGateway on/off, LLMGW_UNSET when not set */
    apr_off_t max_body;          /* LLMGW_UNSET when not set */
    apr_off_t max_upstream_body; /* LLMGW_UNSET when not set */
    int status_control;          /* LLMGatewayStatusControl on/off, LLMGW_UNSET when not set */
    llmgw_cors_t *cors;          /* LLMGatewayCORS (cmd->pool), NULL when not set */
} llmgw_dir_cfg;

extern const command_rec llmgw_cmds[];
void *llmgw_create_srv(apr_pool_t *p, server_rec *s);
void *llmgw_merge_srv(apr_pool_t *p, void *base, void *add);
void *llmgw_create_dir(apr_pool_t *p, char *dir);
void *llmgw_merge_dir(apr_pool_t *p, void *base, void *add);

/* Effective body limit for @p r. */
apr_off_t llmgw_max_body(request_rec *r);
/* Effective limit of a buffered upstream answer for @p r. */
apr_off_t llmgw_max_upstream_body(request_rec *r);

/* Handler and its per-child state. */
int llmgw_handler(request_rec *r);
/* r->notes key naming the api (llmgw_api_e, decimal) of a client-dialect route. */
#define LLMGW_NOTE_API "llmgw-api"
/* The error body for @p e in the request's dialect (OpenAI's unless a dialect route). */
const char *llmgw_glue_error_json(request_rec *r, const llmgw_error_t *e, apr_size_t *len);

/* mod_llmgw_ingress.c: the client dialects' endpoints besides their main POST. */
struct llmgw_google_auth_t;
int llmgw_ingress_glue_count(request_rec *r, const llmgw_config_t *gw, const llmgw_route_t *route,
                             const json_t *body, const char *raw, apr_size_t raw_len,
                             llmgw_upstream_t *up, struct llmgw_google_auth_t *ga);
int llmgw_ingress_glue_sub(request_rec *r, const llmgw_config_t *gw, const llmgw_route_t *route,
                           const llmgw_route_match_t *m, llmgw_upstream_t *up);
/* The response store of @p gw's ledger for this child (opened on first use), or NULL. */
struct llmgw_responses_db_t;
void llmgw_ingress_glue_child_init(apr_pool_t *pchild, server_rec *s);
struct llmgw_responses_db_t *llmgw_ingress_glue_store(request_rec *r, const llmgw_config_t *gw);
/* Anthropic's model list when the client sent anthropic-version, else NULL. */
const char *llmgw_ingress_glue_models(request_rec *r, const json_t *openai_list,
                                      apr_int64_t created, apr_size_t *len);
int llmgw_translate_name(request_rec *r);
int llmgw_map_to_storage(request_rec *r);
void llmgw_handler_child_init(apr_pool_t *pchild, server_rec *s);

/* CORS (mod_llmgw_cors.c). */
/* header_parser: Access-Control-* of every answer of a location with LLMGatewayCORS. */
int llmgw_cors_header_parser(request_rec *r);
/* insert_error_filter: the same on the error responses httpd makes itself. */
void llmgw_cors_insert_error_filter(request_rec *r);
/* The handler's OPTIONS: the rest of an allowed preflight's answer, for a route's methods. */
void llmgw_cors_preflight(request_rec *r, int methods);

/* httpd's own refusals in gateway locations, as JSON (mod_llmgw_errors.c):
 * register_hooks: the LLMGW_JSON_ERROR filter and its insert_error_filter hook. */
void llmgw_errors_register(apr_pool_t *p);

/* Pool strategies as httpd providers (mod_llmgw_strategy.c). */
/* register_hooks: the built-ins, under LLMGW_STRATEGY_PROVIDER_GROUP. */
void llmgw_strategy_register(apr_pool_t *p);
/* Loader options resolving `strategy:` through the provider registry (@p p: the names). */
void llmgw_strategy_config_opts(apr_pool_t *p, llmgw_config_opts_t *opts);
/* Logs the pools whose strategy another module provides. */
void llmgw_strategy_post_config(server_rec *s);

/* Shared statistics (mod_llmgw_stats.c). */
int llmgw_stats_post_config(apr_pool_t *pconf, server_rec *s);
/* child_init: claim this child's in-flight row. */
void llmgw_stats_child_init(apr_pool_t *pchild, server_rec *s);
/* The MPM's child_status hook (parent): free the row of a child that ended. */
void llmgw_stats_child_status(server_rec *s, pid_t pid, ap_generation_t gen, int slot,
                              mpm_child_status state);
int llmgw_status_handler(request_rec *r);
/* mod_status's status_hook: the gateway's section of /server-status (HTML and ?auto). */
int llmgw_status_hook(request_rec *r, int flags);
/* The runtime of the gateway serving @p s (see llmgw_runtime_t), NULL when none. */
const llmgw_runtime_t *llmgw_glue_runtime(server_rec *s);
/*
 * Access, limits, spend and the ledger (mod_llmgw_access.c). The handler
 * calls these at its seams; each returns OK to go on, or a status after it
 * has answered the client itself.
 */
/* After routing, before the body is read: who is asking, and may they use this route? */
int llmgw_access_glue_identify(request_rec *r, const llmgw_route_t *route);
/* The body is parsed: may they use this model, within their limits and budget? Reserves. */
int llmgw_access_glue_admit(request_rec *r, const llmgw_route_t *route, const void *json_body,
                            const char *model);
/* A provider reported usage (@p usage is an llmgw_usage_t); @p model is what answered. */
void llmgw_access_glue_usage(request_rec *r, const void *usage, const char *model);
/* An attempt on backend @p b with model @p model starts / ended (@p usage NULL: it failed). */
void llmgw_access_glue_attempt_begin(request_rec *r, const llmgw_backend_t *b, const char *model);
void llmgw_access_glue_attempt_end(request_rec *r, const llmgw_backend_t *b, const void *usage);
/* Pool expansion: skip members at their own limits (sets *fn and *baton when any has limits). */
void llmgw_access_glue_pool_full(request_rec *r, llmgw_pool_full_fn *fn, void **baton);
/* The status page: the access section appended to @p body in the same format. */
const char *llmgw_access_glue_status(request_rec *r, int json, int prometheus, const char *body,
                                     apr_size_t *len);
int llmgw_access_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void llmgw_access_child_init(apr_pool_t *pchild, server_rec *s);
void llmgw_access_child_status(server_rec *s, pid_t pid, ap_generation_t gen, int slot,
                               mpm_child_status state);
/* LLMGatewayConfig: load the ledger's apr_dbd driver now, so configtest names a missing package. */
const char *llmgw_access_cfg_check(cmd_parms *cmd, llmgw_config_t *gw);

/*
 * Shared-memory segments that outlive a graceful restart (mod_llmgw_shm.c).
 * The statistics and the access limits each keep one anonymous segment in
 * s->process->pool, remembered in its userdata under their own key, so the
 * next generation's post_config finds it and keeps its counters as long as
 * the new configuration fits in it. A kind says how to recognise, size and
 * lay out one segment; it is constant per caller.
 */
typedef struct {
    const char *key; /* userdata key in s->process->pool */
    /* Does the previous generation's segment (@p base, @p size bytes) hold @p need? */
    int (*fits)(const void *base, apr_size_t size, const void *need);
    /* Size and lay out a new segment (llmgw_stats_size/init, llmgw_limits_size/init). */
    apr_size_t (*size)(int capacity, int nrows);
    apr_status_t (*init)(void *base, int capacity, int nrows, apr_time_t created);
} llmgw_shm_kind_t;

/* What llmgw_shm_cfg_get did, for the caller's own log lines. */
typedef struct {
    int replaced;      /* the previous generation's segment did not fit (or @p fresh): left */
    apr_size_t size;   /* bytes of the new segment; 0 when the previous one was kept */
    int create_failed; /* apr_shm_create refused @c size bytes; the returned status says why */
} llmgw_shm_outcome_t;

/*
 * post_config (parent, real pass): the previous generation's segment of
 * @p kind when it still holds @p need and @p fresh is 0, else a new one of
 * @p capacity slots (@p capacity_replacing when it replaces one that no
 * longer fits) and @p nrows rows, initialised and remembered for the next
 * generation. A replaced segment is not destroyed: children of the old
 * generation may still write to it, so it goes with the process pool at
 * shutdown. Logs nothing; @p how says what happened. Returns the status of
 * apr_shm_create or of kind->init.
 */
apr_status_t llmgw_shm_cfg_get(server_rec *s, const llmgw_shm_kind_t *kind, const void *need,
                               int capacity, int capacity_replacing, int nrows, int fresh,
                               apr_shm_t **out, llmgw_shm_outcome_t *how);

/* Forget last-good gateway.yaml copies of files no server uses any more (post_config). */
void llmgw_config_post_config(server_rec *s);

#endif /* MOD_LLMGW_PRIVATE_H */
