"""The BLAH_JOB_SUBMIT ad -> job description step (submit-ad.md §1, §3, §4, §6, §8, §9, §10;
protocol.md §7.3): every documented refusal with its exact code and message, and the value rules."""

import hashlib
import os
import re
import subprocess

import pytest

from blahp.classad import parse_ad
from blahp.config import Config
from blahp.jobmodel import SubmitError, build_job, job_name, key_hash
from gahp.runtime import NullLog

SUPPORTED = ("slurm", "pbs", "condor")


class RecordingLog(NullLog):
    """Keeps warning() calls so tests can see what was logged."""

    def __init__(self):
        self.warnings = []

    def warning(self, msg, **kw):
        self.warnings.append((msg, kw))


@pytest.fixture
def iwd(tmp_path):
    d = tmp_path / "iwd"
    d.mkdir()
    return d


def ad_text(iwd, *parts, gridtype="slurm", cmd="/bin/echo"):
    attrs = []
    if gridtype is not None:
        attrs.append('gridtype = "%s"' % gridtype)
    if cmd is not None:
        attrs.append('Cmd = "%s"' % cmd)
    if iwd is not None:
        attrs.append('Iwd = "%s"' % iwd)
    attrs.extend(parts)
    return "[ " + "; ".join(attrs) + " ]"


def build(text, values=None, arrays=None, supported=SUPPORTED, cwd="/", home=None, log=None):
    return build_job(parse_ad(text), Config(values=values or {}, arrays=arrays or {}),
                     supported=supported, log=log or NullLog(), cwd=cwd, home=home)


def refused(text, **kw):
    with pytest.raises(SubmitError) as info:
        build(text, **kw)
    return info.value.code, info.value.message


# --- documented refusals ---------------------------------------------------------------------

@pytest.mark.parametrize("gridtype_part", [None, 'gridtype = ""', "gridtype = 5", "gridtype = undefined",
                                           "gridtype = nosuchattr"])
def test_missing_gridtype(iwd, gridtype_part):
    parts = [gridtype_part] if gridtype_part else []
    text = ad_text(iwd, *parts, gridtype=None)
    assert refused(text) == (1, "Missing gridtype in submission classAd")


@pytest.mark.parametrize("gridtype", ["../x", "nosuchlrms", "pbs", "Slurm", "slurm;rm", "slurm x"])
def test_unsupported_gridtype(iwd, gridtype):
    # "pbs" is a well-formed name but not in this server's supported list
    text = ad_text(iwd, gridtype=gridtype)
    assert refused(text, supported=("slurm",)) == (1, "Unsupported gridtype %s" % gridtype)


def test_supported_gridtype_accepted(iwd):
    assert build(ad_text(iwd, gridtype="pbs")).gridtype == "pbs"


@pytest.mark.parametrize("cmd_part", [None, 'Cmd = ""', "Cmd = 5", "Cmd = undefined", "Cmd = true"])
def test_missing_cmd_is_code_7(iwd, cmd_part):
    parts = [cmd_part] if cmd_part else []
    text = ad_text(iwd, *parts, cmd=None)
    assert refused(text) == (7, "Cannot parse Cmd attribute in classad")


def test_iwd_missing_and_no_cwd():
    text = ad_text(None)
    assert refused(text, cwd=None) == (1, "Iwd not specified and failed to determine current dir.")


def test_iwd_missing_uses_cwd(iwd):
    job = build(ad_text(None), cwd=str(iwd))
    assert job.iwd == str(iwd)


def test_iwd_missing_home_when_configured(tmp_path, iwd):
    job = build(ad_text(None), values={"blah_set_default_workdir_to_home": "yes"}, cwd=None, home=str(iwd))
    assert job.iwd == str(iwd)
    # not configured: home is not a fallback
    assert refused(ad_text(None), cwd=None, home=str(iwd))[0] == 1


def test_relative_proxy_without_iwd(iwd):
    text = ad_text(None, 'x509UserProxy = "x509up_u1000"')
    assert refused(text, cwd=str(iwd)) == (1, "Relative x509UserProxy specified without Iwd")


def test_relative_proxy_resolved_against_iwd(iwd):
    job = build(ad_text(iwd, 'x509userproxy = "x509up_u1000"'))
    assert job.proxy == os.path.join(str(iwd), "x509up_u1000")


