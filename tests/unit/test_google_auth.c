/*
 * Vertex AI service-account auth (src/llmgw_google_auth.c).
 *
 * An RSA key pair is generated once when the suite starts; every JWT is
 * verified with its public key (EVP_DigestVerify). Service-account files
 * are parsed from memory and read at configuration time with positions in
 * messages. The cache is driven with an injected clock and an injected
 * exchange, including the back-off and the single-flight behaviour with
 * real threads; the real exchange runs through libcurl against a loopback
 * token endpoint that checks the assertion.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_tables.h> /* before test_util.h, which uses apr_array_header_t */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include "test_util.h"
#include "llmgw_google_auth.h"
#include "llmgw_json.h"

#define T0 apr_time_from_sec(1764000000)
#define MIN(m) apr_time_from_sec((m)*60)

/* The suite's key pairs: made once in main(), before the tests fork. */
static EVP_PKEY *rsa_key;
static EVP_PKEY *other_rsa_key;
static char *rsa_pem;

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static char *pem_of(EVP_PKEY *key, const EVP_CIPHER *cipher)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    if (cipher)
        ck_assert_int_eq(
            PEM_write_bio_PKCS8PrivateKey(bio, key, cipher, NULL, 0, NULL, (void *)"secret-pass"),
            1);
    else
        ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

/* A service-account file's JSON text with @p token_uri (NULL: none) and @p pem. */
static const char *sa_json(const char *token_uri, const char *pem, int with_kid)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s}", "type", "service_account", "project_id", "acme-prod",
                  "client_email", "gw@acme-prod.iam.gserviceaccount.com", "private_key", pem);
    char *text;
    const char *out;

    if (with_kid)
        json_object_set_new(j, "private_key_id", json_string("kid-0123"));
    if (token_uri)
        json_object_set_new(j, "token_uri", json_string(token_uri));
    text = json_dumps(j, JSON_INDENT(2));
    out = apr_pstrdup(test_pool, text);
    free(text);
    json_decref(j);
    return out;
}

static llmgw_google_sa_t *parsed_sa(const char *token_uri, int with_kid)
{
    llmgw_google_sa_t *sa = apr_pcalloc(test_pool, sizeof(*sa));
    const char *text = sa_json(token_uri, rsa_pem, with_kid);
    const char *why = NULL;

    ck_assert_msg(llmgw_google_sa_parse(sa, test_pool, text, strlen(text), &why) == APR_SUCCESS,
                  "%s", why);
    return sa;
}

/* The refusal of a service-account text; checks that no key material is in it. */
static const char *sa_refusal(const char *text)
{
    llmgw_google_sa_t sa;
    const char *why = NULL;

    ck_assert_int_eq(llmgw_google_sa_parse(&sa, test_pool, text, strlen(text), &why), APR_EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(sa.key);
    ck_assert_msg(!strstr(why, "BEGIN") && !strstr(why, "MII") && !strstr(why, "SECRET"),
                  "why leaks key: %s", why);
    return why;
}

/* base64url -> bytes (NUL-terminated), from test_pool. */
static unsigned char *b64url_decode(const char *s, apr_size_t n, apr_size_t *out_len)
{
    char *std = apr_palloc(test_pool, n + 4);
    unsigned char *out;
    apr_size_t i;
    int len;

    for (i = 0; i < n; i++) {
        ck_assert_msg(s[i] != '=' && s[i] != '+' && s[i] != '/', "not base64url: %.*s", (int)n, s);
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    while (i % 4)
        std[i++] = '=';
    std[i] = '\0';
    out = apr_palloc(test_pool, (apr_size_t)apr_base64_decode_len(std) + 1);
    len = apr_base64_decode_binary(out, std);
    out[len] = '\0';
    *out_len = (apr_size_t)len;
    return out;
}

typedef struct {
    json_t *header;
    json_t *claims;
    const char *input; /* "<header>.<claims>" */
    unsigned char *sig;
    apr_size_t sig_len;
} jwt_parts_t;

static jwt_parts_t split_jwt(const char *jwt)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    jwt_parts_t parts;
    apr_size_t n;
    unsigned char *h, *c;

    ck_assert_msg(d1 && d2 && !strchr(d2 + 1, '.'), "not three parts: %s", jwt);
    h = b64url_decode(jwt, (apr_size_t)(d1 - jwt), &n);
    parts.header = llmgw_json_pool_own(test_pool, test_parse_json((const char *)h, n));
    c = b64url_decode(d1 + 1, (apr_size_t)(d2 - d1 - 1), &n);
    parts.claims = llmgw_json_pool_own(test_pool, test_parse_json((const char *)c, n));
    parts.input = apr_pstrmemdup(test_pool, jwt, (apr_size_t)(d2 - jwt));
    parts.sig = b64url_decode(d2 + 1, strlen(d2 + 1), &parts.sig_len);
    return parts;
}

static int verify(EVP_PKEY *key, const char *input, const unsigned char *sig, apr_size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, strlen(input)) == 1;

    EVP_MD_CTX_free(ctx);
    return ok;
}

static llmgw_backend_t *make_backend(const char *name, const llmgw_google_sa_t *sa)
{
    llmgw_backend_t *b = apr_pcalloc(test_pool, sizeof(*b));

    b->name = name;
    b->type = LLMGW_BACKEND_GOOGLE;
    b->project_id = "acme-prod";
    b->location = "europe-west4";
    b->google_sa = sa;
    b->timeout = b->first_byte_timeout = b->idle_timeout = LLMGW_UNSET;
    b->connect_timeout = apr_time_from_sec(2);
    b->max_retries = LLMGW_UNSET;
    return b;
}

