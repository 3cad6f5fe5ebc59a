"""Grid Engine: qsub/qstat/qacct/qdel/qhold/qrls behind the adapter interface (backends.md §9).

Command builders and the thin runners are here; every parser and the state map are the pure
functions of ``sge_parse``.
"""
from __future__ import annotations

import calendar
import datetime
import os
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import trio

from blahp.backend import (Backend, BackendContext, CommandFailed, QueryFailed, SiteEnvironmentError,
                           current_user, source_environment)
from blahp.jobid import JobRef
from blahp.jobmodel import job_name
from blahp.records import RUNNING, JobAnswer, NativeRecord
from blahp.runner import CommandNotExecutable

from . import sge_parse as gp

TRANSIENT = ("unable to contact qmaster", "unable to send message to qmaster", "commlib error",
             "failed receiving gdi request", "got send timeout", "Connection refused",
             "Resource temporarily unavailable", "cannot connect to server")
GONE = ("does not exist",)
RUNNING_HOLD_REFUSED = "(stdout:) (stderr:hold of a running job is not supported)"
# qacct reads the whole accounting file per call: bound the calls of one status cycle.
ACCOUNTING_SLACK = 86400.0  # submission stamps come from another host's clock
_PORT_VARS = ("SGE_QMASTER_PORT", "SGE_EXECD_PORT")
_PE_RE = re.compile(r"^#\$.*\s-pe(\s|$)")


def _date_seconds(date: Optional[str]) -> Optional[float]:
    """``YYYYMMDD[HHMMSS]`` of a job id (UTC) → seconds; ``None`` when unknown."""
    if not date or not date.isdigit() or len(date) not in (8, 14):
        return None
    try:
        when = datetime.datetime.strptime(date, "%Y%m%d%H%M%S" if len(date) == 14 else "%Y%m%d")
    except ValueError:
        return None
    return float(calendar.timegm(when.timetuple()))


