/**
 * @file llmgw_provider_util.h
 * @brief What every translator needs in the same form: request headers and
 *        checks, upstream error text, token counts, embedding encoding, and
 *        the SSE framing of the chunks a stream sends to the client.
 *
 * The translators (llmgw_openai_compat.c, llmgw_provider_anthropic.c,
 * llmgw_provider_google.c) differ in their wire formats, not in these rules;
 * keeping them here keeps their answers alike (one clipping length, one
 * message for a refused credential, one frame layout).
 *
 * Memory: pool arguments as documented; the stream functions use only
 * jansson's heap and a stack buffer, never the request pool.
 */
#ifndef LLMGW_PROVIDER_UTIL_H
#define LLMGW_PROVIDER_UTIL_H

#include <stdarg.h>
#include "llmgw_provider.h"
#include "llmgw_json.h"

/** Upstream messages longer than this (bytes) are cut, "..." included. */
#define LLMGW_PROV_MAX_MESSAGE 2000

/** Most chunks are a few hundred bytes: frames up to this size are built on the stack. */
#define LLMGW_PROV_FRAME_STACK 4096

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

/** Append a "Name: value" line (not copied) to @p h. */
void llmgw_prov_push_header(apr_array_header_t *h, const char *line);

/** The client uses the legacy `functions` API (providers.md 2.1 rule 4): array, and no tools. */
int llmgw_prov_legacy_functions(const json_t *body);

/**
 * Is function @p name among @p allowed, the tools of an allowed_tools
 * choice, written {"type":"function","function":{"name"}} or {"name"}?
 * A NULL @p allowed allows every tool.
 */
int llmgw_prov_tool_allowed(const json_t *allowed, const char *name);

/**
 * The client's `stop` as stop sequences: *out is a new array reference, or
 * NULL when there are none (absent, null, an empty array). A string becomes
 * a one-element array. Returns 0 when @p stop is not a string or an array
 * of strings (*out is then NULL).
 */
int llmgw_prov_stop_sequences(const json_t *stop, json_t **out);

/**
 * Base64 text as a data URI carries it: one or more characters of
 * [A-Za-z0-9+/], then at most two '=' of padding at the end.
 */
int llmgw_prov_base64_ok(const char *s);

/**
 * Split a data URI "data:<media type>[;params];base64,<payload>"
 * (providers.md 2.2), "data:" in any case. Returns 1 for that shape with a
 * non-empty payload: *media is the media type, lower-cased, from @p p ("" when
 * the URI names none: each translator decides whether it needs one), *data
 * points at the payload in @p uri (not checked: llmgw_prov_base64_ok). Returns
 * 0 for anything else, a URI of another scheme included (then *media and
 * *data are left alone).
 */
int llmgw_prov_data_uri(apr_pool_t *p, const char *uri, const char **media, const char **data);

/** A 400 invalid_request_error with @p code and @p param, its message from @p fmt, in @p p. */
llmgw_error_t *llmgw_prov_vbad_request(apr_pool_t *p, const char *code, const char *param,
                                       const char *fmt, va_list ap);

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

/**
 * Token count @p key of @p obj into *out: a non-negative integer, or a real
 * (some servers write 12.0), at most LLMGW_TOKENS_MAX (a larger count is
 * read as LLMGW_TOKENS_MAX). Returns 1 when present; *out is left alone
 * when the count is absent or nonsense (negative, not a number).
 */
int llmgw_prov_token_count(const json_t *obj, const char *key, apr_int64_t *out);

/**
 * @p a + @p b for token counts read with llmgw_prov_token_count: never
 * above LLMGW_TOKENS_MAX (and negative operands count as 0), so that a
 * provider's absurd counts cannot wrap a total.
 */
apr_int64_t llmgw_prov_tokens_sum(apr_int64_t a, apr_int64_t b);

/**
 * Is member @p key of @p obj absent, or a count llmgw_prov_token_count
 * reads as exactly what it says (a number in 0..LLMGW_TOKENS_MAX)?
 */
int llmgw_prov_token_count_clean(const json_t *obj, const char *key);

/**
 * A vector of numbers as float32 little-endian, base64 with padding
 * (providers.md 2.6): a new JSON string, its text from @p p. NULL when an
 * element is not a number.
 */
json_t *llmgw_prov_float32_base64(apr_pool_t *p, const json_t *values);

/** One row of a provider's finish-reason table: its native reason, OpenAI's finish_reason. */
typedef struct {
    const char *native;
    const char *finish; /**< "length", "tool_calls", "content_filter", "stop" */
} llmgw_prov_finish_map_t;

