"""What a batch system told us about one job, and what we answer about it.

``NativeRecord`` is the normalised observation every adapter's parsers produce (backends.md
§1.2); ``JobAnswer`` is the GAHP view of it (``JobStatus`` plus the status-ad attributes).
Unknown values are ``None``, never a default: an exit code nobody reported stays unknown.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
TERMINAL = (REMOVED, COMPLETED)

#: status-ad attributes in the order protocol.md §7.4 lists them (BatchJobId, JobStatus first)
AD_ORDER = ("BatchJobId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal", "ExitReason",
            "HoldReason", "WorkerNode", "RemoteUserCpu", "RemoteSysCpu", "RemoteWallClockTime",
            "ImageSize", "CpusProvisioned", "MemoryProvisioned", "NumRestarts", "BatchJobState")


class NativeRecord:
    __slots__ = ("batch_id", "cluster", "state", "reason", "exit_code", "exit_signal", "worker_node",
                 "user_cpu_s", "sys_cpu_s", "wall_s", "max_rss_kib", "alloc_cpus", "mem_mb", "restarts",
                 "source", "observed_at", "extra")

    def __init__(self, batch_id: str, state: str, *, cluster: Optional[str] = None,
                 reason: Optional[str] = None, exit_code: Optional[int] = None,
                 exit_signal: Optional[int] = None, worker_node: Optional[str] = None,
                 user_cpu_s: Optional[float] = None, sys_cpu_s: Optional[float] = None,
                 wall_s: Optional[float] = None, max_rss_kib: Optional[int] = None,
                 alloc_cpus: Optional[int] = None, mem_mb: Optional[int] = None,
                 restarts: Optional[int] = None, source: str = "bulk", observed_at: float = 0.0,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        self.batch_id = batch_id
        self.cluster = cluster
        self.state = state
        self.reason = reason
        self.exit_code = exit_code
        self.exit_signal = exit_signal
        self.worker_node = worker_node
        self.user_cpu_s = user_cpu_s
        self.sys_cpu_s = sys_cpu_s
        self.wall_s = wall_s
        self.max_rss_kib = max_rss_kib
        self.alloc_cpus = alloc_cpus
        self.mem_mb = mem_mb
        self.restarts = restarts
        self.source = source
        self.observed_at = observed_at
        self.extra = extra

    def copy(self, **changes: Any) -> "NativeRecord":
        fields = {k: getattr(self, k) for k in self.__slots__}
        fields.update(changes)
        return NativeRecord(**fields)

    def as_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    def __repr__(self) -> str:
        return "NativeRecord(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NativeRecord) and self.as_dict() == other.as_dict()


class JobAnswer:
    """``JobStatus`` and the ad attributes (Python values: int, float, bool, str)."""

    __slots__ = ("status", "attrs")

    def __init__(self, status: int, attrs: Optional[Dict[str, Any]] = None) -> None:
        self.status = status
        self.attrs = dict(attrs or {})

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def exit_known(self) -> bool:
        return "ExitCode" in self.attrs or "ExitSignal" in self.attrs

    def __repr__(self) -> str:
        return "JobAnswer(%d, %r)" % (self.status, self.attrs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobAnswer) and (self.status, self.attrs) == (other.status, other.attrs)


def merge_records(bulk: NativeRecord, acct: Optional[NativeRecord]) -> NativeRecord:
    """The live view completed by accounting: accounting's state and values where it has them."""
    if acct is None:
        return bulk
    return bulk.copy(**{k: v for k, v in acct.as_dict().items() if k != "batch_id"})
