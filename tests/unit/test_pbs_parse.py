"""Golden-output tests of the PBS parsers, the state table, the exit-status rules, the TORQUE
``nodes=`` layout and the batch-script directives (backends.md §7, submit-ad.md §7).

Fixtures in tests/fixtures/pbs/ (origins in SOURCES.md): TORQUE's documented ``qstat -f`` of a
failed job, a recorded PBS Pro ``qstat -f`` with wrapped values, PBS Pro ``-F json`` from the
PSI/J documentation, the PBS emulation over Slurm, and the layouts the C blahp's
``pbs_submit.sh`` computes.
"""
import json
import os

import pytest
import trio

from blahp.backend import BackendContext, CommandFailed
from blahp.backends import pbs_parse as pp
from blahp.backends.pbs import HOLD_RUNNING_REFUSED, PbsBackend, torque_nodes
from blahp.config import Config
from blahp.jobid import JobRef, MalformedJobId
from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, NativeRecord
from gahp.runtime import NullLog
from tests.adapters import bare_job, directive_lines, make_backend

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pbs")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# --- qsub ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("stdout,expected", [
    ("15.pbsserver\n", "15"),                   # TORQUE
    ("1234.pbs01\n", "1234"),                   # PBS Pro
    ("15\n", "15"),                             # the PBS emulation over Slurm
    ("171390152.mycluster.example-site.org\n", "171390152"),
    ("\nsite banner: welcome\n42.srv\n", "42"),
])
def test_parse_qsub(stdout, expected):
    assert pp.parse_qsub(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "\n", "qsub: Unknown queue\n", "12abc\n", "15[].pbs01\n",
                                    "There was an error running the Slurm sbatch command.\n"])
def test_parse_qsub_without_an_id(stdout):
    assert pp.parse_qsub(stdout) is None


# --- qstat -f ------------------------------------------------------------------------------------

def test_torque_documented_failed_job():
    jobs = pp.parse_qstat_full(fixture("torque_qstat_f_job_failure.txt"))
    assert [j for j, _ in jobs] == ["179.host"]
    attrs = jobs[0][1]
    # continuation lines are joined to the value they continue
    assert attrs["Variable_List"] == ("PBS_O_HOME=/home/user,PBS_O_LOGNAME=user,PBS_O_PATH=/usr/local/sbin:"
                                      "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:,PBS_O_SHELL=/bin/bash,PBS_O_HOST="
                                      "host,PBS_O_WORKDIR=/opt/moab,PBS_O_QUEUE=batchq")
    assert attrs["sched_hint"].startswith("Post job file processing error; job 179.host on host node1/0Bad UID")
    rec = pp.records(jobs)["179"]
    assert (rec.state, rec.exit_code, rec.exit_signal, rec.worker_node) == ("C", -1, None, "node1")
    answer = pp.map_record(rec)
    assert answer.status == COMPLETED
    assert answer.attrs["ExitCode"] == 1 and answer.attrs["ExitBySignal"] is False
    assert answer.attrs["ExitReason"] == "PBS exec status -1"


def test_pro_recorded_running_job_with_wrapped_values():
    jobs = pp.parse_qstat_full(fixture("pro_qstat_f_running.txt"))
    attrs = dict(jobs)["171390152.mycluster"]
    assert attrs["Resource_List.select"] == "1:ncpus=1:mpiprocs=1:mem=524288000:job_tags=normal:jobfs=104857600"
    assert attrs["comment"].endswith("(mycluster-cpu-0686:ncpus=1:mem=512000kb:jobfs=102400kb)")
    assert attrs["Variable_List"].endswith(",PBS_O_QUEUE=normal,PBS_JOBFS=/jobfs/171390152.mycluster")
    assert "PATH=/path/to/scripts:/path/to/scripts/bin:/home/path/to/bin:" in attrs["Variable_List"]
    rec = pp.records(jobs, user="user")["171390152"]
    assert rec.state == "R" and rec.worker_node == "mycluster-cpu-0686"
    assert (rec.wall_s, rec.user_cpu_s, rec.max_rss_kib) == (10.0, 0.0, 0)
    assert rec.extra == {"name": "script.sh", "owners": ["user"]}
    assert pp.records(jobs, user="someone_else") == {}
    answer = pp.map_record(rec)
    assert answer.status == RUNNING and answer.attrs["WorkerNode"] == "mycluster-cpu-0686"
    assert answer.attrs["RemoteWallClockTime"] == 10.0 and answer.attrs["BatchJobState"] == "R"


