"""PBS: TORQUE, PBS Pro / OpenPBS (``pbs_pro = yes``) and the PBS emulation over Slurm, behind
the adapter interface (backends.md §7, submit-ad.md §7).

Command builders, the batch-script directives and the thin runners are here; the parsers and
the state map are the pure functions of ``pbs_parse``.
"""
from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from blahp.backend import (ANY_EXIT_CODE, Backend, BackendContext, CommandFailed, QueryFailed, current_user,
                           query_failure, requested)
from blahp.jobid import JobRef
from blahp.jobmodel import job_name
from blahp.records import RUNNING, JobAnswer, NativeRecord
from blahp.results import tail
from blahp.runner import CommandNotExecutable, CommandResult

from . import pbs_parse as pp

TRANSIENT = ("cannot connect to server", "Connection refused", "Premature end of message",
             "Resource temporarily unavailable", "Server busy", "End of File", "Connection timed out")
# qdel of a job that is already gone or going (either stream; TORQUE, PBS Pro)
GONE = ("Unknown Job Id",)
FINISHED = ("invalid state for job - COMPLETE", "invalid state for job - EXITING", "Job has finished")
NO_HISTORY = "not configured to maintain job history"
UNKNOWN_JOB_RC = 153     # PBSE_UNKJOBID (15001) & 0xff
FINISHED_JOB_RC = 35     # PBSE_HISTJOBID (15139) & 0xff, PBS Pro
REPROBE_HISTORY = 3600.0
HISTORY_BATCH = 500      # job ids per qstat -x call (argv length)
HOLD_RUNNING_REFUSED = "(stdout:) (stderr:unsupported for this job status)"


def _usage_error(res: CommandResult) -> bool:
    """qstat rejected its options (an old PBS Pro without ``-F json``)."""
    text = (res.stderr + res.stdout).lower()
    return res.returncode == 2 and ("usage" in text or "invalid option" in text or "conflicting" in text)


def torque_nodes(node_number: Optional[int], smp: Optional[int], host_number: Optional[int],
                 host_smp_size: Optional[int], whole_nodes: Optional[bool], gpu: str = "") -> List[str]:
    """TORQUE ``-l nodes=`` (and ``-W x=NACCESSPOLICY:SINGLEJOB``) as ``pbs_submit.sh`` computes them.

    ``gpu`` is the ``:gpus=N[:mode]`` suffix.  Where the C computation yields an impossible
    request (zero nodes or ``ppn=0``: SMPGranularity or HostNumber without enough NodeNumber) or
    drops the request (WholeNodes with neither SMPGranularity nor HostNumber), the nearest valid
    request is made instead.
    """
    mp = node_number or 0
    smp = smp or None   # 0 is a division by zero in the shell script: no line at all
    hn = host_number or None
    out: List[str] = []
    if whole_nodes and (smp or hn):
        hss = host_smp_size or 1
        if smp:
            out.append("nodes=%d:ppn=%d%s" % (hn or 1, hss, gpu))
        else:
            r = mp % hn if mp > 0 else 0
            rest = "+%d:ppn=%d" % (r, hss) if r else ""
            out.append("nodes=%d:ppn=%d%s%s" % (hn - r, hss, rest, gpu))
        return out + ["-W x=NACCESSPOLICY:SINGLEJOB"]
    if smp:
        n, r = divmod(mp, smp)
        if n == 0:
            out.append("nodes=1:ppn=%d%s" % (r or smp, gpu))
        else:
            out.append("nodes=%d:ppn=%d%s%s" % (n, smp, "+1:ppn=%d" % r if r else "", gpu))
    elif hn:
        n, r = divmod(mp, hn)
        if mp == 0:
            out.append("nodes=%d%s" % (hn, gpu))
        elif n == 0:
            out.append("nodes=%d:ppn=1%s" % (mp, gpu))
        else:
            out.append("nodes=%d:ppn=%d%s%s" % (hn - r, n, "+%d:ppn=%d" % (r, n + 1) if r else "", gpu))
    elif mp > 0:
        out.append("nodes=%d%s" % (mp, gpu))
    elif gpu:
        out.append("nodes=1%s" % gpu)
    if whole_nodes:
        out.append("-W x=NACCESSPOLICY:SINGLEJOB")
    return out


