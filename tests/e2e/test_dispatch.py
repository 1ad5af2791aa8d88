"""The dispatch policy of issue 12 end to end (DESIGN.md 6, providers.md 9.2): no second
chance for a member that never answered, firstTokenTimeout, context-window fail-over with
contextFallback, malformed events skipped, stream recovery (`streamRecovery: continue` with
a prefill spliced into the same stream, `buffer` holding the stream until it is complete),
and the adaptive cooldown.

Mocks are strict: the Anthropic mock refuses a prefill ending in whitespace and continues a
prefill with the rest of its answer, the Mistral mock accepts a trailing assistant message
only with `prefix: true` and continues it; every request they received is recorded and
checked. Members are OpenAI mocks A and B, the Anthropic mock C and the Mistral mock M;
every member has maxRetries 0 and short timeouts unless a test says otherwise.
"""

import json
import time

import pytest

import harness
import poolkit
from conftest import fresh_mocks, mock_fixture, start_gateway
from harness import assert_openai_error, chat_body, post, read_sse
from mock_anthropic import ANTHROPIC_KEY, AnthropicFault, MockAnthropic, _blocks, _describe, \
    _tokens, anthropic_error
from mock_dialects import MISTRAL_KEY, MockMistral
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI, openai_error, prompt_tokens_for

# Failed attempts, recoveries and skipped events are logged (LLMGW ids): expected here.
pytestmark = pytest.mark.allow_log()

FAST = dict(connectTimeout="1s", firstByteTimeout="2s", idleTimeout="2s", timeout="10s",
            maxRetries=0)
TEXT = "one two three four five"
NEVER = 1000000  # a failureThreshold no test reaches
ANSWER = "echo: " + TEXT


ma = mock_fixture(MockOpenAI)
mb = mock_fixture(MockOpenAI)
mc = mock_fixture(MockAnthropic)
mm = mock_fixture(MockMistral)
_fresh_mocks = fresh_mocks("ma", "mb", "mc", "mm")


def _mistral(name, url, **config):
    cfg = {"apiKey": MISTRAL_KEY, "endpoint": url}
    cfg.update(config)
    return {"name": name, "type": "mistral", "config": cfg}


