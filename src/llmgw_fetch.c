/*
 * Remote image fetches with the SSRF guard (see llmgw_fetch.h for the
 * design and the rules).
 *
 * Each hop of a fetch is one blocking libcurl transfer on a fresh easy
 * handle, freed before the next hop: no connection, DNS cache or cookie
 * outlives a hop, so the address check of the open-socket callback runs
 * for every connection a hop makes, and a redirect to another host cannot
 * ride on a connection checked for the first one.
 *
 * Lifetimes: results, bodies and encoded images come from the caller's
 * pool (the request pool); libcurl handles and URL handles are freed on
 * every path of the function that made them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <curl/curl.h>
#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_fetch.h"
#include "llmgw_version.h"

/* ---------------------------------------------------------------------- */
/* Address classes                                                        */
/* ---------------------------------------------------------------------- */

#define CLASS_UNSPECIFIED "unspecified"
#define CLASS_LOOPBACK "loopback"
#define CLASS_PRIVATE "private"
#define CLASS_CGNAT "shared (CGNAT)"
#define CLASS_LINK_LOCAL "link-local"
#define CLASS_MULTICAST "multicast"
#define CLASS_RESERVED "reserved"
#define CLASS_DOCUMENTATION "documentation"
#define CLASS_NOT_IP "not an IP address"

/* IANA's special-purpose IPv4 registry (RFC 6890 and successors). @p a in host order. */
static const char *v4_class(apr_uint32_t a)
{
    static const struct {
        apr_uint32_t net, mask;
        const char *cls;
    } table[] = {
        {0x00000000, 0xff000000, CLASS_UNSPECIFIED},   /* 0.0.0.0/8 "this network" */
        {0x0a000000, 0xff000000, CLASS_PRIVATE},       /* 10.0.0.0/8 */
        {0x64400000, 0xffc00000, CLASS_CGNAT},         /* 100.64.0.0/10 */
        {0x7f000000, 0xff000000, CLASS_LOOPBACK},      /* 127.0.0.0/8 */
        {0xa9fe0000, 0xffff0000, CLASS_LINK_LOCAL},    /* 169.254.0.0/16 (cloud metadata) */
        {0xac100000, 0xfff00000, CLASS_PRIVATE},       /* 172.16.0.0/12 */
        {0xc0000000, 0xffffff00, CLASS_RESERVED},      /* 192.0.0.0/24 protocol assignments */
        {0xc0000200, 0xffffff00, CLASS_DOCUMENTATION}, /* 192.0.2.0/24 */
        {0xc0586300, 0xffffff00, CLASS_RESERVED},      /* 192.88.99.0/24 6to4 relay */
        {0xc0a80000, 0xffff0000, CLASS_PRIVATE},       /* 192.168.0.0/16 */
        {0xc6120000, 0xfffe0000, CLASS_RESERVED},      /* 198.18.0.0/15 benchmarking */
        {0xc6336400, 0xffffff00, CLASS_DOCUMENTATION}, /* 198.51.100.0/24 */
        {0xcb007100, 0xffffff00, CLASS_DOCUMENTATION}, /* 203.0.113.0/24 */
        {0xe0000000, 0xf0000000, CLASS_MULTICAST},     /* 224.0.0.0/4 */
        {0xf0000000, 0xf0000000, CLASS_RESERVED},      /* 240.0.0.0/4, broadcast included */
    };
    apr_size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if ((a & table[i].mask) == table[i].net)
            return table[i].cls;
    }
    return NULL;
}

static apr_uint32_t v4_at(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16) | ((apr_uint32_t)b[2] << 8) |
           (apr_uint32_t)b[3];
}

static int all_zero(const unsigned char *b, apr_size_t n)
{
    while (n--) {
        if (*b++)
            return 0;
    }
    return 1;
}

