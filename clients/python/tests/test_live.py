"""The SDK against a live node: every route it wraps, its errors, its retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from typing import Any

import pytest
from conftest import ADMIN_KEY, SEND_KEY, USERS_KEY, Node, free_port, wait_for
from faults import DroppingProxy, HangingServer, ScriptedServer

from herald_server import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Herald,
    HeraldConnectionError,
    HeraldTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnavailableError,
)


@pytest.fixture
def herald(node: Node) -> Iterator[Herald]:
    with Herald(node.url, ADMIN_KEY, timeout=10) as client:
        yield client


def test_send_then_history_as_the_user(herald: Herald, user: str) -> None:
    sent = herald.send(
        to=[user], category="system", title="Welcome", body="hi", data={"n": 1}, tags=["billing"]
    )
    assert sent["stored"] == [{"stream": "inbox", "user": user, "seq": 1}]
    assert sent["skipped"] == []
    page = herald.history(user)
    [entry] = page["messages"]
    assert entry["id"] == sent["id"]
    assert (entry["body"], entry["title"], entry["data"], entry["state"]) == (
        "hi",
        "Welcome",
        {"n": 1},
        "unseen",
    )
    assert entry["tags"] == ["billing"]
    counts = herald.counts(user)
    assert counts["unread_total"] == 1
    assert herald.counts(user, tags=["billing"]) == {"unread": 1}
    assert herald.mark(user, "read", ids=[sent["id"]]) == {"changed": 1}
    assert herald.counts(user)["unread_total"] == 0
    inbox = herald.inbox(user, after=0)
    assert inbox["last_seq"] == 1 and [m["id"] for m in inbox["messages"]] == [sent["id"]]


def test_a_user_id_with_a_slash_is_one_path_segment(herald: Herald, user: str) -> None:
    who = f"team/{user}?x"
    herald.send(to=[who], category="system", body="escaped")
    assert [m["body"] for m in herald.history(who)["messages"]] == ["escaped"]


def test_iter_history_walks_every_page(herald: Herald, user: str) -> None:
    herald.send_batch(
        [{"to": {"users": [user]}, "category": "remind", "body": f"m{i}"} for i in range(5)]
    )
    bodies = [m["body"] for m in herald.iter_history(user, limit=2)]
    assert bodies == ["m4", "m3", "m2", "m1", "m0"]


def test_a_dropped_answer_is_retried_with_the_same_key_and_stored_once(
    node: Node, user: str
) -> None:
    with DroppingProxy(node.port, drop=1) as proxy:
        with Herald(proxy.url, ADMIN_KEY, max_retries=2, backoff=0.01) as herald:
            sent = herald.send(to=[user], category="system", body="once")
        sends = [s for s in proxy.seen if s.path == "/v1/messages"]
        assert len(sends) == 2, "the first answer was dropped, so the client sent again"
        keys = {s.json()["idempotency_key"] for s in sends}
        assert len(keys) == 1, f"each try must carry the same idempotency key, saw {keys}"
    with Herald(node.url, ADMIN_KEY) as herald:
        messages = herald.history(user)["messages"]
    assert [m["id"] for m in messages] == [sent["id"]], "stored once"


def test_a_batch_retry_reuses_each_message_key(node: Node, user: str) -> None:
    with DroppingProxy(node.port, drop=1) as proxy:
        with Herald(proxy.url, ADMIN_KEY, max_retries=1, backoff=0.01) as herald:
            herald.send_batch(
                [
                    {"to": {"users": [user]}, "category": "remind", "body": "a"},
                    {"to": {"users": [user]}, "category": "remind", "body": "b"},
                ]
            )
        first, second = (s.json()["messages"] for s in proxy.seen)
        assert [m["idempotency_key"] for m in first] == [m["idempotency_key"] for m in second]
    with Herald(node.url, ADMIN_KEY) as herald:
        assert [m["body"] for m in herald.history(user)["messages"]] == ["b", "a"]


def test_a_lost_answer_without_retries_is_an_error_and_a_retry_with_the_key_stores_nothing(
    node: Node, user: str
) -> None:
    with DroppingProxy(node.port, drop=1) as proxy:
        with Herald(proxy.url, ADMIN_KEY, max_retries=0) as herald:
            with pytest.raises(HeraldConnectionError):
                herald.send(to=[user], category="system", body="x", idempotency_key=f"k-{user}")
            # The caller's own retry, with its own key: the first outcome.
            again = herald.send(to=[user], category="system", body="x", idempotency_key=f"k-{user}")
    with Herald(node.url, ADMIN_KEY) as herald:
        assert [m["id"] for m in herald.history(user)["messages"]] == [again["id"]]


def test_an_act_is_not_retried_once_sent(node: Node, user: str) -> None:
    with Herald(node.url, ADMIN_KEY) as direct:
        sent = direct.send(
            to=[user],
            category="remind",
            body="join?",
            actions=[{"id": "accept", "label": "Accept"}],
        )
    with DroppingProxy(node.port, drop=1) as proxy:
        with Herald(proxy.url, ADMIN_KEY, max_retries=3, backoff=0.01) as herald:
            with pytest.raises(HeraldConnectionError):
                herald.act(user, sent["id"], "accept")
        assert len(proxy.seen) == 1
    with Herald(node.url, ADMIN_KEY) as direct:
        # It was recorded; a second act is the API's 409.
        with pytest.raises(ConflictError) as err:
            direct.act(user, sent["id"], "accept")
        assert err.value.code == "already_acted"
        [entry] = direct.history(user)["messages"]
        assert entry["acted"] == "accept"


def test_a_400_carries_the_api_code_and_message(herald: Herald, user: str) -> None:
    with pytest.raises(BadRequestError) as err:
        herald.send(to=[user], category="gossip", body="x")
    assert err.value.status == 400
    assert err.value.code == "invalid_field"
    assert err.value.message.startswith("category: unknown category")
    with pytest.raises(BadRequestError) as err:
        unknown_field = {"to": {"users": [user]}, "category": "remind", "body": "x", "sound": "ding"}
        herald.send_batch([unknown_field])  # type: ignore[list-item]
    assert err.value.code == "bad_request" and "messages[0]" in err.value.message
    with pytest.raises(BadRequestError) as err:
        herald.mark(user, "read")
    assert err.value.code == "invalid_field"
    with pytest.raises(BadRequestError) as err:
        herald.history(user, severity="urgent")  # type: ignore[arg-type]
    assert err.value.message.startswith("severity:")


def test_a_key_reused_for_another_message_is_a_conflict(herald: Herald, user: str) -> None:
    herald.send(to=[user], category="system", body="one", idempotency_key=f"c-{user}")
    with pytest.raises(ConflictError) as err:
        herald.send(to=[user], category="system", body="two", idempotency_key=f"c-{user}")
    assert (err.value.status, err.value.code) == (409, "conflict")


def test_a_timeout_fires_and_an_idempotent_call_tries_again() -> None:
    with HangingServer() as server:
        with Herald(server.url, ADMIN_KEY, timeout=0.5, max_retries=0) as herald:
            started = time.monotonic()
            with pytest.raises(HeraldTimeoutError):
                herald.send(to=["alice"], category="system", body="x")
            took = time.monotonic() - started
        assert 0.4 < took < 5, took
        with Herald(server.url, ADMIN_KEY, timeout=10, max_retries=1, backoff=0.01) as herald:
            started = time.monotonic()
            with pytest.raises(HeraldTimeoutError):
                herald.history("alice", timeout=0.3)
            assert time.monotonic() - started < 5, "the call's own timeout wins"
        wait_for(lambda: len(server.seen) == 3, timeout=5, what="the retried history request")
        assert [s.path for s in server.seen[1:]] == ["/v1/users/alice/messages"] * 2


def test_auth_errors(node: Node, user: str) -> None:
    with Herald(node.url, "not-a-key-of-this-node") as herald:
        with pytest.raises(AuthenticationError) as err:
            herald.send(to=[user], category="system", body="x")
        assert (err.value.status, err.value.code) == (401, "unauthorized")
    with Herald(node.url, SEND_KEY) as sender:
        sender.send(to=[user], category="system", body="x")
        with pytest.raises(PermissionDeniedError) as denied:
            sender.history(user)
        assert denied.value.status == 403
    with Herald(node.url, USERS_KEY) as reader:
        assert len(reader.history(user)["messages"]) == 1
        with pytest.raises(PermissionDeniedError):
            reader.export_user(user)
        with pytest.raises(PermissionDeniedError):
            reader.send(to=[user], category="system", body="x")


def test_429_and_503_with_retry_after_are_retried_with_the_same_key() -> None:
    stored = {"id": "01936f00-0000-7000-8000-000000000000", "stored": [], "skipped": []}
    busy = {"error": {"code": "unavailable", "message": "store unreachable"}}
    slow = {"error": {"code": "rate_limited", "message": "slow down"}}
    with ScriptedServer(
        [(503, {"retry-after": "0"}, busy), (429, {"retry-after": "0"}, slow), (202, {}, stored)]
    ) as server:
        with Herald(server.url, ADMIN_KEY, max_retries=2) as herald:
            assert herald.send(to=["alice"], category="system", body="x") == stored
        assert len({s.json()["idempotency_key"] for s in server.seen}) == 1
        assert len(server.seen) == 3
    with ScriptedServer([(429, {"retry-after": "0"}, slow)] * 2) as server:
        with Herald(server.url, ADMIN_KEY, max_retries=1) as herald:
            with pytest.raises(RateLimitError) as err:
                herald.act("alice", "01936f00-0000-7000-8000-000000000000", "accept")
        assert (err.value.code, err.value.retry_after) == ("rate_limited", 0.0)
    # A 503 without Retry-After may have stored: a non-idempotent call stops there.
    with ScriptedServer([(503, {}, busy)]) as server:
        with Herald(server.url, ADMIN_KEY, max_retries=3) as herald:
            with pytest.raises(UnavailableError) as unavailable:
                herald.act("alice", "01936f00-0000-7000-8000-000000000000", "accept")
        assert unavailable.value.code == "unavailable" and len(server.seen) == 1


def test_calls_share_one_kept_alive_connection() -> None:
    answers: list[tuple[int, dict[str, str], Any]] = [
        (200, {}, {"online_users": n}) for n in range(3)
    ]
    with ScriptedServer(answers) as server:
        with Herald(server.url, ADMIN_KEY) as herald:
            assert [herald.online()["online_users"] for _ in range(3)] == [0, 1, 2]
        assert (server.connections, len(server.seen)) == (1, 3), "one connection, no request twice"


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    acted = {"message": "01936f00-0000-7000-8000-000000000000", "acted": "accept"}
    answers: list[tuple[int, dict[str, str], Any]] = [
        (200, {}, {"online_users": 1}),
        (200, {}, acted),
    ]
    with ScriptedServer(answers, close_after_answer=True) as server:
        with Herald(server.url, ADMIN_KEY, max_retries=0) as herald:
            herald.online()
            wait_for(lambda: server.closed == 1, timeout=5, what="the server to close")
            # Not idempotent, no retries: it must go on a fresh connection.
            assert herald.act("alice", acted["message"], "accept") == acted
        assert (server.connections, len(server.seen)) == (2, 2)


def test_a_refused_connection_is_retried_then_raised() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with Herald(nobody, ADMIN_KEY, max_retries=2, backoff=0.01) as herald:
        with pytest.raises(HeraldConnectionError):
            herald.online()


def test_topics_publish_and_job(herald: Herald, user: str) -> None:
    topic = f"article:{user}"
    assert herald.subscribe(user, topic) == {"changed": True}
    assert herald.subscribe(user, topic) == {"changed": False}
    assert herald.topics(user) == {"topics": [topic]}
    page = herald.subscribers(topic)
    assert page["subscribers"] == [user] and page["total"] == 1
    published = herald.publish(topic, body="chapter 12", from_="author")
    assert published["subscribers"] == 1
    wait_for(
        lambda: herald.job(published["job"])["state"] == "done", timeout=20, what="the job to finish"
    )
    [entry] = herald.history(user)["messages"]
    assert (entry["body"], entry["category"]) == ("chapter 12", "resource_subscription")
    assert herald.unsubscribe(user, topic) == {"changed": True}
    with pytest.raises(NotFoundError) as err:
        herald.job("01936f00-0000-7000-8000-000000000000")
    assert err.value.code == "not_found"


def test_conversations_blocks_and_act(herald: Herald, user: str) -> None:
    peer = f"{user}-peer"
    herald.send(to=[user], category="mailbox", from_=peer, body="hello")
    [summary] = herald.conversations(user)["conversations"]
    assert summary["peer"] == peer and summary["unread"] == 1
    assert [m["body"] for m in herald.conversation(user, peer)["messages"]] == ["hello"]
    assert herald.mark(user, "read", peer=peer) == {"changed": 1}
    assert herald.block(user, peer) == {"changed": True}
    assert herald.blocks(user) == {"blocked": [peer]}
    with pytest.raises(PermissionDeniedError) as err:
        herald.send(to=[user], category="mailbox", from_=peer, body="again")
    assert err.value.code == "blocked"
    assert herald.unblock(user, peer) == {"changed": True}
    sent = herald.send(
        to=[user],
        category="remind",
        body="invite",
        actions=[{"id": "accept", "label": "Accept"}, {"id": "decline", "label": "Decline"}],
    )
    assert herald.act(user, sent["id"], "decline") == {"message": sent["id"], "acted": "decline"}


def test_preferences_presence_and_snooze(herald: Herald, user: str) -> None:
    prefs = herald.update_preferences(
        user,
        {
            "categories": {"remind": {"in_app": False}},
            "quiet_hours": {"tz": "Europe/Paris", "start": "22:00", "end": "07:00"},
        },
    )
    assert prefs["categories"]["remind"] == {"in_app": False, "fallback": True}
    assert herald.preferences(user) == prefs
    skipped = herald.send(to=[user], category="remind", body="muted")
    assert skipped["skipped"] == [user]
    presence = herald.presence(user)
    assert presence["online"] is False and presence["connections"] == []
    assert herald.online()["online_users"] >= 0
    sent = herald.send(to=[user], category="system", body="later")
    until = datetime.now(UTC) + timedelta(hours=1)
    assert herald.mark(user, "snoozed", ids=[sent["id"]], until=until) == {"changed": 1}
    [snoozed] = herald.history(user, snoozed=True)["messages"]
    assert snoozed["state"] == "snoozed" and snoozed["until"] == int(until.timestamp() * 1000)


def test_scheduled_send_status_and_cancel(herald: Herald, user: str) -> None:
    due = datetime.now(UTC) + timedelta(hours=1)
    scheduled = herald.send(to=[user], category="remind", body="later", deliver_at=due)
    assert scheduled["deliver_at"] == int(due.timestamp() * 1000)
    assert herald.scheduled(scheduled["scheduled"])["state"] == "pending"
    assert herald.cancel_scheduled(scheduled["scheduled"])["state"] == "cancelled"


def test_export_erase_and_dead_webhooks(herald: Herald, user: str) -> None:
    herald.send(to=[user], category="system", body="mine")
    exported = herald.export_user(user)
    assert exported["user"] == user and [m["body"] for m in exported["messages"]] == ["mine"]
    erased = herald.erase_user(user)
    assert erased["user_id"] == user and erased["erased"]["messages"] == 1
    assert herald.erase_user(user)["erased"]["messages"] == 0
    # This node has no webhooks.url: the route answers the API's 404.
    with pytest.raises(NotFoundError) as err:
        herald.dead_webhooks()
    assert err.value.code == "not_found"


def test_on_redis_a_dropped_answer_stores_once(redis_node: Node, user: str) -> None:
    with DroppingProxy(redis_node.port, drop=1) as proxy:
        with Herald(proxy.url, ADMIN_KEY, max_retries=2, backoff=0.01) as herald:
            sent = herald.send(to=[user], category="system", body="on redis")
        assert len(proxy.seen) == 2
    with Herald(redis_node.url, ADMIN_KEY) as herald:
        assert [m["id"] for m in herald.history(user)["messages"]] == [sent["id"]]
        assert herald.counts(user)["unread_total"] == 1


def test_dead_webhooks_listed_and_sent_again(webhook_node: Node, user: str) -> None:
    with Herald(webhook_node.url, ADMIN_KEY) as herald:
        sent = herald.send(to=[user], category="remind", body="unread", fallback_after_secs=1)

        def dead() -> list:
            return [e for e in herald.dead_webhooks()["events"] if e["message"] == sent["id"]]

        [event] = wait_for(dead, timeout=30, what="the event to die")
        assert event["user"] == user and event["attempts"] >= 1
        assert herald.retry_dead_webhook(event["id"]) == {"id": event["id"], "state": "pending"}
        with pytest.raises(BadRequestError):
            herald.retry_dead_webhook("not-an-id")
