/*
 * Client-facing errors and the classification of upstream outcomes.
 *
 * Everything here is pure (no I/O, no global state) and thread-safe: the
 * results are either static strings or allocated from the caller's pool.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <apr_date.h>
#include <apr_strings.h>
#include "llmgw_error.h"
#include "llmgw_json.h"

/* ------------------------------------------------------------------ */
/* Status texts                                                        */

static const char *own_error_text(apr_status_t rv)
{
    switch (rv) {
    case LLMGW_EBADREQ:
        return "llmgw: invalid client request";
    case LLMGW_EUNSUPPORTED:
        return "llmgw: not supported by the backend";
    case LLMGW_EUPSTREAM:
        return "llmgw: unintelligible upstream response";
    case LLMGW_ECONFIG:
        return "llmgw: invalid configuration";
    case LLMGW_ESTREAM:
        return "llmgw: upstream stream ended early";
    case LLMGW_ECLIENTGONE:
        return "llmgw: client went away";
    case LLMGW_ENOMODEL:
        return "llmgw: no backend serves the requested model";
    case LLMGW_EMALFORMED:
        return "llmgw: malformed upstream stream event";
    default:
        return NULL;
    }
}

const char *llmgw_strerror(apr_status_t rv, char *buf, apr_size_t bufsize)
{
    const char *text = own_error_text(rv);

    if (!text)
        return apr_strerror(rv, buf, bufsize);
    /* apr_cpystrn leaves a zero-size buffer untouched: hand out the constant. */
    if (bufsize == 0)
        return text;
    apr_cpystrn(buf, text, bufsize);
    return buf;
}

/* ------------------------------------------------------------------ */
/* The OpenAI-shaped error body                                        */

const char *llmgw_error_type_for_status(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        break;
    }
    /* 400, 404, 405, 413, 415, 422 and the rest of 4xx: the request is at fault. */
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return "server_error";
}

llmgw_error_t *llmgw_error_make(apr_pool_t *p, int status, const char *type, const char *code,
                                const char *param, const char *fmt, ...)
{
    llmgw_error_t *e = apr_pcalloc(p, sizeof(*e));
    va_list ap;

    e->status = status;
    /* Copies, so the error may outlive shorter-lived argument strings. */
    e->type = apr_pstrdup(p, type ? type : llmgw_error_type_for_status(status));
    e->code = code ? apr_pstrdup(p, code) : NULL;
    e->param = param ? apr_pstrdup(p, param) : NULL;
    if (fmt) {
        va_start(ap, fmt);
        e->message = apr_pvsprintf(p, fmt, ap);
        va_end(ap);
    }
    else {
        e->message = apr_psprintf(p, "request failed with HTTP status %d", status);
    }
    return e;
}

int llmgw_error_status_passable(int status)
{
    switch (status) {
    case 400:
    case 401:
    case 403:
    case 404:
    case 408:
    case 409:
    case 413:
    case 422:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return 1;
    default:
        return 0;
    }
}

/* Types that say "the server failed", wrong on a 4xx. */
static int is_server_type(const char *type)
{
    return type && (strcmp(type, "server_error") == 0 || strcmp(type, "api_error") == 0);
}

/*
 *   upstream status           client sees
 *   passable (2.5, 9.2)       the same status; a 5xx typed server_error, a
 *                             4xx typed as the upstream said unless that
 *                             was a server type (then the status's default)
 *   498 529 (overloaded)      503 server_error upstream_unavailable
 *   anything else             502 server_error bad_gateway
 * The message (the upstream's, already clipped and safe) is kept.
 */
llmgw_error_t *llmgw_error_from_upstream(apr_pool_t *p, llmgw_error_t *e)
{
    int status = e->status;
    const char *type = e->type, *code = e->code;
    llmgw_error_t *out;

    if (!llmgw_error_status_passable(status)) {
        int overload = status == 498 || status == 529;
        status = overload ? 503 : 502;
        code = overload ? "upstream_unavailable" : "bad_gateway";
    }
    if (status >= 500)
        type = "server_error";
    else if (is_server_type(type) || !type)
        type = llmgw_error_type_for_status(status);
    if (status == e->status && code == e->code && e->type && strcmp(type, e->type) == 0)
        return e;
    out = apr_pmemdup(p, e, sizeof(*e));
    out->status = status;
    out->type = type;
    out->code = code;
    return out;
}

