"""Image classifiers: a small convnet from scratch, transfer models on Keras applications and
SqueezeNet v1.1 (whose real ImageNet weights ship in ``../shared/data/weights/``).

Every model takes RGB images as float32 in [0, 255] and carries its own preprocessing as an
:class:`ImagePreprocess` layer (and, while training, its augmentation as Keras preprocessing
layers, inactive at inference), so a saved ``.keras`` file needs nothing else to predict.
Two classes give one sigmoid output; more give a softmax.

Pretrained weights come only from a local file (``weights=PATH``): backbones are built with
``weights=None`` and nothing is downloaded.

Examples
--------
>>> from wafertk.images.models import build_small_convnet
>>> m = build_small_convnet((32, 32, 3), 2, conv_filters=(4,), dense_units=8)
>>> m.output_shape
(None, 1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import keras
from keras import layers

from wafertk.errors import ConfigError, ModelFileError, did_you_mean
from wafertk.images.config import BACKBONES

#: ImageNet channel means (RGB order) and standard deviations used by the preprocess modes.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

#: SqueezeNet v1.1 fire modules: (name, squeeze filters, expand filters), pools after 3 and 5.
SQUEEZENET_FIRES: tuple[tuple[str, int, int], ...] = (
    ("fire2", 16, 64), ("fire3", 16, 64), ("fire4", 32, 128), ("fire5", 32, 128),
    ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256),
)


@keras.saving.register_keras_serializable(package="wafertk")
class ImagePreprocess(layers.Layer):
    """Turn RGB pixels in [0, 255] into what a network expects (``keras.applications`` modes).

    Parameters
    ----------
    mode : {"scale", "caffe", "tf", "torch", "none"}
        ``scale``: x / 255; ``caffe``: RGB -> BGR minus the ImageNet channel means (VGG,
        ResNet50, SqueezeNet); ``tf``: x / 127.5 - 1 (MobileNetV2, Xception, Inception);
        ``torch``: x / 255 minus mean, divided by std (DenseNet); ``none``: unchanged.
    """

    MODES = ("scale", "caffe", "tf", "torch", "none")

    def __init__(self, mode: str = "scale", **kwargs) -> None:
        # float32 whatever the dtype policy: under mixed_bfloat16 the pixels are not rounded
        # to bf16 before the mean subtraction (a saved layer keeps its own dtype)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}{did_you_mean(mode, self.MODES)}")
        self.mode = mode

    def call(self, x):
        x = keras.ops.cast(x, "float32")
        if self.mode == "scale":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            bgr = keras.ops.flip(x, axis=-1)
            return bgr - keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR, "float32")
        if self.mode == "torch":
            mean = keras.ops.convert_to_tensor(_TORCH_MEAN, "float32")
            std = keras.ops.convert_to_tensor(_TORCH_STD, "float32")
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="wafertk")
class RandomShear(layers.RandomShear):
    """``keras.layers.RandomShear`` that reloads from its own config.

    Keras 3.15 saves the factors as ``[-f, f]`` and then refuses them on loading; this
    subclass accepts both forms. :func:`~wafertk.images.predict.load_image_predictor` also
    maps the plain Keras class name onto it, so files saved with the plain layer load.
    """

    def __init__(self, x_factor=0.0, y_factor=0.0, **kwargs) -> None:
        def scalar(f):
            return max(abs(float(v)) for v in f) if isinstance(f, (list, tuple)) else f

        super().__init__(scalar(x_factor), scalar(y_factor), **kwargs)


@keras.saving.register_keras_serializable(package="wafertk")
class RandomPixelShift(layers.Layer):
    """Random shifts by whole pixels, edge pixels repeated into the gap (training only).

    What ``keras.layers.RandomTranslation(..., fill_mode="nearest")`` does, restricted to
    integer offsets: no interpolation, so no blur and no projective transform. Each image
    of a batch gets its own offsets, drawn uniformly from ``-r .. r`` with ``r = round(f *
    size)`` (at least 1 when ``f > 0``). Two gathers per batch instead of a projective
    transform: it costs almost nothing beside the network.

    Parameters
    ----------
    height_factor, width_factor : float
        Largest shift as a fraction of the height / width (0.125 on 32 px: +-4 pixels).
    seed : int, optional
    """

    def __init__(self, height_factor: float = 0.0, width_factor: float = 0.0,
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        for name, f in (("height_factor", height_factor), ("width_factor", width_factor)):
            if not 0 <= float(f) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {f}")
        self.height_factor = float(height_factor)
        self.width_factor = float(width_factor)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _offsets(self, n, size: int, factor: float):
        import tensorflow as tf

        reach = max(1, round(factor * size))
        off = keras.random.randint((n, 1), -reach, reach + 1, seed=self.seed_generator)
        return tf.clip_by_value(tf.range(size)[None, :] + tf.cast(off, "int32"), 0, size - 1)

    def call(self, x, training=None):
        if not training or (self.height_factor == 0 and self.width_factor == 0):
            return x
        import tensorflow as tf

        n = tf.shape(x)[0]
        h, w = x.shape[1], x.shape[2]  # the image models have a fixed input size
        if h is None or w is None:
            raise ValueError("RandomPixelShift needs images of a fixed height and width")
        if self.height_factor:
            x = tf.gather(x, self._offsets(n, h, self.height_factor), axis=1, batch_dims=1)
        if self.width_factor:
            x = tf.gather(x, self._offsets(n, w, self.width_factor), axis=2, batch_dims=1)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor, "seed": self.seed}


def augmentation_layers(*, rotation: float = 45.0, shear: float = 0.2,
                        width_shift: float = 0.2, height_shift: float = 0.2,
                        zoom: float = 0.2, horizontal_flip: bool = True,
                        vertical_flip: bool = False, shift_mode: str = "interpolate",
                        seed: int | None = None) -> list[layers.Layer]:
    """Keras preprocessing layers for training-time augmentation (no-ops at inference).

    Parameters
    ----------
    rotation : float, default 45
        Random rotation up to this many degrees either way (0: none).
    shear : float, default 0.2
        Shear factor along both axes (``keras.layers.RandomShear``).
    width_shift, height_shift : float, default 0.2
        Random shifts as fractions of the width / height.
    shift_mode : {"interpolate", "pixels"}, default "interpolate"
        ``interpolate``: ``keras.layers.RandomTranslation`` (sub-pixel offsets, bilinear);
        ``pixels``: :class:`RandomPixelShift` (whole pixels, no interpolation, far cheaper).
    zoom : float, default 0.2
        Zoom in or out by up to this fraction (0.2 = +-20 %).
    horizontal_flip, vertical_flip : bool
    seed : int, optional

    Returns
    -------
    list of keras.layers.Layer
        Apply in order; empty when every option is off.
    """
    out: list[layers.Layer] = []
    if horizontal_flip or vertical_flip:
        mode = ("horizontal_and_vertical" if horizontal_flip and vertical_flip
                else "horizontal" if horizontal_flip else "vertical")
        out.append(layers.RandomFlip(mode, seed=seed, name="aug_flip"))
    if rotation:
        out.append(layers.RandomRotation(rotation / 360.0, fill_mode="nearest", seed=seed,
                                         name="aug_rotation"))
    if shear:
        out.append(RandomShear(shear, shear, fill_mode="nearest", seed=seed,
                               name="aug_shear"))
    if shift_mode not in ("interpolate", "pixels"):
        raise ConfigError(f"unknown shift_mode {shift_mode!r} (interpolate, pixels)")
    if width_shift or height_shift:
        out.append(RandomPixelShift(height_shift, width_shift, seed=seed, name="aug_shift")
                   if shift_mode == "pixels" else
                   layers.RandomTranslation(height_shift, width_shift, fill_mode="nearest",
                                            seed=seed, name="aug_shift"))
    if zoom:
        out.append(layers.RandomZoom((-zoom, zoom), (-zoom, zoom), fill_mode="nearest",
                                     seed=seed, name="aug_zoom"))
    return out


def _apply(x, stack: Sequence[layers.Layer]):
    for layer in stack:
        x = layer(x)
    return x


def _head(x, n_classes: int):
    if n_classes < 2:
        raise ConfigError(f"a classifier needs at least two classes, got {n_classes}")
    # float32 outputs whatever the dtype policy (mixed bfloat16 computes the rest in bf16)
    if n_classes == 2:
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="predictions")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32",
                        name="predictions")(x)


def _l2(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def build_small_convnet(input_shape: tuple[int, int, int] = (150, 150, 3), n_classes: int = 2,
                        *, conv_filters: Sequence[int] = (32, 64, 128, 128),
                        convs_per_block: int = 1, dense_units: int = 512,
                        dropout: float = 0.5, l2: float = 0.0,
                        batch_norm: bool = False,
                        block: Literal["plain", "residual_separable"] = "plain",
                        pooling: Literal["flatten", "global_average"] = "flatten",
                        augment: dict | None = None,
                        seed: int | None = None) -> keras.Model:
    """A small convnet trained from scratch (conv + max-pool blocks, optional dense head).

    Parameters
    ----------
    input_shape : tuple of int, default (150, 150, 3)
        RGB in [0, 255].
    n_classes : int, default 2
    conv_filters : sequence of int
        The filters of each block (see ``block``), one block per entry.
    convs_per_block : int, default 1
        Convolutions per block before its pooling (2: VGG-style).
    dense_units : int, default 512
        Hidden dense layer (0: none).
    dropout : float, default 0.5
        Dropout before the dense head.
    l2 : float, default 0
        L2 penalty on conv and dense kernels.
    batch_norm : bool, default False
        Plain blocks: batch norm after each conv (its bias dropped). Ignored by residual
        separable blocks, which always normalise.
    block : {"plain", "residual_separable"}, default "plain"
        ``plain``: per conv a 3x3 conv, [batch norm] and ReLU, then a 2x2 max-pool.
        ``residual_separable``: the Xception-style block of Chollet's "mini Xception"
        (*Deep Learning with Python*, 2nd ed., ch. 9): a 5x5 stem conv with
        ``conv_filters[0]`` filters, then per block and per conv batch norm, ReLU and a 3x3
        separable conv, a 3x3 max-pool of stride 2, and the block's input through a strided
        1x1 conv added to it.
    pooling : {"flatten", "global_average"}, default "flatten"
        How the last block's map becomes the head's input.
    augment : dict, optional
        Keyword arguments of :func:`augmentation_layers`; None: no augmentation.
    seed : int, optional

    Returns
    -------
    keras.Model
        Output ``(n, 1)`` sigmoid for two classes, ``(n, n_classes)`` softmax otherwise.

    Raises
    ------
    ConfigError
        An unknown ``block`` or ``pooling``, or ``convs_per_block < 1``.
    """
    if block not in ("plain", "residual_separable"):
        raise ConfigError(f"unknown block {block!r} (plain, residual_separable)")
    if pooling not in ("flatten", "global_average"):
        raise ConfigError(f"unknown pooling {pooling!r} (flatten, global_average)")
    if convs_per_block < 1:
        raise ConfigError(f"convs_per_block must be >= 1, got {convs_per_block}")
    inp = keras.Input(shape=tuple(input_shape), name="image")
    x = _apply(inp, augmentation_layers(**augment, seed=seed) if augment is not None else [])
    x = ImagePreprocess("scale", name="preprocess")(x)
    if block == "residual_separable":
        x = _residual_separable_blocks(x, conv_filters, convs_per_block, l2)
    else:
        x = _plain_blocks(x, conv_filters, convs_per_block, l2, batch_norm)
    if pooling == "global_average":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu", kernel_regularizer=_l2(l2),
                         name="dense")(x)
    return keras.Model(inp, _head(x, n_classes), name="small_convnet")


def _plain_blocks(x, conv_filters: Sequence[int], convs_per_block: int, l2: float,
                  batch_norm: bool) -> keras.KerasTensor:
    for i, f in enumerate(conv_filters):
        for j in range(convs_per_block):
            # one conv per block keeps the names conv1, bn1, relu1 (earlier runs reload)
            tag = f"{i + 1}" if convs_per_block == 1 else f"{i + 1}_{j + 1}"
            x = layers.Conv2D(f, 3, padding="same", use_bias=not batch_norm,
                              kernel_regularizer=_l2(l2), name=f"conv{tag}")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"bn{tag}")(x)
            x = layers.Activation("relu", name=f"relu{tag}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return x


def _residual_separable_blocks(x, conv_filters: Sequence[int], convs_per_block: int,
                               l2: float) -> keras.KerasTensor:
    reg = _l2(l2)
    x = layers.Conv2D(conv_filters[0], 5, use_bias=False, kernel_regularizer=reg,
                      name="stem_conv")(x)
    for i, f in enumerate(conv_filters):
        shortcut = x
        for j in range(convs_per_block):
            tag = f"{i + 1}_{j + 1}"
            x = layers.BatchNormalization(name=f"bn{tag}")(x)
            x = layers.Activation("relu", name=f"relu{tag}")(x)
            x = layers.SeparableConv2D(f, 3, padding="same", use_bias=False,
                                       depthwise_regularizer=reg, pointwise_regularizer=reg,
                                       name=f"sepconv{tag}")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i + 1}")(x)
        shortcut = layers.Conv2D(f, 1, strides=2, padding="same", use_bias=False,
                                 kernel_regularizer=reg, name=f"shortcut{i + 1}")(shortcut)
        x = layers.Add(name=f"add{i + 1}")([x, shortcut])
    return x


# ------------------------------------------------------------------------------ SqueezeNet
def _fire(x, name: str, squeeze: int, expand: int):
    x = layers.Conv2D(squeeze, 1, padding="valid", name=f"{name}_squeeze1x1")(x)
    x = layers.Activation("relu", name=f"{name}_relu_squeeze1x1")(x)
    left = layers.Conv2D(expand, 1, padding="valid", name=f"{name}_expand1x1")(x)
    left = layers.Activation("relu", name=f"{name}_relu_expand1x1")(left)
    right = layers.Conv2D(expand, 3, padding="same", name=f"{name}_expand3x3")(x)
    right = layers.Activation("relu", name=f"{name}_relu_expand3x3")(right)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([left, right])


def build_squeezenet(input_shape: tuple[int, int, int] = (227, 227, 3), *,
                     weights: str | os.PathLike | None = None) -> keras.Model:
    """SqueezeNet v1.1 without its top, laid out as the shared ImageNet weights file.

    Layer names are the file's with ``/`` written ``_`` (Keras 3 forbids ``/`` in names):
    ``conv1``, ``relu_conv1``, ``pool1``, ``fire2_squeeze1x1``, ``fire2_expand1x1``,
    ``fire2_expand3x3``, ``fire2_concat``, ..., ``pool3``, ``pool5``, ``drop9``.

    Parameters
    ----------
    input_shape : tuple of int, default (227, 227, 3)
        Already preprocessed input ('caffe': BGR minus the ImageNet means).
    weights : path, optional
        A SqueezeNet weights ``.h5`` file (:func:`load_squeezenet_weights`).

    Returns
    -------
    keras.Model
        Named ``squeezenet``; output ``(n, h, w, 512)`` (13 x 13 at 227 px).
    """
    inp = keras.Input(shape=tuple(input_shape), name="squeezenet_input")
    x = layers.Conv2D(64, 3, strides=2, padding="valid", name="conv1")(inp)
    x = layers.Activation("relu", name="relu_conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for name, s, e in SQUEEZENET_FIRES:
        x = _fire(x, name, s, e)
        if name in ("fire3", "fire5"):
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{name[-1]}")(x)
    x = layers.Dropout(0.5, name="drop9")(x)
    model = keras.Model(inp, x, name="squeezenet")
    if weights is not None:
        load_squeezenet_weights(model, weights)
    return model


def _find_layer(model: keras.Model, name: str):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = _find_layer(layer, name)
            if found is not None:
                return found
    return None


def load_squeezenet_weights(model: keras.Model, path: str | os.PathLike) -> int:
    """Load SqueezeNet v1.1 weights from a Keras 1/2-era ``.h5`` file into ``model``.

    Layers are matched by the file's layer groups (``fire2/squeeze1x1`` -> layer
    ``fire2_squeeze1x1``, found in ``model`` or a nested model); inside a group the kernel
    (4-D, HWIO) and bias (1-D) are told apart by rank, in the group's ``weight_names``
    order, never by dataset name.

    Parameters
    ----------
    model : keras.Model
        A :func:`build_squeezenet` network or a model holding one.
    path : str or os.PathLike

    Returns
    -------
    int
        Number of layers loaded (25: conv1 and three convolutions per fire module).

    Raises
    ------
    ModelFileError
        Missing or unreadable file, a layer missing from the model or the file, or a
        shape that does not match.
    """
    import h5py
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(p, "no such weights file" if not p.exists() else
                             "is not a file (expected a .h5 weights file)")
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise ModelFileError(p, "not an HDF5 weights file") from None
    loaded: set[str] = set()
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in group.attrs.get("layer_names", [])]
        if not names:
            raise ModelFileError(p, "no layer_names attribute: not a Keras weights file")
        for name in names:
            g = group.get(name)
            if g is None:
                continue
            wnames = [n.decode() if isinstance(n, bytes) else str(n)
                      for n in g.attrs.get("weight_names", [])]
            if not wnames:
                continue
            arrays = [np.asarray(g[w]) for w in wnames]
            kernels = [a for a in arrays if a.ndim == 4]
            biases = [a for a in arrays if a.ndim == 1]
            if len(kernels) != 1 or len(biases) != 1:
                raise ModelFileError(p, f"layer {name}: expected one kernel and one bias, "
                                     f"found shapes {[a.shape for a in arrays]}")
            layer = _find_layer(model, name.replace("/", "_"))
            if layer is None:
                raise ModelFileError(p, f"layer {name} has no counterpart in the model")
            want = [tuple(w.shape) for w in layer.get_weights()]
            got = [kernels[0].shape, biases[0].shape]
            if want != got:
                raise ModelFileError(p, f"layer {name}: file shapes {got}, model expects {want}")
            layer.set_weights([kernels[0], biases[0]])
            loaded.add(layer.name)
    convs = {lay.name for lay in _all_layers(model) if isinstance(lay, layers.Conv2D)}
    missing = sorted(convs - loaded)
    if missing:
        raise ModelFileError(p, f"no weights for layer {missing[0]} (not a SqueezeNet v1.1 file?)")
    return len(loaded)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


# ------------------------------------------------------------------------------ transfer
def build_backbone(name: str, input_shape: tuple[int, int, int], *,
                   weights: str | os.PathLike | None = None) -> keras.Model:
    """A headless backbone (``keras.applications`` or SqueezeNet) with local weights or none.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    input_shape : tuple of int
    weights : path, optional
        A weights file for this backbone without its top (e.g. Keras's
        ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``); default random weights.
        Never downloaded.

    Returns
    -------
    keras.Model
        Named ``name``.

    Raises
    ------
    ConfigError
        Unknown backbone or an input smaller than the backbone accepts.
    ModelFileError
        A weights file that is missing or does not fit the backbone.
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}{did_you_mean(name, BACKBONES)} "
                          f"(known: {', '.join(BACKBONES)})")
    cls_name, _, min_size = BACKBONES[name]
    if min(input_shape[:2]) < min_size:
        raise ConfigError(f"{name} needs images of at least {min_size} px, got "
                          f"{input_shape[0]}x{input_shape[1]}")
    if cls_name is None:
        return build_squeezenet(input_shape, weights=weights)
    cls = getattr(keras.applications, cls_name)
    base = cls(include_top=False, weights=None, input_shape=tuple(input_shape))
    base.name = name
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise ModelFileError(p, "no such weights file" if not p.exists()
                                 else "is not a file (expected a weights file)")
        try:
            base.load_weights(p)
        except Exception as exc:  # h5py, shape and format errors alike
            raise ModelFileError(p, f"cannot load into {name} ({str(exc).splitlines()[0]})"
                                 ) from None
    return base


