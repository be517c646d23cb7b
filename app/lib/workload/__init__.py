"""Workloads: what the clients do during a run (writers, the cache store, the HTTP cache) and the recorded history."""
