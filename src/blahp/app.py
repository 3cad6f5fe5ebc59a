"""Execution of asynchronous BLAH commands: one coroutine per request, result rows out."""
from __future__ import annotations

import os
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional

import trio

from gahp.protocol import StartJob

from .backend import Backend, CommandFailed
from .config import Config
from .jobid import JobRef, MalformedJobId, parse_dated
from .jobmodel import SubmitError, build_job, parse_submit_ad
from .records import COMPLETED, HELD, IDLE, REMOVED, RUNNING
from .results import status_ad
from .status import ErrorAnswer, Settings, StatusEngine
from .submit import Submitter

Rows = List[List[str]]
_STATE_WORD = {IDLE: "IDLE", RUNNING: "RUNNING", HELD: "HELD"}
_STATE_NAME = {IDLE: "Idle", RUNNING: "Running", REMOVED: "Removed", COMPLETED: "Completed", HELD: "Held"}


class BlahApp:
    def __init__(self, config: Config, backends: Dict[str, Backend], log: Any,
                 supported_lrms: Optional[Iterable[str]] = None, *, engine: Optional[StatusEngine] = None,
                 submitter: Optional[Submitter] = None, cwd: Optional[str] = None,
                 home: Optional[str] = None) -> None:
        self.config = config
        self.backends = backends
        self.log = log
        allowed = set(supported_lrms) if supported_lrms is not None else set(backends)
        # Only systems both allowed by the site and backed by an adapter are served.
        self.served = {n: b for n, b in backends.items() if n in allowed}
        self.engine = engine if engine is not None else StatusEngine(Settings(config), None, log)
        self.submitter = submitter
        self.cwd = cwd
        self.home = home
        self._handlers: Dict[str, Callable[[StartJob, Any], Awaitable[Rows]]] = {
            "BLAH_PING": self.ping,
            "BLAH_GET_HOSTPORT": self.get_hostport,
            "BLAH_JOB_REFRESH_PROXY": self.refresh_proxy,
            "BLAH_JOB_SEND_PROXY_TO_WORKER_NODE": self.send_proxy_to_worker_node,
            "BLAH_JOB_SUBMIT": self.submit,
            "BLAH_JOB_STATUS": self.status,
            "BLAH_JOB_CANCEL": self.cancel,
            "BLAH_JOB_HOLD": self.hold,
            "BLAH_JOB_RESUME": self.resume,
        }

    def attach(self, nursery: trio.Nursery) -> None:
        self.engine.attach(nursery)
        nursery.start_soon(self.engine.preload, self.served)

    async def run(self, job: StartJob) -> Rows:
        log = self.log.bind(reqid=job.reqid, command=job.name)
        log.debug("request started", args=list(job.args[1:]))
        rows = await self._handlers[job.name](job, log)
        log.info("request done", result=rows[0][1:3] if len(rows) == 1 else len(rows))
        return rows

    def parse_job_id(self, raw: str) -> JobRef:
        backend = self.backends.get(raw.partition("/")[0])
        return backend.parse_job_id(raw) if backend else parse_dated(raw)

    def _served_backend(self, ref: JobRef) -> Optional[Backend]:
        return self.served.get(ref.lrms)

    # -- submit --------------------------------------------------------------------------
    async def submit(self, job: StartJob, log: Any) -> Rows:
        reqid, text = job.args
        try:
            ad = parse_submit_ad(text)
            desc = await trio.to_thread.run_sync(lambda: build_job(
                ad, self.config, supported=list(self.served), log=log, cwd=self.cwd, home=self.home))
            backend = self.served[desc.gridtype]
            log = log.bind(key=desc.key, lrms=desc.gridtype)
            job_id = await self.submitter.submit(backend, desc, log)
        except SubmitError as e:
            log.warning("submit refused", code=e.code, reason=e.message)
            return [[reqid, str(e.code), e.message, "N/A"]]
        log.info("submitted", job_id=job_id)
        return [[reqid, "0", "No error", job_id]]

    # -- status --------------------------------------------------------------------------
    async def status(self, job: StartJob, log: Any) -> Rows:
        reqid, raw = job.args
        ids = raw.split(" ")
        if len(ids) == 1:
            return [await self._status_one(reqid, raw, log)]
        rows: Rows = [[]] * len(ids)

        async def one(i: int, jid: str) -> None:
            rows[i] = await self._status_one("%s.%d" % (reqid, i), jid, log)

        async with trio.open_nursery() as n:
            for i, jid in enumerate(ids):
                n.start_soon(one, i, jid)
        return rows

    async def _status_one(self, reqid: str, raw: str, log: Any) -> List[str]:
        try:
            ref = self.parse_job_id(raw)
        except MalformedJobId:
            return [reqid, "255", "Malformed jobId or out of memory", "0", "N/A"]
        backend = self._served_backend(ref)
        if backend is None:
            return [reqid, "255", "Unsupported batch system %s" % ref.lrms, "0", "N/A"]
        answer = await self.engine.status(backend, ref)
        if isinstance(answer, ErrorAnswer):
            log.warning("status error", job_id=raw, code=answer.code, reason=answer.message)
            return [reqid, str(answer.code), answer.message, "0", "N/A"]
        return [reqid, "0", "No Error", str(answer.status), status_ad(answer)]

    # -- cancel, hold, resume ----------------------------------------------------------------
    async def cancel(self, job: StartJob, log: Any) -> Rows:
        reqid, raw = job.args
        ids = raw.split(" ")
        if len(ids) == 1:
            return [await self._cancel_one(reqid, raw, log)]
        return [await self._cancel_one("%s.%d" % (reqid, i), jid, log) for i, jid in enumerate(ids)]

    def _target(self, reqid: str, raw: str, malformed: str):
        """(ref, backend), or the 3-field error row for an id we cannot act on."""
        try:
            ref = self.parse_job_id(raw)
        except MalformedJobId:
            return None, [reqid, "2", malformed % raw]
        backend = self._served_backend(ref)
        if backend is None:
            return None, [reqid, "1", "Unsupported batch system %s" % ref.lrms]
        return ref, backend

    async def _cancel_one(self, reqid: str, raw: str, log: Any) -> List[str]:
        ref, backend = self._target(reqid, raw, "Malformed jobId %s or out of memory")
        if ref is None:
            return backend
        log = log.bind(job_id=raw, batch_id=ref.batch_id)
        try:
            killed = await backend.cancel(ref)
        except CommandFailed as e:
            if e.not_executable:
                return [reqid, "3", e.detail]
            log.warning("cancel failed", code=e.code, detail=e.detail)
            return [reqid, str(e.code), "Cancellation command failed %s" % e.detail]
        if killed is False:
            log.info("cancel: the job had already finished; its own final state stands")
        await self.engine.note_action(backend, ref, cancelled=killed is not False)
        log.info("cancelled")
        return [reqid, "0", "No error"]

    async def hold(self, job: StartJob, log: Any) -> Rows:
        return [await self._hold_resume(job, log, hold=True)]

    async def resume(self, job: StartJob, log: Any) -> Rows:
        return [await self._hold_resume(job, log, hold=False)]

    async def _hold_resume(self, job: StartJob, log: Any, hold: bool) -> List[str]:
        reqid, raw = job.args
        ref, backend = self._target(reqid, raw, "Malformed jobId %s")
        if ref is None:
            return backend
        answer = await self.engine.current(backend, ref)
        if isinstance(answer, ErrorAnswer):
            return [reqid, str(answer.code), answer.message]
        state = answer.status
        if hold and state == HELD:
            return [reqid, "0", "Job Held jobId %s" % raw]
        wanted = (IDLE, RUNNING) if hold else (HELD,)
        if state not in wanted:
            name = _STATE_NAME.get(state)
            if name is None:
                return [reqid, "1", "Job in unsupported state %d jobId %s" % (state, raw)]
            return [reqid, "1", "Job %s jobId %s" % (name, raw)]
        try:
            if hold:
                await backend.hold(ref, state)
            else:
                await backend.release(ref)
        except CommandFailed as e:
            if e.not_executable:
                return [reqid, "1", "Cannot execute %s" % e.detail]
            if e.detail.startswith("Hold not supported"):
                return [reqid, "1", e.detail]
            return [reqid, str(e.code), "Job %s: %s %s command failed %s" % (
                _STATE_WORD[state], backend.name, "hold" if hold else "resume", e.detail)]
        await self.engine.note_action(backend, ref)
        log.info("held" if hold else "released", job_id=raw, state_before=state)
        return [reqid, "0", "No error"]

    # -- ping and legacy ---------------------------------------------------------------------
    async def ping(self, job: StartJob, log: Any) -> Rows:
        reqid, lrms = job.args
        backend = self.served.get(lrms)
        if backend is None:
            return [[reqid, "1", "Unsupported batch system %s" % lrms]]
        error = await self.engine.ping(backend)
        if error is not None:
            log.warning("ping failed", lrms=lrms, error=error)
            return [[reqid, "1", "%s query failed: %s" % (lrms, error)]]
        return [[reqid, "0", "No error"]]

    async def get_hostport(self, job: StartJob, log: Any) -> Rows:
        return [[job.reqid, "1", "Unable to retrieve the port (not supported)"]]

    async def send_proxy_to_worker_node(self, job: StartJob, log: Any) -> Rows:
        return [[job.reqid, "1", "Worker node proxy renewal not supported"]]

    async def refresh_proxy(self, job: StartJob, log: Any) -> Rows:
        reqid, raw_id, proxy = job.args
        try:
            ref = self.parse_job_id(raw_id)
        except MalformedJobId:
            return [[reqid, "2", "Malformed jobId %s" % raw_id]]
        # The file-transfer GAHP has already rewritten the proxy in place and the job reads
        # that path (pyblahp never copies proxies), so there is nothing to do; an unreadable
        # path is worth a warning only.
        readable = await trio.to_thread.run_sync(os.access, proxy, os.R_OK)
        if not readable:
            log.warning("refreshed proxy not readable", job_id=ref.raw, proxy=proxy)
        return [[reqid, "0", "Proxy renewed"]]
