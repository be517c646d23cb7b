"""Checkers: read what a run recorded and give verdicts (OK, WARN, FAIL) with their metrics."""
