"""Access, limits and spend end to end (DESIGN.md 11, issue 11): virtual keys, refusals and
their headers, allowlists, expiry, costs in headers and the access log, the SQLite ledger,
the status page per key, and `apachectl graceful` with an edited key list.

Every refusal is checked to happen before the provider is contacted (the mock records
every request it sees).
"""

import re

import pytest

import harness
import poolkit
import promparse
from accesskit import bearer, new_key, sqlite_rows, wait_rows
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

pytestmark = pytest.mark.allow_log()

KEYS = {}


def _entries():
    """The key list of the module's gateway (one fresh key per name, made once)."""
    specs = [
        ("team-a", {"models": ["gpt-mock*"], "routes": ["chat", "models"],
                    "limits": {"rpm": 1000, "tpm": 1000000}}),
        ("open", {}),
        ("rpm3", {"limits": {"rpm": 3}}),
        ("tpm", {"limits": {"tpm": 1200}}),
        ("conc", {"limits": {"concurrent": 1}}),
        ("expired", {"expires": "2020-01-01T00:00:00Z"}),
        ("budget", {"budget": {"usd": "0.0002", "period": "day"}}),
    ]
    out = []
    for name, extra in specs:
        if name not in KEYS:
            KEYS[name] = new_key(name, **extra)
        out.append(KEYS[name][1])
    return out


def key(name):
    return KEYS[name][0]


def gateway_yaml(mock, entries):
    backends = [harness.openai_backend("oa", mock.url, DEFAULT_KEY,
                                       models=["gpt-mock", "gpt-mock-mini"], maxRetries=0),
                harness.openai_backend("any", mock.url, DEFAULT_KEY, maxRetries=0)]
    routes = [harness.route("chat", "/v1/chat/completions", "oa"),
              harness.route("chat-any", "/v1/any/chat/completions", "any"),
              harness.route("embed", "/v1/embeddings", "oa"),
              harness.route("models", "/v1/models", "oa")]
    return harness.to_yaml({
        "backends": backends, "routes": routes,
        "access": {"keys": entries},
        # "Hello there" is 2 prompt tokens at the mock and "echo: Hello there" 3 completion
        # tokens: 2 * 10 + 3 * 30 = 110 USD per million tokens = 0.00011 USD.
        "pricing": {"gpt-mock": {"input": "10", "cachedInput": "5", "output": "30"},
                    "gpt-mock-*": {"input": "1", "output": "2"}},
        "ledger": {"driver": "sqlite3", "params": "ledger/ledger.db"},
    }) + "\n"


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    return start_gateway(request, "access", gateway_yaml(mock, _entries()),
                         server_extra=poolkit.STATUS_CONF)


def ledger_path(h):
    return str(h.root / "ledger" / "ledger.db")


def chat(h, who=None, headers=None, **kw):
    hdrs = dict(bearer(key(who))) if who else {}
    hdrs.update(headers or {})
    return post(h.url("/v1/chat/completions"), chat_body(**kw), headers=hdrs)


# -- identity ----------------------------------------------------------------------------

