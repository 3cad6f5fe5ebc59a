"""The whole job lifecycle through the GAHP protocol against the simulated HTCondor access point.

blahpd runs as a subprocess on pipes (as under the gridmanager) with the simulator's
condor_submit/q/history/rm/hold/release on PATH (conformance/sim/condor.py).  Jobs really run.
A finished job stays in condor_q for leave_in_queue's 30 minutes: tests that need the answer to
come from condor_history move the simulated clock past that.
"""
import os
import time

import pytest

from blahp.argsenv import quote_v2
from conformance.sim import core as sim_core
from tests.clusters.sim import SimSystem
from tests.gahp_client import GahpClient, ad, env_for

COMMANDS = ["condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold", "condor_release"]
CONFIG = """
supported_lrms=condor,local
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
pyblahp_vanished_grace=4
"""
HUGE_MEMORY = 10 ** 7  # no slot has that much: HTCondor leaves such a job idle


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("condor-jobs"))


@pytest.fixture(scope="module")
def condor(jobs_dir):
    return SimSystem(jobs_dir, "condor", COMMANDS, queue_delay=0.5, schedds=["s2", "s3/pool1"])


@pytest.fixture(scope="module")
def client(condor, jobs_dir):
    c = GahpClient(env_for(os.path.join(jobs_dir, "home"), CONFIG, condor.env))
    yield c
    assert c.close() == 0


@pytest.fixture
def own_client(condor, tmp_path):
    """A blahpd of its own, for a test whose failures would put the shared one into back-off."""
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG, condor.env))
    yield c
    c.close()


@pytest.fixture(autouse=True)
def no_faults(condor):
    yield
    condor.clear_faults()


def job_ad(jobs_dir, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name,
                 gridtype="condor", JobDirectory="home_bl_condor_%s_%d" % (name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    return row[3]


def batch_id(jid):
    return jid.split("/")[1]


def native_status(condor, cluster_id, history=False):
    tool = "condor_history" if history else "condor_q"
    r = condor.run([tool, "%s.0" % cluster_id, "-af", "JobStatus"])
    return r.stdout.strip()


def wait_for(what, fn, timeout=30):
    deadline = time.time() + timeout
    while not fn():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def purge_finished(condor, cluster_id):
    """Let the job finish, then move the clock past leave_in_queue: it is in the history only."""
    wait_for("job %s finished" % cluster_id, lambda: native_status(condor, cluster_id) == "4")
    condor.advance(2000)
    assert native_status(condor, cluster_id) == ""
    assert native_status(condor, cluster_id, history=True) == "4"


def test_ping(client):
    assert client.call("BLAH_PING", "condor")[1:] == ["0", "No error"]


def test_success_with_output(client, condor, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "ok", "/bin/sh", "-c 'sleep 1; echo done'"))
    assert jid.startswith("condor/") and jid.endswith("//") and batch_id(jid).isdigit()
    ad_, seen = client.wait_status(jid, {4}, timeout=60)
    assert 2 in seen, seen
    assert ad_.evaluate("ExitCode") == 0 and ad_.evaluate("ExitBySignal") is False
    assert ad_.lookup("ExitSignal") is None
    assert ad_.evaluate("BatchJobId") == batch_id(jid) and ad_.evaluate("WorkerNode") == "localhost"
    assert open(os.path.join(jobs_dir, "ok.out")).read() == "done\n"


def test_nonzero_exit_and_arguments_reach_the_payload(client, jobs_dir):
    tricky = ["a b", "$HOME", "`id`", "it's", 'q"q', "back\\slash", "*", "$(Cluster)", "$$(Memory)", "#x"]
    jid = submitted(client, job_ad(jobs_dir, "args", "/bin/sh",
                                   quote_v2(["-c", 'printf "%s\\n" "$@"; exit 3', "sh"] + tricky)))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitCode") == 3 and ad_.evaluate("ExitBySignal") is False
    assert open(os.path.join(jobs_dir, "args.out")).read().split("\n")[:-1] == tricky


def test_death_by_signal(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "sig", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 9, ad_
    assert ad_.lookup("ExitCode") is None


def test_cancel_pending_running_and_finished(client, condor, jobs_dir):
    pending = submitted(client, job_ad(jobs_dir, "cp", "/bin/sleep", "300", RequestMemory=HUGE_MEMORY))
    running = submitted(client, job_ad(jobs_dir, "cr", "/bin/sleep", "300"))
    finished = submitted(client, job_ad(jobs_dir, "cf", "/bin/true"))
    client.wait_status(pending, {1})
    client.wait_status(running, {2})
    client.wait_status(finished, {4})
    for jid in (pending, running, finished):
        assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"], jid
        row, _ = client.status(jid)
        assert row[1:4] == ["0", "No Error", "3"] or jid == finished, row
    wait_for("removed jobs leave the queue",
             lambda: all(native_status(condor, batch_id(j)) == "" for j in (pending, running)))
    assert native_status(condor, batch_id(running), history=True) == "3"
    # already gone from the queue: still a success
    assert client.call("BLAH_JOB_CANCEL", pending)[1:] == ["0", "No error"]
    rm = [c["argv"] for c in condor.calls("condor_rm")]
    assert ["%s.0" % batch_id(pending)] in rm


def test_hold_and_release_idle(client, condor, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "hp", "/bin/sleep", "300", RequestMemory=HUGE_MEMORY))
    client.wait_status(jid, {1})
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    row, ad_ = client.status(jid)
    assert row[3] == "5", row
    assert ad_.evaluate("HoldReason") == "via condor_hold (by user %s)" % condor_user()
    assert ad_.evaluate("HoldReasonCode") == 1
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "Job Held jobId %s" % jid]
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[3] == "1", row
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    client.call("BLAH_JOB_CANCEL", jid)


