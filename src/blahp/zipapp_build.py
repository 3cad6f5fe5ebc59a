"""Build ``pyblahp.pyz``: blahpd and its pure-Python runtime as one self-contained zipapp.

The head node gets no pip, no venv and no compiler (client.md §8, pitfalls.md D5): the zipapp
carries ``gahp``, ``blahp`` (with ``blahp.backends`` and ``blahp.classad``) and the runtime
distributions they need, copied from the environment that builds it. CE-only code (``gahp.ssh``,
the installer itself, asyncssh and cryptography) stays out, and so does anything compiled: a
``.so`` built for the CE's Python would not load on the head node's.

Backends are found through the ``pyblahp.backends`` entry points (blahp/backend.py); a
``pyblahp-<version>.dist-info`` with those entry points is written into the archive, where
importlib.metadata finds it because the archive is the first sys.path entry.

Standard library only: this runs on the CE from whatever environment pyblahp is installed in.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import sys
import zipfile
from importlib import metadata
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# Distributions only the CE side needs (gahp-ssh, blahp-bootstrap).
CE_ONLY_DISTRIBUTIONS = frozenset(("asyncssh", "cryptography", "cffi", "pycparser", "bcrypt"))
# Modules of our own packages that only the CE runs; kept out so the archive never imports asyncssh.
CE_ONLY_PATHS = ("gahp/ssh/", "blahp/remote_install.py", "blahp/remote_layout.py", "blahp/remote_selftest.py",
                 "blahp/zipapp_build.py")
OWN_PACKAGES = ("gahp", "blahp", "blahp.backends", "blahp.classad")
ENTRY_POINT_GROUP = "pyblahp.backends"
MANIFEST = "pyblahp-bundle.json"
# The oldest Python the installer accepts at all, whatever the bundled distributions say.
FLOOR = (3, 9)
# Minor versions the bundle is judged against; newer ones are assumed to behave like the last.
CANDIDATES = tuple((3, m) for m in range(9, 15))
# A fixed timestamp makes two builds of the same tree byte-identical.
_DATE = (2020, 1, 1, 0, 0, 0)
_COMPILED_SUFFIXES = tuple(set(importlib.machinery.EXTENSION_SUFFIXES) | {".so", ".pyd", ".dylib", ".dll"})
_SKIPPED_METADATA = frozenset(("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"))

MAIN_TEMPLATE = '''\
# pyblahp zipapp entry (written by blahp.zipapp_build); stdout belongs to the GAHP protocol
import sys
if sys.version_info[:2] < {min!r}:
    sys.stderr.write("blahpd: this pyblahp bundle needs Python >= {min_text}, not %s (%s)\\n"
                     % (sys.version.split()[0], sys.executable))
    sys.exit(1)
from blahp.cli import run
run()
'''


class BuildError(Exception):
    """The environment cannot produce a usable bundle (missing distribution, compiled module)."""


class BuildResult:
    def __init__(self, path: str, size: int, sha256: str, manifest: dict) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.manifest = manifest

    @property
    def min_python(self) -> Tuple[int, int]:
        return tuple(self.manifest["min_python"])  # type: ignore[return-value]


# --- requirement and marker handling (no ``packaging`` on purpose: it may not be installed) ------

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(req: str) -> Tuple[str, str]:
    """``"trio>=0.22; python_version < '3.11'"`` -> (``"trio"``, marker text or "")."""
    spec, _, marker = req.partition(";")
    m = _NAME_RE.match(spec)
    if not m:
        raise BuildError("cannot parse requirement %r" % req)
    return normalise(m.group(1)), marker.strip()


def _version_tuple(text: str) -> Tuple[int, ...]:
    parts = []
    for p in text.split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group(0)))
    return tuple(parts)


_MARKER_TOKEN = re.compile(r"\s*(\(|\)|===|==|!=|<=|>=|~=|<|>|\bnot in\b|\bin\b|\band\b|\bor\b|"
                           r"'[^']*'|\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_.]*)")


def marker_holds(marker: str, env: Dict[str, str]) -> bool:
    """Evaluate a PEP 508 marker for ``env``; version variables compare numerically."""
    tokens = []
    pos = 0
    marker = marker.strip()
    while pos < len(marker):
        m = _MARKER_TOKEN.match(marker, pos)
        if not m:
            raise BuildError("cannot parse marker %r" % marker)
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(marker) and marker[pos].isspace():
            pos += 1

    def value(tok: str) -> str:
        if tok[:1] in "'\"":
            return tok[1:-1]
        return env.get(tok, "")

    def compare(left: str, op: str, right: str, versions: bool) -> bool:
        if op in ("in", "not in"):
            return (left in right) == (op == "in")
        if versions:
            a, b = _version_tuple(left), _version_tuple(right)
            if op == "~=":
                return a >= b and a[:len(b) - 1] == b[:len(b) - 1]
        else:
            a, b = left, right  # type: ignore[assignment]
        return {"==": a == b, "===": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                ">=": a >= b}.get(op, False)

    def atom(i: int) -> Tuple[bool, int]:
        if tokens[i] == "(":
            v, i = disjunction(i + 1)
            return v, i + 1  # the ")"
        left, op, right = tokens[i], tokens[i + 1], tokens[i + 2]
        versions = any(t in ("python_version", "python_full_version", "implementation_version")
                       for t in (left, right))
        return compare(value(left), op, value(right), versions), i + 3

    def conjunction(i: int) -> Tuple[bool, int]:
        v, i = atom(i)
        while i < len(tokens) and tokens[i] == "and":
            w, i = atom(i + 1)
            v = v and w
        return v, i

    def disjunction(i: int) -> Tuple[bool, int]:
        v, i = conjunction(i)
        while i < len(tokens) and tokens[i] == "or":
            w, i = conjunction(i + 1)
            v = v or w
        return v, i

    try:
        return disjunction(0)[0]
    except IndexError:
        raise BuildError("cannot parse marker %r" % marker) from None


def head_node_environment(python: Tuple[int, int]) -> Dict[str, str]:
    """Marker variables of a Linux CPython ``python`` head node."""
    v = "%d.%d" % python
    return {"python_version": v, "python_full_version": v + ".0", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "implementation_version": v + ".0",
            "extra": ""}


def python_allowed(requires_python: Optional[str], python: Tuple[int, int]) -> bool:
    """Does ``python`` (a minor version) satisfy a Requires-Python specifier?  Patch-level
    clauses (``!=3.9.0``) are ignored: a head node's patch level is not ours to choose."""
    if not requires_python:
        return True
    for clause in requires_python.split(","):
        m = re.match(r"\s*(===|==|!=|<=|>=|~=|<|>)\s*([0-9.*]+)\s*$", clause)
        if not m:
            continue
        op, ver = m.groups()
        want = _version_tuple(ver.replace(".*", ""))
        if len(want) > 2 and op in ("!=", "==", "==="):
            continue
        have = python + (0,) * max(0, len(want) - 2)
        want2 = want[:len(have)]
        if op == ">=" and not have >= want2:
            return False
        if op == ">" and not have > want2:
            return False
        if op == "<=" and not have <= want2:
            return False
        if op == "<" and not have < want2:
            return False
        if op in ("==", "===") and have[:len(want)] != want:
            return False
        if op == "!=" and ver.endswith(".*") and have[:len(want)] == want:
            return False
        if op == "~=" and not (have >= want2 and have[:len(want) - 1] == want[:len(want) - 1]):
            return False
    return True


