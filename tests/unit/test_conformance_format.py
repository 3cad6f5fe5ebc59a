"""The conformance session format: parser errors, placeholders, recording (no server here)."""
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.pattern import FIELD, Template
from conformance.record import to_session
from conformance.session import SessionSyntaxError, parse
from gahp.escaping import quote_arg as escape, read_argv

HEAD = "@ purpose: test\n"


def test_steps_and_blocks():
    s = parse(HEAD + "@ needs: sim-lsf\n@ config: a=1\n@ config: b=2\n"
              "> PING\n< S\n< R\n>raw 'A\\rB\\x00'\n<raw 'x\\n'\n"
              "= retry 30\n> X 1\n= results within 5\n< 1 0 {any}\n= end\n= end\n"
              "= unordered\n< a\n< b\n= end\n= sim advance 3\n= restart\n= eof\n= exit 0\n", "x.session")
    assert [st.kind for st in s.steps] == ["send", "expect", "r", "send_raw", "expect_raw", "retry", "unordered",
                                           "sim", "restart", "eof", "exit"]
    assert s.steps[3].data == b"A\rB\x00" and s.steps[4].data == b"x\n"
    retry = s.steps[5]
    assert [c.kind for c in retry.body] == ["send", "results"] and retry.body[1].args == ["within", "5"]
    assert s.needs == "sim-lsf" and s.config == ["a=1", "b=2"] and s.name == "x"


@pytest.mark.parametrize("text, message", [
    ("> A\n", "every session says what it shows"),
    (HEAD + "@ needs: pbs\n", "is not one of"),
    (HEAD + "@ colour: red\n", "unknown metadata key"),
    (HEAD + "@ purpose: twice\n", "given twice"),
    (HEAD + "> A\n@ needs: local\n", "belongs before the first step"),
    (HEAD + "= results\n< 1\n", "never closed"),
    (HEAD + "= end\n", "without an open block"),
    (HEAD + "= results\n> RESULTS\n= end\n", "holds only '< ' result lines"),
    (HEAD + "= results\n= end\n", "an empty"),
    (HEAD + "= sim advance 3\n", "need a simulated batch system"),
    (HEAD + "= sleep soon\n", "must be a number"),
    (HEAD + "= frobnicate\n", "unknown directive"),
    (HEAD + "= retry 9\n= restart\n= end\n", "cannot be inside a block"),
    (HEAD + "< {bad name}\n", "unknown placeholder"),
    (HEAD + "< a } b\n", "lone '}'"),
    (HEAD + "< {x/(/}\n", "bad regular expression"),
    (HEAD + "<raw 'no newline'\n", "ends with \\n"),
    (HEAD + ">raw notaliteral\n", "quoted string literal"),
    (HEAD + "hello\n", "a line starts with"),
])
def test_syntax_errors_name_the_line(text, message):
    with pytest.raises(SessionSyntaxError) as e:
        parse(text, "bad.session")
    assert message in str(e.value) and str(e.value).startswith("bad.session:")


def test_captures_are_reused_and_checked():
    b = {}
    t = Template("{r} 0 No\\ error {job/slurm\\/[0-9]{8}\\/[0-9]+/}")
    got = t.match("2 0 No\\ error slurm/20261122/17", b)
    assert got == {"r": "2", "job": "slurm/20261122/17"}
    b.update(got)
    again = Template("{r} {job}")
    assert again.match("2 slurm/20261122/17", b) == {}
    assert again.match("2 slurm/20261122/18", b) is None
    assert Template("> {job}").substitute(b) == "> slurm/20261122/17"
    assert t.match("2 0 No\\ error slurm/2026112/17", {}) is None       # the regex applies
    assert Template("{a} {a}").match("x y", {}) is None                 # twice in one line: equal


def test_reserved_placeholders_and_braces():
    assert Template("{any} {date} [{*}]").match("a\\ b 20261122 [ x = 1 ]", {}) == {}
    assert Template("{any}").match("a b", {}) is None
    assert Template("{date}").match("2026112", {}) is None
    assert Template("{{literal}}").match("{literal}", {}) == {}
    assert Template("{/[0-9]+/} x").match("42 x", {}) == {}
    with pytest.raises(KeyError):
        Template("{unbound}").substitute({})
    with pytest.raises(KeyError):
        Template("{any}").substitute({})


fields = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=12)


@given(st.lists(fields, min_size=1, max_size=6))
def test_a_capture_takes_exactly_one_wire_field(values):
    line = " ".join(escape(v) for v in values)
    tmpl = Template(" ".join("{f%d}" % i for i in range(len(values))))
    got = tmpl.match(line, {})
    assert got is not None and [read_argv(got["f%d" % i])[0] for i in range(len(values))] == values
    assert re.fullmatch(FIELD, escape(values[0]))


@given(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40))
def test_literal_text_matches_itself_only(text):
    tmpl = Template(text.replace("{", "{{").replace("}", "}}"))
    assert tmpl.match(text, {}) == {}
    assert tmpl.match(text + "x", {}) is None