def test_open_without_access(module_so, mock, request):
    """Without access: the gateway is open, as before (any Authorization, or none); with
    pricing alone, answers still carry their cost."""
    yaml = harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY, maxRetries=0)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
        "pricing": {"gpt-mock": {"input": "10", "output": "30"}}}) + "\n"
    h = start_gateway(request, "access-open", yaml)
    r = post(h.url("/v1/chat/completions"), chat_body(), headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    assert "x-ratelimit-limit-requests" not in r.headers
    assert r.headers["x-llmgw-cost"] == "0.00011"
    e = h.access_entry(r.test_id)
    assert e["key"] == "-" and e["cost"] == "0.00011"


def test_valid_key(gw, mock):
    r = chat(gw, "team-a")
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-cost"] == "0.00011"
    e = gw.access_entry(r.test_id)
    assert e["key"] == "team-a"
    assert e["cost"] == "0.00011"
    # The client's key never reaches the provider; the gateway's own does.
    assert mock.requests[-1].headers["authorization"] == f"Bearer {DEFAULT_KEY}"


def test_x_api_key(gw):
    r = post(gw.url("/v1/chat/completions"), chat_body(),
             headers={"Authorization": "", "x-api-key": key("open")})
    assert r.status_code == 200, r.text
    assert gw.access_entry(r.test_id)["key"] == "open"


@pytest.mark.parametrize("headers,why", [
    ({"Authorization": ""}, "didn't provide an API key"),
    ({"Authorization": "Bearer sk-not-a-key"}, "Incorrect API key"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "didn't provide an API key"),
])
def test_missing_or_unknown_key(gw, mock, headers, why):
    before = len(mock.requests)
    r = post(gw.url("/v1/chat/completions"), chat_body(), headers=headers)
    err = assert_openai_error(r, 401, "invalid_api_key", "invalid_request_error")
    assert why in err["message"]
    assert "sk-not-a-key" not in r.text
    assert len(mock.requests) == before
    assert gw.access_entry(r.test_id)["error"] == "invalid_api_key"
    assert "sk-not-a-key" not in gw.error_log_text() + gw.access_log.read_text()


@pytest.mark.h2
def test_keys_change_on_one_connection(gw, mock):
    """A connection remembers its last key (one SHA-256 per connection and key), never more:
    on one kept-alive connection (one HTTP/2 connection under h2) every request is judged by
    its own key, an unknown or expired one is refused after a good one, and the good one
    answers again."""
    before = len(mock.requests)
    with harness.session() as s:
        def ask(who, expect):
            hdrs = dict(bearer(key(who))) if who in KEYS else {"Authorization": f"Bearer {who}"}
            r = post(gw.url("/v1/chat/completions"), chat_body(), headers=hdrs, session=s)
            assert r.status_code == expect, (who, r.status_code, r.text[:300])
            return gw.access_entry(r.test_id)["key"]

        assert ask("team-a", 200) == "team-a"
        assert ask("team-a", 200) == "team-a"
        assert ask("open", 200) == "open"
        assert ask(key("team-a")[:-1], 401) == "-"
        assert ask(key("team-a") + "x", 401) == "-"
        assert ask("expired", 401) == "expired"
        assert ask("expired", 401) == "expired"
        assert ask("team-a", 200) == "team-a"
    assert len(mock.requests) == before + 4


def test_expired_key(gw, mock):
    before = len(mock.requests)
    r = chat(gw, "expired")
    err = assert_openai_error(r, 401, "invalid_api_key")
    assert "expired" in err["message"] and '"expired"' in err["message"]
    assert len(mock.requests) == before


def test_key_is_needed_on_every_route(gw):
    r = harness.get(gw.url("/v1/models"))
    assert_openai_error(r, 401, "invalid_api_key")
    r = harness.get(gw.url("/v1/models"), headers=bearer(key("team-a")))
    assert r.status_code == 200


# -- allowlists -------------------------------------------------------------------------

def test_model_not_allowed(gw, mock):
    before = len(mock.requests)
    r = chat(gw, "team-a", model="other-model")
    err = assert_openai_error(r, 403, "model_not_allowed")
    assert err["param"] == "model"
    # A glob allows the family.
    assert chat(gw, "team-a", model="gpt-mock-mini").status_code == 200
    assert len(mock.requests) == before + 1


def test_route_not_allowed(gw, mock):
    before = len(mock.requests)
    r = post(gw.url("/v1/embeddings"), {"model": "gpt-mock", "input": "x"},
             headers=bearer(key("team-a")))
    assert_openai_error(r, 403, "route_not_allowed")
    assert len(mock.requests) == before


# -- limits -------------------------------------------------------------------------------

def test_rpm_refusal_headers(gw, mock):
    codes = []
    for i in range(5):
        r = chat(gw, "rpm3")
        codes.append(r.status_code)
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-remaining-requests"] == str(max(0, 2 - i))
        assert re.fullmatch(r"\d+(ms|s|m\d+s)", r.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in r.headers
    assert codes == [200, 200, 200, 429, 429]
    err = assert_openai_error(r, 429, "rate_limit_exceeded", "requests")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "requests per minute" in err["message"]


def test_tpm_reservation_and_reconciliation(gw, mock):
    # Each request reserves 2 + 8 prompt... + max_tokens 500; the mock answers with 5 tokens.
    body = dict(max_tokens=500)
    r1 = chat(gw, "tpm", **body)
    assert r1.status_code == 200
    assert r1.headers["x-ratelimit-limit-tokens"] == "1200"
    # After the answer the reservation is replaced by the 5 tokens used: the second and
    # third fit (each reserves ~510), although three reservations would not.
    r2 = chat(gw, "tpm", **body)
    r3 = chat(gw, "tpm", **body)
    assert (r2.status_code, r3.status_code) == (200, 200)
    # A request larger than the whole limit never fits.
    r = chat(gw, "tpm", max_tokens=5000)
    err = assert_openai_error(r, 429, "rate_limit_exceeded", "tokens")
    assert "Request too large" in err["message"]
    assert "Retry-After" not in r.headers


@pytest.mark.h2
def test_concurrency_limit(gw, mock):
    import threading
    results = {}

    def first():
        results["first"] = chat(gw, "conc")

    mock.script(Fault(delay=1.0))
    before = len(mock.requests)
    t = threading.Thread(target=first)
    t.start()
    assert harness.wait_until(lambda: len(mock.requests) > before, 5)
    r = chat(gw, "conc")
    assert_openai_error(r, 429, "rate_limit_exceeded")
    assert "concurrent" in r.json()["error"]["message"]
    t.join(10)
    assert results["first"].status_code == 200
    assert len(mock.requests) == before + 1
    assert chat(gw, "conc").status_code == 200


# -- spend ------------------------------------------------------------------------------

def test_budget_and_ledger(gw, mock):
    codes = [chat(gw, "budget").status_code for _ in range(3)]
    # 0.00011 per answer, budget 0.0002: the second starts under it, the third does not.
    assert codes == [200, 200, 429]
    r = chat(gw, "budget")
    err = assert_openai_error(r, 429, "insufficient_quota", "insufficient_quota")
    assert "budget" in err["message"]
    rows = wait_rows(lambda: sqlite_rows(ledger_path(gw), "name = 'budget'"), 2)
    assert len(rows) == 2
    row = rows[0]
    assert row["kind"] == "key" and row["route"] == "chat" and row["backend"] == "oa"
    assert row["requested_model"] == "gpt-mock" and row["model"] == "gpt-mock"
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]) == (2, 0, 3)
    assert row["cost_nusd"] == 110000 and abs(row["cost_usd"] - 0.00011) < 1e-12
    assert row["status"] == 200 and row["attempts"] == 1 and row["error"] is None
    assert row["time"].endswith("Z")
    # The budget survives a restart: the spend is read back from the ledger.
    gw.stop()
    gw.start()
    r = chat(gw, "budget")
    assert_openai_error(r, 429, "insufficient_quota")


