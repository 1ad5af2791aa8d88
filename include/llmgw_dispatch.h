/**
 * @file llmgw_dispatch.h
 * @brief The attempts of one client request: retry, fail over and stream
 *        recovery (DESIGN.md 6, providers.md 9.2), as a state machine over a
 *        transport and a sink.
 *
 * The dispatcher owns the policy; the handler only wires it to httpd and
 * libcurl. It never performs I/O itself:
 *
 *   - the transport (llmgw_transport_t) sends one upstream request and
 *     delivers its events: body bytes as they arrive, and a check about
 *     every 100 ms while it waits (llmgw_upstream_perform's contract); it also
 *     sleeps (backoff), tells the time, draws random numbers, prepares what
 *     the glue must fetch before a backend can be called (remote images, an
 *     access token), and takes notes for the log;
 *   - the sink (llmgw_sink_t) is what the client gets, as canonical events: a
 *     whole answer, or an opened stream of chat chunks (JSON and frame bytes)
 *     that ends with close (complete) or abort (an in-band error), or a plain
 *     error before anything was sent. A client dialect (ingress.md) encodes
 *     these events; the dispatcher knows no dialect.
 *
 * The Check suite (tests/unit/test_dispatch.c) drives it outcome by outcome
 * with a fake transport and a clock it controls.
 *
 * States of one request (the loop of llmgw_dispatch_run):
 *
 *   SELECT    next candidate (llmgw_pool_candidates order; a contextFallback
 *             first when a context window was exceeded; while recovering a
 *             stream, members declaring prefill only), claiming its probe;
 *             none left, or maxAttempts spent -> FAIL
 *   PREPARE   transport->prepare, then the translator's build_request (with
 *             the partial answer as a trailing assistant message while
 *             recovering); refused -> FAIL, or SELECT when the pool may fall back
 *   ATTEMPT   transport->perform; the translator's stream events go through
 *             the dispatcher to the sink (below)
 *   DECIDE    answered -> DONE; else one row of the table below
 *   WAIT      backoff (Retry-After, or 0.5 s doubling, +-25 %) -> ATTEMPT
 *   RECOVER   streamRecovery continue: the stream stays open -> SELECT
 *   DONE / FAIL   the sink got its one answer (or the client left)
 *
 * DECIDE, first matching row (providers.md 9.2):
 *
 *   the client left                              stop (499 for the log)
 *   content of this attempt reached the client   continue: RECOVER when the
 *                                                answer can be prefilled (one
 *                                                choice, no tool call, no
 *                                                finish yet); else the error
 *                                                event ends the stream
 *   401 with a minted token (Vertex), once       new token, ATTEMPT at once
 *   insufficient_quota                           cool the member, next member
 *   timeout (no headers, no first token: first-  next member at once: a member
 *   ByteTimeout, firstTokenTimeout, a stall      that never answered is not
 *   before content, the overall timeout)         asked again
 *   400 context_length_exceeded                  next member at once, the
 *                                                backend's contextFallback first
 *   400 tool_use_failed (Groq)                   same member once, then next
 *   400 that is the gateway's credential         next member
 *   other 400, 413, 422 (as 400), content filter final: the provider's message
 *   connect, reset, malformed, cut before        same member up to maxRetries
 *   content, 408, 409, 429 (hint <= 10 s), 5xx   (backoff), then next member
 *   401, 402, 403, 404, 429 with a long hint     next member
 *   no member left                               the summary of
 *                                                llmgw_pool_exhausted
 *
 * Streams. Frames of the translator reach the sink as they come, except:
 *   - PREAMBLE frames (the role chunk) are held until the first CONTENT frame,
 *     so that a failure before any content is retried invisibly;
 *   - a malformed event is skipped, counted in the member's protocol errors
 *     and noted once per attempt; the LLMGW_DISPATCH_MAX_MALFORMED + 1-th of
 *     one attempt fails it (a stream that keeps sending garbage);
 *   - streamRecovery buffer: every frame is held until the answer is
 *     complete, so that any failure is retried invisibly; the client then
 *     gets the whole stream at once. A held answer larger than max_held is
 *     released and streamed on from there (recovery none);
 *   - streamRecovery continue: the content the client received is kept; after
 *     a cut or a stall it goes, without its trailing whitespace, as a trailing
 *     assistant message to the next member declaring prefill, whose
 *     continuation is spliced in: its role chunk dropped, its chunks carrying
 *     the stream's id, created and model, the stripped whitespace not sent
 *     twice, one finish_reason, and a usage chunk summing every attempt that
 *     produced part of the answer (what each provider reported: an attempt
 *     cut before its usage counts what it reported before the cut).
 * firstTokenTimeout runs from the start of an attempt to its first CONTENT
 * frame (headers and keep-alive comments do not count).
 *
 * Cooldown: failures feed the member's breaker (llmgw_pool_record_failure) with the
 * period llmgw_pool_cooldown_next computes: short at first, doubling after
 * each failed probe up to the pool's cooldown, reset by a success. Every probe
 * turn ends by releasing the probe.
 *
 * Lifetimes: everything comes from the pool given to llmgw_dispatch_create
 * (the request pool), except per-event scratch: held frames and the partial
 * answer live in heap buffers freed by a cleanup of that pool, so a long
 * stream does not grow it per event. One thread; not reentrant.
 */
