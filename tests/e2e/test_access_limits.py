"""Limits that hold across every httpd child (issue 11 item 3), identities from httpd's own
auth modules (item 2), per-backend limits that steer a pool, and one gateway's keys per
virtual host.

The exactness tests send many requests at once from a thread pool to a server with
several children (prefork: 8 processes; event/worker: 3 processes of 16 threads), and
check from the access log that more than one process answered.
"""

import subprocess
import threading
from collections import Counter

import pytest

import harness
import poolkit
import promparse
from accesskit import bearer, hammer, new_key
from conftest import start_gateway
from harness import VirtualHost, assert_openai_error, chat_body, post
from mock_openai import DEFAULT_KEY, Fault

pytestmark = pytest.mark.allow_log()

# Several children, whatever the MPM (later directives override the harness's tuning).
SEVERAL_CHILDREN = {
    "prefork": "StartServers 8\nMinSpareServers 8\nMaxSpareServers 16\n",
    "event": "StartServers 3\nMinSpareThreads 48\nMaxSpareThreads 64\n",
    "worker": "StartServers 3\nMinSpareThreads 48\nMaxSpareThreads 64\n",
}[harness.MPM]

KEYS = {}


def _key(name, **entry):
    if name not in KEYS:
        KEYS[name] = new_key(name, **entry)
    return KEYS[name][1]


def limits_yaml(mock):
    backends = [
        harness.openai_backend("a", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                               maxRetries=0, limits={"rpm": 2}),
        harness.openai_backend("b", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                               maxRetries=0),
        harness.openai_backend("c1", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                               maxRetries=0, limits={"rpm": 1}),
        harness.openai_backend("c2", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                               maxRetries=0, limits={"rpm": 1, "tpm": 100000}),
        poolkit.pool_backend("steer", ["a", "b"], strategy="priority"),
        poolkit.pool_backend("full", ["c1", "c2"], strategy="priority"),
    ]
    routes = [harness.route("chat", "/v1/chat/completions", "b"),
              harness.route("steer", "/v1/steer/chat/completions", "steer"),
              harness.route("full", "/v1/full/chat/completions", "full")]
    return harness.to_yaml({
        "backends": backends, "routes": routes,
        "access": {"keys": [_key("rpm50", limits={"rpm": 50}),
                            _key("conc4", limits={"concurrent": 4}),
                            _key("free")]},
    }) + "\n"


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    return start_gateway(request, "access-limits", limits_yaml(mock),
                         server_extra=poolkit.STATUS_CONF + SEVERAL_CHILDREN)


def key(name):
    return KEYS[name][0]


def test_rpm_exact_across_children(gw, mock):
    """rpm 50, 200 attempts at once from 40 connections: exactly 50 are admitted."""
    def one(i):
        r = post(gw.url("/v1/chat/completions"), chat_body(), headers=bearer(key("rpm50")),
                 timeout=30)
        return r.status_code, r.test_id

    before = len(mock.requests)
    results = hammer(one, 200, workers=40)
    codes = Counter(c for c, _ in results)
    assert codes == {200: 50, 429: 150}, codes
    assert len(mock.requests) - before == 50
    pids = {gw.access_entry(t)["pid"] for _, t in results}
    assert len(pids) >= 2, f"one process answered everything ({pids}): not a cross-process test"
    data = poolkit.status_json(gw)
    entry = {e["name"]: e for e in data["access"]["entries"]}["rpm50"]
    assert entry["requests"] == 50 and entry["refused"]["rpm"] == 150
    assert entry["remaining"]["requests"] == 0


def test_concurrency_exact_across_children(gw, mock):
    """concurrent 4, 24 slow requests at once: exactly 4 reach the provider."""
    mock.script(*[Fault(delay=3.0) for _ in range(24)])
    before = len(mock.requests)

    def one(i):
        r = post(gw.url("/v1/chat/completions"), chat_body(), headers=bearer(key("conc4")),
                 timeout=30)
        return r.status_code

    codes = Counter(hammer(one, 24, workers=24))
    assert codes == {200: 4, 429: 20}, codes
    assert len(mock.requests) - before == 4
    entry = {e["name"]: e for e in poolkit.status_json(gw)["access"]["entries"]}["conc4"]
    assert entry["inflight"] == 0
    mock.reset()


def test_pool_steers_around_a_full_member(gw, mock):
    """Member a allows 2 requests a minute: the pool sends the third to b instead of
    collecting the provider's 429."""
    answered = []
    for _ in range(4):
        r = post(gw.url("/v1/steer/chat/completions"), chat_body(model=None),
                 headers=bearer(key("free")))
        assert r.status_code == 200, r.text
        answered.append(r.headers["x-llmgw-backend"])
    assert answered == ["a", "a", "b", "b"]


