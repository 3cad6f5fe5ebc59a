"""Simulated IBM Spectrum LSF: ``bsub bjobs bkill bstop bresume bhist`` (test-environment.md §8).

Outputs follow the documented formats kept under ``tests/fixtures/lsf`` (see SOURCES.txt there):
the ``bjobs`` table (default and ``-w``), ``bjobs -o "... delimiter='c'"`` (``-noheader``,
``-json``), ``bhist -l`` records cut after 79 columns with continuation lines indented by 21
blanks, and the messages LSF prints on stderr (``No unfinished job found``, ``Job <N> is not
found``, ``Job <N>: Job has already finished``, ``Job <N>: No matching job found``).

LSF states from the generic ones: queued → PEND (PSUSP when stopped by ``bstop`` or ``bsub -H``),
running → RUN, suspended → USUSP (``bstop``) or SSUSP (knob), finished → DONE (exit 0) or EXIT
(non-zero, killed; the exit code of a job killed by signal S is 128+S).

Settings (``SimSystem(..., **settings)`` / ``configure``), besides the core's:

``clean_period``          LSF's CLEAN_PERIOD (default 3600 s): finished jobs stay in ``bjobs -a``
``queues``, ``default_queue``   known queues (``<q>: No such queue. Job not submitted.``)
``o_format``              False: an LSF before 9.1.1 (``bjobs`` refuses ``-o``/``-noheader``/``-json``)
``consistent_exit_code``  LSB_BJOBS_CONSISTENT_EXIT_CODE=Y: "no jobs" exits 255 instead of 0
``system_suspend``        job ids the system suspends (SSUSP) while listed; resumed when removed
``stat_override``         {job id: "UNKWN" | "ZOMBI" | ...}: what bjobs shows instead of the state
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from . import core

DEFAULTS: Dict[str, Any] = {
    "keep_seconds": 3600.0,
    "queues": ["normal", "short", "long", "night"],
    "default_queue": "normal",
    "o_format": True,
    "consistent_exit_code": False,
    "system_suspend": [],
    "stat_override": {},
}

Result = Tuple[int, str, str]
WRAP_WIDTH = 79
WRAP_INDENT = 21
COMMAND_MAX = 4094
TABLE_COLUMNS = ("JOBID", "USER", "STAT", "QUEUE", "FROM_HOST", "EXEC_HOST", "JOB_NAME", "SUBMIT_TIME")
TABLE_WIDTHS = (7, 7, 5, 10, 11, 11, 10)
FIELDS = ("jobid", "stat", "user", "queue", "from_host", "exec_host", "job_name", "exit_code",
          "pend_reason", "submit_time", "exit_reason", "project", "cpu_used", "max_mem", "avg_mem")
ALIASES = {"id": "jobid", "name": "job_name"}
USAGE = {
    "bjobs": "Usage: bjobs [-h] [-V] [-w |-l] [-a] [-u user_name | -u all] [-J job_name] [-q queue_name] "
             "[-noheader] [-o \"field_name ... [delimiter='character']\" [-json]] [jobId ...]\n",
    "bsub": "Usage: bsub [-h] [-V] [-H] [-x] [-J job_name] [-q queue_name] [-P project_name] [-W run_limit] "
            "[-M mem_limit] [-R res_req] [-n num_tasks] [-o out_file] [-e err_file] [-cwd dir] [-b begin_time] "
            "[-L login_shell] [command [argument ...]]\n",
}
_STDIN = ""


def main(command: str, argv: List[str], state_dir: str) -> int:
    global _STDIN
    defaults = dict(DEFAULTS)
    try:
        with open(os.path.join(state_dir, "settings.json")) as f:
            settings = json.load(f)
    except (OSError, ValueError):
        settings = {}
    if "clean_period" in settings and "keep_seconds" not in settings:
        defaults["keep_seconds"] = float(settings["clean_period"])
    if command == "bsub" and not sys.stdin.isatty():
        _STDIN = sys.stdin.read()  # before the state lock: the writer may be slow
    return core.dispatch(HANDLERS, command, argv, state_dir, defaults)


# -- time and text ------------------------------------------------------------------------------

def stamp(t: float) -> str:
    """Event time as LSF prints it (ctime without the year)."""
    return time.strftime("%a %b %e %H:%M:%S", time.localtime(t))


def wrap(line: str, width: int = WRAP_WIDTH, indent: int = WRAP_INDENT) -> List[str]:
    """LSF's long-format line cutting: 79 columns, then 21 blanks and the next 58 characters."""
    out = [line[:width].rstrip()]
    rest = line[width:]
    step = width - indent
    while rest:
        out.append((" " * indent + rest[:step]).rstrip())
        rest = rest[step:]
    return out


