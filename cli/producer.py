"""`producer`: the thin command the mission names (`producer send ...`), as compose runs it."""

from __future__ import annotations

import click

from cli import errors
from cli.send import send


@click.group()
def cli() -> None:
    """Enqueue lab tasks to Redis and watch them drain."""


cli.add_command(send)


def main() -> None:
    errors.run(cli, "producer")


if __name__ == "__main__":
    main()
