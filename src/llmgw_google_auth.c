/*
 * Vertex AI service-account auth (providers.md 6.2): JWT bearer grant with
 * an RS256 signature, and a per-child token cache that refreshes ahead of
 * expiry with a single exchange in flight per backend.
 *
 * Secrets handled here: the service-account file (read once at
 * configuration time, its bytes wiped once parsed), the private key (kept
 * as an OpenSSL key in the configuration pool, freed with it), the signed
 * assertion (sent once) and the access tokens (cached in malloc'd memory,
 * wiped when replaced). None of them is ever put in an error
 * message: token endpoint texts are only quoted after a check that they do
 * not echo a JWT, a token or a key.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_allocator.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "llmgw_google_auth.h"
#include "llmgw_json.h"

/* The exchange is small and quick: do not let it take a request's whole budget. */
#define EXCHANGE_MAX_WAIT apr_time_from_sec(30)
/* Largest token endpoint answer and service-account file accepted. */
#define EXCHANGE_MAX_BODY (64 * 1024)
#define SA_MAX_FILE (1024 * 1024)
/* Token bounds: expires_in is clamped, the token must fit a header line. */
#define TOKEN_MAX_LIFETIME apr_time_from_sec(24 * 3600)
#define TOKEN_DEFAULT_LIFETIME apr_time_from_sec(600)
#define TOKEN_MAX_LEN 8192
/* Quoted token endpoint text is cut at this many bytes. */
#define QUOTE_MAX 200

/* ---------------------------------------------------------------------- */
/* Service-account file                                                   */
/* ---------------------------------------------------------------------- */

/* The assertion is a credential: plain http only to this very host. */
static int token_uri_ok(const char *uri)
{
    static const char *const loopback[] = {"http://127.0.0.1", "http://localhost", "http://[::1]",
                                           NULL};
    int i;

    if (strncasecmp(uri, "https://", 8) == 0 && uri[8])
        return 1;
    for (i = 0; loopback[i]; i++) {
        apr_size_t n = strlen(loopback[i]);
        if (strncasecmp(uri, loopback[i], n) == 0 &&
            (uri[n] == '\0' || uri[n] == ':' || uri[n] == '/'))
            return 1;
    }
    return 0;
}

static const char *opt_str(apr_pool_t *p, const json_t *j, const char *key)
{
    const char *s = llmgw_json_str(j, key);
    return s && *s ? apr_pstrdup(p, s) : NULL;
}

/* An encrypted key must not make OpenSSL prompt on httpd's terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static apr_status_t sa_key_free(void *data)
{
    /* Frees the key; OpenSSL clears RSA private components as it does. */
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

/* The private_key member as an RSA key, or NULL with @p why. */
static EVP_PKEY *sa_key(const json_t *v, const char **why)
{
    BIO *bio = BIO_new_mem_buf(json_string_value(v), (int)json_string_length(v));
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;

    BIO_free(bio);
    /* Leave no stale error behind for the next OpenSSL user of this thread. */
    ERR_clear_error();
    if (!key) {
        *why = "has a private_key that is not an unencrypted PEM private key";
        return NULL;
    }
    if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        *why = "has a private_key that is not an RSA key (the JWT is signed with RS256)";
        return NULL;
    }
    return key;
}

