/*
 * Shared-memory segments kept across graceful restarts: one helper for the
 * statistics (mod_llmgw_stats.c) and the access limits (mod_llmgw_access.c),
 * which keep their segments the same way and differ only in layout and in
 * what they say in the log (llmgw_shm_kind_t in mod_llmgw_private.h).
 *
 * A segment is anchored in s->process->pool, which lives across restarts,
 * and found again through that pool's userdata. apr_shm and its cleanup
 * belong to libapr, which is never unloaded, so this is safe although our
 * DSO is reloaded on every restart (apache-notes 5.1).
 */
#include <string.h>
#include "mod_llmgw_private.h"

apr_status_t llmgw_shm_cfg_get(server_rec *s, const llmgw_shm_kind_t *kind, const void *need,
                               int capacity, int capacity_replacing, int nrows, int fresh,
                               apr_shm_t **out, llmgw_shm_outcome_t *how)
{
    void *ud = NULL;
    apr_shm_t *old;
    apr_status_t rv;

    memset(how, 0, sizeof(*how));
    apr_pool_userdata_get(&ud, kind->key, s->process->pool);
    old = ud;
    if (old && !fresh && kind->fits(apr_shm_baseaddr_get(old), apr_shm_size_get(old), need)) {
        *out = old;
        return APR_SUCCESS;
    }
    if (old) {
        how->replaced = 1;
        capacity = capacity_replacing;
    }
    how->size = kind->size(capacity, nrows);
    rv = apr_shm_create(out, how->size, NULL, s->process->pool);
    if (rv != APR_SUCCESS) {
        how->create_failed = 1;
        return rv;
    }
    rv = kind->init(apr_shm_baseaddr_get(*out), capacity, nrows, apr_time_now());
    /* Remembered only once laid out: the next generation must not find a
     * segment whose header it cannot trust. */
    if (rv == APR_SUCCESS)
        apr_pool_userdata_set(*out, kind->key, apr_pool_cleanup_null, s->process->pool);
    return rv;
}
