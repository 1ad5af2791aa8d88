"""Mocks of the OpenAI dialects for the mod_llmgw end-to-end suite: Azure OpenAI, a Llama
host (vLLM-like) and Mistral (providers.md sections 4, 7 and 8).

Each validates requests the way the real service does, so that a gateway that sends what
the real service would refuse fails here too, and each answers in the service's own
variant of the OpenAI format (the differences the gateway must undo):

MockAzure    /openai/deployments/<deployment>/{chat/completions,embeddings}?api-version=...
             `api-key` header only; api-version required (404 without, 400 when unknown);
             404 DeploymentNotFound; `developer` refused before 2024-12-01-preview and
             `stream_options` before 2024-09-01-preview ("Unrecognized request argument");
             answers carry prompt_filter_results / content_filter_results, the stream
             opens with the empty annotation chunk and carries filter-only chunks; a prompt
             containing FILTER_PROMPT is refused with Azure's content_filter 400, one
             containing FILTER_OUTPUT ends with finish_reason content_filter; errors in
             Azure's shape ({"error":{"code":"401","message":...}}).
MockLlama    /v1/{chat/completions,embeddings,models} of a vLLM server: optional bearer key,
             served model names only (404 NotFoundError otherwise), vLLM's flat error
             format; with `reject_unknown` (default) any top-level field outside the host's
             schema is a 400, as Groq does; tool-call ids `chatcmpl-tool-<hex>`; chunks
             carry vLLM extras (stop_reason, token_ids) and usage only when asked.
MockMistral  /v1/{chat/completions,embeddings,models}: every unknown field at any level is a
             422 extra_forbidden (Mistral's object-valued message), tool-call ids must match
             ^[a-zA-Z0-9]{9}$ (400 code 3280), a user turn right after a tool turn is 400
             code 3230, the last message must be user/tool or a prefix assistant, every tool
             message must answer an earlier call; answers: content "" beside tool calls,
             `prefix`/`index` extras, stream tool calls complete in one delta without
             `type`, usage inside the finish chunk; 401 `{"message":"Unauthorized"}`,
             429 `{"message":"Requests rate limit exceeded"}`.

All three use `Fault` scripting and request recording from mock_openai.py.
"""

import base64
import json
import re
import struct
import time
import uuid

from mock_openai import (Fault, MockOpenAI, MockServer, continuation, message_text,
                         openai_error, prompt_tokens_for, sample_arguments, split_words)
from mockkit import serve_until_interrupted

AZURE_KEY = "azure-test-KEY-4f1c9e0d7b"
MISTRAL_KEY = "mistral-test-KEY-8a7b6c5d4e"
LLAMA_KEY = "llama-test-KEY-2b3c4d"

AZURE_VERSIONS = ("2024-02-01", "2024-06-01", "2024-10-21", "2025-04-01-preview")

_SAFE = {"filtered": False, "severity": "safe"}
_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# Azure OpenAI
# ---------------------------------------------------------------------------------------

def azure_error(code, message, status=None):
    return {"error": {"code": code, "message": message}}


