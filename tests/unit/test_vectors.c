/* The translator-suite harness: see test_vectors.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "test_vectors.h"
#include "llmgw_redact.h"
#include "llmgw_json.h"

#define IN_SUFFIX ".in.json"

/* ---------------------------------------------------------------------- */
/* Vectors                                                                */
/* ---------------------------------------------------------------------- */

/* Before any test runs, so without Check's assertions (they need a running test). */
static int count_in_dir(const char *dir, const char *kind)
{
    char path[1024];
    size_t sl = strlen(IN_SUFFIX);
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s/%s", LLMGW_TEST_DATA, dir, kind);
    d = opendir(path);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(EXIT_FAILURE);
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl > sl && strcmp(de->d_name + nl - sl, IN_SUFFIX) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int test_vector_count(const char *const *dirs, const char *kind)
{
    int n = 0;

    for (; *dirs; dirs++)
        n += count_in_dir(*dirs, kind);
    return n;
}

static json_t *load_owned(const char *base, const char *suffix)
{
    return llmgw_json_pool_own(test_pool,
                               test_load_json(apr_pstrcat(test_pool, base, suffix, NULL)));
}

test_vector_t test_vector_named(const char *dir, const char *kind, const char *name)
{
    test_vector_t v;

    v.dir = dir;
    v.name = apr_pstrcat(test_pool, dir, "/", kind, "/", name, NULL);
    v.in = load_owned(v.name, IN_SUFFIX);
    v.exp = load_owned(v.name, ".expected.json");
    return v;
}

test_vector_t test_vector_at(const char *const *dirs, const char *kind, int i)
{
    test_vector_t none = {0};

    for (; *dirs; dirs++) {
        apr_array_header_t *names =
            test_list_dir(apr_pstrcat(test_pool, *dirs, "/", kind, NULL), IN_SUFFIX);
        const char *file;

        if (i >= names->nelts) {
            i -= names->nelts;
            continue;
        }
        file = APR_ARRAY_IDX(names, i, const char *);
        return test_vector_named(*dirs, kind,
                                 apr_pstrmemdup(test_pool, file, strlen(file) - strlen(IN_SUFFIX)));
    }
    ck_abort_msg("no vector %d of kind %s", i, kind);
    return none;
}

/* ---------------------------------------------------------------------- */
/* Small pieces                                                           */
/* ---------------------------------------------------------------------- */

const char *test_rv_name(apr_status_t rv)
{
    switch (rv) {
    case APR_SUCCESS:
        return "success";
    case APR_EOF:
        return "eof";
    case APR_EINVAL:
        return "einval";
    case LLMGW_EBADREQ:
        return "ebadreq";
    case LLMGW_EUNSUPPORTED:
        return "eunsupported";
    case LLMGW_EUPSTREAM:
        return "eupstream";
    case LLMGW_EMALFORMED:
        return "emalformed";
    case LLMGW_ESTREAM:
        return "estream";
    case LLMGW_ECLIENTGONE:
        return "eclientgone";
    default:
        return apr_psprintf(test_pool, "status %d", rv);
    }
}

/* Fail unless @p rv is what @p exp's "rv" names (@p dflt when it names nothing). */
static void assert_rv(apr_status_t rv, const json_t *exp, const char *dflt, const char *name,
                      const llmgw_error_t *err)
{
    ck_assert_msg(strcmp(test_rv_name(rv), test_str_or(exp, "rv", dflt)) == 0, "%s: rv %s (%s)",
                  name, test_rv_name(rv), err ? err->message : "no error");
}

const char *test_str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = llmgw_json_str(obj, key);
    return s ? apr_pstrdup(test_pool, s) : dflt;
}