/* IANA's special-purpose IPv6 registry; forms that carry an IPv4 address are classed by it. */
static const char *v6_class(const unsigned char *b)
{
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (all_zero(b, 15))
        return b[15] == 0 ? CLASS_UNSPECIFIED : b[15] == 1 ? CLASS_LOOPBACK : CLASS_RESERVED;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_class(v4_at(b + 12)); /* ::ffff:0:0/96, 64:ff9b::/96 */
    if (all_zero(b, 12))
        return CLASS_RESERVED; /* ::/96, IPv4-compatible (deprecated) */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
        return CLASS_PRIVATE; /* 64:ff9b:1::/48, local-use NAT64 */
    if (b[0] == 0x01 && b[1] == 0x00 && all_zero(b + 2, 6))
        return CLASS_RESERVED; /* 100::/64 discard */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return CLASS_DOCUMENTATION; /* 2001:db8::/32 */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02)
        return CLASS_RESERVED; /* 2001::/23 protocol assignments, Teredo included */
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_class(v4_at(b + 2)); /* 2002::/16 6to4 */
    if ((b[0] & 0xfe) == 0xfc)
        return CLASS_PRIVATE; /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return CLASS_LINK_LOCAL; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return CLASS_PRIVATE; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return CLASS_MULTICAST; /* ff00::/8 */
    if ((b[0] & 0xe0) != 0x20)
        return CLASS_RESERVED; /* outside 2000::/3, the global unicast space */
    return NULL;
}

const char *llmgw_fetch_addr_class(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return v4_class(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_class(in6->sin6_addr.s6_addr);
    }
    return CLASS_NOT_IP;
}

const char *llmgw_fetch_ip_class(const char *ip)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    memset(&in, 0, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET, ip, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        return llmgw_fetch_addr_class((struct sockaddr *)&in);
    }
    if (inet_pton(AF_INET6, ip, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        return llmgw_fetch_addr_class((struct sockaddr *)&in6);
    }
    return CLASS_NOT_IP;
}

/* ---------------------------------------------------------------------- */
/* allowHosts                                                             */
/* ---------------------------------------------------------------------- */

/* A URL's host as the config keeps allowHosts entries: see allow_host in llmgw_config.c. */
static const char *host_key(apr_pool_t *p, const char *host)
{
    unsigned char addr[16];
    char canon[64];
    apr_size_t n = strlen(host);
    char *h, *c;

    if (n > 2 && host[0] == '[' && host[n - 1] == ']')
        host = apr_pstrmemdup(p, host + 1, n - 2);
    if (inet_pton(AF_INET6, host, addr) == 1)
        return apr_pstrdup(p, inet_ntop(AF_INET6, addr, canon, sizeof(canon)));
    if (inet_pton(AF_INET, host, addr) == 1)
        return apr_pstrdup(p, inet_ntop(AF_INET, addr, canon, sizeof(canon)));
    h = apr_pstrdup(p, host);
    n = strlen(h);
    if (n > 1 && h[n - 1] == '.')
        h[n - 1] = '\0';
    for (c = h; *c; c++)
        *c = (char)apr_tolower(*c);
    return h;
}

static int host_listed(const llmgw_image_fetch_t *cfg, const char *key)
{
    int i;

    for (i = 0; cfg->allow_hosts && i < cfg->allow_hosts->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(cfg->allow_hosts, i, const char *), key) == 0)
            return 1;
    }
    return 0;
}

int llmgw_fetch_host_allowed(apr_pool_t *p, const llmgw_image_fetch_t *cfg, const char *host)
{
    if (!cfg->allow_hosts || cfg->allow_hosts->nelts == 0)
        return 0;
    return host_listed(cfg, host_key(p, host));
}

