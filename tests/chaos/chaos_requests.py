"""The request fuzzer: valid OpenAI requests for the routes of the chaos gateway, then
mutated in their JSON, their bytes, their headers, their framing and their method.

`make_case(seed, index, routes)` is a pure function of its arguments: the same seed and
index always give the same bytes, so a reported case can be sent again on its own
(chaos.py --replay). Every case carries the marker "chaos-<seed>-<index>" in its prompt or
embedding input, which the chaos upstream reads to seed its own mutations.
"""

import base64
import random
from dataclasses import dataclass, field

import chaos_mutate as cm

# A 1x1 PNG, for image parts.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


@dataclass
class Route:
    """A route of the chaos gateway.yaml: `models` are names it serves (for pools: the pool,
    its aliases and members' models)."""
    name: str
    path: str
    api: str  # chat | embeddings | models | status
    models: list = field(default_factory=list)


@dataclass
class Case:
    index: int
    marker: str
    method: str
    path: str
    version: str
    headers: list  # [(name, value)] in order; values are str
    body: bytes
    framing: str = "length"  # length | chunked | raw (body already framed) | none
    chunks: list = None  # for chunked: the pieces (bytes)
    shutdown_write: bool = False  # close our side after sending (a body shorter than claimed)
    pre_location: bool = False  # httpd may refuse it before it knows the location
    api: str = "chat"
    stream: bool = False
    notes: list = field(default_factory=list)

    @property
    def gateway_location(self):
        p = self.path.split("?")[0]
        return any(p == r or p.startswith(r + "/") for r in
                   ("/v1", "/classic", "/limited", "/llmgw-status"))

    def wire(self):
        """The exact bytes to send."""
        head = f"{self.method} {self.path} {self.version}".encode("latin-1", "replace")
        if self.version == "":
            head = f"{self.method} {self.path}".encode("latin-1", "replace")
        lines = [head]
        for k, v in self.headers:
            lines.append(f"{k}: {v}".encode("latin-1", "replace"))
        out = [b"\r\n".join(lines) + b"\r\n\r\n"]
        if self.framing == "chunked":
            for piece in self.chunks or []:
                out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            out.append(b"0\r\n\r\n")
        else:
            out.append(self.body)
        return b"".join(out)

    def summary(self):
        return f"#{self.index} {self.method} {self.path[:80]} {self.api} " + "; ".join(self.notes)


