"""The control socket's JSON messages without importing json on the launcher's path.

``json`` imports ``re`` and with it enum, functools and collections: ~8 ms on every GAHP start,
a sixth of the warm launch budget (issue 7: under 50 ms). The messages are flat objects of
strings, integers, booleans, null and lists of those; this module writes and reads exactly that
form with json's own C string escaper and scanner (``_json``), and hands anything else to ``json``
itself, so results (and errors) are ``json.dumps``/``json.loads``'s, byte for byte
(tests/unit/test_ssh_mux.py compares them on random messages).
"""
from __future__ import annotations

try:
    from _json import encode_basestring_ascii as _json_str, scanstring as _json_scanstring
except ImportError:  # pragma: no cover - other Python builds
    _json_str = _json_scanstring = None
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple


def _scalar_json(v: Any) -> Optional[str]:
    """``json.dumps(v)`` for str, int, True/False/None; None for anything else."""
    t = type(v)
    if t is str:
        return _json_str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if t is int:
        return int.__repr__(v)
    return None


def dumps(msg: Any) -> str:
    """``json.dumps(msg, separators=(",", ":"), sort_keys=True)``, byte for byte.

    The protocol's messages (an object of scalars and lists of scalars) are written here without
    importing json; any other shape (nesting, floats, subclasses, non-str keys) goes to json.
    """
    if type(msg) is dict and _json_str is not None:
        parts = []
        for k in sorted(msg) if all(type(k) is str for k in msg) else ():
            v = msg[k]
            if type(v) is list:
                items = [_scalar_json(x) for x in v]
                if None in items:
                    break
                j = "[" + ",".join(items) + "]"  # type: ignore[arg-type]
            else:
                j = _scalar_json(v)
                if j is None:
                    break
            parts.append(_json_str(k) + ":" + j)
        else:
            if len(parts) == len(msg):
                return "{" + ",".join(parts) + "}"
    import json
    return json.dumps(msg, separators=(",", ":"), sort_keys=True)


_DIGITS = "0123456789"
_LITERALS = (("true", True), ("false", False), ("null", None))


def _scan_value(s: str, i: int) -> Tuple[Any, int]:
    """A scalar of encode()'s output at s[i]: (value, end); ValueError when not one."""
    c = s[i:i + 1]
    if c == '"':
        return _json_scanstring(s, i + 1, True)
    for text, value in _LITERALS:
        if s.startswith(text, i):
            return value, i + len(text)
    j = i + 1 if c == "-" else i
    k = j
    while s[k:k + 1] in _DIGITS and k < len(s):
        k += 1
    # json's integers: -?(0|[1-9][0-9]*), no fraction/exponent (those go to json), short
    if k == j or (s[j] == "0" and k > j + 1) or k - j > 18 or s[k:k + 1] in (".", "e", "E"):
        raise ValueError("not a plain scalar")
    return int(s[i:k]), k


def _loads_compact(s: str) -> Any:
    """Parse the compact form encode() writes ({"k":scalar|[scalars],...}, no whitespace);
    ValueError for anything else, which the caller then hands to json.loads."""
    if _json_scanstring is None or not s.startswith("{"):
        raise ValueError("not compact")
    out = {}
    i = 1
    if s.startswith("}", i):
        i += 1
    else:
        while True:
            if not s.startswith('"', i):
                raise ValueError("not compact")
            key, i = _json_scanstring(s, i + 1, True)
            if not s.startswith(":", i):
                raise ValueError("not compact")
            i += 1
            if s.startswith("[", i):
                i += 1
                value = []
                if s.startswith("]", i):
                    i += 1
                else:
                    while True:
                        x, i = _scan_value(s, i)
                        value.append(x)
                        if s.startswith(",", i):
                            i += 1
                        elif s.startswith("]", i):
                            i += 1
                            break
                        else:
                            raise ValueError("not compact")
            else:
                value, i = _scan_value(s, i)
            out[key] = value
            if s.startswith(",", i):
                i += 1
            elif s.startswith("}", i):
                i += 1
                break
            else:
                raise ValueError("not compact")
    if i != len(s):
        raise ValueError("not compact")
    return out


def loads(text: str) -> Any:
    """``json.loads(text)``: the compact form without json, anything else through it."""
    try:
        return _loads_compact(text)
    except (ValueError, IndexError):
        import json
        return json.loads(text)