def test_cached_tokens_priced(gw, mock):
    mock.script(Fault(usage={"prompt_tokens": 1000, "completion_tokens": 10,
                             "total_tokens": 1010,
                             "prompt_tokens_details": {"cached_tokens": 600}}))
    r = chat(gw, "open")
    # 400 * 10 + 600 * 5 + 10 * 30 = 7300 USD per million = 0.0073
    assert r.headers["x-llmgw-cost"] == "0.0073"


def test_unpriced_model_reported(gw, mock):
    r = post(gw.url("/v1/any/chat/completions"), chat_body(model="unpriced-model"),
             headers=bearer(key("open")))
    assert r.status_code == 200
    assert "x-llmgw-cost" not in r.headers
    assert gw.access_entry(r.test_id)["cost"] == "unpriced"


def test_stream_usage_counted(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body(stream=True),
             headers=bearer(key("open")), stream=True)
    sse = harness.read_sse(r)
    assert sse.done
    e = gw.access_entry(r.test_id)
    assert e["cost"] == "0.00011"
    rows = wait_rows(lambda: sqlite_rows(ledger_path(gw), "name = 'open' AND prompt_tokens = 2 "
                                         "AND completion_tokens = 3"), 1)
    assert rows


def test_failed_request_costs_nothing(gw, mock):
    mock.script(Fault(status=500))
    r = chat(gw, "open")
    assert r.status_code >= 500
    rows = wait_rows(lambda: sqlite_rows(ledger_path(gw), "name = 'open' AND status >= 500"), 1)
    assert rows[-1]["cost_nusd"] is None and rows[-1]["prompt_tokens"] is None
    assert rows[-1]["error"]


