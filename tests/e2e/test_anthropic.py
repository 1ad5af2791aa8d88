"""The `anthropic` backend end to end: OpenAI clients in front, mock_anthropic.py behind.

Three layers:
  * raw HTTP through the gateway, to check the exact wire shapes both ways (what the mock
    received, what the client got: chunks, usage, errors, retries);
  * the official OpenAI Node SDK through the gateway (plain, streaming, tool calls
    reassembled, a multi-turn tool round trip, images): an OpenAI application, unchanged,
    talking to Claude;
  * the official Anthropic Node SDK straight at the mock, to show that the mock speaks
    the real Messages API (so the first two layers prove something).

The SDKs are installed once with `npm install` into tests/e2e/sdk-anthropic/node_modules;
their tests are skipped (with the npm output as reason) only when that is impossible.
"""

import base64
import json

import pytest
import requests

import harness
from clientkit import TIME, WEATHER, module_mock, node_runner, ok
from conftest import start_gateway
from harness import assert_openai_error, post, read_sse
from mock_anthropic import ANTHROPIC_KEY, AnthropicFault, MockAnthropic

SDK_DIR = harness.HERE / "sdk-anthropic"
MODEL = "claude-mock"
# A 1x1 PNG (providers.md 10's IMG).
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")
PNG_BYTES = len(base64.b64decode(PNG))

pytestmark = pytest.mark.allow_log()


# Named `mock` so that conftest resets its script and records before every test.
mock = module_mock("mock", MockAnthropic)


def claude_backend(name, mock, key=ANTHROPIC_KEY, **config):
    cfg = {"apiKey": key, "endpoint": mock.url, "defaultModel": MODEL, "models": [MODEL],
           "maxRetries": 1, "maxTokens": 300}
    cfg.update(config)
    return {"name": name, "type": "anthropic", "config": cfg}


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    yaml = harness.gateway_yaml(
        backends=[claude_backend("claude", mock),
                  claude_backend("claude-drop", mock, unsupportedParams="drop", maxRetries=0),
                  claude_backend("claude-badkey", mock, key="sk-ant-wrong-key-77", maxRetries=0)],
        routes=[harness.route("chat", "/v1/chat/completions", "claude"),
                harness.route("drop", "/v1/drop/chat/completions", "claude-drop"),
                harness.route("badkey", "/v1/badkey/chat/completions", "claude-badkey")])
    h = start_gateway(request, "anthropic", yaml)
    probe = post(h.url("/v1/chat/completions"), chat("probe"))
    assert probe.status_code != 501, (
        "the module does not route `type: anthropic` to its translator yet "
        f"(src/llmgw_provider.c): {probe.text}")
    return h


def chat(text="Hello Claude", **extra):
    body = {"model": MODEL, "messages": [{"role": "system", "content": "You are terse."},
                                         {"role": "user", "content": text}]}
    body.update(extra)
    return body


# -- raw HTTP through the gateway ---------------------------------------------------------

def test_chat_request_and_answer_translated(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat("What is up?", temperature=1.5, stop="###",
                                                 user="u-42"))
    assert r.status_code == 200, r.text
    body = r.json()
    [rec] = mock.requests
    assert rec.path == "/v1/messages" and rec.method == "POST"
    assert rec.headers["x-api-key"] == ANTHROPIC_KEY
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in rec.headers  # the client's bearer token stays here
    assert rec.body == {"model": MODEL, "max_tokens": 300, "system": "You are terse.",
                        "messages": [{"role": "user", "content": "What is up?"}],
                        "temperature": 1.0, "stop_sequences": ["###"],
                        "metadata": {"user_id": "u-42"}}
    assert body["id"].startswith("chatcmpl-msg_mock")
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: What is up?",
                                 "refusal": None}
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0
    assert r.headers["x-llmgw-backend"] == "claude"
    entry = gw.access_entry(r.test_id)
    assert entry["prompt_tokens"] == str(u["prompt_tokens"])
    assert entry["completion_tokens"] == str(u["completion_tokens"])


