"""The OpenAI Responses dialect end to end (ingress.md 3-5): `POST /v1/responses` on routes in
front of every backend type.

  * native: an `openai` backend (mock_responses.py) gets the client's own request and the
    client its answer and events unchanged; GET / DELETE /v1/responses/{id} are forwarded on
    a single-openai route;
  * translated: the anthropic, google and mock-dialect backends get the canonical request in
    their own API and the client a Response object / Responses events (sequence_number, no
    [DONE]);
  * pools: fail-over from a failing member to another type;
  * without a response store: previous_response_id is a clear 400 on a translated route,
    and store:true is answered as store:false.
"""

import json

import pytest

import harness
from clientkit import module_mock
from conftest import start_gateway
from harness import post, read_sse
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_openai import DEFAULT_KEY, Fault
from mock_responses import MockResponses

pytestmark = pytest.mark.allow_log()

GPT = "gpt-mock"
CLAUDE = "claude-mock"

oai = module_mock("oai", MockResponses)
claude = module_mock("claude", MockAnthropic)


@pytest.fixture(autouse=True)
def _fresh(oai, claude):
    oai.reset()
    claude.reset()
    yield


@pytest.fixture(scope="module")
def gw(request, module_so, oai, claude):
    yaml = harness.gateway_yaml(
        backends=[harness.openai_backend("gpt", oai.url, DEFAULT_KEY, defaultModel=GPT,
                                         maxRetries=0),
                  {"name": "claude", "type": "anthropic",
                   "config": {"apiKey": ANTHROPIC_KEY, "endpoint": claude.url,
                              "defaultModel": CLAUDE, "maxRetries": 0, "maxTokens": 300}},
                  {"name": "pool", "type": "pool", "strategy": "priority", "fallback": True,
                   "backends": [{"name": "gpt"}, {"name": "claude"}]}],
        routes=[harness.route("resp-gpt", "/v1/responses", "gpt"),
                harness.route("resp-claude", "/v1/claude/responses", "claude"),
                harness.route("resp-pool", "/v1/pool/responses", "pool")])
    return start_gateway(request, "responses", yaml)


def req(input_="Hello", model=GPT, **extra):
    body = {"model": model, "input": input_}
    body.update(extra)
    return body


