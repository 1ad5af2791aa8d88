/*
 * Directives and per-server / per-directory configuration.
 *
 * gateway.yaml is parsed in the LLMGatewayConfig directive itself, so that
 * `apachectl configtest` (which never runs post_config) reports every
 * mistake with file:line:column, and `apachectl graceful` refuses an
 * invalid file before the running server is signalled. The secret files it
 * names (Vertex AI service-account keys) are read there too: that runs as
 * root, before children drop to User, like mod_ssl reading its keys, so
 * they can stay mode 0600 root (DESIGN.md 10).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <http_main.h>
#include "llmgw_provider.h"
#include "mod_llmgw_private.h"
#include "llmgw_google_auth.h"

void *llmgw_create_srv(apr_pool_t *p, server_rec *s)
{
    llmgw_srv_cfg *c = apr_pcalloc(p, sizeof(*c));
    c->max_body = LLMGW_UNSET;
    c->max_upstream_body = LLMGW_UNSET;
    return c;
}

void *llmgw_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    llmgw_srv_cfg *base = basev, *add = addv;
    llmgw_srv_cfg *c = apr_pcalloc(p, sizeof(*c));

    /* A virtual host without its own LLMGatewayConfig uses the main one. */
    c->config_path = add->config_path ? add->config_path : base->config_path;
    c->gw = add->gw ? add->gw : base->gw;
    c->max_body = add->max_body != LLMGW_UNSET ? add->max_body : base->max_body;
    c->max_upstream_body =
        add->max_upstream_body != LLMGW_UNSET ? add->max_upstream_body : base->max_upstream_body;
    /* Only about the file this server names itself: the main server's is logged once. */
    c->kept_reason = add->kept_reason;
    return c;
}

void *llmgw_create_dir(apr_pool_t *p, char *dir)
{
    llmgw_dir_cfg *c = apr_pcalloc(p, sizeof(*c));
    c->enabled = LLMGW_UNSET;
    c->max_body = LLMGW_UNSET;
    c->max_upstream_body = LLMGW_UNSET;
    c->status_control = LLMGW_UNSET;
    return c;
}

/* Runs in every request's location walk: keep it tiny. */
void *llmgw_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    llmgw_dir_cfg *base = basev, *add = addv;
    llmgw_dir_cfg *c = apr_palloc(p, sizeof(*c));

    c->enabled = add->enabled != LLMGW_UNSET ? add->enabled : base->enabled;
    c->max_body = add->max_body != LLMGW_UNSET ? add->max_body : base->max_body;
    c->max_upstream_body =
        add->max_upstream_body != LLMGW_UNSET ? add->max_upstream_body : base->max_upstream_body;
    c->status_control =
        add->status_control != LLMGW_UNSET ? add->status_control : base->status_control;
    c->cors = add->cors ? add->cors : base->cors;
    return c;
}

apr_off_t llmgw_max_body(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);
    llmgw_srv_cfg *s = ap_get_module_config(r->server->module_config, &llmgw_module);

    if (d && d->max_body != LLMGW_UNSET)
        return d->max_body;
    if (s && s->max_body != LLMGW_UNSET)
        return s->max_body;
    return LLMGW_DEFAULT_MAX_BODY;
}

apr_off_t llmgw_max_upstream_body(request_rec *r)
{
    llmgw_dir_cfg *d = ap_get_module_config(r->per_dir_config, &llmgw_module);
    llmgw_srv_cfg *s = ap_get_module_config(r->server->module_config, &llmgw_module);

    if (d && d->max_upstream_body != LLMGW_UNSET)
        return d->max_upstream_body;
    if (s && s->max_upstream_body != LLMGW_UNSET)
        return s->max_upstream_body;
    return LLMGW_DEFAULT_MAX_UPSTREAM_BODY;
}

