"""HTCondor as the batch system: submit descriptions out, JSON job ads in (backends.md §10).

Pure functions only.  The submit description is written for ``condor_submit``'s own syntax
(HTCondor's ``config.cpp`` line reader and submit macros): a value never carries a line break,
never ends in a backslash (a continuation), and every ``$`` is escaped so that submit-time macro
expansion and match-time ``$$()`` substitution leave the text exactly as the job gave it.
Parsers raise ``ValueError`` on output they do not understand, so a changed format is a failed
query rather than a wrong job state.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from blahp.argsenv import quote_v2
from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord

# --- state table ------------------------------------------------------------------------

# HTCondor's JobStatus values; 6 (transferring output) and 7 (suspended) are still running
# as far as the gridmanager is concerned (it would hold and cancel a job reported 5).
_STATUS = {1: IDLE, 2: RUNNING, 3: REMOVED, 4: COMPLETED, 5: HELD, 6: RUNNING, 7: RUNNING}
STATE_NAMES = {0: "Unexpanded", 1: "Idle", 2: "Running", 3: "Removed", 4: "Completed", 5: "Held",
               6: "TransferringOutput", 7: "Suspended"}

# What condor_q and condor_history are asked for (one projection for both).
AD_ATTRS = ("ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal", "HoldReason",
            "HoldReasonCode", "RemoveReason", "RemoteUserCpu", "RemoteSysCpu", "RemoteWallClockTime",
            "BytesSent", "BytesRecvd", "NumJobStarts", "RemoteHost", "LastRemoteHost", "BlahpKey")

LEAVE_IN_QUEUE = ("JobStatus == 4 && (CompletionDate =?= UNDEFINED || CompletionDate == 0 || "
                  "((CurrentTime - CompletionDate) < 1800))")


# --- submit output ------------------------------------------------------------------------

_TERSE_RE = re.compile(r"(\d+)\.\d+ - \1\.\d+$")
_SUBMITTED_RE = re.compile(r"submitted to cluster (\d+)")


def parse_submit(stdout: str) -> Optional[str]:
    """``condor_submit -terse`` (``42.0 - 42.0``) or the verbose sentence → cluster id."""
    for line in stdout.splitlines():
        m = _TERSE_RE.match(line.strip())
        if m:
            return m.group(1)
    m = _SUBMITTED_RE.search(stdout)
    return m.group(1) if m else None


# --- JSON ads ------------------------------------------------------------------------------

def parse_ads(text: str) -> List[Dict[str, Any]]:
    """``-json`` output → list of ads.  condor_q prints nothing at all when no job matches;
    condor_history prints ``[`` and ``]`` around nothing."""
    if not text.strip():
        return []
    try:
        ads = json.loads(text)
    except ValueError as e:
        raise ValueError("not JSON: %s" % e) from None
    if not isinstance(ads, list) or not all(isinstance(a, dict) for a in ads):
        raise ValueError("expected a JSON list of ads")
    return ads


def _int(ad: Dict[str, Any], name: str) -> Optional[int]:
    v = ad.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("%s is not an integer: %r" % (name, v))
    return v


def _float(ad: Dict[str, Any], name: str) -> Optional[float]:
    v = ad.get(name)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None  # an expression ("\/Expr(...)\/") or absent: unknown, not an error
    return float(v)


def _str(ad: Dict[str, Any], name: str) -> Optional[str]:
    v = ad.get(name)
    return v if isinstance(v, str) and v else None


def host_of(slot: Optional[str]) -> Optional[str]:
    """``slot1_2@node.example.org`` → ``node.example.org``."""
    if not slot:
        return None
    return slot.rpartition("@")[2] or None


def record_from_ad(ad: Dict[str, Any], source: str, observed_at: float = 0.0) -> Optional[NativeRecord]:
    """One job ad → record; ``None`` for the procs other than 0 of a foreign multi-job cluster."""
    cluster = _int(ad, "ClusterId")
    status = _int(ad, "JobStatus")
    if cluster is None or status is None:
        raise ValueError("job ad without ClusterId or JobStatus: %r" % sorted(ad)[:20])
    if (_int(ad, "ProcId") or 0) != 0:
        return None
    by_signal = ad.get("ExitBySignal")
    code = signal = None
    if by_signal is True:
        signal = _int(ad, "ExitSignal")
    elif by_signal is False or "ExitCode" in ad:
        code = _int(ad, "ExitCode")
    starts = _int(ad, "NumJobStarts")
    extra = {k: ad[k] for k in ("HoldReasonCode", "RemoveReason", "BlahpKey", "BytesSent", "BytesRecvd")
             if ad.get(k) is not None}
    return NativeRecord(
        str(cluster), str(status), reason=_str(ad, "HoldReason"), exit_code=code, exit_signal=signal,
        worker_node=host_of(_str(ad, "RemoteHost") or _str(ad, "LastRemoteHost")),
        user_cpu_s=_float(ad, "RemoteUserCpu"), sys_cpu_s=_float(ad, "RemoteSysCpu"),
        wall_s=_float(ad, "RemoteWallClockTime"),
        restarts=max(0, starts - 1) if starts is not None else None,
        source=source, observed_at=observed_at, extra=extra or None)


def parse_records(text: str, source: str, observed_at: float = 0.0) -> Dict[str, NativeRecord]:
    out: Dict[str, NativeRecord] = {}
    for ad in parse_ads(text):
        rec = record_from_ad(ad, source, observed_at)
        if rec is not None:
            out[rec.batch_id] = rec
    return out


def find_key(text: str, key: str) -> List[Tuple[str, str]]:
    """(cluster id, JobStatus) of the ads carrying ``BlahpKey == key`` exactly."""
    found = []
    for ad in parse_ads(text):
        if ad.get("BlahpKey") == key and (_int(ad, "ProcId") or 0) == 0 and _int(ad, "ClusterId") is not None:
            found.append((str(ad["ClusterId"]), str(ad.get("JobStatus"))))
    return found


# --- mapping -----------------------------------------------------------------------------

def map_record(rec: NativeRecord, *, report_batch_holds: bool = True,
               last_status: Optional[int] = None) -> JobAnswer:
    """The GAHP answer for one HTCondor job ad.  An unknown JobStatus keeps ``last_status``."""
    try:
        native = int(rec.state)
    except ValueError:
        native = None
    status = _STATUS.get(native) if native is not None else None
    if status is None:
        status = last_status if last_status is not None else IDLE
    extra = rec.extra or {}
    if status == HELD and not report_batch_holds:
        status = IDLE

    attrs: Dict[str, Any] = {"BatchJobId": rec.batch_id, "JobStatus": status}
    if status == COMPLETED:
        if rec.exit_signal is not None:
            attrs.update(ExitBySignal=True, ExitSignal=rec.exit_signal)
        elif rec.exit_code is not None:
            attrs.update(ExitCode=rec.exit_code, ExitBySignal=False)
    if status == REMOVED:
        attrs["ExitReason"] = extra.get("RemoveReason") or "removed from HTCondor"
    if status == HELD:
        attrs["HoldReason"] = rec.reason or "held in HTCondor (no HoldReason)"
        if isinstance(extra.get("HoldReasonCode"), int):
            attrs["HoldReasonCode"] = extra["HoldReasonCode"]
    for attr, value in (("WorkerNode", rec.worker_node), ("RemoteUserCpu", rec.user_cpu_s),
                        ("RemoteSysCpu", rec.sys_cpu_s), ("RemoteWallClockTime", rec.wall_s),
                        ("NumRestarts", rec.restarts)):
        if value is not None:
            attrs[attr] = value
    for attr in ("BytesSent", "BytesRecvd"):
        if isinstance(extra.get(attr), (int, float)) and not isinstance(extra.get(attr), bool):
            attrs[attr] = float(extra[attr])
    attrs["BatchJobState"] = STATE_NAMES.get(native, rec.state) if native is not None else rec.state
    return JobAnswer(status, attrs)


# --- submit description ---------------------------------------------------------------------

class Unrepresentable(ValueError):
    """A value that no submit description line can carry unchanged."""


def escape_macros(value: str) -> str:
    """Protect ``$`` from condor_submit's ``$(...)`` expansion and the ``$$(...)`` match-time
    substitution: ``$`` → ``$(DOLLAR)``, and a ``$$`` before ``(`` → ``$$(DOLLARDOLLAR)``."""
    out = []
    i, n = 0, len(value)
    while i < n:
        if value.startswith("$$(", i):
            out.append("$$(DOLLARDOLLAR)")
            i += 2
        elif value[i] == "$":
            out.append("$(DOLLAR)")
            i += 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


# C isspace(): condor_submit trims these around a value (Python's strip() would take more).
_SPACE = " \t\n\v\f\r"


def _check_line_value(what: str, value: str, quoted: bool = False) -> str:
    """A value written bare must survive condor_submit's line reader; a quoted one only needs
    to stay on its line."""
    if any(c in value for c in "\r\n\0"):
        raise Unrepresentable("%s contains a line break or NUL" % what)
    if not quoted and value != value.strip(_SPACE):
        raise Unrepresentable("%s starts or ends with white space" % what)
    if not quoted and value.endswith("\\"):
        raise Unrepresentable("%s ends with a backslash" % what)
    return value


def path_value(what: str, path: str) -> str:
    return escape_macros(_check_line_value(what, path))


def classad_string(value: str) -> str:
    """A ClassAd string literal (new syntax escapes)."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def quoted_v2(items: Sequence[str], what: str) -> str:
    """The new (V2) syntax of ``arguments``/``environment``: double quotes around the V2
    string, ``""`` for a literal ``"``."""
    for item in items:
        _check_line_value(what, item, quoted=True)
    return '"%s"' % escape_macros(quote_v2(items).replace('"', '""'))


def file_list(what: str, items: Iterable[str]) -> str:
    out = []
    for item in items:
        _check_line_value(what, item)
        if "," in item:
            raise Unrepresentable("%s: a file name with a comma cannot be listed" % what)
        out.append(escape_macros(item))
    return ",".join(out)


def remaps_value(remaps: Sequence[Tuple[str, str]]) -> str:
    parts = []
    for src, dst in remaps:
        for v in (src, dst):
            _check_line_value("TransferOutputRemaps", v, quoted=True)
        parts.append("%s=%s" % (_remap_escape(src), _remap_escape(dst)))
    return '"%s"' % escape_macros(";".join(parts))


def _remap_escape(name: str) -> str:
    return re.sub(r"([\\;=])", r"\\\1", name)


def periodic_remove(runtime_s: int) -> str:
    return "JobStatus == 2 && (time() - JobCurrentStartExecutingDate > %d) =?= true" % runtime_s


def raw_lines(text: Optional[str]) -> List[str]:
    """BatchExtraSubmitArgs: split at real newlines and the two characters ``\\n``."""
    if not text:
        return []
    return [line.strip() for line in re.split(r"\r?\n|\r|\\n", text) if line.strip()]


def description(job: Any, local_lines: Sequence[str], header: str = "") -> str:
    """The submit description for one job (raises Unrepresentable)."""
    lines: List[str] = []
    if header:
        lines.append("# " + header.replace("\n", " "))
    lines += ["universe = vanilla", "executable = %s" % path_value("Cmd", job.cmd)]
    if not job.stage_cmd:
        lines.append("transfer_executable = false")
    lines.append("initialdir = %s" % path_value("Iwd", job.iwd))
    if job.proxy:
        lines.append("x509userproxy = %s" % path_value("x509UserProxy", job.proxy))
    if job.memory_mb is not None:
        lines.append("request_memory = %d" % job.memory_mb)
    if job.gpu_number or job.gpu_model:
        lines.append("request_GPUs = %d" % (job.gpu_number or 1))
    if job.gpu_model:
        _check_line_value("GPUModel", job.gpu_model, quoted=True)
        lines.append("requirements = CUDADeviceName == %s" % escape_macros(classad_string(job.gpu_model)))
    if job.runtime_s is not None:
        lines.append("periodic_remove = %s" % periodic_remove(job.runtime_s))
    lines.append("request_cpus = %d" % (job.node_number if job.node_number else 1))
    if job.arguments:
        lines.append("arguments = %s" % quoted_v2(job.arguments, "Arguments"))
    for key, attr, value in (("input", "In", job.stdin), ("output", "Out", job.stdout),
                             ("error", "Err", job.stderr)):
        if value:
            lines.append("%s = %s" % (key, path_value(attr, value)))
    if job.transfer_input:
        lines.append("transfer_input_files = %s" % file_list("TransferInput", job.transfer_input))
    if job.transfer_output:
        lines.append("transfer_output_files = %s" % file_list("TransferOutput", job.transfer_output))
    if job.remaps:
        lines.append("transfer_output_remaps = %s" % remaps_value(job.remaps))
    # Always: the sandbox (Iwd) is on the submit side, and without file transfer HTCondor
    # would need a filesystem shared with the execute nodes (FileSystemDomain), which the
    # gridmanager's model does not assume.  The executable and stdout/stderr travel at least.
    lines += ["should_transfer_files = yes", "when_to_transfer_output = on_exit", "notification = never"]
    if job.environment:
        lines.append("environment = %s" % quoted_v2(["%s=%s" % kv for kv in job.environment], "Environment"))
    lines.append("leave_in_queue = %s" % LEAVE_IN_QUEUE)
    lines.append("+BlahpKey = %s" % escape_macros(classad_string(_check_line_value("key", job.key, quoted=True))))
    raw = list(local_lines) + raw_lines(job.extra_args)
    lines += raw
    if raw:
        lines.append("")  # a site line ending in a backslash would swallow the queue statement
    lines.append("queue 1")
    return "\n".join(lines) + "\n"
