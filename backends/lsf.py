"""LSF: bsub/bjobs/bhist/bkill/bstop/bresume behind the adapter interface (backends.md §8).

Command builders and the thin runners are here; every parser and the state map are the pure
functions of ``lsf_parse``.
"""
from __future__ import annotations

import errno
import math
import os
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import trio

from blahp.backend import (ANY_EXIT_CODE, Backend, BackendContext, QueryFailed, SiteEnvironmentError, SubmitFailed,
                           current_user, query_failure, source_environment)
from blahp.jobid import JobRef
from blahp.jobmodel import job_name
from blahp.records import JobAnswer, NativeRecord
from blahp.runner import CommandNotExecutable

from . import lsf_parse as lp

TRANSIENT = ("not responding", "still trying", "Connection refused", "Resource temporarily unavailable",
             "Failed in an LSF library call", "Cannot connect", "cannot connect")
# bkill prints these on stderr (galaxyproject/galaxy#7007); control() looks at both streams
GONE = ("No matching job found",)
FINISHED = ("Job has already finished",)
# how an LSF without `bjobs -o` (before 9.1.1) refuses it
REJECTED_OPTION = ("illegal option", "invalid option", "Usage:")
PROFILE = "profile.lsf"
_GPU_MODEL_RE = re.compile(r"[A-Za-z0-9_.+-]+$")


