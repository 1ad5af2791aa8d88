"""Size limits: LLMGatewayMaxUpstreamBody on the provider's answer.

Gateway `limits`:  /v1 has `LLMGatewayMaxUpstreamBody 64K`; /classic keeps the default
                   upstream limit (16M).
Gateway `limits-server`: `LLMGatewayMaxUpstreamBody 64K` at server level, inherited by /v1 and
                   raised to 1M in /classic.
"""

import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post
from mock_openai import DEFAULT_KEY, Fault

LIMIT = 64 * 1024
BIG = 100_000  # characters of answer: a body well over 64K, far under 16M
SMALL = 30_000  # well under 64K


def _yaml(mock):
    return harness.gateway_yaml(
        backends=[harness.openai_backend("primary", mock.url, DEFAULT_KEY,
                                         defaultModel="gpt-mock", maxRetries=0)],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("classic-chat", "/classic/v1/chat/completions", "primary")])


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    return start_gateway(request, "limits", _yaml(mock),
                         v1_extra="LLMGatewayMaxUpstreamBody 64K")


@pytest.fixture(scope="module")
def gw_server(request, module_so, mock):
    return start_gateway(request, "limits-server", _yaml(mock),
                         server_extra="LLMGatewayMaxUpstreamBody 64K",
                         classic_extra="LLMGatewayMaxUpstreamBody 1M")


def _content(r):
    return r.json()["choices"][0]["message"]["content"]


# -- LLMGatewayMaxUpstreamBody ------------------------------------------------------------


def test_answer_over_location_limit_is_502(gw, mock):
    mock.script(Fault(content="x" * BIG))
    r = post(gw.url("/v1/chat/completions"), chat_body("big"))
    err = assert_openai_error(r, 502, code="bad_gateway", type_="server_error")
    assert "x" * 100 not in err["message"], err
    assert len(mock.requests) == 1  # maxRetries 0: one attempt, refused whole


def test_same_answer_passes_under_the_default(gw, mock):
    mock.script(Fault(content="x" * BIG))
    r = post(gw.url("/classic/v1/chat/completions"), chat_body("big"))
    assert r.status_code == 200, r.text[:300]
    assert _content(r) == "x" * BIG


def test_answer_under_the_limit_passes(gw, mock):
    mock.script(Fault(content="y" * SMALL))
    r = post(gw.url("/v1/chat/completions"), chat_body("small"))
    assert r.status_code == 200, r.text[:300]
    assert _content(r) == "y" * SMALL


def test_streamed_answer_is_not_buffered_so_not_limited(gw, mock):
    words = [f"{i:06d}{'z' * 63} " for i in range(BIG // 70)]
    mock.script(Fault(chunks=words))
    r = post(gw.url("/v1/chat/completions"), chat_body("stream", stream=True), stream=True)
    sse = harness.read_sse(r)
    assert sse.done, sse.events[-3:]
    assert sse.text == "".join(words)
    assert len(sse.text) > LIMIT


def test_server_level_limit_is_inherited_and_overridden(gw_server, mock):
    mock.script(Fault(content="x" * BIG), Fault(content="x" * BIG))
    r = post(gw_server.url("/v1/chat/completions"), chat_body("big"))
    assert_openai_error(r, 502, code="bad_gateway")
    r = post(gw_server.url("/classic/v1/chat/completions"), chat_body("big"))
    assert r.status_code == 200, r.text[:300]
    assert _content(r) == "x" * BIG
