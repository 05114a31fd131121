from pathlib import Path

import pytest

from config import Settings, SettingsError
from config.settings import write_stack_state


def test_defaults_are_loopback_and_json_safe() -> None:
    settings = Settings.from_env({})
    assert settings.flower_address == "127.0.0.1"
    assert settings.flower_port == 5555
    assert settings.queue_for("threads") == "lab.threads"
    assert settings.concurrency_for("solo") == 1
    assert len(settings.flower_password) >= 12


def test_environment_overrides_defaults() -> None:
    settings = Settings.from_env({
        "LAB_BROKER_URL": "redis://:pw@example.invalid:6390/1",
        "LAB_THREADS_CONCURRENCY": "64",
        "LAB_RESULTS": "false",
        "LAB_VISIBILITY_TIMEOUT": "30",
    })
    assert settings.concurrency_for("threads") == 64
    assert settings.result_backend is None
    assert settings.visibility_timeout == 30


def test_round_trip_through_child_environment() -> None:
    settings = Settings(broker_url="redis://:pw@127.0.0.1:7000/0", queue_prefix="x1",
                        flower_password="long-enough")
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LAB_BROKER_URL", "http://localhost:6379", "must start with redis://"),
        ("LAB_BROKER_URL", "redis://:pw@host:notaport/0", "malformed broker URL"),
        ("LAB_BROKER_URL", "redis://", "has no host"),
        ("LAB_THREADS_CONCURRENCY", "abc", "expected an integer"),
        ("LAB_THREADS_CONCURRENCY", "0", "between 1 and"),
        ("LAB_THREADS_FT_CONCURRENCY", "abc", "LAB_THREADS_FT_CONCURRENCY: expected an integer"),
        ("LAB_PREFORK_CONCURRENCY", "-3", "between 1 and"),
        ("LAB_PREFORK_CONCURRENCY", "nan", "expected an integer"),
        ("LAB_PREFORK_CONCURRENCY", "inf", "expected an integer"),
        ("LAB_PREFORK_CONCURRENCY", "99999999", "between 1 and"),
        ("LAB_FLOWER_PORT", "70000", "between 1 and 65535"),
        ("LAB_VISIBILITY_TIMEOUT", "2.5", "expected an integer"),
        ("LAB_RESULTS", "maybe", "expected true/false"),
        ("LAB_FLOWER_PASSWORD", "short", "at least 8"),
        ("LAB_QUEUE_PREFIX", "a b", "queue prefix"),
        # faults/bad-input table (docs/faults.md)
        ("LAB_BROKER_URL", "redis://:pw@127.0.0.1:99999/0", "malformed broker URL"),
        ("LAB_BROKER_URL", "redis://:pw@[::1/0", "malformed broker URL"),
        ("LAB_BROKER_URL", "redis://:pw@127.0.0.1:0/0", "has port 0"),
        ("LAB_BROKER_URL", "127.0.0.1:6379", "must start with redis://"),
        ("LAB_VISIBILITY_TIMEOUT", "0", "between 1 and"),
        ("LAB_VISIBILITY_TIMEOUT", "-5", "between 1 and"),
        ("LAB_VISIBILITY_TIMEOUT", "nan", "expected an integer"),
        ("LAB_VISIBILITY_TIMEOUT", "inf", "expected an integer"),
        ("LAB_VISIBILITY_TIMEOUT", "99999999999", "between 1 and"),
        ("LAB_PREFETCH_MULTIPLIER", "-1", "between 0 and"),
        ("LAB_PREFETCH_MULTIPLIER", "four", "expected an integer"),
        ("LAB_FLOWER_PORT", "0", "between 1 and 65535"),
        ("LAB_ACKS_LATE", "2", "expected true/false"),
        ("LAB_FLOWER_USER", "a:b", "flower user"),
    ],
)
def test_bad_settings_are_one_clear_line(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_producer_finds_a_running_native_stack(tmp_path: Path) -> None:
    launched = Settings(broker_url="redis://:pw@127.0.0.1:7001/0", state_dir=tmp_path,
                        flower_password="from-the-launcher")
    path = write_stack_state(launched)
    assert path.stat().st_mode & 0o777 == 0o600
    found = Settings.from_env({"LAB_STATE_DIR": str(tmp_path)})
    assert found.broker_url == launched.broker_url
    assert found.flower_password == "from-the-launcher"


def test_missing_broker_is_reported_not_guessed(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAB_STATE_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="no broker configured"):
        settings.require_broker()
