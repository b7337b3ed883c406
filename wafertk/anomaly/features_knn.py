"""Unsupervised wafer anomaly detection on the classic wafer-map features: ``features-knn``.

:class:`FeatureKNNDetector` standardises the features of :mod:`wafertk.features` (regional
fail density, Radon projections, geometry of the largest fail region, die metadata, the
spatial arrangement of the fails) on the training wafers and scores a wafer by its mean
distance to the ``k`` nearest training wafers: a wafer whose fail pattern looks like no
normal wafer is far from all of them. No labels, no
network; on WM-811K's production test it is the strongest unsupervised detector of this
module (docs/anomaly.md).

It has the interface of the deep detectors (``fit``/``score_samples``/``predict``/
``transform``/``save``, kind ``anomaly-detector``), so ``wafertk anomaly train --model
features-knn``, ``anomaly score`` and ``detect --unsupervised`` use it alike. Saved as
``reference.npz`` (the standardised training features, float32, read without pickle) and
``manifest.json`` (feature sets, k, the standardisation, the threshold).
"""

from __future__ import annotations

import numbers
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from wafertk.anomaly._knn import KNNScoringMixin
from wafertk.anomaly.evaluation import binary_labels
from wafertk.data.waferset import WaferSet
from wafertk.errors import ModelFileError, WafertkError

#: Feature sets used by default (chosen on validation lots of WM-811K Test A: the spatial set
#: raised the validation ROC-AUC 0.939 -> 0.968 on normal wafers, 0.897 -> 0.924 on an
#: unlabeled archive; benchmarks/anomaly_knn_trim.py, docs/anomaly.md).
DEFAULT_SETS = ("density", "radon", "geometry", "meta", "spatial")
REFERENCE_FILE = "reference.npz"