def _home_relative(path: str) -> str:
    home = os.environ.get("HOME", "")
    if home and home != "/" and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "$HOME" + path[len(home.rstrip("/")):]
    return path


# -- state --------------------------------------------------------------------------------------

def stat(world: core.World, job: Dict[str, Any]) -> str:
    override = (world.settings.get("stat_override") or {}).get(job["id"])
    if override:
        return str(override)
    st = job["state"]
    if st == "queued":
        return "PSUSP" if job.get("lsf_hold") == "user" else "PEND"
    if st == "running":
        return "RUN"
    if st == "suspended":
        return "SSUSP" if job.get("susp_kind") == "system" else "USUSP"
    return "DONE" if job["exit_status"] == 0 and not job["cancelled"] else "EXIT"


def exit_code(job: Dict[str, Any]) -> Optional[int]:
    if job["state"] != "finished":
        return None
    if job["exit_status"] is not None:
        return job["exit_status"]
    if job["signal"]:
        return 128 + int(job["signal"])  # LSF reports a signal death as 128+S
    return None  # killed before it ran


def _exec_host(job: Dict[str, Any]) -> Optional[str]:
    if not job.get("start_time") or not job.get("host"):
        return None
    slots = int(job.get("slots") or 1)
    return "%d*%s" % (slots, job["host"]) if slots > 1 else job["host"]


def _pend_reason(job: Dict[str, Any]) -> Optional[str]:
    if job["state"] != "queued":
        return None
    if job.get("lsf_hold") == "user":
        return "The job was suspended by the user while pending;"
    if job.get("lsf_hold") == "begin":
        return "The job has a specified start time;"
    return "New job is waiting for scheduling;"


def _exit_reason(job: Dict[str, Any]) -> Optional[str]:
    if job["state"] == "finished" and job["cancelled"]:
        return "TERM_OWNER: job killed by owner"
    return None


def field(world: core.World, job: Dict[str, Any], name: str) -> Optional[str]:
    if name == "jobid":
        return job["id"]
    if name == "stat":
        return stat(world, job)
    if name == "user":
        return job["owner"]
    if name == "queue":
        return job.get("queue")
    if name == "project":
        return job.get("project") or "default"
    if name == "from_host":
        return job.get("from_host")
    if name == "exec_host":
        return _exec_host(job)
    if name == "job_name":
        return job["name"]
    if name == "exit_code":
        code = exit_code(job)
        return None if code is None or stat(world, job) == "DONE" else str(code)
    if name == "pend_reason":
        return _pend_reason(job)
    if name == "submit_time":
        return time.strftime("%b %e %H:%M", time.localtime(job["submit_time"]))
    if name == "exit_reason":
        return _exit_reason(job)
    if name == "cpu_used":
        return "0.0 second(s)" if job.get("start_time") else None
    if name in ("max_mem", "avg_mem"):
        return None  # no resource usage collected
    raise KeyError(name)


def prepare(world: core.World) -> None:
    """Apply what time and the test knobs changed since the last command."""
    now = world.now()
    changed = False
    system = {str(x) for x in world.settings.get("system_suspend") or []}
    for job in world.jobs.values():
        if job["state"] == "queued" and job.get("lsf_hold") == "begin" and now >= job.get("begin_time", 0):
            job["held"] = False
            job["lsf_hold"] = None
            changed = True
        elif job["state"] == "running" and job["id"] in system:
            world.suspend(job)
            job["susp_kind"] = "system"
            _event(world, job, "Suspended by the LSF system;")
        elif job["state"] == "suspended" and job.get("susp_kind") == "system" and job["id"] not in system:
            world.resume(job)
            job["susp_kind"] = None
            _event(world, job, "Resumed by the LSF system;")
    if changed:
        world.tick()


def _event(world: core.World, job: Dict[str, Any], text: str) -> None:
    job.setdefault("events", []).append([world.now(), text])


def _handler(fn):
    def run(world: core.World, argv: List[str]) -> Result:
        prepare(world)
        return fn(world, argv)
    return run


# -- bsub ---------------------------------------------------------------------------------------

_BSUB_VALUE = ("-J", "-o", "-oo", "-e", "-eo", "-i", "-q", "-P", "-W", "-M", "-R", "-n", "-L", "-b", "-cwd",
               "-m", "-G", "-g", "-app", "-sla", "-w", "-E", "-u", "-c", "-F", "-D", "-S", "-C", "-gpu")
