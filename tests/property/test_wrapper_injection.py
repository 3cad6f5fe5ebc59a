"""Job data cannot change what the wrapper does (submit-ad.md §6.4, §10.1, §12.2 W1).

Arbitrary argument lists and environment values go through the real path — a ClassAd with
``Arguments = quote_v2(args)`` and a V2 ``Environment``, unparsed as the gridmanager does,
parsed, build_job, render — and the rendered wrapper is run with /bin/bash.  The payload
(Python) writes the argv and environment it received; both must equal the input exactly, and
no shell syntax in the data (``$(touch …)``, backticks, quote breaking) may create a file.
The pass-through attribute lines of the local submit attributes hook get the same check."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blahp.argsenv import quote_v2
from blahp.classad import parse_ad, unparse_value
from blahp.config import Config
from blahp.jobmodel import build_job
from blahp.localattrs import driver_text
from blahp.wrapper import parse_exit_record, render
from gahp.runtime import NullLog

MARK = "@MARK@"  # replaced by a per-example path that must never be created

# Characters and fragments that mean something to bash, to the V2 grammars or to ClassAd strings.
FRAGMENTS = st.sampled_from([
    "'", '"', "''", "'\\''", "$", "$HOME", "${PATH}", "`", "\\", "\\'", "\\\\", "\n", "\r", " ", "\t",
    "$(touch %s)" % MARK, "`touch %s`" % MARK, "'; touch %s; '" % MARK, '"; touch %s; "' % MARK,
    "\n touch %s\n" % MARK, "$'\\x41'", "!", "!!", "*", "?", "[a]", "~", "{a,b}", ";", "&", "|", "<", ">", "#",
    "%", "=", "é", "☃", "\U0001f600", "\x7f", "\x1b", "\x01", "\u00a0", "\u2028", "-c", "--",
])
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(CHARS, max_size=6)), max_size=6).map("".join)

# Names whose value bash, the C library or the Python payload interpret (or that the run itself
# needs); a job may set them, but then the payload would not see the value unchanged.
_SPECIAL = {
    "PATH", "HOME", "IFS", "PWD", "OLDPWD", "SHLVL", "_", "ENV", "CDPATH", "SHELLOPTS", "UID", "EUID",
    "PPID", "GROUPS", "RANDOM", "SRANDOM", "SECONDS", "LINENO", "HISTCMD", "DIRSTACK", "FUNCNAME",
    "FUNCNEST", "OPTIND", "OPTARG", "OPTERR", "PS1", "PS2", "PS3", "PS4", "MAIL", "MAILPATH",
    "MAILCHECK", "TMOUT", "COLUMNS", "LINES", "HOSTNAME", "HOSTTYPE", "MACHTYPE", "OSTYPE", "TERM",
    "HISTFILE", "HISTSIZE", "IGNOREEOF", "INPUTRC", "FIGNORE", "GLOBSORT", "LANG", "LANGUAGE",
    "LOCPATH", "NLSPATH", "TZ", "TMPDIR", "SLURM_JOB_ID",
}
_SPECIAL_PREFIXES = ("BASH", "_pyb_", "LC_", "LD_", "PYTHON", "COMP_", "READLINE", "EPOCH", "MALLOC",
                     "GLIBC", "POSIXLY", "HIST", "PROMPT")
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in _SPECIAL and not n.startswith(_SPECIAL_PREFIXES))

# No single quote in the payload itself, so a quoting mistake shows up through the generated data.
PAYLOAD = ('import json, os, sys\n'
           'names = json.loads(os.environ["PYB_TEST_NAMES"])\n'
           'out = {"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names}}\n'
           'with open("result.json", "w", encoding="utf-8") as f:\n'
           '    json.dump(out, f)\n')

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bytes(s):
    return s.encode("utf-8", "surrogateescape")


def _v2_env(pairs):
    return " ".join("%s='%s'" % (n, v.replace("'", "''")) for n, v in pairs)


def _ad(fields):
    return parse_ad("[ " + "; ".join("%s = %s" % (n, unparse_value(v)) for n, v in fields.items()) + " ]")


def _no_marker(work):
    leaked = [n for n in os.listdir(work) if n.startswith("mark")]
    assert not leaked, "job data was executed: %s" % leaked
    assert not os.path.exists(os.path.join(os.getcwd(), MARK))


def _run_case(args, env_pairs):
    work = tempfile.mkdtemp(prefix="pyb_inj_")
    try:
        marker = os.path.join(work, "mark")
        args = [a.replace(MARK, marker) for a in args]
        env_pairs = [(n, v.replace(MARK, marker)) for n, v in env_pairs]
        iwd = os.path.join(work, "iwd")
        os.mkdir(iwd)
        names = [n for n, _ in env_pairs]
        all_env = env_pairs + [("PYB_TEST_NAMES", json.dumps(names))]
        ad = _ad({"gridtype": "slurm", "Cmd": sys.executable, "Iwd": iwd, "JobDirectory": "inj_case",
                  "Arguments": quote_v2(["-c", PAYLOAD] + args), "Environment": _v2_env(all_env)})
        config = Config(values={})
        job = build_job(ad, config, supported=("slurm",), log=NullLog(), cwd=work)
        # the V2 layer itself (ClassAd strings are bytes: octal escapes come back surrogate-escaped)
        assert [_bytes(a) for a in job.arguments] == [_bytes(a) for a in ["-c", PAYLOAD] + args]
        script = os.path.join(work, "wrapper.sh")
        with open(script, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("#!/bin/bash\n" + render(job, config, exit_dir=os.path.join(work, "exit")))
        run_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8",
                   "LC_ALL": "C.UTF-8", "SLURM_JOB_ID": "5"}
        proc = subprocess.run(["/bin/bash", script], env=run_env, cwd=work, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == b"" and proc.stderr == b""
        with open(os.path.join(iwd, "result.json"), encoding="utf-8") as f:
            got = json.load(f)
        assert got["argv"] == args
        assert got["env"] == dict(env_pairs)
        with open(os.path.join(work, "exit", job.h12 + ".exit")) as f:
            rec = parse_exit_record(f.read())
        assert rec["exit_code"] == "0" and rec["key"] == "inj_case" and rec["batch_id"] == "5"
        _no_marker(work)
        assert sorted(os.listdir(iwd)) == ["result.json"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@SETTINGS
@given(args=st.lists(TEXT, max_size=6),
       env=st.dictionaries(ENV_NAMES, TEXT, max_size=5))
def test_arguments_and_environment_reach_payload_unchanged(args, env):
    _run_case(args, list(env.items()))


def test_known_injections():
    _run_case(["$(touch %s)" % MARK, "`touch %s`" % MARK, "'; touch %s; '" % MARK, "a'b", "", "x\ny", "\\"],
              [("E1", "$(touch %s)" % MARK), ("E2", "'\"`touch %s`\"'" % MARK), ("E3", "")])


# --- the local submit attributes lines ----------------------------------------------------------

ATTR_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in _SPECIAL and not n.startswith(_SPECIAL_PREFIXES)
    and n.lower() not in ("gridtype", "cmd", "iwd", "cerequirements", "virtualorganisation", "req", "condorce"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(ATTR_NAMES, TEXT), min_size=1, max_size=4, unique_by=lambda p: p[0].lower()),
       req=TEXT)
def test_attribute_lines_are_data(pairs, req):
    values = dict(pairs)  # ClassAd names are case-insensitive: unique ignoring case
    work = tempfile.mkdtemp(prefix="pyb_attr_")
    try:
        marker = os.path.join(work, "mark")
        values = {n: v.replace(MARK, marker) for n, v in values.items()}
        req = req.replace(MARK, marker)
        fields = {"gridtype": "slurm", "Cmd": "/bin/true", "Iwd": work}
        fields.update(values)
        text = "[ " + "; ".join("%s = %s" % (n, unparse_value(v)) for n, v in fields.items())
        text += "; CERequirements = Req == %s && CondorCE == 1 ]" % unparse_value(req)
        arrays = {"blah_pass_submit_attributes": {str(i): n for i, n in enumerate(values)}}
        config = Config(values={}, arrays=arrays)
        job = build_job(parse_ad(text), config, supported=("slurm",), log=NullLog(), cwd=work)
        hook = os.path.join(work, "hook.sh")
        with open(hook, "w") as f:
            # the loop variable starts with "_": generated attribute names never do
            f.write("for _v in %s Req CondorCE; do printf '%%s\\0' \"${!_v}\"; done\n" % " ".join(values))
        driver = os.path.join(work, "driver.sh")
        with open(driver, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(driver_text(job, hook))
        proc = subprocess.run(["/bin/bash", driver], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        got = proc.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
        expected_req = unparse_value(req).replace("'", "")  # the C blahp's unwinding: quotes dropped
        assert got == list(values.values()) + [expected_req, "1"]
        assert re.fullmatch(r'"[^\']*"', expected_req)
        _no_marker(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
