/*
 * Check suite for the sparse read of answers (llmgw_json_pick,
 * src/llmgw_json_pick.c): what it keeps, that it keeps jansson's values,
 * and every form it must decline so that the caller parses in full. The
 * differential fuzz target (tests/fuzz/fuzz_json_pick.c) checks the same
 * contract against jansson on arbitrary bytes. Then the whole-document
 * reader built on it (llmgw_json_load): json_loadb's answer, member order
 * and refusals included. Last the writers (llmgw_json_buf_value and
 * friends): json_dumps' bytes, and a poisoned buffer for what it refuses.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_json.h"
#include "test_util.h"

static const llmgw_json_pick_t pick_details[] = {{"cached_tokens", NULL, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_usage[] = {
    {"prompt_tokens", NULL, 0}, {"prompt_tokens_details", pick_details, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_top[] = {
    {"model", NULL, 0}, {"usage", pick_usage, 0}, {"choices", NULL, 1}, {NULL, NULL, 0}};

static json_t *pick(const char *text)
{
    return llmgw_json_pool_own(test_pool, llmgw_json_pick(text, strlen(text), pick_top));
}

static json_t *json(const char *text)
{
    return llmgw_json_pool_own(test_pool, test_parse_json(text, strlen(text)));
}

START_TEST(test_keeps_only_the_named_members)
{
    const char *answer =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-2024-08-06\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"}}],"
        "\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,"
        "\"prompt_tokens_details\":{\"cached_tokens\":3,\"audio_tokens\":0}}}";

    ck_assert_json_eq(pick(answer), json("{\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],"
                                         "\"usage\":{\"prompt_tokens\":19,"
                                         "\"prompt_tokens_details\":{\"cached_tokens\":3}}}"));
    /* Absent members stay absent; an object kept only for its shape stays an object. */
    ck_assert_json_eq(pick("{\"choices\":{\"a\":1},\"other\":[1,2]}"), json("{\"choices\":{}}"));
    ck_assert_json_eq(pick("{}"), json("{}"));
}
END_TEST

/* Values are jansson's, whatever their type: a sub-list applies to objects only. */
START_TEST(test_values_are_janssons)
{
    ck_assert_json_eq(pick("{\"model\":\"caf\\u00e9 \\\"q\\\" \\n\",\"usage\":null}"),
                      json("{\"model\":\"caf\\u00e9 \\\"q\\\" \\n\",\"usage\":null}"));
    ck_assert_json_eq(pick("{\"usage\":[{\"prompt_tokens\":1}],\"model\":5}"),
                      json("{\"usage\":[{\"prompt_tokens\":1}],\"model\":5}"));
    ck_assert_json_eq(pick("{\"usage\":{\"prompt_tokens\":1.5e3,\"prompt_tokens_details\":7}}"),
                      json("{\"usage\":{\"prompt_tokens\":1500.0,\"prompt_tokens_details\":7}}"));
    ck_assert_json_eq(pick("{\"model\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"}"),
                      json("{\"model\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"}"));
    ck_assert_json_eq(pick(" \r\n\t{ \"model\" : -0 , \"choices\" : [ ] } \n"),
                      json("{\"model\":0,\"choices\":[]}"));
}
END_TEST

/* A sub-list applies to every object of an array; "*" keeps the members a list does not name. */
START_TEST(test_arrays_and_other_members)
{
    static const llmgw_json_pick_t delta[] = {
        {"content", NULL, 0}, {"*", NULL, 1}, {NULL, NULL, 0}};
    static const llmgw_json_pick_t choice[] = {
        {"index", NULL, 0}, {"delta", delta, 0}, {NULL, NULL, 0}};
    static const llmgw_json_pick_t chunk[] = {{"choices", choice, 0}, {NULL, NULL, 0}};
    const char *text = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\","
                       "\"tool_calls\":[{\"id\":\"t\"}],\"role\":\"assistant\"},\"x\":1},"
                       "[{\"index\":1,\"y\":2}],7,\"s\",null]}";
    json_t *got = llmgw_json_pool_own(test_pool, llmgw_json_pick(text, strlen(text), chunk));

    ck_assert_json_eq(got, json("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\","
                                "\"tool_calls\":[],\"role\":\"assistant\"}},"
                                "[{\"index\":1}],7,\"s\",null]}"));
}
END_TEST

/* Scalars made without jansson are what jansson makes of the same bytes. */
START_TEST(test_scalars_as_jansson_reads_them)
{
    static const char *const values[] = {"0",
                                         "-0",
                                         "7",
                                         "-42",
                                         "123456789012345678",
                                         "-123456789012345678",
                                         "1.5",
                                         "-2e3",
                                         "true",
                                         "false",
                                         "null",
                                         "\"\"",
                                         "\"plain\"",
                                         "\"caf\xc3\xa9\"",
                                         "\"esc\\n\\u00e9\""};
    static const llmgw_json_pick_t all[] = {{"v", NULL, 0}, {NULL, NULL, 0}};
    size_t i;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        const char *doc = apr_pstrcat(test_pool, "{\"v\":", values[i], "}", NULL);
        json_t *got = llmgw_json_pool_own(test_pool, llmgw_json_pick(doc, strlen(doc), all));

        ck_assert_msg(got != NULL, "declined: %s", doc);
        ck_assert_json_eq(got, json(doc));
        ck_assert_int_eq(json_typeof(json_object_get(got, "v")),
                         json_typeof(json_object_get(json(doc), "v")));
    }
}
END_TEST

