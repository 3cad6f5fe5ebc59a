"""Golden-output tests of the LSF parsers, the LSF state → JobStatus table and the adapter's script.

Fixtures under tests/fixtures/lsf are verbatim published LSF output (SOURCES.txt says where
each comes from); the other texts are written in the same formats for cases those do not show.
"""
import os
import time

import pytest
import trio

from blahp.backend import BackendContext, CommandFailed, QueryFailed
from blahp.backends import lsf_parse as lp
from blahp.backends.lsf import LsfBackend
from blahp.config import Config
from blahp.jobid import JobRef, MalformedJobId
from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, NativeRecord
from blahp.runner import CommandRunner
from gahp.runtime import NullLog
from tests.adapters import bare_job, directive_lines, make_backend

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "lsf")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# --- bsub ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stdout,expected", [
    (fixture("bsub_default_queue.txt"), "228"),
    (fixture("bsub_queue.txt"), "473713"),
    ("Generic job.\nJob <473713> is submitted to queue <pub.1h>.\n", "473713"),  # gc3pie: a site banner first
    ("Job <5> is submitted to default queue <normal>.\nJob <6> is submitted to queue <x>.\n", "5"),
    ("Job <0> is submitted to default queue <normal>.\n", "0"),
])
def test_parse_bsub(stdout, expected):
    assert lp.parse_bsub(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "Job <x> is submitted to queue <q>.\n", "Job <-1> is submitted\n",
                                    "Job <1.4> is submitted\n", "Job <444> is subtted to default queue\n",
                                    "  Job <5> is submitted\n", fixture("bsub_no_such_queue.stderr")])
def test_parse_bsub_no_id(stdout):
    assert lp.parse_bsub(stdout) is None


# --- bjobs -o --------------------------------------------------------------------------------

def test_parse_bjobs_o_captured_pipelite_rows():
    fields = ["jobid", "stat", "exit_code", "cpu_used", "max_mem", "avg_mem", "exec_host"]
    recs = lp.parse_bjobs_o(fixture("bjobs_o_pipelite.txt"), fields, observed_at=3.0)
    assert list(recs) == ["861487", "872793", "873206"]
    assert recs["861487"] == NativeRecord("861487", "PEND", source="bulk", observed_at=3.0)
    assert recs["872793"] == NativeRecord("872793", "DONE", worker_node="hx-noah-05-14", source="bulk",
                                          observed_at=3.0)
    assert recs["873206"] == NativeRecord("873206", "EXIT", exit_code=127, worker_node="hx-noah-43-02",
                                          source="bulk", observed_at=3.0)


BULK = """\
JOBID|STAT|EXIT_CODE|EXEC_HOST|PEND_REASON
17|RUN|-|4*hostA:2*hostB|-
18|PEND|-|-|New job is waiting for scheduling;
19|PSUSP|-|-|The job was suspended by the user while pending;
20|EXIT|3|hostC|-
21|DONE|-|hostC|-
22|EXIT|-|-|-
23|PEND|-|-|Reason | with the delimiter;
24[3]|RUN|-|hostD|-
"""


def test_parse_bjobs_o_bulk_fields_with_header():
    recs = lp.parse_bjobs_o(BULK, lp.BULK_FIELDS)
    assert recs["17"].state == "RUN" and recs["17"].worker_node == "hostA" and recs["17"].exit_code is None
    assert recs["18"].reason == "New job is waiting for scheduling"
    assert recs["19"].state == "PSUSP" and recs["19"].reason == "The job was suspended by the user while pending"
    assert (recs["20"].state, recs["20"].exit_code, recs["20"].worker_node) == ("EXIT", 3, "hostC")
    assert recs["21"].exit_code is None and recs["22"].exit_code is None
    assert recs["23"].reason == "Reason | with the delimiter"  # free text is the last field
    assert recs["24[3]"].worker_node == "hostD"


