"""Parsing entry points: new-syntax ads and expressions, and old-syntax (`Name = value`) ads.

Malformed input never escapes as anything but ClassAdSyntaxError, which carries the offset,
line and column of the problem. Bracket nesting is checked before pyparsing runs (pyparsing
recurses per nesting level), and the finished tree's depth is bounded, so evaluating or
unparsing a parsed expression cannot exhaust the interpreter stack either.
"""

import re
import sys

import pyparsing as pp

from . import grammar
from .nodes import AttrRef, ClassAd, Expr, ExprList, FnCall, Op

MAX_NESTING = 100      # brackets, braces and parentheses inside one another
MAX_DEPTH = 500        # operator/expression tree depth (HTCondor's parser stops at 500)

# pyparsing uses about 25 frames per nesting level; leave head-room for callers
_NEEDED_FRAMES = MAX_NESTING * 40 + 1000
if sys.getrecursionlimit() < _NEEDED_FRAMES:
    sys.setrecursionlimit(_NEEDED_FRAMES)

_COMMENT_HINT = re.compile(r"/[/*]")
# everything that can open a nesting level, plus the string forms that can hide brackets
_NEST_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|\'(?:[^\'\\]|\\.)*\'?|[\[\](){}]', re.S)
_OPENERS = frozenset("[({")
_LEVEL_CHARS = tuple("-+*/%<>=!&|^~?.[({")


class ClassAdSyntaxError(ValueError):
    """The text is not a ClassAd (or expression); says where and why."""

    def __init__(self, message: str, text: str = "", offset: int = 0) -> None:
        self.reason = message
        self.offset = offset
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        super().__init__("%s (line %d, column %d, offset %d)"
                         % (message, self.line, self.column, offset))


def _check_nesting(text: str) -> None:
    if text.count("[") + text.count("(") + text.count("{") <= MAX_NESTING:
        return
    depth = 0
    for m in _NEST_TOKENS.finditer(text):
        ch = m.group(0)
        if ch in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                raise ClassAdSyntaxError(
                    "nesting deeper than %d levels" % MAX_NESTING, text, m.start())
        elif len(ch) == 1 and ch not in "\"'":
            depth -= 1


def _check_depth(tree: Expr, text: str) -> None:
    """Iterative depth bound, so a 100,000-term `a + a + ...` cannot blow the stack later."""
    if len(text) <= MAX_DEPTH:
        return  # every level of the tree takes at least one character
    # ...and at least one operator, bracket, dot or `is`/`isnt` keyword
    if sum(map(text.count, _LEVEL_CHARS)) + text.lower().count("is") <= MAX_DEPTH:
        return
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ClassAdSyntaxError("expression nested deeper than %d levels" % MAX_DEPTH, text, 0)
        t = type(node)
        if t is Op or t is FnCall:
            for child in node.args:
                stack.append((child, depth + 1))
        elif t is AttrRef:
            if node.base is not None:
                stack.append((node.base, depth + 1))
        elif t is ExprList:
            for child in node.items:
                stack.append((child, depth + 1))
        elif t is ClassAd:
            for _, child in node.items():
                stack.append((child, depth + 1))


def _run(element_plain, element_commented, text: str):
    if not isinstance(text, str):
        raise TypeError("ClassAd text must be str, not %s" % type(text).__name__)
    _check_nesting(text)
    element = element_commented if _COMMENT_HINT.search(text) else element_plain
    try:
        result = element.parse_string(text, parse_all=True)[0]
    except pp.ParseBaseException as exc:
        raise ClassAdSyntaxError(_describe(exc), text, exc.loc) from None
    except RecursionError:
        raise ClassAdSyntaxError("expression nested too deeply", text, 0) from None
    _check_depth(result, text)
    return result


def _describe(exc: pp.ParseBaseException) -> str:
    found = exc.pstr[exc.loc:exc.loc + 12]
    if exc.loc >= len(exc.pstr):
        where = "end of input"
    else:
        where = repr(found.split("\n")[0])
    msg = exc.msg
    if msg.startswith("Expected") or msg.startswith("Unexpected") or not msg:
        return "syntax error at %s" % where
    return "%s at %s" % (msg, where)


def parse_ad(text: str) -> ClassAd:
    """Parse one new-syntax ClassAd `[ a = 1; b = "x" ]` (comments and whitespace allowed
    around it, nothing else)."""
    return _run(grammar.AD_PLAIN, grammar.AD_COMMENTED, text)


def parse_expr(text: str) -> Expr:
    """Parse one new-syntax expression."""
    return _run(grammar.EXPR_PLAIN, grammar.EXPR_COMMENTED, text)


# --- old syntax -----------------------------------------------------------------------------
# `condor_q -long` style: one `Name = expression` per line; in strings only `\"` is an escape
# (kept when the quote is the last character of the line, as HTCondor's old lexer does).
_OLD_LINE = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(?![=?!])[ \t]*(.*?)[ \t\r]*$")
_OLD_STRING = re.compile(r'"((?:[^"\\\n\x00]|\\"(?!$)|\\)*)"')


def _old_string_to_new(m: "re.Match") -> str:
    body = m.group(1).replace('\\"', '"')
    out = []
    for ch in body:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def parse_old_expr(text: str) -> Expr:
    """An expression written with old-ClassAd string rules (backslash is literal)."""
    if '"' in text:
        text = _OLD_STRING.sub(_old_string_to_new, text)
    return parse_expr(text)


def parse_old_ad(text: str, *, stop_at_blank: bool = True) -> ClassAd:
    """Parse an old-syntax ad: `Name = value` lines, `#` comment lines skipped; a blank line
    ends the ad when `stop_at_blank` (as between ads in `condor_q -long` output)."""
    ad = ClassAd()
    offset = 0
    for line in text.split("\n"):
        start = offset
        offset += len(line) + 1
        stripped = line.strip()
        if not stripped:
            if stop_at_blank and len(ad):
                break
            continue
        if stripped.startswith("#"):
            continue
        m = _OLD_LINE.match(line)
        if not m:
            raise ClassAdSyntaxError("expected 'Name = value'", text, start)
        try:
            value = parse_old_expr(m.group(2))
        except ClassAdSyntaxError as exc:
            raise ClassAdSyntaxError(exc.reason, text, start + m.start(2) + exc.offset) from None
        ad[m.group(1)] = value
    return ad


__all__ = ["ClassAdSyntaxError", "parse_ad", "parse_expr", "parse_old_ad", "parse_old_expr",
           "MAX_NESTING", "MAX_DEPTH"]
