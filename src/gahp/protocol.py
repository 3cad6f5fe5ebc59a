"""The sans-IO GAHP server: request lines in, reply bytes and job events out.

Usage (the drivers in ``bootstrap`` and ``runtime`` do exactly this)::

    core = ServerProtocol(table, banner)
    write(core.data_to_send())            # the banner
    core.receive_data(chunk)              # any chunking
    write(core.data_to_send())            # return lines, in request order
    for ev in core.events(): ...          # StartJob -> run it, Quit -> stop reading
    core.complete(job.token, rows)        # when a job is done
    write(core.data_to_send())            # maybe an ``R``

Everything that decides *what* goes on the wire lives here: argument counts, the
``E``/``F``/``S`` texts, the concurrency limit, the result queue, the single-``R`` rule and
``RESULTS``.  Nothing here reads a clock or a file descriptor.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .commands import CommandSpec, CommandTable
from .escaping import decode, encode_line, encode_raw, split_args
from .framing import Framed, LineSplitter, LineTooLong

MAX_REPLY_LINE = 64 * 1024
# the smallest line limit a configuration may set (pyblahp_max_line_bytes)
MIN_LINE_LIMIT = 1024

UNKNOWN_COMMAND = ["E", "Unknown command"]
LINE_TOO_LONG = ["E", "Line too long"]
THREADS_LIMIT = ["F", "Threads limit reached"]
ACCEPTED = b"S\r\n"
R_LINE = b"R\r\n"


class StartJob:
    """An accepted asynchronous request; the driver runs it and calls ``complete``."""

    __slots__ = ("token", "spec", "args")

    def __init__(self, token: int, spec: CommandSpec, args: Tuple[str, ...]) -> None:
        self.token = token
        self.spec = spec
        self.args = args

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def reqid(self) -> str:
        return self.args[0]

    def __repr__(self) -> str:
        return "StartJob(%d, %s, %r)" % (self.token, self.spec.name, self.args)


class Quit:
    """``QUIT`` was received and answered; read nothing more."""

    def __repr__(self) -> str:
        return "Quit()"


class Notice:
    """Something the driver should log (the core has no logger)."""

    __slots__ = ("level", "event", "fields")

    def __init__(self, level: str, event: str, **fields: object) -> None:
        self.level = level
        self.event = event
        self.fields = fields

    def __repr__(self) -> str:
        return "Notice(%s, %s, %r)" % (self.level, self.event, self.fields)


class ServerProtocol:
    def __init__(self, table: CommandTable, banner: str, *, max_in_flight: int = 50,
                 max_line_bytes: int = 1 << 20, limits_pending: bool = False) -> None:
        if not banner.startswith("$GahpVersion:"):
            raise ValueError("banner must start with $GahpVersion:")
        self.table = table
        self.banner = banner
        self.max_in_flight = max_in_flight
        self._splitter = LineSplitter(max_line_bytes)
        self._out: List[bytes] = [encode_raw(banner)]
        self._events: list = []
        self._running: Dict[int, StartJob] = {}
        self._next_token = 1
        self._queue: List[bytes] = []
        self.async_mode = False
        self._armed = False
        self.closed = False       # QUIT answered or EOF seen: no more requests
        self.quit_received = False
        # While the server still reads its configuration, the request limits are not known yet:
        # synchronous commands are answered at once (the gridmanager's COMMANDS, VERSION), and
        # from the first line the limits would judge on, input is held until set_limits().
        self._held: Optional[List[Framed]] = [] if limits_pending else None
        self._install_builtins()

    # -- configuration -------------------------------------------------------------------
    @property
    def max_line_bytes(self) -> int:
        return self._splitter.max_line_bytes

    @max_line_bytes.setter
    def max_line_bytes(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_line_bytes must be positive")
        self._splitter.max_line_bytes = value

    def set_limits(self, max_in_flight: int, max_line_bytes: int) -> None:
        """The configured limits; requests held while they were unknown are handled now."""
        self.max_in_flight = max_in_flight
        self.max_line_bytes = max_line_bytes
        held, self._held = self._held or [], None
        for item in held:
            if self.quit_received:
                break
            if not isinstance(item, LineTooLong) and len(item) > max_line_bytes:
                item = LineTooLong(len(item))
            self._handle(item)

    # -- inputs --------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        for item in self._splitter.feed(data):
            if self.closed:
                break
            self._dispatch(item)

    def receive_eof(self) -> None:
        if self.closed:
            return
        for item in self._splitter.close():
            if self.closed:
                break
            self._dispatch(item)
        self.closed = True

    def _dispatch(self, item: Framed) -> None:
        if self._held is not None and (self._held or self._needs_limits(item)):
            self._held.append(item)
        else:
            self._handle(item)

    def _needs_limits(self, item: Framed) -> bool:
        if isinstance(item, LineTooLong) or len(item) > MIN_LINE_LIMIT:
            return True
        argv = split_args(decode(item))
        spec = self.table.lookup(argv[0]) if argv else None
        return spec is not None and spec.is_async

    def complete(self, token: int, rows: Sequence[Sequence[str]]) -> None:
        """Queue the result rows of a finished job.

        Rows are validated against the command's field count; a malformed row is replaced by
        that command's error form, so the client never sees a wrong field count from us.
        """
        job = self._running.pop(token)
        lines = []
        for row in rows or [job.spec.error_row(job.reqid, "Internal error: no result produced")]:
            lines.append(self._result_line(job, row))
        self._queue.extend(lines)
        # After QUIT or EOF nobody will poll again, so no R (it would follow 'S Server exiting').
        if self.async_mode and self._armed and lines and not self.closed:
            self._armed = False
            self._emit_raw(R_LINE)

    def abandon(self, token: int) -> None:
        """A job was cancelled during shutdown: it produces no result."""
        self._running.pop(token, None)

    # -- outputs -------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def events(self) -> list:
        ev = self._events
        self._events = []
        return ev

    @property
    def in_flight(self) -> int:
        return len(self._running)

    @property
    def results_pending(self) -> int:
        return len(self._queue)

    def running_jobs(self) -> List[StartJob]:
        return list(self._running.values())

    def flush_results_block(self) -> bytes:
        """``S <n>`` and every queued result (the ``-s`` end-of-session dump)."""
        return self._results_block()

    # -- internals -----------------------------------------------------------------------
    def _emit(self, fields: Sequence[str]) -> None:
        self._out.append(encode_line(fields))

    def _emit_raw(self, data: bytes) -> None:
        self._out.append(data)

    def _handle(self, item) -> None:
        if isinstance(item, LineTooLong):
            self._events.append(Notice("warning", "line too long", length=item.length,
                                       limit=self.max_line_bytes))
            self._emit(LINE_TOO_LONG)
            return
        argv = split_args(decode(item))
        if not argv:
            return  # a line of spaces only: ignored, like an empty line
        spec = self.table.lookup(argv[0])
        if spec is None:
            self._emit(UNKNOWN_COMMAND)
            return
        args = tuple(argv[1:])
        if len(args) != spec.nparams:
            self._emit(["E", "expected %d parameters, %d found" % (spec.nparams, len(args))])
            return
        if not spec.is_async:
            reply = spec.handler(args)
            if reply is not None:  # built-ins write their own (possibly multi-line) reply
                self._emit(reply)
            return
        if len(self._running) >= self.max_in_flight:
            self._emit(THREADS_LIMIT)
            return
        token = self._next_token
        self._next_token += 1
        job = StartJob(token, spec, args)
        self._running[token] = job
        self._emit_raw(ACCEPTED)
        self._events.append(job)

    def _result_line(self, job: StartJob, row: Sequence[str]) -> bytes:
        problem = None
        if len(row) != 1 + job.spec.result_fields:
            problem = "%d fields instead of %d" % (len(row) - 1, job.spec.result_fields)
        else:
            try:
                line = encode_line(row)
            except ValueError as e:
                problem = str(e)
            else:
                if len(line) <= MAX_REPLY_LINE:
                    return line
                problem = "result line of %d bytes" % len(line)
        self._events.append(Notice("error", "malformed result replaced", command=job.name,
                                   reqid=job.reqid, problem=problem))
        return encode_line(job.spec.error_row(row[0] if row and row[0] else job.reqid,
                                              "Internal error: malformed result (%s)" % problem))

    def _results_block(self) -> bytes:
        queued = self._queue
        self._queue = []
        return b"".join([encode_raw("S %d" % len(queued))] + queued)

    # -- built-in commands ----------------------------------------------------------------
    def _install_builtins(self) -> None:
        t = self.table
        if "COMMANDS" not in t:
            t.add_sync("COMMANDS", 0, lambda a: ["S"] + t.advertised())
        for name, handler in (("VERSION", self._cmd_version), ("RESULTS", self._cmd_results), ("ASYNC_MODE_ON", self._cmd_async_on),
                              ("ASYNC_MODE_OFF", self._cmd_async_off), ("QUIT", self._cmd_quit)):
            if name not in t:
                t.add(CommandSpec(name, 0, is_async=False, handler=handler))

    def _cmd_version(self, args: Sequence[str]) -> None:
        # The banner is wire text already (its escaped and unescaped spaces both matter).
        self._emit_raw(encode_raw("S " + self.banner))

    def _cmd_results(self, args: Sequence[str]) -> None:
        n = len(self._queue)
        self._out.append(self._results_block())
        if n:
            self._armed = True
        return None

    def _cmd_async_on(self, args: Sequence[str]) -> None:
        self._emit(["S", "Async mode on"])
        self.async_mode = True
        self._armed = True
        if self._queue:
            # Results queued before the switch get their R now (the C blahp never sends one).
            self._armed = False
            self._emit_raw(R_LINE)
        return None

    def _cmd_async_off(self, args: Sequence[str]) -> List[str]:
        self.async_mode = False
        return ["S", "Async mode off"]

    def _cmd_quit(self, args: Sequence[str]) -> None:
        self._emit(["S", "Server exiting"])
        self.closed = True
        self.quit_received = True
        self._events.append(Quit())
        return None
