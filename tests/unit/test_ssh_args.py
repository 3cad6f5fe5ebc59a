"""gahp-ssh command line: remote_gahp's parsing, remote command strings, CONDOR_INHERIT."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from gahp.ssh.args import (HelpRequested, Invocation, UsageError, gridmanager_address, parse,
                           remote_command, usage)

BLAHPD_CMD = ("/bin/bash -l -c 'BLAHPD_LOCATION=~/bosco/glite GLITE_LOCATION=~/bosco/glite "
              "~/bosco/glite/bin/blahpd'")
FT_CMD = ("/bin/bash -l -c 'CONDOR_CONFIG=~/bosco/glite/etc/condor_config.ft-gahp "
          "~/bosco/glite/bin/condor_ft-gahp -f'")


# ---------------------------------------------------------------- parse: hosts, users, ports

@pytest.mark.parametrize("argv, user, host, port", [
    (["alice@login.example.edu", "blahpd"], "alice", "login.example.edu", None),
    (["alice@login.example.edu:2222", "blahpd"], "alice", "login.example.edu", 2222),
    (["login.example.edu", "blahpd"], None, "login.example.edu", None),
    (["alice.b@h", "blahpd"], "alice.b", "h", None),                 # HTCONDOR-3581
    (["_svc@h", "blahpd"], "_svc", "h", None),
    (["h:", "blahpd"], None, "h", None),                              # empty port: ssh decides
    (["10.0.0.5:22", "blahpd"], None, "10.0.0.5", 22),
    (["alice@[::1]:2222", "blahpd"], "alice", "::1", 2222),
    (["[fe80::1%eth0]", "blahpd"], None, "fe80::1%eth0", None),
    (["[2001:db8::7]:22", "blahpd"], None, "2001:db8::7", 22),
])
def test_host_forms(argv, user, host, port):
    inv = parse(argv)
    assert (inv.user, inv.host, inv.port) == (user, host, port)
    assert inv.gahp == "blahpd" and inv.gahp_args == []


def test_last_writer_wins_for_user():
    assert parse(["alice.b@host", "--rgahp-user", "bob", "blahpd"]).user == "bob"
    assert parse(["--rgahp-user", "bob", "alice@host", "blahpd"]).user == "alice"
    # no user@ in the host: the earlier --rgahp-user stays (``${BASH_REMATCH[2]:-$REMOTE_USER}``)
    assert parse(["--rgahp-user", "bob", "host", "blahpd"]).user == "bob"
    assert parse(["--rgahp-user", "", "host", "blahpd"]).user is None


def test_options_before_and_after_host():
    inv = parse(["--rgahp-nologin", "alice@h", "--rgahp-key", "/k", "--rgahp-nopass",
                 "--rgahp-glite", "/opt/glite", "--rgahp-nobatchmode", "blahpd"])
    assert inv.login is False and inv.batchmode is False
    assert inv.key == "/k" and inv.passfile == ""
    assert inv.glite == "/opt/glite"
    inv = parse(["h", "--rgahp-nokey", "--rgahp-pass", "/p", "blahpd"])
    assert inv.key == "" and inv.passfile == "/p"


def test_defaults():
    inv = parse(["h", "blahpd"])
    assert inv.key is None and inv.passfile is None
    assert inv.glite == "~/bosco/glite" and inv.login and inv.batchmode
    assert inv.script is None and inv.rvgahp_socket is None
    assert inv.known_hosts is None and inv.ssh_config is None and inv.control_dir is None
    assert inv.share is True and inv.warnings == []


def test_ipv6_target_is_bracketed():
    assert parse(["alice@[::1]:2222", "blahpd"]).target == "alice@[::1]:2222"
    assert parse(["alice@h:2222", "blahpd"]).target == "alice@h:2222"
    assert parse(["h", "blahpd"]).target == "h"


def test_unparsable_host_is_skipped_like_remote_gahp():
    # remote_gahp silently skips it; the next bare word becomes the host
    with pytest.raises(UsageError) as ei:
        parse(["bad_host", "blahpd"])
    assert str(ei.value) == "Missing remote command"
    assert ei.value.notes == ["Ignoring unparsable hostname: bad_host"]
    inv = parse(["bad_host", "good", "blahpd"])
    assert inv.host == "good" and inv.warnings == ["Ignoring unparsable hostname: bad_host"]
    with pytest.raises(UsageError, match="^Missing remote command$"):
        parse(["[not:v6:zz]", "blahpd"])


def test_bad_port():
    with pytest.raises(UsageError, match="Bad port"):
        parse(["h:0", "blahpd"])
    with pytest.raises(UsageError, match="Bad port"):
        parse(["h:70000", "blahpd"])


# ---------------------------------------------------------------- parse: GAHP name, leftovers

def test_gahp_keywords():
    assert parse(["h", "blahpd"]).gahp == "blahpd"
    assert parse(["h", "batch_gahp"]).gahp == "blahpd"
    assert parse(["h", "condor_ft-gahp"]).gahp == "condor_ft-gahp"
    assert parse(["h", "condor_ft-gahp"]).is_ft


def test_rgahp_script_batch_and_ft_channels():
    inv = parse(["alice@h", "--rgahp-script", "/home/alice/bin/mygahp", "blahpd"])
    assert inv.gahp == "/home/alice/bin/mygahp" and inv.script == "/home/alice/bin/mygahp"
    assert inv.gahp_args == []           # remote_gahp's shift dropped "blahpd" here too
    inv = parse(["alice@h", "--rgahp-script", "/home/alice/bin/mygahp", "condor_ft-gahp"])
    assert inv.gahp == "condor_ft-gahp"  # the ft channel always runs the stock ft-gahp


def test_leftovers_are_kept_not_shifted_away():
    # remote_gahp would pass only "extra2" / "y" (its unconditional shift drops the first one)
    assert parse(["h", "blahpd", "extra1", "extra2"]).gahp_args == ["extra1", "extra2"]
    assert parse(["h", "blahpd", "-x", "y"]).gahp_args == ["-x", "y"]
    inv = parse(["h", "--rgahp-script", "S", "extra", "blahpd"])
    assert (inv.gahp, inv.gahp_args) == ("S", ["extra"])


def test_unknown_dash_option_stops_parsing():
    inv = parse(["h", "-x", "--rgahp-nologin", "blahpd"])
    assert inv.gahp == "blahpd"                    # trailing keyword still names the channel
    assert inv.gahp_args == ["-x", "--rgahp-nologin"]
    assert inv.login is True                       # not parsed: after the stop
    inv = parse(["h", "-x", "condor_ft-gahp"])
    assert inv.gahp == "condor_ft-gahp" and inv.gahp_args == ["-x"]


def test_bare_word_command():
    inv = parse(["h", "mycmd", "blahpd"])          # remote_gahp runs "mycmd" here
    assert inv.gahp == "mycmd" and inv.gahp_args == []
    inv = parse(["h", "mycmd", "condor_ft-gahp"])
    assert inv.gahp == "condor_ft-gahp"


def test_double_dash():
    assert parse(["h", "--", "blahpd"]).gahp == "blahpd"
    inv = parse(["h", "--", "mycmd", "a", "blahpd"])
    assert (inv.gahp, inv.gahp_args) == ("mycmd", ["a"])
    inv = parse(["h", "--rgahp-script", "S", "--", "condor_ft-gahp"])
    assert inv.gahp == "condor_ft-gahp"
    inv = parse(["h", "--rgahp-script", "S", "--", "foo", "blahpd"])
    assert (inv.gahp, inv.gahp_args) == ("S", ["foo"])
    with pytest.raises(UsageError, match="^Missing remote command$"):
        parse(["h", "--"])


def test_rvgahp_socket():
    inv = parse(["alice@h", "--rvgahp-socket", "/p/alice.sock", "blahpd"])
    assert inv.rvgahp_socket == "/p/alice.sock" and inv.gahp == "blahpd"


# ---------------------------------------------------------------- parse: errors and help

@pytest.mark.parametrize("argv, message", [
    ([], "Missing hostname"),
    (["--rgahp-nologin"], "Missing hostname"),
    (["h"], "Missing remote command"),
    (["blahpd"], "Missing remote command"),        # the GAHP name taken as the host, as remote_gahp
    (["h", "--rgahp-bogus", "blahpd"], "Unknown option: --rgahp-bogus"),
    (["h", "--rgahp-user=bob", "blahpd"], "Unknown option: --rgahp-user=bob"),
    (["h", "blahpd", "--rgahp-user"], "Option --rgahp-user requires an argument"),
    (["h", "--persist", "x", "blahpd"], "Invalid value for --persist: x"),
    (["h", "--connect-timeout", "0", "blahpd"], "Invalid value for --connect-timeout: 0"),
    (["h", "--keepalive", "-1", "blahpd"], "Invalid value for --keepalive: -1"),
    (["h", "--persist", "nan", "blahpd"], "Invalid value for --persist: nan"),
])
def test_usage_errors(argv, message):
    with pytest.raises(UsageError) as ei:
        parse(argv)
    assert str(ei.value) == message


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag):
    with pytest.raises(HelpRequested):
        parse(["h", flag, "blahpd"])
    with pytest.raises(HelpRequested):
        parse([flag])
    assert not issubclass(HelpRequested, UsageError)


def test_usage_text_lists_options():
    text = usage()
    for opt in ("--rgahp-user", "--rgahp-key", "--rgahp-nokey", "--rgahp-pass", "--rgahp-nopass",
                "--rgahp-glite", "--rgahp-script", "--rgahp-nobatchmode", "--rgahp-nologin",
                "--rvgahp-socket", "--known-hosts", "--ssh-config", "--control-dir", "--no-share",
                "--persist", "--connect-timeout", "--keepalive"):
        assert opt in text
    assert text.endswith("\n")


def test_own_options():
    inv = parse(["h", "--known-hosts", "/a", "--known-hosts=/b", "--ssh-config", "none",
                 "--control-dir=/tmp/c", "--no-share", "--persist", "0", "--connect-timeout", "2.5",
                 "--keepalive=0", "blahpd"])
    assert inv.known_hosts == ["/a", "/b"]
    assert inv.ssh_config == "none" and inv.control_dir == "/tmp/c" and inv.share is False
    assert (inv.persist, inv.connect_timeout, inv.keepalive) == (0.0, 2.5, 0.0)


# ---------------------------------------------------------------- remote_command strings

def test_remote_command_blahpd_exact():
    assert remote_command(parse(["alice@h", "blahpd"])) == BLAHPD_CMD
    assert remote_command(parse(["alice@h", "batch_gahp"])) == BLAHPD_CMD
    assert remote_command(parse(["h", "--rgahp-nologin", "blahpd"])) == BLAHPD_CMD.replace(
        "/bin/bash -l -c", "/bin/bash -c")


def test_remote_command_ft_exact():
    inv = parse(["alice@h", "--rgahp-script", "S", "condor_ft-gahp"])
    assert remote_command(inv) == FT_CMD
    assert remote_command(inv, forward_port=40000) == FT_CMD   # the port line is printed locally


def test_remote_command_glite_and_script():
    inv = parse(["h", "--rgahp-glite", "/opt/bosco/glite", "blahpd"])
    assert remote_command(inv) == ("/bin/bash -l -c 'BLAHPD_LOCATION=/opt/bosco/glite "
                                   "GLITE_LOCATION=/opt/bosco/glite /opt/bosco/glite/bin/blahpd'")
    inv = parse(["h", "--rgahp-script", "/home/alice/bin/mygahp", "blahpd"])
    assert remote_command(inv) == ("/bin/bash -l -c 'BLAHPD_LOCATION=~/bosco/glite "
                                   "GLITE_LOCATION=~/bosco/glite /home/alice/bin/mygahp'")
    inv = parse(["h", "--rgahp-glite", "~/my glite", "blahpd"])
    assert remote_command(inv) == ("/bin/bash -l -c 'BLAHPD_LOCATION=~/'\\''my glite'\\'' "
                                   "GLITE_LOCATION=~/'\\''my glite'\\'' ~/'\\''my glite'\\''/bin/blahpd'")


# --- the strings through a real shell: fake $HOME with a fake blahpd that reports argv and env

FAKE_GAHP = """#!/bin/sh
printf 'argv0=%s\\n' "$0"
for a in "$@"; do printf 'arg=[%s]\\n' "$a"; done
printf 'BLAHPD_LOCATION=[%s]\\n' "${BLAHPD_LOCATION-unset}"
printf 'GLITE_LOCATION=[%s]\\n' "${GLITE_LOCATION-unset}"
printf 'CONDOR_CONFIG=[%s]\\n' "${CONDOR_CONFIG-unset}"
"""


def _install(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(FAKE_GAHP)
    os.chmod(path, stat.S_IRWXU)


def _run_remote(home, command, shell="/bin/bash"):
    """What sshd does with the command string: ``$SHELL -c <string>`` in the user's home."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([shell, "-c", command], cwd=str(home), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    # a login shell may print things from /etc/profile; keep the fake GAHP's lines
    return [ln for ln in lines if ln.startswith(("argv0=", "arg=", "BLAHPD_", "GLITE_", "CONDOR_"))]


