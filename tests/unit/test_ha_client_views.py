"""HAClient.sentinel_views(): asked every few ms while a failover settles, so one client per sentinel is kept."""

from __future__ import annotations

import redis

from lib.ha_client import HAClient
from lib.util import free_ports


class FakeSentinelClient:
    def __init__(self, address, answer):
        self.address, self.answer, self.closed = address, answer, False

    def sentinel_get_master_addr_by_name(self, name):
        if self.answer is None:
            raise redis.ConnectionError("Error 111 connecting")
        return self.answer

    def close(self):
        self.closed = True


def test_sentinel_views_reuse_one_client_per_sentinel_and_close_closes_them(monkeypatch):
    up, down = [("127.0.0.1", port) for port in free_ports(2)]  # nothing listens: no switch listener
    built: list[FakeSentinelClient] = []

    def node(self, address, timeout=1.0, *, sentinel=False):
        assert sentinel, "sentinel_views must use the sentinel password"
        built.append(FakeSentinelClient(address, ("10.0.0.5", "6379") if address == up else None))
        return built[-1]

    monkeypatch.setattr(HAClient, "node", node)
    ha = HAClient([up, down], "myvalkey")
    try:
        for _ in range(3):
            views = ha.sentinel_views()
    finally:
        ha.close()
    assert views == {f"127.0.0.1:{up[1]}": "10.0.0.5:6379", f"127.0.0.1:{down[1]}": "error: ConnectionError"}
    assert [c.address for c in built] == [up, down], f"expected one client per sentinel, built {len(built)}"
    assert all(c.closed for c in built), "close() left a sentinel client open"
