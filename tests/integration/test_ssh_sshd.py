"""gahp-ssh through a real OpenSSH sshd (tests/clusters/sshd.py) as the test user.

The remote GAHP is a small bash script installed in the test user's home (the project's venv is
not readable by that user), run with ``--rgahp-script``. gahp-ssh runs as a subprocess with HOME in
a temporary directory, so its control sockets are private to each test.
"""

import os
import pathlib
import socket
import subprocess
import threading
import time
import uuid

import pytest

from tests.clusters.sshd import own_sshd, sshd, sshd_fixture  # noqa: F401
from tests.ssh_helpers import (BANNER, FAKE_GAHP, Gahp, launcher_argv, launcher_env, master_pids, private_home,
                               run_launcher)

pytestmark = pytest.mark.slow

# ft-gahp stand-in: banner, then "CONNECT port text" sends text to 127.0.0.1:port (the remote end
# of the tunnel) and answers with what came back.
FAKE_FT_GAHP = r"""#!/bin/bash
echo '%s'
while IFS= read -r line; do
  set -- $line
  case "$1" in
    QUIT) echo S; exit 0 ;;
    CONF) echo "S $CONDOR_CONFIG" ;;
    CONNECT)
      exec 3<>/dev/tcp/127.0.0.1/$2 || { echo "E connect"; continue; }
      echo "$3" >&3
      IFS= read -r reply <&3
      exec 3>&-
      echo "S $reply" ;;
    *) echo "E unknown" ;;
  esac
done
""" % BANNER


@pytest.fixture(scope="module")
def remote(sshd):  # noqa: F811
    """A private directory in the test user's home with the fake GAHPs: (glite path, script path)."""
    base = "gahp-ssh-test-%s" % uuid.uuid4().hex[:8]
    sshd.write_home_file(base + "/fakegahp.sh", FAKE_GAHP, mode=0o755)
    sshd.write_home_file(base + "/glite/bin/condor_ft-gahp", FAKE_FT_GAHP, mode=0o755)
    yield "~/%s/glite" % base, "~/%s/fakegahp.sh" % base
    sshd.run_as_user(["rm", "-rf", os.path.join(sshd.home, base)])


@pytest.fixture
def home():
    with private_home() as h:
        yield pathlib.Path(h)


def gahp_argv(server, remote, *extra, key=None, gahp="blahpd", script=True):
    glite, script_path = remote
    opts = ["--rgahp-key", key or server.client_key, "--known-hosts", server.known_hosts, "--ssh-config", "none",
            "--rgahp-glite", glite, "--connect-timeout", "15"] + list(extra)
    if script and gahp == "blahpd":
        opts += ["--rgahp-script", script_path]
    return launcher_argv(*(opts + ["%s:%d" % (server.destination, server.port), gahp]))


def _quit(gs):
    for g in gs:
        assert g.ask("QUIT") == "S"
    return [g.wait() for g in gs]


def test_gahp_session(sshd, remote, home):  # noqa: F811
    g = Gahp(gahp_argv(sshd, remote), launcher_env(home))
    try:
        assert g.readline() == BANNER
        assert g.ask("ECHO hello world") == "S hello world"
        assert g.ask("ENV") == "S %s/%s|%s/%s" % ((sshd.home, remote[0][2:]) * 2)
        assert g.ask("ERR to-stderr") == "S"
        assert _quit([g]) == [0]
        assert g.stderr_lines == ["to-stderr"]
    finally:
        g.kill()


def test_stdin_eof_ends_gahp(sshd, remote, home):  # noqa: F811
    g = Gahp(gahp_argv(sshd, remote), launcher_env(home))
    try:
        assert g.readline() == BANNER
        g.close_stdin()
        assert g.wait() == 0
    finally:
        g.kill()


def test_two_gahps_share_one_connection(sshd, remote, home, capsys):  # noqa: F811
    mark = sshd.log_mark()
    env = launcher_env(home)
    times = []
    gs = []
    try:
        for _ in range(2):
            g = Gahp(gahp_argv(sshd, remote), env)
            gs.append(g)
            assert g.readline() == BANNER
            times.append(time.monotonic() - g.t0)
        for i, g in enumerate(gs):
            assert g.ask("ECHO %d" % i) == "S %d" % i
        assert sshd.count_connections(since=mark) == 1
        assert sshd.count_logins(since=mark) == 1
        # a third, after the others: still the same connection
        g = Gahp(gahp_argv(sshd, remote), env)
        gs.append(g)
        assert g.readline() == BANNER
        times.append(time.monotonic() - g.t0)
        assert sshd.count_connections(since=mark) == 1
        assert _quit(gs) == [0, 0, 0]
    finally:
        for g in gs:
            g.kill()
    with capsys.disabled():
        print("\nlaunch->banner through sshd: first %.0f ms, second %.0f ms, third %.0f ms"
              % tuple(t * 1000 for t in times))
    assert times[1] < 0.5 and times[2] < 0.5


@pytest.fixture(scope="module")
def sshd2(tmp_path_factory):
    yield from sshd_fixture(tmp_path_factory, max_sessions=2)


def test_max_sessions_two_three_gahps(sshd2, remote, home):
    # the fake GAHPs live in the shared home of the test user, whichever server logs in
    mark = sshd2.log_mark()
    env = launcher_env(home)
    gs = []
    try:
        gs = [Gahp(gahp_argv(sshd2, remote), env) for _ in range(3)]
        for g in gs:
            assert g.readline() == BANNER, g.stderr_lines
        for i, g in enumerate(gs):
            assert g.ask("ECHO %d" % i) == "S %d" % i
        assert sshd2.count_connections(since=mark) == 2
        assert _quit(gs) == [0, 0, 0]
        assert all(g.stderr_lines == [] for g in gs), [g.stderr_lines for g in gs]
    finally:
        for g in gs:
            g.kill()


