"""Compatibility scenarios: one module each, found by app/test_runner.py (files starting with _ are not).

A scenario module defines:
    NAME = "my_scenario"          # what --scenario selects and what the tables show
    DESTRUCTIVE = False           # True if it changes server config or may lose other keys
    def run(client, ctx) -> CheckResult  # lib.suites.scenario.result(NAME, OK|WARN|FAIL, detail, metrics)

Keys go under ctx.key(...) and are removed with ctx.cleanup(client) in a finally block.
"""
