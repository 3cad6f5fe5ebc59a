"""Tokenising and escaping of GAHP lines, both directions.

Server side (what blahpd does):
  * :func:`split_args` turns a request line into argv (only SPACE separates; ``\\ `` is a
    space, ``\\\\`` a backslash, backslash-CR/LF a CR/LF as in the C blahp (unreachable on
    the wire, where CR and LF end the line first); any other escape is kept verbatim).
  * :func:`escape_field` turns any text into one non-empty-safe reply token following
    protocol.md section 3.3 (TAB -> space, CR dropped, interior LF -> ``-``, trailing
    CR/LF/space dropped, control characters -> ``?``, then space and backslash escaped).
  * :func:`encode_line` joins tokens into one CRLF-terminated line.

Client side (what the gridmanager does), used by the shell, the conformance harness and tests:
  * :func:`quote_arg` is the gridmanager's ``escapeGahpString``.
  * :func:`read_argv` is the gridmanager's ``read_argv`` decoding of a reply line.
"""
from __future__ import annotations

import re
from typing import Iterable, List

ENCODING = "utf-8"
ERRORS = "surrogateescape"

# A token is a run of escape pairs (or a lone trailing backslash) and non-space characters.
_TOKEN = re.compile(r"(?:\\.|\\\Z|[^ \\])+", re.S)
_UNESCAPE = re.compile(r"\\([ \\\r\n])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
_NEEDS_ESCAPE = re.compile(r"[ \\]")


def decode(line: bytes) -> str:
    return line.decode(ENCODING, ERRORS)


def split_args(line: str) -> List[str]:
    """Server-side tokeniser for one request line (terminator already removed)."""
    if "\\" not in line:
        return [t for t in line.split(" ") if t]
    return [_UNESCAPE.sub(r"\1", t) for t in _TOKEN.findall(line)]


def normalise_field(value: str) -> str:
    """The lossy part of reply escaping: what survives of ``value`` on the wire."""
    if "\t" in value:
        value = value.replace("\t", " ")
    value = value.rstrip("\r\n ")
    if "\r" in value:
        value = value.replace("\r", "")
    if "\n" in value:
        value = value.replace("\n", "-")
    return _CONTROL.sub("?", value)


def escape_field(value: str) -> str:
    """One reply token: normalised, then space and backslash escaped."""
    return _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(0), normalise_field(value))


def encode_line(fields: Iterable[str]) -> bytes:
    """Escape every field and join them into a CRLF line.

    An empty field would turn into a double/trailing space, which the gridmanager reads as an
    empty argument and asserts on; it is a programming error, so it raises.
    """
    tokens = []
    for f in fields:
        t = escape_field(f)
        if not t:
            raise ValueError("empty field in reply: %r" % (list(fields),))
        tokens.append(t)
    if not tokens:
        raise ValueError("empty reply line")
    return (" ".join(tokens) + "\r\n").encode(ENCODING, ERRORS)


def encode_raw(line: str) -> bytes:
    """A line whose escaping was already done (the banner, ``R``)."""
    return (line + "\r\n").encode(ENCODING, ERRORS)


# --- client side -------------------------------------------------------------------------

def quote_arg(value: str) -> str:
    """The gridmanager's escapeGahpString: backslash before space, backslash, CR, LF."""
    return re.sub(r"[ \\\r\n]", lambda m: "\\" + m.group(0), value)


def read_argv(line: str) -> List[str]:
    """Decode a reply line exactly as the gridmanager's ``read_argv`` does.

    A backslash is dropped and the next character taken literally; an unescaped CR is
    ignored; each unescaped space ends an argument, so two spaces make an empty argument.
    """
    args: List[str] = []
    cur: List[str] = []
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            if i + 1 < n:
                cur.append(line[i + 1])
            i += 2
            continue
        if c == "\r":
            pass
        elif c == " ":
            args.append("".join(cur))
            cur = []
        elif c == "\n":
            break
        else:
            cur.append(c)
        i += 1
    args.append("".join(cur))
    return args
