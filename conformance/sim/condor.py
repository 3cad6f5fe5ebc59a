"""A simulated HTCondor access point: condor_submit, condor_q, condor_history, condor_rm,
condor_hold, condor_release (test-environment.md §8).

Behaviour and texts follow HTCondor's own sources (condor_submit.V6/submit.cpp,
condor_utils/submit_utils.cpp, condor_rm.V6/rm.cpp, condor_schedd.V6/schedd.cpp actOnJobs,
condor_daemon_client/dc_schedd.cpp, condor_q.V6/queue.cpp, condor_tools/history.cpp,
classad/jsonSink.cpp):

* submit descriptions: ``key = value`` (keys case-insensitive), ``+Attr``/``MY.Attr`` ClassAd
  attributes, ``#`` comment lines, backslash continuation lines, ``$(macro)``, ``$(DOLLAR)``,
  ``$ENV(x)``, ``$$(DOLLARDOLLAR)``, one ``queue [1]`` statement; V1 and V2 ``arguments`` and
  ``environment``.  Jobs run with the executable as the process (no shell in between), in
  ``initialdir`` (a shared filesystem stands in for file transfer; remaps are not applied).
* JobStatus 1 idle, 2 running, 3 removed, 4 completed, 5 held, 7 suspended.  A completed job stays
  in the queue while its ``leave_in_queue`` (pyblahp's formula: N seconds after completion)
  allows, then moves to the history; removed jobs leave at once.  Setting
  ``leave_in_queue_seconds`` overrides every job's value; core's ``keep_seconds`` still caps it.
* ``condor_hold`` of a running job evicts it (hard kill) and it starts from scratch after
  ``condor_release``; ``periodic_remove`` with pyblahp's runtime formula is enforced.
* ``-json`` output is byte-compatible with HTCondor's (condor_q prints nothing when no job
  matches, condor_history prints ``[`` and ``]`` around nothing).
* ``-name``/``-pool``: the local schedd (``schedd_name``, default the host) plus the names in the
  setting ``schedds`` (``"name"`` or ``"name/pool"``); every schedd has its own queue, cluster
  ids and history in ``<state>/schedd-<name>[@@<pool>]`` (settings and clock of the main state).
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import core

DEFAULTS: Dict[str, Any] = {
    "keep_seconds": 1e9,             # HTCondor keeps a finished job by its leave_in_queue, not by age
    "leave_in_queue_seconds": None,  # override every job's leave_in_queue (seconds after completion)
    "schedd_name": None,             # the local schedd's name (default: the host setting)
    "schedds": [],                   # other schedds reachable with -name [-pool]
    "slot": {"Cpus": 4, "Memory": 8192, "GPUs": 0},  # the one kind of slot jobs are matched to
}
COMMANDS = ("condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold", "condor_release")
NAMES = {0: "U", 1: "I", 2: "R", 3: "X", 4: "C", 5: "H", 6: ">", 7: "S"}
HOLD_USER = 1
HOLD_SUBMITTED = 15
_LEAVE_RE = re.compile(r"\(CurrentTime\s*-\s*CompletionDate\)\s*<\s*(\d+)")
_RUNTIME_RE = re.compile(r"JobStatus\s*==\s*2\s*&&\s*\(time\(\)\s*-\s*JobCurrentStartExecutingDate\s*>\s*(\d+)\)")


class Expression:
    """A non-literal ClassAd attribute value (printed as ``\\/Expr(...)\\/`` in JSON)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.text == self.text


# -- routing to a schedd -------------------------------------------------------------------

def _target(argv: List[str]) -> Tuple[Optional[str], Optional[str]]:
    name = pool = None
    for i, a in enumerate(argv[:-1]):
        if a in ("-name", "-n", "-remote"):
            name = argv[i + 1]
        elif a in ("-pool", "-p"):
            pool = argv[i + 1]
    return name, pool


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@:-]", "_", s)


def main(command: str, argv: List[str], state_dir: str) -> int:
    settings = dict(DEFAULTS)
    settings.update(core._read_json(os.path.join(state_dir, "settings.json"), {}))
    local = settings.get("schedd_name") or settings.get("host") or core.DEFAULTS["host"]
    name, pool = _target(argv)
    if name is None and pool is None or (name == local and not pool):
        return core.dispatch(HANDLERS, command, argv, state_dir, DEFAULTS)
    known = [str(s) for s in settings.get("schedds") or []]
    if name is None or ("%s/%s" % (name, pool) if pool else name) not in known:
        return core.dispatch({command: _unknown_schedd(command, name, pool)}, command, argv, state_dir, DEFAULTS)
    sub = os.path.join(state_dir, "schedd-%s%s" % (_safe(name), "@@" + _safe(pool) if pool else ""))
    os.makedirs(sub, exist_ok=True)
    clock = os.path.join(sub, "clock.json")
    if not os.path.lexists(clock):
        os.symlink(os.path.join("..", "clock.json"), clock)  # one virtual clock for every schedd
    defaults = dict(settings)
    defaults.pop("schedds", None)
    return core.dispatch(HANDLERS, command, argv, sub, defaults)


