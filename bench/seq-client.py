#!/usr/bin/env python3
"""Send exactly N requests, one after the other, on one keep-alive connection.

bench/run --instructions runs httpd under callgrind and needs a known number
of requests, not a duration; every answer must be 200 (a chunked stream must
end with data: [DONE]). Standard library only.

usage: seq-client.py --port P --count N [--get PATH | --post PATH --body FILE]
"""
import argparse
import socket
import sys


def request_bytes(args):
    if args.get:
        return f"GET {args.get} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with open(args.body, "rb") as f:
        body = f.read()
    head = (
        f"POST {args.post} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer sk-bench-client\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_chunked(f):
    """A chunked body (a stream) to its end; it must end with data: [DONE]."""
    body = b""
    while True:
        size = int(f.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while f.readline() not in (b"\r\n", b""):
                pass
            break
        body += f.read(size)
        f.readline()
    if b"data: [DONE]" not in body:
        raise SystemExit(f"seq-client: stream without [DONE]: {body[-200:]!r}")


def read_answer(f):
    status = f.readline()
    if b" 200 " not in status:
        raise SystemExit(f"seq-client: answer {status!r}")
    length, chunked = None, False
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        read_chunked(f)
        return
    if length is None:
        raise SystemExit("seq-client: answer without Content-Length")
    f.read(length)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--get")
    ap.add_argument("--post")
    ap.add_argument("--body")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if bool(args.get) == bool(args.post) or (args.post and not args.body):
        ap.error("give --get PATH, or --post PATH with --body FILE")
    req = request_bytes(args)
    with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as s:
        f = s.makefile("rb")
        for _ in range(args.count):
            s.sendall(req)
            read_answer(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
