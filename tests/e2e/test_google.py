"""The `google` backend end to end: Gemini on AI Studio and on Vertex AI behind mod_llmgw.

Two parts:
  * the mock is faithful: Google's own @google/genai SDK talks to mock_google.py
    (AI Studio and Vertex AI, JWT exchange included), and the mock refuses what
    Google refuses;
  * the gateway: the official `openai` Node SDK (tests/e2e/sdk-google) talks to
    mod_llmgw, which talks to the mock: chat, streaming, tool calls over two turns
    with thought signatures, images, embeddings, Vertex AI tokens and their
    refresh, errors.

Needs node and `npm install` in tests/e2e/sdk-google (skipped otherwise).
"""

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

import harness
from clientkit import ok
from conftest import start_gateway
from harness import assert_openai_error, post, read_sse
from mock_google import (DEFAULT_API_KEY, SKIP_SIGNATURE, Fault, MockGemini, ServiceAccount,
                         decode_base64_embedding, embedding_for, retry_info_body)

HERE = Path(__file__).resolve().parent
SDK_DIR = HERE / "sdk-google"
NODE = shutil.which("node")
IMG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")
BAD_KEY = "AIza-wrong-SECRET-key-987654"
PROJECT, LOCATION = "acme-test", "us-central1"
VERTEX_PREFIX = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"


def _sdk_ready(package):
    return NODE is not None and (SDK_DIR / "node_modules" / package).is_dir()


needs_openai_sdk = pytest.mark.skipif(not _sdk_ready("openai"),
                                      reason="node or tests/e2e/sdk-google/node_modules missing")
needs_genai_sdk = pytest.mark.skipif(not _sdk_ready("@google/genai"),
                                     reason="node or tests/e2e/sdk-google/node_modules missing")


