/*
 * CORS for browser applications: the origins LLMGatewayCORS allows and the
 * Access-Control-* values of answers and preflights. The design is in
 * include/llmgw_cors.h; the glue is src/mod_llmgw_cors.c.
 */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include "llmgw_config.h"
#include "llmgw_cors.h"

/* Prefix of the SDKs' telemetry headers (x-stainless-lang, -os, -retry-count...). */
#define STAINLESS_PREFIX "x-stainless-"

llmgw_cors_t *llmgw_cors_make(apr_pool_t *p)
{
    llmgw_cors_t *c = apr_pcalloc(p, sizeof(*c));

    c->origins = apr_array_make(p, 2, sizeof(const char *));
    return c;
}

static char *lower(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *c;

    for (c = out; *c; c++)
        *c = (char)apr_tolower(*c);
    return out;
}

/* A scheme as RFC 3986 has it: a letter, then letters, digits, '+', '-', '.'. */
static int scheme_ok(const char *s)
{
    if (!s || !apr_isalpha(*s))
        return 0;
    for (s++; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("+-.", *s))
            return 0;
    }
    return 1;
}

/* A host name, an IPv4 address, or (inside brackets in the origin) an IPv6 address. */
static int host_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("-.:_", *s))
            return 0;
    }
    return 1;
}

/* "https://App.example.com:443" -> "https://app.example.com"; NULL when not an origin. */
static const char *normalise_origin(apr_pool_t *p, const char *arg)
{
    apr_uri_t u;
    const char *scheme, *host, *port = "";

    if (apr_uri_parse(p, arg, &u) != APR_SUCCESS || !u.is_initialized || !scheme_ok(u.scheme) ||
        !host_ok(u.hostname) || u.user || u.password || u.query || u.fragment ||
        (u.path && *u.path) || !strstr(arg, "://"))
        return NULL;
    scheme = lower(p, u.scheme);
    host = lower(p, u.hostname);
    if (u.port_str) {
        char *end = NULL;
        apr_int64_t n = apr_strtoi64(u.port_str, &end, 10);
        if (!*u.port_str || !end || *end || n < 1 || n > 65535)
            return NULL;
        if (!((n == 80 && strcmp(scheme, "http") == 0) ||
              (n == 443 && strcmp(scheme, "https") == 0)))
            port = apr_psprintf(p, ":%d", (int)n);
    }
    if (strchr(host, ':'))
        host = apr_pstrcat(p, "[", host, "]", NULL);
    return apr_pstrcat(p, scheme, "://", host, port, NULL);
}

const char *llmgw_cors_add(apr_pool_t *p, llmgw_cors_t *cors, const char *arg)
{
    const char *origin;

    if (strcasecmp(arg, "off") == 0 || strcmp(arg, "*") == 0) {
        if (cors->off || cors->any || cors->origins->nelts > 0)
            return apr_psprintf(p, "'%s' must be the only origin of the directive", arg);
        if (*arg == '*')
            cors->any = 1;
        else
            cors->off = 1;
        return NULL;
    }
    if (cors->off || cors->any)
        return apr_psprintf(p, "'%s' cannot be listed with '%s'", arg, cors->off ? "off" : "*");
    if (strcasecmp(arg, "null") == 0)
        return "'null' is the origin of sandboxed and file pages, which any page can "
               "impersonate; it cannot be allowed";
    if (strchr(arg, '*'))
        return apr_psprintf(p,
                            "'%s': wildcards are not supported; list each origin, or '*' "
                            "for any",
                            arg);
    origin = normalise_origin(p, arg);
    if (!origin)
        return apr_psprintf(p,
                            "'%s' is not an origin: write scheme://host[:port], without a "
                            "path or a trailing slash (e.g. https://app.example.com)",
                            arg);
    APR_ARRAY_PUSH(cors->origins, const char *) = origin;
    return NULL;
}

const char *llmgw_cors_allow_origin(const llmgw_cors_t *cors, const char *origin)
{
    int i;

    if (!cors || cors->off || !origin || !*origin)
        return NULL;
    if (cors->any)
        return "*";
    for (i = 0; i < cors->origins->nelts; i++) {
        if (strcasecmp(origin, APR_ARRAY_IDX(cors->origins, i, const char *)) == 0)
            return origin;
    }
    return NULL;
}

int llmgw_cors_credentials(const llmgw_cors_t *cors)
{
    return cors && !cors->off && !cors->any;
}

/* @p name (lowercase) is one a browser SDK may send. */
static int header_ok(const char *name)
{
    static const char list[] = LLMGW_CORS_ALLOW_HEADERS;
    apr_size_t n = strlen(name);
    const char *at;

    if (n == 0)
        return 0;
    if (strncmp(name, STAINLESS_PREFIX, sizeof(STAINLESS_PREFIX) - 1) == 0 &&
        n > sizeof(STAINLESS_PREFIX) - 1)
        return 1;
    for (at = strstr(list, name); at; at = strstr(at + 1, name)) {
        if ((at == list || at[-1] == ' ') && (at[n] == ',' || at[n] == '\0'))
            return 1;
    }
    return 0;
}

/* A header name token (RFC 9110): nothing that could break the answer's header. */
static int token_ok(const char *s)
{
    for (; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    }
    return 1;
}

const char *llmgw_cors_allow_headers(apr_pool_t *p, const char *requested)
{
    char *copy, *name, *last;
    const char *out = NULL;

    if (!requested)
        return NULL;
    copy = lower(p, requested);
    for (name = apr_strtok(copy, ",", &last); name; name = apr_strtok(NULL, ",", &last)) {
        char *end;

        while (apr_isspace(*name))
            name++;
        for (end = name + strlen(name); end > name && apr_isspace(end[-1]); end--)
            ;
        *end = '\0';
        if (!*name)
            continue;
        if (!token_ok(name) || !header_ok(name))
            return LLMGW_CORS_ALLOW_HEADERS;
        out = out ? apr_pstrcat(p, out, ", ", name, NULL) : name;
    }
    return out;
}

const char *llmgw_cors_allow_methods(apr_pool_t *p, int methods)
{
    const char *s = NULL;

    if (methods & LLMGW_METHOD_GET)
        s = "GET, HEAD";
    else if (methods & LLMGW_METHOD_HEAD)
        s = "HEAD";
    if (methods & LLMGW_METHOD_POST)
        s = s ? apr_pstrcat(p, s, ", POST", NULL) : "POST";
    return s ? s : "";
}
