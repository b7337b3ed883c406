"""Train the phase-1 detector and the phase-2 pattern classifier into a run folder.

A run folder (written atomically: a temporary folder renamed at the end) holds::

    config.yaml        resolved config
    history.csv        per-epoch loss/metrics/learning rate
    curves_loss.png    training and validation loss
    curves_metric.png  training and validation accuracy (and AUC for the detector)
    curves_roc.png, curves_pr.png   detector: validation ROC and PR curves, threshold marked
    report/            evaluation report of the validation split (report.json/md/html, PNGs)
    model.keras        the best-epoch model
    manifest.json      classes, input size, preprocessing, threshold, temperature, figures

The validation split is lot-disjoint and stratified over the nine labels of the whole labeled
set (:func:`wafertk.data.splits.lot_stratified_split` with ``data.split_seed``), made before
any augmentation; the classifier uses the same split restricted to the defect classes, so the
two-phase pipeline can be evaluated end to end on the same validation lots.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.config import save_config, to_dict
from wafertk.data.preprocess import META_FEATURE_NAMES, die_metadata, resize_maps
from wafertk.data.splits import Split, class_weights, validation_split  # noqa: F401
from wafertk.data.waferset import DEFECT_CLASSES, NONE_CLASS, WaferSet
from wafertk.errors import WafertkError
from wafertk.training.calibration import (
    apply_temperature,
    fit_temperature,
    logits_from_proba,
    threshold_for_recall,
)
from wafertk.training.config import CnnTrainConfig

log = logging.getLogger(__name__)

DETECTOR_CLASSES = ["good", "defective"]


def _labeled(ws: WaferSet) -> WaferSet:
    if not ws.has_labels:
        raise WafertkError("training needs labeled wafers (the file has no labels)")
    return ws.take(ws.labeled_mask())


def train_detector(ws: WaferSet, out_dir: str | os.PathLike, config: CnnTrainConfig | None = None,
                   *, verbose: bool = False, progress: bool = True) -> Path:
    """Train the phase-1 CNN (none -> good, any pattern -> defective) into ``out_dir``.

    Parameters
    ----------
    ws : WaferSet
        Labeled wafers (unlabeled ones are ignored).
    out_dir : str or os.PathLike
        Run folder, written atomically (replaced if it exists).
    config : CnnTrainConfig, optional
        Default :class:`~wafertk.training.config.CnnTrainConfig`.
    verbose : bool
        Keras progress bars instead of one line per epoch.
    progress : bool, default True
        One line per epoch on standard error (when not ``verbose``).

    Returns
    -------
    pathlib.Path
        The run folder (a loadable model folder, kind ``"cnn-detector"``).
    """
    return _train(ws, out_dir, config or CnnTrainConfig(), "detector", verbose, progress)


def train_classifier(ws: WaferSet, out_dir: str | os.PathLike,
                     config: CnnTrainConfig | None = None, *, verbose: bool = False,
                     progress: bool = True) -> Path:
    """Train the phase-2 pattern CNN on the eight defect classes (class-weighted) into ``out_dir``.

    Parameters and returns as :func:`train_detector`; the model kind is ``"cnn-classifier"``.
    Wafers labeled ``none`` only take part in the split (so that validation lots match the
    detector's) and are then dropped.
    """
    return _train(ws, out_dir, config or CnnTrainConfig(), "classifier", verbose, progress)


# ---------------------------------------------------------------------------------------------
def _dataset(maps: np.ndarray, meta: np.ndarray | None, y: np.ndarray, batch_size: int,
             *, augment: bool, shuffle: bool, seed: int | None):
    """tf.data pipeline: uint8 resized maps -> (augment) -> one-hot float32 batches."""
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
        return feats, label

    ds = ds.map(to_model).prefetch(2)
    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.deterministic = True
    return ds.with_options(opts)


def _optimizer(cfg: CnnTrainConfig):
    import keras

    t = cfg.train
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(t.learning_rate, momentum=t.momentum)
    return keras.optimizers.Adam(t.learning_rate)


def _plot_history(hist: dict[str, list[float]], folder: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(hist.get("loss", [])) + 1)
    for name, keys in (("loss", ["loss", "val_loss"]),
                       ("metric", ["accuracy", "val_accuracy"]
                        + (["auc", "val_auc"] if task == "detector" else []))):
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        for k in keys:
            if k in hist:
                ax.plot(epochs, hist[k], label=k, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"curves_{name}.png")
        plt.close(fig)


def _plot_roc_pr(y: np.ndarray, score: np.ndarray, threshold: float, folder: Path) -> None:
    """``curves_roc.png`` and ``curves_pr.png`` of the validation scores, threshold marked."""
    if len(np.unique(y)) < 2:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    pred = score >= threshold
    tpr_at = pred[y == 1].mean()
    fpr_at = pred[y == 0].mean()
    prec_at = (pred & (y == 1)).sum() / max(pred.sum(), 1)
    fpr, tpr, _ = roc_curve(y, score)
    prec, rec, _ = precision_recall_curve(y, score)
    for name, (xs, ys, xl, yl, pt) in {
        "roc": (fpr, tpr, "false positive rate", "true positive rate (recall)",
                (fpr_at, tpr_at)),
        "pr": (rec, prec, "recall", "precision", (tpr_at, prec_at)),
    }.items():
        fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
        ax.plot(xs, ys)
        ax.plot(*pt, "o", color="C3", label=f"threshold {threshold:.3f}")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if name == "roc" else "lower left")
        fig.tight_layout()
        fig.savefig(folder / f"curves_{name}.png")
        plt.close(fig)


def _write_history(hist: dict[str, list[float]], path: Path) -> None:
    keys = list(hist)
    n = len(hist[keys[0]]) if keys else 0
    lines = ["epoch," + ",".join(keys)]
    for i in range(n):
        lines.append(f"{i + 1}," + ",".join(f"{float(hist[k][i]):.6g}" for k in keys))
    path.write_text("\n".join(lines) + "\n")


def _train(ws: WaferSet, out_dir, cfg: CnnTrainConfig, task: str, verbose: bool,
           progress: bool = True) -> Path:
    import keras

    from wafertk.models.cnn import (
        build_wafer_cnn_classifier,
        build_wafer_cnn_detector,
        default_meta_log_columns,
    )
    from wafertk.models.manifest import Manifest, package_versions, write_manifest
    from wafertk.models.predictors import forward_pass
    from wafertk.training.callbacks import BestWeights, EpochLine, step_schedule_callback

    t0 = time.perf_counter()
    t, d = cfg.train, cfg.data
    if not 0 < d.validation_fraction < 1:
        raise WafertkError(f"validation_fraction must be in (0, 1), got {d.validation_fraction}")
    if t.epochs < 1 or t.batch_size < 1:
        raise WafertkError("epochs and batch_size must be at least 1")
    ws = _labeled(ws)
    split = validation_split(ws, d.validation_fraction, d.split_seed)
    labels = ws.label_strings().astype(str)
    if task == "detector":
        classes = list(DETECTOR_CLASSES)
        y_all = (labels != NONE_CLASS).astype(np.float32)
        tr, va = split.train, split.val
    else:
        classes = list(DEFECT_CLASSES)
        lookup = {c: i for i, c in enumerate(classes)}
        is_def = np.isin(labels, classes)
        tr, va = split.train[is_def[split.train]], split.val[is_def[split.val]]
        y_all = np.array([lookup.get(s, -1) for s in labels], np.int64)
    if len(tr) == 0 or len(va) == 0:
        raise WafertkError(f"not enough labeled {task} wafers for a train/validation split "
                           f"({len(tr)} train, {len(va)} validation)")
    if task == "detector" and len(np.unique(y_all[tr])) < 2:
        raise WafertkError("the detector needs both 'none' and defect wafers to train")
    lots_overlap = set(ws.lot[tr].astype(str)) & set(ws.lot[va].astype(str)) - {""}
    assert not lots_overlap, "validation split is not lot-disjoint"
    log.info("%s: %d training, %d validation wafers (%d validation lots)", task, len(tr),
             len(va), len(set(ws.lot[va].astype(str))))

    size = d.input_size
    tws, vws = ws.take(tr), ws.take(va)
    x_tr, x_va = resize_maps(tws, size), resize_maps(vws, size)
    m_tr = m_va = None
    if task == "classifier":
        m_tr, m_va = die_metadata(tws), die_metadata(vws)
    y_tr, y_va = y_all[tr], y_all[va]

    if t.seed is not None:
        keras.utils.set_random_seed(t.seed)
    arch = dict(conv_filters=list(cfg.model.conv_filters), batch_norm=cfg.model.batch_norm,
                dropout=cfg.model.dropout, l1=cfg.model.l1, l2=cfg.model.l2,
                activation=cfg.model.activation, dense_units=cfg.model.dense_units,
                seed=t.seed)
    if task == "detector":
        model = build_wafer_cnn_detector((size, size, 3), compile=False, **arch)
        model.compile(optimizer=_optimizer(cfg), loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc"), "accuracy"])
    else:
        model = build_wafer_cnn_classifier((size, size, 3), len(classes), compile=False,
                                           meta_log_columns=default_meta_log_columns(), **arch)
        model.get_layer("meta_scaling").adapt(m_tr)
        model.compile(optimizer=_optimizer(cfg), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])

    train_ds = _dataset(x_tr, m_tr, y_tr, t.batch_size, augment=t.augment, shuffle=True,
                        seed=t.seed)
    val_ds = _dataset(x_va, m_va, y_va, max(t.batch_size, 256), augment=False, shuffle=False,
                      seed=None)
    best = BestWeights("val_loss")
    callbacks: list = [best, keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=t.early_stopping_patience, restore_best_weights=False)]
    if t.lr_schedule == "step":
        callbacks.append(step_schedule_callback(t.learning_rate))
    elif t.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=t.plateau_factor, patience=t.plateau_patience,
            min_lr=t.learning_rate * 1e-3, verbose=0))
    if not verbose:
        callbacks.append(EpochLine(t.epochs, task, stream=None if progress else False))
    cw = None
    if task == "classifier" and t.class_weight:
        cw = class_weights(y_tr, len(classes), max_weight=t.max_class_weight)
        cw = {k: (v if v > 0 else 1.0) for k, v in cw.items()}
    t_fit = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, shuffle=False,
                        class_weight=cw, callbacks=callbacks, verbose=1 if verbose else 0)
    fit_s = time.perf_counter() - t_fit
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    # ---- validation outputs, calibration, decision
    inputs = (x_va,) if m_va is None else (x_va, m_va)
    raw = forward_pass(model, inputs, batch_size=512)
    extra: dict = {"review_below": cfg.decision.review_below}
    if task == "detector":
        p_raw = raw[:, 0]
        logits = logits_from_proba(p_raw)
        temperature = fit_temperature(logits, y_va.astype(np.int64))
        score = apply_temperature(logits, temperature)
        threshold = threshold_for_recall(y_va, score, cfg.decision.target_recall)
        extra.update(threshold=threshold, temperature=temperature,
                     target_recall=cfg.decision.target_recall)
        figures = _detector_figures(y_va.astype(np.int64), score, threshold)
    else:
        logits = logits_from_proba(raw)
        temperature = fit_temperature(logits, y_va)
        proba = apply_temperature(logits, temperature)
        extra.update(temperature=temperature)
        figures = _classifier_figures(y_va, proba, classes)

    with atomic_path(out_dir, directory=True) as tmp:
        save_config(cfg, tmp / "config.yaml")
        _write_history(hist, tmp / "history.csv")
        _plot_history(hist, tmp, task)
        if task == "detector":
            _plot_roc_pr(y_va.astype(np.int64), score, threshold, tmp)
            _write_report(tmp / "report", "Detector validation (lot-disjoint split)",
                          binary=(y_va.astype(np.int64), score, threshold))
        else:
            pred = proba.argmax(axis=1)
            _write_report(tmp / "report", "Pattern classifier validation (lot-disjoint split)",
                          multi=(y_va, pred, classes, proba))
        model.save(tmp / "model.keras")
        extra.update(
            validation=figures,
            split={"method": "lot_stratified_split over all labeled wafers",
                   "validation_fraction": d.validation_fraction, "split_seed": d.split_seed,
                   "n_train": int(len(tr)), "n_validation": int(len(va)),
                   "validation_lots": int(len(set(ws.lot[va].astype(str))))},
            training={"epochs_run": len(hist.get("loss", [])), "best_epoch": best.best_epoch + 1,
                      "fit_seconds": round(fit_s, 1),
                      "total_seconds": round(time.perf_counter() - t0, 1),
                      "params": int(model.count_params())},
            config=to_dict(cfg),
        )
        man = Manifest(
            kind=f"cnn-{task}",
            model_file="model.keras",
            classes=classes,
            input_size=size,
            preprocessing={
                "resize": "fail-preserving max-pool (wafertk.data.preprocess.resize_maps)",
                "channels": ["no_die", "pass", "fail"],
                "meta": list(META_FEATURE_NAMES) if task == "classifier" else None,
            },
            extra=extra,
            versions=package_versions("tensorflow", "keras"),
        )
        write_manifest(tmp, man)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it owner-only
    log.info("%s written to %s in %.0fs", task, out_dir, time.perf_counter() - t0)
    return Path(out_dir)


def _detector_figures(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    pred = score >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    both = len(np.unique(y)) == 2
    return {
        "n": int(len(y)), "n_defective": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, score)) if both else None,
        "average_precision": float(average_precision_score(y, score)) if both else None,
        "threshold": float(threshold),
        "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
    }


def _classifier_figures(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    f1 = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    present = np.isin(labels, y)
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": {c: float(f1[i]) for i, c in enumerate(classes)},
        "support": {c: int((y == i).sum()) for i, c in enumerate(classes)},
    }


def _write_report(folder: Path, title: str, *, binary=None, multi=None) -> None:
    """Evaluation report through the shared :mod:`wafertk.evaluate` module (JSON fallback)."""
    import json

    try:
        from wafertk import evaluate
    except ImportError:
        evaluate = None
    folder.mkdir(parents=True, exist_ok=True)
    if evaluate is not None:
        kwargs = {}
        if binary is not None:
            y, score, thr = binary
            kwargs["binary"] = evaluate.binary_metrics(y, score, threshold=thr)
        if multi is not None:
            y, pred, classes, proba = multi
            names = np.asarray(classes, dtype=object)
            kwargs["metrics"] = evaluate.classification_metrics(
                names[y], names[pred], classes, proba=proba)
        evaluate.write_evaluation_report(folder, title=title, **kwargs)
        return
    data: dict = {"title": title}
    if binary is not None:
        data["binary"] = _detector_figures(*binary)
    if multi is not None:
        y, pred, classes, proba = multi
        data["metrics"] = _classifier_figures(y, proba, classes)
    (folder / "report.json").write_text(json.dumps(data, indent=2) + "\n")
