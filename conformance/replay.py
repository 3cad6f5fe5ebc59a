"""Replay one session against one server: run its steps, check every line, report the first failure.

Byte-level expectations come from the session; the gridmanager's hard rules (field counts, single
``R``, CRLF framing, return-line latency, line cap) are checked on the whole exchange afterwards by
``conformance.checks`` and during it by the line reader.
"""
from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import trio

from conformance import checks
from conformance.pattern import Template
from conformance.server import LineTooLong, ServerClosed, ServerProcess, Transcript, visible, visible_text
from conformance.session import Session, Step

CRLF = b"\r\n"
RESPONSE_BOUND = 20.0          # GRIDMANAGER_GAHP_RESPONSE_TIMEOUT
DEFAULT_WAIT = 60.0            # '< R' and '= results' without an explicit bound
EXIT_WAIT = 10.0
RESULTS_POLL = 0.5
SIM_SETTLE = 0.3               # longer than the status cache the runner gives simulated systems


class Failure(Exception):
    def __init__(self, step: Optional[Step], message: str, expected: Optional[str] = None,
                 received: Optional[bytes] = None) -> None:
        super().__init__(message)
        self.step, self.message, self.expected, self.received = step, message, expected, received


@dataclass
class Outcome:
    session: Session
    status: str                      # "passed", "failed", "skipped", "error"
    seconds: float = 0.0
    failures: List[str] = field(default_factory=list)
    transcript: Optional[Transcript] = None
    stderr: List[bytes] = field(default_factory=list)
    reason: str = ""                 # why skipped
    steps: int = 0                   # steps run (a retried step counts each time)


def diff_lines(expected: str, received: bytes) -> List[str]:
    """Expected text (with its CRLF shown) against the received bytes, character by character."""
    exp, got = visible_text(expected), visible(received)   # one rendering, so the marks line up
    out = ["  expected: %s" % exp, "  received: %s" % got]
    if exp != got:
        marks = []
        for op in difflib.SequenceMatcher(None, exp, got, autojunk=False).get_opcodes():
            tag, i1, i2, j1, j2 = op
            width = max(i2 - i1, j2 - j1)
            marks.append((" " if tag == "equal" else "^") * width)
        out.append("            " + "".join(marks).rstrip())
    return out


