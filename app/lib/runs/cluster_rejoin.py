"""The names the rejoin phase records its steps under (lib/suites/cluster_restore.py acts, lib/checks/cluster_rejoin.py
judges)."""

from __future__ import annotations

REJOIN = "rejoin"  # the process: restarted, rejoined, roles put back, config put back, undone
