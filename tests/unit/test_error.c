/* Check suite for client-facing errors and failure classification (src/llmgw_error.c). */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_error.h"
#include "test_util.h"

#define USEC(sec) ((apr_interval_time_t)((sec)*1000000.0 + 0.5))

/* 2015-10-21 07:28:00 UTC, the instant of the HTTP dates below. */
#define DATE_INSTANT apr_time_from_sec(1445412480)

/* Serialise @p e and parse it back (new reference). */
static json_t *error_as_json(const llmgw_error_t *e)
{
    apr_size_t len = 0;
    const char *text = llmgw_error_json(test_pool, e, &len);

    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    return test_parse_json(text, len);
}

/* ------------------------------------------------------------------ */
/* Construction and JSON shape                                         */

START_TEST(test_type_for_status)
{
    static const struct {
        int status;
        const char *type;
    } rows[] = {
        {400, "invalid_request_error"}, {404, "invalid_request_error"},
        {405, "invalid_request_error"}, {413, "invalid_request_error"},
        {415, "invalid_request_error"}, {422, "invalid_request_error"},
        {401, "authentication_error"},  {403, "permission_error"},
        {429, "rate_limit_error"},      {500, "server_error"},
        {501, "server_error"},          {502, "server_error"},
        {503, "server_error"},          {504, "server_error"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_msg(strcmp(llmgw_error_type_for_status(rows[i].status), rows[i].type) == 0,
                      "status %d: got %s", rows[i].status,
                      llmgw_error_type_for_status(rows[i].status));
        /* make() with no type picks the same default. */
        ck_assert_str_eq(llmgw_error_make(test_pool, rows[i].status, NULL, NULL, NULL, "x")->type,
                         rows[i].type);
    }
}
END_TEST

START_TEST(test_make)
{
    char code[] = "model_not_found", param[] = "model";
    llmgw_error_t *e =
        llmgw_error_make(test_pool, 404, NULL, code, param,
                         "The model '%s' does not exist (%d candidates)", "gpt-9", 3);

    ck_assert_int_eq(e->status, 404);
    ck_assert_str_eq(e->type, "invalid_request_error");
    ck_assert_str_eq(e->message, "The model 'gpt-9' does not exist (3 candidates)");
    /* The error keeps its own copies: the caller's buffers may change or die. */
    memset(code, 'z', sizeof(code) - 1);
    memset(param, 'z', sizeof(param) - 1);
    ck_assert_str_eq(e->code, "model_not_found");
    ck_assert_str_eq(e->param, "model");

    e = llmgw_error_make(test_pool, 400, "custom_error", NULL, NULL, "m");
    ck_assert_str_eq(e->type, "custom_error");
    ck_assert_ptr_null(e->code);
    ck_assert_ptr_null(e->param);
}
END_TEST

START_TEST(test_json_exact)
{
    llmgw_error_t *e =
        llmgw_error_make(test_pool, 400, NULL, "unsupported_parameter", "n", "n must be 1");
    apr_size_t len;
    const char *text = llmgw_error_json(test_pool, e, &len);

    ck_assert_str_eq(text, "{\"error\":{\"message\":\"n must be 1\",\"type\":"
                           "\"invalid_request_error\",\"param\":\"n\",\"code\":"
                           "\"unsupported_parameter\"}}");
    ck_assert_uint_eq(len, strlen(text));
}
END_TEST

START_TEST(test_json_nulls)
{
    llmgw_error_t *e = llmgw_error_make(test_pool, 503, NULL, NULL, NULL, "busy");
    json_t *got = error_as_json(e);
    json_t *want = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", "busy", "type",
                             "server_error", "param", "code");
    json_t *inner = json_object_get(got, "error");

    ck_assert_json_eq(got, want);
    /* Present as null, not absent. */
    ck_assert(json_is_null(json_object_get(inner, "param")));
    ck_assert(json_is_null(json_object_get(inner, "code")));
    ck_assert_uint_eq(json_object_size(inner), 4);
    json_decref(got);
    json_decref(want);
}
END_TEST

