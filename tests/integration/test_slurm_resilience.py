"""What the C blahp gets wrong, against the real Slurm: purged jobs, slurmdbd outages, slow
sbatch, and a blahpd killed in the middle of a submit burst.

The cluster runs with MinJobAge=2 here (HTC-site setting: finished jobs leave squeue at once),
and blahpd's exit records are disabled where a test needs accounting to be the only source.
"""
import stat
import time

import pytest

from tests.clusters.slurm import slurm_cluster  # noqa: F401
from tests.gahp_client import GahpClient, ad, env_for

BASE = """
supported_lrms=slurm
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=15
"""
NO_EXIT_RECORDS = "pyblahp_exit_dir=/dev/null/no-exit-records\n"


@pytest.fixture(scope="module")
def purging(slurm_cluster):
    slurm_cluster.set_min_job_age(2)
    yield slurm_cluster
    slurm_cluster.set_min_job_age(300)


@pytest.fixture
def make_client(purging, tmp_path):
    clients = []

    def make(extra_config="", home=None, binpath=None):
        cfg = BASE + extra_config + ("slurm_binpath=%s\n" % binpath if binpath else "")
        c = GahpClient(env_for(home or str(tmp_path / "home"), cfg, purging.env))
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()


def job_ad(tmp_path, name, cmd, args="", **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=str(tmp_path), Out="/dev/null", Err="/dev/null",
                 gridtype="slurm", JobDirectory="home_bl_res_%s_%d" % (name, time.time() * 1000))
    attrs.update(extra)
    return ad(**attrs)


def in_squeue(cluster, batch_id):
    r = cluster.run(["squeue", "-h", "-a", "-t", "all", "-o", "%i"], check=True)
    return batch_id in r.stdout.split()


def test_purged_job_is_resolved_through_sacct(make_client, purging, tmp_path):
    c = make_client(NO_EXIT_RECORDS)
    row = c.submit(job_ad(tmp_path, "purged", "/bin/sh", "-c 'exit 5'"))
    assert row[1] == "0", row
    batch_id = row[3].split("/")[2]
    purging.wait_for(lambda: not in_squeue(purging, batch_id), timeout=60, what="job purged from squeue")
    ad_, _ = c.wait_status(row[3], {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 5 and ad_.evaluate("ExitBySignal") is False


def test_slurmdbd_down_gives_no_false_success(make_client, purging, tmp_path):
    c = make_client(NO_EXIT_RECORDS + "pyblahp_vanished_grace=8\n")
    purging.stop_dbd()
    try:
        row = c.submit(job_ad(tmp_path, "dbd", "/bin/true"))
        assert row[1] == "0", row
        jid = row[3]
        purging.wait_for(lambda: not in_squeue(purging, jid.split("/")[2]), timeout=60, what="job purged")
        deadline = time.time() + 20
        answers = set()
        while time.time() < deadline:
            r, _ = c.status(jid)
            answers.add((r[1], r[3]))
            assert r[3] != "4", "completion reported while accounting was down: %s" % r
            if r[1] == "1":
                assert r[2].startswith("Job %s vanished from slurm: no accounting record" % jid.split("/")[2]), r
                break
            time.sleep(1)
        assert ("1", "0") in answers, answers  # the grace period ended in an explicit error
    finally:
        purging.start_dbd()
    # slurmctld replays the job's records to slurmdbd when it is back; until then the answer
    # stays the explicit "vanished" error, and then it becomes the true completion.
    deadline = time.time() + 120
    while True:
        r, ad_ = c.status(jid)
        if r[3] == "4":
            break
        assert r[1] == "1" and "vanished" in r[2], r
        assert time.time() < deadline, "accounting never came back: %s" % r
        time.sleep(2)
    assert ad_.evaluate("ExitCode") == 0 and ad_.evaluate("ExitBySignal") is False


def _slow_sbatch_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("squeue", "sacct", "scontrol", "scancel"):
        (d / tool).symlink_to("/usr/bin/" + tool)
    slow = d / "sbatch"
    # slurmctld accepts the job, then the command hangs past pyblahp_submit_timeout
    slow.write_text('#!/bin/sh\n/usr/bin/sbatch "$@"\nsleep 60\n')
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    return str(d)


def test_sbatch_killed_by_timeout_makes_no_duplicate(make_client, purging, tmp_path):
    c = make_client("pyblahp_submit_timeout=3\n", binpath=_slow_sbatch_dir(tmp_path))
    text = job_ad(tmp_path, "slow", "/bin/sleep", "120")
    t0 = time.time()
    row = c.submit(text)
    assert row[1] == "0", row  # adopted through the job's key
    assert time.time() - t0 < 60
    jid = row[3]
    again = c.submit(text)
    assert again[1:] == ["0", "No error", jid], again  # the live job is returned, not a second one
    from blahp.jobmodel import key_hash
    key = [p.split('"')[1] for p in text.split(";") if "JobDirectory" in p][0]
    r = purging.run(["squeue", "-h", "-a", "--name", "bl_" + key_hash(key), "-o", "%i"], check=True)
    assert r.stdout.split() == [jid.split("/")[2]]
    assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]


def test_sigkill_mid_burst_then_restart(make_client, purging, tmp_path):
    home = str(tmp_path / "home")
    ads = [job_ad(tmp_path, "burst%d" % i, "/bin/sleep", "300") for i in range(8)]
    first = make_client(home=home)
    reqs = [first.start("BLAH_JOB_SUBMIT", a) for a in ads]
    got = {}
    deadline = time.time() + 60
    while len(got) < 3 and time.time() < deadline:
        first.poll()
        for i, r in enumerate(reqs):
            if r in first.results:
                got[i] = first.results.pop(r)[3]
        time.sleep(0.05)
    assert len(got) >= 3
    first.kill()  # SIGKILL: no chance to record anything more

    second = make_client(home=home)
    ids = [second.submit(a) for a in ads]
    assert all(r[1] == "0" for r in ids), ids
    for i, jid in got.items():
        assert ids[i][3] == jid, "job %d: %s before the crash, %s after" % (i, jid, ids[i][3])
    from blahp.jobmodel import key_hash
    for a, r in zip(ads, ids):
        key = [p.split('"')[1] for p in a.split(";") if "JobDirectory" in p][0]
        q = purging.run(["squeue", "-h", "-a", "--name", "bl_" + key_hash(key), "-o", "%i"], check=True)
        assert q.stdout.split() == [r[3].split("/")[2]], (key, q.stdout)
        st, _ = second.status(r[3])
        assert st[1] == "0" and st[3] in ("1", "2"), st
    for r in ids:
        assert second.call("BLAH_JOB_CANCEL", r[3])[1:] == ["0", "No error"]
