import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # for the conformance package

BANNER = rb"$GahpVersion: 1.8.0 Mar 31 2008 INFN\ blahpd\ (poly,new_esc_format) $"
BANNER_LINE = BANNER + b"\r\n"
# protocol.md §7.2, byte for byte
COMMANDS_REPLY = (b"S ASYNC_MODE_OFF ASYNC_MODE_ON BLAH_GET_HOSTPORT BLAH_JOB_CANCEL BLAH_JOB_HOLD "
                  b"BLAH_JOB_REFRESH_PROXY BLAH_JOB_RESUME BLAH_JOB_SEND_PROXY_TO_WORKER_NODE BLAH_JOB_STATUS "
                  b"BLAH_JOB_SUBMIT BLAH_PING BLAH_SET_GLEXEC_DN BLAH_SET_GLEXEC_OFF BLAH_SET_SUDO_ID "
                  b"BLAH_SET_SUDO_OFF COMMANDS QUIT RESULTS VERSION\r\n")


def blahpd_command():
    """The installed console script next to this interpreter (what `pip install .` made)."""
    script = os.path.join(os.path.dirname(sys.executable), "blahpd")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "blahp"]


@pytest.fixture
def server_env(tmp_path):
    """An isolated environment: its own HOME (log, state) and an empty config file."""
    home = tmp_path / "home"
    home.mkdir()
    cfg = tmp_path / "blah.config"
    cfg.write_text("# test config\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_"))}
    env["HOME"] = str(home)
    env["BLAHPD_CONFIG_LOCATION"] = str(cfg)
    return env


def local_server_env(tmp_path, config_text):
    """Environment for the installed blahpd on the local backend: its own HOME holding
    ``blah.config``, no inherited blahp/batch settings, and no PYTHONPATH (a src/ on it would hide
    blahp.backends, installed from the top-level backends/ directory)."""
    home = tmp_path / "home"
    home.mkdir()
    cfg = home / "blah.config"
    cfg.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_", "SLURM_", "GAHP_SHELL"))}
    env.pop("PYTHONPATH", None)
    env["HOME"] = str(home)
    env["BLAHPD_CONFIG_LOCATION"] = str(cfg)
    return env


def run_blahpd(data: bytes, env, args=(), timeout=30):
    return subprocess.run(blahpd_command() + list(args), input=data, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


# CI machines are small and shared: judge properties by their results, not by wall time.
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("pyblahp", deadline=None)
_hsettings.load_profile("pyblahp")
