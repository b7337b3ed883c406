"""Train the phase-1 detector and the phase-2 pattern classifier into a run folder.

A run is five steps, each a function usable and testable alone:

1. :func:`prepare_data`: labeled wafers -> lot-disjoint split -> resized maps, metadata,
   targets (:class:`PreparedData`);
2. :func:`build_model`: the config's registry architecture, built through
   :func:`wafertk.registry.create_model` and compiled;
3. :func:`fit_model`: Keras ``fit`` with early stopping (best weights restored), the learning
   rate schedule and class weights (:class:`FitResult`);
4. :func:`calibrate_and_decide`: temperature scaling and the detector threshold on the
   validation outputs, and the validation figures from :mod:`wafertk.evaluate`
   (:class:`Decision`);
5. :func:`write_run_folder`: everything below, written atomically (a temporary folder
   renamed at the end)::

    config.yaml        resolved config
    history.csv        per-epoch loss/metrics/learning rate
    validation.csv     the validation wafers (wafer_id, lot, label)
    curves_loss.png    training and validation loss
    curves_metric.png  training and validation accuracy (and AUC for the detector)
    curves_roc.png, curves_pr.png   detector: validation ROC and PR curves, threshold marked
    report/            evaluation report of the validation split (report.json/md/html, PNGs)
    model.keras        the best-epoch model
    manifest.json      classes, input size, preprocessing, threshold, temperature, figures

The validation split is lot-disjoint and stratified over the nine labels of the whole labeled
set (:func:`wafertk.data.splits.validation_split` with ``data.split_seed``), made before any
augmentation; the classifier uses the same split restricted to the defect classes, so the
two-phase pipeline can be evaluated end to end on the same validation lots.

Nothing here changes global state: the seed (``train.seed``) goes to the builder's
initialisers and dropout layers and to the ``tf.data`` shuffle and augmentation ops, not to
``keras.utils.set_random_seed``. CPU training is still not bit-for-bit reproducible
(threaded reductions). Progress goes to the ``wafertk.training.callbacks`` logger and, if
given, to an ``on_epoch`` callback; nothing is printed.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.config import save_config, to_dict
from wafertk.data.preprocess import META_FEATURE_NAMES, die_metadata, resize_maps
from wafertk.data.splits import Split, validation_split
from wafertk.data.waferset import DEFECT_CLASSES, NONE_CLASS, WM811K_CLASSES, WaferSet
from wafertk.errors import WaferFileError, WafertkError
from wafertk.models.calibration import (
    apply_temperature,
    fit_temperature,
    logits_from_proba,
    threshold_for_recall,
)
from wafertk.models.manifest import DETECTOR_CLASSES
from wafertk.training.config import CnnTrainConfig

log = logging.getLogger(__name__)

TASKS = ("detector", "classifier")
#: Registry architecture of each task when the config names none.
DEFAULT_ARCHITECTURE = {"detector": "wafer_cnn_detector", "classifier": "wafer_cnn_classifier"}

__all__ = [
    "Decision",
    "FitResult",
    "PreparedData",
    "Split",
    "build_model",
    "calibrate_and_decide",
    "compile_model",
    "fine_tune_model",
    "fit_model",
    "make_dataset",
    "prepare_data",
    "train",
    "train_classifier",
    "train_detector",
    "validation_split",
    "write_run_folder",
]


def train_detector(ws: WaferSet, out_dir: str | os.PathLike, config: CnnTrainConfig | None = None,
                   *, data_path: str | os.PathLike | None = None, verbose: bool = False,
                   on_epoch: Callable[[str], None] | None = None) -> Path:
    """Train the phase-1 CNN (none -> good, any pattern -> defective) into ``out_dir``.

    Parameters
    ----------
    ws : WaferSet
        Labeled wafers (unlabeled ones are ignored).
    out_dir : str or os.PathLike
        Run folder, written atomically (replaced if it exists).
    config : CnnTrainConfig, optional
        Default :class:`~wafertk.training.config.CnnTrainConfig`.
    data_path : str or os.PathLike, optional
        The file ``ws`` was read from: errors about the data name it.
    verbose : bool
        Keras's own progress bars.
    on_epoch : callable, optional
        Called with one summary line per epoch (the CLI prints it on standard error).

    Returns
    -------
    pathlib.Path
        The run folder (a loadable model folder, kind ``"cnn-detector"``).
    """
    return train(ws, out_dir, config, "detector", data_path=data_path, verbose=verbose,
                 on_epoch=on_epoch)


def train_classifier(ws: WaferSet, out_dir: str | os.PathLike,
                     config: CnnTrainConfig | None = None, *,
                     data_path: str | os.PathLike | None = None, verbose: bool = False,
                     on_epoch: Callable[[str], None] | None = None) -> Path:
    """Train the phase-2 pattern CNN on the eight defect classes (class-weighted) into ``out_dir``.

    Parameters and returns as :func:`train_detector`; the model kind is ``"cnn-classifier"``.
    Wafers labeled ``none`` only take part in the split (so that validation lots match the
    detector's) and are then dropped.
    """
    return train(ws, out_dir, config, "classifier", data_path=data_path, verbose=verbose,
                 on_epoch=on_epoch)


def train(ws: WaferSet, out_dir: str | os.PathLike, config: CnnTrainConfig | None, task: str,
          *, data_path: str | os.PathLike | None = None, verbose: bool = False,
          on_epoch: Callable[[str], None] | None = None) -> Path:
    """One training run of ``task`` (``"detector"`` or ``"classifier"``): the five steps."""
    t0 = time.perf_counter()
    cfg = config or CnnTrainConfig()
    data = prepare_data(ws, cfg, task, data_path=data_path)
    model = build_model(cfg, data)
    fit = fit_model(model, data, cfg, verbose=verbose, on_epoch=on_epoch)
    if cfg.fine_tune.enabled:
        fit = fine_tune_model(model, data, cfg, fit, verbose=verbose, on_epoch=on_epoch)
    decision = calibrate_and_decide(model, data, cfg)
    path = write_run_folder(out_dir, cfg, data, model, fit, decision,
                            seconds=time.perf_counter() - t0)
    log.info("%s written to %s in %.0fs", task, out_dir, time.perf_counter() - t0)
    return path


# --------------------------------------------------------------------------- 1. data
@dataclass
class PreparedData:
    """Model inputs and targets of both parts of the split.

    Attributes
    ----------
    task : str
    classes : list of str
    x_train, x_val : ndarray of shape (n, S, S), uint8
        Resized maps (not one-hot).
    m_train, m_val : ndarray of shape (n, m), float32, or None
        Die metadata (classifier only).
    y_train, y_val : ndarray of shape (n,)
        0/1 float32 (detector) or class codes int64 (classifier).
    val_wafers : WaferSet
        The validation wafers of this task.
    split : dict
        What the manifest records about the split.
    """

    task: str
    classes: list[str]
    x_train: np.ndarray
    x_val: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    val_wafers: WaferSet
    m_train: np.ndarray | None = None
    m_val: np.ndarray | None = None
    split: dict[str, Any] = field(default_factory=dict)

    @property
    def val_inputs(self) -> tuple[np.ndarray, ...]:
        return (self.x_val,) if self.m_val is None else (self.x_val, self.m_val)


def _data_error(data_path, problem: str) -> WafertkError:
    return WaferFileError(data_path, problem) if data_path else WafertkError(problem)


def _lots_digest(lots: np.ndarray) -> str:
    text = "\n".join(sorted(set(np.asarray(lots).astype(str).tolist())))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def prepare_data(ws: WaferSet, cfg: CnnTrainConfig, task: str, *,
                 data_path: str | os.PathLike | None = None) -> PreparedData:
    """Labeled wafers -> lot-disjoint split -> resized maps, metadata and targets of ``task``.

    Raises
    ------
    WafertkError
        (:class:`~wafertk.errors.WaferFileError` naming ``data_path`` when given) no labels,
        only one class, or too few lots for a split.
    """
    if task not in TASKS:
        raise WafertkError(f"unknown task {task!r} (detector or classifier)")
    if not ws.has_labels or not ws.labeled_mask().any():
        raise _data_error(data_path, "training needs labeled wafers (the file has no labels)")
    ws = ws.take(ws.labeled_mask())
    labels = ws.label_strings().astype(str)
    if task == "detector" and cfg.data.classes != "defects":
        raise WafertkError("data.classes: the detector's classes are good/defective; "
                           "'all' applies to the classifier only")
    if task == "detector":
        classes = list(DETECTOR_CLASSES)
        y_all = (labels != NONE_CLASS).astype(np.float32)
        if len(np.unique(y_all)) < 2:
            raise _data_error(data_path, "the detector needs both 'none' and defect wafers "
                              "to train (the labels hold only one of them)")
        keep = np.ones(len(ws), bool)
    else:
        classes = list(WM811K_CLASSES if cfg.data.classes == "all" else DEFECT_CLASSES)
        lookup = {c: i for i, c in enumerate(classes)}
        y_all = np.array([lookup.get(s, -1) for s in labels], np.int64)
        keep = y_all >= 0
        present = sorted(set(labels[keep].tolist()))
        if len(present) < 2:
            raise _data_error(data_path, "the pattern classifier needs wafers of at least two "
                              f"defect classes, found {', '.join(present) or 'none'}")
    split = validation_split(ws, cfg.data.validation_fraction, cfg.data.split_seed)
    tr, va = split.train[keep[split.train]], split.val[keep[split.val]]
    if len(tr) == 0 or len(va) == 0:
        raise _data_error(data_path, f"not enough labeled {task} wafers for a lot-disjoint "
                          f"train/validation split ({len(tr)} train, {len(va)} validation)")
    lots = ws.lot.astype(str)
    if set(lots[tr]) & set(lots[va]) - {""}:
        raise WafertkError("internal error: the validation split is not lot-disjoint")
    log.info("%s: %d training, %d validation wafers (%d validation lots)", task, len(tr),
             len(va), len(set(lots[va])))
    size = cfg.data.input_size
    tws, vws = ws.take(tr), ws.take(va)
    meta = task == "classifier"
    return PreparedData(
        task=task, classes=classes,
        x_train=resize_maps(tws, size), x_val=resize_maps(vws, size),
        m_train=die_metadata(tws) if meta else None, m_val=die_metadata(vws) if meta else None,
        y_train=y_all[tr], y_val=y_all[va], val_wafers=vws,
        split={"method": "lot_stratified_split over all labeled wafers",
               "validation_fraction": cfg.data.validation_fraction,
               "split_seed": cfg.data.split_seed,
               "n_train": int(len(tr)), "n_validation": int(len(va)),
               "validation_lots": int(len(set(lots[va]))),
               # the lots of the whole validation split, shared by detector and classifier
               "split_lots_digest": _lots_digest(lots[split.val])},
    )


# --------------------------------------------------------------------------- 2. model
def _optimizer(cfg: CnnTrainConfig):
    import keras

    t = cfg.train
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(t.learning_rate, momentum=t.momentum)
    return keras.optimizers.Adam(t.learning_rate)


def architecture_problem(cfg: CnnTrainConfig, task: str) -> str | None:
    """Why the config's ``model.architecture`` cannot train ``task`` (None if it can)."""
    from wafertk.registry import get_entry

    name = cfg.model.architecture or DEFAULT_ARCHITECTURE[task]
    kind = get_entry(name).kind
    if kind != f"cnn-{task}":
        return f"{name!r} builds {kind} models, not a {task}"
    return None


def build_model(cfg: CnnTrainConfig, data: PreparedData):
    """The config's architecture (:mod:`wafertk.registry`), built, adapted and compiled.

    ``model.architecture`` (default :data:`DEFAULT_ARCHITECTURE` of the task) is built with
    :func:`wafertk.registry.create_model` and the ``model`` section's options; the
    classifier's metadata scaling is adapted on the training metadata. A transfer
    architecture (:mod:`wafertk.models.transfer`) also gets ``model.backbone`` and
    ``model.weights`` (a local file) and comes with its backbone frozen; its
    ``fine_tune.from_layer`` is checked here, before anything trains.

    Raises
    ------
    WafertkError
        An architecture of another task.
    ConfigError
        ``fine_tune.from_layer`` is not a layer of the backbone.
    ModelFileError
        ``model.weights`` is missing or does not fit the backbone.
    """
    from wafertk.errors import ConfigError
    from wafertk.registry import create_model

    problem = architecture_problem(cfg, data.task)
    if problem:
        raise WafertkError(f"model.architecture: {problem}")
    name = cfg.model.architecture or DEFAULT_ARCHITECTURE[data.task]
    size = cfg.data.input_size
    kwargs: dict[str, Any] = dict(
        conv_filters=list(cfg.model.conv_filters), batch_norm=cfg.model.batch_norm,
        dropout=cfg.model.dropout, l1=cfg.model.l1, l2=cfg.model.l2,
        activation=cfg.model.activation, dense_units=cfg.model.dense_units,
        residual=cfg.model.residual, seed=cfg.train.seed, compile=False)
    if data.task == "classifier":
        kwargs["n_classes"] = len(data.classes)
    if cfg.model.is_transfer:
        kwargs.update(backbone=cfg.model.backbone_name, weights=cfg.model.weights)
        if cfg.model.weights is None:
            log.warning("model.weights is null: the %s backbone starts from random weights "
                        "(no transfer)", cfg.model.backbone_name)
    model = create_model(name, input_shape=(size, size, 3), **kwargs)
    if cfg.model.is_transfer and cfg.fine_tune.enabled:
        from wafertk.models.transfer import fine_tune_layer_problem

        problem = fine_tune_layer_problem(model, cfg.model.backbone_name,
                                          cfg.fine_tune.from_layer)
        if problem:
            raise ConfigError(f"fine_tune.from_layer: {problem}")
    if (data.task == "classifier" and data.m_train is not None
            and "meta_scaling" in [la.name for la in model.layers]):
        model.get_layer("meta_scaling").adapt(data.m_train)
    compile_model(model, cfg, data.task, _optimizer(cfg))
    return model


def compile_model(model, cfg: CnnTrainConfig, task: str, optimizer) -> None:
    """Compile ``model`` with ``optimizer`` and the task's loss and metrics (``train`` section:
    focal loss, label smoothing)."""
    import keras

    t = cfg.train
    if task == "detector":
        if t.loss == "focal":
            loss = keras.losses.BinaryFocalCrossentropy(gamma=t.focal_gamma,
                                                        label_smoothing=t.label_smoothing)
        else:
            loss = keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing)
        model.compile(optimizer=optimizer, loss=loss,
                      metrics=[keras.metrics.AUC(name="auc"),
                               keras.metrics.BinaryAccuracy(name="accuracy")])
    else:
        if one_hot_targets(cfg, task):
            loss = (keras.losses.CategoricalFocalCrossentropy(
                        gamma=t.focal_gamma, label_smoothing=t.label_smoothing)
                    if t.loss == "focal" else
                    keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing))
            metric = keras.metrics.CategoricalAccuracy(name="accuracy")
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        model.compile(optimizer=optimizer, loss=loss, metrics=[metric])


