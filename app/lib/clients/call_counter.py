"""Counting how often a client library calls one of its own methods (a topology refresh, a master look-up),
from the outside: the method is replaced on that one instance by a counting wrapper."""

from __future__ import annotations

import threading
from typing import Any


class CallCounter:
    """How often a wrapped method was called, from any thread."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def wrap(self, owner: Any, method_name: str) -> CallCounter:
        """Count the calls of owner.method_name by replacing it on that instance only."""
        method = getattr(owner, method_name)

        def counted(*args, **kwargs):
            self.add()
            return method(*args, **kwargs)

        setattr(owner, method_name, counted)
        return self
