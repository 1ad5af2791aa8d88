"""pytest fixtures of the mod_llmgw end-to-end suite (see harness.py for the environment).

Run:  cd tests/e2e && LLMGW_MPM=event /usr/bin/python3 -m pytest -q
HTTP/2: LLMGW_PROTO=h2 runs only the tests marked `h2` (those where the client's protocol
matters), over h2c, under event or worker.
Each test module starts its own gateway (module-scoped fixture) against its own
mock provider; after every test the error log of each running gateway is
scanned (harness.Httpd.log_problems). A test that expects the module to log
errors says so with `@pytest.mark.allow_log(regex, ...)`; without arguments the
mark allows any line carrying an LLMGW message id, never a crash or an httpd
error of its own.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from mock_openai import DEFAULT_KEY, MockOpenAI  # noqa: E402

ANY_LLMGW_LINE = r"LLMGW\d{5}"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log(*regex): error-log lines the test expects (default: any LLMGW id)")
    config.addinivalue_line(
        "markers", "h2: the client's protocol matters here; also run over HTTP/2 "
                   "(LLMGW_PROTO=h2 runs these only)")
    config.addinivalue_line(
        "markers", "mpm: the MPM matters here (threads or processes: streams, disconnects, "
                   "retries, pools, shared counters, restarts); ./scripts/test runs the whole "
                   "suite under event and these also under worker and prefork (-m mpm)")


def pytest_collection_modifyitems(config, items):
    """Over HTTP/2 only the tests marked h2 run; the others are deselected, not skipped,
    as they say nothing about HTTP/2."""
    if harness.PROTO != "h2":
        return
    keep = [it for it in items if it.get_closest_marker("h2")]
    dropped = [it for it in items if not it.get_closest_marker("h2")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header(config):
    state = "found" if harness.module_available() else "MISSING"
    asan = harness.asan_runtime()
    return [f"mod_llmgw: {harness.MODULE_SO} ({state}{', ASan' if asan else ''}); "
            f"MPM: {harness.MPM}; protocol: {harness.PROTO}; httpd: {harness.HTTPD_BIN}"]


@pytest.fixture(scope="session")
def module_so():
    if not harness.module_available():
        pytest.skip(f"mod_llmgw.so is not built ({harness.MODULE_SO}); build it or set "
                    "LLMGW_BUILD_DIR")
    return harness.MODULE_SO


def mock_fixture(cls):
    """A module-scoped fixture running one mock provider of class `cls` for the whole test
    module; it takes the name it is assigned to: `ma = mock_fixture(MockOpenAI)`."""
    @pytest.fixture(scope="module")
    def fixture():
        m = cls().start()
        yield m
        m.stop()
    return fixture


def fresh_mocks(*names):
    """An autouse fixture: every test starts with an empty script and empty records in
    those of the mock fixtures `names` it uses (`_fresh_mocks = fresh_mocks("ma", "mb")`)."""
    @pytest.fixture(autouse=True)
    def fixture(request):
        for name in names:
            if name in request.fixturenames:
                request.getfixturevalue(name).reset()
        yield
    return fixture


# A mock OpenAI provider for the module, accepting DEFAULT_KEY.
mock = mock_fixture(MockOpenAI)
_fresh_mock = fresh_mocks("mock")


@pytest.fixture(autouse=True)
def _scan_error_logs(request):
    marks = {h: h.log_mark() for h in harness.Httpd.running()}
    yield
    allow = []
    for m in request.node.iter_markers("allow_log"):
        allow.extend(m.args or (ANY_LLMGW_LINE,))
    problems = []
    for h in harness.Httpd.running():
        for line in h.log_problems(marks.get(h, 0), allow):
            problems.append(f"{h.name}: {line}")
        if not h.alive():
            problems.append(f"{h.name}: httpd (pid {h.pid}) is no longer running")
    if problems:
        pytest.fail("unexpected error-log lines:\n" + "\n".join(problems), pytrace=False)


def start_gateway(request, name, yaml_text, env=None, **conf):
    """Start a gateway for a module-scoped fixture; it is stopped (and its shutdown log
    checked) when the module ends."""
    h = harness.Httpd.launch(name, yaml_text, env=env, **conf)

    def fin():
        problems = h.stop()
        if problems:
            pytest.fail(f"{name}: errors while stopping:\n" + "\n".join(problems),
                        pytrace=False)
    request.addfinalizer(fin)
    return h


@pytest.fixture(scope="module")
def key():
    return DEFAULT_KEY
