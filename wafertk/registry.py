"""The one registry of wafertk models: architectures, saved-model loaders and shipped models.

Three tables, filled here and read by everything else (configs, the trainer, the CLI, loading):

* **architectures** (timm-style): a name -> a builder, e.g. ``wafer_cnn_detector`` ->
  :func:`wafertk.models.cnn.build_wafer_cnn_detector`. Training configs name one
  (``model.architecture``) and the trainer builds it with :func:`create_model`;
* **loaders**: a saved model's manifest ``kind`` -> the function that loads its folder
  (``"cnn-detector"`` -> :func:`wafertk.models.predictors.load_cnn_predictor`);
* **shipped models**: the folders under ``wafertk/models/shipped/`` (``detector``,
  ``classifier``, ``xgboost``), which every command accepts by name.

:func:`load_model` takes a shipped model's name or a model folder. Targets are import path
strings resolved with :func:`pkgutil.resolve_name` when used, so importing or listing the
registry imports no TensorFlow or XGBoost.

Examples
--------
>>> from wafertk.registry import list_models, list_shipped
>>> [e.name for e in list_models("wafer_cnn_*")]
['wafer_cnn_classifier', 'wafer_cnn_detector']
>>> sorted(s.name for s in list_shipped())
['classifier', 'detector', 'xgboost']
"""

from __future__ import annotations

import fnmatch
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wafertk.errors import ModelFileError, UnknownNameError, did_you_mean

#: Folder of the models shipped inside the package, one sub-folder per model.
SHIPPED_DIR = Path(__file__).resolve().parent / "models" / "shipped"


@dataclass(frozen=True)
class Entry:
    """A registered architecture.

    Attributes
    ----------
    name : str
        Registry name (``wafer_cnn_detector``), as configs write it.
    family : str
        ``"wafer-cnn"``, ``"baseline"``, ...
    target : str
        Import path of the builder, ``"package.module:callable"``.
    summary : str
        One line for ``wafertk models``.
    kind : str or None
        Manifest kind of the models this architecture is trained into (``"cnn-detector"``).
    """

    name: str
    family: str
    target: str
    summary: str = ""
    kind: str | None = None

    def load(self) -> Callable:
        """Import and return the builder (:func:`pkgutil.resolve_name`)."""
        return pkgutil.resolve_name(self.target)


@dataclass(frozen=True)
class ShippedModel:
    """A model shipped in ``wafertk/models/shipped/NAME``.

    Attributes
    ----------
    name : str
    path : pathlib.Path
        The model folder.
    """

    name: str
    path: Path

    def manifest(self):
        """The folder's checked :class:`~wafertk.models.manifest.Manifest`."""
        from wafertk.models.manifest import load_manifest

        return load_manifest(self.path)


_ARCHITECTURES: dict[str, Entry] = {}
_LOADERS: dict[str, str] = {}


# --------------------------------------------------------------------------- architectures
def register_model(name: str, family: str, target: str, summary: str = "",
                   kind: str | None = None) -> None:
    """Register the builder ``target`` (``"package.module:callable"``) under ``name``.

    Parameters
    ----------
    name : str
    family : str
    target : str
        Resolved by :func:`pkgutil.resolve_name` when the entry is used.
    summary : str, optional
    kind : str, optional
        Manifest kind of the trained model.

    Raises
    ------
    ValueError
        If ``name`` is already registered with another target.
    """
    old = _ARCHITECTURES.get(name)
    if old is not None and old.target != target:
        raise ValueError(f"model name {name!r} already registered for {old.target}")
    _ARCHITECTURES[name] = Entry(name, family, target, summary, kind)


def get_entry(name: str) -> Entry:
    """The architecture ``name``; an unknown name raises with the closest suggestions.

    Raises
    ------
    UnknownNameError
        ``unknown architecture 'x' (did you mean ...?); `wafertk models` lists them``.
    """
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown architecture {name!r}{did_you_mean(name, _ARCHITECTURES, n=3)}; "
            "`wafertk models` lists them"
        ) from None