static int int_or(const json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static int flag(const json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

json_t *test_empty_object(void)
{
    return llmgw_json_pool_own(test_pool, json_object());
}

json_t *test_vector_request(const json_t *in)
{
    json_t *r = json_object_get(in, "request");
    return r ? r : test_empty_object();
}

const char *test_upstream_bytes(const json_t *in, apr_size_t *len)
{
    json_t *raw = json_object_get(in, "raw");
    char *text;
    const char *copy;

    if (json_is_string(raw)) {
        *len = json_string_length(raw);
        return json_string_value(raw);
    }
    text = json_dumps(json_object_get(in, "body"), JSON_INDENT(2) | JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(text);
    copy = apr_pstrdup(test_pool, text);
    free(text);
    *len = strlen(copy);
    return copy;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *test_sorted_lines(const char **lines, int n)
{
    json_t *arr = llmgw_json_pool_own(test_pool, json_array());
    const char **copy = apr_pmemdup(test_pool, lines, sizeof(*lines) * (apr_size_t)(n ? n : 1));
    int i;

    qsort(copy, (size_t)n, sizeof(*copy), cmp_cstr);
    for (i = 0; i < n; i++)
        json_array_append_new(arr, json_string(copy[i]));
    return arr;
}

json_t *test_sorted_json_lines(const json_t *arr)
{
    int n = (int)json_array_size(arr), i;
    const char **lines = apr_pcalloc(test_pool, sizeof(*lines) * (apr_size_t)(n + 1));

    for (i = 0; i < n; i++)
        lines[i] = json_string_value(json_array_get(arr, (size_t)i));
    return test_sorted_lines(lines, n);
}

json_t *test_dropped_json(const llmgw_call_t *call)
{
    json_t *arr = llmgw_json_pool_own(test_pool, json_array());
    int i;

    for (i = 0; i < call->dropped->nelts; i++)
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(call->dropped, i, const char *)));
    return arr;
}

void test_assert_json_named(const json_t *got, const json_t *expected, const char *name)
{
    if (!got || !expected || !json_equal(got, expected))
        fprintf(stderr, "vector %s:\n", name);
    ck_assert_json_eq(got, expected);
}

void test_assert_provider(const llmgw_provider_t *P, const char *type, unsigned apis)
{
    ck_assert_str_eq(P->type, type);
    ck_assert_uint_eq(P->apis, apis);
    ck_assert_ptr_nonnull(P->build_request);
    ck_assert_ptr_nonnull(P->parse_response);
    ck_assert_ptr_nonnull(P->parse_error);
    ck_assert_ptr_nonnull(P->stream_init);
    ck_assert_ptr_nonnull(P->stream_event);
    ck_assert_ptr_nonnull(P->stream_end);
}

/* ---------------------------------------------------------------------- */
/* Backends and calls                                                     */
/* ---------------------------------------------------------------------- */

llmgw_backend_t *test_backend(const json_t *b, llmgw_backend_type_e type, const char *default_name)
{
    llmgw_backend_t *be = apr_pcalloc(test_pool, sizeof(*be));
    const char *policy = test_str_or(b, "unsupportedParams", "error");

    be->name = test_str_or(b, "name", default_name);
    be->type = type;
    be->api_key = test_str_or(b, "apiKey", NULL);
    be->endpoint = test_str_or(b, "endpoint", NULL);
    be->org_id = test_str_or(b, "orgId", NULL);
    be->project = test_str_or(b, "project", NULL);
    be->project_id = test_str_or(b, "projectId", NULL);
    be->location = test_str_or(b, "location", NULL);
    be->credentials_file = test_str_or(b, "credentialsFile", NULL);
    be->deployment_name = test_str_or(b, "deploymentName", NULL);
    be->api_version = test_str_or(b, "apiVersion", NULL);
    be->default_model = test_str_or(b, "defaultModel", NULL);
    be->models = apr_array_make(test_pool, 1, sizeof(const char *));
    be->timeout = be->connect_timeout = LLMGW_UNSET;
    be->first_byte_timeout = be->idle_timeout = LLMGW_UNSET;
    be->max_retries = LLMGW_UNSET;
    be->max_tokens = int_or(b, "maxTokens", LLMGW_UNSET);
    be->unsupported_drop =
        strcmp(policy, "drop") == 0 || json_is_true(json_object_get(b, "unsupportedDrop"));
    return be;
}

/* "images": {"<url>": {"mimeType", "data"}}: what the glue would have fetched. */
static void call_images(llmgw_call_t *call, const json_t *images)
{
    const char *url;
    json_t *v;

    if (!json_is_object(images))
        return;
    call->images = apr_hash_make(test_pool);
    json_object_foreach ((json_t *)images, url, v) {
        llmgw_image_t *img = apr_pcalloc(test_pool, sizeof(*img));
        img->mime_type = test_str_or(v, "mimeType", NULL);
        img->base64 = test_str_or(v, "data", NULL);
        ck_assert_msg(img->mime_type && img->base64, "images.%s needs mimeType and data", url);
        img->size = strlen(img->base64) / 4 * 3;
        apr_hash_set(call->images, apr_pstrdup(test_pool, url), APR_HASH_KEY_STRING, img);
    }
}

llmgw_call_t *test_call(const json_t *c, json_t *request, const llmgw_backend_t *be,
                        const char *default_model)
{
    llmgw_call_t *call = apr_pcalloc(test_pool, sizeof(*call));
    const char *api = test_str_or(c, "api", "chat");
    json_t *opts = json_object_get(request, "stream_options");
    int stream = json_is_true(json_object_get(request, "stream"));

    call->pool = test_pool;
    call->backend = be;
    call->api = strcmp(api, "embeddings") == 0 ? LLMGW_API_EMBEDDINGS
                : strcmp(api, "models") == 0   ? LLMGW_API_MODELS
                                               : LLMGW_API_CHAT;
    call->body = request;
    call->model = test_str_or(c, "model", default_model);
    call->stream = flag(c, "stream", stream);
    call->include_usage = flag(
        c, "include_usage", call->stream && json_is_true(json_object_get(opts, "include_usage")));
    call->created = 1764000000;
    call->dropped = apr_array_make(test_pool, 1, sizeof(const char *));
    call->ignored = apr_array_make(test_pool, 1, sizeof(const char *));
    call->access_token = test_str_or(c, "access_token", NULL);
    call_images(call, json_object_get(c, "images"));
    return call;
}

json_t *test_stream_request(const json_t *request)
{
    json_t *r = request ? json_deep_copy(request) : json_object();

    llmgw_json_pool_own(test_pool, r);
    json_object_set_new(r, "stream", json_true());
    return r;
}

/* ---------------------------------------------------------------------- */
/* Requests, answers and errors                                           */
/* ---------------------------------------------------------------------- */

json_t *test_error_json(const llmgw_error_t *e)
{
    if (!e)
        return llmgw_json_pool_own(test_pool, json_null());
    return llmgw_json_pool_own(test_pool, json_pack("{s:i, s:s?, s:s?, s:s?, s:s?}", "status",
                                                    e->status, "type", e->type, "code", e->code,
                                                    "param", e->param, "message", e->message));
}

void test_assert_error(const llmgw_error_t *got, const json_t *expected, const char *name)
{
    apr_size_t len;
    const char *text;
    json_t *wire;

    ck_assert_msg(got != NULL, "%s: no error", name);
    test_assert_json_named(test_error_json(got), expected, name);
    /* The client-facing form must be valid JSON carrying the same message. */
    text = llmgw_error_json(test_pool, got, &len);
    wire = llmgw_json_pool_own(test_pool, test_parse_json(text, len));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(wire, "error"), "message")),
                     got->message);
}

