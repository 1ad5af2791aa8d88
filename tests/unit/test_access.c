/* Check suite for the key store, principals, allowlists and estimates (src/llmgw_access.c)
 * and access: in gateway.yaml (src/llmgw_access_config.c). */
#include <stdlib.h>
#include <string.h>
#include "llmgw_access.h"
#include "llmgw_config.h"
#include "llmgw_ledger.h"
#include "test_util.h"

/* SHA-256("test") and SHA-256("other"). */
#define H_TEST "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define H_OTHER "d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"

#define BACKENDS                                                                                   \
    "backends:\n"                                                                                  \
    "  - {name: a, type: openai, config: {apiKey: k, models: [gpt-4o, gpt-4o-mini]}}\n"            \
    "  - {name: c, type: anthropic, config: {apiKey: k, defaultModel: claude-3}}\n"                \
    "  - {name: pool, type: pool, aliases: [smart], backends: [a, c]}\n"                           \
    "routes:\n"                                                                                    \
    "  - {name: chat, path: /v1/chat/completions, backend: pool}\n"                                \
    "  - {name: openai-embed, path: /v1/embeddings, backend: a}\n"

static json_t *json_of(const char *text)
{
    return test_parse_json(text, strlen(text));
}

static llmgw_config_t *parse(const char *yaml)
{
    llmgw_config_t *cfg;
    const char *err = NULL;

    ck_assert_msg(llmgw_config_parse(&cfg, test_pool, test_pool, "t.yaml", yaml, strlen(yaml),
                                     &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    return cfg;
}

static const char *parse_error(const char *yaml)
{
    llmgw_config_t *cfg;
    const char *err = NULL;

    ck_assert_int_ne(
        llmgw_config_parse(&cfg, test_pool, test_pool, "t.yaml", yaml, strlen(yaml), &err),
        APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    return err;
}

static const llmgw_access_cfg_t *two_keys(void)
{
    return parse(BACKENDS "access:\n"
                          "  keys:\n"
                          "    - name: team-a\n"
                          "      sha256: \"" H_TEST "\"\n"
                          "      models: [\"gpt-4o*\", smart]\n"
                          "      routes: [chat]\n"
                          "      limits: {rpm: 60, tpm: 100000, concurrent: 4}\n"
                          "      expires: \"2027-01-01T00:00:00Z\"\n"
                          "    - {name: team-b, sha256: \"" H_OTHER "\"}\n")
        ->access;
}

START_TEST(test_keys_config)
{
    const llmgw_access_cfg_t *a = two_keys();
    const llmgw_access_entry_t *e;

    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->mode, LLMGW_ACCESS_KEYS);
    ck_assert_int_eq(a->entries->nelts, 2);
    e = APR_ARRAY_IDX(a->entries, 0, const llmgw_access_entry_t *);
    ck_assert_str_eq(e->name, "team-a");
    ck_assert_int_eq(e->limits.rpm, 60);
    ck_assert_int_eq(e->limits.tpm, 100000);
    ck_assert_int_eq(e->limits.concurrent, 4);
    ck_assert_int_eq(e->expires, apr_time_from_sec(1798761600));
    e = APR_ARRAY_IDX(a->entries, 1, const llmgw_access_entry_t *);
    ck_assert_int_eq(e->limits.rpm, LLMGW_UNSET);
    ck_assert_ptr_null(e->models);
    /* Without access: the gateway is open. */
    ck_assert_ptr_null(parse(BACKENDS)->access);
}
END_TEST

START_TEST(test_find_key)
{
    const llmgw_access_cfg_t *a = two_keys();

    ck_assert_str_eq(llmgw_access_find_key(a, "test")->name, "team-a");
    ck_assert_str_eq(llmgw_access_find_key(a, "other")->name, "team-b");
    ck_assert_ptr_null(llmgw_access_find_key(a, "tesT"));
    ck_assert_ptr_null(llmgw_access_find_key(a, ""));
    ck_assert_ptr_null(llmgw_access_find_key(a, NULL));
    ck_assert_ptr_null(llmgw_access_find_key(NULL, "test"));
}
END_TEST

/* A connection's memory answers as the lookup would, and forgets nothing it should not. */
START_TEST(test_find_key_memo)
{
    const llmgw_access_cfg_t *a = two_keys(), *b = two_keys();
    llmgw_access_key_memo_t *memo;
    apr_pool_t *conn;
    char long_key[LLMGW_ACCESS_MEMO_KEY + 8];

    apr_pool_create(&conn, test_pool);
    memo = apr_pcalloc(test_pool, sizeof(*memo)); /* outlives conn, to be read after it */
    ck_assert_str_eq(llmgw_access_find_key_memo(a, "test", memo, conn)->name, "team-a");
    ck_assert_ptr_eq(memo->cfg, a);
    ck_assert_str_eq(llmgw_access_find_key_memo(a, "test", memo, conn)->name, "team-a");
    /* Another key, a prefix of it, one it does not know, another configuration. */
    ck_assert_str_eq(llmgw_access_find_key_memo(a, "other", memo, conn)->name, "team-b");
    ck_assert_ptr_null(llmgw_access_find_key_memo(a, "othe", memo, conn));
    ck_assert_ptr_null(llmgw_access_find_key_memo(a, "other2", memo, conn));
    ck_assert_ptr_null(llmgw_access_find_key_memo(a, "tesT", memo, conn));
    ck_assert_ptr_null(llmgw_access_find_key_memo(a, NULL, memo, conn));
    ck_assert_str_eq(llmgw_access_find_key_memo(a, "other", memo, conn)->name, "team-b");
    ck_assert_ptr_eq(llmgw_access_find_key_memo(b, "other", memo, conn),
                     APR_ARRAY_IDX(b->entries, 1, const llmgw_access_entry_t *));
    ck_assert_ptr_eq(memo->cfg, b);
    /* A key too long to keep is still looked up. */
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    ck_assert_ptr_null(llmgw_access_find_key_memo(a, long_key, memo, conn));
    ck_assert_ptr_eq(memo->cfg, b);
    /* The copy of the key goes with the connection. */
    apr_pool_destroy(conn);
    ck_assert_ptr_null(memo->cfg);
    ck_assert_int_eq(memo->key[0], 0);
}
END_TEST

START_TEST(test_key_from_header)
{
    ck_assert_str_eq(llmgw_access_key_from_header(test_pool, "Bearer sk-1", 0), "sk-1");
    ck_assert_str_eq(llmgw_access_key_from_header(test_pool, "bearer   sk-1  ", 0), "sk-1");
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, "Basic YWxhZGRpbjpv", 0));
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, "Bearer", 0));
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, "Bearer   ", 0));
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, "Bearersk-1", 0));
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, NULL, 0));
    ck_assert_str_eq(llmgw_access_key_from_header(test_pool, " sk-ant ", 1), "sk-ant");
    ck_assert_ptr_null(llmgw_access_key_from_header(test_pool, "  ", 1));
}
END_TEST

