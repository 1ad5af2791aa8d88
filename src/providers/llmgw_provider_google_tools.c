/*
 * The `google` translator's tools (providers.md 6.5): OpenAI tools and
 * tool_choice (legacy functions / function_call included) to
 * functionDeclarations with schemas Gemini accepts, and toolConfig. Part of
 * the request side (llmgw_provider_google_request.c).
 */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_provider.h"
#include "llmgw_provider_util.h"
#include "llmgw_json.h"
#include "llmgw_provider_google_private.h"

typedef llmgw_google_rq_t rq_t;

/* ---------------------------------------------------------------------- */
/* Request translation: tools                                             */
/* ---------------------------------------------------------------------- */

/* Gemini function names: [A-Za-z_][A-Za-z0-9_.:-]{0,127}. */
static int gemini_name_ok(const char *name)
{
    const char *s;

    if (!(apr_isalpha(*name) || *name == '_') || strlen(name) > 128)
        return 0;
    for (s = name + 1; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("_.:-", *s))
            return 0;
    }
    return 1;
}

/* One OpenAI function definition -> a functionDeclaration (new reference). */
static apr_status_t declaration(rq_t *rq, const json_t *fn, const char *path, json_t **out)
{
    const char *name = llmgw_json_str(fn, "name");
    json_t *desc = json_object_get(fn, "description");
    json_t *params = json_object_get(fn, "parameters");
    json_t *d;

    if (!json_is_object(fn))
        return llmgw_google_rq_type(rq, path, "an object");
    if (!name)
        return llmgw_google_rq_fail(rq, "missing_required_parameter",
                                    apr_pstrcat(rq->p, path, ".name", NULL),
                                    "Missing required parameter: '%s.name'.", path);
    if (!gemini_name_ok(name))
        return llmgw_google_rq_fail(
            rq, "invalid_value", apr_pstrcat(rq->p, path, ".name", NULL),
            "Function name '%s' is not valid for Gemini: it must start with a letter "
            "or '_' and use only letters, digits, '_', '.', ':' and '-' (at most 128).",
            name);
    if (!llmgw_json_is_absent(desc) && !json_is_string(desc))
        return llmgw_google_rq_type(rq, apr_pstrcat(rq->p, path, ".description", NULL), "a string");
    if (!llmgw_json_is_absent(params) && !json_is_object(params))
        return llmgw_google_rq_type(rq, apr_pstrcat(rq->p, path, ".parameters", NULL), "an object");
    d = json_pack("{s:s}", "name", name);
    if (json_is_string(desc))
        json_object_set(d, "description", desc);
    /* Plain JSON Schema as it is (6.5 Rule); `strict` is OpenAI's only. */
    if (json_is_object(params))
        json_object_set(d, "parametersJsonSchema", params);
    *out = d;
    return APR_SUCCESS;
}

/* tools (or legacy functions) -> declarations, in the client's order. */
static apr_status_t collect_declarations(rq_t *rq, json_t *decls)
{
    json_t *tools = json_object_get(rq->in, "tools");
    json_t *functions = json_object_get(rq->in, "functions");
    size_t i;
    json_t *t, *d;
    apr_status_t rv;

    if (llmgw_json_is_absent(tools) && json_is_array(functions)) {
        rq->legacy = 1;
        json_array_foreach (functions, i, t) {
            if ((rv = declaration(rq, t, apr_psprintf(rq->p, "functions[%" APR_SIZE_T_FMT "]", i),
                                  &d)) != APR_SUCCESS)
                return rv;
            json_array_append_new(decls, d);
        }
        return APR_SUCCESS;
    }
    if (!llmgw_json_is_absent(functions) && !json_is_array(functions))
        return llmgw_google_rq_type(rq, "functions", "an array");
    if (llmgw_json_is_absent(tools))
        return APR_SUCCESS;
    if (!json_is_array(tools))
        return llmgw_google_rq_type(rq, "tools", "an array");
    json_array_foreach (tools, i, t) {
        const char *path = apr_psprintf(rq->p, "tools[%" APR_SIZE_T_FMT "]", i);
        const char *type = llmgw_json_str(t, "type");

        if (type && strcmp(type, "custom") == 0)
            return llmgw_google_rq_fail(
                rq, "unsupported_value", apr_pstrcat(rq->p, path, ".type", NULL),
                "Custom tools are not supported by the google backend; use function "
                "tools.");
        if (!type || strcmp(type, "function") != 0)
            return llmgw_google_rq_fail(rq, "invalid_value",
                                        apr_pstrcat(rq->p, path, ".type", NULL),
                                        "Invalid value for '%s.type': expected 'function'.", path);
        rv = declaration(rq, json_object_get(t, "function"),
                         apr_pstrcat(rq->p, path, ".function", NULL), &d);
        if (rv != APR_SUCCESS)
            return rv;
        json_array_append_new(decls, d);
    }
    return APR_SUCCESS;
}

static int declared(const json_t *decls, const char *name)
{
    size_t i;
    json_t *d;

    json_array_foreach (decls, i, d) {
        if (strcmp(llmgw_json_str(d, "name"), name) == 0)
            return 1;
    }
    return 0;
}

/* The function name of {"type":"function","function":{"name":N}} (or legacy {"name":N}). */
static const char *choice_name(const json_t *tc)
{
    const char *name = llmgw_json_str(json_object_get(tc, "function"), "name");
    return name ? name : llmgw_json_str(tc, "name");
}

