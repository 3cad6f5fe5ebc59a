"""The job lifecycle through the GAHP protocol against the simulated LSF (conformance/sim/lsf.py).

blahpd runs as a subprocess on pipes (as under the gridmanager) with the simulated bsub, bjobs,
bhist, bkill, bstop and bresume on its PATH (or found through lsf_confpath's profile.lsf); jobs
really run (the batch script under /bin/bash, in Iwd, with LSB_JOBID set).
"""
import os
import subprocess
import time

import pytest

from conformance.sim import lsf as lsf_sim
from tests.clusters.sim import SimSystem
from tests.gahp_client import GahpClient, ad, env_for

CONFIG = """
supported_lrms=lsf,local
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
pyblahp_vanished_grace=4
"""
NO_EXIT_RECORDS = "pyblahp_exit_dir=/dev/null/no-exit-records\n"
FAR_FUTURE = "-b 2100:01:01:00:00"  # a begin time: the job stays pending


def new_sim(base, **settings):
    return SimSystem(base, "lsf", lsf_sim.COMMANDS, queue_delay=0.5, kill_delay=1.0, **settings)


def stop_all(lsf):
    """Leave no job processes behind: kill what is still live, then let the KILL follow."""
    live = [j for j, job in lsf.jobs().items() if job["state"] != "finished"]
    if live:
        lsf.run(["bkill"] + live)
        time.sleep(1.5)
        lsf.run(["bjobs", "-u", "all"])


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("lsf-jobs"))


@pytest.fixture(scope="module")
def lsf(tmp_path_factory):
    s = new_sim(tmp_path_factory.mktemp("lsf-sim"))
    yield s
    stop_all(s)


@pytest.fixture(scope="module")
def client(lsf, jobs_dir):
    c = GahpClient(env_for(os.path.join(jobs_dir, "home"), CONFIG, lsf.env))
    yield c
    assert c.close() == 0


@pytest.fixture
def make(tmp_path):
    """A client of its own (own home, config and simulated LSF) for tests that break things."""
    made = []

    def make_one(extra_config="", **settings):
        s = new_sim(tmp_path / ("sim%d" % len(made)), **settings)
        c = GahpClient(env_for(str(tmp_path / ("home%d" % len(made))), CONFIG + extra_config, s.env))
        made.append((s, c))
        return s, c
    yield make_one
    for s, c in made:
        c.close()
        stop_all(s)


def job_ad(jobs_dir, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name, In="/dev/null",
                 gridtype="lsf", JobDirectory="home_bl_lsf_%s_%d" % (name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    assert row[3].startswith("lsf/") and row[3].split("/")[2].isdigit(), row
    return row[3]


def bid(jid):
    return jid.split("/")[2]


def wait_ad(client, jid, predicate, timeout=30):
    deadline = time.time() + timeout
    while True:
        row, ad_ = client.status(jid)
        assert row[1] == "0", row
        if predicate(ad_):
            return ad_
        assert time.time() < deadline, "condition not reached; last %s" % (row,)
        time.sleep(0.3)


def wait_for(what, cond, timeout=30):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.2)


# --- the normal lifecycle -------------------------------------------------------------------------

def test_ping(client):
    assert client.call("BLAH_PING", "lsf")[1:] == ["0", "No error"]


def test_success_with_output_file(client, jobs_dir, lsf):
    jid = submitted(client, job_ad(jobs_dir, "ok", "/bin/sh", "-c 'sleep 2; echo done; echo $LSB_JOBID >&2'"))
    ad_, seen = client.wait_status(jid, {4}, timeout=60)
    assert 2 in seen, seen
    assert ad_.evaluate("ExitCode") == 0 and ad_.evaluate("ExitBySignal") is False
    assert ad_.evaluate("BatchJobId") == bid(jid) and ad_.evaluate("WorkerNode") == "localhost"
    assert ad_.evaluate("BatchJobState") == "DONE"
    assert open(os.path.join(jobs_dir, "ok.out")).read() == "done\n"
    assert open(os.path.join(jobs_dir, "ok.err")).read() == "%s\n" % bid(jid)
    # one bulk bjobs per cycle, by user, never by job id; nothing needed bhist
    bulk = [c["argv"] for c in lsf.calls("bjobs")]
    assert bulk and all(a[:4] == ["-u", lsf.jobs()[bid(jid)]["owner"], "-a", "-noheader"] for a in bulk)
    assert not any(bid(jid) in c["argv"] for c in lsf.calls("bhist"))
    # the batch script went to bsub on stdin, from Iwd
    assert lsf.jobs()[bid(jid)]["cwd"] == jobs_dir


def test_nonzero_exit(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "three", "/bin/sh", "-c 'exit 3'"))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitCode") == 3 and ad_.evaluate("ExitBySignal") is False
    assert ad_.evaluate("ExitReason") == "LSF state EXIT"