apr_status_t llmgw_google_sa_parse(llmgw_google_sa_t *sa, apr_pool_t *p, const char *json,
                                   apr_size_t len, const char **why)
{
    json_t *j = json_loadb(json, len, 0, NULL);
    json_t *pem = json_object_get(j, "private_key");
    const char *type = llmgw_json_str(j, "type");
    EVP_PKEY *key = NULL;

    memset(sa, 0, sizeof(*sa));
    if (!json_is_object(j))
        *why = "is not a JSON object";
    else if (type && strcmp(type, "service_account") != 0)
        *why = apr_psprintf(p, "is of type \"%.40s\", not \"service_account\"", type);
    else if (!(sa->client_email = opt_str(p, j, "client_email")))
        *why = "has no client_email";
    else if (!json_is_string(pem) || !json_string_length(pem))
        *why = "has no private_key";
    else if (!(sa->token_uri = opt_str(p, j, "token_uri")))
        *why = "has no token_uri";
    else if (!token_uri_ok(sa->token_uri))
        *why = "has a token_uri that is neither an https URL nor an http URL on the loopback "
               "interface";
    else
        key = sa_key(pem, why);
    if (key) {
        sa->key = key;
        apr_pool_cleanup_register(p, key, sa_key_free, apr_pool_cleanup_null);
        sa->private_key_id = opt_str(p, j, "private_key_id");
        sa->project_id = opt_str(p, j, "project_id");
    }
    /* jansson keeps its own copy of the PEM text: overwrite it before it is freed. */
    if (json_is_string(pem))
        OPENSSL_cleanse((char *)json_string_value(pem), json_string_length(pem));
    json_decref(j);
    return key ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t llmgw_google_sa_load(llmgw_google_sa_t *sa, apr_pool_t *p, const char *path,
                                  const char **why)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;
    apr_status_t rv;
    char err[120];

    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
        if (rv != APR_SUCCESS)
            apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot be read (%s)", apr_strerror(rv, err, sizeof(err)));
        return rv;
    }
    if (fi.filetype != APR_REG || fi.size <= 0 || fi.size > SA_MAX_FILE) {
        apr_file_close(f);
        if (fi.filetype != APR_REG)
            *why = "is not a regular file";
        else if (fi.size <= 0)
            *why = "is empty";
        else
            *why = "is larger than 1 MB";
        return APR_EINVAL;
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n);
    rv = apr_file_read_full(f, buf, n, NULL);
    apr_file_close(f);
    if (rv == APR_SUCCESS)
        rv = llmgw_google_sa_parse(sa, p, buf, n, why);
    else
        *why = apr_psprintf(p, "cannot be read (%s)", apr_strerror(rv, err, sizeof(err)));
    OPENSSL_cleanse(buf, n);
    return rv;
}

apr_status_t llmgw_google_cfg_load_sa(const llmgw_config_t *cfg, llmgw_backend_t *b,
                                      const char *base, apr_hash_t *loaded, apr_pool_t *p,
                                      const char **errmsg)
{
    const llmgw_mark_t *m = &b->credentials_mark;
    const char *given, *why;
    char *path = NULL;
    llmgw_google_sa_t *sa;
    apr_status_t rv;

    if (b->type != LLMGW_BACKEND_GOOGLE || !b->project_id)
        return APR_SUCCESS;
    /* The environment of the process that reads the configuration, as
     * Google's client libraries read it. */
    given = b->credentials_file ? b->credentials_file : getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (!given || !*given) {
        *errmsg = apr_psprintf(p,
                               "%s:%lu:%lu: backend \"%s\" (Vertex AI): no credentialsFile is "
                               "given and GOOGLE_APPLICATION_CREDENTIALS is not set",
                               cfg->path, m->line, m->column, b->name);
        return APR_EINVAL;
    }
    if (apr_filepath_merge(&path, base, given, APR_FILEPATH_NATIVE, p) != APR_SUCCESS)
        path = apr_pstrdup(p, given);
    sa = loaded ? apr_hash_get(loaded, path, APR_HASH_KEY_STRING) : NULL;
    if (!sa) {
        sa = apr_pcalloc(p, sizeof(*sa));
        rv = llmgw_google_sa_load(sa, p, path, &why);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p,
                                   "%s:%lu:%lu: backend \"%s\" (Vertex AI): the service-account "
                                   "file %s %s",
                                   cfg->path, m->line, m->column, b->name, path, why);
            return rv;
        }
        if (loaded)
            apr_hash_set(loaded, path, APR_HASH_KEY_STRING, sa);
    }
    b->google_sa = sa;
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* JWT                                                                    */
/* ---------------------------------------------------------------------- */

const char *llmgw_google_base64url(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)len));
    int n = apr_base64_encode_binary(out, data, (int)len);
    char *s;

    /* apr counts the terminating NUL; padding goes, the alphabet is fixed up. */
    while (n > 0 && (out[n - 1] == '\0' || out[n - 1] == '='))
        out[--n] = '\0';
    for (s = out; *s; s++) {
        if (*s == '+')
            *s = '-';
        else if (*s == '/')
            *s = '_';
    }
    return out;
}

static const char *json_b64url(apr_pool_t *p, const json_t *j)
{
    apr_size_t len;
    const char *text = llmgw_json_dump(p, j, &len);

    return text ? llmgw_google_base64url(p, (const unsigned char *)text, len) : NULL;
}

