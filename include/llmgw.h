/**
 * @file llmgw.h
 * @brief Shared definitions of the mod_llmgw core.
 *
 * The core (src/llmgw_*.c, src/providers/) uses APR, jansson, libyaml and
 * libcurl but never httpd headers, so every piece of it is unit-tested and
 * fuzzed without a server. The glue (mod_llmgw.c, src/mod_llmgw_*.c) is the
 * only code that includes httpd headers.
 */
#ifndef LLMGW_H
#define LLMGW_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** Scalars start unset so that merges and defaults can tell "not given". */
#define LLMGW_UNSET (-1)

/**
 * The ceiling of every token count the gateway reads from a provider, sums
 * or stores: 2^53 - 1, the largest integer every JSON parser (JavaScript's
 * Number included) holds exactly. Provider counts are untrusted: a larger
 * one is taken as this ceiling, and sums stop at it instead of wrapping.
 */
#define LLMGW_TOKENS_MAX ((apr_int64_t)9007199254740991LL)

/*
 * Our status codes live in APR's user range at offset 5000, clear of
 * httpd's own +2000..2999 block.
 */
#define LLMGW_START_ERROR (APR_OS_START_USERERR + 5000)
/** The client's request is invalid; an llmgw_error_t says why. */
#define LLMGW_EBADREQ (LLMGW_START_ERROR + 1)
/** The backend cannot do what was asked (unsupported field/API/type). */
#define LLMGW_EUNSUPPORTED (LLMGW_START_ERROR + 2)
/** The upstream answered something we could not understand. */
#define LLMGW_EUPSTREAM (LLMGW_START_ERROR + 3)
/** The configuration file is invalid. */
#define LLMGW_ECONFIG (LLMGW_START_ERROR + 4)
/** The upstream stream ended (or failed) before it was complete. */
#define LLMGW_ESTREAM (LLMGW_START_ERROR + 5)
/** The client went away. */
#define LLMGW_ECLIENTGONE (LLMGW_START_ERROR + 6)
/** The requested model is served by no backend of the route (404 model_not_found). */
#define LLMGW_ENOMODEL (LLMGW_START_ERROR + 7)
/** One upstream stream event could not be understood; the stream itself may go on. */
#define LLMGW_EMALFORMED (LLMGW_START_ERROR + 8)

/** Text for our own status codes, else APR's. Thread-safe. */
const char *llmgw_strerror(apr_status_t rv, char *buf, apr_size_t bufsize);

#endif /* LLMGW_H */
