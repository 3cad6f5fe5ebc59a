"""gahp-shell --ssh: the real blahpd (installed by blahp-bootstrap for the test user) through
gahp-ssh and a real OpenSSH sshd."""
import os
import re
import subprocess
import sys

import pytest

from tests.clusters.sshd import sshd  # noqa: F401
from tests.integration.test_blahp_bootstrap import base, bootstrap, isolate_state, target  # noqa: F401
from tests.ssh_helpers import private_home

pytestmark = pytest.mark.slow


def shell_over_ssh(server, base, script, known_hosts=None):
    ssh_args = "--rgahp-key %s --known-hosts %s --ssh-config none --rgahp-glite ~/%s/glite --persist 1" % (
        server.client_key, known_hosts or server.known_hosts, base)
    with private_home() as home:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run([sys.executable, "-m", "gahp.shell.cli", "--ssh", target(server), "--ssh-args",
                               ssh_args, "-c", script], env=dict(env, HOME=home), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=180)


def test_shell_over_ssh_runs_a_job(sshd, base, tmp_path):  # noqa: F811
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    isolate_state(sshd, base)
    r = shell_over_ssh(sshd, base, "ping local; submit Cmd=/bin/echo Args=hi Out=/dev/null Err=/dev/null "
                                   "gridtype=local; watch last 0.5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("1 0 No error\n2 0 No error local/")
    assert re.search(r"\d+ 0 No Error COMPLETED \(4\)", r.stdout) and re.search(r"ExitCode\s+0", r.stdout)
    # a host key nobody vouched for: gahp-ssh's own one-line reason reaches the admin
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = shell_over_ssh(sshd, base, "ping local", known_hosts=str(empty))
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert "gahp-ssh:" in r.stderr and "host key" in r.stderr.lower(), r.stderr
    assert "gahp-shell: server exited with status 255" in r.stderr, r.stderr