def test_absolute_proxy_without_iwd(iwd):
    job = build(ad_text(None, 'X509UserProxy = "/tmp/x509up_u1000"'), cwd=str(iwd))
    assert job.proxy == "/tmp/x509up_u1000"


def test_require_proxy(iwd):
    values = {"blah_require_proxy_on_submit": "yes"}
    assert refused(ad_text(iwd), values=values) == (1, "Missing x509UserProxy in submission classAd")
    assert build(ad_text(iwd, 'x509UserProxy = "/tmp/p"'), values=values).proxy == "/tmp/p"
    assert build(ad_text(iwd)).proxy is None  # default: not required


def test_limited_proxy_refused(iwd):
    values = {"blah_disable_limited_proxy": "no"}
    assert refused(ad_text(iwd, 'x509UserProxy = "/tmp/p"'), values=values) == (
        1, "Unable to limit the proxy (limited proxies not supported)")
    build(ad_text(iwd, 'x509UserProxy = "/tmp/p"'), values={"blah_disable_limited_proxy": "yes"})
    build(ad_text(iwd, 'x509UserProxy = "/tmp/p"'))


@pytest.mark.parametrize("part,attr", [
    ('Queue = "long\\nqueue"', "Queue"),
    ('Queue = "long\\rx"', "Queue"),
    ('BatchProject = "p\\nq"', "BatchProject"),
    ('GPUModel = "a\\nb"', "GPUModel"),
    ('Out = "out\\nfile"', "Out"),
    ("RequestMemory = -5", "RequestMemory"),
    ("RequestMemory = -1.5", "RequestMemory"),
    ("BatchRuntime = -60", "BatchRuntime"),
    ('RequestMemory = "2000"', "RequestMemory"),
    ('WholeNodes = "yes"', "WholeNodes"),
    ("WholeNodes = 2", "WholeNodes"),
    ("WholeNodes = 1.0", "WholeNodes"),
    ('JobDirectory = "a b"', "JobDirectory"),
    ('JobDirectory = "../x;y"', "JobDirectory"),
])
def test_invalid_values(iwd, part, attr):
    code, message = refused(ad_text(iwd, part))
    assert code == 1
    prefix = "Invalid value for %s: " % attr
    assert message.startswith(prefix) and len(message) > len(prefix)
    assert "\n" not in message


def test_input_file_missing(iwd):
    code_msg = refused(ad_text(iwd, 'TransferInput = "present,absent"'))
    assert code_msg == (1, "Input sandbox file doesn't exist: %s" % os.path.join(str(iwd), "present"))
    (iwd / "present").write_text("x")
    assert refused(ad_text(iwd, 'TransferInput = "present,absent"')) == (
        1, "Input sandbox file doesn't exist: %s" % os.path.join(str(iwd), "absent"))


def test_stdin_missing(iwd):
    assert refused(ad_text(iwd, 'In = "stdin.txt"')) == (
        1, "Input sandbox file doesn't exist: %s" % os.path.join(str(iwd), "stdin.txt"))


def test_iwd_not_accessible(tmp_path):
    assert refused(ad_text(tmp_path / "does-not-exist")) == (1, "Failed to CD to Initial Working Directory.")
    f = tmp_path / "a-file"
    f.write_text("")
    assert refused(ad_text(f)) == (1, "Failed to CD to Initial Working Directory.")