def test_parse_bjobs_o_find_fields_keep_the_job_name():
    recs = lp.parse_bjobs_o("7|PEND|bl_3f9a0c1d2e4b\n8|DONE|other name\n", lp.FIND_FIELDS)
    assert recs["7"].extra == {"job_name": "bl_3f9a0c1d2e4b"} and recs["8"].extra == {"job_name": "other name"}


@pytest.mark.parametrize("text", ["", "\n", fixture("bjobs_no_unfinished.stderr"), "No job found\n"])
def test_parse_bjobs_o_empty(text):
    assert lp.parse_bjobs_o(text) == {}


@pytest.mark.parametrize("text", ["17|RUN|-|hostA\n", "abc|RUN|-|h|-\n", "17|running|-|h|-\n", "17|EXIT|x|h|-\n",
                                  "\x00\x7fgarbage {{{ not the format you expected\n", "17 RUN - h -\n"])
def test_parse_bjobs_o_rejects_other_output(text):
    with pytest.raises(ValueError):
        lp.parse_bjobs_o(text)


def test_parse_bjobs_o_needs_id_and_state():
    with pytest.raises(ValueError):
        lp.parse_bjobs_o("1|x\n", ["jobid", "exit_code"])


def test_output_format_argument():
    assert lp.output_format(lp.BULK_FIELDS) == "jobid stat exit_code exec_host pend_reason delimiter='|'"


# --- bjobs -w / default table -------------------------------------------------------------------

def test_parse_bjobs_default_tables():
    assert lp.parse_bjobs_wide(fixture("bjobs_running.txt"), observed_at=1.0) == {
        "111": NativeRecord("111", "RUN", worker_node="hostB", source="bulk", observed_at=1.0,
                            extra={"job_name": "myjob"})}
    pend = lp.parse_bjobs_wide(fixture("bjobs_pending.txt"))["473713"]
    assert (pend.state, pend.worker_node, pend.extra["job_name"]) == ("PEND", None, "TM-T")
    run = lp.parse_bjobs_wide(fixture("bjobs_running_gc3pie.txt"))["473713"]
    assert (run.state, run.worker_node, run.extra["job_name"]) == ("RUN", "a6128", "TM-T")
    trunc = lp.parse_bjobs_wide(fixture("bjobs_truncated.txt"))
    assert [(r.batch_id, r.worker_node, r.extra["job_name"]) for r in trunc.values()] == [
        ("2636607", "c11b02", "*069656647"), ("2636582", "c02b01", "2134490944")]


def test_parse_bjobs_wide_overflowing_columns_and_blank_in_job_name():
    recs = lp.parse_bjobs_wide(fixture("bjobs_a_w.txt"))
    assert [(r.state, r.worker_node, r.extra["job_name"]) for r in recs.values()] == [
        ("DONE", "test-re1-comp-1-9e6e-001.lsf.com", "sleep 10"),
        ("DONE", "test-re1-comp-1-9e6e-001.lsf.com", "sleep 10")]


WIDE_MIXED = """\
JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME
1227    user    RUN   52-medium  mgt02       28*c52-032  CoX        Mar  9 22:35
                                             28*c52-023
1360    user    PEND  53-large   mgt02                   sleep 10   Mar 10 13:26
1361    user    EXIT  normal     mgt02                   bl_abc     Mar 10 13:26
1362    user    PEND  normal     a-very-long-submission-host.example.org sleep 10   Mar 10 13:27
1363    user    RUN   normal     a-very-long-submission-host.example.org n1 sleep 10   Mar 10 13:27
"""


def test_parse_bjobs_wide_pending_hosts_continuations_and_overflow():
    recs = lp.parse_bjobs_wide(WIDE_MIXED)
    assert list(recs) == ["1227", "1360", "1361", "1362", "1363"]
    assert recs["1227"].worker_node == "c52-032" and recs["1227"].extra["job_name"] == "CoX"
    # the column says there is no host, whatever the words look like
    assert recs["1360"].worker_node is None and recs["1360"].extra["job_name"] == "sleep 10"
    assert recs["1361"].worker_node is None and recs["1361"].extra["job_name"] == "bl_abc"
    # FROM_HOST overflowed: the state decides (a pending job never has a host)
    assert recs["1362"].worker_node is None and recs["1362"].extra["job_name"] == "sleep 10"
    assert recs["1363"].worker_node == "n1" and recs["1363"].extra["job_name"] == "sleep 10"