/*
 * RS256 over @p input; the signature in base64url, or NULL with @p why.
 * Signing only reads @p key, so every thread of every child shares it.
 */
static const char *rs256(apr_pool_t *p, EVP_PKEY *key, const char *input, const char **why)
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    const char *out = NULL;

    if (!key)
        *why = "no service-account key was loaded";
    else if (!(ctx = EVP_MD_CTX_new()) ||
             EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
             EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, strlen(input)) != 1)
        *why = "the JWT could not be signed";
    else if (!(sig = apr_palloc(p, siglen)) ||
             EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1)
        *why = "the JWT could not be signed";
    else
        out = llmgw_google_base64url(p, sig, siglen);
    EVP_MD_CTX_free(ctx);
    /* Leave no stale error behind for the next OpenSSL user of this thread (curl). */
    ERR_clear_error();
    return out;
}

apr_status_t llmgw_google_jwt_sign(const char **jwt, apr_pool_t *p, const llmgw_google_sa_t *sa,
                                   const char *scope, apr_time_t now, const char **why)
{
    json_int_t iat = (json_int_t)apr_time_sec(now);
    json_t *header = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", sa->client_email, "scope", scope, "aud",
                  sa->token_uri, "iat", iat, "exp", iat + LLMGW_GOOGLE_JWT_LIFETIME);
    const char *h64, *c64, *input, *sig;

    if (sa->private_key_id)
        json_object_set_new(header, "kid", json_string(sa->private_key_id));
    h64 = json_b64url(p, header);
    c64 = claims ? json_b64url(p, claims) : NULL;
    json_decref(header);
    json_decref(claims);
    if (!h64 || !c64) {
        *why = "the JWT claims could not be encoded";
        return APR_EINVAL;
    }
    input = apr_pstrcat(p, h64, ".", c64, NULL);
    if (!(sig = rs256(p, sa->key, input, why)))
        return APR_EINVAL;
    *jwt = apr_pstrcat(p, input, ".", sig, NULL);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* The exchange                                                           */
/* ---------------------------------------------------------------------- */

static const char *form_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        }
        else if (c == ' ') {
            *o++ = '+';
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

const char *llmgw_google_form_encode(apr_pool_t *p, const char *const *pairs)
{
    const char *out = "";
    int i;

    for (i = 0; pairs[i] && pairs[i + 1]; i += 2)
        out = apr_pstrcat(p, out, i ? "&" : "", form_escape(p, pairs[i]), "=",
                          form_escape(p, pairs[i + 1]), NULL);
    return out;
}

const char *llmgw_google_token_request_body(apr_pool_t *p, const char *jwt)
{
    const char *pairs[] = {"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion",
                           jwt, NULL};
    return llmgw_google_form_encode(p, pairs);
}

/* The token goes into a header line: visible ASCII only. */
static int token_chars_ok(const char *t)
{
    if (!*t || strlen(t) > TOKEN_MAX_LEN)
        return 0;
    for (; *t; t++) {
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return 0;
    }
    return 1;
}

/* expires_in as a number or a digit string; -1 when unusable, 0 when absent. */
static apr_int64_t expires_in(const json_t *j)
{
    json_t *v = json_object_get(j, "expires_in");
    const char *s;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (apr_int64_t)json_integer_value(v) : -1;
    if (json_is_real(v))
        return json_real_value(v) >= 1.0 && json_real_value(v) < 1e9
                   ? (apr_int64_t)json_real_value(v)
                   : -1;
    s = json_is_string(v) ? json_string_value(v) : "";
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
        return -1;
    return apr_atoi64(s) > 0 ? apr_atoi64(s) : -1;
}

apr_status_t llmgw_google_token_parse(const char *body, apr_size_t len, apr_pool_t *p,
                                      const char **token, apr_interval_time_t *lifetime,
                                      const char **why)
{
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *t = llmgw_json_str(j, "access_token");
    const char *type = llmgw_json_str(j, "token_type");
    apr_int64_t secs = expires_in(j);
    apr_status_t rv = APR_EINVAL;

    if (!json_is_object(j))
        *why = "the token endpoint's answer is not a JSON object";
    else if (!t)
        *why = "the token endpoint's answer has no access_token";
    else if (!token_chars_ok(t))
        *why = "the token endpoint's access_token is not a valid token";
    else if (type && strcasecmp(type, "Bearer") != 0)
        *why = "the token endpoint's token_type is not Bearer";
    else if (secs < 0)
        *why = "the token endpoint's expires_in is not a positive number";
    else
        rv = APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        *token = apr_pstrdup(p, t);
        *lifetime = secs ? apr_time_from_sec(secs) : TOKEN_DEFAULT_LIFETIME;
        if (*lifetime > TOKEN_MAX_LIFETIME)
            *lifetime = TOKEN_MAX_LIFETIME;
    }
    json_decref(j);
    return rv;
}

