"""``gahp-conformance``: replay session files against a GAHP server and report (conformance/README.md)."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Dict, List, Optional, Sequence, Set

import trio

from conformance import report
from conformance.envs import SIMS, make_run_root, prepare, remove_run_root
from conformance.replay import RESPONSE_BOUND, Outcome, Replay
from conformance.session import NEEDS, Session, SessionSyntaxError, parse

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sessions")
ALWAYS = {"protocol"}


class DuplicateName(ValueError):
    pass


def find_sessions(paths: Sequence[str]) -> List[Session]:
    """The sessions under ``paths`` (files or directories), each file once.

    A session's name keys its report line, ``-k`` and its JUnit test case, so names must be unique
    in a run: under the corpus it is the path from the corpus root (``local/restart``), the same
    however it was given; elsewhere the path from the directory given, or for a file from the
    current directory (an absolute path outside it).
    """
    sessions: List[Session] = []
    named: Dict[str, str] = {}
    seen: Set[str] = set()
    for top in paths or [CORPUS]:
        if os.path.isdir(top):
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs if f.endswith(".session"))
        else:
            files = [top]
        for path in files:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            name = session_name(path, top if os.path.isdir(top) else None)
            if name in named:
                raise DuplicateName("two sessions named %r: %s and %s (give them in separate runs, or rename one)"
                                    % (name, named[name], path))
            named[name] = path
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                sessions.append(parse(f.read(), path, name))
    return sessions


def session_name(path: str, directory: Optional[str] = None) -> str:
    full = os.path.abspath(path)
    base = os.getcwd() if directory is None else os.path.abspath(directory)
    for root in (CORPUS, base):
        if full.startswith(os.path.join(root, "")):
            full = os.path.relpath(full, root)
            break
    if full.endswith(".session"):
        full = full[: -len(".session")]
    return full.replace(os.sep, "/")


def available_needs(args: argparse.Namespace) -> Set[str]:
    have = set(ALWAYS) | {"local"}
    if not args.remote:
        have |= set(SIMS)
    for item in args.provide:
        have |= {x.strip() for x in item.split(",") if x.strip()}
    for item in args.exclude:
        have -= {x.strip() for x in item.split(",") if x.strip()}
    return have


def skip_reason(session: Session, have: Set[str], args: argparse.Namespace) -> Optional[str]:
    if session.needs not in have:
        hint = " (--provide %s)" % session.needs if session.needs not in SIMS else " (the runner must start the server itself)"
        return "needs %s, not available here%s" % (session.needs, hint)
    if args.remote and (session.config or session.meta.get("env")):
        return "sets the server's configuration or environment, which --remote cannot"
    return None


async def run_all(sessions: List[Session], args: argparse.Namespace, argv: List[str], base_config: str,
                  variables: Dict[str, str], scratch: str) -> List[Outcome]:
    have = available_needs(args)
    outcomes: Dict[int, Outcome] = {}
    limiter = trio.CapacityLimiter(max(1, args.jobs))

    async def one(i: int, session: Session) -> None:
        reason = skip_reason(session, have, args)
        if reason:
            outcomes[i] = Outcome(session, "skipped", reason=reason)
        else:
            async with limiter:
                outcomes[i] = await run_one(session, args, argv, base_config, variables, scratch)
        report.progress(outcomes[i], args)

    parallel = [(i, s) for i, s in enumerate(sessions) if not s.serial]
    serial = [(i, s) for i, s in enumerate(sessions) if s.serial]
    async with trio.open_nursery() as nursery:
        for i, s in parallel:
            nursery.start_soon(one, i, s)
    for i, s in serial:   # timing-sensitive sessions run alone
        await one(i, s)
    return [outcomes[i] for i in range(len(sessions))]


async def run_one(session: Session, args: argparse.Namespace, argv: List[str], base_config: str,
                  variables: Dict[str, str], scratch: str) -> Outcome:
    senv = prepare(session, base_config, not args.remote, variables, scratch)
    senv.keep = args.keep
    try:
        replay = Replay(session, argv, senv.env, senv.cwd, senv.variables,
                        sim=senv.sim_step if senv.sim_dir else None, response_bound=args.response_bound)
        outcome = await replay.run()
        if args.keep:
            outcome.failures and outcome.failures.append("scratch directory kept: %s" % senv.directory)
        return outcome
    finally:
        senv.cleanup()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gahp-conformance",
        description="Replay GAHP sessions against a GAHP server and check every reply byte for byte, "
                    "plus the gridmanager's hard rules.")
    p.add_argument("sessions", nargs="*", help="session files or directories (default: the installed corpus)")
    p.add_argument("--server", default="blahpd",
                   help="the server command, split like a shell would but never run by one "
                        "(e.g. 'ssh login.example.org blahpd'); default: blahpd")
    p.add_argument("--remote", action="store_true",
                   help="the server does not run with our environment (e.g. over ssh): skip sessions that "
                        "need a simulated batch system or set the server's config")
    p.add_argument("--provide", action="append", default=[], metavar="NEED",
                   help="a batch system the server can use (slurm, sge); repeatable or comma-separated")
    p.add_argument("--exclude", action="append", default=[], metavar="NEED",
                   help="do not run sessions that need this (e.g. local, for a server without the local backend)")
    p.add_argument("--config", metavar="FILE", help="blah.config text given to every server the runner starts")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a value for {NAME} in the sessions (workdir and home are set per session)")
    p.add_argument("-k", dest="select", action="append", default=[], metavar="TEXT",
                   help="only sessions whose name contains TEXT (repeatable)")
    p.add_argument("-j", "--jobs", type=int, default=4, help="sessions run at the same time (default 4)")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--require-all", action="store_true", help="a skipped session counts as a failure (CI)")
    p.add_argument("--response-bound", type=float, default=RESPONSE_BOUND,
                   help="seconds a reply may take (the gridmanager's GRIDMANAGER_GAHP_RESPONSE_TIMEOUT, 20)")
    p.add_argument("--keep", action="store_true", help="keep each session's scratch directory")
    p.add_argument("--scratch", metavar="DIR", help="where the run's scratch directory goes (default: $TMPDIR)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the whole exchange of failed sessions, and the steps each passed one ran")
    p.add_argument("--list", action="store_true", help="list the sessions and what they need, run nothing")
    p.add_argument("--record", metavar="FILE",
                   help="record mode: relay stdin to the server, and write the exchange as a session file")
    p.add_argument("--purpose", default="", help="with --record: the session's '@ purpose:'")
    p.add_argument("--needs", default="protocol", choices=NEEDS, help="with --record: the session's '@ needs:'")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    server = shlex.split(args.server)
    if not server:
        print("gahp-conformance: --server is empty", file=sys.stderr)
        return 2
    if os.sep in server[0] and not os.path.isabs(server[0]):
        server[0] = os.path.abspath(server[0])   # sessions run with their own working directory
    if args.record:
        from conformance.record import record
        return record(server, args.record, args.purpose, args.needs)
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print("gahp-conformance: --var wants NAME=VALUE, not %r" % item, file=sys.stderr)
            return 2
        variables[name] = value
    base_config = ""
    if args.config:
        with open(args.config) as f:
            base_config = f.read()
    try:
        sessions = find_sessions(args.sessions)
    except (OSError, SessionSyntaxError, DuplicateName) as e:
        print("gahp-conformance: %s" % e, file=sys.stderr)
        return 2
    if args.select:
        sessions = [s for s in sessions if any(t in s.name for t in args.select)]
    if args.list:
        for s in sessions:
            print("%-50s %-12s %s" % (s.name, s.needs, s.purpose))
        return 0
    if not sessions:
        print("gahp-conformance: no sessions to run", file=sys.stderr)
        return 2
    started = time.monotonic()
    scratch = make_run_root(args.scratch)
    try:
        outcomes = trio.run(run_all, sessions, args, server, base_config, variables, scratch)
    except BaseException:   # interrupted: no waiting for leftover jobs
        if not args.keep:
            remove_run_root(scratch, grace=0)
        raise
    elapsed = time.monotonic() - started
    report.summary(outcomes, elapsed, args, sys.stdout)
    if args.junit:
        report.write_junit(outcomes, elapsed, args.junit, " ".join(server))
    left = [] if args.keep else remove_run_root(scratch)
    if left:
        print("gahp-conformance: processes the sessions started still run (pids %s) and may re-create "
              "part of %s" % (" ".join(map(str, left)), scratch), file=sys.stderr)
    bad = [o for o in outcomes if o.status in ("failed", "error")]
    if args.require_all:
        bad += [o for o in outcomes if o.status == "skipped"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
