/* Check suite of src/llmgw_config.c: the gateway.yaml loader. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "llmgw_config.h"
#include "llmgw_strategy.h"
#include "test_util.h"

#define SECRET "sk secret/MARKER 42"

static const char *data_path(const char *file)
{
    return apr_pstrcat(test_pool, LLMGW_TEST_DATA, "/config/", file, NULL);
}

static llmgw_config_t *load_ok(const char *file)
{
    llmgw_config_t *cfg = NULL;
    const char *err = NULL;
    apr_status_t rv = llmgw_config_load(&cfg, test_pool, test_pool, data_path(file), &err);

    ck_assert_msg(rv == APR_SUCCESS, "%s: %s", file, err ? err : "(no message)");
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* Parse @p text as "t.yaml"; returns the status, the config or the message. */
static apr_status_t parse(const char *text, llmgw_config_t **cfg, const char **err)
{
    *err = NULL;
    return llmgw_config_parse(cfg, test_pool, test_pool, "t.yaml", text, strlen(text), err);
}

/* One backend of @p type whose config: holds @p lines (indented by 6); config keys start at line 5.
 */
static const char *one_backend(const char *type, const char *lines)
{
    return apr_psprintf(test_pool,
                        "backends:\n  - name: b\n    type: %s\n    config:\n%sroutes: []\n", type,
                        lines);
}

static const llmgw_backend_t *parse_backend_ok(const char *type, const char *lines)
{
    llmgw_config_t *cfg;
    const char *err;
    apr_status_t rv = parse(one_backend(type, lines), &cfg, &err);

    ck_assert_msg(rv == APR_SUCCESS, "%s", err ? err : "(no message)");
    return llmgw_config_backend(cfg, "b");
}