def test_parse_bjobs_wide_without_header_uses_the_state():
    text = "5 u PEND q h name with blanks Mar 10 13:26\n6 u RUN q h node1 job Mar 10 13:26\n"
    recs = lp.parse_bjobs_wide(text)
    assert recs["5"].worker_node is None and recs["5"].extra["job_name"] == "name with blanks"
    assert recs["6"].worker_node == "node1"


@pytest.mark.parametrize("text", ["JOBID USER STAT\n", "garbage here\n", "1 u RUN q\n",
                                  "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n"
                                  "x       u       RUN   q          h           h           n          Mar 1 10:00\n"])
def test_parse_bjobs_wide_rejects_other_output(text):
    with pytest.raises(ValueError):
        lp.parse_bjobs_wide(text)


@pytest.mark.parametrize("value,host", [("hostA", "hostA"), ("4*hostA:2*hostB", "hostA"), ("hostA:hostB", "hostA"),
                                        ("16*node62", "node62"), ("-", None), ("", None), (None, None),
                                        ("2*n1 3*n2", "n1")])
def test_first_host(value, host):
    assert lp.first_host(value) == host


def test_no_jobs_on_either_stream():
    assert lp.no_jobs("", fixture("bjobs_no_unfinished.stderr"))
    assert lp.no_jobs("No job found\n", "")
    assert not lp.no_jobs("1|RUN|-|h|-\n", "")
    assert not lp.no_jobs("", "batch system daemon not responding ... still trying\n")


# --- bhist -l --------------------------------------------------------------------------------

def test_unwrap_joins_cut_lines_and_restores_a_trimmed_blank():
    lines = lp.unwrap(fixture("bhist_l_exited.txt"))
    assert "Sun Jan 10 17:50:11: Submitted from host <noah-login-01>, to Queue <research-rh74>, CWD <$HOME>, " \
           "Requested Resources <rusage[numcpus=1:duration=480]>;" in lines
    assert "Sun Jan 10 17:50:12: Running with execution home </homes/rasko>, Execution CWD </homes/rasko>, " \
           "Execution Pid <87178>;" in lines
    assert "Sun Jan 10 17:50:12: Exited with exit code 127. The CPU time used is 0.0 seconds;" in lines
    assert " CORELIMIT" in lines and "  PEND     PSUSP    RUN      USUSP    SSUSP    UNKWN    TOTAL" in lines


def test_parse_bhist_captured_records():
    assert lp.parse_bhist(fixture("bhist_l_exited.txt"), observed_at=2.0) == {
        "873209": NativeRecord("873209", "EXIT", exit_code=127, worker_node="hx-noah-10-04", source="history",
                               observed_at=2.0)}
    assert lp.parse_bhist(fixture("bhist_l_done.txt"), observed_at=2.0) == {
        "872795": NativeRecord("872795", "DONE", exit_code=0, worker_node="hx-noah-05-14", source="history",
                               observed_at=2.0)}


def test_parse_bhist_several_records():
    text = fixture("bhist_l_exited.txt") + "-" * 78 + "\n\n" + fixture("bhist_l_done.txt")
    recs = lp.parse_bhist(text)
    assert {k: (r.state, r.exit_code) for k, r in recs.items()} == {"873209": ("EXIT", 127), "872795": ("DONE", 0)}


