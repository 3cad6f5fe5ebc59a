"""The gahp-ssh control-socket protocol: framing, fd passing, socket paths."""

import os
import shutil
import socket
import stat
import tempfile

import pytest

from gahp.ssh import args, lean_json, mux


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
    # Each of these costs 1-8 ms per GAHP start (enum/functools/collections come with re, socket,
    # signal and json); the launcher parses, hashes and talks JSON without them.
    heavy = ("asyncssh", "cryptography", "asyncio", "subprocess", "typing", "json", "re", "ipaddress",
             "shlex", "socket", "signal", "selectors", "enum", "functools", "collections", "hashlib",
             "struct", "fcntl", "select", "shutil", "tempfile", "contextlib", "warnings")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(mux.__file__))))
    env = dict(os.environ, PYTHONPATH=src)
    for argv in (["alice@login.example.edu:2222", "blahpd"], ["alice@[2001:db8::1]:22", "condor_ft-gahp"]):
        # import, parse and compute the control path, as a warm launch does before it connects
        code = ("import sys; import gahp.ssh.launcher as l; inv = l._args.parse(%r); "
                "l.mux.control_path(inv, make_dir=False); l.mux.encode({'argv': %r, 'op': 'exec'}); "
                "l.mux.MessageReader().feed(b'{\"ok\":true}\\n{\"err\":null,\"exit\":0}\\n'); "
                "l._args.gridmanager_address({'CONDOR_INHERIT': '1 <10.0.0.5:9618?x> 0'}); "
                "print(' '.join(m for m in %r if m in sys.modules))" % (argv, argv, heavy))
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, check=True,
                           universal_newlines=True)
        loaded = set(r.stdout.split())
        # ipaddress only for a bracketed (IPv6) host
        # ipaddress (with the functools it needs) only for a bracketed (IPv6) host
        if "[" in argv[0]:
            assert "ipaddress" in loaded and loaded <= {"ipaddress", "functools", "collections"}, loaded
        else:
            assert not loaded, loaded


def _messages(n, seed):
    import random
    rnd = random.Random(seed)
    texts = ["", "a", "ü", "\u2028", "\ud800", "\U0001f600", "\x00", "\n", "\"", "\\", "/", "\x7f",
             "$x", " ", "<h:1>"]
    scalars = [lambda: rnd.choice([True, False, None]),
               lambda: rnd.choice([0, -1, 1, 255, 2 ** 63, -2 ** 70, 10 ** 17, 10 ** 19]),
               lambda: "".join(rnd.choice(texts) for _ in range(rnd.randint(0, 4)))]
    for _ in range(n):
        msg = {}
        for _ in range(rnd.randint(0, 4)):
            key = rnd.choice(["v", "op", "argv", "fwd", "ok", "exit", "err", "ü", "\n", ""])
            if rnd.random() < 0.3:
                msg[key] = [rnd.choice(scalars)() for _ in range(rnd.randint(0, 3))]
            else:
                msg[key] = rnd.choice(scalars)()
        yield msg
    # shapes the hand-written path leaves to json
    yield from [{"a": 1.5}, {"a": {"b": 1}}, {"a": [[1]]}, {1: 2}, {"a": (1, 2)}, {"a": float("nan")},
                {True: None}, {"a": [1.0, -0.0]}]


def test_hand_written_json_matches_json():
    import json
    import re
    for msg in _messages(5000, 3):
        want = json.dumps(msg, separators=(",", ":"), sort_keys=True)
        assert lean_json.dumps(msg) == want, msg
        assert lean_json.loads(want) == json.loads(want), want
        if type(msg) is dict and all(type(k) is str and (type(v) is not float and type(v) is not dict)
                                     for k, v in msg.items()) and "[[" not in want and "." not in want \
                and not re.search("[0-9]{19}", want):   # longer integers are left to json
            assert lean_json._loads_compact(want) == json.loads(want), want   # no json on this path


@pytest.mark.parametrize("text", [
    "{}", "{ }", " {}", "{}\t", "{\"a\":1,}", "{\"a\":01}", "{\"a\":-}", "{\"a\":1e5}", "{\"a\":1.0}",
    "{\"a\":-0}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[]}",
    "{\"a\":[}", "{\"a\":\"\\ud800\"}", "{\"a\":\"x\ny\"}", "{\"a\":\"\\q\"}", "{\"a\":1}x",
    "{\"a\":1,\"a\":2}", "{\"a\"1}", "{a:1}", "{\"a\":NaN}", "{\"a\":-Infinity}", "\ufeff{}",
    "{\"a\":" + "9" * 30 + "}", "{\"a\":" + "9" * 5000 + "}", "[1]", "1", "\"s\"", "", "{\"a\":\"",
    "{\"a\":[1,2", "{\"a\"", "{\"", "{",
])
def test_loads_is_json_loads(text):
    import json
    try:
        want = ("ok", json.loads(text))
    except ValueError as e:
        want = ("err", type(e), str(e))
    try:
        got = ("ok", lean_json.loads(text))
    except ValueError as e:
        got = ("err", type(e), str(e))
    assert got == want
