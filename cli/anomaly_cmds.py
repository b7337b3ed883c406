"""``wafertk anomaly train|score``: unsupervised anomaly detectors (thin over wafertk.anomaly).

Paths, the config and the data are checked before TensorFlow is imported, so a typo fails in
milliseconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from wafertk.anomaly.config import MODEL_NAMES

from ._common import (
    check_input_file,
    check_output,
    echo_summary,
    handle_errors,
    import_tensorflow,
    output_option,
    quiet_option,
)

#: command-line flag -> config key it overrides
OVERRIDES = {"--model": "model.name", "--epochs": "train.epochs",
             "--batch-size": "train.batch_size", "--seed": "train.seed",
             "--input-size": "data.input_size", "--latent-dim": "model.latent_dim",
             "--attention/--no-attention": "model.attention",
             "--normal-class": "data.normal_class", "--train-on": "data.train_on",
             "--centre-weights": "model.centre_weights", "--transforms": "model.transforms",
             "--max-train": "data.max_train", "--trim-fraction": "train.trim_fraction",
             "--weights": "model.weights", "--k": "model.k"}
MODEL_CHOICES = MODEL_NAMES


def _check_data(path: Path) -> Path:
    if path.is_dir():
        return path
    return check_input_file(path, "wafers.h5 file, .npy array or image folder")


def _list(value: str | None, cast=str) -> list | None:
    if value is None:
        return None
    from wafertk.errors import ConfigError

    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"cannot read {value!r} as a comma-separated list of numbers") \
            from None


@click.group("anomaly", short_help="Unsupervised anomaly detectors: train, score.")
def anomaly_group() -> None:
    """Unsupervised anomaly detection: learn normal wafers (or images), score new ones.

    Scores are higher for more anomalous samples. See docs/anomaly.md.
    """


@anomaly_group.command("train", short_help="Train an anomaly detector on normal data.")
@click.argument("data", type=click.Path(path_type=Path))
@output_option("Run folder (written atomically; replaced if it is an earlier run).")
@click.option("--model", "model", type=click.Choice(MODEL_CHOICES),
              help="Detector (default: the config's model.name, vae).")
@click.option("--config", "config", default="anomaly", show_default=True,
              help="Packaged config name or YAML path.")
@click.option("--epochs", type=int, help="Override train.epochs.")
@click.option("--batch-size", type=int, help="Override train.batch_size.")
@click.option("--seed", type=int, help="Override train.seed.")
@click.option("--input-size", type=int, help="Override data.input_size (wafer grid side).")
@click.option("--latent-dim", type=int, help="Override model.latent_dim.")
@click.option("--attention/--no-attention", default=None,
              help="Self-attention block in the encoder (model.attention).")
@click.option("--normal-class", help="Override data.normal_class (wafers: none; image "
                                     "folders: a sub-folder).")
@click.option("--train-on", type=click.Choice(("normal", "all")),
              help="normal: the normal class only; all: every sample (labels ignored).")
@click.option("--centre-weights", help="ocvae: comma-separated weights, e.g. 0.1,1,10.")
@click.option("--transforms", help="rotation: comma-separated, of rotate, flip, translate.")
@click.option("--max-train", type=int, help="At most this many training samples.")
@click.option("--trim-fraction", type=float,
              help="Robust training on data holding anomalies: share of each batch (highest "
                   "loss) left out; features-knn: of the training wafers. Overrides "
                   "train.trim_fraction.")
@click.option("--weights", type=click.Path(path_type=Path),
              help="pretrained-knn: the backbone's local pretrained weights file "
                   "(model.weights).")
@click.option("--k", "k", type=int, help="features-knn, pretrained-knn: neighbours averaged "
                                         "(model.k).")
@quiet_option
@handle_errors
def train(data: Path, output: Path, model, config, epochs, batch_size, seed, input_size,
          latent_dim, attention, normal_class, train_on, centre_weights, transforms,
          max_train, trim_fraction, weights, k, quiet: bool) -> None:
    """Train an anomaly detector on DATA (a wafers.h5, an image folder or an .npy array).

    Wafers: trained on the normal wafers ('none') of the training lots where labels exist,
    on every wafer of an unlabeled file; validated on the other lots (validation AUC logged
    each epoch when labels exist). Image folders: sub-folders are classes; --normal-class
    picks the normal one (CIFAR-10's one-class protocol).

    \b
    Examples:
      wafertk anomaly train --model vae wafers.h5 -o runs/vae
      wafertk anomaly train --model ocvae --centre-weights 0.1,1,10 wafers.h5 -o runs/ocvae
      wafertk anomaly train --model deep-svdd cifar10/train --normal-class cat -o runs/cat
      wafertk anomaly train --model features-knn archive.h5 --trim-fraction 0.1 -o runs/knn
      wafertk anomaly train --model pretrained-knn photos/ --normal-class good \\
          --weights squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5 -o runs/pknn
    """
    from wafertk.anomaly.config import AnomalyConfig
    from wafertk.config import load_config

    t0 = time.perf_counter()
    data = _check_data(data)
    output = check_output(output, folder=True, marker="manifest.json", inputs=[data])
    values = {"--model": model, "--epochs": epochs, "--batch-size": batch_size,
              "--seed": seed, "--input-size": input_size, "--latent-dim": latent_dim,
              "--attention/--no-attention": attention, "--normal-class": normal_class,
              "--train-on": train_on, "--centre-weights": _list(centre_weights, float),
              "--transforms": _list(transforms), "--max-train": max_train,
              "--trim-fraction": trim_fraction,
              "--weights": None if weights is None else str(weights), "--k": k}
    cfg = load_config(AnomalyConfig, config,
                      {OVERRIDES[flag]: v for flag, v in values.items()},
                      labels={key: flag for flag, key in OVERRIDES.items()})
    from wafertk.anomaly.run import read_data

    if cfg.model.name == "pretrained-knn" and cfg.model.weights is not None:
        check_input_file(cfg.model.weights, "weights file")
    read_data(data, cfg)  # bad data fails before TensorFlow loads
    import_tensorflow()
    from wafertk.anomaly.run import train_run

    def show(line: str) -> None:
        click.echo(line, err=True)

    path = train_run(data, output, cfg, on_epoch=None if quiet else show)
    import json

    extra = json.loads((path / "manifest.json").read_text())["extra"]
    info, val = extra["data"], extra["validation"]
    auc = val.get("roc_auc")
    details = (f"{cfg.model.name} on {info['train']:,} {info['kind']}"
               + (f", validation ROC AUC {auc:.4f} ({val['n']:,} samples)"
                  if auc is not None else ""))
    echo_summary(quiet, path, details, t0)


@anomaly_group.command("score", short_help="Score a file with an anomaly run.")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@output_option("Output folder: scores.csv (+ report/ when the file is labelled).")
@click.option("--batch-size", type=int, default=4096, show_default=True,
              help="Wafers read and scored at a time.")
@quiet_option
@handle_errors
def score(run: Path, data: Path, output: Path, batch_size: int, quiet: bool) -> None:
    """Score every wafer (or image) of DATA with the detector of RUN.

    Writes OUTPUT/scores.csv (wafer_id or file, anomaly_score, anomalous; higher score =
    more anomalous; anomalous = 1 at or above the run's threshold) and, when DATA is labelled,
    OUTPUT/report/ (ROC-AUC, PR-AUC, the threshold sweep).

    \b
    Example:
      wafertk anomaly score runs/vae wafers.h5 -o out/
    """
    from wafertk.anomaly import ANOMALY_KIND
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    t0 = time.perf_counter()
    load_manifest(resolve_model(str(run)), ANOMALY_KIND)  # wrong kind: before TensorFlow
    data = _check_data(data)
    output = check_output(output, folder=True, marker="scores.csv", inputs=[data])
    import_tensorflow()
    from wafertk.anomaly.run import score_run

    res = score_run(run, data, output, batch_size=batch_size)
    details = (f"{res['n']:,} scored, {res['anomalous']:,} anomalous (threshold "
               f"{res['threshold']:.4g})"
               + (f", ROC AUC {res['roc_auc']:.4f}" if res.get("roc_auc") is not None else ""))
    echo_summary(quiet, output, details, t0)


COMMANDS = [anomaly_group]
