"""The PBS simulator (conformance/sim/pbs.py), both flavours, against the documented formats in
tests/fixtures/pbs/ and the behaviour of the real servers (messages and exit codes from the
TORQUE and OpenPBS sources)."""
import json
import os
import re
import time

import pytest

from blahp.backends import pbs_parse as pp
from conformance.sim.pbs import prt_attr
from tests.clusters.sim import SimSystem

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pbs")
COMMANDS = ["qsub", "qstat", "qdel", "qhold", "qrls"]
SERVER = {"torque": "pbsserver", "pro": "pbs01"}
CTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture(params=["torque", "pro"])
def flavour(request):
    return request.param


def sim(tmp_path, flavour, **settings):
    # only step()/advance() move the clock, so no state changes between two commands
    base = dict(flavour=flavour, execute=False, queue_delay=1.0, run_seconds=10.0, keep_seconds=0.0,
                frozen_at=time.time())
    base.update(settings)
    return SimSystem(tmp_path, "pbs", COMMANDS, **base)


def script(tmp_path, body="echo hi\n", name="job.sh", directives=("-N bl_abcdef123456", "-o /dev/null", "-e /dev/null")):
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + "".join("#PBS %s\n" % d for d in directives) + body)
    return str(path)


def submit(s, path, *opts):
    r = s.run(["qsub"] + list(opts) + [path])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def step(s, *seconds):
    """Advance the clock; a command after each step lets the world act (start, finish, forget)."""
    for sec in seconds:
        s.advance(sec)
        s.run(["qstat"])


def full(s, flavour, *ids, x=False):
    argv = ["qstat", "-f"] + (["-1"] if flavour == "torque" else []) + (["-x"] if x else []) + list(ids)
    return s.run(argv)


def records(s, flavour, *ids, x=False):
    r = full(s, flavour, *ids, x=x)
    return pp.records(pp.parse_qstat_full(r.stdout))


# --- qsub ----------------------------------------------------------------------------------------

def test_qsub_prints_the_id_with_the_server(tmp_path, flavour):
    s = sim(tmp_path, flavour)
    assert submit(s, script(tmp_path)) == "1.%s" % SERVER[flavour]
    assert submit(s, script(tmp_path)) == "2.%s" % SERVER[flavour]


def test_directives_and_command_line(tmp_path, flavour):
    s = sim(tmp_path, flavour)
    path = script(tmp_path, body="echo hi\n#PBS -q ignored_after_a_command\n", directives=(
        "-S /bin/bash", "-N bl_abcdef123456", "-o /dev/null", "-e /dev/null", "-A atlas",
        "-l walltime=3600", "-l mem=2000mb", "-m n", "-W x=NACCESSPOLICY:SINGLEJOB" if flavour == "torque"
        else "-l select=1:ncpus=2", "-q %s" % ("batch" if flavour == "torque" else "workq")))
    submit(s, path, "-h", "-N", "bl_fromcmdline0")
    job = s.jobs()["1"]
    assert job["name"] == "bl_fromcmdline0"        # the command line wins over the script
    assert job["held"] and job["account"] == "atlas" and job["stdout"] == "/dev/null" == job["stderr"]
    assert job["resources"]["walltime"] == "3600" and job["resources"]["mem"] == "2000mb"
    assert job["queue"] == ("batch" if flavour == "torque" else "workq")
    assert ("S", "/bin/bash") in [tuple(o) for o in job["options"]] and ("m", "n") in [tuple(o) for o in job["options"]]
    assert "ignored_after_a_command" not in json.dumps(job["options"])
    with open(os.path.join(s.state_dir, "jobs", "1.sh")) as f:
        assert f.read() == open(path).read()


def test_unknown_queue(tmp_path, flavour):
    s = sim(tmp_path, flavour)
    r = s.run(["qsub", "-q", "nosuchq", script(tmp_path)])
    if flavour == "torque":
        assert (r.returncode, r.stderr) == (172, "qsub: submit error (Unknown queue MSG=requested queue not found)\n")
    else:
        assert (r.returncode, r.stderr) == (170, "qsub: Unknown queue\n")
    assert r.stdout == "" and s.jobs() == {}


def test_flavour_specific_resources(tmp_path):
    torque, pro = sim(tmp_path / "t", "torque"), sim(tmp_path / "p", "pro")
    assert torque.run(["qsub", "-l", "select=1:ncpus=1", script(tmp_path)]).returncode != 0
    assert pro.run(["qsub", "-l", "select=1:ncpus=1", script(tmp_path)]).returncode == 0
    assert torque.run(["qsub", "-l", "nodes=1:ppn=2", script(tmp_path)]).returncode == 0
    for s in (torque, pro):
        r = s.run(["qsub", "-l", "walltime=soon", script(tmp_path)])
        assert r.returncode != 0 and "walltime" in r.stderr


