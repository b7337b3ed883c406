"""Saved CNN models as predictors: load, check against the manifest, and run fast.

:func:`load_cnn_predictor` is what :func:`wafertk.models.load_predictor` calls for the kinds
``"cnn-detector"`` and ``"cnn-classifier"``. The forward pass is a compiled call loop
(``tf.function`` under the TensorFlow backend; for the builder's architecture BatchNorm is
folded into the convolutions, otherwise ``model(x, training=False)``), with the
one-hot encoding done inside the compiled function from uint8 resized maps; measured ~1.5-2x
faster than ``model.predict`` on 2 CPU cores (see ``benchmarks/bench_inference.py``).
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from pathlib import Path

import numpy as np

from wafertk.data.preprocess import die_metadata, resize_maps
from wafertk.data.waferset import WaferSet
from wafertk.errors import ModelFileError, WafertkError
from wafertk.models.calibration import apply_temperature, logits_from_proba
from wafertk.models.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)

CNN_KINDS = ("cnn-detector", "cnn-classifier")


_BUILDER_LAYER = re.compile(r"^(maps|meta|meta_scaling|concat_meta|gap|drop\d|dense|output|"
                            r"(conv|bn|act|pool)\d+)$")


def _folded_tf_forward(model):
    """Inference graph of a :func:`~wafertk.models.cnn.build_wafer_cnn` model with BatchNorm
    folded into the convolutions (TensorFlow backend), or None for any other architecture.

    Each block ``conv -> bn -> act -> pool`` becomes ``conv2d + bias_add -> act -> max_pool``
    with ``W' = W * g / sqrt(var + eps)`` and ``b' = (b - mean) * g / sqrt(var + eps) + beta``:
    the same function (to float rounding) with one pass over each feature map less, and a
    ``Conv2D + BiasAdd + Relu`` pattern that TensorFlow fuses.
    """
    import keras
    import tensorflow as tf

    names = [layer.name for layer in model.layers]
    if not all(_BUILDER_LAYER.match(n) for n in names) or "gap" not in names:
        return None
    blocks = []
    i = 1
    while f"conv{i}" in names:
        conv = model.get_layer(f"conv{i}")
        if (conv.strides != (1, 1) or conv.padding != "same" or conv.dilation_rate != (1, 1)
                or conv.activation is not keras.activations.linear
                or f"act{i}" not in names or f"pool{i}" not in names):
            return None
        w = np.asarray(conv.kernel.numpy(), np.float64)
        b = (np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias
             else np.zeros(w.shape[-1]))
        if f"bn{i}" in names:
            bn = model.get_layer(f"bn{i}")
            if bn.axis not in (-1, 3):
                return None
            gamma = bn.gamma.numpy() if bn.scale else np.ones_like(b)
            beta = bn.beta.numpy() if bn.center else np.zeros_like(b)
            scale = gamma / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
            w = w * scale
            b = (b - bn.moving_mean.numpy()) * scale + beta
        pool = model.get_layer(f"pool{i}")
        blocks.append((tf.constant(w, tf.float32), tf.constant(b, tf.float32),
                       model.get_layer(f"act{i}").activation, tuple(pool.pool_size),
                       tuple(pool.strides), pool.padding.upper()))
        i += 1
    if len(blocks) != sum(n.startswith("conv") for n in names):
        return None
    dense = [model.get_layer(n) for n in ("dense", "output") if n in names]
    if not dense or dense[-1].name != "output":
        return None
    scaling = model.get_layer("meta_scaling") if "meta_scaling" in names else None
    n_inputs = len(model.inputs)

    def call(*args):
        h = tf.one_hot(tf.cast(args[0], tf.int32), 3, dtype=tf.float32)
        for w, b, act, size, strides, padding in blocks:
            h = act(tf.nn.bias_add(tf.nn.conv2d(h, w, 1, "SAME"), b))
            h = tf.nn.max_pool2d(h, size, strides, padding)
        h = tf.reduce_mean(h, axis=[1, 2])
        if n_inputs > 1:
            h = tf.concat([h, scaling(args[1])], axis=1)
        for layer in dense:
            h = layer(h)
        return h

    return call


def _compiled_forward(model, fold: bool = False):
    """``f(maps_uint8[, meta]) -> outputs`` compiled for the active Keras backend.

    ``fold=True`` bakes the current weights in (:func:`_folded_tf_forward`): only for models
    that are no longer trained. The returned function holds the model only through a weak
    reference, so that caching it per model (:data:`_FORWARD_CACHE`) does not keep the model
    alive.
    """
    import keras
    from keras import ops

    n_inputs = len(model.inputs)
    model_ref = weakref.ref(model)

    def call(*args):
        m = model_ref()
        x = ops.one_hot(ops.cast(args[0], "int32"), 3)
        if n_inputs == 1:
            return m(x, training=False)
        return m({"maps": x, "meta": args[1]}, training=False)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        size = int(model.inputs[0].shape[1])
        sig = [tf.TensorSpec((None, size, size), tf.uint8)]
        if n_inputs > 1:
            sig.append(tf.TensorSpec((None, int(model.inputs[1].shape[1])), tf.float32))
        graph = (_folded_tf_forward(model) if fold else None) or call
        fn = tf.function(graph, input_signature=sig, autograph=False,
                         reduce_retracing=True)
        return lambda *a: fn(*a).numpy()
    return lambda *a: np.asarray(ops.convert_to_numpy(call(*a)))


#: model -> compiled forward, per ``frozen``; weak keys, and values that do not refer to
#: their key (see :func:`_compiled_forward`), so a deleted model is freed with its entry.
_FORWARD_CACHE: dict[bool, weakref.WeakKeyDictionary] = {
    False: weakref.WeakKeyDictionary(), True: weakref.WeakKeyDictionary()}


def forward_pass(model, inputs: tuple[np.ndarray, ...], batch_size: int = 1024, *,
                 frozen: bool = False) -> np.ndarray:
    """Raw model outputs for preprocessed inputs, in batches, without ``model.predict``.

    Parameters
    ----------
    model : keras.Model
    inputs : tuple of ndarray
        ``(maps,)`` or ``(maps, meta)``; ``maps`` of shape (n, S, S) uint8 in {0, 1, 2}
        (resized, not one-hot), ``meta`` of shape (n, m) float32.
    batch_size : int, default 1024
    frozen : bool, default False
        The weights will not change any more (a loaded model): BatchNorm may be folded into
        the convolutions once, which is faster. Leave False for a model still being trained.

    Returns
    -------
    ndarray of shape (n, n_outputs), float32
    """
    cache = _FORWARD_CACHE[bool(frozen)]
    fn = cache.get(model)
    if fn is None:
        fn = _compiled_forward(model, fold=bool(frozen))
        cache[model] = fn
    n = len(inputs[0])
    n_out = int(model.outputs[0].shape[-1])
    out = np.empty((n, n_out), np.float32)
    for s in range(0, n, batch_size):
        batch = tuple(np.ascontiguousarray(a[s:s + batch_size]) for a in inputs)
        out[s:s + batch_size] = fn(*batch)
    return out


#: Test-time augmentation: the transforms of the resized map whose outputs are averaged,
#: each ``(quarter turns, mirror)``. Wafer patterns keep their class under rotations and
#: flips (training augments with the same group).
TTA_TRANSFORMS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flip": ((0, False), (0, True)),
    "rot4": tuple((k, False) for k in range(4)),
    "d4": tuple((k, f) for k in range(4) for f in (False, True)),
}


def check_tta(tta: str) -> str:
    """``tta`` if it names :data:`TTA_TRANSFORMS`, else a :class:`WafertkError` listing them."""
    if tta not in TTA_TRANSFORMS:
        raise WafertkError(f"unknown test-time augmentation {tta!r}: expected "
                         f"{', '.join(TTA_TRANSFORMS)}")
    return tta


def transform_maps(maps: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    """Resized maps (n, S, S) turned ``k`` quarter turns, then mirrored left-right."""
    out = np.rot90(maps, k, axes=(1, 2)) if k else maps
    return np.ascontiguousarray(out[:, :, ::-1] if mirror else out)


class CnnPredictor:
    """A loaded wafer CNN (detector or pattern classifier) with its manifest.

    Parameters
    ----------
    model : keras.Model
    manifest : Manifest
    tta : str, optional
        Test-time augmentation (:data:`TTA_TRANSFORMS`: ``none``, ``flip``, ``rot4``,
        ``d4``); default the manifest's ``extra.tta`` (``none`` if absent). The outputs of
        the transformed maps are averaged before calibration, so a model's temperature and
        threshold must be fitted with the same setting (``wafertk calibrate --tta``).

    Attributes
    ----------
    classes_ : list of str
        ``["good", "defective"]`` for a detector, the patterns for a classifier.
    input_size : int
    temperature : float
        Calibration temperature fitted on validation (1.0 if absent).
    threshold : float or None
        Detector decision threshold on calibrated P(defective).
    uses_meta : bool
        Whether the model takes the die-metadata vector.
    tta : str
        The test-time augmentation in use.
    """

    def __init__(self, model, manifest: Manifest, tta: str | None = None) -> None:
        self.model = model
        self.manifest = manifest
        self.kind = manifest.kind
        self.classes_ = list(manifest.classes)
        self.input_size = int(manifest.input_size)
        self.temperature = float(manifest.extra.get("temperature", 1.0) or 1.0)
        thr = manifest.extra.get("threshold")
        self.threshold = None if thr is None else float(thr)
        self.review_below = float(manifest.extra.get("review_below", 0.0) or 0.0)
        self.uses_meta = len(model.inputs) > 1
        self.tta = check_tta(tta if tta is not None
                             else str(manifest.extra.get("tta", "none") or "none"))
        self._fn = None

    @property
    def is_detector(self) -> bool:
        return self.kind == "cnn-detector"

    def prepare(self, ws: WaferSet, maps: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Model inputs of a batch: resized uint8 maps (n, S, S) [and metadata (n, m)].

        ``maps``, if given, are ``ws`` already resized to :attr:`input_size` (reused).
        """
        if maps is None:
            maps = resize_maps(ws, self.input_size)
        return (maps, die_metadata(ws)) if self.uses_meta else (maps,)

    def forward(self, inputs: tuple[np.ndarray, ...], batch_size: int = 1024, *,
                tta: str | None = None, identity: np.ndarray | None = None) -> np.ndarray:
        """Raw outputs (n, 1) sigmoid or (n, k) softmax for :meth:`prepare` output,
        averaged over the test-time augmentation transforms of the maps.

        Parameters
        ----------
        inputs : tuple of ndarray
            :meth:`prepare` output.
        batch_size : int, default 1024
        tta : str, optional
            The transforms (:data:`TTA_TRANSFORMS`); default :attr:`tta`.
        identity : ndarray, optional
            The raw outputs of the untransformed inputs, already computed (reused instead of
            a forward pass).
        """
        transforms = TTA_TRANSFORMS[self.tta if tta is None else check_tta(tta)]
        if identity is not None and len(identity) != len(inputs[0]):
            raise WafertkError(f"identity outputs for {len(identity)} wafers, inputs for "
                               f"{len(inputs[0])}")
        total = None
        for k, mirror in transforms:
            if k == 0 and not mirror:
                out = identity if identity is not None else forward_pass(
                    self.model, inputs, batch_size, frozen=True)
            else:
                out = forward_pass(self.model, (transform_maps(inputs[0], k, mirror),)
                                   + tuple(inputs[1:]), batch_size, frozen=True)
            total = out if total is None else total + out
        return total if len(transforms) == 1 else total / len(transforms)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Temperature-scaled probabilities: (n, 2) ``[good, defective]`` or (n, k)."""
        if self.is_detector:
            p = apply_temperature(logits_from_proba(raw[:, 0]), self.temperature)
            return np.stack([1 - p, p], axis=1)
        return apply_temperature(logits_from_proba(raw), self.temperature)

    def predict_proba(self, ws: WaferSet, batch_size: int = 1024) -> np.ndarray:
        """Calibrated class probabilities.

        Parameters
        ----------
        ws : WaferSet
        batch_size : int, default 1024

        Returns
        -------
        ndarray of shape (n, len(classes_)), float64
            Rows sum to 1 (detector: ``[P(good), P(defective)]``).
        """
        if len(ws) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.calibrate(self.forward(self.prepare(ws), batch_size))

    def predict(self, ws: WaferSet, batch_size: int = 1024) -> np.ndarray:
        """Class names (detector: ``defective`` where P(defective) >= threshold)."""
        proba = self.predict_proba(ws, batch_size)
        if self.is_detector:
            thr = 0.5 if self.threshold is None else self.threshold
            return np.where(proba[:, 1] >= thr, "defective", "good").astype(object)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)]

    def __repr__(self) -> str:
        return (f"CnnPredictor(kind={self.kind!r}, input_size={self.input_size}, "
                f"classes={len(self.classes_)}, tta={self.tta!r})")


def load_cnn_predictor(folder: str | os.PathLike, manifest: Manifest | None = None
                       ) -> CnnPredictor:
    """Load a saved wafer CNN and check it against its manifest.

    Parameters
    ----------
    folder : str or os.PathLike
        Model folder (``model.keras`` + ``manifest.json``).
    manifest : Manifest, optional
        Already read manifest (read and checked here otherwise).

    Returns
    -------
    CnnPredictor

    Raises
    ------
    ModelFileError
        Missing/corrupt model file, or a model that disagrees with its manifest (input size,
        number of outputs).
    """
    folder = Path(folder)
    if manifest is None:
        manifest = load_manifest(folder, CNN_KINDS)
    path = folder / manifest.model_file
    import keras

    import wafertk.models.cnn  # noqa: F401  (registers the custom layers)

    if manifest.extra.get("transfer"):  # a pretrained backbone: its preprocessing layer
        import wafertk.models.transfer  # noqa: F401

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # zip, h5, JSON and Keras errors alike
        log.debug("loading %s failed: %r", path, exc)
        raise ModelFileError(path, "corrupt model file (cannot be loaded by Keras)") from None
    if manifest.input_size is None:
        raise ModelFileError(folder, "manifest has no input_size for a CNN model")
    shape = tuple(model.inputs[0].shape[1:])
    want = (int(manifest.input_size), int(manifest.input_size), 3)
    if shape != want:
        raise ModelFileError(
            folder, f"model input shape {shape} does not match the manifest's input_size "
            f"{manifest.input_size} (expected {want})")
    tta = str(manifest.extra.get("tta", "none") or "none")
    if tta not in TTA_TRANSFORMS:
        raise ModelFileError(folder, f"manifest extra.tta {tta!r} is not one of "
                             f"{', '.join(TTA_TRANSFORMS)}")
    n_out = int(model.outputs[0].shape[-1])
    expected = 1 if manifest.kind == "cnn-detector" else len(manifest.classes)
    if n_out != expected:
        raise ModelFileError(folder, f"model has {n_out} outputs but the manifest "
                             f"({manifest.kind}) expects {expected}")
    return CnnPredictor(model, manifest)
