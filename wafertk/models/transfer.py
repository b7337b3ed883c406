"""Transfer learning on wafer maps: an ImageNet backbone under the wafer CNNs' head (issue 10).

The one-hot map of the three die states (no die, pass, fail) is read as an RGB image
(``x 255``), preprocessed the way the backbone expects (:class:`ImagePreprocess`: ``caffe``
for SqueezeNet / VGG / ResNet50, ``tf`` for MobileNetV2 / Xception / Inception, ...) and fed
to a headless backbone from :func:`wafertk.images.models.build_backbone` (SqueezeNet v1.1 or
a ``keras.applications`` network), frozen and called in inference mode. Then the same head
as :func:`wafertk.models.cnn.build_wafer_cnn`, with the pooled features batch-normalised
first (ImageNet features of a one-hot map are far from zero mean and unit scale)::

    maps (S, S, 3) one-hot -> to_pixels (x 255) -> preprocess (backbone mode)
        -> backbone (frozen, inference mode) -> GlobalAveragePooling ("gap")
        -> BatchNormalization ("gap_bn") ---------------------------------------+
    meta (m,) -> MetaScaling ("meta_scaling", classifier only) ------------------+-> concat
        -> Dropout -> Dense(dense_units, act) -> Dropout -> Dense(n_out, sigmoid|softmax)

Input and output names (``maps``, ``meta``, ``output``) are the wafer CNNs', so the trainer
(:mod:`wafertk.training.trainer`), the predictors and the run folders treat both alike; the
manifest kinds are ``cnn-detector`` / ``cnn-classifier``.

Pretrained weights come from a local file only (``weights=PATH``); nothing is downloaded.
Fine-tuning (second phase) unfreezes the backbone from a named layer
(:func:`unfreeze_backbone`). Importing this module imports Keras.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from wafertk.errors import ConfigError, did_you_mean
from wafertk.images.config import BACKBONES
from wafertk.images.models import ImagePreprocess, build_backbone, unfreeze_from
from wafertk.models.cnn import MetaScaling, _regularizer, default_meta_log_columns

__all__ = [
    "BACKBONES",
    "backbone_layer_names",
    "build_wafer_transfer",
    "build_wafer_transfer_classifier",
    "build_wafer_transfer_detector",
    "fine_tune_layer_problem",
    "unfreeze_backbone",
]

#: Default backbone of the transfer architectures (real ImageNet weights in ../shared).
DEFAULT_BACKBONE = "squeezenet"


def build_wafer_transfer(
    input_shape: Sequence[int] = (64, 64, 3),
    n_classes: int = 8,
    *,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = None,
    meta_dim: int = 0,
    meta_log_columns: Sequence[int] = (),
    dropout: float = 0.3,
    l1: float = 0.0,
    l2: float = 1e-4,
    activation: str = "relu",
    dense_units: int = 128,
    output_activation: str | None = None,
    seed: int | None = None,
    name: str = "wafer_transfer",
    conv_filters: Sequence[int] | None = None,
    batch_norm: bool | None = None,
    residual: bool | None = None,
) -> keras.Model:
    """A frozen pretrained backbone on the one-hot wafer map, then the wafer CNNs' head.

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
        ``(S, S, 3)`` one-hot maps (channel 0 no die, 1 pass, 2 fail); ``S`` at least the
        backbone's smallest input (SqueezeNet 35, Xception 71, Inception 75, others 32).
    n_classes : int, default 8
        Outputs; ``1`` gives one sigmoid output (binary), otherwise a softmax.
    backbone : str, default "squeezenet"
        A key of :data:`wafertk.images.config.BACKBONES`.
    weights : path, optional
        Local weights file of the headless backbone (for SqueezeNet
        ``squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5``); None: random weights.
        Never downloaded.
    meta_dim : int, default 0
        Length of the metadata vector; 0 = no second input.
    meta_log_columns : sequence of int
        Metadata columns compressed with ``log1p`` before standardisation.
    dropout : float, default 0.3
        Dropout before and after the dense layer.
    l1, l2 : float
        Kernel regularisation of the head's dense layers.
    activation : str, default "relu"
        Activation of the dense layer.
    dense_units : int, default 128
        Width of the dense head (0 = none).
    output_activation : str, optional
        Default ``"sigmoid"`` for one output, ``"softmax"`` otherwise.
    seed : int, optional
        Seed of the head's initialisers and dropout.
    name : str
    conv_filters, batch_norm, residual : ignored
        Options of the from-scratch wafer CNN's trunk, accepted so that the trainer passes
        the same ``model`` section to every wafer architecture; the backbone replaces it.

    Returns
    -------
    keras.Model
        Inputs ``maps`` (batch, S, S, 3) [and ``meta`` (batch, meta_dim)]; output
        ``output`` (batch, n_classes). The backbone is the nested model named ``backbone``,
        frozen.

    Raises
    ------
    ConfigError
        Unknown backbone or an input smaller than the backbone accepts.
    ModelFileError
        A weights file that is missing or does not fit the backbone.
    """
    del conv_filters, batch_norm, residual
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}{did_you_mean(backbone, BACKBONES)} "
                          f"(known: {', '.join(BACKBONES)})")
    reg = _regularizer(l1, l2)
    seeds = iter(range(10_000)) if seed is None else iter(range(seed, seed + 10_000))

    def next_seed() -> int | None:
        return None if seed is None else next(seeds)

    shape = tuple(int(s) for s in input_shape)
    maps = keras.Input(shape=shape, name="maps")
    x = layers.Rescaling(255.0, name="to_pixels")(maps)
    x = ImagePreprocess(BACKBONES[backbone][1], name="preprocess")(x)
    base = build_backbone(backbone, shape, weights=weights)
    base.trainable = False
    x = base(x, training=False)  # batch norm statistics kept, also when fine-tuned
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    # ImageNet features of a one-hot map are far from zero mean / unit scale (SqueezeNet at
    # 64 px: mean 2.8, std 14, max ~300): standardise them for the head, as the wafer CNN's
    # batch-normalised trunk does (trained with the head; a loss of ~20 in the first epoch
    # without it)
    x = layers.BatchNormalization(momentum=0.9, name="gap_bn")(x)
    inputs = [maps]
    if meta_dim:
        meta = keras.Input(shape=(int(meta_dim),), name="meta")
        m = MetaScaling(int(meta_dim), meta_log_columns, name="meta_scaling")(meta)
        x = layers.Concatenate(name="concat_meta")([x, m])
        inputs.append(meta)
    if dropout:
        x = layers.Dropout(dropout, seed=next_seed(), name="drop1")(x)
    if dense_units:
        x = layers.Dense(int(dense_units), activation=activation,
                         kernel_initializer=keras.initializers.HeNormal(seed=next_seed()),
                         kernel_regularizer=reg, name="dense")(x)
        if dropout:
            x = layers.Dropout(dropout, seed=next_seed(), name="drop2")(x)
    out_act = output_activation or ("sigmoid" if n_classes == 1 else "softmax")
    out = layers.Dense(int(n_classes), activation=out_act,
                       kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
                       name="output")(x)
    return keras.Model(inputs if len(inputs) > 1 else maps, out, name=name)


def build_wafer_transfer_detector(
    input_shape: Sequence[int] = (64, 64, 3),
    *,
    learning_rate: float = 1e-3,
    compile: bool = True,
    **kwargs,
) -> keras.Model:
    """Phase-1 detector on a pretrained backbone: one sigmoid output, P(defective).

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
    learning_rate : float, default 1e-3
        Adam learning rate when ``compile``.
    compile : bool, default True
        Compile with Adam, binary cross-entropy, AUC and accuracy.
    **kwargs
        Passed to :func:`build_wafer_transfer` (``backbone``, ``weights``, ``dropout``, ...).

    Returns
    -------
    keras.Model
        Output of shape (batch, 1).
    """
    kwargs.setdefault("name", "wafer_transfer_detector")
    model = build_wafer_transfer(input_shape, 1, **kwargs)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc"), "accuracy"])
    return model


def build_wafer_transfer_classifier(
    input_shape: Sequence[int] = (64, 64, 3),
    n_classes: int = 8,
    *,
    meta_dim: int | None = None,
    learning_rate: float = 1e-3,
    compile: bool = True,
    **kwargs,
) -> keras.Model:
    """Phase-2 pattern classifier on a pretrained backbone, die metadata as second input.

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
    n_classes : int, default 8
    meta_dim : int, optional
        Metadata length; default ``len(META_FEATURE_NAMES)`` (with the wafer CNN's log
        columns).
    learning_rate : float, default 1e-3
    compile : bool, default True
        Compile with Adam and sparse categorical cross-entropy.
    **kwargs
        Passed to :func:`build_wafer_transfer`.

    Returns
    -------
    keras.Model
        Inputs ``maps`` and ``meta``; output (batch, n_classes).
    """
    from wafertk.data.preprocess import META_FEATURE_NAMES

    if meta_dim is None:
        meta_dim = len(META_FEATURE_NAMES)
        kwargs.setdefault("meta_log_columns", default_meta_log_columns())
    kwargs.setdefault("name", "wafer_transfer_classifier")
    model = build_wafer_transfer(input_shape, n_classes, meta_dim=meta_dim, **kwargs)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def backbone_layer_names(model: keras.Model, backbone: str) -> list[str]:
    """Layer names of the nested backbone ``backbone`` of a transfer model, in order."""
    return [layer.name for layer in model.get_layer(backbone).layers]


def fine_tune_layer_problem(model: keras.Model, backbone: str,
                            from_layer: str | None) -> str | None:
    """Why ``from_layer`` cannot start fine-tuning of ``model`` (None if it can).

    Checked before the first phase trains, so that a typo fails in seconds, not after it.
    ``fire6/squeeze1x1`` is accepted for SqueezeNet's ``fire6_squeeze1x1``.
    """
    if from_layer is None:
        return None
    names = backbone_layer_names(model, backbone)
    want = from_layer.replace("/", "_")
    if want in names:
        return None
    return f"{from_layer!r} is not a layer of {backbone}{did_you_mean(want, names, n=3)}"


def unfreeze_backbone(model: keras.Model, backbone: str, from_layer: str | None = None) -> int:
    """Make the backbone trainable from ``from_layer`` on (every layer when None).

    :func:`wafertk.images.models.unfreeze_from` on a wafer transfer model; recompile the
    model afterwards.

    Returns
    -------
    int
        Number of trainable weight tensors in the backbone after the change.

    Raises
    ------
    ConfigError
        ``from_layer`` is not a layer of the backbone.
    """
    problem = fine_tune_layer_problem(model, backbone, from_layer)
    if problem:
        raise ConfigError(f"fine_tune.from_layer: {problem}")
    return unfreeze_from(model, backbone, from_layer)
