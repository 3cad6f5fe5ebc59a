"""The whole job lifecycle through the GAHP protocol against a real Son of Grid Engine cell.

blahpd runs as a subprocess on pipes (as under the gridmanager); the cell is the session's private
qmaster + execd on loopback (tests/clusters/sge.py).  Grid Engine forgets a finished job in qstat
at once, so every final answer comes from qacct or from the wrapper's exit record:
``BatchJobState`` says which (``z`` = qacct, ``exit-record`` = the wrapper).  Which of the two
answers first is a race (qacct is flushed a second after the end); tests that need qacct to be
the source switch the exit records off.
"""
import calendar
import os
import socket
import stat
import time

import pytest

from tests.clusters.sge import sge_cell  # noqa: F401
from tests.clusters.sharing import is_live
from tests.gahp_client import GahpClient, ad, env_for

CONFIG = """
supported_lrms=sge,local
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_vanished_grace=60
pyblahp_command_timeout=20
sge_memory_resource=h_vmem
"""
NO_EXIT_RECORDS = "pyblahp_exit_dir=/dev/null/no-exit-records\n"
FAR_FUTURE = "-a 203001010000"  # qsub -a: not before 2030, so the job stays pending (qw)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("sge-jobs"))


@pytest.fixture(scope="module")
def client(sge_cell, jobs_dir):
    c = GahpClient(env_for(os.path.join(jobs_dir, "home"), CONFIG, sge_cell.env))
    yield c
    assert c.close() == 0


@pytest.fixture
def make_client(sge_cell, tmp_path):
    """A blahpd of its own for a test that needs other settings."""
    clients = []

    def make(extra_config="", env=None):
        base = sge_cell.env if env is None else env
        c = GahpClient(env_for(str(tmp_path / ("home%d" % len(clients))), CONFIG + extra_config, base))
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()


def job_ad(jobs_dir, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name,
                 In="/dev/null", gridtype="sge", JobDirectory="home_bl_sge_%s_%d" % (name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def submitted(client, text):
    row = client.submit(text)
    assert row[1:3] == ["0", "No error"], row
    return row[3]


def batch_id(job_id):
    return job_id.split("/")[2]


def final(ad_, source=("z", "exit-record")):
    """The exit attributes of a final answer, after checking where it came from."""
    assert ad_.evaluate("BatchJobState") in source, ad_
    return {k: ad_.evaluate(k) for k in ("JobStatus", "ExitCode", "ExitBySignal", "ExitSignal")
            if ad_.lookup(k) is not None}


class disabled_queue:
    """``qmod -d all.q``: submitted jobs stay pending (qw) until the queue is enabled again."""

    def __init__(self, cell):
        self.cell = cell

    def __enter__(self):
        self.cell.run(["qmod", "-d", "all.q"], check=True)
        return self

    def __exit__(self, *exc):
        self.cell.run(["qmod", "-e", "all.q"], check=True)


def test_ping(client):
    assert client.call("BLAH_PING", "sge")[1:] == ["0", "No error"]


def test_success_with_output_file(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "ok", "/bin/sh", "-c 'sleep 2; echo done'"))
    assert jid.startswith("sge/") and len(jid.split("/")[1]) == 14 and batch_id(jid).isdigit(), jid
    # the id's timestamp is the submission time in UTC
    stamp = calendar.timegm(time.strptime(jid.split("/")[1], "%Y%m%d%H%M%S"))
    assert abs(stamp - time.time()) < 60, jid
    ad_, seen = client.wait_status(jid, {4}, timeout=60)
    assert 2 in seen, seen
    assert final(ad_) == {"JobStatus": 4, "ExitCode": 0, "ExitBySignal": False}, ad_
    assert ad_.evaluate("BatchJobId") == batch_id(jid)
    # qacct names the host as the cell knows it, the exit record as the host does
    assert ad_.evaluate("WorkerNode") in ("localhost", socket.gethostname(), socket.getfqdn()), ad_
    with open(os.path.join(jobs_dir, "ok.out")) as f:
        assert f.read() == "done\n"


def test_nonzero_exit(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "three", "/bin/sh", "-c 'echo out; exit 3'"))
    ad_, _ = client.wait_status(jid, {4}, timeout=60)
    assert final(ad_) == {"JobStatus": 4, "ExitCode": 3, "ExitBySignal": False}, ad_
    with open(os.path.join(jobs_dir, "three.out")) as f:
        assert f.read() == "out\n"