static const char *write_temp(const char *text)
{
    char *path = apr_pstrdup(test_pool, "/tmp/llmgw-sa-XXXXXX");
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* ---------------------------------------------------------------------- */
/* Service-account files                                                  */
/* ---------------------------------------------------------------------- */

START_TEST(sa_parse_fields)
{
    llmgw_google_sa_t *sa = parsed_sa("https://oauth2.example.test/token", 1);

    ck_assert_str_eq(sa->client_email, "gw@acme-prod.iam.gserviceaccount.com");
    ck_assert_str_eq(sa->private_key_id, "kid-0123");
    ck_assert_str_eq(sa->token_uri, "https://oauth2.example.test/token");
    ck_assert_str_eq(sa->project_id, "acme-prod");
    /* The key is kept parsed (the PEM text is not), and it is the file's key. */
    ck_assert_ptr_nonnull(sa->key);
    ck_assert_int_eq(EVP_PKEY_eq(sa->key, rsa_key), 1);
}
END_TEST

START_TEST(sa_parse_optional_fields)
{
    llmgw_google_sa_t *sa = parsed_sa("https://oauth2.googleapis.com/token", 0);

    ck_assert_ptr_null(sa->private_key_id);
    ck_assert_int_eq(EVP_PKEY_eq(sa->key, rsa_key), 1);
}
END_TEST

START_TEST(sa_parse_refusals)
{
    static const struct {
        const char *json;
        const char *why;
    } cases[] = {
        {"[1]", "is not a JSON object"},
        {"{\"type\":\"service_account\",\"client", "is not a JSON object"},
        {"{\"type\":\"authorized_user\",\"client_email\":\"a\",\"private_key\":\"SECRETKEY\"}",
         "is of type \"authorized_user\", not \"service_account\""},
        {"{\"private_key\":\"SECRETKEY\",\"token_uri\":\"https://t/token\"}",
         "has no client_email"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"\",\"token_uri\":\"https://t/token\"}",
         "has no private_key"},
        {"{\"client_email\":\"a@b\",\"private_key\":7,\"token_uri\":\"https://t/token\"}",
         "has no private_key"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"SECRETKEY\"}", "has no token_uri"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"SECRETKEY\",\"token_uri\":"
         "\"http://oauth2.example.test/token\"}",
         "has a token_uri that is neither an https URL nor an http URL on the loopback interface"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"SECRETKEY\",\"token_uri\":"
         "\"http://127.0.0.1.evil.test/token\"}",
         "has a token_uri that is neither an https URL nor an http URL on the loopback interface"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"SECRETKEY\",\"token_uri\":\"ftp://x\"}",
         "has a token_uri that is neither an https URL nor an http URL on the loopback interface"},
        {"{\"client_email\":\"a@b\",\"private_key\":\"SECRETKEY\",\"token_uri\":\"https://t/x\"}",
         "has a private_key that is not an unencrypted PEM private key"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_str_eq(sa_refusal(cases[i].json), cases[i].why);
}
END_TEST

/* Keys OpenSSL cannot use for RS256 are refused when the file is read, not at the first request. */
START_TEST(sa_parse_unusable_keys)
{
    static const char *const uri = "https://oauth2.googleapis.com/token";
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    char *ec_pem = pem_of(ec, NULL);
    char *encrypted = pem_of(rsa_key, EVP_aes_128_cbc());
    char *cut = strdup(rsa_pem);

    cut[strlen(cut) / 2] = '\0';
    ck_assert_str_eq(sa_refusal(sa_json(uri, "not a key", 1)),
                     "has a private_key that is not an unencrypted PEM private key");
    ck_assert_str_eq(sa_refusal(sa_json(uri, cut, 1)),
                     "has a private_key that is not an unencrypted PEM private key");
    /* Encrypted keys fail at once: no passphrase prompt on httpd's terminal. */
    ck_assert_str_eq(sa_refusal(sa_json(uri, encrypted, 1)),
                     "has a private_key that is not an unencrypted PEM private key");
    ck_assert_str_eq(sa_refusal(sa_json(uri, ec_pem, 1)),
                     "has a private_key that is not an RSA key (the JWT is signed with RS256)");
    free(cut);
    free(encrypted);
    free(ec_pem);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(sa_parse_loopback_http_allowed)
{
    static const char *const uris[] = {"http://127.0.0.1:8080/token", "http://localhost/t",
                                       "http://[::1]:9/token", "HTTPS://oauth2.googleapis.com/x"};
    size_t i;

    for (i = 0; i < 4; i++)
        ck_assert_str_eq(parsed_sa(uris[i], 1)->token_uri, uris[i]);
}
END_TEST

START_TEST(sa_load_file)
{
    const char *path = write_temp(sa_json("https://t.example/token", rsa_pem, 1));
    char dir[] = "/tmp/llmgw-sa-dir-XXXXXX";
    llmgw_google_sa_t sa;
    const char *why = NULL;

    ck_assert_int_eq(llmgw_google_sa_load(&sa, test_pool, path, &why), APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_eq(sa.key, rsa_key), 1);
    unlink(path);
    ck_assert_int_ne(llmgw_google_sa_load(&sa, test_pool, path, &why), APR_SUCCESS);
    ck_assert_str_eq(why, "cannot be read (No such file or directory)");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(llmgw_google_sa_load(&sa, test_pool, dir, &why), APR_EINVAL);
    ck_assert_str_eq(why, "is not a regular file");
    rmdir(dir);
    path = write_temp("");
    ck_assert_int_eq(llmgw_google_sa_load(&sa, test_pool, path, &why), APR_EINVAL);
    ck_assert_str_eq(why, "is empty");
    unlink(path);
    path = write_temp("{\"client_email\":\"a@b\"}");
    ck_assert_int_eq(llmgw_google_sa_load(&sa, test_pool, path, &why), APR_EINVAL);
    ck_assert_str_eq(why, "has no private_key");
    unlink(path);
}
END_TEST

/* The key is freed with the pool it was parsed into (a restart's pconf). */
START_TEST(sa_key_lives_with_its_pool)
{
    const char *text = sa_json("https://t.example/token", rsa_pem, 1);
    llmgw_google_sa_t sa;
    apr_pool_t *p;
    const char *why;

    apr_pool_create(&p, test_pool);
    ck_assert_int_eq(llmgw_google_sa_parse(&sa, p, text, strlen(text), &why), APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_up_ref(sa.key), 1);
    apr_pool_destroy(p);
    /* Our reference is now the last one: freeing it must be the end (ASan/valgrind see leaks). */
    EVP_PKEY_free(sa.key);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Reading the key at configuration time                                  */
/* ---------------------------------------------------------------------- */

static llmgw_config_t *vertex_config(const char *config_lines)
{
    const char *text = apr_psprintf(test_pool,
                                    "backends:\n"
                                    "  - name: gem\n"
                                    "    type: google\n"
                                    "    config: {apiKey: k}\n"
                                    "  - name: vtx\n"
                                    "    type: google\n"
                                    "    config:\n"
                                    "      projectId: acme-prod\n"
                                    "      location: europe-west4\n"
                                    "%s"
                                    "routes:\n"
                                    "  - {name: c, path: /v1/chat/completions, backend: vtx}\n",
                                    config_lines);
    llmgw_config_t *cfg = NULL;
    const char *err = NULL;

    ck_assert_msg(llmgw_config_parse(&cfg, test_pool, test_pool, "gw.yaml", text, strlen(text),
                                     &err) == APR_SUCCESS,
                  "%s", err ? err : "?");
    return cfg;
}

static llmgw_backend_t *backend_named(llmgw_config_t *cfg, const char *name)
{
    return (llmgw_backend_t *)llmgw_config_backend(cfg, name);
}

/* The message llmgw_google_cfg_load_sa gives for backend vtx of a config with @p lines. */
static const char *cfg_refusal(const char *lines, const char *base)
{
    llmgw_config_t *cfg = vertex_config(lines);
    const char *msg = NULL;

    ck_assert_int_ne(
        llmgw_google_cfg_load_sa(cfg, backend_named(cfg, "vtx"), base, NULL, test_pool, &msg),
        APR_SUCCESS);
    ck_assert_ptr_null(backend_named(cfg, "vtx")->google_sa);
    return msg;
}

START_TEST(cfg_load_sa_reads_the_key)
{
    const char *path = write_temp(sa_json("https://t.example/token", rsa_pem, 1));
    llmgw_config_t *cfg =
        vertex_config(apr_psprintf(test_pool, "      credentialsFile: \"%s\"\n", path));
    llmgw_backend_t *vtx = backend_named(cfg, "vtx"), *gem = backend_named(cfg, "gem");
    const char *msg = NULL;

    ck_assert_int_eq(llmgw_google_cfg_load_sa(cfg, gem, NULL, NULL, test_pool, &msg), APR_SUCCESS);
    ck_assert_ptr_null(gem->google_sa); /* AI Studio: nothing to read */
    ck_assert_int_eq(llmgw_google_cfg_load_sa(cfg, vtx, NULL, NULL, test_pool, &msg), APR_SUCCESS);
    ck_assert_ptr_nonnull(vtx->google_sa);
    ck_assert_int_eq(EVP_PKEY_eq(vtx->google_sa->key, rsa_key), 1);
    ck_assert_str_eq(vtx->google_sa->client_email, "gw@acme-prod.iam.gserviceaccount.com");
    unlink(path);
}
END_TEST

START_TEST(cfg_load_sa_refusals_point_at_the_file)
{
    const char *missing = "/nonexistent/llmgw/sa.json";
    const char *notjson = write_temp("not json at all");
    const char *noemail = write_temp("{\"private_key\":\"-----BEGIN PRIVATE "
                                     "KEY-----\\nMIIsecret\\n-----END PRIVATE KEY-----\\n\","
                                     "\"token_uri\":\"https://t/token\"}");
    const char *msg;

    /* credentialsFile is on line 10, its value at column 24. */
    msg = cfg_refusal(apr_psprintf(test_pool, "      credentialsFile: %s\n", missing), NULL);
    ck_assert_str_eq(msg, "gw.yaml:10:24: backend \"vtx\" (Vertex AI): the service-account file "
                          "/nonexistent/llmgw/sa.json cannot be read (No such file or directory)");
    msg = cfg_refusal(apr_psprintf(test_pool, "      credentialsFile: %s\n", notjson), NULL);
    ck_assert_str_eq(msg, apr_psprintf(test_pool,
                                       "gw.yaml:10:24: backend \"vtx\" (Vertex AI): the "
                                       "service-account file %s is not a JSON object",
                                       notjson));
    msg = cfg_refusal(apr_psprintf(test_pool, "      credentialsFile: %s\n", noemail), NULL);
    ck_assert_str_eq(msg, apr_psprintf(test_pool,
                                       "gw.yaml:10:24: backend \"vtx\" (Vertex AI): the "
                                       "service-account file %s has no client_email",
                                       noemail));
    ck_assert_ptr_null(strstr(msg, "MII"));
    unlink(notjson);
    unlink(noemail);
}
END_TEST

/* Without credentialsFile the environment names the file; messages point at projectId. */
START_TEST(cfg_load_sa_from_the_environment)
{
    const char *path = write_temp(sa_json("https://t.example/token", rsa_pem, 1));
    llmgw_config_t *cfg;
    const char *msg = NULL;

    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    ck_assert_str_eq(cfg_refusal("", NULL),
                     "gw.yaml:8:18: backend \"vtx\" (Vertex AI): no credentialsFile is given and "
                     "GOOGLE_APPLICATION_CREDENTIALS is not set");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/env-sa.json", 1);
    ck_assert_str_eq(cfg_refusal("", NULL),
                     "gw.yaml:8:18: backend \"vtx\" (Vertex AI): the service-account file "
                     "/nonexistent/env-sa.json cannot be read (No such file or directory)");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
    cfg = vertex_config("");
    ck_assert_int_eq(
        llmgw_google_cfg_load_sa(cfg, backend_named(cfg, "vtx"), NULL, NULL, test_pool, &msg),
        APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_eq(backend_named(cfg, "vtx")->google_sa->key, rsa_key), 1);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unlink(path);
}
END_TEST

/* A relative path is taken from @p base (httpd: ServerRoot); one file is read once. */
START_TEST(cfg_load_sa_relative_and_shared)
{
    const char *path = write_temp(sa_json("https://t.example/token", rsa_pem, 1));
    const char *name = strrchr(path, '/') + 1;
    apr_hash_t *loaded = apr_hash_make(test_pool);
    llmgw_config_t *a = vertex_config(apr_psprintf(test_pool, "      credentialsFile: %s\n", name));
    llmgw_config_t *b = vertex_config(apr_psprintf(test_pool, "      credentialsFile: %s\n", path));
    const char *msg = NULL;

    ck_assert_int_eq(
        llmgw_google_cfg_load_sa(a, backend_named(a, "vtx"), "/tmp", loaded, test_pool, &msg),
        APR_SUCCESS);
    unlink(path); /* the second backend naming the same file does not read it again */
    ck_assert_int_eq(
        llmgw_google_cfg_load_sa(b, backend_named(b, "vtx"), "/tmp", loaded, test_pool, &msg),
        APR_SUCCESS);
    ck_assert_ptr_eq(backend_named(a, "vtx")->google_sa, backend_named(b, "vtx")->google_sa);
    msg = cfg_refusal(apr_psprintf(test_pool, "      credentialsFile: %s\n", name), "/tmp");
    ck_assert_msg(strstr(msg, apr_psprintf(test_pool, " file %s cannot be read", path)), "%s", msg);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* JWT                                                                    */
/* ---------------------------------------------------------------------- */

START_TEST(base64url_alphabet_no_padding)
{
    static const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0xfe};

    ck_assert_str_eq(llmgw_google_base64url(test_pool, bytes, 3), "-_-_");
    ck_assert_str_eq(llmgw_google_base64url(test_pool, bytes, 4), "-_-__g");
    ck_assert_str_eq(llmgw_google_base64url(test_pool, (const unsigned char *)"a", 1), "YQ");
    ck_assert_str_eq(llmgw_google_base64url(test_pool, (const unsigned char *)"ab", 2), "YWI");
    ck_assert_str_eq(llmgw_google_base64url(test_pool, (const unsigned char *)"", 0), "");
}
END_TEST

START_TEST(jwt_header_claims_signature)
{
    llmgw_google_sa_t *sa = parsed_sa("https://oauth2.googleapis.com/token", 1);
    json_t *want_header = llmgw_json_pool_own(
        test_pool, json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", "kid-0123"));
    json_t *want_claims = llmgw_json_pool_own(
        test_pool,
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", "gw@acme-prod.iam.gserviceaccount.com",
                  "scope", "https://www.googleapis.com/auth/cloud-platform", "aud",
                  "https://oauth2.googleapis.com/token", "iat", (json_int_t)1764000000, "exp",
                  (json_int_t)1764003600));
    const char *jwt = NULL, *why = NULL;
    jwt_parts_t parts;

    ck_assert_int_eq(
        llmgw_google_jwt_sign(&jwt, test_pool, sa, LLMGW_GOOGLE_SCOPE, T0 + 999999, &why),
        APR_SUCCESS);
    parts = split_jwt(jwt);
    ck_assert_json_eq(parts.header, want_header);
    ck_assert_json_eq(parts.claims, want_claims);
    ck_assert_uint_eq(parts.sig_len, 256); /* RSA-2048 */
    ck_assert_msg(verify(rsa_key, parts.input, parts.sig, parts.sig_len),
                  "signature does not verify");
    /* A different key, or any change to the signed input, must fail. */
    ck_assert(!verify(other_rsa_key, parts.input, parts.sig, parts.sig_len));
    ck_assert(
        !verify(rsa_key, apr_pstrcat(test_pool, parts.input, "x", NULL), parts.sig, parts.sig_len));
    parts.sig[10] ^= 1;
    ck_assert(!verify(rsa_key, parts.input, parts.sig, parts.sig_len));
}
END_TEST

START_TEST(jwt_without_kid_and_other_aud)
{
    llmgw_google_sa_t *sa = parsed_sa("http://127.0.0.1:4444/token", 0);
    const char *jwt = NULL, *why = NULL;
    jwt_parts_t parts;

    ck_assert_int_eq(llmgw_google_jwt_sign(&jwt, test_pool, sa, "scope-a scope-b", T0, &why),
                     APR_SUCCESS);
    parts = split_jwt(jwt);
    ck_assert_ptr_null(json_object_get(parts.header, "kid"));
    ck_assert_str_eq(llmgw_json_str(parts.claims, "aud"), "http://127.0.0.1:4444/token");
    ck_assert_str_eq(llmgw_json_str(parts.claims, "scope"), "scope-a scope-b");
    ck_assert(verify(rsa_key, parts.input, parts.sig, parts.sig_len));
}
END_TEST

START_TEST(jwt_without_a_key)
{
    llmgw_google_sa_t sa = {"a@b", NULL, "https://t/token", NULL, NULL};
    const char *jwt = NULL, *why = NULL;

    ck_assert_int_eq(llmgw_google_jwt_sign(&jwt, test_pool, &sa, LLMGW_GOOGLE_SCOPE, T0, &why),
                     APR_EINVAL);
    ck_assert_str_eq(why, "no service-account key was loaded");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The exchange body and the token answer                                 */
/* ---------------------------------------------------------------------- */

START_TEST(form_encoding)
{
    const char *pairs[] = {"a b", "x&y=z", "k", "caf\xc3\xa9~._-", "empty", "", NULL};

    ck_assert_str_eq(llmgw_google_form_encode(test_pool, pairs),
                     "a+b=x%26y%3Dz&k=caf%C3%A9~._-&empty=");
    ck_assert_str_eq(llmgw_google_token_request_body(test_pool, "eyJh.eyJi.c2ln-_"),
                     "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                     "&assertion=eyJh.eyJi.c2ln-_");
}
END_TEST

START_TEST(token_parse_cases)
{
    static const struct {
        const char *body;
        const char *token; /* NULL: refused with `why` */
        long long lifetime_s;
        const char *why;
    } cases[] = {
        {"{\"access_token\":\"ya29.c.b0Aa\",\"expires_in\":3599,\"token_type\":\"Bearer\"}",
         "ya29.c.b0Aa", 3599, NULL},
        {"{\"access_token\":\"ya29.x\",\"expires_in\":\"3600\",\"token_type\":\"bearer\"}",
         "ya29.x", 3600, NULL},
        {"{\"access_token\":\"ya29.y\"}", "ya29.y", 600, NULL},
        {"{\"access_token\":\"ya29.z\",\"expires_in\":99999999}", "ya29.z", 86400, NULL},
        {"{\"access_token\":\"ya29.r\",\"expires_in\":12.7}", "ya29.r", 12, NULL},
        {"{\"access_token\":\"ya29.x\",\"expires_in\":0}", NULL, 0,
         "the token endpoint's expires_in is not a positive number"},
        {"{\"access_token\":\"ya29.x\",\"expires_in\":\"soon\"}", NULL, 0,
         "the token endpoint's expires_in is not a positive number"},
        {"{\"expires_in\":3600}", NULL, 0, "the token endpoint's answer has no access_token"},
        {"{\"access_token\":\"ya29 x\"}", NULL, 0,
         "the token endpoint's access_token is not a valid token"},
        {"{\"access_token\":\"ya29.x\\r\\nX-Evil: 1\"}", NULL, 0,
         "the token endpoint's access_token is not a valid token"},
        {"{\"access_token\":\"ya29.x\",\"token_type\":\"mac\"}", NULL, 0,
         "the token endpoint's token_type is not Bearer"},
        {"<html>", NULL, 0, "the token endpoint's answer is not a JSON object"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *token = NULL, *why = NULL;
        apr_interval_time_t life = -1;
        apr_status_t rv = llmgw_google_token_parse(cases[i].body, strlen(cases[i].body), test_pool,
                                                   &token, &life, &why);

        if (cases[i].token) {
            ck_assert_msg(rv == APR_SUCCESS, "case %d: %s", (int)i, why);
            ck_assert_str_eq(token, cases[i].token);
            ck_assert_int_eq(life, apr_time_from_sec(cases[i].lifetime_s));
        }
        else {
            ck_assert_msg(rv == APR_EINVAL, "case %d: rv %d", (int)i, rv);
            ck_assert_str_eq(why, cases[i].why);
        }
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The cache decision                                                     */
/* ---------------------------------------------------------------------- */

START_TEST(token_state_hour)
{
    apr_time_t exp = T0 + apr_time_from_sec(3600);

    ck_assert_int_eq(llmgw_google_token_state(T0, T0, exp), LLMGW_GOOGLE_TOKEN_FRESH);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(3299), T0, exp),
                     LLMGW_GOOGLE_TOKEN_FRESH);
    /* 5 minutes left: due, still usable. */
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(3300), T0, exp),
                     LLMGW_GOOGLE_TOKEN_DUE);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(3569), T0, exp),
                     LLMGW_GOOGLE_TOKEN_DUE);
    /* 30 s left: no longer handed out. */
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(3570), T0, exp),
                     LLMGW_GOOGLE_TOKEN_EXPIRED);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(9000), T0, exp),
                     LLMGW_GOOGLE_TOKEN_EXPIRED);
    ck_assert_int_eq(llmgw_google_token_state(T0, 0, 0), LLMGW_GOOGLE_TOKEN_EXPIRED);
}
END_TEST

