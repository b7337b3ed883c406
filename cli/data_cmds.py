"""Data commands: ``wafertk import wm811k|npz`` and ``wafertk info``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ._common import (
    check_input_file,
    check_output,
    echo_summary,
    handle_errors,
    output_option,
    quiet_option,
)

_OUT = output_option("Output wafers.h5 (written atomically).")


@click.group("import")
def import_group() -> None:
    """Import wafer maps into a wafers.h5 file."""


def _details(summary) -> str:
    return f"{summary.wafers:,} wafers ({summary.labeled:,} labeled, {summary.lots:,} lots)"


@import_group.command("wm811k", short_help="Import the original WM-811K LSWMD.pkl (legacy pickle).")
@click.argument("src", type=click.Path(path_type=Path))
@_OUT
@click.option("--labeled-only", is_flag=True, help="Keep only rows with a failureType.")
@click.option("--partition", default="all", show_default=True,
              help="Training, Test or all (trianTestLabel).")
@quiet_option
@handle_errors
def import_wm811k(src: Path, output: Path, labeled_only: bool, partition: str,
                  quiet: bool) -> None:
    """Import the original WM-811K LSWMD.pkl (legacy pickle; trusted public dataset only)."""
    from wafertk.data.importers import import_lswmd
    from wafertk.data.legacy import check_partition

    t0 = time.perf_counter()
    check_partition(partition)
    check_input_file(src, "LSWMD.pkl file")
    check_output(output, folder=False, inputs=[src])
    summary = import_lswmd(src, output, labeled_only=labeled_only, partition=partition,
                           progress=False if quiet else None)
    echo_summary(quiet, output, _details(summary), t0)


@import_group.command("npz", short_help="Import a WM-811K .npz pack losslessly.")
@click.argument("src", type=click.Path(path_type=Path))
@_OUT
@quiet_option
@handle_errors
def import_npz_cmd(src: Path, output: Path, quiet: bool) -> None:
    """Import a WM-811K .npz pack (wm811k_train.npz layout), losslessly.

    A pack without label/class_names (wm811k_unlabeled_200k.npz) is imported with every
    wafer unlabeled.
    """
    from wafertk.data.importers import import_npz

    t0 = time.perf_counter()
    check_input_file(src, ".npz pack")
    check_output(output, folder=False, inputs=[src])
    summary = import_npz(src, output, progress=False if quiet else None)
    echo_summary(quiet, output, _details(summary), t0)


@click.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@handle_errors
def info(path: Path, as_json: bool) -> None:
    """Summarise a wafers.h5: wafers, grid shapes, lots, class balance.

    The summary is the command's output (standard output), so there is no -o and no -q;
    every wafer is read and checked, so a bad file is reported as one error line.
    """
    from wafertk.data.importers import format_info, wafer_info

    check_input_file(path)
    summary = wafer_info(path)
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))


COMMANDS = [import_group, info]
