"""The adapter interface every batch system implements, and how adapters are found.

Adapters are registered as entry points in the group ``pyblahp.backends`` (``name =
module:Class``); pyblahp's own are declared in its pyproject.toml, a site's own package can
add more without touching pyblahp.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Dict, List, Optional

from .config import Config
from .jobid import JobRef, MalformedJobId, parse_dated
from .runner import CommandRunner

ENTRY_POINT_GROUP = "pyblahp.backends"


class QueryFailed(Exception):
    """The batch system could not be asked (command failed, timed out, printed garbage).

    Never evidence that a job is gone.
    """


class BackendContext:
    def __init__(self, config: Config, runner: CommandRunner, state_dir: str, log: Any) -> None:
        self.config = config
        self.runner = runner
        self.state_dir = state_dir
        self.log = log


class Backend(abc.ABC):
    #: the ``gridtype`` / job-id prefix this adapter serves
    name = ""
    #: what a native batch id looks like (validated before any command sees it)
    batch_id_pattern = r"\d+"
    #: whether ``id@cluster`` is meaningful for this system
    clusters = False

    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.log = context.log.bind(lrms=self.name)

    def parse_job_id(self, raw: str) -> JobRef:
        """Raise jobid.MalformedJobId for anything that is not one of our ids."""
        ref = parse_dated(raw, self.batch_id_pattern, allow_cluster=self.clusters)
        if ref.lrms != self.name:
            raise MalformedJobId(raw)
        return ref

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check that the batch system answers; raise QueryFailed with a one-line reason."""


def _entry_points() -> List[Any]:
    from importlib import metadata
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, ()))  # Python 3.9


def discover(context: BackendContext, log: Any,
             extra: Optional[Dict[str, Callable[[BackendContext], Backend]]] = None) -> Dict[str, Backend]:
    """Instantiate every registered adapter; one that fails to load is logged and skipped."""
    found: Dict[str, Backend] = {}
    for ep in _entry_points():
        try:
            cls = ep.load()
            found[ep.name] = cls(context)
        except Exception as e:  # a broken site plugin must not take the server down
            log.error("backend failed to load", backend=ep.name, error="%s: %s" % (type(e).__name__, e))
    for name, factory in (extra or {}).items():
        found[name] = factory(context)
    return found
