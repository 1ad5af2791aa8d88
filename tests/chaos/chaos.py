#!/usr/bin/python3
"""Chaos run of mod_llmgw: a real httpd with the module, hostile input at both ends.

    tests/chaos/chaos.py --seed 17 --requests 3000          # a fixed-seed pass (CI)
    tests/chaos/chaos.py --seed 99 --requests 100000 --seconds 1800   # a long run
    tests/chaos/chaos.py --seed 17 --replay 1234,1240        # replay reported cases

A private httpd (tests/e2e/harness.Httpd) loads the module from --build-dir (a sanitizer
build: `make san-module`, then libasan is preloaded and reports land in its logs/asan.*),
with a gateway.yaml routing to every backend type and to pools, each backend a chaos
upstream (chaos_upstream.py: the e2e mocks, answers mutated). The request fuzzer
(chaos_requests.py) sends mutated requests from --concurrency threads; every answer is
checked against the invariants of chaos_checks.py, and the error log and the sanitizer
reports are watched for crashes. Bounded by --requests and --seconds.

Every violation is printed with the seed, the case index, the exact request bytes, what
the upstream did to each attempt and the answer; the same goes to a JSON-lines report
(--report). `--replay` sends chosen cases again, one by one, with the same upstream
behaviour. Exit status: 0 clean, 1 violations, 2 the setup failed.
"""

import argparse
import base64
import concurrent.futures
import faulthandler
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--requests", type=int, default=3000, help="at most this many requests")
    p.add_argument("--seconds", type=float, default=600, help="stop sending after this long")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.6,
                   help="share of upstream attempts whose answer is mutated")
    p.add_argument("--build-dir", default=os.environ.get("LLMGW_BUILD_DIR") or str(ROOT),
                   help="build tree holding .libs/mod_llmgw.so")
    p.add_argument("--mpm", default=os.environ.get("LLMGW_MPM", "event"))
    p.add_argument("--replay", default="", help="comma-separated case indexes to send again")
    p.add_argument("--report", default="", help="JSON-lines report (default: gen/report-*.jsonl)")
    p.add_argument("--max-violations", type=int, default=200,
                   help="stop early after this many violating cases")
    p.add_argument("--log-level", default="warn")
    p.add_argument("--quiet", action="store_true", help="violations to the report only")
    p.add_argument("--no-progress", action="store_true", help="no progress line every 10s")
    p.add_argument("--mock-tracebacks", action="store_true",
                   help="show where the mocks failed on what the gateway sent them")
    return p.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
