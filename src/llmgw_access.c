/*
 * Keys, principals, allowlists, expiry and the token estimate
 * (include/llmgw_access.h has the design). Pure functions over the
 * read-only configuration; no shared state.
 */
#include <string.h>
#include <apr_fnmatch.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "llmgw_access.h"

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

apr_status_t llmgw_access_digest_parse(const char *hex, unsigned char out[LLMGW_ACCESS_DIGEST])
{
    int i;

    if (!hex || strlen(hex) != 2 * LLMGW_ACCESS_DIGEST)
        return APR_EINVAL;
    for (i = 0; i < LLMGW_ACCESS_DIGEST; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return APR_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return APR_SUCCESS;
}

const char *llmgw_access_key_from_header(apr_pool_t *p, const char *value, int is_api_key)
{
    const char *s = value, *end;

    if (!s)
        return NULL;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!is_api_key) {
        if (strncasecmp(s, "Bearer", 6) != 0 || (s[6] != ' ' && s[6] != '\t'))
            return NULL;
        s += 6;
        while (*s == ' ' || *s == '\t')
            s++;
    }
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == s)
        return NULL;
    return *end ? apr_pstrmemdup(p, s, (apr_size_t)(end - s)) : s;
}

const llmgw_access_entry_t *llmgw_access_find_key(const llmgw_access_cfg_t *a, const char *key)
{
    unsigned char d[LLMGW_ACCESS_DIGEST];
    unsigned int dlen = 0;
    const llmgw_access_entry_t *found = NULL;
    int i;

    if (!a || a->mode != LLMGW_ACCESS_KEYS || !key ||
        !EVP_Digest(key, strlen(key), d, &dlen, a->sha256 ? a->sha256 : EVP_sha256(), NULL) ||
        dlen != sizeof(d))
        return NULL;
    /* Every entry is compared, whatever matched before: the time does not
     * depend on where (or whether) the digest is found. The selection is a
     * mask, not a branch on the comparison. */
    for (i = 0; i < a->entries->nelts; i++) {
        const llmgw_access_entry_t *e = APR_ARRAY_IDX(a->entries, i, const llmgw_access_entry_t *);
        apr_uintptr_t same = (apr_uintptr_t)(CRYPTO_memcmp(e->digest, d, sizeof(d)) == 0);
        apr_uintptr_t mask = (apr_uintptr_t)0 - same;
        found = (const llmgw_access_entry_t *)(((apr_uintptr_t)e & mask) |
                                               ((apr_uintptr_t)found & ~mask));
    }
    OPENSSL_cleanse(d, sizeof(d));
    return found;
}

static apr_status_t wipe_key(void *data)
{
    llmgw_access_key_memo_t *memo = data;

    OPENSSL_cleanse(memo->key, sizeof(memo->key));
    memo->cfg = NULL;
    return APR_SUCCESS;
}

const llmgw_access_entry_t *llmgw_access_find_key_memo(const llmgw_access_cfg_t *a, const char *key,
                                                       llmgw_access_key_memo_t *memo, apr_pool_t *p)
{
    const llmgw_access_entry_t *e;
    apr_size_t len = key ? strlen(key) : 0;

    if (key && memo->cfg && memo->cfg == a && memo->len == len &&
        CRYPTO_memcmp(memo->key, key, len) == 0)
        return memo->entry;
    e = llmgw_access_find_key(a, key);
    if (!e || len >= sizeof(memo->key))
        return e;
    OPENSSL_cleanse(memo->key, sizeof(memo->key));
    memcpy(memo->key, key, len);
    memo->len = len;
    memo->entry = e;
    memo->cfg = a;
    if (!memo->armed) {
        apr_pool_cleanup_register(p, memo, wipe_key, apr_pool_cleanup_null);
        memo->armed = 1;
    }
    return e;
}

const llmgw_access_entry_t *llmgw_access_find_principal(const llmgw_access_cfg_t *a,
                                                        const char *name, int *listed)
{
    const llmgw_access_entry_t *e;

    *listed = 0;
    if (!a || a->mode != LLMGW_ACCESS_PRINCIPAL || !name || !*name)
        return NULL;
    e = apr_hash_get(a->by_name, name, APR_HASH_KEY_STRING);
    if (e) {
        *listed = 1;
        return e;
    }
    return a->any;
}

llmgw_access_verdict_e llmgw_access_check_expiry(const llmgw_access_entry_t *e, apr_time_t now)
{
    return e->expires > 0 && now >= e->expires ? LLMGW_ACCESS_EXPIRED : LLMGW_ACCESS_OK;
}

int llmgw_access_globs_match(const apr_array_header_t *globs, const char *name)
{
    int i;

    if (!globs)
        return 1;
    for (i = 0; name && i < globs->nelts; i++) {
        if (apr_fnmatch(APR_ARRAY_IDX(globs, i, const char *), name, 0) == APR_SUCCESS)
            return 1;
    }
    return 0;
}

int llmgw_access_route_allowed(const llmgw_access_entry_t *e, const char *route_name)
{
    return llmgw_access_globs_match(e->routes, route_name);
}

int llmgw_access_model_allowed(const llmgw_access_entry_t *e, const char *model)
{
    if (!e->models)
        return 1;
    return model && *model && llmgw_access_globs_match(e->models, model);
}

/* ---- the estimate ------------------------------------------------------ */

typedef struct {
    apr_int64_t chars;
    apr_int64_t images;
    apr_int64_t ids;
} tally_t;