def test_job_environment_and_working_directory(tmp_path, flavour):
    home = tmp_path / "home"
    home.mkdir()
    s = sim(tmp_path, flavour, execute=True, queue_delay=0.0)
    out = tmp_path / "env.out"
    path = script(tmp_path, body='echo "$PBS_JOBID|$PBS_O_WORKDIR|$PBS_JOBNAME|$PBS_QUEUE|$PBS_ENVIRONMENT|$(pwd)"\n',
                  directives=("-N bl_abcdef123456", "-o %s" % out, "-j oe"))
    env = dict(os.environ, HOME=str(home))
    import subprocess
    r = subprocess.run(["qsub", path], cwd=str(tmp_path), env=dict(env, **s.env), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wait(lambda: out.exists() and out.read_text().strip(), s)
    queue = "batch" if flavour == "torque" else "workq"
    # PBS starts the job in the owner's home directory, not where qsub ran
    assert out.read_text().strip() == "1.%s|%s|bl_abcdef123456|%s|PBS_BATCH|%s" % (SERVER[flavour], tmp_path, queue, home)


def wait(predicate, s=None, timeout=20.0):
    """Poll; the simulated world only moves when one of its commands runs (``s``: run qstat)."""
    deadline = time.time() + timeout
    while True:
        if s is not None:
            s.run(["qstat"])
        if predicate():
            return
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


# --- qstat formats -------------------------------------------------------------------------------

def test_default_table_header_and_columns(tmp_path, flavour):
    s = sim(tmp_path, flavour)
    submit(s, script(tmp_path))
    submit(s, script(tmp_path), "-h")
    step(s, 2)
    out = s.run(["qstat"]).stdout
    header = fixture("%s_qstat_header.txt" % flavour)
    assert out.startswith(header)
    rows = out[len(header):].splitlines()
    assert len(rows) == 2
    names = header.splitlines()[0]
    for n, (row, state) in enumerate(zip(rows, "RH"), 1):
        assert row.startswith("%d.%s " % (n, SERVER[flavour]))
        assert row[names.index("Name"):].startswith("bl_abcdef123456")
        assert row[names.index(" S ") + 1] == state
        assert row[names.index("Queue"):].split()[0] == ("batch" if flavour == "torque" else "workq")


def _attribute_names(text):
    return [m.group(1) for m in re.finditer(r"^    ([A-Za-z_][\w.]*) = ", text, re.M)]


def _check_layout(text, limit):
    lines = text.splitlines()
    assert re.match(r"Job Id: \d+\.\w+$", lines[0])
    for line in lines[1:]:
        if not line:
            continue
        assert re.match(r"    [A-Za-z_][\w.]* = ", line) or line.startswith("\t"), line
        if limit:
            assert len(line.expandtabs(8)) <= limit + 8, line


def test_torque_full_format_against_the_documented_sample(tmp_path):
    s = sim(tmp_path, "torque", keep_seconds=60.0)
    submit(s, script(tmp_path))
    step(s, 2, 20)  # finished: C while keep_completed lasts
    r = s.run(["qstat", "-f", "1"])
    assert r.returncode == 0
    _check_layout(r.stdout, 77)
    assert r.stdout.endswith("\n\n")
    documented = _attribute_names(fixture("torque_qstat_f_job_failure.txt"))
    ours = _attribute_names(r.stdout)
    requested = {"sched_hint", "Resource_List.ncpus", "Resource_List.nodect", "Resource_List.nodes"}
    assert [n for n in documented if n not in requested and n not in ours] == []
    # same relative order as the documented job
    common = [n for n in documented if n in ours]
    assert [n for n in ours if n in common] == common
    attrs = dict(pp.parse_qstat_full(r.stdout))["1.pbsserver"]
    for name in ("ctime", "mtime", "qtime", "etime"):
        assert CTIME.match(attrs[name]), attrs[name]
    assert attrs["job_state"] == "C" and attrs["exit_status"] == "0" and attrs["exec_host"] == "localhost/0"


def test_pro_full_format_against_the_recorded_sample(tmp_path):
    s = sim(tmp_path, "pro")
    submit(s, script(tmp_path))
    step(s, 3)
    r = s.run(["qstat", "-f"])
    _check_layout(r.stdout, 78)
    recorded = _attribute_names(fixture("pro_qstat_f_running.txt"))
    ours = _attribute_names(r.stdout)
    site_specific = {"resources_used.jobfs", "group_list", "Resource_List.jobfs", "Resource_List.mem",
                     "Resource_List.mpiprocs", "Resource_List.storage", "Resource_List.wd", "Resource_List.walltime"}
    assert [n for n in recorded if n not in site_specific and n not in ours] == []
    common = [n for n in recorded if n in ours]
    assert [n for n in ours if n in common] == common
    attrs = dict(pp.parse_qstat_full(r.stdout))["1.pbs01"]
    assert attrs["job_state"] == "R" and attrs["substate"] == "42"
    assert attrs["comment"].startswith("Job run at ")


def test_value_wrapping_is_the_servers(tmp_path):
    # the recorded PBS Pro line break, byte for byte
    recorded = fixture("pro_qstat_f_running.txt").splitlines()
    i = [n for n, ln in enumerate(recorded) if ln.startswith("    Resource_List.select")][0]
    value = "1:ncpus=1:mpiprocs=1:mem=524288000:job_tags=normal:jobfs=104857600"
    assert prt_attr("Resource_List.select", value, 78) == "\n".join(recorded[i:i + 2])
    # breaks after commas when a list item does not fit; TORQUE -1 never breaks
    wrapped = prt_attr("Variable_List", ",".join("V%d=%s" % (n, "x" * 20) for n in range(6)), 77)
    assert wrapped.split("\n\t")[1].startswith("V") and all(len(ln.expandtabs()) <= 85 for ln in wrapped.splitlines())
    assert "\n" not in prt_attr("Variable_List", "a" * 500, None)


def test_torque_one_line_and_pro_conflict(tmp_path):
    torque = sim(tmp_path / "t", "torque")
    submit(torque, script(tmp_path, body="echo %s\n" % ("x" * 10)))
    long_text = full(torque, "torque").stdout
    assert all(ln.startswith(("    ", "Job Id:")) for ln in long_text.splitlines() if ln)
    pro = sim(tmp_path / "p", "pro")
    r = pro.run(["qstat", "-f", "-1"])
    assert r.returncode == 2 and r.stderr.startswith("qstat: conflicting options.\nusage:")


def test_pro_json_format(tmp_path):
    s = sim(tmp_path, "pro")
    r = s.run(["qstat", "-f", "-F", "json"])
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and set(doc) == {"timestamp", "pbs_version", "pbs_server"}   # no Jobs key
    submit(s, script(tmp_path))
    step(s, 1, 2)
    r = s.run(["qstat", "-f", "-F", "json"])
    doc = json.loads(r.stdout)
    job = doc["Jobs"]["1.pbs01"]
    assert job["job_state"] == "R" and isinstance(job["resources_used"], dict) and job["Priority"] == 0
    assert job["resources_used"]["walltime"] == "00:00:02" and job["Variable_List"]["PBS_O_QUEUE"] == "workq"
    # the documented layout: 4-space steps and "key":value without a space
    documented = [ln for ln in fixture("pro_qstat_fx_json_doc.txt").splitlines() if '":' in ln]
    for line in documented + [ln for ln in r.stdout.splitlines() if '":' in ln]:
        assert re.match(r'(    )+"[^"]+":[^ ]', line), line
    assert r.stdout == json.dumps(doc, indent=4, separators=(",", ":")) + "\n"
    records = pp.records(pp.parse_qstat_json(r.stdout))
    assert records["1"].state == "R" and records["1"].worker_node == "localhost"


def test_old_pro_without_json(tmp_path):
    s = sim(tmp_path, "pro", json=False)
    r = s.run(["qstat", "-f", "-F", "json"])
    assert r.returncode == 2 and r.stderr.startswith("qstat: invalid option -- 'F'\nusage:")
    assert s.run(["qstat", "-f"]).returncode == 0


# --- states, exit statuses, history --------------------------------------------------------------

def test_life_of_a_job(tmp_path, flavour):
    s = sim(tmp_path, flavour, keep_seconds=30.0)
    submit(s, script(tmp_path))
    assert records(s, flavour)["1"].state == "Q"
    step(s, 2)
    assert records(s, flavour)["1"].state == "R"
    step(s, 2, 10)
    if flavour == "torque":
        rec = records(s, flavour)["1"]
        assert (rec.state, rec.exit_code) == ("C", 0)
        step(s, 2, 40)  # keep_completed over: TORQUE forgets the job
        r = full(s, flavour, "1")
        assert (r.returncode, r.stdout, r.stderr) == (153, "", "qstat: Unknown Job Id Error 1.pbsserver\n")
    else:
        assert records(s, flavour) == {}   # finished jobs only with -x
        r = full(s, flavour, "1")
        assert (r.returncode, r.stdout) == (35, "")
        assert r.stderr == ("qstat: 1.pbs01 Job has finished, use -x or -H to obtain historical job "
                            "information\n")
        rec = records(s, flavour, "1", x=True)["1"]
        assert (rec.state, rec.exit_code) == ("F", 0)
        assert records(s, flavour, x=True)["1"].state == "F"
        r = full(s, flavour, "1", "99", x=True)
        assert r.returncode == 153 and r.stderr == "qstat: Unknown Job Id 99.pbs01\n" and "Job Id: 1.pbs01" in r.stdout


@pytest.mark.parametrize("played,expected", [(3, (3, None)), (-1, (-1, None)), (0, (0, None))])
def test_played_exit_status(tmp_path, played, expected):
    s = sim(tmp_path, "torque", keep_seconds=30.0, exit_status=played)
    submit(s, script(tmp_path))
    step(s, 2, 20)
    rec = records(s, "torque")["1"]
    assert (rec.exit_code, rec.exit_signal) == expected


def test_pro_without_history(tmp_path):
    s = sim(tmp_path, "pro", history=False)
    submit(s, script(tmp_path))
    step(s, 2, 20)
    r = full(s, "pro", "1", x=True)
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == "qstat: PBS is not configured to maintain job history 1.pbs01\n"
    r = full(s, "pro", "1")
    assert (r.returncode, r.stderr) == (153, "qstat: Unknown Job Id 1.pbs01\n")
    assert "job_history_enable = False" in s.run(["qstat", "-B", "-f"]).stdout


def test_deferred_job_waits(tmp_path, flavour):
    s = sim(tmp_path, flavour)
    later = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 7200))
    submit(s, script(tmp_path), "-a", later)
    step(s, 2, 5)
    assert records(s, flavour)["1"].state == "W"


