"""``wafertk train ...`` (group; subcommands come from other modules) and ``wafertk models``."""

from __future__ import annotations

import click

from ._common import handle_errors


@click.group()
def train() -> None:
    """Train a model on a labeled wafers.h5 file (see the subcommands)."""


@click.command("models")
@click.argument("pattern", default="*")
@handle_errors
def models(pattern: str) -> None:
    """List the registered model architectures (glob PATTERN, default all)."""
    from wafertk.registry import list_models

    for e in list_models(pattern):
        click.echo(f"{e.name:<28} {e.family:<12} {e.summary}")


COMMANDS = [train, models]
