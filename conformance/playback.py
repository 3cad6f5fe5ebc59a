"""A fake GAHP server that plays back a transcript recorded from the C blahpd.

    python -m conformance.playback TRANSCRIPT.gahp

TRANSCRIPT is a file in the format of ``conformance/recordings`` (``T > line`` sent, ``T < line``
received, ``#raw> b'...'`` / ``#raw< b'...'`` exact bytes, ``T ! line`` stderr, ``# exit: ...``).
The server behaves the way the recorded blahpd did, so a session converted from the transcript can
be checked against the recording itself:

* it writes the recorded banner;
* a request is matched with the first recorded request not yet used that has the same command
  (case-insensitively) and the same first argument (the request id); the other arguments may
  differ.  It gets the recorded return line(s), written byte for byte (``#raw`` lines as recorded);
* the recorded result line(s) of that request (those a later ``RESULTS`` returned with its request
  id, or ``<reqid>.<i>`` for multi-id requests) are queued at once: timing is not reproduced;
* ``RESULTS`` (without arguments) returns the queue, ``S <n>`` and the n lines, and empties it;
* in async mode, ``R`` is written once per batch (``protocol.md`` §6.2, real variant: no ``R``
  for results queued before ``ASYNC_MODE_ON``);
* a request that matches nothing recorded gets ``E Unknown\\ command``;
* if the recorded server died (killed by a signal), the request after the last one it answered
  kills this one the same way; ``QUIT`` exits with the recorded status; EOF on stdin writes
  ``Connection closed by remote host`` to stderr and exits 1, as the C blahpd does.

Input lines end at LF; trailing CR and NUL are dropped (``\\r\\n`` and ``\\r\\r\\n`` are one line, as
for the C blahpd).  The command and the request id are compared as written (escapes not decoded).

Give the runner an absolute path: it starts the server in the session's own directory::

    gahp-conformance --server "python3 -m conformance.playback $PWD/conformance/recordings/sge/01-ping.gahp" \\
        conformance/sessions/recorded/sge/01-ping.session
"""
from __future__ import annotations

import ast
import os
import re
import signal
import sys
from typing import BinaryIO, List, Optional, Tuple

CRLF = b"\r\n"
UNKNOWN = b"E Unknown\\ command" + CRLF
EOF_MESSAGE = "Connection closed by remote host"

_EVENT = re.compile(r"\s*[0-9]+(?:\.[0-9]+)? ([<>!])(?: (.*))?\Z", re.S)
_FIELD = re.compile(r"(?:\\.|\\\Z|[^ \\])+", re.S)


def fields(text: str) -> List[str]:
    """The fields of a line as written: split at unescaped spaces, escapes kept."""
    return _FIELD.findall(text)


def key_of(line: bytes) -> Tuple[str, Optional[str]]:
    """(command in upper case, first argument or None) of a request line without its terminator."""
    f = fields(line.decode("utf-8", "surrogateescape"))
    if not f:
        return ("", None)
    return (f[0].upper(), f[1] if len(f) > 1 else None)


def _is_results(key: Tuple[str, Optional[str]]) -> bool:
    return key == ("RESULTS", None)


class Request:
    """One recorded request: its key, the return line(s) and the result lines it produced."""

    def __init__(self, index: int, line: bytes) -> None:
        self.index = index
        self.line = line
        self.key = key_of(line)
        self.reply: List[bytes] = []     # return lines, terminators included
        self.results: List[bytes] = []   # result lines, terminators included

    @property
    def reqid(self) -> Optional[str]:
        return self.key[1]

    def __repr__(self) -> str:
        return "Request(%d, %r, reply=%r, results=%r)" % (self.index, self.line, self.reply, self.results)


class Transcript:
    def __init__(self) -> None:
        self.banner: bytes = b""
        self.requests: List[Request] = []
        self.exit_status: Optional[int] = None    # "# exit: status N"
        self.exit_signal: Optional[int] = None    # "# exit: killed by signal N"

    @property
    def fatal(self) -> Optional[Request]:
        """The request after the last one answered, when the recorded server was killed."""
        if self.exit_signal is None:
            return None
        answered = [r.index for r in self.requests if r.reply]
        last = answered[-1] if answered else -1
        return self.requests[last + 1] if last + 1 < len(self.requests) else None


def _split_input(data: bytes) -> List[bytes]:
    """Request lines of one recorded write (without terminators)."""
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    return [p.rstrip(b"\r\x00") for p in pieces]


