"""``blahp-bootstrap --test``: drive one blahpd the way the gridmanager does and judge it.

The GAHP transport is a command line (by default ``gahp-ssh ... host blahpd``); any command that
speaks GAHP on its stdin/stdout will do, which is how this is tested before gahp-ssh exists and
how a site can check a plain ``ssh`` path.  Steps, each printed with its time since the start:
banner, COMMANDS, BLAH_PING <lrms>, BLAH_JOB_SUBMIT of ``/bin/echo Hello`` and
BLAH_JOB_STATUS until the job is done (4) or removed (3).  Standard library and gahp.escaping only.
"""
from __future__ import annotations

import os
import queue
import shlex
import subprocess
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, TextIO

from gahp.escaping import quote_arg, read_argv

REQUIRED_COMMANDS = ("BLAH_JOB_SUBMIT", "BLAH_JOB_STATUS", "BLAH_PING", "RESULTS", "QUIT")
# GAHP job states (BLAH_JOB_STATUS field 3)
_STATES = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held"}


class SelfTestFailed(Exception):
    pass


def _classad_string(value: str) -> str:
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def echo_job_ad(lrms: str, iwd: str, name: str) -> str:
    """The submit ad of condor_remote_cluster's test job: ``/bin/echo Hello`` in ``iwd``."""
    attrs = [("Cmd", _classad_string("/bin/echo")), ("Arguments", _classad_string("Hello")),
             ("In", _classad_string("/dev/null")), ("Iwd", _classad_string(iwd)),
             ("Out", _classad_string(name + ".out")), ("Err", _classad_string(name + ".err")),
             ("gridtype", _classad_string(lrms)), ("JobDirectory", _classad_string(name))]
    return "[ " + "; ".join("%s = %s" % kv for kv in attrs) + " ]"


class GahpPipe:
    """A GAHP server process on pipes: whole lines in, whole lines out, with timeouts."""

    def __init__(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.stderr: List[str] = []
        self._results: Dict[str, List[str]] = {}
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self) -> None:
        for raw in self.proc.stdout:  # type: ignore[union-attr]
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        for raw in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise SelfTestFailed("no reply within %.0f s" % timeout) from None
        if line is None:
            self._lines.put(None)
            raise SelfTestFailed("the GAHP closed its output (exit code %s)%s"
                                 % (self.proc.poll(), self.stderr_tail()))
        return line.rstrip("\r\n")

    def stderr_tail(self, n: int = 6) -> str:
        time.sleep(0.2)  # let the reader catch the last lines of a dying process
        tail = [s for s in self.stderr if s.strip()][-n:]
        return "; stderr: " + " | ".join(tail) if tail else ""

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode("utf-8") + b"\r\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            raise SelfTestFailed("the GAHP stopped reading its input%s" % self.stderr_tail()) from None

    def command(self, line: str, timeout: float) -> str:
        self.send(line)
        while True:
            reply = self.line(timeout)
            if reply != "R":
                return reply

    def request(self, name: str, reqid: str, args: Sequence[str], timeout: float) -> None:
        reply = self.command(" ".join([name, reqid] + [quote_arg(a) for a in args]), timeout)
        if reply != "S":
            raise SelfTestFailed("%s was not accepted: %r" % (name, reply))

    def result(self, reqid: str, timeout: float, reply_timeout: float) -> List[str]:
        deadline = time.monotonic() + timeout
        while reqid not in self._results:
            fields = read_argv(self.command("RESULTS", reply_timeout))
            if not fields or fields[0] != "S":
                raise SelfTestFailed("bad RESULTS reply: %r" % fields)
            for _ in range(int(fields[1])):
                row = read_argv(self.line(reply_timeout))
                self._results[row[0]] = row
            if reqid in self._results:
                break
            if time.monotonic() > deadline:
                raise SelfTestFailed("no result for request %s within %.0f s" % (reqid, timeout))
            time.sleep(0.2)
        return self._results.pop(reqid)

    def close(self, timeout: float = 10.0) -> Optional[int]:
        if self.proc.poll() is None:
            try:
                self.send("QUIT")
            except SelfTestFailed:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        return self.proc.returncode


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
        gahp = GahpPipe(argv, env=env)
    except OSError as e:
        res.error = "cannot run %s: %s" % (argv[0], e.strerror or e)
        rep.step("FAILED: " + res.error)
        return res
    try:
        banner = gahp.line(reply_timeout)
        if not banner.startswith("$GahpVersion"):
            raise SelfTestFailed("first line is not a GAHP banner: %r" % banner[:200])
        rep.step("banner: %s" % banner)
        commands = gahp.command("COMMANDS", reply_timeout).split()
        absent = [c for c in REQUIRED_COMMANDS if c not in commands]
        if commands[:1] != ["S"] or absent:
            raise SelfTestFailed("COMMANDS lacks %s: %r" % (", ".join(absent), " ".join(commands)))
        rep.step("COMMANDS: %d commands" % (len(commands) - 1))
        gahp.request("BLAH_PING", "2", [lrms], reply_timeout)
        row = gahp.result("2", reply_timeout, reply_timeout)
        if row[1:2] != ["0"]:
            raise SelfTestFailed("BLAH_PING %s failed: %s" % (lrms, " ".join(row[1:])))
        rep.step("BLAH_PING %s: %s" % (lrms, " ".join(row[1:])))
        gahp.request("BLAH_JOB_SUBMIT", "3", [echo_job_ad(lrms, iwd, name)], reply_timeout)
        row = gahp.result("3", timeout, reply_timeout)
        if row[1:2] != ["0"] or len(row) < 4:
            raise SelfTestFailed("submit failed: %s" % " ".join(row[1:]))
        res.job_id = row[3]
        rep.step("submitted /bin/echo Hello in %s: job %s" % (iwd, res.job_id))
        reqid = 3
        deadline = time.monotonic() + timeout
        last = None
        while True:
            reqid += 1
            gahp.request("BLAH_JOB_STATUS", str(reqid), [res.job_id], reply_timeout)
            row = gahp.result(str(reqid), reply_timeout, reply_timeout)
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
