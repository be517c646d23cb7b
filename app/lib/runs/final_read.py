"""The final read: the state every write is judged against, read once and recorded in the history.

Recorded rather than only used, so the saved JSON holds what the verdict compared with and
`--recheck FILE.json` can recompute it without the servers (lib/checks/accounting.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from lib import events
from lib.history import History

ReadMany = Callable[[list[str]], list]  # MGET-like: one value (str, bytes or None) per key, in order
BATCH = 500  # keys per MGET: one round trip each, small enough not to stall the server


def written_keys(history: History) -> list[str]:
    """Every key a write in the history wrote, once, in the order first written."""
    return list(dict.fromkeys(op.key for op in history.snapshot() if op.value is not None))


def read_back(read_many: ReadMany, keys: Iterable[str] | None, history: History, *, where: str = "",
              batch: int = BATCH) -> dict[str, str | None]:
    """Read keys (None: every key the history wrote) in batches, record the result and a FINAL_READ event.

    where: the node or client read from, for the event's detail (e.g. "on 127.0.0.1:6380").
    """
    wanted = written_keys(history) if keys is None else list(dict.fromkeys(keys))
    started = time.monotonic()
    values: dict[str, str | None] = {}
    for i in range(0, len(wanted), batch):
        chunk = wanted[i:i + batch]
        got = list(read_many(chunk))
        if len(got) != len(chunk):
            raise ValueError(f"the final read asked for {len(chunk)} keys and got {len(got)} values")
        values.update(zip(chunk, (_text(v) for v in got), strict=True))
    history.record_final_read(values)
    found = sum(v is not None for v in values.values())
    history.event(events.FINAL_READ, f"{len(values):,} keys read back{' ' + where if where else ''}, "
                  f"{found:,} with a value", at=started)
    return values


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
