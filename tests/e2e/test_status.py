"""The shared statistics and the status page (`SetHandler llmgw-status`) end to end.

- counters are shared by every httpd process (prefork with several children);
- JSON counts every attempt exactly, with the usage of the answers;
- Prometheus text parses with a strict parser (promparse.py) and, when Debian's
  `prometheus` package is installed, with `promtool check metrics`, and agrees with JSON;
- the HTML page lists every backend; no format shows a secret;
- counters survive `apache2 -k graceful`, a backend added by it starts at zero, one
  removed disappears, and no shared-memory segment is left behind;
- the in-flight count of a child killed in the middle of a request is released once the
  parent has reaped it, and least-busy chooses that backend again.
"""

import html.parser
import os
import re
import shutil
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests

import harness
import poolkit
import promparse
from conftest import fresh_mocks, mock_fixture, start_gateway
from harness import assert_openai_error, chat_body, post
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

pytestmark = [pytest.mark.allow_log(), pytest.mark.mpm]

FAST = dict(connectTimeout="1s", firstByteTimeout="1s", idleTimeout="1s", timeout="5s",
            maxRetries=0)
SECRETS = (DEFAULT_KEY, ANTHROPIC_KEY, "SECRET")

FAMILIES = {
    "llmgw_requests_total": "counter", "llmgw_successes_total": "counter",
    "llmgw_errors_total": "counter", "llmgw_aborted_total": "counter",
    "llmgw_retries_total": "counter", "llmgw_fallbacks_total": "counter",
    "llmgw_tokens_total": "counter", "llmgw_inflight": "gauge",
    "llmgw_latency_ewma_seconds": "gauge", "llmgw_ttfb_ewma_seconds": "gauge",
    "llmgw_cooldown": "gauge", "llmgw_cooldown_remaining_seconds": "gauge",
    "llmgw_consecutive_failures": "gauge", "llmgw_drained": "gauge",
    "llmgw_backend_info": "gauge",
    "llmgw_stats_created_seconds": "gauge",
}
ERROR_CLASSES = ("4xx", "429", "5xx", "timeout", "connect", "protocol")


ma = mock_fixture(MockOpenAI)
mc = mock_fixture(MockAnthropic)
_fresh_mocks = fresh_mocks("ma", "mc")


def _backends(ma, mc, prefix):
    dead = f"http://127.0.0.1:{harness.free_port()}/v1"
    return [
        harness.openai_backend(f"{prefix}a", ma.url, "${LLMGW_STATUS_KEY}",
                               models=["gpt-mock"], **FAST),
        poolkit.anthropic_backend(f"{prefix}claude", mc.url, ANTHROPIC_KEY,
                                  defaultModel="claude-mock", **FAST),
        harness.openai_backend(f"{prefix}dead", dead, DEFAULT_KEY, defaultModel="gpt-mock",
                               **dict(FAST, connectTimeout="500ms")),
        poolkit.pool_backend(f"{prefix}pool", [f"{prefix}a", f"{prefix}claude"], "priority",
                             failureThreshold=1000),
        poolkit.pool_backend(f"{prefix}outer", [f"{prefix}pool", f"{prefix}dead"],
                             "priority", failureThreshold=1000),
    ]


def _routes(prefix):
    return [harness.route(n, f"/v1/{n}/chat/completions", f"{prefix}{n}")
            for n in ("a", "pool", "dead", "outer")]


@pytest.fixture(scope="module")
def gw(request, module_so, ma, mc):
    yaml = harness.gateway_yaml(_backends(ma, mc, ""), _routes(""))
    return start_gateway(request, "status", yaml, env={"LLMGW_STATUS_KEY": DEFAULT_KEY},
                         server_extra=poolkit.STATUS_CONF)


def chat(h, route, text="hi", session=None, **kw):
    return post(h.url(f"/v1/{route}/chat/completions"), chat_body(text, **kw),
                session=session)


