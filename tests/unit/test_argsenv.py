import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blahp.argsenv import (ArgumentsError, job_arguments, job_environment, parse_env_v1,
                           parse_env_v2, parse_remaps, parse_v1, parse_v2, quote_v2,
                           split_transfer_list)


# --- V2 arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("hello 'big world' x", ["hello", "big world", "x"]),
    ("'it''s' ''", ["it's", ""]),
    ("a\\b $HOME *", ["a\\b", "$HOME", "*"]),
    # a quoted section joins the unquoted text it touches
    ("a'b c'd", ["ab cd"]),
    ("a''b", ["ab"]),
    ("''''", ["'"]),
    ("'' '' x", ["", "", "x"]),
    ('say "hi there"', ["say", '"hi', 'there"']),
    ("  lead\t\ttrail \r\n", ["lead", "trail"]),
    # only space, tab, CR and LF separate
    ("a\vb c\fd e\u00a0f", ["a\vb", "c\fd", "e\u00a0f"]),
    ("'multi\nline' x", ["multi\nline", "x"]),
    ("", []),
    ("   ", []),
    # HTCondor's own ArgList unit-test vector
    ("This '''quoted''' arg' 'string 'contains ''many'' \"\"surprises\\'",
     ["This", "'quoted'", "arg string", "contains 'many' \"\"surprises\\"]),
])
def test_parse_v2(text, expected):
    assert parse_v2(text) == expected


@pytest.mark.parametrize("text", ["'", "a 'b c", "'it''s", "x ''' y", "ok '"])
def test_parse_v2_unbalanced_quote(text):
    with pytest.raises(ArgumentsError, match="Unbalanced quote"):
        parse_v2(text)


def test_unbalanced_quote_message_points_at_quote():
    with pytest.raises(ArgumentsError) as info:
        parse_v2("good 'bad tail")
    assert "'bad tail" in str(info.value)
    assert "good" not in str(info.value)
    assert isinstance(info.value, ValueError)


# --- V1 arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("old style", ["old", "style"]),
    ("  a \t b\r\n c  ", ["a", "b", "c"]),
    ("'not quoted' \"either\"", ["'not", "quoted'", '"either"']),
    ("a\vb", ["a\vb"]),
    ("", []),
    (None, []),
])
def test_parse_v1(text, expected):
    assert parse_v1(text) == expected


# --- precedence ------------------------------------------------------------------------------

def test_job_arguments_precedence():
    assert job_arguments("'a b'", "c d") == ["a b"]
    assert job_arguments("", "'a b'") == ["'a", "b'"]
    assert job_arguments(None, "x y") == ["x", "y"]
    assert job_arguments(None, None) == []
    with pytest.raises(ArgumentsError):
        job_arguments("'open", "fine")


def test_job_environment_precedence():
    assert job_environment("A=1", "B=2", None) == ([("A", "1")], [])
    assert job_environment("", "B=2|C=3", "|") == ([("B", "2"), ("C", "3")], [])
    assert job_environment(None, None, None) == ([], [])
    with pytest.raises(ArgumentsError):
        job_environment("A='x", "B=2", None)


# --- V2 environment --------------------------------------------------------------------------

def test_env_v2_example():
    assert parse_env_v2("A=1 B='x y'") == ([("A", "1"), ("B", "x y")], [])


@pytest.mark.parametrize("text,expected", [
    ("A=b=c", [("A", "b=c")]),
    ("A= B=''", [("A", ""), ("B", "")]),
    ("_x9=1", [("_x9", "1")]),
    ("'A=it''s here'", [("A", "it's here")]),
    ("A=1 B=2 A=3", [("A", "3"), ("B", "2")]),
])
def test_env_v2(text, expected):
    pairs, warnings = parse_env_v2(text)
    assert pairs == expected
    assert warnings == []


@pytest.mark.parametrize("token", ["junk", "=x", "9A=1", "A-B=1", "A.B=1", "$$(X)", "'A B=1'"])
def test_env_v2_drops_bad_tokens_with_warning(token):
    pairs, warnings = parse_env_v2("OK=1 " + token + " Z=2")
    assert pairs == [("OK", "1"), ("Z", "2")]
    assert len(warnings) == 1 and "ignored" in warnings[0]


# --- V1 environment --------------------------------------------------------------------------

def test_env_v1_example():
    pairs, warnings = parse_env_v1("A=1;B=2;junk")
    assert pairs == [("A", "1"), ("B", "2")]
    assert len(warnings) == 1 and "junk" in warnings[0]


