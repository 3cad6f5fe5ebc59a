"""A private single-host Son of Grid Engine 8.1.9 cell for integration tests.

The cell is started by ``sge-up.sh`` and stopped by ``sge-down.sh`` next to this file; the
daemons are stopped by pid file only, never by name, so that several cells (and other people's)
can run side by side on one machine.

Use from a test module::

    from tests.clusters.sge import sge_cell  # noqa: F401

    def test_something(sge_cell):
        sge_cell.run(["qsub", "-terse", "-b", "y", "/bin/true"])

The cell's directory is *not* under pytest's base temp: that one is mode 0700 and the qmaster
runs as ``sgeadmin``, which must reach its spool (tried: the Berkeley DB spool cannot be
created).  It is a short ``/tmp/pyblahp-sge-*`` directory, removed after a clean stop.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.clusters.sharing import Shared, require
from tests.clusters.slurm import free_port_base, tail_file, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
UP_SCRIPT = os.path.join(HERE, "sge-up.sh")
DOWN_SCRIPT = os.path.join(HERE, "sge-down.sh")

DEBIAN_PACKAGES = "gridengine-master gridengine-exec gridengine-client"
BINARIES = ("sge_qmaster", "sge_execd", "qsub", "qstat", "qacct", "qdel", "qhold", "qrls", "qconf", "qmod")
DAEMON_DIR = "/usr/sbin"
SPOOLINIT = "/usr/lib/gridengine/spoolinit"
CELL = "blahtest"
SLOTS = 8  # the tests keep several sleeping jobs at once; the queue must not fill up

START_TIMEOUT = 60
STOP_TIMEOUT = 60
# Grid Engine's own client settings that would point the commands elsewhere
_CLIENT_ENV = ("SGE_ROOT", "SGE_CELL", "SGE_QMASTER_PORT", "SGE_EXECD_PORT", "SGE_CLUSTER_NAME", "SGE_ARCH",
               "SGE_LONG_QNAMES", "SGE_SINGLE_LINE", "SGE_DEBUG_LEVEL")


def missing_requirements():
    """What this machine lacks to run a cell, as human-readable strings (empty: all there)."""
    missing = []
    path = os.environ.get("PATH", os.defpath) + os.pathsep + DAEMON_DIR
    absent = [n for n in BINARIES if shutil.which(n, path=path) is None]
    if not os.path.exists(SPOOLINIT):
        absent.append(SPOOLINIT)
    if absent:
        missing.append("commands %s (Debian: apt-get install %s, debconf preseeded)"
                       % (" ".join(absent), DEBIAN_PACKAGES))
    try:
        import pwd
        pwd.getpwnam("sgeadmin")
    except KeyError:
        missing.append("user sgeadmin (made by gridengine-common)")
    if os.geteuid() != 0:
        missing.append("root (the scripts start daemons and chown the spool to sgeadmin)")
    return missing


def require_cell_support():
    """Skip on a developer machine without Grid Engine; fail in CI, where a skip would hide a broken install."""
    require("Grid Engine test cell", missing_requirements())


class SgeCell:
    """One cell: sge_qmaster on ``port``, sge_execd on port+1, queue ``all.q@localhost``."""

    cell = CELL

    def __init__(self, directory, port=None, slots=SLOTS):
        self.directory = os.path.abspath(str(directory))
        self.port = free_port_base(count=2) if port is None else int(port)
        self.slots = slots
        self.root = os.path.join(self.directory, "root")
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
        env.update(SGE_ROOT=self.root, SGE_CELL=CELL, SGE_QMASTER_PORT=str(self.port),
                   SGE_EXECD_PORT=str(self.port + 1))
        self.env = env
        self.start_seconds = None
        self.stop_seconds = None

    def __repr__(self):
        return "SgeCell(%r, %d)" % (self.directory, self.port)

    @property
    def settings_file(self):
        return os.path.join(self.root, CELL, "common", "settings.sh")

    @property
    def accounting_file(self):
        return os.path.join(self.root, CELL, "common", "accounting")

    def start(self, timeout=START_TIMEOUT):
        """Start qmaster and execd and wait until the queue is usable; on failure stop what did start."""
        log = os.path.join(self.directory, "up.log")
        t0 = time.monotonic()
        try:
            # output to a file, not a pipe: the daemons inherit it
            with open(log, "wb") as out:
                rc = subprocess.call(["bash", UP_SCRIPT, self.directory, str(self.port)],
                                     env=dict(self.env, SLOTS=str(self.slots)), cwd=self.directory,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            rc = "timeout after %d s" % timeout
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        if rc != 0:
            self.stop()
            raise RuntimeError("sge-up.sh %s %d failed (%s); its output:\n%s\nqmaster messages:\n%s"
                               % (self.directory, self.port, rc, tail_file(log),
                                  tail_file(os.path.join(self.directory, "spool", "qmaster", "messages"))))

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop everything started in the directory (safe to call more than once); True when clean."""
        t0 = time.monotonic()
        with open(os.path.join(self.directory, "down.log"), "ab") as out:
            rc = subprocess.call(["bash", DOWN_SCRIPT, self.directory], env=self.env, cwd="/",
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 timeout=timeout, start_new_session=True)
        self.stop_seconds = time.monotonic() - t0
        return rc == 0

    def run(self, argv, timeout=30, check=False, cwd=None, env=None):
        """Run a Grid Engine client command against this cell; text output captured."""
        return subprocess.run(list(argv), env=dict(self.env, **(env or {})), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                              check=check, cwd=self.directory if cwd is None else cwd)

    def wait_for(self, predicate, timeout=30, interval=0.25, what="condition"):
        return wait_for(predicate, timeout, interval, what)

    def in_qstat(self, batch_id):
        r = self.run(["qstat", "-u", "*"], check=True)
        return any(line.split()[:1] == [str(batch_id)] for line in r.stdout.splitlines())

    def has_accounting(self, batch_id):
        return self.run(["qacct", "-j", str(batch_id)]).returncode == 0


# --- pytest fixtures ---------------------------------------------------------------------------

_cells = Shared("the Grid Engine test cell")


def sge_cell_fixture(tmp_path_factory):
    """Body of a session fixture: yields the session's cell, stopped after its last user is torn
    down. Skips (fails under CI) when Grid Engine is not installed."""
    require_cell_support()

    def start():
        directory = tempfile.mkdtemp(prefix="pyblahp-sge-", dir="/tmp")
        os.chmod(directory, 0o755)
        cell = SgeCell(directory)
        cell.start()
        return cell

    def stop(cell):
        if cell.stop():
            # keep the logs of the session next to pytest's other temp files
            keep = tmp_path_factory.mktemp("sge-logs")
            for name in ("up.log", "down.log", "init.log", "spool/qmaster/messages"):
                src = os.path.join(cell.directory, name)
                if os.path.exists(src):
                    shutil.copy(src, str(keep))
            shutil.rmtree(cell.directory, ignore_errors=True)
    yield from _cells.use("cell", start, stop)


@pytest.fixture(scope="session")
def sge_cell(tmp_path_factory):
    """The session's Grid Engine cell (qacct flush time 1 s, scheduler interval 1 s)."""
    yield from sge_cell_fixture(tmp_path_factory)