def test_pbs_emulation_over_slurm():
    jobs = pp.parse_qstat_full(fixture("slurm_torque_qstat_f.txt"))
    attrs = dict(jobs)["15"]
    assert attrs["Resource_List.walltime"] == "71582788:15:00"
    assert pp.owner_names(attrs) == ("root", "root")
    rec = pp.records(jobs, user="root")["15"]
    assert (rec.state, rec.worker_node, rec.exit_code) == ("R", "localhost", None)
    assert pp.parse_duration(attrs["Resource_List.walltime"]) == 71582788 * 3600 + 15 * 60


def test_several_jobs_and_owner_filter():
    text = ("Job Id: 7.srv\n    Job_Name = bl_aaaaaaaaaaaa\n    Job_Owner = alice@ce\n    job_state = Q\n\n"
            "Job Id: 8.srv\n    Job_Name = other\n    Job_Owner = bob@ce\n    euser = bob\n    job_state = R\n\n"
            "Job Id: 9[].srv\n    Job_Name = array\n    Job_Owner = alice@ce\n    job_state = B\n\n")
    jobs = pp.parse_qstat_full(text)
    assert [j for j, _ in jobs] == ["7.srv", "8.srv", "9[].srv"]
    assert list(pp.records(jobs, user="alice")) == ["7"]   # arrays are never ours
    assert list(pp.records(jobs, user="bob")) == ["8"]
    assert pp.records(jobs)["7"].extra["name"] == "bl_aaaaaaaaaaaa"


def test_a_tab_line_in_a_four_space_block_continues_the_value():
    text = "Job Id: 1.s\n    comment = a = b\n\tc = d\n    job_state = Q\n"
    assert dict(pp.parse_qstat_full(text))["1.s"] == {"comment": "a = bc = d", "job_state": "Q"}


@pytest.mark.parametrize("text", [
    "garbage\n",
    "qstat: cannot connect to server pbs01 (errno=111)\n",
    "Job Id: 1.s\nnot indented = x\n",
    "Job Id: 1.s\n\tcontinuation without attribute\n",
])
def test_unparsable_qstat_text(text):
    with pytest.raises(ValueError):
        pp.parse_qstat_full(text)


def test_job_without_state_is_an_error():
    with pytest.raises(ValueError):
        pp.records(pp.parse_qstat_full("Job Id: 1.s\n    Job_Name = x\n"))


def test_empty_output_is_no_job():
    assert pp.parse_qstat_full("") == [] and pp.parse_qstat_full("\n\n") == []


# --- qstat -F json ---------------------------------------------------------------------------------

def test_pro_json_documented_sample():
    # the documentation abbreviated the job ("with a lot of detail removed") and left a comma behind
    text = fixture("pro_qstat_fx_json_doc.txt").replace('"Exit_status":0,', '"Exit_status":0')
    jobs = pp.parse_qstat_json(text)
    rec = pp.records(jobs, source="history")["2154"]
    assert (rec.state, rec.exit_code, rec.source) == ("F", 0, "history")
    answer = pp.map_record(rec)
    assert answer.status == COMPLETED and answer.attrs["ExitCode"] == 0 and answer.exit_known


def test_pro_json_nested_resources_and_numbers():
    doc = {"timestamp": 1, "pbs_version": "20.0.1", "pbs_server": "pbs01", "Jobs": {"5.pbs01": {
        "Job_Name": "bl_3f9a0c1d2e4b", "Job_Owner": "alice@ce", "job_state": "F", "Exit_status": 265,
        "resources_used": {"cput": "00:01:05", "mem": "12272kb", "walltime": "01:00:00", "ncpus": 1},
        "exec_host": "n1/0+n2/0", "Variable_List": {"PBS_O_HOME": "/home/alice"}}}}
    jobs = pp.parse_qstat_json(json.dumps(doc, indent=4, separators=(",", ":")))
    assert jobs[0][1]["resources_used.ncpus"] == "1" and jobs[0][1]["Exit_status"] == "265"
    rec = pp.records(jobs, user="alice")["5"]
    assert (rec.exit_code, rec.exit_signal, rec.user_cpu_s, rec.wall_s, rec.max_rss_kib, rec.worker_node) == \
        (None, 9, 65.0, 3600.0, 12272, "n1")
    answer = pp.map_record(rec)
    assert answer.attrs["ExitBySignal"] is True and answer.attrs["ExitSignal"] == 9 and "ExitCode" not in answer.attrs


