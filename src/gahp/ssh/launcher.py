"""``gahp-ssh``: remote_gahp's drop-in, started by the gridmanager once per GAHP.

Shared path (default): hand fds 0, 1, 2 to the master for this target over its control socket
(starting the master when there is none) and wait for the GAHP's exit code. This path imports
no asyncssh, so a launch that reuses a running master costs little more than a Python start.
Direct path (``--no-share``, or no master to be had): connect and run the session in this process.

Exit codes as ``ssh``: the GAHP's own status, 255 for SSH-level failures, 1 for usage errors.
"""
from __future__ import annotations

import errno
import os
import sys
import time

# The launcher runs once per GAHP and a warm start is little more than this import: the Python
# wrappers ``socket`` and ``signal`` (enum, functools, collections: ~4 ms) are replaced by their C
# cores, json/typing/re are not imported at all (tests/unit/test_ssh_mux.py guards the list).
try:
    import _signal as _sig
    import _socket
except ImportError:  # pragma: no cover - other Python builds
    import signal as _sig
    import socket as _socket
TYPE_CHECKING = False
if TYPE_CHECKING:
    from socket import socket
    from typing import Any, Dict, List, Optional, Tuple

from gahp.ssh import args as _args
from gahp.ssh import mux

EXIT_SSH = 255
SPAWN_SLACK = 15.0   # beyond the connect timeout, for the master's own start-up


