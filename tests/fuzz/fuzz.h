/*
 * Shared by the fuzz targets: APR set up once per process, a fresh pool per
 * input, and a check that aborts (so that libFuzzer and the replay driver
 * both report the input) when a property of the contract does not hold.
 */
#ifndef LLMGW_FUZZ_H
#define LLMGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <apr_general.h>
#include <apr_pools.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A new top-level pool for one input; APR is initialised on first use and
 * terminated at exit, so the leak checker sees only what an input leaked. */
static inline apr_pool_t *fuzz_pool(void)
{
    static int initialised;
    apr_pool_t *p = NULL;

    if (!initialised) {
        FUZZ_CHECK(apr_initialize() == APR_SUCCESS);
        atexit(apr_terminate);
        initialised = 1;
    }
    FUZZ_CHECK(apr_pool_create(&p, NULL) == APR_SUCCESS);
    return p;
}

#endif
