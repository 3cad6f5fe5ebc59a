"""Expression trees and the ClassAd record.

Node kinds mirror HTCondor's (literal, attribute reference, operation, function call, list,
ClassAd) so that unparsing can reproduce its text exactly: parentheses are kept as an
operation, `=?=`/`=!=` are the same operations as `is`/`isnt`, and a negative number typed
without a space (`-5`) is a literal while `- 5` is a unary minus.
"""

from typing import Dict, Iterator, List, Optional, Tuple

__all__ = [
    "Undefined", "Error", "UNDEFINED", "ERROR",
    "Expr", "Literal", "AttrRef", "Op", "FnCall", "ExprList", "ClassAd",
    "BINARY_OPS", "UNARY_OPS", "fold_name",
]


class _Special:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self):
        return self._name


class Undefined(_Special):
    pass


class Error(_Special):
    pass


UNDEFINED = Undefined("UNDEFINED")
ERROR = Error("ERROR")

# Binary operators by their canonical (new-syntax) spelling.
BINARY_OPS = frozenset([
    "||", "&&", "|", "^", "&", "==", "!=", "is", "isnt", "<", "<=", ">", ">=",
    "<<", ">>", ">>>", "+", "-", "*", "/", "%",
])
# Unary operators are named apart from their binary look-alikes.
UNARY_OPS = frozenset(["neg", "pos", "!", "~"])

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_name(name: str) -> str:
    """Attribute-name key: ASCII case-folding only, as strcasecmp does in the C locale."""
    return name.translate(_ASCII_FOLD)


class Expr:
    __slots__ = ()

    def __str__(self) -> str:
        from .unparse import unparse
        return unparse(self)

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, str(self))


class Literal(Expr):
    """bool, int, float, str, UNDEFINED or ERROR."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __eq__(self, other) -> bool:
        if type(other) is not Literal:
            return NotImplemented
        a, b = self.value, other.value
        if type(a) is not type(b):
            return False
        if isinstance(a, float) and a != a:
            return b != b
        return a == b

    __hash__ = None  # type: ignore[assignment]


class AttrRef(Expr):
    """`name`, `.name` (absolute) or `base.name` (selection)."""

    __slots__ = ("base", "name", "absolute")

    def __init__(self, name: str, base: Optional[Expr] = None, absolute: bool = False) -> None:
        self.name = name
        self.base = base
        self.absolute = absolute

    def __eq__(self, other) -> bool:
        if type(other) is not AttrRef:
            return NotImplemented
        return (self.name == other.name and self.absolute == other.absolute
                and self.base == other.base)

    __hash__ = None  # type: ignore[assignment]


class Op(Expr):
    """Operation: a binary operator, a unary one (`neg`, `pos`, `!`, `~`), `()` for kept
    parentheses, `[]` for subscripts, `?:` for the ternary and `elvis` for `a ?: b`."""

    __slots__ = ("op", "args")

    def __init__(self, op: str, *args: Expr) -> None:
        self.op = op
        self.args = args

    def __eq__(self, other) -> bool:
        if type(other) is not Op:
            return NotImplemented
        return self.op == other.op and self.args == other.args

    __hash__ = None  # type: ignore[assignment]


class FnCall(Expr):
    __slots__ = ("name", "args")

    def __init__(self, name: str, args: Tuple[Expr, ...]) -> None:
        self.name = name
        self.args = tuple(args)

    def __eq__(self, other) -> bool:
        if type(other) is not FnCall:
            return NotImplemented
        return self.name == other.name and self.args == other.args

    __hash__ = None  # type: ignore[assignment]


class ExprList(Expr):
    __slots__ = ("items",)

    def __init__(self, items) -> None:
        self.items = tuple(items)

    def __eq__(self, other) -> bool:
        if type(other) is not ExprList:
            return NotImplemented
        return self.items == other.items

    __hash__ = None  # type: ignore[assignment]


class ClassAd(Expr):
    """An ordered, case-insensitive, case-preserving map of attribute name -> expression.

    Re-binding an attribute keeps the spelling it was first given (as HTCondor does).
    `parent` is the lexically enclosing ad, used for scoping nested ads.
    """

    __slots__ = ("_attrs", "parent")

    def __init__(self, attrs=None, parent: "Optional[ClassAd]" = None) -> None:
        self._attrs: Dict[str, Tuple[str, Expr]] = {}
        self.parent = parent
        if attrs:
            items = attrs.items() if isinstance(attrs, dict) else attrs
            for name, value in items:
                self[name] = value

    # mapping protocol -------------------------------------------------------------------
    def __setitem__(self, name: str, value) -> None:
        expr = value if isinstance(value, Expr) else literal_of(value)
        key = fold_name(name)
        old = self._attrs.get(key)
        self._attrs[key] = (old[0] if old else name, expr)
        if isinstance(expr, ClassAd):
            expr.parent = self

    def __getitem__(self, name: str) -> Expr:
        return self._attrs[fold_name(name)][1]

    def __delitem__(self, name: str) -> None:
        del self._attrs[fold_name(name)]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and fold_name(name) in self._attrs

    def __len__(self) -> int:
        return len(self._attrs)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._attrs.values())

    def lookup(self, name: str) -> Optional[Expr]:
        entry = self._attrs.get(fold_name(name))
        return entry[1] if entry else None

    def get(self, name: str, default=None):
        expr = self.lookup(name)
        return default if expr is None else expr

    def items(self) -> List[Tuple[str, Expr]]:
        return list(self._attrs.values())

    def name_of(self, name: str) -> Optional[str]:
        """The spelling under which `name` is stored."""
        entry = self._attrs.get(fold_name(name))
        return entry[0] if entry else None

    def __eq__(self, other) -> bool:
        if type(other) is not ClassAd:
            return NotImplemented
        return self.items() == other.items()

    __hash__ = None  # type: ignore[assignment]

    # evaluation helpers -----------------------------------------------------------------
    def evaluate(self, name: str, target: "Optional[ClassAd]" = None):
        """Value of attribute `name` evaluated in this ad (UNDEFINED when absent)."""
        from .evaluate import evaluate_attr
        return evaluate_attr(self, name, target)


def literal_of(value) -> Expr:
    """A literal (or list/ad) expression for a Python value."""
    if value is None:
        return Literal(UNDEFINED)
    if isinstance(value, (bool, int, float, str, Undefined, Error)):
        return Literal(value)
    if isinstance(value, dict):
        return ClassAd(value)
    if isinstance(value, (list, tuple)):
        return ExprList(literal_of(v) for v in value)
    raise TypeError("no ClassAd literal for %r" % (value,))
