"""Which servers the compatibility suite compares: targets by name, with their connection settings.

Where targets come from, first match wins (any number of targets, not only two):
  1. --target NAME=HOST:PORT or NAME=redis://[user:password@]HOST:PORT[/DB] (repeatable)
  2. $VHC_TARGETS, the same specs separated by commas
  3. a running local compat stack: $VHC_STACK_STATE (set by `stack.py run`), else .stack/compat/; a service
     started on another server version (`stack.py up compat --server redis=valkey-8.1`) is named after it
  4. the compose ports: redis=127.0.0.1:6379, valkey=127.0.0.1:6380

A target is `harness_started` when the harness started the server (lib/launcher/ownership.py: a running local
stack recorded by the launcher listens on its port, or it is a container of this repo's compose files):
destructive scenarios (CONFIG SET, eviction) run only there unless --allow-destructive.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.errors import SetupError
from lib.launcher.discovery import running_stack
from lib.launcher.local_stack import LocalStack
from lib.launcher.ownership import is_local_stack_host, ownership
from lib.util import format_endpoint, parse_endpoint

TARGETS_ENV = "VHC_TARGETS"
COMPAT_TOPOLOGY = "compat"
DEFAULT_TARGETS = (("redis", "127.0.0.1", 6379), ("valkey", "127.0.0.1", 6380))
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # names become file names: results/compat-NAME.json


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    password: str | None = None
    username: str | None = None
    db: int = 0
    harness_started: bool = False
    source: str = "defaults"

    @property
    def address(self) -> str:
        return format_endpoint(self.host, self.port)

    def client(self, timeout: float = 30.0) -> redis.Redis:
        """A plain client: no hidden retries, so an error is seen by the scenario that caused it."""
        return redis.Redis(host=self.host, port=self.port, db=self.db, username=self.username,
                           password=self.password, decode_responses=True, socket_timeout=timeout,
                           socket_connect_timeout=min(timeout, 3.0), retry=Retry(NoBackoff(), 0))

    def describe(self) -> dict[str, Any]:
        """For reports and JSON: everything but the password."""
        return {"name": self.name, "address": self.address, "db": self.db, "source": self.source,
                "harness_started": self.harness_started, "auth": bool(self.password)}


def parse_target(spec: str, source: str) -> Target:
    """'NAME=HOST:PORT' or 'NAME=redis://[user:pw@]HOST:PORT[/DB]' -> Target."""
    name, sep, where = spec.strip().partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name) or not where.strip():
        raise SetupError(f"bad target {spec!r} ({source}): expected NAME=HOST:PORT or NAME=redis://HOST:PORT/DB, "
                         f"e.g. valkey=127.0.0.1:6380 (NAME: letters, digits, _ . -)")
    where = where.strip()
    if "://" not in where:
        host, port = parse_endpoint(where)
        return Target(name, host, port, source=source)
    try:
        url = urlsplit(where)
        port = url.port or 6379
    except ValueError as exc:  # "Invalid IPv6 URL" for redis://[::1, "Port out of range", a port not a number
        raise SetupError(f"bad target {spec!r} ({source}): {exc}; expected e.g. valkey=redis://127.0.0.1:6380/0 "
                         "or v6=redis://[::1]:6380") from None
    if url.scheme != "redis":
        raise SetupError(f"bad target {spec!r} ({source}): only redis:// URLs are supported")
    db_text = url.path.strip("/") or "0"
    if not db_text.isdigit():
        raise SetupError(f"bad target {spec!r} ({source}): database {db_text!r} is not a number")
    return Target(name, url.hostname or "127.0.0.1", port,
                  password=unquote(url.password) if url.password else None,
                  username=unquote(url.username) if url.username else None, db=int(db_text), source=source)


def parse_targets(specs: list[str], source: str) -> list[Target]:
    targets = [parse_target(s, source) for s in specs if s.strip()]
    names = [t.name for t in targets]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise SetupError(f"target name(s) given twice ({source}): {', '.join(duplicates)}")
    if not targets:
        raise SetupError(f"no target in {source}: expected NAME=HOST:PORT[,NAME=HOST:PORT...]")
    return targets


def compat_stack(env: dict[str, str] | None = None) -> LocalStack | None:
    """The running local compat stack: $VHC_STACK_STATE first, then .stack/compat/."""
    return running_stack(COMPAT_TOPOLOGY, env)


def resolve_targets(cli_specs: list[str] | None = None, env: dict[str, str] | None = None) -> list[Target]:
    env = os.environ if env is None else env
    stack = compat_stack(env)
    if cli_specs:
        targets = parse_targets(cli_specs, "--target")
    elif env.get(TARGETS_ENV):
        targets = parse_targets(env[TARGETS_ENV].split(","), f"${TARGETS_ENV}")
    elif stack is not None:
        names = stack_target_names(stack)
        return [Target(names[name], *stack.endpoint(name), harness_started=True,
                       source=f"local stack {stack.state_dir}") for name in stack.running()]
    else:
        targets = [Target(name, host, port) for name, host, port in DEFAULT_TARGETS]
    return [_mark_harness_started(t, stack) for t in targets]


def stack_target_names(stack: LocalStack) -> dict[str, str]:
    """service -> target name: the --server it runs if one was chosen (valkey-8.1), else the service name.

    If two services would get the same name, both keep their service names: results/compat-NAME.json must differ.
    """
    names = {service: svc.server or service for service, svc in stack.services.items()}
    return names if len(set(names.values())) == len(names) else {service: service for service in names}


def _mark_harness_started(target: Target, stack: LocalStack | None) -> Target:
    """A target given by address is still harness-started if our running local compat stack listens
    there, or lib.launcher.ownership finds it among the harness's servers (another local stack, a compose container)."""
    how = None
    if stack is not None and is_local_stack_host(target.host):
        service = stack.service_at(target.port)
        if service is not None and service in stack.running():
            how = f"served by local stack {stack.state_dir}"
    if how is None:
        found = ownership(target.host, target.port)
        how = found.how if found.owned else None
    if how is None:
        return target
    return replace(target, harness_started=True, source=f"{target.source}, {how}")
