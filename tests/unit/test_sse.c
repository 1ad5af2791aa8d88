/* Check suite for the incremental SSE parser (src/llmgw_sse.c). */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_sse.h"
#include "test_util.h"

#define MAX_EVENT (4 * 1024 * 1024)

/* What the callback saw: every event as {"event","data","id"}, in order. */
typedef struct {
    json_t *events; /* new reference, owned by the test */
    int calls;      /* callback invocations */
    int fail_at;    /* 1-based call that returns fail_rv; 0 = never */
    apr_status_t fail_rv;
} collector_t;

static apr_status_t collect(void *baton, const llmgw_sse_event_t *ev)
{
    collector_t *c = baton;

    c->calls++;
    /* The contract: data is NUL-terminated, event has its length, id is a C string. */
    ck_assert_int_eq(ev->data[ev->data_len], '\0');
    ck_assert_uint_eq(strlen(ev->event), ev->event_len);
    ck_assert_ptr_nonnull(ev->id);
    json_array_append_new(c->events,
                          json_pack("{s:s#,s:s#,s:s}", "event", ev->event, (int)ev->event_len,
                                    "data", ev->data, (int)ev->data_len, "id", ev->id));
    if (c->fail_at && c->calls == c->fail_at)
        return c->fail_rv;
    return APR_SUCCESS;
}

static apr_status_t cleanup_collector(void *data)
{
    json_decref(((collector_t *)data)->events);
    return APR_SUCCESS;
}

static collector_t *collector_new(void)
{
    collector_t *c = apr_pcalloc(test_pool, sizeof(*c));
    c->events = json_array();
    apr_pool_cleanup_register(test_pool, c, cleanup_collector, apr_pool_cleanup_null);
    return c;
}

static llmgw_sse_parser_t *parser_new(collector_t *c, apr_size_t max_event)
{
    llmgw_sse_parser_t *sp = NULL;
    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, max_event, collect, c), APR_SUCCESS);
    ck_assert_ptr_nonnull(sp);
    return sp;
}

static void feed_ok(llmgw_sse_parser_t *sp, const char *s)
{
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, s, strlen(s)), APR_SUCCESS);
}

/* Parse @p text fed in one piece, then finish; returns the events (borrowed from c). */
static json_t *parse_whole(collector_t *c, const char *text)
{
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    feed_ok(sp, text);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    return c->events;
}

/* A one-event expectation list. */
static json_t *one_event(const char *event, const char *data, const char *id)
{
    return json_pack("[{s:s,s:s,s:s}]", "event", event, "data", data, "id", id);
}

static const char *str_member(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    ck_assert_msg(v != NULL, "missing string member %s", key);
    return v;
}

static void assert_events(const char *text, json_t *expected)
{
    collector_t *c = collector_new();
    ck_assert_json_eq(parse_whole(c, text), expected);
    json_decref(expected);
}

/* ------------------------------------------------------------------ */
/* Fixtures from real providers' streams, under every split            */

/* Deterministic split sizes: a 32-bit LCG (Numerical Recipes constants). */
static apr_uint32_t lcg_next(apr_uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* Feed @p text in pieces of at most @p max_piece bytes (0 = whole, random if rng). */
static json_t *parse_split(const char *text, apr_size_t len, apr_size_t max_piece,
                           apr_uint32_t *rng)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    apr_size_t off = 0, n;

    while (off < len) {
        n = max_piece == 0 ? len : max_piece;
        if (rng)
            n = 1 + lcg_next(rng) % max_piece;
        if (n > len - off)
            n = len - off;
        ck_assert_int_eq(llmgw_sse_parser_feed(sp, text + off, n), APR_SUCCESS);
        off += n;
    }
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    return c->events;
}

static void check_fixture(const char *name)
{
    const char *base = apr_pstrndup(test_pool, name, strlen(name) - strlen(".sse"));
    apr_size_t len;
    char *text = test_read_file(apr_pstrcat(test_pool, "sse/", name, NULL), &len);
    json_t *expected = test_load_json(apr_pstrcat(test_pool, "sse/", base, ".expected.json", NULL));
    apr_uint32_t rng = 20240601u;
    int i;

    ck_assert_int_gt((int)json_array_size(expected), 0);
    ck_assert_json_eq(parse_split(text, len, 0, NULL), expected);
    ck_assert_json_eq(parse_split(text, len, 1, NULL), expected);
    ck_assert_json_eq(parse_split(text, len, 2, NULL), expected);
    ck_assert_json_eq(parse_split(text, len, 7, NULL), expected);
    for (i = 0; i < 200; i++)
        ck_assert_json_eq(parse_split(text, len, 1 + (apr_size_t)(i % 97), &rng), expected);
    json_decref(expected);
}

