"""Golden-output tests of the Slurm parsers and the Slurm state → JobStatus table.

Fixtures marked "captured" are verbatim output of Slurm 22.05.8 (slurmctld + slurmdbd on one
host); the others are written in the same formats for cases that a one-node test cluster
cannot produce (OUT_OF_MEMORY, compressed node lists, multi-day runs, old ReqMem suffixes).
"""
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blahp.backends import slurm_parse as sp
from blahp.records import AD_ORDER, COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord

# --- sbatch ------------------------------------------------------------------------------


@pytest.mark.parametrize("stdout,expected", [
    ("1\n", ("1", None)),                                        # captured
    ("14;testc\n", ("14", "testc")),                             # captured, sbatch -M testc --parsable
    ("Submitted batch job 2\n", ("2", None)),                    # captured, without --parsable
    ("Submitted batch job 15 on cluster testc\n", ("15", "testc")),  # captured, -M without --parsable
    ("\n  42  \n", ("42", None)),
    ("module loaded\nSubmitted batch job 77\n", ("77", None)),
])
def test_parse_sbatch(stdout, expected):
    assert sp.parse_sbatch(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "\n", "1 2\n", "12abc\n", "sbatch: error: Batch job submission failed\n",
                                    "Submitted batch job \n", "-5\n", "7;\n"])
def test_parse_sbatch_no_id(stdout):
    assert sp.parse_sbatch(stdout) is None


# --- squeue ------------------------------------------------------------------------------

# captured: squeue -h -t all -o "%i|%T|%r|%B" while the test jobs ran
SQUEUE_CAPTURED = """\
7|CANCELLED|None|localhost
1|COMPLETED|None|localhost
10_2|COMPLETED|None|localhost
2|FAILED|NonZeroExitCode|localhost
3|FAILED|JobLaunchFailure|localhost
10_3|PENDING|Resources|n/a
11|PENDING|Priority|n/a
8|PENDING|JobHeldUser|n/a
4|TIMEOUT|TimeLimit|localhost
16|RUNNING|None|localhost
10_[1-3]|PENDING|Priority|n/a
"""


def test_parse_squeue_captured():
    recs = sp.parse_squeue(SQUEUE_CAPTURED, observed_at=5.0)
    assert list(recs) == ["7", "1", "10_2", "2", "3", "10_3", "11", "8", "4", "16", "10_[1-3]"]
    assert recs["7"] == NativeRecord("7", "CANCELLED", worker_node="localhost", source="bulk",
                                     observed_at=5.0)
    assert recs["2"] == NativeRecord("2", "FAILED", reason="NonZeroExitCode", worker_node="localhost",
                                     observed_at=5.0)
    assert recs["8"] == NativeRecord("8", "PENDING", reason="JobHeldUser", observed_at=5.0)
    assert recs["16"].reason is None and recs["16"].worker_node == "localhost"
    assert recs["10_[1-3]"].state == "PENDING"
    assert all(r.cluster is None and r.source == "bulk" for r in recs.values())


def test_parse_squeue_captured_holds():
    # captured: after `scontrol suspend 17`, `scontrol requeuehold 18`, `scontrol hold 8`, `scancel 8`;
    # a requeue-held job's reason is free text (scontrol spells it job_requeued_in_held_state)
    text = ("18|PENDING|job requeued in held state|n/a\n17|SUSPENDED|None|localhost\n"
            "8|PENDING|JobHeldAdmin|n/a\n")
    recs = sp.parse_squeue(text)
    assert recs["18"].reason == "job requeued in held state"
    assert [sp.map_record(r).status for r in recs.values()] == [IDLE, RUNNING, HELD]
    held = sp.DEFAULT_HELD_REASONS + ("job requeued in held state",)
    assert sp.map_record(recs["18"], held_reasons=held).attrs["HoldReason"] == (
        "Held in Slurm: job 18 is PENDING with reason job requeued in held state")
    cancelled = sp.parse_squeue("8|CANCELLED|JobHeldAdmin|n/a\n")["8"]
    assert sp.map_record(cancelled) == JobAnswer(REMOVED, {
        "BatchJobId": "8", "JobStatus": 3, "ExitReason": "Slurm state CANCELLED",
        "BatchJobState": "CANCELLED/JobHeldAdmin"})


def test_parse_squeue_spec_listing():
    # the spec's `squeue -h -o "%i %T %r"` listing, in SQUEUE_FORMAT
    recs = sp.parse_squeue("1|PENDING|None|n/a\n3|PENDING|Priority|n/a\n2|PENDING|JobHeldUser|(null)\n")
    assert [(r.batch_id, r.state, r.reason, r.worker_node) for r in recs.values()] == [
        ("1", "PENDING", None, None), ("3", "PENDING", "Priority", None), ("2", "PENDING", "JobHeldUser", None)]


def test_parse_squeue_cluster_headers():
    text = ("CLUSTER: testc\nJOBID|STATE|REASON|EXEC_HOST\n11|PENDING|BeginTime|n/a\n\n"
            "CLUSTER: other\n12|RUNNING|None|node[01-02]\n")
    recs = sp.parse_squeue(text)
    assert recs["11"] == NativeRecord("11", "PENDING", cluster="testc", reason="BeginTime")
    assert recs["12"] == NativeRecord("12", "RUNNING", cluster="other", worker_node="node01")


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_parse_squeue_empty(text):
    assert sp.parse_squeue(text) == {}


