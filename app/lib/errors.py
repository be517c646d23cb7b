"""The harness's exceptions, in one place with no presentation code, so any module can raise them."""

from __future__ import annotations


class SetupError(Exception):
    """The environment is wrong (nothing reachable, bad flag, stack not running): exit 2, one line."""
