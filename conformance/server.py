"""A GAHP server under test: a child process on pipes, read line by line with deadlines (trio)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import List, Optional, Sequence, Tuple

import trio

# the gridmanager's read buffer is 1024 * 500 bytes and it ASSERTs a line never fills it
CLIENT_LINE_CAP = 1024 * 500


class ServerClosed(Exception):
    """The server's stdout reached EOF."""


class LineTooLong(Exception):
    pass


class Transcript:
    """Everything exchanged, with times (seconds since the runner started this session)."""

    def __init__(self) -> None:
        self.events: List[Tuple[float, str, bytes]] = []   # (t, ">" | "<" | "!" | "=", bytes)

    def add(self, t: float, kind: str, data: bytes) -> None:
        self.events.append((t, kind, data))

    def tail(self, n: int = 12) -> List[str]:
        shown = [e for e in self.events if e[1] in "<>="][-n:]
        return ["%8.3f %s %s" % (t, k, visible(d)) for t, k, d in shown]


def visible(data: bytes) -> str:
    """A line as text with CR, LF and other control bytes made visible (``visible_text``)."""
    return visible_text(data.decode("utf-8", "surrogateescape"))


# A CR is shown as \r, so a line holding a backslash and an r would look the same. Only such
# backslashes are doubled -- a run of them just before r, n, x or a byte shown as an escape --
# so that GAHP's own escapes (S Async\ mode\ on, a\\ b) read as they are on the wire.
_ESCAPED = "\x00-\x1f\udc80-\udcff"   # control bytes and bytes that are not UTF-8 (surrogateescape)
_BEFORE_ESCAPE = re.compile(r"\\+(?=[rnx%s])" % _ESCAPED)
_CONTROL = re.compile("[%s]" % _ESCAPED)


def visible_text(text: str) -> str:
    text = _BEFORE_ESCAPE.sub(lambda m: m.group(0) * 2, text)
    return _CONTROL.sub(_escape, text)


def _escape(m: "re.Match[str]") -> str:
    ch = m.group(0)
    return {"\r": "\\r", "\n": "\\n"}.get(ch) or "\\x%02x" % (ord(ch) & 0xFF)


class ServerProcess:
    def __init__(self, argv: Sequence[str], env: Optional[dict], cwd: Optional[str], transcript: Transcript,
                 clock, line_cap: int = CLIENT_LINE_CAP) -> None:
        self.argv, self.env, self.cwd = list(argv), env, cwd
        self.transcript, self.clock, self.line_cap = transcript, clock, line_cap
        self.proc: Optional[trio.Process] = None
        self.buf = b""
        self.eof = False
        self.stderr_lines: List[bytes] = []
        self.requests: List[bytes] = []       # raw bytes written, for the property checks
        self.output = b""                      # raw bytes read
        self.line_times: List[float] = []
        self.request_times: List[Tuple[float, bytes]] = []

    async def start(self, nursery: trio.Nursery) -> None:
        self.proc = await trio.lowlevel.open_process(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, cwd=self.cwd, start_new_session=True)
        nursery.start_soon(self._drain_stderr, self.proc)

    async def _drain_stderr(self, proc: trio.Process) -> None:
        pending = b""
        try:
            while True:
                chunk = await proc.stderr.receive_some(65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self.stderr_lines.append(line)
                    self.transcript.add(self.clock(), "!", line)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        if pending:
            self.stderr_lines.append(pending)

    async def send(self, data: bytes) -> None:
        assert self.proc is not None
        self.transcript.add(self.clock(), ">", data)
        self.requests.append(data)
        self.request_times.append((self.clock(), data))
        try:
            await self.proc.stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ServerClosed("the server closed its stdin (it exited?)")

    async def read_line(self, deadline: float) -> bytes:
        """The next line up to and including LF (trio deadline); raises ServerClosed, LineTooLong or trio.TooSlowError."""
        assert self.proc is not None
        while b"\n" not in self.buf:
            if self.eof:
                raise ServerClosed("EOF on the server's stdout" + (" after %r" % self.buf[:80] if self.buf else ""))
            if len(self.buf) >= self.line_cap:
                raise LineTooLong("a line of %d bytes or more without LF (the gridmanager ASSERTs at %d)"
                                  % (len(self.buf), self.line_cap))
            with trio.fail_at(deadline):
                chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                self.eof = True
            self.output += chunk
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        if len(line) >= self.line_cap:
            raise LineTooLong("a line of %d bytes (the gridmanager ASSERTs at %d)" % (len(line), self.line_cap))
        self.transcript.add(self.clock(), "<", line)
        self.line_times.append(self.clock())
        return line

    def has_buffered_line(self) -> bool:
        return b"\n" in self.buf

    async def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.transcript.add(self.clock(), "=", b"(stdin closed)")
            with trio.move_on_after(1):
                await self.proc.stdin.aclose()

    async def wait(self, timeout: float) -> Optional[int]:
        """Exit status, draining stdout meanwhile; None if still running after ``timeout``."""
        assert self.proc is not None
        with trio.move_on_after(timeout):
            while not self.eof:
                chunk = await self.proc.stdout.receive_some(65536)
                if not chunk:
                    self.eof = True
                    break
                self.output += chunk
                self.buf += chunk
            return await self.proc.wait()
        return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()

    async def aclose(self) -> None:
        self.kill()
        if self.proc is not None:
            with trio.move_on_after(5):
                await self.proc.wait()
            for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if s is not None:
                    with trio.move_on_after(1):
                        await s.aclose()
