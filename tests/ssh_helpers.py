"""Shared bits of the gahp-ssh tests: a fake GAHP and a driver for the launcher as a subprocess."""

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

BANNER = "$GahpVersion: 1.0.0 Nov 22 2026 fake-gahp $"

# A GAHP in bash: banner, then one reply per command line. "ERR text" writes to stderr,
# "EXIT n" exits n, "SLEEP s" sleeps, "QUIT" answers S and exits 0. EOF on stdin ends it with 0.
FAKE_GAHP = r"""#!/bin/bash
echo '%s'
while IFS= read -r line; do
  set -- $line
  case "$1" in
    QUIT) echo S; exit 0 ;;
    ECHO) shift; echo "S $*" ;;
    ERR) shift; echo "$*" >&2; echo S ;;
    EXIT) exit "$2" ;;
    SLEEP) sleep "$2"; echo S ;;
    PID) echo "S $$" ;;
    ENV) echo "S $BLAHPD_LOCATION|$GLITE_LOCATION" ;;
    *) echo "E unknown" ;;
  esac
done
exit 0
""" % BANNER


def launcher_env(home, extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "CONDOR_INHERIT")}
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


def launcher_argv(*args):
    return [sys.executable, "-m", "gahp.ssh.launcher"] + [str(a) for a in args]


class Gahp:
    """A running gahp-ssh with pipes; line-oriented helpers with timeouts."""

    def __init__(self, argv, env):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self._buf = {1: b"", 2: b""}
        self.stderr_lines = []

    def _pump(self, timeout):
        streams = [s for s in (self.proc.stdout, self.proc.stderr) if s is not None and not s.closed]
        if not streams:
            return False
        ready, _, _ = select.select(streams, [], [], timeout)
        for s in ready:
            data = os.read(s.fileno(), 65536)
            key = 1 if s is self.proc.stdout else 2
            if not data:
                s.close()
                continue
            self._buf[key] += data
        while b"\n" in self._buf[2]:
            line, self._buf[2] = self._buf[2].split(b"\n", 1)
            self.stderr_lines.append(line.decode("utf-8", "replace"))
        return bool(ready)

    def readline(self, timeout=20):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf[1]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no stdout line in %g s; stderr: %r" % (timeout, self.stderr_lines))
            if self.proc.stdout.closed:
                raise EOFError("stdout closed; stderr: %r" % (self.stderr_lines,))
            self._pump(min(left, 0.5))
        line, self._buf[1] = self._buf[1].split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def ask(self, line, timeout=20):
        self.send(line)
        return self.readline(timeout)

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout=20):
        """Exit code, draining output meanwhile (so a full pipe cannot block the child)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("gahp-ssh still running after %g s; stderr: %r" % (timeout, self.stderr_lines))
            self._pump(0.05)
        # the master may hold our stdout a moment longer; read what is there
        end = time.monotonic() + 2
        while time.monotonic() < end and self._pump(0.05):
            pass
        if self._buf[2]:
            self.stderr_lines.append(self._buf[2].decode("utf-8", "replace"))
            self._buf[2] = b""
        return self.proc.returncode

    def stdout_rest(self):
        return self._buf[1].decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except OSError:
                pass


def run_launcher(argv, env, input=b"", timeout=60):
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          timeout=timeout)


def master_pids(control_dir):
    """pids of masters whose control socket lives in ``control_dir`` (from /proc cmdlines)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"gahp.ssh.master" in cmd and any(a.startswith(str(control_dir).encode()) for a in cmd):
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            found.append(int(entry))
    return found


@contextlib.contextmanager
def private_home():
    """A short HOME for gahp-ssh under /tmp (pytest's temp paths can exceed sun_path); the
    masters started with it are stopped afterwards."""
    home = tempfile.mkdtemp(prefix="gsh-", dir="/tmp")
    try:
        yield home
    finally:
        for pid in master_pids(home):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        shutil.rmtree(home, ignore_errors=True)