def _unknown_schedd(command: str, name: Optional[str], pool: Optional[str]) -> Callable:
    def handler(world: core.World, argv: List[str]) -> core.Result:
        shown = name or "(local)"
        if command == "condor_submit":
            return 1, "", "\nERROR: Can't find address of schedd %s\n" % shown
        if command == "condor_q":
            return 1, "", "Error: Collector has no record of schedd/submitter\n"
        if command == "condor_history":
            return 1, "", "Unable to locate remote schedd (name=%s, pool=%s).\n" % (name or "", pool or "")
        return 1, "", "Error: unknown schedd %s\n" % shown.rpartition("@")[2]
    return handler


# -- submit descriptions -------------------------------------------------------------------

class SubmitError(Exception):
    pass


_SPACE = " \t\n\v\f\r"  # C isspace(): what HTCondor trims (not Python's Unicode white space)


def read_description(text: str) -> Tuple[Dict[str, Tuple[str, str]], Dict[str, Tuple[str, str]], Optional[str]]:
    """(commands by folded key → (key, raw value), +attributes likewise, queue argument or None).

    Lines as HTCondor's config reader sees them: whitespace trimmed at both ends, a trailing
    backslash joins the next line, ``#`` lines are comments; nothing after ``queue`` counts.
    """
    commands: Dict[str, Tuple[str, str]] = {}
    attrs: Dict[str, Tuple[str, str]] = {}
    logical: List[str] = []
    buf = ""
    for raw in text.split("\n"):
        line = raw.strip(_SPACE)
        if not buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    for line in logical:
        line = line.strip(_SPACE)
        if not line or line.startswith("#"):
            continue
        m = re.match(r"queue(?:[ \t](.*))?$", line, re.IGNORECASE)
        if m:
            return commands, attrs, (m.group(1) or "").strip(_SPACE)
        key, eq, value = line.partition("=")
        if not eq:
            raise SubmitError("Parse error: %s" % line)
        key, value = key.strip(_SPACE), value.strip(_SPACE)
        if key.startswith("+") or key.upper().startswith("MY."):
            name = key[1:] if key.startswith("+") else key[3:]
            attrs[name.lower()] = (name.strip(_SPACE), value)
        else:
            commands[key.lower()] = (key, value)
    return commands, attrs, None


def expand(value: str, lookup: Callable[[str], Optional[str]], depth: int = 0) -> str:
    """Submit-time macro expansion; ``$$(...)`` is left for match time."""
    if depth > 20:
        raise SubmitError("Macro expansion too deep in: %s" % value)
    out: List[str] = []
    i, n = 0, len(value)
    while i < n:
        if value.startswith("$$(", i):
            j = value.find(")", i)
            j = n - 1 if j < 0 else j
            out.append(value[i:j + 1])
            i = j + 1
        elif value.startswith("$ENV(", i) and value.find(")", i) > 0:
            j = value.find(")", i)
            out.append(os.environ.get(value[i + 5:j], ""))
            i = j + 1
        elif value.startswith("$(", i) and value.find(")", i) > 0:
            j = value.find(")", i)
            name, _, default = value[i + 2:j].partition(":")
            if name.upper() == "DOLLAR":
                out.append("$")
            else:
                found = lookup(name)
                out.append(expand(found, lookup, depth + 1) if found is not None else default)
            i = j + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def match_time(value: str) -> str:
    """``$$(DOLLARDOLLAR)`` → ``$$``; ``$$(attr:default)`` → default (no machine ad here)."""
    def sub(m: "re.Match[str]") -> str:
        name, colon, default = m.group(1).partition(":")
        if name.upper() == "DOLLARDOLLAR":
            return "$$"
        return default if colon else m.group(0)
    return re.sub(r"\$\$\(([^)]*)\)", sub, value)


