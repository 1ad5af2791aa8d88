#!/usr/bin/env python3
"""Hold N slow streamed chat completions open at once, and watch httpd's memory.

bench/run --long-streams starts httpd (mod_proxy_http or mod_llmgw) in front of
paced-upstream.py and runs this client against it. It opens --count
connections (at most --connect-batch connecting at a time), sends one
`stream: true` request on each, and reads every answer to its end. A stream
counts as good when it is 200 text/event-stream, carries exactly --chunks
content deltas whose text is the upstream's words in order (paced-upstream.py
WORDS), one finish_reason and `data: [DONE]` last. Chunked or close-delimited
bodies are both read.

With --barrier it first arms paced-upstream.py's barrier, so that the content
of all N streams starts when the last one has opened: every stream then holds
its connection (and its httpd thread) for the whole run, whatever the time it
takes a loaded machine to open them all.

The client shares the CPUs with httpd and the upstream, so it is written to be
cheap per chunk: asyncio protocols (a callback per read, no coroutine per
line), and the /proc sampling in a thread of its own (reading smaps_rollup
of processes with hundreds of threads takes milliseconds, which would stall
the event loop).

The sampler reads, every --sample-ms, the httpd whose parent pid is --pid,
over the parent and its children: the sum of RSS (VmRSS) and of PSS
(smaps_rollup; shared pages split between the processes that map them), the
number of threads and of processes. Before the streams start it waits
(bounded) for the thread count to settle and takes the idle figures; after
the run, the CPU time httpd spent.

Reported besides: how many streams were open at the same time (peak_open;
all N only if the last one opened before the first one ended: ramp_ms and
first_end_ms), stream durations, and how late content chunks arrived against
the upstream's schedule counted from each stream's first content chunk
(late_*: the jitter the path adds while the streams run, not the ramp).

Bounded in time: --timeout per stream, --deadline for the whole run. Prints one
`BENCH key=value ...` line (bench/run reads it) and the first error on stderr;
exits 1 when any stream failed. Standard library only. Loopback only.
"""

import argparse
import asyncio
import http.client
import json
import os
import resource
import sys
import threading
import time
import urllib.parse

WORDS = ["Spring", " and", " early", " autumn", " are", " best;", " skip", " the", " car."]
MAX_HEAD = 64 * 1024


class StreamError(Exception):
    pass


# ------------------------------------------------------------ /proc sampling

def read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def children_of(pid):
    # /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; else scan /proc.
    path = "/proc/%d/task/%d/children" % (pid, pid)
    if os.path.exists(path):
        return [int(k) for k in read_text(path).split()]
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = read_text("/proc/%s/stat" % name).rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[1] == str(pid):
                out.append(int(name))
    return out


