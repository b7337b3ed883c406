"""Unsupervised image anomaly detection on a pretrained backbone's features: ``pretrained-knn``.

:class:`PretrainedKNNDetector` embeds each image with a network pretrained on ImageNet (the
local SqueezeNet weights of ``../shared/data/weights``, or any backbone of
:data:`wafertk.images.config.BACKBONES` with a local weights file; nothing is downloaded):
the image is resized, preprocessed as the backbone expects, run up to one layer, and that
layer's feature maps are averaged over space. Embeddings are scaled to unit length and an
image is scored by its mean distance to the ``k`` nearest training images (Bergman, Cohen &
Hoshen, "Deep Nearest Neighbor Anomaly Detection", 2020). No training of the network at all:
fitting keeps the training images' embeddings.

It learns from normal images alone, like the other detectors of this module, but it borrows
what the backbone learnt from ImageNet's labelled images: on one-class CIFAR-10 it is far
stronger than the networks trained from scratch on one class (docs/anomaly.md), and it is
the detector to try first on photographs. It does not apply to wafer maps (use
``features-knn``).

Saved as ``model.keras`` (the embedding network, weights included: the weights file is not
needed again), ``reference.npz`` (the unit-length training embeddings, float32, read without
pickle) and ``manifest.json`` (kind ``anomaly-detector``).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from wafertk.anomaly._knn import KNNScoringMixin
from wafertk.anomaly.evaluation import binary_labels
from wafertk.errors import ModelFileError, WafertkError

MODEL_FILE = "model.keras"
REFERENCE_FILE = "reference.npz"
#: Layer whose feature maps are pooled, per backbone (default: the backbone's output).
#: SqueezeNet: fire8, chosen on CIFAR-10 *training* images with k
#: (benchmarks/anomaly_cifar_pretrained.py: fire6-fire9 compared, never on test images).
DEFAULT_LAYERS = {"squeezenet": "fire8_concat"}


class PretrainedKNNDetector(KNNScoringMixin, BaseEstimator):
    """Mean distance to the ``k`` nearest normal images in a pretrained backbone's features.

    Parameters
    ----------
    backbone : str, default "squeezenet"
        A key of :data:`wafertk.images.config.BACKBONES`.
    weights : str or os.PathLike
        The backbone's local pretrained weights file, without its top (for SqueezeNet
        ``squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5``). Required: with random
        weights the features mean nothing.
    layer : str, optional
        Layer of the backbone whose output is pooled (default :data:`DEFAULT_LAYERS`, else
        the backbone's output).
    image_size : int, default 128
        Images are resized to this side (bilinear) before the backbone.
    k : int, default 10
        Neighbours averaged (10 chosen with the layer on CIFAR-10 training images; 5 and 20
        were within 0.002 mean ROC-AUC there).
    max_reference : int, default 50000
        At most this many training images are kept (a seeded random subset).
    contamination : float, default 0.05
        Share of normal validation (or training) images above the threshold.
    threshold_method : {"quantile", "f1"}, default "quantile"
    batch_size : int, default 128
        Images per forward pass.
    random_state : int, optional

    Attributes
    ----------
    embedder_ : keras.Model
        Images (n, H, W, 3) in [0, 1] -> embeddings (n, d).
    reference_ : ndarray of shape (m, d), float32
        Unit-length embeddings of the reference images.
    threshold_ : float
    history_ : dict
        Empty (no epochs); kept for the run machinery.
    """

    name = "pretrained-knn"

    def __init__(self, *, backbone: str = "squeezenet",
                 weights: str | os.PathLike | None = None, layer: str | None = None,
                 image_size: int = 128, k: int = 10, max_reference: int = 50000,
                 contamination: float = 0.05, threshold_method: str = "quantile",
                 batch_size: int = 128, random_state: int | None = None) -> None:
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.image_size = image_size
        self.k = k
        self.max_reference = max_reference
        self.contamination = contamination
        self.threshold_method = threshold_method
        self.batch_size = batch_size
        self.random_state = random_state

    # ------------------------------------------------------------------ the network
    def _build(self):
        """The embedding network: resize, backbone preprocessing, backbone up to the layer,
        spatial mean."""
        import keras

        from wafertk.images.config import BACKBONES
        from wafertk.images.models import ImagePreprocess, build_backbone

        if self.backbone not in BACKBONES:
            from wafertk.errors import did_you_mean

            raise WafertkError(f"unknown backbone {self.backbone!r}"
                               f"{did_you_mean(self.backbone, BACKBONES)}")
        if self.weights is None:
            raise WafertkError(f"{self.name} needs the backbone's pretrained weights file "
                               "(model.weights, --weights): with random weights its features "
                               "mean nothing")
        size = int(self.image_size)
        base = build_backbone(self.backbone, (size, size, 3), weights=self.weights)
        layer = self.layer or DEFAULT_LAYERS.get(self.backbone)
        if layer is not None:
            names = [lay.name for lay in base.layers]
            if layer not in names:
                from wafertk.errors import did_you_mean

                raise WafertkError(f"{self.backbone} has no layer {layer!r}"
                                   f"{did_you_mean(layer, names)}")
            base = keras.Model(base.input, base.get_layer(layer).output, name=self.backbone)
        inp = keras.Input((None, None, 3), name="image")
        x = keras.layers.Resizing(size, size, interpolation="bilinear", name="resize")(inp)
        x = keras.layers.Rescaling(255.0, name="to_255")(x)
        x = ImagePreprocess(BACKBONES[self.backbone][1], name="preprocess")(x)
        x = base(x)
        out = keras.layers.GlobalAveragePooling2D(name="spatial_mean")(x)
        return keras.Model(inp, out, name=f"{self.name}_{self.backbone}")

    def _images(self, X) -> np.ndarray:
        from wafertk.anomaly.data import as_images
        from wafertk.data.waferset import WaferSet

        if isinstance(X, WaferSet):
            raise WafertkError(f"{self.name} scores images (an ImageNet backbone), not wafer "
                               "maps: use features-knn for wafers")
        x = as_images(np.asarray(X), "X")  # float32 in [0, 1], finite
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if x.shape[-1] != 3:
            raise WafertkError(f"{self.name} needs RGB or grey images, got {x.shape[-1]} "
                               "channels")
        return x

    def _embed(self, X) -> np.ndarray:
        """Unit-length embeddings of the images ``X``, (n, d) float32."""
        x = self._images(X)
        bs = max(1, int(self.batch_size))
        parts = [np.asarray(self.embedder_.predict_on_batch(x[s:s + bs]), np.float32)
                 for s in range(0, len(x), bs)]
        e = np.concatenate(parts) if parts else np.zeros(
            (0, int(self.embedder_.output.shape[-1])), np.float32)
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.maximum(norm, 1e-12)

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise WafertkError(f"this {type(self).__name__} is not fitted yet: call fit first")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, X_val=None, y_val=None,
            on_epoch: Callable[[str], None] | None = None) -> PretrainedKNNDetector:
        """Keep the embeddings of the normal training images.

        Parameters
        ----------
        X : ndarray of shape (n, H, W, C)
            Images, float in [0, 1] or uint8 (:class:`wafertk.anomaly.data.ImageSet` ``.x``).
        y : array-like of shape (n,), optional
            1 = anomalous: left out.
        X_val, y_val : optional
            Validation images (labels 1 = anomalous, optional) for the threshold.
        on_epoch : callable, optional
            Called once with a summary line.

        Returns
        -------
        self
        """
        self._check_k()
        t0 = time.perf_counter()
        x = self._images(X)
        if y is not None:
            t = binary_labels(y, len(x))
            if t.all():
                raise WafertkError("no normal samples to train on: every training sample is "
                                   "labelled anomalous")
            x = x[~t]
        if len(x) < 2:
            raise WafertkError(f"{len(x)} training sample: anomaly detectors need at least 2")
        rng = np.random.default_rng(self.random_state)
        if len(x) > self.max_reference:
            x = x[np.sort(rng.choice(len(x), int(self.max_reference), replace=False))]
        self.embedder_ = self._build()
        self.reference_ = self._embed(x)
        self._index()
        self.input_kind_ = "images"
        self.input_shape_ = [int(v) for v in x.shape[1:]]
        self.history_: dict = {}
        self._fit_threshold(X_val, y_val)
        self.fit_seconds_ = time.perf_counter() - t0
        if on_epoch is not None:
            on_epoch(f"{self.name}: {len(self.reference_):,} reference images, "
                     f"{self.reference_.shape[1]} features ({self.backbone} "
                     f"{self.layer or DEFAULT_LAYERS.get(self.backbone, 'output')}), "
                     f"k={self.k} ({self.fit_seconds_:.0f}s)")
        return self

    # ------------------------------------------------------------------ scoring
    def score_samples(self, X, batch_size: int = 4096) -> np.ndarray:
        """Anomaly score of each image (higher = more anomalous)."""
        self._check_fitted()
        return self._score_array(self._embed(X), batch_size)

    def transform(self, X, batch_size: int = 4096) -> np.ndarray:
        """The unit-length embeddings (the latent space of this model)."""
        self._check_fitted()
        return self._embed(X)

    # ------------------------------------------------------------------ files
    def save(self, folder, *, extra: dict | None = None) -> Path:
        """Write ``model.keras``, ``reference.npz`` and ``manifest.json``."""
        from wafertk._atomic import atomic_path
        from wafertk.anomaly import ANOMALY_KIND
        from wafertk.models.manifest import Manifest, package_versions, write_manifest

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MODEL_FILE) as tmp:
            path = tmp.with_suffix(".keras")  # Keras wants the extension
            self.embedder_.save(path)
            path.replace(tmp)
        with atomic_path(folder / REFERENCE_FILE) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, reference=self.reference_)
        params = self.get_params(deep=False)
        params["weights"] = None if self.weights is None else os.fspath(self.weights)
        weights_sha = None
        if self.weights is not None and Path(self.weights).is_file():
            weights_sha = hashlib.sha256(Path(self.weights).read_bytes()).hexdigest()[:16]
        man = Manifest(
            kind=ANOMALY_KIND, model_file=MODEL_FILE, classes=["normal", "anomalous"],
            input_size=int(self.image_size),
            preprocessing={"input": "images", "backbone": self.backbone,
                           "layer": self.layer or DEFAULT_LAYERS.get(self.backbone),
                           "resize": int(self.image_size), "embedding": "spatial mean, "
                           "unit length", "reference": REFERENCE_FILE},
            extra={"model": self.name, "params": params, "score_threshold": self.threshold_,
                   "state": {"input_kind": "images", "input_shape": self.input_shape_,
                             "weights_sha256": weights_sha},
                   **(extra or {})},
            versions=package_versions("tensorflow", "keras", "scikit-learn"))
        write_manifest(folder, man)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, manifest) -> PretrainedKNNDetector:
        """Read a folder written by :meth:`save` (the weights file is not needed)."""
        import keras

        import wafertk.images.models  # noqa: F401  (registers ImagePreprocess)

        folder = Path(folder)
        extra = manifest.extra
        try:
            est = cls(**extra["params"])
            with np.load(folder / REFERENCE_FILE, allow_pickle=False) as z:
                est.reference_ = np.asarray(z["reference"], np.float32)
        except (TypeError, KeyError, ValueError, OSError) as exc:
            raise ModelFileError(folder, f"cannot load the {cls.name} model ({exc})") from None
        try:
            est.embedder_ = keras.saving.load_model(folder / manifest.model_file,
                                                    compile=False)
        except Exception as exc:  # zip, h5 and deserialisation errors alike
            raise ModelFileError(folder / manifest.model_file,
                                 f"corrupt model file ({str(exc).splitlines()[0]})") from None
        d = int(est.embedder_.output.shape[-1])
        if est.reference_.ndim != 2 or len(est.reference_) < 2 \
                or est.reference_.shape[1] != d:
            raise ModelFileError(folder / REFERENCE_FILE,
                                 f"reference embeddings do not fit the network ({d} features)")
        est.input_kind_ = "images"
        est.input_shape_ = list(extra["state"].get("input_shape", []))
        est.threshold_ = float(extra["score_threshold"])
        est.history_ = {}
        est._index()
        est.manifest = manifest
        return est

    def describe(self) -> dict[str, Any]:
        """Short summary for reports."""
        return {"model": self.name, "backbone": self.backbone,
                "layer": self.layer or DEFAULT_LAYERS.get(self.backbone),
                "k": int(self.k), "reference": len(self.reference_),
                "features": int(self.reference_.shape[1])}