def node(script, spec, timeout=90):
    r = subprocess.run([NODE, str(SDK_DIR / script), json.dumps(spec)], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def sdk_ok(script, spec):
    return ok(node(script, spec))


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gmock():
    m = MockGemini(project=PROJECT, location=LOCATION).start()
    keys = harness.GEN_DIR / "google-keys"
    harness.GEN_DIR.mkdir(parents=True, exist_ok=True)
    m.sa = ServiceAccount(str(keys), m.token_uri)
    m.public_key_path = m.sa.pub_path
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh_gmock(request):
    if "gmock" in request.fixturenames:
        m = request.getfixturevalue("gmock")
        m.reset()
        m.token_lifetime = 3600
    yield


def google_backend(name, endpoint, model, **config):
    cfg = {"endpoint": endpoint, "defaultModel": model, "maxRetries": 0}
    cfg.update(config)
    return {"name": name, "type": "google", "config": cfg}


@pytest.fixture(scope="module")
def gw(request, module_so, gmock):
    vertex = {"projectId": PROJECT, "location": LOCATION, "credentialsFile": gmock.sa.json_path}
    yaml = harness.gateway_yaml(
        backends=[
            google_backend("gem", gmock.base, "gemini-2.5-flash", apiKey=DEFAULT_API_KEY),
            google_backend("gem3", gmock.base, "gemini-3-pro-preview", apiKey=DEFAULT_API_KEY),
            google_backend("gem-badkey", gmock.base, "gemini-2.5-flash", apiKey=BAD_KEY),
            google_backend("gem-retry", gmock.base, "gemini-2.5-flash", apiKey=DEFAULT_API_KEY,
                           maxRetries=1),
            google_backend("vtx", gmock.base, "gemini-2.5-pro", **vertex),
            google_backend("vtx-short", gmock.base, "gemini-2.5-pro", **vertex),
            google_backend("vtx-revoke", gmock.base, "gemini-2.5-pro", **vertex),
        ],
        routes=[
            harness.route("chat", "/v1/chat/completions", "gem"),
            harness.route("embeddings", "/v1/embeddings", "gem"),
            harness.route("g3", "/v1/g3/chat/completions", "gem3"),
            harness.route("badkey", "/v1/badkey/chat/completions", "gem-badkey"),
            harness.route("retry", "/v1/retry/chat/completions", "gem-retry"),
            harness.route("vertex", "/v1/vertex/chat/completions", "vtx"),
            harness.route("vertex-emb", "/v1/vertex/embeddings", "vtx"),
            harness.route("vertex-short", "/v1/vshort/chat/completions", "vtx-short"),
            harness.route("vertex-revoke", "/v1/vrevoke/chat/completions", "vtx-revoke"),
        ])
    h = start_gateway(request, "google", yaml)
    probe = post(h.url("/v1/chat/completions"), {"messages": [{"role": "user", "content": "hi"}]})
    if probe.status_code == 501:
        pytest.skip("this build does not wire the google backend type yet")
    return h


def last(gmock, path_part):
    return [r for r in gmock.requests if path_part in r.path][-1]


# -- the mock is faithful: Google's own SDK ---------------------------------------------

@needs_genai_sdk
def test_genai_sdk_generate_on_aistudio(gmock):
    r = sdk_ok("genai_client.mjs", {"case": "generate", "baseUrl": gmock.base,
                                    "apiKey": DEFAULT_API_KEY, "model": "gemini-2.5-flash"})
    assert r["text"] == "echo: Hello there"
    assert r["finishReason"] == "STOP"
    assert r["usage"]["totalTokenCount"] == 2 + 3 + 3
    rec = last(gmock, ":generateContent")
    assert rec.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert rec.headers["x-goog-api-key"] == DEFAULT_API_KEY
    assert rec.body["systemInstruction"]["parts"] == [{"text": "Be terse."}]


@needs_genai_sdk
def test_genai_sdk_stream_and_image(gmock):
    r = sdk_ok("genai_client.mjs", {"case": "stream", "baseUrl": gmock.base,
                                    "apiKey": DEFAULT_API_KEY, "model": "gemini-2.5-flash"})
    assert r["text"] == "echo: stream these words please"
    assert r["chunks"] == 5 and r["finishReason"] == "STOP"
    assert last(gmock, ":streamGenerateContent").query == "alt=sse"
    r = sdk_ok("genai_client.mjs", {"case": "image", "baseUrl": gmock.base, "image": IMG,
                                    "apiKey": DEFAULT_API_KEY, "model": "gemini-2.5-flash"})
    assert r["text"] == "echo: What is on this postcard? [image/png]"


@needs_genai_sdk
def test_genai_sdk_function_calling_with_signature(gmock):
    r = sdk_ok("genai_client.mjs", {"case": "function_calling", "baseUrl": gmock.base,
                                    "apiKey": DEFAULT_API_KEY, "model": "gemini-3-pro-preview"})
    assert r["calls"] == [{"name": "get_weather",
                           "args": {"city": "city-value", "unit": "celsius"}}]
    assert r["signature"], "gemini-3 answers carry a thought signature"
    assert r["text"] == 'result: [{"temp":21}]'
    second = gmock.requests[-1].body
    assert second["contents"][1]["parts"][0]["thoughtSignature"] == r["signature"]


@needs_genai_sdk
def test_genai_sdk_embeddings_on_aistudio(gmock):
    r = sdk_ok("genai_client.mjs", {"case": "embed", "baseUrl": gmock.base, "dims": 4,
                                    "apiKey": DEFAULT_API_KEY, "model": "gemini-embedding-001"})
    assert r["vectors"] == [embedding_for("first text", 4), embedding_for("second text", 4)]
    assert last(gmock, "Embed").path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"


@needs_genai_sdk
def test_genai_sdk_on_vertex_with_service_account_token(gmock):
    v = {"project": PROJECT, "location": LOCATION, "tokenUri": gmock.token_uri,
         "keyFile": gmock.sa.key_path, "clientEmail": gmock.sa.client_email,
         "keyId": gmock.sa.key_id}
    r = sdk_ok("genai_client.mjs", {"case": "function_calling", "baseUrl": gmock.base,
                                    "vertex": v, "model": "gemini-3-pro-preview"})
    assert r["text"] == 'result: [{"temp":21}]'
    r = sdk_ok("genai_client.mjs", {"case": "embed", "baseUrl": gmock.base, "vertex": v,
                                    "model": "text-embedding-005", "dims": 4})
    assert r["vectors"] == [embedding_for("first text", 4), embedding_for("second text", 4)]
    assert r["stats"][0]["tokenCount"] == 2
    r = sdk_ok("genai_client.mjs", {"case": "embed", "baseUrl": gmock.base, "vertex": v,
                                    "model": "gemini-embedding-2", "input": ["one"], "dims": 4})
    assert r["vectors"] == [embedding_for("one", 4)]
    paths = [rec.path for rec in gmock.requests if rec.path != "/token"]
    assert VERTEX_PREFIX + "gemini-3-pro-preview:generateContent" in paths
    assert VERTEX_PREFIX + "text-embedding-005:predict" in paths
    assert VERTEX_PREFIX + "gemini-embedding-2:embedContent" in paths
    assert all(t["ok"] for t in gmock.token_requests) and len(gmock.token_requests) == 3


@needs_genai_sdk
def test_genai_sdk_sees_google_errors(gmock):
    out = node("genai_client.mjs", {"case": "error", "baseUrl": gmock.base, "apiKey": BAD_KEY,
                                    "model": "gemini-2.5-flash"})
    assert not out["ok"] and out["error"]["status"] == 400
    assert "API_KEY_INVALID" in out["error"]["message"]


def _mock_post(gmock, path, body, **headers):
    h = {"x-goog-api-key": DEFAULT_API_KEY, "Content-Type": "application/json"}
    h.update(headers)
    return requests.post(gmock.base + path, data=json.dumps(body), headers=h, timeout=10)


def _msg(resp):
    return resp.json()["error"]["message"]


GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
GEN3 = "/v1beta/models/gemini-3-pro-preview:generateContent"
DECL = {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}


@pytest.mark.parametrize("body,fragment", [
    ({"contents": []}, "contents is not specified"),
    ({"contents": [{"parts": [{"text": "x"}]}]}, "valid role"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]},
                   {"role": "user", "parts": [{"text": "b"}]}]}, "alternate"),
    ({"contents": [{"role": "model", "parts": [{"text": "a"}]}]}, "start with a user turn"),
    ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},
     "exactly one data field"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]}], "temperature": 1},
     'Unknown name "temperature"'),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]},
                   {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}},
                                               {"functionCall": {"name": "f", "args": {}}}]},
                   {"role": "user", "parts": [{"functionResponse": {"name": "f",
                                                                    "response": {}}}]}],
      "tools": [DECL]}, "number of function response parts"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]}], "tools": [DECL],
      "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}}},
     "only allowed when mode is ANY"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]}],
      "generationConfig": {"stopSequences": ["1", "2", "3", "4", "5", "6"]}}, "at most 5"),
])
def test_mock_refuses_what_gemini_refuses(gmock, body, fragment):
    r = _mock_post(gmock, GEN, body)
    assert r.status_code == 400, r.text
    assert fragment in _msg(r)
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_mock_checks_thought_signatures_on_gemini3(gmock):
    turn = [{"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
    r = _mock_post(gmock, GEN3, {"contents": turn, "tools": [DECL]})
    assert r.status_code == 400 and "missing a thought_signature" in _msg(r)
    turn[1]["parts"][0]["thoughtSignature"] = base64.b64encode(b"forged").decode()
    r = _mock_post(gmock, GEN3, {"contents": turn, "tools": [DECL]})
    assert r.status_code == 400 and "Corrupted thought signature" in _msg(r)
    turn[1]["parts"][0]["thoughtSignature"] = SKIP_SIGNATURE
    r = _mock_post(gmock, GEN3, {"contents": turn, "tools": [DECL]})
    assert r.status_code == 200, r.text


def test_mock_token_endpoint_verifies_the_signature(gmock, tmp_path):
    other = ServiceAccount(str(tmp_path), gmock.token_uri)  # a different key pair
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "RS256", "typ": "JWT", "kid": gmock.key_id}).encode()).rstrip(b"=")
    now = int(time.time())
    claims = base64.urlsafe_b64encode(json.dumps(
        {"iss": gmock.client_email, "aud": gmock.token_uri, "iat": now, "exp": now + 3600,
         "scope": "https://www.googleapis.com/auth/cloud-platform"}).encode()).rstrip(b"=")
    data = tmp_path / "data"
    data.write_bytes(header + b"." + claims)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", other.key_path, str(data)],
                         check=True, capture_output=True).stdout
    jwt = (header + b"." + claims + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    r = requests.post(gmock.token_uri, timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": jwt})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


# -- through the gateway: AI Studio ----------------------------------------------------

def gw_spec(gw, case, path="/v1", **extra):
    spec = {"case": case, "baseURL": gw.url(path)}
    spec.update(extra)
    return spec


@needs_openai_sdk
def test_chat_with_the_openai_sdk(gw, gmock):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "chat", model="gemini-2.5-flash"))
    assert r["content"] == "echo: Hello Gemini"
    assert r["finish_reason"] == "stop"
    assert r["model"] == "gemini-2.5-flash"
    u = r["usage"]
    # Thinking tokens count as completion tokens (providers.md 6.8).
    assert u["completion_tokens_details"]["reasoning_tokens"] == 3
    assert u["completion_tokens"] == 3 + 3 and u["prompt_tokens"] == 2
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    rec = last(gmock, ":generateContent")
    assert rec.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert rec.headers["x-goog-api-key"] == DEFAULT_API_KEY and "key=" not in rec.query
    assert "authorization" not in rec.headers
    assert rec.body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert rec.body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 100}


