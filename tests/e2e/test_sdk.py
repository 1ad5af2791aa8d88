"""The official OpenAI Node SDK (tests/e2e/js) against the gateway, and against the mock
directly to show that the mock speaks the real wire format.

The SDK is installed once with `npm install` into tests/e2e/js/node_modules; the tests are
skipped (with the npm output as reason) only when it cannot be installed.
"""

import json
from functools import partial

import pytest

import harness
from clientkit import node_runner, ok
from conftest import start_gateway
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

JS_DIR = harness.HERE / "js"

pytestmark = pytest.mark.allow_log()

WEATHER_ARGS = {"city": "city-value", "unit": "celsius"}


@pytest.fixture(scope="session")
def sdk():
    return partial(node_runner(JS_DIR, ["openai"], "the openai SDK"), "sdk_client.mjs")


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    ob = harness.openai_backend
    yaml = harness.gateway_yaml(
        backends=[ob("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                     models=["gpt-mock", "gpt-mock-mini", "embed-mock"], maxRetries=0),
                  ob("fragile", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", maxRetries=0,
                     idleTimeout="1s", firstByteTimeout="2s")],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("embeddings", "/v1/embeddings", "primary"),
                harness.route("models", "/v1/models", "primary"),
                harness.route("fragile", "/v1/fragile/chat/completions", "fragile")])
    return start_gateway(request, "sdk", yaml)


@pytest.fixture(params=["mock", "gateway"])
def target(request, mock):
    """baseURL and key for the SDK: the mock itself, or the gateway in front of it."""
    if request.param == "mock":
        return {"baseURL": mock.url, "apiKey": DEFAULT_KEY}
    gw = request.getfixturevalue("gw")
    return {"baseURL": gw.url("/v1"), "apiKey": "client-key-not-a-secret"}


def test_chat(sdk, target, mock):
    res = ok(sdk(case="chat", model="gpt-mock", prompt="hello sdk", **target))
    assert res["object"] == "chat.completion"
    assert res["content"] == "echo: hello sdk"
    assert res["finish_reason"] == "stop"
    assert res["usage"]["total_tokens"] == res["usage"]["prompt_tokens"] + \
        res["usage"]["completion_tokens"]


def test_stream(sdk, target, mock):
    res = ok(sdk(case="stream", model="gpt-mock", prompt="stream for the sdk", **target))
    assert res["text"] == "echo: stream for the sdk"
    assert res["finish_reason"] == "stop"
    assert res["usage"] is None and res["usage_fields"] == 0
    assert len(res["ids"]) == 1


def test_stream_with_usage(sdk, target, mock):
    res = ok(sdk(case="stream", model="gpt-mock", prompt="count these", include_usage=True,
                 **target))
    assert res["text"] == "echo: count these"
    assert res["usage"]["prompt_tokens"] == 5  # "You are terse." + "count these"
    assert res["usage"]["completion_tokens"] == 3  # "echo: " "count " "these"
    assert res["usage_fields"] == res["chunks"]  # every chunk carries usage (null or final)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-tool", "parallel"])
def test_tool_calls(sdk, target, mock, parallel):
    res = ok(sdk(case="tools", model="gpt-mock", parallel=parallel, **target))
    assert res["finish_reason"] == "tool_calls"
    calls = res["tool_calls"]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == WEATHER_ARGS
    if parallel:
        assert [c["name"] for c in calls] == ["get_weather", "get_time"]
        assert json.loads(calls[1]["arguments"]) == {"zone": "zone-value"}
        assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize("parallel", [False, True], ids=["one-tool", "parallel"])
