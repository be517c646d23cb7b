"""Client wrappers beside ha_client and cluster_client: the independent probe, keyspace cleanup,
sentinel events, HTTP requests."""