def test_response_headers_and_access_log(gw, gmock):
    r = post(gw.url("/v1/chat/completions"),
             {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "log me"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "gem"
    entry = gw.access_entry(r.test_id)
    assert entry["backend"] == "gem" and entry["model"] == "gemini-2.5-flash"
    assert entry["prompt_tokens"] == "2" and entry["completion_tokens"] == "6"


@needs_openai_sdk
@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_with_the_openai_sdk(gw, gmock, include_usage):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "stream", model="gemini-2.5-flash",
                                            include_usage=include_usage))
    assert r["text"] == "echo: stream some words"
    assert r["finish_reason"] == "stop"
    assert len(r["ids"]) == 1 and r["ids"][0].startswith("chatcmpl-mockresp")
    if include_usage:
        assert r["usage_fields"] == r["chunks"]
        assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + \
            r["usage"]["completion_tokens"]
    else:
        assert r["usage_fields"] == 0 and r["usage"] is None
    assert last(gmock, ":streamGenerateContent").query == "alt=sse"


def test_stream_wire_format(gw, gmock):
    r = post(gw.url("/v1/chat/completions"), stream=True, body={
        "model": "gemini-2.5-flash", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "three little words"}]})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    sse = read_sse(r)
    assert sse.done and not sse.errors
    assert sse.text == "echo: three little words"
    assert sse.chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["finish_reason"] for c in sse.chunks if c["choices"]][-1] == "stop"
    assert sse.chunks[-1]["choices"] == [] and sse.chunks[-1]["usage"]["completion_tokens"] == 7


