/**
 * @file llmgw_json.h
 * @brief jansson helpers tied to APR pools.
 */
#ifndef LLMGW_JSON_H
#define LLMGW_JSON_H

#include <jansson.h>
#include "llmgw.h"

/** Register json_decref of @p j on @p p; returns @p j (the pool now owns that reference). */
json_t *llmgw_json_pool_own(apr_pool_t *p, json_t *j);

/** Serialise @p j compactly into memory from @p p (one exact-size allocation). */
const char *llmgw_json_dump(apr_pool_t *p, const json_t *j, apr_size_t *len);

/** String member of an object, or NULL when absent or not a string. Borrowed. */
const char *llmgw_json_str(const json_t *obj, const char *key);

/**
 * May bytes json_loadb accepted go on verbatim, as JSON for any other parser?
 * jansson 2.14 is more lenient than JSON.parse in one way: it takes a raw
 * NUL byte after a number or a literal (`"created":1\0,`). Such bytes must
 * be serialised anew (from what jansson parsed) before they are forwarded.
 * Returns 0 when @p text (counted by @p len) holds a NUL byte.
 */
int llmgw_json_verbatim_ok(const char *text, apr_size_t len);

/** @p v is missing (NULL, as json_object_get answers for an absent member) or JSON null. */
int llmgw_json_is_absent(const json_t *v);

#endif /* LLMGW_JSON_H */
