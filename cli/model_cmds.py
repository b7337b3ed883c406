"""``wafertk train ...`` (group; subcommands come from other modules), ``wafertk models`` and
``wafertk ensemble``."""

from __future__ import annotations

import click

from ._common import (
    check_output,
    echo_summary,
    handle_errors,
    import_tensorflow,
    output_option,
    quiet_option,
)


@click.group(short_help="Train a model on a labeled wafers.h5 file.")
def train() -> None:
    """Train a model on a labeled wafers.h5 file (see the subcommands).

    Without --config each trains the shipped model's recipe (the packaged config of the
    same name).
    """


def _figures(validation: dict) -> str:
    keys = ("recall", "precision", "roc_auc", "accuracy", "macro_f1")
    shown = [f"{k} {validation[k]:.4f}" for k in keys
             if isinstance(validation.get(k), (int, float))]
    return ", ".join(shown) or "no validation figures"


@click.command("models", short_help="List the model architectures and the shipped models.")
@click.argument("pattern", default="*")
@handle_errors
def models(pattern: str) -> None:
    """List the registered model architectures and the shipped models (glob PATTERN).

    Architectures are what training configs name (model.architecture); shipped models are
    what --model, --detector and --classifier accept by name.
    """
    from wafertk.errors import WafertkError
    from wafertk.registry import list_models, list_shipped

    archs, shipped = list_models(pattern), list_shipped(pattern)
    if not archs and not shipped:
        from wafertk.errors import UnknownNameError, did_you_mean

        names = [e.name for e in list_models()] + [m.name for m in list_shipped()]
        raise UnknownNameError(f"no model matches {pattern!r}{did_you_mean(pattern, names)}")
    click.echo("Architectures (configs: model.architecture):")
    for e in list_models(pattern):
        click.echo(f"  {e.name:<22} {e.family:<10} {e.summary}")
    click.echo("Shipped models (--model NAME):")
    for s in list_shipped(pattern):
        try:
            man = s.manifest()
        except WafertkError as exc:
            click.echo(f"  {s.name:<22} unusable: {exc}")
            continue
        figures = _figures((man.extra or {}).get("validation") or {})
        click.echo(f"  {s.name:<22} {man.kind:<19} {s.path}")
        click.echo(f"  {'':<22} validation: {figures}")
        cal = (man.extra or {}).get("calibration")
        if isinstance(cal, dict) and isinstance(cal.get("after"), dict):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in cal["after"].items()
                              if isinstance(v, (int, float)))
            click.echo(f"  {'':<22} calibrated on {cal.get('used', '?')} wafers: {shown}")
    if list_shipped(pattern):
        click.echo("validation: the training run's lot-disjoint split (mostly curated Training "
                   "wafers);\ncalibrated: the production-like lots the decisions were fitted "
                   "on. Figures on the\nproduction test, which chose nothing: "
                   "docs/production.md.")


@click.command("ensemble", short_help="Combine classifiers or detectors (mean of probabilities).")
@click.argument("members", nargs=-1, required=True)
@output_option("New ensemble model folder (written atomically).")
@click.option("--weight", "weights", type=float, multiple=True,
              help="One per member, in order (default: equal weights).")
@quiet_option
@handle_errors
def ensemble(members, output, weights, quiet) -> None:
    """Combine pattern classifiers or detectors MEMBERS (folders or shipped names) into one
    model.

    The ensemble's probabilities are the weighted mean of its members' (same classes, same
    order); the members are copied into the new folder. Pattern classifiers make a phase-2
    model (use it as --classifier, refit its review level and conformal sets with wafertk
    calibrate); detectors (CNN detectors, XGBoost trained with --classes binary) make a
    phase-1 model (use it as --detector, refit its temperature and threshold with wafertk
    calibrate).

    \b
    Examples:
      wafertk ensemble classifier xgboost -o models/cnn+xgb
      wafertk calibrate models/cnn+xgb fab.h5 -o models/cnn+xgb-fab --detector detector
      wafertk ensemble runs/detector runs/xgb-detector -o models/det+xgb
      wafertk calibrate models/det+xgb fab.h5 -o models/det+xgb-fab --min-precision 0.8
    """
    import time

    from wafertk.errors import WafertkError
    from wafertk.models.ensemble import DETECTOR_MEMBER_KINDS, MEMBER_KINDS, build_ensemble
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    t0 = time.perf_counter()
    check_output(output, folder=True, marker="manifest.json")
    if len(members) < 2:
        raise WafertkError("an ensemble needs at least two models")
    if weights and len(weights) != len(members):
        raise WafertkError(f"--weight given {len(weights)} times for {len(members)} members")
    for m in members:
        load_manifest(resolve_model(m), MEMBER_KINDS + DETECTOR_MEMBER_KINDS)
    import_tensorflow()
    build_ensemble(members, output, weights=list(weights) or None)
    w = list(weights) or [1.0] * len(members)
    echo_summary(quiet, output, ", ".join(f"{m} x {v / sum(w):.2f}"
                                          for m, v in zip(members, w, strict=True)), t0)


COMMANDS = [train, models, ensemble]
