"""The whole job lifecycle through the GAHP protocol against the simulated TORQUE and PBS Pro.

blahpd runs as a subprocess on pipes (as under the gridmanager) with the simulator's ``qsub
qstat qdel qhold qrls`` first on its PATH (conformance/sim/pbs.py); jobs really run, queued for
0.5 s.  Each flavour gets its own simulated server and blahpd; tests that only mean something for
one flavour say so.
"""
import os
import re
import time

import pytest

from tests.clusters.sim import SimSystem
from tests.gahp_client import GahpClient, ad, env_for

COMMANDS = ["qsub", "qstat", "qdel", "qhold", "qrls"]
CONFIG = """
supported_lrms=pbs,local
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
pyblahp_vanished_grace=60
"""
NO_EXIT_RECORDS = "pyblahp_exit_dir=/dev/null/no-exit-records\n"
SERVER = {"torque": "pbsserver", "pro": "pbs01"}
FUTURE = "-a 203001010000"   # qsub -a: not eligible before 2030 (state W)


class Setup:
    def __init__(self, flavour, sim, jobs_dir, client, config):
        self.flavour, self.sim, self.jobs_dir, self.client, self.config = flavour, sim, jobs_dir, client, config
        self.pro = flavour == "pro"
        self.others = []

    def new_client(self, extra_config="", name="other", sim=None):
        home = os.path.join(self.jobs_dir, "home-%s-%d" % (name, len(self.others)))
        c = GahpClient(env_for(home, self.config + extra_config, (sim or self.sim).env))
        self.others.append(c)
        return c


@pytest.fixture(scope="module", params=["torque", "pro"])
def pbs(request, tmp_path_factory):
    flavour = request.param
    base = tmp_path_factory.mktemp("pbs-%s" % flavour)
    # TORQUE keeps finished jobs (state C) for keep_completed; PBS Pro moves them to its history
    sim = SimSystem(base, "pbs", COMMANDS, flavour=flavour, queue_delay=0.5, kill_delay=1.0,
                    keep_seconds=10.0 if flavour == "torque" else 0.0)
    jobs_dir = str(base / "jobs")
    os.makedirs(jobs_dir)
    config = CONFIG + ("pbs_pro=yes\n" if flavour == "pro" else "")
    client = GahpClient(env_for(os.path.join(jobs_dir, "home"), config, sim.env))
    setup = Setup(flavour, sim, jobs_dir, client, config)
    yield setup
    for c in setup.others:
        c.close()
    assert client.close() == 0
    for job_id, job in sim.jobs().items():   # nothing left running behind the tests
        if job["state"] in ("running", "queued"):
            sim.run(["qdel", job_id])


