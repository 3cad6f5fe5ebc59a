"""ClassAds: parse, unparse and evaluate them as HTCondor's own library does.

    >>> ad = parse_ad('[ Cmd = "/bin/echo"; CERequirements = CondorCE == 1 ]')
    >>> unparse(ad)
    '[ Cmd = "/bin/echo"; CERequirements = CondorCE == 1 ]'
"""

from .nodes import (ERROR, UNDEFINED, AttrRef, ClassAd, Error, Expr, ExprList, FnCall,
                    Literal, Op, Undefined)
from .parser import (MAX_DEPTH, MAX_NESTING, ClassAdSyntaxError, parse_ad, parse_expr,
                     parse_old_ad, parse_old_expr)
from .unparse import unparse, unparse_old, unparse_value

__all__ = [
    "ERROR", "UNDEFINED", "AttrRef", "ClassAd", "Error", "Expr", "ExprList", "FnCall",
    "Literal", "Op", "Undefined", "MAX_DEPTH", "MAX_NESTING", "ClassAdSyntaxError",
    "parse_ad", "parse_expr", "parse_old_ad", "parse_old_expr", "unparse", "unparse_old",
    "unparse_value",
]