/**
 * The row of @p map (ended by a NULL native) for @p native, compared
 * exactly; NULL when it has none (and for a NULL @p native).
 */
const llmgw_prov_finish_map_t *llmgw_prov_finish_row(const llmgw_prov_finish_map_t *map,
                                                     const char *native);

/**
 * finish_reason for the native reason @p native through @p map: unknown
 * reasons end normally ("stop"); "tool_calls" is "function_call" for a
 * client of the legacy `functions` API (@p legacy).
 */
const char *llmgw_prov_finish_reason(const llmgw_prov_finish_map_t *map, const char *native,
                                     int legacy);

/**
 * OpenAI's usage object {"prompt_tokens","completion_tokens","total_tokens"}
 * from @p u (new reference); translators add their *_details after it.
 */
json_t *llmgw_prov_usage_json(const llmgw_usage_t *u);

/** Set @p group: {@p key: @p n} in the usage object @p usage ("prompt_tokens_details", ...). */
void llmgw_prov_usage_detail(json_t *usage, const char *group, const char *key, apr_int64_t n);

/** A source of random bytes (llmgw_ingress_random_fn has the same shape). */
typedef void (*llmgw_prov_random_fn)(void *baton, unsigned char *buf, apr_size_t len);

/**
 * @p n random characters of [0-9A-Za-z], equally likely, into @p out (not
 * NUL-terminated): the one generator of the ids translators and dialects
 * make up. The bytes come from @p rnd (a test's fixed source) or, when it is
 * NULL, the system; ids must be unique, not secret, so without an entropy
 * source a time-seeded mix stands in.
 */
void llmgw_prov_random_chars(char *out, apr_size_t n, llmgw_prov_random_fn rnd, void *baton);

/** An id made only of [A-Za-z0-9_-], at least one (what Anthropic accepts as a tool id). */
int llmgw_prov_id_chars_ok(const char *id);

/** A new id: @p prefix and @p n llmgw_prov_random_chars, from @p p. */
const char *llmgw_prov_mint_id(apr_pool_t *p, const char *prefix, apr_size_t n);

/** 502 bad_gateway for a 2xx body that is no answer; @p what (may be NULL) says why. */
llmgw_error_t *llmgw_prov_bad_response(apr_pool_t *p, const char *what);

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/** A copy of @p s in @p p, of at most LLMGW_PROV_MAX_MESSAGE bytes, cut on a UTF-8 boundary. */
const char *llmgw_prov_clip_message(apr_pool_t *p, const char *s);

/**
 * The message an upstream error passes on: @p msg clipped, or "upstream
 * returned HTTP <status>" when @p msg is NULL or empty. From @p p.
 */
const char *llmgw_prov_upstream_message(apr_pool_t *p, const char *msg, int status);

/** 1 when @p text contains @p what, ignoring case (NULL text: 0). */
int llmgw_prov_mentions(const char *text, const char *what);

/**
 * The error of a request that exceeds the model's context window, with the
 * code every translator gives it (context_length_exceeded, as OpenAI's), so
 * that the dispatcher can try a member with a larger window (providers.md
 * 9.2). The provider's message is kept. From @p p.
 */
llmgw_error_t *llmgw_prov_context_exceeded(apr_pool_t *p, const char *msg);

/**
 * The gateway's own credentials were refused (HTTP @p status): a 502
 * upstream_auth_failed that carries none of the provider's text, since some
 * upstreams echo part of the key.
 */
llmgw_error_t *llmgw_prov_auth_failed(apr_pool_t *p, int status);

/**
 * 1 when HTTP @p status means the upstream refused the gateway's own
 * credentials (401, 403): answer with llmgw_prov_auth_failed.
 */
int llmgw_prov_credentials_refused(int status);

/**
 * The HTTP status Anthropic gives an error type ("rate_limit_error": 429;
 * errors inside a stream carry only the type); @p dflt for an unknown one.
 * Shared by the anthropic translator and the Messages dialect's passthrough.
 */
int llmgw_prov_anthropic_status(const char *type, int dflt);

/** An upstream "error" whose status is no error status (outside 400-599): 502 bad_gateway. */
llmgw_error_t *llmgw_prov_odd_status(apr_pool_t *p, int status);

/**
 * OpenAI's error code for an upstream status whose error came without a
 * usable one (none, or Azure's numeric codes): "request_too_large",
 * "rate_limit_exceeded", "bad_gateway", "upstream_unavailable" or
 * "upstream_timeout" for 413, 429, 502, 503 and 504, NULL otherwise. A 404
 * is left to the caller: it means a missing model on a chat call but a
 * missing stored response on a Responses GET.
 */
