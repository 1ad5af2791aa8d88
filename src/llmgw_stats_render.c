/*
 * The renderers of a statistics snapshot (llmgw_stats_snapshot): JSON,
 * Prometheus text exposition 0.0.4, the HTML page (and its table for
 * mod_status's /server-status), and mod_status's `?auto` lines. They read
 * only the snapshot's plain copies, never the segment, and allocate from the
 * caller's pool (the status request's).
 */
#include <stdarg.h>
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "llmgw_config.h"
#include "llmgw_json.h"
#include "llmgw_stats_render.h"

static const char *kind_name(int kind)
{
    return kind >= 0 && kind < LLMGW_BACKEND_TYPE_COUNT
               ? llmgw_backend_type_name((llmgw_backend_type_e)kind)
               : "unknown";
}

/* Cooldown left at monotonic time @p now, 0 when not cooling or already expired. */
static apr_interval_time_t cooldown_left(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->cooldown_until > now ? v->cooldown_until - now : 0;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static json_t *json_time_or_null(apr_time_t t)
{
    return t ? json_real((double)t / APR_USEC_PER_SEC) : json_null();
}

static json_t *json_ms_or_null(apr_uint32_t us)
{
    return us ? json_real((double)us / 1000.0) : json_null();
}

static json_t *json_count(apr_uint64_t n)
{
    /* json_int_t is long long; a counter never gets near 2^63, but clamp anyway. */
    return json_integer(n > (apr_uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)n);
}

/* Both counters stop at LLMGW_TOKENS_MAX, and so does their sum. */
static apr_uint64_t tokens_total(const llmgw_stats_view_t *v)
{
    apr_uint64_t t = v->prompt_tokens + v->completion_tokens;
    return t > (apr_uint64_t)LLMGW_TOKENS_MAX ? (apr_uint64_t)LLMGW_TOKENS_MAX : t;
}

static json_t *view_json(const llmgw_stats_view_t *v, apr_time_t now)
{
    json_t *o = json_object(), *errors = json_object(), *tokens = json_object();
    int e;

    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
        json_object_set_new(errors, llmgw_stats_err_name((llmgw_stats_err_e)e),
                            json_count(v->errors[e]));
    json_object_set_new(tokens, "prompt", json_count(v->prompt_tokens));
    json_object_set_new(tokens, "completion", json_count(v->completion_tokens));
    json_object_set_new(tokens, "total", json_count(tokens_total(v)));
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "type", json_string(kind_name(v->kind)));
    json_object_set_new(o, "slot", json_integer(v->slot));
    json_object_set_new(o, "state", json_string(llmgw_stats_health_name(v->health)));
    json_object_set_new(o, "drained", json_boolean(v->drained));
    json_object_set_new(o, "requests", json_count(v->requests));
    json_object_set_new(o, "successes", json_count(v->successes));
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "errors_total", json_count(llmgw_stats_view_errors(v)));
    json_object_set_new(o, "aborted", json_count(v->aborted));
    json_object_set_new(o, "retries", json_count(v->retries));
    json_object_set_new(o, "fallbacks", json_count(v->fallbacks));
    json_object_set_new(o, "inflight", json_integer(v->inflight));
    json_object_set_new(o, "error_rate", json_real(llmgw_stats_view_error_rate(v)));
    json_object_set_new(o, "latency_ms", json_ms_or_null(v->latency_ewma_us));
    json_object_set_new(o, "ttfb_ms", json_ms_or_null(v->ttfb_ewma_us));
    json_object_set_new(o, "latency_samples", json_integer(v->latency_samples));
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "consecutive_failures", json_integer(v->consecutive_failures));
    json_object_set_new(o, "cooldown_remaining_ms",
                        json_integer((json_int_t)(cooldown_left(v, now) / 1000)));
    json_object_set_new(o, "last_success", json_time_or_null(v->last_success));
    json_object_set_new(o, "last_failure", json_time_or_null(v->last_failure));
    return o;
}