@pytest.mark.parametrize("text", [
    "1 PENDING None\n",                                   # the wrong format
    "1|PENDING|None\n",                                   # 3 fields
    "1|PENDING|None|n/a|extra\n",                          # 5 fields
    "abc|PENDING|None|n/a\n",
    "1 2|PENDING|None|n/a\n",
    "slurm_load_jobs error: Invalid job id specified\n",
    "squeue: error: Socket timed out on send/recv operation\n",
    "1|PENDING|None|n/a\ngarbage\n",
    "1||None|n/a\n",                                       # no state
])
def test_parse_squeue_garbage(text):
    with pytest.raises(ValueError):
        sp.parse_squeue(text)


# --- sacct -------------------------------------------------------------------------------

# captured: sacct -n -P --noconvert -o JobIDRaw,...,ReqMem.  Jobs: 1 exit 0, 2 exit 3,
# 3 script kill -9 $$, 4 --time=1 (timeout), 5 over --mem (JobAcctGather kill), 6 150 MB RSS,
# 7 scancel while running, 9 -n 2 --mem-per-cpu=100M, 11 requeued while running, 16 running,
# 8 held pending, 17 suspended; 18 is job 8's row after `scancel` (renumbered to keep 8 pending).
SACCT_CAPTURED = """\
1|COMPLETED|0:0|00:00:00|00:00.002||1|00:00:00|localhost|2000M|2026-11-21T21:50:00
1.batch|COMPLETED|0:0|00:00:00|00:00.002||1|00:00:00|localhost||2026-11-21T21:50:00
2|FAILED|3:0|00:00.002|00:00:00||1|00:00:00|localhost|2000M|2026-11-21T21:50:00
2.batch|FAILED|3:0|00:00.002|00:00:00||1|00:00:00|localhost||2026-11-21T21:50:00
3|FAILED|0:9|00:00.002|00:00:00||1|00:00:00|localhost|2000M|2026-11-21T21:50:00
3.batch|CANCELLED|0:9|00:00.002|00:00:00||1|00:00:00|localhost||2026-11-21T21:50:00
4|TIMEOUT|0:0|00:00.002|00:00:00||1|00:01:04|localhost|2000M|2026-11-21T21:50:00
4.batch|CANCELLED|0:15|00:00.002|00:00:00|3268608|1|00:01:04|localhost||2026-11-21T21:50:00
5|FAILED|0:9|00:00.002|00:00:00||1|00:00:01|localhost|60M|2026-11-21T21:50:00
5.batch|CANCELLED by 0|0:9|00:00.002|00:00:00|322404352|1|00:00:01|localhost||2026-11-21T21:50:00
6|COMPLETED|0:0|00:00.403|00:00.242||1|00:00:04|localhost|500M|2026-11-21T21:50:00
6.batch|COMPLETED|0:0|00:00.403|00:00.242|172187648|1|00:00:04|localhost||2026-11-21T21:50:00
7|CANCELLED by 0|0:0|00:00:00|00:00.002||1|00:00:03|localhost|2000M|2026-11-21T21:50:00
7.batch|CANCELLED|0:15|00:00:00|00:00.002|3411968|1|00:00:03|localhost||2026-11-21T21:50:00
9|COMPLETED|0:0|00:00.001|00:00.002||2|00:00:05|localhost|200M|2026-11-21T21:50:00
9.batch|COMPLETED|0:0|00:00.001|00:00.002|3244032|2|00:00:05|localhost||2026-11-21T21:50:00
11|REQUEUED|0:0|00:00.001|00:00.002||1|00:00:03|localhost|2000M|2026-11-21T21:50:00
11.batch|CANCELLED|0:15|00:00.001|00:00.002|3411968|1|00:00:03|localhost||2026-11-21T21:50:00
8|PENDING|0:0|00:00:00|00:00:00||1|00:00:00|None assigned|2000M|Unknown
16|RUNNING|0:0|00:00:00|00:00:00||1|00:00:00|localhost|2000M|Unknown
16.batch|RUNNING|0:0|00:00:00|00:00:00||1|00:00:00|localhost||Unknown
17|SUSPENDED|0:0|00:00:00|00:00:00||1|00:00:03|localhost|100M|Unknown
17.batch|SUSPENDED|0:0|00:00:00|00:00:00||1|00:00:03|localhost||Unknown
18|CANCELLED by 0|0:0|00:00:00|00:00:00||1|00:00:00|None assigned|2000M|2026-11-21T21:50:00
"""


def acct(batch_id, state, **kw):
    kw.setdefault("source", "accounting")
    return NativeRecord(batch_id, state, **kw)