/* ---------------------------------------------------------------------- */
/* One hop                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    llmgw_fetch_result_t *res;
    int host_allowed;     /* the hop's host is in allowHosts */
    apr_size_t max_bytes; /* budget of the body */
    int sockets;          /* sockets opened (addresses the guard let through) */
    int status;           /* of the current answer */
    const char *content_type;
    const char *location;
    apr_off_t content_length; /* -1 when not given */
    int head_done;            /* a final (non-1xx) head was complete */
    int decided;              /* a callback set res->outcome and stopped the transfer */
    char *buf;
    apr_size_t len, cap;
} hop_t;

/*
 * Every connection of the hop is opened here, with the address libcurl
 * resolved and is about to connect to: the one place where a check cannot
 * be raced by a second DNS answer.
 */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    hop_t *h = ud;
    const char *cls = llmgw_fetch_addr_class(&a->addr);

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (cls && !h->host_allowed) {
        if (!h->res->blocked_addr) {
            char text[INET6_ADDRSTRLEN] = "?";
            const void *raw = NULL;
            if (a->family == AF_INET)
                raw = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
            else if (a->family == AF_INET6)
                raw = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
            if (raw)
                inet_ntop(a->family, raw, text, sizeof(text));
            h->res->blocked_addr = apr_pstrdup(h->p, text);
            h->res->blocked_class = cls;
        }
        return CURL_SOCKET_BAD;
    }
    h->sockets++;
    return socket(a->family, a->socktype, a->protocol);
}

static const char *header_value(apr_pool_t *p, const char *line, apr_size_t n, const char *name)
{
    apr_size_t nl = strlen(name);
    const char *v, *end = line + n;

    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return NULL;
    v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return apr_pstrmemdup(p, v, (apr_size_t)(end - v));
}

/* "Image/PNG; charset=x" -> "image/png"; NULL when it is not a type/subtype. */
static const char *media_type(apr_pool_t *p, const char *ct)
{
    apr_size_t n = strcspn(ct, "; \t");
    const char *slash = memchr(ct, '/', n);
    char *out, *c;

    if (!slash || slash == ct || slash + 1 == ct + n || memchr(slash + 1, '/', n))
        return NULL;
    out = apr_pstrmemdup(p, ct, n);
    for (c = out; *c; c++) {
        if (!apr_isalnum(*c) && !strchr("/!#$&^_.+-", *c))
            return NULL;
        *c = (char)apr_tolower(*c);
    }
    return out;
}

static int stop(hop_t *h, llmgw_fetch_outcome_e outcome)
{
    h->res->outcome = outcome;
    h->decided = 1;
    return 0;
}

/*
 * The head is complete: a 2xx must be an image within the budget (from its
 * Content-Length, before a body byte is read); anything else ends the hop
 * here, since no body but an image's is wanted. Returns 1 to go on.
 */
static int head_complete(hop_t *h)
{
    h->head_done = 1;
    h->res->status = h->status;
    if (h->status < 200 || h->status >= 300)
        return 0;
    h->res->mime_type = h->content_type ? media_type(h->p, h->content_type) : NULL;
    if (!h->res->mime_type || strncmp(h->res->mime_type, "image/", 6) != 0)
        return stop(h, LLMGW_FETCH_NOT_IMAGE);
    if (h->content_length > (apr_off_t)h->max_bytes)
        return stop(h, LLMGW_FETCH_TOO_LARGE);
    if (h->content_length > 0) {
        h->cap = (apr_size_t)h->content_length + 1;
        h->buf = apr_palloc(h->p, h->cap);
    }
    return 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    hop_t *h = ud;
    apr_size_t n = size * nmemb;
    const char *v;

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', n);
        /* A new answer (after a 1xx): forget the previous head. */
        h->status = sp ? atoi(sp + 1) : 0;
        h->content_type = h->location = NULL;
        h->content_length = -1;
        return n;
    }
    if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (h->status >= 100 && h->status < 200)
            return n;
        return head_complete(h) ? n : 0;
    }
    if ((v = header_value(h->p, data, n, "content-type")) != NULL)
        h->content_type = v;
    else if ((v = header_value(h->p, data, n, "location")) != NULL)
        h->location = v;
    else if ((v = header_value(h->p, data, n, "content-length")) != NULL)
        h->content_length = apr_isdigit(*v) ? apr_atoi64(v) : -1;
    return n;
}

