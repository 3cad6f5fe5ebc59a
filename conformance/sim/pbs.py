"""Simulated PBS: ``qsub qstat qdel qhold qrls`` of TORQUE (6.x) and PBS Pro / OpenPBS.

Setting ``flavour`` = ``torque`` | ``pro``.  Formats and messages follow the sources of both
(adaptivecomputing/torque ``src/cmds/qstat.c`` ``prt_attr``/``display_statjob``,
``pbs_error_db.h``; openpbs ``src/cmds/qstat.c``, ``pbs_error.h``, ``pbs_messages.c``) and the
documented samples under ``tests/fixtures/pbs/``:

* ``qstat -f``: ``Job Id: <n>.<server>`` then ``    name = value`` lines, values wrapped at
  77 (TORQUE) / 78 (Pro) columns with ``\\n\\t`` as ``prt_attr`` does; TORQUE ``-1`` does not
  wrap; a blank line after each job.  PBS Pro rejects ``-1`` next to ``-f``.
* ``qstat -f -F json`` (Pro, setting ``json``): ``{"timestamp", "pbs_version", "pbs_server",
  "Jobs"}`` in the 4-space, ``"key":value`` layout of PBS Pro 20; no ``Jobs`` without jobs.
* error exit codes are the PBS error numbers & 0xff: unknown job 153 (15001); TORQUE bad state
  170 (15018), unknown queue 172 (15020); Pro bad state 168 (15016), unknown queue 170 (15018),
  finished job 35 (15139).
* states: ``Q`` (``W`` with ``-a`` in the future), ``H``, ``R``, ``E`` (being killed by qdel),
  ``S``; finished: TORQUE ``C`` while ``keep_seconds`` (``keep_completed``) lasts, Pro ``F`` in
  the history (``qstat -x``, setting ``history`` = ``job_history_enable``).
* exit status: the script's status, 256 + signal for a script killed by a signal, or the
  played ``played_exit`` (negative values are TORQUE's ``JOB_EXEC_*``).
* qhold of a running job sets the hold flag and the job keeps running (no checkpointing), as both
  servers do.

* several servers (setting ``peers``: more server names): ``qsub -q queue@server`` submits to
  that server, ``qstat @server`` / ``queue@server`` lists its jobs, ``<n>.<server>`` names a job
  there.  Each peer is a world of its own under ``peers/<name>`` (its job ids start at 1 too,
  as a real server's do) that shares this world's clock and settings.

Messages not taken from those sources (approximations): invalid ``-l`` values, unknown
resources, and a server that is not there (``cannot connect to server <name>``, exit 1).  Not
simulated: TORQUE's ``qstat -x`` (XML), job arrays, ``qsig``/suspension (``S`` only when the core
world suspends a job).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import core

DEFAULTS: Dict[str, Any] = {
    "flavour": "torque",
    "server": None,         # TORQUE: pbsserver, Pro: pbs01
    "queues": None,         # TORQUE: ["batch"], Pro: ["workq"]
    "json": True,           # Pro: qstat knows -F json (PBS Pro 18+)
    "pbs_version": "20.0.1",
    "used_cput": 0,         # resources_used.cput of started jobs, seconds
    "used_mem_kb": 2048,    # resources_used.mem of started jobs
}

Result = Tuple[int, str, str]

TORQUE_LIMITS = {"walltime", "mem", "pmem", "pvmem", "vmem", "nodes", "ncpus", "cput", "pcput", "file", "host",
                 "gres", "procs", "naccesspolicy", "feature", "other", "nice", "software", "arch", "opsys", "size"}
PRO_LIMITS = {"walltime", "mem", "select", "place", "ncpus", "pmem", "pvmem", "vmem", "cput", "pcput", "nodes",
              "ngpus", "host", "arch", "software", "file", "nice", "mpiprocs", "ompthreads"}


class Flavour:
    def __init__(self, world: core.World) -> None:
        s = world.settings
        self.pro = s.get("flavour") == "pro"
        self.server = s.get("server") or ("pbs01" if self.pro else "pbsserver")
        self.queues = list(s.get("queues") or (["workq"] if self.pro else ["batch"]))
        self.unknown = "Unknown Job Id" if self.pro else "Unknown Job Id Error"
        self.badstate_rc = 168 if self.pro else 170
        self.unkque_rc = 170 if self.pro else 172
        self.wrap = 78 if self.pro else 77
        self.exit_attr = "Exit_status" if self.pro else "exit_status"
        self.history = self.pro and bool(s.get("history"))

    def full_id(self, job_id: str) -> str:
        return "%s.%s" % (job_id, self.server)


class Servers:
    """The site's servers: this state directory's own (the default) and the ``peers``."""

    def __init__(self, world: core.World) -> None:
        self.home = world
        self.default = Flavour(world).server
        self.names = [self.default] + list(world.settings.get("peers") or [])
        self._open: Dict[str, core.World] = {self.default: world}

    def get(self, name: str = "") -> Optional[core.World]:
        name = name or self.default
        if name not in self.names:
            return None
        if name not in self._open:
            d = os.path.join(self.home.dir, "peers", name)
            os.makedirs(d, exist_ok=True)
            peer = core.World(d, dict(self.home.settings, server=name, peers=[]))
            peer.offset = self.home.offset
            peer.tick()
            self._open[name] = peer
        return self._open[name]

    def save(self) -> None:
        for w in self._open.values():
            if w is not self.home:   # the caller's own world is saved by core.dispatch
                w.save()


def no_server(command: str, name: str) -> Result:
    return 1, "", "Connection refused\n%s: cannot connect to server %s (errno=15010)\n" % (command, name)


def with_servers(handler):
    """Run a command with every server at hand; the peers it touched are saved after it."""
    def run(world: core.World, argv: List[str]) -> Result:
        servers = Servers(world)
        try:
            return handler(servers, argv)
        finally:
            servers.save()
    return run


class UsageError(Exception):
    pass


# --- option parsing -------------------------------------------------------------------------------

QSUB_ARG = set("aAcCdDeijklmMNopPqrSuvW")
QSUB_FLAG = set("fhIVxXz")


def getopt(argv: Sequence[str], with_arg: set, flags: set, command: str) -> Tuple[List[Tuple[str, str]], List[str]]:
    """POSIX getopt: ``-Nname``, ``-N name``, grouped flags; stops at the first operand."""
    opts: List[Tuple[str, str]] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return opts, list(argv[i + 1:])
        if not a.startswith("-") or a == "-":
            return opts, list(argv[i:])
        j = 1
        while j < len(a):
            c = a[j]
            if c in with_arg:
                value = a[j + 1:]
                if not value:
                    i += 1
                    if i >= len(argv):
                        raise UsageError("%s: option requires an argument -- '%s'" % (command, c))
                    value = argv[i]
                opts.append((c, value))
                break
            if c in flags:
                opts.append((c, ""))
                j += 1
                continue
            raise UsageError("%s: invalid option -- '%s'" % (command, c))
        i += 1
    return opts, []


def parse_resources(text: str) -> Dict[str, str]:
    out = {}
    for item in text.split(","):
        if item.strip():
            k, _, v = item.strip().partition("=")
            out[k] = v
    return out


def script_directives(script: str) -> List[List[str]]:
    """``#PBS`` lines before the first command (comments and blank lines do not end them)."""
    out = []
    for n, line in enumerate(script.splitlines()):
        if n == 0 and line.startswith("#!"):
            continue
        if line.startswith("#PBS"):
            out.append(shlex.split(line[4:], comments=False))
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return out


