"""Turning matched token text into values, the way HTCondor's lexer does.

Text is a Python str; bytes that are not UTF-8 (from the wire, or produced by an octal escape
above 0x7F) are carried as surrogate escapes so that re-encoding yields the original bytes.
"""

import re
from typing import Optional

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_SIMPLE_ESCAPES = {
    '"': '"', "'": "'", "?": "?", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\",
}
_ESCAPE = re.compile(r"\\(.)", re.S)
_OCTAL = "01234567"


def byte_char(n: int) -> str:
    """The str character standing for byte `n` (surrogate escape above 0x7F)."""
    return chr(n) if n < 0x80 else chr(0xDC00 + n)


def convert_escapes(body: str) -> Optional[str]:
    """Decode the C escapes of a new-syntax string body; None if it holds a NUL byte.

    Unknown escapes drop the backslash; an octal escape takes a third digit only when the
    first two are below 0o40 (so at most \\377), exactly like HTCondor's convert_escapes.
    """
    if "\\" not in body:
        return None if "\0" in body else body
    out = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i == n - 1:
            out.append(ch)
            i += 1
            continue
        i += 1
        ch = body[i]
        simple = _SIMPLE_ESCAPES.get(ch)
        if simple is not None:
            out.append(simple)
            i += 1
            continue
        if ch in _OCTAL:
            number = ord(ch) - 48
            i += 1
            if i < n and body[i] in _OCTAL:
                number = (number << 3) + ord(body[i]) - 48
                i += 1
                if number < 0x20 and i < n and body[i] in _OCTAL:
                    number = (number << 3) + ord(body[i]) - 48
                    i += 1
            number &= 0xFF
            if number == 0:
                return None
            out.append(byte_char(number))
            continue
        out.append(ch)
        i += 1
    text = "".join(out)
    return None if "\0" in text else text


def integer_value(text: str) -> int:
    """Value of an integer token: base 10 over the leading digits, 0 when out of range.

    HTCondor reads every integer token with from_chars(base 10), so `017` is 17 and `0x1F`
    is 0; a value outside 64 bits leaves the result at 0.
    """
    m = re.match(r"-?\d+", text)
    if not m:
        return 0
    value = int(m.group(0))
    if value < INT64_MIN or value > INT64_MAX:
        return 0
    return value


def real_value(text: str) -> float:
    return float(text)


def wrap64(value: int) -> int:
    """Two's-complement 64-bit wrap-around, as HTCondor's integer arithmetic does."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >> 63 else value
