/*
 * llmgw_json_pick against jansson, differentially: the input is an upstream
 * answer. Whenever the recogniser reads it (non-NULL), jansson must accept
 * the same bytes as one object (json_loadb, JSON_ALLOW_NUL, as the full
 * parse does), the bytes must be fit to forward verbatim, and every member
 * a pick list names must be exactly jansson's: present in both or in
 * neither, equal where kept whole, of the same type (and empty) where only
 * its shape is kept, and compared member by member where a sub-list keeps
 * part of an object (or of each object of an array). The recogniser may
 * decline what jansson accepts (the caller then parses in full), never the
 * other way round. Kept members come in jansson's order. Each input is read
 * with every list below, and by llmgw_json_load, which must answer exactly
 * what json_loadb answers, with and without JSON_ALLOW_NUL.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "fuzz.h"
#include "llmgw_json.h"
#include "../../src/providers/llmgw_openai_compat.h"

/*
 * The lists the gateway runs (llmgw_openai_compat.c), and one more that
 * names the same members at several depths ("content", "index", "type", the
 * empty name) and uses every form: a sub-list over an object and over the
 * objects of an array, shape only, "*".
 */
static const llmgw_json_pick_t pick_nested[] = {
    {"content", NULL, 0}, {"index", NULL, 0}, {"*", NULL, 1}, {NULL, NULL, 0}};
static const llmgw_json_pick_t pick_mixed[] = {{"model", NULL, 0},
                                               {"usage", pick_nested, 0},
                                               {"choices", pick_nested, 0},
                                               {"data", NULL, 1},
                                               {"message", pick_nested, 0},
                                               {"type", NULL, 0},
                                               {"", NULL, 0},
                                               {NULL, NULL, 0}};
static const llmgw_json_pick_t *const lists[] = {llmgw_oai_pick_answer, llmgw_oai_pick_chunk,
                                                 pick_mixed, llmgw_json_pick_all};

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
    void *order;

    FUZZ_CHECK(json_is_object(got) && json_is_object(full));
    order = json_object_iter((json_t *)got);
    json_object_foreach ((json_t *)full, key, f) {
        const llmgw_json_pick_t *m = entry_for(list, key);
        const json_t *g = json_object_get(got, key);

        if (!m)
            continue;
        FUZZ_CHECK(g != NULL);
        /* A translator serialises what it read: the members' order is kept. */
        FUZZ_CHECK(order && strcmp(json_object_iter_key(order), key) == 0);
        order = json_object_iter_next((json_t *)got, order);
        kept++;
        check_value(g, f, m);
    }
    FUZZ_CHECK(json_object_size(got) == kept);
}

/* The text without bytes [cut->from, cut->to) is @p full without "usage". */
static void check_cut(const char *text, size_t size, const json_t *full,
                      const llmgw_json_cut_t *cut)
{
    json_t *expected, *spliced;
    char *rest;

    FUZZ_CHECK((cut->to > cut->from) == (json_object_get(full, "usage") != NULL));
    if (cut->to <= cut->from)
        return;
    FUZZ_CHECK(cut->to <= size);
    rest = malloc(size - (cut->to - cut->from) + 1);
    FUZZ_CHECK(rest != NULL);
    memcpy(rest, text, cut->from);
    memcpy(rest + cut->from, text + cut->to, size - cut->to);
    spliced = json_loadb(rest, size - (cut->to - cut->from), JSON_ALLOW_NUL, NULL);
    expected = json_deep_copy(full);
    json_object_del(expected, "usage");
    FUZZ_CHECK(spliced != NULL && json_equal(spliced, expected));
    json_decref(spliced);
    json_decref(expected);
    free(rest);
}

/* jansson's reading of the input, once it is needed: it must accept what the recogniser read. */
static json_t *full_of(const char *text, size_t size, json_t **full)
{
    if (!*full)
        *full = json_loadb(text, size, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(*full != NULL);
    FUZZ_CHECK(llmgw_json_verbatim_ok(text, size));
    return *full;
}

/* llmgw_json_load is json_loadb with @p flags: the same value (and order), or NULL for both. */
static void check_load(const char *text, size_t size, size_t flags)
{
    json_t *fast = llmgw_json_load(text, size, flags, NULL);
    json_t *full = json_loadb(text, size, flags, NULL);

    FUZZ_CHECK((fast == NULL) == (full == NULL));
    if (fast && json_is_object(full))
        check_members(fast, full, llmgw_json_pick_all);
    else if (fast)
        FUZZ_CHECK(json_equal(fast, full));
    json_decref(fast);
    json_decref(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *full = NULL, *got;
    llmgw_json_cut_t cut;
    size_t i;

    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if ((got = llmgw_json_pick(text, size, lists[i])) != NULL) {
            check_members(got, full_of(text, size, &full), lists[i]);
            json_decref(got);
        }
        if ((got = llmgw_json_pick_cut(text, size, lists[i], "usage", &cut)) != NULL) {
            check_members(got, full_of(text, size, &full), lists[i]);
            check_cut(text, size, full, &cut);
            json_decref(got);
        }
    }
    json_decref(full);
    check_load(text, size, JSON_ALLOW_NUL);
    check_load(text, size, 0);
    return 0;
}
