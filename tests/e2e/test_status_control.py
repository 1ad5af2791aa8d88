"""The status page's operator controls, its refresh and security headers, mod_status's
gateway section, and the example configuration's status location, end to end.

- `LLMGatewayStatusControl on` puts a drain / enable form per backend on the page (and a
  nonce in its JSON); a POST carrying the page's nonce drains or re-enables a member of
  this host's gateway, answered 303 back to the page (or JSON when asked);
- without it a POST is refused with a 403 JSON error; a POST without the page's nonce,
  with a forged one, or with one from another page, is refused too;
- a drained member gets no new requests (pools skip it, a route to it alone answers 503)
  in every child (prefork with several), and stays drained across `apache2 -k graceful`,
  where the nonce of a page shown before the restart is still accepted;
- JSON, Prometheus (`llmgw_drained`) and `?auto` show the drain;
- /server-status (mod_status) has the gateway's section in HTML and `?auto`, per vhost;
- conf/llmgw.conf's status location fails closed without mod_authz_host.
"""

import re
import threading
from collections import Counter

import pytest
import requests

import harness
import poolkit
import promparse
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post
from mock_openai import DEFAULT_KEY, MockOpenAI

pytestmark = pytest.mark.allow_log()

FAST = dict(connectTimeout="1s", firstByteTimeout="2s", idleTimeout="2s", timeout="5s",
            maxRetries=0)
CONTROL_PATH = "/llmgw-control"
OTHER_CONTROL_PATH = "/llmgw-control-2"
MODULES = harness.MODULES_DIR
STATUS_MODULE = f"LoadModule status_module {MODULES}/mod_status.so\n"


def control_conf(path=CONTROL_PATH):
    return (f"<Location {path}>\n    SetHandler llmgw-status\n"
            f"    LLMGatewayStatusControl on\n</Location>\n")


SERVER_EXTRA = (poolkit.STATUS_CONF + control_conf() + control_conf(OTHER_CONTROL_PATH)
                + "<Location /server-status>\n    SetHandler server-status\n</Location>\n")


@pytest.fixture(scope="module")
def ma():
    m = MockOpenAI().start()
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh(request):
    if "ma" in request.fixturenames:
        request.getfixturevalue("ma").reset()
    yield