/* Length of the valid UTF-8 sequence at @p s (at most @p n bytes), 0 if invalid. */
static apr_size_t utf8_seq_len(const unsigned char *s, apr_size_t n)
{
    unsigned char c = s[0];
    apr_size_t len, i;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    }
    else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Reject overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * jansson refuses strings that are not UTF-8, and messages may quote
 * upstream text: replace each invalid byte with U+FFFD rather than lose the
 * whole error body.
 */
static const char *utf8_sanitize(apr_pool_t *p, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    apr_size_t n = strlen(text), i = 0, o = 0, len;
    char *out;

    while (i < n && (len = utf8_seq_len(s + i, n - i)) != 0)
        i += len;
    if (i == n)
        return text;
    out = apr_palloc(p, 3 * n + 1); /* worst case: every byte becomes 3 */
    for (i = 0; i < n;) {
        len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    out[o] = '\0';
    return out;
}

const char *llmgw_error_json(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len)
{
    const char *type = e->type ? e->type : llmgw_error_type_for_status(e->status);
    const char *msg = utf8_sanitize(p, e->message ? e->message : "");
    const char *text;
    json_t *j;

    /* "s?" packs NULL as JSON null: param and code are always present. */
    j = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type",
                  utf8_sanitize(p, type), "param", e->param ? utf8_sanitize(p, e->param) : NULL,
                  "code", e->code ? utf8_sanitize(p, e->code) : NULL);
    if (!j)
        return NULL; /* only on allocation failure */
    text = llmgw_json_dump(p, j, len);
    json_decref(j);
    return text;
}

const char *llmgw_error_sse(apr_pool_t *p, const llmgw_error_t *e, apr_size_t *len)
{
    apr_size_t jlen;
    const char *json = llmgw_error_json(p, e, &jlen);
    char *out;

    if (!json)
        return NULL;
    /* Compact JSON escapes every newline, so the event stays one data line. */
    out = apr_palloc(p, jlen + sizeof("data: \n\n"));
    memcpy(out, "data: ", 6);
    memcpy(out + 6, json, jlen);
    memcpy(out + 6 + jlen, "\n\n", 3);
    if (len)
        *len = jlen + 8;
    return out;
}

/* ------------------------------------------------------------------ */
/* Classification of failed attempts                                  */

const char *llmgw_fail_name(apr_pool_t *p, llmgw_fail_e fail, int status)
{
    switch (fail) {
    case LLMGW_FAIL_NONE:
        return "none";
    case LLMGW_FAIL_CONNECT:
        return "connect";
    case LLMGW_FAIL_TIMEOUT:
        return "timeout";
    case LLMGW_FAIL_IDLE:
        return "idle_timeout";
    case LLMGW_FAIL_RESET:
        return "reset";
    case LLMGW_FAIL_HTTP:
        return apr_psprintf(p, "http_%d", status);
    case LLMGW_FAIL_PROTOCOL:
        return "protocol";
    case LLMGW_FAIL_STREAM:
        return "stream_incomplete";
    case LLMGW_FAIL_CLIENT_GONE:
        return "client_gone";
    case LLMGW_FAIL_INTERNAL:
        break;
    }
    return "internal";
}

/*
 * Upstream HTTP status -> action (providers.md 9.2, DESIGN.md 6):
 *
 *   status                          action     why
 *   408 409 429 498 500 502 503     RETRY      transient: timeout, conflict,
 *   504 529, any other 5xx                     rate limit, overload
 *   401 402 403                     FALLBACK   the gateway's credential or
 *                                              billing, not the client's fault
 *   404                             FALLBACK   another backend may serve the model
 *   400 413 422, any other 4xx      FINAL      the request fails everywhere
 *   anything else (1xx-3xx)         RETRY      not a valid answer: treated as
 *                                              a protocol failure
 *
 * Provider-specific refinements that need the body (quota 429s, 400s that
 * are really credential problems) are the translators' job.
 */
