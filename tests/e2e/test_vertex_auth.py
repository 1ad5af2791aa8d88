"""Vertex AI service-account keys and the token endpoint, end to end (DESIGN.md 10).

The key file is mode 0600, owned by root: httpd reads it once, as root, while it reads
its configuration (like mod_ssl's keys), so configtest reports a missing or broken one
with file:line:column, and the children (User nobody) sign with the key in memory
without ever opening the file. A graceful restart reads it again (key rotation). When
the token endpoint fails, a child backs off (1 s, doubling up to 60 s) instead of asking
it once per request, answers 502 upstream_auth_failed meanwhile, and a pool falls back
to its other members.
"""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

import harness
from conftest import start_gateway
from harness import assert_openai_error, post
from mock_google import DEFAULT_API_KEY, MockGemini, ServiceAccount

# Streams, timeouts, workers and restarts: also run under worker and prefork.
pytestmark = pytest.mark.mpm

PROJECT, LOCATION = "acme-test", "us-central1"
BODY = {"messages": [{"role": "user", "content": "hello vertex"}]}
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0,
                               reason="needs root: httpd must run its children as nobody")


@pytest.fixture(scope="module")
def vmock():
    m = MockGemini(project=PROJECT, location=LOCATION).start()
    harness.GEN_DIR.mkdir(parents=True, exist_ok=True)
    m.sa = ServiceAccount(str(harness.GEN_DIR / "vertex-auth-keys"), m.token_uri)
    m.public_key_path = m.sa.pub_path
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh_vmock(request):
    if "vmock" in request.fixturenames:
        request.getfixturevalue("vmock").reset()
    yield


def vertex_backend(name, mock, **config):
    cfg = {"endpoint": mock.base, "defaultModel": "gemini-2.5-pro", "maxRetries": 0,
           "projectId": PROJECT, "location": LOCATION, "credentialsFile": mock.sa.json_path}
    cfg.update(config)
    return {"name": name, "type": "google", "config": cfg}


def gateway_text(mock):
    return harness.gateway_yaml(
        backends=[
            vertex_backend("vtx", mock),
            # Separate backends, so that one test's back-off does not leak into another.
            vertex_backend("vtx-down", mock),
            vertex_backend("vtx-member", mock),
            {"name": "gem", "type": "google",
             "config": {"endpoint": mock.base, "defaultModel": "gemini-2.5-flash",
                        "apiKey": DEFAULT_API_KEY, "maxRetries": 0}},
            {"name": "pool", "type": "pool", "strategy": "priority", "fallback": True,
             "backends": [{"name": "vtx-member"}, {"name": "gem"}]},
        ],
        routes=[
            harness.route("vertex", "/v1/chat/completions", "vtx"),
            harness.route("down", "/v1/down/chat/completions", "vtx-down"),
            harness.route("pool", "/v1/pool/chat/completions", "pool"),
        ])


@pytest.fixture(scope="module")
def gw(request, module_so, vmock):
    return start_gateway(request, "vertex-auth", gateway_text(vmock))


def chats(mock):
    return [rec for rec in mock.requests if rec.path.startswith("/v1/projects/")]


def children(h):
    return harness._children(h.pid)


def restore_key(mock, text, public_key_path):
    with open(mock.sa.json_path, "w") as f:
        f.write(text)
    os.chmod(mock.sa.json_path, 0o600)
    mock.public_key_path = public_key_path


# -- the key stays root's ----------------------------------------------------------------

@ROOT_ONLY
def test_root_only_key_works_with_children_as_nobody(gw, vmock):
    st = os.stat(vmock.sa.json_path)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0
    nobody = pwd.getpwnam("nobody").pw_uid

    def uids():
        out = {}
        for pid in children(gw):
            try:
                with open(f"/proc/{pid}/status") as f:
                    line = next(x for x in f if x.startswith("Uid:"))
            except (OSError, StopIteration):
                continue  # gone meanwhile
            out[pid] = {int(u) for u in line.split()[1:]}
        return out

    # A child forked a moment ago may not have switched to User yet (prefork).
    assert harness.wait_until(lambda: uids() and all(u == {nobody} for u in uids().values()),
                              timeout=10), uids()
    r = post(gw.url("/v1/chat/completions"), BODY)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hello vertex"
    assert [t["ok"] for t in vmock.token_requests] == [True]
    assert [rec.status for rec in chats(vmock)] == [200]


