"""Keras 3 networks of the anomaly detectors: builders and the custom layers they use.

Written with ``keras.layers``/``keras.ops`` only. The custom layers are registered
(``keras.saving.register_keras_serializable(package="wafertk")``), so a saved ``.keras`` file
reloads with :func:`keras.saving.load_model` once this module is imported.

* :class:`SelfAttention2D`: SAGAN-style self-attention over the positions of a feature map,
  added to its input through a learnt gate initialised at 0 (the block starts as identity);
* :class:`Sampling`: the VAE's reparameterisation (the latent mean at inference);
* :class:`LatentCentre`: a latent centre held as a non-trainable variable, output the squared
  distance ``||z - c||^2`` (the one-class VAE and Deep SVDD).

Builders: :func:`build_conv_encoder`, :func:`build_conv_decoder`, :func:`build_vae`,
:func:`build_deep_svdd`, :func:`build_transform_classifier`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers, ops

_PACKAGE = "wafertk"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SelfAttention2D(layers.Layer):
    """Self-attention over the H x W positions of a feature map, with a residual gate.

    ``out = x + gamma * softmax(q k^T / sqrt(d)) v`` with ``q = x Wq``, ``k = x Wk``,
    ``v = x Wv`` per position; ``gamma`` starts at 0. No bias terms, so it can sit in a
    Deep SVDD network.

    Parameters
    ----------
    key_dim : int, optional
        Width of queries and keys; default ``max(channels // 8, 1)``.
    seed : int, optional
        Seed of the initialisers.
    """

    def __init__(self, key_dim: int | None = None, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.key_dim = key_dim
        self.seed = seed

    def build(self, input_shape) -> None:
        c = int(input_shape[-1])
        k = int(self.key_dim or max(c // 8, 1))
        self._k = k
        s = self.seed

        def init(i):
            return keras.initializers.GlorotUniform(seed=None if s is None else s + i)

        self.wq = self.add_weight(shape=(c, k), initializer=init(0), name="wq")
        self.wk = self.add_weight(shape=(c, k), initializer=init(1), name="wk")
        self.wv = self.add_weight(shape=(c, c), initializer=init(2), name="wv")
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, x):
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        flat = ops.reshape(x, (-1, h * w, c))
        q = ops.matmul(flat, self.wq)
        k = ops.matmul(flat, self.wk)
        v = ops.matmul(flat, self.wv)
        att = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 2, 1))) / math.sqrt(self._k),
                          axis=-1)
        return x + self.gamma * ops.reshape(ops.matmul(att, v), (-1, h, w, c))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "key_dim": self.key_dim, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Sampling(layers.Layer):
    """``z = mean + exp(log_var / 2) * eps`` when training, ``mean`` otherwise.

    Parameters
    ----------
    seed : int, optional
        Seed of the noise (a :class:`keras.random.SeedGenerator`).
    """

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        if not training:
            return mean
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LatentCentre(layers.Layer):
    """Squared distance of each latent vector to a centre ``c`` (a non-trainable variable).

    The centre is set from outside: Deep SVDD fixes it from an initial forward pass, the
    one-class VAE moves it to the barycentre of the latent means at each epoch end
    (:class:`wafertk.anomaly.estimators.LatentCentreCallback`). It is saved with the model.
    """

    def build(self, input_shape) -> None:
        self.centre = self.add_weight(shape=(int(input_shape[-1]),), initializer="zeros",
                                      trainable=False, name="centre")

    def call(self, z):
        return ops.sum(ops.square(z - self.centre), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


def _initializer(seed: int | None):
    counter = iter(range(10_000))

    def init():
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed
                                                + next(counter))

    return init


def check_input_shape(input_shape: Sequence[int], conv_filters: Sequence[int]) -> None:
    """Raise ``ValueError`` when the grid does not survive every 2x2 pooling block."""
    need = 2 ** len(conv_filters)
    h, w = int(input_shape[0]), int(input_shape[1])
    if h % need or w % need:
        raise ValueError(f"input {h}x{w} is not divisible by {need} ({len(conv_filters)} "
                         "pooling blocks)")


def build_conv_encoder(input_shape: Sequence[int], latent_dim: int, *,
                       conv_filters: Sequence[int] = (32, 64), kernel_size: int = 3,
                       use_bias: bool = True, attention: bool = False,
                       variational: bool = False, negative_slope: float = 0.1,
                       seed: int | None = None, name: str = "encoder") -> keras.Model:
    """Conv encoder: [Conv -> BatchNorm -> LeakyReLU -> MaxPool 2x2] per filter count,
    optional self-attention, flatten, dense to ``latent_dim``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W, C)``; H and W divisible by ``2 ** len(conv_filters)``.
    latent_dim : int
    conv_filters : sequence of int, default (32, 64)
    kernel_size : int, default 3
    use_bias : bool, default True
        False: no bias in any layer and BatchNorm without its affine offset/scale (Deep SVDD,
        Ruff et al. 2018: a bias lets the network map everything onto the centre).
    attention : bool, default False
        A :class:`SelfAttention2D` block after the last conv block.
    variational : bool, default False
        Two dense heads, ``z_mean`` and ``z_log_var``; otherwise one, ``z``.
    negative_slope : float, default 0.1
        The LeakyReLU slope below 0 (Ruff et al.'s code uses PyTorch's default, 0.01).
    seed : int, optional
    name : str

    Returns
    -------
    keras.Model
        ``x -> z`` or ``x -> [z_mean, z_log_var]``. The last conv layer is named
        ``conv{len(conv_filters)}`` (the last layer every loss term goes through).
    """
    check_input_shape(input_shape, conv_filters)
    init = _initializer(seed)
    x_in = keras.Input(shape=tuple(int(s) for s in input_shape), name="x")
    h = x_in
    for i, f in enumerate(conv_filters):
        h = layers.Conv2D(int(f), kernel_size, padding="same", use_bias=False,
                          kernel_initializer=init(), name=f"conv{i + 1}")(h)
        h = layers.BatchNormalization(center=use_bias, scale=use_bias, epsilon=1e-4,
                                      momentum=0.9, name=f"bn{i + 1}")(h)
        h = layers.LeakyReLU(float(negative_slope), name=f"act{i + 1}")(h)
        h = layers.MaxPooling2D(2, name=f"pool{i + 1}")(h)
    if attention:
        h = SelfAttention2D(seed=None if seed is None else seed + 1000, name="attention")(h)
    h = layers.Flatten(name="flatten")(h)
    if variational:
        z_mean = layers.Dense(latent_dim, kernel_initializer=init(), name="z_mean")(h)
        z_log_var = layers.Dense(latent_dim, kernel_initializer="zeros",
                                 name="z_log_var")(h)
        return keras.Model(x_in, [z_mean, z_log_var], name=name)
    z = layers.Dense(latent_dim, use_bias=use_bias, kernel_initializer=init(), name="z")(h)
    return keras.Model(x_in, z, name=name)


def build_conv_decoder(latent_dim: int, output_shape: Sequence[int], *,
                       conv_filters: Sequence[int] = (32, 64), use_bias: bool = True,
                       output_activation: str = "sigmoid", negative_slope: float = 0.1,
                       seed: int | None = None, name: str = "decoder") -> keras.Model:
    """Mirror of :func:`build_conv_encoder`: dense, reshape, [Conv2DTranspose stride 2 ->
    BatchNorm -> LeakyReLU(``negative_slope``)] per filter count (reversed), Conv 3x3 to the
    output channels.

    Returns
    -------
    keras.Model
        ``z -> x_hat`` of shape ``output_shape``.
    """
    check_input_shape(output_shape, conv_filters)
    init = _initializer(None if seed is None else seed + 500)
    n = len(conv_filters)
    h0, w0 = int(output_shape[0]) // 2 ** n, int(output_shape[1]) // 2 ** n
    z_in = keras.Input(shape=(int(latent_dim),), name="z")
    h = layers.Dense(h0 * w0 * int(conv_filters[-1]), use_bias=use_bias,
                     kernel_initializer=init(), name="dense")(z_in)
    h = layers.Reshape((h0, w0, int(conv_filters[-1])), name="reshape")(h)
    for i, f in enumerate(reversed(conv_filters)):
        h = layers.Conv2DTranspose(int(f), 3, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=init(), name=f"deconv{i + 1}")(h)
        h = layers.BatchNormalization(center=use_bias, scale=use_bias, epsilon=1e-4,
                                      momentum=0.9, name=f"dbn{i + 1}")(h)
        h = layers.LeakyReLU(float(negative_slope), name=f"dact{i + 1}")(h)
    out = layers.Conv2D(int(output_shape[-1]), 3, padding="same", use_bias=use_bias,
                        activation=output_activation, kernel_initializer=init(),
                        name="output")(h)
    return keras.Model(z_in, out, name=name)


def build_vae(input_shape: Sequence[int], latent_dim: int = 32, *,
              conv_filters: Sequence[int] = (32, 64), attention: bool = False,
              centre: bool = False, seed: int | None = None) -> keras.Model:
    """Convolutional VAE (optionally with a latent centre: the one-class VAE).

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W, C)`` inputs in [0, 1] (the decoder ends in a sigmoid).
    latent_dim : int, default 32
    conv_filters : sequence of int, default (32, 64)
    attention : bool, default False
    centre : bool, default False
        Add a :class:`LatentCentre` on the latent mean (output ``centre_distance``).
    seed : int, optional

    Returns
    -------
    keras.Model
        ``x -> {"reconstruction", "z_mean", "z_log_var"[, "centre_distance"]}``, with the
        sub-models ``encoder`` and ``decoder``.
    """
    encoder = build_conv_encoder(input_shape, latent_dim, conv_filters=conv_filters,
                                 attention=attention, variational=True, seed=seed)
    decoder = build_conv_decoder(latent_dim, input_shape, conv_filters=conv_filters,
                                 seed=seed)
    x_in = keras.Input(shape=tuple(int(s) for s in input_shape), name="x")
    z_mean, z_log_var = encoder(x_in)
    z = Sampling(seed=seed, name="sampling")([z_mean, z_log_var])
    outputs = {"reconstruction": decoder(z), "z_mean": z_mean, "z_log_var": z_log_var}
    if centre:
        outputs["centre_distance"] = LatentCentre(name="centre")(z_mean)
    return keras.Model(x_in, outputs, name="ocvae" if centre else "vae")


def build_deep_svdd(input_shape: Sequence[int], latent_dim: int = 32, *,
                    conv_filters: Sequence[int] = (32, 64, 128), kernel_size: int = 5,
                    attention: bool = False, negative_slope: float = 0.1,
                    seed: int | None = None) -> keras.Model:
    """Deep SVDD network (Ruff et al., ICML 2018): a bias-free conv encoder and its centre.

    The CIFAR-10 network of the paper is ``conv_filters=(32, 64, 128)``, ``kernel_size=5``,
    ``latent_dim=128``: conv 5x5 -> BatchNorm without affine terms -> LeakyReLU -> MaxPool,
    three times, then a bias-free dense layer (their code's LeakyReLU slope is 0.01:
    ``negative_slope=0.01``).

    Returns
    -------
    keras.Model
        ``x -> {"z", "centre_distance"}``, with the sub-model ``encoder``.
    """
    encoder = build_conv_encoder(input_shape, latent_dim, conv_filters=conv_filters,
                                 kernel_size=kernel_size, use_bias=False,
                                 attention=attention, negative_slope=negative_slope,
                                 seed=seed)
    x_in = keras.Input(shape=tuple(int(s) for s in input_shape), name="x")
    z = encoder(x_in)
    return keras.Model(x_in, {"z": z, "centre_distance": LatentCentre(name="centre")(z)},
                       name="deep_svdd")


def build_transform_classifier(input_shape: Sequence[int], n_transforms: int, *,
                               conv_filters: Sequence[int] = (32, 64),
                               dense_units: int = 128, attention: bool = False,
                               seed: int | None = None) -> keras.Model:
    """Classifier of which geometric transform was applied (Golan & El-Yaniv, 2018).

    Conv encoder (:func:`build_conv_encoder`, ``latent_dim=dense_units``), LeakyReLU, then a
    dense layer of ``n_transforms`` logits named ``logits``.

    Returns
    -------
    keras.Model
        ``x -> {"features", "logits"}``, with the sub-model ``encoder``.
    """
    encoder = build_conv_encoder(input_shape, dense_units, conv_filters=conv_filters,
                                 attention=attention, seed=seed)
    x_in = keras.Input(shape=tuple(int(s) for s in input_shape), name="x")
    feat = encoder(x_in)
    h = layers.LeakyReLU(0.1, name="act_features")(feat)
    logits = layers.Dense(int(n_transforms), name="logits",
                          kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(h)
    return keras.Model(x_in, {"features": feat, "logits": logits}, name="transform_classifier")