static llmgw_action_e http_action(int status)
{
    switch (status) {
    case 408:
    case 409:
    case 429:
    case 498:
        return LLMGW_ACTION_RETRY;
    case 401:
    case 402:
    case 403:
    case 404:
        return LLMGW_ACTION_FALLBACK;
    default:
        break;
    }
    if (status >= 400 && status < 500)
        return LLMGW_ACTION_FINAL;
    return LLMGW_ACTION_RETRY;
}

/*
 * Transport outcomes -> action:
 *
 *   CONNECT TIMEOUT IDLE RESET          RETRY   transient; nothing to blame
 *   PROTOCOL STREAM                     RETRY   whether anything already reached
 *                                               the client is the glue's call
 *   HTTP                                see http_action()
 *   CLIENT_GONE INTERNAL (and NONE)     FINAL   no upstream fault to retry
 */
llmgw_action_e llmgw_error_action(llmgw_fail_e fail, int status)
{
    switch (fail) {
    case LLMGW_FAIL_CONNECT:
    case LLMGW_FAIL_TIMEOUT:
    case LLMGW_FAIL_IDLE:
    case LLMGW_FAIL_RESET:
    case LLMGW_FAIL_PROTOCOL:
    case LLMGW_FAIL_STREAM:
        return LLMGW_ACTION_RETRY;
    case LLMGW_FAIL_HTTP:
        return http_action(status);
    default:
        return LLMGW_ACTION_FINAL;
    }
}

/* "<who> failed: <what>", a server_error of @p status with @p code. */
static llmgw_error_t *failed(apr_pool_t *p, int status, const char *code, const char *who,
                             const char *what)
{
    return llmgw_error_make(p, status, "server_error", code, NULL, "%s failed: %s", who, what);
}

static llmgw_error_t *exhausted_http(apr_pool_t *p, int status, const char *who)
{
    if (status == 429)
        return llmgw_error_make(p, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                                "%s was rate limited: upstream returned HTTP 429", who);
    if (status == 401 || status == 403)
        return llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                                "%s rejected the gateway's credentials: upstream returned HTTP %d",
                                who, status);
    if (status == 408)
        return failed(p, 504, "upstream_timeout", who, "upstream returned HTTP 408");
    if (status == 409)
        return llmgw_error_make(p, 409, NULL, NULL, NULL, "%s failed: upstream returned HTTP 409",
                                who);
    if (status >= 500 || status == 498)
        return llmgw_error_make(p, 503, "server_error", "upstream_unavailable", NULL,
                                "%s failed: upstream returned HTTP %d", who, status);
    return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                            "%s failed: upstream returned HTTP %d", who, status);
}

/*
 * Outcome -> what the client sees when every attempt failed
 * (providers.md 9.2, last column):
 *
 *   CONNECT RESET PROTOCOL STREAM   502 server_error           bad_gateway
 *   TIMEOUT IDLE, HTTP 408          504 server_error           upstream_timeout
 *   HTTP 429                        429 rate_limit_error       rate_limit_exceeded
 *   HTTP 401 403                    502 server_error           upstream_auth_failed
 *   HTTP 409                        409 invalid_request_error  null
 *   HTTP 498 and 5xx (incl. 529)    503 server_error           upstream_unavailable
 *   other HTTP                      502 server_error           bad_gateway
 *   INTERNAL CLIENT_GONE NONE       500 server_error           null
 */