class SgeBackend(Backend):
    name = "sge"
    batch_id_pattern = r"\d+"
    prefix = "#$"
    tools = ("qsub", "qstat", "qacct", "qdel", "qhold", "qrls")
    # CPUs per host and exclusivity are properties of the site's parallel environments and complexes
    unexpressed = ("SMPGranularity", "HostNumber", "HostSMPSize", "WholeNodes", "GPUModel", "GPUMode", "MICNumber")
    transient_errors = TRANSIENT

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        cfg = context.config
        env = context.runner.environment
        self.user = current_user()
        self.root = os.path.expandvars(cfg.get("sge_rootpath") or env.get("SGE_ROOT") or "") or None
        self.cell = cfg.get("sge_cellname") or env.get("SGE_CELL") or "default"
        self.pe_policy = cfg.get("sge_pe_policy", "*")
        self.memory_resource = cfg.get("sge_memory_resource")
        self.report_holds = cfg.get_bool("pyblahp_report_batch_holds", True)
        self._env: Optional[Dict[str, str]] = None
        self._env_lock = trio.Lock()

    def make_job_id(self, batch_id: str, cluster: Optional[str], when: datetime.datetime) -> str:
        return "%s/%s/%s" % (self.name, when.strftime("%Y%m%d%H%M%S"), batch_id)

    def cluster_key(self, cluster: Optional[str]) -> str:
        env = self.context.runner.environment
        return "%s|%s|%s" % (self.root or "", self.cell, env.get("SGE_QMASTER_PORT", ""))

    # -- environment ---------------------------------------------------------------------
    async def environment(self) -> Dict[str, str]:
        """The cell's variables (SGE_ROOT, SGE_CELL, what its settings.sh sets), imported once."""
        async with self._env_lock:
            if self._env is None:
                self._env = await self._import_settings()
        return self._env

    async def _import_settings(self) -> Dict[str, str]:
        base = self.context.runner.environment
        overlay: Dict[str, str] = {"SGE_CELL": self.cell}
        if self.root:
            overlay["SGE_ROOT"] = self.root
        settings = os.path.join(self.root or "", self.cell, "common", "settings.sh")
        if self.root and os.path.isfile(settings):
            try:
                site = await source_environment(self.context.runner, settings, self.context.command_timeout,
                                                overlay)
            except SiteEnvironmentError as e:
                self.log.warning("cannot import the SGE environment", file=settings, error=str(e))
            else:
                overlay.update((k, v) for k, v in site.items() if base.get(k) != v)
                self.log.info("SGE environment imported", file=settings,
                              variables=sorted(k for k in overlay if k not in ("SGE_ROOT", "SGE_CELL")))
        for k in _PORT_VARS:  # our own environment's ports win over the site file's
            if base.get(k):
                overlay[k] = base[k]
        return overlay

    # -- submission ----------------------------------------------------------------------
    def directives(self, job, batch_output: Optional[str]) -> List[str]:
        out = batch_output or "/dev/null"
        d = ["-N %s" % job_name(job.h12), "-o %s" % out, "-e %s" % out, "-S /bin/bash", "-m n"]
        if job.project:
            d.append("-A %s" % job.project)
        if job.runtime_s is not None:
            d.append("-l h_rt=%d" % job.runtime_s)
        if job.memory_mb is not None and self.memory_resource:
            d.append("-l %s=%dM" % (self.memory_resource, job.memory_mb))
        if job.gpu_number:
            d.append("-l gpu=%d" % job.gpu_number)
        return ["%s %s" % (self.prefix, x) for x in d]

    def ignored_attributes(self, job) -> Dict[str, Any]:
        out = super().ignored_attributes(job)
        if job.memory_mb is not None and not self.memory_resource:
            out["RequestMemory"] = job.memory_mb
        return out

    render = Backend.batch_script

    def late_directives(self, job, local: List[str], extra: List[str]) -> List[str]:
        # -q and -pe come last, as in the C blahp: site lines before them may rely on that order
        lines = []
        if job.queue:
            # "all.q@host" is a queue instance (one host's slots of all.q), not a cluster
            lines.append("%s -q %s" % (self.prefix, job.destination()))
        if job.node_number is not None and job.node_number > 1 and \
                not any(_PE_RE.match(line.strip()) for line in local):
            lines.append("%s -pe %s %d" % (self.prefix, self.pe_policy, job.node_number))
        return lines

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        res = await self.run_submit(["qsub", "-terse", script_path], job)
        batch_id = gp.parse_qsub(res.stdout)
        if batch_id is None:
            raise self.no_job_id(res)
        return batch_id, None

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        want = job_name(job.h12)
        records = await self._qstat()
        live = []
        for r in records.values():
            if (r.extra or {}).get("name") == want:
                answer = self.map(r, None)
                if answer is None or not answer.terminal:  # the state map decides what is finished
                    live.append(r.batch_id)
        return (max(live, key=int), None) if live else None

    # -- status --------------------------------------------------------------------------
    async def _qstat(self) -> Dict[str, NativeRecord]:
        res = await self.query(["qstat", "-xml", "-u", self.user])
        try:
            return gp.parse_qstat_xml(res.stdout, observed_at=time.time())
        except ValueError as e:
            raise QueryFailed(str(e)) from None

    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        records = await self._qstat()
        errored = [k for k, r in records.items() if "E" in r.state]
        if errored:
            reasons = await self._error_reasons(errored)
            for k in errored:
                if k in reasons:
                    records[k] = records[k].copy(reason=reasons[k])
        return records

    async def _error_reasons(self, ids: List[str]) -> Dict[str, str]:
        """Why jobs are in the error state; a failure here only costs the reason's text."""
        try:
            res = await self.run(["qstat", "-j", ",".join(ids)])
        except CommandNotExecutable:
            return {}
        if res.timed_out:
            return {}
        return gp.parse_error_reasons(res.stdout)  # rc 1 when one of them just left the queue

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        """One ``qacct`` per cycle: ``-j <id>`` for a single job, else every record of ours
        since the earliest submission (``-o <user> -b <time> -j``).

        qacct scans the whole accounting file on every call, so one listing costs what one
        lookup costs; per-job calls would scan it once per job.
        """
        submitted = dict(zip(ids, (_date_seconds(d) for d in dates)))
        if len(ids) == 1:
            argv = ["qacct", "-j", ids[0]]
        else:
            known = [t for t in submitted.values() if t is not None]
            since = (min(known) if known else time.time() - 7 * 86400) - ACCOUNTING_SLACK
            # qacct reads -b in the local time of the host it runs on
            argv = ["qacct", "-o", self.user, "-b", time.strftime("%Y%m%d%H%M", time.localtime(since)), "-j"]
        records = await self._qacct(argv, listing=len(ids) > 1)
        by_id: Dict[str, List[Dict[str, str]]] = {}
        for rec in records:
            by_id.setdefault(rec["jobnumber"].strip(), []).append(rec)
        out: Dict[str, NativeRecord] = {}
        now = time.time()
        for batch_id in ids:
            chosen = gp.choose_record(by_id.get(batch_id, []), submitted.get(batch_id))
            if chosen is not None:
                out[batch_id] = gp.accounting_record(chosen, observed_at=now)
        return out

    async def _qacct(self, argv: List[str], listing: bool) -> List[Dict[str, str]]:
        res = await self.query(argv, accept=lambda r: gp.qacct_not_found(r.stdout + r.stderr))
        if not res.ok:
            return []  # not flushed yet (or never ran): the ladder's grace decides
        if res.stdout_truncated:
            raise QueryFailed("qacct printed more than the capture limit; accounting file too large for %s" % argv)
        try:
            return gp.parse_qacct(res.stdout, listing=listing)
        except ValueError as e:
            raise QueryFailed("unparsable qacct output: %s" % e) from None

    def map(self, record: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
        return gp.map_record(record, report_batch_holds=self.report_holds, last_status=last_status)

    # -- control -------------------------------------------------------------------------
    async def cancel(self, ref: JobRef) -> None:
        await self.control(["qdel", ref.batch_id], "cancel", done=GONE)

    async def hold(self, ref: JobRef, status: int) -> None:
        # qhold of a running job only sets a flag (state hr): the job keeps running
        if status == RUNNING:
            raise CommandFailed(1, RUNNING_HOLD_REFUSED)
        await self.control(["qhold", ref.batch_id], "hold")

    async def release(self, ref: JobRef) -> None:
        await self.control(["qrls", ref.batch_id], "resume")
