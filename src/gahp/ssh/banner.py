"""Withhold what a login shell prints before the GAHP banner (sans-IO; no asyncssh).

``bash -l`` on the head node may print quota notices, MOTDs or module messages on stdout before
the GAHP starts (HTCONDOR-734). The gridmanager reads the first line as the ``$GahpVersion`` banner,
so such text breaks the handshake. The gate passes nothing until it sees a line that starts with
``$GahpVersion``; every line before it is noise, handed back for reporting on stderr. From the first
byte of the banner line on, all bytes pass untouched.

The decision about a line is made as soon as its first bytes rule the prefix in or out, so the banner
passes without waiting for its newline and a long noise line is never buffered whole. Noise is
returned line by line (when the line's newline arrives) and capped at ``noise_limit`` bytes in total:
the caller gets exactly the first ``noise_limit`` bytes of the withheld text, the rest is counted in
``dropped``, so a chatty login (or a remote side that never sends the banner) cannot exhaust memory.
"""
from __future__ import annotations

from typing import Tuple

BANNER_PREFIX = b"$GahpVersion"
DEFAULT_NOISE_LIMIT = 64 * 1024


class BannerGate:
    def __init__(self, noise_limit: int = DEFAULT_NOISE_LIMIT) -> None:
        self._limit = noise_limit
        self._seen = False
        self._head = bytearray()     # start of the current line while it may still be the banner
        self._in_noise = False       # the current line is known to be noise
        self._line = bytearray()     # kept bytes of the current noise line (within the limit)
        self._kept = 0               # noise bytes kept so far (returned or pending)
        self._dropped = 0

    @property
    def seen(self) -> bool:
        """True once the banner line has started."""
        return self._seen

    @property
    def dropped(self) -> int:
        """Noise bytes discarded beyond ``noise_limit``."""
        return self._dropped

    def _keep(self, data: bytes) -> None:
        part = data[:max(0, self._limit - self._kept)]
        self._line += part
        self._kept += len(part)
        self._dropped += len(data) - len(part)

    def _take_line(self) -> bytes:
        line = bytes(self._line)
        self._line.clear()
        return line

    def feed(self, data: bytes) -> Tuple[bytes, bytes]:
        """-> (passed, noise): bytes for the GAHP's reader, and complete noise lines withheld."""
        if self._seen:
            return bytes(data), b""
        noise = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._in_noise:
                j = data.find(b"\n", i)
                if j < 0:
                    self._keep(data[i:])
                    break
                self._keep(data[i:j + 1])
                noise += self._take_line()
                self._in_noise = False
                i = j + 1
                continue
            take = data[i:i + len(BANNER_PREFIX) - len(self._head)]
            nl = take.find(b"\n")
            if nl >= 0:
                take = take[:nl + 1]
            self._head += take
            i += len(take)
            if self._head.startswith(BANNER_PREFIX):
                self._seen = True
                passed = bytes(self._head) + bytes(data[i:])
                self._head.clear()
                return passed, bytes(noise)
            if not BANNER_PREFIX.startswith(self._head):
                head = bytes(self._head)
                self._head.clear()
                self._keep(head)
                if head.endswith(b"\n"):
                    noise += self._take_line()
                else:
                    self._in_noise = True
        return b"", bytes(noise)

    def eof(self) -> bytes:
        """The withheld partial line (no newline came), as noise; b"" once the banner was seen."""
        if self._seen:
            return b""
        if self._head:
            self._keep(bytes(self._head))
            self._head.clear()
        self._in_noise = False
        return self._take_line()
