"""Session files: parse the text format of conformance/README.md into steps (no I/O here).

A session is a header of ``@ key: value`` lines and a list of steps.  Block directives
(``= results``, ``= unordered``, ``= retry``) hold the steps up to their ``= end``.
"""
from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from conformance.pattern import Template

# every need a session may declare: "protocol" needs nothing but a GAHP server; "sim-*" are the
# simulated batch systems the runner sets up itself; the others must exist where the server runs
NEEDS = ("protocol", "local", "slurm", "sge", "sim-torque", "sim-pbs-pro", "sim-lsf", "sim-condor")
SIM_NEEDS = tuple(n for n in NEEDS if n.startswith("sim-"))
REPEATABLE = ("config", "deviation", "env")
KNOWN_META = ("purpose", "needs", "config", "deviation", "source", "timeout", "serial", "env", "tags", "sim")
BLOCKS = ("results", "unordered", "retry")
DIRECTIVES = BLOCKS + ("end", "sleep", "restart", "eof", "exit", "sim")


class SessionSyntaxError(ValueError):
    def __init__(self, path: str, lineno: int, msg: str) -> None:
        super().__init__("%s:%d: %s" % (path, lineno, msg))
        self.path, self.lineno, self.msg = path, lineno, msg


@dataclass
class Step:
    """``kind`` is ``send``, ``send_raw``, ``expect``, ``expect_raw``, ``r`` or a directive name."""
    kind: str
    lineno: int
    text: str = ""                    # the line as written (reports quote it)
    data: bytes = b""                 # send_raw / expect_raw
    template: Optional[Template] = None
    args: List[str] = field(default_factory=list)
    body: List["Step"] = field(default_factory=list)

    def where(self, path: str) -> str:
        return "%s:%d" % (path, self.lineno)


@dataclass
class Session:
    path: str
    name: str
    meta: Dict[str, List[str]]
    steps: List[Step]

    def first(self, key: str, default: str = "") -> str:
        values = self.meta.get(key)
        return values[0] if values else default

    @property
    def needs(self) -> str:
        return self.first("needs", "protocol")

    @property
    def purpose(self) -> str:
        return self.first("purpose")

    @property
    def timeout(self) -> float:
        return float(self.first("timeout", "120"))

    @property
    def serial(self) -> bool:
        return self.first("serial", "no").lower() in ("yes", "true", "1")

    @property
    def config(self) -> List[str]:
        return self.meta.get("config", [])

    @property
    def deviations(self) -> List[str]:
        return self.meta.get("deviation", [])


def _literal(path: str, lineno: int, text: str) -> bytes:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise SessionSyntaxError(path, lineno, "expected a quoted string literal, got %r" % text.strip())
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if not isinstance(value, bytes) or not value:
        raise SessionSyntaxError(path, lineno, "expected a non-empty string literal")
    return value


