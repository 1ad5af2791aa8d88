/* Check suite for routing: path and method -> verdict, the Allow value, and the
 * models list of a models route (src/llmgw_route.c). */
#include <stdlib.h>
#include <string.h>
#include "llmgw_config.h"
#include "llmgw_json.h"
#include "llmgw_route.h"
#include "test_util.h"

/* outer reaches a, inner (c then b), d, b again and e: the models list is
 * a's, c's, b's, d's and e's, each id once, in that order. */
static const char gateway_yaml[] =
    "backends:\n"
    "  - name: a\n"
    "    type: openai\n"
    "    config: {apiKey: k, defaultModel: gpt-4o, models: [gpt-4o, gpt-4o-mini]}\n"
    "  - name: b\n"
    "    type: anthropic\n"
    "    config: {apiKey: k, defaultModel: claude-x}\n"
    "  - name: c\n"
    "    type: mistral\n"
    "    config: {apiKey: k, defaultModel: m-large, models: [gpt-4o, m-small]}\n"
    "  - name: d\n"
    "    type: openai\n"
    "    config: {apiKey: k, models: [d-1]}\n"
    "  - name: e\n"
    "    type: google\n"
    "    config: {apiKey: k, models: [vendor/x, claude-x]}\n"
    "  - name: inner\n"
    "    type: pool\n"
    "    aliases: [team-inner]\n"
    "    backends: [c, b]\n"
    "  - name: outer\n"
    "    type: pool\n"
    "    backends: [a, inner, d, b, e]\n"
    "routes:\n"
    "  - {name: chat, path: /v1/chat/completions, backend: outer}\n"
    "  - {name: emb, path: /v1/embeddings, backend: a}\n"
    "  - {name: models, path: /v1/models, backend: outer}\n"
    "  - {name: special, path: /v1/models/special, api: chat, backend: a}\n"
    "  - {name: alt, path: /alt/models, methods: [GET, POST], backend: b}\n"
    "  - {name: ask, path: /llm/ask, api: chat, methods: [POST, HEAD], backend: c}\n"
    "  - {name: resp, path: /v1/responses, backend: a}\n"
    "  - {name: msg, path: /v1/messages, backend: outer}\n"
    "  - {name: talk, path: /llm/talk, api: messages, backend: b}\n";

#define GET LLMGW_METHOD_GET
#define HEAD LLMGW_METHOD_HEAD
#define POST LLMGW_METHOD_POST
#define OPTIONS LLMGW_METHOD_OPTIONS
#define DELETE LLMGW_METHOD_DELETE