@pytest.fixture(scope="module")
def gw(request, module_so, ma, mb, mc, mm):
    ob, pool = harness.openai_backend, poolkit.pool_backend
    backends = [
        ob("a", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
        ob("b", mb.url, DEFAULT_KEY, defaultModel="gpt-b", **FAST),
        poolkit.anthropic_backend("c", mc.url, ANTHROPIC_KEY, defaultModel="claude-mock",
                                  prefill=True, **FAST),
        _mistral("m", mm.url, defaultModel="mistral-small-latest", prefill=True, **FAST),
        poolkit.anthropic_backend("c-plain", mc.url, ANTHROPIC_KEY, defaultModel="claude-mock",
                                  **FAST),
        # headers and keep-alives at once, the first token late
        ob("slow", ma.url, DEFAULT_KEY, defaultModel="gpt-mock",
           **dict(FAST, firstTokenTimeout="1s", idleTimeout="10s", firstByteTimeout="10s")),
        ob("small", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", contextFallback="big", **FAST),
        ob("big", mb.url, DEFAULT_KEY, defaultModel="gpt-big", **FAST),
        ob("flaky", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
        # The breaker stays out of these pools (members fail in many tests).
        pool("cont", ["a", "b", "c"], failureThreshold=NEVER),
        pool("cm", ["c", "m"], failureThreshold=NEVER),
        pool("ab", ["a", "b"], failureThreshold=NEVER),
        pool("ftt", ["slow", "b"], failureThreshold=NEVER),
        pool("ctx", ["small", "b", "big"], failureThreshold=NEVER),
        pool("actx", ["c-plain", "b"], failureThreshold=NEVER),
        pool("cool", ["flaky", "b"], failureThreshold=1, cooldown="8s"),
    ]

    def route(name, backend, **extra):
        r = harness.route(name, f"/v1/{name}/chat/completions", backend)
        r.update(extra)
        return r

    routes = [
        route("cont", "cont", streamRecovery="continue"),
        route("cm", "cm", streamRecovery="continue"),
        route("abcont", "ab", streamRecovery="continue"),
        route("none", "cont"),
        route("buf", "ab", streamRecovery="buffer"),
        route("ftt", "ftt"),
        route("slow", "slow"),
        route("ctx", "ctx"),
        route("actx", "actx"),
        route("cool", "cool"),
        route("a", "a"),
    ]
    return start_gateway(request, "dispatch", harness.gateway_yaml(backends, routes),
                         server_extra=poolkit.STATUS_CONF)


def url(gw, name):
    return gw.url(f"/v1/{name}/chat/completions")


def stream(gw, name, text=TEXT, **extra):
    body = chat_body(text, model=None, stream=True, stream_options={"include_usage": True},
                     **extra)
    return post(url(gw, name), body, stream=True)


def contents(sse):
    """The content deltas, token by token."""
    return [c["choices"][0]["delta"]["content"] for c in sse.chunks
            if c.get("choices") and c["choices"][0]["delta"].get("content")]


def roles(sse):
    return [c for c in sse.chunks if c.get("choices") and c["choices"][0]["delta"].get("role")]


def last_message(rec):
    return rec.body["messages"][-1]


def text_of(message):
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content)


# -- a member that never answered ------------------------------------------------------------

@pytest.mark.h2
def test_first_token_timeout_fails_over_at_once(gw, ma, mb):
    """Headers, the role chunk and keep-alives at once, the first token after 3 s: silent.
    firstTokenTimeout (1 s) ends the wait and B answers at once."""
    ma.script(Fault(chunks=["late ", "answer"], chunk_delay=3, ping_every=0.25))
    t0 = time.monotonic()
    r = stream(gw, "ftt")
    assert r.status_code == 200, r.text[:300]
    sse = read_sse(r)
    elapsed = time.monotonic() - t0
    assert r.headers["x-llmgw-backend"] == "b"
    assert sse.done and sse.errors == [] and sse.text == ANSWER, sse.data
    assert len(roles(sse)) == 1 and {c["model"] for c in sse.chunks} == {"gpt-b"}
    assert 0.9 <= elapsed < 2.5, elapsed
    rec = ma.wait_outcome(0, 3.0)
    assert rec.outcome == "client_closed", rec
    assert 0.9 <= rec.closed_at - rec.t < 1.6, rec.closed_at - rec.t
    assert mb.requests[0].t - rec.t >= 0.9
    assert len(ma.requests) == 1


def test_first_token_timeout_alone_is_504(gw, ma):
    ma.script(Fault(first_event_delay=4, ping_every=0.25))
    t0 = time.monotonic()
    r = stream(gw, "slow")
    assert_openai_error(r, 504, code="upstream_timeout")
    assert time.monotonic() - t0 < 2.5
    assert len(ma.requests) == 1  # not asked again
    assert r.headers["x-llmgw-attempts"] == "1"


# -- context window ----------------------------------------------------------------------------

def test_context_window_fails_over_to_the_context_fallback(gw, ma, mb):
    ma.script(Fault(status=400, body=openai_error(
        "This model's maximum context length is 8192 tokens. However, your messages resulted "
        "in 9100 tokens.", param="messages", code="context_length_exceeded")))
    t0 = time.monotonic()
    r = post(url(gw, "ctx"), chat_body("a long story", model=None))
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 1.0  # at once, no backoff
    assert r.headers["x-llmgw-backend"] == "big"
    assert r.headers["x-llmgw-attempts"] == "2"
    assert [x.body["model"] for x in mb.requests] == ["gpt-big"]  # big, not b, first
    assert len(ma.requests) == 1


def test_no_window_large_enough_is_the_providers_400(gw, ma, mb):
    err = openai_error("maximum context length exceeded", param="messages",
                       code="context_length_exceeded")
    ma.script(Fault(status=400, body=err))
    mb.script(Fault(status=400, body=err), Fault(status=400, body=err))
    r = post(url(gw, "ctx"), chat_body("far too long", model=None))
    e = assert_openai_error(r, 400, code="context_length_exceeded")
    assert e["message"] == "maximum context length exceeded"
    assert [x.body["model"] for x in mb.requests] == ["gpt-big", "gpt-b"]


def test_anthropic_prompt_too_long_fails_over(gw, mc, mb):
    mc.script(AnthropicFault(status=400, body=anthropic_error(
        "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum")))
    r = post(url(gw, "actx"), chat_body("a long story", model=None))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "b"
    assert len(mc.requests) == 1 and len(mb.requests) == 1


# -- malformed events --------------------------------------------------------------------------

def test_a_malformed_event_is_skipped_and_counted(gw, ma):
    before = poolkit.backend_stats(gw)["a"]
    ma.script(Fault(malformed_after=3))
    r = stream(gw, "a")
    sse = read_sse(r)
    assert sse.done and sse.errors == [] and sse.text == ANSWER, sse.data
    after = poolkit.backend_stats(gw)["a"]
    assert after["errors"]["protocol"] == before["errors"]["protocol"] + 1
    assert after["successes"] == before["successes"] + 1


# -- streamRecovery: continue -----------------------------------------------------------------

@pytest.mark.h2
@pytest.mark.parametrize("fault", [Fault(drop_after=3), Fault(stall_after=3)],
                         ids=["cut", "stall"])
def test_continue_splices_a_prefill_continuation(gw, ma, mb, mc, fault):
    """A is cut (or stalls past its idleTimeout) after "echo: one "; B declares no prefill
    and is never sent one; C (Anthropic, prefill: true) gets "echo: one" as a trailing
    assistant message and its continuation is spliced into the same stream, token by
    token."""
    ma.script(fault)  # role, "echo: ", "one ", then the connection drops or goes silent
    r = stream(gw, "cont")
    assert r.status_code == 200
    sse = read_sse(r)
    assert sse.done and sse.errors == [], sse.data
    assert contents(sse) == ["echo: ", "one ", "two", " three", " four", " five"]
    assert sse.text == ANSWER
    assert len(roles(sse)) == 1 and sse.finish_reasons == ["stop"]
    assert len({c["id"] for c in sse.chunks}) == 1, sse.data
    assert {c["model"] for c in sse.chunks} == {"gpt-mock"}
    assert len({c["created"] for c in sse.chunks}) == 1
    assert mb.requests == []  # no prefill declared: never sent one
    assert len(mc.requests) == 1
    prefill = last_message(mc.requests[0])
    assert prefill["role"] == "assistant" and text_of(prefill) == "echo: one", prefill
    entry = gw.access_entry(r.test_id)
    assert (entry["backend"], entry["attempts"], entry["status"]) == ("c", "2", "200"), entry
    assert r.headers["x-llmgw-backend"] == "a"  # the stream began there


def test_continue_sums_the_usage_of_both_attempts(gw, mc, mm):
    """C (Anthropic) reports its input tokens at the start and is cut; M (Mistral, prefix)
    continues: the usage chunk sums both."""
    mc.script(AnthropicFault(drop_after=5))  # start, ping, block, "echo: ", "one "
    r = stream(gw, "cm")
    sse = read_sse(r)
    assert sse.done and sse.errors == [], sse.data
    assert sse.text == ANSWER
    assert len({c["id"] for c in sse.chunks}) == 1
    last = last_message(mm.requests[0])
    assert last == {"role": "assistant", "content": "echo: one", "prefix": True}, last
    c_input = sum(_tokens(_describe(b)) for m in mc.requests[0].body["messages"]
                  for b in _blocks(m))
    m_prompt = prompt_tokens_for(mm.requests[0].body)
    usage = sse.chunks[-1]["usage"]
    assert usage["prompt_tokens"] == c_input + m_prompt, usage
    assert usage["completion_tokens"] == 1 + 4, usage  # C's 1 so far, M's 4 pieces
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    entry = gw.access_entry(r.test_id)
    assert int(entry["prompt_tokens"]) == usage["prompt_tokens"], entry


def test_continue_without_a_prefill_member_ends_with_the_error_event(gw, ma, mb):
    ma.script(Fault(drop_after=3))
    r = stream(gw, "abcont")
    sse = read_sse(r)
    assert not sse.done and len(sse.errors) == 1, sse.data
    assert sse.text == "echo: one "
    assert mb.requests == []


def test_continue_does_not_prefill_a_tool_call(gw, ma, mc):
    """A cut inside streamed tool-call arguments cannot be continued: the error event."""
    ma.script(Fault(tool_calls=[("get_weather", {"city": "Paris", "unit": "celsius"})],
                    drop_after=3))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}, "required": ["city"]}}}]
    r = stream(gw, "cont", tools=tools)
    sse = read_sse(r)
    assert not sse.done and len(sse.errors) == 1, sse.data
    assert mc.requests == []


