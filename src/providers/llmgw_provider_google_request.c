/*
 * The `google` translator's request side (providers.md 6): URLs and
 * headers for AI Studio and Vertex AI, and the native body built from
 * scratch: generationConfig, tools, content parts, tool calls and results
 * with strict user/model alternation (6.4), embeddings. The answers,
 * errors and streams are llmgw_provider_google.c, which holds the
 * translator's table and its overview comment.
 *
 * Memory: everything per request comes from call->pool.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"
#include "llmgw_provider_google_private.h"

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

static int is_vertex(const llmgw_backend_t *b)
{
    return b->project_id && *b->project_id;
}

/*
 * Model ids go into the URL path: only characters that cannot change the
 * path (no '/', '?', '%', ':') are accepted. A "models/" prefix, as Google's
 * own SDKs write it, is removed.
 */
static const char *path_model(const char *model)
{
    const char *s;

    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    if (!apr_isalnum(*model) || strlen(model) > 200)
        return NULL;
    for (s = model; *s; s++) {
        if (!apr_isalnum(*s) && *s != '-' && *s != '_' && *s != '.' && *s != '@')
            return NULL;
    }
    return model;
}

/*
 * Does this model validate thought signatures (Gemini 3 and later, 6.6)?
 * Decided from the id: "gemini-1..." and "gemini-2..." do not; other
 * "gemini-" ids, versioned or aliases such as "gemini-flash-latest", are
 * taken to be current models.
 */