START_TEST(test_fixtures)
{
    apr_array_header_t *files = test_list_dir("sse", ".sse");
    int i;

    /* openai_chat, anthropic_messages, gemini_alt_sse, mixed_edge */
    ck_assert_int_ge(files->nelts, 4);
    for (i = 0; i < files->nelts; i++)
        check_fixture(APR_ARRAY_IDX(files, i, const char *));
}
END_TEST

/* Parse a fixture in one piece; every event's data must be JSON except @p sentinel. */
static json_t *parse_fixture(const char *name, const char *sentinel)
{
    apr_size_t len, i;
    char *text = test_read_file(name, &len);
    json_t *events = parse_split(text, len, 0, NULL), *ev;

    for (i = 0; i < json_array_size(events); i++) {
        ev = json_array_get(events, i);
        const char *data = json_string_value(json_object_get(ev, "data"));
        json_t *j;
        if (sentinel && strcmp(data, sentinel) == 0)
            continue;
        j = test_parse_json(data, strlen(data));
        json_object_set_new(ev, "json", j);
    }
    return events;
}

START_TEST(test_fixture_semantics)
{
    /* Cross-checks of the parser's output against what each provider's events mean. */
    json_t *events, *ev;
    apr_size_t i, n, pings = 0;
    char *raw;

    events = parse_fixture("sse/openai_chat.sse", "[DONE]");
    n = json_array_size(events);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(events, n - 1), "data")),
                     "[DONE]");
    for (i = 0; i + 1 < n; i++) {
        json_t *j = json_object_get(json_array_get(events, i), "json");
        ck_assert_str_eq(str_member(j, "object"), "chat.completion.chunk");
    }

    /* Anthropic names each event after its payload's type, pings included. */
    events = parse_fixture("sse/anthropic_messages.sse", NULL);
    for (i = 0; i < json_array_size(events); i++) {
        ev = json_array_get(events, i);
        const char *name = json_string_value(json_object_get(ev, "event"));
        ck_assert_str_eq(name, str_member(json_object_get(ev, "json"), "type"));
        pings += strcmp(name, "ping") == 0;
    }
    ck_assert_uint_eq(pings, 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(events, json_array_size(events) - 1), "event")),
                     "message_stop");

    /* Gemini's alt=sse stream really uses CRLF, and no CR survives into the data. */
    raw = test_read_file("sse/gemini_alt_sse.sse", NULL);
    ck_assert_ptr_nonnull(strstr(raw, "}\r\n\r\ndata: "));
    events = parse_fixture("sse/gemini_alt_sse.sse", NULL);
    ck_assert_uint_eq(json_array_size(events), 3);
    for (i = 0; i < json_array_size(events); i++) {
        ev = json_array_get(events, i);
        ck_assert_ptr_null(strchr(json_string_value(json_object_get(ev, "data")), '\r'));
        ck_assert(json_is_array(json_object_get(json_object_get(ev, "json"), "candidates")));
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Grammar                                                             */

START_TEST(test_comments)
{
    assert_events(": ping\n:\n\n: only a comment\n\ndata: x\n: between\n\n",
                  one_event("", "x", ""));
}
END_TEST

START_TEST(test_multiline_data)
{
    /* One space after the colon is stripped, not two; empty data lines count. */
    assert_events("data: a\ndata:\ndata:  b\ndata:c\n\n", one_event("", "a\n\n b\nc", ""));
}
END_TEST

START_TEST(test_field_without_colon)
{
    assert_events("data\n\n", one_event("", "", ""));
    assert_events("data\ndata\n\n", one_event("", "\n", ""));
}
END_TEST

START_TEST(test_event_and_id)
{
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "second", "data", "a", "id",
                             "2", "event", "", "data", "b", "id", "");

    /* The last event: and id: win; neither carries over to the next event. */
    assert_events("event: first\nid: 1\nevent: second\nid: 2\ndata: a\n\ndata: b\n\n", want);
    /* Values keep colons; the field name is case-sensitive. */
    assert_events("event: a:b\nEvent: no\ndata: {\"k\":\"v:w\"}\n\n",
                  one_event("a:b", "{\"k\":\"v:w\"}", ""));
}
END_TEST

