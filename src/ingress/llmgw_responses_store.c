/*
 * The pure half of the Responses store (ingress.md 3.7, 5): see
 * llmgw_responses_store.h for how the glue drives it.
 *
 * History is a chain of records. Turn 2 of a tool conversation sends only
 * the tool's output and names turn 1:
 *
 *   record resp_1: input_items [user "Weather in Lisbon?"]
 *                  output_items [function_call call_7 get_weather]
 *   request 2:     previous_response_id resp_1,
 *                  input [function_call_output call_7 "18C"]
 *   expanded:      user, assistant tool_calls [call_7], tool call_7 "18C"
 *
 * Turn 1's `instructions` are not carried over (5.1): only the request's own
 * are sent.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "llmgw_responses_store.h"
#include "llmgw_responses_private.h"

/* The default retention of records (ingress.md 5.2: ttl 30d). */
#define DEFAULT_TTL apr_time_from_sec(30 * 24 * 3600)

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

llmgw_error_t *llmgw_responses_error_previous_not_found(apr_pool_t *p, const char *id)
{
    return llmgw_rsp_bad(p, "previous_response_not_found", "previous_response_id",
                         "Previous response with id '%s' not found.", id ? id : "");
}

/* The index of the first item_reference of the client's input, or -1. */
static int first_reference(const json_t *client)
{
    json_t *item;
    size_t i;

    json_array_foreach (json_object_get(client, "input"), i, item) {
        const char *type = llmgw_rsp_item_type(item);
        if (type && strcmp(type, "item_reference") == 0)
            return (int)i;
    }
    return -1;
}

llmgw_error_t *llmgw_responses_error_store_disabled(apr_pool_t *p, const json_t *client)
{
    int ref = first_reference(client);

    if (!llmgw_json_is_absent(json_object_get(client, "previous_response_id")) || ref < 0)
        return llmgw_rsp_bad(p, "response_store_disabled", "previous_response_id",
                             "previous_response_id needs the gateway response store, which is "
                             "not configured for this route; resend the full conversation in "
                             "input, or use store:false stateless mode.");
    return llmgw_rsp_bad(p, "response_store_disabled", llmgw_rsp_path(p, "input[%d]", ref),
                         "item_reference needs the gateway response store, which is not "
                         "configured for this route; send the referenced item itself in input.");
}

llmgw_error_t *llmgw_responses_error_store_disabled_endpoint(apr_pool_t *p)
{
    return llmgw_rsp_bad(p, "response_store_disabled", NULL,
                         "Stored responses need the gateway response store, which is not "
                         "configured for this route.");
}

llmgw_error_t *llmgw_responses_error_cancel(apr_pool_t *p)
{
    return llmgw_rsp_bad(p, "background_not_supported", NULL,
                         "Cancelling is only possible for background responses, which this "
                         "gateway does not support.");
}

llmgw_error_t *llmgw_responses_error_not_found(apr_pool_t *p, const char *id)
{
    return llmgw_error_make(p, 404, "invalid_request_error", "not_found", NULL,
                            "Response with id '%s' not found.", id ? id : "");
}

/* ---------------------------------------------------------------------- */
/* Expansion                                                              */
/* ---------------------------------------------------------------------- */

json_t *llmgw_responses_referenced_ids(apr_pool_t *p, const json_t *client)
{
    json_t *ids = json_array(), *item;
    size_t i;

    json_array_foreach (json_object_get(client, "input"), i, item) {
        const char *type = llmgw_rsp_item_type(item);
        json_t *id = json_object_get(item, "id");
        if (type && strcmp(type, "item_reference") == 0 && json_is_string(id))
            json_array_append(ids, id);
    }
    return llmgw_json_pool_own(p, ids);
}

apr_status_t llmgw_responses_resolve_input(apr_pool_t *p, const json_t *client,
                                           const json_t *referenced, json_t **input,
                                           llmgw_error_t **err)
{
    json_t *in = json_object_get(client, "input"), *out, *item;
    size_t i;

    if (json_is_string(in)) {
        out = json_pack("[{s:s, s:s, s:O}]", "type", "message", "role", "user", "content", in);
        *input = llmgw_json_pool_own(p, out);
        return APR_SUCCESS;
    }
    out = json_array();
    json_array_foreach (in, i, item) {
        const char *type = llmgw_rsp_item_type(item);
        if (type && strcmp(type, "item_reference") == 0) {
            const char *id = llmgw_json_str(item, "id");
            json_t *ref = id ? json_object_get(referenced, id) : NULL;
            if (!json_is_object(ref)) {
                json_decref(out);
                *err = llmgw_rsp_bad(p, "invalid_value", llmgw_rsp_path(p, "input[%d].id", (int)i),
                                     "Item with id '%s' not found.", id ? id : "");
                return LLMGW_EBADREQ;
            }
            json_array_append_new(out, json_deep_copy(ref));
        }
        else if (type && strcmp(type, "message") == 0 && !json_object_get(item, "type")) {
            json_t *copy = json_copy(item);
            json_object_set_new(copy, "type", json_string("message"));
            json_array_append_new(out, copy);
        }
        else {
            json_array_append(out, item);
        }
    }
    *input = llmgw_json_pool_own(p, out);
    return APR_SUCCESS;
}

