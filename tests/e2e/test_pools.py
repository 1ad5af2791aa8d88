"""Pools end to end: the five strategies, retries and fallback between two members under
scripted faults, streaming fallback, the circuit breaker, what the client gets when
every member failed, usage accounting, and a bounded load run with a flaky member.

Every pool here has two members: `<tag>-a` on mock OpenAI server A and `<tag>-b` on mock
server B (or on the Anthropic mock for the cross-provider cases). Each test has its own
pool, so the shared statistics (latency averages, consecutive failures, cooldowns) of
one test never steer another. Unless a test says otherwise a member has maxRetries 0
and timeouts of about a second; `-a` lists the model the client asks for, `-b` has only
a defaultModel of its own, so an answer shows which member produced it.

Timing checks use the mocks' recorded arrival times (the test process's clock).
Tests marked h2 also run over HTTP/2 (LLMGW_PROTO=h2): retries with waits, fallback and
streaming fallback, where a gateway that took an h2 client for gone would answer nothing.
"""

import json
import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import harness
import poolkit
from conftest import fresh_mocks, mock_fixture, start_gateway
from harness import assert_openai_error, chat_body, post, read_sse
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI, openai_error

# Failed upstream attempts are logged (LLMGW ids); nothing else may appear.
pytestmark = [pytest.mark.allow_log(), pytest.mark.mpm]

FAST = dict(connectTimeout="1s", firstByteTimeout="1s", idleTimeout="1s", timeout="6s")
MODEL = "gpt-mock"  # what clients ask for; every `-a` member lists it
B_MODEL = "gpt-b"  # the defaultModel of a `-b` member that does not list MODEL
CLAUDE = "claude-mock"
NEVER = 1000000  # a failureThreshold no test reaches: no cooldown in that pool


ma = mock_fixture(MockOpenAI)
mb = mock_fixture(MockOpenAI)
mc = mock_fixture(MockAnthropic)
_fresh_mocks = fresh_mocks("ma", "mb", "mc")


def _pair(tag, ma, mb, mc, *, strategy="priority", a=None, b=None, b_kind="openai",
          same_model=False, weights=None, **pool):
    """Members <tag>-a, <tag>-b and the pool <tag>, with its route."""
    a_cfg = dict(FAST, maxRetries=0, models=[MODEL])
    a_cfg.update(a or {})
    b_cfg = dict(FAST, maxRetries=0)
    b_cfg.update({"models": [MODEL]} if same_model else {"defaultModel": B_MODEL})
    b_cfg.update(b or {})
    dead = a_cfg.pop("dead", False), b_cfg.pop("dead", False)
    a_url = f"http://127.0.0.1:{harness.free_port()}/v1" if dead[0] else ma.url
    b_url = f"http://127.0.0.1:{harness.free_port()}/v1" if dead[1] else mb.url
    backends = [harness.openai_backend(f"{tag}-a", a_url, DEFAULT_KEY, **a_cfg)]
    if b_kind == "anthropic":
        b_cfg.pop("defaultModel", None)
        backends.append(poolkit.anthropic_backend(f"{tag}-b", mc.url, ANTHROPIC_KEY,
                                                  defaultModel=CLAUDE, **b_cfg))
    else:
        backends.append(harness.openai_backend(f"{tag}-b", b_url, DEFAULT_KEY, **b_cfg))
    members = [f"{tag}-a", f"{tag}-b"]
    if weights:
        members = list(zip(members, weights))
    backends.append(poolkit.pool_backend(tag, members, strategy, **pool))
    return backends, harness.route(tag, f"/v1/{tag}/chat/completions", tag)


# tag -> pool definition (see _pair)
POOLS = {
    "prio": dict(failureThreshold=NEVER),
    "rr": dict(strategy="round-robin", same_model=True, failureThreshold=NEVER),
    "weighted": dict(strategy="weighted", same_model=True, weights=(70, 30),
                     failureThreshold=NEVER),
    "latency": dict(strategy="latency", same_model=True, failureThreshold=NEVER),
    "pref": dict(strategy="round-robin", failureThreshold=NEVER),
    "busy": dict(strategy="least-busy", same_model=True, failureThreshold=NEVER),
    "f500": dict(a=dict(maxRetries=1), failureThreshold=NEVER),
    "f503": dict(a=dict(maxRetries=1), failureThreshold=NEVER),
    "ra": dict(a=dict(maxRetries=1), failureThreshold=NEVER),
    "rl": dict(a=dict(maxRetries=1), failureThreshold=NEVER),
    "fbt": dict(a=dict(firstByteTimeout="600ms"), failureThreshold=NEVER),
    "drop": dict(a=dict(maxRetries=1), failureThreshold=NEVER),
    "final": dict(failureThreshold=NEVER),
    "f404": dict(failureThreshold=NEVER),
    "f401": dict(cooldown="30s"),
    "cap": dict(a=dict(maxRetries=2), b=dict(maxRetries=2), failureThreshold=NEVER),
    "cap1": dict(a=dict(maxRetries=2), maxAttempts=1, failureThreshold=NEVER),
    "quota": dict(a=dict(maxRetries=1), cooldown="30s"),
    "nofb": dict(fallback=False, failureThreshold=NEVER),
    "stream": dict(failureThreshold=NEVER),
    "cut": dict(failureThreshold=NEVER),
    "cool": dict(failureThreshold=2, cooldown="1500ms"),
    "reprobe": dict(failureThreshold=1, cooldown="1s"),
    "probe4xx": dict(failureThreshold=1, cooldown="1s"),
    "probegone": dict(failureThreshold=1, cooldown="1s"),
    "all5": dict(failureThreshold=NEVER),
    "all429": dict(failureThreshold=NEVER),
    "mixed": dict(failureThreshold=NEVER),
    "allto": dict(a=dict(firstByteTimeout="500ms"), b=dict(firstByteTimeout="500ms"),
                  failureThreshold=NEVER),
    "allconn": dict(a=dict(dead=True, connectTimeout="500ms"),
                    b=dict(dead=True, connectTimeout="500ms"), failureThreshold=NEVER),
    "allcool": dict(failureThreshold=1, cooldown="2s"),
    "xp": dict(b_kind="anthropic", failureThreshold=NEVER),
    "load": dict(strategy="round-robin", same_model=True, failureThreshold=NEVER),
}


