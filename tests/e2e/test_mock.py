"""The mock provider is only useful if it refuses what api.openai.com refuses: these checks
keep it strict (no httpd needed). test_sdk.py also runs the official SDK against it."""

import json

import requests
import pytest

from harness import read_sse
from mock_openai import DEFAULT_KEY, Fault, mask_key

H = {"Authorization": f"Bearer {DEFAULT_KEY}", "Content-Type": "application/json"}
CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}


def call(mock, body, headers=H, path="/v1/chat/completions", **kw):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(mock.base + path, data=data, headers=headers, timeout=10, **kw)


def test_stream_options_without_stream_is_rejected(mock):
    r = call(mock, dict(CHAT, stream_options={"include_usage": True}))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "stream_options"


def test_wrong_key_is_401_with_masked_key(mock):
    r = call(mock, CHAT, headers=dict(H, Authorization="Bearer sk-wrong-0123456789"))
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "invalid_api_key"
    assert mask_key("sk-wrong-0123456789") in err["message"]
    assert "sk-wrong-0123456789" not in err["message"]


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id"),
    ({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]},
     "stream"),
])
def test_schema_errors(mock, body, param):
    r = call(mock, body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_content_type_and_json_are_required(mock):
    assert call(mock, CHAT, headers=dict(H, **{"Content-Type": "text/plain"})).status_code == 400
    assert call(mock, b"{not json").status_code == 400


def test_unknown_path_is_404(mock):
    assert call(mock, CHAT, path="/v1/chat/completion").status_code == 404
    assert mock.requests[-1].status == 404


def test_stream_shape_and_usage(mock):
    r = call(mock, dict(CHAT, stream=True, stream_options={"include_usage": True}), stream=True)
    res = read_sse(r)
    assert res.done
    assert res.chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                     "refusal": None}
    assert res.chunks[-1]["choices"] == [] and res.chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in res.chunks[:-1])


def test_faults_are_consumed_in_order(mock):
    mock.script(Fault(status=503), Fault(content="second"))
    assert call(mock, CHAT).status_code == 503
    assert call(mock, CHAT).json()["choices"][0]["message"]["content"] == "second"
    assert call(mock, CHAT).json()["choices"][0]["message"]["content"] == "echo: hi"
    assert [r.status for r in mock.requests] == [503, 200, 200]


def test_continuation_rejoins_the_answer():
    from mock_openai import continuation
    assert continuation("echo: one two", "echo: one") == (" two", [" two"])
    assert continuation("echo:\n\nnext line", "echo:") == ("\n\nnext line", ["\n\nnext", " line"])
    assert continuation("echo: one", "other") is None


def test_garbage_after_sends_only_garbage(mock):
    mock.script(Fault(garbage_after=2))
    r = call(mock, dict(CHAT, stream=True), stream=True)
    raw = r.content.decode()
    good = [e for e in raw.split("\n\n") if e.startswith("data: {") and e.endswith("}")]
    bad = [e for e in raw.split("\n\n") if e.startswith('data: {"id":"chatcmpl-broken"')]
    assert len(good) == 2 and len(bad) >= 3, raw
    assert "[DONE]" not in raw


def test_pings_while_pausing(mock):
    mock.script(Fault(first_event_delay=0.5, ping_every=0.1))
    r = call(mock, dict(CHAT, stream=True), stream=True)
    raw = r.content.decode()
    assert raw.count(": keep-alive") >= 3, raw
    assert raw.endswith("data: [DONE]\n\n")


def test_anthropic_and_mistral_mocks_continue_a_prefill():
    from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
    from mock_dialects import MISTRAL_KEY, MockMistral
    with MockAnthropic() as m:
        body = {"model": "claude-mock", "max_tokens": 50, "messages": [
            {"role": "user", "content": "one two three"},
            {"role": "assistant", "content": "echo: one"}]}
        r = requests.post(m.url + "/v1/messages", json=body, timeout=10, headers={
            "x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"})
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == " two three"
        body["messages"][-1]["content"] = "echo: one "  # trailing whitespace: refused
        r = requests.post(m.url + "/v1/messages", json=body, timeout=10, headers={
            "x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"})
        assert r.status_code == 400
    with MockMistral() as m:
        body = {"model": "mistral-small-latest", "messages": [
            {"role": "user", "content": "one two three"},
            {"role": "assistant", "content": "echo: one", "prefix": True}]}
        r = requests.post(m.url + "/chat/completions", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {MISTRAL_KEY}"})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == " two three"
        del body["messages"][-1]["prefix"]  # a trailing assistant without prefix: refused
        r = requests.post(m.url + "/chat/completions", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {MISTRAL_KEY}"})
        assert r.status_code == 400
