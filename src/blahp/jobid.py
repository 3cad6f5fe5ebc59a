"""Job ids: ``lrms/YYYYMMDD/batchid[@cluster]`` (and other shapes a backend may define).

Only the structure common to every batch system is handled here; a backend validates its own
batch ids (``Backend.parse_job_id``), so adding a batch system never touches this module.
"""
from __future__ import annotations

import re
from typing import Optional

_LRMS = re.compile(r"[a-z0-9_]+\Z")
_DATE = re.compile(r"(?:\d{8}|\d{14})\Z")
_CLUSTER = re.compile(r"[A-Za-z0-9_.-]+\Z")


class MalformedJobId(ValueError):
    pass


class JobRef:
    __slots__ = ("raw", "lrms", "batch_id", "cluster", "date")

    def __init__(self, raw: str, lrms: str, batch_id: str, cluster: Optional[str] = None,
                 date: Optional[str] = None) -> None:
        self.raw = raw
        self.lrms = lrms
        self.batch_id = batch_id
        self.cluster = cluster
        self.date = date

    def __repr__(self) -> str:
        return "JobRef(%r)" % self.raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRef) and (self.raw, self.lrms, self.batch_id, self.cluster, self.date) == \
            (other.raw, other.lrms, other.batch_id, other.cluster, other.date)


def lrms_of(raw: str) -> str:
    """The batch-system prefix, or MalformedJobId when there is none."""
    lrms, sep, rest = raw.partition("/")
    if not sep or not rest or not _LRMS.match(lrms):
        raise MalformedJobId(raw)
    return lrms


def parse_dated(raw: str, batch_id_pattern: str = r"[^/@\s]+", allow_cluster: bool = True) -> JobRef:
    """``lrms/<date>/<id>[@cluster]``: the id after the last ``/``, the date when it looks like one."""
    lrms = lrms_of(raw)
    head, _, last = raw.rpartition("/")
    middle = head[len(lrms) + 1:] if len(head) > len(lrms) else ""
    cluster = None
    if "@" in last:
        last, _, cluster = last.partition("@")
        if not allow_cluster or not _CLUSTER.match(cluster):
            raise MalformedJobId(raw)
    if not last or not re.fullmatch(batch_id_pattern, last):
        raise MalformedJobId(raw)
    date = middle if _DATE.match(middle) else None
    return JobRef(raw, lrms, last, cluster, date)