START_TEST(test_json_escaping)
{
    const char *msg = "He said \"no\"\nthen \\left\ttab \x01 caf\xC3\xA9 \xE2\x9C\x93 "
                      "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x90\x88 </script>";
    llmgw_error_t *e = llmgw_error_make(test_pool, 400, NULL, "c\"q", "messages[0]\n", "%s", msg);
    const char *text = llmgw_error_json(test_pool, e, NULL);
    json_t *got = error_as_json(e);
    json_t *inner = json_object_get(got, "error");

    /* The text round-trips exactly and stays on one line. */
    ck_assert_ptr_null(strchr(text, '\n'));
    ck_assert_ptr_null(strchr(text, '\x01'));
    ck_assert_str_eq(json_string_value(json_object_get(inner, "message")), msg);
    ck_assert_str_eq(json_string_value(json_object_get(inner, "code")), "c\"q");
    ck_assert_str_eq(json_string_value(json_object_get(inner, "param")), "messages[0]\n");
    json_decref(got);
}
END_TEST

START_TEST(test_json_invalid_utf8)
{
    /* Stray bytes, a truncated sequence, an overlong form, a surrogate. */
    llmgw_error_t *e = llmgw_error_make(test_pool, 502, NULL, NULL, NULL,
                                        "a\xFF"
                                        "b\xC3"
                                        "c\xC0\xAF"
                                        "d\xED\xA0\x80"
                                        "e \xC3\xA9");
    json_t *got = error_as_json(e);
    const char *m = json_string_value(json_object_get(json_object_get(got, "error"), "message"));

    ck_assert_str_eq(m, "a\xEF\xBF\xBD"
                        "b\xEF\xBF\xBD"
                        "c\xEF\xBF\xBD\xEF\xBF\xBD"
                        "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                        "e \xC3\xA9");
    json_decref(got);
}
END_TEST

START_TEST(test_sse_form)
{
    llmgw_error_t *e = llmgw_error_make(test_pool, 503, "server_error", "upstream_overloaded", NULL,
                                        "Upstream provider\noverloaded");
    apr_size_t len, jlen;
    const char *sse = llmgw_error_sse(test_pool, e, &len);
    const char *json = llmgw_error_json(test_pool, e, &jlen);
    json_t *got, *want;

    ck_assert_uint_eq(len, strlen(sse));
    ck_assert_uint_eq(len, jlen + 8);
    ck_assert_int_eq(strncmp(sse, "data: ", 6), 0);
    ck_assert_str_eq(sse + len - 2, "\n\n");
    /* Exactly one event of one data line: the only newlines are the final two. */
    ck_assert_ptr_eq(strchr(sse, '\n'), sse + len - 2);
    ck_assert_int_eq(memcmp(sse + 6, json, jlen), 0);
    got = test_parse_json(sse + 6, len - 8);
    want = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", "Upstream provider\noverloaded",
                     "type", "server_error", "param", "code", "upstream_overloaded");
    ck_assert_json_eq(got, want);
    json_decref(got);
    json_decref(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Classification                                                      */

START_TEST(test_fail_name)
{
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_CONNECT, 0), "connect");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_TIMEOUT, 0), "timeout");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_IDLE, 0), "idle_timeout");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_RESET, 0), "reset");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_HTTP, 503), "http_503");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_HTTP, 429), "http_429");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_PROTOCOL, 0), "protocol");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_STREAM, 0), "stream_incomplete");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_CLIENT_GONE, 0), "client_gone");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_INTERNAL, 0), "internal");
    ck_assert_str_eq(llmgw_fail_name(test_pool, LLMGW_FAIL_NONE, 0), "none");
}
END_TEST