def _report(argv0, args, blahpd, glite, condor):
    return (["argv0=%s" % argv0] + ["arg=[%s]" % a for a in args]
            + ["BLAHPD_LOCATION=[%s]" % blahpd, "GLITE_LOCATION=[%s]" % glite,
               "CONDOR_CONFIG=[%s]" % condor])


WEIRD_ARGS = ["plain", "two words", "it's", 'dq"x', "$HOME", "`id`", "a;b", "*", "", "~/x", "\\"]
SHELLS = [s for s in ("/bin/bash", "/bin/sh") if os.path.exists(s)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("login", [True, False])
def test_blahpd_command_through_shell_default_glite(tmp_path, shell, login):
    home = tmp_path / "home"
    _install(str(home / "bosco/glite/bin/blahpd"))
    argv = ["alice@h"] + ([] if login else ["--rgahp-nologin"]) + ["blahpd"]
    inv = parse(argv)
    inv.gahp_args = list(WEIRD_ARGS)
    g = "%s/bosco/glite" % home
    assert _run_remote(home, remote_command(inv), shell) == _report(
        g + "/bin/blahpd", WEIRD_ARGS, g, g, "unset")


@pytest.mark.parametrize("glite_rel", ["my glite", "it's here", 'q"uo te', "a$b`c`"])
def test_blahpd_command_through_shell_tilde_glite(tmp_path, glite_rel):
    home = tmp_path / "home dir's"
    _install(str(home / glite_rel / "bin/blahpd"))
    inv = parse(["h", "--rgahp-nologin", "--rgahp-glite", "~/" + glite_rel, "blahpd", "x y"])
    g = "%s/%s" % (home, glite_rel)
    assert _run_remote(home, remote_command(inv)) == _report(g + "/bin/blahpd", ["x y"], g, g, "unset")


def test_blahpd_command_through_shell_absolute_glite(tmp_path):
    glite = tmp_path / "we ird" / "it's \"q\"" / "glite"
    home = tmp_path / "home"
    home.mkdir()
    _install(str(glite / "bin/blahpd"))
    inv = parse(["h", "--rgahp-nologin", "--rgahp-glite", str(glite), "blahpd"])
    assert _run_remote(home, remote_command(inv)) == _report(
        str(glite) + "/bin/blahpd", [], str(glite), str(glite), "unset")


def test_ft_command_through_shell(tmp_path):
    home = tmp_path / "home"
    _install(str(home / "bosco/glite/bin/condor_ft-gahp"))
    inv = parse(["h", "--rgahp-nologin", "condor_ft-gahp"])
    g = "%s/bosco/glite" % home
    assert _run_remote(home, remote_command(inv, 40000)) == _report(
        g + "/bin/condor_ft-gahp", ["-f"], "unset", "unset", g + "/etc/condor_config.ft-gahp")


def test_script_command_through_shell(tmp_path):
    home = tmp_path / "home"
    _install(str(home / "bin/my gahp"))
    # a command string given by the admin: passed as is, its own quoting and words kept
    inv = parse(["h", "--rgahp-nologin", "--rgahp-script", "~/bin/'my gahp' --flag 'a b'",
                 "blahpd"])
    g = "%s/bosco/glite" % home
    assert _run_remote(home, remote_command(inv)) == _report(
        "%s/bin/my gahp" % home, ["--flag", "a b"], g, g, "unset")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_login_flag_reads_profile(tmp_path):
    home = tmp_path / "home"
    _install(str(home / "bosco/glite/bin/blahpd"))
    (home / ".bash_profile").write_text("export GLITE_LOCATION=from-profile\necho PROFILE-RAN\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["/bin/bash", "-c", remote_command(parse(["h", "blahpd"]))], env=env,
                         cwd=str(home), stdout=subprocess.PIPE, timeout=30).stdout.decode()
    assert "PROFILE-RAN" in out
    # the command's assignment comes after the profile, so it wins
    assert "GLITE_LOCATION=[%s/bosco/glite]" % home in out


# ---------------------------------------------------------------- CONDOR_INHERIT

@pytest.mark.parametrize("inherit, expected", [
    ("12345 <10.0.0.5:9618?addrs=10.0.0.5-9618&alias=ce.example&sock=gridmanager_1_2> 0",
     ("10.0.0.5", 9618)),
    ("12345 <10.0.0.5:9618> 0", ("10.0.0.5", 9618)),
    ("1 <[2001:db8::5]:9618?addrs=[2001:db8::5]-9618> 0", ("2001:db8::5", 9618)),
    ("1 <ce.example.org:9618?x> <10.1.1.1:1> 0", ("ce.example.org", 9618)),
])
def test_gridmanager_address(inherit, expected):
    assert gridmanager_address({"CONDOR_INHERIT": inherit}) == expected + (None,)


@pytest.mark.parametrize("environ", [{}, {"CONDOR_INHERIT": ""}])
def test_gridmanager_address_undefined(environ):
    assert gridmanager_address(environ) == (
        "127.0.0.1", 12345,
        "CONDOR_INHERIT not defined, using bogus value 127.0.0.1:12345 for gridmanager address")


@pytest.mark.parametrize("inherit", ["garbage", "1 <> 0", "1 <10.0.0.5> 0", "1 <10.0.0.5:0> 0",
                                     "1 <h:99999> 0", "1 <::1:9618> 0"])
def test_gridmanager_address_unusable(inherit):
    host, port, warning = gridmanager_address({"CONDOR_INHERIT": inherit})
    assert (host, port) == ("127.0.0.1", 12345)
    assert warning.startswith("CONDOR_INHERIT has no usable gridmanager address")
    assert warning.endswith("using bogus value 127.0.0.1:12345 for gridmanager address")


def test_invocation_repr_and_target():
    inv = Invocation()
    inv.host = "h"
    assert "h" in repr(inv) and inv.target == "h"


# ---------------------------------------------------------------- the regex-free matchers

def _regex_parse_host(token):
    """The regexes _parse_host replaced (remote_gahp's host regex and ours for IPv6)."""
    import ipaddress
    import re
    m = re.match(r"^(([A-Za-z_][A-Za-z0-9_.-]*)@)?([A-Za-z0-9.-]+)(:([0-9]*))?$", token)
    if m:
        return m.group(2) or "", m.group(3), m.group(5) or ""
    m = re.match(r"^(([A-Za-z_][A-Za-z0-9_.-]*)@)?\[([0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?)\](:([0-9]*))?$",
                 token)
    if m:
        try:
            ipaddress.IPv6Address(m.group(3).split("%", 1)[0])
        except ValueError:
            return None
        return m.group(2) or "", m.group(3), m.group(6) or ""
    return None


def _regex_split_hostport(addr):
    import re
    m = re.match(r"^\[([^\]]+)\]:([0-9]+)$", addr) or re.match(r"^([^:\[\]]+):([0-9]+)$", addr)
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return m.group(1), int(m.group(2))


_HOSTISH = ["a", "Z", "_", "f", "0", "9", ".", "-", "@", ":", "[", "]", "%", "\n", " ", "é", "²", "<",
            "?", ">", "::1", "fe80::1", "[::1]", "2001:db8::5", "alice", "h.example", "22", "65536"]


def _tokens(n, seed):
    import random
    rnd = random.Random(seed)
    yield from ["", "\n", "h\n", "h\n\n", "a@h:22\n", "[::1]\n", "[::1]:\n", "@h", "a@@h", "a@b@h",
                "[fe80::1%eth0]:22", "u@[fe80::1%eth0]", "[fe80::1%]", "[fe80::1%a%b]", "[::1]x",
                "[::1]:2x", "[:::]", "[1.2.3.4]", "[::ffff:1.2.3.4]:1", "h:2:2", "h:²", "1a@h"]
    for _ in range(n):
        yield "".join(rnd.choice(_HOSTISH) for _ in range(rnd.randint(1, 7)))


def test_parse_host_matches_the_regexes():
    from gahp.ssh.args import _parse_host
    for tok in _tokens(20000, 1):
        assert _parse_host(tok) == _regex_parse_host(tok), repr(tok)


def test_split_hostport_and_inherit_match_the_regexes():
    import re

    from gahp.ssh.args import _split_hostport
    for tok in _tokens(20000, 2):
        assert _split_hostport(tok) == _regex_split_hostport(tok), repr(tok)
        inherit = "1 <" + tok + "> <x:1> 0" if len(tok) % 2 else tok
        m = re.search(r"<([^?>]*)", inherit)
        want = _regex_split_hostport(m.group(1) if m else "")
        got = gridmanager_address({"CONDOR_INHERIT": inherit})
        assert (got[:2] if got[2] is None else None) == want, repr(inherit)
