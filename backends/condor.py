"""HTCondor as the batch system (``gridtype = condor``): condor_submit/q/history/rm/hold/release.

There is no job wrapper: HTCondor itself moves files, sets the environment and records exit
codes, so the "script" handed to ``submit()`` is a submit description.  A job id is
``condor/<ClusterId>/<schedd>/<pool>`` (schedd and pool may be empty); the schedd/pool pair is
the cluster identity, so each schedd gets its own status view (cluster ids restart per schedd).
Parsers and the state map are the pure functions of ``condor_parse``.
"""
from __future__ import annotations

import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

from blahp.backend import Backend, BackendContext, QueryFailed, current_user
from blahp.jobid import JobRef, MalformedJobId, lrms_of
from blahp.jobmodel import SubmitError
from blahp.records import JobAnswer, NativeRecord

from . import condor_parse as cp

# Schedd and pool names (``schedd@host``, ``cm.example.org:9618``); never an option lookalike.
_NAME = re.compile(r"[A-Za-z0-9_.@:][A-Za-z0-9_.@:-]*\Z")
TRANSIENT = ("Failed to connect to", "Connection refused", "timed out", "Timeout", "Resource temporarily unavailable",
             "Can't connect to", "SECMAN:2007", "Failed to fetch ads")
GONE = ("not found", "already marked for removal", "There are no jobs in the queue")
HISTORY_UNSET = "configuration key HISTORY is unset"
REPROBE_HISTORY = 3600.0
# Beyond this many ids the history lookup selects by the oldest id instead of listing them all.
HISTORY_BY_ID = 500
ACTIONS = {"cancel": "condor_rm", "hold": "condor_hold", "resume": "condor_release"}


def split_target(cluster: Optional[str]) -> Tuple[str, str]:
    """``"schedd/pool"`` → (schedd, pool); None → ("", "")."""
    if not cluster:
        return "", ""
    schedd, _, pool = cluster.partition("/")
    return schedd, pool


def join_target(schedd: str, pool: str) -> Optional[str]:
    return "%s/%s" % (schedd, pool) if schedd or pool else None


def target_args(cluster: Optional[str]) -> List[str]:
    schedd, pool = split_target(cluster)
    return (["-name", schedd] if schedd else []) + (["-pool", pool] if pool else [])


