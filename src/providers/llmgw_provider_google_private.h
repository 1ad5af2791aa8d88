/*
 * Private to the google translator, shared by its two files:
 * llmgw_provider_google_request.c (requests) and llmgw_provider_google.c
 * (answers, errors, streams and the llmgw_provider_t table).
 */
#ifndef LLMGW_PROVIDER_GOOGLE_PRIVATE_H
#define LLMGW_PROVIDER_GOOGLE_PRIVATE_H

#include "llmgw_provider.h"

#define GOOGLE_AISTUDIO_ENDPOINT "https://generativelanguage.googleapis.com"
#define GOOGLE_FILES_PREFIX "https://generativelanguage.googleapis.com/v1beta/files/"

/* 6.6: separator between base id and signature, and our own base ids. */
#define THOUGHT_SEP "__thought__"
#define THOUGHT_SEP_LEN (sizeof(THOUGHT_SEP) - 1)
#define GW_ID_PREFIX "call_gw"
#define LEGACY_ID_PREFIX "call_fn_"
#define SKIP_SIGNATURE "skip_thought_signature_validator"
#define RANDOM_ID_CHARS 22

/* candidateCount is at most 8 today; far above is a broken upstream. */
#define GOOGLE_MAX_CHOICES 128

/** One request being translated. */
typedef struct {
    llmgw_call_t *call;
    apr_pool_t *p;
    const json_t *in;   /**< the client's body, borrowed */
    llmgw_error_t *err; /**< set with every failure */
    int legacy;         /**< the client used `functions` / `function_call` */
    int legacy_calls;   /**< legacy function_call messages seen so far */
} llmgw_google_rq_t;

/** A 400 with @p code naming @p param, its message from @p fmt: LLMGW_EBADREQ, rq->err set. */
apr_status_t llmgw_google_rq_fail(llmgw_google_rq_t *rq, const char *code, const char *param,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** "'<param>' must be <what>." as llmgw_google_rq_fail's invalid_type. */
apr_status_t llmgw_google_rq_type(llmgw_google_rq_t *rq, const char *param, const char *what);

/**
 * A parameter Gemini cannot honour (DESIGN.md 4): refused with a 400 naming
 * it, or, with `unsupportedParams: drop`, dropped and named in
 * call->dropped (the glue turns that into x-llmgw-dropped-params).
 */
apr_status_t llmgw_google_rq_unsupported(llmgw_google_rq_t *rq, const char *param);

/** tools / tool_choice (and legacy functions) into @p body (llmgw_provider_google_tools.c). */
apr_status_t llmgw_google_build_tools(llmgw_google_rq_t *rq, json_t *body);

/** The translator's build_request (llmgw_provider_t). */
/** An AI Studio backend's request constants (llmgw_provider_t.prepare); NULL for Vertex AI. */
const void *llmgw_google_prepare(const llmgw_backend_t *b, apr_pool_t *p);
apr_status_t llmgw_google_build_request(llmgw_call_t *call, llmgw_http_request_t *out,
                                        llmgw_error_t **err);

/** The translator's remote_images (llmgw_provider_t). */
void llmgw_google_remote_images(const llmgw_call_t *call, apr_array_header_t *out);

#endif /* LLMGW_PROVIDER_GOOGLE_PRIVATE_H */