# --- what goes in -----------------------------------------------------------------------------

def _distribution(name: str) -> Optional[metadata.Distribution]:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def root_requirements() -> List[str]:
    """pyblahp's own runtime requirements, from its installed metadata or the checkout's
    pyproject.toml (whichever matches the ``blahp`` being bundled)."""
    pyproject = _checkout_pyproject()
    if pyproject:
        reqs = _pyproject_list(pyproject, "dependencies")
        if reqs:
            return reqs
    dist = _distribution("pyblahp")
    if dist is None:
        raise BuildError("pyblahp is neither installed nor run from a checkout with pyproject.toml")
    return [r for r in (dist.requires or []) if "extra" not in split_requirement(r)[1]]


def _checkout_pyproject() -> Optional[str]:
    """``pyproject.toml`` of the source checkout ``blahp`` is imported from, if it is one."""
    blahp_dir = _package_dir("blahp")
    candidate = os.path.join(os.path.dirname(os.path.dirname(blahp_dir)), "pyproject.toml")
    if os.path.isfile(candidate):
        with open(candidate, encoding="utf-8") as f:
            text = f.read()
        if re.search(r'(?m)^name\s*=\s*"pyblahp"', text):
            return text
    return None


def _pyproject_list(text: str, key: str) -> List[str]:
    m = re.search(r"(?ms)^\[project\].*?^%s\s*=\s*\[(.*?)\]" % re.escape(key), text)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def _pyproject_entry_points(text: str, group: str) -> Dict[str, str]:
    m = re.search(r'(?ms)^\[project\.entry-points\."%s"\]\s*\n(.*?)(?=^\[|\Z)' % re.escape(group), text)
    found = {}
    for line in (m.group(1) if m else "").splitlines():
        kv = re.match(r'\s*([A-Za-z0-9_.-]+)\s*=\s*"([^"]+)"', line)
        if kv:
            found[kv.group(1)] = kv.group(2)
    return found


