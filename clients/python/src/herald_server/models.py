# Generated from docs/openapi.json by clients/python/generate_models.py
# (datamodel-code-generator). Do not edit: run that script instead.
#
# TypedDicts: the API's JSON objects as plain dicts, typed for a checker;
# NotRequired marks a field the server may leave out.

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypeAlias, TypedDict


class ActRequest(TypedDict):
    message: str
    """
    The message's id.
    """
    action: str
    """
    The id of one of its action buttons.
    """


class ActResponse(TypedDict):
    message: str
    acted: str


class Action(TypedDict):
    """
    One action button of a message: `id` is what an `act` names (unique in
    the message), `label` what the button says, `url` where a client may
    take the user after acting (http or https only).
    """

    id: str
    label: str
    url: NotRequired[str | None]


class BlocksView(TypedDict):
    blocked: list[str]


Category: TypeAlias = str
"""
A kind of site message, by name. The six of the original design (站内消息)
are built in; operators may configure more (the gateway checks a name
against its configured categories, this type only checks its syntax).
"""


class Channels(TypedDict):
    """
    Whether messages of one category or topic reach the user in the app
    (`in_app: false`: not stored for them at all) and by the fallback.
    """

    in_app: bool
    fallback: bool


class ChannelsPatch(TypedDict):
    """
    One category's or topic's change: only the flags given change.
    """

    in_app: NotRequired[bool | None]
    fallback: NotRequired[bool | None]


class ConnInfo(TypedDict):
    """
    One live WebSocket connection, as presence records it.
    """

    conn_id: str
    user_id: str
    node_id: str
    device: str
    connected_at: str


class DeadView(TypedDict):
    """
    One dead event as the list shows it.
    """

    id: str
    user: str
    message: str
    created_at: NotRequired[int | None]
    """
    Unix ms.
    """
    dead_at: NotRequired[int | None]
    attempts: int
    last_error: NotRequired[str | None]
    event: Any
    """
    The body every try POSTed.
    """


class Erased(TypedDict):
    """
    What an erasure erased, by kind (`DELETE /v1/users/{id}`'s answer).
    """

    messages: int
    """
    Inbox messages.
    """
    conversations: int
    """
    Conversations of the user's list (each peer keeps their side).
    """
    cursors: int
    """
    Device cursors.
    """
    topics: int
    """
    Topic subscriptions.
    """
    blocked: int
    """
    Users the user had blocked.
    """
    preferences: int
    """
    Preference settings (a category's, a topic's, the quiet hours).
    """
    scheduled: int
    """
    Scheduled sends addressed to the user (the user taken off their
    receivers; a send to them alone cancelled).
    """
    webhooks: int
    """
    Webhook events of the user's messages, in any state.
    """
    connections: int
    """
    Live connections presence listed when the erasure began (closed
    with 4003, out of presence).
    """


class ErasedView(TypedDict):
    """
    What `DELETE /v1/users/{id}` answers.
    """

    user_id: str
    erased: Erased
    """
    What was erased, by kind (all 0 when there was nothing left).
    """


ErrorCode: TypeAlias = Literal[
    'bad_request',
    'unknown_type',
    'invalid_field',
    'unavailable',
    'unauthorized',
    'internal',
    'conflict',
    'blocked',
    'not_found',
    'rate_limited',
    'already_acted',
]
"""
Machine-readable error codes, in replies and in HTTP error bodies.
"""


class ExportConversation(TypedDict):
    peer: str
    last_activity_us: int
    """
    Unix µs.
    """


ExportState: TypeAlias = Literal[
    'unseen', 'seen', 'read', 'archived', 'snoozed', 'deleted', 'expired'
]
"""
Where an inbox message stands for the user: the public states, and
the two that only the export shows (a deleted or expired message is
kept until it is trimmed, and the export holds everything).
"""


class FilteredCounts(TypedDict):
    """
    With a filter, the `counts` request's answer: its unread messages.
    """

    unread: int


JobState: TypeAlias = Literal['queued', 'running', 'done', 'failed']


class JobStatus(TypedDict):
    """
    What `GET /v1/jobs/{id}` answers.
    """

    id: str
    topic: str
    state: JobState
    total: int
    """
    Receivers in the snapshot.
    """
    done: int
    """
    Receivers whose message is stored (the snapshot's first `done`).
    """


class MarkResponse(TypedDict):
    changed: int
    """
    How many messages really changed state.
    """