def parse(text: bytes) -> Transcript:
    """Read a transcript (bytes of a ``.gahp`` file)."""
    t = Transcript()
    events: List[List] = []   # [kind, bytes]; ">" without terminator-split yet, "<" with CRLF
    for raw in text.split(b"\n"):
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("#raw>") or line.startswith("#raw<"):
            kind = line[4]
            value = ast.literal_eval(line[5:].strip())
            for ev in reversed(events):
                if ev[0] == kind:
                    ev[1] = value
                    break
            continue
        if line.startswith("#"):
            m = re.match(r"# exit: (?:status (-?[0-9]+)|killed by signal ([0-9]+))", line)
            if m:
                if m.group(1) is not None:
                    t.exit_status = int(m.group(1))
                else:
                    t.exit_signal = int(m.group(2))
            continue
        m = _EVENT.match(line)
        if not m:
            continue
        kind, body = m.group(1), (m.group(2) or "").encode("utf-8", "surrogateescape")
        if kind == ">":
            events.append([">", body + b"\n"])
        elif kind == "<":
            events.append(["<", body + CRLF])

    pending: List[Request] = []     # requests still waiting for their return line
    taking = 0                      # result lines still due for the current RESULTS reply
    results_at = 0                  # number of requests recorded before that RESULTS
    for kind, data in events:
        if kind == ">":
            for piece in _split_input(data):
                req = Request(len(t.requests), piece)
                t.requests.append(req)
                pending.append(req)
            continue
        body = data[:-2] if data.endswith(CRLF) else data.rstrip(b"\n")
        if not t.banner and not t.requests:
            t.banner = data
            continue
        if body == b"R":
            continue
        if taking:
            taking -= 1
            _attach(t.requests[:results_at], data)
            continue
        if not pending:
            continue            # an unexpected line: nothing to answer with it
        req = pending.pop(0)
        req.reply.append(data)
        m = re.match(rb"S ([0-9]+)\Z", body)
        if _is_results(req.key) and m:
            taking = int(m.group(1))
            results_at = req.index
    return t


def _decode(field: str) -> str:
    """protocol.md §2.2: ``\\ `` is a space, ``\\\\`` a backslash, other escapes are kept."""
    return re.sub(r"\\([ \\])", r"\1", field)


def _attach(before: List[Request], line: bytes) -> None:
    """Give a result line to the request it answers.

    The line starts with the request id (escaped, or not: the C blahpd writes it as decoded),
    or with ``<reqid>.<i>`` for one of the lines of a multi-id request.  The longest matching
    request id wins; among requests with the same id, the first one without a result.
    """
    text = line.decode("utf-8", "surrogateescape")
    best: List[Request] = []
    best_len, dotted = -1, False
    for req in before:
        if req.reply != [b"S" + CRLF] or req.reqid is None:
            continue
        for rid in {req.reqid, _decode(req.reqid)}:
            exact = text.startswith(rid + " ")
            multi = re.match(re.escape(rid) + r"\.[0-9]+ ", text) is not None
            if not (exact or multi) or len(rid) < best_len:
                continue
            if len(rid) > best_len:
                best, best_len = [], len(rid)
            if req not in best:
                best.append(req)
            dotted = multi
    if not best:
        return
    if dotted:
        best[-1].results.append(line)     # the latest request with that id
        return
    free = [r for r in best if not r.results]
    (free[0] if free else best[-1]).results.append(line)


class Player:
    """The playback state machine; ``feed`` takes one request line (without terminator)."""

    def __init__(self, transcript: Transcript, out: BinaryIO) -> None:
        self.t = transcript
        self.out = out
        self.used = [False] * len(transcript.requests)
        self.queue: List[bytes] = []
        self.async_on = False
        self.armed = False
        self.fatal = transcript.fatal

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def start(self) -> None:
        self.write(self.t.banner)

    def _find(self, key: Tuple[str, Optional[str]]) -> Optional[Request]:
        for req in self.t.requests:
            if not self.used[req.index] and req.key == key:
                return req
        return None

    def _die_now(self, key: Tuple[str, Optional[str]]) -> bool:
        f = self.fatal
        if f is None or f.key != key:
            return False
        earlier = [r for r in self.t.requests[:f.index] if not _is_results(r.key)]
        return all(self.used[r.index] for r in earlier)

    def feed(self, line: bytes) -> Optional[int]:
        """Answer one request; returns an exit status when the server must stop."""
        key = key_of(line)
        if self._die_now(key):
            return -(self.t.exit_signal or signal.SIGKILL)
        if _is_results(key):
            lines, self.queue = self.queue, []
            self.write(b"S %d\r\n" % len(lines) + b"".join(lines))
            if lines:
                self.armed = True
            return None
        req = self._find(key)
        if req is None:
            self.write(UNKNOWN)
            return None
        self.used[req.index] = True
        self.write(b"".join(req.reply))
        if not req.reply:
            return None
        body = req.reply[0].rstrip(b"\r\n")
        if key[0] == "ASYNC_MODE_ON" and body.startswith(b"S"):
            self.async_on, self.armed = True, True
        elif key[0] == "ASYNC_MODE_OFF" and body.startswith(b"S"):
            self.async_on = False
        elif key[0] == "QUIT" and body.startswith(b"S"):
            return self.t.exit_status or 0
        for result in req.results:
            self.queue.append(result)
            if self.async_on and self.armed:
                self.write(b"R" + CRLF)
                self.armed = False
        return None


def _die(sig: int) -> None:
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def serve(transcript: Transcript, stdin: BinaryIO, stdout: BinaryIO) -> int:
    player = Player(transcript, stdout)
    player.start()
    while True:
        data = stdin.readline()
        if not data:
            print(EOF_MESSAGE, file=sys.stderr, flush=True)
            return 1
        status = player.feed(data.rstrip(b"\n").rstrip(b"\r\x00"))
        if status is not None:
            if status < 0:
                _die(-status)
            return status


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m conformance.playback TRANSCRIPT.gahp", file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        transcript = parse(f.read())
    try:
        return serve(transcript, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
