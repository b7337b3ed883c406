"""One registry of wafertk models: names -> builders/loaders, listed by the CLI, named by configs.

Entries are registered by import path strings so that listing the registry imports nothing
heavy (no TensorFlow, no XGBoost) until an entry is used.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from wafertk.errors import UnknownNameError, did_you_mean


@dataclass(frozen=True)
class Entry:
    """A registered model: its name, family, target (``"module:attr"``) and a one-line summary."""

    name: str
    family: str
    target: str
    summary: str

    def load(self) -> Callable:
        """Import and return the registered object."""
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


_REGISTRY: dict[str, Entry] = {}


def register_model(name: str, family: str, target: str, summary: str = "") -> None:
    """Register ``target`` (``"package.module:callable"``) under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is already registered with another target.
    """
    old = _REGISTRY.get(name)
    if old is not None and old.target != target:
        raise ValueError(f"model name {name!r} already registered for {old.target}")
    _REGISTRY[name] = Entry(name, family, target, summary)


def get_entry(name: str) -> Entry:
    """The entry for ``name``; an unknown name raises with the closest suggestions."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown model {name!r}{did_you_mean(name, _REGISTRY, n=3)}; "
            "`wafertk models` lists them"
        ) from None


def create_model(name: str, **kwargs):
    """Build the registered model ``name`` with ``kwargs`` (fails fast on unknown names)."""
    return get_entry(name).load()(**kwargs)


def list_models(pattern: str = "*", family: str | None = None) -> list[Entry]:
    """Registered entries whose name matches the glob ``pattern`` (and ``family``), sorted."""
    return sorted(
        (e for e in _REGISTRY.values()
         if fnmatch.fnmatch(e.name, pattern) and (family is None or e.family == family)),
        key=lambda e: e.name,
    )


# Built-in entries. Modules listed here must not be imported by this file.
_BUILTIN = [
    ("wafer_cnn_detector", "wafer-cnn", "wafertk.models.cnn:build_wafer_cnn_detector",
     "phase-1 binary CNN, one sigmoid output (good vs defective)"),
    ("wafer_cnn_classifier", "wafer-cnn", "wafertk.models.cnn:build_wafer_cnn_classifier",
     "phase-2 multi-class CNN with die-metadata input before the dense head"),
    ("xgboost_baseline", "baseline", "wafertk.baseline:XGBoostWaferClassifier",
     "XGBoost on wafer-map features (default: LBP, density, Radon, geometry, metadata)"),
]
for _args in _BUILTIN:
    register_model(*_args)