KILLED_RUNNING = """\
Job <31>, Job Name <bl_3f9a0c1d2e4b>, User <u>, Project <default>, Command <#!/bin/bash;echo Done successfully
                     ;exit 0>
Mon Nov 23 10:00:00: Submitted from host <login1>, to Queue <normal>, CWD <$HOME>;
Mon Nov 23 10:00:01: Dispatched 4 Task(s) on Host(s) <4*node7>, Allocated 4 Slot(s) on Host(s) <4*node7>;
Mon Nov 23 10:00:01: Starting (Pid 4242);
Mon Nov 23 10:00:05: Signal <KILL> requested by user or administrator <u>;
Mon Nov 23 10:00:06: Exited with exit code 143. The CPU time used is 0.5 seconds;
Mon Nov 23 10:00:06: Completed <exit>; TERM_OWNER: job killed by owner;
"""


def test_parse_bhist_killed_job_and_text_in_the_command_is_not_an_event():
    rec = lp.parse_bhist(KILLED_RUNNING)["31"]
    assert (rec.state, rec.exit_code, rec.worker_node) == ("EXIT", 143, "node7")
    assert rec.reason == "TERM_OWNER: job killed by owner"
    assert rec.extra == {"killed": "Signal <KILL> requested by user or administrator <u>"}
    answer = lp.map_record(rec)
    assert answer.status == REMOVED and "killed" in answer.attrs["ExitReason"]


@pytest.mark.parametrize("events,state,code,signal,killed", [
    (["Submitted from host <h>, to Queue <q>;"], "PEND", None, None, False),
    (["Submitted from host <h>;", "Suspended by the user or administrator <u>;"], "PSUSP", None, None, False),
    (["Submitted from host <h>;", "Suspended by the user or administrator <u>;",
      "Resumed by the user or administrator <u>;"], "PEND", None, None, False),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Suspended by the user or administrator <u>;"],
     "USUSP", None, None, False),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Suspended by the LSF system;"], "SSUSP", None, None, False),
    (["Submitted from host <h>;", "Started on <n1>;"], "RUN", None, None, False),
    (["Submitted from host <h>;", "Signal <KILL> requested by user or administrator <u>;",
      "Completed <exit>; TERM_OWNER: job killed by owner;"], "EXIT", None, None, True),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Signal <KILL> requested by user or administrator <u>;"],
     "RUN", None, None, False),  # asked, not dead yet
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Signal <KILL> requested by user or administrator <u>;",
      "Done successfully. The CPU time used is 1.0 seconds;"], "DONE", 0, None, False),  # finished first
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Exited by signal 9. The CPU time used is 0.1 seconds;"],
     "EXIT", None, 9, False),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Completed <exit>; TERM_ADMIN: job killed by root;"],
     "EXIT", None, None, True),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Completed <done>;"], "DONE", None, None, False),
    (["Submitted from host <h>;", "Dispatched to <n1>;", "Exited with exit code 3. The CPU time used is 0.0 seconds;",
      "Job is requeued;", "Dispatched to <n2>;"], "RUN", None, None, False),
])
def test_parse_bhist_event_sequences(events, state, code, signal, killed):
    text = "Job <9>, User <u>, Project <default>, Command <x>\n" + "".join(
        "Mon Nov 23 10:00:%02d: %s\n" % (i, e) for i, e in enumerate(events))
    rec = lp.parse_bhist(text)["9"]
    assert (rec.state, rec.exit_code, rec.exit_signal, bool(rec.extra)) == (state, code, signal, killed)


def test_parse_bhist_nothing():
    assert lp.parse_bhist("") == {} and lp.parse_bhist("No matching job found\n") == {}


# --- the state table, row by row ----------------------------------------------------------------

def rec(state, **kw):
    return NativeRecord("7", state, **kw)


@pytest.mark.parametrize("state,status", [
    ("PEND", IDLE), ("WAIT", IDLE), ("PSUSP", HELD), ("RUN", RUNNING), ("USUSP", HELD), ("SSUSP", RUNNING),
    ("DONE", COMPLETED), ("EXIT", COMPLETED), ("ZOMBI", REMOVED)])
