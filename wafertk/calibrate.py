"""Refit a model's decisions on a fab's own labelled wafers: :func:`calibrate_model`.

A model's temperature, decision threshold and review level are fitted on the validation split
it was trained with. A fab's wafers differ (defect rate, products, labelling convention), so the
first thing a new fab does is to refit them on a few hundred of its own labelled wafers, at its
own prevalence, into a new model folder (the network itself is not changed):

* detector (``cnn-detector``, ``ensemble-detector``): the temperature (negative
  log-likelihood on these wafers), then the decision threshold on the recalibrated
  P(defective) by one rule: the highest F1 (default), the highest threshold reaching a target
  recall, or the highest recall at a minimum precision;
* pattern classifier (``cnn-classifier``; ``xgboost-classifier`` has no temperature): the
  temperature on the wafers whose label is one of its classes, then the review level: the
  lowest confidence at which the wafers accepted automatically (confidence at or above it) have
  at most ``max_error`` errors, so that as many wafers as possible are accepted.

The new folder records what was done (``extra.calibration`` in its manifest: data file, wafer
counts, prevalence, rule, figures before and after).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wafertk.errors import WaferFileError, WafertkError
from wafertk.models.manifest import DETECTOR_CLASSES, DETECTOR_KINDS

log = logging.getLogger(__name__)

RULES = ("f1", "recall", "precision")
MIN_WAFERS = 20


@dataclass
class CalibrationResult:
    """What :func:`calibrate_model` changed, and the figures on the calibration wafers."""

    path: Path
    kind: str
    n: int
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)

    def details(self) -> str:
        """One line: the model kind, wafers, and each value before -> after."""
        parts = [f"{self.kind} on {self.n:,} wafers"]
        for k, (a, b) in self.changes.items():
            parts.append(f"{k} {_fmt(a)} -> {_fmt(b)}")
        for k in self.after:
            parts.append(f"{k} {_fmt(self.before.get(k))} -> {_fmt(self.after[k])}")
        return ", ".join(parts)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def threshold_by_rule(y: np.ndarray, score: np.ndarray, rule: str = "f1",
                      value: float | None = None) -> float:
    """Decision threshold on ``score`` (positive where ``score >= threshold``) by a rule.

    Parameters
    ----------
    y : ndarray of shape (n,)
        1 = positive (defective).
    score : ndarray of shape (n,)
    rule : {"f1", "recall", "precision"}, default "f1"
        ``"f1"``: the highest F1; ``"recall"``: the highest threshold whose recall reaches
        ``value``; ``"precision"``: the highest recall among thresholds whose precision
        reaches ``value``.
    value : float, optional
        The target of ``"recall"`` / ``"precision"``.

    Returns
    -------
    float
        Just below the score of the lowest-scored wafer the rule keeps positive (by half the
        gap to the next lower score, at most :data:`THRESHOLD_MARGIN`): the same decisions on
        these wafers, and a wafer scored a rounding error lower on another machine is still
        positive.

    Raises
    ------
    WafertkError
        Unknown rule, missing or out-of-range value, no threshold reaching the precision.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, np.float64)
    return _below_own_score(score, _rule_threshold(y, score, rule, value))


#: The most a fitted threshold sits below the score it was chosen at (see threshold_by_rule).
THRESHOLD_MARGIN = 1e-6


def _below_own_score(score: np.ndarray, t: float) -> float:
    """``t`` moved down by half the gap to the next lower score, at most THRESHOLD_MARGIN."""
    lower = score[score < t]
    gap = t - lower.max() if len(lower) else THRESHOLD_MARGIN
    return float(max(t - min(gap / 2, THRESHOLD_MARGIN), t / 2))  # never <= 0 for t > 0