def g3_round_trip(gw, case):
    """A tool round trip on Gemini 3 through the gateway: the result and its one tool call."""
    r = sdk_ok("openai_client.mjs", gw_spec(gw, case, "/v1/g3", model="gemini-3-pro-preview"))
    assert r["finish_reason"] == "tool_calls"
    [call] = r["tool_calls"]
    return r, call


@needs_openai_sdk
def test_tool_round_trip_keeps_thought_signatures(gw, gmock):
    r, call = g3_round_trip(gw, "tools_round_trip")
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "city-value", "unit": "celsius"}
    assert call["id"].startswith("call_gw") and "__thought__" in call["id"]
    assert r["final"] == 'result: [{"temp":21,"tool":"get_weather"}]'
    # The mock accepted the second request only with the signature it issued.
    second = gmock.requests[-1].body["contents"]
    assert second[1]["parts"][0]["thoughtSignature"] == call["id"].split("__thought__", 1)[1]
    assert "id" not in second[1]["parts"][0]["functionCall"]
    assert second[2] == {"role": "user", "parts": [{"functionResponse": {
        "name": "get_weather", "response": {"tool": "get_weather", "temp": 21}}}]}


@needs_openai_sdk
def test_parallel_tool_calls_answered_in_one_turn(gw, gmock):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "tools_round_trip", "/v1/g3", parallel=True,
                                            model="gemini-3-pro-preview",
                                            prompt="weather and time in Lisbon?"))
    assert [c["name"] for c in r["tool_calls"]] == ["get_weather", "get_time"]
    assert len({c["id"] for c in r["tool_calls"]}) == 2
    assert r["final"].startswith("result: ")
    parts = gmock.requests[-1].body["contents"][2]["parts"]
    assert [p["functionResponse"]["name"] for p in parts] == ["get_weather", "get_time"]