const char *llmgw_stats_json(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len)
{
    json_t *root = json_object(), *list = json_array();
    const char *text;
    int i;

    for (i = 0; i < snap->nelts; i++)
        json_array_append_new(list, view_json(&snap->items[i], snap->now.mono));
    json_object_set_new(root, "generation", json_integer(snap->generation));
    json_object_set_new(root, "created", json_time_or_null(snap->created));
    json_object_set_new(root, "time", json_time_or_null(snap->now.wall));
    json_object_set_new(root, "capacity", json_integer(snap->capacity));
    json_object_set_new(root, "retired", json_integer(snap->retired));
    json_object_set_new(root, "backends", list);
    if (page && page->nonce)
        json_object_set_new(
            root, "control",
            json_pack("{s:s,s:[s,s]}", "nonce", page->nonce, "actions", "drain", "enable"));
    text = llmgw_json_dump(p, root, len);
    json_decref(root);
    return text;
}

/* ------------------------------------------------------------------ */
/* Text building for the Prometheus and HTML renderers                 */

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts; /* const char *, joined at the end */
} text_t;

static void text_init(text_t *t, apr_pool_t *p)
{
    t->p = p;
    t->parts = apr_array_make(p, 256, sizeof(const char *));
}

static void text_add(text_t *t, const char *s)
{
    APR_ARRAY_PUSH(t->parts, const char *) = s;
}

static void text_addf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_addf(text_t *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    text_add(t, apr_pvsprintf(t->p, fmt, ap));
    va_end(ap);
}

static const char *text_done(text_t *t, apr_size_t *len)
{
    const char *s = apr_array_pstrcat(t->p, t->parts, 0);

    if (len)
        *len = strlen(s);
    return s;
}

/* ------------------------------------------------------------------ */
/* Prometheus text exposition 0.0.4                                    */

/* A label value: backslash, double quote and line feed are escaped. */
static const char *prom_label(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 1), *o = out;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        }
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

typedef enum { PROM_COUNTER, PROM_GAUGE } prom_type_e;

static void prom_family(text_t *t, const char *name, prom_type_e type, const char *help)
{
    text_addf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
              type == PROM_COUNTER ? "counter" : "gauge");
}

/* One integer-valued sample per backend, for every backend of the snapshot (now: monotonic). */
typedef apr_uint64_t (*prom_value_fn)(const llmgw_stats_view_t *v, apr_time_t now);

static void prom_per_backend(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels,
                             const char *name, prom_value_fn fn)
{
    int i;

    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "%s{backend=\"%s\"} %" APR_UINT64_T_FMT "\n", name, labels[i],
                  fn(&snap->items[i], snap->now.mono));
}

static apr_uint64_t pv_requests(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->requests;
}

static apr_uint64_t pv_successes(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->successes;
}

static apr_uint64_t pv_aborted(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->aborted;
}

static apr_uint64_t pv_retries(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->retries;
}

static apr_uint64_t pv_fallbacks(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->fallbacks;
}

static apr_uint64_t pv_inflight(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->inflight;
}

static apr_uint64_t pv_cooldown(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->health != LLMGW_STATS_UP;
}

static apr_uint64_t pv_consecutive(const llmgw_stats_view_t *v, apr_time_t now)
{
    return v->consecutive_failures;
}

static apr_uint64_t pv_drained(const llmgw_stats_view_t *v, apr_time_t now)
{
    return (apr_uint64_t)v->drained;
}

/* Microseconds as seconds, exactly (no binary floating point). */
static const char *prom_seconds(apr_pool_t *p, apr_uint64_t us)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT, us / 1000000,
                        us % 1000000);
}