def test_pro_json_without_jobs_is_empty():
    # qstat -f -F json leaves "Jobs" out when there is no job
    assert pp.parse_qstat_json('{\n    "timestamp":1,\n    "pbs_version":"20.0.1",\n    "pbs_server":"s"\n}\n') == []


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"Jobs": []}', '{"Jobs": {"1.s": 5}}'])
def test_unparsable_json(text):
    with pytest.raises(ValueError):
        pp.parse_qstat_json(text)


# --- field parsers -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [
    ("00:00:00", 0.0), ("00:01:05", 65.0), ("10:00:00", 36000.0), ("71582788:15:00", 71582788 * 3600 + 900.0),
    ("05:07", 307.0), ("42", 42.0), (None, None), ("", None)])
def test_parse_duration(text, seconds):
    assert pp.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1:2:3:4", "1h", "-5", "a:b"])
def test_parse_duration_errors(text):
    with pytest.raises(ValueError):
        pp.parse_duration(text)


@pytest.mark.parametrize("text,kib", [
    ("12272kb", 12272), ("0b", 0), ("0kb", 0), ("2gb", 2 * 1024 * 1024), ("3MB", 3072), ("100", 1), ("1025b", 2),
    ("512mw", 512 * 1024 * 8), ("1tb", 1024 ** 3), (None, None)])
def test_parse_size(text, kib):
    assert pp.parse_size_kib(text) == kib


@pytest.mark.parametrize("text", ["12 kb", "kb", "1.5gb", "-1kb", "12xb"])
def test_parse_size_errors(text):
    with pytest.raises(ValueError):
        pp.parse_size_kib(text)


@pytest.mark.parametrize("text,host", [
    ("node1/0", "node1"), ("node1/0+node2/1", "node1"), ("qot-calc0/10+qot-calc0/11", "qot-calc0"),
    ("n3/0*2", "n3"), ("--", None), ("", None), (None, None)])
def test_first_exec_host(text, host):
    assert pp.first_exec_host(text) == host


# --- state table and exit status (backends.md §7.3) ------------------------------------------------

@pytest.mark.parametrize("state,status", [
    ("Q", IDLE), ("W", IDLE), ("T", IDLE), ("M", IDLE),
    ("H", HELD),
    ("R", RUNNING), ("E", RUNNING), ("S", RUNNING), ("U", RUNNING), ("B", RUNNING),
    ("C", COMPLETED), ("F", COMPLETED), ("X", COMPLETED),
])
def test_state_table(state, status):
    answer = pp.map_record(NativeRecord("7", state))
    assert answer.status == status and answer.attrs["JobStatus"] == status
    assert answer.attrs["BatchJobId"] == "7" and answer.attrs["BatchJobState"] == state
    if status == COMPLETED:
        assert not answer.exit_known  # no exit_status reported: nothing guessed


@pytest.mark.parametrize("last", [None, IDLE, RUNNING, HELD])
def test_unknown_state_keeps_the_last_status(last):
    answer = pp.map_record(NativeRecord("7", "Z"), last_status=last)
    assert answer.status == (IDLE if last is None else last) and answer.attrs["BatchJobState"] == "Z"


def test_held_job_reason_and_report_batch_holds():
    rec = NativeRecord("7", "H", reason="u")
    assert pp.map_record(rec).attrs["HoldReason"] == "Held in PBS: job 7 is H (Hold_Types = u)"
    assert pp.map_record(rec, report_batch_holds=False).status == IDLE
    rec = pp.record("7.s", {"job_state": "H", "Hold_Types": "n"})
    assert pp.map_record(rec).attrs["HoldReason"] == "Held in PBS: job 7 is H"


