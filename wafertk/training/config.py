"""Config dataclasses of CNN training runs (loaded from ``configs/detector.yaml`` etc.)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """Architecture options of :func:`wafertk.models.cnn.build_wafer_cnn`."""

    conv_filters: list[int] = field(default_factory=lambda: [32, 64, 128])
    batch_norm: bool = True
    dropout: float = 0.3
    l1: float = 0.0
    l2: float = 1e-4
    activation: str = "relu"
    dense_units: int = 128


@dataclass
class OptimConfig:
    """Optimiser, learning-rate schedule, epochs and stopping."""

    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd only
    #: constant | step (x0.1 from epoch 80, x0.01 from 120, x0.001 from 160, x0.0005 from 180)
    #: | plateau (ReduceLROnPlateau on the validation loss)
    lr_schedule: Literal["constant", "step", "plateau"] = "plateau"
    plateau_factor: float = 0.3
    plateau_patience: int = 3
    epochs: int = 30
    batch_size: int = 64
    early_stopping_patience: int = 6
    seed: int | None = 0
    augment: bool = True  # 90-degree rotations and flips, training split only
    class_weight: bool = True  # classifier only: balanced class weights
    max_class_weight: float = 25.0


@dataclass
class DataConfig:
    """Input size and the lot-disjoint validation split."""

    input_size: int = 48
    validation_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class DecisionConfig:
    """Decision threshold (detector) and review flag (both)."""

    target_recall: float = 0.97  # detector: highest threshold reaching this validation recall
    review_below: float = 0.6  # flag wafers whose calibrated top probability is below this


@dataclass
class CnnTrainConfig:
    """A whole CNN training run: ``model``, ``train``, ``data``, ``decision`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
