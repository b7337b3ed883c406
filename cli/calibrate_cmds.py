"""``wafertk calibrate``: refit a model's decisions on a fab's own labelled wafers."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ._common import (
    check_input_file,
    check_output,
    echo_summary,
    handle_errors,
    import_tensorflow,
    output_option,
    quiet_option,
)


@click.command("calibrate", short_help="Refit threshold, temperature and review level.")
@click.argument("model")
@click.argument("wafers", type=click.Path(path_type=Path))
@output_option("New model folder (written atomically; MODEL itself is not changed).")
@click.option("--target-recall", type=float, default=None,
              help="Detector: the highest threshold reaching this recall on WAFERS.")
@click.option("--min-precision", type=float, default=None,
              help="Detector: the highest recall whose precision reaches this value.")
@click.option("--max-error", type=float, default=0.02, show_default=True,
              help="Classifier: error rate allowed among automatically accepted wafers.")
@click.option("--coverage", type=float, default=0.9, show_default=True,
              help="Classifier: coverage of the conformal candidate sets.")
@click.option("--detector", "detector", default=None,
              help="Classifier: choose the review level on the two-phase output with this "
                   "detector over all wafers (as classify flags them).")
@click.option("--tta", type=click.Choice(["none", "flip", "rot4", "d4"]), default=None,
              help="CNNs: test-time augmentation of the new model (outputs averaged over "
                   "rotations/flips; decisions fitted with it). Default: the model's own.")
@click.option("--screen-margin", type=float, default=None,
              help="Ensemble detector: let its CNN's single pass pass the clearly good "
                   "wafers alone, below this margin (0-1] times the lowest such probability "
                   "of a flagged wafer here; 0 removes the screen. Default: refit the "
                   "model's own screen.")
@click.option("--batch-size", type=int, default=1024, show_default=True)
@quiet_option
@handle_errors
def calibrate(model, wafers, output, target_recall, min_precision, max_error, coverage,
              detector, tta, screen_margin, batch_size, quiet) -> None:
    """Refit MODEL's threshold, temperature and review level on labelled WAFERS.

    The first thing a new fab does: the shipped models' decisions were fitted on WM-811K
    wafers; refit them on a few hundred of your own labelled wafers, at your own defect rate.
    MODEL is a shipped model name (detector, classifier, xgboost) or a model folder. A
    detector gets a new temperature and threshold (default rule: the highest F1; or
    --target-recall / --min-precision); a pattern classifier a new temperature and the review
    level that lets the most wafers through with at most --max-error errors among them, and
    the threshold of its conformal candidate sets (--coverage).

    \b
    Examples:
      wafertk calibrate detector fab_labelled.h5 -o models/detector-fab --min-precision 0.8
      wafertk calibrate classifier fab_labelled.h5 -o models/classifier-fab
      wafertk classify wafers.h5 -o out/ --detector models/detector-fab \\
          --classifier models/classifier-fab
    """
    from wafertk.inspect.model import check_unit_interval

    t0 = time.perf_counter()
    check_input_file(wafers)
    check_output(output, folder=True, marker="manifest.json")
    check_unit_interval(target_recall, "--target-recall", open_low=True, open_high=False)
    check_unit_interval(min_precision, "--min-precision", open_low=True, open_high=False)
    check_unit_interval(max_error, "--max-error", open_low=False, open_high=True)
    check_unit_interval(coverage, "--coverage", open_low=True, open_high=True)
    check_unit_interval(screen_margin, "--screen-margin", open_low=False, open_high=False)
    from wafertk.data.h5 import WaferFile
    from wafertk.models.manifest import DETECTOR_KINDS, load_manifest
    from wafertk.registry import resolve_model

    WaferFile(wafers).close()
    load_manifest(resolve_model(model), DETECTOR_KINDS + (
        "cnn-classifier", "xgboost-classifier", "ensemble-classifier"))
    import_tensorflow()
    from wafertk.calibrate import calibrate_model

    res = calibrate_model(model, wafers, output, target_recall=target_recall,
                          min_precision=min_precision, max_error=max_error,
                          coverage=coverage, detector=detector, batch_size=batch_size,
                          tta=tta, screen_margin=screen_margin)
    echo_summary(quiet, output, res.details(), t0)


COMMANDS = [calibrate]
