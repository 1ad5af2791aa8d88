"""The Anthropic Messages dialect end to end (ingress.md 6, 7): `POST /v1/messages` and
`/v1/messages/count_tokens` on a route in front of every backend type.

  * translated: the openai mock (mock_openai.py), the mock dialects (Azure, Llama host,
    Mistral) and the Gemini mock behind; the client speaks Messages, the upstream its own API;
  * native: an `anthropic` backend (mock_anthropic.py) gets the client's own request;
  * pools: fail-over from a failing member to the next, whatever its type;
  * the official `@anthropic-ai/sdk` (tests/e2e/sdk-anthropic) against the gateway.

Errors and refusals are Anthropic-shaped ({"type":"error","error":{type,message}}).
"""

import json

import pytest

import harness
from clientkit import module_mock
from conftest import start_gateway
from harness import post, read_sse
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

pytestmark = pytest.mark.allow_log()

CLAUDE = "claude-mock"
GPT = "gpt-mock"

claude = module_mock("claude", MockAnthropic)


def claude_backend(name, mock, **config):
    cfg = {"apiKey": ANTHROPIC_KEY, "endpoint": mock.url, "defaultModel": CLAUDE,
           "models": [CLAUDE], "maxRetries": 0, "maxTokens": 300}
    cfg.update(config)
    return {"name": name, "type": "anthropic", "config": cfg}


@pytest.fixture(scope="module")
def gw(request, module_so, mock, claude):
    yaml = harness.gateway_yaml(
        backends=[harness.openai_backend("gpt", mock.url, DEFAULT_KEY,
                                         defaultModel=GPT, maxRetries=0),
                  claude_backend("claude", claude),
                  {"name": "pool", "type": "pool", "strategy": "priority", "fallback": True,
                   "backends": [{"name": "claude"}, {"name": "gpt"}]},
                  claude_backend("claude-prefill", claude, prefill=True),
                  {"name": "gpt-then-claude", "type": "pool", "strategy": "priority",
                   "backends": [{"name": "gpt"}, {"name": "claude-prefill"}]}],
        routes=[harness.route("msg-gpt", "/v1/messages", "gpt"),
                harness.route("msg-claude", "/v1/claude/messages", "claude"),
                harness.route("msg-pool", "/v1/pool/messages", "pool"),
                dict(harness.route("msg-cont", "/v1/cont/messages", "gpt-then-claude"),
                     streamRecovery="continue"),
                harness.route("models", "/v1/models", "pool")])
    return start_gateway(request, "messages", yaml)


