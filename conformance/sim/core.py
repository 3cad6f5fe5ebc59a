"""What every simulated batch system shares (test-environment.md §8).

A simulated system is a set of command-line tools (``qsub``, ``bjobs``, ``condor_q`` ...) that
behave like the real ones: same arguments, same output formats, job state that advances with
time.  There is no daemon: every command invocation takes the state lock, advances the world to
"now" (``World.tick``), does its work and saves.  Everything lives in one state directory:

``state.json``     jobs still known to the live queue, finished jobs kept as history, id counter
``settings.json``  knobs of this instance (queue delay, retention, history, execute or not, ...)
``clock.json``     a virtual-time offset added to the wall clock, or to ``frozen_at`` (``advance``)
``faults.json``    injected failures, matched per command (``add_fault``)
``calls.jsonl``    one line per command invocation (what the tests and ``bench/`` count)
``jobs/``          job scripts, and the runners' start/result files

Jobs either really run (``execute``: the submitted script runs under ``/bin/bash`` in its own
process group, as a batch system's execution host would run it) or are played (``execute =
false``: they run for ``run_seconds`` of virtual time and end with ``exit_status``), which is
what the benchmarks and the deterministic conformance sessions use.

Generic job states: ``queued``, ``running``, ``suspended``, ``finished``; ``held`` is a flag on
a queued job; ``cancelled``/``signal``/``exit_status`` say how a finished job ended.  Each
system module maps these to its own letters and words.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULTS: Dict[str, Any] = {
    "queue_delay": 0.5,      # seconds a job stays queued before it starts
    "keep_seconds": 0.0,     # finished jobs stay in the live queue this long (keep_completed, CLEAN_PERIOD)
    "history": True,         # finished jobs stay known to the history command (qstat -x, bhist, condor_history)
    "history_seconds": 7 * 86400.0,
    "execute": True,         # really run job scripts
    "run_seconds": 5.0,      # played jobs: how long they run
    "exit_status": 0,        # played jobs: how they end
    "kill_delay": 2.0,       # seconds between SIGTERM and SIGKILL on cancel
    "host": "localhost",
    "user": None,            # owner of submitted jobs (default: the caller)
    "frozen_at": None,       # a wall-clock time the clock stays at (only advance moves it): no timing races
}

Result = Tuple[int, str, str]
Handler = Callable[["World", List[str]], Result]


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _read_json(path: str, default: Any) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class World:
    def __init__(self, state_dir: str, defaults: Optional[Dict[str, Any]] = None) -> None:
        self.dir = state_dir
        self.settings = dict(DEFAULTS)
        self.settings.update(defaults or {})
        self.settings.update(_read_json(os.path.join(state_dir, "settings.json"), {}))
        self.offset = float(_read_json(os.path.join(state_dir, "clock.json"), {}).get("offset", 0.0))
        state = _read_json(os.path.join(state_dir, "state.json"), {})
        self.next_id: int = int(state.get("next_id", self.settings.get("first_id", 1)))
        self.jobs: Dict[str, Dict[str, Any]] = state.get("jobs", {})
        self.history: Dict[str, Dict[str, Any]] = state.get("history", {})
        self.user = self.settings.get("user") or current_user()

    # -- time ------------------------------------------------------------------------------
    def now(self) -> float:
        frozen = self.settings.get("frozen_at")
        return (time.time() if frozen is None else float(frozen)) + self.offset

    # -- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        _write_json(os.path.join(self.dir, "state.json"),
                    {"next_id": self.next_id, "jobs": self.jobs, "history": self.history})

    def job_path(self, job_id: str, suffix: str) -> str:
        return os.path.join(self.dir, "jobs", "%s.%s" % (job_id, suffix))

    # -- jobs ------------------------------------------------------------------------------
    def new_job(self, script: str, *, name: str, cwd: str, env: Optional[Dict[str, str]] = None,
                stdout: Optional[str] = None, stderr: Optional[str] = None, held: bool = False,
                **fields: Any) -> Dict[str, Any]:
        job_id = str(self.next_id)
        self.next_id += 1
        os.makedirs(os.path.join(self.dir, "jobs"), exist_ok=True)
        with open(self.job_path(job_id, "sh"), "w") as f:
            f.write(script)
        job: Dict[str, Any] = {
            "id": job_id, "name": name, "owner": self.user, "cwd": cwd, "state": "queued",
            "held": held, "submit_time": self.now(), "start_time": None, "end_time": None,
            "exit_status": None, "signal": None, "cancelled": False, "host": None,
            "stdout": stdout, "stderr": stderr, "env": env if self.settings["execute"] else None,
        }
        job.update(fields)
        self.jobs[job_id] = job
        return job

    def find(self, job_id: str, history: bool = False) -> Optional[Dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job is None and history:
            job = self.history.get(job_id)
        return job

    def tick(self) -> None:
        """Advance every job to the present."""
        now = self.now()
        s = self.settings
        for job in list(self.jobs.values()):
            if job["state"] == "queued" and not job["held"] and now >= job["submit_time"] + s["queue_delay"]:
                self._start(job, now)
            if job["state"] in ("running", "suspended"):
                self._poll(job, now)
            if job["state"] == "finished":
                if now >= job["end_time"] + s["keep_seconds"]:
                    del self.jobs[job["id"]]
                    if s["history"]:
                        self.history[job["id"]] = job
        for job_id, job in list(self.history.items()):
            if now >= (job.get("end_time") or now) + s["history_seconds"]:
                del self.history[job_id]

    def _start(self, job: Dict[str, Any], now: float) -> None:
        job["state"] = "running"
        job["start_time"] = now
        job["host"] = self.settings["host"]
        if not self.settings["execute"]:
            return
        runner = [sys.executable, "-m", "conformance.sim.core", "run", self.dir, job["id"]]
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        # The runner outlives this command (it is the execution host), so it gets its own session.
        subprocess.Popen(runner, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        job["runner_started"] = now

    def _poll(self, job: Dict[str, Any], now: float) -> None:
        if not self.settings["execute"]:
            if job["state"] == "suspended":
                return  # a stopped job makes no progress
            run = float(job.get("run_seconds", self.settings["run_seconds"]))
            if now >= job["start_time"] + run + job.get("suspended_for", 0.0):
                self._finish(job, now, int(job.get("played_exit", self.settings["exit_status"])), None)
            return
        result = _read_json(self.job_path(job["id"], "rc"), None)
        if result is not None:
            rc = int(result["returncode"])
            self._finish(job, now, rc if rc >= 0 else None, -rc if rc < 0 else None)
            return
        started = _read_json(self.job_path(job["id"], "started"), None)
        if started is None:
            if now - job.get("runner_started", now) > 30:  # the runner never came up
                self._finish(job, now, None, signal.SIGKILL)
            return
        if not _alive(int(started["runner"]), started.get("runner_start")):  # killed: no result will come
            self._finish(job, now, None, signal.SIGKILL)
            return
        if job.get("kill_at") is not None and now >= job["kill_at"]:
            self._signal_group(job, signal.SIGKILL)

    def _finish(self, job: Dict[str, Any], now: float, exit_status: Optional[int], sig: Optional[int]) -> None:
        job["state"] = "finished"
        job["end_time"] = now
        job["exit_status"] = exit_status
        job["signal"] = sig
        job.pop("kill_at", None)

    def _signal_group(self, job: Dict[str, Any], sig: int) -> bool:
        started = _read_json(self.job_path(job["id"], "started"), None)
        if started is None:
            return False
        # The leader's start time proves the group is still this job's: a pid freed long ago may
        # belong to anything now (a zombie leader still holds its number, so it counts).
        pgid = int(started["pgid"])
        if _start_time(pgid, zombie_ok=True) != started.get("pgid_start"):
            return False
        try:
            os.killpg(pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def cancel(self, job: Dict[str, Any]) -> None:
        """qdel/bkill/condor_rm: a queued job ends at once, a running one gets TERM, then KILL."""
        job["cancelled"] = True
        now = self.now()
        if job["state"] == "queued":
            self._finish(job, now, None, None)
        elif job["state"] in ("running", "suspended"):
            if self.settings["execute"]:
                self._signal_group(job, signal.SIGCONT)
                if self._signal_group(job, signal.SIGTERM):
                    job["kill_at"] = now + self.settings["kill_delay"]
                    return
            self._finish(job, now, None, signal.SIGKILL)

    def suspend(self, job: Dict[str, Any]) -> None:
        if job["state"] == "running":
            job["state"] = "suspended"
            job["suspended_at"] = self.now()
            if self.settings["execute"]:
                self._signal_group(job, signal.SIGSTOP)

    def resume(self, job: Dict[str, Any]) -> None:
        if job["state"] == "suspended":
            job["state"] = "running"
            job["suspended_for"] = job.get("suspended_for", 0.0) + self.now() - job.pop("suspended_at", self.now())
            if self.settings["execute"]:
                self._signal_group(job, signal.SIGCONT)

    # -- failure injection -----------------------------------------------------------------
    def fault(self, command: str, argv: Sequence[str]) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.dir, "faults.json")
        faults = _read_json(path, [])
        joined = " ".join(argv)
        for i, f in enumerate(faults):
            if f.get("command") not in (None, command) or f.get("match", "") not in joined:
                continue
            if f.get("times") is not None:
                f["times"] -= 1
                if f["times"] <= 0:
                    faults.pop(i)
                _write_json(path, faults)
            return f
        return None


def _start_time(pid: int, zombie_ok: bool = False) -> Optional[str]:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22): with the
    pid, it names one process for good, whereas a pid alone is reused."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z" and not zombie_ok:
        return None
    return fields[19]


def _alive(pid: int, start: Optional[str] = None) -> bool:
    """Is ``pid`` a live process (not a zombie) -- the one that started at ``start``, if given?"""
    now = _start_time(pid)
    return now is not None and (start is None or now == start)


@contextlib.contextmanager
def locked_world(state_dir: str, defaults: Optional[Dict[str, Any]] = None) -> Iterator[World]:
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        world = World(state_dir, defaults)
        world.tick()
        yield world
        world.save()


def dispatch(handlers: Dict[str, Handler], command: str, argv: List[str], state_dir: str,
             defaults: Optional[Dict[str, Any]] = None) -> int:
    """Run one simulated command: log it, apply an injected fault or the handler, print."""
    with open(os.path.join(state_dir, "calls.jsonl"), "a") as log:
        log.write(json.dumps({"t": time.time(), "command": command, "argv": argv}) + "\n")
    with locked_world(state_dir, defaults) as world:
        fault = world.fault(command, argv)
        if fault is None:
            rc, out, err = handlers[command](world, argv)
    if fault is not None:
        if fault.get("hang"):
            time.sleep(float(fault["hang"]))
        rc = int(fault.get("rc", 1))
        out = fault.get("stdout", "")
        err = fault.get("stderr", "")
        if fault.get("garbage"):
            out = "\x00\x7fgarbage {{{ not the format you expected\n"
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()
    return rc


# -- test and bench helpers (used from outside the simulated commands) -------------------------

def install(system: str, bin_dir: str, state_dir: str, commands: Sequence[str],
            settings: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    """Write one executable per command into ``bin_dir``; return the environment to use them."""
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(state_dir, exist_ok=True)
    if settings:
        configure(state_dir, **settings)
    for name in commands:
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nsys.path.insert(0, %r)\nfrom conformance.sim.%s import main\n"
                    "sys.exit(main(%r, sys.argv[1:], %r))\n" % (sys.executable, REPO, system, name, state_dir))
        os.chmod(path, 0o755)
    return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", os.defpath)}


def configure(state_dir: str, **settings: Any) -> None:
    path = os.path.join(state_dir, "settings.json")
    current = _read_json(path, {})
    current.update(settings)
    _write_json(path, current)


def advance(state_dir: str, seconds: float) -> None:
    """Move the simulated clock forward (queue delays, retention and history expire sooner)."""
    path = os.path.join(state_dir, "clock.json")
    _write_json(path, {"offset": float(_read_json(path, {}).get("offset", 0.0)) + seconds})


def add_fault(state_dir: str, command: Optional[str], *, rc: int = 1, stdout: str = "", stderr: str = "",
              hang: float = 0.0, garbage: bool = False, times: Optional[int] = None, match: str = "") -> None:
    """Make ``command`` (None: every command) fail; ``times`` = None: until ``clear_faults``."""
    path = os.path.join(state_dir, "faults.json")
    faults = _read_json(path, [])
    faults.append({"command": command, "rc": rc, "stdout": stdout, "stderr": stderr, "hang": hang,
                   "garbage": garbage, "times": times, "match": match})
    _write_json(path, faults)


def clear_faults(state_dir: str) -> None:
    _write_json(os.path.join(state_dir, "faults.json"), [])


def calls(state_dir: str, command: Optional[str] = None) -> List[Dict[str, Any]]:
    out = []
    try:
        with open(os.path.join(state_dir, "calls.jsonl")) as f:
            for line in f:
                c = json.loads(line)
                if command is None or c["command"] == command:
                    out.append(c)
    except OSError:
        pass
    return out


def jobs(state_dir: str) -> Dict[str, Dict[str, Any]]:
    """The live queue as the simulator last saved it (no tick)."""
    return _read_json(os.path.join(state_dir, "state.json"), {}).get("jobs", {})


# -- the execution host ---------------------------------------------------------------------------

def _run(state_dir: str, job_id: str) -> int:
    """Run one job script to its end and record how it ended (the runner process)."""
    world = World(state_dir)
    job = world.jobs[job_id]  # read without the lock: the submitting command saved it already
    env = dict(job.get("env") or {})
    env.setdefault("PATH", os.defpath)
    env.update(job.get("job_env") or {})

    def open_out(path: Optional[str]) -> Any:
        if not path or path == "/dev/null":
            return subprocess.DEVNULL
        return open(os.path.join(job["cwd"], path), "ab")

    out = open_out(job.get("stdout"))
    err = subprocess.STDOUT if job.get("stderr") and job.get("stderr") == job.get("stdout") else open_out(job.get("stderr"))
    # TERM is for the job's process group, not for us: we must survive to record the result.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(["/bin/bash", world.job_path(job_id, "sh")], cwd=job["cwd"] or "/", env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    except OSError as e:
        _write_json(world.job_path(job_id, "rc"), {"returncode": 254, "error": str(e)})
        return 0
    _write_json(world.job_path(job_id, "started"), {"runner": os.getpid(), "runner_start": _start_time(os.getpid()),
                                                    "pgid": proc.pid, "pgid_start": _start_time(proc.pid, True),
                                                    "at": time.time()})
    rc = proc.wait()
    _write_json(world.job_path(job_id, "rc"), {"returncode": rc, "at": time.time()})
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(_run(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m conformance.sim.core run STATE_DIR JOB_ID")
