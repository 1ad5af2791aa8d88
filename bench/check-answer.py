#!/usr/bin/env python3
"""Check that the gateway translated a canned Anthropic answer into OpenAI's shape.

bench/run calls this once per translated path before putting load on it, so a
translator that answers 200 with the wrong thing is caught instead of timed.
The expected values are derived from the canned upstream payload itself:

  check-answer.py --upstream payloads/anthropic-response.json --answer body.json
      the body must be a chat.completion whose message content is the text of
      the upstream's text blocks, with the mapped finish_reason, the upstream's
      model and usage (prompt = input + cache tokens, completion = output);
  check-answer.py --stream --upstream payloads/anthropic-stream-response.sse --answer body.sse
      the body must be OpenAI chat.completion.chunk events: the role first, the
      text_delta fragments reassembling to the same text, one finish chunk, the
      usage chunk (the request asks for it) and `data: [DONE]` last, with no
      Anthropic `event:` lines left over.

Prints what differs and exits 1 on a mismatch. Standard library only.
"""

import argparse
import json
import sys

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}


class Mismatch(Exception):
    pass


def expect(what, got, want):
    if got != want:
        raise Mismatch("%s: got %r, expected %r" % (what, got, want))


def prompt_tokens(usage):
    return sum(usage.get(k) or 0 for k in
               ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))


def upstream_json(path):
    with open(path, encoding="utf-8") as f:
        msg = json.load(f)
    text = "".join(b["text"] for b in msg["content"] if b.get("type") == "text")
    return {"text": text, "model": msg["model"], "finish": FINISH[msg["stop_reason"]],
            "prompt": prompt_tokens(msg["usage"]), "completion": msg["usage"]["output_tokens"]}


def sse_data(text, named):
    """The data payloads of an SSE body; with named=False any `event:` line is an error."""
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            out.append(line[5:].strip())
        elif line.startswith("event:") and not named:
            raise Mismatch("upstream event line leaked to the client: %r" % line)
    return out


def upstream_stream(path):
    with open(path, encoding="utf-8") as f:
        events = [json.loads(d) for d in sse_data(f.read(), True)]
    want = {"text": "", "prompt": 0, "completion": 0}
    for ev in events:
        if ev["type"] == "message_start":
            want["model"] = ev["message"]["model"]
            want["prompt"] = prompt_tokens(ev["message"]["usage"])
        elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "text_delta":
            want["text"] += ev["delta"]["text"]
        elif ev["type"] == "message_delta":
            want["finish"] = FINISH[ev["delta"]["stop_reason"]]
            want["completion"] = ev["usage"]["output_tokens"]
    return want


def check_usage(usage, want):
    usage = usage or {}
    expect("usage.prompt_tokens", usage.get("prompt_tokens"), want["prompt"])
    expect("usage.completion_tokens", usage.get("completion_tokens"), want["completion"])
    expect("usage.total_tokens", usage.get("total_tokens"), want["prompt"] + want["completion"])


def check_json(answer, want):
    doc = json.loads(answer)
    expect("object", doc.get("object"), "chat.completion")
    expect("model", doc.get("model"), want["model"])
    choices = doc.get("choices") or [{}]
    expect("number of choices", len(choices), 1)
    msg = choices[0].get("message") or {}
    expect("message.role", msg.get("role"), "assistant")
    expect("message.content", msg.get("content"), want["text"])
    expect("finish_reason", choices[0].get("finish_reason"), want["finish"])
    check_usage(doc.get("usage"), want)


def check_stream(answer, want):
    data = sse_data(answer, False)
    if not data or data[-1] != "[DONE]":
        raise Mismatch("stream does not end with data: [DONE]")
    chunks = [json.loads(d) for d in data[:-1]]
    if not chunks:
        raise Mismatch("stream has no chunk before [DONE]")
    text, finishes, usages = "", [], []
    for i, ch in enumerate(chunks):
        expect("chunk %d object" % i, ch.get("object"), "chat.completion.chunk")
        expect("chunk %d model" % i, ch.get("model"), want["model"])
        if ch.get("usage"):
            usages.append(ch["usage"])
        for choice in ch.get("choices") or []:
            delta = choice.get("delta") or {}
            if i == 0:
                expect("first chunk role", delta.get("role"), "assistant")
            text += delta.get("content") or ""
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    expect("reassembled content", text, want["text"])
    expect("finish_reasons", finishes, [want["finish"]])
    expect("usage chunks", len(usages), 1)
    check_usage(usages[0], want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="the canned Anthropic payload")
    ap.add_argument("--answer", required=True, help="what the gateway answered")
    ap.add_argument("--stream", action="store_true", help="both are SSE streams")
    args = ap.parse_args()
    with open(args.answer, encoding="utf-8", errors="replace") as f:
        answer = f.read()
    try:
        if args.stream:
            check_stream(answer, upstream_stream(args.upstream))
        else:
            check_json(answer, upstream_json(args.upstream))
    except (Mismatch, ValueError, KeyError, TypeError, AttributeError) as exc:
        print("check-answer: %s" % (exc,), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
