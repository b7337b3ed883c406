"""Training runs of image classifiers: data, model through the registry, two phases, run folder.

A run (:func:`run_image_training`, :func:`train_images`):

1. scans the folder(s) (:func:`wafertk.images.data.scan_image_folder`): with a validation
   folder, train = DATA_DIR and validation = that folder (the report is on the validation
   folder); without one, a stratified train/validation/test split by seed (the report is on
   the test split);
2. builds ``image_<model.name>`` with :func:`wafertk.registry.create_model`;
3. phase ``train``: from scratch (``small_convnet``) or frozen backbone + new head;
4. phase ``fine_tune`` (transfer models, ``fine_tune.enabled``): the backbone unfrozen from
   ``fine_tune.from_layer``, SGD with momentum at ``fine_tune.learning_rate``;
5. writes the run folder atomically: ``model.keras``, ``manifest.json`` (kind
   ``image-classifier``), ``config.yaml`` (resolved), ``history.csv``, ``curves_*.png``,
   ``class_balance.csv``, ``skipped.csv`` (if any) and the shared evaluation report
   (``report.json`` with ``accuracy`` and ``weighted_f1`` at top level, ``report.md``,
   ``report.html``, confusion matrices, ROC/PR for two classes).

No global seeds are set: the seed goes to the split, the shuffle, dropout and augmentation.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wafertk.config import load_config, save_config
from wafertk.errors import ConfigError, WaferFileError
from wafertk.images import IMAGE_KIND
from wafertk.images.config import BACKBONES, ImageRunConfig
from wafertk.images.data import (
    ImageFolder,
    class_balance,
    make_dataset,
    scan_image_folder,
    stratified_split,
)

log = logging.getLogger(__name__)


def load_image_config(config: str | os.PathLike | None = None,
                      overrides: dict[str, Any] | None = None, *,
                      labels: dict[str, str] | None = None) -> ImageRunConfig:
    """The packaged ``images`` config (or ``config``) with dotted ``overrides`` applied.

    Raises
    ------
    ConfigError
        One line naming the file and every bad key (overrides named by ``labels``).
    """
    return load_config(ImageRunConfig, "images" if config is None else config, overrides,
                       labels=labels)


# --------------------------------------------------------------------------- 1. data
@dataclass
class ImageData:
    """The scanned splits of a run.

    Attributes
    ----------
    classes : list of str
    train, validation : ImageFolder
    test : ImageFolder or None
        The stratified test split (None when a validation folder was given).
    skipped : list of (str, str)
    split : str
        How the splits were made, for the manifest and the report.
    """

    classes: list[str]
    train: ImageFolder
    validation: ImageFolder
    test: ImageFolder | None
    skipped: list[tuple[str, str]]
    split: str

    @property
    def evaluation(self) -> ImageFolder:
        """What the report scores: the test split, else the validation folder or split."""
        return self.test if self.test is not None else self.validation

    @property
    def evaluated_on(self) -> str:
        if self.test is not None:
            return "test split"
        return "validation split" if self.split.startswith("stratified") else "validation folder"


def prepare_image_data(cfg: ImageRunConfig, data_dir: str | os.PathLike,
                       validation_dir: str | os.PathLike | None = None) -> ImageData:
    """Scan ``data_dir`` (and ``validation_dir``) and make the splits (no TensorFlow).

    Raises
    ------
    WaferFileError
        A bad folder (see :func:`~wafertk.images.data.scan_image_folder`) or too few images
        for the stratified split.
    """
    d = cfg.data
    scan = scan_image_folder(data_dir, check=d.check, max_per_class=d.max_per_class)
    if validation_dir is not None:
        vscan = scan_image_folder(validation_dir, classes=scan.classes, check=d.check,
                                  max_per_class=d.max_per_class)
        return ImageData(scan.classes, scan, vscan, None, scan.skipped + vscan.skipped,
                         f"folders: train {data_dir}, validation {validation_dir}")
    tr, va, te = stratified_split(scan.labels, tuple(d.split), seed=d.split_seed)
    if not len(tr) or not len(va):
        raise WaferFileError(data_dir, f"{len(scan)} images are too few for the split "
                             f"{d.split}; add images or give --validation DIR")
    split = f"stratified {'/'.join(f'{f:g}' for f in d.split)} by seed {d.split_seed}"
    return ImageData(scan.classes, scan.subset(tr), scan.subset(va),
                     scan.subset(te) if len(te) else None, scan.skipped, split)


def _labels_for_model(ds, n_classes: int):
    if n_classes != 2:
        return ds
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.cast(tf.reshape(y, (-1, 1)), tf.float32)))


def datasets(cfg: ImageRunConfig, data: ImageData):
    """Streamed ``(train, validation)`` datasets; training shuffled by ``train.seed``."""
    n = len(data.classes)
    common = {"image_size": cfg.data.image_size, "batch_size": cfg.train.batch_size,
              "cache": cfg.data.cache}
    train = make_dataset(data.train.files, data.train.labels, shuffle=True,
                         seed=cfg.train.seed, **common)
    val = make_dataset(data.validation.files, data.validation.labels, **common)
    return _labels_for_model(train, n), _labels_for_model(val, n)


# --------------------------------------------------------------------------- 2. model
def _augment_kwargs(cfg: ImageRunConfig) -> dict | None:
    a = cfg.augment
    if not a.enabled:
        return None
    return {"rotation": a.rotation, "shear": a.shear, "width_shift": a.width_shift,
            "height_shift": a.height_shift, "shift_mode": a.shift_mode, "zoom": a.zoom,
            "horizontal_flip": a.horizontal_flip, "vertical_flip": a.vertical_flip}


def build_image_model(cfg: ImageRunConfig, n_classes: int, *,
                      weights: str | os.PathLike | None = None):
    """Build ``image_<model.name>`` through :func:`wafertk.registry.create_model`.

    Raises
    ------
    ConfigError
        ``weights`` given for ``small_convnet`` (trained from scratch).
    """
    from wafertk.registry import create_model

    m = cfg.model
    size = cfg.data.image_size
    common = {"input_shape": (size, size, 3), "n_classes": n_classes,
              "augment": _augment_kwargs(cfg), "seed": cfg.train.seed,
              "dense_units": m.dense_units, "dropout": m.dropout}
    if m.name == "small_convnet" and weights is not None:
        raise ConfigError("--weights: small_convnet is trained from scratch; weights are "
                          f"for transfer models ({', '.join(BACKBONES)})")
    with _dtype_policy("mixed_bfloat16" if cfg.train.mixed_precision else None):
        if m.name == "small_convnet":
            return create_model("image_small_convnet", conv_filters=tuple(m.conv_filters),
                                convs_per_block=m.convs_per_block, l2=m.l2,
                                batch_norm=m.batch_norm, block=m.block,
                                pooling=m.pooling, **common)
        return create_model(f"image_{m.name}", weights=weights, **common)


@contextlib.contextmanager
def _dtype_policy(policy: str | None):
    """Build layers under ``policy`` (e.g. ``mixed_bfloat16``); the global policy is restored.

    Layers keep the policy they were built with (it is saved in the ``.keras`` file); the
    output layer of every image model is float32 whatever the policy.
    """
    if policy is None:
        yield
        return
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def learning_rate(lr: float, schedule: str = "constant", *, epochs: int = 1,
                  steps_per_epoch: int = 1, warmup_epochs: int = 0):
    """The optimizer's learning rate: ``lr``, or a cosine decay to 0 with a linear warm-up.

    Parameters
    ----------
    lr : float
        Peak (and, for ``constant``, only) learning rate.
    schedule : {"constant", "cosine"}
    epochs, steps_per_epoch : int
        Length of the run (cosine: the rate falls to ~0 by the last update and is 0 one step
        after it; the first warm-up step has rate 0).
    warmup_epochs : int
        Linear warm-up from 0 to ``lr`` (cosine only).

    Returns
    -------
    float or keras.optimizers.schedules.LearningRateSchedule
    """
    if schedule == "constant":
        return lr
    import keras

    warmup = warmup_epochs * steps_per_epoch
    decay = max(1, epochs * steps_per_epoch - warmup)
    if warmup:
        return keras.optimizers.schedules.CosineDecay(0.0, decay, warmup_target=lr,
                                                      warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(lr, decay)


def _optimizer(name: str, lr, momentum: float):
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=lr)


def compile_model(model, n_classes: int, optimizer) -> None:
    """Binary cross-entropy on one sigmoid output, sparse categorical otherwise; accuracy."""
    loss = "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def build_for_lr_find(overrides: dict[str, object], *, data_dir: str | os.PathLike,
                      weights: str | os.PathLike | None = None,
                      config: str | os.PathLike | None = None):
    """The compiled first-phase model and its training dataset, for an LR range test.

    Parameters
    ----------
    overrides : dict
        Dotted config keys (as :func:`run_image_training`).
    data_dir : path
        Image folder; the training split of the run is used.
    weights : path, optional
    config : path or str, optional

    Returns
    -------
    (keras.Model, tf.data.Dataset)
        Compiled with the ``train`` optimizer at ``train.learning_rate``; the dataset yields
        shuffled ``(images, labels)`` batches.
    """
    cfg = load_image_config(config, dict(overrides))
    data = prepare_image_data(cfg, data_dir)
    n = len(data.classes)
    model = build_image_model(cfg, n, weights=weights)
    compile_model(model, n, _optimizer(cfg.train.optimizer, cfg.train.learning_rate,
                                       cfg.train.momentum))
    train_ds, _ = datasets(cfg, data)
    return model, train_ds


# --------------------------------------------------------------------------- 3. fit
def _fit(model, train_ds, val_ds, *, epochs: int, patience: int, phase: str,
         on_epoch: Callable[[str], None] | None) -> dict[str, list[float]]:
    import keras

    from wafertk.training.callbacks import EpochLine

    callbacks: list = [EpochLine(epochs, phase, on_epoch)]
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True))
    h = model.fit(train_ds, validation_data=val_ds, epochs=epochs, shuffle=False,
                  callbacks=callbacks, verbose=0)
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


@dataclass
class TrainResult:
    """A fitted model and its history (one entry per epoch over both phases)."""

    model: Any
    history: list[dict[str, Any]]
    phases: dict[str, dict[str, Any]]


def fit_image_model(cfg: ImageRunConfig, data: ImageData, *,
                    weights: str | os.PathLike | None = None,
                    on_epoch: Callable[[str], None] | None = None) -> TrainResult:
    """Build and train: phase ``train``, then ``fine_tune`` for a transfer model if enabled."""
    from wafertk.images.models import unfreeze_from

    n = len(data.classes)
    model = build_image_model(cfg, n, weights=weights)
    train_ds, val_ds = datasets(cfg, data)
    t = cfg.train
    lr = learning_rate(t.learning_rate, t.lr_schedule, epochs=t.epochs,
                       steps_per_epoch=math.ceil(len(data.train) / t.batch_size),
                       warmup_epochs=t.warmup_epochs)
    compile_model(model, n, _optimizer(t.optimizer, lr, t.momentum))
    history: list[dict[str, Any]] = []
    phases: dict[str, dict[str, Any]] = {}

    def run(phase: str, epochs: int, patience: int) -> None:
        t0 = time.perf_counter()
        h = _fit(model, train_ds, val_ds, epochs=epochs, patience=patience, phase=phase,
                 on_epoch=on_epoch)
        n_ep = len(h.get("loss", []))
        for i in range(n_ep):
            history.append({"phase": phase, "epoch": len(history) + 1,
                            **{k: v[i] for k, v in h.items()}})
        val = h.get("val_accuracy", [])
        phases[phase] = {"epochs": n_ep, "wall_s": round(time.perf_counter() - t0, 1),
                         "best_val_accuracy": max(val) if val else None,
                         "trainable_params": int(sum(np.prod(w.shape)
                                                     for w in model.trainable_weights))}

    run("train", t.epochs, t.early_stopping_patience)
    ft = cfg.fine_tune
    if ft.enabled and cfg.model.name != "small_convnet":
        unfreeze_from(model, cfg.model.name, ft.from_layer)
        compile_model(model, n, _optimizer("sgd", ft.learning_rate, ft.momentum))
        run("fine_tune", ft.epochs, ft.early_stopping_patience)
        phases["fine_tune"]["from_layer"] = ft.from_layer
    elif ft.enabled:
        log.warning("fine_tune ignored: small_convnet is trained from scratch")
    return TrainResult(model, history, phases)


# --------------------------------------------------------------------------- 4. write
def write_history(history: list[dict[str, Any]], path: Path) -> None:
    """``history.csv``: ``epoch``, ``phase`` then one column per metric."""
    keys = sorted({k for row in history for k in row} - {"epoch", "phase"})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "phase", *keys])
        for row in history:
            w.writerow([row["epoch"], row["phase"],
                        *(f"{row[k]:.6g}" if k in row else "" for k in keys)])


def plot_history(history: list[dict[str, Any]], folder: Path) -> None:
    """``curves_loss.png`` and ``curves_accuracy.png`` (matplotlib object API, no pyplot)."""
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    switch = next((r["epoch"] for r in history if r["phase"] == "fine_tune"), None)
    for name in ("loss", "accuracy"):
        fig = Figure(figsize=(5, 3.2))
        ax = fig.add_subplot()
        for k in (name, f"val_{name}"):
            ax.plot(epochs, [r.get(k, np.nan) for r in history], label=k, marker=".")
        if switch is not None:
            ax.axvline(switch - 0.5, color="grey", linestyle="--", label="fine-tune")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"curves_{name}.png", format="png", dpi=100)


def _write_rows(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def run_image_training(overrides: dict[str, object], out_dir: str | os.PathLike, *,
                       data_dir: str | os.PathLike,
                       validation_dir: str | os.PathLike | None = None,
                       weights: str | os.PathLike | None = None,
                       config: str | os.PathLike | None = None,
                       on_epoch: Callable[[str], None] | None = None) -> dict:
    """Train an image classifier and write its run folder; return its report.

    Parameters
    ----------
    overrides : dict of str to object
        Dotted config keys (``model.name``, ``data.image_size``, ``train.batch_size``,
        ``train.epochs``, ``train.learning_rate``, ``augment.enabled``, ``fine_tune.enabled``,
        ``fine_tune.learning_rate``, ``fine_tune.from_layer``, ...); None values are ignored.
    out_dir : path
        Run folder, written atomically (replaced when it exists).
    data_dir : path
        Image folder, one sub-folder per class.
    validation_dir : path, optional
        Separate validation folder; default a stratified split of ``data_dir``.
    weights : path, optional
        Local weights file of the transfer backbone. Never downloaded.
    config : path or str, optional
        YAML file or packaged config name; default ``images``.
    on_epoch : callable, optional
        Called with one line per epoch.

    Returns
    -------
    dict
        The run's ``report.json``: ``accuracy``, ``weighted_f1``, ``macro_f1``, ``n``,
        ``evaluated_on`` at top level, plus the shared report's ``metrics``, ``binary``,
        ``extra``.

    Raises
    ------
    ConfigError, WaferFileError, ModelFileError
        Bad config or override, bad folder, bad weights file.
    """
    cfg = load_image_config(config, dict(overrides))
    data = prepare_image_data(cfg, data_dir, validation_dir)
    return train_images(cfg, data, out_dir, weights=weights, on_epoch=on_epoch)


def train_images(cfg: ImageRunConfig, data: ImageData, out_dir: str | os.PathLike, *,
                 weights: str | os.PathLike | None = None,
                 on_epoch: Callable[[str], None] | None = None) -> dict:
    """Train on prepared data and write the run folder (see :func:`run_image_training`)."""
    from wafertk._atomic import atomic_path
    from wafertk.images.predict import predict_proba_files, report_from_proba
    from wafertk.models.manifest import Manifest, package_versions, write_manifest

    t0 = time.perf_counter()
    res = fit_image_model(cfg, data, weights=weights, on_epoch=on_epoch)
    train_s = time.perf_counter() - t0
    ev = data.evaluation
    proba = predict_proba_files(res.model, ev.files, cfg.data.image_size,
                                batch_size=cfg.train.batch_size)
    n = len(data.classes)
    extra = {
        "model": cfg.model.name, "weights": None if weights is None else Path(weights).name,
        "split": data.split, "evaluated_on": data.evaluated_on,
        "images": {"train": len(data.train), "validation": len(data.validation),
                   "test": 0 if data.test is None else len(data.test),
                   "skipped": len(data.skipped)},
        "phases": res.phases, "train_wall_s": round(train_s, 1),
    }
    out = Path(out_dir)
    with atomic_path(out, directory=True) as tmp:
        res.model.save(tmp / "model.keras")
        report = report_from_proba(tmp, ev.labels, proba, data.classes,
                                   title=f"{cfg.model.name} on {data.evaluated_on}",
                                   extra=extra, files=ev.files)
        man = Manifest(
            kind=IMAGE_KIND, model_file="model.keras", classes=list(data.classes),
            input_size=cfg.data.image_size,
            preprocessing={"input": "RGB, float32 in [0, 255], resized (bilinear) to "
                                    "input_size x input_size",
                           "network": "small_convnet: x/255" if cfg.model.name ==
                           "small_convnet" else BACKBONES[cfg.model.name][1],
                           "output": "sigmoid (P of classes[1])" if n == 2 else "softmax"},
            extra={**extra, "accuracy": report["accuracy"],
                   "weighted_f1": report["weighted_f1"]},
            versions=package_versions("tensorflow", "keras"))
        write_manifest(tmp, man)
        save_config(cfg, tmp / "config.yaml")
        write_history(res.history, tmp / "history.csv")
        plot_history(res.history, tmp)
        bal = class_balance(data.train)
        _write_rows(tmp / "class_balance.csv", ["split", "class", "count", "fraction"],
                    [("train", r["class"], r["count"], r["fraction"])
                     for r in bal.to_dict("records")]
                    + [(data.evaluated_on.split()[0], r["class"], r["count"], r["fraction"])
                       for r in class_balance(ev).to_dict("records")])
        if data.skipped:
            _write_rows(tmp / "skipped.csv", ["path", "reason"], data.skipped)
    report["run_dir"] = str(out)
    return report