START_TEST(token_state_short_lived)
{
    apr_time_t exp = T0 + apr_time_from_sec(10);

    /* Half the lifetime and a tenth of it stand in for 5 min and 30 s. */
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(4), T0, exp),
                     LLMGW_GOOGLE_TOKEN_FRESH);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(5), T0, exp),
                     LLMGW_GOOGLE_TOKEN_DUE);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_msec(8900), T0, exp),
                     LLMGW_GOOGLE_TOKEN_DUE);
    ck_assert_int_eq(llmgw_google_token_state(T0 + apr_time_from_sec(9), T0, exp),
                     LLMGW_GOOGLE_TOKEN_EXPIRED);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The cache, with an injected clock and exchange                         */
/* ---------------------------------------------------------------------- */

typedef struct {
    apr_time_t now;
    int calls;
    int fail;            /* the next exchanges fail */
    apr_time_t last_now; /* the `now` the exchange was given */
    apr_interval_time_t lifetime;
    const llmgw_backend_t *last_backend;
    /* blocking, for the threaded tests */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    int block;  /* exchanges wait until this is 0 */
    int inside; /* exchanges currently waiting */
} fake_t;

static apr_time_t fake_clock(void *baton)
{
    return ((fake_t *)baton)->now;
}

static apr_status_t fake_fetch(void *baton, llmgw_upstream_t *up, const llmgw_backend_t *b,
                               apr_pool_t *p, apr_time_t now, const char **token,
                               apr_interval_time_t *lifetime, llmgw_error_t **err)
{
    fake_t *f = baton;
    int n, fail;

    if (f->mutex) {
        apr_thread_mutex_lock(f->mutex);
        f->inside++;
        apr_thread_cond_broadcast(f->cond);
        while (f->block)
            apr_thread_cond_wait(f->cond, f->mutex);
        f->inside--;
    }
    n = ++f->calls;
    fail = f->fail;
    f->last_now = now;
    f->last_backend = b;
    if (f->mutex)
        apr_thread_mutex_unlock(f->mutex);
    if (fail) {
        *err = llmgw_error_make(p, 502, "server_error", "upstream_auth_failed", NULL,
                                "exchange %d refused", n);
        return APR_EGENERAL;
    }
    *token = apr_psprintf(p, "tok-%d", n);
    *lifetime = f->lifetime ? f->lifetime : apr_time_from_sec(3600);
    return APR_SUCCESS;
}