static const llmgw_config_t *config(void)
{
    llmgw_config_t *cfg = NULL;
    const char *err = NULL;

    ck_assert_msg(llmgw_config_parse(&cfg, test_pool, test_pool, "gateway.yaml", gateway_yaml,
                                     strlen(gateway_yaml), &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    return cfg;
}

static llmgw_route_match_t match(const char *uri, int bit)
{
    llmgw_route_match_t m;

    llmgw_route_match(config(), test_pool, uri, bit, &m);
    return m;
}

/* A match that found a route: its name, verdict, Allow value and model id. */
static void expect(const char *uri, int bit, llmgw_route_verdict_e verdict, const char *route,
                   const char *allow, const char *model_id)
{
    llmgw_route_match_t m = match(uri, bit);

    ck_assert_msg(m.verdict == verdict, "%s: verdict %d, expected %d", uri, m.verdict, verdict);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, route);
    ck_assert_str_eq(m.allow, allow);
    if (model_id)
        ck_assert_str_eq(m.model_id, model_id);
    else
        ck_assert_ptr_null(m.model_id);
}

static void expect_not_found(const char *uri, int bit)
{
    llmgw_route_match_t m = match(uri, bit);

    ck_assert_msg(m.verdict == LLMGW_ROUTE_NOT_FOUND, "%s: verdict %d", uri, m.verdict);
    ck_assert_ptr_null(m.route);
    ck_assert_ptr_null(m.model_id);
    ck_assert_ptr_null(m.allow);
}

START_TEST(test_method_bit)
{
    ck_assert_int_eq(llmgw_route_method_bit("GET"), GET);
    ck_assert_int_eq(llmgw_route_method_bit("HEAD"), HEAD);
    ck_assert_int_eq(llmgw_route_method_bit("POST"), POST);
    ck_assert_int_eq(llmgw_route_method_bit("OPTIONS"), OPTIONS);
    /* httpd's method names are case sensitive: "post" is not POST. */
    ck_assert_int_eq(llmgw_route_method_bit("post"), 0);
    ck_assert_int_eq(llmgw_route_method_bit("PUT"), 0);
    ck_assert_int_eq(llmgw_route_method_bit("DELETE"), DELETE);
    ck_assert_int_eq(llmgw_route_method_bit("GETX"), 0);
    ck_assert_int_eq(llmgw_route_method_bit(""), 0);
    ck_assert_int_eq(llmgw_route_method_bit(NULL), 0);
}
END_TEST

/* Dialect routes: their api from the path or api:, and their sub-paths (ingress.md 1). */
START_TEST(test_dialect_sub_paths)
{
    llmgw_route_match_t m;

    m = match("/v1/responses", POST);
    ck_assert_int_eq(m.verdict, LLMGW_ROUTE_FOUND);
    ck_assert_int_eq(m.route->api, LLMGW_API_RESPONSES);
    ck_assert_int_eq(m.sub, LLMGW_SUB_NONE);
    m = match("/v1/messages", POST);
    ck_assert_int_eq(m.route->api, LLMGW_API_MESSAGES);
    m = match("/llm/talk", POST);
    ck_assert_int_eq(m.route->api, LLMGW_API_MESSAGES);

    m = match("/v1/responses/resp_1", GET);
    ck_assert_int_eq(m.verdict, LLMGW_ROUTE_FOUND);
    ck_assert_str_eq(m.route->name, "resp");
    ck_assert_int_eq(m.sub, LLMGW_SUB_RESPONSE);
    ck_assert_str_eq(m.resource_id, "resp_1");
    ck_assert_str_eq(m.allow, "GET, HEAD, DELETE, OPTIONS");
    ck_assert_int_eq(match("/v1/responses/resp_1", DELETE).verdict, LLMGW_ROUTE_FOUND);
    ck_assert_int_eq(match("/v1/responses/resp_1", HEAD).verdict, LLMGW_ROUTE_FOUND);
    ck_assert_int_eq(match("/v1/responses/resp_1", POST).verdict, LLMGW_ROUTE_NOT_ALLOWED);
    ck_assert_int_eq(match("/v1/responses/resp_1", OPTIONS).verdict, LLMGW_ROUTE_OPTIONS);

    m = match("/v1/responses/resp_1/input_items", GET);
    ck_assert_int_eq(m.sub, LLMGW_SUB_INPUT_ITEMS);
    ck_assert_str_eq(m.resource_id, "resp_1");
    ck_assert_int_eq(match("/v1/responses/resp_1/input_items", DELETE).verdict,
                     LLMGW_ROUTE_NOT_ALLOWED);
    m = match("/v1/responses/resp_1/cancel", POST);
    ck_assert_int_eq(m.sub, LLMGW_SUB_CANCEL);
    ck_assert_int_eq(m.verdict, LLMGW_ROUTE_FOUND);
    expect_not_found("/v1/responses/resp_1/other", GET);
    expect_not_found("/v1/responses/", GET);

    m = match("/v1/messages/count_tokens", POST);
    ck_assert_int_eq(m.verdict, LLMGW_ROUTE_FOUND);
    ck_assert_str_eq(m.route->name, "msg");
    ck_assert_int_eq(m.sub, LLMGW_SUB_COUNT_TOKENS);
    ck_assert_ptr_null(m.resource_id);
    ck_assert_int_eq(match("/v1/messages/count_tokens", GET).verdict, LLMGW_ROUTE_NOT_ALLOWED);
    expect_not_found("/v1/messages/other", POST);
    /* DELETE is a sub-path method only. */
    ck_assert_int_eq(match("/v1/responses", DELETE).verdict, LLMGW_ROUTE_NOT_ALLOWED);
}
END_TEST

START_TEST(test_allow_value)
{
    ck_assert_str_eq(llmgw_route_allow(test_pool, POST), "POST, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, GET | HEAD), "GET, HEAD, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, GET), "GET, HEAD, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, HEAD | POST), "HEAD, POST, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, GET | HEAD | POST | OPTIONS),
                     "GET, HEAD, POST, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, POST | OPTIONS), "POST, OPTIONS");
    ck_assert_str_eq(llmgw_route_allow(test_pool, 0), "OPTIONS");
}
END_TEST

