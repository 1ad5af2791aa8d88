/*
 * What every translator needs in the same form (see llmgw_provider_util.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_provider_util.h"
#include "llmgw_json.h"

#define SSE_PREFIX "data: "
#define SSE_PREFIX_LEN (sizeof(SSE_PREFIX) - 1)
#define SSE_DONE "data: [DONE]\n\n"

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

void llmgw_prov_push_header(apr_array_header_t *h, const char *line)
{
    APR_ARRAY_PUSH(h, const char *) = line;
}

int llmgw_prov_legacy_functions(const json_t *body)
{
    return json_is_array(json_object_get(body, "functions")) &&
           llmgw_json_is_absent(json_object_get(body, "tools"));
}

int llmgw_prov_tool_allowed(const json_t *allowed, const char *name)
{
    size_t i;
    json_t *t;

    if (!allowed)
        return 1;
    json_array_foreach (allowed, i, t) {
        const char *n = llmgw_json_str(json_object_get(t, "function"), "name");

        if (!n)
            n = llmgw_json_str(t, "name");
        if (n && name && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

int llmgw_prov_stop_sequences(const json_t *stop, json_t **out)
{
    size_t i;
    json_t *s;

    *out = NULL;
    if (llmgw_json_is_absent(stop))
        return 1;
    if (json_is_string(stop)) {
        *out = json_pack("[O]", stop);
        return 1;
    }
    if (!json_is_array(stop))
        return 0;
    json_array_foreach (stop, i, s) {
        if (!json_is_string(s))
            return 0;
    }
    if (json_array_size(stop) > 0)
        *out = json_incref((json_t *)stop);
    return 1;
}

int llmgw_prov_base64_ok(const char *s)
{
    apr_size_t n = strlen(s), pad = 0, i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '=') {
            pad++;
            continue;
        }
        if (pad || !(apr_isalnum(s[i]) || s[i] == '+' || s[i] == '/'))
            return 0;
    }
    return pad <= 2;
}

int llmgw_prov_data_uri(apr_pool_t *p, const char *uri, const char **media, const char **data)
{
    const char *comma, *semi;
    apr_size_t hlen;
    char *m, *c;

    if (strncasecmp(uri, "data:", 5) != 0)
        return 0;
    uri += 5;
    comma = strchr(uri, ',');
    if (!comma || !comma[1])
        return 0;
    hlen = (apr_size_t)(comma - uri);
    if (hlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return 0;
    semi = memchr(uri, ';', hlen);
    m = apr_pstrmemdup(p, uri, (apr_size_t)(semi - uri));
    for (c = m; *c; c++)
        *c = (char)apr_tolower(*c);
    *media = m;
    *data = comma + 1;
    return 1;
}

llmgw_error_t *llmgw_prov_vbad_request(apr_pool_t *p, const char *code, const char *param,
                                       const char *fmt, va_list ap)
{
    const char *msg = apr_pvsprintf(p, fmt, ap);

    return llmgw_error_make(p, 400, "invalid_request_error", code, param, "%s", msg);
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

int llmgw_prov_token_count(const json_t *obj, const char *key, apr_int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    double d = json_is_real(v) ? json_real_value(v) : -1.0;

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v) > LLMGW_TOKENS_MAX ? LLMGW_TOKENS_MAX
                                                        : (apr_int64_t)json_integer_value(v);
        return 1;
    }
    /* Up to the ceiling (2^53 - 1) a double still holds every integer exactly. */
    if (d >= 0.0) {
        *out = d >= (double)LLMGW_TOKENS_MAX ? LLMGW_TOKENS_MAX : (apr_int64_t)d;
        return 1;
    }
    return 0;
}

apr_int64_t llmgw_prov_tokens_sum(apr_int64_t a, apr_int64_t b)
{
    if (a < 0)
        a = 0;
    if (b < 0)
        b = 0;
    /* Compared before adding: the sum of two counts past the ceiling could wrap. */
    if (a >= LLMGW_TOKENS_MAX || b >= LLMGW_TOKENS_MAX - a)
        return LLMGW_TOKENS_MAX;
    return a + b;
}

int llmgw_prov_token_count_clean(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 1;
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 && json_integer_value(v) <= LLMGW_TOKENS_MAX;
    return json_is_real(v) && json_real_value(v) >= 0.0 &&
           json_real_value(v) <= (double)LLMGW_TOKENS_MAX;
}