/*
 * The last good text of every gateway.yaml file, by resolved path, kept in
 * the process pool across generations for the live-restart fallback below.
 *
 * Keyed by file, not by server: what went bad is a file, and its previous
 * version is what every (virtual) host reading that file was running, so
 * after a bad edit of vhost A's file A keeps A's previous text while B,
 * reading another file, loads its own (once there was a single copy per
 * process, and A got B's configuration and keys). A host pointed at a file
 * it never loaded has no previous version of it and fails as at a first
 * start. The texts live in malloc'ed memory, replaced on each good load
 * and freed once no server uses the file (llmgw_config_post_config), so
 * repeated graceful restarts do not grow the process pool; only the
 * entries (path and two words) stay, one per file ever used.
 */
typedef struct {
    char *text; /* malloc'ed, NULL when forgotten */
    apr_size_t len;
    int generation; /* last configuration generation that used the file */
} last_good_t;

static apr_hash_t *last_good_files(process_rec *proc)
{
    void *ud = NULL;
    apr_hash_t *files;

    apr_pool_userdata_get(&ud, "llmgw-last-good-yaml", proc->pool);
    if (ud)
        return ud;
    files = apr_hash_make(proc->pool);
    apr_pool_userdata_set(files, "llmgw-last-good-yaml", apr_pool_cleanup_null, proc->pool);
    return files;
}

/* The last good text of @p path, NULL when there is none. */
static last_good_t *last_good(process_rec *proc, const char *path)
{
    last_good_t *lg = apr_hash_get(last_good_files(proc), path, APR_HASH_KEY_STRING);

    return lg && lg->text ? lg : NULL;
}

static void remember(process_rec *proc, const char *path, const char *text, apr_size_t len)
{
    apr_hash_t *files = last_good_files(proc);
    last_good_t *lg = apr_hash_get(files, path, APR_HASH_KEY_STRING);
    char *copy = malloc(len + 1);

    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (!lg) {
        lg = apr_pcalloc(proc->pool, sizeof(*lg));
        apr_hash_set(files, apr_pstrdup(proc->pool, path), APR_HASH_KEY_STRING, lg);
    }
    free(lg->text);
    lg->text = copy;
    lg->len = len;
    lg->generation = ap_state_query(AP_SQ_CONFIG_GEN);
}

void llmgw_config_post_config(server_rec *s)
{
    int gen = ap_state_query(AP_SQ_CONFIG_GEN);
    apr_hash_index_t *hi;
    server_rec *v;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return;
    for (v = s; v; v = v->next) {
        llmgw_srv_cfg *c = ap_get_module_config(v->module_config, &llmgw_module);
        if (c && c->kept_reason)
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, v,
                         LLMGW_LOGNO(00008) "LLMGatewayConfig: %s; keeping the previous "
                                            "version of this file",
                         c->kept_reason);
    }
    /* Every file loaded (or fallen back to) in this generation was marked. */
    for (hi = apr_hash_first(NULL, last_good_files(s->process)); hi; hi = apr_hash_next(hi)) {
        last_good_t *lg = apr_hash_this_val(hi);
        if (lg->generation != gen && lg->text) {
            free(lg->text);
            lg->text = NULL;
            lg->len = 0;
        }
    }
}

static apr_status_t read_file(apr_pool_t *p, const char *path, char **text, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS)
        return rv;
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS) {
        *len = (apr_size_t)fi.size;
        *text = apr_palloc(p, *len + 1);
        rv = *len ? apr_file_read_full(f, *text, *len, NULL) : APR_SUCCESS;
        (*text)[*len] = '\0';
    }
    apr_file_close(f);
    return rv;
}

/*
 * Only the live parent re-reading its configuration for a graceful restart
 * keeps the last good file on error: failing there would stop the whole
 * server (apache-notes 6.3). configtest, the signalling process of
 * `-k graceful` and a first start keep failing hard.
 */
static int in_live_restart(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_CONFIG &&
           ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_NORMAL &&
           ap_state_query(AP_SQ_CONFIG_GEN) > 1;
}

