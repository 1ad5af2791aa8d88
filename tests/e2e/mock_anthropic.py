"""A scriptable mock of the Anthropic Messages API for the mod_llmgw end-to-end suite.

It checks requests the way api.anthropic.com does, so that a translation the
real API would refuse fails here too:
  * POST /v1/messages only; `x-api-key` (or `Authorization: Bearer`) must be a
    known key; `anthropic-version` is required and must be a known version;
    the body must be a JSON object without unknown fields;
  * `model` and `max_tokens` are required; sampling parameters within range
    (and refused altogether with version 2026-10-21, providers.md 5.1);
  * `messages` alternate user/assistant starting with user; no "system" role
    inside; content blocks have the documented shapes (non-empty text, image
    and document sources, tool_use ids matching ^[a-zA-Z0-9_-]+$);
  * every tool_use of an assistant turn is answered by tool_result blocks at the
    start of the very next user turn, tool_result ids match the previous turn,
    and a history with tool blocks defines tools;
  * a final assistant turn (prefill) does not end in whitespace.
Errors come back in Anthropic's shape with its statuses.

Answers are realistic: a text answer echoes the last user turn (images and tool
results included, so tests can see what arrived); with tools and a tool_choice
that allows it, the "model" calls the first tool (or the first two, unless
disable_parallel_tool_use); stop sequences and max_tokens cut the text as the API
would. Streams are the real named-event sequence: message_start, ping,
content_block_start/delta/stop per block (input_json_delta starting with an empty
fragment, as the API does), message_delta, message_stop.

Faults are scripted per request with `AnthropicFault` (a `mock_openai.Fault` with
Anthropic extras): status + body + headers (429 with retry-after, 529
overloaded_error, ...), delays, a stream stalled, dropped, cut cleanly, or broken
by an unparseable event, an `error` event after N events, no message_stop.
Events are counted from 1 (message_start is event 1).

Only the standard library is used (plus mock_openai's server base).
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, fields

from mock_openai import STALL_CAP, Fault, MockServer, _ClientGone, continuation, split_words
from mockkit import sample_arguments, schema_problem, serve_until_interrupted

ANTHROPIC_KEY = "sk-ant-test-SECRET-4c1d9e"
VERSIONS = ("2023-06-01", "2026-10-21")

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOP_LEVEL = {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
              "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking",
              "output_config", "service_tier"}


@dataclass
class AnthropicFault(Fault):
    """A `Fault` (see mock_openai) plus:

    error_event_after  in a stream, after this many events send an `error` event
                       (error_type / error_message) and end the body
    stop_reason        override of the stop reason (Fault.finish_reason is ignored)
    thinking           answer with a thinking block (this text) before the rest
    no_done            in a stream: end the body after message_delta, without message_stop
    """

    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    stop_reason: str = None
    thinking: str = None


def anthropic_error(type_, message):
    return {"type": "error", "error": {"type": type_, "message": message},
            "request_id": "req_mock0001"}


_DEFAULT_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def default_error_body(status):
    type_, msg = _DEFAULT_ERRORS.get(status, ("api_error", f"Error {status}."))
    return anthropic_error(type_, msg)


class Invalid(Exception):
    """A request the real API answers with 400 invalid_request_error."""


# -- validation ------------------------------------------------------------------------


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _no_extra(obj, allowed, where):
    for k in obj:
        if k not in allowed:
            raise Invalid(f"{where}.{k}: Extra inputs are not permitted")


def _text(block, where):
    _no_extra(block, {"type", "text", "cache_control", "citations"}, where)
    t = block.get("text")
    if not isinstance(t, str):
        raise Invalid(f"{where}.text: Field required")
    if not t:
        raise Invalid(f"{where}: text content blocks must be non-empty")
    if not t.strip():
        raise Invalid(f"{where}: text content blocks must contain non-whitespace text")


def _base64(data, where):
    if not isinstance(data, str) or not data:
        raise Invalid(f"{where}.data: Field required")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{where}.data: invalid base64 data") from None


def _source(src, where, media_types):
    if not isinstance(src, dict):
        raise Invalid(f"{where}: Field required")
    kind = src.get("type")
    if kind == "base64":
        _no_extra(src, {"type", "media_type", "data"}, where)
        if src.get("media_type") not in media_types:
            raise Invalid(f"{where}.media_type: Input should be "
                          + " or ".join(f"'{m}'" for m in media_types))
        _base64(src.get("data"), where)
    elif kind == "url":
        _no_extra(src, {"type", "url"}, where)
        if not isinstance(src.get("url"), str) or not re.match(r"^https?://", src["url"]):
            raise Invalid(f"{where}.url: Input should be a valid URL")
    else:
        raise Invalid(f"{where}.type: Input should be 'base64' or 'url'")


def _block(block, role, where):
    if not isinstance(block, dict):
        raise Invalid(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        _text(block, where)
    elif kind == "image" and role == "user":
        _no_extra(block, {"type", "source", "cache_control"}, where)
        _source(block.get("source"), where + ".source", _IMAGE_TYPES)
    elif kind == "document" and role == "user":
        _no_extra(block, {"type", "source", "title", "context", "citations", "cache_control"},
                  where)
        _source(block.get("source"), where + ".source", ("application/pdf",))
    elif kind == "tool_use" and role == "assistant":
        _no_extra(block, {"type", "id", "name", "input", "cache_control"}, where)
        if not isinstance(block.get("id"), str) or not _ID.match(block["id"]):
            raise Invalid(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not block["name"]:
            raise Invalid(f"{where}.name: Field required")
        if not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result" and role == "user":
        _no_extra(block, {"type", "tool_use_id", "content", "is_error", "cache_control"}, where)
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content")
        if isinstance(content, list):
            for j, b in enumerate(content):
                if not isinstance(b, dict) or b.get("type") not in ("text", "image"):
                    raise Invalid(f"{where}.content.{j}: Input tag does not match any of the "
                                  "expected tags: 'text', 'image'")
                _block(b, "user", f"{where}.content.{j}")
        elif content is not None and not isinstance(content, str):
            raise Invalid(f"{where}.content: Input should be a valid string or list")
    elif kind in ("thinking", "redacted_thinking") and role == "assistant":
        pass
    else:
        raise Invalid(f"{where}.type: '{kind}' blocks are not allowed in {role} messages")


def _blocks(msg):
    c = msg["content"]
    return [{"type": "text", "text": c}] if isinstance(c, str) else c


def _validate_messages(msgs):
    if not isinstance(msgs, list) or not msgs:
        raise Invalid("messages: Field required" if not isinstance(msgs, list)
                      else "messages: at least one message is required")
    for i, m in enumerate(msgs):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise Invalid(f"{where}: Input should be a valid dictionary")
        role = m.get("role")
        if role == "system":
            raise Invalid(f'{where}: Unexpected role "system". The Messages API accepts a '
                          'top-level `system` parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        _no_extra(m, {"role", "content"}, where)
        content = m.get("content")
        last = i == len(msgs) - 1
        if isinstance(content, str):
            if not content and not (last and role == "assistant"):
                raise Invalid(f"{where}: all messages must have non-empty content except for "
                              "the optional final assistant message")
            if content and not content.strip() and not last:
                raise Invalid(f"{where}: text content blocks must contain non-whitespace text")
        elif isinstance(content, list):
            if not content and not (last and role == "assistant"):
                raise Invalid(f"{where}: all messages must have non-empty content except for "
                              "the optional final assistant message")
            for j, b in enumerate(content):
                _block(b, role, f"{where}.content.{j}")
        else:
            raise Invalid(f"{where}.content: Field required")
    if msgs[0]["role"] != "user":
        raise Invalid('messages: first message must use the "user" role')
    for i in range(1, len(msgs)):
        if msgs[i]["role"] == msgs[i - 1]["role"]:
            raise Invalid(f'messages: roles must alternate between "user" and "assistant", but '
                          f'found multiple "{msgs[i]["role"]}" roles in a row')
    _validate_tool_pairing(msgs)
    last = msgs[-1]
    if last["role"] == "assistant":
        blocks = _blocks(last)
        if blocks and blocks[-1].get("type") == "text" and \
                blocks[-1]["text"] != blocks[-1]["text"].rstrip():
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")


def _validate_tool_pairing(msgs):
    for i, m in enumerate(msgs):
        blocks = _blocks(m)
        if m["role"] == "assistant":
            ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            if not ids:
                continue
            nxt = msgs[i + 1] if i + 1 < len(msgs) else None
            lead = []
            for b in _blocks(nxt) if nxt else []:
                if b.get("type") != "tool_result":
                    break
                lead.append(b["tool_use_id"])
            missing = [t for t in ids if t not in lead]
            if nxt is None:
                continue  # a trailing tool call: the API lets the model go on
            if missing:
                if any(b.get("type") == "tool_result" for b in _blocks(nxt)):
                    raise Invalid(f"messages.{i + 1}: Did not find {len(ids)} tool_result "
                                  "block(s) at the beginning of this message. Messages following "
                                  "tool_use blocks must begin with a matching number of "
                                  "tool_result blocks.")
                raise Invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` "
                              f"blocks immediately after: {', '.join(missing)}. Each `tool_use` "
                              "block must have a corresponding `tool_result` block in the next "
                              "message.")
        else:
            prev = _blocks(msgs[i - 1]) if i > 0 else []
            known = {b["id"] for b in prev if b.get("type") == "tool_use"}
            for j, b in enumerate(blocks):
                if b.get("type") == "tool_result" and b["tool_use_id"] not in known:
                    raise Invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                                  f"`tool_result` blocks: {b['tool_use_id']}. Each `tool_result` "
                                  "block must have a corresponding `tool_use` block in the "
                                  "previous message.")


def _validate_tools(body):
    tools = body.get("tools")
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for i, t in enumerate(tools):
            where = f"tools.{i}"
            if not isinstance(t, dict):
                raise Invalid(f"{where}: Input should be a valid dictionary")
            _no_extra(t, {"name", "description", "input_schema", "strict", "type",
                          "cache_control"}, where)
            if t.get("type", "custom") != "custom":
                raise Invalid(f"{where}.type: Input tag '{t['type']}' does not match any of the "
                              "expected tags")
            if not isinstance(t.get("name"), str) or not _TOOL_NAME.match(t["name"]):
                raise Invalid(f"{where}.name: String should match pattern "
                              "'^[a-zA-Z0-9_-]{1,128}$'")
            schema = t.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Invalid(f"{where}.input_schema.type: Input should be 'object'")
            if schema_problem(schema):
                raise Invalid(f"{where}.input_schema: JSON schema is invalid: "
                              f"{schema_problem(schema)}")
            if "description" in t and not isinstance(t["description"], str):
                raise Invalid(f"{where}.description: Input should be a valid string")
            names.append(t["name"])
        if len(set(names)) != len(names):
            raise Invalid("tools: Tool names must be unique.")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool",
                                                                      "none"):
            raise Invalid("tool_choice: Input tag does not match any of the expected tags: "
                          "'auto', 'any', 'tool', 'none'")
        allowed = {"type", "name", "disable_parallel_tool_use"} if choice["type"] == "tool" \
            else {"type", "disable_parallel_tool_use"} if choice["type"] != "none" else {"type"}
        _no_extra(choice, allowed, "tool_choice")
        if not tools:
            raise Invalid("tool_choice: tool_choice may only be specified while providing tools.")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise Invalid(f"tool_choice.name: Tool '{choice.get('name')}' not found in tools")
    used = any(b.get("type") in ("tool_use", "tool_result") for m in body["messages"]
               for b in _blocks(m))
    if used and not tools:
        raise Invalid("Requests which include `tool_use` or `tool_result` blocks must define "
                      "tools.")


def validate(body, version):
    """Raise Invalid with the API's message for a request it would refuse."""
    for k in body:
        if k not in _TOP_LEVEL:
            raise Invalid(f"{k}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    mt = body.get("max_tokens")
    if mt is None:
        raise Invalid("max_tokens: Field required")
    if not _is_int(mt) or mt < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    for name in ("temperature", "top_p", "top_k"):
        if name in body and version == "2026-10-21":
            raise Invalid(f"{name}: this parameter is not supported with anthropic-version "
                          "2026-10-21")
    for name in ("temperature", "top_p"):
        v = body.get(name)
        if name in body and (not _is_num(v) or v < 0 or v > 1):
            raise Invalid(f"{name}: Input should be less than or equal to 1")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise Invalid("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(
            isinstance(s, str) and s.strip() for s in stops)):
        raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    meta = body.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise Invalid("metadata: Input should be a valid dictionary")
        _no_extra(meta, {"user_id"}, "metadata")
    system = body.get("system")
    if isinstance(system, list):
        for i, b in enumerate(system):
            if not isinstance(b, dict) or b.get("type") != "text":
                raise Invalid(f"system.{i}.type: Input should be 'text'")
            _text(b, f"system.{i}")
    elif system is not None and not isinstance(system, str):
        raise Invalid("system: Input should be a valid string or list")
    fmt = (body.get("output_config") or {}).get("format")
    if "output_config" in body and (not isinstance(fmt, dict) or fmt.get("type") != "json_schema"
                                    or not isinstance(fmt.get("schema"), dict)):
        raise Invalid("output_config.format: Input should be a json_schema format")
    _validate_messages(body.get("messages"))
    _validate_tools(body)