def _yaml(ma):
    ob = harness.openai_backend
    backends = [ob("a", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
                ob("b", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
                ob("solo", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
                poolkit.pool_backend("p", ["a", "b"], "priority")]
    routes = [harness.route("p", "/v1/chat/completions", "p"),
              harness.route("solo", "/v1/solo/chat/completions", "solo")]
    return harness.gateway_yaml(backends, routes)


@pytest.fixture(scope="module")
def gw(request, module_so, ma):
    return start_gateway(request, "status-control", _yaml(ma), pre_module=STATUS_MODULE,
                         server_extra=SERVER_EXTRA)


@pytest.fixture(autouse=True)
def _all_enabled(request):
    """Every test starts (and leaves) with no backend drained."""
    yield
    if "gw" in request.fixturenames:
        h = request.getfixturevalue("gw")
        for name, b in poolkit.backend_stats(h).items():
            if b["drained"]:
                assert control(h, name, "enable").status_code == 303


# -- helpers --------------------------------------------------------------------------------

NONCE = re.compile(r'name="nonce" value="([0-9a-f]{16}\.[0-9a-f]{64})"')


def page(h, path=CONTROL_PATH, query="", session=None):
    r = (session or requests).get(h.url(path + query), timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


def nonce_of(h, path=CONTROL_PATH):
    found = set(NONCE.findall(page(h, path).text))
    assert len(found) == 1, found  # every form of a page carries the page's nonce
    return found.pop()


def control(h, backend, action, nonce=None, path=CONTROL_PATH, headers=None, session=None,
            query=""):
    form = {"backend": backend, "action": action}
    form["nonce"] = nonce if nonce is not None else nonce_of(h, path)
    if nonce == "":
        del form["nonce"]
    return (session or requests).post(h.url(path + query), data=form, headers=headers,
                                      allow_redirects=False, timeout=10)


def chat(h, path="/v1/chat/completions", text="hi", headers=None):
    return post(h.url(path), chat_body(text), headers=headers)


def drained(h, name):
    return poolkit.backend_stats(h)[name]["drained"]


# -- the page and its controls ------------------------------------------------------------------

def test_page_without_control_is_read_only(gw):
    html = poolkit.status_text(gw, "html").text
    assert "<form" not in html and "nonce" not in html
    assert "control" not in poolkit.status_json(gw)
    r = requests.post(gw.url(poolkit.STATUS_PATH), data={"backend": "a", "action": "drain"},
                      timeout=10)
    err = assert_openai_error(r, 403, code="status_control_disabled")
    assert "LLMGatewayStatusControl" in err["message"]
    assert not drained(gw, "a")


def test_page_with_control_has_a_form_per_backend(gw):
    html = page(gw).text
    assert html.count('<form method="post">') == 4  # a, b, solo, p
    for name in ("a", "b", "solo", "p"):
        assert f'name="backend" value="{name}"' in html
    assert html.count('value="drain"') == 4 and 'value="enable"' not in html
    js = requests.get(gw.url(CONTROL_PATH + "?format=json"), timeout=10).json()
    assert re.fullmatch(r"[0-9a-f]{16}\.[0-9a-f]{64}", js["control"]["nonce"])
    assert js["control"]["actions"] == ["drain", "enable"]
    # Each render has its own nonce.
    assert nonce_of(gw) != nonce_of(gw)


def test_security_headers_and_refresh(gw):
    r = page(gw)
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Refresh" not in r.headers
    r = page(gw, query="?refresh=7")
    assert r.headers["Refresh"] == "7"
    assert "(now every 7 s)" in r.text
    assert page(gw, query="?refresh=5").headers["Refresh"] == "5"
    assert page(gw, query="?refresh=99999").headers["Refresh"] == "3600"
    assert "Refresh" not in page(gw, query="?refresh=soon").headers


def test_drain_and_enable_a_pool_member(gw, ma):
    assert chat(gw).headers["x-llmgw-backend"] == "a"
    r = control(gw, "a", "drain", query="?refresh=5")
    # Post/Redirect/Get: back to the page as it was asked for.
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert r.headers["Location"] == CONTROL_PATH + "?refresh=5"
    assert drained(gw, "a") and not drained(gw, "b")
    html = page(gw).text
    assert 'value="enable"' in html and html.count('value="drain"') == 3
    for i in range(6):
        r = chat(gw, text=f"while a is drained {i}")
        assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "b", r.headers
    fams = promparse.parse(poolkit.status_text(gw, "prometheus").text)
    assert fams["llmgw_drained"].value(backend="a") == 1
    assert fams["llmgw_drained"].value(backend="b") == 0
    auto = poolkit.status_text(gw, "auto").text
    i = re.search(r"LLMGatewayBackend\[(\d+)\]Name: a\n", auto).group(1)
    assert f"LLMGatewayBackend[{i}]Drained: 1\n" in auto
    # Back in rotation at once.
    r = control(gw, "a", "enable")
    assert r.status_code == 303
    assert not drained(gw, "a")
    assert chat(gw, text="a again").headers["x-llmgw-backend"] == "a"


def test_drained_lone_backend_and_whole_pool_answer_503(gw, ma):
    assert control(gw, "solo", "drain").status_code == 303
    n = len(ma.requests)
    r = chat(gw, "/v1/solo/chat/completions")
    err = assert_openai_error(r, 503, code="upstream_unavailable")
    assert "drained" in err["message"]
    assert "Retry-After" not in r.headers  # a drain has no end the gateway could announce
    assert control(gw, "a", "drain").status_code == 303
    assert control(gw, "b", "drain").status_code == 303
    err = assert_openai_error(chat(gw), 503, code="upstream_unavailable")
    assert '"p"' in err["message"] and "drained" in err["message"]
    assert len(ma.requests) == n  # nobody was asked
    assert control(gw, "b", "enable").status_code == 303
    assert chat(gw).headers["x-llmgw-backend"] == "b"


def test_json_answer_for_scripts(gw):
    js = requests.get(gw.url(CONTROL_PATH + "?format=json"), timeout=10).json()
    r = control(gw, "b", "drain", nonce=js["control"]["nonce"],
                headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"backend": "b", "drained": True, "changed": True}
    r = control(gw, "b", "drain", nonce=js["control"]["nonce"],
                headers={"Accept": "application/json"})
    assert r.json() == {"backend": "b", "drained": True, "changed": False}


@pytest.mark.parametrize("how", ["missing", "forged", "garbage", "other page"])
def test_posts_without_the_pages_nonce_are_refused(gw, how):
    good = nonce_of(gw)
    nonce = {"missing": "", "garbage": "hello",
             "forged": good[:-1] + ("0" if good[-1] != "0" else "1"),
             "other page": nonce_of(gw, OTHER_CONTROL_PATH)}[how]
    r = control(gw, "a", "drain", nonce=nonce)
    err = assert_openai_error(r, 403, code="invalid_nonce")
    assert err["param"] == "nonce"
    assert not drained(gw, "a")
    # The same form with the page's nonce works.
    assert control(gw, "a", "drain", nonce=good).status_code == 303


def test_bad_forms(gw):
    nonce = nonce_of(gw)
    err = assert_openai_error(control(gw, "a", "remove", nonce=nonce), 400,
                              code="invalid_action")
    assert err["param"] == "action"
    err = assert_openai_error(control(gw, "nobody", "drain", nonce=nonce), 400,
                              code="unknown_backend")
    assert err["param"] == "backend"
    r = requests.post(gw.url(CONTROL_PATH), json={"nonce": nonce, "backend": "a",
                                                  "action": "drain"}, timeout=10)
    assert_openai_error(r, 415, code="unsupported_media_type")
    r = requests.put(gw.url(CONTROL_PATH), data=b"x", timeout=10)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    r = requests.put(gw.url(poolkit.STATUS_PATH), data=b"x", timeout=10)
    assert r.status_code == 405 and "POST" not in r.headers["Allow"]
    assert not any(b["drained"] for b in poolkit.backend_stats(gw).values())


# -- mod_status ---------------------------------------------------------------------------------

def test_server_status_has_the_gateway_section(gw):
    chat(gw, text="for server-status")
    assert control(gw, "b", "drain").status_code == 303
    r = requests.get(gw.url("/server-status"), timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert "<h2>LLM gateway (mod_llmgw)</h2>" in r.text
    for name in ("a", "b", "solo", "p"):
        assert f'<tr data-backend="{name}">' in r.text
    assert '<span class="state drained">drained</span>' in r.text
    assert "<form" not in r.text and "nonce" not in r.text
    auto = requests.get(gw.url("/server-status?auto"), timeout=10).text
    assert "Total Accesses:" in auto or "ServerUptime" in auto  # mod_status's own lines
    lines = dict(ln.split(": ", 1) for ln in auto.splitlines() if ln.startswith("LLMGateway"))
    assert lines["LLMGatewayBackends"] == "4"
    names = {lines[f"LLMGatewayBackend[{i}]Name"]: i for i in range(4)}
    assert set(names) == {"a", "b", "solo", "p"}
    js = poolkit.backend_stats(gw)
    for name, i in names.items():
        assert int(lines[f"LLMGatewayBackend[{i}]Requests"]) == js[name]["requests"]
        assert lines[f"LLMGatewayBackend[{i}]Drained"] == ("1" if name == "b" else "0")
        assert lines[f"LLMGatewayBackend[{i}]State"] == js[name]["state"]
    notable = requests.get(gw.url("/server-status?notable"), timeout=10).text
    assert "<p>b: up (drained)," in notable


def test_server_status_of_a_vhost_shows_its_own_gateway(request, module_so, ma):
    ob = harness.openai_backend
    tenant = harness.gateway_yaml([ob("tenant-x", ma.url, DEFAULT_KEY, defaultModel="gpt-mock")],
                                  [harness.route("c", "/v1/chat/completions", "tenant-x")])
    v = harness.VirtualHost("tenant", yaml=tenant)
    h = start_gateway(request, "status-vhost", _yaml(ma), pre_module=STATUS_MODULE,
                      server_extra=SERVER_EXTRA, vhosts=[v])
    auto = requests.get(v.url("/server-status?auto"), timeout=10).text
    assert "LLMGatewayBackends: 1\n" in auto and "Name: tenant-x\n" in auto
    assert "Name: a\n" not in auto
    main = requests.get(h.url("/server-status?auto"), timeout=10).text
    assert "LLMGatewayBackends: 4\n" in main and "tenant-x" not in main
    # The vhost's page drains the vhost's backend, and a nonce of the main server's page
    # (same path, another host) is refused there.
    main_nonce = nonce_of(h)
    r = requests.post(v.url(CONTROL_PATH), data={"backend": "tenant-x", "action": "drain",
                                                 "nonce": main_nonce},
                      allow_redirects=False, timeout=10)
    assert_openai_error(r, 403, code="invalid_nonce")
    vn = set(NONCE.findall(requests.get(v.url(CONTROL_PATH), timeout=10).text)).pop()
    r = requests.post(v.url(CONTROL_PATH), data={"backend": "a", "action": "drain",
                                                 "nonce": vn}, allow_redirects=False, timeout=10)
    assert_openai_error(r, 400, code="unknown_backend")  # not this gateway's backend
    r = requests.post(v.url(CONTROL_PATH), data={"backend": "tenant-x", "action": "drain",
                                                 "nonce": vn}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert_openai_error(post(v.url("/v1/chat/completions"), chat_body("x")), 503,
                        code="upstream_unavailable")
    assert not any(b["drained"] for b in poolkit.backend_stats(h).values())


# -- several children, graceful -----------------------------------------------------------------

PREFORK_EXTRA = poolkit.STATUS_CONF + control_conf() + """StartServers 4
MinSpareServers 4
MaxSpareServers 8
CustomLog logs/pid.log "%P %{X-Test-Id}i"
"""


def _burst(h, n, tag):
    """n chat requests, one connection each, over 8 threads: {test id: backend}."""
    ids = [harness.new_test_id() for _ in range(n)]
    lock = threading.Lock()
    got = {}

    def one(i, session):
        r = post(h.url("/v1/chat/completions"), chat_body(f"{tag} {i}"),
                 headers={"Connection": "close"}, test_id=ids[i])
        with lock:
            got[ids[i]] = (r.status_code, r.headers.get("x-llmgw-backend"))

    poolkit.parallel(one, range(n), workers=8)
    return got


def _served_by(h, ids):
    def read():
        pids = {}
        for line in (h.root / "logs" / "pid.log").read_text().splitlines():
            pid, _, tid = line.partition(" ")
            pids[tid] = pid
        return pids if all(t in pids for t in ids) else None
    pids = harness.wait_until(read, 5.0)
    assert pids, "requests missing from logs/pid.log"
    return Counter(pids[t] for t in ids)


def test_drain_is_shared_by_prefork_children_and_survives_graceful(request, module_so, ma):
    """Prefork whatever LLMGW_MPM says: the drain posted to one child holds in all of
    them, and after a graceful restart (new children), until an operator enables the
    member again, with the nonce of a page shown before the restart."""
    h = start_gateway(request, "status-control-prefork", _yaml(ma), mpm="prefork",
                      server_extra=PREFORK_EXTRA)
    harness.wait_until(lambda: len(harness._children(h.pid)) >= 4, 5.0)
    old_nonce = nonce_of(h)
    assert control(h, "a", "drain", nonce=old_nonce,
                   headers={"Connection": "close"}).status_code == 303
    got = _burst(h, 32, "drained")
    assert set(got.values()) == {(200, "b")}, Counter(got.values())
    assert len(_served_by(h, list(got))) >= 2  # several children honoured it
    for _ in range(4):  # whichever child answers, a is drained
        r = requests.get(h.url(poolkit.STATUS_PATH + "?format=json"),
                         headers={"Connection": "close"}, timeout=10)
        assert {b["name"]: b["drained"] for b in r.json()["backends"]}["a"] is True

    children = set(harness._children(h.pid))
    h.graceful()
    assert harness.wait_until(lambda: not (set(harness._children(h.pid)) & children), 10.0), \
        "the old children did not go"
    assert drained(h, "a")
    got = _burst(h, 16, "after graceful")
    assert set(got.values()) == {(200, "b")}, Counter(got.values())
    # The page shown before the restart still works: the key lives in the segment.
    r = control(h, "a", "enable", nonce=old_nonce, headers={"Connection": "close"})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    got = _burst(h, 16, "enabled")
    assert set(got.values()) == {(200, "a")}, Counter(got.values())


# -- the example configuration ---------------------------------------------------------------

def _example_conf(h):
    text = (harness.HERE.parents[1] / "conf" / "llmgw.conf").read_text()
    return text.replace("/etc/apache2/llmgw/gateway.yaml", str(h.yaml_path))


@pytest.mark.parametrize("authz_host", [False, True])
def test_the_example_status_location_fails_closed(request, module_so, ma, authz_host):
    pre = f"LoadModule authz_host_module {MODULES}/mod_authz_host.so\n" if authz_host else ""
    h = harness.Httpd(f"status-example-{int(authz_host)}", pre_module=pre, main_config=False)
    h.write_yaml(_yaml(ma))
    h.write_conf(server_extra=_example_conf(h))
    h.start()

    def fin():
        problems = h.stop()
        assert not problems, problems
    request.addfinalizer(fin)
    r = requests.get(h.url("/llmgw-status?format=json"), timeout=10)
    if not authz_host:
        # No module to tell addresses apart: nobody gets in.
        assert r.status_code == 403, (r.status_code, r.text[:200])
        return
    assert r.status_code == 200 and {b["name"] for b in r.json()["backends"]} >= {"a", "p"}
    assert "control" not in r.json()  # controls are off unless asked for
    r = requests.post(h.url("/llmgw-status"), data={"backend": "a", "action": "drain"},
                      timeout=10)
    assert_openai_error(r, 403, code="status_control_disabled")
    assert chat(h).status_code == 200  # the example's /v1 serves the gateway
