"""``wafertk features``: batch feature extraction of a wafers.h5 file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ._common import (
    check_input_file,
    check_output,
    echo_summary,
    expand_wafer_inputs,
    handle_errors,
    output_option,
    quiet_option,
    scheduler_option,
)


@click.command("features", short_help="Wafer-map features of a wafers.h5 file, one row per wafer.")
@click.argument("wafers", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option("Output table: .csv for CSV, Parquet otherwise (written atomically).")
@click.option("--set", "sets", default=None,
              help="Comma-separated feature sets (default: gabor,filters,density,radon,"
                   "geometry,meta,spatial,local).")
@click.option("--jobs", "-j", "jobs", default=1, show_default=True, type=int,
              help="Worker processes (-1 = all cores).")
@click.option("--batch-size", default=2048, show_default=True, type=int,
              help="Wafers per batch (memory bound).")
@scheduler_option
@quiet_option
@handle_errors
def features(wafers: tuple[Path, ...], output: Path, sets: str | None, jobs: int,
             batch_size: int, scheduler: str | None, quiet: bool) -> None:
    """Compute wafer-map features of WAFERS into a table (one row per wafer).

    Keeps the wafer_id, lot and label columns, then one column per feature
    (``<set>__<name>``). Sets: gabor, filters, density, radon, geometry, meta,
    spatial (docs/features.md).

    WAFERS is one wafers.h5 file, several, or a quoted glob ('archive/*.h5'); their rows
    follow one another in the table. --scheduler runs it on a Dask cluster
    (docs/scale-out.md).

    \b
    Examples:
      wafertk features wafers.h5 -o features.parquet --set density,radon,geometry --jobs 2
      wafertk features 'archive/*.h5' -o features.parquet --scheduler local:2
    """
    from wafertk.data.h5 import WaferFile
    from wafertk.errors import WafertkError
    from wafertk.features import extract_file, feature_names, parse_sets

    t0 = time.perf_counter()
    names = parse_sets(sets)  # fail fast on an unknown set, before opening anything
    if batch_size < 1:
        raise WafertkError(f"--batch-size must be at least 1, got {batch_size}")
    paths = expand_wafer_inputs(wafers, scheduler)
    if paths is not None:
        from wafertk.distributed import check_inputs, extract_files

        if jobs != 1:
            raise WafertkError("--jobs applies to one file without --scheduler; for many "
                               "files or a cluster use --scheduler (local:N for N processes)")
        check_output(output, folder=False, inputs=paths)
        files = check_inputs(paths, allow_empty=True)
        extract_files(files, output, names, batch_size=batch_size, scheduler=scheduler,
                      progress=False if quiet else None)
        n = sum(f.n for f in files)
        echo_summary(quiet, output, f"{n:,} wafers x {len(feature_names(names))} features", t0)
        return
    wafers = wafers[0]
    check_input_file(wafers)
    check_output(output, folder=False, inputs=[wafers])
    with WaferFile(wafers, allow_empty=True) as f:  # the whole file's checks, before writing
        n = len(f)
    extract_file(wafers, output, names, n_jobs=jobs, batch_size=batch_size,
                 progress=False if quiet else None)
    echo_summary(quiet, output, f"{n:,} wafers x {len(feature_names(names))} features", t0)


COMMANDS = [features]
