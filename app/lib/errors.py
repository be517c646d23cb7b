"""The harness's exceptions, in one place with no presentation code, so any module can raise them."""

from __future__ import annotations


class SetupError(Exception):
    """The environment is wrong (nothing reachable, bad flag, stack not running): exit 2, one line."""


class HarnessError(Exception):
    """The harness could not do what a verdict needs (a read after the fault that never got an answer).

    Not a verdict on the servers: the check that meets it reports ERROR with what the harness could not do,
    never FAIL, so that a slow read of ours is not taken for a fault of Valkey's.
    """
