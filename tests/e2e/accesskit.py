"""Helpers of the access, limits and ledger end-to-end tests (test_access*.py, test_ledger.py).

- `new_key(name)`: a random virtual key and its gateway.yaml entry (the SHA-256 only);
- `bearer(key)`: the request headers that present it;
- `Postgres`: a private PostgreSQL cluster of Debian's postgresql package, made with
  initdb in a temporary directory and run with pg_ctl on a free loopback port, as the
  unprivileged `postgres` user (initdb refuses root); never the system service;
- `sqlite_rows` / `pg_rows`: what a ledger holds;
- `hammer`: many requests at once, from a bounded thread pool.
"""

import glob
import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import harness


def new_key(name, **entry):
    """(key, entry): a fresh key and its `access.keys` entry (extra fields from `entry`)."""
    key = "sk-llmgw-" + secrets.token_hex(24)
    e = {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
    e.update(entry)
    return key, e


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def sqlite_rows(path, where="1=1"):
    """Ledger rows as dicts (read-only, so the gateway's writers are never blocked long)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(f"SELECT * FROM llmgw_ledger WHERE {where} "
                                             "ORDER BY id")]
    finally:
        con.close()


def wait_rows(fetch, n, timeout=10.0):
    """fetch() until it returns at least n rows (the writer is asynchronous)."""
    deadline = time.monotonic() + timeout
    rows = fetch()
    while len(rows) < n and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = fetch()
    return rows


def hammer(fn, n, workers=40):
    """Run fn(i) for i in range(n) on `workers` threads; returns the results in order."""
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, range(n)))


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def postgres_available():
    return _pg_bin() is not None and shutil.which("runuser") is not None


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port>, trust authentication,
    superuser `llmgw`, database `postgres`."""

    def __init__(self):
        self.bin = _pg_bin()
        self.dir = tempfile.mkdtemp(prefix="llmgw-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = harness.free_port()
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)

    def _run(self, *args, check=True, timeout=120):
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, cwd="/")
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def init(self):
        self._run(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "llmgw",
                  "--no-sync", "-E", "UTF8")
        return self

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off")
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
                  "-o", opts, "-w", "-t", "60", "start")
        self.running = True
        return self

    def stop(self):
        if self.running:
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop",
                      check=False)
        self.running = False

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=llmgw connect_timeout=2"

    def query(self, sql):
        r = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "llmgw", "-d", "postgres", "-AtF", "\t", "-c", sql],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]
