"""`python -m producer` as a user runs it, against a real Redis and real workers."""

import json
import subprocess
from collections.abc import Callable

import pytest
import redis

from config import Settings
from stack.redis_server import free_port
from stack.workers import Worker
from tasks.ledger import RunLedger

Run = Callable[..., subprocess.CompletedProcess[str]]


def queued(client: redis.Redis, settings: Settings) -> int:
    return sum(int(client.llen(settings.queue_for(pool))) for pool in ("threads", "prefork"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "count must be between 1"),
        (["-n", "-5"], "count must be between 1"),
        (["-n", "100000000000"], "count must be between 1"),
        (["-n", "ten"], "is not a valid integer"),
        (["--task", "cube"], "unknown task 'cube'"),
        (["--pool", "fibers"], "unknown pool 'fibers'"),
        (["--pool", ""], "no pool given"),
        (["--task", "sleep", "--seconds", "-1"], "seconds must be a finite number"),
        (["--task", "sleep", "--seconds", "nan"], "seconds must be a finite number"),
        (["--task", "sleep", "--seconds", "inf"], "seconds must be a finite number"),
        (["--work", "-1"], "work must be between"),
        (["--rate", "0"], "rate must be positive"),
        (["--rate", "nan"], "rate must be a finite number"),
        (["--frobnicate"], "No such option"),
        # faults/bad-input table (docs/faults.md): non-numeric, NaN, inf, huge, wrong type, duplicates
        (["-n", "inf"], "is not a valid integer"),
        (["-n", "1e3"], "is not a valid integer"),
        (["--work", "nan"], "is not a valid integer"),
        (["--work", "1.5"], "is not a valid integer"),
        (["--work", "100000001"], "work must be between"),
        (["--rate", "-5"], "rate must be a finite number"),
        (["--rate", "inf"], "rate must be a finite number"),
        (["--task", "sleep", "--seconds", "1e9"], "seconds must be a finite number"),
        (["--task", "sleep", "--seconds", "soon"], "is not a valid float"),
        (["--timeout", "-1"], "must be a positive number of seconds"),
        (["--timeout", "nan"], "must be a positive number of seconds"),
        (["--pool", "threads,threads"], "listed twice"),
        (["--pool", "THREADS"], "unknown pool 'THREADS'"),
        (["--task", "Square"], "unknown task 'Square'"),
        (["--task", "mixed", "--cpu-ms", "-1"], "cpu_ms must be a finite number"),
        (["--task", "mixed", "--io-ms", "nan"], "io_ms must be a finite number"),
        (["--task", "mixed", "--io", "carrier-pigeon"], "'carrier-pigeon' is not one of"),
        (["--task", "mixed", "--seconds", "1"], "--seconds does not apply to --task mixed"),
        (["--task", "sleep", "--work", "5"], "--work does not apply to --task sleep"),
        (["--run-id", "a:b"], "run id must be 1-64 letters"),
        (["--run-id", ""], "run id must be 1-64 letters"),
        (["--run-id", "x" * 65], "run id must be 1-64 letters"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_enqueued(
    args: list[str], message: str, run_cli: Run, redis_client: redis.Redis, settings: Settings
) -> None:
    result = run_cli("send", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("producer: error:")
    assert message in lines[0]
    assert queued(redis_client, settings) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://:pw@127.0.0.1:{port}/0", "broker unreachable"),
        ("http://127.0.0.1:{port}", "must start with redis://"),
    ],
)
def test_unusable_broker_is_one_line_exit_2(url: str, message: str, run_cli: Run) -> None:
    result = run_cli("send", "-n", "10", env={"LAB_BROKER_URL": url.format(port=free_port())})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert ":pw@" not in result.stderr


def test_wrong_password_is_refused_clearly(run_cli: Run, redis_server: object, settings: Settings) -> None:
    wrong = settings.require_broker().replace(f":{settings.require_broker().split(':')[2].split('@')[0]}@",
                                              ":wrong-password@")
    result = run_cli("send", "-n", "10", env={"LAB_BROKER_URL": wrong})
    assert result.returncode == 2
    assert "refused the password" in result.stderr
    assert "wrong-password" not in result.stderr


def test_burst_to_both_pools_is_accounted_for(
    run_cli: Run, start_worker: Callable[..., Worker], redis_client: redis.Redis, settings: Settings
) -> None:
    start_worker("threads")
    start_worker("prefork")
    result = run_cli("send", "--task", "square", "-n", "60", "--pool", "both", "--work", "2000",
                     "--wait", "--json", "--run-id", "burst-both_1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_id"] == "burst-both_1"
    assert RunLedger(redis_client, "burst-both_1").distinct_finished() == 120
    assert summary["sent_per_pool"] == {"threads": 60, "prefork": 60}
    assert summary["sent"] == 120
    assert summary["completed"] == 120
    assert (summary["failed"], summary["lost"], summary["duplicated"], summary["queued"]) == (0, 0, 0, 0)
    assert summary["throughput_per_s"] > 0
    assert "sent" in result.stderr and "done" in result.stderr  # the progress bars


def test_fixed_rate_spreads_the_sends(
    run_cli: Run, start_worker: Callable[..., Worker], settings: Settings
) -> None:
    start_worker("threads")
    result = run_cli("send", "--task", "sleep", "--seconds", "0", "-n", "40", "--pool", "threads",
                     "--rate", "40", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["completed"] == 40
    assert 20 <= summary["enqueue_per_s"] <= 60