MarkState: TypeAlias = Literal[
    'seen', 'read', 'unread', 'archived', 'unarchived', 'deleted', 'snoozed'
]
"""
What a `mark` does to each message it selects.
"""


MessageState: TypeAlias = Literal['unseen', 'seen', 'read', 'archived', 'snoozed']
"""
A message's read state as history shows it.
"""


class OnlineView(TypedDict):
    online_users: int


class PresenceView(TypedDict):
    user_id: str
    online: bool
    connections: list[ConnInfo]


PublishRequest = TypedDict(
    'PublishRequest',
    {
        'category': NotRequired[str | None],
        'title': NotRequired[str | None],
        'body': str,
        'data': NotRequired[Any],
        'from': NotRequired[str | None],
        'idempotency_key': NotRequired[str | None],
        'expires_at': NotRequired[str | None],
        'group_key': NotRequired[str | None],
        'critical': NotRequired[bool],
        'actions': NotRequired[list[Action]],
        'tags': NotRequired[list[str] | None],
        'severity': NotRequired[str | None],
    },
)


class Published(TypedDict):
    """
    The 202 answer of a publish.
    """

    job: str
    subscribers: int
    """
    Receivers in the job's snapshot.
    """


class QuietHours(TypedDict):
    """
    A daily window, in the user's zone, in which live messages carry
    `"silent": true`. `start` and `end` are `HH:MM`; the window may cross
    midnight (`22:00`–`07:00`); `start == end` is an empty window.
    """

    tz: str
    """
    An IANA zone, e.g. `Europe/Paris`.
    """
    start: str
    end: str


ReceiptState: TypeAlias = Literal['sent', 'delivered', 'read']
"""
How far a private message got with its receiver.
"""


class Recipients(TypedDict):
    """
    Exactly one of `users` (each receiver's inbox) or `all: true` (the
    shared `all` stream, category `announcement` only).
    """

    users: NotRequired[list[str] | None]
    all: NotRequired[bool | None]


ReplyType: TypeAlias = Literal['reply']
"""
Always `reply`.
"""


class RetryView(TypedDict):
    id: str
    state: str


Rid: TypeAlias = int | str
"""
A request id chosen by the client; echoed in the one reply to that request.
"""


ScheduleState: TypeAlias = Literal['pending', 'delivered', 'cancelled']
"""
Where a scheduled send stands (`GET /v1/scheduled/{id}`).
"""


class ScheduledStatus(TypedDict):
    """
    What `GET /v1/scheduled/{id}` answers.
    """

    id: str
    state: ScheduleState
    deliver_at: int


SendRequest = TypedDict(
    'SendRequest',
    {
        'to': Recipients,
        'category': str,
        'title': NotRequired[str | None],
        'body': str,
        'data': NotRequired[Any],
        'from': NotRequired[str | None],
        'idempotency_key': NotRequired[str | None],
        'expires_at': NotRequired[str | None],
        'critical': NotRequired[bool],
        'deliver_at': NotRequired[int | None],
        'group_key': NotRequired[str | None],
        'fallback_after_secs': NotRequired[int | None],
        'actions': NotRequired[list[Action]],
        'tags': NotRequired[list[str] | None],
        'severity': NotRequired[str | None],
    },
)


class SendView1(TypedDict):
    """
    One send's answer: where it was stored, or, scheduled, its id and due
    time (`{"scheduled": id, "deliver_at": ms}`).
    """

    scheduled: str
    """
    The scheduled send's id (`GET /v1/scheduled/{id}`).
    """
    deliver_at: int
    """
    When it is due, unix ms.
    """


Severity: TypeAlias = Literal['low', 'normal', 'high', 'critical']
"""
How urgent a message is. `normal` unless the sender said otherwise;
the `counts` frame's `unread_by_severity` has one number for each.
"""


StateFilter: TypeAlias = Literal['unread', 'read', 'archived']
"""
Which messages a history page lists (default: everything not archived).
"""


Stream: TypeAlias = Literal['inbox', 'all']
"""
Which ordered stream a message belongs to.

Each user has an `inbox` with its own gap-free seq; messages sent to
everyone live once in the shared `all` stream, which has a seq of its own.
A client keeps one cursor per stream.
"""


class SubscribersView(TypedDict):
    topic: str
    subscribers: list[str]
    """
    Subscribers in user-id byte order.
    """
    next: NotRequired[str | None]
    """
    Pass as `after` for the next page; `null` at the end.
    """
    total: int
    """
    Subscribers in all.
    """