def test_recovery_none_is_the_default(gw, ma, mb, mc):
    ma.script(Fault(drop_after=3))
    sse = read_sse(stream(gw, "none"))
    assert not sse.done and len(sse.errors) == 1 and sse.text == "echo: one "
    assert mb.requests == [] and mc.requests == []


# -- streamRecovery: buffer -------------------------------------------------------------------

@pytest.mark.h2
def test_buffer_holds_the_stream_until_the_answer_is_complete(gw, ma, mb):
    """A is cut after content: retried invisibly on B, whose events come 0.2 s apart; the
    client gets nothing before B's answer is complete, then all of it at once."""
    ma.script(Fault(drop_after=4))
    mb.script(Fault(chunk_delay=0.2))
    r = stream(gw, "buf")
    t_headers = time.monotonic()
    sse = read_sse(r)
    assert sse.done and sse.errors == [] and sse.text == ANSWER, sse.data
    assert len(roles(sse)) == 1 and {c["model"] for c in sse.chunks} == {"gpt-b"}
    rec = mb.wait_outcome(0, 3.0)
    assert rec.outcome == "complete"
    assert t_headers >= rec.t_end - 0.05, (t_headers, rec.t_end)
    times = [t for t, _ in sse.events]
    assert times[-1] - times[0] < 0.15, times  # whole, not 0.2 s apart
    assert r.headers["x-llmgw-backend"] == "b" and r.headers["x-llmgw-attempts"] == "2"