#ifndef LLMGW_DISPATCH_H
#define LLMGW_DISPATCH_H

#include <jansson.h>
#include "llmgw.h"
#include "llmgw_config.h"
#include "llmgw_error.h"
#include "llmgw_provider.h"
#include "llmgw_stats.h"
#include "llmgw_upstream.h"
#include "llmgw_pool.h"

/** Malformed events skipped in one attempt; one more fails it. */
#define LLMGW_DISPATCH_MAX_MALFORMED 2
/** A retry hint longer than this is not waited for (providers.md 9.2, max_wait). */
#define LLMGW_DISPATCH_MAX_RETRY_WAIT apr_time_from_sec(10)

typedef struct llmgw_dispatch_t llmgw_dispatch_t;

/* ------------------------------------------------------------------ */
/* Notes: what the glue logs, each kind at its own log id              */

typedef enum {
    LLMGW_NOTE_CANDIDATE = 1, /**< debug: route -> backend, model (probe, prefill) */
    LLMGW_NOTE_IGNORED_KEYS,  /**< debug: client keys the translator left out (call->ignored) */
    LLMGW_NOTE_RETRY,         /**< info: attempt failed, retrying the member in delay */
    LLMGW_NOTE_MALFORMED,     /**< warn: a malformed stream event was skipped (once per attempt) */
    LLMGW_NOTE_GARBAGE,       /**< warn: the stream kept sending malformed events: attempt failed */
    LLMGW_NOTE_CONTEXT,       /**< info: context window exceeded; other: the contextFallback */
    LLMGW_NOTE_UPSTREAM_422,  /**< error: the provider refused the translated request (422) */
    LLMGW_NOTE_RESEND,        /**< info: libcurl's silent re-send refused; counted as a reset */
    LLMGW_NOTE_RECOVERING,    /**< info: stream cut after content; continuing on other */
    LLMGW_NOTE_STREAM_FAILED, /**< info: the stream ended with an in-band error event */
    LLMGW_NOTE_BUFFER_LIMIT,  /**< warn: a buffer route's answer outgrew max_held: streamed */
    LLMGW_NOTE_EXHAUSTED,     /**< warn: every attempt failed (count = attempts) */
    LLMGW_NOTE_ALL_LIMITED    /**< info: every member is at its own limits (delay: the wait) */
} llmgw_note_e;

typedef struct {
    llmgw_note_e kind;
    const llmgw_backend_t *backend; /**< the member concerned */
    const llmgw_backend_t *other; /**< CONTEXT, RECOVERING: where the request goes next, or NULL */
    const char *model;            /**< CANDIDATE: the model sent */
    int attempt;                  /**< attempts on the member (RETRY), or of the request */
    llmgw_fail_e fail;            /**< the failure, where there is one */
    int status;
    apr_interval_time_t delay;  /**< RETRY: the wait */
    apr_size_t count;           /**< RECOVERING: bytes of content received; EXHAUSTED: attempts */
    int probe;                  /**< CANDIDATE: this attempt is the member's probe */
    int prefill;                /**< CANDIDATE: sent with the partial answer as a prefill */
    const llmgw_error_t *error; /**< provider text (redact before logging), or NULL */
    const apr_array_header_t *names; /**< IGNORED_KEYS: const char *, the client's keys */
} llmgw_dispatch_note_t;

