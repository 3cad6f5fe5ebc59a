"""The control socket between ``gahp-ssh`` launchers and their shared master (no asyncssh here).

Protocol (AF_UNIX SOCK_STREAM, one GAHP per control connection, as OpenSSH's mux "passenger"):
newline-terminated JSON objects. The launcher's first message carries its fds 0, 1, 2 by
SCM_RIGHTS, so the master hands the GAHP's own pipes to the SSH channel and no byte of the GAHP
stream passes through the launcher::

    C->M  {"v": 1, "op": "exec", "argv": [...], "fwd": null | ["host", port]}  + fds [0, 1, 2]
    M->C  {"ok": true}                            (the request is taken: no retry elsewhere)
    C->M  {"op": "signal", "name": "TERM"}      (the launcher was told to stop)
    M->C  {"exit": rc, "err": null | "one line"}  then the master closes

EOF before ``ok`` means the master was going away (idle exit) and never saw the fds: the launcher
tries again with a fresh master.

The launcher keeps its own copies of the fds until it exits; EOF without an ``exit`` record means
the master died (exit 255, like ``ssh``'s "Control master terminated unexpectedly").

Imported by the launcher on every GAHP start, so it stays small and stdlib-only.
"""
from __future__ import annotations

import os
import stat

from .lean_json import dumps, loads

# The launcher imports this module on every GAHP start, so the import is kept to C modules:
# ``socket`` and ``json`` (each pulling in enum, re, functools, collections: ~8 ms together) are
# imported only where the master needs them (messages: lean_json). ``_socket`` is the C type ``socket.socket`` derives
# from; every function here accepts either.
try:
    import _socket
except ImportError:  # pragma: no cover - other Python builds
    import socket as _socket
# typing costs ~8 ms at start-up and the launcher runs once per GAHP: annotations only
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, Dict, List, Optional, Sequence, Tuple

try:
    # the builtin module: hashlib's OpenSSL binding costs ~3 ms on every GAHP start
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover - other Python builds
    from hashlib import sha256 as _sha256

VERSION = 1
MAX_MESSAGE = 256 * 1024   # an argv is small; a peer sending more is broken or hostile
MAX_FDS = 3
# sun_path is 108 bytes on Linux (104 on BSDs); OpenSSH hashes its ControlPath (%C) for the same reason.
MAX_SUN_PATH = 100


class ProtocolError(Exception):
    pass


def encode(msg: Dict[str, Any]) -> bytes:
    data = dumps(msg).encode("utf-8") + b"\n"
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message too long (%d bytes)" % len(data))
    return data


class MessageReader:
    """Splits a byte stream into JSON messages (sans-IO)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> List[Dict[str, Any]]:
        self._buf += data
        out = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                if len(self._buf) > MAX_MESSAGE:
                    raise ProtocolError("message too long")
                return out
            line = bytes(self._buf[:i])
            del self._buf[:i + 1]
            try:
                msg = loads(line.decode("utf-8"))
            except ValueError as e:
                raise ProtocolError("bad message: %s" % e) from None
            if not isinstance(msg, dict):
                raise ProtocolError("bad message: not an object")
            out.append(msg)

    @property
    def pending(self) -> int:
        return len(self._buf)


def send_msg(sock: socket.socket, msg: Dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Blocking send; the fds ride on the first byte of the message."""
    data = encode(msg)
    if fds:
        # socket.send_fds, without importing socket
        from array import array
        n = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", list(fds)))])
        data = data[n:]
    if data:
        sock.sendall(data)


def recv_some(sock: socket.socket, size: int = 65536) -> Tuple[bytes, List[int]]:
    """One recvmsg: (bytes, fds received with them). Unwanted fds beyond MAX_FDS are closed by the
    kernel's truncation (MSG_CTRUNC) and reported as an error by the caller's validation."""
    import socket
    data, fds, flags, _addr = socket.recv_fds(sock, size, MAX_FDS)
    if flags & getattr(socket, "MSG_CTRUNC", 0):
        for fd in fds:
            os.close(fd)
        raise ProtocolError("too many file descriptors in one message")
    return data, fds


def peer_uid(sock: socket.socket) -> Optional[int]:
    """The connecting process's uid (SO_PEERCRED, Linux), None where the platform lacks it."""
    import socket
    import struct
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


# --- where the socket lives ---------------------------------------------------------------------

def default_control_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".pyblahp", "ssh")


def ensure_private_dir(path: str) -> str:
    """Create ``path`` (and parents) with mode 0700 and insist it is ours and private.

    Anyone who can write there could plant a socket and receive a GAHP's pipes, so a directory
    owned by someone else, or writable by group/other, is refused rather than repaired (except
    for tightening the mode of our own directory).
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError("control directory %s is not a directory" % path)
    if st.st_uid != os.getuid():
        raise OSError("control directory %s is owned by uid %d, not by us (uid %d)"
                      % (path, st.st_uid, os.getuid()))
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def connection_key(inv: Any) -> str:
    """What makes two GAHP launches able to share a connection.

    Beyond (local uid, user, host, port, key) from the design, the pass file, known_hosts and ssh
    config are included: a master opened with laxer trust or other credentials must not serve a
    launch that asked for different ones.
    """
    parts = [str(os.getuid()), inv.user or "", inv.host, str(inv.port or ""),
             "" if inv.key is None else "k:" + inv.key,
             "" if inv.passfile is None else "p:" + inv.passfile,
             "\x1f".join(inv.known_hosts) if inv.known_hosts is not None else "",
             "" if inv.ssh_config is None else inv.ssh_config,
             "b" if inv.batchmode else "nb"]
    return "\x1e".join(parts)


def short_control_dir() -> str:
    """Where sockets go when the usual directory is too deep for sun_path."""
    return os.path.join("/tmp", "pyblahp-ssh-%d" % os.getuid())


def control_path(inv: Any, make_dir: bool = True) -> str:
    """The master's socket for ``inv``: ``<control dir>/m-<16 hex>`` (stable, short).

    When that is longer than sun_path allows (a deep HOME), the socket goes to
    ``/tmp/pyblahp-ssh-<uid>`` instead, with the intended directory hashed into the name so that
    distinct control directories still get distinct masters.
    """
    d = inv.control_dir or default_control_dir()
    d = os.path.abspath(os.path.expanduser(d))
    key = connection_key(inv)
    path = os.path.join(d, "m-" + _sha256(key.encode("utf-8")).hexdigest()[:16])
    if len(path.encode()) > MAX_SUN_PATH:
        d, key = short_control_dir(), key + "\x1d" + d
        path = os.path.join(d, "m-" + _sha256(key.encode("utf-8")).hexdigest()[:16])
        if len(path.encode()) > MAX_SUN_PATH:  # pragma: no cover - /tmp is short
            raise OSError("control path %s is longer than %d bytes" % (path, MAX_SUN_PATH))
    if make_dir:
        ensure_private_dir(d)
    return path