def test_parse_sacct_captured():
    recs = sp.parse_sacct(SACCT_CAPTURED, observed_at=9.0)
    assert list(recs) == ["1", "2", "3", "4", "5", "6", "7", "9", "11", "8", "16", "17", "18"]
    common = dict(worker_node="localhost", alloc_cpus=1, observed_at=9.0)
    assert recs["1"] == acct("1", "COMPLETED", exit_code=0, exit_signal=0, user_cpu_s=0.0, sys_cpu_s=0.002,
                             wall_s=0.0, mem_mb=2000, **common)
    assert recs["2"] == acct("2", "FAILED", exit_code=3, exit_signal=0, user_cpu_s=0.002, sys_cpu_s=0.0,
                             wall_s=0.0, mem_mb=2000, **common)
    assert recs["3"] == acct("3", "FAILED", exit_code=0, exit_signal=9, user_cpu_s=0.002, sys_cpu_s=0.0,
                             wall_s=0.0, mem_mb=2000, **common)
    # TIMEOUT leaves 0:0 on the allocation; the batch step saw SIGTERM.  3268608 B = 3192 KiB.
    assert recs["4"] == acct("4", "TIMEOUT", exit_code=0, exit_signal=15, user_cpu_s=0.002, sys_cpu_s=0.0,
                             wall_s=64.0, max_rss_kib=3192, mem_mb=2000, **common)
    assert recs["5"] == acct("5", "FAILED", exit_code=0, exit_signal=9, user_cpu_s=0.002, sys_cpu_s=0.0,
                             wall_s=1.0, max_rss_kib=314848, mem_mb=60, **common)
    assert recs["6"] == acct("6", "COMPLETED", exit_code=0, exit_signal=0, user_cpu_s=0.403, sys_cpu_s=0.242,
                             wall_s=4.0, max_rss_kib=168152, mem_mb=500, **common)
    assert recs["7"] == acct("7", "CANCELLED", exit_code=0, exit_signal=15, user_cpu_s=0.0, sys_cpu_s=0.002,
                             wall_s=3.0, max_rss_kib=3332, mem_mb=2000, **common)
    # 22.05 prints the job's total ReqMem (2 CPUs × 100M) without a per-CPU suffix
    assert recs["9"].mem_mb == 200 and recs["9"].alloc_cpus == 2
    assert recs["11"].state == "REQUEUED"
    assert recs["8"] == acct("8", "PENDING", exit_code=0, exit_signal=0, user_cpu_s=0.0, sys_cpu_s=0.0,
                             wall_s=0.0, alloc_cpus=1, mem_mb=2000, observed_at=9.0)
    assert recs["16"].state == "RUNNING"
    assert recs["18"] == acct("18", "CANCELLED", exit_code=0, exit_signal=0, user_cpu_s=0.0, sys_cpu_s=0.0,
                              wall_s=0.0, alloc_cpus=1, mem_mb=2000, observed_at=9.0)


# written: steps on several nodes, days of run time, MaxRSS with unit suffixes (sacct
# without --noconvert), the OOM marker 0:125, old ReqMem suffixes
SACCT_WRITTEN = """\
21|OUT_OF_MEMORY|0:125|01:02.345|00:03.500||4|1-02:03:04|node[01-03,07]|4G|
21.batch|OUT_OF_MEMORY|0:125|01:02.345|00:03.500|1024K|4|1-02:03:04|node01||
21.extern|COMPLETED|0:0|00:00:00|00:00:00|2M|4|1-02:03:04|node[01-03,07]||
21.0|OUT_OF_MEMORY|0:125|00:00:00|00:00:00|3000K|4|1-02:03:00|node[01-03,07]||
22|COMPLETED|0:0|01:00:00|00:10:00||4|02:00:00|gpu-a[3-4],gpu-b7|2000Mc|
22.batch|COMPLETED|0:0|01:00:00|00:10:00|1.5G|4|02:00:00|gpu-a3||
23|COMPLETED|0:0|00:00:00|00:00:00||8|00:00:10|c1,c2|2000Mn|
24|RUNNING|0:0|00:00:00|00:00:00||2|00:10:00|n7|1T|Unknown
24.0|COMPLETED|0:0|00:01:00|00:00:02|10M|2|00:02:00|n7||
24.1|RUNNING|0:0|00:00:30.500|00:00:00.250||2|00:08:00|n7||Unknown
25|PENDING|0:0|00:00:00|00:00:00||0|00:00:00|None assigned|0|Unknown
26|NODE_FAIL|0:0||||||||
27|CANCELLED+|0:0||||||||
"""


def test_parse_sacct_written():
    recs = sp.parse_sacct(SACCT_WRITTEN)
    assert recs["21"] == acct("21", "OUT_OF_MEMORY", exit_code=0, exit_signal=125, worker_node="node01",
                              user_cpu_s=62.345, sys_cpu_s=3.5, wall_s=93784.0, max_rss_kib=3000,
                              alloc_cpus=4, mem_mb=4096)
    assert recs["22"] == acct("22", "COMPLETED", exit_code=0, exit_signal=0, worker_node="gpu-a3",
                              user_cpu_s=3600.0, sys_cpu_s=600.0, wall_s=7200.0, max_rss_kib=1572864,
                              alloc_cpus=4, mem_mb=8000)
    assert recs["23"].mem_mb == 2000 and recs["23"].worker_node == "c1" and recs["23"].max_rss_kib is None
    # running: the allocation row has no CPU time yet, the steps have
    assert recs["24"].user_cpu_s == 90.5 and recs["24"].sys_cpu_s == 2.25
    assert recs["24"].mem_mb == 1024 * 1024 and recs["24"].max_rss_kib == 10240
    assert recs["25"] == acct("25", "PENDING", exit_code=0, exit_signal=0, user_cpu_s=0.0, sys_cpu_s=0.0,
                              wall_s=0.0)
    assert recs["26"] == acct("26", "NODE_FAIL", exit_code=0, exit_signal=0)
    assert recs["27"].state == "CANCELLED"


def test_parse_sacct_exit_code_sources():
    text = ("1|FAILED|3:0||||||||\n1.batch|FAILED|3:0||||||||\n"
            "2|CANCELLED by 1000|0:0||||||||\n2.batch|CANCELLED|0:15||||||||\n"
            "3|FAILED|0:0||||||||\n3.batch|FAILED|2:0||||||||\n3.0|FAILED|7:0||||||||\n"
            "4|FAILED|5:0||||||||\n4.batch|FAILED|0:9||||||||\n"            # the allocation's own code wins
            "5|COMPLETED|0:0||||||||\n5.extern|CANCELLED|0:15||||||||\n"    # only .batch may override
            "6|FAILED|||||||||\n6.batch|FAILED|4:0||||||||\n"
            "7|FAILED|||||||||\n")
    recs = sp.parse_sacct(text)
    assert [(r.exit_code, r.exit_signal) for r in recs.values()] == [
        (3, 0), (0, 15), (2, 0), (5, 0), (0, 0), (4, 0), (None, None)]
    assert recs["2"].state == "CANCELLED"


