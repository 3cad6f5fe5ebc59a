"""The PBS adapter against the PBS emulation over a real Slurm (``slurm-wlm-torque``: Perl
``qsub qstat qdel qhold qrls`` that talk to Slurm), test-environment.md §5.

The package conflicts with Grid Engine over ``/usr/bin/qsub``: the suite either finds it unpacked
in a private directory named by ``PYBLAHP_PBS_OVER_SLURM_BIN`` (scripts/test-all does that) or
installed as ``/usr/bin/qsub``; otherwise the module skips (fails under CI=true).  Tolerated
roughness of the emulation: ``#PBS`` lines are ignored (the job is named after the script and
writes ``<script>.o<id>`` into its directory), finished jobs show ``C`` without an exit status
(the exit record answers), ``qstat`` of an unknown job and of no job at all exits 153 with no
output, ``qdel`` of an unknown job exits 1 silently.
"""
import os
import re
import subprocess
import time

import pytest

from tests.clusters.sharing import in_ci
from tests.clusters.slurm import slurm_cluster  # noqa: F401
from tests.gahp_client import GahpClient, ad, env_for

pytestmark = pytest.mark.pbs_over_slurm

BIN = os.environ.get("PYBLAHP_PBS_OVER_SLURM_BIN") or "/usr/bin"
QSUB = os.path.join(BIN, "qsub")
CONFIG = """
supported_lrms=pbs,local
pbs_binpath=%s
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
pyblahp_vanished_grace=60
""" % BIN


def emulation_missing():
    """Why ``QSUB`` is not the PBS emulation over Slurm, or None when it is."""
    if not os.path.exists(QSUB):
        return "%s does not exist" % QSUB
    owner = ""
    if QSUB == "/usr/bin/qsub":
        try:
            owner = subprocess.run(["dpkg", "-S", QSUB], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   universal_newlines=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    if owner.startswith("slurm-wlm-torque:"):
        return None
    try:
        with open(QSUB, "rb") as f:
            head = f.read(8192).decode("utf-8", "replace")
    except OSError as e:
        return "%s is unreadable: %s" % (QSUB, e)
    lines = head.splitlines()
    if lines and "perl" in lines[0] and "slurm" in head.lower():
        return None
    return "%s is not the PBS emulation over Slurm (%s)" % (QSUB, owner or "not from slurm-wlm-torque")


@pytest.fixture(scope="session", autouse=True)
def emulation():
    # session + autouse: checked before the (session) Slurm cluster is started for nothing
    why = emulation_missing()
    if why is None:
        return
    reason = ("needs slurm-wlm-torque (unpacked: PYBLAHP_PBS_OVER_SLURM_BIN=<dir of its qsub>; installed: "
              "apt-get install slurm-wlm-torque, which removes Grid Engine): " + why)
    if in_ci():
        pytest.fail(reason + " [CI is set: scripts/test-all unpacks it and exports PYBLAHP_PBS_OVER_SLURM_BIN]", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pbs-over-slurm"))


# The emulation ignores ``#PBS`` lines (queue, -a, -h never reach Slurm), but its qsub hands the
# script to sbatch, which reads ``#SBATCH`` lines: the site's local submit attributes script
# (submit-ad.md §10.2) prints them when the ad's CERequirements ask for it, e.g.
# ``CERequirements = pyb_begin == 3600`` for a job that stays pending for an hour.
LOCAL_ATTRIBUTES = """\
[ -n "$pyb_begin" ] && echo "#SBATCH --begin=now+$pyb_begin"
[ -n "$pyb_partition" ] && echo "#SBATCH --partition=$pyb_partition"
[ -n "$pyb_hold" ] && echo "#SBATCH --hold"
true
"""


@pytest.fixture(scope="module")
def client(slurm_cluster, jobs_dir):  # noqa: F811
    home = os.path.join(jobs_dir, "home")
    os.makedirs(os.path.join(home, ".blah"))
    with open(os.path.join(home, ".blah", "pbs_local_submit_attributes.sh"), "w") as f:
        f.write(LOCAL_ATTRIBUTES)
    c = GahpClient(env_for(home, CONFIG, slurm_cluster.env))
    yield c
    assert c.close() == 0


def job_ad(jobs_dir, name, cmd, args="", **requirements):
    text = ad(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name, In="/dev/null",
              gridtype="pbs", JobDirectory="home_bl_pos_%s_%d" % (name, time.time() * 1000))
    if requirements:
        ce = " && ".join("%s == %s" % (k, v if isinstance(v, int) else '"%s"' % v) for k, v in requirements.items())
        text = text[:-1].rstrip() + "; CERequirements = %s ]" % ce
    return text


def batch_id(jid):
    return jid.split("/")[2]


def native(slurm_cluster, jid, field):  # noqa: F811
    """One field (``JobState``, ``Reason``, ``ExitCode``) of the Slurm job behind a pbs/ id."""
    r = slurm_cluster.run(["scontrol", "-o", "show", "job", batch_id(jid)])
    m = re.search(r"\b%s=(\S+)" % field, r.stdout)
    return m.group(1) if m else None


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    return row[3]


def test_submit_gives_a_dated_id_of_the_slurm_job(client, jobs_dir, slurm_cluster):  # noqa: F811
    jid = submitted(client, job_ad(jobs_dir, "sub", "/bin/true"))
    assert re.match(r"pbs/\d{8}/\d+$", jid), jid
    r = slurm_cluster.run(["scontrol", "-o", "show", "job", jid.split("/")[2]])
    assert r.returncode == 0 and "JobId=%s " % jid.split("/")[2] in r.stdout, (r.stdout, r.stderr)
    client.wait_status(jid, {4}, timeout=90)


def test_running_then_completed_with_worker_node_and_exit_codes(client, jobs_dir):
    ok = submitted(client, job_ad(jobs_dir, "ok", "/bin/sh", "-c 'sleep 4; echo done'"))
    three = submitted(client, job_ad(jobs_dir, "three", "/bin/sh", "-c 'exit 3'"))
    running, _ = client.wait_status(ok, {2}, timeout=90)
    assert running.evaluate("WorkerNode") == "localhost" and running.evaluate("BatchJobState") == "R"
    done, seen = client.wait_status(ok, {4}, timeout=90)
    assert done.evaluate("ExitCode") == 0 and done.evaluate("ExitBySignal") is False, done
    with open(os.path.join(jobs_dir, "ok.out")) as f:
        assert f.read() == "done\n"
    failed, _ = client.wait_status(three, {4}, timeout=90)
    assert failed.evaluate("ExitCode") == 3 and failed.evaluate("ExitBySignal") is False, failed


def test_hold_of_a_running_job_is_refused_and_cancel_works(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "hold", "/bin/sleep", "60"))
    client.wait_status(jid, {2}, timeout=90)
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == [
        "1", "Job RUNNING: pbs hold command failed (stdout:) (stderr:unsupported for this job status)"]
    row, _ = client.status(jid)
    assert row[3] == "2", row
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "3"], row


