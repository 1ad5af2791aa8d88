"""Sending one fuzzed request over a raw socket, and the invariants every answer keeps.

Invariants (issue 17), checked on every response:
  http       a well-formed HTTP answer (status line, headers, framing), complete within
             the time limit; a request we sent whole is always answered
  error      inside a gateway location, every error is JSON in OpenAI's shape
             {"error":{"message","type","param","code"}} with a type that agrees with
             the status (5xx server_error, 4xx never), and a status the gateway may send,
             never 500 (an internal error); requests httpd refuses before it knows their
             location are exempt
  json       every 2xx JSON body is valid UTF-8 and strict JSON (no NaN, no raw control
             bytes, nothing after the document), and its token counts are integers in
             0..2^53-1
  stream     every text/event-stream body is valid UTF-8, its events are strict JSON or
             [DONE], and it ends with [DONE] or with an error event (and nothing after)
  secret     no provider key or minted token in any header or body
  keepalive  a connection the server keeps open serves the next request correctly
The crash invariant (no `exit signal`, no sanitizer report) is checked by chaos.py on the
server's logs.
"""

import http.client
import json
import socket
import time

MAX_SAFE = 2**53 - 1
# What the gateway (and httpd, inside a gateway location) may answer with.
GATEWAY_STATUSES = {200, 204, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 415, 417, 422,
                    429, 431, 500, 501, 502, 503, 504, 505}
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Answer:
    """What came back for one request."""

    def __init__(self):
        self.status = None
        self.reason = ""
        self.headers = []
        self.body = b""
        self.error = None  # why no complete answer was read
        self.closed_early = False  # the server closed before any byte of an answer
        self.will_close = True
        self.seconds = 0.0
        self.followup = None  # (status, content type, body excerpt, error) of the keep-alive check

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def describe(self, limit=1500):
        head = f"{self.status} {self.reason}".strip()
        hdrs = "; ".join(f"{k}: {v[:120]}" for k, v in self.headers)
        body = self.body[:limit]
        more = f" (+{len(self.body) - limit} bytes)" if len(self.body) > limit else ""
        return (f"status {head or '-'} after {self.seconds:.2f}s, error {self.error!r}\n"
                f"    headers: {hdrs}\n    body: {body!r}{more}")


def send(case, port, timeout=60.0, followup=False):
    """Send `case` on a new connection and read the answer (and, with `followup`, a GET of
    /v1/models on the same connection when the server keeps it open)."""
    a = Answer()
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    # One timeout for the whole answer: a socket file that timed out once cannot be read
    # again, so there is no waiting in slices.
    sock.settimeout(timeout)
    try:
        try:
            sock.sendall(case.wire())
            if case.shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before reading everything: read its answer
        resp = http.client.HTTPResponse(sock, method=case.method)
        try:
            _begin(resp, deadline)
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            a.closed_early = True
            a.error = f"no answer: {type(e).__name__}"
            return a
        except TimeoutError as e:
            a.error = str(e)
            return a
        except (http.client.HTTPException, OSError, ValueError) as e:
            a.error = f"malformed answer: {type(e).__name__}: {e}"
            return a
        a.status, a.reason = resp.status, resp.reason
        a.headers = list(resp.getheaders())
        a.will_close = resp.will_close
        try:
            a.body = _read_body(resp, deadline)
        except TimeoutError as e:
            a.error = str(e)
            return a
        except (http.client.HTTPException, OSError, ValueError) as e:
            a.error = f"body: {type(e).__name__}: {e}"
            return a
        if followup and not a.will_close and not case.shutdown_write:
            a.followup = _followup(sock, port, deadline)
    finally:
        a.seconds = time.monotonic() - t0
        sock.close()
    return a


def _begin(resp, deadline):
    try:
        resp.begin()
    except socket.timeout:
        raise TimeoutError("no status line within the time limit") from None


def _read_body(resp, deadline):
    out = []
    n = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"answer incomplete after the time limit ({n} bytes)")
        try:
            piece = resp.read1(65536)
        except socket.timeout:
            raise TimeoutError(f"answer stalled ({n} bytes)") from None
        if not piece:
            return b"".join(out)
        out.append(piece)
        n += len(piece)


