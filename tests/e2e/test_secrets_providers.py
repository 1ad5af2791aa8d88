"""Provider keys never leave the gateway, for every backend type (DESIGN.md 10): upstream
4xx and 5xx bodies that echo the key, in-stream error events that echo it, and a Vertex AI
access token the gateway minted, must reach neither the client (JSON errors, stream error
events, headers), nor the access or error log (LogLevel llmgw:trace8), nor the status page.
test_secrets.py covers the openai type in more paths; this module covers the others.
"""

import time

import pytest
import requests

import harness
import poolkit
from clientkit import module_mock
from conftest import start_gateway
from harness import chat_body, post, read_sse
from mock_anthropic import ANTHROPIC_KEY, AnthropicFault, MockAnthropic, anthropic_error
from mock_dialects import AZURE_KEY, LLAMA_KEY, MISTRAL_KEY, MockAzure, MockLlama, MockMistral
from mock_google import DEFAULT_API_KEY, MockGemini, ServiceAccount
from mock_openai import Fault, openai_error

pytestmark = pytest.mark.allow_log()

PROJECT, LOCATION = "acme-test", "us-central1"
KEYS = {"anthropic": ANTHROPIC_KEY, "google": DEFAULT_API_KEY, "azure": AZURE_KEY,
        "meta": LLAMA_KEY, "mistral": MISTRAL_KEY}

anthropic = module_mock("anthropic", MockAnthropic)
azure = module_mock("azure", MockAzure)
llama = module_mock("llama", MockLlama)
mistral = module_mock("mistral", MockMistral)


