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


#: Registry families whose architectures the wafer CNN trainer builds.
WAFER_FAMILIES: tuple[str, ...] = ("wafer-cnn", "wafer-transfer")
#: Family of the transfer architectures (pretrained backbone + the wafer head).
TRANSFER_FAMILY = "wafer-transfer"


def min_input_size(n_pool_blocks: int) -> int:
    """Smallest input side a network with ``n_pool_blocks`` 2x2 max-pools accepts (``2**n``)."""
    return 2 ** int(n_pool_blocks)


def is_transfer_architecture(name: str | None) -> bool:
    """Whether the registry architecture ``name`` is a transfer one (family ``wafer-transfer``).

    Unknown names and None (the task's default, a from-scratch CNN) are not.
    """
    from wafertk.registry import _ARCHITECTURES

    entry = _ARCHITECTURES.get(name) if name is not None else None
    return entry is not None and entry.family == TRANSFER_FAMILY


def _backbone_names() -> tuple[str, ...]:
    from wafertk.images.config import BACKBONES

    return tuple(BACKBONES)


def _check_backbone(value: str) -> str | None:
    return one_of(_backbone_names(), "backbone")(value)


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
    #: transfer architectures (wafer_transfer_*): the pretrained backbone, a key of
    #: wafertk.images.config.BACKBONES (null: squeezenet)
    backbone: str | None = field(default=None, metadata={"check": _check_backbone})
    #: transfer architectures: a local weights file of the headless backbone (never
    #: downloaded); null: random weights
    weights: str | None = None

    @property
    def is_transfer(self) -> bool:
        """Whether ``architecture`` is a transfer architecture."""
        return is_transfer_architecture(self.architecture)

    @property
    def backbone_name(self) -> str | None:
        """The backbone a transfer architecture uses (``backbone`` or squeezenet), else None."""
        if not self.is_transfer:
            return None
        return self.backbone or "squeezenet"

    def config_problems(self) -> list[tuple[str, str]]:
        from pathlib import Path

        from wafertk.registry import list_models

        bad = []
        if not self.conv_filters:
            bad.append(("conv_filters", "needs at least one conv block"))
        if self.architecture is not None:
            names = [e.name for f in WAFER_FAMILIES for e in list_models(family=f)]
            if self.architecture not in names:
                bad.append(("architecture", one_of(sorted(names),
                                                   "architecture")(self.architecture)))
        if not self.is_transfer:
            for key in ("backbone", "weights"):
                if getattr(self, key) is not None:
                    bad.append((key, "applies to transfer architectures only "
                                     "(wafer_transfer_detector, wafer_transfer_classifier), "
                                     f"not {self.architecture or 'the default CNN'}"))
        elif self.weights is not None:
            p = Path(self.weights).expanduser()
            if not p.exists():
                bad.append(("weights", f"{self.weights}: no such weights file"))
            elif not p.is_file():
                bad.append(("weights", f"{self.weights}: is not a file (expected a .h5 "
                                       "weights file)"))
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
class FineTuneConfig:
    """Second phase of a transfer architecture: unfreeze the backbone from a layer, SGD.

    Runs after the first fit (frozen backbone + head) when ``enabled``; the best epoch over
    both phases (lowest validation loss) is kept.
    """

    enabled: bool = False
    #: first trainable backbone layer (e.g. fire6_squeeze1x1, block5_conv1); null: all
    from_layer: str | None = None
    epochs: int = field(default=5, metadata=_AT_LEAST_1)
    learning_rate: float = field(default=1e-4, metadata=_POSITIVE)
    momentum: float = field(default=0.9, metadata={"check": in_range(0, 1, hi_open=True)})
    early_stopping_patience: int = field(default=3, metadata=_NON_NEGATIVE)


@dataclass
class CnnTrainConfig:
    """A whole CNN training run: ``model``, ``train``, ``data``, ``decision``, ``fine_tune``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)

    def config_problems(self) -> list[tuple[str, str]]:
        """Checks across sections: the input must survive every 2x2 pooling block (or fit
        the backbone), and fine-tuning needs a transfer architecture."""
        if self.model.is_transfer:
            from wafertk.images.config import BACKBONES

            entry = BACKBONES.get(self.model.backbone_name or "")
            if entry is not None and self.data.input_size < entry[2]:
                return [("data.input_size", f"{self.data.input_size} is too small for the "
                         f"{self.model.backbone_name} backbone (needs >= {entry[2]})")]
            return []
        if self.fine_tune.enabled:
            return [("fine_tune.enabled", "fine-tuning needs a transfer architecture "
                     "(model.architecture: wafer_transfer_detector or "
                     "wafer_transfer_classifier)")]
        need = min_input_size(len(self.model.conv_filters))
        if self.model.conv_filters and self.data.input_size < need:
            return [("data.input_size", f"{self.data.input_size} is too small for "
                     f"{len(self.model.conv_filters)} pooling blocks (needs >= {need})")]
        return []
