"""The control master's log: structlog ``key=value`` lines to ``<control path>.log``, rotated.

Only the master (a daemon whose stdio is /dev/null) uses this; the launcher must not import it
(structlog costs a GAHP start).  Nothing here touches structlog's global configuration: the
loggers wrap a module-level sink that writes nowhere until :func:`setup` opens the file, so
importing ``gahp.ssh.master`` in-process (tests) changes no other logging.

stdlib records from ``gahp.ssh`` (INFO and above) and ``asyncssh`` (WARNING and above) are
forwarded into the same file, and never reach stderr.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import structlog

MAX_BYTES = 1024 * 1024
INFO = logging.INFO


class RotatingFile:
    """Append lines to ``path``; past ``max_bytes`` it becomes ``path.1`` (one kept)."""

    def __init__(self, path: str, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fh = self._open()

    def _open(self) -> Any:
        return open(self.path, "a", buffering=1, encoding="utf-8", errors="replace")

    def write(self, line: str) -> None:
        self._fh.write(line)
        if self.max_bytes and self._fh.tell() > self.max_bytes:
            self._fh.close()
            os.replace(self.path, self.path + ".1")
            self._fh = self._open()

    def close(self) -> None:
        self._fh.close()


class _Sink:
    """structlog's wrapped logger: every method writes the rendered line to the file (if any)."""

    def __init__(self) -> None:
        self.file: Optional[RotatingFile] = None

    def _emit(self, line: str) -> None:
        if self.file is None:
            return
        try:
            self.file.write(line + "\n")
        except (OSError, ValueError):
            self.file = None  # disk full or gone: keep serving, stop logging

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._emit


SINK = _Sink()

_PROCESSORS = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True),
]


def get_logger(**bind: Any) -> Any:
    """A bound logger (INFO and above) writing to the master's log file."""
    return structlog.wrap_logger(SINK, processors=list(_PROCESSORS),
                                 wrapper_class=structlog.make_filtering_bound_logger(INFO),
                                 **bind)


class ToStructlog(logging.Handler):
    """Forwards stdlib records (asyncssh's, ``gahp.ssh``'s) into the structlog file."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._log = get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a bad %-format in a library's call: still say something
            msg = str(record.msg)
        kw = {"logger": record.name}
        if record.exc_info:
            kw["exc_info"] = record.exc_info  # type: ignore[assignment]
        level = max(lv for lv in (INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
                    if lv <= max(record.levelno, INFO))
        self._log.log(level, msg, **kw)


def setup(path: str, max_bytes: int = MAX_BYTES) -> None:
    """Open ``path`` for the structlog loggers and route stdlib logging there (not to stderr)."""
    try:
        SINK.file = RotatingFile(path, max_bytes)
    except OSError:
        SINK.file = None
    handler = ToStructlog()
    for name, level in (("gahp.ssh", logging.INFO), ("asyncssh", logging.WARNING)):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(level)
        lg.propagate = False
