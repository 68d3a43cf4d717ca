"""The server API client: one method per route an application backend uses.

Each method builds the route's body or query, calls it through the
transport (retries and timeouts: ``_transport.py``) and returns the
decoded JSON answer, typed with the TypedDicts generated from
``docs/openapi.json`` (``models.py``): plain dicts at run time, checked by
a type checker. Arguments left ``None`` are left out of the request, so the
server applies its defaults.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, cast, overload
from urllib.parse import quote, urlencode

from . import models
from ._transport import RetryPolicy, Transport

__version__ = "0.1.0"

MarkStateName = Literal["seen", "read", "unread", "archived", "unarchived", "deleted", "snoozed"]
SeverityName = Literal["low", "normal", "high", "critical"]


def new_idempotency_key() -> str:
    """A fresh idempotency key (1–128 bytes, as the API requires)."""
    return f"py-{uuid.uuid4()}"


def _seg(value: str) -> str:
    """One path segment: a user id or topic may hold ``/``, ``?``, ``%``."""
    if not value:
        raise ValueError("a path segment (user id, topic, id) must not be empty")
    return quote(value, safe="")


def _query(params: Mapping[str, Any]) -> str:
    pairs = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(value)
        pairs.append((name, str(value)))
    return "?" + urlencode(pairs) if pairs else ""


def _rfc3339(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("expires_at: a datetime must carry its time zone")
        return value.isoformat()
    return value


def _unix_ms(value: int | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("deliver_at: a datetime must carry its time zone")
        return int(value.timestamp() * 1000)
    return value


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class Herald:
    """A Herald node's server API (docs/protocol.md, *Server API*).

    ``api_key`` is sent as ``Authorization: Bearer <key>``: a server API key
    (``api.key`` / ``api.keys``), or, for the preferences routes only, a
    user's token. ``timeout`` is each try's limit in seconds (connect, send
    and the whole answer); each method takes its own ``timeout`` too.
    ``max_retries`` tries follow the first on the failures the transport
    retries (``_transport.py``).

    Sends (``send``, ``send_batch``, ``publish``) are given an idempotency
    key when the caller passes none, and every retry of that call carries
    the same key, so a lost answer never stores a message twice. Pass your
    own key (an id of the event that caused the send) to also make a retry
    by your own code, after a crash say, store once.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_retry_after: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = f"herald-server-python/{__version__}",
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._http = Transport(
            base_url,
            api_key,
            timeout=timeout,
            retry=RetryPolicy(max_retries, backoff, max_backoff, max_retry_after),
            ssl_context=ssl_context,
            user_agent=user_agent,
        )

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._http.close()

    def __enter__(self) -> Herald:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        idempotent: bool,
        timeout: float | None,
    ) -> Any:
        return self._http.request(
            method, path, body=body, idempotent=idempotent, timeout=timeout
        )

    # --- sending ------------------------------------------------------------

    # Typed by overloads: without ``deliver_at`` the answer is always the
    # stored shape (``models.Sent``), with it the scheduled one (the
    # document's unnamed second member of ``SendView``, which the generator
    # calls ``SendView1``), so a caller needs no narrowing.
    @overload
    def send(
        self,
        *,
        to: Sequence[str] | None = None,
        to_all: bool = False,
        category: str,
        body: str,
        title: str | None = None,
        data: Mapping[str, Any] | None = None,
        from_: str | None = None,
        idempotency_key: str | None = None,
        expires_at: str | datetime | None = None,
        critical: bool | None = None,
        deliver_at: None = None,
        group_key: str | None = None,
        fallback_after_secs: int | None = None,
        actions: Sequence[models.Action] | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.Sent: ...

    @overload
    def send(
        self,
        *,
        to: Sequence[str] | None = None,
        to_all: bool = False,
        category: str,
        body: str,
        title: str | None = None,
        data: Mapping[str, Any] | None = None,
        from_: str | None = None,
        idempotency_key: str | None = None,
        expires_at: str | datetime | None = None,
        critical: bool | None = None,
        deliver_at: int | datetime,
        group_key: str | None = None,
        fallback_after_secs: int | None = None,
        actions: Sequence[models.Action] | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.SendView1: ...

    def send(
        self,
        *,
        to: Sequence[str] | None = None,
        to_all: bool = False,
        category: str,
        body: str,
        title: str | None = None,
        data: Mapping[str, Any] | None = None,
        from_: str | None = None,
        idempotency_key: str | None = None,
        expires_at: str | datetime | None = None,
        critical: bool | None = None,
        deliver_at: int | datetime | None = None,
        group_key: str | None = None,
        fallback_after_secs: int | None = None,
        actions: Sequence[models.Action] | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.SendView:
        """``POST /v1/messages``: to the users ``to``, or with ``to_all`` to
        everyone (category ``announcement``). Answers where it was stored
        (``{"id", "stored", "skipped"}``) or, with ``deliver_at`` (unix ms
        or an aware datetime), ``{"scheduled", "deliver_at"}``."""
        if (to is None) == (not to_all):
            raise ValueError("give exactly one of to=[users] and to_all=True")
        if isinstance(to, str):
            raise ValueError("to is a list of user ids, not one string")
        message = self._message(
            to={"users": list(to)} if to is not None else {"all": True},
            category=category,
            body=body,
            title=title,
            data=data,
            from_=from_,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
            critical=critical,
            deliver_at=deliver_at,
            group_key=group_key,
            fallback_after_secs=fallback_after_secs,
            actions=actions,
            tags=tags,
            severity=severity,
        )
        return cast(
            models.SendView,
            self._call("POST", "/v1/messages", body=message, idempotent=True, timeout=timeout),
        )

    @staticmethod
    def _message(**fields: Any) -> dict[str, Any]:
        fields["from"] = fields.pop("from_")
        if fields["idempotency_key"] is None:
            fields["idempotency_key"] = new_idempotency_key()
        if fields["expires_at"] is not None:
            fields["expires_at"] = _rfc3339(fields["expires_at"])
        if fields["deliver_at"] is not None:
            fields["deliver_at"] = _unix_ms(fields["deliver_at"])
        for name in ("actions", "tags"):
            if fields[name] is not None:
                fields[name] = list(fields[name])
        if fields["data"] is not None:
            fields["data"] = dict(fields["data"])
        return _compact(fields)

    def send_batch(
        self, messages: Sequence[models.SendRequest], *, timeout: float | None = None
    ) -> models.BatchResponse:
        """``POST /v1/messages/batch``: up to 1,000 messages, each as
        ``POST /v1/messages`` takes it (``models.SendRequest``), checked as a
        whole before anything is stored. A message without an
        ``idempotency_key`` is given one (a copy: your dicts are not
        changed), so a retried batch stores each message once."""
        items: list[dict[str, Any]] = []
        for message in messages:
            item = dict(message)
            if item.get("idempotency_key") is None:
                item["idempotency_key"] = new_idempotency_key()
            items.append(item)
        return cast(
            models.BatchResponse,
            self._call(
                "POST",
                "/v1/messages/batch",
                body={"messages": items},
                idempotent=True,
                timeout=timeout,
            ),
        )

    def publish(
        self,
        topic: str,
        *,
        body: str,
        title: str | None = None,
        data: Mapping[str, Any] | None = None,
        from_: str | None = None,
        category: str | None = None,
        idempotency_key: str | None = None,
        expires_at: str | datetime | None = None,
        group_key: str | None = None,
        critical: bool | None = None,
        actions: Sequence[models.Action] | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.Published:
        """``POST /v1/topics/{topic}/messages``: one inbox message for every
        subscriber of ``topic`` (a durable job; ``job`` reads its progress)."""
        request = {
            "body": body,
            "title": title,
            "data": dict(data) if data is not None else None,
            "from": from_,
            "category": category,
            "idempotency_key": idempotency_key or new_idempotency_key(),
            "expires_at": _rfc3339(expires_at) if expires_at is not None else None,
            "group_key": group_key,
            "critical": critical,
            "actions": list(actions) if actions is not None else None,
            "tags": list(tags) if tags is not None else None,
            "severity": severity,
        }
        return cast(
            models.Published,
            self._call(
                "POST",
                f"/v1/topics/{_seg(topic)}/messages",
                body=_compact(request),
                idempotent=True,
                timeout=timeout,
            ),
        )

    def job(self, job_id: str, *, timeout: float | None = None) -> models.JobStatus:
        """``GET /v1/jobs/{id}``: a publish's progress."""
        return cast(
            models.JobStatus,
            self._call("GET", f"/v1/jobs/{_seg(job_id)}", idempotent=True, timeout=timeout),
        )

    def scheduled(self, send_id: str, *, timeout: float | None = None) -> models.ScheduledStatus:
        """``GET /v1/scheduled/{id}``: a scheduled send's state."""
        return cast(
            models.ScheduledStatus,
            self._call("GET", f"/v1/scheduled/{_seg(send_id)}", idempotent=True, timeout=timeout),
        )

    def cancel_scheduled(
        self, send_id: str, *, timeout: float | None = None
    ) -> models.ScheduledStatus:
        """``DELETE /v1/scheduled/{id}``: cancels it (409 once delivered)."""
        return cast(
            models.ScheduledStatus,
            self._call(
                "DELETE", f"/v1/scheduled/{_seg(send_id)}", idempotent=True, timeout=timeout
            ),
        )

    # --- a user's inbox -----------------------------------------------------

    def history(
        self,
        user: str,
        *,
        category: str | None = None,
        state: Literal["unread", "read", "archived"] | None = None,
        before: str | None = None,
        limit: int | None = None,
        snoozed: bool | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.HistoryView:
        """``GET /v1/users/{id}/messages``: a page of the user's history,
        newest first; pass the answer's ``next`` as ``before`` for the next."""
        query = _query(
            {
                "category": category,
                "state": state,
                "before": before,
                "limit": limit,
                "snoozed": snoozed,
                "tags": list(tags) if tags is not None else None,
                "severity": severity,
            }
        )
        return cast(
            models.HistoryView,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/messages{query}", idempotent=True, timeout=timeout
            ),
        )

    def iter_history(self, user: str, **filters: Any) -> Iterator[models.HistoryEntry]:
        """Every message of the user's history, newest first, page after
        page (``filters`` as ``history`` takes them)."""
        before = filters.pop("before", None)
        while True:
            page = self.history(user, before=before, **filters)
            yield from page["messages"]
            before = page.get("next")
            if not before:
                return

    def inbox(
        self,
        user: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> models.InboxView:
        """``GET /v1/users/{id}/inbox``: the inbox stream after seq ``after``."""
        query = _query({"after": after, "limit": limit})
        return cast(
            models.InboxView,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/inbox{query}", idempotent=True, timeout=timeout
            ),
        )

    # Without a filter the answer is the ``counts`` frame's numbers, with
    # one ``{"unread": n}``: overloads tell a type checker which.
    @overload
    def counts(
        self,
        user: str,
        *,
        tags: None = None,
        severity: None = None,
        timeout: float | None = None,
    ) -> models.Counts: ...

    @overload
    def counts(
        self,
        user: str,
        *,
        tags: Sequence[str],
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.FilteredCounts: ...

    @overload
    def counts(
        self,
        user: str,
        *,
        tags: None = None,
        severity: SeverityName,
        timeout: float | None = None,
    ) -> models.FilteredCounts: ...

    def counts(
        self,
        user: str,
        *,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.CountsView:
        """``GET /v1/users/{id}/counts``: the ``counts`` frame's numbers, or
        with ``tags``/``severity`` that filter's ``{"unread": n}``."""
        query = _query({"tags": list(tags) if tags is not None else None, "severity": severity})
        return cast(
            models.CountsView,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/counts{query}", idempotent=True, timeout=timeout
            ),
        )

    def mark(
        self,
        user: str,
        state: MarkStateName,
        *,
        ids: Sequence[str] | None = None,
        up_to: models.UpTo | None = None,
        category: str | None = None,
        all: bool | None = None,
        peer: str | None = None,
        until: int | datetime | None = None,
        tags: Sequence[str] | None = None,
        severity: SeverityName | None = None,
        timeout: float | None = None,
    ) -> models.MarkResponse:
        """``POST /v1/users/{id}/mark``: ``state`` for the messages exactly one
        selector picks (``ids``, ``up_to``, ``category``, ``all``, ``peer``;
        the server checks it), narrowed by ``tags``/``severity``; ``until``
        (unix ms or an aware datetime) with ``snoozed``. Retried like a
        read: marking the same state twice changes nothing more."""
        request = {
            "state": state,
            "ids": list(ids) if ids is not None else None,
            "up_to": up_to,
            "category": category,
            "all": all,
            "peer": peer,
            "until": _unix_ms(until) if until is not None else None,
            "tags": list(tags) if tags is not None else None,
            "severity": severity,
        }
        return cast(
            models.MarkResponse,
            self._call(
                "POST",
                f"/v1/users/{_seg(user)}/mark",
                body=_compact(request),
                idempotent=True,
                timeout=timeout,
            ),
        )

    def act(
        self, user: str, message: str, action: str, *, timeout: float | None = None
    ) -> models.ActResponse:
        """``POST /v1/users/{id}/act``: presses an action button for the
        user. Not retried once sent: a retry of an act that was recorded
        would answer 409 ``already_acted``."""
        return cast(
            models.ActResponse,
            self._call(
                "POST",
                f"/v1/users/{_seg(user)}/act",
                body={"message": message, "action": action},
                idempotent=False,
                timeout=timeout,
            ),
        )

    # --- presence -------------------------------------------------------------

    def presence(self, user: str, *, timeout: float | None = None) -> models.PresenceView:
        """``GET /v1/users/{id}/presence``: the user's live connections."""
        return cast(
            models.PresenceView,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/presence", idempotent=True, timeout=timeout
            ),
        )

    def online(self, *, timeout: float | None = None) -> models.OnlineView:
        """``GET /v1/presence``: how many distinct users are connected."""
        return cast(
            models.OnlineView, self._call("GET", "/v1/presence", idempotent=True, timeout=timeout)
        )

    # --- topics -----------------------------------------------------------------

    def subscribe(
        self, user: str, topic: str, *, timeout: float | None = None
    ) -> models.SubscriptionView:
        """``PUT /v1/users/{id}/topics/{topic}`` (``changed``: false if it already was)."""
        return cast(
            models.SubscriptionView,
            self._call(
                "PUT",
                f"/v1/users/{_seg(user)}/topics/{_seg(topic)}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def unsubscribe(
        self, user: str, topic: str, *, timeout: float | None = None
    ) -> models.SubscriptionView:
        """``DELETE /v1/users/{id}/topics/{topic}``."""
        return cast(
            models.SubscriptionView,
            self._call(
                "DELETE",
                f"/v1/users/{_seg(user)}/topics/{_seg(topic)}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def topics(self, user: str, *, timeout: float | None = None) -> models.TopicsView:
        """``GET /v1/users/{id}/topics``: the user's topics, sorted."""
        return cast(
            models.TopicsView,
            self._call("GET", f"/v1/users/{_seg(user)}/topics", idempotent=True, timeout=timeout),
        )

    def subscribers(
        self,
        topic: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> models.SubscribersView:
        """``GET /v1/topics/{topic}/subscribers``: a page in user-id order."""
        query = _query({"after": after, "limit": limit})
        return cast(
            models.SubscribersView,
            self._call(
                "GET",
                f"/v1/topics/{_seg(topic)}/subscribers{query}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    # --- conversations and blocks ----------------------------------------------------

    def conversations(
        self,
        user: str,
        *,
        before: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> models.ConversationsView:
        """``GET /v1/users/{id}/conversations``: most recently active first."""
        query = _query({"before": before, "limit": limit})
        return cast(
            models.ConversationsView,
            self._call(
                "GET",
                f"/v1/users/{_seg(user)}/conversations{query}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def conversation(
        self,
        user: str,
        peer: str,
        *,
        before: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> models.ConversationView:
        """``GET /v1/users/{id}/conversations/{peer}``: both directions, newest first."""
        query = _query({"before": before, "limit": limit})
        return cast(
            models.ConversationView,
            self._call(
                "GET",
                f"/v1/users/{_seg(user)}/conversations/{_seg(peer)}{query}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def block(
        self, user: str, blocked: str, *, timeout: float | None = None
    ) -> models.SubscriptionView:
        """``PUT /v1/users/{id}/blocks/{user}``: ``user`` refuses ``blocked``'s private messages."""
        return cast(
            models.SubscriptionView,
            self._call(
                "PUT",
                f"/v1/users/{_seg(user)}/blocks/{_seg(blocked)}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def unblock(
        self, user: str, blocked: str, *, timeout: float | None = None
    ) -> models.SubscriptionView:
        """``DELETE /v1/users/{id}/blocks/{user}``."""
        return cast(
            models.SubscriptionView,
            self._call(
                "DELETE",
                f"/v1/users/{_seg(user)}/blocks/{_seg(blocked)}",
                idempotent=True,
                timeout=timeout,
            ),
        )

    def blocks(self, user: str, *, timeout: float | None = None) -> models.BlocksView:
        """``GET /v1/users/{id}/blocks``: whom the user blocked, sorted."""
        return cast(
            models.BlocksView,
            self._call("GET", f"/v1/users/{_seg(user)}/blocks", idempotent=True, timeout=timeout),
        )

    # --- preferences ------------------------------------------------------------------

    def preferences(self, user: str, *, timeout: float | None = None) -> models.Preferences:
        """``GET /v1/users/{id}/preferences``: all of them, defaults filled in."""
        return cast(
            models.Preferences,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/preferences", idempotent=True, timeout=timeout
            ),
        )

    def update_preferences(
        self, user: str, patch: models.PreferencesPatch, *, timeout: float | None = None
    ) -> models.Preferences:
        """``PATCH /v1/users/{id}/preferences``: merges ``patch`` (a topic or
        ``quiet_hours`` set to ``None`` is removed) and answers all of them.
        Idempotent: the same patch twice leaves the same preferences."""
        return cast(
            models.Preferences,
            self._call(
                "PATCH",
                f"/v1/users/{_seg(user)}/preferences",
                body=patch,
                idempotent=True,
                timeout=timeout,
            ),
        )

    # --- a user's data (admin key) ------------------------------------------------------

    def export_user(
        self, user: str, *, timeout: float | None = None
    ) -> models.ExportDocument:
        """``GET /v1/users/{id}/export``: everything Herald holds about the
        user, as one document (read whole: give a large ``timeout`` for a
        large inbox). A body the server cut short raises ``ValueError``
        (JSON) rather than answering a partial document."""
        return cast(
            models.ExportDocument,
            self._call(
                "GET", f"/v1/users/{_seg(user)}/export", idempotent=True, timeout=timeout
            ),
        )

    def erase_user(self, user: str, *, timeout: float | None = None) -> models.ErasedView:
        """``DELETE /v1/users/{id}``: erases the user's data and closes their
        connections; again, zeros."""
        return cast(
            models.ErasedView,
            self._call("DELETE", f"/v1/users/{_seg(user)}", idempotent=True, timeout=timeout),
        )

    # --- dead webhooks (admin key) --------------------------------------------------------

    def dead_webhooks(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> models.DeadPage:
        """``GET /v1/webhooks/dead``: dead fallback events in id order (404
        while the node's webhooks are off)."""
        query = _query({"after": after, "limit": limit})
        return cast(
            models.DeadPage,
            self._call("GET", f"/v1/webhooks/dead{query}", idempotent=True, timeout=timeout),
        )

    def retry_dead_webhook(self, event_id: str, *, timeout: float | None = None) -> models.RetryView:
        """``POST /v1/webhooks/dead/{id}/retry``: sends a dead event again.
        Not retried once sent (a second try would answer 409)."""
        return cast(
            models.RetryView,
            self._call(
                "POST",
                f"/v1/webhooks/dead/{_seg(event_id)}/retry",
                idempotent=False,
                timeout=timeout,
            ),
        )
