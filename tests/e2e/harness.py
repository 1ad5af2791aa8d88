"""Private httpd instances for the mod_llmgw end-to-end suite.

`Httpd` owns one server root under tests/e2e/gen/<name>-<mpm>/: it renders
httpd.conf (apache-notes.md 8.3), writes gateway.yaml, starts, reloads and stops
the server, and reads its logs. Everything listens on 127.0.0.1 only.

Environment:
  LLMGW_BUILD_DIR    build tree holding .libs/mod_llmgw.so (default: the repo root)
  LLMGW_MPM          event | worker | prefork (default: event)
  LLMGW_PROTO        h1 | h2 (default: h1): the protocol of the test clients; h2 loads
                     mod_http2 with `Protocols h2c http/1.1` and speaks h2c with prior
                     knowledge (httpx + h2, or the raw H2Request client); not with prefork
  LLMGW_HTTPD        httpd binary (default: /usr/sbin/apache2)
  LLMGW_MODULES_DIR  httpd's modules (default: /usr/lib/apache2/modules)
  LLMGW_E2E_GEN      where server roots go (default: tests/e2e/gen)
  ASAN_OPTIONS       passed on; by default reports go to logs/asan.* and fail the test

Also here: a tiny YAML writer for gateway.yaml, request helpers with an
`X-Test-Id` header that the access log records, an SSE reader that keeps the
arrival time of every event, and a raw-socket client for requests that
`requests` cannot send (oversized bodies, disconnects).
"""

import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("LLMGW_BUILD_DIR") or HERE.parents[1]).resolve()
MODULE_SO = BUILD_DIR / ".libs" / "mod_llmgw.so"
HTTPD_BIN = os.environ.get("LLMGW_HTTPD", "/usr/sbin/apache2")
MODULES_DIR = Path(os.environ.get("LLMGW_MODULES_DIR", "/usr/lib/apache2/modules"))
MPM = os.environ.get("LLMGW_MPM", "event")
GEN_DIR = Path(os.environ.get("LLMGW_E2E_GEN") or HERE / "gen")

PROTO = os.environ.get("LLMGW_PROTO", "h1")

if MPM not in ("event", "worker", "prefork"):
    raise RuntimeError(f"LLMGW_MPM must be event, worker or prefork, not {MPM!r}")
if PROTO not in ("h1", "h2"):
    raise RuntimeError(f"LLMGW_PROTO must be h1 or h2, not {PROTO!r}")
if PROTO == "h2" and MPM == "prefork":
    # mod_http2 stays inactive under prefork (it says so in the error log).
    raise RuntimeError("LLMGW_PROTO=h2 needs a threaded MPM (event or worker)")

# The access log: one tab-separated line per request, parsed by Httpd.access_entries().
ACCESS_FIELDS = [
    ("method", "%m"), ("uri", "%U"), ("status", "%>s"),
    ("route", "%{LLMGW_ROUTE}e"), ("backend", "%{LLMGW_BACKEND}e"),
    ("model", "%{LLMGW_MODEL}e"), ("requested_model", "%{LLMGW_REQUESTED_MODEL}e"),
    ("attempts", "%{LLMGW_ATTEMPTS}e"),
    ("upstream_ms", "%{LLMGW_UPSTREAM_MS}e"), ("prompt_tokens", "%{LLMGW_PROMPT_TOKENS}e"),
    ("completion_tokens", "%{LLMGW_COMPLETION_TOKENS}e"), ("error", "%{LLMGW_ERROR}e"),
    ("test_id", "%{X-Test-Id}i"), ("duration_us", "%D"),
    ("key", "%{LLMGW_KEY}e"), ("cost", "%{LLMGW_COST}e"), ("pid", "%P"),
]
ACCESS_FORMAT = "\\t".join(fmt for _, fmt in ACCESS_FIELDS)

_MPM_TUNING = {
    # One child normally, so that connection reuse is visible; room to grow under load.
    "event": """StartServers 1
ServerLimit 4
ThreadLimit 16
ThreadsPerChild 16
MinSpareThreads 4
MaxSpareThreads 64
MaxRequestWorkers 64""",
    "worker": """StartServers 1
ServerLimit 4
ThreadLimit 16
ThreadsPerChild 16
MinSpareThreads 4
MaxSpareThreads 64
MaxRequestWorkers 64""",
    "prefork": """StartServers 2
MinSpareServers 1
MaxSpareServers 4
ServerLimit 16
MaxRequestWorkers 16""",
}