def test_cancel_of_an_unknown_job_is_a_success(client, slurm_cluster):  # noqa: F811
    # the emulation's qdel exits 1 without a word; qstat then says it knows no such job
    r = slurm_cluster.run([os.path.join(os.path.dirname(QSUB), "qstat"), "-f", "-1", "999999"])
    assert (r.returncode, r.stdout) == (153, ""), (r.returncode, r.stdout, r.stderr)
    assert client.call("BLAH_JOB_CANCEL", "pbs/20200101/999999")[1:] == ["0", "No error"]


def test_ping(client):
    assert client.call("BLAH_PING", "pbs")[1:] == ["0", "No error"]


def test_death_by_signal(client, jobs_dir):
    jid = submitted(client, job_ad(jobs_dir, "sig", "/bin/sh", "-c 'kill -9 $$'"))
    ad_, _ = client.wait_status(jid, {4}, timeout=90)
    assert ad_.evaluate("ExitBySignal") is True and ad_.evaluate("ExitSignal") == 9, ad_


def test_cancel_of_a_pending_job(client, jobs_dir, slurm_cluster):  # noqa: F811
    jid = submitted(client, job_ad(jobs_dir, "cp", "/bin/sleep", "300", pyb_begin=3600))
    ad_, _ = client.wait_status(jid, {1}, timeout=60)
    assert ad_.evaluate("BatchJobState") == "Q", ad_
    assert native(slurm_cluster, jid, "JobState") == "PENDING"
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "3"], row
    slurm_cluster.wait_for(lambda: native(slurm_cluster, jid, "JobState") == "CANCELLED", what="job cancelled")
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]   # again: still a success


def test_cancel_of_a_finished_job_keeps_its_final_state(client, jobs_dir, slurm_cluster):  # noqa: F811
    jid = submitted(client, job_ad(jobs_dir, "cf", "/bin/sh", "-c 'exit 7'"))
    ad_, _ = client.wait_status(jid, {4}, timeout=90)
    assert ad_.evaluate("ExitCode") == 7, ad_
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    time.sleep(2.5)   # past pyblahp_status_ttl_max
    row, ad_ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "4"], row
    assert ad_.evaluate("ExitCode") == 7 and ad_.evaluate("ExitBySignal") is False, ad_
    assert native(slurm_cluster, jid, "JobState") == "FAILED"   # Slurm's word for a non-zero exit


