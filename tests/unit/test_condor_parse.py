"""HTCondor backend: submit description rendering, job ids, output parsers and the state map.

Rendered descriptions are read back with the simulator's reader (HTCondor's line, continuation
and macro rules) and ClassAd values are checked with HTCondor's own library (classad2).
"""
import os
import time

import pytest

from blahp.backend import BackendContext
from blahp.config import Config
from blahp.jobid import MalformedJobId
from blahp.jobmodel import SubmitError, build_job
from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, NativeRecord
from blahp.runner import CommandRunner
from blahp.backends import condor_parse as cp
from blahp.backends.condor import CondorBackend
from conformance.sim import condor as sim
from gahp.runtime import NullLog
from tests.gahp_client import ad

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "condor")


def oracle():
    """HTCondor's own ClassAd library (the htcondor wheel of the test extras)."""
    return pytest.importorskip("classad2")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture
def backend(tmp_path):
    ctx = BackendContext(Config(values={}), CommandRunner(os.environ), str(tmp_path), NullLog())
    return CondorBackend(ctx)


def make_job(tmp_path, **attrs):
    base = dict(gridtype="condor", Cmd="/bin/echo", Iwd=str(tmp_path), JobDirectory="home_bl_ce_1234.0_17")
    base.update(attrs)
    from blahp.classad import parse_ad
    return build_job(parse_ad(ad(**base)), Config(values={}), supported=("condor",), log=NullLog(),
                     cwd=str(tmp_path))


def read_back(text):
    """(commands, +attributes) with macros expanded as condor_submit would."""
    commands, attrs, queue = sim.read_description(text)
    assert queue == "1"

    def lookup(name):
        return commands.get(name.lower(), (None, None))[1]
    cmds = {k: sim.match_time(sim.expand(v, lookup)) for k, (_, v) in commands.items()}
    plus = {k: sim.match_time(sim.expand(v, lookup)) for k, (_, v) in attrs.items()}
    return cmds, plus


# --- rendering -----------------------------------------------------------------------------

def test_minimal_description(tmp_path):
    job = make_job(tmp_path)
    text = cp.description(job, [], "")
    assert text == (
        "universe = vanilla\n"
        "executable = /bin/echo\n"
        "initialdir = %s\n"
        "request_cpus = 1\n"
        "should_transfer_files = yes\n"
        "when_to_transfer_output = on_exit\n"
        "notification = never\n"
        "leave_in_queue = JobStatus == 4 && (CompletionDate =?= UNDEFINED || CompletionDate == 0 || "
        "((CurrentTime - CompletionDate) < 1800))\n"
        '+BlahpKey = "home_bl_ce_1234.0_17"\n'
        "queue 1\n" % tmp_path)