/* Only top-level members count, wherever else the name appears; the last duplicate wins. */
START_TEST(test_names_at_their_own_level)
{
    ck_assert_json_eq(pick("{\"choices\":[{\"model\":\"inner\",\"usage\":{\"prompt_tokens\":9}}],"
                           "\"x\":{\"model\":\"deeper\"},\"y\":\"\\\"model\\\":\\\"str\\\"\","
                           "\"model\":\"top\"}"),
                      json("{\"choices\":[],\"model\":\"top\"}"));
    ck_assert_json_eq(pick("{\"model\":\"a\",\"usage\":{\"prompt_tokens\":1},\"model\":\"b\","
                           "\"usage\":{\"prompt_tokens\":2,\"prompt_tokens\":3}}"),
                      json("{\"model\":\"b\",\"usage\":{\"prompt_tokens\":3}}"));
    /* "models" and "mode" are other names. */
    ck_assert_json_eq(pick("{\"models\":1,\"mode\":2}"), json("{}"));
}
END_TEST

/* Whatever jansson refuses (or reads as something else than an object), it refuses too. */
START_TEST(test_declines_what_jansson_refuses)
{
    static const char *const bad[] = {
        "",
        "   ",
        "[]",
        "\"model\"",
        "{\"model\":\"m\"",
        "{\"model\":\"m\"} x",
        "{\"model\":\"m\"}{}",
        "{\"model\":\"m\",}",
        "{\"choices\":[1,]}",
        "{\"choices\":[01]}",
        "{\"choices\":[1.]}",
        "{\"choices\":[.5]}",
        "{\"choices\":[1e]}",
        "{\"choices\":[-]}",
        "{\"choices\":[+1]}",
        "{\"choices\":[tru]}",
        "{\"choices\":[nul]}",
        "{\"choices\":[True]}",
        "{\"choices\":[1true]}",
        "{\"model\" \"m\"}",
        "{model:\"m\"}",
        "{\"model\":'m'}",
        "{\"model\":\"a\x01\"}",
        "{\"model\":\"a\tb\"}",
        "{\"model\":\"\\x41\"}",
        "{\"model\":\"\\u12G4\"}",
        "{\"model\":\"\\u12\"}",
        "{\"model\":\"\xc0\x80\"}",
        "{\"model\":\"\xed\xa0\x80\"}",
        "{\"model\":\"\xf5\x80\x80\x80\"}",
        "{\"model\":\"\xe2\x82\"}",
        "{\"model\":\"\x80\"}",
        "\xef\xbb\xbf{}",
        "{\"choices\":[1e400]}",
        "{\"choices\":[-1e400]}",
        "{\"choices\":[9223372036854775808]}",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loadb(bad[i], strlen(bad[i]), JSON_ALLOW_NUL, NULL);

        ck_assert_msg(!pick(bad[i]), "accepted: %s", bad[i]);
        ck_assert_msg(!json_is_object(j), "jansson reads an object: %s", bad[i]);
        json_decref(j);
    }
    /* Raw NUL bytes (jansson takes some of them; verbatim they are not fit). */
    ck_assert_ptr_null(llmgw_json_pick("{\"created\":1\0}", 15, pick_top));
    ck_assert_ptr_null(llmgw_json_pick("{\"model\":\"a\0\"}", 14, pick_top));
    ck_assert_ptr_null(llmgw_json_pick(NULL, 0, pick_top));
}
END_TEST

