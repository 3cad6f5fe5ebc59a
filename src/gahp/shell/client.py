"""A synchronous GAHP client over a child process (gahp-shell's connection to its server).

    client = ShellClient(["blahpd"], env=env)   # reads the banner, turns ASYNC_MODE_ON on
    outcome = client.execute("status local/20250101/123")
    print(outcome.render())
    client.close()

The server is started from an argv list (never through a shell). A reader thread turns its
stdout into lines; everything else happens in the thread holding ``lock``. ``R`` lines are
swallowed wherever they appear and answered with ``RESULTS``; result lines are filed by request
id (or handed to ``on_detached`` for requests nobody waits for).
"""
from __future__ import annotations

import functools
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from gahp.escaping import read_argv
from gahp.shell.lines import LineMaker, Request, parse_result, render_result

DEFAULT_SERVER = ["blahpd"]
REPLY_TIMEOUT = 20.0     # the gridmanager's GRIDMANAGER_GAHP_RESPONSE_TIMEOUT
RESULT_TIMEOUT = 240.0   # protocol.md section 8: every accepted request has its result by then
POLL_EVERY = 5.0         # RESULTS also polled this often while waiting (an R may be missed)
SYNC_POLL_EVERY = 0.5    # ... and this often with async mode off, where no R ever comes
CAPTURE = "capture"      # stderr=CAPTURE: keep the server's stderr lines in ``stderr_lines``
INHERIT = "inherit"      # stderr=INHERIT: the server writes to our stderr (default: /dev/null)


class GahpError(Exception):
    """Base class of the client's errors."""


class ServerDied(GahpError):
    """The server exited (or closed its output) while the client needed it."""

    def __init__(self, message: str, status: Optional[int]):
        super().__init__(message)
        self.status = status
        self.stderr: List[str] = []   # its last stderr lines, when they were captured


class CannotStart(ServerDied):
    """The server's command could not be run at all (``reason``: the OS's word)."""

    def __init__(self, program: str, reason: str):
        super().__init__("cannot start %s: %s" % (program, reason), None)
        self.reason = reason


class GahpTimeout(GahpError):
    """No reply / result within the timeout."""


class ProtocolError(GahpError):
    """The server wrote something the protocol does not allow here."""


class BadBanner(ProtocolError):
    """The first line is not a ``$GahpVersion`` banner (``line``: what came instead)."""

    def __init__(self, line: str):
        super().__init__("unexpected banner: %r" % line[:200])
        self.line = line


class Interrupted(GahpError):
    """``interrupt`` was set while waiting for a result (Ctrl-C in the shell)."""


def describe_status(status: Optional[int]) -> str:
    if status is None:
        return "server closed its output"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "signal %d" % -status
        return "server exited with status %d (killed by %s)" % (status, name)
    return "server exited with status %d" % status


@dataclass
class Outcome:
    """What one typed command produced."""
    request: Request
    reply: str = ""                                       # the return line (decoded text)
    results: List[List[str]] = field(default_factory=list)  # result fields, in ``expect`` order
    raw: List[str] = field(default_factory=list)            # the result lines as received

    @property
    def ok(self) -> bool:
        """Return line ``S`` and every result code 0."""
        if not self.reply.startswith("S"):
            return False
        return all(len(r) > 1 and r[1] == "0" for r in self.results)

    def render(self) -> str:
        if not self.request.is_async or not self.reply.startswith("S"):
            return " ".join(read_argv(self.reply)) if self.reply else ""
        return "\n".join(render_result(self.request, r) for r in self.results)