NOISY_PROFILE = r"""# written by tests/integration/test_ssh_sshd.py; noisy only for its own marker
[ -f ~/.profile ] && . ~/.profile
case "$BASH_EXECUTION_STRING" in
  *%s*) echo "Welcome to the head node"; echo "Your quota is 99%% full" ;;
esac
"""


def test_noisy_login_shell(sshd, remote, home):  # noqa: F811
    profile = os.path.join(sshd.home, ".bash_profile")
    if os.path.exists(profile):
        pytest.skip("the test user already has a .bash_profile; not overwriting it")
    marker = "noisy-%s" % uuid.uuid4().hex[:8]
    sshd.write_home_file(".bash_profile", NOISY_PROFILE % marker)
    try:
        # the marker reaches the login shell's $BASH_EXECUTION_STRING through the script string,
        # so other users of the shared test account get a quiet login
        cmd = gahp_argv(sshd, remote, script=False)
        cmd[-1:-1] = ["--rgahp-script", "%s %s" % (remote[1], marker)]
        g = Gahp(cmd, launcher_env(home))
        try:
            assert g.readline() == BANNER
            assert g.ask("ECHO after") == "S after"
            assert _quit([g]) == [0]
            noise = "Welcome to the head node\nYour quota is 99% full\n"
            assert g.stderr_lines == [
                "gahp-ssh: the remote login shell printed %d bytes before the GAHP banner (not passed on): %r"
                % (len(noise), noise)], g.stderr_lines
        finally:
            g.kill()
    finally:
        sshd.remove_home_file(".bash_profile")


@pytest.mark.parametrize("share", [True, False], ids=["shared", "direct"])
def test_wrong_key(sshd, remote, home, tmp_path, share):  # noqa: F811
    key = str(tmp_path / "wrong_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    extra = [] if share else ["--no-share"]
    r = run_launcher(gahp_argv(sshd, remote, *extra, key=key), launcher_env(home), timeout=60)
    assert r.returncode == 255
    assert r.stdout == b""
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gahp-ssh: %s:%d: authentication failed (tried key %s)"
                               % (sshd.destination, sshd.port, key)), lines
    deadline = time.monotonic() + 3  # a master that failed to connect exits (it said so first)
    while master_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert master_pids(home) == []


def test_changed_host_key(own_sshd, remote, home):
    g = Gahp(gahp_argv(own_sshd, remote, "--no-share"), launcher_env(home))
    try:
        assert g.readline() == BANNER
        assert _quit([g]) == [0]
    finally:
        g.kill()
    own_sshd.rotate_host_key()
    for extra in ([], ["--no-share"]):
        r = run_launcher(gahp_argv(own_sshd, remote, *extra), launcher_env(home), timeout=60)
        assert r.returncode == 255
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("gahp-ssh: %s:%d: host key verification failed"
                                   % (own_sshd.destination, own_sshd.port)), lines
        assert own_sshd.known_hosts in lines[0]


def test_master_idle_exit(sshd, remote, home):  # noqa: F811
    g = Gahp(gahp_argv(sshd, remote, "--persist", "1"), launcher_env(home))
    try:
        assert g.readline() == BANNER
        pids = master_pids(home)
        assert len(pids) == 1
        assert _quit([g]) == [0]
    finally:
        g.kill()
    deadline = time.monotonic() + 5
    while master_pids(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    gone = time.monotonic() - (deadline - 5)
    assert master_pids(home) == []
    assert gone < 3
    sockets = [n for n in os.listdir(str(home / ".pyblahp" / "ssh")) if n.startswith("m-") and "." not in n]
    assert sockets == []


def test_master_does_not_hold_callers_pipes(sshd, remote, home):  # noqa: F811
    """OpenSSH bz#1988: once the launcher exits, its stdout/stderr readers see EOF at once,
    although the master lives on."""
    r = subprocess.run(gahp_argv(sshd, remote, "--persist", "30"), input=b"QUIT\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=launcher_env(home), timeout=30)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == [BANNER, "S"]
    assert len(master_pids(home)) == 1


class _EchoServer:
    """The 'gridmanager' end of the ft-gahp tunnel: answers each line with 'got <line>'."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                line = c.makefile("rb").readline()
                c.sendall(b"got " + line)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("share", [True, False], ids=["shared", "direct"])
def test_ft_gahp_remote_forward(sshd, remote, home, share):  # noqa: F811
    gm = _EchoServer()
    extra = [] if share else ["--no-share"]
    env = launcher_env(home, {"CONDOR_INHERIT": "4242 <127.0.0.1:%d?addrs=127.0.0.1-%d&noUDP> 0"
                                                % (gm.port, gm.port)})
    g = Gahp(gahp_argv(sshd, remote, *extra, gahp="condor_ft-gahp"), env)
    try:
        assert g.readline() == BANNER
        assert g.ask("CONF") == "S %s/%s/etc/condor_config.ft-gahp" % (sshd.home, remote[0][2:])
        allocated = [line for line in g.stderr_lines if line.startswith("Allocated port ")]
        assert len(allocated) == 1, g.stderr_lines
        words = allocated[0].split()
        port = int(words[2])
        assert allocated[0] == "Allocated port %d for remote forward to 127.0.0.1:%d" % (port, gm.port)
        assert g.ask("CONNECT %d hello" % port) == "S got hello"
        assert _quit([g]) == [0]
    finally:
        g.kill()
        gm.close()