# Error-log lines that fail a test unless allowed (style.md 8).
_BAD_LINE = re.compile(r"\[(?:[\w.-]+:)?(?:error|crit|alert|emerg)\]|Segmentation fault|"
                       r"AddressSanitizer|runtime error:|Assertion|exit signal")
_LOGNO = re.compile(r"LLMGW\d{5}")
# httpd's own noise, not the module's: the event MPM of 2.4.57 logs AH03093 when a child that
# is stopping (graceful or stop) still holds an idle keep-alive connection, whose socket it
# can no longer add to its pollset. The tests keep connections alive across restarts.
_HTTPD_NOISE = re.compile(r"\[mpm_event:error\].*AH03093: process_socket: apr_pollset_add failure "
                          r"for keep alive")
# Logged by the parent once per generation (AH00489 event, AH00292 worker, AH00163 prefork).
_GENERATION = "configured -- resuming normal operations"


def _allow_core_dumps():
    """In the child before exec: core files up to any size, so that a crash can be read."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def module_available():
    return MODULE_SO.is_file()


_ASAN = {}


def asan_runtime():
    """The libasan a sanitizer build of the module links against (it must be preloaded
    into the uninstrumented httpd), or None."""
    if "path" not in _ASAN:
        _ASAN["path"] = None
        if module_available():
            try:
                out = subprocess.run(["ldd", str(MODULE_SO)], capture_output=True, text=True,
                                     timeout=30).stdout
            except (OSError, subprocess.TimeoutExpired):
                out = ""
            m = re.search(r"libasan\.so\S*\s+=>\s+(\S+)", out)
            _ASAN["path"] = m.group(1) if m else None
    return _ASAN["path"]


# -- gateway.yaml ---------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z0-9_./:${}-]+$")
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS and not s[0].isdigit() \
            and ": " not in s and not s.startswith(("-", ":", "$")):
        return s
    if _PLAIN.match(s) and s[0].isdigit() and re.match(r"^\d+(ms|s|m|h)$", s):
        return s  # durations are plain scalars, as users write them
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (enough for gateway.yaml)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                if isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):
                    lines.append(f"{pad}{k}: [{', '.join(_scalar(x) for x in v)}]")
                else:
                    lines.append(f"{pad}{k}:")
                    lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                sub = to_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                lines.extend(sub)
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


def openai_backend(name, endpoint, api_key, **config):
    """A `type: openai` backend; config keys as in gateway.yaml (defaultModel, maxRetries...)."""
    cfg = {"apiKey": api_key, "endpoint": endpoint}
    cfg.update({k: v for k, v in config.items() if v is not None})
    return {"name": name, "type": "openai", "config": cfg}


def route(name, path, backend, methods=None):
    r = {"name": name, "path": path}
    if methods is None:
        methods = ["GET"] if path.rstrip("/").split("/")[-1] == "models" else ["POST"]
    r["methods"] = methods
    r["backend"] = backend
    return r


def gateway_yaml(backends, routes):
    return ("# generated by tests/e2e/harness.py\n"
            + to_yaml({"backends": backends, "routes": routes}) + "\n")


# -- the server -------------------------------------------------------------------

class HttpdError(RuntimeError):
    pass


class VirtualHost:
    """An extra <VirtualHost> of an Httpd, listening on a loopback port of its own.

    Give a list of them as the `vhosts` conf option of Httpd (or start_gateway). Each
    renders as

        Listen 127.0.0.1:<port>
        <VirtualHost 127.0.0.1:<port>>
            ServerName <server_name>
            LLMGatewayConfig <root>/gateway-<name>.yaml    (only with a yaml of its own)
            <extra>
        </VirtualHost>

    The main server's <Location> blocks (/v1, /classic, and any in server_extra, e.g. the
    status page) apply inside it as in any httpd vhost.

      yaml         its own gateway.yaml text, or None to inherit the main server's gateway
      extra        directives inside the <VirtualHost> block
      server_name  its ServerName (default "<name>.test")
    """

    def __init__(self, name, yaml=None, extra="", server_name=None):
        self.name = name
        self.initial_yaml = yaml
        self.extra = extra
        self.server_name = server_name or f"{name}.test"
        self.port = free_port()
        self.server = None

    def _attach(self, server):
        if self.server is server:
            return
        self.server = server
        if self.initial_yaml is not None:
            self.write_yaml(self.initial_yaml)

    @property
    def own_config(self):
        return self.initial_yaml is not None

    @property
    def yaml_path(self):
        return self.server.root / f"gateway-{self.name}.yaml"

    def write_yaml(self, text):
        if not isinstance(text, str):
            text = to_yaml(text) + "\n"
        self.yaml_path.write_text(text)
        os.chmod(self.yaml_path, 0o644)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    def conf(self):
        own = f"LLMGatewayConfig {self.yaml_path}\n" if self.own_config else ""
        return (f"Listen 127.0.0.1:{self.port}\n"
                f"<VirtualHost 127.0.0.1:{self.port}>\n"
                f"    ServerName {self.server_name}\n"
                f"{_indent(own + self.extra)}"
                f"</VirtualHost>\n")

    def __repr__(self):
        return f"<VirtualHost {self.name} :{self.port}>"


class Httpd:
    """One private httpd with mod_llmgw.

    conf options (keyword arguments of __init__ and write_conf):
      log_level       LogLevel line (default "warn llmgw:debug")
      v1_extra        directives inside <Location /v1> (fast path: LLMGateway on)
      classic_extra   directives inside <Location /classic> (SetHandler llmgw)
      server_extra    directives at server level (e.g. LLMGatewayMaxBody)
      pre_module      directives before mod_llmgw's LoadModule (e.g. another module's)
      with_module     False renders a config without mod_llmgw (harness self-test)
      vhosts          VirtualHost objects rendered after the main server's configuration
      main_config     False: no LLMGatewayConfig at server level (only vhosts have gateways)

    proto ("h1" or "h2", default LLMGW_PROTO): with "h2" the server also loads mod_http2
    and offers h2c (prior knowledge) besides HTTP/1.1; with "h1" mod_http2 is not loaded,
    so HTTP/1.1 answers carry no `Upgrade: h2c` offer.
    """

    _running = set()

    def __init__(self, name, *, mpm=MPM, proto=PROTO, **conf):
        self.name = name
        self.mpm = mpm
        self.proto = proto
        self.root = GEN_DIR / (f"{name}-{mpm}" if proto == "h1" else f"{name}-{mpm}-{proto}")
        if _root_in_use(self.root):  # another run is using it: never pull it from under it
            self.root = GEN_DIR / f"{name}-{mpm}-{os.getpid()}"
        self.port = free_port()
        self.conf_opts = {"log_level": "warn llmgw:debug", "v1_extra": "",
                          "classic_extra": "", "server_extra": "", "pre_module": "",
                          "with_module": True, "vhosts": (), "main_config": True}
        self.conf_opts.update(conf)
        self.env = {}
        self.pid = None
        self._startup_mark = 0
        if self.root.exists():
            shutil.rmtree(self.root)
        for sub in ("logs", "run", "htdocs"):
            (self.root / sub).mkdir(parents=True)
        # Children run as nobody when we are root: they must reach the runtime dir,
        # and ASan (if the module is built with it) writes its reports into logs/.
        for p in (GEN_DIR, self.root, self.root / "run", self.root / "htdocs"):
            os.chmod(p, 0o755)
        os.chmod(self.root / "logs", 0o777)
        self.write_yaml(gateway_yaml([], []))
        for v in self.conf_opts["vhosts"]:
            v._attach(self)

    # -- paths --------------------------------------------------------------

    @property
    def conf_path(self):
        return self.root / "httpd.conf"

    @property
    def yaml_path(self):
        return self.root / "gateway.yaml"

    @property
    def error_log(self):
        return self.root / "logs" / "error.log"

    @property
    def access_log(self):
        return self.root / "logs" / "access.log"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    def vhost(self, name):
        """The VirtualHost called `name`."""
        for v in self.conf_opts["vhosts"]:
            if v.name == name:
                return v
        raise KeyError(name)

    # -- files ----------------------------------------------------------------

    def write_yaml(self, text):
        if not isinstance(text, str):
            text = to_yaml(text) + "\n"
        self.yaml_path.write_text(text)
        os.chmod(self.yaml_path, 0o644)

    def write_conf(self, **conf):
        self.conf_opts.update(conf)
        o = self.conf_opts
        user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
        module = ""
        if o["with_module"]:
            module = f"LoadModule llmgw_module {self._module_copy()}\n"
            if o["main_config"]:
                module += f"LLMGatewayConfig {self.yaml_path}\n"
        log_level = o["log_level"]
        if not o["with_module"]:
            log_level = " ".join(w for w in log_level.split() if not w.startswith("llmgw:"))
        locations = ""
        if o["with_module"]:
            locations = (f"<Location /v1>\n    LLMGateway on\n{_indent(o['v1_extra'])}"
                         f"</Location>\n"
                         f"<Location /classic>\n    SetHandler llmgw\n"
                         f"{_indent(o['classic_extra'])}</Location>\n")
        http2 = ""
        if self.proto == "h2":
            http2 = (f"LoadModule http2_module {MODULES_DIR}/mod_http2.so\n"
                     f"Protocols h2c http/1.1\n")
        vhosts = ""
        for v in o["vhosts"]:
            v._attach(self)
            vhosts += v.conf()
        text = f"""# generated by tests/e2e/harness.py
