"""A mock of OpenAI's Responses API (POST /v1/responses, GET / DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items, POST /v1/responses/input_tokens) beside the Chat
Completions API of mock_openai.MockOpenAI, for the gateway's native Responses passthrough
(ingress.md 4.1).

Validation is what the real API refuses, enough to catch a gateway that sends a chat
request or mangles the client's: unknown top-level fields are 400 "Unknown parameter",
`messages` in particular; `input` must be a string or an array of items of known types;
function tools must have the flat shape ({"type":"function","name",...}, not the chat
form nested under `function`); `previous_response_id` must name a response this mock
stored (store not false) or it is 400 previous_response_not_found.

Answers: the "model" echoes the last user text ("echo: ..."), or calls the first tool
when tools are given (tool_choice not "none") and no function_call_output follows; the
stream is the documented event sequence with sequence_number 0..n and no [DONE].
"""

import json
import re
import secrets
import threading
import time

from mock_dialects import AZURE_KEY, MockAzure, azure_error

from mock_openai import (DEFAULT_KEY, MockOpenAI, _ClientGone, default_error_body, openai_error,
                         sample_arguments, split_words)

_TOP_LEVEL = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
              "text", "reasoning", "max_output_tokens", "temperature", "top_p", "store",
              "previous_response_id", "include", "metadata", "stream", "stream_options",
              "truncation", "user", "safety_identifier", "prompt_cache_key", "service_tier",
              "background", "top_logprobs", "conversation", "prompt", "max_tool_calls"}
_ITEM_TYPES = {"message", "function_call", "function_call_output", "reasoning",
               "item_reference"}


