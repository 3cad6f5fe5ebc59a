"""The simulated batch systems' shared world: virtual time, execution, retention, faults, call log."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conformance.sim import core


def world(d, **settings):
    core.configure(str(d), **settings)
    return core.locked_world(str(d))


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def finished(d, job_id):
    with core.locked_world(str(d)) as w:
        job = w.find(job_id, history=True)
        return job if job and job["state"] == "finished" else None


def test_played_jobs_follow_virtual_time(tmp_path):
    with world(tmp_path, execute=False, queue_delay=60, run_seconds=100, exit_status=7,
               keep_seconds=30, history_seconds=1000) as w:
        job = w.new_job("true\n", name="a", cwd=str(tmp_path))
        assert job["id"] == "1" and job["state"] == "queued"
    steps = [(59, "queued"), (2, "running"), (99, "running"), (2, "finished")]
    for seconds, state in steps:
        core.advance(str(tmp_path), seconds)
        with core.locked_world(str(tmp_path)) as w:
            assert w.jobs["1"]["state"] == state, (seconds, w.jobs["1"])
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs["1"]["exit_status"] == 7 and w.jobs["1"]["signal"] is None
    core.advance(str(tmp_path), 31)  # past keep_seconds: out of the live queue, into history
    with core.locked_world(str(tmp_path)) as w:
        assert "1" not in w.jobs and w.history["1"]["exit_status"] == 7
    core.advance(str(tmp_path), 1000)  # past history_seconds: forgotten
    with core.locked_world(str(tmp_path)) as w:
        assert w.find("1", history=True) is None


def test_held_jobs_do_not_start_until_released(tmp_path):
    with world(tmp_path, execute=False, queue_delay=0) as w:
        w.new_job("true\n", name="h", cwd=str(tmp_path), held=True)
    core.advance(str(tmp_path), 100)
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs["1"]["state"] == "queued"
        w.jobs["1"]["held"] = False
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs["1"]["state"] == "running"


def test_executed_job_exit_status_output_and_env(tmp_path):
    with world(tmp_path, queue_delay=0) as w:
        w.new_job('echo "$GREETING from $PWD"; echo err >&2; exit 3\n', name="x", cwd=str(tmp_path),
                  env={"PATH": os.defpath}, stdout="out.txt", stderr="err.txt", job_env={"GREETING": "hi"})
    job = None
    assert wait_for(lambda: finished(tmp_path, "1"))
    job = finished(tmp_path, "1")
    assert job["exit_status"] == 3 and job["signal"] is None
    assert (tmp_path / "out.txt").read_text() == "hi from %s\n" % tmp_path
    assert (tmp_path / "err.txt").read_text() == "err\n"


def test_executed_job_killed_by_a_signal(tmp_path):
    with world(tmp_path, queue_delay=0) as w:
        w.new_job("kill -KILL $$\n", name="k", cwd=str(tmp_path), env={"PATH": os.defpath})
    assert wait_for(lambda: finished(tmp_path, "1"))
    job = finished(tmp_path, "1")
    assert job["signal"] == signal.SIGKILL and job["exit_status"] is None


def test_cancel_terminates_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    with world(tmp_path, queue_delay=0, kill_delay=1.0) as w:
        w.new_job("sleep 300 & echo $! > %s; wait\n" % pidfile, name="c", cwd=str(tmp_path),
                  env={"PATH": os.defpath})
    with core.locked_world(str(tmp_path)):
        pass  # a tick starts it
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    child = int(pidfile.read_text())
    with core.locked_world(str(tmp_path)) as w:
        w.cancel(w.jobs["1"])
    assert wait_for(lambda: finished(tmp_path, "1"))
    job = finished(tmp_path, "1")
    assert job["cancelled"] is True and job["signal"] == signal.SIGTERM
    assert wait_for(lambda: not os.path.exists("/proc/%d" % child) or
                    open("/proc/%d/stat" % child).read().rsplit(")", 1)[-1].split()[0] == "Z")


def test_cancel_of_a_queued_job_ends_it_at_once(tmp_path):
    with world(tmp_path, queue_delay=100) as w:
        w.new_job("true\n", name="q", cwd=str(tmp_path))
    with core.locked_world(str(tmp_path)) as w:
        w.cancel(w.jobs["1"])
    with core.locked_world(str(tmp_path)) as w:
        job = w.find("1", history=True)
        assert job["state"] == "finished" and job["cancelled"] and job["start_time"] is None


def test_suspend_and_resume_played_job_extends_its_run(tmp_path):
    with world(tmp_path, execute=False, queue_delay=0, run_seconds=10) as w:
        w.new_job("true\n", name="s", cwd=str(tmp_path))
    with core.locked_world(str(tmp_path)) as w:
        w.suspend(w.jobs["1"])
        assert w.jobs["1"]["state"] == "suspended"
    core.advance(str(tmp_path), 20)
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs["1"]["state"] == "suspended"
        w.resume(w.jobs["1"])
    core.advance(str(tmp_path), 5)
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs["1"]["state"] == "running"
    core.advance(str(tmp_path), 6)
    with core.locked_world(str(tmp_path)) as w:
        assert w.find("1", history=True)["state"] == "finished"


def _echo_handler(world, argv):
    return 0, "ok %s\n" % " ".join(argv), ""


def test_dispatch_logs_calls_and_applies_faults(tmp_path, capfd):
    handlers = {"qfoo": _echo_handler}
    d = str(tmp_path)
    assert core.dispatch(handlers, "qfoo", ["a"], d) == 0
    assert capfd.readouterr().out == "ok a\n"
    core.add_fault(d, "qfoo", rc=2, stderr="server down\n", times=1, match="b")
    assert core.dispatch(handlers, "qfoo", ["a"], d) == 0  # no match: not applied
    capfd.readouterr()
    assert core.dispatch(handlers, "qfoo", ["b"], d) == 2
    out = capfd.readouterr()
    assert out.out == "" and out.err == "server down\n"
    assert core.dispatch(handlers, "qfoo", ["b"], d) == 0  # times=1: used up
    capfd.readouterr()
    core.add_fault(d, None, garbage=True, rc=0)
    core.dispatch(handlers, "qfoo", [], d)
    assert "garbage" in capfd.readouterr().out
    core.clear_faults(d)
    assert [c["argv"] for c in core.calls(d, "qfoo")] == [["a"], ["a"], ["b"], ["b"], []]


def test_installed_shims_run_the_system_module(tmp_path, monkeypatch):
    # a throwaway system module next to the real ones would be visible to everyone; the shim
    # contents are checked instead, and one real command of the core is run through Python
    env = core.install("nosuch", str(tmp_path / "bin"), str(tmp_path / "state"), ["qfoo"], {"queue_delay": 3})
    shim = (tmp_path / "bin" / "qfoo").read_text()
    assert shim.startswith("#!%s\n" % sys.executable)
    assert "from conformance.sim.nosuch import main" in shim and "'qfoo'" in shim
    assert os.access(str(tmp_path / "bin" / "qfoo"), os.X_OK)
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "bin")
    assert json.loads((tmp_path / "state" / "settings.json").read_text()) == {"queue_delay": 3}
    r = subprocess.run([str(tmp_path / "bin" / "qfoo")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode != 0 and b"conformance.sim.nosuch" in r.stderr


@pytest.mark.parametrize("bad", ["", "{not json"])
def test_broken_state_files_read_as_empty(tmp_path, bad):
    (tmp_path / "state.json").write_text(bad)
    with core.locked_world(str(tmp_path)) as w:
        assert w.jobs == {} and w.next_id == 1