def build_transfer_model(backbone: str, input_shape: tuple[int, int, int] = (224, 224, 3),
                         n_classes: int = 2, *, weights: str | os.PathLike | None = None,
                         dense_units: int = 256, dropout: float = 0.5,
                         augment: dict | None = None, seed: int | None = None
                         ) -> keras.Model:
    """A frozen backbone with a new classification head.

    ``input -> [augmentation] -> ImagePreprocess(backbone mode) -> backbone (frozen,
    inference mode) -> global average pooling -> dropout -> [dense ReLU -> dropout] ->
    predictions``. Unfreeze for fine-tuning with :func:`unfreeze_from`.

    Parameters
    ----------
    backbone : str
        A key of :data:`BACKBONES` (``vgg16``, ``mobilenet_v2``, ``squeezenet``, ...).
    input_shape : tuple of int, default (224, 224, 3)
        RGB in [0, 255].
    n_classes : int, default 2
    weights : path, optional
        Local weights file of the headless backbone; default none (random). Nothing is
        downloaded.
    dense_units : int, default 256
        Hidden layer of the head (0: none).
    dropout : float, default 0.5
    augment : dict, optional
        Keyword arguments of :func:`augmentation_layers`.
    seed : int, optional

    Returns
    -------
    keras.Model
        Named ``<backbone>_transfer``; the backbone is the nested model named ``backbone``.
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}{did_you_mean(backbone, BACKBONES)}")
    inp = keras.Input(shape=tuple(input_shape), name="image")
    x = _apply(inp, augmentation_layers(**augment, seed=seed) if augment is not None else [])
    x = ImagePreprocess(BACKBONES[backbone][1], name="preprocess")(x)
    base = build_backbone(backbone, tuple(input_shape), weights=weights)
    base.trainable = False
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu", name="head_dense")(x)
        if dropout:
            x = layers.Dropout(dropout, seed=seed, name="head_dropout2")(x)
    return keras.Model(inp, _head(x, n_classes), name=f"{backbone}_transfer")


def unfreeze_from(model: keras.Model, backbone: str, from_layer: str | None = None) -> int:
    """Make the backbone trainable from ``from_layer`` on (every layer when None).

    Parameters
    ----------
    model : keras.Model
        From :func:`build_transfer_model`.
    backbone : str
        Name of the nested backbone model.
    from_layer : str, optional
        First trainable layer of the backbone (``block5_conv1``, ``fire6_squeeze1x1``;
        ``fire6/squeeze1x1`` is accepted for SqueezeNet).

    Returns
    -------
    int
        Number of trainable weight tensors in the backbone after the change.

    Raises
    ------
    ConfigError
        ``from_layer`` is not a layer of the backbone (with the closest names).
    """
    base = model.get_layer(backbone)
    base.trainable = True
    for layer in base.layers:
        layer.trainable = True
    if from_layer is not None:
        want = from_layer.replace("/", "_")
        names = [layer.name for layer in base.layers]
        if want not in names:
            raise ConfigError(f"fine_tune.from_layer: {from_layer!r} is not a layer of "
                              f"{backbone}{did_you_mean(want, names, n=3)}")
        on = False
        for layer in base.layers:
            on = on or layer.name == want
            layer.trainable = on
    return len(base.trainable_weights)


def _transfer(name: str):
    def build(input_shape: tuple[int, int, int] = (224, 224, 3), n_classes: int = 2,
              **kwargs) -> keras.Model:
        return build_transfer_model(name, input_shape, n_classes, **kwargs)

    build.__name__ = build.__qualname__ = f"build_{name}_transfer"
    build.__doc__ = (f"{name} transfer model: :func:`build_transfer_model` with backbone "
                     f"``{name!r}``.")
    return build


build_vgg16_transfer = _transfer("vgg16")
build_vgg19_transfer = _transfer("vgg19")
build_mobilenet_v2_transfer = _transfer("mobilenet_v2")
build_xception_transfer = _transfer("xception")
build_inception_v3_transfer = _transfer("inception_v3")
build_inception_resnet_v2_transfer = _transfer("inception_resnet_v2")
build_densenet121_transfer = _transfer("densenet121")
build_resnet50_transfer = _transfer("resnet50")
build_efficientnet_b0_transfer = _transfer("efficientnet_b0")
build_squeezenet_transfer = _transfer("squeezenet")
