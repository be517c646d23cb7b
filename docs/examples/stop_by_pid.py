"""A fault of your own for --fault-file: SIGSTOP the primary's process found by INFO, SIGCONT it after the failover.

    python app/cluster_test.py --fault-file docs/examples/stop_by_pid.py
    python app/ha_test.py --fault-file docs/examples/stop_by_pid.py

It needs no launcher and no docker: any primary on this machine whose INFO tells its process id. Replace inject and
heal with your own cut (a kubectl call, a cloud API, a proxy rule); the harness measures it like its own faults.
"""

from __future__ import annotations

import os
import signal

import redis

from lib.errors import SetupError
from lib.faults.fault import UNOWNED, Fault, FaultContext


class StopByPid(Fault):
    name = "stop-by-pid"
    help = "SIGSTOP the primary's process (pid from INFO server), SIGCONT once a replica is promoted"
    target = "the primary"
    heals_in_run = True  # the run resumes it as soon as a replica is promoted, then counts what it still took
    pins_old_primary = True  # a writer stays on it meanwhile, as a client on its side would
    roles_put_back = {"sentinel": UNOWNED, "cluster": UNOWNED}  # on servers the harness did not start

    def __init__(self, pid: int, address: tuple[str, int]):
        self.pid, self.address = pid, address

    @classmethod
    def build(cls, ctx: FaultContext) -> StopByPid:
        """Find the process before anything is touched: a SetupError here costs nothing."""
        with redis.Redis(*ctx.primary.reachable, password=ctx.password, socket_timeout=2) as node:
            pid = int(node.info("server")["process_id"])
        try:
            os.kill(pid, 0)
        except OSError as exc:
            raise SetupError(f"--fault-file: process {pid} of {ctx.where} is not on this machine ({exc})") from None
        return cls(pid, ctx.primary.reachable)

    @property
    def description(self) -> str:
        return f"SIGSTOP pid {self.pid} ({self.address[0]}:{self.address[1]})"

    def inject(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def heal(self, timeout: float) -> bool:
        os.kill(self.pid, signal.SIGCONT)
        return True

    def touches(self) -> list[tuple[str, int]]:
        return [self.address]