@pytest.fixture(scope="module")
def gemini():
    m = MockGemini(project=PROJECT, location=LOCATION).start()
    harness.GEN_DIR.mkdir(parents=True, exist_ok=True)
    m.sa = ServiceAccount(str(harness.GEN_DIR / "secrets-google-keys"), m.token_uri)
    m.public_key_path = m.sa.pub_path
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh(request):
    for name in ("anthropic", "azure", "llama", "mistral", "gemini"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield


def backend(name, type_, **config):
    return {"name": name, "type": type_,
            "config": dict(config, maxRetries=0, idleTimeout="2s", firstByteTimeout="3s")}


@pytest.fixture(scope="module")
def gw(request, module_so, anthropic, gemini, azure, llama, mistral):
    backends = [
        backend("anthropic", "anthropic", apiKey=ANTHROPIC_KEY, endpoint=anthropic.url,
                defaultModel="claude-mock", maxTokens=100),
        backend("google", "google", apiKey=DEFAULT_API_KEY, endpoint=gemini.base,
                defaultModel="gemini-2.5-flash"),
        backend("vertex", "google", projectId=PROJECT, location=LOCATION,
                credentialsFile=gemini.sa.json_path, endpoint=gemini.base,
                defaultModel="gemini-2.5-pro"),
        backend("azure", "azure-openai", apiKey=AZURE_KEY, endpoint=azure.url,
                apiVersion="2024-10-21", deploymentName="gpt4o-weather"),
        backend("meta", "meta", apiKey=LLAMA_KEY, endpoint=llama.url,
                defaultModel="llama-3.3-70b"),
        backend("mistral", "mistral", apiKey=MISTRAL_KEY, endpoint=mistral.url,
                defaultModel="mistral-small-latest"),
    ]
    routes = [harness.route(b["name"], f"/v1/{b['name']}/chat/completions", b["name"])
              for b in backends]
    return start_gateway(request, "secrets-providers", harness.gateway_yaml(backends, routes),
                         log_level="warn llmgw:trace8", server_extra=poolkit.STATUS_CONF)


def mock_for(kind, anthropic, gemini, azure, llama, mistral):
    return {"anthropic": anthropic, "google": gemini, "vertex": gemini, "azure": azure,
            "meta": llama, "mistral": mistral}[kind]


def error_body(kind, status, text):
    """The provider's own error body for `status`, with `text` as its message."""
    if kind == "anthropic":
        return anthropic_error("invalid_request_error" if status < 500 else "api_error", text)
    if kind in ("google", "vertex"):
        return {"error": {"code": status, "message": text,
                          "status": "INVALID_ARGUMENT" if status < 500 else "INTERNAL"}}
    return openai_error(text, "invalid_request_error" if status < 500 else "server_error")


def fault(kind, **kw):
    return AnthropicFault(**kw) if kind == "anthropic" else Fault(**kw)


def secrets(gw, gemini):
    """Every credential the gateway holds: the configured keys and the minted tokens."""
    minted = [t["token"] for t in getattr(gemini, "token_log", []) if t.get("token")]
    minted += list(getattr(gemini, "_tokens", {}).keys())
    return list(KEYS.values()) + minted


def assert_clean(text, where, needles):
    for needle in needles:
        for part in (needle, needle[:20], needle[-16:]):
            assert part not in text, f"{part!r} leaked into {where}"


def assert_all_clean(gw, gemini, r, text):
    needles = secrets(gw, gemini)
    assert_clean(text, "the response body", needles)
    assert_clean("\n".join(f"{k}: {v}" for k, v in r.headers.items()), "headers", needles)
    time.sleep(0.2)  # the access-log line is written after the response
    assert_clean(gw.access_log.read_text(), "the access log", needles)
    assert_clean(gw.error_log_text(), "the error log", needles)
    for fmt in ("html", "json", "prometheus"):
        page = requests.get(gw.url(poolkit.STATUS_PATH), params={"format": fmt}, timeout=10)
        assert_clean(page.text, f"the status page ({fmt})", needles)


def leaking_message(kind, gemini):
    """What a careless provider says: the key (or, for Vertex, the minted token) in full."""
    if kind == "vertex":
        [token] = list(gemini._tokens.keys())[-1:]
        return f"Request had invalid authentication credentials: Bearer {token} expired"
    return f"invalid x-api-key {KEYS[kind]}; Quota exceeded for key {KEYS[kind]}"


def warm_up(gw, kind):
    """Vertex: mint a token first, so that the provider can echo it."""
    if kind == "vertex":
        r = post(gw.url(f"/v1/{kind}/chat/completions"), chat_body("warm up", model=None))
        assert r.status_code == 200, r.text


KINDS = ["anthropic", "google", "vertex", "azure", "meta", "mistral"]


@pytest.mark.parametrize("status,client_status", [(400, 400), (500, 503)])
@pytest.mark.parametrize("kind", KINDS)
def test_error_body_echoing_the_key(gw, anthropic, gemini, azure, llama, mistral, kind, status,
                                    client_status):
    warm_up(gw, kind)
    m = mock_for(kind, anthropic, gemini, azure, llama, mistral)
    m.script(fault(kind, status=status, body=error_body(kind, status, leaking_message(kind,
                                                                                      gemini))))
    r = post(gw.url(f"/v1/{kind}/chat/completions"), chat_body("leak?", model=None))
    assert r.status_code == client_status, r.text
    assert "[redacted]" in r.text or status >= 500
    assert_all_clean(gw, gemini, r, r.text)


@pytest.mark.parametrize("kind", KINDS)
def test_in_stream_error_echoing_the_key(gw, anthropic, gemini, azure, llama, mistral, kind):
    warm_up(gw, kind)
    m = mock_for(kind, anthropic, gemini, azure, llama, mistral)
    # After some content has reached the client (events differ per provider).
    after = {"anthropic": 5, "google": 1, "vertex": 1}.get(kind, 3)
    m.script(fault(kind, chunks=["partial ", "answer ", "more"], error_event_after=after,
                   error_message=leaking_message(kind, gemini)))
    r = post(gw.url(f"/v1/{kind}/chat/completions"), chat_body("leak?", model=None, stream=True),
             stream=True)
    assert r.status_code == 200, r.text
    res = read_sse(r)
    text = "\n".join(res.data)
    assert res.errors, text  # the stream ends with an error event, not [DONE]
    assert "[DONE]" not in res.data
    assert_all_clean(gw, gemini, r, text)
