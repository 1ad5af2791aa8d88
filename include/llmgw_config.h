/**
 * @file llmgw_config.h
 * @brief gateway.yaml -> immutable configuration tree.
 *
 * The file is parsed once at configuration time (in the LLMGatewayConfig
 * directive, so `apachectl configtest` sees every mistake) into structures
 * allocated from the configuration pool. After that the tree is read-only
 * and shared by every thread of every child without locks.
 *
 * Errors carry the file, line and column of the offending YAML node and a
 * plain sentence, e.g.
 *   gateway.yaml:12:15: backend "a": unknown type "opneai" (expected one of
 *   openai, anthropic, azure-openai, google, meta, mistral, pool)
 */
#ifndef LLMGW_CONFIG_H
#define LLMGW_CONFIG_H

#include "llmgw.h"
#include <apr_hash.h>

typedef enum {
    LLMGW_BACKEND_OPENAI = 0,
    LLMGW_BACKEND_ANTHROPIC,
    LLMGW_BACKEND_AZURE_OPENAI,
    LLMGW_BACKEND_GOOGLE,
    LLMGW_BACKEND_META,
    LLMGW_BACKEND_MISTRAL,
    LLMGW_BACKEND_POOL,
    LLMGW_BACKEND_TYPE_COUNT
} llmgw_backend_type_e;

/** What a route serves; derived from the path suffix unless `api:` is set. */
typedef enum {
    LLMGW_API_CHAT = 1,
    LLMGW_API_EMBEDDINGS = 2,
    LLMGW_API_MODELS = 4,
    LLMGW_API_RESPONSES = 8, /**< the OpenAI Responses dialect (ingress.md 3) */
    LLMGW_API_MESSAGES = 16  /**< the Anthropic Messages dialect (ingress.md 6) */
} llmgw_api_e;

/** Bits of llmgw_route_t.methods. */
#define LLMGW_METHOD_GET 0x01
#define LLMGW_METHOD_POST 0x02
#define LLMGW_METHOD_HEAD 0x04
#define LLMGW_METHOD_OPTIONS 0x08
/** DELETE: only on the stored-response sub-paths of a responses route. */
#define LLMGW_METHOD_DELETE 0x10

/** A pool strategy (llmgw_strategy.h); built in or registered by another module. */
typedef struct llmgw_strategy_t llmgw_strategy_t;

/**
 * Finds the pool strategy named @p name, as written after `strategy:`;
 * NULL when there is none. @p baton is llmgw_config_opts_t.baton.
 */
typedef const llmgw_strategy_t *(*llmgw_strategy_resolve_fn)(void *baton, const char *name);

/** Where a YAML node was, for messages (1-based). */
typedef struct {
    unsigned long line;
    unsigned long column;
} llmgw_mark_t;

typedef struct llmgw_backend_t llmgw_backend_t;

/**
 * `limits:` of a virtual key, a principal (llmgw_access.h) or a backend.
 * Each value is LLMGW_UNSET when not given: no limit of that kind.
 * Backends take rpm and tpm only: their provider's quota, which a pool
 * steers around (llmgw_limits.h).
 */
typedef struct {
    apr_int64_t rpm;        /**< requests per minute */
    apr_int64_t tpm;        /**< tokens (prompt + completion) per minute */
    apr_int64_t concurrent; /**< requests in flight at once */
} llmgw_limits_cfg_t;

/* access:, pricing: and ledger: (llmgw_access.h, llmgw_pricing.h, llmgw_ledger.h). */
struct llmgw_access_cfg_t;
struct llmgw_pricing_t;
struct llmgw_ledger_cfg_t;

/** A parsed service-account key (llmgw_google_auth.h). */
struct llmgw_google_sa_t;

