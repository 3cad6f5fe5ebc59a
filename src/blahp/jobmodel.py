"""The BLAH_JOB_SUBMIT ad turned into a validated job description (submit-ad.md §3–§9).

Everything a backend needs to render a batch script is checked here, once, with the documented
4-field error results; nothing user-supplied reaches a shell unvalidated or unquoted.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import argsenv
from .classad import ERROR, UNDEFINED, ClassAd, ClassAdSyntaxError, parse_ad, unparse
from .classad.unwind import unwind
from .config import Config

_GRIDTYPE = re.compile(r"[a-z0-9_]+\Z")
_CLUSTER = re.compile(r"[A-Za-z0-9_.-]+\Z")
_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DEFAULT_SUPPORTED = ("pbs", "lsf", "sge", "slurm", "condor", "nqs", "kubernetes", "flux", "sfapi", "local")


# job field, ad attribute, type (a _Reader method)
# (JobDescription field, ad attribute, type) of the resource and placement requests
OPTIONS = (("project", "BatchProject", "string"), ("runtime_s", "BatchRuntime", "integer"),
            ("memory_mb", "RequestMemory", "integer"), ("node_number", "NodeNumber", "integer"),
            ("smp_granularity", "SMPGranularity", "integer"), ("host_number", "HostNumber", "integer"),
            ("host_smp_size", "HostSMPSize", "integer"), ("whole_nodes", "WholeNodes", "boolean"),
            ("gpu_number", "GPUNumber", "integer"), ("gpu_model", "GPUModel", "string"),
            ("gpu_mode", "GPUMode", "string"), ("mic_number", "MICNumber", "integer"))


class SubmitError(Exception):
    """A submit request that cannot go ahead: ``code`` and ``message`` are the result fields."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(attr: str, reason: str) -> SubmitError:
    return SubmitError(1, "Invalid value for %s: %s" % (attr, reason))


class JobDescription:
    """Plain data; ``None`` means "not requested"."""

    def __init__(self) -> None:
        self.gridtype = ""
        self.ad: Optional[ClassAd] = None
        self.digest = ""
        self.key = ""
        self.h12 = ""
        self.job_directory: Optional[str] = None
        self.cmd = ""
        self.stage_cmd = True
        self.arguments: List[str] = []
        self.v1_args_raw: Optional[str] = None
        self.environment: List[Tuple[str, str]] = []
        self.iwd = ""
        self.stdin: Optional[str] = None
        self.stdout: Optional[str] = None
        self.stderr: Optional[str] = None
        self.proxy: Optional[str] = None
        self.queue: Optional[str] = None
        self.cluster: Optional[str] = None
        self.project: Optional[str] = None
        self.runtime_s: Optional[int] = None
        self.memory_mb: Optional[int] = None
        self.node_number: Optional[int] = None
        self.smp_granularity: Optional[int] = None
        self.host_number: Optional[int] = None
        self.host_smp_size: Optional[int] = None
        self.whole_nodes: Optional[bool] = None
        self.gpu_number: Optional[int] = None
        self.gpu_model: Optional[str] = None
        self.gpu_mode: Optional[str] = None
        self.mic_number: Optional[int] = None
        self.extra_args: Optional[str] = None
        self.transfer_input: List[str] = []
        self.transfer_output: List[str] = []
        self.remaps: List[Tuple[str, str]] = []
        self.attribute_lines: List[str] = []
        self.warnings: List[str] = []

    def destination(self) -> str:
        """``Queue`` as the ad wrote it: ``queue`` or ``queue@cluster`` (PBS server, Grid Engine
        host, LSF cluster); Slurm and HTCondor split it into their own options instead."""
        return "%s@%s" % (self.queue, self.cluster) if self.cluster else (self.queue or "")

    def summary(self) -> Dict[str, Any]:
        keep = ("gridtype", "key", "cmd", "iwd", "queue", "cluster", "runtime_s", "memory_mb", "node_number")
        return {k: getattr(self, k) for k in keep if getattr(self, k) not in (None, "", [])}


def job_name(h12: str) -> str:
    return "bl_" + h12


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]


