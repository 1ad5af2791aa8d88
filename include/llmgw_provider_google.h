/**
 * @file llmgw_provider_google.h
 * @brief What the Google (Gemini API / Vertex AI) translator exports beside
 *        its llmgw_provider_t: pure functions of upstream bytes, no I/O.
 *
 * Kept apart from llmgw_google_auth.h, which does I/O (the token exchange
 * through the upstream client), so that the translator needs nothing but
 * the translator interfaces (llmgw_provider.h).
 */
#ifndef LLMGW_PROVIDER_GOOGLE_H
#define LLMGW_PROVIDER_GOOGLE_H

#include "llmgw.h"

/**
 * The retry hint of a Google error body: details[] RetryInfo.retryDelay
 * ("37s", "1.5s"), in microseconds; -1 when there is none (providers.md
 * 9.1, after retry-after-ms and retry-after).
 */
apr_interval_time_t llmgw_google_retry_delay(const char *body, apr_size_t len);

#endif /* LLMGW_PROVIDER_GOOGLE_H */