static const char *parse_backend_err(const char *type, const char *lines)
{
    llmgw_config_t *cfg;
    const char *err;
    apr_status_t rv = parse(one_backend(type, lines), &cfg, &err);

    ck_assert_int_eq(rv, LLMGW_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(err);
    return err;
}

static const llmgw_backend_t *backend_at(const llmgw_config_t *cfg, int i)
{
    return APR_ARRAY_IDX(cfg->backends, i, const llmgw_backend_t *);
}

static const char *model_at(const llmgw_backend_t *b, int i)
{
    return APR_ARRAY_IDX(b->models, i, const char *);
}

static const llmgw_pool_member_t *member_at(const llmgw_backend_t *b, int i)
{
    return &APR_ARRAY_IDX(b->members, i, llmgw_pool_member_t);
}

/* ---- the full file ---------------------------------------------------- */

static void full_setup(void)
{
    test_pool_setup();
    setenv("LLMGW_TEST_OPENAI_KEY", "sk-from-env", 1);
    unsetenv("LLMGW_TEST_AZURE_KEY");
}

START_TEST(test_full_providers)
{
    llmgw_config_t *cfg = load_ok("full.yaml");
    const llmgw_backend_t *b;

    ck_assert_str_eq(cfg->path, data_path("full.yaml"));
    ck_assert_int_eq(cfg->backends->nelts, 9);
    ck_assert_int_eq(apr_hash_count(cfg->backend_by_name), 9);

    b = llmgw_config_backend(cfg, "openai-a");
    ck_assert_ptr_eq(b, backend_at(cfg, 0));
    ck_assert_int_eq(b->index, 0);
    ck_assert_int_eq(b->type, LLMGW_BACKEND_OPENAI);
    ck_assert_uint_eq(b->mark.line, 3);
    ck_assert_uint_eq(b->mark.column, 5);
    ck_assert_str_eq(b->api_key, "sk-from-env");
    ck_assert_str_eq(b->org_id, "org-123");
    ck_assert_str_eq(b->project, "proj_abc");
    ck_assert_str_eq(b->endpoint, "https://api.openai.com/v1");
    ck_assert_str_eq(b->default_model, "gpt-4o");
    ck_assert_int_eq(b->models->nelts, 2);
    ck_assert_str_eq(model_at(b, 0), "gpt-4o");
    ck_assert_str_eq(model_at(b, 1), "gpt-4o-mini");
    ck_assert_int_eq(b->timeout, apr_time_from_sec(30));
    ck_assert_int_eq(b->connect_timeout, apr_time_from_msec(250));
    ck_assert_int_eq(b->first_byte_timeout, apr_time_from_sec(120));
    ck_assert_int_eq(b->idle_timeout, apr_time_from_sec(3600));
    ck_assert_int_eq(llmgw_backend_timeout(b), apr_time_from_sec(30));
    ck_assert_int_eq(llmgw_backend_connect_timeout(b), apr_time_from_msec(250));
    ck_assert_int_eq(llmgw_backend_first_byte_timeout(b), apr_time_from_sec(120));
    ck_assert_int_eq(llmgw_backend_idle_timeout(b), apr_time_from_sec(3600));
    ck_assert_int_eq(b->max_retries, 3);
    ck_assert_int_eq(llmgw_backend_max_retries(b), 3);
    ck_assert_int_eq(b->max_tokens, LLMGW_UNSET);
    ck_assert_int_eq(b->unsupported_drop, 1);
    ck_assert_int_eq(b->members->nelts, 0);

    b = llmgw_config_backend(cfg, "claude.main");
    ck_assert_int_eq(b->index, 1);
    ck_assert_int_eq(b->type, LLMGW_BACKEND_ANTHROPIC);
    ck_assert_str_eq(b->api_key, "sk-ant-literal");
    ck_assert_str_eq(b->endpoint, "http://127.0.0.1:8089");
    ck_assert_str_eq(b->default_model, "claude-sonnet-4-5");
    ck_assert_int_eq(b->models->nelts, 0);
    ck_assert_int_eq(b->max_tokens, 8192);
    ck_assert_int_eq(b->max_retries, 0);
    ck_assert_int_eq(llmgw_backend_max_retries(b), 0);
    ck_assert_int_eq(b->unsupported_drop, 0);
    ck_assert_ptr_null(b->org_id);

    b = llmgw_config_backend(cfg, "azure_east");
    ck_assert_int_eq(b->type, LLMGW_BACKEND_AZURE_OPENAI);
    ck_assert_str_eq(b->api_key, "azure-fallback");
    ck_assert_str_eq(b->endpoint, "https://myresource.openai.azure.com");
    ck_assert_str_eq(b->deployment_name, "gpt4o-prod");
    ck_assert_str_eq(b->api_version, "2024-10-21");
    ck_assert_int_eq(b->timeout, apr_time_from_sec(45));
    /* No defaultModel: Azure serves its deployment. */
    ck_assert_str_eq(b->default_model, "gpt4o-prod");

    b = llmgw_config_backend(cfg, "gemini");
    ck_assert_int_eq(b->type, LLMGW_BACKEND_GOOGLE);
    ck_assert_str_eq(b->api_key, "AIza-test");
    ck_assert_int_eq(b->models->nelts, 2);
    ck_assert_str_eq(model_at(b, 1), "gemini-2.5-pro");
    ck_assert_ptr_null(b->project_id);

    b = llmgw_config_backend(cfg, "vertex");
    ck_assert_int_eq(b->type, LLMGW_BACKEND_GOOGLE);
    ck_assert_ptr_null(b->api_key);
    ck_assert_str_eq(b->project_id, "my-project");
    ck_assert_str_eq(b->location, "europe-west4");
    ck_assert_str_eq(b->credentials_file, "/etc/apache2/sa.json");
    ck_assert_str_eq(b->endpoint, "https://europe-west4-aiplatform.googleapis.com");

    b = llmgw_config_backend(cfg, "llama-local");
    ck_assert_int_eq(b->type, LLMGW_BACKEND_META);
    ck_assert_ptr_null(b->api_key);
    ck_assert_str_eq(b->endpoint, "http://localhost:8000/v1");

    b = llmgw_config_backend(cfg, "mistral-1");
    ck_assert_int_eq(b->type, LLMGW_BACKEND_MISTRAL);
    ck_assert_int_eq(b->index, 6);
    ck_assert_str_eq(b->api_key, "mk-literal");
    ck_assert_str_eq(b->default_model, "mistral-large-latest");
}
END_TEST

START_TEST(test_full_pools)
{
    llmgw_config_t *cfg = load_ok("full.yaml");
    const llmgw_backend_t *inner = llmgw_config_backend(cfg, "inner");
    const llmgw_backend_t *pool = llmgw_config_backend(cfg, "llm-pool");
    const llmgw_pool_member_t *m;

    ck_assert_int_eq(inner->type, LLMGW_BACKEND_POOL);
    ck_assert_ptr_eq(inner->strategy, &llmgw_strategy_priority);
    ck_assert_str_eq(inner->strategy_name, "priority");
    ck_assert_int_eq(inner->fallback, 0);
    ck_assert_int_eq(inner->members->nelts, 2);
    ck_assert_ptr_eq(member_at(inner, 0)->backend, llmgw_config_backend(cfg, "gemini"));
    ck_assert_ptr_eq(member_at(inner, 1)->backend, llmgw_config_backend(cfg, "vertex"));
    ck_assert_int_eq(member_at(inner, 1)->weight, 1);
    ck_assert_int_eq(inner->failure_threshold, LLMGW_UNSET);
    ck_assert_int_eq(inner->cooldown, LLMGW_UNSET);
    ck_assert_int_eq(inner->max_attempts, LLMGW_UNSET);

    ck_assert_int_eq(pool->index, 8);
    ck_assert_ptr_eq(pool->strategy, &llmgw_strategy_weighted);
    ck_assert_str_eq(pool->strategy_name, "weighted");
    ck_assert_int_eq(pool->fallback, 1);
    ck_assert_int_eq(pool->failure_threshold, 3);
    ck_assert_int_eq(pool->cooldown, apr_time_from_sec(10));
    ck_assert_int_eq(pool->max_attempts, 4);
    ck_assert_int_eq(pool->members->nelts, 3);
    m = member_at(pool, 0);
    ck_assert_str_eq(m->name, "openai-a");
    ck_assert_int_eq(m->weight, 70);
    ck_assert_ptr_eq(m->backend, llmgw_config_backend(cfg, "openai-a"));
    ck_assert_uint_eq(m->mark.line, 74);
    ck_assert_uint_eq(m->mark.column, 17);
    m = member_at(pool, 1);
    ck_assert_str_eq(m->name, "claude.main");
    ck_assert_int_eq(m->weight, 30);
    ck_assert_ptr_eq(m->backend, llmgw_config_backend(cfg, "claude.main"));
    m = member_at(pool, 2);
    ck_assert_int_eq(m->weight, 1);
    ck_assert_ptr_eq(m->backend, inner);
}
END_TEST

START_TEST(test_full_routes)
{
    llmgw_config_t *cfg = load_ok("full.yaml");
    const llmgw_route_t *r;

    ck_assert_int_eq(cfg->routes->nelts, 4);
    ck_assert_int_eq(apr_hash_count(cfg->route_by_path), 4);

    r = llmgw_config_route(cfg, "/v1/chat/completions");
    ck_assert_ptr_eq(r, APR_ARRAY_IDX(cfg->routes, 0, const llmgw_route_t *));
    ck_assert_str_eq(r->name, "chat");
    ck_assert_int_eq(r->api, LLMGW_API_CHAT);
    ck_assert_int_eq(r->methods, LLMGW_METHOD_POST | LLMGW_METHOD_OPTIONS);
    ck_assert_str_eq(r->backend_name, "llm-pool");
    ck_assert_ptr_eq(r->backend, llmgw_config_backend(cfg, "llm-pool"));
    ck_assert_uint_eq(r->mark.line, 80);
    ck_assert_uint_eq(r->mark.column, 5);

    r = llmgw_config_route(cfg, "/v1/embeddings");
    ck_assert_str_eq(r->name, "embeddings");
    ck_assert_int_eq(r->api, LLMGW_API_EMBEDDINGS);
    ck_assert_int_eq(r->methods, LLMGW_METHOD_POST);
    ck_assert_ptr_eq(r->backend, llmgw_config_backend(cfg, "openai-a"));

    r = llmgw_config_route(cfg, "/v1/models");
    ck_assert_int_eq(r->api, LLMGW_API_MODELS);
    ck_assert_int_eq(r->methods, LLMGW_METHOD_GET | LLMGW_METHOD_HEAD);

    r = llmgw_config_route(cfg, "/llm/ask");
    ck_assert_int_eq(r->api, LLMGW_API_CHAT);
    ck_assert_int_eq(r->methods, LLMGW_METHOD_POST | LLMGW_METHOD_GET | LLMGW_METHOD_HEAD);
    ck_assert_ptr_eq(r->backend, llmgw_config_backend(cfg, "azure_east"));

    ck_assert_ptr_null(llmgw_config_route(cfg, "/v1/chat/completions/"));
    ck_assert_ptr_null(llmgw_config_route(cfg, NULL));
    ck_assert_ptr_null(llmgw_config_backend(cfg, "missing"));
}
END_TEST

START_TEST(test_serves)
{
    llmgw_config_t *cfg = load_ok("full.yaml");
    const llmgw_backend_t *openai = llmgw_config_backend(cfg, "openai-a");
    const llmgw_backend_t *claude = llmgw_config_backend(cfg, "claude.main");
    const llmgw_backend_t *vertex = llmgw_config_backend(cfg, "vertex");

    ck_assert_int_eq(llmgw_backend_serves(openai, "gpt-4o"), 1);
    ck_assert_int_eq(llmgw_backend_serves(openai, "gpt-4o-mini"), 1);
    ck_assert_int_eq(llmgw_backend_serves(openai, "gpt-4"), 0);
    ck_assert_int_eq(llmgw_backend_serves(openai, NULL), 0);
    ck_assert_int_eq(llmgw_backend_serves(claude, "claude-sonnet-4-5"), 1);
    ck_assert_int_eq(llmgw_backend_serves(claude, "gpt-4o"), 0);
    ck_assert_int_eq(llmgw_backend_serves(vertex, "gemini-2.5-pro"), 0);
}
END_TEST

START_TEST(test_type_names)
{
    ck_assert_str_eq(llmgw_backend_type_name(LLMGW_BACKEND_OPENAI), "openai");
    ck_assert_str_eq(llmgw_backend_type_name(LLMGW_BACKEND_AZURE_OPENAI), "azure-openai");
    ck_assert_str_eq(llmgw_backend_type_name(LLMGW_BACKEND_MISTRAL), "mistral");
    ck_assert_str_eq(llmgw_backend_type_name(LLMGW_BACKEND_POOL), "pool");
    ck_assert_str_eq(llmgw_backend_type_name(LLMGW_BACKEND_TYPE_COUNT), "unknown");
}
END_TEST

/* ---- defaults and value forms --------------------------------------------- */

START_TEST(test_defaults)
{
    llmgw_config_t *cfg = load_ok("defaults.yaml");
    const llmgw_backend_t *b = llmgw_config_backend(cfg, "plain");
    const llmgw_backend_t *p = llmgw_config_backend(cfg, "p");

    ck_assert_int_eq(cfg->routes->nelts, 0);
    ck_assert_ptr_null(b->org_id);
    ck_assert_ptr_null(b->project);
    ck_assert_ptr_null(b->endpoint);
    ck_assert_ptr_null(b->default_model);
    ck_assert_ptr_nonnull(b->models);
    ck_assert_int_eq(b->models->nelts, 0);
    ck_assert_int_eq(b->timeout, LLMGW_UNSET);
    ck_assert_int_eq(b->max_retries, LLMGW_UNSET);
    ck_assert_int_eq(b->unsupported_drop, 0);
    ck_assert_int_eq(llmgw_backend_timeout(b), LLMGW_DEFAULT_TIMEOUT);
    ck_assert_int_eq(llmgw_backend_connect_timeout(b), LLMGW_DEFAULT_CONNECT_TIMEOUT);
    ck_assert_int_eq(llmgw_backend_first_byte_timeout(b), LLMGW_DEFAULT_FIRST_BYTE_TIMEOUT);
    ck_assert_int_eq(llmgw_backend_idle_timeout(b), LLMGW_DEFAULT_IDLE_TIMEOUT);
    ck_assert_int_eq(llmgw_backend_max_retries(b), LLMGW_DEFAULT_MAX_RETRIES);
    ck_assert_int_eq(llmgw_backend_serves(b, "gpt-4o"), 0);

    ck_assert_ptr_eq(p->strategy, &llmgw_strategy_latency);
    ck_assert_str_eq(p->strategy_name, "latency");
    ck_assert_int_eq(p->fallback, 1);
    ck_assert_int_eq(p->failure_threshold, LLMGW_UNSET);
    ck_assert_int_eq(p->cooldown, LLMGW_UNSET);
    ck_assert_int_eq(member_at(p, 0)->weight, 1);
    ck_assert_ptr_eq(member_at(p, 0)->backend, b);
}
END_TEST

START_TEST(test_booleans)
{
    static const struct {
        const char *text;
        int value;
    } cases[] = {{"true", 1}, {"yes", 1}, {"on", 1},  {"True", 1},  {"false", 0},
                 {"no", 0},   {"off", 0}, {"OFF", 0}, {"\"no\"", 0}};
    unsigned i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *text = apr_psprintf(test_pool,
                                        "backends:\n  - {name: a, type: meta, config: "
                                        "{endpoint: 'http://h'}}\n  - {name: p, type: pool, "
                                        "fallback: %s, backends: [a]}\nroutes: []\n",
                                        cases[i].text);
        llmgw_config_t *cfg;
        const char *err;
        ck_assert_msg(parse(text, &cfg, &err) == APR_SUCCESS, "%s: %s", cases[i].text, err);
        ck_assert_int_eq(llmgw_config_backend(cfg, "p")->fallback, cases[i].value);
    }
}
END_TEST