START_TEST(test_principals)
{
    const llmgw_access_cfg_t *a =
        parse(BACKENDS "access:\n"
                       "  principal: \"env:REMOTE_USER\"\n"
                       "  principals:\n"
                       "    - {name: alice, limits: {rpm: 30}}\n"
                       "    - {name: \"bob@example.com\", routes: [\"openai-*\"]}\n"
                       "    - {name: \"*\", limits: {rpm: 5}}\n")
            ->access;
    const llmgw_access_entry_t *e;
    int listed;

    ck_assert_int_eq(a->mode, LLMGW_ACCESS_PRINCIPAL);
    ck_assert_int_eq(a->source, LLMGW_SOURCE_ENV);
    ck_assert_str_eq(a->source_name, "REMOTE_USER");
    e = llmgw_access_find_principal(a, "alice", &listed);
    ck_assert_str_eq(e->name, "alice");
    ck_assert_int_eq(listed, 1);
    e = llmgw_access_find_principal(a, "mallory", &listed);
    ck_assert_str_eq(e->name, "*");
    ck_assert_int_eq(listed, 0);
    ck_assert_int_eq(e->limits.rpm, 5);
    ck_assert_ptr_null(llmgw_access_find_principal(a, "", &listed));
    e = llmgw_access_find_principal(a, "bob@example.com", &listed);
    ck_assert(llmgw_access_route_allowed(e, "openai-embed"));
    ck_assert(!llmgw_access_route_allowed(e, "chat"));
    /* principal: alone lets every identity in, without limits. */
    a = parse(BACKENDS "access: {principal: \"header:X-Remote-User\"}\n")->access;
    ck_assert_int_eq(a->source, LLMGW_SOURCE_HEADER);
    e = llmgw_access_find_principal(a, "anyone", &listed);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->limits.rpm, LLMGW_UNSET);
    /* Without "*", an unlisted principal has no entry. */
    a = parse(BACKENDS "access:\n  principal: env:REMOTE_USER\n  principals: [{name: al}]\n")
            ->access;
    ck_assert_ptr_null(llmgw_access_find_principal(a, "mallory", &listed));
}
END_TEST

