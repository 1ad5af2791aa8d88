/*
 * Remote image fetches and their guard (src/llmgw_fetch.c).
 *
 * The address classifier and the allowHosts match from tables; the fetch
 * itself through libcurl against a loopback image server (test_http_server.h),
 * which answers by path: an image, a page, a body past the
 * budget with and without Content-Length, a 404, a slow answer, redirects
 * (relative, to "localhost", in a loop). The server counts requests, so a
 * test can tell that a refused address was never connected to.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <apr_base64.h>
#include <apr_strings.h>
#include <apr_tables.h> /* before test_util.h, which uses apr_array_header_t */
#include <curl/curl.h>
#include "test_util.h"
#include "test_http_server.h"
#include "llmgw_fetch.h"

/* ---------------------------------------------------------------------- */
/* The address classifier                                                 */
/* ---------------------------------------------------------------------- */

static const struct {
    const char *ip;
    const char *cls; /* NULL: public */
} addr_cases[] = {
    {"127.0.0.1", "loopback"},
    {"127.255.0.9", "loopback"},
    {"::1", "loopback"},
    {"10.1.2.3", "private"},
    {"172.16.0.1", "private"},
    {"172.31.255.255", "private"},
    {"172.32.0.1", NULL},
    {"192.168.1.1", "private"},
    {"fc00::1", "private"},
    {"fd12:3456::1", "private"},
    {"fec0::1", "private"},
    {"169.254.169.254", "link-local"},
    {"fe80::1", "link-local"},
    {"febf::1", "link-local"},
    {"0.0.0.0", "unspecified"},
    {"0.1.2.3", "unspecified"},
    {"::", "unspecified"},
    {"100.64.0.1", "shared (CGNAT)"},
    {"100.127.255.254", "shared (CGNAT)"},
    {"100.128.0.1", NULL},
    {"224.0.0.1", "multicast"},
    {"239.255.255.250", "multicast"},
    {"ff02::1", "multicast"},
    {"240.0.0.1", "reserved"},
    {"255.255.255.255", "reserved"},
    {"192.0.0.8", "reserved"},
    {"198.18.0.1", "reserved"},
    {"192.0.2.1", "documentation"},
    {"198.51.100.7", "documentation"},
    {"203.0.113.9", "documentation"},
    {"2001:db8::1", "documentation"},
    {"2001::1", "reserved"},
    {"100::1", "reserved"},
    {"::2", "reserved"},
    {"::10.0.0.1", "reserved"},
    {"4000::1", "reserved"},
    /* IPv4 carried in IPv6: classed by the IPv4 address */
    {"::ffff:127.0.0.1", "loopback"},
    {"::ffff:7f00:1", "loopback"},
    {"::ffff:10.0.0.1", "private"},
    {"::ffff:169.254.169.254", "link-local"},
    {"::ffff:8.8.8.8", NULL},
    {"64:ff9b::7f00:1", "loopback"},
    {"64:ff9b::808:808", NULL},
    {"64:ff9b:1::1", "private"},
    {"2002:7f00:1::1", "loopback"},
    {"2002:c0a8:101::1", "private"},
    {"2002:808:808::1", NULL},
    /* public */
    {"8.8.8.8", NULL},
    {"1.1.1.1", NULL},
    {"93.184.216.34", NULL},
    {"2606:4700::1111", NULL},
    {"2a00:1450:4001::200e", NULL},
    /* not addresses */
    {"localhost", "not an IP address"},
    {"127.1", "not an IP address"},
    {"", "not an IP address"},
};

START_TEST(test_addr_class)
{
    const char *ip = addr_cases[_i].ip, *want = addr_cases[_i].cls;
    const char *got = llmgw_fetch_ip_class(ip);

    if (!want)
        ck_assert_msg(got == NULL, "%s: public expected, got %s", ip, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s expected, got %s", ip, want,
                      got ? got : "public");
}
END_TEST

