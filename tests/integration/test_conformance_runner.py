"""gahp-conformance itself: it passes a good server, and fails damaged ones with a clear report."""
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import blahpd_command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKEN = [sys.executable, "-m", "conformance.broken"]

GOOD = """@ purpose: handshake and a ping in async mode
< $GahpVersion: 1.8.0 Mar 31 2008 INFN\\ blahpd\\ (poly,new_esc_format) $
> ASYNC_MODE_ON
< S Async\\ mode\\ on
> BLAH_PING 2 local
< S
< R
> RESULTS
< S 1
< 2 0 No\\ error
> QUIT
< S Server\\ exiting
= exit 0
"""

LOCAL_RESTART = """@ purpose: a job id minted before a restart is answered by the next server
@ needs: local
> BLAH_JOB_SUBMIT 2 [Cmd\\ =\\ "/bin/sleep";\\ Args\\ =\\ "60";\\ Iwd\\ =\\ "{workdir}";\\ gridtype\\ =\\ "local"]
< S
= results
< 2 0 No\\ error {job/local\\/[0-9]{8}\\/[0-9]+/}
= end
= restart
> BLAH_JOB_STATUS 3 {job}
< S
= results
< 3 0 No\\ Error 2 [{*}JobStatus\\ =\\ 2;{*}]
= end
> BLAH_JOB_CANCEL 4 {job}
< S
= results
< 4 0 No\\ error
= end
"""


def cli():
    script = os.path.join(os.path.dirname(sys.executable), "gahp-conformance")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "conformance.cli"]


def run(tmp_path, sessions, *args, server=None, env=None, timeout=120):
    for name, text in sessions.items():
        (tmp_path / name).write_text(text)
    junit = tmp_path / "junit.xml"
    argv = cli() + ["--server", " ".join(server or blahpd_command()), "--junit", str(junit)] + list(args) + \
        [str(tmp_path / n) for n in sessions]
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    p = subprocess.run(argv, cwd=str(tmp_path), env=e, capture_output=True, text=True, timeout=timeout)
    return p, (ET.parse(str(junit)).getroot() if junit.exists() else None)


def test_a_good_server_passes_and_the_junit_report_says_so(tmp_path):
    p, junit = run(tmp_path, {"good.session": GOOD, "restart.session": LOCAL_RESTART})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS  good" in p.stdout and "PASS  restart" in p.stdout
    assert "2 sessions: 2 passed, 0 failed" in p.stdout
    assert junit.get("tests") == "2" and junit.get("failures") == "0"
    assert [c.get("name") for c in junit.iter("testcase")] == ["good", "restart"]
    assert "BLAH_PING 2 local" in junit.find("testcase/system-out").text


@pytest.mark.parametrize("mode, expected", [
    ("drop-cr", ["the line does not end in CRLF", "expected: S Async\\ mode\\ on\\r\\n",
                 "received: S Async\\ mode\\ on\\n", "rule: line 2 does not end in CRLF"]),
    ("short-field", ["the line differs", "expected: 2 0 No\\ error\\r\\n", "received: 2 0\\r\\n",
                     "rule: BLAH_PING result has 2 fields, expected 3"]),
    ("double-space", ["received: 2  0 No\\ error\\r\\n", "rule: result line",
                      "empty argument (double/leading/trailing space)"]),
    ("extra-r", ["rule: second R without a non-empty RESULTS in between"]),
])
def test_a_broken_server_fails_with_a_clear_diff(tmp_path, mode, expected):
    p, junit = run(tmp_path, {"good.session": GOOD}, server=BROKEN + [mode, "--"] + blahpd_command())
    assert p.returncode == 1, p.stdout
    assert "FAIL  good" in p.stdout
    for text in expected:
        assert text in p.stdout, (text, p.stdout)
    failure = junit.find("testcase/failure")
    assert failure is not None and expected[0] in failure.text


def test_the_diff_marks_where_the_line_differs(tmp_path):
    wrong = GOOD.replace("< S Async\\ mode\\ on", "< S Async\\ mode\\ ON")
    p, _ = run(tmp_path, {"wrong.session": wrong})
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if "expected: S Async\\ mode\\ ON" in ln)
    assert "received: S Async\\ mode\\ on\\r\\n" in lines[i + 1]
    col = lines[i].index("ON")
    assert lines[i + 2][col:col + 2] == "^^" and lines[i + 2][:col].strip() == ""
    assert "wrong.session:4:" in p.stdout


def test_a_late_reply_breaks_the_response_bound(tmp_path):
    p, _ = run(tmp_path, {"good.session": GOOD}, "--response-bound", "1",
               server=BROKEN + ["slow", "--"] + blahpd_command(), env={"GAHP_BROKEN_DELAY": "3"})
    assert p.returncode == 1
    assert "no line within 1 s" in p.stdout and "the gridmanager EXCEPTs" in p.stdout


def test_a_server_that_dies_is_reported(tmp_path):
    p, _ = run(tmp_path, {"good.session": GOOD}, server=["/bin/sh", "-c", "printf '$GahpVersion: x $\\r\\n'; exit 3"])
    assert p.returncode == 1
    assert "the line differs" in p.stdout or "ended the session" in p.stdout