class SubscriptionView(TypedDict):
    changed: bool
    """
    Whether this call changed anything (false: it was already so).
    """


class TopicsView(TypedDict):
    topics: list[str]


class UnreadBySeverity(TypedDict):
    """
    The unread messages of each severity, zeros included.
    """

    low: int
    normal: int
    high: int
    critical: int


class UpTo(TypedDict):
    """
    Every message of `stream` with a seq up to `seq`.
    """

    stream: Stream
    seq: int


WebhookState: TypeAlias = Literal['armed', 'pending', 'delivered', 'dropped', 'dead']
"""
Where an event stands.
"""


class BatchRequest(TypedDict):
    messages: list[SendRequest]
    """
    1 to 1,000 messages, each as `POST /v1/messages` takes it.
    """


class ClientFrame1(TypedDict):
    """
    Send everything after `since` in the inbox (and after `since_all` in
    the `all` stream when given), in order, then continue live.
    `since_id` / `since_all_id`: the id of the message the client has at
    that seq, so the server can tell that its stream went back (see
    [`ServerFrame::Reset`]) even when new messages already passed it.
    """

    rid: Rid
    since: int
    since_all: NotRequired[int | None]
    since_id: NotRequired[str | None]
    since_all_id: NotRequired[str | None]
    type: Literal['sync']


class ClientFrame2(TypedDict):
    """
    Everything up to `seq` of `stream` was delivered on this device.
    """

    seq: int
    stream: NotRequired[Stream]
    type: Literal['ack']


class ClientFrame3(TypedDict):
    """
    A private message (category `mailbox`) to another user.
    """

    rid: Rid
    to: str
    body: str
    title: NotRequired[str | None]
    data: NotRequired[Any]
    key: NotRequired[str | None]
    """
    Idempotency key: a retry with the same key gets the first reply.
    """
    expires_at: NotRequired[str | None]
    """
    After this the message is not pushed, listed or counted.
    """
    group_key: NotRequired[str | None]
    """
    Collapse group: replaces the receiver's unread message with the
    same key (1–128 characters).
    """
    tags: NotRequired[list[str] | None]
    """
    Labels (≤ 10, each ≤ 64 bytes of `[a-z0-9:_.-]`).
    """
    severity: NotRequired[str | None]
    """
    `low`, `normal` (the default), `high` or `critical`.
    """
    type: Literal['send']


class ClientFrame4(TypedDict):
    """
    An application-level ping; answered with an `ok` reply.
    """

    rid: Rid
    type: Literal['ping']


class ClientFrame6(TypedDict):
    """
    Subscribes this user to a topic (`article:42`; following a user is
    `user:<id>`).
    """

    rid: Rid
    topic: str
    type: Literal['subscribe']


class ClientFrame7(TypedDict):
    """
    Frames a client sends. A field a frame does not know is refused
    (`bad_request` naming it), never ignored.
    """

    rid: Rid
    topic: str
    type: Literal['unsubscribe']


class ClientFrame8(TypedDict):
    """
    The user's topics.
    """

    rid: Rid
    type: Literal['topics']


class ClientFrame9(TypedDict):
    """
    Refuses private messages from `user` from now on (the blocked user
    only ever sees the error `blocked`).
    """

    rid: Rid
    user: str
    type: Literal['block']


class ClientFrame10(TypedDict):
    """
    Frames a client sends. A field a frame does not know is refused
    (`bad_request` naming it), never ignored.
    """

    rid: Rid
    user: str
    type: Literal['unblock']


class ClientFrame11(TypedDict):
    """
    The user's private conversations, the most recently active first.
    """

    rid: Rid
    before: NotRequired[str | None]
    limit: NotRequired[int | None]
    type: Literal['conversations']


class ClientFrame12(TypedDict):
    """
    A page of the private messages between the user and `peer`, both
    directions, newest first.
    """

    rid: Rid
    peer: str
    before: NotRequired[str | None]
    limit: NotRequired[int | None]
    type: Literal['conversation']


class ClientFrame13(TypedDict):
    """
    The user's preferences (the reply's `preferences`).
    """

    rid: Rid
    type: Literal['preferences']


class ClientFrame15(TypedDict):
    """
    A page of the user's history, newest first.
    """

    rid: Rid
    category: NotRequired[str | None]
    state: NotRequired[StateFilter | None]
    before: NotRequired[str | None]
    limit: NotRequired[int | None]
    snoozed: NotRequired[bool | None]
    """
    `true`: the snoozed messages only (left out otherwise).
    """
    tags: NotRequired[list[str] | None]
    """
    Only messages with any of these tags.
    """
    severity: NotRequired[str | None]
    """
    Only messages of this severity.
    """
    type: Literal['history']


