"""The site's ``<lrms>_local_submit_attributes.sh`` hook (submit-ad.md §10.2).

The script gets the ``Name='value'`` lines as shell variables and prints batch directives that
go into the batch script.  It is run as ``/bin/bash <tempfile>`` (never executed from a temp
directory, which may be mounted noexec) with cwd = Iwd.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, List, Optional, Tuple

from .config import Config
from .jobmodel import JobDescription, SubmitError
from .results import tail
from .runner import CommandNotExecutable, CommandRunner
from .wrapper import q


def find_script(lrms: str, config: Config, home: str, install_prefix: Optional[str] = None) -> Optional[str]:
    name = "%s_local_submit_attributes.sh" % lrms
    candidates = [os.path.join(home, ".blah", name)]
    libexec = config.get("blah_libexec_directory")
    if libexec:
        candidates.append(os.path.join(libexec, name))
    if install_prefix:
        candidates.append(os.path.join(install_prefix, "etc", "blahp", name))
    candidates.append(os.path.join("/etc/blahp", name))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.R_OK):
            return c
    return None


def driver_text(job: JobDescription, script: str) -> str:
    lines = ["#!/bin/bash"] + job.attribute_lines
    if job.node_number is not None:
        lines.append("blah_opt_mpinodes=%d" % job.node_number)
    lines.append("source %s" % q(script))
    return "\n".join(lines) + "\n"


async def run_script(job: JobDescription, script: str, runner: CommandRunner, *, temp_dir: str,
                     timeout: float, log: Any) -> Tuple[str, str]:
    """Return (stdout, driver text); raise SubmitError with the documented message on failure."""
    text = driver_text(job, script)
    fd, path = tempfile.mkstemp(prefix="blah_attrs_", suffix=".sh", dir=temp_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        try:
            res = await runner.run(["/bin/bash", path], timeout=timeout, cwd=job.iwd)
        except CommandNotExecutable as e:
            raise SubmitError(1, _failure("", "ERROR: failed to run local submit attributes script %s: %s"
                                          % (script, e))) from None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if not res.ok:
        why = "timed out after %g s" % timeout if res.timed_out else "exit code %s" % res.returncode
        log.warning("local submit attributes script failed", script=script, reason=why)
        raise SubmitError(1, _failure(res.stdout, "ERROR: failed to run local submit attributes script %s: %s %s"
                                      % (script, why, res.stderr.strip())))
    return res.stdout, text


def _failure(stdout: str, stderr: str) -> str:
    return "submission command failed (exit code = 1) (stdout:%s) (stderr:%s)" % (tail(stdout), tail(stderr))


def directive_lines(output: str) -> List[str]:
    return [ln.rstrip() for ln in output.splitlines() if ln.strip()]
