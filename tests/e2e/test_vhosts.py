"""Several gateways in one httpd: virtual hosts with an LLMGatewayConfig of their own.

Each such vhost is its own gateway with its own state:
- its status page lists its own backends, none retired because another vhost's file lacks
  them, and counts only its own traffic;
- the same backend name in two vhosts shares neither counters nor cooldowns;
- a vhost without LLMGatewayConfig is the main server's gateway (same state);
- `apache2 -k graceful` keeps the counters of every (vhost, backend);
- after a bad edit of one vhost's file, a raw SIGUSR1 (no check before the signal) keeps
  that vhost on its previous version of the file while the others load their new one, and
  `apache2 -k graceful` refuses the bad file.
"""

import pytest

import harness
import poolkit
from conftest import start_gateway
from harness import VirtualHost, chat_body, get, post
from mock_openai import DEFAULT_KEY, Fault, MockOpenAI

pytestmark = [pytest.mark.allow_log(), pytest.mark.mpm]

KEY_A = "sk-vhost-a-SECRET"
KEY_B = "sk-vhost-b-SECRET"
FAST = dict(connectTimeout="1s", firstByteTimeout="2s", idleTimeout="2s", timeout="5s",
            maxRetries=0)
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def ma():
    m = MockOpenAI(keys=(DEFAULT_KEY, KEY_A, KEY_B),
                   models=("gpt-mock", "gpt-a", "gpt-b", "gpt-b2")).start()
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh(ma):
    ma.reset()
    yield


def main_yaml(ma):
    return harness.gateway_yaml(
        [harness.openai_backend("shared", ma.url, DEFAULT_KEY, defaultModel="gpt-mock", **FAST),
         harness.openai_backend("only-main", ma.url, DEFAULT_KEY, defaultModel="gpt-mock",
                                **FAST)],
        [harness.route("chat", CHAT, "shared")])


def a_yaml(ma):
    """Vhost a: "shared" (the name b uses too) first in a pool that cools a member down
    after one failure, then "only-a" (a name b lacks)."""
    return harness.gateway_yaml(
        [harness.openai_backend("shared", ma.url, KEY_A, defaultModel="gpt-a", **FAST),
         harness.openai_backend("only-a", ma.url, KEY_A, defaultModel="gpt-a", **FAST),
         poolkit.pool_backend("pool", ["shared", "only-a"], "priority", failureThreshold=1,
                              cooldown="60s")],
        [harness.route("chat", CHAT, "pool"),
         harness.route("direct", "/v1/shared/chat/completions", "shared")])


def b_yaml(ma, model="gpt-b", extra_route=False):
    routes = [harness.route("chat", CHAT, "pool")]
    if extra_route:
        routes.append(harness.route("new", "/v1/b-new/chat/completions", "shared"))
    return harness.gateway_yaml(
        [harness.openai_backend("shared", ma.url, KEY_B, defaultModel=model, **FAST),
         poolkit.pool_backend("pool", ["shared"], "priority", failureThreshold=1,
                              cooldown="60s")],
        routes)


def vhost_gateway(request, name, ma):
    vhosts = [VirtualHost("a", a_yaml(ma)), VirtualHost("b", b_yaml(ma)),
              VirtualHost("inherit")]
    return start_gateway(request, name, main_yaml(ma), server_extra=poolkit.STATUS_CONF,
                         vhosts=vhosts)


@pytest.fixture(scope="module")
def gw(request, module_so, ma):
    return vhost_gateway(request, "vhosts", ma)


def chat(site, text, path=CHAT, model=None):
    return post(site.url(path), chat_body(text, model=model))


def stats(site):
    """{backend: JSON entry} of the status page served by `site` (a vhost or the server)."""
    return poolkit.backend_stats(site)


def keys_seen(ma):
    return [r.headers.get("authorization", "") for r in ma.requests]


# -- state per vhost -----------------------------------------------------------------------------

