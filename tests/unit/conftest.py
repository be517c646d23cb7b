"""Every unit test: waits give up after 50 ms instead of 30-60 s (nothing here waits for a server)."""

from __future__ import annotations

import pytest

from lib import waits

SHORT_WAIT_S = 0.05


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """The real wait_until (same polling, same WaitTimeout), with every deadline cut to 50 ms."""
    def wait_briefly(check, *, timeout: float, what: str, **kwargs):
        return waits.wait_until(check, timeout=min(timeout, SHORT_WAIT_S), what=what, **kwargs)

    import cluster_test
    import ha_test
    from lib.runs import cluster_failover, ha_failover

    for module in (ha_test, cluster_test, cluster_failover, ha_failover):
        monkeypatch.setattr(module, "wait_until", wait_briefly)