/* Endpoint text may be quoted only if it cannot be (or echo) a credential. */
static const char *safe_quote(apr_pool_t *p, const char *s)
{
    apr_size_t n;
    const char *c;

    if (!s || !*s || strstr(s, "eyJ") || strstr(s, "ya29.") || strstr(s, "PRIVATE KEY"))
        return NULL;
    n = strlen(s) > QUOTE_MAX ? QUOTE_MAX : strlen(s);
    for (c = s; c < s + n; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            return NULL;
    }
    return apr_pstrmemdup(p, s, n);
}

/*
 * Every way of not getting a token is the same failure for the client: the
 * gateway's own credential for this backend does not work (502
 * upstream_auth_failed, providers.md 9.2), so a pool falls back; the
 * message says why.
 */
static llmgw_error_t *no_token(apr_pool_t *p, const llmgw_backend_t *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static llmgw_error_t *no_token(apr_pool_t *p, const llmgw_backend_t *b, const char *fmt, ...)
{
    va_list ap;
    const char *why;

    va_start(ap, fmt);
    why = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    return llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                            "backend \"%s\" (Vertex AI): %s", b->name, why);
}

/* A non-2xx answer of the token endpoint, e.g. 400 invalid_grant. */
static llmgw_error_t *exchange_refused(apr_pool_t *p, const llmgw_backend_t *b,
                                       const llmgw_upstream_result_t *res)
{
    json_t *j = res->body ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    const char *code = safe_quote(p, llmgw_json_str(j, "error"));
    const char *desc = safe_quote(p, llmgw_json_str(j, "error_description"));

    json_decref(j);
    if (res->status >= 500)
        return no_token(p, b, "the token endpoint answered HTTP %d", res->status);
    return no_token(p, b, "the token endpoint refused the service account (HTTP %d%s%s%s%s)",
                    res->status, code ? ", " : "", code ? code : "", desc ? ": " : "",
                    desc ? desc : "");
}

static void exchange_opts(const llmgw_backend_t *b, apr_time_t now, llmgw_upstream_opts_t *o)
{
    apr_interval_time_t fb = llmgw_backend_first_byte_timeout(b);
    apr_interval_time_t total = llmgw_backend_timeout(b);

    memset(o, 0, sizeof(*o));
    o->connect_timeout = llmgw_backend_connect_timeout(b);
    o->first_byte_timeout = fb < EXCHANGE_MAX_WAIT ? fb : EXCHANGE_MAX_WAIT;
    o->deadline = now + (total < EXCHANGE_MAX_WAIT ? total : EXCHANGE_MAX_WAIT);
    o->max_body = EXCHANGE_MAX_BODY;
}

static llmgw_error_t *transport_error(apr_pool_t *p, const llmgw_backend_t *b,
                                      const llmgw_upstream_result_t *res)
{
    if (res->fail == LLMGW_FAIL_TIMEOUT || res->fail == LLMGW_FAIL_IDLE)
        return no_token(p, b, "the token endpoint timed out");
    return no_token(p, b, "the token endpoint could not be reached");
}

/*
 * The default fetch: sign with the key read at configuration time,
 * exchange, parse. It never opens the key file: children may not be able
 * to (DESIGN.md 10).
 */
