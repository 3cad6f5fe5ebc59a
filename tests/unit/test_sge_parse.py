"""Golden-output tests of the Grid Engine parsers, the state map and the script rendering.

Files under tests/fixtures/sge/ are verbatim output of Son of Grid Engine 8.1.9 (the Debian 12
packages, a cell made by tests/clusters/sge-up.sh); the inline texts marked "captured" too.
Cases a one-host cell cannot produce (array ids, transfer states) are written in the same formats.
"""
import calendar
import os
import pwd
import time

import pytest
import trio

from blahp.backend import BackendContext, CommandFailed
from blahp.backends import sge_parse as gp
from blahp.backends.sge import RUNNING_HOLD_REFUSED, SgeBackend, _date_seconds
from blahp.config import Config
from blahp.jobid import JobRef, MalformedJobId
from blahp.records import COMPLETED, HELD, IDLE, REMOVED, RUNNING, JobAnswer, NativeRecord
from blahp.runner import CommandRunner
from gahp.runtime import NullLog
from tests.adapters import bare_job, directive_lines, make_backend

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "sge")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def states(records):
    return {k: r.state for k, r in records.items()}


# --- qsub ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stdout,expected", [
    ("5\n", "5"),                                                     # captured, qsub -terse
    ('Your job 2 ("true") has been submitted\n', "2"),               # captured, without -terse
    ("13.1-10:1\n", "13"),                                            # -terse of an array job (-t 1-10)
    ('Your job-array 13.1-10:1 ("a") has been submitted\n', "13"),
    ("  42  \n", "42"),
    ("Loading site profile\nYour job 77 (\"x\") has been submitted\n", "77"),
])
def test_parse_qsub(stdout, expected):
    assert gp.parse_qsub(stdout) == expected


@pytest.mark.parametrize("stdout", [
    "", "\n", "5 6\n", "12abc\n", "-5\n",
    'Unable to run job: Job was rejected because job requests unknown queue "nosuch.q"\nExiting.\n',  # captured
])
def test_parse_qsub_without_id(stdout):
    assert gp.parse_qsub(stdout) is None


# --- qstat -xml ----------------------------------------------------------------------------

def test_qstat_xml_running_and_pending_sections():
    # captured: hr (qhold of a running job), s (qmod -sj), Eqw (unwritable -o), qw, hqw (qsub -h)
    recs = gp.parse_qstat_xml(fixture("qstat_xml_mixed.xml"), observed_at=7.0)
    assert states(recs) == {"4": "hr", "7": "s", "6": "Eqw", "8": "qw", "5": "hqw"}
    assert recs["4"] == NativeRecord("4", "hr", worker_node="localhost", alloc_cpus=1, source="bulk",
                                     observed_at=7.0, extra={"name": "runner"})
    # pending jobs have an empty queue_name: no host, no slots allocated yet
    assert recs["5"] == NativeRecord("5", "hqw", source="bulk", observed_at=7.0, extra={"name": "heldone"})


@pytest.mark.parametrize("name,expected", [
    ("qstat_xml_deleting.xml", {"4": "dhr", "7": "s", "6": "Eqw", "8": "qw", "5": "hqw"}),  # qdel of an hr job
    ("qstat_xml_dr.xml", {"15": "dr", "16": "r"}),                                           # qdel of a running job
    ("qstat_xml_running.xml", {"15": "r", "16": "r"}),
    ("qstat_xml_queue_suspended.xml", {"15": "S", "16": "S"}),                               # qmod -s all.q@localhost
    ("qstat_xml_empty.xml", {}),
])
def test_qstat_xml_captured(name, expected):
    assert states(gp.parse_qstat_xml(fixture(name))) == expected


def test_qstat_xml_job_names_are_kept_for_find_by_key():
    recs = gp.parse_qstat_xml(fixture("qstat_xml_running.xml"))
    assert {r.extra["name"] for r in recs.values()} == {"sleep"}


@pytest.mark.parametrize("text", [
    "",
    "<?xml version='1.0'?>\n<job_info>\n  <queue_info>\n    <job_list state=\"running\">\n",   # truncated
    "error: commlib error: got select error (Connection refused)\n",
    "<?xml version='1.0'?><unknown_jobs><ST_name>1</ST_name></unknown_jobs>",                # not a job list
    "<job_info><queue_info><job_list><JB_job_number>x</JB_job_number><state>r</state></job_list>"
    "</queue_info></job_info>",
    "<job_info><job_info><job_list><JB_job_number>3</JB_job_number></job_list></job_info></job_info>",
])
def test_qstat_xml_garbage_is_an_error(text):
    with pytest.raises(ValueError):
        gp.parse_qstat_xml(text)


