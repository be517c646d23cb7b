"""cache_test.py as a user runs it, on a real local cluster, with a real SIGKILL of a primary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import assert_recheck_agrees, checks_in, run_script
from lib.cluster_client import ClusterClient
from lib.launcher.local_stack import LocalStack
from lib.topology.cluster_topology import shards_of
from lib.util import free_ports
from test_readme import checked_block_outputs, run_block_checked

pytestmark = pytest.mark.integration

EVENTS = ("fault", "node flagged fail", "promoted", "client recovered", "hits returned")


def scenarios(path) -> dict[str, dict]:
    report = json.loads(path.read_text())
    assert report["suite"] == "cache" and report["target"]["shards"] == 3, report["target"]
    return checks_in(report)


def test_store_checks_and_the_ring_comparison_without_a_fault(cluster_stack, tmp_path):
    out = tmp_path / "cache.json"
    proc = run_script("cache_test.py", "--fault", "none", "--json", str(out), state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    for name in ("store_basics", "store_ttl", "store_spread", "store_clear", "ring_vs_cluster"):
        assert result[name]["status"] == "OK", (name, result[name]["detail"])
    assert result["http_failover"]["status"] == "WARN" and "skipped" in result["http_failover"]["detail"]
    ring = result["ring_vs_cluster"]["metrics"]
    assert ring["cluster_store"]["moved"] == 0 and ring["cluster_store"]["errors"] == {}
    assert ring["ring"]["moved"] > ring["ring"]["ops"] // 3, f"key mod 3 is wrong for ~2/3 of keys: {ring['ring']}"
    assert result["store_clear"]["metrics"]["foreign_keys_kept"] == 3


README_CACHE_BLOCK = "cache-store-and-http-cache-on-the-cluster-cache-test-py-without-docker"


def test_the_readmes_cache_block_survives_a_primary_kill_with_zero_5xx(tmp_path):
    """The README's cache block as written (marked `checked`: --fault auto, a SIGKILL through the launcher).
    Before its cache_test.py line: shard 0 of the cluster it brought up; right after it: the run's JSON and
    PNG. Then the block's down line."""
    commands, out, plot = checked_block_outputs(README_CACHE_BLOCK, "app/cache_test.py")
    root = tmp_path / "stacks"
    shards = []

    def before() -> None:
        client = ClusterClient(LocalStack.load(root / "cluster").endpoints("server"))
        try:
            shards.append(shards_of(client.nodes())[0])
        finally:
            client.close()

    run_block_checked(commands, root, "app/cache_test.py", before=before,
                      check=lambda stdout: check_http_failover_run(out, plot, shards[0]))


def check_http_failover_run(out: Path, plot: Path, shard0) -> None:
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "--plot wrote a PNG"
    assert_recheck_agrees("cache_test.py", out)
    result = scenarios(out)
    failover = result["http_failover"]
    assert failover["status"] == "OK", failover["detail"]
    metrics = failover["metrics"]
    assert metrics["fault"].startswith("SIGKILL node-") and metrics["old_primary"].endswith(f":{shard0.primary.port}")
    assert metrics["http_5xx"] == 0 and metrics["http_failed"] == 0, "the cache never turns a request into an error"
    assert metrics["affected_cache_errors"] > 0, "a SIGKILLed primary must cost the cache something"
    assert metrics["other_shards_cache_errors"] == {s: 0 for s in metrics["other_shards_cache_errors"]}
    assert metrics["origin_calls"] >= metrics["cache_errors"], "every failed lookup was served by the origin"
    # The promotion is seen by a 10-20 ms poll of CLUSTER NODES: hits may return a poll interval before it.
    assert 1.0 <= metrics["promoted_after_s"] <= metrics["hits_returned_after_s"] + 0.05 <= 30, metrics
    assert metrics["hit_ratio"] > 0.5, metrics

    # The report's saved history (lib.history.History.to_dict): each request an op of process "http", its value the
    # status and the X-Cache header
    names = [e["event"] for e in result.events]
    assert all(name in names for name in EVENTS), names
    assert [e["t_s"] for e in result.events] == sorted(e["t_s"] for e in result.events)
    requests = result.ops("http", "get")
    # What the clients saw (X-Cache per response) against what the server counted, independently:
    # a HIT never reaches the origin, every MISS or ERROR response was rendered by it exactly once.
    seen = Counter(op["value"]["cache"] for op in requests)
    assert metrics["middleware"]["hits"] == seen["HIT"], (metrics["middleware"], seen)
    assert metrics["origin_calls"] == seen["MISS"] + seen["ERROR"], (metrics["origin_calls"], seen)
    assert {op["group"] for op in requests} == {shard0.label, *metrics["other_shards_cache_errors"]}
    errors = [op for op in requests if op["value"]["cache"] == "ERROR"]
    assert errors and all(op["group"] == shard0.label and op["value"]["status"] == 200 for op in errors), errors[:3]
    timeline = metrics["timeline"]
    assert timeline["downtime_ms"] >= 1000, "the cache on the killed shard was down until the promotion"
    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]


def test_graceful_failover_keeps_serving_with_zero_5xx(cluster_stack, tmp_path):
    out = tmp_path / "cache.json"
    proc = run_script("cache_test.py", "--fault", "graceful", "--json", str(out), state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    failover = result["http_failover"]
    assert failover["status"] == "OK", failover["detail"]
    metrics = failover["metrics"]
    assert metrics["fault"].startswith("CLUSTER FAILOVER") and metrics["http_5xx"] == 0, metrics["fault"]
    assert metrics["promoted_after_s"] < 10, "a manual failover needs no failure detection"
    assert "node flagged fail" not in [e["event"] for e in result.events], "nothing failed"


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = run_script("cache_test.py", "--node", "nonsense", "--fault", "none")
    assert proc.returncode == 2 and "bad endpoint 'nonsense'" in proc.stderr, proc.stderr
    (dead,) = free_ports(1)
    proc = run_script("cache_test.py", "--node", f"127.0.0.1:{dead}", "--fault", "none")
    assert proc.returncode == 2 and "python app/stack.py up cluster" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