def _duration(text: str) -> Optional[int]:
    parts = text.split(":")
    if len(parts) > 3 or not all(p.isdigit() for p in parts):
        return None
    s = 0
    for p in parts:
        s = s * 60 + int(p)
    return s


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return "%02d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def _begin_time(text: str, now: float) -> Optional[float]:
    """``-a [[[[CC]YY]MM]DD]hhmm[.SS]``"""
    main, _, secs = text.partition(".")
    if not main.isdigit() or len(main) not in (4, 6, 8, 10, 12) or (secs and not secs.isdigit()):
        return None
    lt = time.localtime(now)
    fields = [lt.tm_year, lt.tm_mon, lt.tm_mday]
    digits = main[:-4]
    if len(digits) == 8:
        fields = [int(digits[:4]), int(digits[4:6]), int(digits[6:])]
    elif len(digits) == 6:
        fields = [2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:])]
    elif len(digits) == 4:
        fields[1:] = [int(digits[:2]), int(digits[2:])]
    elif len(digits) == 2:
        fields[2] = int(digits)
    try:
        return time.mktime((fields[0], fields[1], fields[2], int(main[-4:-2]), int(main[-2:]),
                            int(secs or 0), 0, 0, -1))
    except (OverflowError, ValueError):
        return None


# --- qsub ------------------------------------------------------------------------------------------