def test_qstat_xml_array_tasks_give_one_record():
    text = ("<job_info><queue_info>"
            "<job_list state='running'><JB_job_number>9</JB_job_number><JB_name>a</JB_name><state>r</state>"
            "<queue_name>all.q@node1</queue_name><slots>1</slots><tasks>1</tasks></job_list>"
            "</queue_info><job_info>"
            "<job_list state='pending'><JB_job_number>9</JB_job_number><JB_name>a</JB_name><state>qw</state>"
            "<queue_name></queue_name><slots>1</slots><tasks>2-3:1</tasks></job_list>"
            "</job_info></job_info>")
    recs = gp.parse_qstat_xml(text)
    assert list(recs) == ["9"] and recs["9"].state == "r" and recs["9"].worker_node == "node1"


# --- qstat -j --------------------------------------------------------------------------------

def test_error_reasons_captured():
    assert gp.parse_error_reasons(fixture("qstat_j_eqw.txt")) == {
        "6": 'error: can\'t open output file "/nonexistent/dir/out": No such file or directory'}
    assert gp.parse_error_reasons(fixture("qstat_j_eqw_cwd.txt")) == {
        "8": "error: can't chdir to /nonexistent/cwd: No such file or directory"}


def test_error_reasons_of_several_jobs_and_of_none():
    both = fixture("qstat_j_eqw.txt") + fixture("qstat_j_eqw_cwd.txt")
    assert sorted(gp.parse_error_reasons(both)) == ["6", "8"]
    assert gp.parse_error_reasons("Following jobs do not exist: \n9999\n") == {}  # captured (stderr)
    no_error = fixture("qstat_j_eqw_cwd.txt").replace("error reason", "other")
    assert gp.parse_error_reasons(no_error) == {}


# --- qacct -j --------------------------------------------------------------------------------

def acct(name, submitted=None):
    chosen = gp.choose_record(gp.parse_qacct(fixture(name)), submitted)
    return gp.accounting_record(chosen, observed_at=3.0)


def test_qacct_success_record():
    rec = acct("qacct_success.txt")
    assert rec == NativeRecord("1", "z", reason="0", exit_code=0, worker_node="localhost", user_cpu_s=0.002,
                               sys_cpu_s=0.009, wall_s=0.0, alloc_cpus=1, source="accounting", observed_at=3.0,
                               extra={"failed": 0, "started": True})


def test_qacct_killed_while_running_has_units_and_annotations():
    rec = acct("qacct_qdel_running.txt")  # "exit_status  137  (Killed)", "maxvmem 3.473MB", "ru_wallclock 15s"
    assert (rec.exit_code, rec.extra["failed"], rec.reason) == (137, 100, "100 : assumedly after job")
    assert rec.wall_s == 15.0 and rec.max_rss_kib == 3557  # ceil(3.473 * 1024)
    assert rec.user_cpu_s == 0.006 and rec.sys_cpu_s == 0.005


def test_qacct_failure_before_start():
    rec = acct("qacct_failed_before_start.txt")
    assert rec.extra == {"failed": 26, "started": False}
    assert rec.reason == "26 : opening input/output file"  # the double space is normalised


def test_qacct_newest_record_wins():
    # captured: Eqw (unwritable -o), qalter -o /dev/null, qmod -cj, then it ran and exited 3
    records = gp.parse_qacct(fixture("qacct_two_records.txt"))
    assert [r["failed"].split()[0] for r in records] == ["26", "0"]
    assert acct("qacct_two_records.txt").exit_code == 3


def test_qacct_record_of_an_earlier_owner_of_the_id_is_ignored():
    qsub = calendar.timegm((2026, 11, 22, 1, 45, 12, 0, 0, 0))  # qsub_time of the fixture
    records = gp.parse_qacct(fixture("qacct_success.txt"))
    assert gp.choose_record(records, qsub + 3600) is records[0]        # time zones differ: within slack
    assert gp.choose_record(records, qsub + 2 * 86400) is None          # id reused: not this job's record
    assert gp.choose_record(records, None) is records[0]