def test_parse_sacct_duplicates_last_run_wins():
    # captured: sacct -D (duplicates) while job 11 ran again after `scontrol requeue 11`
    text = """\
8|PENDING|0:0|00:00:00|00:00:00||1|00:00:00|None assigned|2000M|Unknown
11|REQUEUED|0:0|00:00.001|00:00.002||1|00:00:03|localhost|2000M|2026-11-21T21:50:00
11.batch|CANCELLED|0:15|00:00.001|00:00.002|3411968|1|00:00:03|localhost||2026-11-21T21:50:00
12|COMPLETED|0:0|00:00.002|00:00:00||1|00:00:00|localhost|2000M|2026-11-21T21:50:00
12.batch|COMPLETED|0:0|00:00.002|00:00:00||1|00:00:00|localhost||2026-11-21T21:50:00
11|RUNNING|0:0|00:00:00|00:00:00||1|00:00:18|localhost|2000M|Unknown
11.batch|RUNNING|0:0|00:00:00|00:00:00||1|00:00:18|localhost||Unknown
"""
    recs = sp.parse_sacct(text)
    assert list(recs) == ["8", "11", "12"]
    assert recs["11"] == acct("11", "RUNNING", exit_code=0, exit_signal=0, worker_node="localhost",
                              user_cpu_s=0.0, sys_cpu_s=0.0, wall_s=18.0, alloc_cpus=1, mem_mb=2000)
    assert recs["12"].state == "COMPLETED"


def test_a_final_state_without_an_end_time_is_not_settled():
    # seen in CI on 22.05 right after a job that exited 5 ended: slurmdbd already said FAILED but
    # had neither its end time (Elapsed kept growing) nor its exit code
    early = sp.parse_sacct("4|FAILED|0:0|00:00:00|00:00:00||1|00:00:09|localhost|1000M|Unknown\n")["4"]
    assert (early.state, early.exit_code, early.exit_signal) == ("COMPLETING", None, None)
    assert sp.map_record(early).status == 2                     # running a little longer, not "exit 1"
    late = sp.parse_sacct("4|FAILED|5:0|00:00:00|00:00:00||1|00:00:00|localhost|1000M|2026-11-22T12:10:56\n"
                          "4.batch|FAILED|5:0|00:00:00|00:00:00||1|00:00:00|localhost||2026-11-22T12:10:56\n")["4"]
    assert sp.map_record(late).attrs["ExitCode"] == 5
    running = sp.parse_sacct("16|RUNNING|0:0|00:00:00|00:00:00||1|00:00:09|localhost|1000M|Unknown\n")["16"]
    assert running.state == "RUNNING"


def test_parse_sacct_steps_without_allocation():
    assert sp.parse_sacct("5.batch|FAILED|3:0||||||||\n") == {}
    assert sp.parse_sacct("") == {}


@pytest.mark.parametrize("text", [
    "1|COMPLETED|0:0\n",
    "1|COMPLETED|0:0|||||||||x\n",                                   # 12 fields
    "JobIDRaw|State|ExitCode|UserCPU|SystemCPU|MaxRSS|AllocCPUS|Elapsed|NodeList|ReqMem|End\n",  # header
    "x1|COMPLETED|0:0||||||||\n",
    "1|COMPLETED|zero||||||||\n",
    "1|COMPLETED|0:0|soon|||||||\n",
    "1|COMPLETED|0:0|||lots|||||\n",
    "1|COMPLETED|0:0||||one||||\n",
    "1|COMPLETED|0:0|||||||2000X|\n",
    "sacct: error: Problem talking to the database: Connection refused\n",
])
def test_parse_sacct_garbage(text):
    with pytest.raises(ValueError):
        sp.parse_sacct(text)


# --- scontrol ----------------------------------------------------------------------------

# captured (scontrol -o show job 3 / 8)
SCONTROL_FAILED = (
    "JobId=3 JobName=sig9.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 "
    "Account=root QOS=normal JobState=FAILED Reason=JobLaunchFailure Dependency=(null) Requeue=1 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:9 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A "
    "SubmitTime=2026-11-22T00:21:55 EligibleTime=2026-11-22T00:21:55 AccrueTime=2026-11-22T00:21:55 "
    "StartTime=2026-11-22T00:22:00 EndTime=2026-11-22T00:22:00 Deadline=N/A SuspendTime=None "
    "SecsPreSuspend=0 LastSchedEval=2026-11-22T00:22:00 Scheduler=Main Partition=debug "
    "AllocNode:Sid=localhost:23390 ReqNodeList=(null) ExcNodeList=(null) NodeList=localhost "
    "BatchHost=localhost NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=1,mem=2000M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* "
    "MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK "
    "Contiguous=0 Licenses=(null) Network=(null) Command=/tmp/sl/jobs/sig9.sh WorkDir=/tmp/sl/jobs "
    "StdErr=/tmp/sl/jobs/err.3 StdIn=/dev/null StdOut=/tmp/sl/jobs/out.3 Power= \n")
