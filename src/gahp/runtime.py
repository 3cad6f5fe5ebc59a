"""The trio driver of the sans-IO core.

* one reader: never awaits anything but input, so every request line is answered before
  the next one is read, whatever the jobs are doing;
* one writer: a single ordered buffer; writes go straight to the (non-blocking) fd when it
  is idle, so lines never interleave and the reader never waits for the client;
* one task per accepted request, each in its own cancel scope, bounded by a deadline;
* shutdown on QUIT, EOF, SIGTERM/SIGHUP/SIGINT or a vanished client: jobs marked graceful
  get ``shutdown_grace`` seconds to finish, the rest are cancelled at once (their batch
  commands' process groups are killed by the runner), then the process exits 0.
"""
from __future__ import annotations

import errno
import os
import signal
import stat
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

import trio

from .protocol import Notice, Quit, ServerProtocol, StartJob

JobHandler = Callable[[StartJob], Awaitable[List[List[str]]]]


class Options:
    def __init__(self, *, results_on_eof: bool = False, shutdown_grace: float = 5.0,
                 job_deadline: float = 230.0, graceful: Callable[[StartJob], bool] = lambda job: False,
                 drain_timeout: float = 5.0,
                 on_start: Optional[Callable[[trio.Nursery], None]] = None) -> None:
        self.results_on_eof = results_on_eof
        self.shutdown_grace = shutdown_grace
        self.job_deadline = job_deadline
        self.graceful = graceful
        self.drain_timeout = drain_timeout
        # gets the server's root nursery, for background work that outlives one request
        self.on_start = on_start


class NullLog:
    def __getattr__(self, name: str):
        return lambda *a, **k: None

    def bind(self, **kw: Any) -> "NullLog":
        return self