@pytest.mark.parametrize("value,attrs", [
    ("0", {"ExitCode": 0, "ExitBySignal": False}),
    ("3", {"ExitCode": 3, "ExitBySignal": False}),
    ("137", {"ExitCode": 137, "ExitBySignal": False}),   # a shell's 128+9 stays an exit code here
    ("255", {"ExitCode": 255, "ExitBySignal": False}),
    ("256", {"ExitBySignal": True, "ExitSignal": 0}),
    ("265", {"ExitBySignal": True, "ExitSignal": 9}),    # SIGKILL
    ("271", {"ExitBySignal": True, "ExitSignal": 15}),   # SIGTERM (qdel)
    ("-1", {"ExitCode": 1, "ExitBySignal": False, "ExitReason": "PBS exec status -1"}),
    ("-11", {"ExitCode": 1, "ExitBySignal": False, "ExitReason": "PBS exec status -11"}),
])
@pytest.mark.parametrize("name,state", [("exit_status", "C"), ("Exit_status", "F")])
def test_exit_status_rules(value, attrs, name, state):
    answer = pp.map_record(pp.record("4.s", {"job_state": state, name: value}))
    got = {k: v for k, v in answer.attrs.items() if k in ("ExitCode", "ExitBySignal", "ExitSignal", "ExitReason")}
    assert answer.status == COMPLETED and got == attrs


def test_exit_status_of_a_live_job_is_not_reported():
    answer = pp.map_record(pp.record("4.s", {"job_state": "R", "exit_status": "0"}))
    assert answer.status == RUNNING and "ExitCode" not in answer.attrs


def test_bad_exit_status():
    with pytest.raises(ValueError):
        pp.record("4.s", {"job_state": "C", "exit_status": "oops"})


def test_status_codes_used():
    assert REMOVED not in pp.STATUS.values()  # only our own cancel (registry) gives 3


# --- TORQUE nodes= layout (golden: the C blahp's pbs_submit.sh) -----------------------------------------

def _golden():
    with open(os.path.join(FIXTURES, "torque_nodes_golden.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("case", _golden(), ids=lambda c: "n%s-smp%s-h%s-hs%s-w%s-g%s-%s-m%s" % (
    c["NodeNumber"], c["SMPGranularity"], c["HostNumber"], c["HostSMPSize"], int(c["WholeNodes"]),
    c["GPUNumber"], c["GPUMode"], int(c["pbs_maui"])))
def test_torque_nodes_layout(case):
    job = make_job(node_number=case["NodeNumber"], smp_granularity=case["SMPGranularity"],
                   host_number=case["HostNumber"], host_smp_size=case["HostSMPSize"],
                   whole_nodes=case["WholeNodes"], gpu_number=case["GPUNumber"], gpu_mode=case["GPUMode"])
    b = backend(pbs_maui="yes" if case["pbs_maui"] else "no")
    layout = [d for d in directives(b.render(job, [], "", None))
              if "nodes=" in d or "NACCESSPOLICY" in d]
    expected = case.get("pyblahp", case["c_blahp"])
    assert layout == expected, case.get("why")
    if "pyblahp" in case:   # a deviation is only ever a repair of an impossible or dropped request
        assert not case["c_blahp"] or any(":ppn=0" in d or "nodes=0" in d for d in case["c_blahp"])


def test_torque_nodes_direct():
    assert torque_nodes(8, 8, None, None, False) == ["nodes=1:ppn=8"]
    assert torque_nodes(None, None, None, None, None) == []
    assert torque_nodes(4, 0, None, None, False) == ["nodes=4"]  # SMPGranularity 0 is no granularity


# --- the adapter: ids, script, hold ------------------------------------------------------------------

def backend(**cfg):
    return make_backend(PbsBackend, **cfg)


make_job = bare_job


def directives(text):
    return directive_lines(text, '#PBS')


