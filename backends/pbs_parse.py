"""PBS (TORQUE, PBS Pro / OpenPBS, the PBS emulation over Slurm) output → ``NativeRecord`` →
GAHP ``JobAnswer``.

Pure functions only: the adapter runs the commands.  Parsers raise ``ValueError`` on output
they do not understand, so a changed format shows up as a failed query instead of as wrong
job states.  Values PBS did not report stay ``None``.

Formats (backends.md §7.2):

* ``qstat -f [-1]``: ``Job Id: <id>`` then ``    name = value`` lines (four spaces; the PBS
  emulation over Slurm indents with a tab).  Without ``-1`` TORQUE and PBS Pro wrap long values
  at about 78 columns: the rest of the value follows on lines starting with a tab.
* ``qstat -f -F json`` (PBS Pro): ``{"timestamp":…, "pbs_version":…, "pbs_server":…,
  "Jobs": {"<id>": {…}}}`` with ``resources_used``/``Resource_List`` as nested objects; the
  ``Jobs`` key is left out when there is no job.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from blahp.records import COMPLETED, HELD, IDLE, RUNNING, JobAnswer, NativeRecord

# --- state table (backends.md §7.3) -------------------------------------------------------

STATUS = {
    "Q": IDLE, "W": IDLE, "T": IDLE, "M": IDLE,
    "H": HELD,
    "R": RUNNING, "E": RUNNING, "S": RUNNING, "U": RUNNING, "B": RUNNING,
    "C": COMPLETED, "F": COMPLETED, "X": COMPLETED,
}
FINAL_STATES = frozenset(s for s, st in STATUS.items() if st == COMPLETED)

# --- qsub ----------------------------------------------------------------------------------

_QSUB_ID_RE = re.compile(r"(\d+)(?:\.[A-Za-z0-9.-]+)?$")


def parse_qsub(stdout: str) -> Optional[str]:
    """The digits of the job id qsub printed (``15.pbsserver`` → ``15``; the emulation over Slurm
    prints ``15``), or ``None``.  The id is the first word of a line."""
    for line in stdout.splitlines():
        words = line.split()
        if words:
            m = _QSUB_ID_RE.match(words[0])
            if m:
                return m.group(1)
    return None


def batch_digits(job_id: str) -> Optional[str]:
    """``123.server`` / ``123`` → ``123``; array and other ids we never submit → ``None``."""
    head = job_id.strip().split(".", 1)[0]
    return head if head.isdigit() else None


# --- qstat -f ---------------------------------------------------------------------------------

_JOB_ID_RE = re.compile(r"Job Id:\s*(\S+)\s*$")
_ATTR_RE = re.compile(r"(    |\t)([A-Za-z_][A-Za-z0-9_.\-]*) = ?(.*)$")


def parse_qstat_full(text: str) -> List[Tuple[str, Dict[str, str]]]:
    """``qstat -f [-1]`` → ``[(job id as printed, {attribute: value})]``, continuation lines joined."""
    jobs: List[Tuple[str, Dict[str, str]]] = []
    attrs: Optional[Dict[str, str]] = None
    last: Optional[str] = None
    spaces = False  # this block indents attributes with four spaces, so tab lines continue values
    for line in text.splitlines():
        if not line.strip():
            last = None  # a blank line ends a job block
            continue
        m = _JOB_ID_RE.match(line)
        if m:
            attrs = {}
            jobs.append((m.group(1), attrs))
            last, spaces = None, False
            continue
        if attrs is None:
            raise ValueError("qstat output outside a job block: %r" % line[:200])
        m = _ATTR_RE.match(line)
        if m and not (spaces and m.group(1) == "\t"):
            last = m.group(2)
            attrs[last] = m.group(3).rstrip("\r")
            spaces = spaces or m.group(1) == "    "
            continue
        if last is None or not line[0].isspace():
            raise ValueError("unexpected qstat line: %r" % line[:200])
        # The printer breaks values with "\n\t"; documentation copies render the tab as spaces.
        attrs[last] += line[1:] if line.startswith("\t") else line.lstrip()
    return jobs


def parse_qstat_json(text: str) -> List[Tuple[str, Dict[str, str]]]:
    """``qstat -f -F json`` → the same shape as ``parse_qstat_full`` (nested objects flattened to
    ``resources_used.mem``; numbers as their decimal text)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError("qstat JSON output is not JSON: %s" % e) from None
    if not isinstance(doc, dict):
        raise ValueError("qstat JSON output is not an object")
    jobs = doc.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise ValueError("qstat JSON: Jobs is not an object")
    out = []
    for job_id, body in jobs.items():
        if not isinstance(body, dict):
            raise ValueError("qstat JSON: job %s is not an object" % job_id)
        flat: Dict[str, str] = {}
        for key, value in body.items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    flat["%s.%s" % (key, sub)] = _json_text(v)
            else:
                flat[key] = _json_text(value)
        out.append((job_id, flat))
    return out


def _json_text(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# --- field parsers -------------------------------------------------------------------------------

def parse_duration(s: Optional[str]) -> Optional[float]:
    """``[[HH:]MM:]SS`` (hours unbounded: ``71582788:15:00``) → seconds."""
    if s is None or not s.strip():
        return None
    parts = s.strip().split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(?:\.\d+)?", p) for p in parts):
        raise ValueError("unparsable duration %r" % s)
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


_SIZE_RE = re.compile(r"(\d+)([kmgtp]?)([bw]?)$", re.IGNORECASE)
_SIZE_UNIT = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}
_WORD = 8  # PBS counts ``w`` sizes in words of the execution host (64-bit)


