"""The embedded ``local`` batch system: jobs run as processes of this host, no scheduler.

It is the default that works on any machine (quick start, demos, tests).  A job is the same
wrapper script every backend uses, started in its own session; its state lives in
``<state_dir>/local/<id>.*`` files, so a restarted blahpd still answers for it.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple

import trio

from blahp.backend import Backend, BackendContext, CommandFailed, QueryFailed, SubmitFailed
from blahp.jobid import JobRef
from blahp.jobmodel import OPTIONS
from blahp.records import REMOVED, RUNNING, JobAnswer, NativeRecord
from blahp.runner import CommandNotExecutable

PING_TIMEOUT = 10.0
# Fixed launcher text: the script path arrives as "$1", never inside the string.
_LAUNCH = 'setsid /bin/bash "$1" </dev/null >/dev/null 2>&1 & echo $!'


def _start_time(pid: int) -> Optional[str]:
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


class LocalBackend(Backend):
    name = "local"
    batch_id_pattern = r"\d+"
    # processes on this host: no resource request applies
    unexpressed = tuple(attr for _, attr, _ in OPTIONS)

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.job_dir = os.path.join(context.state_dir, "local")

    def _path(self, batch_id: str, suffix: str) -> str:
        return os.path.join(self.job_dir, "%s.%s" % (batch_id, suffix))

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

    # -- submission ----------------------------------------------------------------------
    def render(self, job, local_directives: Sequence[str], wrapper_text: str,
               batch_output: Optional[str]) -> str:
        head = ["#!/bin/bash", "# pyblahp local job key=%s" % job.key]
        head += ["# %s" % d for d in local_directives]
        return "\n".join(head) + "\n" + wrapper_text

    def _new_id(self) -> Tuple[str, str]:
        os.makedirs(self.job_dir, mode=0o700, exist_ok=True)
        n = 1 + max([int(f.split(".")[0]) for f in os.listdir(self.job_dir) if f.split(".")[0].isdigit()] or [0])
        while True:
            try:
                fd = os.open(self._path(str(n), "sh"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            os.close(fd)
            return str(n), self._path(str(n), "sh")

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        batch_id, script = await trio.to_thread.run_sync(self._new_id)
        await trio.to_thread.run_sync(shutil.copyfile, script_path, script)
        with open(self._path(batch_id, "key"), "w") as f:
            f.write(job.key + "\n")
        try:
            res = await self.context.runner.run(["/bin/bash", "-c", _LAUNCH, "pyblahp-local", script],
                                                timeout=PING_TIMEOUT, cwd=job.iwd, env={"JOB_ID": batch_id})
        except CommandNotExecutable as e:
            raise SubmitFailed(3, "Error executing the submission command: %s" % (e.error.strerror or e.error),
                               ambiguous=False) from None
        pid = res.stdout.strip()
        if not res.ok or not pid.isdigit():
            raise SubmitFailed(1, "submission command failed (exit code = %s) (stdout:%s) (stderr:%s)"
                               % (res.returncode, res.stdout.strip(), res.stderr.strip()), ambiguous=False)
        started = _start_time(int(pid)) or ""
        with open(self._path(batch_id, "pid"), "w") as f:
            f.write("%s %s\n" % (pid, started))
        return batch_id, None

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        return None  # submission is local and synchronous: there is no lost-in-flight job

    # -- status --------------------------------------------------------------------------
    def _scan(self) -> Dict[str, NativeRecord]:
        out: Dict[str, NativeRecord] = {}
        try:
            names = os.listdir(self.job_dir)
        except FileNotFoundError:
            return out
        now = time.time()
        for name in names:
            bid, _, suffix = name.partition(".")
            if suffix != "pid" or not bid.isdigit():
                continue
            try:
                with open(os.path.join(self.job_dir, name)) as f:
                    pid_s, _, started = f.read().strip().partition(" ")
            except OSError:
                continue
            if os.path.exists(self._path(bid, "cancelled")):
                out[bid] = NativeRecord(bid, "CANCELLED", observed_at=now)
            elif pid_s.isdigit() and _start_time(int(pid_s)) == started and started:
                out[bid] = NativeRecord(bid, "RUNNING", worker_node=os.uname().nodename, observed_at=now)
            # a finished process is absent: its exit record tells the rest
        return out

    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        try:
            return await trio.to_thread.run_sync(self._scan)
        except OSError as e:
            raise QueryFailed("cannot read %s: %s" % (self.job_dir, e.strerror or e)) from None

    def map(self, record: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
        attrs = {"BatchJobId": record.batch_id, "BatchJobState": record.state}
        if record.state == "CANCELLED":
            attrs["ExitReason"] = "cancelled"
            return JobAnswer(REMOVED, attrs)
        if record.worker_node:
            attrs["WorkerNode"] = record.worker_node
        return JobAnswer(RUNNING, attrs)

    # -- control -------------------------------------------------------------------------
    async def cancel(self, ref: JobRef) -> None:
        def kill() -> None:
            try:
                with open(self._path(ref.batch_id, "pid")) as f:
                    pid_s, _, started = f.read().strip().partition(" ")
            except FileNotFoundError:
                return  # never ours or long gone: cancelling it is a no-op
            open(self._path(ref.batch_id, "cancelled"), "w").close()
            if pid_s.isdigit() and started and _start_time(int(pid_s)) == started:
                try:
                    os.killpg(int(pid_s), signal.SIGTERM)
                except ProcessLookupError:
                    pass
                except PermissionError as e:
                    raise CommandFailed(1, "(stdout:) (stderr:%s)" % e) from None
        await trio.to_thread.run_sync(kill)
