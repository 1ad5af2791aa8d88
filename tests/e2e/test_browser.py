"""In a real browser: Debian's chromium, headless, driven by puppeteer-core
(tests/e2e/browser/browser.mjs; npm packages pinned by its lock file, no downloaded browser).

- CORS: a page of an origin `LLMGatewayCORS` lists calls the gateway with the openai SDK's
  browser build (`dangerouslyAllowBrowser`) and with fetch: a chat, a stream and errors, all
  readable, exposed gateway headers included, without a console error; a page of another
  origin gets nothing, and its requests never reach a provider;
- the status page: renders, reloads itself with ?refresh, fits a phone's width, its Drain
  and Enable buttons work when tapped, and nothing goes to the console.

Each page is served from its own loopback port: another origin than the gateway's.
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
import poolkit
from clientkit import NODE, NPM
from conftest import start_gateway
from mock_openai import DEFAULT_KEY, MockOpenAI

pytestmark = [
    pytest.mark.allow_log(),
    # What a browser sees does not depend on the MPM (test_status_control.py checks the
    # drain across prefork children); one run is enough, and starting chromium is not free.
    pytest.mark.skipif(harness.MPM != "event", reason="browser tests run under the event MPM"),
]

BROWSER_DIR = harness.HERE / "browser"
CHROMIUM = os.environ.get("LLMGW_CHROMIUM", "/usr/bin/chromium")
CONTROL_PATH = "/llmgw-control"


# -- the pages' origins ------------------------------------------------------------------------

class _PageHandler(http.server.SimpleHTTPRequestHandler):
    """/page/... from tests/e2e/browser/page, /sdk/openai/... from its node_modules."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript"}

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path.startswith("/sdk/openai/"):
            base, rest = BROWSER_DIR / "node_modules" / "openai", path[len("/sdk/openai/"):]
        elif path.startswith("/page/"):
            base, rest = BROWSER_DIR / "page", path[len("/page/"):]
        else:
            return str(BROWSER_DIR / "page" / "missing")
        target = (base / rest).resolve()
        return str(target) if base.resolve() in target.parents else str(base / "missing")

    def log_message(self, *args):
        pass


