"""The bash job wrapper every script-based backend appends after its directives (submit-ad.md §12).

Job data appears only as POSIX single-quoted words in assignments and in the payload's command
line; the wrapper's logic below is fixed text that never contains job data, so no argument,
environment value or path can change what the script does.
"""
from __future__ import annotations

import os
import shlex
from typing import List

from .config import Config
from .jobmodel import JobDescription

EXIT_RECORD_VERSION = "pyblahp_exit_v1"
FORWARDED_SIGNALS = ("HUP", "INT", "QUIT", "TERM", "XCPU", "USR1", "USR2")


def q(value: str) -> str:
    """POSIX single quoting, always quoted (also the empty string)."""
    return "'" + value.replace("'", "'\\''") + "'"


def default_exit_dir(home: str) -> str:
    return os.path.join(home, ".pyblahp", "exit")


# Fixed logic.  `set -m` gives the payload its own process group so a forwarded signal reaches
# everything it started; wait is repeated because a trapped signal interrupts it early.
# A batch system that SIGKILLs the job's process group (Grid Engine's qdel does) kills the
# wrapper but not that group: a watcher in a session of its own holds the read end of a pipe
# only the wrapper writes to, and kills the payload's group once the pipe closes -- when the
# wrapper dies, or exits leaving processes the payload started behind (as a batch system would).
_BODY = r'''
_pyb_batch_id=${SLURM_JOB_ID:-${PBS_JOBID:-${LSB_JOBID:-${JOB_ID:-}}}}
_pyb_host=$(hostname -f 2>/dev/null || hostname 2>/dev/null || echo unknown)
_pyb_start=$(date +%s)
_pyb_sig=0
_pyb_record() {
    mkdir -p "$_pyb_exitdir" 2>/dev/null || return 0
    local tmp
    tmp=$(mktemp "$_pyb_exitdir/.$_pyb_h12.XXXXXX" 2>/dev/null) || return 0
    {
        echo pyblahp_exit_v1
        echo "key=$_pyb_key"
        echo "batch_id=$_pyb_batch_id"
        if [ "$1" = exit ]; then
            echo "exit_code=$2"
            echo "signal=$3"
        fi
        echo "start=$_pyb_start"
        [ "$1" = exit ] && echo "end=$(date +%s)"
        echo "host=$_pyb_host"
        echo "reason=${4:-}"
    } > "$tmp" 2>/dev/null && mv -f "$tmp" "$_pyb_exitdir/$_pyb_h12.$1" 2>/dev/null || rm -f "$tmp"
}
_pyb_fail() {
    PATH=$_pyb_origpath
    echo "$2" >&2
    _pyb_record exit 1 0 "$1"
    exit 1
}
'''

_RUN = r'''
_pyb_record start
_pyb_watch=
if command -v setsid >/dev/null 2>&1; then
    exec 9> >(exec setsid /bin/bash -c 'read -r g || exit 0; cat >/dev/null; kill -KILL -- "-$g"' _pyb_watch \
        >/dev/null 2>&1)
    _pyb_watch=1
    _pyb_wpid=$!
    # until the watcher has its own session, a kill of the job's group would take it too
    read -r _ _ _ _ _ _pyb_sid _ < /proc/$$/stat 2>/dev/null
    _pyb_n=0
    while [ -n "$_pyb_sid" ] && [ "$_pyb_n" -lt 300 ] && read -r _ _ _ _ _ _pyb_wsid _ < "/proc/$_pyb_wpid/stat" \
            && [ "$_pyb_wsid" = "$_pyb_sid" ]; do
        sleep 0.01 2>/dev/null || break
        _pyb_n=$((_pyb_n + 1))
    done 2>/dev/null
fi
set -m
%(command)s 9>&- &
_pyb_pid=$!
set +m
[ -n "$_pyb_watch" ] && echo "$_pyb_pid" >&9
_pyb_forward() {
    _pyb_sig=$1
    kill -s "$1" -- "-$_pyb_pid" 2>/dev/null || kill -s "$1" "$_pyb_pid" 2>/dev/null
}
%(traps)s
while :; do
    wait "$_pyb_pid"
    _pyb_rc=$?
    kill -0 "$_pyb_pid" 2>/dev/null && continue
    # Gone.  A trapped signal may have cut the wait short and the payload exited (and was
    # reaped) before kill -0: ask once more for its real status (127: already reported).
    wait "$_pyb_pid" 2>/dev/null
    _pyb_w=$?
    [ "$_pyb_w" = 127 ] || _pyb_rc=$_pyb_w
    break
done
PATH=$_pyb_origpath  # the payload is done; the wrapper's own commands use the worker's PATH
_pyb_signal=0
if [ "$_pyb_rc" -gt 128 ]; then
    if [ "$_pyb_sig" != 0 ] || ! kill -0 -- "-$_pyb_pid" 2>/dev/null; then
        _pyb_signal=$((_pyb_rc - 128))
    fi
fi
%(remaps)s
_pyb_record exit "$_pyb_rc" "$_pyb_signal"
exit "$_pyb_rc"
'''


