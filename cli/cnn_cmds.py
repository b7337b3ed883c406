"""``wafertk train detector|classifier``: train the wafer CNNs.

TensorFlow is imported only when a command runs, never by ``wafertk --help``.
"""

from __future__ import annotations

import click

from ._common import handle_errors


def _verbose() -> bool:
    return bool((click.get_current_context().find_root().obj or {}).get("verbose"))


def _train_options(func):
    for opt in reversed([
        click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
                     help="Labeled wafers.h5 file."),
        click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
                     help="Run folder (written atomically; replaced if it exists)."),
        click.option("--config", "config", type=click.Path(dir_okay=False),
                     help="YAML config (default: built-in defaults)."),
        click.option("--epochs", type=int, help="Override train.epochs."),
        click.option("--batch-size", type=int, help="Override train.batch_size."),
        click.option("--seed", type=int, help="Override train.seed."),
        click.option("--input-size", type=int, help="Override data.input_size."),
    ]):
        func = opt(func)
    return func


def _run_training(task: str, data, out, config, epochs, batch_size, seed, input_size) -> None:
    from wafertk.config import load_config
    from wafertk.data.h5 import read_wafers
    from wafertk.training.config import CnnTrainConfig

    cfg = load_config(CnnTrainConfig, config, {
        "train.epochs": epochs, "train.batch_size": batch_size, "train.seed": seed,
        "data.input_size": input_size})
    ws = read_wafers(data)
    from wafertk.training import trainer

    fn = trainer.train_detector if task == "detector" else trainer.train_classifier
    path = fn(ws, out, cfg, verbose=_verbose())
    click.echo(f"wrote {path}")


@click.command("detector")
@_train_options
@handle_errors
def detector(data, out, config, epochs, batch_size, seed, input_size) -> None:
    """Train the phase-1 CNN (good vs defective) on a labeled wafers.h5 file.

    \b
    Example:
      wafertk train detector --data train.h5 -o runs/detector --config configs/detector.yaml
    """
    _run_training("detector", data, out, config, epochs, batch_size, seed, input_size)


@click.command("classifier")
@_train_options
@handle_errors
def classifier(data, out, config, epochs, batch_size, seed, input_size) -> None:
    """Train the phase-2 pattern CNN (8 defect classes, class-weighted).

    \b
    Example:
      wafertk train classifier --data train.h5 -o runs/classifier --config configs/classifier.yaml
    """
    _run_training("classifier", data, out, config, epochs, batch_size, seed, input_size)


TRAIN_COMMANDS = [detector, classifier]
