"""What an admin types <-> GAHP wire lines, for ``gahp-shell`` (pure: no I/O except ``submit -f``).

Typed commands (one per line, or ``;``-separated in a ``-c`` script)::

    status JOBID [JOBID...]   -> BLAH_JOB_STATUS <id> <jobid[\\ jobid...]>
    cancel|hold|resume JOBID  -> BLAH_JOB_CANCEL|HOLD|RESUME <id> <jobid>
    refresh JOBID PROXYFILE   -> BLAH_JOB_REFRESH_PROXY <id> <jobid> <proxy>
    ping LRMS                 -> BLAH_PING <id> <lrms>
    submit Key=Value ...      -> BLAH_JOB_SUBMIT <id> [ Key = <literal>; ... ]
    submit -f FILE            -> BLAH_JOB_SUBMIT <id> <ad read from FILE>
    raw LINE                  -> LINE, verbatim
    commands | version | results | async_on | async_off | quit   -> the GAHP sync command

Typed words are split on whitespace; ``"..."`` and ``'...'`` quote, ``\\`` escapes the next
character outside single quotes. In ``Key=Value`` the value becomes a ClassAd literal: an
unquoted number or ``true``/``false`` is kept as is, anything else (and anything quoted) is a
ClassAd string. ``Key:=expr`` inserts ``expr`` as a raw ClassAd expression.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from gahp.escaping import quote_arg, split_args

JOB_STATUS = {1: "IDLE", 2: "RUNNING", 3: "REMOVED", 4: "COMPLETED", 5: "HELD"}

# typed name -> (GAHP command, number of typed arguments or None for "1 or more")
ASYNC_COMMANDS = {
    "status": ("BLAH_JOB_STATUS", None),
    "cancel": ("BLAH_JOB_CANCEL", None),
    "hold": ("BLAH_JOB_HOLD", 1),
    "resume": ("BLAH_JOB_RESUME", 1),
    "refresh": ("BLAH_JOB_REFRESH_PROXY", 2),
    "ping": ("BLAH_PING", 1),
}
SYNC_COMMANDS = {
    "commands": "COMMANDS",
    "version": "VERSION",
    "results": "RESULTS",
    "async_on": "ASYNC_MODE_ON",
    "async_off": "ASYNC_MODE_OFF",
    "quit": "QUIT",
}
# GAHP commands whose first parameter is a request id (for ``raw`` lines)
GAHP_ASYNC = {"BLAH_JOB_STATUS", "BLAH_JOB_CANCEL", "BLAH_JOB_HOLD", "BLAH_JOB_RESUME",
              "BLAH_JOB_REFRESH_PROXY", "BLAH_PING", "BLAH_JOB_SUBMIT", "BLAH_GET_HOSTPORT",
              "BLAH_JOB_SEND_PROXY_TO_WORKER_NODE", "BLAH_JOB_STATUS_ALL", "BLAH_JOB_STATUS_SELECT"}
SHELL_COMMANDS = sorted(list(ASYNC_COMMANDS) + list(SYNC_COMMANDS) + ["submit", "raw"])

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


class UsageError(ValueError):
    """The typed text is not a valid shell command."""


class Word(str):
    """A typed word with its quotes removed; ``quoted`` tells whether any part was quoted."""
    quoted = False


def tokenize(text: str) -> List[Word]:
    """Split typed text on whitespace with ``"``/``'`` quoting and ``\\`` escapes."""
    words: List[Word] = []
    cur: List[str] = []
    quoted = False
    in_word = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            if in_word:
                w = Word("".join(cur))
                w.quoted = quoted
                words.append(w)
                cur, quoted, in_word = [], False, False
            i += 1
            continue
        in_word = True
        if c == "\\":
            if i + 1 < n:
                cur.append(text[i + 1])
                quoted = True
                i += 2
            else:
                cur.append(c)
                i += 1
            continue
        if c in "\"'":
            end = i + 1
            buf: List[str] = []
            while end < n and text[end] != c:
                if c == '"' and text[end] == "\\" and end + 1 < n and text[end + 1] in '"\\':
                    buf.append(text[end + 1])
                    end += 2
                    continue
                buf.append(text[end])
                end += 1
            if end >= n:
                raise UsageError("unterminated %s quote" % c)
            cur.extend(buf)
            quoted = True
            i = end + 1
            continue
        cur.append(c)
        i += 1
    if in_word:
        w = Word("".join(cur))
        w.quoted = quoted
        words.append(w)
    return words