apr_status_t llmgw_responses_history(apr_pool_t *p, const json_t *chain,
                                     const char *previous_response_id, json_t **items,
                                     llmgw_error_t **err)
{
    size_t n = json_array_size(chain), i;
    const char *before = NULL, *status;
    json_t *out, *rec;

    if (n > LLMGW_RESPONSES_MAX_DEPTH) {
        *err = llmgw_rsp_bad(p, "invalid_value", "previous_response_id",
                             "The conversation of previous response '%s' is longer than %d "
                             "responses.",
                             previous_response_id, LLMGW_RESPONSES_MAX_DEPTH);
        return LLMGW_EBADREQ;
    }
    for (i = 0; i < n; i++) {
        const char *id, *parent;
        rec = json_array_get(chain, i);
        id = llmgw_json_str(rec, "id");
        parent = llmgw_json_str(rec, "previous_response_id");
        /* A link the store could not supply (expired first, deleted): the
         * conversation cannot be rebuilt. */
        if (!id || (parent ? !before || strcmp(parent, before) != 0 : before != NULL)) {
            *err =
                llmgw_responses_error_previous_not_found(p, parent ? parent : previous_response_id);
            return LLMGW_EBADREQ;
        }
        before = id;
    }
    if (!before || !previous_response_id || strcmp(before, previous_response_id) != 0) {
        *err = llmgw_responses_error_previous_not_found(p, previous_response_id);
        return LLMGW_EBADREQ;
    }
    rec = json_array_get(chain, n - 1);
    status = llmgw_json_str(json_object_get(rec, "response"), "status");
    if (status && strcmp(status, "failed") == 0) {
        *err = llmgw_rsp_bad(p, "invalid_value", "previous_response_id",
                             "Previous response with id '%s' failed and cannot be continued.",
                             previous_response_id);
        return LLMGW_EBADREQ;
    }
    out = json_array();
    json_array_foreach (chain, i, rec) {
        json_array_extend(out, json_object_get(rec, "input_items"));
        json_array_extend(out, json_object_get(rec, "output_items"));
    }
    *items = llmgw_json_pool_own(p, out);
    return APR_SUCCESS;
}

apr_status_t llmgw_responses_expand(apr_pool_t *p, const json_t *client, const json_t *history,
                                    const json_t *input, llmgw_ingress_request_t *out,
                                    llmgw_error_t **err)
{
    json_t *v;

    memset(out, 0, sizeof(*out));
    out->stream = json_is_true(json_object_get(client, "stream"));
    if (json_is_string(v = json_object_get(client, "model")))
        out->model = apr_pstrdup(p, json_string_value(v));
    out->store = !json_is_false(json_object_get(client, "store"));
    if (json_is_string(v = json_object_get(client, "previous_response_id")))
        out->previous_response_id = apr_pstrdup(p, json_string_value(v));
    out->max_output_tokens = json_is_integer(v = json_object_get(client, "max_output_tokens"))
                                 ? json_integer_value(v)
                                 : -1;
    return llmgw_rsp_canonical(p, client, history, input, out, err);
}

int llmgw_responses_native_continues(const json_t *record, const char *backend)
{
    const char *b = llmgw_json_str(record, "backend");

    return b && backend && strcmp(b, backend) == 0 &&
           json_is_true(json_object_get(record, "native_stored"));
}

static int is_reasoning(const json_t *item)
{
    const char *type = llmgw_rsp_item_type(item);
    return type && strcmp(type, "reasoning") == 0;
}

/* @p item without its id (a copy), or left out when it is a reasoning item. */
static void append_foreign(json_t *out, const json_t *item)
{
    json_t *copy;

    if (is_reasoning(item) || !json_is_object(item))
        return;
    copy = json_copy((json_t *)item);
    json_object_del(copy, "id");
    json_array_append_new(out, copy);
}