def test_hold_of_a_running_job_evicts_it(client, condor, jobs_dir):
    marker = os.path.join(jobs_dir, "hr.starts")
    jid = submitted(client, job_ad(jobs_dir, "hr", "/bin/sh", "-c 'echo start >> %s; exec sleep 300'" % marker))
    client.wait_status(jid, {2})
    wait_for("payload started", lambda: os.path.exists(marker))
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    ad_, _ = client.wait_status(jid, {5}, timeout=20)
    assert ad_.evaluate("HoldReason").startswith("via condor_hold")
    state = condor.jobs()[batch_id(jid)]
    assert state["state"] == "queued" and state["held"], state  # evicted, not just flagged
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    ad_, seen = client.wait_status(jid, {2}, timeout=30)
    assert ad_.evaluate("NumRestarts") == 1, ad_
    wait_for("payload started again", lambda: open(marker).read() == "start\nstart\n")
    client.call("BLAH_JOB_CANCEL", jid)


def condor_user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def test_unknown_job_vanishes_never_completes(client):
    jid = "condor/987654//"
    deadline = time.time() + 30
    while True:
        row, _ = client.status(jid)
        assert row[3] != "4", row
        if row[1] != "0":
            break
        assert row[3] == "1", row
        assert time.time() < deadline, row
        time.sleep(0.5)
    assert row[1] == "1" and row[2].startswith("Job 987654 vanished from condor: "), row
    assert row[3:] == ["0", "N/A"]


def test_purged_job_is_answered_from_history(client, condor, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "purged", "/bin/sh", "-c 'exit 5'"))
    before = len(condor.calls("condor_history"))
    purge_finished(condor, batch_id(jid))
    ad_, _ = client.wait_status(jid, {4}, timeout=30)
    assert ad_.evaluate("ExitCode") == 5 and ad_.evaluate("ExitBySignal") is False
    calls = [c["argv"] for c in condor.calls("condor_history")[before:] if "-json" in c["argv"]]
    assert calls and all("-match" in a for a in calls), calls
    assert any("%s.0" % batch_id(jid) in a for a in calls), calls  # one call for every missing job


def test_history_unavailable_gives_no_guess(client, condor, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "nohist", "/bin/sh", "-c 'sleep 1; exit 6'"))
    client.wait_status(jid, {2})
    condor.fault("condor_history", rc=1, stderr="Unable to locate remote schedd (name=, pool=).\n", match="-json")
    purge_finished(condor, batch_id(jid))
    deadline = time.time() + 8  # past the 4 s vanished grace
    while time.time() < deadline:
        row, _ = client.status(jid)
        assert row[3] != "4", "completion reported without history: %s" % row
        assert (row[1], row[3]) in (("0", "2"), ("1", "0")), row
        if row[1] == "1":
            assert "vanished from condor" in row[2] and "Unable to locate remote schedd" in row[2], row
        time.sleep(0.5)
    condor.clear_faults()
    deadline = time.time() + 30
    while True:
        row, ad_ = client.status(jid)
        if row[1] == "0" and row[3] == "4":
            break
        assert time.time() < deadline, row
        time.sleep(0.5)
    assert ad_.evaluate("ExitCode") == 6


def test_submit_failures_are_four_field_errors(client, condor, jobs_dir):
    row = client.submit(job_ad(jobs_dir, "noexe", "/nonexistent/prog"))
    assert len(row) == 4 and row[1] == "1" and row[3] == "N/A", row
    assert row[2].startswith("submission command failed (exit code = 1)"), row
    assert "Can't access executable file /nonexistent/prog: No such file or directory" in row[2], row
    condor.fault("condor_submit", rc=1, stderr="\nERROR: Failed to commit job submission into the queue.\n"
                                               "ERROR: SUBMIT_REQUIREMENT OneGig was false\n", times=1)
    row = client.submit(job_ad(jobs_dir, "refused", "/bin/true"))
    assert row[1] == "1" and row[3] == "N/A" and "SUBMIT_REQUIREMENT OneGig" in row[2], row
    row = client.submit(job_ad(jobs_dir, "nosched", "/bin/true", Queue="nosuch"))
    assert row[1] == "1" and "Can't find address of schedd nosuch" in row[2], row


