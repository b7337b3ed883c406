"""``wafertk detect`` and ``wafertk classify``: batch inspection of a wafers.h5 file.

Paths and option values are checked before TensorFlow is imported or a model is loaded;
TensorFlow is imported only when a command runs, never by ``wafertk --help``.
"""

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
    import_tensorflow,
    output_option,
    quiet_option,
    scheduler_option,
)

_OUT_HELP = ("Output folder: predictions.csv, report.html, run.json (replaced as one unit "
             "when the run completes).")


def _common_checks(wafers: Path, output: Path, batch_size: int, models=()) -> None:
    """Everything that can be checked before TensorFlow is imported: paths, options, the
    input file's schema, the model names/folders and their manifests."""
    from wafertk.data.h5 import WaferFile
    from wafertk.inspect import OutputFolder
    from wafertk.inspect.runner import check_batch_size, check_model

    check_input_file(wafers)
    check_output(output, folder=True)
    check_batch_size(batch_size)
    OutputFolder(output).check()
    WaferFile(wafers).close()
    for spec, role in models:
        check_model(spec, role)


def _run_scaled(paths, output: Path, batch_size: int, models, scheduler: str | None,
                **kwargs):
    """Many files and/or a Dask cluster (:func:`wafertk.distributed.inspect_files`).

    Every check (paths, output folder, each file's schema and that they agree, the models'
    manifests, the scheduler's form) comes before anything starts; TensorFlow is imported
    in this process only when it runs the models itself (no scheduler).
    """
    from wafertk.distributed import check_inputs, inspect_files
    from wafertk.inspect import OutputFolder
    from wafertk.inspect.runner import check_batch_size, check_model

    check_output(output, folder=True, inputs=paths)
    check_batch_size(batch_size)
    OutputFolder(output).check()
    files = check_inputs(paths)
    for spec, role in models:
        check_model(spec, role)
    if scheduler is None:
        import_tensorflow()
    return inspect_files(files, output, batch_size=batch_size, scheduler=scheduler, **kwargs)


