"""CERequirements unwinding (`submit-ad.md` §10.1): an expression such as
`maxWallTime == 1440 && queue == "long" && Memory >= 2000` becomes the `Name='value'` lines the
C blahp hands to `<lrms>_local_submit_attributes.sh`:

    maxWallTime='1440'
    queue='"long"'
    Memory_Min='2000'

Only the conjuncts of a top-level `&&` tree (parentheses are looked through) are used; each
`attr OP literal` (either order) gives one line, `member(literal, attr)` an indexed one; all
else is skipped. Differences from the C unwinder, as the spec decides: it also descends into
`||`/`!`/function arguments and emits their comparisons (so `a == 1 || a == 2` would set `a`
twice), and it drops real and boolean literals; here only `&&` conjuncts count and reals and
booleans are written as unparsed. Names that are not shell identifiers are skipped.
"""

import re
from typing import Dict, List

from .nodes import AttrRef, Expr, FnCall, Literal, Op
from .unparse import unparse

__all__ = ["unwind"]

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_SIDE = {"<": True, "<=": True, ">": False, ">=": False}  # attr OP n -> _Max?


def _conjuncts(expr: Expr) -> List[Expr]:
    out = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if type(node) is Op and node.op in ("&&", "()"):
            stack.extend(reversed(node.args))
        else:
            out.append(node)
    return out


def _literal_text(node: Literal):
    """The unparsed literal with single quotes removed, or None if it cannot be used."""
    value = node.value
    if type(value) not in (bool, int, float, str):
        return None
    return unparse(node).replace("'", "")


def _usable(attr: AttrRef, value: Literal):
    """The value text for a line about `attr`, or None when the pair cannot be written."""
    if not _SHELL_NAME.match(attr.name):
        return None
    return _literal_text(value)


def _is_number(node: Literal) -> bool:
    return type(node.value) in (int, float)


def unwind(expr: Expr) -> List[str]:
    """`Name='value'` lines for the comparisons in an expression's `&&` conjuncts."""
    lines: List[str] = []
    member_index: Dict[str, int] = {}
    for node in _conjuncts(expr):
        if type(node) is Op and len(node.args) == 2:
            op = node.op
            left, right = node.args
            if type(left) is AttrRef and type(right) is Literal:
                attr, value, value_at_right = left, right, True
            elif type(left) is Literal and type(right) is AttrRef:
                attr, value, value_at_right = right, left, False
            else:
                continue
            text = _usable(attr, value)
            if text is None:
                continue
            if op in ("==", "is"):
                lines.append("%s='%s'" % (attr.name, text))
            elif op in _MAX_SIDE and _is_number(value):
                is_max = _MAX_SIDE[op] == value_at_right
                lines.append("%s_%s='%s'" % (attr.name, "Max" if is_max else "Min", text))
        elif type(node) is FnCall and node.name.lower() == "member" and len(node.args) == 2:
            value, attr = node.args
            if type(value) is not Literal or type(attr) is not AttrRef:
                continue
            text = _usable(attr, value)
            if text is None:
                continue
            index = member_index.get(attr.name, 0)
            member_index[attr.name] = index + 1
            lines.append("%s[%d]='%s'" % (attr.name, index, text))
    return lines
