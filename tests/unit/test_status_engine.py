"""The status engine in-process, with a scripted backend: query budget, failures, the ladder."""
import os

import pytest
import trio

from blahp.backend import Backend, BackendContext, QueryFailed
from blahp.backends import slurm_parse as sp
from blahp.config import Config
from blahp.jobid import JobRef
from blahp.records import NativeRecord
from blahp.registry import Registry
from blahp.status import ErrorAnswer, Settings, StatusEngine
from gahp.runtime import NullLog


class Scripted(Backend):
    """Answers from ``self.queue`` / ``self.accounting``; counts its queries."""
    name = "slurm"
    batch_id_pattern = r"\d+"
    render = submit = find_by_key = cancel = None

    def __init__(self, ctx):
        super().__init__(ctx)
        self.queue = {}
        self.accounting = {}
        self.fail = None
        self.fail_resolve = None
        self.bulk_calls = 0
        self.resolve_calls = []
        self.delay = 0.05

    async def bulk_query(self, cluster):
        self.bulk_calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise QueryFailed(self.fail)
        return {k: NativeRecord(k, s) for k, s in self.queue.items()}

    async def resolve(self, cluster, ids, dates):
        self.resolve_calls.append(sorted(ids))
        if self.fail_resolve:
            raise QueryFailed(self.fail_resolve)
        return {i: self.accounting[i] for i in ids if i in self.accounting}

    def map(self, record, last_status):
        return sp.map_record(record, last_status=last_status)


def make(tmp_path, **cfg):
    values = {"pyblahp_status_ttl_min": "0.3", "pyblahp_status_ttl_max": "0.3", "pyblahp_vanished_grace": "1",
              "pyblahp_stale_limit": "1", "pyblahp_command_timeout": "2", "pyblahp_exit_dir": str(tmp_path / "exit")}
    values.update({k: str(v) for k, v in cfg.items()})
    config = Config(values=values)
    backend = Scripted(BackendContext(config, None, str(tmp_path), NullLog()))
    engine = StatusEngine(Settings(config), Registry(str(tmp_path / "reg.sqlite3")), NullLog())
    return engine, backend


def ref(n):
    return JobRef("slurm/20261122/%d" % n, "slurm", str(n), None, "20261122")


def run(engine, fn):
    async def main():
        async with trio.open_nursery() as n:
            engine.attach(n)
            result = await fn()
            n.cancel_scope.cancel()
        return result
    return trio.run(main)


def test_one_bulk_query_for_many_concurrent_requests(tmp_path):
    # a cycle far longer than registering 500 jobs takes on a loaded machine: every request
    # arrives within one cycle, so every one must be served by the same query
    engine, b = make(tmp_path, pyblahp_status_ttl_min=60, pyblahp_status_ttl_max=60)
    b.queue = {str(i): "RUNNING" for i in range(500)}

    async def burst():
        answers = {}

        async def one(i):
            answers[i] = await engine.status(b, ref(i))
        async with trio.open_nursery() as n:
            for i in range(500):
                n.start_soon(one, i)
        return answers
    answers = run(engine, burst)
    assert b.bulk_calls == 1
    assert b.resolve_calls == []
    assert {a.status for a in answers.values()} == {2}


def test_missing_jobs_are_resolved_in_one_batched_call(tmp_path):
    engine, b = make(tmp_path)
    b.queue = {"1": "RUNNING"}
    b.accounting = {str(i): NativeRecord(str(i), "COMPLETED", exit_code=i, exit_signal=0) for i in range(2, 40)}

    async def burst():
        out = {}

        async def one(i):
            out[i] = await engine.status(b, ref(i))
        async with trio.open_nursery() as n:
            for i in range(1, 40):
                n.start_soon(one, i)
        return out
    out = run(engine, burst)
    assert b.bulk_calls == 1 and len(b.resolve_calls) == 1 and len(b.resolve_calls[0]) == 38
    assert out[7].status == 4 and out[7].attrs["ExitCode"] == 7 and out[7].attrs["ExitBySignal"] is False


def test_query_failure_serves_the_last_known_state_then_errors(tmp_path):
    engine, b = make(tmp_path, pyblahp_stale_limit=1.5)
    b.queue = {"5": "RUNNING"}

    async def scenario():
        first = await engine.status(b, ref(5))
        b.fail = "squeue exit code 1: Unable to contact slurm controller"
        b.queue = {}
        await trio.sleep(0.5)
        during = await engine.status(b, ref(5))
        await trio.sleep(1.5)
        later = await engine.status(b, ref(5))
        return first, during, later
    first, during, later = run(engine, scenario)
    assert first.status == 2
    assert not isinstance(during, ErrorAnswer) and during.status == 2  # never "gone" on a failure
    assert isinstance(later, ErrorAnswer) and later.code == 255
    assert later.message.startswith("status command failed: squeue exit code 1")


def test_vanished_job_waits_out_the_grace_then_is_an_explicit_error(tmp_path):
    engine, b = make(tmp_path)
    b.queue = {"8": "RUNNING"}

    async def scenario():
        seen = [await engine.status(b, ref(8))]
        b.queue = {}
        await trio.sleep(0.4)
        seen.append(await engine.status(b, ref(8)))
        await trio.sleep(1.2)
        seen.append(await engine.status(b, ref(8)))
        return seen
    running, in_grace, after = run(engine, scenario)
    assert running.status == 2 and in_grace.status == 2  # last known state during the grace
    assert isinstance(after, ErrorAnswer) and after.code == 1
    assert after.message == "Job 8 vanished from slurm: no accounting record and no exit record after 1 s"