START_TEST(test_null_optional_is_absent)
{
    const llmgw_backend_t *b = parse_backend_ok("openai", "      apiKey: k\n      orgId:\n"
                                                          "      timeout: ~\n");

    ck_assert_ptr_null(b->org_id);
    ck_assert_int_eq(b->timeout, LLMGW_UNSET);
    ck_assert_ptr_nonnull(strstr(parse_backend_err("openai", "      apiKey:\n"),
                                 "t.yaml:5:14: backend \"b\": apiKey has no value"));
}
END_TEST

/* ---- ${VAR} interpolation ------------------------------------------------- */

static void env_setup(void)
{
    test_pool_setup();
    setenv("LLMGW_T_KEY", "sk-abc", 1);
    setenv("LLMGW_T_HOST", "gw.example", 1);
    setenv("LLMGW_T_EMPTY", "", 1);
    unsetenv("LLMGW_T_UNSET");
}

START_TEST(test_env_set)
{
    const llmgw_backend_t *b = parse_backend_ok("openai", "      apiKey: ${LLMGW_T_KEY}\n");
    ck_assert_str_eq(b->api_key, "sk-abc");
}
END_TEST

START_TEST(test_env_default)
{
    const llmgw_backend_t *b =
        parse_backend_ok("openai", "      apiKey: \"${LLMGW_T_UNSET:-fallback-key}\"\n"
                                   "      orgId: ${LLMGW_T_EMPTY:-org-x}\n"
                                   "      project: ${LLMGW_T_KEY:-unused}\n"
                                   "      maxRetries: ${LLMGW_T_UNSET:-4}\n");

    ck_assert_str_eq(b->api_key, "fallback-key");
    ck_assert_str_eq(b->org_id, "org-x");
    ck_assert_str_eq(b->project, "sk-abc");
    ck_assert_int_eq(b->max_retries, 4);
}
END_TEST

START_TEST(test_env_several)
{
    const llmgw_backend_t *b = parse_backend_ok(
        "meta", "      endpoint: \"https://${LLMGW_T_HOST}:${LLMGW_T_UNSET:-8443}/v1\"\n"
                "      defaultModel: pre-${LLMGW_T_HOST}-${LLMGW_T_KEY}-post\n");

    ck_assert_str_eq(b->endpoint, "https://gw.example:8443/v1");
    ck_assert_str_eq(b->default_model, "pre-gw.example-sk-abc-post");
}
END_TEST

START_TEST(test_env_literal_dollar)
{
    const llmgw_backend_t *b = parse_backend_ok("openai", "      apiKey: \"pa$s$$word$\"\n"
                                                          "      orgId: \"$${LLMGW_T_KEY}\"\n"
                                                          "      project: \"$5 and $\"\n");

    ck_assert_str_eq(b->api_key, "pa$s$word$");
    ck_assert_str_eq(b->org_id, "${LLMGW_T_KEY}");
    ck_assert_str_eq(b->project, "$5 and $");
}
END_TEST

START_TEST(test_env_unset_required)
{
    const char *err = parse_backend_err("openai", "      apiKey: ${LLMGW_T_UNSET}\n");
    ck_assert_str_eq(err, "t.yaml:5:15: backend \"b\": environment variable LLMGW_T_UNSET is "
                          "not set (needed by apiKey)");
    /* An empty variable is as good as unset. */
    err = parse_backend_err("mistral", "      apiKey: ${LLMGW_T_EMPTY}\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:5:15: "));
    ck_assert_ptr_nonnull(strstr(err, "LLMGW_T_EMPTY is not set"));
}
END_TEST

START_TEST(test_env_unset_optional)
{
    const llmgw_backend_t *b =
        parse_backend_ok("openai", "      apiKey: k\n      orgId: ${LLMGW_T_UNSET}\n"
                                   "      project: \"${LLMGW_T_EMPTY}\"\n"
                                   "      timeout: ${LLMGW_T_UNSET}\n");

    ck_assert_ptr_null(b->org_id);
    ck_assert_ptr_null(b->project);
    ck_assert_int_eq(b->timeout, LLMGW_UNSET);

    b = parse_backend_ok("meta", "      apiKey: ${LLMGW_T_UNSET}\n      endpoint: http://h:1/v1\n");
    ck_assert_ptr_null(b->api_key);

    /* An empty result on an optional field is "not given" as well; on a required one, an error. */
    b = parse_backend_ok("openai", "      apiKey: k\n      orgId: \"${LLMGW_T_UNSET:-}\"\n"
                                   "      defaultModel: \"\"\n");
    ck_assert_ptr_null(b->org_id);
    ck_assert_ptr_null(b->default_model);
    ck_assert_str_eq(parse_backend_err("openai", "      apiKey: \"${LLMGW_T_UNSET:-}\"\n"),
                     "t.yaml:5:15: backend \"b\": apiKey must not be empty");
}
END_TEST

