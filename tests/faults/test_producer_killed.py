"""The producer stopped mid-burst: what it says it sent is exactly what is in the queue."""

from __future__ import annotations

import re
import signal

import pytest
import redis

from config import Settings
from stack.processes import wait_until
from tests.checks import finish, producer

COUNT = 200_000  # far more than can be sent before the signal lands


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_producer_stopped_mid_burst_reports_exactly_what_is_queued(
    sig: int, settings: Settings, redis_client: redis.Redis
) -> None:
    queue = settings.queue_for("threads")  # no worker: whatever was sent stays in the queue
    run = producer(settings, "--task", "square", "-n", str(COUNT), "--pool", "threads", "--json")
    wait_until(lambda: redis_client.llen(queue) >= 2000, 60, "the burst under way", run)  # type: ignore[arg-type]
    run.send_signal(sig)
    out, err = finish(run, 60)
    assert run.returncode == 130, err
    match = re.search(r"producer: interrupted: sent (\d+) of (\d+)", err)
    assert match, err
    reported = int(match.group(1))
    assert 2000 <= reported < COUNT
    assert redis_client.llen(queue) == reported
    assert f'"sent": {reported}' in out
