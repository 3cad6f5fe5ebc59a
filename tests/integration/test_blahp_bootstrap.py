"""blahp-bootstrap against a real OpenSSH sshd (tests/clusters/sshd.py), as the test user blahtest.

Every test installs under its own ``~/bosco-<random>`` (``-b``) of blahtest's shared home and
removes it afterwards; blahpd's state, exit records and log are pointed into that directory too,
so that parallel sessions do not share a registry. ``--test`` runs through plain OpenSSH (the
``remote_gahp`` command line) and, when it is there, through gahp-ssh.
"""
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.clusters.slurm import SlurmCluster, free_port_base, require_cluster_support
from tests.clusters.sharing import in_ci
from tests.clusters.sshd import sshd  # noqa: F401
from tests.ssh_helpers import private_home
from tests.conftest import BANNER_LINE, COMMANDS_REPLY

SLOW_TIMEOUT = 180


def bootstrap(server, *args, timeout=120):
    argv = [sys.executable, "-m", "blahp.remote_install", "--rgahp-key", server.client_key,
            "--known-hosts", server.known_hosts, "--ssh-config", "none"] + list(args)
    # a HOME of our own: --test's gahp-ssh master (and its control socket) lives there, and is
    # stopped when the test ends instead of idling on for its 300 s
    with private_home() as home:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout, env=dict(os.environ, HOME=home))


def target(server):
    return "%s@%s:%d" % (server.user, server.host, server.port)


@pytest.fixture
def base(sshd):  # noqa: F811
    name = "bosco-%s" % secrets.token_hex(4)
    yield name
    subprocess.run(["rm", "-rf", os.path.join(sshd.home, name)], check=True)


def home_path(server, base, rel=""):
    return os.path.join(server.home, base, rel)


def read(server, base, rel):
    with open(home_path(server, base, rel)) as f:
        return f.read()


def isolate_state(server, base, extra=""):
    """Point blahpd's state, exit records and log into the test's base (the home is shared)."""
    cfg = os.path.join(base, "glite/etc/blah.config")
    text = read(server, base, "glite/etc/blah.config")
    text += ('blah_state_dir="$HOME/%s/state"\npyblahp_exit_dir="$HOME/%s/state/exit"\n'
             'blah_log_file="$HOME/%s/glite/log/blahpd.log"\n' % (base, base, base)) + extra
    server.write_home_file(cfg, text)


def remote_gahp_argv(server, base):
    """What remote_gahp runs for blahpd (client.md §6.3), over plain OpenSSH."""
    g = "~/%s/glite" % base
    inner = "BLAHPD_LOCATION=%s GLITE_LOCATION=%s %s/bin/blahpd" % (g, g, g)
    return server.ssh_argv("/bin/bash -l -c %s" % shlex.quote(inner))


def transport_args(server, base, transport):
    if transport == "openssh":
        return ["--gahp-command", " ".join(shlex.quote(a) for a in remote_gahp_argv(server, base))]
    return []


