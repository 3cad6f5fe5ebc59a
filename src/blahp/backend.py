"""The adapter interface every batch system implements, and how adapters are found.

Adapters are registered as entry points in the group ``pyblahp.backends`` (``name =
module:Class``); pyblahp's own are declared in its pyproject.toml, a site's own package can
add more without touching pyblahp.
"""
from __future__ import annotations

import abc
import datetime
import os
import re
import shutil
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import trio

from .config import Config
from .jobid import JobRef, MalformedJobId, parse_dated
from .jobmodel import OPTIONS
from .records import JobAnswer, NativeRecord, merge_records
from .results import command_failure, tail
from .runner import CommandNotExecutable, CommandResult, CommandRunner

ENTRY_POINT_GROUP = "pyblahp.backends"


def requested(job: Any, attributes: Sequence[str]) -> Dict[str, Any]:
    """{attribute: value} of the ``attributes`` the job asks for (set, not 0 or false)."""
    return {attr: getattr(job, field) for field, attr, _ in OPTIONS if attr in attributes and getattr(job, field)}


class QueryFailed(Exception):
    """The batch system could not be asked (command failed, timed out, printed garbage).

    Never evidence that a job is gone.
    """


class SubmitFailed(Exception):
    """The submit command did not give us a job.

    ``ambiguous``: it may have created one anyway (timeout, signal, transient error, exit 0
    without an id) -- the caller looks the job up by its key before reporting failure.
    """

    def __init__(self, code: int, message: str, ambiguous: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ambiguous = ambiguous


class CommandFailed(Exception):
    """A cancel/hold/release command failed: ``code`` and ``detail`` go into the result."""

    def __init__(self, code: int, detail: str, not_executable: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.not_executable = not_executable


class BackendContext:
    def __init__(self, config: Config, runner: CommandRunner, state_dir: str, log: Any,
                 home: Optional[str] = None) -> None:
        self.config = config
        self.runner = runner
        self.state_dir = state_dir
        self.log = log
        self.home = home or os.path.expanduser("~")
        self.command_timeout = config.get_float("pyblahp_command_timeout", 60.0, minimum=1.0)
        self.submit_timeout = config.get_float("pyblahp_submit_timeout", 180.0, minimum=1.0)


class Backend(abc.ABC):
    #: the ``gridtype`` / job-id prefix this adapter serves
    name = ""
    #: what a native batch id looks like (validated before any command sees it)
    batch_id_pattern = r"\d+"
    #: whether ``id@cluster`` is meaningful for this system
    clusters = False
    #: the batch commands ``blahpd --check`` looks for
    tools: Tuple[str, ...] = ()

    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.log = context.log.bind(lrms=self.name)

    def parse_job_id(self, raw: str) -> JobRef:
        """Raise jobid.MalformedJobId for anything that is not one of our ids."""
        ref = parse_dated(raw, self.batch_id_pattern, allow_cluster=self.clusters)
        if ref.lrms != self.name:
            raise MalformedJobId(raw)
        return ref

    # -- identity ----------------------------------------------------------------------
    def make_job_id(self, batch_id: str, cluster: Optional[str], when: datetime.datetime) -> str:
        return "%s/%s/%s%s" % (self.name, when.strftime("%Y%m%d"), batch_id, "@" + cluster if cluster else "")

    def cluster_key(self, cluster: Optional[str]) -> str:
        """Identity of the queue a snapshot describes (job ids restart at 1 per cluster)."""
        return cluster or ""

    # -- submission ----------------------------------------------------------------------
    #: ad attributes this system has no way to express (submit-ad.md §7 "—")
    unexpressed: Tuple[str, ...] = ()

    def ignored_attributes(self, job: Any) -> Dict[str, Any]:
        """{attribute: value} of this job's requests its submit script does not carry."""
        return requested(job, self.unexpressed)

    @abc.abstractmethod
    def render(self, job: Any, local_directives: Sequence[str], wrapper_text: str,
               batch_output: Optional[str]) -> str:
        """The batch script: directives, the site's local directives, extra args, the wrapper."""

    @abc.abstractmethod
    async def submit(self, job: Any, script_path: str) -> Tuple[str, Optional[str]]:
        """Run the submit command once; (batch id, cluster) or SubmitFailed."""

    @abc.abstractmethod
    async def find_by_key(self, job: Any) -> Optional[Tuple[str, Optional[str]]]:
        """The live batch job carrying this job's key, if any; QueryFailed if unknowable."""

    # -- status --------------------------------------------------------------------------
    @abc.abstractmethod
    async def bulk_query(self, cluster: Optional[str]) -> Dict[str, NativeRecord]:
        """Every job of this user in one query; QueryFailed when the answer is not usable."""

    async def resolve(self, cluster: Optional[str], ids: Sequence[str],
                      dates: Sequence[Optional[str]]) -> Dict[str, NativeRecord]:
        """Accounting/history for jobs the bulk query did not finish; QueryFailed on failure."""
        return {}

    def merge(self, bulk: NativeRecord, acct: Optional[NativeRecord]) -> NativeRecord:
        """One record from the bulk view and the accounting lookup of the same job."""
        return merge_records(bulk, acct)

    @abc.abstractmethod
    def map(self, record: NativeRecord, last_status: Optional[int]) -> Optional[JobAnswer]:
        """The GAHP view of a record; None when it says nothing about the job (missing)."""

    # -- control -------------------------------------------------------------------------
    @abc.abstractmethod
    async def cancel(self, ref: JobRef) -> Optional[bool]:
        """Cancel; a job that is already gone is success.  CommandFailed otherwise.

        False when the batch system says the job had already finished by itself: nothing was
        cancelled, so its own final state is reported, not REMOVED (a recorded C blahpd session:
        conformance/recordings/slurm/22-cancel-finished.gahp).  True or None: cancelled (or unknown)."""

    async def hold(self, ref: JobRef, status: int) -> None:
        raise CommandFailed(1, "Hold not supported by %s" % self.name)

    async def release(self, ref: JobRef) -> None:
        raise CommandFailed(1, "Hold not supported by %s" % self.name)

    async def ping(self) -> None:
        """Check that the batch system answers; raise QueryFailed with a one-line reason."""
        await self.bulk_query(None)

    async def check(self) -> List[Tuple[str, bool, str]]:
        """``blahpd --check``: (what, ok, detail) lines: where each of ``tools`` is, then one
        harmless query."""
        lines = await self._tools_found()
        try:
            await self.ping()
        except QueryFailed as e:
            return lines + [("%s query" % self.name, False, str(e))]
        return lines + [("%s query" % self.name, True, "answered")]

    async def _tools_found(self) -> List[Tuple[str, bool, str]]:
        """Each batch command as the backend's own commands will find it."""
        try:
            path = (await self.environment() or {}).get("PATH")
        except CommandNotExecutable:
            path = None  # the site environment's own failure is reported by the backend
        path = path or self.context.runner.environment.get("PATH")
        lines = []
        for tool in self.tools:
            found = shutil.which(self.binary(tool), path=path)
            lines.append(("%s found" % tool, found is not None, found or "not in PATH or %s_binpath" % self.name))
        return lines

    # -- helpers for adapters ------------------------------------------------------------
    #: failure texts (either stream) that mean the server was momentarily unreachable: such a
    #: command is tried once more, and a failed submit may still have created the job
    transient_errors: Tuple[str, ...] = ()
    #: the batch-script directive prefix (``#SBATCH``, ``#PBS``, ...)
    prefix = ""

    def is_transient(self, res: CommandResult) -> bool:
        text = res.stdout + res.stderr
        return any(p in text for p in self.transient_errors)

    def script_head(self, job: Any) -> List[str]:
        """The shebang and the comment that names the key (for an admin reading a script)."""
        from blahp import __version__
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return ["#!/bin/bash", "# pyblahp %s %s key=%s" % (__version__, stamp, job.key)]

    def batch_script(self, job: Any, local_directives: Sequence[str], wrapper_text: str,
                     batch_output: Optional[str]) -> str:
        """A ``render`` for script-based systems, in the order sites' scripts rely on: our
        ``directives``, the site's local directives, ``BatchExtraSubmitArgs``, the
        ``late_directives`` (what the C blahp puts last), then the wrapper."""
        local, extra = list(local_directives), self.extra_lines(job.extra_args)
        lines = self.script_head(job) + self.directives(job, batch_output) + local + extra
        lines += self.late_directives(job, local, extra)
        return "\n".join(lines) + "\n" + wrapper_text

    def directives(self, job: Any, batch_output: Optional[str]) -> List[str]:
        raise NotImplementedError("%s renders its own submit file" % type(self).__name__)

    def late_directives(self, job: Any, local: List[str], extra: List[str]) -> List[str]:
        return []

    def extra_lines(self, text: Optional[str]) -> List[str]:
        """``BatchExtraSubmitArgs``: one directive per line (real or ``\\n`` line breaks)."""
        out = []
        for line in re.split(r"\r?\n|\\n", text or ""):
            line = line.strip()
            if line:
                out.append(line if line.startswith(self.prefix) else "%s %s" % (self.prefix, line))
        return out

    async def run_submit(self, argv: Sequence[str], job: Any, stdin: Optional[bytes] = None) -> CommandResult:
        """The submit command, once, in the job's Iwd; every way it can fail as SubmitFailed."""
        timeout = self.context.submit_timeout
        try:
            res = await self.run(argv, timeout=timeout, cwd=job.iwd, stdin=stdin)
        except CommandNotExecutable as e:
            raise SubmitFailed(3, "Error executing the submission command: %s" % (e.error.strerror or e.error),
                               ambiguous=False) from None
        if res.timed_out:
            raise SubmitFailed(1, "submission command failed (timed out after %g s) %s"
                               % (timeout, command_failure(res)), ambiguous=True)
        if res.signal:
            raise SubmitFailed(1, "submission command failed (killed by signal %d) %s"
                               % (res.signal, command_failure(res)), ambiguous=True)
        if res.returncode != 0:
            raise SubmitFailed(res.returncode, "submission command failed (exit code = %d) %s"
                               % (res.returncode, command_failure(res)), ambiguous=self.is_transient(res))
        return res

    @staticmethod
    def no_job_id(res: CommandResult) -> SubmitFailed:
        """Exit 0 but no id we can read: the job may exist (looked up by its key)."""
        return SubmitFailed(8, "no jobId in submission script's output %s" % command_failure(res), ambiguous=True)

    async def query(self, argv: Sequence[str],
                    accept: Optional[Callable[[CommandResult], bool]] = None) -> CommandResult:
        """A status query, tried once more after a timeout or a transient error.

        QueryFailed unless it succeeded or ``accept`` takes its answer (a documented exit code
        for "no such job" or "no jobs"): a failed query is never read as an empty queue.
        """
        for attempt in (1, 2):
            try:
                res = await self.run(argv)
            except CommandNotExecutable as e:
                raise QueryFailed("cannot run %s: %s" % (argv[0], e.error.strerror or e.error)) from None
            if res.ok:
                return res
            if attempt == 1 and (res.timed_out or self.is_transient(res)):
                await trio.sleep(QUERY_RETRY_DELAY)
                continue
            if accept is not None and not res.timed_out and accept(res):
                return res
            break
        raise query_failure(argv[0], res)

    async def control(self, argv: Sequence[str], what: str, done: Sequence[str] = (),
                      finished: Sequence[str] = ()) -> bool:
        """cancel/hold/release: CommandFailed unless it worked or said one of ``done`` or
        ``finished`` (either stream: "job already gone" for a cancel); tried once more after a
        transient error.  False when it said one of ``finished`` (the job had ended by itself)."""
        for attempt in (1, 2):
            try:
                res = await self.run(argv)
            except CommandNotExecutable as e:
                raise CommandFailed(3, "Error executing the %s command: %s" % (what, e.error.strerror or e.error),
                                    not_executable=True) from None
            said = res.stdout + res.stderr
            if any(p in said for p in finished):
                return False
            if res.ok or any(p in said for p in done):
                return True
            if attempt == 1 and (res.timed_out or self.is_transient(res)):
                continue
            raise control_failure(res)
        raise AssertionError("unreachable")  # pragma: no cover
    def binary(self, name: str) -> str:
        """``<lrms>_binpath/name`` when configured (env vars expanded), else looked up in PATH."""
        binpath = self.context.config.get("%s_binpath" % self.name)
        if binpath:
            return os.path.join(os.path.expandvars(binpath), name)
        return name

    async def environment(self) -> Optional[Mapping[str, str]]:
        """Variables this system's commands need on top of blahpd's (a site file imported once).

        The runner is shared by every backend, so a backend's site environment stays its own.
        """
        return None

    async def run(self, argv: Sequence[str], *, timeout: Optional[float] = None, cwd: Optional[str] = None,
                  stdin: Optional[bytes] = None, env: Optional[Mapping[str, str]] = None) -> CommandResult:
        argv = list(argv)
        argv[0] = self.binary(argv[0])
        extra = dict(await self.environment() or {})
        extra.update(env or {})
        res = await self.context.runner.run(argv, timeout=timeout or self.context.command_timeout,
                                            cwd=cwd, stdin=stdin, env=extra or None)
        self.log.debug("batch command", argv=argv, rc=res.returncode, timed_out=res.timed_out,
                       seconds=round(res.duration, 3))
        return res


QUERY_RETRY_DELAY = 2.0


def ANY_EXIT_CODE(res: CommandResult) -> bool:
    """``query(accept=...)`` for a command whose exit codes the caller judges itself."""
    return True


def query_failure(command: str, res: CommandResult) -> QueryFailed:
    why = "timed out" if res.timed_out else "exit code %s" % res.returncode
    return QueryFailed("%s %s: %s" % (command, why, tail(res.stderr or res.stdout, 300)))


def control_failure(res: CommandResult) -> CommandFailed:
    return CommandFailed(res.returncode if res.returncode and res.returncode > 0 else 1, command_failure(res))


class SiteEnvironmentError(Exception):
    """A site's environment file (``profile.lsf``, ``settings.sh``) could not be sourced."""


async def source_environment(runner: CommandRunner, path: str, timeout: float,
                             overlay: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The variables bash has after sourcing ``path`` (run with ``overlay`` in its environment).

    The path is passed as ``$1``, never as part of the command text; what the file prints goes
    to stderr (it explains a failure).  The status of the file's last command is not a failure:
    profiles often end in a test that is false on this host.
    """
    argv = ["/bin/bash", "-c", '[ -r "$1" ] || { echo "$1: not readable" >&2; exit 66; }; . "$1" >&2; env -0',
            "pyblahp-site-environment", path]
    try:
        res = await runner.run(argv, timeout=timeout, env=dict(overlay or {}))
    except CommandNotExecutable as e:
        raise SiteEnvironmentError("cannot run bash: %s" % (e.error.strerror or e.error)) from None
    if not res.ok:
        why = "timed out" if res.timed_out else "exit code %s" % res.returncode
        raise SiteEnvironmentError("sourcing %s: %s %s" % (path, why, tail(res.stderr, 300)))
    env = {}
    for item in res.stdout.split("\0"):
        name, eq, value = item.partition("=")
        if eq and name and name not in _SHELL_VARS:
            env[name] = value
    return env


_SHELL_VARS = frozenset(("_", "PWD", "OLDPWD", "SHLVL"))  # bash's bookkeeping, not the site's


def current_user() -> str:
    import pwd
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _entry_points() -> List[Any]:
    from importlib import metadata
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, ()))  # Python 3.9


def discover(context: BackendContext, log: Any,
             extra: Optional[Dict[str, Callable[[BackendContext], Backend]]] = None) -> Dict[str, Backend]:
    """Instantiate every registered adapter; one that fails to load is logged and skipped."""
    found: Dict[str, Backend] = {}
    for ep in _entry_points():
        try:
            cls = ep.load()
            found[ep.name] = cls(context)
        except Exception as e:  # a broken site plugin must not take the server down
            log.error("backend failed to load", backend=ep.name, error="%s: %s" % (type(e).__name__, e))
    for name, factory in (extra or {}).items():
        found[name] = factory(context)
    return found
