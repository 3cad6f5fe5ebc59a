"""The installed blahpd, driven through real pipes."""
import os
import select
import signal
import socket
import subprocess
import time

import pytest

from conformance.checks import check_session
from tests.conftest import BANNER, BANNER_LINE, COMMANDS_REPLY, blahpd_command, run_blahpd


def lines_of(data: bytes):
    return data.decode().split("\r\n")[:-1]


def test_issue_done_when_handshake(server_env):
    p = run_blahpd(b"COMMANDS\r\nASYNC_MODE_ON\r\nVERSION\r\nRESULTS\r\nQUIT\r\n", server_env)
    assert p.returncode == 0
    assert p.stdout == (BANNER_LINE + COMMANDS_REPLY + b"S Async\\ mode\\ on\r\n" + b"S " + BANNER_LINE +
                        b"S 0\r\n" + b"S Server\\ exiting\r\n")
    assert p.stderr == b""


def test_ping_local_and_unsupported(server_env):
    reqs = ["ASYNC_MODE_ON", "BLAH_PING 2 local", "BLAH_PING 3 flux", "BLAH_PING 4 NULL"]
    p = run_blahpd(("\r\n".join(reqs) + "\r\n").encode(), server_env, args=["-s"])
    assert p.returncode == 0
    out = lines_of(p.stdout)
    assert out[:5] == [BANNER.decode(), r"S Async\ mode\ on", "S", "S", "S"]
    assert out[5] == "S 3"
    assert sorted(out[6:]) == sorted(["2 0 No\\ error", "3 1 Unsupported\\ batch\\ system\\ flux",
                                      "4 1 Unsupported\\ batch\\ system\\ NULL"])
    assert check_session(reqs, p.stdout, results_on_eof=True) == []


def test_supported_lrms_restricts_what_is_served(server_env, tmp_path):
    cfg = tmp_path / "blah.config"
    cfg.write_text("supported_lrms=pbs,slurm\n")
    p = run_blahpd(b"BLAH_PING 2 local\r\n", server_env, args=["-s"])
    assert lines_of(p.stdout)[-1] == "2 1 Unsupported\\ batch\\ system\\ local"


def test_errors_and_the_server_keeps_serving(server_env):
    big = b"BLAH_PING 1 " + b"x" * (1 << 20) + b"\r\n"
    data = (b"BLAH_PING\r\n\r\n   \r\n\t\r\nNOSUCH a b\r\nBLAH_JOB_REFRESH_PROXY 1\r\n" + big +
            b"COMMANDS extra\r\nVERSION\r\n")
    p = run_blahpd(data, server_env)
    assert p.returncode == 0
    assert lines_of(p.stdout) == [
        BANNER.decode(), r"E expected\ 2\ parameters,\ 0\ found", r"E Unknown\ command", r"E Unknown\ command",
        r"E expected\ 3\ parameters,\ 1\ found", r"E Line\ too\ long", r"E expected\ 0\ parameters,\ 1\ found",
        "S " + BANNER.decode()]


def test_legacy_commands(server_env, tmp_path):
    proxy = tmp_path / "proxy"
    proxy.write_text("x")
    reqs = ["BLAH_SET_SUDO_OFF", "BLAH_SET_GLEXEC_OFF", "BLAH_SET_GLEXEC_DN a b c",
            "BLAH_GET_HOSTPORT 1", "BLAH_JOB_SEND_PROXY_TO_WORKER_NODE 2 /p slurm/20260101/5 wn",
            "BLAH_JOB_REFRESH_PROXY 3 slurm/20260101/99995 %s" % proxy,
            "BLAH_JOB_REFRESH_PROXY 4 garbage\\ id /nonexistent",
            "BLAH_JOB_REFRESH_PROXY 5 local/20260101/7 /nonexistent"]
    p = run_blahpd(("\r\n".join(reqs) + "\r\n").encode(), server_env, args=["-s"])
    out = lines_of(p.stdout)
    assert out[1:4] == [r"S Sudo\ mode\ off", r"S Glexec\ mode\ off", r"F Glexec\ mode\ not\ supported"]
    assert out[9] == "S 5"
    assert sorted(out[10:]) == sorted([
        r"1 1 Unable\ to\ retrieve\ the\ port\ (not\ supported)",
        r"2 1 Worker\ node\ proxy\ renewal\ not\ supported",
        r"3 0 Proxy\ renewed", r"4 2 Malformed\ jobId\ garbage\ id", r"5 0 Proxy\ renewed"])
    assert check_session(reqs, p.stdout, results_on_eof=True) == []
    assert b"proxy not readable" in p.stderr   # the unreadable one is a warning, not a failure


