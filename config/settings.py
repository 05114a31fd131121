"""Settings as one typed object, built from the environment once per entry point.

Every process of the lab (launcher, workers, Flower, producer, tests, compose
services) reads its settings here and nowhere else. A running native stack also
leaves a small state file (`<state_dir>/stack.json`) so that a producer started in
another terminal finds the embedded broker without being told its URL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config.constants import ENV_PREFIX
from config.errors import UserError
from config.pools import POOL_NAMES, POOLS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCHEMES = ("redis", "rediss", "unix")
STATE_FILE = "stack.json"
# Everything between `scheme://` and the last `@` of a URL (user and password, whatever they
# contain: `@ : / %` included), and a `password=` query parameter.
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)\S*@")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s'\"]*")


class SettingsError(UserError, ValueError):
    """A setting has a value the lab cannot use; the message is one line and holds no secret."""


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`.

    Works on any text (a URL, an exception's message) and does not parse it: a malformed URL is
    exactly the one whose error must not leak its password.
    """
    return _PASSWORD_PARAM.sub(r"\1***", _CREDENTIALS.sub(r"\1***@", text))


def _default_concurrency() -> dict[str, int]:
    return {name: pool.concurrency_default() for name, pool in POOLS.items()}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults documented in the README."""

    broker_url: str | None = field(default=None, repr=False)
    results: bool = True
    queue_prefix: str = "lab"
    concurrency: Mapping[str, int] = field(default_factory=_default_concurrency)
    prefetch_multiplier: int = 4
    visibility_timeout: int = 60
    acks_late: bool = True
    events: bool = True
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_user: str = "lab"
    flower_password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    state_dir: Path = Path(".lab")
    loglevel: str = "INFO"
    broker_wait_s: int = 60  # how long an entry point waits for Redis to answer (containers start first)
    probes: bool = False  # register the test and claim tasks (tasks.probes) in the worker
    latency_server: str | None = None  # host:port of the latency server `mixed` tasks ask (socket I/O)
    # The free-threaded interpreter of `threads-ft` workers (`make freethreaded` makes it), and the
    # flag such a worker runs with: refuse to start if its GIL is on (tasks.interpreter).
    freethreaded_python: Path = field(default_factory=lambda: PROJECT_ROOT / ".venv-ft" / "bin" / "python")
    require_no_gil: bool = False
    # Where a worker writes its run-ledger records, when not to its broker: an experiment that puts
    # a delaying relay between the workers and Redis keeps the harness's own writes direct, so the
    # RTT is paid by Celery's commands only (a real deployment has no ledger).
    ledger_url: str | None = field(default=None, repr=False)
    # `lab advise`: the user's callable (`module:name`) a worker serves as `tasks.advised` (tasks.advised);
    # unset, no worker registers that task.
    advise_target: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `LAB_*` variables, falling back to a running stack's state."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, parse in _PARSERS.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(name, raw, parse)
        concurrency = _default_concurrency()
        for pool in POOL_NAMES:
            variable = f"{POOLS[pool].env_name}_CONCURRENCY"  # threads-ft: LAB_THREADS_FT_CONCURRENCY
            raw = env.get(ENV_PREFIX + variable)
            if raw:
                concurrency[pool] = int(_parse(variable, raw, int))  # type: ignore[call-overload]
        values["concurrency"] = concurrency
        if "broker_url" not in values:
            values.update(_running_stack(Path(str(values.get("state_dir", ".lab")))))
        return cls(**values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The `LAB_*` variables that rebuild these settings in a child process."""
        env = {ENV_PREFIX + name.upper(): _format(getattr(self, name)) for name in _PARSERS}
        env = {key: value for key, value in env.items() if value != ""}
        for pool, count in self.concurrency.items():
            env[f"{ENV_PREFIX}{POOLS[pool].env_name}_CONCURRENCY"] = str(count)
        return env

    # -- derived values -------------------------------------------------------------

    def queue_for(self, pool: str) -> str:
        """Each pool consumes its own queue, so a producer chooses the pool by queue."""
        return f"{self.queue_prefix}.{pool}"

    def concurrency_for(self, pool: str) -> int:
        return self.concurrency[pool]

    @property
    def result_backend(self) -> str | None:
        return self.broker_url if self.results else None

    def require_ledger(self) -> str:
        """The Redis the worker writes its ledger records to: the broker unless told otherwise."""
        return self.ledger_url or self.require_broker()

    def require_broker(self) -> str:
        if not self.broker_url:
            raise SettingsError(
                "no broker configured: start the stack with `make up` or set LAB_BROKER_URL"
            )
        return self.broker_url

    @property
    def flower_url(self) -> str:
        return f"http://{self.flower_address}:{self.flower_port}"

    # -- validation -----------------------------------------------------------------

    def validate(self) -> None:
        for url in filter(None, (self.broker_url, self.ledger_url)):
            _check_broker_url(url)
        for pool, count in self.concurrency.items():
            if pool not in POOLS:
                raise SettingsError(f"unknown pool {pool!r}; expected one of {', '.join(POOL_NAMES)}")
            _check_int(f"{pool} concurrency", count, 1, 10_000)
        _check_int("prefetch multiplier", self.prefetch_multiplier, 0, 10_000)
        _check_int("visibility timeout", self.visibility_timeout, 1, 7 * 24 * 3600)
        _check_int("flower port", self.flower_port, 1, 65535)
        _check_int("broker wait", self.broker_wait_s, 0, 24 * 3600)
        if not self.queue_prefix or not self.queue_prefix.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(f"queue prefix {self.queue_prefix!r} must be letters, digits, - or _")
        if not self.flower_user or ":" in self.flower_user:
            raise SettingsError("flower user must be non-empty and contain no ':'")
        if len(self.flower_password) < 8:
            raise SettingsError("flower password must be at least 8 characters")
        self._validate_addresses()

    def _validate_addresses(self) -> None:
        if self.latency_server is not None:
            _check_address("latency server", self.latency_server)
        if self.advise_target is not None:
            check_target_spec(self.advise_target)


