"""Data commands: ``wafertk import wm811k|npz`` and ``wafertk info``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import handle_errors

_OUT = click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
                    help="Output wafers.h5 (written atomically).")
_QUIET = click.option("-q", "--quiet", is_flag=True, help="No summary and no progress bar.")


@click.group("import")
def import_group() -> None:
    """Import wafer maps into a wafers.h5 file."""


@import_group.command("wm811k")
@click.argument("src", type=click.Path(path_type=Path))
@_OUT
@click.option("--labeled-only", is_flag=True, help="Keep only rows with a failureType.")
@click.option("--partition", default="all", show_default=True,
              help="Training, Test or all (trianTestLabel).")
@_QUIET
@handle_errors
def import_wm811k(src: Path, output: Path, labeled_only: bool, partition: str,
                  quiet: bool) -> None:
    """Import the original WM-811K LSWMD.pkl (legacy pickle; trusted public dataset only)."""
    from wafertk.data.importers import import_lswmd

    summary = import_lswmd(src, output, labeled_only=labeled_only, partition=partition,
                           progress=False if quiet else None)
    if not quiet:
        click.echo(str(summary))


@import_group.command("npz")
@click.argument("src", type=click.Path(path_type=Path))
@_OUT
@_QUIET
@handle_errors
def import_npz_cmd(src: Path, output: Path, quiet: bool) -> None:
    """Import a WM-811K .npz pack (wm811k_train.npz layout), losslessly."""
    from wafertk.data.importers import import_npz

    summary = import_npz(src, output, progress=False if quiet else None)
    if not quiet:
        click.echo(str(summary))


@click.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@handle_errors
def info(path: Path, as_json: bool) -> None:
    """Summarise a wafers.h5: wafers, grid shapes, lots, class balance."""
    from wafertk.data.importers import format_info, wafer_info

    summary = wafer_info(path)
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))


COMMANDS = [import_group, info]