static int validates_signatures(const char *model)
{
    if (strncmp(model, "gemini-", 7) != 0)
        return 0;
    model += 7;
    if ((model[0] == '1' || model[0] == '2') && !apr_isdigit(model[1]))
        return 0;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* URLs and headers                                                       */
/* ---------------------------------------------------------------------- */

static const char *vertex_host(apr_pool_t *p, const llmgw_backend_t *b)
{
    const char *loc = b->location;

    if (b->endpoint)
        return b->endpoint;
    if (strcmp(loc, "global") == 0)
        return "https://aiplatform.googleapis.com";
    if (strcmp(loc, "us") == 0 || strcmp(loc, "eu") == 0)
        return apr_pstrcat(p, "https://aiplatform.", loc, ".rep.googleapis.com", NULL);
    return apr_pstrcat(p, "https://", loc, "-aiplatform.googleapis.com", NULL);
}

/* The URL of @p method ("generateContent", "predict", ...) for @p model. */
static const char *model_url(apr_pool_t *p, const llmgw_backend_t *b, const char *model,
                             const char *method)
{
    if (!is_vertex(b))
        return apr_pstrcat(p, b->endpoint ? b->endpoint : GOOGLE_AISTUDIO_ENDPOINT,
                           "/v1beta/models/", model, ":", method, NULL);
    return apr_pstrcat(p, vertex_host(p, b), "/v1/projects/", b->project_id, "/locations/",
                       b->location, "/publishers/google/models/", model, ":", method, NULL);
}

/* The headers after the credential, the same for every backend. */
static apr_array_header_t *make_header_list(apr_pool_t *p, const char *credential, int stream)
{
    apr_array_header_t *h = apr_array_make(p, 5, sizeof(const char *));

    if (credential)
        llmgw_prov_push_header(h, credential);
    llmgw_prov_push_header(h, "Content-Type: application/json");
    llmgw_prov_push_header(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* Without this, curl waits for "100 Continue" before sending large bodies. */
    llmgw_prov_push_header(h, "Expect:");
    return h;
}

/* An AI Studio key, or nothing (a Vertex AI token changes: it is per request). */
static const char *key_header(const llmgw_backend_t *b, apr_pool_t *p)
{
    return b->api_key && *b->api_key ? apr_pstrcat(p, "x-goog-api-key: ", b->api_key, NULL) : NULL;
}

/* What never changes in an AI Studio backend's requests: its header lists. */
typedef struct {
    const apr_array_header_t *headers[2]; /* [stream] */
} fixed_t;

const void *llmgw_google_prepare(const llmgw_backend_t *b, apr_pool_t *p)
{
    fixed_t *f;

    if (is_vertex(b))
        return NULL;
    f = apr_palloc(p, sizeof(*f));
    f->headers[0] = make_header_list(p, key_header(b, p), 0);
    f->headers[1] = make_header_list(p, key_header(b, p), 1);
    return f;
}

/* Credentials live only here and in the upstream request: never logged. */
static apr_status_t make_headers(llmgw_call_t *call, int stream, llmgw_http_request_t *out,
                                 llmgw_error_t **err)
{
    const llmgw_backend_t *b = call->backend;
    const fixed_t *f = b->fixed;
    apr_pool_t *p = call->pool;

    if (!is_vertex(b)) {
        out->headers = f ? f->headers[stream != 0] : make_header_list(p, key_header(b, p), stream);
        out->headers_fixed = f != NULL;
        return APR_SUCCESS;
    }
    /* The glue fetches the token (llmgw_google_auth_token) before building. */
    if (!call->access_token || !*call->access_token) {
        *err = llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                                "backend \"%s\" (Vertex AI) has no access token", b->name);
        return APR_EINVAL;
    }
    out->headers = make_header_list(
        p, apr_pstrcat(p, "Authorization: Bearer ", call->access_token, NULL), stream);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Request translation: context and failures                              */
/* ---------------------------------------------------------------------- */

typedef llmgw_google_rq_t rq_t;

apr_status_t llmgw_google_rq_fail(rq_t *rq, const char *code, const char *param, const char *fmt,
                                  ...)
{
    va_list ap;

    va_start(ap, fmt);
    rq->err = llmgw_prov_vbad_request(rq->p, code, param, fmt, ap);
    va_end(ap);
    return LLMGW_EBADREQ;
}

apr_status_t llmgw_google_rq_type(rq_t *rq, const char *param, const char *what)
{
    return llmgw_google_rq_fail(rq, "invalid_type", param, "'%s' must be %s.", param, what);
}

apr_status_t llmgw_google_rq_unsupported(rq_t *rq, const char *param)
{
    if (rq->call->backend->unsupported_drop == 1) {
        if (!rq->call->dropped)
            rq->call->dropped = apr_array_make(rq->p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(rq->call->dropped, const char *) = param;
        return APR_SUCCESS;
    }
    return llmgw_google_rq_fail(
        rq, "unsupported_parameter", param,
        "Unsupported parameter: '%s' is not supported by the google backend \"%s\".", param,
        rq->call->backend->name);
}

/* ---------------------------------------------------------------------- */
/* Request translation: parameters                                        */
/* ---------------------------------------------------------------------- */

/*
 * OpenAI-only parameters that change the answer: Gemini has no equivalent,
 * so they are unsupported (400, or dropped and named). Parameters that do
 * not change the answer (user, safety_identifier, store, metadata,
 * service_tier, prompt_cache_*) are ignored, as are unknown fields.
 */
static const char *const meaning_params[] = {"audio",     "prediction", "web_search_options",
                                             "verbosity", "moderation", NULL};

static apr_status_t check_unsupported(rq_t *rq)
{
    const json_t *in = rq->in;
    json_t *v;
    apr_status_t rv;
    int i;

    for (i = 0; meaning_params[i]; i++) {
        if (llmgw_json_is_absent(json_object_get(in, meaning_params[i])))
            continue;
        if ((rv = llmgw_google_rq_unsupported(rq, meaning_params[i])) != APR_SUCCESS)
            return rv;
    }
    v = json_object_get(in, "logit_bias");
    if (json_is_object(v) && json_object_size(v) > 0 &&
        (rv = llmgw_google_rq_unsupported(rq, "logit_bias")) != APR_SUCCESS)
        return rv;
    v = json_object_get(in, "modalities");
    if (!llmgw_json_is_absent(v) &&
        !(json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)) &&
          strcmp(json_string_value(json_array_get(v, 0)), "text") == 0) &&
        (rv = llmgw_google_rq_unsupported(rq, "modalities")) != APR_SUCCESS)
        return rv;
    /* Gemini may call several functions at once whatever we ask. */
    if (json_is_false(json_object_get(in, "parallel_tool_calls")) &&
        (rv = llmgw_google_rq_unsupported(rq, "parallel_tool_calls")) != APR_SUCCESS)
        return rv;
    return APR_SUCCESS;
}

/* Copy member @p key of the client's body into @p gc under @p native, a number or an integer. */
static apr_status_t copy_numeric(rq_t *rq, json_t *gc, const char *key, const char *native,
                                 int integer)
{
    json_t *v = json_object_get(rq->in, key);

    if (llmgw_json_is_absent(v))
        return APR_SUCCESS;
    if (integer ? !json_is_integer(v) : !json_is_number(v))
        return llmgw_google_rq_type(rq, key, integer ? "an integer" : "a number");
    json_object_set(gc, native, v);
    return APR_SUCCESS;
}

static apr_status_t copy_number(rq_t *rq, json_t *gc, const char *key, const char *native)
{
    return copy_numeric(rq, gc, key, native, 0);
}

static apr_status_t copy_integer(rq_t *rq, json_t *gc, const char *key, const char *native)
{
    return copy_numeric(rq, gc, key, native, 1);
}

static apr_status_t map_stop(rq_t *rq, json_t *gc)
{
    json_t *seqs;

    if (!llmgw_prov_stop_sequences(json_object_get(rq->in, "stop"), &seqs))
        return llmgw_google_rq_type(rq, "stop", "a string, an array of strings or null");
    if (seqs)
        json_object_set_new(gc, "stopSequences", seqs);
    return APR_SUCCESS;
}

/* max_completion_tokens wins over the deprecated max_tokens. */
static apr_status_t map_max_tokens(rq_t *rq, json_t *gc)
{
    const char *key = "max_completion_tokens";
    json_t *v = json_object_get(rq->in, key);

    if (llmgw_json_is_absent(v)) {
        key = "max_tokens";
        v = json_object_get(rq->in, key);
    }
    if (llmgw_json_is_absent(v))
        return APR_SUCCESS;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return llmgw_google_rq_type(rq, key, "an integer of at least 1");
    json_object_set(gc, "maxOutputTokens", v);
    return APR_SUCCESS;
}

static apr_status_t map_n(rq_t *rq, json_t *gc)
{
    json_t *v = json_object_get(rq->in, "n");

    if (llmgw_json_is_absent(v))
        return APR_SUCCESS;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return llmgw_google_rq_type(rq, "n", "an integer of at least 1");
    if (json_integer_value(v) > 1)
        json_object_set(gc, "candidateCount", v);
    return APR_SUCCESS;
}

static apr_status_t map_logprobs(rq_t *rq, json_t *gc)
{
    json_t *lp = json_object_get(rq->in, "logprobs");
    json_t *top = json_object_get(rq->in, "top_logprobs");

    if (!llmgw_json_is_absent(lp) && !json_is_boolean(lp))
        return llmgw_google_rq_type(rq, "logprobs", "a boolean");
    if (json_is_true(lp))
        json_object_set_new(gc, "responseLogprobs", json_true());
    if (llmgw_json_is_absent(top))
        return APR_SUCCESS;
    if (!json_is_integer(top) || json_integer_value(top) < 0)
        return llmgw_google_rq_type(rq, "top_logprobs", "an integer of at least 0");
    if (!json_is_true(lp))
        return llmgw_google_rq_fail(rq, "invalid_value", "top_logprobs",
                                    "'top_logprobs' requires 'logprobs' to be true.");
    json_object_set(gc, "logprobs", top);
    return APR_SUCCESS;
}

/* response_format -> responseMimeType (+ responseJsonSchema, plain JSON Schema). */
static apr_status_t map_response_format(rq_t *rq, json_t *gc)
{
    json_t *rf = json_object_get(rq->in, "response_format");
    const char *type;
    json_t *js, *schema;

    if (llmgw_json_is_absent(rf))
        return APR_SUCCESS;
    type = llmgw_json_str(rf, "type");
    if (!json_is_object(rf) || !type)
        return llmgw_google_rq_type(rq, "response_format", "an object with a 'type'");
    if (strcmp(type, "text") == 0)
        return APR_SUCCESS;
    if (strcmp(type, "json_object") == 0) {
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
        return APR_SUCCESS;
    }
    if (strcmp(type, "json_schema") != 0)
        return llmgw_google_rq_fail(rq, "invalid_value", "response_format.type",
                                    "Invalid value for 'response_format.type': '%s'.", type);
    js = json_object_get(rf, "json_schema");
    if (!json_is_object(js))
        return llmgw_google_rq_fail(rq, "missing_required_parameter", "response_format.json_schema",
                                    "Missing required parameter: 'response_format.json_schema'.");
    schema = json_object_get(js, "schema");
    if (!llmgw_json_is_absent(schema) && !json_is_object(schema))
        return llmgw_google_rq_type(rq, "response_format.json_schema.schema", "an object");
    json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    if (json_is_object(schema))
        json_object_set(gc, "responseJsonSchema", schema);
    return APR_SUCCESS;
}

/*
 * reasoning_effort -> thinkingConfig. Gemini 2.x models take a token
 * budget, later ones a level (providers.md 6.3 Option).
 */
static apr_status_t map_reasoning(rq_t *rq, json_t *gc)
{
    static const struct {
        const char *effort;
        int budget;
        const char *level;
    } table[] = {{"none", 0, "MINIMAL"},  {"minimal", 512, "MINIMAL"},
                 {"low", 1024, "LOW"},    {"medium", 8192, "MEDIUM"},
                 {"high", 24576, "HIGH"}, {"xhigh", 24576, "HIGH"},
                 {"max", 24576, "HIGH"},  {NULL, 0, NULL}};
    json_t *v = json_object_get(rq->in, "reasoning_effort");
    const char *model = rq->call->model;
    int i;

    if (llmgw_json_is_absent(v))
        return APR_SUCCESS;
    if (!json_is_string(v))
        return llmgw_google_rq_type(rq, "reasoning_effort", "a string");
    for (i = 0; table[i].effort; i++) {
        if (strcmp(json_string_value(v), table[i].effort) != 0)
            continue;
        if (strncmp(model, "gemini-", 7) == 0 && !validates_signatures(model))
            json_object_set_new(gc, "thinkingConfig",
                                json_pack("{s:i}", "thinkingBudget", table[i].budget));
        else
            json_object_set_new(gc, "thinkingConfig",
                                json_pack("{s:s}", "thinkingLevel", table[i].level));
        return APR_SUCCESS;
    }
    return llmgw_google_rq_fail(rq, "invalid_value", "reasoning_effort",
                                "Invalid value for 'reasoning_effort': '%s'.",
                                json_string_value(v));
}

static apr_status_t build_generation_config(rq_t *rq, json_t *body)
{
    json_t *gc = json_object();
    apr_status_t rv;

    if ((rv = copy_number(rq, gc, "temperature", "temperature")) != APR_SUCCESS ||
        (rv = copy_number(rq, gc, "top_p", "topP")) != APR_SUCCESS ||
        (rv = map_max_tokens(rq, gc)) != APR_SUCCESS || (rv = map_stop(rq, gc)) != APR_SUCCESS ||
        (rv = map_n(rq, gc)) != APR_SUCCESS ||
        (rv = copy_number(rq, gc, "presence_penalty", "presencePenalty")) != APR_SUCCESS ||
        (rv = copy_number(rq, gc, "frequency_penalty", "frequencyPenalty")) != APR_SUCCESS ||
        (rv = copy_integer(rq, gc, "seed", "seed")) != APR_SUCCESS ||
        (rv = map_logprobs(rq, gc)) != APR_SUCCESS ||
        (rv = map_response_format(rq, gc)) != APR_SUCCESS ||
        (rv = map_reasoning(rq, gc)) != APR_SUCCESS) {
        json_decref(gc);
        return rv;
    }
    if (json_object_size(gc) > 0)
        json_object_set_new(body, "generationConfig", gc);
    else
        json_decref(gc);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Request translation: content parts                                     */
/* ---------------------------------------------------------------------- */

/*
 * "data:<media type>[;params];base64,<payload>" -> {"inlineData":{...}}
 * (new reference); NULL when @p uri is not such a URI with base64 data.
 */
static json_t *inline_data(apr_pool_t *p, const char *uri)
{
    const char *mime, *data;

    if (!llmgw_prov_data_uri(p, uri, &mime, &data) || !*mime || !strchr(mime, '/') ||
        !llmgw_prov_base64_ok(data))
        return NULL;
    return json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data);
}

/* Media type from a file name extension, NULL when unknown. */
static const char *mime_from_uri(const char *uri)
{
    static const char *const table[] = {
        "png",  "image/png",  "jpg",  "image/jpeg",      "jpeg", "image/jpeg",
        "gif",  "image/gif",  "webp", "image/webp",      "heic", "image/heic",
        "heif", "image/heif", "pdf",  "application/pdf", NULL};
    const char *end = uri + strcspn(uri, "?#");
    const char *dot = end;
    int i;

    while (dot > uri && dot[-1] != '.' && dot[-1] != '/')
        dot--;
    if (dot == uri || dot[-1] != '.')
        return NULL;
    for (i = 0; table[i]; i += 2) {
        if (strlen(table[i]) == (apr_size_t)(end - dot) &&
            strncasecmp(dot, table[i], (apr_size_t)(end - dot)) == 0)
            return table[i + 1];
    }
    return NULL;
}

/*
 * gs:// (Vertex AI) or Files-API (Gemini API) URIs are passed by reference
 * (providers.md 6.4 Option), with the media type their name tells. Vertex
 * AI requires fileData.mimeType, so there a name that tells none is
 * refused; the Gemini API knows the type of an uploaded file and takes the
 * reference without one. NULL (and rq->err) when refused.
 */
static json_t *file_data(rq_t *rq, const char *uri, const char *upath)
{
    const char *mime = mime_from_uri(uri);
    json_t *fd;

    if (!mime && is_vertex(rq->call->backend)) {
        llmgw_google_rq_fail(
            rq, "invalid_value", upath,
            "The media type of '%s' cannot be told from its name, and Vertex AI needs it: "
            "name the object with an extension (.png, .jpg, .jpeg, .gif, .webp, .heic, "
            ".heif, .pdf) or send the image as a data URI.",
            upath);
        return NULL;
    }
    fd = json_pack("{s:s}", "fileUri", uri);
    if (mime)
        json_object_set_new(fd, "mimeType", json_string(mime));
    return json_pack("{s:o}", "fileData", fd);
}

/* What an image_url part's URL asks of the translator. */
typedef enum {
    IMAGE_DATA,    /* data: URI, inlined as is */
    IMAGE_REF,     /* a URI Google reads itself: fileData */
    IMAGE_REMOTE,  /* http(s): fetched by the glue, then inlined */
    IMAGE_FOREIGN, /* a URI only the other Google service reads */
    IMAGE_BAD
} image_kind_e;

static const char *image_url_of(const json_t *part)
{
    json_t *iu = json_object_get(part, "image_url");
    return json_is_string(iu) ? json_string_value(iu) : llmgw_json_str(iu, "url");
}

static image_kind_e image_kind(const llmgw_backend_t *b, const char *url)
{
    int vertex = is_vertex(b);
    int gs = strncmp(url, "gs://", 5) == 0 && url[5];
    int files = strncmp(url, GOOGLE_FILES_PREFIX, sizeof(GOOGLE_FILES_PREFIX) - 1) == 0;

    if (strncasecmp(url, "data:", 5) == 0)
        return IMAGE_DATA;
    if ((vertex && gs) || (!vertex && files))
        return IMAGE_REF;
    if (gs || files)
        return IMAGE_FOREIGN;
    if (strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0)
        return IMAGE_REMOTE;
    return IMAGE_BAD;
}

/*
 * image_url (providers.md 6.4): data URIs are inlined; http(s) images are
 * inlined from call->images, where the glue put what it fetched for
 * llmgw_google_remote_images (a translator does no I/O); URIs Google reads itself
 * are passed by reference.
 */
static apr_status_t image_part(rq_t *rq, const json_t *part, const char *path, json_t *parts)
{
    const char *url = image_url_of(part);
    const char *upath = apr_pstrcat(rq->p, path, ".image_url.url", NULL);
    const llmgw_image_t *img;
    json_t *d;

    if (!url)
        return llmgw_google_rq_fail(rq, "missing_required_parameter", upath,
                                    "Missing required parameter: '%s'.", upath);
    switch (image_kind(rq->call->backend, url)) {
    case IMAGE_DATA:
        if (!(d = inline_data(rq->p, url)))
            return llmgw_google_rq_fail(
                rq, "invalid_value", upath,
                "'%s' is not a valid base64 data URI (data:<media type>;base64,...).", upath);
        break;
    case IMAGE_REF:
        if (!(d = file_data(rq, url, upath)))
            return LLMGW_EBADREQ;
        break;
    case IMAGE_REMOTE:
        img = rq->call->images ? apr_hash_get(rq->call->images, url, APR_HASH_KEY_STRING) : NULL;
        if (!img) {
            /* The glue fetches every image remote_images lists: a gateway fault. */
            rq->err = llmgw_error_make(rq->p, 500, "server_error", NULL, upath,
                                       "The image of '%s' was not fetched.", upath);
            return APR_EINVAL;
        }
        /* Base64 is ASCII: no need to check megabytes of it for UTF-8. */
        d = json_pack("{s:{s:s, s:o}}", "inlineData", "mimeType", img->mime_type, "data",
                      json_string_nocheck(img->base64));
        break;
    case IMAGE_FOREIGN:
        return llmgw_google_rq_fail(
            rq, "unsupported_value", upath,
            "'%s' can only be read by %s; the google backend \"%s\" uses %s. Send the "
            "image as a data URI or an https URL.",
            upath,
            is_vertex(rq->call->backend) ? "the Gemini API (Files API URIs)"
                                         : "Vertex AI (gs:// URIs)",
            rq->call->backend->name, is_vertex(rq->call->backend) ? "Vertex AI" : "the Gemini API");
    default:
        return llmgw_google_rq_fail(rq, "invalid_value", upath,
                                    "'%s' must be an https URL or a data URI.", upath);
    }
    json_array_append_new(parts, d);
    return APR_SUCCESS;
}

/* The http(s) images of the request's user messages, for the glue to fetch. */
void llmgw_google_remote_images(const llmgw_call_t *call, apr_array_header_t *out)
{
    json_t *msgs = call->api == LLMGW_API_CHAT ? json_object_get(call->body, "messages") : NULL;
    size_t i, j;
    json_t *m, *part;

    json_array_foreach (msgs, i, m) {
        const char *role = llmgw_json_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (!role || strcmp(role, "user") != 0 || !json_is_array(content))
            continue;
        json_array_foreach (content, j, part) {
            const char *type = llmgw_json_str(part, "type");
            const char *url = image_url_of(part);
            llmgw_image_ref_t *ref;

            if (!type || strcmp(type, "image_url") != 0 || !url ||
                image_kind(call->backend, url) != IMAGE_REMOTE)
                continue;
            ref = apr_array_push(out);
            ref->url = url;
            ref->param = apr_psprintf(
                call->pool,
                "messages[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT "].image_url.url", i, j);
        }
    }
}

static apr_status_t audio_part(rq_t *rq, const json_t *part, const char *path, json_t *parts)
{
    json_t *ia = json_object_get(part, "input_audio");
    const char *data = llmgw_json_str(ia, "data");
    const char *format = llmgw_json_str(ia, "format");
    const char *mime;

    if (!data || !llmgw_prov_base64_ok(data))
        return llmgw_google_rq_fail(rq, "invalid_value",
                                    apr_pstrcat(rq->p, path, ".input_audio.data", NULL),
                                    "'%s.input_audio.data' must be base64 audio data.", path);
    if (format && strcmp(format, "wav") == 0)
        mime = "audio/wav";
    else if (format && strcmp(format, "mp3") == 0)
        mime = "audio/mp3";
    else
        return llmgw_google_rq_fail(rq, "unsupported_value",
                                    apr_pstrcat(rq->p, path, ".input_audio.format", NULL),
                                    "Audio format must be 'wav' or 'mp3'.");
    json_array_append_new(
        parts, json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data));
    return APR_SUCCESS;
}