def job_ad(pbs, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=pbs.jobs_dir, Out="%s.out" % name, Err="%s.err" % name,
                 In="/dev/null", gridtype="pbs", JobDirectory="home_bl_%s_%s_%d" % (pbs.flavour, name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    assert re.match(r"pbs/\d{8}/\d+$", row[3]), row
    return row[3]


def batch_id(job_id):
    return job_id.split("/")[2]


def wait_native(pbs, job_id, states, timeout=30):
    """Until the simulator shows the job in one of ``states`` (its own letters)."""
    deadline = time.time() + timeout
    while True:
        r = pbs.sim.run(["qstat"] + (["-x"] if pbs.pro else []) + [batch_id(job_id)])
        m = re.search(r"^%s\.\S+.* ([A-Z]) \S+\s*$" % batch_id(job_id), r.stdout, re.M)
        if m and m.group(1) in states:
            return
        assert time.time() < deadline, "job %s not in %s: %s %s" % (job_id, states, r.stdout, r.stderr)
        time.sleep(0.2)


def test_ping_and_check(pbs):
    assert pbs.client.call("BLAH_PING", "pbs")[1:] == ["0", "No error"]
    import subprocess
    from tests.conftest import blahpd_command
    env = env_for(os.path.join(pbs.jobs_dir, "checkhome"), pbs.config, pbs.sim.env)
    p = subprocess.run(blahpd_command() + ["--check"], env=env, stdout=subprocess.PIPE, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0 and "FAIL" not in out, out
    for line in ("qsub found", "qstat found", "qrls found", "pbs query"):
        assert line in out, out
    assert ("pbs job history (qstat -x)" in out) == pbs.pro
    if pbs.pro:
        assert "job_history_enable = True" in out


def test_success_exit_code_and_signal(pbs):
    c = pbs.client
    ok = submitted(c, job_ad(pbs, "ok", "/bin/sh", "-c 'sleep 3; echo done'"))
    three = submitted(c, job_ad(pbs, "three", "/bin/sh", "-c 'exit 3'"))
    sig = submitted(c, job_ad(pbs, "sig", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, seen = c.wait_status(ok, {4}, timeout=60)
    assert 2 in seen, seen
    assert ad_.evaluate("ExitCode") == 0 and ad_.evaluate("ExitBySignal") is False
    assert ad_.evaluate("BatchJobId") == batch_id(ok) and ad_.evaluate("WorkerNode") == "localhost"
    with open(os.path.join(pbs.jobs_dir, "ok.out")) as f:
        assert f.read() == "done\n"
    ad_, _ = c.wait_status(three, {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 3 and ad_.evaluate("ExitBySignal") is False
    ad_, _ = c.wait_status(sig, {4}, timeout=60)
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 9, ad_
    # the answer came from the batch system itself (TORQUE: C while kept; Pro: its history)
    assert ad_.evaluate("BatchJobState") == ("C" if pbs.flavour == "torque" else "F")


def test_cancel_pending_running_and_finished(pbs):
    c = pbs.client
    pending = submitted(c, job_ad(pbs, "cp", "/bin/sleep", "30", BatchExtraSubmitArgs=FUTURE))
    running = submitted(c, job_ad(pbs, "cr", "/bin/sleep", "30"))
    done = submitted(c, job_ad(pbs, "cd", "/bin/true"))
    c.wait_status(pending, {1})
    wait_native(pbs, pending, "W")
    c.wait_status(running, {2})
    c.wait_status(done, {4})
    for jid in (pending, running):
        assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
        row, _ = c.status(jid)
        assert row[1:4] == ["0", "No Error", "3"], row
    # cancelling again, and cancelling a job that finished by itself: the job is gone, success
    assert c.call("BLAH_JOB_CANCEL", pending)[1:] == ["0", "No error"]
    assert c.call("BLAH_JOB_CANCEL", done)[1:] == ["0", "No error"]
    assert c.call("BLAH_JOB_CANCEL", "pbs/20200101/99999")[1:] == ["0", "No error"]
    qdel = [" ".join(x["argv"]) for x in pbs.sim.calls("qdel")]
    assert batch_id(running) in qdel and "99999" in qdel


def test_hold_and_release(pbs):
    c = pbs.client
    run = submitted(c, job_ad(pbs, "hr", "/bin/sleep", "30"))   # running by the time it is held below
    jid = submitted(c, job_ad(pbs, "hp", "/bin/sleep", "30", BatchExtraSubmitArgs=FUTURE))
    c.wait_status(jid, {1})
    assert c.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    row, ad_ = c.status(jid)
    assert row[3] == "5", row
    assert ad_.evaluate("HoldReason") == "Held in PBS: job %s is H (Hold_Types = u)" % batch_id(jid)
    assert c.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "Job Held jobId %s" % jid]
    assert c.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    row, _ = c.status(jid)
    assert row[3] == "1", row
    wait_native(pbs, jid, "W")
    assert c.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    c.call("BLAH_JOB_CANCEL", jid)

    # a running job: qhold would only set a flag, so the C blahp's refusal, without a command
    c.wait_status(run, {2})
    holds = len(pbs.sim.calls("qhold"))
    assert c.call("BLAH_JOB_HOLD", run)[1:] == [
        "1", "Job RUNNING: pbs hold command failed (stdout:) (stderr:unsupported for this job status)"]
    assert any(line.endswith(" 1 Job\\ RUNNING:\\ pbs\\ hold\\ command\\ failed\\ (stdout:)\\ "
                             "(stderr:unsupported\\ for\\ this\\ job\\ status)\r\n") for line in c.received())
    assert len(pbs.sim.calls("qhold")) == holds
    row, _ = c.status(run)
    assert row[3] == "2"
    c.call("BLAH_JOB_CANCEL", run)


def test_unknown_job_vanishes_with_an_error_never_success(pbs):
    c = pbs.new_client("pyblahp_vanished_grace=3\n", "vanish")
    jid = "pbs/20200101/99999"
    deadline = time.time() + 30
    while True:
        row = c.call("BLAH_JOB_STATUS", jid)
        assert row[1:4] != ["0", "No Error", "4"], row
        if row[1] != "0":
            break
        assert row[3] == "1", row   # "not yet visible" while the grace lasts
        assert time.time() < deadline
        time.sleep(0.5)
    assert row[1] == "1" and row[3:] == ["0", "N/A"], row
    assert row[2].startswith("Job 99999 vanished from pbs: no accounting record and no exit record after 3 s"), row
    if pbs.pro:   # the history lookup was asked and said "unknown"
        assert any("-x" in x["argv"] and "99999" in x["argv"] for x in pbs.sim.calls("qstat"))


def test_purged_job(pbs):
    """Gone from the live queue (TORQUE keep_completed over): PBS Pro answers from its history,
    TORQUE from the wrapper's exit record only — and without one, never a guessed success."""
    with_records = pbs.new_client("", "purge")
    without = pbs.new_client(NO_EXIT_RECORDS + "pyblahp_vanished_grace=4\n", "purge-norec")
    a = submitted(with_records, job_ad(pbs, "pa", "/bin/sh", "-c 'exit 5'"))
    b = submitted(without, job_ad(pbs, "pb", "/bin/sh", "-c 'exit 6'"))
    wait_native(pbs, a, "CF")
    wait_native(pbs, b, "CF")
    pbs.sim.advance(60)   # past keep_completed
    pbs.sim.run(["qstat"])
    assert batch_id(a) not in pbs.sim.jobs() and batch_id(b) not in pbs.sim.jobs()
    ad_, _ = with_records.wait_status(a, {4})
    assert ad_.evaluate("ExitCode") == 5
    assert ad_.evaluate("BatchJobState") == ("F" if pbs.pro else "exit-record")
    if pbs.pro:
        ad_, _ = without.wait_status(b, {4})
        assert ad_.evaluate("ExitCode") == 6 and ad_.evaluate("BatchJobState") == "F"
    else:
        deadline = time.time() + 30
        while True:
            row = without.call("BLAH_JOB_STATUS", b)
            assert row[3] != "4", row
            if row[1] != "0":
                break
            assert time.time() < deadline
            time.sleep(0.5)
        assert row[1] == "1" and row[2].startswith("Job %s vanished from pbs:" % batch_id(b)), row


# PBS Pro only: TORQUE has no history command, every purged TORQUE job is answered this way
# (test_purged_job)
@pytest.mark.parametrize("pbs", ["pro"], indirect=True)
def test_history_unavailable_answers_from_the_exit_record(pbs):
    assert pbs.pro
    c = pbs.new_client("", "nohist")
    pbs.sim.fault("qstat", rc=1, stderr="qstat: Server busy, try again later\n", match="-x")
    try:
        jid = submitted(c, job_ad(pbs, "hx", "/bin/sh", "-c 'exit 7'"))
        ad_, seen = c.wait_status(jid, {4})
        assert ad_.evaluate("ExitCode") == 7 and ad_.evaluate("BatchJobState") == "exit-record", ad_
        assert any("-x" in x["argv"] for x in pbs.sim.calls("qstat"))
    finally:
        pbs.sim.clear_faults()


def test_history_disabled_on_the_server(tmp_path):
    """PBS Pro without job_history_enable: qstat -x says so (exit 0); exit records answer."""
    sim = SimSystem(tmp_path, "pbs", COMMANDS, flavour="pro", history=False, queue_delay=0.5)
    os.makedirs(str(tmp_path / "jobs"))
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "pbs_pro=yes\n", sim.env))
    try:
        pbs = Setup("pro", sim, str(tmp_path / "jobs"), c, CONFIG)
        jobs = [submitted(c, job_ad(pbs, "nh%d" % i, "/bin/sh", "-c 'exit %d'" % (10 + i))) for i in range(2)]
        for i, jid in enumerate(jobs):
            ad_, _ = c.wait_status(jid, {4})
            assert ad_.evaluate("ExitCode") == 10 + i and ad_.evaluate("BatchJobState") == "exit-record"
        # probed once, then not asked again for an hour
        assert len([x for x in sim.calls("qstat") if "-x" in x["argv"]]) == 1
    finally:
        c.close()


def test_submit_failures_are_four_field_errors(pbs):
    c = pbs.client
    row = c.submit(job_ad(pbs, "bq", "/bin/true", Queue="nosuchq"))
    rc, text = ("170", "qsub: Unknown queue") if pbs.pro else \
        ("172", "qsub: submit error (Unknown queue MSG=requested queue not found)")
    assert len(row) == 4 and row[1:] == [rc, "submission command failed (exit code = %s) (stdout:) (stderr:%s)"
                                         % (rc, text), "N/A"], row
    limits = ("qsub: Job violates queue and/or server resource limits", 188) if pbs.pro else \
        ("qsub: submit error (Job exceeds queue resource limits MSG=cannot satisfy queue max walltime "
         "requirement)", 190)
    pbs.sim.fault("qsub", rc=limits[1], stderr=limits[0] + "\n", times=1)
    row = c.submit(job_ad(pbs, "lim", "/bin/true", BatchRuntime=10 ** 7))
    assert row[1] == str(limits[1]) and limits[0] in row[2] and row[3] == "N/A", row


def test_query_failure_serves_the_last_known_state(pbs):
    c = pbs.client
    jid = submitted(c, job_ad(pbs, "qf", "/bin/sleep", "20"))
    c.wait_status(jid, {2})
    pbs.sim.fault("qstat", rc=1, stderr="qstat: cannot connect to server %s (errno=111)\n" % SERVER[pbs.flavour])
    try:
        failed_before = len(pbs.sim.calls("qstat"))
        for _ in range(3):
            row, _ = c.status(jid)
            assert row[1:4] == ["0", "No Error", "2"], row
            time.sleep(0.5)
        assert len(pbs.sim.calls("qstat")) > failed_before   # it did ask, and failed
    finally:
        pbs.sim.clear_faults()
    assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_directives_reach_the_submitted_script(pbs):
    c = pbs.client
    jid = submitted(c, job_ad(pbs, "dir", "/bin/sleep", "20", Queue="batch" if pbs.flavour == "torque" else "workq",
                              BatchRuntime=600, RequestMemory=100, NodeNumber=1, SMPGranularity=1,
                              BatchProject="atlas", BatchExtraSubmitArgs="-W umask=022"))
    job = pbs.sim.jobs()[batch_id(jid)]
    with open(os.path.join(pbs.sim.state_dir, "jobs", "%s.sh" % batch_id(jid))) as f:
        directives = [ln for ln in f.read().splitlines() if ln.startswith("#PBS")]
    assert job["name"] == directives[1].split()[-1] and job["name"].startswith("bl_") and len(job["name"]) == 15
    assert job["account"] == "atlas" and job["queue"] == ("batch" if pbs.flavour == "torque" else "workq")
    assert job["resources"]["walltime"] == "600" and job["stdout"] == "/dev/null" == job["stderr"]
    assert job["extra_attrs"] == {"umask": "022"}
    if pbs.pro:
        assert job["resources"]["select"] == "1:mem=100mb:ncpus=1"
    else:
        assert job["resources"]["mem"] == "100mb" and job["resources"]["pmem"] == "100mb"
        assert job["resources"]["nodes"] == "1:ppn=1"
    assert directives[0] == "#PBS -S /bin/bash" and directives[-1].startswith("#PBS -q ")
    assert directives[-2] == "#PBS -W umask=022" and "#PBS -m n" in directives
    assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_resubmit_of_a_live_job_is_suppressed_and_c_blahp_ids_are_answered(pbs):
    c = pbs.client
    # a job submitted outside pyblahp (a C blahp id, server suffix included)
    script = os.path.join(pbs.jobs_dir, "native.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\n#PBS -o /dev/null\n#PBS -e /dev/null\nexit 4\n")
    native = pbs.sim.run(["qsub", script], check=True).stdout.strip()
    assert native.endswith("." + SERVER[pbs.flavour])
    text = job_ad(pbs, "dup", "/bin/sleep", "20")
    first = submitted(c, text)
    c.wait_status(first, {1, 2})
    qsubs = len(pbs.sim.calls("qsub"))
    assert submitted(c, text) == first
    assert len(pbs.sim.calls("qsub")) == qsubs
    c.call("BLAH_JOB_CANCEL", first)
    ad_, _ = c.wait_status("pbs/20200101/%s" % native, {4})
    assert ad_.evaluate("ExitCode") == 4 and ad_.evaluate("BatchJobId") == native.split(".")[0]


def test_old_pbs_pro_without_json(tmp_path):
    sim = SimSystem(tmp_path, "pbs", COMMANDS, flavour="pro", json=False, queue_delay=0.5)
    os.makedirs(str(tmp_path / "jobs"))
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "pbs_pro=yes\n", sim.env))
    try:
        pbs = Setup("pro", sim, str(tmp_path / "jobs"), c, CONFIG)
        jid = submitted(c, job_ad(pbs, "oj", "/bin/sh", "-c 'exit 2'"))
        ad_, _ = c.wait_status(jid, {4})
        assert ad_.evaluate("ExitCode") == 2 and ad_.evaluate("BatchJobState") == "F"
        argvs = [x["argv"] for x in sim.calls("qstat")]
        assert argvs.count(["-f", "-F", "json"]) == 1 and ["-f"] in argvs   # probed once, then plain -f
        assert ["-x", "-f", batch_id(jid)] in argvs
    finally:
        c.close()


@pytest.mark.parametrize("sig", [15, 9])
def test_exit_status_256_plus_signal_is_a_death_by_that_signal(pbs, sig):
    """A job script killed by a signal: the server's exit status 271 (SIGTERM) / 265 (SIGKILL),
    read from qstat itself (a job submitted outside pyblahp has no wrapper and no exit record)."""
    script = os.path.join(pbs.jobs_dir, "native-sig%d.sh" % sig)
    with open(script, "w") as f:
        f.write("#!/bin/sh\n#PBS -o /dev/null\n#PBS -e /dev/null\nkill -%d $$\n" % sig)
    native = pbs.sim.run(["qsub", script], check=True).stdout.strip().split(".")[0]
    jid = "pbs/20200101/%s" % native
    wait_native(pbs, jid, "CF")
    r = pbs.sim.run(["qstat"] + (["-x"] if pbs.pro else []) + ["-f", native])
    attr = "Exit_status" if pbs.pro else "exit_status"
    assert re.search(r"^\s*%s = %d\s*$" % (attr, 256 + sig), r.stdout, re.M), (r.stdout, r.stderr)
    ad_, _ = pbs.client.wait_status(jid, {4}, timeout=30)
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == sig, ad_
    assert ad_.lookup("ExitCode") is None or ad_.evaluate("ExitCode") != 256 + sig, ad_
    assert ad_.evaluate("BatchJobState") == ("C" if pbs.flavour == "torque" else "F"), ad_


def test_payload_killed_by_sigterm(pbs):
    """A payload that kills itself with SIGTERM: the wrapper survives it and exits 128 + 15 = 143,
    which is what the server records; its exit record says the payload died of signal 15."""
    c = pbs.client
    jid = submitted(c, job_ad(pbs, "term", "/bin/sh", "-c 'kill -TERM $$'"))
    wait_native(pbs, jid, "CF")
    r = pbs.sim.run(["qstat"] + (["-x"] if pbs.pro else []) + ["-f", batch_id(jid)])
    attr = "Exit_status" if pbs.pro else "exit_status"
    assert re.search(r"^\s*%s = 143\s*$" % attr, r.stdout, re.M), (r.stdout, r.stderr)
    ad_, _ = c.wait_status(jid, {4}, timeout=30)
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 15, ad_
