"""The shared-connection master: one per control path, serving every GAHP launch for that target.

Started by the first ``gahp-ssh`` launcher (``python -m gahp.ssh.master --daemon ...``). It opens
the SSH connection *before* listening, so that the launcher that started it can print the connect
error itself; then it accepts launchers on the control socket (see ``mux``), runs each GAHP on a
pooled connection with the launcher's own fds, and sends back the exit code.

* Pool: a connection takes sessions until the server refuses one with ChannelOpenError code 2
  ("open failed", OpenSSH's MaxSessions); that connection's limit is then what it holds, and the
  session is retried on another (or a new) connection.
* A lost connection ends its sessions with 255 (the launchers exit, the gridmanager restarts its
  GAHPs); new requests reconnect, backing off 1, 2, 4 ... 60 s after consecutive failures, and
  requests during a back-off get the last error at once.
* Exits after ``persist`` idle seconds, or on SIGTERM (ending every session).
* stdio is /dev/null and no inherited fd is kept (OpenSSH bz#1988: a daemon holding a caller's
  stderr makes readers wait for EOF until it exits). It logs to ``<control path>.log`` (structlog
  ``key=value`` lines, rotated at 1 MiB, see ``logfile``): connection events with ``target``, each
  launch's lines with ``launch``, ``target``, ``gahp`` and ``conn`` bound (grep ``launch=N``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import asyncssh

from gahp.ssh import args as _args
from gahp.ssh import connect as _connect
from gahp.ssh import logfile as _logfile
from gahp.ssh import mux
from gahp.ssh import session as _session

log = _logfile.get_logger()

OPEN_CONNECT_FAILED = 2
BACKOFF_MAX = 60.0
FIRST_MESSAGE_TIMEOUT = 30.0
STOP_GRACE = 5.0
MAX_OPEN_ATTEMPTS = 16


class Pooled:
    _ids = 0

    def __init__(self, conn: Any) -> None:
        Pooled._ids += 1
        self.id = Pooled._ids
        self.conn = conn
        self.sessions = 0
        self.limit: Optional[int] = None

    @property
    def alive(self) -> bool:
        state = self.conn.get_owner()
        return not (getattr(state, "closed", False) or self.conn.is_closed())

    def has_room(self) -> bool:
        return self.limit is None or self.sessions < self.limit

    def __repr__(self) -> str:
        return "conn#%d(sessions=%d, limit=%s)" % (self.id, self.sessions, self.limit)


class ConnectFailed(Exception):
    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class Master:
    def __init__(self, inv: Any, path: str) -> None:
        self.inv = inv
        self.path = path
        self.pool: List[Pooled] = []
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self.clients: Set["asyncio.Task[None]"] = set()
        self.active = 0
        self.stopping: Optional[asyncio.Event] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._idle: Optional[asyncio.TimerHandle] = None
        self._listener: Optional[socket.socket] = None
        self._sock_ino: Optional[int] = None
        self.ready_fd: Optional[int] = None
        self.log = _logfile.get_logger(pid=os.getpid(), target=inv.target)
        self._launches = 0
        self._conn_watchers: Set["asyncio.Task[None]"] = set()

    def tell(self, msg: Dict[str, Any]) -> None:
        """Report start-up success or failure to the launcher that spawned us (once)."""
        fd, self.ready_fd = self.ready_fd, None
        _tell(fd, msg)

    # --- connections ---------------------------------------------------------------------------

    async def _connect(self) -> Pooled:
        """A new pooled connection, honouring the back-off (ConnectFailed otherwise)."""
        now = time.monotonic()
        if self.failures and now < self.retry_at:
            raise ConnectFailed(self.last_error)
        try:
            conn = await _connect.connect(self.inv)
        except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError, _connect.KeyLoadError) as e:
            self.failures += 1
            delay = min(BACKOFF_MAX, 2.0 ** (self.failures - 1))
            self.retry_at = time.monotonic() + delay
            self.last_error = _connect.describe(e, self.inv)
            self.log.warning("connect failed", failures=self.failures, backoff=delay,
                             error=self.last_error)
            raise ConnectFailed(self.last_error) from None
        self.failures = 0
        p = Pooled(conn)
        self.pool.append(p)
        self.log.info("connected", conn=p.id, pool=len(self.pool))
        t = asyncio.get_running_loop().create_task(self._log_lost(p))
        self._conn_watchers.add(t)
        t.add_done_callback(self._conn_watchers.discard)
        return p

    async def _log_lost(self, p: Pooled) -> None:
        """One line when a pooled connection ends (``lost`` unless the master is stopping)."""
        try:
            await p.conn.wait_closed()
        except Exception:
            pass
        reason = getattr(p.conn.get_owner(), "lost_reason", None)
        if self.stopping is not None and self.stopping.is_set():
            self.log.info("connection closed", conn=p.id)
        else:
            self.log.warning("connection lost", conn=p.id, sessions=p.sessions, reason=reason)

    async def acquire(self, exclude: Set[int]) -> Pooled:
        """A connection with room for one more session (its count already raised)."""
        assert self._connect_lock is not None
        self.pool = [p for p in self.pool if p.alive]
        for p in self.pool:
            if p.id not in exclude and p.has_room():
                p.sessions += 1
                return p
        # One connect at a time: three launches arriving together share the new connection.
        async with self._connect_lock:
            self.pool = [p for p in self.pool if p.alive]
            for p in self.pool:
                if p.id not in exclude and p.has_room():
                    p.sessions += 1
                    return p
            p = await self._connect()
            p.sessions += 1
            return p

    def release(self, p: Pooled) -> None:
        p.sessions -= 1
        if not p.alive and p in self.pool:
            self.pool.remove(p)

    async def serve(self, inv: Any, fds: List[int], fwd: Optional[Tuple[str, int]],
                    logs: Optional[List[Any]] = None) -> Tuple[int, Optional[str]]:
        """Run one GAHP: (exit code, error line for the launcher or None).

        ``logs``: a one-item list holding the launch's bound logger; the connection id is bound
        into it (in place) once the session has a connection, for the caller's later lines.
        """
        logs = logs if logs is not None else [self.log]
        rlog = logs[0]
        tried: Set[int] = set()
        last = ""
        for _attempt in range(MAX_OPEN_ATTEMPTS):
            try:
                p = await self.acquire(tried)
            except ConnectFailed as e:
                rlog.warning("no connection", error=e.line)
                return _connect.EXIT_SSH, e.line
            clog = logs[0] = rlog.bind(conn=p.id)
            try:
                clog.info("session open", sessions=p.sessions, limit=p.limit)
                rc = await _session.run(p.conn, inv, fds, forward=fwd)
                return rc, None
            except _session.SessionOpenError as e:
                cause = e.cause
                last = e.line
                others = p.sessions - 1
                if not p.alive:
                    clog.info("connection lost while opening a session", error=e.line)
                    tried.add(p.id)
                    continue
                if (isinstance(cause, asyncssh.ChannelOpenError) and cause.code == OPEN_CONNECT_FAILED
                        and others >= 1):
                    p.limit = others if p.limit is None else min(p.limit, others)
                    self.log.info("limit learned", conn=p.id, limit=p.limit, reason=cause.reason)
                    clog.info("session refused: retrying on another connection", limit=p.limit)
                    tried.add(p.id)
                    continue
                clog.warning("session open failed", error=e.line)
                return _connect.EXIT_SSH, e.line
            finally:
                self.release(p)
        # connections that keep dying (or refusing) under us: give up rather than loop
        rlog.warning("giving up after %d session attempts" % MAX_OPEN_ATTEMPTS, error=last)
        return _connect.EXIT_SSH, last

    # --- clients -------------------------------------------------------------------------------

    async def _recv_first(self, sock: socket.socket) -> Tuple[Dict[str, Any], List[int], mux.MessageReader]:
        loop = asyncio.get_running_loop()
        reader = mux.MessageReader()
        fds: List[int] = []
        try:
            while True:
                try:
                    data, got = mux.recv_some(sock)
                except (BlockingIOError, InterruptedError):
                    ready = loop.create_future()
                    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
                    try:
                        await ready
                    finally:
                        loop.remove_reader(sock.fileno())
                    continue
                fds.extend(got)
                if not data:
                    raise mux.ProtocolError("client closed before its request")
                msgs = reader.feed(data)
                if msgs:
                    return msgs[0], fds, reader
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    async def _watch(self, sock: socket.socket, reader: mux.MessageReader) -> str:
        """Until the launcher goes away or asks us to stop: why."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(sock, 4096)
            except OSError:
                return "eof"
            if not data:
                return "eof"
            try:
                msgs = reader.feed(data)
            except mux.ProtocolError:
                return "eof"
            for m in msgs:
                if m.get("op") == "signal":
                    return "signal %s" % m.get("name")

    async def handle(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        fds: List[int] = []
        work: Optional["asyncio.Task[Tuple[int, Optional[str]]]"] = None
        watch: Optional["asyncio.Task[str]"] = None
        self._launches += 1
        rlog = self.log.bind(launch=self._launches)
        logs = [rlog]
        try:
            sock.setblocking(False)
            uid = mux.peer_uid(sock)
            if uid is not None and uid != os.getuid():
                rlog.warning("refused a client", uid=uid)
                return
            try:
                msg, fds, reader = await asyncio.wait_for(self._recv_first(sock), FIRST_MESSAGE_TIMEOUT)
            except (mux.ProtocolError, OSError, asyncio.TimeoutError) as e:
                rlog.warning("bad client", error=str(e))
                return
            if msg.get("op") != "exec" or len(fds) != 3 or not isinstance(msg.get("argv"), list):
                rlog.warning("bad request", op=msg.get("op"), fds=len(fds))
                await self._reply(sock, {"exit": 255, "err": "gahp-ssh: bad request to the control master"})
                return
            try:
                inv = _args.parse([str(a) for a in msg["argv"]])
            except (_args.UsageError, _args.HelpRequested) as e:
                rlog.warning("bad arguments", error=str(e))
                await self._reply(sock, {"exit": 1, "err": "gahp-ssh: %s" % e})
                return
            fwd = msg.get("fwd")
            fwd_t = (str(fwd[0]), int(fwd[1])) if fwd else None
            # From here on the launcher must not retry elsewhere: its GAHP is ours.
            await self._reply(sock, {"ok": True})
            rlog = logs[0] = rlog.bind(target=inv.target, gahp=inv.gahp)
            rlog.info("launch", fwd="%s:%d" % fwd_t if fwd_t else None)
            work = loop.create_task(self.serve(inv, fds, fwd_t, logs))
            watch = loop.create_task(self._watch(sock, reader))
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                logs[0].info("launcher gone: stopping its session", why=watch.result())
                work.cancel()
                try:
                    await work
                except asyncio.CancelledError:
                    pass
                rc, err = 255, None
            else:
                watch.cancel()
                rc, err = work.result()
            logs[0].info("session end", rc=rc, error=err)
            await self._reply(sock, {"exit": rc, "err": err})
        except asyncio.CancelledError:
            logs[0].info("master stopping: ending the session")
            # SIGTERM: asyncio.wait does not cancel what it waits for; the session must end first
            # (TERM to the remote process), then the launcher hears why.
            for t in (work, watch):
                if t is not None and not t.done():
                    t.cancel()
            if work is not None:
                await asyncio.wait({work}, timeout=STOP_GRACE)
            await self._reply(sock, {"exit": 255, "err": "gahp-ssh: %s: the control master was stopped"
                                     % self.inv.target})
            raise
        except Exception:
            logs[0].exception("client handler failed")
            await self._reply(sock, {"exit": 255, "err": "gahp-ssh: internal error in the control master "
                                     "(see %s.log)" % self.path})
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            sock.close()

    async def _reply(self, sock: socket.socket, msg: Dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(sock, mux.encode(msg)), 5)
        except (OSError, asyncio.TimeoutError, mux.ProtocolError):
            pass

    # --- lifecycle -----------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.active == 0 and self.stopping is not None and not self.stopping.is_set():
            self._idle = asyncio.get_running_loop().call_later(self.inv.persist, self._idle_exit)

    def _idle_exit(self) -> None:
        if self.active == 0 and self.stopping is not None:
            self.log.info("idle: exiting", persist=self.inv.persist)
            self.stopping.set()

    def _client_done(self, task: "asyncio.Task[None]") -> None:
        self.clients.discard(task)
        self.active -= 1
        self._arm_idle()

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                csock, _ = await loop.sock_accept(lsock)
            except OSError as e:
                self.log.warning("accept failed", error=str(e))
                await asyncio.sleep(0.1)
                continue
            self.active += 1
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            t = loop.create_task(self.handle(csock))
            self.clients.add(t)
            t.add_done_callback(self._client_done)

    def _listen(self) -> socket.socket:
        # The launcher holds <path>.lock while we start, so a leftover socket here is stale.
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(self.path)
        finally:
            os.umask(old)
        s.listen(128)
        s.setblocking(False)
        self._sock_ino = os.stat(self.path).st_ino
        return s

    def _unlink_own_socket(self) -> None:
        # Only our own: a successor master may already have bound the path.
        try:
            if self._sock_ino is not None and os.stat(self.path).st_ino == self._sock_ino:
                os.unlink(self.path)
        except OSError:
            pass

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._connect_lock = asyncio.Lock()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self._connect()
        except ConnectFailed as e:
            self.tell({"ok": False, "rc": _connect.EXIT_SSH, "err": e.line})
            return _connect.EXIT_SSH
        try:
            lsock = self._listen()
        except OSError as e:
            self.tell({"ok": False, "rc": _connect.EXIT_SSH,
                       "err": "gahp-ssh: cannot listen on %s: %s" % (self.path, e)})
            return _connect.EXIT_SSH
        self.tell({"ok": True, "pid": os.getpid()})
        self.log.info("listening", path=self.path, persist=self.inv.persist)
        accept = loop.create_task(self._accept_loop(lsock))
        self._arm_idle()
        await self.stopping.wait()
        # unlink first: a launcher arriving now starts a new master instead of finding us closing
        self._unlink_own_socket()
        accept.cancel()
        lsock.close()
        for t in list(self.clients):
            t.cancel()
        if self.clients:
            await asyncio.wait(set(self.clients), timeout=STOP_GRACE)
        for p in self.pool:
            p.conn.close()
        for p in self.pool:
            try:
                await asyncio.wait_for(p.conn.wait_closed(), 2)
            except (asyncio.TimeoutError, OSError, asyncssh.Error):
                pass
        self.log.info("exit")
        return 0


def _tell(fd: Optional[int], msg: Dict[str, Any]) -> None:
    if fd is None:
        return
    try:
        os.write(fd, json.dumps(msg).encode() + b"\n")
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def _absolutize(inv: Any) -> None:
    """The daemon runs in /; local paths given relative to the launcher's directory must survive."""
    if inv.key:
        inv.key = os.path.abspath(os.path.expanduser(inv.key))
    if inv.passfile:
        inv.passfile = os.path.abspath(os.path.expanduser(inv.passfile))
    if inv.known_hosts:
        inv.known_hosts = [os.path.abspath(os.path.expanduser(p)) for p in inv.known_hosts]
    if inv.ssh_config and inv.ssh_config.lower() != "none":
        inv.ssh_config = os.path.abspath(os.path.expanduser(inv.ssh_config))


def _daemonize(keep: int) -> None:
    """Second fork + setsid; stdio to /dev/null; every other fd but ``keep`` closed."""
    if os.fork() > 0:
        os._exit(0)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    try:
        maxfd = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        maxfd = 1024
    if keep >= 0:
        os.closerange(3, keep)
        os.closerange(keep + 1, maxfd)
    else:
        os.closerange(3, maxfd)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="gahp-ssh-master")
    ap.add_argument("--control-path", required=True)
    ap.add_argument("--ready-fd", type=int, default=-1)
    ap.add_argument("--daemon", action="store_true")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    ns = ap.parse_args(sys.argv[1:] if argv is None else argv)
    rest = ns.rest[1:] if ns.rest[:1] == ["--"] else ns.rest
    ready = ns.ready_fd if ns.ready_fd >= 0 else None
    try:
        inv = _args.parse(rest)
    except (_args.UsageError, _args.HelpRequested) as e:
        _tell(ready, {"ok": False, "rc": 1, "err": "gahp-ssh: %s" % e})
        return 1
    _absolutize(inv)
    if ns.daemon:
        _daemonize(ns.ready_fd)
        os.chdir("/")
    _logfile.setup(ns.control_path + ".log")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    master = Master(inv, ns.control_path)
    master.ready_fd = ready
    try:
        return asyncio.run(master.main())
    except Exception:
        log.exception("master failed", pid=os.getpid(), target=inv.target)
        master.tell({"ok": False, "rc": 255, "err": "gahp-ssh: control master failed (see %s.log)"
                     % ns.control_path})
        return 255


if __name__ == "__main__":
    sys.exit(main())