@needs_openai_sdk
def test_streamed_tool_round_trip(gw, gmock):
    r, call = g3_round_trip(gw, "stream_tools_round_trip")
    assert "__thought__" in call["id"]
    assert r["arguments_done"] == [{"name": "get_weather", "arguments": call["arguments"]}]
    assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + \
        r["usage"]["completion_tokens"]
    assert r["final"] == 'result: [{"temp":21,"tool":"get_weather"}]'
    assert r["final_finish_reason"] == "stop"


@needs_openai_sdk
def test_image_data_uri_is_inlined(gw, gmock):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "image", model="gemini-2.5-flash",
                                            url="data:image/png;base64," + IMG))
    assert r["content"] == "echo: Which city is on this postcard? [image/png]"
    part = last(gmock, ":generateContent").body["contents"][0]["parts"][1]
    assert part == {"inlineData": {"mimeType": "image/png", "data": IMG}}


@needs_openai_sdk
def test_remote_image_refused_before_any_upstream_call(gw, gmock):
    """Remote images are fetched with a guard (test_images.py has the rest): a loopback
    address is refused unless imageFetch.allowHosts names its host."""
    out = node("openai_client.mjs", gw_spec(gw, "image", model="gemini-2.5-flash",
                                            url="http://127.0.0.1:9/postcard.png"))
    assert not out["ok"]
    assert out["error"]["status"] == 400 and out["error"]["code"] == "invalid_image_url"
    assert out["error"]["param"] == "messages[0].content[1].image_url.url"
    assert gmock.requests == []


@needs_openai_sdk
@pytest.mark.parametrize("encoding", [None, "float"])
def test_embeddings_with_the_openai_sdk(gw, gmock, encoding):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "embeddings", model="gemini-embedding-001",
                                            encoding_format=encoding, dimensions=6))
    assert r["vectors"] == [embedding_for("first text", 6), embedding_for("second text", 6)]
    assert r["indexes"] == [0, 1] and r["object"] == "list"
    rec = last(gmock, "Embed")
    assert rec.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert rec.body["requests"][0]["outputDimensionality"] == 6


