"""``wafertk images info|train|evaluate|predict``: image classifiers on class-per-folder data.

Thin over :mod:`wafertk.images`. Paths, the config, the folder scan and the weights path are
checked before TensorFlow is imported, so a typo fails in milliseconds with one line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from wafertk.images.config import MODEL_NAMES

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
             "--batch-size": "train.batch_size", "--learning-rate": "train.learning_rate",
             "--image-size": "data.image_size", "--augment/--no-augment": "augment.enabled",
             "--fine-tune/--no-fine-tune": "fine_tune.enabled",
             "--fine-tune-from": "fine_tune.from_layer",
             "--fine-tune-epochs": "fine_tune.epochs", "--seed": "train.seed",
             "--max-per-class": "data.max_per_class"}


def _tensorflow() -> None:
    # steadier oneDNN throughput on 2 cores (PERFORMANCE_NOTES); read when TF loads
    os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")
    import_tensorflow()


def _balance_lines(scan) -> list[str]:
    from wafertk.images.data import class_balance

    return [f"  {r['class']}: {r['count']:,} ({r['fraction']:.1%})"
            for r in class_balance(scan).to_dict("records")]


@click.group("images", short_help="Image classifiers on class folders: train, evaluate, "
                                  "predict.")
def images_group() -> None:
    """Image classification on folders with one sub-folder per class (cats/, dogs/).

    A small convnet from scratch or a transfer model on a Keras application backbone
    (weights from a local file, never downloaded). See docs/images.md.
    """


@images_group.command("info", short_help="Class-balance table of an image folder.")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--export-npy", type=click.Path(path_type=Path), default=None,
              help="Also write images.npy, labels.npy, classes.txt, files.txt to this folder.")
@click.option("--image-size", type=int, default=150, show_default=True,
              help="Side of the exported images.")
@handle_errors
def info(data_dir: Path, export_npy: Path | None, image_size: int) -> None:
    """Count the images of DATA_DIR per class; report skipped files; optionally export.

    \b
    Example:
      wafertk images info ../shared/data/cats_and_dogs/train
    """
    from wafertk.errors import ConfigError
    from wafertk.images.data import export_npy as export
    from wafertk.images.data import scan_image_folder

    t0 = time.perf_counter()
    if export_npy is not None:
        if image_size < 1:
            raise ConfigError(f"--image-size: {image_size} is not >= 1")
        check_output(export_npy, folder=True, marker="labels.npy", inputs=[data_dir])
    scan = scan_image_folder(data_dir)
    click.echo(f"{data_dir}: {len(scan):,} images in {len(scan.classes)} classes, "
               f"{len(scan.skipped):,} skipped")
    for line in _balance_lines(scan):
        click.echo(line)
    if export_npy is not None:
        _tensorflow()
        export(scan, export_npy, image_size=image_size)
        echo_summary(False, export_npy, f"{len(scan):,} images at {image_size} px", t0)


@images_group.command("train", short_help="Train an image classifier.")
@click.argument("data_dir", type=click.Path(path_type=Path))
@output_option("Run folder (written atomically; replaced if it is an earlier run).")
@click.option("--validation", "validation", type=click.Path(path_type=Path), default=None,
              help="Validation folder (same classes); default a stratified 60/20/20 split.")
@click.option("--model", "model", type=click.Choice(MODEL_NAMES),
              help="Network (default: the config's model.name, small_convnet).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Local weights file of the transfer backbone (default none: random "
                   "weights; nothing is downloaded).")
@click.option("--config", "config", default="images", show_default=True,
              help="Packaged config name or YAML path.")
@click.option("--epochs", type=int, help="Override train.epochs.")
@click.option("--batch-size", type=int, help="Override train.batch_size.")
@click.option("--learning-rate", type=float, help="Override train.learning_rate.")
@click.option("--image-size", type=int, help="Override data.image_size.")
@click.option("--augment/--no-augment", default=None, help="Override augment.enabled.")
@click.option("--fine-tune/--no-fine-tune", default=None,
              help="Override fine_tune.enabled (transfer models).")
@click.option("--fine-tune-from", "fine_tune_from", default=None, metavar="LAYER",
              help="Fine-tune the backbone from this layer on (implies --fine-tune).")
@click.option("--fine-tune-epochs", type=int, help="Override fine_tune.epochs.")
@click.option("--seed", type=int, help="Override train.seed.")
@click.option("--max-per-class", type=int, help="At most this many images per class.")
@quiet_option
@handle_errors
def train(data_dir: Path, output: Path, validation, model, weights, config, epochs,
          batch_size, learning_rate, image_size, augment, fine_tune, fine_tune_from,
          fine_tune_epochs, seed, max_per_class, quiet: bool) -> None:
    """Train on DATA_DIR (one sub-folder per class) and write the run folder OUTPUT.

    Transfer models train a new head on the frozen backbone, then (--fine-tune or
    --fine-tune-from) the unfrozen backbone with SGD + momentum at a low learning rate.
    The run folder holds model.keras, manifest.json, config.yaml, history.csv, curves and
    the evaluation report (report.json/.md/.html) on the validation folder or test split.

    \b
    Examples:
      wafertk images train cats_and_dogs/train --validation cats_and_dogs/validation \\
          --model small_convnet --epochs 30 -o runs/convnet
      wafertk images train cats_and_dogs/train --validation cats_and_dogs/validation \\
          --model squeezenet --weights squeezenet_notop.h5 --image-size 227 \\
          --fine-tune-from fire6_squeeze1x1 -o runs/squeezenet
    """
    from wafertk.images.train import load_image_config, prepare_image_data

    t0 = time.perf_counter()
    if weights is not None:
        check_input_file(weights, "weights file")
    output = check_output(output, folder=True, marker="manifest.json",
                          inputs=[data_dir, validation])
    if fine_tune_from is not None and fine_tune is None:
        fine_tune = True
    values = {"--model": model, "--epochs": epochs, "--batch-size": batch_size,
              "--learning-rate": learning_rate, "--image-size": image_size,
              "--augment/--no-augment": augment, "--fine-tune/--no-fine-tune": fine_tune,
              "--fine-tune-from": fine_tune_from, "--fine-tune-epochs": fine_tune_epochs,
              "--seed": seed, "--max-per-class": max_per_class}
    cfg = load_image_config(config, {OVERRIDES[f]: v for f, v in values.items()},
                            labels={key: flag for flag, key in OVERRIDES.items()})
    data = prepare_image_data(cfg, data_dir, validation)  # bad folders: before TensorFlow
    if not quiet:
        click.echo(f"{len(data.train):,} training images, {len(data.validation):,} "
                   f"validation, {len(data.skipped):,} skipped ({data.split})", err=True)
        for line in _balance_lines(data.train):
            click.echo(line, err=True)
    _tensorflow()
    from wafertk.images.train import train_images

    def show(line: str) -> None:
        click.echo(line, err=True)

    report = train_images(cfg, data, output, weights=weights, on_epoch=None if quiet else show)
    echo_summary(quiet, output, f"{cfg.model.name}, accuracy {report['accuracy']:.4f}, "
                 f"weighted F1 {report['weighted_f1']:.4f} on {report['n']:,} images "
                 f"({report['evaluated_on']})", t0)


#: --tta of evaluate and predict (wafertk.images.predict.IMAGE_TTA; not imported here: the
#: command line starts without TensorFlow)
_tta_option = click.option(
    "--tta", type=click.Choice(["none", "hflip", "hflip-shift"]), default="none",
    show_default=True,
    help="Test-time augmentation: hflip averages each image with its mirror image (2x the "
         "work); hflip-shift also with both shifted by 1/16 of the size up, down, left and "
         "right (10x). Each step runs that many times --batch-size images.")


@images_group.command("evaluate", short_help="Evaluation report of a run on an image folder.")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("data_dir", type=click.Path(path_type=Path))
@output_option("Report folder: report.json/.md/.html, figures, predictions.csv.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@_tta_option
@quiet_option
@handle_errors
def evaluate(run: Path, data_dir: Path, output: Path, batch_size: int, tta: str,
             quiet: bool) -> None:
    """Score the labelled folder DATA_DIR (a sub-folder per class of the model) with RUN.

    \b
    Example:
      wafertk images evaluate runs/squeezenet cats_and_dogs/validation -o out/
    """
    from wafertk.images import IMAGE_KIND
    from wafertk.images.data import scan_image_folder
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    t0 = time.perf_counter()
    man = load_manifest(resolve_model(str(run)), IMAGE_KIND)  # wrong kind: before TensorFlow
    scan_image_folder(data_dir, classes=man.classes, check="header")
    output = check_output(output, folder=True, marker="report.json", inputs=[data_dir])
    _tensorflow()
    from wafertk.images.predict import evaluate_images

    report = evaluate_images(run, data_dir, output, batch_size=batch_size, tta=tta)
    echo_summary(quiet, output, f"accuracy {report['accuracy']:.4f}, weighted F1 "
                 f"{report['weighted_f1']:.4f} on {report['n']:,} images", t0)


@images_group.command("predict", short_help="Predict image files with a run.")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option("CSV: file, class, probability, then p_<class> columns.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@_tta_option
@quiet_option
@handle_errors
def predict(run: Path, inputs: tuple[Path, ...], output: Path, batch_size: int, tta: str,
            quiet: bool) -> None:
    """Predict INPUTS (image files and/or folders, searched recursively) with RUN.

    \b
    Example:
      wafertk images predict runs/squeezenet photos/ -o preds.csv
    """
    from wafertk.images import IMAGE_KIND
    from wafertk.images.predict import expand_image_inputs
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    t0 = time.perf_counter()
    load_manifest(resolve_model(str(run)), IMAGE_KIND)
    expand_image_inputs(list(inputs))
    output = check_output(output, folder=False, inputs=list(inputs))
    _tensorflow()
    from wafertk.images.predict import predict_images

    res = predict_images(run, list(inputs), output, batch_size=batch_size, tta=tta)
    counts = ", ".join(f"{c} {n:,}" for c, n in res["counts"].items())
    echo_summary(quiet, output, f"{res['n']:,} images ({counts}), {res['skipped']:,} "
                 "skipped", t0)


COMMANDS = [images_group]
