"""Upstream failures: retries with backoff and Retry-After, what is never retried, the
status after exhausted retries, the four timeouts, broken streams, client disconnects.

Timing checks use the mock's recorded arrival times and the client's arrival times of
response bytes (the same clock as the test). An answer only leaves the gateway after its
last attempt, so counting the mock's requests once the answer is in is final: no test
needs to sleep to give a wrong retry time to show up.

Each test asserts the one outcome DESIGN.md 6 / providers.md 9.2 prescribe; where the
module does not do that yet, the test says so with xfail(strict=True) and a reason.
Tests marked h2 also run over HTTP/2 (LLMGW_PROTO=h2).
"""

import json
import re
import socket
import time

import pytest
import requests

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post, read_sse
from mock_openai import DEFAULT_KEY, Fault, openai_error

# The module logs upstream failures; any line with an LLMGW id is expected here.
pytestmark = [pytest.mark.allow_log(), pytest.mark.mpm]

FAST = dict(connectTimeout="1s", firstByteTimeout="1s", idleTimeout="1s", timeout="6s")


@pytest.fixture(scope="module")
def blackhole():
    """A loopback port whose accept queue is full: connecting to it hangs (SYNs dropped)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    yield port
    for c in fillers:
        c.close()
    srv.close()


@pytest.fixture(scope="module")
def gw(request, module_so, mock, blackhole):
    dead = f"http://127.0.0.1:{harness.free_port()}/v1"
    hole = f"http://127.0.0.1:{blackhole}/v1"
    ob = harness.openai_backend
    yaml = harness.gateway_yaml(
        backends=[
            ob("retry", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=2, **FAST),
            ob("twice", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=1, **FAST),
            ob("once", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=0, **FAST),
            ob("dead", dead, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=1,
               connectTimeout="500ms", timeout="5s"),
            ob("blackhole", hole, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=0,
               connectTimeout="500ms", timeout="5s"),
            ob("overall", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=0,
               timeout="1500ms", firstByteTimeout="5s", idleTimeout="5s"),
            ob("patient", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=0,
               timeout="30s", firstByteTimeout="20s", idleTimeout="20s"),
        ],
        routes=[harness.route(n, f"/v1/{n}/chat/completions", n)
                for n in ("retry", "twice", "once", "dead", "blackhole", "overall",
                          "patient")])
    return start_gateway(request, "faults", yaml)


def url(gw, backend):
    return gw.url(f"/v1/{backend}/chat/completions")


def timed_post(gw, backend, body, stream=False):
    """POST body to the route of `backend`: the response and the seconds it took (to its
    headers when streaming)."""
    t0 = time.monotonic()
    r = post(url(gw, backend), body, stream=stream)
    return r, time.monotonic() - t0


def gaps(reqs):
    return [round(b.t - a.t, 3) for a, b in zip(reqs, reqs[1:])]


# -- retries ---------------------------------------------------------------------------------

@pytest.mark.h2
def test_retry_after_is_honoured(gw, mock):
    mock.script(Fault(status=429, headers={"Retry-After": "1"}), Fault())
    r = post(url(gw, "retry"), chat_body("after a pause"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: after a pause"
    assert r.headers["x-llmgw-attempts"] == "2"
    reqs = mock.requests
    assert len(reqs) == 2
    assert 0.95 <= reqs[1].t - reqs[0].t < 2.5, gaps(reqs)
    assert reqs[0].raw == reqs[1].raw  # every attempt sends the same body


@pytest.mark.h2
def test_backoff_after_500_is_about_half_a_second(gw, mock):
    mock.script(Fault(status=500), Fault())
    r = post(url(gw, "retry"), chat_body("backoff"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-attempts"] == "2"
    reqs = mock.requests
    assert len(reqs) == 2
    assert 0.35 <= reqs[1].t - reqs[0].t <= 1.0, gaps(reqs)


def test_backoff_grows_exponentially(gw, mock):
    mock.script(Fault(status=503), Fault(status=503), Fault())
    r = post(url(gw, "retry"), chat_body("grow"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-attempts"] == "3"
    reqs = mock.requests
    assert len(reqs) == 3
    g = gaps(reqs)
    assert 0.35 <= g[0] <= 1.0, g
    assert 0.7 <= g[1] <= 1.6, g
    assert len({r.raw for r in reqs}) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_retryable_status_is_retried(gw, mock, status):
    mock.script(Fault(status=status), Fault())
    r = post(url(gw, "twice"), chat_body(f"retry {status}"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-attempts"] == "2"
    assert len(mock.requests) == 2


@pytest.mark.parametrize("status,client_status", [
    (400, 400), (404, 404), (413, 413),
    # providers.md 9.2 (the detailed rule where DESIGN.md 6's summary says "same status"):
    # an upstream 422 is the gateway's fault (a field the provider does not take), so the
    # client gets 400 (and the log an error line).
    (422, 400)])
def test_client_errors_are_not_retried_and_keep_the_message(gw, mock, status, client_status):
    msg = f"Distinctive upstream complaint number {status}"
    mock.script(Fault(status=status, body=openai_error(msg, param="messages", code="bad_thing")))
    r = post(url(gw, "retry"), chat_body("not retried"))
    err = assert_openai_error(r, client_status)
    assert msg in err["message"]
    assert len(mock.requests) == 1  # the answer left after the last attempt
    assert r.headers["x-llmgw-attempts"] == "1"
    assert r.headers["x-llmgw-backend"] == "retry"


@pytest.mark.parametrize("status", [418, 420, 499])
def test_unknown_upstream_status_is_502_with_the_message(gw, mock, status):
    """A status outside providers.md 2.5/9.2 is no status to pass on: httpd would put
    "500 Internal Server Error" on the wire for one it has no reason phrase for, with a
    4xx type in the body. The client gets 502 server_error with the upstream's text."""
    msg = f"Odd upstream status {status} says hello"
    mock.script(Fault(status=status, body=openai_error(msg, code="odd")))
    r = post(url(gw, "retry"), chat_body("odd status"))
    err = assert_openai_error(r, 502, code="bad_gateway", type_="server_error")
    assert msg in err["message"]
    assert len(mock.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_and_not_retried(gw, mock, status):
    mock.script(Fault(status=status))
    r = post(url(gw, "retry"), chat_body("auth"))
    assert_openai_error(r, 502, code="upstream_auth_failed")
    assert len(mock.requests) == 1  # the answer left after the last attempt
    assert r.headers["x-llmgw-attempts"] == "1"


def test_exhausted_retries_on_500_give_503(gw, mock):
    mock.script(*[Fault(status=500)] * 3)
    r = post(url(gw, "retry"), chat_body("exhaust"))
    assert_openai_error(r, 503, code="upstream_unavailable")
    assert r.headers["x-llmgw-attempts"] == "3"
    assert r.headers["x-llmgw-backend"] == "retry"
    assert len(mock.requests) == 3


@pytest.mark.parametrize("status,client_status,code", [
    (502, 503, "upstream_unavailable"), (503, 503, "upstream_unavailable"),
    (504, 503, "upstream_unavailable"), (529, 503, "upstream_unavailable"),
    (429, 429, "rate_limit_exceeded")])
def test_exhausted_retries_status(gw, mock, status, client_status, code):
    mock.script(*[Fault(status=status)] * 2)
    r = post(url(gw, "twice"), chat_body("exhaust"))
    assert_openai_error(r, client_status, code=code)
    assert r.headers["x-llmgw-attempts"] == "2"
    assert len(mock.requests) == 2


def test_exhausted_429_tells_the_client_when_to_retry(gw, mock):
    mock.script(*[Fault(status=429, headers={"Retry-After": "1"})] * 2)
    r = post(url(gw, "twice"), chat_body("rate limited"))
    assert_openai_error(r, 429, code="rate_limit_exceeded")
    assert re.fullmatch(r"\d+", r.headers.get("Retry-After", "")), r.headers


def test_long_retry_after_is_not_waited_out(gw, mock):
    mock.script(*[Fault(status=429, headers={"Retry-After": "30"})] * 3)
    r, elapsed = timed_post(gw, "retry", chat_body("too long to wait"))
    assert_openai_error(r, 429, code="rate_limit_exceeded")
    assert elapsed < 7, elapsed  # the backend timeout is 6s; 30s must never be slept


def test_connect_refused_is_retried_then_502(gw, mock):
    r, elapsed = timed_post(gw, "dead", chat_body("nobody home"))
    assert_openai_error(r, 502, code="bad_gateway")
    assert r.headers["x-llmgw-attempts"] == "2"
    assert r.headers["x-llmgw-backend"] == "dead"
    assert 0.35 <= elapsed < 3, elapsed


def test_connect_timeout_is_honoured(gw, mock):
    """providers.md 9.2: a connect timeout is a connect error: 502 bad_gateway."""
    r, elapsed = timed_post(gw, "blackhole", chat_body("hanging connect"))
    assert_openai_error(r, 502, code="bad_gateway")
    assert 0.4 <= elapsed < 1.8, elapsed


# -- timeouts ------------------------------------------------------------------------------

def test_first_byte_timeout_gives_504(gw, mock):
    mock.script(Fault(delay=3))
    r, elapsed = timed_post(gw, "once", chat_body("slow to answer"))
    assert_openai_error(r, 504, code="upstream_timeout")
    assert 0.9 <= elapsed < 2.0, elapsed


def test_first_byte_timeout_is_not_retried_on_the_same_backend(gw, mock):
    """DESIGN.md 6 / providers.md 9.2: a member that timed out before its headers is not
    asked again in this request, whatever its maxRetries (2 here)."""
    mock.script(Fault(delay=3), Fault())
    r = post(url(gw, "retry"), chat_body("never answered"))
    assert_openai_error(r, 504, code="upstream_timeout")
    assert r.headers["x-llmgw-attempts"] == "1"
    assert len(mock.requests) == 1


def test_stream_first_byte_timeout_before_headers_gives_504(gw, mock):
    mock.script(Fault(delay=3))
    r = post(url(gw, "once"), chat_body("slow stream", stream=True), stream=True)
    assert_openai_error(r, 504, code="upstream_timeout")


def test_stream_first_event_timeout_gives_504(gw, mock):
    """Headers came but no event: nothing reached the client yet, so it is a plain 504."""
    mock.script(Fault(first_event_delay=3))
    r, elapsed = timed_post(gw, "once", chat_body("silent stream", stream=True), stream=True)
    assert_openai_error(r, 504, code="upstream_timeout")
    assert elapsed < 2.2, elapsed


def test_overall_timeout_non_streaming(gw, mock):
    mock.script(Fault(delay=4))
    r, elapsed = timed_post(gw, "overall", chat_body("whole request too slow"))
    assert_openai_error(r, 504, code="upstream_timeout")
    assert 1.3 <= elapsed < 2.8, elapsed


@pytest.mark.parametrize("backend,delay", [("overall", 4), ("once", 3)])
def test_timeout_on_a_reused_upstream_connection_is_still_a_timeout(gw, mock, backend, delay):
    """The same timeouts on a pooled keep-alive connection (warmed up by a first request
    from the same client connection, so the same worker handles both)."""
    with requests.Session() as s:
        assert post(url(gw, backend), chat_body("warm up"), session=s).status_code == 200
        mock.script(Fault(delay=delay))
        r = post(url(gw, backend), chat_body("then slow"), session=s)
    assert_openai_error(r, 504, code="upstream_timeout")
    assert mock.requests[0].conn == mock.requests[1].conn  # really reused


def assert_stream_failed(res):
    """The stream ended with one error event and without [DONE]."""
    assert not res.done, res.data
    assert len(res.errors) == 1, res.data
    assert res.data[-1] == json.dumps(res.errors[0], separators=(",", ":")) or \
        json.loads(res.data[-1]) == res.errors[0]
    err = res.errors[0]["error"]
    for k in ("message", "type", "param", "code"):
        assert k in err, err


def failed_stream(gw, mock, backend, text, fault):
    """Stream `text` through `backend` while the mock plays `fault`: the stream, which must
    have started (200) and then failed (assert_stream_failed)."""
    mock.script(fault)
    r = post(url(gw, backend), chat_body(text, stream=True), stream=True)
    assert r.status_code == 200
    res = read_sse(r)
    assert_stream_failed(res)
    return res


def test_overall_timeout_cuts_a_long_stream(gw, mock):
    res = failed_stream(gw, mock, "overall", "long stream",
                        Fault(chunks=[f"w{i} " for i in range(10)], chunk_delay=0.4))
    elapsed = res.events[-1][0] - res.t0
    assert res.text and "w9" not in res.text
    assert 1.0 <= elapsed < 2.8, elapsed


@pytest.mark.h2
def test_idle_timeout_ends_stalled_stream_with_error_event(gw, mock):
    res = failed_stream(gw, mock, "once", "stall",
                        Fault(chunks=["partial ", "answer ", "never ", "finished"], stall_after=3))
    assert res.text == "partial answer "
    silence = res.events[-1][0] - res.content_times[-1]
    assert 0.8 <= silence < 2.5, silence
    rec = mock.wait_outcome(0, timeout=3)
    assert rec.outcome == "client_closed" and rec.closed_at is not None  # upstream aborted


@pytest.mark.h2
def test_stream_cut_mid_content_ends_with_error_event(gw, mock):
    res = failed_stream(gw, mock, "once", "cut",
                        Fault(chunks=["cut ", "in ", "the ", "middle"], drop_after=3))
    assert res.text == "cut in "


def test_stream_ending_cleanly_before_finish_reason_is_an_error(gw, mock):
    res = failed_stream(gw, mock, "once", "early end",
                        Fault(chunks=["looks ", "fine ", "but ", "is not"], end_after=3))
    assert res.finish_reasons == []


def test_malformed_event_is_skipped_and_the_stream_goes_on(gw, mock):
    """DESIGN.md 6: one unparseable event inside a healthy stream is skipped, logged once
    with the backend's name; the answer is complete."""
    mark = gw.log_mark()
    mock.script(Fault(chunks=["good ", "then ", "more"], malformed_after=3))
    r = post(url(gw, "once"), chat_body("malformed", stream=True), stream=True)
    res = read_sse(r)
    assert res.done and res.errors == [], res.data
    assert res.text == "good then more"
    assert res.finish_reasons == ["stop"]
    lines = [x for x in gw.error_log_text(mark).splitlines() if "LLMGW00240" in x]
    assert len(lines) == 1 and '"once"' in lines[0], lines


def test_garbage_stream_ends_with_error_event(gw, mock):
    """Only a stream that keeps sending garbage (more than two unparseable events in one
    attempt) is a failure."""
    res = failed_stream(gw, mock, "once", "garbage",
                        Fault(chunks=["good ", "then ", "junk ", "junk ", "junk"],
                              garbage_after=3))
    assert res.text == "good then "
    assert "malformed" in res.errors[0]["error"]["message"]


@pytest.mark.parametrize("include_usage", [False, True])
def test_finished_stream_without_done_is_completed_at_once(gw, mock, include_usage):
    mock.script(Fault(no_done=True))
    body = chat_body("no done marker", stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    t0 = time.monotonic()
    r = post(url(gw, "patient"), body, stream=True)  # idleTimeout 20s
    res = read_sse(r)
    elapsed = time.monotonic() - t0
    assert res.done and res.data[-1] == "[DONE]"
    assert res.errors == []
    assert res.text == "echo: no done marker"
    assert res.finish_reasons == ["stop"]
    assert any("usage" in c for c in res.chunks) == include_usage
    assert elapsed < 2.0, elapsed


@pytest.mark.h2
def test_stream_upstream_503_before_stream_is_retried_invisibly(gw, mock):
    mock.script(Fault(status=503), Fault())
    r = post(url(gw, "retry"), chat_body("second time lucky", stream=True), stream=True)
    assert r.status_code == 200
    assert r.headers["x-llmgw-attempts"] == "2"
    res = read_sse(r)
    assert res.done and res.errors == []
    assert res.text == "echo: second time lucky"


def role_chunks(res):
    return [c for c in res.chunks if c["choices"] and "role" in c["choices"][0]["delta"]]


@pytest.mark.h2
def test_stream_preamble_is_held_back_until_content(gw, mock):
    """DESIGN.md 6: the role chunk waits for the first content. The mock sends it at once
    and the first content 0.6 s later; the client gets nothing, not even the status line,
    before that content, and then both together."""
    mock.script(Fault(chunks=["late ", "content"], chunk_delay=0.6))
    r = post(url(gw, "patient"), chat_body("hold it", stream=True), stream=True)
    t_headers = time.monotonic()
    assert r.status_code == 200
    res = read_sse(r)
    sent = mock.requests[0].t
    assert t_headers - sent >= 0.5, t_headers - sent
    assert len(role_chunks(res)) == 1 and '"role"' in res.events[0][1], res.data
    first_content = res.content_times[0]
    # Released with the content, not 0.6 s before it.
    assert first_content - res.events[0][0] < 0.3, (res.events[0][0], first_content)
    assert res.done and res.text == "late content"


@pytest.mark.h2
def test_stream_cut_before_content_is_retried_invisibly(gw, mock):
    """Cut after the role chunk, before any content: nothing was shown, so the gateway
    retries (DESIGN.md 6) and the client sees only the second attempt: no byte before that
    attempt began, one role chunk, the whole text, [DONE]."""
    mock.script(Fault(drop_after=1), Fault())
    r = post(url(gw, "retry"), chat_body("role then cut", stream=True), stream=True)
    t_headers = time.monotonic()
    assert r.status_code == 200
    assert r.headers["x-llmgw-attempts"] == "2"
    res = read_sse(r)
    reqs = mock.requests
    assert len(reqs) == 2
    assert t_headers >= reqs[1].t, (t_headers, reqs[1].t)
    assert res.events[0][0] >= reqs[1].t
    assert res.done and res.errors == []
    assert res.text == "echo: role then cut"
    assert len(role_chunks(res)) == 1, res.data


def test_stream_upstream_400_is_a_plain_json_error(gw, mock):
    mock.script(Fault(status=400, body=openai_error("bad stream request", param="messages")))
    r = post(url(gw, "retry"), chat_body("bad", stream=True), stream=True)
    err = assert_openai_error(r, 400)
    assert "bad stream request" in err["message"]


def test_stream_exhausted_retries_is_a_plain_json_503(gw, mock):
    mock.script(*[Fault(status=500)] * 2)
    r = post(url(gw, "twice"), chat_body("down", stream=True), stream=True)
    assert_openai_error(r, 503, code="upstream_unavailable")


# -- client disconnects ----------------------------------------------------------------------
# "close": the client closes its connection; "reset": HTTP/1.1 sends a TCP RST, HTTP/2 resets
# the stream (RST_STREAM) and keeps the connection. Either way the upstream transfer is
# aborted at once, nothing is retried for the client that left, and the access log says so
# with 499 / client_gone, never 200.

def assert_logged_as_gone(gw, x):
    entry = gw.access_entry(x.test_id)
    assert (entry["status"], entry["error"]) == ("499", "client_gone"), entry


@pytest.mark.h2
@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_mid_stream_aborts_upstream(gw, mock, how):
    mock.script(Fault(chunks=[f"tok{i} " for i in range(60)], chunk_delay=0.25))  # ~15 s
    x = harness.Exchange(gw.port, "/v1/patient/chat/completions", chat_body("long", stream=True))
    try:
        x.read_until(lambda d: len(re.findall(rb'"content":"[^"]', d)) >= 2)
        x.abort(how)
        t_abort = time.monotonic()
        rec = mock.wait_outcome(0, timeout=5)
    finally:
        x.close()
    assert rec.outcome == "client_closed", rec
    assert rec.closed_at - t_abort < 2.0, rec.closed_at - t_abort
    assert rec.events_sent < 20
    assert_logged_as_gone(gw, x)


@pytest.mark.h2
@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_client_disconnect_while_waiting_aborts_upstream(gw, mock, how, stream):
    mock.script(Fault(delay=15))
    x = harness.Exchange(gw.port, "/v1/patient/chat/completions",
                         chat_body("waiting", stream=stream))
    try:
        mock.wait_requests(1)
        time.sleep(0.3)  # the gateway is now waiting for the upstream's headers
        x.abort(how)
        t_abort = time.monotonic()
        rec = mock.wait_outcome(0, timeout=5)
    finally:
        x.close()
    assert rec.outcome == "client_closed", rec
    assert rec.closed_at - t_abort < 2.5, rec.closed_at - t_abort
    assert_logged_as_gone(gw, x)
    assert len(mock.requests) == 1  # a client that left is not retried for


@pytest.mark.h2
@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_during_a_retry_wait_ends_it(gw, mock, how):
    """A 429 asks for a 3 s wait; the client leaves 0.3 s into it: the request ends then,
    without the second attempt."""
    mock.script(Fault(status=429, headers={"Retry-After": "3"}), Fault())
    x = harness.Exchange(gw.port, "/v1/retry/chat/completions", chat_body("impatient"))
    try:
        mock.wait_requests(1)
        time.sleep(0.3)
        x.abort(how)
        entry = gw.access_entry(x.test_id)  # written when the handler is done
    finally:
        x.close()
    assert (entry["status"], entry["error"]) == ("499", "client_gone"), entry
    assert int(entry["duration_us"]) < 2_500_000, entry  # not the 3 s wait
    assert len(mock.requests) == 1
