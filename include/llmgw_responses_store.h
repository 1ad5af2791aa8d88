/**
 * @file llmgw_responses_store.h
 * @brief The pure half of the Responses store (ingress.md 3.7, 5): records,
 *        previous_response_id and item_reference expansion, and the answers
 *        of GET / DELETE / input_items. No database here: the glue looks
 *        records up and hands them in as JSON.
 *
 * A record (ingress.md 5.3) is one JSON object:
 *
 *   {"id", "owner", "created_at", "expires_at", "previous_response_id",
 *    "input_items": [...], "output_items": [...], "response": {...},
 *    "backend", "native_stored"}
 *
 * How the glue uses it, for a request whose decode set needs_history:
 *
 *   1. ids = llmgw_responses_referenced_ids(client); fetch each id's item
 *      (owner-scoped) into an object id -> item;
 *   2. llmgw_responses_resolve_input(client, items) -> the request's own
 *      input, item_reference replaced (kept for the record: step 5);
 *   3. with previous_response_id: fetch its record and its ancestors
 *      (iteratively, at most LLMGW_RESPONSES_MAX_DEPTH) into a chain, oldest
 *      first; a missing one is llmgw_responses_error_previous_not_found;
 *   4. per candidate: translated -> llmgw_responses_expand (the canonical
 *      request); native that owns the chain's last record
 *      (llmgw_responses_native_continues) -> the client's request as it is;
 *      other native -> llmgw_responses_native_body, sent with native_request;
 *   5. the answer: llmgw_responses_record, stored before the terminal event.
 *
 * Lifetimes: results are owned by the pool passed in; json_t arguments are
 * borrowed.
 */
#ifndef LLMGW_RESPONSES_STORE_H
#define LLMGW_RESPONSES_STORE_H

#include <jansson.h>
#include "llmgw_ingress.h"

/** Longest previous_response_id chain walked (ingress.md 5.3). */
#define LLMGW_RESPONSES_MAX_DEPTH 1000

/* ---------------------------------------------------------------------- */
/* Expansion (ingress.md 5.4)                                             */
/* ---------------------------------------------------------------------- */

/** The ids the client's input names in item_reference items, in order (may be empty). */
json_t *llmgw_responses_referenced_ids(apr_pool_t *p, const json_t *client);

/**
 * The client's `input` as item objects: a string becomes one user message,
 * a message without `type` gets it, and each item_reference is replaced by
 * @p referenced[id] (an object id -> item; NULL: none known). Index i of the
 * result is index i of the client's input. A reference to an unknown id:
 * LLMGW_EBADREQ, *err 400 invalid_value, param "input[i].id".
 */
apr_status_t llmgw_responses_resolve_input(apr_pool_t *p, const json_t *client,
                                           const json_t *referenced, json_t **input,
                                           llmgw_error_t **err);

/**
 * The effective history of @p chain (records, oldest first, the last one
 * being the record of @p previous_response_id): every record's input_items
 * then output_items. The chain must link up (each record's
 * previous_response_id is the id before it, the first has none) and be at
 * most LLMGW_RESPONSES_MAX_DEPTH long; a failed last record cannot be
 * continued. Failures are 400s naming previous_response_id.
 */
apr_status_t llmgw_responses_history(apr_pool_t *p, const json_t *chain,
                                     const char *previous_response_id, json_t **items,
                                     llmgw_error_t **err);

/**
 * The canonical request for a translated candidate: @p history (NULL: none)
 * followed by @p input (from llmgw_responses_resolve_input), with the
 * client's own instructions and parameters. Errors name the client's fields
 * (input[i] is index i of the client's input); an orphan
 * function_call_output in the history itself names previous_response_id.
 * out->needs_history is 0.
 */
apr_status_t llmgw_responses_expand(apr_pool_t *p, const json_t *client, const json_t *history,
                                    const json_t *input, llmgw_ingress_request_t *out,
                                    llmgw_error_t **err);

/**
 * Can native backend @p backend continue from @p record itself (it answered
 * it and stored it upstream: native_stored)? Then previous_response_id goes
 * upstream unchanged (ingress.md 5.4 step 2).
 */
int llmgw_responses_native_continues(const json_t *record, const char *backend);