def v2_or_v1(value: str) -> Tuple[bool, str]:
    """``"..."`` is the new syntax (``""`` is a literal ``"``)."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return True, value[1:-1].replace('""', '"')
    return False, value


def parse_arguments(value: str) -> List[str]:
    from blahp.argsenv import parse_v1, parse_v2
    v2, text = v2_or_v1(value)
    return parse_v2(text) if v2 else parse_v1(text)


def parse_environment(value: str) -> List[Tuple[str, str]]:
    from blahp.argsenv import parse_env_v1, parse_env_v2
    v2, text = v2_or_v1(value)
    return (parse_env_v2(text) if v2 else parse_env_v1(text, ";"))[0]


def literal(text: str) -> Any:
    """A +attribute's value: the Python value of a ClassAd literal, else an Expression."""
    from blahp.classad import Literal, parse_expr
    try:
        expr = parse_expr(text)
    except Exception:
        raise SubmitError("Parse error in expression: %s" % text) from None
    if isinstance(expr, Literal) and isinstance(expr.value, (bool, int, float, str)):
        return expr.value
    return Expression(text)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def h_submit(world: core.World, argv: List[str]) -> core.Result:
    terse = "-terse" in argv
    files = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] not in
                                                                            ("-name", "-pool", "-remote", "-batch-name"))]
    if len(files) != 1:
        return 1, "", "\nERROR: Failed to open command file (%s) (No such file or directory)\n" % " ".join(files)
    head = "" if terse else "Submitting job(s)"
    try:
        with open(files[0]) as f:
            text = f.read()
    except OSError as e:
        return 1, "", "\nERROR: Failed to open command file (%s) (%s)\n" % (files[0], e.strerror)
    try:
        job = _make_job(world, text)
    except SubmitError as e:
        return 1, head, "\n%s\n" % e
    cid = job["id"]
    if terse:
        return 0, "%s.0 - %s.0\n" % (cid, cid), ""
    return 0, "Submitting job(s).\n1 job(s) submitted to cluster %s.\n" % cid, ""


def _make_job(world: core.World, text: str) -> Dict[str, Any]:
    try:
        commands, attrs, queue = read_description(text)
    except SubmitError as e:
        raise SubmitError("ERROR: %s" % e) from None
    if queue is None:
        raise SubmitError('ERROR: "submit file" doesn\'t contain any "queue" commands -- no jobs queued')
    if queue not in ("", "1"):
        raise SubmitError("ERROR: this simulator queues one job per submission (queue %s)" % queue)
    cluster = str(world.next_id)

    def lookup(name: str) -> Optional[str]:
        if name.lower() in ("cluster", "clusterid"):
            return cluster
        if name.lower() in ("process", "procid", "step", "node"):
            return "0"
        return commands.get(name.lower(), (None, None))[1]

    def get(key: str, default: Optional[str] = None) -> Optional[str]:
        raw = commands.get(key)
        return match_time(expand(raw[1], lookup)) if raw is not None else default

    universe = (get("universe") or "vanilla").lower()
    if universe != "vanilla":
        raise SubmitError("ERROR: this simulator runs vanilla universe jobs only (universe = %s)" % universe)
    iwd = os.path.normpath(os.path.join(os.getcwd(), get("initialdir") or get("initial_dir") or os.getcwd()))
    if not os.access(iwd, os.F_OK | os.X_OK):
        raise SubmitError("ERROR: No such directory: %s" % iwd)
    exe = get("executable")
    if not exe:
        raise SubmitError("ERROR: No 'executable' parameter was provided")
    transfer_exe = (get("transfer_executable") or "true").lower() not in ("false", "no", "f", "n", "0")
    exe_path = os.path.join(iwd, exe)
    if transfer_exe:
        if not os.path.exists(exe_path):
            raise SubmitError("ERROR: Can't access executable file %s: No such file or directory" % exe_path)
        if os.path.getsize(exe_path) == 0:
            raise SubmitError("ERROR: Executable file %s has zero length" % exe_path)
    try:
        args = parse_arguments(get("arguments") or get("args") or "")
        env = parse_environment(get("environment") or get("env") or "")
    except ValueError as e:
        raise SubmitError("ERROR: %s" % e) from None
    ad_attrs = {name: literal(match_time(expand(value, lookup))) for name, value in attrs.values()}
    cpus = int(get("request_cpus") or 1)
    stdin = get("input")
    script = ["#!/bin/bash", "# condor_starter (simulated) for job %s.0" % cluster,
              "exec %s%s" % (" ".join(shlex.quote(a) for a in [exe_path] + args),
                             " < %s" % shlex.quote(os.path.join(iwd, stdin)) if stdin else "")]
    getenv = (get("getenv") or "false").lower() in ("true", "yes", "t", "y", "1")
    job_env = {"_CONDOR_SCRATCH_DIR": iwd, "_CONDOR_SLOT": "slot1", "BATCH_SYSTEM": "HTCondor",
               "OMP_NUM_THREADS": str(cpus)}
    job_env.update(dict(env))
    leave = get("leave_in_queue")
    m = _LEAVE_RE.search(leave or "")
    leave_s = float(m.group(1)) if m else (1e12 if (leave or "").strip().lower() == "true" else 0.0)
    m = _RUNTIME_RE.search(get("periodic_remove") or "")
    fields = dict(request_cpus=cpus, request_memory=int(get("request_memory") or 0) or None,
                  request_gpus=int(get("request_gpus") or 0) or None, requirements=get("requirements"))
    unmatched = not _matches_slot(world, fields)
    on_hold = (get("hold") or "false").lower() in ("true", "yes", "t", "y", "1")
    job = world.new_job(
        "\n".join(script) + "\n", name=os.path.basename(exe), cwd=iwd, held=on_hold or unmatched,
        env=dict(os.environ) if getenv else {}, stdout=get("output"), stderr=get("error"),
        job_env=job_env, cmd=exe_path, args=args, environment=env, stdin_file=stdin, ad_attrs=ad_attrs,
        unmatched=unmatched, periodic_remove=get("periodic_remove"), runtime_limit=float(m.group(1)) if m else None,
        leave_s=leave_s, proxy=get("x509userproxy"), transfer_executable=transfer_exe,
        transfer_input=get("transfer_input_files"), transfer_output=get("transfer_output_files"),
        remaps=_unquote(get("transfer_output_remaps") or ""), qdate=world.now(), num_starts=0,
        condor_config=os.environ.get("CONDOR_CONFIG"),  # which configuration the tool was run with
        wall_acc=0.0, hold_reason="submitted on hold" if on_hold else None,
        hold_code=HOLD_SUBMITTED if on_hold else None, remove_reason=None, last_host=None, **fields)
    return job


