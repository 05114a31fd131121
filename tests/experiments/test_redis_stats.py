"""Redis figures against the real server: commandstats deltas and the server's ops/s (both methods)."""

import redis

from experiments import redis_stats
from stack.redis_server import RedisServer


def test_commandstats_delta_counts_what_was_sent(redis_client: redis.Redis) -> None:
    before = redis_stats.command_calls(redis_client)
    for i in range(5):
        redis_client.lpush("lab:test:stats", i)
    calls = redis_stats.delta(before, redis_stats.command_calls(redis_client))
    redis_client.delete("lab:test:stats")
    assert calls["lpush"] == 5


def test_server_ops_per_s_by_either_method(redis_server: RedisServer) -> None:
    measured = redis_stats.server_ops_per_s(redis_server.url, requests=2000, clients=10)
    assert measured["ops_per_s"] > 1000 and measured["method"]
    fallback = redis_stats._pipelined_loop(redis_server.url, seconds=0.3)
    assert fallback["ops_per_s"] > 1000 and "upper bound" in fallback["method"]