def test_death_by_signal(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "sig", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 9, ad_
    assert ad_.lookup("ExitCode") is None


def test_cancel_pending_running_and_finished(client, jobs_dir, lsf):
    pending = submitted(client, job_ad(jobs_dir, "cp", "/bin/sleep", "300", BatchExtraSubmitArgs=FAR_FUTURE))
    running = submitted(client, job_ad(jobs_dir, "cr", "/bin/sleep", "300"))
    client.wait_status(pending, {1})
    client.wait_status(running, {2})
    for jid in (pending, running):
        assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
        row, ad_ = client.status(jid)
        assert row[1:4] == ["0", "No Error", "3"], row
    wait_for("both jobs killed in LSF", lambda: lsf.run(["bjobs", "-u", "all"]) and all(
        lsf.jobs()[bid(j)]["state"] == "finished" for j in (pending, running)))
    assert [c["argv"] for c in lsf.calls("bkill")][-2:] == [[bid(pending)], [bid(running)]]
    # already finished: LSF says so on stderr with exit code 255, which is success for a cancel
    r = lsf.run(["bkill", bid(pending)])
    assert (r.returncode, r.stderr) == (255, "Job <%s>: Job has already finished\n" % bid(pending))
    assert client.call("BLAH_JOB_CANCEL", pending)[1:] == ["0", "No error"]
    assert client.call("BLAH_JOB_CANCEL", "lsf/20200101/99998")[1:] == ["0", "No error"]  # no matching job


def test_hold_and_release_pending(client, jobs_dir, lsf):
    jid = submitted(client, job_ad(jobs_dir, "hp", "/bin/sleep", "300", BatchExtraSubmitArgs=FAR_FUTURE))
    client.wait_status(jid, {1})
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    row, ad_ = client.status(jid)
    assert row[3] == "5", row
    assert ad_.evaluate("HoldReason") == "Suspended in LSF (PSUSP)"
    assert ad_.evaluate("BatchJobState").startswith("PSUSP")
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "Job Held jobId %s" % jid]
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[3] == "1", row
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    assert [c["argv"] for c in lsf.calls("bstop")][-1] == [bid(jid)]
    assert [c["argv"] for c in lsf.calls("bresume")][-1] == [bid(jid)]
    client.call("BLAH_JOB_CANCEL", jid)


def test_hold_and_release_running(client, jobs_dir, lsf):
    jid = submitted(client, job_ad(jobs_dir, "hr", "/bin/sleep", "300"))
    client.wait_status(jid, {2})
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    ad_, _ = client.wait_status(jid, {5}, timeout=30)
    assert ad_.evaluate("HoldReason") == "Suspended in LSF (USUSP)"
    assert lsf.jobs()[bid(jid)]["state"] == "suspended"  # stopped, not requeued
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    ad_, _ = client.wait_status(jid, {2}, timeout=30)
    assert ad_.evaluate("BatchJobState") == "RUN" and lsf.jobs()[bid(jid)]["state"] == "running"
    client.call("BLAH_JOB_CANCEL", jid)