def test_qacct_not_found():
    text = fixture("qacct_not_found.txt")
    assert text.strip() == "error: job id 999 not found"  # captured, rc 1
    assert gp.qacct_not_found(text) and gp.parse_qacct(text) == []


@pytest.mark.parametrize("text", [
    "",
    "garbage\n",
    "==============================================================\nqname all.q\nhostname x\n",
    fixture("qacct_success.txt").replace("exit_status", "exit_stat"),
    fixture("qacct_success.txt").replace("exit_status  0", "exit_status  none"),
])
def test_qacct_garbage_is_an_error(text):
    with pytest.raises(ValueError):
        chosen = gp.choose_record(gp.parse_qacct(text), None)
        gp.accounting_record(chosen)


@pytest.mark.parametrize("text,seconds", [("0.004s", 0.004), ("15s", 15.0), ("15", 15.0), ("", None)])
def test_parse_seconds(text, seconds):
    assert gp.parse_seconds(text) == seconds


@pytest.mark.parametrize("text,kib", [("4.609KB", 5), ("3.473MB", 3557), ("2.000GB", 2 * 1024 ** 2),
                                      ("0.000B", None), ("512.000B", 1), ("", None)])
def test_parse_size_kib(text, kib):
    assert gp.parse_size_kib(text) == kib


@pytest.mark.parametrize("text", ["12 apples", "MB", "-1KB"])
def test_parse_size_garbage(text):
    with pytest.raises(ValueError):
        gp.parse_size_kib(text)


def test_parse_ctime():
    assert gp.parse_ctime("Sun Nov 22 01:45:12 2026") == calendar.timegm((2026, 11, 22, 1, 45, 12, 0, 0, 0))
    assert gp.parse_ctime("-/-") is None
    with pytest.raises(ValueError):
        gp.parse_ctime("yesterday")


# --- state map -------------------------------------------------------------------------------

@pytest.mark.parametrize("letters,status", [
    ("Eqw", HELD), ("Ehqw", HELD), ("Ew", HELD),
    ("dr", REMOVED), ("dt", REMOVED), ("dqw", REMOVED), ("dhr", REMOVED), ("dRr", REMOVED), ("ds", REMOVED),
    ("hqw", HELD), ("hRwq", HELD), ("hqw", HELD), ("hw", HELD),
    ("r", RUNNING), ("t", RUNNING), ("Rr", RUNNING), ("Rt", RUNNING), ("hr", RUNNING), ("ht", RUNNING),
    ("s", RUNNING), ("S", RUNNING), ("T", RUNNING), ("hs", RUNNING), ("St", RUNNING),
    ("qw", IDLE), ("w", IDLE), ("Rq", IDLE), ("Rqw", IDLE),
])
def test_state_map(letters, status):
    answer = gp.map_record(NativeRecord("7", letters), last_status=RUNNING)
    assert answer.status == status, letters
    assert answer.attrs["BatchJobState"] == letters and answer.attrs["BatchJobId"] == "7"


def test_error_state_is_held_with_the_error_reason():
    rec = NativeRecord("6", "Eqw", reason='error: can\'t open output file "/x": No such file or directory')
    assert gp.map_record(rec) == JobAnswer(HELD, {
        "BatchJobId": "6", "JobStatus": HELD, "BatchJobState": "Eqw",
        "HoldReason": 'SGE job 6 in error state Eqw: error: can\'t open output file "/x": No such file or directory'})
    assert gp.map_record(NativeRecord("6", "Eqw")).attrs["HoldReason"] == \
        "SGE job 6 in error state Eqw: no error reason reported"


def test_batch_holds_reported_as_idle_when_asked():
    assert gp.map_record(NativeRecord("5", "hqw"), report_batch_holds=False).status == IDLE
    # an error state is no hold: it never ends by itself
    assert gp.map_record(NativeRecord("6", "Eqw"), report_batch_holds=False).status == HELD
    held = gp.map_record(NativeRecord("5", "hqw"))
    assert held.status == HELD and held.attrs["HoldReason"] == "Held in SGE (hqw)"


@pytest.mark.parametrize("last,expected", [(None, IDLE), (RUNNING, RUNNING), (HELD, HELD)])
def test_unknown_state_keeps_the_last_status(last, expected):
    assert gp.map_record(NativeRecord("5", "X"), last_status=last).status == expected