def _text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class MockResponses(MockOpenAI):
    """MockOpenAI plus the Responses API."""

    name = "openai-responses"

    def __init__(self, keys=(DEFAULT_KEY,), models=("gpt-mock",), host="127.0.0.1"):
        super().__init__(keys=keys, models=models, host=host)
        self.stored = {}
        self._store_lock = threading.Lock()
        # Ids unique across mock instances, as the real service's are: two mocks behind one
        # gateway store must not both answer "resp_mock3".
        self.tag = secrets.token_hex(3)

    def reset(self):
        super().reset()
        with self._store_lock:
            self.stored.clear()

    def route(self, h, rec, fault):
        if not rec.path.startswith("/v1/responses"):
            super().route(h, rec, fault)
            return
        err = self._check_auth(rec)
        if err is None and rec.method == "POST":
            err = self._check_json(rec)
        if err is not None:
            self.send_json(h, rec, err[0], err[1])
            return
        if not self.send_scripted_answer(h, rec, fault, default_error_body):
            self.responses_api(h, rec, fault, rec.path[len("/v1/responses"):].strip("/"))

    def responses_api(self, h, rec, fault, rest):
        """One Responses API call; `rest` is the path after .../responses."""
        if rest == "" and rec.method == "POST":
            self._create(h, rec, fault)
        elif rest == "input_tokens" and rec.method == "POST":
            text = json.dumps([rec.body.get("instructions"), rec.body.get("input"),
                               rec.body.get("tools")])
            self.send_json(h, rec, 200, {"object": "response.input_tokens",
                                         "input_tokens": max(1, len(text.split()))})
        elif rest and "/" not in rest and rec.method in ("GET", "DELETE"):
            self._resource(h, rec, rest, rec.method == "DELETE")
        elif rest.endswith("/input_items") and rec.method == "GET":
            rid = rest[:-len("/input_items")]
            with self._store_lock:
                st = self.stored.get(rid)
            if st is None:
                self._not_found(h, rec, rid)
                return
            self.send_json(h, rec, 200, {"object": "list", "data": st["input"],
                                         "has_more": False})
        else:
            self.send_json(h, rec, 404, openai_error(
                f"Invalid URL ({rec.method} {rec.path})", "invalid_request_error"))

    def _not_found(self, h, rec, rid):
        self.send_json(h, rec, 404, openai_error(
            f"Response with id '{rid}' not found.", "invalid_request_error", None, None))

    def _resource(self, h, rec, rid, delete):
        with self._store_lock:
            st = self.stored.pop(rid, None) if delete else self.stored.get(rid)
        if st is None:
            self._not_found(h, rec, rid)
        elif delete:
            self.send_json(h, rec, 200, {"id": rid, "object": "response", "deleted": True})
        else:
            self.send_json(h, rec, 200, st["response"])

    @staticmethod
    def validate_responses(body):
        for k in body:
            if k not in _TOP_LEVEL:
                return openai_error(f"Unknown parameter: '{k}'.", param=k,
                                    code="unknown_parameter")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return openai_error("Missing required parameter: 'model'.", param="model")
        inp = body.get("input")
        if not isinstance(inp, (str, list)):
            return openai_error("Missing required parameter: 'input'.", param="input")
        if isinstance(inp, list):
            for i, item in enumerate(inp):
                t = item.get("type", "message") if isinstance(item, dict) else None
                if t not in _ITEM_TYPES:
                    return openai_error(f"Invalid value: '{t}'.", param=f"input[{i}].type",
                                        code="invalid_value")
                if t == "message" and item.get("role") not in ("user", "assistant", "system",
                                                               "developer"):
                    return openai_error("Invalid value for role.", param=f"input[{i}].role")
        for i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                continue
            if "function" in tool or not isinstance(tool.get("name"), str):
                return openai_error("Missing required parameter: 'tools[%d].name'." % i,
                                    param=f"tools[{i}].name", code="missing_required_parameter")
        return None

    def _create(self, h, rec, fault):
        body = rec.body
        err = self.validate_responses(body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        history = []
        prev = body.get("previous_response_id")
        if prev is not None:
            with self._store_lock:
                st = self.stored.get(prev)
            if st is None:
                self.send_json(h, rec, 400, openai_error(
                    f"Previous response with id '{prev}' not found.",
                    param="previous_response_id", code="previous_response_not_found"))
                return
            history = st["history"]
        inp = body["input"]
        items = [{"type": "message", "role": "user", "content": inp}] \
            if isinstance(inp, str) else list(inp)
        seq = next(self._seq)
        seq = f"{self.tag}x{seq}"
        rid = f"resp_mock{seq}"
        output = self.plan_output(body, history + items, fault, seq)
        words = sum(len(_text_of(i.get("content")).split()) for i in history + items)
        out_tokens = max(1, sum(len(_text_of(o.get("content")).split()) for o in output))
        response = {
            "id": rid, "object": "response", "created_at": int(time.time()),
            "status": "completed", "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "model": fault.model or body["model"],
            "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": prev, "store": body.get("store", True) is not False,
            "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "text": body.get("text", {"format": {"type": "text"}}),
            "metadata": body.get("metadata", {}),
            "usage": {"input_tokens": max(1, words),
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": out_tokens,
                      "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": max(1, words) + out_tokens},
        }
        if response["store"]:
            with self._store_lock:
                self.stored[rid] = {"response": response, "input": items,
                                    "history": history + items + output}
        if body.get("stream") is True:
            self.start_stream(h, rec, {"x-request-id": f"req_mock{seq}"}, fault)
            self.run_named(h, rec, fault, self.response_events(response))
        else:
            self.send_json(h, rec, 200, response, {"x-request-id": f"req_mock{seq}"}, fault)

    @staticmethod
    def plan_output(body, items, fault, seq):
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        answered = items and items[-1].get("type") == "function_call_output"
        if tools and body.get("tool_choice", "auto") != "none" and not answered \
                and fault.content is None:
            t = tools[0]
            nested = {"type": "function", "function": {"name": t["name"],
                                                        "parameters": t.get("parameters")}}
            return [{"type": "function_call", "id": f"fc_mock{seq}",
                     "call_id": f"call_mock{seq}", "name": t["name"],
                     "arguments": json.dumps(sample_arguments(nested)),
                     "status": "completed"}]
        last = ""
        for i in items:
            if i.get("type", "message") == "message" and i.get("role") == "user":
                last = _text_of(i.get("content"))
            elif i.get("type") == "function_call_output":
                last = "result " + str(i.get("output"))
        text = fault.content if fault.content is not None else "echo: " + last
        return [{"type": "message", "id": f"msg_mock{seq}", "status": "completed",
                 "role": "assistant",
                 "content": [{"type": "output_text", "text": text, "annotations": [],
                              "logprobs": []}]}]

    @staticmethod
    def response_events(response):
        """The documented Responses event sequence for `response` (name, payload)."""
        events = []

        def ev(kind, **fields):
            events.append((kind, dict(type=kind, sequence_number=len(events), **fields)))

        start = dict(response, status="in_progress", output=[], usage=None)
        ev("response.created", response=start)
        ev("response.in_progress", response=start)
        for oi, item in enumerate(response["output"]):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                ev("response.output_item.added", output_index=oi,
                   item=dict(item, status="in_progress", content=[]))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                ev("response.content_part.added", item_id=item["id"], output_index=oi,
                   content_index=0, part=part)
                for piece in split_words(text):
                    ev("response.output_text.delta", item_id=item["id"], output_index=oi,
                       content_index=0, delta=piece, logprobs=[])
                ev("response.output_text.done", item_id=item["id"], output_index=oi,
                   content_index=0, text=text, logprobs=[])
                ev("response.content_part.done", item_id=item["id"], output_index=oi,
                   content_index=0, part=dict(part, text=text))
            else:
                ev("response.output_item.added", output_index=oi,
                   item=dict(item, status="in_progress", arguments=""))
                ev("response.function_call_arguments.delta", item_id=item["id"],
                   output_index=oi, delta=item["arguments"])
                ev("response.function_call_arguments.done", item_id=item["id"],
                   output_index=oi, arguments=item["arguments"])
            ev("response.output_item.done", output_index=oi, item=item)
        ev("response.completed", response=response)
        return events

    def run_named(self, h, rec, fault, events):
        """Write named SSE events, with the fault's drop_after / error_event_after."""
        for i, (name, data) in enumerate(events):
            n = rec.events_sent
            if fault.drop_after is not None and n >= fault.drop_after:
                self._abort(h, rec, "dropped")
                return
            if fault.error_event_after is not None and n >= fault.error_event_after:
                err = {"type": "error", "sequence_number": n, "code": "server_error",
                       "message": fault.error_message, "param": None}
                self.write_chunk(h, f"event: error\ndata: {json.dumps(err)}\n\n".encode())
                rec.events_sent += 1
                break
            if i > 0 and fault.chunk_delay and self.wait(h, fault.chunk_delay, fault):
                raise _ClientGone()
            payload = json.dumps(data, separators=(",", ":"))
            self.write_chunk(h, f"event: {name}\ndata: {payload}\n\n".encode())
            rec.events_sent += 1
        self.end_chunks(h)
        rec.outcome = "complete"


class MockAzureResponses(MockAzure):
    """MockAzure plus Azure's Responses API: /openai/responses?api-version=... (dated
    versions from 2025-03-01, or preview) and the v1 form /openai/v1/responses, `api-key`
    header only; the `model` is a deployment name."""

    name = "azure-responses"
    _RESPONSES = re.compile(r"^/openai(/v1)?/responses(/.*)?$")

    def __init__(self, keys=(AZURE_KEY,), deployments=None, host="127.0.0.1"):
        super().__init__(keys=keys, deployments=deployments, host=host)
        self.stored = {}
        self._store_lock = threading.Lock()
        # Ids unique across mock instances, as the real service's are: two mocks behind one
        # gateway store must not both answer "resp_mock3".
        self.tag = secrets.token_hex(3)

    def reset(self):
        super().reset()
        with self._store_lock:
            self.stored.clear()

    def route(self, h, rec, fault):
        m = self._RESPONSES.match(rec.path)
        if not m:
            super().route(h, rec, fault)
            return
        version = self._version(rec)
        if not m.group(1) and (version is None or not (
                version == "preview" or version >= "2025-03-01")):
            self.send_json(h, rec, 404, azure_error("404", "Resource not found"))
            return
        if rec.headers.get("api-key") not in self.keys:
            self.send_json(h, rec, 401, azure_error("401", "Access denied due to invalid "
                                                           "subscription key."))
            return
        if rec.method == "POST":
            err = self._check_json(rec)
            if err is not None:
                self.send_json(h, rec, err[0], err[1])
                return
            if rec.body.get("model") not in self.deployments and (m.group(2) or "") == "":
                self.send_json(h, rec, 404, azure_error(
                    "DeploymentNotFound", "The API deployment for this resource does not "
                    "exist."))
                return
        if not self.send_scripted_answer(h, rec, fault, default_error_body):
            self.responses_api(h, rec, fault, (m.group(2) or "").strip("/"))

    responses_api = MockResponses.responses_api
    _create = MockResponses._create
    _resource = MockResponses._resource
    _not_found = MockResponses._not_found
    validate_responses = staticmethod(MockResponses.validate_responses)
    plan_output = staticmethod(MockResponses.plan_output)
    response_events = staticmethod(MockResponses.response_events)
    run_named = MockResponses.run_named
