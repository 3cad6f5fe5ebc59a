"""gahp-shell: typed commands -> GAHP request lines, and result lines -> fields/ads/tables."""
import pytest

from blahp.classad import parse_ad as real_parse_ad
from gahp.escaping import split_args
from gahp.shell.lines import (LineMaker, UsageError, ad_from_text, build_ad, classad_literal,
                              classad_string, parse_ad, parse_assignment, parse_result, parse_status,
                              raw_request, render_ad, render_result, split_commands, status_name,
                              tokenize, unquote)


def test_request_ids_increase_per_shell():
    m = LineMaker()
    assert m.make("ping local").line == "BLAH_PING 1 local"
    assert m.make("status local/1/2").line == "BLAH_JOB_STATUS 2 local/1/2"
    assert m.make("version").reqid is None          # sync commands take no id
    assert m.make("cancel local/1/2").line == "BLAH_JOB_CANCEL 3 local/1/2"
    assert m.make("hold x/1").line == "BLAH_JOB_HOLD 4 x/1"
    assert m.make("RESUME x/1").line == "BLAH_JOB_RESUME 5 x/1"
    assert LineMaker().make("ping slurm").reqid == "1"   # a new shell starts again


@pytest.mark.parametrize("typed,wire", [
    ("commands", "COMMANDS"), ("version", "VERSION"), ("results", "RESULTS"),
    ("async_on", "ASYNC_MODE_ON"), ("async_off", "ASYNC_MODE_OFF"), ("quit", "QUIT"),
])
def test_sync_commands(typed, wire):
    r = LineMaker().make(typed)
    assert (r.line, r.command, r.is_async) == (wire, wire, False)


def test_empty_and_comment_lines_make_nothing():
    m = LineMaker()
    assert m.make("   ") is None and m.make("# note") is None
    assert m.make("ping local").reqid == "1"


@pytest.mark.parametrize("typed", ["frobnicate", "status", "ping", "ping a b", "hold a b", "version x",
                                   "submit", "submit Cmd", "submit 1x=2", "submit -f", 'status "open',
                                   "raw", "submit A:="])
def test_usage_errors(typed):
    with pytest.raises(UsageError):
        LineMaker().make(typed)


def test_job_id_with_spaces_is_escaped_and_round_trips():
    r = LineMaker().make('status "odd id/with\\\\back"')
    assert split_args(r.line) == ["BLAH_JOB_STATUS", "1", "odd id/with\\back"]
    assert r.expect == ["1.0", "1.1"]      # the server reads an escaped space as an id separator


def test_multi_id_status_expects_one_result_per_id():
    r = LineMaker().make("status a/1 b/2 c/3")
    assert r.line == "BLAH_JOB_STATUS 1 a/1\\ b/2\\ c/3"
    assert r.expect == ["1.0", "1.1", "1.2"]
    assert split_args(r.line)[2] == "a/1 b/2 c/3"


def test_tokenize_quotes_and_escapes():
    words = tokenize('a "b c" d\\ e \'f "g\' x="y\\"z"')
    assert words == ["a", "b c", "d e", 'f "g', 'x=y"z']
    assert [w.quoted for w in words] == [False, True, True, True, True]


def test_split_commands():
    assert split_commands("ping local; status 'a;b' ;; version\nquit") == \
        ["ping local", "status 'a;b'", "version", "quit"]
    assert split_commands('submit A="x;y"; ping local') == ['submit A="x;y"', "ping local"]
    with pytest.raises(UsageError):
        split_commands("ping 'local")


@pytest.mark.parametrize("value,quoted,literal", [
    ("30", False, "30"), ("-1.5e3", False, "-1.5e3"), ("true", False, "true"), ("FALSE", False, "false"),
    ("30", True, '"30"'), ("true", True, '"true"'), ("/bin/sleep", False, '"/bin/sleep"'),
    ('say "hi"', True, r'"say \"hi\""'), ("a\\b", True, r'"a\\b"'), ("12abc", False, '"12abc"'),
])
def test_classad_literal(value, quoted, literal):
    assert classad_literal(value, quoted) == literal


def test_assignments():
    assert parse_assignment(tokenize('Args="30"')[0]) == ("Args", '"30"')
    assert parse_assignment(tokenize("Args=30")[0]) == ("Args", "30")
    assert parse_assignment(tokenize("Req:='Memory > 2'")[0]) == ("Req", "Memory > 2")
    assert parse_assignment(tokenize("Empty=")[0]) == ("Empty", '""')