@pytest.fixture(scope="module")
def gw(request, module_so, ma, mb, mc):
    backends, routes = [], []
    for tag, spec in POOLS.items():
        bs, r = _pair(tag, ma, mb, mc, **spec)
        backends.extend(bs)
        routes.append(r)
    # A route straight to one member, for what a lone backend's client sees.
    routes.append(harness.route("lone", "/v1/lone/chat/completions", "allconn-a"))
    return start_gateway(request, "pools", harness.gateway_yaml(backends, routes),
                         server_extra=poolkit.STATUS_CONF)


def url(gw, tag):
    return gw.url(f"/v1/{tag}/chat/completions")


def ask(gw, tag, text="hello", session=None, **extra):
    return post(url(gw, tag), chat_body(text, model=MODEL, **extra), session=session)


def ask_stream(gw, tag, text="hello", **extra):
    return post(url(gw, tag), chat_body(text, model=MODEL, stream=True, **extra), stream=True)


def who(r):
    return r.headers.get("x-llmgw-backend")


def content(r):
    return r.json()["choices"][0]["message"]["content"]


def gaps(reqs):
    return [round(b.t - a.t, 3) for a, b in zip(reqs, reqs[1:])]


def queue(mock, fault, n):
    """Forget what `mock` recorded and queue `fault` for its next n requests."""
    mock.reset()
    mock.script(*[fault] * n)


def ok_from(r, backend, text, model):
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert who(r) == backend, dict(r.headers)
    body = r.json()
    assert body["object"] == "chat.completion", body
    assert content(r) == "echo: " + text, body
    assert body["model"] == model, body
    return body


# -- strategies ----------------------------------------------------------------------------

def test_priority_uses_the_first_member_until_it_fails(gw, ma, mb):
    assert [who(ask(gw, "prio", f"p{i}")) for i in range(5)] == ["prio-a"] * 5
    assert len(ma.requests) == 5 and mb.requests == []
    ma.script(Fault(status=500))
    r = ask(gw, "prio", "moved on")
    ok_from(r, "prio-b", "moved on", B_MODEL)
    assert r.headers["x-llmgw-attempts"] == "2"
    assert mb.requests[0].body["model"] == B_MODEL  # b's own model: it does not list MODEL
    ok_from(ask(gw, "prio", "back again"), "prio-a", "back again", MODEL)


def test_round_robin_alternates(gw, ma, mb):
    got = [who(ask(gw, "rr", f"rr{i}")) for i in range(8)]
    assert all(x != y for x, y in zip(got, got[1:])), got
    assert got.count("rr-a") == 4 and got.count("rr-b") == 4, got
    assert len(ma.requests) == 4 and len(mb.requests) == 4


def test_weighted_70_30_over_1000_requests(gw, ma, mb):
    """Tolerance: the share of -a is within 0.06 of 0.70 (sd of a binomial share over
    1,000 draws is 0.0145; 0.06 is 4.1 sd, a false failure about once in 25,000 runs)."""
    n = 1000

    def one(i, session):
        r = ask(gw, "weighted", f"w{i}", session=session)
        assert r.status_code == 200, r.text[:300]
        return who(r)

    got = poolkit.parallel(one, range(n), workers=8)
    share = got.count("weighted-a") / n
    assert got.count("weighted-a") + got.count("weighted-b") == n
    assert abs(share - 0.70) <= 0.06, share
    assert len(ma.requests) == got.count("weighted-a")
    assert len(mb.requests) == got.count("weighted-b")


def _run(gw, tag, n, label):
    return [who(ask(gw, tag, f"{label}{i}")) for i in range(n)]


