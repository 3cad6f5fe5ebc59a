"""HTCondor's argument, environment and file-list grammars, as they appear in a BLAH submit ad.

Everything here is a pure function of strings that the ClassAd layer has already unescaped.
The grammars follow HTCondor's ``condor_arglist.cpp`` / ``env.cpp`` / ``filename_tools_cpp.cpp``
so a job means the same thing here as it would under HTCondor's own blahp, except where
submit-ad.md deliberately chooses to drop a bad entry with a warning instead of failing.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "ArgumentsError", "parse_v2", "parse_v1", "quote_v2", "parse_env_v2", "parse_env_v1",
    "job_arguments", "job_environment", "split_transfer_list", "parse_remaps",
]

# HTCondor tests these four characters, not isspace(): a vertical tab, form feed or
# non-ASCII space is an ordinary character inside an argument.
_ARG_SPACE = " \t\n\r"
# What C's isspace() accepts in the "C" locale, for the places where HTCondor trims with it.
_C_SPACE = " \t\n\v\f\r"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DEFAULT_ENV_DELIM = ";"
# A V1 Env string whose first character is one of these declares its own delimiter.
_SELF_DELIMS = "!#$%&*+,-/:;<>?@^`|~\x1f"

Env = List[Tuple[str, str]]


class ArgumentsError(ValueError):
    """An argument, environment or remap string that cannot be parsed at all."""


def parse_v2(text: Optional[str]) -> List[str]:
    """Split a V2 (``Arguments``/``Environment``) string into its arguments."""
    args: List[str] = []
    if not text:
        return args
    buf: List[str] = []
    in_token = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            start = i
            # A quoted section makes a token even when empty, which is how '' means "".
            in_token = True
            i += 1
            while True:
                if i >= n:
                    raise ArgumentsError(
                        "Unbalanced quote starting here: %r" % _excerpt(text[start:]))
                if text[i] != "'":
                    buf.append(text[i])
                    i += 1
                elif i + 1 < n and text[i + 1] == "'":
                    buf.append("'")
                    i += 2
                else:
                    i += 1
                    break
        elif ch in _ARG_SPACE:
            if in_token:
                args.append("".join(buf))
                buf, in_token = [], False
            i += 1
        else:
            buf.append(ch)
            in_token = True
            i += 1
    if in_token:
        args.append("".join(buf))
    return args


def parse_v1(text: Optional[str]) -> List[str]:
    """Split a V1 (``Args``) string: runs of whitespace separate, nothing quotes."""
    if not text:
        return []
    return [a for a in re.split("[%s]+" % _ARG_SPACE, text) if a]


def quote_v2(args: Sequence[str]) -> str:
    """The V2 string that :func:`parse_v2` turns back into ``args``."""
    out = []
    for arg in args:
        if arg == "" or any(c in arg for c in _ARG_SPACE + "'"):
            out.append("'" + arg.replace("'", "''") + "'")
        else:
            out.append(arg)
    return " ".join(out)


def _excerpt(s: str, limit: int = 40) -> str:
    return s if len(s) <= limit else s[:limit] + "..."


def _set_env(entry: str, table: dict, warnings: List[str], kind: str) -> None:
    name, eq, value = entry.partition("=")
    if not eq:
        warnings.append("%s entry without '=' ignored: %r" % (kind, _excerpt(entry)))
    elif not _ENV_NAME.match(name):
        warnings.append("%s entry with invalid variable name ignored: %r"
                        % (kind, _excerpt(entry)))
    else:
        # A repeated name keeps its first position but takes the last value, as
        # HTCondor's name-keyed table does.
        table[name] = value


def parse_env_v2(text: Optional[str]) -> Tuple[Env, List[str]]:
    """Parse a V2 ``Environment`` string into (name, value) pairs and warnings."""
    table: dict = {}
    warnings: List[str] = []
    for token in parse_v2(text):
        _set_env(token, table, warnings, "Environment")
    return list(table.items()), warnings


def parse_env_v1(text: Optional[str], delim: Optional[str] = None) -> Tuple[Env, List[str]]:
    """Parse a V1 ``Env`` string (entries separated by ``delim``) into pairs and warnings."""
    table: dict = {}
    warnings: List[str] = []
    if delim is None or delim == "":
        delim = _DEFAULT_ENV_DELIM
    elif len(delim) != 1:
        warnings.append("EnvDelim %r is not a single character; using %r"
                        % (_excerpt(delim), _DEFAULT_ENV_DELIM))
        delim = _DEFAULT_ENV_DELIM
    if not text:
        return [], warnings
    # HTCondor lets the string name its own delimiter with its first character, so that
    # an ad written on one platform reads the same on another.
    if text[0] == delim:
        text = text[1:]
    elif text[0] in _SELF_DELIMS:
        delim, text = text[0], text[1:]
    # Newline always separates too (compatibility with the oldest environment format);
    # only leading whitespace is trimmed from an entry, trailing whitespace is value.
    for entry in re.split("[%s\n]" % re.escape(delim), text):
        entry = entry.lstrip(_ARG_SPACE)
        if entry:
            _set_env(entry, table, warnings, "Env")
    return list(table.items()), warnings


def job_arguments(arguments: Optional[str], args: Optional[str]) -> List[str]:
    """The job's argv[1:]: V2 ``Arguments`` if non-empty, else V1 ``Args``."""
    if arguments:
        return parse_v2(arguments)
    return parse_v1(args)


def job_environment(environment: Optional[str], env: Optional[str],
                    env_delim: Optional[str]) -> Tuple[Env, List[str]]:
    """The job's environment: V2 ``Environment`` if non-empty, else V1 ``Env``."""
    if environment:
        return parse_env_v2(environment)
    return parse_env_v1(env, env_delim)


def split_transfer_list(text: Optional[str]) -> List[str]:
    """Local file names of a comma-separated transfer list; URLs are the file-transfer GAHP's."""
    if not text:
        return []
    items = (item.strip(_C_SPACE) for item in text.split(","))
    return [item for item in items if item and "://" not in item]


def parse_remaps(text: Optional[str]) -> List[Tuple[str, str]]:
    """Parse ``TransferOutputRemaps`` (``src=dst;src=dst``) into (src, dst) pairs."""
    if not text:
        return []
    # HTCondor deletes every tab and newline before it parses remaps, even inside names.
    text = text.replace("\t", "").replace("\n", "")
    remaps: List[Tuple[str, str]] = []
    parts: List[List[str]] = [[]]
    raw_start = 0

    def finish(end: int) -> None:
        raw = text[raw_start:end]
        if len(parts) == 1:
            if raw.strip(_C_SPACE):
                raise ArgumentsError(
                    "TransferOutputRemaps entry without '=': %r" % _excerpt(raw))
            return
        src, dst = ("".join(p).strip(_C_SPACE) for p in parts)
        if not src or not dst:
            raise ArgumentsError(
                "TransferOutputRemaps entry with an empty name: %r" % _excerpt(raw))
        remaps.append((src, dst))

    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "\\;=":
            parts[-1].append(text[i + 1])
            i += 2
            continue
        if ch == ";":
            finish(i)
            parts, raw_start = [[]], i + 1
        elif ch == "=" and len(parts) == 1:
            parts.append([])
        else:
            parts[-1].append(ch)
        i += 1
    finish(n)
    return remaps
