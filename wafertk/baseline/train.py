"""``wafertk train xgboost``: lot-disjoint split, training, evaluation report, atomic run folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from wafertk.data.waferset import DEFECT_CLASSES, WM811K_CLASSES, WaferSet
from wafertk.errors import WafertkError

log = logging.getLogger(__name__)


@dataclass
class XGBoostTrainConfig:
    """Configuration of ``wafertk train xgboost`` (YAML: ``configs/xgboost.yaml``).

    Attributes
    ----------
    classes : "defects" or "all"
        Train on the 8 defect patterns (phase 2 of the two-phase pipeline) or all 9 classes.
    feature_sets : list of str
        Feature sets (:data:`wafertk.features.FEATURE_SETS`).
    feature_params : dict
        Constructor keywords per feature set.
    val_fraction : float
        Share of the lots held out for validation (early stopping and the report).
    seed : int
        Seed of the split and of XGBoost.
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight,
    reg_lambda, early_stopping_rounds, class_weight, n_jobs
        :class:`~wafertk.baseline.XGBoostWaferClassifier` parameters.
    """

    classes: Literal["defects", "all"] = "defects"
    feature_sets: list[str] = field(default_factory=lambda: [
        "filters", "density", "radon", "geometry", "meta"])
    feature_params: dict = field(default_factory=dict)
    val_fraction: float = 0.2
    seed: int = 0
    n_estimators: int = 600
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.9
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int | None = 40
    class_weight: Literal["balanced"] | None = "balanced"
    n_jobs: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be at least 1, got {self.n_estimators}")

    def class_list(self) -> list[str]:
        """The class names of ``classes``."""
        return list(DEFECT_CLASSES if self.classes == "defects" else WM811K_CLASSES)

    def make_classifier(self):
        """An unfitted :class:`~wafertk.baseline.XGBoostWaferClassifier` for this config."""
        from wafertk.baseline.model import XGBoostWaferClassifier

        return XGBoostWaferClassifier(
            feature_sets=list(self.feature_sets), feature_params=dict(self.feature_params) or None,
            classes=self.class_list(), n_estimators=self.n_estimators,
            max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight, reg_lambda=self.reg_lambda,
            early_stopping_rounds=self.early_stopping_rounds, class_weight=self.class_weight,
            n_jobs=self.n_jobs, random_state=self.seed)


def split_for_training(ws: WaferSet, cfg: XGBoostTrainConfig) -> tuple[WaferSet, WaferSet]:
    """Lot-disjoint training/validation wafers of the config's classes.

    The split is :func:`wafertk.data.splits.validation_split` over all labeled wafers (so the
    validation lots are those of the shipped CNNs trained on the same file), restricted to
    the config's classes afterwards.

    Returns
    -------
    (WaferSet, WaferSet)
        Training and validation wafers; no lot is in both.
    """
    from wafertk.data.splits import validation_split

    labels = ws.label_strings().astype(str)
    keep = np.isin(labels, cfg.class_list())
    if keep.sum() < 2:
        raise WafertkError(f"only {int(keep.sum())} labeled wafers of the classes "
                           f"{', '.join(cfg.class_list())}: nothing to train on")
    labeled = ws.take(ws.labeled_mask())
    split = validation_split(labeled, cfg.val_fraction, cfg.seed)
    keep = np.isin(labeled.label_strings().astype(str), cfg.class_list())
    return labeled.take(split.train[keep[split.train]]), labeled.take(split.val[keep[split.val]])


def train_xgboost(ws: WaferSet, out: str | os.PathLike, cfg: XGBoostTrainConfig, *,
                  data_path: str | None = None) -> Path:
    """Train the XGBoost baseline and write the run folder atomically.

    The lot-disjoint, class-stratified validation split is made first, on the labeled wafers
    of the chosen classes; features are extracted after it. The run folder holds
    ``model.json`` + ``manifest.json`` (a loadable model), the resolved ``config.yaml``, and
    the validation evaluation report (``report.json``, ``report.md``, ``report.html``,
    confusion-matrix PNGs).

    Parameters
    ----------
    ws : WaferSet
        Labeled wafers (others are ignored).
    out : str or os.PathLike
        Run folder, replaced only when everything is written.
    cfg : XGBoostTrainConfig
    data_path : str, optional
        Recorded in the report.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    from wafertk._atomic import atomic_path
    from wafertk.config import save_config, to_dict
    from wafertk.evaluate import classification_metrics, write_evaluation_report

    train, val = split_for_training(ws, cfg)
    log.info("split: %d training, %d validation wafers (lot-disjoint)", len(train), len(val))
    clf = cfg.make_classifier()
    t0 = time.perf_counter()
    X = clf.transform_features(train)
    Xv = clf.transform_features(val)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf.fit_features(X, train.label_strings(), eval_set=(Xv, val.label_strings()),
                     classes=cfg.class_list())
    t_fit = time.perf_counter() - t0
    proba = clf.predict_proba_features(Xv)
    y_pred = np.asarray(clf.classes_, dtype=object)[proba.argmax(axis=1)]
    metrics = classification_metrics(val.label_strings().astype(str), y_pred,
                                     list(clf.classes_), proba=proba)
    extra = {
        "data": str(Path(data_path).name) if data_path else None,
        "split": "validation_split: lot-disjoint, stratified over all labeled wafers",
        "seed": cfg.seed, "n_train": len(train), "n_validation": len(val),
        "train_lots": int(len(np.unique(train.lot))), "validation_lots":
        int(len(np.unique(val.lot))), "best_iteration": clf.best_iteration_,
        "feature_seconds": round(t_feat, 2), "fit_seconds": round(t_fit, 2),
        "n_features": len(clf.feature_names_),
    }
    summary = {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    with atomic_path(out, directory=True) as tmp:
        clf.save(tmp, extra={"validation": summary, "config": to_dict(cfg),
                             "n_train": len(train), "n_validation": len(val),
                             "split": {"function": "validation_split",
                                       "val_fraction": cfg.val_fraction, "seed": cfg.seed}})
        save_config(cfg, tmp / "config.yaml")
        write_evaluation_report(tmp, title="XGBoost baseline: lot-disjoint validation split",
                                metrics=metrics, extra=extra)
    log.info("validation accuracy %.4f, macro-F1 %.4f", metrics["accuracy"],
             metrics["macro_f1"])
    return Path(out)