static llmgw_google_auth_t *fake_auth(fake_t *f)
{
    llmgw_google_auth_t *ga;

    ck_assert_int_eq(llmgw_google_auth_create(&ga, test_pool), APR_SUCCESS);
    llmgw_google_auth_set_clock(ga, fake_clock, f);
    llmgw_google_auth_set_fetch(ga, fake_fetch, f);
    f->now = T0;
    return ga;
}

static const char *get_token(llmgw_google_auth_t *ga, const llmgw_backend_t *b, apr_status_t want,
                             llmgw_error_t **err_out)
{
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    ck_assert_int_eq(llmgw_google_auth_token(ga, NULL, b, test_pool, &token, &err), want);
    if (err_out)
        *err_out = err;
    return token;
}

START_TEST(cache_fresh_due_expired)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    llmgw_backend_t *b = make_backend("vtx", NULL);
    llmgw_error_t *err;

    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    ck_assert_int_eq(f.last_now, T0); /* the JWT is made with the injected clock */
    f.now = T0 + MIN(54);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    ck_assert_int_eq(f.calls, 1);
    /* Less than 5 minutes left: refreshed ahead of time. */
    f.now = T0 + MIN(56);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 2);
    ck_assert_int_eq(f.last_now, T0 + MIN(56));
    /* A failed refresh of a due token keeps the old one in use... */
    f.fail = 1;
    f.now = T0 + MIN(56 + 56);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 3);
    /* ...without a new exchange during the back-off (1 s)... */
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 3);
    /* ...and is tried again by the first caller after it. */
    f.now += apr_time_from_sec(1);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 4);
    /* Past its end, a failure reaches the caller. */
    f.now = T0 + MIN(56 + 60);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->message, "exchange 5 refused");
    f.fail = 0;
    f.now += apr_time_from_sec(4); /* the third failure in a row: 4 s */
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-6");
}
END_TEST