def create_model(name: str, **kwargs: Any):
    """Build the registered architecture ``name`` with ``kwargs`` (fails fast on unknown names).

    Examples
    --------
    >>> m = create_model("wafer_cnn_detector", input_shape=(16, 16, 3),
    ...                  conv_filters=(4,), dense_units=4)  # doctest: +SKIP
    """
    return get_entry(name).load()(**kwargs)


def list_models(pattern: str = "*", family: str | None = None) -> list[Entry]:
    """Registered architectures whose name matches the glob ``pattern`` (and ``family``)."""
    return sorted(
        (e for e in _ARCHITECTURES.values()
         if fnmatch.fnmatch(e.name, pattern) and (family is None or e.family == family)),
        key=lambda e: e.name,
    )


# --------------------------------------------------------------------------- loaders
def register_loader(kind: str, target: str) -> None:
    """Register ``"module:callable"`` (taking ``folder, manifest``) to load models of ``kind``."""
    _LOADERS[kind] = target


def get_loader(kind: str) -> Callable | None:
    """The loader of manifest kind ``kind``, or None for an unknown kind."""
    target = _LOADERS.get(kind)
    return None if target is None else pkgutil.resolve_name(target)


def loader_kinds() -> list[str]:
    """The manifest kinds that :func:`load_model` can load."""
    return sorted(_LOADERS)


# --------------------------------------------------------------------------- shipped models
def list_shipped(pattern: str = "*") -> list[ShippedModel]:
    """The shipped models (folders with a ``manifest.json``) matching ``pattern``, by name."""
    if not SHIPPED_DIR.is_dir():
        return []
    return [ShippedModel(p.name, p) for p in sorted(SHIPPED_DIR.iterdir())
            if (p / "manifest.json").is_file() and fnmatch.fnmatch(p.name, pattern)]


def shipped_names() -> list[str]:
    """Names of the shipped models (``classifier``, ``detector``, ``xgboost``)."""
    return [s.name for s in list_shipped()]