def status_kib(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    fields = read_text("/proc/%d/stat" % pid).rsplit(")", 1)[-1].split()
    # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
    return sum(int(f) for f in fields[11:15]) if len(fields) > 14 else 0


class Sampler:
    """Peak memory and threads of one process tree, sampled from /proc."""

    KEYS = ("rss", "pss", "threads", "procs")

    def __init__(self, pid, with_pss, interval):
        self.pid = pid
        self.with_pss = with_pss
        self.interval = interval
        self.peak = dict.fromkeys(self.KEYS, 0)
        self.samples = 0
        self.stop = threading.Event()
        self.thread = None

    def pids(self):
        return [self.pid] + children_of(self.pid)

    def sample(self):
        now = dict.fromkeys(self.KEYS, 0)
        for pid in self.pids():
            status = read_text("/proc/%d/status" % pid)
            if not status:
                continue
            now["procs"] += 1
            now["rss"] += status_kib(status, "VmRSS")
            now["threads"] += status_kib(status, "Threads")
            if self.with_pss:
                now["pss"] += status_kib(read_text("/proc/%d/smaps_rollup" % pid), "Pss")
        for k, v in now.items():
            self.peak[k] = max(self.peak[k], v)
        self.samples += 1
        return now

    def settle(self, limit):
        """Wait until the thread count stops changing for 1 s (at most limit s)."""
        stop = time.monotonic() + limit
        last, since = None, time.monotonic()
        while time.monotonic() < stop:
            now = self.sample()
            if now["threads"] != last:
                last, since = now["threads"], time.monotonic()
            elif time.monotonic() - since >= 1.0:
                break
            time.sleep(0.1)
        self.peak = dict.fromkeys(self.KEYS, 0)
        self.samples = 0
        return self.sample()

    def run(self):
        while not self.stop.wait(self.interval):
            self.sample()

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        self.sample()

    def cpu_ticks(self):
        return sum(cpu_ticks(pid) for pid in self.pids())


# ------------------------------------------------------------------ streams

class Stats:
    def __init__(self):
        self.ok = 0
        self.errors = 0
        self.first_error = ""
        self.open = 0
        self.peak_open = 0
        self.durations = []
        self.late = []  # per content chunk after the first: arrival minus schedule
        self.t_start = time.monotonic()
        self.last_open = 0.0  # when the last stream got its headers
        self.first_end = None  # when the first stream ended

    def fail(self, msg):
        self.errors += 1
        if not self.first_error:
            self.first_error = msg


class SSECheck:
    """Feed body bytes; checks the OpenAI chunk stream as events complete."""

    def __init__(self, chunks, gap, stats):
        self.buf = b""
        self.chunks = chunks
        self.gap = gap
        self.stats = stats
        self.content = []
        self.t_first = None
        self.finish = 0
        self.done = False

    def feed(self, data, now):
        self.buf += data
        if b"\r" in self.buf:
            self.buf = self.buf.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buf:
            event, self.buf = self.buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self.data(line[5:].strip(), now)
                elif line.startswith(b"event:"):
                    raise StreamError("named event %r in an OpenAI stream" % line[:60])

    def data(self, payload, now):
        if self.done:
            raise StreamError("data after [DONE]")
        if payload == b"[DONE]":
            self.done = True
            return
        obj = json.loads(payload)
        if "error" in obj:
            raise StreamError("error event: %r" % payload[:200])
        for choice in obj.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                # The upstream sends chunk i at its start + (i + 1) x gap.
                if self.t_first is None:
                    self.t_first = now
                else:
                    self.stats.late.append(now - self.t_first - len(self.content) * self.gap)
                self.content.append(text)
            if choice.get("finish_reason"):
                self.finish += 1

    def verify(self):
        want = "".join(WORDS[i % len(WORDS)] for i in range(self.chunks))
        if not self.done:
            raise StreamError("no [DONE] (%d of %d content chunks)"
                              % (len(self.content), self.chunks))
        if len(self.content) != self.chunks:
            raise StreamError("%d content chunks, expected %d" % (len(self.content), self.chunks))
        if "".join(self.content) != want:
            raise StreamError("text differs from the upstream's")
        if self.finish != 1:
            raise StreamError("%d finish_reason chunks" % self.finish)


class StreamClient(asyncio.Protocol):
    """One request, one streamed answer: head, then chunked or close-delimited body."""

    def __init__(self, request, check, stats, done):
        self.request = request
        self.check = check
        self.stats = stats
        self.done = done
        self.buf = b""
        self.state = "head"  # head, size, data, close, end
        self.need = 0
        self.opened = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        if self.done.done():
            return
        self.buf += data
        try:
            self.parse(time.monotonic())
        except (ValueError, StreamError) as exc:
            self.end(exc)

    def parse(self, now):
        while self.buf and self.state != "end":
            if self.state == "head":
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise StreamError("response head too long")
                    return
                self.head(self.buf[:i].decode("latin-1"))
                self.buf = self.buf[i + 4:]
            elif self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                self.need = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                self.state = "data" if self.need else "trailer"
            elif self.state == "data":
                if len(self.buf) < self.need + 2:
                    return
                self.check.feed(self.buf[:self.need], now)
                self.buf = self.buf[self.need + 2:]
                self.state = "size"
            elif self.state == "trailer":
                if not self.buf.startswith(b"\r\n"):
                    return  # trailers are not expected; wait for the blank line
                self.end(None)
            else:  # close-delimited body
                self.check.feed(self.buf, now)
                self.buf = b""

    def head(self, text):
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise StreamError("bad status line %r" % lines[0][:80])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        ctype = headers.get("content-type", "")
        if parts[1] != "200" or not ctype.startswith("text/event-stream"):
            raise StreamError("status %s, %s" % (parts[1], ctype))
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.state = "size" if chunked else "close"
        self.opened = True
        self.stats.open += 1
        self.stats.peak_open = max(self.stats.peak_open, self.stats.open)
        self.stats.last_open = time.monotonic() - self.stats.t_start

    def end(self, exc):
        if self.done.done():
            return
        self.state = "end"
        if self.opened:
            self.stats.open -= 1
        if exc is None:
            try:
                self.check.verify()
            except StreamError as e:
                exc = e
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc):
        if self.state == "close":
            self.end(None)  # a close-delimited body ends here
        else:
            self.end(StreamError("connection closed %s" % (
                "before the end of the stream" if self.opened else "before the answer")))


async def one_stream(args, url, request, sem, stats):
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    done = loop.create_future()
    check = SSECheck(args.chunks, args.gap_ms / 1000.0, stats)
    transport = None
    try:
        async with sem:
            transport, _ = await loop.create_connection(
                lambda: StreamClient(request, check, stats, done), url.hostname, url.port)
        await done
        stats.ok += 1
        stats.durations.append(time.monotonic() - t0)
        if stats.first_end is None:
            stats.first_end = time.monotonic() - stats.t_start
    except (OSError, ValueError, StreamError) as exc:
        stats.fail("%s: %s" % (type(exc).__name__, exc))
    finally:
        if transport is not None:
            transport.close()


