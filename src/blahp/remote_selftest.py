"""``blahp-bootstrap --test``: drive one blahpd the way the gridmanager does and judge it.

The GAHP transport is a command line (by default ``gahp-ssh ... host blahpd``); any command that
speaks GAHP on its stdin/stdout will do, which is how this is tested before gahp-ssh exists and
how a site can check a plain ``ssh`` path.  Steps, each printed with its time since the start:
banner, COMMANDS, BLAH_PING <lrms>, BLAH_JOB_SUBMIT of ``/bin/echo Hello`` and
BLAH_JOB_STATUS until the job is done (4) or removed (3), in synchronous mode, through
gahp-shell's client (gahp.shell.client).
"""
from __future__ import annotations

import os
import shlex
import time
from typing import Callable, Dict, List, Optional, Sequence, TextIO

from gahp.shell.client import CAPTURE, BadBanner, CannotStart, GahpError, ServerDied, ShellClient
from gahp.shell.lines import build_ad, classad_string

REQUIRED_COMMANDS = ("BLAH_JOB_SUBMIT", "BLAH_JOB_STATUS", "BLAH_PING", "RESULTS", "QUIT")
# GAHP job states (BLAH_JOB_STATUS field 3)
_STATES = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held"}


class SelfTestFailed(Exception):
    pass


def echo_job_ad(lrms: str, iwd: str, name: str) -> str:
    """The submit ad of condor_remote_cluster's test job: ``/bin/echo Hello`` in ``iwd``."""
    values = [("Cmd", "/bin/echo"), ("Arguments", "Hello"), ("In", "/dev/null"), ("Iwd", iwd),
              ("Out", name + ".out"), ("Err", name + ".err"), ("gridtype", lrms), ("JobDirectory", name)]
    return build_ad((k, classad_string(v)) for k, v in values)


def _stderr_note(lines: Sequence[str]) -> str:
    return "; stderr: " + " | ".join(lines) if lines else ""


class _Gahp:
    """The GAHP under test, in synchronous mode (RESULTS polled, as a gridmanager without async
    mode does); its failures become SelfTestFailed with the tail of its stderr."""

    def __init__(self, client: ShellClient, reply_timeout: float) -> None:
        self.client = client
        self.reply_timeout = reply_timeout

    def failure(self, e: GahpError) -> SelfTestFailed:
        if isinstance(e, ServerDied):
            return SelfTestFailed("the GAHP closed its output (exit code %s)%s"
                                  % (e.status, _stderr_note(self.client.stderr_tail())))
        return SelfTestFailed(str(e))

    def command(self, line: str) -> str:
        try:
            return self.client.sync(line)
        except GahpError as e:
            raise self.failure(e) from None

    def call(self, name: str, reqid: str, args: Sequence[str], timeout: float) -> List[str]:
        """Send the request, wait for its result fields."""
        request = self.client.maker.request(name, args, reqid=reqid)
        try:
            reply = self.client.send(request)
            if reply != "S":
                raise SelfTestFailed("%s was not accepted: %r" % (name, reply))
            return self.client.wait(reqid, timeout, name)
        except GahpError as e:
            raise self.failure(e) from None

    def close(self, timeout: float = 10.0) -> Optional[int]:
        if self.client.alive:
            try:
                self.client.sync("QUIT")
            except GahpError:
                pass
        return self.client.close(timeout)


class Report:
    """Timed step lines on ``out``; the verdict at the end."""

    def __init__(self, out: TextIO, t0: Optional[float] = None) -> None:
        self.out = out
        self.t0 = time.monotonic() if t0 is None else t0
        self.steps: List[str] = []

    def step(self, text: str) -> None:
        line = "[%7.2fs] %s" % (time.monotonic() - self.t0, text)
        self.steps.append(line)
        self.out.write(line + "\n")
        self.out.flush()


class Outcome:
    def __init__(self) -> None:
        self.ok = False
        self.job_id: Optional[str] = None
        self.exit_code: Optional[int] = None
        self.state: Optional[int] = None
        self.error: Optional[str] = None