@pytest.mark.allow_log()
def test_children_never_open_the_key_file(gw, vmock):
    """The file goes away; a new token (after Vertex's 401) is still signed in memory."""
    assert post(gw.url("/v1/chat/completions"), BODY).status_code == 200
    aside = vmock.sa.json_path + ".aside"
    os.rename(vmock.sa.json_path, aside)
    try:
        vmock.reset()
        vmock.revoke_tokens()
        r = post(gw.url("/v1/chat/completions"), BODY)
        assert r.status_code == 200, r.text
        assert vmock.token_requests and all(t["ok"] for t in vmock.token_requests)
    finally:
        os.rename(aside, vmock.sa.json_path)


@pytest.mark.allow_log()
def test_graceful_restart_reads_a_rotated_key(gw, vmock, tmp_path):
    original = open(vmock.sa.json_path).read()
    original_pub = vmock.public_key_path
    new = ServiceAccount(str(tmp_path / "rotated"), vmock.token_uri)
    try:
        # Google now knows only the new key; the file holds it.
        shutil.copyfile(new.json_path, vmock.sa.json_path)
        os.chmod(vmock.sa.json_path, 0o600)
        vmock.public_key_path = new.pub_path
        vmock.revoke_tokens()
        # Until the restart, the children sign with the old key, from memory.
        r = post(gw.url("/v1/chat/completions"), BODY)
        assert_openai_error(r, 502, code="upstream_auth_failed")
        assert [t["error"] for t in vmock.token_requests] == ["invalid_grant"]
        gw.graceful()
        vmock.reset()
        r = post(gw.url("/v1/chat/completions"), BODY)
        assert r.status_code == 200, r.text
        assert [t["ok"] for t in vmock.token_requests] == [True]
    finally:
        restore_key(vmock, original, original_pub)
        vmock.revoke_tokens()
        gw.graceful()
    assert post(gw.url("/v1/chat/completions"), BODY).status_code == 200