class ClientFrame16(TypedDict):
    """
    The unread count of the messages with any of `tags` and/or of
    `severity` (the reply's `unread`): a request, never pushed.
    """

    rid: Rid
    tags: NotRequired[list[str] | None]
    severity: NotRequired[str | None]
    type: Literal['counts']


class ClientFrame17(TypedDict):
    """
    Presses the action button `action` of the message `message`: the
    message is marked read and every tab gets a `changed` frame
    (`acted`). Only the first act on a message counts; another gets
    the error `already_acted`.
    """

    rid: Rid
    message: str
    action: str
    type: Literal['act']


class Counts(TypedDict):
    """
    The user's unread numbers: a badge per category and the totals.
    """

    unread: dict[str, int]
    """
    Every category, zeros included.
    """
    unread_total: int
    unseen_total: int
    unread_by_severity: NotRequired[UnreadBySeverity]
    """
    `unread_total` by the messages' severity (the four add up to it).
    """


CountsView: TypeAlias = Counts | FilteredCounts
"""
What `GET /v1/users/{id}/counts` answers: every number without a
filter, the filter's unread number with one.
"""


class DeadPage(TypedDict):
    events: list[DeadView]
    next: NotRequired[str | None]
    """
    `after` for the next page; absent on the last.
    """


class ErrorBody(TypedDict):
    code: ErrorCode
    message: str


class ErrorResponse(TypedDict):
    """
    The body of every HTTP error: `{"error":{"code","message"}}`. Named
    `ErrorResponse` in the OpenAPI document.
    """

    error: ErrorBody


JobMessage = TypedDict(
    'JobMessage',
    {
        'category': Category,
        'severity': NotRequired[Severity],
        'tags': NotRequired[list[str]],
        'from': NotRequired[str | None],
        'title': NotRequired[str | None],
        'body': str,
        'data': Any,
        'ts': str,
        'expires_at': NotRequired[str | None],
        'group_key': NotRequired[str | None],
        'critical': NotRequired[bool],
        'in_app_default': NotRequired[bool],
        'fallback_after_secs': NotRequired[int | None],
        'actions': NotRequired[list[Action]],
    },
)


class MarkRequest(TypedDict):
    """
    A mark: `state` and exactly one selector (`ids`, `up_to`,
    `category`, `all` or `peer`).
    """

    state: MarkState
    ids: NotRequired[list[str] | None]
    up_to: NotRequired[UpTo | None]
    category: NotRequired[str | None]
    all: NotRequired[bool | None]
    peer: NotRequired[str | None]
    until: NotRequired[int | None]
    """
    With state `snoozed`: when the messages come back, unix ms.
    """
    tags: NotRequired[list[str] | None]
    """
    Only the selected messages with any of these tags.
    """
    severity: NotRequired[str | None]
    """
    Only the selected messages of this severity.
    """


class MarkSelector(TypedDict):
    """
    Which messages a `mark` applies to. Exactly one field is set; the
    server checks that.
    """

    ids: NotRequired[list[str] | None]
    up_to: NotRequired[UpTo | None]
    category: NotRequired[str | None]
    all: NotRequired[bool | None]
    peer: NotRequired[str | None]
    """
    Every private message this peer sent the user (a conversation).
    """


Message = TypedDict(
    'Message',
    {
        'seq': int,
        'stream': Stream,
        'id': str,
        'category': Category,
        'severity': NotRequired[Severity],
        'tags': NotRequired[list[str]],
        'from': NotRequired[str | None],
        'title': NotRequired[str | None],
        'body': str,
        'data': NotRequired[Any],
        'ts': str,
        'expires_at': NotRequired[str | None],
        'group_key': NotRequired[str | None],
        'collapsed': NotRequired[int | None],
        'replaces': NotRequired[str | None],
        'critical': NotRequired[bool],
        'silent': NotRequired[bool],
        'actions': NotRequired[list[Action]],
        'acted': NotRequired[str | None],
    },
)


class Preferences(TypedDict):
    """
    A user's preferences as the server shows them: every configured
    category (the operator's defaults where the user set nothing), the
    topics the user set, the quiet hours.
    """

    categories: dict[str, Channels]
    topics: dict[str, Channels]
    quiet_hours: NotRequired[QuietHours | None]