# -- status --------------------------------------------------------------------------------

def test_status_per_key(gw, mock):
    assert chat(gw, "team-a").status_code == 200
    data = poolkit.status_json(gw)
    entries = {e["name"]: e for e in data["access"]["entries"]}
    a = entries["team-a"]
    assert a["kind"] == "key" and a["requests"] >= 1
    assert a["limits"] == {"rpm": 1000, "tpm": 1000000, "concurrent": None}
    assert 0 < a["remaining"]["requests"] < 1000
    assert entries["budget"]["budget"]["period"] == "day"
    assert entries["budget"]["budget"]["spent_usd"] >= 0.0002
    assert data["access"]["ledger"]["driver"] == "sqlite3"
    text = poolkit.status_get(gw, "?format=prometheus").text
    fams = promparse.parse(text)
    assert "llmgw_access_requests_total" in fams
    html = poolkit.status_get(gw).text
    assert "team-a" in html and "<h2>Access</h2>" in html
    for k, _ in KEYS.values():
        for page in (text, html, str(data)):
            assert k not in page


def test_graceful_with_edited_keys(gw, mock):
    """A graceful restart with an edited key list: a removed key stops working at once,
    a new one works, and a kept key keeps its counters."""
    before = {e["name"]: e for e in poolkit.status_json(gw)["access"]["entries"]}
    entries = [e for e in _entries() if e["name"] != "open"]
    KEYS["new"] = new_key("new")
    entries.append(KEYS["new"][1])
    gw.write_yaml(gateway_yaml(mock, entries))
    gw.graceful()
    assert_openai_error(chat(gw, "open"), 401, "invalid_api_key")
    assert chat(gw, "new").status_code == 200
    after = {e["name"]: e for e in poolkit.status_json(gw)["access"]["entries"]}
    assert after["team-a"]["requests"] >= before["team-a"]["requests"]
    assert after["rpm3"]["refused"]["rpm"] == before["rpm3"]["refused"]["rpm"]
    assert "open" not in after
    gw.write_yaml(gateway_yaml(mock, _entries()))
    gw.graceful()


# -- configtest (issue 11 item 7) ---------------------------------------------------------

@pytest.mark.parametrize("access,extra,message", [
    ({"keys": [{"name": "a", "sha256": "abc"}]}, {},
     r'gateway\.yaml:\d+:\d+: key "a": sha256 must be 64 hexadecimal digits'),
    ({"keys": [{"name": "a", "sha256": "0" * 64}, {"name": "a", "sha256": "1" * 64}]}, {},
     r'gateway\.yaml:\d+:\d+: access keys #2: duplicate key name "a" \(first at line \d+\)'),
    ({"keys": [{"name": "a", "sha256": "0" * 64}, {"name": "b", "sha256": "0" * 64}]}, {},
     r'gateway\.yaml:\d+:\d+: key "b": the same sha256 as key "a"'),
    ({"keys": [{"name": "a", "sha256": "0" * 64, "models": ["gpt-5*"]}]}, {},
     r'gateway\.yaml:\d+:\d+: key "a": models: "gpt-5\*" names no model of this file'),
    ({"keys": [{"name": "a", "sha256": "0" * 64, "routes": ["embeddings"]}]}, {},
     r'gateway\.yaml:\d+:\d+: key "a": routes: "embeddings" names no route of this file'),
    ({"keys": [{"name": "a", "sha256": "0" * 64, "budget": {"usd": 5}}]},
     {"pricing": {"gpt-mock": {"input": 1}}},
     r'gateway\.yaml:\d+:\d+: key "a": a budget needs a price for every model it allows, '
     r'and model "gpt-mock-mini" has none in pricing:'),
])
def test_configtest_refuses(module_so, mock, access, extra, message):
    h = harness.Httpd("access-configtest")
    doc = {"backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY,
                                               models=["gpt-mock", "gpt-mock-mini"])],
           "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
           "access": access}
    doc.update(extra)
    h.write_yaml(harness.to_yaml(doc) + "\n")
    r = h.configtest()
    assert r.returncode != 0
    assert re.search(message, r.stdout + r.stderr), r.stdout + r.stderr