/* Forms jansson takes that are left to it (the caller parses in full): never guessed. */
START_TEST(test_declines_what_it_leaves_to_jansson)
{
    static const char *const rare[] = {
        "{\"mod\\u0065l\":\"m\"}",        "{\"model\":\"a\\u0000b\"}",
        "{\"model\":\"\\ud83d\\ude00\"}", "{\"choices\":[1234567890123456789]}",
        "{\"choices\":[1e301]}",          "{\"choices\":[1e-99999]}",
    };
    char deep[256];
    size_t i;

    for (i = 0; i < sizeof(rare) / sizeof(rare[0]); i++)
        ck_assert_msg(!llmgw_json_pick(rare[i], strlen(rare[i]), pick_top), "accepted: %s",
                      rare[i]);
    /* 65 levels: past the recogniser's bound, well within jansson's. */
    strcpy(deep, "{\"choices\":");
    for (i = 0; i < 64; i++)
        strcat(deep, "[");
    for (i = 0; i < 64; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    ck_assert_ptr_null(llmgw_json_pick(deep, strlen(deep), pick_top));
    deep[strlen("{\"choices\":")] = ' ';
    deep[strlen(deep) - 2] = ' ';
    ck_assert_ptr_nonnull(pick(deep));
    /* The longest integer and the largest real it does read. */
    ck_assert_json_eq(pick("{\"model\":123456789012345678}"),
                      json("{\"model\":123456789012345678}"));
    ck_assert_ptr_nonnull(pick("{\"model\":1e299}"));
}
END_TEST

/* The keys of an object, in its iteration order, joined by commas. */
static const char *keys_of(const json_t *o)
{
    const char *key, *all = "";
    json_t *v;

    json_object_foreach ((json_t *)o, key, v)
        all = apr_pstrcat(test_pool, all, *all ? "," : "", key, NULL);
    return all;
}

/* llmgw_json_load against json_loadb, for one text and both flag sets. */
static void assert_loads_as_jansson(const char *text, size_t len)
{
    size_t flags[] = {0, JSON_ALLOW_NUL};
    json_error_t want_err, got_err;
    size_t i;

    for (i = 0; i < 2; i++) {
        json_t *want = llmgw_json_pool_own(test_pool, json_loadb(text, len, flags[i], &want_err));
        json_t *got;

        memset(&got_err, 0, sizeof(got_err));
        got = llmgw_json_pool_own(test_pool, llmgw_json_load(text, len, flags[i], &got_err));
        ck_assert_msg((got == NULL) == (want == NULL), "%s: %s", text,
                      got ? "accepted" : "refused");
        if (!want) {
            /* The refusal is jansson's own, for the client's error message. */
            ck_assert_str_eq(got_err.text, want_err.text);
            ck_assert_int_eq(got_err.line, want_err.line);
            ck_assert_int_eq(got_err.column, want_err.column);
            continue;
        }
        ck_assert_msg(json_equal(got, want), "%s", text);
        if (json_is_object(want))
            ck_assert_str_eq(keys_of(got), keys_of(want));
    }
}

/* A request, an answer and stream events: the same values, members in their order. */
START_TEST(test_load_reads_documents_as_jansson)
{
    static const char *const docs[] = {
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"Be "
        "brief.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"caf\u00e9 "
        "\\\"quoted\\\"\\n\"}]}],\"temperature\":0.7,\"max_tokens\":128,\"stream\":false,"
        "\"stop\":null,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"z\":{},\"a\":{},\"m\":{}}}}}]}",
        "{\"id\":\"msg_1\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
        "\"input\":{\"b\":[1,2.5,-0,1e3,\"x\",true,false,null,{}],\"a\":\"\\u00e9\\t\"}}],"
        "\"usage\":{\"input_tokens\":48,\"output_tokens\":-7}}",
        " \t\r\n{ \"a\" : [ ] , \"b\" : { } }\n",
        /* Duplicates: the last value, in the first one's place. */
        "{\"a\":1,\"b\":2,\"a\":{\"x\":3},\"c\":4}",
        /* Forms the scan declines, left to jansson. */
        "{\"mod\\u0065l\":\"m\"}",
        "{\"a\":\"x\\u0000y\"}",
        "{\"a\":12345678901234567890}",
        "{\"a\":1e400}",
        /* Not objects, or not JSON: jansson's refusal, word for word. */
        "[1,2]",
        "\"text\"",
        "",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "{\"a\":\"\xc3\x28\"}",
        "{\"a\":01}",
        "{\"a\":tru}",
    };
    char deep[300], longer[1210];
    size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_loads_as_jansson(docs[i], strlen(docs[i]));
    /* Every escape; \u of one, two and three UTF-8 bytes; escapes at both ends. */
    assert_loads_as_jansson("{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac x\\u007f\"}",
                            strlen("{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac "
                                   "x\\u007f\"}"));
    /* An escaped string longer than the decoder's own buffer. */
    for (i = 0; i < 200; i++)
        memcpy(longer + 6 * i, "ab\\ncd", 6);
    memcpy(longer, "{\"a\":\"", 6);
    memcpy(longer + 1200, "\"}", 3);
    assert_loads_as_jansson(longer, strlen(longer));
    /* A raw NUL, which jansson takes after a number. */
    assert_loads_as_jansson("{\"a\":1\0}", 7);
    assert_loads_as_jansson("{\"a\":\"b\0\"}", 9);
    /* 100 levels: past the scan's bound, jansson reads it. */
    strcpy(deep, "{\"a\":");
    for (i = 0; i < 100; i++)
        strcat(deep, "[");
    for (i = 0; i < 100; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_loads_as_jansson(deep, strlen(deep));
}
END_TEST

/* What the scan reads, it makes itself; only flags it cannot honour go to jansson. */
START_TEST(test_load_flags_other_than_allow_nul_are_janssons)
{
    const char *dup = "{\"a\":1,\"a\":2}";
    json_error_t err;

    /* JSON_REJECT_DUPLICATES must be jansson's to apply. */
    ck_assert_ptr_null(llmgw_json_load(dup, strlen(dup), JSON_REJECT_DUPLICATES, &err));
    ck_assert_ptr_nonnull(strstr(err.text, "duplicate"));
    ck_assert_json_eq(llmgw_json_pool_own(test_pool, llmgw_json_load(dup, strlen(dup), 0, NULL)),
                      json("{\"a\":2}"));
    ck_assert_ptr_null(llmgw_json_load(NULL, 0, 0, &err));
}
END_TEST

/* What the writers append for @p v equals jansson's compact serialisation of it. */
static void assert_written_as_jansson(const json_t *v)
{
    llmgw_json_buf_t b;
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    llmgw_json_buf_init(&b);
    ck_assert_int_eq(llmgw_json_buf_value(&b, v), APR_SUCCESS);
    ck_assert_int_eq(b.failed, 0);
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_msg(memcmp(b.data, want, b.len) == 0, "wrote %.*s, jansson %s", (int)b.len, b.data,
                  want);
    if (json_is_string(v)) {
        llmgw_json_buf_free(&b);
        ck_assert_int_eq(llmgw_json_buf_strn(&b, json_string_value(v), json_string_length(v)),
                         APR_SUCCESS);
        ck_assert_uint_eq(b.len, strlen(want));
        ck_assert_int_eq(memcmp(b.data, want, b.len), 0);
    }
    if (json_is_integer(v)) {
        llmgw_json_buf_free(&b);
        ck_assert_int_eq(llmgw_json_buf_int(&b, json_integer_value(v)), APR_SUCCESS);
        ck_assert_uint_eq(b.len, strlen(want));
        ck_assert_int_eq(memcmp(b.data, want, b.len), 0);
    }
    llmgw_json_buf_free(&b);
    free(want);
}

START_TEST(test_writers_write_what_jansson_dumps)
{
    static const char *const docs[] = {
        "\"plain ascii ~ with spaces\"",
        "\"\"",
        "\"quote \\\" backslash \\\\ slash / del \x7f\"",
        "\"controls \\n \\t \\r \\b \\f \\u0001 \\u001f\"",
        "\"nul \\u0000 inside\"",
        "\"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80\"",
        "0",
        "-1",
        "1764000000",
        "9223372036854775807",
        "-9223372036854775808",
        "0.5",
        "38.7",
        "-1e300",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "{\"b\":[1,\"x\\n\",{\"a\":null}],\"a\":2.5}",
    };
    size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

        ck_assert_msg(v != NULL, "vector %zu does not parse", i);
        assert_written_as_jansson(v);
        json_decref(v);
    }
}
END_TEST

/* What cannot be written poisons the buffer: a document with a hole is never used. */
START_TEST(test_writers_refuse_what_jansson_refuses)
{
    llmgw_json_buf_t b;

    llmgw_json_buf_init(&b);
    llmgw_json_buf_lit(&b, "{\"a\":");
    ck_assert_int_eq(llmgw_json_buf_strn(&b, "ab\xff", 3), APR_EINVAL);
    ck_assert_int_ne(b.failed, 0);
    ck_assert_int_ne(llmgw_json_buf_lit(&b, "}"), APR_SUCCESS);
    llmgw_json_buf_free(&b);

    ck_assert_int_eq(llmgw_json_buf_str(&b, NULL), APR_EINVAL);
    ck_assert_int_ne(b.failed, 0);
    llmgw_json_buf_free(&b);

    /* Strings that spill the inline storage move to the heap whole. */
    {
        char big[5000];
        memset(big, 'x', sizeof(big));
        big[100] = '"';
        ck_assert_int_eq(llmgw_json_buf_strn(&b, big, sizeof(big)), APR_SUCCESS);
        ck_assert_uint_eq(b.len, sizeof(big) + 3);
        ck_assert_int_eq(memcmp(b.data + 101, "\\\"", 2), 0); /* after the opening quote */
        llmgw_json_buf_free(&b);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = test_fixture("json_pick");

    tcase_add_test(tc, test_keeps_only_the_named_members);
    tcase_add_test(tc, test_values_are_janssons);
    tcase_add_test(tc, test_names_at_their_own_level);
    tcase_add_test(tc, test_arrays_and_other_members);
    tcase_add_test(tc, test_scalars_as_jansson_reads_them);
    tcase_add_test(tc, test_declines_what_jansson_refuses);
    tcase_add_test(tc, test_declines_what_it_leaves_to_jansson);
    tcase_add_test(tc, test_load_reads_documents_as_jansson);
    tcase_add_test(tc, test_load_flags_other_than_allow_nul_are_janssons);
    tcase_add_test(tc, test_writers_write_what_jansson_dumps);
    tcase_add_test(tc, test_writers_refuse_what_jansson_refuses);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