def test_job_ids_keep_the_digits():
    import datetime
    b = backend()
    jid = b.make_job_id("42", None, datetime.datetime(2026, 11, 22, 1, 2, 3))
    assert jid == "pbs/20261122/42"
    assert b.parse_job_id(jid) == JobRef(jid, "pbs", "42", None, "20261122")
    assert b.parse_job_id("pbs/20200101/123.pbs01.example.org").batch_id == "123"
    for bad in ("pbs/20261122/4a", "pbs/20261122/4@c/d", "pbs/20261122/4@", "slurm/20261122/4", "pbs/x/", "pbs/20261122/.srv",
                "pbs/20261122/12[].srv"):
        with pytest.raises(MalformedJobId):
            b.parse_job_id(bad)


def test_render_minimal_torque():
    text = backend().render(make_job(), [], "echo wrapper\n", None)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1].startswith("# pyblahp ") and lines[1].endswith(" key=home_bl_x")
    assert directives(text) == ["#PBS -S /bin/bash", "#PBS -N bl_3f9a0c1d2e4b", "#PBS -o /dev/null",
                                "#PBS -e /dev/null", "#PBS -m n"]
    assert text.endswith("\necho wrapper\n")


def test_render_everything_torque_in_order():
    text = backend(pbs_set_pvmem="yes", pbs_maui="yes").render(
        make_job(queue="long", project="atlas", runtime_s=3600, memory_mb=2000, node_number=8, smp_granularity=1,
                 gpu_number=2, gpu_mode="exclusive_process", whole_nodes=False,
                 extra_args="-l file=10gb\\n#PBS -W umask=022"),
        ["#PBS -l site=yes"], "echo wrapper\n", "/dbg/wrapper.stdout")
    assert directives(text) == [
        "#PBS -S /bin/bash", "#PBS -N bl_3f9a0c1d2e4b", "#PBS -o /dbg/wrapper.stdout", "#PBS -e /dbg/wrapper.stdout",
        "#PBS -A atlas", "#PBS -l walltime=3600", "#PBS -l pvmem=2000mb", "#PBS -l pmem=2000mb",
        "#PBS -l mem=2000mb", "#PBS -l nodes=8:ppn=1:gpus=2:exclusive_process", "#PBS -W x='GRES:gpu@2'",
        "#PBS -m n",
        "#PBS -l site=yes",                              # local attributes
        "#PBS -l file=10gb", "#PBS -W umask=022",        # extra args
        "#PBS -q long"]                                  # the queue last


def test_render_everything_pro():
    text = backend(pbs_pro="yes", pbs_set_pvmem="yes", pbs_maui="yes").render(
        make_job(queue="workq", project="atlas", runtime_s=60, memory_mb=2000, node_number=8, smp_granularity=4,
                 gpu_number=1, whole_nodes=True), [], "", None)
    assert directives(text) == [
        "#PBS -S /bin/bash", "#PBS -N bl_3f9a0c1d2e4b", "#PBS -o /dev/null", "#PBS -e /dev/null",
        "#PBS -A atlas", "#PBS -l walltime=60", "#PBS -l select=1:mem=2000mb:ncpus=4:ngpus=1", "#PBS -l place=excl",
        "#PBS -m n", "#PBS -q workq"]


@pytest.mark.parametrize("fields,select", [
    ({}, "select=1:ncpus=1"),
    ({"memory_mb": 100}, "select=1:mem=100mb:ncpus=1"),
    ({"node_number": 6}, "select=1:ncpus=6"),
    ({"node_number": 6, "smp_granularity": 2}, "select=1:ncpus=2"),
])
def test_pro_select(fields, select):
    assert "#PBS -l %s" % select in directives(backend(pbs_pro="yes").render(make_job(**fields), [], "", None))


def test_the_sites_queue_wins():
    for site, extra in ((["#PBS -q site_q"], None), ([], "-q extra_q")):
        text = backend().render(make_job(queue="ours", extra_args=extra), site, "", None)
        queues = [d for d in directives(text) if d.startswith("#PBS -q")]
        assert queues == (["#PBS -q site_q"] if site else ["#PBS -q extra_q"])