class MockAzure(MockOpenAI):
    """Azure OpenAI, deployment-style URLs (providers.md 4.1).

    deployments  deployment name -> the model it serves (reported as `model`)
    """

    name = "azure"
    _PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")

    def __init__(self, keys=(AZURE_KEY,), deployments=None, host="127.0.0.1"):
        super().__init__(keys=keys, host=host)
        self.deployments = dict(deployments or {"gpt4o-weather": "gpt-4o-2024-11-20",
                                                 "embed-small": "text-embedding-3-small"})

    @property
    def url(self):
        """The endpoint to put in gateway.yaml: the resource URL, without /openai."""
        return self.base

    @staticmethod
    def _version(rec):
        for part in rec.query.split("&"):
            k, _, v = part.partition("=")
            if k == "api-version":
                return v
        return None

    def route(self, h, rec, fault):
        m = self._PATH.match(rec.path)
        if not m or rec.method != "POST":
            self.send_json(h, rec, 404, azure_error("404", "Resource not found"))
            return
        version = self._version(rec)
        if version is None:
            self.send_json(h, rec, 404, azure_error("404", "Resource not found"))
            return
        if version not in AZURE_VERSIONS:
            self.send_json(h, rec, 400, azure_error(
                "BadRequest", f"API version not supported: {version}"))
            return
        if rec.headers.get("api-key") not in self.keys:
            self.send_json(h, rec, 401, azure_error(
                "401", "Access denied due to invalid subscription key or wrong API endpoint. "
                "Make sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource."))
            return
        deployment, op = m.group(1), m.group(2)
        if deployment not in self.deployments:
            self.send_json(h, rec, 404, azure_error(
                "DeploymentNotFound", "The API deployment for this resource does not exist. If "
                "you created the deployment within the last 5 minutes, please wait a moment "
                "and try again."))
            return
        err = self._check_json(rec)
        if err is not None:
            self.send_json(h, rec, err[0], err[1])
            return
        if fault.status != 200:
            self.send_fault_body(h, rec, fault, azure_error(str(fault.status),
                                                            f"Error {fault.status}."))
            return
        # The deployment selects the model; the body's `model` is ignored.
        body = dict(rec.body, model=self.deployments[deployment])
        if op == "embeddings":
            self._azure_embeddings(h, rec, fault, body)
        else:
            self._azure_chat(h, rec, fault, body, version)

    def _azure_chat(self, h, rec, fault, body, version):
        for i, msg in enumerate(body.get("messages") or []):
            if isinstance(msg, dict) and msg.get("role") == "developer" \
                    and version < "2024-12-01":
                self.send_json(h, rec, 400, openai_error(
                    f"Unsupported value: 'messages[{i}].role' does not support 'developer' "
                    "with this model.", param=f"messages[{i}].role", code="unsupported_value"))
                return
        if "stream_options" in body and version < "2024-09-01":
            self.send_json(h, rec, 400, openai_error(
                "Unrecognized request argument supplied: stream_options"))
            return
        err = self.validate_chat(body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        prompt = " ".join(message_text(m) for m in body["messages"] if isinstance(m, dict))
        if "FILTER_PROMPT" in prompt:
            self.send_json(h, rec, 400, {"error": {
                "message": "The response was filtered due to the prompt triggering Azure "
                           "OpenAI's content management policy. Please modify your prompt "
                           "and retry.",
                "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation",
                               "content_filter_result": dict(
                                   _FILTER_RESULTS, hate={"filtered": True,
                                                          "severity": "high"})}}})
            return
        if "FILTER_OUTPUT" in prompt:
            fault = Fault(content="This part was fine but", finish_reason="content_filter")
        answer = self.plan_answer(body, fault)
        headers = {"apim-request-id": str(uuid.uuid4()), "x-ms-region": "Sweden Central"}
        if body.get("stream") is True:
            self.start_stream(h, rec, headers, fault)
            self.run_stream(h, rec, fault, self._azure_events(body, answer))
        else:
            self.send_json(h, rec, 200, self._azure_completion(answer), headers, fault)

    def _azure_completion(self, a):
        out = self.completion(a)
        out.pop("service_tier", None)
        out["prompt_filter_results"] = [{"prompt_index": 0,
                                         "content_filter_results": _FILTER_RESULTS}]
        filtered = a["finish_reason"] == "content_filter"
        for c in out["choices"]:
            c["content_filter_results"] = dict(
                _FILTER_RESULTS, violence={"filtered": filtered,
                                           "severity": "high" if filtered else "safe"})
            c["message"].pop("annotations", None)
        return out

    def _azure_events(self, body, a):
        """OpenAI's chunks as Azure sends them: the annotation chunk first, filter results
        in every choice, a filter-only chunk after the first content."""
        out = [_compact({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                         "prompt_filter_results": [{"prompt_index": 0,
                                                    "content_filter_results": _FILTER_RESULTS}]})]
        for i, ev in enumerate(self.stream_events(body, a)):
            if ev == "[DONE]":
                out.append(ev)
                continue
            c = json.loads(ev)
            c.pop("service_tier", None)
            for ch in c["choices"]:
                ch["content_filter_results"] = {} if ch["finish_reason"] is None else \
                    _FILTER_RESULTS
            out.append(_compact(c))
            if i == 1:
                note = dict(c, choices=[{"index": 0, "delta": {}, "finish_reason": None,
                                         "content_filter_results": _FILTER_RESULTS,
                                         "content_filter_offsets": {"check_offset": 0,
                                                                    "start_offset": 0,
                                                                    "end_offset": 8}}])
                out.append(_compact(note))
        return out

    def _azure_embeddings(self, h, rec, fault, body):
        err = self.validate_embeddings(body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        rec.body = body
        self._embeddings(h, rec, fault)


# ---------------------------------------------------------------------------------------
# A Llama host (vLLM's OpenAI-compatible server)
# ---------------------------------------------------------------------------------------

def vllm_error(status, message, type_):
    return {"object": "error", "message": message, "type": type_, "param": None,
            "code": status}


# What the host's request schema knows (vLLM's ChatCompletionRequest, the OpenAI part).
LLAMA_CHAT_FIELDS = {
    "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens",
    "stop", "stream", "stream_options", "tools", "tool_choice", "response_format", "seed",
    "presence_penalty", "frequency_penalty", "n", "logprobs", "top_logprobs",
    "parallel_tool_calls", "user", "logit_bias", "top_k", "min_p", "repetition_penalty"}
LLAMA_EMBED_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}