# -- answers --------------------------------------------------------------------------


def _describe(block):
    """What the echo says about one user block."""
    kind = block.get("type")
    if kind == "text":
        return block["text"]
    if kind == "image":
        src = block["source"]
        if src["type"] == "url":
            return f"[image url {src['url']}]"
        return f"[image {src['media_type']} {len(base64.b64decode(src['data']))} bytes]"
    if kind == "document":
        return f"[document {block['source'].get('media_type')}]"
    if kind == "tool_result":
        c = block.get("content")
        if isinstance(c, list):
            c = " ".join(b.get("text", "") for b in c)
        return f"[result {block['tool_use_id']}: {c or ''}]"
    return ""


def _tokens(text):
    return max(1, len(str(text).split()))


class MockAnthropic(MockServer):
    """The Anthropic Messages API (POST /v1/messages, GET /v1/models).

    keys    accepted keys (x-api-key or Authorization: Bearer)
    models  ids listed by GET /v1/models
    """

    name = "anthropic"

    def __init__(self, keys=(ANTHROPIC_KEY,), models=("claude-mock",), host="127.0.0.1"):
        super().__init__(host, keys, models)

    @property
    def url(self):
        """The endpoint to put in gateway.yaml (no /v1, as for api.anthropic.com)."""
        return self.base

    def _pop_fault(self):
        """A queued fault as an AnthropicFault (plain Faults are accepted too)."""
        f = super()._pop_fault()
        if isinstance(f, AnthropicFault):
            return f
        return AnthropicFault(**{x.name: getattr(f, x.name) for x in fields(Fault)})

    # -- routing -----------------------------------------------------------------

    def route(self, h, rec, fault):
        if rec.path == "/v1/models" and rec.method == "GET":
            target = self._models
        elif rec.path == "/v1/messages" and rec.method == "POST":
            target = self._messages
        elif rec.path == "/v1/messages/count_tokens" and rec.method == "POST":
            target = self._count_tokens
        else:
            self.send_json(h, rec, 404, anthropic_error("not_found_error", "Not found"))
            return
        err = self._check_headers(rec)
        if err is not None:
            self.send_json(h, rec, err[0], err[1], self._headers())
            return
        if not self.send_scripted_answer(h, rec, fault, default_error_body):
            target(h, rec, fault)

    def _check_headers(self, rec):
        key = rec.headers.get("x-api-key")
        auth = rec.headers.get("authorization", "")
        if key is None and auth.startswith("Bearer "):
            key = auth[len("Bearer "):]
        if key is None:
            return 401, anthropic_error("authentication_error", "x-api-key header is required")
        if key not in self.keys:
            return 401, anthropic_error("authentication_error", "invalid x-api-key")
        version = rec.headers.get("anthropic-version")
        if version is None:
            return 400, anthropic_error("invalid_request_error",
                                        "anthropic-version: header is required")
        if version not in VERSIONS:
            return 400, anthropic_error("invalid_request_error",
                                        f"anthropic-version: invalid version {version}")
        if rec.method == "POST":
            ctype = rec.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" or not isinstance(rec.body, dict):
                return 400, anthropic_error("invalid_request_error",
                                            "There was an issue with your request body: the "
                                            "body must be a JSON object")
        return None

    def _headers(self):
        return {"request-id": f"req_mock{next(self._seq)}",
                "anthropic-ratelimit-requests-limit": "1000",
                "anthropic-ratelimit-requests-remaining": "999",
                "anthropic-ratelimit-requests-reset": "2026-11-26T00:00:00Z"}

    # -- messages ------------------------------------------------------------------

    def _messages(self, h, rec, fault):
        try:
            validate(rec.body, rec.headers["anthropic-version"])
        except Invalid as e:
            self.send_json(h, rec, 400, anthropic_error("invalid_request_error", str(e)),
                           self._headers())
            return
        answer = self.plan_answer(rec.body, fault)
        if rec.body.get("stream") is True:
            self.start_stream(h, rec, self._headers(), fault)
            if fault.drop == "after_headers":
                self._abort(h, rec, "dropped")
                return
            self.run_events(h, rec, fault, self.stream_events(answer, fault))
        else:
            self.send_json(h, rec, 200, self.message(answer), self._headers(), fault)

    def _count_tokens(self, h, rec, fault):
        """POST /v1/messages/count_tokens: a Messages request without max_tokens / stream
        (those are refused, as the API does), counted with the mock's tokenizer."""
        body = rec.body
        for k in ("max_tokens", "stream", "stop_sequences", "temperature", "metadata"):
            if k in body:
                self.send_json(h, rec, 400, anthropic_error(
                    "invalid_request_error", f"{k}: Extra inputs are not permitted"),
                    self._headers())
                return
        try:
            validate(dict(body, max_tokens=1), rec.headers["anthropic-version"])
        except Invalid as e:
            self.send_json(h, rec, 400, anthropic_error("invalid_request_error", str(e)),
                           self._headers())
            return
        text = json.dumps([body.get("system"), body["messages"], body.get("tools")])
        self.send_json(h, rec, 200, {"input_tokens": _tokens(text)}, self._headers(), fault)

    def plan_answer(self, body, fault):
        """What the mock "model" answers: a dict used by both the JSON and the stream form."""
        last = body["messages"][-1]
        prefill = ""
        if last["role"] == "assistant":
            prefill = "".join(b.get("text", "") for b in _blocks(last))
            last = body["messages"][-2] if len(body["messages"]) > 1 else last
        said = " ".join(filter(None, (_describe(b) for b in _blocks(last))))
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        answered = any(b.get("type") == "tool_result" for b in _blocks(last))
        calls = []
        if fault.tool_calls is not None:
            calls = [(n, a if isinstance(a, dict) else json.loads(a)) for n, a in fault.tool_calls]
        elif tools and choice["type"] != "none" and fault.content is None and (
                not answered or choice["type"] in ("any", "tool")):
            chosen = tools[:1]
            if choice["type"] == "tool":
                chosen = [t for t in tools if t["name"] == choice["name"]]
            elif not choice.get("disable_parallel_tool_use"):
                chosen = tools[:2]  # the "model" calls up to two tools in parallel
            calls = [(t["name"], sample_arguments(t["input_schema"])) for t in chosen]
        text = None
        if fault.content is not None:
            text = fault.content
        elif fault.chunks is not None:
            text = "".join(fault.chunks)
        elif (body.get("output_config") or {}).get("format"):
            text = json.dumps(sample_arguments(body["output_config"]["format"]["schema"]))
        elif calls:
            text = "Let me check." if not fault.tool_calls else None
        else:
            text = (prefill and "...") or "echo: " + said
        pieces = fault.chunks if fault.chunks is not None else split_words(text or "")
        # A prefill is continued: the rest of the answer the "model" would give.
        cont = continuation("echo: " + said, prefill) if prefill and fault.content is None \
            and fault.chunks is None and not calls else None
        if cont:
            text, pieces = cont
        stop_reason, stop_sequence = ("tool_use" if calls else "end_turn"), None
        for s in body.get("stop_sequences") or []:
            if text and s in text:
                text = text[:text.index(s)]
                pieces, calls = split_words(text) if text else [], []
                stop_reason, stop_sequence = "stop_sequence", s
                break
        if len(pieces) > body["max_tokens"] and not calls:
            pieces = pieces[:body["max_tokens"]]
            text, stop_reason = "".join(pieces), "max_tokens"
        seq = next(self._seq)
        input_tokens = sum(_tokens(_describe(b)) for m in body["messages"] for b in _blocks(m)
                           if b.get("type") != "tool_use")
        if isinstance(body.get("system"), str):
            input_tokens += _tokens(body["system"])
        output_tokens = max(1, len(pieces) + sum(len(json.dumps(a)) // 4 + 1 for _, a in calls))
        usage = fault.usage or {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0, "output_tokens": output_tokens}
        return {
            "id": f"msg_mock{seq:04d}",
            "model": fault.model or body["model"],
            "thinking": fault.thinking,
            "text": text if text else None,
            "pieces": pieces if text else [],
            "calls": [{"id": f"toolu_mock{seq:04d}x{i}", "name": n, "input": a}
                      for i, (n, a) in enumerate(calls)],
            "stop_reason": fault.stop_reason or stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    @staticmethod
    def content_blocks(a):
        out = []
        if a["thinking"]:
            out.append({"type": "thinking", "thinking": a["thinking"], "signature": "c2lnbmF0dXJl"})
        if a["text"]:
            out.append({"type": "text", "text": a["text"]})
        for c in a["calls"]:
            out.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["input"]})
        return out

    def message(self, a):
        return {"id": a["id"], "type": "message", "role": "assistant", "model": a["model"],
                "content": self.content_blocks(a), "stop_reason": a["stop_reason"],
                "stop_sequence": a["stop_sequence"], "usage": a["usage"]}

    def stream_events(self, a, fault):
        """The named-event sequence of answer `a`: [(event name, data dict)]."""
        u = a["usage"]
        start_usage = {k: u.get(k, 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                  "cache_read_input_tokens")}
        start_usage["output_tokens"] = 1
        ev = [("message_start", {"type": "message_start", "message": {
            "id": a["id"], "type": "message", "role": "assistant", "model": a["model"],
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
            ("ping", {"type": "ping"})]
        index = 0

        def block(start, deltas):
            nonlocal index
            ev.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": start}))
            for d in deltas:
                ev.append(("content_block_delta", {"type": "content_block_delta",
                                                   "index": index, "delta": d}))
            ev.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if a["thinking"]:
            block({"type": "thinking", "thinking": ""},
                  [{"type": "thinking_delta", "thinking": a["thinking"]},
                   {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}])
        if a["text"]:
            block({"type": "text", "text": ""},
                  [{"type": "text_delta", "text": p} for p in a["pieces"]])
        for c in a["calls"]:
            args = json.dumps(c["input"])
            block({"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}},
                  [{"type": "input_json_delta", "partial_json": ""}] +
                  [{"type": "input_json_delta", "partial_json": args[j:j + 7]}
                   for j in range(0, len(args), 7)])
        ev.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": a["stop_reason"],
                                               "stop_sequence": a["stop_sequence"]},
                                     "usage": {"output_tokens": u.get("output_tokens", 0)}}))
        if not fault.no_done:
            ev.append(("message_stop", {"type": "message_stop"}))
        return ev

    def run_events(self, h, rec, fault, events):
        """Write named SSE events with the fault's pacing and failures, then end the body."""
        if fault.first_event_delay and self.wait(h, fault.first_event_delay, fault):
            raise _ClientGone()
        for i, (name, data) in enumerate(events):
            n = rec.events_sent
            if fault.stall_after is not None and n >= fault.stall_after:
                # The outcome stays "pending" while the stall lasts: a test waiting for it
                # must see how it ended (the client closed, or the cap ran out).
                if self._pause(h, STALL_CAP):
                    raise _ClientGone()
                self._abort(h, rec, "stalled")
                return
            if fault.drop_after is not None and n >= fault.drop_after:
                self._abort(h, rec, "dropped")
                return
            if fault.end_after is not None and n >= fault.end_after:
                break
            if fault.error_event_after is not None and n >= fault.error_event_after:
                err = anthropic_error(fault.error_type, fault.error_message)
                del err["request_id"]
                self.write_chunk(h, f"event: error\ndata: {json.dumps(err)}\n\n".encode())
                rec.events_sent += 1
                break
            bad = b'event: content_block_delta\ndata: {"type":"content_blo\n\n'
            if self.send_garbage(h, rec, fault, len(events) - i, bad):
                return
            if self.garbage_before(fault, n):
                self.write_chunk(h, bad)
            if i > 0 and fault.chunk_delay and self.wait(h, fault.chunk_delay, fault):
                raise _ClientGone()
            payload = json.dumps(data, separators=(",", ":"))
            self.write_chunk(h, f"event: {name}\ndata: {payload}\n\n".encode())
            rec.events_sent += 1
        self.end_chunks(h)
        rec.outcome = "complete"
        if fault.close_after:
            self._abort(h, rec, "complete")

    # -- models ----------------------------------------------------------------------

    def _models(self, h, rec, fault):
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-02-17T00:00:00Z"}
                for m in self.models]
        self.send_json(h, rec, 200, {"data": data, "has_more": False,
                                     "first_id": self.models[0] if self.models else None,
                                     "last_id": self.models[-1] if self.models else None},
                       self._headers(), fault)


if __name__ == "__main__":  # run stand-alone for manual poking: python3 mock_anthropic.py
    with MockAnthropic() as m:
        serve_until_interrupted(
            f"mock Anthropic on {m.url} (key {ANTHROPIC_KEY}); Ctrl-C to stop")