void test_assert_not_leaked(const char *text, const json_t *banned, const char *name)
{
    size_t i;
    json_t *word;

    json_array_foreach (banned, i, word) {
        ck_assert_msg(!strstr(text, json_string_value(word)), "%s: leaks \"%s\": %s", name,
                      json_string_value(word), text);
    }
}

/*
 * The same request from a backend prepared once per configuration
 * (llmgw_provider_prepare): the same URL, headers and body as @p unprepared,
 * with the header list marked as the backend's own (the same list for the
 * next request).
 */
static void check_prepared(const llmgw_provider_t *P, const llmgw_call_t *call,
                           const llmgw_http_request_t *unprepared, const char *name)
{
    llmgw_backend_t *b;
    llmgw_call_t c2 = *call;
    llmgw_http_request_t out, again;
    llmgw_error_t *err = NULL;
    int i;

    if (!P->prepare)
        return;
    b = apr_pmemdup(test_pool, call->backend, sizeof(*b));
    b->fixed = P->prepare(b, test_pool);
    c2.backend = b;
    c2.dropped = call->dropped ? apr_array_make(test_pool, 1, sizeof(const char *)) : NULL;
    c2.ignored = call->ignored ? apr_array_make(test_pool, 1, sizeof(const char *)) : NULL;
    memset(&out, 0, sizeof(out));
    memset(&again, 0, sizeof(again));
    ck_assert_msg(P->build_request(&c2, &out, &err) == APR_SUCCESS, "%s: prepared build", name);
    ck_assert_str_eq(out.url, unprepared->url);
    ck_assert_int_eq(out.headers->nelts, unprepared->headers->nelts);
    for (i = 0; i < out.headers->nelts; i++)
        ck_assert_str_eq(APR_ARRAY_IDX(out.headers, i, const char *),
                         APR_ARRAY_IDX(unprepared->headers, i, const char *));
    ck_assert_uint_eq(out.body_len, unprepared->body_len);
    ck_assert_int_eq(memcmp(out.body, unprepared->body, out.body_len), 0);
    ck_assert_int_eq(unprepared->headers_fixed, 0);
    if (!out.headers_fixed)
        return; /* a per-request credential (a Vertex AI token) */
    ck_assert_ptr_nonnull(b->fixed);
    ck_assert_int_eq(P->build_request(&c2, &again, &err), APR_SUCCESS);
    ck_assert_ptr_eq(again.headers, out.headers);
}

