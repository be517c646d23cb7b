"""Several faults as one: injected in order, restored in reverse (quorum loss, a whole shard, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from lib.faults.fault import Fault


@dataclass
class Compound(Fault):
    parts: list[Fault]
    label: str = ""  # "quorum loss", "shard loss": what the parts add up to

    @property
    def can_restore(self) -> bool:  # type: ignore[override]
        return all(part.can_restore for part in self.parts)

    @property
    def description(self) -> str:
        inner = "; ".join(part.description for part in self.parts)
        return f"{self.label}: {inner}" if self.label else inner

    def inject(self) -> None:
        for part in self.parts:
            part.pending_restore = part.can_restore
            part.inject()

    def restore(self, timeout: float) -> bool:
        """Every part is restored even if one fails; True only if all came back."""
        results = [part.restore(timeout) for part in reversed(self.parts) if part.pending_restore]
        return all(results)