def backend_entry_points() -> Dict[str, str]:
    """name -> ``module:Class`` of pyblahp's own backends (third-party plugins are not bundled)."""
    pyproject = _checkout_pyproject()
    eps = _pyproject_entry_points(pyproject, ENTRY_POINT_GROUP) if pyproject else {}
    if not eps:
        dist = _distribution("pyblahp")
        if dist is not None:
            eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP}
    eps = {k: v for k, v in eps.items() if v.split(":")[0].startswith("blahp.")}
    if not eps:
        raise BuildError("no %s entry points found (neither pyproject.toml nor installed metadata)"
                         % ENTRY_POINT_GROUP)
    return eps


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("package %s is not importable" % name)
    return list(spec.submodule_search_locations)[0]


def own_package_dirs() -> Dict[str, str]:
    """package -> source directory.  ``blahp.backends`` lives in the checkout's top-level
    ``backends/`` (pyproject's package-dir), which a ``PYTHONPATH=src`` run cannot import."""
    dirs = {}
    for name in OWN_PACKAGES:
        try:
            dirs[name] = _package_dir(name)
        except (BuildError, ModuleNotFoundError):
            if name != "blahp.backends":
                raise BuildError("package %s is not importable" % name) from None
            guess = os.path.join(os.path.dirname(os.path.dirname(_package_dir("blahp"))), "backends")
            if not os.path.isfile(os.path.join(guess, "__init__.py")):
                raise BuildError("blahp.backends is neither importable nor at %s" % guess) from None
            dirs[name] = guess
    return dirs


def _is_compiled(path: str) -> bool:
    return path.endswith(_COMPILED_SUFFIXES) or ".so." in os.path.basename(path)


def _skip_source(relpath: str) -> bool:
    parts = relpath.split("/")
    return "__pycache__" in parts or relpath.endswith((".pyc", ".pyo"))