SCONTROL_HELD = (
    "JobId=8 JobName=sleep.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0 Account=root "
    "QOS=normal JobState=PENDING Reason=JobHeldUser Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 "
    "Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-22T00:21:55 "
    "EligibleTime=Unknown AccrueTime=Unknown StartTime=Unknown EndTime=Unknown Deadline=N/A "
    "SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-22T00:21:55 Scheduler=Main Partition=debug "
    "AllocNode:Sid=localhost:23390 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 "
    "NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=2000M,node=1,billing=1 Socks/Node=* "
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=/tmp/sl/jobs/sleep.sh 30 WorkDir=/tmp/sl/jobs StdErr=/tmp/sl/jobs/err.8 StdIn=/dev/null "
    "StdOut=/tmp/sl/jobs/out.8 Power= \n")
# the spec's example, with its elisions filled by plausible pairs
SCONTROL_SPEC = (
    "JobId=1 JobName=j.sh UserId=root(0) GroupId=root(0) Priority=1 JobState=COMPLETED Reason=None "
    "Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=1-00:00:01 "
    "StartTime=2026-11-21T21:45:57 EndTime=2026-11-21T21:45:58 Partition=debug "
    "NodeList=node[3-4] BatchHost=node4 NumNodes=1 NumCPUs=1\n")


def test_parse_scontrol_job():
    assert sp.parse_scontrol_job(SCONTROL_FAILED, observed_at=3.0) == NativeRecord(
        "3", "FAILED", reason="JobLaunchFailure", exit_code=0, exit_signal=9, worker_node="localhost",
        wall_s=0.0, restarts=0, source="bulk", observed_at=3.0)
    assert sp.parse_scontrol_job(SCONTROL_HELD) == NativeRecord(
        "8", "PENDING", reason="JobHeldUser", exit_code=0, exit_signal=0, wall_s=0.0, restarts=0)
    assert sp.parse_scontrol_job(SCONTROL_SPEC) == NativeRecord(
        "1", "COMPLETED", exit_code=0, exit_signal=0, worker_node="node4", wall_s=86401.0, restarts=2)


def test_parse_scontrol_requeued():
    # captured: scontrol -o show job 11 running again after `scontrol requeue 11`
    text = ("JobId=11 JobName=sleep.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901750 "
            "Nice=0 Account=root QOS=normal JobState=RUNNING Reason=None Dependency=(null) Requeue=1 "
            "Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:19 TimeLimit=UNLIMITED TimeMin=N/A "
            "SubmitTime=2026-11-22T00:23:33 EligibleTime=2026-11-22T00:25:34 AccrueTime=2026-11-22T00:25:34 "
            "StartTime=2026-11-22T00:25:37 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 "
            "LastSchedEval=2026-11-22T00:25:37 Scheduler=Main Partition=debug AllocNode:Sid=localhost:23390 "
            "ReqNodeList=(null) ExcNodeList=(null) NodeList=localhost BatchHost=localhost NumNodes=1 "
            "NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=2000M,node=1,billing=1 "
            "Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 "
            "MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 "
            "Licenses=(null) Network=(null) Command=/tmp/sl/jobs/sleep.sh 20 WorkDir=/tmp/sl/jobs "
            "StdErr=/tmp/sl/jobs/err.11 StdIn=/dev/null StdOut=/tmp/sl/jobs/out.11 Power= \n")
    rec = sp.parse_scontrol_job(text)
    assert rec == NativeRecord("11", "RUNNING", exit_code=0, exit_signal=0, worker_node="localhost",
                               wall_s=19.0, restarts=1)
    assert sp.map_record(rec) == JobAnswer(RUNNING, {
        "BatchJobId": "11", "JobStatus": 2, "WorkerNode": "localhost", "RemoteWallClockTime": 19.0,
        "NumRestarts": 1, "BatchJobState": "RUNNING"})


def test_parse_scontrol_nodelist_without_batchhost():
    rec = sp.parse_scontrol_job("JobId=5 JobState=RUNNING Reason=None ExitCode=0:0 NodeList=cn[010-012]\n")
    assert rec.worker_node == "cn010" and rec.reason is None


@pytest.mark.parametrize("text", ["slurm_load_jobs error: Invalid job id specified\n",
                                  "No jobs in the system\n"])
def test_parse_scontrol_no_job(text):
    assert sp.parse_scontrol_job(text) is None


@pytest.mark.parametrize("text", [
    "", "\n", "No jobs\n",
    "slurm_load_jobs error: Socket timed out on send/recv operation\n",
    "JobName=x JobState=RUNNING\n",                          # no JobId
    "JobId=5 JobName=x\n",                                   # no JobState
    "JobId=5x JobState=RUNNING\n",
    "JobId=5 JobState=RUNNING ExitCode=zero\n",
    SCONTROL_FAILED + SCONTROL_HELD,                         # two jobs (array tasks)
])
def test_parse_scontrol_garbage(text):
    with pytest.raises(ValueError):
        sp.parse_scontrol_job(text)


# --- map_record: the state table ---------------------------------------------------------