START_TEST(test_env_unset_optional_inside_text)
{
    /* Only a value that is exactly one ${VAR} may vanish; text around it makes it required. */
    const char *err =
        parse_backend_err("openai", "      apiKey: k\n      orgId: org-${LLMGW_T_UNSET}\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:6:14: "));
    ck_assert_ptr_nonnull(strstr(err, "LLMGW_T_UNSET is not set"));
}
END_TEST

START_TEST(test_env_malformed)
{
    const char *err = parse_backend_err("openai", "      apiKey: \"${LLMGW_T_KEY\"\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:5:15: "));
    ck_assert_ptr_nonnull(strstr(err, "closing"));
    err = parse_backend_err("openai", "      apiKey: \"${1BAD}\"\n");
    ck_assert_ptr_nonnull(strstr(err, "does not name an environment variable"));
    err = parse_backend_err("openai", "      apiKey: \"${A B}\"\n");
    ck_assert_ptr_nonnull(strstr(err, "does not name an environment variable"));
}
END_TEST

/* ---- durations ------------------------------------------------------------ */

static const struct {
    const char *text;
    apr_interval_time_t value;
} good_durations[] = {
    {"250ms", 250000},
    {"30s", 30 * APR_USEC_PER_SEC},
    {"2m", 120 * APR_USEC_PER_SEC},
    {"1h", 3600 * APR_USEC_PER_SEC},
    {"0", 0},
    {"0ms", 0},
    {"007s", 7 * APR_USEC_PER_SEC},
    {"9223372036854ms", APR_INT64_C(9223372036854000)},
    {"2562047788h", APR_INT64_C(2562047788) * 3600 * APR_USEC_PER_SEC},
};

static const char *const bad_durations[] = {
    "",
    "-1s",
    "-5",
    "45",
    "5",
    "1.5s",
    "10d",
    "s",
    "ms",
    " 5s",
    "5s ",
    "5 s",
    "5S",
    "1e3",
    "+5",
    "5sec",
    "0x10",
    "5ms5",
    "1m30s",
    "99999999999999999999",
    "9223372036855s",
    "2562047789h",
};

START_TEST(test_duration_good)
{
    apr_interval_time_t d = -1;

    ck_assert_int_eq(llmgw_duration_parse(good_durations[_i].text, &d), APR_SUCCESS);
    ck_assert_int_eq(d, good_durations[_i].value);
}
END_TEST

START_TEST(test_duration_bad)
{
    apr_interval_time_t d = 1234;

    ck_assert_msg(llmgw_duration_parse(bad_durations[_i], &d) == APR_EINVAL, "accepted \"%s\"",
                  bad_durations[_i]);
    ck_assert_int_eq(d, 1234);
}
END_TEST

START_TEST(test_duration_null)
{
    apr_interval_time_t d;
    ck_assert_int_eq(llmgw_duration_parse(NULL, &d), APR_EINVAL);
}
END_TEST

/* ---- invalid files --------------------------------------------------------- */

static const struct {
    const char *file;
    unsigned long line, column;
    const char *keyword;
} invalid[] = {
    {"bad_syntax.yaml", 4, 40, "YAML syntax error: did not find expected ',' or ']'"},
    {"unknown_type.yaml", 3, 11, "backend \"a\": unknown type \"opneai\""},
    {"dup_backend.yaml", 5, 11, "duplicate backend name \"a\" (first at line 2)"},
    {"dup_route_path.yaml", 8, 11, "is already used by route \"chat\""},
    {"dup_route_name.yaml", 5, 12, "duplicate route name \"chat\""},
    {"pool_missing_member.yaml", 7, 16, "pool \"p\": backend \"ghost\" is not defined"},
    {"pool_cycle_self.yaml", 5, 19, "pool cycle: loop -> loop"},
    {"pool_cycle_indirect.yaml", 13, 9, "pool cycle: a -> b -> c -> a"},
    {"embeddings_anthropic.yaml", 7, 5, "backend \"claude\" cannot serve embeddings"},
    {"pool_dup_member.yaml", 7, 16, "member \"a\" is listed twice"},
    {"route_missing_backend.yaml", 6, 14, "route \"chat\": backend \"nowhere\" is not defined"},
    {"bad_duration.yaml", 6, 16, "timeout must be a duration"},
    {"bare_duration.yaml", 6, 23, "connectTimeout must be a duration with a unit"},
    {"alias_taken.yaml", 11, 22, "pool \"q\": alias \"team\" is already a name of pool \"p\""},
    {"alias_own_name.yaml", 7, 15, "pool \"p\": alias \"p\" is the pool's own name"},
    {"alias_pool_name.yaml", 10, 15, "alias \"p\" is already a name of pool \"p\""},
    {"alias_on_backend.yaml", 4, 5, "aliases"},
    {"zero_timeout.yaml", 6, 20, "idleTimeout must be longer than zero"},
    {"missing_name.yaml", 3, 5, "backend #2: missing required key \"name\""},
    {"missing_type.yaml", 2, 5, "missing required key \"type\""},
    {"missing_apikey.yaml", 5, 7, "missing required key \"apiKey\""},
    {"meta_no_endpoint.yaml", 5, 7, "backend \"llama\": missing required key \"endpoint\""},
    {"azure_no_deployment.yaml", 5, 7, "missing required key \"deploymentName\""},
    {"unset_var.yaml", 5, 15, "environment variable LLMGW_TEST_NEVER_SET is not set"},
    {"bad_method.yaml", 6, 21, "unknown method \"PUT\""},
    {"wrong_type_mapping.yaml", 6, 21, "defaultModel must be a string, not a mapping"},
    {"wrong_type_int.yaml", 6, 19,
     "backend \"openai-a\": maxRetries must be an integer from 0 to 10, not \"many\""},
    {"wrong_type_name.yaml", 2, 11, "name must be a string, not a sequence"},
    {"bad_bool.yaml", 5, 15, "fallback must be true or false, not \"maybe\""},
    {"unknown_top_key.yaml", 4, 1, "unknown top-level key \"listen\""},
    {"unknown_backend_key.yaml", 4, 5, "unknown key \"apiKey\" (provider settings go under"},
    {"unknown_config_key.yaml", 6, 7, "unknown key \"temperature\""},
    {"other_type_key.yaml", 6, 7, "deploymentName is only valid for type azure-openai, not openai"},
    {"pool_with_config.yaml", 5, 5, "config is only valid for types openai, anthropic"},
    {"strategy_on_backend.yaml", 4, 5, "strategy is only valid for type pool, not mistral"},
    {"bad_name_chars.yaml", 2, 11, "may only contain letters, digits"},
    {"empty.yaml", 1, 1, "the file is empty"},
    {"comments_only.yaml", 3, 1, "the file is empty"},
    {"path_no_suffix.yaml", 5, 11, "cannot tell what the path serves"},
    {"path_no_slash.yaml", 5, 11, "must start with '/'"},
    {"alias.yaml", 8, 13, "YAML aliases (*common) are not supported"},
    {"multi_doc.yaml", 4, 1, "more than one YAML document"},
    {"not_mapping.yaml", 1, 1, "the top level must be a mapping"},
    {"models_route_post.yaml", 6, 14, "a models route must allow GET"},
    {"google_no_auth.yaml", 11, 7, "backend \"g2\": a google backend needs apiKey"},
    {"bad_endpoint.yaml", 5, 17, "endpoint must be a URL starting with http:// or https://"},
    {"dup_key.yaml", 6, 7, "duplicate key \"apiKey\""},
    {"missing_backends.yaml", 1, 1, "missing required key \"backends\""},
    {"max_retries_range.yaml", 6, 19, "maxRetries must be an integer from 0 to 10, not \"11\""},
    {"negative_weight.yaml", 7, 27, "weight must be an integer from 0 to 1000000"},
    {"bad_strategy.yaml", 5, 15,
     "backend \"p\": strategy must be one of latency, weighted, round-robin, priority, "
     "least-busy, not \"fastest\""},
    {"missing_routes.yaml", 1, 1, "missing required key \"routes\""},
};

