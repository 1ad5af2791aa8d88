/**
 * @file llmgw_google_auth.h
 * @brief Vertex AI service-account auth, and Google helpers for the glue.
 *
 * Vertex AI wants `Authorization: Bearer <OAuth2 access token>`. The token
 * comes from the service-account JSON (backend credentialsFile, else
 * $GOOGLE_APPLICATION_CREDENTIALS) with the JWT bearer grant of RFC 7523
 * (providers.md 6.2): an RS256-signed JWT is POSTed to the file's token_uri,
 * which answers {"access_token", "expires_in"}.
 *
 * The key file is a secret that should stay mode 0600 root (DESIGN.md 10).
 * So it is read once, by llmgw_google_cfg_load_sa, in the process that reads
 * the configuration (root under httpd, as mod_ssl reads its keys), checked
 * there (so configtest reports a missing or broken one), and kept parsed in
 * the configuration pool. Children sign with the in-memory key and never
 * open the file; a graceful restart reads it again (key rotation).
 *
 * Tokens are cached per child process and per backend. A token is
 *   fresh    until less than min(5 min, half its lifetime) remains,
 *   due      after that: ONE caller refreshes it while every other caller
 *            keeps using the still-valid token (no request waits),
 *   expired  when less than min(30 s, a tenth of its lifetime) remains, or
 *            there is none: callers wait for the single refresh in flight
 *            (or start it), so a cold child makes one exchange, not one per
 *            thread.
 * A failed exchange starts a back-off (llmgw_google_backoff: 1 s, doubling
 * on each consecutive failure up to 60 s, reset by a success): until it
 * ends, a due token stays in use without a new exchange, and callers
 * without a usable token fail at once with the last failure's error instead
 * of asking a token endpoint that is down again and again.
 *
 * Secrets: the private key, the signed JWT and the tokens never appear in
 * an error message or a log line produced here.
 *
 * Thread-safety: llmgw_google_auth_t is shared by the threads of one child
 * (an apr_thread_mutex guards it); the token exchange runs without the lock.
 * A parsed llmgw_google_sa_t is read-only and may be used by any thread of
 * any child. The pure functions are thread-safe.
 */
#ifndef LLMGW_GOOGLE_AUTH_H
#define LLMGW_GOOGLE_AUTH_H

#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_upstream.h"

/** The OAuth2 scope Vertex AI needs. */
#define LLMGW_GOOGLE_SCOPE "https://www.googleapis.com/auth/cloud-platform"
/** Lifetime of the signed JWT (Google's maximum), seconds. */
#define LLMGW_GOOGLE_JWT_LIFETIME 3600

/** Back-off after a failed token exchange: the first wait ... */
#define LLMGW_GOOGLE_BACKOFF_BASE apr_time_from_sec(1)
/** ... doubled on each consecutive failure, up to this. */
#define LLMGW_GOOGLE_BACKOFF_MAX apr_time_from_sec(60)

/**
 * A parsed service-account key. Made at configuration time, read-only
 * afterwards; lives as long as the pool it was parsed into.
 */
typedef struct llmgw_google_sa_t {
    const char *client_email;
    const char *private_key_id; /**< JWT `kid`; NULL when absent */
    const char *token_uri;      /**< https, or http on the loopback interface */
    const char *project_id;     /**< NULL when absent */
    /** The RSA private key (an OpenSSL EVP_PKEY, freed by a cleanup of the
     *  pool); a secret. The PEM text it came from is not kept. */
    struct evp_pkey_st *key;
} llmgw_google_sa_t;

/**
 * Parse a service-account JSON: client_email, private_key (an unencrypted
 * PEM RSA private key, PKCS#8 or PKCS#1) and token_uri are required.
 * @param sa   receives strings and the key, allocated from / owned by @p p
 * @param why  on failure: what is wrong, as the end of a sentence about the
 *             file ("has no client_email"), without any secret
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t llmgw_google_sa_parse(llmgw_google_sa_t *sa, apr_pool_t *p, const char *json,
                                   apr_size_t len, const char **why);

/**
 * As llmgw_google_sa_parse, from the file @p path (at most 1 MB); the
 * file's bytes are wiped after parsing. @p why as there ("cannot be read
 * (No such file or directory)", "is not a regular file", ...).
 */
apr_status_t llmgw_google_sa_load(llmgw_google_sa_t *sa, apr_pool_t *p, const char *path,
                                  const char **why);

/**
 * Configuration time only: read the service-account key of backend @p b
 * when it uses Vertex AI (credentialsFile, else the file
 * $GOOGLE_APPLICATION_CREDENTIALS names) and hang it off the backend
 * (b->google_sa). Call it in the process that reads the configuration
 * (root under httpd), never in a child: children must not need the file.
 * @param cfg     the configuration of @p b (its path names the YAML in messages)
 * @param base    directory a relative path is taken from (httpd: ServerRoot);
 *                NULL: the current directory
 * @param loaded  path -> llmgw_google_sa_t * already read into @p p, so that
 *                backends naming one file share one key; may be NULL
 * @param p       the configuration pool: the key lives and dies with it
 * @param errmsg  on failure, from @p p: "gateway.yaml:9:24: backend "vtx"
 *                (Vertex AI): the service-account file /etc/sa.json has no
 *                client_email", at credentialsFile (at projectId when the
 *                file comes from the environment)
 * @return APR_SUCCESS (also for any other backend) or an error
 */
apr_status_t llmgw_google_cfg_load_sa(const llmgw_config_t *cfg, llmgw_backend_t *b,
                                      const char *base, apr_hash_t *loaded, apr_pool_t *p,
                                      const char **errmsg);

