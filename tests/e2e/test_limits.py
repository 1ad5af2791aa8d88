"""Size limits: LLMGatewayMaxUpstreamBody on the provider's answer, and a request body
reader that does not trust Content-Length with memory.

Gateway `limits`:  /v1 has `LLMGatewayMaxUpstreamBody 64K`; /classic keeps the default
                   upstream limit (16M) and has `LLMGatewayMaxBody 2G` (plus `LimitRequestBody
                   0`, so that httpd's own 1 GiB default does not answer first).
Gateway `limits-server`: `LLMGatewayMaxUpstreamBody 64K` at server level, inherited by /v1 and
                   raised to 1M in /classic.
"""

import os
import socket
import time
from pathlib import Path

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
                         v1_extra="LLMGatewayMaxUpstreamBody 64K",
                         classic_extra="LLMGatewayMaxBody 2G\nLimitRequestBody 0")


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


# -- The request body reader ------------------------------------------------------------------

CLAIM = 2_000_000_000  # bytes each connection announces
CONNECTIONS = 8


def _vm_size_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _children_vm(h):
    out = {}
    for pid in harness._children(h.pid):
        kb = _vm_size_kb(pid)
        if kb is not None:
            out[pid] = kb
    return out


def _server_ends(port, client_ports):
    """Socket inodes of the server ends of the loopback connections from client_ports."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        lport, rport = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
        if lport == port and rport in client_ports:
            found[rport] = f[9]
    return found


def _held_inodes(pids):
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    return inodes


def _wait_all_taken(h, socks, timeout=20.0):
    """Until a gateway child holds the server end of every connection (each request is then
    being read: its head is in, the handler runs right after). Bounded."""
    ports = {s.getsockname()[1] for s in socks}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ends = _server_ends(h.port, ports)
        if len(ends) == len(ports) and \
                set(ends.values()) <= _held_inodes(harness._children(h.pid)):
            return True
        time.sleep(0.05)
    return False


def test_content_length_claims_do_not_reserve_memory(gw, mock):
    assert post(gw.url("/classic/v1/chat/completions"), chat_body("warm up")).status_code == 200
    before = _children_vm(gw)
    assert before, "no gateway child to measure"
    fresh_child = min(before.values())  # the size of a child that has done nothing much
    socks = []
    try:
        for i in range(CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            socks.append(s)
            s.sendall((f"POST /classic/v1/chat/completions HTTP/1.1\r\n"
                       f"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       f"X-Test-Id: claim-{i}\r\nContent-Length: {CLAIM}\r\n\r\n"
                       f'{{"model": "gpt-mock", "messages": [').encode())
        assert _wait_all_taken(gw, socks), "the gateway did not take every connection"
        # Measured several times over a second: the old reader's apr_palloc(Content-Length + 1)
        # shows at once (+2 GB of address space per connection); the new one's first buffer is
        # at most 256 KiB. Other growth (a malloc arena of 64 MB per new thread, at most 16)
        # stays far below one claim.
        worst_child = worst_total = 0
        for _ in range(10):
            now = _children_vm(gw)
            growth = {pid: kb - before.get(pid, fresh_child) for pid, kb in now.items()}
            worst_child = max(worst_child, max(growth.values()))
            worst_total = max(worst_total, sum(g for g in growth.values() if g > 0))
            time.sleep(0.1)
        claim_kb = CLAIM // 1024
        assert worst_child < claim_kb // 2, \
            f"a child grew by {worst_child} KiB while {CONNECTIONS} clients claimed " \
            f"{claim_kb} KiB each"
        assert worst_total < CONNECTIONS * claim_kb // 4, \
            f"the children grew by {worst_total} KiB together"
    finally:
        for s in socks:
            s.close()
    # The server still answers, and every connection had reached the gateway.
    r = post(gw.url("/classic/v1/chat/completions"), chat_body("still there?"))
    assert r.status_code == 200, r.text
    assert _content(r) == "echo: still there?"
    for i in range(CONNECTIONS):
        e = gw.access_entry(f"claim-{i}", timeout=15)
        assert e["route"] == "classic-chat", e
        assert e["status"] == "400", e