def test_running_record_carries_host_and_slots():
    a = gp.map_record(NativeRecord("4", "r", worker_node="localhost", alloc_cpus=4))
    assert a.attrs["WorkerNode"] == "localhost" and a.attrs["CpusProvisioned"] == 4


@pytest.mark.parametrize("failed,exit_status,status,attrs", [
    ("0", "0", COMPLETED, {"ExitCode": 0, "ExitBySignal": False}),
    ("0", "3", COMPLETED, {"ExitCode": 3, "ExitBySignal": False}),
    # the wrapper exits 128+S for a payload killed by S; the status engine turns it into
    # ExitBySignal with the exit record
    ("0", "137", COMPLETED, {"ExitCode": 137, "ExitBySignal": False}),
    ("100 : assumedly after job", "137                  (Killed)", REMOVED,
     {"ExitReason": "SGE failed 100 : assumedly after job (exit_status 137)"}),
    ("100 : assumedly after job", "143", COMPLETED,
     {"ExitCode": 143, "ExitBySignal": False, "ExitReason": "SGE failed 100 : assumedly after job"}),
    ("26  : opening input/output file", "0", COMPLETED,
     {"ExitCode": 1, "ExitBySignal": False, "ExitReason": "SGE failed 26 : opening input/output file"}),
    ("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137", COMPLETED,
     {"ExitCode": 137, "ExitBySignal": False,
      "ExitReason": "SGE failed 37 : qmaster enforced h_rt, h_cpu, or h_vmem limit"}),
])
def test_accounting_map(failed, exit_status, status, attrs):
    text = fixture("qacct_success.txt").replace("failed       0    ", "failed       %s" % failed) \
        .replace("exit_status  0     ", "exit_status  %s" % exit_status)
    answer = gp.map_record(gp.accounting_record(gp.parse_qacct(text)[0]))
    assert answer.status == status
    got = {k: v for k, v in answer.attrs.items() if k in ("ExitCode", "ExitBySignal", "ExitSignal", "ExitReason")}
    assert got == attrs
    assert answer.attrs["WorkerNode"] == "localhost" and answer.attrs["RemoteUserCpu"] == 0.002


def test_accounting_of_a_failed_start_says_nothing_about_a_job_seen_running_since():
    # the record of the run after `qmod -cj` is not flushed yet: wait for it
    rec = acct("qacct_failed_before_start.txt")
    assert gp.map_record(rec, last_status=RUNNING) is None
    assert gp.map_record(rec, last_status=IDLE).status == COMPLETED


def test_captured_accounting_answers():
    assert gp.map_record(acct("qacct_exit3.txt")).attrs["ExitCode"] == 3
    assert gp.map_record(acct("qacct_qdel_running.txt")).status == REMOVED
    ok = gp.map_record(acct("qacct_success.txt"))
    assert ok.status == COMPLETED and ok.attrs["ExitCode"] == 0 and ok.exit_known


# --- the adapter: ids, script, hold ------------------------------------------------------------

def backend(**cfg):
    return make_backend(SgeBackend, **cfg)


job = bare_job


def test_job_id_has_a_utc_timestamp_and_round_trips():
    import datetime
    b = backend()
    jid = b.make_job_id("42", None, datetime.datetime(2026, 11, 22, 1, 2, 3))
    assert jid == "sge/20261122010203/42"
    assert b.parse_job_id(jid) == JobRef(jid, "sge", "42", None, "20261122010203")
    assert _date_seconds("20261122010203") == calendar.timegm((2026, 11, 22, 1, 2, 3, 0, 0, 0))
    for bad in ("sge/20261122010203/4a", "sge/20261122010203/4@c", "slurm/20261122/4", "sge/x/"):
        with pytest.raises(MalformedJobId):
            b.parse_job_id(bad)


def directives(text):
    return directive_lines(text, '#$')


def test_render_minimal():
    text = backend().render(job(), [], "echo wrapper\n", None)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1].startswith("# pyblahp ") and lines[1].endswith(" key=home_bl_x")
    assert directives(text) == ["#$ -N bl_3f9a0c1d2e4b", "#$ -o /dev/null", "#$ -e /dev/null", "#$ -S /bin/bash",
                                "#$ -m n"]
    assert text.endswith("\necho wrapper\n")


