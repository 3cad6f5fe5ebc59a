"""Built-in functions (HTCondor's `fnCall.cpp` and the compat layer's string-list functions).

Names are case-insensitive; an unknown name or a wrong argument count evaluates to ERROR
(never a parse error). Conversions follow value.cpp: strings become numbers through C
`strtod` rules (leading blanks, trailing junk ignored), reals print as `%1.15E`.
"""

import math
import re
import time as _time
from typing import Callable, Dict, Optional

from .evaluate import Evaluator, ListValue, _compare, _identical, bytes_lower
from .lexemes import INT64_MIN
from .nodes import ERROR, UNDEFINED, ClassAd, Error, ExprList, FnCall, Undefined

_FUNCTIONS: Dict[str, Callable] = {}


def _function(*names: str):
    def register(fn):
        for name in names:
            _FUNCTIONS[name.lower()] = fn
        return fn
    return register


def call(ev: Evaluator, node: FnCall, scope):
    fn = _FUNCTIONS.get(node.name.lower())
    if fn is None:
        return ERROR
    return fn(ev, node.args, scope)


# --- conversions ---------------------------------------------------------------------------
_STRTOD = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))", re.I)


def strtod(text: str) -> Optional[float]:
    """C strtod on the start of `text`; None when no number could be read."""
    m = _STRTOD.match(text)
    if not m:
        return None
    number = m.group(1)
    body = number.lstrip("+-")
    sign = -1.0 if number.startswith("-") else 1.0
    lowered = body.lower()
    if lowered.startswith("inf"):
        return sign * math.inf
    if lowered.startswith("nan"):
        return math.nan
    if lowered.startswith("0x"):
        if "p" not in lowered:
            lowered += "p0"
        return sign * float.fromhex(lowered)
    return sign * float(body)


def _c_int(value: float) -> int:
    """A double cast to a 64-bit integer as x86-64 does (out of range or NaN: INT64_MIN)."""
    if value != value or value in (math.inf, -math.inf):
        return INT64_MIN
    result = int(value)
    if result < INT64_MIN or result >= (1 << 63):
        return INT64_MIN
    return result


def to_integer(value):
    t = type(value)
    if t is Undefined:
        return UNDEFINED
    if t is bool:
        return int(value)
    if t is int:
        return value
    if t is float:
        return _c_int(value)
    if t is str:
        number = strtod(value)
        return ERROR if number is None else _c_int(number)
    return ERROR


def to_real(value):
    t = type(value)
    if t is Undefined:
        return UNDEFINED
    if t is bool or t is int:
        return float(value)
    if t is float:
        return value
    if t is str:
        number = strtod(value)
        return ERROR if number is None else number
    return ERROR


def to_string(value):
    from .unparse import unparse, unparse_value
    t = type(value)
    if t is str:
        return value
    if t is Undefined or t is Error:
        return value
    if t is ListValue:
        return unparse(ExprList(value.items))
    return unparse_value(value)


def _byte_case(text: str, upper: bool) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    raw = raw.upper() if upper else raw.lower()
    return raw.decode("utf-8", "surrogateescape")


# --- the functions -------------------------------------------------------------------------
@_function("time")
def _time_fn(ev, args, scope):
    return ERROR if args else int(_time.time())


@_function("strcat")
def _strcat(ev, args, scope):
    parts = []
    for arg in args:
        value = ev.value(arg, scope)
        if value is UNDEFINED or value is ERROR:
            return value
        parts.append(to_string(value))
    return "".join(parts)


@_function("substr")
def _substr(ev, args, scope):
    if len(args) not in (2, 3):
        return ERROR
    values = [ev.value(arg, scope) for arg in args]
    if any(v is UNDEFINED for v in values):
        return UNDEFINED
    text, offset = values[0], values[1]
    if type(text) is not str or type(offset) is not int:
        return ERROR
    if len(values) == 3 and type(values[2]) is not int:
        return ERROR
    raw = text.encode("utf-8", "surrogateescape")
    size = len(raw)
    offset = _c_int32(offset)
    if offset < 0:
        offset = max(offset + size, 0)
    elif offset > size:
        offset = size
    if len(values) == 2:
        length = size - offset
    else:
        length = _c_int32(values[2])
        if length < 0:
            length = max(size - offset + length, 0)
        elif length > size - offset:
            length = size - offset
    return raw[offset:offset + length].decode("utf-8", "surrogateescape")


def _c_int32(value: int) -> int:
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _size(value):
    t = type(value)
    if t is Undefined:
        return UNDEFINED
    if t is ListValue or t is ClassAd:
        return len(value)
    if t is str:
        return len(value.encode("utf-8", "surrogateescape"))
    return ERROR


@_function("ifThenElse")
def _if_then_else(ev, args, scope):
    if len(args) != 3:
        return ERROR
    cond = ev.value(args[0], scope)
    if cond is UNDEFINED:
        return UNDEFINED
    t = type(cond)
    if t is bool or t is int or t is float:
        return ev.value(args[1] if cond != 0 else args[2], scope)
    return ERROR


def _one_arg(of_value):
    """A builtin of exactly one argument, given its evaluated value (else ERROR)."""
    def fn(ev, args, scope):
        if len(args) != 1:
            return ERROR
        return of_value(ev.value(args[0], scope))
    return fn


def _type_test(*types):
    return _one_arg(lambda value: type(value) in types)


_FUNCTIONS["size"] = _one_arg(_size)
_FUNCTIONS["isundefined"] = _type_test(Undefined)
_FUNCTIONS["iserror"] = _type_test(Error)
_FUNCTIONS["isstring"] = _type_test(str)
_FUNCTIONS["isinteger"] = _type_test(int)
_FUNCTIONS["isreal"] = _type_test(float)
_FUNCTIONS["isboolean"] = _type_test(bool)
_FUNCTIONS["islist"] = _type_test(ListValue)
_FUNCTIONS["isclassad"] = _type_test(ClassAd)


