"""CORS for browser applications (`LLMGatewayCORS`), at the HTTP level: preflights,
answers, streams and errors of an allowed origin carry the Access-Control-* headers; an
origin not allowed gets none; `*` and `off`; configtest refuses what is not an origin.
(test_browser.py checks the same with a real browser.)
"""

import pytest
import requests

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post, read_sse
from mock_openai import DEFAULT_KEY

pytestmark = pytest.mark.allow_log()

APP = "https://app.example.com"
LOCAL_APP = "http://127.0.0.1:9"  # a page served from another port of this machine
EVIL = "https://evil.example"
V1_EXTRA = f"LLMGatewayCORS {APP} HTTP://127.0.0.1:9\n"
WIDE = "https://server-wide.example"
# Server-wide first; locations with their own setting override it (httpd merges <Location>
# sections in file order, so /v1's, from v1_extra, comes after these).
SERVER_EXTRA = f"""LLMGatewayCORS {WIDE}
<Location /open>
    LLMGateway on
    LLMGatewayCORS *
</Location>
<Location /closed>
    LLMGateway on
    LLMGatewayCORS off
</Location>
<Location /inherit>
    LLMGateway on
</Location>
<Location /v1/small>
    LimitRequestBody 64
</Location>
"""
ACRH = "Authorization, Content-Type, X-Stainless-OS, x-stainless-retry-count"


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    ob = harness.openai_backend
    yaml = harness.gateway_yaml(
        [ob("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-mock", models=["gpt-mock"],
            maxRetries=0)],
        [harness.route("chat", "/v1/chat/completions", "primary"),
         harness.route("models", "/v1/models", "primary"),
         harness.route("open", "/open/chat/completions", "primary"),
         harness.route("closed", "/closed/chat/completions", "primary"),
         harness.route("inherit", "/inherit/chat/completions", "primary"),
         harness.route("small", "/v1/small/chat/completions", "primary")])
    return start_gateway(request, "cors", yaml, v1_extra=V1_EXTRA, server_extra=SERVER_EXTRA)


def preflight(h, path, origin, method="POST", headers=ACRH):
    hdrs = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        hdrs["Access-Control-Request-Headers"] = headers
    return requests.options(h.url(path), headers=hdrs, timeout=10)


def cors_headers(r):
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def vary(r):
    return {v.strip().lower() for v in r.headers.get("Vary", "").split(",") if v.strip()}


def assert_readable(r, origin=APP, credentials=True):
    """What a browser needs to hand the answer to the page of `origin`."""
    assert r.headers.get("Access-Control-Allow-Origin") == origin, r.headers
    assert ("Access-Control-Allow-Credentials" in r.headers) == credentials, r.headers
    if credentials:
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
    expose = {v.strip() for v in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-llmgw-backend", "x-llmgw-attempts", "retry-after", "x-request-id",
            "x-ratelimit-remaining-requests", "x-should-retry"} <= expose, expose
    assert "origin" in vary(r)


# -- preflight ----------------------------------------------------------------------------------

def test_preflight_of_an_allowed_origin(gw, mock):
    r = preflight(gw, "/v1/chat/completions", APP)
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Allow-Methods"] == "POST"
    assert r.headers["Access-Control-Allow-Headers"] == \
        "authorization, content-type, x-stainless-os, x-stainless-retry-count"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= \
        vary(r)
    assert "Access-Control-Expose-Headers" not in r.headers  # for answers, not preflights
    assert r.headers["Allow"] == "POST, OPTIONS"
    assert mock.requests == []  # a preflight never reaches a provider
    # The page on this machine's other port, written with another case in the directive.
    r = preflight(gw, "/v1/chat/completions", LOCAL_APP)
    assert r.headers["Access-Control-Allow-Origin"] == LOCAL_APP
    # A GET route offers GET (and HEAD).
    r = preflight(gw, "/v1/models", APP, method="GET", headers=None)
    assert r.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert "Access-Control-Allow-Headers" not in r.headers