class CondorBackend(Backend):
    name = "condor"
    batch_id_pattern = r"\d+"
    transient_errors = TRANSIENT
    tools = ("condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold", "condor_release")
    unexpressed = ("BatchProject", "SMPGranularity", "HostNumber", "HostSMPSize", "WholeNodes", "GPUMode", "MICNumber")

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.user = current_user()
        self.report_holds = context.config.get_bool("pyblahp_report_batch_holds", True)
        self._no_history_until: Dict[str, float] = {}

    # -- identity ----------------------------------------------------------------------
    def parse_job_id(self, raw: str) -> JobRef:
        """``condor/<id>/<schedd>/<pool>``: the id between the first and second ``/``."""
        if lrms_of(raw) != self.name:
            raise MalformedJobId(raw)
        parts = raw.split("/")
        if len(parts) == 2:
            parts += ["", ""]  # ``condor/123``: the default schedd
        if len(parts) != 4 or not re.fullmatch(self.batch_id_pattern, parts[1]):
            raise MalformedJobId(raw)
        schedd, pool = parts[2], parts[3]
        for name in (schedd, pool):
            if name and not _NAME.match(name):
                raise MalformedJobId(raw)
        return JobRef(raw, self.name, parts[1], join_target(schedd, pool), None)

    def make_job_id(self, batch_id: str, cluster: Optional[str], when) -> str:
        schedd, pool = split_target(cluster)
        return "condor/%s/%s/%s" % (batch_id, schedd, pool)

    def cluster_key(self, cluster: Optional[str]) -> str:
        return cluster or ""

    @staticmethod
    def job_target(job) -> Optional[str]:
        """The schedd/pool of a submit ad's ``Queue`` (``schedd``, ``schedd/pool``).

        The job model splits ``Queue`` at ``@`` for the systems that name a cluster that way; a
        schedd called ``name@host`` is put back together here.
        """
        if not job.queue:
            return None
        queue = job.queue + ("@" + job.cluster if job.cluster else "")
        schedd, _, pool = queue.partition("/")
        for name in (schedd, pool):
            if name and not _NAME.match(name):
                raise SubmitError(1, "Invalid value for Queue: %r is not a schedd/pool name" % queue)
        return join_target(schedd, pool)

    # -- submission ----------------------------------------------------------------------
    def render(self, job, local_directives: Sequence[str], wrapper_text: str,
               batch_output: Optional[str]) -> str:
        # wrapper_text is not used: HTCondor runs the payload itself.
        from blahp import __version__
        self.job_target(job)  # refuse a bad Queue before anything is written
        header = "pyblahp %s %s key=%s" % (__version__, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), job.key)
        try:
            return cp.description(job, local_directives, header)
        except cp.Unrepresentable as e:
            raise SubmitError(1, "Cannot express the job in an HTCondor submit description: %s" % e) from None

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        target = self.job_target(job)
        argv = ["condor_submit", "-terse"] + target_args(target) + [script_path]
        # condor_submit commits the whole submission in one transaction at the end, but a lost
        # connection while committing leaves the outcome unknown (run_submit: ambiguous).
        res = await self.run_submit(argv, job)
        cluster_id = cp.parse_submit(res.stdout)
        if cluster_id is None:
            raise self.no_job_id(res)
        return cluster_id, target

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        target = self.job_target(job)
        argv = ["condor_q"] + target_args(target) + [
            self.user, "-constraint", "BlahpKey =?= %s" % cp.classad_string(job.key),
            "-json", "-attributes", "ClusterId,ProcId,JobStatus,BlahpKey"]
        res = await self.query(argv)
        try:
            found = cp.find_key(res.stdout, job.key)
        except ValueError as e:
            raise QueryFailed("unparsable condor_q output: %s" % e) from None
        for cluster_id, state in found:
            answer = self.map(NativeRecord(cluster_id, state), None)
            if not answer.terminal:  # an old job of a reused key is not this submission's
                return cluster_id, target
        return None

    # -- status --------------------------------------------------------------------------
    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        argv = ["condor_q"] + target_args(cluster) + [self.user, "-json", "-attributes", ",".join(cp.AD_ATTRS)]
        res = await self.query(argv)
        try:
            return cp.parse_records(res.stdout, "bulk", observed_at=time.time())
        except ValueError as e:
            raise QueryFailed("unparsable condor_q output: %s" % e) from None

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        key = cluster or ""
        if time.time() < self._no_history_until.get(key, 0.0):
            return {}
        if len(ids) <= HISTORY_BY_ID:
            select = ["-match", str(len(ids))] + ["%s.0" % i for i in ids]
        else:  # cluster ids only grow: everything of ours from the oldest one on, in one scan
            select = [self.user, "-constraint", "ClusterId >= %d" % min(int(i) for i in ids)]
        argv = ["condor_history"] + target_args(cluster) + ["-json", "-attributes", ",".join(cp.AD_ATTRS)] + select
        try:
            res = await self.query(argv)
        except QueryFailed as e:
            if HISTORY_UNSET in str(e):
                self.log.warning("HTCondor keeps no job history; finished jobs are known only while in "
                                 "the queue (leave_in_queue)", cluster=key, reprobe_after=REPROBE_HISTORY)
                self._no_history_until[key] = time.time() + REPROBE_HISTORY
                return {}
            raise
        try:
            records = cp.parse_records(res.stdout, "history", observed_at=time.time())
        except ValueError as e:
            raise QueryFailed("unparsable condor_history output: %s" % e) from None
        wanted = set(ids)
        return {k: v for k, v in records.items() if k in wanted}

    def map(self, record: NativeRecord, last_status: Optional[int]) -> JobAnswer:
        return cp.map_record(record, report_batch_holds=self.report_holds, last_status=last_status)

    # -- control -------------------------------------------------------------------------
    async def _control(self, what: str, ref: JobRef, done: Sequence[str]) -> None:
        await self.control([ACTIONS[what]] + target_args(ref.cluster) + ["%s.0" % ref.batch_id], what, done)

    async def cancel(self, ref: JobRef) -> None:
        await self._control("cancel", ref, GONE)

    async def hold(self, ref: JobRef, status: int) -> None:
        # HTCondor holds running jobs too: the job is evicted (hard kill) and waits held; on
        # release it starts again from the beginning.
        await self._control("hold", ref, ("already held",))

    async def release(self, ref: JobRef) -> None:
        await self._control("resume", ref, ())

    async def check(self):
        lines = await super().check()
        config = self.context.runner.environment.get("CONDOR_CONFIG")
        lines.insert(len(self.tools), ("CONDOR_CONFIG", True, config or "not set (HTCondor's default locations)"))
        return lines