os.environ["LLMGW_BUILD_DIR"] = str(Path(ARGS.build_dir).resolve())
os.environ["LLMGW_MPM"] = ARGS.mpm
os.environ.setdefault("LLMGW_E2E_GEN", str(HERE / "gen"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(HERE))
sys.setrecursionlimit(20000)
threading.stack_size(256 << 20)  # deep JSON (fuzzed nesting) parses recursively

import harness  # noqa: E402
from mock_anthropic import ANTHROPIC_KEY, MockAnthropic  # noqa: E402
from mock_dialects import (AZURE_KEY, LLAMA_KEY, MISTRAL_KEY, MockAzure, MockLlama,  # noqa: E402
                           MockMistral)
from mock_google import DEFAULT_API_KEY, MockGemini, ServiceAccount  # noqa: E402
import mock_openai  # noqa: E402
from mock_openai import DEFAULT_KEY, MockOpenAI  # noqa: E402

import chaos_checks  # noqa: E402
import chaos_requests  # noqa: E402
from chaos_requests import Route  # noqa: E402
from chaos_upstream import ChaosControl, chaos_class  # noqa: E402

PROJECT, LOCATION = "acme-test", "us-central1"
# Lines of the error log that mean a crash or a sanitizer report, whatever else is allowed.
CRASH = re.compile(r"exit signal|Segmentation fault|AddressSanitizer|runtime error:|Assertion|"
                   r"LeakSanitizer|double free|stack smashing")
BAD_LEVEL = re.compile(r"\[(?:[\w.-]+:)?(?:error|crit|alert|emerg)\]")
# error-level lines a hostile client or a chaos upstream provokes by design.
ALLOWED_LOG = [
    r"AH00135: Invalid method in request",  # core: a method httpd does not accept ("post")
    # A provider's 422 says the gateway's translation was refused: an operator must see that
    # at error level for a real provider, and the chaos upstreams answer 422 on purpose.
    r"LLMGW00243: backend \"[^\"]+\" refused the gateway's translation",
]


class SetupError(Exception):
    pass


class MockErrors:
    """Exceptions in the mocks' handler threads: a connection the gateway closed is part of
    the game; anything else is counted and its first occurrences shown."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def install(self, server_cls):
        errors = self

        def handle_error(server, request, client_address):
            exc = sys.exc_info()[1]
            name = type(exc).__name__
            with errors.lock:
                errors.counts[name] = errors.counts.get(name, 0) + 1
                first = errors.counts[name] <= 3
            if first and ARGS.mock_tracebacks and not isinstance(exc, (ConnectionError,
                                                                           TimeoutError)):
                import traceback
                print(f"chaos: mock handler error: {name}: {exc}", file=sys.stderr)
                traceback.print_exc()
        server_cls.handle_error = handle_error


MOCK_ERRORS = MockErrors()


class Run:
    def __init__(self):
        self.secrets = [DEFAULT_KEY, AZURE_KEY, LLAMA_KEY, MISTRAL_KEY, ANTHROPIC_KEY,
                        DEFAULT_API_KEY]
        self.chaos = ChaosControl(ARGS.seed, ARGS.rate, self.secrets)
        self.mocks = {}
        self.h = None
        self.routes = []
        self.lock = threading.Lock()
        self.violations = []
        self.stats = {"sent": 0, "status": {}, "api": {}, "seconds": 0.0}
        self.log_mark = 0
        self.asan_seen = set()

    # -- set-up --------------------------------------------------------------------

    def start_mocks(self):
        MOCK_ERRORS.install(mock_openai._Server)
        c = self.chaos
        self.mocks["openai"] = chaos_class(MockOpenAI, c)(
            models=("gpt-mock", "text-embedding-3-small")).start()
        self.mocks["azure"] = chaos_class(MockAzure, c)().start()
        self.mocks["llama"] = chaos_class(MockLlama, c)().start()
        self.mocks["mistral"] = chaos_class(MockMistral, c)().start()
        self.mocks["anthropic"] = chaos_class(MockAnthropic, c)().start()
        g = chaos_class(MockGemini, c)(project=PROJECT, location=LOCATION).start()
        keys = harness.GEN_DIR / "chaos-google-keys"
        harness.GEN_DIR.mkdir(parents=True, exist_ok=True)
        g.sa = ServiceAccount(str(keys), g.token_uri)
        g.public_key_path = g.sa.pub_path
        self.mocks["gemini"] = g

    def gateway_yaml(self):
        m = self.mocks
        t = {"timeout": "3s", "connectTimeout": "1s", "firstByteTimeout": "2s",
             "idleTimeout": "1s", "maxRetries": 1}

        def be(name, type_, **cfg):
            return {"name": name, "type": type_, "config": dict(t, **cfg)}
        vertex = {"projectId": PROJECT, "location": LOCATION,
                  "credentialsFile": m["gemini"].sa.json_path}
        backends = [
            be("openai", "openai", apiKey=DEFAULT_KEY, endpoint=m["openai"].url,
               defaultModel="gpt-mock"),
            be("openai-embed", "openai", apiKey=DEFAULT_KEY, endpoint=m["openai"].url,
               defaultModel="text-embedding-3-small"),
            be("azure", "azure-openai", apiKey=AZURE_KEY, endpoint=m["azure"].url,
               apiVersion="2024-10-21", deploymentName="gpt4o-weather"),
            be("azure-embed", "azure-openai", apiKey=AZURE_KEY, endpoint=m["azure"].url,
               apiVersion="2024-10-21", deploymentName="embed-small"),
            be("llama", "meta", apiKey=LLAMA_KEY, endpoint=m["llama"].url,
               defaultModel="llama-3.3-70b", models=["llama-3.3-70b"]),
            be("llama-embed", "meta", apiKey=LLAMA_KEY, endpoint=m["llama"].url,
               defaultModel="bge-m3"),
            be("mistral", "mistral", apiKey=MISTRAL_KEY, endpoint=m["mistral"].url,
               defaultModel="mistral-small-latest"),
            be("mistral-embed", "mistral", apiKey=MISTRAL_KEY, endpoint=m["mistral"].url,
               defaultModel="mistral-embed"),
            be("claude", "anthropic", apiKey=ANTHROPIC_KEY, endpoint=m["anthropic"].url,
               defaultModel="claude-mock", models=["claude-mock"], maxTokens=300),
            be("gemini", "google", apiKey=DEFAULT_API_KEY, endpoint=m["gemini"].base,
               defaultModel="gemini-2.5-flash"),
            be("gemini-embed", "google", apiKey=DEFAULT_API_KEY, endpoint=m["gemini"].base,
               defaultModel="gemini-embedding-001"),
            be("vertex", "google", endpoint=m["gemini"].base, defaultModel="gemini-2.5-pro",
               **vertex),
            {"name": "mix", "type": "pool", "strategy": "priority", "fallback": True,
             "maxAttempts": 3, "aliases": ["mix-alias"],
             "backends": [{"name": "openai"}, {"name": "claude"}, {"name": "gemini"}]},
            {"name": "rr", "type": "pool", "strategy": "round-robin", "fallback": True,
             "failureThreshold": 3, "cooldown": "1s",
             "backends": [{"name": "llama"}, {"name": "mistral"}, {"name": "azure"},
                          {"name": "vertex"}]},
            {"name": "embed-pool", "type": "pool", "strategy": "least-busy", "fallback": True,
             "backends": [{"name": "openai-embed"}, {"name": "gemini-embed"},
                          {"name": "mistral-embed"}]},
        ]
        chat_models = {"openai": ["gpt-mock"], "azure": ["gpt-4o"], "llama": ["llama-3.3-70b"],
                       "mistral": ["mistral-small-latest"], "claude": ["claude-mock"],
                       "gemini": ["gemini-2.5-flash"], "vertex": ["gemini-2.5-pro"],
                       "mix": ["mix", "mix-alias", "gpt-mock", "claude-mock"],
                       "rr": ["rr", "llama-3.3-70b", "mistral-small-latest"]}
        embed_models = {"openai-embed": ["text-embedding-3-small"], "azure-embed": ["e"],
                        "llama-embed": ["bge-m3"], "mistral-embed": ["mistral-embed"],
                        "gemini-embed": ["gemini-embedding-001"], "vertex": ["text-embedding-005"],
                        "embed-pool": ["embed-pool", "mistral-embed"]}
        routes, self.routes = [], []
        for name, models in chat_models.items():
            path = f"/v1/{name}/chat/completions"
            routes.append(harness.route(f"chat-{name}", path, name))
            self.routes.append(Route(f"chat-{name}", path, "chat", models))
        for name, models in embed_models.items():
            path = f"/v1/{name}/embeddings"
            routes.append(harness.route(f"emb-{name}", path, name))
            self.routes.append(Route(f"emb-{name}", path, "embeddings", models))
        for path, backend, api, models in (
                ("/v1/chat/completions", "mix", "chat", chat_models["mix"]),
                ("/classic/v1/chat/completions", "openai", "chat", ["gpt-mock"]),
                ("/limited/v1/chat/completions", "claude", "chat", ["claude-mock"]),
                ("/v1/embeddings", "embed-pool", "embeddings", embed_models["embed-pool"])):
            routes.append(harness.route(path.strip("/").replace("/", "-"), path, backend))
            self.routes.append(Route(path, path, api, models))
        for path, backend in (("/v1/models", "mix"), ("/v1/rr/models", "rr")):
            routes.append(harness.route(path.strip("/").replace("/", "-"), path, backend))
            self.routes.append(Route(path, path, "models", ["mix", "gpt-mock", "rr"]))
        self.routes.append(Route("status", "/llmgw-status", "status", []))
        return harness.gateway_yaml(backends, routes)

    def start_httpd(self):
        extra = """AllowEncodedSlashes NoDecode
<Location /limited>
    LLMGateway on
    LimitRequestBody 4096
</Location>
<Location /llmgw-status>
    SetHandler llmgw-status
    Require ip 127.0.0.1
</Location>
"""
        self.h = harness.Httpd.launch(
            "chaos", self.gateway_yaml(), log_level=ARGS.log_level, server_extra=extra,
            v1_extra="LLMGatewayMaxBody 2M",
            pre_module=f"LoadModule authz_host_module {harness.MODULES_DIR}/mod_authz_host.so")
        self.log_mark = self.h.log_mark()

    def calm_check(self):
        """With the upstreams calm, every route answers a plain request: else the set-up,
        not the module, is broken."""
        self.chaos.enabled = False
        try:
            for r in self.routes:
                if r.api == "status":
                    continue
                body = {"messages": [{"role": "user", "content": "calm"}]} if r.api == "chat" \
                    else {"input": "calm"}
                if r.api == "models":
                    resp = harness.get(self.h.url(r.path))
                else:
                    resp = harness.post(self.h.url(r.path), body)
                if resp.status_code != 200:
                    raise SetupError(f"setup: {r.path} answered {resp.status_code} with calm "
                                     f"upstreams: {resp.text[:300]}")
        finally:
            self.chaos.enabled = True

    def current_secrets(self):
        g = self.mocks["gemini"]
        with g._glock:
            tokens = list(g._tokens)
        return self.secrets + tokens

    # -- the run -------------------------------------------------------------------

    def one(self, index, followup):
        case = chaos_requests.make_case(ARGS.seed, index, self.routes)
        answer = chaos_checks.send(case, self.h.port, followup=followup)
        problems = chaos_checks.check(case, answer, self.current_secrets())
        with self.lock:
            s = self.stats
            s["sent"] += 1
            key = str(answer.status) if answer.status else (answer.error or "none")[:30]
            s["status"][key] = s["status"].get(key, 0) + 1
            s["api"][case.api] = s["api"].get(case.api, 0) + 1
        if problems:
            if any(p.startswith("http:") for p in problems):
                problems.append(self.server_side(case))
            self.record(case, answer, problems)
        return case, answer, problems

    def server_side(self, case):
        """What the access log says of `case` (for answers that came late or broken: was it
        the gateway, or the way back?)."""
        for _ in range(20):
            for e in self.h.access_entries():
                if e["test_id"] == case.marker:
                    return (f"access log: {e['status']} after {int(e['duration_us']) / 1e6:.3f}s"
                            f" (error {e['error']}, attempts {e['attempts']})")
            time.sleep(0.1)
        return "access log: no line for this request"

    def record(self, case, answer, problems, kind="invariant"):
        entry = {"seed": ARGS.seed, "index": case.index if case else None, "kind": kind,
                 "problems": problems,
                 "request": case.summary() if case else None,
                 "request_b64": base64.b64encode(case.wire()).decode() if case else None,
                 "upstream": self.chaos.log_of(case.marker) if case else [],
                 "answer": answer.describe() if answer else None}
        with self.lock:
            self.violations.append(entry)
        if not ARGS.quiet:
            print(format_violation(entry), flush=True)

    def scan_logs(self):
        """Crashes and sanitizer reports since the last scan."""
        text = self.h.error_log_text(self.log_mark)
        self.log_mark += len(text.encode("utf-8", "replace"))
        bad = []
        for line in text.splitlines():
            if CRASH.search(line):
                bad.append(line)
            elif BAD_LEVEL.search(line) and not any(re.search(p, line) for p in ALLOWED_LOG):
                bad.append(line)
        for path in self.h.asan_reports():
            if path not in self.asan_seen:
                self.asan_seen.add(path)
                try:
                    report = Path(path).read_text(errors="replace")
                except OSError:
                    report = ""
                bad.append(f"sanitizer report {path}:\n{report[:6000]}")
        if bad:
            self.record(None, None, bad, kind="log")
        return bad

    def run(self, indexes):
        t0 = time.monotonic()
        deadline = t0 + ARGS.seconds
        last_scan = t0
        with concurrent.futures.ThreadPoolExecutor(ARGS.concurrency) as pool:
            pending = set()
            it = iter(indexes)
            done_all = False
            while not done_all or pending:
                while not done_all and len(pending) < ARGS.concurrency * 2:
                    if time.monotonic() > deadline or \
                            len(self.violations) >= ARGS.max_violations:
                        done_all = True
                        break
                    try:
                        i = next(it)
                    except StopIteration:
                        done_all = True
                        break
                    pending.add(pool.submit(self.one, i, i % 3 == 0))
                if not pending:
                    break
                finished, pending = concurrent.futures.wait(
                    pending, timeout=1.0, return_when=concurrent.futures.FIRST_COMPLETED)
                for f in finished:
                    exc = f.exception()
                    if exc is not None:
                        self.record(None, None, [f"harness: {type(exc).__name__}: {exc}"],
                                    kind="harness")
                if time.monotonic() - last_scan > 10:
                    self.scan_logs()
                    last_scan = time.monotonic()
                    if not ARGS.quiet and not ARGS.no_progress:
                        print(f"chaos: {self.stats['sent']} requests, "
                              f"{len(self.violations)} violation(s), "
                              f"{time.monotonic() - t0:.0f}s", flush=True)
        self.stats["seconds"] = time.monotonic() - t0
        time.sleep(0.5)  # let the last children's log lines land
        self.scan_logs()

    def stop(self):
        problems = []
        if self.h is not None:
            problems, self.h = self.h.stop(), None
            if problems:
                self.record(None, None, [f"shutdown: {p}" for p in problems], kind="log")
        for m in self.mocks.values():
            m.stop()


def format_violation(e):
    out = [f"VIOLATION seed={e['seed']} case={e['index']} ({e['kind']})"]
    out += [f"  - {p}" for p in e["problems"]]
    if e["request"]:
        out.append(f"  request: {e['request']}")
        raw = base64.b64decode(e["request_b64"])
        out.append(f"  bytes ({len(raw)}): {raw[:2000]!r}" + (" ..." if len(raw) > 2000 else ""))
    for u in e["upstream"][:12]:
        out.append(f"  upstream: {u}")
    if e["answer"]:
        out.append(f"  answer: {e['answer']}")
    if e["index"] is not None:
        out.append(f"  replay: tests/chaos/chaos.py --seed {e['seed']} --replay {e['index']} "
                   f"--build-dir {ARGS.build_dir}")
    return "\n".join(out)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: where every thread is
    signal.signal(signal.SIGTERM, _terminate)  # stop the private httpd on the way out
    run = Run()
    report = Path(ARGS.report) if ARGS.report else HERE / "gen" / f"report-{ARGS.seed}.jsonl"
    try:
        run.start_mocks()
        run.start_httpd()
        run.calm_check()
        asan = " (sanitizer build)" if harness.asan_runtime() else ""
        print(f"chaos: seed {ARGS.seed}, module {harness.MODULE_SO}{asan}, MPM {ARGS.mpm}, "
              f"{len(run.routes)} routes, up to {ARGS.requests} requests / {ARGS.seconds:.0f}s, "
              f"concurrency {ARGS.concurrency}", flush=True)
        if ARGS.replay:
            replay(run)
        else:
            run.run(range(ARGS.requests))
    except (harness.HttpdError, SetupError) as e:
        print(f"chaos: setup failed: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"chaos: interrupted ({e}) after {run.stats['sent']} requests", file=sys.stderr)
    finally:
        run.stop()
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(report, "w") as f:
        for v in run.violations:
            f.write(json.dumps(v) + "\n")
    s = run.stats
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s["status"].items()))
    print(f"chaos: {s['sent']} requests in {s['seconds']:.0f}s ({statuses}); "
          f"{len(run.violations)} violation(s); report {report}")
    if MOCK_ERRORS.counts:
        print(f"chaos: exceptions in mock handlers: {MOCK_ERRORS.counts}")
    return 1 if run.violations else 0


def replay(run):
    """Send the cases of --replay one by one and show everything about each."""
    for i in [int(x) for x in ARGS.replay.split(",") if x.strip()]:
        case, answer, problems = run.one(i, False)
        print(f"case {i}: {case.summary()}\n  bytes: {case.wire()[:3000]!r}")
        for u in run.chaos.log_of(case.marker):
            print(f"  upstream: {u}")
        print(f"  answer: {answer.describe(6000)}\n  problems: {problems or 'none'}")
    run.scan_logs()


if __name__ == "__main__":
    sys.exit(main())