def test_state_table(state, status):
    answer = lp.map_record(rec(state, exit_code=1 if state == "EXIT" else None))
    assert answer.status == status
    assert answer.attrs["BatchJobId"] == "7" and answer.attrs["BatchJobState"] == state


@pytest.mark.parametrize("state", ["UNKWN", "BOGUS", "run"])
@pytest.mark.parametrize("last", [None, IDLE, RUNNING, HELD])
def test_unknown_and_unkwn_keep_the_last_status(state, last):
    answer = lp.map_record(rec(state), last_status=last)
    assert answer.status == (last if last is not None else IDLE)
    assert answer.attrs["BatchJobState"] == state and not answer.exit_known


def test_held_states_say_why():
    assert lp.map_record(rec("PSUSP")).attrs["HoldReason"] == "Suspended in LSF (PSUSP)"
    assert lp.map_record(rec("USUSP")).attrs["HoldReason"] == "Suspended in LSF (USUSP)"
    assert "HoldReason" not in lp.map_record(rec("SSUSP")).attrs


def test_batch_holds_reported_idle_when_asked():
    for state in ("PSUSP", "USUSP"):
        answer = lp.map_record(rec(state), report_batch_holds=False)
        assert answer.status == IDLE and "HoldReason" not in answer.attrs


def test_exit_codes():
    done = lp.map_record(rec("DONE", worker_node="n1"))
    assert done.attrs["ExitCode"] == 0 and done.attrs["ExitBySignal"] is False and done.attrs["WorkerNode"] == "n1"
    assert "ExitReason" not in done.attrs
    ex = lp.map_record(rec("EXIT", exit_code=3))
    assert ex.attrs["ExitCode"] == 3 and ex.attrs["ExitBySignal"] is False
    assert ex.attrs["ExitReason"] == "LSF state EXIT"
    # 137 stays a code here: the engine turns it into a signal only with the wrapper's record
    assert lp.map_record(rec("EXIT", exit_code=137)).attrs["ExitCode"] == 137
    sig = lp.map_record(rec("EXIT", exit_signal=9))
    assert sig.attrs["ExitBySignal"] is True and sig.attrs["ExitSignal"] == 9 and "ExitCode" not in sig.attrs


def test_exit_without_a_code_is_never_guessed():
    answer = lp.map_record(rec("EXIT"))
    assert answer.status == COMPLETED and not answer.exit_known
    assert "ExitCode" not in answer.attrs and "ExitSignal" not in answer.attrs


def test_history_reason_and_pending_reason():
    answer = lp.map_record(rec("EXIT", exit_code=140, reason="TERM_RUNLIMIT: job killed after reaching LSF run time "
                               "limit", source="history"))
    assert answer.attrs["ExitReason"] == "LSF state EXIT: TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    # a bulk row's reason is its pending reason: it says nothing about how the job ended
    assert lp.map_record(rec("EXIT", exit_code=1, reason="whatever")).attrs["ExitReason"] == "LSF state EXIT"
    assert lp.map_record(rec("PEND", reason="New job is waiting for scheduling")).attrs["BatchJobState"] == \
        "PEND/New job is waiting for scheduling"


def test_bulk_exit_without_code_completed_by_history():
    from blahp.records import merge_records
    bulk = rec("EXIT", source="bulk", worker_node="n1")
    hist = lp.parse_bhist(KILLED_RUNNING.replace("<31>", "<7>"))["7"]
    assert lp.map_record(merge_records(bulk, hist)).status == REMOVED
    done = lp.parse_bhist(fixture("bhist_l_done.txt").replace("<872795>", "<7>"))["7"]
    merged = lp.map_record(merge_records(rec("DONE"), done))
    assert merged.status == COMPLETED and merged.attrs["ExitCode"] == 0


# --- the adapter: ids, script, environment ----------------------------------------------------------

def backend(runner=None, **cfg):
    return make_backend(LsfBackend, runner, **cfg)


job = bare_job