def test_latency_follows_the_faster_member(gw, ma, mb):
    """Three phases, each with a tail of 20 requests of which at most 5 may go elsewhere
    (the strategy explores the other member 5 % of the time: 6+ of 20 happens about
    once in 3,000 runs)."""
    # 1: a answers in 5 ms, b in 80 ms. Each gets measured first, then a gets the traffic.
    queue(ma, Fault(delay=0.005), 100)
    queue(mb, Fault(delay=0.080), 100)
    got = _run(gw, "latency", 26, "one")
    assert got[:6].count("latency-a") >= 3 and got[:6].count("latency-b") >= 3, got
    assert got[-20:].count("latency-a") >= 15, got
    # 2: a slows down to 250 ms, b is now the fast one: traffic moves to b after a few
    # slow answers have pushed a's moving average past b's.
    queue(ma, Fault(delay=0.250), 100)
    queue(mb, Fault(delay=0.005), 100)
    got = _run(gw, "latency", 26, "two")
    assert "latency-b" in got[:6], got
    assert got[-20:].count("latency-b") >= 15, got
    # 3: a has recovered (5 ms) and b has become slow (300 ms): traffic goes back to a.
    queue(ma, Fault(delay=0.005), 100)
    queue(mb, Fault(delay=0.300), 100)
    got = _run(gw, "latency", 28, "three")
    assert "latency-a" in got[:8], got
    assert got[-20:].count("latency-a") >= 15, got


def test_members_listing_the_model_are_preferred(gw, ma, mb):
    """DESIGN.md 5: round-robin, but -a lists gpt-mock and -b only has gpt-b."""
    got = [who(ask(gw, "pref", f"mock {i}")) for i in range(4)]
    assert got == ["pref-a"] * 4, got
    got = [who(post(url(gw, "pref"), chat_body(f"b {i}", model=B_MODEL))) for i in range(4)]
    assert got == ["pref-b"] * 4, got
    assert [x.body["model"] for x in ma.requests] == [MODEL] * 4
    assert [x.body["model"] for x in mb.requests] == [B_MODEL] * 4


def test_least_busy_spreads_concurrent_requests(gw, ma, mb):
    ma.script(*[Fault(delay=0.8)] * 4)
    mb.script(*[Fault(delay=0.8)] * 4)
    with ThreadPoolExecutor(max_workers=4) as ex:
        futures = []
        for i in range(4):
            futures.append(ex.submit(ask, gw, "busy", f"busy{i}"))
            # The next request starts once this one is in flight at a mock.
            assert harness.wait_until(lambda: len(ma.requests) + len(mb.requests) > i, 3.0)
        got = [who(f.result()) for f in futures]
    assert sorted(got) == ["busy-a", "busy-a", "busy-b", "busy-b"], got
    assert len(ma.requests) == 2 and len(mb.requests) == 2


# -- fallback ---------------------------------------------------------------------------------

def test_500_once_is_retried_on_the_same_member(gw, ma, mb):
    ma.script(Fault(status=500))
    r = ask(gw, "f500", "again")
    ok_from(r, "f500-a", "again", MODEL)
    assert r.headers["x-llmgw-attempts"] == "2"
    assert len(ma.requests) == 2 and mb.requests == []
    assert ma.requests[0].raw == ma.requests[1].raw


@pytest.mark.h2
def test_persistent_500_falls_back_after_the_retries(gw, ma, mb):
    ma.script(Fault(status=500), Fault(status=500), Fault(status=500))
    r = ask(gw, "f500", "elsewhere")
    ok_from(r, "f500-b", "elsewhere", B_MODEL)
    assert r.headers["x-llmgw-attempts"] == "3"
    assert len(ma.requests) == 2 and len(mb.requests) == 1  # maxRetries 1: two tries on a
    assert 0.35 <= ma.requests[1].t - ma.requests[0].t <= 1.0, gaps(ma.requests)
    assert mb.requests[0].t - ma.requests[1].t < 0.3  # no backoff before another member


def test_persistent_503_fails_over_within_the_retry_budget(gw, ma, mb):
    ma.script(*[Fault(status=503)] * 5)
    t0 = time.monotonic()
    r = ask(gw, "f503", "overloaded")
    elapsed = time.monotonic() - t0
    ok_from(r, "f503-b", "overloaded", B_MODEL)
    assert len(ma.requests) == 2 and len(mb.requests) == 1
    assert elapsed < 1.5, elapsed


@pytest.mark.h2
def test_429_retry_after_is_honoured_before_the_retry(gw, ma, mb):
    limited = openai_error("Rate limit reached for requests", "requests",
                           code="rate_limit_exceeded")
    ma.script(Fault(status=429, body=limited, headers={"Retry-After": "1"}))
    r = ask(gw, "ra", "patience")
    ok_from(r, "ra-a", "patience", MODEL)
    assert len(ma.requests) == 2 and mb.requests == []
    assert 0.95 <= ma.requests[1].t - ma.requests[0].t < 2.0, gaps(ma.requests)
    # Still limited after the wait: the next member answers, without a further wait.
    ma.reset()
    ma.script(*[Fault(status=429, body=limited, headers={"Retry-After": "1"})] * 2)
    r = ask(gw, "ra", "then elsewhere")
    ok_from(r, "ra-b", "then elsewhere", B_MODEL)
    assert len(ma.requests) == 2 and len(mb.requests) == 1
    assert 0.95 <= ma.requests[1].t - ma.requests[0].t < 2.0, gaps(ma.requests)
    assert mb.requests[0].t - ma.requests[1].t < 0.3


def test_429_with_a_long_retry_after_falls_back_at_once(gw, ma, mb):
    ma.script(Fault(status=429, headers={"Retry-After": "30"}))
    t0 = time.monotonic()
    r = ask(gw, "ra", "no waiting")
    ok_from(r, "ra-b", "no waiting", B_MODEL)
    assert time.monotonic() - t0 < 0.5
    assert len(ma.requests) == 1 and len(mb.requests) == 1