/** One attempt: what issue 11's ledger needs (failed attempts refund their reservation). */
typedef struct {
    const llmgw_backend_t *backend;
    const char *model;
    llmgw_fail_e fail;   /**< LLMGW_FAIL_NONE for the attempt that answered */
    int status;          /**< upstream HTTP status, 0 when none */
    llmgw_usage_t usage; /**< what the provider reported (present 0: nothing) */
    apr_interval_time_t elapsed, ttfb;
    int content_sent; /**< part of the answer the client received came from this attempt */
    int prefill;      /**< sent with a prefill (streamRecovery continue) */
    int probe;        /**< the member's probe */
} llmgw_dispatch_attempt_t;

/* ------------------------------------------------------------------ */
/* The transport                                                       */

/** The host side: upstream I/O, time, randomness, and the log. */
typedef struct {
    /**
     * One HTTP exchange, with llmgw_upstream_perform's contract: opts->on_data
     * (2xx bodies of streams) and opts->check (about every 100 ms) are the
     * dispatcher's and must be called as documented there.
     */
    apr_status_t (*perform)(void *baton, apr_pool_t *p, const llmgw_http_request_t *req,
                            const llmgw_upstream_opts_t *opts, llmgw_upstream_result_t *res);
    /**
     * Before the translator builds the request for call->backend: set
     * call->images (remote images the translator needs) and call->access_token
     * (a minted token), or leave them NULL. @p reauth: the provider refused the
     * last token, get a new one. NULL, or the error the client would get for
     * this backend (the request cannot go there). May be NULL.
     */
    llmgw_error_t *(*prepare)(void *baton, llmgw_call_t *call, int reauth);
    /** Wait @p usec (a backoff slice; the dispatcher checks the client in between). */
    void (*sleep)(void *baton, apr_interval_time_t usec);
    /** Both clocks; wall must be the clock of llmgw_upstream_opts_t.deadline. */
    llmgw_stats_time_t (*now)(void *baton);
    /** A uniform value in [0, 1), for the backoff's jitter. */
    double (*random)(void *baton);
    /** Something worth a log line happened (see llmgw_note_e). May be NULL. */
    void (*note)(void *baton, const llmgw_dispatch_note_t *note);
    /**
     * Around every upstream attempt, for per-backend accounting (issue 11's
     * backend limits take tokens before and settle or refund them after). The
     * attempt record is complete in attempt_end (fail, usage). Both may be NULL.
     */
    void (*attempt_begin)(void *baton, const llmgw_dispatch_attempt_t *a);
    void (*attempt_end)(void *baton, const llmgw_dispatch_attempt_t *a);
    void *baton;
} llmgw_transport_t;

/* ------------------------------------------------------------------ */
/* The sink                                                            */

/**
 * What the client gets. Exactly one of: answer; error; open, chunk*, then
 * close or abort (unless the client left). Any non-success return means the
 * client is gone: the dispatcher stops at once.
 */
typedef struct {
    /** 1 once the client has gone; polled while waiting and between events. */
    int (*gone)(void *baton);
    /** A complete non-streaming answer: 200 with this OpenAI JSON body. */
    apr_status_t (*answer)(void *baton, const char *body, apr_size_t len);
    /** The stream commits: 200 and the headers, before its first chunk. */
    apr_status_t (*open)(void *baton);
    /**
     * One chat chunk of an open stream; @p frame is "data: <chunk>\n\n", @p
     * len bytes. With wants_json, @p chunk is its JSON (borrowed, valid
     * during the call). Without, the frame is all there is to read: @p chunk
     * may hold only part of it (llmgw_stream_t.frames_only) or be NULL (a
     * frame that was held: preamble, buffer).
     */
    apr_status_t (*chunk)(void *baton, llmgw_chunk_kind_e kind, const json_t *chunk,
                          const char *frame, apr_size_t len);
    /**
     * Optional (may be NULL): send what chunk() took so far to the client
     * now. The dispatcher calls it once per upstream read that produced
     * frames, however many (libcurl hands over what one socket read got),
     * and at the end of every attempt; with it set, chunk() may just queue.
     * close() and abort() send anything still queued with their own frame.
     */
    apr_status_t (*flush)(void *baton);
    /** The stream is complete ("data: [DONE]"). */
    apr_status_t (*close)(void *baton);
    /** The stream failed after it was opened: an in-band error ends it, no [DONE]. */
    apr_status_t (*abort)(void *baton, const llmgw_error_t *e);
    /**
     * The request failed before anything was sent: @p e as a plain answer.
     * @p retry_after: the Retry-After delay, -1 for none; @p exhausted: every
     * candidate failed (the gateway's summary, not one provider's answer).
     */
    apr_status_t (*error)(void *baton, const llmgw_error_t *e, apr_interval_time_t retry_after,
                          int exhausted);
    /** chunk() reads the chunk objects: held frames are parsed again for it,
     *  and translators hand it whole chunks (no llmgw_stream_t.frames_only). */
    int wants_json;
    void *baton;
} llmgw_sink_t;