def _rule_threshold(y: np.ndarray, score: np.ndarray, rule: str, value: float | None
                    ) -> float:
    """The score at which ``rule`` puts the threshold (see threshold_by_rule)."""
    from sklearn.metrics import precision_recall_curve

    from wafertk.models.calibration import threshold_for_recall

    if rule not in RULES:
        raise WafertkError(f"unknown threshold rule {rule!r}: expected {', '.join(RULES)}")
    if rule == "recall":
        return threshold_for_recall(y, score, value)
    prec, rec, thr = precision_recall_curve(y, score)
    prec, rec = prec[:-1], rec[:-1]  # the last point has no threshold
    if rule == "f1":
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
        return float(thr[int(np.argmax(f1))])
    if value is None or not 0 < value <= 1:
        raise WafertkError(f"minimum precision must be in (0, 1], got {value}")
    ok = np.flatnonzero(prec >= value)
    if not len(ok):
        raise WafertkError(f"no threshold reaches precision {value} on these wafers "
                           f"(best {prec.max():.3f})")
    best = ok[np.argmax(rec[ok])]
    return float(thr[best])


def acceptance(confidence: np.ndarray, correct: np.ndarray, level: float) -> dict[str, float]:
    """Wafers accepted automatically at a review level: their share and their error rate.

    A wafer is accepted when ``confidence >= level`` (``classify`` flags the others for review).
    """
    acc = np.asarray(confidence, np.float64) >= level
    ok = np.asarray(correct, bool)
    return {"accepted": float(acc.mean()) if acc.size else 0.0,
            "error_among_accepted": float((~ok[acc]).mean()) if acc.any() else 0.0}


def review_level(confidence: np.ndarray, correct: np.ndarray, max_error: float = 0.02
                 ) -> float:
    """The lowest confidence level whose auto-accepted wafers have at most ``max_error`` errors.

    Wafers with ``confidence >= level`` are accepted automatically, the others go to review.
    Returns 1.0 (review everything) when even the most confident wafer alone is wrong.
    """
    if not 0 <= max_error < 1:
        raise WafertkError(f"maximum error must be in [0, 1), got {max_error}")
    c = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    order = np.argsort(-c, kind="stable")
    errors = np.cumsum(~ok[order])
    rate = errors / np.arange(1, len(c) + 1)
    # accept a prefix ending where the next wafer's confidence differs (ties go together)
    cs = c[order]
    ends = np.flatnonzero(np.append(cs[1:] != cs[:-1], True))
    good = ends[rate[ends] <= max_error]
    if not len(good):
        return 1.0
    return float(cs[good.max()])


def conformal_threshold(p_true: np.ndarray, coverage: float = 0.9) -> float:
    """Split-conformal threshold ``qhat`` of the score ``1 - p(true class)``.

    The prediction set of a new wafer is every class ``c`` with ``1 - p_c <= qhat``; on
    exchangeable wafers it holds the true class with probability at least ``coverage``
    (Vovk et al.; the "LAC" score of Sadinle et al. 2019).

    Parameters
    ----------
    p_true : ndarray of shape (n,)
        Calibrated probability of the true class of each calibration wafer.
    coverage : float in (0, 1), default 0.9

    Returns
    -------
    float
        1.0 (every class) when ``n`` is too small for the coverage.
    """
    if not 0 < coverage < 1:
        raise WafertkError(f"coverage must be in (0, 1), got {coverage}")
    scores = np.sort(1.0 - np.asarray(p_true, np.float64))
    n = len(scores)
    k = int(np.ceil((n + 1) * coverage))
    return 1.0 if k > n else float(scores[k - 1])


#: The pattern classifiers ``calibrate`` refits (a temperature where the model has one, the
#: review level and the conformal sets).
CLASSIFIER_KINDS = ("cnn-classifier", "xgboost-classifier", "ensemble-classifier")


def _predict_proba(predictor, ws, batch_size: int) -> np.ndarray:
    """Class probabilities of any loaded model: CNNs predict in batches, XGBoost at once."""
    from wafertk.baseline.model import XGBoostWaferClassifier

    if isinstance(predictor, XGBoostWaferClassifier):
        return np.asarray(predictor.predict_proba(ws), np.float64)
    return np.asarray(predictor.predict_proba(ws, batch_size), np.float64)


