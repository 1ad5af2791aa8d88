/**
 * @file llmgw_json.h
 * @brief jansson helpers tied to APR pools.
 */
#ifndef LLMGW_JSON_H
#define LLMGW_JSON_H

#include <jansson.h>
#include "llmgw.h"

/** Register json_decref of @p j on @p p; returns @p j (the pool now owns that reference). */
json_t *llmgw_json_pool_own(apr_pool_t *p, json_t *j);

/**
 * Serialise @p j compactly into memory from @p p: one pass of jansson's
 * serialiser (into a growable buffer), then one exact-size copy into @p p.
 */
const char *llmgw_json_dump(apr_pool_t *p, const json_t *j, apr_size_t *len);

/** Bytes kept inside an llmgw_json_buf_t before it spills to the heap. */
#define LLMGW_JSON_BUF_INLINE 2048

/**
 * A growable byte buffer for framing serialised JSON in one pass (jansson's
 * json_dumpb sizes by serialising, so size-then-write costs two passes). It
 * starts in its own inline storage (usually on the caller's stack) and moves
 * to malloc'd memory when it outgrows it; llmgw_json_buf_free releases that.
 *
 * It does not sit on llmgw_buf_t (llmgw_buf.h), on purpose: it frames one
 * SSE event per upstream chunk, and its inline storage is what keeps that
 * hot path free of malloc for the usual small event. llmgw_buf_t owns its
 * bytes (realloc from NULL); to start in borrowed storage it would need an
 * "is this mine" flag checked on every add and free by all its users, and
 * the sticky `failed` state that json_dump_callback needs would ride along
 * too. Two small buffers with one job each read better than one with both.
 */
typedef struct {
    char *data;
    apr_size_t len;
    apr_size_t cap;
    int failed; /**< an allocation failed: the contents are incomplete */
    char inline_data[LLMGW_JSON_BUF_INLINE];
} llmgw_json_buf_t;

/** Start @p b empty, in its inline storage. */
void llmgw_json_buf_init(llmgw_json_buf_t *b);

/** Append @p n bytes; APR_ENOMEM (and b->failed) when memory runs out. */
apr_status_t llmgw_json_buf_add(llmgw_json_buf_t *b, const char *data, apr_size_t n);

/**
 * Append the compact serialisation of @p j in one pass. APR_ENOMEM when
 * memory runs out, APR_EINVAL when jansson cannot serialise @p j (it then
 * wrote nothing usable: b->len is restored).
 */
apr_status_t llmgw_json_buf_dump(llmgw_json_buf_t *b, const json_t *j);

/** Release heap memory @p b may hold; it is empty again afterwards. */
void llmgw_json_buf_free(llmgw_json_buf_t *b);

/*
 * Writing a document of known shape straight into a buffer, for the
 * translators' answers and chunks: the caller writes the punctuation and
 * member names (llmgw_json_buf_lit), these write the values. The bytes are
 * what json_dump_callback with JSON_COMPACT gives for the same tree, so a
 * client cannot tell the two apart; what a value needs escaped or checked
 * (quotes, control characters, anything beyond ASCII) is left to jansson.
 * Building the tree and dumping it costs one allocation per value and a
 * loop check per container; writing costs neither. Any failure sets
 * b->failed: the document is then incomplete and must not be used.
 */

/** Append the string literal @p s (punctuation, member names that need no escaping); its
 *  size is taken with sizeof, so anything but a literal fails to compile ("" s). */
#define llmgw_json_buf_lit(b, s) llmgw_json_buf_add((b), "" s, sizeof(s) - 1)

/** Append @p n bytes of UTF-8 as a JSON string; APR_EINVAL (b->failed) when not UTF-8. */
apr_status_t llmgw_json_buf_strn(llmgw_json_buf_t *b, const char *s, apr_size_t n);

/** llmgw_json_buf_strn of the NUL-terminated @p s; APR_EINVAL (b->failed) for NULL. */
apr_status_t llmgw_json_buf_str(llmgw_json_buf_t *b, const char *s);

