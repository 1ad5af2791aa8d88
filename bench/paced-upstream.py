#!/usr/bin/env python3
"""A mock LLM upstream that paces its streams, for bench/run.

nginx answers at once, which measures the gateway's processing; real models
send a token every few tens or hundreds of milliseconds and keep a connection
(and, in httpd, a thread) busy for seconds. This server, on asyncio so that one
process holds thousands of streams at once, answers

  POST /paced/<K>/<GAP_MS>/.../chat/completions
      an OpenAI chat.completion.chunk stream: a role chunk, K content chunks
      GAP_MS apart (the first one GAP_MS after the headers), a finish chunk,
      a usage chunk and `data: [DONE]`;
  POST /paced/<K>/<GAP_MS>/.../v1/messages
      the Anthropic Messages stream of the same answer: message_start,
      content_block_start, ping, K content_block_delta events GAP_MS apart,
      content_block_stop, message_delta (end_turn), message_stop.

and, for the long streams of bench/run,

  POST /barrier/<N>/<STALL_S>
      arms a barrier: the next N paced streams send their headers and first
      events at once, then wait until all N have arrived (or none arrived for
      STALL_S seconds) before their content starts, spread evenly over one
      gap. So N streams are open at the same time for their whole length
      however slowly a loaded machine opens them.

The parameters are in the path because the gateway's backends have fixed
endpoints: bench/run writes one endpoint per (K, GAP_MS). The content chunks
carry the words of WORDS in turn, so a client can check the text it got
(long-streams.py, seq-client.py --stream). Each event is one HTTP chunk and is
written on its own, so every event arrives in its own read when GAP_MS > 0
and the reader keeps up. Chunks are scheduled on absolute times (start +
(i + 1) x GAP_MS), so a loaded machine delays them without stretching the
whole stream.

Keep-alive, Content-Length or chunked request bodies, Expect: 100-continue.
Loopback only. Standard library only. Exits after --lifetime seconds at most.

usage: paced-upstream.py --port P [--lifetime S]
"""

import argparse
import asyncio
import json
import re
import resource
import sys

WORDS = ["Spring", " and", " early", " autumn", " are", " best;", " skip", " the", " car."]
MAX_CHUNKS = 100000
MAX_GAP_MS = 10000
MAX_REQUEST = 1 << 20
PATH_RE = re.compile(r"^/paced/(\d+)/(\d+)(/.*)$")
BARRIER_RE = re.compile(r"^/barrier/(\d+)/(\d+)$")
MODEL = "gpt-4o-mini-2024-07-18"


def word(i):
    return WORDS[i % len(WORDS)]


def data_event(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def named_event(name, obj):
    return b"event: " + name.encode() + b"\n" + data_event(obj)


def openai_chunk(delta, finish=None):
    return data_event({"id": "chatcmpl-paced", "object": "chat.completion.chunk",
                       "created": 1700000000, "model": MODEL,
                       "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish}]})


def openai_stream(k):
    """(head events, content event of index i, tail events)."""
    head = [openai_chunk({"role": "assistant", "content": ""})]
    tail = [openai_chunk({}, "stop"),
            data_event({"id": "chatcmpl-paced", "object": "chat.completion.chunk",
                        "created": 1700000000, "model": MODEL, "choices": [],
                        "usage": {"prompt_tokens": 48, "completion_tokens": k,
                                  "total_tokens": 48 + k}}),
            b"data: [DONE]\n\n"]
    return head, lambda i: openai_chunk({"content": word(i)}), tail


def anthropic_stream(k):
    head = [named_event("message_start", {
                "type": "message_start",
                "message": {"id": "msg_paced", "type": "message", "role": "assistant",
                            "model": "claude-bench", "content": [], "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": 48, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 0, "output_tokens": 1}}}),
            named_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}}),
            named_event("ping", {"type": "ping"})]
    tail = [named_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            named_event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "end_turn",
                                                    "stop_sequence": None},
                                          "usage": {"output_tokens": k}}),
            named_event("message_stop", {"type": "message_stop"})]

    def content(i):
        return named_event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": word(i)}})
    return head, content, tail


def http_chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def simple_answer(status, text):
    body = text.encode()
    return b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(), len(body), body)


