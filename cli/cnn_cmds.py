"""``wafertk train detector|classifier``: train the wafer CNNs.

Paths and the config are checked before TensorFlow is imported, so a typo fails in
milliseconds; TensorFlow is imported only when a command trains, never by ``wafertk --help``.
"""

from __future__ import annotations

import time

import click

from ._common import (
    check_input_file,
    check_output,
    echo_summary,
    handle_errors,
    import_tensorflow,
    output_option,
    quiet_option,
    verbose,
)

#: command-line flag -> config key it overrides
OVERRIDES = {"--epochs": "train.epochs", "--batch-size": "train.batch_size",
             "--seed": "train.seed", "--input-size": "data.input_size",
             "--weights": "model.weights", "--fine-tune-epochs": "fine_tune.epochs"}


def _train_options(func):
    for opt in reversed([
        click.option("--data", "data", required=True, type=click.Path(),
                     help="Labeled wafers.h5 file."),
        output_option("Run folder (written atomically; replaced if it exists)."),
        click.option("--config", "config",
                     help="Packaged config name or YAML path (default: the packaged config "
                          "of the same name, the shipped model's recipe)."),
        click.option("--epochs", type=int, help="Override train.epochs."),
        click.option("--batch-size", type=int, help="Override train.batch_size."),
        click.option("--seed", type=int, help="Override train.seed."),
        click.option("--input-size", type=int, help="Override data.input_size."),
        click.option("--weights", type=click.Path(),
                     help="Transfer architectures: local weights file of the backbone "
                          "(overrides model.weights; never downloaded)."),
        click.option("--fine-tune-epochs", type=int,
                     help="Transfer architectures: override fine_tune.epochs."),
        quiet_option,
    ]):
        func = opt(func)
    return func


def _run_training(task: str, data, output, config, epochs, batch_size, seed, input_size,
                  quiet: bool, weights=None, fine_tune_epochs=None) -> None:
    from wafertk.config import load_config
    from wafertk.training.config import CnnTrainConfig

    t0 = time.perf_counter()
    data = check_input_file(data)
    output = check_output(output, folder=True, marker="manifest.json")
    values = {"--epochs": epochs, "--batch-size": batch_size, "--seed": seed,
              "--input-size": input_size, "--weights": weights,
              "--fine-tune-epochs": fine_tune_epochs}
    cfg = load_config(CnnTrainConfig, config or task,
                      {OVERRIDES[flag]: v for flag, v in values.items()},
                      labels={key: flag for flag, key in OVERRIDES.items()})
    from wafertk.config import resolve_config
    from wafertk.errors import ConfigError
    from wafertk.training.trainer import architecture_problem

    problem = architecture_problem(cfg, task)
    if problem:
        raise ConfigError(f"{resolve_config(config or task)}: model.architecture: {problem}")
    from wafertk.data.h5 import read_wafers

    ws = read_wafers(data)
    import_tensorflow()
    from wafertk.training import trainer

    def show(line: str) -> None:
        click.echo(line, err=True)

    path = trainer.train(ws, output, cfg, task, data_path=data, verbose=verbose(),
                         on_epoch=None if quiet else show)
    import json

    figures = json.loads((path / "manifest.json").read_text())["extra"]["validation"]
    if task == "detector":
        auc = figures.get("roc_auc")
        details = (f"{task}, validation recall {figures['recall']:.4f}, precision "
                   f"{figures['precision']:.4f}, ROC AUC "
                   f"{'n/a' if auc is None else format(auc, '.4f')}")
    else:
        details = (f"{task}, validation accuracy {figures['accuracy']:.4f}, macro-F1 "
                   f"{figures['macro_f1']:.4f}")
    echo_summary(quiet, path, details, t0)


@click.command("detector", short_help="Train the phase-1 CNN (good vs defective).")
@_train_options
@handle_errors
def detector(data, output, config, epochs, batch_size, seed, input_size, weights,
             fine_tune_epochs, quiet) -> None:
    """Train the phase-1 CNN (good vs defective) on a labeled wafers.h5 file.

    Without --config it trains the shipped detector's recipe (the packaged config
    'detector'); --config takes a packaged config's name or a YAML path, and the flags
    override single values.

    \b
    Example:
      wafertk train detector --data train.h5 -o runs/detector
    """
    _run_training("detector", data, output, config, epochs, batch_size, seed, input_size,
                  quiet, weights, fine_tune_epochs)


@click.command("classifier", short_help="Train the phase-2 pattern CNN (8 defect classes).")
@_train_options
@handle_errors
def classifier(data, output, config, epochs, batch_size, seed, input_size, weights,
               fine_tune_epochs, quiet) -> None:
    """Train the phase-2 pattern CNN (8 defect classes, class-weighted).

    Without --config it trains the shipped classifier's recipe (the packaged config
    'classifier'); --config takes a packaged config's name or a YAML path.

    \b
    Example:
      wafertk train classifier --data train.h5 -o runs/classifier
      wafertk train classifier --data train.h5 -o runs/transfer \\
          --config classifier_transfer --weights squeezenet_weights_..._notop.h5
    """
    _run_training("classifier", data, output, config, epochs, batch_size, seed, input_size,
                  quiet, weights, fine_tune_epochs)


TRAIN_COMMANDS = [detector, classifier]