json_t *llmgw_prov_float32_base64(apr_pool_t *p, const json_t *values)
{
    apr_size_t n = json_array_size(values), i;
    unsigned char *raw = apr_palloc(p, n * 4 + 1);
    char *text = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)(n * 4)));
    json_t *v;

    json_array_foreach (values, i, v) {
        float f;
        apr_uint32_t bits;

        if (!json_is_number(v))
            return NULL;
        f = (float)json_number_value(v);
        memcpy(&bits, &f, sizeof(bits));
        raw[4 * i] = (unsigned char)(bits & 0xFF);
        raw[4 * i + 1] = (unsigned char)((bits >> 8) & 0xFF);
        raw[4 * i + 2] = (unsigned char)((bits >> 16) & 0xFF);
        raw[4 * i + 3] = (unsigned char)((bits >> 24) & 0xFF);
    }
    apr_base64_encode_binary(text, raw, (int)(n * 4));
    return json_string(text);
}

const llmgw_prov_finish_map_t *llmgw_prov_finish_row(const llmgw_prov_finish_map_t *map,
                                                     const char *native)
{
    for (; native && map->native; map++) {
        if (strcmp(map->native, native) == 0)
            return map;
    }
    return NULL;
}

const char *llmgw_prov_finish_reason(const llmgw_prov_finish_map_t *map, const char *native,
                                     int legacy)
{
    const llmgw_prov_finish_map_t *row = llmgw_prov_finish_row(map, native);
    const char *finish = row ? row->finish : "stop";

    return legacy && strcmp(finish, "tool_calls") == 0 ? "function_call" : finish;
}

json_t *llmgw_prov_usage_json(const llmgw_usage_t *u)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                     "completion_tokens", (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)u->total_tokens);
}

void llmgw_prov_usage_detail(json_t *usage, const char *group, const char *key, apr_int64_t n)
{
    json_t *g = json_object_get(usage, group);

    if (!json_is_object(g)) {
        g = json_object();
        json_object_set_new(usage, group, g);
    }
    json_object_set_new(g, key, json_integer((json_int_t)n));
}

/* @p len random bytes: from @p rnd when given (tests), else the system's. */
static void random_bytes(llmgw_prov_random_fn rnd, void *baton, unsigned char *buf, apr_size_t len)
{
    if (rnd) {
        rnd(baton, buf, len);
        return;
    }
    if (apr_generate_random_bytes(buf, len) != APR_SUCCESS) {
        /* No entropy source: ids must still differ, not be secret. */
        static apr_uint32_t counter;
        apr_uint64_t x = (apr_uint64_t)apr_time_now() ^ ((apr_uint64_t)++counter << 40);
        apr_size_t i;
        for (i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)(x >> 24);
        }
    }
}

void llmgw_prov_random_chars(char *out, apr_size_t n, llmgw_prov_random_fn rnd, void *baton)
{
    static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char buf[64];
    apr_size_t have = 0;
    int round;

    /* Bytes >= 248 are skipped so that each character is uniform (248 =
     * 4 * 62); a few rounds always suffice, and the last takes any byte. */
    for (round = 0; have < n; round++) {
        apr_size_t i;
        random_bytes(rnd, baton, buf, sizeof(buf));
        for (i = 0; i < sizeof(buf) && have < n; i++) {
            if (buf[i] < 248 || round >= 3)
                out[have++] = base62[buf[i] % 62];
        }
    }
}

int llmgw_prov_id_chars_ok(const char *id)
{
    if (!*id)
        return 0;
    for (; *id; id++) {
        char c = *id;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

const char *llmgw_prov_mint_id(apr_pool_t *p, const char *prefix, apr_size_t n)
{
    apr_size_t plen = strlen(prefix);
    char *out = apr_palloc(p, plen + n + 1);

    memcpy(out, prefix, plen);
    llmgw_prov_random_chars(out + plen, n, NULL, NULL);
    out[plen + n] = '\0';
    return out;
}

llmgw_error_t *llmgw_prov_bad_response(apr_pool_t *p, const char *what)
{
    if (!what)
        return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                                "upstream returned an invalid response");
    return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                            "upstream returned an invalid response (%s)", what);
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

const char *llmgw_prov_clip_message(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s);
    apr_size_t cut = LLMGW_PROV_MAX_MESSAGE - 3;

    if (n <= LLMGW_PROV_MAX_MESSAGE)
        return apr_pstrdup(p, s);
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return apr_pstrcat(p, apr_pstrmemdup(p, s, cut), "...", NULL);
}

