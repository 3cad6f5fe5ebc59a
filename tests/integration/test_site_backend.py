"""A site adds its own batch system through the ``pyblahp.backends`` entry point, core untouched.

The site package here is a directory on PYTHONPATH holding a module and a ``*.dist-info`` with
``entry_points.txt`` -- exactly what ``pip install`` of a site package leaves in site-packages --
so the real entry-point discovery of the installed blahpd finds it.
"""
import os
import textwrap

import pytest

from tests.gahp_client import GahpClient, ad, env_for

SITE_MODULE = textwrap.dedent('''
    """ACME's batch system: pyblahp's local adapter under another name, with its own job directory."""
    import os

    from blahp.backends.local import LocalBackend


    class AcmeBackend(LocalBackend):
        name = "acme"

        def __init__(self, context):
            super().__init__(context)
            self.job_dir = os.path.join(context.state_dir, "acme")
''')

ENTRY_POINTS = textwrap.dedent('''
    [pyblahp.backends]
    acme = acme_backend:AcmeBackend
    broken = acme_missing_module:Nothing
''')


@pytest.fixture
def site_env(tmp_path):
    site = tmp_path / "site"
    dist = site / "acme_site-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "acme_backend.py").write_text(SITE_MODULE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-site\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    home = str(tmp_path / "home")
    config = "supported_lrms=acme,local\npyblahp_status_ttl_min=0.5\npyblahp_status_ttl_max=1\n"
    env = env_for(home, config, {"PYTHONPATH": str(site)})
    return env, home


def test_site_backend_serves_jobs_and_a_broken_plugin_is_only_logged(site_env, tmp_path):
    env, home = site_env
    client = GahpClient(env)
    try:
        assert client.call("BLAH_PING", "acme")[1:] == ["0", "No error"]
        row = client.submit(ad(Cmd="/bin/sh", Arguments="-c 'exit 5'", Iwd=str(tmp_path), gridtype="acme",
                               JobDirectory="home_bl_acme_1"))
        assert row[1:3] == ["0", "No error"] and row[3].startswith("acme/"), row
        ad_, _ = client.wait_status(row[3], {4}, timeout=30)
        assert ad_.evaluate("ExitCode") == 5
        # the core did not learn of "broken": it is not a batch system this server knows
        assert client.call("BLAH_PING", "broken")[1] != "0"
    finally:
        assert client.close() == 0
    with open(os.path.join(home, ".pyblahp", "log", "blahpd.log")) as f:
        log = f.read()
    assert "backend failed to load" in log and "broken" in log and "acme_missing_module" in log, log[-2000:]