@pytest.mark.parametrize("state,reason,status", [
    ("PENDING", None, IDLE), ("PENDING", "Priority", IDLE), ("PENDING", "Resources", IDLE),
    ("PENDING", "JobHeldUser", HELD), ("PENDING", "JobHeldAdmin", HELD),
    ("CONFIGURING", None, IDLE), ("POWER_UP_NODE", None, IDLE),
    ("REQUEUED", None, IDLE), ("REQUEUE_FED", None, IDLE),
    ("REQUEUE_HOLD", None, HELD), ("RESV_DEL_HOLD", None, HELD), ("SPECIAL_EXIT", None, HELD),
    ("RUNNING", None, RUNNING), ("RUNNING", "JobHeldAdmin", RUNNING),
    ("COMPLETING", None, RUNNING), ("SIGNALING", None, RUNNING), ("STAGE_OUT", None, RUNNING),
    ("RESIZING", None, RUNNING), ("UPDATE_DB", None, RUNNING),
    ("SUSPENDED", None, RUNNING), ("STOPPED", None, RUNNING),
    ("COMPLETED", None, COMPLETED), ("FAILED", None, COMPLETED), ("TIMEOUT", None, COMPLETED),
    ("NODE_FAIL", None, COMPLETED), ("BOOT_FAIL", None, COMPLETED), ("DEADLINE", None, COMPLETED),
    ("OUT_OF_MEMORY", None, COMPLETED), ("PREEMPTED", None, COMPLETED),
    ("CANCELLED", None, REMOVED),
])
def test_state_table(state, reason, status):
    ans = sp.map_record(NativeRecord("9", state, reason=reason, exit_code=0, exit_signal=0))
    assert ans.status == status and ans.attrs["JobStatus"] == status
    assert ans.attrs["BatchJobId"] == "9"
    assert ans.attrs["BatchJobState"] == (state + "/" + reason if reason else state)


@pytest.mark.parametrize("state,reason", [("PENDING", "JobHeldUser"), ("REQUEUE_HOLD", None),
                                          ("RESV_DEL_HOLD", None), ("SPECIAL_EXIT", None)])
def test_batch_holds_not_reported(state, reason):
    ans = sp.map_record(NativeRecord("9", state, reason=reason), report_batch_holds=False)
    assert ans.status == IDLE and "HoldReason" not in ans.attrs


def test_held_reasons_configurable():
    rec = NativeRecord("9", "PENDING", reason="JobHeldAdmin")
    assert sp.map_record(rec, held_reasons=("JobHeldUser",)).status == IDLE
    rec = NativeRecord("9", "PENDING", reason="AssocMaxJobsLimit")
    assert sp.map_record(rec, held_reasons=["AssocMaxJobsLimit"]).status == HELD


def test_hold_reason_text():
    ans = sp.map_record(NativeRecord("2", "PENDING", reason="JobHeldAdmin"))
    assert ans == JobAnswer(HELD, {"BatchJobId": "2", "JobStatus": 5,
                                   "HoldReason": "Held in Slurm: job 2 is PENDING with reason JobHeldAdmin",
                                   "BatchJobState": "PENDING/JobHeldAdmin"})
    ans = sp.map_record(NativeRecord("4", "SPECIAL_EXIT"))
    assert ans.attrs["HoldReason"] == "Held in Slurm: job 4 is SPECIAL_EXIT with reason None"


def test_revoked_is_missing():
    assert sp.map_record(NativeRecord("9", "REVOKED")) is None


def test_unknown_state_keeps_last_status():
    rec = NativeRecord("9", "SOMETHING_NEW", reason="Why")
    assert sp.map_record(rec, last_status=RUNNING) == JobAnswer(
        RUNNING, {"BatchJobId": "9", "JobStatus": 2, "BatchJobState": "SOMETHING_NEW/Why"})
    assert sp.map_record(rec).status == IDLE


@pytest.mark.parametrize("state", ["CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
                                   "OUT_OF_MEMORY", "PREEMPTED"])
def test_exit_reason(state):
    assert sp.map_record(NativeRecord("9", state)).attrs["ExitReason"] == "Slurm state " + state


def test_no_exit_reason_or_exit_for_others():
    assert "ExitReason" not in sp.map_record(NativeRecord("9", "COMPLETED", exit_code=0, exit_signal=0)).attrs
    for state in ("CANCELLED", "RUNNING", "PENDING"):
        attrs = sp.map_record(NativeRecord("9", state, exit_code=2, exit_signal=0)).attrs
        assert not {"ExitCode", "ExitBySignal", "ExitSignal"} & set(attrs)


@pytest.mark.parametrize("state,code,signal,expected", [
    ("COMPLETED", 0, 0, {"ExitCode": 0, "ExitBySignal": False}),
    ("FAILED", 3, 0, {"ExitCode": 3, "ExitBySignal": False}),
    ("FAILED", 0, 0, {"ExitCode": 1, "ExitBySignal": False}),
    ("FAILED", 0, 9, {"ExitBySignal": True, "ExitSignal": 9}),
    ("FAILED", 1, 6, {"ExitBySignal": True, "ExitSignal": 6}),      # the signal half wins
    ("COMPLETED", 255, 0, {"ExitCode": 255, "ExitBySignal": False}),
    ("TIMEOUT", 0, 0, {"ExitBySignal": True, "ExitSignal": 15}),
    ("TIMEOUT", 0, 9, {"ExitBySignal": True, "ExitSignal": 9}),
    ("TIMEOUT", 4, 0, {"ExitCode": 4, "ExitBySignal": False}),
    ("DEADLINE", 0, 0, {"ExitBySignal": True, "ExitSignal": 15}),
    ("PREEMPTED", 0, 0, {"ExitBySignal": True, "ExitSignal": 15}),
    ("OUT_OF_MEMORY", 0, 0, {"ExitBySignal": True, "ExitSignal": 9}),
    ("OUT_OF_MEMORY", 0, 125, {"ExitBySignal": True, "ExitSignal": 9}),   # Slurm's OOM marker
    ("OUT_OF_MEMORY", 1, 0, {"ExitCode": 1, "ExitBySignal": False}),
    ("NODE_FAIL", 0, 0, {"ExitBySignal": True, "ExitSignal": 9}),
    ("BOOT_FAIL", 0, 0, {"ExitBySignal": True, "ExitSignal": 9}),
    ("COMPLETED", 0, None, {"ExitCode": 0, "ExitBySignal": False}),
    ("COMPLETED", None, None, {}),
    ("FAILED", None, None, {}),
    ("TIMEOUT", None, None, {}),
])
def test_exit_attrs(state, code, signal, expected):
    attrs = sp.map_record(NativeRecord("9", state, exit_code=code, exit_signal=signal)).attrs
    got = {k: v for k, v in attrs.items() if k in ("ExitCode", "ExitBySignal", "ExitSignal")}
    assert got == expected
    assert type(got.get("ExitBySignal", False)) is bool


