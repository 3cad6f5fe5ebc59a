"""Requests a batch system cannot express (submit-ad.md §7, the "—" cells) are not mapped, and
each adapter says which ones it left out, so the submit can log them.

The check is differential: an attribute is reported ignored exactly when taking it away from the
job leaves the submitted script unchanged.
"""
import pytest

from blahp.backends.condor import CondorBackend
from blahp.backends.local import LocalBackend
from blahp.backends.lsf import LsfBackend
from blahp.backends.pbs import PbsBackend
from blahp.backends.sge import SgeBackend
from blahp.backends.slurm import SlurmBackend
from blahp.jobmodel import OPTIONS
from tests.adapters import bare_job, make_backend

# values no layout rule can confuse with one another (10 CPUs on 3 hosts leave a remainder)
EVERYTHING = dict(project="atlas", runtime_s=3600, memory_mb=2000, node_number=10, smp_granularity=4,
                  host_number=3, host_smp_size=16, whole_nodes=True, gpu_number=2, gpu_model="A100",
                  gpu_mode="exclusive_process", mic_number=1)
# the layout rules (Slurm's HTCONDOR-166, TORQUE's nodes=, Pro's one chunk) branch on these
VARIANTS = {"everything": {}, "shared nodes": {"whole_nodes": False}, "no SMPGranularity": {"smp_granularity": None},
            "shared, no SMPGranularity": {"whole_nodes": False, "smp_granularity": None}}
ATTRIBUTE = {field: attr for field, attr, _ in OPTIONS}

CASES = [
    (SlurmBackend, {}, {"HostSMPSize", "GPUMode", "NodeNumber"}),
    (SgeBackend, {}, {"RequestMemory", "SMPGranularity", "HostNumber", "HostSMPSize", "WholeNodes", "GPUModel",
                      "GPUMode", "MICNumber"}),
    (SgeBackend, {"sge_memory_resource": "h_vmem"}, {"SMPGranularity", "HostNumber", "HostSMPSize", "WholeNodes",
                                                     "GPUModel", "GPUMode", "MICNumber"}),
    (PbsBackend, {}, {"GPUNumber", "GPUModel", "GPUMode", "MICNumber", "NodeNumber"}),
    (PbsBackend, {"pbs_maui": "yes"}, {"GPUModel", "MICNumber", "NodeNumber"}),
    (PbsBackend, {"pbs_pro": "yes"}, {"HostNumber", "HostSMPSize", "GPUModel", "GPUMode", "MICNumber", "NodeNumber"}),
    (LsfBackend, {}, {"RequestMemory", "HostNumber", "HostSMPSize", "GPUMode"}),
    (LsfBackend, {"lsf_request_memory": "yes"}, {"HostNumber", "HostSMPSize", "GPUMode"}),
    (CondorBackend, {}, {"BatchProject", "SMPGranularity", "HostNumber", "HostSMPSize", "WholeNodes", "GPUMode", "MICNumber"}),
    (LocalBackend, {}, set(ATTRIBUTE.values())),
]


def script(backend, **fields):
    return backend.render(bare_job(**fields), [], "echo wrapper\n", None)


@pytest.mark.parametrize("cls,config,expected", CASES,   # ids stable across processes (xdist): no set order
                         ids=["%s%s" % (c.name, "".join("-%s" % k for k in sorted(cfg))) for c, cfg, _ in CASES])
def test_ignored_exactly_when_the_script_does_not_change(cls, config, expected):
    b = make_backend(cls, **config)
    assert set(b.ignored_attributes(bare_job(**EVERYTHING))) == expected
    for variant, change in VARIANTS.items():
        job = dict(EVERYTHING, **change)
        ignored = b.ignored_attributes(bare_job(**job))
        assert all(ignored[ATTRIBUTE[f]] == v for f, v in job.items() if ATTRIBUTE[f] in ignored)
        full = script(b, **job)
        for field, value in job.items():
            if value:
                changed = script(b, **dict(job, **{field: None})) != full
                assert changed == (ATTRIBUTE[field] not in ignored), (cls.name, variant, field)


def test_nothing_requested_nothing_ignored():
    for cls, config, _ in CASES:
        assert make_backend(cls, **config).ignored_attributes(bare_job(whole_nodes=False, gpu_number=0)) == {}
