"""``wafertk lr-find`` and ``wafertk sweep``: LR range test and model-selection sweep.

Thin over :mod:`wafertk.training.lr_find` and :mod:`wafertk.sweep`. Paths, configs and
settings are checked before TensorFlow is imported, so a typo fails in milliseconds.
"""

from __future__ import annotations

import math
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

#: lr-find flag -> wafer config key (CnnTrainConfig)
WAFER_OVERRIDES = {"--batch-size": "train.batch_size", "--input-size": "data.input_size"}
#: lr-find flag -> images config key (ImageRunConfig)
IMAGE_OVERRIDES = {"--model": "model.name", "--batch-size": "train.batch_size",
                   "--input-size": "data.image_size"}


def _check_range(start_lr: float, end_lr: float, steps: int, diverge: float) -> None:
    from wafertk.errors import ConfigError

    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ConfigError(f"--start-lr: {start_lr!r} is not > 0")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise ConfigError(f"--end-lr: {end_lr!r} is not > --start-lr ({start_lr:g})")
    if steps < 5:
        raise ConfigError(f"--steps: {steps} is not >= 5")
    if not diverge > 1:
        raise ConfigError(f"--diverge: {diverge!r} is not > 1")


@click.command("lr-find", short_help="LR range test: loss against an exponential LR ramp.")
@click.argument("data", required=False, type=click.Path(path_type=Path))
@output_option("Output folder: lr_find.csv, lr_find.json, lr_find.png (written atomically).")
@click.option("--task", type=click.Choice(("classifier", "detector")), default="classifier",
              show_default=True, help="Wafer CNN to test (with a wafers.h5 DATA).")
@click.option("--images", "images", type=click.Path(path_type=Path),
              help="Image folder (one sub-folder per class) instead of a wafers.h5 file.")
@click.option("--model", "model", help="Images: model.name (small_convnet, squeezenet, "
                                       "mobilenet_v2, vgg16, ...).")
@click.option("--weights", type=click.Path(path_type=Path),
              help="Images: pretrained backbone weights file.")
@click.option("--config", "config", help="Packaged config name or YAML path (default: the "
                                         "task's config, or 'images').")
@click.option("--batch-size", type=int, help="Override train.batch_size.")
@click.option("--input-size", type=int, help="Override the input size (data.input_size, "
                                             "or data.image_size for images).")
@click.option("--start-lr", type=float, default=1e-5, show_default=True,
              help="First learning rate.")
@click.option("--end-lr", type=float, default=10.0, show_default=True,
              help="Last learning rate (the test usually stops earlier, on divergence).")
@click.option("--steps", type=int, default=100, show_default=True,
              help="Batches from --start-lr to --end-lr.")
@click.option("--diverge", type=float, default=4.0, show_default=True,
              help="Stop when the smoothed loss exceeds this many times its minimum.")