def test_exit_unknown():
    assert sp.exit_unknown(sp.map_record(NativeRecord("9", "COMPLETED")))
    assert sp.exit_unknown(sp.map_record(NativeRecord("9", "FAILED")))
    assert not sp.exit_unknown(sp.map_record(NativeRecord("9", "COMPLETED", exit_code=0, exit_signal=0)))
    assert not sp.exit_unknown(sp.map_record(NativeRecord("9", "FAILED", exit_code=0, exit_signal=9)))
    assert not sp.exit_unknown(sp.map_record(NativeRecord("9", "CANCELLED")))


def test_full_answer_in_ad_order():
    rec = NativeRecord("21", "OUT_OF_MEMORY", reason="OutOfMemory", exit_code=0, exit_signal=125,
                       worker_node="node01", user_cpu_s=62.345, sys_cpu_s=3.5, wall_s=93784.0,
                       max_rss_kib=3000, alloc_cpus=4, mem_mb=4096, restarts=1, source="accounting")
    ans = sp.map_record(rec)
    assert ans == JobAnswer(COMPLETED, {
        "BatchJobId": "21", "JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9,
        "ExitReason": "Slurm state OUT_OF_MEMORY", "WorkerNode": "node01", "RemoteUserCpu": 62.345,
        "RemoteSysCpu": 3.5, "RemoteWallClockTime": 93784.0, "ImageSize": 3000, "CpusProvisioned": 4,
        "MemoryProvisioned": 4096, "NumRestarts": 1, "BatchJobState": "OUT_OF_MEMORY/OutOfMemory"})
    assert list(ans.attrs) == [k for k in AD_ORDER if k in ans.attrs]
    full = sp.map_record(NativeRecord("2", "FAILED", exit_code=3, exit_signal=0, wall_s=1))
    assert list(full.attrs) == [k for k in AD_ORDER if k in full.attrs]
    assert type(full.attrs["RemoteWallClockTime"]) is float


def test_captured_accounting_answers():
    recs = sp.parse_sacct(SACCT_CAPTURED)
    answers = {k: sp.map_record(r) for k, r in recs.items()}
    summary = {k: (a.status, a.attrs.get("ExitCode"), a.attrs.get("ExitSignal")) for k, a in answers.items()}
    assert summary == {"1": (4, 0, None), "2": (4, 3, None), "3": (4, None, 9), "4": (4, None, 15),
                       "5": (4, None, 9), "6": (4, 0, None), "7": (3, None, None), "9": (4, 0, None),
                       "11": (1, None, None), "8": (1, None, None), "16": (2, None, None),
                       "17": (2, None, None), "18": (3, None, None)}
    assert answers["6"].attrs["ImageSize"] == 168152
    assert answers["7"].attrs["ExitReason"] == "Slurm state CANCELLED"


# --- merge -------------------------------------------------------------------------------

def test_merge_accounting_final_wins():
    bulk = NativeRecord("5", "RUNNING", reason=None, exit_code=0, exit_signal=0, worker_node="n1",
                        wall_s=30.0, restarts=1, observed_at=10.0)
    acc = acct("5", "FAILED", exit_code=3, exit_signal=0, worker_node=None, user_cpu_s=2.0, wall_s=31.0,
               observed_at=12.0)
    assert sp.merge(bulk, acc) == acct("5", "FAILED", exit_code=3, exit_signal=0, worker_node="n1",
                                       user_cpu_s=2.0, wall_s=31.0, restarts=1, observed_at=12.0)


def test_merge_live_state_while_accounting_lags():
    # squeue already says COMPLETED, slurmdbd still RUNNING with its placeholder 0:0
    bulk = NativeRecord("5", "COMPLETED", worker_node="n1", observed_at=10.0)
    acc = acct("5", "RUNNING", exit_code=0, exit_signal=0, user_cpu_s=1.0, max_rss_kib=100, observed_at=8.0)
    merged = sp.merge(bulk, acc)
    assert merged == NativeRecord("5", "COMPLETED", worker_node="n1", user_cpu_s=1.0, max_rss_kib=100,
                                  observed_at=10.0)
    assert sp.exit_unknown(sp.map_record(merged))


def test_merge_pending_reason_and_exit_fill():
    bulk = NativeRecord("5", "PENDING", reason="JobHeldUser", observed_at=20.0)
    acc = acct("5", "PENDING", exit_code=0, exit_signal=0, mem_mb=100, observed_at=30.0)
    merged = sp.merge(bulk, acc)
    assert (merged.state, merged.reason, merged.mem_mb, merged.source, merged.observed_at) == (
        "PENDING", "JobHeldUser", 100, "bulk", 30.0)
    # a live reason belongs to the live state, not to accounting's final one
    merged = sp.merge(NativeRecord("5", "PENDING", reason="Priority"), acct("5", "CANCELLED", exit_code=0,
                                                                           exit_signal=0))
    assert (merged.state, merged.reason) == ("CANCELLED", None)
    # bulk scontrol record final with exit, accounting without
    merged = sp.merge(NativeRecord("5", "FAILED", exit_code=2, exit_signal=0), acct("5", "RUNNING"))
    assert (merged.state, merged.exit_code) == ("FAILED", 2)


