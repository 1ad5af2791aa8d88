/**
 * @file llmgw_access.h
 * @brief Who may use a gateway: virtual keys, principals from httpd's auth
 *        modules, allowlists, expiry, and the token estimate a request
 *        reserves (DESIGN.md 11).
 *
 * Without `access:` in gateway.yaml a gateway is open, as before: whoever
 * httpd lets through spends the provider keys. With it, every request names
 * an entry of this table before anything else happens:
 *
 *   mode KEYS       the client sends `Authorization: Bearer <key>` (or
 *                   `x-api-key: <key>`, the Messages dialect's header); the
 *                   entry is the one whose `sha256` is SHA-256(<key>).
 *   mode PRINCIPAL  an httpd auth module established an identity
 *                   (`principal: env:REMOTE_USER`, `env:OIDC_CLAIM_email`,
 *                   `header:X-Remote-User`...); the entry is the one listed
 *                   under that name in `principals:`, else the `"*"` entry,
 *                   whose limits then apply to each such principal apart
 *                   (llmgw_limits.h: dynamic slots).
 *
 * The key store. The file holds only SHA-256 hashes of keys, never a key:
 * a leaked gateway.yaml does not leak keys, and the gateway never holds a
 * key longer than the request that presented it. The presented key is
 * hashed once and its digest compared with every stored digest with
 * CRYPTO_memcmp, without stopping at the first match, so the time taken
 * tells nothing about which stored digest shares a prefix with it (the
 * lookup is O(number of keys); with hundreds of keys that is still well
 * under a microsecond). A key is never logged or shown: messages, the
 * access log (`LLMGW_KEY`), the ledger and the status page use the entry's
 * `name`.
 *
 * Allowlists are glob patterns (apr_fnmatch, `*`, `?`, `[...]`) over model
 * names (the model the client asked for) and route names; an absent list
 * allows everything. Expiry is an RFC 3339 time; an expired key is refused
 * like an unknown one (401 invalid_api_key), with its own message.
 *
 * Everything here is read-only after configuration, shared by every
 * thread without locks; results come from the caller's pool.
 */
#ifndef LLMGW_ACCESS_H
#define LLMGW_ACCESS_H

#include <jansson.h>
#include "llmgw.h"
#include "llmgw_config.h"

/** Digest size of a key (SHA-256). */
#define LLMGW_ACCESS_DIGEST 32

/**
 * Output tokens reserved for a request that sets neither max_tokens nor
 * max_completion_tokens (and for the Messages dialect, max_tokens is
 * always set). Reconciled with the provider's usage once it answers.
 */
#define LLMGW_ACCESS_DEFAULT_OUTPUT_RESERVE 1024

/** Prompt tokens counted for each image part of a request (estimate). */
#define LLMGW_ACCESS_IMAGE_TOKENS 1000

typedef enum {
    LLMGW_PERIOD_NONE = 0,
    LLMGW_PERIOD_DAY,  /**< from 00:00 UTC */
    LLMGW_PERIOD_WEEK, /**< from Monday 00:00 UTC (ISO week) */
    LLMGW_PERIOD_MONTH /**< from the 1st, 00:00 UTC */
} llmgw_period_e;

/** `budget: {usd, period}`. */
typedef struct {
    apr_int64_t nusd; /**< the budget in nano-USD (1e-9 USD); 0: no budget */
    llmgw_period_e period;
} llmgw_budget_cfg_t;

typedef enum { LLMGW_ACCESS_KEYS = 1, LLMGW_ACCESS_PRINCIPAL } llmgw_access_mode_e;

typedef enum { LLMGW_ACCESS_KIND_KEY = 0, LLMGW_ACCESS_KIND_PRINCIPAL } llmgw_access_kind_e;

/** One entry of `keys:` or `principals:`. */
typedef struct {
    const char *name; /**< [A-Za-z0-9._-]+ for keys; any printable text for principals; "*" */
    int index;        /**< position in llmgw_access_cfg_t.entries */
    llmgw_access_kind_e kind;
    unsigned char digest[LLMGW_ACCESS_DIGEST]; /**< keys: SHA-256 of the key */
    apr_array_header_t *models;                /**< const char * globs; NULL: any model */
    apr_array_header_t *routes;                /**< const char * globs; NULL: any route */
    llmgw_limits_cfg_t limits;
    llmgw_budget_cfg_t budget;
    apr_time_t expires; /**< wall clock; 0: never */
    llmgw_mark_t mark;
    llmgw_mark_t models_mark, routes_mark, budget_mark;
} llmgw_access_entry_t;

typedef enum { LLMGW_SOURCE_ENV = 1, LLMGW_SOURCE_HEADER } llmgw_source_e;

/** `access:` of a gateway.yaml. */
typedef struct llmgw_access_cfg_t {
    llmgw_access_mode_e mode;
    llmgw_source_e source;           /**< principal mode: where the identity is */
    const char *source_name;         /**< the variable or header name */
    apr_array_header_t *entries;     /**< llmgw_access_entry_t *, file order */
    const llmgw_access_entry_t *any; /**< the "*" principal, or NULL */
    apr_hash_t *by_name;             /**< principal name -> entry (not "*") */
    llmgw_mark_t mark;
    /** SHA-256 fetched once (OpenSSL 3 looks an implicit EVP_sha256() up
     *  again on every digest); NULL: the implicit one. Freed with the pool. */
    struct evp_md_st *sha256;
} llmgw_access_cfg_t;