def test_query_failure_serves_the_last_state(own_client, condor, jobs_dir):
    client = own_client
    jid = submitted(client, job_ad(jobs_dir, "qf", "/bin/sleep", "300"))
    client.wait_status(jid, {2})
    for fault in (dict(rc=1, stderr="\n-- Failed to fetch ads from: <127.0.0.1:9618> : localhost\n"
                                     "SECMAN:2007:Failed to end classad message.\n"),
                  dict(rc=0, garbage=True)):
        condor.fault("condor_q", **fault)
        before = len(condor.calls("condor_q"))
        t0 = time.time()
        # until the failing command has been tried (failed refreshes back off for a while)
        while len(condor.calls("condor_q")) == before or time.time() < t0 + 2:
            row, _ = client.status(jid)
            assert row[1:4] == ["0", "No Error", "2"], row
            assert time.time() < t0 + 20, "condor_q was not retried"
            time.sleep(0.5)
        row, _ = client.status(jid)
        assert row[1:4] == ["0", "No Error", "2"], row  # the failure was not taken for "gone"
        condor.clear_faults()
    client.call("BLAH_JOB_CANCEL", jid)


def test_description_reaches_the_schedd(client, condor, jobs_dir):
    script = os.path.join(jobs_dir, "home", ".blah", "condor_local_submit_attributes.sh")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write('[ -n "$maxWallTime" ] && echo "+SiteWallTime = $maxWallTime"\n')
    try:
        text = job_ad(jobs_dir, "desc", "/bin/sh", "-c 'echo $MYVAR $OMP_NUM_THREADS'",
                      Environment="MYVAR='a b'", RequestMemory=512, NodeNumber=2, BatchRuntime=600,
                      BatchExtraSubmitArgs='+Extra = "x"').replace(
            " ]", "; CERequirements = maxWallTime == 77 ]")
        jid = submitted(client, text)
    finally:
        os.unlink(script)
    job = condor.jobs()[batch_id(jid)]
    assert job["request_memory"] == 512 and job["request_cpus"] == 2
    assert job["ad_attrs"]["SiteWallTime"] == 77 and job["ad_attrs"]["Extra"] == "x"
    assert job["ad_attrs"]["BlahpKey"].startswith("home_bl_condor_desc_")
    assert job["runtime_limit"] == 600 and job["leave_s"] == 1800
    ad_, _ = client.wait_status(jid, {4})
    assert open(os.path.join(jobs_dir, "desc.out")).read() == "a b 2\n"
    submit = condor.calls("condor_submit")[-1]["argv"]
    assert submit[0] == "-terse" and len(submit) == 2


def test_runtime_limit_removes_the_job(client, condor, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "rt", "/bin/sleep", "300", BatchRuntime=60))
    client.wait_status(jid, {2})
    condor.advance(120)
    ad_, _ = client.wait_status(jid, {3}, timeout=30)
    assert "PeriodicRemove" in ad_.evaluate("ExitReason")


def test_schedd_and_pool_queues(client, condor, jobs_dir):
    local = submitted(client, job_ad(jobs_dir, "loc", "/bin/sh", "-c 'exit 0'"))
    on_s2 = submitted(client, job_ad(jobs_dir, "s2", "/bin/sh", "-c 'exit 7'", Queue="s2"))
    on_s3 = submitted(client, job_ad(jobs_dir, "s3", "/bin/sh", "-c 'exit 8'", Queue="s3/pool1"))
    assert on_s2 == "condor/1/s2/" and on_s3 == "condor/1/s3/pool1", (on_s2, on_s3)  # ids restart per schedd
    assert batch_id(local) != "1"
    codes = {}
    for jid in (local, on_s2, on_s3):
        ad_, _ = client.wait_status(jid, {4})
        codes[jid] = ad_.evaluate("ExitCode")
    assert codes == {local: 0, on_s2: 7, on_s3: 8}
    # each schedd keeps its own queue (and call log) in the simulator
    s2 = os.path.join(condor.state_dir, "schedd-s2")
    s3 = os.path.join(condor.state_dir, "schedd-s3@@pool1")
    assert all(c["argv"][:2] == ["-name", "s2"] for c in sim_core.calls(s2, "condor_q"))
    assert all(c["argv"][:4] == ["-name", "s3", "-pool", "pool1"] for c in sim_core.calls(s3, "condor_q"))
    assert sim_core.calls(s2, "condor_q") and sim_core.calls(s3, "condor_q")
    assert client.call("BLAH_JOB_CANCEL", on_s2)[1:] == ["0", "No error"]
    assert [c["argv"] for c in sim_core.calls(s2, "condor_rm")] == [["-name", "s2", "1.0"]]