def test_qdel_of_a_running_job_sends_term_then_kill(tmp_path, flavour):
    s = sim(tmp_path, flavour, execute=True, queue_delay=0.0, kill_delay=1.0, keep_seconds=60.0,
            frozen_at=None)  # a real process and a real kill delay: the wall clock
    path = script(tmp_path, body="trap '' TERM\nsleep 30\n")
    submit(s, path)
    wait(lambda: os.path.exists(os.path.join(s.state_dir, "jobs", "1.started")), s)
    assert s.run(["qdel", "1"]).returncode == 0
    assert records(s, flavour)["1"].state == "E"       # exiting: TERM ignored, KILL to come
    final = {}

    def done():
        recs = records(s, flavour, x=flavour == "pro")
        final.update(recs)
        return recs.get("1") is not None and recs["1"].state in ("C", "F")
    wait(done)
    assert final["1"].exit_signal == 9   # exit status 265
    submit(s, script(tmp_path, body="sleep 30\n"))
    wait(lambda: os.path.exists(os.path.join(s.state_dir, "jobs", "2.started")), s)
    s.run(["qdel", "2"])
    wait(lambda: records(s, flavour, x=flavour == "pro").get("2") is not None
         and records(s, flavour, x=flavour == "pro")["2"].state in ("C", "F"))
    assert records(s, flavour, x=flavour == "pro")["2"].exit_signal == 15   # 271