_BSUB_FLAGS = ("-x", "-H", "-N", "-B", "-r", "-rn", "-K")


def _bsub_options(args: List[str], opts: Dict[str, Any]) -> Tuple[Optional[str], List[str]]:
    """Fold options into ``opts`` (``-R`` accumulates); (error, remaining command words)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in _BSUB_FLAGS:
            opts[a] = True
        elif a in _BSUB_VALUE:
            if i + 1 >= len(args):
                return "bsub: option requires an argument -- %s\n" % a[1:], []
            i += 1
            if a == "-R":
                opts.setdefault("-R", []).append(args[i])
            else:
                opts[{"-oo": "-o", "-eo": "-e"}.get(a, a)] = args[i]
        elif a.startswith("-") and a != "-":
            return "bsub: illegal option -- %s\n%s" % (a[1:], USAGE["bsub"]), []
        else:
            return None, args[i:]
        i += 1
    return None, []


def script_directives(script: str) -> List[str]:
    """The words of the ``#BSUB`` lines before the first command of a job script."""
    words: List[str] = []
    for n, line in enumerate(script.splitlines()):
        s = line.strip()
        if n == 0 and s.startswith("#!"):
            continue
        if not s or (s.startswith("#") and not s.startswith("#BSUB")):
            continue
        if not s.startswith("#BSUB"):
            break
        words += shlex.split(s[len("#BSUB"):], comments=False)
    return words


def parse_begin(spec: str, now: float) -> Optional[float]:
    """``[[[YYYY:]MM:]DD:]hh:mm``; a time already past means the next such moment."""
    parts = spec.split(":")
    if not 2 <= len(parts) <= 5 or not all(p.isdigit() for p in parts):
        return None
    lt = time.localtime(now)
    fields = [lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0]
    fields[5 - len(parts):] = [int(p) for p in parts]
    try:
        t = time.mktime((fields[0], fields[1], fields[2], fields[3], fields[4], 0, 0, 0, -1))
    except (OverflowError, ValueError):
        return None
    if t < now and len(parts) == 2:
        t += 86400
    return t


def _int_arg(value: str) -> Optional[int]:
    m = re.match(r"(\d+)(?:,\d+)?$", value.strip())
    return int(m.group(1)) if m else None


def bsub(world: core.World, argv: List[str]) -> Result:
    cli: Dict[str, Any] = {}
    err, command = _bsub_options(argv, cli)
    if err:
        return 255, "", err
    if command:
        # A command, not a script: LSF does not look for #BSUB lines in it.
        script = " ".join(shlex.quote(w) for w in command) + "\n"
        opts: Dict[str, Any] = {}
    else:
        script = _STDIN
        if not script.strip():
            return 255, "", "bsub: No command is specified. Job not submitted.\n"
        opts = {}
        err, rest = _bsub_options(script_directives(script), opts)
        if err:
            return 255, "", err
    resources = list(opts.get("-R", [])) + list(cli.get("-R", []))
    opts.update(cli)  # the command line wins over the script
    if resources:
        opts["-R"] = resources
    queue = opts.get("-q") or world.settings["default_queue"]
    if queue.split("@")[0] not in world.settings["queues"]:
        return 255, "", "%s: No such queue. Job not submitted.\n" % queue
    slots = _int_arg(opts["-n"]) if "-n" in opts else 1
    if slots is None or slots < 1:
        return 255, "", "%s: Bad argument for option -n. Job not submitted.\n" % opts["-n"]
    run_limit = None
    if "-W" in opts:
        m = re.match(r"(?:(\d+):)?(\d+)$", opts["-W"])
        if not m:
            return 255, "", "%s: Bad RUNLIMIT specification. Job not submitted.\n" % opts["-W"]
        run_limit = int(m.group(1) or 0) * 60 + int(m.group(2))
    now = world.now()
    begin = None
    if "-b" in opts:
        begin = parse_begin(opts["-b"], now)
        if begin is None:
            return 255, "", "%s: Bad time specification. Job not submitted.\n" % opts["-b"]
    hold = "user" if opts.get("-H") else ("begin" if begin is not None and begin > now else None)
    cwd = opts.get("-cwd") or os.getcwd()
    text = ";".join(script.splitlines())[:COMMAND_MAX]
    job = world.new_job(
        script, name=opts.get("-J") or text[:COMMAND_MAX], cwd=cwd, env=dict(os.environ), held=hold is not None,
        lsf_hold=hold, begin_time=begin, queue=queue, project=opts.get("-P"), run_limit_min=run_limit,
        mem_limit=opts.get("-M"), resources=resources, slots=slots, exclusive=bool(opts.get("-x")),
        login_shell=opts.get("-L"), from_host=world.settings["host"], command=text, events=[],
        options={k: v for k, v in opts.items()})
    jid = job["id"]
    out = opts.get("-o")
    errf = opts.get("-e")

    def subst(p: Optional[str]) -> Optional[str]:
        return p.replace("%J", jid).replace("%I", "0") if p else p
    job["stdout"] = subst(out)
    job["stderr"] = subst(errf) if errf else subst(out)  # without -e, stderr goes with stdout
    job["job_env"] = {
        "LSB_JOBID": jid, "LSB_JOBNAME": job["name"], "LSB_QUEUE": queue, "LSB_SUBCWD": cwd,
        "LS_SUBCWD": cwd, "LSB_JOBINDEX": "0", "LSB_HOSTS": " ".join([world.settings["host"]] * slots),
        "LSB_MCPU_HOSTS": "%s %d" % (world.settings["host"], slots), "LSB_EXEC_CLUSTER": "lsfsim",
        "LSB_OUTPUTFILE": job["stdout"] or "", "LSB_ERRORFILE": job["stderr"] or "",
    }
    where = "queue <%s>" % queue if opts.get("-q") else "default queue <%s>" % queue
    return 0, "Job <%s> is submitted to %s.\n" % (jid, where), ""


