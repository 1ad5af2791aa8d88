"""A child whose upstream client cannot be made answers 500 cleanly (issue 10, item 10).

libcurl must take CURLOPT_PROTOCOLS_STR (only http and https upstream): child_init makes
one handle to find out. tests/e2e/modules/curl_no_protocols_str.c, preloaded into httpd,
is a libcurl that refuses that option, as one older than 7.85 would. The child must then
log why (LLMGW00003) and answer every gateway request with a JSON 500, never crash and
never send a request with the scheme restriction missing.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import harness
from harness import chat_body, post
from mock_openai import DEFAULT_KEY

HERE = Path(__file__).resolve().parent
SHIM = HERE / "modules" / "curl_no_protocols_str.c"


@pytest.fixture(scope="module")
def shim_so(tmp_path_factory, module_so):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the libcurl shim")
    work = tmp_path_factory.mktemp("curlshim")
    so = work / "curl_no_protocols_str.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(so),
                        str(SHIM), "-ldl"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    os.chmod(work, 0o755)
    return so


def test_refused_fixed_option_answers_500_and_calls_no_provider(shim_so, mock):
    preload = " ".join(p for p in (harness.asan_runtime(), str(shim_so)) if p)
    backends = [harness.openai_backend("oai", mock.url, DEFAULT_KEY, defaultModel="gpt-mock")]
    routes = [harness.route("chat", "/v1/chat/completions", "oai")]
    h = harness.Httpd("child-init-shim")
    h.write_yaml(harness.gateway_yaml(backends, routes))
    h.env["LD_PRELOAD"] = preload
    h.write_conf()
    h.start(allow=[r"LLMGW00003"])
    try:
        for _ in range(3):  # every request, not only the first
            r = post(h.url("/v1/chat/completions"), chat_body("hello"))
            assert r.status_code == 500
            assert r.headers["content-type"].startswith("application/json")
            err = r.json()["error"]
            assert err["code"] == "gateway_unavailable"
            assert err["type"] == "server_error"
        assert mock.requests == [], "a provider was called without the scheme restriction"
        log = h.error_log_text(0)
        assert "LLMGW00003" in log and "cannot create the upstream client" in log
        assert h.alive()
    finally:
        problems = h.stop()
    # Nothing but the expected emergency line: no crash, no other error.
    problems = [p for p in problems + h.log_problems(0) if "LLMGW00003" not in p]
    assert problems == [], problems
