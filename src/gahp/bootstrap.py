"""Serving before the async runtime is loaded.

Importing trio costs more than the whole start-up budget (~150 ms on a 2-core head node),
and the gridmanager sends ``COMMANDS`` the moment it sees the banner.  So the banner is
written at once, the heavy imports and the config run in a background thread, and meanwhile
this loop answers synchronous commands with plain blocking I/O.  Asynchronous requests are
acknowledged by the core as usual and handed to the runtime when it is ready.
"""
from __future__ import annotations

import os
import select
import threading
from typing import Callable, List, Optional

from .protocol import ServerProtocol


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Background:
    """Runs ``work`` in a daemon thread and makes its completion visible to ``select``."""

    def __init__(self, work: Callable[[], object]) -> None:
        self._work = work
        self.result: object = None
        self.error: Optional[BaseException] = None
        self._r, self._w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="pyblahp-init", daemon=True)

    @property
    def ready_fd(self) -> int:
        return self._r

    def start(self) -> "Background":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as e:  # reported by the main thread, which owns stderr
            self.error = e
        finally:
            os.write(self._w, b"x")

    def wait(self) -> object:
        self._thread.join()
        os.close(self._r)
        os.close(self._w)
        return self.result


def pump(core: ServerProtocol, ready_fd: int, stdin_fd: int = 0, stdout_fd: int = 1) -> List[object]:
    """Serve until ``ready_fd`` becomes readable or the input ends; return unhandled events."""
    events: List[object] = []
    write_all(stdout_fd, core.data_to_send())
    while not core.closed:
        readable, _, _ = select.select([stdin_fd, ready_fd], [], [])
        if ready_fd in readable:
            break
        try:
            data = os.read(stdin_fd, 65536)
        except OSError:
            data = b""
        if data:
            core.receive_data(data)
        else:
            core.receive_eof()
        write_all(stdout_fd, core.data_to_send())
        events.extend(core.events())
    return events
