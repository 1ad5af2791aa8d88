"""Helpers of the pool and status end-to-end tests (test_pools.py, test_status.py).

- gateway.yaml pieces for pools: `pool_backend`, `anthropic_backend`;
- the status page: `STATUS_CONF` (the <Location> that serves it), `status_json`,
  `backend_stats` (JSON entries by backend name), `status_text`;
- `parallel` (a bounded thread pool with one keep-alive session per thread);
- `httpd_rss_kb` (resident memory of each httpd process, from /proc).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import harness

STATUS_PATH = "/llmgw-status"
STATUS_CONF = f"<Location {STATUS_PATH}>\n    SetHandler llmgw-status\n</Location>\n"


def pool_backend(name, members, strategy="priority", **options):
    """A `type: pool` backend. `members`: names, or (name, weight) pairs; `options`
    are pool keys as written in gateway.yaml (fallback, failureThreshold, cooldown)."""
    listed = []
    for m in members:
        if isinstance(m, tuple):
            listed.append({"name": m[0], "weight": m[1]})
        else:
            listed.append({"name": m})
    b = {"name": name, "type": "pool", "strategy": strategy}
    b.update({k: v for k, v in options.items() if v is not None})
    b["backends"] = listed
    return b


def anthropic_backend(name, endpoint, api_key, **config):
    cfg = {"apiKey": api_key, "endpoint": endpoint}
    cfg.update({k: v for k, v in config.items() if v is not None})
    return {"name": name, "type": "anthropic", "config": cfg}


# -- the status page ------------------------------------------------------------------

def status_get(h, query="", headers=None):
    return harness.get(h.url(STATUS_PATH + query), headers=headers, timeout=10)


def status_json(h):
    r = status_get(h, "?format=json")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    return r.json()


def backend_stats(h):
    """{backend name: its JSON entry} from the status page."""
    return {b["name"]: b for b in status_json(h)["backends"]}


def status_text(h, fmt):
    r = status_get(h, f"?format={fmt}")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


# -- load -----------------------------------------------------------------------------

def parallel(fn, items, workers=8):
    """fn(item, session) for every item on `workers` threads, each thread with its own
    keep-alive requests.Session; returns the results in the order of `items`."""
    local = threading.local()
    sessions = []
    lock = threading.Lock()

    def run(item):
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = requests.Session()
            with lock:
                sessions.append(s)
        return fn(item, s)

    try:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            return list(ex.map(run, items))
    finally:
        for s in sessions:
            s.close()


def _rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def httpd_processes(h):
    """The parent and its live children (pids)."""
    return [h.pid] + harness._children(h.pid)


def httpd_rss_kb(h):
    """Resident set size of each process of the server (parent and children), in KiB:
    {pid: rss}."""
    return {p: _rss_kb(p) for p in httpd_processes(h)}