/* The body, within the budget: a chunked or lying server is cut at the limit. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    hop_t *h = ud;
    apr_size_t n = size * nmemb;

    if (!h->head_done)
        return 0;
    if (n > h->max_bytes - h->len)
        return stop(h, LLMGW_FETCH_TOO_LARGE);
    if (h->len + n + 1 > h->cap) {
        apr_size_t cap = h->cap ? h->cap * 2 : 65536;
        char *nb;
        while (cap < h->len + n + 1)
            cap *= 2;
        nb = apr_palloc(h->p, cap);
        if (h->len)
            memcpy(nb, h->buf, h->len);
        h->buf = nb;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, data, n);
    h->len += n;
    return n;
}

/* Scheme and host of an absolute http(s) URL; APR_EINVAL for anything else. */
static apr_status_t url_host(apr_pool_t *p, const char *url, const char **host)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL;
    apr_status_t rv = APR_EINVAL;

    if (!u)
        return APR_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && *h) {
        *host = apr_pstrdup(p, h);
        rv = APR_SUCCESS;
    }
    curl_free(scheme);
    curl_free(h);
    curl_url_cleanup(u);
    return rv;
}

/* @p location resolved against @p base (a redirect may be relative); NULL when it cannot be. */
static const char *resolve(apr_pool_t *p, const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *out = NULL;
    const char *res = NULL;

    if (!u)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
        res = apr_pstrdup(p, out);
    curl_free(out);
    curl_url_cleanup(u);
    return res;
}

static void set_hop_options(CURL *e, const char *url, hop_t *h, long left_ms, char *errbuf,
                            struct curl_slist *hdrs)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by fetch_hops, one checked hop at a time. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* Never a proxy from httpd's environment: the address check would see the proxy's. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, left_ms);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mod_llmgw/" LLMGW_VERSION);
    /* No Accept-Encoding: a compressed body could expand past the budget unseen. */
}

static llmgw_fetch_outcome_e map_curl_code(CURLcode cc, const hop_t *h)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return LLMGW_FETCH_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return h->res->blocked_addr && h->sockets == 0 ? LLMGW_FETCH_BLOCKED
                                                       : LLMGW_FETCH_UNREACHABLE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return LLMGW_FETCH_UNREACHABLE;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return LLMGW_FETCH_BAD_URL;
    default:
        return LLMGW_FETCH_FAILED;
    }
}

/*
 * One hop: @p url must be http(s); its host decides whether non-public
 * addresses may be reached. Returns APR_SUCCESS with res->outcome set, or
 * APR_EAGAIN with *next set for a redirect.
 */