def test_render_everything_in_the_c_blahp_order():
    text = backend(sge_pe_policy="mpi", sge_memory_resource="h_vmem").render(
        job(queue="long.q", project="atlas", runtime_s=3600, memory_mb=2000, gpu_number=2, node_number=8,
            extra_args="-l scratch=1G\\n#$ -P prio"),
        ["#$ -l site=yes"], "echo wrapper\n", "/dbg/bl_x.debug/wrapper.stdout")
    assert directives(text) == [
        "#$ -N bl_3f9a0c1d2e4b", "#$ -o /dbg/bl_x.debug/wrapper.stdout", "#$ -e /dbg/bl_x.debug/wrapper.stdout",
        "#$ -S /bin/bash", "#$ -m n", "#$ -A atlas", "#$ -l h_rt=3600", "#$ -l h_vmem=2000M", "#$ -l gpu=2",
        "#$ -l site=yes", "#$ -l scratch=1G", "#$ -P prio", "#$ -q long.q", "#$ -pe mpi 8"]


def test_render_a_queue_instance():
    # Queue = "all.q@node7": one host's instance of all.q, passed on whole
    assert "#$ -q all.q@node7" in directives(backend().render(job(queue="all.q", cluster="node7"), [], "", None))


def test_render_memory_only_with_a_resource_name_and_pe_defaults():
    text = backend().render(job(memory_mb=2000, node_number=4), [], "", None)
    assert not any("2000" in d for d in directives(text))
    assert directives(text)[-1] == "#$ -pe * 4"
    assert not any("-pe" in d for d in directives(backend().render(job(node_number=1), [], "", None)))


def test_render_keeps_the_sites_parallel_environment():
    text = backend().render(job(node_number=4), ["#$ -pe smp 4"], "", None)
    assert [d for d in directives(text) if "-pe" in d] == ["#$ -pe smp 4"]


def test_hold_of_a_running_job_is_refused_without_a_command():
    b = backend(sge_binpath="/nonexistent")  # any command run would fail differently

    async def main():
        with pytest.raises(CommandFailed) as e:
            await b.hold(JobRef("sge/20260101000000/5", "sge", "5"), RUNNING)
        return e.value
    err = trio.run(main)
    assert (err.code, err.detail) == (1, RUNNING_HOLD_REFUSED)
    assert "Job RUNNING: sge hold command failed %s" % err.detail == \
        "Job RUNNING: sge hold command failed (stdout:) (stderr:hold of a running job is not supported)"


def test_settings_file_is_imported_once_and_our_ports_win(tmp_path):
    common = tmp_path / "root" / "c1" / "common"
    common.mkdir(parents=True)
    (common / "settings.sh").write_text(
        "echo noise\nSGE_ROOT=%s; export SGE_ROOT\nSGE_CELL=c1; export SGE_CELL\n"
        "SGE_QMASTER_PORT=7000; export SGE_QMASTER_PORT\nSGE_EXECD_PORT=7001; export SGE_EXECD_PORT\n"
        "SGE_CLUSTER_NAME=p7000; export SGE_CLUSTER_NAME\nPATH=/opt/sge/bin:$PATH; export PATH\n"
        "echo $$ >> %s\n" % (tmp_path / "root", tmp_path / "sourced"))
    runner = CommandRunner({"PATH": "/usr/bin:/bin", "SGE_QMASTER_PORT": "6444"})
    cfg = Config({"sge_rootpath": str(tmp_path / "root"), "sge_cellname": "c1"}, base_environ={})
    b = SgeBackend(BackendContext(cfg, runner, "/nonexistent", NullLog()))

    async def main():
        first = await b.environment()
        await b.environment()
        res = await b.run(["env"])
        return first, res
    env, res = trio.run(main)
    assert env["SGE_QMASTER_PORT"] == "6444"           # ours
    assert env["SGE_EXECD_PORT"] == "7001"             # the site's
    assert env["SGE_CLUSTER_NAME"] == "p7000" and env["PATH"] == "/opt/sge/bin:/usr/bin:/bin"
    assert env["SGE_ROOT"] == str(tmp_path / "root") and env["SGE_CELL"] == "c1"
    assert "noise" not in "".join(env.values())
    assert len((tmp_path / "sourced").read_text().split()) == 1   # sourced once
    assert "SGE_CLUSTER_NAME=p7000" in res.stdout.splitlines() and "SGE_QMASTER_PORT=6444" in res.stdout.splitlines()
    assert runner.environment.get("SGE_CLUSTER_NAME") is None      # other backends share the runner


