"""The gahp-ssh control-socket protocol: framing, fd passing, socket paths."""

import os
import shutil
import socket
import stat
import tempfile

import pytest

from gahp.ssh import args, mux


def inv_for(*argv, control_dir=None):
    inv = args.parse(list(argv) + ["blahpd"])
    inv.control_dir = control_dir
    return inv


def test_framing_round_trip_in_pieces():
    msgs = [{"op": "exec", "argv": ["a b", "ü", "$x"], "fwd": ["10.0.0.5", 9618], "v": 1},
            {"exit": 255, "err": "gahp-ssh: h: connection refused"}, {}]
    data = b"".join(mux.encode(m) for m in msgs)
    r = mux.MessageReader()
    got = []
    for i in range(len(data)):
        got += r.feed(data[i:i + 1])
    assert got == msgs
    assert r.pending == 0
    assert all(mux.encode(m).count(b"\n") == 1 for m in msgs)


@pytest.mark.parametrize("bad", [b"[1,2]\n", b"not json\n", b"\xff\n"])
def test_framing_rejects_garbage(bad):
    with pytest.raises(mux.ProtocolError):
        mux.MessageReader().feed(bad)


def test_framing_limits_line_length():
    r = mux.MessageReader()
    with pytest.raises(mux.ProtocolError):
        r.feed(b"x" * (mux.MAX_MESSAGE + 1))
    with pytest.raises(mux.ProtocolError):
        mux.encode({"argv": ["x" * mux.MAX_MESSAGE]})


def test_fd_passing_over_socketpair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipes = [os.pipe() for _ in range(3)]
    try:
        # the "launcher" sends the write ends; the "master" writes through what it received
        mux.send_msg(a, {"op": "exec", "argv": ["h", "blahpd"]}, fds=[w for _, w in pipes])
        data, fds = mux.recv_some(b)
        assert len(fds) == 3
        assert mux.MessageReader().feed(data) == [{"op": "exec", "argv": ["h", "blahpd"]}]
        for i, fd in enumerate(fds):
            os.write(fd, b"via %d\n" % i)
            os.close(fd)
        for i, (r, w) in enumerate(pipes):
            os.close(w)
            assert os.read(r, 100) == b"via %d\n" % i
            assert os.read(r, 100) == b""  # every copy of the write end is closed: EOF
    finally:
        a.close()
        b.close()
        for r, _ in pipes:
            os.close(r)


def test_peer_uid_is_ours():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert mux.peer_uid(b) in (os.getuid(), None)


def test_control_path_short_stable_distinct(tmp_path):
    d = str(tmp_path / "ctl")
    p1 = mux.control_path(inv_for("alice@host.example.org:2222", control_dir=d))
    p2 = mux.control_path(inv_for("alice@host.example.org:2222", control_dir=d))
    assert p1 == p2
    assert os.path.dirname(p1) == d
    assert len(os.path.basename(p1)) == 18
    others = {mux.control_path(inv_for(*a, control_dir=d)) for a in (
        ["bob@host.example.org:2222"], ["alice@host.example.org"], ["alice@other.example.org:2222"],
        ["--rgahp-key", "/k", "alice@host.example.org:2222"],
        ["--known-hosts", "/kh", "alice@host.example.org:2222"])}
    assert p1 not in others and len(others) == 5
    # the GAHP and its arguments do not matter: blahpd and the ft-gahp share the master
    ft = args.parse(["alice@host.example.org:2222", "condor_ft-gahp"])
    ft.control_dir = d
    assert mux.control_path(ft) == p1


def test_control_path_default_under_home(monkeypatch):
    home = tempfile.mkdtemp(prefix="gsh-", dir="/tmp")  # pytest's tmp_path may be too deep
    try:
        monkeypatch.setenv("HOME", home)
        p = mux.control_path(inv_for("host"))
        assert p.startswith(os.path.join(home, ".pyblahp", "ssh") + "/m-")
    finally:
        shutil.rmtree(home)
    monkeypatch.setenv("HOME", "/tmp/" + "h" * 100)
    assert len(mux.control_path(inv_for("host"), make_dir=False)) < mux.MAX_SUN_PATH


def test_control_path_too_long_goes_to_tmp(tmp_path):
    deep1 = str(tmp_path / ("d" * 120))
    deep2 = str(tmp_path / ("e" * 120))
    p1 = mux.control_path(inv_for("host", control_dir=deep1), make_dir=False)
    p2 = mux.control_path(inv_for("host", control_dir=deep2), make_dir=False)
    assert os.path.dirname(p1) == mux.short_control_dir() == os.path.dirname(p2)
    assert p1 != p2 and len(p1) < mux.MAX_SUN_PATH
    assert p1 == mux.control_path(inv_for("host", control_dir=deep1), make_dir=False)
    assert not os.path.exists(deep1)


def test_control_dir_private(tmp_path):
    d = tmp_path / "a" / "b"
    mux.control_path(inv_for("host", control_dir=str(d)))
    assert stat.S_IMODE(os.stat(str(d)).st_mode) == 0o700
    os.chmod(str(d), 0o777)
    mux.ensure_private_dir(str(d))  # ours: tightened
    assert stat.S_IMODE(os.stat(str(d)).st_mode) == 0o700


def test_control_dir_of_someone_else_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to make a directory owned by someone else")
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(str(d), 65534, 65534)
    with pytest.raises(OSError, match="owned by uid 65534"):
        mux.ensure_private_dir(str(d))


def test_control_dir_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OSError):
        mux.ensure_private_dir(str(f))


def test_launcher_shared_path_stays_light():
    """A GAHP start through a running master must not pay for asyncssh (or typing/subprocess)."""
    import subprocess
    import sys
    code = ("import sys; import gahp.ssh.launcher; "
            "print(' '.join(m for m in ('asyncssh', 'cryptography', 'asyncio', 'subprocess', 'typing') "
            "if m in sys.modules))")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(mux.__file__))))
    env = dict(os.environ, PYTHONPATH=src)
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, check=True,
                       universal_newlines=True)
    heavy = set(r.stdout.split())
    assert not heavy & {"asyncssh", "cryptography", "asyncio", "subprocess"}, heavy
