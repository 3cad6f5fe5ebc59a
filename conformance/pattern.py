"""Line templates: literal wire text with placeholders (conformance/README.md, "Placeholders").

``{name}`` captures one wire field the first time and must equal it afterwards; ``{any}`` is any
one field; ``{date}`` eight digits; ``{*}`` any text; ``{/re/}`` a regular expression;
``{name/re/}`` a capture that must match ``re``; ``{{`` and ``}}`` are literal braces.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

# one field as the gridmanager splits a line: unescaped spaces end it, a backslash takes the next byte
FIELD = r"(?:[^ \\]|\\.)+"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
RESERVED = {"any": FIELD, "date": r"[0-9]{8}"}

Part = Tuple[str, str, Optional[str]]   # (kind, text-or-name, regex)


class Template:
    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: List[Part] = _split(text)

    @property
    def names(self) -> List[str]:
        return [p[1] for p in self.parts if p[0] == "var"]

    @property
    def literal(self) -> bool:
        return all(p[0] == "lit" for p in self.parts)

    def substitute(self, bindings: Dict[str, str]) -> str:
        """The line to send: every placeholder must be a bound name."""
        out = []
        for kind, text, _ in self.parts:
            if kind == "lit":
                out.append(text)
            elif kind == "var" and text in bindings:
                out.append(bindings[text])
            elif kind == "var":
                raise KeyError("{%s} is used before any line captured it" % text)
            else:
                raise KeyError("a line to send cannot hold the pattern %r" % text)
        return "".join(out)

    def regex(self, bindings: Dict[str, str]) -> "re.Pattern[str]":
        out, seen = [], set()
        for kind, text, rx in self.parts:
            if kind == "lit":
                out.append(re.escape(text))
            elif kind == "re":
                out.append("(?:%s)" % rx)
            elif text in bindings:
                out.append(re.escape(bindings[text]))
            elif text in seen:
                out.append("(?P=%s)" % text)
            else:
                seen.add(text)
                out.append("(?P<%s>%s)" % (text, rx or FIELD))
        return re.compile("".join(out), re.S)

    def match(self, line: str, bindings: Dict[str, str]) -> Optional[Dict[str, str]]:
        """The new bindings if ``line`` (without its CRLF) matches, else None."""
        m = self.regex(bindings).fullmatch(line)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}


def _split(text: str) -> List[Part]:
    parts: List[Part] = []
    lit: List[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            lit.append(c)
            i += 2
            continue
        if c == "}":
            raise ValueError("a lone '}' at column %d (write '}}' for a literal brace)" % (i + 1))
        if c != "{":
            lit.append(c)
            i += 1
            continue
        part, i = _placeholder(text, i)
        if lit:
            parts.append(("lit", "".join(lit), None))
            lit = []
        parts.append(part)
    if lit:
        parts.append(("lit", "".join(lit), None))
    return parts


def _placeholder(text: str, i: int) -> Tuple[Part, int]:
    m = re.compile(r"\{(%s)?(/.*?/)?\}" % NAME).match(text, i)
    if text.startswith("{*}", i):
        return ("re", "{*}", ".*"), i + 3
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError("unknown placeholder at column %d: %r (write '{{' for a literal brace)" % (i + 1, text[i:i + 20]))
    name, rx = m.group(1), m.group(2)
    if rx is not None:
        rx = rx[1:-1]
        try:
            re.compile(rx)
        except re.error as e:
            raise ValueError("bad regular expression %r: %s" % (rx, e))
        if re.search(r"\(\?P<|\(\?P=", rx):
            raise ValueError("named groups are not allowed inside a placeholder's regex: %r" % rx)
    if name in RESERVED:
        if rx is not None:
            raise ValueError("{%s} takes no regex" % name)
        return ("re", m.group(0), RESERVED[name]), m.end()
    if name is None:
        return ("re", m.group(0), rx), m.end()
    return ("var", name, rx), m.end()
