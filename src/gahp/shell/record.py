"""``gahp-shell --record FILE``: what the shell did, as a session ``gahp-conformance`` replays.

The session is written from what the shell knows, not from the raw byte stream, so that it
replays on another day, machine or server:

* each request is followed by a ``= results`` block with its results, in any order, however
  they arrived (``R`` and ``RESULTS`` polls are the harness's business, not the session's);
* a submitted job's id is captured as ``{job1}``, ``{job2}``, ... and matched from then on;
* the shell's working directory (the server's too) becomes ``{workdir}``;
* a status ad is not compared attribute by attribute (times, hosts and ids vary): a job in a
  final state must reach that state again (the request is retried until it does), with the
  same exit code or signal; for a job not yet finished any state passes;
* ``watch`` records only its last poll; ``jobs`` and ``help`` are the shell's own.

See conformance/README.md for the session format.
"""
from __future__ import annotations

import re
import time
from typing import List, Optional, Sequence, Tuple

from gahp.escaping import quote_arg, split_args
from gahp.shell.lines import Request, parse_ad

FINAL_STATES = ("3", "4")
RESULTS_WITHIN = 240   # protocol.md section 8: a result may take this long
RETRY_FOR = 600        # how long a replayed job may take to reach its recorded final state
_KEPT = ("JobStatus", "ExitCode", "ExitBySignal", "ExitSignal")


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class Recorder:
    """Collects the shell's exchanges; ``session()`` renders them."""

    def __init__(self, server: Sequence[str], workdir: Optional[str] = None):
        self.server = list(server)
        self.workdir = workdir if workdir and workdir != "/" else None
        self.lines: List[str] = []
        self.jobs: List[Tuple[str, str]] = []   # (job id as sent, placeholder name)
        self.lrms: List[str] = []

    # -- generalising -------------------------------------------------------------------
    def _general(self, text: str) -> str:
        out = _braces(text)
        if self.workdir:
            for form in (self.workdir, self.workdir.replace("\\", "\\\\").replace(" ", "\\ ")):
                out = out.replace(_braces(form), "{workdir}")
        for job, name in sorted(self.jobs, key=lambda j: -len(j[0])):
            out = out.replace(_braces(job), "{%s}" % name)
        return out

    def _head(self, fields: List[str]) -> str:
        """Request id, code and message of a result, escaped as on the wire and generalised."""
        return " ".join(self._general(quote_arg(f)) for f in fields[:3])

    def _capture(self, fields: List[str], line: str) -> str:
        """A successful submit result: its job id becomes a new name, bound here."""
        job = fields[3]
        name = "job%d" % (len(self.jobs) + 1)
        head = self._head(fields)
        self.jobs.append((job, name))
        lrms = job.split("/", 1)[0]
        if lrms not in self.lrms:
            self.lrms.append(lrms)
        return "%s {%s}" % (head, name)

    def _status_pattern(self, fields: List[str]) -> Tuple[str, bool]:
        """(pattern, final) for a successful status result."""
        ad = parse_ad(fields[4]) if fields[4] != "N/A" else {}
        state = fields[3]
        head = self._head(fields)
        if state not in FINAL_STATES:
            return "%s {any} {any}" % head, False
        looks = []
        for key in _KEPT:
            value = next((v for k, v in ad.items() if k.lower() == key.lower()), None)
            if value is not None:
                looks.append(r"(?=.*\b%s\\ =\\ %s\b)" % (key, re.escape(value)))
        pattern = "{/%s/}{*}" % "".join(looks) if looks else "{*}"
        return "%s %s [%s]" % (head, state, pattern), True

    # -- what the shell calls -----------------------------------------------------------
    def comment(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.lines.append("# " + line)

    def sync(self, line: str, reply: str) -> None:
        self.lines.append("> " + self._general(line))
        self.lines.append("< " + self._general(reply))

    def exchange(self, request: Request, reply: str, results: Sequence[str], complete: bool = True) -> None:
        """An async request, its return line and the result lines (as received)."""
        steps, final = self._steps(request, reply, results, complete)
        if final:
            self.lines.append("= retry %d" % RETRY_FOR)
            self.lines.extend(steps)
            self.lines.append("= end")
        else:
            self.lines.extend(steps)

    def _steps(self, request: Request, reply: str, results: Sequence[str], complete: bool):
        steps = ["> " + self._general(request.line), "< " + self._general(reply)]
        final = False
        block: List[str] = []
        for raw in results:
            fields = split_args(raw)
            if request.command == "BLAH_JOB_SUBMIT" and len(fields) == 4 and fields[1] == "0":
                block.append("< " + self._capture(fields, raw))
            elif request.command == "BLAH_JOB_STATUS" and len(fields) == 5 and fields[1] == "0":
                pattern, is_final = self._status_pattern(fields)
                final = final or is_final
                block.append("< " + pattern)
            else:
                block.append("< " + self._general(raw))
        if block:
            steps.append("= results within %d" % RESULTS_WITHIN)
            steps.extend(block)
            steps.append("= end")
        if not complete:
            steps.append("# (more results of request %s never came while recording)" % request.reqid)
        if request.command == "BLAH_PING" and request.args:
            lrms = request.args[0]
            if lrms not in self.lrms:
                self.lrms.append(lrms)
        return steps, final

    # -- result --------------------------------------------------------------------------
    def needs(self) -> str:
        known = [x for x in self.lrms if x in ("local", "slurm", "sge")]
        return known[0] if known else "protocol"

    def session(self, purpose: Optional[str] = None, needs: Optional[str] = None) -> str:
        head = ["# recorded by gahp-shell %s from: %s" % (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                                         " ".join(self.server)),
                "@ purpose: %s" % (purpose or "(recorded with gahp-shell; say what this session shows)"),
                "@ needs: %s" % (needs or self.needs()),
                "@ timeout: %d" % (RETRY_FOR + 2 * RESULTS_WITHIN)]
        return "\n".join(head + self.lines) + "\n"
