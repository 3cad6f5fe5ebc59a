"""gahp-ssh against an in-process asyncssh server that misbehaves on purpose.

The server runs on its own event loop in a thread, on 127.0.0.1:0, with a host key and an
authorized client key made for the test. gahp-ssh runs as a subprocess (``python -m
gahp.ssh.launcher``) with HOME in a temporary directory, so its control sockets and known_hosts
are private to the test.
"""

import asyncio
import os
import pathlib
import signal
import threading
import time

import asyncssh
import pytest

from tests.ssh_helpers import BANNER, Gahp, launcher_argv, launcher_env, master_pids, private_home, run_launcher

NOISE = "Last login: yesterday\nWelcome to the head node\n"


class FaultServer:
    """An SSH server whose sessions run a fake GAHP; ``mode`` picks the fault.

    modes: "ok", "slow" (noise, 3 s pause, then the banner), "refuse" (every session refused),
    and ``limit`` (int or None): sessions per connection beyond it are refused with code 2
    "open failed", as OpenSSH's MaxSessions does.
    """

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.mode = "ok"
        self.limit = None
        self.trusting = True   # False: no client key is accepted any more
        self.connections = 0
        self.signals = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = os.path.join(self.tmp, "client_key")
        self.client_key.write_private_key(self.client_key_path)
        os.chmod(self.client_key_path, 0o600)
        self.other_key_path = os.path.join(self.tmp, "other_key")
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(self.other_key_path)
        os.chmod(self.other_key_path, 0o600)
        self.authorized = asyncssh.import_authorized_keys(
            self.client_key.export_public_key().decode())
        self.server = None
        self.port = None
        self.conns = []

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.known_hosts = self.write_known_hosts(self.host_key, "known_hosts")
        return self

    def write_known_hosts(self, key, name):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, key.export_public_key().decode().strip()))
        return path

    async def _start(self):
        outer = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn):
                self.conn = conn
                self.sessions = 0
                outer.connections += 1
                outer.conns.append(conn)

            def public_key_auth_supported(self):
                return True

            def validate_public_key(self, username, key):
                # the authorized keys as they are now: a test may replace or distrust them
                return outer.trusting and outer.authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None

            def session_requested(self):
                if outer.mode == "refuse":
                    raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                                    "sessions are disabled here")
                if outer.limit is not None and self.sessions >= outer.limit:
                    raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "open failed")
                self.sessions += 1
                server = self

                async def run(process):
                    try:
                        await outer._gahp(process)
                    finally:
                        server.sessions -= 1
                return asyncssh.SSHServerProcess(run, None, 0, False)

        self.server = await asyncssh.create_server(
            Server, "127.0.0.1", 0, server_host_keys=[self.host_key],
            encoding=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _gahp(self, process):
        if self.mode == "slow":
            process.stdout.write(NOISE.encode())
            await asyncio.sleep(3)
        process.stdout.write((BANNER + "\n").encode())
        buf = b""
        while True:
            try:
                data = await process.stdin.read(4096)
            except asyncssh.SignalReceived as e:
                self.signals.append(e.signal)
                process.exit(143)
                return
            except (asyncssh.Error, OSError):
                return
            if not data:
                process.exit(0)
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                words = line.decode().split()
                if not words:
                    continue
                if words[0] == "QUIT":
                    process.stdout.write(b"S\n")
                    process.exit(0)
                    return
                if words[0] == "DROP":
                    # the network goes away: no exit status, no close, just a dead transport
                    process.channel.get_connection().abort()
                    return
                if words[0] == "EXIT":
                    process.exit(int(words[1]))
                    return
                if words[0] == "FREEZE":
                    # the host stops answering (the network black-holes, the machine hangs):
                    # nothing arrives and nothing is closed, keepalive requests included
                    time.sleep(float(words[1]))
                    continue
                process.stdout.write(("S " + " ".join(words[1:]) + "\n").encode())

    def stop(self):
        async def _stop():
            for c in self.conns:
                c.abort()
            self.server.close()
            await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def server(tmp_path):
    s = FaultServer(tmp_path).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def home():
    with private_home() as h:
        yield pathlib.Path(h)


def argv(server, *extra, key=None, known_hosts=None, share=True):
    opts = ["--rgahp-key", key or server.client_key_path, "--known-hosts", known_hosts or server.known_hosts,
            "--ssh-config", "none", "--connect-timeout", "10", "--persist", "5"]
    if not share:
        opts.append("--no-share")
    return launcher_argv(*(opts + list(extra) + ["tester@127.0.0.1:%d" % server.port,
                                                 "--rgahp-script", "fakegahp", "blahpd"]))


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_session_works(server, home, share):
    g = Gahp(argv(server, share=share), launcher_env(home))
    try:
        assert g.readline() == BANNER
        assert g.ask("ECHO hello") == "S hello"
        assert g.ask("QUIT") == "S"
        assert g.wait() == 0
        assert g.stderr_lines == []
    finally:
        g.kill()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_connection_dropped_mid_session(server, home, share):
    g = Gahp(argv(server, share=share), launcher_env(home))
    try:
        assert g.readline() == BANNER
        assert g.ask("ECHO before") == "S before"
        t0 = time.monotonic()
        g.send("DROP")
        rc = g.wait(timeout=15)
        assert rc == 255, g.stderr_lines
        assert time.monotonic() - t0 < 5
        assert any("the connection was lost" in line for line in g.stderr_lines), g.stderr_lines
    finally:
        g.kill()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_a_host_that_stops_answering_is_given_up_by_keepalive(server, home, share):
    # no FIN, no RST: only keepalives notice; 3 unanswered ones at 1 s end the GAHP with 255
    g = Gahp(argv(server, "--keepalive", "1", share=share), launcher_env(home))
    try:
        assert g.readline() == BANNER
        t0 = time.monotonic()
        g.send("FREEZE 8")  # the server thread sleeps; teardown waits for it to wake
        rc = g.wait(timeout=7.5)
        assert rc == 255, g.stderr_lines
        assert time.monotonic() - t0 < 7
        assert any("the connection was lost" in line or "keepalive" in line.lower() for line in g.stderr_lines), \
            g.stderr_lines
    finally:
        g.kill()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_slow_banner_noise_withheld(server, home, share):
    server.mode = "slow"
    g = Gahp(argv(server, share=share), launcher_env(home))
    try:
        assert g.readline(timeout=20) == BANNER  # the first stdout line is the banner, not the noise
        assert time.monotonic() - g.t0 >= 3
        assert g.ask("ECHO x") == "S x"
        assert g.ask("QUIT") == "S"
        assert g.wait() == 0
        noise = [line for line in g.stderr_lines if "before the GAHP banner" in line]
        assert len(noise) == 1, g.stderr_lines
        assert "printed %d bytes" % len(NOISE) in noise[0]
        assert "Last login" in noise[0]
    finally:
        g.kill()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_channel_refused(server, home, share):
    server.mode = "refuse"
    r = run_launcher(argv(server, share=share), launcher_env(home), timeout=30)
    assert r.returncode == 255
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gahp-ssh: tester@127.0.0.1:%d: the server refused the session" % server.port)
    assert "sessions are disabled here" in lines[0]
    assert r.stdout == b""


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_wrong_client_key(server, home, share):
    r = run_launcher(argv(server, key=server.other_key_path, share=share), launcher_env(home), timeout=30)
    assert r.returncode == 255
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "authentication failed (tried key %s)" % server.other_key_path in lines[0]
    assert lines[0].startswith("gahp-ssh: tester@127.0.0.1:%d: " % server.port)


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_unknown_host_key(server, home, share):
    other = server.write_known_hosts(asyncssh.generate_private_key("ssh-ed25519"), "other_known_hosts")
    r = run_launcher(argv(server, known_hosts=other, share=share), launcher_env(home), timeout=30)
    assert r.returncode == 255
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "host key verification failed" in lines[0] and other in lines[0]


def test_no_known_hosts_at_all_is_not_trust(server, home):
    """No --known-hosts and an empty HOME: nothing is trusted, nothing is written."""
    cmd = argv(server, share=False)
    i = cmd.index("--known-hosts")
    del cmd[i:i + 2]
    r = run_launcher(cmd, launcher_env(home), timeout=30)
    assert r.returncode == 255
    assert "host key verification failed" in r.stderr.decode()
    assert not (home / ".ssh" / "known_hosts").exists()


def test_connection_refused(home, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = run_launcher(launcher_argv("--rgahp-nokey", "--ssh-config", "none", "--no-share",
                                   "tester@127.0.0.1:%d" % port, "blahpd"), launcher_env(home), timeout=30)
    assert r.returncode == 255
    assert r.stderr.decode().strip() == "gahp-ssh: tester@127.0.0.1:%d: connection refused" % port


def test_remote_exit_status_passed(server, home):
    g = Gahp(argv(server), launcher_env(home))
    try:
        assert g.readline() == BANNER
        g.send("EXIT 7")
        assert g.wait() == 7
    finally:
        g.kill()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_sigterm_stops_remote_gahp(server, home, share):
    g = Gahp(argv(server, share=share), launcher_env(home))
    try:
        assert g.readline() == BANNER
        t0 = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        assert g.wait(timeout=10) == 255
        assert time.monotonic() - t0 < 3
        deadline = time.monotonic() + 5
        while not server.signals and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.signals == ["TERM"]
    finally:
        g.kill()


@pytest.mark.parametrize("n,limit,conns", [(3, 2, 2), (7, 2, 4), (6, 1, 6), (8, None, 1)])
def test_session_limit_learned(server, home, n, limit, conns):
    """n GAHPs started together, ``limit`` sessions per connection: as many connections as
    needed, nobody fails."""
    server.limit = limit
    env = launcher_env(home)
    gs = [Gahp(argv(server), env) for _ in range(n)]
    try:
        for g in gs:
            assert g.readline() == BANNER, g.stderr_lines
        for i, g in enumerate(gs):
            assert g.ask("ECHO %d" % i) == "S %d" % i
        assert server.connections == conns
        for g in gs:
            g.send("QUIT")
        assert [g.wait() for g in gs] == [0] * n
        assert all(g.stderr_lines == [] for g in gs), [g.stderr_lines for g in gs]
    finally:
        for g in gs:
            g.kill()


def test_backoff_answers_at_once(server, home):
    """After the connection is gone and reconnects fail, requests get the last error at once."""
    g = Gahp(argv(server), launcher_env(home))
    try:
        assert g.readline() == BANNER
        pids = master_pids(home)
        assert len(pids) == 1
        g.send("DROP")
        assert g.wait(timeout=15) == 255
    finally:
        g.kill()
    server.mode = "ok"
    # make new logins fail: the server trusts no client key any more (the same listener: binding
    # a new one to the port can fail while the old one's sockets linger)
    server.trusting = False
    server.connections = 0
    r1 = run_launcher(argv(server), launcher_env(home), timeout=30)
    assert r1.returncode == 255 and b"authentication failed" in r1.stderr, r1.stderr
    assert server.connections == 1
    r2 = run_launcher(argv(server), launcher_env(home), timeout=30)
    assert r2.returncode == 255 and b"authentication failed" in r2.stderr, r2.stderr
    assert server.connections == 1  # within the back-off: answered without a new attempt
    assert master_pids(home) == pids  # the same master answered both


def test_reconnect_after_drop(server, home):
    """The master survives its connection: the next GAHP gets a new one."""
    env = launcher_env(home)
    g = Gahp(argv(server), env)
    try:
        assert g.readline() == BANNER
        pids = master_pids(home)
        g.send("DROP")
        assert g.wait(timeout=15) == 255
    finally:
        g.kill()
    g = Gahp(argv(server), env)
    try:
        assert g.readline() == BANNER
        assert g.ask("QUIT") == "S"
        assert g.wait() == 0
        assert g.stderr_lines == []
    finally:
        g.kill()
    assert master_pids(home) == pids
    assert server.connections == 2


def test_killed_master_replaced(server, home):
    """A master that died hard leaves a stale socket; the next launch starts a new master."""
    env = launcher_env(home)
    r = run_launcher(argv(server), env, input=b"QUIT\n")
    assert r.returncode == 0, r.stderr
    (old,) = master_pids(home)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while master_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    r = run_launcher(argv(server), env, input=b"QUIT\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == [BANNER, "S"]
    new = master_pids(home)
    assert len(new) == 1 and new != [old]


def _encrypted_server_key(server, tmp_path, fmt):
    path = str(tmp_path / ("enc_" + fmt))
    if fmt == "openssh":
        import subprocess
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", path], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        key = asyncssh.read_private_key(path, "s3cret") if _has_bcrypt() else None
        pub = open(path + ".pub").read()
    else:
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(path, "pkcs8-pem", passphrase="s3cret")
        pub = key.export_public_key().decode()
    os.chmod(path, 0o600)
    server.authorized = asyncssh.import_authorized_keys(pub)
    return path, key


def _has_bcrypt():
    import importlib.util
    return importlib.util.find_spec("bcrypt") is not None


@pytest.mark.parametrize("fmt", ["pkcs8", "openssh"])
def test_encrypted_key_with_pass_file(tmp_path, home, fmt):
    """The passphrase is the pass file's first line (condor_remote_cluster writes it with echo)."""
    server = FaultServer(tmp_path)
    path, _ = _encrypted_server_key(server, tmp_path, fmt)
    server.start()
    try:
        passfile = tmp_path / "pass"
        passfile.write_text("s3cret\nsecond line ignored\n")
        cmd = argv(server, "--rgahp-pass", str(passfile), key=path, share=False)
        r = run_launcher(cmd, launcher_env(home), input=b"QUIT\n")
        if fmt == "openssh" and not _has_bcrypt():
            assert r.returncode == 255
            lines = r.stderr.decode().splitlines()
            assert len(lines) == 1, lines
            assert "encrypted OpenSSH key needs the bcrypt module" in lines[0]
            return
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().splitlines() == [BANNER, "S"]
        passfile.write_text("wrong\n")
        r = run_launcher(cmd, launcher_env(home), input=b"QUIT\n")
        assert r.returncode == 255
        assert "incorrect passphrase" in r.stderr.decode()
    finally:
        server.stop()


def test_encrypted_key_without_pass_file(tmp_path, home):
    server = FaultServer(tmp_path)
    path, _ = _encrypted_server_key(server, tmp_path, "pkcs8")
    server.start()
    try:
        r = run_launcher(argv(server, "--rgahp-nopass", key=path, share=False), launcher_env(home))
        assert r.returncode == 255
        assert r.stderr.decode().strip().endswith("is encrypted and no passphrase file was given")
    finally:
        server.stop()


@pytest.mark.parametrize("share", [False, True], ids=["direct", "shared"])
def test_connect_timeout(home, share):
    """A server that accepts TCP but never speaks SSH: a timeout line, not a hang."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    port = s.getsockname()[1]
    try:
        cmd = launcher_argv("--rgahp-nokey", "--ssh-config", "none", "--connect-timeout", "1",
                            *([] if share else ["--no-share"]), "tester@127.0.0.1:%d" % port, "blahpd")
        t0 = time.monotonic()
        r = run_launcher(cmd, launcher_env(home), timeout=30)
        assert time.monotonic() - t0 < 8
        assert r.returncode == 255
        assert r.stderr.decode().strip() == "gahp-ssh: tester@127.0.0.1:%d: connection timed out after 1 s" % port
    finally:
        s.close()


def test_master_sigterm_ends_sessions(server, home):
    g = Gahp(argv(server), launcher_env(home))
    try:
        assert g.readline() == BANNER
        (pid,) = master_pids(home)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        assert g.wait(timeout=10) == 255
        assert time.monotonic() - t0 < 5
        assert any("the control master was stopped" in line for line in g.stderr_lines), g.stderr_lines
        deadline = time.monotonic() + 5
        while (master_pids(home) or not server.signals) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert master_pids(home) == []
        assert server.signals == ["TERM"]
    finally:
        g.kill()


def test_master_killed_mid_session(server, home):
    g = Gahp(argv(server), launcher_env(home))
    try:
        assert g.readline() == BANNER
        (pid,) = master_pids(home)
        os.kill(pid, signal.SIGKILL)
        assert g.wait(timeout=10) == 255
        assert g.stderr_lines == ["gahp-ssh: tester@127.0.0.1:%d: control master terminated unexpectedly"
                                  % server.port]
        # the GAHP's stdout reached EOF: no process kept the pipe
        assert g.proc.stdout.closed or g.proc.stdout.read() == b""
    finally:
        g.kill()


def test_missing_key_file_falls_back_to_defaults(server, home):
    """remote_gahp uses the key only if the file exists; otherwise ssh's defaults, which here
    (empty HOME, no agent) have nothing the server accepts."""
    missing = str(home / "no-such-key")
    r = run_launcher(argv(server, key=missing, share=False), launcher_env(home), timeout=30)
    assert r.returncode == 255
    line = r.stderr.decode().strip()
    assert "authentication failed (tried the agent and the default keys; key %s does not exist)" % missing in line


def _master_log_lines(home, pattern="*.log"):
    """Lines of the master logs under the test's HOME (the control dir), waiting briefly for them."""
    lines = []
    deadline = time.monotonic() + 5
    while True:
        lines = []
        for p in sorted(pathlib.Path(home).rglob(pattern)):
            lines.extend(p.read_text(encoding="utf-8", errors="replace").splitlines())
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _kv(line):
    """key=value fields of one structlog line (values as rendered: strings quoted)."""
    import shlex
    out = {}
    for tok in shlex.split(line):
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out


def test_master_log_has_bound_launch_fields(server, home):
    """The shared master logs key=value lines through structlog; each launch's lines carry the
    launch id, target, gahp name and connection id, and connection events carry the target."""
    env = launcher_env(home)
    for _ in range(2):
        r = run_launcher(argv(server), env, input=b"QUIT\n")
        assert r.returncode == 0, r.stderr
        assert r.stderr == b""
    target = "tester@127.0.0.1:%d" % server.port
    deadline = time.monotonic() + 5
    while True:
        lines = _master_log_lines(home)
        ends = [_kv(x) for x in lines if "event='session end'" in x]
        if len(ends) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(ends) == 2, lines
    for i, f in enumerate(ends, 1):
        assert f["launch"] == str(i), f
        assert f["target"] == target, f
        assert f["gahp"] == "fakegahp", f  # --rgahp-script names what runs
        assert f["conn"] == "1", f
        assert f["rc"] == "0", f
        assert f["level"] == "info" and f["timestamp"], f
    launch1 = [_kv(x) for x in lines if " launch=1 " in " %s " % x]
    assert {f["event"] for f in launch1} >= {"launch", "session open", "session end"}, lines
    connected = [_kv(x) for x in lines if "event='connected'" in x]
    assert len(connected) == 1 and connected[0]["target"] == target and connected[0]["conn"] == "1", lines
    # structlog only: no stdlib-formatted lines
    assert all(x.startswith("timestamp=") for x in lines), lines


def test_master_log_connection_lost_and_limit(server, home):
    """Connection events: a limit learned and a dropped connection are logged with the target."""
    server.limit = 1
    env = launcher_env(home)
    gs = [Gahp(argv(server), env) for _ in range(2)]
    try:
        for g in gs:
            assert g.readline() == BANNER, g.stderr_lines
        gs[0].send("DROP")
        assert gs[0].wait(timeout=15) == 255
        gs[1].send("QUIT")
        gs[1].wait(timeout=15)
    finally:
        for g in gs:
            g.kill()
    target = "tester@127.0.0.1:%d" % server.port
    deadline = time.monotonic() + 5
    while True:
        lines = _master_log_lines(home)
        events = [_kv(x) for x in lines]
        names = {f.get("event") for f in events}
        if {"limit learned", "connection lost"} <= names or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {"limit learned", "connection lost"} <= names, lines
    for f in events:
        if f.get("event") in ("limit learned", "connection lost", "connected"):
            assert f["target"] == target and f["conn"], f


def test_master_log_file_rotates(tmp_path):
    """The master's log writer rotates past its size limit, keeping one ``.1``."""
    from gahp.ssh import logfile
    path = str(tmp_path / "m.log")
    f = logfile.RotatingFile(path, max_bytes=100)
    try:
        for i in range(30):
            f.write("line %02d %s\n" % (i, "x" * 20))
    finally:
        f.close()
    assert os.path.getsize(path) <= 100 + 30
    assert os.path.getsize(path + ".1") <= 100 + 30
    assert not os.path.exists(path + ".2")
    kept = (pathlib.Path(path + ".1").read_text() + pathlib.Path(path).read_text()).splitlines()
    assert kept[-1].startswith("line 29 ")
    assert [int(x.split()[1]) for x in kept] == list(range(int(kept[0].split()[1]), 30))


def test_master_logger_writes_kv_and_forwards_stdlib(tmp_path, capsys):
    """The structlog sink: key=value lines with bound fields; asyncssh warnings forwarded (not to
    stderr), its info dropped."""
    import logging
    from gahp.ssh import logfile
    path = str(tmp_path / "m.log")
    saved = logfile.SINK.file
    saved_loggers = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                         logging.getLogger(n).propagate) for n in ("gahp.ssh", "asyncssh")}
    try:
        logfile.setup(path, max_bytes=1 << 20)
        logfile.get_logger(target="u@h:22").bind(launch=7, gahp="blahpd", conn=3).info("launch")
        logging.getLogger("asyncssh").info("chatty")
        logging.getLogger("asyncssh").warning("something %s", "odd")
        logfile.SINK.file.close()
    finally:
        logfile.SINK.file = saved
        for n, (hs, lv, prop) in saved_loggers.items():
            lg = logging.getLogger(n)
            lg.handlers[:] = hs
            lg.setLevel(lv)
            lg.propagate = prop
    lines = pathlib.Path(path).read_text().splitlines()
    assert len(lines) == 2, lines
    f = _kv(lines[0])
    assert (f["level"], f["event"], f["target"], f["launch"], f["gahp"], f["conn"]) == \
        ("info", "launch", "u@h:22", "7", "blahpd", "3"), lines
    g = _kv(lines[1])
    assert (g["level"], g["event"], g["logger"]) == ("warning", "something odd", "asyncssh"), lines
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
