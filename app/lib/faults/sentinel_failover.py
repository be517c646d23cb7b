"""SENTINEL FAILOVER as a fault: a promotion ordered through the sentinels, nothing killed (--fault graceful).

The old master is demoted, not stopped, so what it acknowledged between the promotion order and its
demotion is discarded: the consistency check counts that loss (docs/ha.md).
"""

from __future__ import annotations

import redis

from lib.errors import SetupError
from lib.faults.fault import Fault
from lib.ha_client import HAClient
from lib.util import format_endpoint


class SentinelFailover(Fault):
    """SENTINEL FAILOVER: a promotion without killing anything (works without shell access)."""

    description = "SENTINEL FAILOVER (graceful: the old master is demoted, not killed)"

    def __init__(self, ha: HAClient):
        self.ha = ha

    def inject(self) -> None:
        errors = []
        for address in self.ha.sentinel_addresses:
            client = self.ha.node(address, sentinel=True)
            try:
                client.sentinel_failover(self.ha.master_name)
                return
            except redis.RedisError as exc:
                errors.append(f"{format_endpoint(*address)}: {exc}")
            finally:
                client.close()
        raise SetupError(f"no sentinel accepted SENTINEL FAILOVER {self.ha.master_name}: {'; '.join(errors)}")
