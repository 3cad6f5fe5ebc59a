"""Execution of asynchronous BLAH commands: one coroutine per request, result rows out."""
from __future__ import annotations

import os
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional

import trio

from gahp.protocol import StartJob

from .backend import Backend, QueryFailed
from .config import Config
from .jobid import JobRef, MalformedJobId, parse_dated

Rows = List[List[str]]


class BlahApp:
    def __init__(self, config: Config, backends: Dict[str, Backend], log: Any,
                 supported_lrms: Optional[Iterable[str]] = None) -> None:
        self.config = config
        self.backends = backends
        self.log = log
        allowed = set(supported_lrms) if supported_lrms is not None else set(backends)
        # Only systems both allowed by the site and backed by an adapter are served.
        self.served = {n: b for n, b in backends.items() if n in allowed}
        self._handlers: Dict[str, Callable[[StartJob, Any], Awaitable[Rows]]] = {
            "BLAH_PING": self.ping,
            "BLAH_GET_HOSTPORT": self.get_hostport,
            "BLAH_JOB_REFRESH_PROXY": self.refresh_proxy,
            "BLAH_JOB_SEND_PROXY_TO_WORKER_NODE": self.send_proxy_to_worker_node,
        }

    async def run(self, job: StartJob) -> Rows:
        log = self.log.bind(reqid=job.reqid, command=job.name)
        log.debug("request started", args=list(job.args[1:]))
        rows = await self._handlers[job.name](job, log)
        log.info("request done", result=rows[0][1:] if len(rows) == 1 else len(rows))
        return rows

    def parse_job_id(self, raw: str) -> JobRef:
        backend = self.backends.get(raw.partition("/")[0])
        return backend.parse_job_id(raw) if backend else parse_dated(raw)

    # -- handlers ------------------------------------------------------------------------
    async def ping(self, job: StartJob, log: Any) -> Rows:
        reqid, lrms = job.args
        backend = self.served.get(lrms)
        if backend is None:
            return [[reqid, "1", "Unsupported batch system %s" % lrms]]
        try:
            await backend.ping()
        except QueryFailed as e:
            log.warning("ping failed", lrms=lrms, error=str(e))
            return [[reqid, "1", "%s query failed: %s" % (lrms, e)]]
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
        # that path, so there is nothing to do; an unreadable path is worth a warning only.
        readable = await trio.to_thread.run_sync(os.access, proxy, os.R_OK)
        if not readable:
            log.warning("refreshed proxy not readable", job_id=ref.raw, proxy=proxy)
        return [[reqid, "0", "Proxy renewed"]]