def msg(text="Hello", model=GPT, **extra):
    body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def test_translated_answer_is_a_message(gw, mock):
    r = post(gw.url("/v1/messages"), msg("Hi there", system="Be terse."),
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_gw")
    assert body["content"][0]["type"] == "text" and body["content"][0]["text"]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    [rec] = mock.requests
    sent = rec.body
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent["model"] == GPT
    assert r.headers["x-llmgw-backend"] == "gpt"


@pytest.mark.mpm
@pytest.mark.h2
def test_translated_stream_is_messages_events(gw, mock):
    r = post(gw.url("/v1/messages"), msg("Stream it", stream=True), headers=ANTHROPIC_HEADERS,
             stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(d) for _, d in read_sse(r).events]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[1] == "ping"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert "content_block_delta" in types
    assert events[0]["message"]["usage"]["input_tokens"] > 0
    assert events[-2]["usage"]["output_tokens"] > 0
    [rec] = mock.requests
    assert rec.body["stream"] is True and rec.body["stream_options"] == {"include_usage": True}


def test_native_anthropic_gets_the_client_request(gw, claude):
    body = msg("Native please", model=CLAUDE, metadata={"user_id": "u-1"})
    r = post(gw.url("/v1/claude/messages"), body, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message"
    [rec] = claude.requests
    assert rec.body["metadata"] == {"user_id": "u-1"}
    assert rec.headers.get("x-api-key") == ANTHROPIC_KEY
    assert rec.headers.get("anthropic-version") == "2023-06-01"


@pytest.mark.mpm
@pytest.mark.h2
def test_native_anthropic_stream_passes_events(gw, claude):
    r = post(gw.url("/v1/claude/messages"), msg("Native stream", model=CLAUDE, stream=True),
             headers=ANTHROPIC_HEADERS, stream=True)
    assert r.status_code == 200, r.text
    types = [json.loads(d)["type"] for _, d in read_sse(r).events]
    assert types[0] == "message_start" and types[-1] == "message_stop"


@pytest.mark.mpm
@pytest.mark.h2
def test_pool_falls_over_from_claude_to_gpt(gw, mock, claude):
    claude.script(Fault(status=529))
    r = post(gw.url("/v1/pool/messages"), msg("Fall over", model="pool"),
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "gpt"
    assert r.json()["type"] == "message"


def test_validation_error_is_anthropic_shaped(gw):
    r = post(gw.url("/v1/messages"), {"model": GPT, "messages": []}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


def test_count_tokens_native_and_refused(gw, claude):
    r = post(gw.url("/v1/claude/messages/count_tokens"),
             {"model": CLAUDE, "messages": [{"role": "user", "content": "count me"}]},
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 0


def test_anthropic_models_list(gw):
    r = harness.get(gw.url("/v1/models"), headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"][0]["type"] == "model"
    assert "has_more" in body
    plain = harness.get(gw.url("/v1/models")).json()
    assert plain["object"] == "list"


# -- every backend type ---------------------------------------------------------------

from dialectkit import MODELS, TYPES, mocks, sdk, _fresh_mocks  # noqa: E402,F401
from clientkit import ok  # noqa: E402
import dialectkit  # noqa: E402

# A 1x1 PNG.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")
TOOL = {"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}


@pytest.fixture(scope="module")
def every(request, module_so, mocks):
    return dialectkit.start(request, "messages-every", mocks)


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_text(every, mocks, btype):
    r = post(every.url(f"/v1/{btype}/messages"),
             msg("Hello there", model=MODELS[btype], system="Be terse."),
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "message" and out["stop_reason"] == "end_turn"
    assert [b["type"] for b in out["content"]] == ["text"]
    assert "Hello there" in out["content"][0]["text"]
    assert out["usage"]["output_tokens"] > 0
    assert r.headers["x-llmgw-backend"] == btype
    assert len(mocks[btype].requests) == 1


@pytest.mark.mpm
@pytest.mark.h2
@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_stream(every, mocks, btype):
    r = post(every.url(f"/v1/{btype}/messages"),
             msg("Stream to me", model=MODELS[btype], stream=True),
             headers=ANTHROPIC_HEADERS, stream=True)
    assert r.status_code == 200, r.text
    events = [json.loads(d) for _, d in read_sse(r).events]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop", types
    assert "ping" in types
    text = "".join(e["delta"].get("text", "") for e in events
                   if e["type"] == "content_block_delta")
    assert "Stream to me" in text
    delta = [e for e in events if e["type"] == "message_delta"][-1]
    assert delta["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_tool_round_trip(every, mocks, btype):
    url = every.url(f"/v1/{btype}/messages")
    turn = [{"role": "user", "content": "Weather in Paris?"}]
    r = post(url, {"model": MODELS[btype], "max_tokens": 200, "messages": turn,
                   "tools": [TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["stop_reason"] == "tool_use", out
    uses = [b for b in out["content"] if b["type"] == "tool_use"]
    assert uses and uses[0]["name"] == "get_weather"
    assert all(b["type"] != "text" or b["text"] for b in out["content"])
    turn += [{"role": "assistant", "content": out["content"]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u["id"],
                                           "content": "sunny"} for u in uses]}]
    r2 = post(url, {"model": MODELS[btype], "max_tokens": 200, "messages": turn,
                    "tools": [TOOL], "tool_choice": {"type": "none"}},
              headers=ANTHROPIC_HEADERS)
    assert r2.status_code == 200, r2.text
    assert r2.json()["content"][-1]["type"] == "text"


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_image(every, mocks, btype):
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                            "data": PNG}},
               {"type": "text", "text": "What is in the image?"}]
    r = post(every.url(f"/v1/{btype}/messages"),
             {"model": MODELS[btype], "max_tokens": 100,
              "messages": [{"role": "user", "content": content}]},
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    [rec] = mocks[btype].requests
    assert PNG in json.dumps(rec.body)


# -- the official Anthropic SDK ----------------------------------------------------------

@pytest.mark.parametrize("btype", TYPES)
def test_sdk_messages_create_stream_tools_image(every, mocks, sdk, btype):
    base = every.url(f"/v1/sdk/{btype}")
    model = MODELS[btype]
    res = ok(sdk(case="messages_create", baseURL=base, model=model, prompt="Hi Anthropic SDK"))
    assert "Hi Anthropic SDK" in res["text"] and res["stop_reason"] == "end_turn"
    res = ok(sdk(case="messages_stream", baseURL=base, model=model, prompt="Stream SDK"))
    assert "Stream SDK" in "".join(res["deltas"])
    assert res["final"]["usage"]["input_tokens"] > 0
    assert res["final"]["usage"]["output_tokens"] > 0
    res = ok(sdk(case="messages_tools", baseURL=base, model=model))
    assert res["first"]["stop_reason"] == "tool_use"
    assert res["first"]["tool_uses"][0]["name"] == "get_weather"
    assert res["second"]["block_types"] == ["text"]
    mocks[btype].reset()
    res = ok(sdk(case="messages_image", baseURL=base, model=model, png=PNG))
    assert res["block_types"] == ["text"]
    assert PNG in json.dumps(mocks[btype].requests[0].body)


# -- access, limits and the ledger speak Messages too ----------------------------------

from accesskit import new_key, sqlite_rows, wait_rows  # noqa: E402

KEY, ENTRY = new_key("team-msg")
SLOW, SLOW_ENTRY = new_key("team-slow", limits={"rpm": 1})


@pytest.fixture(scope="module")
def guarded(request, module_so, mock, claude):
    yaml = harness.to_yaml({
        "backends": [harness.openai_backend("gpt", mock.url, DEFAULT_KEY, defaultModel=GPT,
                                            maxRetries=0),
                     claude_backend("claude", claude)],
        "routes": [harness.route("msg", "/v1/messages", "gpt"),
                   harness.route("msg-claude", "/v1/claude/messages", "claude")],
        "access": {"keys": [ENTRY, SLOW_ENTRY]},
        "pricing": {GPT: {"input": "10", "output": "30"},
                    CLAUDE: {"input": "3", "output": "15"}},
        "ledger": {"driver": "sqlite3", "params": "ledger/ledger.db"},
    }) + "\n"
    h = start_gateway(request, "messages-access", yaml)
    h.ledger = str(h.root / "ledger" / "ledger.db")
    return h


def test_missing_key_is_anthropic_401(guarded):
    r = post(guarded.url("/v1/messages"), msg("no key"),
             headers=dict(ANTHROPIC_HEADERS, Authorization=""))
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path,model", [("/v1/messages", GPT), ("/v1/claude/messages", CLAUDE)])
def test_x_api_key_usage_goes_to_the_ledger(guarded, path, model):
    r = post(guarded.url(path), msg("count my spend", model=model),
             headers=dict(ANTHROPIC_HEADERS, Authorization="", **{"x-api-key": KEY}))
    assert r.status_code == 200, r.text
    assert float(r.headers["x-llmgw-cost"]) > 0
    route = "msg" if path == "/v1/messages" else "msg-claude"
    rows = wait_rows(lambda: sqlite_rows(guarded.ledger, f"route = '{route}'"), 1)
    assert rows[-1]["name"] == "team-msg" and rows[-1]["status"] == 200
    assert rows[-1]["prompt_tokens"] > 0 and rows[-1]["completion_tokens"] > 0
    assert rows[-1]["model"] == model


def test_rate_limit_is_anthropic_429(guarded):
    hdrs = dict(ANTHROPIC_HEADERS, Authorization="", **{"x-api-key": SLOW})
    assert post(guarded.url("/v1/messages"), msg("one"), headers=hdrs).status_code == 200
    r = post(guarded.url("/v1/messages"), msg("two"), headers=hdrs)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in r.headers


def test_stream_usage_goes_to_the_ledger(guarded):
    r = post(guarded.url("/v1/messages"), msg("stream spend", stream=True),
             headers=dict(ANTHROPIC_HEADERS, Authorization="", **{"x-api-key": KEY}),
             stream=True)
    assert r.status_code == 200
    read_sse(r)
    rows = wait_rows(lambda: sqlite_rows(guarded.ledger, "requested_model = 'gpt-mock' AND "
                                                         "completion_tokens > 0"), 1)
    assert rows


# -- failures after the commit point, and a client that leaves -----------------------------

@pytest.mark.mpm
@pytest.mark.h2
def test_mid_stream_failure_is_an_error_event_without_message_stop(gw, mock):
    mock.script(Fault(chunks=["partial ", "answer ", "never ", "finished"], drop_after=3))
    r = post(gw.url("/v1/messages"), msg("cut me", stream=True), headers=ANTHROPIC_HEADERS,
             stream=True)
    assert r.status_code == 200
    events = [json.loads(d) for _, d in read_sse(r).events]
    types = [e["type"] for e in events]
    assert "content_block_delta" in types
    assert types[-1] == "error" and "message_stop" not in types
    assert events[-1]["error"]["type"] in ("api_error", "overloaded_error")


@pytest.mark.h2
def test_continuation_on_a_native_member_is_translated(gw, mock, claude):
    """streamRecovery continue on a Messages route: gpt (translated) is cut after content,
    claude (which speaks Messages natively) continues. Its continuation must be a canonical
    prefill spliced into the one Messages stream the client already reads, never its own
    native events (a second message_start)."""
    mock.script(Fault(chunks=["echo: ", "one ", "two"], drop_after=3))
    seen = len(claude.requests)
    r = post(gw.url("/v1/cont/messages"), msg("one two three four five", stream=True),
             headers=ANTHROPIC_HEADERS, stream=True)
    assert r.status_code == 200
    events = [json.loads(d) for _, d in read_sse(r).events]
    types = [e["type"] for e in events]
    assert types.count("message_start") == 1 and types[-1] == "message_stop", types
    assert "error" not in types, events
    assert len(claude.requests) == seen + 1
    last = claude.requests[-1].body["messages"][-1]
    assert last["role"] == "assistant", last  # a prefill, not the client's own request
    text = "".join(e["delta"].get("text", "") for e in events
                   if e["type"] == "content_block_delta")
    assert text.startswith("echo: one"), text
    stops = [e for e in events if e["type"] == "message_delta"]
    assert len(stops) == 1 and stops[0]["delta"]["stop_reason"] == "end_turn", stops


@pytest.mark.mpm
@pytest.mark.h2
def test_client_leaving_aborts_the_upstream(gw, mock):
    mock.script(Fault(chunks=[f"w{i} " for i in range(20)], chunk_delay=0.3))
    r = post(gw.url("/v1/messages"), msg("leave early", stream=True), headers=ANTHROPIC_HEADERS,
             stream=True)
    assert r.status_code == 200
    read_sse(r, on_event=lambda d: json.loads(d)["type"] == "content_block_delta")
    r.close()
    rec = mock.wait_outcome(0, timeout=5)
    assert rec.outcome == "client_closed", rec


def test_every_member_failing_is_anthropic_shaped(gw, mock, claude):
    claude.script(Fault(status=529))
    mock.script(Fault(status=503))
    r = post(gw.url("/v1/pool/messages"), msg("nobody home", model="pool"),
             headers=ANTHROPIC_HEADERS)
    assert r.status_code in (503, 529), r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"


def test_count_tokens_where_the_backend_cannot_count(every):
    r = post(every.url("/v1/mistral/messages/count_tokens"),
             {"model": MODELS["mistral"], "messages": [{"role": "user", "content": "x"}]},
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "count_tokens is not supported" in r.json()["error"]["message"]


def test_count_tokens_through_openai_input_tokens(every, mocks):
    r = post(every.url("/v1/openai/messages/count_tokens?beta=true"),
             {"model": MODELS["openai"], "system": "Be terse.",
              "messages": [{"role": "user", "content": "count these words please"}]},
             headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 0
    [rec] = mocks["openai"].requests
    assert rec.path == "/v1/responses/input_tokens"
    assert rec.body["instructions"] == "Be terse."


def test_count_tokens_sdk(every, sdk):
    res = ok(sdk(case="messages_count", baseURL=every.url("/v1/sdk/anthropic"),
                 model=MODELS["anthropic"]))
    assert res["input_tokens"] > 0
