import time

import pytest

from blahp.classad import (ERROR, UNDEFINED, MAX_DEPTH, MAX_NESTING, AttrRef, ClassAd,
                           ClassAdSyntaxError, Literal, Op, parse_ad, parse_expr, parse_old_ad,
                           unparse, unparse_old)


def test_submit_ad_round_trip_and_lookup_is_case_insensitive():
    ad = parse_ad('[ Cmd = "/bin/echo"; Arguments = "a b"; CERequirements = CondorCE == 1; '
                  'x509userproxy = "/tmp/x509up_u1"; CurrentTime = time() ]')
    assert ad["cmd"] == Literal("/bin/echo")
    assert ad.name_of("X509USERPROXY") == "x509userproxy"
    assert ad["CERequirements"] == Op("==", AttrRef("CondorCE"), Literal(1))
    # HTCondor's order: by name length, then case-insensitively
    assert unparse(ad) == ('[ Cmd = "/bin/echo"; Arguments = "a b"; CurrentTime = time(); '
                           'x509userproxy = "/tmp/x509up_u1"; CERequirements = CondorCE == 1 ]')
    assert unparse(ad, keep_order=True).startswith('[ Cmd = "/bin/echo"; Arguments = ')


def test_rebinding_keeps_first_spelling_and_last_value():
    ad = parse_ad("[ a = 1; A = 2 ]")
    assert unparse(ad) == "[ a = 2 ]"


@pytest.mark.parametrize("text,where", [
    ('[ Cmd = "/bin/echo" ', "end of input"),
    ('[ Cmd == 1 ]', "'== 1 ]'"),
    ('[ a = 1 b = 2 ]', "'b = 2 ]'"),
    ('[ a = "unterminated ]', "'\"unterminate'"),
    ('[ a = 1.e5 ]', None),
    ('[ a = 019 ]', None),
    ('[ a = "x\\0y" ]', None),
])
def test_malformed_ads_are_rejected_with_a_position(text, where):
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad(text)
    err = info.value
    assert err.line == 1 and 1 <= err.column <= len(text) + 1
    assert "line 1, column %d" % err.column in str(err)
    if where:
        assert where in str(err)


def test_error_position_counts_lines():
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_ad('[ a = 1;\n  b = 2;\n  c = = 3 ]')
    assert (info.value.line, info.value.column) == (3, 7)


def test_trailing_text_after_the_ad_is_rejected():
    # libclassad's default parse ignores it; a truncated or concatenated ad must not pass
    with pytest.raises(ClassAdSyntaxError):
        parse_ad('[ a = 1 ] junk')
    assert unparse(parse_ad('  [ a = 1 ] /* trailing comment */ \n')) == "[ a = 1 ]"


def test_nesting_beyond_the_limit_is_a_clear_error():
    ok = "[ a = " + "(" * (MAX_NESTING - 1) + "1" + ")" * (MAX_NESTING - 1) + " ]"
    assert parse_ad(ok)["a"] is not None
    deep = "[ a = " + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING + " ]"
    with pytest.raises(ClassAdSyntaxError, match="nesting deeper than %d" % MAX_NESTING):
        parse_ad(deep)
    with pytest.raises(ClassAdSyntaxError, match="nesting"):
        parse_ad("[ a = " + "{" * 100000 + " ]")
    # brackets inside strings do not count
    assert parse_ad('[ a = "%s" ]' % ("[" * 1000))["a"] == Literal("[" * 1000)


@pytest.mark.parametrize("text", [
    " + ".join(["x"] * (MAX_DEPTH + 5)),
    "!" * (MAX_DEPTH + 5) + "x",
    "x" + "[0]" * (MAX_DEPTH + 5),
    " ?: ".join(["x"] * (MAX_DEPTH + 5)),
    "1 ? " * (MAX_DEPTH + 5) + "1" + " : 2" * (MAX_DEPTH + 5),
])
def test_deep_operator_chains_are_a_clear_error(text):
    with pytest.raises(ClassAdSyntaxError, match="deep"):
        parse_expr(text)


def test_depth_at_the_limit_evaluates_and_unparses():
    text = " + ".join(["1"] * (MAX_DEPTH - 1))
    ad = ClassAd()
    ad["x"] = parse_expr(text)
    assert ad.evaluate("x") == MAX_DEPTH - 1
    assert unparse(ad["x"]) == text


@pytest.mark.parametrize("build", [
    lambda n: '[ a = "' + "x" * n + '" ]',
    lambda n: "[ " + "; ".join("a%d = %d" % (i, i) for i in range(n // 12)) + " ]",
    lambda n: "[ a = " + " && ".join("b == 1" for _ in range(n // 9)) + " ]",
    lambda n: "[ a = " + "(" * n,
    lambda n: '[ a = "' + "\\" * n,
    lambda n: "[ a = /*" + "*" * n,
    lambda n: "[ " + "a = 1 " * (n // 6) + "]",
    lambda n: "[" + ";" * n + "]",
])
def test_one_mebibyte_ad_parses_or_fails_in_bounded_time(build):
    text = build(1 << 20)
    start = time.monotonic()
    try:
        parse_ad(text)
    except ClassAdSyntaxError:
        pass
    assert time.monotonic() - start < 30


def test_old_syntax_ad():
    text = ('MyType = "Job"\nClusterId = 123\nRemoteWallClockTime = 1.5\n'
            'Cmd = "C:\\bin\\x.exe"\nOdd = "say \\"hi\\""\nRequirements = TARGET.x =?= undefined\n'
            '# comment\nJobStatus = 4\n\nNext = 1\n')
    ad = parse_old_ad(text)
    assert ad["Cmd"] == Literal("C:\\bin\\x.exe")
    assert ad["odd"] == Literal('say "hi"')
    assert ad.evaluate("JobStatus") == 4
    assert "Next" not in ad
    assert unparse_old(ad) == ('Cmd = "C:\\bin\\x.exe"\nOdd = "say \\"hi\\""\nMyType = "Job"\n'
                               'ClusterId = 123\nJobStatus = 4\nRequirements = TARGET.x =?= '
                               'undefined\nRemoteWallClockTime = 1.5\n')
    with pytest.raises(ClassAdSyntaxError) as info:
        parse_old_ad("A = 1\nB 2\n")
    assert info.value.line == 2


def test_values_and_special_names():
    ad = parse_ad('[ a = 1; n = [ b = a + 1; c = parent.a; d = toplevel.a ]; e = n.b; '
                  'f = n.c + n.d; g = undefined; h = error; loop = loop ]')
    assert [ad.evaluate(k) for k in "efgh"] == [2, 2, UNDEFINED, ERROR]
    assert ad.evaluate("loop") is UNDEFINED
    assert ad.evaluate("absent") is UNDEFINED
    target = parse_ad("[ Memory = 4096 ]")
    job = parse_ad("[ Req = TARGET.Memory >= 2048 ]")
    assert job.evaluate("Req", target=target) is True
    assert job.evaluate("Req") is UNDEFINED