def directives(text):
    return directive_lines(text, '#BSUB')


def test_job_ids():
    import datetime
    b = backend()
    jid = b.make_job_id("42", None, datetime.datetime(2026, 11, 22, 1, 2, 3))
    assert jid == "lsf/20261122/42"
    assert b.parse_job_id(jid) == JobRef(jid, "lsf", "42", None, "20261122")
    for bad in ("lsf/20261122/4a", "lsf/20261122/4@c", "slurm/20261122/4", "lsf/x/", "lsf/20261122/4[1]"):
        with pytest.raises(MalformedJobId):
            b.parse_job_id(bad)


def test_render_minimal():
    text = backend().render(job(), [], "echo wrapper\n", None)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1].startswith("# pyblahp ") and lines[1].endswith(" key=home_bl_x")
    assert directives(text) == ["#BSUB -J bl_3f9a0c1d2e4b", "#BSUB -o /dev/null", "#BSUB -e /dev/null",
                                "#BSUB -L /bin/bash"]
    assert text.endswith("\necho wrapper\n")


def test_render_everything_in_order():
    text = backend().render(
        job(queue="long", project="atlas", runtime_s=3601, memory_mb=2000, node_number=8, smp_granularity=4,
            host_number=1, whole_nodes=True, gpu_number=2, mic_number=1, extra_args="-app big\\n#BSUB -G grp"),
        ["#BSUB -q site_override"], "echo wrapper\n", "/dbg/bl_x.debug/wrapper.stdout")
    assert directives(text) == [
        "#BSUB -J bl_3f9a0c1d2e4b", "#BSUB -o /dbg/bl_x.debug/wrapper.stdout",
        "#BSUB -e /dbg/bl_x.debug/wrapper.stdout", "#BSUB -q long", "#BSUB -P atlas", "#BSUB -W 61",
        "#BSUB -n 8", '#BSUB -R "span[ptile=4]"', '#BSUB -R "span[hosts=1]"', "#BSUB -x",
        '#BSUB -R "select[ngpus>1] rusage[ngpus_excl_p=2]"', '#BSUB -R "rusage[nmics=1]"', "#BSUB -L /bin/bash",
        "#BSUB -q site_override", "#BSUB -app big", "#BSUB -G grp"]  # local attributes, then extra args


def test_render_memory_only_when_asked():
    assert not any("2000" in d for d in directives(backend().render(job(memory_mb=2000), [], "", None)))
    text = backend(lsf_request_memory="yes").render(job(memory_mb=2000), [], "", None)
    assert "#BSUB -M 2000" in directives(text) and '#BSUB -R "rusage[mem=2000]"' in directives(text)


def test_render_gpu_models_runtime_and_queue_at_cluster():
    d = directives(backend().render(job(gpu_number=2, gpu_model="V100", runtime_s=59, queue="q", cluster="c2"),
                                    [], "", None))
    assert '#BSUB -R "select[gpu_model0==\'V100\' && gpu_model1==\'V100\'] rusage[ngpus_excl_p=2]"' in d
    assert "#BSUB -W 1" in d and "#BSUB -q q@c2" in d
    d = directives(backend().render(job(gpu_model="A100"), [], "", None))
    assert '#BSUB -R "select[gpu_model0==\'A100\'] rusage[ngpus_excl_p=1]"' in d
    d = directives(backend().render(job(gpu_model="bad'model", gpu_number=1), [], "", None))
    assert '#BSUB -R "select[ngpus>0] rusage[ngpus_excl_p=1]"' in d
    assert not any('span[hosts=1]' in x for x in directives(backend().render(job(host_number=2), [], "", None)))