def _matches_slot(world: core.World, fields: Dict[str, Any]) -> bool:
    """Whether the configured slot could run the job; one that no slot matches stays idle."""
    slot = world.settings.get("slot") or {}
    for need, have in (("request_cpus", "Cpus"), ("request_memory", "Memory"), ("request_gpus", "GPUs")):
        if fields.get(need) and fields[need] > slot.get(have, 0):
            return False
    if fields.get("requirements"):
        try:
            return matcher(fields["requirements"])(dict(slot))
        except ValueError:
            return False
    return True


# -- the schedd's own bookkeeping ----------------------------------------------------------

def condor_tick(world: core.World) -> None:
    """What the schedd does besides the generic clock: start counts, periodic_remove,
    leave_in_queue."""
    now = world.now()
    for job in list(world.jobs.values()) + list(world.history.values()):
        if job.get("start_time") is not None and job.get("counted_start") != job["start_time"]:
            job["counted_start"] = job["start_time"]
            job["num_starts"] = job.get("num_starts", 0) + 1
        if job.get("host"):
            job["last_host"] = job["host"]
    for job in list(world.jobs.values()):
        limit = job.get("runtime_limit")
        if limit is not None and job["state"] == "running" and not job["cancelled"] \
                and now - job["start_time"] > limit:
            job["remove_reason"] = ("The job attribute PeriodicRemove expression '%s' evaluated to TRUE"
                                    % job.get("periodic_remove"))
            world.cancel(job)
        if job["state"] != "finished":
            continue
        leave = world.settings.get("leave_in_queue_seconds")
        leave = float(leave) if leave is not None else float(job.get("leave_s") or 0.0)
        if job["cancelled"] or now - job["end_time"] >= leave:
            del world.jobs[job["id"]]
            if world.settings["history"]:
                world.history[job["id"]] = job


def job_status(job: Dict[str, Any]) -> int:
    if job["state"] == "finished":
        return 3 if job["cancelled"] else 4
    if job["cancelled"]:
        return 3  # still being killed: condor_q shows X
    if job["state"] == "queued":
        # core's held flag also parks a job that no slot matches; that one is idle to HTCondor
        return 5 if job["held"] and not (job.get("unmatched") and job.get("hold_reason") is None) else 1
    return 2 if job["state"] == "running" else 7


