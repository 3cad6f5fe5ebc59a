"""LSF command output → ``NativeRecord`` → GAHP ``JobAnswer`` (backends.md §8).

Pure functions only: the adapter runs the commands and owns the clock.  Parsers raise
``ValueError`` on output they do not understand, so a changed format shows up as a failed
query instead of as wrong job states.  Values LSF did not report stay ``None``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord

# --- state table ------------------------------------------------------------------------

_STATUS = {
    "PEND": IDLE, "WAIT": IDLE,
    "PSUSP": HELD, "USUSP": HELD,
    "RUN": RUNNING,
    # Suspended by the system (load, run window): LSF resumes it by itself; a 5 would make
    # HTCondor hold the job and cancel it.
    "SSUSP": RUNNING,
    "DONE": COMPLETED, "EXIT": COMPLETED,
    # Killed while its execution host was unreachable.
    "ZOMBI": REMOVED,
}
# mbatchd lost contact with sbatchd: transient, says nothing about the job.
_KEEP_LAST = ("UNKWN",)

# What LSF prints instead of a table when the user has no (unfinished) jobs; any exit code.
NO_JOBS = ("No unfinished job found", "No job found")
# ... and for a job name (-J) that matches nothing
_NAME_NOT_FOUND_RE = re.compile(r"^Job <[^>]*> is not found", re.M)
# bhist when none of the ids is in the event logs it reads.
NO_HISTORY = ("No matching job found",)

_ID_RE = re.compile(r"\d+(?:\[\d+\])?$")


def _value(s: Optional[str]) -> Optional[str]:
    """LSF prints ``-`` for an empty field."""
    s = (s or "").strip()
    return None if s in ("", "-") else s


def no_jobs(stdout: str, stderr: str) -> bool:
    """The "no jobs" answer (LSF prints it on stderr; some wrappers move it to stdout)."""
    return any(p in stdout or p in stderr for p in NO_JOBS) or bool(
        _NAME_NOT_FOUND_RE.search(stdout) or _NAME_NOT_FOUND_RE.search(stderr))


def first_host(s: Optional[str]) -> Optional[str]:
    """``4*hostA:2*hostB`` (or ``hostA hostB``) → ``hostA``: the host the job script runs on."""
    s = _value(s)
    if s is None:
        return None
    first = re.split(r"[:\s]+", s)[0]
    host = first.split("*", 1)[1] if re.match(r"\d+\*", first) else first
    return host or None


# --- bsub -------------------------------------------------------------------------------

_SUBMITTED_RE = re.compile(r"^Job <(\d+)> is submitted", re.M)


def parse_bsub(stdout: str) -> Optional[str]:
    """The id of the first ``Job <N> is submitted ...`` line, or ``None``."""
    m = _SUBMITTED_RE.search(stdout)
    return m.group(1) if m else None


# --- bjobs -o ---------------------------------------------------------------------------

BULK_FIELDS = ("jobid", "stat", "exit_code", "exec_host", "pend_reason")
FIND_FIELDS = ("jobid", "stat", "job_name")


def output_format(fields: Sequence[str], delimiter: str = "|") -> str:
    """The ``bjobs -o`` argument for these fields (pend_reason, free text, goes last)."""
    return "%s delimiter='%s'" % (" ".join(fields), delimiter)


def parse_bjobs_o(text: str, fields: Sequence[str] = BULK_FIELDS, delimiter: str = "|",
                  observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``bjobs -o "<fields> delimiter='|'"`` (with or without ``-noheader``) → records.

    Known fields: jobid, stat, exit_code, exec_host, pend_reason, job_name; others are read
    and ignored.  The last field may contain the delimiter (it is free text).
    """
    fields = [f.lower() for f in fields]
    if "jobid" not in fields or "stat" not in fields:
        raise ValueError("bjobs -o needs the jobid and stat fields")
    header = delimiter.join(f.upper() for f in fields)
    records: Dict[str, NativeRecord] = {}
    for line in text.splitlines():
        if not line.strip() or line.strip() == header or line.strip() in NO_JOBS \
                or _NAME_NOT_FOUND_RE.match(line):
            continue
        parts = line.split(delimiter, len(fields) - 1)
        if len(parts) != len(fields):
            raise ValueError("unexpected bjobs line %r" % line)
        row = dict(zip(fields, (p.strip() for p in parts)))
        job_id, state = row["jobid"], row["stat"]
        if not _ID_RE.match(job_id) or not re.match(r"[A-Z]+$", state):
            raise ValueError("unexpected bjobs line %r" % line)
        code = _value(row.get("exit_code"))
        if code is not None and not re.match(r"-?\d+$", code):
            raise ValueError("unexpected exit code %r" % code)
        extra = {"job_name": row["job_name"]} if "job_name" in row else None
        records[job_id] = NativeRecord(
            job_id, state, reason=_reason(row.get("pend_reason")),
            exit_code=int(code) if code is not None else None,
            worker_node=first_host(row.get("exec_host")), source="bulk",
            observed_at=observed_at, extra=extra)
    return records


