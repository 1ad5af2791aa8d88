/*
 * Private to the anthropic translator, shared by its two files:
 * llmgw_provider_anthropic_request.c (requests) and
 * llmgw_provider_anthropic.c (answers, errors, streams and the
 * llmgw_provider_t table).
 */
#ifndef LLMGW_PROVIDER_ANTHROPIC_PRIVATE_H
#define LLMGW_PROVIDER_ANTHROPIC_PRIVATE_H

#include <string.h>
#include "llmgw_provider.h"

/* Both NULL-safe strings equal. */
static inline int llmgw_anthropic_str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/** The translator's build_request (llmgw_provider_t). */
/** The backend's request constants (llmgw_provider_t.prepare). */
const void *llmgw_anthropic_prepare(const llmgw_backend_t *b, apr_pool_t *p);
apr_status_t llmgw_anthropic_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                           llmgw_error_t **err);

#endif /* LLMGW_PROVIDER_ANTHROPIC_PRIVATE_H */