def test_hold_release_and_delete_messages(tmp_path, flavour):
    s = sim(tmp_path, flavour, keep_seconds=60.0)
    server = SERVER[flavour]
    submit(s, script(tmp_path))
    assert s.run(["qhold", "1"]).returncode == 0
    step(s, 2, 5)
    assert records(s, flavour)["1"].state == "H"
    assert s.run(["qrls", "1"]).returncode == 0
    assert records(s, flavour)["1"].state in ("Q", "R")
    step(s, 2)
    assert records(s, flavour)["1"].state == "R"
    # a running job keeps running: only the hold flag is set
    assert s.run(["qhold", "1"]).returncode == 0
    attrs = dict(pp.parse_qstat_full(full(s, flavour).stdout))["1.%s" % server]
    assert attrs["job_state"] == "R" and attrs["Hold_Types"] == "u"
    step(s, 2, 20)
    for command in ("qdel", "qhold", "qrls"):
        r = s.run([command, "1"])
        if flavour == "torque":
            assert (r.returncode, r.stderr) == (170, "%s: Request invalid for state of job MSG=invalid state for "
                                                     "job - COMPLETE 1.pbsserver\n" % command)
        else:
            expected = "qdel: Job has finished 1.pbs01\n" if command == "qdel" else "%s: Job has finished\n" % command
            assert (r.returncode, r.stderr) == (35, expected)
        r = s.run([command, "99"])
        unknown = "Unknown Job Id Error" if flavour == "torque" else "Unknown Job Id"
        assert (r.returncode, r.stderr) == (153, "%s: %s 99.%s\n" % (command, unknown, server))


