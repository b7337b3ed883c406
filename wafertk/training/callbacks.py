"""Small Keras callbacks and the learning-rate schedules, one concern each."""

from __future__ import annotations

import logging
import sys
import time

import keras
import numpy as np

log = logging.getLogger(__name__)

#: (first epoch, factor) of the step schedule, 0-based epochs as Keras counts them
STEP_SCHEDULE: tuple[tuple[int, float], ...] = ((180, 5e-4), (160, 1e-3), (120, 1e-2), (80, 0.1))


def step_lr(epoch: int, base_lr: float) -> float:
    """Step schedule: ``base`` until epoch 79, x0.1 from 80, x0.01 from 120, x0.001 from 160,
    x0.0005 from 180 (epochs counted from 0)."""
    for start, factor in STEP_SCHEDULE:
        if epoch >= start:
            return base_lr * factor
    return base_lr


def step_schedule_callback(base_lr: float) -> keras.callbacks.Callback:
    """A ``LearningRateScheduler`` applying :func:`step_lr`."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: step_lr(epoch, base_lr))


class BestWeights(keras.callbacks.Callback):
    """Keep the weights of the best epoch (lowest ``monitor``) and restore them at the end.

    Parameters
    ----------
    monitor : str, default "val_loss"
    """

    def __init__(self, monitor: str = "val_loss") -> None:
        super().__init__()
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch = -1
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best, self.best_epoch = float(value), epoch
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class EpochLine(keras.callbacks.Callback):
    """One compact line per epoch on standard error (when Keras's own progress bar is off).

    Parameters
    ----------
    epochs : int
        Planned epochs (for ``epoch 3/30``).
    name : str
        Prefix of the line.
    stream : file-like, optional
        Where to write (default ``sys.stderr``); ``False`` = only log at DEBUG level.
    """

    def __init__(self, epochs: int, name: str = "train", stream=None) -> None:
        super().__init__()
        self.epochs, self.name, self.stream = epochs, name, stream
        self._t = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = " ".join(f"{k}={float(v):.4g}" for k, v in logs.items()
                         if k in ("loss", "val_loss", "accuracy", "val_accuracy", "auc",
                                  "val_auc", "learning_rate"))
        line = (f"{self.name} epoch {epoch + 1}/{self.epochs} "
                f"{time.perf_counter() - self._t:.0f}s {parts}")
        log.debug("%s", line)
        if self.stream is not False:
            print(line, file=self.stream or sys.stderr, flush=True)