START_TEST(backoff_schedule)
{
    static const struct {
        int failures;
        int seconds;
    } cases[] = {{-1, 0}, {0, 0},  {1, 1},  {2, 2},  {3, 4},    {4, 8},
                 {5, 16}, {6, 32}, {7, 60}, {8, 60}, {100, 60}, {INT_MAX, 60}};
    size_t i;

    ck_assert_int_eq(LLMGW_GOOGLE_BACKOFF_BASE, apr_time_from_sec(1));
    ck_assert_int_eq(LLMGW_GOOGLE_BACKOFF_MAX, apr_time_from_sec(60));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(llmgw_google_backoff(cases[i].failures) ==
                          apr_time_from_sec(cases[i].seconds),
                      "%d failures", cases[i].failures);
}
END_TEST

/* No token and a failing endpoint: callers fail at once, the endpoint is asked on schedule. */
START_TEST(cache_backoff_fails_fast)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    llmgw_backend_t *b = make_backend("vtx", NULL);
    llmgw_error_t *err;
    int i;

    f.fail = 1;
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_str_eq(err->message, "exchange 1 refused");
    for (i = 0; i < 5; i++) {
        f.now = T0 + apr_time_from_msec(200 * i);
        ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
        ck_assert_int_eq(err->status, 502);
        ck_assert_str_eq(err->code, "upstream_auth_failed");
        ck_assert_str_eq(err->message, "exchange 1 refused; no new token request for 1 s");
    }
    ck_assert_int_eq(f.calls, 1);
    /* 1 s after the first failure: one exchange; it fails, the wait doubles. */
    f.now = T0 + apr_time_from_sec(1);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_str_eq(err->message, "exchange 2 refused");
    f.now = T0 + apr_time_from_msec(1500);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_str_eq(err->message, "exchange 2 refused; no new token request for 2 s");
    f.now = T0 + apr_time_from_msec(2999);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_int_eq(f.calls, 2);
    f.now = T0 + apr_time_from_sec(3);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_int_eq(f.calls, 3);
    f.now = T0 + apr_time_from_sec(6);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_str_eq(err->message, "exchange 3 refused; no new token request for 1 s");
    ck_assert_int_eq(f.calls, 3);
    /* Recovery: the first exchange after the wait succeeds... */
    f.fail = 0;
    f.now = T0 + apr_time_from_sec(7);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-4");
    /* ...and resets the schedule: the next failure waits 1 s again. */
    f.fail = 1;
    f.now += apr_time_from_sec(7200);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_int_eq(f.calls, 5);
    f.now += apr_time_from_sec(1);
    ck_assert_ptr_null(get_token(ga, b, APR_EGENERAL, &err));
    ck_assert_int_eq(f.calls, 6);
    /* Another backend has its own schedule. */
    ck_assert_ptr_null(get_token(ga, make_backend("other", NULL), APR_EGENERAL, &err));
    ck_assert_int_eq(f.calls, 7);
}
END_TEST

