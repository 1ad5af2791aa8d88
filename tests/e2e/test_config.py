"""gateway.yaml at configuration time: configtest errors with file:line:column, ${VAR},
graceful reloads (valid ones take effect, invalid ones are refused and the old config keeps
serving), and directive errors."""

import re
import time

import pytest

import harness
from conftest import start_gateway
from harness import chat_body, post
from mock_openai import DEFAULT_KEY

# Streams, timeouts, workers and restarts: also run under worker and prefork.
pytestmark = pytest.mark.mpm

VALID = """\
backends:
  - name: "primary"
    type: openai
    config:
      apiKey: "{key}"
      endpoint: "{endpoint}"
      defaultModel: "model-a"
      timeout: 10s
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    methods: ["POST"]
    backend: "primary"
"""

# Each case: (id, yaml text with {key}/{endpoint}, lines where the error may be reported,
#             words one of which the message must contain)
INVALID = [
    ("unknown-type", """\
backends:
  - name: "a"
    type: opneai
    config:
      apiKey: "k"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {3}, ["opneai"]),
    ("route-to-missing-backend", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "nope"
""", {7, 9}, ["nope"]),
    ("bad-duration", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
      timeout: 5 parsecs
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {6}, ["timeout", "parsecs"]),
    ("negative-duration", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
      idleTimeout: -5s
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {6}, ["idleTimeout", "-5s"]),
    ("unknown-key", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
      colour: blue
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {6}, ["colour"]),
    ("route-without-path", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
routes:
  - name: "chat"
    backend: "a"
""", {7, 8}, ["path"]),
    ("unset-required-variable", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "${LLMGW_E2E_SURELY_UNSET_VAR}"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {5}, ["LLMGW_E2E_SURELY_UNSET_VAR"]),
    ("yaml-syntax", """\
backends:
  - name: "a"
    type: @openai
    config:
      apiKey: "k"
routes: []
""", {3}, []),
    ("bad-backend-name", """\
backends:
  - name: "bad name!"
    type: openai
    config:
      apiKey: "k"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "bad name!"
""", {2}, ["bad name!"]),
    ("duplicate-backend", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
  - name: "a"
    type: openai
    config:
      apiKey: "k2"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "a"
""", {2, 6}, ['"a"', "'a'", "a:"]),
    ("pool-member-missing", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
  - name: "p"
    type: pool
    strategy: priority
    backends:
      - { name: a }
      - { name: ghost }
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "p"
""", {6, 9, 11}, ["ghost"]),
    ("pool-cycle", """\
backends:
  - name: "a"
    type: openai
    config:
      apiKey: "k"
  - name: "p1"
    type: pool
    backends:
      - { name: p2 }
  - name: "p2"
    type: pool
    backends:
      - { name: p1 }
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "p1"
""", {6, 8, 9, 10, 12, 13}, ["cycle", "p1", "p2"]),
]


@pytest.fixture(scope="module")
def cfg(module_so):
    """A server root used only for `apache2 -t`."""
    h = harness.Httpd("configtest")
    h.write_conf()
    return h


def test_configtest_accepts_a_valid_file(cfg):
    cfg.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint="http://127.0.0.1:9/v1"))
    r = cfg.configtest()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Syntax OK" in r.stdout + r.stderr


@pytest.mark.parametrize("text,lines,words", [(t, ln, w) for _, t, ln, w in INVALID],
                         ids=[i for i, _, _, _ in INVALID])
def test_configtest_rejects_invalid_file_with_position(cfg, text, lines, words):
    cfg.write_yaml(text)
    r = cfg.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    m = re.search(re.escape(str(cfg.yaml_path)) + r":(\d+):(\d+)", out) or \
        re.search(r"gateway\.yaml:(\d+):(\d+)", out)
    assert m, f"no file:line:column in: {out}"
    assert int(m.group(1)) in lines, f"line {m.group(1)} not in {sorted(lines)}: {out}"
    assert int(m.group(2)) >= 1
    sentence = out[m.end():]
    assert re.search(r"[A-Za-z]{3,}.*[A-Za-z]{3,}", sentence), out
    if words:
        assert any(w in out for w in words), f"none of {words} in: {out}"
    assert "Syntax OK" not in out


def test_configtest_missing_file_names_it(cfg):
    cfg.yaml_path.unlink()
    r = cfg.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert str(cfg.yaml_path) in out


@pytest.mark.parametrize("directive", ["LLMGatewayMaxBody", "LLMGatewayMaxUpstreamBody"])
@pytest.mark.parametrize("where,value", [("v1_extra", v) for v in ("12Q", "-1", "lots", "", "0")]
                         + [("server_extra", "12Q")])
def test_configtest_rejects_bad_size(cfg, directive, value, where):
    cfg.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint="http://127.0.0.1:9/v1"))
    h = harness.Httpd("configtest-maxbody")
    h.write_yaml(cfg.yaml_path.read_text())
    h.write_conf(**{where: f'{directive} "{value}"'})
    r = h.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert directive in out, out
    if value:  # an empty one is refused by httpd itself ("takes one argument")
        assert f"{directive}: '{value}' is not a" in out, out


@pytest.mark.parametrize("directive", ["LLMGatewayMaxBody", "LLMGatewayMaxUpstreamBody"])
def test_configtest_accepts_sizes(cfg, directive):
    cfg.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint="http://127.0.0.1:9/v1"))
    h = harness.Httpd("configtest-maxbody")
    h.write_yaml(cfg.yaml_path.read_text())
    h.write_conf(server_extra=f"{directive} 1048576", v1_extra=f"{directive} 512K",
                 classic_extra=f"{directive} 2G")
    r = h.configtest()
    assert r.returncode == 0, r.stdout + r.stderr


def test_start_with_invalid_file_fails_with_message(cfg):
    h = harness.Httpd("badstart")
    h.write_yaml(INVALID[0][1])
    h.write_conf()
    with pytest.raises(harness.HttpdError) as exc:
        h.start()
    assert "opneai" in str(exc.value)
    assert not h.alive()


# -- ${VAR} ----------------------------------------------------------------------------------

def test_variables_are_expanded_from_the_environment(request, module_so, mock):
    text = """\
backends:
  - name: "env"
    type: openai
    config:
      apiKey: "${LLMGW_E2E_KEY}"
      endpoint: "${LLMGW_E2E_ENDPOINT}"
      orgId: "${LLMGW_E2E_ORG_UNSET}"
      defaultModel: "${LLMGW_E2E_MODEL_UNSET:-model-from-default}"
routes:
  - name: "chat"
    path: "/v1/chat/completions"
    backend: "env"
"""
    h = start_gateway(request, "envvars", text,
                      env={"LLMGW_E2E_KEY": DEFAULT_KEY, "LLMGW_E2E_ENDPOINT": mock.url})
    r = post(h.url("/v1/chat/completions"), chat_body("env", model=None))
    assert r.status_code == 200, r.text
    [rec] = mock.requests
    assert rec.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert rec.body["model"] == "model-from-default"
    assert "openai-organization" not in rec.headers  # unset optional variable = absent
    h.stop()


# -- graceful restarts -------------------------------------------------------------------

@pytest.fixture
def live(request, module_so, mock):
    return start_gateway(request, "graceful",
                         VALID.format(key=DEFAULT_KEY, endpoint=mock.url))


def _upstream_model(h, mock, path="/v1/chat/completions"):
    """The model the gateway sends upstream for a request without one (fresh connection)."""
    before = len(mock.requests)
    r = post(h.url(path), chat_body("which model?", model=None),
             headers={"Connection": "close"})
    if r.status_code != 200:
        return r.status_code
    return mock.requests[before].body["model"]


def _wait_for(fn, expected, timeout=8.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_graceful_with_valid_file_takes_effect(live, mock):
    assert _upstream_model(live, mock) == "model-a"
    text = VALID.format(key=DEFAULT_KEY, endpoint=mock.url).replace("model-a", "model-b")
    text += """  - name: "extra"
    path: "/v1/extra/chat/completions"
    methods: ["POST"]
    backend: "primary"
"""
    live.write_yaml(text)
    pid = live.pid
    live.graceful()
    assert live.pid == pid and live.alive()
    assert _wait_for(lambda: _upstream_model(live, mock), "model-b") == "model-b"
    assert _wait_for(lambda: _upstream_model(live, mock, "/v1/extra/chat/completions"),
                     "model-b") == "model-b"


def test_graceful_removing_a_route_takes_effect(live, mock):
    text = VALID.format(key=DEFAULT_KEY, endpoint=mock.url).replace(
        '"/v1/chat/completions"', '"/v1/renamed/chat/completions"')
    live.write_yaml(text)
    live.graceful()
    assert _wait_for(lambda: _upstream_model(live, mock), 404) == 404
    assert _upstream_model(live, mock, "/v1/renamed/chat/completions") == "model-a"


@pytest.mark.allow_log(r"LLMGW\d{5}", r"gateway\.yaml")
def test_graceful_with_invalid_file_is_refused_and_old_config_keeps_serving(live, mock):
    assert _upstream_model(live, mock) == "model-a"
    generations = live.generations()
    live.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint=mock.url)
                    .replace("type: openai", "type: opneai")
                    .replace("model-a", "model-broken"))
    r = live.graceful(expect_ok=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(r"gateway\.yaml:3:\d+", out), out
    assert "opneai" in out
    time.sleep(1.0)
    assert live.alive()
    assert live.generations() == generations
    for _ in range(5):
        assert _upstream_model(live, mock) == "model-a"
    # and a fixed file is picked up by the next graceful
    live.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint=mock.url).replace("model-a",
                                                                             "model-c"))
    live.graceful()
    assert _wait_for(lambda: _upstream_model(live, mock), "model-c") == "model-c"


def test_repeated_graceful_restarts_keep_serving(live, mock):
    for i in range(3):
        live.write_yaml(VALID.format(key=DEFAULT_KEY, endpoint=mock.url)
                        .replace("model-a", f"model-g{i}"))
        live.graceful()
        assert _wait_for(lambda: _upstream_model(live, mock), f"model-g{i}") == f"model-g{i}"
