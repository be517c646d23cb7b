"""Values from 1 KB to 5 MB: SET and GET time (3 repetitions, time.perf_counter), memory and encoding.

The values are random hex, read back and compared byte for byte (a corrupted or truncated value
FAILs). Times are client-observed round trips on this machine, so they include the client's own
work; compare them between targets measured the same way, not with other benchmarks.
"""

from __future__ import annotations

import secrets
from typing import Any

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import median_ms, result, stopwatch

NAME = "large_payloads"
DESTRUCTIVE = False
SIZES = (("1KB", 1024), ("32KB", 32 * 1024), ("256KB", 256 * 1024), ("1MB", 1024 * 1024), ("5MB", 5 * 1024 * 1024))
REPETITIONS = 3


def run(client, ctx) -> CheckResult:
    sizes: dict[str, dict[str, Any]] = {}
    corrupted: list[str] = []
    try:
        for label, size in SIZES:
            payload = secrets.token_hex(size // 2)
            set_ms, get_ms = [], []
            for rep in range(REPETITIONS):
                key = ctx.key(label, rep)
                with stopwatch() as elapsed:
                    client.set(key, payload)
                set_ms.append(round(elapsed[0], 3))
                with stopwatch() as elapsed:
                    value = client.get(key)
                get_ms.append(round(elapsed[0], 3))
                if value != payload:
                    corrupted.append(f"{label}#{rep}: got {len(value or '')} of {size} bytes")
            key = ctx.key(label, 0)
            usage = client.memory_usage(key)
            sizes[label] = {"bytes": size, "set_ms": set_ms, "get_ms": get_ms,
                            "set_median_ms": median_ms(set_ms), "get_median_ms": median_ms(get_ms),
                            "memory_usage": usage, "overhead_bytes": usage - size if usage else None,
                            "encoding": client.object("encoding", key)}
            client.delete(*[ctx.key(label, rep) for rep in range(REPETITIONS)])  # keep at most 15 MB around
    finally:
        ctx.cleanup(client)
    metrics = {"sizes": sizes, "repetitions": REPETITIONS, "corrupted": corrupted,
               "mem_allocator": client.info("memory").get("mem_allocator")}  # memory_usage depends on it
    summary = ", ".join(f"{label} set {s['set_median_ms']:.1f}/get {s['get_median_ms']:.1f} ms"
                        for label, s in sizes.items())
    if corrupted:
        return result(NAME, FAIL, f"values read back wrong: {'; '.join(corrupted)}", metrics)
    return result(NAME, OK, f"medians of {REPETITIONS}: {summary}", metrics)
