"""The OpenAI dialects end to end: `azure-openai`, `meta` and `mistral` backends in front of
the mocks of mock_dialects.py, driven by the official OpenAI Node SDK (sdk-dialects/).

First the mocks are proven faithful: the providers' own official SDKs (AzureOpenAI from
`openai`, `@mistralai/mistralai`, and `openai` for the Llama host) talk to them directly,
and the mocks refuse what the real services refuse. Then the OpenAI SDK talks to the
gateway in front of each mock (chat, streams with and without usage, tool calls and a tool
round trip, embeddings with the SDK's default base64), and plain HTTP requests check what
reached the upstream and how upstream errors come back.

The SDKs are installed with `npm install` into tests/e2e/sdk-dialects/node_modules; the SDK
tests are skipped (with npm's output as reason) only when they cannot be installed.
"""

import json
import re
from functools import partial

import pytest
import requests

import harness
from clientkit import module_mock, node_runner, ok
from conftest import start_gateway
from mock_dialects import (AZURE_KEY, LLAMA_KEY, MISTRAL_KEY, MockAzure, MockLlama,
                           MockMistral)
from mock_openai import Fault, MockOpenAI

SDK_DIR = harness.HERE / "sdk-dialects"

pytestmark = pytest.mark.allow_log()

WEATHER_ARGS = {"city": "city-value", "unit": "celsius"}
DIALECTS = ["azure", "llama", "mistral"]
# What each upstream reports as `model` for the gateway's chat backends.
CHAT_MODEL = {"azure": "gpt-4o-2024-11-20", "llama": "llama-3.3-70b",
              "mistral": "mistral-small-latest"}
EMBED = {"azure": ("text-embedding-3-small", 8), "llama": ("bge-m3", 8),
         "mistral": ("mistral-embed", 1024)}


# -- fixtures -------------------------------------------------------------------------------

azure = module_mock("azure", MockAzure)
llama = module_mock("llama", MockLlama)
mistral = module_mock("mistral", MockMistral)


@pytest.fixture(autouse=True)
def _fresh_mocks(azure, llama, mistral):
    for m in (azure, llama, mistral):
        m.reset()
    yield


@pytest.fixture(scope="session")
def sdk():
    return partial(node_runner(SDK_DIR, ["@mistralai/mistralai", "openai"]), "dialect_client.mjs")


def backend(name, type_, **config):
    return {"name": name, "type": type_, "config": dict(config, maxRetries=0)}


@pytest.fixture(scope="module")
def gw(request, module_so, azure, llama, mistral):
    az = dict(apiKey=AZURE_KEY, endpoint=azure.url, apiVersion="2024-10-21")
    mi = dict(apiKey=MISTRAL_KEY, endpoint=mistral.url)
    backends = [
        backend("az", "azure-openai", deploymentName="gpt4o-weather", **az),
        backend("az-old", "azure-openai", deploymentName="gpt4o-weather",
                **dict(az, apiVersion="2024-06-01")),
        backend("az-embed", "azure-openai", deploymentName="embed-small", **az),
        backend("az-missing", "azure-openai", deploymentName="no-such-deployment", **az),
        backend("llama", "meta", endpoint=llama.url, apiKey=LLAMA_KEY,
                defaultModel="llama-3.3-70b"),
        backend("llama-embed", "meta", endpoint=llama.url, apiKey=LLAMA_KEY,
                defaultModel="bge-m3"),
        backend("mistral", "mistral", defaultModel="mistral-small-latest", **mi),
        backend("mistral-embed", "mistral", defaultModel="mistral-embed", **mi),
        backend("mistral-drop", "mistral", defaultModel="mistral-small-latest",
                unsupportedParams="drop", **mi),
        backend("mistral-badkey", "mistral", defaultModel="mistral-small-latest",
                apiKey="mistral-WRONG-key-0000", endpoint=mistral.url),
    ]
    r = harness.route
    routes = [
        r("az-chat", "/v1/azure/chat/completions", "az"),
        r("az-old-chat", "/v1/azure-old/chat/completions", "az-old"),
        r("az-embed", "/v1/azure/embeddings", "az-embed"),
        r("az-missing", "/v1/azure-missing/chat/completions", "az-missing"),
        r("llama-chat", "/v1/llama/chat/completions", "llama"),
        r("llama-embed", "/v1/llama/embeddings", "llama-embed"),
        r("mistral-chat", "/v1/mistral/chat/completions", "mistral"),
        r("mistral-embed", "/v1/mistral/embeddings", "mistral-embed"),
        r("mistral-drop", "/v1/mistral-drop/chat/completions", "mistral-drop"),
        r("mistral-badkey", "/v1/mistral-badkey/chat/completions", "mistral-badkey"),
    ]
    return start_gateway(request, "dialects", harness.gateway_yaml(backends, routes))