apr_status_t test_check_request(const llmgw_provider_t *P, llmgw_call_t *call,
                                const test_vector_t *v, llmgw_error_t **err)
{
    json_t *before = llmgw_json_pool_own(test_pool, json_deep_copy(call->body));
    llmgw_http_request_t out;
    apr_status_t rv;
    json_t *body;

    memset(&out, 0, sizeof(out));
    *err = NULL;
    rv = P->build_request(call, &out, err);
    ck_assert_msg(json_equal(call->body, before), "%s: the client's body was modified", v->name);
    assert_rv(rv, v->exp, "success", v->name, *err);
    if (rv != APR_SUCCESS) {
        test_assert_error(*err, json_object_get(v->exp, "error"), v->name);
        return rv;
    }
    ck_assert_str_eq(out.method, json_string_value(json_object_get(v->exp, "method")));
    ck_assert_str_eq(out.url, json_string_value(json_object_get(v->exp, "url")));
    ck_assert_int_eq(out.stream, json_is_true(json_object_get(v->exp, "stream")));
    ck_assert_json_eq(test_sorted_lines((const char **)out.headers->elts, out.headers->nelts),
                      test_sorted_json_lines(json_object_get(v->exp, "headers")));
    ck_assert_ptr_nonnull(out.body);
    ck_assert_uint_eq(out.body_len, strlen(out.body));
    body = llmgw_json_pool_own(test_pool, test_parse_json(out.body, out.body_len));
    test_assert_json_named(body, json_object_get(v->exp, "body"), v->name);
    check_prepared(P, call, &out, v->name);
    return rv;
}

/* The token counts of @p u against the vector's usage object @p usage. */
static void assert_usage_counts(const llmgw_usage_t *u, const json_t *usage)
{
    ck_assert_int_eq(u->prompt_tokens, json_integer_value(json_object_get(usage, "prompt_tokens")));
    ck_assert_int_eq(u->completion_tokens,
                     json_integer_value(json_object_get(usage, "completion_tokens")));
    ck_assert_int_eq(u->total_tokens, json_integer_value(json_object_get(usage, "total_tokens")));
    /* Cached and reasoning tokens where a vector names them (pricing: cachedInput). */
    if (json_object_get(usage, "cached_tokens"))
        ck_assert_int_eq(u->cached_tokens,
                         json_integer_value(json_object_get(usage, "cached_tokens")));
    if (json_object_get(usage, "reasoning_tokens"))
        ck_assert_int_eq(u->reasoning_tokens,
                         json_integer_value(json_object_get(usage, "reasoning_tokens")));
}