def test_file_outside_shared_directories(tmp_path):
    shared = tmp_path / "shared"
    iwd = shared / "iwd"
    iwd.mkdir(parents=True)
    other = tmp_path / "shared2"  # a sibling whose name merely starts with the prefix
    other.mkdir()
    (other / "input").write_text("x")
    values = {"blah_shared_directories": "%s:/opt/none" % shared}
    text = ad_text(iwd, 'TransferInput = "%s"' % (other / "input"), cmd=str(iwd / "job.sh"))
    assert refused(text, values=values) == (
        1, "File %s is not on a shared directory and slurm staging is not supported" % (other / "input"))
    # Iwd itself outside
    text = ad_text(other, cmd=str(iwd / "job.sh"))
    assert refused(text, values=values) == (
        1, "File %s is not on a shared directory and slurm staging is not supported" % other)
    # the staged executable
    text = ad_text(iwd, cmd=str(other / "job.sh"))
    assert refused(text, values=values)[1].startswith("File %s is not on a shared" % (other / "job.sh"))
    # ... but not when HTCondor did not transfer it (StageCmd = false: it lives on the worker)
    text = ad_text(iwd, "StageCmd = false", 'Out = "/dev/null"', cmd="/usr/bin/env")
    job = build(text, values=values)
    assert job.stage_cmd is False and job.cmd == "/usr/bin/env"
    # with a trailing slash on the prefix, and /dev/null always shared
    ok = ad_text(iwd, 'In = "/dev/null"', cmd=str(iwd / "job.sh"))
    assert build(ok, values={"blah_shared_directories": "%s/" % shared}).stdin == "/dev/null"


# --- value rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("expr,expected", [
    ("2000", 2000),
    ("2000.0", 2000),
    ("1.5", 2),
    ("0.1", 1),
    ("ifThenElse(true, 3000, 1)", 3000),
    ("ifThenElse(CondorCE == 1, 4096, 1)", 4096),
    ("1024 * 2", 2048),
    ("maxMemory", None),             # reference the GM did not copy: UNDEFINED, omitted
    ("undefined", None),
])
def test_request_memory_values(iwd, expr, expected):
    job = build(ad_text(iwd, "RequestMemory = %s" % expr, "CondorCE = 1"))
    assert job.memory_mb == expected


def test_error_value_omitted_and_logged(iwd):
    log = RecordingLog()
    job = build(ad_text(iwd, "RequestMemory = 1/0", "BatchRuntime = 3600"), log=log)
    assert job.memory_mb is None
    assert job.runtime_s == 3600
    assert any(kw.get("attribute") == "RequestMemory" for _, kw in log.warnings)


def test_integer_and_boolean_attributes(iwd):
    job = build(ad_text(iwd, "BatchRuntime = 172800", "NodeNumber = 8", "SMPGranularity = 8",
                        "HostNumber = 2", "HostSMPSize = 16", "GPUNumber = 1", "MICNumber = 0",
                        "WholeNodes = true", 'GPUModel = "A100"', 'GPUMode = "exclusive"',
                        'BatchProject = "proj"'))
    assert (job.runtime_s, job.node_number, job.smp_granularity, job.host_number, job.host_smp_size,
            job.gpu_number, job.mic_number) == (172800, 8, 8, 2, 16, 1, 0)
    assert job.whole_nodes is True
    assert (job.gpu_model, job.gpu_mode, job.project) == ("A100", "exclusive", "proj")
    assert build(ad_text(iwd, "WholeNodes = 0")).whole_nodes is False
    assert build(ad_text(iwd, "WholeNodes = 1")).whole_nodes is True
    assert build(ad_text(iwd)).whole_nodes is None
    assert build(ad_text(iwd)).memory_mb is None


def test_queue_and_cluster(iwd):
    job = build(ad_text(iwd, 'Queue = "debug@clusterA"'))
    assert (job.queue, job.cluster) == ("debug", "clusterA")
    job = build(ad_text(iwd, 'Queue = "compute"'))
    assert (job.queue, job.cluster) == ("compute", None)


@pytest.mark.parametrize("queue", ["debug@bad cluster", "debug@c/d", "debug@$(x)", "debug@", "@clusterA",
                                   "two words"])
def test_bad_queue_refused(iwd, queue):
    code, message = refused(ad_text(iwd, 'Queue = "%s"' % queue))
    assert code == 1 and message.startswith("Invalid value for Queue: ")


def test_cluster_name_in_message(iwd):
    assert "bad cluster name" in refused(ad_text(iwd, 'Queue = "debug@c/d"'))[1]


def test_v2_arguments_win_over_v1_args(iwd):
    job = build(ad_text(iwd, 'Arguments = "a \'b c\' \'it\'\'s\'"', 'Args = "x y"'))
    assert job.arguments == ["a", "b c", "it's"]
    assert job.v1_args_raw is None


