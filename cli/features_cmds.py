"""``wafertk features``: batch feature extraction of a wafers.h5 file."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import handle_errors


@click.command("features")
@click.argument("wafers", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Output table: .csv for CSV, Parquet otherwise (written atomically).")
@click.option("--set", "sets", default=None,
              help="Comma-separated feature sets (default: gabor,filters,density,radon,"
                   "geometry,meta).")
@click.option("--jobs", "-j", "jobs", default=1, show_default=True, type=int,
              help="Worker processes (-1 = all cores).")
@click.option("--batch-size", default=2048, show_default=True, type=int,
              help="Wafers per batch (memory bound).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@handle_errors
def features(wafers: Path, output: Path, sets: str | None, jobs: int, batch_size: int,
             quiet: bool) -> None:
    """Compute wafer-map features of WAFERS into a table (one row per wafer).

    Keeps the wafer_id, lot and label columns, then one column per feature
    (``<set>__<name>``). Sets: gabor, filters, density, radon, geometry, meta
    (docs/features.md).

    \b
    Example:
      wafertk features wafers.h5 -o features.parquet --set density,radon,geometry --jobs 2
    """
    from wafertk.errors import WaferFileError
    from wafertk.features import extract_file, parse_sets

    names = parse_sets(sets)  # fail fast on an unknown set, before opening anything
    if not wafers.exists():
        raise WaferFileError(wafers, "no such file")
    out = extract_file(wafers, output, names, n_jobs=jobs, batch_size=batch_size,
                       progress=False if quiet else None)
    if not quiet:
        click.echo(f"wrote {out}")


COMMANDS = [features]
