/*
 * bench/floors: what the gateway's two mandated libraries cost per request on
 * this machine, measured apart from httpd (bench/README.md, "Floors").
 *
 * A gateway built on libcurl and jansson cannot cost less per non-streaming
 * request than one libcurl transfer plus parsing the client's request and the
 * upstream's answer. bench/run adds httpd's own cost of a request that needs
 * neither, and so bounds from below what any such gateway costs, next to what
 * mod_proxy_http costs for the same request.
 *
 * The transfer is driven the way src/llmgw_upstream.c drives it: one reused
 * easy handle in a multi handle, curl_multi_perform/curl_multi_wait in 100 ms
 * slices, keep-alive to the upstream, the same options and request headers.
 * CPU time (user + system) comes from getrusage, so what the upstream or the
 * rest of the machine spends is not counted here.
 *
 * usage: floors <url> <request.json> <answer.json> [seconds per measurement]
 * prints: BENCH curl_us=.. curl_user_us=.. curl_sys_us=.. json_request_us=..
 *         json_answer_us=.. transfers=.. parses=..
 *
 * floors --count N --only curl|request|answer|dump-request|dump-answer <url>
 *        <request.json> <answer.json>
 * does exactly N of one operation (after the same warm-up) and prints nothing:
 * bench/instructions runs it under callgrind with two values of N, so the
 * difference is the instruction count of N2 - N1 operations. dump-request and
 * dump-answer serialise (json_dumpb, compact, one pass into a buffer large
 * enough) the tree of each document: what a translation, which cannot forward
 * any upstream bytes, must spend at least twice with jansson's serialiser.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    double user_us;
    double sys_us;
} cpu_t;

static cpu_t cpu_now(void)
{
    struct rusage ru;
    cpu_t c;

    getrusage(RUSAGE_SELF, &ru);
    c.user_us = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec;
    c.sys_us = ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
    return c;
}

static double wall_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "floors: cannot read %s\n", path);
        exit(2);
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "floors: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* The answer is only counted: keeping it would add a copy the gateway also makes. */
static size_t on_body(char *p, size_t size, size_t n, void *baton)
{
    size_t *total = baton;

    (void)p;
    *total += size * n;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *baton)
{
    (void)p;
    (void)baton;
    return size * n;
}

static CURL *make_handle(const char *url, const char *body, size_t len, struct curl_slist *hdrs,
                         size_t *received)
{
    CURL *e = curl_easy_init();

    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, received);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    return e;
}

/* One transfer; 0 when it completed with a 2xx answer. */
static int transfer(CURLM *m, CURL *e, const char *url)
{
    int running = 1, queued;
    long status = 0;
    CURLMsg *msg;
    CURLcode rc;

    /* Set per transfer, as the gateway does: the URL is parsed every time. */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    if (curl_multi_add_handle(m, e) != CURLM_OK)
        return -1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running && curl_multi_wait(m, NULL, 0, 100, NULL) != CURLM_OK)
            break;
    }
    msg = curl_multi_info_read(m, &queued);
    rc = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
    curl_multi_remove_handle(m, e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    return rc == CURLE_OK && status >= 200 && status < 300 ? 0 : -1;
}

/* Bounded by @p seconds, or exactly @p fixed transfers when fixed > 0. */
static int measure_curl(const char *url, const char *body, size_t len, double seconds, long fixed,
                        cpu_t *per, long *count)
{
    struct curl_slist *hdrs = NULL;
    size_t received = 0;
    CURLM *m = curl_multi_init();
    CURL *e;
    cpu_t c0, c1;
    double end;
    long i, n = 0;

    hdrs = curl_slist_append(hdrs, "Authorization: Bearer sk-bench-upstream");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    e = make_handle(url, body, len, hdrs, &received);
    if (!m || !e || !hdrs)
        return -1;
    /* Warm up: the connection, the resolver cache, the allocator. */
    for (i = 0; i < 200; i++)
        if (transfer(m, e, url) != 0)
            return -1;
    end = wall_s() + seconds;
    c0 = cpu_now();
    /* Bounded in count and in time. */
    for (n = 0; fixed > 0 ? n < fixed : n < 2000000 && wall_s() < end; n++)
        if (transfer(m, e, url) != 0)
            return -1;
    c1 = cpu_now();
    per->user_us = (c1.user_us - c0.user_us) / n;
    per->sys_us = (c1.sys_us - c0.sys_us) / n;
    *count = n;
    curl_multi_cleanup(m);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    return received > 0 ? 0 : -1;
}