@with_servers
def qsub(servers: Servers, argv: List[str]) -> Result:
    world = servers.home
    f = Flavour(world)
    try:
        cmdline, operands = getopt(argv, QSUB_ARG, QSUB_FLAG, "qsub")
    except UsageError as e:
        return 2, "", "%s\nusage: qsub [-a date_time] [-A account_string] ... [script]\n" % e
    if len(operands) != 1:
        return 2, "", "usage: qsub [-a date_time] [-A account_string] ... [script]\n"
    cwd = os.getcwd()
    path = os.path.join(cwd, operands[0])
    try:
        with open(path) as fh:
            script = fh.read()
    except OSError as e:
        return 1, "", "qsub: script file %s cannot be loaded - %s\n" % (operands[0], e.strerror)
    opts: List[Tuple[str, str]] = []
    for words in script_directives(script):
        try:
            found, rest = getopt(words, QSUB_ARG, QSUB_FLAG, "qsub")
        except UsageError:
            return 2, "", "qsub: directive error: %s\n" % " ".join(words)
        if rest:
            return 2, "", "qsub: directive error: %s\n" % " ".join(words)
        opts += found
    opts += cmdline  # the command line overrides the script
    single: Dict[str, str] = {}
    resources: Dict[str, str] = {}
    extra: Dict[str, str] = {}
    variables: Dict[str, str] = {}
    for c, v in opts:
        if c == "l":
            resources.update(parse_resources(v))
        elif c == "W":
            k, _, val = v.partition("=")
            extra[k] = val
        elif c == "v":
            for item in v.split(","):
                k, eq, val = item.partition("=")
                if k:
                    variables[k] = val if eq else os.environ.get(k, "")
        else:
            single[c] = v
    known = PRO_LIMITS if f.pro else TORQUE_LIMITS
    for name, value in resources.items():
        if name not in known:
            if f.pro:
                return 187, "", "qsub: Unknown resource Resource_List.%s\n" % name
            return 189, "", "qsub: submit error (Unknown resource type  MSG=unknown resource %s)\n" % name
        if name in ("walltime", "cput", "pcput") and _duration(value) is None:
            if f.pro:
                return 166, "", "qsub: Illegal attribute or resource value Resource_List.%s\n" % name
            return 168, "", "qsub: submit error (Illegal attribute or resource value for Resource_List.%s)\n" % name
    name = single.get("N") or os.path.basename(operands[0])[:15]
    if not name[:1].isalpha() or (not f.pro and len(name) > 15):
        return 2, "", "qsub: illegal -N value\n"
    qname, _, qserver = (single.get("q") or "").partition("@")
    peer = servers.get(qserver)
    if peer is None:
        return no_server("qsub", qserver)
    world, f = peer, Flavour(peer)   # the job lives on the server it was sent to
    qname = qname or f.queues[0]
    if qname not in f.queues:
        if f.pro:
            return f.unkque_rc, "", "qsub: Unknown queue\n"
        return f.unkque_rc, "", "qsub: submit error (Unknown queue MSG=requested queue not found)\n"
    now = world.now()
    begin = None
    if "a" in single:
        begin = _begin_time(single["a"], now)
        if begin is None:
            return 2, "", "qsub: illegal -a value\n"
    home = os.environ.get("HOME") or "/"
    job_cwd = single.get("d") if not f.pro and single.get("d") else (home if os.path.isdir(home) else "/")
    held = "h" in single
    job = world.new_job(script, name=name, cwd=job_cwd, env=dict(os.environ), held=held, queue=qname,
                        resources=resources, extra_attrs=extra, account=single.get("A"), options=opts,
                        mail=single.get("m", "a"), join=single.get("j", "n"), hold_types="u" if held else "n",
                        qtime=now, qsub_cwd=cwd, submit_args=" ".join(argv), variables=variables)
    if begin is not None and begin > now:
        job["submit_time"] = begin  # not eligible before it (state W)
        job["execution_time"] = begin
    full = f.full_id(job["id"])

    def out_path(opt: str, suffix: str) -> str:
        p = single.get(opt)
        if p is None:
            return os.path.join(cwd, "%s.%s%s" % (name, suffix, job["id"]))
        p = p.split(":", 1)[1] if ":" in p and not p.startswith("/") else p
        return p if os.path.isabs(p) else os.path.join(cwd, p)

    job["stdout"] = out_path("o", "o")
    job["stderr"] = job["stdout"] if job["join"] in ("oe", "eo") else out_path("e", "e")
    nodefile = world.job_path(job["id"], "nodes")
    with open(nodefile, "w") as fh:
        fh.write(world.settings["host"] + "\n")
    job_env = {"PBS_JOBID": full, "PBS_JOBNAME": name, "PBS_QUEUE": qname, "PBS_SERVER": f.server,
               "PBS_ENVIRONMENT": "PBS_BATCH", "PBS_NODEFILE": nodefile, "PBS_O_WORKDIR": cwd,
               "PBS_O_HOME": os.environ.get("HOME", ""), "PBS_O_HOST": world.settings["host"],
               "PBS_O_QUEUE": qname, "PBS_O_PATH": os.environ.get("PATH", ""),
               "PBS_O_SHELL": os.environ.get("SHELL", "/bin/sh"), "PBS_O_LOGNAME": world.user}
    if f.pro:
        job_env["PBS_O_SYSTEM"] = os.uname().sysname
    if "d" in single and not f.pro:
        job_env["PBS_O_INITDIR"] = single["d"]
    job_env.update(variables)
    job["job_env"] = job_env
    return 0, full + "\n", ""