def own_files(dirs: Dict[str, str]) -> Dict[str, str]:
    """archive path -> local file for our packages (each package directory taken flat; its
    subpackages come from their own entry, so ``backends/`` can live elsewhere)."""
    files = {}
    for name, directory in sorted(dirs.items()):
        prefix = name.replace(".", "/") + "/"
        sub = {n.split(".")[-1] for n in dirs if n.startswith(name + ".")}
        for root, subdirs, names in os.walk(directory):
            rel_root = os.path.relpath(root, directory).replace(os.sep, "/")
            if rel_root == ".":
                subdirs[:] = [d for d in subdirs if d not in sub]
                rel_root = ""
            else:
                rel_root += "/"
            subdirs.sort()
            for n in sorted(names):
                arc = prefix + rel_root + n
                if _skip_source(arc) or any(arc.startswith(p) or arc == p for p in CE_ONLY_PATHS):
                    continue
                files[arc] = os.path.join(root, n)
    return files


def resolve(requirements: Sequence[str]) -> Tuple[Dict[str, metadata.Distribution], Dict[str, List[str]]]:
    """The installed runtime distributions reachable from ``requirements`` for *some* supported
    head-node Python, and for each missing one the marker that would need it.

    Requirements are followed when their marker holds for any candidate Python (and Linux); the
    ones not installed here are reported, so the installer can refuse a head node that needs them.
    """
    found: Dict[str, metadata.Distribution] = {}
    missing: Dict[str, List[str]] = {}
    todo = list(requirements)
    envs = [head_node_environment(p) for p in CANDIDATES]
    while todo:
        name, marker = split_requirement(todo.pop(0))
        if name in CE_ONLY_DISTRIBUTIONS:
            continue
        if marker and "extra" in marker:
            continue
        if marker and not any(marker_holds(marker, e) for e in envs):
            continue
        if name in found:
            continue
        dist = _distribution(name)
        if dist is None:
            missing.setdefault(name, []).append(marker or "always")
            continue
        found[name] = dist
        todo.extend(dist.requires or [])
    return found, missing


def distribution_files(dist: metadata.Distribution) -> Dict[str, str]:
    """archive path -> local file for an installed distribution (its RECORD), minus scripts and
    byte code; its dist-info (metadata, licences) comes along."""
    files = {}
    if not dist.files:
        raise BuildError("%s has no RECORD: cannot tell its files" % dist.metadata["Name"])
    for f in dist.files:
        arc = str(f).replace(os.sep, "/")
        if arc.startswith("../") or arc.startswith("/") or _skip_source(arc):
            continue
        parts = arc.split("/")
        if parts[0].endswith(".dist-info") and parts[-1] in _SKIPPED_METADATA:
            continue
        if arc.endswith(".pth"):
            continue
        local = str(dist.locate_file(f))
        if os.path.isfile(local):
            files[arc] = local
    return files


def judge_pythons(dists: Dict[str, metadata.Distribution], missing: Dict[str, List[str]],
                  requirements: Sequence[str]) -> Tuple[Tuple[int, int], Dict[str, str]]:
    """(oldest minor version from which every candidate works, {version: why not} for the rest)."""
    problems: Dict[str, str] = {}
    for py in CANDIDATES:
        why = []
        if py < FLOOR:
            why.append("pyblahp needs Python >= %d.%d" % FLOOR)
        for name, dist in sorted(dists.items()):
            rp = dist.metadata["Requires-Python"]
            if not python_allowed(rp, py):
                why.append("%s %s requires Python %s" % (dist.metadata["Name"], dist.version, rp))
        env = head_node_environment(py)
        for name, markers in sorted(missing.items()):
            if any(m == "always" or marker_holds(m, env) for m in markers):
                why.append("%s is needed there but not installed on this machine" % name)
        if why:
            problems["%d.%d" % py] = "; ".join(why)
    ok = [py for py in CANDIDATES if "%d.%d" % py not in problems]
    if not ok:
        raise BuildError("no Python 3.9+ can run this bundle: %s" % problems)
    # The minimum is the oldest version after which everything up to the newest candidate works.
    minimum = CANDIDATES[-1]
    for py in reversed(CANDIDATES):
        if "%d.%d" % py in problems:
            break
        minimum = py
    return minimum, problems