def job_ad(world: core.World, job: Dict[str, Any]) -> Dict[str, Any]:
    status = job_status(job)
    wall = float(job.get("wall_acc") or 0.0)
    if job["state"] == "finished" and job.get("start_time") is not None:
        wall += job["end_time"] - job["start_time"]
    ad: Dict[str, Any] = {
        "MyType": "Job", "ClusterId": int(job["id"]), "ProcId": 0, "JobStatus": status,
        "Owner": job["owner"], "User": "%s@%s" % (job["owner"], world.settings["host"]),
        "Cmd": job.get("cmd", ""), "Iwd": job["cwd"], "JobUniverse": 5, "QDate": int(job.get("qdate") or job["submit_time"]),
        "EnteredCurrentStatus": int(world.now()), "NumJobStarts": int(job.get("num_starts") or 0),
        "RemoteUserCpu": 0.0, "RemoteSysCpu": 0.0, "RemoteWallClockTime": float(wall),
        "BytesSent": 0.0, "BytesRecvd": 0.0, "RequestCpus": int(job.get("request_cpus") or 1),
        "TransferExecutable": bool(job.get("transfer_executable", True)),
    }
    from blahp.argsenv import quote_v2
    if job.get("args"):
        ad["Arguments"] = quote_v2(job["args"])
    if job.get("environment"):
        ad["Environment"] = quote_v2(["%s=%s" % tuple(kv) for kv in job["environment"]])
    for attr, key in (("In", "stdin_file"), ("Out", "stdout"), ("Err", "stderr"), ("x509userproxy", "proxy"),
                      ("TransferInput", "transfer_input"), ("TransferOutput", "transfer_output"),
                      ("TransferOutputRemaps", "remaps")):
        if job.get(key):
            ad[attr] = job[key]
    for attr, key in (("RequestMemory", "request_memory"), ("RequestGPUs", "request_gpus")):
        if job.get(key):
            ad[attr] = int(job[key])
    for attr, key in (("Requirements", "requirements"), ("PeriodicRemove", "periodic_remove")):
        if job.get(key):
            ad[attr] = Expression(job[key])
    if status == 2 and job.get("host"):
        ad["RemoteHost"] = "slot1@%s" % job["host"]
        ad["JobCurrentStartDate"] = ad["JobCurrentStartExecutingDate"] = int(job["start_time"])
    if job.get("last_host"):
        ad["LastRemoteHost"] = "slot1@%s" % job["last_host"]
    if status == 5:
        ad["HoldReason"] = job.get("hold_reason") or "via condor_hold"
        ad["HoldReasonCode"] = int(job.get("hold_code") or HOLD_USER)
        ad["HoldReasonSubCode"] = 0
    if status == 3:
        ad["RemoveReason"] = job.get("remove_reason") or "via condor_rm (by user %s)" % job["owner"]
    if status == 4:
        ad["CompletionDate"] = int(job["end_time"])
        if job.get("signal"):
            ad["ExitBySignal"] = True
            ad["ExitSignal"] = int(job["signal"])
        else:
            ad["ExitBySignal"] = False
            ad["ExitCode"] = int(job["exit_status"] or 0)
    for name, value in (job.get("ad_attrs") or {}).items():
        ad[name] = value
    return ad


# -- ClassAd output ------------------------------------------------------------------------

def json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif 0 < ord(ch) < 32:
            out.append("\\u00%02X" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def real(x: float) -> str:
    """ClassAd real unparse: ``%.16G`` with ``.0`` when that looks like an integer."""
    if x == 0.0:
        return "%.1f" % x
    if x != x:
        return 'real("NaN")'
    if x in (float("inf"), float("-inf")):
        return 'real("%sINF")' % ("-" if x < 0 else "")
    s = "%.16G" % x
    return s if any(c in s for c in ".Ee") else s + ".0"


def json_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        s = real(v)
        return s if not s.startswith("real(") else '"\\/Expr(%s)\\/"' % json_string(s)[1:-1]
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, Expression):
        return '"\\/Expr(%s)\\/"' % json_string(v.text)[1:-1]
    return "null"


def old_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return real(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, Expression):
        return v.text
    return "undefined"


def _projected(ad: Dict[str, Any], attrs: Optional[List[str]], sort: bool = True) -> List[Tuple[str, Any]]:
    """The tools print attributes in case-insensitive name order (a projection is a set)."""
    wanted = {a.lower() for a in attrs} if attrs is not None else None
    items = [(k, v) for k, v in ad.items() if wanted is None or k.lower() in wanted]
    return sorted(items, key=lambda kv: kv[0].lower()) if sort else items


def json_ad(ad: Dict[str, Any], attrs: Optional[List[str]] = None, sort: bool = True) -> str:
    body = ",".join('\n  %s: %s' % (json_string(k), json_value(v)) for k, v in _projected(ad, attrs, sort))
    return "{" + body + "\n}"


def json_list(ads: List[Dict[str, Any]], attrs: Optional[List[str]], always: bool, sort: bool = True) -> str:
    if not ads:
        return "[\n]\n" if always else ""
    return "[\n" + ",\n".join(json_ad(ad, attrs, sort) + "\n" for ad in ads) + "]\n"