apr_status_t test_check_response(const llmgw_provider_t *P, llmgw_call_t *call,
                                 const test_vector_t *v, llmgw_response_t *out, json_t **body)
{
    json_t *usage = json_object_get(v->exp, "usage");
    llmgw_error_t *err = NULL;
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v->in, &len);
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    rv = P->parse_response(call, bytes, len, out, &err);
    assert_rv(rv, v->exp, "success", v->name, err);
    if (rv != APR_SUCCESS) {
        test_assert_error(err, json_object_get(v->exp, "error"), v->name);
        return rv;
    }
    ck_assert_ptr_nonnull(out->body);
    ck_assert_uint_eq(out->len, strlen(out->body));
    *body = llmgw_json_pool_own(test_pool, test_parse_json(out->body, out->len));
    ck_assert_str_eq(out->model, json_string_value(json_object_get(v->exp, "model")));
    ck_assert_int_eq(out->usage.present, json_is_true(json_object_get(usage, "present")));
    assert_usage_counts(&out->usage, usage);
    return rv;
}

/* What the client sees of a translator's error: after the glue's one redaction step. */
static llmgw_error_t *glue_redacted(const llmgw_call_t *call, llmgw_error_t *e)
{
    llmgw_secrets_t *secrets = llmgw_secrets_make(test_pool);

    llmgw_secrets_add(secrets, call->backend->api_key);
    return (llmgw_error_t *)llmgw_redact_error(test_pool, e, secrets, call->access_token);
}

llmgw_error_t *test_check_error(const llmgw_provider_t *P, llmgw_call_t *call,
                                const test_vector_t *v)
{
    apr_size_t len;
    const char *bytes = test_upstream_bytes(v->in, &len);
    int status = (int)json_integer_value(json_object_get(v->in, "status"));
    llmgw_error_t *e = glue_redacted(call, P->parse_error(call, status, bytes, len));

    test_assert_error(e, json_object_get(v->exp, "error"), v->name);
    test_assert_not_leaked(llmgw_error_json(test_pool, e, NULL),
                           json_object_get(v->in, "must_not_contain"), v->name);
    return e;
}

void test_check_null_response(const llmgw_provider_t *P, llmgw_call_t *call)
{
    llmgw_response_t out;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(P->parse_response(call, NULL, 0, &out, &err), LLMGW_EUPSTREAM);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "bad_gateway");
}

llmgw_error_t *test_check_null_error(const llmgw_provider_t *P, llmgw_call_t *call, int status)
{
    llmgw_error_t *e = P->parse_error(call, status, NULL, 0);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->status, status);
    ck_assert_str_eq(e->type, "server_error");
    ck_assert_str_eq(e->message, apr_psprintf(test_pool, "upstream returned HTTP %d", status));
    return e;
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

static const char *kind_name(llmgw_chunk_kind_e kind)
{
    switch (kind) {
    case LLMGW_CHUNK_PREAMBLE:
        return "preamble";
    case LLMGW_CHUNK_CONTENT:
        return "content";
    default:
        return "final";
    }
}

/* The payload of a frame as recorded: the JSON (masked when asked), or [DONE] as text. */
static json_t *frame_of(const test_recorder_t *r, llmgw_chunk_kind_e kind, const char *payload,
                        apr_size_t len)
{
    json_t *j, *shown;

    if (len == 6 && memcmp(payload, "[DONE]", 6) == 0)
        return json_pack("{s:s, s:s}", "kind", kind_name(kind), "text", "[DONE]");
    j = test_parse_json(payload, len);
    if (!r->mask)
        return json_pack("{s:s, s:o}", "kind", kind_name(kind), "json", j);
    shown = r->mask(j);
    json_decref(j);
    return json_pack("{s:s, s:o}", "kind", kind_name(kind), "json", shown);
}