START_TEST(test_id_with_nul_ignored)
{
    static const char text[] = "id: a\0b\ndata: x\n\n";
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = one_event("", "x", "");

    ck_assert_int_eq(llmgw_sse_parser_feed(sp, text, sizeof(text) - 1), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

START_TEST(test_unknown_fields_ignored)
{
    assert_events("retry: 1000\nfoo: bar\nData: X\nevent\ndata: y\n\n", one_event("", "y", ""));
}
END_TEST

START_TEST(test_no_data_no_dispatch)
{
    collector_t *c = collector_new();
    json_t *want = one_event("", "y", "");

    /* An event-only block resets silently: its name does not leak into the next. */
    ck_assert_json_eq(parse_whole(c, "event: lonely\nid: 5\n\n\n\ndata: y\n\n"), want);
    ck_assert_int_eq(c->calls, 1);
    json_decref(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Line ends                                                           */

START_TEST(test_cr_only)
{
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "e", "data", "a\nb", "id",
                             "", "event", "", "data", "c", "id", "");
    assert_events("event: e\rdata: a\rdata: b\r\rdata: c\r\r", want);
}
END_TEST

START_TEST(test_mixed_line_ends)
{
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "", "data", "a", "id", "",
                             "event", "", "data", "b\nc", "id", "");
    /* LF; CRLF as one blank line; CR; CRLF then LF. */
    assert_events("data: a\n\r\ndata: b\rdata: c\r\n\n", want);
}
END_TEST

START_TEST(test_crlf_split_across_feeds)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "", "data", "a\nb", "id", "",
                             "event", "", "data", "c", "id", "");

    /* Each CR ends a feed and its LF opens the next: one line end each, so the
     * LFs neither end the event early nor split it. */
    feed_ok(sp, "data: a\r");
    feed_ok(sp, "\ndata: b\r");
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, "", 0), APR_SUCCESS); /* keeps the pending CR */
    feed_ok(sp, "\n");
    ck_assert_int_eq(c->calls, 0);
    feed_ok(sp, "\r"); /* a blank line: dispatches at once, without waiting for an LF */
    ck_assert_int_eq(c->calls, 1);
    feed_ok(sp, "\ndata: c\r");
    ck_assert_int_eq(c->calls, 1);
    /* A CR followed by a CR in the next feed is two line ends: the second dispatches. */
    feed_ok(sp, "\r");
    ck_assert_int_eq(c->calls, 2);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* BOM                                                                 */

START_TEST(test_bom)
{
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "", "data", "x", "id", "",
                             "event", "", "data", "z", "id", "");
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    const char *text = "\xEF\xBB\xBF"
                       "data: x\n\n"
                       "\xEF\xBB\xBF"
                       "data: y\n\n" /* not at stream start: an unknown field */
                       "data: z\n\n";
    apr_size_t i;

    /* Byte by byte, so the BOM itself arrives split. */
    for (i = 0; text[i]; i++)
        ck_assert_int_eq(llmgw_sse_parser_feed(sp, text + i, 1), APR_SUCCESS);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

START_TEST(test_bom_only_once)
{
    collector_t *c = collector_new();

    /* The second BOM is part of the field name: the line is ignored. */
    parse_whole(c, "\xEF\xBB\xBF\xEF\xBB\xBF"
                   "data: x\n\n");
    ck_assert_int_eq(c->calls, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* End of input                                                        */

START_TEST(test_finish_dispatches_complete_last_event)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "event", "", "data", "a", "id", "",
                             "event", "done", "data", "b\nc", "id", "9");

    feed_ok(sp, "data: a\n\nevent: done\nid: 9\ndata: b\ndata: c\n");
    ck_assert_int_eq(c->calls, 1);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

START_TEST(test_finish_after_cr)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = one_event("", "a", "");

    feed_ok(sp, "data: a\r");
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

START_TEST(test_finish_partial_line)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = one_event("", "a", "");

    /* "b" is complete but its event is cut inside the next line: nothing of it is sent. */
    feed_ok(sp, "data: a\n\ndata: b\ndata: {\"trunc");
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_INCOMPLETE);
    ck_assert_json_eq(c->events, want);
    /* finish leaves a clean parser behind. */
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_int_eq(c->calls, 1);
    json_decref(want);
}
END_TEST