def _followup(sock, port, deadline):
    req = (b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test-Id: followup\r\n\r\n")
    try:
        sock.sendall(req)
        resp = http.client.HTTPResponse(sock, method="GET")
        _begin(resp, deadline)
        body = _read_body(resp, deadline)
        return (resp.status, resp.getheader("Content-Type"), body[:300], None)
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return None  # a server may close an idle keep-alive connection
    except (http.client.HTTPException, OSError, ValueError, TimeoutError) as e:
        return (None, None, b"", f"{type(e).__name__}: {e}")


# -- the invariants ------------------------------------------------------------------

def _strict_json(data):
    def reject(token):
        raise ValueError(f"non-JSON constant {token}")
    text = data.decode("utf-8")  # strict: invalid UTF-8 raises
    return json.loads(text, parse_constant=reject)


def _usage_problems(doc, where):
    out = []
    items = [doc] if isinstance(doc, dict) else []
    for d in items:
        u = d.get("usage")
        if not isinstance(u, dict):
            continue
        for k in USAGE_KEYS:
            if k not in u:
                continue
            v = u[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v > MAX_SAFE:
                out.append(f"{where}: usage.{k} = {v!r} is no count in 0..2^53-1")
    return out


def _error_shape(doc):
    if not isinstance(doc, dict) or set(doc) != {"error"}:
        return "not {\"error\": {...}}"
    e = doc["error"]
    if not isinstance(e, dict) or set(e) != {"message", "type", "param", "code"}:
        return f"error members {sorted(e) if isinstance(e, dict) else type(e).__name__}"
    if not isinstance(e["message"], str) or not e["message"]:
        return "error.message is not a non-empty string"
    if not isinstance(e["type"], str) or not e["type"]:
        return "error.type is not a non-empty string"
    for k in ("param", "code"):
        if e[k] is not None and not isinstance(e[k], str):
            return f"error.{k} is neither a string nor null"
    return None


def _sse_events(text):
    """The data payloads of an SSE body (LF, CRLF or CR line ends), in order."""
    events, data = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            v = line[5:]
            data.append(v[1:] if v.startswith(" ") else v)
    if data:
        events.append("\n".join(data) + "\0unterminated")
    return events


def check(case, a, secrets):
    """The invariants of `case`'s answer `a`; returns a list of violation texts."""
    v = []
    sent_whole = not case.shutdown_write
    if case.version == "":
        return v  # an HTTP/0.9 request: the answer is a bare body, if any
    if a.status is None:
        if a.closed_early and not sent_whole:
            return v  # we broke the request off ourselves; httpd may just close
        return [f"http: {a.error or 'no answer'}"]
    if a.error:
        v.append(f"http: {a.error}")
    for s in secrets:
        blob = a.body + "".join(f"{k}: {val}\n" for k, val in a.headers).encode("latin-1",
                                                                                  "replace")
        if s and s.encode() in blob:
            v.append(f"secret: provider credential {s[:6]}... in the answer")
    ctype = (a.header("Content-Type") or "").split(";")[0].strip().lower()
    gateway = case.gateway_location and not case.pre_location
    if a.status not in GATEWAY_STATUSES and gateway:
        v.append(f"error: status {a.status} is none the gateway sends")
    if a.status == 500 and gateway:
        v.append("error: 500, an internal error of the gateway (no upstream answer or client "
                 "request should cause one)")
    if a.status >= 400 and gateway and case.method != "HEAD":
        if ctype != "application/json":
            v.append(f"error: {a.status} answered with Content-Type {ctype!r}, not JSON")
        else:
            try:
                doc = _strict_json(a.body)
                why = _error_shape(doc)
                if why:
                    v.append(f"error: {a.status} body is no OpenAI error: {why}")
                else:
                    t = doc["error"]["type"]
                    if a.status >= 500 and t != "server_error":
                        v.append(f"error: {a.status} with type {t!r}")
                    if a.status < 500 and t == "server_error":
                        v.append(f"error: {a.status} with type server_error")
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                v.append(f"error: {a.status} body is not JSON: {e}")
    if 200 <= a.status < 300 and not a.error and case.method != "HEAD":
        if ctype == "application/json":
            try:
                doc = _strict_json(a.body)
                v.extend(_usage_problems(doc, "body"))
            except (ValueError, UnicodeDecodeError) as e:
                v.append(f"json: 2xx body is not strict JSON/UTF-8: {e}")
            except RecursionError:
                pass  # deeper than Python parses; JSON.parse would take it
        elif ctype == "text/event-stream":
            v.extend(_check_stream(a.body))
        elif gateway and case.path.split("?")[0].startswith(("/v1", "/classic", "/limited")) \
                and a.status != 204:
            v.append(f"json: 2xx with Content-Type {ctype!r}")
    if a.followup is not None:
        status, fctype, fbody, err = a.followup
        if err or status != 200 or not (fctype or "").startswith("application/json"):
            v.append(f"keepalive: next request on the connection got {status} {fctype!r} "
                     f"{fbody[:120]!r} {err or ''}")
    return v


def _check_stream(body):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return [f"stream: not UTF-8: {e}"]
    events = _sse_events(text)
    out = []
    ended = False  # the last event is [DONE] or an error event
    if not events:
        return ["stream: no event at all"]
    for i, ev in enumerate(events):
        last = i == len(events) - 1
        if ev.endswith("\0unterminated"):
            out.append(f"stream: event {i} is not terminated by a blank line")
            ev = ev[:-len("\0unterminated")]
        if ev == "[DONE]":
            if not last:
                out.append(f"stream: {len(events) - 1 - i} event(s) after [DONE]")
            ended = last
            continue
        try:
            doc = json.loads(ev, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
        except ValueError as e:
            out.append(f"stream: event {i} is not JSON: {e}: {ev[:120]!r}")
            continue
        except RecursionError:
            continue
        if isinstance(doc, dict) and "error" in doc:
            why = _error_shape({"error": doc["error"]})
            if why:
                out.append(f"stream: error event is no OpenAI error: {why}")
            if not last:
                out.append("stream: events after the error event")
            ended = last
            continue
        out.extend(_usage_problems(doc, f"event {i}"))
    if not ended:
        out.append("stream: ends without [DONE] and without an error event")
    return out