def _reason(s: Optional[str]) -> Optional[str]:
    s = _value(s)
    if s is None:
        return None
    return s.rstrip(";").strip() or None


# --- bjobs -w (LSF before 9.1.1 has no -o) ---------------------------------------------

WIDE_COLUMNS = ("JOBID", "USER", "STAT", "QUEUE", "FROM_HOST", "EXEC_HOST", "JOB_NAME", "SUBMIT_TIME")
_NEVER_DISPATCHED = ("PEND", "PSUSP", "WAIT")


def parse_bjobs_wide(text: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``bjobs -w`` (or the default table) → records: state, first execution host, job name.

    EXEC_HOST is empty for a pending job and JOB_NAME may contain blanks, so the columns are
    not simply the blank-separated words: where the FROM_HOST value ends before the header's
    EXEC_HOST column the column decides, else the state does (a pending job has no host).
    Continuation lines (more execution hosts) start with blanks and are skipped.
    """
    records: Dict[str, NativeRecord] = {}
    exec_col: Optional[int] = None
    for line in text.splitlines():
        if not line.strip() or line.strip() in NO_JOBS:
            continue
        if line.startswith("JOBID"):
            if line.split() != list(WIDE_COLUMNS):
                raise ValueError("unexpected bjobs header %r" % line)
            exec_col = line.index("EXEC_HOST")
            continue
        if line[0].isspace():
            continue
        words = line.split()
        if len(words) < 9 or not _ID_RE.match(words[0]) or not re.match(r"[A-Z]+$", words[2]):
            raise ValueError("unexpected bjobs line %r" % line)
        middle = words[5:-3]  # [EXEC_HOST] JOB_NAME..., before the 3 words of SUBMIT_TIME
        has_host = len(middle) > 1 and _has_exec_host(line, words, exec_col)
        if has_host is None:
            has_host = len(middle) > 1 and words[2] not in _NEVER_DISPATCHED
        host = first_host(middle[0]) if has_host else None
        name = " ".join(middle[1:] if has_host else middle)
        records[words[0]] = NativeRecord(words[0], words[2], worker_node=host, source="bulk",
                                         observed_at=observed_at, extra={"job_name": name})
    return records


def _has_exec_host(line: str, words: List[str], exec_col: Optional[int]) -> Optional[bool]:
    if exec_col is None:
        return None
    pos = 0
    for w in words[:5]:
        pos = line.index(w, pos) + len(w)
    if pos >= exec_col:  # FROM_HOST overflowed into the EXEC_HOST column
        return None
    return len(line) > exec_col and not line[exec_col].isspace()


# --- bhist -l ---------------------------------------------------------------------------

WRAP_WIDTH = 79          # LSF cuts long-format lines after 79 characters ...
WRAP_INDENT = " " * 21   # ... and indents the rest under the text after the time stamp
_EVENT_RE = re.compile(r"^[A-Z][a-z]{2} +[A-Z][a-z]{2} +\d+ +\d+:\d+(?::\d+)?(?: +\d{4})?: (.*)$")
_JOB_RE = re.compile(r"^Job <(\d+(?:\[\d+\])?)>")
_ANGLE_RE = re.compile(r"<([^<>]*)>")


def unwrap(text: str) -> List[str]:
    """Join LSF's wrapped long-format lines back into logical lines.

    A continuation starts with 21 blanks.  LSF cuts mid-word, so the pieces are joined as
    they are; a first piece shorter than the cut width lost a trailing blank (copies trim
    it), which is put back.
    """
    out: List[str] = []
    last_width = 0
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if out and line.startswith(WRAP_INDENT) and line.strip():
            piece = line[len(WRAP_INDENT):]
            out[-1] += (" " if last_width < WRAP_WIDTH and not piece.startswith(" ") else "") + piece
        else:
            out.append(line)
        last_width = len(line)
    return out


def parse_bhist(text: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``bhist -l <id ...>`` → one record per job, from its event lines.

    Only time-stamped event lines count (the ``Command <...>`` of the header may contain any
    text).  ``Done successfully`` → DONE/0; ``Exited with exit code N`` → EXIT/N;
    ``Signal <KILL> requested`` → killed (``extra["killed"]``), unless it then finished
    by itself; ``Dispatched``/``Started`` → the execution host.  A job with no outcome yet
    keeps its last live state (PEND, RUN, PSUSP, USUSP, SSUSP).
    """
    records: Dict[str, NativeRecord] = {}
    job_id: Optional[str] = None
    events: List[str] = []
    lines = unwrap(text)
    if not any(_JOB_RE.match(line) for line in lines) and any(
            line.strip() and line.strip() not in NO_HISTORY for line in lines):
        raise ValueError("unexpected bhist output %r" % text[:200])
    for line in lines + ["Job <end>"]:
        m = _JOB_RE.match(line)
        if m or line == "Job <end>":
            if job_id is not None:
                records[job_id] = _bhist_record(job_id, events, observed_at)
            job_id, events = (m.group(1) if m else None), []
            continue
        e = _EVENT_RE.match(line)
        if e and job_id is not None:
            events.append(e.group(1))
    return records


def _bhist_record(job_id: str, events: List[str], observed_at: float) -> NativeRecord:
    state = "PEND"
    dispatched = False
    host = None
    code = signal = None
    reason = None
    killed: Optional[str] = None
    for ev in events:
        if ev.startswith(("Dispatched", "Started")):
            dispatched = True
            hosts = _ANGLE_RE.findall(ev)
            host = first_host(hosts[0]) if hosts else host
            state = "RUN"
        elif ev.startswith(("Starting", "Running with")):
            dispatched, state = True, "RUN"
        elif ev.startswith("Suspended"):
            by_user = "user or administrator" in ev or "by the user" in ev
            state = ("USUSP" if by_user else "SSUSP") if dispatched else "PSUSP"
        elif ev.startswith(("Resumed", "Job resumed", "Running")):
            state = "RUN" if dispatched else "PEND"
        elif ev.startswith("Signal <KILL> requested"):
            killed = ev.rstrip(";")
        elif ev.startswith("Done successfully"):
            state, code = "DONE", 0
        elif ev.startswith("Exited"):
            state = "EXIT"
            m = re.match(r"Exited with exit code (-?\d+)", ev)
            s = re.match(r"Exited by (?:LSF )?signal (\d+)", ev)
            if m:
                code = int(m.group(1))
            elif s:
                signal = int(s.group(1))
        elif ev.startswith("Completed <"):
            if state not in ("DONE", "EXIT"):
                state = "DONE" if ev.startswith("Completed <done>") else "EXIT"
            tail = ev.split(";", 1)[1].strip().rstrip(";").strip() if ";" in ev else ""
            reason = tail or reason
        elif ev.startswith("Requeue") or ev.startswith("Job is requeued"):
            state, dispatched, code, signal = "PEND", False, None, None
    if state != "DONE" and killed is None and reason and reason.startswith(("TERM_OWNER", "TERM_ADMIN")):
        killed = reason
    extra = {"killed": killed} if killed and state == "EXIT" else None
    return NativeRecord(job_id, state, reason=reason, exit_code=code, exit_signal=signal,
                        worker_node=host, source="history", observed_at=observed_at, extra=extra)


# --- mapping ---------------------------------------------------------------------------

def map_record(rec: NativeRecord, *, report_batch_holds: bool = True,
               last_status: Optional[int] = None) -> JobAnswer:
    """The GAHP answer for one LSF record.

    ``UNKWN`` and states not in the table keep ``last_status`` (IDLE when there is none).
    A finished record without an exit code is COMPLETED without ``ExitCode``: the engine
    then looks for the exit status elsewhere; it is never guessed (DONE means exit 0).
    """
    state = rec.state
    killed = bool(rec.extra and rec.extra.get("killed"))
    status = _STATUS.get(state)
    if status is None or state in _KEEP_LAST:
        status = last_status if last_status is not None else IDLE
    elif state == "EXIT" and killed:
        status = REMOVED
    if status == HELD and state in ("PSUSP", "USUSP") and not report_batch_holds:
        status = IDLE

    attrs: Dict[str, object] = {"BatchJobId": rec.batch_id, "JobStatus": status}
    if status == COMPLETED and state in ("DONE", "EXIT"):
        attrs.update(_exit_attrs(state, rec.exit_code, rec.exit_signal))
    if state in ("EXIT", "ZOMBI") and status in (COMPLETED, REMOVED):
        # bulk rows carry the pending reason, which says nothing about how a job ended
        why = (rec.reason if rec.source == "history" else None) or (rec.extra or {}).get("killed")
        attrs["ExitReason"] = "LSF state %s%s" % (state, ": %s" % why if why else "")
    if status == HELD:
        attrs["HoldReason"] = "Suspended in LSF (%s)" % state
    if rec.worker_node is not None:
        attrs["WorkerNode"] = rec.worker_node
    attrs["BatchJobState"] = "%s/%s" % (state, rec.reason) if rec.reason and state in ("PEND", "PSUSP") else state
    return JobAnswer(status, attrs)


def _exit_attrs(state: str, code: Optional[int], signal: Optional[int]) -> Dict[str, object]:
    if signal:
        return {"ExitBySignal": True, "ExitSignal": signal}
    if code is None:
        return {"ExitCode": 0, "ExitBySignal": False} if state == "DONE" else {}
    return {"ExitCode": code, "ExitBySignal": False}


__all__ = ["parse_bsub", "parse_bjobs_o", "parse_bjobs_wide", "parse_bhist", "unwrap", "map_record",
           "first_host", "no_jobs", "output_format", "BULK_FIELDS", "FIND_FIELDS"]