/**
 * `imageFetch:` of a backend whose provider takes image bytes, not URLs
 * (google): the guard of remote image fetches (providers.md 2.2, DESIGN.md
 * 10). Hosts named in allow_hosts may resolve to any address; every other
 * host must resolve to a public one. max_bytes and timeout bound all the
 * fetches of one client request together, so one request costs at most
 * that much memory and time whatever number of images it names.
 */
typedef struct {
    apr_array_header_t *allow_hosts; /**< const char *: lowercase names or IP literals (no []) */
    apr_off_t max_bytes;             /**< LLMGW_UNSET: LLMGW_DEFAULT_IMAGE_MAX_BYTES */
    apr_interval_time_t timeout;     /**< LLMGW_UNSET: LLMGW_DEFAULT_IMAGE_TIMEOUT */
} llmgw_image_fetch_t;

typedef struct {
    const char *name;               /**< as written in the pool */
    const llmgw_backend_t *backend; /**< resolved after the whole file is read */
    int weight;                     /**< default 1 */
    llmgw_mark_t mark;
} llmgw_pool_member_t;

/**
 * One entry of `backends:`. Provider fields not given are NULL (strings) or
 * LLMGW_UNSET (numbers, durations); the getters below apply defaults.
 * Secrets (api_key) must never be logged or copied into a response.
 */
struct llmgw_backend_t {
    const char *name;
    llmgw_backend_type_e type;
    int index; /**< position in llmgw_config_t.backends */
    llmgw_mark_t mark;

    /* provider backends (everything but pool) */
    const char *api_key;  /**< openai, anthropic, azure, google (AI Studio), meta, mistral */
    const char *org_id;   /**< openai: OpenAI-Organization */
    const char *project;  /**< openai: OpenAI-Project */
    const char *endpoint; /**< base URL without trailing '/' (required: azure-openai, meta) */
    const char *default_model;
    apr_array_header_t *models;  /**< const char *, may be empty */
    apr_interval_time_t timeout; /**< whole request, stream included */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t first_byte_timeout;
    /** streams: until the first content token (headers and keep-alives do not count) */
    apr_interval_time_t first_token_timeout;
    apr_interval_time_t idle_timeout;
    int max_retries;
    /** anthropic, mistral: takes a trailing assistant message as a prefill to continue
     *  (stream recovery, llmgw_dispatch.h); 0 unless the configuration says so */
    int prefill;
    /** the backend to try first when a request exceeds this one's context window */
    const char *context_fallback_name;
    const llmgw_backend_t *context_fallback; /**< resolved; a provider backend or NULL */
    llmgw_mark_t context_fallback_mark;
    int max_tokens;               /**< anthropic: when the request sets none */
    const char *deployment_name;  /**< azure-openai */
    const char *api_version;      /**< azure-openai */
    const char *project_id;       /**< google (Vertex AI) */
    const char *location;         /**< google (Vertex AI) */
    const char *credentials_file; /**< google (Vertex AI), as written */
    /** google (Vertex AI): credentialsFile, else projectId, for messages about the key file */
    llmgw_mark_t credentials_mark;
    /** google (Vertex AI): the key, read at configuration time by the glue
     *  (llmgw_google_cfg_load_sa); NULL until then, or when it could not be */
    const struct llmgw_google_sa_t *google_sa;
    int unsupported_drop;      /**< unsupportedParams: drop (1) or error (0, default) */
    llmgw_limits_cfg_t limits; /**< the provider's quota (rpm, tpm); LLMGW_UNSET: none */
    /** the translator's request constants (llmgw_provider_prepare); NULL:
     *  built per request */
    const void *fixed;

    /* google: imageFetch (defaults when absent) */
    llmgw_image_fetch_t image_fetch;

