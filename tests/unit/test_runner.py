import os
import sys
import time

import pytest
import trio

from blahp.runner import CommandNotExecutable, CommandRunner
from tests.clusters.sharing import is_live as alive

PY = sys.executable


def run(coro_fn, *args, **kw):
    return trio.run(lambda: coro_fn(*args, **kw))


def test_captures_both_streams_and_exit_code():
    r = CommandRunner(os.environ)
    res = run(r.run, [PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], timeout=20)
    assert (res.returncode, res.stdout, res.stderr, res.timed_out) == (3, "out\n", "err\n", False)
    assert not res.ok and res.signal is None


def test_arguments_are_passed_verbatim_without_a_shell():
    r = CommandRunner(os.environ)
    nasty = ["$(touch /tmp/pwned)", "`id`", "a b", "'\"", "*", "\n", ""]
    res = run(r.run, [PY, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"] + nasty, timeout=20)
    assert __import__("json").loads(res.stdout) == nasty


def test_stdin_and_environment():
    r = CommandRunner({"PATH": os.environ["PATH"], "FOO": "bar"})
    res = run(r.run, [PY, "-c", "import os,sys; print(sys.stdin.read(), os.environ['FOO'], os.environ['LC_ALL'])"],
              timeout=20, stdin=b"input")
    assert res.stdout == "input bar C\n"


def test_killed_by_signal():
    r = CommandRunner(os.environ)
    res = run(r.run, [PY, "-c", "import os; os.kill(os.getpid(), 9)"], timeout=20)
    assert res.signal == 9 and res.returncode == -9


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pids"
    child = "import os,time; open(%r,'a').write('%%d\\n' %% os.getpid()); time.sleep(600)" % str(pidfile)
    parent = ("import subprocess,sys,time; subprocess.Popen([sys.executable,'-c',%r]); "
              "subprocess.Popen([sys.executable,'-c',%r]); time.sleep(600)") % (child, child)
    r = CommandRunner(os.environ, kill_grace=2)
    t0 = time.monotonic()
    res = run(r.run, [PY, "-c", parent], timeout=2)
    assert res.timed_out and not res.ok
    assert time.monotonic() - t0 < 10
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_sigterm_ignoring_command_gets_sigkill():
    r = CommandRunner(os.environ, kill_grace=0.5)
    prog = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
    t0 = time.monotonic()
    res = run(r.run, [PY, "-c", prog], timeout=1.5)
    assert res.timed_out and res.returncode == -9
    assert time.monotonic() - t0 < 6


def test_not_executable():
    r = CommandRunner(os.environ)
    with pytest.raises(CommandNotExecutable, match="No such file"):
        run(r.run, ["/nonexistent/sbatch"], timeout=5)


def test_output_is_capped_but_drained():
    r = CommandRunner(os.environ, capture_limit=1000)
    res = run(r.run, [PY, "-c", "import sys; sys.stdout.write('x' * 1000000)"], timeout=20)
    assert res.ok and len(res.stdout) == 1000 and res.stdout_truncated


def test_prefix_is_prepended_for_sudo_mode():
    r = CommandRunner(os.environ, prefix=lambda: ["env", "PREFIXED=1"])
    res = run(r.run, [PY, "-c", "import os; print(os.environ.get('PREFIXED'))"], timeout=20)
    assert res.stdout == "1\n" and res.argv[:2] == ["env", "PREFIXED=1"]
