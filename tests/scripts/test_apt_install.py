"""scripts/apt-install against stand-ins for apt-get, dpkg-query and the service tools.

What it must guarantee whatever apt does: it waits for the dpkg lock instead of failing, no
daemon starts while it installs (a policy-rc.d that it removes again on every exit path, and
leaves alone when it was already there), and with --daemons-off every service brought by the
packages it added is disabled, even when the install fails half-way.

Run: /usr/bin/python3 -m pytest -q tests/scripts
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "apt-install"

# The stand-ins share one state directory ($STUB):
#   installed        packages installed, one a line
#   files/<pkg>      what `dpkg-query -L <pkg>` lists
#   adds/<pkg>       packages that installing <pkg> adds besides itself (its dependencies)
#   fail_after_add   apt-get install adds the packages, then fails
#   hang             apt-get install waits (for the interrupt test)
#   calls            every call of apt-get, systemctl, deb-systemd-helper, update-rc.d
#   policy_seen      what apt-get install found at $POLICY_RC_D
STUBS = {
    "apt-get": r"""#!/bin/bash
echo "apt-get $*" >>"$STUB/calls"
for a in "$@"; do [ "$a" = install ] && mode=install; done
[ "${mode:-}" = install ] || exit 0
if [ -x "$POLICY_RC_D" ]; then
    { echo present; "$POLICY_RC_D" nginx start; echo "exit $?"; } >"$STUB/policy_seen"
else
    echo absent >"$STUB/policy_seen"
fi
if [ -e "$STUB/hang" ]; then touch "$STUB/hanging"; sleep 30; fi
for a in "$@"; do
    case $a in -*|install) continue ;; esac
    echo "$a" >>"$STUB/installed"
    [ -f "$STUB/adds/$a" ] && cat "$STUB/adds/$a" >>"$STUB/installed"
done
[ -e "$STUB/fail_after_add" ] && exit 100
exit 0
""",
    "dpkg-query": r"""#!/bin/bash