START_TEST(test_addr_class_sockaddr)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr other;

    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(0x7f000001);
    ck_assert_str_eq(llmgw_fetch_addr_class((struct sockaddr *)&in), "loopback");
    in.sin_addr.s_addr = htonl(0x08080808);
    ck_assert_ptr_null(llmgw_fetch_addr_class((struct sockaddr *)&in));
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:192.168.0.1", &in6.sin6_addr), 1);
    ck_assert_str_eq(llmgw_fetch_addr_class((struct sockaddr *)&in6), "private");
    memset(&other, 0, sizeof(other));
    other.sa_family = AF_UNIX;
    ck_assert_str_eq(llmgw_fetch_addr_class(&other), "not an IP address");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* allowHosts                                                             */
/* ---------------------------------------------------------------------- */

/* Settings as the config loader leaves them: entries lowercase, IP literals canonical. */
static llmgw_image_fetch_t *fetch_cfg(const char *const *hosts, apr_off_t max_bytes,
                                      apr_interval_time_t timeout)
{
    llmgw_image_fetch_t *f = apr_pcalloc(test_pool, sizeof(*f));

    f->allow_hosts = apr_array_make(test_pool, 4, sizeof(const char *));
    while (hosts && *hosts)
        APR_ARRAY_PUSH(f->allow_hosts, const char *) = *hosts++;
    f->max_bytes = max_bytes;
    f->timeout = timeout;
    return f;
}