def mock_of(dialect, azure, llama, mistral):
    return {"azure": azure, "llama": llama, "mistral": mistral}[dialect]


def via_gateway(gw, dialect, model=None):
    """SDK connection to the gateway route of `dialect`. A single backend uses the request's
    model (DESIGN.md 5), so it names one the upstream serves; Azure ignores it (the
    deployment decides)."""
    default = "my-alias" if dialect == "azure" else CHAT_MODEL[dialect]
    return {"sdk": "openai", "baseURL": gw.url(f"/v1/{dialect}"),
            "apiKey": "client-key-not-a-secret", "model": model or default}


# -- the mocks, proven with the providers' own SDKs ----------------------------------------

def test_azure_sdk_against_mock(sdk, azure):
    conn = {"sdk": "azure", "endpoint": azure.url, "apiKey": AZURE_KEY,
            "apiVersion": "2024-10-21", "deployment": "gpt4o-weather", "model": "gpt4o-weather"}
    res = ok(sdk(case="chat", prompt="hi azure", **conn))
    assert res["content"] == "echo: hi azure" and res["model"] == "gpt-4o-2024-11-20"
    res = ok(sdk(case="stream", include_usage=True, **conn))
    assert res["text"] == "echo: Say hello to the SDK" and res["usage"]["total_tokens"] > 0
    # Azure's own first chunk: id "" (the annotation chunk the gateway must drop).
    assert "" in res["ids"]
    res = ok(sdk(case="stream_tools", **conn))
    assert json.loads(res["tool_calls"][0]["arguments"]) == WEATHER_ARGS
    res = ok(sdk(case="embeddings", **dict(conn, deployment="embed-small")))
    assert res["vectors"][0] == MockOpenAI.embedding_for("first text", 8)
    rec = azure.requests[0]
    assert rec.path == "/openai/deployments/gpt4o-weather/chat/completions"
    assert rec.query == "api-version=2024-10-21" and rec.headers["api-key"] == AZURE_KEY
    # What the real service refuses, the mock refuses.
    url = azure.url + "/openai/deployments/gpt4o-weather/chat/completions"
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert requests.post(url, json=body, headers={"api-key": AZURE_KEY}).status_code == 404
    r = requests.post(url + "?api-version=2024-10-21", json=body,
                      headers={"Authorization": "Bearer " + AZURE_KEY})
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    r = requests.post(url + "?api-version=2024-06-01", headers={"api-key": AZURE_KEY},
                      json=dict(body, stream=True, stream_options={"include_usage": True}))
    assert r.status_code == 400


def test_mistral_sdk_against_mock(sdk, mistral):
    conn = {"sdk": "mistral", "serverURL": mistral.base, "apiKey": MISTRAL_KEY,
            "model": "mistral-small-latest"}
    res = ok(sdk(case="chat", prompt="bonjour", **conn))
    assert res["content"] == "echo: bonjour" and res["usage"]["totalTokens"] > 0
    res = ok(sdk(case="stream", **conn))
    assert res["text"] == "echo: Say hello to the SDK" and res["finish_reason"] == "stop"
    res = ok(sdk(case="tool_round_trip", then_user="and tomorrow?", **conn))
    assert re.fullmatch(r"[A-Za-z0-9]{9}", res["tool_calls"][0]["id"])
    assert res["second_content"] == "echo: and tomorrow?"
    res = ok(sdk(case="embeddings", **dict(conn, model="mistral-embed")))
    assert len(res["vectors"][0]) == 1024
    assert mistral.requests[0].body["random_seed"] == 7
    # Mistral's strictness: an unknown field is a 422, a foreign tool id a 400 (3280),
    # a user turn right after a tool turn a 400 (3230).
    url = mistral.url + "/chat/completions"
    auth = {"Authorization": "Bearer " + MISTRAL_KEY}
    user = [{"role": "user", "content": "x"}]
    r = requests.post(url, headers=auth, json={"model": "m", "messages": user, "user": "u-1"})
    assert r.status_code == 422
    assert r.json()["message"]["detail"][0]["type"] == "extra_forbidden"
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    hist = user + [{"role": "assistant", "content": None, "tool_calls": [call]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "1"}]
    r = requests.post(url, headers=auth, json={"model": "m", "messages": hist})
    assert r.status_code == 400 and r.json()["code"] == "3280"
    call["id"] = "abcDEF123"
    hist[2]["tool_call_id"] = "abcDEF123"
    r = requests.post(url, headers=auth, json={"model": "m", "messages": hist + user})
    assert r.status_code == 400 and r.json()["code"] == "3230"
    r = requests.post(url, headers={"Authorization": "Bearer nope"},
                      json={"model": "m", "messages": user})
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized"


