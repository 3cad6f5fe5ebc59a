"""Golden tests for the CERequirements unwinder (submit-ad.md §10.1). The first group is what
HTCondor-CE's gridmanager actually sends; for those the output is byte-identical to the C
blahp's classad_binary_op_unwind.C."""

import pytest

from blahp.classad import parse_expr
from blahp.classad.unwind import unwind

GOLDEN = [
    # as produced by the gridmanager from default_CERequirements
    ("CondorCE == 1", ["CondorCE='1'"]),
    ("maxWallTime == 1440 && CondorCE == 1", ["maxWallTime='1440'", "CondorCE='1'"]),
    ('queue == "long" && CondorCE == 1', ["queue='\"long\"'", "CondorCE='1'"]),
    ('maxMemory == 2000 && xcount == 8 && WantWholeNode == true && CondorCE == 1',
     ["maxMemory='2000'", "xcount='8'", "WantWholeNode='true'", "CondorCE='1'"]),
    # ranges, either order
    ("Memory >= 2000", ["Memory_Min='2000'"]),
    ("Memory > 2000", ["Memory_Min='2000'"]),
    ("Memory <= 4000", ["Memory_Max='4000'"]),
    ("Memory < 4000", ["Memory_Max='4000'"]),
    ("2000 <= Memory", ["Memory_Min='2000'"]),
    ("4000 > Memory", ["Memory_Max='4000'"]),
    ("Memory >= 2000 && Memory <= 4000", ["Memory_Min='2000'", "Memory_Max='4000'"]),
    ("WallTime < -5", ["WallTime_Max='-5'"]),
    ("Cpus >= 1.5", ["Cpus_Min='1.500000000000000E+00'"]),
    # literal on the left, `is`, selection prefixes dropped
    ("1 == CondorCE", ["CondorCE='1'"]),
    ('Site is "UCSD"', ["Site='\"UCSD\"'"]),
    ("MY.CondorCE == 1 && TARGET.Arch == \"X86_64\"", ["CondorCE='1'", "Arch='\"X86_64\"'"]),
    # member: indexed per attribute
    ('member("a", Vos) && member("b", Vos) && member(3, Other)',
     ["Vos[0]='\"a\"'", "Vos[1]='\"b\"'", "Other[0]='3'"]),
    # single quotes are removed from values (they would end the shell quoting)
    ("""Name == "it's" """, ["Name='\"its\"'"]),
    # parentheses are looked through
    ("(a == 1) && ((b == 2))", ["a='1'", "b='2'"]),
    # ignored: not a conjunct, not attr-vs-literal, no usable value, not a shell name
    ("a == 1 || b == 2", []),
    ("!(a == 1)", []),
    ("a == b", []),
    ("a != 1 && a =!= 2", []),
    ("a == undefined && b == error", []),
    ('q >= "x"', []),
    ("a == - 1", []),
    ("'odd name' == 1 && ok == 2", ["ok='2'"]),
    ("true", []),
    ("strcmp(a, 1) == 0", []),
]


@pytest.mark.parametrize("text,lines", GOLDEN)
def test_unwind(text, lines):
    assert unwind(parse_expr(text)) == lines


def test_long_conjunction_stays_linear():
    text = " && ".join("a%d == %d" % (i, i) for i in range(300))
    assert unwind(parse_expr(text))[-1] == "a299='299'"
