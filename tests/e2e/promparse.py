"""A strict parser of the Prometheus text exposition format 0.0.4.

Stricter than Prometheus itself where the format leaves room, because the status
page should be exemplary:
  * every family has exactly one `# HELP` and one `# TYPE`, both before its first
    sample; a family's samples are contiguous (no family appears twice);
  * names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do
    not start with "__"; label values are double-quoted with only the escapes
    \\\\ \\" \\n; no label name twice in one sample; no duplicate series;
  * values are Go-style floats (digits, exponent, NaN, +Inf, -Inf); an optional
    timestamp is an integer; single spaces separate the parts;
  * a counter's name ends in _total and is its samples' name; counter values are
    finite and not negative;
  * lines end with "\\n", the text ends with a newline, no blank lines, no '\\r'.

parse(text) -> {family: Family}; it raises PromError naming the line on any violation.
"""

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_NAME_RE = re.compile(_NAME + r"$")
_SAMPLE_NAME_RE = re.compile(_NAME)
_LABEL_RE = re.compile(_LABEL)
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|NaN)$")
_TS = re.compile(r"-?\d+$")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class PromError(ValueError):
    pass


@dataclass
class Family:
    name: str
    help: str = None
    type: str = None
    samples: list = field(default_factory=list)  # [(name, {label: value}, float)]

    def value(self, **labels):
        """The value of the one sample with exactly these labels."""
        hits = [v for _, lab, v in self.samples if lab == labels]
        if len(hits) != 1:
            raise KeyError(f"{self.name}{labels}: {len(hits)} samples")
        return hits[0]


def _fail(lineno, line, why):
    raise PromError(f"line {lineno}: {why}: {line!r}")


def _unescape_help(lineno, line, s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in "\\n":
                _fail(lineno, line, "bad escape in HELP")
            out.append("\\" if s[i + 1] == "\\" else "\n")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _labels(lineno, line, s, i):
    """Parse `{a="x",b="y"}` starting at s[i] == '{'; returns (labels, index after '}')."""
    labels = {}
    i += 1
    if i < len(s) and s[i] == "}":
        return labels, i + 1
    while True:
        m = _LABEL_RE.match(s, i)
        if not m:
            _fail(lineno, line, "bad label name")
        name = m.group(0)
        if name.startswith("__"):
            _fail(lineno, line, "reserved label name")
        if name in labels:
            _fail(lineno, line, f"label {name} twice")
        i = m.end()
        if s[i:i + 2] != '="':
            _fail(lineno, line, "expected =\" after a label name")
        i += 2
        val = []
        while True:
            if i >= len(s):
                _fail(lineno, line, "unterminated label value")
            c = s[i]
            if c == '"':
                i += 1
                break
            if c == "\\":
                nxt = s[i + 1] if i + 1 < len(s) else ""
                if nxt not in ('\\', '"', 'n'):
                    _fail(lineno, line, "bad escape in a label value")
                val.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            val.append(c)
            i += 1
        labels[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        _fail(lineno, line, "expected , or } after a label")


def _float(lineno, line, text):
    if not _FLOAT.match(text):
        _fail(lineno, line, f"bad value {text!r}")
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def _family_of(name, families, current):
    """The family a sample name belongs to (histogram/summary suffixes included)."""
    if name in families:
        return name
    if current is not None:
        for suffix in _SUFFIXES.get(families[current].type, ()):
            if name == current + suffix:
                return current
    return None


def parse(text):
    if not text.endswith("\n"):
        raise PromError("the text does not end with a newline")
    if "\r" in text:
        raise PromError("carriage return in the text")
    families = {}
    closed = set()  # families whose samples are over
    current = None
    series = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            _fail(lineno, line, "blank line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                rest = parts[3] if len(parts) > 3 else ""
                if not _NAME_RE.match(name):
                    _fail(lineno, line, "bad metric name")
                if name in closed:
                    _fail(lineno, line, "family metadata after its samples")
                fam = families.setdefault(name, Family(name))
                if fam.samples:
                    _fail(lineno, line, f"{kind} after the family's samples")
                if kind == "HELP":
                    if fam.help is not None:
                        _fail(lineno, line, "second HELP")
                    fam.help = _unescape_help(lineno, line, rest)
                else:
                    if fam.type is not None:
                        _fail(lineno, line, "second TYPE")
                    if rest not in _TYPES:
                        _fail(lineno, line, "unknown TYPE")
                    fam.type = rest
                if current is not None and current != name:
                    closed.add(current)
                current = name
                continue
            if not line.startswith("# ") and line != "#":
                _fail(lineno, line, "comment without a space")
            continue
        m = _SAMPLE_NAME_RE.match(line)
        if not m:
            _fail(lineno, line, "bad metric name")
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(lineno, line, line, i)
        if i >= len(line) or line[i] != " ":
            _fail(lineno, line, "expected one space before the value")
        rest = line[i + 1:].split(" ")
        if len(rest) not in (1, 2) or "" in rest:
            _fail(lineno, line, "expected: value [timestamp]")
        value = _float(lineno, line, rest[0])
        if len(rest) == 2 and not _TS.match(rest[1]):
            _fail(lineno, line, "bad timestamp")
        fam_name = _family_of(name, families, current)
        if fam_name is None:
            _fail(lineno, line, "sample before its family's HELP and TYPE")
        if fam_name != current or fam_name in closed:
            _fail(lineno, line, "samples of a family are not contiguous")
        fam = families[fam_name]
        if fam.help is None or fam.type is None:
            _fail(lineno, line, "sample of a family without HELP or TYPE")
        if fam.type == "counter":
            if not fam_name.endswith("_total") or name != fam_name:
                _fail(lineno, line, "a counter's name must end in _total")
            if not math.isfinite(value) or value < 0:
                _fail(lineno, line, "a counter must be finite and not negative")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            _fail(lineno, line, "duplicate series")
        series.add(key)
        fam.samples.append((name, labels, value))
    for fam in families.values():
        if fam.help is None or fam.type is None:
            raise PromError(f"family {fam.name} lacks HELP or TYPE")
    return families
