"""The BLAH command set on top of the generic GAHP table.

Synchronous commands are answered here; asynchronous ones are declared with their result
shape and executed by :class:`blahp.app.BlahApp`.  A command appears in ``COMMANDS`` only
once it is implemented.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from gahp.commands import CommandTable

BANNER = r"$GahpVersion: 1.8.0 Mar 31 2008 INFN\ blahpd\ (poly,new_esc_format) $"


class Session:
    """Per-connection state changed by synchronous commands."""

    def __init__(self) -> None:
        self.sudo_user: Optional[str] = None
        self.sudo_command = "/usr/bin/sudo"

    def command_prefix(self) -> List[str]:
        return [self.sudo_command, "-u", self.sudo_user] if self.sudo_user else []


def build_table(session: Session) -> CommandTable:
    t = CommandTable()

    def sudo_on(args: Sequence[str]) -> List[str]:
        session.sudo_user = args[0]
        return ["S", "Sudo mode on"]

    def sudo_off(args: Sequence[str]) -> List[str]:
        session.sudo_user = None
        return ["S", "Sudo mode off"]

    t.add_sync("BLAH_SET_SUDO_ID", 1, sudo_on)
    t.add_sync("BLAH_SET_SUDO_OFF", 0, sudo_off)
    # glexec left the grid long ago; saying so beats pretending to switch identities.
    t.add_sync("BLAH_SET_GLEXEC_DN", 3, lambda a: ["F", "Glexec mode not supported"])
    t.add_sync("BLAH_SET_GLEXEC_OFF", 0, lambda a: ["S", "Glexec mode off"])

    # <reqid> <code> <message> <jobid>
    t.add_async("BLAH_JOB_SUBMIT", 2, result_fields=3, error_placeholders=("N/A",))
    # <reqid> <code> <message> <JobStatus> <ad>
    t.add_async("BLAH_JOB_STATUS", 2, result_fields=4, error_placeholders=("0", "N/A"))
    # <reqid> <code> <message>
    t.add_async("BLAH_JOB_CANCEL", 2, result_fields=2)
    t.add_async("BLAH_JOB_HOLD", 2, result_fields=2)
    t.add_async("BLAH_JOB_RESUME", 2, result_fields=2)
    t.add_async("BLAH_PING", 2, result_fields=2)
    t.add_async("BLAH_GET_HOSTPORT", 1, result_fields=2)
    t.add_async("BLAH_JOB_REFRESH_PROXY", 3, result_fields=2)
    t.add_async("BLAH_JOB_SEND_PROXY_TO_WORKER_NODE", 4, result_fields=2)
    return t