json_t *llmgw_responses_native_body(apr_pool_t *p, const json_t *client, const json_t *chain,
                                    const json_t *input, const char *backend)
{
    json_t *body = json_copy((json_t *)client), *items = json_array(), *rec, *item;
    json_t *own = json_object_get(client, "input");
    size_t i, j;

    json_object_del(body, "previous_response_id");
    json_array_foreach (chain, i, rec) {
        int ours = llmgw_responses_native_continues(rec, backend);
        /* Stored input items carry ids the gateway minted: never the upstream's. */
        json_array_foreach (json_object_get(rec, "input_items"), j, item) {
            if (ours && is_reasoning(item))
                json_array_append(items, item);
            else
                append_foreign(items, item);
        }
        json_array_foreach (json_object_get(rec, "output_items"), j, item) {
            if (ours)
                json_array_append(items, item);
            else
                append_foreign(items, item);
        }
    }
    json_array_foreach (input, i, item) {
        json_t *mine = json_array_get(own, i);
        const char *type = llmgw_rsp_item_type(mine);
        if (type && strcmp(type, "item_reference") == 0)
            append_foreign(items, item);
        else
            json_array_append(items, json_is_array(own) ? mine : item);
    }
    json_object_set_new(body, "input", items);
    return llmgw_json_pool_own(p, body);
}

/* ---------------------------------------------------------------------- */
/* Records                                                                */
/* ---------------------------------------------------------------------- */

/* An input item as OpenAI lists it: with `type`, parts for string contents, an id. */
static json_t *normalise_item(apr_pool_t *p, const json_t *item,
                              const llmgw_responses_record_in_t *in)
{
    const char *type = llmgw_rsp_item_type(item);
    json_t *copy, *content;
    const char *prefix;

    if (!json_is_object(item))
        return json_incref((json_t *)item);
    copy = json_copy((json_t *)item);
    if (type && strcmp(type, "message") == 0) {
        json_object_set_new(copy, "type", json_string("message"));
        content = json_object_get(item, "content");
        if (json_is_string(content)) {
            int assistant = strcmp(llmgw_json_str(item, "role") ? llmgw_json_str(item, "role") : "",
                                   "assistant") == 0;
            json_t *part = json_pack("{s:s, s:O}", "type", assistant ? "output_text" : "input_text",
                                     "text", content);
            if (assistant)
                json_object_set_new(part, "annotations", json_array());
            json_object_set_new(copy, "content", json_pack("[o]", part));
        }
    }
    if (!llmgw_json_str(copy, "id") || !*llmgw_json_str(copy, "id")) {
        prefix = !type                                       ? "itm_gw"
                 : strcmp(type, "message") == 0              ? "msg_gw"
                 : strcmp(type, "function_call_output") == 0 ? "fco_gw"
                 : strcmp(type, "function_call") == 0        ? "fc_gw"
                 : strcmp(type, "reasoning") == 0            ? "rs_gw"
                                                             : "itm_gw";
        json_object_set_new(
            copy, "id",
            json_string(llmgw_responses_mint_id(p, prefix, LLMGW_RESPONSES_ITEM_ID_CHARS,
                                                in->random, in->random_baton)));
    }
    return copy;
}

apr_status_t llmgw_responses_record(apr_pool_t *p, const llmgw_responses_record_in_t *in,
                                    json_t **record)
{
    const json_t *resp = in->response;
    const char *status = llmgw_json_str(resp, "status");
    const char *id = llmgw_json_str(resp, "id");
    json_t *created = json_object_get(resp, "created_at"), *items, *item, *prev, *output;
    apr_time_t at, ttl = in->ttl > 0 ? in->ttl : DEFAULT_TTL;
    size_t i;

    if (json_is_false(json_object_get(in->client, "store")) || !id || !*id || !status ||
        (strcmp(status, "completed") != 0 && strcmp(status, "incomplete") != 0 &&
         strcmp(status, "failed") != 0))
        return APR_EINVAL;
    at = json_is_integer(created) ? (apr_time_t)json_integer_value(created)
                                  : apr_time_sec(apr_time_now());
    items = json_array();
    json_array_foreach (in->input, i, item)
        json_array_append_new(items, normalise_item(p, item, in));
    prev = json_object_get(in->client, "previous_response_id");
    output = json_object_get(resp, "output");
    *record = llmgw_json_pool_own(
        p,
        json_pack("{s:s, s:s, s:I, s:I, s:O, s:o, s:O, s:O, s:s, s:b}", "id", id, "owner",
                  in->owner ? in->owner : "", "created_at", (json_int_t)at, "expires_at",
                  (json_int_t)(at + apr_time_sec(ttl)), "previous_response_id",
                  json_is_string(prev) ? prev : json_null(), "input_items", items, "output_items",
                  json_is_array(output) ? output : json_array(), "response", resp, "backend",
                  in->backend ? in->backend : "", "native_stored", in->native_stored ? 1 : 0));
    return *record ? APR_SUCCESS : APR_EINVAL;
}