def test_submit_ad_round_trip_through_the_server_tokeniser_and_classad_parser():
    tricky = 'He said "hi"\\there  two  spaces\ttab'
    typed = "submit Cmd=/bin/sleep Args=\"30\" N=7 Ok=true Odd=%s Expr:='N * 2' gridtype=local" % (
        '"' + tricky.replace("\\", "\\\\").replace('"', '\\"') + '"')
    r = LineMaker().make(typed)
    argv = split_args(r.line)
    assert argv[:2] == ["BLAH_JOB_SUBMIT", "1"] and len(argv) == 3
    ad = real_parse_ad(argv[2])
    assert ad.evaluate("Cmd") == "/bin/sleep"
    assert ad.evaluate("Args") == "30"
    assert ad.evaluate("N") == 7 and ad.evaluate("Ok") is True
    assert ad.evaluate("Odd") == tricky
    assert ad.evaluate("Expr") == 14
    assert ad.evaluate("gridtype") == "local"


def test_build_ad_last_duplicate_wins():
    assert build_ad([("A", "1"), ("B", '"x"'), ("a", "2")]) == '[ a = 2; B = "x" ]'


def test_classad_string_escapes():
    assert classad_string('a"b\\c\nd') == r'"a\"b\\c\nd"'
    assert unquote(classad_string('a"b\\c\nd\te')) == 'a"b\\c\nd\te'


def test_submit_from_file(tmp_path):
    new = tmp_path / "new.ad"
    new.write_text('[\n  Cmd = "/bin/echo";\n  Args = "a b";\n  gridtype = "local"\n]\n')
    r = LineMaker().make("submit -f %s" % new)
    argv = split_args(r.line)
    assert real_parse_ad(argv[2]).evaluate("Args") == "a b"
    assert "\n" not in r.line
    old = tmp_path / "old.ad"
    old.write_text('# comment\nCmd = "/bin/echo"\n\nArgs = "x"\n')
    assert ad_from_text(old.read_text()) == '[ Cmd = "/bin/echo"; Args = "x" ]'
    with pytest.raises(UsageError):
        LineMaker().make("submit -f %s" % (tmp_path / "missing"))


def test_raw_is_verbatim_and_tracks_async_ids():
    r = raw_request("BLAH_PING 77 local")
    assert (r.line, r.reqid, r.command, r.expect) == ("BLAH_PING 77 local", "77", "BLAH_PING", ["77"])
    r = LineMaker().make("raw  blah_job_status 9 a/1\\ b/2")
    assert r.line == "blah_job_status 9 a/1\\ b/2" and r.expect == ["9.0", "9.1"]
    r = LineMaker().make("raw COMMANDS")
    assert r.reqid is None and r.line == "COMMANDS"


def test_parse_status_result():
    line = r'5 0 No\ Error 2 [\ BatchJobId\ =\ "4568";\ JobStatus\ =\ 2;\ HoldReason\ =\ "a;\ b\ =\ \"c\"\\\\d"\ ]'
    fields = parse_result(line)
    assert fields[:4] == ["5", "0", "No Error", "2"]
    st = parse_status(fields)
    assert (st.code, st.job_status, st.state) == (0, 2, "RUNNING")
    assert st.ad == {"BatchJobId": '"4568"', "JobStatus": "2", "HoldReason": r'"a; b = \"c\"\\d"'}
    assert unquote(st.ad["HoldReason"]) == 'a; b = "c"\\d'


def test_parse_ad_tolerant():
    assert parse_ad("[]") == {}
    assert parse_ad("A = 1; junk; B = \"x\";") == {"A": "1", "B": '"x"'}
    assert parse_ad('[ExitCode=0;ExitBySignal=false]') == {"ExitCode": "0", "ExitBySignal": "false"}


def test_status_names():
    assert [status_name(i) for i in range(1, 6)] == ["IDLE", "RUNNING", "REMOVED", "COMPLETED", "HELD"]
    assert status_name(0) == status_name("x") == "UNKNOWN"


def test_render_ad_aligned():
    text = render_ad({"BatchJobId": '"42"', "JobStatus": "3", "X": "1"})
    assert text.splitlines() == ['  BatchJobId  "42"', "  JobStatus   3 (REMOVED)", "  X           1"]


def test_render_result():
    req = LineMaker().make("status local/1/2")
    out = render_result(req, ["1", "0", "No Error", "4", '[ BatchJobId = "2"; JobStatus = 4; ExitCode = 0 ]'])
    assert out.splitlines()[0] == "1 0 No Error COMPLETED (4)"
    assert "ExitCode    0" in out
    assert render_result(req, ["1", "255", "Malformed jobId or out of memory", "0", "N/A"]) == \
        "1 255 Malformed jobId or out of memory"
    assert render_result(LineMaker().make("ping x"), ["1", "0", "No error"]) == "1 0 No error"
