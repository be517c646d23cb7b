"""The compared clients' rows, counts and table, from made-up histories (no server)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from rich.console import Console

from lib.checks.client_rows import check_client_comparison, client_row, error_type
from lib.checks.result import OK, WARN
from lib.clients.server_counters import NodeCounts, delta
from lib.history import FAIL, UNKNOWN, ClientOpError, History, Op, classify
from lib.history import OK as OP_OK
from lib.phases.client_comparison import ClientComparison, ComparedView
from lib.report.client_report import client_table
from lib.suites.cli import _clients
from lib.workload.compared_clients import ComparedClients, Keys, Opener

FAULT = 100.0
PROMOTED = 103.0


class FakeSampler:
    def __init__(self, seen: dict[str, int]):
        self.seen = seen

    def connections(self, name: str) -> int:
        return self.seen.get(name, 0)

    def stop(self) -> None:
        pass


def comparison_with(ops_by_client: dict[str, list[Op]], groups=("a", "b"), *,
                    not_recovered: dict[str, list[str]] | None = None,
                    open_errors: dict[str, str] | None = None) -> ComparedView:
    """What a run with these libraries records into its one history (each library's writes as process
    `client NAME`, what it says of itself, the final read, the harness's COMPARED observation), read back
    the way the check reads it (ComparedView.from_history)."""
    history = History()
    writers = ComparedClients(list(ops_by_client), Opener("cluster", None), {g: Keys() for g in groups}, "ns:",
                              history)
    for client in writers.clients:
        client.version = "1.0"
        client.open_error = (open_errors or {}).get(client.name)
        for op in ops_by_client[client.name]:
            op.process = client.process
            history.record(op)
    history.record_final_read({op.key: op.value if op.outcome == OP_OK else None
                               for ops in ops_by_client.values() for op in ops})
    comparison = ClientComparison(writers, lambda: [], None, timeout_s=20)
    comparison.sampler = FakeSampler({"vhc-ours": 4})  # type: ignore[assignment]
    comparison.waited_from = PROMOTED
    comparison.not_recovered = dict(not_recovered or {})
    comparison.stop()  # records each library's description and the COMPARED observation
    view = ComparedView.from_history(history)
    assert view is not None
    return view


def op(seq: int, group: str, start: float, outcome: str = OP_OK, error: str | None = None) -> Op:
    return Op(seq, f"k{group}{seq}", start, start + 0.001, outcome, error, group=group, value=str(seq))


def steady(group: str, start: float, end: float, step: float = 0.01, first_seq: int = 0) -> list[Op]:
    ops, t, seq = [], start, first_seq
    while t < end:
        ops.append(op(seq, group, t))
        t += step
        seq += 1
    return ops


def test_a_row_measures_downtime_after_promotion_and_the_healthy_shards():
    victim = steady("a", 98.0, 100.0) + [op(500 + i, "a", 100.0 + i * 0.5, FAIL, "ClientOpError: RequestError: x")
                                         for i in range(6)] + steady("a", 103.02, 104.0, first_seq=600)
    healthy = steady("b", 98.0, 100.0, first_seq=1000) + steady("b", 100.0, 100.2, first_seq=2000) \
        + steady("b", 100.7, 104.0, first_seq=3000)  # a 0.5 s gap after the fault, then the same rate
    comparison = comparison_with({"ours": victim + healthy})
    row = client_row(comparison, comparison.clients[0], FAULT, PROMOTED, "a")
    assert row["downtime_ms"] == pytest.approx(3030, abs=15)
    assert row["after_promotion_ms"] == pytest.approx(21, abs=2)
    assert row["healthy_stall_ms"] == pytest.approx(500, abs=15)
    assert 75 < row["healthy_rate_kept_pct"] < 95
    assert row["errors_by_type"] == {"RequestError": 6}
    assert row["accounting"]["acked"] == len([o for o in victim + healthy if o.outcome == OP_OK])
    assert row["accounting"]["acked_lost"] == 0
    assert row["connections_seen"] == 4
    assert "why" not in row


def test_a_library_that_did_not_recover_or_start_is_a_row_in_words():
    stuck = steady("a", 98.0, 100.0) + [op(900 + i, "a", 100.0 + i, FAIL, "ClientOpError: RequestError: READONLY")
                                        for i in range(20)] + steady("b", 98.0, 120.0, first_seq=5000)
    comparison = comparison_with({"glide": stuck, "valkey-py": []}, not_recovered={"glide": ["a"]},
                                 open_errors={"valkey-py": "ImportError: no valkey"})
    result = check_client_comparison(comparison, FAULT, PROMOTED, "a")
    assert result.status == WARN
    glide, valkey_py = result.metrics["clients"]
    assert glide["why"] == "did not write to a again within 20 s of the promotion"
    assert glide["downtime_ms"] is None and glide["after_promotion_ms"] is None
    assert valkey_py["why"].startswith("could not start: ImportError")
    assert "glide: did not write to a again" in result.detail
    text = render(client_table(result.metrics, "clients"))
    assert "valkey-py: could not start" in text and "see below" in text


def test_every_library_with_numbers_is_ok():
    ops = steady("a", 98.0, 100.0) + steady("a", 103.01, 104.0, first_seq=700)  # one call blocked throughout
    ops += steady("b", 98.0, 104.0, first_seq=9000)
    result = check_client_comparison(comparison_with({"ours": ops}), FAULT, PROMOTED, "a")
    assert result.status == OK, result.detail
    assert "ours 3,020 ms down" in result.detail  # last ack 99.99x, next 103.01x


def test_no_comparison_is_a_warning_that_says_why():
    assert check_client_comparison(None, FAULT, None, None, "--fault none").detail == "--fault none"


def test_error_types_and_outcomes_of_a_library_error():
    assert error_type(Op(0, "k", 0, 0, FAIL, "ClientOpError: ConnectionError: refused")) == "ConnectionError"
    assert error_type(Op(0, "k", 0, 0, FAIL, "ReadOnlyError: READONLY (attempts: TimeoutError, x)")) == "ReadOnlyError"
    assert classify(ClientOpError(UNKNOWN, "TimeoutError", "t")) == UNKNOWN
    assert classify(ClientOpError(FAIL, "RequestError", "r")) == FAIL


def test_server_counts_are_deltas_and_a_restarted_node_counts_from_zero():
    a, b, c = ("h", 1), ("h", 2), ("h", 3)
    before = {a: NodeCounts({"cluster|slots": 10}, 5), b: NodeCounts({"cluster|slots": 50}, 40), c: None}
    after = {a: NodeCounts({"cluster|slots": 25, "cluster|nodes": 2}, 9), b: NodeCounts({"cluster|slots": 3}, 2),
             c: NodeCounts({}, 1)}
    counted = delta(before, after)
    assert counted.commands == {"cluster|slots": 15 + 3, "cluster|nodes": 2}
    assert counted.connections == 4 + 2
    assert counted.nodes_counted == 2 and counted.nodes_missing == ["h:3"]


def test_client_option_parses_and_rejects_in_one_line():
    import argparse
    assert _clients("glide,ours") == ["glide", "ours"]
    for bad, said in (("jedis", "unknown client 'jedis'"), ("ours,ours", "named twice"), (",", "no client")):
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            _clients(bad)


def render(renderable) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def _matrix():
    spec = importlib.util.spec_from_file_location("matrix", Path(__file__).resolve().parents[2] / "bench/matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["matrix"] = module
    spec.loader.exec_module(module)
    return module


def test_matrix_summarises_medians_per_cell_and_refuses_bad_names(capsys):
    matrix = _matrix()
    runs = [{"topology": "cluster", "fault": "kill", "server": "valkey-9.0", "server_version": "valkey 9.0.0",
             "promotion_s": p, "topology_commands_total": 100,
             "clients": [{"client": "ours", "version": "x", "downtime_ms": d, "after_promotion_ms": 5.0,
                          "acked_lost": 0, "why": None}]} for p, d in ((3.0, 3100.0), (2.5, 2900.0), (3.5, 3300.0))]
    (cell,) = matrix.summary(runs)
    assert cell["downtime_ms"] == {"median": 3100.0, "min": 2900.0, "max": 3300.0, "n": 3}
    assert cell["promotion_s"]["median"] == 3.0 and cell["runs"] == 3
    assert matrix.main(["--servers", "valkey-7.0"]) == 2
    assert "unknown 'valkey-7.0'" in capsys.readouterr().err
    assert matrix.main(["--faults", "manual"]) == 2


def test_a_write_that_was_waiting_when_the_promotion_came_counts_as_writing_again():
    waiting = Op(700, "ka700", 102.99, PROMOTED + 0.004, OP_OK, group="a", value="700")  # began before, acked after
    ops = steady("a", 98.0, 100.0) + [waiting] + steady("a", 103.02, 104.0, first_seq=800)
    ops += steady("b", 98.0, 104.0, first_seq=9000)
    comparison = comparison_with({"ours": ops})
    row = client_row(comparison, comparison.clients[0], FAULT, PROMOTED, "a")
    assert row["after_promotion_ms"] == pytest.approx(4.0, abs=0.5)


def test_a_write_the_demoted_old_master_took_is_not_writing_again_and_the_loss_warns():
    lost = Op(701, "ka701", PROMOTED + 0.001, PROMOTED + 0.002, OP_OK, group="a", value="701")  # old master
    ops = steady("a", 98.0, 100.0) + [lost] + steady("a", 103.05, 104.0, first_seq=800)
    ops += steady("b", 98.0, 104.0, first_seq=9000)
    comparison = comparison_with({"ours": ops})
    final = dict(comparison.clients[0].history.final_read)
    final["ka701"] = None  # gone after the old master was demoted
    comparison.clients[0].history.record_final_read(final)
    result = check_client_comparison(comparison, FAULT, PROMOTED, "a")
    (row,) = result.metrics["clients"]
    assert row["after_promotion_ms"] == pytest.approx(51, abs=1), "the lost write does not count"
    assert row["accounting"]["acked_lost"] == 1
    assert result.status == WARN and "acknowledged writes lost by ours" in result.detail


def test_a_library_whose_writes_were_all_lost_to_the_end_of_the_run_says_so():
    stayed = steady("a", 98.0, 100.2) + steady("a", 100.2, 104.0, first_seq=5000)  # to the old master, all lost
    stayed += steady("b", 98.0, 104.0, first_seq=9000)
    comparison = comparison_with({"redis-py": stayed})
    final = dict(comparison.clients[0].history.final_read)
    final.update({op.key: None for op in stayed if 5000 <= op.seq < 9000})
    comparison.clients[0].history.record_final_read(final)
    result = check_client_comparison(comparison, FAULT, PROMOTED, "a")
    (row,) = result.metrics["clients"]
    assert row["downtime_ms"] is None and row["after_promotion_ms"] is None
    assert row["why"].startswith("on a, every write acknowledged from +0.20 s to the end of the run (")
    assert result.status == WARN