static void invalid_setup(void)
{
    test_pool_setup();
    unsetenv("LLMGW_TEST_NEVER_SET");
}

START_TEST(test_invalid_file)
{
    const char *path = data_path(invalid[_i].file);
    const char *prefix =
        apr_psprintf(test_pool, "%s:%lu:%lu: ", path, invalid[_i].line, invalid[_i].column);
    llmgw_config_t *cfg = (llmgw_config_t *)1;
    const char *err = NULL;
    apr_status_t rv = llmgw_config_load(&cfg, test_pool, test_pool, path, &err);

    ck_assert_msg(rv == LLMGW_ECONFIG, "%s: accepted or wrong status %d", invalid[_i].file, rv);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s: want prefix \"%s\", got \"%s\"",
                  invalid[_i].file, prefix, err);
    ck_assert_msg(strstr(err, invalid[_i].keyword) != NULL, "%s: want \"%s\" in \"%s\"",
                  invalid[_i].file, invalid[_i].keyword, err);
}
END_TEST

START_TEST(test_unreadable_file)
{
    llmgw_config_t *cfg = (llmgw_config_t *)1;
    const char *err = NULL;
    apr_status_t rv = llmgw_config_load(&cfg, test_pool, test_pool, "/nonexistent/gw.yaml", &err);

    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_int_ne(rv, LLMGW_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/gw.yaml: cannot read the file"));
}
END_TEST

/* An empty gateway is valid and serves nothing: the Debian package installs one, so that enabling
 * the module never breaks a running httpd before gateway.yaml is written. */
START_TEST(test_empty_gateway)
{
    llmgw_config_t *cfg = load_ok("empty_gateway.yaml");
    const char *err;

    ck_assert_int_eq(cfg->backends->nelts, 0);
    ck_assert_int_eq(cfg->routes->nelts, 0);
    ck_assert_int_eq(parse("backends: []\nroutes:\n  - {name: c, path: /v1/chat/completions, "
                           "backend: gone}\n",
                           &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "\"gone\""));
}
END_TEST

START_TEST(test_invalid_inline)
{
    llmgw_config_t *cfg;
    const char *err;

    ck_assert_int_eq(parse("a: [1, 2\n", &cfg, &err), LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:2:1: YAML syntax error"));
    ck_assert_int_eq(parse("just text\n", &cfg, &err), LLMGW_ECONFIG);
    ck_assert_str_eq(err, "t.yaml:1:1: the top level must be a mapping with backends and routes, "
                          "not a scalar");
    ck_assert_int_eq(parse("backends:\n  - name: \"ok\xff\"\n", &cfg, &err), LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:2:14: YAML syntax error: invalid"));
    ck_assert_int_eq(parse("---\n", &cfg, &err), LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "an empty document"));
    ck_assert_int_eq(parse("backends: [\"\\0\"]\n", &cfg, &err), LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:1:12: a value contains a NUL character"));
    ck_assert_int_eq(
        parse("backends: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]"
              "]]]]]]]]\n",
              &cfg, &err),
        LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "nests deeper"));
    err = parse_backend_err("google", "      projectId: p\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:5:7: backend \"b\": projectId and location"));
    err = parse_backend_err("openai", "      apiKey: k\n      models: gpt-4o\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:6:15: backend \"b\": models must be a sequence"));
    err = parse_backend_err("anthropic", "      apiKey: k\n      maxTokens: 0\n");
    ck_assert_ptr_nonnull(strstr(err, "maxTokens must be an integer of at least 1, not \"0\""));
    err = parse_backend_err("openai", "      apiKey: \"a\\nb\"\n");
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:5:15: backend \"b\": apiKey must not contain "
                                      "control characters"));
}
END_TEST

/* ---- dispatch: prefill, contextFallback, firstTokenTimeout, streamRecovery ---- */

/* Three backends and a chat route; @p extra_b goes into b's config, @p route_extra under the route.
 */
static const char *recovery_yaml(const char *b_type, const char *extra_b, const char *route_extra)
{
    return apr_psprintf(test_pool,
                        "backends:\n"
                        "  - name: a\n"
                        "    type: openai\n"
                        "    config: {apiKey: k, contextFallback: big}\n"
                        "  - name: b\n"
                        "    type: %s\n"
                        "    config:\n"
                        "      apiKey: k\n"
                        "%s"
                        "  - name: big\n"
                        "    type: anthropic\n"
                        "    config: {apiKey: k}\n"
                        "  - {name: p, type: pool, backends: [a, b]}\n"
                        "routes:\n"
                        "  - name: chat\n"
                        "    path: /v1/chat/completions\n"
                        "    backend: p\n"
                        "%s",
                        b_type, extra_b, route_extra);
}

START_TEST(test_dispatch_keys)
{
    llmgw_config_t *cfg;
    const char *err;
    const llmgw_backend_t *a, *b, *big;
    const llmgw_route_t *r;

    ck_assert_msg(parse(recovery_yaml("anthropic",
                                      "      prefill: true\n      firstTokenTimeout: 1500ms\n"
                                      "      firstByteTimeout: 20s\n",
                                      "    streamRecovery: continue\n"),
                        &cfg, &err) == APR_SUCCESS,
                  "%s", err);
    a = llmgw_config_backend(cfg, "a");
    b = llmgw_config_backend(cfg, "b");
    big = llmgw_config_backend(cfg, "big");
    ck_assert_int_eq(b->prefill, 1);
    ck_assert_int_eq(a->prefill, 0);
    ck_assert_ptr_eq(a->context_fallback, big);
    ck_assert_str_eq(a->context_fallback_name, "big");
    ck_assert_ptr_null(b->context_fallback);
    ck_assert_int_eq(llmgw_backend_first_token_timeout(b), apr_time_from_msec(1500));
    /* Unset: as long as the first byte may take. */
    ck_assert_int_eq(a->first_token_timeout, LLMGW_UNSET);
    ck_assert_int_eq(llmgw_backend_first_token_timeout(a), LLMGW_DEFAULT_FIRST_BYTE_TIMEOUT);
    r = llmgw_config_route(cfg, "/v1/chat/completions");
    ck_assert_int_eq(r->stream_recovery, LLMGW_RECOVERY_CONTINUE);

    ck_assert_msg(
        parse(recovery_yaml("mistral", "      prefill: yes\n", "    streamRecovery: buffer\n"),
              &cfg, &err) == APR_SUCCESS,
        "%s", err);
    ck_assert_int_eq(llmgw_config_backend(cfg, "b")->prefill, 1);
    ck_assert_int_eq(llmgw_config_route(cfg, "/v1/chat/completions")->stream_recovery,
                     LLMGW_RECOVERY_BUFFER);

    ck_assert_msg(parse(recovery_yaml("openai", "", ""), &cfg, &err) == APR_SUCCESS, "%s", err);
    ck_assert_int_eq(llmgw_config_route(cfg, "/v1/chat/completions")->stream_recovery,
                     LLMGW_RECOVERY_NONE);
    ck_assert_int_eq(llmgw_backend_first_token_timeout(llmgw_config_backend(cfg, "b")),
                     LLMGW_DEFAULT_FIRST_BYTE_TIMEOUT);
}
END_TEST