def test_every_attribute(tmp_path):
    (tmp_path / "in.dat").write_text("x")
    (tmp_path / "proxy").write_text("p")
    job = make_job(tmp_path, Arguments="a 'b c'", Environment="A=1 B='x y'", In="in.dat", Out="o.txt",
                   Err="e.txt", x509UserProxy="proxy", RequestMemory=2000, NodeNumber=8, BatchRuntime=3600,
                   GPUNumber=2, GPUModel="Tesla V100", StageCmd=False, TransferInput="in.dat",
                   TransferOutput="r1,r2", TransferOutputRemaps="r1=/out/r1;r2=x\\;y",
                   BatchExtraSubmitArgs="+Site = \"A\"\\nrank = Memory", Queue="ignored")
    text = cp.description(job, ["+LocalAttr = 7"], "pyblahp test key=k")
    classad2 = oracle()
    lines = text.splitlines()
    assert lines[0] == "# pyblahp test key=k"
    assert lines[-1] == "queue 1" and lines[-2] == ""  # a site continuation cannot eat the queue
    assert lines[-5:-2] == ["+LocalAttr = 7", '+Site = "A"', "rank = Memory"]  # local, then extra args
    cmds, plus = read_back(text)
    p = str(tmp_path)
    assert cmds["universe"] == "vanilla" and cmds["executable"] == "/bin/echo"
    assert cmds["transfer_executable"] == "false"
    assert cmds["initialdir"] == p
    assert cmds["input"] == p + "/in.dat" and cmds["output"] == p + "/o.txt" and cmds["error"] == p + "/e.txt"
    assert cmds["x509userproxy"] == p + "/proxy"
    assert cmds["request_memory"] == "2000" and cmds["request_cpus"] == "8" and cmds["request_gpus"] == "2"
    assert classad2.ExprTree(cmds["requirements"]).eval(classad2.ClassAd({"CUDADeviceName": "Tesla V100"})) is True
    assert cmds["periodic_remove"] == "JobStatus == 2 && (time() - JobCurrentStartExecutingDate > 3600) =?= true"
    pr = classad2.ExprTree(cmds["periodic_remove"])
    now = int(time.time())
    assert pr.eval(classad2.ClassAd({"JobStatus": 2, "JobCurrentStartExecutingDate": now - 4000})) is True
    assert pr.eval(classad2.ClassAd({"JobStatus": 2, "JobCurrentStartExecutingDate": now - 10})) is False
    assert pr.eval(classad2.ClassAd({"JobStatus": 1})) is False
    assert sim.parse_arguments(cmds["arguments"]) == ["a", "b c"]
    assert sim.parse_environment(cmds["environment"]) == [("A", "1"), ("B", "x y")]
    assert cmds["transfer_input_files"] == p + "/in.dat"
    assert cmds["transfer_output_files"] == "r1,r2"
    from blahp.argsenv import parse_remaps
    assert parse_remaps(sim._unquote(cmds["transfer_output_remaps"])) == [("r1", "/out/r1"), ("r2", "x;y")]
    assert cmds["should_transfer_files"] == "yes" and cmds["when_to_transfer_output"] == "on_exit"
    assert cmds["notification"] == "never"
    leave = classad2.ExprTree(cmds["leave_in_queue"])
    assert leave.eval(classad2.ClassAd({"JobStatus": 4, "CompletionDate": 0})) is True
    assert plus["blahpkey"] == '"home_bl_ce_1234.0_17"'


def test_gpu_model_alone_requests_one_gpu(tmp_path):
    cmds, _ = read_back(cp.description(make_job(tmp_path, GPUModel="A100"), [], ""))
    assert cmds["request_gpus"] == "1"


@pytest.mark.parametrize("model", ['K"80', "a\\b", "$(Cluster)", "$$(Memory)", "x$", "\u00e9\u2603"])
def test_classad_values_survive_quoting(tmp_path, model):
    """requirements and +BlahpKey parse, with HTCondor's library, as the intended values."""
    classad2 = oracle()
    cmds, _ = read_back(cp.description(make_job(tmp_path, GPUModel=model), [], ""))
    # the job model keeps non-ASCII bytes surrogate-escaped; the description file holds UTF-8
    expr = classad2.ExprTree(cmds["requirements"].encode("utf-8", "surrogateescape").decode("utf-8"))
    assert expr.eval(classad2.ClassAd({"CUDADeviceName": model})) is True
    assert expr.eval(classad2.ClassAd({"CUDADeviceName": model + "x"})) is False
    text = cp.classad_string(model)
    assert classad2.ExprTree(text).eval() == model


@pytest.mark.parametrize("args", [
    ["$(Cluster)", "$$(Memory)", "$$$(x)", "$ENV(HOME)", "$", "$$"],
    ['"', "''", "'", "a b", "", "back\\", "\\", "#x", "=", "a=b"],
    ["queue 5", "+X = 1", "executable = /bin/false"],
])
def test_arguments_and_environment_round_trip(tmp_path, args):
    from blahp.argsenv import quote_v2
    env = [("V%d" % i, a) for i, a in enumerate(args)]
    job = make_job(tmp_path, Arguments=quote_v2(args),
                   Environment=quote_v2(["%s=%s" % kv for kv in env]))
    assert job.arguments == args
    cmds, _ = read_back(cp.description(job, [], ""))
    assert sim.parse_arguments(cmds["arguments"]) == args
    assert sim.parse_environment(cmds["environment"]) == env
    assert cmds["executable"] == "/bin/echo"


@pytest.mark.parametrize("attrs", [
    dict(Arguments="'a\nb'"),                 # a line break inside a quoted argument
    dict(Environment="A='x\ny'"),
    dict(Out="file\\"),                       # a trailing backslash would continue the line
    dict(Out="name "),                        # trailing white space is trimmed by condor_submit
])
def test_unrepresentable_values_are_refused(tmp_path, backend, attrs):
    job = make_job(tmp_path, **attrs)
    with pytest.raises(SubmitError) as e:
        backend.render(job, [], "ignored wrapper", None)
    assert e.value.code == 1 and "submit description" in e.value.message