START_TEST(test_finish_empty)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);

    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    feed_ok(sp, "event: x\n: c\n");
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_int_eq(c->calls, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bounds                                                              */

static char *repeat(char ch, apr_size_t n)
{
    char *s = apr_palloc(test_pool, n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_oversize_line)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, 64);
    const char *big = apr_pstrcat(test_pool, "data: ", repeat('x', 100), "\n\n", NULL);

    feed_ok(sp, "data: small\n\n");
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, big, strlen(big)), APR_ENOSPC);
    ck_assert_int_eq(c->calls, 1);
    /* The failure sticks until reset; then the parser works again. */
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, "data: a\n\n", 9), APR_ENOSPC);
    ck_assert_int_eq(c->calls, 1);
    llmgw_sse_parser_reset(sp);
    feed_ok(sp, "data: again\n\n");
    ck_assert_int_eq(c->calls, 2);
}
END_TEST

START_TEST(test_oversize_byte_by_byte)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, 64);
    const char *big = apr_pstrcat(test_pool, "data: ", repeat('x', 100), "\n\n", NULL);
    apr_size_t i;
    apr_status_t rv = APR_SUCCESS;

    for (i = 0; big[i] && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, big + i, 1);
    ck_assert_int_eq(rv, APR_ENOSPC);
    ck_assert_uint_eq(i, 65); /* the 65th byte of the line is one too many */
    ck_assert_int_eq(c->calls, 0);
}
END_TEST

START_TEST(test_oversize_accumulated)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, 64);
    apr_status_t rv = APR_SUCCESS;
    int i;

    /* Every line is short; the event they build is not. */
    for (i = 0; i < 20 && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, "data: 0123456789\n", 17);
    ck_assert_int_eq(rv, APR_ENOSPC);
    ck_assert_int_lt(i, 20);
    ck_assert_int_eq(c->calls, 0);

    /* Repeated event: lines count against the bound too. */
    llmgw_sse_parser_reset(sp);
    rv = APR_SUCCESS;
    for (i = 0; i < 20 && rv == APR_SUCCESS; i++)
        rv = llmgw_sse_parser_feed(sp, "event: 0123456789\n", 18);
    ck_assert_int_eq(rv, APR_ENOSPC);
}
END_TEST

START_TEST(test_bound_is_exact)
{
    const char *line = apr_pstrcat(test_pool, "data: ", repeat('y', 58), "\n\n", NULL);
    collector_t *c = collector_new();
    llmgw_sse_parser_t *fits = parser_new(c, 64), *tight = parser_new(c, 63);

    /* The line is 64 bytes without its end: accepted at 64, refused at 63. */
    ck_assert_int_eq(llmgw_sse_parser_feed(fits, line, strlen(line)), APR_SUCCESS);
    ck_assert_int_eq(c->calls, 1);
    ck_assert_uint_eq(
        strlen(json_string_value(json_object_get(json_array_get(c->events, 0), "data"))), 58);
    ck_assert_int_eq(llmgw_sse_parser_feed(tight, line, strlen(line)), APR_ENOSPC);
    /* Many events of that size in a row: the buffer is reused, never exhausted. */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(llmgw_sse_parser_feed(fits, line, strlen(line)), APR_SUCCESS);
    ck_assert_int_eq(c->calls, 1001);
}
END_TEST

START_TEST(test_large_event_grows)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    char *piece = repeat('q', 999);
    const char *line = apr_pstrcat(test_pool, "data: ", piece, "\n", NULL);
    apr_size_t ll = strlen(line);
    int i;
    const char *data;

    /* 300 KB event across 300 lines, fed in 13-byte slices: the buffer must grow. */
    for (i = 0; i < 300; i++) {
        for (apr_size_t off = 0; off < ll; off += 13)
            ck_assert_int_eq(llmgw_sse_parser_feed(sp, line + off, ll - off < 13 ? ll - off : 13),
                             APR_SUCCESS);
    }
    feed_ok(sp, "event: big\n\ndata: next\n\n");
    ck_assert_int_eq(c->calls, 2);
    data = json_string_value(json_object_get(json_array_get(c->events, 0), "data"));
    ck_assert_uint_eq(strlen(data), 300 * 1000 - 1);
    for (i = 0; i < 300; i++) {
        ck_assert_int_eq(memcmp(data + i * 1000, piece, 999), 0);
        if (i < 299)
            ck_assert_int_eq(data[i * 1000 + 999], '\n');
    }
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(c->events, 0), "event")),
                     "big");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(c->events, 1), "data")),
                     "next");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Callback failure, reset, creation                                   */