# -- bjobs --------------------------------------------------------------------------------------

def _illegal(command: str, opt: str) -> Result:
    return 255, "", "%s: illegal option -- %s\n%s" % (command, opt, USAGE.get(command, ""))


def parse_format(spec: str) -> Tuple[Optional[List[str]], str, Optional[str]]:
    """``-o`` argument → (fields, delimiter, error)."""
    delimiter = " "
    fields: List[str] = []
    for word in spec.split():
        m = re.match(r"""delimiter=(['"])(.)\1$""", word)
        if m:
            delimiter = m.group(2)
            continue
        name = ALIASES.get(word.split(":")[0].lower(), word.split(":")[0].lower())
        if name not in FIELDS:
            return None, delimiter, "%s: Illegal field name.\n" % word.split(":")[0]
        fields.append(name)
    if not fields:
        return None, delimiter, "Output format is not specified.\n"
    return fields, delimiter, None


def _order(world: core.World, job: Dict[str, Any]) -> Tuple[int, int]:
    group = {"running": 0, "suspended": 0, "queued": 1}.get(job["state"], 2)
    return group, int(job["id"])


def table_row(values: List[str], wide: bool) -> str:
    cells = []
    for i, (v, w) in enumerate(zip(values[:7], TABLE_WIDTHS)):
        if not wide and len(v) > w:
            if i == 6:
                v = "*" + v[-(w - 1):]  # LSF keeps the end of a long job name
            elif i > 0:
                v = v[:w]
        cells.append(v.ljust(w) + " ")
    return "".join(cells) + values[7]


