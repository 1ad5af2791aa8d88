"""Access-log integration (the LLMGW_* environment variables printed with %{VAR}e) and the
x-llmgw-* response headers, on success and on failures."""

import re

import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post, read_sse
from mock_openai import DEFAULT_KEY, Fault

pytestmark = pytest.mark.allow_log()

USAGE = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    ob = harness.openai_backend
    fast = dict(firstByteTimeout="1s", idleTimeout="1s", timeout="5s", connectTimeout="500ms")
    yaml = harness.gateway_yaml(
        backends=[ob("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-default",
                     maxRetries=1, **fast),
                  ob("dead", f"http://127.0.0.1:{harness.free_port()}/v1", DEFAULT_KEY,
                     defaultModel="gpt-default", maxRetries=0, **fast)],
        routes=[harness.route("chat-route", "/v1/chat/completions", "primary"),
                harness.route("embed-route", "/v1/embeddings", "primary"),
                harness.route("models-route", "/v1/models", "primary"),
                harness.route("dead-route", "/v1/dead/chat/completions", "dead")])
    return start_gateway(request, "logging", yaml)


def is_int(s):
    return re.fullmatch(r"\d+", s or "") is not None


def headers_ok(r, backend, attempts):
    assert r.headers["x-llmgw-backend"] == backend, r.headers
    assert r.headers["x-llmgw-attempts"] == str(attempts), r.headers
    assert float(r.headers["x-llmgw-overhead-ms"]) >= 0


def test_success_non_streaming(gw, mock):
    mock.script(Fault(usage=USAGE))
    r = post(gw.url("/v1/chat/completions"), chat_body("log me", model="gpt-explicit"))
    assert r.status_code == 200
    headers_ok(r, "primary", 1)
    e = gw.access_entry(r.test_id)
    assert e["status"] == "200"
    assert e["route"] == "chat-route"
    assert e["backend"] == "primary"
    assert e["model"] == "gpt-explicit"
    assert e["attempts"] == "1"
    assert is_int(e["upstream_ms"]), e
    assert e["prompt_tokens"] == "11"
    assert e["completion_tokens"] == "22"
    assert e["error"] == "-"


def test_model_logged_is_the_default_model_when_none_given(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body("default", model=None))
    assert r.status_code == 200
    assert gw.access_entry(r.test_id)["model"] == "gpt-default"


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_tokens_are_logged_even_when_the_client_did_not_ask(gw, mock,
                                                                      include_usage):
    mock.script(Fault(usage=USAGE))
    body = chat_body("stream log", stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    r = post(gw.url("/v1/chat/completions"), body, stream=True)
    res = read_sse(r)
    assert res.done
    headers_ok(r, "primary", 1)
    e = gw.access_entry(r.test_id)
    assert e["status"] == "200"
    assert (e["prompt_tokens"], e["completion_tokens"]) == ("11", "22")
    assert e["error"] == "-"


def test_upstream_time_is_logged(gw, mock):
    mock.script(Fault(delay=0.5))
    r = post(gw.url("/v1/chat/completions"), chat_body("slow"))
    assert r.status_code == 200
    e = gw.access_entry(r.test_id)
    assert 450 <= int(e["upstream_ms"]) < 3000, e
    assert float(r.headers["x-llmgw-overhead-ms"]) < 400


def test_retry_is_logged_as_two_attempts(gw, mock):
    mock.script(Fault(status=500), Fault(usage=USAGE))
    r = post(gw.url("/v1/chat/completions"), chat_body("retry"))
    assert r.status_code == 200
    headers_ok(r, "primary", 2)
    e = gw.access_entry(r.test_id)
    assert e["attempts"] == "2"
    assert e["prompt_tokens"] == "11"  # failed attempts are not counted as usage


def test_embeddings_are_logged(gw, mock):
    r = post(gw.url("/v1/embeddings"), {"model": "embed-x", "input": "three little words"})
    assert r.status_code == 200
    e = gw.access_entry(r.test_id)
    assert (e["route"], e["backend"], e["model"]) == ("embed-route", "primary", "embed-x")
    assert e["prompt_tokens"] == str(r.json()["usage"]["prompt_tokens"])


def test_models_route_is_logged_without_upstream(gw, mock):
    r = harness.get(gw.url("/v1/models"))
    assert r.status_code == 200
    e = gw.access_entry(r.test_id)
    assert e["route"] == "models-route"
    assert e["upstream_ms"] in ("-", "0")


def test_exhausted_upstream_errors_are_logged(gw, mock):
    mock.script(Fault(status=503), Fault(status=503))
    r = post(gw.url("/v1/chat/completions"), chat_body("down"))
    assert_openai_error(r, 503, code="upstream_unavailable")
    headers_ok(r, "primary", 2)
    e = gw.access_entry(r.test_id)
    assert e["status"] == "503"
    assert e["backend"] == "primary"
    assert e["attempts"] == "2"
    assert "503" in e["error"], e
    assert e["prompt_tokens"] in ("-", "0") and e["completion_tokens"] in ("-", "0")


def test_upstream_client_error_is_logged(gw, mock):
    mock.script(Fault(status=400))
    r = post(gw.url("/v1/chat/completions"), chat_body("bad"))
    assert r.status_code == 400
    headers_ok(r, "primary", 1)
    e = gw.access_entry(r.test_id)
    assert e["status"] == "400"
    assert "400" in e["error"], e


def test_connect_error_is_logged(gw, mock):
    r = post(gw.url("/v1/dead/chat/completions"), chat_body("dead"))
    assert_openai_error(r, 502, code="bad_gateway")
    headers_ok(r, "dead", 1)
    e = gw.access_entry(r.test_id)
    assert (e["status"], e["route"], e["backend"]) == ("502", "dead-route", "dead")
    assert "connect" in e["error"], e


def test_timeout_is_logged(gw, mock):
    mock.script(Fault(delay=3), Fault(delay=3))
    r = post(gw.url("/v1/chat/completions"), chat_body("slow"))
    assert_openai_error(r, 504, code="upstream_timeout")
    e = gw.access_entry(r.test_id)
    assert e["status"] == "504"
    assert "timeout" in e["error"], e


def test_failed_stream_is_logged_as_an_error(gw, mock):
    mock.script(Fault(stall_after=3))
    r = post(gw.url("/v1/chat/completions"), chat_body("stall", stream=True), stream=True)
    res = read_sse(r)
    assert not res.done and res.errors
    e = gw.access_entry(r.test_id)
    assert e["status"] == "200"  # the status line was long gone
    assert e["error"] != "-", e


def test_validation_error_is_logged_with_its_status(gw, mock):
    r = post(gw.url("/v1/chat/completions"), {"model": "m", "messages": []})
    assert r.status_code == 400
    e = gw.access_entry(r.test_id)
    assert e["status"] == "400"
    assert e["route"] == "chat-route"
    assert e["attempts"] in ("-", "0")


def test_routing_decision_is_logged_at_debug(gw, mock):
    mark = gw.log_mark()
    r = post(gw.url("/v1/chat/completions"), chat_body("debug me", model="gpt-debug"))
    assert r.status_code == 200
    lines = [ln for ln in gw.error_log_text(mark).splitlines() if "[llmgw:debug]" in ln]
    assert any("chat-route" in ln and "primary" in ln for ln in lines), lines
    assert all(re.search(r"LLMGW\d{5}: ", ln) for ln in lines), lines