class _Reader:
    """Typed, case-insensitive access to evaluated ad attributes (submit-ad.md §3)."""

    def __init__(self, ad: ClassAd, log: Any) -> None:
        self.ad = ad
        self.log = log

    def value(self, name: str) -> Any:
        if self.ad.lookup(name) is None:
            return UNDEFINED
        v = self.ad.evaluate(name)
        if v is ERROR:
            self.log.warning("submit attribute evaluates to ERROR; ignored", attribute=name)
            return UNDEFINED
        return v

    def string(self, name: str, single_line: bool = True) -> Optional[str]:
        v = self.value(name)
        if not isinstance(v, str) or v == "":
            return None
        if single_line and any(c in v for c in "\r\n\0"):
            raise _invalid(name, "contains a line break or NUL")
        return v

    def integer(self, name: str) -> Optional[int]:
        v = self.value(name)
        if isinstance(v, bool) or v is UNDEFINED or v is None:
            return None
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                raise _invalid(name, "not a finite number")
            v = int(math.ceil(v))  # 2000.0 is 2000 (the C blahp silently dropped it); 1.5 -> 2
        if not isinstance(v, int):
            raise _invalid(name, "expected an integer, got %s" % type(v).__name__)
        if v < 0:
            raise _invalid(name, "negative value %d" % v)
        return v

    def boolean(self, name: str) -> Optional[bool]:
        v = self.value(name)
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if v is UNDEFINED or v is None:
            return None
        raise _invalid(name, "expected a boolean")


def _under(path: str, prefixes: Sequence[str]) -> bool:
    if path == "/dev/null":
        return True
    for p in prefixes:
        p = p.rstrip("/") or "/"
        if p == "/" or path == p or path.startswith(p + "/"):
            return True
    return False


def _absolute(path: str, iwd: str) -> str:
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(iwd, path))


def parse_submit_ad(text: str) -> ClassAd:
    try:
        return parse_ad(text)
    except (ClassAdSyntaxError, RecursionError):
        raise SubmitError(1, "Error parsing classad") from None


def build_job(ad: ClassAd, config: Config, *, supported: Sequence[str], log: Any,
              cwd: Optional[str] = None, home: Optional[str] = None) -> JobDescription:
    """Validate the ad against submit-ad.md and return the job; raise SubmitError otherwise."""
    r = _Reader(ad, log)
    job = JobDescription()
    job.ad = ad
    job.digest = hashlib.sha256(unparse(ad).encode("utf-8", "surrogateescape")).hexdigest()

    gridtype = r.value("gridtype")
    if not isinstance(gridtype, str) or not gridtype:
        raise SubmitError(1, "Missing gridtype in submission classAd")
    if not _GRIDTYPE.match(gridtype) or gridtype not in supported:
        raise SubmitError(1, "Unsupported gridtype %s" % gridtype)
    job.gridtype = gridtype

    # Iwd before anything relative is resolved against it.
    iwd = r.string("Iwd")
    if iwd is None:
        if config.get_bool("blah_set_default_workdir_to_home") and home:
            iwd = home
        else:
            iwd = cwd
    if not iwd:
        raise SubmitError(1, "Iwd not specified and failed to determine current dir.")
    if not os.path.isabs(iwd):
        iwd = _absolute(iwd, cwd or "/")
    job.iwd = os.path.normpath(iwd)

    cmd = r.string("Cmd")
    if cmd is None:
        raise SubmitError(7, "Cannot parse Cmd attribute in classad")
    job.cmd = _absolute(cmd, job.iwd)
    stage = r.boolean("StageCmd")
    job.stage_cmd = True if stage is None else stage

    proxy = r.string("x509UserProxy")
    if proxy is not None:
        if not os.path.isabs(proxy) and r.string("Iwd") is None:
            raise SubmitError(1, "Relative x509UserProxy specified without Iwd")
        job.proxy = _absolute(proxy, job.iwd)
    elif config.get_bool("blah_require_proxy_on_submit"):
        raise SubmitError(1, "Missing x509UserProxy in submission classAd")
    if not config.get_bool("blah_disable_limited_proxy", True):
        raise SubmitError(1, "Unable to limit the proxy (limited proxies not supported)")

    try:
        job.arguments = argsenv.job_arguments(r.string("Arguments", False), r.string("Args", False))
    except argsenv.ArgumentsError as e:
        raise _invalid("Arguments", str(e)) from None
    if not r.string("Arguments", False):
        job.v1_args_raw = r.string("Args", False)
    delim = r.string("EnvDelim")
    try:
        job.environment, warnings = argsenv.job_environment(
            r.string("Environment", False), r.string("Env", False), delim)
    except argsenv.ArgumentsError as e:
        raise _invalid("Environment", str(e)) from None
    for w in warnings:
        log.warning("environment entry dropped", detail=w)
    job.warnings.extend(warnings)

    for attr, field in (("In", "stdin"), ("Out", "stdout"), ("Err", "stderr")):
        v = r.string(attr)
        if v is not None:
            setattr(job, field, _absolute(v, job.iwd))

    queue = r.string("Queue")
    if queue is not None:
        part, at, cluster = queue.partition("@")
        if at:
            if not _CLUSTER.match(cluster):
                raise _invalid("Queue", "bad cluster name %r" % cluster)
            job.cluster = cluster
        if not part or any(c.isspace() for c in part):
            raise _invalid("Queue", "bad queue name %r" % part)
        job.queue = part
    for field, attr, kind in OPTIONS:
        setattr(job, field, getattr(r, kind)(attr))
    job.extra_args = r.string("BatchExtraSubmitArgs", single_line=False)

    job.job_directory = r.string("JobDirectory")
    if job.job_directory is not None and not re.fullmatch(r"[A-Za-z0-9_.@:+=,-]+", job.job_directory):
        raise _invalid("JobDirectory", "unexpected characters")
    job.key = job.job_directory or "uuid_" + uuid.uuid4().hex
    job.h12 = key_hash(job.key)

    try:
        job.transfer_input = [_absolute(f, job.iwd) for f in argsenv.split_transfer_list(r.string("TransferInput", False))]
        job.transfer_output = argsenv.split_transfer_list(r.string("TransferOutput", False))
        if job.transfer_output:
            job.remaps = argsenv.parse_remaps(r.string("TransferOutputRemaps", False))
    except argsenv.ArgumentsError as e:
        raise _invalid("TransferOutputRemaps", str(e)) from None

    _check_files(job, config)
    job.attribute_lines = attribute_lines(ad, config, log)
    return job


