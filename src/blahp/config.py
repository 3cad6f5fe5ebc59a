"""blah.config, read the way the C blahp reads it.

Where: ``$BLAHPD_CONFIG_LOCATION``; else ``<install>/etc/blah.config`` with
``<install> = $BLAHPD_LOCATION or $GLITE_LOCATION or /usr``, falling back to
``/etc/blah.config`` when that file is not readable.  Then every entry of ``<config>.d/`` not
starting with ``.`` in alphabetical order, then ``~/.blah/user.config``; later files override.

How: like the C blahp (``config.c``), each file is *sourced by a shell in its own process*, so
every shell construct a site uses (quotes, ``$VAR``, command substitution, arrays) means what it
means to bash.  Unlike the C blahp, the file name is passed as an argument (never pasted into a
command string), the variables are dumped NUL-separated (no ambiguity from ``set``'s quoting),
and a syntax error or an unreadable file is an error rather than a silently empty config.
Variables the file *exports* are applied to the environment our batch commands run in.
"""
from __future__ import annotations

import os
import pwd
import subprocess
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

CONFIG_FILE_BASE = "blah.config"
DEFAULT_INSTALL_LOCATION = "/usr"
SHELL = "/bin/bash"
LOAD_TIMEOUT = 30.0

# Sources "$1" with its output sent to stderr (a chatty config must not corrupt the dump), then
# prints every variable as kind NUL name NUL value NUL.  Names come from compgen, so they are
# identifiers and safe inside eval; values are never evaluated.
_DUMP_SCRIPT = r'''
. "$1" 1>&2
for __pyblahp_n in $(compgen -v); do
  case $__pyblahp_n in __pyblahp_*|BASH_*|BASHOPTS|BASHPID|FUNCNAME|GROUPS|PIPESTATUS|SHELLOPTS|SHLVL|PPID|UID|EUID|RANDOM|SRANDOM|SECONDS|LINENO|EPOCHSECONDS|EPOCHREALTIME|_|PWD|OLDPWD|OPTIND|OPTERR|IFS|PS4|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|COLUMNS|LINES|DIRSTACK|HISTCMD|COMP_WORDBREAKS) continue;; esac
  __pyblahp_a=${!__pyblahp_n@a}
  case $__pyblahp_a in
    *A*) continue ;;
    *a*)
      eval "__pyblahp_k=(\"\${!$__pyblahp_n[@]}\")"
      for __pyblahp_i in "${__pyblahp_k[@]}"; do
        eval "__pyblahp_v=\${$__pyblahp_n[\$__pyblahp_i]}"
        printf 'a\0%s\0%s\0%s\0' "$__pyblahp_n" "$__pyblahp_i" "$__pyblahp_v"
      done ;;
    *x*) printf 'x\0%s\0\0%s\0' "$__pyblahp_n" "${!__pyblahp_n}" ;;
    *) printf 's\0%s\0\0%s\0' "$__pyblahp_n" "${!__pyblahp_n}" ;;
  esac
done
'''


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for stderr."""


def _is_true(value: str) -> bool:
    """config_test_boolean: a positive leading integer, or a value starting with yes/true."""
    v = value.strip()
    digits = ""
    for i, ch in enumerate(v):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        if int(digits) > 0:
            return True
    except ValueError:
        pass
    low = v.lower()
    return low.startswith("yes") or low.startswith("true")


class Config:
    """Merged key/value view of the config files, plus the environment they export."""

    def __init__(self, values: Optional[Mapping[str, str]] = None,
                 arrays: Optional[Mapping[str, Mapping[str, str]]] = None,
                 exports: Optional[Mapping[str, str]] = None,
                 files: Iterable[str] = (), base_environ: Optional[Mapping[str, str]] = None) -> None:
        self.values: Dict[str, str] = dict(values or {})
        self.arrays: Dict[str, Dict[str, str]] = {k: dict(v) for k, v in (arrays or {}).items()}
        self.exports: Dict[str, str] = dict(exports or {})
        self.files: List[str] = list(files)
        base = dict(os.environ if base_environ is None else base_environ)
        base.update(self.exports)
        self.environment: Dict[str, str] = base

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        v = self.values.get(key)
        # The C reader skips empty values (`key=`), so an empty value means "not set".
        return v if v else default

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.get(key)
        return default if v is None else _is_true(v)

    def get_int(self, key: str, default: int, minimum: Optional[int] = None) -> int:
        v = self.get(key)
        if v is None:
            return default
        try:
            n = int(v.strip())
        except ValueError:
            raise ConfigError("%s=%r is not an integer" % (key, v)) from None
        if minimum is not None and n < minimum:
            raise ConfigError("%s=%d is below the minimum %d" % (key, n, minimum))
        return n

    def get_float(self, key: str, default: float, minimum: Optional[float] = None) -> float:
        v = self.get(key)
        if v is None:
            return default
        try:
            n = float(v.strip())
        except ValueError:
            raise ConfigError("%s=%r is not a number" % (key, v)) from None
        if minimum is not None and n < minimum:
            raise ConfigError("%s=%s is below the minimum %s" % (key, v, minimum))
        return n

    def get_list(self, key: str, default: Iterable[str] = ()) -> List[str]:
        v = self.get(key)
        if v is None:
            return list(default)
        return [p.strip() for p in v.replace(" ", ",").split(",") if p.strip()]

    def get_array(self, key: str) -> List[str]:
        """``key[0]=a key[3]=b`` in index order (blah_pass_submit_attributes style)."""
        items = self.arrays.get(key, {})
        return [items[k] for k in sorted(items, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))]


def user_home(environ: Mapping[str, str]) -> str:
    # $HOME first (as everything else in pyblahp); the C blahp asks passwd, which agrees under
    # ssh and the gridmanager.
    home = environ.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


def locate(environ: Mapping[str, str]) -> Tuple[str, bool]:
    """The main config file and whether it was named explicitly (then it must exist)."""
    explicit = environ.get("BLAHPD_CONFIG_LOCATION")
    if explicit:
        return explicit, True
    install = environ.get("BLAHPD_LOCATION") or environ.get("GLITE_LOCATION") or DEFAULT_INSTALL_LOCATION
    path = os.path.join(install, "etc", CONFIG_FILE_BASE)
    if os.access(path, os.R_OK):
        return path, False
    return "/etc/" + CONFIG_FILE_BASE, False


def config_files(environ: Mapping[str, str]) -> List[str]:
    main, explicit = locate(environ)
    files: List[str] = []
    if os.path.exists(main) or explicit:
        files.append(main)
    d = main + ".d"
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        entries = []
    files.extend(os.path.join(d, e) for e in entries if not e.startswith("."))
    user = os.path.join(user_home(environ), ".blah", "user.config")
    if os.access(user, os.R_OK):
        files.append(user)
    return files


def _source(path: str, environ: Mapping[str, str]) -> List[Tuple[str, str, str, str]]:
    if not os.path.exists(path):
        raise ConfigError("config file %s does not exist" % path)
    if os.path.isdir(path):
        raise ConfigError("config file %s is a directory" % path)
    if not os.access(path, os.R_OK):
        raise ConfigError("config file %s is not readable" % path)
    try:
        proc = subprocess.run([SHELL, "-c", _DUMP_SCRIPT, "pyblahp-config", path],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(environ), timeout=LOAD_TIMEOUT, check=False)
    except FileNotFoundError:
        raise ConfigError("cannot read %s: %s not found" % (path, SHELL)) from None
    except subprocess.TimeoutExpired:
        raise ConfigError("reading %s took more than %d s" % (path, LOAD_TIMEOUT)) from None
    err = proc.stderr.decode("utf-8", "replace")
    for line in err.splitlines():
        if "syntax error" in line or "unexpected end of file" in line:
            raise ConfigError("%s: %s" % (path, line.split(": ", 1)[-1].strip()))
    if proc.returncode != 0:
        tail = err.strip().splitlines()[-1:] or ["exit status %d" % proc.returncode]
        raise ConfigError("cannot read %s: %s" % (path, tail[0]))
    parts = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    records = []
    for i in range(0, len(parts) - 3, 4):
        records.append((parts[i], parts[i + 1], parts[i + 2], parts[i + 3]))
    return records


def load(environ: Optional[Mapping[str, str]] = None, files: Optional[List[str]] = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    paths = config_files(env) if files is None else files
    values: Dict[str, str] = {}
    arrays: Dict[str, Dict[str, str]] = {}
    exports: Dict[str, str] = {}
    for path in paths:
        for kind, name, index, value in _source(path, env):
            if kind == "a":
                arrays.setdefault(name, {})[index] = value
                if index == "0":
                    values[name] = value
                continue
            values[name] = value
            if kind == "x" and env.get(name) != value:
                exports[name] = value
    return Config(values, arrays, exports, paths, env)


DEFAULT_ENV_STRIP = ("BLAHPD_*", "GLITE_LOCATION", "GAHP_TEMP", "CONDOR_INHERIT", "CONDOR_PRIVATE_INHERIT",
                     "_CONDOR_*", "PYBLAHP_*", "PYTHON*", "VIRTUAL_ENV")


def batch_environment(config: Config) -> Dict[str, str]:
    """Our environment minus what must not leak into jobs (``pyblahp_env_strip``, submit-ad.md §6.5).

    Slurm's default ``--export=ALL`` copies the submitter's environment into every job, and
    ``CONDOR_INHERIT`` in a job's environment breaks glideins (HTCONDOR-1604).
    """
    import fnmatch
    patterns = config.get_list("pyblahp_env_strip", DEFAULT_ENV_STRIP)
    return {k: v for k, v in config.environment.items()
            if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}
