"""The sshd test fixture itself works: login as the test user, log counting, limits, host-key
rotation, clean stop.

These run against a real OpenSSH sshd (tests/clusters/sshd.py); they are skipped on machines
without it and fail under CI when it is missing.
"""

import os
import subprocess
import time

import pytest

from tests.clusters.sharing import cmdline, is_live
from tests.clusters.sshd import (TEST_USER, _descendants, discard_sshd, new_sshd,  # noqa: F401
                                 own_sshd, require_sshd_support, sshd, sshd_fixture)


@pytest.fixture(scope="module")
def limited_sshd(tmp_path_factory):
    yield from sshd_fixture(tmp_path_factory, max_sessions=1, max_startups="3:50:5")


def ssh(server, *cmd, **kwargs):
    return subprocess.run(server.ssh_argv(*cmd, **kwargs), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=30)


def test_login_as_test_user(sshd):
    r = ssh(sshd, "echo ok; id -un")
    assert (r.returncode, r.stdout) == (0, "ok\n%s\n" % TEST_USER), r.stderr
    assert sshd.user == TEST_USER and sshd.host == "127.0.0.1"
    with open(sshd.known_hosts) as f:
        assert f.read().startswith("[127.0.0.1]:%d ssh-ed25519 " % sshd.port)


def _listening(port):
    """Local addresses listening on TCP ``port``, from /proc (no dependency on ss/netstat)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_listens_on_loopback_only(sshd):
    assert _listening(sshd.port) == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_one_connection_and_login_per_ssh_run(sshd):
    mark = sshd.log_mark()
    for n in (1, 2, 3):
        assert ssh(sshd, "true").returncode == 0
        assert sshd.count_logins(since=mark) == n
        assert sshd.count_logins(since=mark, user=TEST_USER) == n
        assert sshd.count_connections(since=mark) == n
    # a connection that never logs in counts as a connection only
    r = ssh(sshd, "true", options=("User=nosuchuser",))
    assert r.returncode == 255
    assert (sshd.count_connections(since=mark), sshd.count_logins(since=mark)) == (4, 3)
    assert "Accepted publickey for %s" % TEST_USER in sshd.log_text(mark)


def test_stdin_and_login_shell_reach_the_user(sshd):
    r = subprocess.run(sshd.ssh_argv("/bin/bash", "-l", "-c", "'cat; echo $HOME'"), input="hello\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, "hello\n%s\n" % sshd.home), r.stderr


def test_home_files_belong_to_the_user(sshd):
    name = ".pyblahp-fixture-test-%d" % os.getpid()
    path = sshd.write_home_file(os.path.join(name, "marker"), "from root\n")
    try:
        assert sshd.run("cat %s/marker && touch %s/written" % (name, name)).stdout == "from root\n"
        assert sshd.run_as_user(["test", "-O", os.path.join(name, "written")]).returncode == 0
        assert os.stat(path).st_uid == os.stat(sshd.home).st_uid
    finally:
        subprocess.run(["rm", "-rf", os.path.join(sshd.home, name)], check=True)


def test_limits_reach_sshd(limited_sshd):
    cfg = limited_sshd.effective_config()
    assert cfg["maxsessions"] == ["1"]
    assert cfg["maxstartups"] == ["3:50:5"]
    assert cfg["allowtcpforwarding"] == ["yes"]
    assert cfg["listenaddress"] == ["127.0.0.1:%d" % limited_sshd.port]
    # MaxSessions 1: a second session on one connection (here via a control master) is refused
    ctl = os.path.join(limited_sshd.directory, "ctl-%d" % os.getpid())
    master = subprocess.Popen(limited_sshd.ssh_argv("-N", options=("ControlMaster=yes", "ControlPath=" + ctl)),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        via_master = ("ControlMaster=no", "ControlPath=" + ctl)
        for _ in range(100):
            if os.path.exists(ctl):
                break
            assert master.poll() is None, "control master exited"
            time.sleep(0.1)
        assert os.path.exists(ctl), "control master did not come up"
        held = subprocess.Popen(limited_sshd.ssh_argv("sleep 30", options=via_master), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # the held session must be open before the second one asks
            for _ in range(100):
                if "sleep 30" in _user_commands(limited_sshd):
                    break
                time.sleep(0.1)
            assert "sleep 30" in _user_commands(limited_sshd), "first session did not start"
            mark = limited_sshd.log_mark()
            r = ssh(limited_sshd, "echo second", options=via_master)
            # the refused mux client falls back to a connection of its own
            assert "Session open refused by peer" in r.stderr
            assert (r.returncode, r.stdout) == (0, "second\n"), r.stderr
            assert limited_sshd.count_connections(since=mark) == 1
        finally:
            held.kill()
            held.wait()
    finally:
        master.kill()
        master.wait()


def _user_commands(server):
    uid = str(os.stat(server.home).st_uid)
    r = subprocess.run(["ps", "-o", "args=", "-u", uid], stdout=subprocess.PIPE, universal_newlines=True)
    return r.stdout


def test_extra_config_overrides_defaults(tmp_path):
    require_sshd_support()
    server = new_sshd(extra_config=("AllowTcpForwarding no", "MaxAuthTries 2", "Match User nobody",
                                    "  PermitTTY no"))
    try:
        server._prepare()
        server.check_config()
        cfg = server.effective_config()
        assert cfg["allowtcpforwarding"] == ["no"] and cfg["maxauthtries"] == ["2"]
        with open(server.config) as f:
            assert f.read().rstrip().endswith("Match User nobody\nPermitTTY no")
    finally:
        discard_sshd(server)


def test_rotated_host_key_fails_verification(own_sshd):
    old = own_sshd.host_key_line()
    port = own_sshd.port
    new = own_sshd.rotate_host_key()
    assert new != old and own_sshd.port == port
    r = ssh(own_sshd, "true")
    assert r.returncode == 255
    assert "Host key verification failed" in r.stderr
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
    assert own_sshd.count_logins() == 0
    own_sshd.write_known_hosts()
    assert ssh(own_sshd, "true").returncode == 0


def test_stop_leaves_no_process(own_sshd):
    pid = own_sshd.pid()
    assert pid is not None and is_live(pid)
    # an open session must not outlive the server either
    held = subprocess.Popen(own_sshd.ssh_argv("sleep 60"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            kids = _descendants(pid)
            if any(cmdline(k) == b"sleep\x0060\x00" for k in kids):  # the user's command runs
                break
            time.sleep(0.1)
        else:
            pytest.fail("the session's command did not start: %r" % [cmdline(k) for k in kids])
        own_sshd.stop()
        assert own_sshd.pid() is None
        assert not os.path.exists(own_sshd.pid_file)
        assert not is_live(pid)
        assert [k for k in kids if is_live(k)] == []
        assert held.wait(15) == 255  # the client sees its connection go
    finally:
        held.kill()
        held.wait()
    own_sshd.stop()  # idempotent



def test_start_waits_for_a_daemon_slow_to_bind(tmp_path_factory):
    # Under load the daemonised sshd may bind (and write its pid file) well after `sshd` has
    # returned: start() must wait for it rather than call the missing pid file a dead server.
    require_sshd_support()
    server = new_sshd()
    slow = os.path.join(server.directory, "slow-sshd")
    with open(slow, "w") as f:
        f.write('#!/bin/sh\n( sleep 1.5; exec %s "$@" ) </dev/null >/dev/null 2>&1 &\nexit 0\n' % server.daemon)
    os.chmod(slow, 0o755)
    server.daemon = slow
    try:
        server.start()
        assert server.start_seconds >= 1.5
        assert ssh(server, "true").returncode == 0
    finally:
        discard_sshd(server, tmp_path_factory)


def test_start_fails_fast_when_the_port_is_taken(tmp_path_factory):
    require_sshd_support()
    server = new_sshd()
    import socket
    with socket.socket() as taken:
        taken.bind((server.host, server.port))
        taken.listen(1)
        t0 = time.monotonic()
        try:
            with pytest.raises(RuntimeError, match="Cannot bind any address"):
                server.start()
        finally:
            discard_sshd(server, tmp_path_factory)
        assert time.monotonic() - t0 < 20
