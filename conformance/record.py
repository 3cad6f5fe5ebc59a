"""``gahp-conformance --record``: relay a live exchange and write it as a session file."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from conformance.pattern import FIELD
from gahp.escaping import read_argv

Event = Tuple[str, bytes]          # (">" | "<", bytes as sent / as received, terminator included)
SETTLE = 0.3                       # how long replies to one typed line are awaited before the next


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def to_session(events: Sequence[Event], purpose: str, needs: str, server: Sequence[str]) -> str:
    """The session that replays ``events``: submit job ids become captured names."""
    out = ["# recorded %s from: %s" % (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), " ".join(server)),
           "@ purpose: %s" % (purpose or "(recorded; say what this session shows)"),
           "@ needs: %s" % needs]
    submits: Dict[str, bool] = {}     # reqid -> is a submit
    names: List[Tuple[str, str]] = []  # (job id text, name)
    results_left = 0
    block: List[str] = []

    def generalise(line: str, capture_field: Optional[int] = None) -> str:
        fields = re.findall(FIELD, line)
        if capture_field is not None and len(fields) > capture_field:
            job = fields[capture_field]
            if job != "N/A" and all(job != j for j, _ in names):
                names.append((job, "job%d" % (len(names) + 1)))
        text = _braces(line)
        # the first occurrence (in the submit result) captures, the later ones must be equal
        for job, name in sorted(names, key=lambda x: -len(x[0])):
            text = text.replace(_braces(job), "{%s}" % name)
        return text

    for kind, data in events:
        text = _text(data)
        if kind == ">":
            for line in text.replace("\r", "\n").split("\n"):
                if not line.strip():
                    continue
                argv = read_argv(line)
                if argv and argv[0].upper() == "BLAH_JOB_SUBMIT" and len(argv) > 1:
                    submits[argv[1]] = True
                out.append("> " + generalise(line))
            continue
        if not data.endswith(b"\r\n"):
            out.append("<raw %r" % data)
            continue
        line = text[:-2]
        if line == "R":
            out.append("< R")
            continue
        if results_left:
            results_left -= 1
            argv = read_argv(line)
            is_submit = bool(argv) and submits.get(argv[0], False) and len(argv) == 4 and argv[1] == "0"
            block.append("< " + generalise(line, 3 if is_submit else None))
            if not results_left:
                if len(block) > 1:
                    out.extend(["= unordered"] + block + ["= end"])
                else:
                    out.extend(block)
                block = []
            continue
        out.append("< " + generalise(line))
        if line.startswith("S ") and line[2:].isdigit() and out[-2:-1] == ["> RESULTS"]:
            results_left = int(line[2:])
    return "\n".join(out) + "\n"


def record(server: Sequence[str], path: str, purpose: str, needs: str,
           stdin=None, stdout=None) -> int:
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        proc = subprocess.Popen(list(server), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError as e:
        print("gahp-conformance: cannot start %r: %s" % (" ".join(server), e), file=sys.stderr)
        return 2
    events: List[Event] = []
    lock = threading.Lock()

    def pump() -> None:
        for line in iter(proc.stdout.readline, b""):
            with lock:
                events.append(("<", line))
            stdout.write(line)
            stdout.flush()
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not events and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)   # the banner comes first
    for line in iter(stdin.readline, b""):
        data = line.rstrip(b"\r\n") + b"\r\n"
        with lock:
            events.append((">", data))
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
        except OSError:
            break
        time.sleep(SETTLE)
    try:
        proc.stdin.close()
    except OSError:
        pass
    status = proc.wait()
    reader.join(5)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(to_session(events, purpose, needs, server))
    print("gahp-conformance: %d lines recorded into %s (server exit status %d)" % (len(events), path, status),
          file=sys.stderr)
    return 0
