/**
 * @file llmgw_cors.h
 * @brief Cross-origin requests from browser applications (CORS): which
 *        origins `LLMGatewayCORS` allows, and the Access-Control-* values.
 *
 * A web page on another origin (https://app.example.com calling
 * https://gateway.example.com/v1) can only read the gateway's answers when
 * they carry Access-Control-Allow-Origin for its origin, and may only send
 * a JSON POST with an Authorization header after a preflight OPTIONS whose
 * answer allows that method and those headers. The glue (mod_llmgw_cors.c)
 * puts the values computed here on every response of a location with
 * `LLMGatewayCORS`, errors and streams included, and the handler answers
 * preflights with the route's methods.
 *
 * Origins are configured as `scheme://host[:port]`, exactly what browsers
 * send in Origin (no path, no trailing slash), or `*` for any origin. A
 * listed origin is echoed back, with Access-Control-Allow-Credentials, so
 * a page may also send cookies or TLS client certificates (sign-on through
 * an httpd auth module); `*` is answered `*`, which browsers never combine
 * with credentials. An origin not allowed gets no Access-Control-* header
 * at all: the browser refuses the answer (and, after a refused preflight,
 * never sends the request).
 *
 * Pure functions; configuration from the pool given, read-only afterwards.
 */
#ifndef LLMGW_CORS_H
#define LLMGW_CORS_H

#include "llmgw.h"

/** What Access-Control-Max-Age says: how long a browser may reuse a preflight. */
#define LLMGW_CORS_MAX_AGE 600

/**
 * Request headers a preflight may ask for: what the OpenAI, Anthropic and
 * Azure OpenAI browser SDKs send, plus any x-stainless-* (their telemetry).
 */
#define LLMGW_CORS_ALLOW_HEADERS                                                                   \
    "accept, authorization, content-type, x-api-key, api-key, anthropic-version, "                 \
    "anthropic-beta, anthropic-dangerous-direct-browser-access, openai-organization, "             \
    "openai-project, openai-beta, idempotency-key"

/** Response headers a page may read besides the CORS-safelisted ones. */
#define LLMGW_CORS_EXPOSE_HEADERS                                                                  \
    "x-llmgw-backend, x-llmgw-attempts, x-llmgw-overhead-ms, x-llmgw-dropped-params, "             \
    "x-request-id, retry-after, retry-after-ms, x-should-retry, x-ratelimit-limit-requests, "      \
    "x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, "     \
    "x-ratelimit-reset-requests, x-ratelimit-reset-tokens"

/** One location's LLMGatewayCORS. */
typedef struct {
    int off;                     /**< "off": no CORS here, whatever an outer location says */
    int any;                     /**< "*" */
    apr_array_header_t *origins; /**< const char *: normalised "scheme://host[:port]" */
} llmgw_cors_t;

/** An empty setting (nothing allowed yet), from @p p. */
llmgw_cors_t *llmgw_cors_make(apr_pool_t *p);

/**
 * Add one argument of LLMGatewayCORS: an origin, `*` or `off`. The scheme
 * and host are lowercased and an explicit default port (:80 for http, :443
 * for https) is dropped, as browsers write Origin.
 * @return NULL, or a sentence for configtest: not an origin (a path, a
 *         query, user info, a wildcard in the host, "null"), or `*`/`off`
 *         mixed with anything else
 */
const char *llmgw_cors_add(apr_pool_t *p, llmgw_cors_t *cors, const char *arg);

/**
 * The Access-Control-Allow-Origin value for a request whose Origin header
 * is @p origin: "*" when any origin is allowed, @p origin itself when it is
 * listed (compared without regard to case), NULL when it is not allowed,
 * absent, or @p cors is NULL or off.
 */
const char *llmgw_cors_allow_origin(const llmgw_cors_t *cors, const char *origin);

/** 1 when answers carry Access-Control-Allow-Credentials: true (listed origins, not `*`). */
int llmgw_cors_credentials(const llmgw_cors_t *cors);

/**
 * The Access-Control-Allow-Headers value of a preflight whose
 * Access-Control-Request-Headers is @p requested: the requested names
 * (lowercased, in order) when every one is acceptable (the SDK headers of
 * LLMGW_CORS_ALLOW_HEADERS or x-stainless-*), else LLMGW_CORS_ALLOW_HEADERS
 * alone, which the browser then finds lacking. NULL when nothing was
 * requested. From @p p.
 */
const char *llmgw_cors_allow_headers(apr_pool_t *p, const char *requested);

/** "GET, HEAD, POST" style list of the LLMGW_METHOD_* bits in @p methods (OPTIONS left out). */
const char *llmgw_cors_allow_methods(apr_pool_t *p, int methods);

#endif /* LLMGW_CORS_H */
