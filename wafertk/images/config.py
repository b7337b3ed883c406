"""Config dataclasses of image-classifier runs (the packaged ``configs/images.yaml``).

Loaded with :func:`wafertk.config.load_config`: unknown keys, wrong types and values out of
range are errors naming the file and the key (all at once); command-line flags and the
dotted ``overrides`` of :func:`wafertk.images.train.run_image_training` are applied on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wafertk.config import in_range, one_of

#: backbone name -> (keras.applications class or None, preprocessing mode, smallest input)
BACKBONES: dict[str, tuple[str | None, str, int]] = {
    "squeezenet": (None, "caffe", 35),
    "vgg16": ("VGG16", "caffe", 32),
    "vgg19": ("VGG19", "caffe", 32),
    "mobilenet_v2": ("MobileNetV2", "tf", 32),
    "xception": ("Xception", "tf", 71),
    "inception_v3": ("InceptionV3", "tf", 75),
    "inception_resnet_v2": ("InceptionResNetV2", "tf", 75),
    "densenet121": ("DenseNet121", "torch", 32),
    "resnet50": ("ResNet50", "caffe", 32),
    "efficientnet_b0": ("EfficientNetB0", "none", 32),  # rescales inside the network
}

#: ``model.name`` values: the from-scratch convnet and every transfer backbone.
MODEL_NAMES: tuple[str, ...] = ("small_convnet", *BACKBONES)


def min_input_size(model: str, n_conv_blocks: int = 4, block: str = "plain") -> int:
    """Smallest image side ``model`` accepts (small_convnet with plain blocks:
    ``2 ** n_conv_blocks``; with residual separable blocks: 5, its 5x5 stem, whose pools of
    stride 2 with ``same`` padding never shrink a side below 1)."""
    if model in BACKBONES:
        return BACKBONES[model][2]
    if block == "residual_separable":
        return 5
    return 2 ** int(n_conv_blocks)

_POSITIVE = {"check": in_range(0, lo_open=True)}
_NON_NEGATIVE = {"check": in_range(0)}
_AT_LEAST_1 = {"check": in_range(1)}
_DROPOUT = {"check": in_range(0, 1, hi_open=True)}


@dataclass
class ImageModelConfig:
    """Which network (``name``) and its head / regularisation options."""

    name: str = field(default="small_convnet", metadata={"check": one_of(MODEL_NAMES,
                                                                          "model")})
    #: small_convnet: filters of the conv blocks (see ``block``)
    conv_filters: list[int] = field(default_factory=lambda: [32, 64, 128, 128],
                                    metadata=_AT_LEAST_1)
    #: small_convnet: 3x3 (separable) convolutions per block before its pooling (2: VGG-style)
    convs_per_block: int = field(default=1, metadata={"check": in_range(1, 4)})
    #: small_convnet, plain blocks: batch norm after each conv (residual blocks always have it)
    batch_norm: bool = False
    #: small_convnet: plain (conv, [batch norm], ReLU per conv, then 2x2 max-pool) or
    #: residual_separable (Xception-style, Chollet's "mini Xception": a 5x5 stem conv, then
    #: per block batch norm, ReLU and a 3x3 separable conv per conv, a 3x3 max-pool of
    #: stride 2, and a strided 1x1 conv shortcut added; batch norm always on)
    block: Literal["plain", "residual_separable"] = "plain"
    #: small_convnet: flatten the last block, or global_average pooling over it
    pooling: Literal["flatten", "global_average"] = "flatten"
    #: hidden units of the dense head (0: none); small_convnet and transfer heads
    dense_units: int = field(default=512, metadata=_NON_NEGATIVE)
    dropout: float = field(default=0.5, metadata=_DROPOUT)
    l2: float = field(default=0.0, metadata=_NON_NEGATIVE)


@dataclass
class ImageDataConfig:
    """Input size and the split used when no validation folder is given."""

    #: images are resized to image_size x image_size (227 is SqueezeNet's native size)
    image_size: int = field(default=150, metadata={"check": in_range(8, 1024)})
    #: train / validation / test fractions of a stratified split (no --validation folder)
    split: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2],
                               metadata={"check": in_range(0, 1)})
    split_seed: int = field(default=0, metadata=_NON_NEGATIVE)
    #: keep decoded images in memory after the first epoch (default: streamed from disk)
    cache: bool = False
    #: full: decode every image when scanning (corrupt files skipped); header; none
    check: Literal["full", "header", "none"] = "full"
    #: at most this many images per class (quick runs); null: all
    max_per_class: int | None = field(default=None, metadata=_AT_LEAST_1)

    def config_problems(self) -> list[tuple[str, str]]:
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-6:
            return [("split", f"{self.split} must be three fractions summing to 1")]
        if self.split[0] <= 0 or self.split[1] <= 0:
            return [("split", "the train and validation fractions must be > 0")]
        return []


@dataclass
class AugmentConfig:
    """Training-time augmentation as Keras preprocessing layers (inactive at inference)."""

    enabled: bool = True
    rotation: float = field(default=45.0, metadata={"check": in_range(0, 180)})
    shear: float = field(default=0.2, metadata={"check": in_range(0, 1)})
    width_shift: float = field(default=0.2, metadata={"check": in_range(0, 1)})
    height_shift: float = field(default=0.2, metadata={"check": in_range(0, 1)})
    #: interpolate: sub-pixel shifts (keras RandomTranslation); pixels: whole-pixel shifts
    #: (no interpolation, far cheaper to train with)
    shift_mode: Literal["interpolate", "pixels"] = "interpolate"
    zoom: float = field(default=0.2, metadata={"check": in_range(0, 1, hi_open=True)})
    horizontal_flip: bool = True
    vertical_flip: bool = False


@dataclass
class ImageTrainConfig:
    """First phase: from scratch (small_convnet) or frozen backbone + new head."""

    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = field(default=1e-3, metadata=_POSITIVE)
    momentum: float = field(default=0.9, metadata=_DROPOUT)
    #: constant, or cosine decay from learning_rate to 0 over all epochs (after the warm-up)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    #: epochs of linear warm-up from 0 to learning_rate (cosine schedule only)
    warmup_epochs: int = field(default=0, metadata=_NON_NEGATIVE)
    #: mixed bfloat16: bf16 compute, float32 weights and outputs (faster on AMX / AVX-512 CPUs)
    mixed_precision: bool = False
    epochs: int = field(default=30, metadata=_AT_LEAST_1)
    batch_size: int = field(default=32, metadata=_AT_LEAST_1)
    #: stop when the validation loss has not improved for this many epochs (0: never)
    early_stopping_patience: int = field(default=8, metadata=_NON_NEGATIVE)
    seed: int | None = field(default=0, metadata=_NON_NEGATIVE)

    def config_problems(self) -> list[tuple[str, str]]:
        if self.warmup_epochs and self.lr_schedule != "cosine":
            return [("warmup_epochs", "a warm-up needs lr_schedule: cosine")]
        if self.warmup_epochs >= self.epochs:
            return [("warmup_epochs", f"{self.warmup_epochs} must be fewer than epochs "
                                      f"({self.epochs})")]
        return []


@dataclass
class FineTuneConfig:
    """Second phase (transfer models only): unfreeze from a layer, SGD with momentum."""

    enabled: bool = False
    #: first trainable backbone layer (e.g. fire6_squeeze1x1, block5_conv1); null: all
    from_layer: str | None = None
    epochs: int = field(default=10, metadata=_AT_LEAST_1)
    learning_rate: float = field(default=1e-4, metadata=_POSITIVE)
    momentum: float = field(default=0.9, metadata=_DROPOUT)
    early_stopping_patience: int = field(default=5, metadata=_NON_NEGATIVE)


@dataclass
class ImageRunConfig:
    """A whole image-classifier run: ``model``, ``data``, ``augment``, ``train``,
    ``fine_tune``."""

    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: ImageTrainConfig = field(default_factory=ImageTrainConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)

    def config_problems(self) -> list[tuple[str, str]]:
        """Checks across sections: the input must suit the network."""
        need = min_input_size(self.model.name, len(self.model.conv_filters), self.model.block)
        if self.data.image_size < need:
            return [("data.image_size", f"{self.data.image_size} is too small for "
                     f"{self.model.name} (needs >= {need})")]
        return []