def check_target_spec(spec: str) -> str:
    """`module:name` (the name may be dotted: `module:Class.method`), both parts Python identifiers."""
    module, _, name = spec.partition(":")
    parts = [*module.split("."), *name.split(".")]
    if not module or not name or not all(part.isidentifier() for part in parts):
        raise SettingsError(f"target must be module:name (e.g. mymodule:resize_image), got {spec!r}")
    return spec


def _check_address(what: str, address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{what} must be host:port, got {address!r}")


def _check_int(what: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SettingsError(f"{what} must be between {low} and {high}, got {value}")


def _check_broker_url(url: str) -> None:
    """Refuse a URL Redis clients would choke on later; every message shows it redacted."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"malformed broker URL {shown!r}: {redact(str(exc))}") from None
    if parts.scheme not in BROKER_SCHEMES:
        raise SettingsError(f"broker URL must start with redis://, rediss:// or unix://, got {shown!r}")
    if parts.scheme != "unix" and not parts.hostname:
        hint = ": percent-encode '/', '?' and '#' in the password" if "@" in url.partition("://")[2] else ""
        raise SettingsError(f"broker URL {shown!r} has no host{hint}")
    if port == 0:
        raise SettingsError(f"broker URL {shown!r} has port 0")
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not (database.isdigit() and int(database) < 2**16):
        raise SettingsError(f"broker URL {shown!r}: the database must be a number, got {redact(database)!r}")


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


_PARSERS: dict[str, type | object] = {
    "broker_url": str,
    "results": _parse_bool,
    "queue_prefix": str,
    "prefetch_multiplier": _parse_int,
    "visibility_timeout": _parse_int,
    "acks_late": _parse_bool,
    "events": _parse_bool,
    "flower_address": str,
    "flower_port": _parse_int,
    "flower_user": str,
    "flower_password": str,
    "state_dir": Path,
    "loglevel": str,
    "broker_wait_s": _parse_int,
    "probes": _parse_bool,
    "latency_server": str,
    "freethreaded_python": Path,
    "require_no_gil": _parse_bool,
    "ledger_url": str,
    "advise_target": str,
}


def _parse(name: str, raw: str, parse: object) -> object:
    if parse is int:
        parse = _parse_int
    try:
        return parse(raw)  # type: ignore[operator]
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: {exc}") from None


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _running_stack(state_dir: Path) -> dict[str, object]:
    """The broker and Flower credentials of a native stack started by `lab up`, if any."""
    try:
        state = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    keys = ("broker_url", "flower_port", "flower_user", "flower_password")
    return {key: state[key] for key in keys if key in state}


def write_stack_state(settings: Settings) -> Path:
    """Leave the broker URL and Flower credentials where `from_env` finds them (mode 0600)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "broker_url": settings.broker_url,
        "flower_port": settings.flower_port,
        "flower_user": settings.flower_user,
        "flower_password": settings.flower_password,
        "pid": os.getpid(),
    }
    return write_private(settings.state_dir / STATE_FILE, json.dumps(state))


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner can read: it holds a password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
