"""One scheduler for the loops that run beside a fault: started together, stopped together, crashes surfaced.

The test description declares the loops (lib/description.Loop: the writer, the probe, the plain-client yardstick,
the writer kept on the old primary, the compared clients, the HTTP requests) with their rates; a suite maps each
declared name to how it is built, and the scheduler runs what was declared. No run wires its loops by hand, and a
loop that crashed is raised once every loop is stopped (lib/workload/workload.stop_all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from lib.description import Loop
from lib.workload.workload import stop_all


class Runnable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Scheduler:
    """The declared loops, built by the factories the suite gives and run as one."""

    def __init__(self, declared: Iterable[Loop], factories: dict[str, Callable[[Loop], Runnable | list[Runnable]]]):
        self.declared = list(declared)
        missing = [loop.name for loop in self.declared if loop.name not in factories]
        if missing:
            raise ValueError(f"no way to build the declared loop(s) {missing}: the suite offers {sorted(factories)}")
        self.factories = factories
        self.running: list[Runnable] = []

    def start(self, first: Iterable[str] = ()) -> None:
        """Build and start every declared loop (those named in first before the others, in the order given)."""
        order = [*[loop for name in first for loop in self.declared if loop.name == name],
                 *[loop for loop in self.declared if loop.name not in first]]
        for loop in order:
            built = self.factories[loop.name](loop)
            for runnable in built if isinstance(built, list) else [built]:
                runnable.start()
                self.running.append(runnable)

    def stop(self, first: Iterable[Runnable] = ()) -> None:
        """Stop every loop started (first ones first), then raise the first crash among them."""
        ahead = list(first)
        try:
            stop_all([*ahead, *(r for r in reversed(self.running) if r not in ahead)])
        finally:
            self.running.clear()