def test_render_ignores_the_wrapper(tmp_path, backend):
    text = backend.render(make_job(tmp_path), [], "#!/bin/bash\necho WRAPPER\n", None)
    assert "WRAPPER" not in text and text.startswith("# pyblahp ") and text.endswith("queue 1\n")


# --- queue / job ids -----------------------------------------------------------------------

@pytest.mark.parametrize("queue,target,argv", [
    (None, None, []),
    ("schedd1", "schedd1/", ["-name", "schedd1"]),
    ("schedd1/cm.example.org:9618", "schedd1/cm.example.org:9618", ["-name", "schedd1", "-pool", "cm.example.org:9618"]),
    ("ce01@ce01.example.org", "ce01@ce01.example.org/", ["-name", "ce01@ce01.example.org"]),
])
def test_queue_selects_schedd_and_pool(tmp_path, backend, queue, target, argv):
    from blahp.backends.condor import target_args
    attrs = {"Queue": queue} if queue else {}
    job = make_job(tmp_path, **attrs)
    assert backend.job_target(job) == target
    assert target_args(target) == argv


def test_bad_queue_is_refused(tmp_path, backend):
    with pytest.raises(SubmitError):
        backend.job_target(make_job(tmp_path, Queue="-pool/x"))


@pytest.mark.parametrize("raw,batch,cluster", [
    ("condor/123//", "123", None),
    ("condor/123/schedd1/", "123", "schedd1/"),
    ("condor/123/schedd1/cm:9618", "123", "schedd1/cm:9618"),
    ("condor/123//cm", "123", "/cm"),
    ("condor/7/ce01@ce01.example.org/", "7", "ce01@ce01.example.org/"),
    ("condor/123", "123", None),
])
def test_job_ids(backend, raw, batch, cluster):
    ref = backend.parse_job_id(raw)
    assert (ref.lrms, ref.batch_id, ref.cluster) == ("condor", batch, cluster)
    if raw.count("/") == 3:
        assert backend.make_job_id(batch, cluster, None) == raw
    assert backend.cluster_key(ref.cluster) == (cluster or "")


@pytest.mark.parametrize("raw", ["condor/abc//", "condor//s/p", "condor/1/-x/", "condor/1/a/b/c", "slurm/1//",
                                 "condor/1/a b/", "condor", "condor/1.0//"])
def test_malformed_ids(backend, raw):
    with pytest.raises(MalformedJobId):
        backend.parse_job_id(raw)


# --- command output ----------------------------------------------------------------------

def test_submit_output():
    assert cp.parse_submit("42.0 - 42.0\n") == "42"
    assert cp.parse_submit(fixture("submit_verbose.txt")) == "6"
    warn = ("Submitting job(s).\nWARNING: Committed job submission into the queue with the following warning:\n"
            "WARNING: x\n\n1 job(s) submitted to cluster 452.\n")
    assert cp.parse_submit(warn) == "452"
    assert cp.parse_submit("") is None
    assert cp.parse_submit("Submitting job(s)\n") is None
    assert cp.parse_submit("42.0 - 43.0\n") is None  # two clusters is not our submission


def test_json_ads():
    ads = cp.parse_ads(fixture("json_two_ads.json"))
    assert [a["ClusterId"] for a in ads] == [1, 2] and ads[0]["Owner"] == "Bob"
    assert cp.parse_ads("") == [] and cp.parse_ads("[\n]\n") == []
    for bad in ("{garbage", '{"ClusterId": 1}', "[1, 2]", "\x00\x7fgarbage {{{"):
        with pytest.raises(ValueError):
            cp.parse_ads(bad)