def one_hot_targets(cfg: CnnTrainConfig, task: str) -> bool:
    """Whether the classifier's loss needs one-hot targets (label smoothing, focal loss)."""
    return task == "classifier" and (cfg.train.loss == "focal" or cfg.train.label_smoothing > 0)


# --------------------------------------------------------------------------- 3. fit
def make_dataset(maps: np.ndarray, meta: np.ndarray | None, y: np.ndarray, batch_size: int,
                 *, augment: bool, shuffle: bool, seed: int | None, n_classes: int = 0):
    """tf.data pipeline: uint8 resized maps -> (augment) -> one-hot float32 batches.

    Shuffling and augmentation (random 90-degree rotations and horizontal flips) use
    op-level seeds derived from ``seed``; no global seed is set. ``n_classes`` > 0 turns
    the integer targets into one-hot rows of that length.
    """
    import tensorflow as tf

    inputs = (maps,) if meta is None else (maps, meta)
    ds = tf.data.Dataset.from_tensor_slices((inputs, y))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if augment:
        def aug(x, label):
            img = x[0]
            k = tf.random.uniform([], 0, 4, dtype=tf.int32, seed=seed)
            img = tf.image.rot90(img[..., None], k)[..., 0]
            flip = tf.random.uniform([], seed=None if seed is None else seed + 1) < 0.5
            img = tf.cond(flip, lambda: tf.reverse(img, [1]), lambda: img)
            return (img,) + tuple(x[1:]), label
        ds = ds.map(aug)
    ds = ds.batch(batch_size)

    def to_model(x, label):
        onehot = tf.one_hot(tf.cast(x[0], tf.int32), 3, dtype=tf.float32)
        feats = onehot if meta is None else {"maps": onehot, "meta": x[1]}
        if n_classes:
            label = tf.one_hot(tf.cast(label, tf.int32), n_classes, dtype=tf.float32)
        return feats, label

    ds = ds.map(to_model).prefetch(2)
    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.deterministic = True
    return ds.with_options(opts)