def test_every_member_full(gw, mock):
    before = len(mock.requests)
    codes = []
    for _ in range(3):
        r = post(gw.url("/v1/full/chat/completions"), chat_body(model=None),
                 headers=bearer(key("free")))
        codes.append(r.status_code)
    assert codes == [200, 200, 429]
    err = assert_openai_error(r, 429, "rate_limit_exceeded")
    assert "provider's rate limit" in err["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert len(mock.requests) - before == 2


# -- identity from httpd's auth modules ------------------------------------------------------

AUTH_MODULES = "".join(
    f"LoadModule {m}_module {harness.MODULES_DIR}/mod_{m}.so\n"
    for m in ("authn_core", "authn_file", "authz_user", "auth_basic"))


@pytest.fixture(scope="module")
def basic(request, module_so, mock, tmp_path_factory):
    """Basic auth (mod_auth_basic + an htpasswd file) in front of the gateway, which takes
    REMOTE_USER as the principal."""
    h = harness.Httpd("access-basic")
    pw = h.root / "htpasswd"
    for i, user in enumerate(("alice", "bob", "carol", "dave")):
        subprocess.run(["htpasswd", "-b", "-B", "-C", "4"] + (["-c"] if i == 0 else []) +
                       [str(pw), user, f"{user}-pw"], check=True, capture_output=True)
    pw.chmod(0o644)
    yaml = harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY,
                                            models=["gpt-mock"], maxRetries=0)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa"),
                   harness.route("embed", "/v1/embeddings", "oa")],
        "access": {"principal": "env:REMOTE_USER",
                   "principals": [{"name": "alice", "limits": {"rpm": 2}},
                                  {"name": "dave", "routes": ["embed"]},
                                  {"name": "*", "limits": {"rpm": 1}}]},
    }) + "\n"
    auth = (f"AuthType Basic\nAuthName gateway\nAuthBasicProvider file\n"
            f"AuthUserFile {pw}\nRequire valid-user\n")
    h.write_yaml(yaml)
    h.write_conf(pre_module=AUTH_MODULES, v1_extra=auth, server_extra=poolkit.STATUS_CONF)
    h.start()

    def fin():
        h.stop()
    request.addfinalizer(fin)
    return h


def as_user(h, user, password=None, path="/v1/chat/completions", body=None):
    return post(h.url(path), body or chat_body(), headers={"Authorization": None},
                session=_basic_session(user, password or f"{user}-pw"))


def _basic_session(user, password):
    import requests
    s = requests.Session()
    s.auth = (user, password)
    return s


@pytest.mark.skipif(harness.PROTO == "h2", reason="Basic auth sessions are HTTP/1.1 here")
@pytest.mark.allow_log(r"LLMGW\d{5}", r"AH01617: user bob: authentication failure")
def test_basic_auth_principals(basic, mock):
    codes = [as_user(basic, "alice").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # Everyone not listed has limits of their own (rpm 1 each), not one shared budget.
    assert [as_user(basic, "bob").status_code for _ in range(2)] == [200, 429]
    assert as_user(basic, "carol").status_code == 200
    r = as_user(basic, "alice")
    assert_openai_error(r, 429, "rate_limit_exceeded")
    assert r.headers["x-ratelimit-limit-requests"] == "2"
    assert basic.access_entry(r.test_id)["key"] == "alice"
    # The password is httpd's business: a wrong one never reaches the gateway.
    before = len(mock.requests)
    r = as_user(basic, "bob", "wrong")
    assert r.status_code == 401 and "invalid_api_key" not in r.text
    assert len(mock.requests) == before
    # A listed principal's route allowlist.
    assert_openai_error(as_user(basic, "dave"), 403, "route_not_allowed")
    data = poolkit.status_json(basic)
    entries = {e["name"]: e for e in data["access"]["entries"]}
    assert entries["alice"]["listed"] is True and entries["alice"]["requests"] == 2
    assert entries["bob"]["listed"] is False and entries["bob"]["requests"] == 1
    assert entries["carol"]["requests"] == 1
    fams = promparse.parse(poolkit.status_get(basic, "?format=prometheus").text)
    labels = {lab.get("principal") for _, lab, _ in fams["llmgw_access_requests_total"].samples}
    assert labels == {"alice", "dave", "*"}, labels


@pytest.mark.skipif(harness.PROTO == "h2", reason="no auth at all: plain request")
def test_principal_missing_is_401(module_so, mock, request):
    yaml = harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY, maxRetries=0)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
        "access": {"principal": "header:X-Remote-User",
                   "principals": [{"name": "alice"}, {"name": 'quote"d name'}]},
    }) + "\n"
    h = start_gateway(request, "access-noauth", yaml)
    err = assert_openai_error(post(h.url("/v1/chat/completions"), chat_body()), 401,
                              "invalid_api_key")
    assert "X-Remote-User" in err["message"]
    r = post(h.url("/v1/chat/completions"), chat_body(), headers={"X-Remote-User": "mallory"})
    assert_openai_error(r, 401, "invalid_api_key")
    r = post(h.url("/v1/chat/completions"), chat_body(), headers={"X-Remote-User": "alice"})
    assert r.status_code == 200
    # What an auth module or a header gave is escaped in the access log (by mod_log_config).
    r = post(h.url("/v1/chat/completions"), chat_body(),
             headers={"X-Remote-User": 'quote"d name'})
    assert r.status_code == 200
    assert h.access_entry(r.test_id)["key"] == 'quote\\"d name'
    r = post(h.url("/v1/chat/completions"), chat_body(), headers={"X-Remote-User": "x" * 200})
    assert_openai_error(r, 401, "invalid_api_key")


# -- virtual hosts ----------------------------------------------------------------------------

def test_vhosts_have_their_own_keys(module_so, mock, request):
    ka, ea = new_key("same-name", limits={"rpm": 1})
    kb, eb = new_key("same-name", limits={"rpm": 1})

    def yaml(entry):
        return harness.to_yaml({
            "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY, maxRetries=0)],
            "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
            "access": {"keys": [entry]}}) + "\n"

    h = start_gateway(request, "access-vhosts", yaml(ea), vhosts=[VirtualHost("b", yaml(eb))])
    b = h.vhost("b")
    assert post(h.url("/v1/chat/completions"), chat_body(), headers=bearer(ka)).status_code == 200
    assert_openai_error(post(b.url("/v1/chat/completions"), chat_body(), headers=bearer(ka)),
                        401, "invalid_api_key")
    # The same key name in the other vhost has its own window.
    assert post(b.url("/v1/chat/completions"), chat_body(), headers=bearer(kb)).status_code == 200
    assert post(h.url("/v1/chat/completions"), chat_body(),
                headers=bearer(ka)).status_code == 429
