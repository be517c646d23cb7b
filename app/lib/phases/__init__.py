"""Runs: a workload, a fault and the observers, together, timed; each returns what it recorded."""
