"""Logging: structlog to a file and/or stderr, never to stdout (stdout is the protocol).

* file: ``blah_log_file`` (default ``$HOME/.pyblahp/log/blahpd.log``) at ``blah_log_level``,
  rotated at ``pyblahp_log_max_bytes`` (one ``.1`` kept);
* stderr: warnings and errors only, one short line each (the gridmanager copies stderr into its
  log and the last lines into hold reasons); off with ``pyblahp_stderr_log = no`` and always
  off when stderr is the same object as stdout (reverse GAHP: one socket for fds 0, 1 and 2);
* format: ``key=value`` by default, ``pyblahp_log_format = json`` for JSON lines.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, TextIO

import structlog

from .config import Config, ConfigError, user_home

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_METHOD_LEVEL = {"debug": 10, "info": 20, "msg": 20, "warning": 30, "warn": 30,
                 "error": 40, "exception": 40, "critical": 50, "fatal": 50}


def stderr_is_stdout() -> bool:
    try:
        a, b = os.fstat(1), os.fstat(2)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class _RotatingFile:
    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fh = open(path, "a", buffering=1, encoding="utf-8", errors="replace")

    def write(self, line: str) -> None:
        self._fh.write(line)
        if self.max_bytes and self._fh.tell() > self.max_bytes:
            self._fh.close()
            os.replace(self.path, self.path + ".1")
            self._fh = open(self.path, "a", buffering=1, encoding="utf-8", errors="replace")

    def close(self) -> None:
        self._fh.close()


class _Sink:
    """structlog's wrapped logger: routes each rendered line by level to file and stderr."""

    def __init__(self, file: Optional[_RotatingFile], file_level: int,
                 stderr: Optional[TextIO], stderr_level: int) -> None:
        self.file = file
        self.file_level = file_level
        self.stderr = stderr
        self.stderr_level = stderr_level

    def _emit(self, level: int, line: str) -> None:
        if self.file is not None and level >= self.file_level:
            try:
                self.file.write(line + "\n")
            except OSError:
                self.file = None  # disk full or gone: keep serving, stop logging there
        if self.stderr is not None and level >= self.stderr_level:
            try:
                self.stderr.write(line + "\n")
                self.stderr.flush()
            except (OSError, ValueError):
                self.stderr = None

    def __getattr__(self, name: str):
        level = _METHOD_LEVEL.get(name)
        if level is None:
            raise AttributeError(name)
        return lambda line: self._emit(level, line)


def configure(config: Config, *, stderr: Optional[TextIO] = None) -> Optional[str]:
    """Set up structlog from the config.  Returns a warning to log once, if any."""
    level_name = (config.get("blah_log_level") or "info").lower()
    if level_name not in LEVELS:
        raise ConfigError("blah_log_level=%s: use one of %s" % (level_name, ", ".join(LEVELS)))
    fmt = (config.get("pyblahp_log_format") or "kv").lower()
    if fmt not in ("kv", "json"):
        raise ConfigError("pyblahp_log_format=%s: use kv or json" % fmt)
    path = config.get("blah_log_file") or os.path.join(
        user_home(config.environment), ".pyblahp", "log", "blahpd.log")
    max_bytes = config.get_int("pyblahp_log_max_bytes", 50 * 1024 * 1024, minimum=0)
    warning = None
    file = None
    if path.lower() not in ("none", "/dev/null"):
        try:
            file = _RotatingFile(path, max_bytes)
        except OSError as e:
            warning = "cannot open log file %s: %s" % (path, e.strerror or e)
    err_stream = stderr if stderr is not None else sys.stderr
    if not config.get_bool("pyblahp_stderr_log", True) or stderr_is_stdout():
        err_stream = None
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"],
                                                           drop_missing=True))
    sink = _Sink(file, LEVELS[level_name], err_stream, LEVELS["warning"])
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(LEVELS[level_name], LEVELS["warning"])),
        logger_factory=lambda *a: sink,
        cache_logger_on_first_use=True,
    )
    return warning


def get_logger(**bind):
    return structlog.get_logger().bind(**bind) if bind else structlog.get_logger()