@pytest.mark.parametrize("script,signal", [("kill -9 $$", 9), ("kill -TERM $$", 15)])
def test_death_by_signal(client, jobs_dir, script, signal):
    # qacct says exit_status 128+S of the wrapper; its exit record says which signal it was
    jid = submitted(client, job_ad(jobs_dir, "sig%d" % signal, "/bin/sh", "-c '%s'" % script))
    ad_, _ = client.wait_status(jid, {4}, timeout=60)
    assert final(ad_) == {"JobStatus": 4, "ExitBySignal": True, "ExitSignal": signal}, ad_


def test_death_by_signal_without_exit_record_is_exit_code_128_plus_s(make_client, jobs_dir):
    # qacct alone cannot tell `kill -9` from `exit 137`: the code is kept, never turned into 0
    c = make_client(NO_EXIT_RECORDS)
    jid = submitted(c, job_ad(jobs_dir, "sigacct", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, _ = c.wait_status(jid, {4}, timeout=60)
    assert final(ad_, source=("z",)) == {"JobStatus": 4, "ExitCode": 137, "ExitBySignal": False}, ad_


def test_cancel_pending_running_and_finished(client, jobs_dir, sge_cell):
    pending = submitted(client, job_ad(jobs_dir, "cp", "/bin/sleep", "300", BatchExtraSubmitArgs=FAR_FUTURE))
    running = submitted(client, job_ad(jobs_dir, "cr", "/bin/sh", "-c 'echo $$ > cr.pid; exec sleep 300'"))
    done = submitted(client, job_ad(jobs_dir, "cf", "/bin/true"))
    client.wait_status(pending, {1})
    client.wait_status(running, {2}, timeout=30)
    client.wait_status(done, {4}, timeout=60)
    for jid in (pending, running):
        assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
        row, ad_ = client.status(jid)
        assert row[1:4] == ["0", "No Error", "3"], row
    sge_cell.wait_for(lambda: not sge_cell.in_qstat(batch_id(running)), timeout=30, what="cancelled job gone")
    # qdel SIGKILLs the job's process group; the payload runs in a group of its own and must die too
    payload = int(open(os.path.join(jobs_dir, "cr.pid")).read())
    sge_cell.wait_for(lambda: not is_live(payload), timeout=15, what="payload %d of the cancelled job gone" % payload)
    assert not sge_cell.in_qstat(batch_id(pending))
    # qdel of a job that is gone says `denied: job "N" does not exist`: cancelling is idempotent
    for jid in (pending, done):
        assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    # a finished job keeps its completion: the late cancel changed nothing
    row, ad_ = client.status(done)
    assert row[3] == "4" and ad_.evaluate("ExitCode") == 0, row


def test_hold_and_release_pending(client, jobs_dir, sge_cell):
    with disabled_queue(sge_cell):
        jid = submitted(client, job_ad(jobs_dir, "hp", "/bin/sh", "-c 'echo released'"))
        client.wait_status(jid, {1})
        assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
        row, ad_ = client.status(jid)
        assert row[3] == "5" and ad_.evaluate("HoldReason") == "Held in SGE (hqw)", row
        assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "Job Held jobId %s" % jid]
        assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
        row, _ = client.status(jid)
        assert row[3] == "1", row
        assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    ad_, seen = client.wait_status(jid, {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 0, ad_
    with open(os.path.join(jobs_dir, "hp.out")) as f:
        assert f.read() == "released\n"


def test_hold_of_a_running_job_is_refused(client, jobs_dir, sge_cell):
    jid = submitted(client, job_ad(jobs_dir, "hr", "/bin/sleep", "300"))
    client.wait_status(jid, {2}, timeout=30)
    reqid = client.start("BLAH_JOB_HOLD", jid)
    row = client.wait(reqid)
    assert row[1:] == ["1", "Job RUNNING: sge hold command failed (stdout:) (stderr:hold of a running job is not "
                            "supported)"], row
    wire = [line for line in client.received() if line.startswith(reqid + " ")]
    assert wire == ["%s 1 Job\\ RUNNING:\\ sge\\ hold\\ command\\ failed\\ (stdout:)\\ (stderr:hold\\ of\\ a\\ "
                    "running\\ job\\ is\\ not\\ supported)\r\n" % reqid], wire
    r = sge_cell.run(["qstat"], check=True)  # no hold flag was set: still plain "r"
    assert [ln.split()[4] for ln in r.stdout.splitlines() if ln.split()[:1] == [batch_id(jid)]] == ["r"], r.stdout
    client.call("BLAH_JOB_CANCEL", jid)


def test_error_state_is_held_with_the_reason(client, jobs_dir):
    # a later -o wins over ours: the job goes to Eqw because its output cannot be opened
    jid = submitted(client, job_ad(jobs_dir, "eqw", "/bin/true", BatchExtraSubmitArgs="-o /nonexistent/dir/out"))
    ad_, _ = client.wait_status(jid, {5}, timeout=30)
    assert ad_.evaluate("BatchJobState") == "Eqw"
    assert ad_.evaluate("HoldReason") == ('SGE job %s in error state Eqw: error: can\'t open output file '
                                          '"/nonexistent/dir/out": No such file or directory' % batch_id(jid))
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_unknown_job_goes_down_the_ladder_to_an_explicit_error(make_client):
    c = make_client("pyblahp_vanished_grace=3\n")
    jid = "sge/20260101000000/999999"
    deadline = time.time() + 30
    answers = []
    while True:
        row, _ = c.status(jid)
        answers.append(row[1:4])
        assert row[3] != "4", "an unknown job was reported completed: %s" % row
        if row[1] != "0":
            break
        assert row[3] == "1", row  # "not yet visible" during the grace
        assert time.time() < deadline, answers
        time.sleep(0.5)
    assert row[1:] == ["1", "Job 999999 vanished from sge: no accounting record and no exit record after 3 s",
                       "0", "N/A"], row


def test_purged_job_is_answered_from_qacct(make_client, jobs_dir, sge_cell):
    c = make_client(NO_EXIT_RECORDS)
    jid = submitted(c, job_ad(jobs_dir, "purged", "/bin/sh", "-c 'exit 5'"))
    bid = batch_id(jid)
    # nobody asks while it runs: it is gone from qstat before the first status request
    sge_cell.wait_for(lambda: not sge_cell.in_qstat(bid) and sge_cell.has_accounting(bid), timeout=60,
                      what="job %s finished and in qacct" % bid)
    ad_, seen = c.wait_status(jid, {4}, timeout=30)
    assert final(ad_, source=("z",)) == {"JobStatus": 4, "ExitCode": 5, "ExitBySignal": False}, ad_
    assert ad_.evaluate("RemoteWallClockTime") is not None


def test_several_purged_jobs_are_answered_from_one_qacct_listing(make_client, jobs_dir, sge_cell):
    c = make_client(NO_EXIT_RECORDS)
    jids = [submitted(c, job_ad(jobs_dir, "many%d" % i, "/bin/sh", "-c 'exit %d'" % (10 + i))) for i in range(3)]
    for jid in jids:
        bid = batch_id(jid)
        sge_cell.wait_for(lambda: not sge_cell.in_qstat(bid) and sge_cell.has_accounting(bid), timeout=60,
                          what="job %s finished and in qacct" % bid)
    for i, jid in enumerate(jids):
        ad_, _ = c.wait_status(jid, {4}, timeout=30)
        assert final(ad_, source=("z",)) == {"JobStatus": 4, "ExitCode": 10 + i, "ExitBySignal": False}, ad_


def _failing_qacct_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("qsub", "qstat", "qdel", "qhold", "qrls"):
        (d / tool).symlink_to("/usr/bin/" + tool)
    bad = d / "qacct"
    bad.write_text('#!/bin/sh\necho "error: can\'t open accounting file" >&2\nexit 1\n')
    bad.chmod(bad.stat().st_mode | stat.S_IXUSR)
    return str(d)


def test_accounting_unavailable_answer_comes_from_the_exit_record(make_client, jobs_dir, tmp_path):
    c = make_client("sge_binpath=%s\n" % _failing_qacct_dir(tmp_path))
    jid = submitted(c, job_ad(jobs_dir, "noacct", "/bin/sh", "-c 'exit 6'"))
    ad_, _ = c.wait_status(jid, {4}, timeout=60)
    assert final(ad_, source=("exit-record",)) == {"JobStatus": 4, "ExitCode": 6, "ExitBySignal": False}, ad_


def test_accounting_unavailable_without_exit_record_is_never_a_guess(make_client, jobs_dir, tmp_path, sge_cell):
    c = make_client(NO_EXIT_RECORDS + "pyblahp_vanished_grace=4\nsge_binpath=%s\n" % _failing_qacct_dir(tmp_path))
    jid = submitted(c, job_ad(jobs_dir, "guess", "/bin/true"))
    sge_cell.wait_for(lambda: not sge_cell.in_qstat(batch_id(jid)), timeout=60, what="job finished")
    deadline = time.time() + 30
    while True:
        row, _ = c.status(jid)
        assert row[3] != "4", "completion reported without accounting or exit record: %s" % row
        if row[1] != "0":
            break
        assert time.time() < deadline, row
        time.sleep(0.5)
    assert row[1] == "1" and row[2] == (
        "Job %s vanished from sge: no accounting record and no exit record after 4 s (last accounting error: "
        "qacct exit code 1: error: can't open accounting file)" % batch_id(jid)), row


def test_submit_failure_carries_the_qsub_error(client, jobs_dir):
    row = client.submit(job_ad(jobs_dir, "badq", "/bin/true", Queue="nosuch.q"))
    assert row[1] == "1" and row[3] == "N/A", row
    assert row[2] == ('submission command failed (exit code = 1) (stdout:) (stderr:Unable to run job: Job was '
                      'rejected because job requests unknown queue "nosuch.q"-Exiting.)'), row


def test_a_queue_instance_reaches_grid_engine(client, jobs_dir, sge_cell):
    """Queue = "all.q@localhost" is a queue instance: Grid Engine gets it whole and runs the job there."""
    jid = submitted(client, job_ad(jobs_dir, "qi", "/bin/true", Queue="all.q@localhost",
                                   BatchExtraSubmitArgs=FAR_FUTURE))
    r = sge_cell.run(["qstat", "-j", batch_id(jid)], check=True)
    fields = dict(ln.split(":", 1) for ln in r.stdout.splitlines() if ":" in ln and not ln.startswith(" "))
    assert fields["hard_queue_list"].strip() == "all.q@localhost", r.stdout
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row = client.submit(job_ad(jobs_dir, "qi2", "/bin/true", Queue="all.q@nosuchhost"))
    assert row[1] == "1" and row[3] == "N/A" and "nosuchhost" in row[2], row


def test_runtime_memory_and_project_directives_reach_the_job(client, jobs_dir, sge_cell):
    jid = submitted(client, job_ad(jobs_dir, "res", "/bin/true", BatchRuntime=120, RequestMemory=2000,
                                   BatchProject="atlas", BatchExtraSubmitArgs=FAR_FUTURE))
    r = sge_cell.run(["qstat", "-j", batch_id(jid)], check=True)
    fields = dict(ln.split(":", 1) for ln in r.stdout.splitlines() if ":" in ln and not ln.startswith(" "))
    assert sorted(fields["hard resource_list"].strip().split(",")) == ["h_rt=120", "h_vmem=2000M"], r.stdout
    assert fields["job_name"].strip().startswith("bl_") and len(fields["job_name"].strip()) == 15
    assert fields["stdout_path_list"].strip() == "NONE:NONE:/dev/null"
    assert fields["shell_list"].strip() == "NONE:/bin/bash"
    assert fields["account"].strip() == "atlas"
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_site_settings_file_alone_locates_the_cell(make_client, jobs_dir, sge_cell):
    # no SGE_* in the environment: root and cell from the config, ports from settings.sh
    env = {k: v for k, v in sge_cell.env.items() if not k.startswith("SGE_")}
    c = make_client("sge_rootpath=%s\nsge_cellname=%s\n" % (sge_cell.root, sge_cell.cell), env=env)
    assert c.call("BLAH_PING", "sge")[1:] == ["0", "No error"]
    jid = submitted(c, job_ad(jobs_dir, "settings", "/bin/sh", "-c 'exit 4'"))
    assert sge_cell.in_qstat(batch_id(jid)) or sge_cell.has_accounting(batch_id(jid))
    ad_, _ = c.wait_status(jid, {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 4


def test_c_blahp_ids_are_answered(client, jobs_dir, sge_cell):
    script = os.path.join(jobs_dir, "native.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexit 7\n")
    r = sge_cell.run(["qsub", "-terse", "-o", "/dev/null", "-e", "/dev/null", script], check=True)
    ad_, _ = client.wait_status("sge/20200101000000/%s" % r.stdout.strip(), {4}, timeout=60)
    assert final(ad_, source=("z",)) == {"JobStatus": 4, "ExitCode": 7, "ExitBySignal": False}, ad_


def test_check_reports_the_commands(sge_cell, jobs_dir):
    import subprocess
    from tests.conftest import blahpd_command
    env = env_for(os.path.join(jobs_dir, "checkhome"), CONFIG, sge_cell.env)
    p = subprocess.run(blahpd_command() + ["--check"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    for line in ("ok   sge query", "ok   qsub found", "ok   qacct found"):
        assert line in out, out


def test_local_submit_attributes_script(client, jobs_dir, sge_cell):
    script = os.path.join(jobs_dir, "home", ".blah", "sge_local_submit_attributes.sh")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write('[ -n "$maxWallTime" ] && echo "#\\$ -l h_rt=$maxWallTime"\n')
    try:
        text = job_ad(jobs_dir, "la", "/bin/true", BatchExtraSubmitArgs=FAR_FUTURE).replace(
            ' ]', '; CERequirements = maxWallTime == 77 && CondorCE == 1 ]')
        jid = submitted(client, text)
    finally:
        os.unlink(script)
    r = sge_cell.run(["qstat", "-j", batch_id(jid)], check=True)
    assert "hard resource_list:         h_rt=77\n" in r.stdout, r.stdout
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