static const struct {
    const char *b_type, *extra_b, *route_extra, *message;
} dispatch_errors[] = {
    /* providers.md documents a continuation only for Anthropic and Mistral. */
    {"openai", "      prefill: true\n", "",
     "t.yaml:9:7: backend \"b\": prefill is only valid for types anthropic, mistral, not openai"},
    {"meta", "      endpoint: http://h\n      prefill: true\n", "",
     "t.yaml:10:7: backend \"b\": prefill is only valid for types anthropic, mistral, not meta"},
    {"anthropic", "      prefill: sometimes\n", "",
     "t.yaml:9:16: backend \"b\": prefill must be true or false, not \"sometimes\""},
    {"anthropic", "      contextFallback: nowhere\n", "",
     "t.yaml:9:24: backend \"b\": backend \"nowhere\" is not defined"},
    {"anthropic", "      contextFallback: p\n", "",
     "t.yaml:9:24: backend \"b\": contextFallback must name a provider backend, not the pool "
     "\"p\""},
    {"anthropic", "      contextFallback: b\n", "",
     "t.yaml:9:24: backend \"b\": contextFallback names the backend itself"},
    {"anthropic", "      firstTokenTimeout: 3\n", "",
     "t.yaml:9:26: backend \"b\": firstTokenTimeout must be a duration with a unit"},
    {"anthropic", "      firstTokenTimeout: 0s\n", "",
     "t.yaml:9:26: backend \"b\": firstTokenTimeout must be longer than zero"},
    {"anthropic", "", "    streamRecovery: resume\n",
     "t.yaml:17:21: route \"chat\": streamRecovery must be one of none, continue, buffer, not "
     "\"resume\""},
};

START_TEST(test_dispatch_key_errors)
{
    llmgw_config_t *cfg = (llmgw_config_t *)1;
    const char *err;

    ck_assert_int_eq(parse(recovery_yaml(dispatch_errors[_i].b_type, dispatch_errors[_i].extra_b,
                                         dispatch_errors[_i].route_extra),
                           &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, dispatch_errors[_i].message) != NULL, "want \"%s\" in \"%s\"",
                  dispatch_errors[_i].message, err);
}
END_TEST

START_TEST(test_stream_recovery_only_for_chat)
{
    llmgw_config_t *cfg;
    const char *err;

    ck_assert_int_eq(parse("backends:\n  - {name: a, type: openai, config: {apiKey: k}}\n"
                           "routes:\n  - name: emb\n    path: /v1/embeddings\n    backend: a\n"
                           "    streamRecovery: buffer\n",
                           &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_ptr_nonnull(strstr(
        err, "t.yaml:7:21: route \"emb\": streamRecovery is only for chat, responses and messages "
             "routes, not an "
             "embeddings route"));
    /* "none" says what the default says: fine anywhere. */
    ck_assert_int_eq(parse("backends:\n  - {name: a, type: openai, config: {apiKey: k}}\n"
                           "routes:\n  - name: emb\n    path: /v1/embeddings\n    backend: a\n"
                           "    streamRecovery: none\n",
                           &cfg, &err),
                     APR_SUCCESS);
}
END_TEST

/* ---- imageFetch (google) ----------------------------------------------------- */

static const char *host_at(const llmgw_image_fetch_t *f, int i)
{
    return APR_ARRAY_IDX(f->allow_hosts, i, const char *);
}

START_TEST(test_image_fetch_defaults)
{
    const llmgw_backend_t *b = parse_backend_ok("google", "      apiKey: k\n");

    ck_assert_int_eq(b->image_fetch.allow_hosts->nelts, 0);
    ck_assert_int_eq(llmgw_image_fetch_max_bytes(&b->image_fetch), 20 * 1024 * 1024);
    ck_assert_int_eq(llmgw_image_fetch_timeout(&b->image_fetch), apr_time_from_sec(5));
    b = parse_backend_ok("google", "      apiKey: k\n      imageFetch: {}\n");
    ck_assert_int_eq(llmgw_image_fetch_max_bytes(&b->image_fetch), 20 * 1024 * 1024);
    ck_assert_int_eq(llmgw_image_fetch_timeout(&b->image_fetch), apr_time_from_sec(5));
}
END_TEST

START_TEST(test_image_fetch_settings)
{
    const llmgw_backend_t *b = parse_backend_ok(
        "google", "      apiKey: k\n"
                  "      imageFetch: { allowHosts: [\"images.example.internal\", \"127.0.0.1\"], "
                  "maxBytes: 20M, timeout: 5s }\n");

    ck_assert_int_eq(b->image_fetch.allow_hosts->nelts, 2);
    ck_assert_str_eq(host_at(&b->image_fetch, 0), "images.example.internal");
    ck_assert_str_eq(host_at(&b->image_fetch, 1), "127.0.0.1");
    ck_assert_int_eq(b->image_fetch.max_bytes, 20 * 1024 * 1024);
    ck_assert_int_eq(b->image_fetch.timeout, apr_time_from_sec(5));
    /* Names without case or trailing dot, IP literals in canonical form; block style too. */
    b = parse_backend_ok("google", "      apiKey: k\n"
                                   "      imageFetch:\n"
                                   "        allowHosts:\n"
                                   "          - Images.Example.Internal.\n"
                                   "          - \"[::0001]\"\n"
                                   "          - \"FE80:0:0::1\"\n"
                                   "        maxBytes: 512K\n"
                                   "        timeout: 750ms\n");
    ck_assert_str_eq(host_at(&b->image_fetch, 0), "images.example.internal");
    ck_assert_str_eq(host_at(&b->image_fetch, 1), "::1");
    ck_assert_str_eq(host_at(&b->image_fetch, 2), "fe80::1");
    ck_assert_int_eq(llmgw_image_fetch_max_bytes(&b->image_fetch), 512 * 1024);
    ck_assert_int_eq(llmgw_image_fetch_timeout(&b->image_fetch), apr_time_from_msec(750));
    /* Vertex AI backends fetch the same way. */
    b = parse_backend_ok("google", "      projectId: p\n      location: us-central1\n"
                                   "      imageFetch: {maxBytes: 1048576}\n");
    ck_assert_int_eq(b->image_fetch.max_bytes, 1024 * 1024);
}
END_TEST

static const struct {
    const char *type;
    const char *lines;
    const char *message; /* the whole message */
} image_fetch_errors[] = {
    {"google", "      apiKey: k\n      imageFetch: {allowHost: [a]}\n",
     "t.yaml:6:20: backend \"b\" imageFetch: unknown key \"allowHost\""},
    {"google", "      apiKey: k\n      imageFetch: true\n",
     "t.yaml:6:19: backend \"b\": imageFetch must be a mapping, not a scalar"},
    {"openai", "      apiKey: k\n      imageFetch: {maxBytes: 1M}\n",
     "t.yaml:6:7: backend \"b\": imageFetch is only valid for type google, not openai"},
    {"anthropic", "      apiKey: k\n      imageFetch: {}\n",
     "t.yaml:6:7: backend \"b\": imageFetch is only valid for type google, not anthropic"},
    {"google", "      apiKey: k\n      imageFetch: {maxBytes: 20X}\n",
     "t.yaml:6:30: backend \"b\" imageFetch: maxBytes must be a size such as 512K, 20M or 1G, not "
     "\"20X\""},
    {"google", "      apiKey: k\n      imageFetch: {maxBytes: 0}\n",
     "t.yaml:6:30: backend \"b\" imageFetch: maxBytes must be from 1 bytes to 1024M, not \"0\""},
    {"google", "      apiKey: k\n      imageFetch: {maxBytes: 2G}\n",
     "t.yaml:6:30: backend \"b\" imageFetch: maxBytes must be from 1 bytes to 1024M, not \"2G\""},
    {"google", "      apiKey: k\n      imageFetch: {maxBytes: 20 MB}\n",
     "t.yaml:6:30: backend \"b\" imageFetch: maxBytes must be a size such as 512K, 20M or 1G, not "
     "\"20 MB\""},
    {"google", "      apiKey: k\n      imageFetch: {timeout: 0s}\n",
     "t.yaml:6:29: backend \"b\" imageFetch: timeout must be longer than zero"},
    {"google", "      apiKey: k\n      imageFetch: {timeout: fast}\n",
     "t.yaml:6:29: backend \"b\" imageFetch: timeout must be a duration with a unit, such as "
     "250ms, 30s, 2m or 1h, not \"fast\""},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: 127.0.0.1}\n",
     "t.yaml:6:32: backend \"b\" imageFetch: allowHosts must be a sequence of host names, not a "
     "scalar"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"http://img.internal/\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts: \"http://img.internal/\" is not an IPv6 "
     "address (a port or a URL cannot be listed, only the host)"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"img.internal:8080\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts: \"img.internal:8080\" is not an IPv6 "
     "address (a port or a URL cannot be listed, only the host)"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"*.internal\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts: \"*.internal\": wildcards are not "
     "supported; list each host by name"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"img/x\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts: \"img/x\" is not a host name or an IP "
     "address"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"a..b\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts: \"a..b\" is not a host name or an IP "
     "address"},
    {"google", "      apiKey: k\n      imageFetch: {allowHosts: [\"\"]}\n",
     "t.yaml:6:33: backend \"b\" imageFetch: allowHosts must not be empty"},
};

