/*
 * llmgw_json_pick against jansson, differentially: the input is an upstream
 * answer. Whenever the recogniser reads it (non-NULL), jansson must accept
 * the same bytes as one object (json_loadb, JSON_ALLOW_NUL, as the full
 * parse does), the bytes must be fit to forward verbatim, and every member
 * the pick list names must be exactly jansson's: present in both or in
 * neither, equal where kept whole, of the same type (and empty) where only
 * its shape is kept, and compared member by member where a sub-list keeps
 * part of an object. The recogniser may decline what jansson accepts (the
 * caller then parses in full), never the other way round.
 *
 * The pick list is the openai answer's and stream chunk's
 * (src/providers/llmgw_openai_compat.c: a sub-list over the objects of an
 * array, "*" for the members a list does not name) plus names that occur
 * at several depths in the seeds ("content", "index", "type"), so that the
 * search by name is tried where a wrong match would show.
 */
#include <string.h>
#include <jansson.h>
#include "fuzz.h"
#include "llmgw_json.h"

static const llmgw_json_pick_t pick_cached[] = {{"cached_tokens", NULL, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_reasoning[] = {{"reasoning_tokens", NULL, 0}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_usage[] = {{"prompt_tokens", NULL, 0},
                                               {"completion_tokens", NULL, 0},
                                               {"total_tokens", NULL, 0},
                                               {"prompt_tokens_details", pick_cached, 0},
                                               {"completion_tokens_details", pick_reasoning, 0},
                                               {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_nested[] = {
    {"content", NULL, 0}, {"index", NULL, 0}, {NULL, NULL, 0}};
/* The openai stream chunk's (choices[].delta), with "*" for every other member. */
static const llmgw_json_pick_t pick_delta[] = {
    {"role", NULL, 0}, {"content", NULL, 0}, {"*", NULL, 1}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_choice[] = {{"index", NULL, 0},
                                                {"finish_reason", NULL, 0},
                                                {"logprobs", NULL, 1},
                                                {"delta", pick_delta, 0},
                                                {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_answer[] = {{"model", NULL, 0},
                                                {"usage", pick_usage, 0},
                                                {"choices", pick_choice, 0},
                                                {"data", NULL, 1},
                                                {"message", pick_nested, 0},
                                                {"type", NULL, 0},
                                                {"", NULL, 0},
                                                {NULL, NULL, 0}};

static void check_members(const json_t *got, const json_t *full, const llmgw_json_pick_t *list);

/* One kept value against jansson's, as entry @p m keeps it. */
static void check_value(const json_t *g, const json_t *f, const llmgw_json_pick_t *m)
{
    size_t i;

    if (m->sub && json_is_object(f)) {
        check_members(g, f, m->sub);
    }
    else if (m->sub && json_is_array(f)) {
        FUZZ_CHECK(json_is_array(g) && json_array_size(g) == json_array_size(f));
        for (i = 0; i < json_array_size(f); i++)
            check_value(json_array_get(g, i), json_array_get(f, i), m);
    }
    else if (m->shape_only && (json_is_object(f) || json_is_array(f))) {
        FUZZ_CHECK(json_typeof(g) == json_typeof(f) &&
                   (json_is_object(g) ? json_object_size(g) : json_array_size(g)) == 0);
    }
    else {
        FUZZ_CHECK(json_equal(g, f));
    }
}

/* The entry for @p key in @p list: its own, else "*", else NULL. */
static const llmgw_json_pick_t *entry_for(const llmgw_json_pick_t *list, const char *key)
{
    const llmgw_json_pick_t *any = NULL;

    for (; list->name; list++) {
        if (strcmp(list->name, key) == 0)
            return list;
        if (strcmp(list->name, "*") == 0)
            any = list;
    }
    return any;
}

/* @p got (the pick) holds what @p list names of @p full (jansson's), and nothing else. */
static void check_members(const json_t *got, const json_t *full, const llmgw_json_pick_t *list)
{
    const char *key;
    json_t *f;
    size_t kept = 0;

    FUZZ_CHECK(json_is_object(got) && json_is_object(full));
    json_object_foreach ((json_t *)full, key, f) {
        const llmgw_json_pick_t *m = entry_for(list, key);
        const json_t *g = json_object_get(got, key);

        if (!m)
            continue;
        FUZZ_CHECK(g != NULL);
        kept++;
        check_value(g, f, m);
    }
    FUZZ_CHECK(json_object_size(got) == kept);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *got = llmgw_json_pick(text, size, pick_answer);
    json_t *full;

    if (!got)
        return 0;
    full = json_loadb(text, size, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(full != NULL);
    FUZZ_CHECK(llmgw_json_verbatim_ok(text, size));
    check_members(got, full, pick_answer);
    json_decref(full);
    json_decref(got);
    return 0;
}
