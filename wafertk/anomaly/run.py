"""Anomaly runs on files: train into a run folder, score a file, the function phase 1 calls.

* :func:`read_data`: a ``wafers.h5``, an image folder or an ``.npy`` array -> training and
  validation samples (lot-disjoint for wafers);
* :func:`train_run`: what ``wafertk anomaly train`` does;
* :func:`score_file`: anomaly scores of every wafer (or image) of a file as a DataFrame, for
  ``wafertk anomaly score`` and for ``wafertk detect --unsupervised``;
* :func:`score_run`: what ``wafertk anomaly score`` writes (``scores.csv``, ``report/``).

A run folder (written atomically) holds ``model.keras`` and ``manifest.json`` (kind
``anomaly-detector``), ``config.yaml`` (the resolved config), ``history.csv`` (per epoch: the
total loss, each loss term, each term's gradient norm on the last shared layer, validation
figures) and, with validation data, ``validation.csv`` and, with validation labels,
``report/`` (ROC/PR curves, threshold sweep), ``latent_pca.png`` and ``latent_moments.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.anomaly.config import AnomalyConfig
from wafertk.anomaly.data import ImageSet, read_array_file, read_image_folder
from wafertk.config import save_config, to_dict
from wafertk.data.waferset import WaferSet
from wafertk.errors import WaferFileError, WafertkError

log = logging.getLogger(__name__)

#: The normal class of wafer files when the config names none.
WAFER_NORMAL_CLASS = "none"


@dataclass
class RunData:
    """Training and validation samples of a run.

    Attributes
    ----------
    kind : {"wafers", "images"}
    train : WaferSet or ndarray
        What the detector is fitted on.
    val : WaferSet or ndarray or None
    y_val : ndarray of bool or None
        Validation labels (True = anomalous) where known.
    val_ids, val_labels : ndarray of str
        Wafer ids (or files) and class names of the validation samples.
    info : dict
        Counts, the normal class, the source.
    """

    kind: str
    train: Any
    val: Any = None
    y_val: np.ndarray | None = None
    val_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    val_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    info: dict[str, Any] = field(default_factory=dict)


def _split_groups(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Validation mask: a seeded random ``fraction`` of the distinct groups (lots)."""
    names = np.unique(groups)
    if len(names) < 2:
        return np.zeros(len(groups), bool)
    k = min(max(1, int(round(fraction * len(names)))), len(names) - 1)
    val = names[np.random.default_rng(seed).permutation(len(names))[:k]]
    return np.isin(groups, val)


def _subset(n: int, max_n: int | None, seed: int) -> np.ndarray:
    if max_n is None or n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_n, replace=False))


def read_source(path: str | os.PathLike, *, image_size: int | None = None
                ) -> WaferSet | ImageSet:
    """A ``wafers.h5`` (WaferSet), an image folder or an ``.npy`` array (ImageSet)."""
    from wafertk.data.h5 import read_wafers

    p = Path(path)
    if p.is_dir():
        return read_image_folder(p, size=image_size)
    if not p.exists():
        raise WaferFileError(p, "no such file or folder")
    if p.suffix.lower() == ".npy":
        return read_array_file(p)
    return read_wafers(p)


def read_data(path: str | os.PathLike, cfg: AnomalyConfig) -> RunData:
    """Training and validation samples of ``path`` as ``cfg.data`` says.

    Wafers: the normal class is ``cfg.data.normal_class`` (default ``none``). Where labels
    exist and ``train_on`` is ``normal``, training uses the normal wafers of the training
    lots; an unlabeled file (or ``train_on: all``) trains on every wafer of those lots.
    Validation: the other lots (``validation_fraction`` of them, ``split_seed``), every wafer,
    labelled anomalous where its label is not the normal class. Images: the same, split per
    image; classes are sub-folders.

    Raises
    ------
    WaferFileError
        Naming ``path``: no normal sample, fewer than 2 training samples, an unknown normal
        class, bad values.
    """
    d = cfg.data
    src = read_source(path, image_size=d.image_size)
    p = Path(path)
    if isinstance(src, WaferSet):
        kind = "wafers"
        labels = src.label_strings().astype(str)
        groups = src.lot.astype(str)
        if (groups == "").all():
            groups = src.wafer_id.astype(str)
        ids = src.wafer_id.astype(str)
        normal = d.normal_class or WAFER_NORMAL_CLASS
        labelled = bool((labels != "").any())
        if labelled and normal not in src.class_names:
            raise WaferFileError(p, f"unknown normal class {normal!r} (classes: "
                                 f"{', '.join(src.class_names)})")
    else:
        kind = "images"
        labels = src.labels.astype(str)
        groups = src.files.astype(str)
        ids = src.files.astype(str)
        normal = d.normal_class
        labelled = normal is not None
        if normal is not None and normal not in set(labels.tolist()):
            raise WaferFileError(p, f"no images of the normal class {normal!r} (sub-folders: "
                                 f"{', '.join(sorted(set(labels.tolist()) - {''})) or 'none'})")
    known = labels != ""
    is_anomalous = known & (labels != normal) if labelled else np.zeros(len(labels), bool)
    if labelled and not (known & ~is_anomalous).any():
        raise WaferFileError(p, f"no normal samples (class {normal!r}) to train on")
    val_mask = _split_groups(groups, d.validation_fraction, d.split_seed)
    use = ~val_mask
    if labelled and d.train_on == "normal":
        use &= known & ~is_anomalous
    train_idx = np.flatnonzero(use)
    train_idx = train_idx[_subset(len(train_idx), d.max_train, d.split_seed)]
    if len(train_idx) < 2:
        raise WaferFileError(p, f"{len(train_idx)} training sample(s) after the validation "
                             "split: anomaly detectors need at least 2")
    val_idx = np.flatnonzero(val_mask)
    take = (lambda idx: src.take(idx)) if kind == "wafers" else (lambda idx: src.x[idx])
    y_val = None
    if labelled and len(val_idx):
        val_idx = val_idx[known[val_idx]]
        y_val = is_anomalous[val_idx]
    info = {"source": os.fspath(path), "kind": kind, "samples": int(len(labels)),
            "train": int(len(train_idx)), "validation": int(len(val_idx)),
            "validation_anomalous": None if y_val is None else int(y_val.sum()),
            "normal_class": normal, "train_on": "normal" if labelled and d.train_on ==
            "normal" else "all", "validation_groups": int(len(np.unique(groups[val_idx])))}
    return RunData(kind, take(train_idx), take(val_idx) if len(val_idx) else None, y_val,
                   ids[val_idx], labels[val_idx], info)


