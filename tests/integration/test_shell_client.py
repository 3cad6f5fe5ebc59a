"""gahp-shell's client against the real blahpd with the embedded `local` backend."""
import io
import os
import signal
import threading
import time

import pytest

from gahp.shell.cli import main, run_script
from gahp.shell.client import ServerDied, ShellClient
from gahp.shell.lines import parse_status
from tests.conftest import blahpd_command, local_server_env

CONFIG = "supported_lrms=local\npyblahp_status_ttl_min=0.2\npyblahp_status_ttl_max=0.5\n"


def server_argv():
    return blahpd_command()


@pytest.fixture
def env(tmp_path):
    return local_server_env(tmp_path, CONFIG)


@pytest.fixture
def client(env):
    c = ShellClient(server_argv(), env=env)
    yield c
    if c.alive:
        assert c.close() == 0


def submit_line(tmp_path, seconds="30"):
    return "submit Cmd=/bin/sleep Args=\"%s\" Iwd=%s Out=/dev/null Err=/dev/null gridtype=local" % (seconds, tmp_path)


def status_of(client, job_id):
    out = client.execute("status %s" % job_id, timeout=60)
    assert out.reply == "S"
    return parse_status(out.results[0])


def test_banner_and_sync_commands(client):
    assert client.banner.startswith("$GahpVersion") and "new_esc_format" in client.banner
    out = client.execute("commands")
    assert out.reply.startswith("S ") and "BLAH_JOB_SUBMIT" in out.reply and out.ok
    assert client.execute("version").reply.startswith("S $GahpVersion")
    assert client.execute("results").reply == "S 0"


def test_ping_submit_status_cancel_removed(client, tmp_path):
    ping = client.execute("ping local", timeout=60)
    assert ping.reply == "S" and ping.results == [["1", "0", "No error"]] and ping.ok

    sub = client.execute(submit_line(tmp_path), timeout=120)
    assert sub.reply == "S", sub.reply
    reqid, code, message, job_id = sub.results[0]
    assert (reqid, code, message) == ("2", "0", "No error") and job_id.startswith("local/"), sub.results

    st = status_of(client, job_id)
    assert st.code == 0 and st.state in ("IDLE", "RUNNING"), st
    assert st.ad["JobStatus"] == str(st.job_status)
    text = client.execute("status %s" % job_id, timeout=60).render()
    assert "JobStatus" in text and ("RUNNING" in text or "IDLE" in text)

    cancel = client.execute("cancel %s" % job_id, timeout=60)
    assert cancel.ok and cancel.results[0][1:] == ["0", "No error"], cancel.results

    deadline = time.monotonic() + 10
    while True:
        st = status_of(client, job_id)
        if st.job_status == 3:
            break
        assert time.monotonic() < deadline, "still %s after cancel" % st.state
        time.sleep(0.3)
    assert st.state == "REMOVED"


def test_multi_id_status_and_raw(client):
    out = client.execute("status local/x/1 nonsense", timeout=60)
    assert [r[0] for r in out.results] == ["1.0", "1.1"]
    assert all(len(r) == 5 for r in out.results)
    assert not out.ok
    raw = client.execute("raw BLAH_PING 900 local", timeout=60)
    assert raw.results == [["900", "0", "No error"]]
    assert client.execute("raw NO_SUCH_THING").reply == "E Unknown\\ command"


def test_server_killed_mid_wait_gives_a_clear_error(client):
    sent = client.maker.make("status local/20250101/1")
    assert sent.reqid == "1"
    assert client.send(sent) == "S"
    # freeze the server so the result cannot be fetched, then kill it while ``wait`` blocks
    os.kill(client.proc.pid, signal.SIGSTOP)
    timer = threading.Timer(0.5, os.kill, (client.proc.pid, signal.SIGKILL))
    timer.start()
    try:
        with pytest.raises(ServerDied) as exc:
            client.wait(sent.reqid, timeout=30)
    finally:
        timer.cancel()
    assert str(exc.value) == ("server exited with status -9 (killed by SIGKILL) "
                              "while waiting for request 1 (BLAH_JOB_STATUS)")
    assert exc.value.status == -9


def test_server_exiting_with_a_status_mid_wait(client):
    sent = client.maker.make("ping local")
    assert client.send(sent) == "S"
    os.kill(client.proc.pid, signal.SIGSTOP)
    client.proc.stdin.close()       # EOF: blahpd's normal shutdown, exit status 0 once resumed
    os.kill(client.proc.pid, signal.SIGCONT)
    with pytest.raises(ServerDied) as exc:
        client.wait(sent.reqid, timeout=30)
    assert "server exited with status 0 while waiting for request 1 (BLAH_PING)" == str(exc.value)


def test_run_script_exit_statuses(env, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert run_script("ping local; version", server=server_argv(), env=env, out=out, err=err) == 0
    assert out.getvalue().splitlines()[0] == "1 0 No error"
    out = io.StringIO()
    assert run_script("ping local; status nonsense", server=server_argv(), env=env, out=out, err=err) == 1
    assert "2 255 Malformed jobId or out of memory" in out.getvalue()
    assert run_script("ping local; frobnicate", server=server_argv(), env=env, out=out, err=err) == 2
    assert "unknown command 'frobnicate'" in err.getvalue()
    assert run_script("ping nosuchlrms", server=server_argv(), env=env, out=out, err=err) == 1
    # a script whose server dies: the first command after the death reports it, exit 2
    err = io.StringIO()
    assert run_script(["ping local", "quit", "ping local"], server=server_argv(), env=env,
                      out=out, err=err) == 0   # quit ends the script
    err = io.StringIO()
    c = ShellClient(server_argv(), env=env)
    c.kill()
    assert run_script("ping local", client=c, out=out, err=err) == 2
    assert "server exited with status -9 (killed by SIGKILL) while waiting for request 1 (BLAH_PING)" \
        in err.getvalue()
    assert run_script("ping local", server=["/nonexistent/blahpd"], out=out, err=err) == 2


def test_main_cli(env, monkeypatch, capsys):
    for k in ("HOME", "BLAHPD_CONFIG_LOCATION"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert main(["-c", "ping local", "--server", " ".join(server_argv())]) == 0
    assert capsys.readouterr().out.startswith("1 0 No error")