/* ------------------------------------------------------------------ */
/* Parameters and results                                              */

typedef struct {
    const llmgw_route_t *route;
    /**
     * The client's request, not yet bound to a backend: pool, api (the
     * canonical form's: chat for a client dialect), body,
     * raw_body/raw_len, stream, include_usage, created. Copied; the body is
     * borrowed and never changed.
     */
    const llmgw_call_t *call;
    const char *model; /**< the request's model, or NULL */
    /* shared statistics (llmgw_stats.h); all NULL/0 without a segment */
    void *stats;
    const int *slot_of; /**< stats slot per llmgw_backend_t.index */
    int nslots;
    llmgw_stats_row_t *row; /**< this process's in-flight row */
    apr_uint64_t seed;      /**< randomness for the pool strategies of this request */
    apr_size_t max_body;    /**< largest buffered upstream answer, and largest held stream */
    apr_size_t max_event;   /**< largest upstream SSE event */
    /** Pool members at their own limits are skipped like cooling ones (llmgw_pool.h); NULL: none */
    llmgw_pool_full_fn full;
    void *full_baton;
    /**
     * The translator for backend @p b, instead of llmgw_provider_get(b->type):
     * a client dialect's passthrough for the backends that speak it natively
     * (llmgw_ingress_passthrough). It must serve call->api. NULL: the
     * providers' translators for every backend.
     */
    const llmgw_provider_t *(*translator)(void *baton, const llmgw_backend_t *b);
    void *translator_baton;
} llmgw_dispatch_params_t;

typedef struct {
    int answered;                      /**< the client got a complete answer */
    int committed;                     /**< the stream was opened (status and headers sent) */
    int client_gone;                   /**< the client left before the end */
    int recovered;                     /**< a continue splice completed the answer */
    int attempts;                      /**< upstream requests sent (x-llmgw-attempts) */
    apr_array_header_t *tries;         /**< llmgw_dispatch_attempt_t, in order */
    const llmgw_backend_t *backend;    /**< the member that answered, else the last one tried */
    const char *model;                 /**< the model sent to it (or the one it reported) */
    llmgw_usage_t usage;               /**< of the answer: summed over a continue splice */
    apr_interval_time_t upstream_time; /**< in transfers, waits and preparation */
    llmgw_fail_e fail;                 /**< the last failure (LLMGW_FAIL_NONE when answered) */
    int status;
    const llmgw_error_t *error;  /**< what the client was told, when it was an error */
    apr_array_header_t *dropped; /**< const char *: parameters dropped by the last translation */
} llmgw_dispatch_result_t;

/**
 * A dispatcher for one client request, from @p p (the request pool).
 * @p t and @p s must outlive it.
 */
apr_status_t llmgw_dispatch_create(llmgw_dispatch_t **out, apr_pool_t *p,
                                   const llmgw_dispatch_params_t *params,
                                   const llmgw_transport_t *t, const llmgw_sink_t *s);

/**
 * Run every attempt the policy allows. When it returns the sink has had its
 * one answer, unless the client left (result->client_gone).
 * @return APR_SUCCESS; an APR error only for a local failure (no memory)
 */
apr_status_t llmgw_dispatch_run(llmgw_dispatch_t *d);

/** The outcome so far: complete once llmgw_dispatch_run returned; readable by sink callbacks. */
const llmgw_dispatch_result_t *llmgw_dispatch_result(const llmgw_dispatch_t *d);

#endif /* LLMGW_DISPATCH_H */
