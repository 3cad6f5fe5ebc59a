"""Open an asyncssh client connection the way remote_gahp's ``ssh`` would, and name its failures.

Differences from ``ssh -o BatchMode=yes`` that matter:

* known_hosts: ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts`` (asyncssh reads only the
  first by default); an unknown or changed host key fails, nothing is ever added (no TOFU).
* The key's passphrase is the first line of the pass file, read only when the key is encrypted;
  no ssh-agent is started (remote_gahp's agent replaced ``SSH_AUTH_SOCK``, so with a key given the
  agent is not consulted here either).
* ``ControlMaster``/``BatchMode``/``StrictHostKeyChecking`` in ~/.ssh/config are ignored by
  asyncssh; the rest (User, Port, IdentityFile, ProxyJump, ...) applies.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, Dict, List, Optional

import asyncssh

_log = logging.getLogger("gahp.ssh")

DEFAULT_KEY = "~/.ssh/bosco_key.rsa"
DEFAULT_PASSFILE = "~/.bosco/.pass"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
EXIT_SSH = 255


def quiet_asyncssh() -> None:
    """asyncssh logs through ``logging``; without a handler Python's last-resort handler would print
    its warnings on our stderr, which the gridmanager reads."""
    lg = logging.getLogger("asyncssh")
    if not lg.handlers:
        lg.addHandler(logging.NullHandler())
    lg.propagate = False


class KeyLoadError(Exception):
    """The client key could not be loaded; the message is the one-line reason."""


class ConnectionState(asyncssh.SSHClient):
    """Remembers why the connection ended (``connection_lost`` is the only place that says)."""

    def __init__(self) -> None:
        self.lost_reason: Optional[str] = None
        self.closed = False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        if exc is not None:
            self.lost_reason = str(exc) or type(exc).__name__


def key_path(inv: Any) -> Optional[str]:
    """The key file to use, or None for asyncssh's defaults (agent, ~/.ssh/id_*, IdentityFile).

    As remote_gahp (``[ -f "$KEY" ]``), a key file that does not exist, given or default, means
    the defaults; the authentication error then names the missing file.
    """
    if inv.key == "":
        return None
    p = os.path.expanduser(DEFAULT_KEY if inv.key is None else inv.key)
    return p if os.path.isfile(p) else None


def pass_path(inv: Any) -> Optional[str]:
    if inv.passfile == "":
        return None
    if inv.passfile is None:
        p = os.path.expanduser(DEFAULT_PASSFILE)
        return p if os.path.isfile(p) else None
    return os.path.expanduser(inv.passfile)


def _read_passphrase(inv: Any, key: str) -> str:
    path = pass_path(inv)
    if path is None:
        raise KeyLoadError("key %s is encrypted and no passphrase file was given" % key)
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError as e:
        raise KeyLoadError("cannot read passphrase file %s: %s" % (path, e.strerror or e)) from None
    # condor_ssh_start typed the file's whole first line; the installer wrote it with ``echo``.
    return first.rstrip(b"\r\n").decode("utf-8", "surrogateescape")


def load_client_key(inv: Any, path: str) -> Any:
    """The private key at ``path``; the pass file is read only when the key turns out encrypted."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KeyLoadError("cannot read key %s: %s" % (path, e.strerror or e)) from None
    try:
        return asyncssh.import_private_key(data)
    except asyncssh.KeyImportError as e:
        if "assphrase" not in str(e):
            raise KeyLoadError("cannot load key %s: %s" % (path, e)) from None
    passphrase = _read_passphrase(inv, path)
    try:
        return asyncssh.import_private_key(data, passphrase)
    except (asyncssh.KeyEncryptionError, asyncssh.KeyImportError) as e:
        if "bcrypt" in str(e):
            raise KeyLoadError("key %s: encrypted OpenSSH key needs the bcrypt module (%s)"
                               % (path, e)) from None
        if "ncorrect passphrase" in str(e) or "nable to decrypt" in str(e):
            raise KeyLoadError("key %s: incorrect passphrase (from %s)" % (path, pass_path(inv))) from None
        raise KeyLoadError("cannot load key %s: %s" % (path, e)) from None