def test_preflight_asking_for_an_unexpected_header(gw):
    r = preflight(gw, "/v1/chat/completions", APP, headers="authorization, x-evil")
    assert r.status_code == 204
    allowed = {v.strip() for v in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert "x-evil" not in allowed and {"authorization", "content-type", "x-api-key",
                                         "anthropic-version"} <= allowed


@pytest.mark.parametrize("origin", [EVIL, "https://app.example.com.evil.example",
                                    "http://app.example.com", "https://app.example.com:8443",
                                    "null", "http://127.0.0.1:10"])
def test_an_origin_not_allowed_gets_no_cors_header(gw, mock, origin):
    r = preflight(gw, "/v1/chat/completions", origin)
    assert r.status_code == 204 and cors_headers(r) == {}, r.headers
    assert "origin" in vary(r)
    r = post(gw.url("/v1/chat/completions"), chat_body("from elsewhere"),
             headers={"Origin": origin})
    assert r.status_code == 200 and cors_headers(r) == {}, r.headers


# -- answers ------------------------------------------------------------------------------------

@pytest.mark.h2
def test_answer_and_stream_of_an_allowed_origin(gw):
    r = post(gw.url("/v1/chat/completions"), chat_body("hello"), headers={"Origin": APP})
    assert r.status_code == 200
    assert_readable(r)
    r = post(gw.url("/v1/chat/completions"), chat_body("stream", stream=True),
             headers={"Origin": APP}, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    assert_readable(r)
    assert read_sse(r).done
    r = harness.get(gw.url("/v1/models"), headers={"Origin": APP})
    assert r.status_code == 200
    assert_readable(r)


def test_errors_carry_the_headers(gw, mock):
    cases = [
        (post(gw.url("/v1/chat/completions"), chat_body("x", model="no-such-model"),
              headers={"Origin": APP}), 404),
        (post(gw.url("/v1/chat/completions"), data=b"{not json",
              headers={"Origin": APP, "Content-Type": "application/json"}), 400),
        (harness.get(gw.url("/v1/chat/completions"), headers={"Origin": APP}), 405),
        (post(gw.url("/v1/no/such/route"), chat_body("x"), headers={"Origin": APP}), 404),
    ]
    for r, status in cases:
        assert_openai_error(r, status)
        assert_readable(r)
    assert mock.requests == []
    # httpd's own refusal (LimitRequestBody) before the gateway reads the body.
    r = post(gw.url("/v1/small/chat/completions"), chat_body("x" * 200), headers={"Origin": APP})
    assert r.status_code == 413
    assert_readable(r)


def test_star_allows_any_origin_without_credentials(gw):
    r = preflight(gw, "/open/chat/completions", EVIL)
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert r.headers["Access-Control-Allow-Methods"] == "POST"
    r = post(gw.url("/open/chat/completions"), chat_body("open"), headers={"Origin": EVIL})
    assert r.status_code == 200
    assert_readable(r, origin="*", credentials=False)


def test_server_wide_setting_location_and_off(gw):
    # A location without its own setting has the server's.
    r = post(gw.url("/inherit/chat/completions"), chat_body("wide"), headers={"Origin": WIDE})
    assert r.status_code == 200
    assert_readable(r, origin=WIDE)
    r = post(gw.url("/inherit/chat/completions"), chat_body("app"), headers={"Origin": APP})
    assert cors_headers(r) == {}
    # /v1's own list replaces it.
    r = post(gw.url("/v1/chat/completions"), chat_body("wide"), headers={"Origin": WIDE})
    assert cors_headers(r) == {}
    # off: nothing, not even Vary.
    r = post(gw.url("/closed/chat/completions"), chat_body("closed"), headers={"Origin": WIDE})
    assert r.status_code == 200 and cors_headers(r) == {} and "origin" not in vary(r)
    r = preflight(gw, "/closed/chat/completions", WIDE)
    assert r.status_code == 204 and cors_headers(r) == {}


def test_no_origin(gw):
    # Not a browser (no Origin): no CORS header, but caches learn that Origin matters.
    r = post(gw.url("/v1/chat/completions"), chat_body("server to server"))
    assert r.status_code == 200 and cors_headers(r) == {}
    assert "origin" in vary(r)


# -- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    ("https://app.example.com/", "not an origin"),
    ("app.example.com", "not an origin"),
    ("https://*.example.com", "wildcards"),
    ("null", "null"),
    ("* https://app.example.com", "cannot be listed"),
    ("https://app.example.com off", "only origin"),
])
def test_configtest_refuses_what_is_not_an_origin(module_so, args, says):
    h = harness.Httpd("cors-configtest", v1_extra=f"LLMGatewayCORS {args}\n")
    h.write_yaml(harness.gateway_yaml(
        [harness.openai_backend("b", "http://127.0.0.1:9/v1", "k", defaultModel="m")],
        [harness.route("chat", "/v1/chat/completions", "b")]))
    h.write_conf()
    r = h.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "LLMGatewayCORS" in out and says in out, out
