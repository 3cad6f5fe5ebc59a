"""Job data cannot change what the HTCondor submit description says (backends.md §10).

Arbitrary arguments, environment values, GPU models and file names go through the real path —
a submit ad, build_job, CondorBackend.render — and the description is read back with HTCondor's
rules (the simulator's reader: trimmed lines, backslash continuations, ``#`` comments,
``$(macro)``/``$$(...)`` expansion, the first ``queue`` ends it).  Every value must come back
exactly, no command may appear that we did not write, and a value that no description line can
carry is refused with a 4-field submit error instead of being mangled.  A few cases are run
end to end through the simulated condor_submit and the real payload.
"""
import json
import os
import shutil
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blahp.argsenv import quote_v2
from blahp.backend import BackendContext
from blahp.classad import parse_ad, unparse_value
from blahp.config import Config
from blahp.jobmodel import SubmitError, build_job
from blahp.runner import CommandRunner
from blahp.backends.condor import CondorBackend
from conformance.sim import condor as sim
from gahp.runtime import NullLog

FRAGMENTS = st.sampled_from([
    "'", '"', "''", '""', "$", "$$", "$(", "$(Cluster)", "$(DOLLAR)", "$$(Memory)", "$$(DOLLARDOLLAR)",
    "$ENV(HOME)", "\\", "\\\n", "\n", "\r", " ", "\t", "#", "=", "+X = 1", "queue 5", ";", ",", "é",
    "\u2028", "\x7f", "\x1b", "\x01", "executable = /bin/false",
])
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(CHARS, max_size=5)), max_size=6).map("".join)
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
# What render() writes itself; anything else in a read-back description was injected.
OURS = {"universe", "executable", "initialdir", "request_cpus", "arguments", "environment", "output",
        "requirements", "request_gpus", "should_transfer_files", "when_to_transfer_output", "notification",
        "leave_in_queue"}
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bytes(s):
    return s.encode("utf-8", "surrogateescape")


def _backend(work):
    return CondorBackend(BackendContext(Config(values={}), CommandRunner(os.environ), work, NullLog()))


def _job(work, fields):
    text = "[ " + "; ".join("%s = %s" % (n, unparse_value(v)) for n, v in fields.items()) + " ]"
    return build_job(parse_ad(text), Config(values={}), supported=("condor",), log=NullLog(), cwd=work)


def _read_back(text):
    text = _bytes(text).decode("utf-8")  # what condor_submit reads from the file
    commands, attrs, queue = sim.read_description(text)
    assert queue == "1"

    def lookup(name):
        return commands.get(name.lower(), (None, None))[1]
    cmds = {k: sim.match_time(sim.expand(v, lookup)) for k, (_, v) in commands.items()}
    plus = {k: sim.match_time(sim.expand(v, lookup)) for k, (_, v) in attrs.items()}
    return cmds, plus


def _unrepresentable(values):
    return any(c in v for v in values for c in "\r\n")


@SETTINGS
@given(args=st.lists(TEXT, max_size=6), env=st.dictionaries(ENV_NAMES, TEXT, max_size=4),
       model=TEXT, out=TEXT)
def test_values_survive_the_description(args, env, model, out):
    work = tempfile.mkdtemp(prefix="pyb_cinj_")
    try:
        fields = {"gridtype": "condor", "Cmd": "/bin/echo", "Iwd": work, "JobDirectory": "cinj",
                  "Arguments": quote_v2(args), "Environment": quote_v2(["%s=%s" % kv for kv in env.items()])}
        if model:
            fields["GPUModel"] = model
        if out:
            fields["Out"] = out
        try:
            job = _job(work, fields)
        except SubmitError:
            assert _unrepresentable([model, out]), (model, out)  # the job model refuses line breaks
            return
        assert [_bytes(a) for a in job.arguments] == [_bytes(a) for a in args]
        try:
            text = _backend(work).render(job, [], "wrapper", None)
        except SubmitError as e:
            path = job.stdout or ""
            assert e.code == 1 and (_unrepresentable(args + list(env.values()))
                                    or path != path.strip(" \t\f\v") or path.rstrip().endswith("\\")), e.message
            return
        cmds, plus = _read_back(text)
        assert set(cmds) <= OURS and set(plus) == {"blahpkey"}, (cmds, plus)
        assert cmds["executable"] == "/bin/echo" and cmds["initialdir"] == work
        got_args = sim.parse_arguments(cmds["arguments"]) if args else []
        assert [_bytes(a) for a in got_args] == [_bytes(a) for a in args]
        got_env = sim.parse_environment(cmds["environment"]) if env else []
        assert [(n, _bytes(v)) for n, v in got_env] == [(n, _bytes(v)) for n, v in env.items()]
        if out:
            assert _bytes(cmds["output"]) == _bytes(job.stdout)
        if model:
            classad2 = pytest.importorskip("classad2")
            want = _bytes(model).decode("utf-8")
            expr = classad2.ExprTree(cmds["requirements"])
            assert expr.eval(classad2.ClassAd({"CUDADeviceName": want})) is True
        assert plus["blahpkey"] == '"cinj"'
    finally:
        shutil.rmtree(work, ignore_errors=True)


# one line: a line break cannot be passed through a submit description
PAYLOAD = ('import json, os, sys; names = json.loads(os.environ["PYB_TEST_NAMES"]); '
           'open("result.json", "w", encoding="utf-8").write(json.dumps('
           '{"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names}}))')


@pytest.mark.parametrize("args,env", [
    (["$(Cluster)", "$$(Memory)", "$$$(x)", "a b", "it's", 'q"q', "back\\", "#x", "queue 5", ""],
     {"E1": "$(DOLLAR)", "E2": "'\"", "E3": "", "E4": "x = y"}),
    (["-c", "\\", "\\\\", "$ENV(HOME)", "+X = 1"], {"P": "$$(DOLLARDOLLAR)"}),
])
def test_end_to_end_through_condor_submit(tmp_path, args, env):
    from tests.clusters.sim import SimSystem
    condor = SimSystem(tmp_path, "condor", ["condor_submit", "condor_q"], queue_delay=0.0)
    work = tmp_path / "iwd"
    work.mkdir()
    names = list(env)
    all_env = list(env.items()) + [("PYB_TEST_NAMES", json.dumps(names))]
    job = _job(str(work), {"gridtype": "condor", "Cmd": sys.executable, "Iwd": str(work), "JobDirectory": "e2e",
                           "Arguments": quote_v2(["-c", PAYLOAD] + args),
                           "Environment": quote_v2(["%s=%s" % kv for kv in all_env])})
    sub = tmp_path / "job.sub"
    sub.write_bytes(_bytes(_backend(str(tmp_path)).render(job, [], "", None)))
    r = condor.run(["condor_submit", "-terse", str(sub)])
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 20
    while condor.run(["condor_q", "1.0", "-af", "JobStatus"]).stdout.strip() != "4":
        assert time.time() < deadline
        time.sleep(0.1)
    got = json.loads((work / "result.json").read_text())
    assert got == {"argv": args, "env": env}
