"""The command surface of a server, discovered from the server itself: what exists, with which shape.

Commands and subcommands with arity, flags and ACL categories (COMMAND), their documentation
group (COMMAND DOCS), server identity (HELLO, INFO server), INFO sections, ACL categories and
config parameter names. Nothing is listed in this file: the diff between targets then shows what
one server has and the other lacks, and which shared commands changed arity or flags.
"""

from __future__ import annotations

from typing import Any

import redis

from lib.checks.result import OK, WARN, CheckResult
from lib.suites.scenario import raw_command, result

NAME = "command_surface"
DESTRUCTIVE = False
IDENTITY_FIELDS = ("server_name", "redis_version", "valkey_version", "valkey_release_stage", "redis_mode",
                   "server_mode", "arch_bits", "multiplexing_api")


def run(client, ctx) -> CheckResult:
    entries = raw_command(client, "COMMAND")
    problems: list[str] = []
    try:
        docs = _as_dict(raw_command(client, "COMMAND", "DOCS"))
    except redis.ResponseError as exc:
        docs, problems = {}, [f"COMMAND DOCS failed: {exc}"]
    commands: dict[str, str] = {}
    subcommands: dict[str, str] = {}
    for entry in entries:
        name = str(entry[0]).lower()
        commands[name] = _signature(entry, _as_dict(docs.get(name, {})).get("group"))
        sub_docs = _as_dict(_as_dict(docs.get(name, {})).get("subcommands", {}))
        for sub in (entry[9] if len(entry) > 9 else []):
            sub_name = str(sub[0]).lower()
            subcommands[sub_name] = _signature(sub, _as_dict(sub_docs.get(sub_name, {})).get("group"))
    # HELLO without a version: it reports without switching protocol. "HELLO 2" on redis-py 8's RESP3
    # connection left the connection speaking RESP2 to a RESP3 parser (next replies misread, then a hang).
    hello = _as_dict(raw_command(client, "HELLO"))
    info = client.info("server")
    metrics: dict[str, Any] = {
        "command_count": len(commands),
        "subcommand_count": len(subcommands),
        "commands": commands,
        "subcommands": subcommands,
        "documented_without_command": sorted(set(map(str.lower, docs)) - set(commands)),
        "hello": {k: hello.get(k) for k in ("server", "version", "proto", "mode", "role", "modules")},
        "identity": {k: info.get(k) for k in IDENTITY_FIELDS if k in info},
        "info_server_fields": sorted(info),
        "info_sections": _info_sections(client),
        "acl_categories": sorted(client.acl_cat()),
        "config_parameters": sorted(client.config_get("*")),
    }
    detail = (f"{len(commands)} commands, {len(subcommands)} subcommands, "
              f"{len(metrics['config_parameters'])} config parameters, {len(metrics['acl_categories'])} ACL "
              f"categories; HELLO says {hello.get('server')} {hello.get('version')}")
    if problems:
        return result(NAME, WARN, f"{'; '.join(problems)}; {detail}", metrics)
    return result(NAME, OK, detail, metrics)


def _signature(entry: list, group: str | None) -> str:
    """'arity=-3 flags=write,denyoom acl=@write,@string group=string': one comparable string per command."""
    flags = ",".join(sorted(map(str, entry[2])))
    acl = ",".join(sorted(map(str, entry[6]))) if len(entry) > 6 else ""
    return f"arity={entry[1]} flags={flags} acl={acl} group={group or '?'}"


def _as_dict(reply: Any) -> dict:
    """RESP2 maps arrive as flat [k1, v1, k2, v2] lists, or already as dicts, depending on the parser."""
    if isinstance(reply, dict):
        return reply
    if isinstance(reply, list):
        return {str(reply[i]).lower() if isinstance(reply[i], str) else reply[i]: reply[i + 1]
                for i in range(0, len(reply) - 1, 2)}
    return {}


def _info_sections(client) -> list[str]:
    """Section names of INFO everything ('# Server' -> 'server')."""
    text = raw_command(client, "INFO", "everything")
    text = text.decode() if isinstance(text, bytes) else str(text)
    return sorted(line[2:].strip().lower() for line in text.splitlines() if line.startswith("# "))
