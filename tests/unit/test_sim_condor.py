"""The simulated HTCondor tools against documented output and HTCondor's own ClassAd library.

Layouts are compared byte for byte with the fixtures in tests/fixtures/condor (see SOURCES.md) and,
for single JSON ads, with classad2's printJson (the same ClassAdJsonUnParser condor_q uses).
"""
import json
import os
import time

import pytest

from conformance.sim import condor as sim
from tests.clusters.sim import SimSystem

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "condor")
COMMANDS = ["condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold", "condor_release"]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture
def condor(tmp_path):
    return SimSystem(tmp_path, "condor", COMMANDS, queue_delay=0.0)


def write_sub(tmp_path, body, name="job.sub"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def submit(condor, tmp_path, body, *opts):
    r = condor.run(["condor_submit"] + list(opts) + [write_sub(tmp_path, body)])
    return r


def settle(condor, cluster, status, timeout=10):
    deadline = time.time() + timeout
    while True:
        r = condor.run(["condor_q", cluster, "-af", "JobStatus"])
        if r.stdout.strip() == status:
            return
        assert time.time() < deadline, r.stdout
        time.sleep(0.1)


# --- output layouts ------------------------------------------------------------------------

def test_json_list_layout_matches_htcondor():
    ads = json.loads(fixture("json_two_ads.json"))
    assert sim.json_list(ads, None, always=False, sort=False) == fixture("json_two_ads.json")
    assert sim.json_list([], None, always=False) == ""      # condor_q: nothing at all
    assert sim.json_list([], None, always=True) == "[\n]\n"  # condor_history: the brackets


@pytest.mark.parametrize("ad", [
    {"ClusterId": 42, "RemoteUserCpu": 0.0, "RemoteWallClockTime": 12.0, "X": 1.5, "Y": 1e20, "Z": -0.25},
    {"BlahpKey": 'a"b\\c\td\x01e/f\u00e9', "ExitBySignal": False, "On": True},
])
def test_single_ads_match_classad2(ad):
    classad2 = pytest.importorskip("classad2")
    cad = classad2.ClassAd()
    for k, v in ad.items():
        cad[k] = v
    # classad2 prints in its own order: compare attribute by attribute, with the same framing
    ours = sim.json_ad(ad, sort=False).split("\n")
    theirs = cad.printJson().split("\n")
    assert ours[0] == theirs[0] == "{" and ours[-1] == theirs[-1] == "}"
    assert sorted(x.rstrip(",") for x in ours[1:-1]) == sorted(x.rstrip(",") for x in theirs[1:-1])


def test_expressions_print_as_htcondor_does():
    classad2 = pytest.importorskip("classad2")
    cad = classad2.ClassAd()
    cad["R"] = classad2.ExprTree("A + 1")
    assert sim.json_ad({"R": sim.Expression("A + 1")}) == cad.printJson()


def test_submit_output(condor, tmp_path):
    body = "executable = /bin/true\nqueue\n"
    r = submit(condor, tmp_path, body)
    assert (r.returncode, r.stdout, r.stderr) == (0, fixture("submit_verbose.txt").replace(" 6.", " 1."), "")
    r = submit(condor, tmp_path, body, "-terse")
    assert (r.returncode, r.stdout) == (0, "2.0 - 2.0\n")


@pytest.mark.parametrize("body,error", [
    ("executable = /nope\nqueue 1\n", "\nERROR: Can't access executable file /nope: No such file or directory\n"),
    ("arguments = x\nqueue 1\n", "\nERROR: No 'executable' parameter was provided\n"),
    ("executable = /bin/true\n", '\nERROR: "submit file" doesn\'t contain any "queue" commands -- no jobs queued\n'),
    ("executable = /bin/true\ninitialdir = /no/such/dir\nqueue\n", "\nERROR: No such directory: /no/such/dir\n"),
])
def test_submit_errors(condor, tmp_path, body, error):
    r = submit(condor, tmp_path, body)
    assert (r.returncode, r.stdout, r.stderr) == (1, "Submitting job(s)", error)
    assert condor.jobs() == {}


def test_unknown_schedd(condor, tmp_path):
    sub = write_sub(tmp_path, "executable = /bin/true\nqueue\n")
    assert condor.run(["condor_submit", "-name", "x1", sub]).stderr == "\nERROR: Can't find address of schedd x1\n"
    assert condor.run(["condor_q", "-name", "x1"]).stderr == "Error: Collector has no record of schedd/submitter\n"
    assert condor.run(["condor_rm", "-name", "a@x1", "1"]).stderr == "Error: unknown schedd x1\n"
    r = condor.run(["condor_history", "-name", "x1", "-pool", "p"])
    assert (r.returncode, r.stderr) == (1, "Unable to locate remote schedd (name=x1, pool=p).\n")


# --- submit description semantics -----------------------------------------------------------

def test_description_syntax(condor, tmp_path):
    body = ("# a comment\n"
            "Executable = /bin/sh\n"
            "ARGUMENTS = \"-c 'echo $(DOLLAR)1 $(Cluster) $(who) ''q'' \"\"dq\"\"' \\\n"
            "   x\"\n"
            "who = you\n"
            "environment = \"A=1 B='x y'\"\n"
            "+Key = \"k\\\"v\"\n"
            "MY.Num = 3\n"
            "queue 1\n"
            "executable = /ignored/after/queue\n")
    assert submit(condor, tmp_path, body).returncode == 0
    job = condor.jobs()["1"]
    assert job["args"] == ["-c", "echo $1 1 you 'q' \"dq\"", "x"]
    assert [tuple(kv) for kv in job["environment"]] == [("A", "1"), ("B", "x y")]
    assert job["ad_attrs"] == {"Key": 'k"v', "Num": 3}
    assert job["cmd"] == "/bin/sh"


def test_match_time_dollars():
    assert sim.match_time("a$$(DOLLARDOLLAR)(b") == "a$$(b"
    assert sim.match_time("$$(Memory:512)") == "512"
    assert sim.expand("$(DOLLAR)$(DOLLAR)(x)", lambda n: None) == "$$(x)"


def test_v1_and_v2_arguments():
    assert sim.parse_arguments("a  b") == ["a", "b"]
    assert sim.parse_arguments('"a \'b c\' ""d"""') == ["a", "b c", '"d"']


# --- lifecycle --------------------------------------------------------------------------------

def test_lifecycle_json(condor, tmp_path):
    out = tmp_path / "o.txt"
    submit(condor, tmp_path, "executable = /bin/sh\narguments = \"-c 'echo hi; exit 3'\"\n"
                             "output = %s\nleave_in_queue = JobStatus == 4 && ((CurrentTime - CompletionDate) < 1800)\n"
                             "+BlahpKey = \"k1\"\nqueue\n" % out)
    settle(condor, "1", "4")
    r = condor.run(["condor_q", "-json", "-attributes", "ClusterId,JobStatus,ExitCode,ExitBySignal,ExitSignal,"
                    "LastRemoteHost,BlahpKey,NumJobStarts"])
    assert r.stdout == ('[\n{\n  "BlahpKey": "k1",\n  "ClusterId": 1,\n  "ExitBySignal": false,\n  "ExitCode": 3,\n'
                        '  "JobStatus": 4,\n  "LastRemoteHost": "slot1@localhost",\n  "NumJobStarts": 1\n}\n]\n')
    assert out.read_text() == "hi\n"
    assert condor.run(["condor_history", "-json"]).stdout == "[\n]\n"  # still in the queue
    condor.advance(1801)
    assert condor.run(["condor_q", "-json"]).stdout == ""
    r = condor.run(["condor_history", "-json", "-attributes", "ClusterId,JobStatus,ExitCode", "-match", "1", "1.0"])
    assert json.loads(r.stdout) == [{"ClusterId": 1, "ExitCode": 3, "JobStatus": 4}]


def test_signal_exit(condor, tmp_path):
    submit(condor, tmp_path, "executable = /bin/sh\narguments = \"-c 'kill -9 $$'\"\nqueue\n")
    settle(condor, "1", "")  # no leave_in_queue: straight to the history
    ad = json.loads(condor.run(["condor_history", "-json", "1"]).stdout)[0]
    assert ad["ExitBySignal"] is True and ad["ExitSignal"] == 9 and "ExitCode" not in ad


def test_rm_hold_release_texts(condor, tmp_path):
    user = condor.run(["id", "-un"]).stdout.strip()
    sub = "executable = /bin/sleep\narguments = 300\nqueue\n"
    submit(condor, tmp_path, sub)
    settle(condor, "1", "2")
    r = condor.run(["condor_hold", "1.0"])
    assert (r.returncode, r.stdout) == (0, "Job 1.0 held\n")
    ad = json.loads(condor.run(["condor_q", "-json", "-attributes", "JobStatus,HoldReason,HoldReasonCode"]).stdout)[0]
    assert ad == {"HoldReason": "via condor_hold (by user %s)" % user, "HoldReasonCode": 1, "JobStatus": 5}
    r = condor.run(["condor_hold", "1.0"])
    assert (r.returncode, r.stderr) == (1, "\nJob 1.0 already held\n")
    r = condor.run(["condor_release", "1"])
    assert (r.returncode, r.stdout) == (0, "All jobs in cluster 1 have been released\n")
    r = condor.run(["condor_release", "1.0"])
    assert (r.returncode, r.stderr) == (1, "\nJob 1.0 not held to be released\n")
    settle(condor, "1", "2")
    r = condor.run(["condor_rm", "1"])
    assert (r.returncode, r.stdout) == (0, "All jobs in cluster 1 have been marked for removal\n")
    r = condor.run(["condor_rm", "1.0"])
    assert r.returncode in (0, 1)  # X until the process is gone, then not found
    r = condor.run(["condor_rm", "7"])
    assert (r.returncode, r.stderr) == (0, "condor_rm:0:There are no jobs in the queue\n") or \
        (r.returncode, r.stderr) == (1, "\nCouldn't find/remove all jobs in cluster 7\n")
    settle(condor, "1", "")
    r = condor.run(["condor_rm", "1.0"])
    assert (r.returncode, r.stderr) == (1, "\nJob 1.0 not found\n")
    r = condor.run(["condor_rm", "-constraint", "JobStatus == 1"])
    assert (r.returncode, r.stderr) == (0, "condor_rm:0:There are no jobs in the queue\n")


def test_constraint_and_user_filters(condor, tmp_path):
    for key in ("a", "b"):
        submit(condor, tmp_path, 'executable = /bin/sleep\narguments = 300\nrequest_memory = 99999999\n'
                                 '+BlahpKey = "%s"\nqueue\n' % key)
    r = condor.run(["condor_q", "-constraint", 'BlahpKey =?= "b"', "-af", "ClusterId", "JobStatus"])
    assert r.stdout == "2 1\n"  # no slot has that much memory: idle
    assert condor.run(["condor_q", "nobody", "-af", "ClusterId"]).stdout == ""
    assert condor.run(["condor_q", "-allusers", "-af", "ClusterId"]).stdout == "1\n2\n"
    r = condor.run(["condor_q", "-constraint", "((", "-json"])
    assert r.returncode == 1
    condor.run(["condor_rm", "-constraint", "true"])


def test_schedds_have_their_own_queues(tmp_path):
    condor = SimSystem(tmp_path, "condor", COMMANDS, queue_delay=0.0, schedds=["s2", "s3/p"])
    sub = write_sub(tmp_path, "executable = /bin/true\nrequest_memory = 99999999\nqueue\n")  # stays idle
    assert condor.run(["condor_submit", "-terse", sub]).stdout == "1.0 - 1.0\n"
    assert condor.run(["condor_submit", "-terse", "-name", "s2", sub]).stdout == "1.0 - 1.0\n"
    assert condor.run(["condor_submit", "-terse", "-name", "s3", "-pool", "p", sub]).stdout == "1.0 - 1.0\n"
    assert condor.run(["condor_submit", "-terse", "-name", "s2", sub]).stdout == "2.0 - 2.0\n"
    assert condor.run(["condor_submit", "-terse", "-name", "s3", sub]).returncode == 1  # s3 lives in pool p
    assert condor.run(["condor_q", "-name", "s2", "-allusers", "-af", "ClusterId"]).stdout == "1\n2\n"
