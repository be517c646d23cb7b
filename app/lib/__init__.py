"""The harness library, one folder per role, in the order a run flows through them (docs/architecture.md):

    topology -> launcher -> clients -> workload -> faults -> phases -> checks -> report, with suites on top.

Beside them: history.py (the recorded operations and events every role writes into), events.py (their
names), errors.py (SetupError), waits.py (polling with deadlines), interrupts.py, util.py, and the two
clients the seed named, ha_client.py and cluster_client.py. A role imports only from the roles before it
(tests/unit/test_layout.py); only report/ renders.
"""
