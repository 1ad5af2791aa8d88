/**
 * @file llmgw_error.h
 * @brief Client-facing errors in the OpenAI shape, and the classification
 *        of upstream outcomes (providers.md 2.5 and 9, DESIGN.md 6).
 *
 * Every error a client sees is built here:
 *   {"error":{"message":...,"type":...,"param":...,"code":...}}
 * with `param` and `code` always present (null when unknown). Messages are
 * safe: they never contain a provider key or an internal pointer.
 */
#ifndef LLMGW_ERROR_H
#define LLMGW_ERROR_H

#include "llmgw.h"

typedef struct {
    int status;          /**< HTTP status for the client */
    const char *type;    /**< "invalid_request_error", "server_error", ... */
    const char *code;    /**< NULL -> JSON null */
    const char *param;   /**< NULL -> JSON null */
    const char *message; /**< plain sentence, safe to show */
} llmgw_error_t;

/** Allocate an error from @p p; @p type NULL picks the default type for @p status. */
llmgw_error_t *llmgw_error_make(apr_pool_t *p, int status, const char *type, const char *code,
                                const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** Default `type` for a gateway-generated error of @p status (providers.md 2.5). */
const char *llmgw_error_type_for_status(int status);

/**
 * Is @p status one an upstream's error may keep on its way to the client?
 * The set of providers.md 2.5 and 9.2: 400 401 403 404 408 409 413 422 429
 * 500 502 503 504. Any other (418, 420, 499, 520, 1xx-3xx, ...) is unknown
 * to the clients' SDKs, and httpd itself sends "500 Internal Server Error"
 * on the wire for a status it has no reason phrase for.
 */
int llmgw_error_status_passable(int status);

/**
 * The client-facing form of @p e, an error a translator built from an
 * upstream's answer (parse_error): a status outside the passable set
 * becomes 502 bad_gateway (498 and 529, overloads, 503
 * upstream_unavailable) with the upstream's message; and the type agrees
 * with the status: a 5xx is a server_error, a 4xx never is. Returns @p e
 * when it is already so, else a new error from @p p.
 */
llmgw_error_t *llmgw_error_from_upstream(apr_pool_t *p, llmgw_error_t *e);

/** `{"error":{...}}` as compact JSON, from @p p. */
const char *llmgw_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len);

/** The mid-stream form: `data: {"error":{...}}\n\n`, from @p p. */
const char *llmgw_error_sse(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len);

/** Why an upstream attempt failed; also the LLMGW_ERROR access-log value. */
typedef enum {
    LLMGW_FAIL_NONE = 0,
    LLMGW_FAIL_CONNECT,     /**< DNS, TCP, TLS: nothing was sent */
    LLMGW_FAIL_TIMEOUT,     /**< connect, first byte, or overall deadline */
    LLMGW_FAIL_IDLE,        /**< a stream went silent past idleTimeout */
    LLMGW_FAIL_RESET,       /**< connection dropped after the request was sent */
    LLMGW_FAIL_HTTP,        /**< upstream answered non-2xx (see status) */
    LLMGW_FAIL_PROTOCOL,    /**< malformed body or stream from upstream */
    LLMGW_FAIL_STREAM,      /**< upstream stream ended before it was complete */
    LLMGW_FAIL_CLIENT_GONE, /**< the client disconnected: abort, not an upstream fault */
    LLMGW_FAIL_INTERNAL
} llmgw_fail_e;

/** Short token for logs and LLMGW_ERROR: "connect", "timeout", "http_503", ... */
const char *llmgw_fail_name(apr_pool_t *p, llmgw_fail_e fail, int status);

/** What to do after a failed attempt (DESIGN.md 6, providers.md 9.2). */
typedef enum {
    LLMGW_ACTION_RETRY = 1, /**< retry this backend (then fall back) */
    LLMGW_ACTION_FALLBACK,  /**< do not retry here; the next pool member may try */
    LLMGW_ACTION_FINAL      /**< the client's request is wrong: answer now */
} llmgw_action_e;

/** Classify a failed attempt. @p status is the upstream HTTP status for LLMGW_FAIL_HTTP. */
llmgw_action_e llmgw_error_action(llmgw_fail_e fail, int status);

/**
 * The error the client gets when every attempt failed with @p fail/@p status
 * (providers.md 9.2 last column): 502 bad_gateway, 504 upstream_timeout,
 * 503 upstream_unavailable, 429 rate_limit_exceeded, 502 upstream_auth_failed.
 * For FINAL upstream 4xx, use the provider's translated error instead.
 */
llmgw_error_t *llmgw_error_exhausted(apr_pool_t *p, llmgw_fail_e fail, int status,
                                     const char *backend);

/**
 * Parse retry hints (providers.md 9.1): `retry-after-ms` (milliseconds),
 * then `retry-after` (integer/fractional seconds or an HTTP-date relative to
 * @p now). Either may be NULL. Returns the delay, or -1 when there is none
 * or it cannot be parsed. Never negative otherwise.
 */
apr_interval_time_t llmgw_retry_after_parse(const char *retry_after_ms, const char *retry_after,
                                            apr_time_t now);

/** Go-style durations used in rate-limit headers: "6m0s", "2m59.56s", "120ms". -1 if invalid. */
apr_interval_time_t llmgw_go_duration_parse(const char *text);

/**
 * Backoff before retry @p attempt (1-based): 500 ms * 2^(attempt-1), capped
 * at 8 s, with +-25 % jitter from @p rnd (a uniform value in [0,1)).
 */
apr_interval_time_t llmgw_backoff(int attempt, double rnd);

#endif /* LLMGW_ERROR_H */
