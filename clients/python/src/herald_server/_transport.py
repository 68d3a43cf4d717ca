"""HTTP/1.1 on the standard library, with the retry rules of the server API.

Why not urllib or a third-party client: the package has no runtime
dependency, and the retry rules need to tell a request that surely never
reached the server (connection refused) from one that may have been
handled (the connection broke while waiting for the answer). Only
``http.client`` shows that difference.

The rules (docs/protocol.md, *Server API*):

* a connection that could not be opened: retried, whatever the call;
* a request sent whose answer never came (reset, timeout): retried only
  when the call is idempotent — a send is, because the client gives it an
  idempotency key and sends the SAME key on every try, so the node answers
  a retry with the first outcome and stores nothing twice;
* 429, and 503 with ``Retry-After``: retried, after that many seconds;
* 503 without it and any other 5xx: retried only when idempotent (a send's
  503 may have stored the message);
* anything else: raised at once.
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from .errors import (
    HeraldAPIError,
    HeraldConnectionError,
    HeraldTimeoutError,
    error_for_status,
)

#: Idle kept-alive connections held for reuse.
_MAX_IDLE = 8
#: A connection idle this long is not reused: servers close idle
#: connections (hyper after 30 s without a request), and a request written
#: into one that is closing is an answer lost — which a call that is not
#: idempotent may not retry.
_MAX_IDLE_SECS = 15.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait between tries.

    The wait before try ``n`` (1-based) is a random time up to
    ``min(max_backoff, backoff * 2**(n-1))`` ("full jitter", so many
    clients failing together do not come back together), or the server's
    ``Retry-After`` when it sent one, capped at ``max_retry_after``.
    """

    max_retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))


class _NotSent(Exception):
    """The connection could not be opened: the server saw nothing."""


class _Lost(Exception):
    """The request went out (or may have) and no answer came."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Transport:
    """One node's base URL, its credentials, a small pool of connections."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        ssl_context: ssl.SSLContext | None,
        user_agent: str,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], not {base_url!r}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._ssl = ssl_context
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self.timeout = timeout
        self.retry = retry
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    # --- connections ------------------------------------------------------

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                idle, since = self._idle.pop()
            if time.monotonic() - since < _MAX_IDLE_SECS and not _dropped(idle):
                return idle
            idle.close()
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port)

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    # --- one try ----------------------------------------------------------

    def _once(
        self, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request within ``timeout`` seconds in all (connect, send,
        wait, read): the socket's timeout is set to what is left before
        each step, so a server that trickles its answer still times out."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            return remaining

        conn = self._take()
        if conn.sock is None:
            try:
                conn.timeout = left()
                conn.connect()
            except (OSError, ssl.SSLError) as e:
                conn.close()
                raise _NotSent() from e
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            assert conn.sock is not None
            conn.sock.settimeout(left())
            conn.request(method, self._prefix + path, body=body, headers=headers)
            conn.sock.settimeout(left())
            resp = conn.getresponse()
            chunks = []
            while True:
                if conn.sock is not None:
                    conn.sock.settimeout(left())
                # read(n), not read1: only read closes the response at its
                # end, which the connection needs before its next request.
                chunk = resp.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _Lost(e) from e
        if resp.will_close or not resp.isclosed():
            conn.close()
        else:
            self._give_back(conn)
        return resp.status, resp.headers, b"".join(chunks)

    # --- the call, with its retries -----------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        idempotent: bool,
        timeout: float | None = None,
    ) -> Any:
        """Sends the request, retrying as the module doc says, and returns
        the decoded JSON answer (``None`` for an empty body)."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        per_try = self.timeout if timeout is None else timeout
        if per_try <= 0:
            raise ValueError("timeout must be positive")
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt > self.retry.max_retries
            try:
                status, headers, data = self._once(method, path, payload, per_try)
            except _NotSent as e:
                if last_try:
                    raise _connection_error(e.__cause__) from e.__cause__
                time.sleep(self.retry.delay(attempt, None))
                continue
            except _Lost as e:
                # The request may have been handled. Even a kept-alive
                # connection the server closed while it sat idle (most
                # likely nothing handled) cannot be told from a lost answer,
                # so only an idempotent call goes again (as Go's net/http).
                if last_try or not idempotent:
                    raise _connection_error(e.cause) from e.cause
                time.sleep(self.retry.delay(attempt, None))
                continue
            if 200 <= status < 300:
                return _decode(data)
            error = _api_error(status, headers, data)
            retryable = (
                status == 429
                or (status == 503 and error.retry_after is not None)
                or (status >= 500 and idempotent)
            )
            if last_try or not retryable:
                raise error
            time.sleep(self.retry.delay(attempt, error.retry_after))


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server: an idle HTTP
    connection has nothing to read, so readable means EOF (or garbage)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _connection_error(cause: BaseException | None) -> HeraldConnectionError:
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return HeraldTimeoutError(f"no answer in time: {cause}")
    return HeraldConnectionError(f"no answer: {cause!r}")


def _decode(data: bytes) -> Any:
    if not data:
        return None
    return json.loads(data)


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_error(status: int, headers: http.client.HTTPMessage, data: bytes) -> HeraldAPIError:
    body: Any = None
    code: str | None = None
    message = data[:500].decode("utf-8", "replace")
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        if isinstance(err.get("code"), str):
            code = err["code"]
        if isinstance(err.get("message"), str):
            message = err["message"]
    return error_for_status(status, code, message, body=body, retry_after=_retry_after(headers))
