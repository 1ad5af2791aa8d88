/*
 * A sparse read of a JSON object (llmgw_json.h, llmgw_json_pick): the
 * members the gateway needs from an answer it forwards verbatim, without
 * building the rest; with the list that names every member at every depth
 * (llmgw_json_load), the whole document, read faster than jansson's lexer
 * reads it.
 *
 * The scan finds where each value starts and ends, and must be certain
 * that jansson would accept the whole text. It makes only the values whose
 * reading cannot differ from jansson's: the three literals, integers of at
 * most 18 digits, strings (their bytes and escapes checked as jansson
 * checks them, the escapes decoded as jansson decodes them), and the
 * objects and arrays a pick list descends into. Every other value kept
 * (reals, containers kept whole) is jansson's own reading of its bytes.
 * Where it cannot be certain cheaply it says so (NULL) and the caller
 * parses in full: escaped keys, \u escapes of NUL or of surrogates,
 * integers past 18 digits, reals near the double range, deep nesting.
 * Everything it does accept follows jansson 2.14's lexer: whitespace is
 * space, tab, CR and LF; strings are UTF-8 by RFC 3629 with no control
 * byte; numbers are RFC 8259's; the last of duplicate keys wins, in the
 * place of the first. The differential fuzz target
 * tests/fuzz/fuzz_json_pick.c holds it to that, member order too.
 */
#include <string.h>
#include "llmgw_json.h"

/* Deeper than any answer a provider sends; jansson's own limit is 2048. */
#define PICK_MAX_DEPTH 64
/* 18 digits always fit in json_int_t (jansson refuses what overflows it). */
#define PICK_MAX_INT_DIGITS 18
/* Below this decimal magnitude a double never overflows (jansson refuses HUGE_VAL). */
#define PICK_MAX_REAL_MAGNITUDE 300

typedef struct {
    const unsigned char *s;
    const unsigned char *end;
    int depth;
    /* llmgw_json_pick_cut: the top-level member to cut out, where it lies. */
    const char *cut_name;
    const unsigned char *sep;      /* the comma before the current top-level member */
    const unsigned char *cut_from; /* NULL: not seen */
    const unsigned char *cut_to;
    int cut_open; /* it was the first member: the cut ends where the next one starts */
    int cut_seen;
} scan_t;

static int scan_value(scan_t *sc);
static int scan_object(scan_t *sc, const llmgw_json_pick_t *pick, json_t *out);

static void skip_ws(scan_t *sc)
{
    while (sc->s < sc->end && (*sc->s == ' ' || *sc->s == '\t' || *sc->s == '\n' || *sc->s == '\r'))
        sc->s++;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One multi-byte UTF-8 sequence: no overlong form, no surrogate, nothing past U+10FFFF. */
static int scan_utf8(scan_t *sc)
{
    const unsigned char *s = sc->s;
    unsigned c = s[0], cp, min, n, i;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 1, cp = c & 0x1F, min = 0x80;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 2, cp = c & 0x0F, min = 0x800;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 3, cp = c & 0x07, min = 0x10000;
    }
    else {
        return 0;
    }
    if ((apr_size_t)(sc->end - s) <= n)
        return 0;
    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    sc->s += n + 1;
    return 1;
}

/* One escape (at the backslash). \u0000 and surrogates are left to jansson. */
static int scan_escape(scan_t *sc)
{
    unsigned v = 0;
    int i, h;

    if (sc->end - sc->s < 2)
        return 0;
    if (sc->s[1] && strchr("\"\\/bfnrt", sc->s[1])) {
        sc->s += 2;
        return 1;
    }
    if (sc->s[1] != 'u' || sc->end - sc->s < 6)
        return 0;
    for (i = 2; i < 6; i++) {
        if ((h = hex_value(sc->s[i])) < 0)
            return 0;
        v = v << 4 | (unsigned)h;
    }
    if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    sc->s += 6;
    return 1;
}

/*
 * Bytes a string cannot simply pass over: a control byte, its end ("), an
 * escape (\\), the start of a multi-byte sequence. Strings are most of an
 * answer's bytes, so their plain runs are skipped a table look-up a byte.
 */
/* clang-format off */
#define STOP16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
static const unsigned char string_stop[256] = {
    STOP16(1), STOP16(1),                           /* 0x00-0x1f */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20-0x2f: '"' */
    STOP16(0), STOP16(0),                           /* 0x30-0x4f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50-0x5f: backslash */
    STOP16(0), STOP16(0),                           /* 0x60-0x7f */
    STOP16(1), STOP16(1), STOP16(1), STOP16(1),     /* 0x80-0xff */
    STOP16(1), STOP16(1), STOP16(1), STOP16(1)};
/* clang-format on */