def test_vanished_policy_complete_uses_the_configured_code(tmp_path):
    engine, b = make(tmp_path, pyblahp_vanished_policy="complete")

    async def scenario():
        await engine.status(b, ref(9))
        await trio.sleep(1.3)
        return await engine.status(b, ref(9))
    a = run(engine, scenario)
    assert a.status == 4 and a.attrs["ExitCode"] == 999
    assert a.attrs["ExitReason"] == "vanished from slurm without exit status"
    assert a.attrs["BatchJobState"] == "vanished"


def test_exit_record_resolves_a_vanished_job(tmp_path):
    engine, b = make(tmp_path)
    reg = engine.registry
    row = reg.begin_submit("home_bl_x", "d", "slurm", None)
    reg.submitted(row, "slurm/20261122/11", "11", None)
    from blahp.jobmodel import key_hash
    os.makedirs(tmp_path / "exit")
    (tmp_path / "exit" / (key_hash("home_bl_x") + ".exit")).write_text(
        "pyblahp_exit_v1\nkey=home_bl_x\nbatch_id=11\nexit_code=137\nsignal=9\nstart=%d\nend=%d\nhost=wn1\n"
        % (2 ** 31, 2 ** 31 + 5))
    a = run(engine, lambda: engine.status(b, ref(11)))
    assert a.status == 4 and a.attrs["ExitBySignal"] is True and a.attrs["ExitSignal"] == 9
    assert a.attrs["WorkerNode"] == "wn1"
    # and the final answer is remembered across a restart (new engine, same registry)
    engine2 = StatusEngine(engine.settings, reg, NullLog())
    b.queue = {}
    a2 = run(engine2, lambda: engine2.status(b, ref(11)))
    assert a2.status == 4 and a2.attrs["ExitSignal"] == 9
    assert b.bulk_calls == 1


def test_accounting_failure_is_not_evidence(tmp_path):
    engine, b = make(tmp_path, pyblahp_vanished_grace=30)
    b.queue = {"3": "PENDING"}

    async def scenario():
        first = await engine.status(b, ref(3))
        b.queue = {}
        b.fail_resolve = "sacct: Problem talking to the database"
        await trio.sleep(0.4)
        return first, await engine.status(b, ref(3))
    first, second = run(engine, scenario)
    assert first.status == 1 and second.status == 1


def test_status_after_our_own_action_comes_from_a_later_snapshot(tmp_path):
    engine, b = make(tmp_path, pyblahp_status_ttl_min=60, pyblahp_status_ttl_max=60)
    b.queue = {"4": "RUNNING"}

    async def scenario():
        before = await engine.status(b, ref(4))
        b.queue = {"4": "CANCELLED"}
        cached = await engine.status(b, ref(4))  # a 60 s TTL: same snapshot
        await engine.note_action(b, ref(4))
        after = await engine.status(b, ref(4))
        return before, cached, after
    before, cached, after = run(engine, scenario)
    assert before.status == 2 and cached.status == 2
    assert after.status == 3
    assert b.bulk_calls == 2


def test_cancelled_through_blahp_is_removed_at_once(tmp_path):
    engine, b = make(tmp_path)
    b.queue = {"6": "RUNNING"}

    async def scenario():
        await engine.status(b, ref(6))
        await engine.note_action(b, ref(6), cancelled=True)
        return await engine.status(b, ref(6))
    a = run(engine, scenario)
    assert a.status == 3 and a.attrs["ExitReason"] == "cancelled through BLAH_JOB_CANCEL"
    assert a.attrs["BatchJobState"] == "cancelled"  # protocol.md §7.4: in every status ad
    assert b.bulk_calls == 1


@pytest.mark.parametrize("delay,expected_ttl", [(0.01, 0.3), (1.0, 5.0)])
def test_ttl_adapts_to_query_duration(tmp_path, delay, expected_ttl):
    engine, b = make(tmp_path, pyblahp_status_ttl_min=0.3, pyblahp_status_ttl_max=300)
    b.delay = delay
    run(engine, lambda: engine.status(b, ref(1)))
    view = engine.view(b, None)
    assert view.ttl == pytest.approx(expected_ttl, rel=0.2)


def test_a_resolved_job_goes_to_accounting_once(tmp_path):
    engine, b = make(tmp_path)
    b.queue = {"1": "RUNNING", "2": "RUNNING"}
    b.accounting = {"2": NativeRecord("2", "COMPLETED", exit_code=0, exit_signal=0)}

    async def scenario():
        await engine.status(b, ref(1))
        await engine.status(b, ref(2))
        b.queue = {"1": "RUNNING"}
        for _ in range(4):  # several cycles; job 2 is only asked about at the end
            await trio.sleep(0.35)
            await engine.status(b, ref(1))
        return await engine.status(b, ref(2))
    a = run(engine, scenario)
    assert a.status == 4 and a.attrs["ExitCode"] == 0
    assert b.resolve_calls == [["2"]]
    assert b.bulk_calls >= 4


def test_first_request_for_a_finished_job_waits_for_its_accounting(tmp_path):
    engine, b = make(tmp_path)
    b.queue = {"1": "RUNNING", "2": "COMPLETED"}
    b.accounting = {"2": NativeRecord("2", "COMPLETED", exit_code=3, exit_signal=0)}

    async def scenario():
        await engine.status(b, ref(1))  # the snapshot is taken while job 2 is not tracked
        return await engine.status(b, ref(2))
    a = run(engine, scenario)
    assert a.status == 4 and a.attrs["ExitCode"] == 3  # not "IDLE, not yet visible"
    assert b.resolve_calls == [["2"]]
