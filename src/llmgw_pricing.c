/*
 * Prices and costs in integer nano-USD (include/llmgw_pricing.h).
 */
#include <string.h>
#include <apr_fnmatch.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "llmgw_pricing.h"

#define NANO ((apr_int64_t)1000000000)

apr_status_t llmgw_usd_parse(const char *text, apr_int64_t *nusd)
{
    const char *s = text;
    apr_int64_t whole = 0, frac = 0, scale = NANO / 10;
    int nd = 0, nf = 0;

    if (!s)
        return APR_EINVAL;
    for (; apr_isdigit(*s); s++, nd++) {
        if (whole > (APR_INT64_MAX / NANO - 9) / 10)
            return APR_EINVAL;
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; apr_isdigit(*s); s++, nf++) {
            if (nf >= 9)
                return APR_EINVAL;
            frac += (*s - '0') * scale;
            scale /= 10;
        }
        if (nf == 0)
            return APR_EINVAL;
    }
    if (*s || nd == 0)
        return APR_EINVAL;
    *nusd = whole * NANO + frac;
    return APR_SUCCESS;
}

/* Digits by hand: this runs for every answer and every ledger row. */
const char *llmgw_usd_format(apr_pool_t *p, apr_int64_t nusd)
{
    char buf[40], *end = buf + sizeof(buf), *s = end;
    apr_uint64_t v = nusd < 0 ? (apr_uint64_t)0 - (apr_uint64_t)nusd : (apr_uint64_t)nusd;
    apr_uint64_t whole = v / (apr_uint64_t)NANO, frac = v % (apr_uint64_t)NANO;
    int i, trailing = 1;

    for (i = 0; i < 9; i++, frac /= 10) {
        if (trailing && frac % 10 == 0)
            continue;
        trailing = 0;
        *--s = (char)('0' + frac % 10);
    }
    if (s != end)
        *--s = '.';
    do {
        *--s = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    if (nusd < 0)
        *--s = '-';
    return apr_pstrmemdup(p, s, (apr_size_t)(end - s));
}

const llmgw_price_t *llmgw_pricing_find(const llmgw_pricing_t *pr, const char *model)
{
    const llmgw_price_t *price;
    int i;

    if (!pr || !model || !*model)
        return NULL;
    price = apr_hash_get(pr->exact, model, APR_HASH_KEY_STRING);
    if (price)
        return price;
    for (i = 0; i < pr->prices->nelts; i++) {
        price = APR_ARRAY_IDX(pr->prices, i, const llmgw_price_t *);
        if (price->glob && apr_fnmatch(price->model, model, 0) == APR_SUCCESS)
            return price;
    }
    return NULL;
}

const llmgw_price_t *llmgw_pricing_for(const llmgw_pricing_t *pr, const char *actual,
                                       const char *sent)
{
    const llmgw_price_t *price = llmgw_pricing_find(pr, actual);

    return price ? price : llmgw_pricing_find(pr, sent);
}

/* n * per_million / 1e6, rounded half up, without overflowing for sane n. */
static apr_int64_t scaled(apr_int64_t n, apr_int64_t per_million)
{
    apr_int64_t q, r;

    if (n <= 0 || per_million <= 0)
        return 0;
    q = (n / 1000000) * per_million;
    r = (n % 1000000) * per_million;
    return q + (r + 500000) / 1000000;
}

apr_int64_t llmgw_pricing_cost(const llmgw_price_t *price, const llmgw_usage_t *u)
{
    apr_int64_t prompt = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    apr_int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    apr_int64_t completion = u->completion_tokens > 0 ? u->completion_tokens : 0;

    if (cached > prompt)
        cached = prompt;
    /* Each part rounds on its own: a part costs the same whatever else the
     * request used, so a sum of rows equals a sum of their parts. */
    return scaled(prompt - cached, price->input) + scaled(cached, price->cached_input) +
           scaled(completion, price->output);
}

apr_int64_t llmgw_pricing_estimate(const llmgw_price_t *price, apr_int64_t prompt,
                                   apr_int64_t output)
{
    return scaled(prompt, price->input) + scaled(output, price->output);
}
