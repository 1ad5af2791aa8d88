"""Provider keys never leave the gateway: not in responses (body or headers), not in the
access log, not in the error log even at LogLevel llmgw:trace8, on success and error paths."""

import re
import time

import pytest

import harness
from conftest import start_gateway
from harness import chat_body, post, read_sse
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI, openai_error

GOOD_KEY = DEFAULT_KEY  # sk-test-SECRET-abc123
REJECTED_KEY = "sk-test-SECRET-rejected-zz98"
MARKER = "SECRET-"  # in both keys, nowhere else
ORG = "org-SECRET-org-77"  # an organisation id is not a secret, but must not be echoed either

pytestmark = pytest.mark.allow_log()


@pytest.fixture(scope="module")
def mock():
    m = MockOpenAI(keys=(GOOD_KEY,), leak_key_in_401=True).start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    ob = harness.openai_backend
    fast = dict(maxRetries=0, firstByteTimeout="1s", idleTimeout="1s", timeout="5s",
                connectTimeout="500ms")
    yaml = harness.gateway_yaml(
        backends=[ob("good", mock.url, GOOD_KEY, defaultModel="gpt-mock", **fast),
                  ob("rejected", mock.url, REJECTED_KEY, defaultModel="gpt-mock", **fast),
                  ob("dead", f"http://127.0.0.1:{harness.free_port()}/v1", GOOD_KEY,
                     defaultModel="gpt-mock", **fast)],
        routes=[harness.route("good", "/v1/chat/completions", "good"),
                harness.route("emb", "/v1/embeddings", "good"),
                harness.route("rejected", "/v1/rejected/chat/completions", "rejected"),
                harness.route("dead", "/v1/dead/chat/completions", "dead")])
    return start_gateway(request, "secrets", yaml, log_level="warn llmgw:trace8")


def assert_no_secret(text, where):
    for needle in (GOOD_KEY, REJECTED_KEY, MARKER, "abc123", "rejected-zz98"):
        assert needle not in text, f"{needle!r} leaked into {where}: ...{_around(text, needle)}..."


def _around(text, needle):
    i = text.find(needle)
    return text[max(0, i - 120):i + 120]


def assert_response_clean(r, body_text):
    assert_no_secret(body_text, "response body")
    for k, v in r.headers.items():
        assert_no_secret(f"{k}: {v}", "response headers")


def assert_logs_clean(gw):
    time.sleep(0.2)  # the access log line is written after the response
    assert_no_secret(gw.access_log.read_text(), "access log")
    assert_no_secret(gw.error_log_text(), "error log")


def _non_stream(gw, path):
    r = post(gw.url(path), chat_body("keep it secret"))
    return r, r.text


def _stream(gw, path):
    r = post(gw.url(path), chat_body("keep it secret", stream=True), stream=True)
    if r.headers.get("Content-Type", "").startswith("text/event-stream"):
        return r, "\n".join(read_sse(r).data)
    return r, r.text


SCENARIOS = [
    # id, path, faults, expected status
    ("success", "/v1/chat/completions", [], 200),
    ("upstream-401-echoing-the-key", "/v1/rejected/chat/completions", [], 502),
    ("upstream-500-quoting-the-key", "/v1/chat/completions",
     [Fault(status=500, body=openai_error(f"internal failure for key {GOOD_KEY}",
                                          "server_error"))], 503),
    ("upstream-400-quoting-the-key", "/v1/chat/completions",
     [Fault(status=400, body=openai_error(f"bad request made with key {GOOD_KEY}"))], 400),
    ("connect-refused", "/v1/dead/chat/completions", [], 502),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("path,faults,status", [s[1:] for s in SCENARIOS],
                         ids=[s[0] for s in SCENARIOS])
def test_key_never_leaks(gw, mock, path, faults, status, streaming):
    mock.script(*faults)
    r, text = (_stream if streaming else _non_stream)(gw, path)
    assert r.status_code == status, text[:300]
    assert_response_clean(r, text)
    assert_logs_clean(gw)


def test_key_never_leaks_from_a_failed_stream(gw, mock):
    mock.script(Fault(stall_after=3))
    r, text = _stream(gw, "/v1/chat/completions")
    assert r.status_code == 200
    assert '"error"' in text
    assert_response_clean(r, text)
    assert_logs_clean(gw)


def test_key_never_leaks_from_embeddings(gw, mock):
    r = post(gw.url("/v1/embeddings"), {"model": "e", "input": "secret?"})
    assert r.status_code == 200
    assert_response_clean(r, r.text)
    assert_logs_clean(gw)


def test_llmgw_logging_was_really_on(gw, mock):
    """The log checks above mean something only if llmgw logged these requests (at debug
    or trace level; everything down to trace8 is enabled here)."""
    post(gw.url("/v1/rejected/chat/completions"), chat_body("log me"))
    lines = [ln for ln in gw.error_log_text().splitlines()
             if re.search(r"\[llmgw:(debug|trace\d)\]", ln) and '"rejected"' in ln]
    assert lines, "no llmgw debug/trace line about the rejected backend"


def test_configtest_output_has_no_key(gw):
    r = gw.configtest()
    assert r.returncode == 0, r.stdout + r.stderr
    assert_no_secret(r.stdout + r.stderr, "apache2 -t output")