START_TEST(test_allowlists_and_expiry)
{
    const llmgw_access_cfg_t *a = two_keys();
    const llmgw_access_entry_t *e = llmgw_access_find_key(a, "test");
    const llmgw_access_entry_t *open = llmgw_access_find_key(a, "other");

    ck_assert(llmgw_access_model_allowed(e, "gpt-4o"));
    ck_assert(llmgw_access_model_allowed(e, "gpt-4o-mini"));
    ck_assert(llmgw_access_model_allowed(e, "smart"));
    ck_assert(!llmgw_access_model_allowed(e, "claude-3"));
    /* No model: the route's default, which an allowlist cannot judge. */
    ck_assert(!llmgw_access_model_allowed(e, NULL));
    ck_assert(llmgw_access_model_allowed(open, NULL));
    ck_assert(llmgw_access_model_allowed(open, "anything"));
    ck_assert(llmgw_access_route_allowed(e, "chat"));
    ck_assert(!llmgw_access_route_allowed(e, "openai-embed"));
    ck_assert(llmgw_access_route_allowed(open, "openai-embed"));
    ck_assert_int_eq(llmgw_access_check_expiry(e, apr_time_from_sec(1798761599)), LLMGW_ACCESS_OK);
    ck_assert_int_eq(llmgw_access_check_expiry(e, apr_time_from_sec(1798761600)),
                     LLMGW_ACCESS_EXPIRED);
    ck_assert_int_eq(llmgw_access_check_expiry(open, apr_time_from_sec(4000000000)),
                     LLMGW_ACCESS_OK);
}
END_TEST

START_TEST(test_time_parse)
{
    apr_time_t t;

    ck_assert_int_eq(llmgw_access_time_parse("2027-01-01T00:00:00Z", &t), APR_SUCCESS);
    ck_assert_int_eq(t, apr_time_from_sec(1798761600));
    ck_assert_int_eq(llmgw_access_time_parse("2026-06-30T12:00:00.5+02:00", &t), APR_SUCCESS);
    ck_assert_int_eq(t, apr_time_from_sec(1782813600) + 500000);
    ck_assert_int_eq(llmgw_access_time_parse("2024-02-29T23:59:59-00:30", &t), APR_SUCCESS);
    ck_assert_int_eq(t, apr_time_from_sec(1709251199 + 1800));
    ck_assert_int_eq(llmgw_access_time_parse("2023-02-29T00:00:00Z", &t), APR_EINVAL);
    ck_assert_int_eq(llmgw_access_time_parse("2027-01-01", &t), APR_EINVAL);
    ck_assert_int_eq(llmgw_access_time_parse("2027-01-01T00:00:00", &t), APR_EINVAL);
    ck_assert_int_eq(llmgw_access_time_parse("2027-01-01T00:00:00Zjunk", &t), APR_EINVAL);
    ck_assert_int_eq(llmgw_access_time_parse("2027-13-01T00:00:00Z", &t), APR_EINVAL);
}
END_TEST

START_TEST(test_periods)
{
    /* 2023-11-14T22:13:20Z, a Tuesday. */
    apr_time_t t = apr_time_from_sec(1700000000);

    ck_assert_int_eq(llmgw_period_start(LLMGW_PERIOD_DAY, t), apr_time_from_sec(1699920000));
    ck_assert_int_eq(llmgw_period_next(LLMGW_PERIOD_DAY, t), apr_time_from_sec(1700006400));
    /* Monday 2023-11-13 00:00Z. */
    ck_assert_int_eq(llmgw_period_start(LLMGW_PERIOD_WEEK, t), apr_time_from_sec(1699833600));
    ck_assert_int_eq(llmgw_period_next(LLMGW_PERIOD_WEEK, t), apr_time_from_sec(1700438400));
    /* 2023-11-01 and 2023-12-01. */
    ck_assert_int_eq(llmgw_period_start(LLMGW_PERIOD_MONTH, t), apr_time_from_sec(1698796800));
    ck_assert_int_eq(llmgw_period_next(LLMGW_PERIOD_MONTH, t), apr_time_from_sec(1701388800));
    /* December rolls into January. */
    ck_assert_int_eq(llmgw_period_next(LLMGW_PERIOD_MONTH, apr_time_from_sec(1703980800)),
                     apr_time_from_sec(1704067200));
    /* A Monday is the start of its own week. */
    ck_assert_int_eq(llmgw_period_start(LLMGW_PERIOD_WEEK, apr_time_from_sec(1699833600)),
                     apr_time_from_sec(1699833600));
    ck_assert_str_eq(llmgw_period_name(LLMGW_PERIOD_WEEK), "week");
}
END_TEST

