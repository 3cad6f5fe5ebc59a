"""The new-ClassAd grammar in pyparsing, built once at import.

It follows HTCondor's lexer (`lexer.cpp`) and recursive-descent parser (`source.cpp`):

* binary operators are matched as one flat `operand (op operand)*` run and arranged by
  precedence in a single parse action (all left-associative), which keeps the grammar one
  level deep instead of eleven;
* a `-` glued to a number where an operand is expected is part of the literal (`-5`), any
  other `-` is an operator;
* `?:` (also `? :`) binds like a postfix operator and takes a postfix operand; the ternary
  `c ? a : b` is the lowest level and right-associative;
* adjacent string literals are concatenated before escapes are decoded.

Comments (`//`, `/* */`) are only handled by a second copy of the grammar, used when the
text contains `//` or `/*` at all, so ordinary ads do not pay for comment skipping.
"""

import re

import pyparsing as pp

from .lexemes import convert_escapes, integer_value, real_value
from .nodes import (ERROR, UNDEFINED, AttrRef, ClassAd, ExprList, FnCall, Literal, Op)

WHITESPACE = " \t\n\r\v\f"
_WS = "[ \\t\\n\\r\\v\\f]"
_ALNUM = "[A-Za-z0-9_]"

# binding strength of the binary operators (higher binds tighter)
PRECEDENCE = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "is": 6, "isnt": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7,
    "<<": 8, ">>": 8, ">>>": 8,
    "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
_BINOP_NAME = {"=?=": "is", "=!=": "isnt"}
_UNOP_NAME = {"-": "neg", "+": "pos", "!": "!", "~": "~"}
_KEYWORDS = {"true": True, "false": False, "undefined": UNDEFINED, "error": ERROR}

NUMBER_RE = (
    r"(?:-?(?:0[xX][0-9a-fA-F]+"         # hex: value taken base 10, so 0 (HTCondor quirk)
    r"|(?P<real>\d*\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)"
    r"|0[0-7]*(?![0-9.eE])"              # leading 0: octal digits only, read base 10
    r"|[1-9]\d*(?![0-9.eE]))"
    r"|\.\.\d+(?:[eE][+-]?\d+)?)"        # `..5` lexes as a real that strtod reads as 0.0
)
_DQ_BODY = r'(?:[^"\\\x00]|\\[^\x00])*'
_SQ_BODY = r"(?:[^'\\\x00]|\\[^\x00])*"
STRING_RE = '"%s"(?:%s*"%s")*' % (_DQ_BODY, _WS, _DQ_BODY)
QUOTED_NAME_RE = "'%s'(?:%s*'%s')*" % (_SQ_BODY, _WS, _SQ_BODY)
IDENT_RE = r"(?!(?i:true|false|undefined|error|isnt|is)(?!%s))[A-Za-z_]%s*" % (_ALNUM, _ALNUM)


# a literal or plain name not followed by anything that would extend it (call, selection,
# subscript, elvis, an adjacent string)
SIMPLE_OPERAND_RE = (
    r"(?:(?P<id>%s)|(?P<str>\"%s\")|(?P<num>%s)|(?P<kw>(?i:true|false|undefined|error)))"
    r'(?![A-Za-z0-9_])(?!%s*(?:[.(\["]|\?%s*:))'
) % (IDENT_RE, _DQ_BODY, NUMBER_RE.replace("?P<real>", "?:"), _WS, _WS)

# `name = literal` followed by its separators (or by the closing bracket)
FAST_ATTR_RE = (
    r"(?:(?P<name>%s)|(?P<qname>'%s'))%s*=(?!=|\?|!=)%s*"
    r"(?:(?P<str>\"%s\")|(?P<num>%s)|(?P<kw>(?i:true|false|undefined|error)(?!%s)))"
    r"%s*(?:;[;%s]*|(?=\]))"
) % (IDENT_RE, _SQ_BODY, _WS, _WS, _DQ_BODY, NUMBER_RE.replace("?P<real>", "?:"), _ALNUM,
     _WS, WHITESPACE)


def _unnamed(regex: str) -> str:
    # pyparsing turns named groups into named results, which costs more than the match;
    # the parse actions re-match with the named version instead
    return re.sub(r"\(\?P<\w+>", "(?:", regex)


def _token(regex: str, flags: int = 0) -> pp.Regex:
    tok = pp.Regex(regex, flags)
    tok.set_whitespace_chars(WHITESPACE)
    return tok


def _punct(text: str) -> pp.ParserElement:
    tok = pp.Literal(text)
    tok.set_whitespace_chars(WHITESPACE)
    return tok.suppress()