TOOL = {"type": "function", "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}


# -- native ---------------------------------------------------------------------------

def test_native_openai_gets_the_client_request(gw, oai):
    body = req("Native", instructions="Be terse.", metadata={"k": "v"}, store=False)
    r = post(gw.url("/v1/responses"), body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "response" and out["id"].startswith("resp_mock")
    assert out["output"][0]["content"][0]["text"] == "echo: Native"
    [rec] = oai.requests
    assert rec.path == "/v1/responses"
    assert rec.body == body
    assert r.headers["x-llmgw-backend"] == "gpt"


@pytest.mark.mpm
@pytest.mark.h2
def test_native_stream_passes_events(gw, oai):
    r = post(gw.url("/v1/responses"), req("Stream natively", stream=True), stream=True)
    assert r.status_code == 200, r.text
    events = [json.loads(d) for _, d in read_sse(r).events]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_native_retrieve_and_delete_forwarded(gw, oai):
    r = post(gw.url("/v1/responses"), req("Keep me"))
    rid = r.json()["id"]
    got = harness.get(gw.url(f"/v1/responses/{rid}"))
    assert got.status_code == 200, got.text
    assert got.json()["id"] == rid
    items = harness.get(gw.url(f"/v1/responses/{rid}/input_items"))
    assert items.status_code == 200 and items.json()["data"][0]["content"] == "Keep me"
    gone = harness._request("DELETE", gw.url(f"/v1/responses/{rid}"), None, {}, "t", False,
                            30, None)
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert harness.get(gw.url(f"/v1/responses/{rid}")).status_code == 404


def test_cancel_is_refused(gw):
    r = post(gw.url("/v1/responses/resp_x/cancel"), {})
    harness.assert_openai_error(r, 400, "background_not_supported")


# -- translated -----------------------------------------------------------------------

def test_translated_answer_is_a_response(gw, claude):
    r = post(gw.url("/v1/claude/responses"),
             req("Hi Claude", model=CLAUDE, instructions="Be terse.", max_output_tokens=50))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "response" and out["id"].startswith("resp_gw")
    assert out["status"] == "completed"
    msg = out["output"][0]
    assert msg["type"] == "message" and msg["content"][0]["type"] == "output_text"
    assert msg["content"][0]["text"]
    assert out["usage"]["input_tokens"] > 0
    assert "input_tokens_details" in out["usage"]
    assert out["store"] is False  # no response store: answered honestly
    [rec] = claude.requests
    assert rec.path == "/v1/messages"
    assert rec.body["system"] == "Be terse." or rec.body["system"][0]["text"] == "Be terse."
    assert rec.body["max_tokens"] == 50


@pytest.mark.mpm
@pytest.mark.h2
def test_translated_stream_has_sequence_numbers_and_no_done(gw, claude):
    r = post(gw.url("/v1/claude/responses"), req("Stream it", model=CLAUDE, stream=True),
             stream=True)
    assert r.status_code == 200, r.text
    sse = read_sse(r)
    datas = [d for _, d in sse.events]
    assert "[DONE]" not in datas
    events = [json.loads(d) for d in datas]
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert types.index("response.output_item.added") < types.index("response.output_text.delta")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["usage"]["output_tokens"] > 0


def test_translated_tool_round_trip(gw, claude):
    r = post(gw.url("/v1/claude/responses"),
             req("Weather in Paris?", model=CLAUDE, tools=[TOOL]))
    assert r.status_code == 200, r.text
    [call] = [o for o in r.json()["output"] if o["type"] == "function_call"]
    assert call["name"] == "get_weather" and call["id"] != call["call_id"]
    follow = req([{"role": "user", "content": "Weather in Paris?"}, call,
                  {"type": "function_call_output", "call_id": call["call_id"],
                   "output": "sunny"}], model=CLAUDE, tools=[TOOL])
    r2 = post(gw.url("/v1/claude/responses"), follow)
    assert r2.status_code == 200, r2.text
    sent = claude.requests[-1].body["messages"]
    assert sent[-1]["role"] == "user" and sent[-1]["content"][0]["type"] == "tool_result"


def test_builtin_tool_on_translated_backend_is_refused(gw, claude):
    r = post(gw.url("/v1/claude/responses"),
             req("Search", model=CLAUDE, tools=[{"type": "web_search"}]))
    harness.assert_openai_error(r, 400)
    assert r.json()["error"]["param"] == "tools[0].type"
    assert claude.requests == []


def test_previous_response_id_without_store(gw, claude):
    r = post(gw.url("/v1/claude/responses"),
             req("Again", model=CLAUDE, previous_response_id="resp_gwunknown"))
    harness.assert_openai_error(r, 400, "response_store_disabled")
    assert r.json()["error"]["param"] == "previous_response_id"
    r = harness.get(gw.url("/v1/claude/responses/resp_gwunknown"))
    harness.assert_openai_error(r, 400, "response_store_disabled")


@pytest.mark.mpm
@pytest.mark.h2
def test_pool_falls_over_from_openai_to_claude(gw, oai, claude):
    oai.script(Fault(status=503))
    r = post(gw.url("/v1/pool/responses"), req("Fall over", model="pool"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "claude"
    assert r.json()["id"].startswith("resp_gw")


@pytest.mark.mpm
@pytest.mark.h2
def test_stream_failure_before_content_falls_over(gw, oai, claude):
    oai.script(Fault(drop_after=1))
    r = post(gw.url("/v1/pool/responses"), req("Fall over streaming", model="pool",
                                                stream=True), stream=True)
    assert r.status_code == 200, r.text
    events = [json.loads(d) for _, d in read_sse(r).events]
    assert events[-1]["type"] == "response.completed"
    assert r.headers["x-llmgw-backend"] == "claude"


# -- every backend type ---------------------------------------------------------------

from dialectkit import MODELS, TYPES, mocks, sdk, _fresh_mocks  # noqa: E402,F401
from clientkit import ok  # noqa: E402
import dialectkit  # noqa: E402

NATIVE = {"openai", "azure-openai"}


@pytest.fixture(scope="module")
def every(request, module_so, mocks):
    return dialectkit.start(request, "responses-every", mocks)


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_text(every, mocks, btype):
    r = post(every.url(f"/v1/{btype}/responses"),
             req("Hello there", model=MODELS[btype], instructions="Be terse."))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "response" and out["status"] == "completed"
    [msg] = out["output"]
    assert msg["type"] == "message" and "Hello there" in msg["content"][0]["text"]
    assert out["usage"]["total_tokens"] == (out["usage"]["input_tokens"]
                                            + out["usage"]["output_tokens"])
    assert r.headers["x-llmgw-backend"] == btype
    assert out["id"].startswith("resp_mock" if btype in NATIVE else "resp_gw")
    assert len(mocks[btype].requests) == 1


@pytest.mark.mpm
@pytest.mark.h2
@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_stream(every, mocks, btype):
    r = post(every.url(f"/v1/{btype}/responses"),
             req("Stream to me", model=MODELS[btype], stream=True), stream=True)
    assert r.status_code == 200, r.text
    datas = [d for _, d in read_sse(r).events]
    assert "[DONE]" not in datas
    events = [json.loads(d) for d in datas]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert "Stream to me" in text
    assert events[-1]["response"]["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_tool_round_trip(every, mocks, btype):
    url = every.url(f"/v1/{btype}/responses")
    first = req("Weather in Paris?", model=MODELS[btype], tools=[TOOL])
    r = post(url, first)
    assert r.status_code == 200, r.text
    calls = [o for o in r.json()["output"] if o["type"] == "function_call"]
    assert calls and calls[0]["name"] == "get_weather", r.json()
    call = calls[0]
    json.loads(call["arguments"])
    follow = req([{"role": "user", "content": "Weather in Paris?"}] + calls + [
        {"type": "function_call_output", "call_id": c["call_id"], "output": "sunny"}
        for c in calls], model=MODELS[btype], tools=[TOOL], tool_choice="none")
    r2 = post(url, follow)
    assert r2.status_code == 200, r2.text
    assert r2.json()["output"][-1]["type"] == "message"


@pytest.mark.parametrize("btype", TYPES)
def test_every_backend_structured_output(every, mocks, btype):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"], "additionalProperties": False}
    r = post(every.url(f"/v1/{btype}/responses"),
             req("Answer in JSON", model=MODELS[btype],
                 text={"format": {"type": "json_schema", "name": "answer", "schema": schema,
                                  "strict": True}}))
    assert r.status_code == 200, r.text
    [rec] = mocks[btype].requests
    sent = json.dumps(rec.body)
    assert "answer" in sent  # the schema reached the upstream in its own form


# -- official clients -----------------------------------------------------------------

@pytest.mark.parametrize("btype", TYPES)
def test_sdk_responses_create_and_stream(every, sdk, btype):
    base = every.url(f"/v1/{btype}")
    res = ok(sdk(case="responses_create", baseURL=base, model=MODELS[btype], prompt="Hi SDK"))
    assert res["status"] == "completed" and "Hi SDK" in res["output_text"]
    res = ok(sdk(case="responses_stream", baseURL=base, model=MODELS[btype],
                 prompt="Stream SDK"))
    assert "Stream SDK" in "".join(res["deltas"])
    assert res["sequence"] == list(range(len(res["sequence"])))
    assert res["final"]["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("btype", TYPES)
def test_sdk_responses_tools_and_structured(every, mocks, sdk, btype):
    base = every.url(f"/v1/{btype}")
    res = ok(sdk(case="responses_tools", baseURL=base, model=MODELS[btype]))
    assert res["calls"] and res["calls"][0]["name"] == "get_weather"
    assert res["second"]["output_types"][-1] == "message"
    mocks[btype].reset()
    res = ok(sdk(case="responses_structured", baseURL=base, model=MODELS[btype]))
    assert res["status"] == "completed"
    assert "answer" in json.dumps(mocks[btype].requests[0].body)


@pytest.mark.parametrize("btype", TYPES)
def test_vercel_ai_sdk(every, sdk, btype):
    base = every.url(f"/v1/{btype}")
    res = ok(sdk(case="ai_generate", baseURL=base, model=MODELS[btype], prompt="Hi Vercel"))
    assert "Hi Vercel" in res["text"]
    res = ok(sdk(case="ai_stream", baseURL=base, model=MODELS[btype], prompt="Stream Vercel"))
    assert "Stream Vercel" in res["text"] and res["errors"] == []
    # Without a response store only native backends resolve the SDK's item_reference
    # items; translated ones need store: false (README).
    res = ok(sdk(case="ai_tool", baseURL=base, model=MODELS[btype],
                 store=btype in NATIVE))
    assert res["toolCalls"][0] == "get_weather" and res["executed"]


@pytest.mark.parametrize("btype", TYPES)
def test_langchain_responses_api(every, sdk, btype):
    res = ok(sdk(case="langchain", baseURL=every.url(f"/v1/{btype}"), model=MODELS[btype],
                 prompt="Hi LangChain"))
    assert "Hi LangChain" in res["text"]


# -- the response store (sqlite ledger) -------------------------------------------------

from accesskit import new_key  # noqa: E402

OWNER, OWNER_ENTRY = new_key("team-a")
STRANGER, STRANGER_ENTRY = new_key("team-b")


@pytest.fixture(scope="module")
def stored(request, module_so, mocks):
    h = dialectkit.start(request, "responses-store", mocks, top={
        "access": {"keys": [OWNER_ENTRY, STRANGER_ENTRY]},
        "ledger": {"driver": "sqlite3", "params": "ledger/ledger.db"}})
    h.db = str(h.root / "ledger" / "ledger.db")
    return h


def as_(key):
    return {"Authorization": f"Bearer {key}"}


def test_store_previous_response_id_on_translated_backend(stored, mocks):
    url = stored.url("/v1/anthropic/responses")
    r1 = post(url, req("Weather in Paris?", model=MODELS["anthropic"], tools=[TOOL],
                       instructions="Turn one only."), headers=as_(OWNER))
    assert r1.status_code == 200, r1.text
    first = r1.json()
    assert first["store"] is True and first["id"].startswith("resp_gw")
    [call] = [o for o in first["output"] if o["type"] == "function_call"]
    r2 = post(url, req([{"type": "function_call_output", "call_id": call["call_id"],
                         "output": "sunny"}], model=MODELS["anthropic"], tools=[TOOL],
                       previous_response_id=first["id"]), headers=as_(OWNER))
    assert r2.status_code == 200, r2.text
    assert r2.json()["previous_response_id"] == first["id"]
    sent = mocks["anthropic"].requests[-1].body
    # turn-1 input, turn-1 output, the new output item; turn-1 instructions absent
    assert sent["messages"][0]["content"] in ("Weather in Paris?",
                                              [{"type": "text", "text": "Weather in Paris?"}])
    assert sent["messages"][1]["content"][-1]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert "Turn one only." not in json.dumps(sent)


def test_store_retrieve_input_items_delete(stored):
    url = stored.url("/v1/mistral/responses")
    rid = post(url, req("Keep this", model=MODELS["mistral"]), headers=as_(OWNER)).json()["id"]
    got = harness.get(stored.url(f"/v1/mistral/responses/{rid}"), headers=as_(OWNER))
    assert got.status_code == 200 and got.json()["id"] == rid
    items = harness.get(stored.url(f"/v1/mistral/responses/{rid}/input_items"),
                        headers=as_(OWNER)).json()
    assert items["object"] == "list" and all(i.get("id") for i in items["data"])
    # another key: as unknown as a missing id
    assert harness.get(stored.url(f"/v1/mistral/responses/{rid}"),
                       headers=as_(STRANGER)).status_code == 404
    r = post(url, req("Again", model=MODELS["mistral"], previous_response_id=rid),
             headers=as_(STRANGER))
    harness.assert_openai_error(r, 400, "previous_response_not_found")
    gone = harness._request("DELETE", stored.url(f"/v1/mistral/responses/{rid}"), None,
                            as_(OWNER), "t", False, 30, None)
    assert gone.status_code == 200 and gone.json() == {"id": rid, "object": "response",
                                                       "deleted": True}
    assert harness.get(stored.url(f"/v1/mistral/responses/{rid}"),
                       headers=as_(OWNER)).status_code == 404


def test_store_false_is_not_stored(stored):
    url = stored.url("/v1/meta/responses")
    out = post(url, req("Forget", model=MODELS["meta"], store=False), headers=as_(OWNER)).json()
    assert out["store"] is False
    assert harness.get(stored.url(f"/v1/meta/responses/{out['id']}"),
                       headers=as_(OWNER)).status_code == 404


@pytest.mark.mpm
@pytest.mark.h2
def test_store_stream_record_written_before_the_end(stored):
    url = stored.url("/v1/google/responses")
    r = post(url, req("Stream and keep", model=MODELS["google"], stream=True),
             headers=as_(OWNER), stream=True)
    events = [json.loads(d) for _, d in read_sse(r).events]
    rid = events[-1]["response"]["id"]
    r2 = post(url, req("And then?", model=MODELS["google"], previous_response_id=rid),
              headers=as_(OWNER))
    assert r2.status_code == 200, r2.text


def test_store_history_crosses_backend_types(stored, mocks):
    r1 = post(stored.url("/v1/anthropic/responses"), req("Remember tangerine",
                                                          model=MODELS["anthropic"]),
              headers=as_(OWNER))
    rid = r1.json()["id"]
    r2 = post(stored.url("/v1/openai/responses"),
              req("What was it?", model=MODELS["openai"], previous_response_id=rid),
              headers=as_(OWNER))
    assert r2.status_code == 200, r2.text
    sent = mocks["openai"].requests[-1].body
    # the native backend did not make turn 1: it gets the history inline
    assert "previous_response_id" not in sent
    assert "Remember tangerine" in json.dumps(sent["input"])


def test_store_native_continues_upstream(stored, mocks):
    url = stored.url("/v1/openai/responses")
    rid = post(url, req("Native turn one"), headers=as_(OWNER)).json()["id"]
    r2 = post(url, req("Native turn two", previous_response_id=rid), headers=as_(OWNER))
    assert r2.status_code == 200, r2.text
    assert mocks["openai"].requests[-1].body["previous_response_id"] == rid


@pytest.mark.parametrize("btype", TYPES)
def test_store_sdk_previous_and_vercel_item_reference(stored, sdk, btype):
    base = stored.url(f"/v1/{btype}")
    res = ok(sdk(case="responses_previous", baseURL=base, model=MODELS[btype], apiKey=OWNER))
    assert res["second"]["status"] == "completed"
    res = ok(sdk(case="ai_tool", baseURL=base, model=MODELS[btype], apiKey=OWNER, store=True))
    assert res["toolCalls"][0] == "get_weather" and res["executed"]
