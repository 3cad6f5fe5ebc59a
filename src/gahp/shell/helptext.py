"""``help`` and ``help <command>`` texts of ``gahp-shell``."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

TOPICS: Dict[str, str] = {
    "submit": """submit Key=Value ...     submit a job (BLAH_JOB_SUBMIT)
submit -f FILE           submit the ClassAd in FILE ([...] or one 'Key = value' per line)

  A value becomes a ClassAd literal: a number or true/false stays as is, anything else
  (or anything quoted) is a string. Key:=expr puts expr in as a ClassAd expression.
    submit Cmd=/bin/sleep Args="60" Queue=debug gridtype=slurm
    submit Cmd=/bin/echo Arguments="'hello world'" Out=out.txt BatchRuntime:=2*3600
  The shell remembers the job ids: see 'jobs', and <TAB> after status/cancel/watch.""",
    "status": """status JOBID [JOBID...]  the job's status ad (BLAH_JOB_STATUS), shown as a table""",
    "watch": """watch JOBID [SECONDS]    poll the job's status every SECONDS (default 2) until it is
                         COMPLETED or REMOVED, on one live status line; Ctrl-C stops watching.
  In a script, watch succeeds when the job completed with exit code 0.""",
    "cancel": """cancel JOBID [JOBID...]  remove jobs (BLAH_JOB_CANCEL)""",
    "hold": """hold JOBID               hold a job (BLAH_JOB_HOLD)""",
    "resume": """resume JOBID             release a held job (BLAH_JOB_RESUME)""",
    "refresh": """refresh JOBID PROXYFILE  give the job a new proxy (BLAH_JOB_REFRESH_PROXY)""",
    "ping": """ping LRMS                is the batch system reachable? (BLAH_PING slurm, ...)""",
    "jobs": """jobs                     the jobs this shell submitted, with their last known state""",
    "raw": """raw LINE                 send LINE exactly as typed (request ids and escaping are yours);
                         results of a known async command are waited for as usual
raw                      raw mode: every line goes out as typed, until 'raw' alone or Ctrl-D
  A line starting with one of the server's COMMANDS (BLAH_PING 7 slurm) is sent as typed too.""",
    "results": """results                  poll RESULTS by hand (the shell normally does it on R)""",
    "commands": """commands                 the server's COMMANDS reply""",
    "version": """version                  the server's VERSION reply""",
    "async_on": """async_on / async_off     ASYNC_MODE_ON / ASYNC_MODE_OFF (the shell starts with it on)""",
    "async_off": """async_on / async_off     ASYNC_MODE_ON / ASYNC_MODE_OFF (the shell starts with it on)""",
    "quit": """quit                     send QUIT: the server exits, and so does the shell""",
    "exit": """exit                     leave the shell (closes the server's input; Ctrl-D does too)""",
    "help": """help [COMMAND]           this text, or more on one command""",
}

# the protocol reference (protocol.md section 7): what goes on the wire, what comes back
WIRE: Dict[str, Tuple[str, str, str]] = {
    "submit": ("BLAH_JOB_SUBMIT <reqid> <classad>",
               "<reqid> <code> <message> <jobid or N/A>   (4 fields; 0 No error <jobid>)", "7.3"),
    "status": ("BLAH_JOB_STATUS <reqid> <jobid>",
               "<reqid> <code> <message> <JobStatus> <classad or N/A>   (5 fields; 0 No Error ...)\n"
               "  JobStatus: 1 IDLE, 2 RUNNING, 3 REMOVED, 4 COMPLETED, 5 HELD", "7.4"),
    "watch": ("BLAH_JOB_STATUS <reqid> <jobid>, repeated", "as for status", "7.4"),
    "cancel": ("BLAH_JOB_CANCEL <reqid> <jobid>", "<reqid> <code> <message>   (3 fields)", "7.5"),
    "hold": ("BLAH_JOB_HOLD <reqid> <jobid>", "<reqid> <code> <message>   (3 fields)", "7.6"),
    "resume": ("BLAH_JOB_RESUME <reqid> <jobid>", "<reqid> <code> <message>   (3 fields)", "7.6"),
    "refresh": ("BLAH_JOB_REFRESH_PROXY <reqid> <jobid> <proxyfile>",
                "<reqid> <code> <message>   (3 fields)", "7.7"),
    "ping": ("BLAH_PING <reqid> <lrms>", "<reqid> <code> <message>   (3 fields; 0 No error)", "7.8"),
    "results": ("RESULTS", "S <n>, then n result lines (async mode: after the server's R)", "6"),
    "commands": ("COMMANDS", "S <command> <command> ...", "7.2"),
    "version": ("VERSION", "S $GahpVersion: ... $", "7.2"),
    "async_on": ("ASYNC_MODE_ON", "S Async\\ mode\\ on; from then on one R per batch of results", "6.2"),
    "async_off": ("ASYNC_MODE_OFF", "S Async\\ mode\\ off; no R: poll RESULTS", "6.2"),
    "quit": ("QUIT", "S Server\\ exiting; the server exits", "7.2"),
}
# GAHP command names lead to the shell command that sends them
BY_GAHP_NAME = {wire.split()[0]: name for name, (wire, _, _) in WIRE.items() if name != "watch"}

OVERVIEW = """Commands (request ids and GAHP escaping are added for you):
  submit Key=Value ... | submit -f FILE    status JOBID...    watch JOBID [SECONDS]
  cancel JOBID...   hold JOBID   resume JOBID   refresh JOBID PROXY   ping LRMS
  jobs   results   commands   version   async_on   async_off   raw LINE   quit   exit
'last' stands for the job this shell submitted last (status last, watch last, cancel last).
End a line with '&' not to wait for its results: they are shown when they come.
Ctrl-C stops waiting (the results are shown later); Ctrl-D or 'exit' leaves.
'help COMMAND' says more; <TAB> completes commands, attribute names and job ids."""


def help_text(topic: Optional[str] = None) -> str:
    """The overview, or one command's help with its protocol reference; ``topic`` may be a
    shell command or a GAHP command name (``help BLAH_JOB_STATUS``)."""
    if not topic:
        return OVERVIEW
    name = BY_GAHP_NAME.get(topic.upper(), topic.lower())
    text = TOPICS.get(name)
    if text is None:
        return "no help on %r; the commands: %s" % (topic, ", ".join(sorted(TOPICS)))
    if name in WIRE:
        wire, result, section = WIRE[name]
        text += "\n  wire:    %s\n  result:  %s\n  (protocol.md section %s)" % (wire, result, section)
    return text