def _adjacent_bodies(text: str, quote: str):
    """Raw bodies of `"a" "b"`-style adjacent literals, joined before escape decoding."""
    if text.count(quote) == 2:
        return text[1:-1]
    parts = []
    i = 0
    n = len(text)
    while i < n:
        # text alternates: quote, body, quote, whitespace
        assert text[i] == quote
        j = i + 1
        while text[j] != quote:
            j += 2 if text[j] == "\\" else 1
        parts.append(text[i + 1:j])
        i = j + 1
        while i < n and text[i] in WHITESPACE:
            i += 1
    return "".join(parts)


def _decode(s, loc, body: str, what: str) -> str:
    value = convert_escapes(body)
    if value is None:
        raise pp.ParseFatalException(s, loc, "%s contains a NUL character" % what)
    return value


def _string_action(s, loc, toks):
    return Literal(_decode(s, loc, _adjacent_bodies(toks[0], '"'), "string literal"))


def _quoted_name_action(s, loc, toks):
    return _decode(s, loc, _adjacent_bodies(toks[0], "'"), "attribute name")


def _number_action(toks):
    text = toks[0]
    if text.startswith(".."):
        return Literal(0.0)
    if "." in text or (("e" in text or "E" in text) and "x" not in text and "X" not in text):
        return Literal(real_value(text))
    return Literal(integer_value(text))


def _keyword_action(toks):
    return Literal(_KEYWORDS[toks[0].lower()])


class _Suffix:
    __slots__ = ("kind", "arg")

    def __init__(self, kind, arg):
        self.kind = kind
        self.arg = arg


class _Args:
    __slots__ = ("args",)

    def __init__(self, args):
        self.args = args


def _fold_postfix(toks):
    node = toks[0]
    for suffix in toks[1:]:
        kind = suffix.kind
        if kind == "[]":
            node = Op("[]", node, suffix.arg)
        elif kind == ".":
            node = AttrRef(suffix.arg, base=node)
        else:
            node = Op("elvis", node, suffix.arg)
    return node


def _fold_unary(toks):
    node = toks[-1]
    for i in range(len(toks) - 2, -1, -1):
        node = Op(_UNOP_NAME[toks[i]], node)
    return node


def _fold_binary(toks):
    n = len(toks)
    if n == 1:
        return toks[0]
    # operator-precedence parse of operand (op operand)*; all levels are left-associative
    operands = [toks[0]]
    ops = []
    for i in range(1, n, 2):
        op = toks[i]
        op = _BINOP_NAME.get(op) or (op.lower() if op[0] in "iI" else op)
        prec = PRECEDENCE[op]
        while ops and PRECEDENCE[ops[-1]] >= prec:
            right = operands.pop()
            operands[-1] = Op(ops.pop(), operands[-1], right)
        ops.append(op)
        operands.append(toks[i + 1])
    while ops:
        right = operands.pop()
        operands[-1] = Op(ops.pop(), operands[-1], right)
    return operands[0]


def _ternary(toks):
    if len(toks) == 1:
        return toks[0]
    return Op("?:", toks[0], toks[1], toks[2])


def _primary_name(toks):
    if len(toks) == 2:
        return FnCall(toks[0], tuple(toks[1].args))
    return AttrRef(toks[0])


class _Attr:
    __slots__ = ("name", "expr")

    def __init__(self, name, expr):
        self.name = name
        self.expr = expr


def _build_ad(toks):
    ad = ClassAd()
    for attr in toks:
        ad[attr.name] = attr.expr
    return ad


def _match_literal(s, m) -> Literal:
    """The literal of a fast-path match (groups `str`, `num`, `kw`)."""
    text = m.group("str")
    if text is not None:
        return Literal(_decode(s, m.start("str"), text[1:-1], "string literal"))
    text = m.group("num")
    if text is not None:
        return _number_action([text])
    return Literal(_KEYWORDS[m.group("kw").lower()])


def _simple_operand_action(s, loc, toks):
    m = _SIMPLE_OPERAND.match(s, loc)
    name = m.group("id")
    return AttrRef(name) if name is not None else _match_literal(s, m)


def _fast_attrs_action(s, loc, toks):
    """A run of `name = literal;` definitions matched as one token."""
    end = loc + len(toks[0])
    attrs = []
    while loc < end:
        m = _FAST_ATTR.match(s, loc)
        loc = m.end()
        name = m.group("name")
        if name is None:
            name = _decode(s, m.start(), m.group("qname")[1:-1], "attribute name")
        attrs.append(_Attr(name, _match_literal(s, m)))
    return attrs


