"""Run one GAHP over one asyncssh connection, wired to a launcher's stdin/stdout/stderr fds.

stdin and stderr go to asyncssh as fds (it owns and closes what it is given, so it gets dups);
stdout is read here and passed through the BannerGate, so that what a login shell prints before
``$GahpVersion`` is withheld from the gridmanager and reported on stderr in one line.

Used by the master (fds received over the control socket) and by the launcher's in-process
fallback (its own 0, 1, 2). Either way the caller keeps its fds; everything opened here is closed
here.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import random
from typing import Any, Callable, List, Optional, Sequence, Tuple

import asyncssh

from gahp.ssh import args as _args
from gahp.ssh.banner import BannerGate
from gahp.ssh.connect import EXIT_SSH, describe

NOISE_PREVIEW = 200
READ_SIZE = 65536
FORWARD_TRIES = 3


class SessionOpenError(Exception):
    """The session could not be started; ``cause`` is the asyncssh error, ``line`` its description."""

    def __init__(self, cause: BaseException, line: str) -> None:
        super().__init__(line)
        self.cause = cause
        self.line = line


async def write_all(fd: int, data: bytes) -> None:
    """Write everything to a possibly non-blocking fd without blocking the event loop."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except (BlockingIOError, InterruptedError):
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & os.O_NONBLOCK:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _save_flags(fds: Sequence[int]) -> List[Tuple[int, int]]:
    saved = []
    for fd in fds:
        try:
            saved.append((fd, fcntl.fcntl(fd, fcntl.F_GETFL)))
        except OSError:
            pass
    return saved


def _restore_flags(saved: List[Tuple[int, int]]) -> None:
    # asyncssh and we set O_NONBLOCK on the shared open file descriptions; OpenSSH's mux master
    # restores the flags too, so that whoever else holds those descriptions is not surprised.
    for fd, flags in saved:
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except OSError:
            pass


def noise_line(count: int, preview: bytes) -> str:
    return ("gahp-ssh: the remote login shell printed %d bytes before the GAHP banner (not passed on): %r\n"
            % (count, preview[:NOISE_PREVIEW].decode("utf-8", "replace")))


async def open_forward(conn: Any, host: str, port: int) -> Any:
    """``ssh -R 0:host:port`` bound to the remote loopback; random ports if port 0 is refused."""
    try:
        return await conn.forward_remote_port("localhost", 0, host, port)
    except asyncssh.ChannelListenError:
        pass
    last = 0
    for _ in range(FORWARD_TRIES):
        last = random.randint(32768, 65535)
        try:
            return await conn.forward_remote_port("localhost", last, host, port)
        except asyncssh.ChannelListenError:
            continue
    raise asyncssh.ChannelListenError("remote port forwarding failed for listen port %d" % last)


