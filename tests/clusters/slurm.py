"""A private single-node Slurm cluster (optionally with slurmdbd + MariaDB) for integration tests.

The cluster is started by ``slurm-up.sh`` and stopped by ``slurm-down.sh`` next to this file; the
daemons are stopped by pid file only, never by name, so that several clusters (and other people's)
can run side by side on one machine.

Use from a test module::

    from tests.clusters.slurm import slurm_cluster  # noqa: F401

    def test_something(slurm_cluster):
        slurm_cluster.run(["sbatch", "--parsable", "--wrap", "true"])

A module that needs a differently configured cluster makes its own session fixture::

    @pytest.fixture(scope="session")
    def purging_cluster(tmp_path_factory):
        yield from slurm_cluster_fixture(tmp_path_factory, min_job_age=2)

The shared cluster is shared by the whole session: a test that changes it (``stop_dbd``,
``set_min_job_age``) must put it back before it ends.
"""

import datetime
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.clusters.sharing import Shared, is_live, require, search_path

HERE = os.path.dirname(os.path.abspath(__file__))
UP_SCRIPT = os.path.join(HERE, "slurm-up.sh")
DOWN_SCRIPT = os.path.join(HERE, "slurm-down.sh")

DEBIAN_PACKAGES = "slurm-wlm slurmctld slurmd slurm-client munge"
DEBIAN_DBD_PACKAGES = "slurmdbd mariadb-server"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
DBD_BINARIES = ("slurmdbd", "sacct", "sacctmgr", "mariadbd", "mariadb", "mariadb-install-db")

START_TIMEOUT = 100  # below pytest-timeout's 120 s, so that our own clean-up still runs
STOP_TIMEOUT = 60
# sun_path holds 108 bytes; the longest socket we create is DIR/db/mysql.sock
MAX_DIR_LEN = 108 - 1 - len("/db/mysql.sock")

# Inherited settings that would redirect or reformat the client commands (e.g. when the tests
# themselves run inside a Slurm job).
_CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_", "SINFO_",
                        "SCONTROL_", "SCANCEL_", "SACCTMGR_")


def missing_requirements(with_dbd=True):
    """What this machine lacks to run the cluster, as human-readable strings (empty: all there)."""
    missing = []
    path = search_path()
    names = BINARIES + (DBD_BINARIES if with_dbd else ())
    absent = [n for n in names if shutil.which(n, path=path) is None]
    if absent:
        packages = DEBIAN_PACKAGES + (" " + DEBIAN_DBD_PACKAGES if with_dbd else "")
        missing.append("commands %s (Debian: apt-get install %s)" % (" ".join(absent), packages))
    if os.geteuid() != 0:
        missing.append("root (the daemons run as the invoking user, slurmd needs root)")
    return missing


def require_cluster_support(with_dbd=True):
    """Skip on a developer machine without Slurm; fail in CI, where a skip would hide a broken install."""
    require("Slurm test cluster", missing_requirements(with_dbd))


def _port_free(port):
    # Slurm's daemons bind 0.0.0.0 and MariaDB 127.0.0.1: the port must be free for both.
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port_base(count=4, low=20000, high=30000):
    """A port P with P..P+count-1 all free on 127.0.0.1 and 0.0.0.0.

    The range stays below Linux's ephemeral ports (32768+), so that client connections do not take
    them between this check and the daemons' start; the random start makes two sessions starting
    at once unlikely to pick the same ports.
    """
    start = random.randrange(low, high - count)
    for base in list(range(start, high - count)) + list(range(low, start)):
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no %d consecutive free ports in %d..%d" % (count, low, high))


