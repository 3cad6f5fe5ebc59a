"""Idempotent submission (backends.md §5.3, submit-ad.md §1).

The registry row is committed before the submit command runs, the batch job carries the key, and
the submit command never runs twice for one request: an ambiguous failure (timeout, signal, no id
printed) is settled by looking the job up by its key, not by trying again.
"""
from __future__ import annotations

import datetime
import os
import tempfile
from typing import Any, Dict, Optional, Tuple

import trio

from . import localattrs, wrapper
from .backend import Backend, QueryFailed, SubmitFailed
from .jobmodel import JobDescription, SubmitError, job_name
from .records import TERMINAL
from .registry import CANCELLED, FAILED, FINAL, SUBMITTED, SUBMITTING

ADOPT_ATTEMPTS = 3
ADOPT_SPACING = 10.0


class Submitter:
    def __init__(self, config: Any, registry: Any, engine: Any, log: Any, *, home: str,
                 install_prefix: Optional[str] = None) -> None:
        self.config = config
        self.registry = registry
        self.engine = engine
        self.log = log
        self.home = home
        self.install_prefix = install_prefix
        self.exit_dir = config.get("pyblahp_exit_dir") or wrapper.default_exit_dir(home)
        self.temp_dir = (config.get("blah_temp_dir") or config.environment.get("GAHP_TEMP")
                         or config.environment.get("TMPDIR") or "/tmp")
        self.debug_dir = config.get("blah_debug_save_submit_info")
        self.command_timeout = config.get_float("pyblahp_command_timeout", 60.0, minimum=1.0)
        self.submit_timeout = config.get_float("pyblahp_submit_timeout", 180.0, minimum=1.0)
        self._key_locks: Dict[str, trio.Lock] = {}

    async def _db(self, fn, *args, **kw):
        return await trio.to_thread.run_sync(lambda: fn(*args, **kw))

    async def submit(self, backend: Backend, job: JobDescription, log: Any) -> str:
        """Return the job id; raise SubmitError with the result's code and message."""
        lock = self._key_locks.setdefault(job.key, trio.Lock())
        try:
            async with lock:
                existing = await self._existing(backend, job, log)
                if existing is not None:
                    return existing
                return await self._submit_new(backend, job, log)
        finally:
            if not lock.statistics().tasks_waiting and not lock.locked():
                self._key_locks.pop(job.key, None)

    async def _existing(self, backend: Backend, job: JobDescription, log: Any) -> Optional[str]:
        """The job id of a live batch job already submitted for this key, if any."""
        if not job.job_directory:
            return None
        row = await self._db(self.registry.latest_for_key, job.key)
        if row is None or row.state in (CANCELLED, FAILED, FINAL):
            return None
        if row.digest != job.digest:
            log.warning("same JobDirectory submitted with a different ad; submitting a new job",
                        key=job.key, previous=row.blah_id)
            return None
        if row.state == SUBMITTING:
            if row.owner_alive(lease=self.submit_timeout + 60):
                log.info("another process is submitting this key; waiting for it", owner=row.owner_pid)
                for _ in range(int(self.submit_timeout) + 60):
                    await trio.sleep(1.0)
                    row = await self._db(self.registry.latest_for_key, job.key)
                    if row is None or row.state != SUBMITTING:
                        break
                if row is None or row.state != SUBMITTED:
                    return None
            else:
                found = await self._find(backend, job, log)
                if found is None:
                    await self._db(self.registry.failed, row.id)
                    return None
                blah_id = backend.make_job_id(found[0], found[1], datetime.datetime.utcnow())
                await self._db(self.registry.submitted, row.id, blah_id, found[0], found[1])
                log.warning("adopted a job submitted before a crash", job_id=blah_id, key=job.key)
                return blah_id
        # SUBMITTED: only a job that is still alive suppresses a new submission.
        ref = backend.parse_job_id(row.blah_id)
        answer = await self.engine.status(backend, ref)
        if getattr(answer, "status", None) is not None and answer.status not in TERMINAL:
            log.info("duplicate submit suppressed", job_id=row.blah_id, key=job.key)
            return row.blah_id
        return None

    async def _find(self, backend: Backend, job: JobDescription, log: Any) -> Optional[Tuple[str, Optional[str]]]:
        for attempt in range(ADOPT_ATTEMPTS):
            try:
                found = await backend.find_by_key(job)
            except QueryFailed as e:
                log.warning("lookup by key failed", attempt=attempt + 1, error=str(e))
                found = None
            if found is not None:
                return found
            if attempt + 1 < ADOPT_ATTEMPTS:
                await trio.sleep(ADOPT_SPACING)
        return None

    async def _submit_new(self, backend: Backend, job: JobDescription, log: Any) -> str:
        local_out = ""
        driver = None
        script = localattrs.find_script(backend.name, self.config, self.home, self.install_prefix)
        if script is not None:
            local_out, driver = await localattrs.run_script(
                job, script, backend.context.runner, temp_dir=self.temp_dir, timeout=self.command_timeout, log=log)
        debug = self._debug_dir(job)
        batch_output = os.path.join(debug, "wrapper.stdout") if debug else None
        body = wrapper.render(job, self.config, exit_dir=self.exit_dir)
        text = backend.render(job, localattrs.directive_lines(local_out), body, batch_output)
        ignored = backend.ignored_attributes(job)
        if ignored:
            log.debug("submit attributes %s cannot express are not mapped" % backend.name, ignored=ignored)
        path = self._write_script(text)
        try:
            if debug:
                self._save_debug(debug, text, driver, job)
            row_id = await self._db(self.registry.begin_submit, job.key, job.digest, backend.name, job.cluster)
            log.info("submitting", key=job.key, job_name=job_name(job.h12))
            try:
                batch_id, cluster = await backend.submit(job, path)
            except SubmitFailed as e:
                if not e.ambiguous:
                    await self._db(self.registry.failed, row_id)
                    raise SubmitError(e.code, e.message) from None
                log.warning("submit outcome unknown; looking the job up by its key", error=e.message)
                found = await self._find(backend, job, log)
                if found is None:
                    await self._db(self.registry.failed, row_id)
                    raise SubmitError(e.code, e.message) from None
                batch_id, cluster = found
                log.warning("adopted the job the failed submit created", batch_id=batch_id)
            now = datetime.datetime.utcnow()
            blah_id = backend.make_job_id(batch_id, cluster, now)
            ref = backend.parse_job_id(blah_id)  # never return an id we would refuse ourselves
            await self._db(self.registry.submitted, row_id, blah_id, ref.batch_id, ref.cluster)
            await self.engine.tracked(backend, ref)  # in the next cycle's accounting set from now on
            return blah_id
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _write_script(self, text: str) -> str:
        try:
            fd, path = tempfile.mkstemp(prefix="bl_", suffix=".sh", dir=self.temp_dir)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)
        except OSError as e:
            raise SubmitError(1, "Error writing to %s: %s" % (self.temp_dir, e.strerror or e)) from None
        return path

    def _debug_dir(self, job: JobDescription) -> Optional[str]:
        if not self.debug_dir:
            return None
        d = os.path.join(self.debug_dir, job_name(job.h12) + ".debug")
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            return None
        return d

    def _save_debug(self, d: str, text: str, driver: Optional[str], job: JobDescription) -> None:
        try:
            with open(os.path.join(d, "submit.script"), "w") as f:
                f.write(text)
            if driver:
                with open(os.path.join(d, "attributes.script"), "w") as f:
                    f.write(driver)
            with open(os.path.join(d, "attributes"), "w") as f:
                f.write("".join(line + "\n" for line in job.attribute_lines))
        except OSError:
            pass


__all__ = ["Submitter", "SubmitError"]
