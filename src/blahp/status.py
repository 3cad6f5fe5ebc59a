"""The status engine shared by every backend (backends.md §3, §4).

One ``ClusterView`` per (backend, cluster): all status requests for jobs of that cluster wait on
one bulk query per cycle (single-flight), and the jobs the bulk query could not finish go to the
backend's accounting lookup in one batched call per cycle.  A job missing from a *successful*
query goes down the vanished-job ladder (accounting -> wrapper exit record -> grace -> explicit
error); a *failed* query is never evidence of anything: the last known state is served until
the stale limit.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import trio

from .backend import Backend, QueryFailed
from .records import COMPLETED, IDLE, REMOVED, JobAnswer, NativeRecord
from .wrapper import parse_exit_record

FINAL_KEEP = 3600.0  # final answers stay in memory this long after the last request


class ErrorAnswer:
    """A status request that gets an error result instead of an ad."""

    __slots__ = ("code", "message")

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return "ErrorAnswer(%d, %r)" % (self.code, self.message)


Answer = Union[JobAnswer, ErrorAnswer]


class Settings:
    def __init__(self, config: Any) -> None:
        g = config.get_float
        self.ttl_min = g("pyblahp_status_ttl_min", 30.0, minimum=0.1)
        self.ttl_max = max(self.ttl_min, g("pyblahp_status_ttl_max", 300.0, minimum=0.1))
        self.gap_floor = min(5.0, self.ttl_min)
        self.stale_limit = g("pyblahp_stale_limit", 1800.0, minimum=0.0)
        self.grace = g("pyblahp_vanished_grace", 600.0, minimum=0.0)
        self.policy = (config.get("pyblahp_vanished_policy") or "hold").strip().lower()
        self.vanished_exit_code = config.get_int("pyblahp_vanished_exit_code", 999)
        self.wait_limit = g("pyblahp_command_timeout", 60.0, minimum=1.0) + 10.0
        self.exit_dir = config.get("pyblahp_exit_dir")


class Tracked:
    """What we know about one job between requests."""

    __slots__ = ("batch_id", "blah_id", "row_id", "date", "h12", "submitted_at", "last_action_at",
                 "last", "last_native", "first_missing_at", "final", "cancelled", "asked_at", "saved")

    def __init__(self, batch_id: str, blah_id: str) -> None:
        self.batch_id = batch_id
        self.blah_id = blah_id
        self.row_id: Optional[int] = None
        self.date: Optional[str] = None
        self.h12: Optional[str] = None
        self.submitted_at = -math.inf
        self.last_action_at = -math.inf
        self.last: Optional[JobAnswer] = None
        self.last_native: Optional[str] = None
        self.first_missing_at: Optional[float] = None
        self.final: Optional[JobAnswer] = None
        self.cancelled = False
        self.asked_at = 0.0
        self.saved: Tuple[Any, ...] = ()


class Snapshot:
    __slots__ = ("taken_at", "duration", "records", "resolved", "resolve_error", "considered")

    def __init__(self, taken_at: float, duration: float, records: Dict[str, NativeRecord],
                 resolved: Dict[str, NativeRecord], resolve_error: Optional[str]) -> None:
        self.taken_at = taken_at
        self.duration = duration
        self.records = records
        self.resolved = resolved
        self.resolve_error = resolve_error
        # jobs that were tracked when this snapshot was taken (and so went to accounting)
        self.considered: frozenset = frozenset()


def _needs_accounting(backend: Backend, rec: Optional[NativeRecord], last_status: Optional[int]) -> bool:
    """Missing from the bulk view, or finished there without its exit status."""
    if rec is None:
        return True
    a = backend.map(rec, last_status)
    return a is None or (a.status == COMPLETED and not a.exit_known)


class ClusterView:
    def __init__(self, engine: "StatusEngine", backend: Backend, cluster: Optional[str]) -> None:
        self.engine = engine
        self.backend = backend
        self.cluster = cluster
        self.log = engine.log.bind(lrms=backend.name, cluster=cluster or "")
        self.tracked: Dict[str, Tracked] = {}
        self.snapshot: Optional[Snapshot] = None
        self.refreshing = False
        self.done = trio.Event()
        self.last_started = -math.inf
        self.last_duration = 0.0
        self.failures = 0
        self.retry_at = -math.inf
        self.last_error: Optional[str] = None

    # -- timing --------------------------------------------------------------------------
    @property
    def ttl(self) -> float:
        s = self.engine.settings
        return min(max(5 * self.last_duration, s.ttl_min), s.ttl_max)

    @property
    def min_gap(self) -> float:
        return max(self.engine.settings.gap_floor, 2 * self.last_duration)

    def _next_start(self, need: float) -> float:
        return max(need, self.last_started + self.min_gap, self.retry_at)

    # -- refresh -------------------------------------------------------------------------
    async def _refresh(self) -> None:
        now = self.engine.now
        started = now()
        self.last_started = started
        try:
            records = await self.backend.bulk_query(self.cluster)
        except QueryFailed as e:
            self.failures += 1
            self.last_error = str(e)
            self.retry_at = now() + min(5.0 * 2 ** (self.failures - 1), 300.0)
            self.log.warning("bulk status query failed", error=self.last_error, failures=self.failures)
            return
        except Exception as e:  # a parser bug must not wedge every waiter
            self.failures += 1
            self.last_error = "%s: %s" % (type(e).__name__, e)
            self.retry_at = now() + min(5.0 * 2 ** (self.failures - 1), 300.0)
            self.log.exception("bulk status query crashed")
            return
        if self.failures:
            self.log.info("bulk status query recovered", after_failures=self.failures)
        self.failures = 0
        self.retry_at = -math.inf
        self.last_error = None
        considered = frozenset(self.tracked)
        todo, resolved, resolve_error = await self._resolve(records)
        # the cycle adapts to the whole refresh (squeue and sacct), not to the bulk query alone
        self.last_duration = now() - started
        snap = Snapshot(started, self.last_duration, records, resolved, resolve_error)
        snap.considered = considered
        self.snapshot = snap
        # Settle every job this cycle resolved now, not when the gridmanager next asks: a
        # finished job is then final and never goes to accounting again.
        for t in todo:
            if t.final is None:
                self.engine._from_snapshot(self, t, snap)
        self._forget_old(started)

    async def _resolve(self, records: Dict[str, NativeRecord]
                       ) -> Tuple[List[Tracked], Dict[str, NativeRecord], Optional[str]]:
        todo = []
        for t in self.tracked.values():
            if t.final is not None or t.cancelled:
                continue
            if _needs_accounting(self.backend, records.get(t.batch_id), t.last.status if t.last else None):
                todo.append(t)
        if not todo:
            return todo, {}, None
        try:
            return todo, await self.backend.resolve(self.cluster, [t.batch_id for t in todo],
                                                    [t.date for t in todo]), None
        except QueryFailed as e:
            self.log.warning("accounting query failed; retried next cycle", error=str(e), jobs=len(todo))
            return todo, {}, str(e)

    def _forget_old(self, now: float) -> None:
        old = [k for k, t in self.tracked.items() if t.final is not None and now - t.asked_at > FINAL_KEEP]
        for k in old:
            del self.tracked[k]

    def _start_refresh(self) -> None:
        self.refreshing = True
        self.engine.nursery.start_soon(self._run_refresh)

    async def _run_refresh(self) -> None:
        try:
            await self._refresh()
        finally:
            self.refreshing = False
            done, self.done = self.done, trio.Event()
            done.set()

    async def wait_fresh(self, need: float) -> bool:
        """Wait for a snapshot taken at or after ``need`` (wall clock); False if none came."""
        deadline = trio.current_time() + self.engine.settings.wait_limit
        now = self.engine.now
        while True:
            snap = self.snapshot
            if snap is not None and snap.taken_at >= need:
                return True
            if self.failures and now() < self.retry_at and self.last_error is not None:
                return False  # failing: answer from what we have, without queueing on a timeout
            done = self.done
            if not self.refreshing:
                start = self._next_start(need)
                if start <= now():
                    self._start_refresh()
                    done = self.done
            wake = min(deadline, trio.current_time() + max(0.0, self._next_start(need) - now()))
            if self.refreshing:
                wake = deadline
            with trio.move_on_at(wake):
                await done.wait()
            if trio.current_time() >= deadline:
                return False
            if not self.refreshing and done.is_set() and self.failures and self.last_error is not None \
                    and (self.snapshot is None or self.snapshot.taken_at < need):
                return False


class StatusEngine:
    def __init__(self, settings: Settings, registry: Any, log: Any,
                 now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.registry = registry
        self.log = log
        self.now = now
        self.views: Dict[Tuple[str, str], ClusterView] = {}
        self.nursery: Optional[trio.Nursery] = None

    def attach(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def preload(self, backends: Dict[str, Backend]) -> None:
        """Track every job the registry says may still be live, so that the first cycle after a
        restart already resolves the ones that finished while we were down."""
        if self.registry is None:
            return
        from .jobid import MalformedJobId
        count = 0
        for name, backend in backends.items():
            rows = await self._db(self.registry.live_rows, name)
            for row in rows or ():
                try:
                    ref = backend.parse_job_id(row.blah_id)
                except (MalformedJobId, TypeError):
                    continue
                view = self.view(backend, ref.cluster)
                if ref.batch_id not in view.tracked:
                    t = Tracked(ref.batch_id, ref.raw)
                    t.date = ref.date
                    self._load(t, row)
                    view.tracked[ref.batch_id] = t
                    count += 1
        if count:
            self.log.info("jobs tracked from the registry", jobs=count)

    def view(self, backend: Backend, cluster: Optional[str]) -> ClusterView:
        k = (backend.name, backend.cluster_key(cluster))
        v = self.views.get(k)
        if v is None:
            v = self.views[k] = ClusterView(self, backend, cluster)
        return v

    # -- registry glue (blocking calls go to a worker thread) ------------------------------
    async def _db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.registry is None:
            return None
        return await trio.to_thread.run_sync(lambda: fn(*args, **kw))

    async def tracked(self, backend: Backend, ref: Any) -> Tuple[ClusterView, Tracked]:
        view = self.view(backend, ref.cluster)
        t = view.tracked.get(ref.batch_id)
        if t is None:
            t = Tracked(ref.batch_id, ref.raw)
            t.date = ref.date
            row = await self._db(self.registry.track, backend.name, ref.cluster, ref.batch_id, ref.raw) \
                if self.registry is not None else None
            if row is not None:
                self._load(t, row)
            view.tracked[ref.batch_id] = t
        return view, t

    def _load(self, t: Tracked, row: Any) -> None:
        from .jobmodel import key_hash
        from .registry import CANCELLED, FINAL
        t.row_id = row.id
        if row.key:
            t.h12 = key_hash(row.key)
        if row.submitted_at:
            t.submitted_at = row.submitted_at
        if row.last_action_at:
            t.last_action_at = row.last_action_at
        t.cancelled = row.state == CANCELLED
        if row.last_status and row.last_seen_at:
            t.last = JobAnswer(int(row.last_status), {"BatchJobId": t.batch_id,
                                                      "BatchJobState": row.last_native or "unknown"})
            t.last_native = row.last_native
        t.first_missing_at = row.first_missing_at
        if row.state == FINAL and row.exit_json:
            info = row.exit_info or {}
            t.final = JobAnswer(int(info.get("JobStatus", row.last_status or COMPLETED)), info)
        t.saved = (row.last_status, row.first_missing_at)

    async def _save(self, t: Tracked, answer: Optional[JobAnswer]) -> None:
        if self.registry is None or t.row_id is None:
            return
        if answer is not None and answer.terminal and t.final is answer and t.saved != (answer.status, None):
            await self._db(self.registry.finish, t.row_id, answer.status, dict(answer.attrs, JobStatus=answer.status))
            t.saved = (answer.status, None)
            return
        state = (answer.status if answer else (t.last.status if t.last else None), t.first_missing_at)
        if state != t.saved:
            await self._db(self.registry.update, t.row_id, last_status=state[0], first_missing_at=state[1],
                           last_seen_at=self.now(), last_native=t.last_native)
            t.saved = state

    # -- answering -----------------------------------------------------------------------
    async def status(self, backend: Backend, ref: Any, fresh_after: float = -math.inf) -> Answer:
        view, t = await self.tracked(backend, ref)
        now = self.now()
        t.asked_at = now
        if t.final is not None:
            await self._save(t, t.final)  # settled by a refresh, perhaps not written yet
            return t.final
        if t.cancelled:
            return self._finish(t, JobAnswer(REMOVED, {"BatchJobId": t.batch_id,
                                                       "ExitReason": "cancelled through BLAH_JOB_CANCEL",
                                                       "BatchJobState": "cancelled"}))
        need = max(now - view.ttl, t.submitted_at + 1.0, t.last_action_at + 1.0, fresh_after)
        fresh = await view.wait_fresh(need)
        snap = view.snapshot
        if fresh and snap is not None and snap.taken_at >= need and self._unsettled(view, t, snap):
            # First asked after this snapshot went to accounting (an id we did not submit, e.g.
            # minted by the C blahp): the next regular cycle resolves it; no extra query.
            fresh = await view.wait_fresh(snap.taken_at + view.ttl)
            snap = view.snapshot
            need = snap.taken_at if snap is not None else need
        if t.final is not None:
            answer: Answer = t.final
        elif not fresh or snap is None or snap.taken_at < need:
            answer = self._stale(view, t, snap)
        else:
            answer = self._from_snapshot(view, t, snap)
        await self._save(t, answer if isinstance(answer, JobAnswer) else None)
        return answer

    @staticmethod
    def _unsettled(view: ClusterView, t: Tracked, snap: Snapshot) -> bool:
        if t.batch_id in snap.considered or t.final is not None:
            return False
        return _needs_accounting(view.backend, snap.records.get(t.batch_id), None)

    def _finish(self, t: Tracked, answer: JobAnswer) -> JobAnswer:
        t.final = answer
        t.last = answer
        t.first_missing_at = None
        return answer

    def _stale(self, view: ClusterView, t: Tracked, snap: Optional[Snapshot]) -> Answer:
        """The query failed (or is too slow): last known state while it is recent enough."""
        s = self.settings
        last_good = snap.taken_at if snap is not None else None
        if last_good is not None and self.now() - last_good <= s.stale_limit:
            if t.last is not None:
                return t.last
            rec = snap.records.get(t.batch_id)
            if rec is not None:
                a = view.backend.map(rec, None)
                if a is not None and not a.terminal:
                    return a
            return JobAnswer(IDLE, {"BatchJobId": t.batch_id, "BatchJobState": "unknown"})
        return ErrorAnswer(255, "status command failed: %s" % (view.last_error or "no answer from %s" % view.backend.name))

    def _from_snapshot(self, view: ClusterView, t: Tracked, snap: Snapshot) -> Answer:
        backend = view.backend
        last_status = t.last.status if t.last else None
        rec = snap.records.get(t.batch_id)
        acct = snap.resolved.get(t.batch_id)
        answer: Optional[JobAnswer] = None
        if rec is not None:
            answer = backend.map(backend.merge(rec, acct), last_status)
        elif acct is not None:
            answer = backend.map(acct, last_status)
        if answer is not None and answer.status == COMPLETED and not answer.exit_known:
            answer = self._with_exit_record(t, answer)
        if answer is not None and answer.status == COMPLETED:
            answer = self._reconcile_signal(t, answer)
        if answer is not None and (answer.status != COMPLETED or answer.exit_known):
            t.first_missing_at = None
            t.last_native = str(answer.attrs.get("BatchJobState", ""))[:200]
            if answer.terminal:
                return self._finish(t, answer)
            t.last = answer
            return answer
        # Missing (or finished with no exit information yet): the ladder.
        record = self._exit_record(t)
        if record is not None:
            return self._finish(t, _answer_from_record(t.batch_id, record))
        if t.first_missing_at is None:
            t.first_missing_at = snap.taken_at
            view.log.info("job missing from the batch system; waiting for accounting or exit record",
                          job_id=t.blah_id, batch_id=t.batch_id)
        waited = self.now() - t.first_missing_at
        if waited < self.settings.grace:
            if t.last is not None and not t.last.terminal:
                return t.last
            return JobAnswer(IDLE, {"BatchJobId": t.batch_id, "BatchJobState": "not yet visible"})
        lrms = backend.name
        if self.settings.policy == "complete":
            return self._finish(t, JobAnswer(COMPLETED, {
                "BatchJobId": t.batch_id, "ExitCode": self.settings.vanished_exit_code, "ExitBySignal": False,
                "ExitReason": "vanished from %s without exit status" % lrms, "BatchJobState": "vanished"}))
        detail = "no accounting record and no exit record after %d s" % int(self.settings.grace)
        if snap.resolve_error:
            detail += " (last accounting error: %s)" % snap.resolve_error
        return ErrorAnswer(1, "Job %s vanished from %s: %s" % (t.batch_id, lrms, detail))

    # -- exit records (submit-ad.md §12.3) -------------------------------------------------
    def _exit_record(self, t: Tracked) -> Optional[Dict[str, str]]:
        if not t.h12 or not self.settings.exit_dir:
            return None
        try:
            with open(os.path.join(self.settings.exit_dir, t.h12 + ".exit"), encoding="utf-8",
                      errors="replace") as f:
                rec = parse_exit_record(f.read())
        except OSError:
            return None
        # The key (and so the file name) is reused when a cancelled job is submitted again.
        bid = rec.get("batch_id", "")
        if not rec or (bid and bid.split(".")[0] != t.batch_id):
            return None
        try:
            if int(rec.get("start", "0")) < t.submitted_at - 300:
                return None
        except ValueError:
            pass
        return rec

    def _with_exit_record(self, t: Tracked, answer: JobAnswer) -> JobAnswer:
        rec = self._exit_record(t)
        if rec is None:
            return answer
        merged = _answer_from_record(t.batch_id, rec)
        attrs = dict(answer.attrs)
        for k in ("ExitCode", "ExitBySignal", "ExitSignal"):
            if k in merged.attrs:
                attrs[k] = merged.attrs[k]
        return JobAnswer(answer.status, attrs)

    def _reconcile_signal(self, t: Tracked, answer: JobAnswer) -> JobAnswer:
        """The wrapper exits 128+S for a payload killed by S; its exit record says which.

        Slurm 22.05 even records a batch script's ``exit 137`` as ``9:0``, so both forms are
        matched against the record's signal.
        """
        code = answer.attrs.get("ExitCode")
        if not isinstance(code, int) or code <= 0 or answer.attrs.get("ExitBySignal"):
            return answer
        rec = self._exit_record(t)
        if rec is None:
            return answer
        try:
            sig = int(rec.get("signal", "0"))
        except ValueError:
            return answer
        if sig and code in (sig, 128 + sig) and rec.get("exit_code") == str(128 + sig):
            attrs = {k: v for k, v in answer.attrs.items() if k != "ExitCode"}
            attrs["ExitBySignal"] = True
            attrs["ExitSignal"] = sig
            return JobAnswer(answer.status, attrs)
        return answer

    # -- actions and pings ---------------------------------------------------------------------
    async def note_action(self, backend: Backend, ref: Any, cancelled: bool = False) -> None:
        view, t = await self.tracked(backend, ref)
        t.last_action_at = self.now()
        if cancelled:
            t.cancelled = True
        if t.row_id is not None and self.registry is not None:
            from .registry import CANCELLED
            fields: Dict[str, Any] = {"last_action_at": t.last_action_at}
            if cancelled:
                fields["state"] = CANCELLED
            await self._db(self.registry.update, t.row_id, **fields)

    async def current(self, backend: Backend, ref: Any) -> Answer:
        """Status as of now (for hold/resume): a snapshot taken after this call."""
        return await self.status(backend, ref, fresh_after=self.now())

    async def ping(self, backend: Backend, cluster: Optional[str] = None) -> Optional[str]:
        """None when a fresh bulk query succeeded, else why not."""
        view = self.view(backend, cluster)
        if self.nursery is None:
            try:
                await backend.bulk_query(cluster)
            except QueryFailed as e:
                return str(e)
            return None
        need = self.now()
        ok = await view.wait_fresh(need)
        if ok and view.snapshot is not None and view.snapshot.taken_at >= need:
            return None
        return view.last_error or "no answer within %g s" % self.settings.wait_limit


def _answer_from_record(batch_id: str, rec: Dict[str, str]) -> JobAnswer:
    attrs: Dict[str, Any] = {"BatchJobId": batch_id}
    try:
        code = int(rec.get("exit_code", ""))
    except ValueError:
        code = 1
    try:
        sig = int(rec.get("signal", "0") or 0)
    except ValueError:
        sig = 0
    if sig:
        attrs["ExitBySignal"] = True
        attrs["ExitSignal"] = sig
    else:
        attrs["ExitBySignal"] = False
        attrs["ExitCode"] = code
    if rec.get("reason"):
        attrs["ExitReason"] = "wrapper: %s" % rec["reason"]
    if rec.get("host"):
        attrs["WorkerNode"] = rec["host"]
    try:
        attrs["RemoteWallClockTime"] = float(int(rec["end"]) - int(rec["start"]))
    except (KeyError, ValueError):
        pass
    attrs["BatchJobState"] = "exit-record"
    return JobAnswer(COMPLETED, attrs)


__all__ = ["StatusEngine", "Settings", "ErrorAnswer", "Answer", "ClusterView"]
