"""Grid Engine (Son of Grid Engine 8.1.9) command output → ``NativeRecord`` → GAHP ``JobAnswer``.

Pure functions only: the adapter runs the commands and owns the clock.  Parsers raise
``ValueError`` on output they do not understand, so a changed format shows up as a failed
query instead of as wrong job states.  Values Grid Engine did not report stay ``None``.
"""
from __future__ import annotations

import calendar
import math
import re
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional

from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord

#: ``NativeRecord.state`` of a record built from ``qacct`` (Grid Engine's letter for "finished")
FINISHED = "z"

# --- qsub --------------------------------------------------------------------------------

# -terse prints the id alone; an array job prints ``<id>.<first>-<last>:<step>``.
_TERSE_RE = re.compile(r"(\d+)(?:\.\d+-\d+:\d+)?$")
_YOUR_JOB_RE = re.compile(r"Your job(?:-array)? (\d+)")


def parse_qsub(stdout: str) -> Optional[str]:
    """``qsub -terse`` output → batch id; ``None`` when no id is there."""
    for line in stdout.splitlines():
        if line.strip():
            m = _TERSE_RE.match(line.strip())
            if m:
                return m.group(1)
            break
    # without -terse (or a site wrapper that chats first) the sentence still names it
    m = _YOUR_JOB_RE.search(stdout)
    return m.group(1) if m else None


# --- qstat -xml --------------------------------------------------------------------------

def parse_qstat_xml(text: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``qstat -xml [-u user]`` → records by job id (running under ``queue_info``, pending
    under the inner ``job_info``; both are ``job_list`` elements)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError("unparsable qstat -xml output: %s" % e) from None
    if root.tag != "job_info":
        raise ValueError("unexpected qstat -xml document <%s>" % root.tag)
    records: Dict[str, NativeRecord] = {}
    for entry in root.iter("job_list"):
        job_id = (entry.findtext("JB_job_number") or "").strip()
        state = (entry.findtext("state") or "").strip()
        if not job_id.isdigit() or not state:
            raise ValueError("qstat -xml job entry without number or state: %r" % ET.tostring(entry)[:200])
        if job_id in records:
            continue  # further tasks of an array job: the first (running ones come first) speaks
        queue = (entry.findtext("queue_name") or "").strip()
        slots = (entry.findtext("slots") or "").strip()
        records[job_id] = NativeRecord(
            job_id, state, worker_node=queue.partition("@")[2] or None,
            alloc_cpus=int(slots) if slots.isdigit() and queue else None,
            source="bulk", observed_at=observed_at,
            extra={"name": (entry.findtext("JB_name") or "").strip()})
    return records


# --- qstat -j ----------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^={10,}\s*$", re.M)
_ERROR_REASON_RE = re.compile(r"^error reason\s+\d+:\s*(.*)$")
# "11/22/2026 01:45:14 [0:22248]: error: ..." : the time and [uid:pid] of the failed start
_REASON_PREFIX_RE = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \[[^\]]*\]:\s*")


def parse_error_reasons(text: str) -> Dict[str, str]:
    """``qstat -j <id>[,<id>...]`` → ``{job id: error reason}`` for the jobs that have one."""
    out: Dict[str, str] = {}
    for section in _SECTION_RE.split(text):
        job_id, reasons = None, []
        for line in section.splitlines():
            if line.startswith("job_number:"):
                job_id = line.split(":", 1)[1].strip()
                continue
            m = _ERROR_REASON_RE.match(line)
            if m:
                reasons.append(_REASON_PREFIX_RE.sub("", m.group(1).strip()))
        if job_id and reasons:
            out[job_id] = "; ".join(dict.fromkeys(reasons))
    return out


# --- qacct -j ----------------------------------------------------------------------------

_NOT_FOUND_RE = re.compile(r"error: job id \d+ not found")


def qacct_not_found(text: str) -> bool:
    """qacct's answer for an id without a record (not yet flushed, or never finished)."""
    return bool(_NOT_FOUND_RE.search(text))


