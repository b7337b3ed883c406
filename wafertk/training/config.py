"""Config dataclasses of CNN training runs (the packaged ``detector`` and ``classifier`` configs).

Every value is checked when a config is loaded (:func:`wafertk.config.load_config`): types,
ranges (``dropout: 2.0`` is an error), names (``activation``, ``model.architecture``) and
the input size against the number of pooling blocks. All problems are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wafertk.config import in_range, one_of

#: Activations accepted by ``model.activation`` (Keras names).
ACTIVATIONS: tuple[str, ...] = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "tanh",
    "sigmoid", "hard_sigmoid", "hard_silu", "softplus", "softsign", "linear",
)

_POSITIVE = {"check": in_range(0, lo_open=True)}
_NON_NEGATIVE = {"check": in_range(0)}
_AT_LEAST_1 = {"check": in_range(1)}
_FRACTION = {"check": in_range(0, 1, lo_open=True, hi_open=True)}


def min_input_size(n_pool_blocks: int) -> int:
    """Smallest input side a network with ``n_pool_blocks`` 2x2 max-pools accepts (``2**n``)."""
    return 2 ** int(n_pool_blocks)


@dataclass
class ModelConfig:
    """Architecture (a :mod:`wafertk.registry` name) and its builder's options.

    ``architecture`` None means the task's default (``wafer_cnn_detector`` or
    ``wafer_cnn_classifier``); the other keys are keyword arguments of
    :func:`wafertk.models.cnn.build_wafer_cnn`.
    """

    architecture: str | None = None
    conv_filters: list[int] = field(default_factory=lambda: [32, 64, 128],
                                    metadata=_AT_LEAST_1)
    residual: bool = False  # residual blocks of two convolutions (see build_wafer_cnn)
    batch_norm: bool = True
    dropout: float = field(default=0.3, metadata={"check": in_range(0, 1, hi_open=True)})
    l1: float = field(default=0.0, metadata=_NON_NEGATIVE)
    l2: float = field(default=1e-4, metadata=_NON_NEGATIVE)
    activation: str = field(default="relu", metadata={"check": one_of(ACTIVATIONS,
                                                                      "activation")})
    dense_units: int = field(default=128, metadata=_NON_NEGATIVE)

    def config_problems(self) -> list[tuple[str, str]]:
        from wafertk.registry import list_models

        bad = []
        if not self.conv_filters:
            bad.append(("conv_filters", "needs at least one conv block"))
        if self.architecture is not None:
            names = [e.name for e in list_models(family="wafer-cnn")]
            if self.architecture not in names:
                bad.append(("architecture", one_of(names, "architecture")(self.architecture)))
        return bad


@dataclass
class OptimConfig:
    """Optimiser, learning-rate schedule, epochs and stopping."""

    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = field(default=1e-3, metadata=_POSITIVE)
    momentum: float = field(default=0.9, metadata={"check": in_range(0, 1, hi_open=True)})
    #: constant | step (x0.1 from epoch 80, x0.01 from 120, x0.001 from 160, x0.0005 from 180)
    #: | plateau (ReduceLROnPlateau on the validation loss)
    lr_schedule: Literal["constant", "step", "plateau"] = "plateau"
    plateau_factor: float = field(default=0.3, metadata=_FRACTION)
    plateau_patience: int = field(default=3, metadata=_NON_NEGATIVE)
    epochs: int = field(default=30, metadata=_AT_LEAST_1)
    batch_size: int = field(default=64, metadata=_AT_LEAST_1)
    early_stopping_patience: int = field(default=6, metadata=_NON_NEGATIVE)
    seed: int | None = field(default=0, metadata=_NON_NEGATIVE)
    augment: bool = True  # 90-degree rotations and flips, training split only
    class_weight: bool = True  # classifier only: balanced class weights
    max_class_weight: float = field(default=25.0, metadata=_POSITIVE)
    #: crossentropy | focal (Lin et al. 2017: down-weights well-classified wafers)
    loss: Literal["crossentropy", "focal"] = "crossentropy"
    focal_gamma: float = field(default=2.0, metadata=_NON_NEGATIVE)
    #: share of each target spread over the other classes (noisy labels)
    label_smoothing: float = field(default=0.0, metadata={"check": in_range(0, 0.5,
                                                                            hi_open=True)})


@dataclass
class DataConfig:
    """Input size and the lot-disjoint validation split."""

    input_size: int = field(default=48, metadata=_AT_LEAST_1)
    #: classifier only: defects = the 8 patterns (phase 2); all = 9 classes incl. none
    #: (one network for everything, used with ``classify --single-phase``)
    classes: Literal["defects", "all"] = "defects"
    validation_fraction: float = field(default=0.2, metadata=_FRACTION)
    split_seed: int = field(default=0, metadata=_NON_NEGATIVE)


@dataclass
class DecisionConfig:
    """Decision threshold (detector) and review flag (both)."""

    #: detector: highest threshold reaching this validation recall
    target_recall: float = field(default=0.97, metadata={"check": in_range(0, 1,
                                                                           lo_open=True)})
    #: flag wafers whose calibrated top probability is below this
    review_below: float = field(default=0.6, metadata={"check": in_range(0, 1)})


@dataclass
class CnnTrainConfig:
    """A whole CNN training run: ``model``, ``train``, ``data``, ``decision`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)

    def config_problems(self) -> list[tuple[str, str]]:
        """Checks across sections: the input must survive every 2x2 pooling block."""
        need = min_input_size(len(self.model.conv_filters))
        if self.model.conv_filters and self.data.input_size < need:
            return [("data.input_size", f"{self.data.input_size} is too small for "
                     f"{len(self.model.conv_filters)} pooling blocks (needs >= {need})")]
        return []