def test_needs_skips_and_require_all(tmp_path):
    slurm = "@ purpose: needs slurm\n@ needs: slurm\n> BLAH_PING 2 slurm\n< S\n"
    sim = "@ purpose: needs a simulator\n@ needs: sim-lsf\n> COMMANDS\n< S {*}\n"
    p, junit = run(tmp_path, {"slurm.session": slurm, "sim.session": sim, "good.session": GOOD}, "--remote")
    assert p.returncode == 0, p.stdout
    assert "SKIP  slurm: needs slurm, not available here (--provide slurm)" in p.stdout
    assert "SKIP  sim: needs sim-lsf" in p.stdout and junit.get("skipped") == "2"
    p, _ = run(tmp_path, {"slurm.session": slurm, "good.session": GOOD}, "--require-all")
    assert p.returncode == 1 and "counted as failures" in p.stdout


def test_sessions_run_in_parallel(tmp_path):
    sessions = {"s%d.session" % i: "@ purpose: sleeps\n> VERSION\n< S {*}\n= sleep 3\n" for i in range(4)}
    t0 = time.monotonic()
    p, _ = run(tmp_path, sessions, "-j", "4")
    assert p.returncode == 0, p.stdout
    assert time.monotonic() - t0 < 10   # one after the other: 12 s of sleeping alone


def test_a_session_that_does_not_parse_is_a_usage_error(tmp_path):
    p, _ = run(tmp_path, {"bad.session": "@ purpose: x\n= results\n< 1\n"})
    assert p.returncode == 2 and "bad.session:2: '= results' is never closed" in p.stderr


def test_simulated_batch_system_steps(tmp_path):
    text = """@ purpose: the simulated clock moves only when the session says so
@ needs: sim-lsf
@ sim: queue_delay=100 run_seconds=50 exit_status=7
> BLAH_JOB_SUBMIT 2 [Cmd\\ =\\ "/bin/true";\\ Iwd\\ =\\ "{workdir}";\\ gridtype\\ =\\ "lsf"]
< S
= results
< 2 0 No\\ error {job}
= end
> BLAH_JOB_STATUS 3 {job}
< S
= results
< 3 0 No\\ Error 1 [{*}]
= end
= sim advance 101
= retry 20
> BLAH_JOB_STATUS 4 {job}
< S
= results
< 4 0 No\\ Error 2 [{*}]
= end
= end
= sim advance 60
= retry 20
> BLAH_JOB_STATUS 5 {job}
< S
= results
< 5 0 No\\ Error 4 [{*}ExitCode\\ =\\ 7;{*}]
= end
= end
"""
    p, _ = run(tmp_path, {"sim.session": text})
    assert p.returncode == 0, p.stdout


def test_record_then_replay(tmp_path):
    requests = "COMMANDS\nASYNC_MODE_ON\nVERSION\n"   # replies that do not depend on timing
    out = tmp_path / "rec.session"
    (tmp_path / "blah.config").write_text("")
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             BLAHPD_CONFIG_LOCATION=str(tmp_path / "blah.config"), HOME=str(tmp_path))
    p = subprocess.run(cli() + ["--record", str(out), "--purpose", "demo", "--server", " ".join(blahpd_command())],
                       input=requests, env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "> ASYNC_MODE_ON\n< S Async\\ mode\\ on\n" in text and "@ purpose: demo" in text
    p, _ = run(tmp_path, {}, str(out))
    assert p.returncode == 0, p.stdout


def test_verbose_names_each_passed_session_with_its_time_and_steps(tmp_path):
    p, _ = run(tmp_path, {"good.session": GOOD}, "-v")
    assert p.returncode == 0, p.stdout
    assert re.search(r"^PASS  good \([0-9.]+ s, 12 steps\)$", p.stdout, re.M), p.stdout
    p, _ = run(tmp_path, {"good.session": GOOD})
    assert re.search(r"^PASS  good \([0-9.]+ s\)$", p.stdout, re.M), p.stdout


def test_env_values_see_workdir_and_home(tmp_path):
    server = tmp_path / "echo-env"
    server.write_text("#!/bin/sh\nprintf '$GahpVersion: %s (new_esc_format) $\\r\\n' \"$T_DIR\"\nread -r line\n"
                      "printf 'S %s\\r\\n' \"$T_HOME\"\ncat >/dev/null\n")
    server.chmod(0o755)
    text = ("@ purpose: '@ env:' values are filled in\n@ env: T_DIR={workdir}/sub\n@ env: T_HOME={home}\n"
            "< $GahpVersion: {workdir}/sub (new_esc_format) $\n> ECHO_HOME\n< S {home}\n")
    p, _ = run(tmp_path, {"env.session": text}, server=[str(server)])
    assert p.returncode == 0, p.stdout


def test_no_scratch_is_left_when_a_job_outlives_its_session(tmp_path):
    text = """@ purpose: the session ends while its job still runs
@ needs: local
> BLAH_JOB_SUBMIT 2 [Cmd\\ =\\ "/bin/sleep";\\ Args\\ =\\ "2";\\ Iwd\\ =\\ "{workdir}";\\ gridtype\\ =\\ "local"]
< S
= results
< 2 0 No\\ error {job}
= end
"""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    p, _ = run(tmp_path, {"leftover.session": text}, "--scratch", str(scratch))
    assert p.returncode == 0, p.stdout
    time.sleep(3)   # the job's exit record would be written by now
    assert os.listdir(str(scratch)) == []