def test_install_layout_blahpd_over_ssh_and_remove(sshd, base):  # noqa: F811
    r = bootstrap(sshd, "-b", base, target(sshd), "local")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "batch system local (given on the command line)" in r.stdout
    assert "installed blahpd answers" in r.stdout and "BLAH_PING local: 0 No error" in r.stdout
    assert "modules with /" in r.stdout and "byte-compiled" in r.stdout
    for rel, mode in (("glite/bin/blahpd", 0o755), ("glite/lib/pyblahp.pyz", 0o644),
                      ("glite/etc/blah.config", 0o644), ("glite/etc/pyblahp-install.json", 0o644)):
        st = os.stat(home_path(sshd, base, rel))
        assert st.st_mode & 0o777 == mode, rel
        assert st.st_uid == os.stat(sshd.home).st_uid, rel
    for d in ("glite/log", "sandbox"):
        assert os.path.isdir(home_path(sshd, base, d))
    assert "\nsupported_lrms=local\n" in read(sshd, base, "glite/etc/blah.config")
    launcher = read(sshd, base, "glite/bin/blahpd")
    assert launcher.startswith("#!/bin/sh\n") and '-I "$glite/lib/pyblahp.pyz"' in launcher
    assert not [n for n in os.listdir(home_path(sshd, base, "glite/lib")) if n != "pyblahp.pyz"]  # no temp files

    # the remote_gahp command line over plain OpenSSH: the banner first, then COMMANDS
    p = subprocess.run(remote_gahp_argv(sshd, base), input=b"COMMANDS\r\nQUIT\r\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == BANNER_LINE + COMMANDS_REPLY + b"S Server\\ exiting\r\n"

    # again: our own unedited blah.config is simply replaced (here: for another batch system)
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "sge")
    assert r.returncode == 0, r.stderr
    assert "\nsupported_lrms=sge\n" in read(sshd, base, "glite/etc/blah.config")
    assert sorted(os.listdir(home_path(sshd, base, "glite/etc"))) == ["blah.config", "pyblahp-install.json"]
    # the admin's blah.config stays, the generated one goes beside it
    sshd.write_home_file(os.path.join(base, "glite/etc/blah.config"), "supported_lrms=local\n# mine\n")
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    assert read(sshd, base, "glite/etc/blah.config").endswith("# mine\n")
    assert "\nsupported_lrms=local\n" in read(sshd, base, "glite/etc/blah.config.new")
    r = bootstrap(sshd, "-b", base, "--no-check", "--force-config", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    assert read(sshd, base, "glite/etc/blah.config.bak").endswith("# mine\n")
    assert not os.path.exists(home_path(sshd, base, "glite/etc/blah.config.new"))

    r = bootstrap(sshd, "-b", base, "--remove", target(sshd))
    assert r.returncode == 0, r.stderr
    assert "removed from ~/%s" % base in r.stdout
    # the admin's saved config is not ours to delete
    assert sorted(os.listdir(home_path(sshd, base, "glite/etc"))) == ["blah.config.bak"]
    assert not os.path.exists(home_path(sshd, base, "glite/bin"))
    assert not os.path.exists(home_path(sshd, base, "glite/lib"))
    r = bootstrap(sshd, "-b", base, "--remove", target(sshd))
    assert r.returncode == 1 and "was not installed by blahp-bootstrap" in r.stderr


def test_foreign_tree_is_not_removed_and_its_blahpd_is_kept(sshd, base):  # noqa: F811
    theirs = "#!/bin/sh\necho the C blahp\n"
    sshd.write_home_file(os.path.join(base, "glite/bin/blahpd"), theirs, mode=0o755)
    r = bootstrap(sshd, "-b", base, "--remove", target(sshd))
    assert r.returncode == 1 and "refusing" in r.stderr
    assert read(sshd, base, "glite/bin/blahpd") == theirs
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    assert "kept as bin/blahpd.orig" in r.stdout
    assert read(sshd, base, "glite/bin/blahpd.orig") == theirs
    r = bootstrap(sshd, "-b", base, "--remove", target(sshd))
    assert r.returncode == 0, r.stderr
    assert read(sshd, base, "glite/bin/blahpd") == theirs  # restored
    assert not os.path.exists(home_path(sshd, base, "glite/lib/pyblahp.pyz"))


def test_detects_the_batch_system_from_the_login_shell(sshd, base):  # noqa: F811
    login_path = "/usr/local/bin:/usr/bin:/bin"
    if not shutil.which("sbatch", path=login_path):
        if in_ci():
            pytest.fail("no sbatch on the test user's PATH (Debian: slurm-client)")
        pytest.skip("no sbatch on the test user's PATH")
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd))
    assert r.returncode == 0, r.stderr
    assert "batch system slurm (detected: sbatch found (sbatch=" in r.stdout
    sbatch_dir = os.path.dirname(shutil.which("sbatch", path=login_path))
    assert "\nslurm_binpath=%s\n" % sbatch_dir in read(sshd, base, "glite/etc/blah.config")


