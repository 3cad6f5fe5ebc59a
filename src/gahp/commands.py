"""The command table: names, parameter counts, kinds, and how to fail each command safely."""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

SyncHandler = Callable[[Sequence[str]], List[str]]


class CommandSpec:
    """One GAHP command.

    ``nparams`` counts the parameters after the command name (the request id included for
    asynchronous commands).  An asynchronous command answers ``S`` at once and later one or
    more result rows of exactly ``1 + result_fields`` fields (request id first).
    ``error_placeholders`` are the fields that follow ``<code> <message>`` in that command's
    error result (``N/A`` for submit, ``0 N/A`` for status), so the core can always build a
    well-formed failure row for it.
    """

    __slots__ = ("name", "nparams", "is_async", "advertised", "handler",
                 "result_fields", "error_placeholders")

    def __init__(self, name: str, nparams: int, *, is_async: bool, advertised: bool = True,
                 handler: Optional[SyncHandler] = None, result_fields: int = 0,
                 error_placeholders: Tuple[str, ...] = ()) -> None:
        if name != name.upper():
            raise ValueError("command names are upper case: %r" % name)
        if is_async:
            if nparams < 1:
                raise ValueError("an asynchronous command takes a request id")
            if result_fields < 2 + len(error_placeholders):
                raise ValueError("result_fields too small for the error form of %s" % name)
        self.name = name
        self.nparams = nparams
        self.is_async = is_async
        self.advertised = advertised
        self.handler = handler
        self.result_fields = result_fields
        self.error_placeholders = tuple(error_placeholders)

    def error_row(self, reqid: str, message: str, code: str = "1") -> List[str]:
        return [reqid, code, message or "Error", *self.error_placeholders]

    def __repr__(self) -> str:
        return "CommandSpec(%s/%d%s)" % (self.name, self.nparams, " async" if self.is_async else "")


class CommandTable:
    def __init__(self, specs: Iterable[CommandSpec] = ()) -> None:
        self._specs: Dict[str, CommandSpec] = {}
        for s in specs:
            self.add(s)

    def add(self, spec: CommandSpec) -> CommandSpec:
        if spec.name in self._specs:
            raise ValueError("duplicate command %s" % spec.name)
        self._specs[spec.name] = spec
        return spec

    def add_sync(self, name: str, nparams: int, handler: SyncHandler, advertised: bool = True) -> CommandSpec:
        return self.add(CommandSpec(name, nparams, is_async=False, handler=handler, advertised=advertised))

    def add_async(self, name: str, nparams: int, result_fields: int,
                  error_placeholders: Tuple[str, ...] = (), advertised: bool = True) -> CommandSpec:
        return self.add(CommandSpec(name, nparams, is_async=True, result_fields=result_fields,
                                    error_placeholders=error_placeholders, advertised=advertised))

    def lookup(self, name: str) -> Optional[CommandSpec]:
        # ASCII-only folding, as strcasecmp in the C locale: 'quıt' (dotless i) is not QUIT.
        if not name.isascii():
            return None
        return self._specs.get(name.upper())

    def advertised(self) -> List[str]:
        return sorted(n for n, s in self._specs.items() if s.advertised)

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._specs
