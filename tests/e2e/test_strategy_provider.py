"""Pool strategies from another httpd module (llmgw_strategy.h, src/mod_llmgw_strategy.c).

tests/e2e/modules/mod_llmgw_teststrat.c is compiled here with apxs, as a third party
would build it, against the repository's headers only. It registers the strategy
"reverse" (members in reverse listed order, available ones first) as an httpd provider.
A pool naming it must use that order, whether the module is loaded before or after
mod_llmgw; an unknown name fails configtest at file:line:column with every name
registered at the time.

All members of a pool here sit on one mock, each with its own defaultModel, so the
models the mock received, in order, are the order the gateway tried the members in.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness
import poolkit
from conftest import start_gateway
from harness import chat_body, post
from mock_openai import DEFAULT_KEY, Fault

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "modules" / "mod_llmgw_teststrat.c"
LOAD_NAME = "llmgw_teststrat_module"
MEMBERS = ("m1", "m2", "m3")
FAST = dict(connectTimeout="1s", firstByteTimeout="2s", idleTimeout="2s", timeout="6s",
            maxRetries=0)


def build(tmp_path_factory, *defines):
    """Compile the test module with apxs into a fresh directory; returns the .so."""
    apxs = os.environ.get("LLMGW_APXS") or shutil.which("apxs") or shutil.which("apxs2")
    if not apxs:
        pytest.skip("apxs is not installed: cannot build the third-party test module")
    work = tmp_path_factory.mktemp("teststrat")
    shutil.copy(SOURCE, work)
    # The build tree's include/ holds the generated headers, the source tree the rest.
    includes = [f"-I{d}" for d in (harness.BUILD_DIR / "include", HERE.parents[1] / "include")]
    r = subprocess.run([apxs, "-c", *includes, *defines, "-Wc,-Wall", "-Wc,-Werror",
                        SOURCE.name], cwd=work, capture_output=True, text=True, timeout=120)
    so = work / ".libs" / "mod_llmgw_teststrat.so"
    assert r.returncode == 0 and so.is_file(), r.stdout + r.stderr
    os.chmod(work, 0o755)
    return so


@pytest.fixture(scope="module")
def teststrat_so(tmp_path_factory, module_so):
    return build(tmp_path_factory)


@pytest.fixture(scope="module")
def replacing_so(tmp_path_factory, module_so):
    """The same module, registering its strategy as "priority"."""
    return build(tmp_path_factory, "-DTESTSTRAT_REPLACE_PRIORITY")


def load_line(so):
    return f"LoadModule {LOAD_NAME} {so}\n"


def members(tag, endpoint):
    return [harness.openai_backend(f"{tag}-{m}", endpoint, DEFAULT_KEY,
                                   defaultModel=f"{tag}-{m}-model", **FAST) for m in MEMBERS]


def gateway(mock, strategy="reverse"):
    """Pool `rev` with the given strategy and pool `prio` (priority), same members."""
    backends = members("rev", mock.url) + members("prio", mock.url)
    backends.append(poolkit.pool_backend("rev", [f"rev-{m}" for m in MEMBERS], strategy,
                                         failureThreshold=1000000))
    backends.append(poolkit.pool_backend("prio", [f"prio-{m}" for m in MEMBERS], "priority",
                                         failureThreshold=1000000))
    routes = [harness.route(t, f"/v1/{t}/chat/completions", t) for t in ("rev", "prio")]
    return harness.gateway_yaml(backends, routes)


def ask(h, tag, text):
    return post(h.url(f"/v1/{tag}/chat/completions"), chat_body(text, model=None))


def tried(mock):
    """The members the mock heard from, in order (by their models)."""
    return [r.body["model"].rsplit("-model", 1)[0] for r in mock.requests]


@pytest.fixture(scope="module", params=["before", "after"])
def gw(request, teststrat_so, mock):
    """mod_llmgw_teststrat loaded before mod_llmgw, or after it (and after
    LLMGatewayConfig: the file is read once every module has registered its hooks)."""
    where = "pre_module" if request.param == "before" else "server_extra"
    return start_gateway(request, f"strat-{request.param}", gateway(mock),
                         **{where: load_line(teststrat_so)})


# -- the strategy is used ----------------------------------------------------------------

def test_pool_takes_the_order_of_the_other_module(gw, mock):
    for i in range(3):
        r = ask(gw, "rev", f"r{i}")
        assert r.status_code == 200, r.text[:300]
        assert r.headers["x-llmgw-backend"] == "rev-m3"
    assert tried(mock) == ["rev-m3"] * 3
    # The same members in a priority pool: the listed order. Not a coincidence of the mock.
    mock.reset()
    r = ask(gw, "prio", "p")
    assert r.headers["x-llmgw-backend"] == "prio-m1"
    assert tried(mock) == ["prio-m1"]


def test_fallback_follows_the_other_modules_order(gw, mock):
    mock.script(Fault(status=500), Fault(status=500))
    r = ask(gw, "rev", "down the list")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-llmgw-backend"] == "rev-m1"
    assert r.headers["x-llmgw-attempts"] == "3"
    assert tried(mock) == ["rev-m3", "rev-m2", "rev-m1"]
    assert r.json()["choices"][0]["message"]["content"] == "echo: down the list"


def test_startup_log_names_the_pool_with_a_foreign_strategy(gw):
    log = gw.error_log_text()
    assert re.search(r'LLMGW00020: \S+gateway\.yaml: pool "rev" uses strategy "reverse" '
                     r'from another module', log), log[-2000:]
    assert 'pool "prio" uses' not in log


def test_graceful_restart_resolves_the_strategy_again(gw, mock):
    """httpd unloads and reloads every module on a graceful restart: the pool must
    point at the reloaded module's strategy, not at the old one's address."""
    gw.graceful()
    assert [ask(gw, "rev", f"g{i}").headers["x-llmgw-backend"] for i in range(2)] == \
        ["rev-m3"] * 2
    assert tried(mock) == ["rev-m3"] * 2


@pytest.mark.parametrize("where", ["pre_module", "server_extra"])
def test_a_module_can_replace_a_builtin(request, replacing_so, mock, where):
    """Whichever module is loaded first, the other module's "priority" is the one used."""
    h = start_gateway(request, f"strat-replace-{where}", gateway(mock, strategy="latency"),
                      **{where: load_line(replacing_so)})
    r = ask(h, "prio", "replaced")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-llmgw-backend"] == "prio-m3"
    assert tried(mock) == ["prio-m3"]
    assert 'pool "prio" uses strategy "priority" from another module' in h.error_log_text()


# -- unknown names -----------------------------------------------------------------------

def _position(text, key, value):
    """1-based line and column of `value` written as `key: value` in `text`."""
    needle = f"{key}: {value}"
    for n, line in enumerate(text.splitlines(), 1):
        if line.rstrip().endswith(needle):
            return n, len(line.rstrip()) - len(value) + 1
    raise AssertionError(f"{needle!r} not in the file")


BUILTINS = "latency, weighted, round-robin, priority, least-busy"


@pytest.mark.parametrize("loaded, name, known", [
    (False, "reverse", BUILTINS),
    (True, "fastest", BUILTINS + ", reverse"),
])
def test_configtest_refuses_an_unknown_strategy(module_so, teststrat_so, mock, loaded, name,
                                                known):
    h = harness.Httpd(f"strat-unknown-{name}")
    text = gateway(mock, strategy=name)
    h.write_yaml(text)
    h.write_conf(pre_module=load_line(teststrat_so) if loaded else "")
    r = h.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    line, col = _position(text, "strategy", name)
    assert (f'{h.yaml_path}:{line}:{col}: backend "rev": strategy must be one of {known}, '
            f'not "{name}"') in out, out