def test_each_vhost_shows_and_counts_its_own_gateway(gw, ma):
    a, b = gw.vhost("a"), gw.vhost("b")
    before = {site: stats(site) for site in (gw, a, b)}
    for i in range(3):
        r = chat(a, f"to a {i}")
        assert r.status_code == 200 and r.json()["model"] == "gpt-a", r.text
    for i in range(2):
        r = chat(b, f"to b {i}")
        assert r.status_code == 200 and r.json()["model"] == "gpt-b", r.text
    assert chat(gw, "to main").json()["model"] == "gpt-mock"
    assert keys_seen(ma) == [f"Bearer {KEY_A}"] * 3 + [f"Bearer {KEY_B}"] * 2 \
        + [f"Bearer {DEFAULT_KEY}"]
    after = {site: stats(site) for site in (gw, a, b)}
    # Each page lists its own gateway's backends, in its file's order; none went missing
    # because another vhost's file lacks it.
    assert list(after[a]) == ["shared", "only-a", "pool"]
    assert list(after[b]) == ["shared", "pool"]
    assert list(after[gw]) == ["shared", "only-main"]
    for site, n in ((a, 3), (b, 2), (gw, 1)):
        assert after[site]["shared"]["requests"] - before[site]["shared"]["requests"] == n, site
        assert after[site]["shared"]["successes"] - before[site]["shared"]["successes"] == n
    assert after[a]["pool"]["requests"] - before[a]["pool"]["requests"] == 3
    assert after[b]["pool"]["requests"] - before[b]["pool"]["requests"] == 2
    for site in (gw, a, b):
        assert poolkit.status_json(site)["retired"] == 0, site


def test_same_backend_name_in_two_vhosts_shares_no_cooldown(gw, ma):
    a, b = gw.vhost("a"), gw.vhost("b")
    ma.script(Fault(status=500))
    # a's "shared" fails once: a's pool cools it down and answers with "only-a".
    r = chat(a, "a fails over")
    assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "only-a", r.text
    sa, sb = stats(a)["shared"], stats(b)["shared"]
    assert sa["state"] == "cooldown" and sa["consecutive_failures"] == 1, sa
    assert sb["state"] == "up" and sb["consecutive_failures"] == 0, sb
    assert sb["errors"]["5xx"] == 0
    # b's "shared", the only member of b's pool, is not cooling: it answers.
    r = chat(b, "b is fine")
    assert r.status_code == 200 and r.headers["x-llmgw-backend"] == "shared", r.text
    assert r.json()["model"] == "gpt-b"
    assert chat(a, "a skips it").headers["x-llmgw-backend"] == "only-a"
    assert stats(b)["shared"]["state"] == "up"
    assert stats(gw)["shared"]["state"] == "up"


def test_a_vhost_without_its_own_config_is_the_main_gateway(gw, ma):
    inherit = gw.vhost("inherit")
    before = stats(gw)["shared"]["requests"]
    r = chat(inherit, "through the inheriting vhost")
    assert r.status_code == 200 and r.json()["model"] == "gpt-mock", r.text
    assert keys_seen(ma) == [f"Bearer {DEFAULT_KEY}"]
    main, mine = stats(gw), stats(inherit)
    assert list(mine) == list(main)
    assert main["shared"]["requests"] == before + 1
    assert mine["shared"]["requests"] == main["shared"]["requests"]


def test_graceful_keeps_the_counters_of_every_vhost(gw, ma):
    a, b = gw.vhost("a"), gw.vhost("b")
    for site in (a, b, gw):
        assert chat(site, "before the restart").status_code == 200
    first = {site: poolkit.status_json(site) for site in (gw, a, b)}
    gw.graceful()
    for site in (gw, a, b):
        now = poolkit.status_json(site)
        assert now["generation"] > first[site]["generation"]
        assert now["created"] == first[site]["created"]
        assert now["retired"] == 0
        old = {x["name"]: x for x in first[site]["backends"]}
        for x in now["backends"]:
            for k in ("requests", "successes", "errors_total", "tokens"):
                assert x[k] == old[x["name"]][k], (site, x["name"], k)


