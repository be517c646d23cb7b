"""One row per compared client library: what it saw of the fault, in numbers, or in words where it could not.

Per library: downtime per shard (the longest gap between two acknowledged writes that survived, across
the fault), how soon after the promotion it wrote to the failed shard again, the stall on the healthy
shards (the longest gap between its acknowledged writes there, and the share of its pre-fault rate it
kept), errors by type, the Jepsen accounting of its writes against the final read, and the connections
(on the servers) and topology refreshes (in the client, where observable) it made. The verdict never
fails the suite: a library that cannot follow a failover, or lost writes, is a finding (WARN), and its
row says so; the suite's consistency check judges the harness's own writes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lib.checks.accounting import account
from lib.checks.checker import longest_gap_ms
from lib.checks.result import OK, WARN, CheckResult
from lib.history import OK as OP_OK
from lib.history import Op
from lib.phases.client_comparison import ComparedView, LibraryView

RATE_WINDOW_S = 2.0  # the pre-fault rate is measured over this long before the fault
SCENARIO = "client_comparison"


def error_type(op: Op) -> str:
    """'ClientOpError: RequestError: READONLY ...' -> 'RequestError'; a redis-py error's class otherwise."""
    text = (op.error or "unknown error").removeprefix("ClientOpError: ")
    return text.split(":")[0].split(" (attempts")[0]


def outage_ms(ops: list[Op], fault_at: float) -> float | None:
    """The longest time between two acknowledged writes, the later one after the fault (ok to ok).

    Not outage_around(): a library that blocks inside one call through the whole failover (and then
    succeeds) records no failed op at all, yet its writes stopped. None: no acknowledged write after it.
    """
    ends = sorted(op.end for op in ops if op.outcome == OP_OK)
    before = [end for end in ends if end <= fault_at]
    after = [end for end in ends if end > fault_at]
    if not after:
        return None
    points = before[-1:] + after
    if len(points) < 2:
        return None
    return max((b - a) * 1000 for a, b in zip(points, points[1:], strict=False))


def _rate(ops: list[Op], start: float, end: float) -> float | None:
    if end - start <= 0:
        return None
    return sum(1 for op in ops if op.outcome == OP_OK and start <= op.end <= end) / (end - start)