def _messages(rng, marker):
    user = {"role": "user", "content": f"Say something about {marker}."}
    pick = rng.randrange(8)
    if pick == 0:
        return [{"role": "system", "content": "Be terse."}, user]
    if pick == 1:
        return [{"role": "developer", "content": "Answer in one word."}, user]
    if pick == 2:
        return [{"role": "user", "content": [{"type": "text", "text": f"part one {marker}"},
                                             {"type": "text", "text": "part two"}]}]
    if pick == 3:
        return [user, {"role": "assistant", "content": "Earlier answer."},
                {"role": "user", "content": f"And again, {marker}?"}]
    if pick == 4:
        call = {"id": "call_abc123XYZ", "type": "function",
                "function": {"name": "get_time", "arguments": "{\"tz\":\"UTC\"}"}}
        return [user, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_abc123XYZ", "content": "12:00"},
                {"role": "user", "content": f"thanks {marker}"}]
    if pick == 5:
        return [{"role": "user", "content": [
            {"type": "text", "text": f"what is this {marker}"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]
    return [user]


TOOLS = [{"type": "function", "function": {
    "name": "get_time", "description": "Current time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                   "required": ["tz"]}}},
    {"type": "function", "function": {
        "name": "add", "parameters": {"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "number"}}}}}]


def _chat_body(rng, marker, model):
    body = {"messages": _messages(rng, marker)}
    if model is not None:
        body["model"] = model
    stream = rng.random() < 0.5
    if stream:
        body["stream"] = True
        if rng.random() < 0.6:
            body["stream_options"] = {"include_usage": True}
    for key, gen in (("temperature", lambda: rng.choice([0, 0.7, 2])),
                     ("top_p", lambda: rng.choice([0.1, 1])),
                     ("max_tokens", lambda: rng.choice([1, 50, 4096])),
                     ("max_completion_tokens", lambda: rng.choice([16, 1000])),
                     ("n", lambda: rng.choice([1, 2, 3])),
                     ("stop", lambda: rng.choice(["###", ["a", "b"]])),
                     ("seed", lambda: rng.randrange(1000)),
                     ("user", lambda: "u-" + marker),
                     ("response_format", lambda: rng.choice([{"type": "json_object"},
                                                             {"type": "text"}])),
                     ("tools", lambda: TOOLS[:rng.choice([1, 2])]),
                     ("logprobs", lambda: True)):
        if rng.random() < 0.12:
            body[key] = gen()
    if "tools" in body and rng.random() < 0.5:
        body["tool_choice"] = rng.choice(["auto", "none", "required", {
            "type": "function", "function": {"name": "get_time"}}])
    return body, stream


def _embeddings_body(rng, marker, model):
    pick = rng.randrange(4)
    if pick == 0:
        inp = f"embed {marker}"
    elif pick == 1:
        inp = [f"first {marker}", f"second {marker}", "third"][:rng.choice([1, 2, 3])]
    elif pick == 2:
        inp = [f"{marker} {i}" for i in range(rng.choice([5, 50]))]
    else:
        inp = [1, 2, 3, 4]
    body = {"input": inp}
    if model is not None:
        body["model"] = model
    if rng.random() < 0.5:
        body["encoding_format"] = rng.choice(["float", "base64"])
    if rng.random() < 0.3:
        body["dimensions"] = rng.choice([1, 8, 256, 3072])
    return body


BODY_FOCUS = {"messages", "content", "role", "model", "stream", "n", "max_tokens", "tools",
              "input", "dimensions", "encoding_format", "stream_options", "include_usage",
              "temperature", "tool_calls", "tool_choice", "image_url", "url", "type", "text",
              "stop", "response_format", "function", "arguments", "tool_call_id"}


def _headers(path_host="127.0.0.1"):
    return [("Host", path_host), ("Content-Type", "application/json"),
            ("Accept", "*/*"), ("User-Agent", "llmgw-chaos/1")]


def _set(headers, name, value):
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return out


def _http_mutation(case, rng):
    """One change of the request's HTTP: headers, framing, method, line, path."""
    op = rng.randrange(22)
    h = case.headers
    n = case.notes
    if op == 0:
        ct = rng.choice([None, "text/plain", "application/json; charset=utf-16",
                         "multipart/form-data; boundary=x", "application/jsonx",
                         "APPLICATION/JSON", " application/json ; charset=utf-8", ""])
        case.headers = _set(h, "Content-Type", ct)
        n.append(f"Content-Type {ct!r}")
    elif op in (1, 2):
        case.framing = "chunked"
        step = max(rng.choice([1, 7, 4096]), len(case.body) // 20000)
        case.chunks = [case.body[i:i + step] for i in range(0, len(case.body), step)]
        case.headers = _set(h, "Transfer-Encoding", "chunked")
        n.append(f"chunked by {step}")
    elif op == 3:
        case.framing = "raw"
        bad = rng.choice([b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{}\r\n0\r\n\r\n",
                          b"2\r\n{}0\r\n\r\n", b"ffffffffffffffffff\r\nx\r\n",
                          b"-1\r\n{}\r\n0\r\n\r\n", b"2;ext=1\r\n{}\r\n0\r\n\r\n",
                          b"2\n{}\n0\n\n", b"2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n",
                          b"2 \r\n{}\r\n0\r\n\r\n", b"\r\n\r\n"])
        case.body = bad
        case.headers = _set(h, "Transfer-Encoding", "chunked")
        case.shutdown_write = True
        n.append(f"chunked framing {bad[:24]!r}")
    elif op == 4:
        extra = rng.choice([1, 100, 5000])
        case.headers = _set(h, "Content-Length", str(len(case.body) + extra))
        case.framing = "none"
        case.shutdown_write = True
        n.append(f"Content-Length {extra} more than sent")
    elif op == 5:
        case.headers = _set(h, "Content-Length", rng.choice(["abc", "-1", "1 2", "0x10",
                                                             "99999999999999999999999"]))
        case.framing = "none"
        case.shutdown_write = True
        case.pre_location = True
        n.append("invalid Content-Length")
    elif op == 6:
        case.headers = _set(h, "Transfer-Encoding", rng.choice(["gzip", "chunked, gzip",
                                                                "identity", "xchunked"]))
        case.shutdown_write = True
        case.pre_location = True
        n.append("odd Transfer-Encoding")
    elif op == 7:
        exp = rng.choice(["100-continue", "100-Continue", "200-ok", "x"])
        case.headers = _set(h, "Expect", exp)
        case.pre_location |= exp.lower() != "100-continue"
        n.append(f"Expect {exp}")
    elif op == 8:
        case.headers = h + [("X-Big", "b" * rng.choice([4000, 9000, 20000]))]
        case.pre_location = True
        n.append("big header")
    elif op == 9:
        case.headers = h + [(f"X-H{i}", "v") for i in range(rng.choice([50, 150]))]
        case.pre_location = True
        n.append("many headers")
    elif op in (10, 11):
        m = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO", "TRACE",
                        "post", "CONNECT"])
        case.method = m
        case.pre_location |= m in ("TRACE", "CONNECT", "post")
        n.append(f"method {m}")
    elif op == 12:
        v = rng.choice(["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.1 x", ""])
        case.version = v
        case.pre_location |= v != "HTTP/1.0"
        if v == "HTTP/1.0":
            case.headers = _set(h, "Host", None)
        n.append(f"version {v!r}")
    elif op == 13:
        case.headers = _set(h, "Host", rng.choice([None, "", "a b", "x" * 300, "[::1"]))
        case.pre_location = True
        n.append("odd Host")
    elif op in (14, 15, 16):
        base, _, query = case.path.partition("?")
        pick = rng.randrange(9)
        if pick == 0:
            path = base + "/"
        elif pick == 1:
            path = base.replace("/v1/", "/v1//", 1)
        elif pick == 2:
            path = base.replace("/v1/", "/v1/./", 1)
        elif pick == 3:
            path = base + "?x=" + "q" * rng.choice([10, 3000])
        elif pick == 4:
            path = base.replace("/", "%2F", 2)
        elif pick == 5:
            path = base + "%00"
            case.pre_location = True
        elif pick == 6:
            path = "/v1/models/" + rng.choice(["%2Fx", "a" * 500, "m%20x", "..%2F..", "\u00e9"])
        elif pick == 7:
            path = base + "/" + "z" * 9000
            case.pre_location = True
        else:
            path = rng.choice(["/v1", "/v1/", "/v1/nothing", "/", "/classic", "/llmgw-status/x",
                               "/v2/chat/completions"])
        case.path = path
        n.append(f"path {path[:60]!r}")
    elif op == 17:
        auth = rng.choice(["Bearer " + "k" * 100, "Basic Zm9vOmJhcg==", "Bearer", "\x01"])
        case.headers = _set(h, "Authorization", auth)
        case.pre_location |= auth == "\x01"  # a control byte: httpd refuses the header
        n.append(f"Authorization {auth[:12]!r}")
    elif op == 18:
        case.headers = _set(h, "Accept", rng.choice(["text/event-stream", "application/json",
                                                     "text/html", "image/png"]))
        n.append("Accept")
    elif op == 19:
        case.headers = h + [("Content-Type", "text/plain")]
        n.append("duplicate Content-Type")
    elif op == 20:
        case.headers = _set(h, "Connection", rng.choice(["close", "keep-alive", "Upgrade",
                                                         "x"]))
        n.append("Connection")
    else:
        # A second Transfer-Encoding or Content-Length (mutations applied twice) is
        # refused by httpd.
        case.pre_location |= any(k.lower() in ("transfer-encoding", "content-length")
                                 for k, _ in h)
        case.headers = h + [("Content-Length", str(len(case.body))),
                            ("Transfer-Encoding", "chunked")]
        case.framing = "chunked"
        case.chunks = [case.body]
        n.append("both Content-Length and chunked")


def make_case(seed, index, routes):
    rng = random.Random(f"{seed}:request:{index}")
    marker = f"chaos-{seed}-{index}"
    pick = rng.random()
    if pick < 0.60:
        api = "chat"
    elif pick < 0.82:
        api = "embeddings"
    elif pick < 0.92:
        api = "models"
    else:
        api = "status"
    candidates = [r for r in routes if r.api == api] or routes
    route = rng.choice(candidates)
    case = Case(index=index, marker=marker, method="POST", path=route.path, version="HTTP/1.1",
                headers=_headers(), body=b"", api=api)
    case.headers.append(("X-Test-Id", marker))
    if api in ("chat", "embeddings"):
        model_pick = rng.random()
        if model_pick < 0.75 and route.models:
            model = rng.choice(route.models)
        elif model_pick < 0.85:
            model = None
        else:
            model = rng.choice(["no-such-model", "", "gpt-4o", "claude-mock", "a/b",
                                "x" * 300, "m\u00e9"])
        if api == "chat":
            doc, case.stream = _chat_body(rng, marker, model)
        else:
            doc = _embeddings_body(rng, marker, model)
        case.notes.append(f"route {route.name}, model {str(model)[:40]!r}"
                          + (", stream" if case.stream else ""))
        if rng.random() < 0.35:
            doc, what = cm.mutate_json(doc, rng, BODY_FOCUS)
            case.notes.append(f"JSON: {what}")
        case.body = cm.dumps(doc, rng)
        if rng.random() < 0.12:
            case.body, what = cm.mutate_bytes(case.body, rng)
            case.notes.append(f"bytes: {what}")
        if rng.random() < 0.02:
            case.body = case.body + b" " * rng.choice([2 << 20, 5 << 20])
            case.notes.append(f"body padded to {len(case.body)}")
    else:
        case.method = "GET"
        case.headers = _set(case.headers, "Content-Type", None)
        if api == "models":
            if rng.random() < 0.5 and route.models:
                case.path = route.path + "/" + rng.choice(route.models + ["nope", "a%2Fb"])
        else:
            case.path = route.path + rng.choice(["", "?format=json", "?format=prometheus",
                                                 "?auto", "?format=x"])
            if rng.random() < 0.3:
                case.method = "POST"
                case.body = b"{}"
                case.headers = _set(case.headers, "Content-Type", "application/json")
        case.notes.append(f"route {route.name}")
    if rng.random() < 0.22:
        for _ in range(1 if rng.random() < 0.8 else 2):
            _http_mutation(case, rng)
    if case.framing == "length":
        case.headers = _set(case.headers, "Content-Length",
                            str(len(case.body)) if case.body or case.method in (
                                "POST", "PUT", "PATCH") else None)
    return case