def test_stream_chunks_with_usage(gw, mock):
    r = post(gw.url("/v1/chat/completions"),
             chat("one two three", stream=True, stream_options={"include_usage": True}),
             stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    sse = read_sse(r)
    assert mock.requests[0].body["stream"] is True
    assert sse.done and not sse.errors
    first, *middle, finish, usage = sse.chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert sse.text == "echo: one two three"
    assert [c["choices"][0]["delta"]["content"] for c in middle] == \
        ["echo: ", "one ", "two ", "three"]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                    "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == \
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    assert all(c["usage"] is None for c in sse.chunks[:-1])
    assert len({(c["id"], c["model"], c["created"]) for c in sse.chunks}) == 1
    assert sse.chunks[0]["id"].startswith("chatcmpl-msg_mock")


def test_stream_without_include_usage_has_no_usage(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat("hi", stream=True), stream=True)
    sse = read_sse(r)
    assert sse.done and sse.text == "echo: hi"
    assert all("usage" not in c for c in sse.chunks)
    assert sse.finish_reasons == ["stop"]


def test_stream_tool_calls_indexed_from_zero(gw, mock):
    r = post(gw.url("/v1/chat/completions"),
             chat("weather and time?", stream=True, tools=[WEATHER, TIME]), stream=True)
    sse = read_sse(r)
    assert sse.done and sse.finish_reasons == ["tool_calls"]
    # The mock answers a text block (native index 0), then two tool_use blocks (1, 2).
    assert sse.text == "Let me check."
    calls = sse.tool_calls()
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("toolu_mock")
    assert json.loads(calls[0]["arguments"]) == {"city": "city-value", "unit": "celsius"}
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[1]["arguments"]) == {"zone": "zone-value"}
    sent = mock.requests[0].body
    assert sent["tools"][0] == {"name": "get_weather", "description": "Current weather for a city.",
                                "input_schema": WEATHER["function"]["parameters"]}
    assert "tool_choice" not in sent


def test_tool_round_trip_history_accepted(gw, mock):
    """Assistant tool_calls and tool messages become tool_use/tool_result the API accepts."""
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}"}},
                {"id": "call|2", "type": "function",
                 "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
            {"role": "tool", "tool_call_id": "call|2", "content": "noon"},
            {"role": "user", "content": "so?"}]
    r = post(gw.url("/v1/chat/completions"),
             {"model": MODEL, "messages": msgs, "tools": [WEATHER, TIME], "tool_choice": "none"})
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    assert content.startswith("echo: [result call_1: 21C] [result t_") and content.endswith(
        ": noon] so?")
    sent = mock.requests[0].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["tool_choice"] == {"type": "none"}


def test_unsupported_parameter_refused(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat(n=2))
    err = assert_openai_error(r, 400, code="unsupported_value", type_="invalid_request_error")
    assert err["param"] == "n"
    assert mock.requests == []


def test_unsupported_parameter_dropped_and_named(gw, mock):
    r = post(gw.url("/v1/drop/chat/completions"), chat(seed=7, presence_penalty=0.5))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-dropped-params"] == "presence_penalty,seed"
    assert "seed" not in mock.requests[0].body


def test_upstream_400_passed_through_not_retried(gw, mock):
    mock.script(AnthropicFault(status=400, body={
        "type": "error", "error": {"type": "invalid_request_error",
                                   "message": "prompt is too long: 210000 tokens > 200000 maximum"}}))
    r = post(gw.url("/v1/chat/completions"), chat())
    err = assert_openai_error(r, 400, type_="invalid_request_error")
    assert err["message"] == "prompt is too long: 210000 tokens > 200000 maximum"
    assert len(mock.requests) == 1


