"""gahp-shell driven in a pseudo-terminal (pexpect), against the real blahpd on the `local`
backend: completion, history, submit-watch-cancel, background results, recording a session that
gahp-conformance replays, and a server that dies under the shell."""
import os
import re
import signal
import subprocess
import sys
import time

import pexpect
import pytest

from tests.clusters.sharing import is_live
from tests.conftest import blahpd_command, local_server_env

pytestmark = pytest.mark.slow

CONFIG = "supported_lrms=local\npyblahp_status_ttl_min=0.2\npyblahp_status_ttl_max=0.5\n"
PROMPT = "gahp> "
UP = "\x1b[A"
JOB_ID = r"local/\d{8}/\d+"


@pytest.fixture
def env(tmp_path):
    e = local_server_env(tmp_path, CONFIG)
    e.update(TERM="xterm", NO_COLOR="1", GAHP_SHELL_HISTORY=str(tmp_path / "history"))
    return e


@pytest.fixture
def workdir(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return d


def spawn(env, workdir, *args, server=True):
    argv = ["-m", "gahp.shell.cli"] + list(args) + (["--"] + blahpd_command() if server else [])
    child = pexpect.spawn(sys.executable, argv, env=env, cwd=str(workdir), encoding="utf-8", timeout=60,
                          dimensions=(50, 200))
    child.expect_exact(PROMPT)
    return child


def finish(child, status=0):
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == status, child.before


def submit(child, workdir, cmd="/bin/sleep", args="60"):
    child.sendline('submit Cmd=%s Args="%s" Iwd=%s Out=/dev/null Err=/dev/null gridtype=local' % (cmd, args, workdir))
    child.expect(r"\d+ 0 No error (%s)" % JOB_ID)
    job = child.match.group(1)
    child.expect_exact(PROMPT)
    return job


def server_pid(child):
    """The blahpd the shell started (its only child process)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == child.pid:
                        return int(entry)
            except (OSError, IndexError, ValueError):
                pass
    raise AssertionError("the shell has no child process")


def test_tab_completion_of_commands_attributes_job_ids_and_help(env, workdir):
    child = spawn(env, workdir)
    try:
        # "sub<TAB>" -> "submit ", "Cm<TAB>" -> "Cmd=", "gridt<TAB>" -> "gridtype=": only the
        # completions make this a valid command
        child.send("sub\t")
        child.expect_exact("submit ")
        child.send("Cm\t")
        child.expect_exact("Cmd=")
        child.send("/bin/true Iwd=%s gridt\t" % workdir)
        child.expect_exact("gridtype=")
        child.send("local\r")
        child.expect(r"1 0 No error (%s)" % JOB_ID)
        job = child.match.group(1)
        child.expect_exact(PROMPT)
        # the job id this shell was given completes after status
        child.send("stat\t")
        child.expect_exact("status ")
        child.send("loc\t")
        child.expect_exact(job)
        child.send("\r")
        child.expect(r"2 0 No Error (IDLE|RUNNING|COMPLETED) \(\d\)")
        child.expect_exact(PROMPT)
        # help <TAB> completes command names; raw <TAB> the server's COMMANDS
        child.send("help wat\t")
        child.expect_exact("watch")
        child.send("\r")
        child.expect_exact("watch JOBID [SECONDS]")
        child.expect_exact("wire:    BLAH_JOB_STATUS <reqid> <jobid>, repeated")
        child.expect_exact(PROMPT)
        child.send("raw BLAH_PI\t")
        child.expect_exact("BLAH_PING ")
        child.send("77 local\r")
        child.expect_exact("77 0 No error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def test_history_within_and_across_sessions(env, workdir, tmp_path):
    child = spawn(env, workdir)
    try:
        child.sendline("ping local")
        child.expect_exact("1 0 No error")
        child.expect_exact(PROMPT)
        child.sendline("version")
        child.expect_exact("$GahpVersion")
        child.expect_exact(PROMPT)
        child.send(UP + UP + "\r")           # ping local again, with the next request id
        child.expect_exact("2 0 No error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)
    with open(env["GAHP_SHELL_HISTORY"]) as f:
        assert f.read().splitlines()[-4:] == ["ping local", "version", "ping local", "exit"]
    child = spawn(env, workdir)
    try:
        child.send(UP * 3 + "\r")            # a new shell starts with the saved history
        child.expect_exact("$GahpVersion")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def test_submit_watch_cancel_round_trip(env, workdir):
    child = spawn(env, workdir)
    try:
        job = submit(child, workdir)
        child.sendline("watch %s 0.3" % job)
        child.expect(re.escape(job) + r"  RUNNING  \d+s  \(\d+ polls")      # the live status line
        child.expect(re.escape(job) + r"  RUNNING  \d+s  \(\d+ polls")      # ... updated in place
        child.sendintr()
        child.expect_exact("stopped watching %s (last seen RUNNING)" % job)
        child.expect_exact(PROMPT)
        child.sendline("cancel last")
        child.expect(r"\d+ 0 No error")
        child.expect_exact(PROMPT)
        child.sendline("watch %s 0.3" % job)
        child.expect(r"\d+ 0 No Error REMOVED \(3\)")
        child.expect(r"JobStatus\s+3 \(REMOVED\)")
        child.expect_exact(PROMPT)
        child.sendline("jobs")
        child.expect(re.escape(job) + r"\s+REMOVED\s+\S+\s+/bin/sleep 60")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def test_background_result_is_printed_above_the_prompt(env, workdir):
    child = spawn(env, workdir)
    try:
        child.sendline("ping local &")
        child.expect_exact("request 1 sent; its results will be shown when they come")
        child.expect_exact(PROMPT)
        child.send("vers")                   # half-typed: the result must not eat it
        child.expect_exact("1 0 No error", timeout=30)
        child.expect_exact(PROMPT + "vers")  # prompt and the typed text drawn again
        child.send("ion\r")
        child.expect_exact("$GahpVersion")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def test_recorded_session_replays_green(env, workdir, tmp_path):
    session = tmp_path / "shell.session"
    child = spawn(env, workdir, "--record", str(session), "--purpose", "echo a line, watch it complete")
    try:
        child.sendline('submit Cmd=/bin/echo Args="hello" Iwd=%s Out=out.txt Err=/dev/null gridtype=local' % workdir)
        child.expect(r"1 0 No error %s" % JOB_ID)
        child.expect_exact(PROMPT)
        child.sendline("watch last 0.3")
        child.expect_exact("COMPLETED (4)")
        child.expect_exact(PROMPT)
        child.sendline("ping local")
        child.expect(r"\d+ 0 No error")
        child.expect_exact(PROMPT)
        child.sendline("status local/20200101/1")
        child.expect(r"\d+ 0 No Error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)
    text = session.read_text()
    assert "@ purpose: echo a line, watch it complete" in text and "@ needs: local" in text
    assert "{job1}" in text and "{workdir}" in text and "= retry" in text
    config = tmp_path / "replay.config"
    config.write_text(CONFIG)
    e = {k: v for k, v in env.items() if k != "BLAHPD_CONFIG_LOCATION"}
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "--server", " ".join(blahpd_command()),
                        "--config", str(config), "--require-all", str(session)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=e,
                       timeout=300)
    assert r.returncode == 0, text + "\n" + r.stdout
    assert "1 passed" in r.stdout


def test_server_killed_mid_watch(env, workdir):
    child = spawn(env, workdir)
    try:
        job = submit(child, workdir, args="8")   # what the dead server leaves running ends soon
        child.sendline("watch %s 0.5" % job)
        child.expect_exact("RUNNING")
        os.kill(server_pid(child), signal.SIGKILL)
        child.expect(r"gahp-shell: server exited with status -9 \(killed by SIGKILL\) while waiting for "
                     r"(request \d+ \(BLAH_JOB_STATUS\)|the reply to BLAH_JOB_STATUS)")
        child.expect(pexpect.EOF)
        assert "gahp-shell:" not in child.before   # said once
        child.close()
        assert child.exitstatus == 2
    finally:
        child.close(force=True)


def test_server_dying_while_idle_ends_the_shell(env, workdir):
    child = spawn(env, workdir)
    try:
        pid = server_pid(child)
        os.kill(pid, signal.SIGKILL)
        child.expect(r"gahp-shell: server exited with status -9 \(killed by SIGKILL\) while the shell was idle")
        child.expect(pexpect.EOF, timeout=15)   # without a key pressed
        child.close()
        assert child.exitstatus == 2
        assert not is_live(pid)
    finally:
        child.close(force=True)


def test_default_server_is_the_local_blahpd(env, workdir):
    child = spawn(env, workdir, server=False)
    try:
        child.sendline("ping local")
        child.expect_exact("1 0 No error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def run_shell(env, workdir, *args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "gahp.shell.cli"] + list(args), input=stdin, env=env,
                          cwd=str(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def test_scripts_exit_status(env, workdir):
    server = ["--server", " ".join(blahpd_command())]
    job = 'submit Cmd=%%s Iwd=%s Out=/dev/null Err=/dev/null gridtype=local' % workdir
    r = run_shell(env, workdir, *server, "-c", "ping local; %s; watch last 0.3" % (job % "/bin/true"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\d+ 0 No Error COMPLETED \(4\)", r.stdout) and re.search(r"ExitCode\s+0", r.stdout)
    r = run_shell(env, workdir, *server, "-c", "%s; watch last 0.3" % (job % "/bin/false"))
    assert r.returncode == 1, r.stdout + r.stderr          # completed, but exit code 1
    assert re.search(r"ExitCode\s+1", r.stdout)
    # a script on stdin
    r = run_shell(env, workdir, *server, stdin="ping local\nversion\n")
    assert r.returncode == 0 and r.stdout.startswith("1 0 No error\nS $GahpVersion"), r.stdout + r.stderr
    r = run_shell(env, workdir, *server, stdin="ping local\nstatus nonsense\n")
    assert r.returncode == 1 and "2 255 Malformed jobId" in r.stdout, r.stdout + r.stderr
    # a typo stops the script before anything is sent
    r = run_shell(env, workdir, *server, "-c", "ping local; frobnicate")
    assert r.returncode == 2 and r.stdout == "" and "unknown command 'frobnicate'" in r.stderr
    r = run_shell(env, workdir, "-c", "ping local", "--", "/nonexistent/blahpd")
    assert r.returncode == 2 and "cannot start /nonexistent/blahpd" in r.stderr
    # background requests of a script are waited for before it ends
    r = run_shell(env, workdir, *server, "-c", "ping local &; version")
    assert r.returncode == 0 and "1 0 No error" in r.stdout, r.stdout + r.stderr


def test_raw_mode_gahp_lines_colours_and_submit_from_a_file(env, workdir):
    (workdir / "job.ad").write_text('[\n  Cmd = "/bin/true";\n  Iwd = "%s";\n  gridtype = "local"\n]\n' % workdir)
    env = dict(env)
    del env["NO_COLOR"]
    child = spawn(env, workdir, "--color", "always")
    try:
        child.sendline("submit -f job.ad")
        child.expect(r"1 0 No error %s" % JOB_ID)
        child.expect_exact(PROMPT)
        child.sendline("status nonsense")                        # an error result, in red
        child.expect_exact("\x1b[31m2 255 Malformed jobId or out of memory\x1b[0m")
        child.expect_exact(PROMPT)
        child.sendline("BLAH_PING 40 local")                     # a GAHP line typed as such
        child.expect_exact("40 0 No error")
        child.expect_exact(PROMPT)
        child.send("BLAH_J\t")                                   # completes from the server's COMMANDS
        child.expect_exact("OB_")                                # (after the bell: several match)
        child.send("\x15")                                       # Ctrl-U: drop the line
        child.sendline("raw")
        child.expect_exact("gahp raw> ")
        child.sendline("VERSION")
        child.expect_exact("S $GahpVersion")
        child.sendline("BLAH_PING 41 local")
        child.expect_exact("41 0 No error")
        child.sendline("ping local")                             # sent as typed: not a GAHP command
        child.expect_exact("\x1b[31mE Unknown command\x1b[0m")
        child.sendeof()                                          # Ctrl-D leaves raw mode only
        child.expect_exact(PROMPT)
        child.sendline("ping local")
        child.expect(r"\d+ 0 No error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)


def test_ctrl_c_stops_waiting_and_the_result_comes_later(env, workdir, tmp_path):
    # a slow bsub that then fails: the submit's result comes after 4 s
    from conformance.sim import lsf as lsf_sim
    from tests.clusters.sim import SimSystem
    lsf = SimSystem(tmp_path, "lsf", lsf_sim.COMMANDS)
    lsf.fault("bsub", hang=4, rc=255, stderr="LSF is down. Please wait ...\n", times=1)
    with open(env["BLAHPD_CONFIG_LOCATION"], "a") as f:
        f.write("supported_lrms=local,lsf\n")
    env = dict(env, **lsf.env)
    child = spawn(env, workdir)
    try:
        child.sendline("submit Cmd=/bin/true Iwd=%s gridtype=lsf" % workdir)
        time.sleep(1)
        child.sendintr()
        child.expect_exact("stopped waiting: the results of request 1 will be shown when they come")
        child.expect_exact(PROMPT)
        child.expect(r"1 [1-9]\d* submission command failed", timeout=60)   # the late result, unasked
        child.expect_exact(PROMPT)
        child.sendline("ping local")                      # the shell goes on
        child.expect_exact("2 0 No error")
        child.expect_exact(PROMPT)
        finish(child)
    finally:
        child.close(force=True)