def _is_regular(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


class Writer:
    def __init__(self, fd: int, on_broken: Callable[[], None]) -> None:
        self.fd = fd
        self._regular = _is_regular(fd)
        self._buf = bytearray()
        self._on_broken = on_broken
        self.broken = False
        self._kick = trio.Event()
        self._empty = trio.Event()
        self._empty.set()

    def write(self, data: bytes) -> None:
        if not data or self.broken:
            return
        if self._buf:
            self._buf += data
            return
        try:
            n = os.write(self.fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._break()
            return
        if n < len(data):
            self._buf += data[n:]
            self._empty = trio.Event()
            self._kick.set()

    def _break(self) -> None:
        self.broken = True
        self._buf.clear()
        self._empty.set()
        self._on_broken()

    async def run(self) -> None:
        while True:
            await self._kick.wait()
            self._kick = trio.Event()
            while self._buf and not self.broken:
                if not self._regular:
                    await trio.lowlevel.wait_writable(self.fd)
                try:
                    n = os.write(self.fd, self._buf)
                except BlockingIOError:
                    continue
                except OSError:
                    self._break()
                    break
                del self._buf[:n]
            self._empty.set()

    async def drain(self) -> None:
        await self._empty.wait()


class Server:
    def __init__(self, core: ServerProtocol, handler: JobHandler, options: Options,
                 log: Any = None, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.core = core
        self.handler = handler
        self.options = options
        self.log = log if log is not None else NullLog()
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stop_reason: Optional[str] = None
        self._scopes: Dict[int, trio.CancelScope] = {}
        self._jobs_done = trio.Event()
        self._reading: Optional[trio.CancelScope] = None
        self.writer: Optional[Writer] = None
        self._jobs_nursery: Optional[trio.Nursery] = None

    # -- plumbing ------------------------------------------------------------------------
    def _stop_reading(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._reading is not None:
            self._reading.cancel()

    def _flush(self) -> None:
        self.writer.write(self.core.data_to_send())
        self._dispatch(self.core.events())

    def _dispatch(self, events: Sequence[object]) -> None:
        for ev in events:
            if isinstance(ev, StartJob):
                self._start(ev)
            elif isinstance(ev, Notice):
                getattr(self.log, ev.level)(ev.event, **ev.fields)
            elif isinstance(ev, Quit):
                self._stop_reading("quit")

    def _start(self, job: StartJob) -> None:
        scope = trio.CancelScope()
        self._scopes[job.token] = scope
        self._jobs_nursery.start_soon(self._run_job, job, scope)

    async def _run_job(self, job: StartJob, scope: trio.CancelScope) -> None:
        rows: Optional[List[List[str]]] = None
        with scope:
            with trio.move_on_after(self.options.job_deadline) as deadline:
                try:
                    rows = await self.handler(job)
                except Exception as e:
                    self.log.exception("request failed", reqid=job.reqid, command=job.name)
                    rows = [job.spec.error_row(job.reqid, "Internal error: %s: %s" % (type(e).__name__, e))]
            if deadline.cancelled_caught:
                self.log.error("request deadline passed", reqid=job.reqid, command=job.name,
                               deadline=self.options.job_deadline)
                rows = [job.spec.error_row(job.reqid, "Request timed out after %g s" % self.options.job_deadline)]
        del self._scopes[job.token]
        if rows is None:  # cancelled by shutdown
            self.core.abandon(job.token)
        else:
            self.core.complete(job.token, rows)
            self._flush()
        if not self._scopes:
            self._jobs_done.set()
            self._jobs_done = trio.Event()

    async def _wait_jobs(self) -> None:
        while self._scopes:
            await self._jobs_done.wait()

    async def _read(self) -> None:
        fd = self.stdin_fd
        while not self.core.closed:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            except OSError as e:
                self.log.warning("input error", error=os.strerror(e.errno or errno.EIO))
                data = b""
            if data:
                self.core.receive_data(data)
            else:
                self.core.receive_eof()
                self._stop_reading("eof")
            self._flush()
            await trio.lowlevel.checkpoint()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as signals:
            async for signum in signals:
                self.log.info("signal received", signal=signal.Signals(signum).name)
                self._stop_reading("signal")

    async def _shutdown(self) -> None:
        reason = self.stop_reason or "eof"
        running = self.core.running_jobs()
        if self.options.results_on_eof and reason == "eof":
            # -s: finish everything and print the results (jobs keep their own deadline).
            await self._wait_jobs()
            self.writer.write(self.core.flush_results_block())
            return
        graceful = [j for j in running if self.options.graceful(j)]
        for job in running:
            if job not in graceful and job.token in self._scopes:
                self._scopes[job.token].cancel()
        if graceful:
            self.log.info("waiting for in-flight requests", count=len(graceful),
                          grace=self.options.shutdown_grace)
            with trio.move_on_after(self.options.shutdown_grace):
                await self._wait_jobs()
        for scope in list(self._scopes.values()):
            scope.cancel()
        await self._wait_jobs()

    async def serve(self, pending: Sequence[object] = ()) -> str:
        self.writer = Writer(self.stdout_fd, lambda: self._stop_reading("output closed"))
        async with trio.open_nursery() as root:
            root.start_soon(self.writer.run)
            root.start_soon(self._watch_signals)
            if self.options.on_start is not None:
                self.options.on_start(root)
            async with trio.open_nursery() as jobs:
                self._jobs_nursery = jobs
                self._dispatch(pending)
                self._flush()
                if self.core.closed and self.stop_reason is None:
                    self.stop_reason = "quit" if self.core.quit_received else "eof"
                if self.stop_reason is None:
                    with trio.CancelScope() as self._reading:
                        await self._read()
                self.log.info("shutting down", reason=self.stop_reason, in_flight=self.core.in_flight)
                await self._shutdown()
            with trio.move_on_after(self.options.drain_timeout):
                await self.writer.drain()
            root.cancel_scope.cancel()
        return self.stop_reason or "eof"


def serve(core: ServerProtocol, handler: JobHandler, options: Options, *, pending: Sequence[object] = (),
          log: Any = None, stdin_fd: int = 0, stdout_fd: int = 1) -> str:
    """Run the server until the session ends; return why it ended."""
    restore = []
    for fd in {stdin_fd, stdout_fd}:
        if not _is_regular(fd):
            try:
                if os.get_blocking(fd):
                    os.set_blocking(fd, False)
                    restore.append(fd)
            except OSError:
                pass
    try:
        server = Server(core, handler, options, log, stdin_fd, stdout_fd)
        return trio.run(server.serve, pending)
    finally:
        for fd in restore:
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass
