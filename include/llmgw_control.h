/**
 * @file llmgw_control.h
 * @brief The status page's operator controls: the nonce that every drain or
 *        enable POST must carry, and the actions.
 *
 * An operator drains or re-enables a backend by submitting a form of the
 * status page (DESIGN.md 8), as with httpd's balancer-manager. The POST
 * must carry a nonce of a page the gateway rendered not long ago, so that
 * another site cannot make an operator's browser send it (CSRF): such a
 * site can make the browser post, but cannot read the page to learn a
 * nonce.
 *
 * A nonce is "<t>.<mac>": t, the monotonic clock in microseconds when the
 * page was rendered, as 16 hex digits, and mac, HMAC-SHA256 (OpenSSL) over
 * a fixed label, the page's context (the glue binds it to the virtual host
 * and the URL path of the page) and t, keyed with the statistics segment's
 * control key (llmgw_stats_control_key), as 64 hex digits. Every child of
 * every generation shares the segment and its key, so any child verifies a
 * nonce any other made, graceful restarts included, with nothing stored
 * per page; CLOCK_MONOTONIC is one clock for every process of the host.
 * A nonce is accepted for LLMGW_CONTROL_NONCE_TTL after its page was
 * rendered, as often as it is sent (like balancer-manager's); a stopped
 * and started httpd has a new segment, so a new key.
 *
 * Pure functions over the segment's header; any process, any thread.
 */
#ifndef LLMGW_CONTROL_H
#define LLMGW_CONTROL_H

#include "llmgw.h"

/** How long a page's nonce is accepted. */
#define LLMGW_CONTROL_NONCE_TTL apr_time_from_sec(600)
/** Characters of a nonce: 16 hex digits, '.', 64 hex digits. */
#define LLMGW_CONTROL_NONCE_LEN 81

/**
 * A nonce for a page rendered now.
 * @param stats    the statistics segment (its control key)
 * @param context  what the nonce is valid for (the glue: vhost and page path)
 * @param mono     now, CLOCK_MONOTONIC in microseconds (llmgw_stats_time_now().mono)
 * @param nonce    receives LLMGW_CONTROL_NONCE_LEN characters from @p p
 * @return APR_SUCCESS; APR_EINVAL when @p stats is not a segment of ours;
 *         APR_EGENERAL when OpenSSL's HMAC fails
 */
apr_status_t llmgw_control_nonce(apr_pool_t *p, const void *stats, const char *context,
                                 apr_time_t mono, const char **nonce);

/**
 * Check a nonce a POST carried, in constant time for its MAC.
 * @param p    scratch (the request's pool)
 * @param ttl  how old it may be (LLMGW_CONTROL_NONCE_TTL)
 * @return APR_SUCCESS; APR_ENOENT when @p nonce is NULL or empty; APR_EINVAL
 *         when it is malformed, was made for another context or with another
 *         key (forged, or from before httpd was restarted), or @p stats is
 *         not ours; APR_TIMEUP when it is older than @p ttl or from the future
 *         (more than a second ahead, so never made by this host's clock)
 */
apr_status_t llmgw_control_nonce_check(apr_pool_t *p, const void *stats, const char *context,
                                       const char *nonce, apr_time_t mono, apr_interval_time_t ttl);

/** What a control POST asks for. */
typedef enum {
    LLMGW_CONTROL_NONE = 0, /**< not an action */
    LLMGW_CONTROL_DRAIN,    /**< take the backend out of rotation */
    LLMGW_CONTROL_ENABLE    /**< put it back */
} llmgw_control_action_e;

/** "drain" and "enable" (exactly); LLMGW_CONTROL_NONE for anything else and NULL. */
llmgw_control_action_e llmgw_control_action(const char *name);

#endif /* LLMGW_CONTROL_H */
