import pytest
from hypothesis import given, strategies as st

from gahp.escaping import (encode_line, escape_field, normalise_field, quote_arg, read_argv,
                           split_args)


@pytest.mark.parametrize("line,argv", [
    ("COMMANDS", ["COMMANDS"]),
    ("  BLAH_PING   1  slurm  ", ["BLAH_PING", "1", "slurm"]),
    (r"BLAH_PING 2\ x slurm", ["BLAH_PING", "2 x", "slurm"]),
    (r"A a\\b", ["A", "a\\b"]),
    (r'A [Args="a\"b"]', ["A", '[Args="a\\"b"]']),   # unknown escapes kept verbatim
    ("A x\\n", ["A", "x\\n"]),
    ("A abc\\", ["A", "abc\\"]),                       # lone trailing backslash kept
    ("A a\\\\ b", ["A", "a\\", "b"]),                  # \\ then an unescaped space separates
    ("A\tB", ["A\tB"]),                                # TAB is an ordinary character
    ("   ", []),
    (r"A slurm\ ", ["A", "slurm "]),
])
def test_split_args(line, argv):
    assert split_args(line) == argv


@pytest.mark.parametrize("value,wire", [
    ("No error", r"No\ error"),
    ("a\\b", r"a\\b"),
    ("tab\there", r"tab\ here"),
    ("two\nlines", "two-lines"),
    ("trailing newline\n", r"trailing\ newline"),
    ("cr\r\nlf", "cr-lf"),
    ("nul\x00bell\x07", "nul?bell?"),
    ("ünïcödé ok", "ünïcödé\\ ok"),
    ("trailing  \r\n \n", "trailing"),
])
def test_escape_field(value, wire):
    assert escape_field(value) == wire


def test_encode_line_refuses_empty_fields():
    with pytest.raises(ValueError):
        encode_line(["1", "", "x"])
    with pytest.raises(ValueError):
        encode_line(["1", "\n"])
    assert encode_line(["S", "Async mode on"]) == b"S Async\\ mode\\ on\r\n"


def test_read_argv_is_the_gridmanager_decoder():
    assert read_argv(r"2 0 No\ error") == ["2", "0", "No error"]
    assert read_argv("a  b") == ["a", "", "b"]
    assert read_argv("a \r") == ["a", ""]
    assert read_argv(r"x\\y") == ["x\\y"]
    assert read_argv(r"x\y") == ["xy"]   # the C blahp's unescaped backslash: eaten


any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60) | \
    st.text(alphabet=" \\\t\r\n\x00\x01é€\U0001F600ab", max_size=30)


@given(any_text)
def test_reply_escaping_round_trips_through_both_decoders(text):
    wire = escape_field(text)
    norm = normalise_field(text)
    if not norm:
        assert wire == ""
        return
    # the gridmanager and our own tokeniser both recover the normalised text, in one token
    assert read_argv(wire) == [norm]
    assert split_args(wire) == [norm]
    # decoding then re-encoding is the identity (protocol.md 12.12)
    assert escape_field(read_argv(wire)[0]) == wire
    assert "\r" not in wire and "\n" not in wire and "\t" not in wire
    assert not wire.endswith(" ") or wire.endswith("\\ ")


@given(any_text.filter(bool))
def test_request_escaping_round_trips_any_text(text):
    # what the gridmanager's escapeGahpString produces, our tokeniser reads back exactly
    assert split_args(quote_arg(text)) == [text]


@given(st.lists(any_text.filter(bool), min_size=1, max_size=6))
def test_request_lines_round_trip_argument_lists(args):
    assert split_args(" ".join(quote_arg(a) for a in args)) == args


@given(st.lists(any_text, min_size=1, max_size=6))
def test_encoded_lines_decode_to_the_normalised_fields(fields):
    fields = [f for f in fields if normalise_field(f)]
    if not fields:
        return
    line = encode_line(fields)
    assert line.endswith(b"\r\n") and b"\r" not in line[:-2] and b"\n" not in line[:-2]
    assert read_argv(line[:-2].decode("utf-8", "surrogateescape")) == [normalise_field(f) for f in fields]