START_TEST(test_estimate)
{
    json_t *body = json_of(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"12345678\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAAAAAAAAAA\"}}"
        "]}],\"max_tokens\":50}");
    apr_int64_t prompt, output;

    /* Text: "system" 6 + "12345678" 8 + "user" 4 + "text" 4 + "abcd" 4 = 26 chars -> 7;
     * + 4 per message (2) + one image. */
    llmgw_access_estimate(body, LLMGW_API_CHAT, &prompt, &output);
    ck_assert_int_eq(prompt, 7 + 8 + LLMGW_ACCESS_IMAGE_TOKENS);
    ck_assert_int_eq(output, 50);
    json_object_set_new(body, "max_completion_tokens", json_integer(20));
    llmgw_access_estimate(body, LLMGW_API_CHAT, &prompt, &output);
    ck_assert_int_eq(output, 20);
    json_object_del(body, "max_completion_tokens");
    json_object_del(body, "max_tokens");
    llmgw_access_estimate(body, LLMGW_API_CHAT, &prompt, &output);
    ck_assert_int_eq(output, LLMGW_ACCESS_DEFAULT_OUTPUT_RESERVE);
    json_decref(body);
    body = json_of("{\"input\":[[1,2,3],[4]],\"model\":\"e\"}");
    llmgw_access_estimate(body, LLMGW_API_EMBEDDINGS, &prompt, &output);
    ck_assert_int_eq(prompt, 4);
    ck_assert_int_eq(output, 0);
    json_decref(body);
    body = json_of("{\"input\":\"abcdefgh\"}");
    llmgw_access_estimate(body, LLMGW_API_EMBEDDINGS, &prompt, &output);
    ck_assert_int_eq(prompt, 2);
    json_decref(body);
}
END_TEST

/* Every configtest check of issue 11 item 7, with file:line:column. */
START_TEST(test_config_errors)
{
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n    - {name: a, sha256: abc}\n"),
                     "t.yaml:10:25: key \"a\": sha256 must be 64 hexadecimal digits (the SHA-256 "
                     "of the key, as scripts/llmgw-key prints it), not 3 characters");
    ck_assert_str_eq(
        parse_error(BACKENDS
                    "access:\n  keys:\n    - {name: a, sha256: "
                    "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g\"}\n"),
        "t.yaml:10:25: key \"a\": sha256 must be 64 hexadecimal digits (the SHA-256 of the key, "
        "as scripts/llmgw-key prints it), not 64 characters with a character that is not a hex "
        "digit");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST "\"}\n"
                                          "    - {name: a, sha256: \"" H_OTHER "\"}\n"),
                     "t.yaml:11:14: access keys #2: duplicate key name \"a\" (first at line 10)");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST "\"}\n"
                                          "    - {name: b, sha256: \"" H_TEST "\"}\n"),
                     "t.yaml:11:25: key \"b\": the same sha256 as key \"a\" (line 10): two names "
                     "for one key");
    ck_assert_str_eq(
        parse_error(BACKENDS "access:\n  keys:\n"
                             "    - {name: a, sha256: \"" H_TEST "\", models: [gtp-4o]}\n"),
        "t.yaml:10:101: key \"a\": models: \"gtp-4o\" names no model of this file (list it in a "
        "backend's models: or defaultModel, or name a pool)");
    ck_assert_str_eq(
        parse_error(BACKENDS "access:\n  keys:\n"
                             "    - {name: a, sha256: \"" H_TEST
                             "\", routes: [\"anthropic-*\"]}\n"),
        "t.yaml:10:101: key \"a\": routes: \"anthropic-*\" names no route of this file");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST "\", models: "
                                          "[\"gpt-*\"], budget: {usd: 5}}\n"
                                          "pricing:\n  gpt-4o: {input: 1, output: 2}\n"),
                     "t.yaml:10:120: key \"a\": a budget needs a price for every model it "
                     "allows, and model \"gpt-4o-mini\" has none in pricing:");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST "\", models: "
                                          "[\"gpt-4o\"], budget: {usd: 5}}\n"),
                     "t.yaml:10:121: key \"a\": a budget needs a price for every model it "
                     "allows, and model \"gpt-4o\" has none in pricing:");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST
                                          "\", budget: {usd: 5, period: year}}\n"),
                     "t.yaml:10:118: key \"a\" budget: period must be day, week or month, not "
                     "\"year\"");
    ck_assert_str_eq(parse_error(BACKENDS "ledger: {driver: mysql, params: x}\n"),
                     "t.yaml:8:18: ledger: unknown driver \"mysql\" (expected sqlite3, the default "
                     "kind: one file, or pgsql, for several httpd nodes sharing budgets)");
    ck_assert_str_eq(parse_error(BACKENDS "access: {keys: [], principal: env:X}\n"),
                     "t.yaml:8:31: access: keys and principal exclude each other: a gateway "
                     "identifies clients by virtual keys or by what an httpd auth module set");
    ck_assert_str_eq(parse_error(BACKENDS "access: {principal: \"cookie:x\"}\n"),
                     "t.yaml:8:21: access: principal must be env:VARIABLE (e.g. env:REMOTE_USER, "
                     "set by an httpd auth module) or header:NAME, not \"cookie:x\"");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST
                                          "\", limits: {rpm: 0}}\n"),
                     "t.yaml:10:107: key \"a\" limits: rpm must be a whole number of at least 1, "
                     "not \"0\"");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: a, sha256: \"" H_TEST
                                          "\", expires: tomorrow}\n"),
                     "t.yaml:10:102: key \"a\": expires must be an RFC 3339 time such as "
                     "\"2027-01-01T00:00:00Z\", not \"tomorrow\"");
    ck_assert_str_eq(parse_error(BACKENDS "access:\n  keys:\n"
                                          "    - {name: \"a b\", sha256: \"" H_TEST "\"}\n"),
                     "t.yaml:10:14: access keys #1: key name \"a b\" may only contain letters, "
                     "digits, '.', '_' and '-' (it is shown in logs, the ledger and the status "
                     "page)");
    ck_assert_str_eq(
        parse_error("backends:\n  - {name: a, type: openai, config: {apiKey: k, limits: {rpm: 1, "
                    "concurrent: 2}}}\nroutes: []\n"),
        "t.yaml:2:66: backend \"a\" limits: unknown key \"concurrent\"");
    ck_assert_str_eq(parse_error(BACKENDS "acess: {}\n"),
                     "t.yaml:8:1: unknown top-level key \"acess\" (expected backends, routes, "
                     "access, pricing or ledger)");
}
END_TEST