def class_weight_dict(y: np.ndarray, n_classes: int, max_weight: float) -> dict[int, float]:
    """Balanced class weights (:func:`sklearn.utils.class_weight.compute_class_weight`),
    capped at ``max_weight``; classes absent from ``y`` get 1.0."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    w = np.ones(n_classes)
    w[present] = np.minimum(compute_class_weight("balanced", classes=present, y=y), max_weight)
    return {i: float(v) for i, v in enumerate(w)}


@dataclass
class FitResult:
    """History (metric -> values per epoch), the best epoch (1-based) and the fit time.

    ``fine_tune`` is None after one phase; after :func:`fine_tune_model` it records the
    second phase (``from_layer``, ``epochs_run``, ``first_epoch``, ``kept``, ...) and the
    history holds both phases (column ``phase``: 1 or 2).
    """

    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    fine_tune: dict[str, Any] | None = None


def fit_model(model, data: PreparedData, cfg: CnnTrainConfig, *, verbose: bool = False,
              on_epoch: Callable[[str], None] | None = None) -> FitResult:
    """Fit ``model`` on the prepared training part, validating on the validation part.

    ``EarlyStopping(restore_best_weights=True)`` on the validation loss keeps the best
    epoch's weights; class weights (classifier, ``train.class_weight``) are balanced and
    capped at ``train.max_class_weight``.
    """
    import keras

    from wafertk.training.callbacks import step_schedule_callback

    t = cfg.train
    schedule: list = []
    if t.lr_schedule == "step":
        schedule.append(step_schedule_callback(t.learning_rate))
    elif t.lr_schedule == "plateau":
        schedule.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=t.plateau_factor, patience=t.plateau_patience,
            min_lr=t.learning_rate * 1e-3, verbose=0))
    return _fit(model, data, cfg, epochs=t.epochs, patience=t.early_stopping_patience,
                name=data.task, extra_callbacks=schedule, verbose=verbose, on_epoch=on_epoch)


def _fit(model, data: PreparedData, cfg: CnnTrainConfig, *, epochs: int, patience: int,
         name: str, extra_callbacks: list, verbose: bool,
         on_epoch: Callable[[str], None] | None) -> FitResult:
    """One ``model.fit`` on the training pipeline with early stopping (best weights kept)."""
    import keras

    from wafertk.training.callbacks import EpochLine

    t = cfg.train
    k = len(data.classes) if one_hot_targets(cfg, data.task) else 0
    train_ds = make_dataset(data.x_train, data.m_train, data.y_train, t.batch_size,
                            augment=t.augment, shuffle=True, seed=t.seed, n_classes=k)
    val_ds = make_dataset(data.x_val, data.m_val, data.y_val, max(t.batch_size, 256),
                          augment=False, shuffle=False, seed=None, n_classes=k)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                         restore_best_weights=True)
    callbacks: list = [stop, EpochLine(epochs, name, on_line=on_epoch), *extra_callbacks]
    cw = None
    if data.task == "classifier" and t.class_weight:
        cw = class_weight_dict(data.y_train, len(data.classes), t.max_class_weight)
    t_fit = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, shuffle=False,
                        class_weight=cw, callbacks=callbacks, verbose=1 if verbose else 0)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return FitResult(hist, int(stop.best_epoch) + 1, time.perf_counter() - t_fit)


def fine_tune_model(model, data: PreparedData, cfg: CnnTrainConfig, first: FitResult, *,
                    verbose: bool = False, on_epoch: Callable[[str], None] | None = None
                    ) -> FitResult:
    """Second phase of a transfer architecture: unfreeze the backbone and train on.

    The backbone is made trainable from ``fine_tune.from_layer`` (every layer when null;
    :func:`wafertk.models.transfer.unfreeze_backbone`), the model recompiled with SGD
    (``fine_tune.learning_rate``, ``fine_tune.momentum``, constant) and fitted for
    ``fine_tune.epochs`` with early stopping on the validation loss
    (``fine_tune.early_stopping_patience``, best weights restored). If no fine-tuning epoch
    beats the first phase's best validation loss, the first phase's weights are put back
    (``kept: false`` in the result): the best epoch over both phases is kept.

    Parameters
    ----------
    model : keras.Model
        Trained by :func:`fit_model` (first phase, backbone frozen).
    data : PreparedData
    cfg : CnnTrainConfig
        ``model.architecture`` a transfer architecture.
    first : FitResult
        The first phase's result.
    verbose : bool
    on_epoch : callable, optional

    Returns
    -------
    FitResult
        Both phases: history concatenated (``phase`` column), ``best_epoch`` counted over
        both, ``seconds`` summed, ``fine_tune`` filled in.

    Raises
    ------
    WafertkError
        The architecture is not a transfer one.
    """
    import keras

    from wafertk.models.transfer import unfreeze_backbone

    if not cfg.model.is_transfer:
        raise WafertkError(f"fine_tune: {cfg.model.architecture or 'the default CNN'} is not "
                           "a transfer architecture")
    ft = cfg.fine_tune
    backbone = cfg.model.backbone_name
    best_first = min(first.history.get("val_loss", [np.inf]))
    first_weights = model.get_weights()
    n_trainable = unfreeze_backbone(model, backbone, ft.from_layer)
    compile_model(model, cfg, data.task,
                  keras.optimizers.SGD(ft.learning_rate, momentum=ft.momentum))
    second = _fit(model, data, cfg, epochs=ft.epochs, patience=ft.early_stopping_patience,
                  name=f"{data.task} fine-tune", extra_callbacks=[], verbose=verbose,
                  on_epoch=on_epoch)
    best_second = min(second.history.get("val_loss", [np.inf]))
    kept = bool(best_second < best_first)
    if not kept:
        model.set_weights(first_weights)
    n1 = len(first.history.get("loss", []))
    n2 = len(second.history.get("loss", []))
    keys = list(dict.fromkeys([*first.history, *second.history]))
    history = {k: (first.history.get(k, [float("nan")] * n1)
                   + second.history.get(k, [float("nan")] * n2)) for k in keys}
    history["phase"] = [1.0] * n1 + [2.0] * n2
    info = {"from_layer": ft.from_layer, "learning_rate": ft.learning_rate,
            "momentum": ft.momentum, "epochs_run": n2, "first_epoch": n1 + 1,
            "best_epoch": n1 + second.best_epoch if kept else first.best_epoch,
            "trainable_backbone_tensors": int(n_trainable),
            "first_phase_best_val_loss": float(best_first),
            "best_val_loss": float(min(best_first, best_second)), "kept": kept,
            "fit_seconds": round(second.seconds, 1)}
    return FitResult(history, info["best_epoch"], first.seconds + second.seconds, info)


# --------------------------------------------------------------------------- 4. decide
@dataclass
class Decision:
    """Calibration and decision fitted on the validation outputs, and the figures there.

    Attributes
    ----------
    temperature : float
    threshold : float or None
        Detector only.
    proba : ndarray
        Calibrated validation probabilities: P(defective) (n,) or class rows (n, k).
    extra : dict
        Manifest ``extra`` entries (``threshold``, ``temperature``, ``review_below``, ...).
    figures : dict
        :func:`wafertk.evaluate.summary_figures` of the validation split.
    binary, metrics : dict or None
        :func:`wafertk.evaluate.binary_metrics` (detector) or
        :func:`~wafertk.evaluate.classification_metrics` (classifier).
    """

    temperature: float
    threshold: float | None
    proba: np.ndarray
    extra: dict[str, Any]
    figures: dict[str, Any]
    binary: dict | None = None
    metrics: dict | None = None


def calibrate_and_decide(model, data: PreparedData, cfg: CnnTrainConfig) -> Decision:
    """Temperature (and the detector's recall-targeted threshold) from validation outputs."""
    from wafertk import evaluate
    from wafertk.models.predictors import forward_pass

    raw = forward_pass(model, data.val_inputs, batch_size=512)
    extra: dict[str, Any] = {"review_below": cfg.decision.review_below}
    if data.task == "detector":
        y = data.y_val.astype(np.int64)
        logits = logits_from_proba(raw[:, 0])
        temperature = fit_temperature(logits, y)
        score = apply_temperature(logits, temperature)
        threshold = threshold_for_recall(y, score, cfg.decision.target_recall)
        extra.update(threshold=threshold, temperature=temperature,
                     target_recall=cfg.decision.target_recall)
        binary = evaluate.binary_metrics(y, score, threshold=threshold)
        return Decision(temperature, threshold, score, extra,
                        evaluate.summary_figures(binary=binary), binary=binary)
    logits = logits_from_proba(raw)
    temperature = fit_temperature(logits, data.y_val)
    proba = apply_temperature(logits, temperature)
    extra.update(temperature=temperature)
    metrics = evaluate.classification_metrics(data.y_val, proba.argmax(axis=1), data.classes,
                                              proba=proba)
    return Decision(temperature, None, proba, extra, evaluate.summary_figures(metrics=metrics),
                    metrics=metrics)


# --------------------------------------------------------------------------- 5. write
def write_history(hist: dict[str, list[float]], path: Path) -> None:
    """``history.csv``: ``epoch`` then one column per metric (:mod:`csv`)."""
    keys = list(hist)
    n = len(hist[keys[0]]) if keys else 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", *keys])
        for i in range(n):
            w.writerow([i + 1, *(f"{float(hist[k][i]):.6g}" for k in keys)])


def _write_validation_wafers(ws: WaferSet, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["wafer_id", "lot", "label"])
        w.writerows(zip(ws.wafer_id.astype(str), ws.lot.astype(str),
                        ws.label_strings().astype(str), strict=True))


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def plot_history(hist: dict[str, list[float]], folder: Path, task: str) -> None:
    """``curves_loss.png`` and ``curves_metric.png`` (matplotlib's object API, no pyplot)."""
    from matplotlib.figure import Figure

    epochs = np.arange(1, len(hist.get("loss", [])) + 1)
    for name, keys in (("loss", ["loss", "val_loss"]),
                       ("metric", ["accuracy", "val_accuracy"]
                        + (["auc", "val_auc"] if task == "detector" else []))):
        fig = Figure(figsize=(5, 3.2))
        ax = fig.add_subplot()
        for k in keys:
            if k in hist:
                ax.plot(epochs, hist[k], label=k, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, folder / f"curves_{name}.png")


def plot_roc_pr(binary: dict, folder: Path) -> None:
    """``curves_roc.png`` and ``curves_pr.png`` from :func:`~wafertk.evaluate.binary_metrics`,
    the threshold's operating point marked (nothing when only one class is present)."""
    from matplotlib.figure import Figure

    if not binary["roc_curve"]["fpr"]:
        return
    (tn, fp), (fn, tp) = binary["confusion_matrix"]
    fpr_at = fp / max(fp + tn, 1)
    label = f"threshold {binary['threshold']:.3f}"
    for name, xs, ys, xl, yl, pt, loc in (
        ("roc", binary["roc_curve"]["fpr"], binary["roc_curve"]["tpr"], "false positive rate",
         "true positive rate (recall)", (fpr_at, binary["recall"]), "lower right"),
        ("pr", binary["pr_curve"]["recall"], binary["pr_curve"]["precision"], "recall",
         "precision", (binary["recall"], binary["precision"]), "lower left"),
    ):
        fig = Figure(figsize=(4.2, 3.6))
        ax = fig.add_subplot()
        ax.plot(xs, ys)
        ax.plot(*pt, "o", color="C3", label=label)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(loc=loc)
        _save(fig, folder / f"curves_{name}.png")


def transfer_record(cfg: CnnTrainConfig, fit: FitResult) -> dict[str, Any]:
    """The manifest's ``extra.transfer``: backbone, weights file name (and a digest of it),
    and the fine-tuning phase (None when there was none)."""
    weights = cfg.model.weights
    digest = None
    if weights is not None:
        h = hashlib.sha256()
        with open(Path(weights).expanduser(), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()[:16]
    return {"backbone": cfg.model.backbone_name,
            "weights": None if weights is None else Path(weights).name,
            "weights_sha256": digest,
            "frozen_first_phase": True,
            "fine_tune": fit.fine_tune}


def write_run_folder(out_dir: str | os.PathLike, cfg: CnnTrainConfig, data: PreparedData,
                     model, fit: FitResult, decision: Decision, *, seconds: float = 0.0
                     ) -> Path:
    """Write the run folder atomically (see the module docstring); returns ``out_dir``."""
    from wafertk import evaluate
    from wafertk.models.manifest import Manifest, package_versions, write_manifest

    task = data.task
    with atomic_path(out_dir, directory=True) as tmp:
        save_config(cfg, tmp / "config.yaml")
        write_history(fit.history, tmp / "history.csv")
        _write_validation_wafers(data.val_wafers, tmp / "validation.csv")
        plot_history(fit.history, tmp, task)
        if decision.binary is not None:
            plot_roc_pr(decision.binary, tmp)
        title = ("Detector validation (lot-disjoint split)" if task == "detector"
                 else "Pattern classifier validation (lot-disjoint split)")
        evaluate.write_evaluation_report(tmp / "report", title=title, binary=decision.binary,
                                         metrics=decision.metrics)
        model.save(tmp / "model.keras")
        extra = dict(decision.extra)
        extra.update(
            architecture=cfg.model.architecture or DEFAULT_ARCHITECTURE[task],
            validation=decision.figures,
            split=data.split,
            training={"epochs_run": len(fit.history.get("loss", [])),
                      "best_epoch": fit.best_epoch, "fit_seconds": round(fit.seconds, 1),
                      "total_seconds": round(seconds, 1),
                      "params": int(model.count_params())},
            config=to_dict(cfg),
        )
        if cfg.model.is_transfer:
            extra["transfer"] = transfer_record(cfg, fit)
        man = Manifest(
            kind=f"cnn-{task}",
            model_file="model.keras",
            classes=list(data.classes),
            input_size=cfg.data.input_size,
            preprocessing={
                "resize": "fail-preserving max-pool (wafertk.data.preprocess.resize_maps)",
                "channels": ["no_die", "pass", "fail"],
                "meta": list(META_FEATURE_NAMES) if task == "classifier" else None,
                **({"backbone_input": "one-hot x 255 as RGB, then the backbone's "
                    "preprocessing (inside the model)"} if cfg.model.is_transfer else {}),
            },
            extra=extra,
            versions=package_versions("tensorflow", "keras"),
        )
        write_manifest(tmp, man)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it owner-only
    return Path(out_dir)
