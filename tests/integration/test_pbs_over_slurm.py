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


@pytest.fixture(scope="module")
def client(slurm_cluster, jobs_dir):  # noqa: F811
    c = GahpClient(env_for(os.path.join(jobs_dir, "home"), CONFIG, slurm_cluster.env))
    yield c
    assert c.close() == 0


def job_ad(jobs_dir, name, cmd, args=""):
    return ad(Cmd=cmd, Arguments=args, Iwd=jobs_dir, Out="%s.out" % name, Err="%s.err" % name, In="/dev/null",
              gridtype="pbs", JobDirectory="home_bl_pos_%s_%d" % (name, time.time() * 1000))


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
