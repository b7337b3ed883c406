"""Learning-rate range test (Smith 2017, "Cyclical learning rates"): find a usable rate fast.

The learning rate is raised exponentially, once per batch, from ``start_lr`` (1e-5) to
``end_lr``; the loss of every batch is recorded and smoothed (an exponential moving average,
bias-corrected), and the test stops once the smoothed loss exceeds ``diverge`` times the best
seen so far (the loss "blows up"). The suggested rate is the one where the smoothed loss
falls fastest (steepest negative slope against ``log10(lr)``) before its minimum, i.e. before
the blow-up.

Three layers, each usable alone:

* :class:`LRRangeTest`: a Keras callback, one concern (raise the rate, record, stop);
* :func:`lr_range_test`: runs the callback over any compiled Keras model and dataset, with
  the model's weights and learning rate restored afterwards, and returns an
  :class:`LRFindResult` (:func:`suggest_lr`, :meth:`LRFindResult.plot`,
  :meth:`LRFindResult.save`: ``lr_find.csv``, ``lr_find.json``, ``lr_find.png``);
* entry points for the two kinds of training data: :func:`wafer_lr_find` (the wafer CNNs,
  through :mod:`wafertk.training.trainer`) and :func:`image_lr_find` (image folders,
  through :func:`wafertk.images.train.build_for_lr_find`).

This module imports Keras (the callback subclasses ``keras.callbacks.Callback``): import it
after the cheap checks, as the command line does.

Examples
--------
>>> from wafertk.training.lr_find import lr_range_test          # doctest: +SKIP
>>> result = lr_range_test(model, train_ds, start_lr=1e-5, end_lr=1.0, num_steps=100)
>>> result.suggested_lr, result.save("out/lr_find")               # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from wafertk._atomic import atomic_path
from wafertk.errors import WafertkError

log = logging.getLogger(__name__)

__all__ = [
    "LRFindResult",
    "LRRangeTest",
    "image_lr_find",
    "lr_range_test",
    "suggest_lr",
    "wafer_lr_find",
]

#: files :meth:`LRFindResult.save` writes
FILES = ("lr_find.csv", "lr_find.json", "lr_find.png")


def _check_range(start_lr: float, end_lr: float, num_steps: int, beta: float,
                 diverge: float) -> None:
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise WafertkError(f"start_lr: {start_lr!r} is not > 0")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise WafertkError(f"end_lr: {end_lr!r} is not > start_lr ({start_lr:g})")
    if int(num_steps) < 2:
        raise WafertkError(f"num_steps: {num_steps!r} is not >= 2")
    if not 0 <= beta < 1:
        raise WafertkError(f"beta: {beta!r} is not in [0, 1)")
    if not diverge > 1:
        raise WafertkError(f"diverge: {diverge!r} is not > 1")


def _find_accuracy_key(logs: dict[str, Any]) -> str | None:
    if "accuracy" in logs:
        return "accuracy"
    for k in logs:
        if "acc" in k and not k.startswith("val_"):
            return k
    return None


class LRRangeTest(keras.callbacks.Callback):
    """Keras callback: raise the learning rate exponentially per batch, record, stop on blow-up.

    Batch ``i`` (0-based) trains at ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``.
    The model's metrics are reset before every batch, so the logged loss and accuracy are
    those of that batch alone (Keras logs running means over the epoch otherwise).

    Parameters
    ----------
    start_lr, end_lr : float
        First and last learning rate (``0 < start_lr < end_lr``).
    num_steps : int
        Batches from ``start_lr`` to ``end_lr`` (at least 2); training stops after them.
    beta : float
        Smoothing of the loss (exponential moving average with bias correction), in [0, 1).
    diverge : float
        Stop when the smoothed loss exceeds ``diverge`` times the lowest smoothed loss so far
        (or the loss is not finite), after at least ``min_steps`` batches.
    min_steps : int
        Batches before a stop is allowed (the first, noisy batches never stop the test).

    Attributes
    ----------
    lrs, losses, smoothed, accuracy : list of float
        Per batch: the rate it trained at, its loss, the smoothed loss, its accuracy (NaN when
        the model has no accuracy metric).
    diverged : bool
        Whether the test stopped on a blow-up (rather than reaching ``end_lr``).
    """

    def __init__(self, start_lr: float = 1e-5, end_lr: float = 10.0, num_steps: int = 100, *,
                 beta: float = 0.9, diverge: float = 4.0, min_steps: int = 5) -> None:
        super().__init__()
        _check_range(start_lr, end_lr, num_steps, beta, diverge)
        self.start_lr, self.end_lr = float(start_lr), float(end_lr)
        self.num_steps = int(num_steps)
        self.beta, self.diverge, self.min_steps = float(beta), float(diverge), int(min_steps)
        self.factor = (self.end_lr / self.start_lr) ** (1.0 / (self.num_steps - 1))
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.accuracy: list[float] = []
        self.diverged = False
        self._avg = 0.0
        self._best = math.inf

    def lr_at(self, i: int) -> float:
        """Learning rate of batch ``i`` (0-based)."""
        return self.start_lr * self.factor ** i

    def on_train_begin(self, logs=None):
        self.model.optimizer.learning_rate = self.lr_at(0)

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()
        self.model.optimizer.learning_rate = self.lr_at(len(self.lrs))

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        i = len(self.lrs)
        loss = float(logs.get("loss", math.nan))
        key = _find_accuracy_key(logs)
        self.lrs.append(self.lr_at(i))
        self.losses.append(loss)
        self.accuracy.append(float(logs[key]) if key else math.nan)
        if math.isfinite(loss):
            self._avg = self.beta * self._avg + (1 - self.beta) * loss
            smooth = self._avg / (1 - self.beta ** (i + 1))
        else:
            smooth = math.inf
        self.smoothed.append(smooth)
        if i + 1 >= self.min_steps and (not math.isfinite(smooth)
                                        or smooth > self.diverge * self._best):
            self.diverged = True
            self.model.stop_training = True
        self._best = min(self._best, smooth)
        if i + 1 >= self.num_steps:
            self.model.stop_training = True


def suggest_lr(lrs, smoothed, *, skip_start: int | None = None) -> tuple[float, int]:
    """The rate of steepest descent of the smoothed loss, before its minimum.

    The slope is ``d smoothed / d log10(lr)`` (central differences); the search runs from
    ``skip_start`` (default 10 % of the points, at least 1) to the index of the lowest
    smoothed loss, so the blow-up after it is never chosen.

    Parameters
    ----------
    lrs : sequence of float
        Increasing learning rates.
    smoothed : sequence of float
        Smoothed loss at each rate (``inf``/NaN where it diverged).
    skip_start : int, optional
        Leading points left out (noisy start).

    Returns
    -------
    lr : float
        Suggested learning rate.
    index : int
        Its index in ``lrs``.

    Raises
    ------
    WafertkError
        Fewer than 3 finite points (the test stopped at once: start lower).
    """
    lrs = np.asarray(lrs, float)
    s = np.asarray(smoothed, float)
    finite = np.isfinite(s)
    n = int(np.argmax(~finite)) if not finite.all() else len(s)  # first non-finite point
    if n < 3:
        raise WafertkError(f"the LR range test has {n} usable point(s); at least 3 are needed "
                           "(more steps, or a lower start_lr)")
    lrs, s = lrs[:n], s[:n]
    lo = max(1, n // 10) if skip_start is None else max(0, int(skip_start))
    hi = int(np.argmin(s))
    if hi - lo < 2:  # the minimum comes (almost) at once: fall back to a tenth of its rate
        i = hi
        target = lrs[i] / 10
        j = int(np.argmin(np.abs(np.log10(lrs) - np.log10(target))))
        return float(max(target, lrs[0])), j
    grad = np.gradient(s, np.log10(lrs))
    j = lo + int(np.argmin(grad[lo:hi + 1]))
    return float(lrs[j]), j


@dataclass
class LRFindResult:
    """What an LR range test found.

    Attributes
    ----------
    lrs, losses, smoothed, accuracy : ndarray of shape (n,)
        Per batch: learning rate, loss, smoothed loss, accuracy (NaN without an accuracy
        metric).
    suggested_lr : float
        Steepest descent of the smoothed loss before its minimum (:func:`suggest_lr`).
    min_loss_lr : float
        Rate at the lowest smoothed loss.
    diverged : bool
        Whether the test stopped on a blow-up.
    descent : bool
        Whether the smoothed loss fell at all: its minimum lies at least 10 % below the median
        of its first 10 % of points. False means the model did not learn in this range (read
        the plot; the suggestion is then meaningless).
    settings : dict
        start_lr, end_lr, num_steps, beta, diverge and anything the caller adds (model,
        data).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    accuracy: np.ndarray
    suggested_lr: float
    min_loss_lr: float
    diverged: bool
    descent: bool = True
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def suggested_index(self) -> int:
        """Index of :attr:`suggested_lr` in :attr:`lrs`."""
        return int(np.argmin(np.abs(np.log(self.lrs) - math.log(self.suggested_lr))))

    def to_dict(self) -> dict[str, Any]:
        """Summary for JSON (the curves go to the CSV)."""
        return {"suggested_lr": self.suggested_lr, "min_loss_lr": self.min_loss_lr,
                "diverged": bool(self.diverged), "descent": bool(self.descent),
                "steps": int(len(self.lrs)),
                "last_lr": float(self.lrs[-1]) if len(self.lrs) else None,
                **self.settings}

    def plot(self, path: str | os.PathLike | None = None):
        """Loss (raw and smoothed) and accuracy against the rate (log axis), suggestion marked.

        Returns the matplotlib ``Figure`` (object API, no pyplot); written as PNG to ``path``
        when given.
        """
        from matplotlib.figure import Figure

        has_acc = bool(np.isfinite(self.accuracy).any())
        fig = Figure(figsize=(6, 5.5 if has_acc else 3.4))
        axes = fig.subplots(2 if has_acc else 1, 1, sharex=True, squeeze=False)[:, 0]
        ax = axes[0]
        finite = np.isfinite(self.smoothed)
        ax.plot(self.lrs, self.losses, color="0.75", lw=0.8, label="batch loss")
        ax.plot(self.lrs[finite], self.smoothed[finite], color="C0", label="smoothed loss")
        ok = self.smoothed[finite]
        if ok.size:  # keep the blow-up from flattening the interesting part
            lo, hi = float(np.min(ok)), float(ok[0])
            top = max(hi, lo) + 0.5 * abs(max(hi, lo) - lo) + 1e-6
            ax.set_ylim(lo - 0.1 * (top - lo), top)
        ax.set_ylabel("loss")
        for a in axes:
            a.set_xscale("log")
            a.axvline(self.suggested_lr, color="C3", ls="--",
                      label=f"suggested {self.suggested_lr:.2e}")
            a.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        if has_acc:
            axes[1].plot(self.lrs, self.accuracy, color="C2", lw=0.8, label="batch accuracy")
            axes[1].set_ylabel("accuracy")
            axes[1].legend(fontsize=8)
        axes[-1].set_xlabel("learning rate (log scale)")
        fig.suptitle("LR range test")
        fig.tight_layout()
        if path is not None:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
        return fig

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``lr_find.csv`` (per batch), ``lr_find.json`` (summary) and ``lr_find.png``
        into ``folder``, each atomically (created if missing; other files left alone)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "lr_find.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "lr", "loss", "smoothed_loss", "accuracy"])
            for i, row in enumerate(zip(self.lrs, self.losses, self.smoothed, self.accuracy,
                                        strict=True)):
                w.writerow([i, *(f"{v:.6g}" for v in row)])
        with atomic_path(folder / "lr_find.json") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")
        self.plot(folder / "lr_find.png")
        return folder