def _check_files(job: JobDescription, config: Config) -> None:
    if not os.path.isdir(job.iwd) or not os.access(job.iwd, os.X_OK):
        raise SubmitError(1, "Failed to CD to Initial Working Directory.")
    shared = [p for p in (config.get("blah_shared_directories") or "/").split(":") if p.startswith("/")] or ["/"]
    paths = [job.iwd, job.stdin, job.stdout, job.stderr] + job.transfer_input
    if job.stage_cmd:
        paths.append(job.cmd)
    for p in paths:
        if p and not _under(p, shared):
            raise SubmitError(1, "File %s is not on a shared directory and %s staging is not supported"
                              % (p, job.gridtype))
    for f in job.transfer_input + ([job.stdin] if job.stdin else []):
        if not os.path.exists(f):
            raise SubmitError(1, "Input sandbox file doesn't exist: %s" % f)


def _quote_value(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


def attribute_lines(ad: ClassAd, config: Config, log: Any) -> List[str]:
    """The ``Name='value'`` lines of the real blahpd's ``-C`` file (submit-ad.md §10.1)."""
    lines: List[str] = []
    if config.get_bool("blah_pass_all_submit_attributes"):
        names = [n for n, _ in ad.items()]
    else:
        names = config.get_array("blah_pass_submit_attributes") + ["VirtualOrganisation"]
    seen = set()
    for name in names:
        folded = name.lower()
        if folded in seen or not _ATTR_NAME.match(name):
            continue
        seen.add(folded)
        if ad.lookup(name) is None:
            continue
        v = ad.evaluate(name)
        if isinstance(v, str):
            lines.append("%s=%s" % (ad.name_of(name) or name, _quote_value(v)))
    setup = config.get_array("local_submit_attributes_setup_args") or config.get_list("local_submit_attributes_setup_args")
    for name in setup + ["CERequirements"]:
        expr = ad.lookup(name)
        if expr is None:
            continue
        for line in unwind(expr):
            if _ATTR_NAME.match(line.split("=", 1)[0].split("[", 1)[0]):
                lines.append(line)
            else:
                log.warning("unwound CERequirements line skipped", line=line)
    return lines