def test_condor_config_reaches_the_commands(condor, jobs_dir, tmp_path):
    """blah.config's ``export CONDOR_CONFIG=...`` (the shipped practice) is the tools' environment."""
    cfg = tmp_path / "condor_config"
    cfg.write_text("# site HTCondor configuration\n")
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "export CONDOR_CONFIG=%s\n" % cfg, condor.env))
    try:
        jid = submitted(c, job_ad(jobs_dir, "cfg", "/bin/true"))
    finally:
        c.close()
    assert condor.jobs()[batch_id(jid)]["condor_config"] == str(cfg)


def test_malformed_ids(client):
    row, _ = client.status("condor/abc//")
    assert row[1:] == ["255", "Malformed jobId or out of memory", "0", "N/A"]
    assert client.call("BLAH_JOB_CANCEL", "condor/1/-x/")[1:] == ["2", "Malformed jobId condor/1/-x/ or out of memory"]


def test_ids_minted_elsewhere_are_answered(client, condor, jobs_dir):
    sub = os.path.join(jobs_dir, "native.sub")
    with open(sub, "w") as f:
        f.write("executable = /bin/sh\narguments = \"-c 'exit 4'\"\ninitialdir = %s\nqueue\n" % jobs_dir)
    r = condor.run(["condor_submit", sub])
    assert r.returncode == 0, r.stderr
    cluster = r.stdout.split()[-1].rstrip(".")
    ad_, _ = client.wait_status("condor/%s//" % cluster, {4})
    assert ad_.evaluate("ExitCode") == 4


def test_one_bulk_query_per_cycle(client, condor, jobs_dir):
    jids = [submitted(client, job_ad(jobs_dir, "many%d" % i, "/bin/sleep", "300")) for i in range(5)]
    for jid in jids:
        client.wait_status(jid, {2})
    before = len(condor.calls("condor_q"))
    t0 = time.time()
    for _ in range(3):
        for jid in jids:
            client.status(jid)
    elapsed = time.time() - t0
    queries = len(condor.calls("condor_q")) - before
    assert queries <= elapsed / 1.0 + 2, (queries, elapsed)  # TTL 1 s: not one per request
    for jid in jids:
        client.call("BLAH_JOB_CANCEL", jid)


def test_condor_binpath_is_where_the_commands_come_from(tmp_path):
    """``condor_binpath``: every condor_* command is run from that directory.  PATH holds decoys
    of the same names that log their call and fail, so a command taken from PATH shows up."""
    condor = SimSystem(tmp_path / "bp", "condor", COMMANDS, queue_delay=0.5)
    decoys, log = tmp_path / "decoys", tmp_path / "decoys.log"
    decoys.mkdir()
    for tool in COMMANDS:
        (decoys / tool).write_text('#!/bin/sh\necho "%s $*" >> "%s"\necho "decoy %s" >&2\nexit 1\n' % (tool, log, tool))
        (decoys / tool).chmod(0o755)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    path = str(decoys) + os.pathsep + os.environ.get("PATH", os.defpath)
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "condor_binpath=%s\n" % condor.bin_dir, {"PATH": path}))
    try:
        assert c.call("BLAH_PING", "condor")[1:] == ["0", "No error"]
        done = submitted(c, job_ad(str(jobs), "bp", "/bin/sh", "-c 'exit 3'"))
        ad_, _ = c.wait_status(done, {4}, timeout=60)
        assert ad_.evaluate("ExitCode") == 3
        idle = submitted(c, job_ad(str(jobs), "bph", "/bin/sleep", "300", RequestMemory=HUGE_MEMORY))
        c.wait_status(idle, {1})
        assert c.call("BLAH_JOB_HOLD", idle)[1:] == ["0", "No error"]
        c.wait_status(idle, {5}, timeout=30)
        assert c.call("BLAH_JOB_RESUME", idle)[1:] == ["0", "No error"]
        c.wait_status(idle, {1}, timeout=30)
        assert c.call("BLAH_JOB_CANCEL", idle)[1:] == ["0", "No error"]
        purge_finished(condor, batch_id(done))
        ad_, _ = c.wait_status(done, {4}, timeout=30)   # now from condor_history
        assert ad_.evaluate("ExitCode") == 3
    finally:
        assert c.close() == 0
    assert not log.exists(), log.read_text()
    for tool in COMMANDS:
        assert condor.calls(tool), "%s was never run from condor_binpath" % tool