def parse_qacct(text: str, listing: bool = False) -> List[Dict[str, str]]:
    """``qacct -j <id>`` → its records (``key value`` blocks), oldest first.

    Several records for one id are normal: a job that went to an error state before it
    started has a record for that failure and another one for the run after ``qmod -cj``;
    ids also come back when the id counter wraps.  ``listing``: the output of ``qacct -o
    <user> -b <time> -j``, which ends with a per-owner usage table (no records at all is
    then an empty answer, not an error).
    """
    if qacct_not_found(text):
        return []
    records = []
    for block in _SECTION_RE.split(text):
        fields: Dict[str, str] = {}
        for line in block.splitlines():
            if not line.strip():
                continue
            key, _, value = line.strip().partition(" ")
            fields[key] = value.strip()
        if not fields:
            continue
        missing = [k for k in ("jobnumber", "failed", "exit_status") if k not in fields]
        if missing and listing and "jobnumber" not in fields:
            continue  # the usage summary after the records
        if missing:
            raise ValueError("qacct record without %s: %r" % (missing[0], block[:200]))
        records.append(fields)
    if not records and not listing:
        raise ValueError("no qacct record in %r" % text[:200])
    return records


def parse_ctime(s: Optional[str]) -> Optional[float]:
    """``Sun Nov 22 01:45:12 2026`` (qacct, qmaster's local time) → seconds, read as UTC;
    ``-/-`` (never started) → ``None``."""
    s = (s or "").strip()
    if not s or s == "-/-":
        return None
    try:
        return float(calendar.timegm(time.strptime(s, "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        raise ValueError("unparsable qacct time %r" % s) from None


# qacct prints times and sizes with units since 8.1: "0.004s", "15s", "4.609KB", "3.473MB"
_SECONDS_RE = re.compile(r"(\d+(?:\.\d+)?)s?$")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)B?$")
_KIB = {"": 1.0 / 1024, "K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3, "P": 1024 ** 4}


def parse_seconds(s: Optional[str]) -> Optional[float]:
    s = (s or "").strip()
    if not s:
        return None
    m = _SECONDS_RE.match(s)
    if not m:
        raise ValueError("unparsable qacct duration %r" % s)
    return float(m.group(1))


def parse_size_kib(s: Optional[str]) -> Optional[int]:
    """``3.473MB`` → KiB (Grid Engine's units are binary); zero means "not measured"."""
    s = (s or "").strip()
    if not s:
        return None
    m = _SIZE_RE.match(s)
    if not m:
        raise ValueError("unparsable qacct size %r" % s)
    kib = math.ceil(float(m.group(1)) * _KIB[m.group(2)])
    return kib or None


def _leading_int(s: Optional[str], what: str) -> int:
    m = re.match(r"\s*(-?\d+)", s or "")
    if not m:
        raise ValueError("unparsable qacct %s %r" % (what, s))
    return int(m.group(1))


# Job ids carry the submission date in UTC while qacct prints the qmaster's local time: a
# record submitted more than a day before the id's date belongs to an earlier owner of the id.
ID_REUSE_SLACK = 86400.0


def choose_record(records: List[Dict[str, str]], submitted: Optional[float]) -> Optional[Dict[str, str]]:
    """The newest record that can belong to a job submitted at ``submitted`` (UTC seconds)."""
    for rec in reversed(records):  # the accounting file is in time order
        if submitted is None:
            return rec
        qsub = parse_ctime(rec.get("qsub_time"))
        if qsub is None or qsub >= submitted - ID_REUSE_SLACK:
            return rec
    return None


def accounting_record(fields: Dict[str, str], observed_at: float = 0.0) -> NativeRecord:
    """One qacct record → a finished-job record (state ``z``; ``extra`` keeps ``failed``)."""
    failed_text = " ".join(fields["failed"].split())  # "26  : opening input/output file"
    start = parse_ctime(fields.get("start_time"))
    host = fields.get("hostname", "").strip()
    slots = fields.get("slots", "").strip()
    return NativeRecord(
        fields["jobnumber"].strip(), FINISHED,
        reason=failed_text, exit_code=_leading_int(fields["exit_status"], "exit_status"),
        worker_node=host or None,
        user_cpu_s=parse_seconds(fields.get("ru_utime")), sys_cpu_s=parse_seconds(fields.get("ru_stime")),
        wall_s=parse_seconds(fields.get("ru_wallclock")), max_rss_kib=parse_size_kib(fields.get("maxvmem")),
        alloc_cpus=int(slots) if slots.isdigit() else None, source="accounting", observed_at=observed_at,
        extra={"failed": _leading_int(failed_text, "failed"), "started": start is not None})


# --- mapping -----------------------------------------------------------------------------

KILLED_BY_QDEL = 100  # "failed 100 : assumedly after job": the job was killed by a signal
SIGKILL_STATUS = 137


def map_record(rec: NativeRecord, *, report_batch_holds: bool = True,
               last_status: Optional[int] = None) -> Optional[JobAnswer]:
    """The GAHP answer for one Grid Engine record (backends.md §9.4).

    Returns ``None`` when the record says nothing about the job: an accounting record of a
    start that failed, for a job seen running since (Grid Engine wrote it when the job went
    to the error state; the record of the run that followed is not flushed yet).
    """
    if rec.state == FINISHED:
        return _map_accounting(rec, last_status)
    letters = rec.state
    pending = "q" in letters or "w" in letters
    attrs: Dict[str, object] = {"BatchJobId": rec.batch_id}
    if "E" in letters:
        status = HELD  # never leaves the error state by itself: let HTCondor see it
        attrs["HoldReason"] = "SGE job %s in error state %s: %s" % (
            rec.batch_id, letters, rec.reason or "no error reason reported")
    elif "d" in letters:
        status = REMOVED
        attrs["ExitReason"] = "deleted in SGE (%s)" % letters
    elif "h" in letters and pending:
        status = HELD if report_batch_holds else IDLE
        if status == HELD:
            attrs["HoldReason"] = "Held in SGE (%s)" % letters
    elif "r" in letters or "t" in letters or ("R" in letters and not pending):
        # includes hr (a hold set on a running job does not stop it); R alone only says the
        # job was restarted: Rq is a rescheduled job waiting in the queue again
        status = RUNNING
    elif any(c in letters for c in "sST"):
        status = RUNNING  # suspended by the owner, the queue or a load threshold
    elif pending:
        status = IDLE
    else:
        status = last_status if last_status is not None else IDLE
    attrs["JobStatus"] = status
    if rec.worker_node is not None and status in (RUNNING, REMOVED):
        attrs["WorkerNode"] = rec.worker_node
    if rec.alloc_cpus is not None and status == RUNNING:
        attrs["CpusProvisioned"] = rec.alloc_cpus
    attrs["BatchJobState"] = letters
    return JobAnswer(status, attrs)


def _map_accounting(rec: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
    extra = rec.extra or {}
    failed = int(extra.get("failed", 0))
    started = bool(extra.get("started", True))
    if failed and not started and last_status == RUNNING:
        return None
    code = rec.exit_code
    attrs: Dict[str, object] = {"BatchJobId": rec.batch_id}
    if failed == 0:
        status = COMPLETED
        if code is not None:
            attrs.update(ExitCode=code, ExitBySignal=False)
    elif failed == KILLED_BY_QDEL and code == SIGKILL_STATUS:
        status = REMOVED  # deleted while running (the C blahp's mapping)
        attrs["ExitReason"] = "SGE failed %s (exit_status %d)" % (rec.reason, code)
    else:
        status = COMPLETED
        attrs.update(ExitCode=code or 1, ExitBySignal=False, ExitReason="SGE failed %s" % rec.reason)
    attrs["JobStatus"] = status
    for attr, value in (("WorkerNode", rec.worker_node), ("RemoteUserCpu", rec.user_cpu_s),
                        ("RemoteSysCpu", rec.sys_cpu_s), ("RemoteWallClockTime", rec.wall_s),
                        ("ImageSize", rec.max_rss_kib), ("CpusProvisioned", rec.alloc_cpus)):
        if value is not None:
            attrs[attr] = float(value) if attr.startswith("Remote") else value
    attrs["BatchJobState"] = "%s/failed %s" % (FINISHED, rec.reason) if failed else FINISHED
    return JobAnswer(status, attrs)