def test_v1_args_when_arguments_empty(iwd):
    for parts in (('Arguments = ""', 'Args = "x  y\'z"'), ('Args = "x  y\'z"',)):
        job = build(ad_text(iwd, *parts))
        assert job.arguments == ["x", "y'z"]
        assert job.v1_args_raw == "x  y'z"


def test_unbalanced_v2_arguments_refused(iwd):
    code, message = refused(ad_text(iwd, 'Arguments = "a \'b"'))
    assert code == 1 and message.startswith("Invalid value for Arguments: ")


def test_environment_v2_and_v1_fallback(iwd):
    job = build(ad_text(iwd, 'Environment = "A=1 B=\'x y\'"', 'Env = "C=3"'))
    assert job.environment == [("A", "1"), ("B", "x y")]
    log = RecordingLog()
    job = build(ad_text(iwd, 'Environment = ""', 'Env = "A=1;B=2;junk"'), log=log)
    assert job.environment == [("A", "1"), ("B", "2")]
    assert job.warnings and log.warnings
    job = build(ad_text(iwd, 'Env = "A=1|B=2"', 'EnvDelim = "|"'))
    assert job.environment == [("A", "1"), ("B", "2")]
    assert build(ad_text(iwd, 'Environment = ""')).environment == []


def test_cmd_relative_to_iwd(iwd):
    assert build(ad_text(iwd, cmd="glidein_startup.sh")).cmd == os.path.join(str(iwd), "glidein_startup.sh")
    assert build(ad_text(iwd, cmd="/bin/echo")).cmd == "/bin/echo"
    assert build(ad_text(iwd)).stage_cmd is True
    assert build(ad_text(iwd, "StageCmd = false")).stage_cmd is False


def test_stdio_relative_to_iwd(iwd):
    (iwd / "in.txt").write_text("x")
    job = build(ad_text(iwd, 'In = "in.txt"', 'Out = "_condor_stdout"', 'Err = "/tmp/abs.err"'))
    assert job.stdin == os.path.join(str(iwd), "in.txt")
    assert job.stdout == os.path.join(str(iwd), "_condor_stdout")
    assert job.stderr == "/tmp/abs.err"
    job = build(ad_text(iwd, 'In = "/dev/null"', 'Out = "sub/../o"', 'Err = "o"'))
    assert job.stdin == "/dev/null"
    assert job.stdout == job.stderr == os.path.join(str(iwd), "o")
    job = build(ad_text(iwd))
    assert (job.stdin, job.stdout, job.stderr) == (None, None, None)


def test_transfer_input_relative_and_absolute(tmp_path, iwd):
    (iwd / "idtoken").write_text("t")
    (iwd / "glidein_config").write_text("c")
    other = tmp_path / "elsewhere.txt"
    other.write_text("e")
    job = build(ad_text(iwd, 'TransferInput = " idtoken , glidein_config,,%s, https://x.example/y "' % other))
    assert job.transfer_input == [os.path.join(str(iwd), "idtoken"), os.path.join(str(iwd), "glidein_config"),
                                  str(other)]


def test_transfer_output_and_remaps(iwd):
    job = build(ad_text(iwd, 'TransferOutput = "out.dat, log.txt"',
                        'TransferOutputRemaps = "out.dat=results/final.dat; log.txt = /tmp/l\\\\;x"'))
    assert job.transfer_output == ["out.dat", "log.txt"]
    assert job.remaps == [("out.dat", "results/final.dat"), ("log.txt", "/tmp/l;x")]
    # remaps only with TransferOutput
    job = build(ad_text(iwd, 'TransferOutputRemaps = "out.dat=x"'))
    assert job.remaps == []
    code, message = refused(ad_text(iwd, 'TransferOutput = "a"', 'TransferOutputRemaps = "a"'))
    assert code == 1 and message.startswith("Invalid value for TransferOutputRemaps: ")


def test_key_is_job_directory(iwd):
    key = "home_bl_ce.example.org_9619_ce.example.org_1234.0_1700000000"
    job = build(ad_text(iwd, 'JobDirectory = "%s"' % key))
    assert job.key == job.job_directory == key
    assert job.h12 == hashlib.sha256(key.encode()).hexdigest()[:12] == key_hash(key)
    assert job_name(job.h12) == "bl_" + job.h12 and len(job_name(job.h12)) == 15
    # the same ad gives the same key (idempotency)
    assert build(ad_text(iwd, 'JobDirectory = "%s"' % key)).h12 == job.h12


