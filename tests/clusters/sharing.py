"""What the private services of the test suite (Slurm, Grid Engine, sshd) share: the rule that
a missing service skips on a developer machine but fails in CI, and one started service per
configuration for a whole pytest session.

Importing a session fixture into several test modules gives each module its own fixture
definition, hence its own set-up: services are therefore shared here, counted by users.
"""
import os

import pytest


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def search_path():
    """PATH plus the sbin directories: daemons live there, not on a normal user's PATH."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(path + [d for d in ("/usr/sbin", "/sbin") if d not in path])


def is_live(pid):
    # A zombie counts as gone: it serves nothing, yet kill(pid, 0) would still succeed.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    """The raw ``/proc/PID/cmdline`` (NUL-separated), b"" for a process that is gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def require(what, missing):
    """Skip on a developer machine lacking ``missing`` (strings); fail in CI, where a skip would
    hide a broken install."""
    if not missing:
        return
    reason = "%s needs %s" % (what, "; ".join(missing))
    if in_ci():
        pytest.fail(reason + " [CI is set: the install step should have provided them]", pytrace=False)
    pytest.skip(reason)


class Shared:
    """The started services of one kind, by configuration key."""

    def __init__(self, what):
        self.what = what
        self._entries = {}
        self._failed = {}  # a start that failed is not retried by every further module

    def use(self, key, start, stop):
        """Body of a session fixture: yields ``start()``'s service for ``key`` (started on first
        use), and calls ``stop(service)`` once its last user is torn down."""
        if key in self._failed:
            pytest.fail("%s failed to start earlier in this session: %s" % (self.what, self._failed[key]),
                        pytrace=False)
        if key not in self._entries:
            try:
                service = start()
            except Exception as e:
                self._failed[key] = e
                raise
            self._entries[key] = [service, 0]
        entry = self._entries[key]
        entry[1] += 1
        try:
            yield entry[0]
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[key]
                stop(entry[0])
