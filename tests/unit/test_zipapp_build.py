"""The head-node bundle (blahp/zipapp_build.py) and the installer's pure decisions
(blahp/remote_layout.py, blahp/remote_selftest.py) without any SSH."""
import io
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from blahp import remote_layout as layout
from blahp import remote_selftest, zipapp_build
from tests.conftest import BANNER_LINE, COMMANDS_REPLY


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bundle") / "pyblahp.pyz")
    return zipapp_build.build(path)


def _env(tmp_path, config="supported_lrms=local\n"):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cfg = tmp_path / "blah.config"
    cfg.write_text(config)
    # nothing of this checkout may leak in: the bundle must stand on its own
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "BLAHPD_CONFIG_LOCATION": str(cfg), "LANG": "C.UTF-8"}


def _run(bundle, args, tmp_path, data=b"", timeout=60):
    return subprocess.run([sys.executable, "-I", bundle.path] + list(args), input=data, env=_env(tmp_path),
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def test_bundle_contents(bundle):
    with zipfile.ZipFile(bundle.path) as zf:
        names = zf.namelist()
        main = zf.read("__main__.py").decode()
        eps = zf.read("pyblahp-0.1.0.dist-info/entry_points.txt").decode()
    assert os.path.getsize(bundle.path) == bundle.size
    for must in ("blahp/cli.py", "blahp/backends/slurm.py", "blahp/backends/local.py", "blahp/classad/parser.py",
                 "gahp/protocol.py", "trio/__init__.py", "attr/__init__.py", "attrs/__init__.py",
                 "sortedcontainers/__init__.py", "idna/__init__.py", "outcome/__init__.py", "sniffio/__init__.py",
                 "pyparsing/__init__.py", "structlog/__init__.py", zipapp_build.MANIFEST):
        assert must in names, must
    compiled = [n for n in names if n.endswith((".so", ".pyd", ".dylib")) or ".so." in n]
    assert compiled == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # CE-only code and its dependencies stay out
    assert not [n for n in names if n.startswith(("asyncssh/", "cryptography/", "cffi/", "gahp/ssh/"))]
    assert "blahp/remote_install.py" not in names and "blahp/zipapp_build.py" not in names
    assert "from blahp.cli import run" in main
    for name in ("local", "slurm", "pbs", "sge", "lsf", "condor"):
        assert "%s = blahp.backends.%s:" % (name, name) in eps
    m = bundle.manifest
    assert set(m["backends"]) >= {"local", "slurm"} and m["pyblahp"] == "0.1.0"
    assert tuple(m["min_python"]) >= (3, 9)
    assert tuple(m["min_python"]) <= sys.version_info[:2]
    assert zipapp_build.read_manifest(bundle.path) == m


def test_bundle_is_reproducible(bundle, tmp_path):
    again = zipapp_build.build(str(tmp_path / "again.pyz"))
    assert again.sha256 == bundle.sha256


def test_version_and_help(bundle, tmp_path):
    r = _run(bundle, ["--version"], tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"pyblahp 0.1.0\n", b"")
    r = _run(bundle, ["--help"], tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(b"usage: blahpd") and r.stderr == b""


def test_bundle_serves_commands_and_local_ping(bundle, tmp_path):
    r = _run(bundle, ["-s"], tmp_path, b"COMMANDS\r\nBLAH_PING 1 local\r\nBLAH_PING 2 slurm\r\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(BANNER_LINE + COMMANDS_REPLY)
    assert b"\r\n1 0 No\\ error\r\n" in r.stdout
    assert b"\r\n2 1 Unsupported\\ batch\\ system\\ slurm\r\n" in r.stdout  # supported_lrms=local
    # the backends came from the bundle's own entry points, with a log in the temp HOME
    log = (tmp_path / "home" / ".pyblahp" / "log" / "blahpd.log").read_text()
    assert "available=['condor', 'local', 'lsf', 'pbs', 'sge', 'slurm']" in log


def test_bundle_self_test_with_local_backend(bundle, tmp_path):
    """remote_selftest's whole job cycle, with the bundle on pipes as the GAHP transport."""
    iwd = tmp_path / "iwd"
    iwd.mkdir()
    out = io.StringIO()
    res = remote_selftest.run([sys.executable, "-I", bundle.path], "local", str(iwd), out, name="t1",
                              env=_env(tmp_path), poll_interval=0.3, timeout=60,
                              fetch_output=lambda p: open(p).read())
    assert res.ok, out.getvalue()
    assert res.exit_code == 0 and res.state == 4 and res.job_id.startswith("local/")
    assert (iwd / "t1.out").read_text() == "Hello\n"
    text = out.getvalue()
    for step in ("banner: $GahpVersion", "COMMANDS:", "BLAH_PING local: 0 No error", "status 4 (completed)",
                 "output: Hello", "PASSED"):
        assert step in text, text


def test_self_test_reports_a_dead_transport(tmp_path):
    out = io.StringIO()
    res = remote_selftest.run(["/bin/sh", "-c", "echo 'Permission denied (publickey).' >&2; exit 255"], "local",
                              str(tmp_path), out, reply_timeout=10)
    assert not res.ok
    assert "closed its output" in res.error and "Permission denied" in res.error
    res = remote_selftest.run(["/bin/sh", "-c", "echo hello; sleep 5"], "local", str(tmp_path), out,
                              reply_timeout=10)
    assert not res.ok and "not a GAHP banner" in res.error
    res = remote_selftest.run([str(tmp_path / "nonexistent")], "local", str(tmp_path), out)
    assert not res.ok and "cannot run" in res.error


def test_old_python_is_refused_by_the_bundle(bundle, tmp_path):
    with zipfile.ZipFile(bundle.path) as zf:
        main = zf.read("__main__.py").decode()
    assert "sys.version_info[:2] < (%d, %d)" % tuple(bundle.manifest["min_python"]) in main


# --- requirement / marker evaluation --------------------------------------------------------------

@pytest.mark.parametrize("marker,py,expected", [
    ('python_version < "3.11"', (3, 10), True),
    ('python_version < "3.11"', (3, 11), False),
    ("python_version < '3.11'", (3, 9), True),
    ('os_name == "nt" and implementation_name != "pypy"', (3, 11), False),
    ('sys_platform == "win32" or python_version >= "3.12"', (3, 12), True),
    ('(python_version >= "3.9" and python_version < "3.10") or os_name == "posix"', (3, 13), True),
    ('platform_system == "Windows"', (3, 11), False),
])
def test_markers(marker, py, expected):
    assert zipapp_build.marker_holds(marker, zipapp_build.head_node_environment(py)) is expected


@pytest.mark.parametrize("spec,py,expected", [
    (">=3.10", (3, 9), False), (">=3.10", (3, 10), True), (">=3.7", (3, 9), True), (None, (3, 9), True),
    (">=3.8,!=3.9.0", (3, 9), True), ("<3.12,>=3.9", (3, 12), False), ("~=3.9", (3, 13), True),
    ("!=3.10.*", (3, 10), False),
])
def test_requires_python(spec, py, expected):
    assert zipapp_build.python_allowed(spec, py) is expected


def test_requirement_names():
    assert zipapp_build.split_requirement("trio>=0.22") == ("trio", "")
    assert zipapp_build.split_requirement("typing-extensions; python_version < '3.11'") == \
        ("typing-extensions", "python_version < '3.11'")
    assert zipapp_build.split_requirement("Sorted_Containers[x] (>=2)") == ("sorted-containers", "")


# --- the installer's decisions ---------------------------------------------------------------------

def test_probe_parsing_ignores_login_noise():
    out = ("Welcome to the cluster!\nquota: 3 GB used\n@@pyblahp-probe-begin@@\nhome /home/u\nuname Linux x86_64\n"
           "cmd sbatch /usr/bin/sbatch\ncmd qsub alias qsub='x'\ncmd squeue /opt/slurm/bin/squeue\n"
           "python 3.11.2 /usr/bin/python3.11\npython 3.6.8 /usr/bin/python3\npython garbage /x\n"
           "exists .\nexists glite/etc/blah.config\n@@pyblahp-probe-end@@\n")
    p = layout.parse_probe(out)
    assert p.home == "/home/u" and p.uname == "Linux x86_64"
    assert p.commands == {"sbatch": "/usr/bin/sbatch", "squeue": "/opt/slurm/bin/squeue"}
    assert p.pythons == [((3, 11, 2), "/usr/bin/python3.11"), ((3, 6, 8), "/usr/bin/python3")]
    assert p.existing == [".", "glite/etc/blah.config"]
    assert p.noise.startswith("Welcome")
    with pytest.raises(layout.LayoutError):
        layout.parse_probe("bash: line 1: syntax error\n")


@pytest.mark.parametrize("tools,lrms", [
    (["sbatch", "squeue", "qsub", "qstat"], "slurm"),  # slurm-wlm-torque's qsub beside sbatch
    (["qsub", "qstat", "qconf"], "sge"),
    (["qsub", "qstat"], "pbs"),
    (["bsub"], "lsf"),
    (["condor_submit"], "condor"),
    ([], None),
])
def test_detection(tools, lrms):
    found, why = layout.detect_lrms({t: "/usr/bin/" + t for t in tools})
    assert found == lrms
    assert ("found" in why) if lrms else ("none of" in why)


def test_names_and_binpath():
    assert layout.normalise_lrms("HTCondor") == "condor" and layout.normalise_lrms("local") == "local"
    with pytest.raises(layout.LayoutError):
        layout.normalise_lrms("flux")
    for bad in ("", ".", "..", "a/b", "../x", ".hidden", "with space"):
        with pytest.raises(layout.LayoutError):
            layout.check_base(bad)
    assert layout.check_base("bosco-1a2b") == "bosco-1a2b"
    assert layout.binpath("slurm", {"sbatch": "/opt/slurm/bin/sbatch"}) == "/opt/slurm/bin"
    assert layout.binpath("pbs", {}) is None and layout.binpath("local", {}) is None
    text = layout.config_text("slurm", "/opt/slurm/bin", "detected", "u@h", "now")
    assert "\nsupported_lrms=slurm\nslurm_binpath=/opt/slurm/bin\n" in text
    assert "binpath=" not in layout.config_text("local", None, "asked", "u@h", "now")


def test_python_choice():
    found = [((3, 6, 8), "/usr/bin/python3"), ((3, 11, 2), "/usr/bin/python3.11"),
             ((3, 12, 1), "/opt/py/bin/python3.12")]
    assert layout.choose_python(found, (3, 11), {}) == ("/opt/py/bin/python3.12", (3, 12, 1))
    assert layout.choose_python(found[:2], (3, 9), {}) == ("/usr/bin/python3.11", (3, 11, 2))
    with pytest.raises(layout.LayoutError, match="older than 3.9"):
        layout.choose_python([((3, 6, 8), "/usr/bin/python3")], (3, 9), {})
    with pytest.raises(layout.LayoutError, match=r"needs Python >= 3\.11.*on 3\.10: exceptiongroup"):
        layout.choose_python([((3, 10, 4), "/usr/bin/python3")], (3, 11), {"3.10": "exceptiongroup is needed"})
    with pytest.raises(layout.LayoutError, match="no python3"):
        layout.choose_python([], (3, 9), {})


def test_launcher_prints_nothing_and_execs_the_bundle(bundle, tmp_path):
    glite = tmp_path / "b" / "glite"
    (glite / "bin").mkdir(parents=True)
    (glite / "lib").mkdir()
    (glite / "etc").mkdir()
    (glite / "etc" / "blah.config").write_text("supported_lrms=local\n")
    os.link(bundle.path, str(glite / "lib" / "pyblahp.pyz"))
    launcher = glite / "bin" / "blahpd"
    launcher.write_text(layout.launcher_text(sys.executable, "b"))
    launcher.chmod(0o755)
    env = _env(tmp_path)
    del env["BLAHPD_CONFIG_LOCATION"]  # found through BLAHPD_LOCATION, set by the launcher
    r = subprocess.run([str(launcher), "-s"], input=b"BLAH_PING 1 local\r\n", env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(BANNER_LINE) and b"1 0 No\\ error" in r.stdout
    # a vanished interpreter: a message on stderr, nothing on stdout
    launcher.write_text(layout.launcher_text(str(tmp_path / "no-python"), "b"))
    r = subprocess.run([str(launcher)], input=b"", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 1 and r.stdout == b"" and b"re-run blahp-bootstrap" in r.stderr


def test_head_node_precompile(bundle, tmp_path):
    """The installer's byte-compile step: pycs beside the sources, loadable without them."""
    work = tmp_path / "pc.pyz"
    shutil.copyfile(bundle.path, str(work))
    cmd = layout.precompile_command(sys.executable, str(work), "/home/u/b/glite/lib/pyblahp.pyz")
    r = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                       universal_newlines=True)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(str(work)) as zf:
        names = zf.namelist()
    sources = [n for n in names if n.endswith(".py")]
    assert int(r.stdout) == len(sources) and all(n + "c" in names for n in sources)
    assert not os.path.exists(str(work) + ".compiling")
    with open(str(work), "rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"  # the zipapp's prefix survives
    # the byte code alone runs the server: drop every source that has a pyc
    sourceless = tmp_path / "sourceless.pyz"
    with zipfile.ZipFile(str(work)) as zin, zipfile.ZipFile(str(sourceless), "w") as zout:
        for info in zin.infolist():
            if not (info.filename.endswith(".py") and info.filename + "c" in names):
                zout.writestr(info, zin.read(info.filename))
    r = subprocess.run([sys.executable, "-I", str(sourceless), "-s"], input=b"BLAH_PING 1 local\r\n",
                       env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(BANNER_LINE) and b"1 0 No\\ error" in r.stdout
    # a failing run leaves the archive untouched
    broken = tmp_path / "broken.pyz"
    broken.write_bytes(b"not a zip")
    cmd = layout.precompile_command(sys.executable, str(broken), "x")
    r = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode != 0 and broken.read_bytes() == b"not a zip"
    assert not os.path.exists(str(broken) + ".compiling")


# --- blahp-bootstrap's command line (no connection is made) ----------------------------------------

def test_bootstrap_options_mean_what_they_mean_for_gahp_ssh():
    from blahp import remote_install as ri
    opts = ri._parser().parse_args(["-b", "bosco2", "--rgahp-key", "/k", "--rgahp-pass", "/p", "--known-hosts",
                                    "/kh1", "--known-hosts", "/kh2", "--ssh-config", "none", "--rgahp-nologin",
                                    "alice.b@head.example.org:2222", "HTCondor"])
    inv = ri.invocation(opts)
    assert (inv.user, inv.host, inv.port) == ("alice.b", "head.example.org", 2222)
    assert (inv.key, inv.passfile, inv.known_hosts, inv.ssh_config) == ("/k", "/p", ["/kh1", "/kh2"], "none")
    assert inv.glite == "~/bosco2/glite" and inv.login is False and inv.gahp == "blahpd"
    argv = ri.gahp_ssh_argv(opts) if ri.importlib_spec_ok() else None
    if argv is not None:
        assert argv[-3:] == ["~/bosco2/glite", "alice.b@head.example.org:2222", "blahpd"]
        assert "--rgahp-nologin" in argv and argv[argv.index("--rgahp-key") + 1] == "/k"
    opts.gahp_command = "ssh -p 22 h \"/bin/bash -l -c 'x y'\""
    assert ri.gahp_ssh_argv(opts) == ["ssh", "-p", "22", "h", "/bin/bash -l -c 'x y'"]


@pytest.mark.parametrize("argv,message", [
    (["-b", "../x", "h"], "bad base directory name"),
    (["h", "flux"], "unknown batch system 'flux'"),
    (["--rgahp-user", "x", "h"], None),  # not an option of ours: argparse's usage error
    (["bad host!", "slurm"], "Ignoring unparsable hostname"),
])
def test_bootstrap_refuses_before_connecting(argv, message, capsys):
    from blahp import remote_install as ri
    if message is None:
        with pytest.raises(SystemExit) as e:
            ri.main(argv)
        assert e.value.code == 2
        return
    assert ri.main(argv) == 1
    assert message in capsys.readouterr().err
