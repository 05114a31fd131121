"""The one place Redis clients and client-side Celery apps are made, each as a context manager.

Every client is closed when its block ends: an unclosed client's sockets are closed by the
garbage collector at some later time, and a client app's AsyncResults that outlive their Redis
retry for 20 s each at exit (`tasks.app.close_app` says more).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import redis
from celery import Celery

from config import Settings, redact
from config.errors import UserError
from tasks.app import close_app, make_app


class BrokerUnreachable(UserError, ConnectionError):
    """The broker did not answer; the message is one line and hides the password."""


@contextlib.contextmanager
def redis_client(url: str, timeout: float = 5.0) -> Iterator[redis.Redis]:
    """A Redis client for `url`, closed at the end of the block."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def client_app(settings: Settings) -> Iterator[Celery]:
    """A client-side Celery app (sends by task name, remote control), closed at the end of the block."""
    app = make_app(settings)
    try:
        yield app
    finally:
        close_app(app)


def check_broker(url: str, timeout: float = 3.0) -> None:
    """PING the broker once; raise BrokerUnreachable with the reason if it does not answer."""
    with redis_client(url, timeout) as client:
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            raise BrokerUnreachable(f"broker at {redact(url)} refused the password: {exc}") from None
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"broker unreachable at {redact(url)}: {redact(str(exc))}") from None


def wait_for_broker(url: str, timeout: float) -> float:
    """Retry PING until it answers (containers may start before Redis); return seconds waited."""
    started = time.monotonic()
    while True:
        try:
            check_broker(url)
            return time.monotonic() - started
        except BrokerUnreachable as exc:
            if "refused the password" in str(exc) or time.monotonic() - started > timeout:
                raise
            time.sleep(0.2)