def test_single_embedding_base64(gw, gmock):
    r = post(gw.url("/v1/embeddings"), {"model": "gemini-embedding-001", "input": "just one",
                                        "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    [d] = r.json()["data"]
    assert decode_base64_embedding(d["embedding"]) == embedding_for("just one")
    assert last(gmock, "embed").path == "/v1beta/models/gemini-embedding-001:embedContent"


# -- through the gateway: Vertex AI -----------------------------------------------------

@needs_openai_sdk
def test_vertex_chat_stream_and_tools(gw, gmock):
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "chat", "/v1/vertex", model="gemini-2.5-pro"))
    assert r["content"] == "echo: Hello Gemini"
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "stream", "/v1/vertex", model="gemini-2.5-pro",
                                            include_usage=True))
    assert r["text"] == "echo: stream some words" and r["usage"]["total_tokens"] > 0
    r = sdk_ok("openai_client.mjs", gw_spec(gw, "stream_tools_round_trip", "/v1/vertex",
                                            model="gemini-3-pro-preview"))
    assert r["final"] == 'result: [{"temp":21,"tool":"get_weather"}]'
    vertex = [rec for rec in gmock.requests if rec.path.startswith("/v1/projects/")]
    assert [rec.path.rsplit(":", 1)[1] for rec in vertex] == \
        ["generateContent", "streamGenerateContent", "streamGenerateContent",
         "streamGenerateContent"]
    assert vertex[0].path == VERTEX_PREFIX + "gemini-2.5-pro:generateContent"
    issued = {t["token"] for t in gmock.token_requests if t["ok"]}
    assert all(rec.headers["authorization"][len("Bearer "):] in issued for rec in vertex)
    assert all("x-goog-api-key" not in rec.headers for rec in vertex)
    # Every assertion was RS256-signed with the test key and carried the right claims.
    for t in gmock.token_requests:
        assert t["ok"], t
        assert t["header"]["kid"] == gmock.sa.key_id
        assert t["claims"]["aud"] == gmock.token_uri
        assert t["claims"]["exp"] - t["claims"]["iat"] == 3600


