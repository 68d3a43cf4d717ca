"""Every server API operation of docs/openapi.json has a method, and each
method sends its operation's HTTP method, path and only its declared query
parameters (a route added to the document without a method fails here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import ADMIN_KEY
from faults import ScriptedServer

from herald_server import Herald

SPEC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"

#: Operations an application backend does not call: the load balancer's
#: probes, and a user's own requests (the browser SDK's, with a user token).
NOT_WRAPPED = {"healthz", "readyz", "requests"}

ID = "01936f00-0000-7000-8000-000000000000"

#: operationId -> a call of its method with every optional argument given.
CALLS: dict[str, Callable[[Herald], Any]] = {
    "post_messages": lambda h: h.send(
        to=["u"], category="remind", body="b", title="t", data={}, from_="f",
        expires_at="2030-01-01T00:00:00Z", critical=True, group_key="g",
        fallback_after_secs=5, actions=[{"id": "a", "label": "A"}], tags=["x"], severity="high",
    ),
    "post_batch": lambda h: h.send_batch([{"to": {"users": ["u"]}, "category": "c", "body": "b"}]),
    "publish": lambda h: h.publish("topic:1", body="b", title="t", category="c", from_="f"),
    "job": lambda h: h.job(ID),
    "scheduled": lambda h: h.scheduled(ID),
    "cancel_scheduled": lambda h: h.cancel_scheduled(ID),
    "history": lambda h: h.history(
        "u", category="c", state="read", before="x", limit=1, snoozed=True, tags=["t"],
        severity="low",
    ),
    "inbox": lambda h: h.inbox("u", after=1, limit=2),
    "counts": lambda h: h.counts("u", tags=["t"], severity="low"),
    "mark": lambda h: h.mark("u", "snoozed", all=True, until=1, tags=["t"], severity="low"),
    "act": lambda h: h.act("u", ID, "a"),
    "user_presence": lambda h: h.presence("u"),
    "online": lambda h: h.online(),
    "subscribe": lambda h: h.subscribe("u", "topic:1"),
    "unsubscribe": lambda h: h.unsubscribe("u", "topic:1"),
    "user_topics": lambda h: h.topics("u"),
    "topic_subscribers": lambda h: h.subscribers("topic:1", after="a", limit=3),
    "conversations": lambda h: h.conversations("u", before="x", limit=1),
    "conversation": lambda h: h.conversation("u", "p", before="x", limit=1),
    "block": lambda h: h.block("u", "p"),
    "unblock": lambda h: h.unblock("u", "p"),
    "blocks": lambda h: h.blocks("u"),
    "get_preferences": lambda h: h.preferences("u"),
    "patch_preferences": lambda h: h.update_preferences("u", {"quiet_hours": None}),
    "export_user": lambda h: h.export_user("u"),
    "erase_user": lambda h: h.erase_user("u"),
    "dead": lambda h: h.dead_webhooks(after=ID, limit=5),
    "retry_dead": lambda h: h.retry_dead_webhook(ID),
}


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    spec = json.loads(SPEC.read_text())
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (method.upper(), path, op)
    return found


def test_every_operation_has_a_method() -> None:
    ops = set(operations()) - NOT_WRAPPED
    assert ops - set(CALLS) == set(), "operations of docs/openapi.json without a method"
    assert set(CALLS) - ops == set(), "methods of operations the document no longer has"


def test_each_method_sends_its_operation() -> None:
    ops = operations()
    answers: list[tuple[int, dict[str, str], Any]] = [(200, {}, {})] * len(CALLS)
    with ScriptedServer(answers) as server, Herald(server.url, ADMIN_KEY, max_retries=0) as h:
        for op_id, call in CALLS.items():
            call(h)
            seen = server.seen[-1]
            method, template, op = ops[op_id]
            url = urlsplit(seen.path)
            pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
            assert (seen.method, bool(re.fullmatch(pattern, url.path))) == (method, True), (
                op_id, seen.method, seen.path, method, template,
            )
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            sent = set(parse_qs(url.query))
            assert sent <= declared, (op_id, sent - declared)
            assert bool(seen.body) == ("requestBody" in op), (op_id, seen.body)