def client_row(comparison: ComparedView, client: LibraryView, fault_at: float, promoted_at: float | None,
               victim: str | None) -> dict[str, Any]:
    """The row's numbers; "why" holds the words where a number cannot be given."""
    row: dict[str, Any] = {"client": client.name, "version": client.version, "notes": client.notes,
                           "log": client.log}  # its process's console output (GLIDE logs every failed command)
    if client.open_s is not None:
        row["opened_in_s"] = round(client.open_s, 2)
    if client.open_error is not None:
        row["why"] = f"could not start: {client.open_error}"
        return row
    groups = list(comparison.groups)
    ops = client.ops()
    end = max((op.end for op in ops), default=fault_at)
    final = client.history.final_read
    # Only writes that survived count as writing: one acknowledged by an old master that was then demoted
    # (a plain SENTINEL FAILOVER) and is missing from the final read was not the client writing again.
    durable = (lambda op: True) if final is None else (lambda op: op.outcome != OP_OK or final.get(op.key) == op.value)

    def kept(group: str) -> list[Op]:
        return [op for op in client.ops(group) if durable(op)]

    downtime: dict[str, float | None] = {}
    lost_since: dict[str, float] = {}  # group -> the fault offset from which its acknowledged writes were lost
    for group in groups:
        gap = outage_ms(kept(group), fault_at)
        downtime[group] = None if gap is None else round(gap, 1)
        last_kept = max((op.end for op in kept(group) if op.outcome == OP_OK), default=fault_at)
        lost_after = [op.end for op in client.ops(group) if op.outcome == OP_OK and not durable(op)
                      and op.end > last_kept]
        if lost_after:  # the run ended while its writes were still being acknowledged and then thrown away
            downtime[group] = None
            lost_since[group] = min(lost_after) - fault_at
    row["downtime_ms_by_shard"] = downtime
    never = comparison.not_recovered.get(client.name, [])
    if victim is not None:
        row["downtime_ms"] = downtime.get(victim)
        # acknowledged at or after the promotion, wherever the op began: an attempt that was waiting (for a
        # fresh map, a backoff) when the promotion came and then succeeded is the client writing again
        after = [op.end for op in kept(victim) if op.outcome == OP_OK and promoted_at is not None
                 and op.end >= promoted_at]
        row["after_promotion_ms"] = round((min(after) - promoted_at) * 1000, 1) if after and promoted_at else None
        healthy = [g for g in groups if g != victim]
        back = min(after) if after else end
        if healthy:
            row["healthy_stall_ms"] = round(max(longest_gap_ms(kept(g), fault_at, back) for g in healthy), 1)
            healthy_ops = [op for g in healthy for op in kept(g)]
            first = min((op.end for op in healthy_ops if op.outcome == OP_OK), default=fault_at)
            # the rate before the fault, over at most RATE_WINDOW_S and only since the library wrote at all
            before = _rate(healthy_ops, max(fault_at - RATE_WINDOW_S, first), fault_at)
            during = _rate(healthy_ops, fault_at, back)
            row["healthy_rate_kept_pct"] = round(100 * during / before, 1) if before and during is not None else None
    if lost_since and not never:
        watched = f" ({end - promoted_at:.2f} s after the promotion)" if promoted_at is not None else ""
        row["why"] = "; ".join(
            f"on {group}, every write acknowledged from +{since:.2f} s to the end of the run{watched} was lost "
            "(a demoted old master took them): it never reached the new master while the run watched"
            for group, since in lost_since.items())
    if never:
        waited = comparison.timeout_s
        row["why"] = (f"did not write to {', '.join(never)} again within {waited:.0f} s of the promotion"
                      if comparison.waited else f"did not write to {', '.join(never)} again")
    row["errors_by_type"] = dict(Counter(error_type(op) for op in ops if op.outcome != OP_OK))
    row["ops"] = len(ops)
    if final is not None:
        row["accounting"] = account(ops, final, fault_at).metrics()
    else:
        row["accounting"] = None
        row.setdefault("why", "no final read of its keys (the servers did not answer it)")
    connections = client.connections
    row["connections_seen"] = connections  # at least: CLIENT LIST sampled every 100 ms
    row["refreshes"] = client.refreshes
    if client.refreshes is None:
        row["refreshes_why"] = "not observable from outside the library: see the servers' topology commands"
    return row


def check_client_comparison(comparison: ComparedView | None, fault_at: float, promoted_at: float | None,
                            victim: str | None, skipped: str | None = None) -> CheckResult:
    """WARN when a library could not start or did not write again; OK when every row has numbers."""
    if comparison is None:
        return CheckResult(SCENARIO, WARN, skipped or "no compared client ran")
    rows = [client_row(comparison, c, fault_at, promoted_at, victim) for c in comparison.clients]
    metrics: dict[str, Any] = {"clients": rows, "servers": comparison.counts, "client_timeout_s": comparison.timeout_s}
    if comparison.counts_note:
        metrics["servers_note"] = comparison.counts_note
    troubled = [f"{r['client']}: {r['why']}" for r in rows if r.get("why")]
    lossy = [r["client"] for r in rows if (r.get("accounting") or {}).get("acked_lost")]
    parts = []
    for r in rows:
        if r.get("why"):
            continue
        after = "" if r.get("after_promotion_ms") is None else f", +{_ms(r['after_promotion_ms'])} after promotion"
        parts.append(f"{r['client']} {_ms(r.get('downtime_ms'))} down{after}, {r['accounting']['acked_lost']} lost")
    detail = "; ".join(parts + troubled)
    if lossy:
        detail += f"; acknowledged writes lost by {', '.join(lossy)} (the consistency check judges the harness's own)"
    return CheckResult(SCENARIO, WARN if troubled or lossy else OK, detail, metrics)


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f} ms"