def test_429_without_retry_after_backs_off_with_jitter(gw, ma, mb):
    """Four requests, each: a 429, a pause, a 429 again, then b. The pauses are the
    jittered backoff (0.5 s +- 25 %): never hammering, and not all the same."""
    limited = openai_error("Rate limit reached for requests", "requests",
                           code="rate_limit_exceeded")
    pauses = []
    for i in range(4):
        ma.reset()
        mb.reset()
        ma.script(Fault(status=429, body=limited), Fault(status=429, body=limited))
        r = ask(gw, "rl", f"limited {i}")
        ok_from(r, "rl-b", f"limited {i}", B_MODEL)
        assert len(ma.requests) == 2 and len(mb.requests) == 1
        pauses.append(ma.requests[1].t - ma.requests[0].t)
        assert mb.requests[0].t - ma.requests[1].t < 0.3
    assert all(0.35 <= p <= 0.9 for p in pauses), pauses
    assert max(pauses) - min(pauses) > 0.003, pauses


@pytest.mark.h2
def test_first_byte_timeout_is_abandoned_and_failed_over(gw, ma, mb):
    ma.script(Fault(delay=5))
    t0 = time.monotonic()
    r = ask(gw, "fbt", "too slow")
    elapsed = time.monotonic() - t0
    ok_from(r, "fbt-b", "too slow", B_MODEL)
    assert 0.55 <= elapsed < 1.6, elapsed
    rec = ma.wait_outcome(0, 3.0)
    assert rec.outcome == "client_closed", rec
    assert 0.5 <= rec.closed_at - rec.t < 1.2, rec.closed_at - rec.t
    assert mb.requests[0].t - rec.t >= 0.55


def test_dropped_connection_is_retried_then_failed_over(gw, ma, mb):
    ma.script(Fault(drop="before_headers"))
    r = ask(gw, "drop", "reset once")
    ok_from(r, "drop-a", "reset once", MODEL)
    assert mb.requests == []
    # Every answer of a is a reset: the client still gets b's answer.
    queue(ma, Fault(drop="before_headers"), 8)
    r = ask(gw, "drop", "reset always")
    ok_from(r, "drop-b", "reset always", B_MODEL)
    assert 2 <= len(ma.requests) <= 4 and len(mb.requests) == 1
    assert all(x.outcome == "dropped" for x in ma.requests)


def test_upstream_sees_no_attempt_the_gateway_does_not_count(gw, ma, mb):
    """libcurl would silently send a request again when its reused connection dies before
    any response byte; the gateway refuses that re-send and counts (and retries) the
    attempt itself, so the provider sees exactly the attempts x-llmgw-attempts admits."""
    with requests.Session() as s:
        ok_from(ask(gw, "drop", "warm", session=s), "drop-a", "warm", MODEL)
        ma.reset()
        ma.script(Fault(drop="before_headers"))
        r = ask(gw, "drop", "reset on a reused connection", session=s)
    ok_from(r, "drop-a", "reset on a reused connection", MODEL)
    assert len(ma.requests) == int(r.headers["x-llmgw-attempts"]), \
        (r.headers["x-llmgw-attempts"], [(x.conn, x.outcome) for x in ma.requests])


@pytest.mark.parametrize("status,code,message", [
    (400, "content_filter", "The response was filtered due to the prompt triggering the "
                            "content management policy."),
    (413, "request_too_large", "Request too large for gpt-mock."),
])
def test_client_errors_are_neither_retried_nor_failed_over(gw, ma, mb, status, code, message):
    ma.script(Fault(status=status, body=openai_error(message, code=code, param="messages")))
    r = ask(gw, "final", "too much")
    err = assert_openai_error(r, status, code=code)
    assert err["message"] == message, err
    assert len(ma.requests) == 1 and mb.requests == []
    assert r.headers["x-llmgw-attempts"] == "1"


def test_404_model_not_found_falls_back(gw, ma, mb):
    """providers.md 9.2: a 404 is not retried, but another member may serve the model."""
    ma.script(Fault(status=404))
    r = ask(gw, "f404", "who has it")
    ok_from(r, "f404-b", "who has it", B_MODEL)
    assert len(ma.requests) == 1 and len(mb.requests) == 1


def test_401_falls_back_and_cools_the_member_down(gw, ma, mb):
    ma.script(Fault(status=401))
    ok_from(ask(gw, "f401", "bad key"), "f401-b", "bad key", B_MODEL)
    ok_from(ask(gw, "f401", "skip it"), "f401-b", "skip it", B_MODEL)
    assert len(ma.requests) == 1 and len(mb.requests) == 2
    assert poolkit.backend_stats(gw)["f401-a"]["state"] == "cooldown"


def test_quota_429_is_not_retried_and_cools_the_member_down(gw, ma, mb):
    """providers.md 9.2: insufficient_quota never clears by waiting: no retry on that
    member, fall back at once, and mark it unavailable (cool-down)."""
    quota = openai_error("You exceeded your current quota, please check your plan and "
                         "billing details.", "insufficient_quota", code="insufficient_quota")
    ma.script(*[Fault(status=429, body=quota)] * 4)
    t0 = time.monotonic()
    ok_from(ask(gw, "quota", "no quota"), "quota-b", "no quota", B_MODEL)
    assert time.monotonic() - t0 < 0.3
    assert len(ma.requests) == 1 and len(mb.requests) == 1
    assert poolkit.backend_stats(gw)["quota-a"]["state"] == "cooldown"
    ok_from(ask(gw, "quota", "skip it"), "quota-b", "skip it", B_MODEL)
    assert len(ma.requests) == 1


