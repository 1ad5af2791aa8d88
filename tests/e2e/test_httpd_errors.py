"""httpd's own refusals inside gateway locations are JSON errors, not httpd's HTML page.

httpd answers some requests itself: a malformed chunked body or one over LimitRequestBody
(its HTTP input filter, while the handler reads the body), 403 from mod_authz_core, 405
from the status handler. Inside a gateway location (LLMGateway on, SetHandler llmgw or
llmgw-status) the client gets OpenAI's error shape with the same status; elsewhere httpd's
page is left alone.
"""

import json

import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, chat_body, post, raw_request
from mock_openai import DEFAULT_KEY

SERVER_EXTRA = """
<Location /limited>
    LLMGateway on
    LimitRequestBody 200
</Location>
<Location /denied>
    LLMGateway on
    Require all denied
</Location>
<Location /denied-classic>
    SetHandler llmgw
    Require all denied
</Location>
<Location /llmgw-status>
    SetHandler llmgw-status
</Location>
<Location /custom>
    LLMGateway on
    Require all denied
    ErrorDocument 403 "custom refusal text"
</Location>
"""


@pytest.fixture(scope="module")
def gw(request, module_so, mock):
    backend = harness.openai_backend("primary", mock.url, DEFAULT_KEY, defaultModel="gpt-mock",
                                     maxRetries=0)
    yaml = harness.gateway_yaml(
        backends=[backend],
        routes=[harness.route("chat", "/v1/chat/completions", "primary"),
                harness.route("limited", "/limited/v1/chat/completions", "primary"),
                harness.route("denied", "/denied/v1/chat/completions", "primary"),
                harness.route("denied-classic", "/denied-classic/v1/chat/completions",
                              "primary"),
                harness.route("custom", "/custom/v1/chat/completions", "primary")])
    return start_gateway(request, "httpd-errors", yaml, server_extra=SERVER_EXTRA)


def _head(gw, path, extra="", method="POST"):
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n")


def assert_json_error(status, headers, body, want_status, code):
    assert status == want_status, body[:300]
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert int(headers["content-length"]) == len(body), headers
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == code, err
    assert err["type"] == ("server_error" if want_status >= 500 else "invalid_request_error"
                           if want_status not in (401, 403) else
                           {401: "authentication_error", 403: "permission_error"}[want_status])
    assert isinstance(err["message"], str) and err["message"]
    return err


def test_malformed_chunked_body_is_a_json_400(gw, mock):
    head = _head(gw, "/v1/chat/completions", "Transfer-Encoding: chunked\r\n")
    status, headers, body = raw_request(gw.port, head, b"zz\r\n{}\r\n0\r\n\r\n")
    assert_json_error(status, headers, body, 400, "bad_request")
    assert mock.requests == []


def test_body_over_limit_request_body_is_a_json_413(gw, mock):
    raw = json.dumps(chat_body("x" * 400)).encode()
    head = _head(gw, "/limited/v1/chat/completions", f"Content-Length: {len(raw)}\r\n")
    status, headers, body = raw_request(gw.port, head, raw)
    err = assert_json_error(status, headers, body, 413, "request_too_large")
    assert "200 bytes" in err["message"]
    assert mock.requests == []


@pytest.mark.parametrize("path", ["/denied/v1/chat/completions",
                                  "/denied-classic/v1/chat/completions"],
                         ids=["LLMGateway-on", "SetHandler"])
@pytest.mark.allow_log(r"AH01630")  # mod_authz_core: client denied by server configuration
def test_authz_refusal_is_a_json_403(gw, mock, path):
    raw = json.dumps(chat_body("no")).encode()
    status, headers, body = raw_request(
        gw.port, _head(gw, path, f"Content-Length: {len(raw)}\r\n"), raw)
    assert_json_error(status, headers, body, 403, "forbidden")
    assert mock.requests == []


def test_a_method_the_status_page_refuses_is_a_json_405(gw):
    status, headers, body = raw_request(
        gw.port, _head(gw, "/llmgw-status", "Content-Length: 2\r\n", method="PUT"), b"{}")
    err = assert_json_error(status, headers, body, 405, "method_not_allowed")
    assert "PUT" in err["message"]
    assert "GET" in headers.get("allow", ""), headers


def test_post_to_the_status_page_without_control_is_a_json_403(gw):
    """POST is how the page drains a backend (LLMGatewayStatusControl); where that is off,
    the refusal is the page's own JSON 403, not httpd's HTML."""
    status, headers, body = raw_request(gw.port,
                                        _head(gw, "/llmgw-status", "Content-Length: 2\r\n"),
                                        b"{}")
    assert status == 403, body[:300]
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert json.loads(body)["error"]["code"] == "status_control_disabled"


@pytest.mark.allow_log(r"AH01630")
def test_head_of_a_refusal_has_no_body(gw):
    status, headers, body = raw_request(
        gw.port, _head(gw, "/denied/v1/models", "Connection: close\r\n", method="HEAD"))
    assert status == 403
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert body == b""


@pytest.mark.allow_log(r"AH01630")
def test_an_error_document_of_the_admin_still_wins(gw, mock):
    raw = json.dumps(chat_body("no")).encode()
    status, headers, body = raw_request(
        gw.port, _head(gw, "/custom/v1/chat/completions", f"Content-Length: {len(raw)}\r\n"),
        raw)
    assert status == 403
    assert body == b"custom refusal text"


def test_requests_after_refusals_are_served(gw, mock):
    r = post(gw.url("/v1/chat/completions"), chat_body("still fine"))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def test_other_locations_keep_httpds_page(gw):
    """Only gateway locations answer in JSON: httpd's own 404 elsewhere stays HTML."""
    status, headers, body = raw_request(gw.port, _head(gw, "/not-a-gateway/x", method="GET"))
    assert status == 404
    assert headers.get("content-type", "").startswith("text/html"), headers


def test_gateway_answers_are_unchanged(gw):
    """The gateway's own errors (here its 404 for an unknown path) keep their JSON."""
    r = post(gw.url("/v1/nothing-here"), chat_body("x"))
    assert_openai_error(r, 404, code="unknown_url")
