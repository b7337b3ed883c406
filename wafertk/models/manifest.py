"""The JSON manifest saved beside every model, and loading any saved model by its kind.

A saved model is a folder holding the model file (``model.keras`` or ``model.json`` for
XGBoost) and ``manifest.json``::

    {"format": "wafertk-model/1", "kind": "xgboost-classifier", "model_file": "model.json",
     "classes": [...], "input_size": 64 or null, "preprocessing": {...},
     "versions": {"wafertk": ..., "tensorflow": ..., ...}, "created": ISO time, ...}

Loading checks the manifest (format, kind, files present) before touching the model file, so a
wrong or corrupt model gives one clear error.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from wafertk._atomic import atomic_path
from wafertk.errors import ModelFileError

MANIFEST_NAME = "manifest.json"
FORMAT = "wafertk-model/1"
#: Kinds of the phase-1 detectors (``classes: ["good", "defective"]``, a threshold).
DETECTOR_KINDS = ("cnn-detector", "ensemble-detector")
#: The classes of every detector, in output order.
DETECTOR_CLASSES = ["good", "defective"]


@dataclass
class Manifest:
    """What a saved model is and how to feed it.

    Attributes
    ----------
    kind : str
        ``"xgboost-classifier"``, ``"cnn-detector"``, ``"cnn-classifier"``, ...
    model_file : str
        File name of the model inside the folder.
    classes : list of str
        Output classes in output order (a detector: ``["good", "defective"]``).
    input_size : int or None
        Side of the square input grid (CNNs), None for native-size feature models.
    preprocessing : dict
        Everything needed to turn a WaferSet into model input (feature sets, channels, ...).
    extra : dict
        Kind-specific values (decision threshold, temperature, validation figures, ...).
    versions : dict
        Package versions at save time.
    created : str
        ISO time of saving.
    format : str
        Manifest format tag, ``"wafertk-model/1"``.
    """

    kind: str
    model_file: str
    classes: list[str]
    input_size: int | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of wafertk, Python and the named packages (missing ones skipped)."""
    from wafertk import __version__

    out = {"wafertk": __version__, "python": platform.python_version()}
    for n in ("numpy", *names):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder`` atomically (versions and time filled if empty)."""
    folder = Path(folder)
    if not manifest.versions:
        manifest.versions = package_versions()
    if not manifest.created:
        manifest.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = folder / MANIFEST_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return path


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def manifest_problems(man: Manifest) -> list[str]:
    """What is wrong with the values of a manifest (empty list: nothing).

    Checks the types of every field and the values the predictors use: ``input_size`` a
    positive integer or null, ``classes`` a non-empty list of distinct strings, and in
    ``extra`` a ``threshold``/``review_below`` in [0, 1] and a ``temperature`` > 0.
    """
    bad: list[str] = []

    def want(ok: bool, key: str, what: str, value: Any) -> None:
        if not ok:
            bad.append(f"{key} must be {what}, got {value!r}")

    for key in ("kind", "model_file", "created", "format"):
        want(isinstance(getattr(man, key), str), key, "a string", getattr(man, key))
    if isinstance(man.model_file, str):
        want(bool(man.model_file) and Path(man.model_file).name == man.model_file,
             "model_file", "a file name inside the folder", man.model_file)
    cls = man.classes
    want(isinstance(cls, list) and bool(cls) and all(isinstance(c, str) for c in cls)
         and len(set(cls)) == len(cls), "classes", "a non-empty list of distinct strings", cls)
    size = man.input_size
    want(size is None or (isinstance(size, int) and not isinstance(size, bool) and size > 0),
         "input_size", "a positive integer or null", size)
    for key in ("preprocessing", "extra", "versions"):
        want(isinstance(getattr(man, key), dict), key, "a mapping", getattr(man, key))
    extra = man.extra if isinstance(man.extra, dict) else {}
    for key in ("threshold", "review_below"):
        v = extra.get(key)
        want(v is None or (_is_number(v) and 0 <= v <= 1), f"extra.{key}",
             "a number in [0, 1]", v)
    t = extra.get("temperature")
    want(t is None or (_is_number(t) and t > 0), "extra.temperature", "a number > 0", t)
    return bad


def load_manifest(folder: str | os.PathLike, kind: str | tuple[str, ...] | None = None
                  ) -> Manifest:
    """Read and check a model folder's manifest.

    Parameters
    ----------
    folder : str or os.PathLike
        The model folder (or its ``manifest.json``).
    kind : str or tuple of str, optional
        Expected kind(s); another kind is an error.

    Raises
    ------
    ModelFileError
        Missing folder/manifest, invalid JSON, unknown format, values of the wrong type or
        out of range (:func:`manifest_problems`; the error names ``manifest.json``), wrong
        kind, missing model file.
    """
    folder = Path(folder)
    if folder.name == MANIFEST_NAME:
        folder = folder.parent
    if not folder.exists():
        raise ModelFileError(folder, "no such model")
    if not folder.is_dir():
        raise ModelFileError(folder, "not a model folder (expected a folder with manifest.json)")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelFileError(folder, "not a wafertk model: no manifest.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(path, "corrupt manifest (not valid JSON)") from None
    if not isinstance(data, dict):
        raise ModelFileError(path, "corrupt manifest (not a JSON object)")
    if data.get("format") != FORMAT:
        raise ModelFileError(path, f"unknown manifest format {data.get('format')!r}")
    try:
        man = Manifest(**data)
    except TypeError:
        raise ModelFileError(path, "corrupt manifest (unexpected or missing fields)") from None
    problems = manifest_problems(man)
    if problems:
        raise ModelFileError(path, "invalid manifest: " + "; ".join(problems))
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and man.kind not in kinds:
        raise ModelFileError(
            folder, f"model of the wrong kind: {man.kind!r}, expected {' or '.join(kinds)}"
        )
    if not (folder / man.model_file).is_file():
        raise ModelFileError(folder, f"model file {man.model_file!r} is missing")
    return man


def register_loader(kind: str, target: str) -> None:
    """Register ``"module:callable"`` to load models of ``kind``.

    Kept for compatibility: see :func:`wafertk.registry.register_loader`.
    """
    from wafertk.registry import register_loader as register

    register(kind, target)


def load_predictor(folder: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
    """Load any saved wafertk model as a predictor: :func:`wafertk.registry.load_model`.

    ``folder`` may also be a shipped model's name (``"detector"``, ``"xgboost"``, ...). Every
    predictor has ``manifest``, ``classes_`` and ``predict_proba(wafers) -> ndarray of shape
    (n, n_outputs)`` for a :class:`~wafertk.data.WaferSet`.

    Raises
    ------
    ModelFileError
        See :func:`load_manifest`; also for an unknown kind or an unreadable model file.
    """
    from wafertk.registry import load_model

    return load_model(folder, kind)