def test_streamed_tool_calls_with_stream_helper(sdk, target, mock, parallel):
    res = ok(sdk(case="stream_helper", model="gpt-mock", tools=True, parallel=parallel,
                 **target))
    assert res["finish_reason"] == "tool_calls"
    names = [c["name"] for c in res["tool_calls"]]
    assert names == (["get_weather", "get_time"] if parallel else ["get_weather"])
    assert json.loads(res["tool_calls"][0]["arguments"]) == WEATHER_ARGS
    assert [d["name"] for d in res["arguments_done"]] == names
    assert all(c["id"] and c["type"] == "function" for c in res["tool_calls"])


def test_stream_helper_text(sdk, target, mock):
    res = ok(sdk(case="stream_helper", model="gpt-mock", prompt="helper text", **target))
    assert res["content"] == res["content_done"] == "echo: helper text"
    assert res["finish_reason"] == "stop"


@pytest.mark.parametrize("encoding", [None, "float"], ids=["sdk-default-base64", "float"])
def test_embeddings(sdk, target, mock, encoding):
    spec = dict(case="embeddings", model="embed-mock", input=["alpha", "beta gamma"], **target)
    if encoding:
        spec["encoding_format"] = encoding
    res = ok(sdk(**spec))
    assert res["indexes"] == [0, 1]
    assert res["vectors"][0] == MockOpenAI.embedding_for("alpha")
    assert res["vectors"][1] == MockOpenAI.embedding_for("beta gamma")
    [rec] = mock.requests
    assert rec.body.get("encoding_format") == (encoding or "base64")


# -- gateway only ----------------------------------------------------------------------------

def gw_target(gw):
    return {"baseURL": gw.url("/v1"), "apiKey": "client-key-not-a-secret"}


def test_models_list_and_retrieve(sdk, gw, mock):
    res = ok(sdk(case="models", retrieve="gpt-mock-mini", **gw_target(gw)))
    assert sorted(m["id"] for m in res["models"]) == ["embed-mock", "gpt-mock", "gpt-mock-mini"]
    assert all(m["object"] == "model" for m in res["models"])
    assert res["retrieved"] == {"id": "gpt-mock-mini", "object": "model"}
    assert mock.requests == []


def test_default_model_through_sdk(sdk, gw, mock):
    """A client that sends no model still gets an answer (the SDK allows omitting it)."""
    res = ok(sdk(case="chat", model=None, prompt="no model", **gw_target(gw)))
    assert res["model"] == "gpt-mock"


def test_unknown_model_raises_not_found(sdk, gw):
    out = sdk(case="retrieve_model", retrieve="no-such-model", **gw_target(gw))
    assert not out["ok"]
    err = out["error"]
    assert err["class"] == "NotFoundError" and err["status"] == 404, err
    assert err["code"] == "model_not_found"


@pytest.mark.parametrize("status,cls,client_status", [
    (400, "BadRequestError", 400),
    (429, "RateLimitError", 429),
    (500, "InternalServerError", 503),
    (401, "InternalServerError", 502),
])
def test_upstream_errors_raise_the_right_sdk_error(sdk, gw, mock, status, cls, client_status):
    mock.script(*[Fault(status=status)] * 3)
    out = sdk(case="chat", model="gpt-mock", **gw_target(gw))
    assert not out["ok"], out
    err = out["error"]
    assert err["class"] == cls and err["status"] == client_status, err
    assert err["is_api_error"]


def test_bad_request_raises_bad_request_error(sdk, gw, mock):
    """The gateway's own validation error reaches SDK users as a BadRequestError."""
    out = sdk(case="embeddings", model="embed-mock", input=[], **gw_target(gw))
    assert not out["ok"], out
    assert out["error"]["class"] == "BadRequestError" and out["error"]["status"] == 400
    assert mock.requests == []


def test_mid_stream_failure_raises_in_the_sdk(sdk, gw, mock):
    mock.script(Fault(stall_after=3))
    out = sdk(case="stream", model="gpt-mock", deadlineMs=15000,
              baseURL=gw.url("/v1/fragile"), apiKey="client-key-not-a-secret")
    assert not out["ok"], out
    assert out["error"]["is_api_error"], out