ServerRoot "{self.root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile run/httpd.pid
DefaultRuntimeDir run
# A crashed child leaves logs/core (children chdir here; httpd makes them dumpable).
CoreDumpDirectory logs
# Bounds the graceful stop of Httpd.stop().
GracefulShutdownTimeout 3
ErrorLog logs/error.log
LogLevel {log_level}
{user}LoadModule mpm_{self.mpm}_module {MODULES_DIR}/mod_mpm_{self.mpm}.so
LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so
LoadModule mime_module {MODULES_DIR}/mod_mime.so
{http2}TypesConfig /etc/mime.types
DocumentRoot "{self.root}/htdocs"
Timeout 30
KeepAlive On
KeepAliveTimeout 15
MaxKeepAliveRequests 0
{_MPM_TUNING[self.mpm]}
LogFormat "{ACCESS_FORMAT}" llmgw
CustomLog logs/access.log llmgw
{o['pre_module']}
{module}{o['server_extra']}
{locations}{vhosts}"""
        self.conf_path.write_text(text)
        os.chmod(self.conf_path, 0o644)

    def _module_copy(self):
        """The module as it was when this server root was first configured: httpd reloads
        the DSO on every graceful restart, and a rebuild in the middle of a run must not
        swap the code under a running test."""
        copy = self.root / "modules" / "mod_llmgw.so"
        if not copy.exists() and MODULE_SO.exists():
            _wait_until_written(MODULE_SO)
            copy.parent.mkdir(exist_ok=True)
            shutil.copy2(MODULE_SO, copy)
            os.chmod(copy.parent, 0o755)
        return copy

    # -- process control -------------------------------------------------------

    def _environ(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS",
                       f"log_path={self.root}/logs/asan:detect_leaks=0:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS",
                       f"log_path={self.root}/logs/asan:print_stacktrace=1")
        runtime = asan_runtime()
        if runtime and "LD_PRELOAD" not in env:
            env["LD_PRELOAD"] = runtime  # httpd itself is not instrumented
        env.update(self.env)
        return env

    def _ctl(self, *args, timeout=60):
        return subprocess.run([HTTPD_BIN, "-d", str(self.root), "-f", str(self.conf_path), *args],
                              capture_output=True, text=True, timeout=timeout,
                              env=self._environ(), stdin=subprocess.DEVNULL,
                              preexec_fn=_allow_core_dumps)

    def configtest(self):
        """`apache2 -t`; returns the CompletedProcess (output in .stdout + .stderr)."""
        if not self.conf_path.exists():
            self.write_conf()
        return self._ctl("-t")

    def start(self, timeout=20, allow=()):
        """Start httpd and wait for its port; error-log lines of the start-up fail it
        unless they match a regex of `allow`."""
        if not self.conf_path.exists():
            self.write_conf()
        self._startup_mark = self.log_mark()
        r = self._ctl("-k", "start")
        if r.returncode != 0:
            raise HttpdError(f"{self.name}: apache2 -k start exited {r.returncode}:\n"
                             f"{r.stdout}{r.stderr}\n{self.error_log_text(self._startup_mark)}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pid = self._read_pid()
            if self.pid and self._port_open():
                break
            if self.pid and not _alive(self.pid):
                break
            time.sleep(0.05)
        if not (self.pid and _alive(self.pid) and self._port_open()):
            self._stop_quietly()
            raise HttpdError(f"{self.name}: httpd did not come up:\n"
                             f"{self.error_log_text(self._startup_mark)}")
        bad = self.log_problems(self._startup_mark, allow)
        if bad:
            self._stop_quietly()
            raise HttpdError(f"{self.name}: errors while starting:\n" + "\n".join(bad))
        Httpd._running.add(self)
        return self

    def _stop_quietly(self):
        try:
            self.stop()
        except HttpdError:
            pass

    def stop(self, timeout=30):
        """Stop httpd (graceful-stop, SIGWINCH) and wait for it; returns the log problems of
        the shutdown.

        Not SIGTERM: on an ungraceful stop the event MPM of httpd 2.4.57 closes its workers'
        connection sockets from the main thread while the workers tear those connections
        down, and now and then a child crashes in close_worker_sockets() (a core showed only
        httpd and APR frames). A graceful stop lets workers finish; GracefulShutdownTimeout
        (3 s, in httpd.conf) bounds it, after which the parent terminates what is left."""
        Httpd._running.discard(self)
        pid = self.pid or self._read_pid()
        if not pid or not _alive(pid):
            return []
        mark = self.log_mark()
        os.kill(pid, signal.SIGWINCH)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            for child in _children(pid):
                _kill(child)
            _kill(pid)
            raise HttpdError(f"{self.name}: httpd {pid} did not stop within {timeout}s")
        self.pid = None
        return self.log_problems(mark)

    def graceful(self, expect_ok=True, timeout=20):
        """`apache2 -k graceful` and, when it was accepted, wait for the new generation."""
        before = self.generations()
        r = self._ctl("-k", "graceful")
        if r.returncode != 0:
            if expect_ok:
                raise HttpdError(f"{self.name}: graceful refused ({r.returncode}):\n"
                                 f"{r.stdout}{r.stderr}")
            return r
        self._wait_generation(before, timeout)
        return r

    def signal_graceful(self, timeout=20):
        """A raw `kill -USR1` of the parent, as a script or a supervisor might send it: no
        configuration check first, the running parent re-reads everything itself. Waits for
        the new generation."""
        before = self.generations()
        os.kill(self.pid, signal.SIGUSR1)
        self._wait_generation(before, timeout)

    def _wait_generation(self, before, timeout):
        deadline = time.monotonic() + timeout
        while self.generations() <= before:
            if time.monotonic() > deadline:
                raise HttpdError(f"{self.name}: no new generation after graceful:\n"
                                 f"{self.error_log_text(0)[-3000:]}")
            if not self.alive():
                raise HttpdError(f"{self.name}: httpd died on graceful:\n"
                                 f"{self.error_log_text(0)[-3000:]}")
            time.sleep(0.05)
        time.sleep(0.2)  # let the children of the new generation start accepting

    def alive(self):
        return bool(self.pid) and _alive(self.pid)

    def _read_pid(self):
        try:
            return int((self.root / "run" / "httpd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _port_open(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @classmethod
    def running(cls):
        return list(cls._running)

    # -- logs -------------------------------------------------------------------

    def log_mark(self):
        """Current size of the error log (an offset for error_log_text/log_problems)."""
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def error_log_text(self, since=0):
        try:
            with open(self.error_log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def generations(self):
        return self.error_log_text(0).count(_GENERATION)

    def asan_reports(self):
        return sorted(str(p) for p in (self.root / "logs").glob("asan*"))

    def log_problems(self, since=0, allow=()):
        """Error-log lines since `since` that indicate a bug, minus allowed ones.

        `allow` holds regexes; a bad line matching one of them is accepted.
        """
        bad = []
        for line in self.error_log_text(since).splitlines():
            if not _BAD_LINE.search(line) or _HTTPD_NOISE.search(line):
                continue
            if any(re.search(p, line) for p in allow):
                continue
            bad.append(line)
        bad.extend(f"ASan report: {p}" for p in self.asan_reports())
        return bad

    def access_entries(self):
        out = []
        try:
            text = self.access_log.read_text()
        except OSError:
            return out
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) == len(ACCESS_FIELDS):
                out.append(dict(zip((n for n, _ in ACCESS_FIELDS), parts)))
        return out

    def access_entry(self, test_id, timeout=5.0):
        """The access-log entry of the request sent with X-Test-Id: test_id (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.access_entries():
                if e["test_id"] == test_id:
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no access-log line for X-Test-Id {test_id}")
            time.sleep(0.05)

    # -- convenience ------------------------------------------------------------

    @classmethod
    def launch(cls, name, yaml_text, env=None, **conf):
        h = cls(name, **conf)
        h.write_yaml(yaml_text)
        h.env.update(env or {})
        h.write_conf()
        return h.start()

    def __repr__(self):
        return f"<Httpd {self.name} {self.mpm} {self.proto} :{self.port}>"


def _root_in_use(root):
    try:
        pid = int((root / "run" / "httpd.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    return _alive(pid)


def _wait_until_written(path, quiet=1.0, timeout=120.0):
    """Wait until `path` has not changed for `quiet` seconds (a build may be writing it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = path.stat()
        age = time.time() - st.st_mtime
        if age >= quiet:
            return
        time.sleep(min(quiet - age + 0.05, 1.0))


def _indent(text):
    return "".join(f"    {line}\n" for line in text.splitlines() if line.strip())


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# -- client side --------------------------------------------------------------------

def new_test_id():
    return uuid.uuid4().hex[:16]


def session():
    """A client that keeps its connection between requests, for the `session` argument of
    post() and get(): a requests.Session over HTTP/1.1, an h2c client over HTTP/2 (where
    the requests of one session are streams of one connection). Close it after use."""
    return requests.Session() if PROTO == "h1" else h2_client()


def post(url, body=None, *, data=None, headers=None, test_id=None, stream=False,
         timeout=30, session=None):
    """POST JSON (or raw `data`) with an X-Test-Id, over LLMGW_PROTO; returns the
    requests.Response (or its HTTP/2 stand-in, H2Response) with .test_id set."""
    test_id = test_id or new_test_id()
    hdrs = {"X-Test-Id": test_id, "Authorization": "Bearer client-key-not-a-secret"}
    if data is None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    return _request("POST", url, data, hdrs, test_id, stream, timeout, session)


def get(url, *, headers=None, test_id=None, timeout=30, session=None):
    test_id = test_id or new_test_id()
    hdrs = {"X-Test-Id": test_id}
    hdrs.update(headers or {})
    return _request("GET", url, None, hdrs, test_id, False, timeout, session)


def _request(method, url, data, headers, test_id, stream, timeout, session):
    if PROTO == "h1":
        if session is not None and not isinstance(session, requests.Session):
            raise TypeError("an HTTP/2 session in an HTTP/1.1 run")
        r = (session or requests).request(method, url, data=data, headers=headers,
                                          stream=stream, timeout=timeout)
    else:
        if isinstance(session, requests.Session):
            raise TypeError("a requests.Session would speak HTTP/1.1; use harness.session()")
        client = session or h2_client(timeout)
        try:
            resp = client.send(client.build_request(method, url, content=data,
                                                    headers=headers, timeout=timeout),
                               stream=True)
        except BaseException:
            if session is None:
                client.close()
            raise
        r = H2Response(resp, None if session is not None else client)
        if not stream:
            r.read()
    r.test_id = test_id
    return r


def h2_client(timeout=30):
    """An httpx client speaking h2c with prior knowledge (no HTTP/1.1 fallback)."""
    import httpx  # Debian python3-httpx + python3-h2; needed only for LLMGW_PROTO=h2
    return httpx.Client(http1=False, http2=True, timeout=timeout)


class H2Response:
    """An httpx response over HTTP/2 with the parts of requests.Response the tests use
    (status_code, headers, text, content, json(), iter_content(), close()). It owns the
    client it came from when the request had no session, and closes it with itself."""

    def __init__(self, resp, own_client=None):
        if resp.http_version != "HTTP/2":
            raise AssertionError(f"expected HTTP/2, the server answered {resp.http_version}")
        self._resp = resp
        self._client = own_client
        self.status_code = resp.status_code
        self.headers = resp.headers  # case-insensitive, like requests'
        self.http_version = resp.http_version

    def read(self):
        try:
            self._resp.read()
        finally:
            self.close()

    @property
    def content(self):
        return self._resp.content

    @property
    def text(self):
        return self._resp.text

    def json(self):
        return self._resp.json()

    def iter_content(self, chunk_size=None):
        """Body bytes as the DATA frames arrive (chunk_size is ignored, as requests
        does with None)."""
        try:
            yield from self._resp.iter_raw()
        finally:
            self.close()

    def close(self):
        self._resp.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def chat_body(text="Hello there", model="gpt-mock", **extra):
    body = {"messages": [{"role": "user", "content": text}]}
    if model is not None:
        body["model"] = model
    body.update(extra)
    return body


def assert_openai_error(resp, status, code=None, type_=None):
    """The response is a gateway error in the OpenAI shape; returns the error object."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), \
        resp.headers.get("Content-Type")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    for key in ("message", "type", "param", "code"):
        assert key in err, f"error.{key} missing: {body}"
    assert isinstance(err["message"], str) and err["message"], body
    assert isinstance(err["type"], str) and err["type"], body
    if code is not None:
        assert err["code"] == code, body
    if type_ is not None:
        assert err["type"] == type_, body
    return err


class SSE:
    """A read SSE response: events with arrival times, parsed chunks, [DONE], errors."""

    def __init__(self, events, t0):
        self.t0 = t0
        self.events = events  # [(monotonic time, data string)]
        self.done = any(d == "[DONE]" for _, d in events)
        self.chunks = []
        self.errors = []
        for _, d in events:
            if d == "[DONE]":
                continue
            obj = json.loads(d)
            (self.errors if "error" in obj else self.chunks).append(obj)

    @property
    def data(self):
        return [d for _, d in self.events]

    @property
    def text(self):
        return "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in self.chunks if c.get("choices"))

    @property
    def finish_reasons(self):
        return [ch["finish_reason"] for c in self.chunks for ch in c.get("choices", [])
                if ch.get("finish_reason")]

    @property
    def content_times(self):
        return [t for (t, d) in self.events if d != "[DONE]" and '"content"' in d
                and (json.loads(d).get("choices") or [{}])[0].get("delta", {}).get("content")]

    def tool_calls(self):
        """Reassemble streamed tool calls: {index: {"id","name","arguments"}}."""
        calls = {}
        for c in self.chunks:
            for ch in c.get("choices", []):
                for tc in ch.get("delta", {}).get("tool_calls") or []:
                    cur = calls.setdefault(tc["index"], {"id": None, "name": None,
                                                         "arguments": ""})
                    if tc.get("id"):
                        cur["id"] = tc["id"]
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        cur["name"] = fn["name"]
                    cur["arguments"] += fn.get("arguments") or ""
        return calls


def read_sse(resp, on_event=None):
    """Read a streaming requests.Response to the end; `on_event(data)` returning True
    stops reading early (the caller then closes the response)."""
    t0 = time.monotonic()
    events, buf = [], b""
    for piece in resp.iter_content(chunk_size=None):
        buf += piece
        while True:
            m = re.search(rb"\r?\n\r?\n", buf)
            if not m:
                break
            block, buf = buf[:m.start()], buf[m.end():]
            lines = block.decode("utf-8").splitlines()
            data = "\n".join(ln[5:].lstrip(" ") for ln in lines if ln.startswith("data:"))
            if not any(ln.startswith("data:") for ln in lines):
                continue  # comment or keep-alive
            events.append((time.monotonic(), data))
            if on_event and on_event(data):
                return SSE(events, t0)
    assert not buf.strip(), f"stream ended inside an event: {buf[:200]!r}"
    return SSE(events, t0)


def raw_request(port, head, body=b"", *, chunked=False, timeout=10.0, chunk_size=65536):
    """Send a request over a plain socket, tolerating the server closing early.

    Returns (status, headers dict with lower-case names, body bytes). Used for bodies
    the server refuses before reading them.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(head.encode())
            if chunked:
                for i in range(0, len(body), chunk_size):
                    part = body[i:i + chunk_size]
                    s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                s.sendall(b"0\r\n\r\n")
            else:
                s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                piece = s.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
            if _complete_response(data):
                break
    finally:
        s.close()
    return _parse_response(data)


def _complete_response(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(rest) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return rest.endswith(b"0\r\n\r\n")
    return False


def _parse_response(data):
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        raise AssertionError(f"no HTTP response: {data[:200]!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body, buf = body + buf[:size], buf[size + 2:]
        rest = body
    return status, headers, rest


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


# -- a request on a connection of the test's own -------------------------------------------

class Exchange:
    """One POST over a socket the test controls, in LLMGW_PROTO, so that the test can
    leave in the middle of the answer the way a client does.

    data       response bytes so far: over HTTP/1.1 the raw wire (status line, headers,
               chunk framing), over HTTP/2 the stream's DATA payload
    arrivals   [(time.monotonic(), bytes)] as they were received
    status     the response status once its headers came (HTTP/2 only; None before)

    abort(how): "close" closes the connection (a FIN); "reset" resets the request: over
    HTTP/1.1 a TCP RST (SO_LINGER 0), over HTTP/2 an RST_STREAM (CANCEL) on a connection
    that stays open.
    """

    def __init__(self, port, path, body, *, test_id=None, proto=None, timeout=10.0):
        self.proto = proto or PROTO
        self.test_id = test_id or new_test_id()
        self.data = b""
        self.arrivals = []
        self.status = None
        self.ended = False  # the server finished the answer (h2: END_STREAM / RST_STREAM)
        self._timeout = timeout
        payload = json.dumps(body).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if self.proto == "h1":
            self.sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Content-Type: application/json\r\nX-Test-Id: {self.test_id}\r\n"
                               f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload)
            return
        import h2.config
        import h2.connection
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self._h2.initiate_connection()
        self.stream_id = self._h2.get_next_available_stream_id()
        self._h2.send_headers(self.stream_id, [
            (":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
            (":path", path), ("content-type", "application/json"),
            ("content-length", str(len(payload))), ("x-test-id", self.test_id)])
        self._h2.send_data(self.stream_id, payload, end_stream=True)
        self.sock.sendall(self._h2.data_to_send())

    def _receive(self, deadline):
        """Wait for bytes until `deadline`; False when the connection ended or time ran out."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            piece = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            piece = b""
        now = time.monotonic()
        if not piece:
            self.ended = True
            return False
        if self.proto == "h1":
            self.data += piece
            self.arrivals.append((now, piece))
            return True
        import h2.events
        for ev in self._h2.receive_data(piece):
            if getattr(ev, "stream_id", None) != self.stream_id:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                self.status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.data += ev.data
                self.arrivals.append((now, ev.data))
                self._h2.acknowledge_received_data(ev.flow_controlled_length, self.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.ended = True
        out = self._h2.data_to_send()
        if out:
            self.sock.sendall(out)
        return True

    def read_until(self, pred, timeout=None):
        """Receive until pred(self.data) holds; fails when the answer ends or time runs
        out first."""
        deadline = time.monotonic() + (timeout or self._timeout)
        while not pred(self.data):
            if self.ended or not self._receive(deadline):
                raise AssertionError(f"answer ended or stalled before the awaited bytes: "
                                     f"{self.data[-300:]!r}")
        return self.data

    def abort(self, how):
        if how == "reset" and self.proto == "h2":
            import h2.errors
            self._h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
            self.sock.sendall(self._h2.data_to_send())
            return
        if how == "reset":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how != "close":
            raise ValueError(how)
        self.close()

    def close(self):
        self.sock.close()
