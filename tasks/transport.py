"""kombu's Redis transport with an atomic take: a message is never out of Redis and unrecorded.

kombu's consumer pops a message with BRPOP and only then, in a second command, records it as
unacknowledged (`QoS.append`). A worker SIGKILLed, or a connection dropped by a Redis restart,
between the two loses that message for good (celery/kombu#305): the lab saw it about once in
three crash tests. Here the blocking command only *waits*: `BLMOVE key key RIGHT RIGHT` returns
the oldest message and leaves the list as it was. A Lua script then pops the message and records
it as unacknowledged in one atomic step, so after any crash it is either still queued or in the
unacked set, from which the visibility-timeout sweep hands it out again.

A consumer of one queue (every worker the lab starts) waits with no added latency. A consumer of
several queues waits on one of them at a time for at most `MULTI_QUEUE_WAIT_S`, then takes the
first message of any of them.

Only workers consume, so only workers use this transport (`install`). Producers and Flower keep
kombu's own: publishing is one LPUSH either way, and Flower's broker page knows `redis://` only.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

from celery import Celery
from celery.signals import celeryd_init
from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads
from redis.commands.core import Script

MULTI_QUEUE_WAIT_S = 0.1
TRANSPORT = "tasks.transport:Transport"

# KEYS: the queues' lists in the order to try, then the unacked hash and its index.
# ARGV: the time to index the message at. Returns {queue key, message} or nil.
# The record is what kombu's QoS.append writes: [message, exchange, routing_key] as JSON; the
# message is spliced in as sent, so restoring it gives back the exact bytes. A message that is
# not kombu's JSON envelope is popped unrecorded and fails to decode in Python, as with kombu.
TAKE_SCRIPT = """
local n = #KEYS - 2
local unacked, index = KEYS[n + 1], KEYS[n + 2]
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, msg = pcall(cjson.decode, item)
    local props = ok and type(msg) == 'table' and msg['properties']
    local info = type(props) == 'table' and props['delivery_info']
    if type(info) == 'table' and type(props['delivery_tag']) == 'string' then
      local record = '[' .. item .. ',' .. cjson.encode(info['exchange']) .. ','
        .. cjson.encode(info['routing_key']) .. ']'
      redis.call('ZADD', index, ARGV[1], props['delivery_tag'])
      redis.call('HSET', unacked, props['delivery_tag'], record)
    end
    return {KEYS[i], item}
  end
end
return false
"""

# What a consumer sends Redis to take a message, as INFO commandstats names it: the wait, the
# script's EVALSHA (SCRIPT LOAD once per channel) and the commands the script runs.
TAKE_COMMANDS = frozenset({"blmove", "evalsha", "script|load", "rpop", "zadd", "hset"})


class QoS(kombu_redis.QoS):
    """kombu's QoS without its second unacked record of a message the take script recorded already.

    kombu's `QoS.append` writes the delivered message to the unacked hash and index (a MULTI/EXEC
    pipeline: one more round trip on the consumer's path per task). After the take script that is
    the same record again: measured with MONITOR behind a 10 ms relay, skipping it took one of the
    consumer's round trips per task away. A message delivered another way (not by the take) still
    gets kombu's record.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        taken = self.channel.recorded_by_take
        if delivery_tag in taken:
            taken.discard(delivery_tag)
            kombu_redis.virtual.QoS.append(self, message, delivery_tag)  # the in-memory bookkeeping only
            return
        super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    """Consumes by waiting without popping, then taking and recording in one Lua call."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded_by_take: set[str] = set()  # delivery tags the take script recorded as unacked
        if self.global_keyprefix:  # kombu's prefixing client would prefix only the first key of the script
            raise ValueError("tasks.transport does not support the global_keyprefix transport option")

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if timeout is None:
            timeout = self.brpop_timeout
        keys = self._take_keys(queues)
        self._waiting_keys = keys
        if len(keys) > 1:
            timeout = min(timeout or MULTI_QUEUE_WAIT_S, MULTI_QUEUE_WAIT_S)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu types it None
        self.client.connection.send_command("BLMOVE", keys[0], keys[0], "RIGHT", "RIGHT", timeout or 0)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                waited = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            keys = self._still_consumed(self._waiting_keys)
            taken = self._take_one(keys) if keys and (waited or len(keys) > 1) else None
            if not taken:
                raise kombu_redis.Empty()
            queue, item = taken
            self._queue_cycle.rotate(queue)
            payload = loads(item)
            self._note_recorded(payload)
            self.connection._deliver(payload, queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu types it bool
            self._flush_brpop_reauth()

    def _note_recorded(self, payload: Any) -> None:
        """Remember a delivery tag the take script recorded (the script's own test: a string tag, delivery_info)."""
        props = payload.get("properties") if isinstance(payload, dict) else None
        if isinstance(props, dict) and isinstance(props.get("delivery_info"), dict):
            tag = props.get("delivery_tag")
            if isinstance(tag, str):
                self.recorded_by_take.add(tag)

    def _still_consumed(self, keys: list[str]) -> list[str]:
        """The waited-on keys whose queue is still consumed.

        A wait outlives a `cancel_consumer` (Celery's pause) by up to `brpop_timeout`; when a
        message arrives it returns. Taking then would pop from a queue nobody consumes: kombu would
        find no callback and requeue the message at the back, marked redelivered (the accounting
        test saw 19 of 20 prefilled messages in the queue). The wait moved nothing, so there is
        nothing to undo: skip the take.
        """
        active = set(self.active_queues)
        return [key for key in keys if self._queue_of(key) in active]

    def _queue_of(self, key: str) -> str:
        return key.rsplit(self.sep, 1)[0]

    def _take_keys(self, queues: list[str]) -> list[str]:
        return [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]

    @cached_property
    def _take(self) -> Script:
        """The take script on a pooled client of this channel, built once, not per message."""
        return self._create_client().register_script(TAKE_SCRIPT)

    def _take_one(self, keys: list[str]) -> tuple[str, str] | None:
        """Pop the first message of `keys` and record it as unacked, atomically; None if all empty."""
        found = self._take(keys=[*keys, self.unacked_key, self.unacked_index_key], args=[time.time()])
        if not found:
            return None
        key, item = (part.decode() if isinstance(part, bytes) else part for part in found)
        return self._queue_of(key), item


class Transport(kombu_redis.Transport):
    Channel = Channel


def install(app: Celery) -> None:
    """Make `app`'s workers consume through `Transport` (set before the worker connects)."""

    @celeryd_init.connect(weak=False)
    def use_atomic_take(**_: Any) -> None:
        app.conf.broker_transport = TRANSPORT
