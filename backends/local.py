"""The embedded ``local`` batch system: jobs run as processes of this host, no scheduler.

It is the default that works on any machine (quick start, demos, tests).  Its job lifecycle
arrives with the shared job model; what exists now is its health check.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import trio

from blahp.backend import Backend, BackendContext, QueryFailed
from blahp.runner import CommandNotExecutable

PING_TIMEOUT = 10.0


class LocalBackend(Backend):
    name = "local"
    batch_id_pattern = r"\d+"

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.job_dir = os.path.join(context.state_dir, "local")

    def _check_job_dir(self) -> None:
        os.makedirs(self.job_dir, mode=0o700, exist_ok=True)
        # Write access is what running jobs needs; prove it rather than trusting mode bits.
        fd, path = tempfile.mkstemp(prefix=".ping-", dir=self.job_dir)
        os.close(fd)
        os.unlink(path)

    async def ping(self) -> None:
        try:
            await trio.to_thread.run_sync(self._check_job_dir)
        except OSError as e:
            raise QueryFailed("job directory %s unusable: %s" % (self.job_dir, e.strerror or e)) from None
        # Local jobs are processes we start: a host that cannot start one (process limit,
        # exhausted memory) cannot run jobs.
        true = shutil.which("true", path=self.context.runner.environment.get("PATH")) or "/bin/true"
        try:
            res = await self.context.runner.run([true], timeout=PING_TIMEOUT)
        except CommandNotExecutable as e:
            raise QueryFailed("cannot start processes: %s" % e) from None
        if not res.ok:
            raise QueryFailed("test process failed (%s)" % (
                "timed out" if res.timed_out else "exit %s" % res.returncode))