static apr_status_t default_fetch(void *baton, llmgw_upstream_t *up, const llmgw_backend_t *b,
                                  apr_pool_t *p, apr_time_t now, const char **token,
                                  apr_interval_time_t *lifetime, llmgw_error_t **err)
{
    const llmgw_google_sa_t *sa = b->google_sa;
    llmgw_http_request_t req;
    apr_array_header_t *hdrs;
    llmgw_upstream_opts_t opts;
    llmgw_upstream_result_t res;
    const char *jwt = NULL, *why;
    apr_status_t rv;

    (void)baton;
    if (!sa) {
        /* Only when the glue could not load it at a restart of the running
         * server (and said so in the error log), or never tried. */
        *err = no_token(p, b,
                        "its service-account key was not loaded when the configuration "
                        "was read");
        return APR_EINVAL;
    }
    if ((rv = llmgw_google_jwt_sign(&jwt, p, sa, LLMGW_GOOGLE_SCOPE, now, &why)) != APR_SUCCESS) {
        *err = no_token(p, b, "%s", why);
        return rv;
    }
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = sa->token_uri;
    hdrs = apr_array_make(p, 3, sizeof(const char *));
    APR_ARRAY_PUSH(hdrs, const char *) = "Content-Type: application/x-www-form-urlencoded";
    APR_ARRAY_PUSH(hdrs, const char *) = "Accept: application/json";
    APR_ARRAY_PUSH(hdrs, const char *) = "Expect:";
    req.headers = hdrs;
    req.body = llmgw_google_token_request_body(p, jwt);
    req.body_len = strlen(req.body);
    exchange_opts(b, apr_time_now(), &opts);
    rv = llmgw_upstream_perform(up, p, &req, &opts, &res);
    if (rv != APR_SUCCESS || res.fail != LLMGW_FAIL_NONE) {
        *err = transport_error(p, b, &res);
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    if (res.status < 200 || res.status >= 300) {
        *err = exchange_refused(p, b, &res);
        return APR_EGENERAL;
    }
    if (llmgw_google_token_parse(res.body, res.body_len, p, token, lifetime, &why) != APR_SUCCESS) {
        *err = no_token(p, b, "%s", why);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* The cache                                                              */
/* ---------------------------------------------------------------------- */

llmgw_google_token_state_e llmgw_google_token_state(apr_time_t now, apr_time_t obtained,
                                                    apr_time_t expires)
{
    apr_interval_time_t life = expires - obtained, left = expires - now;
    apr_interval_time_t due = apr_time_from_sec(300), dead = apr_time_from_sec(30);

    if (!expires || life <= 0)
        return LLMGW_GOOGLE_TOKEN_EXPIRED;
    if (life / 2 < due)
        due = life / 2;
    if (life / 10 < dead)
        dead = life / 10;
    if (left <= dead)
        return LLMGW_GOOGLE_TOKEN_EXPIRED;
    return left <= due ? LLMGW_GOOGLE_TOKEN_DUE : LLMGW_GOOGLE_TOKEN_FRESH;
}

apr_interval_time_t llmgw_google_backoff(int failures)
{
    apr_interval_time_t wait = LLMGW_GOOGLE_BACKOFF_BASE;

    if (failures <= 0)
        return 0;
    while (--failures > 0 && wait < LLMGW_GOOGLE_BACKOFF_MAX)
        wait *= 2;
    return wait < LLMGW_GOOGLE_BACKOFF_MAX ? wait : LLMGW_GOOGLE_BACKOFF_MAX;
}

/* One backend's token, guarded by the cache mutex. */
typedef struct {
    char *token; /* malloc'd, wiped on release */
    apr_time_t obtained;
    apr_time_t expires;
    int refreshing;          /* an exchange is in flight */
    apr_uint64_t generation; /* exchanges finished */
    int failures;            /* consecutive failed exchanges; the last one ... */
    int fail_status;         /* ... with this client status */
    char fail_code[32];      /* ... code */
    char fail_message[512];  /* ... and message (never a secret) */
    apr_time_t retry_at;     /* back-off: no exchange before this */
} entry_t;

struct llmgw_google_auth_t {
    apr_pool_t *pool; /* own allocator; used only under the mutex */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_hash_t *entries; /* const llmgw_backend_t * -> entry_t * */
    llmgw_google_clock_fn clock;
    void *clock_baton;
    llmgw_google_fetch_fn fetch;
    void *fetch_baton;
};

static void drop_token(entry_t *e)
{
    if (e->token) {
        OPENSSL_cleanse(e->token, strlen(e->token));
        free(e->token);
    }
    e->token = NULL;
    e->obtained = e->expires = 0;
}

static apr_status_t auth_cleanup(void *data)
{
    llmgw_google_auth_t *ga = data;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, ga->entries); hi; hi = apr_hash_next(hi))
        drop_token(apr_hash_this_val(hi));
    return APR_SUCCESS;
}

apr_status_t llmgw_google_auth_create(llmgw_google_auth_t **out, apr_pool_t *pchild)
{
    llmgw_google_auth_t *ga = apr_pcalloc(pchild, sizeof(*ga));
    apr_allocator_t *alloc;
    apr_status_t rv;

    /* Entries are made at request time, by any thread: they come from a
     * pool of their own (with its own allocator), touched only under the
     * mutex, never from pchild itself. */
    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create_ex(&ga->pool, pchild, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, ga->pool);
    ga->entries = apr_hash_make(ga->pool);
    rv = apr_thread_mutex_create(&ga->mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS)
        rv = apr_thread_cond_create(&ga->cond, pchild);
    if (rv != APR_SUCCESS)
        return rv;
    apr_pool_cleanup_register(ga->pool, ga, auth_cleanup, apr_pool_cleanup_null);
    *out = ga;
    return APR_SUCCESS;
}

void llmgw_google_auth_set_clock(llmgw_google_auth_t *ga, llmgw_google_clock_fn clock, void *baton)
{
    ga->clock = clock;
    ga->clock_baton = baton;
}

void llmgw_google_auth_set_fetch(llmgw_google_auth_t *ga, llmgw_google_fetch_fn fetch, void *baton)
{
    ga->fetch = fetch;
    ga->fetch_baton = baton;
}

static apr_time_t auth_now(const llmgw_google_auth_t *ga)
{
    return ga->clock ? ga->clock(ga->clock_baton) : apr_time_now();
}

/* Under the mutex. Entries live as long as the child. */
static entry_t *entry_for(llmgw_google_auth_t *ga, const llmgw_backend_t *b)
{
    entry_t *e = apr_hash_get(ga->entries, &b, sizeof(b));

    if (!e) {
        const llmgw_backend_t **key = apr_palloc(ga->pool, sizeof(*key));
        *key = b;
        e = apr_pcalloc(ga->pool, sizeof(*e));
        apr_hash_set(ga->entries, key, sizeof(*key), e);
    }
    return e;
}

/* Under the mutex: a failed exchange at @p now starts (or lengthens) the back-off. */
static void remember_failure(entry_t *e, const llmgw_error_t *err, apr_time_t now)
{
    if (e->failures < 100) /* far past the cap: keep the doubling from overflowing */
        e->failures++;
    e->retry_at = now + llmgw_google_backoff(e->failures);
    e->fail_status = err ? err->status : 502;
    apr_cpystrn(e->fail_code, err && err->code ? err->code : "upstream_auth_failed",
                sizeof(e->fail_code));
    apr_cpystrn(e->fail_message,
                err && err->message ? err->message : "the Vertex AI access token is unavailable",
                sizeof(e->fail_message));
}

static llmgw_error_t *recorded_failure(apr_pool_t *p, const entry_t *e)
{
    return llmgw_error_make(p, e->fail_status, "server_error", e->fail_code, NULL, "%s",
                            e->fail_message);
}

/* The answer while backing off: the last failure, and when the next exchange may happen. */
static llmgw_error_t *backoff_failure(apr_pool_t *p, const entry_t *e, apr_time_t now)
{
    apr_interval_time_t left = e->retry_at - now;
    long secs = (long)((left + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC);

    return llmgw_error_make(p, e->fail_status, "server_error", e->fail_code, NULL,
                            "%s; no new token request for %ld s", e->fail_message, secs);
}

/* Under the mutex: store the outcome of an exchange and wake the waiters. */
static void store_result(llmgw_google_auth_t *ga, entry_t *e, apr_status_t rv, const char *token,
                         apr_time_t obtained, apr_interval_time_t lifetime,
                         const llmgw_error_t *err, apr_time_t now)
{
    char *copy = rv == APR_SUCCESS ? strdup(token) : NULL;

    e->refreshing = 0;
    e->generation++;
    if (copy) {
        drop_token(e);
        e->token = copy;
        e->obtained = obtained;
        e->expires = obtained + lifetime;
        e->failures = 0;
        e->retry_at = 0;
    }
    else {
        remember_failure(e, err, now);
    }
    apr_thread_cond_broadcast(ga->cond);
}

/* Under the mutex: wait for the exchange in flight. */
static apr_status_t wait_refresh(llmgw_google_auth_t *ga, entry_t *e, const llmgw_backend_t *b,
                                 apr_pool_t *p, llmgw_error_t **err)
{
    apr_uint64_t gen = e->generation;
    apr_time_t until = apr_time_now() + EXCHANGE_MAX_WAIT + apr_time_from_sec(5);

    while (e->refreshing && e->generation == gen) {
        apr_interval_time_t left = until - apr_time_now();
        if (left <= 0) {
            *err = llmgw_error_make(p, 504, "server_error", "upstream_timeout", NULL,
                                    "backend \"%s\" (Vertex AI): timed out waiting for the "
                                    "access token",
                                    b->name);
            return APR_TIMEUP;
        }
        apr_thread_cond_timedwait(ga->cond, ga->mutex, left);
    }
    /* The exchange this thread waited for failed: share its verdict. */
    if (e->generation != gen && e->failures &&
        llmgw_google_token_state(auth_now(ga), e->obtained, e->expires) ==
            LLMGW_GOOGLE_TOKEN_EXPIRED) {
        *err = recorded_failure(p, e);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_google_auth_token(llmgw_google_auth_t *ga, llmgw_upstream_t *up,
                                     const llmgw_backend_t *b, apr_pool_t *p, const char **token,
                                     llmgw_error_t **err)
{
    llmgw_google_fetch_fn fetch = ga->fetch ? ga->fetch : default_fetch;
    const char *fresh = NULL;
    apr_interval_time_t lifetime = 0;
    llmgw_google_token_state_e state;
    llmgw_error_t *ferr = NULL;
    apr_time_t now;
    entry_t *e;
    apr_status_t rv;
    int backing_off;

    apr_thread_mutex_lock(ga->mutex);
    e = entry_for(ga, b);
    for (;;) {
        now = auth_now(ga);
        state = llmgw_google_token_state(now, e->obtained, e->expires);
        backing_off = e->failures > 0 && now < e->retry_at;
        if (state == LLMGW_GOOGLE_TOKEN_FRESH ||
            (state == LLMGW_GOOGLE_TOKEN_DUE && (e->refreshing || backing_off))) {
            *token = apr_pstrdup(p, e->token);
            apr_thread_mutex_unlock(ga->mutex);
            return APR_SUCCESS;
        }
        if (!e->refreshing && backing_off) {
            /* No usable token and the last exchange failed a moment ago:
             * fail fast rather than ask a token endpoint that is down
             * once per request. */
            *err = backoff_failure(p, e, now);
            apr_thread_mutex_unlock(ga->mutex);
            return APR_EGENERAL;
        }
        if (!e->refreshing)
            break;
        if ((rv = wait_refresh(ga, e, b, p, err)) != APR_SUCCESS) {
            apr_thread_mutex_unlock(ga->mutex);
            return rv;
        }
    }
    /* This thread refreshes; the others keep the old token or wait. */
    e->refreshing = 1;
    apr_thread_mutex_unlock(ga->mutex);

    now = auth_now(ga);
    rv = fetch(ga->fetch_baton, up, b, p, now, &fresh, &lifetime, &ferr);
    if (rv == APR_SUCCESS && (!fresh || lifetime <= 0))
        rv = APR_EGENERAL;

    apr_thread_mutex_lock(ga->mutex);
    store_result(ga, e, rv, fresh, now, lifetime, ferr, auth_now(ga));
    state = llmgw_google_token_state(auth_now(ga), e->obtained, e->expires);
    if (state != LLMGW_GOOGLE_TOKEN_EXPIRED) {
        /* A failed refresh of a due token keeps the old one in use. */
        *token = apr_pstrdup(p, e->token);
        rv = APR_SUCCESS;
    }
    else {
        *err = ferr ? ferr : recorded_failure(p, e);
        if (rv == APR_SUCCESS)
            rv = APR_EGENERAL;
    }
    apr_thread_mutex_unlock(ga->mutex);
    return rv;
}

void llmgw_google_auth_invalidate(llmgw_google_auth_t *ga, const llmgw_backend_t *b)
{
    entry_t *e;

    apr_thread_mutex_lock(ga->mutex);
    e = apr_hash_get(ga->entries, &b, sizeof(b));
    if (e && !e->refreshing)
        drop_token(e);
    apr_thread_mutex_unlock(ga->mutex);
}