@click.command("detect", short_help="Phase 1: flag defective wafers (good vs defective).")
@click.argument("wafers", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option(_OUT_HELP)
@click.option("--model", "--detector", "model",
              help="Detector: a shipped model name or a model folder (default: the shipped "
                   "detector).")
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Decision threshold on P(defective), in (0, 1) (default: the model's); "
                   "with --unsupervised, on the anomaly score.")
@click.option("--unsupervised", "unsupervised", metavar="RUN",
              help="Use an anomaly model (a run folder of 'wafertk anomaly train') as phase "
                   "1: predictions.csv gets anomaly_score instead of p_defect.")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@scheduler_option
@quiet_option
@handle_errors
def detect(wafers, output, model, batch_size, threshold, unsupervised, no_report, scheduler,
           quiet) -> None:
    """Phase 1: flag defective wafers (good vs defective) of WAFERS.

    WAFERS is one wafers.h5 file, several, or a quoted glob ('archive/*.h5'); their rows
    follow one another in the output. Writes OUTPUT/predictions.csv (wafer_id, lot,
    wafer_index, p_defect, defective), OUTPUT/report.html and OUTPUT/run.json.

    With --unsupervised RUN an anomaly model replaces the supervised detector: the columns
    are wafer_id, lot, wafer_index, anomaly_score (higher = more anomalous), defective, and
    the report lists the most anomalous wafers first.

    \b
    Examples:
      wafertk detect wafers.h5 -o out/
      wafertk detect 'archive/*.h5' -o out/ --scheduler local:2
      wafertk detect --unsupervised runs/svdd wafers.h5 -o out/
    """
    from wafertk.errors import WafertkError
    from wafertk.inspect.model import check_unit_interval

    t0 = time.perf_counter()
    if unsupervised is not None:
        if model is not None:
            raise WafertkError("--unsupervised and --model/--detector exclude each other")
        role, spec, mode = "anomaly", unsupervised, "anomaly"
    else:
        check_unit_interval(threshold, "--threshold", open_low=True, open_high=True)
        role, spec, mode = "detector", model, "detect"
    paths = expand_wafer_inputs(wafers, scheduler)
    if paths is not None:
        res = _run_scaled(paths, output, batch_size, [(spec, role)], scheduler,
                          mode=mode, detector=spec, report=not no_report,
                          threshold=threshold, progress=False if quiet else None)
        echo_summary(quiet, output, res.details(), t0)
        return
    wafers = wafers[0]
    _common_checks(wafers, output, batch_size, [(spec, role)])
    import_tensorflow()
    from wafertk.inspect import detect as run

    res = run(wafers, output, detector=model, batch_size=batch_size, report=not no_report,
              threshold=threshold, progress=False if quiet else None,
              unsupervised=unsupervised)
    echo_summary(quiet, output, res.details(), t0)


@click.command("classify", short_help="Name the defect pattern of every wafer (two-phase).")
@click.argument("wafers", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option(_OUT_HELP)
@click.option("--two-phase", "mode", flag_value="two-phase", default=True,
              help="Phase 2 only on the wafers phase 1 flags (the default).")
@click.option("--single-phase", "mode", flag_value="single-phase",
              help="Phase 2 on every wafer: only for wafers already known to be defective "
                   "(every wafer gets a defect pattern; no detector, no --threshold).")
@click.option("--detector", "detector",
              help="Phase-1 detector: shipped model name or folder (default: shipped).")
@click.option("--classifier", "classifier",
              help="Phase-2 model: shipped model name ('ensemble', 'classifier', 'xgboost') "
                   "or folder (default: 'ensemble', the mean of the CNN and XGBoost).")
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Phase-1 threshold on P(defective), in (0, 1) (default: the detector's; "
                   "below it, the shipped detector's screen is off: slower).")
@click.option("--review-below", type=float, default=None,
              help="Flag wafers for review below this confidence, in [0, 1] (default: the "
                   "model's, 0.6).")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@scheduler_option
@quiet_option
@handle_errors
def classify(wafers, output, mode, detector, classifier, batch_size, threshold,
             review_below, no_report, scheduler, quiet) -> None:
    """Name the defect pattern of every wafer of WAFERS (two-phase by default).

    Phase 1 flags defective wafers; phase 2 names the pattern of the flagged ones, and the
    others are 'none'. --single-phase skips phase 1 and names a pattern for EVERY wafer: use it
    only for wafers already known to be defective.

    WAFERS is one wafers.h5 file, several, or a quoted glob ('archive/*.h5'); their rows
    follow one another in the output. Writes OUTPUT/predictions.csv, OUTPUT/report.html and
    OUTPUT/run.json. --scheduler runs it on a Dask cluster (docs/scale-out.md).

    \b
    Examples:
      wafertk classify wafers.h5 -o out/
      wafertk classify wafers.h5 -o out/ --classifier xgboost
      wafertk classify --single-phase known_defective.h5 -o out/
      wafertk classify 'archive/*.h5' -o out/ --scheduler tcp://10.0.0.5:8786
    """
    from wafertk.errors import WafertkError
    from wafertk.inspect.model import check_unit_interval

    t0 = time.perf_counter()
    if mode == "single-phase":
        bad = [o for o, v in (("--detector", detector), ("--threshold", threshold))
               if v is not None]
        if bad:
            verb = "does" if len(bad) == 1 else "do"
            raise WafertkError(f"{' and '.join(bad)} {verb} not apply to --single-phase "
                               "(there is no phase 1)")
    check_unit_interval(threshold, "--threshold", open_low=True, open_high=True)
    check_unit_interval(review_below, "--review-below", open_low=False, open_high=False)
    models = [(classifier, "classifier")]
    if mode == "two-phase":
        models.append((detector, "detector"))
    paths = expand_wafer_inputs(wafers, scheduler)
    if paths is not None:
        res = _run_scaled(paths, output, batch_size, models, scheduler, mode=mode,
                          detector=detector, classifier=classifier, report=not no_report,
                          threshold=threshold, review_below=review_below,
                          progress=False if quiet else None)
        echo_summary(quiet, output, res.details(), t0)
        return
    wafers = wafers[0]
    _common_checks(wafers, output, batch_size, models)
    import_tensorflow()
    from wafertk.inspect import classify as run

    res = run(wafers, output, mode=mode, detector=detector, classifier=classifier,
              batch_size=batch_size, report=not no_report, threshold=threshold,
              review_below=review_below, progress=False if quiet else None)
    echo_summary(quiet, output, res.details(), t0)


COMMANDS = [detect, classify]
