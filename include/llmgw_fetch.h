/**
 * @file llmgw_fetch.h
 * @brief Fetching a client's remote images, with the SSRF guard of
 *        providers.md 2.2 and DESIGN.md 10.
 *
 * Some providers take image bytes, not URLs (google, providers.md 6.4):
 * their translator lists the http(s) images a request names
 * (llmgw_provider_t.remote_images) and the glue fetches them here before
 * build_request, which inlines them from llmgw_call_t.images.
 *
 * The guard, for every fetch:
 *   - http and https only, redirects included;
 *   - the address actually connected to is checked, in libcurl's
 *     open-socket callback, after name resolution: a host not named in
 *     imageFetch.allowHosts may only reach public addresses (not loopback,
 *     private, CGNAT, link-local, unspecified, multicast, reserved or
 *     documentation ranges, nor their IPv4-mapped or NAT64 forms), so a
 *     DNS answer that changes between a check and the connection (DNS
 *     rebinding) gains nothing;
 *   - redirects are followed by hand, at most LLMGW_FETCH_MAX_REDIRECTS,
 *     and every hop is checked afresh (scheme, allowHosts by the hop's own
 *     host name, connected address);
 *   - the answer must be 2xx with a Content-Type of image/<subtype>;
 *   - a byte budget (imageFetch.maxBytes) is enforced from Content-Length
 *     before any body byte is read, and while the body arrives (chunked
 *     bodies have no length);
 *   - a deadline (imageFetch.timeout) bounds the whole fetch, connection,
 *     redirects and body included; no proxy from the environment is used.
 * The budget and the deadline cover all the fetches of one client request
 * together (llmgw_fetch_images), so a request costs at most that much
 * memory and time whatever number of images it names.
 *
 * Threads: every function may be called from any thread; each fetch makes
 * and frees its own libcurl handle (after curl_global_init).
 */
#ifndef LLMGW_FETCH_H
#define LLMGW_FETCH_H

#include <sys/socket.h>
#include <apr_hash.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_provider.h"

/** Redirects followed per image before giving up. */
#define LLMGW_FETCH_MAX_REDIRECTS 5

/** How one fetch ended. */
typedef enum {
    LLMGW_FETCH_OK = 0,
    LLMGW_FETCH_BAD_URL,     /**< not an absolute http(s) URL (also a redirect's target) */
    LLMGW_FETCH_BLOCKED,     /**< the host resolved only to addresses the guard refuses */
    LLMGW_FETCH_UNREACHABLE, /**< DNS, TCP or TLS failed */
    LLMGW_FETCH_TIMEOUT,     /**< the deadline passed */
    LLMGW_FETCH_HTTP,        /**< the server answered a status other than 2xx (see status) */
    LLMGW_FETCH_NOT_IMAGE,   /**< Content-Type is not image/... (see mime_type) */
    LLMGW_FETCH_TOO_LARGE,   /**< past the byte budget */
    LLMGW_FETCH_REDIRECTS,   /**< more than LLMGW_FETCH_MAX_REDIRECTS redirects */
    LLMGW_FETCH_FAILED       /**< the connection broke, or the answer was not HTTP */
} llmgw_fetch_outcome_e;

typedef struct {
    llmgw_fetch_outcome_e outcome;
    int status;            /**< HTTP status of the last answer, 0 when none */
    const char *mime_type; /**< lowercase, without parameters; NULL when absent */
    const char *data;      /**< the body (LLMGW_FETCH_OK), from the pool */
    apr_size_t len;
    const char *host;          /**< host of the last hop, for logs */
    const char *blocked_addr;  /**< numeric address refused (LLMGW_FETCH_BLOCKED) */
    const char *blocked_class; /**< its class: "loopback", "private", ... */
    int redirects;             /**< redirects followed */
    const char *detail;        /**< libcurl's error text: safe to log, not for clients */
} llmgw_fetch_result_t;

/**
 * The class of an address the guard refuses unless its host is allowed, or
 * NULL for a public (global unicast) address. IPv4-mapped (::ffff:a.b.c.d),
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are classed by the
 * IPv4 address they carry. Families other than AF_INET and AF_INET6 are
 * "not an IP address".
 */
const char *llmgw_fetch_addr_class(const struct sockaddr *sa);

/** As llmgw_fetch_addr_class, for a numeric address; "not an IP address" when it is none. */
const char *llmgw_fetch_ip_class(const char *ip);

/**
 * Whether @p host (as in a URL: a name, an IPv4 literal or a bracketed IPv6
 * literal) is named in @p cfg->allow_hosts, ignoring case and a trailing
 * dot, and comparing IP literals by value. @p p is for scratch.
 */
int llmgw_fetch_host_allowed(apr_pool_t *p, const llmgw_image_fetch_t *cfg, const char *host);

/**
 * Fetch one image with the guard.
 * @param p         pool for the result and the body
 * @param cfg       the backend's imageFetch settings (allowHosts)
 * @param url       the client's URL
 * @param deadline  absolute end of the fetch
 * @param max_bytes largest body accepted
 * @param res       receives the outcome
 * @return APR_SUCCESS when @p res describes the outcome (check res->outcome),
 *         APR_ENOMEM when no libcurl handle could be made
 */
apr_status_t llmgw_fetch_image(apr_pool_t *p, const llmgw_image_fetch_t *cfg, const char *url,
                               apr_time_t deadline, apr_size_t max_bytes,
                               llmgw_fetch_result_t *res);

/**
 * Fetch every image of @p refs (llmgw_image_ref_t), each distinct URL once
 * and in order, within one deadline (now + timeout) and one byte budget
 * (maxBytes) for them all.
 * @param images  receives url -> const llmgw_image_t * (base64, from @p p)
 * @param failed  on failure: the reference that failed
 * @param res     on failure: how its fetch ended (for the log)
 * @param err     on failure: the client's error, a 400 naming the reference's
 *                param (never the resolved address: that would tell a client
 *                how internal names resolve)
 * @return APR_SUCCESS, LLMGW_EBADREQ for a fetch the guard or the server
 *         refused, or APR_ENOMEM
 */
apr_status_t llmgw_fetch_images(apr_pool_t *p, const llmgw_image_fetch_t *cfg,
                                const apr_array_header_t *refs, apr_hash_t **images,
                                const llmgw_image_ref_t **failed, llmgw_fetch_result_t *res,
                                llmgw_error_t **err);

/** Short name of an outcome for logs: "blocked", "not_image", "http_404", ... */
const char *llmgw_fetch_outcome_name(apr_pool_t *p, const llmgw_fetch_result_t *res);

#endif /* LLMGW_FETCH_H */
