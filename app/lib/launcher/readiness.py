"""Ready means checked: each topology's readiness conditions, awaited with one deadline.

A stack that never became ready is a setup error (exit 2, one line and the log tail): the waits
here turn their WaitTimeout into SetupError, since no check has run yet to fail.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.errors import SetupError
from lib.launcher import process
from lib.waits import WaitTimeout, wait_until


def _client(host: str, port: int) -> redis.Redis:
    # No retries: a poll that fails should fail at once (redis-py 8 would retry for ~3.8 s).
    return redis.Redis(host=host, port=port, socket_timeout=1.0, socket_connect_timeout=1.0,
                       decode_responses=True, retry=Retry(NoBackoff(), 0))


@contextlib.contextmanager
def _not_ready_is_setup_error() -> Iterator[None]:
    """A readiness wait that timed out: the stack is not usable, so no check can run (exit 2)."""
    try:
        yield
    except WaitTimeout as exc:
        raise SetupError(str(exc)) from None


def wait_pingable(stack, name: str, timeout: float) -> None:
    """PING answers; if the process dies meanwhile, say so at once and show its log."""
    svc = stack.service(name)
    host, port = stack.endpoint(name)
    with _client(host, port) as client, _not_ready_is_setup_error():
        wait_until(lambda: (bool(client.ping()), "PONG"), timeout=timeout, what=f"{name} to answer PING on {port}",
                   abort=lambda: None if process.is_alive(svc.pid)
                   else f"{name} exited (code {process.exit_code(svc.pid)})",
                   explain=lambda: stack.log_tail(name))


def wait_ready(stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for name, svc in stack.services.items():
        if svc.kind in ("server", "sentinel"):
            wait_pingable(stack, name, max(1.0, deadline - time.monotonic()))
    for name, svc in stack.services.items():
        if svc.kind == "job":
            run_job(stack, name, max(1.0, deadline - time.monotonic()))
    check = READY_CHECKS.get(stack.topology.name)
    if check is not None:
        check(stack, max(1.0, deadline - time.monotonic()))


def run_job(stack, name: str, timeout: float) -> None:
    """Run a one-shot service (e.g. cluster init) to completion, as compose's init container does."""
    svc = stack.service(name)
    Path(svc.data_dir).mkdir(parents=True, exist_ok=True)
    Path(svc.log).parent.mkdir(parents=True, exist_ok=True)
    with open(svc.log, "ab") as log:
        try:
            code = subprocess.run(svc.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=svc.data_dir, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            raise SetupError(f"{name} did not finish within {timeout:.0f}s\n{stack.log_tail(name)}") from None
    if code != 0:
        raise SetupError(f"{name} failed with exit code {code}\n{stack.log_tail(name)}")


def ha_ready(stack, timeout: float) -> None:
    """Replica links up, and all sentinels agree on the master and know every replica and peer."""
    replicas = [n for n, s in stack.services.items() if s.kind == "server" and "--replicaof" in s.argv]
    sentinels = [n for n, s in stack.services.items() if s.kind == "sentinel"]
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as closing, _not_ready_is_setup_error():
        for name in replicas:
            client = closing.enter_context(_client(*stack.endpoint(name)))
            wait_until(lambda c=client: _link_up(c), timeout=max(1.0, deadline - time.monotonic()),
                       what=f"{name} master_link_status:up", explain=lambda n=name: stack.log_tail(n))
        clients = {name: closing.enter_context(_client(*stack.endpoint(name))) for name in sentinels}
        _wait_sentinels_agree(stack, clients, len(replicas), deadline)


def _wait_sentinels_agree(stack, clients: dict[str, redis.Redis], replicas: int, deadline: float) -> None:
    sentinels = list(clients)

    def sentinels_agree() -> tuple[bool, str]:
        seen = {}
        for name, client in clients.items():
            masters = client.sentinel_masters()
            if len(masters) != 1:
                return False, f"{name} monitors {len(masters)} masters"
            (master_name, info), = masters.items()
            seen[name] = (f"{master_name}@{info['ip']}:{info['port']} replicas={info['num-slaves']} "
                          f"other-sentinels={info['num-other-sentinels']}")
            if info["num-slaves"] != replicas or info["num-other-sentinels"] != len(sentinels) - 1:
                return False, "; ".join(f"{k}: {v}" for k, v in seen.items())
        return len({v for v in seen.values()}) == 1, "; ".join(f"{k}: {v}" for k, v in seen.items())

    wait_until(sentinels_agree, timeout=max(1.0, deadline - time.monotonic()),
               what=f"{len(sentinels)} sentinels to agree on the master, {replicas} replicas "
                    f"and {len(sentinels) - 1} peers each",
               explain=lambda: stack.log_tail(sentinels[0]))


def _link_up(client: redis.Redis) -> tuple[bool, str]:
    info = client.info("replication")
    return info.get("master_link_status") == "up", (
        f"role={info.get('role')} master_link_status={info.get('master_link_status')}")


def cluster_ready(stack, timeout: float) -> None:
    """cluster_state:ok on every node, all 16384 slots assigned, every replica's link up."""
    deadline = time.monotonic() + timeout
    for name, svc in stack.services.items():
        if svc.kind != "server":
            continue
        with _client(*stack.endpoint(name)) as client, _not_ready_is_setup_error():
            wait_until(lambda c=client: _cluster_node_ok(c), timeout=max(1.0, deadline - time.monotonic()),
                       what=f"{name} cluster_state:ok", explain=lambda n=name: stack.log_tail(n))


def _cluster_node_ok(client: redis.Redis) -> tuple[bool, str]:
    info = client.cluster("INFO")
    role = client.info("replication")
    link_ok = role.get("role") == "master" or role.get("master_link_status") == "up"
    seen = (f"cluster_state={info.get('cluster_state')} slots_assigned={info.get('cluster_slots_assigned')} "
            f"role={role.get('role')} link={role.get('master_link_status', '-')}")
    return (info.get("cluster_state") == "ok" and int(info.get("cluster_slots_assigned", 0)) == 16384
            and link_ok), seen


READY_CHECKS: dict[str, Callable] = {"ha": ha_ready, "cluster": cluster_ready}


def describe_role(host: str, port: int, kind: str) -> str:
    """A one-cell summary of what a node is doing, for status tables."""
    client = _client(host, port)
    try:
        if kind == "sentinel":
            masters = client.sentinel_masters()
            return "; ".join(f"watches {n} at {m['ip']}:{m['port']}" for n, m in masters.items())
        info = client.info("replication")
        if info.get("role") == "slave":
            return f"replica of {info['master_host']}:{info['master_port']} link {info['master_link_status']}"
        return f"master, {info.get('connected_slaves', 0)} replicas"
    except redis.RedisError as exc:
        return f"({type(exc).__name__})"
    finally:
        client.close()