    /* pools */
    const char *strategy_name;        /**< as written; "latency" when not given */
    const llmgw_strategy_t *strategy; /**< resolved at load time, never NULL for a pool */
    int fallback;                     /**< default 1 */
    int failure_threshold; /**< consecutive failures before cooldown; LLMGW_UNSET = default */
    apr_interval_time_t cooldown; /**< LLMGW_UNSET = default */
    int max_attempts; /**< attempts per client request across members; LLMGW_UNSET = default */
    apr_array_header_t *members; /**< llmgw_pool_member_t */
    apr_array_header_t *aliases; /**< const char *: more names of the pool as a virtual model */
};

/** How a route's streams survive an upstream failure after content reached the client. */
typedef enum {
    LLMGW_RECOVERY_NONE = 0, /**< an OpenAI-style error event ends the stream (default) */
    LLMGW_RECOVERY_CONTINUE, /**< the partial answer goes as a prefill to a prefill member */
    LLMGW_RECOVERY_BUFFER    /**< the client's stream is held until the answer is complete */
} llmgw_recovery_e;

typedef struct {
    const char *name;
    const char *path; /**< exact match against r->uri */
    int methods;      /**< LLMGW_METHOD_* bits; HEAD implied by GET */
    llmgw_api_e api;
    const char *backend_name;
    const llmgw_backend_t *backend;   /**< resolved */
    llmgw_recovery_e stream_recovery; /**< streamRecovery: (chat routes) */
    llmgw_mark_t mark;
} llmgw_route_t;

/** The credentials of a configuration, for redaction (llmgw_redact.h). */
typedef struct llmgw_secrets_t llmgw_secrets_t;

typedef struct {
    const char *path;             /**< the file, as given */
    apr_array_header_t *backends; /**< llmgw_backend_t * in file order */
    apr_array_header_t *routes;   /**< llmgw_route_t * in file order */
    apr_hash_t *backend_by_name;  /**< const char * -> llmgw_backend_t * */
    apr_hash_t *route_by_path;    /**< const char * -> llmgw_route_t * */
    llmgw_secrets_t *secrets;     /**< every credential in the file (llmgw_redact.h) */
    /** access: who may use this gateway; NULL: open (DESIGN.md 11) */
    const struct llmgw_access_cfg_t *access;
    const struct llmgw_pricing_t *pricing;   /**< pricing:, NULL when absent */
    const struct llmgw_ledger_cfg_t *ledger; /**< ledger:, NULL when absent */
} llmgw_config_t;

/**
 * Read and validate a gateway.yaml file.
 * @param out     receives the configuration, allocated from @p p
 * @param p       the configuration pool (lives as long as the config)
 * @param ptemp   scratch pool
 * @param path    file to read
 * @param errmsg  on failure: "path:line:column: sentence" from @p p
 * @return APR_SUCCESS, or LLMGW_ECONFIG / an APR error (unreadable file)
 */
apr_status_t llmgw_config_load(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                               const char *path, const char **errmsg);

/** As llmgw_config_load, from a buffer; @p name stands for the file in messages. */
apr_status_t llmgw_config_parse(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                                const char *name, const char *text, apr_size_t len,
                                const char **errmsg);

/**
 * What the loader takes from its caller. All fields may be NULL: then only
 * the built-in strategies (llmgw_strategy_find) are known. The httpd glue
 * resolves through httpd's provider registry, so that strategies registered
 * by other modules can be named in gateway.yaml (llmgw_strategy.h).
 */
typedef struct {
    llmgw_strategy_resolve_fn resolve_strategy; /**< NULL: the built-ins */
    void *baton;                                /**< passed to resolve_strategy */
    /** The names resolve_strategy knows, NULL-terminated, for the message
     *  about an unknown one; NULL: the built-ins' names. */
    const char *const *strategy_names;
} llmgw_config_opts_t;

/** As llmgw_config_parse, with @p opts (NULL: as llmgw_config_parse). */
apr_status_t llmgw_config_parse_opts(llmgw_config_t **out, apr_pool_t *p, apr_pool_t *ptemp,
                                     const char *name, const char *text, apr_size_t len,
                                     const llmgw_config_opts_t *opts, const char **errmsg);