# --- job views --------------------------------------------------------------------------------------

def state_letter(f: Flavour, job: Dict[str, Any], now: float) -> str:
    st = job["state"]
    if st == "queued":
        if job["held"]:
            return "H"
        return "W" if now < job["submit_time"] else "Q"
    if st == "running":
        return "E" if job.get("kill_at") is not None else "R"
    if st == "suspended":
        return "S"
    return "F" if f.pro else "C"


def exit_value(job: Dict[str, Any]) -> Optional[int]:
    if job.get("signal"):
        return 256 + int(job["signal"])
    return job.get("exit_status")


def _session(world: core.World, job: Dict[str, Any]) -> Optional[int]:
    if job.get("start_time") is None:
        return None
    try:
        with open(world.job_path(job["id"], "started")) as fh:
            return int(json.load(fh)["pgid"])
    except (OSError, ValueError, KeyError):
        return 10000 + int(job["id"])  # a played job has no process: any stable number


def job_attributes(world: core.World, f: Flavour, job: Dict[str, Any]) -> List[Tuple[str, Any]]:
    """(name, value) in each server's order; values are str, int or dict (Variable_List)."""
    now = world.now()
    host = world.settings["host"]
    state = state_letter(f, job, now)
    started = job.get("start_time") is not None
    end = job.get("end_time") or now
    a: List[Tuple[str, Any]] = [("Job_Name", job["name"]), ("Job_Owner", "%s@%s" % (job["owner"], host))]
    if started:
        wall = max(0.0, end - job["start_time"] - job.get("suspended_for", 0.0))
        mem = "%dkb" % int(world.settings["used_mem_kb"])
        cput = _hms(min(float(world.settings["used_cput"]), wall) if job["state"] != "finished"
                    else float(world.settings["used_cput"]))
        if f.pro:
            a += [("resources_used.cpupercent", 0), ("resources_used.cput", cput), ("resources_used.mem", mem),
                  ("resources_used.ncpus", 1), ("resources_used.vmem", mem), ("resources_used.walltime", _hms(wall))]
        else:
            a += [("resources_used.cput", cput), ("resources_used.mem", mem), ("resources_used.vmem", mem),
                  ("resources_used.walltime", _hms(wall))]
    queue = job.get("queue") or f.queues[0]
    qtime = job.get("qtime", job["submit_time"])
    default_out = os.path.join(job.get("cwd") or "/", job["name"])
    a += [("job_state", state), ("queue", queue), ("server", f.server), ("Checkpoint", "u"),
          ("ctime", time.ctime(qtime)),
          ("Error_Path", "%s:%s" % (host, job.get("stderr") or "%s.e%s" % (default_out, job["id"])))]
    if started:
        a.append(("exec_host", "%s/0" % host))
        if f.pro:
            a.append(("exec_vnode", "(%s:ncpus=1)" % host))
    a += [("Hold_Types", job.get("hold_types") or ("u" if job["held"] else "n")), ("Join_Path", job.get("join", "n")),
          ("Keep_Files", "n"), ("Mail_Points", job.get("mail", "a")),
          ("mtime", time.ctime(job.get("end_time") or job.get("start_time") or qtime)),
          ("Output_Path", "%s:%s" % (host, job.get("stdout") or "%s.o%s" % (default_out, job["id"]))),
          ("Priority", 0), ("qtime", time.ctime(qtime)), ("Rerunable", "True")]
    resources = dict(job.get("resources") or {})
    if f.pro:
        resources.setdefault("ncpus", "1")
        resources.setdefault("nodect", "1")
        resources.setdefault("place", "pack")
        resources.setdefault("select", "1:ncpus=%s" % resources["ncpus"])
    for k in sorted(resources):
        v = resources[k]
        if k in ("walltime", "cput", "pcput"):
            v = _hms(_duration(v) or 0)  # the server keeps durations as HH:MM:SS
        a.append(("Resource_List.%s" % k, int(v) if f.pro and v.isdigit() else v))
    if job.get("execution_time"):
        a.append(("Execution_Time", time.ctime(job["execution_time"])))
    session = _session(world, job)
    if f.pro and started:
        a.append(("stime", time.ctime(job["start_time"])))
    if session is not None:
        a.append(("session_id", session))
    if f.pro:
        a.append(("jobdir", job.get("cwd") or "/"))
        a.append(("substate", {"Q": 10, "H": 20, "W": 30, "R": 42, "S": 43, "E": 51, "F": 92}.get(state, 10)))
    env = job.get("job_env") or {}
    variables = {k: env[k] for k in ("PBS_O_HOME", "PBS_O_LOGNAME", "PBS_O_PATH", "PBS_O_SHELL", "PBS_O_WORKDIR",
                                     "PBS_O_SYSTEM", "PBS_O_QUEUE", "PBS_O_HOST") if k in env}
    variables.update(job.get("variables") or {})
    a.append(("Variable_List", variables))
    if f.pro:
        if started:
            when = time.strftime("%a %b %d at %H:%M", time.localtime(job["start_time"]))
            a.append(("comment", "Job run at %s on (%s:ncpus=1)%s" % (
                when, host, " and finished" if job["state"] == "finished" else "")))
        a.append(("etime", time.ctime(job["submit_time"])))
        a.append(("run_count", 1 if started else 0))
        if job["state"] == "finished" and exit_value(job) is not None:
            a.append((f.exit_attr, exit_value(job)))
        a += [("Submit_arguments", job.get("submit_args", "")), ("project", job.get("account") or "_pbs_project_default"),
              ("Submit_Host", host)]
        if job["state"] == "finished":
            a += [("obittime", time.ctime(job["end_time"])), ("history_timestamp", int(job["end_time"]))]
    else:
        a += [("euser", job["owner"]), ("egroup", job["owner"]), ("queue_type", "E"),
              ("etime", time.ctime(job["submit_time"]))]
        if job["state"] == "finished" and exit_value(job) is not None:
            a.append((f.exit_attr, exit_value(job)))
        a.append(("submit_args", job.get("submit_args", "")))
        if started:
            a += [("start_time", time.ctime(job["start_time"])), ("start_count", 1)]
        if job["state"] == "finished":
            a.append(("comp_time", time.ctime(job["end_time"])))
        a.append(("submit_host", host))
    if job.get("account"):
        a.insert(2, ("Account_Name", job["account"]))
    return a