def _json_default(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def lr_range_test(model, dataset, *, start_lr: float = 1e-5, end_lr: float = 10.0,
                  num_steps: int = 100, beta: float = 0.9, diverge: float = 4.0,
                  min_steps: int = 5, restore: bool = True,
                  settings: dict[str, Any] | None = None) -> LRFindResult:
    """Run an LR range test on a compiled Keras ``model`` over ``dataset``.

    Parameters
    ----------
    model : keras.Model
        Compiled (optimizer, loss; an accuracy metric adds the accuracy curve). Its optimizer
        must take a plain float rate (not a schedule).
    dataset : tf.data.Dataset
        Batches of ``(inputs, targets)``; repeated as needed to reach ``num_steps`` batches.
    start_lr, end_lr : float
        Range of the rate, raised exponentially per batch.
    num_steps : int
        Batches from ``start_lr`` to ``end_lr``.
    beta, diverge, min_steps
        See :class:`LRRangeTest`.
    restore : bool
        Put the weights and learning rate back afterwards (the optimizer's slots are not).
    settings : dict, optional
        Extra facts recorded in the result (model name, data).

    Returns
    -------
    LRFindResult

    Raises
    ------
    WafertkError
        Bad range settings, or too few batches before the loss diverged.
    """
    _check_range(start_lr, end_lr, num_steps, beta, diverge)
    cb = LRRangeTest(start_lr, end_lr, num_steps, beta=beta, diverge=diverge,
                     min_steps=min_steps)
    weights = model.get_weights() if restore else None
    lr0 = float(np.asarray(model.optimizer.learning_rate))
    data = dataset.repeat() if hasattr(dataset, "repeat") else dataset
    try:
        model.fit(data, epochs=1, steps_per_epoch=int(num_steps), callbacks=[cb],
                  shuffle=False, verbose=0)
    finally:
        if restore:
            model.set_weights(weights)
            model.optimizer.learning_rate = lr0
    lrs = np.asarray(cb.lrs, float)
    smoothed = np.asarray(cb.smoothed, float)
    lr, _ = suggest_lr(lrs, smoothed)
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    head = smoothed[:max(3, len(smoothed) // 10)]
    descent = bool(np.min(finite) < 0.9 * np.median(head[np.isfinite(head)]))
    result = LRFindResult(
        lrs=lrs, losses=np.asarray(cb.losses, float), smoothed=smoothed,
        accuracy=np.asarray(cb.accuracy, float), suggested_lr=lr,
        min_loss_lr=float(lrs[int(np.argmin(finite))]), diverged=bool(cb.diverged),
        descent=descent,
        settings={"start_lr": float(start_lr), "end_lr": float(end_lr),
                  "num_steps": int(num_steps), "beta": float(beta),
                  "diverge": float(diverge), **(settings or {})})
    log.info("LR range test: %d steps, suggested %.3g (lowest loss at %.3g)%s%s",
             len(lrs), result.suggested_lr, result.min_loss_lr,
             ", stopped on divergence" if result.diverged else "",
             "" if descent else ", no descent (the model did not learn in this range)")
    return result


def wafer_lr_find(ws, cfg=None, task: str = "classifier", *,
                  data_path: str | os.PathLike | None = None, **kwargs) -> LRFindResult:
    """LR range test of a wafer CNN: the trainer's data, model and input pipeline.

    The same steps as a training run (:func:`~wafertk.training.trainer.prepare_data`,
    :func:`~wafertk.training.trainer.build_model`,
    :func:`~wafertk.training.trainer.make_dataset` of the training split, augmentation and
    one-hot targets as the config says), then :func:`lr_range_test`. Class weights are not
    applied.

    Parameters
    ----------
    ws : WaferSet
        Labeled wafers.
    cfg : CnnTrainConfig, optional
        Training config (default :class:`~wafertk.training.config.CnnTrainConfig`).
    task : {"detector", "classifier"}
    data_path : str or os.PathLike, optional
        The file ``ws`` came from (named in data errors).
    **kwargs
        Passed to :func:`lr_range_test` (``start_lr``, ``end_lr``, ``num_steps``, ...).

    Returns
    -------
    LRFindResult
    """
    from wafertk.training import trainer
    from wafertk.training.config import CnnTrainConfig

    cfg = cfg or CnnTrainConfig()
    data = trainer.prepare_data(ws, cfg, task, data_path=data_path)
    model = trainer.build_model(cfg, data)
    t = cfg.train
    k = len(data.classes) if trainer.one_hot_targets(cfg, task) else 0
    ds = trainer.make_dataset(data.x_train, data.m_train, data.y_train, t.batch_size,
                              augment=t.augment, shuffle=True, seed=t.seed, n_classes=k)
    settings = {"task": task, "architecture": cfg.model.architecture
                or trainer.DEFAULT_ARCHITECTURE[task], "input_size": cfg.data.input_size,
                "batch_size": t.batch_size, "optimizer": t.optimizer,
                "n_train": int(len(data.y_train))}
    if data_path is not None:
        settings["data"] = str(data_path)
    settings.update(kwargs.pop("settings", None) or {})
    return lr_range_test(model, ds, settings=settings, **kwargs)


def image_lr_find(overrides: dict[str, object] | None = None, *, data_dir: str | os.PathLike,
                  weights: str | os.PathLike | None = None, config=None,
                  **kwargs) -> LRFindResult:
    """LR range test of an image-folder model (:mod:`wafertk.images`).

    Parameters
    ----------
    overrides : dict, optional
        Dotted keys of the images config (``{"model.name": "mobilenetv2",
        "data.image_size": 96, "train.batch_size": 32}``).
    data_dir : str or os.PathLike
        Image folder, one sub-folder per class.
    weights : str or os.PathLike, optional
        Pretrained backbone weights file.
    config : str or os.PathLike, optional
        Images config (packaged name or path; default ``images``).
    **kwargs
        Passed to :func:`lr_range_test`.

    Returns
    -------
    LRFindResult
    """
    from wafertk.images.train import build_for_lr_find

    overrides = dict(overrides or {})
    model, ds = build_for_lr_find(overrides, data_dir=data_dir, weights=weights, config=config)
    settings = {"data": str(data_dir), **{k: v for k, v in overrides.items()}}
    if weights is not None:
        settings["weights"] = str(weights)
    settings.update(kwargs.pop("settings", None) or {})
    return lr_range_test(model, ds, settings=settings, **kwargs)