static apr_status_t file_part(rq_t *rq, const json_t *part, const char *path, json_t *parts)
{
    json_t *f = json_object_get(part, "file");
    const char *fd = llmgw_json_str(f, "file_data");
    json_t *d;

    if (!llmgw_json_is_absent(json_object_get(f, "file_id")))
        return llmgw_google_rq_fail(
            rq, "unsupported_value", apr_pstrcat(rq->p, path, ".file.file_id", NULL),
            "OpenAI file ids mean nothing to the google backend; send the file as "
            "file_data (a data URI).");
    if (!fd || !(d = inline_data(rq->p, fd)))
        return llmgw_google_rq_fail(rq, "invalid_value",
                                    apr_pstrcat(rq->p, path, ".file.file_data", NULL),
                                    "'%s.file.file_data' must be a base64 data URI.", path);
    json_array_append_new(parts, d);
    return APR_SUCCESS;
}

static void add_text(json_t *parts, const char *text)
{
    if (*text)
        json_array_append_new(parts, json_pack("{s:s}", "text", text));
}

static apr_status_t text_of_part(rq_t *rq, const json_t *part, const char *path, const char **text)
{
    *text = llmgw_json_str(part, "text");
    if (!*text)
        return llmgw_google_rq_fail(rq, "invalid_value", apr_pstrcat(rq->p, path, ".text", NULL),
                                    "'%s.text' must be a string.", path);
    return APR_SUCCESS;
}

