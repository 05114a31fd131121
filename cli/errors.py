"""One line and exit 2 for every error a user can cause: never a traceback, never a secret."""

from __future__ import annotations

import sys

import click

from config import redact
from config.constants import EXIT_USAGE
from config.errors import UserError

EXPECTED = (UserError, TimeoutError)  # TimeoutError: a part of the stack not ready in time


def run(group: click.Group, prog: str) -> None:
    """Run a click group as `prog`, turning expected errors into `prog: error: ...` and exit 2."""
    try:
        group.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {redact(exc.format_message())}", err=True)
        sys.exit(EXIT_USAGE)
    except EXPECTED as exc:
        click.echo(f"{prog}: error: {redact(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