def bjobs(world: core.World, argv: List[str]) -> Result:
    opts: Dict[str, Any] = {"-u": world.user}
    ids: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-o", "-noheader", "-json") and not world.settings.get("o_format", True):
            return _illegal("bjobs", "o" if a == "-o" else a[1])
        if a in ("-a", "-w", "-noheader", "-json"):
            opts[a] = True
        elif a in ("-u", "-J", "-o", "-q"):
            if i + 1 >= len(argv):
                return 255, "", "bjobs: option requires an argument -- %s\n%s" % (a[1:], USAGE["bjobs"])
            i += 1
            opts[a] = argv[i]
        elif a.startswith("-"):
            return _illegal("bjobs", a[1:])
        else:
            ids.append(a)
        i += 1
    fmt = None
    if "-o" in opts:
        fields, delim, err = parse_format(opts["-o"])
        if err:
            return 255, "", err
        fmt = (fields, delim)
    elif opts.get("-json"):
        return 255, "", "bjobs: -json requires -o.\n"

    rc, errors = 0, []
    if ids:
        jobs = []
        for jid in ids:
            job = world.find(jid)
            if job is None:
                errors.append("Job <%s> is not found\n" % jid)
                rc = 255
            else:
                jobs.append(job)
    else:
        jobs = [j for j in world.jobs.values()
                if (opts["-u"] == "all" or j["owner"] == opts["-u"])
                and (opts.get("-a") or j["state"] != "finished")
                and ("-q" not in opts or j.get("queue") == opts["-q"])
                and ("-J" not in opts or fnmatch.fnmatchcase(j["name"], opts["-J"]))]
        if not jobs:
            if "-J" in opts:
                return 255, "", "Job <%s> is not found\n" % opts["-J"]
            msg = "No job found\n" if opts.get("-a") else "No unfinished job found\n"
            return (255 if world.settings.get("consistent_exit_code") else 0), "", msg
    jobs.sort(key=lambda j: _order(world, j))
    if not jobs:
        return rc, "", "".join(errors)
    if fmt is not None:
        fields, delim = fmt
        rows = [{f.upper(): field(world, j, f) or "-" for f in fields} for j in jobs]
        if opts.get("-json"):
            out = json.dumps({"COMMAND": "bjobs", "JOBS": len(rows), "RECORDS": rows}, indent=2) + "\n"
        else:
            lines = [] if opts.get("-noheader") else [delim.join(f.upper() for f in fields)]
            lines += [delim.join(r[f.upper()] for f in fields) for r in rows]
            out = "".join(line + "\n" for line in lines)
        return rc, out, "".join(errors)
    wide = bool(opts.get("-w"))
    lines = [] if opts.get("-noheader") else [table_row(list(TABLE_COLUMNS), True)]
    for j in jobs:
        values = [field(world, j, f) or "" for f in ("jobid", "user", "stat", "queue", "from_host",
                                                       "exec_host", "job_name", "submit_time")]
        lines.append(table_row(values, wide))
    return rc, "".join(line + "\n" for line in lines), "".join(errors)


# -- bkill, bstop, bresume ---------------------------------------------------------------------

def _control(world: core.World, argv: List[str], command: str, act) -> Result:
    """bkill/bstop/bresume: ``act(job)`` for each live job named; LSF's messages for the others."""
    ids = []
    for a in argv:
        if a.startswith("-"):
            return _illegal(command, a[1:])
        ids.append(a)
    if not ids:
        return 255, "", "%s: No job ID is specified.\n" % command
    rc, out, err = 0, [], []
    for jid in ids:
        job = world.find(jid)
        if job is None:
            rc = 255
            err.append("Job <%s>: No matching job found\n" % jid)
        elif job["state"] == "finished":
            rc = 255
            err.append("Job <%s>: Job has already finished\n" % jid)
        else:
            message = act(job)
            if message.startswith("Job <%s>:" % jid):
                rc = 255
                err.append(message + "\n")
            else:
                out.append(message + "\n")
    return rc, "".join(out), "".join(err)


def bkill(world: core.World, argv: List[str]) -> Result:
    def kill(job: Dict[str, Any]) -> str:
        _event(world, job, "Signal <KILL> requested by user or administrator <%s>;" % core.current_user())
        world.cancel(job)  # pending: gone at once; running: TERM, then KILL
        return "Job <%s> is being terminated" % job["id"]
    return _control(world, argv, "bkill", kill)


def bstop(world: core.World, argv: List[str]) -> Result:
    def stop(job: Dict[str, Any]) -> str:
        if job["state"] == "queued":
            job["held"] = True
            job["lsf_hold"] = "user"
        elif job["state"] == "running":
            world.suspend(job)
            job["susp_kind"] = "user"
        elif job["state"] == "suspended":
            job["susp_kind"] = "user"  # a system-suspended job is now also stopped by its user
        _event(world, job, "Suspended by the user or administrator <%s>;" % core.current_user())
        return "Job <%s> is being stopped" % job["id"]
    return _control(world, argv, "bstop", stop)


def bresume(world: core.World, argv: List[str]) -> Result:
    def resume(job: Dict[str, Any]) -> str:
        if job["state"] == "queued" and job.get("lsf_hold") == "user":
            if job.get("begin_time") and world.now() < job["begin_time"]:
                job["lsf_hold"] = "begin"
            else:
                job["held"] = False
                job["lsf_hold"] = None
        elif job["state"] == "suspended" and job.get("susp_kind") == "user":
            world.resume(job)
            job["susp_kind"] = None
        else:
            return "Job <%s>: The job is not suspended" % job["id"]
        _event(world, job, "Resumed by the user or administrator <%s>;" % core.current_user())
        return "Job <%s> is being resumed" % job["id"]
    return _control(world, argv, "bresume", resume)


# -- bhist --------------------------------------------------------------------------------------

