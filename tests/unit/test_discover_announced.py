"""RemappingSentinel.discover_announced: which sentinel's answer names the master, on faked sentinel replies."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from redis.sentinel import MasterNotFoundError

from lib.ha_client import RemappingSentinel

NAME = "myvalkey"
OLD, NEW = ("valkey-master", 6379), ("valkey-replica1", 6380)


def state(address: tuple[str, int], *, epoch: int, flags: str = "master", sdown: bool = False) -> dict:
    """A SENTINEL MASTERS entry as redis-py parses it (flags kept as text, plus the is_* booleans)."""
    return {"name": NAME, "ip": address[0], "port": address[1], "flags": flags, "config-epoch": epoch,
            "is_master": "master" in flags, "is_sdown": sdown or "s_down" in flags, "is_odown": "o_down" in flags,
            "num-other-sentinels": 2}


class FakeSentinel:
    def __init__(self, entry: dict | None, addr: tuple | None = None, error: Exception | None = None):
        self.entry, self.addr, self.error = entry, addr, error

    def sentinel_masters(self) -> dict:
        if self.error is not None:
            raise self.error
        return {NAME: self.entry} if self.entry else {}

    def sentinel_get_master_addr_by_name(self, name: str):
        assert name == NAME, f"asked for {name}"
        return self.addr

    def __repr__(self) -> str:
        return f"FakeSentinel<{self.addr}>"


def sentinel_over(*fakes: FakeSentinel) -> RemappingSentinel:
    sentinel = RemappingSentinel([("127.0.0.1", 1)], lambda address: ("127.0.0.1", address[1]))
    sentinel.sentinels = list(fakes)
    return sentinel


def test_the_highest_config_epoch_wins_whichever_sentinel_answers_first():
    lagging = FakeSentinel(state(OLD, epoch=0), OLD)
    switched = FakeSentinel(state(NEW, epoch=1), NEW)
    for order in ((lagging, switched, lagging), (switched, lagging, lagging)):
        assert sentinel_over(*order).discover_announced(NAME) == NEW, "epoch 1 beats epoch 0"


def test_on_an_epoch_tie_the_failover_leader_wins_even_while_its_entry_still_shows_the_old_master():
    # The leader bumped its epoch and already answers GET-MASTER-ADDR-BY-NAME with the promoted replica,
    # while its SENTINEL MASTERS entry is still the old, down master.
    leader = FakeSentinel(state(OLD, epoch=1, flags="master,s_down,o_down,failover_in_progress"), NEW)
    follower = FakeSentinel(state(OLD, epoch=1), OLD)
    assert sentinel_over(follower, leader).discover_announced(NAME) == NEW, "the leader knows the promotion first"


def test_an_unhealthy_master_is_not_named_and_with_no_other_answer_there_is_no_master():
    down = FakeSentinel(state(OLD, epoch=0, flags="master,s_down", sdown=True), OLD)
    with pytest.raises(MasterNotFoundError, match="No master found for 'myvalkey'"):
        sentinel_over(down, down).discover_announced(NAME)
    healthy = FakeSentinel(state(OLD, epoch=0), OLD)
    assert sentinel_over(down, healthy).discover_announced(NAME) == OLD, "the healthy view is taken"


@pytest.mark.parametrize("error", [ConnectionError("Error 111 connecting"), TimeoutError("Timeout reading"),
                                   ResponseError("unknown command 'SENTINEL'")])
def test_sentinels_that_cannot_answer_are_skipped_and_named_when_none_can(error):
    broken = FakeSentinel(None, error=error)
    assert sentinel_over(broken, FakeSentinel(state(NEW, epoch=2), NEW)).discover_announced(NAME) == NEW
    with pytest.raises(MasterNotFoundError) as caught:
        sentinel_over(broken).discover_announced(NAME)
    assert repr(error) in str(caught.value), f"the error each sentinel gave is in {caught.value}"


def test_a_sentinel_that_does_not_monitor_the_name_is_skipped():
    stranger = FakeSentinel(None)
    assert sentinel_over(stranger, FakeSentinel(state(NEW, epoch=0), NEW)).discover_announced(NAME) == NEW


def test_a_bytes_reply_is_decoded_and_discover_master_remaps_the_announced_address():
    sentinel = sentinel_over(FakeSentinel(state(NEW, epoch=0), (b"valkey-replica1", "6380")))
    assert sentinel.discover_announced(NAME) == NEW, "host decoded, port an int"
    assert sentinel.discover_master(NAME) == ("127.0.0.1", 6380), "the remap applies to the announced address"
