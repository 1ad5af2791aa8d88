"""The chaos upstream: the e2e provider mocks, with every answer mutated on its way out.

`ChaosMixin` goes in front of a mock class of tests/e2e (MockOpenAI, MockAzure, MockLlama,
MockMistral, MockAnthropic, MockGemini). The mock still validates the gateway's request
and builds its realistic answer; the mixin overrides the four methods every mock writes
through (send_bytes, start_stream, write_chunk, end_chunks) and, for a share of the
attempts, breaks what goes out:

  before the answer   drop the connection, answer late (past firstByteTimeout), answer
                      with bytes that are no HTTP
  JSON answers        another status (unknown ones too: 418, 499, 520...), another or no
                      Content-Type, structural JSON changes (wrong types, absurd numbers,
                      deep nesting, huge strings), byte changes (truncation, NULs, invalid
                      UTF-8, BOM, UTF-16), huge bodies, garbage retry hints, a
                      Content-Length that lies, the credential echoed in an error message
  streams             another status or content type, per-event changes (the JSON ones,
                      dropped, duplicated, merged, renamed, split over data: lines), huge
                      lines, an early [DONE], junk after the end, CR or CRLF line ends,
                      a stall, a cut, a clean but early end

Which attempt is mutated, and how, is decided by a `random.Random` seeded from the chaos
marker the fuzzer puts into every request ("chaos-<seed>-<index>", which every translator
forwards in the prompt or the embedding input) and the attempt's number at this mock, so
a run can be replayed request by request. Every decision is logged under the marker.
"""

import hashlib
import json
import random
import re
import socket
import threading

import chaos_mutate as cm

MARKER = re.compile(rb"chaos-(\d+)-(\d+)")

# Statuses an upstream may answer with: known, odd, and ones no client should ever see.
ODD_STATUSES = [200, 201, 202, 203, 204, 206, 299, 301, 302, 304, 307, 400, 401, 402, 403, 404,
                405, 406, 408, 409, 410, 413, 415, 418, 420, 422, 425, 429, 431, 451, 498, 499,
                500, 501, 502, 503, 504, 505, 507, 520, 522, 529, 599]
ODD_TYPES = [None, "text/html", "text/plain", "application/json; charset=utf-16",
             "text/event-stream", "application/octet-stream", "application/problem+json",
             "application/json;charset=UTF-8", "APPLICATION/JSON", "json", ""]
RETRY_HINTS = ["0", "-1", "1.5", "99999999999999999999", "abc", "1e9", "",
               "Wed, 21 Oct 2015 07:28:00 GMT", "Thu, 01 Jan 2099 00:00:00 GMT", " 2 ", "0x10"]


class ChaosControl:
    """Shared by every chaos mock of a run: the seed, the mutation rate, the log."""

    def __init__(self, seed, rate=0.6, secrets=()):
        self.seed = seed
        self.rate = rate
        self.enabled = True
        self.secrets = list(secrets)
        self._lock = threading.Lock()
        self._attempts = {}
        self._log = {}

    def rng_for(self, mock, rec):
        m = MARKER.search(rec.raw or b"") or MARKER.search(rec.path.encode() + b"?" +
                                                            rec.query.encode())
        if m:
            marker = m.group(0).decode()
        else:
            digest = hashlib.sha256(rec.method.encode() + rec.path.encode() + (rec.raw or b""))
            marker = "nomark-" + digest.hexdigest()[:12]
        with self._lock:
            n = self._attempts.get((marker, mock), 0) + 1
            self._attempts[(marker, mock)] = n
        return random.Random(f"{self.seed}:{marker}:{mock}:{n}"), marker, n

    def note(self, marker, text):
        with self._lock:
            self._log.setdefault(marker, []).append(text)

    def log_of(self, marker):
        with self._lock:
            return list(self._log.get(marker, ()))


class _Attempt:
    """What the mixin decided for one upstream attempt (kept on the request handler)."""

    def __init__(self, rng, marker, n, mutate, who):
        self.rng = rng
        self.marker = marker
        self.n = n
        self.mutate = mutate
        self.who = who
        self.stream = None


class _StreamPlan:
    def __init__(self, rng):
        self.count = 0
        self.ended = False
        self.p_event = rng.choice([0.0, 0.05, 0.2, 0.5])
        self.eol = rng.choice([None] * 8 + ["\r", "\r\n"])
        self.split = rng.random() < 0.1
        self.stop_at = rng.choice([None] * 6 + [1, 2, 3, 5])
        self.abort_at = rng.choice([None] * 8 + [1, 2, 4])
        self.stall_at = rng.choice([None] * 9 + [1, 3])
        self.stall = rng.choice([0.3, 1.6])
        self.inject_at = rng.choice([None] * 5 + [1, 2, 3, 6])
        self.junk_after_end = rng.random() < 0.1