def _read_proc(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def tail_file(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(%s)" % e


def wait_for(predicate, timeout=30, interval=0.25, what="condition"):
    """Poll ``predicate()`` until it returns something true; return that, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(interval)


class SlurmCluster:
    """One cluster: slurmctld on ``port``, slurmd on port+1, slurmdbd on port+2, MariaDB on port+3."""

    name = "blahtest"  # ClusterName in slurm.conf (for sacct -M / squeue -M)

    def __init__(self, directory, port=None, with_dbd=True, min_job_age=None):
        self.directory = os.path.abspath(str(directory))
        if len(self.directory) > MAX_DIR_LEN:
            raise ValueError("cluster directory too long for its unix sockets (max %d characters): %s"
                             % (MAX_DIR_LEN, self.directory))
        self.port = free_port_base() if port is None else int(port)
        self.with_dbd = with_dbd
        self.min_job_age = min_job_age
        self.conf = os.path.join(self.directory, "slurm.conf")
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
        env["PATH"] = search_path()
        env["SLURM_CONF"] = self.conf
        self.env = env
        self.start_seconds = None
        self.stop_seconds = None

    def __repr__(self):
        return "SlurmCluster(%r, %d, with_dbd=%r)" % (self.directory, self.port, self.with_dbd)

    # --- whole cluster -------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        """Start all daemons and wait until the node is idle; on failure stop what did start."""
        env = dict(self.env, WITH_DBD="1" if self.with_dbd else "0")
        if self.min_job_age is not None:
            env["MIN_JOB_AGE"] = str(int(self.min_job_age))
        os.makedirs(self.directory, exist_ok=True)
        log = os.path.join(self.directory, "up.log")
        t0 = time.monotonic()
        try:
            # Output to a file, not a pipe: the daemons inherit it, and reading a pipe to its end
            # would wait for them to exit.
            with open(log, "wb") as out:
                rc = subprocess.call(["bash", UP_SCRIPT, self.directory, str(self.port)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            rc = "timeout after %d s" % timeout
        except BaseException:
            self.stop()  # interrupted (e.g. pytest-timeout): leave no daemons behind
            raise
        self.start_seconds = time.monotonic() - t0
        if rc != 0:
            self.stop()
            raise RuntimeError("slurm-up.sh %s %d failed (%s); its output:\n%s"
                               % (self.directory, self.port, rc, tail_file(log)))

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop everything started in the directory (safe to call more than once)."""
        t0 = time.monotonic()
        with open(os.path.join(self.directory, "down.log"), "ab") as out:
            subprocess.call(["bash", DOWN_SCRIPT, self.directory], env=self.env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            timeout=timeout, start_new_session=True)
        self.stop_seconds = time.monotonic() - t0

    def processes(self):
        """Pids of live processes belonging to this cluster (command line names the directory,
        or SLURM_CONF points at it, as for slurmdbd and the job steps)."""
        found = []
        mark, conf = self.directory + "/", "SLURM_CONF=" + self.conf
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            if (any(mark in a for a in _read_proc(pid, "cmdline")) or conf in _read_proc(pid, "environ")) \
                    and is_live(pid):
                found.append(pid)
        return found

    # --- accounting daemon only ----------------------------------------------------------------

    def _pid_file(self, daemon):
        return os.path.join(self.directory, "run", daemon + ".pid")

    def _our_pid(self, daemon):
        """The daemon's pid from its pid file, if that process is alive and ours (pids get reused)."""
        try:
            with open(self._pid_file(daemon)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if is_live(pid) and "SLURM_CONF=" + self.conf in _read_proc(pid, "environ"):
            return pid
        return None

    def stop_dbd(self, timeout=15):
        """Stop slurmdbd only (MariaDB and slurmctld keep running): accounting becomes unreachable."""
        if not self.with_dbd:
            raise RuntimeError("cluster runs without slurmdbd")
        pid = self._our_pid("slurmdbd")
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_live(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_live(pid):
            os.kill(pid, signal.SIGKILL)
            while is_live(pid):
                time.sleep(0.1)

    def start_dbd(self, timeout=30):
        """Start slurmdbd again and wait until it answers (slurmctld reconnects on its own)."""
        if not self.with_dbd:
            raise RuntimeError("cluster runs without slurmdbd")
        if self._our_pid("slurmdbd") is None:
            # slurmdbd reads slurmdbd.conf next to $SLURM_CONF, and daemonises
            subprocess.run(["/usr/sbin/slurmdbd"], env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
                           check=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.run(["sacctmgr", "-n", "list", "cluster"], timeout=5).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("slurmdbd did not come back within %d s:\n%s"
                                   % (timeout, tail_file(os.path.join(self.directory, "log", "slurmdbd.log"))))
            time.sleep(0.25)

    # --- configuration and clients -------------------------------------------------------------

    def set_min_job_age(self, seconds):
        """Change MinJobAge (how long finished jobs stay in squeue) on the running cluster."""
        with open(self.conf) as f:
            text = f.read()
        text, n = re.subn(r"(?m)^MinJobAge=.*$", "MinJobAge=%d" % int(seconds), text)
        if n != 1:
            raise RuntimeError("no MinJobAge line in " + self.conf)
        with open(self.conf, "w") as f:
            f.write(text)
        self.run(["scontrol", "reconfigure"], check=True)
        self.min_job_age = seconds

    def run(self, argv, timeout=30, check=False, input=None, cwd=None):
        """Run a Slurm client command against this cluster; text output captured.

        It runs in the cluster directory unless told otherwise: sbatch's default slurm-%j.out
        lands in the submitter's directory, which would otherwise be the repository.
        """
        return subprocess.run(list(argv), env=self.env, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                              check=check, cwd=self.directory if cwd is None else cwd)

    def wait_for(self, predicate, timeout=30, interval=0.25, what="condition"):
        return wait_for(predicate, timeout, interval, what)

    def sacct_since(self):
        """A ``-S`` value that covers every job of this cluster (sacct defaults to today 00:00)."""
        return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


# --- pytest fixtures ---------------------------------------------------------------------------

_clusters = Shared("the Slurm test cluster")


def slurm_cluster_fixture(tmp_path_factory, with_dbd=True, min_job_age=None):
    """Body of a session fixture: yields the session's cluster of this configuration, stopped
    after its last user is torn down. Skips (fails under CI) when Slurm is not installed."""
    require_cluster_support(with_dbd)

    def start():
        directory = tmp_path_factory.mktemp("slurm-dbd" if with_dbd else "slurm")
        cluster = SlurmCluster(directory, free_port_base(), with_dbd=with_dbd, min_job_age=min_job_age)
        cluster.start()
        return cluster
    yield from _clusters.use((with_dbd, min_job_age), start, lambda cluster: cluster.stop())


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The session's Slurm cluster with accounting (slurmdbd + MariaDB), MinJobAge 300 s."""
    yield from slurm_cluster_fixture(tmp_path_factory)
