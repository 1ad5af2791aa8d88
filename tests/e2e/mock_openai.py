"""A scriptable mock of the OpenAI API for the mod_llmgw end-to-end suite.

It validates requests the way api.openai.com does (path, method, bearer key,
Content-Type, body schema, `stream_options` only with `stream: true`) so that a
gateway bug which the real provider would reject fails here too, and it records
every request (headers, parsed body, arrival time, connection id) so that tests
can check what reached the provider and when.

Answers are realistic: a chat completion echoes the last user message; a stream
is a role chunk, content chunks, a finish chunk, a usage chunk when asked, then
`data: [DONE]`; tools in the request give a tool-call answer; embeddings are
deterministic vectors (`MockOpenAI.embedding_for`) returned as floats or as
base64 float32 as OpenAI does.

Faults are scripted per request: `mock.script(Fault(...), Fault(...))` queues
one `Fault` per incoming request (first in, first out); a request with no fault
queued gets the normal answer. The server runs in a thread of the test process
(`ThreadingHTTPServer`, HTTP/1.1 keep-alive), counts accepted TCP connections
and notices when a client closes a connection while an answer is in progress.

Only the standard library is used. Later provider mocks (Anthropic, Gemini,
Azure, Mistral) can reuse `MockServer`, `Recorded` and `Fault` and override the
routing and answer methods.
"""

import base64
import functools
import itertools
import json
import re
import select
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mockkit

DEFAULT_KEY = "sk-test-SECRET-abc123"

# How long a "stall forever" waits at most, so that no handler thread outlives a test run.
STALL_CAP = 60.0


@dataclass
class Fault:
    """One scripted answer. Every field left at its default means "behave normally".

    Before the status line:
      delay          seconds to wait before answering (a closed client is noticed)
      drop           "before_headers": close the connection without answering;
                     "after_headers": send status and headers, then close
    Error answers:
      status         non-200: answer with this status and `body` (default: the
                     OpenAI error body for the status); `headers` are added
      body           dict (JSON) / str / bytes replacing the normal answer body
    Streams (events are counted from 1: the role chunk is event 1):
      first_event_delay  wait after the headers, before event 1
      chunk_delay    wait between events
      stall_after    after this many events, send nothing more until the client
                     closes the connection (capped at STALL_CAP seconds)
      drop_after     after this many events, close the connection abruptly
      end_after      after this many events, end the body cleanly (terminating chunk)
                     although the answer is not finished
      malformed_after  after this many events, send an unparseable event and go on
      garbage_after  after this many events, send only unparseable events (one for each
                     event left, at least three), then end the body: a stream that keeps
                     sending garbage
      ping_every     while pausing (first_event_delay, chunk_delay), send a `: keep-alive`
                     comment every this many seconds (headers and pings, but no token)
      no_done        end the body after the finish (and usage) chunk without [DONE]
      error_event_after  after this many events, send the provider's in-stream error
                     event carrying error_message, and end the body
    Content:
      content        the answer text (default: "echo: " + the last user message)
      chunks         explicit content pieces of a stream (overrides the split of content)
      tool_calls     [(name, arguments)] -> a tool-call answer (arguments: dict or str)
      finish_reason  override of the finish reason
      model          override of the model in the answer
      usage          override of the usage object
    Connection:
      close_after    close the connection right after a complete answer, without
                     a `Connection: close` header (a provider dropping idle connections)
    """

    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: str = None
    first_event_delay: float = 0.0
    chunk_delay: float = 0.0
    stall_after: int = None
    drop_after: int = None
    end_after: int = None
    malformed_after: int = None
    garbage_after: int = None
    ping_every: float = 0.0
    no_done: bool = False
    error_event_after: int = None
    error_message: str = "upstream failure"
    content: str = None
    chunks: list = None
    tool_calls: list = None
    finish_reason: str = None
    model: str = None
    usage: dict = None
    close_after: bool = False


@dataclass
class Recorded:
    """One request as the mock saw it. Times are time.monotonic() of the test process."""

    method: str
    path: str
    query: str
    headers: dict  # lower-case names
    raw: bytes
    body: object  # parsed JSON, or None
    t: float  # request headers received
    conn: int  # id of the TCP connection (1, 2, ... in accept order)
    status: int = None  # status answered (None: no status line was sent)
    outcome: str = "pending"  # complete | error | dropped | client_closed | stalled
    t_end: float = None  # answer finished / connection given up
    closed_at: float = None  # when the mock saw the client close mid-answer
    events_sent: int = 0  # stream events written


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-openai/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        # Headers and body go out as separate writes: without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = self.server.owner._on_connect(self)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.server.owner._on_disconnect(self.conn_id)

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def _dispatch(self):
        self.server.owner._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _ClientGone(Exception):
    """The client closed the connection while an answer was in progress."""


