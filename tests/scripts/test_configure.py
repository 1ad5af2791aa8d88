"""configure refuses the dependency versions the module cannot work with (issue 10, item 10).

libcurl older than 7.85 has no CURLOPT_PROTOCOLS_STR (which keeps upstream transfers to
http and https); APR older than 1.7 lacks what the module uses. A .pc file claiming such a
version, found first on PKG_CONFIG_PATH, stands in for an old system. configure must stop
with the sentence that names the Debian package, and accept the real ones.

Run: /usr/bin/python3 -m pytest -q tests/scripts
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ("configure", "configure.ac", "Makefile.am", "Makefile.in", "aclocal.m4", "build-aux",
         "m4", "include", "src", "mod_llmgw.c")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the sources to configure, so that the developer's own tree stays as it is."""
    if not (ROOT / "configure").exists():
        pytest.skip("configure is not generated (run ./scripts/build or autoreconf -fi)")
    if not (shutil.which("pkg-config") and (shutil.which("apxs") or shutil.which("apxs2"))):
        pytest.skip("pkg-config and apxs (apache2-dev) are needed")
    dst = tmp_path_factory.mktemp("configure")
    for name in FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns(
                "*.o", "*.lo", "*.a", ".libs", ".deps", "llmgw_version.h"))
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def fake_pc(directory, name, version):
    """A .pc file for `name` claiming `version`, with the real one's flags."""
    cflags = subprocess.run(["pkg-config", "--cflags", name], capture_output=True,
                            text=True).stdout.strip()
    libs = subprocess.run(["pkg-config", "--libs", name], capture_output=True,
                          text=True).stdout.strip()
    (directory / f"{name}.pc").write_text(
        f"Name: {name}\nDescription: an old {name}\nVersion: {version}\n"
        f"Cflags: {cflags}\nLibs: {libs}\n")


def configure(tree, pc_dir=None):
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc_dir)) if pc_dir is not None else None
    return subprocess.run(["./configure", "--with-check=no"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name, version, sentence", [
    ("libcurl", "7.84.0", "libcurl 7.85 or later not found"),
    ("libcurl", "7.74.0", "libcurl 7.85 or later not found"),
    ("apr-1", "1.6.5", "APR 1.7 or later not found"),
])
def test_old_dependency_is_refused(tree, tmp_path, name, version, sentence):
    fake_pc(tmp_path, name, version)
    r = configure(tree, tmp_path)
    assert r.returncode != 0, r.stdout[-2000:]
    assert sentence in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]


def test_current_dependencies_are_accepted(tree):
    r = configure(tree)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