def test_vertex_embeddings(gw, gmock):
    r = post(gw.url("/v1/vertex/embeddings"), {"model": "text-embedding-005",
                                               "input": ["alpha beta", "gamma"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["embedding"] for d in body["data"]] == [embedding_for("alpha beta"),
                                                      embedding_for("gamma")]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert last(gmock, ":predict").path == VERTEX_PREFIX + "text-embedding-005:predict"


def _vertex_chat(gw, path, text):
    return post(gw.url(path), {"messages": [{"role": "user", "content": text}]})


def test_vertex_token_refreshed_before_expiry(gw, gmock):
    """Short-lived tokens: one exchange while fresh, a refresh when due, none wasted."""
    gmock.token_lifetime = 6
    r = _vertex_chat(gw, "/v1/vshort/chat/completions", "first")
    assert r.status_code == 200, r.text
    first = len(gmock.token_requests)
    assert first >= 1
    time.sleep(1)
    assert _vertex_chat(gw, "/v1/vshort/chat/completions", "fresh").status_code == 200
    if harness.MPM != "prefork":  # one child: one cache
        assert len(gmock.token_requests) == first
    time.sleep(2.5)  # 3.5 s of 6 gone: due, still valid
    assert _vertex_chat(gw, "/v1/vshort/chat/completions", "due").status_code == 200
    assert len(gmock.token_requests) > first
    time.sleep(6.5)  # every token issued so far has expired at the mock
    assert _vertex_chat(gw, "/v1/vshort/chat/completions", "late").status_code == 200
    chats = [rec for rec in gmock.requests if rec.path.startswith("/v1/projects/")]
    assert [rec.status for rec in chats] == [200] * 4  # never sent an expired token
    assert all(t["ok"] for t in gmock.token_requests)


@pytest.mark.allow_log()
def test_vertex_revoked_token_is_renewed_once(gw, gmock):
    assert _vertex_chat(gw, "/v1/vrevoke/chat/completions", "before").status_code == 200
    gmock.revoke_tokens()
    r = _vertex_chat(gw, "/v1/vrevoke/chat/completions", "after")
    assert r.status_code == 200, r.text
    statuses = [rec.status for rec in gmock.requests if rec.path.startswith("/v1/projects/")]
    if harness.MPM == "prefork" and statuses == [200, 200]:
        return  # the second request went to a child that had no token yet
    assert statuses == [200, 401, 200]


# -- through the gateway: errors and odd answers -------------------------------------------

@pytest.mark.allow_log()
def test_bad_api_key_is_a_gateway_credential_error(gw, gmock):
    r = post(gw.url("/v1/badkey/chat/completions"),
             {"messages": [{"role": "user", "content": "hi"}]})
    err = assert_openai_error(r, 502, code="upstream_auth_failed")
    assert BAD_KEY not in r.text and "API key not valid" not in r.text
    assert err["type"] == "server_error"


@pytest.mark.allow_log()
def test_rate_limit_reaches_the_client_as_429(gw, gmock):
    gmock.script(Fault(status=429, body=retry_info_body(30)))
    r = post(gw.url("/v1/chat/completions"), {"messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(r, 429)


@pytest.mark.allow_log()
def test_retry_waits_for_google_retry_delay(gw, gmock):
    gmock.script(Fault(status=429, body=retry_info_body(1.2)))
    t0 = time.monotonic()
    r = post(gw.url("/v1/retry/chat/completions"),
             {"messages": [{"role": "user", "content": "patience"}]})
    assert r.status_code == 200, r.text
    first, second = gmock.requests[-2:]
    assert first.status == 429 and second.status == 200
    assert second.t - first.t >= 1.15, "RetryInfo.retryDelay was not honoured"
    assert time.monotonic() - t0 < 10


@pytest.mark.allow_log()
def test_unknown_model_is_404(gw, gmock):
    r = post(gw.url("/v1/chat/completions"),
             {"model": "unknown-model", "messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(r, 404, code="model_not_found")


def test_upstream_400_keeps_its_message(gw, gmock):
    r = post(gw.url("/v1/chat/completions"), {"messages": [{"role": "user", "content": "hi"}],
                                              "stop": ["1", "2", "3", "4", "5", "6"]})
    err = assert_openai_error(r, 400, code="invalid_argument")
    assert "stop_sequences" in err["message"]


def test_blocked_prompt_is_content_filter(gw, gmock):
    gmock.script(Fault(body={"promptFeedback": {"blockReason": "SAFETY"},
                             "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                             "modelVersion": "gemini-2.5-flash", "responseId": "blk"}))
    r = post(gw.url("/v1/chat/completions"), {"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200, r.text
    [choice] = r.json()["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None


def test_safety_stop_in_a_stream(gw, gmock):
    gmock.script(Fault(finish_reason="SAFETY"))
    r = post(gw.url("/v1/chat/completions"), stream=True, body={
        "stream": True, "messages": [{"role": "user", "content": "tell me"}]})
    sse = read_sse(r)
    assert sse.done and sse.finish_reasons == ["content_filter"]
    refusals = [c["choices"][0]["delta"].get("refusal") for c in sse.chunks if c["choices"]]
    assert "Gemini stopped the response (finishReason SAFETY)." in refusals


@pytest.mark.allow_log()
def test_stream_cut_before_finish_is_an_error_event(gw, gmock):
    gmock.script(Fault(end_after=2))
    r = post(gw.url("/v1/chat/completions"), stream=True, body={
        "stream": True, "messages": [{"role": "user", "content": "one two three four"}]})
    sse = read_sse(r)
    assert not sse.done
    assert sse.text == "echo: one "
    [err] = sse.errors
    assert err["error"]["type"] == "server_error"


def test_no_secret_in_the_logs(gw, gmock):
    """Runs last in this module: nothing above may have logged a key, a token or the JWT."""
    assert _vertex_chat(gw, "/v1/vertex/chat/completions", "one more").status_code == 200
    logs = gw.error_log_text(0) + gw.access_log.read_text()
    for secret in (DEFAULT_API_KEY, BAD_KEY, "ya29.", "PRIVATE KEY", "eyJ"):
        assert secret not in logs, f"{secret!r} appears in the logs"