def _looks_like_path(s: str) -> bool:
    return (os.sep in s or "/" in s or s.startswith((".", "~"))
            or (os.altsep is not None and os.altsep in s))


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The model folder named by a shipped model's name or given as a path.

    An existing path wins over a name; a string with a path separator (or starting with
    ``.``/``~``) is a path even when it does not exist (loading then reports it missing).

    Raises
    ------
    UnknownNameError
        A bare word that is neither an existing path nor a shipped model's name
        (``unknown model 'xgbost' (did you mean 'xgboost'?); `wafertk models` lists them``).
    """
    if not isinstance(name_or_path, str):
        return Path(name_or_path)
    if Path(name_or_path).exists() or _looks_like_path(name_or_path):
        return Path(name_or_path).expanduser()
    names = shipped_names()
    if name_or_path in names:
        return SHIPPED_DIR / name_or_path
    shown = ", ".join(names) or "none installed"
    raise UnknownNameError(
        f"unknown model {name_or_path!r}: not a model folder nor a shipped model "
        f"({shown}){did_you_mean(name_or_path, names)}; `wafertk models` lists them")


def load_model(name_or_path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
    """Load a shipped model by name, or any saved model folder, as a predictor.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        ``"detector"``, ``"classifier"``, ``"xgboost"`` (see :func:`list_shipped`) or a model
        folder (``manifest.json`` + model file).
    kind : str or tuple of str, optional
        Expected manifest kind(s) (``"cnn-detector"``, ``("cnn-classifier",
        "xgboost-classifier")``); another kind is an error.

    Returns
    -------
    predictor
        Has ``manifest``, ``classes_`` and ``predict_proba(wafers) -> ndarray of shape
        (n, len(classes_))`` for a :class:`~wafertk.data.WaferSet`.

    Raises
    ------
    UnknownNameError
        Neither an existing path nor a shipped model's name (did-you-mean included).
    ModelFileError
        Missing or corrupt folder, manifest or model file, a model of the wrong kind, or a
        kind no loader is registered for.
    """
    from wafertk.models.manifest import load_manifest

    folder = resolve_model(name_or_path)
    man = load_manifest(folder, kind)
    loader = get_loader(man.kind)
    if loader is None:
        raise ModelFileError(folder, f"unknown model kind {man.kind!r} (known: "
                             f"{', '.join(loader_kinds())})")
    return loader(folder, man)


# --------------------------------------------------------------------------- built-ins
# Modules named here must not be imported by this file (no TensorFlow/XGBoost at import).
for _args in [
    ("wafer_cnn_detector", "wafer-cnn", "wafertk.models.cnn:build_wafer_cnn_detector",
     "phase-1 binary CNN, one sigmoid output (good vs defective)", "cnn-detector"),
    ("wafer_cnn_classifier", "wafer-cnn", "wafertk.models.cnn:build_wafer_cnn_classifier",
     "phase-2 multi-class CNN with die-metadata input before the dense head", "cnn-classifier"),
    ("wafer_transfer_detector", "wafer-transfer",
     "wafertk.models.transfer:build_wafer_transfer_detector",
     "phase-1 detector on a pretrained backbone (local weights, frozen, then fine-tuning)",
     "cnn-detector"),  # issue 10
    ("wafer_transfer_classifier", "wafer-transfer",
     "wafertk.models.transfer:build_wafer_transfer_classifier",
     "phase-2 classifier on a pretrained backbone + die metadata (frozen, then fine-tuning)",
     "cnn-classifier"),  # issue 10
    ("xgboost_baseline", "baseline", "wafertk.baseline.model:XGBoostWaferClassifier",
     "XGBoost on wafer-map features (default: LBP, density, Radon, geometry, metadata)",
     "xgboost-classifier"),
]:
    register_model(*_args)
for _args in [("small_convnet", "small convnet from scratch (augmentation, dropout, L2, BN)")] + [
        (_b, f"{_b} backbone (frozen, local weights) + new head, then fine-tuning")
        for _b in ("squeezenet", "vgg16", "vgg19", "mobilenet_v2", "xception", "inception_v3",
                   "inception_resnet_v2", "densenet121", "resnet50", "efficientnet_b0")]:
    register_model(f"image_{_args[0]}", "image", f"wafertk.images.models:build_{_args[0]}"
                   + ("" if _args[0] == "small_convnet" else "_transfer"), _args[1],
                   "image-classifier")  # issue 10
for _name, _cls, _summary in [
    ("vae", "VAEDetector", "convolutional VAE, score = reconstruction error (+ KL)"),
    ("ocvae", "OneClassVAEDetector", "VAE + distance of the latent mean to a moving centre"),
    ("deep_svdd", "DeepSVDDDetector", "Deep SVDD, one-class or soft-boundary (Ruff et al.)"),
    ("rotation", "TransformDetector", "self-supervised transform prediction (Golan & El-Yaniv)"),
    ("latent_hybrid", "LatentHybridDetector", "encoder latents -> IsolationForest / OC-SVM"),
    ("latent_classifier", "LatentClassifierHybrid",
     "encoder latents -> XGBoost / random forest / dense head, where labels exist"),
    ("features_knn", "FeatureKNNDetector", "wafer-map features -> kNN distance to normal"),
    ("pretrained_knn", "PretrainedKNNDetector",
     "images: pretrained backbone features (local weights) -> kNN distance to normal"),
]:
    register_model(f"anomaly_{_name}", "anomaly", f"wafertk.anomaly.estimators:{_cls}",
                   _summary, "anomaly-detector")  # issue 11
for _kind, _target in [
    ("cnn-detector", "wafertk.models.predictors:load_cnn_predictor"),
    ("cnn-classifier", "wafertk.models.predictors:load_cnn_predictor"),
    ("xgboost-classifier", "wafertk.baseline.model:XGBoostWaferClassifier.load"),
    ("ensemble-classifier", "wafertk.models.ensemble:load_ensemble"),
    ("ensemble-detector", "wafertk.models.ensemble:load_ensemble"),
    ("anomaly-detector", "wafertk.anomaly.estimators:load_detector"),  # issue 11
    ("image-classifier", "wafertk.images.predict:load_image_predictor"),  # issue 10
]:
    register_loader(_kind, _target)
del _args, _kind, _target