class FeatureKNNDetector(KNNScoringMixin, BaseEstimator):
    """Mean distance to the ``k`` nearest normal wafers in standardised feature space.

    Parameters
    ----------
    feature_sets : sequence of str, default ("density", "radon", "geometry", "meta", "spatial")
        Sets of :func:`wafertk.features.extract_features`.
    k : int, default 20
        Neighbours averaged.
    max_reference : int, default 50000
        At most this many training wafers are kept as the reference set (a seeded random
        subset): scoring cost grows with it.
    contamination : float, default 0.05
        Share of normal validation (or training) wafers above the threshold.
    threshold_method : {"quantile", "f1"}, default "quantile"
    trim_fraction : float, default 0.0
        Robust fit for training data that holds unknown anomalies (an unlabeled archive):
        leave out this share of the reference wafers (rounded up, at most all but 2), those of
        highest leave-one-out score (mean distance to their ``k`` nearest other reference
        wafers), then standardise and index the rest. 0 keeps every wafer. Without
        validation wafers the threshold is the ``contamination`` quantile of the kept wafers'
        leave-one-out scores, so on data like the training set about ``trim_fraction +
        contamination`` of the wafers score above it.
    n_jobs : int, default 1
        Processes for the feature extraction.
    random_state : int, optional

    Attributes
    ----------
    reference_ : ndarray of shape (m, d), float32
        Standardised features of the reference wafers.
    mean_, scale_ : ndarray of shape (d,)
    feature_names_ : list of str
    threshold_ : float
    n_trimmed_ : int
        Reference wafers left out by ``trim_fraction``.
    trimmed_index_ : ndarray of int
        Their rows in the training wafers given to :meth:`fit` (not saved with the model).
    history_ : dict
        Empty (no epochs); kept for the run machinery.
    """

    name = "features-knn"

    def __init__(self, *, feature_sets: Sequence[str] = DEFAULT_SETS, k: int = 20,
                 max_reference: int = 50000, contamination: float = 0.05,
                 threshold_method: str = "quantile", trim_fraction: float = 0.0,
                 n_jobs: int = 1, random_state: int | None = None) -> None:
        self.feature_sets = feature_sets
        self.k = k
        self.max_reference = max_reference
        self.contamination = contamination
        self.threshold_method = threshold_method
        self.trim_fraction = trim_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ inputs
    def _features(self, X) -> np.ndarray:
        from wafertk.features.extract import extract_features

        if not isinstance(X, WaferSet):
            raise WafertkError("features-knn scores wafer maps (a WaferSet / wafers.h5), "
                               "not images")
        if len(X) == 0:
            return np.zeros((0, len(getattr(self, "mean_", []))), np.float64)
        return np.asarray(extract_features(X, sets=list(self.feature_sets),
                                           n_jobs=self.n_jobs), np.float64)

    def _inputs(self, X, *, fitting: bool = False, check: bool = True) -> np.ndarray:
        """Standardised features (the runner calls this in its read-ahead thread)."""
        f = self._features(X)
        if fitting:
            return f
        if check:
            self._check_fitted()
        return self._standardise(f)

    def _standardise(self, f: np.ndarray) -> np.ndarray:
        z = (f - self.mean_) / self.scale_
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise WafertkError("this FeatureKNNDetector is not fitted yet: call fit first")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, X_val=None, y_val=None,
            on_epoch: Callable[[str], None] | None = None):
        """Keep the standardised features of the normal training wafers.

        Parameters
        ----------
        X : WaferSet
        y : array-like of shape (n,), optional
            1 = anomalous: left out.
        X_val, y_val : optional
            Validation wafers (labels 1 = anomalous, optional) for the threshold.
        on_epoch : callable, optional
            Called once with a summary line.

        Returns
        -------
        self
        """
        self._check_k()
        trim = self.trim_fraction
        if isinstance(trim, bool) or not isinstance(trim, numbers.Real) or not 0 <= trim < 1:
            raise WafertkError(f"trim_fraction must be in [0, 1), got {trim!r}")
        t0 = time.perf_counter()
        f = self._features(X)
        idx = np.arange(len(f))  # rows of X still in the reference set
        if y is not None:
            t = binary_labels(y, len(f))
            if t.all():
                raise WafertkError("no normal samples to train on: every training sample is "
                                   "labelled anomalous")
            f, idx = f[~t], idx[~t]
        if len(f) < 2:
            raise WafertkError(f"{len(f)} training sample: anomaly detectors need at least 2")
        if not np.isfinite(f).all():
            bad = int(np.flatnonzero(~np.isfinite(f).all(axis=1))[0])
            raise WafertkError(f"features of training wafer {bad} hold NaN or infinite values")
        rng = np.random.default_rng(self.random_state)
        if len(f) > self.max_reference:
            sel = np.sort(rng.choice(len(f), int(self.max_reference), replace=False))
            f, idx = f[sel], idx[sel]
        self._set_reference(f)
        self.n_trimmed_ = 0
        self.trimmed_index_ = np.zeros(0, np.int64)
        n_drop = min(int(np.ceil(float(trim) * len(f) - 1e-9)), len(f) - 2)
        if n_drop > 0:  # trim 0 drops none
            # robust fit: the wafers farthest from their own neighbours are the likeliest
            # anomalies of an unlabeled training set; drop them, then standardise the rest
            loo = self._score_array(self.reference_, loo=True)
            order = np.argsort(loo, kind="stable")
            self._set_reference(f[np.sort(order[:len(f) - n_drop])])
            self.n_trimmed_ = int(n_drop)
            self.trimmed_index_ = np.sort(idx[order[len(f) - n_drop:]])
        from wafertk.features.extract import feature_names

        self.feature_names_ = list(feature_names(list(self.feature_sets)))
        self.input_kind_ = "wafers"
        self.input_shape_ = [int(f.shape[1])]
        self.history_ = {}
        self._fit_threshold(X_val, y_val)
        self.fit_seconds_ = time.perf_counter() - t0
        if on_epoch is not None:
            trimmed = f" ({self.n_trimmed_:,} trimmed)" if self.n_trimmed_ else ""
            on_epoch(f"{self.name}: {len(self.reference_):,} reference wafers{trimmed}, "
                     f"{self.input_shape_[0]} features, k={self.k} "
                     f"({self.fit_seconds_:.0f}s)")
        return self

    def _set_reference(self, f: np.ndarray) -> None:
        """Standardise on ``f``, keep it as the reference set and index it."""
        self.mean_ = f.mean(axis=0)
        sd = f.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        self.reference_ = self._standardise(f)
        self._index()

    # ------------------------------------------------------------------ scoring
    def score_samples(self, X, batch_size: int = 4096) -> np.ndarray:
        """Anomaly score of each wafer (higher = more anomalous)."""
        return self._score_array(self._inputs(X), batch_size)

    def transform(self, X, batch_size: int = 4096) -> np.ndarray:
        """The standardised features (the latent space of this model)."""
        return self._inputs(X)

    # ------------------------------------------------------------------ files
    def save(self, folder, *, extra: dict | None = None) -> Path:
        """Write ``reference.npz`` and ``manifest.json`` (kind ``anomaly-detector``)."""
        from wafertk._atomic import atomic_path
        from wafertk.anomaly import ANOMALY_KIND
        from wafertk.models.manifest import Manifest, package_versions, write_manifest

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / REFERENCE_FILE) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, reference=self.reference_, mean=self.mean_, scale=self.scale_)
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params(deep=False).items()}
        man = Manifest(
            kind=ANOMALY_KIND, model_file=REFERENCE_FILE, classes=["normal", "anomalous"],
            input_size=None,
            preprocessing={"input": "wafers", "features": list(self.feature_sets),
                           "standardised": True, "n_features": self.input_shape_[0]},
            extra={"model": self.name, "params": params, "score_threshold": self.threshold_,
                   "state": {"input_kind": "wafers", "input_shape": self.input_shape_,
                             "feature_names": self.feature_names_,
                             "n_trimmed": int(getattr(self, "n_trimmed_", 0))},
                   **(extra or {})},
            versions=package_versions("scikit-learn", "scikit-image", "opencv-python"))
        write_manifest(folder, man)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, manifest) -> FeatureKNNDetector:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        extra = manifest.extra
        try:
            est = cls(**extra["params"])
            with np.load(folder / manifest.model_file, allow_pickle=False) as z:
                est.reference_ = np.asarray(z["reference"], np.float32)
                est.mean_ = np.asarray(z["mean"], np.float64)
                est.scale_ = np.asarray(z["scale"], np.float64)
        except (TypeError, KeyError, ValueError, OSError) as exc:
            raise ModelFileError(folder, f"cannot load the features-knn model ({exc})") \
                from None
        d = est.reference_.shape[1] if est.reference_.ndim == 2 else -1
        if est.reference_.ndim != 2 or len(est.reference_) < 2 or est.mean_.shape != (d,) \
                or est.scale_.shape != (d,):
            raise ModelFileError(folder / manifest.model_file,
                                 "reference, mean and scale arrays do not agree")
        est.feature_names_ = list(extra["state"].get("feature_names", []))
        est.input_kind_ = "wafers"
        est.input_shape_ = [int(d)]
        est.threshold_ = float(extra["score_threshold"])
        est.n_trimmed_ = int(extra["state"].get("n_trimmed", 0))
        est.history_ = {}
        est._index()
        est.manifest = manifest
        return est

    def describe(self) -> dict[str, Any]:
        """Short summary for reports."""
        return {"model": self.name, "k": int(self.k), "reference": len(self.reference_),
                "trimmed": int(getattr(self, "n_trimmed_", 0)),
                "features": self.input_shape_[0]}
