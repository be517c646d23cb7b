"""Suites: the command-line skeleton every entry point shares, and each suite's list of checks."""