/** Why llmgw_access_identify found no entry. */
typedef enum {
    LLMGW_ACCESS_OK = 0,
    LLMGW_ACCESS_MISSING, /**< no key / no identity */
    LLMGW_ACCESS_UNKNOWN, /**< a key no entry has; a principal not listed and no "*" */
    LLMGW_ACCESS_EXPIRED
} llmgw_access_verdict_e;

/**
 * Parse `sha256:` text: exactly 64 hex digits (either case) into @p out.
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t llmgw_access_digest_parse(const char *hex, unsigned char out[LLMGW_ACCESS_DIGEST]);

/**
 * The key of an `Authorization` header value ("Bearer <key>", scheme
 * without case) or of an `x-api-key` value (@p is_api_key), without
 * surrounding blanks; NULL when there is none. Borrowed from @p value or
 * allocated from @p p.
 */
const char *llmgw_access_key_from_header(apr_pool_t *p, const char *value, int is_api_key);

/**
 * The entry whose digest is SHA-256(@p key), compared in constant time
 * against every entry (see the file comment). NULL when none.
 */
const llmgw_access_entry_t *llmgw_access_find_key(const llmgw_access_cfg_t *a, const char *key);

/** The longest key a connection remembers (longer ones are looked up every time). */
#define LLMGW_ACCESS_MEMO_KEY 256

/**
 * What a connection remembers of its last key (llmgw_access_find_key_memo):
 * zeroed when the connection starts.
 */
typedef struct {
    const llmgw_access_cfg_t *cfg;
    const llmgw_access_entry_t *entry;
    apr_size_t len;
    int armed; /**< the wipe of key is registered */
    char key[LLMGW_ACCESS_MEMO_KEY];
} llmgw_access_key_memo_t;

/**
 * llmgw_access_find_key, once per connection and key: a client sends the
 * same key on every request of a kept-alive connection, so the SHA-256 and
 * the scan of every entry are done only when the key (or the
 * configuration) differs from the last one @p memo found; the result is
 * remembered in @p memo, which lives in @p p (the connection's pool) and
 * whose key copy is wiped when @p p goes. Keys that match no entry are not
 * remembered. The comparison with the remembered key is in constant time
 * for keys of its length.
 */
const llmgw_access_entry_t *llmgw_access_find_key_memo(const llmgw_access_cfg_t *a, const char *key,
                                                       llmgw_access_key_memo_t *memo,
                                                       apr_pool_t *p);

/**
 * The entry for principal @p name: listed by name, else "*", else NULL.
 * @p listed receives 1 when it was listed by name.
 */
const llmgw_access_entry_t *llmgw_access_find_principal(const llmgw_access_cfg_t *a,
                                                        const char *name, int *listed);

/** LLMGW_ACCESS_EXPIRED when @p e has expired at wall-clock @p now, else LLMGW_ACCESS_OK. */
llmgw_access_verdict_e llmgw_access_check_expiry(const llmgw_access_entry_t *e, apr_time_t now);

/** 1 when the entry may use route @p route_name. */
int llmgw_access_route_allowed(const llmgw_access_entry_t *e, const char *route_name);

/**
 * 1 when the entry may ask for @p model. A request without a model asks
 * for the route's default, which an allowlist cannot judge: it is allowed
 * only without a models allowlist.
 */
int llmgw_access_model_allowed(const llmgw_access_entry_t *e, const char *model);

/** 1 when @p name matches one of the globs of @p globs (NULL: everything). */
int llmgw_access_globs_match(const apr_array_header_t *globs, const char *name);

/**
 * The tokens a request reserves before it is sent (DESIGN.md 11): its
 * prompt estimated from its size, plus the output it may produce.
 *
 *   prompt  = ceil(characters of text / 4)      every string in messages[]
 *                                               (content, text parts, names,
 *                                               tool-call arguments), tools,
 *                                               functions, input (embeddings)
 *           + 4 per message
 *           + LLMGW_ACCESS_IMAGE_TOKENS per image part
 *           + 1 per token id of a token-id embeddings input
 *   output  = max_completion_tokens, else max_tokens, else
 *             LLMGW_ACCESS_DEFAULT_OUTPUT_RESERVE (chat); 0 (embeddings)
 *
 * Four characters per token is the usual rule of thumb for English text
 * with BPE tokenizers; the estimate only has to hold the place until the
 * provider's reported usage replaces it.
 * @param body  the (validated) client request; borrowed
 */
void llmgw_access_estimate(const json_t *body, llmgw_api_e api, apr_int64_t *prompt,
                           apr_int64_t *output);

/**
 * Parse an RFC 3339 date-time ("2027-01-01T00:00:00Z",
 * "2026-06-30T12:00:00.5+02:00") into wall-clock @p out.
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t llmgw_access_time_parse(const char *text, apr_time_t *out);

/** "day", "week", "month" ("" for NONE). */
const char *llmgw_period_name(llmgw_period_e p);

/** Wall-clock start (UTC) of the period of kind @p p containing @p now; 0 for NONE. */
apr_time_t llmgw_period_start(llmgw_period_e p, apr_time_t now);

/** Wall-clock start (UTC) of the period after the one containing @p now; 0 for NONE. */
apr_time_t llmgw_period_next(llmgw_period_e p, apr_time_t now);

#endif /* LLMGW_ACCESS_H */