def test_records_from_ads():
    text = sim.json_list([
        {"ClusterId": 5, "ProcId": 0, "JobStatus": 4, "ExitBySignal": False, "ExitCode": 3,
         "RemoteUserCpu": 1.5, "RemoteSysCpu": 0.0, "RemoteWallClockTime": 12.0, "NumJobStarts": 2,
         "LastRemoteHost": "slot1_3@wn7.example.org", "BlahpKey": "k", "BytesSent": 10.0},
        {"ClusterId": 6, "ProcId": 0, "JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9},
        {"ClusterId": 7, "ProcId": 0, "JobStatus": 2, "RemoteHost": "slot1@wn1"},
        {"ClusterId": 7, "ProcId": 1, "JobStatus": 1},
    ], None, always=False)
    recs = cp.parse_records(text, "bulk", observed_at=5.0)
    assert sorted(recs) == ["5", "6", "7"]
    r5 = recs["5"]
    assert (r5.state, r5.exit_code, r5.exit_signal, r5.worker_node, r5.restarts) == ("4", 3, None, "wn7.example.org", 1)
    assert (r5.user_cpu_s, r5.sys_cpu_s, r5.wall_s) == (1.5, 0.0, 12.0)
    assert (recs["6"].exit_code, recs["6"].exit_signal) == (None, 9)
    assert recs["7"].worker_node == "wn1" and recs["7"].exit_code is None
    with pytest.raises(ValueError):
        cp.record_from_ad({"ProcId": 0, "JobStatus": 1}, "bulk")
    with pytest.raises(ValueError):
        cp.record_from_ad({"ClusterId": "x", "JobStatus": 1}, "bulk")


def test_find_key_is_exact():
    text = sim.json_list([{"ClusterId": 1, "ProcId": 0, "JobStatus": 2, "BlahpKey": "K"},
                          {"ClusterId": 2, "ProcId": 0, "JobStatus": 1, "BlahpKey": "k"}], None, always=False)
    assert cp.find_key(text, "k") == [("2", "1")]


# --- state map ------------------------------------------------------------------------------

@pytest.mark.parametrize("state,status,name", [
    ("1", IDLE, "Idle"), ("2", RUNNING, "Running"), ("3", REMOVED, "Removed"), ("4", COMPLETED, "Completed"),
    ("5", HELD, "Held"), ("6", RUNNING, "TransferringOutput"), ("7", RUNNING, "Suspended"),
])
def test_state_map(state, status, name):
    a = cp.map_record(NativeRecord("9", state, reason="via condor_hold (by user u)"), last_status=None)
    assert a.status == status and a.attrs["BatchJobState"] == name and a.attrs["BatchJobId"] == "9"
    assert ("HoldReason" in a.attrs) == (status == HELD)


@pytest.mark.parametrize("state", ["0", "8", "99", "garbage"])
def test_unknown_state_keeps_last_status(state):
    assert cp.map_record(NativeRecord("9", state), last_status=RUNNING).status == RUNNING
    assert cp.map_record(NativeRecord("9", state), last_status=None).status == IDLE


def test_exit_information():
    done = cp.map_record(NativeRecord("1", "4", exit_code=0), last_status=RUNNING)
    assert done.attrs["ExitCode"] == 0 and done.attrs["ExitBySignal"] is False and "ExitSignal" not in done.attrs
    sig = cp.map_record(NativeRecord("1", "4", exit_signal=9), last_status=RUNNING)
    assert sig.attrs["ExitBySignal"] is True and sig.attrs["ExitSignal"] == 9 and "ExitCode" not in sig.attrs
    unknown = cp.map_record(NativeRecord("1", "4"), last_status=RUNNING)
    assert not unknown.exit_known  # never a guessed 0: the status engine looks further
    running = cp.map_record(NativeRecord("1", "2", exit_code=0), last_status=None)
    assert "ExitCode" not in running.attrs


def test_hold_reason_and_removal_reason():
    held = cp.map_record(NativeRecord("1", "5", reason="via condor_hold (by user alice)",
                                      extra={"HoldReasonCode": 1}), last_status=None)
    assert held.attrs["HoldReason"] == "via condor_hold (by user alice)" and held.attrs["HoldReasonCode"] == 1
    assert cp.map_record(NativeRecord("1", "5"), last_status=None).attrs["HoldReason"]
    assert cp.map_record(NativeRecord("1", "5"), report_batch_holds=False).status == IDLE
    rm = cp.map_record(NativeRecord("1", "3", extra={"RemoveReason": "via condor_rm (by user a)"}))
    assert rm.attrs["ExitReason"] == "via condor_rm (by user a)" and "ExitCode" not in rm.attrs


def test_accounting_values_and_worker_node():
    a = cp.map_record(NativeRecord("1", "4", exit_code=1, worker_node="wn", user_cpu_s=2.0, wall_s=5.0,
                                   restarts=1, extra={"BytesSent": 3.0}))
    assert (a.attrs["WorkerNode"], a.attrs["RemoteUserCpu"], a.attrs["RemoteWallClockTime"]) == ("wn", 2.0, 5.0)
    assert a.attrs["NumRestarts"] == 1 and a.attrs["BytesSent"] == 3.0
    assert cp.host_of("slot1_2@node.example.org") == "node.example.org" and cp.host_of(None) is None


# --- commands the adapter builds (a stub runner records them) --------------------------------

class StubRuns:
    def __init__(self, *results):
        self.results = list(results)
        self.argvs = []

    async def __call__(self, argv, **kw):
        from blahp.runner import CommandResult
        self.argvs.append(list(argv))
        rc, out, err = self.results.pop(0)
        return CommandResult(list(argv), rc, out, err, False, 0.01)


def test_find_by_key_builds_an_exact_constraint(tmp_path, backend, monkeypatch):
    import trio
    job = make_job(tmp_path, JobDirectory="home_bl:ce+1=2,x@y.0", Queue="s2/pool1")
    ads = sim.json_list([{"ClusterId": 3, "ProcId": 0, "JobStatus": 4, "BlahpKey": job.key},
                         {"ClusterId": 4, "ProcId": 0, "JobStatus": 2, "BlahpKey": job.key}], None, always=False)
    runs = StubRuns((0, ads, ""))
    monkeypatch.setattr(backend, "run", runs)
    assert trio.run(backend.find_by_key, job) == ("4", "s2/pool1")  # the finished one is an older job
    argv = runs.argvs[0]
    assert argv[:5] == ["condor_q", "-name", "s2", "-pool", "pool1"]
    constraint = argv[argv.index("-constraint") + 1]
    classad2 = oracle()
    assert classad2.ExprTree(constraint).eval(classad2.ClassAd({"BlahpKey": job.key})) is True
    assert classad2.ExprTree(constraint).eval(classad2.ClassAd({"BlahpKey": job.key.upper()})) is False


def test_one_history_call_for_all_missing_jobs(backend, monkeypatch):
    import trio
    hist = sim.json_list([{"ClusterId": 8, "ProcId": 0, "JobStatus": 4, "ExitBySignal": False, "ExitCode": 2}],
                         None, always=True)
    runs = StubRuns((0, hist, ""), (0, "[\n]\n", ""), (1, "", "Error: No passed search file and configuration "
                                                              "key HISTORY is unset.\n"))
    monkeypatch.setattr(backend, "run", runs)
    got = trio.run(backend.resolve, None, ["8", "9"], [None, None])
    assert list(got) == ["8"] and got["8"].exit_code == 2 and got["8"].source == "history"
    assert runs.argvs[0][-4:] == ["-match", "2", "8.0", "9.0"] and "-json" in runs.argvs[0]
    many = [str(i) for i in range(100, 100 + 600)]
    assert trio.run(backend.resolve, "s/", many, [None] * 600) == {}
    assert runs.argvs[1][:3] == ["condor_history", "-name", "s"] and "ClusterId >= 100" in runs.argvs[1]
    assert trio.run(backend.resolve, None, ["1"], [None]) == {}  # no history kept: skip, not fail
    assert trio.run(backend.resolve, None, ["1"], [None]) == {} and len(runs.argvs) == 3  # not asked again


def test_query_failures_and_empty_queue(backend, monkeypatch):
    import trio
    from blahp.backend import QueryFailed
    runs = StubRuns((0, "", ""), (1, "", "Error: Collector has no record of schedd/submitter\n"),
                    (0, "\x00\x7fgarbage {{{", ""))
    monkeypatch.setattr(backend, "run", runs)
    assert trio.run(backend.bulk_query, None) == {}  # condor_q -json prints nothing for no jobs
    for _ in range(2):
        with pytest.raises(QueryFailed):
            trio.run(backend.bulk_query, None)


@pytest.mark.parametrize("rc,out,err,ok", [
    (0, "Job 5.0 marked for removal\n", "", True),
    (1, "", "\nJob 5.0 not found\n", True),
    (1, "", "\nJob 5.0 already marked for removal\n", True),
    (1, "", "\nPermission denied to remove job 5.0\n", False),
])
def test_cancel_outcomes(backend, monkeypatch, rc, out, err, ok):
    import trio
    from blahp.backend import CommandFailed
    runs = StubRuns((rc, out, err))
    monkeypatch.setattr(backend, "run", runs)
    ref = backend.parse_job_id("condor/5//")
    if ok:
        trio.run(backend.cancel, ref)
    else:
        with pytest.raises(CommandFailed):
            trio.run(backend.cancel, ref)
    assert runs.argvs == [["condor_rm", "5.0"]]