def test_attempts_per_request_are_capped_across_members(gw, ma, mb):
    """providers.md 9.2, rule (idempotency): chat requests are not idempotent for billing;
    the attempts of one client request are capped (maxAttempts, default 3) and the last
    one is kept for the next member rather than spent on a retry."""
    ma.script(*[Fault(status=429, headers={"Retry-After": "0"})] * 3)
    mb.script(*[Fault(status=429, headers={"Retry-After": "0"})] * 3)
    r = ask(gw, "cap", "capped")
    assert_openai_error(r, 429)
    assert (len(ma.requests), len(mb.requests)) == (2, 1)
    assert r.headers["x-llmgw-attempts"] == "3"
    # maxAttempts 1: the first failure is the last attempt, whatever maxRetries says.
    ma.reset()
    mb.reset()
    ma.script(Fault(status=500))
    assert_openai_error(ask(gw, "cap1", "once only"), 503, code="upstream_unavailable")
    assert len(ma.requests) == 1 and mb.requests == []


def test_pool_without_fallback_keeps_to_its_first_choice(gw, ma, mb):
    ma.script(*[Fault(status=500)] * 2)
    r = ask(gw, "nofb", "alone")
    assert_openai_error(r, 503, code="upstream_unavailable")
    assert len(ma.requests) == 1 and mb.requests == []


# -- streaming fallback ----------------------------------------------------------------------

def _clean_stream(r, backend, text, model):
    assert r.status_code == 200, r.text[:300]
    assert who(r) == backend, dict(r.headers)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    sse = read_sse(r)
    assert sse.errors == [], sse.errors
    assert sse.done, sse.data
    assert sse.text == "echo: " + text, sse.data
    assert {c["model"] for c in sse.chunks} == {model}, sse.data
    roles = [c for c in sse.chunks
             if c.get("choices") and c["choices"][0]["delta"].get("role")]
    assert len(roles) == 1, sse.data  # nothing of the failed attempt leaked
    assert sse.finish_reasons == ["stop"], sse.data
    return sse


@pytest.mark.parametrize("fault", [
    Fault(status=500),
    Fault(drop="before_headers"),
    Fault(drop="after_headers"),
    Fault(drop_after=1),  # the role chunk, then the connection is cut
    Fault(end_after=1),  # the role chunk, then a clean but premature end
    Fault(first_event_delay=3),  # headers, then silence past idleTimeout
    Fault(garbage_after=1),  # the role chunk, then unparseable events
], ids=["500", "drop-before-headers", "drop-after-headers", "cut-after-role",
        "end-after-role", "stall-before-content", "garbage-before-content"])
@pytest.mark.h2
def test_stream_falls_back_before_the_first_content(gw, ma, mb, fault):
    """Invisibly: not a byte of the response (status line included) reaches the client
    before b was asked, and the stream is b's alone (_clean_stream)."""
    # Queued twice: a re-send libcurl made by itself (a reused connection reset before any
    # byte) would take the second and show here as a second request.
    ma.script(fault, fault)
    r = ask_stream(gw, "stream", "streamed elsewhere")
    t_headers = time.monotonic()
    sse = _clean_stream(r, "stream-b", "streamed elsewhere", B_MODEL)
    assert len(ma.requests) == 1 and len(mb.requests) == 1
    assert t_headers >= mb.requests[0].t and sse.events[0][0] >= mb.requests[0].t


@pytest.mark.parametrize("fault", [Fault(drop_after=3), Fault(stall_after=3),
                                   Fault(end_after=3), Fault(garbage_after=3)],
                         ids=["cut", "stall", "clean-end", "garbage"])
@pytest.mark.h2
def test_stream_cut_after_content_ends_with_an_error_event(gw, ma, mb, fault):
    before = poolkit.backend_stats(gw)["cut"]["errors"]
    ma.script(fault)
    t0 = time.monotonic()
    r = ask_stream(gw, "cut", "one two three four five")
    assert r.status_code == 200
    assert who(r) == "cut-a"
    sse = read_sse(r)
    assert time.monotonic() - t0 < 4.0
    assert sse.text and "echo: one two three four five".startswith(sse.text), sse.data
    assert sse.text != "echo: one two three four five"
    assert len(sse.errors) == 1, sse.data
    assert sse.data[-1] != "[DONE]" and not sse.done, sse.data
    assert "error" in json.loads(sse.data[-1]), sse.data
    assert mb.requests == []  # content had reached the client: no fallback
    assert len(ma.requests) == 1
    # The pool's own slot counts the failure it was, not the 200 already sent.
    assert harness.wait_until(lambda: poolkit.backend_stats(gw)["cut"]["errors"] != before, 3.0)
    after = poolkit.backend_stats(gw)["cut"]["errors"]
    grew = {k for k in after if after[k] != before.get(k)}
    assert grew == ({"timeout"} if fault.stall_after else {"protocol"}), (before, after)


# -- circuit breaker ---------------------------------------------------------------------------

