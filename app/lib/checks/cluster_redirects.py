"""MOVED and ASK seen through real slot migrations, judged from what the moved and ask phases recorded (the
migrations, the replies, the reads through the cluster client and the slot put back: lib/phases/cluster_phases.py)."""

from __future__ import annotations

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.history import History
from lib.phases.cluster_phases import ASK_KEYS, broken, recorded


def check_moved(history: History) -> CheckResult:
    seen = recorded(history, "moved")
    if "skipped" in seen:
        return CheckResult("moved", WARN, f"skipped: {seen['skipped']}")
    plan = seen.get("plan", {})
    if "refused" in seen:
        return CheckResult("moved", FAIL, seen["refused"], {"slot": plan.get("slot")})
    if why := broken(history, "moved"):
        return CheckResult("moved", FAIL, why, {"slot": plan.get("slot")})
    reply, value, followed, slot = seen.get("plain get"), seen.get("get"), seen.get("redirects", 0), plan["slot"]
    metrics = {"key": plan["key"], "slot": slot, "asked": plan["asked"], "plain_client_reply": reply,
               "cluster_client_value": value, "cluster_client_redirects": followed, "moved_to": plan["moved_to"],
               "restored": seen.get("put back")}
    if reply is None or not reply.startswith(f"MOVED {slot} "):
        return CheckResult("moved", FAIL, f"a plain client at the wrong node got {reply!r}, not MOVED", metrics)
    if value != "here" or followed < 1:
        return CheckResult("moved", FAIL, f"cluster client read {value!r}; the old owner sent it {followed} MOVED "
                              "(INFO errorstats)", metrics)
    return CheckResult("moved", OK, f"plain client at {plan['asked']}: {reply}; slot {slot} migrated behind the "
                          f"cluster client's back, it read the key after {followed} MOVED (counted by the old owner); "
                          "slot put back", metrics)


def check_ask(history: History) -> CheckResult:
    seen = recorded(history, "ask")
    if "skipped" in seen:
        return CheckResult("ask", WARN, f"skipped: {seen['skipped']}")
    plan = seen.get("plan", {})
    if "refused" in seen:
        return CheckResult("ask", FAIL, seen["refused"], {"slot": plan.get("slot")})
    metrics: dict = {"slot": plan["slot"], "from": plan["from"], "to": plan["to"], "keys": len(plan["keys"])}
    if why := broken(history, "ask"):
        return CheckResult("ask", FAIL, why, metrics)
    keys, new_key, moved = plan["keys"], plan["new_key"], plan["moved_first"]
    ops = history.snapshot("ask")

    def values(f: str) -> dict[str, object]:
        return {op.key: op.value for op in ops if op.f == f}

    during, read_back, final = values("get"), values("read back"), values("final get")
    metrics.update({"plain_client_reply": seen.get("plain get"), "ask_redirects_during": seen.get("redirects", 0),
                    "moved_keys": seen.get("complete"), "restored": seen.get("put back"),
                    "restored_owner": plan["from"]})
    expected = [f"v{i}" for i in range(ASK_KEYS)]
    problems = []
    if not str(metrics["plain_client_reply"] or "").startswith("ASK"):
        problems.append(f"plain client on the source got {metrics['plain_client_reply']}, not ASK")
    if [during.get(k) for k in keys] != expected:
        problems.append("reads during the migration returned wrong values")
    if read_back != {new_key: "during", moved[0]: "updated", keys[-1]: expected[-1]}:
        problems.append(f"writes during the migration read back as {read_back}")
    if metrics["ask_redirects_during"] < 1:
        problems.append("the source sent the cluster client no ASK (INFO errorstats)")
    if final.get(new_key) != "during" or final.get(moved[0]) != "updated" or None in final.values():
        problems.append("keys changed or vanished when the slot was moved back")
    detail = (f"slot {plan['slot']} migrated {plan['from']} -> {plan['to']} with half of its {ASK_KEYS} keys moved: "
              f"plain client got {metrics['plain_client_reply']}; cluster client read all {ASK_KEYS} and wrote "
              f"2 through {metrics['ask_redirects_during']} ASK redirect(s) (counted by the source); "
              "slot moved back, nothing left migrating")
    return CheckResult("ask", FAIL if problems else OK, "; ".join(problems) or detail, metrics)
