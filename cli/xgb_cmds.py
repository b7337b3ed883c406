"""``wafertk train xgboost`` and ``wafertk evaluate`` (XGBoost imported only when run)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import handle_errors


@click.command("xgboost")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labeled wafers.h5 file.")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False,
                                                                    path_type=Path),
              help="Run folder (written atomically; replaced if it exists).")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config (default: built-in defaults = configs/xgboost.yaml).")
@click.option("--classes", type=click.Choice(["defects", "all"]),
              help="Override classes: the 8 defect patterns or all 9 classes.")
@click.option("--seed", type=int, help="Override seed (split and XGBoost).")
@click.option("--jobs", "-j", "jobs", type=int, help="Override n_jobs.")
@handle_errors
def train_xgboost_cmd(data: Path, out: Path, config: Path | None, classes: str | None,
                      seed: int | None, jobs: int | None) -> None:
    """Train the XGBoost baseline on wafer-map features.

    Makes a lot-disjoint stratified validation split first, trains with balanced sample
    weights and early stopping on it, and writes model.json, manifest.json, config.yaml and
    the validation report (report.json/.md/.html) into the run folder.

    \b
    Example:
      wafertk train xgboost --data train.h5 -o models/xgb --config configs/xgboost.yaml
    """
    from wafertk.baseline.train import XGBoostTrainConfig, train_xgboost
    from wafertk.config import load_config
    from wafertk.data.h5 import read_wafers

    cfg = load_config(XGBoostTrainConfig, config,
                      {"classes": classes, "seed": seed, "n_jobs": jobs})
    ws = read_wafers(data)
    path = train_xgboost(ws, out, cfg, data_path=str(data))
    report = json.loads((path / "report.json").read_text())["metrics"]
    click.echo(f"wrote {path} (validation accuracy {report['accuracy']:.4f}, "
               f"macro-F1 {report['macro_f1']:.4f})")


@click.command("evaluate")
@click.argument("wafers", type=click.Path(path_type=Path))
@click.option("--model", "model", required=True, type=click.Path(path_type=Path),
              help="Saved model folder (any kind: XGBoost, CNN detector or classifier).")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False,
                                                                    path_type=Path),
              help="Report folder (report.json, report.md, report.html, PNGs).")
@click.option("--batch-size", default=4096, show_default=True, type=int)
@handle_errors
def evaluate(wafers: Path, model: Path, out: Path, batch_size: int) -> None:
    """Evaluate a saved model on a labeled WAFERS file and write the report.

    \b
    Example:
      wafertk evaluate --model models/xgb labeled.h5 -o report/
    """
    from wafertk.evaluate import evaluate_model

    res = evaluate_model(model, wafers, out, batch_size=batch_size)
    if res["binary"] is not None:
        b = res["binary"]
        auc = "n/a" if b["roc_auc"] is None else f"{b['roc_auc']:.4f}"
        click.echo(f"wrote {out} (ROC AUC {auc}, F1 {b['f1']:.4f} at {b['threshold']:.3f})")
    else:
        m = res["metrics"]
        click.echo(f"wrote {out} (accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
                   f"{m['n']} wafers)")


COMMANDS = [evaluate]
TRAIN_COMMANDS = [train_xgboost_cmd]
