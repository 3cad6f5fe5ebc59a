"""The simulated LSF (conformance/sim/lsf.py) against the documented outputs in tests/fixtures/lsf.

Messages and table layouts are compared byte for byte with the published samples; the formats
the adapter reads (bjobs -o, bjobs -w, bhist -l) are also read back with its own parsers.
"""
import os
import time

import pytest

from blahp.backends import lsf_parse as lp
from conformance.sim import lsf as sim
from tests.clusters.sim import SimSystem

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "lsf")
BULK = ["-noheader", "-o", lp.output_format(lp.BULK_FIELDS)]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture
def lsf(tmp_path):
    # played jobs: 5 s of virtual time each, no processes; only advance() moves the clock
    return SimSystem(tmp_path, "lsf", sim.COMMANDS, execute=False, queue_delay=0.5, run_seconds=5.0,
                     frozen_at=time.time())


SCRIPT = "#!/bin/bash\n#BSUB -J myjob\n#BSUB -q short\necho hi\n"


def bsub(lsf, *args, script=SCRIPT, cwd=None):
    import subprocess
    env = dict(os.environ)
    env.update(lsf.env)
    p = subprocess.run(["bsub"] + list(args), input=script, env=env, capture_output=True, text=True,
                       cwd=cwd or lsf.state_dir, timeout=60)
    return p


def submit(lsf, *args, **kw):
    p = bsub(lsf, *args, **kw)
    assert p.returncode == 0, p.stderr
    return lp.parse_bsub(p.stdout)


def settle(lsf, seconds=10):
    """Played jobs start at the first command after their queue delay, then run 5 s."""
    lsf.advance(1)
    lsf.run(["bjobs"])
    lsf.advance(seconds)


def states(lsf):
    r = lsf.run(["bjobs", "-a"] + BULK)
    assert r.returncode == 0, r.stderr
    return {k: (v.state, v.exit_code) for k, v in lp.parse_bjobs_o(r.stdout).items()}


# --- messages, byte for byte ---------------------------------------------------------------------

def test_bsub_messages(lsf, tmp_path):
    lsf.configure(first_id=228)
    assert bsub(lsf, script="#!/bin/bash\nsleep 10\n").stdout == fixture("bsub_default_queue.txt")
    assert bsub(lsf).stdout == "Job <229> is submitted to queue <short>.\n"
    lsf = SimSystem(tmp_path / "other", "lsf", sim.COMMANDS, execute=False, queues=["normal", "pub.1h"],
                    first_id=473713)
    p = bsub(lsf, "-q", "pub.1h")
    assert (p.returncode, p.stdout) == (0, fixture("bsub_queue.txt"))
    p = bsub(lsf, "-q", "missingqueue")
    assert (p.returncode, p.stdout, p.stderr) == (255, "", fixture("bsub_no_such_queue.stderr"))


