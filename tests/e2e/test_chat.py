"""Chat completions through an openai backend: non-streaming, streaming, usage, tools,
defaultModel, upstream headers, response headers.

Tests marked h2 also run over HTTP/2 (LLMGW_PROTO=h2): answers slower than the gateway's
100 ms client check, incremental delivery, [DONE] and usage."""

import json
import threading
import time

import pytest

import harness
from clientkit import TIME, WEATHER
from conftest import start_gateway
from harness import chat_body, post, read_sse
from mock_openai import DEFAULT_KEY, Fault

# Streams, timeouts, workers and restarts: also run under worker and prefork.
pytestmark = pytest.mark.mpm


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    yaml = harness.gateway_yaml(
        backends=[
            harness.openai_backend("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-default",
                                   models=["gpt-mock"], maxRetries=0, timeout="20s"),
            harness.openai_backend("with-org", mock.url, DEFAULT_KEY, orgId="org-e2e-123",
                                   defaultModel="gpt-org", maxRetries=0),
        ],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("org-chat", "/v1/org/chat/completions", "with-org")])
    return start_gateway(request, "chat", yaml)


def chat_url(gw):
    return gw.url("/v1/chat/completions")


# -- non-streaming ---------------------------------------------------------------------

@pytest.mark.h2
def test_non_streaming_answer_is_the_upstream_json(gw, mock):
    r = post(chat_url(gw), chat_body("What is up?", temperature=0.2))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-mock")
    assert body["model"] == "gpt-mock"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: What is up?",
                                             "refusal": None, "annotations": []}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + \
        body["usage"]["completion_tokens"]
    assert body["system_fingerprint"] == "fp_mock"


