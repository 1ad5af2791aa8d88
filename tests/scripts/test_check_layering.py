"""scripts/check-layering against small trees that break one rule each, and the real tree.

Each bad tree must fail (exit 1) with a line naming the offending file, line and include;
the good tree and the repository itself must pass.

Run: /usr/bin/python3 -m pytest -q tests/scripts
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-layering"

# A tree that keeps every rule: glue over core, a translator over the interfaces.
GOOD = {
    "mod_llmgw.c": '#include <httpd.h>\n#include "src/mod_llmgw_private.h"\n#include "llmgw_pool.h"\n',
    "src/mod_llmgw_private.h": "#include <http_log.h>\n",
    "src/mod_llmgw_handler.c": '#include "mod_llmgw_private.h"\n#include "llmgw_upstream.h"\n',
    "include/llmgw.h": "#include <apr.h>\n",
    "include/llmgw_config.h": '#include "llmgw.h"\n',
    "include/llmgw_pool.h": '#include "llmgw_config.h"\n',
    "include/llmgw_provider.h": '#include "llmgw_config.h"\n',
    "include/llmgw_upstream.h": '#include "llmgw.h"\n#include <curl/curl.h>\n',
    "src/llmgw_config.c": '#include <yaml.h>\n#include "llmgw_config.h"\n#include "llmgw_config_private.h"\n',
    "src/llmgw_config_private.h": '#include "llmgw_config.h"\n',
    "src/llmgw_pool.c": '#include "llmgw_pool.h"\n',
    "src/llmgw_upstream.c": '#include "llmgw_upstream.h"\n',
    "src/providers/llmgw_provider_x.c": '#include "llmgw_provider.h"\n#include "llmgw_json.h"\n',
    "src/ingress/llmgw_ingress_y.c": '#include "llmgw_provider.h"\n',
}


def make_tree(tmp_path, changes):
    files = dict(GOOD)
    files.update(changes)
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def run(tree):
    return subprocess.run([sys.executable, str(SCRIPT), str(tree)], capture_output=True, text=True,
                          timeout=60)


def test_good_tree_passes(tmp_path):
    r = run(make_tree(tmp_path, {}))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_repository_passes():
    r = run(REPO)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "path,text,expect",
    [
        # a core file with an httpd header
        ("src/llmgw_pool.c", '#include "llmgw_pool.h"\n#include <http_log.h>\n',
         "src/llmgw_pool.c:2: #include <http_log.h>: a core file must not include an httpd header"),
        ("include/llmgw_config.h", '#include "llmgw.h"\n#include "httpd.h"\n',
         'include/llmgw_config.h:2: #include "httpd.h": a core file must not include an httpd header'),
        ("src/strategies/llmgw_strategy_z.c", "#include <ap_provider.h>\n",
         "src/strategies/llmgw_strategy_z.c:1: #include <ap_provider.h>: a core file must not "
         "include an httpd header"),
        # a core file with the glue's header
        ("src/llmgw_pool.c", '#include "mod_llmgw_private.h"\n',
         'src/llmgw_pool.c:1: #include "mod_llmgw_private.h": a core file must not include a glue '
         "header"),
        # translators that reach for I/O or the glue
        ("src/providers/llmgw_provider_x.c", '#include "llmgw_provider.h"\n\n#include "llmgw_upstream.h"\n',
         'src/providers/llmgw_provider_x.c:3: #include "llmgw_upstream.h": a translator must not '
         "reach the upstream client"),
        ("src/providers/llmgw_provider_x.c", '#include "llmgw_google_auth.h"\n',
         'src/providers/llmgw_provider_x.c:1: #include "llmgw_google_auth.h": a translator must not '
         "include the token exchange"),
        ("src/ingress/llmgw_ingress_y.c", '#include "../mod_llmgw_private.h"\n',
         'src/ingress/llmgw_ingress_y.c:1: #include "../mod_llmgw_private.h": a core file must not '
         "include a glue header"),
    ],
)
def test_bad_include_fails(tmp_path, path, text, expect):
    r = run(make_tree(tmp_path, {path: text}))
    assert r.returncode == 1, r.stderr
    assert expect in r.stderr


def test_cycle_fails_with_both_includes(tmp_path):
    # config -> pool -> config: the cycle and the include lines that make it.
    r = run(make_tree(tmp_path, {
        "src/llmgw_config.c": '#include "llmgw_config.h"\n#include "llmgw_pool.h"\n',
    }))
    assert r.returncode == 1, r.stderr
    assert "cycle among core files: llmgw_config -> llmgw_pool -> llmgw_config" in r.stderr
    assert 'src/llmgw_config.c:2: #include "llmgw_pool.h"' in r.stderr
    assert 'include/llmgw_pool.h:1: #include "llmgw_config.h"' in r.stderr


def test_private_header_is_its_component(tmp_path):
    # llmgw_config_private.h including llmgw_config.h is no cycle; the same header
    # under another name is a component of its own, and then it is one.
    r = run(make_tree(tmp_path, {
        "src/llmgw_config.c": '#include "llmgw_config.h"\n#include "llmgw_config_yaml.h"\n',
        "src/llmgw_config_yaml.h": '#include "llmgw_config.h"\n',
    }))
    assert r.returncode == 1
    assert "llmgw_config -> llmgw_config_yaml -> llmgw_config" in r.stderr


def test_glue_may_include_httpd_and_core(tmp_path):
    r = run(make_tree(tmp_path, {
        "src/mod_llmgw_stats.c": '#include <mod_status.h>\n#include "llmgw_pool.h"\n',
    }))
    assert r.returncode == 0, r.stderr
