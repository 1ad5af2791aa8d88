"""Client-side helpers of the e2e tests: the tools the tests declare, fixtures serving the
mocks, and the Node SDK clients of tests/e2e/*/ (one JSON spec on the command line, one JSON
line back; see js/clientkit.mjs).
"""

import json
import os
import shutil
import subprocess

import pytest

NODE = shutil.which("node") or "/usr/bin/node"
NPM = shutil.which("npm") or "/usr/bin/npm"

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                       "required": ["zone"]}}}


def module_mock(name, make):
    """A module-scoped fixture called `name` that serves make() to the module's tests."""
    @pytest.fixture(scope="module", name=name)
    def fixture():
        with make() as m:
            yield m
    return fixture


def node_runner(sdk_dir, packages, what="the SDKs"):
    """run(script, **spec) for the clients in sdk_dir: the spec goes to the script as JSON,
    its last JSON line comes back. The packages (paths below node_modules) are installed
    with `npm install` when one is missing; the calling test is skipped, with npm's output
    as reason, only when that cannot be done."""
    if not all((sdk_dir / "node_modules" / p / "package.json").exists() for p in packages):
        if not os.path.exists(NPM):
            pytest.skip(f"npm is not installed; cannot install {what}")
        try:
            r = subprocess.run([NPM, "install", "--no-audit", "--no-fund"], cwd=sdk_dir,
                               capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"npm install failed: {e}")
        if r.returncode != 0:
            pytest.skip(f"npm install failed ({r.returncode}): {r.stderr[-800:]}")

    def run(script, **spec):
        r = subprocess.run([NODE, str(sdk_dir / script), json.dumps(spec)],
                           capture_output=True, text=True, timeout=60, cwd=sdk_dir)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        assert lines, f"no result from node ({r.returncode}): {r.stdout}{r.stderr}"
        return json.loads(lines[-1])
    return run


def ok(out):
    """The result of a client run that must have succeeded."""
    assert out["ok"], out
    return out["result"]