@quiet_option
@handle_errors
def lr_find(data, output, task, images, model, weights, config, batch_size, input_size,
            start_lr, end_lr, steps, diverge, quiet) -> None:
    """LR range test: the learning rate is raised exponentially per batch from --start-lr;
    loss and accuracy are plotted against it and a rate is suggested (steepest descent of
    the smoothed loss before it blows up).

    DATA is a labeled wafers.h5 file (the wafer CNN of --task, its packaged config unless
    --config); or give --images DIR for an image-folder model (--model).

    \b
    Examples:
      wafertk lr-find --task classifier wafers.h5 -o out/lr_classifier
      wafertk lr-find --images cats_and_dogs/train --model mobilenet_v2 -o out/lr_mnv2
    """
    from wafertk.config import load_config
    from wafertk.errors import ConfigError, WaferFileError

    t0 = time.perf_counter()
    if (data is None) == (images is None):
        raise ConfigError("give either DATA (a wafers.h5 file) or --images DIR, not "
                          f"{'both' if data is not None else 'neither'}")
    _check_range(start_lr, end_lr, steps, diverge)
    kwargs = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": steps, "diverge": diverge}
    if images is not None:
        if not images.is_dir():
            raise WaferFileError(images, "no such folder" if not images.exists()
                                 else "is not a folder (--images takes an image folder)")
        if weights is not None:
            check_input_file(weights, "weights file")
        output = check_output(output, folder=True, marker="lr_find.json", inputs=[images])
        from wafertk.images.config import ImageRunConfig

        values = {"--model": model, "--batch-size": batch_size, "--input-size": input_size}
        overrides = {IMAGE_OVERRIDES[f]: v for f, v in values.items() if v is not None}
        load_config(ImageRunConfig, config or "images", overrides,
                    labels={k: f for f, k in IMAGE_OVERRIDES.items()})  # fails before TF
        import_tensorflow()
        from wafertk._atomic import atomic_path
        from wafertk.training.lr_find import image_lr_find

        res = image_lr_find(overrides, data_dir=images, weights=weights, config=config,
                            **kwargs)
        what = overrides.get("model.name", "images model")
    else:
        if model is not None or weights is not None:
            raise ConfigError("--model and --weights apply to --images; the wafer CNN is "
                              "chosen by --task and --config")
        data = check_input_file(data)
        output = check_output(output, folder=True, marker="lr_find.json", inputs=[data])
        from wafertk.config import resolve_config
        from wafertk.training.config import CnnTrainConfig
        from wafertk.training.trainer import architecture_problem

        values = {"--batch-size": batch_size, "--input-size": input_size}
        cfg = load_config(CnnTrainConfig, config or task,
                          {WAFER_OVERRIDES[f]: v for f, v in values.items()},
                          labels={k: f for f, k in WAFER_OVERRIDES.items()})
        problem = architecture_problem(cfg, task)
        if problem:
            raise ConfigError(f"{resolve_config(config or task)}: model.architecture: "
                              f"{problem}")
        from wafertk.data.h5 import read_wafers

        ws = read_wafers(data)
        import_tensorflow()
        from wafertk._atomic import atomic_path
        from wafertk.training.lr_find import wafer_lr_find

        res = wafer_lr_find(ws, cfg, task, data_path=data, **kwargs)
        what = f"{task} CNN"
    with atomic_path(output, directory=True) as tmp:
        res.save(tmp)
    details = (f"{what}, suggested learning rate {res.suggested_lr:.2e} (lowest loss at "
               f"{res.min_loss_lr:.2e}, {len(res.lrs)} steps"
               f"{', stopped on divergence' if res.diverged else ''})"
               + ("" if res.descent else "; the loss never fell: no usable rate, read the "
                  "plot"))
    echo_summary(quiet, output, details, t0)


@click.command("sweep", short_help="Model-selection sweep from a YAML file (resumable).")
@click.argument("config", type=click.Path(path_type=Path))
@output_option("Sweep folder: runs/<stage>/<run-id>/, sweep.json, ranking.csv/md/png. "
               "An interrupted sweep resumes when run again into the same folder.")
@click.option("--dry-run", is_flag=True, help="Check the config and list the runs; train "
                                              "nothing.")
@quiet_option
@handle_errors
def sweep(config, output, dry_run, quiet) -> None:
    """Train every combination of backbones x input sizes x batch sizes x epochs of CONFIG
    on an image folder and rank the runs by weighted F1; optionally in stages (2:
    augmentation on the top runs, 3: fine-tuning, 4: LR range test, 5: retrain at the
    suggested rates). See docs/sweep.md and configs/sweep.yaml.

    Each finished run stays in its folder: running the same command again after an
    interruption skips finished runs and redoes the interrupted one.

    \b
    Examples:
      wafertk sweep configs/sweep.yaml -o runs/sweep
      wafertk sweep configs/sweep.yaml -o runs/sweep --dry-run
    """
    from wafertk.sweep import STATE_FILE, load_sweep_config, run_sweep, sweep_plan

    t0 = time.perf_counter()
    spec = str(config)
    output = check_output(output, folder=True, marker=STATE_FILE)
    cfg = load_sweep_config(spec)
    if dry_run:
        click.echo("\n".join(sweep_plan(cfg)))
        return
    import_tensorflow()

    def show(line: str) -> None:
        click.echo(line, err=True)

    res = run_sweep(cfg, output, on_run=None if quiet else show, config_path=spec)
    best = res.ranking[0] if res.ranking else None
    details = (f"{len(res.ranking)} runs ranked ({res.trained} trained now, {res.skipped} "
               f"done before, {res.failed} failed)"
               + (f"; best {best['folder']} weighted F1 {best['weighted_f1']:.4f}"
                  if best else ""))
    echo_summary(quiet, output, details, t0)


COMMANDS = [lr_find, sweep]
