"""Training of the wafer CNNs: configs, callbacks and the run-folder trainers.

Calibration (temperature scaling, recall-targeted thresholds) lives beside the models that
apply it, in :mod:`wafertk.models.calibration`. Importing this package does not import
TensorFlow (the trainers import it when called).
"""

from wafertk.training.config import (
    CnnTrainConfig,
    DataConfig,
    DecisionConfig,
    FineTuneConfig,
    ModelConfig,
    OptimConfig,
)


def train_detector(*args, **kwargs):
    """See :func:`wafertk.training.trainer.train_detector`."""
    from wafertk.training.trainer import train_detector as f

    return f(*args, **kwargs)


def train_classifier(*args, **kwargs):
    """See :func:`wafertk.training.trainer.train_classifier`."""
    from wafertk.training.trainer import train_classifier as f

    return f(*args, **kwargs)


__all__ = [
    "CnnTrainConfig",
    "DataConfig",
    "DecisionConfig",
    "FineTuneConfig",
    "ModelConfig",
    "OptimConfig",
    "train_classifier",
    "train_detector",
]