def test_eof_without_quit_exits_zero(server_env):
    p = run_blahpd(b"COMMANDS\r\n", server_env)
    assert p.returncode == 0 and p.stdout == BANNER_LINE + COMMANDS_REPLY


def test_final_line_without_terminator_is_served(server_env):
    p = run_blahpd(b"VERSION", server_env)
    assert p.stdout == BANNER_LINE + b"S " + BANNER_LINE


def read_line(proc, timeout=10.0):
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\r\n"):
        left = deadline - time.monotonic()
        assert left > 0, "no complete line within %s s (got %r)" % (timeout, buf)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            c = os.read(fd, 1)
            assert c, "EOF after %r" % buf
            buf += c
    return buf


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("after_start", [False, True])
def test_signals_end_the_session_cleanly(server_env, sig, after_start):
    proc = subprocess.Popen(blahpd_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env)
    try:
        assert read_line(proc) == BANNER_LINE
        if after_start:
            # a ping result proves the trio runtime is in charge
            proc.stdin.write(b"BLAH_PING 2 local\r\n")
            proc.stdin.flush()
            assert read_line(proc) == b"S\r\n"
            for _ in range(100):
                proc.stdin.write(b"RESULTS\r\n")
                proc.stdin.flush()
                if read_line(proc) == b"S 1\r\n":
                    assert read_line(proc) == b"2 0 No\\ error\r\n"
                    break
                time.sleep(0.05)
            else:
                pytest.fail("no ping result")
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broken_config_is_one_line_on_stderr(server_env, tmp_path):
    (tmp_path / "blah.config").write_text("a=1\nif then (\n")
    p = run_blahpd(b"COMMANDS\r\n", server_env)
    assert p.returncode == 78
    err = p.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blahpd: configuration error:") and "line 2" in err[0]
    assert b"Traceback" not in p.stderr
    assert p.stdout.startswith(BANNER_LINE)


def test_noisy_config_never_reaches_stdout(server_env, tmp_path):
    (tmp_path / "blah.config").write_text("echo 'login banner $ noise'\nprintf 'more\\r\\n' >&2\nx=1\n")
    p = run_blahpd(b"COMMANDS\r\nBLAH_PING 2 local\r\n", server_env, args=["-s"])
    assert p.returncode == 0
    assert p.stdout == BANNER_LINE + COMMANDS_REPLY + b"S\r\nS 1\r\n2 0 No\\ error\r\n"


def test_logs_go_to_the_log_file_as_key_value(server_env, tmp_path):
    log = tmp_path / "b.log"
    (tmp_path / "blah.config").write_text("blah_log_file=%s\nblah_log_level=debug\n" % log)
    run_blahpd(b"BLAH_PING 7 local\r\n", server_env, args=["-s"])
    text = log.read_text()
    assert "event='pyblahp starting'" in text
    assert "reqid='7'" in text and "command='BLAH_PING'" in text


def test_json_logs_on_request(server_env, tmp_path):
    import json
    log = tmp_path / "b.log"
    (tmp_path / "blah.config").write_text("blah_log_file=%s\npyblahp_log_format=json\n" % log)
    run_blahpd(b"BLAH_PING 7 local\r\n", server_env, args=["-s"])
    records = [json.loads(l) for l in log.read_text().splitlines()]
    assert any(r.get("reqid") == "7" and r["event"] == "request done" for r in records)


def test_stderr_is_silent_when_it_is_the_protocol_socket(server_env):
    """Reverse GAHP: fds 0, 1 and 2 are one socket; a warning must not land in the stream."""
    ours, theirs = socket.socketpair()
    reqs = ["BLAH_JOB_REFRESH_PROXY 3 slurm/20260101/5 /nonexistent/proxy", "BLAH_PING 4 local"]
    proc = subprocess.Popen(blahpd_command() + ["-s"], stdin=theirs, stdout=theirs, stderr=theirs, env=server_env)
    theirs.close()
    ours.sendall(("\r\n".join(reqs) + "\r\n").encode())
    ours.shutdown(socket.SHUT_WR)
    data = b""
    ours.settimeout(20)
    while True:
        chunk = ours.recv(65536)
        if not chunk:
            break
        data += chunk
    assert proc.wait(timeout=10) == 0
    assert check_session(reqs, data, results_on_eof=True) == []
    assert b"not readable" not in data


def test_version_and_help():
    out = subprocess.run(blahpd_command() + ["--version"], stdout=subprocess.PIPE, check=True).stdout
    assert out.startswith(b"pyblahp ")
    out = subprocess.run(blahpd_command() + ["--help"], stdout=subprocess.PIPE, check=True).stdout
    assert b"usage: blahpd" in out
