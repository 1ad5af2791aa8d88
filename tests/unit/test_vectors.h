/*
 * The harness of the translator suites (test_openai, test_anthropic,
 * test_google, test_dialects): JSON vectors under LLMGW_TEST_DATA/<dir>/<kind>/,
 * backends and calls built from them, a recording emit callback, and the
 * checks every translator must pass the same way.
 *
 * A vector is <case>.in.json with <case>.expected.json beside it:
 *   request   in {"backend","call","request"}; expected {"method","url","stream",
 *             "headers","body"} or {"rv","error"}
 *   response  in {"call","request"?,"body"|"raw"}; expected {"rv"?,"error"?,"body",
 *             "model","usage"}
 *   error     in {"status","body"|"raw","must_not_contain"?}; expected {"error"}
 *   stream    in {"call","request"?,"events","end"}; expected {"rv","frames","done",
 *             "finish_seen","usage_seen","content_emitted","model","error","usage"?}
 * Backend members: name, apiKey, endpoint, orgId, project, projectId, location,
 * credentialsFile, deploymentName, apiVersion, defaultModel, maxTokens, and
 * unsupportedParams ("drop") or unsupportedDrop (true).
 */
#ifndef LLMGW_TEST_VECTORS_H
#define LLMGW_TEST_VECTORS_H

#include "test_util.h"
#include "llmgw_provider.h"

/* ---------------------------------------------------------------------- */
/* Vectors                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
    const char *dir;  /* the data directory it came from ("openai", "azure", ...) */
    const char *name; /* "<dir>/<kind>/<case>", for messages */
    json_t *in;       /* owned by test_pool */
    json_t *exp;      /* owned by test_pool */
} test_vector_t;

/**
 * How many vectors of @p kind the NULL-terminated @p dirs hold together.
 * For tcase_add_loop_test, before any test runs: exits when a directory is missing.
 */
int test_vector_count(const char *const *dirs, const char *kind);

/** Vector @p i of @p kind, counting through @p dirs in order. */
test_vector_t test_vector_at(const char *const *dirs, const char *kind, int i);

/** The vector <dir>/<kind>/<name>. */
test_vector_t test_vector_named(const char *dir, const char *kind, const char *name);

/* ---------------------------------------------------------------------- */
/* Small pieces                                                           */
/* ---------------------------------------------------------------------- */

/** "success", "eof", "ebadreq", ...: how vectors name an apr_status_t. */
const char *test_rv_name(apr_status_t rv);

/** String member @p key of @p obj copied to test_pool, or @p dflt. */
const char *test_str_or(const json_t *obj, const char *key, const char *dflt);

/** A new empty object owned by test_pool. */
json_t *test_empty_object(void);

/** The "request" member of a vector, or a new empty object (owned by test_pool). */
json_t *test_vector_request(const json_t *in);

/** The upstream bytes of a vector: "raw" as is, or "body" pretty-printed (from test_pool). */
const char *test_upstream_bytes(const json_t *in, apr_size_t *len);

/** A sorted JSON array of @p n C strings, so that order does not matter (owned by test_pool). */
json_t *test_sorted_lines(const char **lines, int n);

/** A sorted copy of a JSON array of strings (owned by test_pool). */
json_t *test_sorted_json_lines(const json_t *arr);

/** call->dropped as a JSON array, in order (owned by test_pool). */
json_t *test_dropped_json(const llmgw_call_t *call);

/** ck_assert_json_eq that names the vector when they differ. */
void test_assert_json_named(const json_t *got, const json_t *expected, const char *name);

/** Fail unless @p P has @p type, serves @p apis and implements every provider function. */
void test_assert_provider(const llmgw_provider_t *P, const char *type, unsigned apis);

/* ---------------------------------------------------------------------- */
/* Backends and calls                                                     */
/* ---------------------------------------------------------------------- */

/** A backend of @p type from the vector's "backend" object @p b (may be NULL). */
llmgw_backend_t *test_backend(const json_t *b, llmgw_backend_type_e type, const char *default_name);

/**
 * A call as the glue would make it, from the vector's "call" object @p c
 * (api, model, stream, include_usage, access_token, and images: {"<url>":
 * {"mimeType","data"}} for call->images): the stream flags come from
 * @p request unless @p c overrides them.
 */
llmgw_call_t *test_call(const json_t *c, json_t *request, const llmgw_backend_t *be,
                        const char *default_model);

/** A deep copy of @p request (NULL: an empty object) with "stream": true, owned by test_pool. */
json_t *test_stream_request(const json_t *request);

/* ---------------------------------------------------------------------- */
/* Requests, answers and errors                                           */
/* ---------------------------------------------------------------------- */

/**
 * Fail unless @p got is the error @p expected ({"status","type","code",
 * "param","message"}) and its client-facing JSON carries the same message.
 */
void test_assert_error(const llmgw_error_t *got, const json_t *expected, const char *name);

/** llmgw_error_t as {"status","type","code","param","message"}, or JSON null (owned by test_pool).
 */