static apr_status_t fetch_hop(apr_pool_t *p, const llmgw_image_fetch_t *cfg, const char *url,
                              apr_time_t deadline, apr_size_t max_bytes, llmgw_fetch_result_t *res,
                              const char **next)
{
    apr_interval_time_t left = deadline - apr_time_now();
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs;
    hop_t h;
    CURL *e;
    CURLcode cc;
    apr_status_t rv;

    memset(&h, 0, sizeof(h));
    h.p = p;
    h.res = res;
    h.max_bytes = max_bytes;
    h.content_length = -1;
    res->status = 0;
    res->mime_type = NULL;
    res->blocked_addr = res->blocked_class = NULL;
    if ((rv = url_host(p, url, &res->host)) != APR_SUCCESS) {
        res->outcome = LLMGW_FETCH_BAD_URL;
        return rv == APR_ENOMEM ? rv : APR_SUCCESS;
    }
    if (left < 1000) {
        res->outcome = LLMGW_FETCH_TIMEOUT;
        return APR_SUCCESS;
    }
    h.host_allowed = llmgw_fetch_host_allowed(p, cfg, res->host);
    if (!(e = curl_easy_init()))
        return APR_ENOMEM;
    hdrs = curl_slist_append(NULL, "Accept: image/*");
    set_hop_options(e, url, &h, (long)(left / 1000), errbuf, hdrs);
    cc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    if (h.decided)
        return APR_SUCCESS;
    if (h.head_done && (h.status < 200 || h.status >= 300)) {
        if (h.status >= 300 && h.status < 400 && h.location) {
            *next = resolve(p, url, h.location);
            if (*next)
                return APR_EAGAIN;
            res->outcome = LLMGW_FETCH_BAD_URL;
            return APR_SUCCESS;
        }
        res->outcome = LLMGW_FETCH_HTTP;
        return APR_SUCCESS;
    }
    if (cc != CURLE_OK || !h.head_done) {
        /* libcurl's words only where it decided: elsewhere they would be "Failed writing header".
         */
        res->detail = errbuf[0] ? apr_pstrdup(p, errbuf) : NULL;
        res->outcome = cc != CURLE_OK ? map_curl_code(cc, &h) : LLMGW_FETCH_FAILED;
        return APR_SUCCESS;
    }
    res->outcome = LLMGW_FETCH_OK;
    res->data = h.buf ? h.buf : "";
    res->len = h.len;
    return APR_SUCCESS;
}

apr_status_t llmgw_fetch_image(apr_pool_t *p, const llmgw_image_fetch_t *cfg, const char *url,
                               apr_time_t deadline, apr_size_t max_bytes, llmgw_fetch_result_t *res)
{
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    for (;;) {
        const char *next = NULL;

        rv = fetch_hop(p, cfg, url, deadline, max_bytes, res, &next);
        if (rv != APR_EAGAIN)
            return rv;
        if (res->redirects >= LLMGW_FETCH_MAX_REDIRECTS) {
            res->outcome = LLMGW_FETCH_REDIRECTS;
            return APR_SUCCESS;
        }
        res->redirects++;
        url = next;
    }
}

/* ---------------------------------------------------------------------- */
/* A request's images                                                     */
/* ---------------------------------------------------------------------- */

/* 20971520 -> "20 MiB", for messages. */
static const char *size_text(apr_pool_t *p, apr_off_t n)
{
    if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
        return apr_psprintf(p, "%" APR_OFF_T_FMT " MiB", n / (1024 * 1024));
    if (n >= 1024 && n % 1024 == 0)
        return apr_psprintf(p, "%" APR_OFF_T_FMT " KiB", n / 1024);
    return apr_psprintf(p, "%" APR_OFF_T_FMT " bytes", n);
}

static const char *duration_text(apr_pool_t *p, apr_interval_time_t d)
{
    if (d % APR_USEC_PER_SEC == 0)
        return apr_psprintf(p, "%" APR_TIME_T_FMT " s", apr_time_sec(d));
    return apr_psprintf(p, "%" APR_TIME_T_FMT " ms", apr_time_as_msec(d));
}