START_TEST(test_host_allowed)
{
    static const char *const hosts[] = {"images.example.internal", "127.0.0.1", "::1", NULL};
    llmgw_image_fetch_t *f = fetch_cfg(hosts, LLMGW_UNSET, LLMGW_UNSET);
    llmgw_image_fetch_t *none = fetch_cfg(NULL, LLMGW_UNSET, LLMGW_UNSET);

    ck_assert(llmgw_fetch_host_allowed(test_pool, f, "images.example.internal"));
    ck_assert(llmgw_fetch_host_allowed(test_pool, f, "Images.Example.Internal."));
    ck_assert(llmgw_fetch_host_allowed(test_pool, f, "127.0.0.1"));
    ck_assert(llmgw_fetch_host_allowed(test_pool, f, "[::1]"));
    ck_assert(llmgw_fetch_host_allowed(test_pool, f, "[0:0::0001]"));
    ck_assert(!llmgw_fetch_host_allowed(test_pool, f, "localhost"));
    ck_assert(!llmgw_fetch_host_allowed(test_pool, f, "127.0.0.2"));
    ck_assert(!llmgw_fetch_host_allowed(test_pool, f, "evil.images.example.internal"));
    ck_assert(!llmgw_fetch_host_allowed(test_pool, f, "images.example.internal.evil"));
    ck_assert(!llmgw_fetch_host_allowed(test_pool, none, "127.0.0.1"));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* A loopback image server                                                */
/* ---------------------------------------------------------------------- */

/* 67 bytes: a 1x1 PNG. */
static const char PNG_B64[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQ"
    "GAhKmMIQAAAABJRU5ErkJggg==";

/* The image server's state, read by its handler on the server's threads. */
static char png[128];
static int png_len;

static int send_head(int c, const char *status, const char *headers)
{
    return test_http_sendf(c, "HTTP/1.1 %s\r\n%sConnection: close\r\n\r\n", status, headers);
}

/* One request: answer by path, then close. */
static int serve_one(test_http_server_t *s, int c, const test_http_request_t *req, void *baton)
{
    const char *path = req->path;
    char hdr[256], big[2000];
    int i;

    memset(big, 'x', sizeof(big));
    if (strcmp(path, "/ok.png") == 0) {
        snprintf(hdr, sizeof(hdr), "Content-Type: Image/PNG; q=1\r\nContent-Length: %d\r\n",
                 png_len);
        send_head(c, "200 OK", hdr);
        test_http_send(c, png, (apr_size_t)png_len);
    }
    else if (strcmp(path, "/chunked.png") == 0) {
        send_head(c, "200 OK", "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n");
        test_http_sendf(c, "%x\r\n", png_len);
        test_http_send(c, png, (apr_size_t)png_len);
        test_http_send(c, "\r\n0\r\n\r\n", 7);
    }
    else if (strcmp(path, "/page.html") == 0) {
        send_head(c, "200 OK", "Content-Type: text/html\r\nContent-Length: 5\r\n");
        test_http_send(c, "<p>x\n", 5);
    }
    else if (strcmp(path, "/big-length.png") == 0) {
        send_head(c, "200 OK", "Content-Type: image/png\r\nContent-Length: 2000\r\n");
        test_http_send(c, big, sizeof(big));
    }
    else if (strcmp(path, "/big-chunked.png") == 0) {
        send_head(c, "200 OK", "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n");
        for (i = 0; i < 4; i++) {
            test_http_send(c, "1f4\r\n", 5);
            test_http_send(c, big, 500);
            test_http_send(c, "\r\n", 2);
        }
        test_http_send(c, "0\r\n\r\n", 5);
    }
    else if (strcmp(path, "/empty.png") == 0) {
        send_head(c, "200 OK", "Content-Type: image/png\r\nContent-Length: 0\r\n");
    }
    else if (strcmp(path, "/slow.png") == 0) {
        /* Ends as soon as the client gives up, so a long stall costs nothing. */
        if (test_http_wait(s, c, 10000) == 0)
            send_head(c, "200 OK", "Content-Type: image/png\r\nContent-Length: 0\r\n");
    }
    else if (strcmp(path, "/to-ok") == 0) {
        send_head(c, "302 Found", "Location: /ok.png\r\nContent-Length: 0\r\n");
    }
    else if (strcmp(path, "/to-localhost") == 0) {
        snprintf(hdr, sizeof(hdr), "Location: http://localhost:%d/ok.png\r\nContent-Length: 0\r\n",
                 test_http_server_port(s));
        send_head(c, "302 Found", hdr);
    }
    else if (strcmp(path, "/to-file") == 0) {
        send_head(c, "302 Found", "Location: file:///etc/passwd\r\nContent-Length: 0\r\n");
    }
    else if (strcmp(path, "/loop") == 0) {
        send_head(c, "301 Moved", "Location: /loop\r\nContent-Length: 0\r\n");
    }
    else {
        send_head(c, "404 Not Found", "Content-Type: text/plain\r\nContent-Length: 3\r\n");
        test_http_send(c, "no\n", 3);
    }
    return 0;
}

static test_http_server_t *server;

static void server_setup(void)
{
    test_pool_setup();
    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_ALL), CURLE_OK);
    png_len = apr_base64_decode_binary((unsigned char *)png, PNG_B64);
    server = test_http_server_start(serve_one, NULL);
    ck_assert_ptr_nonnull(server);
}

static void server_teardown(void)
{
    test_http_server_stop(server);
    server = NULL;
    curl_global_cleanup();
    test_pool_teardown();
}

/* Requests the server has read so far. */
static int requests(void)
{
    return (int)test_http_server_requests(server);
}

static const char *url(const char *path)
{
    return test_http_server_url(server, test_pool, path);
}

static const char *const LOOPBACK_ALLOWED[] = {"127.0.0.1", NULL};

/* Fetch @p path with 127.0.0.1 allowed (or not), a budget and a deadline that only a stuck
 * fetch reaches (valgrind on a loaded machine is slow). */
static llmgw_fetch_result_t fetch(const char *path, int allowed, apr_size_t max_bytes)
{
    llmgw_image_fetch_t *f = fetch_cfg(allowed ? LOOPBACK_ALLOWED : NULL, LLMGW_UNSET, LLMGW_UNSET);
    llmgw_fetch_result_t res;

    ck_assert_int_eq(llmgw_fetch_image(test_pool, f, url(path),
                                       apr_time_now() + apr_time_from_sec(15), max_bytes, &res),
                     APR_SUCCESS);
    return res;
}

