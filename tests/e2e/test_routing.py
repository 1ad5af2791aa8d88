"""Routes: exact paths, both ways of enabling the handler, 404/405/OPTIONS, models, embeddings."""

import requests
import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, get, post
from mock_openai import DEFAULT_KEY, MockOpenAI, decode_base64_embedding

CLASSIC_KEY = "sk-test-classic-0f9e8d"


@pytest.fixture(scope="module")
def mock():
    m = MockOpenAI(keys=(DEFAULT_KEY, CLASSIC_KEY)).start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    yaml = harness.gateway_yaml(
        backends=[
            harness.openai_backend("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                                   models=["gpt-mock", "gpt-mock-mini", "text-embed-mock"],
                                   maxRetries=0),
            harness.openai_backend("classic", mock.url, CLASSIC_KEY,
                                   defaultModel="classic-model",
                                   models=["classic-model", "other-model"], maxRetries=0),
        ],
        routes=[
            harness.route("chat", "/v1/chat/completions", "primary"),
            harness.route("embeddings", "/v1/embeddings", "primary"),
            harness.route("models", "/v1/models", "primary"),
            harness.route("classic-chat", "/classic/v1/chat/completions", "classic"),
            harness.route("classic-models", "/classic/v1/models", "classic"),
        ])
    return start_gateway(request, "routing", yaml)


def test_fast_path_location_serves_chat(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body("route me"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: route me"
    assert r.headers["x-llmgw-backend"] == "primary"
    [rec] = mock.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == f"Bearer {DEFAULT_KEY}"


def test_sethandler_location_serves_chat(gw, mock):
    r = post(gw.url("/classic/v1/chat/completions"), chat_body("classic way",
                                                                model="classic-model"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: classic way"
    assert r.headers["x-llmgw-backend"] == "classic"
    [rec] = mock.requests
    assert rec.headers["authorization"] == f"Bearer {CLASSIC_KEY}"


def test_query_string_does_not_change_route_or_upstream_url(gw, mock):
    r = post(gw.url("/v1/chat/completions?api-version=1&x=../../evil"), chat_body("q"))
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.query == ""


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/chat/completions/extra", "/v1/chat",
                                  "/v1", "/v1/", "/classic/v1/nope", "/classic"])
def test_unknown_path_inside_location_is_json_404(gw, mock, path):
    r = post(gw.url(path), chat_body())
    assert_openai_error(r, 404)
    assert mock.requests == []


@pytest.mark.parametrize("path", ["/elsewhere/chat/completions", "/v10/chat/completions",
                                  "/v1x"])
def test_paths_outside_the_locations_are_left_to_httpd(gw, mock, path):
    r = post(gw.url(path), chat_body())
    assert r.status_code == 404
    assert not r.headers.get("Content-Type", "").startswith("application/json")
    assert "x-llmgw-backend" not in r.headers
    assert mock.requests == []


def _allow(resp):
    return {m.strip().upper() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_chat_is_405_with_allow(gw, mock, method):
    r = requests.request(method, gw.url("/v1/chat/completions"), timeout=10,
                         headers={"Content-Type": "application/json"}, data=b"{}")
    assert_openai_error(r, 405)
    allow = _allow(r)
    assert "POST" in allow, r.headers
    assert method not in allow
    assert mock.requests == []


def test_post_on_models_is_405_with_allow_get(gw):
    r = post(gw.url("/v1/models"), {"model": "x"})
    assert_openai_error(r, 405)
    allow = _allow(r)
    assert "GET" in allow and "POST" not in allow, r.headers


@pytest.mark.parametrize("path,method", [("/v1/chat/completions", "POST"),
                                         ("/v1/models", "GET"),
                                         ("/classic/v1/chat/completions", "POST")])
def test_options_is_204_with_allow(gw, mock, path, method):
    r = requests.options(gw.url(path), timeout=10)
    assert r.status_code == 204, r.text
    assert method in _allow(r), r.headers
    assert r.content == b""
    assert mock.requests == []


def test_models_lists_the_backend_models_without_calling_upstream(gw, mock):
    r = get(gw.url("/v1/models"))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert sorted(ids) == ["gpt-mock", "gpt-mock-mini", "text-embed-mock"]
    for m in body["data"]:
        assert m["object"] == "model"
        assert isinstance(m["created"], int) and not isinstance(m["created"], bool)
        assert isinstance(m["owned_by"], str) and m["owned_by"]
    assert mock.requests == []


def test_models_merge_default_model_without_duplicates(gw, mock):
    r = get(gw.url("/classic/v1/models"))
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in r.json()["data"]]
    assert sorted(ids) == ["classic-model", "other-model"]


def test_head_on_models_has_no_body(gw):
    r = requests.head(gw.url("/v1/models"), timeout=10)
    assert r.status_code == 200
    assert r.content == b""


def test_one_model_by_id(gw, mock):
    r = get(gw.url("/v1/models/gpt-mock-mini"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "gpt-mock-mini"
    assert body["object"] == "model"
    assert isinstance(body["created"], int)
    assert isinstance(body["owned_by"], str)
    assert mock.requests == []


def test_unknown_model_by_id_is_404_model_not_found(gw, mock):
    r = get(gw.url("/v1/models/no-such-model"))
    err = assert_openai_error(r, 404, code="model_not_found")
    assert "no-such-model" in err["message"]
    assert mock.requests == []


def test_model_of_another_backend_is_not_listed_here(gw):
    r = get(gw.url("/v1/models/classic-model"))
    assert_openai_error(r, 404, code="model_not_found")


def test_embeddings_are_passed_to_the_endpoint(gw, mock):
    body = {"model": "text-embed-mock", "input": ["first text", "second text"],
            "encoding_format": "float", "dimensions": 4}
    r = post(gw.url("/v1/embeddings"), body)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "primary"
    out = r.json()
    assert out["object"] == "list"
    assert out["model"] == "text-embed-mock"
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][0]["embedding"] == MockOpenAI.embedding_for("first text", 4)
    assert out["data"][1]["embedding"] == MockOpenAI.embedding_for("second text", 4)
    [rec] = mock.requests
    assert rec.path == "/v1/embeddings"
    assert rec.body == body


def test_embeddings_base64_pass_through(gw, mock):
    r = post(gw.url("/v1/embeddings"), {"model": "text-embed-mock", "input": "hello world",
                                        "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    emb = r.json()["data"][0]["embedding"]
    assert isinstance(emb, str)
    assert decode_base64_embedding(emb) == MockOpenAI.embedding_for("hello world")


def test_embeddings_without_model_use_default_model(gw, mock):
    r = post(gw.url("/v1/embeddings"), {"input": "no model given"})
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.body["model"] == "gpt-mock"