/* A string (at its opening quote); *escaped says whether it holds an escape. */
static int scan_string(scan_t *sc, int *escaped)
{
    const unsigned char *s = sc->s + 1, *end = sc->end;
    unsigned c;

    *escaped = 0;
    for (;;) {
        while (s < end && !string_stop[*s])
            s++;
        if (s >= end)
            return 0;
        c = *s;
        sc->s = s;
        if (c == '"') {
            sc->s++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (!scan_escape(sc))
                return 0;
            *escaped = 1;
        }
        else if (!scan_utf8(sc)) {
            return 0;
        }
        s = sc->s;
    }
}

/* A run of digits; returns how many. */
static apr_size_t scan_digits(scan_t *sc)
{
    const unsigned char *start = sc->s;

    while (sc->s < sc->end && is_digit(*sc->s))
        sc->s++;
    return (apr_size_t)(sc->s - start);
}

static int scan_number(scan_t *sc)
{
    apr_size_t int_digits, exp_digits;
    long exp = 0;
    int real = 0, neg_exp = 0;
    const unsigned char *e;

    if (sc->s < sc->end && *sc->s == '-')
        sc->s++;
    if (sc->s >= sc->end || !is_digit(*sc->s))
        return 0;
    if (*sc->s == '0')
        sc->s++, int_digits = 1;
    else
        int_digits = scan_digits(sc);
    if (sc->s < sc->end && *sc->s == '.') {
        sc->s++;
        if (scan_digits(sc) == 0)
            return 0;
        real = 1;
    }
    if (sc->s < sc->end && (*sc->s == 'e' || *sc->s == 'E')) {
        sc->s++;
        if (sc->s < sc->end && (*sc->s == '+' || *sc->s == '-'))
            neg_exp = *sc->s++ == '-';
        e = sc->s;
        exp_digits = scan_digits(sc);
        if (exp_digits == 0 || exp_digits > 4)
            return 0;
        for (; e < sc->s; e++)
            exp = exp * 10 + (*e - '0');
        real = 1;
    }
    if (!real)
        return int_digits <= PICK_MAX_INT_DIGITS;
    return (long)int_digits + (neg_exp ? -exp : exp) <= PICK_MAX_REAL_MAGNITUDE;
}

static int scan_literal(scan_t *sc, const char *word, apr_size_t n)
{
    if ((apr_size_t)(sc->end - sc->s) < n || memcmp(sc->s, word, n) != 0)
        return 0;
    sc->s += n;
    return 1;
}

/* One item of a container (at its first byte); 0 refuses the text. */
typedef int (*item_fn)(scan_t *sc, void *baton);

/*
 * The frame every container shares: items separated by commas, from the
 * opening byte (at sc->s) to @p close, within the depth bound.
 */
static int scan_items(scan_t *sc, unsigned char close, item_fn item, void *baton)
{
    if (++sc->depth > PICK_MAX_DEPTH)
        return 0;
    sc->s++;
    skip_ws(sc);
    if (sc->s < sc->end && *sc->s == close) {
        sc->s++;
        sc->depth--;
        return 1;
    }
    if (sc->depth == 1)
        sc->sep = NULL;
    for (;;) {
        if (!item(sc, baton))
            return 0;
        skip_ws(sc);
        if (sc->s >= sc->end)
            return 0;
        if (*sc->s == close) {
            sc->s++;
            sc->depth--;
            return 1;
        }
        if (*sc->s != ',')
            return 0;
        if (sc->depth == 1)
            sc->sep = sc->s;
        sc->s++;
        skip_ws(sc);
        if (sc->depth == 1 && sc->cut_open) {
            sc->cut_to = sc->s;
            sc->cut_open = 0;
        }
    }
}

static int value_item(scan_t *sc, void *baton)
{
    (void)baton;
    return scan_value(sc);
}

static int scan_array(scan_t *sc)
{
    return scan_items(sc, ']', value_item, NULL);
}

static int scan_value(scan_t *sc)
{
    int escaped;

    if (sc->s >= sc->end)
        return 0;
    switch (*sc->s) {
    case '{':
        return scan_object(sc, NULL, NULL);
    case '[':
        return scan_array(sc);
    case '"':
        return scan_string(sc, &escaped);
    case 't':
        return scan_literal(sc, "true", 4);
    case 'f':
        return scan_literal(sc, "false", 5);
    case 'n':
        return scan_literal(sc, "null", 4);
    default:
        return scan_number(sc);
    }
}

/* The entry for a key: its own, else the list's "*" entry, else NULL. */
static const llmgw_json_pick_t *find_pick(const llmgw_json_pick_t *pick, const unsigned char *key,
                                          apr_size_t n)
{
    const llmgw_json_pick_t *any = NULL;

    for (; pick->name; pick++) {
        if (strlen(pick->name) == n && memcmp(pick->name, key, n) == 0)
            return pick;
        if (pick->name[0] == '*' && !pick->name[1])
            any = pick;
    }
    return any;
}