async def run(conn: Any, inv: Any, fds: Sequence[int], forward: Optional[Tuple[str, int]] = None,
              on_noise: Optional[Callable[[str], None]] = None, command: Optional[str] = None) -> int:
    """Run ``inv``'s GAHP on ``conn`` with ``fds`` = (stdin, stdout, stderr); the exit code.

    Raises SessionOpenError when the session or its forward cannot be set up (nothing was written
    to the fds then, so the caller may retry elsewhere); once the GAHP runs, SSH failures become
    exit 255 with a line on stderr. Cancelling the task sends TERM to the remote process and
    closes the channel.
    """
    stdin_fd, stdout_fd, stderr_fd = fds
    saved = _save_flags(fds)
    mine = _Fds()
    err_fd = mine.add(os.dup(stderr_fd))
    out_fd = mine.add(os.dup(stdout_fd))
    listener = None
    proc = None
    handed: List[int] = []
    try:
        _set_nonblocking(err_fd)
        _set_nonblocking(out_fd)
        if forward is not None:
            try:
                listener = await open_forward(conn, forward[0], forward[1])
            except (asyncssh.Error, asyncssh.ChannelListenError, OSError) as e:
                raise SessionOpenError(e, describe(e, inv)) from None
        handed = [os.dup(stdin_fd), os.dup(stderr_fd)]
        cmd = command if command is not None else _args.remote_command(inv)
        try:
            proc = await conn.create_process(cmd, stdin=handed[0], stdout=asyncssh.PIPE,
                                             stderr=handed[1], encoding=None)
        except (asyncssh.Error, OSError) as e:
            raise SessionOpenError(e, describe(e, inv)) from None
        handed = []  # asyncssh owns them now
        if listener is not None:
            await write_all(err_fd, ("Allocated port %d for remote forward to %s:%d\n"
                                     % (listener.get_port(), _fmt_host(forward[0]), forward[1])).encode())
        return await _pump(proc, conn, inv, mine, out_fd, err_fd, on_noise)
    except asyncio.CancelledError:
        if proc is not None:
            try:
                proc.send_signal("TERM")
            except (asyncssh.Error, OSError, AttributeError):
                pass
            proc.close()
            try:
                await asyncio.wait_for(proc.wait_closed(), 2)
            except (asyncio.TimeoutError, asyncio.CancelledError, asyncssh.Error, OSError):
                # asyncssh may still have the pipes registered: blocking mode would stall the loop
                saved = []
        raise
    finally:
        for fd in handed:
            os.close(fd)
        mine.close_all()
        if listener is not None:
            listener.close()
        _restore_flags(saved)


class _Fds:
    """Our own dups, each closed exactly once (a second close could hit a reused number)."""

    def __init__(self) -> None:
        self._open: List[int] = []

    def add(self, fd: int) -> int:
        self._open.append(fd)
        return fd

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.remove(fd)
            try:
                os.close(fd)
            except OSError:
                pass

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)


def _fmt_host(host: str) -> str:
    return "[%s]" % host if ":" in host else host


async def _pump(proc: Any, conn: Any, inv: Any, mine: _Fds, out_fd: int, err_fd: int,
                on_noise: Optional[Callable[[str], None]]) -> int:
    gate = BannerGate()
    noise = bytearray()
    reported = False
    lost: Optional[str] = None
    reader_gone = False

    async def report() -> None:
        nonlocal reported
        reported = True
        count = len(noise) + gate.dropped
        if not count:
            return
        line = noise_line(count, bytes(noise))
        if on_noise is not None:
            on_noise(line)
        else:
            await write_all(err_fd, line.encode("utf-8", "replace"))

    while True:
        try:
            data = await proc.stdout.read(READ_SIZE)
        except (asyncssh.Error, OSError) as e:
            lost = str(e) or type(e).__name__
            break
        if not data:
            break
        passed, withheld = gate.feed(data)
        noise += withheld
        if gate.seen and not reported:
            await report()
        if passed and not reader_gone:
            try:
                await write_all(out_fd, passed)
            except OSError:
                # The gridmanager closed our stdout: nobody will read the GAHP any more.
                reader_gone = True
                try:
                    proc.send_signal("TERM")
                except (asyncssh.Error, OSError):
                    pass
                proc.close()
    noise += gate.eof()
    if not reported:
        await report()
    mine.close(out_fd)  # the reader sees EOF as soon as the remote side closed stdout
    await proc.wait_closed()
    state = conn.get_owner() if hasattr(conn, "get_owner") else None
    if proc.exit_status is None and proc.exit_signal is None:
        reason = lost or getattr(state, "lost_reason", None)
        if reader_gone:
            return EXIT_SSH
        msg = "gahp-ssh: %s: the connection was lost" % inv.target
        if reason:
            msg += " (%s)" % reason
        await _best_effort(err_fd, msg + "\n")
        return EXIT_SSH
    if proc.exit_signal is not None:
        name = proc.exit_signal[0]
        await _best_effort(err_fd, "gahp-ssh: %s: the remote GAHP was killed by signal %s\n" % (inv.target, name))
        return EXIT_SSH
    return int(proc.exit_status) & 0xFF


async def _best_effort(fd: int, text: str) -> None:
    try:
        await write_all(fd, text.encode("utf-8", "replace"))
    except OSError:
        pass