/*
 * Read the service-account key of every Vertex AI backend of @p gw into
 * cmd->pool (the configuration's lifetime: a graceful restart reads it
 * again, so keys rotate with `apachectl graceful`). Relative paths are
 * taken from ServerRoot, like mod_ssl's. In the live parent of a graceful
 * restart a broken key must not stop the whole server: it is logged and
 * that backend answers 502 until the file is fixed (configtest, run by
 * `apachectl graceful` first, already refuses it).
 */
static const char *load_secrets(cmd_parms *cmd, llmgw_config_t *gw)
{
    apr_hash_t *loaded = apr_hash_make(cmd->temp_pool);
    const char *msg = NULL;
    int i;

    for (i = 0; i < gw->backends->nelts; i++) {
        llmgw_backend_t *b = APR_ARRAY_IDX(gw->backends, i, llmgw_backend_t *);
        if (llmgw_google_cfg_load_sa(gw, b, ap_server_root, loaded, cmd->pool, &msg) == APR_SUCCESS)
            continue;
        if (!in_live_restart())
            return msg;
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, cmd->server,
                     LLMGW_LOGNO(00100) "LLMGatewayConfig: %s; backend \"%s\" answers 502 until "
                                        "the file is fixed and httpd is restarted",
                     msg, b->name);
    }
    return NULL;
}

static const char *set_config(cmd_parms *cmd, void *mconfig, const char *arg)
{
    llmgw_srv_cfg *c = ap_get_module_config(cmd->server->module_config, &llmgw_module);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    const char *path, *msg = NULL;
    char *text = NULL;
    apr_size_t len = 0;
    apr_status_t rv;
    char buf[256];
    llmgw_config_opts_t opts;

    if (err)
        return err;
    /* Now, not in register_hooks: other modules' strategies are registered by now. */
    llmgw_strategy_config_opts(cmd->temp_pool, &opts);
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path)
        return apr_psprintf(cmd->pool, "LLMGatewayConfig: invalid path '%s'", arg);
    rv = read_file(cmd->temp_pool, path, &text, &len);
    if (rv != APR_SUCCESS)
        msg = apr_psprintf(cmd->pool, "%s: cannot read the file: %s", path,
                           llmgw_strerror(rv, buf, sizeof(buf)));
    else
        rv = llmgw_config_parse_opts(&c->gw, cmd->pool, cmd->temp_pool, path, text, len, &opts,
                                     &msg);
    if (rv == APR_SUCCESS && (msg = load_secrets(cmd, c->gw)) != NULL)
        return apr_pstrcat(cmd->pool, "LLMGatewayConfig: ", msg, NULL);
    if (rv == APR_SUCCESS && (msg = llmgw_access_cfg_check(cmd, c->gw)) != NULL)
        return apr_pstrcat(cmd->pool, "LLMGatewayConfig: ", msg, NULL);
    if (rv == APR_SUCCESS) {
        llmgw_provider_prepare(c->gw, cmd->pool);
        c->config_path = path;
        if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_CONFIG)
            remember(cmd->server->process, path, text, len);
        return NULL;
    }
    if (!msg)
        msg = apr_psprintf(cmd->pool, "%s: %s", path, llmgw_strerror(rv, buf, sizeof(buf)));
    if (in_live_restart() && last_good(cmd->server->process, path)) {
        last_good_t *lg = last_good(cmd->server->process, path);
        const char *msg2 = NULL;
        if (llmgw_config_parse_opts(&c->gw, cmd->pool, cmd->temp_pool, path, lg->text, lg->len,
                                    &opts, &msg2) == APR_SUCCESS &&
            !load_secrets(cmd, c->gw) && !llmgw_access_cfg_check(cmd, c->gw)) {
            /* Logged in post_config: while the configuration is read, the
             * new generation's error log is not open yet. */
            llmgw_provider_prepare(c->gw, cmd->pool);
            c->config_path = path;
            c->kept_reason = msg;
            lg->generation = ap_state_query(AP_SQ_CONFIG_GEN);
            return NULL;
        }
    }
    return apr_pstrcat(cmd->pool, "LLMGatewayConfig: ", msg, NULL);
}