def test_system_suspension_unknown_and_zombie_states(client, jobs_dir, lsf):
    jid = submitted(client, job_ad(jobs_dir, "ss", "/bin/sleep", "300"))
    client.wait_status(jid, {2})
    lsf.configure(system_suspend=[bid(jid)])
    ad_ = wait_ad(client, jid, lambda a: a.evaluate("BatchJobState") == "SSUSP")
    assert ad_.evaluate("JobStatus") == 2 and ad_.lookup("HoldReason") is None  # LSF resumes it by itself
    lsf.configure(system_suspend=[], stat_override={bid(jid): "UNKWN"})
    ad_ = wait_ad(client, jid, lambda a: a.evaluate("BatchJobState") == "UNKWN")
    assert ad_.evaluate("JobStatus") == 2  # mbatchd lost sbatchd: the last known state, not an exit
    lsf.configure(stat_override={bid(jid): "ZOMBI"})
    ad_ = wait_ad(client, jid, lambda a: a.evaluate("BatchJobState") == "ZOMBI")
    assert ad_.evaluate("JobStatus") == 3 and ad_.evaluate("ExitReason") == "LSF state ZOMBI"
    lsf.configure(stat_override={})


def test_unknown_job_vanishes_explicitly(client):
    jid = "lsf/20200101/99999"
    deadline = time.time() + 30
    while True:
        row, _ = client.status(jid)
        if row[1] != "0":
            break
        assert row[3] == "1", row  # never completed, never exit 0
        assert time.time() < deadline
        time.sleep(0.5)
    assert row[1] == "1" and row[3:] == ["0", "N/A"], row
    assert row[2].startswith("Job 99999 vanished from lsf: no accounting record and no exit record after 4 s"), row


def test_jobs_not_submitted_by_us_are_answered(client, lsf, jobs_dir):
    r = subprocess.run(["bsub", "-o", "/dev/null"], input="#!/bin/bash\nexit 4\n", env=dict(os.environ, **lsf.env),
                       capture_output=True, text=True, cwd=jobs_dir, timeout=60)
    ad_, _ = client.wait_status("lsf/20200101/%s" % r.stdout.split("<")[1].split(">")[0], {4})
    assert ad_.evaluate("ExitCode") == 4


def test_submit_failures_are_four_field_errors(client, jobs_dir, lsf):
    row = client.submit(job_ad(jobs_dir, "bq", "/bin/true", Queue="nosuchq"))
    assert len(row) == 4 and row[1] == "255" and row[3] == "N/A", row
    assert row[2] == "submission command failed (exit code = 255) (stdout:) " \
                     "(stderr:nosuchq: No such queue. Job not submitted.)", row
    lsf.fault("bsub", rc=255, stderr="Request from non-LSF host rejected\n", times=1)
    row = client.submit(job_ad(jobs_dir, "rej", "/bin/true"))
    assert row[1] == "255" and "Request from non-LSF host rejected" in row[2] and row[3] == "N/A", row


def test_directives_reach_the_submitted_script(client, jobs_dir, lsf):
    from blahp.jobmodel import key_hash
    text = job_ad(jobs_dir, "dir", "/bin/true", Queue="short", BatchProject="proj", BatchRuntime=90,
                  RequestMemory=2000, NodeNumber=4, SMPGranularity=2, HostNumber=1, WholeNodes=True,
                  GPUNumber=1, MICNumber=2, BatchExtraSubmitArgs="-G grp")
    jid = submitted(client, text)
    job = lsf.jobs()[bid(jid)]
    key = [p.split('"')[1] for p in text.split(";") if "JobDirectory" in p][0]
    assert job["name"] == "bl_" + key_hash(key)
    assert (job["queue"], job["project"], job["run_limit_min"], job["slots"], job["exclusive"],
            job["login_shell"], job["stdout"], job["stderr"]) == ("short", "proj", 2, 4, True, "/bin/bash",
                                                                  "/dev/null", "/dev/null")
    assert job["resources"] == ["span[ptile=2]", "span[hosts=1]", "select[ngpus>0] rusage[ngpus_excl_p=1]",
                                "rusage[nmics=2]"]
    assert job["options"]["-G"] == "grp"
    assert job["mem_limit"] is None  # memory only with lsf_request_memory=yes
    with open(os.path.join(lsf.state_dir, "jobs", "%s.sh" % bid(jid))) as f:
        script = f.read()
    assert script.startswith("#!/bin/bash\n# pyblahp ") and "\n#BSUB -q short\n" in script
    assert script.index("#BSUB -L /bin/bash") < script.index("#BSUB -G grp") < script.index("_pyb_key=")
    client.wait_status(jid, {4})