/* Content parts of a user message. */
static apr_status_t user_parts(rq_t *rq, const json_t *content, const char *mpath, json_t *parts)
{
    size_t j;
    json_t *part;
    apr_status_t rv;

    if (json_is_string(content)) {
        add_text(parts, json_string_value(content));
        return APR_SUCCESS;
    }
    if (llmgw_json_is_absent(content))
        return APR_SUCCESS;
    json_array_foreach (content, j, part) {
        const char *path = apr_psprintf(rq->p, "%s.content[%" APR_SIZE_T_FMT "]", mpath, j);
        const char *type = llmgw_json_str(part, "type");
        const char *text;

        if (!type)
            return llmgw_google_rq_fail(rq, "invalid_value", path,
                                        "'%s' must be a content part with a type.", path);
        if (strcmp(type, "text") == 0) {
            if ((rv = text_of_part(rq, part, path, &text)) != APR_SUCCESS)
                return rv;
            add_text(parts, text);
            continue;
        }
        if (strcmp(type, "image_url") == 0)
            rv = image_part(rq, part, path, parts);
        else if (strcmp(type, "input_audio") == 0)
            rv = audio_part(rq, part, path, parts);
        else if (strcmp(type, "file") == 0)
            rv = file_part(rq, part, path, parts);
        else
            rv = llmgw_google_rq_fail(rq, "invalid_value", path, "Invalid content part type '%s'.",
                                      type);
        if (rv != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Text of system/developer/assistant content: text (and, for assistants, refusal) parts. */
static apr_status_t text_parts(rq_t *rq, const json_t *content, const char *mpath, int refusal_ok,
                               json_t *parts)
{
    size_t j;
    json_t *part;

    if (json_is_string(content)) {
        add_text(parts, json_string_value(content));
        return APR_SUCCESS;
    }
    if (llmgw_json_is_absent(content))
        return APR_SUCCESS;
    json_array_foreach (content, j, part) {
        const char *path = apr_psprintf(rq->p, "%s.content[%" APR_SIZE_T_FMT "]", mpath, j);
        const char *type = llmgw_json_str(part, "type");
        const char *key = type && refusal_ok && strcmp(type, "refusal") == 0 ? "refusal" : "text";
        const char *text = llmgw_json_str(part, key);

        if (!type || (strcmp(type, "text") != 0 && strcmp(key, "refusal") != 0))
            return llmgw_google_rq_fail(rq, "invalid_value", path,
                                        "Only text content parts are allowed in '%s'.", path);
        if (!text)
            return llmgw_google_rq_fail(rq, "invalid_value",
                                        apr_pstrcat(rq->p, path, ".", key, NULL),
                                        "'%s.%s' must be a string.", path, key);
        add_text(parts, text);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Request translation: tool calls and tool results                      */
/* ---------------------------------------------------------------------- */

/* A tool call of the latest assistant turn, waiting for its result. */
typedef struct {
    const char *id; /* as the client sent it */
    const char *name;
    const char *native_id; /* functionCall.id Google made, or NULL */
} call_slot_t;

typedef struct {
    apr_array_header_t *slots; /* call_slot_t */
    json_t *answers;           /* functionResponse parts by slot, null until answered */
    const char *path;          /* the assistant message */
} pending_t;

static void pending_reset(pending_t *pend)
{
    json_decref(pend->answers);
    pend->answers = NULL;
    pend->slots = NULL;
}

/* Split "<base>__thought__<signature>" (6.6); *sig is NULL when there is none. */
static void split_id(apr_pool_t *p, const char *id, const char **base, const char **sig)
{
    const char *sep = strstr(id, THOUGHT_SEP);

    *base = sep ? apr_pstrmemdup(p, id, (apr_size_t)(sep - id)) : id;
    *sig = sep && sep[THOUGHT_SEP_LEN] ? sep + THOUGHT_SEP_LEN : NULL;
}

/* Base ids Google made go back to it; ours (and legacy ones) do not. */
static const char *native_id(const char *base)
{
    if (!*base || strncmp(base, GW_ID_PREFIX, sizeof(GW_ID_PREFIX) - 1) == 0 ||
        strncmp(base, LEGACY_ID_PREFIX, sizeof(LEGACY_ID_PREFIX) - 1) == 0)
        return NULL;
    return base;
}

static int all_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return *s == '\0';
}

/* arguments (a JSON string, as OpenAI sends it) -> args object (new reference). */
static apr_status_t call_args(rq_t *rq, const json_t *fn, const char *path, json_t **args)
{
    json_t *a = json_object_get(fn, "arguments");
    const char *apath = apr_pstrcat(rq->p, path, ".function.arguments", NULL);

    if (json_is_object(a)) { /* lenient: some clients send the object itself */
        *args = json_incref(a);
        return APR_SUCCESS;
    }
    if (llmgw_json_is_absent(a) || (json_is_string(a) && all_space(json_string_value(a)))) {
        *args = json_object();
        return APR_SUCCESS;
    }
    if (!json_is_string(a))
        return llmgw_google_rq_type(rq, apath, "a JSON string");
    *args = json_loadb(json_string_value(a), json_string_length(a), JSON_DECODE_ANY, NULL);
    if (!json_is_object(*args)) {
        json_decref(*args);
        *args = NULL;
        return llmgw_google_rq_fail(
            rq, "invalid_value", apath,
            "'%s' must be a JSON object; Gemini cannot take other arguments.", apath);
    }
    return APR_SUCCESS;
}

/* One assistant tool call -> a functionCall part; records the slot. */
static apr_status_t call_part(rq_t *rq, const json_t *fn, const char *id, const char *path,
                              const char *extra_sig, json_t *parts, pending_t *pend)
{
    const char *name = llmgw_json_str(fn, "name");
    call_slot_t *slot;
    const char *base, *sig;
    json_t *args, *fc, *part;
    apr_status_t rv;

    if (!name)
        return llmgw_google_rq_fail(rq, "missing_required_parameter",
                                    apr_pstrcat(rq->p, path, ".function.name", NULL),
                                    "Missing required parameter: '%s.function.name'.", path);
    if ((rv = call_args(rq, fn, path, &args)) != APR_SUCCESS)
        return rv;
    split_id(rq->p, id, &base, &sig);
    if (!sig)
        sig = extra_sig;
    fc = json_pack("{s:s, s:o}", "name", name, "args", args);
    if (native_id(base))
        json_object_set_new(fc, "id", json_string(base));
    part = json_pack("{s:o}", "functionCall", fc);
    if (sig)
        json_object_set_new(part, "thoughtSignature", json_string(sig));
    json_array_append_new(parts, part);

    slot = apr_array_push(pend->slots);
    slot->id = id;
    slot->name = name;
    slot->native_id = native_id(base);
    json_array_append_new(pend->answers, json_null());
    return APR_SUCCESS;
}

static apr_status_t assistant_calls(rq_t *rq, const json_t *m, const char *mpath, json_t *parts,
                                    pending_t *pend)
{
    json_t *calls = json_object_get(m, "tool_calls");
    json_t *legacy = json_object_get(m, "function_call");
    size_t j;
    json_t *tc;
    apr_status_t rv;

    pend->slots = apr_array_make(rq->p, 4, sizeof(call_slot_t));
    pend->answers = json_array();
    pend->path = mpath;
    if (!llmgw_json_is_absent(calls) && !json_is_array(calls))
        return llmgw_google_rq_type(rq, apr_pstrcat(rq->p, mpath, ".tool_calls", NULL), "an array");
    json_array_foreach (calls, j, tc) {
        const char *path = apr_psprintf(rq->p, "%s.tool_calls[%" APR_SIZE_T_FMT "]", mpath, j);
        const char *id = llmgw_json_str(tc, "id");
        const char *type = llmgw_json_str(tc, "type");
        json_t *google = json_object_get(json_object_get(tc, "extra_content"), "google");

        if (type && strcmp(type, "function") != 0)
            return llmgw_google_rq_fail(
                rq, "unsupported_value", apr_pstrcat(rq->p, path, ".type", NULL),
                "Only function tool calls can be sent to the google backend.");
        if (!id || !*id)
            return llmgw_google_rq_fail(rq, "missing_required_parameter",
                                        apr_pstrcat(rq->p, path, ".id", NULL),
                                        "Missing required parameter: '%s.id'.", path);
        rv = call_part(rq, json_object_get(tc, "function"), id, path,
                       llmgw_json_str(google, "thought_signature"), parts, pend);
        if (rv != APR_SUCCESS)
            return rv;
    }
    if (json_is_object(legacy)) {
        /* Legacy normalisation (providers.md 2.1 rule 3). */
        const char *id = apr_psprintf(rq->p, LEGACY_ID_PREFIX "%d", ++rq->legacy_calls);
        json_t *fn = json_pack("{s:O?, s:O?}", "name", json_object_get(legacy, "name"), "arguments",
                               json_object_get(legacy, "arguments"));

        rv = call_part(rq, fn, id, apr_pstrcat(rq->p, mpath, ".function_call", NULL), NULL, parts,
                       pend);
        json_decref(fn);
        return rv;
    }
    return APR_SUCCESS;
}

/* Tool output -> the functionResponse `response` object (6.4 step 4), new reference. */
static json_t *tool_response(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

    if (json_is_object(v))
        return v;
    if (!v)
        v = json_string(text);
    return json_pack("{s:o}", "output", v);
}

/* The text of a tool message: a string or text parts, concatenated. */
static apr_status_t tool_text(rq_t *rq, const json_t *content, const char *mpath, const char **out)
{
    json_t *parts = json_array();
    apr_status_t rv = text_parts(rq, content, mpath, 0, parts);
    const char *text = "";
    size_t j;
    json_t *part;

    json_array_foreach (parts, j, part) {
        text = apr_pstrcat(rq->p, text, llmgw_json_str(part, "text"), NULL);
    }
    json_decref(parts);
    *out = text;
    return rv;
}

/* A tool (or legacy function) message answers one call of the latest assistant turn. */
static apr_status_t tool_result(rq_t *rq, const json_t *m, const char *mpath, int legacy,
                                pending_t *pend)
{
    const char *key = legacy ? "name" : "tool_call_id";
    const char *want = llmgw_json_str(m, key);
    const char *kpath = apr_pstrcat(rq->p, mpath, ".", key, NULL);
    const char *text;
    call_slot_t *slot = NULL;
    json_t *fr;
    int k;
    apr_status_t rv;

    if (!want)
        return llmgw_google_rq_fail(rq, "missing_required_parameter", kpath,
                                    "Missing required parameter: '%s'.", kpath);
    for (k = 0; pend->slots && k < pend->slots->nelts; k++) {
        call_slot_t *s = &APR_ARRAY_IDX(pend->slots, k, call_slot_t);
        int answered = !json_is_null(json_array_get(pend->answers, (size_t)k));

        if (strcmp(legacy ? s->name : s->id, want) != 0 || (legacy && answered))
            continue;
        if (answered)
            return llmgw_google_rq_fail(rq, "invalid_value", kpath,
                                        "Tool call '%s' is answered more than once.", want);
        slot = s;
        break;
    }
    if (!slot)
        return llmgw_google_rq_fail(
            rq, "invalid_value", kpath,
            "'%s' does not match a tool call of the preceding assistant message.", kpath);
    if ((rv = tool_text(rq, json_object_get(m, "content"), mpath, &text)) != APR_SUCCESS)
        return rv;
    fr = json_pack("{s:s, s:o}", "name", slot->name, "response", tool_response(text));
    if (slot->native_id)
        json_object_set_new(fr, "id", json_string(slot->native_id));
    json_array_set_new(pend->answers, (size_t)k, json_pack("{s:o}", "functionResponse", fr));
    return APR_SUCCESS;
}

/* Append @p parts (stolen) as a @p role content; consecutive same-role contents merge. */
static void add_content(json_t *contents, const char *role, json_t *parts)
{
    size_t n = json_array_size(contents);
    json_t *last = n ? json_array_get(contents, n - 1) : NULL;

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return;
    }
    if (last && strcmp(llmgw_json_str(last, "role"), role) == 0) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return;
    }
    json_array_append_new(contents, json_pack("{s:s, s:o}", "role", role, "parts", parts));
}

/*
 * The results of the latest assistant turn become one user content, in the
 * order of its calls (6.4 step 5). A turn left unanswered before the next
 * message is refused, as OpenAI does; at the very end it is allowed.
 */
static apr_status_t flush_results(rq_t *rq, pending_t *pend, json_t *contents, int at_end)
{
    size_t k, n = json_array_size(pend->answers), missing = 0;
    const char *first_missing = NULL;

    if (!pend->slots || n == 0) {
        pending_reset(pend);
        return APR_SUCCESS;
    }
    for (k = 0; k < n; k++) {
        if (json_is_null(json_array_get(pend->answers, k))) {
            if (!first_missing)
                first_missing = APR_ARRAY_IDX(pend->slots, (int)k, call_slot_t).id;
            missing++;
        }
    }
    if (missing == n && at_end) {
        pending_reset(pend);
        return APR_SUCCESS;
    }
    if (missing)
        return llmgw_google_rq_fail(
            rq, "invalid_value", pend->path,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'; '%s' has no response.",
            first_missing);
    add_content(contents, "user", json_incref(pend->answers));
    pending_reset(pend);
    return APR_SUCCESS;
}

/* Does this user content carry anything but tool results (a new user turn)? */
static int user_turn(const json_t *content)
{
    json_t *parts = json_object_get(content, "parts");
    size_t i;
    json_t *part;

    if (strcmp(llmgw_json_str(content, "role"), "user") != 0)
        return 0;
    json_array_foreach (parts, i, part) {
        if (!json_object_get(part, "functionResponse"))
            return 1;
    }
    return 0;
}

/*
 * Gemini 3+ rejects a current-turn functionCall without its signature; when
 * the history lost it (another provider answered, or the client stripped
 * the id), the documented sentinel stands in (6.6).
 */
static void mark_missing_signatures(json_t *contents)
{
    size_t i, start = 0, n = json_array_size(contents);

    for (i = 0; i < n; i++) {
        if (user_turn(json_array_get(contents, i)))
            start = i + 1;
    }
    for (i = start; i < n; i++) {
        json_t *c = json_array_get(contents, i);
        json_t *parts = json_object_get(c, "parts");
        size_t j;
        json_t *part;

        if (strcmp(llmgw_json_str(c, "role"), "model") != 0)
            continue;
        json_array_foreach (parts, j, part) {
            if (!json_object_get(part, "functionCall"))
                continue;
            if (!json_object_get(part, "thoughtSignature"))
                json_object_set_new(part, "thoughtSignature", json_string(SKIP_SIGNATURE));
            break;
        }
    }
}

/* One message of the conversation. */
static apr_status_t add_message(rq_t *rq, const json_t *m, const char *path, json_t *system,
                                json_t *contents, pending_t *pend)
{
    const char *role = llmgw_json_str(m, "role");
    json_t *content = json_object_get(m, "content");
    json_t *parts;
    apr_status_t rv;

    if (!json_is_object(m) || !role)
        return llmgw_google_rq_fail(rq, "invalid_value", path,
                                    "'%s' must be a message with a role.", path);
    if (!llmgw_json_is_absent(content) && !json_is_string(content) && !json_is_array(content))
        return llmgw_google_rq_type(rq, apr_pstrcat(rq->p, path, ".content", NULL),
                                    "a string, an array of content parts or null");
    if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0)
        return tool_result(rq, m, path, role[0] == 'f', pend);
    if ((rv = flush_results(rq, pend, contents, 0)) != APR_SUCCESS)
        return rv;
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return text_parts(rq, content, path, 0, system);
    parts = json_array();
    if (strcmp(role, "user") == 0) {
        rv = user_parts(rq, content, path, parts);
        role = "user";
    }
    else if (strcmp(role, "assistant") == 0) {
        rv = text_parts(rq, content, path, 1, parts);
        if (rv == APR_SUCCESS)
            rv = assistant_calls(rq, m, path, parts, pend);
        role = "model";
    }
    else {
        rv = llmgw_google_rq_fail(rq, "invalid_value", apr_pstrcat(rq->p, path, ".role", NULL),
                                  "Invalid value for role: '%s'.", role);
    }
    if (rv != APR_SUCCESS) {
        json_decref(parts);
        return rv;
    }
    add_content(contents, role, parts);
    return APR_SUCCESS;
}

static apr_status_t build_contents(rq_t *rq, json_t *body)
{
    json_t *msgs = json_object_get(rq->in, "messages");
    json_t *system = json_array(), *contents = json_array();
    pending_t pend = {NULL, NULL, NULL};
    apr_status_t rv = APR_SUCCESS;
    size_t i;
    json_t *m;

    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        rv = llmgw_google_rq_type(rq, "messages", "a non-empty array of messages");
    json_array_foreach (msgs, i, m) {
        rv = add_message(rq, m, apr_psprintf(rq->p, "messages[%" APR_SIZE_T_FMT "]", i), system,
                         contents, &pend);
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_SUCCESS)
        rv = flush_results(rq, &pend, contents, 1);
    pending_reset(&pend);
    if (rv == APR_SUCCESS && json_array_size(contents) == 0)
        rv = llmgw_google_rq_fail(
            rq, "invalid_value", "messages",
            "Gemini needs at least one user or assistant message besides the system "
            "instructions.");
    if (rv != APR_SUCCESS) {
        json_decref(system);
        json_decref(contents);
        return rv;
    }
    /* Gemini wants the conversation to open with the user (6.4 step 6). */
    if (strcmp(llmgw_json_str(json_array_get(contents, 0), "role"), "model") == 0)
        json_array_insert_new(contents, 0,
                              json_pack("{s:s, s:[{s:s}]}", "role", "user", "parts", "text", "."));
    if (validates_signatures(rq->call->model))
        mark_missing_signatures(contents);
    json_object_set_new(body, "contents", contents);
    if (json_array_size(system) > 0)
        json_object_set_new(body, "systemInstruction", json_pack("{s:o}", "parts", system));
    else
        json_decref(system);
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Request translation: entry points                                      */
/* ---------------------------------------------------------------------- */

static apr_status_t finish_request(rq_t *rq, json_t *body, const char *url, int stream,
                                   llmgw_http_request_t *out)
{
    apr_status_t rv = make_headers(rq->call, stream, out, &rq->err);

    if (rv == APR_SUCCESS) {
        out->body = llmgw_json_dump(rq->p, body, &out->body_len);
        rv = out->body ? APR_SUCCESS : APR_ENOMEM;
    }
    json_decref(body);
    out->method = "POST";
    out->url = url;
    out->stream = stream;
    return rv;
}

static apr_status_t build_chat(rq_t *rq, const char *model, llmgw_http_request_t *out)
{
    json_t *body = json_object();
    int stream = rq->call->stream;
    apr_status_t rv;

    if ((rv = check_unsupported(rq)) != APR_SUCCESS ||
        (rv = build_contents(rq, body)) != APR_SUCCESS ||
        (rv = llmgw_google_build_tools(rq, body)) != APR_SUCCESS ||
        (rv = build_generation_config(rq, body)) != APR_SUCCESS) {
        json_decref(body);
        return rv;
    }
    return finish_request(rq, body,
                          model_url(rq->p, rq->call->backend, model,
                                    stream ? "streamGenerateContent?alt=sse" : "generateContent"),
                          stream, out);
}

/* The texts of `input`; token ids cannot be translated (providers.md 2.6). */
static apr_status_t embedding_inputs(rq_t *rq, json_t **texts)
{
    json_t *in = json_object_get(rq->in, "input");
    size_t i;
    json_t *v;

    if (json_is_string(in)) {
        if (json_string_length(in) == 0)
            return llmgw_google_rq_fail(rq, "invalid_value", "input",
                                        "'input' cannot be an empty string.");
        *texts = json_pack("[O]", in);
        return APR_SUCCESS;
    }
    if (!json_is_array(in) || json_array_size(in) == 0)
        return llmgw_google_rq_type(rq, "input", "a string or a non-empty array of strings");
    json_array_foreach (in, i, v) {
        if (json_is_integer(v) || json_is_array(v))
            return llmgw_google_rq_fail(
                rq, "unsupported_value", "input",
                "Token-id input cannot be sent to the google backend; send text.");
        if (!json_is_string(v))
            return llmgw_google_rq_type(rq, "input", "a string or an array of strings");
        if (json_string_length(v) == 0)
            return llmgw_google_rq_fail(
                rq, "invalid_value", apr_psprintf(rq->p, "input[%" APR_SIZE_T_FMT "]", i),
                "'input[%" APR_SIZE_T_FMT "]' cannot be an empty string.", i);
    }
    *texts = json_incref(in);
    return APR_SUCCESS;
}

static apr_status_t embedding_options(rq_t *rq, json_t **dims)
{
    json_t *d = json_object_get(rq->in, "dimensions");
    json_t *fmt = json_object_get(rq->in, "encoding_format");

    *dims = NULL;
    if (!llmgw_json_is_absent(fmt) &&
        !(json_is_string(fmt) && (strcmp(json_string_value(fmt), "float") == 0 ||
                                  strcmp(json_string_value(fmt), "base64") == 0)))
        return llmgw_google_rq_fail(rq, "invalid_value", "encoding_format",
                                    "'encoding_format' must be 'float' or 'base64'.");
    if (llmgw_json_is_absent(d))
        return APR_SUCCESS;
    if (!json_is_integer(d) || json_integer_value(d) < 1)
        return llmgw_google_rq_type(rq, "dimensions", "an integer of at least 1");
    *dims = d;
    return APR_SUCCESS;
}

static json_t *text_content(const json_t *text)
{
    return json_pack("{s:[{s:O}]}", "parts", "text", text);
}

/*
 * Newer Gemini embedding models on Vertex AI answer at :embedContent, one
 * input per call; text-embedding-* and gemini-embedding-001 at :predict
 * (providers.md 6.10). This is the rule Google's own SDK applies.
 */
static int vertex_embed_content(const char *model)
{
    return strstr(model, "gemini") && strcmp(model, "gemini-embedding-001") != 0;
}

static json_t *vertex_embeddings(const char *model, json_t *texts, const json_t *dims,
                                 const char **method)
{
    json_t *list, *body, *t;
    size_t i;

    if (vertex_embed_content(model)) {
        body = json_pack("{s:o}", "content", text_content(json_array_get(texts, 0)));
        if (dims)
            json_object_set_new(body, "embedContentConfig",
                                json_pack("{s:O}", "outputDimensionality", dims));
        *method = "embedContent";
        return body;
    }
    list = json_array();
    json_array_foreach (texts, i, t) {
        json_array_append_new(list, json_pack("{s:O}", "content", t));
    }
    body = json_pack("{s:o}", "instances", list);
    if (dims)
        json_object_set_new(body, "parameters", json_pack("{s:O}", "outputDimensionality", dims));
    *method = "predict";
    return body;
}

static json_t *aistudio_embeddings(const char *model, json_t *texts, const json_t *dims, int single,
                                   const char **method)
{
    json_t *list, *body, *t;
    size_t i;

    if (single) {
        body = json_pack("{s:o}", "content", text_content(json_array_get(texts, 0)));
        if (dims)
            json_object_set(body, "outputDimensionality", (json_t *)dims);
        *method = "embedContent";
        return body;
    }
    list = json_array();
    json_array_foreach (texts, i, t) {
        json_t *r = json_pack("{s:s+, s:o}", "model", "models/", model, "content", text_content(t));
        if (dims)
            json_object_set(r, "outputDimensionality", (json_t *)dims);
        json_array_append_new(list, r);
    }
    *method = "batchEmbedContents";
    return json_pack("{s:o}", "requests", list);
}

/*
 * Embeddings: on AI Studio one input goes to :embedContent, several to
 * :batchEmbedContents; on Vertex AI to :predict (all inputs as instances)
 * or :embedContent (one input). One client request is one upstream
 * request: inputs are never fanned out.
 */
static apr_status_t build_embeddings(rq_t *rq, const char *model, llmgw_http_request_t *out)
{
    const llmgw_backend_t *b = rq->call->backend;
    int single = json_is_string(json_object_get(rq->in, "input"));
    json_t *texts = NULL, *dims = NULL, *body;
    const char *method;
    apr_status_t rv;

    if ((rv = embedding_inputs(rq, &texts)) != APR_SUCCESS)
        return rv;
    if ((rv = embedding_options(rq, &dims)) != APR_SUCCESS) {
        json_decref(texts);
        return rv;
    }
    if (is_vertex(b) && vertex_embed_content(model) && json_array_size(texts) > 1) {
        json_decref(texts);
        return llmgw_google_rq_fail(
            rq, "unsupported_value", "input",
            "Vertex AI model '%s' embeds one input per request; send one string.", model);
    }
    if (is_vertex(b))
        body = vertex_embeddings(model, texts, dims, &method);
    else
        body = aistudio_embeddings(model, texts, dims, single, &method);
    json_decref(texts);
    return finish_request(rq, body, model_url(rq->p, b, model, method), 0, out);
}

apr_status_t llmgw_google_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                        llmgw_error_t **err)
{
    rq_t rq;
    const char *model;
    apr_status_t rv;

    memset(&rq, 0, sizeof(rq));
    rq.call = call;
    rq.p = call->pool;
    rq.in = call->body;
    if (call->api != LLMGW_API_CHAT && call->api != LLMGW_API_EMBEDDINGS) {
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "backend \"%s\" (google) does not serve this API",
                                call->backend->name);
        return LLMGW_EUNSUPPORTED;
    }
    if (!json_is_object(call->body)) {
        *err = llmgw_error_make(call->pool, 400, NULL, NULL, NULL,
                                "the request body must be a JSON object");
        return LLMGW_EBADREQ;
    }
    model = path_model(call->model);
    if (!model) {
        *err = llmgw_error_make(call->pool, 400, NULL, "invalid_value", "model",
                                "The model name '%s' cannot be used with the google backend.",
                                call->model);
        return LLMGW_EBADREQ;
    }
    if (call->api == LLMGW_API_CHAT)
        rv = build_chat(&rq, model, out);
    else
        rv = build_embeddings(&rq, model, out);
    if (rv != APR_SUCCESS)
        *err = rq.err;
    return rv;
}
