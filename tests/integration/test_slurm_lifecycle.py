"""The whole job lifecycle through the GAHP protocol against a real Slurm with slurmdbd.

blahpd runs as a subprocess on pipes (as under the gridmanager); the cluster is the session's
private Slurm + slurmdbd + MariaDB on loopback (tests/clusters/slurm.py).
"""
import os
import time

import pytest

from tests.clusters.slurm import slurm_cluster  # noqa: F401
from tests.gahp_client import GahpClient, ad, env_for

CONFIG = """
supported_lrms=slurm,local
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_vanished_grace=60
pyblahp_command_timeout=20
"""


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm-jobs")
    return str(d)


@pytest.fixture(scope="module")
def client(slurm_cluster, jobs_dir):
    home = os.path.join(jobs_dir, "home")
    c = GahpClient(env_for(home, CONFIG, slurm_cluster.env))
    yield c
    assert c.close() == 0


def job_ad(jobs_dir, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name,
                 In="/dev/null", gridtype="slurm", JobDirectory="home_bl_test_%s_%d" % (name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    return row[3]


def squeue_names(cluster, name):
    r = cluster.run(["squeue", "-h", "-a", "-t", "all", "--name", name, "-o", "%i"], check=True)
    return r.stdout.split()


def test_ping(client):
    row = client.call("BLAH_PING", "slurm")
    assert row[1:] == ["0", "No error"], row


def test_submit_idle_running_completed(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "ok", "/bin/sh", "-c 'sleep 3; echo done'"))
    assert jid.startswith("slurm/") and jid.split("/")[2].isdigit()
    ad_, seen = client.wait_status(jid, {4}, timeout=90)
    assert 2 in seen, seen  # it was seen running
    assert ad_.evaluate("ExitCode") == 0 and ad_.evaluate("ExitBySignal") is False
    assert ad_.evaluate("BatchJobId") == jid.split("/")[2]
    assert open(os.path.join(jobs_dir, "ok.out")).read() == "done\n"


def test_nonzero_exit_and_arguments_reach_the_payload(client, jobs_dir):
    tricky = ["a b", "$HOME", "`id`", "it's", 'q"q', "back\\slash", "*"]
    from blahp.argsenv import quote_v2
    jid = submitted(client, job_ad(jobs_dir, "args", "/bin/sh",
                                   quote_v2(["-c", 'printf "%s\\n" "$@"; exit 3', "sh"] + tricky)))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitCode") == 3 and ad_.evaluate("ExitBySignal") is False
    assert open(os.path.join(jobs_dir, "args.out")).read().split("\n")[:-1] == tricky


def test_death_by_signal(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "sig", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 9, ad_


def test_cancel_pending_and_running(client, jobs_dir, slurm_cluster):
    pending = submitted(client, job_ad(jobs_dir, "cp", "/bin/sleep", "300", BatchExtraSubmitArgs="--begin=now+3600"))
    running = submitted(client, job_ad(jobs_dir, "cr", "/bin/sleep", "300"))
    client.wait_status(pending, {1})
    client.wait_status(running, {2})
    for jid in (pending, running):
        assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
        row, ad_ = client.status(jid)
        assert row[1:4] == ["0", "No Error", "3"], row
    # cancelling again (already gone) is still a success
    assert client.call("BLAH_JOB_CANCEL", pending)[1:] == ["0", "No error"]


def test_hold_and_release_pending(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "hp", "/bin/sleep", "300", BatchExtraSubmitArgs="--begin=now+3600"))
    client.wait_status(jid, {1})
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    row, ad_ = client.status(jid)
    assert row[3] == "5", row
    assert "JobHeld" in ad_.evaluate("HoldReason")
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "Job Held jobId %s" % jid]
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[3] == "1", row
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    client.call("BLAH_JOB_CANCEL", jid)


def test_hold_and_release_running(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "hr", "/bin/sleep", "300"))
    client.wait_status(jid, {2})
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    ad_, _ = client.wait_status(jid, {5}, timeout=30)
    assert ad_.evaluate("HoldReason").startswith("Held in Slurm")
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    client.wait_status(jid, {1, 2}, timeout=30)
    client.call("BLAH_JOB_CANCEL", jid)


def test_partition_at_cluster(client, jobs_dir, slurm_cluster):
    jid = submitted(client, job_ad(jobs_dir, "pc", "/bin/true", Queue="debug@%s" % slurm_cluster.name))
    assert jid.endswith("@%s" % slurm_cluster.name), jid
    ad_, _ = client.wait_status(jid, {4})
    assert ad_.evaluate("ExitCode") == 0
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_bad_partition_is_a_four_field_error(client, jobs_dir):
    row = client.submit(job_ad(jobs_dir, "bp", "/bin/true", Queue="nosuchpartition"))
    assert len(row) == 4 and row[3] == "N/A", row
    assert row[1] != "0" and row[2].startswith("submission command failed (exit code = 1)"), row
    assert "nosuchpartition" in row[2] or "partition" in row[2].lower(), row