@pytest.mark.parametrize("text,delim,expected", [
    ("A=1|B=2", "|", [("A", "1"), ("B", "2")]),
    ("A=1|B=2", None, [("A", "1|B=2")]),
    # a multi-character EnvDelim is ignored
    ("A=1;B=2", "||", [("A", "1"), ("B", "2")]),
    # the first character may declare the delimiter
    ("|A=1|B=x;y", None, [("A", "1"), ("B", "x;y")]),
    (";A=1;B=2", None, [("A", "1"), ("B", "2")]),
    # newline always separates; leading (not trailing) whitespace is trimmed
    ("A=1\nB=2 ;  C= 3 ", None, [("A", "1"), ("B", "2 "), ("C", " 3 ")]),
    ("A=x y 'z';;", None, [("A", "x y 'z'")]),
    ("A=b=c;A=d", None, [("A", "d")]),
    ("", None, []),
])
def test_env_v1(text, delim, expected):
    assert parse_env_v1(text, delim)[0] == expected


def test_env_v1_warnings():
    pairs, warnings = parse_env_v1("A =1;B=2", "::")
    assert pairs == [("B", "2")]
    assert len(warnings) == 2
    assert "EnvDelim" in warnings[0] and "invalid variable name" in warnings[1]


# --- quoting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (["plain", "$HOME", 'a"b', "a\\b"], 'plain $HOME a"b a\\b'),
    (["big world", "", "it's"], "'big world' '' 'it''s'"),
    (["tab\there", "nl\nx"], "'tab\there' 'nl\nx'"),
    ([], ""),
])
def test_quote_v2(args, expected):
    assert quote_v2(args) == expected


ARG_TEXT = st.text(alphabet=st.one_of(
    st.sampled_from(list(" \t\r\n\v\f'\"\\$`*;=|&<>()\u00a0\u2028")),
    st.characters()))


@settings(max_examples=500)
@given(st.lists(ARG_TEXT, max_size=8))
def test_quote_v2_round_trip(args):
    assert parse_v2(quote_v2(args)) == args


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab '\t\n\"\\"))))
def test_parse_v2_total_and_stable(text):
    # every input either parses or raises ArgumentsError, and re-quoting is a fixed point
    try:
        args = parse_v2(text)
    except ArgumentsError:
        assert text.count("'") % 2 == 1
        return
    assert text.count("'") % 2 == 0
    assert parse_v2(quote_v2(args)) == args


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab \t\n\r\v\"\\"))))
def test_v1_matches_v2_without_quotes(text):
    # the grammars differ only in quoting
    assert parse_v1(text) == parse_v2(text)


@settings(max_examples=300)
@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True), ARG_TEXT,
                       max_size=6))
def test_env_v2_round_trip(env):
    pairs, warnings = parse_env_v2(quote_v2(["%s=%s" % kv for kv in env.items()]))
    assert pairs == list(env.items())
    assert warnings == []


# --- transfer lists --------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("a, b ,c", ["a", "b", "c"]),
    (" a ,, ,\tb\n", ["a", "b"]),
    ("in.txt, https://example.org/x, osdf:///ns/f, dir/f", ["in.txt", "dir/f"]),
    ("name with space", ["name with space"]),
    ("", []),
    (None, []),
])
def test_split_transfer_list(text, expected):
    assert split_transfer_list(text) == expected


# --- TransferOutputRemaps --------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("out=result.txt", [("out", "result.txt")]),
    (" a = b ; c=d;", [("a", "b"), ("c", "d")]),
    ("a=b=c", [("a", "b=c")]),
    ("a\\=b=c\\;d;e=f", [("a=b", "c;d"), ("e", "f")]),
    ("a\\\\=b", [("a\\", "b")]),
    ("dir\\x=y", [("dir\\x", "y")]),
    ("a=s3://bucket/out", [("a", "s3://bucket/out")]),
    ("na\tme=d\nst", [("name", "dst")]),
    (";;", []),
    ("", []),
    (None, []),
])
def test_parse_remaps(text, expected):
    assert parse_remaps(text) == expected


@pytest.mark.parametrize("text", ["a=b;junk;c=d", "justname", "a\\=b", "=b", "a=", "a= ;"])
def test_parse_remaps_errors(text):
    with pytest.raises(ArgumentsError):
        parse_remaps(text)