def long_ads(ads: List[Dict[str, Any]], attrs: Optional[List[str]], sort: bool = True) -> str:
    return "".join("".join("%s = %s\n" % (k, old_value(v)) for k, v in _projected(ad, attrs, sort)) + "\n"
                   for ad in ads)


def autoformat(ads: List[Dict[str, Any]], attrs: List[str]) -> str:
    lines = []
    for ad in ads:
        folded = {k.lower(): v for k, v in ad.items()}
        vals = []
        for a in attrs:
            v = folded.get(a.lower())
            vals.append("undefined" if v is None else v if isinstance(v, str) else
                        v.text if isinstance(v, Expression) else old_value(v))
        lines.append(" ".join(vals))
    return "".join(line + "\n" for line in lines)


def matcher(text: str) -> Callable[[Dict[str, Any]], bool]:
    """A ``-constraint``: HTCondor's own ClassAd library when installed, else pyblahp's."""
    try:
        import classad2
    except ImportError:
        classad2 = None
    if classad2 is not None:
        try:
            expr = classad2.ExprTree(text)
        except Exception:
            raise ValueError(text) from None

        def match(ad: Dict[str, Any]) -> bool:
            cad = classad2.ClassAd()
            for k, v in ad.items():
                cad[k] = classad2.ExprTree(v.text) if isinstance(v, Expression) else v
            return expr.eval(cad) is True
        return match
    from blahp.classad import ClassAd, parse_expr
    from blahp.classad.evaluate import evaluate
    from blahp.classad.nodes import literal_of
    try:
        tree = parse_expr(text)
    except Exception:
        raise ValueError(text) from None

    def match_own(ad: Dict[str, Any]) -> bool:
        cad = ClassAd()
        for k, v in ad.items():
            cad[k] = parse_expr(v.text) if isinstance(v, Expression) else literal_of(v)
        return evaluate(tree, cad) is True
    return match_own


# -- condor_q / condor_history ----------------------------------------------------------------

class _Query:
    def __init__(self, argv: List[str], tool: str) -> None:
        self.json = self.long = False
        self.attrs: Optional[List[str]] = None
        self.af: Optional[List[str]] = None
        self.constraints: List[str] = []
        self.ids: List[Tuple[int, Optional[int]]] = []
        self.users: List[str] = []
        self.match: Optional[int] = None
        self.all_users = self.forwards = False
        i = 0
        while i < len(argv):
            a = argv[i]
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if a in ("-name", "-pool", "-n", "-p"):
                i += 1
            elif a == "-json":
                self.json = True
            elif a in ("-long", "-l"):
                self.long = True
            elif a in ("-attributes", "-attrs", "-af", "-autoformat") or a.startswith(("-af:", "-autoformat:")):
                if nxt is None:
                    raise ValueError("Error: Argument %s requires another parameter" % a)
                if a.startswith(("-af", "-autoformat")):
                    self.af = []
                    while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                        i += 1
                        self.af.append(argv[i])
                    i += 1
                    continue
                self.attrs = [x.strip() for x in nxt.split(",") if x.strip()]
                i += 1
            elif a in ("-constraint", "-const"):
                if nxt is None:
                    raise ValueError("Error: Argument %s requires another parameter" % a)
                self.constraints.append(nxt)
                i += 1
            elif a in ("-match", "-limit"):
                self.match = int(nxt or "0")
                i += 1
            elif a in ("-allusers", "-all"):
                self.all_users = True
            elif a == "-forwards":
                self.forwards = True
            elif a in ("-backwards", "-nobatch", "-totals", "-total", "-wide"):
                pass
            elif a.startswith("-"):
                raise ValueError("Error: Unknown argument %s" % a if tool == "condor_history"
                                 else "Error: unrecognized argument %s" % a)
            elif re.fullmatch(r"\d+(\.\d+)?", a):
                c, _, p = a.partition(".")
                self.ids.append((int(c), int(p) if p else None))
            else:
                self.users.append(a)
            i += 1
        self.matchers = [matcher(c) for c in self.constraints]

    def selects(self, world: core.World, ad: Dict[str, Any], history: bool) -> bool:
        who = self.users or ([] if self.all_users or history or self.ids else [world.user])
        if (who or self.ids) and not (ad["Owner"] in who or any(
                ad["ClusterId"] == c and (p is None or ad["ProcId"] == p) for c, p in self.ids)):
            return False
        return all(m(ad) for m in self.matchers)

    def render(self, ads: List[Dict[str, Any]], always_brackets: bool) -> str:
        if self.af is not None:
            return autoformat(ads, self.af)
        if self.json:
            return json_list(ads, self.attrs, always_brackets)
        if self.long:
            return long_ads(ads, self.attrs)
        return ""