START_TEST(test_image_fetch_errors)
{
    const char *err = parse_backend_err(image_fetch_errors[_i].type, image_fetch_errors[_i].lines);

    ck_assert_str_eq(err, image_fetch_errors[_i].message);
}
END_TEST

static const struct {
    const char *text;
    apr_off_t value;
} good_sizes[] = {
    {"0", 0},
    {"1", 1},
    {"1048576", 1048576},
    {"512K", 512 * 1024},
    {"512k", 512 * 1024},
    {"20M", 20 * 1024 * 1024},
    {"1G", (apr_off_t)1024 * 1024 * 1024},
};

static const char *const bad_sizes[] = {"",
                                        "M",
                                        "-1",
                                        "1.5M",
                                        "20MB",
                                        "20 M",
                                        " 1",
                                        "1T",
                                        "0x10",
                                        "99999999999999999999",
                                        "9999999999999G"};

START_TEST(test_size_parse)
{
    apr_off_t n = -1;
    apr_size_t i;

    for (i = 0; i < sizeof(good_sizes) / sizeof(good_sizes[0]); i++) {
        ck_assert_int_eq(llmgw_size_parse(good_sizes[i].text, &n), APR_SUCCESS);
        ck_assert_int_eq(n, good_sizes[i].value);
    }
    for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        n = 1234;
        ck_assert_msg(llmgw_size_parse(bad_sizes[i], &n) == APR_EINVAL, "accepted \"%s\"",
                      bad_sizes[i]);
        ck_assert_int_eq(n, 1234);
    }
    ck_assert_int_eq(llmgw_size_parse(NULL, &n), APR_EINVAL);
}
END_TEST

START_TEST(test_int_too_large)
{
    /* Integers too large for an int are refused, not wrapped into the range:
     * 2^32 + 10 would read as 10 in 32 bits. */
    static const char *const big[] = {"2147483648", "4294967306", "99999999999999999999"};
    apr_size_t i;

    for (i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        const char *err = parse_backend_err(
            "openai", apr_psprintf(test_pool, "      apiKey: k\n      maxRetries: %s\n", big[i]));
        ck_assert_msg(strstr(err, "maxRetries must be an integer from 0 to 10"), "%s: %s", big[i],
                      err);
    }
    ck_assert_int_eq(
        parse_backend_ok("openai", "      apiKey: k\n      maxRetries: 010\n")->max_retries, 10);
}
END_TEST

/* ---- strategies from the caller's resolver ---------------------------------- */

static apr_status_t first_listed(const llmgw_strategy_cand_t *cands, int n, apr_uint64_t seed,
                                 volatile apr_uint32_t *rr, int *order, int *n_usable)
{
    return llmgw_strategy_sort(cands, n, NULL, order, n_usable);
}

static const llmgw_strategy_t test_only = {"test-only", first_listed};
static const llmgw_strategy_t no_select = {"no-select", NULL};

/* What the httpd glue does with its provider registry, with a list instead. */
typedef struct {
    int calls;
    const char *last;
} resolver_log_t;

static const llmgw_strategy_t *test_resolve(void *baton, const char *name)
{
    resolver_log_t *log = baton;

    log->calls++;
    log->last = name;
    if (strcmp(name, "test-only") == 0)
        return &test_only;
    if (strcmp(name, "no-select") == 0)
        return &no_select;
    return llmgw_strategy_find(name);
}

static const char *const test_names[] = {"latency",    "weighted",  "round-robin", "priority",
                                         "least-busy", "test-only", NULL};

static const char *pool_yaml(const char *strategy_line)
{
    return apr_psprintf(test_pool,
                        "backends:\n"
                        "  - {name: a, type: openai, config: {apiKey: k}}\n"
                        "  - {name: b, type: openai, config: {apiKey: k}}\n"
                        "  - name: p\n"
                        "    type: pool\n"
                        "%s"
                        "    backends: [{name: a, weight: 0}, {name: b, weight: 0}]\n"
                        "routes: []\n",
                        strategy_line);
}

static apr_status_t parse_with(const char *text, resolver_log_t *log, llmgw_config_t **cfg,
                               const char **err)
{
    llmgw_config_opts_t opts = {test_resolve, log, test_names};

    *err = NULL;
    return llmgw_config_parse_opts(cfg, test_pool, test_pool, "t.yaml", text, strlen(text), &opts,
                                   err);
}

START_TEST(test_strategy_from_resolver)
{
    resolver_log_t log = {0};
    llmgw_config_t *cfg;
    const llmgw_backend_t *p;
    const char *err;
    apr_status_t rv = parse_with(pool_yaml("    strategy: test-only\n"), &log, &cfg, &err);

    ck_assert_msg(rv == APR_SUCCESS, "%s", err ? err : "?");
    p = llmgw_config_backend(cfg, "p");
    ck_assert_ptr_eq(p->strategy, &test_only);
    ck_assert_str_eq(p->strategy_name, "test-only");
    ck_assert_int_eq(log.calls, 1);
    ck_assert_str_eq(log.last, "test-only");
    /* Only a built-in name means a built-in to the default loader. */
    ck_assert_int_eq(parse(pool_yaml("    strategy: test-only\n"), &cfg, &err), LLMGW_ECONFIG);
    ck_assert_str_eq(err, "t.yaml:6:15: backend \"p\": strategy must be one of latency, weighted, "
                          "round-robin, priority, least-busy, not \"test-only\"");
}
END_TEST

START_TEST(test_strategy_builtin_through_resolver)
{
    resolver_log_t log = {0};
    llmgw_config_t *cfg;
    const char *err;

    ck_assert_int_eq(parse_with(pool_yaml("    strategy: least-busy\n"), &log, &cfg, &err),
                     APR_SUCCESS);
    ck_assert_ptr_eq(llmgw_config_backend(cfg, "p")->strategy, &llmgw_strategy_least_busy);
    /* No strategy: latency, without asking the resolver. */
    log.calls = 0;
    ck_assert_int_eq(parse_with(pool_yaml(""), &log, &cfg, &err), APR_SUCCESS);
    ck_assert_ptr_eq(llmgw_config_backend(cfg, "p")->strategy, &llmgw_strategy_latency);
    ck_assert_str_eq(llmgw_config_backend(cfg, "p")->strategy_name, "latency");
    ck_assert_int_eq(log.calls, 0);
}
END_TEST