def split_commands(script: str) -> List[str]:
    """Split a ``-c`` script on ``;`` and newlines outside quotes; empty commands dropped."""
    out: List[str] = []
    cur: List[str] = []
    quote = ""
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < n:
                cur.append(script[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c == "\\" and i + 1 < n:
            cur.extend((c, script[i + 1]))
            i += 2
            continue
        elif c in "\"'":
            quote = c
            cur.append(c)
        elif c in ";\n":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if quote:
        raise UsageError("unterminated %s quote" % quote)
    out.append("".join(cur).strip())
    return [c for c in out if c]


# --- ClassAd building --------------------------------------------------------------------

def classad_string(value: str) -> str:
    """A ClassAd string literal: ``"`` and ``\\`` backslash-escaped, control chars C-style."""
    s = value.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"%s"' % s


def classad_literal(value: str, quoted: bool = False) -> str:
    """Typed value -> ClassAd literal: numbers and booleans as is unless quoted, else a string."""
    if not quoted:
        if _NUMBER.match(value):
            return value
        if value.lower() in ("true", "false"):
            return value.lower()
    return classad_string(value)


def parse_assignment(word: Word) -> Tuple[str, str]:
    """``Key=Value`` / ``Key:=expr`` -> (Key, ClassAd expression text)."""
    m = re.match(r"([^=:]*)(:?=)(.*)\Z", word, re.S)
    if not m or not _ATTR.match(m.group(1)):
        raise UsageError("expected Key=Value or Key:=expr, got %r" % str(word))
    key, op, value = m.groups()
    if op == ":=":
        if not value.strip():
            raise UsageError("empty expression for %s" % key)
        return key, " ".join(value.split("\n"))
    # only the value part decides: a quote anywhere in the word is inside the value
    quoted = word.quoted and ('"' not in key and "'" not in key)
    return key, classad_literal(value, quoted)


def build_ad(pairs: Iterable[Tuple[str, str]]) -> str:
    """``[ A = 1; B = "x" ]`` from (attribute, expression) pairs; a later duplicate wins."""
    ordered: Dict[str, Tuple[str, str]] = {}
    for k, v in pairs:
        ordered[k.lower()] = (k, v)
    if not ordered:
        raise UsageError("submit needs at least one Key=Value")
    return "[ " + "; ".join("%s = %s" % kv for kv in ordered.values()) + " ]"


def ad_from_text(text: str) -> str:
    """An ad read from a file -> one line: a ``[...]`` ad has its line breaks turned into
    spaces; an old-style ad (``Key = value`` per line, ``#`` comments) is wrapped in brackets."""
    body = text.strip()
    if not body:
        raise UsageError("empty ClassAd file")
    if body.startswith("["):
        return " ".join(body.replace("\r", "\n").split("\n"))
    attrs = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        attrs.append(line.rstrip(";"))
    return "[ " + "; ".join(attrs) + " ]"


# --- requests ----------------------------------------------------------------------------

@dataclass
class Request:
    """One line to send. ``reqid`` is None for sync commands; ``expect`` lists the result ids
    (one per job id for a multi-id status/cancel)."""
    command: str
    line: str
    reqid: Optional[str] = None
    args: List[str] = field(default_factory=list)
    expect: List[str] = field(default_factory=list)

    @property
    def is_async(self) -> bool:
        return self.reqid is not None


class LineMaker:
    """Turns typed commands into requests, numbering request ids 1, 2, 3, ... per shell."""

    def __init__(self, first_id: int = 1, read_file=None):
        self.next_id = first_id
        self._read_file = read_file or _read_text

    def new_id(self) -> str:
        rid = str(self.next_id)
        self.next_id += 1
        return rid

    def make(self, text: str) -> Optional[Request]:
        """The request for one typed command; None for an empty line or a comment."""
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return None
        head, _, rest = stripped.partition(" ")
        name = head.lower()
        if name == "raw":
            return raw_request(rest.strip())
        words = tokenize(stripped)[1:]
        if name in SYNC_COMMANDS:
            if words:
                raise UsageError("%s takes no arguments" % name)
            return Request(SYNC_COMMANDS[name], SYNC_COMMANDS[name])
        if name == "submit":
            if words and words[0] == "-f" and not words[0].quoted:
                if len(words) != 2:
                    raise UsageError("usage: submit -f FILE")
                ad = ad_from_text(self._read_file(words[1]))
            else:
                ad = build_ad(parse_assignment(w) for w in words)
            return self.request("BLAH_JOB_SUBMIT", [ad])
        if name in ASYNC_COMMANDS:
            command, nargs = ASYNC_COMMANDS[name]
            if nargs is None:
                if not words:
                    raise UsageError("usage: %s JOBID [JOBID...]" % name)
                # the server splits the argument on (escaped) spaces: one result per id
                ids = [i for w in words for i in w.split()]
                if not ids:
                    raise UsageError("usage: %s JOBID [JOBID...]" % name)
                return self.request(command, [" ".join(ids)], multi=len(ids))
            if len(words) != nargs:
                raise UsageError("%s takes %d argument%s" % (name, nargs, "" if nargs == 1 else "s"))
            return self.request(command, list(words))
        raise UsageError("unknown command %r (try: %s)" % (head, ", ".join(SHELL_COMMANDS)))

    def request(self, command: str, args: Sequence[str], multi: int = 1, reqid: Optional[str] = None) -> Request:
        """An async request with its arguments escaped (the next request id unless given)."""
        for a in args:
            if not a:
                raise UsageError("empty argument to %s" % command)
        rid = reqid if reqid is not None else self.new_id()
        line = " ".join([command, rid] + [quote_arg(a) for a in args])
        expect = [rid] if multi == 1 else ["%s.%d" % (rid, i) for i in range(multi)]
        return Request(command, line, rid, list(args), expect)


def raw_request(line: str) -> Request:
    """A verbatim line; if it is a known async command its request id is taken from it."""
    if not line:
        raise UsageError("usage: raw LINE")
    argv = split_args(line)
    command = argv[0].upper()
    if command in GAHP_ASYNC and len(argv) >= 2:
        multi = 1
        if command in ("BLAH_JOB_STATUS", "BLAH_JOB_CANCEL") and len(argv) == 3:
            multi = len(split_args(argv[2])) or 1
        rid = argv[1]
        expect = [rid] if multi == 1 else ["%s.%d" % (rid, i) for i in range(multi)]
        return Request(command, line, rid, argv[2:], expect)
    return Request(command, line, None, argv[1:])


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as e:
        raise UsageError("cannot read %s: %s" % (path, e.strerror or e)) from None


# --- results -----------------------------------------------------------------------------

def parse_result(line: str) -> List[str]:
    """A result line -> its fields (the server escapes only space and backslash)."""
    return split_args(line)


def split_ad(text: str) -> List[str]:
    """Split a flat ad body on ``;`` outside string literals."""
    parts: List[str] = []
    cur: List[str] = []
    in_str = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if in_str:
            cur.append(c)
            if c == "\\" and i + 1 < n:
                cur.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            cur.append(c)
        elif c == ";":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_ad(text: str) -> Dict[str, str]:
    """A flat ClassAd ``[ A = v; B = "s" ]`` -> {attribute: value text}. Tolerant: pieces
    without ``=`` are skipped, a missing bracket is accepted."""
    body = text.strip()
    if body.startswith("["):
        body = body[1:]
    if body.endswith("]"):
        body = body[:-1]
    ad: Dict[str, str] = {}
    for part in split_ad(body):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            continue
        ad[key.strip()] = value.strip()
    return ad


def unquote(value: str) -> str:
    """The text of a ClassAd string literal (``"a\\"b"`` -> ``a"b``); other values unchanged."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out: List[str] = []
        s = value[1:-1]
        i = 0
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s):
                nxt = s[i + 1]
                out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                i += 2
                continue
            out.append(c)
            i += 1
        return "".join(out)
    return value


def status_name(value) -> str:
    try:
        return JOB_STATUS.get(int(str(value).strip()), "UNKNOWN")
    except ValueError:
        return "UNKNOWN"


@dataclass
class StatusResult:
    reqid: str
    code: int
    message: str
    job_status: int
    ad: Dict[str, str]

    @property
    def state(self) -> str:
        return status_name(self.job_status)


def parse_status(fields: Sequence[str]) -> StatusResult:
    """The 5 fields of a BLAH_JOB_STATUS result."""
    if len(fields) != 5:
        raise ValueError("status result needs 5 fields, got %d: %r" % (len(fields), list(fields)))
    ad = parse_ad(fields[4]) if fields[4] != "N/A" else {}
    try:
        st = int(fields[3])
    except ValueError:
        st = 0
    return StatusResult(fields[0], _int(fields[1]), fields[2], st, ad)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def render_ad(ad: Dict[str, str], indent: str = "  ") -> str:
    """An aligned two-column table; ``JobStatus`` gets its name appended."""
    if not ad:
        return ""
    width = max(len(k) for k in ad)
    rows = []
    for k, v in ad.items():
        if k.lower() == "jobstatus":
            v = "%s (%s)" % (v, status_name(v))
        rows.append("%s%s  %s" % (indent, k.ljust(width), v))
    return "\n".join(rows)


def render_result(request: Optional[Request], fields: Sequence[str]) -> str:
    """Human text for one result line (status results with their ad as a table)."""
    command = request.command if request else ""
    if command == "BLAH_JOB_STATUS" and len(fields) == 5:
        st = parse_status(fields)
        head = "%s %s %s" % (st.reqid, st.code, st.message)
        if st.code == 0:
            head += " %s (%d)" % (st.state, st.job_status)
        table = render_ad(st.ad)
        return head + ("\n" + table if table else "")
    return " ".join(fields)