def render(job: JobDescription, config: Config, *, exit_dir: str) -> str:
    out: List[str] = []
    out.append("_pyb_key=%s" % q(job.key))
    out.append("_pyb_h12=%s" % q(job.h12))
    out.append("_pyb_exitdir=%s" % q(exit_dir))
    out.append("_pyb_origpath=$PATH")
    out.append(_BODY.strip("\n"))
    for name, value in job.environment:
        if name.startswith("_pyb_"):
            continue  # the wrapper's own variables (W12); a job must not export or replace them
        out.append("export %s=%s" % (name, q(value)))
    if any(n == "PATH" for n, _ in job.environment) and config.get("blah_merge_paths", "yes").lower() != "no":
        out.append('export PATH="$PATH:$_pyb_origpath"')
    for conf in config.get_list("blah_job_env_confs"):
        out.extend(_site_env_lines(conf))
    if job.proxy:
        out.append("export X509_USER_PROXY=%s" % q(job.proxy))
    if job.node_number is not None:
        out.append("export NODE_COUNT=%s" % q(str(job.node_number)))
    out.append("cd %s || _pyb_fail iwd 'Failed to CD to Initial Working Directory.'" % q(job.iwd))
    for src in job.transfer_input:
        if os.path.dirname(src) != job.iwd:
            out.append("PATH=$_pyb_origpath cp -p %s %s || _pyb_fail input %s" % (
                q(src), q("./" + os.path.basename(src)), q("Cannot copy input file " + src)))
    if job.stage_cmd:
        out.append("[ -x %s ] || PATH=$_pyb_origpath chmod u+x %s 2>/dev/null" % (q(job.cmd), q(job.cmd)))
    out.append(_RUN % {"command": _command_line(job, config), "traps": _traps(),
                       "remaps": _remaps(job)})
    return "\n".join(out) + "\n"


def _command_line(job: JobDescription, config: Config) -> str:
    words = []
    prefix = config.get("blah_job_wrapper")
    if prefix:
        words.extend(q(w) for w in shlex.split(prefix))
    words.append(q(job.cmd))
    if job.v1_args_raw is not None and config.get_bool("pyblahp_v1_args_shell"):
        # Compatibility switch: the C blahp pasted V1 Args unquoted (word-split and expanded
        # on the worker); only an admin can turn this on.
        words.append(job.v1_args_raw.replace("\n", " "))
    else:
        words.extend(q(a) for a in job.arguments)
    words.append("<" + q(job.stdin or "/dev/null"))
    words.append(">" + q(job.stdout or "/dev/null"))
    if job.stderr and job.stderr == job.stdout:
        words.append("2>&1")
    else:
        words.append("2>" + q(job.stderr or "/dev/null"))
    return " ".join(words)


def _traps() -> str:
    return "\n".join("trap '_pyb_forward %s' %s" % (s, s) for s in FORWARDED_SIGNALS)


def _remaps(job: JobDescription) -> str:
    lines = []
    for src, dst in job.remaps:
        dst_abs = dst if os.path.isabs(dst) else os.path.join(job.iwd, dst)
        lines.append("[ -e %s ] && mv -f %s %s" % (q(src), q(src), q(dst_abs)))
    return "\n".join(lines)


def _site_env_lines(path: str) -> List[str]:
    """An OSG job-environment file (trusted, written by the site admin), copied as is."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [ln.rstrip("\n") for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:
        return []


def parse_exit_record(text: str) -> dict:
    """The ``key=value`` lines of an exit or start record; {} if it is not one of ours."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != EXIT_RECORD_VERSION:
        return {}
    out = {}
    for ln in lines[1:]:
        k, sep, v = ln.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out