def h_q(world: core.World, argv: List[str]) -> core.Result:
    condor_tick(world)
    try:
        q = _Query(argv, "condor_q")
    except ValueError as e:
        text = str(e)
        if not text.startswith("Error"):
            return 1, "", '\n-- Parse error in constraint expression "%s"\n' % text
        return 1, "", text + "\n"
    ads = [job_ad(world, j) for j in sorted(world.jobs.values(), key=lambda j: int(j["id"]))]
    ads = [ad for ad in ads if q.selects(world, ad, history=False)]
    if q.json or q.long or q.af is not None:
        return 0, q.render(ads, always_brackets=False), ""
    return 0, _table(world, ads), ""


def _table(world: core.World, ads: List[Dict[str, Any]]) -> str:
    out = ["", "", "-- Schedd: %s : <127.0.0.1:9618?...> @ %s" % (
        world.settings.get("schedd_name") or world.settings["host"], time.strftime("%m/%d/%y %H:%M:%S")),
        " ID      OWNER            SUBMITTED     RUN_TIME ST PRI SIZE CMD"]
    for ad in ads:
        out.append("%4d.0   %-16s %s   0+00:00:00 %s  0    0.0 %s" % (
            ad["ClusterId"], ad["Owner"], time.strftime("%m/%d %H:%M", time.localtime(ad["QDate"])),
            NAMES.get(ad["JobStatus"], "?"), os.path.basename(ad["Cmd"])))
    count = lambda s: sum(1 for ad in ads if ad["JobStatus"] == s)  # noqa: E731
    out += ["", "Total for query: %d jobs; %d completed, %d removed, %d idle, %d running, %d held, 0 suspended"
            % (len(ads), count(4), count(3), count(1), count(2), count(5)), ""]
    return "\n".join(out)


def h_history(world: core.World, argv: List[str]) -> core.Result:
    condor_tick(world)
    try:
        q = _Query(argv, "condor_history")
    except ValueError as e:
        text = str(e)
        return 1, "", (text if text.startswith("Error") else "Error:  could not parse constraint %s" % text) + "\n"
    jobs = sorted(world.history.values(), key=lambda j: (j.get("end_time") or 0, int(j["id"])),
                  reverse=not q.forwards)
    ads = []
    for job in jobs:
        ad = job_ad(world, job)
        if q.selects(world, ad, history=True):
            ads.append(ad)
            if q.match and len(ads) >= q.match:
                break
    if q.json or q.long or q.af is not None:
        return 0, q.render(ads, always_brackets=True), ""
    lines = [" ID     OWNER          SUBMITTED   RUN_TIME     ST COMPLETED   CMD"]
    for ad in ads:
        lines.append("%d.0 %s %s %s" % (ad["ClusterId"], ad["Owner"], NAMES[ad["JobStatus"]], os.path.basename(ad["Cmd"])))
    return 0, "\n".join(lines) + "\n", ""


# -- condor_rm / condor_hold / condor_release --------------------------------------------------

_PAST = {"condor_rm": "marked for removal", "condor_hold": "held", "condor_release": "released"}
_VERB = {"condor_rm": "remove", "condor_hold": "hold", "condor_release": "release"}


def _act(world: core.World, tool: str, job: Dict[str, Any]) -> str:
    """The schedd's actOnJobs for one job: "ok", "not found", "already", "denied", "bad status"."""
    status = job_status(job)
    now = world.now()
    if tool == "condor_rm":
        if status == 3:
            return "already"
        job["remove_reason"] = "via condor_rm (by user %s)" % world.user
        if status == 4:  # a completed job still in the queue becomes a removed one
            job["cancelled"] = True
        else:
            world.cancel(job)
        return "ok"
    if tool == "condor_hold":
        if status == 5 and job.get("hold_code") == HOLD_USER:
            return "already"
        if status in (3, 4):
            return "denied"
        if job["state"] in ("running", "suspended"):
            _evict(world, job)
        job["held"] = True
        job["hold_reason"] = "via condor_hold (by user %s)" % world.user
        job["hold_code"] = HOLD_USER
        return "ok"
    if status != 5:
        return "bad status"
    job["held"] = bool(job.get("unmatched"))
    job["hold_reason"] = job["hold_code"] = None
    job["submit_time"] = now  # back in the negotiation cycle: the queue delay applies again
    return "ok"