def test_recording_generalises_job_ids_and_batches():
    events = [("<", b"$GahpVersion: x $\r\n"), (">", b"ASYNC_MODE_ON\r\n"), ("<", b"S Async\\ mode\\ on\r\n"),
              (">", b"BLAH_JOB_SUBMIT 2 [x]\r\n"), ("<", b"S\r\n"), ("<", b"R\r\n"), (">", b"RESULTS\r\n"),
              ("<", b"S 1\r\n"), ("<", b"2 0 No\\ error slurm/20261122/5\r\n"),
              (">", b"BLAH_JOB_STATUS 3 slurm/20261122/5\r\n"), ("<", b"S\r\n"),
              (">", b"BLAH_PING 4 slurm\r\n"), ("<", b"S\r\n"), (">", b"RESULTS\r\n"), ("<", b"S 2\r\n"),
              ("<", b"4 0 No\\ error\r\n"), ("<", b'3 0 No\\ Error 1 [\\ BatchJobId\\ =\\ "5";\\ A\\ =\\ {1}\\ ]\r\n'),
              ("<", b"E bare LF\n")]
    text = to_session(events, "demo", "slurm", ["blahpd"])
    s = parse(text, "rec.session")
    assert "< 2 0 No\\ error {job1}" in text and "> BLAH_JOB_STATUS 3 {job1}" in text
    assert "{{1}}" in text and "<raw b'E bare LF\\n'" in text
    assert [st.kind for st in s.steps][-2:] == ["unordered", "expect_raw"]


def test_a_reused_request_id_is_checked_against_its_latest_command():
    from conformance.checks import check_session
    requests = ["BLAH_PING 2 local", "RESULTS", "BLAH_JOB_STATUS 2 nonsense", "RESULTS"]
    out = (b"$GahpVersion: 1.8.0 Mar 31 2008 INFN\\ blahpd\\ (poly,new_esc_format) $\r\n"
           b"S\r\nS 1\r\n2 0 No\\ error\r\nS\r\nS 1\r\n2 255 Malformed\\ jobId\\ or\\ out\\ of\\ memory 0 N/A\r\n")
    assert check_session(requests, out) == []
    assert check_session(requests[:2], out[:out.index(b"S\r\nS 1\r\n2 255")].replace(b"No\\ error", b"No error")) == [
        "BLAH_PING result has 4 fields, expected 3: '2 0 No error'"]


# -- how reports show a line ------------------------------------------------------------------

def _unvisible(text):
    """The bytes ``visible`` showed as ``text``: the rule of conformance/README.md (Report)."""
    out, i = bytearray(), 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == "\\":
            j += 1
        run = j - i
        if run and j < len(text) and text[j] in "rnx":
            out += b"\\" * (run // 2)
            if run % 2:   # the last backslash starts an escape
                if text[j] == "x":
                    out.append(int(text[j + 1:j + 3], 16))
                    j += 3
                else:
                    out += b"\r" if text[j] == "r" else b"\n"
                    j += 1
            i = j
        elif run:
            out += b"\\" * run
            i = j
        else:
            out += text[i].encode("utf-8", "surrogateescape")
            i += 1
    return bytes(out)


def test_visible_tells_a_literal_backslash_r_from_a_cr():
    from conformance.server import visible
    assert visible(b"S Async\\ mode\\ on\r\n") == "S Async\\ mode\\ on\\r\\n"   # GAHP's escapes stay as they are
    assert visible(b"a\\\\ b\r\n") == "a\\\\ b\\r\\n"
    shown = {visible(b) for b in (b"x\\r\r\n", b"x\r\r\n", b"x\\\r\n", b"x\\x0d\r\n", b"x\\\\r\r\n")}
    assert len(shown) == 5, shown
    assert visible(b"x\\r\r\n") == "x\\\\r\\r\\n" and visible(b"x\\\r\n") == "x\\\\\\r\\n"


wire = st.lists(st.sampled_from([b"\\", b"r", b"n", b"x", b"0", b"d", b" ", b"\r", b"\n", b"\x01", b"\xff",
                                 "\u00e9".encode()]), max_size=16).map(b"".join)


@given(st.one_of(wire, st.binary(max_size=24)))
def test_visible_can_be_read_back(data):
    from conformance.server import visible
    assert _unvisible(visible(data)) == data


def test_the_diff_marks_a_literal_backslash_r_against_a_cr():
    from conformance.replay import diff_lines
    lines = diff_lines("S x\\r\r\n", b"S x\r\r\n")
    exp, got = lines[0][len("  expected: "):], lines[1][len("  received: "):]
    assert exp != got and len(lines) == 3
    first = next(i for i, (a, b) in enumerate(zip(exp, got)) if a != b)
    mark = lines[2].index("^") - len("  expected: ")
    assert mark <= first and exp[:mark] == got[:mark] and exp[mark:].startswith("\\\\r")


# -- naming the sessions of a run ---------------------------------------------------------------

def test_sessions_given_as_files_are_named_by_their_path(tmp_path, monkeypatch):
    from conformance.cli import CORPUS, find_sessions
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.session").write_text(HEAD + "> VERSION\n")
    monkeypatch.chdir(tmp_path)
    assert [s.name for s in find_sessions(["a/x.session", str(tmp_path / "b" / "x.session")])] == ["a/x", "b/x"]
    assert [s.name for s in find_sessions(["a", "a/x.session"])] == ["x"]          # the same file once
    corpus = sorted(f for f in os.listdir(os.path.join(CORPUS, "protocol")) if f.endswith(".session"))[0]
    named = find_sessions([os.path.join(CORPUS, "protocol", corpus), os.path.join(CORPUS, "local")])
    assert named[0].name == "protocol/" + corpus[:-len(".session")]
    assert all(s.name.startswith("local/") for s in named[1:])


def test_two_sessions_of_one_name_are_a_usage_error(tmp_path, monkeypatch, capsys):
    from conformance.cli import main
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.session").write_text(HEAD + "> VERSION\n")
    monkeypatch.chdir(tmp_path)
    assert main(["--server", "/nonexistent/blahpd", "a", "b"]) == 2
    err = capsys.readouterr().err
    assert "two sessions named 'x'" in err and "a/x.session" in err and "b/x.session" in err
