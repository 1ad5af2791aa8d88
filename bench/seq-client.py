#!/usr/bin/env python3
"""Send exactly N requests, one after the other, on one keep-alive connection.

bench/run --instructions runs httpd under callgrind and needs a known number
of requests, not a duration; every answer must be 200. With --stream K each
answer must be an OpenAI chunk stream (chunked, as httpd sends a body of
unknown length) of exactly K content deltas carrying paced-upstream.py's words
in order, ending with `data: [DONE]`: a stream cut short or merged would
change the count the instructions are divided by. Standard library only.

usage: seq-client.py --port P --count N [--get PATH | --post PATH --body FILE]
                     [--stream K]
"""
import argparse
import json
import socket
import sys

WORDS = ["Spring", " and", " early", " autumn", " are", " best;", " skip", " the", " car."]


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


def read_answer(f, stream):
    status = f.readline()
    if b" 200 " not in status:
        raise SystemExit(f"seq-client: answer {status!r}")
    length = None
    chunked = False
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if stream is not None:
        if not chunked:
            raise SystemExit("seq-client: stream answer not chunked")
        check_stream(read_chunked(f), stream)
        return
    if chunked:
        # A stream of unknown length (e.g. the continue/buffer routes): read to its end.
        body = read_chunked(f)
        if b"data: [DONE]" not in body:
            raise SystemExit(f"seq-client: stream without [DONE]: {body[-200:]!r}")
        return
    if length is None:
        raise SystemExit("seq-client: answer without Content-Length")
    f.read(length)


def read_chunked(f):
    body = []
    while True:
        size = int(f.readline().split(b";")[0], 16)
        if size == 0:
            f.readline()
            return b"".join(body)
        body.append(f.read(size + 2)[:-2])


def check_stream(body, chunks):
    text, done = [], False
    for line in body.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            continue
        for choice in json.loads(payload).get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                text.append(choice["delta"]["content"])
    want = "".join(WORDS[i % len(WORDS)] for i in range(chunks))
    if not done or len(text) != chunks or "".join(text) != want:
        raise SystemExit(f"seq-client: stream of {len(text)} content chunks "
                         f"(expected {chunks}), [DONE] {'seen' if done else 'missing'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--get")
    ap.add_argument("--post")
    ap.add_argument("--body")
    ap.add_argument("--stream", type=int, metavar="K",
                    help="answers are streams of K content chunks")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if bool(args.get) == bool(args.post) or (args.post and not args.body):
        ap.error("give --get PATH, or --post PATH with --body FILE")
    req = request_bytes(args)
    with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as s:
        f = s.makefile("rb")
        for _ in range(args.count):
            s.sendall(req)
            read_answer(f, args.stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