/* The byte one of the escapes \" \\ \/ \b \f \n \r \t stands for (at its letter). */
static char escaped_byte(unsigned char c)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return (char)c; /* '"', '\\', '/' */
    }
}

/*
 * The string between @p s and @p end (inside its quotes), its escapes
 * decoded, as jansson decodes them. scan_string has checked every escape
 * (no \u0000, no surrogate) and every byte, so the result is valid UTF-8
 * without NUL and needs no check again. A decoded string is never longer
 * than its escaped form.
 */
static json_t *decoded_string(const unsigned char *s, const unsigned char *end)
{
    apr_size_t cap = (apr_size_t)(end - s);
    char small[512];
    char *buf = cap <= sizeof(small) ? small : malloc(cap), *o = buf;
    json_t *v;

    if (!buf)
        return NULL;
    *buf = '\0'; /* never read unwritten: an escaped string holds at least its escape */
    while (s < end) {
        const unsigned char *run = s;
        unsigned cp;

        while (s < end && *s != '\\')
            s++;
        memcpy(o, run, (apr_size_t)(s - run));
        o += s - run;
        if (s >= end)
            break;
        if (s[1] != 'u') {
            *o++ = escaped_byte(s[1]);
            s += 2;
            continue;
        }
        cp = (unsigned)(hex_value(s[2]) << 12 | hex_value(s[3]) << 8 | hex_value(s[4]) << 4 |
                        hex_value(s[5]));
        s += 6;
        if (cp < 0x80) {
            *o++ = (char)cp;
        }
        else if (cp < 0x800) {
            *o++ = (char)(0xC0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
        else {
            *o++ = (char)(0xE0 | cp >> 12);
            *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    v = json_stringn_nocheck(buf, (apr_size_t)(o - buf));
    if (buf != small)
        free(buf);
    return v;
}

/*
 * The value of a scalar token jansson would read the same way: the three
 * literals, an integer of at most 18 digits (it fits json_int_t, as for
 * jansson's strtoll), a string (its bytes and escapes are already checked
 * as jansson checks them). Everything else (reals, longer integers) is
 * jansson's own reading of the token's bytes.
 */
static json_t *scalar(const unsigned char *start, const unsigned char *end, int escaped)
{
    const unsigned char *d = start;
    json_int_t v = 0;

    switch (*start) {
    case 't':
        return json_true();
    case 'f':
        return json_false();
    case 'n':
        return json_null();
    case '"':
        if (!escaped)
            return json_stringn_nocheck((const char *)start + 1, (size_t)(end - start - 2));
        return decoded_string(start + 1, end - 1);
    default:
        if (*d == '-')
            d++;
        /* Only an integer token is this short; a real's digits are jansson's. */
        if (end - d > PICK_MAX_INT_DIGITS)
            break;
        for (; d < end && is_digit(*d); d++)
            v = v * 10 + (*d - '0');
        if (d == end)
            return json_integer(*start == '-' ? -v : v);
        break;
    }
    return json_loadb((const char *)start, (size_t)(end - start), JSON_DECODE_ANY | JSON_ALLOW_NUL,
                      NULL);
}

/* Any value (at its first byte), kept whole. */
static json_t *whole_value(scan_t *sc)
{
    const unsigned char *start = sc->s;
    int escaped = 0;

    if (sc->s < sc->end && *sc->s == '"') {
        if (!scan_string(sc, &escaped))
            return NULL;
    }
    else if (!scan_value(sc)) {
        return NULL;
    }
    if (*start == '{' || *start == '[')
        return json_loadb((const char *)start, (size_t)(sc->s - start), JSON_ALLOW_NUL, NULL);
    return scalar(start, sc->s, escaped);
}

static json_t *picked_value(scan_t *sc, const llmgw_json_pick_t *m);

typedef struct {
    llmgw_json_pick_t each; /* how every element is kept */
    json_t *out;
} elements_t;

static int element_item(scan_t *sc, void *baton)
{
    elements_t *e = baton;
    json_t *v = picked_value(sc, &e->each);

    return v && json_array_append_new(e->out, v) == 0;
}

/* An array (at its bracket) whose object elements keep only @p sub's members. */
static json_t *picked_array(scan_t *sc, const llmgw_json_pick_t *sub)
{
    elements_t e = {{"", sub, 0}, json_array()};

    if (e.out && scan_items(sc, ']', element_item, &e))
        return e.out;
    json_decref(e.out);
    return NULL;
}

/* The value of a wanted member (at its first byte), as @p m keeps it. */
static json_t *picked_value(scan_t *sc, const llmgw_json_pick_t *m)
{
    const unsigned char *start = sc->s;
    json_t *v;

    if (sc->s >= sc->end)
        return NULL;
    if (m->sub && *sc->s == '{') {
        v = json_object();
        if (v && scan_object(sc, m->sub, v))
            return v;
        json_decref(v);
        return NULL;
    }
    if (m->sub && *sc->s == '[')
        return picked_array(sc, m->sub);
    if (m->shape_only && (*start == '{' || *start == '['))
        return scan_value(sc) ? (*start == '{' ? json_object() : json_array()) : NULL;
    return whole_value(sc);
}

typedef struct {
    const llmgw_json_pick_t *pick; /* NULL: only scanned */
    json_t *out;
} members_t;

/* One member: its key, and its value kept when the pick list wants it. */
static int member_item(scan_t *sc, void *baton)
{
    members_t *ms = baton;
    const unsigned char *at = sc->s, *key = sc->s + 1;
    int cut;
    const llmgw_json_pick_t *m = NULL;
    apr_size_t klen;
    json_t *v = NULL;
    int escaped;

    if (sc->s >= sc->end || *sc->s != '"' || !scan_string(sc, &escaped))
        return 0;
    klen = (apr_size_t)(sc->s - 1 - key);
    /* An escaped key could spell a wanted name: not worth decoding here. */
    if (ms->pick && escaped)
        return 0;
    if (ms->pick)
        m = find_pick(ms->pick, key, klen);
    cut = sc->cut_name && sc->depth == 1 && strlen(sc->cut_name) == klen &&
          memcmp(sc->cut_name, key, klen) == 0;
    skip_ws(sc);
    if (sc->s >= sc->end || *sc->s++ != ':')
        return 0;
    skip_ws(sc);
    if (m ? !(v = picked_value(sc, m)) : !scan_value(sc))
        return 0;
    if (cut) {
        /* From the comma before it, or (the first member) up to the next one. */
        sc->cut_seen++;
        sc->cut_from = sc->sep ? sc->sep : at;
        sc->cut_to = sc->s;
        sc->cut_open = !sc->sep;
    }
    /* A later duplicate replaces an earlier one, as in jansson's parse; the
     * key's bytes were checked as jansson checks them (scan_string). */
    return !m || json_object_setn_new_nocheck(ms->out, (const char *)key, klen, v) == 0;
}

/* An object (at its brace); with @p pick, the members it names go into @p out. */
static int scan_object(scan_t *sc, const llmgw_json_pick_t *pick, json_t *out)
{
    members_t ms = {pick, out};

    return scan_items(sc, '}', member_item, &ms);
}

json_t *llmgw_json_pick_cut(const char *text, apr_size_t len, const llmgw_json_pick_t *pick,
                            const char *name, llmgw_json_cut_t *cut)
{
    scan_t sc;
    json_t *out;

    if (cut)
        cut->from = cut->to = 0;
    if (!text)
        return NULL;
    memset(&sc, 0, sizeof(sc));
    sc.s = (const unsigned char *)text;
    sc.end = sc.s + len;
    sc.cut_name = cut ? name : NULL;
    skip_ws(&sc);
    if (sc.s >= sc.end || *sc.s != '{' || !(out = json_object()))
        return NULL;
    /* Twice named, the member could not be cut out as one: left to the full parse. */
    if (scan_object(&sc, pick, out) && sc.cut_seen <= 1) {
        skip_ws(&sc);
        if (sc.s == sc.end) {
            if (cut && sc.cut_from) {
                cut->from = (apr_size_t)(sc.cut_from - (const unsigned char *)text);
                cut->to = (apr_size_t)(sc.cut_to - (const unsigned char *)text);
            }
            return out;
        }
    }
    json_decref(out);
    return NULL;
}

json_t *llmgw_json_pick(const char *text, apr_size_t len, const llmgw_json_pick_t *pick)
{
    return llmgw_json_pick_cut(text, len, pick, NULL, NULL);
}

/* Every member, at every depth: the whole document. */
const llmgw_json_pick_t llmgw_json_pick_all[] = {{"*", llmgw_json_pick_all, 0}, {NULL, NULL, 0}};

json_t *llmgw_json_load(const char *text, apr_size_t len, size_t flags, json_error_t *err)
{
    json_t *j;

    /* What the scan accepts holds no NUL, raw or escaped, so JSON_ALLOW_NUL
     * cannot change its reading; any other flag is jansson's alone. */
    if ((flags & ~(size_t)JSON_ALLOW_NUL) == 0 &&
        (j = llmgw_json_pick(text, len, llmgw_json_pick_all)))
        return j;
    return json_loadb(text ? text : "", text ? len : 0, flags, err);
}