class Replay:
    def __init__(self, session: Session, argv: Sequence[str], env: Optional[dict], cwd: Optional[str],
                 variables: Dict[str, str], sim: Optional[Callable[[Step, List[str]], None]] = None,
                 response_bound: float = RESPONSE_BOUND) -> None:
        self.session, self.argv, self.env, self.cwd = session, list(argv), env, cwd
        self.bindings: Dict[str, str] = dict(variables)
        self.sim = sim
        self.response_bound = response_bound
        self.transcript = Transcript()
        self.t0 = time.monotonic()
        self.servers: List[ServerProcess] = []
        self.server: Optional[ServerProcess] = None
        self.pending_r = 0
        self.async_on = False
        self.results_reply_due = False
        self.steps_run = 0

    def clock(self) -> float:
        return time.monotonic() - self.t0

    # -- the server ------------------------------------------------------------------------
    async def _start(self, nursery: trio.Nursery, banner_step: Optional[Step]) -> None:
        server = ServerProcess(self.argv, self.env, self.cwd, self.transcript, self.clock)
        try:
            await server.start(nursery)
        except OSError as e:
            raise Failure(None, "cannot start the server %r: %s" % (" ".join(self.argv), e))
        self.servers.append(server)
        self.server = server
        self.pending_r, self.async_on, self.results_reply_due = 0, False, False
        # the gridmanager has no timeout on the banner; we allow the response bound
        line = await self._read(banner_step, self.response_bound, "the banner", skip_r=False)
        if banner_step is not None:
            self.steps_run += 1
            self._check_line(banner_step, line)

    async def _read(self, step: Optional[Step], wait: float, what: str, skip_r: bool = True) -> bytes:
        assert self.server is not None
        deadline = trio.current_time() + wait
        while True:
            try:
                line = await self.server.read_line(deadline)
            except trio.TooSlowError:
                raise Failure(step, "no line within %.0f s while waiting for %s%s" % (
                    wait, what, " (the gridmanager EXCEPTs: 'unresponsive')" if wait <= self.response_bound else ""))
            except ServerClosed as e:
                raise Failure(step, "the server ended the session while we waited for %s: %s" % (what, e))
            except LineTooLong as e:
                raise Failure(step, str(e))
            if skip_r and line == b"R\r\n":
                self.pending_r += 1
                continue
            return line

    # -- steps -------------------------------------------------------------------------------
    async def run(self) -> Outcome:
        steps = list(self.session.steps)
        banner_step = steps.pop(0) if steps and steps[0].kind in ("expect", "expect_raw") else None
        outcome = Outcome(self.session, "passed", transcript=self.transcript)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    with trio.fail_after(self.session.timeout):
                        await self._start(nursery, banner_step)
                        await self._steps(steps)
                        await self._finish()
                except trio.TooSlowError:
                    outcome.status = "failed"
                    outcome.failures.append("the session took longer than its bound of %.0f s (@ timeout)" % self.session.timeout)
                except Failure as f:
                    outcome.status = "failed"
                    outcome.failures.append(self._describe(f))
                finally:
                    for s in self.servers:
                        await s.aclose()
                    nursery.cancel_scope.cancel()
        except Exception as e:   # a harness bug must not take the other sessions down
            outcome.status = "error"
            outcome.failures.append("harness error: %s: %s" % (type(e).__name__, e))
        outcome.failures.extend(self._rule_violations())
        if outcome.failures and outcome.status == "passed":
            outcome.status = "failed"
        outcome.seconds, outcome.steps = self.clock(), self.steps_run
        outcome.stderr = [ln for s in self.servers for ln in s.stderr_lines]
        return outcome

    async def _steps(self, steps: Sequence[Step]) -> None:
        for step in steps:
            await self._step(step)

    async def _step(self, step: Step) -> None:
        assert self.server is not None
        self.steps_run += 1
        kind = step.kind
        if kind == "send":
            try:
                text = step.template.substitute(self.bindings)
            except KeyError as e:
                raise Failure(step, str(e.args[0]))
            await self._send(step, text.encode("utf-8", "surrogateescape") + CRLF)
        elif kind == "send_raw":
            await self._send(step, step.data)
        elif kind in ("expect", "expect_raw"):
            line = await self._read(step, self.response_bound, "the line of %s" % step.where(self.session.path),
                                    skip_r=step.data != b"R\r\n")
            self._check_line(step, line)
        elif kind == "r":
            await self._wait_r(step, DEFAULT_WAIT)
        elif kind == "unordered":
            lines = [await self._read(step, self.response_bound, "line %d of %d of the block" % (i + 1, len(step.body)))
                     for i in range(len(step.body))]
            self._match_set(step, step.body, lines)
        elif kind == "results":
            await self._results(step)
        elif kind == "retry":
            await self._retry(step)
        elif kind == "sleep":
            await trio.sleep(float(step.args[0]))
        elif kind == "sim":
            if self.sim is None:
                raise Failure(step, "no simulated batch system here")
            self.transcript.add(self.clock(), "=", step.text.encode())
            self.sim(step, step.args)
            if step.args[0] == "advance":
                await trio.sleep(SIM_SETTLE)
        elif kind == "eof":
            await self.server.close_stdin()
        elif kind == "exit":
            status = await self.server.wait(EXIT_WAIT)
            if status is None:
                raise Failure(step, "the server did not exit within %.0f s" % EXIT_WAIT)
            if status != int(step.args[0]):
                raise Failure(step, "the server exited with status %d, expected %s" % (status, step.args[0]))
        elif kind == "restart":
            await self.server.close_stdin()
            status = await self.server.wait(EXIT_WAIT)
            if status is None:
                raise Failure(step, "the server did not exit within %.0f s of EOF on its stdin" % EXIT_WAIT)
            self.transcript.add(self.clock(), "=", b"(restart: exit status %d; a new server starts)" % status)
            await self._start(self._nursery, None)
        else:  # pragma: no cover - the parser admits no other kinds
            raise Failure(step, "unknown step %r" % kind)

    async def _send(self, step: Step, data: bytes) -> None:
        assert self.server is not None
        try:
            await self.server.send(data)
        except ServerClosed as e:
            raise Failure(step, str(e))
        for line in re.split(rb"[\r\n\0]+", data):
            words = line.split()
            if words:
                cmd = words[0].upper()
                if cmd == b"ASYNC_MODE_ON":
                    self.async_on = True
                elif cmd == b"ASYNC_MODE_OFF":
                    self.async_on = False
                elif cmd == b"RESULTS":
                    self.results_reply_due = True

    def _check_line(self, step: Step, line: bytes) -> None:
        if self.results_reply_due and re.match(rb"S [0-9]+\r\n\Z", line):
            self.results_reply_due = False
            if line != b"S 0\r\n":
                self.pending_r = 0
        if step.kind == "expect_raw":
            if line != step.data:
                raise Failure(step, "the line differs", step.data.decode("utf-8", "surrogateescape"), line)
            return
        expected = self._shown(step.template)
        if not line.endswith(CRLF):
            raise Failure(step, "the line does not end in CRLF", expected + "\r\n", line)
        got = self._match(step.template, line[:-2])
        if got is None:
            raise Failure(step, "the line differs", expected + "\r\n", line)
        self.bindings.update(got)

    def _match(self, template: Template, body: bytes) -> Optional[Dict[str, str]]:
        return template.match(body.decode("utf-8", "surrogateescape"), self.bindings)

    def _shown(self, template: Template) -> str:
        """The template with what is already bound filled in (what the report shows as expected)."""
        out = []
        for kind, text, rx in template.parts:
            if kind == "lit":
                out.append(text)
            elif kind == "var" and text in self.bindings:
                out.append(self.bindings[text])
            elif kind == "var":
                out.append("{%s/%s/}" % (text, rx) if rx else "{%s}" % text)
            else:
                out.append(text)
        return "".join(out)

    def _match_set(self, step: Step, expects: Sequence[Step], lines: Sequence[bytes]) -> None:
        remaining = list(expects)
        for line in lines:
            self._take(step, remaining, line, "a line of the block", "the block's expected lines still open")

    def _take(self, step: Step, remaining: List[Step], line: bytes, what: str, among: str) -> None:
        """Match ``line`` against the first of ``remaining`` it fits, bind its captures, drop it."""
        if not line.endswith(CRLF):
            raise Failure(step, "%s does not end in CRLF" % what, None, line)
        for i, e in enumerate(remaining):
            got = self._match(e.template, line[:-2])
            if got is not None:
                self.bindings.update(got)
                del remaining[i]
                return
        raise Failure(step, "%s matches none of %s:\n" % (what, among) +
                      ("\n".join("    " + self._shown(e.template) for e in remaining) or "    (none)"), None, line)

    async def _wait_r(self, step: Step, wait: float) -> None:
        if self.pending_r:
            self.pending_r -= 1
            return
        line = await self._read(step, wait, "R", skip_r=False)
        if line != b"R\r\n":
            raise Failure(step, "expected the line R", "R\r\n", line)

    async def _results(self, step: Step) -> None:
        wait = float(step.args[1]) if step.args else DEFAULT_WAIT
        deadline = trio.current_time() + wait
        remaining = list(step.body)
        polls = 0
        while remaining:
            if trio.current_time() >= deadline:
                raise Failure(step, "after %.0f s (%d RESULTS polls) these results never came:\n%s" % (
                    wait, polls, "\n".join("    " + self._shown(e.template) for e in remaining)))
            if not self.pending_r and not self.server.has_buffered_line():
                # wait a little for an R (async mode), then poll anyway as the gridmanager does
                with trio.move_on_at(min(deadline, trio.current_time() + RESULTS_POLL)):
                    line = await self._read(step, wait, "R", skip_r=False)
                    if line != b"R\r\n":
                        raise Failure(step, "an unexpected line while waiting for results", "R\r\n", line)
                    self.pending_r += 1
            polls += 1
            await self._send(step, b"RESULTS\r\n")
            head = await self._read(step, self.response_bound, "the reply to RESULTS")
            self.results_reply_due = False
            m = re.match(rb"S ([0-9]+)\r\n\Z", head)
            if not m:
                raise Failure(step, "the reply to RESULTS is not 'S <n>'", "S <n>\r\n", head)
            n = int(m.group(1))
            if n:
                self.pending_r = 0
            lines = [await self._read(step, self.response_bound, "result line %d of %d" % (i + 1, n)) for i in range(n)]
            for line in lines:
                self._take(step, remaining, line, "a result line", "the results still expected")

    async def _retry(self, step: Step) -> None:
        bound = float(step.args[0])
        deadline = trio.current_time() + bound
        attempt = 0
        saved = dict(self.bindings)
        while True:
            attempt += 1
            try:
                await self._steps(step.body)
                return
            except Failure as f:
                if trio.current_time() + 1 >= deadline or self.server.eof:   # a dead server stays dead
                    f.message = "%s (last of %d attempts in %.0f s)" % (f.message, attempt, bound)
                    raise
                self.transcript.add(self.clock(), "=", b"(retry: %s)" % f.message.split("\n")[0].encode())
                self.bindings = dict(saved)
                await trio.sleep(1)

    async def _finish(self) -> None:
        assert self.server is not None
        await self.server.close_stdin()
        status = await self.server.wait(EXIT_WAIT)
        if status is None:
            raise Failure(None, "the server did not exit within %.0f s of EOF on its stdin" % EXIT_WAIT)

    # -- rules over the whole exchange ---------------------------------------------------------
    def _rule_violations(self) -> List[str]:
        problems = []
        for n, server in enumerate(self.servers):
            framed = _framed(server)
            found = checks.check_session([ln for _, ln in framed], server.output,
                                         request_times=[t for t, _ in framed],
                                         line_times=server.line_times, response_bound=self.response_bound)
            prefix = "server %d: " % (n + 1) if len(self.servers) > 1 else ""
            problems.extend("rule: %s%s" % (prefix, p) for p in found)
        return problems

    def _describe(self, f: Failure) -> str:
        where = f.step.where(self.session.path) if f.step is not None else self.session.path
        lines = ["%s: %s" % (where, f.message)]
        if f.step is not None and f.step.text:
            lines.append("  step:     %s" % f.step.text)
        if f.received is not None:
            if f.expected is not None:
                lines.extend(diff_lines(f.expected, f.received))
            else:
                lines.append("  received: %s" % visible(f.received))
        lines.append("  last lines of the exchange:")
        lines.extend("    " + ln for ln in self.transcript.tail())
        return "\n".join(lines)


def _framed(server: ServerProcess) -> List[Tuple[float, str]]:
    """The request lines as the server frames them (CR, LF and NUL end a line), each with the
    time its terminator was sent."""
    out: List[Tuple[float, str]] = []
    pending = b""
    for t, data in server.request_times:
        pieces = re.split(rb"[\r\n\0]", pending + data)
        pending = pieces.pop()
        out.extend((t, p.decode("utf-8", "surrogateescape")) for p in pieces if p)
    if pending and server.requests:
        # the runner always ends with EOF, and a server takes an unterminated last line as a request
        out.append((server.request_times[-1][0], pending.decode("utf-8", "surrogateescape")))
    return out
