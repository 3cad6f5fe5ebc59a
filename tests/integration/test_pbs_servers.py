"""Several PBS servers behind one login node: ``Queue = "queue@server"`` through the GAHP protocol
against the simulated TORQUE and PBS Pro with a second server (``pbs02``, setting ``peers``).

Each server numbers its jobs from 1, as real servers do, so the same batch number names two
different jobs: the ``@server`` kept in the job id is what tells them apart.
"""
import os
import re

import pytest

from tests.clusters.sim import SimSystem
from tests.gahp_client import GahpClient, env_for
from tests.integration.test_pbs_lifecycle import Setup, job_ad

COMMANDS = ["qsub", "qstat", "qdel", "qhold", "qrls"]
CONFIG = """
supported_lrms=pbs
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
pyblahp_vanished_grace=60
"""
QUEUE = {"torque": "batch", "pro": "workq"}
FUTURE = "-a 203001010000"   # qsub -a: not eligible before 2030 (state W)


@pytest.fixture(scope="module", params=["torque", "pro"])
def site(request, tmp_path_factory):
    flavour = request.param
    base = tmp_path_factory.mktemp("pbs-servers-%s" % flavour)
    sim = SimSystem(base, "pbs", COMMANDS, flavour=flavour, queue_delay=0.5, kill_delay=1.0,
                    keep_seconds=10.0 if flavour == "torque" else 0.0, peers=["pbs02"])
    jobs_dir = str(base / "jobs")
    os.makedirs(jobs_dir)
    config = CONFIG + ("pbs_pro=yes\n" if flavour == "pro" else "")
    client = GahpClient(env_for(os.path.join(jobs_dir, "home"), config, sim.env))
    yield Setup(flavour, sim, jobs_dir, client, config)
    assert client.close() == 0
    for server in ("@pbs02", ""):
        r = sim.run(["qstat"] + ([server] if server else []))
        for job in re.findall(r"^(\d+\.\S+)\s.* [QRHW] \S+\s*$", r.stdout, re.M):
            sim.run(["qdel", job])


def submitted(client, text):
    row = client.submit(text)
    assert row[1] == "0" and row[2] == "No error", row
    return row[3]


def test_jobs_on_two_servers_keep_apart(site):
    flavour, sim, jobs_dir, c = site.flavour, site.sim, site.jobs_dir, site.client
    home = submitted(c, job_ad(site, "home", "/bin/sh", "-c 'exit 3'"))
    away = submitted(c, job_ad(site, "away", "/bin/sh", "-c 'echo away; exit 5'",
                               Queue="%s@pbs02" % QUEUE[flavour]))
    assert re.match(r"pbs/\d{8}/1$", home), home
    assert re.match(r"pbs/\d{8}/1@pbs02$", away), away    # the same number, on the other server
    ad_, _ = c.wait_status(away, {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 5 and ad_.evaluate("BatchJobId") == "1"
    ad_, _ = c.wait_status(home, {4}, timeout=60)
    assert ad_.evaluate("ExitCode") == 3
    with open(os.path.join(jobs_dir, "away.out")) as f:
        assert f.read() == "away\n"
    job = sim.run(["qstat", "-f", "-x" if flavour == "pro" else "-1", "1.pbs02"]).stdout
    assert "    queue = %s\n" % QUEUE[flavour] in job and "    server = pbs02\n" in job
    bulk = [x["argv"] for x in sim.calls("qstat") if "-f" in x["argv"] and "-x" not in x["argv"]]
    assert any(argv[-1] == "@pbs02" for argv in bulk), bulk
    assert not any(a.endswith("pbs02") for argv in bulk for a in argv[:-1]), bulk


def test_hold_release_and_cancel_reach_the_other_server(site):
    flavour, sim, c = site.flavour, site.sim, site.client
    jid = submitted(c, job_ad(site, "held", "/bin/sleep", "30", Queue="%s@pbs02" % QUEUE[flavour],
                              BatchExtraSubmitArgs=FUTURE))
    number = jid.split("/")[2].split("@")[0]
    c.wait_status(jid, {1})
    assert c.call("BLAH_JOB_HOLD", jid)[1:] == ["0", "No error"]
    row, ad_ = c.status(jid)
    assert row[3] == "5" and ad_.evaluate("HoldReason").startswith("Held in PBS: job %s is H" % number), row
    assert c.call("BLAH_JOB_RESUME", jid)[1:] == ["0", "No error"]
    row, _ = c.status(jid)
    assert row[3] == "1", row
    assert c.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    row, _ = c.status(jid)
    assert row[3] == "3", row
    target = "%s.pbs02" % number
    for command in ("qhold", "qrls", "qdel"):
        assert [x["argv"] for x in sim.calls(command)][-1] == [target], command


def test_a_server_that_is_not_there_is_a_submit_error(site):
    """"cannot connect" may hide a job that was created: it is looked for on that server (and
    only there) before the submit is reported failed."""
    flavour, sim, c = site.flavour, site.sim, site.client
    row = c.submit(job_ad(site, "nowhere", "/bin/true", Queue="%s@pbs09" % QUEUE[flavour]))
    assert row[1] != "0" and row[3] == "N/A", row
    assert "cannot connect to server pbs09" in row[2], row
    lookups = [x["argv"] for x in sim.calls("qstat") if "@pbs09" in x["argv"]]
    assert len(lookups) >= 2, lookups
