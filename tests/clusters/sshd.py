"""A private OpenSSH ``sshd`` on 127.0.0.1 for the SSH-layer tests (test-environment.md §6).

Logins are as the unprivileged test user ``blahtest`` (created when absent, test-environment.md §2)
with a client key made for this server; the host key is checked against a ``known_hosts`` of this
server only. The daemon is stopped by pid file only, never by name, so that several servers (and the
machine's own sshd) can run side by side.

Use from a test module::

    from tests.clusters.sshd import sshd  # noqa: F401

    def test_something(sshd):
        r = subprocess.run(sshd.ssh_argv("echo ok"), stdin=subprocess.DEVNULL, capture_output=True)

A module that needs a differently configured server makes its own session fixture::

    @pytest.fixture(scope="session")
    def strict_sshd(tmp_path_factory):
        yield from sshd_fixture(tmp_path_factory, max_sessions=1, max_startups="1")

The shared server is shared by the whole session: a test that changes it (``rotate_host_key``,
``stop``) should use a server of its own (``Sshd(...)`` directly, or the factory). The test user's
home is shared by every server and every pytest worker on the machine.

The server's directory is *not* under pytest's base temp: that one is mode 0700, and sshd reads
``AuthorizedKeysFile`` with the test user's identity, so every directory above it must be
searchable by that user. It is a short ``/tmp/pyblahp-sshd-*`` directory, removed after a clean stop.
"""

import collections
import fcntl
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from tests.clusters.sharing import Shared, is_live, require, search_path
from tests.clusters.slurm import free_port_base, tail_file

DEBIAN_PACKAGES = "openssh-server openssh-client"
SSHD = "/usr/sbin/sshd"
CLIENT_BINARIES = ("ssh", "ssh-keygen")
PRIVSEP_DIR = "/run/sshd"  # sshd refuses to start without it; Debian's init script makes it
TEST_USER = "blahtest"
USER_LOCK = "/tmp/pyblahp-test-user.lock"

START_TIMEOUT = 30
STOP_TIMEOUT = 15

# Log lines of LogLevel VERBOSE (OpenSSH 9.2): one per TCP connection, one per successful login.
_CONNECTION_RE = re.compile(r"^Connection from \S+ port \d+ on ", re.M)
_LOGIN_RE = re.compile(r"^Accepted publickey for (\S+) from ", re.M)


def missing_requirements(user=TEST_USER):
    """What this machine lacks to run the server, as human-readable strings (empty: all there)."""
    missing = []
    path = search_path()
    absent = [n for n in CLIENT_BINARIES if shutil.which(n, path=path) is None]
    if not os.access(SSHD, os.X_OK):
        absent.append(SSHD)
    if absent:
        missing.append("commands %s (Debian: apt-get install %s)" % (" ".join(absent), DEBIAN_PACKAGES))
    if os.geteuid() != 0:
        missing.append("root (sshd must switch to the test user %s)" % user)
    else:
        try:
            pwd.getpwnam(user)
        except KeyError:
            absent = [n for n in ("useradd", "usermod") if shutil.which(n, path=path) is None]
            if absent:
                missing.append("test user %s, or %s to create it (Debian: passwd)" % (user, " ".join(absent)))
    return missing


def require_sshd_support(user=TEST_USER):
    """Skip on a developer machine without OpenSSH; fail in CI, where a skip would hide a broken install."""
    require("sshd test server", missing_requirements(user))


def _shadow_password(user):
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == user and len(fields) > 1:
                    return fields[1]
    except OSError:
        pass
    return None


