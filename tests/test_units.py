"""Fast unit tests: endpoint parsing, the compose translation, the checkers and error classification."""

from __future__ import annotations

import pytest
import redis

from lib import events
from lib.checks.accounting import account
from lib.checks.checker import longest_gap_ms, outage_around
from lib.errors import SetupError
from lib.ha_client import AddressRemap
from lib.history import FAIL, HARNESS, OK, PROBE, UNKNOWN, WRITER, History, Op, classify
from lib.topology.topology import Translator
from lib.util import key_namespace, parse_endpoint


@pytest.mark.parametrize("text,expected", [("127.0.0.1:26379", ("127.0.0.1", 26379)), (":7000", ("127.0.0.1", 7000)),
                                           ("[::1]:6379", ("::1", 6379)), ("sentinel.example:26379",
                                                                             ("sentinel.example", 26379))])
def test_parse_endpoint(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("bad", ["localhost", "host:0", "host:70000", "host:abc", ""])
def test_parse_endpoint_rejects_bad_input(bad):
    with pytest.raises(SetupError, match="expected HOST:PORT"):
        parse_endpoint(bad)


def test_translator_maps_hosts_and_ports_but_not_other_numbers():
    tr = Translator({"valkey-master", "node-7000"}, {6379: 16379, 7000: 17000})
    assert tr.tokens(["--replicaof", "valkey-master", "6379"]) == ["--replicaof", "127.0.0.1", "16379"]
    assert tr.tokens(["--port", "6379", "--maxmemory", "6379"]) == ["--port", "16379", "--maxmemory", "6379"]
    assert tr.tokens(["node-7000:7000", "0.0.0.0"]) == ["127.0.0.1:17000", "127.0.0.1"]
    assert tr.text("sentinel monitor myvalkey valkey-master 6379 2\n# valkey-master 6379\n") == (
        "sentinel monitor myvalkey 127.0.0.1 16379 2\n# valkey-master 6379\n")


def ops(spec: str, step: float = 0.01) -> list[Op]:
    """'..xx..' -> ok, ok, fail, fail, ok, ok at 10 ms steps."""
    return [Op(i, f"k{i}", i * step, i * step + 0.001, OK if c == "." else FAIL, None if c == "." else "Err: x")
            for i, c in enumerate(spec)]


def test_outage_is_measured_from_last_ok_to_first_ok():
    outage = outage_around(ops("...xxxx..."), fault_at=0.025)
    assert outage is not None and outage.failed_ops == 4
    assert outage.downtime_ms == pytest.approx(50.0)


def test_outage_before_the_fault_is_ignored_and_no_recovery_is_reported():
    assert outage_around(ops("x...."), fault_at=0.02) is None
    never = outage_around(ops("..xxx"), fault_at=0.0)
    assert never is not None and never.first_ok_end is None and never.downtime_ms is None


def test_longest_gap():
    assert longest_gap_ms(ops(".." + "x" * 10 + ".."), 0.0, 0.14) == pytest.approx(110.0)


def test_lost_writes_counts_missing_and_stale_values_and_confirmations():
    history = ops("....")
    for op in history:
        op.confirmed, op.value = op.seq % 2 == 0, str(op.seq)
    final = {"k0": "0", "k1": "1", "k2": None, "k3": "2"}  # k2 missing, k3 holds an older value
    loss = account(history, final)
    assert (loss.acked, loss.acked_lost, loss.wait_confirmed, loss.wait_confirmed_lost) == (4, 2, 2, 1)
    assert sorted(loss.lost_keys_sample) == ["k2", "k3"]


def test_classify_errors():
    assert classify(redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")) == FAIL
    assert classify(redis.ConnectionError("Connection closed by server.")) == UNKNOWN
    assert classify(redis.TimeoutError("Timeout reading from socket")) == UNKNOWN
    assert classify(redis.ReadOnlyError("READONLY")) == FAIL
    assert classify(redis.ResponseError("WRONGTYPE")) == FAIL


def test_address_remap_maps_unresolvable_names_and_explicit_ones():
    remap = AddressRemap("127.0.0.1", {"valkey-master": "10.0.0.5"})
    assert remap(("valkey-master", 6379)) == ("10.0.0.5", 6379)
    assert remap(("valkey-replica1.invalid", 6380)) == ("127.0.0.1", 6380)
    assert remap(("127.0.0.1", 6381)) == ("127.0.0.1", 6381)


def test_key_namespaces_are_unique_per_run():
    assert key_namespace("ha") != key_namespace("ha")
    assert key_namespace("ha").startswith("vhc:ha:")


def _run_with_recoveries(ours_s: float, probe_s: float):
    """A FailoverView, read back from its history, whose writer and probe fail from the fault (t=100) until they
    recover; the sentinels announce +switch-master at +3.3 s and our client followed one switch."""
    from lib.phases.ha_phases import SWITCHES
    from lib.phases.ha_record import TARGET, FailoverView

    history = History()
    history.observe(HARNESS, TARGET, {"master": "127.0.0.1:1"}, at=99.0)
    history.event(events.FAULT, "SIGKILL valkey-master", at=100.0)
    for process, back in ((WRITER, ours_s), (PROBE, probe_s)):
        history.record(Op(0, "k", 99.99, 99.995, OK, process=process))
        history.record(Op(1, "k", 100.01, 100.02, FAIL, "ConnectionError", process=process))
        history.record(Op(2, "k", 100.0 + back, 100.0 + back + 0.001, OK, process=process))
    history.event(events.SWITCH_MASTER, at=103.3)
    history.event(events.RECOVERED, "client writing, sentinels agree", at=100.0 + max(ours_s, probe_s))
    history.observe(HARNESS, SWITCHES, 1, at=104.0)
    run = FailoverView.from_history(history, {"expects": "promotion"})
    assert (run.fault_at, run.old_master) == (100.0, ("127.0.0.1", 1)), run
    return run


@pytest.mark.parametrize("ours_s,probe_s,status", [(3.30, 3.31, "OK"), (3.30, 3.50, "WARN"), (3.50, 3.30, "FAIL")])
def test_reconnect_verdict_is_one_sided(ours_s, probe_s, status):
    """Later than the probe (+200 ms) is a failure of ours; earlier (the probe waits for +switch-master) a WARN."""
    from lib.checks.ha_checks import check_reconnect

    result = check_reconnect(_run_with_recoveries(ours_s, probe_s), None)
    assert result.status == status, (result.status, result.detail)
    assert result.metrics["switches_followed"] == 1, result.metrics
    assert result.metrics["ours_downtime_ms"] == pytest.approx(ours_s * 1000 + 6, abs=0.1), result.metrics
    assert result.metrics["probe_downtime_ms"] == pytest.approx(probe_s * 1000 + 6, abs=0.1), result.metrics
