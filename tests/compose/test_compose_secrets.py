"""A compose service given a bad or unreachable broker URL says so in one line, without its secret.

Error messages end up in CI logs and `docker compose logs`. tests/security/test_secrets.py checks
the entry points natively; this runs them as compose services, the way a user with a mistyped
`.env` meets them: `compose run --rm --no-deps` of the producer and of a threads worker with
LAB_BROKER_URL replaced (nothing else of the stack is started), on the images already built
(`make compose-images`, or an earlier compose test; built only if missing). Each run must exit 2
with one line and no trace of the password in anything it printed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from stack.compose import engine as en
from tests.checks import assert_no_traceback

pytestmark = [pytest.mark.compose, pytest.mark.timeout(600)]

SECRET = "S3cr3t-compose-4711"
SPECIAL = "p%40ss:w@rd%2F%25x"  # '@', ':', '/' and '%', percent-encoded where a URL needs it

# name -> (URL with {secret}, the secret inside it, what the one line must name: this URL, not the
# file's). 127.0.0.1 inside the container: nothing listens there, so "unreachable" is a refused
# connection, as fast as a malformed URL.
URLS = {
    "bad port": ("redis://:{secret}@redis:99999/0", SECRET, "@redis:99999/0"),
    "password with @:/%": ("redis://:{secret}@127.0.0.1:6379/0", SPECIAL, "@127.0.0.1:6379/0"),
    "user and password, unreachable host": ("redis://admin:{secret}@127.0.0.1:6390/0", SECRET, "@127.0.0.1:6390/0"),
}
# service -> (its profile, the arguments after the service name; none: the service's own command)
SERVICES = {
    "producer": ("producer", ["send", "-n", "1"]),
    "worker-threads": (None, []),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[en.ComposeProject]:
    """A uniquely named project on the built lab image; one warm-up run creates its network first,
    so compose's own progress lines are not in the runs under test. `down -v` at the end."""
    engine = en.choose_engine()
    directory = tmp_path_factory.mktemp("compose-secrets")
    project = en.ComposeProject(engine, f"labsecrets{uuid.uuid4().hex[:8]}", directory / "lab.env")
    en.example_env(project.env_file)
    try:
        engine.ensure_lab_image(project)
        project.compose("run", "--rm", "--no-deps", "-T", "producer", "--help", profile="producer")
        yield project
    finally:
        down = project.compose("down", "-v", check=False)
        left = project.containers() + project.volumes() + project.networks()
        if left:
            engine.force_remove(project)
        assert down.returncode == 0 and not left, f"`down -v` left {left}: {down.stderr[-2000:]}"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("case", URLS)
def test_a_service_with_a_bad_broker_url_says_one_line_without_the_secret(
        project: en.ComposeProject, case: str, service: str) -> None:
    template, secret, named = URLS[case]
    profile, args = SERVICES[service]
    result = project.compose("run", "--rm", "--no-deps", "-T", "-e", f"LAB_BROKER_URL={template.format(secret=secret)}",
                             "-e", "LAB_BROKER_WAIT_S=1", service, *args, profile=profile, check=False, timeout=120)
    output = result.stdout + result.stderr
    assert not any(form in output for form in {secret, unquote(secret)}), "the secret is in the output"
    assert_no_traceback(result.stdout, result.stderr)
    assert result.returncode == 2, output[-2000:]
    (line,) = output.strip().splitlines()
    assert line.startswith(("producer: error: ", "lab: error: ")) and f"***{named}" in line, line
    assert project.containers(service) == [], "`run --rm` must remove the container"
