"""Remote images end to end: the guarded fetch of providers.md 2.2 for the `google` backend.

A tiny image server on 127.0.0.1 (a thread of this module) answers by path; the
gateway fetches what a chat request names, and the mock Gemini (mock_google.py,
strict about inlineData and fileData) sees the image inlined. Every refusal is a
400 in OpenAI shape naming the part, before the provider is contacted:
  - loopback without allowHosts (the image server never sees a connection);
  - a Content-Type that is not image/*;
  - a body past maxBytes, announced by Content-Length or not (chunked);
  - an answer slower than the timeout;
  - a 404 from the image server;
  - a redirect to a host that resolves to loopback but is not allowed by name.
gs:// URIs reach Vertex AI as fileData with no fetch at all.
"""

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from conftest import start_gateway
from harness import assert_openai_error, post, read_sse
from mock_google import DEFAULT_API_KEY, MockGemini, ServiceAccount

PROJECT, LOCATION = "acme-test", "us-central1"
MAX_BYTES = 64 * 1024
# Not a real picture: the gateway never decodes images, it checks the type and the size.
CAT = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
DOG = b"\xff\xd8\xff\xe0" + os.urandom(3000)
BIG = b"\x89PNG\r\n\x1a\n" + b"x" * (MAX_BYTES + 1)
SLOW_SECONDS = 1.5


class ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, ctype, body, length=True, extra=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        if length:
            self.wfile.write(body)
            return
        for i in range(0, len(body), 8192):
            chunk = body[i:i + 8192]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
        port = srv.server_address[1]
        routes = {
            "/cat.png": lambda: self._send(200, "image/png", CAT),
            "/dog": lambda: self._send(200, "Image/JPEG; charset=binary", DOG, length=False),
            "/page.html": lambda: self._send(200, "text/html; charset=utf-8", b"<p>no</p>"),
            "/big-length.png": lambda: self._send(200, "image/png", BIG),
            "/big-chunked.png": lambda: self._send(200, "image/png", BIG, length=False),
            "/to-cat": lambda: self._send(302, None, b"", extra=[("Location", "/cat.png")]),
            "/to-localhost": lambda: self._send(
                302, None, b"", extra=[("Location", f"http://localhost:{port}/cat.png")]),
        }
        if self.path == "/slow.png":
            time.sleep(SLOW_SECONDS)
            self._send(200, "image/png", CAT)
        elif self.path in routes:
            routes[self.path]()
        else:
            self._send(404, "text/plain", b"not here\n")


@pytest.fixture(scope="module")
def images():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fresh_images(request):
    if "images" in request.fixturenames:
        srv = request.getfixturevalue("images")
        with srv.lock:
            srv.requests.clear()
    yield


@pytest.fixture(scope="module")
def gmock():
    m = MockGemini(project=PROJECT, location=LOCATION).start()
    harness.GEN_DIR.mkdir(parents=True, exist_ok=True)
    m.sa = ServiceAccount(str(harness.GEN_DIR / "images-google-keys"), m.token_uri)
    m.public_key_path = m.sa.pub_path
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh_gmock(request):
    if "gmock" in request.fixturenames:
        request.getfixturevalue("gmock").reset()
    yield


def google(name, endpoint, model, **config):
    cfg = {"endpoint": endpoint, "defaultModel": model, "maxRetries": 0}
    cfg.update(config)
    return {"name": name, "type": "google", "config": cfg}


@pytest.fixture(scope="module")
def gw(request, module_so, gmock, images):
    fetch = {"allowHosts": ["127.0.0.1"], "maxBytes": "64K", "timeout": "700ms"}
    yaml = harness.gateway_yaml(
        backends=[
            google("allowed", gmock.base, "gemini-2.5-flash", apiKey=DEFAULT_API_KEY,
                   imageFetch=fetch),
            google("default", gmock.base, "gemini-2.5-flash", apiKey=DEFAULT_API_KEY),
            google("vtx", gmock.base, "gemini-2.5-pro", projectId=PROJECT, location=LOCATION,
                   credentialsFile=gmock.sa.json_path, imageFetch=fetch),
        ],
        routes=[
            harness.route("chat", "/v1/chat/completions", "allowed"),
            harness.route("default", "/v1/default/chat/completions", "default"),
            harness.route("vertex", "/v1/vertex/chat/completions", "vtx"),
        ])
    return start_gateway(request, "images", yaml)


def image_request(*urls, text="What is in the picture?", **extra):
    parts = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": u, "detail": "auto"}} for u in urls]
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": parts}]}
    body.update(extra)
    return body


def gemini_parts(gmock):
    calls = [r for r in gmock.requests if "generateContent" in r.path
             or "streamGenerateContent" in r.path]
    assert len(calls) == 1, [r.path for r in gmock.requests]
    return calls[0].body["contents"][0]["parts"]


def inline(mime, data):
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


# -- fetched and inlined ----------------------------------------------------------------

def test_allowed_fetch_reaches_gemini_inlined(gw, gmock, images):
    r = post(gw.url("/v1/chat/completions"), image_request(images.url("/cat.png")))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == \
        "echo: What is in the picture? [image/png]"
    assert gemini_parts(gmock) == [{"text": "What is in the picture?"}, inline("image/png", CAT)]
    assert images.requests == ["/cat.png"]