/**
 * The request body for a native candidate that cannot continue upstream: the
 * client's request without previous_response_id, whose input is the chain's
 * history then @p input. Items the upstream would look up and not find lose
 * their `id`, and reasoning items it did not produce are left out: only the
 * output items of records @p backend answered and stored keep theirs.
 * @p chain may be NULL (item_reference without previous_response_id).
 * Send it with native_request (raw NULL). New reference owned by @p p.
 */
json_t *llmgw_responses_native_body(apr_pool_t *p, const json_t *client, const json_t *chain,
                                    const json_t *input, const char *backend);

/* ---------------------------------------------------------------------- */
/* Records (ingress.md 5.3)                                               */
/* ---------------------------------------------------------------------- */

typedef struct {
    const json_t *client;           /**< the client's request as received */
    const json_t *input;            /**< its resolved input (llmgw_responses_resolve_input) */
    const json_t *response;         /**< the final response object as sent */
    const char *owner;              /**< key or principal; NULL: "" (an open gateway) */
    const char *backend;            /**< the backend that answered */
    int native_stored;              /**< a native upstream stored it too (`store` not false) */
    apr_interval_time_t ttl;        /**< retention; expires_at = created_at + ttl */
    llmgw_ingress_random_fn random; /**< for ids of input items; NULL: APR's */
    void *random_baton;
} llmgw_responses_record_in_t;

/**
 * The record of a terminal response. Input items without an id get one
 * (`msg_gw…`, `fco_gw…`, ...: the input_items listing needs ids) and their
 * string contents become parts, as OpenAI lists them. Returns APR_EINVAL
 * (nothing built) when the response must not be stored: `store:false`, or a
 * status other than completed, incomplete and failed.
 */
apr_status_t llmgw_responses_record(apr_pool_t *p, const llmgw_responses_record_in_t *in,
                                    json_t **record);

/** May @p owner (NULL: "") see @p record at @p now (seconds)? Not foreign, not expired. */
int llmgw_responses_record_visible(const json_t *record, const char *owner, apr_time_t now);

/* ---------------------------------------------------------------------- */
/* GET, DELETE, input_items, cancel (ingress.md 3.7)                      */
/* ---------------------------------------------------------------------- */

/**
 * GET /v1/responses/{id}: the response as it was sent (*body borrowed from
 * @p record). @p stream (the query's `stream` value, NULL when absent) true
 * or a @p starting_after: 400 background_not_supported.
 */
apr_status_t llmgw_responses_retrieve(apr_pool_t *p, const json_t *record, const char *stream,
                                      const char *starting_after, const json_t **body,
                                      llmgw_error_t **err);

/** DELETE /v1/responses/{id}: {"id","object":"response","deleted":true}, owned by @p p. */
json_t *llmgw_responses_deleted(apr_pool_t *p, const char *id);

/**
 * GET /v1/responses/{id}/input_items: the cursor page of the record's input
 * items for the query values @p after, @p limit (1-100, default 20) and
 * @p order ("asc" / "desc", default desc), each NULL when absent. A bad
 * value: 400 invalid_value naming it. *page owned by @p p.
 */
apr_status_t llmgw_responses_input_items(apr_pool_t *p, const json_t *record, const char *after,
                                         const char *limit, const char *order, json_t **page,
                                         llmgw_error_t **err);

/* ---------------------------------------------------------------------- */
/* The dialect's own errors (ingress.md 3.6, 5.5)                         */
/* ---------------------------------------------------------------------- */

/** 400 previous_response_not_found: unknown, expired, deleted or another owner's id. */
llmgw_error_t *llmgw_responses_error_previous_not_found(apr_pool_t *p, const char *id);

/**
 * 400 response_store_disabled for a request that needs the store on a route
 * without one: param previous_response_id, or input[i] of its first
 * item_reference.
 */
llmgw_error_t *llmgw_responses_error_store_disabled(apr_pool_t *p, const json_t *client);

/** 400 response_store_disabled for GET / DELETE / input_items without a store. */
llmgw_error_t *llmgw_responses_error_store_disabled_endpoint(apr_pool_t *p);

/** POST /v1/responses/{id}/cancel: always this 400 background_not_supported. */
llmgw_error_t *llmgw_responses_error_cancel(apr_pool_t *p);

/** 404 not_found for an id the store does not have for this owner. */
llmgw_error_t *llmgw_responses_error_not_found(apr_pool_t *p, const char *id);

#endif /* LLMGW_RESPONSES_STORE_H */
