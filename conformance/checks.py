"""Protocol properties every GAHP server output must satisfy (protocol.md section 12).

``check_session(requests, output)`` takes the request lines a client sent and the exact bytes
the server wrote, walks the output the way the gridmanager reads it, and returns a list of
human-readable violations (empty = conforming).  It is independent of the server under test:
it uses only the client-side decoder.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from gahp.escaping import read_argv, split_args

BANNER_RE = re.compile(rb"^\$GahpVersion: .{1,140} \$\r\n\Z", re.S)
MAX_LINE = 64 * 1024

# fields per result line, request id included (the gridmanager ASSERTs several of these)
RESULT_FIELDS = {
    "BLAH_JOB_SUBMIT": 4, "BLAH_JOB_STATUS": 5, "BLAH_JOB_CANCEL": 3, "BLAH_JOB_REFRESH_PROXY": 3,
    "BLAH_PING": 3, "BLAH_JOB_HOLD": 3, "BLAH_JOB_RESUME": 3, "BLAH_GET_HOSTPORT": 3,
    "BLAH_JOB_SEND_PROXY_TO_WORKER_NODE": 3,
}


def split_lines(output: bytes) -> Tuple[List[bytes], List[str]]:
    """Lines with their CRLF removed, plus framing violations."""
    problems = []
    raw = output.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    elif raw:
        problems.append("output does not end with a complete line: %r" % raw[-1][:80])
    lines = []
    for i, ln in enumerate(raw):
        if not ln.endswith(b"\r"):
            problems.append("line %d does not end in CRLF: %r" % (i + 1, ln[:80]))
        else:
            ln = ln[:-1]
        if b"\r" in ln:
            problems.append("line %d has a bare CR inside: %r" % (i + 1, ln[:80]))
        if len(ln) + 2 >= MAX_LINE:
            problems.append("line %d is %d bytes (limit %d)" % (i + 1, len(ln) + 2, MAX_LINE))
        lines.append(ln)
    return lines, problems


def check_session(requests: Sequence[str], output: bytes, *, results_on_eof: bool = False,
                  request_times: Optional[Sequence[float]] = None, line_times: Optional[Sequence[float]] = None,
                  response_bound: float = 20.0) -> List[str]:
    """``request_times`` (one per request) and ``line_times`` (one per output line, banner first)
    add the gridmanager's response bound: a return line later than ``response_bound`` seconds."""
    lines, problems = split_lines(output)
    if not lines:
        return problems + ["no output at all"]
    first = output[: output.find(b"\n") + 1]
    if not BANNER_RE.match(first) or b"new_esc_format" not in first:
        problems.append("bad banner: %r" % first[:160])
    times = list(request_times) if request_times is not None else [None] * len(requests)
    pairs = [(a, t) for a, t in zip((split_args(r) for r in requests), times) if a]
    argvs = [a for a, _ in pairs]
    # reqid -> the command last sent with it (the gridmanager reuses an id once its result is read)
    commands: Dict[str, str] = {}
    text = [ln.decode("utf-8", "surrogateescape") for ln in lines[1:]]
    pos = 0
    async_on = False
    r_since_results = 0

    def check_fields(where: str, line: str) -> List[str]:
        args = read_argv(line)
        if any(a == "" for a in args):
            return ["%s: empty argument (double/leading/trailing space): %r" % (where, line[:120])]
        return []

    def take_results(n: int, where: str) -> None:
        nonlocal pos
        for k in range(n):
            if pos >= len(text):
                problems.append("%s: 'S %d' but only %d result lines follow" % (where, n, k))
                return
            line = text[pos]
            pos += 1
            problems.extend(check_fields("result line %r" % line[:40], line))
            args = read_argv(line)
            base = args[0].split(".")[0] if args else ""
            cmd = commands.get(args[0]) or commands.get(base)
            if cmd and len(args) != RESULT_FIELDS[cmd]:
                problems.append("%s result has %d fields, expected %d: %r" % (cmd, len(args), RESULT_FIELDS[cmd], line[:120]))

    for i, argv in enumerate(argvs):
        if argv[0].upper() in RESULT_FIELDS and len(argv) > 1:
            commands[argv[1]] = argv[0].upper()
        where = "reply to request %d (%s)" % (i + 1, " ".join(argv)[:60])
        while pos < len(text) and text[pos] == "R":
            if not async_on:
                problems.append("R while async mode is off (before %s)" % where)
            r_since_results += 1
            if r_since_results > 1:
                problems.append("second R without a non-empty RESULTS in between (before %s)" % where)
            pos += 1
        if pos >= len(text):
            problems.append("%s: missing" % where)
            return problems
        reply = text[pos]
        sent = pairs[i][1]
        if sent is not None and line_times is not None and pos + 1 < len(line_times):
            late = line_times[pos + 1] - sent
            if late > response_bound:
                problems.append("%s: came %.1f s after the request (the gridmanager gives up after %.0f s)"
                                % (where, late, response_bound))
        pos += 1
        problems.extend(check_fields(where, reply))
        if reply[:1] not in ("S", "E", "F"):
            problems.append("%s: does not start with S/E/F: %r" % (where, reply[:80]))
        cmd = argv[0].upper()
        if cmd == "RESULTS" and reply.startswith("S "):
            try:
                n = int(reply[2:])
            except ValueError:
                problems.append("%s: bad count %r" % (where, reply))
                continue
            take_results(n, where)
            if n:
                r_since_results = 0
        elif cmd == "ASYNC_MODE_ON" and reply.startswith("S"):
            async_on = True
        elif cmd == "ASYNC_MODE_OFF" and reply.startswith("S"):
            async_on = False
        elif cmd == "QUIT" and reply.startswith("S"):
            break
    rest = text[pos:]
    while rest and rest[0] == "R":
        r_since_results += 1
        if r_since_results > 1 or not async_on:
            problems.append("unexpected R after the last reply")
        rest = rest[1:]
    if rest and results_on_eof and rest[0].startswith("S "):
        pos = len(text) - len(rest) + 1
        take_results(int(rest[0][2:]), "final results block")
        rest = text[pos:]
    if rest:
        problems.append("%d unexpected line(s) after the last reply: %r" % (len(rest), rest[:3]))
    return problems
