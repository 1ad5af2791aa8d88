"""Request validation: bad JSON or schema -> 400 with param, 415, 413; the server keeps going.

/v1 has `LLMGatewayMaxBody 64K`; /classic keeps the default (4M).
"""

import json

import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post, raw_request
from mock_openai import DEFAULT_KEY

LIMIT_V1 = 64 * 1024
DEFAULT_LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    yaml = harness.gateway_yaml(
        backends=[harness.openai_backend("primary", mock.url, DEFAULT_KEY,
                                         defaultModel="gpt-mock", maxRetries=0)],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("embeddings", "/v1/embeddings", "primary"),
                harness.route("classic-chat", "/classic/v1/chat/completions", "primary")])
    return start_gateway(request, "validation", yaml, v1_extra="LLMGatewayMaxBody 64K")


def assert_still_serving(gw, mock, path="/v1/chat/completions"):
    """A fresh, valid request right after a refused one is answered normally."""
    before = len(mock.requests)
    r = post(gw.url(path), chat_body("still there?"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: still there?"
    assert len(mock.requests) == before + 1


BAD_BODIES = [
    # (id, raw body, expected param: None = not checked, str = exact, "prefix*" = prefix)
    ("truncated-json", b'{"model": "gpt-mock", "messages": [', None),
    ("empty-body", b"", None),
    ("array-body", b"[1, 2]", None),
    ("string-body", b'"just a string"', None),
    ("trailing-garbage", b'{"model":"gpt-mock","messages":[{"role":"user","content":"x"}]} x',
     None),
    ("invalid-utf8", b'{"model":"gpt-mock","messages":[{"role":"user","content":"\xff\xfe"}]}',
     None),
    ("deep-nesting", b'{"model":"gpt-mock","messages":' + b"[" * 5000 + b"]" * 5000 + b"}",
     None),
    ("messages-missing", b'{"model":"gpt-mock"}', "messages"),
    ("messages-empty", b'{"model":"gpt-mock","messages":[]}', "messages"),
    ("messages-string", b'{"model":"gpt-mock","messages":"hi"}', "messages"),
    ("messages-object", b'{"model":"gpt-mock","messages":{"role":"user","content":"hi"}}',
     "messages"),
    ("messages-null", b'{"model":"gpt-mock","messages":null}', "messages"),
    ("message-not-object", b'{"model":"gpt-mock","messages":[5]}', "messages[0]*"),
    ("message-without-role", b'{"model":"gpt-mock","messages":[{"content":"hi"}]}',
     "messages[0]*"),
    ("message-role-not-string", b'{"model":"gpt-mock","messages":[{"role":7,"content":"hi"}]}',
     "messages[0]*"),
    ("second-message-bad",
     b'{"model":"gpt-mock","messages":[{"role":"user","content":"hi"},"oops"]}',
     "messages[1]*"),
    ("stream-not-bool",
     b'{"model":"gpt-mock","stream":"yes","messages":[{"role":"user","content":"hi"}]}',
     "stream"),
    ("model-not-string", b'{"model":5,"messages":[{"role":"user","content":"hi"}]}', "model"),
]


@pytest.mark.parametrize("raw,param", [(b, p) for _, b, p in BAD_BODIES],
                         ids=[i for i, _, _ in BAD_BODIES])
def test_bad_chat_request_is_400_and_never_reaches_upstream(gw, mock, raw, param):
    r = post(gw.url("/v1/chat/completions"), data=raw,
             headers={"Content-Type": "application/json"})
    err = assert_openai_error(r, 400, type_="invalid_request_error")
    if param is not None and param.endswith("*"):
        assert isinstance(err["param"], str) and err["param"].startswith(param[:-1]), err
    elif param is not None:
        assert err["param"] == param, err
    assert mock.requests == []
    assert_still_serving(gw, mock)


@pytest.mark.parametrize("raw,param", [
    (b'{"model":"m"}', "input"),
    (b'{"model":5,"input":"x"}', "model"),
    (b"{", None),
    (b'{"model":"m","input":"x","dimensions":4611686018427387904}', "dimensions"),
    (b'{"model":"m","input":"x","dimensions":0}', "dimensions"),
    (b'{"model":"m","input":"x","dimensions":"256"}', "dimensions"),
], ids=["input-missing", "model-not-string", "truncated", "dimensions-huge", "dimensions-zero",
        "dimensions-string"])
def test_bad_embeddings_request_is_400(gw, mock, raw, param):
    r = post(gw.url("/v1/embeddings"), data=raw, headers={"Content-Type": "application/json"})
    err = assert_openai_error(r, 400, type_="invalid_request_error")
    if param is not None:
        assert err["param"] == param, err
    assert mock.requests == []


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=xyz", "application/jsonx"])
def test_other_content_type_is_415(gw, mock, ctype):
    r = post(gw.url("/v1/chat/completions"), data=json.dumps(chat_body()).encode(),
             headers={"Content-Type": ctype})
    assert_openai_error(r, 415)
    assert mock.requests == []
    assert_still_serving(gw, mock)


@pytest.mark.parametrize("ctype", [None, "application/json; charset=utf-8",
                                   "Application/JSON"])
def test_json_content_types_are_accepted(gw, mock, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = post(gw.url("/v1/chat/completions"), data=json.dumps(chat_body("ct ok")).encode(),
             headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: ct ok"
    [rec] = mock.requests
    assert rec.headers["content-type"].startswith("application/json")


def _big_body(size):
    """A valid chat request of exactly `size` bytes."""
    base = chat_body("")
    overhead = len(json.dumps(base).encode())
    base["messages"][0]["content"] = "x" * (size - overhead)
    raw = json.dumps(base).encode()
    assert len(raw) == size
    return raw


def _head(gw, path, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
            f"Content-Type: application/json\r\n{extra}")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_location_limit_is_413(gw, mock, chunked):
    raw = _big_body(LIMIT_V1 + 1)
    extra = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(raw)}\r\n"
    status, headers, body = raw_request(gw.port, _head(gw, "/v1/chat/completions", extra)
                                        + "\r\n", raw, chunked=chunked)
    assert status == 413, body[:300]
    assert headers.get("content-type", "").startswith("application/json")
    err = json.loads(body)["error"]
    assert err["code"] == "request_too_large"
    assert err["type"] == "invalid_request_error"
    assert mock.requests == []
    assert_still_serving(gw, mock)


def test_body_at_location_limit_is_accepted(gw, mock):
    raw = _big_body(LIMIT_V1)
    r = post(gw.url("/v1/chat/completions"), data=raw,
             headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    [rec] = mock.requests
    assert len(rec.body["messages"][0]["content"]) > LIMIT_V1 - 100


def test_limit_is_per_location(gw, mock):
    raw = _big_body(LIMIT_V1 * 2)
    r = post(gw.url("/classic/v1/chat/completions"), data=raw,
             headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_default_limit_is_4m(gw, mock, chunked):
    raw = _big_body(DEFAULT_LIMIT + 1024)
    extra = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(raw)}\r\n"
    status, _, body = raw_request(gw.port, _head(gw, "/classic/v1/chat/completions", extra)
                                  + "\r\n", raw, chunked=chunked)
    assert status == 413, body[:300]
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert mock.requests == []
    assert_still_serving(gw, mock, "/classic/v1/chat/completions")


def test_oversized_expect_100_continue_is_refused_before_the_body(gw, mock):
    """With Expect: 100-continue the client waits; the gateway must answer 413 at once
    instead of inviting a body it will refuse."""
    head = _head(gw, "/v1/chat/completions",
                 f"Content-Length: {LIMIT_V1 * 4}\r\nExpect: 100-continue\r\n") + "\r\n"
    status, _, body = raw_request(gw.port, head, b"", timeout=5)
    assert status == 413, body[:300]
    assert mock.requests == []