def test_chunked_body_relative_redirect_and_one_fetch_per_url(gw, gmock, images):
    """The media type loses case and parameters; a URL named twice is fetched once."""
    body = image_request(images.url("/dog"), images.url("/to-cat"), images.url("/dog"),
                         stream=True)
    r = post(gw.url("/v1/chat/completions"), body, stream=True)
    assert r.status_code == 200, r.text
    sse = read_sse(r)
    assert "[image/jpeg, image/png, image/jpeg]" in sse.text
    assert gemini_parts(gmock)[1:] == [inline("image/jpeg", DOG), inline("image/png", CAT),
                                       inline("image/jpeg", DOG)]
    assert sorted(images.requests) == ["/cat.png", "/dog", "/to-cat"]


def test_data_uri_still_inlined_without_fetch(gw, gmock, images):
    data = base64.b64encode(DOG).decode()
    r = post(gw.url("/v1/default/chat/completions"),
             image_request(f"data:image/jpeg;base64,{data}"))
    assert r.status_code == 200, r.text
    assert gemini_parts(gmock)[1] == {"inlineData": {"mimeType": "image/jpeg", "data": data}}
    assert images.requests == []


def test_gs_uri_goes_to_vertex_as_file_data_without_fetch(gw, gmock, images):
    r = post(gw.url("/v1/vertex/chat/completions"),
             image_request("gs://acme-bucket/photos/cat.webp", model="gemini-2.5-pro"))
    assert r.status_code == 200, r.text
    assert gemini_parts(gmock)[1] == {"fileData": {"fileUri": "gs://acme-bucket/photos/cat.webp",
                                                   "mimeType": "image/webp"}}
    assert images.requests == []


def test_gs_uri_without_media_type_refused_for_vertex(gw, gmock, images):
    r = post(gw.url("/v1/vertex/chat/completions"),
             image_request("gs://acme-bucket/blob", model="gemini-2.5-pro"))
    err = assert_openai_error(r, 400, "invalid_value", "invalid_request_error")
    assert err["param"] == "messages[0].content[1].image_url.url"
    assert "Vertex AI needs it" in err["message"]
    assert [q for q in gmock.requests if "generateContent" in q.path] == []


# -- refused, before the provider is contacted ----------------------------------------

def assert_refused(r, gmock, code, reason):
    err = assert_openai_error(r, 400, code, "invalid_request_error")
    assert err["param"] == "messages[0].content[1].image_url.url", err
    assert err["message"] == ("Could not fetch the image of "
                              f"'messages[0].content[1].image_url.url': {reason}."), err
    assert "127.0.0.1" not in err["message"]
    assert gmock.requests == []
    return err


def test_loopback_refused_without_allow_hosts(gw, gmock, images):
    mark = gw.log_mark()
    r = post(gw.url("/v1/default/chat/completions"), image_request(images.url("/cat.png")))
    assert_refused(r, gmock, "invalid_image_url",
                   "its host resolves to a loopback address, which this gateway does not fetch "
                   "images from")
    # Refused at the connection itself: the image server never saw a request.
    assert images.requests == []
    log = gw.error_log_text(mark)
    assert "LLMGW00120" in log and "(blocked)" in log and "address 127.0.0.1 (loopback)" in log, log


@pytest.mark.parametrize("path, code, reason", [
    ("/page.html", "invalid_image_format",
     "the server answered with Content-Type 'text/html', not an image"),
    ("/big-length.png", "invalid_image_url", "the image is larger than 64 KiB"),
    ("/big-chunked.png", "invalid_image_url", "the image is larger than 64 KiB"),
    ("/missing.png", "invalid_image_url", "the image server answered HTTP 404"),
    ("/to-localhost", "invalid_image_url",
     "it redirects to a URL whose host resolves to a loopback address, which this gateway does "
     "not fetch images from"),
])
def test_fetch_refused(gw, gmock, images, path, code, reason):
    r = post(gw.url("/v1/chat/completions"), image_request(images.url(path)))
    assert_refused(r, gmock, code, reason)
    # allowHosts names 127.0.0.1: the first hop was made, the redirect's was not.
    assert images.requests == [path]


def test_slow_image_server_times_out(gw, gmock, images):
    t0 = time.monotonic()
    r = post(gw.url("/v1/chat/completions"), image_request(images.url("/slow.png")))
    assert_refused(r, gmock, "invalid_image_url", "the image could not be fetched within 700 ms")
    assert time.monotonic() - t0 < SLOW_SECONDS
    time.sleep(SLOW_SECONDS)  # let the image server finish its answer


def test_refused_in_a_stream_is_a_plain_400(gw, gmock, images):
    r = post(gw.url("/v1/default/chat/completions"),
             image_request(images.url("/cat.png"), stream=True))
    assert_refused(r, gmock, "invalid_image_url",
                   "its host resolves to a loopback address, which this gateway does not fetch "
                   "images from")


def test_every_image_is_checked(gw, gmock, images):
    """A good image first does not let a bad second one through."""
    body = image_request(images.url("/cat.png"), images.url("/page.html"))
    r = post(gw.url("/v1/chat/completions"), body)
    err = assert_openai_error(r, 400, "invalid_image_format")
    assert err["param"] == "messages[0].content[2].image_url.url"
    assert gmock.requests == []