def _evict(world: core.World, job: Dict[str, Any]) -> None:
    """A hard kill of the running job; it waits in the queue and later starts from scratch."""
    started = core._read_json(world.job_path(job["id"], "started"), None)
    if world.settings["execute"] and started is not None:
        world._signal_group(job, signal.SIGCONT)
        world._signal_group(job, signal.SIGKILL)
        deadline = time.time() + 10
        while core._alive(int(started["runner"]), started.get("runner_start")) and time.time() < deadline:
            time.sleep(0.05)  # the runner records the dead payload; that record is not the end
    for suffix in ("started", "rc"):
        try:
            os.unlink(world.job_path(job["id"], suffix))
        except OSError:
            pass
    now = world.now()
    job["wall_acc"] = float(job.get("wall_acc") or 0.0) + now - job["start_time"]
    job["last_host"] = job.get("host")
    job.update(state="queued", start_time=None, host=None)
    job.pop("runner_started", None)
    job.pop("kill_at", None)


def _control(tool: str) -> Callable[[core.World, List[str]], core.Result]:
    def handler(world: core.World, argv: List[str]) -> core.Result:
        condor_tick(world)
        ids, clusters, users, constraint = [], [], [], None
        i = 0
        while i < len(argv):
            a = argv[i]
            if a in ("-name", "-pool", "-reason", "-subcode"):
                i += 2
                continue
            if a in ("-constraint", "-const"):
                constraint = argv[i + 1] if i + 1 < len(argv) else None
                i += 2
                continue
            if a.startswith("-"):
                return 1, "", "Unrecognized option: %s\n" % a
            if re.fullmatch(r"\d+\.\d+", a):
                ids.append(a)
            elif re.fullmatch(r"\d+", a):
                clusters.append(int(a))
            else:
                users.append(a)
            i += 1
        if not (ids or clusters or users or constraint):
            return 1, "", "You did not specify any jobs\n"
        out, err, failed = [], [], False
        if ids:
            lines = []
            for jid in ids:
                c, p = jid.split(".")
                job = world.jobs.get(c) if p == "0" else None
                result = "not found" if job is None else _act(world, tool, job)
                if result == "ok":
                    out.append("Job %s.%s %s" % (c, p, _PAST[tool]))
                    continue
                failed = True
                lines.append({"not found": "Job %s.%s not found",
                              "already": "Job %%s.%%s already %s" % _PAST[tool],
                              "denied": "Permission denied to %s job %%s.%%s" % _VERB[tool],
                              "bad status": "Job %s.%s not held to be released"}[result] % (c, p))
            if failed:
                err.append("")  # the (empty) error stack printed first
                err += lines
        if clusters or users or constraint:
            ok, msg, stack = _by_constraint(world, tool, clusters, users, constraint)
            if ok:
                out.append("All jobs%s have been %s" % (msg, _PAST[tool]))
            else:
                err.append(stack)
                if stack == "":
                    failed = True
                    err.append("Couldn't find/%s all jobs%s" % (_VERB[tool], msg))
        return (1 if failed else 0), "".join(s + "\n" for s in out), "".join(s + "\n" for s in err)
    return handler


def _by_constraint(world: core.World, tool: str, clusters: List[int], users: List[str],
                   constraint: Optional[str]) -> Tuple[bool, str, str]:
    parts = ["ClusterId == %d" % c for c in clusters] + ['Owner == "%s"' % u for u in users]
    if constraint and parts:
        text, msg = "(%s) && (%s)" % (" || ".join(parts), constraint), None
    else:
        text, msg = constraint or " || ".join(parts), None
    if len(parts) == 1 and not constraint:
        msg = " in cluster %d" % clusters[0] if clusters else ' of user "%s"' % users[0]
    if msg is None:
        msg = " matching constraint (%s)" % text
    match = matcher(text)
    acted = 0
    wanted = {"condor_rm": lambda s: s != 3, "condor_hold": lambda s: s not in (3, 4),
              "condor_release": lambda s: s == 5}[tool]
    for job in list(world.jobs.values()):
        ad = job_ad(world, job)
        if match(ad) and wanted(ad["JobStatus"]) and _act(world, tool, job) == "ok":
            acted += 1
    if acted:
        return True, msg, ""
    if not world.jobs:
        return False, msg, "%s:0:There are no jobs in the queue" % tool
    return False, msg, ""


HANDLERS = {"condor_submit": h_submit, "condor_q": h_q, "condor_history": h_history,
            "condor_rm": _control("condor_rm"), "condor_hold": _control("condor_hold"),
            "condor_release": _control("condor_release")}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -m conformance.sim.condor STATE_DIR COMMAND [ARGS...]")
    sys.exit(main(sys.argv[2], sys.argv[3:], sys.argv[1]))