@pytest.mark.h2
def test_slow_non_streaming_answer_is_complete(gw, mock):
    """An answer that takes longer than the gateway's client checks (every 100 ms) reaches
    the client whole, and the access log records a plain success."""
    mock.script(Fault(delay=0.5))
    r = post(chat_url(gw), chat_body("take your time"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: take your time"
    entry = gw.access_entry(r.test_id)
    assert (entry["status"], entry["error"], entry["attempts"]) == ("200", "-", "1"), entry


def test_request_is_forwarded_unchanged_with_the_backend_key(gw, mock):
    sent = chat_body("forward me", temperature=0.5, top_p=0.9, seed=7, user="u-1",
                     max_tokens=64, stop=["###"], response_format={"type": "text"},
                     x_custom_field={"kept": True})
    sent["messages"].insert(0, {"role": "system", "content": [{"type": "text",
                                                                "text": "be brief"}]})
    r = post(chat_url(gw), sent, headers={"Authorization": "Bearer client-own-key",
                                          "OpenAI-Organization": "org-client",
                                          "X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.body == sent
    assert rec.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert rec.headers["content-type"].startswith("application/json")
    assert "openai-organization" not in rec.headers
    assert "x-test-id" not in rec.headers


def test_missing_model_uses_default_model(gw, mock):
    r = post(chat_url(gw), chat_body("no model", model=None))
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "gpt-default"
    [rec] = mock.requests
    assert rec.body["model"] == "gpt-default"


def test_explicit_model_is_kept(gw, mock):
    """A backend without a models: list takes any model name, as it is."""
    r = post(gw.url("/v1/org/chat/completions"), chat_body("other", model="gpt-something-else"))
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.body["model"] == "gpt-something-else"
    assert r.json()["model"] == "gpt-something-else"
    r = post(chat_url(gw), chat_body("listed", model="gpt-mock"))
    assert r.status_code == 200, r.text
    assert mock.requests[-1].body["model"] == "gpt-mock"


def test_model_outside_the_models_list_is_404_before_upstream(gw, mock):
    """DESIGN.md 5: a models: list restricts a backend; nothing is silently replaced."""
    r = post(chat_url(gw), chat_body("misspelt", model="gpt-9-ultra"), test_id="nomodel-1")
    err = harness.assert_openai_error(r, 404, code="model_not_found")
    assert err["param"] == "model" and "gpt-9-ultra" in err["message"]
    assert mock.requests == []
    entry = gw.access_entry("nomodel-1")
    assert entry["requested_model"] == "gpt-9-ultra"
    assert entry["error"] == "model_not_found"


def test_org_id_is_sent_as_openai_organization(gw, mock):
    r = post(gw.url("/v1/org/chat/completions"), chat_body("org", model=None))
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.headers["openai-organization"] == "org-e2e-123"
    assert rec.body["model"] == "gpt-org"
    assert r.headers["x-llmgw-backend"] == "with-org"


def test_unicode_round_trips(gw, mock):
    text = "héllo wörld 👋 世界 \u2028 \"quoted\" \\ back"
    r = post(chat_url(gw), chat_body(text))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: " + text
    [rec] = mock.requests
    assert rec.body["messages"][0]["content"] == text


def test_large_answer_is_complete(gw, mock):
    big = "".join(f"word{i} " for i in range(120000))  # ~1 MB
    mock.script(Fault(content=big))
    r = post(chat_url(gw), chat_body("big"))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == big


def test_non_streaming_tool_call(gw, mock):
    r = post(chat_url(gw), chat_body("weather in Lisbon?", tools=[WEATHER], tool_choice="auto"))
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "city-value", "unit": "celsius"}
    [rec] = mock.requests
    assert rec.body["tools"] == [WEATHER]


def test_tool_result_conversation_is_forwarded(gw, mock):
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}]
    body = {"model": "gpt-mock", "messages": msgs, "tools": [WEATHER]}
    mock.script(Fault(content="It is 21 degrees."))
    r = post(chat_url(gw), body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "It is 21 degrees."
    assert mock.requests[0].body["messages"] == msgs


# -- streaming -------------------------------------------------------------------------

def stream(gw, body, **kw):
    r = post(chat_url(gw), body, stream=True, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
    assert "Content-Length" not in r.headers
    res = read_sse(r)
    return r, res


@pytest.mark.h2
def test_stream_forwards_chunks_and_ends_with_done(gw, mock):
    r, res = stream(gw, chat_body("stream this please", stream=True))
    assert res.done and res.data[-1] == "[DONE]"
    assert res.errors == []
    assert res.text == "echo: stream this please"
    assert res.finish_reasons == ["stop"]
    ids = {c["id"] for c in res.chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-mock")
    assert all(c["object"] == "chat.completion.chunk" for c in res.chunks)
    assert all(c["model"] == "gpt-mock" for c in res.chunks)
    first = res.chunks[0]["choices"][0]["delta"]
    assert first.get("role") == "assistant"


def test_stream_without_include_usage_has_no_usage_anywhere(gw, mock):
    _, res = stream(gw, chat_body("no usage", stream=True))
    assert all("usage" not in c for c in res.chunks), res.data
    assert all(c["choices"] for c in res.chunks)
    [rec] = mock.requests
    assert rec.body["stream"] is True
    assert rec.body["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage_false_has_no_usage(gw, mock):
    _, res = stream(gw, chat_body("usage off", stream=True,
                                  stream_options={"include_usage": False}))
    assert all("usage" not in c for c in res.chunks), res.data
    assert res.done


@pytest.mark.h2
def test_stream_with_include_usage_ends_with_usage_chunk(gw, mock):
    _, res = stream(gw, chat_body("count my tokens", stream=True,
                                  stream_options={"include_usage": True}))
    assert res.done
    last = res.chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["prompt_tokens"] == 3
    assert usage["completion_tokens"] == 4  # "echo: " "count " "my " "tokens"
    assert usage["total_tokens"] == 7
    assert all(c.get("usage") is None for c in res.chunks[:-1])
    assert res.text == "echo: count my tokens"


@pytest.mark.h2
def test_stream_is_forwarded_event_by_event(gw, mock):
    """Each event leaves when the mock sends it (one FLUSH per event): the arrival times
    are spread like the mock's 0.3 s pacing, not bunched by a buffer anywhere (the client
    sees events one by one over HTTP/1.1 chunks and HTTP/2 DATA frames alike)."""
    mock.script(Fault(chunks=["one ", "two ", "three ", "four"], chunk_delay=0.3))
    _, res = stream(gw, chat_body("slow", stream=True))
    times = res.content_times
    assert len(times) == 4, res.data
    spread = [round(b - a, 3) for a, b in zip(times, times[1:])]
    # A buffered relay delivers two or more events together (a gap near 0).
    assert all(g >= 0.1 for g in spread), spread
    assert times[0] - res.t0 < 1.0
    assert res.text == "one two three four"


def test_stream_many_chunks_in_order(gw, mock):
    pieces = [f"t{i} " for i in range(400)]
    mock.script(Fault(chunks=pieces))
    _, res = stream(gw, chat_body("many", stream=True))
    assert res.text == "".join(pieces)
    assert res.done


def test_stream_tool_call_arguments_reassemble(gw, mock):
    _, res = stream(gw, chat_body("weather?", stream=True, tools=[WEATHER]))
    assert res.done
    calls = res.tool_calls()
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "city-value", "unit": "celsius"}
    assert res.finish_reasons == ["tool_calls"]


def test_stream_parallel_tool_calls(gw, mock):
    _, res = stream(gw, chat_body("weather and time?", stream=True, tools=[WEATHER, TIME]))
    calls = res.tool_calls()
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather"
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[1]["arguments"]) == {"zone": "zone-value"}
    assert res.finish_reasons == ["tool_calls"]


def test_stream_default_model(gw, mock):
    _, res = stream(gw, chat_body("dm", model=None, stream=True))
    assert {c["model"] for c in res.chunks} == {"gpt-default"}
    assert mock.requests[0].body["model"] == "gpt-default"


@pytest.mark.h2
def test_concurrent_streams_stay_separate(gw, mock):
    results = {}

    def one(i):
        r = post(chat_url(gw), chat_body(f"client {i} says hi", stream=True), stream=True)
        results[i] = (r.status_code, read_sse(r))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8
    for i, (status, res) in results.items():
        assert status == 200
        assert res.text == f"echo: client {i} says hi"
        assert res.done


# -- response headers --------------------------------------------------------------------

def _check_gateway_headers(r, backend, attempts="1"):
    assert r.headers["x-llmgw-backend"] == backend
    assert r.headers["x-llmgw-attempts"] == attempts
    overhead = float(r.headers["x-llmgw-overhead-ms"])
    assert 0 <= overhead < 2000


def test_gateway_headers_non_streaming(gw, mock):
    r = post(chat_url(gw), chat_body("headers"))
    _check_gateway_headers(r, "primary")


@pytest.mark.h2
def test_gateway_headers_streaming(gw, mock):
    r, _ = stream(gw, chat_body("headers", stream=True))
    _check_gateway_headers(r, "primary")
    assert r.headers.get("Cache-Control") == "no-cache"


@pytest.mark.h2
def test_overhead_excludes_upstream_time(gw, mock):
    mock.script(Fault(delay=0.8))
    t0 = time.monotonic()
    r = post(chat_url(gw), chat_body("slow upstream"))
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert elapsed >= 0.8
    assert float(r.headers["x-llmgw-overhead-ms"]) < 400, r.headers