def known_hosts_files(inv: Any) -> List[str]:
    if inv.known_hosts:
        return [os.path.expanduser(p) for p in inv.known_hosts]
    return [p for p in (os.path.expanduser(q) for q in DEFAULT_KNOWN_HOSTS) if os.path.isfile(p)]


def options(inv: Any) -> Dict[str, Any]:
    """Keyword arguments for ``asyncssh.connect`` (may raise KeyLoadError)."""
    opts: Dict[str, Any] = {"host": inv.host, "client_factory": ConnectionState,
                            "connect_timeout": inv.connect_timeout,
                            "login_timeout": inv.connect_timeout}
    files = known_hosts_files(inv)
    for f in files:
        if not os.access(f, os.R_OK):
            raise KeyLoadError("cannot read known_hosts file %s" % f)
    # b"": an empty trust set (asyncssh would otherwise fall back to its own defaults)
    opts["known_hosts"] = files if files else b""
    if inv.user:
        opts["username"] = inv.user
    if inv.port:
        opts["port"] = inv.port
    key = key_path(inv)
    if key is not None:
        opts["client_keys"] = [load_client_key(inv, key)]
        opts["agent_path"] = None
    if inv.batchmode:
        opts["password_auth"] = False
        opts["kbdint_auth"] = False
    if inv.keepalive and inv.keepalive > 0:
        opts["keepalive_interval"] = inv.keepalive
        opts["keepalive_count_max"] = 3
    if inv.ssh_config is None:
        pass  # asyncssh's default: ~/.ssh/config when readable
    elif inv.ssh_config.lower() == "none":
        opts["config"] = []
    else:
        opts["config"] = [os.path.expanduser(inv.ssh_config)]
    return opts


async def connect(inv: Any) -> "asyncssh.SSHClientConnection":
    quiet_asyncssh()
    opts = options(inv)
    host = opts.pop("host")
    # connect_timeout covers TCP + key exchange + auth in asyncssh; the outer wait_for is a
    # backstop for a proxy command or DNS that ignores it.
    return await asyncio.wait_for(asyncssh.connect(host, **opts), inv.connect_timeout + 5)


def _seconds(v: float) -> str:
    return ("%d" % v) if float(v).is_integer() else ("%g" % v)


def describe(exc: BaseException, inv: Any) -> str:
    """One line for the gridmanager's log (it keeps the last 4 stderr lines)."""
    head = "gahp-ssh: %s: " % inv.target
    text = str(exc).strip().replace("\n", " ")
    if isinstance(exc, KeyLoadError):
        return head + text
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        files = known_hosts_files(inv)
        where = ", ".join(files) if files else "(no known_hosts file found)"
        return head + ("host key verification failed (the key offered by the server is not in "
                       "known_hosts %s, or it changed: %s)" % (where, text))
    if isinstance(exc, asyncssh.PermissionDenied):
        key = key_path(inv)
        tried = ("tried key %s" % key) if key else "tried the agent and the default keys"
        if key is None and inv.key:
            tried += "; key %s does not exist" % inv.key
        return head + "authentication failed (%s): %s" % (tried, text)
    if isinstance(exc, ConnectionRefusedError):
        return head + "connection refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return head + "connection timed out after %s s" % _seconds(inv.connect_timeout)
    if isinstance(exc, asyncssh.ConnectionLost):
        return head + "the connection was lost (%s)" % text if text else head + "the connection was lost"
    if isinstance(exc, socket.gaierror):
        return head + "cannot resolve host name: %s" % (exc.strerror or text)
    if isinstance(exc, asyncssh.ChannelOpenError):
        return head + "the server refused the session (code %d: %s)" % (exc.code, exc.reason)
    if isinstance(exc, asyncssh.ChannelListenError):
        return head + "Error: remote port forwarding failed (%s)" % text
    if isinstance(exc, asyncssh.DisconnectError):
        return head + "disconnected: %s" % text
    if isinstance(exc, OSError):
        return head + (exc.strerror or text or type(exc).__name__)
    return head + "%s: %s" % (type(exc).__name__, text) if text else head + type(exc).__name__
