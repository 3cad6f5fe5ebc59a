"""The embedded `local` backend through the protocol: the same lifecycle as a batch system."""
import os
import time

import pytest

from tests.clusters.sharing import is_live
from tests.gahp_client import GahpClient, ad, env_for

CONFIG = "supported_lrms=local\npyblahp_status_ttl_min=0.5\npyblahp_status_ttl_max=1\n"


@pytest.fixture
def client(tmp_path):
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG))
    yield c
    assert c.close() == 0


def local_ad(tmp_path, name, cmd, args, **extra):
    attrs = dict(Cmd=cmd, Arguments=args, Iwd=str(tmp_path), Out="%s.out" % name, Err="%s.out" % name,
                 gridtype="local", JobDirectory="home_bl_local_%s" % name)
    attrs.update(extra)
    return ad(**attrs)


def test_submit_run_complete_and_restart(client, tmp_path):
    row = client.submit(local_ad(tmp_path, "a", "/bin/sh", "-c 'echo out; echo err >&2; exit 7'",
                                 Environment="GREETING='hi there'"))
    assert row[1:3] == ["0", "No error"] and row[3].startswith("local/"), row
    ad_, _ = client.wait_status(row[3], {4}, timeout=30)
    assert ad_.evaluate("ExitCode") == 7 and ad_.evaluate("ExitBySignal") is False
    assert open(os.path.join(str(tmp_path), "a.out")).read() == "out\nerr\n"
    # a new blahpd (same HOME) still answers for the job
    client.close()
    again = GahpClient(env_for(str(tmp_path / "home"), CONFIG))
    try:
        r, ad2 = again.status(row[3])
        assert r[1:4] == ["0", "No Error", "4"] and ad2.evaluate("ExitCode") == 7
    finally:
        again.close()


def test_cancel_running_and_hold_unsupported(client, tmp_path):
    row = client.submit(local_ad(tmp_path, "b", "/bin/sh", "-c 'echo $$ > b.pid; exec sleep 300'"))
    jid = row[3]
    client.wait_status(jid, {2}, timeout=30)
    assert client.call("BLAH_JOB_HOLD", jid)[1:] == ["1", "Hold not supported by local"]
    assert client.call("BLAH_JOB_CANCEL", jid)[1:] == ["0", "No error"]
    r, ad_ = client.status(jid)
    assert r[3] == "3", r
    # the payload really is gone (its pid, not any `sleep 300` of other tests on this machine)
    payload = int((tmp_path / "b.pid").read_text())
    deadline = time.time() + 10
    while is_live(payload) and time.time() < deadline:
        time.sleep(0.2)
    assert not is_live(payload)


def test_submit_errors_are_four_fields(client, tmp_path):
    assert client.submit("garbage")[1:] == ["1", "Error parsing classad", "N/A"]
    assert client.submit(ad(Cmd="/bin/true", gridtype="pbs"))[1:] == ["1", "Unsupported gridtype pbs", "N/A"]
    assert client.submit(ad(Cmd="/bin/true"))[1:] == ["1", "Missing gridtype in submission classAd", "N/A"]
    assert client.submit(ad(gridtype="local", Iwd=str(tmp_path)))[1:] == \
        ["7", "Cannot parse Cmd attribute in classad", "N/A"]
    r = client.submit(ad(Cmd="/bin/true", gridtype="local", Iwd=str(tmp_path), RequestMemory=-5))
    assert r[1:] == ["1", "Invalid value for RequestMemory: negative value -5", "N/A"]
    r = client.submit(ad(Cmd="/bin/true", gridtype="local", Iwd=str(tmp_path), TransferInput="nope.txt"))
    assert r[1:] == ["1", "Input sandbox file doesn't exist: %s/nope.txt" % tmp_path, "N/A"]


def test_debug_save_submit_info_keeps_the_script(tmp_path):
    debug = tmp_path / "debug"
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "blah_debug_save_submit_info=%s\n" % debug))
    try:
        row = c.submit(local_ad(tmp_path, "dbg", "/bin/echo", "'a b'"))
        assert row[1] == "0", row
    finally:
        c.close()
    from blahp.jobmodel import key_hash
    saved = debug / ("bl_%s.debug" % key_hash("home_bl_local_dbg")) / "submit.script"
    text = saved.read_text()
    assert text.startswith("#!/bin/bash\n") and "'/bin/echo' 'a b'" in text


def test_requests_the_system_cannot_express_are_logged(tmp_path):
    """submit-ad.md §7: not mapped, logged at debug level, with their values."""
    log = tmp_path / "blahpd.log"
    c = GahpClient(env_for(str(tmp_path / "home"), CONFIG + "blah_log_file=%s\nblah_log_level=debug\n" % log))
    try:
        row = c.submit(local_ad(tmp_path, "g", "/bin/true", "", GPUNumber=2, WholeNodes=True, RequestMemory=100))
        assert row[1] == "0", row
    finally:
        assert c.close() == 0
    lines = [ln for ln in log.read_text().splitlines() if "cannot express are not mapped" in ln]
    assert len(lines) == 1, lines
    assert "level='debug'" in lines[0] and "lrms='local'" in lines[0], lines[0]
    assert "ignored={'RequestMemory': 100, 'WholeNodes': True, 'GPUNumber': 2}" in lines[0], lines[0]
