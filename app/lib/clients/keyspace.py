"""Key hygiene shared by every suite: find and delete only the keys under our own prefix (SCAN, never KEYS)."""

from __future__ import annotations

from collections.abc import Iterator

import redis

SCAN_BATCH = 500


def keys_under(client: redis.Redis, prefix: str) -> Iterator[str]:
    """Every key under prefix, found with SCAN (never KEYS, which blocks a shared server)."""
    yield from client.scan_iter(match=_glob_escape(prefix) + "*", count=SCAN_BATCH)


def delete_prefix(client: redis.Redis, prefix: str, *, cluster_node: bool = False, asking: bool = False) -> int:
    """SCAN + DEL everything under prefix on one node; returns how many keys were deleted.

    On a cluster node a multi-key DEL fails with CROSSSLOT, so each key gets its own UNLINK
    (pipelined, so it is still one round trip per batch). asking=True (cluster nodes only) sends
    ASKING before each UNLINK: a node importing a slot holds keys of it that it does not own, and
    answers a plain UNLINK of them with MOVED. A key that left the node between SCAN and UNLINK
    (a redirect in reply) is not counted; it is deleted where it went.
    """
    deleted = 0
    batch: list[str] = []

    def flush() -> int:
        if not cluster_node:
            return client.delete(*batch)
        pipe = client.pipeline(transaction=False)
        for key in batch:
            if asking:
                pipe.execute_command("ASKING")
            pipe.unlink(key)
        replies = pipe.execute(raise_on_error=False)
        failed = [r for r in replies if isinstance(r, Exception)
                  and not isinstance(r, redis.exceptions.AskError | redis.exceptions.MovedError)]
        if failed:
            raise failed[0]
        return sum(r for r in replies if isinstance(r, int) and not isinstance(r, bool))

    for key in keys_under(client, prefix):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            deleted += flush()
            batch.clear()
    if batch:
        deleted += flush()
    return deleted


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