@pytest.mark.allow_log(r"gateway\.yaml", r"LLMGW\d{5}")
def test_graceful_with_a_broken_key_is_refused_and_the_old_key_serves(gw, vmock):
    original = open(vmock.sa.json_path).read()
    generations = gw.generations()
    try:
        with open(vmock.sa.json_path, "w") as f:
            f.write('{"client_email": "x@y", "token_uri": "https://t/token"}')
        r = gw.graceful(expect_ok=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert f"the service-account file {vmock.sa.json_path} has no private_key" in out, out
        assert gw.alive() and gw.generations() == generations
        vmock.revoke_tokens()
        assert post(gw.url("/v1/chat/completions"), BODY).status_code == 200
    finally:
        restore_key(vmock, original, vmock.public_key_path)


@pytest.mark.allow_log(r"LLMGW00100", r"upstream_auth_failed", r"LLMGW\d{5}")
def test_raw_restart_with_a_broken_key_keeps_the_server_up(gw, vmock):
    """SIGUSR1 skips configtest: the parent logs the key, that backend answers 502."""
    original = open(vmock.sa.json_path).read()
    mark = gw.log_mark()
    try:
        with open(vmock.sa.json_path, "w") as f:
            f.write("not json")
        before = gw.generations()
        os.kill(gw.pid, signal.SIGUSR1)
        assert harness.wait_until(lambda: gw.generations() > before, timeout=20)
        time.sleep(0.3)
        assert gw.alive()
        log = gw.error_log_text(mark)
        assert re.search(r"LLMGW00100: LLMGatewayConfig: .*gateway\.yaml:\d+:\d+: "
                         r"backend \"vtx\" \(Vertex AI\): the service-account file .* is not a "
                         r"JSON object", log), log
        r = post(gw.url("/v1/chat/completions"), BODY)
        err = assert_openai_error(r, 502, code="upstream_auth_failed")
        assert "was not loaded when the configuration was read" in err["message"]
        # The rest of the gateway serves on.
        r = post(gw.url("/v1/pool/chat/completions"), BODY)
        assert r.status_code == 200 and r.headers.get("x-llmgw-backend") == "gem", r.text
    finally:
        restore_key(vmock, original, vmock.public_key_path)
        gw.graceful()
    vmock.revoke_tokens()
    assert post(gw.url("/v1/chat/completions"), BODY).status_code == 200


# -- token endpoint down: back off, fall back, recover ------------------------------------

def _allowed_fetches(elapsed):
    """Exchanges one child may make within `elapsed` seconds of its first failure when it
    waits 1, 2, 4, ... s between them: at 0, 1, 3, 7, 15, ... s."""
    n, t, wait = 1, 0.0, 1.0
    while t + wait <= elapsed:
        t += wait
        wait = min(wait * 2, 60.0)
        n += 1
    return n


@pytest.mark.allow_log(r"upstream_auth_failed", r"LLMGW\d{5}")
def test_token_endpoint_down_fails_fast_then_recovers(gw, vmock):
    vmock.token_outage = 503
    session = requests.Session()  # one connection: one child, one cache
    t0 = time.monotonic()
    answers = [post(gw.url("/v1/down/chat/completions"), BODY, session=session)
               for _ in range(8)]
    elapsed = time.monotonic() - t0
    for r in answers:
        err = assert_openai_error(r, 502, code="upstream_auth_failed", type_="server_error")
        assert "the token endpoint answered HTTP 503" in err["message"], err
        for secret in ("eyJ", "ya29.", "PRIVATE KEY", DEFAULT_API_KEY):
            assert secret not in r.text
    fetches = len(vmock.token_requests)
    assert 1 <= fetches <= _allowed_fetches(elapsed), (fetches, elapsed)
    assert any("no new token request for" in r.json()["error"]["message"] for r in answers)
    assert chats(vmock) == []  # nothing was sent to Vertex without a token
    # The endpoint comes back: within the back-off (a few seconds) requests succeed again.
    vmock.token_outage = None
    deadline = time.monotonic() + 15
    r = None
    while time.monotonic() < deadline:
        r = post(gw.url("/v1/down/chat/completions"), BODY, session=session)
        if r.status_code == 200:
            break
        assert_openai_error(r, 502, code="upstream_auth_failed")
        time.sleep(0.25)
    assert r is not None and r.status_code == 200, r.text if r is not None else None
    ok = [t for t in vmock.token_requests if t["ok"]]
    assert len(ok) == 1
    # A success ends the back-off: further requests use the token, no new exchange.
    assert post(gw.url("/v1/down/chat/completions"), BODY, session=session).status_code == 200
    assert len([t for t in vmock.token_requests if t["ok"]]) == 1


@pytest.mark.allow_log(r"upstream_auth_failed", r"LLMGW\d{5}")
def test_pool_falls_back_while_the_token_endpoint_is_down(gw, vmock):
    vmock.token_outage = 500
    kids = len(children(gw))
    t0 = time.monotonic()
    for _ in range(3):
        r = post(gw.url("/v1/pool/chat/completions"), BODY)
        assert r.status_code == 200, r.text
        assert r.headers.get("x-llmgw-backend") == "gem"
    elapsed = time.monotonic() - t0
    kids = max(kids, len(children(gw)))
    assert 1 <= len(vmock.token_requests) <= kids * _allowed_fetches(elapsed)
    assert chats(vmock) == []


# -- configtest ---------------------------------------------------------------------------

def _ec_key_pem(tmp_path):
    path = tmp_path / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(path)], check=True,
                   capture_output=True)
    return path.read_text()