def _write_history(hist: dict[str, list[float]], path: Path) -> None:
    import pandas as pd

    n = max((len(v) for v in hist.values()), default=0)
    cols = {k: list(v) + [float("nan")] * (n - len(v)) for k, v in hist.items()}
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1), **cols})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def train_run(data_path: str | os.PathLike, out_dir: str | os.PathLike, cfg: AnomalyConfig, *,
              on_epoch: Callable[[str], None] | None = None) -> Path:
    """Train the detector ``cfg`` describes on ``data_path`` and write the run folder.

    Parameters
    ----------
    data_path : str or os.PathLike
        A ``wafers.h5``, an image folder or an ``.npy`` array.
    out_dir : str or os.PathLike
        The run folder (written atomically, replaced if it exists).
    cfg : AnomalyConfig
    on_epoch : callable, optional
        Called with one line per epoch.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    WaferFileError
        Bad data (see :func:`read_data`); a training problem is reported naming the data.
    """
    from wafertk.anomaly.config import estimator_from_config
    from wafertk.anomaly.evaluation import (
        anomaly_metrics,
        latent_moments,
        plot_latent,
        threshold_sweep,
    )

    t0 = time.perf_counter()
    data = read_data(data_path, cfg)
    est = estimator_from_config(cfg)
    try:
        est.fit(data.train, X_val=data.val, y_val=data.y_val, on_epoch=on_epoch)
    except WaferFileError:
        raise
    except WafertkError as exc:
        raise WaferFileError(data_path, str(exc)) from None
    figures: dict[str, Any] = {}
    with atomic_path(out_dir, directory=True) as tmp:
        save_config(cfg, tmp / "config.yaml")
        _write_history(est.history_, tmp / "history.csv")
        if data.val is not None:
            import pandas as pd

            s = est.score_samples(data.val)
            frame = pd.DataFrame({"id": data.val_ids, "label": data.val_labels,
                                  "anomaly_score": s,
                                  "anomalous": (s >= est.threshold_).astype(int)})
            with atomic_path(tmp / "validation.csv") as f:
                frame.to_csv(f, index=False)
            y = data.y_val
            if y is not None and y.any() and not y.all():
                from wafertk.evaluate import write_evaluation_report

                m = anomaly_metrics(y, s, est.threshold_)
                sweep = threshold_sweep(y, s, chosen=est.threshold_)
                z = est.transform(data.val)
                moments = latent_moments(z, data.val_labels)
                plot_latent(z, data.val_labels, tmp / "latent_pca.png",
                            title=f"{est.name} latent means, validation")
                with atomic_path(tmp / "latent_moments.json") as f:
                    f.write_text(json.dumps(moments, indent=2) + "\n")
                write_evaluation_report(tmp / "report", title=f"{est.name}: validation",
                                        binary=m, extra={"threshold_sweep": sweep})
                figures = {k: m[k] for k in ("n", "n_positive", "roc_auc", "pr_auc",
                                             "recall", "precision", "f1", "flagged")}
            figures["normal_score_mean"] = float(
                s[~y].mean() if y is not None and (~y).any() else s.mean())
        extra = {"validation": figures, "data": data.info, "config": to_dict(cfg),
                 "training": {"epochs": int(cfg.train.epochs),
                              "fit_seconds": round(est.fit_seconds_, 1),
                              "total_seconds": round(time.perf_counter() - t0, 1),
                              "params": int(est.model_.count_params())
                              if hasattr(est, "model_") else 0}}
        est.save(tmp, extra=extra)
    return Path(out_dir)


