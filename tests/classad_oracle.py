"""HTCondor's own ClassAd library (the `classad2` module of the pinned `htcondor` wheel) as the
reference for differential tests.

`classad2` is used alone, as the C blahpd uses libclassad: importing `htcondor2` would switch
the library to old-ClassAd semantics process-wide (e.g. `017` becomes a parse error). The
compat-layer functions it registers (stringListMember, ...) are checked through
`oracle_eval_compat`, which runs in a separate interpreter. In CI the oracle must be there:
a missing wheel fails the run instead of skipping the tests.
"""

import json
import math
import os
import subprocess
import sys
import warnings

import pytest

os.environ.setdefault("CONDOR_CONFIG", "/dev/null")

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import classad2
except ImportError as exc:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("HTCondor's classad2 is not installed: %s" % exc, allow_module_level=True)

from blahp.classad import ERROR, UNDEFINED, ClassAd
from blahp.classad.evaluate import ListValue

FAIL = "<parse error>"


def oracle_unparse_expr(text: str) -> str:
    """HTCondor's unparse of an expression, or FAIL. The library has no whole-text expression
    parse, so the text is placed in an ad followed by a sentinel attribute: text that ends
    the ad early (a stray `]`) loses the sentinel and counts as rejected."""
    try:
        ad = classad2.ClassAd("[zz_expr = %s\n; zz_end = 1]" % text)
    except Exception:
        return FAIL
    if len(ad) != 2 or "zz_end" not in ad:
        return FAIL
    return repr(ad.lookup("zz_expr"))


def oracle_unparse_ad(text: str) -> str:
    try:
        return repr(classad2.ClassAd(text))
    except Exception:
        return FAIL


def oracle_eval(scope_text: str, expr_text: str):
    """Value of `expr_text` placed as an attribute of the ad `scope_text` (so MY., parent
    scoping and special names behave as in a real ad)."""
    ad = classad2.ClassAd(scope_text)
    ad["zz_expr"] = classad2.ExprTree(expr_text)
    # Converting a list or ad value to Python switches classad2 to old-ClassAd semantics for
    # the rest of the process, so those are described by kind and size inside the library.
    ad["zz_kind"] = classad2.ExprTree(
        'isList(zz_expr) ? "list" : (isClassAd(zz_expr) ? "ad" : "")')
    ad["zz_size"] = classad2.ExprTree("size(zz_expr)")
    kind = ad.eval("zz_kind")
    if kind:
        return (kind, ad.eval("zz_size"))
    try:
        return normalise_oracle(ad.eval("zz_expr"))
    except UnicodeDecodeError:
        return "<undecodable>"


def normalise_oracle(value):
    if isinstance(value, classad2.Value):
        return "UNDEFINED" if value == classad2.Value.Undefined else "ERROR"
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, list):
        return ("list", len(value))
    if isinstance(value, classad2.ClassAd):
        return ("ad", repr(value))
    return (type(value).__name__, value)


def normalise_ours(value):
    if value is UNDEFINED:
        return "UNDEFINED"
    if value is ERROR:
        return "ERROR"
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, ListValue):
        return ("list", len(value))
    if isinstance(value, ClassAd):
        return ("ad", len(value))
    return (type(value).__name__, value)


_COMPAT_SCRIPT = r"""
import json, math, sys, warnings
warnings.simplefilter("ignore")
import htcondor2, classad2
out = []
for scope, expr in json.load(sys.stdin):
    ad = classad2.ClassAd(scope)
    ad["zz_expr"] = classad2.ExprTree(expr)
    v = ad.eval("zz_expr")
    if isinstance(v, classad2.Value):
        out.append("UNDEFINED" if v == classad2.Value.Undefined else "ERROR")
    else:
        out.append([type(v).__name__, v])
print(json.dumps(out))
"""


def oracle_eval_compat(cases):
    """Values of (scope, expression) pairs with HTCondor's compat-layer functions loaded."""
    env = dict(os.environ, CONDOR_CONFIG="/dev/null")
    proc = subprocess.run([sys.executable, "-c", _COMPAT_SCRIPT], input=json.dumps(cases),
                          stdout=subprocess.PIPE, env=env, universal_newlines=True, check=True,
                          timeout=120)
    return [v if isinstance(v, str) else tuple(v) for v in json.loads(proc.stdout)]