def test_hold_of_a_pending_job_is_invisible_through_the_emulation(client, jobs_dir, slurm_cluster):  # noqa: F811
    """backends.md §7.4: qhold reaches Slurm (the job is held there), but the emulation's qstat
    still shows ``Q``, so the job stays IDLE for the GAHP, and BLAH_JOB_RESUME of an IDLE job is
    refused as the C blahp refuses it -- without qrls, so Slurm keeps it held."""
    jid = submitted(client, job_ad(jobs_dir, "hp", "/bin/sleep", "300", pyb_begin=3600))
    client.wait_status(jid, {1}, timeout=60)
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    assert (native(slurm_cluster, jid, "JobState"), native(slurm_cluster, jid, "Reason")) == ("PENDING", "JobHeldAdmin")
    time.sleep(2.5)   # past pyblahp_status_ttl_max
    row, ad_ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "1"] and ad_.evaluate("BatchJobState") == "Q", row
    assert client.call("BLAH_JOB_RESUME", jid)[1:] == ["1", "Job Idle jobId %s" % jid]
    assert native(slurm_cluster, jid, "Reason") == "JobHeldAdmin"
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "3"], row


def test_job_held_at_submit_shows_as_queued(client, jobs_dir, slurm_cluster):  # noqa: F811
    """Held in Slurm from the start (``#SBATCH --hold``; the emulation ignores ``qsub -h``/``#PBS -h``):
    its qstat says ``Q``, so the job is IDLE, not HELD (§7.4)."""
    jid = submitted(client, job_ad(jobs_dir, "hs", "/bin/sleep", "300", pyb_hold=1))
    assert (native(slurm_cluster, jid, "JobState"), native(slurm_cluster, jid, "Reason")) == ("PENDING", "JobHeldUser")
    r = slurm_cluster.run([os.path.join(BIN, "qstat"), "-f", "-1", batch_id(jid)])
    assert r.returncode == 0 and re.search(r"^\s*job_state = Q\s*$", r.stdout, re.M), (r.stdout, r.stderr)
    ad_, _ = client.wait_status(jid, {1}, timeout=60)
    assert ad_.evaluate("BatchJobState") == "Q", ad_
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row, _ = client.status(jid)
    assert row[1:4] == ["0", "No Error", "3"], row


def test_purged_job_is_answered_from_the_exit_record(client, jobs_dir, slurm_cluster):  # noqa: F811
    """Slurm forgets a finished job after MinJobAge; the emulation's qstat then exits 153 with no
    output, and only the wrapper's exit record knows the exit code.  Without one: never a guess."""
    norec = GahpClient(env_for(os.path.join(jobs_dir, "purge-norec"), CONFIG + "pyblahp_vanished_grace=4\n"
                               "pyblahp_exit_dir=/dev/null/no-exit-records\n", slurm_cluster.env))
    qstat = os.path.join(BIN, "qstat")
    slurm_cluster.set_min_job_age(2)
    try:
        a = submitted(client, job_ad(jobs_dir, "pa", "/bin/sh", "-c 'exit 5'"))
        b = submitted(norec, job_ad(jobs_dir, "pb", "/bin/sh", "-c 'exit 6'"))
        for jid in (a, b):
            slurm_cluster.wait_for(lambda: slurm_cluster.run([qstat, "-f", "-1", batch_id(jid)]).returncode == 153,
                                   timeout=200, interval=1, what="job %s purged from Slurm" % jid)
    finally:
        slurm_cluster.set_min_job_age(300)
    try:
        ad_, _ = client.wait_status(a, {4}, timeout=60)
        assert ad_.evaluate("ExitCode") == 5 and ad_.evaluate("ExitBySignal") is False, ad_
        assert ad_.evaluate("BatchJobState") == "exit-record", ad_
        row = norec.wait_vanished(b)
    finally:
        assert norec.close() == 0
    assert row[1] == "1" and row[3:] == ["0", "N/A"], row
    assert row[2].startswith("Job %s vanished from pbs: no accounting record and no exit record after 4 s"
                             % batch_id(b)), row


def test_unknown_job_vanishes_with_an_error_never_success(slurm_cluster, jobs_dir):  # noqa: F811
    c = GahpClient(env_for(os.path.join(jobs_dir, "vanish"), CONFIG + "pyblahp_vanished_grace=4\n",
                           slurm_cluster.env))
    try:
        row = c.wait_vanished("pbs/%s/999999" % time.strftime("%Y%m%d"))
    finally:
        assert c.close() == 0
    assert row[1] == "1" and row[3:] == ["0", "N/A"], row
    assert row[2].startswith("Job 999999 vanished from pbs: no accounting record and no exit record after 4 s"), row


def test_submit_failure_is_a_four_field_error(client, jobs_dir):
    # a bad queue: #PBS -q is ignored by the emulation, so the partition is named to sbatch
    row = client.submit(job_ad(jobs_dir, "bp", "/bin/true", pyb_partition="nosuchpartition"))
    assert len(row) == 4 and row[1:2] == ["1"] and row[3] == "N/A", row
    assert row[2].startswith("submission command failed (exit code = 1) (stdout:There was an error running "
                             "the Slurm sbatch command."), row
    assert "invalid partition specified: nosuchpartition" in row[2], row
