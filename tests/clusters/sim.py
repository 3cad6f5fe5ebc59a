"""Simulated batch systems (conformance/sim) installed for one test: commands on PATH, state in a tmp dir.

    from tests.clusters.sim import SimSystem

    @pytest.fixture
    def pbs(tmp_path):
        return SimSystem(tmp_path, "pbs", ["qsub", "qstat", "qdel", "qhold", "qrls"], flavour="torque")

``env`` goes to blahpd's environment (``env_for(home, config, sim.env)``); ``run`` calls one of the
simulated commands the way blahpd would; ``advance``/``fault``/``calls``/``configure`` steer and
observe the simulated system.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from conformance.sim import core  # noqa: E402


class SimSystem:
    def __init__(self, base_dir, system, commands, **settings):
        self.system = system
        self.state_dir = os.path.join(str(base_dir), "%s-state" % system)
        self.bin_dir = os.path.join(str(base_dir), "%s-bin" % system)
        self.env = core.install(system, self.bin_dir, self.state_dir, commands, settings)

    def run(self, argv, check=False, timeout=60):
        env = dict(os.environ)
        env.update(self.env)
        return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              check=check, timeout=timeout)

    def configure(self, **settings):
        core.configure(self.state_dir, **settings)

    def advance(self, seconds):
        core.advance(self.state_dir, seconds)

    def fault(self, command, **kw):
        core.add_fault(self.state_dir, command, **kw)

    def clear_faults(self):
        core.clear_faults(self.state_dir)

    def calls(self, command=None):
        return core.calls(self.state_dir, command)

    def jobs(self):
        return core.jobs(self.state_dir)
