"""How make test hands out the server tests (tests/conftest.py): units of neighbours, the longest first."""

from __future__ import annotations

import json

from conftest import DURATIONS_FILE, TESTS_PER_UNIT, longest_runs_first, work_units

A = [f"tests/a.py::test_{i}" for i in range(5)]
B = [f"tests/b.py::test_{i}" for i in range(2)]


def test_runs_are_neighbours_of_one_module_and_the_longest_go_first():
    durations = {A[0]: 1, A[1]: 1, A[2]: 30, A[3]: 2, A[4]: 5, B[0]: 20, B[1]: 1}
    assert longest_runs_first(A + B, durations) == [[A[2], A[3]], [B[0], B[1]], [A[4]], [A[0], A[1]]]


def test_a_test_without_a_recorded_duration_counts_as_the_median():
    durations = {A[0]: 1, A[1]: 1, A[2]: 4, A[3]: 4, B[0]: 10, B[1]: 10}  # median 4: A[4] counts 4
    assert longest_runs_first(A + B, durations)[1:] == [[A[2], A[3]], [A[4]], [A[0], A[1]]]


def test_the_units_follow_the_order_the_runs_were_put_in():
    durations = {A[0]: 1, A[1]: 1, A[2]: 2, A[3]: 2, A[4]: 50, B[0]: 3, B[1]: 3}
    order = [nodeid for run in longest_runs_first(A + B, durations) for nodeid in run]
    units = work_units(["tests/docker/test_x.py::test_cluster", "tests/test_readme.py::test_r", *order])
    assert units["tests/docker/test_x.py::test_cluster"] == "docker-cluster"
    groups: dict[str, list[str]] = {}
    for nodeid in order:
        groups.setdefault(units[nodeid], []).append(nodeid)
    assert list(groups.values()) == [[A[4]], [B[0], B[1]], [A[2], A[3]], [A[0], A[1]]], \
        "two runs of one module side by side must stay two units"
    assert all(len(group) <= TESTS_PER_UNIT for group in groups.values())


def test_the_recorded_durations_are_seconds_for_enough_tests():
    recorded = json.loads(DURATIONS_FILE.read_text())
    assert len(recorded) > 50, "tests/durations.json is nearly empty: run make durations"
    assert all(isinstance(seconds, (int, float)) and seconds >= 0 for seconds in recorded.values())