START_TEST(test_fetch_allowed_image)
{
    llmgw_fetch_result_t res = fetch("/ok.png", 1, 1000);

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_OK);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.mime_type, "image/png");
    ck_assert_int_eq(res.len, png_len);
    ck_assert(memcmp(res.data, png, res.len) == 0);
    ck_assert_int_eq(requests(), 1);
    /* A body without Content-Length is read and capped the same way. */
    res = fetch("/chunked.png", 1, 1000);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_OK);
    ck_assert_int_eq(res.len, png_len);
    ck_assert(memcmp(res.data, png, res.len) == 0);
}
END_TEST

START_TEST(test_fetch_loopback_blocked)
{
    llmgw_fetch_result_t res = fetch("/ok.png", 0, 1000);

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_BLOCKED);
    ck_assert_str_eq(res.blocked_addr, "127.0.0.1");
    ck_assert_str_eq(res.blocked_class, "loopback");
    ck_assert_str_eq(llmgw_fetch_outcome_name(test_pool, &res), "blocked");
    /* The guard refused the connection itself: the server never saw a request. */
    ck_assert_int_eq(requests(), 0);
}
END_TEST

START_TEST(test_fetch_not_image)
{
    llmgw_fetch_result_t res = fetch("/page.html", 1, 1000);

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_NOT_IMAGE);
    ck_assert_str_eq(res.mime_type, "text/html");
}
END_TEST

START_TEST(test_fetch_too_large)
{
    llmgw_fetch_result_t res = fetch("/big-length.png", 1, 1000);

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_TOO_LARGE);
    res = fetch("/big-chunked.png", 1, 1000);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_TOO_LARGE);
    /* Exactly at the limit is fine. */
    res = fetch("/ok.png", 1, (apr_size_t)png_len);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_OK);
    res = fetch("/chunked.png", 1, (apr_size_t)png_len - 1);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_TOO_LARGE);
}
END_TEST

START_TEST(test_fetch_http_status)
{
    llmgw_fetch_result_t res = fetch("/missing.png", 1, 1000);

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_HTTP);
    ck_assert_int_eq(res.status, 404);
    ck_assert_str_eq(llmgw_fetch_outcome_name(test_pool, &res), "http_404");
}
END_TEST

START_TEST(test_fetch_timeout)
{
    llmgw_image_fetch_t *f = fetch_cfg(LOOPBACK_ALLOWED, LLMGW_UNSET, LLMGW_UNSET);
    llmgw_fetch_result_t res;
    apr_time_t start = apr_time_now();

    ck_assert_int_eq(llmgw_fetch_image(test_pool, f, url("/slow.png"),
                                       start + apr_time_from_msec(300), 1000, &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_TIMEOUT);
    /* Well before the 10 s the answer would take. */
    ck_assert_msg(apr_time_now() - start < apr_time_from_sec(5), "the deadline was not kept");
}
END_TEST

START_TEST(test_fetch_redirects)
{
    llmgw_fetch_result_t res = fetch("/to-ok", 1, 1000);
    int before;

    ck_assert_int_eq(res.outcome, LLMGW_FETCH_OK);
    ck_assert_int_eq(res.redirects, 1);
    ck_assert_int_eq(res.len, png_len);
    /* allowHosts names 127.0.0.1, not localhost: the next hop is checked on its own. */
    before = requests();
    res = fetch("/to-localhost", 1, 1000);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_BLOCKED);
    ck_assert_int_eq(res.redirects, 1);
    ck_assert_str_eq(res.host, "localhost");
    ck_assert_str_eq(res.blocked_class, "loopback");
    ck_assert_int_eq(requests() - before, 1);
    res = fetch("/to-file", 1, 1000);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_BAD_URL);
    ck_assert_int_eq(res.redirects, 1);
    before = requests();
    res = fetch("/loop", 1, 1000);
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_REDIRECTS);
    ck_assert_int_eq(requests() - before, LLMGW_FETCH_MAX_REDIRECTS + 1);
}
END_TEST

