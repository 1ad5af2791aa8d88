"""The usage ledger with both apr_dbd drivers (issue 11 item 4): SQLite (test_access.py
covers its rows and budgets across a restart) and PostgreSQL, a real server from Debian's
postgresql package that this module starts on loopback in a temporary directory.

- rows reach PostgreSQL with every column;
- the database going down does not fail requests: rows wait, the error log says so once,
  and they are written when it is back;
- a graceful restart loses nothing: the exiting children drain their writers;
- two httpd "nodes" on one database share a budget (the second reads the first's spend);
- configtest names the Debian package of a driver that is not installed, and refuses an
  unknown driver at its line and column.
"""

import os
import re
import subprocess
import pytest

import harness
from accesskit import Postgres, bearer, new_key, postgres_available, wait_rows
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post
from mock_openai import DEFAULT_KEY

pytestmark = [pytest.mark.allow_log(),
              pytest.mark.skipif(not postgres_available(),
                                 reason="Debian's postgresql package is not installed")]

KEY, ENTRY = new_key("team-pg", budget={"usd": "0.0003", "period": "month"})
OTHER, OTHER_ENTRY = new_key("team-open")


@pytest.fixture(scope="module")
def pg():
    cluster = Postgres().init().start()
    yield cluster
    cluster.destroy()


def pg_yaml(mock, pg, entries=(ENTRY, OTHER_ENTRY)):
    return harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY, models=["gpt-mock"],
                                            maxRetries=0)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
        "access": {"keys": list(entries)},
        "pricing": {"gpt-mock": {"input": "10", "output": "30"}},
        "ledger": {"driver": "pgsql", "params": pg.conninfo},
    }) + "\n"


@pytest.fixture(scope="module")
def gw(request, module_so, mock, pg):
    return start_gateway(request, "ledger-pg", pg_yaml(mock, pg))


def rows(pg, where="true"):
    cols = ("name", "route", "backend", "requested_model", "model", "prompt_tokens",
            "cached_tokens", "completion_tokens", "cost_nusd", "cost_usd", "status", "error",
            "attempts", "kind", "time")
    out = pg.query(f"SELECT {', '.join(cols)} FROM llmgw_ledger WHERE {where} ORDER BY id")
    return [dict(zip(cols, r)) for r in out]


def test_rows_in_postgresql(gw, pg):
    r = post(gw.url("/v1/chat/completions"), chat_body(), headers=bearer(OTHER))
    assert r.status_code == 200
    got = wait_rows(lambda: rows(pg, "name = 'team-open'"), 1)
    assert got[0] == {
        "name": "team-open", "route": "chat", "backend": "oa", "requested_model": "gpt-mock",
        "model": "gpt-mock", "prompt_tokens": "2", "cached_tokens": "0",
        "completion_tokens": "3", "cost_nusd": "110000", "cost_usd": "0.000110000",
        "status": "200", "error": "", "attempts": "1", "kind": "key", "time": got[0]["time"]}
    assert got[0]["time"].endswith("Z")


@pytest.mark.allow_log(r"LLMGW00277")
def test_database_down_rows_wait(gw, pg):
    pg.stop()
    try:
        ids = []
        for _ in range(3):
            r = post(gw.url("/v1/chat/completions"), chat_body(content="down"),
                     headers=bearer(OTHER))
            assert r.status_code == 200, r.text
            ids.append(r.test_id)
        assert harness.wait_until(lambda: "LLMGW00277" in gw.error_log_text(), 10)
        text = gw.error_log_text()
        assert "row(s) wait" in text
        # Once per writer (one per child process), not once per row or retry.
        pids = re.findall(r"\[pid (\d+):[^]]*\] [^\n]*cannot write to the ledger database", text)
        assert pids and len(pids) == len(set(pids)), pids
    finally:
        pg.start()
    # Written once the database answers (the writer retries within seconds).
    got = wait_rows(lambda: rows(pg, "name = 'team-open'"), 4, timeout=40)
    assert len(got) >= 4, (got, gw.error_log_text()[-3000:], gw.access_log.read_text()[-3000:])
    assert harness.wait_until(lambda: "reachable again" in gw.error_log_text(), 10)


def test_graceful_loses_nothing(gw, pg, mock):
    before = len(rows(pg))
    n = 30
    for _ in range(n):
        assert post(gw.url("/v1/chat/completions"), chat_body(),
                    headers=bearer(OTHER)).status_code == 200
    gw.graceful()
    got = wait_rows(lambda: rows(pg), before + n, timeout=20)
    assert len(got) == before + n


def test_budget_shared_by_two_nodes(gw, pg, mock, request):
    """Node A spends the budget; node B, started afterwards on the same database, reads it
    and refuses. Both then agree after a restart of A."""
    codes = [post(gw.url("/v1/chat/completions"), chat_body(),
                  headers=bearer(KEY)).status_code for _ in range(4)]
    # 0.00011 per answer, budget 0.0003: three start under it.
    assert codes == [200, 200, 200, 429]
    wait_rows(lambda: rows(pg, "name = 'team-pg'"), 3)
    b = start_gateway(request, "ledger-pg-b", pg_yaml(mock, pg))
    r = post(b.url("/v1/chat/completions"), chat_body(), headers=bearer(KEY))
    assert_openai_error(r, 429, "insufficient_quota")
    gw.stop()
    gw.start()
    assert_openai_error(post(gw.url("/v1/chat/completions"), chat_body(), headers=bearer(KEY)),
                        429, "insufficient_quota")


# -- configtest ---------------------------------------------------------------------------

def test_configtest_unknown_driver(module_so, mock):
    h = harness.Httpd("ledger-conf")
    h.write_yaml(harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
        "ledger": {"driver": "mysql", "params": "x"}}) + "\n")
    r = h.configtest()
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "gateway.yaml:13:11: ledger: unknown driver \"mysql\"" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_configtest_names_missing_driver_package(module_so, mock):
    """The pgsql driver's package is not installed (its directory is hidden in a private
    mount namespace): configtest names libaprutil1-dbd-pgsql at the driver's line."""
    h = harness.Httpd("ledger-nodriver")
    h.write_yaml(harness.to_yaml({
        "backends": [harness.openai_backend("oa", mock.url, DEFAULT_KEY)],
        "routes": [harness.route("chat", "/v1/chat/completions", "oa")],
        "ledger": {"driver": "pgsql", "params": "dbname=x"}}) + "\n")
    h.write_conf()
    ok = h.configtest()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    apu = subprocess.run(["sh", "-c", "dirname $(ls /usr/lib/*/apr-util-1/apr_dbd_pgsql*.so | "
                                      "head -1)"], capture_output=True, text=True).stdout.strip()
    empty = h.root / "empty"
    empty.mkdir()
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f"mount --bind {empty} {apu} && exec {harness.HTTPD_BIN} -d {h.root} -f {h.conf_path} -t"],
        capture_output=True, text=True, timeout=60, env=h._environ())
    out = r.stdout + r.stderr
    if "mount" in out and "permission denied" in out.lower():
        pytest.skip("no private mount namespace here")
    assert r.returncode != 0, out
    assert "gateway.yaml:13:11: ledger: the apr_dbd driver \"pgsql\" is not installed: install " \
           "the Debian package libaprutil1-dbd-pgsql" in out, out
