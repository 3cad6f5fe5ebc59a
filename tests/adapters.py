"""What the adapters' unit tests share: an adapter on a plain runner, a bare job, its directives."""
from blahp.backend import BackendContext
from blahp.config import Config
from blahp.jobmodel import JobDescription
from blahp.runner import CommandRunner
from gahp.runtime import NullLog


def make_backend(cls, runner=None, **cfg):
    """``cls`` with configuration ``cfg`` (no environment from this process) on ``runner``."""
    runner = runner or CommandRunner({"PATH": "/usr/bin:/bin"})
    return cls(BackendContext(Config(cfg, base_environ={}), runner, "/nonexistent", NullLog()))


def bare_job(**fields):
    """A job description with a key and nothing else set but ``fields``."""
    j = JobDescription()
    j.key, j.h12, j.iwd = "home_bl_x", "3f9a0c1d2e4b", "/tmp"
    for k, v in fields.items():
        setattr(j, k, v)
    return j


def directive_lines(text, prefix):
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]