START_TEST(test_exact_path)
{
    expect("/v1/chat/completions", POST, LLMGW_ROUTE_FOUND, "chat", "POST, OPTIONS", NULL);
    expect("/v1/embeddings", POST, LLMGW_ROUTE_FOUND, "emb", "POST, OPTIONS", NULL);
    expect("/v1/models", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS", NULL);
    expect("/alt/models", POST, LLMGW_ROUTE_FOUND, "alt", "GET, HEAD, POST, OPTIONS", NULL);
    /* An exact route under a models path wins over "/models/{id}". */
    expect("/v1/models/special", POST, LLMGW_ROUTE_FOUND, "special", "POST, OPTIONS", NULL);
}
END_TEST

START_TEST(test_unknown_path)
{
    expect_not_found("/v1/chat/completions/", POST);
    expect_not_found("/v1/chat", POST);
    expect_not_found("/V1/chat/completions", POST);
    expect_not_found("/v1/chat/completions?x=1", POST);
    expect_not_found("/", GET);
    expect_not_found("", GET);
    expect_not_found("models", GET);
    /* No route: not a 405 and not an OPTIONS answer either. */
    expect_not_found("/nowhere", 0);
    expect_not_found("/nowhere", OPTIONS);
}
END_TEST

START_TEST(test_wrong_method)
{
    expect("/v1/chat/completions", GET, LLMGW_ROUTE_NOT_ALLOWED, "chat", "POST, OPTIONS", NULL);
    expect("/v1/chat/completions", HEAD, LLMGW_ROUTE_NOT_ALLOWED, "chat", "POST, OPTIONS", NULL);
    expect("/v1/chat/completions", 0, LLMGW_ROUTE_NOT_ALLOWED, "chat", "POST, OPTIONS", NULL);
    expect("/v1/models", POST, LLMGW_ROUTE_NOT_ALLOWED, "models", "GET, HEAD, OPTIONS", NULL);
    expect("/v1/models", 0, LLMGW_ROUTE_NOT_ALLOWED, "models", "GET, HEAD, OPTIONS", NULL);
    /* HEAD without GET: HEAD is served, GET is not. */
    expect("/llm/ask", GET, LLMGW_ROUTE_NOT_ALLOWED, "ask", "HEAD, POST, OPTIONS", NULL);
    expect("/llm/ask", HEAD, LLMGW_ROUTE_FOUND, "ask", "HEAD, POST, OPTIONS", NULL);
    expect("/llm/ask", POST, LLMGW_ROUTE_FOUND, "ask", "HEAD, POST, OPTIONS", NULL);
}
END_TEST

START_TEST(test_head_and_options)
{
    /* HEAD rides on GET. */
    expect("/v1/models", HEAD, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS", NULL);
    expect("/v1/models/gpt-4o", HEAD, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS", "gpt-4o");
    /* OPTIONS is answered on every route, listed or not in its methods. */
    expect("/v1/chat/completions", OPTIONS, LLMGW_ROUTE_OPTIONS, "chat", "POST, OPTIONS", NULL);
    expect("/v1/models", OPTIONS, LLMGW_ROUTE_OPTIONS, "models", "GET, HEAD, OPTIONS", NULL);
    expect("/llm/ask", OPTIONS, LLMGW_ROUTE_OPTIONS, "ask", "HEAD, POST, OPTIONS", NULL);
    expect("/v1/models/claude-x", OPTIONS, LLMGW_ROUTE_OPTIONS, "models", "GET, HEAD, OPTIONS",
           "claude-x");
}
END_TEST

START_TEST(test_models_item_path)
{
    expect("/v1/models/gpt-4o", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS", "gpt-4o");
    /* An unknown id still names the route; the models list then has no such model. */
    expect("/v1/models/nope", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS", "nope");
    expect("/alt/models/claude-x", GET, LLMGW_ROUTE_FOUND, "alt", "GET, HEAD, POST, OPTIONS",
           "claude-x");
    expect("/v1/models/gpt-4o", POST, LLMGW_ROUTE_NOT_ALLOWED, "models", "GET, HEAD, OPTIONS",
           "gpt-4o");
    /* The path is taken as given: no decoding here (httpd already decoded r->uri). */
    expect("/v1/models/gpt%2D4o", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS",
           "gpt%2D4o");
    /* The id is everything after the route's path, slashes included. */
    expect("/v1/models/vendor/x", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS",
           "vendor/x");
    expect("/v1/models/meta-llama/Llama-3.3-70B-Instruct-Turbo", GET, LLMGW_ROUTE_FOUND, "models",
           "GET, HEAD, OPTIONS", "meta-llama/Llama-3.3-70B-Instruct-Turbo");
    /* %2F is what SDKs send for '/', and httpd leaves it under AllowEncodedSlashes NoDecode. */
    expect("/v1/models/meta-llama%2FLlama-3.3%2f70B", GET, LLMGW_ROUTE_FOUND, "models",
           "GET, HEAD, OPTIONS", "meta-llama/Llama-3.3/70B");
    expect("/alt/models/a/b/c", GET, LLMGW_ROUTE_FOUND, "alt", "GET, HEAD, POST, OPTIONS", "a/b/c");
    /* An exact route wins over a models item of the same path. */
    expect("/v1/models/special", POST, LLMGW_ROUTE_FOUND, "special", "POST, OPTIONS", NULL);
    expect("/v1/models/special/x", GET, LLMGW_ROUTE_FOUND, "models", "GET, HEAD, OPTIONS",
           "special/x");
    expect_not_found("/v1/models/", GET);
    expect_not_found("/v1/modelsx/gpt-4o", GET);
    expect_not_found("/v1/models//", GET);
    /* Only a models route has items. */
    expect_not_found("/v1/chat/completions/gpt-4o", POST);
    expect_not_found("/v1/embeddings/gpt-4o", GET);
    expect_not_found("/llm/ask/x", POST);
}
END_TEST

static const llmgw_route_t *route_named(const char *path)
{
    const llmgw_route_t *r = llmgw_config_route(config(), path);

    ck_assert_ptr_nonnull(r);
    return r;
}

static void expect_json(const json_t *got, const char *text)
{
    json_t *want = test_parse_json(text, strlen(text));

    ck_assert_json_eq(got, want);
    json_decref(want);
}

START_TEST(test_models_list_nested_pools)
{
    json_t *j = llmgw_route_models_json(test_pool, route_named("/v1/models"), NULL, 1700000000);

    /* Depth first through the pools, each pool's name first (a virtual model),
     * defaultModel before models:, each id once. */
    expect_json(j, "{\"object\": \"list\", \"data\": ["
                   "{\"id\": \"outer\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"llmgw\"},"
                   "{\"id\": \"gpt-4o\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"openai\"},"
                   "{\"id\": \"gpt-4o-mini\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"openai\"},"
                   "{\"id\": \"inner\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"llmgw\"},"
                   "{\"id\": \"team-inner\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"llmgw\"},"
                   "{\"id\": \"m-large\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"mistral\"},"
                   "{\"id\": \"m-small\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"mistral\"},"
                   "{\"id\": \"claude-x\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"anthropic\"},"
                   "{\"id\": \"d-1\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"openai\"},"
                   "{\"id\": \"vendor/x\", \"object\": \"model\", \"created\": 1700000000,"
                   " \"owned_by\": \"google\"}]}");
    /* The dump keeps the keys in the order clients see today. */
    ck_assert_str_eq(
        llmgw_json_dump(test_pool, json_array_get(json_object_get(j, "data"), 1), NULL),
        "{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":1700000000,"
        "\"owned_by\":\"openai\"}");
}
END_TEST

START_TEST(test_models_list_lone_backend)
{
    json_t *j = llmgw_route_models_json(test_pool, route_named("/alt/models"), NULL, 0);

    expect_json(j, "{\"object\": \"list\", \"data\": [{\"id\": \"claude-x\", \"object\": "
                   "\"model\", \"created\": 0, \"owned_by\": \"anthropic\"}]}");
}
END_TEST

START_TEST(test_models_item)
{
    const llmgw_route_t *r = route_named("/v1/models");

    /* The first backend to list an id owns it (gpt-4o: a before c). */
    expect_json(llmgw_route_models_json(test_pool, r, "gpt-4o", 5),
                "{\"id\": \"gpt-4o\", \"object\": \"model\", \"created\": 5,"
                " \"owned_by\": \"openai\"}");
    expect_json(llmgw_route_models_json(test_pool, r, "claude-x", 5),
                "{\"id\": \"claude-x\", \"object\": \"model\", \"created\": 5,"
                " \"owned_by\": \"anthropic\"}");
    expect_json(llmgw_route_models_json(test_pool, r, "vendor/x", 5),
                "{\"id\": \"vendor/x\", \"object\": \"model\", \"created\": 5,"
                " \"owned_by\": \"google\"}");
    expect_json(llmgw_route_models_json(test_pool, r, "team-inner", 5),
                "{\"id\": \"team-inner\", \"object\": \"model\", \"created\": 5,"
                " \"owned_by\": \"llmgw\"}");
    ck_assert_ptr_null(llmgw_route_models_json(test_pool, r, "nope", 5));
    ck_assert_ptr_null(llmgw_route_models_json(test_pool, r, "gpt%2D4o", 5));
    ck_assert_ptr_null(llmgw_route_models_json(test_pool, r, "GPT-4O", 5));
    ck_assert_ptr_null(llmgw_route_models_json(test_pool, r, "", 5));
    /* Not served by the lone backend of /alt/models. */
    ck_assert_ptr_null(llmgw_route_models_json(test_pool, route_named("/alt/models"), "gpt-4o", 5));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route");
    TCase *tc = test_fixture("route");

    tcase_add_test(tc, test_method_bit);
    tcase_add_test(tc, test_allow_value);
    tcase_add_test(tc, test_dialect_sub_paths);
    tcase_add_test(tc, test_exact_path);
    tcase_add_test(tc, test_unknown_path);
    tcase_add_test(tc, test_wrong_method);
    tcase_add_test(tc, test_head_and_options);
    tcase_add_test(tc, test_models_item_path);
    tcase_add_test(tc, test_models_list_nested_pools);
    tcase_add_test(tc, test_models_list_lone_backend);
    tcase_add_test(tc, test_models_item);
    suite_add_tcase(s, tc);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
