"""``wafertk train xgboost`` and ``wafertk evaluate`` (XGBoost/TensorFlow imported only when run).

Paths, the config and the model name are checked before any model is loaded.
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


@click.command("xgboost", short_help="Train the XGBoost baseline on wafer-map features.")
@click.option("--data", "data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Labeled wafers.h5 file; with --scheduler, repeat it or give a quoted glob "
                   "for many files.")
@output_option("Run folder (written atomically; replaced if it exists).")
@click.option("--config", "config",
              help="Packaged config name or YAML path (default: the packaged config "
                   "'xgboost', the shipped model's recipe).")
@click.option("--classes", type=click.Choice(["defects", "all", "binary"]),
              help="Override classes: the 8 defect patterns, all 9 classes, or good vs "
                   "defective (a phase-1 detector, e.g. for 'wafertk ensemble').")
@click.option("--seed", type=int, help="Override seed (XGBoost's random_state; also the "
              "validation split's unless split_seed is set).")
@click.option("--split-seed", type=int, help="Override split_seed (the validation split).")
@click.option("--jobs", "-j", "jobs", type=int, help="Override n_jobs.")
@scheduler_option
@quiet_option
@handle_errors
def train_xgboost_cmd(data: tuple[Path, ...], output: Path, config: str | None,
                      classes: str | None, seed: int | None, split_seed: int | None,
                      jobs: int | None, scheduler: str | None, quiet: bool) -> None:
    """Train the XGBoost baseline on wafer-map features.

    Makes a lot-disjoint stratified validation split first, trains with balanced sample
    weights and early stopping on it, and writes model.json, manifest.json, config.yaml and
    the validation report (report.json/.md/.html) into the run folder.

    With --scheduler, features are extracted on a Dask cluster from every --data file and
    the model is trained with xgboost.dask (docs/scale-out.md).

    \b
    Examples:
      wafertk train xgboost --data train.h5 -o models/xgb
      wafertk train xgboost --data 'archive/*.h5' -o models/xgb --scheduler local:2
    """
    from wafertk.baseline.train import XGBoostTrainConfig, train_xgboost
    from wafertk.config import load_config
    from wafertk.data.h5 import read_wafers
    from wafertk.errors import WafertkError

    t0 = time.perf_counter()
    paths = expand_wafer_inputs(data, scheduler)
    if paths is not None and scheduler is None:
        raise WafertkError("several --data files (or a glob) need --scheduler (local:N runs "
                           "on this machine)")
    output = check_output(output, folder=True, marker="manifest.json",
                          inputs=paths or [data[0]])
    cfg = load_config(XGBoostTrainConfig, config or "xgboost",
                      {"classes": classes, "seed": seed, "split_seed": split_seed,
                       "n_jobs": jobs},
                      labels={"classes": "--classes", "seed": "--seed",
                              "split_seed": "--split-seed", "n_jobs": "--jobs"})
    if paths is not None:
        from wafertk.distributed import check_inputs, train_xgboost_files

        path = train_xgboost_files(check_inputs(paths), output, cfg, scheduler=scheduler)
    else:
        data = check_input_file(data[0])
        ws = read_wafers(data)
        path = train_xgboost(ws, output, cfg, data_path=str(data))
    import json

    report = json.loads((path / "report.json").read_text())["metrics"]
    echo_summary(quiet, path, f"xgboost, validation accuracy {report['accuracy']:.4f}, "
                 f"macro-F1 {report['macro_f1']:.4f}", t0)


@click.command("evaluate", short_help="Evaluate a model on a labeled wafers.h5 file.")
@click.argument("wafers", type=click.Path(path_type=Path))
@click.option("--model", "model", required=True,
              help="Shipped model name (detector, classifier, xgboost; see `wafertk models`) "
                   "or a saved model folder of any kind.")
@output_option("Report folder (report.json, report.md, report.html, PNGs).")
@click.option("--batch-size", default=4096, show_default=True, type=int)
@quiet_option
@handle_errors
def evaluate(wafers: Path, model: str, output: Path, batch_size: int, quiet: bool) -> None:
    """Evaluate a saved model on a labeled WAFERS file and write the report.

    \b
    Examples:
      wafertk evaluate --model xgboost labeled.h5 -o report/
      wafertk evaluate --model models/xgb labeled.h5 -o report/
    """
    from wafertk.errors import WafertkError
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    t0 = time.perf_counter()
    if batch_size < 1:
        raise WafertkError(f"--batch-size must be at least 1, got {batch_size}")
    wafers = check_input_file(wafers)
    output = check_output(output, folder=True, marker="report.json")
    folder = resolve_model(model)
    if load_manifest(folder).kind.startswith(("cnn-", "ensemble-")):
        import_tensorflow()
    from wafertk.evaluate import evaluate_model

    res = evaluate_model(folder, wafers, output, batch_size=batch_size)
    if res["binary"] is not None:
        b = res["binary"]
        auc = "n/a" if b["roc_auc"] is None else f"{b['roc_auc']:.4f}"
        details = (f"{b['n']} wafers, ROC AUC {auc}, F1 {b['f1']:.4f} at threshold "
                   f"{b['threshold']:.3f}")
    else:
        m = res["metrics"]
        details = (f"{m['n']} wafers, accuracy {m['accuracy']:.4f}, macro-F1 "
                   f"{m['macro_f1']:.4f}")
    echo_summary(quiet, output, details, t0)


COMMANDS = [evaluate]
TRAIN_COMMANDS = [train_xgboost_cmd]