/* Checks the SSE framing and records the payload as JSON for comparison. */
static apr_status_t record_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                                const char *data, apr_size_t len)
{
    test_recorder_t *r = baton;
    const char *payload;
    apr_size_t plen;

    if (++r->calls == r->fail_at)
        return r->fail_rv;
    ck_assert_uint_gt(len, 8);
    ck_assert_msg(memcmp(data, "data: ", 6) == 0, "frame does not start with data:");
    ck_assert_msg(memcmp(data + len - 2, "\n\n", 2) == 0, "frame does not end with a blank line");
    payload = data + 6;
    plen = len - 8;
    ck_assert_msg(!memchr(payload, '\n', plen) && !memchr(payload, '\r', plen),
                  "frame spans several lines");
    /* The JSON handed along is the frame's own (llmgw_emit_fn). */
    if (plen == 6 && memcmp(payload, "[DONE]", 6) == 0) {
        ck_assert_ptr_null(chunk);
    }
    else {
        json_t *j = test_parse_json(payload, plen);
        ck_assert_msg(chunk && json_equal(chunk, j), "the chunk JSON is not the frame's");
        json_decref(j);
    }
    json_array_append_new(r->frames, frame_of(r, kind, payload, plen));
    return APR_SUCCESS;
}

llmgw_stream_t *test_stream(const llmgw_provider_t *P, llmgw_call_t *call, test_recorder_t *rec)
{
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));

    rec->frames = llmgw_json_pool_own(test_pool, json_array());
    st->call = call;
    st->emit = record_emit;
    st->baton = rec;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    return st;
}

apr_status_t test_feed(const llmgw_provider_t *P, llmgw_stream_t *st, const char *event,
                       const json_t *data)
{
    llmgw_sse_event_t ev = {event, strlen(event), NULL, 0, ""};
    char *text = NULL;
    apr_status_t rv;

    if (json_is_string(data)) {
        ev.data = json_string_value(data);
        ev.data_len = json_string_length(data);
    }
    else {
        text = json_dumps(data, JSON_COMPACT);
        ev.data = text;
        ev.data_len = strlen(text);
    }
    rv = P->stream_event(st, &ev);
    free(text);
    return rv;
}

apr_status_t test_feed_text(const llmgw_provider_t *P, llmgw_stream_t *st, const char *event,
                            const char *data)
{
    llmgw_sse_event_t ev = {event, strlen(event), data, strlen(data), ""};
    return P->stream_event(st, &ev);
}

/* Feed the events of stream vector @p in, then end the stream if it says so; the last rv. */
static apr_status_t play_stream(const llmgw_provider_t *P, llmgw_stream_t *st, const json_t *in,
                                test_feed_fn feed)
{
    apr_status_t rv = APR_SUCCESS;
    size_t i;
    json_t *item;

    json_array_foreach (json_object_get(in, "events"), i, item) {
        rv = feed ? feed(P, st, item) : test_feed(P, st, "", item);
        if (rv != APR_SUCCESS)
            return rv;
    }
    if (json_is_true(json_object_get(in, "end")))
        rv = P->stream_end(st);
    return rv;
}

/* Collects the frames' bytes; each chunk must be jansson's compact form of its JSON. */
static apr_status_t bytes_emit(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                               const char *data, apr_size_t len)
{
    const char **all = baton;
    const char *payload = data + 6;
    apr_size_t plen = len - 8;

    (void)kind;
    (void)chunk;
    if (!(plen == 6 && memcmp(payload, "[DONE]", 6) == 0)) {
        json_t *j = test_parse_json(payload, plen);
        char *canon = json_dumps(j, JSON_COMPACT);

        ck_assert_msg(strlen(canon) == plen && memcmp(canon, payload, plen) == 0,
                      "chunk is not jansson's compact form: %.*s", (int)plen, payload);
        free(canon);
        json_decref(j);
    }
    *all = apr_pstrcat(test_pool, *all, apr_pstrmemdup(test_pool, data, len), NULL);
    return APR_SUCCESS;
}

const char *test_stream_bytes(const llmgw_provider_t *P, llmgw_call_t *call, const test_vector_t *v,
                              test_feed_fn feed, int frames_only)
{
    llmgw_stream_t *st = apr_pcalloc(test_pool, sizeof(*st));
    const char *all = "";

    st->call = call;
    st->emit = bytes_emit;
    st->baton = &all;
    st->frames_only = frames_only;
    ck_assert_int_eq(P->stream_init(st), APR_SUCCESS);
    play_stream(P, st, v->in, feed);
    return all;
}

