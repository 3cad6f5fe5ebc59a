"""Evaluation with HTCondor's semantics (`operators.cpp`, `attrrefs.cpp`, `classad.cpp`).

Values are Python bool, int (kept to signed 64 bits), float, str, UNDEFINED, ERROR, a
ListValue (a list literal's unevaluated items and the ad they are evaluated in) or a ClassAd.

The rules that matter most, and differ from Python's:
* strict operators give ERROR if any operand is ERROR, else UNDEFINED if any is UNDEFINED;
* `&&`, `||`, `?:` treat numbers as booleans and only short-circuit on a definite left side
  (`undefined && false` is false, `error || true` is ERROR);
* `==` on strings ignores case, `is`/`=?=` compares type and value exactly (`1 is 1.0` is
  false) and never yields UNDEFINED;
* integer arithmetic wraps at 64 bits, `/` truncates toward zero, `%` takes the dividend's
  sign, division by zero and any real result of +inf are ERROR;
* an attribute is looked up in the ad, then in the enclosing ads; a reference cycle is
  UNDEFINED.
"""

import math
import time as _time
from typing import Optional, Tuple

from .lexemes import INT64_MAX, INT64_MIN, wrap64
from .nodes import (ERROR, UNDEFINED, AttrRef, ClassAd, Error, Expr, ExprList, FnCall, Literal,
                    Op, Undefined, fold_name)

__all__ = ["ListValue", "evaluate", "evaluate_attr"]


class ListValue:
    """A list value: the items stay expressions until something needs them."""

    __slots__ = ("items", "scope")

    def __init__(self, items: Tuple[Expr, ...], scope: Optional[ClassAd]) -> None:
        self.items = items
        self.scope = scope

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        from .unparse import unparse
        return "ListValue(%s)" % unparse(ExprList(self.items))


_NUMERIC = (bool, int, float)
_SPECIAL_NAMES = frozenset(["toplevel", "root", "self", "my", "parent", "currenttime"])


def bytes_lower(text: str) -> bytes:
    """strcasecmp's view of a string: its bytes with ASCII letters folded."""
    return text.encode("utf-8", "surrogateescape").lower()


def _as_bool(value):
    """Boolean-equivalent of a value for `&&`, `||`, `!`, `?:` (None if it has none)."""
    t = type(value)
    if t is bool:
        return value
    if t is int or t is float:
        return value != 0
    return None


