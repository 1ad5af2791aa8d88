"""One gateway with a backend of every type, for the ingress-dialect suites
(test_responses.py, test_messages.py): the client speaks Responses or Messages, each backend
its own API behind its mock. Each type gets its routes under /v1/<type>/ (responses and
messages), plus a pool `/v1/pool/...` whose first member fails over to the others.
"""

import pytest

import harness
from clientkit import node_runner
from conftest import start_gateway
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_dialects import LLAMA_KEY, MISTRAL_KEY, MockLlama, MockMistral
from mock_google import DEFAULT_API_KEY, MockGemini
from mock_openai import DEFAULT_KEY
from mock_responses import MockAzureResponses, MockResponses

# backend type -> the model a client names on its route (the upstream serves it)
MODELS = {"openai": "gpt-mock", "anthropic": "claude-mock", "azure-openai": "gpt4o-weather",
          "google": "gemini-2.5-flash", "meta": "llama-3.3-70b",
          "mistral": "mistral-small-latest"}
TYPES = list(MODELS)
# what each type's mock is, as a fixture name
MOCKS = {"openai": "oai", "anthropic": "claude", "azure-openai": "azure", "google": "gem",
         "meta": "llama", "mistral": "mistral"}


def _start(cls, **kw):
    return cls(**kw).start()


@pytest.fixture(scope="module")
def mocks():
    started = {"openai": _start(MockResponses), "anthropic": _start(MockAnthropic),
               "azure-openai": _start(MockAzureResponses), "google": _start(MockGemini),
               "meta": _start(MockLlama), "mistral": _start(MockMistral)}
    yield started
    for m in started.values():
        m.stop()


@pytest.fixture(autouse=True)
def _fresh_mocks(request):
    if "mocks" in request.fixturenames:
        for m in request.getfixturevalue("mocks").values():
            m.reset()
    yield


def backends(mocks):
    def b(name, type_, **config):
        return {"name": name, "type": type_, "config": dict(config, maxRetries=0)}
    m = mocks
    return [
        b("openai", "openai", apiKey=DEFAULT_KEY, endpoint=m["openai"].url,
          defaultModel=MODELS["openai"]),
        b("anthropic", "anthropic", apiKey=ANTHROPIC_KEY, endpoint=m["anthropic"].url,
          defaultModel=MODELS["anthropic"], maxTokens=300),
        b("azure-openai", "azure-openai", apiKey="azure-test-KEY-4f1c9e0d7b",
          endpoint=m["azure-openai"].url, deploymentName="gpt4o-weather",
          apiVersion="2025-04-01-preview"),
        b("google", "google", apiKey=DEFAULT_API_KEY, endpoint=m["google"].base,
          defaultModel=MODELS["google"]),
        b("meta", "meta", apiKey=LLAMA_KEY, endpoint=m["meta"].url,
          defaultModel=MODELS["meta"]),
        b("mistral", "mistral", apiKey=MISTRAL_KEY, endpoint=m["mistral"].url,
          defaultModel=MODELS["mistral"]),
        {"name": "pool", "type": "pool", "strategy": "priority", "fallback": True,
         "backends": [{"name": t} for t in TYPES]},
    ]


def routes(extra=()):
    out = []
    for t in TYPES + ["pool"]:
        out.append(harness.route(f"{t}-responses", f"/v1/{t}/responses", t))
        out.append(harness.route(f"{t}-messages", f"/v1/{t}/messages", t))
    # The Anthropic SDK appends /v1/messages to its baseURL.
    for t in TYPES:
        out.append(harness.route(f"sdk-{t}-messages", f"/v1/sdk/{t}/v1/messages", t))
    out.append(harness.route("models", "/v1/models", "pool"))
    return out + list(extra)


def start(request, name, mocks, extra_routes=(), top=None, **conf):
    """The gateway; `top`: more top-level gateway.yaml sections (access, ledger, pricing)."""
    doc = {"backends": backends(mocks), "routes": routes(extra_routes)}
    doc.update(top or {})
    return start_gateway(request, name, harness.to_yaml(doc) + "\n", **conf)


SDK_DIR = harness.HERE / "sdk-ingress"
SDK_PACKAGES = ["openai", "@anthropic-ai/sdk", "ai", "@ai-sdk/openai", "@langchain/openai"]


@pytest.fixture(scope="session")
def sdk():
    """run(case=..., baseURL=..., model=...) -> the result of sdk-ingress/ingress_client.mjs."""
    run = node_runner(SDK_DIR, SDK_PACKAGES, "the ingress clients")
    return lambda **spec: run("ingress_client.mjs",
                              **dict({"apiKey": "client-key-not-a-secret"}, **spec))