static const char *set_enabled(cmd_parms *cmd, void *mconfig, int flag)
{
    llmgw_dir_cfg *d = mconfig;
    d->enabled = flag ? 1 : 0;
    return NULL;
}

/* LLMGatewayCORS origin... | * | off: one call per argument; lines of one section add up. */
static const char *set_cors(cmd_parms *cmd, void *mconfig, const char *arg)
{
    llmgw_dir_cfg *d = mconfig;
    const char *err;

    if (!d->cors)
        d->cors = llmgw_cors_make(cmd->pool);
    err = llmgw_cors_add(cmd->pool, d->cors, arg);
    return err ? apr_pstrcat(cmd->pool, "LLMGatewayCORS: ", err, NULL) : NULL;
}

static const char *set_status_control(cmd_parms *cmd, void *mconfig, int flag)
{
    llmgw_dir_cfg *d = mconfig;
    d->status_control = flag ? 1 : 0;
    return NULL;
}

/* "4M", "512K", "1048576", "1G" -> bytes. */
static const char *parse_size(apr_pool_t *p, const char *arg, apr_off_t *out)
{
    char *end = NULL;
    apr_int64_t n;

    if (apr_strtoff(out, arg, &end, 10) != APR_SUCCESS || *out < 0 || end == arg)
        return apr_psprintf(p, "'%s' is not a size (e.g. 4M, 512K, 1048576)", arg);
    n = *out;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        n *= 1024;
        end++;
        break;
    case 'm':
    case 'M':
        n *= 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        n *= (apr_int64_t)1024 * 1024 * 1024;
        end++;
        break;
    default:
        end = NULL;
    }
    if (!end || *end || n <= 0)
        return apr_psprintf(p, "'%s' is not a positive size (e.g. 4M, 512K, 1048576)", arg);
    *out = (apr_off_t)n;
    return NULL;
}

/* LLMGatewayMaxBody and LLMGatewayMaxUpstreamBody: a size, per location or per server. */
static const char *set_size(cmd_parms *cmd, void *mconfig, const char *arg)
{
    int upstream = cmd->info != NULL;
    apr_off_t n;
    const char *err = parse_size(cmd->pool, arg, &n);

    if (err)
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    if (cmd->path) {
        llmgw_dir_cfg *d = mconfig;
        *(upstream ? &d->max_upstream_body : &d->max_body) = n;
    }
    else {
        llmgw_srv_cfg *c = ap_get_module_config(cmd->server->module_config, &llmgw_module);
        *(upstream ? &c->max_upstream_body : &c->max_body) = n;
    }
    return NULL;
}

const command_rec llmgw_cmds[] = {
    AP_INIT_TAKE1("LLMGatewayConfig", set_config, NULL, RSRC_CONF,
                  "Path of the gateway.yaml file (backends, pools and routes)"),
    AP_INIT_FLAG("LLMGateway", set_enabled, NULL, ACCESS_CONF,
                 "On to serve this <Location> with the gateway (fast path, no filesystem walk)"),
    AP_INIT_ITERATE("LLMGatewayCORS", set_cors, NULL, RSRC_CONF | ACCESS_CONF,
                    "Origins (scheme://host[:port]) whose web pages may call the gateway "
                    "here, or * for any, or off"),
    AP_INIT_FLAG("LLMGatewayStatusControl", set_status_control, NULL, ACCESS_CONF,
                 "On to let the llmgw-status page of this <Location> drain and re-enable "
                 "backends (default off)"),
    AP_INIT_TAKE1("LLMGatewayMaxBody", set_size, NULL, RSRC_CONF | ACCESS_CONF,
                  "Largest accepted request body, e.g. 4M (default 4M)"),
    AP_INIT_TAKE1("LLMGatewayMaxUpstreamBody", set_size, (void *)"upstream",
                  RSRC_CONF | ACCESS_CONF,
                  "Largest non-streamed provider answer buffered per request, e.g. 16M "
                  "(default 16M)"),
    {NULL}};