def _broken(case, sa, tmp_path):
    """(file text or None for a directory, or "missing"; the expected end of the sentence)."""
    good = json.load(open(sa.json_path))

    def without(key):
        return json.dumps({k: v for k, v in good.items() if k != key})

    def with_(**kv):
        return json.dumps(dict(good, **kv))

    return {
        "missing": ("missing", "cannot be read (No such file or directory)"),
        "directory": (None, "is not a regular file"),
        "empty": ("", "is empty"),
        "not-json": ("private_key = secret", "is not a JSON object"),
        "no-client-email": (without("client_email"), "has no client_email"),
        "no-token-uri": (without("token_uri"), "has no token_uri"),
        "no-private-key": (without("private_key"), "has no private_key"),
        "token-uri-ftp": (with_(token_uri="ftp://127.0.0.1/token"),
                          "has a token_uri that is neither an https URL nor an http URL on "
                          "the loopback interface"),
        "garbled-key": (with_(private_key=good["private_key"][:200]),
                        "has a private_key that is not an unencrypted PEM private key"),
        "ec-key": (with_(private_key=_ec_key_pem(tmp_path)),
                   "has a private_key that is not an RSA key"),
    }[case]


@pytest.fixture(scope="module")
def ct(module_so):
    """A server root used only for `apache2 -t`."""
    h = harness.Httpd("vertex-configtest")
    h.write_conf()
    return h


def _configtest(ct, mock, env=None, **config):
    text = harness.gateway_yaml(backends=[vertex_backend("vtx", mock, **config)],
                                routes=[harness.route("c", "/v1/chat/completions", "vtx")])
    ct.write_yaml(text)
    ct.env = dict(env or {})
    r = ct.configtest()
    return r, text, r.stdout + r.stderr


def _position(text, key):
    """1-based line and column of the value of `key:` in the YAML text."""
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(rf"^(\s*{key}: )", line)
        if m:
            return i, len(m.group(1)) + 1
    raise AssertionError(f"{key} not in {text}")


def test_configtest_accepts_a_root_only_key(ct, vmock):
    r, _, out = _configtest(ct, vmock)
    assert r.returncode == 0, out
    assert "Syntax OK" in out


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "not-json",
                                  "no-client-email", "no-token-uri", "no-private-key",
                                  "token-uri-ftp", "garbled-key", "ec-key"])
def test_configtest_refuses_a_broken_key_file(ct, vmock, tmp_path, case):
    content, sentence = _broken(case, vmock.sa, tmp_path)
    path = tmp_path / "sa.json"
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_text(content)
        os.chmod(path, 0o600)
    r, text, out = _configtest(ct, vmock, credentialsFile=str(path))
    assert r.returncode != 0, out
    line, col = _position(text, "credentialsFile")
    want = (f"{ct.yaml_path}:{line}:{col}: backend \"vtx\" (Vertex AI): the service-account "
            f"file {path} {sentence}")
    assert want in out, out
    assert "Syntax OK" not in out
    for secret in ("PRIVATE KEY", "MII"):
        assert secret not in out


def test_configtest_reads_the_default_from_the_environment(ct, vmock, tmp_path):
    """Without credentialsFile, $GOOGLE_APPLICATION_CREDENTIALS of httpd's environment names
    the file; messages point at projectId."""
    text = harness.gateway_yaml(
        backends=[{"name": "vtx", "type": "google",
                   "config": {"endpoint": vmock.base, "projectId": PROJECT,
                              "location": LOCATION}}],
        routes=[harness.route("c", "/v1/chat/completions", "vtx")])
    ct.write_yaml(text)
    line, col = _position(text, "projectId")
    where = f"{ct.yaml_path}:{line}:{col}: backend \"vtx\" (Vertex AI): "
    missing = tmp_path / "nowhere.json"
    try:
        ct.env = {"GOOGLE_APPLICATION_CREDENTIALS": ""}
        r = ct.configtest()
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert where + ("no credentialsFile is given and GOOGLE_APPLICATION_CREDENTIALS is "
                        "not set") in out, out
        ct.env = {"GOOGLE_APPLICATION_CREDENTIALS": str(missing)}
        r = ct.configtest()
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert where + (f"the service-account file {missing} cannot be read (No such file or "
                        "directory)") in out, out
        ct.env = {"GOOGLE_APPLICATION_CREDENTIALS": vmock.sa.json_path}
        r = ct.configtest()
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        ct.env = {}
