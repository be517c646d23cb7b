"""valkey-py as users run it: Sentinel(...).master_for(name) and ValkeyCluster, with their default settings.

valkey-py is a fork of redis-py: the same clients, retries and exception tree under other names, so it
goes through the same machinery (redis_py.py) with valkey's classes.
"""

from __future__ import annotations

import valkey.exceptions
from valkey.cluster import ClusterNode, ValkeyCluster
from valkey.sentinel import Sentinel

from lib.clients.libraries.base import VALKEY_PY, ClusterTarget, SentinelTarget
from lib.clients.libraries.redis_py import StockClient, open_stock_cluster, open_stock_sentinel

CAUGHT = (valkey.exceptions.ValkeyError, valkey.exceptions.ValkeyClusterException, OSError)


def open_sentinel(target: SentinelTarget, client_name: str) -> StockClient:
    return open_stock_sentinel(VALKEY_PY, "valkey", Sentinel, valkey.exceptions, CAUGHT, target, client_name)


def open_cluster(target: ClusterTarget, client_name: str) -> StockClient:
    return open_stock_cluster(VALKEY_PY, "valkey", ValkeyCluster, ClusterNode, valkey.exceptions, CAUGHT, target,
                              client_name)