def test_profile_is_imported_once_for_our_commands_only(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "profile.lsf").write_text(
        "echo chatty profile\nLSF_ENVDIR=%s; export LSF_ENVDIR\nPATH=/opt/lsf/bin:$PATH; export PATH\n"
        "echo $$ >> %s\n" % (conf, tmp_path / "sourced"))
    runner = CommandRunner({"PATH": "/usr/bin:/bin"})
    b = backend(runner, lsf_confpath=str(conf))

    async def main():
        first = await b.environment()
        res = await b.run(["env"])
        await b.environment()
        return first, res
    env, res = trio.run(main)
    assert env["LSF_ENVDIR"] == str(conf) and env["PATH"] == "/opt/lsf/bin:/usr/bin:/bin"
    assert "chatty" not in "".join(env.values()) and "PWD" not in env and "SHLVL" not in env
    assert len((tmp_path / "sourced").read_text().split()) == 1
    assert "LSF_ENVDIR=%s" % conf in res.stdout.splitlines() and "LC_ALL=C" in res.stdout.splitlines()
    assert "LSF_ENVDIR" not in runner.environment  # other backends share the runner


def test_unreadable_profile_fails_every_kind_of_command_clearly(tmp_path):
    b = backend(lsf_confpath=str(tmp_path / "nowhere"))

    async def main():
        with pytest.raises(QueryFailed) as q:
            await b.bulk_query(None)
        with pytest.raises(CommandFailed) as c:
            await b.cancel(JobRef("lsf/20260101/5", "lsf", "5"))
        return q.value, c.value
    q, c = trio.run(main)
    assert "profile.lsf" in str(q) and c.not_executable and "profile.lsf" in c.detail


def test_parse_bhist_rejects_other_output():
    with pytest.raises(ValueError):
        lp.parse_bhist("bhist: Failed to open the event log file lsb.events\n")


def test_no_jobs_for_a_name_that_matches_nothing():
    assert lp.no_jobs("", "Job <bl_3f9a0c1d2e4b> is not found\n")
    assert lp.parse_bjobs_o("Job <bl_x> is not found\n", lp.FIND_FIELDS) == {}


# --- the adapter's commands against the simulated LSF ----------------------------------------------

def sim_backend(tmp_path, cfg=None, **settings):
    from conformance.sim import lsf as lsf_sim
    from tests.clusters.sim import SimSystem
    settings.setdefault("frozen_at", time.time())  # only lsf.advance() moves the clock
    lsf = SimSystem(tmp_path / "sim", "lsf", lsf_sim.COMMANDS, execute=False, **settings)
    runner = CommandRunner(dict(os.environ, PATH=lsf.env["PATH"]))
    return lsf, LsfBackend(BackendContext(Config(cfg or {}, base_environ={}), runner, "/nonexistent", NullLog()))


def sim_submit(lsf, *args):
    import subprocess
    p = subprocess.run(["bsub"] + list(args), input="#!/bin/bash\ntrue\n", env=dict(os.environ, **lsf.env),
                       capture_output=True, text=True, cwd=lsf.state_dir, timeout=60)
    return lp.parse_bsub(p.stdout)


@pytest.mark.parametrize("old_lsf", [False, True])
def test_find_by_key_and_bulk_query(tmp_path, old_lsf):
    lsf, b = sim_backend(tmp_path, o_format=not old_lsf, run_seconds=3600)
    mine = sim_submit(lsf, "-J", "bl_3f9a0c1d2e4b")
    other = sim_submit(lsf, "-J", "bl_3f9a0c1d2e4bX")
    held = sim_submit(lsf, "-J", "held job", "-H")

    async def main():
        found = await b.find_by_key(job())
        nothing = await b.find_by_key(job(h12="000000000000"))
        bulk = await b.bulk_query(None)
        lsf.run(["bkill", mine])
        gone = await b.find_by_key(job())
        return found, nothing, bulk, gone
    found, nothing, bulk, gone = trio.run(main)
    assert found == (mine, None) and nothing is None and gone is None
    assert {k: r.state for k, r in bulk.items()} == {mine: "PEND", other: "PEND", held: "PSUSP"}
    assert bulk[held].extra == ({"job_name": "held job"} if old_lsf else None)
    probes = [c["argv"] for c in lsf.calls("bjobs") if "-o" in c["argv"]]
    assert len(probes) == (1 if old_lsf else 4)  # an LSF without -o is asked once


