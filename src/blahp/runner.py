"""Running batch commands: argv lists only, bounded time, bounded output, whole-group kill.

Every command starts in its own session (so its process group is ours to signal).  On timeout
or cancellation (server shutdown) the group gets SIGTERM, then SIGKILL after the grace period,
and the leader is reaped before ``run`` returns: nothing is left behind.
"""
from __future__ import annotations

import errno
import functools
import os
import signal
import subprocess
from typing import Callable, List, Mapping, Optional, Sequence

import trio

CAPTURE_LIMIT = 16 * 1024 * 1024


class CommandNotExecutable(Exception):
    """The program could not be started at all (ENOENT, EACCES, ...)."""

    def __init__(self, argv: Sequence[str], error: OSError) -> None:
        self.argv = list(argv)
        self.error = error
        super().__init__("%s: %s" % (argv[0], error.strerror or error))


class CommandResult:
    __slots__ = ("argv", "returncode", "stdout", "stderr", "timed_out", "duration",
                 "stdout_truncated", "stderr_truncated")

    def __init__(self, argv: List[str], returncode: Optional[int], stdout: str, stderr: str,
                 timed_out: bool, duration: float, stdout_truncated: bool = False,
                 stderr_truncated: bool = False) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.duration = duration
        self.stdout_truncated = stdout_truncated
        self.stderr_truncated = stderr_truncated

    @property
    def signal(self) -> Optional[int]:
        rc = self.returncode
        return -rc if rc is not None and rc < 0 else None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def __repr__(self) -> str:
        return "CommandResult(%r, rc=%r, timed_out=%r)" % (self.argv[:3], self.returncode, self.timed_out)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise


async def _read_capped(stream, sink: bytearray, limit: int, flags: dict, key: str) -> None:
    async with stream:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            room = limit - len(sink)
            if room > 0:
                sink += chunk[:room]
            if len(chunk) > room:
                flags[key] = True  # keep draining so the child never blocks on a full pipe


class CommandRunner:
    def __init__(self, environment: Mapping[str, str], *, kill_grace: float = 5.0,
                 prefix: Optional[Callable[[], List[str]]] = None,
                 capture_limit: int = CAPTURE_LIMIT) -> None:
        self.environment = dict(environment)
        self.environment["LC_ALL"] = "C"
        self.kill_grace = kill_grace
        self.prefix = prefix
        self.capture_limit = capture_limit

    async def _deliver_cancel(self, process) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(self.kill_grace):
            await process.wait()
        _signal_group(process.pid, signal.SIGKILL)

    async def run(self, argv: Sequence[str], *, timeout: float, cwd: Optional[str] = None,
                  stdin: Optional[bytes] = None, env: Optional[Mapping[str, str]] = None) -> CommandResult:
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of str")
        full = (self.prefix() if self.prefix else []) + list(argv)
        environment = dict(self.environment)
        if env:
            environment.update(env)
        out, err = bytearray(), bytearray()
        truncated: dict = {}
        start = trio.current_time()
        returncode: Optional[int] = None
        spawn_error: Optional[OSError] = None
        proc = None
        with trio.move_on_after(timeout) as deadline:
            async with trio.open_nursery() as nursery:
                try:
                    proc = await nursery.start(functools.partial(
                        trio.run_process, full, stdin=subprocess.DEVNULL if stdin is None else stdin,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, cwd=cwd,
                        env=environment, start_new_session=True, deliver_cancel=self._deliver_cancel))
                except OSError as e:
                    spawn_error = e
                else:
                    nursery.start_soon(_read_capped, proc.stdout, out, self.capture_limit, truncated, "out")
                    nursery.start_soon(_read_capped, proc.stderr, err, self.capture_limit, truncated, "err")
        if spawn_error is not None:
            raise CommandNotExecutable(full, spawn_error)
        if proc is not None:
            returncode = proc.returncode
        return CommandResult(full, returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                             deadline.cancelled_caught, trio.current_time() - start,
                             bool(truncated.get("out")), bool(truncated.get("err")))