static void prom_counters(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels)
{
    int i, e;

    prom_family(t, "llmgw_requests_total", PROM_COUNTER,
                "Upstream attempts started (for a pool: requests routed to it).");
    prom_per_backend(t, snap, labels, "llmgw_requests_total", pv_requests);
    prom_family(t, "llmgw_successes_total", PROM_COUNTER, "Attempts that succeeded.");
    prom_per_backend(t, snap, labels, "llmgw_successes_total", pv_successes);
    prom_family(t, "llmgw_errors_total", PROM_COUNTER, "Failed attempts by error class.");
    for (i = 0; i < snap->nelts; i++) {
        for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
            text_addf(t, "llmgw_errors_total{backend=\"%s\",class=\"%s\"} %" APR_UINT64_T_FMT "\n",
                      labels[i], llmgw_stats_err_name((llmgw_stats_err_e)e),
                      snap->items[i].errors[e]);
    }
    prom_family(t, "llmgw_aborted_total", PROM_COUNTER,
                "Attempts ended by the client or the gateway, not the upstream.");
    prom_per_backend(t, snap, labels, "llmgw_aborted_total", pv_aborted);
    prom_family(t, "llmgw_retries_total", PROM_COUNTER, "Attempts repeated on the same backend.");
    prom_per_backend(t, snap, labels, "llmgw_retries_total", pv_retries);
    prom_family(t, "llmgw_fallbacks_total", PROM_COUNTER,
                "Times a request moved on to the next pool member.");
    prom_per_backend(t, snap, labels, "llmgw_fallbacks_total", pv_fallbacks);
    prom_family(t, "llmgw_tokens_total", PROM_COUNTER, "Tokens used by successful attempts.");
    for (i = 0; i < snap->nelts; i++) {
        const llmgw_stats_view_t *v = &snap->items[i];
        text_addf(t, "llmgw_tokens_total{backend=\"%s\",kind=\"prompt\"} %" APR_UINT64_T_FMT "\n",
                  labels[i], v->prompt_tokens);
        text_addf(t,
                  "llmgw_tokens_total{backend=\"%s\",kind=\"completion\"} %" APR_UINT64_T_FMT "\n",
                  labels[i], v->completion_tokens);
    }
}

static void prom_gauges(text_t *t, const llmgw_stats_snapshot_t *snap, const char **labels)
{
    int i;

    prom_family(t, "llmgw_inflight", PROM_GAUGE, "Attempts in progress.");
    prom_per_backend(t, snap, labels, "llmgw_inflight", pv_inflight);
    prom_family(t, "llmgw_latency_ewma_seconds", PROM_GAUGE,
                "Moving average (alpha 1/8) of successful attempt latency; 0 before any sample.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_latency_ewma_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, snap->items[i].latency_ewma_us));
    prom_family(t, "llmgw_ttfb_ewma_seconds", PROM_GAUGE,
                "Moving average (alpha 1/8) of time to first byte; 0 before any sample.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_ttfb_ewma_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, snap->items[i].ttfb_ewma_us));
    prom_family(t, "llmgw_cooldown", PROM_GAUGE,
                "1 while the backend is skipped by the circuit breaker (cooling or probing).");
    prom_per_backend(t, snap, labels, "llmgw_cooldown", pv_cooldown);
    prom_family(t, "llmgw_cooldown_remaining_seconds", PROM_GAUGE,
                "Time left in the current cooldown.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_cooldown_remaining_seconds{backend=\"%s\"} %s\n", labels[i],
                  prom_seconds(t->p, (apr_uint64_t)cooldown_left(&snap->items[i], snap->now.mono)));
    prom_family(t, "llmgw_consecutive_failures", PROM_GAUGE,
                "Retryable failures since the last success.");
    prom_per_backend(t, snap, labels, "llmgw_consecutive_failures", pv_consecutive);
    prom_family(t, "llmgw_drained", PROM_GAUGE,
                "1 while an operator has taken the backend out of rotation (status page).");
    prom_per_backend(t, snap, labels, "llmgw_drained", pv_drained);
    prom_family(t, "llmgw_backend_info", PROM_GAUGE, "Backend type, as a label; always 1.");
    for (i = 0; i < snap->nelts; i++)
        text_addf(t, "llmgw_backend_info{backend=\"%s\",type=\"%s\"} 1\n", labels[i],
                  prom_label(t->p, kind_name(snap->items[i].kind)));
    prom_family(t, "llmgw_stats_created_seconds", PROM_GAUGE,
                "Unix time the statistics segment was created (counters start there).");
    text_addf(t, "llmgw_stats_created_seconds %s\n",
              prom_seconds(t->p, (apr_uint64_t)(snap->created > 0 ? snap->created : 0)));
}

const char *llmgw_stats_prometheus(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len)
{
    const char **labels = apr_palloc(p, sizeof(const char *) * (snap->nelts + 1));
    text_t t;
    int i;

    for (i = 0; i < snap->nelts; i++)
        labels[i] = prom_label(p, snap->items[i].name);
    text_init(&t, p);
    prom_counters(&t, snap, labels);
    prom_gauges(&t, snap, labels);
    return text_done(&t, len);
}

/* ------------------------------------------------------------------ */
/* HTML                                                                */

static const char *html_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out;

    for (c = s; *c; c++)
        n += strchr("<>&\"'", *c) ? 6 : 1;
    out = apr_palloc(p, n + 1);
    out[0] = '\0';
    for (n = 0, c = s; *c; c++) {
        const char *rep = *c == '<'    ? "&lt;"
                          : *c == '>'  ? "&gt;"
                          : *c == '&'  ? "&amp;"
                          : *c == '"'  ? "&quot;"
                          : *c == '\'' ? "&#39;"
                                       : NULL;
        if (rep) {
            memcpy(out + n, rep, strlen(rep));
            n += strlen(rep);
        }
        else {
            out[n++] = *c;
        }
    }
    out[n] = '\0';
    return out;
}

static const char *html_ms(apr_pool_t *p, apr_uint32_t us)
{
    return us ? apr_psprintf(p, "%.1f ms", (double)us / 1000.0) : "&ndash;";
}

static const char *html_time(apr_pool_t *p, apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN];

    if (!t || apr_rfc822_date(buf, t) != APR_SUCCESS)
        return "&ndash;";
    return apr_pstrdup(p, buf);
}

static const char *html_cooldown(apr_pool_t *p, const llmgw_stats_view_t *v, apr_time_t now)
{
    apr_interval_time_t left = cooldown_left(v, now);

    if (v->health == LLMGW_STATS_UP)
        return "&ndash;";
    if (v->health == LLMGW_STATS_PROBING)
        return "probe running";
    if (left == 0)
        return "over: next request probes";
    return apr_psprintf(p, "%.1f s", (double)left / APR_USEC_PER_SEC);
}

static const char *html_errors(apr_pool_t *p, const llmgw_stats_view_t *v)
{
    text_t t;
    int e;

    text_init(&t, p);
    text_addf(&t, "%" APR_UINT64_T_FMT, llmgw_stats_view_errors(v));
    for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++) {
        if (v->errors[e])
            text_addf(&t, " <small>%s:%" APR_UINT64_T_FMT "</small>",
                      llmgw_stats_err_name((llmgw_stats_err_e)e), v->errors[e]);
    }
    return text_done(&t, NULL);
}

/* The State cell: the breaker's state, and whether an operator drained it. */
static const char *html_state(apr_pool_t *p, const llmgw_stats_view_t *v)
{
    const char *h = llmgw_stats_health_name(v->health);

    return apr_pstrcat(p, "<span class=\"state ", h, "\">", h, "</span>",
                       v->drained ? " <span class=\"state drained\">drained</span>" : "", NULL);
}

/*
 * The Action cell: one form per backend posting to the page itself (no
 * action attribute: the page's URL, query included), so an operator's click
 * is a POST with the nonce of the page it was made on.
 */
static const char *html_action(apr_pool_t *p, const llmgw_stats_view_t *v, const char *nonce)
{
    const char *name = html_escape(p, v->name);

    return apr_pstrcat(p,
                       "<td class=\"act\"><form method=\"post\">"
                       "<input type=\"hidden\" name=\"nonce\" value=\"",
                       html_escape(p, nonce), "\"><input type=\"hidden\" name=\"backend\" value=\"",
                       name, "\"><button type=\"submit\" name=\"action\" value=\"",
                       v->drained ? "enable" : "drain", "\" title=\"",
                       v->drained ? "Put " : "Take ", name,
                       v->drained ? " back into rotation" : " out of rotation", "\">",
                       v->drained ? "Enable" : "Drain", "</button></form></td>", NULL);
}

static void html_row(text_t *t, const llmgw_stats_view_t *v, apr_time_t now, const char *nonce)
{
    text_addf(t,
              "<tr data-backend=\"%s\"><td class=\"name\">%s</td><td>%s</td>"
              "<td class=\"st\">%s</td>%s"
              "<td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td><td>%s</td>"
              "<td>%.1f %%</td><td>%u</td><td>%s</td><td>%s</td>"
              "<td>%" APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT "</td>"
              "<td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td>"
              "<td>%u</td><td>%s</td><td>%s</td></tr>\n",
              html_escape(t->p, v->name), html_escape(t->p, v->name),
              html_escape(t->p, kind_name(v->kind)), html_state(t->p, v),
              nonce ? html_action(t->p, v, nonce) : "", v->requests, v->successes,
              html_errors(t->p, v), 100.0 * llmgw_stats_view_error_rate(v), v->inflight,
              html_ms(t->p, v->latency_ewma_us), html_ms(t->p, v->ttfb_ewma_us), v->prompt_tokens,
              v->completion_tokens, v->retries, v->fallbacks, v->consecutive_failures,
              html_cooldown(t->p, v, now), html_time(t->p, v->last_failure));
}