def test_buffer_recovers_a_cut_tool_call(gw, ma, mb):
    ma.script(Fault(tool_calls=[("get_weather", {"city": "Paris"})], drop_after=3))
    mb.script(Fault(tool_calls=[("get_weather", {"city": "Paris"})]))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}}}}]
    sse = read_sse(stream(gw, "buf", tools=tools))
    assert sse.done and sse.errors == [], sse.data
    calls = sse.tool_calls()
    assert len(calls) == 1 and json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert sse.finish_reasons == ["tool_calls"]


# -- adaptive cooldown --------------------------------------------------------------------------

def _cool(gw):
    return poolkit.backend_stats(gw)["flaky"]


def _ask_cool(gw, text):
    r = post(url(gw, "cool"), chat_body(text, model=None))
    assert r.status_code == 200, r.text
    return r.headers["x-llmgw-backend"]


def test_cooldown_starts_short_and_doubles_after_failed_probes(gw, ma, mb):
    """cooldown: 8s is the cap: the first cooldown is 2 s, 4 s after a failed probe, and
    short again once a probe succeeded."""
    ma.script(Fault(status=500))
    assert _ask_cool(gw, "first") == "b"
    st = _cool(gw)
    assert st["state"] == "cooldown" and 1500 < st["cooldown_remaining_ms"] <= 2000, st
    time.sleep(st["cooldown_remaining_ms"] / 1000 + 0.1)
    ma.script(Fault(status=500))
    assert _ask_cool(gw, "probe fails") == "b"
    st = _cool(gw)
    assert st["state"] == "cooldown" and 3500 < st["cooldown_remaining_ms"] <= 4000, st
    time.sleep(st["cooldown_remaining_ms"] / 1000 + 0.1)
    assert _ask_cool(gw, "probe answers") == "flaky"
    assert _cool(gw)["state"] == "up"
    ma.script(Fault(status=500))
    assert _ask_cool(gw, "fails again") == "b"
    st = _cool(gw)
    assert 1500 < st["cooldown_remaining_ms"] <= 2000, st
    assert len(ma.requests) == 4