def _number(path: str, lineno: int, text: str, what: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise SessionSyntaxError(path, lineno, "%s must be a number of seconds, not %r" % (what, text))
    if n < 0:
        raise SessionSyntaxError(path, lineno, "%s must not be negative" % what)
    return n


def parse(text: str, path: str = "<session>", name: Optional[str] = None) -> Session:
    meta: Dict[str, List[str]] = {}
    root: List[Step] = []
    stack: List[Step] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip() or line.startswith("#"):
            continue
        target = stack[-1].body if stack else root
        if line.startswith("@"):
            if root or stack:
                raise SessionSyntaxError(path, lineno, "'@' metadata belongs before the first step")
            m = re.match(r"@\s*([a-z_-]+)\s*:\s?(.*)$", line)
            if not m:
                raise SessionSyntaxError(path, lineno, "metadata lines read '@ key: value'")
            key, value = m.group(1), m.group(2).strip()
            if key not in KNOWN_META:
                raise SessionSyntaxError(path, lineno, "unknown metadata key %r (known: %s)" % (key, ", ".join(KNOWN_META)))
            if key in meta and key not in REPEATABLE:
                raise SessionSyntaxError(path, lineno, "'@ %s' given twice" % key)
            meta.setdefault(key, []).append(value)
        elif line.startswith(">raw "):
            target.append(Step("send_raw", lineno, line, data=_literal(path, lineno, line[5:])))
        elif line.startswith("<raw "):
            data = _literal(path, lineno, line[5:])
            if not data.endswith(b"\n"):
                raise SessionSyntaxError(path, lineno, "an expected raw line ends with \\n (it is read up to LF)")
            target.append(Step("expect_raw", lineno, line, data=data))
        elif line.startswith("> ") or line == ">":
            target.append(Step("send", lineno, line, template=_template(path, lineno, line[2:])))
        elif line.startswith("< ") or line == "<":
            body = line[2:]
            if body == "R":
                target.append(Step("r", lineno, line))
            else:
                target.append(Step("expect", lineno, line, template=_template(path, lineno, body)))
        elif line.startswith("= "):
            try:
                words = shlex.split(line[2:])   # '= sim fault qstat stderr="a message"'
            except ValueError as e:
                raise SessionSyntaxError(path, lineno, "unbalanced quotes: %s" % e)
            if not words or words[0] not in DIRECTIVES:
                raise SessionSyntaxError(path, lineno, "unknown directive %r (known: %s)" % (line, ", ".join(DIRECTIVES)))
            step = _directive(path, lineno, line, words[0], words[1:], bool(stack))
            if step.kind == "end":
                if not stack:
                    raise SessionSyntaxError(path, lineno, "'= end' without an open block")
                stack.pop()
            else:
                target.append(step)
                if step.kind in BLOCKS:
                    if step.kind != "retry" and stack and stack[-1].kind != "retry":
                        raise SessionSyntaxError(path, lineno, "'= %s' cannot be nested here" % step.kind)
                    stack.append(step)
        else:
            raise SessionSyntaxError(path, lineno, "a line starts with '> ', '< ', '>raw ', '<raw ', '= ', '@' or '#': %r" % line[:60])
    if stack:
        raise SessionSyntaxError(path, stack[-1].lineno, "'= %s' is never closed by '= end'" % stack[-1].kind)
    _validate(path, meta, root)
    stem = name or re.sub(r"\.session$", "", path.replace("\\", "/").rsplit("/", 1)[-1])
    return Session(path, stem, meta, root)


def _template(path: str, lineno: int, text: str) -> Template:
    try:
        return Template(text)
    except ValueError as e:
        raise SessionSyntaxError(path, lineno, str(e))


def _directive(path: str, lineno: int, line: str, kind: str, args: List[str], nested: bool) -> Step:
    step = Step(kind, lineno, line, args=args)
    if kind in ("results", "unordered", "restart", "eof", "end") and kind != "results" and args:
        raise SessionSyntaxError(path, lineno, "'= %s' takes no arguments" % kind)
    if kind == "results" and args:
        if len(args) != 2 or args[0] != "within":
            raise SessionSyntaxError(path, lineno, "'= results' or '= results within <seconds>'")
        _number(path, lineno, args[1], "the wait")
    if kind in ("retry", "sleep"):
        if len(args) != 1:
            raise SessionSyntaxError(path, lineno, "'= %s <seconds>'" % kind)
        _number(path, lineno, args[0], "the bound")
    if kind == "exit":
        if len(args) != 1 or not re.match(r"-?\d+$", args[0]):
            raise SessionSyntaxError(path, lineno, "'= exit <status>'")
    if kind == "sim":
        if not args or args[0] not in ("advance", "fault", "clear-faults", "configure"):
            raise SessionSyntaxError(path, lineno, "'= sim advance <s>', '= sim fault <command> k=v ...', '= sim clear-faults' or '= sim configure k=v ...'")
        if args[0] == "advance":
            if len(args) != 2:
                raise SessionSyntaxError(path, lineno, "'= sim advance <seconds>'")
            _number(path, lineno, args[1], "the advance")
        for kv in args[2 if args[0] == "fault" else 1:] if args[0] in ("fault", "configure") else []:
            if "=" not in kv:
                raise SessionSyntaxError(path, lineno, "settings read key=value, not %r" % kv)
    if kind in ("restart", "eof", "exit") and nested:
        raise SessionSyntaxError(path, lineno, "'= %s' cannot be inside a block" % kind)
    return step


def _validate(path: str, meta: Dict[str, List[str]], steps: List[Step]) -> None:
    if not meta.get("purpose"):
        raise SessionSyntaxError(path, 1, "every session says what it shows: '@ purpose: ...'")
    needs = meta.get("needs", ["protocol"])[0]
    if needs not in NEEDS:
        raise SessionSyntaxError(path, 1, "'@ needs: %s' is not one of %s" % (needs, ", ".join(NEEDS)))
    for key in ("timeout",):
        if key in meta:
            _number(path, 1, meta[key][0], "@ " + key)

    def walk(items: List[Step]) -> None:
        for s in items:
            if s.kind == "sim" and not needs.startswith("sim-"):
                raise SessionSyntaxError(path, s.lineno, "'= sim' steps need a simulated batch system ('@ needs: sim-...')")
            if s.kind == "results" and any(c.kind != "expect" for c in s.body):
                raise SessionSyntaxError(path, s.lineno, "a '= results' block holds only '< ' result lines")
            if s.kind == "unordered" and any(c.kind != "expect" for c in s.body):
                raise SessionSyntaxError(path, s.lineno, "a '= unordered' block holds only '< ' lines")
            if s.kind in BLOCKS and not s.body:
                raise SessionSyntaxError(path, s.lineno, "an empty '= %s' block" % s.kind)
            walk(s.body)
    walk(steps)