static const struct {
    llmgw_fail_e fail;
    int status;
    const char *code;
    const char *what;
} exhausted_map[] = {
    {LLMGW_FAIL_CONNECT, 502, "bad_gateway", "could not connect"},
    {LLMGW_FAIL_RESET, 502, "bad_gateway", "connection reset"},
    {LLMGW_FAIL_PROTOCOL, 502, "bad_gateway", "malformed upstream response"},
    {LLMGW_FAIL_STREAM, 502, "bad_gateway", "upstream stream ended before it was complete"},
    {LLMGW_FAIL_TIMEOUT, 504, "upstream_timeout", "upstream timed out"},
    {LLMGW_FAIL_IDLE, 504, "upstream_timeout", "upstream stream went idle"},
};

llmgw_error_t *llmgw_error_exhausted(apr_pool_t *p, llmgw_fail_e fail, int status,
                                     const char *backend)
{
    const char *who = apr_psprintf(p, "backend \"%s\"", backend ? backend : "(none)");
    size_t i;

    if (fail == LLMGW_FAIL_HTTP)
        return exhausted_http(p, status, who);
    for (i = 0; i < sizeof(exhausted_map) / sizeof(exhausted_map[0]); i++)
        if (exhausted_map[i].fail == fail)
            return failed(p, exhausted_map[i].status, exhausted_map[i].code, who,
                          exhausted_map[i].what);
    return failed(p, 500, NULL, who, "internal error");
}

/* ------------------------------------------------------------------ */
/* Retry hints and durations                                           */

/* Durations past this are clamped: a century is "never" for a retry. */
#define MAX_DELAY_USEC ((apr_interval_time_t)100 * 365 * 24 * 3600 * APR_USEC_PER_SEC)

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* The digits of "123", "1.5", ".5" or "5.", as scan_decimal read them. */
typedef struct {
    uint64_t whole; /* stops growing once past the caller's limit */
    uint64_t frac;  /* the first nine fraction digits */
    uint64_t scale; /* 10 to the number of fraction digits in frac */
    int digits;     /* digits read in both parts */
    int inexact;    /* a nonzero fraction digit past the ninth was dropped */
    int big;        /* a whole-part digit came while whole was past @p max_whole */
} decimal_t;

/* Read an unsigned decimal at @p s into @p d; returns the first character after it. */
static const char *scan_decimal(const char *s, uint64_t max_whole, decimal_t *d)
{
    memset(d, 0, sizeof(*d));
    d->scale = 1;
    for (; *s >= '0' && *s <= '9'; s++, d->digits++) {
        if (d->whole <= max_whole)
            d->whole = d->whole * 10 + (uint64_t)(*s - '0');
        else
            d->big = 1;
    }
    if (*s != '.')
        return s;
    for (s++; *s >= '0' && *s <= '9'; s++, d->digits++) {
        if (d->scale < 1000000000) {
            d->frac = d->frac * 10 + (uint64_t)(*s - '0');
            d->scale *= 10;
        }
        else if (*s != '0') {
            d->inexact = 1;
        }
    }
    return s;
}

/*
 * A non-negative decimal "123", "1.5", ".5" or "5." surrounded by optional
 * whitespace, times @p unit_usec, in integer arithmetic (a double would turn
 * "5.289" into 5289001 us), rounded up to whole microseconds so a retry
 * never comes early. -1 for anything else (signs and exponents too).
 */
static apr_interval_time_t parse_decimal(const char *s, uint64_t unit_usec)
{
    const uint64_t max_whole = (uint64_t)MAX_DELAY_USEC / unit_usec;
    decimal_t d;
    uint64_t usec;

    s = scan_decimal(skip_ows(s), max_whole, &d);
    if (d.digits == 0 || *skip_ows(s) != '\0')
        return -1;
    if (d.whole > max_whole)
        return MAX_DELAY_USEC;
    /* frac < scale <= 1e9 and unit_usec <= 1e6: no overflow. */
    usec = d.whole * unit_usec + d.frac * unit_usec / d.scale;
    if (d.inexact || (d.frac * unit_usec) % d.scale != 0)
        usec++;
    return usec > (uint64_t)MAX_DELAY_USEC ? MAX_DELAY_USEC : (apr_interval_time_t)usec;
}