def _locked(read, doc=None):
    """A read-only MockServer property that reads its state under the lock."""
    def get(self):
        with self._lock:
            return read(self)
    return property(get, doc=doc)


class MockServer:
    """Base of the provider mocks: threads, scripting, recording, connection counting.

    Subclasses implement `route(h, rec, fault)`.

    keys    accepted keys, for the subclasses that check them
    models  ids of the models the mock serves
    """

    name = "mock"

    def __init__(self, host="127.0.0.1", keys=(), models=()):
        self.host = host
        self.keys = set(keys)
        self.models = list(models)
        self._seq = itertools.count(1)  # for the ids of answers
        self._lock = threading.Lock()
        self._faults = []
        self._requests = []
        self._connections = 0
        self._open = set()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._ids = itertools.count(1)

    # -- life cycle ---------------------------------------------------------

    def start(self):
        self._server = _Server((self.host, 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-mock", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def base(self):
        return f"http://{self.host}:{self.port}"

    # -- scripting and inspection ------------------------------------------

    def script(self, *faults):
        """Queue one Fault per future request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self):
        """Forget scripted faults, recorded requests and the connection count."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._connections = 0

    requests = _locked(lambda self: list(self._requests))
    connections = _locked(lambda self: self._connections,
                          "TCP connections accepted since the last reset.")
    open_connections = _locked(lambda self: len(self._open))
    pending_faults = _locked(lambda self: len(self._faults))

    def wait_requests(self, n, timeout=5.0):
        """Wait until at least n requests were recorded; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            if len(reqs) >= n:
                return reqs
            time.sleep(0.02)
        return self.requests

    def wait_outcome(self, index, timeout=5.0):
        """Wait until request `index` is finished one way or another; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            if len(reqs) > index and reqs[index].outcome != "pending":
                return reqs[index]
            time.sleep(0.02)
        reqs = self.requests
        return reqs[index] if len(reqs) > index else None

    # -- connection bookkeeping --------------------------------------------

    def _on_connect(self, h):
        with self._lock:
            self._connections += 1
            cid = next(self._ids)
            self._open.add(cid)
            return cid

    def _on_disconnect(self, cid):
        with self._lock:
            self._open.discard(cid)

    def _pop_fault(self):
        with self._lock:
            return self._faults.pop(0) if self._faults else Fault()

    # -- request handling ---------------------------------------------------

    def _handle(self, h):
        path, _, query = h.path.partition("?")
        raw = self._read_body(h)
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        rec = Recorded(method=h.command, path=path, query=query, headers=headers, raw=raw,
                       body=body, t=time.monotonic(), conn=h.conn_id)
        with self._lock:
            self._requests.append(rec)
        fault = self._pop_fault()
        try:
            if fault.delay and self._pause(h, fault.delay):
                raise _ClientGone()
            if fault.drop == "before_headers":
                self._abort(h, rec, "dropped")
                return
            self.route(h, rec, fault)
        except _ClientGone:
            rec.closed_at = rec.closed_at or time.monotonic()
            rec.outcome = "client_closed"
            h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            rec.closed_at = rec.closed_at or time.monotonic()
            rec.outcome = "client_closed"
            h.close_connection = True
        finally:
            rec.t_end = time.monotonic()

    def route(self, h, rec, fault):
        raise NotImplementedError

    @staticmethod
    def _read_body(h):
        te = h.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _pause(self, h, seconds):
        """Sleep up to `seconds`; return True as soon as the client closes the connection."""
        deadline = time.monotonic() + seconds
        sock = h.connection
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._stopping.is_set():
                return True
            readable, _, _ = select.select([sock], [], [], min(remaining, 0.05))
            if not readable:
                continue
            try:
                peek = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                return True
            if not peek:
                return True
            time.sleep(min(remaining, 0.05))  # pipelined data: not a close

    def _abort(self, h, rec, outcome):
        """Close the connection abruptly (no terminating chunk, no response)."""
        try:
            h.wfile.flush()
        except OSError:
            pass
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.close_connection = True
        rec.outcome = outcome

    # -- writing ------------------------------------------------------------

    def send_bytes(self, h, rec, status, body, content_type="application/json",
                   headers=None, fault=None):
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if fault is not None:
            for k, v in fault.headers.items():
                h.send_header(k, v)
        h.end_headers()
        rec.status = status
        if fault is not None and fault.drop == "after_headers":
            self._abort(h, rec, "dropped")
            return
        if h.command != "HEAD":
            h.wfile.write(body)
        h.wfile.flush()
        rec.outcome = "complete" if status < 400 else "error"
        if fault is not None and fault.close_after:
            self._abort(h, rec, rec.outcome)

    def send_json(self, h, rec, status, obj, headers=None, fault=None):
        self.send_bytes(h, rec, status, json.dumps(obj).encode(), "application/json",
                        headers, fault)

    def send_fault_body(self, h, rec, fault, default_obj):
        """Answer with the fault's status and body (default: `default_obj`)."""
        body = fault.body if fault.body is not None else default_obj
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
            ctype = "application/json"
        self.send_bytes(h, rec, fault.status, data, ctype, None, fault)

    def send_scripted_answer(self, h, rec, fault, default_error):
        """Answer as the fault scripts it, if it does: an error status (with the fault's body,
        else default_error(status)) or a body of its own. False when the answer is left to
        the mock."""
        if fault.status != 200:
            self.send_fault_body(h, rec, fault, default_error(fault.status))
            return True
        if fault.body is not None:
            self.send_fault_body(h, rec, fault, None)
            return True
        return False

    def start_stream(self, h, rec, headers=None, fault=None):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if fault is not None:
            for k, v in fault.headers.items():
                h.send_header(k, v)
        h.end_headers()
        h.wfile.flush()
        rec.status = 200

    @staticmethod
    def write_chunk(h, data):
        if not data:
            return
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        h.wfile.flush()

    @staticmethod
    def end_chunks(h):
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def wait(self, h, seconds, fault):
        """Pause `seconds` as the fault says (with keep-alive comments when it pings);
        True when the client closed the connection meanwhile."""
        if not fault.ping_every:
            return self._pause(h, seconds)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._pause(h, min(left, fault.ping_every)):
                return True
            if deadline - time.monotonic() > 0:
                self.write_chunk(h, b": keep-alive\n\n")

    @staticmethod
    def garbage_before(fault, n):
        """An unparseable event goes before event n+1 (counted from 0 sent)."""
        return fault.malformed_after is not None and n == fault.malformed_after

    def send_garbage(self, h, rec, fault, left, bad):
        """garbage_after: True when the rest of the stream was garbage (`left` events,
        each replaced by the unparseable `bad`) and the body has ended."""
        if fault.garbage_after is None or rec.events_sent < fault.garbage_after:
            return False
        for _ in range(max(3, left)):
            if fault.chunk_delay and self.wait(h, fault.chunk_delay, fault):
                raise _ClientGone()
            self.write_chunk(h, bad)
        self.end_chunks(h)
        rec.outcome = "garbage"
        return True

    def run_stream(self, h, rec, fault, events):
        """Write SSE `events` (each a str payload of one `data:` line) with the fault's
        pacing and failures, then end the body."""
        if fault.first_event_delay and self.wait(h, fault.first_event_delay, fault):
            raise _ClientGone()
        for i, payload in enumerate(events):
            if fault.stall_after is not None and rec.events_sent >= fault.stall_after:
                # The outcome stays "pending" while the stall lasts: a test waiting for it
                # must see how it ended (the client closed, or the cap ran out).
                if self._pause(h, STALL_CAP):
                    raise _ClientGone()
                self._abort(h, rec, "stalled")
                return
            if fault.drop_after is not None and rec.events_sent >= fault.drop_after:
                self._abort(h, rec, "dropped")
                return
            if fault.end_after is not None and rec.events_sent >= fault.end_after:
                break
            if fault.error_event_after is not None and rec.events_sent >= fault.error_event_after:
                err = openai_error(fault.error_message, "server_error")
                self.write_chunk(h, ("data: " + json.dumps(err) + "\n\n").encode())
                rec.events_sent += 1
                break
            bad = b'data: {"id":"chatcmpl-broken","choices":[{"delta":\n\n'
            if self.send_garbage(h, rec, fault, len(events) - i, bad):
                return
            if self.garbage_before(fault, rec.events_sent):
                self.write_chunk(h, bad)
            if i > 0 and fault.chunk_delay and self.wait(h, fault.chunk_delay, fault):
                raise _ClientGone()
            self.write_chunk(h, ("data: " + payload + "\n\n").encode())
            rec.events_sent += 1
        self.end_chunks(h)
        rec.outcome = "complete"
        if fault.close_after:
            self._abort(h, rec, "complete")


def openai_error(message, type_="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def mask_key(key):
    """The way OpenAI quotes a wrong key back: first 3 and last 4 characters."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


_DEFAULT_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "server_error", "timeout"),
    409: ("Conflict.", "invalid_request_error", None),
    413: ("Request too large.", "invalid_request_error", "request_too_large"),
    422: ("Unprocessable entity.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error",
          "server_is_overloaded"),
    504: ("Gateway timeout.", "server_error", None),
    529: ("Overloaded.", "server_error", "overloaded"),
}


def default_error_body(status):
    msg, type_, code = _DEFAULT_ERRORS.get(status, (f"Error {status}.", "server_error", None))
    return openai_error(msg, type_, None, code)


_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_WORDS = re.compile(r"\S+\s*")


def message_text(msg):
    """Text of a message's content (string or text parts)."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_words(text):
    """The content pieces of a streamed answer: one per word (with its trailing space)."""
    return _WORDS.findall(text) or [text]


def continuation(full, prefill):
    """What a model continuing `prefill` adds to reach `full` (None when `full` does not
    start with it), split as a continuation streams: each piece with its leading
    whitespace (" two", " three"), so the pieces join to exactly the rest."""
    if not prefill or not full.startswith(prefill):
        return None
    rest = full[len(prefill):]
    pieces = re.findall(r"\s*\S+", rest)
    tail = rest[len("".join(pieces)):]
    if tail:
        pieces.append(tail)
    return rest, pieces or [rest]


def prompt_tokens_for(body):
    """The mock's token count for a chat request: words of all messages, at least 1."""
    n = sum(len(message_text(m).split()) for m in body.get("messages", [])
            if isinstance(m, dict))
    return max(1, n)


def _model_first(validate):
    """A request validator that first checks that the request names a model (the first
    check of both endpoints)."""
    @functools.wraps(validate)
    def check(body):
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return openai_error("you must provide a model parameter", param="model")
        return validate(body)
    return check


def sample_arguments(tool):
    """Arguments the mock "model" passes to a tool: one value per required property."""
    return mockkit.sample_arguments((tool.get("function") or {}).get("parameters") or {})


class MockOpenAI(MockServer):
    """The OpenAI Chat Completions / Embeddings / Models API.

    keys           accepted bearer keys (default: DEFAULT_KEY)
    leak_key_in_401  a wrong key is quoted back in full in the 401 message (some
                     providers and proxies do this; the gateway must not pass it on)
    models         ids listed by GET /v1/models
    """

    name = "openai"

    def __init__(self, keys=(DEFAULT_KEY,), leak_key_in_401=False, models=("gpt-mock",),
                 host="127.0.0.1"):
        super().__init__(host, keys, models)
        self.leak_key_in_401 = leak_key_in_401

    @property
    def url(self):
        """The endpoint to put in gateway.yaml (base URL with the version path)."""
        return self.base + "/v1"

    # -- routing and validation --------------------------------------------

    def route(self, h, rec, fault):
        endpoints = {
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/embeddings": ("POST", self._embeddings),
            "/v1/models": ("GET", self._models),
        }
        target = endpoints.get(rec.path)
        if target is None and rec.path.startswith("/v1/models/"):
            target = ("GET", self._model)
        if target is None or target[0] != rec.method:
            self.send_json(h, rec, 404, openai_error(
                f"Invalid URL ({rec.method} {rec.path})", "invalid_request_error"))
            return
        err = self._check_auth(rec)
        if err is None and rec.method == "POST":
            err = self._check_json(rec)
        if err is not None:
            self.send_json(h, rec, err[0], err[1])
            return
        if not self.send_scripted_answer(h, rec, fault, default_error_body):
            target[1](h, rec, fault)

    def _check_auth(self, rec):
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return 401, openai_error(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error", None, None)
        key = auth[len("Bearer "):]
        if key in self.keys:
            return None
        shown = key if self.leak_key_in_401 else mask_key(key)
        return 401, openai_error(
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error", None, "invalid_api_key")

    @staticmethod
    def _check_json(rec):
        ctype = rec.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            return 400, openai_error(
                f"Invalid Content-Type header ({ctype}), expected application/json.")
        if rec.body is None:
            return 400, openai_error(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)")
        if not isinstance(rec.body, dict):
            return 400, openai_error("The request body must be a JSON object.")
        return None

    @staticmethod
    @_model_first
    def validate_chat(body):
        """OpenAI's schema checks, enough to catch a gateway that mangles a request."""
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return openai_error("'messages' must be a non-empty array.", param="messages")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in _ROLES:
                return openai_error(f"Invalid value for 'messages[{i}].role'.",
                                    param=f"messages[{i}].role")
            role, content = m["role"], m.get("content")
            if role in ("system", "developer", "user") and not isinstance(content, (str, list)):
                return openai_error(f"Missing required parameter: 'messages[{i}].content'.",
                                    param=f"messages[{i}].content")
            if role == "tool" and not isinstance(m.get("tool_call_id"), str):
                return openai_error(
                    f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                    param=f"messages[{i}].tool_call_id")
            if role == "assistant" and content is None and not m.get("tool_calls") \
                    and not m.get("function_call"):
                return openai_error(f"Missing required parameter: 'messages[{i}].content'.",
                                    param=f"messages[{i}].content")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            return openai_error("Invalid type for 'stream': expected a boolean.", param="stream")
        opts = body.get("stream_options")
        if opts is not None:
            if stream is not True:
                return openai_error(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options", code="invalid_value")
            if not isinstance(opts, dict) or not isinstance(opts.get("include_usage", False),
                                                            bool):
                return openai_error("Invalid 'stream_options'.", param="stream_options")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not all(
                    isinstance(t, dict) and t.get("type") == "function"
                    and isinstance((t.get("function") or {}).get("name"), str) for t in tools):
                return openai_error("Invalid 'tools'.", param="tools")
            for i, t in enumerate(tools):
                params = t["function"].get("parameters")
                problem = params is not None and mockkit.schema_problem(params)
                if problem:
                    return openai_error(f"Invalid schema for function "
                                        f"'{t['function']['name']}': {problem}.",
                                        param=f"tools[{i}].function.parameters")
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            return openai_error("Invalid 'n'.", param="n")
        return None

    @staticmethod
    @_model_first
    def validate_embeddings(body):
        inp = body.get("input")
        ok = (isinstance(inp, str) and inp) or (
            isinstance(inp, list) and inp and all(
                (isinstance(x, str) and x) or (isinstance(x, int) and not isinstance(x, bool))
                for x in inp))
        if not ok:
            return openai_error("'input' must be a non-empty string or array.", param="input")
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in ("float", "base64"):
            return openai_error("Invalid 'encoding_format'.", param="encoding_format")
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or dims < 1):
            return openai_error("Invalid 'dimensions'.", param="dimensions")
        return None

    # -- chat ----------------------------------------------------------------

    def _chat(self, h, rec, fault):
        err = self.validate_chat(rec.body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        answer = self.plan_answer(rec.body, fault)
        headers = {"x-request-id": f"req_mock{next(self._seq)}", "openai-processing-ms": "12",
                   "openai-version": "2020-10-01"}
        if rec.body.get("stream") is True:
            self.start_stream(h, rec, headers, fault)
            if fault.drop == "after_headers":
                self._abort(h, rec, "dropped")
                return
            self.run_stream(h, rec, fault, self.stream_events(rec.body, answer))
        else:
            self.send_json(h, rec, 200, self.completion(answer), headers, fault)

    def plan_answer(self, body, fault):
        """What the mock "model" answers to a chat request: a dict used by both forms."""
        last_user = ""
        for m in body["messages"]:
            if m.get("role") == "user":
                last_user = message_text(m)
        calls = None
        if fault.tool_calls is not None:
            calls = [(n, a if isinstance(a, str) else json.dumps(a)) for n, a in fault.tool_calls]
        elif body.get("tools") and body.get("tool_choice", "auto") != "none" \
                and fault.content is None:
            tools = body["tools"]
            choice = body.get("tool_choice")
            chosen = tools[:1]
            if isinstance(choice, dict):
                wanted = (choice.get("function") or {}).get("name")
                chosen = [t for t in tools if t["function"]["name"] == wanted] or chosen
            elif body.get("parallel_tool_calls", True) is not False:
                chosen = tools[:2]  # the "model" calls up to two tools in parallel
            calls = [(t["function"]["name"], json.dumps(sample_arguments(t))) for t in chosen]
        if calls:
            text, pieces = None, []
        else:
            text = fault.content if fault.content is not None else "echo: " + last_user
            pieces = fault.chunks if fault.chunks is not None else split_words(text)
            if fault.chunks is not None:
                text = "".join(fault.chunks)
        seq = next(self._seq)
        completion_tokens = max(1, len(pieces) if not calls else
                                sum(len(a) // 4 + 1 for _, a in calls))
        prompt = prompt_tokens_for(body)
        usage = fault.usage or {
            "prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}
        return {
            "id": f"chatcmpl-mock{seq}",
            "created": int(time.time()),
            "model": fault.model or body["model"],
            "text": text,
            "pieces": pieces,
            "calls": [{"id": f"call_mock{seq}x{i}", "name": n, "arguments": a}
                      for i, (n, a) in enumerate(calls or [])],
            "finish_reason": fault.finish_reason or ("tool_calls" if calls else "stop"),
            "usage": usage,
        }

    @staticmethod
    def completion(a):
        message = {"role": "assistant", "content": a["text"], "refusal": None,
                   "annotations": []}
        if a["calls"]:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in a["calls"]]
        return {
            "id": a["id"], "object": "chat.completion", "created": a["created"],
            "model": a["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": a["finish_reason"]}],
            "usage": a["usage"], "service_tier": "default", "system_fingerprint": "fp_mock",
        }

    @staticmethod
    def stream_events(body, a):
        """The exact OpenAI chunk sequence for answer `a` (payloads of `data:` lines)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish=None, choices=True):
            c = {"id": a["id"], "object": "chat.completion.chunk", "created": a["created"],
                 "model": a["model"], "service_tier": "default",
                 "system_fingerprint": "fp_mock",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}] if choices else []}
            if include_usage:
                c["usage"] = None
            return json.dumps(c, separators=(",", ":"))

        events = []
        if a["calls"]:
            for i, call in enumerate(a["calls"]):
                first = {"index": i, "id": call["id"], "type": "function",
                         "function": {"name": call["name"], "arguments": ""}}
                if i == 0:
                    events.append(chunk({"role": "assistant", "content": None,
                                         "tool_calls": [first], "refusal": None}))
                else:
                    events.append(chunk({"tool_calls": [first]}))
                args = call["arguments"]
                for j in range(0, len(args), 6):
                    events.append(chunk({"tool_calls": [
                        {"index": i, "function": {"arguments": args[j:j + 6]}}]}))
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in a["pieces"]:
                events.append(chunk({"content": piece}))
        events.append(chunk({}, a["finish_reason"]))
        if include_usage:
            last = json.loads(chunk({}, choices=False))
            last["usage"] = a["usage"]
            events.append(json.dumps(last, separators=(",", ":")))
        return events + ["[DONE]"]

    def run_stream(self, h, rec, fault, events):
        if fault.no_done and events and events[-1] == "[DONE]":
            events = events[:-1]
        super().run_stream(h, rec, fault, events)

    # -- embeddings ----------------------------------------------------------

    @staticmethod
    def embedding_for(text, dims=8):
        """The vector the mock returns for `text`: exact in float32 (multiples of 1/8)."""
        seed = zlib.crc32(str(text).encode())
        return [((seed + 37 * i) % 17 - 8) / 8.0 for i in range(dims)]

    def _embeddings(self, h, rec, fault):
        body = rec.body
        err = self.validate_embeddings(body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or 8
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(inputs):
            vec = self.embedding_for(item, dims)
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(str(x).split()) for x in inputs)
        self.send_json(h, rec, 200, {
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
            {"x-request-id": f"req_mock{next(self._seq)}"}, fault)

    # -- models --------------------------------------------------------------

    def _models(self, h, rec, fault):
        self.send_json(h, rec, 200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for m in self.models]}, None, fault)

    def _model(self, h, rec, fault):
        mid = rec.path[len("/v1/models/"):]
        if mid not in self.models:
            self.send_json(h, rec, 404, openai_error(
                f"The model '{mid}' does not exist", param="model", code="model_not_found"))
            return
        self.send_json(h, rec, 200, {"id": mid, "object": "model", "created": 1700000000,
                                     "owned_by": "mock"}, None, fault)


def decode_base64_embedding(text):
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


if __name__ == "__main__":  # run stand-alone for manual poking: python3 mock_openai.py
    with MockOpenAI() as m:
        mockkit.serve_until_interrupted(
            f"mock OpenAI on {m.url} (key {DEFAULT_KEY}); Ctrl-C to stop")
