"""Slurm: sbatch/squeue/sacct/scontrol/scancel behind the adapter interface (backends.md §6).

Command builders and the thin runners are here; every parser and the state map are the pure
functions of ``slurm_parse``.
"""
from __future__ import annotations

import datetime
import math
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from blahp.backend import Backend, BackendContext, QueryFailed, current_user, requested
from blahp.jobid import JobRef
from blahp.jobmodel import job_name
from blahp.records import COMPLETED, RUNNING, JobAnswer, NativeRecord
from blahp.results import tail
from blahp.runner import CommandNotExecutable

from . import slurm_parse as sp

TRANSIENT = ("Socket timed out", "Unable to contact slurm controller", "Connection refused",
             "Resource temporarily unavailable", "cannot connect to server")
GONE = ("Invalid job id specified",)
FINISHED = ("already completing or completed", "Job/step already completing")
REQUEUED_HELD = "job requeued in held state"
ACCOUNTING_DISABLED = "accounting storage is disabled"
REPROBE_ACCOUNTING = 3600.0
SACCT_BATCH = 100


class SlurmBackend(Backend):
    name = "slurm"
    batch_id_pattern = r"\d+(_\d+)?"
    clusters = True
    prefix = "#SBATCH"
    tools = ("sbatch", "squeue", "sacct", "scontrol", "scancel")
    unexpressed = ("HostSMPSize", "GPUMode")

    def ignored_attributes(self, job) -> Dict[str, Any]:
        out = super().ignored_attributes(job)
        if job.smp_granularity:   # the layout (_layout) then takes tasks per node, not both counts
            out.update(requested(job, ["NodeNumber" if job.whole_nodes else "HostNumber"]))
        return out
    transient_errors = TRANSIENT

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        cfg = context.config
        self.user = current_user()
        self.held_reasons = tuple(cfg.get_list("slurm_held_reasons", sp.DEFAULT_HELD_REASONS))
        self.report_holds = cfg.get_bool("pyblahp_report_batch_holds", True)
        self.key_in_comment = cfg.get_bool("slurm_key_in_comment", True)
        self._no_accounting_until: Dict[str, float] = {}

    def _m(self, cluster: Optional[str]) -> List[str]:
        return ["-M", cluster] if cluster else []

    # -- submission ----------------------------------------------------------------------
    def directives(self, job, batch_output: Optional[str]) -> List[str]:
        d = ["-J %s" % job_name(job.h12)]
        if self.key_in_comment:
            d.append("--comment=pyblahp:%s" % job.key)
        out = batch_output or "/dev/null"
        d += ["-o %s" % out, "-e %s" % out]
        if job.queue:
            d.append("-p %s" % job.queue)
        if job.cluster:
            d.append("-M %s" % job.cluster)
        if job.project:
            d.append("-A %s" % job.project)
        if job.runtime_s is not None:
            d.append("-t %d" % max(1, math.ceil(job.runtime_s / 60)))
        if job.memory_mb is not None:
            d.append("--mem=%d" % job.memory_mb)
        d += self._layout(job)
        gres = []
        if job.gpu_number or job.gpu_model:
            if job.gpu_model and job.gpu_number:
                gres.append("gpu:%s:%d" % (job.gpu_model, job.gpu_number))
            elif job.gpu_model:
                gres.append("gpu:%s:1" % job.gpu_model)
            else:
                gres.append("gpu:%d" % job.gpu_number)
        if job.mic_number:
            gres.append("mic:%d" % job.mic_number)
        if gres:
            d.append("--gres=%s" % ",".join(gres))
        return ["%s %s" % (self.prefix, x) for x in d]

    @staticmethod
    def _layout(job) -> List[str]:
        """CPU/node layout as the C blahp computes it (HTCONDOR-166)."""
        out = []
        if job.whole_nodes and job.smp_granularity:
            out += ["-N %d" % (job.host_number or 1), "--ntasks-per-node %d" % job.smp_granularity, "--exclusive"]
        elif job.whole_nodes and job.host_number:
            out.append("-N %d" % job.host_number)
            if job.node_number is not None:
                out.append("-n %d" % job.node_number)
            out.append("--exclusive")
        else:
            if job.node_number is not None:
                out.append("-n %d" % job.node_number)
            if job.smp_granularity is not None:
                out.append("--ntasks-per-node %d" % job.smp_granularity)
            elif job.host_number is not None:
                out.append("-N %d" % job.host_number)
            if job.whole_nodes:
                out.append("--exclusive")
        return out

    # sbatch stops reading directives at the first command: site lines that are not comments
    # would end the directive block, which is the site's choice (as in the C blahp).
    render = Backend.batch_script

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        res = await self.run_submit(["sbatch", "--parsable"] + self._m(job.cluster) + [script_path], job)
        parsed = sp.parse_sbatch(res.stdout)
        if parsed is None:
            raise self.no_job_id(res)
        batch_id, cluster = parsed
        return batch_id, cluster or job.cluster

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        argv = ["squeue", "-h", "-a", "-t", "all", "-u", self.user] + self._m(job.cluster) + \
               ["--name=%s" % job_name(job.h12), "-o", "%i|%k|%T"]
        res = await self.query(argv)
        want = "pyblahp:%s" % job.key
        for line in res.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 3 and parts[1] == want and re.fullmatch(r"\d+", parts[0]):
                answer = self.map(NativeRecord(parts[0], parts[2]), None)
                if answer is None or not answer.terminal:  # the state map decides what is finished
                    return parts[0], job.cluster
        return None

    # -- status --------------------------------------------------------------------------
    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        argv = ["squeue", "-h", "-a", "-t", "all", "-u", self.user] + self._m(cluster) + ["-o", sp.SQUEUE_FORMAT]
        res = await self.query(argv)
        try:
            return sp.parse_squeue(res.stdout, observed_at=time.time())
        except ValueError as e:
            raise QueryFailed("unparsable squeue output: %s" % e) from None

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        ck = cluster or ""
        if time.time() >= self._no_accounting_until.get(ck, 0.0):
            try:
                return await self._sacct(cluster, ids, dates)
            except _AccountingDisabled:
                self.log.warning("Slurm accounting is disabled; using scontrol for finished jobs",
                                 cluster=ck, reprobe_after=REPROBE_ACCOUNTING)
                self._no_accounting_until[ck] = time.time() + REPROBE_ACCOUNTING
        return await self._scontrol(cluster, ids)

    async def _sacct(self, cluster, ids, dates) -> Dict[str, NativeRecord]:
        start = sp.sacct_start(dates, datetime.date.today())
        # One call per cycle whatever the count: up to SACCT_BATCH ids by id, beyond that all of
        # the user's jobs in the (always bounded) time window.
        select = ["-j", ",".join(ids)] if len(ids) <= SACCT_BATCH else ["-u", self.user]
        argv = ["sacct", "-n", "-P", "--noconvert", "-S", start, "-E", "now"] + self._m(cluster) + \
            select + ["-o", ",".join(sp.SACCT_FIELDS)]
        try:
            res = await self.query(argv)
        except QueryFailed as e:
            if ACCOUNTING_DISABLED in str(e):
                raise _AccountingDisabled() from None
            raise
        try:
            records = sp.parse_sacct(res.stdout, observed_at=time.time())
        except ValueError as e:
            raise QueryFailed("unparsable sacct output: %s" % e) from None
        wanted = set(ids)
        return {k: v for k, v in records.items() if k in wanted}

    async def _scontrol(self, cluster, ids) -> Dict[str, NativeRecord]:
        """Without accounting: one ``scontrol show job`` for everything still in the controller."""
        res = await self.run(["scontrol"] + self._m(cluster) + ["-o", "show", "job"])
        if not res.ok and "Invalid job id" not in res.stderr and "No jobs in the system" not in res.stdout:
            raise QueryFailed("scontrol exit code %s: %s" % (res.returncode, tail(res.stderr, 300)))
        wanted = set(ids)
        out: Dict[str, NativeRecord] = {}
        for line in res.stdout.splitlines():
            rec = sp.parse_scontrol_job(line, observed_at=time.time()) if line.strip() else None
            if rec is not None and rec.batch_id in wanted:
                out[rec.batch_id] = rec
        return out

    def merge(self, bulk: NativeRecord, acct: Optional[NativeRecord]) -> NativeRecord:
        return sp.merge(bulk, acct)

    def map(self, record: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
        if record.state == "PENDING" and (record.reason or "").lower().startswith(REQUEUED_HELD):
            # after `scontrol requeuehold` squeue shows PENDING with this text as the reason
            record = record.copy(state="REQUEUE_HOLD")
        return sp.map_record(record, held_reasons=self.held_reasons, report_batch_holds=self.report_holds,
                             last_status=last_status)

    # -- control -------------------------------------------------------------------------
    async def cancel(self, ref: JobRef) -> bool:
        killed = await self.control(["scancel"] + self._m(ref.cluster) + [ref.batch_id], "cancel", done=GONE,
                                    finished=FINISHED)
        # scancel of a job that has already ended exits 0 and says nothing (Slurm 22.05), so its
        # state tells whether this cancel stopped anything
        return killed and not await self._ended_by_itself(ref)

    async def _ended_by_itself(self, ref: JobRef) -> bool:
        argv = ["squeue", "-h", "-t", "all", "-j", ref.batch_id] + self._m(ref.cluster) + ["-o", sp.SQUEUE_FORMAT]
        try:
            res = await self.run(argv)
            rec = sp.parse_squeue(res.stdout).get(ref.batch_id) if res.ok else None
        except (CommandNotExecutable, ValueError):
            return False
        answer = self.map(rec, None) if rec is not None else None
        return answer is not None and answer.status == COMPLETED

    async def hold(self, ref: JobRef, status: int) -> None:
        # `scontrol hold` of a running job only sets a reason and the job keeps running, so a
        # running job is requeued held instead (it restarts from scratch on release).
        verb = "requeuehold" if status == RUNNING else "hold"
        await self.control(["scontrol"] + self._m(ref.cluster) + [verb, ref.batch_id], "hold")

    async def release(self, ref: JobRef) -> None:
        await self.control(["scontrol"] + self._m(ref.cluster) + ["release", ref.batch_id], "resume")

    async def check(self):
        lines = await super().check()
        try:
            res = await self.run(["sacct", "-n", "-X", "-S", "now-1hours", "-E", "now", "-u", self.user, "-o", "JobIDRaw"])
            ok = res.ok
            detail = "answered" if ok else tail(res.stderr or res.stdout, 200) or "exit %s" % res.returncode
            if ACCOUNTING_DISABLED in (res.stderr + res.stdout):
                detail = "accounting disabled: exit codes come from scontrol (within MinJobAge) and exit records"
                ok = True
        except CommandNotExecutable as e:
            ok, detail = False, str(e)
        lines.append(("slurm accounting (sacct)", ok, detail))
        return lines


class _AccountingDisabled(Exception):
    pass