START_TEST(test_fetch_bad_urls)
{
    llmgw_image_fetch_t *f = fetch_cfg(LOOPBACK_ALLOWED, LLMGW_UNSET, LLMGW_UNSET);
    static const char *const bad[] = {"ftp://127.0.0.1/a.png", "file:///etc/passwd",
                                      "/relative.png",         "http://",
                                      "gopher://127.0.0.1/",   NULL};
    llmgw_fetch_result_t res;
    int i;

    for (i = 0; bad[i]; i++) {
        ck_assert_int_eq(llmgw_fetch_image(test_pool, f, bad[i],
                                           apr_time_now() + apr_time_from_sec(15), 1000, &res),
                         APR_SUCCESS);
        ck_assert_msg(res.outcome == LLMGW_FETCH_BAD_URL, "%s: outcome %d", bad[i], res.outcome);
    }
    ck_assert_int_eq(requests(), 0);
}
END_TEST

static apr_array_header_t *refs_of(const char *const *paths)
{
    apr_array_header_t *refs = apr_array_make(test_pool, 4, sizeof(llmgw_image_ref_t));
    int i;

    for (i = 0; paths[i]; i++) {
        llmgw_image_ref_t *r = apr_array_push(refs);
        r->url = url(paths[i]);
        r->param = apr_psprintf(test_pool, "messages[0].content[%d].image_url.url", i);
    }
    return refs;
}