class Evaluator:
    __slots__ = ("target", "active")

    def __init__(self, target: Optional[ClassAd] = None) -> None:
        self.target = target
        self.active = set()  # (id(ad), folded name) being evaluated: a revisit is a cycle

    # --- entry points ----------------------------------------------------------------
    def value(self, node: Expr, scope: Optional[ClassAd]):
        t = type(node)
        if t is Literal:
            return node.value
        if t is AttrRef:
            return self.attr_ref(node, scope)
        if t is Op:
            return self.operation(node, scope)
        if t is FnCall:
            from .functions import call
            return call(self, node, scope)
        if t is ExprList:
            return ListValue(node.items, scope)
        if t is ClassAd:
            return node
        raise TypeError("cannot evaluate %r" % (node,))

    def attribute(self, ad: ClassAd, name: str):
        """Value of `name` looked up from `ad` outwards (UNDEFINED when nowhere)."""
        found = self.lookup(ad, name)
        if found is None:
            return UNDEFINED
        owner, expr = found
        if type(expr) is Literal:
            return expr.value
        if isinstance(expr, _Value):
            return expr.value
        key = (id(owner), fold_name(name))
        if key in self.active:
            return UNDEFINED  # a reference cycle (HTCondor 25 evaluates it to undefined)
        self.active.add(key)
        try:
            return self.value(expr, owner)
        finally:
            self.active.discard(key)

    def lookup(self, ad: Optional[ClassAd], name: str):
        """(owning ad, expression) for `name`, following HTCondor's LookupInScope."""
        current = ad
        root = _root_of(ad)
        folded = fold_name(name)
        while current is not None:
            expr = current.lookup(name)
            if expr is not None:
                return current, expr
            parent = None if current is root else current.parent
            if folded in _SPECIAL_NAMES:
                if folded in ("toplevel", "root"):
                    return (root, root) if root is not None else None
                if folded in ("self", "my"):
                    return current, current
                if folded == "parent":
                    return (current, parent) if parent is not None else None
                return current, _Value(int(_time.time()))
            current = parent
        if self.target is not None and folded == "target":
            return self.target, self.target
        return None

    # --- attribute references ----------------------------------------------------------
    def attr_ref(self, node: AttrRef, scope: Optional[ClassAd]):
        if node.base is None:
            if node.absolute:
                root = _root_of(scope)
                if root is None:
                    return ERROR
                return self.attribute(root, node.name)
            if scope is None:
                if self.target is not None and fold_name(node.name) == "target":
                    return self.target
                return UNDEFINED
            return self.attribute(scope, node.name)
        base = self.value(node.base, scope)
        if base is UNDEFINED:
            return UNDEFINED
        if type(base) is ClassAd:
            return self.attribute(base, node.name)
        if type(base) is ListValue:
            values = []
            for item in base.items:
                values.append(Literal(self.attr_ref(AttrRef(node.name, base=item), base.scope)))
            return ListValue(tuple(values), None)
        return ERROR

    # --- operators ---------------------------------------------------------------------
    def operation(self, node: Op, scope):
        op = node.op
        args = node.args
        if op == "()":
            return self.value(args[0], scope)
        if op == "&&" or op == "||":
            return self.logical(op, args, scope)
        if op == "?:":
            cond = self.value(args[0], scope)
            if cond is ERROR or cond is UNDEFINED:
                return cond
            truth = _as_bool(cond)
            if truth is None:
                return ERROR
            return self.value(args[1] if truth else args[2], scope)
        if op == "elvis":
            first = self.value(args[0], scope)
            return self.value(args[1], scope) if first is UNDEFINED else first
        if len(args) == 1:
            return _unary(op, self.value(args[0], scope))
        left = self.value(args[0], scope)
        right = self.value(args[1], scope)
        if op == "is":
            return _identical(left, right)
        if op == "isnt":
            same = _identical(left, right)
            return same if same is ERROR else not same
        if left is ERROR or right is ERROR:
            return ERROR
        if left is UNDEFINED or right is UNDEFINED:
            return UNDEFINED
        if op == "[]":
            return self.subscript(left, right)
        if op in _COMPARISONS:
            return _compare(op, left, right)
        if op in _ARITHMETIC:
            return _arithmetic(op, left, right)
        return _bitwise(op, left, right)

    def logical(self, op: str, args, scope):
        left = self.value(args[0], scope)
        if left is ERROR:
            return ERROR
        left_bool = _as_bool(left)
        if op == "&&":
            if left_bool is False:
                return False
        elif left_bool is True:
            return True
        right = self.value(args[1], scope)
        if left is not UNDEFINED and left_bool is None:
            return ERROR
        if right is ERROR:
            return ERROR
        right_bool = _as_bool(right)
        if right is UNDEFINED:
            return UNDEFINED
        if right_bool is None:
            return ERROR
        if left is UNDEFINED:
            if op == "&&":
                return False if right_bool is False else UNDEFINED
            return True if right_bool else UNDEFINED
        return right_bool

    def subscript(self, container, index):
        if type(container) is ClassAd:
            if type(index) is not str:
                return ERROR
            if container.lookup(index) is None:
                return UNDEFINED
            return self.attribute(container, index)
        if type(container) is ListValue and type(index) is int:
            i = ((index + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # read as a C int
            if i < 0 or i >= len(container.items):
                return ERROR
            return self.value(container.items[i], container.scope)
        return ERROR


class _Value:
    """An already-computed value standing in for an expression (CurrentTime)."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _root_of(ad: Optional[ClassAd]) -> Optional[ClassAd]:
    root = ad
    while root is not None and root.parent is not None:
        root = root.parent
    return root


_COMPARISONS = frozenset(["==", "!=", "<", "<=", ">", ">="])
_ARITHMETIC = frozenset(["+", "-", "*", "/", "%"])


def _identical(a, b):
    ta, tb = type(a), type(b)
    if ta is not tb:
        return False
    if ta is ListValue or ta is ClassAd:
        return ERROR
    if ta is Undefined or ta is Error:
        return True
    return a == b


def _unary(op: str, value):
    if value is ERROR or value is UNDEFINED:
        return value
    t = type(value)
    if op == "neg":
        if t is int:
            return wrap64(-value)
        if t is float:
            return -value
        return ERROR
    if op == "pos":
        return value if t is int or t is float else ERROR
    if op == "!":
        truth = _as_bool(value)
        return ERROR if truth is None else not truth
    # "~"
    return wrap64(~value) if t is int else ERROR


def _compare(op: str, a, b):
    ta, tb = type(a), type(b)
    if ta is ClassAd or tb is ClassAd or ta is ListValue or tb is ListValue:
        return ERROR
    if ta is str or tb is str:
        if ta is not tb:
            return ERROR
        a, b = bytes_lower(a), bytes_lower(b)
    else:
        if ta is bool:
            a = int(a)
        if tb is bool:
            b = int(b)
        if type(a) is float or type(b) is float:
            a, b = float(a), float(b)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _arithmetic(op: str, a, b):
    ta, tb = type(a), type(b)
    if ta not in _NUMERIC or tb not in _NUMERIC:
        return ERROR
    if ta is bool:
        a, ta = int(a), int
    if tb is bool:
        b, tb = int(b), int
    if ta is int and tb is int:
        if op == "+":
            return wrap64(a + b)
        if op == "-":
            return wrap64(a - b)
        if op == "*":
            return wrap64(a * b)
        if b == 0:
            return ERROR
        if a == INT64_MIN and b == -1:
            return INT64_MAX if op == "/" else 0
        quotient = abs(a) // abs(b)
        if (a < 0) != (b < 0):
            quotient = -quotient
        if op == "/":
            return quotient
        return a - b * quotient
    if op == "%":
        return ERROR
    a, b = float(a), float(b)
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    elif b == 0.0:
        if a == 0.0 or a != a:
            result = math.nan
        else:
            result = math.copysign(math.inf, a) * math.copysign(1.0, b)
    else:
        result = a / b
    return ERROR if result == math.inf else result


def _bitwise(op: str, a, b):
    if type(a) is not int or type(b) is not int:
        return ERROR
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op == "<<":
        return wrap64(a << (b & 63))
    if op == ">>":
        if a >= 0:
            return a >> (b & 63)
        return a if b < 0 else a >> min(b, 64)
    # ">>>": zero-filling shift of the two's-complement bits
    if a >= 0:
        return a >> (b & 63)
    return ((a >> 1) & INT64_MAX) >> ((b - 1) & 63)


def evaluate(expr: Expr, scope: Optional[ClassAd] = None, target: Optional[ClassAd] = None):
    """Value of `expr` with unqualified names looked up in `scope` (then its parents)."""
    return Evaluator(target).value(expr, scope)


def evaluate_attr(ad: ClassAd, name: str, target: Optional[ClassAd] = None):
    """Value of attribute `name` of `ad` (UNDEFINED when it has none)."""
    return Evaluator(target).attribute(ad, name)
