"""The atomic take (tasks.transport): a message leaves its queue only as a recorded unacked one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Queue

from config import Settings
from stack.processes import wait_until
from stack.workers import Worker
from tasks.app import transport_options
from tasks.ledger import UNACKED_KEY
from tasks.transport import TRANSPORT, Channel


@pytest.fixture
def channel(settings: Settings) -> Iterator[Channel]:
    """A consuming channel of the lab's transport, with a 1 s visibility timeout."""
    options = {**transport_options(settings), "visibility_timeout": 1}
    with Connection(settings.broker_url, transport=TRANSPORT, transport_options=options) as conn:
        chan = conn.default_channel
        assert isinstance(chan, Channel)
        yield chan


def publish(channel: Channel, queue: str, body: dict[str, int]) -> None:
    Queue(queue, routing_key=queue)(channel).declare()
    channel.connection.client.Producer(channel).publish(body, routing_key=queue, serializer="json")


def publish_and_take(channel: Channel, queue: str, redis_client: redis.Redis) -> dict[str, Any]:
    """One message through the atomic take; it has left its queue."""
    publish(channel, queue, {"n": 1})
    taken = channel._take_one([queue])
    assert taken is not None and taken[0] == queue
    assert redis_client.llen(queue) == 0
    message: dict[str, Any] = json.loads(taken[1])
    return message


def test_a_taken_message_is_recorded_as_unacked_in_the_same_step(
    channel: Channel, settings: Settings, redis_client: redis.Redis
) -> None:
    queue = settings.queue_for("threads")
    taken = publish_and_take(channel, queue, redis_client)

    tag = taken["properties"]["delivery_tag"]
    message, _exchange, routing_key = json.loads(redis_client.hget(channel.unacked_key, tag) or b"null")
    assert message == taken and routing_key == queue
    assert redis_client.zscore(channel.unacked_index_key, tag) is not None


def test_a_message_taken_by_a_consumer_that_died_comes_back(
    channel: Channel, settings: Settings, redis_client: redis.Redis
) -> None:
    """The crash window kombu's BRPOP leaves open: taken, then the consumer is gone before its ack."""
    queue = settings.queue_for("prefork")
    taken = publish_and_take(channel, queue, redis_client)

    def swept_back() -> bool:
        channel.qos.restore_visible(num=100)
        return redis_client.llen(queue) == 1

    wait_until(swept_back, 10, "the visibility-timeout sweep to restore the message")
    restored = json.loads(redis_client.lindex(queue, 0) or b"null")
    assert restored["properties"]["delivery_tag"] == taken["properties"]["delivery_tag"]
    assert restored["headers"]["redelivered"] is True


def test_several_queues_are_taken_from_in_order(channel: Channel, settings: Settings) -> None:
    first, second = settings.queue_for("threads"), settings.queue_for("prefork")
    publish(channel, second, {"n": 3})
    assert channel._take_one([first, second]) is not None
    assert channel._take_one([first, second]) is None


def test_workers_consume_through_the_atomic_take(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("threads")
    result = app.send_task("tasks.square", args=[7], kwargs={"work": 1}, queue=settings.queue_for("threads"))
    assert result.get(timeout=30) == 49
    stats = app.control.inspect(destination=[worker.name], timeout=5).stats() or {}
    assert stats[worker.name]["broker"]["transport"] == TRANSPORT


def test_a_worker_on_two_queues_serves_both(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    first, second = settings.queue_for("threads"), settings.queue_for("other")
    start_worker("threads", extra=("--queues", f"{first},{second}"))
    sends = [(2, first), (3, second)]
    results = [app.send_task("tasks.square", args=[n], kwargs={"work": 1}, queue=q) for n, q in sends]
    assert [r.get(timeout=30) for r in results] == [4, 9]


def test_a_paused_worker_takes_nothing_published_after_the_pause(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    """A worker paused (cancel_consumer) while its blocking wait is in flight must leave new messages queued.

    The wait (`BLMOVE`, up to 1 s) outlives the cancel; when a message arrives it returns, and the
    take must not pop from a queue no longer consumed (the accounting test saw 19 of 20 prefilled).
    """
    queue = settings.queue_for("threads")
    worker = start_worker("threads")
    replies = app.control.cancel_consumer(queue, destination=[worker.name], reply=True, timeout=5)
    assert "no longer consuming" in str(replies)
    ids = [app.send_task("tasks.noop", queue=queue).id for _ in range(20)]
    for _ in range(3):  # each ping is answered by the event loop that would have read the wait's reply
        assert app.control.ping(destination=[worker.name], timeout=5)
    queued = [json.loads(item)["headers"] for item in redis_client.lrange(queue, 0, -1)]
    assert [h["id"] for h in reversed(queued)] == ids, "the queue must be exactly what was sent, in order"
    assert not any(h.get("redelivered") for h in queued)
    unacked = [json.loads(record)[2] for record in redis_client.hvals(UNACKED_KEY)]
    assert queue not in unacked
