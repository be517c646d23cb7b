"""Cleanup after an interrupted fault waits for the cluster to settle before deleting the run's keys."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import lib.suites.cluster_target_run as target_run
from lib.suites.cluster_target_run import cleanup

PRIMARY = ("127.0.0.1", 7000)


class FakeClient:
    def shards(self):
        return [SimpleNamespace(primary=PRIMARY)]

    def reachable(self, node):
        return node

    def node(self, address, timeout=1.0):
        return contextlib.nullcontext(address)


def record(monkeypatch, settled_after: int) -> list[str]:
    """cluster_ok says 'not yet' settled_after times, then ok; returns the calls in order."""
    calls: list[str] = []

    def cluster_ok(client):
        calls.append("cluster_ok")
        return calls.count("cluster_ok") > settled_after, "node-7000 flagged fail?"

    monkeypatch.setattr(target_run, "cluster_ok", cluster_ok)
    monkeypatch.setattr(target_run, "delete_prefix", lambda node, ns, **kw: calls.append(f"delete {node}"))
    return calls


def test_after_an_undone_fault_the_keys_are_deleted_once_the_cluster_settled(monkeypatch):
    calls = record(monkeypatch, settled_after=2)
    assert cleanup(FakeClient(), "vhc:cluster:1:", settle=True) is None
    assert calls == ["cluster_ok", "cluster_ok", "cluster_ok", f"delete {PRIMARY}"]


def test_a_cluster_that_does_not_settle_is_still_cleaned_and_said(monkeypatch):
    calls = record(monkeypatch, settled_after=10**6)
    monkeypatch.setattr(target_run, "SETTLE_TIMEOUT_S", 0.05)
    problem = cleanup(FakeClient(), "vhc:cluster:1:", settle=True)
    assert calls[-1] == f"delete {PRIMARY}"
    assert problem is not None and "some may come back" in problem and "node-7000 flagged fail?" in problem, problem


def test_without_an_undone_fault_cleanup_does_not_wait(monkeypatch):
    calls = record(monkeypatch, settled_after=10**6)
    assert cleanup(FakeClient(), "vhc:cluster:1:") is None
    assert calls == [f"delete {PRIMARY}"]
