"""Live Herald nodes for the SDK's tests.

``HERALD_BIN`` names the ``herald`` binary (scripts/test-sdk-python.sh
builds it: ``target/debug/herald``). Each node runs with its own settings
file on a free port; its log goes to ``HERALD_SDK_ARTIFACTS`` (default: a
temporary folder), which the script prints on a failure. Waits are on
conditions (``/healthz`` answering, a port accepting) with a deadline,
never a fixed sleep.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]

ADMIN_KEY = "sdk-admin-key-0123456789abcdef"
SEND_KEY = "sdk-send-key-0123456789abcdef"
USERS_KEY = "sdk-users-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(Exception):
    """Raised by a check when waiting longer is pointless (the process died)."""


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Polls ``check`` until it returns something truthy, or fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - kept for the failure message
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(0.05)


def herald_bin() -> str:
    path = os.environ.get("HERALD_BIN") or str(ROOT / "target" / "debug" / "herald")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"no herald binary at {path}: build it (cargo build -p herald-gateway) or set HERALD_BIN"
        )
    return path


def artifacts() -> Path:
    path = Path(os.environ.get("HERALD_SDK_ARTIFACTS") or tempfile.mkdtemp(prefix="herald-sdk-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
    log = artifacts() / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    return Proc(name, popen, log)


@dataclass
class Node:
    url: str
    port: int
    proc: Proc


def start_node(name: str, settings: str) -> Node:
    """A ``herald serve`` with ``settings`` (TOML) and the three test keys."""
    port = free_port()
    config = artifacts() / f"{name}.toml"
    config.write_text(
        f"""{settings}
[server]
listen = "127.0.0.1:{port}"

[auth]
jwt_secret = "sdk-test-secret"

# The test machine is shared with builds: its lag is no reason to shed.
[admission]
enabled = false

[api]
key = "{ADMIN_KEY}"

[[api.keys]]
name = "sender"
key = "{SEND_KEY}"
scopes = ["send"]

[[api.keys]]
name = "reader"
key = "{USERS_KEY}"
scopes = ["users"]
"""
    )
    proc = spawn(name, [herald_bin(), "--config", str(config), "serve"], {"RUST_LOG": "info"})
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.popen.poll() is not None:
            raise Fatal(f"{name} exited ({proc.popen.returncode}); see {proc.log}")
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
            return r.status == 200

    try:
        # A debug build's first start on a loaded machine is slow.
        wait_for(healthy, timeout=60, what=f"{name} /healthz")
    except BaseException:
        proc.stop()
        raise
    return Node(url, port, proc)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    """One node on the memory backend, for most cases."""
    n = start_node("herald-memory", 'backend = "memory"')
    yield n
    n.proc.stop()


@pytest.fixture(scope="session")
def webhook_node() -> Iterator[Node]:
    """A memory node whose fallback webhooks go to a port nobody listens
    on and give up after a second: its events die at once, for the
    dead-letter routes."""
    nowhere = free_port()
    n = start_node(
        "herald-webhooks",
        f"""backend = "memory"

[webhooks]
url = "http://127.0.0.1:{nowhere}/hook"
secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
timeout_ms = 1000
lease_ms = 3000
poll_ms = 50
retry_base_ms = 100
retry_cap_secs = 1
give_up_after_secs = 1
""",
    )
    yield n
    n.proc.stop()


@pytest.fixture(scope="session")
def redis_node() -> Iterator[Node]:
    """One node on a private redis-server on a free port (never 6379)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (scripts/ensure-redis.sh installs it)")
    port = free_port()
    redis = spawn(
        "redis",
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )

    def accepting() -> bool:
        if redis.popen.poll() is not None:
            raise Fatal(f"redis-server exited; see {redis.log}")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        wait_for(accepting, timeout=20, what=f"redis-server on {port}")
        n = start_node(
            "herald-redis",
            f'backend = "redis"\n\n[redis]\nurl = "redis://127.0.0.1:{port}"\n',
        )
    except BaseException:
        redis.stop()
        raise
    yield n
    n.proc.stop()
    redis.stop()


_counter = 0


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    """A user id of this test alone, so cases on one node do not meet."""
    global _counter
    _counter += 1
    return f"{request.node.name[:40]}-{_counter}-{time.time_ns() % 1_000_000}"