def test_429_with_retry_after_is_retried(gw, mock):
    mock.script(AnthropicFault(status=429, headers={"retry-after": "0"}))
    r = post(gw.url("/v1/chat/completions"), chat("again"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: again"
    assert len(mock.requests) == 2
    assert r.headers["x-llmgw-attempts"] == "2"


def test_529_overloaded_retried_then_unavailable(gw, mock):
    mock.script(AnthropicFault(status=529), AnthropicFault(status=529))
    r = post(gw.url("/v1/chat/completions"), chat())
    assert_openai_error(r, 503, type_="server_error")
    assert len(mock.requests) == 2


def test_bad_gateway_key_is_502_without_provider_text(gw, mock):
    r = post(gw.url("/v1/badkey/chat/completions"), chat())
    err = assert_openai_error(r, 502, code="upstream_auth_failed")
    assert "sk-ant" not in r.text and "x-api-key" not in err["message"]


def test_error_event_before_content_is_retried_invisibly(gw, mock):
    mock.script(AnthropicFault(error_event_after=2))  # message_start, ping, then error
    r = post(gw.url("/v1/chat/completions"), chat("retry me", stream=True), stream=True)
    sse = read_sse(r)
    assert sse.done and not sse.errors and sse.text == "echo: retry me"
    assert len(mock.requests) == 2


def test_error_event_mid_stream_ends_with_error(gw, mock):
    mock.script(AnthropicFault(error_event_after=5))  # after two text deltas
    r = post(gw.url("/v1/chat/completions"), chat("a b c d e", stream=True), stream=True)
    sse = read_sse(r)
    assert not sse.done
    assert sse.text == "echo: a "
    [err] = sse.errors
    assert err["error"]["code"] == "upstream_overloaded" and err["error"]["message"] == "Overloaded"
    assert len(mock.requests) == 1


def test_stream_cut_after_stop_reason_is_complete(gw, mock):
    mock.script(AnthropicFault(no_done=True))  # message_delta, then the body ends
    r = post(gw.url("/v1/chat/completions"),
             chat("fine", stream=True, stream_options={"include_usage": True}), stream=True)
    sse = read_sse(r)
    assert sse.done and not sse.errors and sse.text == "echo: fine"
    assert sse.chunks[-1]["usage"]["completion_tokens"] >= 1


def test_stream_cut_before_stop_reason_is_an_error(gw, mock):
    mock.script(AnthropicFault(end_after=5))
    r = post(gw.url("/v1/chat/completions"), chat("a b c d e", stream=True), stream=True)
    sse = read_sse(r)
    assert not sse.done and sse.text == "echo: a "
    [err] = sse.errors
    assert err["error"]["code"] == "upstream_stream_truncated"


def test_embeddings_route_to_anthropic_refused_at_configtest(module_so, mock):
    h = harness.Httpd("anthropic-embeddings")
    h.write_yaml(harness.gateway_yaml(
        backends=[claude_backend("claude", mock)],
        routes=[harness.route("emb", "/v1/embeddings", "claude")]))
    r = h.configtest()
    assert r.returncode != 0
    assert "cannot serve embeddings" in r.stdout + r.stderr


# -- the OpenAI SDK through the gateway ------------------------------------------------------

@pytest.fixture(scope="session")
def node():
    return node_runner(SDK_DIR, ["openai", "@anthropic-ai/sdk"])


@pytest.fixture
def openai_sdk(node, gw):
    def run(**spec):
        return node("openai_client.mjs", baseURL=gw.url("/v1"), model=MODEL, **spec)
    return run


def test_sdk_chat(openai_sdk, mock):
    res = ok(openai_sdk(case="chat", prompt="hello sdk"))
    assert res["content"] == "echo: hello sdk" and res["finish_reason"] == "stop"
    assert res["object"] == "chat.completion" and res["model"] == MODEL
    u = res["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_sdk_stream_with_usage(openai_sdk, mock):
    res = ok(openai_sdk(case="stream", prompt="stream this please", include_usage=True))
    assert res["text"] == "echo: stream this please" and res["finish_reason"] == "stop"
    assert res["first_delta"] == {"role": "assistant", "content": ""}
    assert res["usage_fields"] == res["chunks"] and res["usage"]["total_tokens"] > 0
    assert len(res["ids"]) == 1 and res["models"] == [MODEL]


def test_sdk_tool_calls_parallel_and_serial(openai_sdk, mock):
    res = ok(openai_sdk(case="tools", prompt="weather and time"))
    assert res["finish_reason"] == "tool_calls" and res["content"] == "Let me check."
    assert [c["name"] for c in res["tool_calls"]] == ["get_weather", "get_time"]
    assert json.loads(res["tool_calls"][0]["arguments"]) == {"city": "city-value",
                                                             "unit": "celsius"}
    assert all(c["type"] == "function" and c["id"].startswith("toolu_") for c in
               res["tool_calls"])
    res = ok(openai_sdk(case="tools", prompt="just one", parallel=False, tool_choice="required"))
    assert [c["name"] for c in res["tool_calls"]] == ["get_weather"]
    assert mock.requests[-1].body["tool_choice"] == {"type": "any",
                                                    "disable_parallel_tool_use": True}


def test_sdk_stream_helper_reassembles_tool_calls(openai_sdk, mock):
    res = ok(openai_sdk(case="stream_tools", prompt="weather and time, streamed"))
    assert res["finish_reason"] == "tool_calls" and res["model"] == MODEL
    assert [(c["name"], json.loads(c["arguments"])) for c in res["tool_calls"]] == [
        ("get_weather", {"city": "city-value", "unit": "celsius"}),
        ("get_time", {"zone": "zone-value"})]
    assert [(a["index"], a["name"]) for a in res["arguments_done"]] == \
        [(0, "get_weather"), (1, "get_time")]


@pytest.mark.parametrize("stream_second", [False, True])
def test_sdk_multi_turn_with_tool_results(openai_sdk, mock, stream_second):
    res = ok(openai_sdk(case="multi_turn", prompt="weather in Lisbon?",
                        stream_second=stream_second))
    ids = [c["id"] for c in res["first"]["tool_calls"]]
    assert len(ids) == 2
    second = res["second"]
    assert second["finish_reason"] == "stop"
    # The mock echoes the tool results it received, in order, then the user's follow-up.
    assert second["content"].startswith(f"echo: [result {ids[0]}: ")
    assert f"[result {ids[1]}: " in second["content"]
    assert second["content"].endswith("Thanks, and in Fahrenheit?")
    sent = mock.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["type"] for b in sent[2]["content"]] == ["tool_result", "tool_result", "text"]


def test_sdk_images(openai_sdk, mock):
    res = ok(openai_sdk(case="image", png=PNG))
    assert res["content"] == (f"echo: Which city is on this postcard? [image image/png "
                              f"{PNG_BYTES} bytes] [image url https://images.example.org/"
                              "postcard.jpg]")
    blocks = mock.requests[-1].body["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": PNG}}


def test_sdk_sees_mid_stream_error(openai_sdk, mock):
    mock.script(AnthropicFault(error_event_after=5, error_type="overloaded_error",
                               error_message="Overloaded"))
    out = openai_sdk(case="stream", prompt="a b c d e")
    assert not out["ok"]
    assert "Overloaded" in out["error"]["message"]
    assert out["partial"]["text"] == "echo: a "


# -- the Anthropic SDK straight at the mock ---------------------------------------------------

@pytest.fixture
def claude_sdk(node, mock):
    def run(**spec):
        return node("anthropic_client.mjs", baseURL=mock.url, apiKey=ANTHROPIC_KEY,
                    model=MODEL, **spec)
    return run


@pytest.mark.parametrize("version", [None, "2023-06-01"])
def test_mock_with_anthropic_sdk_create(claude_sdk, mock, version):
    res = ok(claude_sdk(case="create", prompt="hello mock", version=version))
    assert res["type"] == "message" and res["role"] == "assistant"
    assert res["text"] == "echo: hello mock" and res["stop_reason"] == "end_turn"
    assert res["usage"]["input_tokens"] > 0 and res["usage"]["output_tokens"] > 0
    [rec] = mock.requests
    assert rec.headers["anthropic-version"] == (version or "2026-10-21")


def test_mock_with_anthropic_sdk_stop_sequence(claude_sdk, mock):
    res = ok(claude_sdk(case="create", prompt="alpha STOP beta", stop_sequences=["STOP"]))
    assert res["text"] == "echo: alpha " and res["stop_reason"] == "stop_sequence"
    assert res["stop_sequence"] == "STOP"


def test_mock_with_anthropic_sdk_stream(claude_sdk, mock):
    res = ok(claude_sdk(case="stream", prompt="streamed words here"))
    assert res["deltas"] == ["echo: ", "streamed ", "words ", "here"]
    final = res["final"]
    assert final["text"] == "echo: streamed words here" and final["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == 4


def test_mock_with_anthropic_sdk_tools(claude_sdk, mock):
    res = ok(claude_sdk(case="tools", prompt="Weather in Lisbon?"))
    first, second = res["first"], res["second"]
    assert first["stop_reason"] == "tool_use" and first["block_types"] == ["text", "tool_use"]
    [use] = first["tool_uses"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "city-value",
                                                              "unit": "celsius"}
    assert second["stop_reason"] == "end_turn"
    assert second["text"] == f"echo: [result {use['id']}: {{\"temp\":21}}]"


def test_mock_with_anthropic_sdk_stream_tools(claude_sdk, mock):
    res = ok(claude_sdk(case="stream_tools", prompt="Weather?"))
    [use] = res["final"]["tool_uses"]
    assert use["input"] == {"city": "city-value", "unit": "celsius"}
    assert len(res["json_deltas"]) > 2  # the input arrived in fragments


def test_mock_with_anthropic_sdk_image(claude_sdk, mock):
    res = ok(claude_sdk(case="image", png=PNG))
    assert res["text"] == (f"echo: What is this? [image image/png {PNG_BYTES} bytes] "
                           "[image url https://images.example.org/cat.png]")


def test_mock_refuses_what_the_api_refuses_through_the_sdk(claude_sdk, mock):
    out = claude_sdk(case="invalid", body={"model": MODEL, "max_tokens": 10, "messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert not out["ok"] and out["error"]["status"] == 400
    assert out["error"]["type"] == "invalid_request_error"
    mock.script(AnthropicFault(status=529))
    out = claude_sdk(case="create")
    assert out["error"]["status"] == 529 and out["error"]["type"] == "overloaded_error"


# -- the mock's validation, directly -------------------------------------------------------------

def _raw(mock, body, headers=None):
    h = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01",
         "content-type": "application/json"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return requests.post(mock.url + "/v1/messages", data=json.dumps(body), headers=h, timeout=10)


U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}
TOOLS = [{"name": "f", "input_schema": {"type": "object"}}]
USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f",
                                         "input": {}}]}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.mark.parametrize("body,headers,status,needle", [
    ({"model": MODEL, "max_tokens": 5, "messages": [U]}, {"x-api-key": None}, 401,
     "x-api-key header is required"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U]}, {"anthropic-version": None}, 400,
     "anthropic-version"),
    ({"model": MODEL, "messages": [U]}, None, 400, "max_tokens: Field required"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "s"}, U]}, None,
     400, 'Unexpected role "system"'),
    ({"model": MODEL, "max_tokens": 5, "messages": [A, U]}, None, 400, "first message"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U, U]}, None, 400, "must alternate"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U, USE, U], "tools": TOOLS}, None, 400,
     "without `tool_result` blocks immediately after"),
    ({"model": MODEL, "max_tokens": 5, "tools": TOOLS, "messages": [
        U, USE, {"role": "user", "content": [{"type": "text", "text": "x"}, RESULT]}]}, None, 400,
     "at the beginning of this message"),
    ({"model": MODEL, "max_tokens": 5, "tools": TOOLS, "messages": [
        U, A, {"role": "user", "content": [RESULT]}]}, None, 400, "unexpected `tool_use_id`"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U, USE, {"role": "user", "content": [RESULT]}]},
     None, 400, "must define tools"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U, {"role": "assistant", "content": "x "}]},
     None, 400, "trailing whitespace"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U], "n": 2}, None, 400,
     "n: Extra inputs are not permitted"),
    ({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": ""}]}]}, None, 400, "non-empty"),
    ({"model": MODEL, "max_tokens": 5, "messages": [U], "temperature": 0.5},
     {"anthropic-version": "2026-10-21"}, 400, "temperature"),
])
def test_mock_validates_like_the_api(mock, body, headers, status, needle):
    r = _raw(mock, body, headers)
    assert r.status_code == status, r.text
    j = r.json()
    assert j["type"] == "error" and needle in j["error"]["message"], j


def test_mock_accepts_a_valid_tool_round_trip(mock):
    r = _raw(mock, {"model": MODEL, "max_tokens": 50, "tools": TOOLS, "messages": [
        U, USE, {"role": "user", "content": [RESULT, {"type": "text", "text": "and?"}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "echo: [result toolu_1: ok] and?"
