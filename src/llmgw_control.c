/*
 * The status page's operator controls: nonces (HMAC-SHA256 over the page's
 * context and time, keyed with the statistics segment's control key) and
 * the action names. The design is in include/llmgw_control.h.
 */
#include <string.h>
#include <apr_escape.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "llmgw_control.h"
#include "llmgw_stats.h"

#define TIME_HEX 16
#define MAC_HEX 64
/* What the MAC covers besides the context and the time: a version, so that
 * a later format never accepts an earlier one's nonces. */
#define MAC_LABEL "llmgw status control v1"
/* How far ahead of this host's clock a nonce may be: none, bar rounding. */
#define FUTURE_SLACK apr_time_from_sec(1)

_Static_assert(TIME_HEX + 1 + MAC_HEX == LLMGW_CONTROL_NONCE_LEN, "nonce length");

/*
 * The MAC of (@p context, @p thex) under @p key, as 64 lowercase hex digits
 * from @p p. The input is "label\n<length of context>\n<context><thex>", so
 * no two (context, time) pairs make the same bytes.
 */
static apr_status_t nonce_mac(apr_pool_t *p, const unsigned char *key, const char *context,
                              const char *thex, const char **out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *data = apr_psprintf(p, "%s\n%" APR_SIZE_T_FMT "\n%s%.*s", MAC_LABEL,
                                    strlen(context), context, TIME_HEX, thex);

    if (!HMAC(EVP_sha256(), key, LLMGW_STATS_KEY_LEN, (const unsigned char *)data, strlen(data),
              mac, &maclen) ||
        maclen * 2 != MAC_HEX)
        return APR_EGENERAL;
    *out = apr_pescape_hex(p, mac, maclen, 0);
    return *out ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t llmgw_control_nonce(apr_pool_t *p, const void *stats, const char *context,
                                 apr_time_t mono, const char **nonce)
{
    const unsigned char *key = llmgw_stats_control_key(stats);
    const char *thex, *mac;
    apr_status_t rv;

    if (!key || !context || mono < 0)
        return APR_EINVAL;
    thex = apr_psprintf(p, "%016" APR_UINT64_T_HEX_FMT, (apr_uint64_t)mono);
    if ((rv = nonce_mac(p, key, context, thex, &mac)) != APR_SUCCESS)
        return rv;
    *nonce = apr_pstrcat(p, thex, ".", mac, NULL);
    return APR_SUCCESS;
}

/* @p n lowercase hex digits (what llmgw_control_nonce writes, nothing else). */
static int lower_hex(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!apr_isxdigit(s[i]) || apr_isupper(s[i]))
            return 0;
    }
    return 1;
}

apr_status_t llmgw_control_nonce_check(apr_pool_t *p, const void *stats, const char *context,
                                       const char *nonce, apr_time_t mono, apr_interval_time_t ttl)
{
    const unsigned char *key = llmgw_stats_control_key(stats);
    char thex[TIME_HEX + 1];
    const char *mac;
    apr_int64_t t;
    apr_status_t rv;

    if (!nonce || !*nonce)
        return APR_ENOENT;
    if (!key || !context || strlen(nonce) != LLMGW_CONTROL_NONCE_LEN || nonce[TIME_HEX] != '.' ||
        !lower_hex(nonce, TIME_HEX) || !lower_hex(nonce + TIME_HEX + 1, MAC_HEX))
        return APR_EINVAL;
    memcpy(thex, nonce, TIME_HEX);
    thex[TIME_HEX] = '\0';
    if ((rv = nonce_mac(p, key, context, thex, &mac)) != APR_SUCCESS)
        return rv;
    if (CRYPTO_memcmp(mac, nonce + TIME_HEX + 1, MAC_HEX) != 0)
        return APR_EINVAL;
    /* Authentic: now only its age matters. 16 hex digits of a time this
     * function's caller made are never negative as a 64-bit number. */
    t = apr_strtoi64(thex, NULL, 16);
    if (t < 0 || t > mono + FUTURE_SLACK || mono - t > ttl)
        return APR_TIMEUP;
    return APR_SUCCESS;
}

llmgw_control_action_e llmgw_control_action(const char *name)
{
    if (name && strcmp(name, "drain") == 0)
        return LLMGW_CONTROL_DRAIN;
    if (name && strcmp(name, "enable") == 0)
        return LLMGW_CONTROL_ENABLE;
    return LLMGW_CONTROL_NONE;
}