START_TEST(cache_per_backend_and_invalidate)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    llmgw_backend_t *a = make_backend("a", NULL), *b = make_backend("b", NULL);

    ck_assert_str_eq(get_token(ga, a, APR_SUCCESS, NULL), "tok-1");
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_ptr_eq(f.last_backend, b);
    ck_assert_str_eq(get_token(ga, a, APR_SUCCESS, NULL), "tok-1");
    /* After a Vertex 401 the glue forgets the token: the next call exchanges anew. */
    llmgw_google_auth_invalidate(ga, a);
    ck_assert_str_eq(get_token(ga, a, APR_SUCCESS, NULL), "tok-3");
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 3);
}
END_TEST

START_TEST(cache_short_lived_tokens)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    llmgw_backend_t *b = make_backend("vtx", NULL);

    f.lifetime = apr_time_from_sec(4);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    f.now += apr_time_from_sec(1);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    f.now += apr_time_from_sec(2); /* 1 s left of 4: due */
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    f.now += apr_time_from_sec(10); /* long gone */
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-3");
    ck_assert_int_eq(f.calls, 3);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Single flight, with threads                                            */
/* ---------------------------------------------------------------------- */

typedef struct {
    llmgw_google_auth_t *ga;
    const llmgw_backend_t *b;
    apr_pool_t *pool;
    apr_status_t rv;
    const char *token;
    llmgw_error_t *err;
} caller_t;

static void *APR_THREAD_FUNC caller_main(apr_thread_t *t, void *data)
{
    caller_t *c = data;

    c->rv = llmgw_google_auth_token(c->ga, NULL, c->b, c->pool, &c->token, &c->err);
    return NULL;
}

static apr_thread_t *start_caller(caller_t *c, llmgw_google_auth_t *ga, const llmgw_backend_t *b)
{
    apr_thread_t *t;

    memset(c, 0, sizeof(*c));
    c->ga = ga;
    c->b = b;
    apr_pool_create(&c->pool, test_pool);
    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_main, c, test_pool), APR_SUCCESS);
    return t;
}

static void join(apr_thread_t *t)
{
    apr_status_t rv;
    ck_assert_int_eq(apr_thread_join(&rv, t), APR_SUCCESS);
}

static void blocking_fake(fake_t *f)
{
    apr_thread_mutex_create(&f->mutex, APR_THREAD_MUTEX_DEFAULT, test_pool);
    apr_thread_cond_create(&f->cond, test_pool);
}

/* Wait until @p n exchanges are blocked inside the fake. */
static void await_inside(fake_t *f, int n)
{
    apr_thread_mutex_lock(f->mutex);
    while (f->inside < n)
        apr_thread_cond_wait(f->cond, f->mutex);
    apr_thread_mutex_unlock(f->mutex);
}

static void release(fake_t *f, int fail)
{
    apr_thread_mutex_lock(f->mutex);
    f->block = 0;
    f->fail = fail;
    apr_thread_cond_broadcast(f->cond);
    apr_thread_mutex_unlock(f->mutex);
}

/*
 * @p n callers (at most 8) on a cold cache: the first becomes the refresher
 * and hangs in the exchange while the others queue behind it; then the
 * exchange ends (refused when @p fail) and every caller is joined.
 */
static void cold_herd(fake_t *f, llmgw_google_auth_t *ga, const llmgw_backend_t *b, caller_t *c,
                      int n, int fail)
{
    apr_thread_t *t[8];
    int i;

    ck_assert_int_le(n, 8);
    blocking_fake(f);
    f->block = 1;
    t[0] = start_caller(&c[0], ga, b);
    await_inside(f, 1);
    for (i = 1; i < n; i++)
        t[i] = start_caller(&c[i], ga, b);
    apr_sleep(apr_time_from_msec(150)); /* let them reach the wait */
    release(f, fail);
    for (i = 0; i < n; i++)
        join(t[i]);
}

START_TEST(single_flight_due_token_served_meanwhile)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    llmgw_backend_t *b = make_backend("vtx", NULL);
    caller_t c;
    apr_thread_t *t;

    blocking_fake(&f);
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    f.now = T0 + MIN(57);
    f.block = 1;
    t = start_caller(&c, ga, b); /* becomes the refresher and hangs in the exchange */
    await_inside(&f, 1);
    /* Meanwhile every other caller gets the still-valid token at once. */
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-1");
    release(&f, 0);
    join(t);
    ck_assert_int_eq(c.rv, APR_SUCCESS);
    ck_assert_str_eq(c.token, "tok-2");
    ck_assert_str_eq(get_token(ga, b, APR_SUCCESS, NULL), "tok-2");
    ck_assert_int_eq(f.calls, 2);
}
END_TEST