def test_without_a_settings_file_only_root_and_cell_are_set(tmp_path):
    runner = CommandRunner({"PATH": "/usr/bin:/bin", "SGE_ROOT": str(tmp_path)})
    b = SgeBackend(BackendContext(Config({}, base_environ={}), runner, "/nonexistent", NullLog()))
    assert trio.run(b.environment) == {"SGE_ROOT": str(tmp_path), "SGE_CELL": "default"}


def test_date_seconds_of_unknown_dates():
    for d in (None, "", "2026", "20261399", "2026112201020x"):
        assert _date_seconds(d) is None
    assert _date_seconds("20261122") == calendar.timegm((2026, 11, 22, 0, 0, 0, 0, 0, 0))


def test_ctime_parse_does_not_depend_on_local_timezone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert gp.parse_ctime("Sun Nov 22 01:45:12 2026") == calendar.timegm((2026, 11, 22, 1, 45, 12, 0, 0, 0))
    finally:
        monkeypatch.undo()
        time.tzset()


# --- the adapter's queries, against stand-in commands (sge_binpath) ------------------------------

def fake_bin(tmp_path, **scripts):
    """A directory of shell scripts named like the Grid Engine commands."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for name, body in scripts.items():
        p = d / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(0o755)
    return str(d)


def run_backend(b, fn, *args):
    async def main():
        return await fn(*args)
    return trio.run(main)


def test_bulk_query_adds_the_error_reason_of_error_state_jobs(tmp_path):
    d = fake_bin(tmp_path, qstat='case "$1" in -xml) cat %s;; -j) echo "$2" >> %s; cat %s; exit 1;; esac\n'
                 % (os.path.join(FIXTURES, "qstat_xml_mixed.xml"), tmp_path / "asked",
                    os.path.join(FIXTURES, "qstat_j_eqw.txt")))
    b = backend(sge_binpath=d)
    recs = run_backend(b, b.bulk_query, None)
    assert recs["6"].reason == 'error: can\'t open output file "/nonexistent/dir/out": No such file or directory'
    assert recs["8"].reason is None and recs["4"].reason is None
    assert (tmp_path / "asked").read_text() == "6\n"  # one qstat -j, for the Eqw job only


@pytest.mark.parametrize("body,error", [
    ("echo 'error: commlib error: got select error (Connection refused)' >&2; exit 1\n", "exit code 1"),
    ("echo '<job_info><queue_info>'\n", "unparsable qstat -xml output"),
])
def test_bulk_query_failures(tmp_path, body, error):
    from blahp.backend import QueryFailed
    b = backend(sge_binpath=fake_bin(tmp_path, qstat=body))
    with pytest.raises(QueryFailed) as e:
        run_backend(b, b.bulk_query, None)
    assert error in str(e.value)


def _qacct_script(tmp_path, per_id, listing=()):
    """qacct -j N: ``per_id[N]`` = fixture name, "notfound" or "fail"; the listing form
    (``-o user -b time -j``) prints the ``listing`` fixtures, or fails when it is "fail".
    Every call's arguments are logged, one call a line."""
    cases = []
    for job_id, what in per_id.items():
        if what == "notfound":
            action = "echo 'error: job id %s not found' >&2; exit 1" % job_id
        elif what == "fail":
            action = "echo 'error: accounting file unreadable' >&2; exit 1"
        else:
            action = "cat %s" % os.path.join(FIXTURES, what)
        cases.append("%s) %s;;" % (job_id, action))
    if listing == "fail":
        listed = "echo 'error: accounting file unreadable' >&2; exit 1"
    else:
        listed = "cat %s" % " ".join(os.path.join(FIXTURES, f) for f in listing) if listing else "true"
    return ('echo "$*" >> %s\nif [ "$1" = -o ]; then %s; exit; fi\ncase "$2" in %s esac\n'
            % (tmp_path / "qacct.log", listed, " ".join(cases)))