def parse_size_kib(s: Optional[str]) -> Optional[int]:
    """PBS size (``12272kb``, ``0b``, ``2gb``, ``512mw``, bare bytes) → KiB, rounded up."""
    if s is None or not s.strip():
        return None
    m = _SIZE_RE.match(s.strip())
    if not m:
        raise ValueError("unparsable size %r" % s)
    n = int(m.group(1)) * _SIZE_UNIT[m.group(2).lower()] * (_WORD if m.group(3).lower() == "w" else 1)
    return int(math.ceil(n / 1024.0))


def first_exec_host(s: Optional[str]) -> Optional[str]:
    """``node1/0+node2/0`` (PBS Pro also ``node1/0*2``) → ``node1``; the emulation's ``--`` → None."""
    if s is None:
        return None
    host = s.strip().split("+", 1)[0].split("/", 1)[0].strip()
    return host if host and host != "--" else None


def parse_exit_status(s: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``exit_status``/``Exit_status`` → (exit code, signal).

    0..255: the job script's status; ≥ 256: killed by signal ``value − 256``; negative: TORQUE's
    ``JOB_EXEC_*`` (the job never ran) — kept as the negative code for the mapper.
    """
    if s is None or not s.strip():
        return None, None
    try:
        value = int(s.strip())
    except ValueError:
        raise ValueError("unparsable exit status %r" % s) from None
    if value >= 256:
        return None, value - 256
    return value, None


def owner_names(attrs: Dict[str, str]) -> Tuple[str, ...]:
    """The job's owner as ``euser`` (``root(0)`` in the emulation) and ``Job_Owner`` (``user@host``)."""
    names = []
    euser = attrs.get("euser")
    if euser:
        names.append(euser.split("(", 1)[0].strip())
    owner = attrs.get("Job_Owner")
    if owner:
        names.append(owner.split("@", 1)[0].strip())
    return tuple(n for n in names if n)


def _field(attrs: Dict[str, str], *names: str) -> Optional[str]:
    for n in names:
        if n in attrs:
            return attrs[n]
    return None


def record(job_id: str, attrs: Dict[str, str], *, source: str = "bulk",
           observed_at: float = 0.0) -> Optional[NativeRecord]:
    """One job's attributes → record; ``None`` for ids we never submit (array jobs)."""
    digits = batch_digits(job_id)
    if digits is None:
        return None
    state = (attrs.get("job_state") or "").strip()
    if not state:
        raise ValueError("job %s without job_state" % job_id)
    code, signal = parse_exit_status(_field(attrs, "exit_status", "Exit_status"))
    hold_types = (attrs.get("Hold_Types") or "").strip()
    return NativeRecord(
        digits, state, reason=hold_types if state == "H" and hold_types not in ("", "n") else None,
        exit_code=code, exit_signal=signal, worker_node=first_exec_host(attrs.get("exec_host")),
        user_cpu_s=parse_duration(attrs.get("resources_used.cput")),
        wall_s=parse_duration(attrs.get("resources_used.walltime")),
        max_rss_kib=parse_size_kib(attrs.get("resources_used.mem")),
        source=source, observed_at=observed_at,
        extra={"name": attrs.get("Job_Name", ""), "owners": list(owner_names(attrs))})


def records(jobs: Iterable[Tuple[str, Dict[str, str]]], *, user: Optional[str] = None,
            source: str = "bulk", observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """Records by batch id, only the jobs of ``user`` when given."""
    out: Dict[str, NativeRecord] = {}
    for job_id, attrs in jobs:
        if user is not None and user not in owner_names(attrs):
            continue
        rec = record(job_id, attrs, source=source, observed_at=observed_at)
        if rec is not None:
            out[rec.batch_id] = rec
    return out


# --- mapping ----------------------------------------------------------------------------------

def map_record(rec: NativeRecord, *, report_batch_holds: bool = True,
               last_status: Optional[int] = None) -> JobAnswer:
    """The GAHP answer for one PBS record.  Unknown states keep ``last_status`` (IDLE when none);
    a finished job without ``exit_status`` gets no exit attributes (never a guessed 0)."""
    state = rec.state
    status = STATUS.get(state)
    if status is None:
        status = last_status if last_status is not None else IDLE
    if status == HELD and not report_batch_holds:
        status = IDLE
    attrs: Dict[str, Any] = {"BatchJobId": rec.batch_id, "JobStatus": status}
    if status == COMPLETED:
        attrs.update(exit_attrs(rec.exit_code, rec.exit_signal))
    if status == HELD:
        attrs["HoldReason"] = "Held in PBS: job %s is H%s" % (
            rec.batch_id, " (Hold_Types = %s)" % rec.reason if rec.reason else "")
    for attr, value in (("WorkerNode", rec.worker_node), ("RemoteUserCpu", rec.user_cpu_s),
                        ("RemoteWallClockTime", rec.wall_s), ("ImageSize", rec.max_rss_kib)):
        if value is not None:
            attrs[attr] = float(value) if attr.startswith("Remote") else value
    attrs["BatchJobState"] = state
    return JobAnswer(status, attrs)


def exit_attrs(code: Optional[int], signal: Optional[int]) -> Dict[str, Any]:
    if signal is not None:
        return {"ExitBySignal": True, "ExitSignal": signal}
    if code is None:
        return {}
    if code < 0:
        return {"ExitCode": 1, "ExitBySignal": False, "ExitReason": "PBS exec status %d" % code}
    return {"ExitCode": code, "ExitBySignal": False}


__all__ = ["STATUS", "FINAL_STATES", "parse_qsub", "batch_digits", "parse_qstat_full", "parse_qstat_json",
           "parse_duration", "parse_size_kib", "first_exec_host", "parse_exit_status", "owner_names",
           "record", "records", "map_record", "exit_attrs"]