class PageServer:
    """A static server on a loopback port of its own: one web origin."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return self.origin + path

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- fixtures -----------------------------------------------------------------------------------

def run_browser(spec):
    """browser.mjs with `spec` (a fresh profile added); its result. Fails (does not skip)
    without chromium: CI installs it (scripts/bootstrap); npm packages from the lock file."""
    assert Path(CHROMIUM).exists(), \
        f"{CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap does)"
    if not (BROWSER_DIR / "node_modules" / "puppeteer-core" / "package.json").exists() or \
            not (BROWSER_DIR / "node_modules" / "openai" / "package.json").exists():
        r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"npm ci in {BROWSER_DIR} failed: {r.stderr[-1500:]}"
    profile = harness.GEN_DIR / f"browser-profile-{os.getpid()}"
    shutil.rmtree(profile, ignore_errors=True)
    spec = dict(spec, profile=str(profile))
    t0 = time.monotonic()
    try:
        r = subprocess.run([NODE, str(BROWSER_DIR / "browser.mjs"), json.dumps(spec)],
                           capture_output=True, text=True, timeout=180, cwd=BROWSER_DIR,
                           env={**os.environ, "LLMGW_CHROMIUM": CHROMIUM})
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from browser.mjs ({r.returncode}): {r.stdout}{r.stderr[-3000:]}"
    out = json.loads(lines[-1])
    assert out["ok"], out["error"]
    out["result"]["wall_s"] = time.monotonic() - t0
    return out["result"]


@pytest.fixture(scope="module")
def pages():
    allowed, refused = PageServer(), PageServer()
    yield allowed, refused
    allowed.stop()
    refused.stop()


@pytest.fixture(scope="module")
def ma():
    m = MockOpenAI().start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def gw(request, module_so, ma, pages):
    allowed, _ = pages
    ob = harness.openai_backend
    yaml = harness.gateway_yaml(
        [ob("a", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", models=["gpt-mock"],
            maxRetries=0),
         ob("b", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", models=["gpt-mock"],
            maxRetries=0),
         poolkit.pool_backend("p", ["a", "b"], "priority")],
        [harness.route("chat", "/v1/chat/completions", "p")])
    return start_gateway(
        request, "browser", yaml, v1_extra=f"LLMGatewayCORS {allowed.origin}\n",
        server_extra=f"<Location {CONTROL_PATH}>\n    SetHandler llmgw-status\n"
                     f"    LLMGatewayStatusControl on\n</Location>\n" + poolkit.STATUS_CONF)


@pytest.fixture(scope="module")
def run(gw, pages, ma):
    """Both scenarios in one browser (starting it is most of the cost)."""
    allowed, refused = pages
    ma.reset()
    res = run_browser({
        "scenarios": ["cors", "status"],
        "cors": {"gateway": gw.base, "allowed": allowed.url("/page/index.html"),
                 "refused": refused.url("/page/index.html")},
        "status": {"page": gw.url(CONTROL_PATH + "?refresh=1"),
                   "control_page": gw.url(CONTROL_PATH), "backend": "a"},
    })
    print(f"\nbrowser: {res['version']}: {res['wall_s']:.1f} s in all, chromium started in "
          f"{res['launch_ms']} ms, cors {res['cors']['elapsed_ms']} ms, "
          f"status {res['status']['elapsed_ms']} ms")
    return res


# -- CORS ---------------------------------------------------------------------------------------

def test_pages_of_an_allowed_and_a_refused_origin(run, pages, ma):
    allowed, refused = pages
    res = run["cors"]
    assert "error" not in res, res["error"]
    ok, no = res["allowed"], res["refused"]
    assert ok["origin"] == allowed.origin and no["origin"] == refused.origin

    # The allowed page read everything: the answer, the exposed gateway headers, a stream
    # to its end, and errors with their status and code (the SDK's and fetch's).
    calls = ok["calls"]
    assert "import_error" not in calls, calls
    assert calls["chat"].get("content") == "echo: hello from a page", calls["chat"]
    assert calls["chat"]["backend"] == "a" and calls["chat"]["attempts"] == "1"
    assert calls["stream"].get("text") == "echo: stream to a page", calls["stream"]
    assert calls["stream"]["finish"] == "stop" and calls["stream"]["usage"]["total_tokens"] > 0
    assert calls["sdk_error"]["status"] == 404, calls["sdk_error"]
    assert calls["sdk_error"]["code"] == "model_not_found"
    assert calls["fetch_error"]["status"] == 400, calls["fetch_error"]
    assert calls["fetch_error"]["body"]["error"]["code"] == "invalid_json"
    assert calls["fetch_error"]["overhead"] is not None  # exposed on errors too
    # Chrome logs every 4xx to the console: the two errors the page provoked, and nothing
    # else (no CORS complaint, no failed request).
    assert sorted(ok["console"]) == [
        f"Failed to load resource: the server responded with a status of {s}"
        for s in ("400 (Bad Request)", "404 (Not Found)")], ok["console"]
    assert ok["pageerrors"] == [] and ok["failed"] == [], ok

    # The refused page could read nothing: the SDK saw a connection error, fetch a TypeError.
    calls = no["calls"]
    assert calls["chat"]["error"]["name"] == "APIConnectionError", calls["chat"]
    assert calls["stream"]["error"]["name"] == "APIConnectionError", calls["stream"]
    assert calls["fetch_error"]["error"]["name"] == "TypeError", calls["fetch_error"]
    assert any("has been blocked by CORS policy" in line for line in no["console"]), no
    assert all("CORS policy" in line or "net::ERR_FAILED" in line for line in no["console"]), no
    # Its preflights were refused, so its requests never left the browser: the provider saw
    # only the allowed page's chat and stream (the bad model and bad JSON stop at the gateway).
    texts = [r.body["messages"][0]["content"] for r in ma.requests]
    assert sorted(texts) == ["hello from a page", "stream to a page"], texts


# -- the status page ----------------------------------------------------------------------------

def test_status_page_on_a_phone(run, gw):
    res = run["status"]
    assert "error" not in res, res["error"]
    assert res["status"] == 200
    assert res["headers"]["refresh"] == "1"
    first = res["first"]
    assert first["title"] == "mod_llmgw status"
    assert [r["backend"] for r in first["rows"]] == ["a", "b", "p"]
    assert all(r["action"] == "drain" for r in first["rows"])
    # A phone's width: the page itself never scrolls sideways; the wide table scrolls in its
    # box; text and buttons keep a usable size.
    assert first["innerWidth"] == 390
    assert first["pageScrollWidth"] <= first["innerWidth"], first
    assert first["tableScrollWidth"] > first["tableClientWidth"], first
    assert first["bodyFontPx"] >= 14 and first["h1FontPx"] >= 18, first
    assert all(b["height"] >= 32 and b["width"] >= 44 for b in first["buttons"]), first["buttons"]
    # It reloaded by itself (Refresh: 1), and the reloaded page is a fresh render.
    assert res["reloaded_after_ms"] < 8000
    assert [r["backend"] for r in res["reloaded"]["rows"]] == ["a", "b", "p"]
    # Tapping Drain posts the form and comes back to the page, a drained; Enable undoes it.
    drain, enable = res["drain"], res["enable"]
    assert drain["status"] == 200 and drain["url"] == gw.url(CONTROL_PATH), drain
    row = {r["backend"]: r for r in drain["after"]["rows"]}["a"]
    assert "drained" in row["state"] and row["action"] == "enable", row
    assert enable["status"] == 200
    row = {r["backend"]: r for r in enable["after"]["rows"]}["a"]
    assert "drained" not in row["state"] and row["action"] == "drain", row
    assert not poolkit.backend_stats(gw)["a"]["drained"]
    # Nothing went wrong in the page at any point.
    assert res["console"] == [] and res["pageerrors"] == [] and res["failed"] == [], res