def _handler_or_404(mock, h, rec, chat, embeddings):
    """The handler for rec's path and method on a Llama host or on Mistral, or None once
    the 404 that both send for anything else is sent."""
    ops = {"/v1/chat/completions": ("POST", chat), "/v1/embeddings": ("POST", embeddings),
           "/v1/models": ("GET", mock._models)}
    target = ops.get(rec.path)
    if target is None or target[0] != rec.method:
        mock.send_json(h, rec, 404, {"detail": "Not Found"})
        return None
    return target[1]


class MockLlama(MockOpenAI):
    """A vLLM server with Llama models (providers.md 8).

    keys            accepted bearer keys; None: started without --api-key (no auth)
    models          served model names
    reject_unknown  400 on top-level fields outside the host's schema (Groq does this;
                    vLLM would only warn): proves the gateway never forwards them
    """

    name = "llama"

    def __init__(self, keys=(LLAMA_KEY,), models=("llama-3.3-70b", "bge-m3"),
                 reject_unknown=True, host="127.0.0.1"):
        super().__init__(keys=keys or (), models=models, host=host)
        self.require_key = keys is not None
        self.reject_unknown = reject_unknown

    def route(self, h, rec, fault):
        target = _handler_or_404(self, h, rec, self._llama_chat, self._llama_embeddings)
        if target is None:
            return
        if self.require_key and rec.headers.get("authorization") not in \
                {f"Bearer {k}" for k in self.keys}:
            self.send_json(h, rec, 401, {"error": "Unauthorized"})
            return
        if rec.method == "POST":
            err = self._check_json(rec)
            if err is not None:
                self.send_json(h, rec, 400, vllm_error(400, err[1]["error"]["message"],
                                                       "BadRequestError"))
                return
            model = rec.body.get("model")
            if model not in self.models:
                self.send_json(h, rec, 404, vllm_error(
                    404, f"The model `{model}` does not exist.", "NotFoundError"))
                return
        if fault.status != 200:
            self.send_fault_body(h, rec, fault, vllm_error(fault.status,
                                                           f"Error {fault.status}.",
                                                           "InternalServerError"))
            return
        target(h, rec, fault)

    def _unknown(self, rec, allowed):
        extra = sorted(set(rec.body) - allowed) if self.reject_unknown else []
        if not extra:
            return None
        return {"error": {"message": f"property '{extra[0]}' is unsupported",
                          "type": "invalid_request_error"}}

    def _llama_chat(self, h, rec, fault):
        body = rec.body
        err = self._unknown(rec, LLAMA_CHAT_FIELDS) or self.validate_chat(body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        if body.get("stream_options") is not None and body.get("stream") is not True:
            self.send_json(h, rec, 400, vllm_error(
                400, "Stream options can only be defined when `stream=True`.",
                "BadRequestError"))
            return
        answer = self.plan_answer(body, fault)
        for c in answer["calls"]:
            c["id"] = "chatcmpl-tool-" + uuid.uuid4().hex
        answer["id"] = "chatcmpl-" + uuid.uuid4().hex
        if body.get("stream") is True:
            self.start_stream(h, rec, None, fault)
            self.run_stream(h, rec, fault, self._llama_events(body, answer))
            return
        out = self.completion(answer)
        for key in ("service_tier", "system_fingerprint"):
            out.pop(key, None)
        out["prompt_logprobs"] = None
        out["kv_transfer_params"] = None
        for c in out["choices"]:
            c["stop_reason"] = None
            c["message"].pop("annotations", None)
            c["message"]["reasoning_content"] = None
        out["usage"] = {k: v for k, v in out["usage"].items() if k.endswith("_tokens")}
        self.send_json(h, rec, 200, out, None, fault)

    def _llama_events(self, body, a):
        out = []
        for ev in self.stream_events(body, a):
            if ev == "[DONE]":
                out.append(ev)
                continue
            c = json.loads(ev)
            for key in ("service_tier", "system_fingerprint"):
                c.pop(key, None)
            for ch in c["choices"]:
                ch["stop_reason"] = None
                ch["token_ids"] = None
                ch["delta"].pop("refusal", None)
            if c.get("usage"):
                c["usage"] = {k: v for k, v in c["usage"].items() if k.endswith("_tokens")}
            out.append(_compact(c))
        return out

    def _llama_embeddings(self, h, rec, fault):
        err = self._unknown(rec, LLAMA_EMBED_FIELDS) or self.validate_embeddings(rec.body)
        if err is not None:
            self.send_json(h, rec, 400, err)
            return
        if not all(isinstance(x, str) for x in (rec.body["input"]
                                                 if isinstance(rec.body["input"], list)
                                                 else [rec.body["input"]])):
            self.send_json(h, rec, 400, vllm_error(400, "token inputs are not supported",
                                                   "BadRequestError"))
            return
        self._embeddings(h, rec, fault)


# ---------------------------------------------------------------------------------------
# Mistral
# ---------------------------------------------------------------------------------------

MISTRAL_CHAT_FIELDS = {
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop",
    "random_seed", "response_format", "tools", "tool_choice", "presence_penalty",
    "frequency_penalty", "n", "parallel_tool_calls", "prediction", "safe_prompt",
    "prompt_mode", "reasoning_effort", "metadata", "guardrails", "prompt_cache_key",
    "service_tier"}
MISTRAL_MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"}}
MISTRAL_EMBED_FIELDS = {"model", "input", "encoding_format", "output_dimension",
                        "output_dtype", "metadata"}
_MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Invalid(Exception):
    """A request Mistral refuses: status and body."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


def _extra(loc, value):
    return Invalid(422, {"object": "error", "message": {"detail": [
        {"type": "extra_forbidden", "loc": ["body"] + loc,
         "msg": "Extra inputs are not permitted", "input": value}]},
        "type": "invalid_request_error", "param": None, "code": None})


def _missing(loc):
    return Invalid(422, {"detail": [{"type": "missing", "loc": ["body"] + loc,
                                     "msg": "Field required"}]})


def _bad(loc, msg, value=None):
    return Invalid(422, {"object": "error", "message": {"detail": [
        {"type": "value_error", "loc": ["body"] + loc, "msg": msg, "input": value}]},
        "type": "invalid_request_error", "param": None, "code": None})


def _mistral_400(message, type_, code):
    return Invalid(400, {"object": "error", "message": message, "type": type_,
                         "param": None, "code": code})


def _only(obj, allowed, loc):
    if not isinstance(obj, dict):
        raise _bad(loc, "Input should be a valid dictionary", obj)
    for k in obj:
        if k not in allowed:
            raise _extra(loc + [k], obj[k])


def _check_id(tool_id):
    if not isinstance(tool_id, str) or not _MISTRAL_ID.match(tool_id):
        raise _mistral_400(f"Tool call id was {tool_id} but must be a-z, A-Z, 0-9, with a "
                           "length of 9.", "invalid_function_call", "3280")


def _check_content(content, loc, role):
    if isinstance(content, str) or (content is None and role == "assistant"):
        return
    if not isinstance(content, list):
        raise _bad(loc + ["content"], "Input should be a valid string or list", content)
    for j, part in enumerate(content):
        ploc = loc + ["content", j]
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            _only(part, {"type", "text"}, ploc)
        elif kind == "image_url" and role == "user":
            _only(part, {"type", "image_url"}, ploc)
            img = part["image_url"]
            if isinstance(img, dict):
                _only(img, {"url", "detail"}, ploc + ["image_url"])
                img = img.get("url")
            if not isinstance(img, str) or not img.startswith(("https://", "http://",
                                                                "data:image/")):
                raise _bad(ploc + ["image_url"], "Invalid image url", img)
        else:
            raise _bad(ploc, "Input tag does not match any of the expected tags", kind)


def _check_tool_calls(calls, loc, issued):
    if not isinstance(calls, list):
        raise _bad(loc, "Input should be a valid list", calls)
    for j, tc in enumerate(calls):
        _only(tc, {"id", "type", "function", "index"}, loc + [j])
        _check_id(tc.get("id"))
        fn = tc.get("function")
        _only(fn, {"name", "arguments"}, loc + [j, "function"])
        if not isinstance(fn.get("name"), str):
            raise _missing(loc + [j, "function", "name"])
        if not isinstance(fn.get("arguments"), (str, dict)):
            raise _missing(loc + [j, "function", "arguments"])
        issued.append(tc["id"])


def _check_messages(msgs):
    if not isinstance(msgs, list) or not msgs:
        raise _bad(["messages"], "List should have at least 1 item", msgs)
    issued, prev = [], None
    for i, m in enumerate(msgs):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in MISTRAL_MESSAGE_FIELDS:
            raise _bad(["messages", i], "Input tag does not match any of the expected tags",
                       role)
        _only(m, MISTRAL_MESSAGE_FIELDS[role], ["messages", i, role])
        if "content" not in m and not (role == "assistant" and m.get("tool_calls")):
            raise _missing(["messages", i, role, "content"])
        _check_content(m.get("content"), ["messages", i, role], role)
        if role == "assistant" and m.get("tool_calls") is not None:
            _check_tool_calls(m["tool_calls"], ["messages", i, role, "tool_calls"], issued)
        if role == "tool":
            _check_id(m.get("tool_call_id"))
            if m["tool_call_id"] not in issued:
                raise _mistral_400("Not the same number of function calls and responses",
                                   "invalid_request_message_order", "3230")
        if role == "user" and prev == "tool":
            raise _mistral_400("Unexpected role 'user' after role 'tool'",
                               "invalid_request_message_order", "3230")
        prev = role
    last = msgs[-1]
    if last["role"] not in ("user", "tool") and not (last["role"] == "assistant"
                                                     and last.get("prefix") is True):
        raise _mistral_400("Expected last role User or Tool (or Assistant with prefix True) "
                           f"for serving but got {last['role']}",
                           "invalid_request_message_order", "3230")


def _check_tools(body):
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad(["tools"], "Input should be a valid list", tools)
        for i, t in enumerate(tools):
            _only(t, {"type", "function"}, ["tools", i])
            fn = t.get("function")
            _only(fn, {"name", "description", "parameters", "strict"}, ["tools", i, "function"])
            for key in ("name", "parameters"):
                if key not in fn:
                    raise _missing(["tools", i, "function", key])
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "any", "required"):
        return
    if isinstance(choice, dict):
        _only(choice, {"type", "function"}, ["tool_choice"])
        _only(choice.get("function"), {"name"}, ["tool_choice", "function"])
        return
    raise _bad(["tool_choice"], "Input should be 'auto', 'none', 'any' or 'required'", choice)


def _check_response_format(rf):
    if rf is None:
        return
    _only(rf, {"type", "json_schema"}, ["response_format"])
    if rf.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad(["response_format", "type"], "Input should be 'text', 'json_object' or "
                   "'json_schema'", rf.get("type"))
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        _only(js, {"name", "description", "schema", "strict"}, ["response_format", "json_schema"])
        if "schema" not in js:
            raise _missing(["response_format", "json_schema", "schema"])


def validate_mistral_chat(body):
    """Mistral's checks (providers.md 7.2, 7.3); raises Invalid."""
    _only(body, MISTRAL_CHAT_FIELDS, [])
    if not isinstance(body.get("model"), str):
        raise _missing(["model"])
    _check_messages(body.get("messages"))
    _check_tools(body)
    _check_response_format(body.get("response_format"))
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise _bad(["stop"], "Input should be a valid string or list", stop)


def mistral_id():
    return "".join(_ALNUM[b % 62] for b in uuid.uuid4().bytes[:9])


class MockMistral(MockServer):
    """Mistral's chat, embeddings and models endpoints (providers.md 7).

    keys    accepted bearer keys
    models  ids listed by GET /v1/models (chat and embedding models)
    """

    name = "mistral"

    def __init__(self, keys=(MISTRAL_KEY,), models=("mistral-small-latest", "mistral-embed"),
                 host="127.0.0.1"):
        super().__init__(host, keys, models)

    @property
    def url(self):
        return self.base + "/v1"

    def route(self, h, rec, fault):
        target = _handler_or_404(self, h, rec, self._chat, self._embeddings)
        if target is None:
            return
        auth = rec.headers.get("authorization", "")
        if auth[len("Bearer "):] not in self.keys or not auth.startswith("Bearer "):
            self.send_json(h, rec, 401, {"message": "Unauthorized",
                                         "request_id": uuid.uuid4().hex})
            return
        if fault.status != 200:
            defaults = {429: {"message": "Requests rate limit exceeded"}}
            self.send_fault_body(h, rec, fault, defaults.get(fault.status, {
                "object": "error", "message": "Internal server error",
                "type": "internal_server_error", "param": None, "code": "1000"}))
            return
        if rec.method == "POST" and not isinstance(rec.body, dict):
            self.send_json(h, rec, 400, {"object": "error", "message": "Invalid JSON body",
                                         "type": "invalid_request_error", "param": None,
                                         "code": None})
            return
        try:
            target(h, rec, fault)
        except Invalid as e:
            self.send_json(h, rec, e.status, e.body)

    # -- chat --------------------------------------------------------------------------

    def _plan(self, body, fault):
        tools = body.get("tools") or []
        choice = body.get("tool_choice", "auto")
        calls = []
        if fault.tool_calls is not None:
            calls = [(n, a if isinstance(a, str) else json.dumps(a))
                     for n, a in fault.tool_calls]
        elif tools and choice != "none" and fault.content is None:
            chosen = tools[:1]
            if isinstance(choice, dict):
                wanted = choice["function"]["name"]
                chosen = [t for t in tools if t["function"]["name"] == wanted] or chosen
            elif body.get("parallel_tool_calls", True) is not False:
                chosen = tools[:2]
            calls = [(t["function"]["name"], json.dumps(sample_arguments(t))) for t in chosen]
        last_user = ""
        for m in body["messages"]:
            if m["role"] == "user":
                last_user = message_text(m)
        text = "" if calls else (fault.content if fault.content is not None
                                 else "echo: " + last_user)
        pieces = fault.chunks or (split_words(text) if text else [])
        last = body["messages"][-1]
        # A prefix assistant message is continued: the rest of the answer.
        cont = continuation(text, message_text(last)) if last["role"] == "assistant" \
            and last.get("prefix") is True and text and not fault.chunks else None
        if cont:
            text, pieces = cont
        prompt = prompt_tokens_for(body)
        completion = max(1, len(pieces) if text else len(calls) * 5)
        return {
            "id": uuid.uuid4().hex[:16], "created": int(time.time()),
            "model": fault.model or body["model"], "text": text,
            "pieces": pieces,
            "calls": [{"id": mistral_id(), "name": n, "arguments": a} for n, a in calls],
            "finish_reason": fault.finish_reason or ("tool_calls" if calls else "stop"),
            "usage": fault.usage or {"prompt_tokens": prompt, "completion_tokens": completion,
                                     "total_tokens": prompt + completion}}

    def _chat(self, h, rec, fault):
        validate_mistral_chat(rec.body)
        a = self._plan(rec.body, fault)
        if rec.body.get("stream") is True:
            self.start_stream(h, rec, None, fault)
            events = self._events(a)
            if fault.no_done:
                events = events[:-1]
            self.run_stream(h, rec, fault, events)
            return
        message = {"role": "assistant", "content": a["text"], "prefix": False,
                   "tool_calls": None}
        if a["calls"]:
            message["tool_calls"] = [{"id": c["id"], "type": "function", "index": i,
                                      "function": {"name": c["name"],
                                                   "arguments": c["arguments"]}}
                                     for i, c in enumerate(a["calls"])]
        self.send_json(h, rec, 200, {
            "id": a["id"], "object": "chat.completion", "created": a["created"],
            "model": a["model"], "usage": a["usage"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": a["finish_reason"]}]}, None, fault)

    @staticmethod
    def _events(a):
        def chunk(delta, finish=None, usage=None):
            c = {"id": a["id"], "object": "chat.completion.chunk", "created": a["created"],
                 "model": a["model"],
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                c["usage"] = usage
            return _compact(c)

        events = [chunk({"role": "assistant", "content": ""})]
        for piece in a["pieces"]:
            events.append(chunk({"content": piece}))
        for i, c in enumerate(a["calls"]):
            # Mistral: one complete delta per call, without `type`.
            events.append(chunk({"tool_calls": [{"id": c["id"], "function": {
                "name": c["name"], "arguments": c["arguments"]}, "index": i}]}))
        events.append(chunk({"content": ""}, a["finish_reason"], a["usage"]))
        return events + ["[DONE]"]

    # -- embeddings --------------------------------------------------------------------

    def _embeddings(self, h, rec, fault):
        body = rec.body
        _only(body, MISTRAL_EMBED_FIELDS, [])
        if not isinstance(body.get("model"), str):
            raise _missing(["model"])
        inp = body.get("input")
        items = inp if isinstance(inp, list) else [inp]
        if not items or not all(isinstance(x, str) for x in items):
            raise _bad(["input"], "Input should be a valid string or list of strings", inp)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _bad(["encoding_format"], "Input should be 'float' or 'base64'", fmt)
        if body["model"] == "mistral-embed" and body.get("output_dimension") is not None:
            raise _mistral_400("output_dimension is not supported for mistral-embed",
                               "invalid_request_error", "3051")
        dims = body.get("output_dimension") or 1024
        data = []
        for i, text in enumerate(items):
            vec = MockOpenAI.embedding_for(text, dims)
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() \
                if fmt == "base64" else vec
            data.append({"object": "embedding", "embedding": emb, "index": i})
        tokens = sum(len(x.split()) for x in items)
        self.send_json(h, rec, 200, {
            "id": "emb-" + uuid.uuid4().hex[:12], "object": "list", "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                      "completion_tokens": 0}}, None, fault)

    def _models(self, h, rec, fault):
        self.send_json(h, rec, 200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1764000000, "owned_by": "mistralai",
             "capabilities": {"completion_chat": m != "mistral-embed"},
             "max_context_length": 131072, "type": "base"} for m in self.models]},
            None, fault)


if __name__ == "__main__":  # python3 mock_dialects.py: all three on free ports, for poking
    with MockAzure() as az, MockLlama() as ll, MockMistral() as mi:
        serve_until_interrupted(f"azure   {az.url}  api-key {AZURE_KEY}",
                                f"llama   {ll.url}  bearer {LLAMA_KEY}",
                                f"mistral {mi.url}  bearer {MISTRAL_KEY}")