def test_cooldown_entered_skipped_probed_once_and_left(gw, ma, mb):
    ma.script(Fault(status=500), Fault(status=500))
    for i in range(2):
        ok_from(ask(gw, "cool", f"fail {i}"), "cool-b", f"fail {i}", B_MODEL)
    st = poolkit.backend_stats(gw)["cool-a"]
    assert st["state"] == "cooldown", st
    assert st["consecutive_failures"] == 2, st
    assert 0 < st["cooldown_remaining_ms"] <= 1500, st
    prom = poolkit.status_text(gw, "prometheus").text
    assert 'llmgw_cooldown{backend="cool-a"} 1\n' in prom
    html = poolkit.status_text(gw, "html").text
    assert re.search(r'<td class="name">cool-a</td>.*?class="state cooldown"', html), html
    # Skipped while cooling: the mock sees nothing.
    for i in range(3):
        ok_from(ask(gw, "cool", f"skipped {i}"), "cool-b", f"skipped {i}", B_MODEL)
    assert len(ma.requests) == 2
    time.sleep(st["cooldown_remaining_ms"] / 1000 + 0.1)
    # One probe: its answer is slow, and requests arriving meanwhile go to b.
    ma.reset()
    mb.reset()
    ma.script(Fault(delay=0.8))
    with ThreadPoolExecutor(max_workers=4) as ex:
        probe = ex.submit(ask, gw, "cool", "probe")
        assert harness.wait_until(lambda: len(ma.requests) == 1, 3.0)
        assert poolkit.backend_stats(gw)["cool-a"]["state"] == "probing"
        others = [ex.submit(ask, gw, "cool", f"during {i}") for i in range(3)]
        got = [who(f.result()) for f in others]
        ok_from(probe.result(), "cool-a", "probe", MODEL)
    assert got == ["cool-b"] * 3
    assert len(ma.requests) == 1 and len(mb.requests) == 3
    st = poolkit.backend_stats(gw)["cool-a"]
    assert st["state"] == "up" and st["consecutive_failures"] == 0, st
    assert st["cooldown_remaining_ms"] == 0, st
    ok_from(ask(gw, "cool", "healthy"), "cool-a", "healthy", MODEL)


def test_failed_probe_cools_down_again(gw, ma, mb):
    ma.script(Fault(status=500))
    ok_from(ask(gw, "reprobe", "first"), "reprobe-b", "first", B_MODEL)
    st = poolkit.backend_stats(gw)["reprobe-a"]
    assert st["state"] == "cooldown", st
    time.sleep(st["cooldown_remaining_ms"] / 1000 + 0.1)
    ma.script(Fault(status=500))
    ok_from(ask(gw, "reprobe", "probe fails"), "reprobe-b", "probe fails", B_MODEL)
    assert len(ma.requests) == 2
    st = poolkit.backend_stats(gw)["reprobe-a"]
    assert st["state"] == "cooldown" and 700 <= st["cooldown_remaining_ms"] <= 1000, st
    ok_from(ask(gw, "reprobe", "still skipped"), "reprobe-b", "still skipped", B_MODEL)
    assert len(ma.requests) == 2


@pytest.mark.parametrize("outcome", ["client_4xx", "client_gone"])
def test_every_probe_outcome_releases_the_probe(gw, ma, mb, outcome):
    """DESIGN.md 6: a probe that ends in a client 4xx or with the client gone is over; the
    member does not stay "probing" (until the probe goes stale, 15 minutes)."""
    tag = "probe4xx" if outcome == "client_4xx" else "probegone"
    ma.script(Fault(status=500))
    ok_from(ask(gw, tag, "first"), f"{tag}-b", "first", B_MODEL)
    st = poolkit.backend_stats(gw)[f"{tag}-a"]
    assert st["state"] == "cooldown", st
    time.sleep(st["cooldown_remaining_ms"] / 1000 + 0.1)
    if outcome == "client_4xx":
        ma.script(Fault(status=400, body=openai_error("That model cannot do this.")))
        assert_openai_error(ask(gw, tag, "probe"), 400)
    else:
        ma.script(Fault(delay=5))
        with pytest.raises(requests.exceptions.ReadTimeout):
            post(url(gw, tag), chat_body("probe", model=MODEL), timeout=0.5)
        rec = ma.wait_outcome(1, timeout=5)
        assert rec.outcome == "client_closed", rec.outcome
    assert len(ma.requests) == 2
    assert harness.wait_until(
        lambda: poolkit.backend_stats(gw)[f"{tag}-a"]["state"] != "probing", 3.0), \
        poolkit.backend_stats(gw)[f"{tag}-a"]
    # The next request is the member's next probe, at once.
    ok_from(ask(gw, tag, "next"), f"{tag}-a", "next", MODEL)
    assert poolkit.backend_stats(gw)[f"{tag}-a"]["state"] == "up"


# -- every member failed ------------------------------------------------------------------------

def test_all_members_500_gives_503(gw, ma, mb):
    ma.script(Fault(status=500))
    mb.script(Fault(status=500))
    r = ask(gw, "all5", "nobody")
    err = assert_openai_error(r, 503, code="upstream_unavailable", type_="server_error")
    assert "all5" in err["message"] and "500" in err["message"], err
    assert "Retry-After" not in r.headers
    assert len(ma.requests) == 1 and len(mb.requests) == 1