/*
 * Narrow screens: the viewport is the device's, the page never scrolls
 * sideways (the table does, inside its box, with the name column stuck to
 * the left), and buttons are big enough for a finger. The empty icon keeps
 * browsers from asking for /favicon.ico (a 404 in the console).
 */
static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<title>mod_llmgw status</title>\n<style>\n"
    "body{font-family:system-ui,sans-serif;margin:1em;color:#222}\n"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.2em}\n"
    ".scroll{overflow-x:auto;max-width:100%}\n"
    "table{border-collapse:collapse}\n"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}\n"
    "th{background:#eee}\n"
    "td.name{text-align:left;font-family:monospace;position:sticky;left:0;background:#fff}\n"
    "th.name{text-align:left;position:sticky;left:0}\n"
    "td.st,td.act{text-align:left}form{margin:0}\n"
    "button{font:inherit;padding:.3em .9em;min-height:2.4em;min-width:5em}\n"
    ".state{padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:bold}\n"
    ".up{background:#2e7d32}.cooldown{background:#c62828}.probing{background:#ef6c00}\n"
    ".drained{background:#546e7a}\n"
    "nav a{margin-right:.8em}small{color:#666}\n"
    "</style></head><body>\n<h1>mod_llmgw status</h1>\n";

static void html_columns(text_t *t, int control)
{
    text_add(t, "<div class=\"scroll\"><table>\n<tr><th class=\"name\">Backend</th><th>Type</th>"
                "<th>State</th>");
    if (control)
        text_add(t, "<th>Action</th>");
    text_add(t, "<th>Requests</th><th>Successes</th><th>Errors</th><th>Error rate</th>"
                "<th>In flight</th><th>Latency</th><th>TTFB</th>"
                "<th>Tokens (prompt / completion)</th><th>Retries</th><th>Fallbacks</th>"
                "<th>Consecutive failures</th><th>Cooldown</th><th>Last failure</th></tr>\n");
}

/* The backends table; with a nonce, an Action column of drain / enable forms. */
static void html_backends(text_t *t, const llmgw_stats_snapshot_t *snap, const char *nonce)
{
    int i;

    if (snap->nelts == 0) {
        text_add(t, "<p>No backends are configured.</p>\n");
        return;
    }
    html_columns(t, nonce != NULL);
    for (i = 0; i < snap->nelts; i++)
        html_row(t, &snap->items[i], snap->now.mono, nonce);
    text_add(t, "</table></div>\n");
}

/*
 * The page's sections, in order. Each renders one heading and what is
 * under it; a new section (per-key usage, say) is one more function here.
 */
typedef void (*html_section_fn)(text_t *t, const llmgw_stats_snapshot_t *snap,
                                const llmgw_stats_page_t *page);

static void section_backends(text_t *t, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page)
{
    text_add(t, "<h2>Backends</h2>\n");
    html_backends(t, snap, page ? page->nonce : NULL);
    text_add(t, "<p><small>Latency and TTFB are moving averages of successful attempts.");
    if (page && page->nonce)
        text_add(t, " A drained backend finishes what it is doing and gets no new requests "
                    "until it is enabled again; pools skip it, a route to it alone answers "
                    "503.");
    text_add(t, "</small></p>\n");
}

static const html_section_fn html_sections[] = {section_backends};

/* Links that set the page's reload period (the glue turns ?refresh=N into a Refresh header). */
static void html_refresh_nav(text_t *t, int refresh)
{
    static const int periods[] = {5, 30};
    apr_size_t i;

    text_add(t, "<nav>Refresh: ");
    for (i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        if (refresh == periods[i])
            text_addf(t, "<strong>every %d s</strong> ", periods[i]);
        else
            text_addf(t, "<a href=\"?refresh=%d\">every %d s</a> ", periods[i], periods[i]);
    }
    if (refresh > 0)
        text_add(t, "<a href=\"?\">off</a>");
    else
        text_add(t, "<strong>off</strong>");
    if (refresh > 0 && refresh != periods[0] && refresh != periods[1])
        text_addf(t, " (now every %d s)", refresh);
    text_add(t, "</nav>\n");
}

