"""Mutations shared by the request fuzzer and the chaos upstream.

Every function takes a `random.Random` and returns the mutated value plus a short
description (kept in the report, so that a violation says what was done). Nothing here
does I/O. JSON documents are never changed in place: mutators work on deep copies.
"""

import copy
import json
import re

MAX_SAFE = 2**53 - 1

# Numbers at and past the edges: int64, the JSON-safe integers, doubles, signs.
ABSURD_NUMBERS = [
    2**63 - 1, -2**63, 2**64, 2**63, 2**53, 2**53 + 1, MAX_SAFE, -1, 0, -0.0, 1.5, 1e308,
    -1e308, 5e-324, 10**30, -(10**30), 4294967296, 2147483648, -2147483649, 1e16, 0.1,
]

WEIRD_STRINGS = [
    "", " ", "\u0000", "a\u0000b", "\ud800", "\udfff x", "\u202e\u200b", "\U0001f600" * 8,
    "\r\n\r\n", "data: [DONE]\n\n", "event: error\ndata: {}\n\n", "null", "{\"a\":1}",
    "\\", "\"", "%s%n%x", "../../etc/passwd", "\t" * 64, "\u00e9" * 100, "A" * 5000,
]


def deep_nest(depth, leaf=1, kind="array"):
    doc = leaf
    for _ in range(depth):
        doc = [doc] if kind == "array" else {"k": doc}
    return doc


def weird_value(rng):
    """A value of a random wrong kind: absurd numbers, odd strings, containers, nesting."""
    pick = rng.randrange(12)
    if pick < 3:
        return rng.choice(ABSURD_NUMBERS), "absurd number"
    if pick < 6:
        return rng.choice(WEIRD_STRINGS), "odd string"
    if pick == 6:
        return rng.choice([None, True, False]), "literal"
    if pick == 7:
        return [], "empty array"
    if pick == 8:
        return {}, "empty object"
    if pick == 9:
        depth = rng.choice([10, 100, 600, 3000])
        return deep_nest(depth, kind=rng.choice(["array", "object"])), f"nesting {depth}"
    if pick == 10:
        n = rng.choice([100, 5000, 100000])
        return ["x"] * n if rng.random() < 0.5 else list(range(n)), f"array of {n}"
    size = rng.choice([10000, 200000, 1500000])
    return "Z" * size, f"string of {size}"


def paths(doc, limit=4000):
    """Every (container, key) of a JSON document, breadth first, at most `limit`."""
    out, todo = [], [doc]
    while todo and len(out) < limit:
        node = todo.pop(0)
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        for k, v in items:
            out.append((node, k))
            if isinstance(v, (dict, list)):
                todo.append(v)
    return out


def mutate_json(doc, rng, focus=None):
    """One structural change of a deep copy of `doc`: replace, delete or add a member, or
    duplicate an array item. `focus` (keys) makes members with those names more likely."""
    doc = copy.deepcopy(doc)
    spots = paths(doc)
    if not spots:
        value, what = weird_value(rng)
        return value, f"document -> {what}"
    if focus:
        hot = [s for s in spots if s[1] in focus]
        if hot and rng.random() < 0.6:
            spots = hot
    parent, key = rng.choice(spots)
    op = rng.randrange(10)
    if op < 6:
        value, what = weird_value(rng)
        parent[key] = value
        return doc, f"{key!r} -> {what}"
    if op < 8:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        return doc, f"{key!r} removed"
    if op == 8 and isinstance(parent, list) and parent:
        parent.extend([copy.deepcopy(parent[key])] * rng.choice([1, 10, 300]))
        return doc, f"items of [{key}] repeated"
    if isinstance(parent, dict):
        value, what = weird_value(rng)
        parent[rng.choice(["x_extra", "\u00fcnknown", "", "choices", "usage", "error"])] = value
        return doc, f"member added ({what})"
    parent.insert(key, weird_value(rng)[0])
    return doc, "item inserted"


_COUNT_KEY = re.compile(r"token|Token|count")


def absurd_counts(doc, rng):
    """Every integer member named like a token count (usage, usageMetadata, statistics)
    set to an absurd value: the providers' counts are untrusted."""
    doc = copy.deepcopy(doc)
    hit = 0
    for parent, key in paths(doc):
        if isinstance(key, str) and _COUNT_KEY.search(key) and \
                isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = rng.choice([2**63 - 1, 2**62, 2**53, -1, -2**63, 1e300, 2**63 - 2])
            hit += 1
    return doc, f"{hit} token count(s) absurd"


def dumps(doc, rng=None):
    """JSON bytes, sometimes with non-ASCII left raw, sometimes pretty-printed."""
    ensure_ascii = True if rng is None else rng.random() < 0.5
    indent = None if rng is None or rng.random() < 0.8 else rng.choice([1, 4])
    return json.dumps(doc, ensure_ascii=ensure_ascii, indent=indent,
                      allow_nan=True).encode("utf-8", "surrogatepass")


_NUMBER_END = re.compile(rb"(?<=[0-9el])(?=[,}\]])")


def mutate_bytes(data, rng):
    """A byte-level change of JSON text that keeps most of it recognisable."""
    n = len(data)
    op = rng.randrange(12)
    if op == 0 and n:
        cut = rng.randrange(n)
        return data[:cut], f"truncated at {cut}/{n}"
    if op == 1:
        spots = [m.start() for m in _NUMBER_END.finditer(data)]
        if spots:
            at = rng.choice(spots)
            return data[:at] + b"\0" + data[at:], "raw NUL after a number/literal"
    if op == 2 and n:
        at = rng.randrange(n)
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                          b"\x80\x80"])
        return data[:at] + bad + data[at:], "invalid UTF-8"
    if op == 3 and n:
        at = rng.randrange(n)
        return data[:at] + b"\0" + data[at:], "raw NUL"
    if op == 4:
        return b"\xef\xbb\xbf" + data, "BOM"
    if op == 5:
        return data + rng.choice([b" x", b"}", b"{}", b"\0", b"\n\n\n", b"[DONE]"]), \
            "trailing bytes"
    if op == 6:
        try:
            return data.decode("utf-8").encode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            return data[::-1], "reversed"
    if op == 7:
        return b"", "empty"
    if op == 8:
        tok = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"01", b"1.", b".5",
                          b"+1", b"0x10", b"true1", b"nul"])
        spots = [m.start() for m in re.finditer(rb":\s*-?[0-9]", data)]
        if spots:
            at = rng.choice(spots) + 1
            end = at
            while end < n and data[end:end + 1] not in b",}]":
                end += 1
            return data[:at] + tok + data[end:], f"number -> {tok.decode()}"
    if op == 9 and data.startswith(b"{"):
        return b'{"dup":1,"dup":2,' + data[1:], "duplicate keys"
    if op == 10:
        pad = rng.choice([1000, 100000, 3000000])
        return b" " * pad + data, f"{pad} leading spaces"
    if op == 11 and n:
        at = rng.randrange(n)
        return data[:at] + rng.choice([b"\x01", b"\x1f", b"\x7f", b"\t", b"\r"]) + data[at:], \
            "control byte"
    return data, "unchanged"