/* allowed_tools: names of the listed function tools, all declared. */
static apr_status_t allowed_names(rq_t *rq, const json_t *at, const json_t *decls, json_t *names)
{
    json_t *list = json_object_get(at, "tools");
    size_t i;
    json_t *t;

    if (!json_is_array(list) || json_array_size(list) == 0)
        return llmgw_google_rq_type(rq, "tool_choice.allowed_tools.tools", "a non-empty array");
    json_array_foreach (list, i, t) {
        const char *name = choice_name(t);
        if (!name || !declared(decls, name))
            return llmgw_google_rq_fail(rq, "invalid_value", "tool_choice.allowed_tools.tools",
                                        "tool_choice.allowed_tools.tools[%" APR_SIZE_T_FMT
                                        "] names no declared function.",
                                        i);
        json_array_append_new(names, json_string(name));
    }
    return APR_SUCCESS;
}

/* Keep only the declarations named in @p names (allowed_tools with mode auto). */
static void keep_declarations(json_t *decls, const json_t *names)
{
    size_t i = 0;

    while (i < json_array_size(decls)) {
        const char *name = llmgw_json_str(json_array_get(decls, i), "name");
        size_t j;
        json_t *n;
        int keep = 0;

        json_array_foreach (names, j, n) {
            if (strcmp(json_string_value(n), name) == 0)
                keep = 1;
        }
        if (keep)
            i++;
        else
            json_array_remove(decls, i);
    }
}

/* tool_choice (or legacy function_call) -> functionCallingConfig, NULL for "absent". */
static apr_status_t map_tool_choice(rq_t *rq, json_t *decls, json_t **fcc)
{
    const char *key = rq->legacy ? "function_call" : "tool_choice";
    json_t *tc = json_object_get(rq->in, key);
    const char *mode = json_is_string(tc) ? json_string_value(tc) : NULL;
    const char *type = llmgw_json_str(tc, "type");
    json_t *names;
    apr_status_t rv;

    *fcc = NULL;
    if (llmgw_json_is_absent(tc))
        return APR_SUCCESS;
    if (mode && (strcmp(mode, "auto") == 0 || strcmp(mode, "none") == 0)) {
        *fcc = json_pack("{s:s}", "mode", strcmp(mode, "auto") == 0 ? "AUTO" : "NONE");
        return APR_SUCCESS;
    }
    if (mode && strcmp(mode, "required") == 0 && !rq->legacy) {
        *fcc = json_pack("{s:s}", "mode", "ANY");
        return APR_SUCCESS;
    }
    if (mode || !json_is_object(tc))
        return llmgw_google_rq_fail(rq, "invalid_value", key, "Invalid value for '%s'.", key);
    if (type && strcmp(type, "custom") == 0)
        return llmgw_google_rq_fail(rq, "unsupported_value", key,
                                    "Custom tools are not supported by the google backend.");
    if (type && strcmp(type, "allowed_tools") == 0) {
        json_t *at = json_object_get(tc, "allowed_tools");
        const char *m = llmgw_json_str(at, "mode");
        int required = m && strcmp(m, "required") == 0;

        if (!m || (!required && strcmp(m, "auto") != 0))
            return llmgw_google_rq_fail(rq, "invalid_value", "tool_choice.allowed_tools.mode",
                                        "Invalid value for 'tool_choice.allowed_tools.mode'.");
        names = json_array();
        if ((rv = allowed_names(rq, at, decls, names)) != APR_SUCCESS) {
            json_decref(names);
            return rv;
        }
        if (!required) {
            keep_declarations(decls, names);
            json_decref(names);
            *fcc = json_pack("{s:s}", "mode", "AUTO");
            return APR_SUCCESS;
        }
        *fcc = json_pack("{s:s, s:o}", "mode", "ANY", "allowedFunctionNames", names);
        return APR_SUCCESS;
    }
    if (!choice_name(tc) || (type && strcmp(type, "function") != 0))
        return llmgw_google_rq_fail(rq, "invalid_value", key, "Invalid value for '%s'.", key);
    if (!declared(decls, choice_name(tc)))
        return llmgw_google_rq_fail(rq, "invalid_value", key,
                                    "'%s' names function '%s', which is not declared.", key,
                                    choice_name(tc));
    *fcc = json_pack("{s:s, s:[s]}", "mode", "ANY", "allowedFunctionNames", choice_name(tc));
    return APR_SUCCESS;
}

apr_status_t llmgw_google_build_tools(rq_t *rq, json_t *body)
{
    json_t *decls = json_array();
    json_t *fcc = NULL;
    apr_status_t rv;

    if ((rv = collect_declarations(rq, decls)) != APR_SUCCESS ||
        (json_array_size(decls) > 0 && (rv = map_tool_choice(rq, decls, &fcc)) != APR_SUCCESS)) {
        json_decref(decls);
        return rv;
    }
    if (json_array_size(decls) == 0) {
        const char *key = rq->legacy ? "function_call" : "tool_choice";
        const char *mode = llmgw_json_str(rq->in, key);
        json_t *tc = json_object_get(rq->in, key);

        json_decref(decls);
        /* Forcing a call without any function to call cannot be honoured. */
        if (!llmgw_json_is_absent(tc) &&
            !(mode && (strcmp(mode, "none") == 0 || strcmp(mode, "auto") == 0)))
            return llmgw_google_rq_fail(rq, "invalid_value", key,
                                        "'%s' requires at least one function in 'tools'.", key);
        return APR_SUCCESS;
    }
    json_object_set_new(body, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
    if (fcc)
        json_object_set_new(body, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fcc));
    return APR_SUCCESS;
}
