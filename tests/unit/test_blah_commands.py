import importlib
from importlib import metadata

from blahp.commands import Session, build_table
from gahp.protocol import ServerProtocol
from blahp.commands import BANNER


def test_sudo_mode_changes_the_batch_command_prefix():
    s = Session()
    core = ServerProtocol(build_table(s), BANNER)
    core.data_to_send()
    core.receive_data(b"BLAH_SET_SUDO_ID osg01\r\n")
    assert core.data_to_send() == b"S Sudo\\ mode\\ on\r\n"
    assert s.command_prefix() == ["/usr/bin/sudo", "-u", "osg01"]
    core.receive_data(b"BLAH_SET_SUDO_OFF\r\n")
    assert core.data_to_send() == b"S Sudo\\ mode\\ off\r\n"
    assert s.command_prefix() == []


def test_banner_is_the_c_blahps_and_fits_the_gridmanager():
    assert BANNER.startswith("$GahpVersion: ") and BANNER.endswith(" $")
    assert "new_esc_format" in BANNER and "blahpd" in BANNER and len(BANNER) + 2 <= 150


def test_installed_distribution_registers_the_local_backend():
    eps = metadata.entry_points()
    group = eps.select(group="pyblahp.backends") if hasattr(eps, "select") else eps.get("pyblahp.backends", ())
    names = {ep.name: ep for ep in group}
    assert "local" in names
    assert names["local"].load().__name__ == "LocalBackend"
    assert importlib.import_module("blahp.backends.local").LocalBackend.name == "local"
    assert metadata.version("pyblahp") == importlib.import_module("blahp").__version__