async def run_streams(args, stats):
    url = urllib.parse.urlsplit(args.url)
    with open(args.body, "rb") as f:
        body = f.read()
    request = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
               "Accept: text/event-stream\r\nAuthorization: Bearer sk-bench-client\r\n"
               "Content-Length: %d\r\n\r\n" % (url.path, url.hostname, url.port, len(body))
               ).encode() + body
    sem = asyncio.Semaphore(args.connect_batch)
    tasks = [asyncio.ensure_future(asyncio.wait_for(one_stream(args, url, request, sem, stats),
                                                    args.timeout))
             for _ in range(args.count)]
    _, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for t in pending:
        t.cancel()
    for t in tasks:
        try:
            await t
        except asyncio.TimeoutError:
            stats.fail("stream timed out after %.0f s" % args.timeout)
        except asyncio.CancelledError:
            stats.fail("whole-run deadline reached")


def arm_barrier(args):
    """Ask paced-upstream.py to hold the content until all streams are open."""
    host, _, port = args.barrier.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/barrier/%d/%d" % (args.count, 30))
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 200:
        raise SystemExit("long-streams: the upstream refused the barrier: %d" % resp.status)


def pct(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil, nearest-rank method
    return ordered[int(rank) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="JSON request body file (stream: true)")
    ap.add_argument("--count", type=int, default=1000, help="concurrent streams")
    ap.add_argument("--chunks", type=int, default=40, help="content chunks per stream")
    ap.add_argument("--gap-ms", type=int, default=250, help="upstream gap between chunks")
    ap.add_argument("--connect-batch", type=int, default=64, help="connections opening at once")
    ap.add_argument("--pid", type=int, help="httpd parent pid to sample")
    ap.add_argument("--upstream-pid", type=int, help="report this process's CPU time too")
    ap.add_argument("--barrier", metavar="HOST:PORT",
                    help="paced-upstream.py to arm: content starts when all streams are open")
    ap.add_argument("--sample-ms", type=int, default=100)
    ap.add_argument("--no-pss", action="store_true", help="skip smaps_rollup (PSS)")
    ap.add_argument("--timeout", type=float, default=120, help="per stream, seconds")
    ap.add_argument("--deadline", type=float, default=300, help="whole run, seconds")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # an unlimited hard limit: keep the soft one
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < args.count + 64:
        print("long-streams: open files limit %d is too low for %d streams" % (soft, args.count),
              file=sys.stderr)
        return 1

    sampler = None
    idle = None
    if args.pid:
        sampler = Sampler(args.pid, not args.no_pss, args.sample_ms / 1000.0)
        idle = sampler.settle(15)
        ticks0 = sampler.cpu_ticks()
        sampler.start()
    if args.barrier:
        arm_barrier(args)
    up0 = cpu_ticks(args.upstream_pid) if args.upstream_pid else 0
    stats = Stats()
    asyncio.run(run_streams(args, stats))
    wall = time.monotonic() - stats.t_start

    line = "BENCH streams=%d ok=%d errors=%d peak_open=%d wall_ms=%d" % (
        args.count, stats.ok, stats.errors, stats.peak_open, wall * 1000)
    line += " ramp_ms=%d first_end_ms=%d" % (stats.last_open * 1000,
                                            (stats.first_end or 0) * 1000)
    line += " dur_p50_ms=%d dur_max_ms=%d" % (pct(stats.durations, 50) * 1000,
                                            max(stats.durations or [0]) * 1000)
    # Clamped at 0: a chunk early against the first one only means the first was late.
    line += " late_p50_ms=%.1f late_p99_ms=%.1f late_max_ms=%.1f" % tuple(
        max(0.0, v) * 1000 for v in (pct(stats.late, 50), pct(stats.late, 99),
                                     max(stats.late or [0])))
    if sampler:
        sampler.finish()
        ticks = sampler.cpu_ticks() - ticks0
        line += " samples=%d" % sampler.samples
        line += " idle_rss_kib=%d idle_pss_kib=%d idle_threads=%d idle_procs=%d" % (
            idle["rss"], idle["pss"], idle["threads"], idle["procs"])
        line += " peak_rss_kib=%d peak_pss_kib=%d peak_threads=%d peak_procs=%d" % (
            sampler.peak["rss"], sampler.peak["pss"], sampler.peak["threads"],
            sampler.peak["procs"])
        line += " cpu_ms=%d" % (ticks * 1000 // os.sysconf("SC_CLK_TCK"))
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the client's own CPU
    line += " client_cpu_ms=%d" % ((usage.ru_utime + usage.ru_stime) * 1000)
    if args.upstream_pid:
        line += " upstream_cpu_ms=%d" % (
            (cpu_ticks(args.upstream_pid) - up0) * 1000 // os.sysconf("SC_CLK_TCK"))
    print(line)
    if stats.first_error:
        print("long-streams: %d failed; first error: %s" % (stats.errors, stats.first_error),
              file=sys.stderr)
    return 0 if stats.errors == 0 and stats.ok == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
