"""Text of expressions and ads, byte for byte as HTCondor's ClassAdUnParser writes it.

New syntax (`[ A = 1; B = "x" ]`): binary operators spaced, unary operators preceded by a
space (` -a`), reals as `%1.15E` (`0.0`/`-0.0` for zero, `real("INF")` etc. for the
non-finite), strings with C escapes and octal for other non-printable bytes, lists
`{ a,b }`, function arguments without spaces, attribute names quoted when they are not
identifiers or are reserved words.

HTCondor keeps an ad's attributes sorted by name length, then case-insensitively; `unparse`
does the same unless asked to keep the ad's own order.
"""

import math
from typing import List

from .nodes import (AttrRef, ClassAd, Error, Expr, ExprList, FnCall, Literal,
                    Op, Undefined, fold_name)

__all__ = ["unparse", "unparse_old", "unparse_value", "unparse_string", "unparse_real",
           "unparse_name", "attribute_order"]

_UNARY_TEXT = {"neg": " -", "pos": " +", "!": " !", "~": " ~"}
_OLD_SPELLING = {"is": "=?=", "isnt": "=!="}
_RESERVED = frozenset(["error", "false", "is", "isnt", "parent", "true", "undefined"])
_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    "\v": "\\v", "\\": "\\\\",
}
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_REST = _IDENT_START | frozenset("0123456789")


def _escape_char(ch: str, delimiter: str) -> str:
    if ch == delimiter:
        return "\\" + ch
    esc = _ESCAPES.get(ch)
    if esc is not None:
        return esc
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    # not printable in the C locale: every byte as a 3-digit octal escape
    if 0xDC80 <= code <= 0xDCFF:
        return "\\%03o" % (code - 0xDC00)
    return "".join("\\%03o" % b for b in ch.encode("utf-8", "surrogateescape"))


def _escape(text: str, delimiter: str) -> str:
    if text.isascii() and text.isprintable() and "\\" not in text and delimiter not in text:
        return text
    return "".join(_escape_char(ch, delimiter) for ch in text)


def unparse_string(text: str) -> str:
    return '"' + _escape(text, '"') + '"'


def unparse_name(name: str) -> str:
    escaped = _escape(name, "'")
    needs_quotes = (not escaped or escaped[0] not in _IDENT_START
                    or any(ch not in _IDENT_REST for ch in escaped)
                    or fold_name(escaped) in _RESERVED)
    return "'" + escaped + "'" if needs_quotes else escaped


def unparse_real(value: float, old: bool = False) -> str:
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if value != value:
        return 'real("NaN")'
    if value == math.inf:
        return 'real("INF")'
    if value == -math.inf:
        return 'real("-INF")'
    if old:
        text = "%.16G" % value
        if not any(c in text for c in ".Ee"):
            text += ".0"
        return text
    return "%1.15E" % value


def attribute_order(ad: ClassAd):
    """HTCondor's storage order: by name length in bytes, then case-insensitively."""
    return sorted(ad.items(), key=lambda item: (len(item[0].encode("utf-8", "surrogateescape")),
                                                fold_name(item[0]).encode("utf-8",
                                                                          "surrogateescape")))


class _Unparser:
    __slots__ = ("old", "keep_order", "out")

    def __init__(self, old: bool, keep_order: bool) -> None:
        self.old = old
        self.keep_order = keep_order
        self.out: List[str] = []

    def literal(self, value) -> None:
        out = self.out
        t = type(value)
        if t is str:
            out.append('"' + _escape(value, '"') + '"' if not self.old else _old_string(value))
        elif t is bool:
            out.append("true" if value else "false")
        elif t is int:
            out.append(str(value))
        elif t is float:
            out.append(unparse_real(value, self.old))
        elif t is Undefined:
            out.append("undefined")
        elif t is Error:
            out.append("error")
        else:
            raise TypeError("not a ClassAd literal: %r" % (value,))

    def joined(self, opener: str, items, closer: str) -> None:
        out = self.out
        out.append(opener)
        for i, item in enumerate(items):
            if i:
                out.append(",")
            self.node(item)
        out.append(closer)

    def node(self, node: Expr) -> None:
        out = self.out
        t = type(node)
        if t is Literal:
            self.literal(node.value)
        elif t is AttrRef:
            if node.base is not None:
                # HTCondor writes a selected name as is, never quoted
                self.node(node.base)
                out.append("." + node.name)
            else:
                if node.absolute:
                    out.append(".")
                out.append(unparse_name(node.name))
        elif t is Op:
            self.operation(node)
        elif t is FnCall:
            self.joined(node.name + "(", node.args, ")")
        elif t is ExprList:
            self.joined("{ ", node.items, " }")
        elif t is ClassAd:
            self.classad(node)
        else:
            raise TypeError("not a ClassAd expression: %r" % (node,))

    def operation(self, node: Op) -> None:
        out = self.out
        op = node.op
        args = node.args
        if op == "()":
            out.append("(")
            self.node(args[0])
            out.append(")")
        elif op in _UNARY_TEXT:
            out.append(_UNARY_TEXT[op])
            self.node(args[0])
        elif op == "?:":
            self.node(args[0])
            out.append(" ? ")
            self.node(args[1])
            out.append(" : ")
            self.node(args[2])
        elif op == "[]":
            self.node(args[0])
            out.append("[")
            self.node(args[1])
            out.append("]")
        elif op == "elvis":
            self.node(args[0])
            out.append(" ?: ")
            self.node(args[1])
        else:
            self.node(args[0])
            out.append(" " + (_OLD_SPELLING.get(op, op) if self.old else op) + " ")
            self.node(args[1])

    def classad(self, ad: ClassAd) -> None:
        out = self.out
        items = ad.items() if self.keep_order else attribute_order(ad)
        out.append("[ ")
        for i, (name, expr) in enumerate(items):
            if i:
                out.append("; ")
            out.append(unparse_name(name))
            out.append(" = ")
            self.node(expr)
        out.append(" ]")


def _old_string(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def unparse(node: Expr, keep_order: bool = False) -> str:
    """New-syntax text of an expression or ad."""
    u = _Unparser(False, keep_order)
    u.node(node)
    return "".join(u.out)


def unparse_value(value, keep_order: bool = False) -> str:
    """New-syntax text of an evaluated value (see evaluate.py for the value types)."""
    from .evaluate import ListValue
    if isinstance(value, ListValue):
        return unparse(ExprList(value.items), keep_order)
    if isinstance(value, ClassAd):
        return unparse(value, keep_order)
    u = _Unparser(False, keep_order)
    u.literal(value)
    return "".join(u.out)


def unparse_old(ad: ClassAd, keep_order: bool = False) -> str:
    """Old-syntax text: one `Name = value` per line, as `condor_q -long` prints it."""
    items = ad.items() if keep_order else attribute_order(ad)
    lines = []
    for name, expr in items:
        u = _Unparser(True, keep_order)
        u.node(expr)
        lines.append("%s = %s" % (unparse_name(name), "".join(u.out)))
    return "".join(line + "\n" for line in lines)