def _locked(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return run


class ShellClient:
    def __init__(self, argv: Sequence[str] = DEFAULT_SERVER, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None, reply_timeout: float = REPLY_TIMEOUT, async_mode: bool = True,
                 stderr=None, first_id: int = 1, strict: bool = False):
        self.argv = list(argv)
        self.reply_timeout = reply_timeout
        self.maker = LineMaker(first_id)
        self.results: Dict[str, List[str]] = {}
        self.raw: Dict[str, str] = {}              # reqid -> its result line as received
        self.interrupt = threading.Event()         # set (e.g. by a SIGINT handler) to stop a wait
        self.pending: Dict[str, str] = {}          # reqid -> command, still without a result
        self.transcript: List[tuple] = []          # (">" | "<", line) as sent / received
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._r_seen = False
        self._closed = False
        # One conversation at a time: the interactive shell's idle poller and the command being
        # typed both talk to the server, and a reply must reach whoever sent the request.
        self.lock = threading.RLock()
        # requests nobody waits for any more (sent with '&', or Ctrl-C while waiting): their
        # results go to on_detached(command, fields) as they are filed
        self.detached: Dict[str, str] = {}
        self.on_detached = None
        self._last_poll = time.monotonic()
        self.poll_every = POLL_EVERY if async_mode else SYNC_POLL_EVERY
        self.strict = strict   # a line not ending in CRLF is a ProtocolError (for tests of the server)
        self.stderr_lines: List[str] = []
        if stderr == CAPTURE:
            stderr = subprocess.PIPE
        elif stderr == INHERIT:
            stderr = None
        elif stderr is None:
            stderr = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                         env=env, cwd=cwd,
                                         # Ctrl-C at the shell's terminal is for the shell, not the server
                                         start_new_session=True)
        except OSError as e:
            raise CannotStart(self.argv[0], e.strerror or str(e)) from None
        self._reader = threading.Thread(target=self._read, name="gahp-shell-reader", daemon=True)
        self._reader.start()
        if stderr == subprocess.PIPE:
            threading.Thread(target=self._read_stderr, name="gahp-shell-stderr", daemon=True).start()
        try:
            self.banner = self._next_line(reply_timeout, "the banner")
            if not self.banner.startswith("$GahpVersion"):
                raise BadBanner(self.banner)
            if async_mode:
                reply = self.sync("ASYNC_MODE_ON")
                if not reply.startswith("S"):
                    raise ProtocolError("ASYNC_MODE_ON refused: %r" % reply)
        except BaseException as e:
            self.kill()  # no half-started server left behind
            if isinstance(e, ServerDied) and stderr == subprocess.PIPE:
                e.stderr = self.stderr_tail()  # e.g. ssh's reason for giving up
            raise

    # -- lines --------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for raw in self.proc.stdout:
                self._lines.put(raw.decode("utf-8", "surrogateescape"))
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def _read_stderr(self) -> None:
        try:
            for raw in self.proc.stderr:
                self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def stderr_tail(self, n: int = 6) -> List[str]:
        """The last non-blank stderr lines (with stderr=CAPTURE)."""
        time.sleep(0.2)  # let the reader catch the last lines of a dying process
        return [line for line in self.stderr_lines if line.strip()][-n:]

    def _died(self, waiting_for: Optional[str]) -> ServerDied:
        try:
            status = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            status = None
        when = "while waiting for %s" % waiting_for if waiting_for else "while the shell was idle"
        return ServerDied("%s %s" % (describe_status(status), when), status)

    def _next_line(self, timeout: float, waiting_for: Optional[str]) -> str:
        """The next line from the server (R included), CRLF removed."""
        try:
            line = self._lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            raise GahpTimeout("no reply within %.1f s while waiting for %s" % (timeout, waiting_for)) from None
        if line is None:
            self._lines.put(None)       # later calls see the EOF too
            raise self._died(waiting_for)
        if self.strict and not line.endswith("\r\n"):
            raise ProtocolError("a line not ending in CRLF while waiting for %s: %r" % (waiting_for, line))
        line = line.rstrip("\r\n")
        self.transcript.append(("<", line))
        return line

    def _send(self, line: str, waiting_for: str) -> None:
        self.transcript.append((">", line))
        try:
            self.proc.stdin.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died(waiting_for) from None

    def _reply(self, waiting_for: str, timeout: Optional[float] = None) -> str:
        """The next non-``R`` line (an ``R`` is remembered and answered later)."""
        deadline = time.monotonic() + (self.reply_timeout if timeout is None else timeout)
        while True:
            line = self._next_line(deadline - time.monotonic(), waiting_for)
            if line == "R":
                self._r_seen = True
                continue
            return line

    # -- requests -----------------------------------------------------------------------
    @_locked
    def sync(self, line: str) -> str:
        """Send a synchronous command, return its reply line (``RESULTS`` blocks are filed)."""
        name = line.split(" ", 1)[0].upper()
        self._send(line, "the reply to %s" % name)
        reply = self._reply("the reply to %s" % name)
        if name == "RESULTS":
            self._file_results(reply)
        return reply

    def _file_results(self, reply: str) -> int:
        fields = read_argv(reply)
        if len(fields) != 2 or fields[0] != "S" or not fields[1].isdigit():
            raise ProtocolError("bad RESULTS reply: %r" % reply)
        n = int(fields[1])
        lines = [self._reply("result lines of RESULTS") for _ in range(n)]
        self._last_poll = time.monotonic()
        for line in lines:
            row = parse_result(line)
            if not row:
                continue
            self.pending.pop(row[0], None)
            command = self.detached.pop(row[0], None)
            if command is not None and self.on_detached is not None:
                self.on_detached(command, row, line)
            else:
                self.results[row[0]] = row
                self.raw[row[0]] = line
        return n

    @_locked
    def poll(self) -> int:
        """Send RESULTS, file the lines; returns how many arrived."""
        self._r_seen = False
        self._send("RESULTS", "the reply to RESULTS")
        return self._file_results(self._reply("the reply to RESULTS"))

    @_locked
    def send(self, request: Request) -> str:
        """Send a request, return its return line."""
        what = ("request %s (%s)" % (request.reqid, request.command)) if request.is_async else \
            "the reply to %s" % request.command
        self._send(request.line, what)
        reply = self._reply(what)
        if request.command == "RESULTS" and not request.is_async:
            self._file_results(reply)
        if request.command in ("ASYNC_MODE_ON", "ASYNC_MODE_OFF") and reply.startswith("S"):
            self.poll_every = POLL_EVERY if request.command == "ASYNC_MODE_ON" else SYNC_POLL_EVERY
        if request.is_async and reply.startswith("S"):
            for rid in request.expect:
                self.pending[rid] = request.command
        return reply

    @_locked
    def wait(self, reqid: str, timeout: float = RESULT_TIMEOUT, command: Optional[str] = None) -> List[str]:
        """The result fields of request ``reqid``, polling on ``R`` (and every few seconds)."""
        command = command or self.pending.get(reqid, "?")
        what = "request %s (%s)" % (reqid, command)
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + self.poll_every
        while reqid not in self.results:
            if self.interrupt.is_set():
                self.interrupt.clear()
                raise Interrupted("stopped waiting for %s" % what)
            now = time.monotonic()
            if self._r_seen or now >= next_poll:
                self._r_seen = False
                self._send("RESULTS", what)
                self._file_results(self._reply(what))
                next_poll = time.monotonic() + self.poll_every
                continue
            if now >= deadline:
                raise GahpTimeout("no result for %s within %.1f s" % (what, timeout))
            try:
                line = self._next_line(min(deadline, next_poll, now + 0.2) - now, what)
            except GahpTimeout:
                continue
            if line == "R":
                self._r_seen = True
            else:
                raise ProtocolError("unexpected line while waiting for %s: %r" % (what, line))
        self.pending.pop(reqid, None)
        return self.results.pop(reqid)

    def execute(self, text: str, timeout: float = RESULT_TIMEOUT) -> Optional[Outcome]:
        """Run one typed command: build, send, wait for every result. None for an empty line."""
        request = self.maker.make(text)
        if request is None:
            return None
        return self.run_request(request, timeout)

    @_locked
    def run_request(self, request: Request, timeout: float = RESULT_TIMEOUT) -> Outcome:
        outcome = Outcome(request, self.send(request))
        if request.is_async and outcome.reply.startswith("S"):
            deadline = time.monotonic() + timeout
            for rid in request.expect:
                outcome.results.append(self.wait(rid, max(deadline - time.monotonic(), 0.0), request.command))
                outcome.raw.append(self.raw.pop(rid, ""))
        if request.command == "QUIT" and outcome.reply.startswith("S"):
            self._closed = True
        return outcome

    @_locked
    def detach(self, request: Request) -> None:
        """Stop waiting for ``request``: its results, when they come, go to ``on_detached``
        (those already filed are delivered at once)."""
        for rid in request.expect:
            if rid in self.results:
                if self.on_detached is not None:
                    self.on_detached(request.command, self.results.pop(rid), self.raw.pop(rid, ""))
            else:
                self.detached[rid] = request.command

    def service(self, poll_every: float = POLL_EVERY) -> bool:
        """Idle-time work, from another thread while nobody talks to the server: answer an ``R``
        with ``RESULTS`` (and poll every ``poll_every`` s while detached requests are open).
        Returns False without doing anything when a conversation is under way. Raises
        ServerDied when the server has gone, ProtocolError on a line nobody asked for."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            while not self._lines.empty():   # we hold the lock: nobody else takes lines
                line = self._next_line(0.0, None)  # at EOF: ServerDied "while the shell was idle"
                if line != "R":
                    raise ProtocolError("unexpected line from the server while idle: %r" % line)
                self._r_seen = True
            if self._r_seen or (self.detached and time.monotonic() - self._last_poll >= poll_every):
                self.poll()
            return True
        finally:
            self.lock.release()

    # -- end ----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 30.0) -> Optional[int]:
        """Close stdin (the normal end of a session) and wait for the server."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
