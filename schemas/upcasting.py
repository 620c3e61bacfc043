"""Upcasters: upgrade a payload written with an older schema_version to the current one on read.

Payloads are stored as written and never rewritten; readers ask `upcast` for the current shape.
Register one function per (type, from_version); each returns the payload one version newer.
"""

from __future__ import annotations

from collections.abc import Callable

Upcaster = Callable[[bytes], bytes]


class Upcasters:
    """A registry of single-step payload upgrades, keyed by event type and source version."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}
        self.types: set[str] = set()
        """Event types with at least one registered upgrade."""

    def register(self, type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register `fn` as the upgrade of `type` payloads from `from_version`."""

        def add(fn: Upcaster) -> Upcaster:
            key = (type, from_version)
            if key in self._steps:
                raise ValueError(f"an upcaster for {type} v{from_version} is already registered")
            self._steps[key] = fn
            self.types.add(type)
            return fn

        return add

    def has(self, type: str) -> bool:
        """Whether any upgrade is registered for payloads of this type."""
        return type in self.types

    def upcast(self, type: str, schema_version: int, data: bytes) -> tuple[int, bytes]:
        """Apply every registered step from `schema_version` on; return (new version, payload)."""
        version = schema_version
        while (step := self._steps.get((type, version))) is not None:
            data = step(data)
            version += 1
        return version, data


upcasters = Upcasters()
"""The process-wide registry that domain payload modules register into."""