def run(argv: Sequence[str], lrms: str, iwd: str, out: TextIO, *, name: Optional[str] = None,
        timeout: float = 300.0, reply_timeout: float = 60.0, poll_interval: float = 2.0,
        env: Optional[Dict[str, str]] = None, t0: Optional[float] = None,
        fetch_output: Optional[Callable[[str], Optional[str]]] = None) -> Outcome:
    """Run the self-test through the GAHP started by ``argv``; ``iwd`` must exist where blahpd runs.

    ``fetch_output(path)`` may return the job's stdout file's text (checked for ``Hello``).
    """
    rep = Report(out, t0)
    res = Outcome()
    name = name or "pyblahp-selftest-%d" % int(time.time())
    rep.step("starting GAHP: %s" % " ".join(shlex.quote(a) for a in argv))
    try:
        client = ShellClient(argv, env=env, reply_timeout=reply_timeout, async_mode=False, stderr=CAPTURE)
    except GahpError as e:
        if isinstance(e, CannotStart):
            res.error = "cannot run %s: %s" % (argv[0], e.reason)
        elif isinstance(e, BadBanner):
            res.error = "first line is not a GAHP banner: %r" % e.line[:200]
        elif isinstance(e, ServerDied):
            res.error = "the GAHP closed its output (exit code %s)%s" % (e.status, _stderr_note(e.stderr))
        else:
            res.error = str(e)
        rep.step("FAILED: " + res.error)
        return res
    gahp = _Gahp(client, reply_timeout)
    try:
        rep.step("banner: %s" % client.banner)
        commands = gahp.command("COMMANDS").split()
        absent = [c for c in REQUIRED_COMMANDS if c not in commands]
        if commands[:1] != ["S"] or absent:
            raise SelfTestFailed("COMMANDS lacks %s: %r" % (", ".join(absent), " ".join(commands)))
        rep.step("COMMANDS: %d commands" % (len(commands) - 1))
        row = gahp.call("BLAH_PING", "2", [lrms], reply_timeout)
        if row[1:2] != ["0"]:
            raise SelfTestFailed("BLAH_PING %s failed: %s" % (lrms, " ".join(row[1:])))
        rep.step("BLAH_PING %s: %s" % (lrms, " ".join(row[1:])))
        row = gahp.call("BLAH_JOB_SUBMIT", "3", [echo_job_ad(lrms, iwd, name)], timeout)
        if row[1:2] != ["0"] or len(row) < 4:
            raise SelfTestFailed("submit failed: %s" % " ".join(row[1:]))
        res.job_id = row[3]
        rep.step("submitted /bin/echo Hello in %s: job %s" % (iwd, res.job_id))
        reqid = 3
        deadline = time.monotonic() + timeout
        last = None
        while True:
            reqid += 1
            row = gahp.call("BLAH_JOB_STATUS", str(reqid), [res.job_id], reply_timeout)
            if row[1:2] != ["0"] or len(row) < 4:
                raise SelfTestFailed("status query failed: %s" % " ".join(row[1:]))
            state = int(row[3])
            if state != last:
                rep.step("status %d (%s)" % (state, _STATES.get(state, "?")))
                last = state
            if state in (3, 4):
                res.state = state
                res.exit_code = _exit_code(row[4] if len(row) > 4 else "")
                break
            if time.monotonic() > deadline:
                raise SelfTestFailed("job %s not done after %.0f s (last status %d)" % (res.job_id, timeout, state))
            time.sleep(poll_interval)
        if res.state == 3:
            raise SelfTestFailed("job %s was removed" % res.job_id)
        rep.step("job completed, exit code %s" % res.exit_code)
        if res.exit_code != 0:
            raise SelfTestFailed("job %s exited with %s" % (res.job_id, res.exit_code))
        if fetch_output is not None:
            text = fetch_output(os.path.join(iwd, name + ".out"))
            if text is None or text.strip() != "Hello":
                raise SelfTestFailed("job output is %r, not 'Hello'" % (text,))
            rep.step("output: %s" % text.strip())
        res.ok = True
    except SelfTestFailed as e:
        res.error = str(e)
    finally:
        rc = gahp.close()
        if res.ok:
            rep.step("GAHP exited with %s" % rc)
    rep.step("PASSED" if res.ok else "FAILED: %s" % res.error)
    return res


def _exit_code(ad_text: str) -> Optional[int]:
    import re
    m = re.search(r"\bExitCode\s*=\s*(-?\d+)", ad_text)
    return int(m.group(1)) if m else None