def build(with_comments: bool):
    expr = pp.Forward()
    postfix = pp.Forward()

    number = _token(NUMBER_RE).set_parse_action(_number_action)
    string = _token(STRING_RE, 0).set_parse_action(_string_action)
    keyword = _token(r"(?i:true|false|undefined|error)(?!%s)" % _ALNUM).set_parse_action(
        _keyword_action)
    ident = _token(IDENT_RE)
    quoted_name = _token(QUOTED_NAME_RE).set_parse_action(_quoted_name_action)
    name = ident | quoted_name

    lpar, rpar = _punct("("), _punct(")")
    lbox, rbox = _punct("["), _punct("]")
    lbrace, rbrace = _punct("{"), _punct("}")
    comma, semi = _punct(","), _punct(";")
    dot = _token(r"\.\.?(?![0-9])").suppress()  # HTCondor's lexer also takes `..` as a dot
    colon = _punct(":")
    qmark = _token(r"\?(?!%s*:)" % _WS).suppress()
    elvis = _token(r"\?%s*:" % _WS).suppress()
    bound_to = _token(r"=(?!=|\?|!=)").suppress()

    items = pp.Optional(expr + pp.ZeroOrMore(comma + expr))
    # `-` (pyparsing's ErrorStop) commits to a rule once its opening token matched, so a
    # failure is reported where it happens instead of where the enclosing rule began
    arglist = (lpar + items - rpar).set_parse_action(lambda toks: _Args(list(toks)))
    name_or_call = (name + pp.Optional(arglist)).set_parse_action(_primary_name)
    absolute = (dot + name).set_parse_action(lambda toks: AttrRef(toks[0], absolute=True))
    parens = (lpar - expr - rpar).set_parse_action(lambda toks: Op("()", toks[0]))
    exprlist = (lbrace + items - rbrace).set_parse_action(lambda toks: ExprList(toks))

    # `[ a = 1; b = "x" ]`: any number of `;` between and around definitions. Most submit-ad
    # attributes are `name = literal`; one regex takes those whole (with their separators),
    # the general rule takes the rest.
    separators = pp.OneOrMore(semi)
    fast_attr = _token("(?:%s)+" % _unnamed(FAST_ATTR_RE)).set_parse_action(_fast_attrs_action)
    slow_attr = (name - bound_to - expr - (separators | pp.FollowedBy(rbox))).set_parse_action(
        lambda toks: _Attr(toks[0], toks[1]))
    opening = _token(r"\[[;%s]*" % WHITESPACE).suppress()  # `[` and any leading `;`
    classad = (opening - pp.ZeroOrMore(fast_attr | slow_attr) - rbox).set_parse_action(_build_ad)

    primary = number | string | keyword | name_or_call | absolute | parens | classad | exprlist

    subscript = (lbox - expr - rbox).set_parse_action(lambda toks: _Suffix("[]", toks[0]))
    selection = (dot - name).set_parse_action(lambda toks: _Suffix(".", toks[0]))
    elvis_tail = (elvis - postfix).set_parse_action(lambda toks: _Suffix("elvis", toks[0]))
    postfix <<= (primary + pp.ZeroOrMore(subscript | selection | elvis_tail)).set_parse_action(
        _fold_postfix)

    unop = _token(r"-(?!\.?\d)|\+|!(?!=)|~")
    unary = (pp.ZeroOrMore(unop) + postfix).set_parse_action(_fold_unary)

    binop = _token(r">>>|>>|>=|<<|<=|==|!=|=\?=|=!=|&&|\|\||[<>&|^+\-*/%]"
                   r"|(?i:isnt|is)(?!" + _ALNUM + ")")
    # operands that are a bare literal or name (the bulk of real expressions) in one regex
    simple = _token(_unnamed(SIMPLE_OPERAND_RE)).set_parse_action(_simple_operand_action)
    operand = simple | unary
    chain = (operand + pp.ZeroOrMore(binop - operand)).set_parse_action(_fold_binary)

    expr <<= (chain + pp.Optional(qmark - expr - colon - expr)).set_parse_action(_ternary)

    end = pp.StringEnd()
    end.set_whitespace_chars(WHITESPACE)
    whole_ad = classad + end
    whole_expr = expr + end
    # pyparsing would otherwise expand TABs inside string literals
    whole_ad.parse_with_tabs()
    whole_expr.parse_with_tabs()
    if with_comments:
        comment = pp.Regex(r"//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/")
        whole_ad.ignore(comment)
        whole_expr.ignore(comment)
    return whole_ad, whole_expr


_FAST_ATTR = re.compile(FAST_ATTR_RE)
_SIMPLE_OPERAND = re.compile(SIMPLE_OPERAND_RE)
AD_PLAIN, EXPR_PLAIN = build(False)
AD_COMMENTED, EXPR_COMMENTED = build(True)