def _err(line: str) -> None:
    try:
        os.write(2, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


# --- reverse GAHP -------------------------------------------------------------------------------

def _rvgahp(inv: Any) -> int:
    import shutil
    import subprocess
    path = None
    try:
        r = subprocess.run(["condor_config_val", "SBIN"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        sbin = r.stdout.strip()
        if r.returncode == 0 and sbin:
            path = os.path.join(sbin, "rvgahp_client")
    except (OSError, subprocess.SubprocessError):
        pass
    if path is None or not os.access(path, os.X_OK):
        path = shutil.which("rvgahp_client") or path
    try:
        if path is None:
            raise OSError("rvgahp_client not found")
        os.execv(path, [path, inv.rvgahp_socket, inv.gahp])
    except OSError:
        pass
    _err("Failed to run rvgahp_client")
    return 1


# --- the shared master --------------------------------------------------------------------------

def _try_connect(path: str) -> Optional[socket]:
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _package_root() -> str:
    import gahp
    return os.path.dirname(os.path.dirname(os.path.abspath(gahp.__file__)))


def _spawn_master(argv: List[str], path: str, timeout: float) -> Dict[str, Any]:
    """Start the master detached and wait for its readiness record (or its error)."""
    import select
    import subprocess
    r, w = os.pipe()
    env = dict(os.environ)
    root = _package_root()
    pp = env.get("PYTHONPATH", "")
    if root not in pp.split(os.pathsep):
        env["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
    cmd = [sys.executable, "-m", "gahp.ssh.master", "--daemon", "--control-path", path,
           "--ready-fd", str(w), "--"] + list(argv)
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             pass_fds=(w,), close_fds=True, start_new_session=True, env=env)
    except OSError as e:
        os.close(r)
        os.close(w)
        return {"ok": False, "spawn": True, "err": "cannot start the control master: %s" % e}
    os.close(w)
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"ok": False, "spawn": True, "err": "the control master did not start in %g s" % timeout}
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        try:
            p.wait(timeout=5)  # the intermediate process exits at once (double fork)
        except subprocess.TimeoutExpired:
            pass
    import json
    try:
        msg = json.loads(data.split(b"\n", 1)[0].decode("utf-8"))
        if isinstance(msg, dict):
            return msg
    except ValueError:
        pass
    return {"ok": False, "spawn": True, "err": "the control master exited during start-up (see %s.log)" % path}


def _master_socket(inv: Any, argv: List[str], path: str) -> Tuple[Optional[socket], Optional[Dict[str, Any]]]:
    """(socket, None) connected to a running master, or (None, failure record)."""
    s = _try_connect(path)
    if s is not None:
        return s, None
    import fcntl
    try:
        lock = open(path + ".lock", "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError as e:
        return None, {"ok": False, "spawn": True, "err": "cannot lock %s.lock: %s" % (path, e)}
    try:
        s = _try_connect(path)   # another launcher may have started it meanwhile
        if s is not None:
            return s, None
        if os.path.lexists(path):
            try:
                os.unlink(path)  # stale: nothing accepts there, and we hold the lock
            except OSError:
                pass
        msg = _spawn_master(argv, path, inv.connect_timeout + SPAWN_SLACK)
        if not msg.get("ok"):
            return None, msg
        s = _try_connect(path)
        if s is None:
            return None, {"ok": False, "spawn": True, "err": "the control master is not reachable at %s" % path}
        return s, None
    finally:
        lock.close()  # releases the flock


class _Stop(Exception):
    pass


class _Retry(Exception):
    pass


def _shared(inv: Any, argv: List[str], fwd: Optional[Tuple[str, int]]) -> Optional[int]:
    """Run through the master; None when no master could be had (the caller goes direct)."""
    try:
        path = mux.control_path(inv)
    except OSError as e:
        _err("gahp-ssh: not sharing the connection: %s" % e)
        return None
    for _attempt in range(3):
        try:
            return _through_master(inv, argv, fwd, path)
        except _Retry:
            time.sleep(0.05)
    _err("gahp-ssh: not sharing the connection: the control master keeps closing")
    return None


def _through_master(inv: Any, argv: List[str], fwd: Optional[Tuple[str, int]], path: str) -> Optional[int]:
    sock, failure = _master_socket(inv, argv, path)
    if sock is None:
        assert failure is not None
        if failure.get("spawn"):
            _err("gahp-ssh: not sharing the connection: %s" % failure.get("err"))
            return None
        _err(str(failure.get("err") or "gahp-ssh: %s: the control master failed" % inv.target))
        return int(failure.get("rc", EXIT_SSH))

    def on_signal(signum: int, frame: Any) -> None:
        try:
            sock.send(mux.encode({"op": "signal", "name": "TERM"}), _socket.MSG_DONTWAIT)
        except OSError:
            pass
        raise _Stop()

    try:   # _socket.socket has no context manager
        try:
            for sig in (_sig.SIGTERM, _sig.SIGHUP, _sig.SIGINT):
                _sig.signal(sig, on_signal)
            try:
                mux.send_msg(sock, {"v": mux.VERSION, "op": "exec", "argv": list(argv),
                                    "fwd": list(fwd) if fwd else None}, fds=[0, 1, 2])
            except OSError as e:
                _err("gahp-ssh: cannot talk to the control master: %s" % e)
                return None
            reader = mux.MessageReader()
            taken = False
            while True:
                try:
                    data = sock.recv(4096)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    data = b""
                if not data:
                    if not taken:
                        raise _Retry()
                    _err("gahp-ssh: %s: control master terminated unexpectedly" % inv.target)
                    return EXIT_SSH
                try:
                    msgs = reader.feed(data)
                except mux.ProtocolError as e:
                    _err("gahp-ssh: bad reply from the control master: %s" % e)
                    return EXIT_SSH
                for m in msgs:
                    if m.get("ok"):
                        taken = True
                    if "exit" in m:
                        if m.get("err"):
                            _err(str(m["err"]))
                        return int(m["exit"])
        except _Stop:
            return EXIT_SSH
    finally:
        sock.close()


# --- in this process ----------------------------------------------------------------------------

def _direct(inv: Any, fwd: Optional[Tuple[str, int]]) -> int:
    import asyncio
    import signal

    from gahp.ssh import connect as _connect
    from gahp.ssh import session as _session

    async def run() -> int:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.add_signal_handler(sig, me.cancel)
        conn = None
        try:
            try:
                conn = await _connect.connect(inv)
            except (OSError, asyncio.TimeoutError, ValueError, _connect.KeyLoadError,
                    _connect.asyncssh.Error) as e:
                _err(_connect.describe(e, inv))
                return EXIT_SSH
            try:
                return await _session.run(conn, inv, (0, 1, 2), forward=fwd)
            except _session.SessionOpenError as e:
                _err(e.line)
                return EXIT_SSH
        except asyncio.CancelledError:
            return EXIT_SSH
        finally:
            if conn is not None:
                conn.close()
                try:
                    await asyncio.wait_for(conn.wait_closed(), 2)
                except (asyncio.TimeoutError, OSError, asyncio.CancelledError):
                    pass

    return asyncio.run(run())


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        inv = _args.parse(argv)
    except _args.HelpRequested:
        _err(_args.usage())
        return 0
    except _args.UsageError as e:
        for note in e.notes:
            _err("gahp-ssh: %s" % note)
        _err("gahp-ssh: %s" % e)
        _err(_args.usage())
        return 1
    for w in inv.warnings:
        _err("gahp-ssh: %s" % w)
    if inv.rvgahp_socket:
        return _rvgahp(inv)
    fwd = None
    if inv.is_ft:
        host, port, warning = _args.gridmanager_address(os.environ)
        if warning:
            _err(warning)
        fwd = (host, port)
    if inv.share:
        rc = _shared(inv, argv, fwd)
        if rc is not None:
            return rc
    return _direct(inv, fwd)


if __name__ == "__main__":
    sys.exit(main())