/* Characters of every string under @p v; image parts counted apart. */
static void tally(const json_t *v, tally_t *t, int depth)
{
    const char *k;
    json_t *item;
    size_t i;

    if (depth > 16 || !v)
        return;
    switch (json_typeof(v)) {
    case JSON_STRING:
        t->chars += (apr_int64_t)json_string_length(v);
        break;
    case JSON_INTEGER:
        t->ids++; /* a token id (embeddings input) */
        break;
    case JSON_ARRAY:
        json_array_foreach (v, i, item) {
            tally(item, t, depth + 1);
        }
        break;
    case JSON_OBJECT: {
        const json_t *type = json_object_get(v, "type");
        if (json_is_string(type) && (strcmp(json_string_value(type), "image_url") == 0 ||
                                     strcmp(json_string_value(type), "image") == 0)) {
            t->images++;
            break;
        }
        json_object_foreach ((json_t *)v, k, item) {
            tally(item, t, depth + 1);
        }
        break;
    }
    default:
        break;
    }
}

static apr_int64_t positive_int(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? (apr_int64_t)json_integer_value(v) : 0;
}

void llmgw_access_estimate(const json_t *body, llmgw_api_e api, apr_int64_t *prompt,
                           apr_int64_t *output)
{
    tally_t t = {0, 0, 0};
    const json_t *msgs = json_object_get(body, "messages");
    apr_int64_t out;

    *prompt = *output = 0;
    if (!json_is_object(body))
        return;
    if (api == LLMGW_API_EMBEDDINGS) {
        tally(json_object_get(body, "input"), &t, 0);
        *prompt = (t.chars + 3) / 4 + t.ids;
        return;
    }
    tally(msgs, &t, 0);
    tally(json_object_get(body, "tools"), &t, 0);
    tally(json_object_get(body, "functions"), &t, 0);
    t.ids = 0; /* numbers in messages are not token ids */
    *prompt = (t.chars + 3) / 4 + 4 * (apr_int64_t)json_array_size(msgs) +
              t.images * LLMGW_ACCESS_IMAGE_TOKENS;
    out = positive_int(json_object_get(body, "max_completion_tokens"));
    if (!out)
        out = positive_int(json_object_get(body, "max_tokens"));
    *output = out ? out : LLMGW_ACCESS_DEFAULT_OUTPUT_RESERVE;
}

/* ---- time ------------------------------------------------------------ */

static int digits(const char *s, int n, int *out)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (!apr_isdigit(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static apr_int64_t days_from_civil(int y, int m, int d)
{
    apr_int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(apr_int64_t z, int *y, int *m, int *d)
{
    apr_int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dm[m - 1];
}

apr_status_t llmgw_access_time_parse(const char *s, apr_time_t *out)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    apr_int64_t usec = 0, scale = 100000, offset = 0;

    if (!s || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return APR_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return APR_EINVAL;
    s += 19;
    if (*s == '.') {
        for (s++; apr_isdigit(*s); s++) {
            usec += (*s - '0') * scale;
            scale /= 10;
        }
        if (s[-1] == '.')
            return APR_EINVAL;
    }
    if (*s == 'Z' || *s == 'z')
        s++;
    else if ((*s == '+' || *s == '-') && digits(s + 1, 2, &oh) && s[3] == ':' &&
             digits(s + 4, 2, &om) && oh < 24 && om < 60) {
        offset = (apr_int64_t)(oh * 60 + om) * 60 * (*s == '+' ? 1 : -1);
        s += 6;
    }
    else
        return APR_EINVAL;
    if (*s)
        return APR_EINVAL;
    if (sec == 60)
        sec = 59; /* a leap second is the end of its minute */
    *out =
        apr_time_from_sec(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset) +
        usec;
    return APR_SUCCESS;
}

const char *llmgw_period_name(llmgw_period_e p)
{
    switch (p) {
    case LLMGW_PERIOD_DAY:
        return "day";
    case LLMGW_PERIOD_WEEK:
        return "week";
    case LLMGW_PERIOD_MONTH:
        return "month";
    default:
        return "";
    }
}

static apr_int64_t floor_div(apr_int64_t a, apr_int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

apr_time_t llmgw_period_start(llmgw_period_e p, apr_time_t now)
{
    apr_int64_t days = floor_div(apr_time_sec(now), 86400);
    int y, m, d;

    switch (p) {
    case LLMGW_PERIOD_DAY:
        return apr_time_from_sec(days * 86400);
    case LLMGW_PERIOD_WEEK:
        /* 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday. */
        return apr_time_from_sec((days - ((days + 3) - floor_div(days + 3, 7) * 7)) * 86400);
    case LLMGW_PERIOD_MONTH:
        civil_from_days(days, &y, &m, &d);
        return apr_time_from_sec(days_from_civil(y, m, 1) * 86400);
    default:
        return 0;
    }
}

apr_time_t llmgw_period_next(llmgw_period_e p, apr_time_t now)
{
    apr_time_t start = llmgw_period_start(p, now);
    int y, m, d;

    switch (p) {
    case LLMGW_PERIOD_DAY:
        return start + apr_time_from_sec(86400);
    case LLMGW_PERIOD_WEEK:
        return start + apr_time_from_sec(7 * 86400);
    case LLMGW_PERIOD_MONTH:
        civil_from_days(floor_div(apr_time_sec(start), 86400), &y, &m, &d);
        return apr_time_from_sec(days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) *
                                 86400);
    default:
        return 0;
    }
}