def _dist_info(version: str, eps: Dict[str, str], requires: Iterable[str]) -> Dict[str, str]:
    base = "pyblahp-%s.dist-info/" % version
    meta = ["Metadata-Version: 2.1", "Name: pyblahp", "Version: %s" % version,
            "Summary: pyblahp head-node bundle (blahpd)"]
    meta += ["Requires-Dist: %s" % r for r in requires]
    entry = ["[console_scripts]", "blahpd = blahp.cli:main", "", "[%s]" % ENTRY_POINT_GROUP]
    entry += ["%s = %s" % kv for kv in sorted(eps.items())]
    return {base + "METADATA": "\n".join(meta) + "\n", base + "entry_points.txt": "\n".join(entry) + "\n",
            base + "top_level.txt": "blahp\ngahp\n"}


def _write(zf: zipfile.ZipFile, arc: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(arc, date_time=_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16
    zf.writestr(info, data)


def build(target: str, interpreter: str = "/usr/bin/env python3") -> BuildResult:
    """Write the zipapp to ``target`` (atomically) and return what went in."""
    from . import __version__

    requirements = root_requirements()
    dists, missing = resolve(requirements)
    files: Dict[str, str] = {}
    origins: Dict[str, str] = {}
    for name, dist in sorted(dists.items()):
        for arc, local in distribution_files(dist).items():
            files[arc] = local
            origins[arc] = "%s %s" % (dist.metadata["Name"], dist.version)
    own = own_files(own_package_dirs())
    clash = sorted(set(own) & set(files))
    if clash:
        raise BuildError("files of pyblahp also come from a dependency: %s" % ", ".join(clash[:5]))
    files.update(own)
    compiled = sorted(arc for arc in files if _is_compiled(arc))
    if compiled:
        raise BuildError("compiled extensions would go into the bundle (not portable to the head node): %s"
                         % ", ".join("%s (%s)" % (a, origins.get(a, "pyblahp")) for a in compiled))
    eps = backend_entry_points()
    minimum, problems = judge_pythons(dists, missing, requirements)
    runtime_reqs = [r for r in requirements if split_requirement(r)[0] not in CE_ONLY_DISTRIBUTIONS]
    manifest = {
        "pyblahp": __version__,
        "min_python": list(minimum),
        "python_problems": problems,
        "built_with": sys.version.split()[0],
        "distributions": {d.metadata["Name"]: d.version for d in dists.values()},
        "missing": missing,
        "backends": sorted(eps),
    }
    generated = dict(_dist_info(__version__, eps, runtime_reqs))
    generated["__main__.py"] = MAIN_TEMPLATE.format(min=minimum, min_text="%d.%d" % minimum)
    generated[MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True) + "\n"

    buf = io.BytesIO()
    buf.write(("#!%s\n" % interpreter).encode())
    with zipfile.ZipFile(buf, "w") as zf:
        for arc in sorted(set(files) | set(generated)):
            if arc in generated:
                _write(zf, arc, generated[arc].encode("utf-8"))
            else:
                with open(files[arc], "rb") as f:
                    _write(zf, arc, f.read())
    data = buf.getvalue()
    tmp = "%s.tmp-%d" % (target, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return BuildResult(target, len(data), hashlib.sha256(data).hexdigest(), manifest)


def read_manifest(path: str) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(MANIFEST).decode("utf-8"))


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m blahp.zipapp_build OUTPUT.pyz\n")
        return 2
    try:
        r = build(args[0])
    except BuildError as e:
        sys.stderr.write("zipapp build failed: %s\n" % e)
        return 1
    sys.stdout.write("%s: %d bytes, sha256 %s, Python >= %d.%d\n"
                     % (r.path, r.size, r.sha256, r.min_python[0], r.min_python[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