static apr_interval_time_t parse_http_date(const char *s, apr_time_t now)
{
    apr_time_t when = apr_date_parse_http(s);

    if (when == APR_DATE_BAD)
        return -1;
    return when > now ? when - now : 0;
}

/*
 * An unparseable retry-after-ms does not hide a usable retry-after: the
 * hints are tried in priority order and the first valid one wins.
 */
apr_interval_time_t llmgw_retry_after_parse(const char *retry_after_ms, const char *retry_after,
                                            apr_time_t now)
{
    apr_interval_time_t d;

    if (retry_after_ms) {
        d = parse_decimal(retry_after_ms, 1000);
        if (d >= 0)
            return d;
    }
    if (!retry_after)
        return -1;
    d = parse_decimal(retry_after, APR_USEC_PER_SEC);
    if (d >= 0)
        return d;
    return parse_http_date(retry_after, now);
}

/* Nanoseconds per Go duration unit at the start of @p s; advances *s past it. */
static uint64_t go_unit(const char **s)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        /* longer names first, so "ms" is not read as "m" */
        {"ns", 1},
        {"us", 1000},
        {"\xC2\xB5s", 1000}, /* U+00B5 micro sign */
        {"\xCE\xBCs", 1000}, /* U+03BC Greek mu */
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", UINT64_C(60) * 1000000000},
        {"h", UINT64_C(3600) * 1000000000},
    };
    apr_size_t i, n;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        n = strlen(units[i].name);
        if (strncmp(*s, units[i].name, n) == 0) {
            *s += n;
            return units[i].ns;
        }
    }
    return 0;
}

/*
 * One "<number><unit>" term in nanoseconds, or -1. The fraction is kept to
 * nine digits and truncated, as Go does; the arithmetic is exact integer
 * math: f * unit / scale = f * (unit / scale) + f * (unit % scale) / scale,
 * where f < scale keeps both products below 2^63.
 */
static int64_t go_term(const char **sp)
{
    decimal_t d;
    const char *s = scan_decimal(*sp, (UINT64_MAX - 9) / 10, &d);
    uint64_t unit, ns;

    if (d.big || d.digits == 0 || (unit = go_unit(&s)) == 0)
        return -1;
    if (d.whole > (uint64_t)INT64_MAX / unit)
        return -1;
    ns = d.whole * unit + d.frac * (unit / d.scale) + d.frac * (unit % d.scale) / d.scale;
    if (ns > (uint64_t)INT64_MAX)
        return -1;
    *sp = s;
    return (int64_t)ns;
}

apr_interval_time_t llmgw_go_duration_parse(const char *text)
{
    const char *s = text;
    int64_t total = 0, term;

    if (!s)
        return -1;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) /* Go's one unit-less form */
        return 0;
    if (*s == '\0')
        return -1;
    while (*s) {
        term = go_term(&s);
        if (term < 0 || term > INT64_MAX - total)
            return -1;
        total += term;
    }
    /* Round up to whole microseconds: waiting a little longer is harmless. */
    return (apr_interval_time_t)(total / 1000 + (total % 1000 != 0));
}

/* ------------------------------------------------------------------ */
/* Backoff                                                             */

#define BACKOFF_BASE_USEC apr_time_from_msec(500)
#define BACKOFF_CAP_USEC apr_time_from_sec(8)

apr_interval_time_t llmgw_backoff(int attempt, double rnd)
{
    apr_interval_time_t delay = BACKOFF_BASE_USEC;
    int i;

    /* Doubling stops at the cap, so large attempts cannot overflow. */
    for (i = 1; i < attempt && delay < BACKOFF_CAP_USEC; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_USEC)
        delay = BACKOFF_CAP_USEC;
    if (!(rnd >= 0.0)) /* also catches NaN */
        rnd = 0.0;
    if (rnd >= 1.0)
        rnd = 1.0;
    return (apr_interval_time_t)((double)delay * (0.75 + 0.5 * rnd));
}