class LsfBackend(Backend):
    name = "lsf"
    batch_id_pattern = r"\d+"
    prefix = "#BSUB"
    tools = ("bsub", "bjobs", "bhist", "bkill", "bstop", "bresume")
    unexpressed = ("HostSMPSize", "GPUMode")
    transient_errors = TRANSIENT

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        cfg = context.config
        self.user = current_user()
        self.report_holds = cfg.get_bool("pyblahp_report_batch_holds", True)
        self.request_memory = cfg.get_bool("lsf_request_memory", False)
        self.confpath = cfg.get("lsf_confpath")
        logs = cfg.get("bhist_logs_to_read")
        self.bhist_logs = str(cfg.get_int("bhist_logs_to_read", 0, minimum=0)) if logs else None
        self._site_env: Optional[Dict[str, str]] = None
        self._env_lock = trio.Lock()
        self._wide = False  # this LSF has no `bjobs -o`: use the -w table

    # -- environment (profile.lsf, imported once) ------------------------------------------
    async def environment(self) -> Optional[Dict[str, str]]:
        if not self.confpath:
            return None
        async with self._env_lock:
            if self._site_env is None:
                self._site_env = await self._import_profile()
        return self._site_env

    async def _import_profile(self) -> Dict[str, str]:
        profile = os.path.join(os.path.expandvars(self.confpath), PROFILE)
        try:
            env = await source_environment(self.context.runner, profile, self.context.command_timeout)
        except SiteEnvironmentError as e:
            # Not cached: the next command tries again; meanwhile no LSF command can run.
            raise CommandNotExecutable([profile], OSError(errno.ENOENT, "cannot load %s" % e)) from None
        env["LC_ALL"] = "C"
        self.log.info("LSF environment imported", profile=profile, variables=len(env))
        return env

    # -- submission ----------------------------------------------------------------------
    def directives(self, job, batch_output: Optional[str]) -> List[str]:
        d = ["-J %s" % job_name(job.h12)]
        out = batch_output or "/dev/null"
        d += ["-o %s" % out, "-e %s" % out]
        if job.queue:
            # LSF's own queue@cluster syntax: the value goes through as the site wrote it
            d.append("-q %s" % job.destination())
        if job.project:
            d.append("-P %s" % job.project)
        if job.runtime_s is not None:
            d.append("-W %d" % max(1, math.ceil(job.runtime_s / 60)))
        if job.memory_mb is not None and self.request_memory:
            # Units follow LSF_UNIT_FOR_LIMITS (MB by default), hence opt-in.
            d += ["-M %d" % job.memory_mb, '-R "rusage[mem=%d]"' % job.memory_mb]
        if job.node_number is not None:
            d.append("-n %d" % job.node_number)
        if job.smp_granularity is not None:
            d.append('-R "span[ptile=%d]"' % job.smp_granularity)
        if job.host_number == 1:
            d.append('-R "span[hosts=1]"')
        if job.whole_nodes:
            d.append("-x")
        gpu = self._gpu(job)
        if gpu:
            d.append(gpu)
        if job.mic_number:
            d.append('-R "rusage[nmics=%d]"' % job.mic_number)
        d.append("-L /bin/bash")
        return ["%s %s" % (self.prefix, x) for x in d]

    def _gpu(self, job) -> Optional[str]:
        if not job.gpu_number and not job.gpu_model:
            return None
        n = job.gpu_number or 1
        model = job.gpu_model
        if model and not _GPU_MODEL_RE.match(model):
            self.log.warning("GPU model not usable in an LSF resource string; ignored", model=model)
            model = None
        if model:
            select = " && ".join("gpu_model%d=='%s'" % (i, model) for i in range(n))
        else:
            select = "ngpus>%d" % (n - 1)
        return '-R "select[%s] rusage[ngpus_excl_p=%d]"' % (select, n)

    def ignored_attributes(self, job) -> Dict[str, Any]:
        out = super().ignored_attributes(job)
        if job.memory_mb is not None and not self.request_memory:
            out["RequestMemory"] = job.memory_mb
        if job.host_number is not None and job.host_number != 1:   # only span[hosts=1] exists
            out["HostNumber"] = job.host_number
        return out

    # The queue is in our block, so a site's local lines can still override it.

    render = Backend.batch_script

    async def submit(self, job, script_path: str) -> Tuple[str, Optional[str]]:
        try:
            with open(script_path, "rb") as f:
                script = f.read()
        except OSError as e:
            raise SubmitFailed(1, "cannot read the batch script %s: %s" % (script_path, e.strerror or e),
                               ambiguous=False) from None
        # bsub reads #BSUB directives only from a script on its standard input.
        res = await self.run_submit(["bsub"], job, stdin=script)
        batch_id = lp.parse_bsub(res.stdout)
        if batch_id is None:
            raise self.no_job_id(res)
        return batch_id, None

    async def find_by_key(self, job) -> Optional[Tuple[str, Optional[str]]]:
        name = job_name(job.h12)
        records = await self._bjobs(["-J", name], lp.FIND_FIELDS)
        for rec in records.values():
            if (rec.extra or {}).get("job_name") != name:
                continue
            answer = self.map(rec, None)
            if not answer.terminal:  # the state map decides what is finished
                return rec.batch_id, None
        return None

    # -- status --------------------------------------------------------------------------
    async def _bjobs(self, select: List[str], fields: Sequence[str]) -> Dict[str, NativeRecord]:
        """All of the user's jobs (finished ones while LSF keeps them: CLEAN_PERIOD), one call."""
        base = ["bjobs", "-u", self.user, "-a"] + select
        if not self._wide:
            argv = base + ["-noheader", "-o", lp.output_format(fields)]
            res = await self.query(argv, accept=ANY_EXIT_CODE)
            if res.returncode != 0 and any(p in res.stderr for p in REJECTED_OPTION) \
                    and not lp.no_jobs(res.stdout, res.stderr):
                self.log.warning("this LSF has no `bjobs -o`; using the `bjobs -w` table and bhist for exit codes")
                self._wide = True
            else:
                return self._parsed(argv, res, lambda text: lp.parse_bjobs_o(text, fields, observed_at=time.time()))
        argv = base + ["-w"]
        res = await self.query(argv, accept=ANY_EXIT_CODE)
        return self._parsed(argv, res, lambda text: lp.parse_bjobs_wide(text, observed_at=time.time()))

    def _parsed(self, argv, res, parse) -> Dict[str, NativeRecord]:
        if res.returncode != 0 and not lp.no_jobs(res.stdout, res.stderr):
            raise query_failure(argv[0], res)
        try:
            return parse(res.stdout)  # the "no jobs" sentence, if on stdout, is skipped
        except ValueError as e:
            raise QueryFailed("unparsable %s output: %s" % (argv[0], e)) from None

    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        return await self._bjobs([], lp.BULK_FIELDS)

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        """One ``bhist -l`` for every job the bulk view could not finish."""
        argv = ["bhist", "-l"] + (["-n", self.bhist_logs] if self.bhist_logs else []) + list(ids)
        res = await self.query(argv, accept=ANY_EXIT_CODE)
        # "No matching job found" is an answer (for some or all of the ids), whatever the exit code
        if res.returncode != 0 and not any(p in res.stdout + res.stderr for p in lp.NO_HISTORY):
            raise query_failure(argv[0], res)
        try:
            records = lp.parse_bhist(res.stdout, observed_at=time.time())
        except ValueError as e:
            raise QueryFailed("unparsable bhist output: %s" % e) from None
        wanted = set(ids)
        return {k: v for k, v in records.items() if k in wanted}

    def map(self, record: NativeRecord, last_status: Optional[int]) -> JobAnswer:
        return lp.map_record(record, report_batch_holds=self.report_holds, last_status=last_status)

    # -- control -------------------------------------------------------------------------
    async def cancel(self, ref: JobRef) -> bool:
        return await self.control(["bkill", ref.batch_id], "cancel", done=GONE, finished=FINISHED)

    async def hold(self, ref: JobRef, status: int) -> None:
        # bstop: a pending job becomes PSUSP, a running one USUSP (stopped with SIGSTOP).
        await self.control(["bstop", ref.batch_id], "hold")

    async def release(self, ref: JobRef) -> None:
        await self.control(["bresume", ref.batch_id], "resume")

    async def check(self):
        lines = []
        if self.confpath:
            try:
                env = await self.environment()
                lines.append(("LSF environment (%s)" % PROFILE, True, "%d variables" % len(env or {})))
            except CommandNotExecutable as e:
                lines.append(("LSF environment (%s)" % PROFILE, False, e.error.strerror or str(e.error)))
        lines += await super().check()
        return lines