def test_hold_of_a_running_job_is_refused_without_a_command():
    b = backend(pbs_binpath="/nonexistent")  # any command run would fail differently

    async def main():
        with pytest.raises(CommandFailed) as e:
            await b.hold(JobRef("pbs/20260101/5", "pbs", "5"), RUNNING)
        return e.value
    err = trio.run(main)
    assert (err.code, err.detail) == (1, HOLD_RUNNING_REFUSED)
    assert "Job RUNNING: pbs hold command failed %s" % err.detail == \
        "Job RUNNING: pbs hold command failed (stdout:) (stderr:unsupported for this job status)"


# --- the adapter's commands and how it reads their answers (scripted runner) --------------------------

class Scripted:
    """A runner answering from a list of (argv prefix, returncode, stdout, stderr), in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []
        self.environment = {"PATH": "/usr/bin:/bin"}

    async def run(self, argv, *, timeout, cwd=None, stdin=None, env=None):
        from blahp.runner import CommandResult
        self.calls.append(list(argv))
        want, rc, out, err = self.answers.pop(0)
        assert list(argv[:len(want)]) == want, (argv, want)
        return CommandResult(list(argv), rc, out, err, False, 0.01)


def scripted(*answers, **cfg):
    runner = Scripted(*answers)
    b = PbsBackend(BackendContext(Config(cfg, base_environ={}), runner, "/nonexistent", NullLog()))
    b.user = "alice"
    return b, runner


TORQUE_BULK = ("Job Id: 7.srv\n    Job_Name = bl_3f9a0c1d2e4b\n    Job_Owner = alice@ce\n    job_state = R\n"
               "    exec_host = n1/0\n\nJob Id: 8.srv\n    Job_Name = bl_3f9a0c1d2e4b\n    Job_Owner = alice@ce\n"
               "    job_state = C\n    exit_status = 0\n\nJob Id: 9.srv\n    Job_Name = x\n    Job_Owner = bob@ce\n"
               "    job_state = Q\n\n")


def test_torque_bulk_filters_the_user():
    b, runner = scripted((["qstat", "-f", "-1"], 0, TORQUE_BULK, ""))
    recs = trio.run(b.bulk_query, None)
    assert runner.calls == [["qstat", "-f", "-1"]]
    assert sorted(recs) == ["7", "8"] and recs["7"].worker_node == "n1" and recs["8"].exit_code == 0


@pytest.mark.parametrize("rc,out,err,ok", [
    (153, "", "", True),                                      # the emulation over Slurm with no job at all
    (153, "", "qstat: Unknown Job Id Error 1.srv\n", True),
    (153, "", "qstat: Error (15007 - Unauthorized Request ) 1.srv\n", False),
    (1, "", "qstat: Unauthorized Request\n", False),
    (0, "garbage\n", "", False),
    (2, "", "usage: qstat ...\n", False),
])
def test_torque_bulk_answers(rc, out, err, ok):
    from blahp.backend import QueryFailed
    b, _ = scripted((["qstat"], rc, out, err), (["qstat"], rc, out, err))
    if ok:
        assert trio.run(b.bulk_query, None) == {}
    else:
        with pytest.raises(QueryFailed):
            trio.run(b.bulk_query, None)


def test_pro_bulk_probes_json_once_and_falls_back():
    usage = "qstat: invalid option -- 'F'\nusage: \nqstat [-f] ...\n"
    text = "Job Id: 7.pbs01\n    Job_Name = n\n    Job_Owner = alice@ce\n    job_state = H\n    Hold_Types = u\n"
    b, runner = scripted((["qstat", "-f", "-F", "json"], 2, "", usage), (["qstat", "-f"], 0, text, ""),
                         (["qstat", "-f"], 0, text, ""), pbs_pro="yes")
    assert trio.run(b.bulk_query, None)["7"].reason == "u"
    assert trio.run(b.bulk_query, None)["7"].state == "H"
    assert runner.calls == [["qstat", "-f", "-F", "json"], ["qstat", "-f"], ["qstat", "-f"]]


def test_pro_bulk_json():
    doc = json.dumps({"timestamp": 1, "pbs_version": "2024.1", "pbs_server": "pbs01", "Jobs": {
        "7.pbs01": {"Job_Name": "n", "Job_Owner": "alice@ce", "job_state": "R"},
        "8.pbs01": {"Job_Name": "n", "Job_Owner": "carol@ce", "job_state": "R"}}})
    b, runner = scripted((["qstat", "-f", "-F", "json"], 0, doc, ""), (["qstat", "-f", "-F", "json"], 0, "{}", ""),
                         pbs_pro="yes")
    assert list(trio.run(b.bulk_query, None)) == ["7"]
    assert trio.run(b.bulk_query, None) == {}


def test_pro_history_lookup_in_one_call():
    from blahp.backend import QueryFailed
    doc = json.dumps({"Jobs": {"5.pbs01": {"job_state": "F", "Exit_status": 3, "Job_Owner": "alice@ce"}}})
    b, runner = scripted((["qstat", "-x", "-f", "-F", "json", "5", "6"], 153, doc, "qstat: Unknown Job Id 6.pbs01\n"),
                         pbs_pro="yes")
    b._json = True
    recs = trio.run(b.resolve, None, ["5", "6"], [None, None])
    assert list(recs) == ["5"] and recs["5"].exit_code == 3 and recs["5"].source == "history"
    # any other complaint is a failed query, never "job gone"
    b, _ = scripted((["qstat", "-x"], 153, "", "qstat: Unknown Job Id 6.pbs01\nqstat: Unauthorized Request  5.pbs01\n"),
                    pbs_pro="yes")
    with pytest.raises(QueryFailed):
        trio.run(b.resolve, None, ["5", "6"], [None, None])
    # TORQUE has no history: nothing asked
    b, runner = scripted()
    assert trio.run(b.resolve, None, ["5"], [None]) == {} and runner.calls == []


def test_pro_history_disabled_is_remembered():
    b, runner = scripted((["qstat", "-x", "-f", "5"], 0, "", "qstat: PBS is not configured to maintain job history 5.s\n"),
                         pbs_pro="yes")
    b._json = False
    assert trio.run(b.resolve, None, ["5"], [None]) == {}
    assert trio.run(b.resolve, None, ["5"], [None]) == {} and len(runner.calls) == 1


@pytest.mark.parametrize("rc,out,err", [
    (153, "", "qdel: Unknown Job Id Error 7.srv\n"),
    (170, "", "qdel: Request invalid for state of job MSG=invalid state for job - COMPLETE 7.srv\n"),
    (35, "", "qdel: Job has finished 7.pbs01\n"),
    (0, "", ""),
])
def test_cancel_of_a_gone_job_is_a_success(rc, out, err):
    b, runner = scripted((["qdel", "7"], rc, out, err))
    trio.run(b.cancel, JobRef("pbs/20260101/7", "pbs", "7"))
    assert runner.calls == [["qdel", "7"]]


@pytest.mark.parametrize("qstat,gone", [
    ((153, "", ""), True),                                        # unknown, said the emulation's way
    ((0, "Job Id:\t7\n\tjob_state = C\n\teuser = alice(1)\n", ""), True),
    ((0, "Job Id:\t7\n\tjob_state = R\n", ""), False),
    ((1, "", "qstat: cannot connect to server\n"), False),
])
def test_cancel_that_fails_silently_asks_qstat(qstat, gone):
    b, runner = scripted((["qdel", "7"], 1, "", ""), (["qstat", "-f", "-1", "7"],) + qstat)
    if gone:
        trio.run(b.cancel, JobRef("pbs/20260101/7", "pbs", "7"))
    else:
        with pytest.raises(CommandFailed) as e:
            trio.run(b.cancel, JobRef("pbs/20260101/7", "pbs", "7"))
        assert e.value.code == 1 and e.value.detail == "(stdout:) (stderr:)"


def test_hold_and_release_commands():
    b, runner = scripted((["qhold", "7"], 0, "", ""), (["qrls", "7"], 0, "", ""))
    ref = JobRef("pbs/20260101/7", "pbs", "7")
    trio.run(b.hold, ref, IDLE)
    trio.run(b.release, ref)
    assert runner.calls == [["qhold", "7"], ["qrls", "7"]]
    b, _ = scripted((["qhold", "7"], 170, "", "qhold: Request invalid for state of job 7.srv\n"),
                    (["qhold", "7"], 170, "", "qhold: Request invalid for state of job 7.srv\n"))
    with pytest.raises(CommandFailed) as e:
        trio.run(b.hold, ref, IDLE)
    assert e.value.code == 170 and "Request invalid" in e.value.detail


def test_submit_and_find_by_key():
    from blahp.backend import SubmitFailed
    b, runner = scripted((["qsub", "/tmp/s.sh"], 0, "12.srv\n", ""))
    assert trio.run(b.submit, make_job(), "/tmp/s.sh") == ("12", None)
    b, _ = scripted((["qsub"], 172, "", "qsub: submit error (Unknown queue MSG=requested queue not found)\n"))
    with pytest.raises(SubmitFailed) as e:
        trio.run(b.submit, make_job(), "/tmp/s.sh")
    assert (e.value.code, e.value.ambiguous) == (172, False)
    assert e.value.message == ("submission command failed (exit code = 172) (stdout:) (stderr:qsub: submit error "
                               "(Unknown queue MSG=requested queue not found))")
    b, _ = scripted((["qsub"], 0, "\n", ""))
    with pytest.raises(SubmitFailed) as e:
        trio.run(b.submit, make_job(), "/tmp/s.sh")
    assert e.value.ambiguous and e.value.code == 8
    b, _ = scripted((["qstat", "-f", "-1"], 0, TORQUE_BULK, ""), (["qstat", "-f", "-1"], 0, TORQUE_BULK, ""))
    assert trio.run(b.find_by_key, make_job()) == ("7", None)          # 8 has finished: not adoptable
    assert trio.run(b.find_by_key, make_job(h12="000000000000")) is None


def test_a_queue_on_another_server():
    """Queue = "q@server": -q q@server, the server kept as the job's cluster, and every later
    command names the server (qstat @server, n.server)."""
    import datetime
    job = make_job(queue="q", cluster="pbs02")
    text = backend().render(job, [], "echo wrapper\n", None)
    assert "#PBS -q q@pbs02" in directives(text)
    assert "#PBS -q site" in directives(backend().render(job, ["#PBS -q site"], "", None)) and \
        "#PBS -q q@pbs02" not in directives(backend().render(job, ["#PBS -q site"], "", None))
    b, runner = scripted((["qsub", "/tmp/s.sh"], 0, "12.pbs02\n", ""),
                         (["qstat", "-f", "-1", "@pbs02"], 0, TORQUE_BULK, ""),
                         (["qdel", "7.pbs02"], 0, "", ""), (["qhold", "7.pbs02"], 0, "", ""),
                         (["qrls", "7.pbs02"], 0, "", ""))
    assert trio.run(b.submit, job, "/tmp/s.sh") == ("12", "pbs02")
    jid = b.make_job_id("12", "pbs02", datetime.datetime(2026, 11, 22))
    assert jid == "pbs/20261122/12@pbs02"
    assert b.parse_job_id(jid) == JobRef(jid, "pbs", "12", "pbs02", "20261122")
    assert b.cluster_key("pbs02") != b.cluster_key(None)
    assert set(trio.run(b.bulk_query, "pbs02")) == {"7", "8"}
    ref = JobRef("pbs/20261122/7@pbs02", "pbs", "7", "pbs02")
    assert trio.run(b.cancel, ref) is True
    trio.run(b.hold, ref, IDLE)
    trio.run(b.release, ref)
    assert runner.calls[1:] == [["qstat", "-f", "-1", "@pbs02"], ["qdel", "7.pbs02"], ["qhold", "7.pbs02"],
                                ["qrls", "7.pbs02"]]
    b, runner = scripted((["qstat", "-f", "-1", "@pbs02"], 0, TORQUE_BULK, ""))
    assert trio.run(b.find_by_key, job) == ("7", "pbs02")


def test_pro_history_of_jobs_on_another_server():
    b, runner = scripted((["qstat", "-x", "-f", "7.pbs02", "9.pbs02"], 153, "Job Id: 7.pbs02\n    job_state = F\n"
                          "    Exit_status = 0\n\n", "qstat: Unknown Job Id 9.pbs02\n"), pbs_pro="yes")
    recs = trio.run(b.resolve, "pbs02", ["7", "9"], [None, None])
    assert list(recs) == ["7"] and runner.calls == [["qstat", "-x", "-f", "7.pbs02", "9.pbs02"]]