def test_merge_one_side():
    acc = acct("5", "COMPLETED", exit_code=0, exit_signal=0)
    assert sp.merge(None, acc) == acc and sp.merge(None, acc) is not acc
    bulk = NativeRecord("5", "RUNNING")
    assert sp.merge(bulk, None) == bulk
    with pytest.raises(ValueError):
        sp.merge(None, None)
    with pytest.raises(ValueError):
        sp.merge(NativeRecord("5", "RUNNING"), acct("6", "COMPLETED"))


# --- sacct_start -------------------------------------------------------------------------

TODAY = datetime.date(2026, 11, 22)


@pytest.mark.parametrize("dates,expected", [
    ([], "2026-11-15"),
    ([None, None], "2026-11-15"),
    (["20261120"], "2026-11-19"),
    (["20261120", "20260301", None], "2026-02-28"),
    (["20260101120000", "20261101"], "2025-12-31"),
    (["notadate", "2026", "20261340", "20261110"], "2026-11-09"),
    (["20270101"], "2026-11-21"),               # clock skew: never start in the future
])
def test_sacct_start(dates, expected):
    assert sp.sacct_start(iter(dates), TODAY) == expected


# --- field parsers -----------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [
    ("00:00:00", 0.0), ("00:00.002", 0.002), ("01:02.345", 62.345), ("00:01:04", 64.0),
    ("1-02:03:04", 93784.0), ("10-00:00:00", 864000.0), ("59:59", 3599.0), ("100:00:00", 360000.0),
    ("00:00:30.500", 30.5), ("", None), ("INVALID", None),
])
def test_parse_duration(text, seconds):
    assert sp.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "1-05", "1-05:00", "aa:bb", "1:2:3:4", "UNLIMITED", "-1:00"])
def test_parse_duration_garbage(text):
    with pytest.raises(ValueError):
        sp.parse_duration(text)


@pytest.mark.parametrize("text,kib", [
    ("1024K", 1024), ("2M", 2048), ("1.5G", 1572864), ("1T", 1024 ** 3), ("168152K", 168152),
    ("172187648", 168152), ("1", 1), ("1025", 2), ("0", 0), ("", None), ("0.5K", 1),
])
def test_parse_mem_kib(text, kib):
    assert sp.parse_mem_kib(text) == kib


@pytest.mark.parametrize("text,cpus,mb", [
    ("2000M", None, 2000), ("2000Mn", 4, 2000), ("2000Mc", 4, 8000), ("2000Mc", None, None),
    ("4G", 1, 4096), ("1T", 1, 1048576), ("512", 1, 512), ("4Gc", 2, 8192), ("0", 4, None),
    ("", 4, None), ("0M", 1, None), ("2048K", 1, 2),
])
def test_parse_reqmem_mb(text, cpus, mb):
    assert sp.parse_reqmem_mb(text, cpus) == mb


@pytest.mark.parametrize("text,host", [
    ("localhost", "localhost"), ("node[01-03,07]", "node01"), ("node[07,01-03]", "node07"), ("a,b", "a"),
    ("node[01-03],gpu[1-2]", "node01"), ("gpu-a[3-4],gpu-b7", "gpu-a3"), ("rack[1-2]-n[5-6]", "rack1-n5"),
    ("n[10-12]-ib", "n10-ib"), ("None assigned", None), ("", None), ("(null)", None), ("n/a", None),
])
def test_first_node(text, host):
    assert sp.first_node(text) == host


@pytest.mark.parametrize("state", ["CANCELLED by 0", "CANCELLED by 1000", "CANCELLED+", "CANCELLED"])
def test_normalize_state(state):
    assert sp.normalize_state(state) == "CANCELLED"


# --- properties of the time and memory parsers -------------------------------------------

@given(st.integers(min_value=0, max_value=400 * 86400))
def test_duration_round_trip_days(seconds):
    days, rest = divmod(seconds, 86400)
    text = "%02d:%02d:%02d" % (rest // 3600, rest // 60 % 60, rest % 60)
    assert sp.parse_duration(("%d-" % days if days else "") + text) == seconds


@given(st.integers(min_value=0, max_value=3599), st.integers(min_value=0, max_value=999))
def test_duration_round_trip_minutes_millis(seconds, millis):
    text = "%02d:%02d.%03d" % (seconds // 60, seconds % 60, millis)
    assert sp.parse_duration(text) == pytest.approx(seconds + millis / 1000.0, abs=1e-9)


@given(st.integers(min_value=0, max_value=2 ** 40), st.sampled_from(["K", "M", "G", "T"]))
def test_mem_units(amount, unit):
    assert sp.parse_mem_kib("%d%s" % (amount, unit)) == amount * 1024 ** "KMGT".index(unit)


@given(st.integers(min_value=0, max_value=2 ** 50))
def test_mem_bytes_round_up(nbytes):
    kib = sp.parse_mem_kib(str(nbytes))
    assert kib * 1024 >= nbytes > (kib - 1) * 1024 or nbytes == kib == 0


@given(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), st.integers(0, 999), st.integers(0, 999))
def test_first_node_of_range(prefix, start, extra):
    text = "%s[%03d-%03d,%d],other1" % (prefix, start, start + extra, start + extra + 5)
    assert sp.first_node(text) == "%s%03d" % (prefix, start)
