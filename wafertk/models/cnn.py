"""Keras builders of the wafer-map CNNs (phase 1 detector, phase 2 pattern classifier).

Written with ``keras.layers`` / ``keras.ops`` only (no ``tf.*``), so the same models build and
train under Keras's TensorFlow, JAX or PyTorch backend. Importing this module imports Keras.

Architecture (:func:`build_wafer_cnn`)::

    maps (S, S, 3) -> [Conv3x3 -> (BatchNorm) -> act -> MaxPool2] x len(conv_filters)
                   -> GlobalAveragePooling ---------------------------+
    meta (m,) -> MetaScaling (log1p of counts, adapted mean/std) ------+-> concat
                -> Dropout -> Dense(dense_units, act) -> Dropout -> Dense(n_out, sigmoid|softmax)

The metadata branch exists only when ``meta_dim > 0``; the concatenation happens after the
conv trunk's global pooling and before the dense head.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

__all__ = [
    "MetaScaling",
    "build_wafer_cnn",
    "build_wafer_cnn_classifier",
    "build_wafer_cnn_detector",
]


@keras.saving.register_keras_serializable(package="wafertk")
class MetaScaling(layers.Layer):
    """Normalise the die-metadata vector inside the model.

    ``y = (log1p(|x|) * sign(x) - mean) / std`` for the columns flagged in ``log_columns``,
    ``(x - mean) / std`` otherwise; ``mean``/``std`` are set by :meth:`adapt` on training data
    and saved with the model.

    Parameters
    ----------
    dim : int
        Length of the metadata vector.
    log_columns : sequence of int, optional
        Columns (e.g. counts) to compress with a signed ``log1p`` first.
    """

    def __init__(self, dim: int, log_columns: Sequence[int] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.log_columns = [int(c) for c in log_columns]

    def build(self, input_shape) -> None:
        self.mean = self.add_weight(name="mean", shape=(self.dim,), initializer="zeros",
                                    trainable=False)
        self.std = self.add_weight(name="std", shape=(self.dim,), initializer="ones",
                                   trainable=False)
        mask = np.zeros(self.dim, np.float32)
        mask[self.log_columns] = 1.0
        self._log_mask = mask

    def _transform_np(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        logged = np.sign(x) * np.log1p(np.abs(x))
        return np.where(self._log_mask > 0, logged, x)

    def adapt(self, x: np.ndarray) -> None:
        """Set mean and std from training metadata of shape (n, dim)."""
        if not self.built:
            self.build((None, self.dim))
        t = self._transform_np(x)
        mean = t.mean(axis=0) if len(t) else np.zeros(self.dim, np.float32)
        std = t.std(axis=0) if len(t) else np.ones(self.dim, np.float32)
        self.mean.assign(mean.astype(np.float32))
        self.std.assign(np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def call(self, x):
        mask = ops.convert_to_tensor(self._log_mask, dtype=x.dtype)
        logged = ops.sign(x) * ops.log1p(ops.abs(x))
        x = mask * logged + (1.0 - mask) * x
        return (x - ops.cast(self.mean, x.dtype)) / ops.cast(self.std, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "dim": self.dim, "log_columns": self.log_columns}


def _regularizer(l1: float, l2: float):
    if l1 or l2:
        return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))
    return None


def build_wafer_cnn(
    input_shape: Sequence[int] = (64, 64, 3),
    n_classes: int = 9,
    *,
    meta_dim: int = 0,
    meta_log_columns: Sequence[int] = (),
    conv_filters: Sequence[int] = (32, 64, 128),
    residual: bool = False,
    batch_norm: bool = True,
    dropout: float = 0.3,
    l1: float = 0.0,
    l2: float = 1e-4,
    activation: str = "relu",
    dense_units: int = 128,
    output_activation: str | None = None,
    seed: int | None = None,
    name: str = "wafer_cnn",
) -> keras.Model:
    """A small wafer-map CNN with an optional die-metadata input before the dense head.

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
        ``(S, S, 3)`` one-hot maps (channel 0 no die, 1 pass, 2 fail).
    n_classes : int, default 9
        Outputs; ``1`` gives one sigmoid output (binary), otherwise a softmax.
    meta_dim : int, default 0
        Length of the metadata vector; 0 = no second input.
    meta_log_columns : sequence of int
        Metadata columns compressed with ``log1p`` before standardisation (counts, sizes).
    conv_filters : sequence of int, default (32, 64, 128)
        Filters of each conv block (Conv3x3 -> BatchNorm -> activation -> MaxPool 2x2).
    residual : bool, default False
        Residual blocks instead: Conv3x3 -> BN -> act -> Conv3x3 -> BN, plus the block's
        input (through a 1x1 conv when the width changes), -> act -> MaxPool 2x2 (twice the
        convolutions of a plain block).
    batch_norm : bool, default True
    dropout : float, default 0.3
        Dropout before and after the dense layer.
    l1, l2 : float
        Kernel regularisation of conv and dense layers.
    activation : str, default "relu"
    dense_units : int, default 128
        Width of the dense head (0 = none).
    output_activation : str, optional
        Default ``"sigmoid"`` for one output, ``"softmax"`` otherwise.
    seed : int, optional
        Seed of the initialisers and dropout (reproducible weights).
    name : str

    Returns
    -------
    keras.Model
        Inputs ``maps`` of shape (batch, S, S, 3) [and ``meta`` of shape (batch, meta_dim)];
        output of shape (batch, n_classes).
    """
    reg = _regularizer(l1, l2)
    seeds = iter(range(10_000)) if seed is None else iter(range(seed, seed + 10_000))

    def init():
        return keras.initializers.HeNormal(seed=None if seed is None else next(seeds))

    maps = keras.Input(shape=tuple(input_shape), name="maps")
    x = maps
    for i, f in enumerate(conv_filters):
        block_in = x
        x = layers.Conv2D(int(f), 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer=init(), kernel_regularizer=reg,
                          name=f"conv{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.Activation(activation, name=f"act{i + 1}")(x)
        if residual:
            x = layers.Conv2D(int(f), 3, padding="same", use_bias=not batch_norm,
                              kernel_initializer=init(), kernel_regularizer=reg,
                              name=f"conv{i + 1}b")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"bn{i + 1}b")(x)
            short = block_in
            if block_in.shape[-1] != int(f):
                short = layers.Conv2D(int(f), 1, use_bias=False, kernel_initializer=init(),
                                      kernel_regularizer=reg, name=f"proj{i + 1}")(block_in)
            x = layers.Add(name=f"add{i + 1}")([x, short])
            x = layers.Activation(activation, name=f"act{i + 1}b")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    inputs = [maps]
    if meta_dim:
        meta = keras.Input(shape=(int(meta_dim),), name="meta")
        m = MetaScaling(int(meta_dim), meta_log_columns, name="meta_scaling")(meta)
        x = layers.Concatenate(name="concat_meta")([x, m])
        inputs.append(meta)
    if dropout:
        x = layers.Dropout(dropout, seed=None if seed is None else next(seeds), name="drop1")(x)
    if dense_units:
        x = layers.Dense(int(dense_units), activation=activation, kernel_initializer=init(),
                         kernel_regularizer=reg, name="dense")(x)
        if dropout:
            x = layers.Dropout(dropout, seed=None if seed is None else next(seeds),
                               name="drop2")(x)
    out_act = output_activation or ("sigmoid" if n_classes == 1 else "softmax")
    glorot = keras.initializers.GlorotUniform(seed=None if seed is None else next(seeds))
    out = layers.Dense(int(n_classes), activation=out_act, kernel_initializer=glorot,
                       name="output")(x)
    return keras.Model(inputs if len(inputs) > 1 else maps, out, name=name)


def build_wafer_cnn_detector(
    input_shape: Sequence[int] = (64, 64, 3),
    *,
    learning_rate: float = 1e-3,
    compile: bool = True,
    **kwargs,
) -> keras.Model:
    """Phase-1 detector: one sigmoid output, P(defective), binary cross-entropy.

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
    learning_rate : float, default 1e-3
        Adam learning rate when ``compile``.
    compile : bool, default True
        Compile with Adam, binary cross-entropy, AUC and accuracy.
    **kwargs
        Passed to :func:`build_wafer_cnn` (``conv_filters``, ``dropout``, ...).

    Returns
    -------
    keras.Model
        Output of shape (batch, 1).
    """
    kwargs.setdefault("name", "wafer_cnn_detector")
    model = build_wafer_cnn(input_shape, 1, **kwargs)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc"), "accuracy"])
    return model


def build_wafer_cnn_classifier(
    input_shape: Sequence[int] = (64, 64, 3),
    n_classes: int = 8,
    *,
    meta_dim: int | None = None,
    learning_rate: float = 1e-3,
    compile: bool = True,
    **kwargs,
) -> keras.Model:
    """Phase-2 pattern classifier: softmax over the defect patterns, metadata as second input.

    Parameters
    ----------
    input_shape : tuple of int, default (64, 64, 3)
    n_classes : int, default 8
        The eight WM-811K defect patterns.
    meta_dim : int, optional
        Metadata length; default ``len(META_FEATURE_NAMES)``.
    learning_rate : float, default 1e-3
    compile : bool, default True
        Compile with Adam and sparse categorical cross-entropy.
    **kwargs
        Passed to :func:`build_wafer_cnn`.

    Returns
    -------
    keras.Model
        Inputs ``maps`` (batch, S, S, 3) and ``meta`` (batch, meta_dim); output (batch, n_classes).
    """
    from wafertk.data.preprocess import META_FEATURE_NAMES

    if meta_dim is None:
        meta_dim = len(META_FEATURE_NAMES)
        kwargs.setdefault("meta_log_columns", default_meta_log_columns())
    kwargs.setdefault("name", "wafer_cnn_classifier")
    model = build_wafer_cnn(input_shape, n_classes, meta_dim=meta_dim, **kwargs)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def default_meta_log_columns() -> list[int]:
    """Columns of :data:`~wafertk.data.preprocess.META_FEATURE_NAMES` that are counts/sizes."""
    from wafertk.data.preprocess import META_FEATURE_NAMES

    logged = {"die_count", "grid_rows", "grid_cols", "fail_count", "aspect"}
    return [i for i, n in enumerate(META_FEATURE_NAMES) if n in logged]
