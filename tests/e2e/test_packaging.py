"""The gateway files an operator installs: conf/gateway.yaml.example (the README's install copies
it to /etc/apache2/llmgw/gateway.yaml) and debian/gateway.yaml (the package's default conffile).

- The example is refused by configtest until both provider keys are set, naming the missing one.
- With the keys set (and the base URLs pointed at mocks) it serves what its comments promise:
  chat on OpenAI, Claude for Claude models and as fallback, embeddings on OpenAI, both models lists.
- It teaches the right thing: every backend and pool is used by a route, weights only in weighted
  pools, and no key has a `${VAR:-default}` that would pass configtest and fail at request time.
- The package's default is valid with an empty environment (enabling the module on install must
  never stop httpd) and serves nothing: JSON 404s, and a status page with no backend.
"""

from pathlib import Path

import pytest
import yaml

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, get, post
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf" / "gateway.yaml.example"
DEFAULT = ROOT / "debian" / "gateway.yaml"

# Every variable the two files read, unset (an empty value is unset for ${VAR}), so that the
# environment of whoever runs the tests does not leak in.
NO_ENV = {v: "" for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_ORG_ID", "OPENAI_BASE_URL",
                          "ANTHROPIC_BASE_URL")}


@pytest.fixture(scope="module")
def cfg(module_so):
    h = harness.Httpd("packaging-configtest")
    h.write_yaml(EXAMPLE.read_text())
    h.write_conf()
    return h


@pytest.mark.parametrize("openai,anthropic,missing", [
    (False, False, "OPENAI_API_KEY"),
    (True, False, "ANTHROPIC_API_KEY"),
    (False, True, "OPENAI_API_KEY"),
])
def test_example_refused_until_both_keys_are_set(cfg, openai, anthropic, missing):
    cfg.env = dict(NO_ENV)
    if openai:
        cfg.env["OPENAI_API_KEY"] = DEFAULT_KEY
    if anthropic:
        cfg.env["ANTHROPIC_API_KEY"] = ANTHROPIC_KEY
    r = cfg.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"environment variable {missing} is not set" in out, out
    assert f"{cfg.yaml_path}:" in out, out
    assert "Syntax OK" not in out


def test_example_accepted_with_both_keys(cfg):
    cfg.env = dict(NO_ENV, OPENAI_API_KEY=DEFAULT_KEY, ANTHROPIC_API_KEY=ANTHROPIC_KEY)
    r = cfg.configtest()
    assert r.returncode == 0, r.stdout + r.stderr


def test_example_teaches_the_right_thing():
    doc = yaml.safe_load(EXAMPLE.read_text())
    backends = {b["name"]: b for b in doc["backends"]}
    used, todo = set(), [r["backend"] for r in doc["routes"]]
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        for m in backends[name].get("backends", []):
            todo.append(m["name"] if isinstance(m, dict) else m)
    assert used == set(backends), f"not used by any route: {sorted(set(backends) - used)}"
    for b in backends.values():
        if b["type"] != "pool":
            key = b["config"]["apiKey"]
            assert key.startswith("${") and key.endswith("}") and ":-" not in key, \
                f"{b['name']}: apiKey {key!r} must fail configtest while unset"
        elif b.get("strategy", "latency") != "weighted":
            weighted = [m for m in b["backends"] if isinstance(m, dict) and "weight" in m]
            assert not weighted, f"{b['name']}: weights under strategy {b.get('strategy')}"


# -- the example, serving ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mocks():
    o = MockOpenAI(models=("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")).start()
    a = MockAnthropic(models=("claude-sonnet-4-5",)).start()
    yield o, a
    o.stop()
    a.stop()


@pytest.fixture(scope="module")
def example_gw(request, module_so, mocks):
    # Only with every endpoint overridable: the tests must never reach a real provider.
    for b in yaml.safe_load(EXAMPLE.read_text())["backends"]:
        if b["type"] != "pool":
            assert b["config"].get("endpoint", "").startswith(
                ("${OPENAI_BASE_URL:-", "${ANTHROPIC_BASE_URL:-")), b
    o, a = mocks
    env = dict(NO_ENV, OPENAI_API_KEY=DEFAULT_KEY, ANTHROPIC_API_KEY=ANTHROPIC_KEY,
               OPENAI_BASE_URL=o.url, ANTHROPIC_BASE_URL=a.url)
    return start_gateway(request, "packaging-example", EXAMPLE.read_text(), env=env)


@pytest.fixture
def fresh(mocks):
    for m in mocks:
        m.reset()
    return mocks


def test_example_chat_on_openai(example_gw, fresh):
    o, a = fresh
    r = post(example_gw.url("/v1/chat/completions"), chat_body("hi", model="gpt-4o-mini"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "openai"
    assert r.json()["choices"][0]["message"]["content"]
    assert len(o.requests) == 1 and not a.requests


def test_example_chat_on_claude(example_gw, fresh):
    o, a = fresh
    r = post(example_gw.url("/v1/chat/completions"), chat_body("hi", model="claude-sonnet-4-5"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "claude"
    assert r.json()["object"] == "chat.completion"
    assert len(a.requests) == 1 and not o.requests


@pytest.mark.allow_log()
def test_example_falls_back_to_claude(example_gw, fresh):
    o, a = fresh
    o.script(*[Fault(status=503)] * 5)
    r = post(example_gw.url("/v1/chat/completions"), chat_body("hi", model="gpt-4o-mini"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "claude"
    assert a.requests and a.requests[0].body["model"] == "claude-sonnet-4-5"


def test_example_embeddings_and_models(example_gw, fresh):
    r = post(example_gw.url("/v1/embeddings"), {"model": "text-embedding-3-small", "input": "x"})
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-backend"] == "openai"
    r = get(example_gw.url("/v1/models"))
    assert r.status_code == 200, r.text
    ids = {m["id"] for m in r.json()["data"]}
    assert {"gpt-4o-mini", "claude-sonnet-4-5"} <= ids, ids


# -- the package's default --------------------------------------------------------------------

STATUS = "<Location /llmgw-status>\n    SetHandler llmgw-status\n</Location>"


@pytest.fixture(scope="module")
def default_gw(request, module_so):
    return start_gateway(request, "packaging-default", DEFAULT.read_text(), env=NO_ENV,
                         server_extra=STATUS)


def test_default_serves_nothing(default_gw):
    r = post(default_gw.url("/v1/chat/completions"), chat_body("hi", model="gpt-4o-mini"))
    assert_openai_error(r, 404, "unknown_url")
    r = get(default_gw.url("/v1/models"))
    assert_openai_error(r, 404, "unknown_url")


def test_default_status_page_answers(default_gw):
    r = get(default_gw.url("/llmgw-status?format=json"))
    if r.status_code == 200:
        assert not r.json()["backends"], r.json()
    else:
        assert r.status_code == 503 and "no statistics" in r.text, (r.status_code, r.text)
