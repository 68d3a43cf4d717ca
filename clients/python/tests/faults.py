"""Small local TCP servers that misbehave on purpose, for the retry cases.

* ``DroppingProxy``: forwards HTTP/1.1 requests to a real node and, for the
  first ``drop`` of them, throws the node's answer away and closes the
  client's connection: the request was handled, its answer lost — what a
  network failure after the send looks like to the client.
* ``HangingServer``: accepts, reads, never answers.
* ``ScriptedServer``: answers each request with the next canned response.

Each records the requests it saw (head and body) for the assertions.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _read_message(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) with a Content-Length body (or
    none), from ``sock`` and the bytes already in ``buf``; ``None`` at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    body = bytes(buf[end : end + length])
    del buf[: end + length]
    return head, body


def _parse(head: bytes, body: bytes) -> Seen:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Seen(method, path, headers, body)


@dataclass
class _Server:
    sock: socket.socket = field(init=False)
    seen: list[Seen] = field(default_factory=list, init=False)
    connections: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(client)
            threading.Thread(target=self._serve_guarded, args=(client,), daemon=True).start()

    def _serve_guarded(self, client: socket.socket) -> None:
        try:
            self._serve(client)
        except OSError:
            pass
        finally:
            client.close()

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def _record(self, head: bytes, body: bytes) -> Seen:
        seen = _parse(head, body)
        with self._lock:
            self.seen.append(seen)
        return seen

    def close(self) -> None:
        self._closed = True
        # shutdown wakes the accept() blocked in the other thread; close
        # alone would leave it listening.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DroppingProxy(_Server):
    def __init__(self, upstream_port: int, drop: int) -> None:
        self.upstream_port = upstream_port
        self.drop = drop
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        up_buf = bytearray()
        try:
            while True:
                request = _read_message(client, buf)
                if request is None:
                    return
                self._record(*request)
                upstream.sendall(request[0] + request[1])
                answer = _read_message(upstream, up_buf)
                if answer is None:
                    return
                with self._lock:
                    dropping = self.drop > 0
                    if dropping:
                        self.drop -= 1
                if dropping:
                    # Handled by the node; its answer never reaches the client.
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(answer[0] + answer[1])
        finally:
            upstream.close()


class HangingServer(_Server):
    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        request = _read_message(client, buf)
        if request is not None:
            self._record(*request)
        # Never answer: wait until the client gives up (EOF) or close().
        while client.recv(65536):
            pass


class ScriptedServer(_Server):
    """Answers with ``responses`` in turn: (status, headers, JSON body).
    With ``close_after_answer``, closes each connection after its first
    answer without saying so (no ``Connection: close``), as a server does
    to a kept-alive connection it deems idle."""

    def __init__(
        self,
        responses: list[tuple[int, dict[str, str], Any]],
        *,
        close_after_answer: bool = False,
    ) -> None:
        self.responses = list(responses)
        self.close_after_answer = close_after_answer
        self.closed = 0
        super().__init__()

    def _serve_guarded(self, client: socket.socket) -> None:
        super()._serve_guarded(client)
        with self._lock:
            self.closed += 1

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        while True:
            request = _read_message(client, buf)
            if request is None:
                return
            self._record(*request)
            with self._lock:
                if not self.responses:
                    return
                status, headers, body = self.responses.pop(0)
            payload = json.dumps(body).encode()
            head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            head += f"content-length: {len(payload)}\r\n"
            for name, value in headers.items():
                head += f"{name}: {value}\r\n"
            client.sendall(head.encode() + b"\r\n" + payload)
            if self.close_after_answer:
                return