class PbsBackend(Backend):
    name = "pbs"
    # ids minted by other tools may carry the server (``pbs/20250101/123.pbs01``): digits are kept
    batch_id_pattern = r"\d+(\.[A-Za-z0-9.-]+)?"
    # Queue = "q@server": a job on another server of the site keeps "@server" in its id
    clusters = True
    prefix = "#PBS"
    tools = ("qsub", "qstat", "qdel", "qhold", "qrls")
    transient_errors = TRANSIENT

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        cfg = context.config
        self.pro = cfg.get_bool("pbs_pro", False)
        self.set_pvmem = cfg.get_bool("pbs_set_pvmem", False)
        self.maui = cfg.get_bool("pbs_maui", False)
        self.report_holds = cfg.get_bool("pyblahp_report_batch_holds", True)
        self.user = current_user()
        self._json: Optional[bool] = None if self.pro else False   # PBS Pro: probed on first use
        self._no_history_until = 0.0

    def parse_job_id(self, raw: str) -> JobRef:
        ref = super().parse_job_id(raw)
        ref.batch_id = ref.batch_id.split(".", 1)[0]
        return ref

    @staticmethod
    def _target(batch_id: str, server: Optional[str]) -> str:
        """The job as a PBS command names it: ``n`` on the default server, else ``n.server``."""
        return "%s.%s" % (batch_id, server) if server else batch_id

    # -- submission ----------------------------------------------------------------------
    def directives(self, job, batch_output: Optional[str]) -> List[str]:
        out = batch_output or "/dev/null"
        d = ["-S /bin/bash", "-N %s" % job_name(job.h12), "-o %s" % out, "-e %s" % out]
        if job.project:
            d.append("-A %s" % job.project)
        if job.runtime_s is not None:
            d.append("-l walltime=%d" % job.runtime_s)
        d += self._pro_resources(job) if self.pro else self._torque_resources(job)
        d.append("-m n")
        return ["%s %s" % (self.prefix, x) for x in d]

    def _torque_resources(self, job) -> List[str]:
        d = []
        if job.memory_mb is not None:
            if self.set_pvmem:
                d.append("-l pvmem=%dmb" % job.memory_mb)
            if job.smp_granularity == 1:
                d.append("-l pmem=%dmb" % job.memory_mb)
            d.append("-l mem=%dmb" % job.memory_mb)
        gpu = ""
        if self.maui and job.gpu_number:  # as pbs_submit.sh: GPUs in nodes= only for Maui sites
            gpu = ":gpus=%d%s" % (job.gpu_number, ":%s" % job.gpu_mode if job.gpu_mode else "")
        for line in torque_nodes(job.node_number, job.smp_granularity, job.host_number, job.host_smp_size,
                                 job.whole_nodes, gpu):
            d.append(line if line.startswith("-") else "-l %s" % line)
        if self.maui and job.gpu_number:
            d.append("-W x='GRES:gpu@%d'" % job.gpu_number)
        return d

    @staticmethod
    def _pro_resources(job) -> List[str]:
        # One chunk, as the C blahp asks: select=1[:mem=..]:ncpus=..[:ngpus=..]
        select = "select=1"
        if job.memory_mb is not None:
            select += ":mem=%dmb" % job.memory_mb
        select += ":ncpus=%d" % (job.smp_granularity or job.node_number or 1)
        if job.gpu_number:
            select += ":ngpus=%d" % job.gpu_number
        d = ["-l %s" % select]
        if job.whole_nodes:
            d.append("-l place=excl")
        return d

    def ignored_attributes(self, job) -> Dict[str, Any]:
        names = ["GPUModel", "GPUMode", "MICNumber"]
        if self.pro:   # one chunk: ncpus is SMPGranularity, else NodeNumber
            names += ["HostNumber", "HostSMPSize"] + (["NodeNumber"] if job.smp_granularity else [])
        else:          # as torque_nodes lays them out
            if not self.maui:   # pbs_submit.sh: GPUs in nodes= only for Maui sites
                names.append("GPUNumber")
            elif job.gpu_number:
                names.remove("GPUMode")   # it goes with the GPU count
            whole = job.whole_nodes and (job.smp_granularity or job.host_number)
            if not whole:
                names.append("HostSMPSize")
            if job.smp_granularity:
                names.append("NodeNumber" if whole else "HostNumber")
        return requested(job, names)

    render = Backend.batch_script

    def late_directives(self, job, local: List[str], extra: List[str]) -> List[str]:
        # the site's own queue (local attributes or extra args) wins, as in pbs_submit.sh
        if job.queue and not any(re.match(r"#PBS\s+-q\b", line) for line in local + extra):
            return ["%s -q %s" % (self.prefix, job.destination())]
        return []

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        res = await self.run_submit(["qsub", script_path], job)
        batch_id = pp.parse_qsub(res.stdout)
        if batch_id is None:
            raise self.no_job_id(res)
        return batch_id, job.cluster

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        wanted = job_name(job.h12)
        for rec in (await self.bulk_query(job.cluster)).values():
            if (rec.extra or {}).get("name") == wanted and rec.state not in pp.FINAL_STATES:
                return rec.batch_id, job.cluster
        return None

    # -- status --------------------------------------------------------------------------
    def _parse(self, res: CommandResult, json_format: bool, **kw) -> Dict[str, NativeRecord]:
        try:
            jobs = pp.parse_qstat_json(res.stdout) if json_format else pp.parse_qstat_full(res.stdout)
            return pp.records(jobs, observed_at=time.time(), **kw)
        except ValueError as e:
            raise QueryFailed("unparsable qstat output: %s" % e) from None

    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        server = ["@" + cluster] if cluster else []   # without a destination: the default server
        if self._json is not False:
            res = await self.query(["qstat", "-f", "-F", "json"] + server, accept=ANY_EXIT_CODE)
            if _usage_error(res):
                self.log.warning("qstat does not know -F json; using qstat -f", stderr=tail(res.stderr, 200))
                self._json = False
            elif not res.ok:
                raise query_failure("qstat", res)
            else:
                self._json = True
                return self._parse(res, True, user=self.user)
        # -1 (no line wrapping) is TORQUE's; PBS Pro rejects it next to -f
        res = await self.query((["qstat", "-f"] if self.pro else ["qstat", "-f", "-1"]) + server,
                               accept=ANY_EXIT_CODE)
        if res.returncode == UNKNOWN_JOB_RC and not res.timed_out and not res.stdout.strip() \
                and all("Unknown Job Id" in ln for ln in res.stderr.splitlines() if ln.strip()):
            return {}  # the PBS emulation over Slurm answers "no jobs at all" this way
        if not res.ok:
            raise query_failure("qstat", res)
        return self._parse(res, False, user=self.user)

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        """PBS Pro history (``qstat -x``, needs ``job_history_enable``); TORQUE has none."""
        if not self.pro or time.time() < self._no_history_until:
            return {}
        out: Dict[str, NativeRecord] = {}
        for i in range(0, len(ids), HISTORY_BATCH):
            chunk = list(ids[i:i + HISTORY_BATCH])
            fmt = ["-F", "json"] if self._json else []
            res = await self.query(["qstat", "-x", "-f"] + fmt + [self._target(b, cluster) for b in chunk],
                                   accept=ANY_EXIT_CODE)
            if NO_HISTORY in res.stderr + res.stdout:
                self.log.warning("PBS job history is disabled (job_history_enable); exit codes come from "
                                 "exit records", reprobe_after=REPROBE_HISTORY)
                self._no_history_until = time.time() + REPROBE_HISTORY
                return {}
            # several ids: the ones PBS does not know are named on stderr, the rc is the last error
            errors = [ln for ln in res.stderr.splitlines() if ln.strip()]
            known = all("Unknown Job Id" in ln or "has finished" in ln for ln in errors)
            if res.timed_out or res.returncode not in (0, UNKNOWN_JOB_RC, FINISHED_JOB_RC) or not known:
                raise query_failure("qstat", res)
            recs = self._parse(res, bool(self._json), source="history")
            out.update({k: v for k, v in recs.items() if k in chunk})
        return out

    def map(self, record: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
        return pp.map_record(record, report_batch_holds=self.report_holds, last_status=last_status)

    # -- control -------------------------------------------------------------------------
    async def _gone(self, ref: JobRef) -> bool:
        """qdel failed without saying why (the emulation over Slurm prints nothing for an unknown
        job): the job is gone when qstat says it does not know it or that it has finished."""
        target = self._target(ref.batch_id, ref.cluster)
        try:
            res = await self.run(["qstat", "-f", target] if self.pro else ["qstat", "-f", "-1", target])
        except CommandNotExecutable:
            return False
        if res.timed_out:
            return False
        if res.returncode in (UNKNOWN_JOB_RC, FINISHED_JOB_RC):
            return not res.stdout.strip()
        if res.returncode == 0:
            try:
                jobs = pp.records(pp.parse_qstat_full(res.stdout))
            except ValueError:
                return False
            rec = jobs.get(ref.batch_id)
            return rec is not None and rec.state in pp.FINAL_STATES
        return False

    async def cancel(self, ref: JobRef) -> bool:
        try:
            return await self.control(["qdel", self._target(ref.batch_id, ref.cluster)], "cancel", done=GONE,
                                      finished=FINISHED)
        except CommandFailed as e:
            if e.not_executable or not await self._gone(ref):
                raise
            return True

    async def hold(self, ref: JobRef, status: int) -> None:
        # qhold of a running job only sets a hold flag (no checkpointing): the job keeps running,
        # so it is refused with the C blahp's own words.
        if status == RUNNING:
            raise CommandFailed(1, HOLD_RUNNING_REFUSED)
        await self.control(["qhold", self._target(ref.batch_id, ref.cluster)], "hold")

    async def release(self, ref: JobRef) -> None:
        await self.control(["qrls", self._target(ref.batch_id, ref.cluster)], "resume")

    async def check(self):
        lines = await super().check()
        if self.pro:
            try:
                res = await self.run(["qstat", "-B", "-f"])
                text = res.stdout.replace(" ", "").lower()
                if not res.ok:
                    ok, detail = False, tail(res.stderr or res.stdout, 200) or "exit %s" % res.returncode
                elif "job_history_enable=true" in text:
                    ok, detail = True, "job_history_enable = True: exit codes of purged jobs from qstat -x"
                else:
                    ok, detail = True, "job history disabled: exit codes come from exit records"
            except CommandNotExecutable as e:
                ok, detail = False, str(e)
            lines.append(("pbs job history (qstat -x)", ok, detail))
        return lines
