"""Plumbing shared by the provider mocks (mock_openai.py, mock_anthropic.py, mock_google.py,
mock_dialects.py). The mock servers themselves derive from mock_openai.MockServer. Imports
nothing outside the standard library, so that the mocks also run stand-alone.
"""

import time

# What the mocks' "model" puts into a tool argument of each JSON-schema type.
JSON_SAMPLES = {"integer": 1, "number": 1.5, "boolean": True}


def schema_problem(schema):
    """Why a tool's parameter schema is not one the real providers accept, or None: they
    refuse a schema whose `properties` is not an object or whose `required` is not a list
    of names (the mock "model" reads both)."""
    if not isinstance(schema, dict):
        return "must be an object"
    props = schema.get("properties")
    if props is not None and not (isinstance(props, dict)
                                  and all(isinstance(v, dict) for v in props.values())):
        return "'properties' must be an object of schemas"
    req = schema.get("required")
    if req is not None and not (isinstance(req, list) and all(isinstance(n, str) for n in req)):
        return "'required' must be an array of strings"
    return None


def sample_arguments(schema, samples=JSON_SAMPLES):
    """The arguments the mock "model" passes to a tool with this parameter schema: one value
    per required property (the first property when none is required): an enum's first
    value, the sample of the property's type, else "<name>-value"."""
    props = schema.get("properties") or {}
    out = {}
    for name in schema.get("required") or list(props)[:1]:
        s = props.get(name) or {}
        type_ = s.get("type")
        if s.get("enum"):
            out[name] = s["enum"][0]
        elif isinstance(type_, str) and type_ in samples:
            out[name] = samples[type_]
        else:
            out[name] = f"{name}-value"
    return out


def serve_until_interrupted(*lines):
    """For a mock run stand-alone (python3 mock_x.py): say where it listens, then serve
    until Ctrl-C."""
    print(*lines, sep="\n", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