class PreferencesPatch(TypedDict):
    """
    What a `PATCH` or `set_preferences` carries: only what changes. A topic
    set to `null` is forgotten (back to the defaults); `quiet_hours: null`
    removes the quiet hours, and its absence leaves them as they are.
    """

    categories: NotRequired[dict[str, ChannelsPatch]]
    topics: NotRequired[dict[str, ChannelsPatch | None]]
    """
    By topic: the flags that change, or `null` to forget the topic (back to the defaults).
    """
    quiet_hours: NotRequired[QuietHours | None]


class StoredAt(TypedDict):
    """
    Where one message was stored.
    """

    stream: Stream
    user: NotRequired[str | None]
    seq: int


class WebhookEvent(TypedDict):
    """
    One event: a message of one receiver that may go unread.
    """

    id: str
    """
    The `webhook-id` (see [`event_id`]): the same on every try.
    """
    state: WebhookState
    user: str
    """
    The receiver, or [`EVERYONE`].
    """
    message: str
    """
    The message's id in the user's inbox (or the `all` stream).
    """
    stored_at: int
    """
    When the message was stored (unix ms).
    """
    next_at: NotRequired[int | None]
    """
    When the index takes it next (unix ms): its due time, a retry's, the
    end of its claim's lease; `None` once it ended.
    """
    topic: NotRequired[str | None]
    """
    The topic it was published to, whose `fallback` setting counts too.
    """
    created_at: NotRequired[int | None]
    """
    When it was created (unix ms; its retries end a while after).
    """
    body: NotRequired[str | None]
    """
    The JSON body every try POSTs, fixed at creation.
    """
    attempts: NotRequired[int]
    """
    Tries made.
    """
    postponed: NotRequired[int]
    """
    Tries not made because this node's circuit breaker was open: each
    moved the next try on its schedule, as a failed try would, with no
    request sent (see [`Webhooks`](crate::Webhooks)).
    """
    last_error: NotRequired[str | None]
    """
    What the last failed try got (a status, a timeout, …).
    """
    dead_at: NotRequired[int | None]
    """
    When it died (unix ms).
    """
    action: NotRequired[str | None]
    """
    A `message.action` event: the action the user took (absent: a
    `message.unread` event).
    """
    stream: NotRequired[Stream]
    """
    Where the message is: the receiver's inbox, or `all` (an
    announcement).
    """
    cursor: NotRequired[str | None]
    """
    An [`EVERYONE`] event's place in the audience: the users after it
    are still to be armed.
    """


class ClientFrame5(MarkSelector):
    """
    Changes the read state of the messages picked by exactly one
    selector (`ids`, `up_to`, `category` or `all`).
    """

    rid: Rid
    state: MarkState
    until: NotRequired[int | None]
    """
    With `snoozed` (and only then): when the messages come back
    unread, unix ms.
    """
    tags: NotRequired[list[str] | None]
    """
    Only the selected messages with any of these tags.
    """
    severity: NotRequired[str | None]
    """
    Only the selected messages of this severity.
    """
    type: Literal['mark']


class ClientFrame14(TypedDict):
    """
    Changes some of the user's preferences (merged into them); the
    reply has them all, and every connection of the user gets a
    `preferences` frame.
    """

    rid: Rid
    preferences: PreferencesPatch
    type: Literal['set_preferences']


ClientFrame: TypeAlias = (
    ClientFrame1
    | ClientFrame2
    | ClientFrame3
    | ClientFrame4
    | ClientFrame5
    | ClientFrame6
    | ClientFrame7
    | ClientFrame8
    | ClientFrame9
    | ClientFrame10
    | ClientFrame11
    | ClientFrame12
    | ClientFrame13
    | ClientFrame14
    | ClientFrame15
    | ClientFrame16
    | ClientFrame17
)
"""
Frames a client sends. A field a frame does not know is refused
(`bad_request` naming it), never ignored.
"""


class ExportEntry(Message):
    """
    One inbox message with the user's state of it.
    """

    state: ExportState
    until: NotRequired[int | None]
    """
    A snoozed message: when it comes back (unix ms).
    """


class ExportScheduled(TypedDict):
    """
    A scheduled send as the export shows it: without its other receivers.
    """

    id: str
    deliver_at: int
    """
    Unix ms.
    """
    message: JobMessage


