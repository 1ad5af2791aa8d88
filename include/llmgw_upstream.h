/**
 * @file llmgw_upstream.h
 * @brief The libcurl client: reused handles, precise timeouts, streaming.
 *
 * Each child keeps a LIFO stack of (multi, easy) handle pairs. The multi
 * handle owns the connection cache, so taking the most recently used pair
 * reuses a warm keep-alive connection, and the number of warm connections
 * follows real concurrency rather than the thread count. Handles are never
 * created in the parent and never shared by two transfers at once.
 *
 * A transfer is driven with curl_multi_poll in slices of at most 100 ms, so
 * that the first-byte deadline, the idle deadline of streams and the
 * caller's own check (the client gone, a first-token deadline) are enforced
 * precisely instead of at libcurl's once-per-second progress callback.
 *
 * One request per transfer: libcurl silently sends a request again, on a
 * fresh connection, when a reused connection dies before any response byte
 * ("Connection died, retrying a fresh connect"). The provider may have
 * received (and billed) the first one, and the gateway would count one
 * attempt for two. A CURLOPT_PREREQFUNCTION callback counts the requests a
 * transfer makes and refuses the second: the transfer then fails as
 * LLMGW_FAIL_RESET with resend_refused set, and the caller's retry policy,
 * which counts attempts, decides whether to send it again. What remains: the
 * first request is counted even when the connection died before the provider
 * read it (an attempt the provider never saw is counted, never the reverse).
 *
 * Thread-safety: llmgw_upstream_perform may be called from any thread of
 * the child; the handle stack is guarded by a mutex.
 */
#ifndef LLMGW_UPSTREAM_H
#define LLMGW_UPSTREAM_H

#include "llmgw.h"
#include "llmgw_error.h"
#include "llmgw_provider.h"

typedef struct llmgw_upstream_t llmgw_upstream_t;

/** Once per process generation, in the parent (post_config). */
apr_status_t llmgw_upstream_global_init(apr_pool_t *pconf);

/** Per child (child_init): the handle stack and the DNS/TLS-session share. */
apr_status_t llmgw_upstream_child_create(llmgw_upstream_t **out, apr_pool_t *pchild, int max_idle);

typedef struct {
    apr_interval_time_t connect_timeout;
    /** until the response headers, or, when streaming, the first body byte */
    apr_interval_time_t first_byte_timeout;
    /** longest silence once the body flows (0 = none) */
    apr_interval_time_t idle_timeout;
    /** absolute end of this attempt */
    apr_time_t deadline;
    /**
     * Receives 2xx body bytes as they arrive. NULL: the body is buffered in
     * the result. A non-success return aborts the transfer and is kept in
     * result->sink_status.
     */
    apr_status_t (*on_data)(void *baton, const char *data, apr_size_t len);
    /**
     * Polled about every 100 ms while the transfer runs: LLMGW_FAIL_NONE to go
     * on, else the failure to end the transfer with (LLMGW_FAIL_CLIENT_GONE
     * when the client has gone, LLMGW_FAIL_TIMEOUT for a deadline of the
     * caller's own, such as the first content token). May be NULL.
     */
    llmgw_fail_e (*check)(void *baton);
    void *baton;
    /** Largest buffered body accepted (bigger: LLMGW_FAIL_PROTOCOL). */
    apr_size_t max_body;
} llmgw_upstream_opts_t;

typedef struct {
    int status;               /**< HTTP status, 0 when none arrived */
    llmgw_fail_e fail;        /**< LLMGW_FAIL_NONE for a complete exchange of any status */
    apr_status_t sink_status; /**< on_data's failure, else APR_SUCCESS */
    const char *body;         /**< buffered body (non-2xx always), from the request pool */
    apr_size_t body_len;
    const char *retry_after; /**< header values, NULL when absent */
    const char *retry_after_ms;
    const char *content_type;
    apr_interval_time_t ttfb; /**< until the first response byte */
    apr_interval_time_t elapsed;
    long new_connections; /**< 0 when a kept-alive connection was reused */
    const char *detail;   /**< libcurl's error text (no headers, safe to log) */
    /** libcurl wanted to send the request again after its reused connection
     *  died without an answer, and was refused (fail is LLMGW_FAIL_RESET) */
    int resend_refused;
} llmgw_upstream_result_t;

/**
 * Run one HTTP exchange. Returns APR_SUCCESS when @p res describes the
 * outcome (check res->fail and res->status), or an APR error for a local
 * failure (no handle could be made).
 */
apr_status_t llmgw_upstream_perform(llmgw_upstream_t *up, apr_pool_t *p,
                                    const llmgw_http_request_t *req,
                                    const llmgw_upstream_opts_t *opts,
                                    llmgw_upstream_result_t *res);

#endif /* LLMGW_UPSTREAM_H */