const char *llmgw_prov_status_code(int status);

/* ---------------------------------------------------------------------- */
/* Streams                                                                */
/* ---------------------------------------------------------------------- */

/** Set st->error to a 502 server_error with @p code and @p msg; returns @p rv. */
apr_status_t llmgw_prov_stream_fail(llmgw_stream_t *st, apr_status_t rv, const char *code,
                                    const char *msg);

/** The upstream sent an event that cannot be read: LLMGW_EUPSTREAM, st->error set. */
apr_status_t llmgw_prov_malformed(llmgw_stream_t *st);

/** The upstream body ended before the answer was complete: LLMGW_ESTREAM, st->error set. */
apr_status_t llmgw_prov_incomplete(llmgw_stream_t *st);

/** How many choices the client asked for: its `n` when an integer in 2..@p max, else 1. */
int llmgw_prov_choices_asked(const json_t *body, int max);

/**
 * The data of @p ev without surrounding whitespace (' ', '\t', '\r', '\n'):
 * *data points into the event, *len may be 0.
 */
void llmgw_prov_event_data(const llmgw_sse_event_t *ev, const char **data, apr_size_t *len);

/** The data is OpenAI's end-of-stream sentinel "[DONE]". */
int llmgw_prov_is_done_marker(const char *data, apr_size_t len);

/**
 * Frame @p j as "data: <compact json>\n\n" and hand it to st->emit (@p j is
 * not released). A CONTENT frame that went out sets st->content_emitted.
 */
apr_status_t llmgw_prov_emit_json(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *j);

/**
 * Frame @p text, the upstream's own serialisation of @p j (@p len bytes), as
 * "data: <text>\n\n" and hand it to st->emit, as llmgw_prov_emit_json does
 * with a fresh one. Only for bytes llmgw_prov_frame_verbatim_ok accepts.
 */
apr_status_t llmgw_prov_emit_raw(llmgw_stream_t *st, llmgw_chunk_kind_e kind, const json_t *j,
                                 const char *text, apr_size_t len);

/**
 * Start the frame of a chat chunk in @p b (initialised): "data: " and the
 * members every chunk of a stream shares (id, object, created, model). The
 * caller writes the choices; llmgw_prov_chunk_close ends a chunk of one.
 */
void llmgw_prov_chunk_open(llmgw_json_buf_t *b, const char *id, apr_int64_t created,
                           const char *model);

/**
 * End the one choice of a chunk whose members up to logprobs are written:
 * its finish_reason (@p finish, or null), then `"usage":null` when
 * @p usage_null (the client asked for usage: every chunk but the last).
 */
void llmgw_prov_chunk_close(llmgw_json_buf_t *b, const char *finish, int usage_null);

/**
 * End the frame @p b holds (llmgw_prov_chunk_open, then the rest of the chunk written
 * with the llmgw_json_buf_* writers) and hand it to st->emit, as
 * llmgw_prov_emit_json does. The chunk object emit receives is read back
 * from the bytes, except for a frames-only stream (llmgw_stream_t), where
 * nobody reads it: JSON null then. APR_ENOMEM when writing failed. Frees @p b.
 */
apr_status_t llmgw_prov_emit_frame(llmgw_stream_t *st, llmgw_chunk_kind_e kind,
                                   llmgw_json_buf_t *b);

/**
 * May the data of an SSE event that json_loadb accepted go on as one
 * "data:" line? Not when jansson read it leniently (llmgw_json_verbatim_ok)
 * or when it spans lines (CR or LF between tokens).
 */
int llmgw_prov_frame_verbatim_ok(const char *text, apr_size_t len);

/** Emit "data: [DONE]\n\n" as the FINAL frame; st->done once it went out. */
apr_status_t llmgw_prov_emit_done(llmgw_stream_t *st);

/**
 * Room for index @p k in a stream's array of per-index state (Anthropic's
 * content blocks, Google's candidates), indexed by the upstream's own
 * numbers. When @p k is at or past *@p cap, a zeroed array of twice the
 * capacity (from @p first) that holds @p k is made in @p p, the old
 * elements are copied over and *@p cap is updated; otherwise @p elts comes
 * back as it is. The old copy stays in @p p until the call ends: fine for
 * arrays that grow a few times, so the caller must bound @p k (>= 0).
 * @param size the size of one element
 * @return the array to use from now on
 */
void *llmgw_prov_array_grow(apr_pool_t *p, void *elts, int *cap, int k, int first, apr_size_t size);

#endif /* LLMGW_PROVIDER_UTIL_H */