/** Append @p v as a JSON integer. */
apr_status_t llmgw_json_buf_int(llmgw_json_buf_t *b, apr_int64_t v);

/** Append any jansson value @p v (NULL writes null), as json_dump_callback would. */
apr_status_t llmgw_json_buf_value(llmgw_json_buf_t *b, const json_t *v);

/** String member of an object, or NULL when absent or not a string. Borrowed. */
const char *llmgw_json_str(const json_t *obj, const char *key);

/**
 * May bytes json_loadb accepted go on verbatim, as JSON for any other parser?
 * jansson 2.14 is more lenient than JSON.parse in one way: it takes a raw
 * NUL byte after a number or a literal (`"created":1\0,`). Such bytes must
 * be serialised anew (from what jansson parsed) before they are forwarded.
 * Returns 0 when @p text (counted by @p len) holds a NUL byte.
 */
int llmgw_json_verbatim_ok(const char *text, apr_size_t len);

/** @p v is missing (NULL, as json_object_get answers for an absent member) or JSON null. */
int llmgw_json_is_absent(const json_t *v);

/**
 * One member kept by llmgw_json_pick; a list ends with a NULL name. The
 * name "*" stands for every member the list does not name.
 */
typedef struct llmgw_json_pick_t {
    const char *name;
    /**
     * When the value is an object: keep only these of its members; when an
     * array: the same for each object in it (and in arrays nested in it).
     * NULL: the whole value.
     */
    const struct llmgw_json_pick_t *sub;
    /** When the value is an array or object (and sub is NULL): keep it empty. */
    int shape_only;
} llmgw_json_pick_t;

/**
 * The members @p pick names of the JSON object @p text, as json_loadb (with
 * JSON_ALLOW_NUL) would read them, without building the rest of the
 * document: a new object holding only those members (recursively, for
 * members with a sub-list), each value jansson's reading of its own bytes
 * (literals, short integers and strings are made directly,
 * as jansson would make them).
 * For answers forwarded verbatim, whose size the gateway does not need to
 * read in full (llmgw_json_pick.c).
 *
 * NULL whenever the text is not certainly one object jansson accepts, with
 * only whitespace after it (the recogniser declines rare forms too: escaped
 * keys, \u0000, surrogate escapes, very long integers, reals near the double
 * range, nesting past 64): the caller then parses in full, and sees the
 * same values or the same refusal. When not NULL, the text holds no NUL
 * byte, so llmgw_json_verbatim_ok(text, len) holds too.
 */
json_t *llmgw_json_pick(const char *text, apr_size_t len, const llmgw_json_pick_t *pick);

/** The pick list that keeps every member at every depth (llmgw_json_load). */
extern const llmgw_json_pick_t llmgw_json_pick_all[];

/**
 * json_loadb(@p text, @p len, @p flags, @p err), the same value (members in
 * the same order) or the same refusal, at about a quarter of jansson's cost
 * for the documents the gateway reads: an object is read by the scan of
 * llmgw_json_pick with llmgw_json_pick_all; whatever the scan declines, and
 * any flag but JSON_ALLOW_NUL, goes to json_loadb. @p err is filled only
 * when jansson reads the text. For every request body, answer and stream
 * event the gateway reads.
 */
json_t *llmgw_json_load(const char *text, apr_size_t len, size_t flags, json_error_t *err);

/** Bytes [from, to) of a text: a member and its separator; both 0 when there is none. */
typedef struct {
    apr_size_t from;
    apr_size_t to;
} llmgw_json_cut_t;

/**
 * llmgw_json_pick, and where the top-level member @p name lies: removing
 * bytes [cut->from, cut->to) from @p text leaves the same object without
 * that member (and one separator), the rest as it was. A member named
 * twice makes it return NULL, as an unsure text does.
 */
json_t *llmgw_json_pick_cut(const char *text, apr_size_t len, const llmgw_json_pick_t *pick,
                            const char *name, llmgw_json_cut_t *cut);

#endif /* LLMGW_JSON_H */
