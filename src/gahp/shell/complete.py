"""Tab completion for ``gahp-shell`` (pure: readline calls it, the tests call it directly).

What completes where::

    <TAB> at the start        shell commands; after an upper-case letter, the server's GAHP commands
    status|cancel|hold|resume|watch|refresh <TAB>   job ids this shell has seen
    submit <TAB>              submit-ad attribute names, as ``Name=``; and ``-f``
    submit gridtype=<TAB>     batch system names
    submit -f <TAB>           file names
    help <TAB>                shell commands
    ping <TAB>                batch system names
    raw <TAB>                 the GAHP commands the server listed in its COMMANDS reply
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Iterable, List, Optional, Sequence

# submit-ad attributes blahpd reads (spec/submit-ad.md), in the spelling the gridmanager uses
SUBMIT_ATTRIBUTES = (
    "Args", "Arguments", "BatchExtraSubmitArgs", "BatchProject", "BatchRuntime", "CERequirements",
    "CeID", "ClientJobId", "Cmd", "Env", "EnvDelim", "Environment", "Err", "GPUMode", "GPUModel",
    "GPUNumber", "GridResource", "HostNumber", "HostSMPSize", "In", "Iwd", "JobDirectory",
    "MICNumber", "NodeNumber", "Out", "Queue", "RequestMemory", "SMPGranularity", "StageCmd",
    "TransferInput", "TransferOutput", "TransferOutputRemaps", "WantWholeNode", "WholeNodes",
    "gridtype", "x509UserProxy", "x509UserProxySubject",
)
LRMS_NAMES = ("local", "slurm", "pbs", "lsf", "sge", "condor")
JOB_COMMANDS = ("status", "cancel", "hold", "resume", "watch", "refresh")


class Completer:
    """``complete(line, begidx, text)`` -> candidates for the word ``text`` starting at
    ``begidx`` of ``line``. ``job_ids`` and ``gahp_commands`` are read at each call, so the
    shell can keep adding to them."""

    def __init__(self, commands: Sequence[str], job_ids: Callable[[], Iterable[str]],
                 gahp_commands: Callable[[], Iterable[str]] = lambda: ()):
        self.commands = sorted(set(commands))
        self.job_ids = job_ids
        self.gahp_commands = gahp_commands

    def complete(self, line: str, begidx: int, text: str) -> List[str]:
        before = line[:begidx].split()
        if not before:
            # a GAHP command (BLAH_PING ...) may be typed as such: upper case asks for those
            if text[:1].isupper():
                return _starting(sorted(set(self.gahp_commands())), text, " ")
            return _starting(self.commands, text, " ")
        head = before[0].lower()
        if head in JOB_COMMANDS:
            if head == "refresh" and len(before) >= 2:
                return _files(text)  # the proxy file
            return _starting(sorted(set(self.job_ids())), text, " ")
        if head == "submit":
            if before[-1] == "-f" and len(before) == 2:
                return _files(text)
            key, eq, value = text.partition("=")
            if eq and key.lower() == "gridtype":
                return [key + "=" + n + " " for n in sorted(LRMS_NAMES) if n.startswith(value)]
            options = [a + "=" for a in SUBMIT_ATTRIBUTES]
            if len(before) == 1:
                options.append("-f ")
            # attribute names compare without case, as ClassAds do
            return sorted(o for o in options if o.lower().startswith(text.lower()))
        if head == "help" and len(before) == 1:
            if text[:1].isupper():
                return _starting(sorted(set(self.gahp_commands())), text, "")
            return _starting(self.commands, text, "")
        if head == "ping" and len(before) == 1:
            return _starting(sorted(LRMS_NAMES), text, "")
        if head == "raw" and len(before) == 1:
            return _starting(sorted(set(self.gahp_commands())), text, " ")
        return []


def _starting(words: Iterable[str], text: str, suffix: str) -> List[str]:
    return [w + suffix for w in words if w.startswith(text)]


def _files(text: str) -> List[str]:
    out = []
    for path in sorted(glob.glob(os.path.expanduser(text) + "*")):
        out.append(path + ("/" if os.path.isdir(path) else ""))
    return out


def readline_hook(completer: Completer, readline) -> Callable[[str, int], Optional[str]]:
    """The function readline's ``set_completer`` wants: called with state 0, 1, ... until None."""
    matches: List[str] = []

    def hook(text: str, state: int) -> Optional[str]:
        nonlocal matches
        if state == 0:
            try:
                matches = completer.complete(readline.get_line_buffer(), readline.get_begidx(), text)
            except Exception:  # a completion bug must never kill the shell
                matches = []
        return matches[state] if state < len(matches) else None
    return hook