int llmgw_responses_record_visible(const json_t *record, const char *owner, apr_time_t now)
{
    const char *o = llmgw_json_str(record, "owner");
    json_t *exp = json_object_get(record, "expires_at");

    if (!o || strcmp(o, owner ? owner : "") != 0)
        return 0;
    return json_is_integer(exp) && (apr_time_t)json_integer_value(exp) > now;
}

/* ---------------------------------------------------------------------- */
/* GET, DELETE, input_items                                               */
/* ---------------------------------------------------------------------- */

apr_status_t llmgw_responses_retrieve(apr_pool_t *p, const json_t *record, const char *stream,
                                      const char *starting_after, const json_t **body,
                                      llmgw_error_t **err)
{
    const json_t *r = json_object_get(record, "response");
    /* Resuming a stream is what background responses do. */
    int streamed = stream && (strcmp(stream, "true") == 0 || strcmp(stream, "1") == 0);

    if (streamed || starting_after) {
        *err = llmgw_rsp_bad(p, "background_not_supported", streamed ? "stream" : "starting_after",
                             "Streaming a stored response is only possible for background "
                             "responses, which this gateway does not support.");
        return LLMGW_EBADREQ;
    }
    if (!json_is_object(r)) {
        *err = llmgw_error_make(p, 500, "server_error", NULL, NULL,
                                "the stored response record is damaged");
        return APR_EGENERAL;
    }
    *body = r;
    return APR_SUCCESS;
}

json_t *llmgw_responses_deleted(apr_pool_t *p, const char *id)
{
    return llmgw_json_pool_own(
        p, json_pack("{s:s, s:s, s:b}", "id", id ? id : "", "object", "response", "deleted", 1));
}

apr_status_t llmgw_responses_input_items(apr_pool_t *p, const json_t *record, const char *after,
                                         const char *limit, const char *order, json_t **page,
                                         llmgw_error_t **err)
{
    json_t *items = json_object_get(record, "input_items"), *data;
    long n = (long)json_array_size(items), lim = 20, start = 0, k;
    int desc = 1;

    if (limit) {
        char *end;
        lim = strtol(limit, &end, 10);
        if (!*limit || *end || lim < 1 || lim > 100) {
            *err = llmgw_rsp_bad(p, "invalid_value", "limit",
                                 "Invalid value for 'limit': expected an integer from 1 to 100.");
            return LLMGW_EBADREQ;
        }
    }
    if (order) {
        if (strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
            *err = llmgw_rsp_bad(p, "invalid_value", "order",
                                 "Invalid value for 'order': expected 'asc' or 'desc'.");
            return LLMGW_EBADREQ;
        }
        desc = strcmp(order, "desc") == 0;
    }
#define ID_OF(item) (json_object_get((item), "id") ? json_object_get((item), "id") : json_null())
#define AT(k) json_array_get(items, (size_t)(desc ? n - 1 - (k) : (k)))
    if (after) {
        for (k = 0; k < n; k++) {
            const char *id = llmgw_json_str(AT(k), "id");
            if (id && strcmp(id, after) == 0)
                break;
        }
        if (k == n) {
            *err = llmgw_rsp_bad(p, "invalid_value", "after",
                                 "Invalid value for 'after': no input item with id '%s'.", after);
            return LLMGW_EBADREQ;
        }
        start = k + 1;
    }
    data = json_array();
    for (k = start; k < n && k < start + lim; k++)
        json_array_append(data, AT(k));
#undef AT
    *page =
        json_pack("{s:s, s:o, s:O, s:O, s:b}", "object", "list", "data", data, "first_id",
                  json_array_size(data) ? ID_OF(json_array_get(data, 0)) : json_null(), "last_id",
                  json_array_size(data) ? ID_OF(json_array_get(data, json_array_size(data) - 1))
                                        : json_null(),
                  "has_more", start + lim < n);
#undef ID_OF
    *page = llmgw_json_pool_own(p, *page);
    return APR_SUCCESS;
}
