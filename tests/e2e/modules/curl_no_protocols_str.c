/*
 * LD_PRELOAD shim for tests/e2e/test_child_init.py: a libcurl that does not
 * take CURLOPT_PROTOCOLS_STR, as one older than 7.85 (or built without the
 * option) would answer. Every other option goes to the real libcurl.
 *
 * The option's argument is forwarded as one pointer-sized value: on the
 * x86-64 and arm64 ABIs a long, a pointer and a curl_off_t all travel in one
 * general register, which is all this test needs.
 */
#define _GNU_SOURCE
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdarg.h>

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    static setopt_fn real;
    va_list ap;
    void *arg;

    va_start(ap, option);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (option == CURLOPT_PROTOCOLS_STR)
        return CURLE_UNKNOWN_OPTION;
    if (!real)
        real = (setopt_fn)dlsym(RTLD_NEXT, "curl_easy_setopt");
    return real ? real(curl, option, arg) : CURLE_FAILED_INIT;
}
