"""Slurm (22.05) command output → ``NativeRecord`` → GAHP ``JobAnswer``.

Pure functions only: the adapter runs the commands and owns the clock.  Parsers raise
``ValueError`` on output they do not understand, so a changed format shows up as a failed
query instead of as wrong job states.  Values Slurm did not report stay ``None``.
"""
from __future__ import annotations

import datetime
import math
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord

# --- state table ------------------------------------------------------------------------

DEFAULT_HELD_REASONS = ("JobHeldUser", "JobHeldAdmin")

_STATUS = {
    "PENDING": IDLE, "CONFIGURING": IDLE, "POWER_UP_NODE": IDLE, "REQUEUED": IDLE,
    "REQUEUE_FED": IDLE,
    "REQUEUE_HOLD": HELD, "RESV_DEL_HOLD": HELD, "SPECIAL_EXIT": HELD,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "SIGNALING": RUNNING, "STAGE_OUT": RUNNING,
    "RESIZING": RUNNING, "UPDATE_DB": RUNNING, "SUSPENDED": RUNNING, "STOPPED": RUNNING,
    "COMPLETED": COMPLETED, "FAILED": COMPLETED, "TIMEOUT": COMPLETED, "NODE_FAIL": COMPLETED,
    "BOOT_FAIL": COMPLETED, "DEADLINE": COMPLETED, "OUT_OF_MEMORY": COMPLETED,
    "PREEMPTED": COMPLETED,
    "CANCELLED": REMOVED,
}
# Slurm kills these jobs itself (SIGTERM, then SIGKILL); exit 0 there is not a clean exit.
_KILLED_BY_TERM = ("TIMEOUT", "DEADLINE", "PREEMPTED")
_KILLED_BY_KILL = ("OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL")
# Slurm reports an OOM kill as the dummy signal 125 (SIG_OOM 253 minus the 0x80 flag).
_SLURM_OOM_SIGNAL = 125
# Only a finished job's ExitCode means anything: a pending or running one shows 0:0.
_FINAL = frozenset(s for s, st in _STATUS.items() if st in (REMOVED, COMPLETED))

# Slurm's spellings of "no value" in the fields we read.
_NO_VALUE = ("", "None", "(null)", "n/a", "N/A", "None assigned", "Unknown", "INVALID")


def _value(s: Optional[str]) -> Optional[str]:
    s = (s or "").strip()
    return None if s in _NO_VALUE else s


def normalize_state(s: str) -> str:
    """``CANCELLED by 0`` → ``CANCELLED``; ``CANCELLED+`` (sacct's truncation mark) likewise."""
    words = s.split()
    if not words:
        raise ValueError("empty job state")
    return words[0].rstrip("+")


# --- field parsers -----------------------------------------------------------------------

_DURATION_RE = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def parse_duration(s: Optional[str]) -> Optional[float]:
    """``[D-][HH:]MM:SS[.fff]`` (sacct, squeue, scontrol all use it) → seconds.

    ``D-HH`` without minutes does not occur in these fields, so a day part implies hours.
    """
    s = _value(s)
    if s is None:
        return None
    m = _DURATION_RE.match(s)
    if not m or (m.group(1) is not None and m.group(2) is None):
        raise ValueError("unparsable duration %r" % s)
    days, hours, minutes, seconds = m.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60
            + float(seconds))


_UNIT = {"K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3, "P": 1024 ** 4}
_MEM_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)$")


