#!/usr/bin/env python3
"""Sequential streamed chat completions over one keep-alive connection.

For each request this measures, from the moment the request is sent:
  hdr   - until the response status line and headers arrived,
  first - until the first SSE event carrying assistant content arrived
          (what a user perceives as "time to first token"),
  total - until the end of the stream.
It checks every answer (200, text/event-stream, content seen, [DONE] seen) and
prints one machine-readable line for bench/run. Standard library only.

With --url given several times, each URL gets its own keep-alive connection and
the requests take turns (one to each URL, then again), so that paths compared
with each other see the same machine at the same moments; one line is printed
per URL, "BENCH url=<index> ...", in the order given.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


def has_content(line):
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    for choice in event.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            return True
    return False


def one_request(conn, path, body, headers):
    """Return (hdr, first, total) in seconds, or raise ValueError."""
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    t_hdr = time.perf_counter()
    ctype = resp.getheader("Content-Type", "")
    if resp.status != 200 or not ctype.startswith("text/event-stream"):
        detail = resp.read(300)
        raise ValueError("status %d, %s: %r" % (resp.status, ctype, detail))
    t_first = None
    done_seen = False
    while True:
        line = resp.readline()
        if not line:
            break
        if t_first is None and has_content(line):
            t_first = time.perf_counter()
        elif line.strip() == b"data: [DONE]":
            done_seen = True
    resp.read()  # lets http.client mark the exchange finished for reuse
    t_total = time.perf_counter()
    if t_first is None or not done_seen:
        raise ValueError("stream without content or without [DONE]")
    return t_hdr - t0, t_first - t0, t_total - t0


def percentile(values, p):
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil, nearest-rank method
    return ordered[int(rank) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, action="append")
    ap.add_argument("--body", required=True, help="JSON request body file")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=5.0, help="per request")
    ap.add_argument("--deadline", type=float, default=60.0, help="whole run")
    args = ap.parse_args()

    urls = [urllib.parse.urlsplit(u) for u in args.url]
    with open(args.body, "rb") as f:
        body = f.read()
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Authorization": "Bearer sk-bench-client",
    }
    conns = [http.client.HTTPConnection(u.hostname, u.port, timeout=args.timeout) for u in urls]
    stop_at = time.monotonic() + args.deadline * len(urls)
    samples = [[] for _ in urls]
    bad = [0] * len(urls)
    first_error = ""
    for i in range(args.warmup + args.count):
        for k, url in enumerate(urls):
            if time.monotonic() > stop_at:
                first_error = first_error or "deadline reached"
                bad[k] += 1
                continue
            try:
                result = one_request(conns[k], url.path, body, headers)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                bad[k] += 1
                first_error = first_error or str(exc)
                conns[k].close()  # a broken exchange leaves the connection unusable
                continue
            if i >= args.warmup:
                samples[k].append(result)
    for c in conns:
        c.close()

    for k in range(len(urls)):
        line = "BENCH" + (" url=%d" % k if len(urls) > 1 else "")
        line += " count=%d bad=%d" % (len(samples[k]), bad[k])
        if samples[k]:
            for idx, name in enumerate(("hdr", "first", "total")):
                vals = [s[idx] for s in samples[k]]
                line += " %s_p50_us=%d %s_p99_us=%d" % (
                    name, percentile(vals, 50) * 1e6, name, percentile(vals, 99) * 1e6)
        print(line)
    if first_error:
        print("stream-ttfb: first error: %s" % first_error, file=sys.stderr)
    return 0 if all(samples) and not any(bad) else 1


if __name__ == "__main__":
    sys.exit(main())