def test_refusals(sshd, base, tmp_path):  # noqa: F811
    # an interpreter older than 3.9 (a stand-in that reports 3.6.8)
    sshd.write_home_file(os.path.join(base, "oldpy"), "#!/bin/sh\necho 3.6.8\n", mode=0o755)
    r = bootstrap(sshd, "-b", base, "--python", home_path(sshd, base, "oldpy"), target(sshd), "local")
    assert r.returncode == 1 and "older than 3.9" in r.stderr, r.stderr
    assert not os.path.exists(home_path(sshd, base, "glite"))
    # a host key that is not the server's
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    other = tmp_path / "known_hosts"
    with open(str(tmp_path / "k.pub")) as f:
        other.write_text("[%s]:%d %s\n" % (sshd.host, sshd.port, " ".join(f.read().split()[:2])))
    r = subprocess.run([sys.executable, "-m", "blahp.remote_install", "--rgahp-key", sshd.client_key,
                        "--known-hosts", str(other), "--ssh-config", "none", "-b", base, target(sshd), "local"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert r.returncode == 1 and "host key verification failed" in r.stderr.lower(), r.stderr
    # a key the server does not accept (the one just made)
    r = subprocess.run([sys.executable, "-m", "blahp.remote_install", "--rgahp-key", str(tmp_path / "k"),
                        "--known-hosts", sshd.known_hosts, "--ssh-config", "none", "-b", base, target(sshd),
                        "local"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "authentication failed" in r.stderr.lower() or "permission denied" in r.stderr.lower(), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line, no traceback
    r = bootstrap(sshd, "-b", "../etc", target(sshd), "local")
    assert r.returncode == 1 and "bad base directory name" in r.stderr


@pytest.mark.parametrize("transport", ["openssh", "gahp-ssh"])
def test_self_test_local_backend(sshd, base, transport):  # noqa: F811
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    isolate_state(sshd, base)
    r = bootstrap(sshd, "-b", base, "--test", *transport_args(sshd, base, transport) + [target(sshd)],
                  timeout=SLOW_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    for step in ("banner: $GahpVersion", "BLAH_PING local: 0 No error", "submitted /bin/echo Hello",
                 "status 4 (completed)", "exit code 0", "output: Hello", "PASSED"):
        assert step in r.stdout, r.stdout
    assert os.listdir(home_path(sshd, base, "sandbox")) == []  # cleaned after success


def test_self_test_failure_is_exit_1(sshd, base):  # noqa: F811
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "local")
    assert r.returncode == 0, r.stderr
    isolate_state(sshd, base)
    r = bootstrap(sshd, "-b", base, "--test", *transport_args(sshd, base, "openssh") + [target(sshd), "pbs"])
    assert r.returncode == 1
    assert "FAILED: BLAH_PING pbs failed: 1 Unsupported batch system pbs" in r.stdout, r.stdout


@pytest.fixture(scope="module")
def shared_slurm():
    """A private Slurm cluster the test user can reach: its directory (slurm.conf, munge socket)
    must be searchable by blahtest, which pytest's 0700 basetemp is not."""
    require_cluster_support(with_dbd=False)
    directory = tempfile.mkdtemp(prefix="pyblahp-slurm-", dir="/tmp")
    os.chmod(directory, 0o755)
    cluster = SlurmCluster(directory, free_port_base(), with_dbd=False)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        if not cluster.processes():
            shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["openssh", "gahp-ssh"])
def test_self_test_slurm(sshd, base, shared_slurm, transport):  # noqa: F811
    r = bootstrap(sshd, "-b", base, "--no-check", target(sshd), "slurm")
    assert r.returncode == 0, r.stderr
    # the site's part: where this cluster's configuration is (exported variables of blah.config
    # reach the batch commands)
    isolate_state(sshd, base, "export SLURM_CONF=%s\n" % shared_slurm.conf)
    r = bootstrap(sshd, "-b", base, "--test", *transport_args(sshd, base, transport) + [target(sshd)],
                  timeout=SLOW_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    for step in ("BLAH_PING slurm: 0 No error", "job slurm/", "status 4 (completed)", "output: Hello", "PASSED"):
        assert step in r.stdout, r.stdout