/** base64url without padding (RFC 7515), from @p p. */
const char *llmgw_google_base64url(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/**
 * Build and sign the JWT assertion: header {"alg":"RS256","typ":"JWT",
 * "kid"}, claims {iss = client_email, scope, aud = token_uri, iat = @p now,
 * exp = iat + LLMGW_GOOGLE_JWT_LIFETIME}, RSASSA-PKCS1-v1_5 with SHA-256.
 * @param jwt  receives "<header>.<claims>.<signature>" from @p p
 * @param why  on failure: why it could not be signed (no key material in it)
 * @return APR_SUCCESS, or APR_EINVAL
 */
apr_status_t llmgw_google_jwt_sign(const char **jwt, apr_pool_t *p, const llmgw_google_sa_t *sa,
                                   const char *scope, apr_time_t now, const char **why);

/**
 * application/x-www-form-urlencoded body from name/value pairs:
 * @p pairs is {name1, value1, name2, value2, ..., NULL}.
 */
const char *llmgw_google_form_encode(apr_pool_t *p, const char *const *pairs);

/** The exchange body: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>. */
const char *llmgw_google_token_request_body(apr_pool_t *p, const char *jwt);

/**
 * Parse a token endpoint's 2xx answer.
 * @param token     receives access_token, from @p p (a secret: never log it)
 * @param lifetime  receives expires_in (clamped to 1 s .. 24 h; 600 s when absent)
 * @return APR_SUCCESS or APR_EINVAL with @p why (no token text in it)
 */
apr_status_t llmgw_google_token_parse(const char *body, apr_size_t len, apr_pool_t *p,
                                      const char **token, apr_interval_time_t *lifetime,
                                      const char **why);

typedef enum {
    LLMGW_GOOGLE_TOKEN_FRESH = 0, /**< use it */
    LLMGW_GOOGLE_TOKEN_DUE,       /**< still valid; one caller should refresh it */
    LLMGW_GOOGLE_TOKEN_EXPIRED    /**< unusable (or absent): a refresh is needed first */
} llmgw_google_token_state_e;

/**
 * The cache decision for a token obtained at @p obtained that expires at
 * @p expires (0: no token), seen at @p now. See the file comment.
 */
llmgw_google_token_state_e llmgw_google_token_state(apr_time_t now, apr_time_t obtained,
                                                    apr_time_t expires);

/**
 * How long to wait before the next exchange after @p failures consecutive
 * failed ones: 0 for none, LLMGW_GOOGLE_BACKOFF_BASE for the first, doubled
 * for each further one, at most LLMGW_GOOGLE_BACKOFF_MAX (1, 2, 4, ... 32,
 * 60, 60 s).
 */
apr_interval_time_t llmgw_google_backoff(int failures);

typedef struct llmgw_google_auth_t llmgw_google_auth_t;

/** The clock used for cache decisions and JWT times (tests inject one). */
typedef apr_time_t (*llmgw_google_clock_fn)(void *baton);

/**
 * Obtain a new token for @p b: the default signs a JWT with the key loaded
 * at configuration time (b->google_sa) and exchanges it with llmgw_upstream_perform (the backend's
 * connect timeout, at most 30 s to the answer). Called without the lock.
 * @param token     receives the token, from @p p
 * @param lifetime  receives its lifetime
 * @param err       on failure: the client-facing error, from @p p
 */
typedef apr_status_t (*llmgw_google_fetch_fn)(void *baton, llmgw_upstream_t *up,
                                              const llmgw_backend_t *b, apr_pool_t *p,
                                              apr_time_t now, const char **token,
                                              apr_interval_time_t *lifetime, llmgw_error_t **err);

/**
 * Create the token cache of one child (call in child_init). Entries and the
 * mutex live in @p pchild; tokens are wiped when it is destroyed.
 */
apr_status_t llmgw_google_auth_create(llmgw_google_auth_t **out, apr_pool_t *pchild);

/** Tests: replace the clock (NULL restores apr_time_now). Not thread-safe: call before use. */
void llmgw_google_auth_set_clock(llmgw_google_auth_t *ga, llmgw_google_clock_fn clock, void *baton);

/** Tests: replace the exchange (NULL restores the default). Not thread-safe: call before use. */
void llmgw_google_auth_set_fetch(llmgw_google_auth_t *ga, llmgw_google_fetch_fn fetch, void *baton);

/**
 * A valid access token for Vertex AI backend @p b, copied into @p p (put it
 * in llmgw_call_t.access_token before build_request). Any thread.
 * @param up   the child's upstream client, for the exchange
 * @param err  on failure, from @p p: 502 upstream_auth_failed saying why
 *             (no key loaded, the token endpoint refused, failed, could not
 *             be reached, or is in back-off after such a failure); 504
 *             upstream_timeout when the exchange of another thread did not
 *             end in time
 */
apr_status_t llmgw_google_auth_token(llmgw_google_auth_t *ga, llmgw_upstream_t *up,
                                     const llmgw_backend_t *b, apr_pool_t *p, const char **token,
                                     llmgw_error_t **err);

/**
 * Forget the cached token of @p b, e.g. after Vertex AI answered 401
 * UNAUTHENTICATED (providers.md 6.2 rule 5: refresh once and retry).
 */
void llmgw_google_auth_invalidate(llmgw_google_auth_t *ga, const llmgw_backend_t *b);

#endif /* LLMGW_GOOGLE_AUTH_H */