# --- clients of their own ------------------------------------------------------------------------

def test_memory_directives_when_asked(make, jobs_dir):
    lsf, c = make("lsf_request_memory=yes\n")
    jid = submitted(c, job_ad(jobs_dir, "mem", "/bin/true", RequestMemory=2000))
    job = lsf.jobs()[bid(jid)]
    assert job["mem_limit"] == "2000" and job["resources"] == ["rusage[mem=2000]"]
    ad_, _ = c.wait_status(jid, {4})
    assert ad_.evaluate("ExitCode") == 0


def test_query_failure_serves_the_last_known_state(make, jobs_dir):
    lsf, c = make()
    jid = submitted(c, job_ad(jobs_dir, "qf", "/bin/sleep", "300"))
    c.wait_status(jid, {2})
    lsf.fault("bjobs", rc=255, stderr="LSF is down. Please wait ...\n")
    time.sleep(2.5)  # past the TTL: every answer now needs a new (failing) query
    for _ in range(3):
        row, ad_ = c.status(jid)
        assert row[1:4] == ["0", "No Error", "2"], row
        time.sleep(0.5)
    assert any(call["command"] == "bjobs" for call in lsf.calls()[-5:])  # it did ask, and failed
    ping = c.call("BLAH_PING", "lsf")
    assert ping[1] == "1" and "LSF is down" in ping[2], ping
    lsf.clear_faults()
    assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_purged_job_is_answered_from_bhist(make, jobs_dir):
    lsf, c = make(NO_EXIT_RECORDS, clean_period=1)
    jid = submitted(c, job_ad(jobs_dir, "purged", "/bin/sh", "-c 'exit 5'"))
    wait_for("job purged from bjobs", lambda: lsf.run(["bjobs", bid(jid)]).returncode == 255)
    ad_, seen = c.wait_status(jid, {4}, timeout=30)
    assert ad_.evaluate("ExitCode") == 5 and ad_.evaluate("ExitBySignal") is False
    assert ad_.evaluate("BatchJobState") == "EXIT"  # from bhist, not an exit record (there are none)
    bhist = [call["argv"] for call in lsf.calls("bhist")]
    assert bhist and bhist[-1] == ["-l", bid(jid)]


def test_history_unavailable_uses_the_exit_record_never_a_guess(make, jobs_dir):
    lsf, c = make(keep_seconds=0)  # finished jobs leave bjobs at once
    lsf.fault("bhist", rc=255, stderr="lsb.events: No such file or directory\n")
    jid = submitted(c, job_ad(jobs_dir, "norec", "/bin/sh", "-c 'sleep 1; exit 3'"))
    ad_, seen = c.wait_status(jid, {4}, timeout=30)
    assert ad_.evaluate("ExitCode") == 3 and ad_.evaluate("BatchJobState") == "exit-record"
    assert lsf.calls("bhist"), "bhist was asked first"


def test_history_unavailable_and_no_exit_record_is_an_error_then_recovers(make, jobs_dir):
    lsf, c = make(NO_EXIT_RECORDS, keep_seconds=0)
    lsf.fault("bhist", rc=255, stderr="lsb.events: No such file or directory\n")
    jid = submitted(c, job_ad(jobs_dir, "nothing", "/bin/sh", "-c 'exit 0'"))
    deadline = time.time() + 30
    while True:
        row, _ = c.status(jid)
        assert row[3] != "4", "completion reported without history or exit record: %s" % row
        if row[1] != "0":
            break
        assert time.time() < deadline
        time.sleep(0.5)
    assert row[1] == "1" and row[2].startswith("Job %s vanished from lsf: no accounting record" % bid(jid)), row
    assert "lsb.events: No such file or directory" in row[2]
    lsf.clear_faults()
    # the explicit error stays until bhist answers again, then the true completion comes
    deadline = time.time() + 30
    while True:
        row, ad_ = c.status(jid)
        if row[1] == "0":
            break
        assert "vanished" in row[2] and time.time() < deadline, row
        time.sleep(0.5)
    assert row[3] == "4" and ad_.evaluate("ExitCode") == 0 and ad_.evaluate("BatchJobState") == "DONE", row