def parse_mem_kib(s: Optional[str]) -> Optional[int]:
    """MaxRSS → KiB.  Suffixes are binary (``2M`` = 2048 KiB); a bare number is bytes."""
    s = _value(s)
    if s is None:
        return None
    m = _MEM_RE.match(s)
    if not m:
        raise ValueError("unparsable memory size %r" % s)
    number, unit = _number(m.group(1)), m.group(2)
    # Round up: a 100-byte RSS is not zero memory.
    return math.ceil(number * _UNIT[unit]) if unit else int(-(-number // 1024))


def _number(s: str) -> Union[int, float]:
    return int(s) if s.isdigit() else float(s)  # ints stay exact beyond 2**53


_REQMEM_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)([nc]?)$")


def parse_reqmem_mb(s: Optional[str], alloc_cpus: Optional[int]) -> Optional[int]:
    """ReqMem → MB for the whole job on one node.  Bare numbers are MB.

    22.05 prints ``2000M``; before 21.08 a trailing ``n`` meant per node and ``c`` per CPU.
    Per-CPU memory without a CPU count stays unknown rather than guessed.
    """
    s = _value(s)
    if s is None:
        return None
    m = _REQMEM_RE.match(s)
    if not m:
        raise ValueError("unparsable ReqMem %r" % s)
    mb = math.ceil(_number(m.group(1)) * _UNIT[m.group(2) or "M"] / 1024)
    if mb == 0:
        return None
    if m.group(3) == "c":
        return mb * alloc_cpus if alloc_cpus else None
    return mb


_HOSTLIST_RANGE_RE = re.compile(r"\[([^\]]*)\]")


def first_node(s: Optional[str]) -> Optional[str]:
    """First host of a Slurm hostlist: ``node[01-03,07],gpu1`` → ``node01``."""
    s = _value(s)
    if s is None:
        return None
    depth, end = 0, len(s)
    for i, c in enumerate(s):  # the first comma outside brackets ends the first entry
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            end = i
            break
    # In each bracket the first item is the first host; zero padding is part of the name.
    host = _HOSTLIST_RANGE_RE.sub(lambda m: re.split(r"[-,]", m.group(1))[0], s[:end])
    return host or None


_EXIT_RE = re.compile(r"(\d+):(\d+)$")


def parse_exit(s: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``N:S`` → (exit code, signal); both ``None`` when absent."""
    s = _value(s)
    if s is None:
        return None, None
    m = _EXIT_RE.match(s)
    if not m:
        raise ValueError("unparsable ExitCode %r" % s)
    return int(m.group(1)), int(m.group(2))


def _int(s: Optional[str]) -> Optional[int]:
    s = _value(s)
    if s is None:
        return None
    if not s.isdigit():
        raise ValueError("not a count: %r" % s)
    return int(s)


# --- sbatch ----------------------------------------------------------------------------

_PARSABLE_RE = re.compile(r"(\d+)(?:;(\S+))?$")
_SUBMITTED_RE = re.compile(r"Submitted batch job (\d+)(?: on cluster (\S+))?")


def parse_sbatch(stdout: str) -> Optional[Tuple[str, Optional[str]]]:
    """``sbatch --parsable`` → (batch id, cluster or None); ``None`` when no id is there."""
    for line in stdout.splitlines():
        if line.strip():
            m = _PARSABLE_RE.match(line.strip())
            if m:
                return m.group(1), m.group(2)
            break
    # Without --parsable (or a wrapper that chats first) the human sentence still names it.
    m = _SUBMITTED_RE.search(stdout)
    return (m.group(1), m.group(2)) if m else None


# --- squeue ----------------------------------------------------------------------------

SQUEUE_FORMAT = "%i|%T|%r|%B"
# 22.05 prints a pending array as one line ``10_[1-3]`` (``10_[1-3%2]`` when throttled) and a
# heterogeneous job's components as ``5+0``: valid output, kept as printed.
_SQUEUE_ID_RE = re.compile(r"\d+(?:_\d+|_\[[0-9,%-]+\]|\+\d+)?$")
_CLUSTER_RE = re.compile(r"CLUSTER: (\S+)$")
# Without -h, squeue -M prints this column header under each CLUSTER line.
_SQUEUE_HEADER = "JOBID|STATE|REASON|EXEC_HOST"


def parse_squeue(text: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``squeue -h -o SQUEUE_FORMAT`` (optionally with ``-M``) → records by job id."""
    records: Dict[str, NativeRecord] = {}
    cluster = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _CLUSTER_RE.match(line)
        if m:
            cluster = m.group(1)
            continue
        if line == _SQUEUE_HEADER:
            continue
        fields = line.split("|")
        if len(fields) != 4 or not _SQUEUE_ID_RE.match(fields[0]):
            raise ValueError("unexpected squeue line %r" % line)
        job_id, state, reason, host = fields
        records[job_id] = NativeRecord(
            job_id, normalize_state(state), cluster=cluster, reason=_value(reason),
            worker_node=first_node(host), source="bulk", observed_at=observed_at)
    return records


# --- sacct -----------------------------------------------------------------------------

SACCT_FIELDS = ("JobIDRaw", "State", "ExitCode", "UserCPU", "SystemCPU", "MaxRSS", "AllocCPUS",
                "Elapsed", "NodeList", "ReqMem", "End")
_SACCT_ID_RE = re.compile(r"(\d+)(?:\.(\S+))?$")


def parse_sacct(text: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    """``sacct -n -P --noconvert -o ",".join(SACCT_FIELDS)`` → one merged record per job.

    A job prints an allocation row (``5``) followed by its steps (``5.batch``, ``5.extern``,
    ``5.0``).  With ``-D`` a requeued job prints one such group per run; the last one wins.
    Steps without their allocation row (``-j 5.batch``) give no record.
    """
    groups: Dict[str, List[Tuple[Optional[str], List[str]]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        row = line.split("|")
        if len(row) != len(SACCT_FIELDS):
            raise ValueError("unexpected sacct line %r" % line)
        m = _SACCT_ID_RE.match(row[0].strip())
        if not m:
            raise ValueError("unexpected sacct job id %r" % row[0])
        job_id, step = m.groups()
        if step is None:
            groups[job_id] = []
        groups.setdefault(job_id, []).append((step, row))
    return {job_id: _sacct_record(job_id, rows, observed_at)
            for job_id, rows in groups.items() if rows and rows[0][0] is None}


def _sacct_record(job_id: str, rows: List[Tuple[Optional[str], List[str]]],
                  observed_at: float) -> NativeRecord:
    alloc = dict(zip(SACCT_FIELDS, rows[0][1]))
    steps = [dict(zip(SACCT_FIELDS, row)) for _, row in rows[1:]]
    batch = next((s for (name, _), s in zip(rows[1:], steps) if name == "batch"), None)

    code, signal = parse_exit(alloc["ExitCode"])
    # 22.05 leaves 0:0 on the allocation of a job cancelled while running; the batch step
    # saw the signal (0:15).
    if (code, signal) == (0, 0) and batch is not None:
        b_code, b_signal = parse_exit(batch["ExitCode"])
        if b_code or b_signal:
            code, signal = b_code, b_signal
    elif code is None and batch is not None:
        code, signal = parse_exit(batch["ExitCode"])

    def cpu(field: str) -> Optional[float]:
        own = parse_duration(alloc[field])
        if own or not steps:
            return own
        # The allocation row is the sum of its steps once they end; until then, add them up.
        parts = [parse_duration(s[field]) for s in steps]
        known = [p for p in parts if p is not None]
        return sum(known) if known else own

    state = normalize_state(alloc["State"])
    if state in _FINAL and alloc["End"].strip() == "Unknown":
        # slurmdbd can hold a final state before the end time and exit code reach it (seen on
        # 22.05: FAILED 0:0, Elapsed still growing, for a job that had exited 5): not settled yet
        state, code, signal = "COMPLETING", None, None
    rss = [parse_mem_kib(r["MaxRSS"]) for r in [alloc] + steps]
    rss_known = [r for r in rss if r is not None]
    alloc_cpus = _int(alloc["AllocCPUS"]) or None  # 0 while pending: nothing allocated yet
    return NativeRecord(
        job_id, state, exit_code=code, exit_signal=signal,
        worker_node=first_node(alloc["NodeList"]), user_cpu_s=cpu("UserCPU"),
        sys_cpu_s=cpu("SystemCPU"), wall_s=parse_duration(alloc["Elapsed"]),
        max_rss_kib=max(rss_known) if rss_known else None, alloc_cpus=alloc_cpus,
        mem_mb=parse_reqmem_mb(alloc["ReqMem"], alloc_cpus), source="accounting",
        observed_at=observed_at)


# --- scontrol --------------------------------------------------------------------------

# Values may hold spaces (``Command=/path/job.sh arg``); a new pair starts where a key and
# ``=`` follow a space.  Keys include ``AllocNode:Sid`` and ``CPUs/Task``.
_PAIR_SPLIT_RE = re.compile(r" (?=[A-Za-z][A-Za-z0-9_:/]*=)")


def parse_scontrol_job(text: str, observed_at: float = 0.0) -> Optional[NativeRecord]:
    """``scontrol -o show job [<id>]`` line → record, or ``None`` when Slurm knows no such job.

    One job per call: several lines (an array job's tasks) raise ``ValueError``.
    """
    if "Invalid job id specified" in text or text.strip() == "No jobs in the system":
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].startswith("JobId="):
        raise ValueError("unexpected scontrol output %r" % text[:200])
    pairs = dict(p.split("=", 1) for p in _PAIR_SPLIT_RE.split(lines[0]) if "=" in p)
    if not pairs.get("JobId", "").isdigit() or "JobState" not in pairs:
        raise ValueError("unexpected scontrol output %r" % lines[0][:200])
    code, signal = parse_exit(pairs.get("ExitCode"))
    # BatchHost is where the job script runs; NodeList is the whole allocation.
    node = first_node(pairs.get("BatchHost")) or first_node(pairs.get("NodeList"))
    return NativeRecord(
        pairs["JobId"], normalize_state(pairs["JobState"]), reason=_value(pairs.get("Reason")),
        exit_code=code, exit_signal=signal, worker_node=node,
        wall_s=parse_duration(pairs.get("RunTime")), restarts=_int(pairs.get("Restarts")),
        source="bulk", observed_at=observed_at)


# --- mapping ---------------------------------------------------------------------------

def map_record(rec: NativeRecord, *, held_reasons: Iterable[str] = DEFAULT_HELD_REASONS,
               report_batch_holds: bool = True,
               last_status: Optional[int] = None) -> Optional[JobAnswer]:
    """The GAHP answer for one Slurm record.

    Returns ``None`` for ``REVOKED`` (a federation sibling that runs elsewhere): the caller
    treats the job as missing from the batch system.  Unknown states keep ``last_status``
    (IDLE when there is none).  A COMPLETED answer without ``ExitCode`` and ``ExitSignal``
    means the exit status is unknown (see ``exit_unknown``); it is never guessed as 0.
    """
    state = rec.state
    reason = rec.reason if rec.reason != "None" else None
    if state == "REVOKED":
        return None
    status = _STATUS.get(state)
    if status is None:
        status = last_status if last_status is not None else IDLE
    elif state == "PENDING" and reason in tuple(held_reasons):
        status = HELD
    if status == HELD and not report_batch_holds:
        status = IDLE

    attrs: Dict[str, object] = {"BatchJobId": rec.batch_id, "JobStatus": status}
    if status == COMPLETED:
        attrs.update(_exit_attrs(state, rec.exit_code, rec.exit_signal))
    if status in (COMPLETED, REMOVED) and state != "COMPLETED":
        attrs["ExitReason"] = "Slurm state %s" % state
    if status == HELD:
        attrs["HoldReason"] = "Held in Slurm: job %s is %s with reason %s" % (
            rec.batch_id, state, reason or "None")
    for attr, value in (("WorkerNode", rec.worker_node), ("RemoteUserCpu", rec.user_cpu_s),
                        ("RemoteSysCpu", rec.sys_cpu_s), ("RemoteWallClockTime", rec.wall_s),
                        ("ImageSize", rec.max_rss_kib), ("CpusProvisioned", rec.alloc_cpus),
                        ("MemoryProvisioned", rec.mem_mb), ("NumRestarts", rec.restarts)):
        if value is not None:
            attrs[attr] = float(value) if attr.startswith("Remote") else value
    attrs["BatchJobState"] = "%s/%s" % (state, reason) if reason else state
    return JobAnswer(status, attrs)


def _exit_attrs(state: str, code: Optional[int], signal: Optional[int]) -> Dict[str, object]:
    if signal == _SLURM_OOM_SIGNAL:
        signal = 9  # the kernel's OOM killer sends SIGKILL
    if signal:
        return {"ExitBySignal": True, "ExitSignal": signal}
    if code is None:
        return {}
    if code == 0 and state in _KILLED_BY_TERM:
        return {"ExitBySignal": True, "ExitSignal": 15}
    if code == 0 and state in _KILLED_BY_KILL:
        return {"ExitBySignal": True, "ExitSignal": 9}
    if code == 0 and state == "FAILED":
        return {"ExitCode": 1, "ExitBySignal": False}  # Slurm says it failed: not a success
    return {"ExitCode": code, "ExitBySignal": False}


def exit_unknown(answer: JobAnswer) -> bool:
    """True for a COMPLETED answer that lacks the exit status (look for an exit record)."""
    return answer.status == COMPLETED and not answer.exit_known


# --- combining sources -----------------------------------------------------------------

_FIELDS = ("cluster", "worker_node", "user_cpu_s", "sys_cpu_s", "wall_s", "max_rss_kib",
           "alloc_cpus", "mem_mb", "restarts", "extra")


def merge(bulk: Optional[NativeRecord], acct: Optional[NativeRecord]) -> NativeRecord:
    """One record from the live view (squeue/scontrol) and accounting (sacct).

    Accounting decides the state once it has a final one (the live view forgets jobs after
    MinJobAge); otherwise the live view does, being fresher.  The decisive record's fields
    win and the other fills its gaps, except the exit status, which is taken only from a
    record in a final state: before that Slurm shows a placeholder 0:0.
    """
    if bulk is None or acct is None:
        only = bulk or acct
        if only is None:
            raise ValueError("merge needs at least one record")
        return only.copy()
    if bulk.batch_id != acct.batch_id:
        raise ValueError("merging records of jobs %s and %s" % (bulk.batch_id, acct.batch_id))
    first, second = (acct, bulk) if acct.state in _FINAL else (bulk, acct)
    kw = _kwargs(first)
    for name in _FIELDS:
        if kw.get(name) is None:
            kw[name] = getattr(second, name)
    if kw["reason"] is None and second.state == first.state:
        kw["reason"] = second.reason  # a reason belongs to the state it came with
    exit_from = next((r for r in (first, second)
                      if r.state in _FINAL and r.exit_code is not None), None)
    kw["exit_code"] = exit_from.exit_code if exit_from else None
    kw["exit_signal"] = exit_from.exit_signal if exit_from else None
    kw["observed_at"] = max(bulk.observed_at, acct.observed_at)
    return NativeRecord(**kw)


def _kwargs(rec: NativeRecord) -> Dict[str, Any]:
    return {name: getattr(rec, name) for name in NativeRecord.__slots__}


# --- sacct window ----------------------------------------------------------------------

def sacct_start(dates: Iterable[Optional[str]], today: datetime.date) -> str:
    """``sacct -S`` value covering every job: the day before the earliest submission date.

    Dates are the ``YYYYMMDD[HHMMSS]`` stamps of job ids; missing or malformed ones are
    skipped, and none known means a week back.  A date after ``today`` (clock skew between
    hosts) counts as today so the window never starts in the future.
    """
    known = []
    for d in dates:
        if d and d.isdigit() and len(d) in (8, 14):
            try:
                known.append(datetime.datetime.strptime(d[:8], "%Y%m%d").date())
            except ValueError:
                pass
    if not known:
        return (today - datetime.timedelta(days=7)).isoformat()
    return (min(min(known), today) - datetime.timedelta(days=1)).isoformat()