def test_resolve_of_one_job_asks_for_that_job(tmp_path):
    d = fake_bin(tmp_path, qacct=_qacct_script(tmp_path, {"14": "qacct_two_records.txt", "2": "notfound"}))
    b = backend(sge_binpath=d)
    out = run_backend(b, b.resolve, None, ["14"], ["20261122010000"])
    assert out["14"].exit_code == 3  # the newest of 14's two records
    assert run_backend(b, b.resolve, None, ["2"], [None]) == {}  # not found: no record yet, not a failure
    assert (tmp_path / "qacct.log").read_text().splitlines() == ["-j 14", "-j 2"]


def test_resolve_of_several_jobs_is_one_listing_since_the_earliest_submission(tmp_path):
    d = fake_bin(tmp_path, qacct=_qacct_script(tmp_path, {}, listing=("qacct_success.txt", "qacct_two_records.txt")))
    b = backend(sge_binpath=d)
    out = run_backend(b, b.resolve, None, ["1", "2", "14"], ["20261122010000", None, "20261123010000"])
    assert sorted(out) == ["1", "14"]  # 2 has no record yet
    assert out["1"].exit_code == 0 and out["14"].exit_code == 3
    (call,) = (tmp_path / "qacct.log").read_text().splitlines()
    user = pwd.getpwuid(os.getuid()).pw_name
    since = time.strftime("%Y%m%d%H%M", time.localtime(calendar.timegm((2026, 11, 21, 1, 0, 0))))
    assert call == "-o %s -b %s -j" % (user, since), call  # one day before the earliest stamp


def test_resolve_ignores_a_record_older_than_the_job(tmp_path):
    d = fake_bin(tmp_path, qacct=_qacct_script(tmp_path, {"1": "qacct_success.txt"}))
    b = backend(sge_binpath=d)
    # the fixture's record is from 2026-11-22: a job submitted in 2027 with that id is another job
    assert run_backend(b, b.resolve, None, ["1"], ["20270301000000"]) == {}


@pytest.mark.parametrize("ids", [["2"], ["1", "2", "3"]])
def test_resolve_failure_is_a_query_failure(tmp_path, ids):
    from blahp.backend import QueryFailed
    d = fake_bin(tmp_path, qacct=_qacct_script(tmp_path, {"2": "fail"}, listing="fail"))
    b = backend(sge_binpath=d)
    with pytest.raises(QueryFailed) as e:
        run_backend(b, b.resolve, None, ids, [None] * len(ids))
    assert "qacct exit code 1: error: accounting file unreadable" in str(e.value)


def test_cancel_of_a_job_that_is_gone_is_success(tmp_path):
    gone = 'echo "denied: job \\"$1\\" does not exist"; exit 1\n'  # captured text, rc 1
    d = fake_bin(tmp_path, qdel=gone, qrls=gone)
    b = backend(sge_binpath=d)
    ref = JobRef("sge/20260101000000/9999", "sge", "9999")
    run_backend(b, b.cancel, ref)
    with pytest.raises(CommandFailed) as e:  # release of a gone job is a failure, not a no-op
        run_backend(b, b.release, ref)
    assert e.value.detail == '(stdout:denied: job "9999" does not exist) (stderr:)'


def test_find_by_key_matches_the_job_name_of_live_jobs(tmp_path):
    xml = fixture("qstat_xml_dr.xml").replace("<JB_name>sleep</JB_name>", "<JB_name>bl_3f9a0c1d2e4b</JB_name>")
    (tmp_path / "q.xml").write_text(xml)
    b = backend(sge_binpath=fake_bin(tmp_path, qstat="cat %s\n" % (tmp_path / "q.xml")))
    # 15 is being deleted (dr) and 16 runs: only 16 is a live job with this key
    assert run_backend(b, b.find_by_key, job()) == ("16", None)
    assert run_backend(b, b.find_by_key, job(h12="000000000000")) is None


def test_qacct_listing_skips_the_owner_usage_table():
    text = fixture("qacct_listing.txt")  # qacct -o root -b <time> -j, captured from the test cell
    assert [(r["jobnumber"], r["exit_status"]) for r in gp.parse_qacct(text, listing=True)] == [("1", "0"), ("2", "126")]
    # the usage row printed after the last separator once jobs have used CPU (seen in a longer session)
    row = "root              7         0.192         0.161         0.353              0.000              0.000              0.000\n"
    assert len(gp.parse_qacct(text + row, listing=True)) == 2
    with pytest.raises(ValueError):
        gp.parse_qacct(text + row)  # a single job's lookup has no such table: garbage there is an error
    assert gp.parse_qacct("", listing=True) == []