START_TEST(test_strategy_unknown_lists_resolver_names)
{
    resolver_log_t log = {0};
    llmgw_config_t *cfg = (llmgw_config_t *)1;
    const char *err;

    ck_assert_int_eq(parse_with(pool_yaml("    strategy:   fastest\n"), &log, &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "t.yaml:6:17: backend \"p\": strategy must be one of latency, weighted, "
                          "round-robin, priority, least-busy, test-only, not \"fastest\"");
    ck_assert_int_eq(parse_with(pool_yaml("    strategy: no-select\n"), &log, &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_str_eq(err, "t.yaml:6:15: backend \"p\": strategy \"no-select\" is registered "
                          "without a select function");
}
END_TEST

/* All weights 0 only matter to the built-in weighted strategy. */
START_TEST(test_strategy_weight_check_is_weighted_only)
{
    resolver_log_t log = {0};
    llmgw_config_t *cfg;
    const char *err;

    ck_assert_int_eq(parse_with(pool_yaml("    strategy: weighted\n"), &log, &cfg, &err),
                     LLMGW_ECONFIG);
    ck_assert_str_eq(err, "t.yaml:7:15: backend \"p\": a weighted pool needs at least one member "
                          "with a weight above 0");
    ck_assert_int_eq(parse(pool_yaml("    strategy: weighted\n"), &cfg, &err), LLMGW_ECONFIG);
    ck_assert_int_eq(parse_with(pool_yaml("    strategy: test-only\n"), &log, &cfg, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(parse(pool_yaml("    strategy: priority\n"), &cfg, &err), APR_SUCCESS);
}
END_TEST

/* ---- secrets never reach a message ----------------------------------------- */

static const char *const secret_cases[] = {
    "backends:\n  - {name: a, type: openai, config: {apiKey: '${OPENAI_API_KEY}', maxRetries: "
    "many}}\nroutes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k, maxRetries: '${OPENAI_API_KEY}'}}\n"
    "routes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k, timeout: '${OPENAI_API_KEY}'}}\n"
    "routes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k, endpoint: '${OPENAI_API_KEY}'}}\n"
    "routes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k, unsupportedParams: "
    "'${OPENAI_API_KEY}'}}\nroutes: []\n",
    "backends:\n  - {name: a, type: '${OPENAI_API_KEY}', config: {apiKey: k}}\nroutes: []\n",
    "backends:\n  - {name: '${OPENAI_API_KEY}', type: openai, config: {apiKey: k}}\nroutes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\n  - {name: p, type: pool, "
    "backends: ['${OPENAI_API_KEY}']}\nroutes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\nroutes:\n  - {name: c, path: "
    "/v1/models, backend: '${OPENAI_API_KEY}'}\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\nroutes:\n  - {name: c, path: "
    "/v1/models, methods: ['${OPENAI_API_KEY}'], backend: a}\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\nroutes:\n  - {name: c, path: "
    "'${OPENAI_API_KEY}', backend: a}\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\n  - {name: p, type: pool, "
    "fallback: '${OPENAI_API_KEY}', backends: [a]}\nroutes: []\n",
    "backends:\n  - {name: a, type: openai, config: {apiKey: k}}\n  - {name: p, type: pool, "
    "strategy: '${OPENAI_API_KEY}', backends: [a]}\nroutes: []\n",
};

static void secret_setup(void)
{
    test_pool_setup();
    setenv("OPENAI_API_KEY", SECRET, 1);
}

START_TEST(test_secret_not_in_message)
{
    llmgw_config_t *cfg;
    const char *err;
    apr_status_t rv = parse(secret_cases[_i], &cfg, &err);

    ck_assert_msg(rv == LLMGW_ECONFIG, "case %d accepted", _i);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "MARKER") == NULL, "case %d leaks the secret: %s", _i, err);
    ck_assert_msg(strstr(err, "syntax") == NULL, "case %d: %s", _i, err);
    ck_assert_msg(strstr(err, "t.yaml:2:") || strstr(err, "t.yaml:3:") || strstr(err, "t.yaml:4:"),
                  "case %d: %s", _i, err);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("full");
    int n;

    tcase_add_checked_fixture(tc, full_setup, test_pool_teardown);
    tcase_add_test(tc, test_full_providers);
    tcase_add_test(tc, test_full_pools);
    tcase_add_test(tc, test_full_routes);
    tcase_add_test(tc, test_serves);
    tcase_add_test(tc, test_type_names);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_booleans);
    tcase_add_test(tc, test_null_optional_is_absent);
    suite_add_tcase(s, tc);

    tc = tcase_create("env");
    tcase_add_checked_fixture(tc, env_setup, test_pool_teardown);
    tcase_add_test(tc, test_env_set);
    tcase_add_test(tc, test_env_default);
    tcase_add_test(tc, test_env_several);
    tcase_add_test(tc, test_env_literal_dollar);
    tcase_add_test(tc, test_env_unset_required);
    tcase_add_test(tc, test_env_unset_optional);
    tcase_add_test(tc, test_env_unset_optional_inside_text);
    tcase_add_test(tc, test_env_malformed);
    suite_add_tcase(s, tc);

    tc = tcase_create("duration");
    n = (int)(sizeof(good_durations) / sizeof(good_durations[0]));
    tcase_add_loop_test(tc, test_duration_good, 0, n);
    n = (int)(sizeof(bad_durations) / sizeof(bad_durations[0]));
    tcase_add_loop_test(tc, test_duration_bad, 0, n);
    tcase_add_test(tc, test_duration_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_add_checked_fixture(tc, invalid_setup, test_pool_teardown);
    tcase_add_loop_test(tc, test_invalid_file, 0, (int)(sizeof(invalid) / sizeof(invalid[0])));
    tcase_add_test(tc, test_unreadable_file);
    tcase_add_test(tc, test_empty_gateway);
    tcase_add_test(tc, test_invalid_inline);
    suite_add_tcase(s, tc);

    tc = tcase_create("strategies");
    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, test_image_fetch_defaults);
    tcase_add_test(tc, test_image_fetch_settings);
    tcase_add_loop_test(tc, test_image_fetch_errors, 0,
                        (int)(sizeof(image_fetch_errors) / sizeof(image_fetch_errors[0])));
    tcase_add_test(tc, test_size_parse);
    tcase_add_test(tc, test_int_too_large);
    tcase_add_test(tc, test_strategy_from_resolver);
    tcase_add_test(tc, test_strategy_builtin_through_resolver);
    tcase_add_test(tc, test_strategy_unknown_lists_resolver_names);
    tcase_add_test(tc, test_strategy_weight_check_is_weighted_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, test_dispatch_keys);
    tcase_add_loop_test(tc, test_dispatch_key_errors, 0,
                        (int)(sizeof(dispatch_errors) / sizeof(dispatch_errors[0])));
    tcase_add_test(tc, test_stream_recovery_only_for_chat);
    suite_add_tcase(s, tc);

    tc = tcase_create("secrets");
    tcase_add_checked_fixture(tc, secret_setup, test_pool_teardown);
    n = (int)(sizeof(secret_cases) / sizeof(secret_cases[0]));
    tcase_add_loop_test(tc, test_secret_not_in_message, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(config_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