def _traffic(gw, ma, n_ok=4):
    """Some successes, a fallback to Claude, and connect failures."""
    for i in range(n_ok):
        assert chat(gw, "pool", f"ok {i}").status_code == 200
    ma.script(Fault(status=500))
    assert chat(gw, "pool", "to claude").headers["x-llmgw-backend"] == "claude"
    assert_openai_error(chat(gw, "dead", "nobody"), 502, code="bad_gateway")


# -- formats -----------------------------------------------------------------------------------

def test_formats_and_negotiation(gw):
    r = poolkit.status_get(gw)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), r.headers
    assert r.headers.get("Cache-Control") == "no-store"
    r = poolkit.status_get(gw, "?format=json")
    assert r.headers["Content-Type"].startswith("application/json")
    r = poolkit.status_get(gw, headers={"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("application/json")
    assert isinstance(r.json()["backends"], list)
    r = poolkit.status_get(gw, "?format=prometheus")
    ctype = [p.strip() for p in r.headers["Content-Type"].split(";")]
    assert ctype[0] == "text/plain" and "version=0.0.4" in ctype, r.headers
    # Without LLMGatewayStatusControl a POST is refused (test_status_control.py has more).
    r = requests.post(gw.url(poolkit.STATUS_PATH), data=b"x", timeout=10)
    assert_openai_error(r, 403, code="status_control_disabled")
    r = requests.delete(gw.url(poolkit.STATUS_PATH), timeout=10)
    assert r.status_code == 405


def test_json_counts_every_attempt_exactly(gw, ma, mc):
    before = poolkit.backend_stats(gw)
    answers = []
    with requests.Session() as s:
        for i in range(12):
            r = chat(gw, "a", f"count {i}", session=s)
            assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "a"
            answers.append(r.json()["usage"])
    for i in range(3):
        assert_openai_error(chat(gw, "dead", f"refused {i}"), 502)
    after = poolkit.backend_stats(gw)

    def delta(name, *path):
        x, y = after[name], before[name]
        for k in path:
            x, y = x[k], y[k]
        return x - y

    assert delta("a", "requests") == 12 and delta("a", "successes") == 12
    assert delta("a", "errors_total") == 0
    assert delta("a", "tokens", "prompt") == sum(u["prompt_tokens"] for u in answers)
    assert delta("a", "tokens", "completion") == sum(u["completion_tokens"] for u in answers)
    assert after["a"]["latency_ms"] > 0 and after["a"]["ttfb_ms"] > 0
    assert after["a"]["inflight"] == 0 and after["a"]["state"] == "up"
    assert delta("dead", "requests") == 3 and delta("dead", "errors", "connect") == 3
    assert delta("dead", "successes") == 0 and after["dead"]["latency_ms"] is None
    assert len(ma.requests) == 12
    assert {b["type"] for b in after.values()} == {"openai", "anthropic", "pool"}


def test_pool_rows_count_the_requests_routed_to_them(gw, ma, mc):
    before = poolkit.backend_stats(gw)
    for i in range(5):
        assert chat(gw, "pool", f"via pool {i}").status_code == 200
    ma.script(Fault(status=500))
    mc.script(Fault(status=500))
    assert_openai_error(chat(gw, "outer", "all fail"), 502)
    after = poolkit.backend_stats(gw)
    assert after["pool"]["requests"] - before["pool"]["requests"] == 5
    assert after["pool"]["successes"] - before["pool"]["successes"] == 5
    assert after["outer"]["requests"] - before["outer"]["requests"] == 1
    assert after["outer"]["errors_total"] - before["outer"]["errors_total"] == 1
    assert after["outer"]["successes"] == before["outer"]["successes"]
    assert after["pool"]["inflight"] == 0 and after["outer"]["inflight"] == 0


def test_nested_pool_falls_through_to_its_second_member(gw, ma, mc):
    ma.script(Fault(status=500))
    mc.script(Fault(status=529))
    before = poolkit.backend_stats(gw)
    r = chat(gw, "outer", "deep")
    # outer = [pool = [a, claude], dead]: a fails, claude fails, dead refuses: 502.
    assert_openai_error(r, 502, code="bad_gateway")
    after = poolkit.backend_stats(gw)
    for name, cls in (("a", "5xx"), ("claude", "5xx"), ("dead", "connect")):
        assert after[name]["errors"][cls] == before[name]["errors"][cls] + 1, name
    assert len(ma.requests) == 1 and len(mc.requests) == 1


# -- Prometheus ---------------------------------------------------------------------------------

def test_prometheus_parses_strictly_and_agrees_with_json(gw, ma, mc):
    _traffic(gw, ma)
    text = poolkit.status_text(gw, "prometheus").text
    fams = promparse.parse(text)
    js = poolkit.backend_stats(gw)  # nothing runs meanwhile: the same numbers
    assert {n: f.type for n, f in fams.items()} == FAMILIES
    for name, b in js.items():
        fam = lambda n: fams[n]  # noqa: E731
        assert fam("llmgw_requests_total").value(backend=name) == b["requests"]
        assert fam("llmgw_successes_total").value(backend=name) == b["successes"]
        assert fam("llmgw_retries_total").value(backend=name) == b["retries"]
        assert fam("llmgw_fallbacks_total").value(backend=name) == b["fallbacks"]
        assert fam("llmgw_aborted_total").value(backend=name) == b["aborted"]
        for cls in ERROR_CLASSES:
            assert fam("llmgw_errors_total").value(backend=name, **{"class": cls}) \
                == b["errors"][cls]
        for kind in ("prompt", "completion"):
            assert fam("llmgw_tokens_total").value(backend=name, kind=kind) \
                == b["tokens"][kind]
        assert fam("llmgw_inflight").value(backend=name) == b["inflight"]
        assert fam("llmgw_cooldown").value(backend=name) == (b["state"] != "up")
        assert fam("llmgw_consecutive_failures").value(backend=name) \
            == b["consecutive_failures"]
        lat = fam("llmgw_latency_ewma_seconds").value(backend=name)
        assert lat == pytest.approx((b["latency_ms"] or 0) / 1000, abs=1e-6)
        assert fam("llmgw_backend_info").value(backend=name, type=b["type"]) == 1
    created = fams["llmgw_stats_created_seconds"].value()
    assert created == pytest.approx(poolkit.status_json(gw)["created"], abs=1e-3)
    assert fams["llmgw_requests_total"].value(backend="a") >= 4


PROMTOOL = shutil.which("promtool")


def test_promtool_checks_a_populated_gateway(request, module_so, ma, mc):
    """`promtool check metrics` (Debian's prometheus package; CI installs it) over the
    exposition of a gateway in every state it can show: several backends and nested pools,
    successes, retries, fallbacks, errors of several classes, a member in cooldown, one
    drained by an operator, and a name that needs escaping."""
    assert PROMTOOL, "promtool is missing: apt-get install prometheus (scripts/bootstrap does)"
    dead = f"http://127.0.0.1:{harness.free_port()}/v1"
    ob = harness.openai_backend
    backends = [
        ob("ok", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **dict(FAST, maxRetries=1)),
        poolkit.anthropic_backend("claude.main", mc.url, ANTHROPIC_KEY,
                                  defaultModel="claude-mock", **FAST),
        ob("dead", dead, DEFAULT_KEY, defaultModel="gpt-mock",
           **dict(FAST, connectTimeout="500ms")),
        ob("spare", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
        poolkit.pool_backend("inner", ["dead", "ok"], "priority", failureThreshold=1,
                             cooldown="60s"),
        poolkit.pool_backend("outer_pool", ["inner", "claude.main", "spare"], "priority"),
    ]
    routes = [harness.route(n, f"/v1/{n}/chat/completions", n)
              for n in ("ok", "outer_pool", "spare")]
    h = start_gateway(request, "status-promtool", harness.gateway_yaml(backends, routes),
                      server_extra=poolkit.STATUS_CONF + "<Location /ctl>\n"
                      "    SetHandler llmgw-status\n    LLMGatewayStatusControl on\n"
                      "</Location>\n")
    # dead refuses (connect) and cools down; ok answers, once after a retried 500.
    assert chat(h, "outer_pool", "via inner").headers["x-llmgw-backend"] == "ok"
    ma.script(Fault(status=500))
    assert chat(h, "ok", "retried").status_code == 200
    ma.script(Fault(status=429, headers={"retry-after": "0"}), Fault(status=429))
    assert chat(h, "ok", "limited").status_code == 429
    mc.script(Fault(status=400))
    assert chat(h, "outer_pool", "claude refuses", model="claude-mock").status_code == 400
    # An operator drains spare.
    nonce = requests.get(h.url("/ctl?format=json"), timeout=10).json()["control"]["nonce"]
    r = requests.post(h.url("/ctl"), data={"nonce": nonce, "backend": "spare",
                                           "action": "drain"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    st = poolkit.backend_stats(h)
    assert st["dead"]["state"] == "cooldown" and st["dead"]["errors"]["connect"] == 1
    assert st["spare"]["drained"] and st["ok"]["retries"] >= 1
    assert st["ok"]["errors"]["5xx"] >= 1 and st["ok"]["errors"]["429"] >= 1
    assert st["claude.main"]["errors"]["4xx"] == 1
    assert st["dead"]["fallbacks"] == 1 and st["inner"]["fallbacks"] == 1

    text = poolkit.status_text(h, "prometheus").text
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
    fams = promparse.parse(text)
    assert fams["llmgw_cooldown"].value(backend="dead") == 1
    assert fams["llmgw_drained"].value(backend="spare") == 1
    assert fams["llmgw_backend_info"].value(backend="outer_pool", type="pool") == 1
    # The check can fail: promtool refuses what the exposition format forbids.
    bad = text.replace("# TYPE llmgw_drained gauge", "# TYPE llmgw_drained counter")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=bad, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 or r.stdout.strip(), "promtool accepted a counter without _total"


@pytest.mark.parametrize("bad", [
    "x_total 1",  # no newline at the end
    "x_total 1\n",  # no HELP / TYPE
    "# TYPE x_total counter\nx_total 1\n",  # no HELP
    "# HELP x_total h\n# TYPE x_total counter\n# TYPE x_total counter\nx_total 1\n",
    "# HELP x h\n# TYPE x counter\nx 1\n",  # counter without _total
    "# HELP x_total h\n# TYPE x_total counter\nx_total -1\n",
    "# HELP g h\n# TYPE g gauge\ng{a=\"b\\t\"} 1\n",  # bad escape
    "# HELP g h\n# TYPE g gauge\ng{a=\"b} 1\n",  # unterminated value
    "# HELP g h\n# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n",
    "# HELP g h\n# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n",  # duplicate series
    "# HELP g h\n# TYPE g gauge\ng one\n",
    "# HELP g h\n# TYPE g gauge\ng  1\n",
    "# HELP g h\n# TYPE g gauge\ng 1\n\n",
    "# HELP g h\n# TYPE g gauge\n# HELP f h\n# TYPE f gauge\nf 1\ng 1\n",  # interleaved
    "# HELP g h\n# TYPE g gauge\ng 1\n# HELP g h\n",  # metadata after samples
    "# HELP g h\n# TYPE g gauge\n1g 1\n",
])
def test_the_strict_parser_rejects_malformed_text(bad):
    with pytest.raises(promparse.PromError):
        promparse.parse(bad)


def test_the_strict_parser_reads_escapes():
    fams = promparse.parse('# HELP g a \\\\ b\\nc\n# TYPE g gauge\n'
                           'g{l="q\\"uo\\\\te\\nnl"} +Inf\ng{l="x"} 1.5e3 1700000000\n')
    assert fams["g"].help == "a \\ b\nc"
    assert fams["g"].value(l='q"uo\\te\nnl') == float("inf")
    assert fams["g"].value(l="x") == 1500.0


# -- HTML and secrets ----------------------------------------------------------------------------

class _Table(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell, self.head = [], None, None, []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append((self._cell or "").strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.head if not self.head else self.rows).append(self._row)
            self._row = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_title:
            self.title += data


def test_html_shows_every_backend(gw, ma, mc):
    _traffic(gw, ma, 1)
    page = poolkit.status_text(gw, "html").text
    t = _Table()
    t.feed(page)
    t.close()
    assert "status" in t.title.lower()
    head = t.head[0]
    js = poolkit.backend_stats(gw)
    assert sorted(row[0] for row in t.rows) == sorted(js), (t.rows, list(js))
    col = {h: i for i, h in enumerate(head)}
    for row in t.rows:
        assert len(row) == len(head), row
        b = js[row[0]]
        assert row[col["Type"]] == b["type"]
        assert row[col["State"]] == b["state"]
        assert int(row[col["Requests"]]) == b["requests"]
        assert int(row[col["Successes"]]) == b["successes"]
        assert re.fullmatch(r"\d+\.\d %", row[col["Error rate"]]), row
    a = t.rows[[r[0] for r in t.rows].index("a")]
    assert re.fullmatch(r"\d+ / \d+", a[col["Tokens (prompt / completion)"]])
    assert a[col["Latency"]].endswith(" ms")


def test_no_secret_in_any_format(gw, ma, mc):
    _traffic(gw, ma, 1)
    for fmt in ("html", "json", "prometheus"):
        body = poolkit.status_text(gw, fmt).text
        for secret in SECRETS:
            assert secret not in body, (fmt, secret)
        assert "apiKey" not in body and "Bearer" not in body, fmt


# -- several processes ----------------------------------------------------------------------------

PREFORK_EXTRA = poolkit.STATUS_CONF + """StartServers 4
MinSpareServers 4
MaxSpareServers 8
CustomLog logs/pid.log "%P %{X-Test-Id}i"
"""


def test_counters_are_shared_by_prefork_children(request, module_so, ma, mc):
    """Prefork whatever LLMGW_MPM says: one connection per request over 8 threads, so
    that several children serve; the page (from any child) counts every one of them."""
    h = start_gateway(request, "status-prefork",
                      harness.gateway_yaml(_backends(ma, mc, ""), _routes("")),
                      env={"LLMGW_STATUS_KEY": DEFAULT_KEY}, mpm="prefork",
                      server_extra=PREFORK_EXTRA)
    harness.wait_until(lambda: len(harness._children(h.pid)) >= 4, 5.0)
    n = 48
    ids = [harness.new_test_id() for _ in range(n)]
    lock = threading.Lock()
    statuses = Counter()

    def one(i, session):
        r = post(h.url("/v1/a/chat/completions"), chat_body(f"shared {i}"),
                 headers={"Connection": "close"}, test_id=ids[i])
        with lock:
            statuses[r.status_code] += 1

    poolkit.parallel(one, range(n), workers=8)
    assert statuses == {200: n}

    def served():
        # A request is logged after its answer went out: wait for the lines.
        pids = {}
        for line in (h.root / "logs" / "pid.log").read_text().splitlines():
            pid, _, tid = line.partition(" ")
            pids[tid] = pid
        return pids if all(t in pids for t in ids) else None

    pids = harness.wait_until(served, 5.0)
    assert pids, "requests missing from logs/pid.log"
    served_by = Counter(pids[t] for t in ids)
    assert len(served_by) >= 2, served_by
    for _ in range(4):  # whichever child answers, the numbers are the same
        st = poolkit.backend_stats(h)["a"]
        assert st["requests"] == n and st["successes"] == n, st
    assert len(ma.requests) == n


# -- graceful restart -----------------------------------------------------------------------------

def _shm_mappings(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for line in f if "/dev/zero" in line or "SYSV" in line)


def test_counters_survive_graceful_and_new_backends_start_at_zero(request, module_so, ma, mc):
    backends = _backends(ma, mc, "")
    backends.append(harness.openai_backend("old", ma.url, DEFAULT_KEY, defaultModel="gpt-mock",
                                           **FAST))
    routes = _routes("") + [harness.route("old", "/v1/old/chat/completions", "old")]
    h = start_gateway(request, "status-graceful", harness.gateway_yaml(backends, routes),
                      env={"LLMGW_STATUS_KEY": DEFAULT_KEY}, server_extra=poolkit.STATUS_CONF)
    for i in range(7):
        assert chat(h, "a", f"before {i}").status_code == 200
    assert chat(h, "old", "before").status_code == 200
    first = poolkit.status_json(h)
    segments = _shm_mappings(h.pid)
    # Add "new", remove "old".
    backends = [b for b in backends if b["name"] != "old"]
    backends.append(harness.openai_backend("new", ma.url, DEFAULT_KEY,
                                           defaultModel="gpt-mock", **FAST))
    routes = _routes("") + [harness.route("new", "/v1/new/chat/completions", "new")]
    h.write_yaml(harness.gateway_yaml(backends, routes))
    h.graceful()
    second = poolkit.status_json(h)
    st = {b["name"]: b for b in second["backends"]}
    assert second["created"] == first["created"]
    assert second["generation"] > first["generation"]
    assert st["a"]["requests"] == 7 and st["a"]["successes"] == 7
    assert st["a"]["tokens"] == {b["name"]: b for b in first["backends"]}["a"]["tokens"]
    assert "old" not in st and second["retired"] == first["retired"] + 1
    new = st["new"]
    assert new["requests"] == 0 and new["successes"] == 0 and new["errors_total"] == 0
    assert new["tokens"]["total"] == 0 and new["latency_ms"] is None
    assert new["state"] == "up" and new["type"] == "openai"
    for i in range(3):
        assert chat(h, "a", f"after {i}").status_code == 200
    assert chat(h, "new", "fresh").status_code == 200
    h.graceful()  # a second time, with nothing changed
    st = poolkit.backend_stats(h)
    assert st["a"]["requests"] == 10 and st["new"]["requests"] == 1
    assert _shm_mappings(h.pid) == segments  # no segment left behind by the restarts


# -- a child killed in the middle of a request ------------------------------------------------

def _child_talking_to(h, port):
    """The httpd child with an established connection to 127.0.0.1:`port`, or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    for pid in harness._children(h.pid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None


@pytest.mark.allow_log(r"AH00052", r"exit signal")
def test_inflight_of_a_killed_child_is_released(request, module_so, ma):
    """kill -9 the child running a slow attempt: once the parent has reaped it, the
    backend's in-flight count is back to 0 and least-busy chooses it again."""
    slow = MockOpenAI().start()
    request.addfinalizer(slow.stop)
    backends = [
        harness.openai_backend("x", slow.url, DEFAULT_KEY, defaultModel="gpt-mock",
                               **dict(FAST, firstByteTimeout="20s", timeout="30s")),
        harness.openai_backend("y", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
        poolkit.pool_backend("lb", ["x", "y"], "least-busy"),
    ]
    routes = [harness.route(n, f"/v1/{n}/chat/completions", n) for n in ("x", "y", "lb")]
    h = start_gateway(request, "status-kill", harness.gateway_yaml(backends, routes),
                      server_extra=poolkit.STATUS_CONF)
    # y has a latency average, x none: with nothing in flight least-busy tries x first.
    assert chat(h, "y", "warm y").status_code == 200
    slow.script(Fault(delay=15))
    result = {}

    def slow_request():
        try:
            result["status"] = chat(h, "x", "never answered").status_code
        except requests.RequestException as e:
            result["error"] = e

    t = threading.Thread(target=slow_request, daemon=True)
    t.start()
    assert harness.wait_until(lambda: len(slow.requests) == 1, 5.0), "the slow attempt never left"
    assert poolkit.backend_stats(h)["x"]["inflight"] == 1
    r = chat(h, "lb", "x is busy")
    assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "y", r.headers

    child = harness.wait_until(lambda: _child_talking_to(h, slow.port), 5.0)
    assert child, "no httpd child is talking to the slow mock"
    os.kill(child, signal.SIGKILL)
    t.join(10)
    assert "status" not in result, result  # the client lost its connection, no answer

    assert harness.wait_until(lambda: poolkit.backend_stats(h)["x"]["inflight"] == 0, 15.0), \
        poolkit.backend_stats(h)["x"]
    assert poolkit.backend_stats(h)["lb"]["inflight"] == 0
    r = chat(h, "lb", "x is free again")
    assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "x", r.headers
