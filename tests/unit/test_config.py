import os

import pytest

from blahp import config as cfg

C_BLAHP_TEST_CONFIG = """
# This is a test configuration file
 #

a=123
  # Merrily merrily quirky
#But parsable by /bin/sh
b=b_value
 c=Junk
 c=c_value
 b1=tRuE
b2=1
b3=Yes
b4=0
b4="   Junk"
b5=" False"
export e1=" My Env Variable "
file=/tmp/test_`whoami`.bjr
arr[0]=value_0
arr[3]=value_3
echo this noise must not matter
empty=
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


def test_values_as_the_c_blahp_reads_them(tmp_path):
    c = cfg.load(environ={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
                 files=[write(tmp_path, "blah.config", C_BLAHP_TEST_CONFIG)])
    assert c.get("a") == "123"
    assert c.get("b") == "b_value"
    assert c.get("c") == "c_value"
    assert c.get("b4") == "   Junk"
    assert c.get("e1") == " My Env Variable "
    assert c.get("file") == "/tmp/test_%s.bjr" % __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert c.get_array("arr") == ["value_0", "value_3"]
    assert c.get("empty") is None and c.get("empty", "dflt") == "dflt"
    assert c.get("nosuchkey") is None
    # config_test_boolean
    assert [c.get_bool(k) for k in ("b1", "b2", "b3", "b4", "b5")] == [True, True, True, False, False]
    # exported variables reach the environment of batch commands, plain ones do not
    assert c.exports == {"e1": " My Env Variable "}
    assert c.environment["e1"] == " My Env Variable "
    assert "b" not in c.environment


@pytest.mark.parametrize("value,expected", [
    ("1", True), ("42abc", True), ("yes", True), ("YESSIR", True), ("true", True), ("True ", True),
    ("0", False), ("-1", False), ("no", False), ("false", False), ("y", False), ("on", False),
])
def test_boolean_rules(value, expected):
    assert cfg._is_true(value) is expected


def test_location_order(tmp_path):
    inst = tmp_path / "inst"
    write(inst, "etc/blah.config", "x=1\n")
    assert cfg.locate({"BLAHPD_CONFIG_LOCATION": "/some/where"}) == ("/some/where", True)
    assert cfg.locate({"BLAHPD_LOCATION": str(inst)}) == (str(inst / "etc/blah.config"), False)
    assert cfg.locate({"GLITE_LOCATION": str(inst)}) == (str(inst / "etc/blah.config"), False)
    # BLAHPD_LOCATION wins over GLITE_LOCATION; an unreadable install path falls back to /etc
    assert cfg.locate({"BLAHPD_LOCATION": str(tmp_path / "none"), "GLITE_LOCATION": str(inst)}) == \
        ("/etc/blah.config", False)


def test_dot_d_and_user_config_override_in_order(tmp_path):
    main = write(tmp_path, "etc/blah.config", "k=main\nonly_main=1\nshared=main\n")
    write(tmp_path, "etc/blah.config.d/20-b", "k=b\n")
    write(tmp_path, "etc/blah.config.d/10-a", "k=a\nshared=a\n")
    write(tmp_path, "etc/blah.config.d/.hidden", "k=hidden\n")
    home = tmp_path / "home"
    write(home, ".blah/user.config", "shared=user\n")
    env = {"HOME": str(home), "BLAHPD_CONFIG_LOCATION": main, "PATH": os.environ["PATH"]}
    files = cfg.config_files(env)
    assert [os.path.relpath(f, tmp_path) for f in files] == [
        "etc/blah.config", "etc/blah.config.d/10-a", "etc/blah.config.d/20-b", "home/.blah/user.config"]
    c = cfg.load(environ=env)
    assert (c.get("k"), c.get("shared"), c.get("only_main")) == ("b", "user", "1")


def test_missing_default_config_means_defaults(tmp_path):
    env = {"HOME": str(tmp_path), "BLAHPD_LOCATION": str(tmp_path / "nothing"), "PATH": os.environ["PATH"]}
    files = cfg.config_files(env)
    assert files == ([] if not os.path.exists("/etc/blah.config") else ["/etc/blah.config"])


def test_explicit_config_must_exist(tmp_path):
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(environ={"BLAHPD_CONFIG_LOCATION": str(tmp_path / "missing"), "HOME": str(tmp_path)})


def test_directory_is_not_a_config(tmp_path):
    with pytest.raises(cfg.ConfigError, match="is a directory"):
        cfg.load(environ={"BLAHPD_CONFIG_LOCATION": str(tmp_path), "HOME": str(tmp_path)})


def test_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, "bad.config", "a=1\nif then fi (\n")
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load(environ={"HOME": str(tmp_path), "PATH": os.environ["PATH"]}, files=[p])
    assert "bad.config" in str(e.value) and "line 2" in str(e.value)
    assert "\n" not in str(e.value)


def test_file_name_is_never_interpreted_by_the_shell(tmp_path):
    p = write(tmp_path, "we$(touch pwned)ird 'name'.config", "ok=1\n")
    c = cfg.load(environ={"HOME": str(tmp_path), "PATH": os.environ["PATH"]}, files=[p])
    assert c.get("ok") == "1"
    assert not os.path.exists("pwned") and not (tmp_path / "pwned").exists()


def test_typed_getters(tmp_path):
    c = cfg.Config({"n": "12", "bad": "x1", "f": "2.5", "l": "slurm, pbs,sge"})
    assert c.get_int("n", 0) == 12 and c.get_int("missing", 7) == 7
    assert c.get_float("f", 0) == 2.5
    assert c.get_list("l") == ["slurm", "pbs", "sge"]
    with pytest.raises(cfg.ConfigError, match="bad"):
        c.get_int("bad", 1)
    with pytest.raises(cfg.ConfigError, match="minimum"):
        c.get_int("n", 1, minimum=20)
