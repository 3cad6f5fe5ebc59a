"""``gahp-shell``: an admin's shell for a GAHP server.

    gahp-shell                          the local blahpd, interactive
    gahp-shell --ssh user@host          blahpd on a cluster login node, through gahp-ssh
    gahp-shell -- /path/to/blahpd -x    any GAHP server, started from this argv
    gahp-shell -c 'ping slurm; status slurm/20261122/123'
    gahp-shell < commands.txt           a script on stdin (when stdin is not a terminal)
    gahp-shell --record s.session       also write what happened as a conformance session

Scripts exit 0 when every command succeeded, 1 when one failed, 2 on a usage error or when
the server died or could not be started (see gahp.shell.interactive).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Dict, List, Optional, Sequence, TextIO, Union

from gahp.shell.client import INHERIT, RESULT_TIMEOUT, ProtocolError, ServerDied, ShellClient
from gahp.shell.interactive import ALL_COMMANDS, LOCAL_COMMANDS, Shell
from gahp.shell.lines import LineMaker, UsageError, split_commands
from gahp.shell.record import Recorder

HISTORY_ENV = "GAHP_SHELL_HISTORY"


def default_server() -> List[str]:
    """The blahpd installed beside this interpreter (a venv's bin), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "blahpd")
    return [here] if os.access(here, os.X_OK) else ["blahpd"]


def ssh_server(destination: str, options: Sequence[str], gahp: str) -> List[str]:
    return [sys.executable, "-m", "gahp.ssh.launcher"] + list(options) + [destination, gahp]


def check_script(items: Sequence[str]) -> None:
    """Raise UsageError for the first command that cannot be run: a typo must not leave half a
    script executed."""
    maker = LineMaker(read_file=lambda path: "[ ]")
    for text in items:
        text = text.strip()
        if text.endswith("&"):
            text = text[:-1]
        words = text.split(None, 1)
        if words and (words[0].lower() in LOCAL_COMMANDS or words[0].isupper()):
            continue  # shell-only commands; GAHP lines typed as such are the server's to judge
        if words and words[0].lower() not in ALL_COMMANDS and not words[0].startswith("#"):
            raise UsageError("unknown command %r ('help' lists the commands)" % words[0])
        maker.make(text)


def run_script(commands: Union[str, Sequence[str]], client: Optional[ShellClient] = None,
               server: Sequence[str] = ("blahpd",), env: Optional[Dict[str, str]] = None,
               out: Optional[TextIO] = None, err: Optional[TextIO] = None,
               timeout: float = RESULT_TIMEOUT, recorder: Optional[Recorder] = None,
               color: bool = False, server_stderr=None) -> int:
    """Run typed commands (a ``-c`` script or a list) and return the script exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        items = split_commands(commands) if isinstance(commands, str) else list(commands)
        check_script(items)
    except UsageError as e:
        err.write("gahp-shell: %s\n" % e)
        return 2
    own = client is None
    try:
        if own:
            client = ShellClient(list(server), env=env, stderr=server_stderr)
        shell = Shell(client, out=out, err=err, recorder=recorder, timeout=timeout, color=color)
        if recorder is not None:
            _record_start(client, recorder)
        return shell.run_script(items)
    except (ServerDied, ProtocolError) as e:
        err.write("gahp-shell: %s\n" % e)
        return 2
    finally:
        if own and client is not None:
            client.close()


def _record_start(client: ShellClient, recorder: Recorder) -> None:
    """The ASYNC_MODE_ON exchange the client made on connecting."""
    sent = [line for kind, line in client.transcript if kind == ">"]
    got = [line for kind, line in client.transcript if kind == "<" and not line.startswith("$GahpVersion")]
    recorder.comment("server banner: %s" % client.banner)
    if sent[:1] == ["ASYNC_MODE_ON"] and got:
        recorder.sync(sent[0], got[0])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gahp-shell", description="Interactive shell (and script runner) for a GAHP server such as blahpd.",
        epilog="Type 'help' in the shell for its commands.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ssh", metavar="USER@HOST[:PORT]",
                       help="run the GAHP on a remote host through gahp-ssh")
    where.add_argument("--server", metavar="CMD",
                       help="server command line, split as a shell would (default: the local blahpd)")
    p.add_argument("--ssh-args", action="append", default=[], metavar="ARGS",
                   help="options for gahp-ssh, split as a shell would (repeatable), "
                        "e.g. --ssh-args '--rgahp-key ~/.ssh/bosco_key.rsa'")
    p.add_argument("--gahp", default="blahpd", help="with --ssh: the GAHP to start there (default: blahpd)")
    p.add_argument("-c", dest="script", metavar="SCRIPT", help="run these ';'-separated commands and exit")
    p.add_argument("--record", metavar="FILE", help="write the exchange as a gahp-conformance session")
    p.add_argument("--purpose", help="with --record: the session's '@ purpose:'")
    p.add_argument("--needs", help="with --record: the session's '@ needs:' (default: from the job ids)")
    p.add_argument("--timeout", type=float, default=RESULT_TIMEOUT, help="seconds to wait for each result")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--history", default=None, metavar="FILE",
                   help="history file (default: $%s or ~/.gahp_shell_history; '' for none)" % HISTORY_ENV)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server_argv: Optional[List[str]] = None
    if "--" in argv:
        cut = argv.index("--")
        argv, server_argv = argv[:cut], argv[cut + 1:]
        if not server_argv:
            sys.stderr.write("gahp-shell: nothing after '--' (the server's command line)\n")
            return 2
    try:
        a = _parser().parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    if server_argv is not None and (a.ssh or a.server):
        sys.stderr.write("gahp-shell: give the server either after '--' or with --server/--ssh, not both\n")
        return 2
    if server_argv is None:
        if a.ssh:
            server_argv = ssh_server(a.ssh, [w for words in a.ssh_args for w in shlex.split(words)], a.gahp)
        elif a.server:
            server_argv = shlex.split(a.server)
        else:
            server_argv = os.environ.get("GAHP_SHELL_SERVER") and shlex.split(os.environ["GAHP_SHELL_SERVER"]) \
                or default_server()
    recorder = Recorder(server_argv, os.getcwd()) if a.record else None
    out = sys.stdout
    color = a.color == "always" or (a.color == "auto" and out.isatty() and not os.environ.get("NO_COLOR")
                                    and os.environ.get("TERM") != "dumb")
    try:
        if a.script is not None or not sys.stdin.isatty():
            script = a.script if a.script is not None else sys.stdin.read()
            return run_script(script, server=server_argv, timeout=a.timeout, recorder=recorder, color=color,
                              server_stderr=_server_stderr(a))
        return _interactive(server_argv, a, recorder, color)
    except KeyboardInterrupt:
        sys.stderr.write("gahp-shell: interrupted\n")
        return 130
    finally:
        if recorder is not None:
            _write_session(recorder, a)


def _interactive(server_argv: List[str], a: argparse.Namespace, recorder: Optional[Recorder], color: bool) -> int:
    history = a.history
    if history is None:
        history = os.environ.get(HISTORY_ENV) or os.path.expanduser("~/.gahp_shell_history")
    try:
        client = ShellClient(server_argv, stderr=_server_stderr(a))
    except (ServerDied, ProtocolError) as e:
        sys.stderr.write("gahp-shell: %s\n" % e)
        return 2
    try:
        shell = Shell(client, color=color, live=sys.stdout.isatty(), recorder=recorder, timeout=a.timeout)
        if recorder is not None:
            _record_start(client, recorder)
        return shell.interact(history or None)
    finally:
        client.close(timeout=10)


def _server_stderr(a: argparse.Namespace):
    """gahp-ssh's one-line errors (refused, host key, authentication) must reach the admin; a
    local server's stderr would only scribble over the prompt."""
    return INHERIT if a.ssh else None


def _write_session(recorder: Recorder, a: argparse.Namespace) -> None:
    try:
        with open(a.record, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(recorder.session(a.purpose, a.needs))
    except OSError as e:
        sys.stderr.write("gahp-shell: cannot write %s: %s\n" % (a.record, e.strerror or e))
        return
    sys.stderr.write("gahp-shell: session recorded into %s (replay: gahp-conformance --server ... %s)\n"
                     % (a.record, a.record))


if __name__ == "__main__":
    sys.exit(main())