def test_key_without_job_directory_is_random(iwd):
    a = build(ad_text(iwd))
    b = build(ad_text(iwd))
    assert a.job_directory is None and b.job_directory is None
    assert a.key != b.key
    assert a.h12 != b.h12
    for job in (a, b):
        assert re.fullmatch(r"uuid_[0-9a-f]{32}", job.key)
        assert job.h12 == hashlib.sha256(job.key.encode()).hexdigest()[:12]


# --- attribute lines (submit-ad.md §10.1) -----------------------------------------------------

def test_cerequirements_lines(iwd):
    job = build(ad_text(iwd, "CERequirements = maxWallTime == 1440 && CondorCE == 1"))
    assert job.attribute_lines == ["maxWallTime='1440'", "CondorCE='1'"]


def test_cerequirements_forms(iwd):
    job = build(ad_text(iwd, 'CERequirements = queue == "long" && Memory >= 2000 && 10 > Cpus && '
                             'member("x", Tags) && member("y", Tags) && (a == 1 || b == 2) && \'bad-name\' == 3'))
    assert job.attribute_lines == ["queue='\"long\"'", "Memory_Min='2000'", "Cpus_Max='10'",
                                   "Tags[0]='\"x\"'", "Tags[1]='\"y\"'"]


def test_virtual_organisation_always_offered(iwd):
    job = build(ad_text(iwd, 'VirtualOrganisation = "cms"', 'Other = "x"'))
    assert job.attribute_lines == ["VirtualOrganisation='cms'"]
    assert build(ad_text(iwd, 'Other = "x"')).attribute_lines == []


def _bash_value(lines, name):
    script = "\n".join(lines) + '\nprintf %s "$' + name + '"\n'
    return subprocess.run(["/bin/bash", "-c", script], stdout=subprocess.PIPE, check=True).stdout.decode()


def test_pass_submit_attributes_quoted(iwd, tmp_path):
    marker = tmp_path / "marker"
    value = "it's $(touch %s) `touch %s` \\ \"q\"" % (marker, marker)
    arrays = {"blah_pass_submit_attributes": {"0": "SiteTag", "1": "NotThere", "2": "Count"}}
    ad_value = value.replace("\\", "\\\\").replace('"', '\\"')
    job = build(ad_text(iwd, 'SiteTag = "%s"' % ad_value, "Count = 5",
                        "CERequirements = CondorCE == 1"), arrays=arrays)
    expected = "SiteTag='" + value.replace("'", "'\\''") + "'"
    # pass-through lines first (strings only), CERequirements last
    assert job.attribute_lines == [expected, "CondorCE='1'"]
    assert _bash_value(job.attribute_lines, "SiteTag") == value
    assert not marker.exists()


def test_pass_submit_attributes_names_checked(iwd):
    arrays = {"blah_pass_submit_attributes": {"0": "bad-name", "1": "9lives", "2": "Good", "3": "good"}}
    job = build(ad_text(iwd, 'Good = "g"', "'bad-name' = \"b\"", "'9lives' = \"n\""), arrays=arrays)
    assert job.attribute_lines == ["Good='g'"]


def test_pass_all_submit_attributes(iwd):
    job = build(ad_text(iwd, 'Project = "p q"', "'weird name' = \"w\"", "N = 3"),
                values={"blah_pass_all_submit_attributes": "yes"})
    lines = job.attribute_lines
    assert "Project='p q'" in lines
    assert "gridtype='slurm'" in lines
    assert not any(ln.startswith(("weird", "N=", "'")) for ln in lines)
    for ln in lines:
        assert re.match(r"[A-Za-z_][A-Za-z0-9_]*='", ln)


def test_local_submit_attributes_setup_args(iwd):
    job = build(ad_text(iwd, "Extra = Site == 7", "CERequirements = CondorCE == 1", 'VirtualOrganisation = "vo"'),
                values={"local_submit_attributes_setup_args": "Extra"})
    assert job.attribute_lines == ["VirtualOrganisation='vo'", "Site='7'", "CondorCE='1'"]