def test_all_members_failing_a_stream_gives_a_json_error(gw, ma, mb):
    ma.script(Fault(status=500))
    mb.script(Fault(status=503))
    r = ask_stream(gw, "all5", "no stream")
    assert_openai_error(r, 503, code="upstream_unavailable")
    assert len(ma.requests) == 1 and len(mb.requests) == 1


def test_all_members_rate_limited_gives_429_with_the_smallest_hint(gw, ma, mb):
    ma.script(Fault(status=429, headers={"Retry-After": "7"}))
    mb.script(Fault(status=429, headers={"Retry-After": "3"}))
    t0 = time.monotonic()
    r = ask(gw, "all429", "limited")
    assert time.monotonic() - t0 < 1.0  # maxRetries 0: no waiting for the hints
    assert_openai_error(r, 429)
    assert r.headers.get("Retry-After") == "3", dict(r.headers)


def test_all_members_out_of_quota_gives_429_without_retry_after(gw, ma, mb):
    quota = openai_error("You exceeded your current quota, please check your plan and "
                         "billing details.", "insufficient_quota", code="insufficient_quota")
    ma.script(Fault(status=429, body=quota))
    mb.script(Fault(status=429, body=quota))
    r = ask(gw, "all429", "broke")
    assert_openai_error(r, 429, code="insufficient_quota")
    assert "Retry-After" not in r.headers
    assert len(ma.requests) == 1 and len(mb.requests) == 1


def test_a_429_does_not_decide_when_another_member_failed_otherwise(gw, ma, mb):
    ma.script(Fault(status=429))
    mb.script(Fault(status=502))
    r = ask(gw, "mixed", "mixed")
    assert_openai_error(r, 503, code="upstream_unavailable")


def test_all_members_timing_out_gives_504(gw, ma, mb):
    ma.script(Fault(delay=3))
    mb.script(Fault(delay=3))
    t0 = time.monotonic()
    r = ask(gw, "allto", "late")
    assert time.monotonic() - t0 < 2.0
    assert_openai_error(r, 504, code="upstream_timeout")


def test_all_members_unreachable_gives_502(gw):
    r = ask(gw, "allconn", "nobody home")
    assert_openai_error(r, 502, code="bad_gateway")


def test_a_lone_backend_failure_does_not_speak_of_a_pool(gw):
    err = assert_openai_error(ask(gw, "lone", "alone"), 502, code="bad_gateway")
    assert "allconn-a" in err["message"], err
    assert "pool" not in err["message"].lower() and "member" not in err["message"], err


def test_all_members_cooling_gives_503_without_calling_upstream(gw, ma, mb):
    ma.script(Fault(status=500))
    mb.script(Fault(status=500))
    assert_openai_error(ask(gw, "allcool", "breaks both"), 503, code="upstream_unavailable")
    r = ask(gw, "allcool", "both cooling")
    err = assert_openai_error(r, 503, code="upstream_unavailable")
    assert "cool" in err["message"], err
    assert r.headers.get("Retry-After") in ("1", "2"), dict(r.headers)
    assert len(ma.requests) == 1 and len(mb.requests) == 1


# -- model and usage of the member that answered ---------------------------------------------------

def _tokens(st, name):
    return st[name]["tokens"]["prompt"], st[name]["tokens"]["completion"]


def test_cross_provider_fallback_reports_the_answering_model_and_usage(gw, ma, mc):
    before = poolkit.backend_stats(gw)
    ma.script(Fault(status=500))
    r = ask(gw, "xp", "over to claude")
    assert r.status_code == 200, r.text
    assert who(r) == "xp-b"
    body = r.json()
    assert body["model"] == CLAUDE
    assert body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert mc.requests[0].body["model"] == CLAUDE
    entry = gw.access_entry(r.test_id)
    assert entry["model"] == CLAUDE and entry["backend"] == "xp-b", entry
    assert int(entry["prompt_tokens"]) == usage["prompt_tokens"], entry
    # The same as a stream with usage: the final usage chunk is Claude's.
    ma.script(Fault(status=503))
    r = ask_stream(gw, "xp", "stream to claude", stream_options={"include_usage": True})
    assert r.status_code == 200 and who(r) == "xp-b"
    sse = read_sse(r)
    assert sse.errors == [] and sse.done, sse.data
    assert {c["model"] for c in sse.chunks} == {CLAUDE}
    stream_usage = sse.chunks[-1]["usage"]
    assert stream_usage and stream_usage["completion_tokens"] > 0, sse.chunks[-1]
    after = poolkit.backend_stats(gw)
    # Tokens are those of the two answers; the failed attempts on a counted none.
    pb, cb = _tokens(before, "xp-b")
    pa, ca = _tokens(after, "xp-b")
    assert pa - pb == usage["prompt_tokens"] + stream_usage["prompt_tokens"]
    assert ca - cb == usage["completion_tokens"] + stream_usage["completion_tokens"]
    assert _tokens(after, "xp-a") == _tokens(before, "xp-a")
    assert after["xp-a"]["errors"]["5xx"] - before["xp-a"]["errors"]["5xx"] == 2
    assert after["xp-a"]["fallbacks"] - before["xp-a"]["fallbacks"] == 2
    assert after["xp-b"]["successes"] - before["xp-b"]["successes"] == 2


