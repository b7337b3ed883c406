"""Unsupervised anomaly detection on wafer maps and images (issue 11).

Detectors learn what normal looks like from normal (or mostly normal, unlabeled) data and
score how far a new sample is from it; **higher score = more anomalous**.

* :mod:`wafertk.anomaly.estimators`: :class:`VAEDetector`, :class:`OneClassVAEDetector`,
  :class:`DeepSVDDDetector`, :class:`TransformDetector` (rotation prediction) and
  :class:`LatentHybridDetector` (latents -> IsolationForest / one-class SVM) and
  :class:`LatentClassifierHybrid` (latents -> XGBoost / random forest / dense head where
  labels exist), scikit-learn-like; :class:`FeatureKNNDetector` (wafer-map features + kNN)
  and :class:`PretrainedKNNDetector` (images: a pretrained backbone's features + kNN); the
  deep detectors are saved as ``model.keras`` +
  ``manifest.json`` (kind ``anomaly-detector``, loadable with
  :func:`wafertk.registry.load_model`);
* :mod:`wafertk.anomaly.networks`: the Keras builders and registered custom layers;
* :mod:`wafertk.anomaly.evaluation`: ROC/PR-AUC, threshold sweep and choice, latent views;
* :mod:`wafertk.anomaly.run`: training runs from a config (``wafertk anomaly train``), scoring
  files (``wafertk anomaly score``) and :func:`score_file` for the inspection commands;
* :mod:`wafertk.anomaly.config`: the run config (``configs/anomaly.yaml``).

Importing this package is cheap: TensorFlow is imported only when a detector is built,
trained or loaded.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "VAEDetector": "wafertk.anomaly.estimators",
    "OneClassVAEDetector": "wafertk.anomaly.estimators",
    "DeepSVDDDetector": "wafertk.anomaly.estimators",
    "TransformDetector": "wafertk.anomaly.estimators",
    "LatentHybridDetector": "wafertk.anomaly.estimators",
    "LatentClassifierHybrid": "wafertk.anomaly.estimators",
    "LatentCentreCallback": "wafertk.anomaly.estimators",
    "FeatureKNNDetector": "wafertk.anomaly.features_knn",
    "PretrainedKNNDetector": "wafertk.anomaly.pretrained_knn",
    "load_detector": "wafertk.anomaly.estimators",
    "anomaly_metrics": "wafertk.anomaly.evaluation",
    "threshold_sweep": "wafertk.anomaly.evaluation",
    "choose_threshold": "wafertk.anomaly.evaluation",
    "latent_moments": "wafertk.anomaly.evaluation",
    "plot_latent": "wafertk.anomaly.evaluation",
    "AnomalyConfig": "wafertk.anomaly.config",
    "MODEL_NAMES": "wafertk.anomaly.config",
    "train_run": "wafertk.anomaly.run",
    "score_file": "wafertk.anomaly.run",
    "score_run": "wafertk.anomaly.run",
    "read_data": "wafertk.anomaly.run",
}

#: Manifest kind of every saved anomaly detector (also in :mod:`wafertk.registry`).
ANOMALY_KIND = "anomaly-detector"

__all__ = ["ANOMALY_KIND", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'wafertk.anomaly' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)


def __dir__() -> list[str]:
    return sorted(__all__)