def _converter(convert):
    return _one_arg(lambda value: ERROR if value is ERROR else convert(value))


_FUNCTIONS["int"] = _converter(to_integer)
_FUNCTIONS["real"] = _converter(to_real)
_FUNCTIONS["string"] = _converter(to_string)


def _case(upper: bool):
    def fn(value):
        value = to_string(value)
        if value is UNDEFINED or value is ERROR:
            return value
        return _byte_case(value, upper)
    return _one_arg(fn)


_FUNCTIONS["toupper"] = _case(True)
_FUNCTIONS["tolower"] = _case(False)


def _rounding(how):
    def fn(value):
        if type(value) is int:
            return value
        real = to_real(value)
        if type(real) is not float:
            return ERROR  # UNDEFINED included, as in HTCondor
        if real != real or real in (math.inf, -math.inf):
            return INT64_MIN
        return _c_int(float(how(real)))
    return _one_arg(fn)


_FUNCTIONS["floor"] = _rounding(math.floor)
_FUNCTIONS["ceiling"] = _FUNCTIONS["ceil"] = _rounding(math.ceil)
_FUNCTIONS["round"] = _rounding(round)  # round half to even, like C rint()


def _membership(identical: bool):
    def fn(ev, args, scope):
        if len(args) != 2:
            return ERROR
        item = ev.value(args[0], scope)
        collection = ev.value(args[1], scope)
        if collection is UNDEFINED or (not identical and item is UNDEFINED):
            return UNDEFINED
        if type(collection) is not ListValue or type(item) in (ListValue, ClassAd):
            return ERROR
        if not identical and item is ERROR:
            return ERROR
        for element in collection.items:
            value = ev.value(element, collection.scope)
            if identical:
                if _identical(item, value) is True:
                    return True
            elif value is not UNDEFINED and value is not ERROR and \
                    _compare("==", item, value) is True:
                return True
        return False
    return fn


_FUNCTIONS["member"] = _membership(False)
_FUNCTIONS["identicalmember"] = _membership(True)

_LIST_DELIMITERS = ", \t\r\n"


def _string_list_member(ignore_case: bool):
    def fn(ev, args, scope):
        if len(args) not in (2, 3):
            return ERROR
        values = [ev.value(arg, scope) for arg in args]
        if any(type(v) not in (str, Undefined) for v in values):
            return ERROR
        if values[0] is UNDEFINED and values[1] is UNDEFINED:
            return UNDEFINED
        item = values[0] if values[0] is not UNDEFINED else ""
        text = values[1] if values[1] is not UNDEFINED else ""
        delimiters = _LIST_DELIMITERS
        if len(values) == 3 and values[2] is not UNDEFINED:
            delimiters = values[2]
        pattern = "[" + re.escape(delimiters) + "]" if delimiters else None
        entries = re.split(pattern, text) if pattern else [text]
        if ignore_case:
            item = bytes_lower(item)
            return any(bytes_lower(e.strip()) == item for e in entries if e.strip())
        return any(e.strip() == item for e in entries if e.strip())
    return fn


_FUNCTIONS["stringlistmember"] = _string_list_member(False)
_FUNCTIONS["stringlistimember"] = _string_list_member(True)


@_function("regexp")
def _regexp(ev, args, scope):
    if len(args) not in (2, 3):
        return ERROR
    values = [ev.value(arg, scope) for arg in args]
    if any(v is ERROR for v in values):
        return ERROR
    if any(v is UNDEFINED for v in values):
        return UNDEFINED
    if any(type(v) is not str for v in values):
        return ERROR
    flags = 0
    if len(values) == 3:
        options = values[2]
        flags |= re.I if "i" in options else 0
        flags |= re.M if "m" in options else 0
        flags |= re.S if "s" in options else 0
        flags |= re.X if "x" in options else 0
    try:
        pattern = re.compile(values[0], flags)
    except (re.error, RecursionError, OverflowError):
        return ERROR
    return pattern.search(values[1]) is not None


def _string_compare(fold: bool):
    def fn(ev, args, scope):
        if len(args) != 2:
            return ERROR
        values = [ev.value(arg, scope) for arg in args]
        if any(v is UNDEFINED for v in values):
            return UNDEFINED
        texts = [to_string(v) for v in values]
        if any(t is ERROR for t in texts):
            return ERROR
        a, b = (t.encode("utf-8", "surrogateescape") for t in texts)
        if fold:
            a, b = a.lower(), b.lower()
        return (a > b) - (a < b)
    return fn


_FUNCTIONS["strcmp"] = _string_compare(False)
_FUNCTIONS["stricmp"] = _string_compare(True)


@_function("pow")
def _pow(ev, args, scope):
    if len(args) != 2:
        return ERROR
    base = ev.value(args[0], scope)
    exponent = ev.value(args[1], scope)
    if type(base) is int and type(exponent) is int and exponent >= 0:
        # computed in double, then +0.5 and truncated: pow(-2, 3) is -7 in HTCondor
        try:
            result = math.pow(base, exponent) + 0.5
        except OverflowError:
            return INT64_MIN
        return _c_int(result)
    base, exponent = to_real(base), to_real(exponent)
    if type(base) is not float or type(exponent) is not float:
        return ERROR
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf
    except ValueError:
        if base == 0.0:  # C pow(): a pole, signed only for odd integer exponents
            odd = exponent == int(exponent) and int(exponent) % 2 == 1
            return math.copysign(math.inf, base) if odd else math.inf
        return math.nan  # negative base, fractional exponent