const char *llmgw_prov_upstream_message(apr_pool_t *p, const char *msg, int status)
{
    if (msg && *msg)
        return llmgw_prov_clip_message(p, msg);
    return apr_psprintf(p, "upstream returned HTTP %d", status);
}

int llmgw_prov_anthropic_status(const char *type, int dflt)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401},
        {"billing_error", 402},         {"permission_error", 403},
        {"not_found_error", 404},       {"request_too_large", 413},
        {"rate_limit_error", 429},      {"api_error", 500},
        {"timeout_error", 504},         {"overloaded_error", 529},
    };
    size_t i;

    for (i = 0; type && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(type, map[i].type) == 0)
            return map[i].status;
    }
    return dflt;
}

int llmgw_prov_credentials_refused(int status)
{
    return status == 401 || status == 403;
}

llmgw_error_t *llmgw_prov_auth_failed(apr_pool_t *p, int status)
{
    return llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                            "the upstream rejected the gateway's credentials (HTTP %d)", status);
}

int llmgw_prov_mentions(const char *text, const char *what)
{
    apr_size_t n = strlen(what);

    for (; text && *text; text++)
        if (strncasecmp(text, what, n) == 0)
            return 1;
    return 0;
}

llmgw_error_t *llmgw_prov_context_exceeded(apr_pool_t *p, const char *msg)
{
    return llmgw_error_make(p, 400, "invalid_request_error", "context_length_exceeded", NULL, "%s",
                            msg);
}

llmgw_error_t *llmgw_prov_odd_status(apr_pool_t *p, int status)
{
    return llmgw_error_make(p, 502, "server_error", "bad_gateway", NULL,
                            "upstream returned HTTP %d", status);
}

