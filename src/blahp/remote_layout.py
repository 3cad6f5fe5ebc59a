"""The head-node side of ``blahp-bootstrap``, as text: the probe script, its parsing, batch-system
detection, the interpreter choice, the ``bin/blahpd`` launcher and ``blah.config``.

Pure (no SSH, no I/O) so that every decision can be tested without a head node.
"""
from __future__ import annotations

import re
import shlex
from typing import Dict, List, Optional, Sequence, Tuple

from . import __version__

LRMS = ("slurm", "pbs", "lsf", "sge", "condor")
# pyblahp's own "local" backend runs jobs on the head node itself: never detected, only asked for.
INSTALLABLE = LRMS + ("local",)
ALIASES = {"htcondor": "condor"}
# First match wins: Slurm's torque wrappers and Grid Engine both ship a qsub, so the tools that
# only one system has come first.
DETECT_ORDER = (("sbatch", "slurm"), ("qconf", "sge"), ("qsub", "pbs"), ("bsub", "lsf"),
                ("condor_submit", "condor"))
PROBED_COMMANDS = ("sbatch", "squeue", "qsub", "qstat", "qconf", "bsub", "condor_submit")
# The command whose directory becomes <lrms>_binpath.
SUBMIT_TOOL = {"slurm": "sbatch", "sge": "qsub", "pbs": "qsub", "lsf": "bsub", "condor": "condor_submit"}
PYTHON_NAMES = ("python3.14", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python3")
FLOOR = (3, 9)

# Paths relative to the remote home (SFTP starts there, as the shell's ``~``).
LAUNCHER = "glite/bin/blahpd"
ZIPAPP = "glite/lib/pyblahp.pyz"
CONFIG = "glite/etc/blah.config"
RECORD = "glite/etc/pyblahp-install.json"
DIRS = ("glite/bin", "glite/lib", "glite/etc", "glite/log", "sandbox")
LAUNCHER_MARK = "pyblahp blahpd launcher"
CONFIG_MARK = "written by blahp-bootstrap"

_BEGIN = "@@pyblahp-probe-begin@@"
_END = "@@pyblahp-probe-end@@"
_BASE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class LayoutError(Exception):
    """A decision that cannot be made (no batch system, no usable Python): one line for the user."""


def check_base(name: str) -> str:
    """``-b NAME``: one plain directory name under the remote home (no slashes, no dot-dot)."""
    if not _BASE_RE.match(name) or name in (".", ".."):
        raise LayoutError("bad base directory name %r: one name under the home directory, "
                          "letters, digits, '_', '.', '-'" % name)
    return name


def normalise_lrms(name: str) -> str:
    n = ALIASES.get(name.lower(), name.lower())
    if n not in INSTALLABLE:
        raise LayoutError("unknown batch system %r (one of %s, htcondor, local)" % (name, ", ".join(LRMS)))
    return n


def probe_script(base: str, python: Optional[str] = None) -> str:
    """Shell text run in the login shell: home, batch tools, interpreters, what ~/<base> holds.

    Markers delimit the answer, so whatever the login shell prints first does not matter.
    """
    pythons = shlex.quote(python) if python else " ".join(PYTHON_NAMES)
    files = " ".join(shlex.quote(f) for f in (LAUNCHER, ZIPAPP, CONFIG, RECORD))
    b = shlex.quote(base)
    return "\n".join([
        "echo %s" % _BEGIN,
        'echo "home $HOME"',
        'echo "uname $(uname -sm 2>/dev/null)"',
        "for c in %s; do p=$(command -v \"$c\" 2>/dev/null) && echo \"cmd $c $p\"; done" % " ".join(PROBED_COMMANDS),
        "for py in %s; do p=$(command -v \"$py\" 2>/dev/null) || continue; "
        "v=$(\"$p\" -c 'import sys; print(\"%%d.%%d.%%d\" %% sys.version_info[:3])' 2>/dev/null) "
        "&& echo \"python $v $p\"; done" % pythons,
        "[ -d \"$HOME\"/%s ] && echo 'exists .'" % b,
        "for f in %s; do [ -e \"$HOME\"/%s/\"$f\" ] && echo \"exists $f\"; done" % (files, b),
        "echo %s" % _END,
    ])


class Probe:
    """What the probe found on the head node."""

    def __init__(self) -> None:
        self.home = ""
        self.uname = ""
        self.commands: Dict[str, str] = {}
        self.pythons: List[Tuple[Tuple[int, int, int], str]] = []
        self.existing: List[str] = []
        self.noise = ""


def parse_probe(stdout: str) -> Probe:
    if _BEGIN not in stdout or _END not in stdout:
        raise LayoutError("the head node's login shell did not run the probe (output: %r)" % stdout[-300:])
    head, _, rest = stdout.partition(_BEGIN + "\n")
    body = rest.partition(_END)[0]
    p = Probe()
    p.noise = head
    for line in body.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "home":
            p.home = value
        elif kind == "uname":
            p.uname = value
        elif kind == "cmd":
            name, _, path = value.partition(" ")
            if path.startswith("/"):  # aliases and functions print no path
                p.commands[name] = path
        elif kind == "python":
            ver, _, path = value.partition(" ")
            parts = ver.split(".")
            if len(parts) == 3 and all(x.isdigit() for x in parts) and path.startswith("/"):
                p.pythons.append(((int(parts[0]), int(parts[1]), int(parts[2])), path))
        elif kind == "exists":
            p.existing.append(value)
    return p


def detect_lrms(commands: Dict[str, str]) -> Tuple[Optional[str], str]:
    """(batch system or None, why) from the tools found in the login shell's PATH."""
    for tool, lrms in DETECT_ORDER:
        if tool in commands:
            found = ", ".join("%s=%s" % (c, commands[c]) for c in PROBED_COMMANDS if c in commands)
            return lrms, "%s found (%s)" % (tool, found)
    return None, "none of %s is on the login shell's PATH" % ", ".join(PROBED_COMMANDS)


def binpath(lrms: str, commands: Dict[str, str]) -> Optional[str]:
    if lrms not in SUBMIT_TOOL:
        return None
    path = commands.get(SUBMIT_TOOL[lrms])
    return path.rsplit("/", 1)[0] or "/" if path else None


def choose_python(found: Sequence[Tuple[Tuple[int, int, int], str]], minimum: Tuple[int, int],
                  problems: Dict[str, str], requested: Optional[str] = None) -> Tuple[str, Tuple[int, int, int]]:
    """The newest interpreter the bundle can run on; LayoutError naming what was found otherwise."""
    need = max(tuple(minimum), FLOOR)
    usable = [(v, p) for v, p in found if v[:2] >= need]
    if usable:
        v, p = max(usable, key=lambda vp: vp[0])
        return p, v
    if requested and not found:
        raise LayoutError("--python %s does not run on the head node" % requested)
    have = ", ".join("%s (%d.%d.%d)" % ((p,) + v) for v, p in found) or "no python3 on the login shell's PATH"
    why = ""
    for v, _ in found:
        reason = problems.get("%d.%d" % v[:2])
        if reason:
            why += "; on %d.%d: %s" % (v[0], v[1], reason)
    if found and max(v for v, _ in found)[:2] < FLOOR:
        lead = "the head node's Python is older than 3.9"
    else:
        lead = "no usable Python on the head node"
    raise LayoutError("%s: found %s; this pyblahp bundle needs Python >= %d.%d%s (install a newer python3 "
                      "there and pass --python PATH)" % (lead, have, need[0], need[1], why))


def launcher_text(python: str, base: str) -> str:
    """``bin/blahpd``: exec the zipapp with the chosen interpreter, printing nothing on stdout.

    ``-I``: the head node's PYTHONPATH and user site-packages must not shadow the bundled
    packages. BLAHPD_LOCATION defaults to this tree so that a direct start finds etc/blah.config.
    """
    return "\n".join([
        "#!/bin/sh",
        "# %s, written by blahp-bootstrap (pyblahp %s); re-run blahp-bootstrap to change it." % (
            LAUNCHER_MARK, __version__),
        "# Only the GAHP may write to stdout: errors here go to stderr.",
        "PYTHON=%s" % shlex.quote(python),
        "case $0 in",
        "  */*) glite=${0%/*}/.. ;;",
        "  *) glite=$HOME/%s/glite ;;" % base,
        "esac",
        'if [ ! -x "$PYTHON" ]; then',
        '  echo "blahpd: $PYTHON is not there any more; re-run blahp-bootstrap for this host" >&2',
        "  exit 1",
        "fi",
        'BLAHPD_LOCATION=${BLAHPD_LOCATION:-$glite}',
        "export BLAHPD_LOCATION",
        'exec "$PYTHON" -I "$glite/lib/pyblahp.pyz" "$@"',
        "",
    ])


def config_text(lrms: str, bin_dir: Optional[str], why: str, target: str, when: str) -> str:
    lines = ["# blah.config for pyblahp (shell syntax), %s %s for %s on %s." % (CONFIG_MARK, __version__,
                                                                                 target, when),
             "# Batch system: %s (%s)." % (lrms, why),
             "supported_lrms=%s" % lrms]
    if bin_dir:
        lines.append("%s_binpath=%s" % (lrms, shlex.quote(bin_dir)))
    elif lrms in SUBMIT_TOOL:
        lines.append("# %s_binpath: %s was not on the login shell's PATH; set it here" % (lrms, SUBMIT_TOOL[lrms]))
    return "\n".join(lines) + "\n"


# Run by the head node's interpreter on the uploaded (not yet renamed) archive: adds byte code
# beside every module, so each blahpd start skips compiling ~300 modules (0.56 s -> 0.2 s to the
# first result here). Unchecked hash-based pycs: the archive is immutable, and another Python
# (other magic number) falls back to the sources. Works on a copy so a failure leaves the
# archive as it was.
PRECOMPILE_SCRIPT = """\
import importlib.util, marshal, os, shutil, sys, zipfile
path, label = sys.argv[1], sys.argv[2]
if not zipfile.is_zipfile(path):
    sys.exit('not a zip archive: ' + path)
work = path + '.compiling'
shutil.copyfile(path, work)
n = 0
try:
    with zipfile.ZipFile(work, 'a', zipfile.ZIP_DEFLATED) as zf:
        names = set(zf.namelist())
        for name in sorted(names):
            if not name.endswith('.py') or name + 'c' in names:
                continue
            src = zf.read(name)
            try:
                code = compile(src, label + '/' + name, 'exec', dont_inherit=True)
            except SyntaxError:
                continue
            data = (importlib.util.MAGIC_NUMBER + (1).to_bytes(4, 'little') +
                    importlib.util.source_hash(src) + marshal.dumps(code))
            info = zipfile.ZipInfo(name + 'c', date_time=zf.getinfo(name).date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
            n += 1
    os.replace(work, path)
except BaseException:
    os.unlink(work)
    raise
sys.stdout.write("%d\\n" % n)  # the installer reads the count from the output
"""


def precompile_command(python: str, archive: str, label: str) -> str:
    """Shell command running PRECOMPILE_SCRIPT on ``archive`` (home-relative); ``label`` names
    the installed archive in tracebacks."""
    return " ".join(shlex.quote(w) for w in (python, "-I", "-c", PRECOMPILE_SCRIPT, archive, label))


def check_command(base: str, login: bool = True) -> str:
    """remote_gahp's blahpd command line (client.md §6.3), with ``-s`` for a one-shot check."""
    g = "~/%s/glite" % base
    inner = "BLAHPD_LOCATION=%s GLITE_LOCATION=%s %s/bin/blahpd -s" % (g, g, g)
    return ("/bin/bash -l -c " if login else "/bin/bash -c ") + shlex.quote(inner)
