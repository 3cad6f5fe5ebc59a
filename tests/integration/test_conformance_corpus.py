"""The whole conformance corpus (conformance/sessions, every subdirectory) against the installed blahpd.

``gahp-conformance`` runs as a subprocess, as an administrator would run it, with ``--require-all``
so that nothing is skipped. The sessions that need a real batch system (``@ needs: slurm`` / ``sge``)
run with the session's Slurm cluster (tests/clusters/slurm.py) and Grid Engine cell
(tests/clusters/sge.py): their environments are merged into the runner's, which passes them on to
every server it starts, and ``--provide`` declares them. Everything is one run, so a session added
later is replayed without any change here. On a machine without Slurm or Grid Engine that run is
skipped (outside CI; under CI it fails): run ``gahp-conformance --exclude slurm,sge`` there.
"""
import filecmp
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conformance.cli import CORPUS, find_sessions
from conformance.session import SessionSyntaxError, parse
from tests.clusters import sge as sge_mod
from tests.clusters import slurm as slurm_mod
from tests.clusters.sge import sge_cell  # noqa: F401  (fixture, through request.getfixturevalue)
from tests.clusters.slurm import slurm_cluster  # noqa: F401  (fixture, through request.getfixturevalue)
from tests.conftest import ROOT, blahpd_command

MIN_SESSIONS = 60
JOBS = 3
RUN_TIMEOUT = 840          # seconds for one gahp-conformance run; below the test's own timeout
TEST_TIMEOUT = 900         # pytest-timeout (the default of 120 s is too short for the corpus)
# need -> (session fixture, does this machine lack what it takes to start it)
REAL = {
    "slurm": ("slurm_cluster", slurm_mod.missing_requirements),
    "sge": ("sge_cell", sge_mod.missing_requirements),
}
# The batch systems' own client settings, which must come from their fixture's environment only.
CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_", "SINFO_", "SCONTROL_",
                       "SCANCEL_", "SACCTMGR_", "SGE_")

# Short status TTLs as in the lifecycle tests, so that real jobs' states are seen within a second
# or two. The simulated systems add their own settings after these (conformance/envs.py); sessions
# that need other values say so with "@ config:".
CONFIG = """# tests/integration/test_conformance_corpus.py
pyblahp_status_ttl_min=1
pyblahp_status_ttl_max=2
pyblahp_command_timeout=20
"""


def corpus_files():
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(CORPUS) for f in fs if f.endswith(".session"))


def base_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("BLAHPD_", "GLITE_", "PYTHONPATH") + CLIENT_ENV_PREFIXES)}


def merge_env(env, system_env):
    """Add to ``env`` what a batch system's fixture set differently from the test's own environment."""
    env.update((k, v) for k, v in system_env.items() if os.environ.get(k) != v)
    return env


def _installed_harness_is_current():
    """The conformance package the console script imports has the same code as this checkout.

    The lead reinstalls the package now and then; until then the installed harness may lag the
    repository's, and the corpus may use what only the repository's knows.
    """
    probe = subprocess.run([sys.executable, "-c", "import conformance, os; print(os.path.dirname(conformance.__file__))"],
                           cwd="/", env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           universal_newlines=True, timeout=60)
    installed = probe.stdout.strip()
    here = os.path.join(ROOT, "conformance")
    if probe.returncode != 0 or not installed:
        return False
    if os.path.realpath(installed) == os.path.realpath(here):
        return True   # an editable install
    for d, _, fs in os.walk(here):
        rel = os.path.relpath(d, here)
        for f in fs:
            if f.endswith(".py"):
                other = os.path.join(installed, rel, f)
                if not os.path.exists(other) or not filecmp.cmp(os.path.join(d, f), other, shallow=False):
                    return False
    return True


def conformance_command():
    """The installed console script next to this interpreter, when it runs this checkout's harness;
    else the harness module of the checkout (run from the repository root)."""
    script = os.path.join(os.path.dirname(sys.executable), "gahp-conformance")
    if os.path.exists(script) and _installed_harness_is_current():
        return [script]
    return [sys.executable, "-m", "conformance.cli"]


def replay(tmp_path, sessions, env, provide=(), what="the corpus", paths=None):
    """Run gahp-conformance over ``sessions`` (given as ``paths`` if set: files or directories);
    fail with its whole report unless every one of them passed."""
    cfg = tmp_path / "blah.config"
    cfg.write_text(CONFIG)
    junit = tmp_path / "conformance-junit.xml"
    options = ["--server", " ".join(shlex.quote(a) for a in blahpd_command()),
               "--config", str(cfg), "--require-all", "-j", str(JOBS), "--junit", str(junit), "-v"]
    if provide:
        options += ["--provide", ",".join(provide)]
    paths = list(paths) if paths else [s.path for s in sessions]
    argv = conformance_command() + options + paths
    shown = " ".join(shlex.quote(a) for a in argv[:len(argv) - len(paths)])
    shown += " " + (" ".join(paths) if len(paths) <= 3 else "<%d session files>" % len(paths))
    try:
        # from the repository root: `python -m conformance.cli` imports the checkout's harness
        p = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail("%s\ndid not finish within %d s; its report so far:\n%s" % (shown, RUN_TIMEOUT, out),
                    pytrace=False)
    report = "%s\nexit status %d; its report:\n%s" % (shown, p.returncode, p.stdout)
    if p.stderr.strip():
        report += "\nits stderr (last lines):\n" + "\n".join(p.stderr.splitlines()[-40:])
    assert p.returncode == 0, "%s did not pass:\n%s" % (what, report)
    suite = ET.parse(str(junit)).getroot()
    assert len(suite.findall("testcase")) == len(sessions), report
    assert [suite.get(k) for k in ("failures", "errors", "skipped")] == ["0", "0", "0"], report
    return p.stdout


# --- the corpus itself -------------------------------------------------------------------------

def test_every_session_of_the_corpus_parses():
    errors = []
    for path in corpus_files():
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            try:
                parse(f.read(), path)
            except SessionSyntaxError as e:
                errors.append(str(e))
    assert not errors, "sessions that do not parse:\n" + "\n".join(errors)
    assert len(find_sessions([CORPUS])) == len(corpus_files())


def test_the_corpus_has_enough_sessions():
    n = len(corpus_files())
    assert n >= MIN_SESSIONS, "the corpus has %d sessions, fewer than %d" % (n, MIN_SESSIONS)


def test_each_real_batch_system_has_sessions_of_its_own():
    # issue 6: at least 8 sessions for Slurm and 6 for Grid Engine, besides the recorded transcripts
    for need, least in (("slurm", 8), ("sge", 6)):
        mine = [s for s in find_sessions([os.path.join(CORPUS, need)]) if s.needs == need]
        assert len(mine) >= least, "conformance/sessions/%s has %d sessions that need %s" % (need, len(mine), need)


# --- replaying it --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT)
def test_the_whole_corpus_passes(tmp_path, request):
    sessions = find_sessions([CORPUS])
    assert len(sessions) >= MIN_SESSIONS
    env, provide = base_env(), []
    for need, (fixture, _) in sorted(REAL.items()):
        if any(s.needs == need for s in sessions):
            # skips on a machine that cannot run it (fails under CI: tests/clusters)
            system = request.getfixturevalue(fixture)
            merge_env(env, system.env)
            provide.append(need)
    replay(tmp_path, sessions, env, provide, paths=[CORPUS])   # named as in the corpus: slurm/ping, ...
