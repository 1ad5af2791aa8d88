"""Model resolution end to end (DESIGN.md 5): pools and their aliases as virtual models,
models a pool's members list, models nobody serves (404 before any provider is asked), and
model ids with a slash in GET /v1/models/{id}, plainly and as the official SDK sends them.
"""

from functools import partial

import pytest

import harness
from clientkit import node_runner, ok
from conftest import start_gateway
from harness import assert_openai_error, chat_body, get, post
from mock_openai import DEFAULT_KEY

LLAMA = "meta-llama/Llama-3.3-70B-Instruct-Turbo"

pytestmark = pytest.mark.allow_log()


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    ob = harness.openai_backend
    yaml = harness.gateway_yaml(
        backends=[
            ob("a", mock.url, DEFAULT_KEY, defaultModel="gpt-a", models=["gpt-a", "gpt-shared"],
               maxRetries=0),
            ob("b", mock.url, DEFAULT_KEY, defaultModel="gpt-b", maxRetries=0),
            ob("llama", mock.url, DEFAULT_KEY, models=[LLAMA], maxRetries=0),
            {"name": "team", "type": "pool", "strategy": "priority",
             "aliases": ["team-default", "house"], "backends": ["b", "a"]},
        ],
        routes=[harness.route("chat", "/v1/chat/completions", "team"),
                harness.route("models", "/v1/models", "team"),
                harness.route("llama-chat", "/v1/llama/chat/completions", "llama"),
                harness.route("llama-models", "/v1/llama/models", "llama")])
    # What SDKs need for ids with a slash: they send '/' as %2F.
    return start_gateway(request, "models", yaml, server_extra="AllowEncodedSlashes NoDecode")


@pytest.fixture(scope="session")
def sdk():
    return partial(node_runner(harness.HERE / "js", ["openai"], "the openai SDK"),
                   "sdk_client.mjs")


def models_of(gw, path):
    r = get(gw.url(path))
    assert r.status_code == 200, r.text
    return {m["id"]: m["owned_by"] for m in r.json()["data"]}


def test_models_list_pools_and_aliases(gw, mock):
    models = models_of(gw, "/v1/models")
    assert models == {"team": "llmgw", "team-default": "llmgw", "house": "llmgw",
                      "gpt-b": "openai", "gpt-a": "openai", "gpt-shared": "openai"}
    assert mock.requests == []


@pytest.mark.parametrize("model", ["team", "team-default", "house", None])
def test_pool_name_alias_or_no_model_is_the_pool(gw, mock, model):
    r = post(gw.url("/v1/chat/completions"), chat_body("virtual", model=model))
    assert r.status_code == 200, r.text
    # Priority: b first, with its own defaultModel.
    assert r.headers["x-llmgw-backend"] == "b"
    assert [rec.body["model"] for rec in mock.requests] == ["gpt-b"]


def test_listed_model_goes_to_the_member_listing_it(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body("listed", model="gpt-shared"),
             test_id="listed-1")
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "a"
    assert [rec.body["model"] for rec in mock.requests] == ["gpt-shared"]
    entry = gw.access_entry("listed-1")
    assert entry["requested_model"] == "gpt-shared" and entry["model"] == "gpt-shared"


def test_misspelt_model_is_404_and_never_replaced(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body("typo", model="gpt-9-ultra"),
             test_id="typo-1")
    err = assert_openai_error(r, 404, code="model_not_found")
    assert err["param"] == "model" and "gpt-9-ultra" in err["message"]
    assert mock.requests == []
    entry = gw.access_entry("typo-1")
    assert entry["requested_model"] == "gpt-9-ultra"
    assert entry["error"] == "model_not_found"


def test_pool_and_alias_by_id(gw):
    for mid in ("team", "house"):
        r = get(gw.url(f"/v1/models/{mid}"))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == mid and r.json()["owned_by"] == "llmgw"


@pytest.mark.parametrize("path", [LLAMA, LLAMA.replace("/", "%2F"), LLAMA.replace("/", "%2f")])
def test_model_id_with_a_slash(gw, mock, path):
    r = get(gw.url(f"/v1/llama/models/{path}"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == LLAMA
    r = get(gw.url("/v1/llama/models/meta-llama/unknown"))
    assert_openai_error(r, 404, code="model_not_found")
    assert mock.requests == []


def test_sdk_retrieves_a_model_id_with_a_slash(gw, sdk):
    res = ok(sdk(case="retrieve_model", baseURL=gw.url("/v1/llama"),
                 apiKey="client-key-not-a-secret", retrieve=LLAMA))
    assert res == {"id": LLAMA, "object": "model"}


def test_lone_backend_with_models_list_refuses_others(gw, mock):
    r = post(gw.url("/v1/llama/chat/completions"), chat_body("x", model="gpt-a"))
    assert_openai_error(r, 404, code="model_not_found")
    r = post(gw.url("/v1/llama/chat/completions"), chat_body("x", model=LLAMA))
    assert r.status_code == 200, r.text
    assert [rec.body["model"] for rec in mock.requests] == [LLAMA]
