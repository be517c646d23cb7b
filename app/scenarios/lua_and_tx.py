"""Scripts and transactions: EVAL type conversions, EVALSHA and SCRIPT LOAD/EXISTS, NOSCRIPT, functions,
MULTI/EXEC, a WATCH that another client breaks, and errors inside transactions (queued vs runtime).

Replies are checked against the documented behaviour (FAIL when different). Error messages are
recorded verbatim, because clients match on them: the diff shows where the servers word them
differently (e.g. NOSCRIPT). Nothing global is flushed: the script cache and function libraries are
shared with other users, so only a uniquely named library is created, and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import Any

import redis

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import error_reply, result

NAME = "lua_and_tx"
DESTRUCTIVE = False

EXPECTED: dict[str, Any] = {
    "eval_integer": 42, "eval_string": "hi", "eval_nested_table": [1, "two", [3]], "eval_nil": None,
    "eval_false": None, "eval_true": 1, "eval_float_truncated": 3, "eval_status_reply": "FINE",
    "eval_keys_argv": "7", "script_load_sha1": True, "evalsha": "loaded x", "script_exists": [True, False],
    "script_object_reloads": "fresh y", "eval_ro_read": "7", "multi_exec": [True, 2, "2"],
    "exec_runtime_error_others_applied": True, "exec_abort_applied_nothing": True, "watch_abort": "WatchError",
    "watch_abort_kept_other_write": "changed", "watch_unbroken": [True], "discard": "kept", "fcall": "echo:z",
}
EXPECTED_ERRORS = {  # reply -> the exception type redis-py must raise (messages are only recorded)
    "eval_error_reply": "ResponseError", "eval_call_error": "ResponseError", "eval_syntax_error": "ResponseError",
    "evalsha_unknown": "NoScriptError", "eval_ro_write": "ResponseError", "exec_abort": "ResponseError",
}


def run(client, ctx) -> CheckResult:
    replies: dict[str, Any] = {}
    library = f"vhc_{uuid.uuid4().hex[:12]}"
    try:
        _scripts(client, ctx, replies)
        _transactions(client, ctx, replies)
        replies["fcall"] = _function(client, ctx, library)
    finally:
        with contextlib.suppress(redis.ResponseError):  # never loaded (or no FUNCTION): nothing to remove
            client.function_delete(library)
        ctx.cleanup(client)
    mismatches = {k: {"got": replies.get(k), "expected": v} for k, v in EXPECTED.items() if replies.get(k) != v}
    mismatches |= {k: {"got": replies.get(k), "expected": f"{v}: ..."} for k, v in EXPECTED_ERRORS.items()
                   if not str(replies.get(k, "")).startswith(v + ":")}
    errors = {k: replies[k] for k in EXPECTED_ERRORS if k in replies}
    metrics = {"replies": {k: v for k, v in replies.items() if k not in errors}, "errors": errors,
               "mismatches": mismatches}
    total = len(EXPECTED) + len(EXPECTED_ERRORS)
    if mismatches:
        return result(NAME, FAIL, f"{len(mismatches)} of {total} behaviours differ from the documented ones: "
                                  f"{', '.join(mismatches)}", metrics)
    return result(NAME, OK, f"{total} script and transaction behaviours as documented", metrics)


def _scripts(client, ctx, replies: dict) -> None:
    key, text = ctx.key("counter"), ctx.key("text")
    client.set(text, "abc")
    replies["eval_integer"] = client.eval("return 42", 0)
    replies["eval_string"] = client.eval("return ARGV[1]", 0, "hi")
    replies["eval_nested_table"] = client.eval("return {1, 'two', {3}}", 0)
    replies["eval_nil"] = client.eval("return nil", 0)
    replies["eval_false"] = client.eval("return false", 0)
    replies["eval_true"] = client.eval("return true", 0)
    replies["eval_float_truncated"] = client.eval("return 3.99", 0)
    replies["eval_status_reply"] = client.eval("return redis.status_reply('FINE')", 0)
    replies["eval_keys_argv"] = client.eval("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
                                            1, key, "7")
    replies["eval_error_reply"] = error_reply(lambda: client.eval("return redis.error_reply('MYERR custom')", 0))
    replies["eval_call_error"] = error_reply(lambda: client.eval("return redis.call('INCR', KEYS[1])", 1, text))
    replies["eval_pcall_error_table"] = client.eval("return redis.pcall('INCR', KEYS[1]).err", 1, text)
    replies["eval_syntax_error"] = error_reply(lambda: client.eval("return +", 0))
    body = "return 'loaded ' .. ARGV[1]"
    sha = client.script_load(body)
    replies["script_load_sha1"] = sha == hashlib.sha1(body.encode()).hexdigest()
    replies["evalsha"] = client.evalsha(sha, 0, "x")
    never_loaded = hashlib.sha1(f"-- {ctx.prefix} {uuid.uuid4()}".encode()).hexdigest()
    replies["script_exists"] = client.script_exists(sha, never_loaded)
    replies["evalsha_unknown"] = error_reply(lambda: client.evalsha(never_loaded, 0))
    # redis-py's Script object answers NOSCRIPT by loading the script: the usual client-side fallback.
    fresh = client.register_script(f"-- {ctx.prefix} {uuid.uuid4()}\nreturn 'fresh ' .. ARGV[1]")
    replies["script_object_reloads"] = fresh(args=["y"])
    replies["eval_ro_read"] = client.eval_ro("return redis.call('GET', KEYS[1])", 1, key)
    replies["eval_ro_write"] = error_reply(lambda: client.eval_ro("return redis.call('SET', KEYS[1], 1)", 1, key))


def _transactions(client, ctx, replies: dict) -> None:
    key, text, after = ctx.key("tx"), ctx.key("tx-text"), ctx.key("tx-after")
    pipe = client.pipeline(transaction=True)
    replies["multi_exec"] = pipe.set(key, 1).incr(key).get(key).execute()
    # A runtime error (INCR on text) fails that command only; the others in EXEC still apply.
    outcome = pipe.set(text, "abc").incr(text).set(after, "applied").execute(raise_on_error=False)
    replies["exec_runtime_error_reply"] = [f"{type(r).__name__}: {r}" if isinstance(r, Exception) else r
                                           for r in outcome]
    replies["exec_runtime_error_others_applied"] = client.get(after) == "applied"
    # A command rejected while queueing (unknown command) aborts the whole transaction: EXECABORT.
    pipe = client.pipeline(transaction=True)
    pipe.set(ctx.key("tx-aborted"), "should-not-exist")
    pipe.execute_command("VHC-NO-SUCH-COMMAND")
    replies["exec_abort"] = error_reply(pipe.execute)
    replies["exec_abort_applied_nothing"] = client.exists(ctx.key("tx-aborted")) == 0
    watched = ctx.key("watched")
    client.set(watched, "original")
    other = ctx.new_client()
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(watched)
        other.set(watched, "changed")  # another client writes between WATCH and EXEC
        pipe.multi()
        pipe.set(watched, "mine")
        try:
            pipe.execute()
            replies["watch_abort"] = "EXEC ran"
        except redis.WatchError:
            replies["watch_abort"] = "WatchError"
    replies["watch_abort_kept_other_write"] = client.get(watched)
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(watched)
        pipe.multi()
        pipe.set(watched, "mine")
        replies["watch_unbroken"] = pipe.execute()
    client.set(watched, "kept")
    with client.pipeline(transaction=True) as pipe:
        pipe.set(watched, "discarded")
        pipe.reset()  # DISCARD: nothing queued is applied
    replies["discard"] = client.get(watched)


def _function(client, ctx, library: str) -> str:
    """FUNCTION LOAD + FCALL (Redis 7.0+) with a library of our own; redis.register_function works on both."""
    code = (f"#!lua name={library}\n"
            f"redis.register_function('{library}_echo', function(keys, args) return 'echo:' .. args[1] end)")
    client.function_load(code)
    return client.fcall(f"{library}_echo", 0, "z")
