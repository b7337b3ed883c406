"""Small Keras callbacks and the learning-rate schedules, one concern each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import keras

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


class EpochLine(keras.callbacks.Callback):
    """One compact summary line per epoch, logged (INFO) and passed to ``on_line``.

    Library code prints nothing: the command line passes ``on_line`` to show the lines
    (``wafertk train ...`` writes them to standard error unless ``-q``).

    Parameters
    ----------
    epochs : int
        Planned epochs (for ``epoch 3/30``).
    name : str
        Prefix of the line.
    on_line : callable, optional
        Called with each line.
    """

    def __init__(self, epochs: int, name: str = "train",
                 on_line: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.epochs, self.name, self.on_line = epochs, name, on_line
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
        log.info("%s", line)
        if self.on_line is not None:
            self.on_line(line)
