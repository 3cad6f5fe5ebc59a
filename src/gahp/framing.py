"""Input framing: bytes from the client -> complete request lines.

A line ends at LF, CR or NUL; runs of terminators are one boundary, so empty lines never
surface.  A line longer than ``max_line_bytes`` is discarded up to its terminator and reported
once as :class:`LineTooLong`, so one bad line costs one error reply, never the session.
"""
from __future__ import annotations

import re
from typing import List, Union

_TERMINATOR = re.compile(rb"[\n\r\x00]")


class LineTooLong:
    """Marker event: a line exceeded the limit and was dropped."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __repr__(self) -> str:
        return "LineTooLong(%d)" % self.length

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LineTooLong) and other.length == self.length


Framed = Union[bytes, LineTooLong]


class LineSplitter:
    def __init__(self, max_line_bytes: int = 1 << 20) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()
        # While discarding an over-long line we only count its length.
        self._discarding = False
        self._discarded = 0

    def feed(self, data: bytes) -> List[Framed]:
        out: List[Framed] = []
        start = 0
        n = len(data)
        # Only the new bytes are scanned, so a long line arriving in many chunks stays linear.
        while start < n:
            m = _TERMINATOR.search(data, start)
            end = m.start() if m else n
            self._take(data, start, end)
            if m is None:
                break
            self._finish_line(out)
            start = end + 1
        return out

    def close(self) -> List[Framed]:
        """End of input: a final unterminated line still counts."""
        out: List[Framed] = []
        self._finish_line(out)
        return out

    def _take(self, data: bytes, start: int, end: int) -> None:
        if start == end:
            return
        if self._discarding:
            self._discarded += end - start
            return
        self._partial += data[start:end]
        if len(self._partial) > self.max_line_bytes:
            self._discarding = True
            self._discarded = len(self._partial)
            self._partial = bytearray()

    def _finish_line(self, out: List[Framed]) -> None:
        if self._discarding:
            out.append(LineTooLong(self._discarded))
            self._discarding = False
            self._discarded = 0
        elif self._partial:
            out.append(bytes(self._partial))
            self._partial.clear()
