"""The conformance session format: parser errors, placeholders, recording (no server here)."""
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