class Barrier:
    """Holds the content of the next N streams until all N are open."""

    def __init__(self):
        self.want = 0
        self.stall = 0
        self.waiting = []
        self.timer = None

    def arm(self, n, stall):
        self.release()
        self.want = n
        self.stall = stall

    def join(self, conn):
        """True when conn must wait for the release (which calls conn.begin)."""
        if not self.want:
            return False
        self.waiting.append(conn)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if len(self.waiting) >= self.want:
            self.release()
        else:
            self.timer = asyncio.get_running_loop().call_later(self.stall, self.release)
        return True

    def release(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiting, self.waiting, self.want = self.waiting, [], 0
        now = asyncio.get_running_loop().time()
        for j, conn in enumerate(waiting):
            # Spread over one gap, so that the chunks do not all fall due at once.
            conn.begin(now + conn.gap * j / len(waiting))


BARRIER = Barrier()


class Conn(asyncio.Protocol):
    """One client connection: requests one after the other (keep-alive).

    A protocol with timers rather than a coroutine per stream: thousands of
    streams share the CPUs with the httpd under test, so each chunk should
    cost a timer callback and a send, no more.
    """

    def __init__(self):
        self.transport = None
        self.buf = b""
        self.busy = False  # a stream is being sent
        self.continued = False  # 100 Continue sent for the pending request
        self.timer = None
        self.close_after = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if len(self.buf) > MAX_REQUEST:
            self.transport.close()
            return
        if not self.busy:
            try:
                self.next_request()
            except ValueError:
                self.transport.close()

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()

    def next_request(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue" and not self.continued:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.continued = True
        body_end = self.body_end(end + 4, headers)
        if body_end is None:
            return  # the body is not all here yet
        self.buf = self.buf[body_end:]
        self.continued = False
        self.close_after = headers.get("connection", "").lower() == "close"
        m = BARRIER_RE.match(target)
        if m and method == "POST":
            BARRIER.arm(int(m.group(1)), int(m.group(2)))
            self.transport.write(simple_answer("200 OK", "armed\n"))
            self.finished()
            return
        m = PATH_RE.match(target.split("?", 1)[0])
        make = None
        if (m and method == "POST" and int(m.group(1)) <= MAX_CHUNKS
                and int(m.group(2)) <= MAX_GAP_MS):
            if m.group(3).endswith("/chat/completions"):
                make = openai_stream
            elif m.group(3).endswith("/v1/messages"):
                make = anthropic_stream
        if make is None:
            self.transport.write(simple_answer("404 Not Found", "no such paced stream\n"))
            self.finished()
            return
        self.start_stream(int(m.group(1)), int(m.group(2)) / 1000.0, make)

    def body_end(self, start, headers):
        """Offset just past the request body in buf, or None while incomplete."""
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            end = start + int(headers.get("content-length", "0"))
            return end if len(self.buf) >= end else None
        pos = start
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i < 0:
                return None
            size = int(self.buf[pos:i].split(b";")[0], 16)
            pos = i + 2 + size + 2
            if len(self.buf) < pos:
                return None
            if size == 0:
                return pos

    def start_stream(self, k, gap, make):
        self.busy = True
        head, self.content, self.tail = make(k)
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"".join(http_chunk(e) for e in head))
        self.k = k
        self.gap = gap
        if not BARRIER.join(self):
            self.begin(asyncio.get_running_loop().time())

    def begin(self, start):
        """The content starts: chunk i falls due at start + (i + 1) x gap."""
        self.start = start
        self.send(0)

    def send(self, i):
        """Send content chunks from i on: at once without a gap, else one per timer."""
        self.timer = None
        if self.transport.is_closing():
            return
        while i < self.k:
            if self.gap:
                loop = asyncio.get_running_loop()
                due = self.start + (i + 1) * self.gap
                if due > loop.time():
                    self.timer = loop.call_at(due, self.send, i)
                    return
            # Each chunk in its own write: its own segment when the peer keeps up.
            self.transport.write(http_chunk(self.content(i)))
            i += 1
        self.transport.write(b"".join(http_chunk(e) for e in self.tail) + b"0\r\n\r\n")
        self.finished()

    def finished(self):
        self.busy = False
        if self.close_after:
            self.transport.close()
        elif self.buf:
            self.next_request()


async def main_async(args):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", args.port, backlog=4096)
    async with server:
        await asyncio.sleep(args.lifetime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lifetime", type=float, default=7200, help="seconds before it exits")
    args = ap.parse_args()
    # One socket per stream held open: lift the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # an unlimited hard limit: keep the soft one
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
