"""``wafertk detect`` and ``wafertk classify``: batch inspection of a wafers.h5 file.

TensorFlow is imported only when a command runs, never by ``wafertk --help``.
"""

from __future__ import annotations

import click

from ._common import handle_errors


@click.command("detect")
@click.argument("wafers", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder (predictions.csv, report.html).")
@click.option("--model", "model", type=click.Path(),
              help="Detector model folder (default: the shipped detector).")
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Decision threshold on P(defective) (default: the model's, chosen on "
                   "validation for its target recall).")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@handle_errors
def detect(wafers, out, model, batch_size, threshold, no_report) -> None:
    """Phase 1: flag defective wafers (writes OUT/predictions.csv and OUT/report.html).

    \b
    Example:
      wafertk detect wafers.h5 -o out/
    """
    from wafertk.inspect import detect as run

    res = run(wafers, out, detector=model, batch_size=batch_size, report=not no_report,
              threshold=threshold)
    click.echo(res.summary())


@click.command("classify")
@click.argument("wafers", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder (predictions.csv, report.html).")
@click.option("--two-phase/--single-phase", default=False,
              help="Run the pattern classifier only on wafers the detector flags.")
@click.option("--detector", "detector_path", type=click.Path(),
              help="Detector model folder (default: shipped).")
@click.option("--classifier", "classifier_path",
              help="Pattern model folder, or 'xgboost' for the shipped XGBoost model "
                   "(default: the shipped CNN).")
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Phase-1 threshold on P(defective) (default: the detector's).")
@click.option("--review-below", type=float, default=None,
              help="Flag wafers for review below this confidence (default: the model's, 0.6).")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@handle_errors
def classify(wafers, out, two_phase, detector_path, classifier_path, batch_size, threshold,
             review_below, no_report) -> None:
    """Name the defect pattern of every wafer (OUT/predictions.csv, OUT/report.html).

    \b
    Examples:
      wafertk classify --two-phase wafers.h5 -o out/
      wafertk classify wafers.h5 -o out/ --classifier xgboost
    """
    from wafertk.inspect import classify as run

    res = run(wafers, out, two_phase=two_phase, detector=detector_path,
              classifier=classifier_path, batch_size=batch_size, report=not no_report,
              threshold=threshold, review_below=review_below)
    click.echo(res.summary())


COMMANDS = [detect, classify]
