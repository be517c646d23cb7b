"""The final read: the state every write is judged against, read once and recorded in the history.

Recorded rather than only used, so the saved JSON holds what the verdict compared with and
`--recheck FILE.json` can recompute it without the servers (lib/checks/accounting.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from lib import events
from lib.errors import HarnessError
from lib.history import WRITE, History
from lib.waits import WaitTimeout, wait_until

ReadMany = Callable[[list[str]], list]  # MGET-like: one value (str, bytes or None) per key, in order
BATCH = 500  # keys per MGET: one round trip each, small enough not to stall the server
# How long the final read keeps trying. After a heal a node may still answer CLUSTERDOWN for a moment (seen in CI:
# a partition healed at +3.29 s, the old primary demoted at +3.61 s): the read waits for the servers to serve it.
FINAL_READ_TIMEOUT_S = 30.0


def written_keys(history: History) -> list[str]:
    """Every key a write in the history wrote (every process's: the writers, the compared clients), once, in the
    order first written."""
    return list(dict.fromkeys(op.key for op in history.snapshot(None, WRITE) if op.key and op.value is not None))


def read_back(read_many: ReadMany, keys: Iterable[str] | None, history: History, *, where: str = "",
              batch: int = BATCH, timeout: float = FINAL_READ_TIMEOUT_S) -> dict[str, str | None]:
    """Read keys (None: every key the history wrote) in batches, record the result and a FINAL_READ event.

    A read that fails (CLUSTERDOWN after a heal, a connection refused while a node restarts) is tried again, the
    whole read, until it succeeds or `timeout` passes; then HarnessError says what was last seen, and the history
    keeps that line (final_read_error) for the check to report instead of a verdict.
    where: the node or client read from, for the event's detail (e.g. "on 127.0.0.1:6380").
    """
    wanted = written_keys(history) if keys is None else list(dict.fromkeys(keys))
    started = time.monotonic()
    values: dict[str, str | None] = {}

    def read_all() -> tuple[bool, str]:
        for i in range(0, len(wanted), batch):
            chunk = wanted[i:i + batch]
            got = list(read_many(chunk))
            if len(got) != len(chunk):
                raise ValueError(f"the final read asked for {len(chunk)} keys and got {len(got)} values")
            values.update(zip(chunk, (_text(v) for v in got), strict=True))
        return True, "read"

    place = f" {where}" if where else ""
    try:
        wait_until(read_all, timeout=timeout, what=f"the final read of {len(wanted):,} keys{place}")
    except WaitTimeout as exc:
        history.final_read_error = (f"the harness could not read back the {len(wanted):,} written keys{place} "
                                    f"within {timeout:.0f} s: last seen {exc.observed}")
        raise HarnessError(history.final_read_error) from exc
    history.record_final_read(values)
    found = sum(v is not None for v in values.values())
    history.event(events.FINAL_READ, f"{len(values):,} keys read back{place}, "
                  f"{found:,} with a value", at=started)
    return values


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
