/**
 * @file llmgw_redact.h
 * @brief One redaction step for provider text on its way to a client or a
 *        log (DESIGN.md 10).
 *
 * Providers echo credentials in error text at times ("invalid x-api-key
 * sk-ant-...", "Quota exceeded for key AIza..."), in full or in part. The
 * glue passes every provider-written string it shows or logs through
 * llmgw_redact() with the configuration's secrets plus whatever it minted
 * for the request (a Vertex AI access token), whatever the provider type,
 * so no translator has to remember it.
 *
 * A secret is replaced where it occurs whole, and so is any run of at least
 * LLMGW_REDACT_FRAGMENT of its characters (a truncated echo). Secrets
 * shorter than LLMGW_REDACT_MIN are ignored: they would match plain words,
 * and no provider issues keys that short.
 */
#ifndef LLMGW_REDACT_H
#define LLMGW_REDACT_H

#include "llmgw.h"
#include "llmgw_error.h"

/** Shortest secret taken into account. */
#define LLMGW_REDACT_MIN 8
/** Shortest part of a longer secret that is redacted on its own. */
#define LLMGW_REDACT_FRAGMENT 16
/** What stands in for a secret. */
#define LLMGW_REDACTED "[redacted]"

/** A set of secrets; the strings are borrowed and must outlive it. */
typedef struct llmgw_secrets_t llmgw_secrets_t;
struct llmgw_secrets_t {
    apr_array_header_t *items; /**< const char * */
};

/** An empty set allocated from @p p. */
llmgw_secrets_t *llmgw_secrets_make(apr_pool_t *p);

/** Add @p secret (NULL or shorter than LLMGW_REDACT_MIN: ignored; duplicates once). */
void llmgw_secrets_add(llmgw_secrets_t *s, const char *secret);

/**
 * @p text without any secret of @p s nor @p extra (may be NULL). Returns
 * @p text itself when nothing matched, else a new string from @p p.
 * NULL stays NULL.
 */
const char *llmgw_redact(apr_pool_t *p, const char *text, const llmgw_secrets_t *s,
                         const char *extra);

/**
 * @p e with message, param, code and type redacted: @p e itself when
 * nothing matched, else a copy from @p p.
 */
const llmgw_error_t *llmgw_redact_error(apr_pool_t *p, const llmgw_error_t *e,
                                        const llmgw_secrets_t *s, const char *extra);

#endif /* LLMGW_REDACT_H */
