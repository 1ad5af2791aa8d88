/**
 * @file llmgw_stats_render.h
 * @brief The statistics snapshot as people and tools read it: JSON,
 *        Prometheus text, an HTML page (and its table for mod_status), and
 *        mod_status's `?auto` lines.
 *
 * Renderers are pure: a snapshot (llmgw_stats_snapshot, a plain copy of the
 * slots) in, text from the caller's pool out. They never read the segment,
 * so the status page's formats are tested without shared memory.
 */
#ifndef LLMGW_STATS_RENDER_H
#define LLMGW_STATS_RENDER_H

#include "llmgw.h"
#include "llmgw_stats.h"

/**
 * What a page adds to the snapshot it shows; a NULL page is a read-only
 * page without refresh.
 */
typedef struct {
    /** The nonce the control forms carry (llmgw_control.h); NULL: no
     *  controls, the location has no `LLMGatewayStatusControl on`. */
    const char *nonce;
    /** Seconds between reloads the page asks for (the glue sends the
     *  Refresh header); 0: none. */
    int refresh;
} llmgw_stats_page_t;

/**
 * The snapshot as JSON (compact), from @p p:
 * {"generation":N,"created":unix_s,"time":unix_s,"capacity":N,"retired":N,
 *  "backends":[{"name","type","slot","state","drained","requests","successes",
 *   "errors":{"4xx",...},"errors_total","aborted","retries","fallbacks",
 *   "inflight","error_rate","latency_ms","ttfb_ms","latency_samples",
 *   "tokens":{"prompt","completion","total"},"consecutive_failures",
 *   "cooldown_remaining_ms","last_success","last_failure"}, ...]}
 * latency_ms/ttfb_ms/last_* are null when there is no value yet. With a
 * @p page that has a nonce, also "control":{"nonce":..., "actions":["drain",
 * "enable"]}, so that a script can drain a member as the page's forms do.
 */
const char *llmgw_stats_json(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len);

/**
 * Prometheus text exposition format 0.0.4 (serve as
 * "text/plain; version=0.0.4; charset=utf-8"), from @p p.
 */
const char *llmgw_stats_prometheus(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len);

/**
 * A self-contained HTML page (UTF-8) for people, from @p p: usable from a
 * phone's width up (the wide table scrolls inside its box), with a drain /
 * enable form per backend when @p page has a nonce. The forms post to the
 * page's own URL (no action attribute), so its query (?refresh=N) is kept.
 * The page is made of sections (the backends table first) so that others
 * can be added after it.
 */
const char *llmgw_stats_html(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len);

/**
 * The backends table alone, an HTML fragment without controls: the
 * gateway's section of httpd's /server-status (mod_status's status_hook).
 */
const char *llmgw_stats_html_table(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len);

/**
 * The snapshot as plain "Key: value" lines, the form of mod_status's
 * `?auto` (and mod_proxy's status hook, whose "ProxyBalancer[i]Worker[j]..."
 * keys this copies): "LLMGatewayBackends: N", then for the i-th backend
 * "LLMGatewayBackend[i]Name: ...", "...Type", "...State", "...Drained" (0/1),
 * "...Requests", "...Successes", "...Errors", "...Errors4xx" (and 429, 5xx,
 * Timeout, Connect, Protocol), "...Aborted", "...Retries", "...Fallbacks",
 * "...InFlight", "...LatencyMs", "...TTFBMs" (0 before any sample),
 * "...PromptTokens", "...CompletionTokens", "...ConsecutiveFailures",
 * "...CooldownRemainingMs". Names are printed with control characters
 * replaced, so a line is always one key.
 */
const char *llmgw_stats_auto(apr_pool_t *p, const llmgw_stats_snapshot_t *snap, apr_size_t *len);

#endif /* LLMGW_STATS_RENDER_H */