json_t *test_error_json(const llmgw_error_t *e);

/** Fail if @p text contains any string of the JSON array @p banned. */
void test_assert_not_leaked(const char *text, const json_t *banned, const char *name);

/**
 * Build @p call (its body untouched) and check the outcome against request
 * vector @p v: the rv, then the error or the method, url, stream, headers
 * (any order) and body. Returns the rv; *err is the error, if any.
 */
apr_status_t test_check_request(const llmgw_provider_t *P, llmgw_call_t *call,
                                const test_vector_t *v, llmgw_error_t **err);

/**
 * parse_response of response vector @p v's upstream bytes, checked for the
 * rv, then the error, or the body's length, the model and the usage.
 * Returns the rv; on success *body is the parsed answer (owned by test_pool),
 * left for the caller to compare.
 */
apr_status_t test_check_response(const llmgw_provider_t *P, llmgw_call_t *call,
                                 const test_vector_t *v, llmgw_response_t *out, json_t **body);

/** parse_error of error vector @p v, checked against "error" and "must_not_contain". */
llmgw_error_t *test_check_error(const llmgw_provider_t *P, llmgw_call_t *call,
                                const test_vector_t *v);

/** parse_response of no body at all: LLMGW_EUPSTREAM with a 502 bad_gateway. */
void test_check_null_response(const llmgw_provider_t *P, llmgw_call_t *call);

/** parse_error of HTTP @p status without a body: a server_error naming the status. */
llmgw_error_t *test_check_null_error(const llmgw_provider_t *P, llmgw_call_t *call, int status);

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

/** Records what a translator emits as [{"kind", "json"|"text"}]. */
typedef struct {
    json_t *frames; /* owned by test_pool */
    int calls;
    int fail_at; /* 1-based emit call that fails, 0 = never */
    apr_status_t fail_rv;
    /** Optional: applied to every JSON payload before it is recorded (new reference). */
    json_t *(*mask)(const json_t *j);
} test_recorder_t;

/** A stream on @p call whose emit checks the SSE framing and records into @p rec; initialised. */
llmgw_stream_t *test_stream(const llmgw_provider_t *P, llmgw_call_t *call, test_recorder_t *rec);

/** Feed one event named @p event whose data is @p data: a string as is, anything else serialised.
 */
apr_status_t test_feed(const llmgw_provider_t *P, llmgw_stream_t *st, const char *event,
                       const json_t *data);

/** Feed one event named @p event with the text @p data. */
apr_status_t test_feed_text(const llmgw_provider_t *P, llmgw_stream_t *st, const char *event,
                            const char *data);

/** How a suite turns one item of a vector's "events" into an event. */
typedef apr_status_t (*test_feed_fn)(const llmgw_provider_t *P, llmgw_stream_t *st,
                                     const json_t *item);

/**
 * Play stream vector @p v into @p st, which records into @p rec: every item
 * of "events" is fed (with @p feed; NULL: the item is the data of an
 * unnamed event) until one fails, then stream_end when "end" is true. The
 * outcome must be the vector's: the rv, the frames, done, finish_seen,
 * usage_seen, content_emitted, the model, the error and the usage; and no
 * frame carries a usage member unless the client asked for usage.
 */
void test_check_stream(const llmgw_provider_t *P, llmgw_stream_t *st, const test_recorder_t *rec,
                       const test_vector_t *v, test_feed_fn feed);

/**
 * Every frame stream vector @p v makes on @p call (played as
 * test_check_stream plays it), as one string, with
 * llmgw_stream_t.frames_only set to @p frames_only. Each chunk must be
 * jansson's compact serialisation of itself: translators write chunks
 * rather than dump them (llmgw_json.h), and must not differ from a dump.
 */
const char *test_stream_bytes(const llmgw_provider_t *P, llmgw_call_t *call, const test_vector_t *v,
                              test_feed_fn feed, int frames_only);

/**
 * After an emit failure of the client's connection: no upstream fault is
 * recorded, nothing counts as delivered, and @p frames frames went out.
 */
void test_assert_client_left(const llmgw_stream_t *st, const test_recorder_t *rec, size_t frames);

/** The SSE bytes of unnamed events (strings as is, anything else serialised), CRLF line ends. */
const char *test_sse_text(const json_t *events);

/**
 * @p bytes one byte at a time through the real SSE parser into
 * P->stream_event, until one fails or ends the stream; *fed is how many
 * bytes went in and *parser the parser (for llmgw_sse_parser_finish).
 */
apr_status_t test_sse_replay(const llmgw_provider_t *P, llmgw_stream_t *st, const char *bytes,
                             apr_size_t *fed, llmgw_sse_parser_t **parser);

/**
 * Stream vector @p v's wire @p bytes through test_sse_replay: the terminal
 * event ends the stream (it is dispatched on the CR of its closing blank
 * line) and the frames are the vector's.
 */
void test_assert_sse_replay(const llmgw_provider_t *P, llmgw_stream_t *st,
                            const test_recorder_t *rec, const char *bytes, const test_vector_t *v);

#endif
