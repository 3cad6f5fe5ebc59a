"""The ``gahp-shell`` session: typed commands in, rendered results out.

One ``Shell`` serves the interactive prompt (readline editing, history, completion, results of
background requests printed above the prompt as they arrive) and scripts (``-c``, stdin), where
the exit status says how things went: 0 when every command succeeded, 1 when one failed (an
``E``/``F`` reply, a non-zero result code, a watched job that did not complete with exit code 0),
2 on a usage error or when the server died or could not be started.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, TextIO

from gahp.escaping import read_argv
from gahp.shell.client import (RESULT_TIMEOUT, GahpTimeout, Interrupted, ProtocolError, ServerDied,
                               ShellClient)
from gahp.shell.complete import Completer, readline_hook
from gahp.shell.helptext import help_text
from gahp.shell.lines import (SHELL_COMMANDS, Request, UsageError, parse_ad, parse_status, raw_request,
                              render_ad, tokenize, unquote)
from gahp.shell.record import Recorder

LOCAL_COMMANDS = ("help", "jobs", "watch", "exit")
LAST_AWARE = ("status", "cancel", "hold", "resume", "refresh", "watch")
# requests whose first argument holds job ids (space-separated for status and cancel)
JOB_ID_COMMANDS = ("BLAH_JOB_STATUS", "BLAH_JOB_CANCEL", "BLAH_JOB_HOLD", "BLAH_JOB_RESUME",
                   "BLAH_JOB_REFRESH_PROXY")
ALL_COMMANDS = sorted(set(SHELL_COMMANDS) | set(LOCAL_COMMANDS))
PROMPT = "gahp> "
RAW_PROMPT = "gahp raw> "
WATCH_INTERVAL = 2.0
FINAL = (3, 4)

RED, GREEN, BOLD, DIM, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


@dataclass
class Job:
    reqid: str
    job_id: str
    command: str
    submitted: float
    state: str = "submitted"


@dataclass
class _Background:
    request: Request
    reply: str
    raw: List[str]


class Shell:
    def __init__(self, client: ShellClient, out: Optional[TextIO] = None, err: Optional[TextIO] = None,
                 color: bool = False, live: bool = False, recorder: Optional[Recorder] = None,
                 timeout: float = RESULT_TIMEOUT):
        self.client = client
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = color
        self.live = live                      # a terminal: live status lines, async printing
        self.recorder = recorder
        self.timeout = timeout
        self.jobs: List[Job] = []
        self.seen_ids: List[str] = []
        self.gahp_commands: List[str] = []
        self.background: Dict[str, _Background] = {}
        self.dead: Optional[ServerDied] = None
        self.at_prompt = False
        self.raw_mode = False                 # every line goes out verbatim (until a lone 'raw')
        self.busy = False                     # a typed command runs: the idle poller keeps out
        self.print_lock = threading.RLock()
        self.readline = None
        client.on_detached = self._late_result
        self.completer = Completer(ALL_COMMANDS, lambda: self.seen_ids + (["last"] if self.jobs else []),
                                   lambda: self.gahp_commands)

    @property
    def prompt(self) -> str:
        return RAW_PROMPT if self.raw_mode else PROMPT

    # -- output -------------------------------------------------------------------------
    def _paint(self, text: str, style: str) -> str:
        return "%s%s%s" % (style, text, RESET) if self.color and text and style else text

    def say(self, text: str = "", style: str = "") -> None:
        with self.print_lock:
            text = self._paint(text, style)
            if self.at_prompt and self.live and self.readline is not None:
                # above the line being typed: clear it, print, then draw prompt and input again
                buf = self.readline.get_line_buffer()
                self.out.write("\r\x1b[2K%s\n%s%s" % (text, self.prompt, buf))
            else:
                self.out.write(text + "\n")
            self.out.flush()

    def error(self, text: str) -> None:
        with self.print_lock:
            if self.at_prompt and self.live:
                self.say("gahp-shell: " + text, RED)
                return
            self.err.write(self._paint("gahp-shell: " + text, RED) + "\n")
            self.err.flush()

    def _live_line(self, text: str) -> None:
        with self.print_lock:
            self.out.write("\r\x1b[2K" + text)
            self.out.flush()

    # -- rendering ----------------------------------------------------------------------
    def _remember_id(self, job_id: str) -> None:
        if job_id and job_id not in self.seen_ids and "/" in job_id:
            self.seen_ids.append(job_id)

    def render_reply(self, request: Request, reply: str) -> None:
        if reply.startswith("S") and request.is_async:
            return
        style = "" if reply.startswith("S") else RED
        self.say(" ".join(read_argv(reply)) if reply else "", style)

    def render_result(self, request: Optional[Request], fields: List[str], index: int = 0) -> bool:
        """Print one result; returns whether it is a success (code 0)."""
        command = request.command if request else ""
        ok = len(fields) > 1 and fields[1] == "0"
        if command == "BLAH_JOB_STATUS" and len(fields) == 5:
            st = parse_status(fields)
            head = "%s %s %s" % (st.reqid, st.code, st.message)
            if st.code == 0:
                job_id = self._status_job_id(request, index)
                self._note_state(job_id, st.state)
                self.say(head + " " + self._paint("%s (%d)" % (st.state, st.job_status), BOLD))
                table = render_ad(st.ad)
                if table:
                    self.say(table)
            else:
                self.say(head, RED)
            return ok
        if command == "BLAH_JOB_SUBMIT" and len(fields) == 4 and ok:
            self._remember_id(fields[3])
            self.jobs.append(Job(fields[0], fields[3], _cmd_of(request), time.time()))
        self.say(" ".join(fields), "" if ok else RED)
        return ok

    @staticmethod
    def _status_job_id(request: Optional[Request], index: int) -> str:
        if request is None or not request.args:
            return ""
        ids = request.args[0].split()
        return ids[index] if index < len(ids) else ""

    def _note_state(self, job_id: str, state: str) -> None:
        self._remember_id(job_id)
        for job in self.jobs:
            if job.job_id == job_id:
                job.state = state

    # -- late results (requests sent with '&' or no longer waited for) -------------------
    def _late_result(self, command: str, fields: List[str], raw: str) -> None:
        rid = fields[0]
        base = rid.split(".", 1)[0]
        bg = self.background.get(base)
        request = bg.request if bg else None
        index = request.expect.index(rid) if request and rid in request.expect else 0
        self.render_result(request, fields, index)
        if bg is not None:
            bg.raw.append(raw)
            if len(bg.raw) == len(bg.request.expect):
                del self.background[base]
                if self.recorder:
                    self.recorder.exchange(bg.request, bg.reply, bg.raw)

    # -- commands -----------------------------------------------------------------------
    def execute(self, text: str) -> int:
        """Run one typed line: 0 success, 1 failure. Raises UsageError, ServerDied."""
        text = text.strip()
        if text.lower() == "raw":
            self.raw_mode = not self.raw_mode
            self.say("raw mode %s" % ("on: lines go out as typed; 'raw' alone or Ctrl-D ends it"
                                      if self.raw_mode else "off"), DIM)
            return 0
        if not text or (text.startswith("#") and not self.raw_mode):
            return 0
        first = text.split(None, 1)[0]
        if self.raw_mode or first.isupper():
            # a GAHP line typed as such (BLAH_PING 7 slurm): it goes out verbatim
            return self.run(raw_request(text))
        background = text.endswith("&") and not text.endswith("\\&")
        if background:
            text = text[:-1].rstrip()
        head = text.split(None, 1)[0].lower()
        if head in LAST_AWARE:
            text = self._expand_last(text)
        words = tokenize(text)[1:]
        if head == "help":
            self.say(help_text(words[0] if words else None))
            return 0
        if head == "jobs":
            self.show_jobs()
            return 0
        if head == "watch":
            if not words or len(words) > 2:
                raise UsageError("usage: watch JOBID [SECONDS]")
            interval = WATCH_INTERVAL
            if len(words) == 2:
                try:
                    interval = float(words[1])
                except ValueError:
                    raise UsageError("watch: SECONDS must be a number, got %r" % str(words[1])) from None
                if interval <= 0:
                    raise UsageError("watch: SECONDS must be positive")
            return self.watch(str(words[0]), interval)
        if head == "exit":
            raise EOFError
        if head not in ALL_COMMANDS:
            raise UsageError("unknown command %r ('help' lists the commands)" % text.split(None, 1)[0])
        request = self.client.maker.make(text)
        if request is None:
            return 0
        if head != "raw" and self.gahp_commands and request.command not in self.gahp_commands:
            raise UsageError("this server does not offer %s (its COMMANDS: %s)"
                             % (request.command, " ".join(self.gahp_commands)))
        if request.command == "RESULTS" and not request.is_async and self.recorder:
            self.recorder.comment("(RESULTS polled by hand here)")
        return self.run(request, background)

    def _expand_last(self, text: str) -> str:
        """``last`` as a job id: the job this shell submitted last (scripts cannot know ids)."""
        words = text.split()
        if "last" not in words[1:]:
            return text
        if not self.jobs:
            raise UsageError("no job submitted yet: 'last' stands for the job this shell submitted last")
        return " ".join(words[:1] + [self.jobs[-1].job_id if w == "last" else w for w in words[1:]])

    def run(self, request: Request, background: bool = False) -> int:
        if request.command in JOB_ID_COMMANDS and request.args:
            for job_id in request.args[0].split():
                self._remember_id(job_id)
        reply = self.client.send(request)
        self.render_reply(request, reply)
        if not request.is_async:
            if self.recorder and request.command != "RESULTS":
                self.recorder.sync(request.line, reply)
            if request.command == "QUIT" and reply.startswith("S"):
                raise EOFError  # the server is leaving: so does the shell
            return 0 if reply.startswith("S") else 1
        if not reply.startswith("S"):
            if self.recorder:
                self.recorder.exchange(request, reply, [])
            return 1
        if background:
            self.say("request %s sent; its results will be shown when they come" % request.reqid, DIM)
            self._detach(request, reply, [], 0)
            return 0
        ok = True
        raw: List[str] = []
        deadline = time.monotonic() + self.timeout
        for i, rid in enumerate(request.expect):
            try:
                fields = self.client.wait(rid, max(deadline - time.monotonic(), 0.0), request.command)
            except Interrupted:
                self.say("stopped waiting: the results of request %s will be shown when they come"
                         % request.reqid, DIM)
                self._detach(request, reply, raw, i)
                return 1
            except GahpTimeout as e:
                self.error(str(e))
                self._detach(request, reply, raw, i)
                return 1
            raw.append(self.client.raw.pop(rid, ""))
            ok = self.render_result(request, fields, i) and ok
        if self.recorder:
            self.recorder.exchange(request, reply, raw)
        return 0 if ok else 1

    def _detach(self, request: Request, reply: str, raw: List[str], done: int) -> None:
        """Stop waiting for the results of ``request`` from the ``done``-th on; they are printed
        (and recorded) when they come."""
        rest = Request(request.command, request.line, request.reqid, request.args, request.expect[done:])
        self.background[request.reqid] = _Background(request, reply, list(raw))
        self.client.detach(rest)

    def show_jobs(self) -> None:
        if not self.jobs:
            self.say("no jobs submitted from this shell")
            return
        width = max(len(j.job_id) for j in self.jobs)
        self.say("%-4s %-*s  %-10s %-8s %s" % ("REQ", width, "JOB ID", "STATE", "AT", "CMD"))
        for j in self.jobs:
            self.say("%-4s %-*s  %-10s %-8s %s" % (j.reqid, width, j.job_id, j.state,
                                                   time.strftime("%H:%M:%S", time.localtime(j.submitted)), j.command))

    def watch(self, job_id: str, interval: float) -> int:
        """Poll the job's status until it is final; 0 if it completed with exit code 0."""
        t0 = time.monotonic()
        polls = 0
        last_state = None
        last = None   # (request, reply, raw lines) of the latest poll, for the recording
        try:
            while True:
                request = self.client.maker.make("status " + job_id)
                self._remember_id(job_id)
                reply = self.client.send(request)
                if not reply.startswith("S"):
                    self.render_reply(request, reply)
                    return 1
                fields = self.client.wait(request.reqid, self.timeout, request.command)
                last = (request, reply, [self.client.raw.pop(request.reqid, "")])
                polls += 1
                if len(fields) != 5 or fields[1] != "0":
                    self._end_live()
                    self.render_result(request, fields)
                    return 1
                st = parse_status(fields)
                self._note_state(job_id, st.state)
                line = "%s  %s  %ds  (%d polls, every %gs; Ctrl-C stops)" % (
                    job_id, self._paint(st.state, BOLD), time.monotonic() - t0, polls, interval)
                if self.live:
                    self._live_line(line)
                elif st.state != last_state:
                    self.say("%s  %s  %ds" % (job_id, st.state, time.monotonic() - t0))
                last_state = st.state
                if st.job_status in FINAL:
                    self._end_live()
                    self.render_result(request, fields)
                    code = st.ad.get("ExitCode")
                    return 0 if st.job_status == 4 and code == "0" else 1
                if self.client.interrupt.wait(interval):
                    self.client.interrupt.clear()
                    raise Interrupted("watch stopped")
        except Interrupted:
            self._end_live()
            self.say("stopped watching %s (last seen %s)" % (job_id, last_state or "nothing"), DIM)
            return 1
        finally:
            if self.recorder and last is not None:
                self.recorder.exchange(*last)

    def _end_live(self) -> None:
        if self.live:
            with self.print_lock:
                self.out.write("\n")
                self.out.flush()

    # -- scripts ------------------------------------------------------------------------
    def run_script(self, commands: Iterable[str]) -> int:
        status = 0
        for text in commands:
            try:
                status = max(status, self.execute(text))
            except EOFError:
                break
            except UsageError as e:
                self.error(str(e))
                return 2
        return max(status, self.drain())

    def drain(self) -> int:
        """Wait (up to the result timeout) for the results of background requests."""
        deadline = time.monotonic() + self.timeout
        failed = 0
        while self.client.detached and time.monotonic() < deadline:
            self.client.service(poll_every=0.5)
            time.sleep(0.05)
        for rid, command in sorted(self.client.detached.items()):
            self.error("no result for request %s (%s) within %.0f s" % (rid, command, self.timeout))
            failed = 1
        return failed

    # -- interactive --------------------------------------------------------------------
    def setup_readline(self, history: Optional[str]) -> None:
        import readline
        self.readline = readline
        readline.set_completer_delims(" \t\n")
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        readline.set_completer(readline_hook(self.completer, readline))
        readline.set_history_length(1000)
        if history and os.path.exists(history):
            try:
                readline.read_history_file(history)
            except OSError as e:
                self.error("cannot read history %s: %s" % (history, e.strerror or e))

    def save_history(self, history: Optional[str]) -> None:
        if self.readline is not None and history:
            try:
                self.readline.write_history_file(history)
            except OSError as e:
                self.error("cannot write history %s: %s" % (history, e.strerror or e))

    def _poller(self, stop: threading.Event) -> None:
        while not stop.wait(0.1):
            if self.busy:
                continue  # the command's own waits poll and report; a watch sleeps between polls
            try:
                self.client.service()
            except ServerDied as e:
                self.dead = e
                self.error(str(e))
                if self.at_prompt:
                    os.kill(os.getpid(), signal.SIGINT)  # out of input(): the shell ends
                return
            except ProtocolError as e:
                self.error(str(e))

    def learn_commands(self) -> None:
        """What the server offers (COMMANDS): for completion, GAHP lines typed as such, and a
        clear refusal of a shell command the server lacks."""
        try:
            reply = self.client.sync("COMMANDS")
        except (GahpTimeout, ProtocolError):
            return
        self.gahp_commands = read_argv(reply)[1:] if reply.startswith("S") else []

    def interact(self, history: Optional[str] = None) -> int:
        self.learn_commands()
        self.setup_readline(history)
        self.say("connected: %s" % self.client.banner, DIM)
        self.say("type 'help' for the commands, Ctrl-D to leave", DIM)
        stop = threading.Event()
        poller = threading.Thread(target=self._poller, args=(stop,), name="gahp-shell-poller", daemon=True)
        poller.start()
        status = 0
        try:
            while self.dead is None:
                self.at_prompt = True
                try:
                    text = input(self.prompt)
                except KeyboardInterrupt:
                    self.at_prompt = False
                    if self.dead is not None:
                        break
                    self.out.write("\n")
                    continue
                except EOFError:
                    self.out.write("\n")
                    if self.raw_mode:
                        self.raw_mode = False
                        continue
                    break
                finally:
                    self.at_prompt = False
                if self.dead is not None:
                    break
                previous = signal.signal(signal.SIGINT, lambda *_: self.client.interrupt.set())
                try:
                    self.client.interrupt.clear()
                    self.busy = True
                    self.execute(text)
                except EOFError:
                    break
                except UsageError as e:
                    self.error(str(e))
                except GahpTimeout as e:
                    self.error(str(e))
                except ProtocolError as e:
                    self.error(str(e))
                except ServerDied as e:
                    self.dead = e
                    self.error(str(e))
                finally:
                    self.busy = False
                    signal.signal(signal.SIGINT, previous)
        finally:
            stop.set()
            poller.join(2)
            self.save_history(history)
        if self.dead is not None:
            status = 2
        return status


def _cmd_of(request: Optional[Request]) -> str:
    if request is None or not request.args:
        return ""
    ad = {k.lower(): v for k, v in parse_ad(request.args[0]).items()}
    cmd = unquote(ad.get("cmd", ""))
    args = unquote(ad.get("arguments", ad.get("args", "")))
    return (cmd + " " + args).strip()