/* A client that did not ask for usage sees no usage member at all. */
static void assert_no_usage_member(const json_t *frames, const char *name)
{
    size_t i;
    json_t *f;

    json_array_foreach (frames, i, f) {
        json_t *j = json_object_get(f, "json");
        ck_assert_msg(!json_object_get(j, "usage"), "%s: frame %zu carries usage", name, i);
    }
}

void test_check_stream(const llmgw_provider_t *P, llmgw_stream_t *st, const test_recorder_t *rec,
                       const test_vector_t *v, test_feed_fn feed)
{
    apr_status_t rv = play_stream(P, st, v->in, feed);
    const json_t *exp = v->exp;
    const char *name = v->name;
    json_t *usage = json_object_get(exp, "usage");

    assert_rv(rv, exp, "", name, st->error);
    test_assert_json_named(rec->frames, json_object_get(exp, "frames"), name);
    ck_assert_int_eq(st->done, json_is_true(json_object_get(exp, "done")));
    ck_assert_int_eq(st->finish_seen, json_is_true(json_object_get(exp, "finish_seen")));
    ck_assert_int_eq(st->usage_seen, json_is_true(json_object_get(exp, "usage_seen")));
    ck_assert_int_eq(st->content_emitted, json_is_true(json_object_get(exp, "content_emitted")));
    if (json_is_string(json_object_get(exp, "model")))
        ck_assert_str_eq(st->model, json_string_value(json_object_get(exp, "model")));
    else
        ck_assert_ptr_null(st->model);
    ck_assert_json_eq(test_error_json(glue_redacted(st->call, st->error)),
                      json_object_get(exp, "error"));
    if (usage) {
        ck_assert_int_eq(st->usage.present, 1);
        assert_usage_counts(&st->usage, usage);
    }
    if (!st->call->include_usage)
        assert_no_usage_member(rec->frames, name);
}

void test_assert_client_left(const llmgw_stream_t *st, const test_recorder_t *rec, size_t frames)
{
    ck_assert_ptr_null(st->error);
    ck_assert_int_eq(st->content_emitted, 0);
    ck_assert_uint_eq(json_array_size(rec->frames), frames);
}

const char *test_sse_text(const json_t *events)
{
    const char *out = "";
    size_t i;
    json_t *ev;

    json_array_foreach (events, i, ev) {
        char *text = json_is_string(ev) ? NULL : json_dumps(ev, JSON_COMPACT);
        out = apr_pstrcat(test_pool, out, "data: ", text ? text : json_string_value(ev), "\r\n\r\n",
                          NULL);
        free(text);
    }
    return out;
}

typedef struct {
    const llmgw_provider_t *P;
    llmgw_stream_t *st;
} sse_baton_t;

static apr_status_t on_sse(void *baton, const llmgw_sse_event_t *ev)
{
    sse_baton_t *b = baton;
    return b->P->stream_event(b->st, ev);
}

apr_status_t test_sse_replay(const llmgw_provider_t *P, llmgw_stream_t *st, const char *bytes,
                             apr_size_t *fed, llmgw_sse_parser_t **parser)
{
    sse_baton_t *baton = apr_pcalloc(test_pool, sizeof(*baton));
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i, n = strlen(bytes);

    baton->P = P;
    baton->st = st;
    ck_assert_int_eq(llmgw_sse_parser_create(parser, test_pool, 1 << 20, on_sse, baton),
                     APR_SUCCESS);
    for (i = 0; i < n && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(*parser, bytes + i, 1);
    *fed = i;
    return rv;
}

void test_assert_sse_replay(const llmgw_provider_t *P, llmgw_stream_t *st,
                            const test_recorder_t *rec, const char *bytes, const test_vector_t *v)
{
    llmgw_sse_parser_t *sp;
    apr_size_t fed;

    ck_assert_int_eq(test_sse_replay(P, st, bytes, &fed, &sp), APR_EOF);
    ck_assert_uint_ge(fed, strlen(bytes) - 1);
    test_assert_json_named(rec->frames, json_object_get(v->exp, "frames"), v->name);
    ck_assert_int_eq(st->done, 1);
}