def test_bulk_query_failures_and_empty_answers(tmp_path):
    lsf, b = sim_backend(tmp_path, consistent_exit_code=True)

    async def bulk():
        try:
            return await b.bulk_query(None)
        except QueryFailed as e:
            return e
    assert trio.run(bulk) == {}  # "No job found", exit code 255
    lsf.fault("bjobs", garbage=True, rc=0)
    assert "unparsable bjobs output" in str(trio.run(bulk))
    lsf.clear_faults()
    lsf.fault("bjobs", rc=255, stderr="LSF is down. Please wait ...\n")
    assert str(trio.run(bulk)) == "bjobs exit code 255: LSF is down. Please wait ..."
    lsf.clear_faults()
    lsf.fault("bjobs", rc=255, stderr="batch system daemon not responding ... still trying\n", times=1)
    assert trio.run(bulk) == {}  # transient: asked once more, 2 s later
    assert len(lsf.calls("bjobs")) == 5


def test_resolve_asks_bhist_once_for_all(tmp_path):
    lsf, b = sim_backend(tmp_path, {"bhist_logs_to_read": "3"}, run_seconds=1, exit_status=2)
    a, c = sim_submit(lsf), sim_submit(lsf)
    lsf.advance(1)
    lsf.run(["bjobs"])
    lsf.advance(5)

    async def resolve(ids):
        try:
            return await b.resolve(None, ids, [None] * len(ids))
        except QueryFailed as e:
            return e
    got = trio.run(resolve, [a, c, "999"])
    assert {k: (r.state, r.exit_code, r.source) for k, r in got.items()} == {
        a: ("EXIT", 2, "history"), c: ("EXIT", 2, "history")}
    assert [x["argv"] for x in lsf.calls("bhist")] == [["-l", "-n", "3", a, c, "999"]]
    assert trio.run(resolve, ["999"]) == {}
    lsf.fault("bhist", rc=255, stderr="lsb.events: No such file or directory\n")
    assert "lsb.events" in str(trio.run(resolve, [a]))


def test_resolve_keeps_what_bhist_found_when_some_ids_are_unknown(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bhist").write_text("#!/bin/sh\ncat %s\necho 'No matching job found' >&2\nexit 255\n"
                                  % os.path.join(FIXTURES, "bhist_l_done.txt"))
    (bindir / "bhist").chmod(0o755)
    b = backend(lsf_binpath=str(bindir))
    got = trio.run(b.resolve, None, ["872795", "5"], [None, None])
    assert list(got) == ["872795"] and got["872795"].state == "DONE"


def test_control_commands(tmp_path):
    lsf, b = sim_backend(tmp_path, run_seconds=3600)
    a = sim_submit(lsf)
    ref = JobRef("lsf/20260101/%s" % a, "lsf", a)

    async def main():
        await b.hold(ref, IDLE)
        st1 = lsf.run(["bjobs", "-noheader", "-o", "stat"]).stdout.strip()
        await b.release(ref)
        st2 = lsf.run(["bjobs", "-noheader", "-o", "stat"]).stdout.strip()
        killed = [await b.cancel(ref),
                  await b.cancel(ref),  # already finished: success, but nothing was cancelled
                  await b.cancel(JobRef("lsf/20260101/77", "lsf", "77"))]  # no matching job: success
        with pytest.raises(CommandFailed) as e:
            await b.hold(ref, IDLE)
        return st1, st2, e.value, killed
    st1, st2, err, killed = trio.run(main)
    assert (st1, st2) == ("PSUSP", "PEND")
    assert killed == [True, False, True]
    assert err.code == 255 and err.detail == "(stdout:) (stderr:Job <%s>: Job has already finished)" % a
    assert [c["argv"] for c in lsf.calls("bkill")] == [[a], [a], ["77"]]