def ensure_test_user(user=TEST_USER):
    """Create the login user when absent and make sure sshd will let it in; its passwd entry.

    sshd refuses key logins to locked accounts ("!" in the shadow password, which is how useradd
    makes them); ``*`` unlocks without allowing any password. Serialised by a lock file because
    pytest workers start their servers at the same time and useradd fails on a busy /etc/passwd.
    """
    path = search_path()
    with open(USER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run([shutil.which("useradd", path=path) or "useradd", "-m", "-s", "/bin/bash", user],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if (_shadow_password(user) or "").startswith("!"):
            subprocess.run([shutil.which("usermod", path=path) or "usermod", "-p", "*", user],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        entry = pwd.getpwnam(user)
        # an account made elsewhere (or a wiped /home) may lack its home; the tests write there
        if not os.path.isdir(entry.pw_dir):
            os.makedirs(entry.pw_dir, mode=0o755)
            os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
    return entry


# what sshd logs when it exits during start-up (taken port, unusable host key, bad config)
_FATAL_LOG = ("Cannot bind any address", "fatal:", "no hostkeys available")


def _parent_pids():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return parents


def _descendants(pid):
    parents = _parent_pids()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        todo.extend(kids)
    return found


def _searchable_by(path, uid):
    """Can ``uid`` reach ``path`` (each directory above searchable)? Ignores groups and ACLs: the
    test user shares no group with the root-owned directories this is about."""
    path = os.path.abspath(path)
    while True:
        parent = os.path.dirname(path)
        st = os.stat(parent)
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXOTH
        if not st.st_mode & bit:
            return parent
        if parent == path or parent == "/":
            return None
        path = parent


class Sshd:
    """One sshd on ``host``:``port`` with its own host key, client key, known_hosts and log.

    ``max_sessions`` and ``max_startups`` become ``MaxSessions`` / ``MaxStartups`` (an int, or
    sshd's ``start:rate:full`` string). ``extra_config`` lines override the defaults keyword by
    keyword (sshd itself would keep the *first* value of a keyword); ``Match`` blocks go last.
    """

    host = "127.0.0.1"

    def __init__(self, directory, port=None, max_sessions=None, max_startups=None, extra_config=(),
                 user=TEST_USER):
        self.directory = os.path.abspath(str(directory))
        self.port = free_port_base(count=1) if port is None else int(port)
        self.max_sessions = max_sessions
        self.max_startups = max_startups
        self.extra_config = tuple(extra_config)
        self.user = user
        d = self.directory
        self.config = os.path.join(d, "sshd_config")
        self.log = os.path.join(d, "sshd.log")
        self.pid_file = os.path.join(d, "sshd.pid")
        self.host_key = os.path.join(d, "host_ed25519")
        self.host_key_pub = self.host_key + ".pub"
        self.client_key = os.path.join(d, "client_ed25519")
        self.client_key_pub = self.client_key + ".pub"
        self.known_hosts = os.path.join(d, "known_hosts")
        self.auth_dir = os.path.join(d, "auth")
        self.start_seconds = None
        self.stop_seconds = None
        self._start_mark = 0
        self.daemon = SSHD  # what start() runs (a test may put a slow stand-in in front of it)

    def __repr__(self):
        return "Sshd(%r, %d)" % (self.directory, self.port)

    @property
    def destination(self):
        return "%s@%s" % (self.user, self.host)

    @property
    def home(self):
        return pwd.getpwnam(self.user).pw_dir

    # --- configuration -------------------------------------------------------------------------

    def config_lines(self):
        settings = collections.OrderedDict([
            ("Port", str(self.port)),
            ("ListenAddress", self.host),
            ("HostKey", self.host_key),
            ("PidFile", self.pid_file),
            ("UsePAM", "no"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("PubkeyAuthentication", "yes"),
            ("AuthorizedKeysFile", os.path.join(self.auth_dir, "%u")),
            ("StrictModes", "no"),
            ("PermitRootLogin", "prohibit-password"),
            ("AllowTcpForwarding", "yes"),
            ("Subsystem", "sftp internal-sftp"),
            ("LogLevel", "VERBOSE"),
        ])
        if self.max_sessions is not None:
            settings["MaxSessions"] = str(int(self.max_sessions))
        if self.max_startups is not None:
            settings["MaxStartups"] = str(self.max_startups)
        keys = {k.lower(): k for k in settings}
        tail = []
        for line in self.extra_config:
            words = line.strip().split(None, 1)
            if not words or words[0].startswith("#"):
                continue
            if tail or words[0].lower() == "match":
                tail.append(line.strip())
                continue
            value = words[1] if len(words) > 1 else ""
            settings[keys.setdefault(words[0].lower(), words[0])] = value
        return ["%s %s" % kv for kv in settings.items()] + tail

    def _keygen(self, path, comment):
        for p in (path, path + ".pub"):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, PATH=search_path()))

    def _prepare(self):
        entry = ensure_test_user(self.user)
        os.makedirs(self.auth_dir, exist_ok=True)
        os.chmod(self.directory, 0o755)
        os.chmod(self.auth_dir, 0o755)
        blocked = _searchable_by(os.path.join(self.auth_dir, self.user), entry.pw_uid)
        if blocked:
            raise RuntimeError("%s is not searchable by %s, who must read its authorized keys under %s"
                               % (blocked, self.user, self.auth_dir))
        if not os.path.isdir(PRIVSEP_DIR):
            os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        if not os.path.exists(self.host_key):
            self._keygen(self.host_key, "pyblahp-test-host")
        if not os.path.exists(self.client_key):
            self._keygen(self.client_key, "pyblahp-test-client")
        auth = os.path.join(self.auth_dir, self.user)
        shutil.copyfile(self.client_key_pub, auth)
        os.chmod(auth, 0o644)
        with open(self.config, "w") as f:
            f.write("\n".join(self.config_lines()) + "\n")
        self.write_known_hosts()

    def host_key_line(self):
        """The host public key as ``type base64`` (no comment)."""
        with open(self.host_key_pub) as f:
            return " ".join(f.read().split()[:2])

    def write_known_hosts(self, path=None):
        """Write a known_hosts naming the current host key (by default the server's own file).

        Written from the key file, not ssh-keyscan, so it cannot record a key some other server on
        the port answered with.
        """
        path = path or self.known_hosts
        with open(path, "w") as f:
            f.write("[%s]:%d %s\n" % (self.host, self.port, self.host_key_line()))
        return path

    def check_config(self):
        """``sshd -t``: raise with sshd's complaint when the configuration is rejected."""
        r = subprocess.run([SSHD, "-t", "-f", self.config], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("sshd -t -f %s failed (rc %d):\n%s" % (self.config, r.returncode, r.stdout))

    def effective_config(self):
        """``sshd -T``: the settings sshd would use, keyword (lower case) -> list of values."""
        r = subprocess.run([SSHD, "-T", "-f", self.config], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=30, check=True)
        result = collections.defaultdict(list)
        for line in r.stdout.splitlines():
            words = line.split(None, 1)
            if words:
                result[words[0]].append(words[1] if len(words) > 1 else "")
        return dict(result)

    # --- daemon --------------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        """Write the configuration, start sshd and wait until the test user can log in."""
        if self.pid() is not None:
            raise RuntimeError("%r is already running (pid %d)" % (self, self.pid()))
        t0 = time.monotonic()
        self._prepare()
        self.check_config()
        log_from = self.log_mark()
        try:
            # sshd daemonises before it binds (a taken port shows as "Bind to port ... failed"
            # in its log, with exit status 0 here): the login below proves the whole chain (port
            # ours, user unlocked, authorized keys readable, host key in known_hosts).
            r = subprocess.run([self.daemon, "-f", self.config, "-E", self.log], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                               timeout=timeout, start_new_session=True)
            if r.returncode != 0:
                raise RuntimeError("sshd -f %s failed (rc %d): %s\nits log:\n%s"
                                   % (self.config, r.returncode, r.stdout, tail_file(self.log)))
            self._wait_for_login(t0 + timeout, log_from)
        except BaseException:
            self.stop()  # leave no daemon behind, also when interrupted (pytest-timeout)
            raise
        self._start_mark = self.log_mark()
        self.start_seconds = time.monotonic() - t0

    def _wait_for_login(self, deadline, log_from=0):
        # The daemon writes its pid file only after binding, and under load that can come well
        # after `sshd` returned: a missing pid file means "not up yet", not "died", until the
        # deadline -- or until the pid file has been seen, or the log says sshd gave up.
        seen = False
        while True:
            r = subprocess.run(self.ssh_argv("true", options=("ConnectTimeout=5",)), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                               timeout=max(1.0, deadline - time.monotonic()) + 5)
            if r.returncode == 0:
                return
            running = self.pid() is not None
            seen = seen or running
            gave_up = any(m in self.log_text(log_from) for m in _FATAL_LOG)
            if time.monotonic() > deadline or (seen and not running) or gave_up:
                raise RuntimeError("no login to %r (ssh rc %d): %s\n%s\nsshd log:\n%s"
                                   % (self, r.returncode, r.stdout.strip(), self._listener_state(),
                                      tail_file(self.log)))
            time.sleep(0.1)

    def _listener_state(self):
        try:
            with open(self.pid_file) as f:
                recorded = f.read().strip()
        except OSError as e:
            return "no pid file (%s)" % e.strerror
        if self.pid() is not None:
            return "the listener (pid %s) is running" % recorded
        return ("the listener (pid %s, from its pid file) is gone without a word in its log: "
                "killed by a signal it cannot log (SIGKILL), maybe by someone holding a stale pid" % recorded)

    def pid(self):
        """The listener's pid from the pid file, if that process is alive and ours (pids get reused)."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                # the listener rewrites its title, keeping the original command line in it
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        if is_live(pid) and self.config in cmdline:
            return pid
        return None

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the listener and every session it started (safe to call more than once).

        sshd's listener exits on SIGTERM but leaves open sessions running; their processes are
        found as the listener's descendants, not by name. They are frozen (SIGSTOP) until no new
        one appears, so that a session being set up cannot fork one more past the kill, then
        killed: a test server needs no graceful exit.
        """
        t0 = time.monotonic()
        pid = self.pid()
        if pid is not None:
            victims = set()
            while True:
                new = {p for p in [pid] + _descendants(pid) if is_live(p)} - victims
                if not new:
                    break
                for p in new:
                    try:
                        os.kill(p, signal.SIGSTOP)
                    except OSError:
                        pass
                victims |= new
            for p in victims:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + timeout
            while any(is_live(p) for p in victims) and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass
        self.stop_seconds = time.monotonic() - t0

    def restart(self):
        self.stop()
        self.start()

    def rotate_host_key(self, update_known_hosts=False):
        """Give the server a new host key and restart it on the same port; the new public key line.

        known_hosts keeps the old key unless asked, so that clients see a changed host key;
        ``write_known_hosts()`` puts the current key back in.
        """
        self.stop()
        self._keygen(self.host_key, "pyblahp-test-host")
        if update_known_hosts:
            self.start()
        else:
            with open(self.known_hosts) as f:
                old = f.read()
            self.start()  # writes known_hosts for its readiness login
            with open(self.known_hosts, "w") as f:
                f.write(old)
        return self.host_key_line()

    # --- clients -------------------------------------------------------------------------------

    def ssh_options(self, known_hosts=None):
        """OpenSSH client options for this server, as ``-o``/``-i``/``-p``/``-F`` arguments."""
        return ["-F", "/dev/null", "-p", str(self.port), "-i", self.client_key,
                "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "UserKnownHostsFile=%s" % (known_hosts or self.known_hosts),
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes"]

    def ssh_argv(self, *remote_cmd, options=(), known_hosts=None):
        """``ssh`` argv logging in as the test user and running ``remote_cmd`` (joined by the
        remote shell with spaces, as ssh does). ``options`` are extra ``-o`` settings."""
        argv = ["ssh"] + self.ssh_options(known_hosts)
        for o in options:
            argv += ["-o", o]
        return argv + [self.destination] + list(remote_cmd)

    def run(self, *remote_cmd, input=None, timeout=30, options=()):
        """Run a command as the test user over ssh; text output captured."""
        return subprocess.run(self.ssh_argv(*remote_cmd, options=options), input=input,
                              stdin=subprocess.DEVNULL if input is None else None, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)

    # --- log -----------------------------------------------------------------------------------

    def log_text(self, since=0):
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """A position in the log; pass it as ``since`` to count only what happens after it."""
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def count_connections(self, since=None):
        """TCP connections accepted ("Connection from" lines) since ``since`` (a ``log_mark()``);
        by default since the end of the last start, so the readiness login is not counted."""
        return len(_CONNECTION_RE.findall(self.log_text(self._start_mark if since is None else since)))

    def count_logins(self, since=None, user=None):
        """Successful public-key logins ("Accepted publickey" lines), as for ``count_connections``."""
        found = _LOGIN_RE.findall(self.log_text(self._start_mark if since is None else since))
        return len([u for u in found if user is None or u == user])

    # --- the test user's home ------------------------------------------------------------------

    def write_home_file(self, relpath, data, mode=0o644):
        """Write a file in the test user's home (e.g. ``.bash_profile``), owned by that user."""
        entry = pwd.getpwnam(self.user)
        path = os.path.join(entry.pw_dir, relpath)
        parent = os.path.dirname(path)
        missing = []
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            os.chown(d, entry.pw_uid, entry.pw_gid)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, mode)
        return path

    def remove_home_file(self, relpath):
        try:
            os.unlink(os.path.join(self.home, relpath))
        except FileNotFoundError:
            pass

    def run_as_user(self, argv, timeout=120, check=False, input=None, cwd=None, env=None):
        """Run a local command as the test user (HOME, USER set; in its home unless told otherwise),
        e.g. to install something there without going through ssh."""
        entry = pwd.getpwnam(self.user)
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": entry.pw_dir, "USER": self.user,
                "LOGNAME": self.user, "SHELL": entry.pw_shell, "LANG": "C.UTF-8"}
        return subprocess.run(list(argv), user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
                              env=dict(base, **(env or {})), cwd=cwd or entry.pw_dir, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=timeout, check=check)


# --- pytest fixtures ---------------------------------------------------------------------------

_servers = Shared("the test sshd")


def new_sshd(**kwargs):
    """An unstarted server in a fresh ``/tmp/pyblahp-sshd-*`` directory (see the module docstring)."""
    directory = tempfile.mkdtemp(prefix="pyblahp-sshd-", dir="/tmp")
    os.chmod(directory, 0o755)
    return Sshd(directory, **kwargs)


def discard_sshd(server, tmp_path_factory=None):
    """Stop a server from ``new_sshd``; keep its log under pytest's temp dir, remove its directory."""
    server.stop()
    if server.pid() is not None:
        return  # still running: keep everything for a post-mortem
    if tmp_path_factory is not None:
        keep = tmp_path_factory.mktemp("sshd-logs")
        for name in ("sshd.log", "sshd_config"):
            src = os.path.join(server.directory, name)
            if os.path.exists(src):
                shutil.copy(src, str(keep))
    shutil.rmtree(server.directory, ignore_errors=True)


def sshd_fixture(tmp_path_factory, max_sessions=None, max_startups=None, extra_config=()):
    """Body of a session fixture: yields the session's server of this configuration, stopped after
    its last user is torn down. Skips (fails under CI) when OpenSSH is not installed."""
    require_sshd_support()

    def start():
        server = new_sshd(max_sessions=max_sessions, max_startups=max_startups, extra_config=extra_config)
        server.start()
        return server
    key = (max_sessions, None if max_startups is None else str(max_startups), tuple(extra_config))
    yield from _servers.use(key, start, lambda server: discard_sshd(server, tmp_path_factory))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """The session's sshd with the default configuration (sshd's own session/start-up limits)."""
    yield from sshd_fixture(tmp_path_factory)


@pytest.fixture
def own_sshd(tmp_path_factory):
    """A server for one test, for the tests that break or stop it (rotate its host key, stop it)."""
    require_sshd_support()
    server = new_sshd()
    server.start()
    try:
        yield server
    finally:
        discard_sshd(server, tmp_path_factory)