/**
 * Parse a duration: "250ms", "30s", "2m", "1h", or "0". Returns APR_EINVAL
 * for anything else (no unit, negative, overflow, junk).
 */
apr_status_t llmgw_duration_parse(const char *text, apr_interval_time_t *out);

/**
 * Parse a size: a bare number of bytes, or a number with K, M or G (binary:
 * 1K = 1024 bytes), as LLMGatewayMaxBody takes it. APR_EINVAL for anything
 * else (negative, overflow, junk).
 */
apr_status_t llmgw_size_parse(const char *text, apr_off_t *out);

/** Name of a backend type as written in YAML ("azure-openai"). */
const char *llmgw_backend_type_name(llmgw_backend_type_e type);

const llmgw_backend_t *llmgw_config_backend(const llmgw_config_t *cfg, const char *name);
const llmgw_route_t *llmgw_config_route(const llmgw_config_t *cfg, const char *path);

/* Defaults applied on read (see README "gateway.yaml reference"). */
#define LLMGW_DEFAULT_TIMEOUT apr_time_from_sec(600)
#define LLMGW_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(5)
#define LLMGW_DEFAULT_FIRST_BYTE_TIMEOUT apr_time_from_sec(600)
#define LLMGW_DEFAULT_IDLE_TIMEOUT apr_time_from_sec(120)
#define LLMGW_DEFAULT_MAX_RETRIES 2
#define LLMGW_DEFAULT_ANTHROPIC_MAX_TOKENS 4096
#define LLMGW_DEFAULT_FAILURE_THRESHOLD 5
#define LLMGW_DEFAULT_COOLDOWN apr_time_from_sec(30)
/* The first cooldown of a member; it doubles after each failed probe up to its pool's cooldown. */
#define LLMGW_COOLDOWN_BASE apr_time_from_sec(2)
#define LLMGW_DEFAULT_MAX_ATTEMPTS 3
/* providers.md 2.2: "a size cap (default 20 MiB), a short timeout". */
#define LLMGW_DEFAULT_IMAGE_MAX_BYTES ((apr_off_t)20 * 1024 * 1024)
#define LLMGW_DEFAULT_IMAGE_TIMEOUT apr_time_from_sec(5)
/* The largest imageFetch.maxBytes accepted: fetched images are held in memory. */
#define LLMGW_MAX_IMAGE_MAX_BYTES (1024L * 1024 * 1024)

apr_interval_time_t llmgw_backend_timeout(const llmgw_backend_t *b);
apr_interval_time_t llmgw_backend_connect_timeout(const llmgw_backend_t *b);
apr_interval_time_t llmgw_backend_first_byte_timeout(const llmgw_backend_t *b);
apr_interval_time_t llmgw_backend_idle_timeout(const llmgw_backend_t *b);
/** firstTokenTimeout; when unset, the backend's firstByteTimeout. */
apr_interval_time_t llmgw_backend_first_token_timeout(const llmgw_backend_t *b);
int llmgw_backend_max_retries(const llmgw_backend_t *b);
apr_off_t llmgw_image_fetch_max_bytes(const llmgw_image_fetch_t *f);
apr_interval_time_t llmgw_image_fetch_timeout(const llmgw_image_fetch_t *f);
/** 1 when the backend lists @p model in models: or as defaultModel. */
int llmgw_backend_serves(const llmgw_backend_t *b, const char *model);

/**
 * 1 when a provider backend takes @p model (DESIGN.md 5): it lists it, or
 * it has no models: list to restrict it. In a pool, a member that names no
 * model at all (neither models: nor defaultModel) takes any model.
 */
int llmgw_backend_accepts(const llmgw_backend_t *b, const char *model, int in_pool);

/** 1 when @p name is the pool's name or one of its aliases. */
int llmgw_pool_named(const llmgw_backend_t *pool, const char *name);

#endif /* LLMGW_CONFIG_H */