def test_bjobs_no_jobs_and_unknown_id(lsf):
    r = lsf.run(["bjobs"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", fixture("bjobs_no_unfinished.stderr"))
    assert lsf.run(["bjobs", "-a"]).stderr == "No job found\n"
    lsf.configure(consistent_exit_code=True)
    assert lsf.run(["bjobs"]).returncode == 255
    r = lsf.run(["bjobs", "123"])
    assert (r.returncode, r.stdout, r.stderr) == (255, "", fixture("bjobs_not_found.stderr"))
    r = lsf.run(["bjobs", "-J", "bl_nothing", "-noheader", "-o", "jobid stat"])
    assert (r.returncode, r.stderr) == (255, "Job <bl_nothing> is not found\n")


def test_bkill_messages(lsf):
    lsf.configure(first_id=11)
    submit(lsf)
    r = lsf.run(["bkill", "11"])
    assert (r.returncode, r.stdout, r.stderr) == (0, fixture("bkill_terminated.txt"), "")
    r = lsf.run(["bkill", "11"])
    assert (r.returncode, r.stdout, r.stderr) == (255, "", fixture("bkill_finished.stderr"))
    r = lsf.run(["bkill", "22"])
    assert (r.returncode, r.stdout, r.stderr) == (255, "", fixture("bkill_no_match.stderr"))


# --- tables ------------------------------------------------------------------------------------

def test_table_rows_reproduce_the_published_layouts():
    header = sim.table_row(list(sim.TABLE_COLUMNS), True)
    for name in ("bjobs_running.txt", "bjobs_pending.txt", "bjobs_running_gc3pie.txt", "bjobs_truncated.txt",
                 "bjobs_a_w.txt"):
        assert fixture(name).splitlines()[0] == header
    rows = [(["111", "user1", "RUN", "normal", "hostA", "hostB", "myjob", "Oct 22 09:22"], False, "bjobs_running.txt"),
            (["473713", "gloessa", "PEND", "pub.1h", "brutus2", "", "TM-T", "Oct 19 17:10"], False,
             "bjobs_pending.txt"),
            (["2636607", "lg11w", "RUN", "long", "ghpcc06", "c11b02", "job_2477983069656647", "Mar  7 00:58"], False,
             "bjobs_truncated.txt"),
            (["227", "lsfadmin", "DONE", "normal", "test-re1-mgmt-1-9e6e-001.lsf.com",
              "test-re1-comp-1-9e6e-001.lsf.com", "sleep 10", "Jun 25 14:52"], True, "bjobs_a_w.txt")]
    for values, wide, name in rows:
        assert sim.table_row(values, wide) == fixture(name).splitlines()[1]


def test_default_and_wide_tables_read_back(lsf):
    submit(lsf, "-J", "a job name longer than ten")
    table = lsf.run(["bjobs"]).stdout
    assert table.splitlines()[0] == fixture("bjobs_running.txt").splitlines()[0]
    # the default table keeps the end of a long name behind a "*"
    assert table.splitlines()[1][57:68] == "* than ten "
    assert lp.parse_bjobs_wide(table)["1"].extra["job_name"] == "* than ten"
    lsf.advance(1)
    wide = lp.parse_bjobs_wide(lsf.run(["bjobs", "-w"]).stdout)["1"]
    assert (wide.state, wide.worker_node, wide.extra["job_name"]) == ("RUN", "localhost", "a job name longer than ten")


def test_bjobs_o_layout(lsf):
    submit(lsf)
    submit(lsf, "-n", "4")
    lsf.advance(1)
    submit(lsf)
    pipelite = "jobid stat exit_code cpu_used max_mem avg_mem exec_host delimiter='|'"
    out = lsf.run(["bjobs", "-o", pipelite, "-noheader"]).stdout.splitlines()
    # the layout of the captured rows (fixture bjobs_o_pipelite.txt): running ones first
    assert out == ["1|RUN|-|0.0 second(s)|-|-|localhost", "2|RUN|-|0.0 second(s)|-|-|4*localhost", "3|PEND|-|-|-|-|-"]
    assert fixture("bjobs_o_pipelite.txt").splitlines()[0] == "861487|PEND|-|-|-|-|-"
    with_header = lsf.run(["bjobs", "-o", lp.output_format(lp.BULK_FIELDS)]).stdout.splitlines()
    assert with_header[0] == "JOBID|STAT|EXIT_CODE|EXEC_HOST|PEND_REASON"
    assert with_header[3] == "3|PEND|-|-|New job is waiting for scheduling;"
    import json
    doc = json.loads(lsf.run(["bjobs", "-o", "jobid stat", "-json"]).stdout)
    assert doc["JOBS"] == 3 and doc["RECORDS"][2] == {"JOBID": "3", "STAT": "PEND"}
    assert lsf.run(["bjobs", "-o", "jobid nosuchfield"]).returncode == 255


def test_old_lsf_refuses_o(lsf):
    lsf.configure(o_format=False)
    submit(lsf)
    r = lsf.run(["bjobs", "-u", "all", "-a"] + BULK)
    assert r.returncode == 255 and r.stderr.startswith("bjobs: illegal option -- ") and "Usage:" in r.stderr
    assert lp.parse_bjobs_wide(lsf.run(["bjobs", "-a", "-w"]).stdout)["1"].state == "PEND"


# --- states ------------------------------------------------------------------------------------

def test_lifecycle_done_and_exit(lsf):
    a = submit(lsf)
    b = submit(lsf, "-J", "fails")
    lsf.configure(exit_status=0)
    assert states(lsf) == {a: ("PEND", None), b: ("PEND", None)}
    lsf.advance(1)
    assert states(lsf)[a] == ("RUN", None)
    jobs = lsf.jobs()
    jobs_b = jobs[b]
    assert jobs_b["state"] == "running"
    lsf.configure(exit_status=3)
    lsf.advance(10)
    assert states(lsf) == {a: ("EXIT", 3), b: ("EXIT", 3)}
    lsf.configure(exit_status=0)
    c = submit(lsf)
    settle(lsf)
    assert states(lsf)[c] == ("DONE", None)
    assert lsf.run(["bjobs"]).stderr == "No unfinished job found\n"  # finished jobs need -a


def test_clean_period_then_history_period(lsf):
    lsf.configure(clean_period=60, history_seconds=600)
    a = submit(lsf)
    settle(lsf)
    assert states(lsf)[a] == ("DONE", None)
    lsf.advance(60)
    assert lsf.run(["bjobs", "-a"]).stderr == "No job found\n"
    hist = lsf.run(["bhist", "-l", a])
    assert hist.returncode == 0 and lp.parse_bhist(hist.stdout)[a].state == "DONE"
    lsf.advance(600)
    hist = lsf.run(["bhist", "-l", a])
    assert (hist.returncode, hist.stdout, hist.stderr) == (255, "", "No matching job found\n")


def test_hold_release_and_suspension_states(lsf):
    pend = submit(lsf, "-b", "2100:01:01:00:00")
    held = submit(lsf, "-H")
    run = submit(lsf)
    lsf.configure(run_seconds=3600)
    lsf.advance(1)
    assert states(lsf) == {pend: ("PEND", None), held: ("PSUSP", None), run: ("RUN", None)}
    r = lsf.run(["bstop", pend, run])
    assert r.stdout == "Job <%s> is being stopped\nJob <%s> is being stopped\n" % (pend, run)
    assert states(lsf) == {pend: ("PSUSP", None), held: ("PSUSP", None), run: ("USUSP", None)}
    r = lsf.run(["bresume", pend, held, run])
    assert r.returncode == 0 and r.stdout.count("is being resumed") == 3
    lsf.advance(1)
    assert states(lsf) == {pend: ("PEND", None), held: ("RUN", None), run: ("RUN", None)}
    r = lsf.run(["bresume", run])
    assert (r.returncode, r.stderr) == (255, "Job <%s>: The job is not suspended\n" % run)
    lsf.configure(system_suspend=[run])
    assert states(lsf)[run] == ("SSUSP", None)
    lsf.configure(system_suspend=[])
    assert states(lsf)[run] == ("RUN", None)
    lsf.configure(stat_override={run: "UNKWN", held: "ZOMBI"})
    assert states(lsf)[run] == ("UNKWN", None) and states(lsf)[held] == ("ZOMBI", None)


def test_begin_time_is_honoured(lsf):
    later = time.strftime("%Y:%m:%d:%H:%M", time.localtime(time.time() + 7200))
    a = submit(lsf, "-b", later)
    lsf.advance(3600)
    assert states(lsf)[a] == ("PEND", None)
    lsf.advance(3700)
    states(lsf)
    assert states(lsf)[a] == ("RUN", None)
    assert bsub(lsf, "-b", "tomorrow").returncode == 255


def test_kill_pending_and_running(lsf):
    lsf.configure(run_seconds=3600)
    pend = submit(lsf, "-H")
    run = submit(lsf)
    lsf.advance(1)
    assert lsf.run(["bkill", pend]).returncode == 0 and lsf.run(["bkill", run]).returncode == 0
    # a played job killed with SIGKILL: LSF reports 128+9
    assert states(lsf) == {pend: ("EXIT", None), run: ("EXIT", 137)}
    recs = lp.parse_bhist(lsf.run(["bhist", "-l", pend, run]).stdout)
    assert {k: (r.state, r.exit_code, bool(r.extra)) for k, r in recs.items()} == {
        pend: ("EXIT", None, True), run: ("EXIT", 137, True)}
    assert lp.map_record(recs[pend]).status == lp.REMOVED


def test_bhist_wrapping_and_read_back(lsf):
    for name in ("bhist_l_exited.txt", "bhist_l_done.txt"):
        text = fixture(name)
        assert "\n".join(line for logical in lp.unwrap(text) for line in sim.wrap(logical)) + "\n" == text
    a = submit(lsf, "-J", "bl_3f9a0c1d2e4b", "-R", "rusage[mem=2000] span[hosts=1]", "-o", "out.%J",
               script="#!/bin/bash\n#BSUB -q long\n# a long script line " + "x" * 200 + "\nexit 4\n")
    lsf.configure(exit_status=4)
    settle(lsf)
    out = lsf.run(["bhist", "-l", a]).stdout
    for line in out.splitlines():
        assert len(line) <= 79
    assert any(line.startswith(" " * 21) for line in out.splitlines())
    rec = lp.parse_bhist(out)[a]
    assert (rec.state, rec.exit_code, rec.worker_node) == ("EXIT", 4, "localhost")
    logical = lp.unwrap(out)
    assert logical[1].startswith("Job <%s>, Job Name <bl_3f9a0c1d2e4b>, User <" % a)
    assert any("Submitted from host <localhost>, to Queue <long>" in x and "Output File <out.%s>" % a in x
               and "Requested Resources <rusage[mem=2000] span[hosts=1]>" in x for x in logical)
    assert logical[-2] == "  PEND     PSUSP    RUN      USUSP    SSUSP    UNKWN    TOTAL"


# --- bsub: directives, options, environment ---------------------------------------------------------

def test_directives_and_command_line(lsf):
    script = ('#!/bin/bash\n# a comment\n\n#BSUB -J fromscript\n#BSUB -q long\n#BSUB -W 90\n#BSUB -n 4\n'
              '#BSUB -R "span[ptile=2]"\n#BSUB -x\n#BSUB -P proj\n#BSUB -M 2000\n#BSUB -L /bin/bash\n'
              'echo start\n#BSUB -q ignored_after_a_command\n')
    a = submit(lsf, "-q", "short", "-R", "select[ngpus>0]", script=script)
    job = lsf.jobs()[a]
    assert (job["name"], job["queue"], job["run_limit_min"], job["slots"], job["exclusive"], job["project"],
            job["mem_limit"], job["login_shell"]) == ("fromscript", "short", 90, 4, True, "proj", "2000", "/bin/bash")
    assert job["resources"] == ["span[ptile=2]", "select[ngpus>0]"]
    with open(os.path.join(lsf.state_dir, "jobs", "%s.sh" % a)) as f:
        assert f.read() == script
    # a command on the command line is not a script: no #BSUB parsing
    b = submit(lsf, "/bin/echo", "#BSUB -q long", script="")
    assert lsf.jobs()[b]["queue"] == "normal"
    assert bsub(lsf, "-Z").returncode == 255
    assert bsub(lsf, "-n", "x").returncode == 255


def test_job_runs_in_cwd_with_lsf_environment(tmp_path):
    lsf = SimSystem(tmp_path, "lsf", sim.COMMANDS, queue_delay=0.2)
    work = tmp_path / "work"
    work.mkdir()
    a = submit(lsf, "-o", "out.%J", "-J", "envjob", cwd=str(work),
               script="#!/bin/bash\necho $LSB_JOBID $LSB_JOBNAME $LSB_QUEUE $PWD\necho err >&2\n")
    deadline = time.time() + 30
    while states(lsf)[a][0] != "DONE":
        assert time.time() < deadline
        time.sleep(0.2)
    # without -e, stderr goes to the -o file
    assert (work / ("out.%s" % a)).read_text() == "%s envjob normal %s\nerr\n" % (a, work)
