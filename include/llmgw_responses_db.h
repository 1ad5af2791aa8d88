/**
 * @file llmgw_responses_db.h
 * @brief Where stored responses live (ingress.md 5): two tables in the
 *        ledger's database (`ledger:`), through apr_dbd.
 *
 *   llmgw_responses(id PRIMARY KEY, owner, expires_at, record)
 *   llmgw_response_items(id PRIMARY KEY, response_id, owner, expires_at, item)
 *
 * record is the JSON record of llmgw_responses_store.h (input and output
 * items, the response as sent, owner, expiry); item one input or output
 * item with an id, for item_reference. Owner and expiry are columns so that
 * lookups never return another owner's or an expired row, and expired rows
 * can be removed with one statement.
 *
 * Unlike the usage ledger, these rows are read and written on the request
 * path: a follow-up turn with previous_response_id must find the record of
 * the turn before (ingress.md 2.1 step 5), so it is written before the
 * answer's terminal event leaves. One connection per child (opened on
 * first use), shared by its threads under a mutex; SQLite waits for other
 * writers (busy_timeout) instead of failing.
 *
 * Core: no httpd. Results come from the pool passed in.
 */
#ifndef LLMGW_RESPONSES_DB_H
#define LLMGW_RESPONSES_DB_H

#include <jansson.h>
#include "llmgw.h"
#include "llmgw_ledger.h"

/** How long a stored response is kept: OpenAI keeps them 30 days. */
#define LLMGW_RESPONSES_TTL apr_time_from_sec(30 * 24 * 3600)

typedef struct llmgw_responses_db_t llmgw_responses_db_t;

/**
 * Connect to the ledger database @p cfg and create the tables when missing.
 * The handle lives in a subpool of @p p (a child's pool) and is closed with
 * it. @p msg: why not (driver, connection or schema error).
 */
apr_status_t llmgw_responses_db_open(llmgw_responses_db_t **out, apr_pool_t *p,
                                     const llmgw_ledger_cfg_t *cfg, const char **msg);

/**
 * The record of response @p id when @p owner (NULL: "") may see it at
 * @p now (seconds); APR_NOTFOUND otherwise. *record from @p p.
 */
apr_status_t llmgw_responses_db_get(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                    const char *owner, apr_time_t now, json_t **record,
                                    const char **msg);

/** Item @p id of a response of @p owner, unexpired at @p now; APR_NOTFOUND otherwise. */
apr_status_t llmgw_responses_db_item(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                     const char *owner, apr_time_t now, json_t **item,
                                     const char **msg);

/**
 * Store @p record (llmgw_responses_record's) and its items with ids, in one
 * transaction. An item id already stored keeps its first row (a client
 * sends earlier items again, with their ids). Every so often also removes
 * expired rows.
 */
apr_status_t llmgw_responses_db_put(llmgw_responses_db_t *db, apr_pool_t *p, const json_t *record,
                                    const char **msg);

/** Remove response @p id of @p owner and its items; APR_NOTFOUND when there is none. */
apr_status_t llmgw_responses_db_delete(llmgw_responses_db_t *db, apr_pool_t *p, const char *id,
                                       const char *owner, const char **msg);

#endif /* LLMGW_RESPONSES_DB_H */