def test_qdel_of_a_queued_job(tmp_path, flavour):
    s = sim(tmp_path, flavour, keep_seconds=60.0)
    submit(s, script(tmp_path), "-h")
    assert s.run(["qdel", "1.%s" % SERVER[flavour]]).returncode == 0
    rec = records(s, flavour, x=flavour == "pro")["1"]
    assert rec.state in ("C", "F") and rec.exit_code is None and rec.exit_signal is None


def test_owner_and_other_users(tmp_path, flavour):
    s = sim(tmp_path, flavour, user="alice")
    submit(s, script(tmp_path))
    jobs = pp.parse_qstat_full(full(s, flavour).stdout)
    assert list(pp.records(jobs, user="alice")) == ["1"] and pp.records(jobs, user="bob") == {}


# --- several servers ----------------------------------------------------------------------------

def test_jobs_on_several_servers(tmp_path, flavour):
    """queue@server sends a job to that server, whose ids start at 1 too; qstat @server lists only
    its jobs, n.server names one, qdel/qhold/qrls reach the right server."""
    s = sim(tmp_path, flavour, peers=["pbs02"])
    queue = "batch" if flavour == "torque" else "workq"
    home = SERVER[flavour]
    assert submit(s, script(tmp_path)) == "1.%s" % home
    assert submit(s, script(tmp_path, name="b.sh"), "-q", "%s@pbs02" % queue) == "1.pbs02"
    assert submit(s, script(tmp_path, name="c.sh"), "-q", "@pbs02") == "2.pbs02"
    assert submit(s, script(tmp_path, name="d.sh"), "-q", "%s@%s" % (queue, home)) == "2.%s" % home

    def ids(*operands):
        r = full(s, flavour, *operands)
        assert r.returncode == 0, r.stderr
        return re.findall(r"^Job Id: (\S+)$", r.stdout, re.M)

    assert ids() == ["1.%s" % home, "2.%s" % home]
    assert ids("@pbs02") == ["1.pbs02", "2.pbs02"]
    assert ids("%s@pbs02" % queue) == ["1.pbs02", "2.pbs02"]
    assert ids("2.pbs02", "1") == ["2.pbs02", "1.%s" % home]
    text = full(s, flavour, "1.pbs02").stdout
    assert "    server = pbs02\n" in text and "    Job_Name = bl_abcdef123456\n" in text

    assert s.run(["qhold", "2.pbs02"]).returncode == 0
    assert records(s, flavour, "2.pbs02")["2"].state == "H"
    assert records(s, flavour, "2")["2"].state == "Q"          # the same number on the default server
    assert s.run(["qrls", "2.pbs02"]).returncode == 0
    assert s.run(["qdel", "1.pbs02"]).returncode == 0
    step(s, 1, 1, 1)
    assert ids("@pbs02") == ["2.pbs02"] and len(ids()) == 2
    if flavour == "pro":
        r = s.run(["qstat", "-f", "-F", "json", "@pbs02"])
        doc = json.loads(r.stdout)
        assert doc["pbs_server"] == "pbs02" and list(doc["Jobs"]) == ["2.pbs02"]


def test_a_server_that_is_not_there(tmp_path, flavour):
    s = sim(tmp_path, flavour, peers=["pbs02"])
    for argv in (["qsub", "-q", "@pbs09", script(tmp_path)], ["qstat", "-f", "@pbs09"], ["qstat", "3.pbs09"],
                 ["qdel", "3.pbs09"]):
        r = s.run(argv)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr == "Connection refused\n%s: cannot connect to server pbs09 (errno=15010)\n" % argv[0]
    r = s.run(["qstat", "-f", "nosuchq@pbs02"])
    assert r.returncode == (172 if flavour == "torque" else 170)
    assert r.stderr == "qstat: Unknown queue destination nosuchq@pbs02\n"