class HistoryEntry(Message):
    """
    One message of a history page, with its state for this user.
    """

    state: MessageState
    receipt: NotRequired[ReceiptState | None]
    until: NotRequired[int | None]
    """
    A snoozed message: when it comes back (unix ms).
    """


class HistoryView(TypedDict):
    messages: list[HistoryEntry]
    next: NotRequired[str | None]


class InboxView(TypedDict):
    user_id: str
    last_seq: int
    messages: list[Message]


class Sent(TypedDict):
    """
    The outcome of storing one message, or of scheduling it.
    """

    id: str
    stored: list[StoredAt]
    """
    Empty for a scheduled message (nothing is stored yet).
    """
    deliver_at: NotRequired[int | None]
    """
    Set when the message was scheduled rather than stored: when it is
    due (unix ms).
    """
    skipped: NotRequired[list[str]]
    """
    The receivers whose preferences kept it out (`in_app: false` for
    its category or topic): nothing stored for them.
    """


class ConversationSummary(TypedDict):
    """
    One conversation in a `conversations` reply.
    """

    peer: str
    last: HistoryEntry
    """
    The newest message, either direction (with its `receipt` if the
    user sent it).
    """
    unread: int
    """
    Messages from the peer the user has not read.
    """


class ConversationView(TypedDict):
    messages: list[HistoryEntry]
    next: NotRequired[str | None]


class ConversationsView(TypedDict):
    conversations: list[ConversationSummary]
    next: NotRequired[str | None]


class ExportHead(TypedDict):
    """
    The export but its inbox: what the first chunk holds.
    """

    user: str
    preferences: Preferences
    """
    As `GET /v1/users/{id}/preferences` shows them.
    """
    topics: list[str]
    blocked: list[str]
    conversations: list[ExportConversation]
    """
    The user's side of their conversations, most recent first.
    """
    delivered: int
    """
    The highest inbox seq a device of theirs acknowledged.
    """
    scheduled: list[ExportScheduled]
    """
    Pending sends addressed to the user.
    """
    webhooks: list[WebhookEvent]
    """
    Webhook events of their messages, in any state.
    """


class Reply(TypedDict):
    """
    The one answer to a request carrying a `rid`.
    """

    rid: NotRequired[Rid | None]
    ok: bool
    error: NotRequired[ErrorBody | None]
    id: NotRequired[str | None]
    """
    `send`: the id of the stored message.
    """
    seq: NotRequired[int | None]
    """
    `send`: the seq the message got in the receiver's inbox.
    """
    skipped: NotRequired[bool | None]
    """
    `send`: the receiver's preferences kept the message out (nothing
    stored; `seq` absent). The sender learns no more than a block would
    tell.
    """
    last_seq: NotRequired[int | None]
    """
    `sync`: the inbox seq up to which everything has now been sent.
    """
    last_all_seq: NotRequired[int | None]
    """
    `sync`: the same for the `all` stream.
    """
    changed: NotRequired[int | None]
    """
    `mark`: how many messages really changed state.
    """
    unread: NotRequired[int | None]
    """
    `counts`: the unread messages matching its filter.
    """
    messages: NotRequired[list[HistoryEntry] | None]
    """
    `history`, `conversation`: the page, newest first.
    """
    conversations: NotRequired[list[ConversationSummary] | None]
    """
    `conversations`: the page, the most recently active first.
    """
    preferences: NotRequired[Preferences | None]
    topics: NotRequired[list[str] | None]
    """
    `topics`: the user's topics, sorted.
    """
    next: NotRequired[str | None]
    """
    `history`, `conversations`, `conversation`: the cursor of the next
    (older) page; `null` at the end.
    """


class ReplyFrame(Reply):
    """
    The `reply` frame, as the WebSocket would send it. Only the OpenAPI
    document names it: the handler writes `ServerFrame::Reply`, which
    serializes to this.
    """

    type: ReplyType


SendView: TypeAlias = Sent | SendView1
"""
One send's answer: where it was stored, or, scheduled, its id and due
time (`{"scheduled": id, "deliver_at": ms}`).
"""


class BatchResponse(TypedDict):
    results: list[SendView]
    """
    One entry per message, in request order.
    """


class ExportDocument(ExportHead):
    """
    Everything Herald holds about a user, as `GET /v1/users/{id}/export`
    answers it. (Only its OpenAPI schema is made from this type: the
    export writes the document in chunks, the head and then the messages
    a page at a time, and never builds it whole.)
    """

    messages: list[ExportEntry]
    """
    The inbox, oldest first.
    """