class ChaosMixin:
    """Put first in the bases of a mock class; `chaos` is the run's ChaosControl."""

    chaos = None

    def route(self, h, rec, fault):
        c = self.chaos
        rng, marker, n = c.rng_for(self.name, rec)
        rate = c.rate * (0.3 if rec.path == "/token" else 1.0)
        mutate = c.enabled and rng.random() < rate
        h._chaos = _Attempt(rng, marker, n, mutate, f"{self.name}#{n}")
        if mutate and rng.random() < 0.12:
            if self._before_answer(h, rec):
                return
        super().route(h, rec, fault)

    def _note(self, h, text):
        self.chaos.note(h._chaos.marker, f"{h._chaos.who} {h.command} {h.path[:80]}: {text}")

    def _before_answer(self, h, rec):
        """A fault before any answer; True when the attempt is over."""
        rng = h._chaos.rng
        op = rng.randrange(4)
        if op == 0:
            self._note(h, "connection dropped before headers")
            self._abort(h, rec, "dropped")
            return True
        if op == 1:
            delay = rng.choice([0.3, 2.5])
            self._note(h, f"answer delayed {delay}s")
            if self._pause(h, delay):
                h.close_connection = True
                return True
            return False
        if op == 2:
            self._note(h, "bytes that are no HTTP")
            h.wfile.write(rng.choice([b"HELLO\r\n\r\n", b"HTTP/1.1 200\r\n\r\n{}",
                                      b"HTTP/1.1 abc OK\r\n\r\n", b"\0\0\0\0",
                                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                      b"Content-Length: 9\r\n\r\n{}{}{"]))
            self._abort(h, rec, "dropped")
            return True
        self._note(h, "HTTP/1.0-style answer, body until close")
        h._chaos.http10 = True
        return False

    # -- JSON answers ----------------------------------------------------------------

    def send_bytes(self, h, rec, status, body, content_type="application/json", headers=None,
                   fault=None):
        a = getattr(h, "_chaos", None)
        if a is None or not a.mutate:
            return super().send_bytes(h, rec, status, body, content_type, headers, fault)
        rng = a.rng
        headers = dict(headers or {})
        notes = []
        cl = None
        cut = None
        for _ in range(1 if rng.random() < 0.7 else 2):
            op = rng.randrange(100)
            if op < 14:
                status = rng.choice(ODD_STATUSES)
                notes.append(f"status {status}")
            elif op < 22:
                content_type = rng.choice(ODD_TYPES)
                notes.append(f"content type {content_type!r}")
            elif op < 52:
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                if doc is not None and rng.random() < 0.25:
                    doc, what = cm.absurd_counts(doc, rng)
                    body = cm.dumps(doc, rng)
                    notes.append(f"JSON: {what}")
                elif doc is not None:
                    focus = {"usage", "prompt_tokens", "completion_tokens", "total_tokens",
                             "input_tokens", "output_tokens", "promptTokenCount",
                             "candidatesTokenCount", "choices", "content", "message", "error",
                             "created", "model", "candidates", "data", "embedding", "values",
                             "access_token", "expires_in", "type", "index", "tool_calls"}
                    doc, what = cm.mutate_json(doc, rng, focus)
                    body = cm.dumps(doc, rng)
                    notes.append(f"JSON: {what}")
            elif op < 70:
                body, what = cm.mutate_bytes(body, rng)
                notes.append(f"bytes: {what}")
            elif op < 74:
                size = rng.choice([1 << 20, 5 << 20, 17 << 20])
                body = self._huge_json(body, size)
                notes.append(f"body of {len(body)} bytes")
            elif op < 82:
                status = rng.choice([400, 401, 403, 404, 422, 429, 500, 503])
                body = self._secret_error(rec, rng)
                notes.append(f"status {status} echoing the credential")
            elif op < 92:
                name = rng.choice(["Retry-After", "retry-after-ms", "x-ratelimit-reset-tokens",
                                   "X-Huge", "anthropic-ratelimit-tokens-reset"])
                value = "x" * 9000 if name == "X-Huge" else rng.choice(RETRY_HINTS)
                headers[name] = value
                if rng.random() < 0.5:
                    status = rng.choice([429, 503, 529])
                notes.append(f"header {name}: {value[:40]!r}, status {status}")
            elif op < 96:
                cl = len(body) + rng.choice([1, 100, 100000])
                notes.append(f"Content-Length {cl} for {len(body)} bytes, then close")
            else:
                cut = rng.randrange(len(body) + 1)
                notes.append(f"connection cut after {cut}/{len(body)} body bytes")
        self._note(h, "; ".join(notes))
        self._write(h, rec, status, body, content_type, headers, cl=cl, cut=cut)

    def _write(self, h, rec, status, body, ctype, headers, cl=None, cut=None):
        http10 = getattr(h._chaos, "http10", False)
        if http10:
            h.protocol_version = "HTTP/1.0"
        h.send_response(status)
        if ctype is not None:
            h.send_header("Content-Type", ctype)
        if not http10:
            h.send_header("Content-Length", str(len(body) if cl is None else cl))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        rec.status = status
        data = body if cut is None else body[:cut]
        try:
            if h.command != "HEAD":
                h.wfile.write(data)
            h.wfile.flush()
        finally:
            h.protocol_version = "HTTP/1.1"
        rec.outcome = "complete" if status < 400 else "error"
        if http10 or cl is not None or cut is not None:
            self._abort(h, rec, rec.outcome)

    @staticmethod
    def _huge_json(body, size):
        try:
            doc = json.loads(body)
        except ValueError:
            return body + b" " * size
        if isinstance(doc, dict):
            doc["x_padding"] = "p" * size
            return json.dumps(doc).encode()
        return body + b" " * size

    def _credential(self, rec):
        h = rec.headers
        for name in ("x-api-key", "api-key", "x-goog-api-key"):
            if h.get(name):
                return h[name]
        auth = h.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        m = re.search(r"(?:^|&)key=([^&]+)", rec.query)
        return m.group(1) if m else (self.chaos.secrets[0] if self.chaos.secrets else "none")

    def _secret_error(self, rec, rng):
        key = self._credential(rec)
        text = rng.choice([f"Incorrect API key provided: {key}.",
                           f"key={key} is not valid for this project",
                           f"Bearer {key}", f"{key[:4]}...{key[-4:]} and in full {key}"])
        shape = rng.randrange(4)
        if shape == 0:
            doc = {"error": {"message": text, "type": "invalid_request_error", "code": None}}
        elif shape == 1:
            doc = {"type": "error", "error": {"type": "authentication_error", "message": text}}
        elif shape == 2:
            doc = {"error": {"code": 400, "message": text, "status": "INVALID_ARGUMENT"}}
        else:
            doc = {"object": "error", "message": text, "detail": text}
        return json.dumps(doc).encode()

    # -- streams ---------------------------------------------------------------------

    def start_stream(self, h, rec, headers=None, fault=None):
        a = getattr(h, "_chaos", None)
        if a is None or not a.mutate:
            return super().start_stream(h, rec, headers, fault)
        rng = a.rng
        a.stream = sp = _StreamPlan(rng)
        status, ctype = 200, "text/event-stream; charset=utf-8"
        notes = []
        if rng.random() < 0.1:
            status = rng.choice(ODD_STATUSES)
            notes.append(f"stream status {status}")
        if rng.random() < 0.1:
            ctype = rng.choice(ODD_TYPES)
            notes.append(f"stream content type {ctype!r}")
        notes.append(f"p_event={sp.p_event} eol={sp.eol!r} split={sp.split} "
                     f"stop_at={sp.stop_at} abort_at={sp.abort_at} stall_at={sp.stall_at}"
                     f"({sp.stall}s) inject_at={sp.inject_at} junk={sp.junk_after_end}")
        self._note(h, "; ".join(notes))
        h.send_response(status)
        if ctype is not None:
            h.send_header("Content-Type", ctype)
        h.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.flush()
        rec.status = status
        if rng.random() < 0.05:
            MockWrite.chunk(h, b"\xef\xbb\xbf")
            self._note(h, "BOM before the first event")

    def write_chunk(self, h, data):
        a = getattr(h, "_chaos", None)
        sp = a.stream if a is not None else None
        if sp is None:
            return MockWrite.chunk(h, data)
        if sp.ended or not data:
            return None
        rng = a.rng
        sp.count += 1
        if sp.abort_at == sp.count:
            self._note(h, f"stream cut before event {sp.count}")
            self._drop(h)
        if sp.stop_at == sp.count:
            self._note(h, f"stream ended cleanly before event {sp.count}")
            MockWrite.end(h)
            sp.ended = True
            return None
        if sp.stall_at == sp.count:
            self._note(h, f"stall of {sp.stall}s before event {sp.count}")
            if self._pause(h, sp.stall):
                self._drop(h)
        if sp.inject_at == sp.count:
            extra, what = self._injected_event(rng)
            self._note(h, f"injected before event {sp.count}: {what}")
            self._send_event(h, sp, extra)
        if rng.random() < sp.p_event:
            data, what = self._mutate_event(data, rng)
            self._note(h, f"event {sp.count}: {what}")
        self._send_event(h, sp, data)
        return None

    def end_chunks(self, h):
        a = getattr(h, "_chaos", None)
        sp = a.stream if a is not None else None
        if sp is None:
            return MockWrite.end(h)
        if sp.ended:
            return None
        if sp.junk_after_end:
            self._send_event(h, sp, b'data: {"id":"late","choices":[]}\n\ndata: [DONE]\n\n')
        sp.ended = True
        return MockWrite.end(h)

    def _drop(self, h):
        try:
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.close_connection = True
        raise ConnectionResetError("chaos: stream cut")

    def _send_event(self, h, sp, data):
        if sp.eol is not None:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", sp.eol.encode())
        if sp.split and len(data) > 1:
            step = max(1, len(data) // 7)
            for i in range(0, len(data), step):
                MockWrite.chunk(h, data[i:i + step])
        else:
            MockWrite.chunk(h, data)

    @staticmethod
    def _injected_event(rng):
        op = rng.randrange(8)
        if op == 0:
            size = rng.choice([1 << 20, 9 << 20])
            return b"data: {\"pad\":\"" + b"x" * size + b"\"}\n\n", f"event of {size} bytes"
        if op == 1:
            return b"data: [DONE]\n\n", "early [DONE]"
        if op == 2:
            return (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                    b'"message":"Overloaded"}}\n\n'), "error event"
        if op == 3:
            return b": keep-alive comment\n\n", "comment"
        if op == 4:
            return b"id: 7\nretry: 10\n\n", "id and retry fields only"
        if op == 5:
            return b"data: " + b"\xff\xfe" * 3 + b"\n\n", "invalid UTF-8 event"
        if op == 6:
            return b"data: {\"choices\":[{\"index\":99999999999,\"delta\":{}}]}\n\n", \
                "choice index 99999999999"
        return b"data:\n\ndata: \n\n", "empty data events"

    @staticmethod
    def _mutate_event(data, rng):
        op = rng.randrange(10)
        m = re.search(rb"^data: ?(.*?)(\r?\n)", data, re.M)
        if op == 0:
            return b"", "dropped"
        if op == 1:
            return data + data, "duplicated"
        if op == 2:
            return data.rstrip(b"\r\n") + b"\n", "blank line removed (merged with the next)"
        if op == 3 and data.startswith(b"event:"):
            name = rng.choice([b"error", b"ping", b"message_stop", b"unknown_event", b""])
            return re.sub(rb"^event:[^\r\n]*", b"event: " + name, data), f"renamed to {name!r}"
        if m is None:
            return cm.mutate_bytes(data, rng)
        payload = m.group(1)
        if op == 4 and len(payload) > 2:
            cut = len(payload) // 2
            return (data[:m.start(1)] + payload[:cut] + b"\ndata: " + payload[cut:] +
                    data[m.end(1):]), "data split over two lines"
        if op in (5, 6, 7):
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = None
            if doc is not None and op == 7:
                doc, what = cm.absurd_counts(doc, rng)
                new = cm.dumps(doc).replace(b"\n", b"")
                return data[:m.start(1)] + new + data[m.end(1):], f"JSON: {what}"
            if doc is not None:
                doc, what = cm.mutate_json(doc, rng, {"usage", "choices", "delta", "index",
                                                      "finish_reason", "content", "type",
                                                      "candidates", "usageMetadata",
                                                      "output_tokens", "input_tokens"})
                new = cm.dumps(doc).replace(b"\n", b"")
                return data[:m.start(1)] + new + data[m.end(1):], f"JSON: {what}"
        new, what = cm.mutate_bytes(payload, rng)
        new = new.replace(b"\n", b" ").replace(b"\r", b" ")
        return data[:m.start(1)] + new + data[m.end(1):], f"bytes: {what}"


class MockWrite:
    """The plain chunked writes of MockServer (the mixin's own writes go through here)."""

    @staticmethod
    def chunk(h, data):
        if data:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

    @staticmethod
    def end(h):
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


def chaos_class(base, chaos):
    """`base` (a mock class) with the ChaosMixin in front, bound to `chaos`."""
    return type("Chaos" + base.__name__, (ChaosMixin, base), {"chaos": chaos})

