"""``wafertk train xgboost``: lot-disjoint split, training, evaluation report, atomic run folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from wafertk.config import in_range
from wafertk.data.waferset import DEFECT_CLASSES, WM811K_CLASSES, WaferSet
from wafertk.errors import WaferFileError, WafertkError
from wafertk.models.manifest import DETECTOR_CLASSES

log = logging.getLogger(__name__)

_FRACTION = {"check": in_range(0, 1, lo_open=True, hi_open=True)}
_FRACTION_1 = {"check": in_range(0, 1, lo_open=True)}
_AT_LEAST_1 = {"check": in_range(1)}


@dataclass
class XGBoostTrainConfig:
    """Configuration of ``wafertk train xgboost`` (the packaged ``xgboost`` config).

    Values are checked on loading (:func:`wafertk.config.load_config`): fractions in (0, 1)
    or (0, 1], counts >= 1, rates > 0.

    Attributes
    ----------
    classes : "defects", "all" or "binary"
        Train on the 8 defect patterns (phase 2 of the two-phase pipeline), all 9 classes, or
        ``good`` (label ``none``) vs ``defective`` (any pattern): a phase-1 detector, e.g. a
        member of an ensemble detector (:mod:`wafertk.models.ensemble`).
    feature_sets : list of str
        Feature sets (:data:`wafertk.features.FEATURE_SETS`).
    feature_params : dict
        Constructor keywords per feature set.
    val_fraction : float
        Share of the lots held out for validation (early stopping and the report).
    split_seed : int or None
        Seed of the lot-disjoint validation split; None (the default): ``seed``. With the
        same ``val_fraction`` and training file, the same seed as the CNNs'
        ``data.split_seed`` gives the same validation lots (the packaged configs set 0, the
        shipped CNNs' split). Set it to compare model seeds on the same validation lots.
    seed : int
        Seed of XGBoost (its ``random_state``), and of the split when ``split_seed`` is
        None.
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight,
    reg_lambda, early_stopping_rounds, class_weight, n_jobs
        :class:`~wafertk.baseline.XGBoostWaferClassifier` parameters.
    """

    classes: Literal["defects", "all", "binary"] = "defects"
    feature_sets: list[str] = field(default_factory=lambda: [
        "filters", "density", "radon", "geometry", "meta"])
    feature_params: dict = field(default_factory=dict)
    val_fraction: float = field(default=0.2, metadata=_FRACTION)
    split_seed: int | None = field(default=None, metadata={"check": in_range(0)})
    seed: int = field(default=0, metadata={"check": in_range(0)})
    n_estimators: int = field(default=600, metadata=_AT_LEAST_1)
    max_depth: int = field(default=6, metadata=_AT_LEAST_1)
    learning_rate: float = field(default=0.1, metadata={"check": in_range(0, lo_open=True)})
    subsample: float = field(default=0.9, metadata=_FRACTION_1)
    colsample_bytree: float = field(default=0.8, metadata=_FRACTION_1)
    min_child_weight: float = field(default=1.0, metadata={"check": in_range(0)})
    reg_lambda: float = field(default=1.0, metadata={"check": in_range(0)})
    early_stopping_rounds: int | None = field(default=40, metadata=_AT_LEAST_1)
    class_weight: Literal["balanced"] | None = "balanced"
    n_jobs: int = 2

    @property
    def resolved_split_seed(self) -> int:
        """The seed of the validation split: ``split_seed``, or ``seed`` when it is None."""
        return self.seed if self.split_seed is None else self.split_seed

    def config_problems(self) -> list[tuple[str, str]]:
        """Checks across values: known feature sets, parameters only for used sets."""
        from wafertk.errors import did_you_mean
        from wafertk.features.extract import FEATURE_SETS

        out = []
        bad = [s for s in self.feature_sets if s not in FEATURE_SETS]
        if bad:
            out.append(("feature_sets", f"unknown feature set {bad[0]!r}"
                        f"{did_you_mean(bad[0], FEATURE_SETS)}; known: {', '.join(FEATURE_SETS)}"))
        elif not self.feature_sets:
            out.append(("feature_sets", "no feature set"))
        unused = [k for k in self.feature_params if k not in self.feature_sets]
        if unused:
            out.append(("feature_params", f"parameters for {unused[0]!r}, which is not in "
                        "feature_sets"))
        return out

    def class_list(self) -> list[str]:
        """The class names of ``classes``."""
        if self.classes == "binary":
            return list(DETECTOR_CLASSES)
        return list(DEFECT_CLASSES if self.classes == "defects" else WM811K_CLASSES)

    def target_labels(self, labels) -> np.ndarray:
        """The training targets of WM-811K labels: the labels themselves, or with ``classes:
        binary`` ``good`` for ``none`` and ``defective`` for any other non-empty label
        (unlabeled wafers stay ``""``)."""
        labels = np.asarray(labels).astype(str)
        if self.classes != "binary":
            return labels
        good, defective = DETECTOR_CLASSES
        return np.where(labels == "", "", np.where(labels == "none", good, defective)
                        ).astype(str)

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


def data_error(data_path: str | os.PathLike | None, problem: str) -> WafertkError:
    """The error for unusable training data: naming the file when it is known."""
    return WaferFileError(data_path, problem) if data_path else WafertkError(problem)


def split_for_training(ws: WaferSet, cfg: XGBoostTrainConfig, *,
                       data_path: str | os.PathLike | None = None
                       ) -> tuple[WaferSet, WaferSet]:
    """Lot-disjoint training/validation wafers of the config's classes.

    The split is :func:`wafertk.data.splits.validation_split` over all labeled wafers (so the
    validation lots are those of the shipped CNNs trained on the same file), restricted to
    the config's classes afterwards.

    Parameters
    ----------
    ws : WaferSet
    cfg : XGBoostTrainConfig
    data_path : str or os.PathLike, optional
        The file ``ws`` was read from: errors about the data name it.

    Returns
    -------
    (WaferSet, WaferSet)
        Training and validation wafers; no lot is in both.

    Raises
    ------
    WafertkError
        (:class:`~wafertk.errors.WaferFileError` naming ``data_path`` when given) no labels,
        fewer than two of the config's classes, or an empty training or validation part.
    """
    from wafertk.data.splits import validation_split

    if not ws.has_labels or not ws.labeled_mask().any():
        raise data_error(data_path, "no labeled wafers to train on")
    labels = cfg.target_labels(ws.label_strings())
    present = sorted(set(labels[np.isin(labels, cfg.class_list())].tolist()))
    if len(present) < 2:
        raise data_error(data_path, f"needs labeled wafers of at least two of the classes "
                         f"{', '.join(cfg.class_list())} to train, found "
                         f"{', '.join(present) or 'none'}")
    labeled = ws.take(ws.labeled_mask())
    split = validation_split(labeled, cfg.val_fraction, cfg.resolved_split_seed)
    keep = np.isin(cfg.target_labels(labeled.label_strings()), cfg.class_list())
    tr, va = split.train[keep[split.train]], split.val[keep[split.val]]
    if len(tr) == 0 or len(va) == 0:
        raise data_error(data_path, f"too few labeled lots for a lot-disjoint split "
                         f"({len(tr)} training, {len(va)} validation wafers)")
    return labeled.take(tr), labeled.take(va)


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
        Recorded in the report; errors about the data name it.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    train, val = split_for_training(ws, cfg, data_path=data_path)
    log.info("split: %d training, %d validation wafers (lot-disjoint)", len(train), len(val))
    clf = cfg.make_classifier()
    t0 = time.perf_counter()
    X = clf.transform_features(train)
    Xv = clf.transform_features(val)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    y, y_val = cfg.target_labels(train.label_strings()), cfg.target_labels(val.label_strings())
    clf.fit_features(X, y, eval_set=(Xv, y_val), classes=cfg.class_list())
    t_fit = time.perf_counter() - t0
    proba = clf.predict_proba_features(Xv)
    metrics = write_run(out, clf, cfg, proba, y_val, extra={
        "data": str(Path(data_path).name) if data_path else None,
        "split": "validation_split: lot-disjoint, stratified over all labeled wafers",
        "seed": cfg.seed, "split_seed": cfg.resolved_split_seed, "n_train": len(train),
        "n_validation": len(val),
        "train_lots": int(len(np.unique(train.lot))), "validation_lots":
        int(len(np.unique(val.lot))), "best_iteration": clf.best_iteration_,
        "feature_seconds": round(t_feat, 2), "fit_seconds": round(t_fit, 2),
        "n_features": len(clf.feature_names_),
    })
    log.info("validation accuracy %.4f, macro-F1 %.4f", metrics["accuracy"],
             metrics["macro_f1"])
    return Path(out)


def write_run(out: str | os.PathLike, clf, cfg: XGBoostTrainConfig, proba: np.ndarray,
              y_val: np.ndarray, *, extra: dict) -> dict:
    """Write a trained model's run folder atomically: model, config, validation report.

    Parameters
    ----------
    out : str or os.PathLike
        Run folder, replaced only when everything is written.
    clf : XGBoostWaferClassifier
        Fitted.
    cfg : XGBoostTrainConfig
    proba : ndarray of shape (n_val, n_classes)
        Validation probabilities over ``clf.classes_``.
    y_val : ndarray of str, shape (n_val,)
        Validation labels.
    extra : dict
        Run details for the report (``n_train`` and ``n_validation`` are required).

    Returns
    -------
    dict
        The validation metrics (:func:`wafertk.evaluate.classification_metrics`).
    """
    from wafertk._atomic import atomic_path
    from wafertk.config import save_config, to_dict
    from wafertk.evaluate import classification_metrics, write_evaluation_report

    y_pred = np.asarray(clf.classes_, dtype=object)[proba.argmax(axis=1)]
    metrics = classification_metrics(np.asarray(y_val).astype(str), y_pred,
                                     list(clf.classes_), proba=proba)
    summary = {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    with atomic_path(out, directory=True) as tmp:
        clf.save(tmp, extra={"validation": summary, "config": to_dict(cfg),
                             "n_train": extra["n_train"], "n_validation": extra["n_validation"],
                             "split": {"function": "validation_split",
                                       "val_fraction": cfg.val_fraction,
                                       "seed": cfg.resolved_split_seed}})
        save_config(cfg, tmp / "config.yaml")
        write_evaluation_report(tmp, title="XGBoost baseline: lot-disjoint validation split",
                                metrics=metrics, extra=extra)
    return metrics