def _refit_screen(predictor, ws, score: np.ndarray, thr: float, margin: float,
                  batch_size: int, extra: dict, changes: dict, old_screen, after: dict
                  ) -> None:
    """Fit (margin > 0) or remove (0) an ensemble detector's screen into ``extra``."""
    from wafertk.models.ensemble import fit_screen

    before = old_screen.get("below") if isinstance(old_screen, dict) else None
    if margin == 0:
        extra.pop("screen", None)
        if before is not None:
            changes["screen level"] = (before, None)
        return
    screen = fit_screen(predictor, ws, score, thr, margin=margin, batch_size=batch_size)
    extra["screen"] = screen
    changes["screen level"] = (before, screen["below"])
    after["screen_passed_on"] = screen["passed_on"]


def _pipeline_review_level(folder: Path, detector, ws, labels: np.ndarray, extra: dict,
                           max_error: float, batch_size: int, before: dict, after: dict,
                           changes: dict) -> dict:
    """The review level chosen on the two-phase output over all wafers (see calibrate_model)."""
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.registry import load_model

    det = load_model(detector, kind=DETECTOR_KINDS)
    clf = load_model(folder, kind=CLASSIFIER_KINDS)
    pipe = TwoPhaseClassifier(det, clf, review_below=0.0)
    cols = pipe.predict_columns(ws, batch_size=batch_size)
    conf = np.asarray(cols["confidence"], np.float64)
    correct = np.asarray(cols["pattern"]).astype(str) == labels
    old = changes.get("review level", (extra.get("review_below"),))[0]
    level = review_level(conf, correct, max_error)
    changes["review level"] = (old, level)
    for k in ("accepted", "error_among_accepted"):  # those were at the defect-only level
        before.pop(k, None)
        after.pop(k, None)
    after.update({f"pipeline_{k}": v for k, v in acceptance(conf, correct, level).items()})
    extra = dict(extra, review_below=level)
    extra["calibration"] = dict(extra["calibration"], review_on="two-phase output, all wafers",
                                detector=str(detector), after=after,
                                changes={k: list(v) for k, v in changes.items()})
    return extra


def _labeled_wafers(wafers: str | os.PathLike):
    from wafertk.data.h5 import read_wafers

    ws = read_wafers(wafers)
    if not ws.has_labels or not ws.labeled_mask().any():
        raise WaferFileError(wafers, "no labelled wafers: calibration needs labels")
    return ws.take(ws.labeled_mask())