/* What a client is told; the resolved address and libcurl's text are for the log only. */
static const char *reason_text(apr_pool_t *p, const llmgw_fetch_result_t *res,
                               const llmgw_image_fetch_t *cfg, int first)
{
    const char *via = res->redirects ? "it redirects to a URL whose host" : "its host";

    switch (res->outcome) {
    case LLMGW_FETCH_BAD_URL:
        return res->redirects ? "it redirects to a URL that is not http or https"
                              : "it is not a valid http or https URL";
    case LLMGW_FETCH_BLOCKED:
        return apr_psprintf(p,
                            "%s resolves to a %s address, which this gateway does not fetch "
                            "images from",
                            via, res->blocked_class);
    case LLMGW_FETCH_UNREACHABLE:
        return "the image server could not be reached";
    case LLMGW_FETCH_TIMEOUT:
        return apr_psprintf(p, "the image could not be fetched within %s",
                            duration_text(p, llmgw_image_fetch_timeout(cfg)));
    case LLMGW_FETCH_HTTP:
        return apr_psprintf(p, "the image server answered HTTP %d", res->status);
    case LLMGW_FETCH_NOT_IMAGE:
        if (!res->mime_type)
            return "the server's answer has no image Content-Type";
        return apr_psprintf(p, "the server answered with Content-Type '%.100s', not an image",
                            res->mime_type);
    case LLMGW_FETCH_TOO_LARGE:
        return apr_psprintf(p, "%s larger than %s",
                            first ? "the image is" : "the images of this request are together",
                            size_text(p, llmgw_image_fetch_max_bytes(cfg)));
    case LLMGW_FETCH_REDIRECTS:
        return apr_psprintf(p, "it redirects more than %d times", LLMGW_FETCH_MAX_REDIRECTS);
    case LLMGW_FETCH_OK:
        return "the image server sent an empty image";
    default:
        return "the image server's answer could not be read";
    }
}

apr_status_t llmgw_fetch_images(apr_pool_t *p, const llmgw_image_fetch_t *cfg,
                                const apr_array_header_t *refs, apr_hash_t **images,
                                const llmgw_image_ref_t **failed, llmgw_fetch_result_t *res,
                                llmgw_error_t **err)
{
    apr_time_t deadline = apr_time_now() + llmgw_image_fetch_timeout(cfg);
    apr_off_t budget = llmgw_image_fetch_max_bytes(cfg), used = 0;
    apr_status_t rv;
    int i;

    *images = apr_hash_make(p);
    for (i = 0; refs && i < refs->nelts; i++) {
        const llmgw_image_ref_t *ref = &APR_ARRAY_IDX(refs, i, llmgw_image_ref_t);
        llmgw_image_t *img;
        char *enc;

        if (apr_hash_get(*images, ref->url, APR_HASH_KEY_STRING))
            continue;
        rv = llmgw_fetch_image(p, cfg, ref->url, deadline, (apr_size_t)(budget - used), res);
        if (rv != APR_SUCCESS)
            return rv;
        if (res->outcome != LLMGW_FETCH_OK || res->len == 0) {
            *failed = ref;
            *err = llmgw_error_make(p, 400, "invalid_request_error",
                                    res->outcome == LLMGW_FETCH_NOT_IMAGE ? "invalid_image_format"
                                                                          : "invalid_image_url",
                                    ref->param, "Could not fetch the image of '%s': %s.",
                                    ref->param, reason_text(p, res, cfg, used == 0));
            return LLMGW_EBADREQ;
        }
        used += (apr_off_t)res->len;
        img = apr_palloc(p, sizeof(*img));
        img->mime_type = res->mime_type;
        img->size = res->len;
        /* maxBytes is at most 1 GiB: its base64 length fits an int. */
        enc = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)res->len));
        apr_base64_encode_binary(enc, (const unsigned char *)res->data, (int)res->len);
        img->base64 = enc;
        apr_hash_set(*images, ref->url, APR_HASH_KEY_STRING, img);
    }
    return APR_SUCCESS;
}

const char *llmgw_fetch_outcome_name(apr_pool_t *p, const llmgw_fetch_result_t *res)
{
    static const char *const names[] = {"ok",   "bad_url",   "blocked",   "unreachable", "timeout",
                                        "http", "not_image", "too_large", "redirects",   "failed"};

    if (res->outcome == LLMGW_FETCH_HTTP)
        return apr_psprintf(p, "http_%d", res->status);
    if (res->outcome == LLMGW_FETCH_OK && res->len == 0)
        return "empty";
    if ((unsigned)res->outcome < sizeof(names) / sizeof(names[0]))
        return names[res->outcome];
    return "failed";
}
