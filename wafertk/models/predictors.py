"""Saved CNN models as predictors: load, check against the manifest, and run fast.

:func:`load_cnn_predictor` is what :func:`wafertk.models.load_predictor` calls for the kinds
``"cnn-detector"`` and ``"cnn-classifier"``. The forward pass is a compiled call loop
(``tf.function`` over ``model(x, training=False)`` under the TensorFlow backend), with the
one-hot encoding done inside the compiled function from uint8 resized maps; measured ~1.5-2x
faster than ``model.predict`` on 2 CPU cores (see ``benchmarks/bench_inference.py``).
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path

import numpy as np

from wafertk.data.preprocess import die_metadata, resize_maps
from wafertk.data.waferset import WaferSet
from wafertk.errors import ModelFileError
from wafertk.models.manifest import Manifest, load_manifest
from wafertk.training.calibration import apply_temperature, logits_from_proba

log = logging.getLogger(__name__)

CNN_KINDS = ("cnn-detector", "cnn-classifier")


def _compiled_forward(model):
    """``f(maps_uint8[, meta]) -> outputs`` compiled for the active Keras backend."""
    import keras
    from keras import ops

    n_inputs = len(model.inputs)

    def call(*args):
        x = ops.one_hot(ops.cast(args[0], "int32"), 3)
        if n_inputs == 1:
            return model(x, training=False)
        return model({"maps": x, "meta": args[1]}, training=False)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        size = int(model.inputs[0].shape[1])
        sig = [tf.TensorSpec((None, size, size), tf.uint8)]
        if n_inputs > 1:
            sig.append(tf.TensorSpec((None, int(model.inputs[1].shape[1])), tf.float32))
        fn = tf.function(call, input_signature=sig, reduce_retracing=True)
        return lambda *a: fn(*a).numpy()
    return lambda *a: np.asarray(ops.convert_to_numpy(call(*a)))


_FORWARD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forward_pass(model, inputs: tuple[np.ndarray, ...], batch_size: int = 1024) -> np.ndarray:
    """Raw model outputs for preprocessed inputs, in batches, without ``model.predict``.

    Parameters
    ----------
    model : keras.Model
    inputs : tuple of ndarray
        ``(maps,)`` or ``(maps, meta)``; ``maps`` of shape (n, S, S) uint8 in {0, 1, 2}
        (resized, not one-hot), ``meta`` of shape (n, m) float32.
    batch_size : int, default 1024

    Returns
    -------
    ndarray of shape (n, n_outputs), float32
    """
    fn = _FORWARD_CACHE.get(model)
    if fn is None:
        fn = _compiled_forward(model)
        _FORWARD_CACHE[model] = fn
    n = len(inputs[0])
    n_out = int(model.outputs[0].shape[-1])
    out = np.empty((n, n_out), np.float32)
    for s in range(0, n, batch_size):
        batch = tuple(np.ascontiguousarray(a[s:s + batch_size]) for a in inputs)
        out[s:s + batch_size] = fn(*batch)
    return out


class CnnPredictor:
    """A loaded wafer CNN (detector or pattern classifier) with its manifest.

    Parameters
    ----------
    model : keras.Model
    manifest : Manifest

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
    """

    def __init__(self, model, manifest: Manifest) -> None:
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
        self._fn = None

    @property
    def is_detector(self) -> bool:
        return self.kind == "cnn-detector"

    def prepare(self, ws: WaferSet) -> tuple[np.ndarray, ...]:
        """Model inputs of a batch: resized uint8 maps (n, S, S) [and metadata (n, m)]."""
        maps = resize_maps(ws, self.input_size)
        return (maps, die_metadata(ws)) if self.uses_meta else (maps,)

    def forward(self, inputs: tuple[np.ndarray, ...], batch_size: int = 1024) -> np.ndarray:
        """Raw outputs (n, 1) sigmoid or (n, k) softmax for :meth:`prepare` output."""
        return forward_pass(self.model, inputs, batch_size)

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
                f"classes={len(self.classes_)})")


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
    n_out = int(model.outputs[0].shape[-1])
    expected = 1 if manifest.kind == "cnn-detector" else len(manifest.classes)
    if n_out != expected:
        raise ModelFileError(folder, f"model has {n_out} outputs but the manifest "
                             f"({manifest.kind}) expects {expected}")
    return CnnPredictor(model, manifest)