START_TEST(test_backend_limits_and_ledger_config)
{
    llmgw_config_t *cfg =
        parse("backends:\n  - {name: a, type: openai, config: {apiKey: k, limits: {rpm: 10, "
              "tpm: 5000}}}\nroutes: []\nledger: {driver: pgsql, params: \"dbname=x\", queue: "
              "50}\n");
    const llmgw_backend_t *b = APR_ARRAY_IDX(cfg->backends, 0, const llmgw_backend_t *);

    ck_assert_int_eq(b->limits.rpm, 10);
    ck_assert_int_eq(b->limits.tpm, 5000);
    ck_assert_int_eq(b->limits.concurrent, LLMGW_UNSET);
    ck_assert_str_eq(cfg->ledger->driver, "pgsql");
    ck_assert_str_eq(cfg->ledger->params, "dbname=x");
    ck_assert_int_eq(cfg->ledger->queue, 50);
    ck_assert_int_eq(parse(BACKENDS)->backends->nelts, 3);
    ck_assert_int_eq(
        APR_ARRAY_IDX(parse(BACKENDS)->backends, 0, const llmgw_backend_t *)->limits.rpm,
        LLMGW_UNSET);
}
END_TEST

START_TEST(test_driver_check)
{
    const char *msg = NULL;

    ck_assert_str_eq(llmgw_ledger_driver_package("pgsql"), "libaprutil1-dbd-pgsql");
    ck_assert_str_eq(llmgw_ledger_driver_package("sqlite3"), "libaprutil1-dbd-sqlite3");
    ck_assert_int_ne(llmgw_ledger_driver_check(test_pool, "oracle", &msg), APR_SUCCESS);
    ck_assert_str_eq(msg, "unknown ledger driver \"oracle\" (expected sqlite3 or pgsql)");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("access");
    TCase *tc = test_fixture("access");

    tcase_add_test(tc, test_keys_config);
    tcase_add_test(tc, test_find_key);
    tcase_add_test(tc, test_find_key_memo);
    tcase_add_test(tc, test_key_from_header);
    tcase_add_test(tc, test_principals);
    tcase_add_test(tc, test_allowlists_and_expiry);
    tcase_add_test(tc, test_time_parse);
    tcase_add_test(tc, test_periods);
    tcase_add_test(tc, test_estimate);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_backend_limits_and_ledger_config);
    tcase_add_test(tc, test_driver_check);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
