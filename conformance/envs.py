"""What a session runs in: a scratch directory, the server's environment and config, a simulated
batch system when the session needs one (``@ needs: sim-...``)."""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from conformance.session import Session, Step

# the played jobs of a simulated system: the clock only moves on '= sim advance', so every state
# a session sees is the one it asked for
SIMS = {
    "sim-torque": ("pbs", ["qsub", "qstat", "qdel", "qhold", "qrls"], {"flavour": "torque", "keep_seconds": 60.0},
                   "supported_lrms=pbs\n"),
    "sim-pbs-pro": ("pbs", ["qsub", "qstat", "qdel", "qhold", "qrls"], {"flavour": "pro"},
                    "supported_lrms=pbs\npbs_pro=yes\n"),
    "sim-lsf": ("lsf", ["bsub", "bjobs", "bkill", "bstop", "bresume", "bhist"], {},
                "supported_lrms=lsf\n"),
    "sim-condor": ("condor", ["condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold",
                              "condor_release"], {}, "supported_lrms=condor\n"),
}
SIM_DEFAULTS = {"execute": False, "queue_delay": 5.0, "run_seconds": 30.0, "kill_delay": 0.0}
# fresh status after each '= sim advance' (the runner waits longer than this), quick vanish verdicts
SIM_CONFIG = "pyblahp_status_ttl_min=0.1\npyblahp_status_ttl_max=0.2\npyblahp_vanished_grace=0\n"


# A session may end while its batch jobs still run, and a job's wrapper then writes its exit record
# into the session's HOME, re-creating part of a scratch directory already removed. Leftover jobs
# cannot be cancelled generically (any server, any batch system), so all of a run's scratch goes
# under one root, removed once the run is over and nothing runs in it any more: a wait bounded by
# LEFTOVER_GRACE, and none at all when no job is left (the usual case).
LEFTOVER_GRACE = 10.0


def make_run_root(scratch: Optional[str]) -> str:
    # absolute: the servers run in their own working directories
    return os.path.abspath(tempfile.mkdtemp(prefix="gahp-conformance-run-", dir=scratch))


def remove_run_root(root: str, grace: float = LEFTOVER_GRACE) -> List[int]:
    """Remove ``root`` once no process runs in it, waiting at most ``grace`` seconds; returns the
    processes still running then (they may re-create part of it)."""
    deadline = time.monotonic() + grace
    left = running_in(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = running_in(root)
    shutil.rmtree(root, ignore_errors=True)
    return left


def running_in(root: str) -> List[int]:
    """The processes we can see (Linux /proc; elsewhere none) whose working directory or
    environment (HOME, the config's path) lies under ``root``."""
    mark = os.path.join(root, "")
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read()
        except OSError:   # gone, a zombie, or another user's
            continue
        if pid != os.getpid() and (cwd.startswith(mark) or os.fsencode(mark) in environ):
            found.append(pid)
    return found


@dataclass
class SessionEnv:
    directory: str
    env: Optional[Dict[str, str]]
    cwd: str
    variables: Dict[str, str]
    sim_dir: Optional[str] = None
    keep: bool = False
    notes: List[str] = field(default_factory=list)

    def sim_step(self, step: Step, args: List[str]) -> None:
        from conformance.sim import core
        assert self.sim_dir is not None
        verb = args[0]
        if verb == "advance":
            core.advance(self.sim_dir, float(args[1]))
        elif verb == "clear-faults":
            core.clear_faults(self.sim_dir)
        elif verb == "fault":
            kw = {k: _value(v) for k, v in (a.split("=", 1) for a in args[2:])}
            core.add_fault(self.sim_dir, args[1], **kw)
        elif verb == "configure":
            core.configure(self.sim_dir, **{k: _value(v) for k, v in (a.split("=", 1) for a in args[1:])})

    def cleanup(self) -> None:
        # now, not only at the run's end, so that a long run does not pile up scratch (a leftover
        # job may re-create some of it: remove_run_root takes care of that)
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _fill(text: str, values: Dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace("{%s}" % k, v)
    return text


def prepare(session: Session, base_config: str, local: bool, variables: Dict[str, str],
            scratch: Optional[str] = None) -> SessionEnv:
    """``local``: the runner starts the server itself, so it can give it a HOME, a config file and
    a simulated batch system; otherwise the server keeps whatever environment it has."""
    directory = tempfile.mkdtemp(prefix="gahp-conformance-%s-" % session.name.replace("/", "-")[:40], dir=scratch)
    os.chmod(directory, 0o755)
    work = os.path.join(directory, "work")
    home = os.path.join(directory, "home")
    for d in (work, home):
        os.makedirs(d)
        os.chmod(d, 0o777)   # batch jobs may run as another user (Grid Engine, Slurm)
    values = {"workdir": work, "home": home}
    values.update(variables)
    if not local:
        return SessionEnv(directory, None, work, values)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_"))}
    env["HOME"] = home
    config = [base_config.rstrip("\n") + "\n" if base_config.strip() else ""]
    sim_dir = None
    if session.needs in SIMS:
        from conformance.sim import core
        system, commands, settings, lrms = SIMS[session.needs]
        merged = dict(SIM_DEFAULTS, frozen_at=time.time(), **settings)
        for line in session.meta.get("sim", []):
            merged.update({k: _value(v) for k, v in (kv.split("=", 1) for kv in shlex.split(line))})
        sim_dir = os.path.join(directory, "sim-state")
        env.update(core.install(system, os.path.join(directory, "sim-bin"), sim_dir, commands, merged))
        config.append(lrms + SIM_CONFIG)
    for line in session.config:
        config.append(_fill(line, values) + "\n")
    for line in session.meta.get("env", []):
        k, _, v = line.partition("=")
        env[k.strip()] = _fill(v.strip(), values)
    cfg = os.path.join(directory, "blah.config")
    with open(cfg, "w") as f:
        f.write("".join(config))
    env["BLAHPD_CONFIG_LOCATION"] = cfg
    return SessionEnv(directory, env, work, values, sim_dir)