START_TEST(single_flight_cold_start)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    caller_t c[4];
    int i;

    cold_herd(&f, ga, make_backend("vtx", NULL), c, 4, 0);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_str_eq(c[i].token, "tok-1");
    }
    ck_assert_int_eq(f.calls, 1);
}
END_TEST

START_TEST(single_flight_cold_failure_shared)
{
    fake_t f = {0};
    llmgw_google_auth_t *ga = fake_auth(&f);
    caller_t c[3];
    int i;

    cold_herd(&f, ga, make_backend("vtx", NULL), c, 3, 1);
    for (i = 0; i < 3; i++) {
        ck_assert_int_ne(c[i].rv, APR_SUCCESS);
        ck_assert_int_eq(c[i].err->status, 502);
        ck_assert_str_eq(c[i].err->message, "exchange 1 refused");
    }
    /* One exchange for the whole herd, failure included. */
    ck_assert_int_eq(f.calls, 1);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The real exchange, against a loopback token endpoint                   */
/* ---------------------------------------------------------------------- */

typedef struct {
    int fd;
    int port;
    int status;
    const char *answer;
    int echo_assertion;  /* answer 400 quoting the assertion */
    char request[65536]; /* last request received */
    char echo[70000];    /* answer quoting the assertion */
    apr_size_t request_len;
    int requests;
    volatile int stop;
} server_t;

/* One request on @p c: read the head and the body, answer, close. */
static void serve_one(server_t *s, int c)
{
    apr_size_t n = 0;
    char *head_end = NULL, *cl, out[256];
    long want = -1;
    ssize_t r;
    const char *answer = s->answer;

    while (n < sizeof(s->request) - 1) {
        r = recv(c, s->request + n, sizeof(s->request) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (apr_size_t)r;
        s->request[n] = '\0';
        if (!head_end && (head_end = strstr(s->request, "\r\n\r\n")) != NULL) {
            cl = strcasestr(s->request, "Content-Length:");
            want = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (head_end && (long)(n - (apr_size_t)(head_end + 4 - s->request)) >= want)
            break;
    }
    s->request_len = n;
    s->requests++;
    if (s->echo_assertion && head_end) {
        const char *a = strstr(head_end, "assertion=");
        snprintf(s->echo, sizeof(s->echo),
                 "{\"error\":\"invalid_grant\",\"error_description\":\"bad %s\"}", a ? a + 10 : "");
        answer = s->echo; /* no pool here: this thread must not touch test_pool */
    }
    snprintf(out, sizeof(out),
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             s->status, strlen(answer));
    send(c, out, strlen(out), 0);
    send(c, answer, strlen(answer), 0);
    close(c);
}

static void *APR_THREAD_FUNC server_main(apr_thread_t *t, void *data)
{
    server_t *s = data;
    struct pollfd pfd = {s->fd, POLLIN, 0};

    while (!s->stop) {
        if (poll(&pfd, 1, 50) == 1) {
            int c = accept(s->fd, NULL, NULL);
            if (c >= 0)
                serve_one(s, c);
        }
    }
    return NULL;
}

static apr_thread_t *server_start(server_t *s)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    apr_thread_t *t;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s->fd, 8), 0);
    getsockname(s->fd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(apr_thread_create(&t, NULL, server_main, s, test_pool), APR_SUCCESS);
    return t;
}

static void server_stop(server_t *s, apr_thread_t *t)
{
    s->stop = 1;
    join(t);
    close(s->fd);
}

typedef struct {
    server_t *server;
    apr_thread_t *thread;
    llmgw_upstream_t *up;
    llmgw_google_auth_t *ga;
    llmgw_backend_t *backend;
    const char *token_uri;
    const char *sa_path;
} exchange_env_t;

static void exchange_env(exchange_env_t *env, int status, const char *answer)
{
    llmgw_google_sa_t *sa = apr_pcalloc(test_pool, sizeof(*sa));
    const char *why = NULL;

    env->server = apr_pcalloc(test_pool, sizeof(server_t));
    env->server->status = status;
    env->server->answer = answer;
    env->thread = server_start(env->server);
    env->token_uri = apr_psprintf(test_pool, "http://127.0.0.1:%d/token", env->server->port);
    env->sa_path = write_temp(sa_json(env->token_uri, rsa_pem, 1));
    ck_assert_int_eq(llmgw_google_sa_load(sa, test_pool, env->sa_path, &why), APR_SUCCESS);
    /* Read once, as at configuration time: the exchanges below must not
     * need the file (httpd's children cannot read a 0600 root key). */
    unlink(env->sa_path);
    ck_assert_int_eq(llmgw_upstream_global_init(test_pool), APR_SUCCESS);
    ck_assert_int_eq(llmgw_upstream_child_create(&env->up, test_pool, 4), APR_SUCCESS);
    ck_assert_int_eq(llmgw_google_auth_create(&env->ga, test_pool), APR_SUCCESS);
    env->backend = make_backend("vtx", sa);
}

static void exchange_env_done(exchange_env_t *env)
{
    server_stop(env->server, env->thread);
}

START_TEST(exchange_success)
{
    exchange_env_t env;
    const char *token = NULL, *body, *assertion, *amp;
    llmgw_error_t *err = NULL;
    jwt_parts_t parts;

    exchange_env(&env, 200,
                 "{\"access_token\":\"ya29.loopback-1\",\"expires_in\":3599,\"token_type\":"
                 "\"Bearer\"}");
    ck_assert_int_eq(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(token, "ya29.loopback-1");
    ck_assert_int_eq(env.server->requests, 1);
    ck_assert_msg(strncmp(env.server->request, "POST /token HTTP/1.1\r\n", 22) == 0, "%s",
                  env.server->request);
    ck_assert_ptr_nonnull(
        strcasestr(env.server->request, "Content-Type: application/x-www-form-urlencoded\r\n"));
    body = strstr(env.server->request, "\r\n\r\n") + 4;
    ck_assert_msg(strncmp(body,
                          "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                          "&assertion=",
                          75) == 0,
                  "%s", body);
    assertion = body + 75;
    amp = strchr(assertion, '&');
    ck_assert_ptr_null(amp);
    /* What the token endpoint received verifies with the public key. */
    parts = split_jwt(assertion);
    ck_assert(verify(rsa_key, parts.input, parts.sig, parts.sig_len));
    ck_assert_str_eq(llmgw_json_str(parts.claims, "aud"), env.token_uri);
    ck_assert_str_eq(llmgw_json_str(parts.header, "kid"), "kid-0123");
    /* Cached: no second exchange. */
    ck_assert_int_eq(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(env.server->requests, 1);
    exchange_env_done(&env);
}
END_TEST

START_TEST(exchange_refused)
{
    exchange_env_t env;
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    exchange_env(&env, 400,
                 "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message,
                     "backend \"vtx\" (Vertex AI): the token endpoint refused the service account "
                     "(HTTP 400, invalid_grant: Invalid JWT Signature.)");
    exchange_env_done(&env);
}
END_TEST

/* A token endpoint that echoes the assertion must not get it into the error. */
START_TEST(exchange_refusal_echo_not_quoted)
{
    exchange_env_t env;
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    exchange_env(&env, 401, "");
    env.server->echo_assertion = 1;
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(err->message, "backend \"vtx\" (Vertex AI): the token endpoint refused the "
                                   "service account (HTTP 401, invalid_grant)");
    ck_assert_ptr_null(strstr(err->message, "eyJ"));
    exchange_env_done(&env);
}
END_TEST

/* A token endpoint that is down is asked again only after the back-off. */
START_TEST(exchange_unavailable_backs_off)
{
    exchange_env_t env;
    fake_t f = {0};
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    exchange_env(&env, 503, "{}");
    f.now = apr_time_now();
    llmgw_google_auth_set_clock(env.ga, fake_clock, &f);
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(env.server->requests, 1);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message,
                     "backend \"vtx\" (Vertex AI): the token endpoint answered HTTP 503");
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(env.server->requests, 1);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message, "backend \"vtx\" (Vertex AI): the token endpoint answered "
                                   "HTTP 503; no new token request for 1 s");
    f.now += apr_time_from_sec(1);
    env.server->status = 200;
    env.server->answer = "{\"access_token\":\"ya29.back\",\"expires_in\":3599}";
    ck_assert_int_eq(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(token, "ya29.back");
    ck_assert_int_eq(env.server->requests, 2);
    exchange_env_done(&env);
}
END_TEST

START_TEST(exchange_bad_answer_and_no_key)
{
    exchange_env_t env;
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    exchange_env(&env, 200, "{\"token\":\"nope\"}");
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message, "backend \"vtx\" (Vertex AI): the token endpoint's answer has "
                                   "no access_token");
    /* A backend whose key was never loaded does not go looking for the file. */
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, make_backend("bare", NULL), test_pool,
                                             &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message, "backend \"bare\" (Vertex AI): its service-account key was not "
                                   "loaded when the configuration was read");
    ck_assert_int_eq(env.server->requests, 1);
    exchange_env_done(&env);
}
END_TEST

