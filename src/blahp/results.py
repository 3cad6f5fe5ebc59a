"""Result-line pieces shared by the BLAH commands (protocol.md §3.3, §7)."""
from __future__ import annotations

from typing import Any, Dict, List

from .classad import ClassAd, unparse
from .classad.nodes import literal_of
from .records import AD_ORDER, JobAnswer

TAIL = 1024
AD_SOFT_LIMIT = 16 * 1024
_OPTIONAL_FIRST_DROPPED = ("BatchJobState", "WorkerNode", "ExitReason", "HoldReason")


def tail(text: str, limit: int = TAIL) -> str:
    """The last ``limit`` characters of captured output, ``...`` marking a cut."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def command_failure(res: Any) -> str:
    return "(stdout:%s) (stderr:%s)" % (tail(res.stdout), tail(res.stderr))


def status_ad(answer: JobAnswer) -> str:
    attrs: Dict[str, Any] = dict(answer.attrs)
    attrs["JobStatus"] = answer.status
    order: List[str] = [a for a in AD_ORDER if a in attrs] + [a for a in attrs if a not in AD_ORDER]
    text = _unparse(attrs, order)
    # A status ad near the client's 500 KB line limit would kill it: shed optional text first.
    for name in _OPTIONAL_FIRST_DROPPED:
        if len(text) <= AD_SOFT_LIMIT:
            break
        if name in attrs:
            order.remove(name)
            text = _unparse(attrs, order)
    return text


def _unparse(attrs: Dict[str, Any], order: List[str]) -> str:
    ad = ClassAd()
    for name in order:
        ad[name] = literal_of(attrs[name])
    return unparse(ad, keep_order=True)