def prt_attr(name: str, value: str, limit: Optional[int]) -> str:
    """One ``    name = value`` line, broken as the C ``prt_attr`` breaks it (``None``: never)."""
    out = "    %s = " % name
    if limit is None:
        return out + value
    start = len(name) + 7
    tokens = [t for t in value.split(",") if t]
    first = True
    for i, tok in enumerate(tokens):
        if len(tok) + start < limit:
            out += tok
            start += len(tok)
        else:
            if not first:
                out += "\n\t"
                start = 9
            for ch in tok:
                out += ch
                start += 1
                if start > limit:
                    start = 8
                    out += "\n\t"
        if i + 1 < len(tokens):
            first = False
            out += ","
    return out


def _text_value(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join("%s=%s" % kv for kv in v.items())
    return str(v)


def full_text(world: core.World, f: Flavour, job: Dict[str, Any], one_line: bool) -> str:
    lines = ["Job Id: %s" % f.full_id(job["id"])]
    for name, value in job_attributes(world, f, job):
        lines.append(prt_attr(name, _text_value(value), None if one_line else f.wrap))
    return "\n".join(lines) + "\n\n"


def json_job(world: core.World, f: Flavour, job: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, value in job_attributes(world, f, job):
        head, dot, sub = name.partition(".")
        if dot:
            out.setdefault(head, {})[sub] = value
        else:
            out[name] = value
    return out


Shown = Sequence[Tuple[core.World, Flavour, Dict[str, Any]]]   # each job with its server


def json_document(world: core.World, f: Flavour, jobs: Shown) -> str:
    doc: Dict[str, Any] = {"timestamp": int(world.now()), "pbs_version": world.settings["pbs_version"],
                           "pbs_server": f.server}
    if jobs:
        doc["Jobs"] = {fj.full_id(j["id"]): json_job(w, fj, j) for w, fj, j in jobs}
    return json.dumps(doc, indent=4, separators=(",", ":")) + "\n"


def summary_table(world: core.World, f: Flavour, jobs: Shown) -> str:
    now = world.now()
    if not jobs:
        return ""
    if f.pro:
        lines = ["Job id            Name             User              Time Use S Queue",
                 "----------------  ---------------- ----------------  -------- - -----"]
        fmt = "%-16.16s  %-16.16s %-16.16s  %8.8s %1.1s %-16.16s"
    else:
        lines = ["Job ID                    Name             User            Time Use S Queue",
                 "------------------------- ---------------- --------------- -------- - -----"]
        fmt = "%-25.25s %-16.16s %-15.15s %8.8s %1.1s %-15.15s"
    for _, fj, j in jobs:
        used = _hms(float(world.settings["used_cput"])) if j.get("start_time") is not None else "0"
        lines.append(fmt % (fj.full_id(j["id"]), j["name"], j["owner"], used, state_letter(fj, j, now),
                            j.get("queue") or fj.queues[0]))
    return "\n".join(lines) + "\n"


# --- qstat -----------------------------------------------------------------------------------------

def _lookup(world: core.World, f: Flavour, seq: str, history: bool) -> Tuple[Optional[Dict[str, Any]], str]:
    """Job number ``seq`` on the server of ``world``: (job, "") or (None, "unknown" | "finished")."""
    if not seq.isdigit():
        return None, "unknown"
    job = world.jobs.get(seq)
    if f.pro:
        finished = job is not None and job["state"] == "finished"
        if job is None and f.history:
            job = world.history.get(seq)
            finished = job is not None
        if job is None or (finished and not f.history):
            return None, "unknown"
        if finished and not history:
            return None, "finished"
    elif job is None:
        return None, "unknown"
    return job, ""


def _visible(f: Flavour, job: Dict[str, Any], history: bool) -> bool:
    if not f.pro or job["state"] != "finished":
        return True
    return history and f.history


QSTAT_USAGE_PRO = ("usage: \nqstat [-f] [-J] [-p] [-t] [-x] [-E] [-F format | -w] [-D delim] [ job_identifier... | "
                   "destination... ]\nqstat [-a|-i|-r|-H|-T] [-J] [-t] [-u user] [-n] [-s] [-G|-M] [-1] [-w]\n"
                   "\t[ job_identifier... | destination... ]\nqstat -Q [-f] [-F format] [-D delim] [ destination... ]\n"
                   "qstat -q [-G|-M] [ destination... ]\nqstat -B [-f] [-F format] [-D delim] [ server_name... ]\n"
                   "qstat --version\n")
QSTAT_USAGE_TORQUE = ("usage: \nqstat [-f [-1]] [-W site_specific] [-x] [ job_identifier... | destination... ]\n"
                      "qstat [-a|-i|-r|-e] [-u user] [-n [-1]] [-s] [-G|-M] [-R] [job_identifier... | destination...]\n"
                      "qstat -Q [-f [-1]] [-W site_specific] [ destination... ]\n"
                      "qstat -q [-G|-M] [ destination... ]\nqstat -B [-f [-1]] [-W site_specific] [ server_name... ]\n")


@with_servers
def qstat(servers: Servers, argv: List[str]) -> Result:
    world = servers.home
    f = Flavour(world)
    usage = QSTAT_USAGE_PRO if f.pro else QSTAT_USAGE_TORQUE
    with_arg = set("Fu") if f.pro and world.settings.get("json", True) else set("u")
    flags = set("fxB1a") if f.pro else set("f1Ba")
    try:
        opts, operands = getopt(argv, with_arg, flags, "qstat")
    except UsageError as e:
        return 2, "", "%s\n%s" % (e, usage)
    o = dict(opts)
    full, history, one = "f" in o, "x" in o, "1" in o
    fmt = o.get("F", "default").lower()
    if f.pro and (one or fmt not in ("default", "json") or (fmt == "json" and not full)):
        return 2, "", "qstat: conflicting options.\n" + usage
    if "B" in o:
        return 0, server_status(world, f), ""
    if history and not f.history:
        # PBSE_JOBHISTNOTSET: the message, and exit status 0 (qstat.c)
        out = json_document(world, f, []) if fmt == "json" else ""
        ids = operands or [""]
        return 0, out, "".join("qstat: PBS is not configured to maintain job history %s\n"
                               % (f.full_id(i.split(".")[0]) if i else "") for i in ids)
    user = o.get("u")
    shown: List[Tuple[core.World, Flavour, Dict[str, Any]]] = []
    err: List[str] = []
    rc = 0
    for op in operands or ["@" + f.server]:
        if "@" in op or not op.split(".")[0].isdigit():   # a destination: queue, @server, queue@server
            qname, _, sname = op.partition("@")
            w = servers.get(sname)
            if w is None:
                return no_server("qstat", sname)
            fw = Flavour(w)
            if qname and qname not in fw.queues:
                err.append("qstat: Unknown queue destination %s" % op)
                rc = fw.unkque_rc
                continue
            pool = list(w.jobs.values())
            if fw.pro and history:
                pool += [j for k, j in w.history.items() if k not in w.jobs]
            shown += sorted(((w, fw, j) for j in pool if _visible(fw, j, history)
                             and (not qname or (j.get("queue") or fw.queues[0]) == qname)),
                            key=lambda t: int(t[2]["id"]))
            continue
        seq, _, sname = op.partition(".")
        w = servers.get(sname)
        if w is None:
            return no_server("qstat", sname)
        fw = Flavour(w)
        job, why = _lookup(w, fw, seq, history)
        if job is not None:
            shown.append((w, fw, job))
            continue
        full_op = fw.full_id(seq)
        if why == "finished":
            err.append("qstat: %s Job has finished, use -x or -H to obtain historical job information" % full_op)
            code = 35
        else:
            err.append("qstat: %s %s" % (fw.unknown, full_op))
            code = 153
        rc = code if f.pro or rc == 0 else rc   # Pro: the last error; TORQUE: the first
    if user:
        shown = [t for t in shown if t[2]["owner"] in user.split(",")]
    if fmt == "json":
        out = json_document(shown[0][0] if shown else world, shown[0][1] if shown else f, shown)
    elif full:
        out = "".join(full_text(w, fw, j, one) for w, fw, j in shown)
    else:
        out = summary_table(world, f, shown)
    return rc, out, "".join(e + "\n" for e in err)


def server_status(world: core.World, f: Flavour) -> str:
    lines = ["Server: %s" % f.server, "    server_state = Active", "    scheduling = True",
             "    default_queue = %s" % f.queues[0], "    total_jobs = %d" % len(world.jobs)]
    if f.pro:
        lines.append("    job_history_enable = %s" % ("True" if f.history else "False"))
        lines.append("    pbs_version = %s" % world.settings["pbs_version"])
    else:
        lines.append("    keep_completed = %d" % int(world.settings["keep_seconds"]))
    return "\n".join(lines) + "\n\n"


# --- qdel, qhold, qrls -----------------------------------------------------------------------------

def _control(servers: Servers, argv: List[str], command: str, action) -> Result:
    try:
        _, operands = getopt(argv, set("hW"), set(), command)
    except UsageError as e:
        return 2, "", "%s\nusage: %s [-h hold_list] job_identifier ...\n" % (e, command)
    if not operands:
        return 2, "", "usage: %s job_identifier ...\n" % command
    rc = 0
    err = []
    for op in operands:
        seq, _, sname = op.partition(".")
        world = servers.get(sname)
        if world is None:
            return no_server(command, sname)
        f = Flavour(world)
        now = world.now()
        job, why = _lookup(world, f, seq, history=True)
        full_op = f.full_id(seq) if seq.isdigit() else op
        if job is None:
            err.append("%s: %s %s" % (command, f.unknown, full_op))
            rc = rc or 153
            continue
        state = state_letter(f, job, now)
        if state == "F":
            # prt_job_err prints PBSE_HISTJOBID's text without the id (qhold, qrls); qdel adds it
            err.append("qdel: Job has finished %s" % full_op if command == "qdel" else "%s: Job has finished" % command)
            rc = rc or 35
        elif state in ("C", "E") and not f.pro:
            word = "COMPLETE" if state == "C" else "EXITING"
            err.append("%s: Request invalid for state of job MSG=invalid state for job - %s %s"
                       % (command, word, full_op))
            rc = rc or f.badstate_rc
        else:
            action(world, job)
    return rc, "", "".join(e + "\n" for e in err)


def _delete(world: core.World, job: Dict[str, Any]) -> None:
    if job["state"] != "finished" and job.get("kill_at") is None:
        world.cancel(job)


def _hold(world: core.World, job: Dict[str, Any]) -> None:
    # A running job keeps running: only the hold flag is set (no checkpointing).
    job["hold_types"] = "u"
    if job["state"] == "queued":
        job["held"] = True


def _release(world: core.World, job: Dict[str, Any]) -> None:
    job["hold_types"] = "n"
    job["held"] = False


@with_servers
def qdel(servers: Servers, argv: List[str]) -> Result:
    return _control(servers, argv, "qdel", _delete)


@with_servers
def qhold(servers: Servers, argv: List[str]) -> Result:
    return _control(servers, argv, "qhold", _hold)


@with_servers
def qrls(servers: Servers, argv: List[str]) -> Result:
    return _control(servers, argv, "qrls", _release)


HANDLERS = {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qhold": qhold, "qrls": qrls}


def main(command: str, argv: List[str], state_dir: str) -> int:
    return core.dispatch(HANDLERS, command, argv, state_dir, DEFAULTS)