START_TEST(exchange_unreachable)
{
    exchange_env_t env;
    const char *token = NULL;
    llmgw_error_t *err = NULL;

    exchange_env(&env, 200, "{}");
    exchange_env_done(&env); /* nobody listens on the port any more */
    ck_assert_int_ne(llmgw_google_auth_token(env.ga, env.up, env.backend, test_pool, &token, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(err->status, 502);
    ck_assert_str_eq(err->code, "upstream_auth_failed");
    ck_assert_str_eq(err->message,
                     "backend \"vtx\" (Vertex AI): the token endpoint could not be reached");
}
END_TEST

/* ---------------------------------------------------------------------- */

static TCase *fixture(const char *name)
{
    TCase *tc = test_fixture(name);

    tcase_set_timeout(tc, 60);
    return tc;
}

static Suite *auth_suite(void)
{
    Suite *s = suite_create("google_auth");
    TCase *tc;

    tc = fixture("service_account");
    tcase_add_test(tc, sa_parse_fields);
    tcase_add_test(tc, sa_parse_optional_fields);
    tcase_add_test(tc, sa_parse_refusals);
    tcase_add_test(tc, sa_parse_unusable_keys);
    tcase_add_test(tc, sa_parse_loopback_http_allowed);
    tcase_add_test(tc, sa_load_file);
    tcase_add_test(tc, sa_key_lives_with_its_pool);
    suite_add_tcase(s, tc);

    tc = fixture("config_time");
    tcase_add_test(tc, cfg_load_sa_reads_the_key);
    tcase_add_test(tc, cfg_load_sa_refusals_point_at_the_file);
    tcase_add_test(tc, cfg_load_sa_from_the_environment);
    tcase_add_test(tc, cfg_load_sa_relative_and_shared);
    suite_add_tcase(s, tc);

    tc = fixture("jwt");
    tcase_add_test(tc, base64url_alphabet_no_padding);
    tcase_add_test(tc, jwt_header_claims_signature);
    tcase_add_test(tc, jwt_without_kid_and_other_aud);
    tcase_add_test(tc, jwt_without_a_key);
    tcase_add_test(tc, form_encoding);
    tcase_add_test(tc, token_parse_cases);
    suite_add_tcase(s, tc);

    tc = fixture("cache");
    tcase_add_test(tc, token_state_hour);
    tcase_add_test(tc, token_state_short_lived);
    tcase_add_test(tc, cache_fresh_due_expired);
    tcase_add_test(tc, backoff_schedule);
    tcase_add_test(tc, cache_backoff_fails_fast);
    tcase_add_test(tc, cache_per_backend_and_invalidate);
    tcase_add_test(tc, cache_short_lived_tokens);
    tcase_add_test(tc, single_flight_due_token_served_meanwhile);
    tcase_add_test(tc, single_flight_cold_start);
    tcase_add_test(tc, single_flight_cold_failure_shared);
    suite_add_tcase(s, tc);

    tc = fixture("exchange");
    tcase_add_test(tc, exchange_success);
    tcase_add_test(tc, exchange_refused);
    tcase_add_test(tc, exchange_refusal_echo_not_quoted);
    tcase_add_test(tc, exchange_unavailable_backs_off);
    tcase_add_test(tc, exchange_bad_answer_and_no_key);
    tcase_add_test(tc, exchange_unreachable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed;

    rsa_key = EVP_RSA_gen(2048);
    other_rsa_key = EVP_RSA_gen(2048);
    if (!rsa_key || !other_rsa_key) {
        fprintf(stderr, "cannot generate the test RSA keys\n");
        return EXIT_FAILURE;
    }
    {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data;
        long n;

        PEM_write_bio_PrivateKey(bio, rsa_key, NULL, NULL, 0, NULL, NULL);
        n = BIO_get_mem_data(bio, &data);
        rsa_pem = malloc((size_t)n + 1);
        memcpy(rsa_pem, data, (size_t)n);
        rsa_pem[n] = '\0';
        BIO_free(bio);
    }
    failed = test_run_suite(auth_suite());
    free(rsa_pem);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(other_rsa_key);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
