"""The Slurm test cluster itself works: node idle, jobs reach accounting, slurmdbd outage and recovery.

These run against real daemons (tests/clusters/slurm-up.sh); they are skipped on machines without
Slurm and fail under CI when it is missing.
"""

from tests.clusters.slurm import SlurmCluster, require_cluster_support, slurm_cluster  # noqa: F401


def submit(cluster, *args):
    r = cluster.run(["sbatch", "--parsable"] + list(args) + ["--wrap", "true"], check=True)
    return r.stdout.strip().split(";")[0]  # "id" or "id;cluster"


def sacct_row(cluster, job_id, fields="JobIDRaw,State,ExitCode"):
    r = cluster.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-S", cluster.sacct_since(), "-o", fields])
    return r.stdout.strip() if r.returncode == 0 else ""


def finished_row(cluster, job_id):
    """The job's sacct row once it has ended (polled: the record reaches slurmdbd asynchronously)."""
    def ended():
        row = sacct_row(cluster, job_id)
        return row if row.split("|")[1:2] in (["COMPLETED"], ["FAILED"], ["CANCELLED"]) else ""
    return cluster.wait_for(ended, what="job %s finished in sacct" % job_id)


def test_node_idle_in_both_partitions(slurm_cluster):
    r = slurm_cluster.run(["sinfo", "-h", "-o", "%P %N %T"], check=True)
    assert sorted(r.stdout.split("\n")[:-1]) == ["debug* localhost idle", "short localhost idle"]
    r = slurm_cluster.run(["scontrol", "show", "config"], check=True)
    assert "ClusterName             = %s" % slurm_cluster.name in r.stdout


def test_job_completes_and_reaches_accounting(slurm_cluster):
    job = submit(slurm_cluster, "-p", "short")
    assert finished_row(slurm_cluster, job) == "%s|COMPLETED|0:0" % job
    # The first accounting record of a job this short lacks Partition for a few seconds (observed
    # with Slurm 22.05): slurmctld sends the job-start details to slurmdbd later than its end.
    def with_partition():
        row = sacct_row(slurm_cluster, job, "Partition,Cluster")
        return "" if row.startswith("|") else row
    row = slurm_cluster.wait_for(with_partition, what="job %s with its partition in sacct" % job)
    assert row == "short|%s" % slurm_cluster.name


def test_slurmdbd_outage_and_recovery(slurm_cluster):
    slurm_cluster.stop_dbd()
    try:
        r = slurm_cluster.run(["sacct", "-n", "-P", "-X", "-S", slurm_cluster.sacct_since()])
        assert r.returncode != 0 and "database" in r.stderr, (r.returncode, r.stdout, r.stderr)
        # slurmctld keeps scheduling without accounting and queues the records for slurmdbd
        during = submit(slurm_cluster)
        slurm_cluster.wait_for(
            lambda: slurm_cluster.run(["squeue", "-h", "-t", "all", "-j", during, "-o", "%T"]).stdout.strip()
            == "COMPLETED", what="job %s COMPLETED in squeue" % during)
    finally:
        slurm_cluster.start_dbd()
    after = submit(slurm_cluster)
    assert [finished_row(slurm_cluster, job) for job in (during, after)] == [
        "%s|COMPLETED|0:0" % during, "%s|COMPLETED|0:0" % after]


def test_min_job_age_can_be_lowered(slurm_cluster):
    slurm_cluster.set_min_job_age(2)
    try:
        r = slurm_cluster.run(["scontrol", "show", "config"], check=True)
        assert "MinJobAge               = 2 sec" in r.stdout
    finally:
        slurm_cluster.set_min_job_age(300)
    assert "MinJobAge               = 300 sec" in slurm_cluster.run(["scontrol", "show", "config"]).stdout


def test_second_cluster_side_by_side_and_clean_stop(tmp_path):
    require_cluster_support(with_dbd=False)
    other = SlurmCluster(tmp_path / "c", None, with_dbd=False, min_job_age=2)
    other.start()
    try:
        assert other.processes()
        assert submit(other) == "1"  # job ids restart at 1 in every cluster
        r = other.run(["sacct", "-n", "-j", "1"])
        assert r.returncode != 0 and "accounting storage is disabled" in r.stderr
    finally:
        other.stop()
    assert other.processes() == []
