"""Upstream keep-alive: sequential requests reuse upstream connections; a connection the
provider dropped while idle is replaced without the client noticing."""

import requests
import pytest

import harness
from conftest import start_gateway
from harness import chat_body, post, read_sse
from mock_openai import DEFAULT_KEY, Fault

# Streams, timeouts, workers and restarts: also run under worker and prefork.
pytestmark = pytest.mark.mpm

N = 24


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    yaml = harness.gateway_yaml(
        backends=[harness.openai_backend("primary", mock.url, DEFAULT_KEY,
                                         defaultModel="gpt-mock", maxRetries=0)],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("embeddings", "/v1/embeddings", "primary")])
    return start_gateway(request, "keepalive", yaml)


def test_sequential_requests_reuse_upstream_connections(gw, mock):
    with requests.Session() as s:
        for i in range(N):
            r = post(gw.url("/v1/chat/completions"), chat_body(f"req {i}"), session=s)
            assert r.status_code == 200, r.text
    assert len(mock.requests) == N
    assert mock.connections <= N // 6, f"{mock.connections} upstream connections for {N}"


def test_sequential_streams_reuse_upstream_connections(gw, mock):
    with requests.Session() as s:
        for i in range(N):
            r = post(gw.url("/v1/chat/completions"), chat_body(f"s {i}", stream=True),
                     session=s, stream=True)
            assert r.status_code == 200
            assert read_sse(r).done
    assert mock.connections <= N // 6, f"{mock.connections} upstream connections for {N}"


def test_chat_and_embeddings_share_connections(gw, mock):
    with requests.Session() as s:
        for i in range(N // 2):
            assert post(gw.url("/v1/chat/completions"), chat_body(f"c {i}"),
                        session=s).status_code == 200
            assert post(gw.url("/v1/embeddings"), {"model": "e", "input": f"e {i}"},
                        session=s).status_code == 200
    assert mock.connections <= N // 6, mock.connections


def test_new_client_connections_still_reuse_upstream(gw, mock):
    """Each request on a fresh client connection (possibly another worker thread or
    process): upstream connections follow concurrency, not request count."""
    for i in range(N):
        r = post(gw.url("/v1/chat/completions"), chat_body(f"fresh {i}"),
                 headers={"Connection": "close"})
        assert r.status_code == 200
    assert mock.connections <= N // 3, mock.connections


@pytest.mark.parametrize("streaming", [False, True])
def test_connection_closed_by_provider_is_replaced(gw, mock, streaming):
    with requests.Session() as s:
        mock.script(Fault(close_after=True))
        r = post(gw.url("/v1/chat/completions"), chat_body("first", stream=streaming),
                 session=s, stream=streaming)
        assert r.status_code == 200
        if streaming:
            assert read_sse(r).done
        # Dropped while idle: the mock has shut the connection down before the next
        # request. (Were the next request faster than the mock's close, the close would
        # race the send, and a reused connection dying under a sent request is an
        # attempt that failed, by design: llmgw_upstream.h.)
        assert harness.wait_until(lambda: mock.requests[-1].t_end is not None)
        for i in range(3):
            r = post(gw.url("/v1/chat/completions"), chat_body(f"after close {i}"), session=s)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == f"echo: after close {i}"
            assert r.headers["x-llmgw-attempts"] == "1"
    assert len(mock.requests) == 4