def test_llama_sdk_against_mock(sdk, llama):
    conn = {"sdk": "openai", "baseURL": llama.url, "apiKey": LLAMA_KEY, "model": "llama-3.3-70b"}
    res = ok(sdk(case="chat", prompt="hi llama", **conn))
    assert res["content"] == "echo: hi llama"
    res = ok(sdk(case="stream_tools", **conn))
    assert res["tool_calls"][0]["id"].startswith("chatcmpl-tool-")
    res = ok(sdk(case="embeddings", **dict(conn, model="bge-m3")))
    assert res["vectors"][1] == MockOpenAI.embedding_for("second text", 8)
    r = requests.post(llama.url + "/chat/completions",
                      headers={"Authorization": "Bearer " + LLAMA_KEY},
                      json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "x"}],
                            "store": True})
    assert r.status_code == 400


# -- the OpenAI SDK through the gateway -----------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_chat(sdk, gw, dialect):
    res = ok(sdk(case="chat", prompt=f"hello {dialect}", **via_gateway(gw, dialect)))
    assert res["content"] == f"echo: hello {dialect}"
    assert res["object"] == "chat.completion" and res["finish_reason"] == "stop"
    assert res["model"] == CHAT_MODEL[dialect]
    u = res["usage"]
    assert u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_stream_with_usage(sdk, gw, dialect):
    res = ok(sdk(case="stream", include_usage=True, **via_gateway(gw, dialect)))
    assert res["text"] == "echo: Say hello to the SDK" and res["finish_reason"] == "stop"
    assert len(res["ids"]) == 1 and res["ids"][0], res["ids"]  # one stable, non-empty id
    assert res["models"] == [CHAT_MODEL[dialect]]
    assert res["roles"] == 1
    assert res["usage_fields"] == res["chunks"]  # "usage": null everywhere, then the usage
    u = res["usage"]
    assert u["completion_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_stream_without_usage(sdk, gw, dialect):
    res = ok(sdk(case="stream", **via_gateway(gw, dialect)))
    assert res["text"] == "echo: Say hello to the SDK"
    assert res["usage"] is None and res["usage_fields"] == 0
    assert len(res["ids"]) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_stream_tool_calls(sdk, gw, dialect):
    res = ok(sdk(case="stream_tools", **via_gateway(gw, dialect)))
    assert res["finish_reason"] == "tool_calls" and res["content"] is None
    assert [t["name"] for t in res["tool_calls"]] == ["get_weather"]
    assert res["tool_calls"][0]["type"] == "function" and res["tool_calls"][0]["id"]
    assert json.loads(res["tool_calls"][0]["arguments"]) == WEATHER_ARGS
    assert [a["name"] for a in res["arguments_done"]] == ["get_weather"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_tool_round_trip(sdk, gw, dialect, azure, llama, mistral):
    res = ok(sdk(case="tool_round_trip", then_user="and tomorrow?", **via_gateway(gw, dialect)))
    assert res["first_finish"] == "tool_calls"
    assert json.loads(res["tool_calls"][0]["arguments"]) == WEATHER_ARGS
    assert res["second_content"] == "echo: and tomorrow?" and res["second_finish"] == "stop"
    sent = mock_of(dialect, azure, llama, mistral).requests[-1].body["messages"]
    call_id = res["tool_calls"][0]["id"]
    if dialect == "mistral":
        # Mistral's own ids go back unchanged; the bridge sits between tool and user.
        assert [m["role"] for m in sent[-4:]] == ["assistant", "tool", "assistant", "user"]
        assert sent[-3]["tool_call_id"] == call_id and sent[-3]["name"] == "get_weather"
    else:
        assert any(m.get("tool_call_id") == call_id for m in sent)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_embeddings_base64(sdk, gw, dialect, azure, llama, mistral):
    model, dims = EMBED[dialect]
    res = ok(sdk(case="embeddings", input=["first text", "second text"],
                 **via_gateway(gw, dialect, model)))
    assert res["model"] == model and res["indexes"] == [0, 1]
    assert res["vectors"] == [MockOpenAI.embedding_for("first text", dims),
                              MockOpenAI.embedding_for("second text", dims)]
    assert res["usage"]["prompt_tokens"] == res["usage"]["total_tokens"] > 0
    # The SDK asked for base64; upstream got floats (the gateway encodes).
    upstream = mock_of(dialect, azure, llama, mistral).requests[-1].body
    assert upstream.get("encoding_format", "float") == "float"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sdk_embeddings_float(sdk, gw, dialect):
    model, dims = EMBED[dialect]
    res = ok(sdk(case="embeddings", input=["x y"], encoding_format="float",
                 **via_gateway(gw, dialect, model)))
    assert res["vectors"] == [MockOpenAI.embedding_for("x y", dims)]


# -- what reached the upstream, and what came back ------------------------------------------

def chat(gw, path, body, **kw):
    return harness.post(gw.url(path), body, **kw)


def test_azure_request_on_the_wire(gw, azure):
    r = chat(gw, "/v1/azure/chat/completions", {
        "model": "whatever", "messages": [{"role": "developer", "content": "Be brief."},
                                          {"role": "user", "content": "hi"}],
        "x_experimental": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "prompt_filter_results" not in body
    assert "content_filter_results" not in body["choices"][0]
    rec = azure.requests[-1]
    assert rec.path == "/openai/deployments/gpt4o-weather/chat/completions"
    assert rec.query == "api-version=2024-10-21"
    assert rec.headers["api-key"] == AZURE_KEY and "authorization" not in rec.headers
    assert "model" not in rec.body and rec.body["x_experimental"] == 1
    assert rec.body["messages"][0]["role"] == "system"


def test_azure_old_api_version_stream(gw, azure):
    r = chat(gw, "/v1/azure-old/chat/completions",
             harness.chat_body("hi", stream=True, stream_options={"include_usage": True}),
             stream=True)
    assert r.status_code == 200
    sse = harness.read_sse(r)
    assert sse.done and not sse.errors
    assert "stream_options" not in azure.requests[-1].body  # that version refuses it
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sse.chunks
                   if c["choices"]) == "echo: hi"


def test_azure_prompt_filtered(gw):
    r = chat(gw, "/v1/azure/chat/completions", harness.chat_body("FILTER_PROMPT please"))
    err = harness.assert_openai_error(r, 400, code="content_filter",
                                      type_="invalid_request_error")
    assert err["param"] == "prompt" and "content management policy" in err["message"]
    assert "innererror" not in r.text and "ResponsibleAIPolicyViolation" not in r.text


def test_azure_output_filtered(gw):
    r = chat(gw, "/v1/azure/chat/completions", harness.chat_body("FILTER_OUTPUT now"))
    assert r.status_code == 200
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"}
    r = chat(gw, "/v1/azure/chat/completions",
             harness.chat_body("FILTER_OUTPUT now", stream=True), stream=True)
    sse = harness.read_sse(r)
    assert sse.done and sse.finish_reasons == ["content_filter"]
    assert all("content_filter_results" not in ch for c in sse.chunks for ch in c["choices"])


def test_azure_deployment_not_found(gw):
    r = chat(gw, "/v1/azure-missing/chat/completions", harness.chat_body("hi"))
    err = harness.assert_openai_error(r, 404, code="DeploymentNotFound")
    assert "deployment" in err["message"]


def test_azure_credential_refused_without_leaking(gw, azure):
    azure.script(Fault(status=401, body={"error": {"code": "401", "message":
                                                   f"Access denied for key {AZURE_KEY}."}}))
    r = chat(gw, "/v1/azure/chat/completions", harness.chat_body("hi"))
    harness.assert_openai_error(r, 502, code="upstream_auth_failed")
    assert AZURE_KEY not in r.text


def test_mistral_request_on_the_wire(gw, mistral):
    r = chat(gw, "/v1/mistral/chat/completions", {
        "model": "ignored-alias", "user": "u-1", "seed": 3, "max_completion_tokens": 50,
        "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "developer", "content": "Be brief."},
                     {"role": "user", "content": "hi", "name": "alice"}],
        "tools": [{"type": "function", "function": {"name": "now"}}],
        "tool_choice": "required"}, stream=True)
    assert r.status_code == 200
    sse = harness.read_sse(r)
    assert sse.done and sse.finish_reasons == ["tool_calls"]
    assert [c["usage"]["total_tokens"] > 0 for c in sse.chunks if c.get("usage")] == [True]
    sent = mistral.requests[-1].body
    assert sent["model"] == "ignored-alias"  # the request's model is used as given
    assert sent["random_seed"] == 3 and sent["max_tokens"] == 50
    assert sent["tool_choice"] == "any"
    assert sent["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    for field in ("user", "seed", "stream_options", "max_completion_tokens"):
        assert field not in sent
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]


def test_mistral_conversation_from_another_provider(gw, mistral):
    call = {"id": "call_Vd81mQ2f", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}"}}
    r = chat(gw, "/v1/mistral/chat/completions", {"model": "mistral-small-latest", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_Vd81mQ2f", "content": "{\"temp\":21}"},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "user", "content": "Thanks."}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: And tomorrow?\n\nThanks."
    sent = mistral.requests[-1].body["messages"]
    new_id = sent[1]["tool_calls"][0]["id"]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", new_id) and sent[2]["tool_call_id"] == new_id
    assert sent[3] == {"role": "assistant", "content": "OK."}


def test_mistral_unsupported_parameter(gw, mistral):
    r = chat(gw, "/v1/mistral/chat/completions", harness.chat_body("hi", logprobs=True))
    err = harness.assert_openai_error(r, 400, code="unsupported_parameter")
    assert err["param"] == "logprobs"
    assert mistral.requests == []  # refused before any upstream request
    r = chat(gw, "/v1/mistral-drop/chat/completions",
             harness.chat_body("hi", logprobs=True, top_logprobs=2))
    assert r.status_code == 200, r.text
    assert "logprobs" not in mistral.requests[-1].body


def test_mistral_errors_mapped(gw, mistral):
    r = chat(gw, "/v1/mistral-badkey/chat/completions", harness.chat_body("hi"))
    harness.assert_openai_error(r, 502, code="upstream_auth_failed")
    assert "mistral-WRONG" not in r.text and "Unauthorized" not in r.text
    mistral.script(Fault(status=429))
    r = chat(gw, "/v1/mistral/chat/completions", harness.chat_body("hi"))
    err = harness.assert_openai_error(r, 429, code="rate_limit_exceeded")
    assert err["type"] == "rate_limit_error"
    # An upstream 422 (a field the gateway should not have sent) reaches the client as 400.
    mistral.script(Fault(status=422, body={"object": "error", "message": {"detail": [
        {"type": "extra_forbidden", "loc": ["body", "x"], "msg": "Extra inputs are not "
         "permitted", "input": 1}]}, "type": "invalid_request_error", "param": None,
        "code": None}))
    r = chat(gw, "/v1/mistral/chat/completions", harness.chat_body("hi"))
    err = harness.assert_openai_error(r, 400, type_="invalid_request_error")
    assert "extra_forbidden" in err["message"]


def test_llama_request_on_the_wire(gw, llama):
    r = chat(gw, "/v1/llama/chat/completions", {
        "model": "llama-3.3-70b", "user": "u-1", "store": False, "metadata": {"a": "b"},
        "x_custom": True, "stream": True,
        "messages": [{"role": "system", "content": [{"type": "text", "text": "Be "},
                                                    {"type": "text", "text": "brief."}]},
                     {"role": "user", "content": "hi"}]}, stream=True)
    assert r.status_code == 200  # the mock refuses unknown fields: none reached it
    sse = harness.read_sse(r)
    assert sse.done and not any("usage" in c for c in sse.chunks)
    sent = llama.requests[-1].body
    assert sent["stream_options"] == {"include_usage": True}  # the gateway's own accounting
    assert not {"user", "store", "metadata", "x_custom"} & set(sent)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert llama.requests[-1].headers["authorization"] == "Bearer " + LLAMA_KEY
    entry = gw.access_entry(r.test_id)
    assert entry["prompt_tokens"] not in ("", "-", "0")


def test_llama_errors_mapped(gw, llama):
    llama.script(Fault(status=400, body={"object": "error", "message": "max_tokens must be at "
                                         "least 1, got 0.", "type": "BadRequestError",
                                         "param": None, "code": 400}))
    r = chat(gw, "/v1/llama/chat/completions", harness.chat_body("hi", model="llama-3.3-70b"))
    err = harness.assert_openai_error(r, 400, type_="invalid_request_error")
    assert err["message"] == "max_tokens must be at least 1, got 0." and err["code"] is None
    r = chat(gw, "/v1/llama/chat/completions", harness.chat_body("hi", model="llama-9"))
    harness.assert_openai_error(r, 404, code="model_not_found")
    r = chat(gw, "/v1/llama/chat/completions", harness.chat_body("hi", model="llama-3.3-70b",
                                                                 n=2, logit_bias={"1": 1}))
    harness.assert_openai_error(r, 400, code="unsupported_parameter")