START_TEST(test_fetch_images_encodes_each_url_once)
{
    static const char *const paths[] = {"/ok.png", "/chunked.png", "/ok.png", NULL};
    llmgw_image_fetch_t *f = fetch_cfg(LOOPBACK_ALLOWED, LLMGW_UNSET, LLMGW_UNSET);
    const llmgw_image_ref_t *failed = NULL;
    llmgw_fetch_result_t res;
    llmgw_error_t *err = NULL;
    apr_hash_t *images = NULL;
    const llmgw_image_t *img;

    ck_assert_int_eq(llmgw_fetch_images(test_pool, f, refs_of(paths), &images, &failed, &res, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(requests(), 2);
    ck_assert_int_eq(apr_hash_count(images), 2);
    img = apr_hash_get(images, url("/ok.png"), APR_HASH_KEY_STRING);
    ck_assert_ptr_nonnull(img);
    ck_assert_str_eq(img->mime_type, "image/png");
    ck_assert_str_eq(img->base64, PNG_B64);
    ck_assert_int_eq(img->size, png_len);
}
END_TEST

START_TEST(test_fetch_images_share_one_budget)
{
    static const char *const paths[] = {"/ok.png", "/chunked.png", NULL};
    /* Room for one image, not two. */
    llmgw_image_fetch_t *f = fetch_cfg(LOOPBACK_ALLOWED, 100, LLMGW_UNSET);
    const llmgw_image_ref_t *failed = NULL;
    llmgw_fetch_result_t res;
    llmgw_error_t *err = NULL;
    apr_hash_t *images = NULL;

    ck_assert_int_eq(llmgw_fetch_images(test_pool, f, refs_of(paths), &images, &failed, &res, &err),
                     LLMGW_EBADREQ);
    ck_assert_str_eq(failed->param, "messages[0].content[1].image_url.url");
    ck_assert_int_eq(res.outcome, LLMGW_FETCH_TOO_LARGE);
    ck_assert_int_eq(err->status, 400);
    ck_assert_str_eq(err->type, "invalid_request_error");
    ck_assert_str_eq(err->code, "invalid_image_url");
    ck_assert_str_eq(err->param, "messages[0].content[1].image_url.url");
    ck_assert_str_eq(err->message, "Could not fetch the image of "
                                   "'messages[0].content[1].image_url.url': the images of this "
                                   "request are together larger than 100 bytes.");
}
END_TEST

/* The client is told the class of a refused address, never the address. */
START_TEST(test_fetch_images_errors)
{
    static const struct {
        const char *path;
        int allowed;
        const char *code, *message;
    } cases[] = {
        {"/ok.png", 0, "invalid_image_url",
         "its host resolves to a loopback address, which this gateway does not fetch images "
         "from."},
        {"/to-localhost", 1, "invalid_image_url",
         "it redirects to a URL whose host resolves to a loopback address, which this gateway "
         "does not fetch images from."},
        {"/page.html", 1, "invalid_image_format",
         "the server answered with Content-Type 'text/html', not an image."},
        {"/big-length.png", 1, "invalid_image_url", "the image is larger than 1 KiB."},
        {"/missing.png", 1, "invalid_image_url", "the image server answered HTTP 404."},
        {"/empty.png", 1, "invalid_image_url", "the image server sent an empty image."},
        {"/loop", 1, "invalid_image_url", "it redirects more than 5 times."},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const paths[] = {cases[i].path, NULL};
        llmgw_image_fetch_t *f =
            fetch_cfg(cases[i].allowed ? LOOPBACK_ALLOWED : NULL, 1024, LLMGW_UNSET);
        const llmgw_image_ref_t *failed = NULL;
        llmgw_fetch_result_t res;
        llmgw_error_t *err = NULL;
        apr_hash_t *images = NULL;
        const char *want = apr_pstrcat(test_pool,
                                       "Could not fetch the image of "
                                       "'messages[0].content[0].image_url.url': ",
                                       cases[i].message, NULL);

        ck_assert_int_eq(
            llmgw_fetch_images(test_pool, f, refs_of(paths), &images, &failed, &res, &err),
            LLMGW_EBADREQ);
        ck_assert_str_eq(err->code, cases[i].code);
        ck_assert_str_eq(err->message, want);
        ck_assert_int_eq(err->status, 400);
        ck_assert_ptr_null(strstr(err->message, "127.0.0.1"));
    }
}
END_TEST

START_TEST(test_fetch_images_timeout_message)
{
    static const char *const paths[] = {"/slow.png", NULL};
    llmgw_image_fetch_t *f = fetch_cfg(LOOPBACK_ALLOWED, LLMGW_UNSET, apr_time_from_msec(300));
    const llmgw_image_ref_t *failed = NULL;
    llmgw_fetch_result_t res;
    llmgw_error_t *err = NULL;
    apr_hash_t *images = NULL;

    ck_assert_int_eq(llmgw_fetch_images(test_pool, f, refs_of(paths), &images, &failed, &res, &err),
                     LLMGW_EBADREQ);
    ck_assert_str_eq(err->message, "Could not fetch the image of "
                                   "'messages[0].content[0].image_url.url': the image could not "
                                   "be fetched within 300 ms.");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fetch");
    TCase *tc = test_fixture("guard");
    TCase *net = tcase_create("fetch");

    tcase_add_loop_test(tc, test_addr_class, 0, (int)(sizeof(addr_cases) / sizeof(addr_cases[0])));
    tcase_add_test(tc, test_addr_class_sockaddr);
    tcase_add_test(tc, test_host_allowed);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(net, server_setup, server_teardown);
    tcase_set_timeout(net, 30);
    tcase_add_test(net, test_fetch_allowed_image);
    tcase_add_test(net, test_fetch_loopback_blocked);
    tcase_add_test(net, test_fetch_not_image);
    tcase_add_test(net, test_fetch_too_large);
    tcase_add_test(net, test_fetch_http_status);
    tcase_add_test(net, test_fetch_timeout);
    tcase_add_test(net, test_fetch_redirects);
    tcase_add_test(net, test_fetch_bad_urls);
    tcase_add_test(net, test_fetch_images_encodes_each_url_once);
    tcase_add_test(net, test_fetch_images_share_one_budget);
    tcase_add_test(net, test_fetch_images_errors);
    tcase_add_test(net, test_fetch_images_timeout_message);
    suite_add_tcase(s, net);
    return test_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