SEPARATOR = "-" * 78


def _pid(world: core.World, job: Dict[str, Any]) -> int:
    try:
        with open(world.job_path(job["id"], "started")) as f:
            return int(json.load(f)["pgid"])
    except (OSError, ValueError, KeyError):
        return 10000 + int(job["id"])


def history_lines(world: core.World, job: Dict[str, Any]) -> List[str]:
    """The logical lines of one ``bhist -l`` record (``wrap`` cuts them for printing)."""
    head = "Job <%s>, Job Name <%s>, User <%s>, Project <%s>, Command <%s>" % (
        job["id"], job["name"], job["owner"], job.get("project") or "default", job.get("command", ""))
    sub = "Submitted from host <%s>, to Queue <%s>, CWD <%s>" % (
        job.get("from_host"), job.get("queue"), _home_relative(job["cwd"]))
    if job.get("stdout"):
        sub += ", Output File <%s>" % job["stdout"]
    if job.get("stderr") and job.get("stderr") != job.get("stdout"):
        sub += ", Error File <%s>" % job["stderr"]
    if job.get("resources"):
        sub += ", Requested Resources <%s>" % " ".join(job["resources"])
    events = [(job["submit_time"], sub + ";")]
    if job.get("start_time"):
        t, host, pid = job["start_time"], job.get("host"), _pid(world, job)
        n = int(job.get("slots") or 1)
        events += [(t, "Dispatched %d Task(s) on Host(s) <%s>, Allocated %d Slot(s) on Host(s) <%s>, "
                       "Effective RES_REQ <select[type == local] order[r15s:pg] >;" % (n, host, n, host)),
                   (t, "Starting (Pid %d);" % pid),
                   (t, "Running with execution home <%s>, Execution CWD <%s>, Execution Pid <%d>;"
                    % (_home_relative(os.environ.get("HOME", "/")), _home_relative(job["cwd"]), pid))]
    events += [(float(t), text) for t, text in job.get("events", [])]
    end = job.get("end_time")
    if job["state"] == "finished":
        code = exit_code(job)
        if stat(world, job) == "DONE":
            events += [(end, "Done successfully. The CPU time used is 0.0 seconds;"),
                       (end, "Post job process done successfully;")]
        else:
            if code is not None:
                events.append((end, "Exited with exit code %d. The CPU time used is 0.0 seconds;" % code))
            events.append((end, "Completed <exit>; TERM_OWNER: job killed by owner;" if job["cancelled"]
                           else "Completed <exit>;"))
    events.sort(key=lambda e: e[0])  # stable: same-time events keep their order
    now = end if end else world.now()
    start = job.get("start_time")
    pend = (start or now) - job["submit_time"]
    susp = float(job.get("suspended_for") or 0.0)
    run = (now - start - susp) if start else 0.0
    psusp = 0.0
    if job.get("lsf_hold") == "user" and not start:
        psusp, pend = pend, 0.0
    times = [int(pend), int(psusp), int(max(run, 0)), int(susp), 0, 0]
    times.append(sum(times))
    lines = [head] + ["%s: %s" % (stamp(t), text) for t, text in events]
    lines += ["", "Summary of time in seconds spent in various states by  %s" % stamp(now),
              "  PEND     PSUSP    RUN      USUSP    SSUSP    UNKWN    TOTAL",
              "  " + "".join("%-9d" % v for v in times[:-1]) + str(times[-1])]
    return lines


def bhist(world: core.World, argv: List[str]) -> Result:
    ids: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-l", "-a", "-d", "-w", "-b"):
            pass
        elif a in ("-n", "-u", "-f", "-J"):
            i += 1
        elif a.startswith("-"):
            return _illegal("bhist", a[1:])
        else:
            ids.append(a)
        i += 1
    if not ids:
        ids = sorted(list(world.jobs) + list(world.history), key=int)
    records = []
    for jid in ids:
        job = world.find(jid, history=True)
        if job is not None and job["owner"] == world.user:
            text = "\n".join(line for logical in history_lines(world, job) for line in wrap(logical))
            records.append(text + "\n")
    if not records:
        return 255, "", "No matching job found\n"
    return 0, "\n" + ("%s\n\n" % SEPARATOR).join(records), ""


HANDLERS = {name: _handler(fn) for name, fn in (
    ("bsub", bsub), ("bjobs", bjobs), ("bkill", bkill), ("bstop", bstop), ("bresume", bresume), ("bhist", bhist))}
COMMANDS = tuple(HANDLERS)