def calibrate_model(model: str | os.PathLike, wafers: str | os.PathLike,
                    out_dir: str | os.PathLike, *, rule: str = "f1",
                    target_recall: float | None = None, min_precision: float | None = None,
                    max_error: float = 0.02, coverage: float = 0.9,
                    detector: str | os.PathLike | None = None, batch_size: int = 1024,
                    tta: str | None = None, screen_margin: float | None = None
                    ) -> CalibrationResult:
    """Refit a model's temperature, threshold or review level on labelled wafers.

    Parameters
    ----------
    model : str or os.PathLike
        A shipped model name (``detector``, ``classifier``, ``xgboost``) or a model folder.
    wafers : str or os.PathLike
        A labelled wafers.h5 file: the fab's own wafers, a few hundred or more, at its own
        defect rate.
    out_dir : str or os.PathLike
        The new model folder (written atomically; the input model is not changed).
    rule : {"f1", "recall", "precision"}, default "f1"
        Detector threshold rule (see :func:`threshold_by_rule`); ``target_recall`` implies
        ``"recall"`` and ``min_precision`` implies ``"precision"``.
    target_recall, min_precision : float, optional
    max_error : float, default 0.02
        Classifier: the error rate allowed among automatically accepted wafers.
    coverage : float, default 0.9
        Classifier: coverage of the conformal prediction sets (the ``candidates`` column of
        ``classify``; see :func:`conformal_threshold`).
    detector : str or os.PathLike, optional
        Classifier: choose the review level on the two-phase output of this detector and the
        recalibrated classifier over *all* the wafers (``none`` included), as ``classify``
        flags them, instead of on the defect wafers alone.
    batch_size : int, default 1024
    tta : {"none", "flip", "rot4", "d4"}, optional
        CNNs: the test-time augmentation the new model applies
        (:data:`wafertk.models.predictors.TTA_TRANSFORMS`, recorded as ``extra.tta``); its
        temperature, threshold and review level are fitted on the augmented outputs.
        Default: keep the model's own setting.
    screen_margin : float, optional
        Ensemble detectors: fit a screen (:func:`wafertk.models.ensemble.fit_screen`; its
        CNN's single pass decides the clearly good wafers alone) with this margin in (0, 1],
        or remove it with 0. Default: refit the model's own screen with its margin, if it
        has one. The temperature and threshold are always fitted on the whole ensemble, and
        the figures before and after are those of the whole ensemble (the screen changes no
        decision on these wafers: see :func:`~wafertk.models.ensemble.fit_screen`).

    Returns
    -------
    CalibrationResult

    Raises
    ------
    WafertkError
        Unknown model, unlabelled file, too few wafers, a single class, bad rule values.
    """
    from wafertk import evaluate
    from wafertk.models.calibration import apply_temperature, fit_temperature, logits_from_proba
    from wafertk.models.manifest import load_manifest, write_manifest
    from wafertk.registry import load_model, resolve_model

    if target_recall is not None and min_precision is not None:
        raise WafertkError("give a target recall or a minimum precision, not both")
    if target_recall is not None:
        rule, value = "recall", target_recall
    elif min_precision is not None:
        rule, value = "precision", min_precision
    else:
        value = None
    if rule not in RULES:
        raise WafertkError(f"unknown threshold rule {rule!r}: expected {', '.join(RULES)}")
    src = resolve_model(model)
    predictor = load_model(src, kind=DETECTOR_KINDS + CLASSIFIER_KINDS)
    man = load_manifest(src)
    if tta is not None:
        from wafertk.models.predictors import check_tta

        check_tta(tta)
        if not hasattr(predictor, "tta"):
            raise WafertkError(f"--tta applies to the CNN models, not to {man.kind}")
    if screen_margin is not None:
        if man.kind != "ensemble-detector":
            raise WafertkError(f"--screen-margin applies to ensemble detectors, not to "
                               f"{man.kind}")
        if not 0 <= screen_margin <= 1:
            raise WafertkError(f"--screen-margin must be in [0, 1] (0 removes the screen), "
                               f"got {screen_margin}")
    old_screen = (man.extra or {}).get("screen")
    if screen_margin is None and isinstance(old_screen, dict):
        screen_margin = float(old_screen.get("margin", 0.5))
    if getattr(predictor, "screen_below", None) is not None:
        predictor.screen_below = None  # decisions are fitted on the whole ensemble
    if man.kind == "xgboost-classifier" and list(man.classes) == DETECTOR_CLASSES:
        raise WafertkError(f"{src}: a binary XGBoost (good/defective) has no threshold of its "
                           "own; calibrate it inside an ensemble detector: wafertk ensemble "
                           "CNN_DETECTOR XGB -o ENS, then wafertk calibrate ENS ...")
    ws = _labeled_wafers(wafers)
    labels = ws.label_strings().astype(str)
    extra = dict(man.extra or {})
    changes: dict[str, tuple[Any, Any]] = {}
    if tta is not None and tta != predictor.tta:
        changes["tta"] = (predictor.tta, tta)
        extra["tta"] = predictor.tta = tta
    has_t = hasattr(predictor, "temperature")
    t_old = float(getattr(predictor, "temperature", 1.0) or 1.0)

    if man.kind in DETECTOR_KINDS:
        y = (labels != "none").astype(np.int64)
        if len(ws) < MIN_WAFERS or y.sum() < 5 or (1 - y).sum() < 5:
            raise WaferFileError(wafers, f"too few wafers to calibrate a detector ({len(ws)} "
                                 f"labelled, {int(y.sum())} defective; need {MIN_WAFERS}+ "
                                 "with 5+ of each)")
        p_old = _predict_proba(predictor, ws, batch_size)[:, 1]
        z = logits_from_proba(p_old)
        scale = fit_temperature(z, y)
        score = apply_temperature(z, scale)
        thr_old = float(predictor.threshold if predictor.threshold is not None else 0.5)
        thr = threshold_by_rule(y, score, rule, value)
        b0 = evaluate.binary_metrics(y, p_old, threshold=thr_old)
        b1 = evaluate.binary_metrics(y, score, threshold=thr)
        before = {k: b0[k] for k in ("recall", "precision", "f1")}
        after = {k: b1[k] for k in ("recall", "precision", "f1")}
        extra.update(temperature=t_old * scale, threshold=thr)
        changes.update({"temperature": (t_old, t_old * scale), "threshold": (thr_old, thr)})
        if screen_margin is not None:
            _refit_screen(predictor, ws, score, thr, screen_margin, batch_size, extra,
                          changes, old_screen, after)
        prevalence = float(y.mean())
        used = len(ws)
    else:
        classes = [str(c) for c in predictor.classes_]
        keep = np.isin(labels, classes)
        used = int(keep.sum())
        if used < MIN_WAFERS:
            raise WaferFileError(wafers, f"too few wafers with one of the model's classes to "
                                 f"calibrate it ({used}; need {MIN_WAFERS}+)")
        sub = ws.take(np.flatnonzero(keep))
        y = np.array([classes.index(s) for s in labels[keep]])
        p_old = _predict_proba(predictor, sub, batch_size)
        p_new = p_old
        if has_t:
            z = logits_from_proba(p_old)
            scale = fit_temperature(z, y)
            p_new = apply_temperature(z, scale)
            extra["temperature"] = t_old * scale
            changes["temperature"] = (t_old, t_old * scale)
        rev_old = float(extra.get("review_below", 0.6) or 0.0)
        conf, correct = p_new.max(axis=1), p_new.argmax(axis=1) == y
        rev = review_level(conf, correct, max_error)
        extra["review_below"] = rev
        changes["review level"] = (rev_old, rev)

        before = acceptance(p_old.max(axis=1), p_old.argmax(axis=1) == y, rev_old)
        after = acceptance(p_new.max(axis=1), p_new.argmax(axis=1) == y, rev)
        qhat = conformal_threshold(p_new[np.arange(len(y)), y], coverage)
        sets = (1.0 - p_new) <= qhat
        sets[np.arange(len(y)), p_new.argmax(axis=1)] = True  # as classify: never empty
        extra["conformal"] = {"coverage": coverage, "qhat": qhat, "n": used}
        after["set_coverage"] = float(sets[np.arange(len(y)), y].mean())
        after["mean_set_size"] = float(sets.sum(axis=1).mean())
        prevalence = None
    extra["calibration"] = {
        "data": os.path.abspath(os.fspath(wafers)), "wafers": int(len(ws)), "used": used,
        "prevalence": prevalence, "rule": rule if man.kind in DETECTOR_KINDS else None,
        "rule_value": value, "max_error": max_error if man.kind not in DETECTOR_KINDS else None,
        "from_model": str(src), "before": before, "after": after,
        "changes": {k: list(v) for k, v in changes.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from dataclasses import replace

    from wafertk._atomic import atomic_path

    with atomic_path(out_dir, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        write_manifest(tmp, replace(man, extra=extra, created=""))
        if detector is not None and man.kind not in DETECTOR_KINDS:
            extra = _pipeline_review_level(tmp, detector, ws, labels, extra, max_error,
                                           batch_size, before, after, changes)
            write_manifest(tmp, replace(man, extra=extra, created=""))
    log.info("calibrated %s on %d wafers into %s", man.kind, used, out_dir)
    return CalibrationResult(Path(out_dir), man.kind, used, changes, before, after)
