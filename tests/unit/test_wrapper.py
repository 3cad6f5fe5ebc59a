"""The bash job wrapper, run for real (submit-ad.md §6.5, §8, §9, §12.2 W1–W12, §12.3).

Each test builds the job through build_job, renders the wrapper, writes it to a file that is not
executable and runs it the way every backend does: ``/bin/bash <file>``, with SLURM_JOB_ID set
so the exit record carries a batch id."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from blahp.classad import parse_ad, unparse_value
from blahp.config import Config
from blahp.jobmodel import build_job
from blahp.wrapper import parse_exit_record, render
from gahp.runtime import NullLog
from tests.clusters.sharing import cmdline, is_live

WORKER_PATH = "/usr/local/bin:/usr/bin:/bin"
KEY = "home_bl_test_wrapper_1.0"


class Run:
    def __init__(self, tmp_path, job, proc):
        self.tmp_path = tmp_path
        self.job = job
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def record(self, kind="exit"):
        path = self.tmp_path / "exit" / ("%s.%s" % (self.job.h12, kind))
        assert path.exists(), "no %s record" % kind
        rec = parse_exit_record(path.read_text())
        assert rec, "not an exit record: %r" % path.read_text()
        return rec


@pytest.fixture
def iwd(tmp_path):
    d = tmp_path / "iwd"
    d.mkdir()
    return d


def make_job(tmp_path, iwd, cmd, args=None, env=None, extra=(), values=None, key=KEY):
    """A job from a real ad: Arguments/Environment in their V2 forms, paths as the GM writes them."""
    attrs = {"gridtype": "slurm", "Cmd": cmd, "Iwd": str(iwd)}
    if key is not None:
        attrs["JobDirectory"] = key
    if args is not None:
        attrs["Arguments"] = " ".join("'" + a.replace("'", "''") + "'" for a in args)
    if env is not None:
        attrs["Environment"] = " ".join("%s='%s'" % (n, v.replace("'", "''")) for n, v in env)
    text = "[ " + "; ".join("%s = %s" % (n, unparse_value(v)) for n, v in attrs.items())
    text += "".join("; " + e for e in extra) + " ]"
    config = Config(values=values or {})
    return build_job(parse_ad(text), config, supported=("slurm",), log=NullLog(), cwd=str(tmp_path)), config


def write_wrapper(tmp_path, job, config):
    script = tmp_path / "wrapper.sh"
    script.write_bytes(("#!/bin/bash\n" + render(job, config, exit_dir=str(tmp_path / "exit")))
                       .encode("utf-8", "surrogateescape"))
    script.chmod(0o644)  # never executed directly (noexec temp dirs)
    return script


def run_env(tmp_path, **extra):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": WORKER_PATH, "HOME": str(home), "LANG": "C.UTF-8", "SLURM_JOB_ID": "77"}
    env.update(extra)
    return env


def start_dir(tmp_path):
    d = tmp_path / "batchstart"
    d.mkdir(exist_ok=True)
    return d


def run(tmp_path, job, config, timeout=60, **env):
    script = write_wrapper(tmp_path, job, config)
    proc = subprocess.run(["/bin/bash", str(script)], env=run_env(tmp_path, **env), cwd=str(start_dir(tmp_path)),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)
    return Run(tmp_path, job, proc)


def read_env_dump(path):
    """``env -0`` output -> dict."""
    out = {}
    for entry in path.read_bytes().split(b"\0"):
        if entry:
            k, _, v = entry.decode("utf-8", "surrogateescape").partition("=")
            out[k] = v
    return out


# --- exit status and records -------------------------------------------------------------------

def test_exit_code_propagates(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "echo started > ran.txt; exit 3"])
    r = run(tmp_path, job, config)
    assert r.rc == 3
    assert (iwd / "ran.txt").read_text() == "started\n"
    rec = r.record()
    assert rec["exit_code"] == "3"
    assert rec["signal"] == "0"
    assert rec["batch_id"] == "77"
    assert rec["key"] == KEY
    assert rec["reason"] == ""
    assert rec["host"]
    assert int(rec["start"]) <= int(rec["end"]) <= time.time() + 1
    start = r.record("start")
    assert start["key"] == KEY and start["batch_id"] == "77"
    assert "exit_code" not in start and "end" not in start
    # exactly the two records, no temp files left behind
    assert sorted(os.listdir(tmp_path / "exit")) == sorted([job.h12 + ".exit", job.h12 + ".start"])
    # W10: nothing on the batch job's own stdout/stderr
    assert r.stdout == b"" and r.stderr == b""


def test_exit_zero(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/true")
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert r.record()["exit_code"] == "0" and r.record()["signal"] == "0"


def test_batch_id_from_other_batch_systems(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/true")
    r = run(tmp_path, job, config, SLURM_JOB_ID="", PBS_JOBID="123.server")
    assert r.record()["batch_id"] == "123.server"


def test_exit_dir_created_and_default_key(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/true", key=None)
    assert not (tmp_path / "exit").exists()
    r = run(tmp_path, job, config)
    assert r.record()["key"] == job.key


def test_payload_killed_by_sigkill(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "kill -9 $$"])
    r = run(tmp_path, job, config)
    assert r.rc == 137
    rec = r.record()
    assert rec["exit_code"] == "137"
    assert rec["signal"] == "9"


def test_plain_exit_above_128_without_signal_is_not_a_signal_while_group_lives(tmp_path, iwd):
    # rc > 128 and the payload's process group still exists (a leftover child): not a signal
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "sleep 2 & echo $! > child.pid; exit 130"])
    r = run(tmp_path, job, config)
    assert r.rc == 130
    assert r.record()["signal"] == "0"
    # the watcher ends what the payload left behind once the wrapper exits (as a batch system
    # would); the child must not be signalled from here: once reaped, its pid may be anyone's
    pid = int((iwd / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while is_live(pid) and cmdline(pid).startswith(b"sleep") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (is_live(pid) and cmdline(pid).startswith(b"sleep")), "the payload's leftover child outlived the wrapper"



def _wait_for(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.02)
    raise AssertionError("%s never appeared" % path)


def _terminated_wrapper(tmp_path, iwd, job, config, check=None):
    """Run the wrapper until its payload has written payload.pid, then SIGTERM the wrapper."""
    script = write_wrapper(tmp_path, job, config)
    proc = subprocess.Popen(["/bin/bash", str(script)], env=run_env(tmp_path), cwd=str(start_dir(tmp_path)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(iwd / "payload.pid")
        if check is not None:
            check(proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


TRAPPING_PAYLOAD = """\
trap '%secho late > late.txt; exit 42' TERM
sleep 30 &
echo $! > sleeper.pid
echo $$ > payload.pid
wait
"""


# A payload that exits at once on TERM races the wrapper's wait loop (the old loop reported the
# interrupted wait's 143 in about half the runs), hence several attempts; one with a slow trap
# shows the wrapper keeps waiting.
@pytest.mark.parametrize("attempt,trap_delay", [(i, "") for i in range(5)] + [(5, "sleep 0.3; ")])
def test_sigterm_forwarded_and_waited_for(tmp_path, iwd, attempt, trap_delay):
    (iwd / "payload.sh").write_text(TRAPPING_PAYLOAD % trap_delay)
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["payload.sh"])
    pids = {}

    def own_group(proc):
        pids["sleeper"] = int((iwd / "sleeper.pid").read_text())
        pids["payload"] = payload = int((iwd / "payload.pid").read_text())
        assert os.getpgid(payload) == payload != os.getpgid(proc.pid)  # own process group (set -m)
    proc = _terminated_wrapper(tmp_path, iwd, job, config, own_group)
    sleeper, payload = pids["sleeper"], pids["payload"]
    assert proc.returncode == 42
    assert (iwd / "late.txt").read_text() == "late\n"  # the wrapper waited for the trap to finish
    r = Run(tmp_path, job, proc)
    rec = r.record()
    assert rec["exit_code"] == "42"
    assert rec["signal"] == "0"
    deadline = time.monotonic() + 5
    while (is_live(sleeper) or is_live(payload)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_live(sleeper), "the payload's child survived: TERM did not reach its process group"
    assert not is_live(payload)


def test_sigterm_kills_untrapping_payload(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "echo $$ > payload.pid; sleep 30; echo no > after"])
    proc = _terminated_wrapper(tmp_path, iwd, job, config)
    assert proc.returncode == 143
    rec = Run(tmp_path, job, proc).record()
    assert rec["exit_code"] == "143" and rec["signal"] == "15"
    assert not (iwd / "after").exists()


def test_iwd_missing_on_worker(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "echo ran > %s" % (tmp_path / "ran.txt")])
    iwd.rmdir()  # existed at submit time, gone on the worker
    r = run(tmp_path, job, config)
    assert r.rc == 1
    assert "Failed to CD to Initial Working Directory.\n" in r.stderr.decode()
    assert r.stdout == b""
    rec = r.record()
    assert rec["exit_code"] == "1" and rec["signal"] == "0" and rec["reason"] == "iwd"
    assert rec["batch_id"] == "77"
    assert not (tmp_path / "ran.txt").exists()
    assert not (tmp_path / "exit" / (job.h12 + ".start")).exists()


# --- stdio -------------------------------------------------------------------------------------

def test_stdin_stdout_stderr(tmp_path, iwd):
    (iwd / "in.txt").write_text("from stdin\n")
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "cat; echo to-out; echo to-err >&2"],
                           extra=['In = "in.txt"', 'Out = "_condor_stdout"', 'Err = "%s"' % (tmp_path / "abs.err")])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert (iwd / "_condor_stdout").read_text() == "from stdin\nto-out\n"
    assert (tmp_path / "abs.err").read_text() == "to-err\n"


def test_err_equal_to_out_shares_one_file(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "echo one; echo two >&2; echo three"],
                           extra=['Out = "both.txt"', 'Err = "both.txt"'])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert (iwd / "both.txt").read_text() == "one\ntwo\nthree\n"


def test_default_stdio_is_dev_null(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "cat; echo out; echo err >&2"])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert r.stdout == b"" and r.stderr == b""


# --- environment -------------------------------------------------------------------------------

def env_job(tmp_path, iwd, env=None, extra=(), values=None):
    return make_job(tmp_path, iwd, "/usr/bin/env", ["-0"], env=env, extra=('Out = "env.out"',) + tuple(extra),
                    values=values)


def test_path_merge(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, env=[("PATH", "/custom")])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert read_env_dump(iwd / "env.out")["PATH"] == "/custom:" + WORKER_PATH


def test_path_not_merged_when_disabled(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, env=[("PATH", "/custom")], values={"blah_merge_paths": "no"})
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert read_env_dump(iwd / "env.out")["PATH"] == "/custom"
    # the wrapper's own commands still work: the exit record is written
    assert r.record()["exit_code"] == "0"


def test_path_untouched_without_job_path(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, env=[("A", "1")])
    run(tmp_path, job, config)
    assert read_env_dump(iwd / "env.out")["PATH"] == WORKER_PATH


def test_proxy_and_node_count_exported(tmp_path, iwd):
    (iwd / "x509up_u1000").write_text("proxy")
    job, config = env_job(tmp_path, iwd, extra=['x509userproxy = "x509up_u1000"', "NodeNumber = 4"])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    env = read_env_dump(iwd / "env.out")
    assert env["X509_USER_PROXY"] == str(iwd / "x509up_u1000")
    assert env["NODE_COUNT"] == "4"
    assert (iwd / "x509up_u1000").read_text() == "proxy"  # never deleted (W10)


def test_no_proxy_no_node_count(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd)
    run(tmp_path, job, config, X509_USER_PROXY="/from/worker")
    env = read_env_dump(iwd / "env.out")
    assert env["X509_USER_PROXY"] == "/from/worker"
    assert "NODE_COUNT" not in env


def test_job_env_confs_copied(tmp_path, iwd):
    conf1 = tmp_path / "osg-job-environment.conf"
    conf1.write_text("# comment line\nexport OSG_SITE_NAME='Example Site'\n\n  # indented comment\n"
                     "OSG_WN_TMP=/scratch; export OSG_WN_TMP\n")
    conf2 = tmp_path / "osg-local-job-environment.conf"
    conf2.write_text("export OSG_LOCAL=yes\n")
    job, config = env_job(tmp_path, iwd, env=[("OSG_LOCAL", "job")], values={
        "blah_job_env_confs": "%s,%s %s" % (conf1, tmp_path / "missing.conf", conf2)})
    r = run(tmp_path, job, config)
    assert r.rc == 0
    env = read_env_dump(iwd / "env.out")
    assert env["OSG_SITE_NAME"] == "Example Site"
    assert env["OSG_WN_TMP"] == "/scratch"
    assert env["OSG_LOCAL"] == "yes"  # site environment comes after the job's


def test_nothing_pyb_visible_to_payload(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, env=[("A", "1"), ("_pyb_key", "evil"), ("_pyb_exitdir", str(tmp_path)),
                                              ("_pyb_h12", "forged")],
                          extra=['x509userproxy = "/tmp/p"', "NodeNumber = 1"])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    env = read_env_dump(iwd / "env.out")
    assert env["A"] == "1"
    assert [k for k in env if k.lower().startswith("_pyb")] == []
    # the job's environment cannot redirect or forge the exit record
    rec = r.record()
    assert rec["key"] == KEY
    assert not (tmp_path / "forged.exit").exists()


def test_home_unchanged(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, env=[("A", "1")])
    r = run(tmp_path, job, config)
    env = read_env_dump(iwd / "env.out")
    assert env["HOME"] == str(tmp_path / "home")
    assert env["SLURM_JOB_ID"] == "77"  # the batch environment passes through
    assert os.listdir(tmp_path / "home") == []  # nothing written to $HOME
    assert r.rc == 0


def test_blah_job_wrapper_prefix(tmp_path, iwd):
    job, config = env_job(tmp_path, iwd, values={"blah_job_wrapper": "/usr/bin/env 'WRAPPED=a b'"})
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert read_env_dump(iwd / "env.out")["WRAPPED"] == "a b"


# --- files -------------------------------------------------------------------------------------

def test_transfer_output_remaps(tmp_path, iwd):
    (iwd / "results").mkdir()
    abs_dst = tmp_path / "abs_dst.dat"
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", ("echo data > out.dat; echo log > log.txt; "
                                                              "test ! -e results/final.dat")],
                           extra=['TransferOutput = "out.dat,log.txt,never.txt"',
                                  'TransferOutputRemaps = "out.dat=results/final.dat;log.txt=%s;never.txt=n2"'
                                  % abs_dst])
    r = run(tmp_path, job, config)
    assert r.rc == 0  # the payload saw no remapped file yet: remaps run after it
    assert not (iwd / "out.dat").exists()
    assert (iwd / "results" / "final.dat").read_text() == "data\n"
    assert abs_dst.read_text() == "log\n"
    assert not (iwd / "n2").exists()
    assert r.record()["exit_code"] == "0"


def test_transfer_input_from_elsewhere_is_copied(tmp_path, iwd):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.txt").write_text("cfg")
    (iwd / "local.txt").write_text("loc")
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "cat config.txt local.txt > seen.txt"],
                           extra=['TransferInput = "%s,local.txt"' % (other / "config.txt")])
    r = run(tmp_path, job, config)
    assert r.rc == 0
    assert (iwd / "seen.txt").read_text() == "cfgloc"


def test_stage_cmd_chmod(tmp_path, iwd):
    exe = iwd / "job.sh"
    exe.write_text("#!/bin/sh\necho ran > ran.txt\nexit 5\n")
    exe.chmod(0o644)
    job, config = make_job(tmp_path, iwd, "job.sh")
    r = run(tmp_path, job, config)
    assert exe.stat().st_mode & stat.S_IXUSR
    assert (iwd / "ran.txt").read_text() == "ran\n"
    assert r.rc == 5


def test_no_chmod_when_stage_cmd_false(tmp_path, iwd):
    exe = iwd / "job.sh"
    exe.write_text("#!/bin/sh\necho ran > ran.txt\n")
    exe.chmod(0o644)
    job, config = make_job(tmp_path, iwd, str(exe), extra=["StageCmd = false"])
    r = run(tmp_path, job, config)
    assert not exe.stat().st_mode & stat.S_IXUSR
    assert r.rc == 126  # not executable: bash's status for it
    assert not (iwd / "ran.txt").exists()


def test_wrapper_file_not_executable(tmp_path, iwd):
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["-c", "echo ok > ok.txt"])
    script = write_wrapper(tmp_path, job, config)
    script.chmod(0o400)
    locked = tmp_path / "locked"
    locked.mkdir()
    os.replace(script, locked / "wrapper.sh")
    locked.chmod(0o555)
    try:
        assert not os.access(locked / "wrapper.sh", os.X_OK)
        proc = subprocess.run(["/bin/bash", str(locked / "wrapper.sh")], env=run_env(tmp_path),
                              cwd=str(start_dir(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert (iwd / "ok.txt").read_text() == "ok\n"


def test_arguments_reach_payload_literally(tmp_path, iwd):
    marker = tmp_path / "marker"
    args = ["a b", "it's", "$HOME", "`touch %s`" % marker, "$(touch %s)" % marker, "*", "", "\\n", "x\ny"]
    job, config = make_job(tmp_path, iwd, sys.executable,
                           ["-c", "import json,sys; json.dump(sys.argv[1:], open('argv.json', 'w'))"] + args)
    r = run(tmp_path, job, config)
    assert r.rc == 0
    import json
    assert json.loads((iwd / "argv.json").read_text()) == args
    assert not marker.exists()


def test_payload_dies_with_a_wrapper_killed_by_its_batch_system(tmp_path, iwd):
    # Grid Engine's qdel SIGKILLs the job's process group: the wrapper cannot forward that, and
    # the payload's own group (set -m) would run on unless something outside both kills it.
    (iwd / "payload.sh").write_text(TRAPPING_PAYLOAD % "")
    job, config = make_job(tmp_path, iwd, "/bin/sh", ["payload.sh"])
    script = write_wrapper(tmp_path, job, config)
    proc = subprocess.Popen(["/bin/bash", str(script)], env=run_env(tmp_path), cwd=str(start_dir(tmp_path)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # the job's process group, as a batch system makes it
    try:
        _wait_for(iwd / "payload.pid")
        _wait_for(iwd / "sleeper.pid")
        payload, sleeper = int((iwd / "payload.pid").read_text()), int((iwd / "sleeper.pid").read_text())
        assert os.getpgid(payload) != proc.pid
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while (is_live(sleeper) or is_live(payload)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_live(payload) and not is_live(sleeper), "the payload outlived its killed wrapper"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
