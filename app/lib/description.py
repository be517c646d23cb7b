"""The test description: what one run is, built once from the command line and saved in its JSON.

Jepsen's test map, as a dataclass: the suite and topology, the target, the fault (and, once built, what the fault
says of itself), the loops that run beside it with their rates, the compared clients, the checks, the seed and the
time limits. Only the entry point sees an argparse namespace; everything below gets this. A saved run carries it,
so --recheck judges the file again with the same description, and a file describes its own run. Secrets are never
part of it (a password is kept out of to_dict and of its repr).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Loop:
    """One loop that runs beside the fault: who it is in the history, and how long it pauses between operations."""

    name: str  # the workload's name for it: "writer", "probe", "plain", "pinned", "client", "http"
    process: str  # its process in the history ("writer", "5 ms probe", "client redis-py", ...)
    pause_s: float  # between two of its operations: its rate, not a synchronisation
    per_shard: bool = False  # one loop per shard (cluster), each writing keys of its shard


@dataclass
class TestDescription:
    __test__ = False  # not a pytest test class (its name starts with Test)
    suite: str  # "ha" | "cluster" | "cache"
    topology: str  # "sentinel" | "cluster"
    endpoints: list[str] = field(default_factory=list)  # --sentinel / --node as given (empty: found later)
    master_name: str | None = None
    host_map: dict[str, str] = field(default_factory=dict)
    fault: str = ""  # the --fault value (lib/faults/registry.py), or the name of --fault-file's fault
    fault_file: str | None = None
    kill_cmd: str | None = None
    restore_cmd: str | None = None
    clients: list[str] = field(default_factory=list)  # --client: libraries compared beside the harness's own
    client_timeout_s: float | None = None
    min_replicas_to_write: int | None = None
    min_replicas_max_lag: int | None = None
    recovery_timeout_s: float = 60.0
    manual_timeout_s: float = 300.0
    allow_destructive: bool = False
    json: str | None = None
    plot: str | None = None
    seed: int | None = None
    workload: list[Loop] = field(default_factory=list)  # the loops the scheduler runs beside the fault
    checks: list[str] = field(default_factory=list)  # what this run judges, in order
    facts: dict[str, Any] | None = None  # what the fault says of itself, once built (lib/faults/fault.py)
    config: dict[str, str] = field(default_factory=dict)  # CONFIG SET for the run (put back after)
    password: str | None = field(default=None, repr=False)  # never saved, never printed
    sentinel_password: str | None = field(default=None, repr=False)

    SECRETS = ("password", "sentinel_password")

    def to_dict(self) -> dict[str, Any]:
        """The description as the JSON saves it: every field but the secrets."""
        saved = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.SECRETS}
        saved["workload"] = [asdict(loop) for loop in self.workload]
        return saved

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TestDescription:
        known = {f.name for f in fields(cls)} - set(cls.SECRETS)
        values = {name: value for name, value in saved.items() if name in known}
        values["workload"] = [Loop(**loop) for loop in saved.get("workload", [])]
        return cls(**values)

    def loop(self, name: str) -> Loop | None:
        """The declared loop of that name, None when this run does not run it."""
        return next((loop for loop in self.workload if loop.name == name), None)

    @property
    def pinned(self) -> bool:
        """A writer stays on the old primary during this run's fault (the fault says so)."""
        return bool(self.facts and self.facts.get("pins_old_primary"))

    @property
    def expects(self) -> str | None:
        return self.facts.get("expects") if self.facts else None