const char *llmgw_prov_status_code(int status)
{
    switch (status) {
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_exceeded";
    case 502:
        return "bad_gateway";
    case 503:
        return "upstream_unavailable";
    case 504:
        return "upstream_timeout";
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

apr_status_t llmgw_prov_stream_fail(llmgw_stream_t *st, apr_status_t rv, const char *code,
                                    const char *msg)
{
    st->error = llmgw_error_make(st->call->pool, 502, "server_error", code, NULL, "%s", msg);
    return rv;
}

apr_status_t llmgw_prov_malformed(llmgw_stream_t *st)
{
    return llmgw_prov_stream_fail(st, LLMGW_EMALFORMED, "bad_gateway",
                                  "upstream sent a malformed stream event");
}

apr_status_t llmgw_prov_incomplete(llmgw_stream_t *st)
{
    return llmgw_prov_stream_fail(st, LLMGW_ESTREAM, "bad_gateway",
                                  "upstream stream ended before the response was complete");
}

int llmgw_prov_choices_asked(const json_t *body, int max)
{
    json_t *n = json_object_get(body, "n");

    if (json_is_integer(n) && json_integer_value(n) > 1 && json_integer_value(n) <= max)
        return (int)json_integer_value(n);
    return 1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void llmgw_prov_event_data(const llmgw_sse_event_t *ev, const char **data, apr_size_t *len)
{
    const char *d = ev->data ? ev->data : "";
    apr_size_t n = ev->data ? ev->data_len : 0;

    while (n > 0 && is_space(*d)) {
        d++;
        n--;
    }
    while (n > 0 && is_space(d[n - 1]))
        n--;
    *data = d;
    *len = n;
}

int llmgw_prov_is_done_marker(const char *data, apr_size_t len)
{
    return len == 6 && memcmp(data, "[DONE]", 6) == 0;
}

apr_status_t llmgw_prov_emit_json(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *j)
{
    llmgw_json_buf_t b;
    apr_status_t rv;

    /* Serialised once, straight behind the prefix (no sizing pass). */
    llmgw_json_buf_init(&b);
    llmgw_json_buf_add(&b, SSE_PREFIX, SSE_PREFIX_LEN);
    rv = llmgw_json_buf_dump(&b, j);
    if (rv == APR_SUCCESS)
        rv = llmgw_json_buf_add(&b, "\n\n", 2);
    if (rv == APR_SUCCESS)
        rv = st->emit(st->baton, kind, j, b.data, b.len);
    else
        rv = APR_ENOMEM;
    llmgw_json_buf_free(&b);
    if (rv == APR_SUCCESS && kind == LLMGW_CHUNK_CONTENT)
        st->content_emitted = 1;
    return rv;
}

apr_status_t llmgw_prov_emit_raw(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *j,
                                 const char *text, apr_size_t len)
{
    llmgw_json_buf_t b;
    apr_status_t rv;

    llmgw_json_buf_init(&b);
    llmgw_json_buf_add(&b, SSE_PREFIX, SSE_PREFIX_LEN);
    llmgw_json_buf_add(&b, text, len);
    rv = llmgw_json_buf_add(&b, "\n\n", 2);
    if (rv == APR_SUCCESS)
        rv = st->emit(st->baton, kind, j, b.data, b.len);
    llmgw_json_buf_free(&b);
    if (rv == APR_SUCCESS && kind == LLMGW_CHUNK_CONTENT)
        st->content_emitted = 1;
    return rv;
}

void llmgw_prov_chunk_open(llmgw_json_buf_t *b, const char *id, apr_int64_t created,
                           const char *model)
{
    llmgw_json_buf_lit(b, SSE_PREFIX "{\"id\":");
    llmgw_json_buf_str(b, id);
    llmgw_json_buf_lit(b, ",\"object\":\"chat.completion.chunk\",\"created\":");
    llmgw_json_buf_int(b, created);
    llmgw_json_buf_lit(b, ",\"model\":");
    llmgw_json_buf_str(b, model);
}

void llmgw_prov_chunk_close(llmgw_json_buf_t *b, const char *finish, int usage_null)
{
    llmgw_json_buf_lit(b, ",\"finish_reason\":");
    if (finish)
        llmgw_json_buf_str(b, finish);
    else
        llmgw_json_buf_lit(b, "null");
    llmgw_json_buf_lit(b, "}]");
    if (usage_null)
        llmgw_json_buf_lit(b, ",\"usage\":null");
    llmgw_json_buf_lit(b, "}");
}

apr_status_t llmgw_prov_emit_frame(llmgw_stream_t *st, llmgw_chunk_kind_e kind, llmgw_json_buf_t *b)
{
    json_t *chunk = NULL;
    apr_status_t rv = APR_ENOMEM;

    if (!b->failed && b->len > SSE_PREFIX_LEN)
        chunk = st->frames_only ? json_null()
                                : llmgw_json_load(b->data + SSE_PREFIX_LEN, b->len - SSE_PREFIX_LEN,
                                                  JSON_ALLOW_NUL, NULL);
    if (chunk && llmgw_json_buf_lit(b, "\n\n") == APR_SUCCESS)
        rv = st->emit(st->baton, kind, chunk, b->data, b->len);
    json_decref(chunk);
    llmgw_json_buf_free(b);
    if (rv == APR_SUCCESS && kind == LLMGW_CHUNK_CONTENT)
        st->content_emitted = 1;
    return rv;
}

int llmgw_prov_frame_verbatim_ok(const char *text, apr_size_t len)
{
    /* A line break (whitespace between tokens of a multi-line data field)
     * would end the data line of the frame early. */
    return len > 0 && llmgw_json_verbatim_ok(text, len) && !memchr(text, '\n', len) &&
           !memchr(text, '\r', len);
}

apr_status_t llmgw_prov_emit_done(llmgw_stream_t *st)
{
    apr_status_t rv = st->emit(st->baton, LLMGW_CHUNK_FINAL, NULL, SSE_DONE, sizeof(SSE_DONE) - 1);

    if (rv == APR_SUCCESS)
        st->done = 1;
    return rv;
}

void *llmgw_prov_array_grow(apr_pool_t *p, void *elts, int *cap, int k, int first, apr_size_t size)
{
    int n = *cap ? *cap : first;
    void *grown;

    if (k < *cap)
        return elts;
    while (n <= k)
        n *= 2;
    grown = apr_pcalloc(p, size * (apr_size_t)n);
    if (*cap)
        memcpy(grown, elts, size * (apr_size_t)*cap);
    *cap = n;
    return grown;
}
