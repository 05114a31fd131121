"""Talking to Redis directly: reachability checks and the ledger's client."""

from __future__ import annotations

import time

import redis

from config.settings import redact


class BrokerUnreachable(ConnectionError):
    """The broker did not answer; the message is one line and hides the password."""


def client(url: str, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def check_broker(url: str, timeout: float = 3.0) -> None:
    """PING the broker once; raise BrokerUnreachable with the reason if it does not answer."""
    conn = client(url, timeout)
    try:
        conn.ping()
    except redis.AuthenticationError as exc:
        raise BrokerUnreachable(f"broker at {redact(url)} refused the password: {exc}") from None
    except redis.RedisError as exc:
        raise BrokerUnreachable(f"broker unreachable at {redact(url)}: {exc}") from None
    finally:
        conn.close()


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