const char *llmgw_stats_html(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                             const llmgw_stats_page_t *page, apr_size_t *len)
{
    text_t t;
    apr_size_t i;

    text_init(&t, p);
    text_add(&t, html_head);
    text_addf(&t,
              "<p>Now: %s. Counters since %s (configuration generation %u; "
              "%d of %d slots used, %d retired).</p>\n",
              html_time(p, snap->now.wall), html_time(p, snap->created), snap->generation,
              snap->nelts, snap->capacity, snap->retired);
    html_refresh_nav(&t, page ? page->refresh : 0);
    for (i = 0; i < sizeof(html_sections) / sizeof(html_sections[0]); i++)
        html_sections[i](&t, snap, page);
    text_add(&t, "<p><small>Also as <code>?format=json</code>, <code>?format=prometheus</code> "
                 "and <code>?auto</code>.</small></p>\n</body></html>\n");
    return text_done(&t, len);
}

const char *llmgw_stats_html_table(apr_pool_t *p, const llmgw_stats_snapshot_t *snap,
                                   apr_size_t *len)
{
    text_t t;

    text_init(&t, p);
    html_backends(&t, snap, NULL);
    return text_done(&t, len);
}

/* ------------------------------------------------------------------ */
/* "Key: value" lines (mod_status's ?auto)                             */

/* A name on one line: control characters become '?'. */
static const char *auto_value(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *c;

    for (c = out; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    }
    return out;
}

static const char *const auto_err_keys[LLMGW_STATS_ERR_COUNT] = {
    "Errors4xx", "Errors429", "Errors5xx", "ErrorsTimeout", "ErrorsConnect", "ErrorsProtocol"};

static void auto_u64(text_t *t, int i, const char *key, apr_uint64_t v)
{
    text_addf(t, "LLMGatewayBackend[%d]%s: %" APR_UINT64_T_FMT "\n", i, key, v);
}

const char *llmgw_stats_auto(apr_pool_t *p, const llmgw_stats_snapshot_t *snap, apr_size_t *len)
{
    text_t t;
    int i, e;

    text_init(&t, p);
    text_addf(&t, "LLMGatewayBackends: %d\n", snap->nelts);
    for (i = 0; i < snap->nelts; i++) {
        const llmgw_stats_view_t *v = &snap->items[i];

        text_addf(&t, "LLMGatewayBackend[%d]Name: %s\n", i, auto_value(p, v->name));
        text_addf(&t, "LLMGatewayBackend[%d]Type: %s\n", i, auto_value(p, kind_name(v->kind)));
        text_addf(&t, "LLMGatewayBackend[%d]State: %s\n", i, llmgw_stats_health_name(v->health));
        auto_u64(&t, i, "Drained", (apr_uint64_t)v->drained);
        auto_u64(&t, i, "Requests", v->requests);
        auto_u64(&t, i, "Successes", v->successes);
        auto_u64(&t, i, "Errors", llmgw_stats_view_errors(v));
        for (e = 0; e < LLMGW_STATS_ERR_COUNT; e++)
            auto_u64(&t, i, auto_err_keys[e], v->errors[e]);
        auto_u64(&t, i, "Aborted", v->aborted);
        auto_u64(&t, i, "Retries", v->retries);
        auto_u64(&t, i, "Fallbacks", v->fallbacks);
        auto_u64(&t, i, "InFlight", v->inflight);
        text_addf(&t, "LLMGatewayBackend[%d]LatencyMs: %.3f\n", i,
                  (double)v->latency_ewma_us / 1000.0);
        text_addf(&t, "LLMGatewayBackend[%d]TTFBMs: %.3f\n", i, (double)v->ttfb_ewma_us / 1000.0);
        auto_u64(&t, i, "PromptTokens", v->prompt_tokens);
        auto_u64(&t, i, "CompletionTokens", v->completion_tokens);
        auto_u64(&t, i, "ConsecutiveFailures", v->consecutive_failures);
        auto_u64(&t, i, "CooldownRemainingMs",
                 (apr_uint64_t)(cooldown_left(v, snap->now.mono) / 1000));
    }
    return text_done(&t, len);
}