def test_a_stream_without_its_final_event_is_complete_at_once(gw, ma, mb):
    """Finish and usage arrived, only [DONE] is missing: finalised as complete, no
    fallback, no waiting for a timeout."""
    ma.script(Fault(no_done=True))
    t0 = time.monotonic()
    r = ask_stream(gw, "cut", "almost done", stream_options={"include_usage": True})
    sse = _clean_stream(r, "cut-a", "almost done", MODEL)
    assert time.monotonic() - t0 < 0.8
    assert sse.chunks[-1]["usage"]["completion_tokens"] > 0
    assert mb.requests == []


def test_a_stream_cut_after_content_counts_no_usage(gw, ma):
    before = poolkit.backend_stats(gw)["cut-a"]
    ma.script(Fault(drop_after=3))
    r = ask_stream(gw, "cut", "partial answer here", stream_options={"include_usage": True})
    sse = read_sse(r)
    assert len(sse.errors) == 1
    after = poolkit.backend_stats(gw)["cut-a"]
    assert after["tokens"] == before["tokens"]
    assert after["successes"] == before["successes"]
    assert after["errors_total"] == before["errors_total"] + 1


# -- load with a flaky member --------------------------------------------------------------------

def _flaky_faults(n, seed):
    """A script for the flaky member: about 20 % of answers are a 500 or a reset."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x = rnd.random()
        out.append(Fault(status=500) if x < 0.10 else
                   Fault(drop="before_headers") if x < 0.20 else Fault())
    return out


def _check_answer(i, r, stream):
    """A 200 with this request's own answer, or a well-formed OpenAI error."""
    text = f"load {i}"
    if r.status_code != 200:
        assert_openai_error(r, r.status_code)
        return r.status_code, None
    assert who(r) in ("load-a", "load-b"), dict(r.headers)
    if stream:
        sse = read_sse(r)
        assert sse.errors == [] and sse.done and sse.text == "echo: " + text, sse.data
        usage = sse.chunks[-1]["usage"]
    else:
        body = r.json()
        assert content(r) == "echo: " + text, body
        usage = body["usage"]
    return 200, (usage["prompt_tokens"], usage["completion_tokens"])


def _load_round(gw, n, workers, first):
    def one(i, session):
        stream = i % 5 == 0
        extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        r = post(url(gw, "load"), chat_body(f"load {i}", model=MODEL, **extra),
                 session=session, stream=stream)
        return _check_answer(i, r, stream)

    return poolkit.parallel(one, range(first, first + n), workers=workers)


def _wrk(gw, seconds, connections):
    script = gw.root / "wrk-post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = {json.dumps(json.dumps(chat_body("wrk load", model=MODEL)))}\n'
        'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                          "-s", str(script), url(gw, "load")],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     out)
    return out, total, int(non2xx.group(1)) if non2xx else 0, \
        sum(int(x) for x in sock.groups()) if sock else 0


def test_load_through_a_flaky_member_loses_nothing(gw, ma, mb):
    """Round-robin over a member failing ~20 % (500 or reset) and a healthy one: every
    answer is the request's own 200 (or a well-formed error), the tokens on the status
    page are exactly those of the answers, and memory stays flat."""
    ma.script(*_flaky_faults(200, 1))
    _load_round(gw, 150, 8, 0)  # warm-up: children, threads and connections exist
    rss_before = poolkit.httpd_rss_kb(gw)
    before = poolkit.backend_stats(gw)
    ma.reset()
    ma.script(*_flaky_faults(1000, 2))
    n = 600
    results = _load_round(gw, n, 8, 1000)
    assert len(results) == n
    statuses = [s for s, _ in results]
    assert statuses.count(200) == n, {s: statuses.count(s) for s in set(statuses)}
    after = poolkit.backend_stats(gw)
    prompt = sum(u[0] for _, u in results if u)
    completion = sum(u[1] for _, u in results if u)
    got_p = sum(_tokens(after, m)[0] - _tokens(before, m)[0] for m in ("load-a", "load-b"))
    got_c = sum(_tokens(after, m)[1] - _tokens(before, m)[1] for m in ("load-a", "load-b"))
    assert (got_p, got_c) == (prompt, completion)
    succ = sum(after[m]["successes"] - before[m]["successes"] for m in ("load-a", "load-b"))
    assert succ == n
    assert after["load-a"]["errors_total"] > before["load-a"]["errors_total"]
    # A bounded wrk run on top: no socket error, no non-2xx answer.
    ma.reset()
    ma.script(*_flaky_faults(20000, 3))
    out, total, non2xx, sock_errors = _wrk(gw, 3, 8)
    assert total > 100, out
    assert non2xx == 0 and sock_errors == 0, out
    rss_after = poolkit.httpd_rss_kb(gw)
    # Growth of the processes that lived through the whole run (prefork may have
    # started or reaped children meanwhile; their memory is not a leak).
    common = set(rss_before) & set(rss_after)
    growth = sum(rss_after[p] - rss_before[p] for p in common)
    print(f"\nhttpd RSS ({gw.mpm}): {sum(rss_before.values())} KiB in {len(rss_before)} "
          f"processes before, {sum(rss_after.values())} KiB in {len(rss_after)} after; "
          f"growth of the {len(common)} that lived throughout: {growth} KiB "
          f"({n} + {total} requests)")
    assert gw.pid in common
    limit = 256 * 1024 if harness.asan_runtime() else 32 * 1024
    assert growth < limit, (rss_before, rss_after)
