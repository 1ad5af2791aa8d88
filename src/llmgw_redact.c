/*
 * Redaction of secrets in provider text (include/llmgw_redact.h).
 *
 * Runs on error paths only (error bodies, in-stream error events, log
 * lines), on short texts against a handful of secrets, so the plain
 * quadratic search below costs nothing that matters and needs no index.
 */
#include <string.h>
#include <apr_strings.h>
#include "llmgw_redact.h"

llmgw_secrets_t *llmgw_secrets_make(apr_pool_t *p)
{
    llmgw_secrets_t *s = apr_pcalloc(p, sizeof(*s));

    s->items = apr_array_make(p, 4, sizeof(const char *));
    return s;
}

void llmgw_secrets_add(llmgw_secrets_t *s, const char *secret)
{
    int i;

    if (!s || !secret || strlen(secret) < LLMGW_REDACT_MIN)
        return;
    for (i = 0; i < s->items->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(s->items, i, const char *), secret) == 0)
            return;
    }
    APR_ARRAY_PUSH(s->items, const char *) = secret;
}

/* Length of the longest prefix of @p t (at most @p tn) found anywhere in @p secret. */
static apr_size_t longest_in(const char *t, apr_size_t tn, const char *secret)
{
    apr_size_t sn = strlen(secret), best = 0, j;

    for (j = 0; j < sn && sn - j > best; j++) {
        apr_size_t k = 0;
        while (j + k < sn && k < tn && secret[j + k] == t[k])
            k++;
        if (k > best)
            best = k;
    }
    return best;
}

/* How many bytes at @p t are secret (0: none): a whole secret, or a long enough part. */
static apr_size_t secret_at(const char *t, apr_size_t tn, const char *secret)
{
    apr_size_t sn, k;

    if (!secret || (sn = strlen(secret)) < LLMGW_REDACT_MIN)
        return 0;
    k = longest_in(t, tn, secret);
    if (k == sn || k >= LLMGW_REDACT_FRAGMENT)
        return k;
    return 0;
}

static apr_size_t any_secret_at(const char *t, apr_size_t tn, const llmgw_secrets_t *s,
                                const char *extra)
{
    apr_size_t best = secret_at(t, tn, extra);
    int i;

    for (i = 0; s && i < s->items->nelts; i++) {
        apr_size_t k = secret_at(t, tn, APR_ARRAY_IDX(s->items, i, const char *));
        if (k > best)
            best = k;
    }
    return best;
}

const char *llmgw_redact(apr_pool_t *p, const char *text, const llmgw_secrets_t *s,
                         const char *extra)
{
    apr_size_t n, i, done = 0;
    char *out = NULL;
    apr_size_t olen = 0;

    if (!text || ((!s || s->items->nelts == 0) && !extra))
        return text;
    n = strlen(text);
    for (i = 0; i < n;) {
        apr_size_t k = any_secret_at(text + i, n - i, s, extra);
        if (k == 0) {
            i++;
            continue;
        }
        if (!out)
            /* Worst case: every byte of the text starts a replaced run. */
            out = apr_palloc(p, n + (n / LLMGW_REDACT_MIN + 1) * sizeof(LLMGW_REDACTED) + 1);
        memcpy(out + olen, text + done, i - done);
        olen += i - done;
        memcpy(out + olen, LLMGW_REDACTED, sizeof(LLMGW_REDACTED) - 1);
        olen += sizeof(LLMGW_REDACTED) - 1;
        i += k;
        done = i;
    }
    if (!out)
        return text;
    memcpy(out + olen, text + done, n - done);
    out[olen + n - done] = '\0';
    return out;
}

const llmgw_error_t *llmgw_redact_error(apr_pool_t *p, const llmgw_error_t *e,
                                        const llmgw_secrets_t *s, const char *extra)
{
    llmgw_error_t r;
    llmgw_error_t *copy;

    if (!e)
        return e;
    r = *e;
    r.message = llmgw_redact(p, e->message, s, extra);
    r.param = llmgw_redact(p, e->param, s, extra);
    r.code = llmgw_redact(p, e->code, s, extra);
    r.type = llmgw_redact(p, e->type, s, extra);
    if (r.message == e->message && r.param == e->param && r.code == e->code && r.type == e->type)
        return e;
    copy = apr_pmemdup(p, &r, sizeof(r));
    return copy;
}
