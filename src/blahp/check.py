"""``blahpd --check``: what an admin runs on a login node before pointing a CE at it.

Like the C blahp's ``blah_check_config``, but it also asks every served batch system one
harmless question, so a missing binary, a wrong ``*_binpath`` or a dead controller shows up
here instead of as held jobs.
"""
from __future__ import annotations

import os
import sys
from typing import List, Tuple

import trio

Line = Tuple[str, bool, str]


def _report(lines: List[Line], out) -> int:
    width = max((len(what) for what, _, _ in lines), default=0)
    bad = 0
    for what, ok, detail in lines:
        bad += not ok
        detail = " | ".join(part.strip() for part in str(detail).splitlines() if part.strip())
        out.write("%-4s %-*s  %s\n" % ("ok" if ok else "FAIL", width, what, detail))
    out.write("\n%s\n" % ("all checks passed" if not bad else "%d check(s) failed" % bad))
    return 0 if not bad else 1


async def _checks(app) -> List[Line]:
    lines: List[Line] = []
    for name, backend in sorted(app.served.items()):
        try:
            with trio.move_on_after(backend.context.command_timeout * 3) as scope:
                lines += await backend.check()
            if scope.cancelled_caught:
                lines.append(("%s checks" % name, False, "no answer within %g s" % (backend.context.command_timeout * 3)))
        except Exception as e:  # a broken adapter is a finding, not a crash of the check
            lines.append(("%s checks" % name, False, "%s: %s" % (type(e).__name__, e)))
    return lines


def main() -> int:
    from . import config as config_mod, logsetup
    from .cli import build_app
    out = sys.stdout
    lines: List[Line] = []
    try:
        config = config_mod.load()
    except config_mod.ConfigError as e:
        out.write("FAIL configuration: %s\n" % e)
        return 1
    lines.append(("configuration", True, ", ".join(config.files) or "no config file found: built-in defaults"))
    warning = logsetup.configure(config)
    lines.append(("log", warning is None, warning or config.get("blah_log_file") or "default location"))
    try:
        app = build_app(config, logsetup.get_logger())
    except Exception as e:
        lines.append(("start-up", False, "%s: %s" % (type(e).__name__, e)))
        return _report(lines, out)
    lines.append(("registry", True, os.path.join(config.get("blah_state_dir") or "~/.pyblahp", "registry.sqlite3")))
    lines.append(("batch systems served", bool(app.served), ", ".join(sorted(app.served)) or
                  "none: check supported_lrms (available: %s)" % ", ".join(sorted(app.backends))))
    lines += trio.run(_checks, app)
    return _report(lines, out)