def load_run(run: str | os.PathLike):
    """The fitted detector of a run folder (:func:`wafertk.registry.load_model`, kind
    ``anomaly-detector``)."""
    from wafertk.anomaly import ANOMALY_KIND
    from wafertk.registry import load_model

    return load_model(run, kind=ANOMALY_KIND)


def score_file(run, data_path: str | os.PathLike, *, batch_size: int = 4096):
    """Anomaly scores of every wafer (or image) of a file.

    Parameters
    ----------
    run : str or os.PathLike or fitted detector
        A run folder of ``wafertk anomaly train`` (or a loaded detector).
    data_path : str or os.PathLike
        ``wafers.h5`` for a wafer model (streamed in batches of ``batch_size``); an image
        folder or ``.npy`` for an image model.
    batch_size : int, default 4096

    Returns
    -------
    pandas.DataFrame
        Wafers: ``wafer_id, lot, wafer_index, anomaly_score, anomalous`` (+ ``label`` when
        the file is labelled); images: ``file, anomaly_score, anomalous`` (+ ``label``).
        ``anomalous`` is 1 where the score reaches the model's threshold. Input order.

    Raises
    ------
    ModelFileError
        Not an anomaly run folder (wrong kind, corrupt).
    WaferFileError
        A data file of the wrong kind for the model or with bad values.
    """
    import pandas as pd

    from wafertk.data.h5 import iter_wafers

    est = load_run(run) if isinstance(run, (str, os.PathLike)) else run
    p = Path(data_path)
    if est.input_kind_ == "wafers":
        if p.is_dir() or p.suffix.lower() == ".npy":
            raise WaferFileError(p, "the model scores wafer maps: give a wafers.h5 file")
        parts = []
        for batch in iter_wafers(p, batch_size):
            s = est.score_samples(batch)
            part = {"wafer_id": batch.wafer_id.astype(str), "lot": batch.lot.astype(str),
                    "wafer_index": batch.wafer_index, "anomaly_score": s,
                    "anomalous": (s >= est.threshold_).astype(np.int64)}
            if batch.labels is not None:
                part["label"] = batch.label_strings().astype(str)
            parts.append(pd.DataFrame(part))
        cols = ["wafer_id", "lot", "wafer_index", "anomaly_score", "anomalous"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    size = est.input_shape_[0]
    src = read_source(p, image_size=size)
    if isinstance(src, WaferSet):
        raise WaferFileError(p, "the model scores images: give an image folder or .npy")
    try:
        s = est.score_samples(src.x)
    except WafertkError as exc:
        raise WaferFileError(p, str(exc)) from None
    out = pd.DataFrame({"file": src.files.astype(str), "anomaly_score": s,
                        "anomalous": (s >= est.threshold_).astype(np.int64)})
    if src.has_labels:
        out["label"] = src.labels.astype(str)
    return out


def score_run(run: str | os.PathLike, data_path: str | os.PathLike,
              out_dir: str | os.PathLike, *, batch_size: int = 4096) -> dict[str, Any]:
    """Score a file with a run's detector into ``out_dir`` (written atomically).

    Writes ``scores.csv`` (:func:`score_file`'s columns) and, when the file is labelled with
    both normal and anomalous samples (normal = the run's normal class), ``report/`` (ROC-AUC,
    PR-AUC, confusion at the model's threshold, the threshold sweep).

    Returns
    -------
    dict
        ``n``, ``anomalous`` (count), ``threshold``, and ``roc_auc``/``pr_auc`` with labels.
    """
    from wafertk.anomaly.evaluation import anomaly_metrics, threshold_sweep

    est = load_run(run)
    frame = score_file(est, data_path, batch_size=batch_size)
    out: dict[str, Any] = {"n": int(len(frame)), "anomalous": int(frame["anomalous"].sum()),
                           "threshold": float(est.threshold_)}
    normal = est.manifest.extra.get("data", {}).get("normal_class") or (
        WAFER_NORMAL_CLASS if est.input_kind_ == "wafers" else None)
    with atomic_path(out_dir, directory=True) as tmp:
        with atomic_path(tmp / "scores.csv") as f:
            frame.to_csv(f, index=False)
        if "label" in frame and normal is not None:
            lab = frame["label"].to_numpy().astype(str)
            known = lab != ""
            y = lab[known] != normal
            if y.any() and not y.all():
                from wafertk.evaluate import write_evaluation_report

                s = frame["anomaly_score"].to_numpy()[known]
                m = anomaly_metrics(y, s, est.threshold_)
                write_evaluation_report(
                    tmp / "report", title=f"anomaly scores ({est.name}) of {Path(data_path).name}",
                    binary=m, extra={"threshold_sweep": threshold_sweep(y, s,
                                                                        chosen=est.threshold_),
                                     "normal_class": normal})
                out.update(roc_auc=m["roc_auc"], pr_auc=m["pr_auc"])
    return out