START_TEST(test_callback_error_stops)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    const char *text = "data: 1\n\ndata: 2\n\ndata: 3\n\n";

    c->fail_at = 2;
    c->fail_rv = APR_ECONNABORTED;
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, text, strlen(text)), APR_ECONNABORTED);
    ck_assert_int_eq(c->calls, 2);
    /* Stopped for good: later input is not parsed, finish reports the failure. */
    ck_assert_int_eq(llmgw_sse_parser_feed(sp, "data: 4\n\n", 9), APR_ECONNABORTED);
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_ECONNABORTED);
    ck_assert_int_eq(c->calls, 2);
}
END_TEST

START_TEST(test_callback_error_from_finish)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);

    c->fail_at = 1;
    c->fail_rv = APR_EGENERAL;
    feed_ok(sp, "data: last\n");
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_EGENERAL);
    ck_assert_int_eq(c->calls, 1);
}
END_TEST

START_TEST(test_reset)
{
    collector_t *c = collector_new();
    llmgw_sse_parser_t *sp = parser_new(c, MAX_EVENT);
    json_t *want = one_event("", "fresh", "");

    /* Mid-event state (data, event, id, a partial line, a pending CR) is all dropped. */
    feed_ok(sp, "\xEF\xBB\xBF"
                "event: stale\nid: 3\ndata: old\ndata: par");
    llmgw_sse_parser_reset(sp);
    feed_ok(sp, "\xEF\xBB\xBF"
                "data: fresh\r"); /* BOM stripped again after reset */
    llmgw_sse_parser_reset(sp);
    feed_ok(sp, "\ndata: fresh\n\n"); /* the LF is a line end of its own now */
    ck_assert_int_eq(llmgw_sse_parser_finish(sp), APR_SUCCESS);
    ck_assert_json_eq(c->events, want);
    json_decref(want);
}
END_TEST

START_TEST(test_create_invalid)
{
    llmgw_sse_parser_t *sp = NULL;

    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, 0, collect, NULL), APR_EINVAL);
    ck_assert_int_eq(llmgw_sse_parser_create(&sp, test_pool, 1024, NULL, NULL), APR_EINVAL);
    ck_assert_ptr_null(sp);
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = test_fixture("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fixtures);
    tcase_add_test(tc, test_fixture_semantics);
    tcase_add_test(tc, test_comments);
    tcase_add_test(tc, test_multiline_data);
    tcase_add_test(tc, test_field_without_colon);
    tcase_add_test(tc, test_event_and_id);
    tcase_add_test(tc, test_id_with_nul_ignored);
    tcase_add_test(tc, test_unknown_fields_ignored);
    tcase_add_test(tc, test_no_data_no_dispatch);
    tcase_add_test(tc, test_cr_only);
    tcase_add_test(tc, test_mixed_line_ends);
    tcase_add_test(tc, test_crlf_split_across_feeds);
    tcase_add_test(tc, test_bom);
    tcase_add_test(tc, test_bom_only_once);
    tcase_add_test(tc, test_finish_dispatches_complete_last_event);
    tcase_add_test(tc, test_finish_after_cr);
    tcase_add_test(tc, test_finish_partial_line);
    tcase_add_test(tc, test_finish_empty);
    tcase_add_test(tc, test_oversize_line);
    tcase_add_test(tc, test_oversize_byte_by_byte);
    tcase_add_test(tc, test_oversize_accumulated);
    tcase_add_test(tc, test_bound_is_exact);
    tcase_add_test(tc, test_large_event_grows);
    tcase_add_test(tc, test_callback_error_stops);
    tcase_add_test(tc, test_callback_error_from_finish);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_create_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(sse_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