/* CPU microseconds per json_loadb + json_decref of @p text; exactly @p fixed when > 0. */
static double measure_json(const char *text, size_t len, double seconds, long fixed, long *count)
{
    cpu_t c0, c1;
    double end = wall_s() + seconds;
    long n;

    c0 = cpu_now();
    for (n = 0; fixed > 0 ? n < fixed : n < 20000000 && (n % 1024 != 0 || wall_s() < end); n++) {
        json_t *j = json_loadb(text, len, 0, NULL);

        if (!j) {
            fprintf(stderr, "floors: payload is not JSON\n");
            exit(2);
        }
        json_decref(j);
    }
    c1 = cpu_now();
    *count = n;
    return (c1.user_us - c0.user_us + c1.sys_us - c0.sys_us) / n;
}

/* Exactly @p n compact serialisations of the tree of @p text, into one large-enough buffer. */
static int count_dumps(const char *text, size_t len, long n)
{
    static char out[1 << 16];
    json_t *j = json_loadb(text, len, 0, NULL);
    long i;

    if (!j || len >= sizeof(out))
        return -1;
    for (i = 0; i < n; i++)
        if (json_dumpb(j, out, sizeof(out), JSON_COMPACT) == 0)
            return -1;
    json_decref(j);
    return 0;
}

/* floors --count N --only OP ...: one operation, exactly N times. */
static int run_counted(char **argv, const char *url, const char *req, size_t req_len,
                       const char *ans, size_t ans_len)
{
    long fixed = atol(argv[2]), n;
    const char *op = argv[4];
    cpu_t per;

    if (fixed <= 0)
        return 2;
    if (strcmp(op, "curl") == 0)
        return measure_curl(url, req, req_len, 0, fixed, &per, &n) == 0 ? 0 : 1;
    if (strcmp(op, "request") == 0)
        return measure_json(req, req_len, 0, fixed, &n) >= 0 ? 0 : 1;
    if (strcmp(op, "answer") == 0)
        return measure_json(ans, ans_len, 0, fixed, &n) >= 0 ? 0 : 1;
    if (strcmp(op, "dump-request") == 0)
        return count_dumps(req, req_len, fixed) == 0 ? 0 : 1;
    if (strcmp(op, "dump-answer") == 0)
        return count_dumps(ans, ans_len, fixed) == 0 ? 0 : 1;
    return 2;
}

int main(int argc, char **argv)
{
    int counted = argc == 8 && strcmp(argv[1], "--count") == 0 && strcmp(argv[3], "--only") == 0;
    char **args = counted ? argv + 4 : argv;
    size_t req_len, ans_len;
    char *req, *ans;
    double seconds = !counted && argc > 4 ? atof(argv[4]) : 3.0;
    double jreq, jans;
    long transfers = 0, parses_req = 0, parses_ans = 0;
    cpu_t per;
    int rc;

    if (!counted && (argc < 4 || argc > 5)) {
        fprintf(stderr,
                "usage: floors <url> <request.json> <answer.json> [seconds]\n"
                "       floors --count N --only curl|request|answer|dump-request|dump-answer "
                "<url> <request.json> <answer.json>\n");
        return 2;
    }
    if (seconds <= 0 || seconds > 60)
        seconds = 3.0;
    req = slurp(args[2], &req_len);
    ans = slurp(args[3], &ans_len);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (counted) {
        rc = run_counted(argv, args[1], req, req_len, ans, ans_len);
        if (rc == 2)
            fprintf(stderr, "floors: bad --count or --only\n");
        curl_global_cleanup();
        free(req);
        free(ans);
        return rc;
    }
    if (measure_curl(args[1], req, req_len, seconds, 0, &per, &transfers) != 0) {
        fprintf(stderr, "floors: transfers to %s failed\n", args[1]);
        return 1;
    }
    jreq = measure_json(req, req_len, seconds / 2, 0, &parses_req);
    jans = measure_json(ans, ans_len, seconds / 2, 0, &parses_ans);
    printf("BENCH curl_us=%.1f curl_user_us=%.1f curl_sys_us=%.1f json_request_us=%.2f "
           "json_answer_us=%.2f transfers=%ld parses=%ld\n",
           per.user_us + per.sys_us, per.user_us, per.sys_us, jreq, jans, transfers,
           parses_req + parses_ans);
    curl_global_cleanup();
    free(req);
    free(ans);
    return 0;
}