def test_lsf_without_bjobs_o(make, jobs_dir):
    lsf, c = make(o_format=False)
    ok = submitted(c, job_ad(jobs_dir, "old0", "/bin/true"))
    bad = submitted(c, job_ad(jobs_dir, "old3", "/bin/sh", "-c 'exit 3'"))
    assert c.wait_status(ok, {4})[0].evaluate("ExitCode") == 0
    ad_, _ = c.wait_status(bad, {4})
    assert ad_.evaluate("ExitCode") == 3  # the -w table has no exit code: bhist supplied it
    argvs = [call["argv"] for call in lsf.calls("bjobs")]
    assert "-o" in argvs[0] and all("-w" in a for a in argvs[1:]), argvs  # probed once
    assert any(bid(bad) in call["argv"] for call in lsf.calls("bhist"))


def test_lsf_environment_from_profile(make, jobs_dir, tmp_path):
    conf = tmp_path / "lsfconf"
    conf.mkdir()
    lsf, _ = make()
    (conf / "profile.lsf").write_text("echo sourcing profile\nPATH=%s:$PATH; export PATH\n"
                                      "LSF_ENVDIR=%s; export LSF_ENVDIR\n" % (lsf.bin_dir, conf))
    c = GahpClient(env_for(str(tmp_path / "profhome"), CONFIG + "lsf_confpath=%s\n" % conf))
    try:
        assert c.call("BLAH_PING", "lsf")[1:] == ["0", "No error"]
        jid = submitted(c, job_ad(jobs_dir, "prof", "/bin/sh", "-c 'echo $LSF_ENVDIR'"))
        ad_, _ = c.wait_status(jid, {4})
        assert ad_.evaluate("ExitCode") == 0
        assert open(os.path.join(jobs_dir, "prof.out")).read() == "%s\n" % conf  # LSF passes it on
    finally:
        c.close()
    # without the profile the commands are not found at all
    c = GahpClient(env_for(str(tmp_path / "noprof"), CONFIG))
    try:
        row = c.call("BLAH_PING", "lsf")
        assert row[1] == "1" and "cannot run bjobs" in row[2], row
    finally:
        c.close()


def test_bsub_killed_by_timeout_after_lsf_accepted_makes_no_duplicate(make, jobs_dir, tmp_path):
    lsf, _ = make()
    binpath = tmp_path / "slowbin"
    binpath.mkdir()
    for tool in lsf_sim.COMMANDS:
        if tool != "bsub":
            (binpath / tool).symlink_to(os.path.join(lsf.bin_dir, tool))
    # LSF accepts the job, then the command hangs past pyblahp_submit_timeout
    (binpath / "bsub").write_text('#!/bin/sh\n"%s" "$@"\nsleep 60\n' % os.path.join(lsf.bin_dir, "bsub"))
    (binpath / "bsub").chmod(0o755)
    c = GahpClient(env_for(str(tmp_path / "slowhome"), CONFIG + "pyblahp_submit_timeout=3\nlsf_binpath=%s\n" % binpath))
    try:
        text = job_ad(jobs_dir, "slow", "/bin/sleep", "120")
        t0 = time.time()
        row = c.submit(text)
        assert row[1] == "0", row  # adopted through the job name
        assert time.time() - t0 < 30
        again = c.submit(text)
        assert again[1:] == ["0", "No error", row[3]], again  # the live job, not a second one
        assert len(lsf.calls("bsub")) == 1
        assert [j for j, job in lsf.jobs().items() if job["name"].startswith("bl_")] == [bid(row[3])]
        assert c.call("BLAH_JOB_CANCEL", row[3])[1:] == ["0", "No error"]
    finally:
        c.close()