START_TEST(test_action_table)
{
    static const struct {
        llmgw_fail_e fail;
        int status;
        llmgw_action_e action;
    } rows[] = {
        {LLMGW_FAIL_CONNECT, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_TIMEOUT, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_IDLE, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_RESET, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_PROTOCOL, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_STREAM, 0, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 408, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 409, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 429, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 498, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 500, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 501, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 502, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 503, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 504, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 529, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 599, LLMGW_ACTION_RETRY},
        {LLMGW_FAIL_HTTP, 401, LLMGW_ACTION_FALLBACK},
        {LLMGW_FAIL_HTTP, 402, LLMGW_ACTION_FALLBACK},
        {LLMGW_FAIL_HTTP, 403, LLMGW_ACTION_FALLBACK},
        {LLMGW_FAIL_HTTP, 404, LLMGW_ACTION_FALLBACK},
        {LLMGW_FAIL_HTTP, 400, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 405, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 413, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 415, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 422, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 451, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 499, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_HTTP, 302, LLMGW_ACTION_RETRY}, /* not an answer: like PROTOCOL */
        {LLMGW_FAIL_CLIENT_GONE, 0, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_INTERNAL, 0, LLMGW_ACTION_FINAL},
        {LLMGW_FAIL_NONE, 0, LLMGW_ACTION_FINAL},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ck_assert_msg(llmgw_error_action(rows[i].fail, rows[i].status) == rows[i].action,
                      "row %u (fail %d, status %d): got %d, want %d", (unsigned)i, rows[i].fail,
                      rows[i].status, llmgw_error_action(rows[i].fail, rows[i].status),
                      rows[i].action);
}
END_TEST

START_TEST(test_exhausted_table)
{
    static const struct {
        llmgw_fail_e fail;
        int status;
        int client_status;
        const char *type;
        const char *code; /* NULL = JSON null */
        const char *says; /* the error class, in the message */
    } rows[] = {
        {LLMGW_FAIL_CONNECT, 0, 502, "server_error", "bad_gateway", "connect"},
        {LLMGW_FAIL_RESET, 0, 502, "server_error", "bad_gateway", "reset"},
        {LLMGW_FAIL_PROTOCOL, 0, 502, "server_error", "bad_gateway", "malformed"},
        {LLMGW_FAIL_STREAM, 0, 502, "server_error", "bad_gateway", "ended"},
        {LLMGW_FAIL_TIMEOUT, 0, 504, "server_error", "upstream_timeout", "timed out"},
        {LLMGW_FAIL_IDLE, 0, 504, "server_error", "upstream_timeout", "idle"},
        {LLMGW_FAIL_HTTP, 408, 504, "server_error", "upstream_timeout", "HTTP 408"},
        {LLMGW_FAIL_HTTP, 409, 409, "invalid_request_error", NULL, "HTTP 409"},
        {LLMGW_FAIL_HTTP, 429, 429, "rate_limit_error", "rate_limit_exceeded", "HTTP 429"},
        {LLMGW_FAIL_HTTP, 401, 502, "server_error", "upstream_auth_failed", "HTTP 401"},
        {LLMGW_FAIL_HTTP, 403, 502, "server_error", "upstream_auth_failed", "HTTP 403"},
        {LLMGW_FAIL_HTTP, 498, 503, "server_error", "upstream_unavailable", "HTTP 498"},
        {LLMGW_FAIL_HTTP, 500, 503, "server_error", "upstream_unavailable", "HTTP 500"},
        {LLMGW_FAIL_HTTP, 502, 503, "server_error", "upstream_unavailable", "HTTP 502"},
        {LLMGW_FAIL_HTTP, 503, 503, "server_error", "upstream_unavailable", "HTTP 503"},
        {LLMGW_FAIL_HTTP, 504, 503, "server_error", "upstream_unavailable", "HTTP 504"},
        {LLMGW_FAIL_HTTP, 529, 503, "server_error", "upstream_unavailable", "HTTP 529"},
        {LLMGW_FAIL_HTTP, 402, 502, "server_error", "bad_gateway", "HTTP 402"},
        {LLMGW_FAIL_HTTP, 404, 502, "server_error", "bad_gateway", "HTTP 404"},
        {LLMGW_FAIL_HTTP, 400, 502, "server_error", "bad_gateway", "HTTP 400"},
        {LLMGW_FAIL_INTERNAL, 0, 500, "server_error", NULL, "internal"},
        {LLMGW_FAIL_CLIENT_GONE, 0, 500, "server_error", NULL, "internal"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        llmgw_error_t *e =
            llmgw_error_exhausted(test_pool, rows[i].fail, rows[i].status, "eu-west");
        json_t *j = error_as_json(e);
        json_t *want = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", e->message, "type",
                                 rows[i].type, "param", "code", rows[i].code);

        ck_assert_msg(e->status == rows[i].client_status, "row %u: status %d, want %d", (unsigned)i,
                      e->status, rows[i].client_status);
        ck_assert_json_eq(j, want);
        /* The message names the backend and the error class. */
        ck_assert_msg(strstr(e->message, "backend \"eu-west\"") != NULL, "row %u: %s", (unsigned)i,
                      e->message);
        ck_assert_msg(strstr(e->message, rows[i].says) != NULL, "row %u: %s lacks %s", (unsigned)i,
                      e->message, rows[i].says);
        json_decref(j);
        json_decref(want);
    }
    /* No backend name: still a sentence, no "(null)". */
    ck_assert_ptr_null(
        strstr(llmgw_error_exhausted(test_pool, LLMGW_FAIL_CONNECT, 0, NULL)->message, "(null)"));
}
END_TEST

/* An upstream's error on its way to the client: known statuses only, types that agree. */
START_TEST(test_from_upstream)
{
    static const struct {
        int status;
        const char *type, *code;
        int want_status;
        const char *want_type, *want_code;
    } rows[] = {
        /* unknown statuses: 502 (overloads 503), the upstream's message kept */
        {418, "invalid_request_error", "teapot", 502, "server_error", "bad_gateway"},
        {499, NULL, NULL, 502, "server_error", "bad_gateway"},
        {420, "rate_limit_error", NULL, 502, "server_error", "bad_gateway"},
        {451, "invalid_request_error", NULL, 502, "server_error", "bad_gateway"},
        {520, "server_error", NULL, 502, "server_error", "bad_gateway"},
        {402, "invalid_request_error", NULL, 502, "server_error", "bad_gateway"},
        {200, NULL, NULL, 502, "server_error", "bad_gateway"},
        {302, NULL, NULL, 502, "server_error", "bad_gateway"},
        {600, NULL, NULL, 502, "server_error", "bad_gateway"},
        {-1, NULL, NULL, 502, "server_error", "bad_gateway"},
        {498, NULL, NULL, 503, "server_error", "upstream_unavailable"},
        {529, "overloaded_error", "overloaded", 503, "server_error", "upstream_unavailable"},
        /* known statuses keep status and code; the type follows the status class */
        {503, "invalid_request_error", "server_is_overloaded", 503, "server_error",
         "server_is_overloaded"},
        {500, "api_error", NULL, 500, "server_error", NULL},
        {400, "server_error", "x", 400, "invalid_request_error", "x"},
        {401, "api_error", NULL, 401, "authentication_error", NULL},
        {429, "requests", "rate_limit_exceeded", 429, "requests", "rate_limit_exceeded"},
        {404, "invalid_request_error", "model_not_found", 404, "invalid_request_error",
         "model_not_found"},
        {413, NULL, NULL, 413, "invalid_request_error", NULL},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        llmgw_error_t *in = llmgw_error_make(test_pool, rows[i].status, rows[i].type, rows[i].code,
                                             "p", "upstream says %d", rows[i].status);
        llmgw_error_t *out;

        if (!rows[i].type)
            in->type = NULL;
        out = llmgw_error_from_upstream(test_pool, in);
        ck_assert_msg(out->status == rows[i].want_status, "row %u: status %d", (unsigned)i,
                      out->status);
        ck_assert_msg(strcmp(out->type, rows[i].want_type) == 0, "row %u: type %s", (unsigned)i,
                      out->type);
        if (rows[i].want_code)
            ck_assert_str_eq(out->code, rows[i].want_code);
        else
            ck_assert_ptr_null(out->code);
        ck_assert_str_eq(out->message, in->message);
        ck_assert_str_eq(out->param, "p");
        ck_assert_int_eq(llmgw_error_status_passable(out->status), 1);
        /* The upstream's error itself is left as it was. */
        ck_assert_int_eq(in->status, rows[i].status);
    }
    /* Nothing to change: the same error. */
    {
        llmgw_error_t *ok = llmgw_error_make(test_pool, 400, NULL, "invalid_value", NULL, "x");
        ck_assert_ptr_eq(llmgw_error_from_upstream(test_pool, ok), ok);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Retry hints                                                         */

START_TEST(test_retry_after_numbers)
{
    apr_time_t now = DATE_INSTANT;

    ck_assert_int_eq(llmgw_retry_after_parse("1500", NULL, now), USEC(1.5));
    ck_assert_int_eq(llmgw_retry_after_parse("0", NULL, now), 0);
    ck_assert_int_eq(llmgw_retry_after_parse("250.5", NULL, now), 250500);
    ck_assert_int_eq(llmgw_retry_after_parse(" 20 ", NULL, now), 20000);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "7", now), USEC(7));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "0", now), 0);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "5.289", now), USEC(5.289));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "0.5", now), USEC(0.5));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, ".25", now), USEC(0.25));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "86400", now), USEC(86400));
    /* Sub-microsecond fractions round up: never retry early. */
    ck_assert_int_eq(llmgw_retry_after_parse("0.0001", NULL, now), 1);
    /* Absurd values clamp instead of overflowing. */
    ck_assert_int_gt(llmgw_retry_after_parse(NULL, "99999999999999999999999", now), USEC(86400));
}
END_TEST