def test_status_page_of_a_server_without_a_gateway(request, module_so, ma):
    """Only a vhost has a gateway: the main server's page says so (503), the vhost's
    page shows its gateway."""
    h = start_gateway(request, "vhosts-nomain", "", main_config=False,
                      server_extra=poolkit.STATUS_CONF, vhosts=[VirtualHost("b", b_yaml(ma))])
    r = poolkit.status_get(h, "?format=json")
    assert r.status_code == 503 and "no statistics" in r.text
    assert chat(h.vhost("b"), "hello").status_code == 200
    assert stats(h.vhost("b"))["shared"]["requests"] == 1


# -- reloads --------------------------------------------------------------------------------------

BAD_YAML = "backends:\n  - name: [unterminated\nroutes: []\n"


@pytest.mark.allow_log(r"LLMGW00008", r"AH00526", r"AH00016")
def test_bad_reload_of_one_vhost_keeps_its_previous_file(request, module_so, ma):
    h = vhost_gateway(request, "vhosts-reload", ma)
    a, b = h.vhost("a"), h.vhost("b")
    for site in (a, b):
        assert chat(site, "before").status_code == 200
    counts = {site: stats(site)["shared"]["requests"] for site in (a, b)}

    # a's file breaks; b's gets a new model and a new route. A raw SIGUSR1: the running
    # parent re-reads everything itself.
    a.write_yaml(BAD_YAML)
    b.write_yaml(b_yaml(ma, model="gpt-b2", extra_route=True))
    mark = h.log_mark()
    h.signal_graceful()
    assert h.alive()
    log = h.error_log_text(mark)
    assert "LLMGW00008" in log and str(a.yaml_path) in log, log[-2000:]
    assert str(b.yaml_path) not in log

    ma.reset()
    # a serves a's previous configuration, with a's key ...
    r = chat(a, "a after")
    assert r.status_code == 200 and r.json()["model"] == "gpt-a", r.text
    assert r.headers["x-llmgw-backend"] == "shared"
    assert chat(a, "a direct", path="/v1/shared/chat/completions").status_code == 200
    assert get(a.url("/v1/b-new/chat/completions")).status_code in (404, 405)
    # ... and b its new one.
    r = chat(b, "b after")
    assert r.status_code == 200 and r.json()["model"] == "gpt-b2", r.text
    r = chat(b, "b new route", path="/v1/b-new/chat/completions")
    assert r.status_code == 200 and r.json()["model"] == "gpt-b2", r.text
    assert chat(b, "b has no a route", path="/v1/shared/chat/completions").status_code == 404
    assert keys_seen(ma) == [f"Bearer {KEY_A}"] * 2 + [f"Bearer {KEY_B}"] * 2
    # Counters went on, each in its own slot.
    assert stats(a)["shared"]["requests"] == counts[a] + 2
    assert stats(b)["shared"]["requests"] == counts[b] + 2

    # The checked way refuses the bad file before signalling anything.
    before = h.generations()
    r = h.graceful(expect_ok=False)
    assert r.returncode != 0
    assert "gateway-a.yaml" in r.stdout + r.stderr
    assert h.alive() and h.generations() == before
    assert chat(a, "still a").json()["model"] == "gpt-a"

    # Fixed: the next graceful loads it.
    a.write_yaml(a_yaml(ma).replace("gpt-a", "gpt-mock"))
    h.graceful()
    assert chat(a, "a fixed").json()["model"] == "gpt-mock"
    assert chat(b, "b unchanged").json()["model"] == "gpt-b2"


@pytest.mark.allow_log(r"LLMGW00008")
def test_raw_sigusr1_with_a_bad_main_file_keeps_the_vhosts_apart(request, module_so, ma):
    """The main server's file breaks: the main server (and the vhost inheriting it) keep
    the main server's previous file; a's and b's gateways are untouched."""
    h = vhost_gateway(request, "vhosts-reload-main", ma)
    h.write_yaml(BAD_YAML)
    h.signal_graceful()
    for site, model in ((h, "gpt-mock"), (h.vhost("inherit"), "gpt-mock"),
                        (h.vhost("a"), "gpt-a"), (h.vhost("b"), "gpt-b")):
        r = chat(site, "after the bad main file")
        assert r.status_code == 200 and r.json()["model"] == model, (site, r.text)
    assert list(stats(h)) == ["shared", "only-main"]
    assert list(stats(h.vhost("a"))) == ["shared", "only-a", "pool"]