def test_malformed_and_unsupported_ids(client):
    row, _ = client.status("slurm/20261122/abc")
    assert row[1:] == ["255", "Malformed jobId or out of memory", "0", "N/A"]
    assert client.call("BLAH_JOB_CANCEL", "nonsense")[1:] == ["2", "Malformed jobId nonsense or out of memory"]
    assert client.call("BLAH_JOB_HOLD", "slurm/x/1 2")[1:] == ["2", "Malformed jobId slurm/x/1 2"]


def test_c_blahp_ids_are_answered(client, jobs_dir, slurm_cluster):
    r = slurm_cluster.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "exit 4"], check=True)
    native = r.stdout.strip()
    ad_, _ = client.wait_status("slurm/20200101/%s" % native, {4})
    assert ad_.evaluate("ExitCode") == 4


def test_check_reports_every_served_system(slurm_cluster, jobs_dir):
    import subprocess
    from tests.conftest import blahpd_command
    env = env_for(os.path.join(jobs_dir, "checkhome"), CONFIG, slurm_cluster.env)
    p = subprocess.run(blahpd_command() + ["--check"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    for line in ("ok   batch systems served", "slurm query", "sbatch found", "slurm accounting (sacct)"):
        assert line in out, out
    assert "FAIL" not in out


def test_check_fails_clearly_without_the_batch_tools(jobs_dir):
    import subprocess
    from tests.conftest import blahpd_command
    env = env_for(os.path.join(jobs_dir, "checkhome2"), CONFIG + "slurm_binpath=/nonexistent/bin\n")
    p = subprocess.run(blahpd_command() + ["--check"], env=env, stdout=subprocess.PIPE, timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert "FAIL sbatch found" in out and "FAIL slurm query" in out and "cannot run squeue" in out, out
    assert "ok   local query" in out


def test_local_submit_attributes_script_and_cerequirements(client, jobs_dir, slurm_cluster):
    script = os.path.join(jobs_dir, "home", ".blah", "slurm_local_submit_attributes.sh")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write('[ -n "$maxWallTime" ] && echo "#SBATCH --time=$maxWallTime"\n'
                'echo "#SBATCH --job-name-is-not-touched-by-$VirtualOrganisation" >/dev/null\n')
    try:
        text = job_ad(jobs_dir, "la", "/bin/sleep", "60").replace(
            ' ]', '; CERequirements = maxWallTime == 7 && CondorCE == 1 ]')
        jid = submitted(client, text)
    finally:
        os.unlink(script)
    r = slurm_cluster.run(["scontrol", "-o", "show", "job", jid.split("/")[2]], check=True)
    assert "TimeLimit=00:07:00" in r.stdout, r.stdout
    client.call("BLAH_JOB_CANCEL", jid)


def test_failing_local_submit_attributes_script(client, jobs_dir):
    script = os.path.join(jobs_dir, "home", ".blah", "slurm_local_submit_attributes.sh")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write('echo partial; echo broken >&2; exit 2\n')
    try:
        row = client.submit(job_ad(jobs_dir, "lf", "/bin/true"))
    finally:
        os.unlink(script)
    assert row[1] == "1" and row[3] == "N/A", row
    assert row[2].startswith("submission command failed (exit code = 1) (stdout:partial) (stderr:ERROR: failed "
                             "to run local submit attributes script %s: exit code 2 broken)" % script), row


def test_cancel_of_a_finished_job_succeeds_and_keeps_its_final_state(client, jobs_dir):
    # conformance/sessions/recorded/slurm/22-cancel-finished: "0 No error" (twice), then still 4 —
    # a non-zero exit code shows the answer is the job's own record, not a default
    jid = submitted(client, job_ad(jobs_dir, "cf", "/bin/sh", "-c 'exit 7'"))
    ad_, _ = client.wait_status(jid, {4}, timeout=90)
    assert ad_.evaluate("ExitCode") == 7 and ad_.evaluate("ExitBySignal") is False, ad_
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    time.sleep(2.5)  # past pyblahp_status_ttl_max: the answer below is a fresh one
    row, ad_ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "4"], row
    assert ad_.evaluate("ExitCode") == 7 and ad_.evaluate("ExitBySignal") is False, ad_
    assert ad_.evaluate("BatchJobId") == jid.split("/")[2]


def test_unknown_job_vanishes_with_an_error_never_success(slurm_cluster, jobs_dir):  # noqa: F811
    # a well-formed id Slurm never had: the real blahp says COMPLETED with ExitCode 0 (DO NOT COPY)
    r = slurm_cluster.run(["squeue", "-h", "-j", "999999"])
    assert r.returncode != 0 and "Invalid job id" in r.stderr, (r.returncode, r.stdout, r.stderr)
    c = GahpClient(env_for(os.path.join(jobs_dir, "vanishhome"), CONFIG + "pyblahp_vanished_grace=4\n",
                           slurm_cluster.env))
    try:
        row = c.wait_vanished("slurm/%s/999999" % time.strftime("%Y%m%d"))
        assert row[1] == "1" and row[3:] == ["0", "N/A"], row
        assert row[2].startswith("Job 999999 vanished from slurm: no accounting record and no exit record "
                                 "after 4 s"), row
    finally:
        assert c.close() == 0