START_TEST(test_retry_after_dates)
{
    apr_time_t now = DATE_INSTANT - apr_time_from_sec(120);

    /* IMF-fixdate, RFC 850 and asctime forms of the same instant, 2 minutes ahead. */
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", now),
                     USEC(120));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wednesday, 21-Oct-15 07:28:00 GMT", now),
                     USEC(120));
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wed Oct 21 07:28:00 2015", now), USEC(120));
    /* A date in the past means "now", not a negative wait. */
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wed, 21 Oct 2015 07:28:00 GMT",
                                             DATE_INSTANT + apr_time_from_sec(3600)),
                     0);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", DATE_INSTANT),
                     0);
}
END_TEST

START_TEST(test_retry_after_invalid)
{
    apr_time_t now = DATE_INSTANT;

    ck_assert_int_eq(llmgw_retry_after_parse(NULL, NULL, now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse("", "", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "soon", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "-5", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse("-100", NULL, now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "5s", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "1e3", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, ".", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "12 34", now), -1);
    ck_assert_int_eq(llmgw_retry_after_parse(NULL, "Wed, 32 Oct 2015 07:28:00 GMT", now), -1);
}
END_TEST

START_TEST(test_retry_after_priority)
{
    apr_time_t now = DATE_INSTANT;

    /* Both present: the millisecond header wins, whichever is larger. */
    ck_assert_int_eq(llmgw_retry_after_parse("200", "30", now), 200000);
    ck_assert_int_eq(llmgw_retry_after_parse("90000", "1", now), USEC(90));
    /* A broken retry-after-ms does not hide a good retry-after. */
    ck_assert_int_eq(llmgw_retry_after_parse("abc", "3", now), USEC(3));
    ck_assert_int_eq(llmgw_retry_after_parse("abc", "junk", now), -1);
}
END_TEST

START_TEST(test_go_durations)
{
    static const struct {
        const char *text;
        apr_interval_time_t usec;
    } rows[] = {
        {"6m0s", USEC(360)},
        {"2m59.56s", USEC(179.56)},
        {"120ms", 120000},
        {"1h2m", USEC(3720)},
        {"1.5s", USEC(1.5)},
        {"0s", 0},
        {"0", 0},
        {"1s", USEC(1)},
        {"37s", USEC(37)},
        {"5.289s", 5289000},
        {"1h0m0s", USEC(3600)},
        {"1.5h", USEC(5400)},
        {".5s", 500000},
        {"1.s", 1000000},
        {"250us", 250},
        {"250\xC2\xB5s", 250},
        {"250\xCE\xBCs", 250},
        {"3000ns", 3},
        {"1500ns", 2}, /* rounded up */
        {"1m30s500ms", 90500000},
        {"+2s", USEC(2)},
        {"0.000000001s", 1},
        {"2562047h", (apr_interval_time_t)2562047 * 3600 * 1000000},
        /* invalid */
        {"", -1},
        {"5", -1},
        {"s", -1},
        {".s", -1},
        {"-1s", -1},
        {"1x", -1},
        {"1 s", -1},
        {" 1s", -1},
        {"1s ", -1},
        {"1.2.3s", -1},
        {"2562048h", -1}, /* past Go's int64 nanoseconds */
        {"99999999999999999999s", -1},
        {"+", -1},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        apr_interval_time_t got = llmgw_go_duration_parse(rows[i].text);
        ck_assert_msg(got == rows[i].usec,
                      "\"%s\": got %" APR_INT64_T_FMT ", want %" APR_INT64_T_FMT, rows[i].text,
                      (apr_int64_t)got, (apr_int64_t)rows[i].usec);
    }
    ck_assert_int_eq(llmgw_go_duration_parse(NULL), -1);
}
END_TEST

START_TEST(test_backoff)
{
    static const apr_interval_time_t base_ms[] = {500, 1000, 2000, 4000, 8000, 8000, 8000, 8000};
    int attempt;

    for (attempt = 1; attempt <= 8; attempt++) {
        apr_interval_time_t base = apr_time_from_msec(base_ms[attempt - 1]);
        apr_interval_time_t lo = llmgw_backoff(attempt, 0.0);
        apr_interval_time_t hi = llmgw_backoff(attempt, 0.999);
        apr_interval_time_t mid = llmgw_backoff(attempt, 0.5);

        ck_assert_int_eq(lo, base * 3 / 4);
        ck_assert_int_le(hi, base * 5 / 4);
        ck_assert_int_ge(hi, base * 5 / 4 - base / 500);
        ck_assert_int_eq(mid, base);
        ck_assert_int_lt(lo, hi);
    }
    /* Out-of-range inputs stay within the band. */
    ck_assert_int_eq(llmgw_backoff(0, 0.0), apr_time_from_msec(375));
    ck_assert_int_eq(llmgw_backoff(1000000, 0.0), apr_time_from_msec(6000));
    ck_assert_int_le(llmgw_backoff(3, 7.0), apr_time_from_msec(2500));
    ck_assert_int_eq(llmgw_backoff(3, -1.0), apr_time_from_msec(1500));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Status texts                                                        */

START_TEST(test_strerror)
{
    static const apr_status_t ours[] = {LLMGW_EBADREQ,  LLMGW_EUNSUPPORTED, LLMGW_EUPSTREAM,
                                        LLMGW_ECONFIG,  LLMGW_ESTREAM,      LLMGW_ECLIENTGONE,
                                        LLMGW_ENOMODEL, LLMGW_EMALFORMED};
    char buf[128], apr_buf[128], small[8];
    const char *texts[8];
    apr_size_t i, j;

    for (i = 0; i < 8; i++) {
        texts[i] = apr_pstrdup(test_pool, llmgw_strerror(ours[i], buf, sizeof(buf)));
        ck_assert_ptr_eq(llmgw_strerror(ours[i], buf, sizeof(buf)), buf);
        /* Ours, not APR's generic "Error string not specified yet". */
        ck_assert_str_ne(texts[i], apr_strerror(ours[i], apr_buf, sizeof(apr_buf)));
        ck_assert_ptr_nonnull(strstr(texts[i], "llmgw"));
        for (j = 0; j < i; j++)
            ck_assert_str_ne(texts[i], texts[j]);
    }
    ck_assert_ptr_nonnull(strstr(texts[5], "client"));
    /* Anything else is APR's text. */
    ck_assert_str_eq(llmgw_strerror(APR_ENOENT, buf, sizeof(buf)),
                     apr_strerror(APR_ENOENT, apr_buf, sizeof(apr_buf)));
    ck_assert_str_eq(llmgw_strerror(LLMGW_START_ERROR + 9, buf, sizeof(buf)),
                     apr_strerror(LLMGW_START_ERROR + 9, apr_buf, sizeof(apr_buf)));
    /* A short buffer gets a truncated, terminated copy. */
    ck_assert_uint_eq(strlen(llmgw_strerror(LLMGW_ECONFIG, small, sizeof(small))), 7);
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, test_type_for_status);
    tcase_add_test(tc, test_make);
    tcase_add_test(tc, test_json_exact);
    tcase_add_test(tc, test_json_nulls);
    tcase_add_test(tc, test_json_escaping);
    tcase_add_test(tc, test_json_invalid_utf8);
    tcase_add_test(tc, test_sse_form);
    tcase_add_test(tc, test_fail_name);
    tcase_add_test(tc, test_action_table);
    tcase_add_test(tc, test_exhausted_table);
    tcase_add_test(tc, test_from_upstream);
    tcase_add_test(tc, test_retry_after_numbers);
    tcase_add_test(tc, test_retry_after_dates);
    tcase_add_test(tc, test_retry_after_invalid);
    tcase_add_test(tc, test_retry_after_priority);
    tcase_add_test(tc, test_go_durations);
    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_strerror);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(error_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
