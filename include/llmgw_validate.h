/**
 * @file llmgw_validate.h
 * @brief The schema checks of a client's OpenAI request, before any
 *        provider sees it (DESIGN.md 6, providers.md 2.1, 2.2 and 2.6).
 *
 * The glue parses the body and calls llmgw_validate_request once; a request
 * that fails gets the returned 400 and never reaches an upstream, so a
 * malformed request fails the same way whatever the backend. Only what holds
 * for every provider is checked here: the body is an object, `model` is a
 * string, chat `messages` are well-formed with known roles, the sampling,
 * length, tool and streaming parameters have the right types and ranges, and
 * embeddings `input` has one of the shapes OpenAI accepts and `dimensions`,
 * when given, is an integer in 1..LLMGW_MAX_EMBEDDING_DIMENSIONS. What only
 * some providers refuse is left to their translators.
 */
#ifndef LLMGW_VALIDATE_H
#define LLMGW_VALIDATE_H

#include <jansson.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"

/**
 * The largest embeddings `dimensions` a client may ask for: above every
 * model's output size today (OpenAI's and Gemini's largest are 3072, open
 * models' 4096 to 8192), so no real request is refused, and far below what
 * lets one request make an upstream build absurd vectors.
 */
#define LLMGW_MAX_EMBEDDING_DIMENSIONS 16384

/**
 * Check @p body, the client's parsed request for a route serving @p api.
 * Pure: reads @p body only (which may be NULL or any JSON value).
 * @return NULL when the request may be served, else a 400 error from @p p
 *         whose `param` names the offending field (NULL for a body that is
 *         not an object). A route serving LLMGW_API_MODELS takes no body:
 *         only the checks common to every API apply.
 */
llmgw_error_t *llmgw_validate_request(apr_pool_t *p, llmgw_api_e api, const json_t *body);

#endif /* LLMGW_VALIDATE_H */