case $1 in
-L) cat "$STUB/files/$2" 2>/dev/null; exit 0 ;;
esac
# -W -f=FORMAT [PKG]
pkg=${3:-}
if [ -z "$pkg" ]; then sort -u "$STUB/installed"; exit 0; fi
grep -qx "$pkg" "$STUB/installed" || exit 1
echo "install ok installed"
""",
    "systemctl": '#!/bin/bash\necho "systemctl $*" >>"$STUB/calls"\n',
    "deb-systemd-helper": '#!/bin/bash\necho "deb-systemd-helper $*" >>"$STUB/calls"\n',
    "update-rc.d": '#!/bin/bash\necho "update-rc.d $*" >>"$STUB/calls"\n',
}


@pytest.fixture
def stub(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("apt-install runs apt-get through sudo when not root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state"
    (state / "files").mkdir(parents=True)
    (state / "adds").mkdir()
    (state / "installed").write_text("apache2\n")
    (state / "files" / "apache2").write_text("/lib/systemd/system/apache2.service\n"
                                             "/etc/init.d/apache2\n")
    (state / "calls").write_text("")
    policy = tmp_path / "policy-rc.d"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STUB=str(state),
               POLICY_RC_D=str(policy))
    env.pop("FORCE_APT", None)

    class Stub:
        def run(self, *args, timeout=30):
            return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)

        def popen(self, *args):
            return subprocess.Popen([str(SCRIPT), *args], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

        def calls(self):
            return (state / "calls").read_text().splitlines()

        def installed(self):
            return (state / "installed").read_text().split()

        def policy_seen(self):
            p = state / "policy_seen"
            return p.read_text().split("\n") if p.exists() else None

        def ships(self, pkg, *files, adds=()):
            (state / "files" / pkg).write_text("".join(f + "\n" for f in files))
            if adds:
                (state / "adds" / pkg).write_text("".join(a + "\n" for a in adds))

        def flag(self, name):
            (state / name).touch()

    s = Stub()
    s.state = state
    s.policy = policy
    return s


def disabled(calls):
    """Units and init scripts disabled, whichever tool did it."""
    out = set()
    for c in calls:
        w = c.split()
        if w[0] == "systemctl" and "disable" in w:
            out.add(w[-1])
        elif w[0] == "deb-systemd-helper" and w[1] == "disable":
            out.add(w[2])
        elif w[0] == "update-rc.d" and w[2] == "disable":
            out.add("init.d/" + w[1])
    return out


def test_nothing_missing_runs_no_apt(stub):
    r = stub.run("apache2")
    assert r.returncode == 0, r.stderr
    assert stub.calls() == []
    assert not stub.policy.exists()


def test_waits_for_the_dpkg_lock_and_starts_no_daemon(stub):
    r = stub.run("wrk")
    assert r.returncode == 0, r.stdout + r.stderr
    apt = [c for c in stub.calls() if c.startswith("apt-get")]
    assert len(apt) == 2 and "update" in apt[0] and "install" in apt[1], apt
    for c in apt:
        assert "-o DPkg::Lock::Timeout=600" in c, c
    # While apt-get installed, policy-rc.d was in place and denied starts (101)...
    assert stub.policy_seen() == ["present", "exit 101", ""], stub.policy_seen()
    # ...and it is gone afterwards, since apt-install created it.
    assert not stub.policy.exists()
    assert "wrk" in stub.installed()


def test_policy_removed_when_apt_fails(stub):
    stub.flag("fail_after_add")
    r = stub.run("wrk")
    assert r.returncode != 0
    assert stub.policy_seen()[0] == "present"
    assert not stub.policy.exists()


def test_policy_removed_when_interrupted(stub):
    stub.flag("hang")
    p = stub.popen("wrk")
    deadline = time.monotonic() + 20
    while not (stub.state / "hanging").exists():
        assert time.monotonic() < deadline, "apt-get install was never reached"
        assert p.poll() is None, p.stdout.read()
        time.sleep(0.05)
    assert stub.policy.exists()
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    try:
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert rc != 0
    assert not stub.policy.exists()


def test_existing_policy_is_left_alone(stub):
    text = "#!/bin/sh\n# the admin's\nexit 101\n"
    stub.policy.write_text(text)
    stub.policy.chmod(0o755)
    r = stub.run("wrk")
    assert r.returncode == 0, r.stderr
    assert stub.policy.read_text() == text


NGINX_FILES = ("/lib/systemd/system/nginx.service", "/lib/systemd/system/nginx@.service",
               "/etc/init.d/nginx", "/usr/sbin/nginx")


def test_daemons_off_disables_what_the_install_added(stub):
    stub.ships("nginx-common", *NGINX_FILES)
    stub.ships("nginx-light", "/usr/sbin/nginx", adds=("nginx-common",))
    stub.ships("prometheus", "/lib/systemd/system/prometheus.service", "/etc/init.d/prometheus")
    r = stub.run("--daemons-off", "nginx-light", "prometheus", "apache2")
    assert r.returncode == 0, r.stdout + r.stderr
    got = disabled(stub.calls())
    # The dependency's unit too; never a template; never what was installed before (apache2).
    assert got == {"nginx.service", "init.d/nginx", "prometheus.service", "init.d/prometheus"}, got


def test_daemons_off_disables_even_when_the_install_fails(stub):
    stub.ships("nginx-common", *NGINX_FILES)
    stub.ships("nginx-light", "/usr/sbin/nginx", adds=("nginx-common",))
    stub.flag("fail_after_add")
    r = stub.run("--daemons-off", "nginx-light")
    assert r.returncode != 0
    assert disabled(stub.calls()) == {"nginx.service", "init.d/nginx"}
    assert not stub.policy.exists()


def test_without_daemons_off_services_stay_as_debian_installs_them(stub):
    stub.ships("nginx-common", *NGINX_FILES)
    stub.ships("nginx-light", "/usr/sbin/nginx", adds=("nginx-common",))
    r = stub.run("nginx-light")
    assert r.returncode == 0, r.stderr
    assert disabled(stub.calls()) == set()
