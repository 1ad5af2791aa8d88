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
 * The pick list is the openai answer's (src/providers/llmgw_openai_compat.c)
 * plus names that occur at several depths in the seeds ("content", "index",
 * "type"), so that the search by name is tried where a wrong match would
 * show.
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
static const llmgw_json_pick_t pick_answer[] = {
    {"model", NULL, 0},          {"usage", pick_usage, 0}, {"choices", NULL, 1}, {"data", NULL, 1},
    {"message", pick_nested, 0}, {"type", NULL, 0},        {"", NULL, 0},        {NULL, NULL, 0}};

/* @p got (the pick) holds what @p list names of @p full (jansson's), and nothing else. */
static void check_members(const json_t *got, const json_t *full, const llmgw_json_pick_t *list)
{
    size_t kept = 0;

    FUZZ_CHECK(json_is_object(got) && json_is_object(full));
    for (; list->name; list++) {
        const json_t *g = json_object_get(got, list->name);
        const json_t *f = json_object_get(full, list->name);

        FUZZ_CHECK((g == NULL) == (f == NULL));
        if (!f)
            continue;
        kept++;
        if (list->sub && json_is_object(f))
            check_members(g, f, list->sub);
        else if (list->shape_only && (json_is_object(f) || json_is_array(f)))
            FUZZ_CHECK(json_typeof(g) == json_typeof(f) &&
                       (json_is_object(g) ? json_object_size(g) : json_array_size(g)) == 0);
        else
            FUZZ_CHECK(json_equal(g, f));
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
