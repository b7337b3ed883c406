"""The two-phase decision logic, apart from files: :class:`TwoPhaseClassifier`.

Phase 1 (a ``cnn-detector``) gives the calibrated P(defective) of each wafer and flags it at
the detector's threshold; phase 2 (a ``cnn-classifier``, or any predictor with ``classes_`` and
``predict_proba(WaferSet)``, e.g. the XGBoost baseline) names the pattern of the flagged wafers.

Three modes:

``"two-phase"`` (default)
    Phase 2 runs only on wafers phase 1 flags; the others are ``none``.
``"single-phase"``
    Phase 2 runs on every wafer, which is therefore named a defect pattern: only for wafers
    already known to be defective (no detector, no threshold).
``"detect"``
    Phase 1 alone.

:class:`AnomalyInspector` puts an unsupervised anomaly detector (``wafertk anomaly train``)
in phase 1's place (``wafertk detect --unsupervised RUN``): mode ``"anomaly"``.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from wafertk.data.waferset import NONE_CLASS, WaferSet
from wafertk.errors import WafertkError

log = logging.getLogger(__name__)

MODES = ("two-phase", "single-phase", "detect")
DEFAULT_REVIEW_BELOW = 0.6

#: Columns of one prediction row (``predictions.csv``), by mode.
DETECT_COLUMNS = ["wafer_id", "lot", "wafer_index", "p_defect", "defective"]
#: Columns of ``detect --unsupervised``: the anomaly score (higher = more anomalous) replaces
#: P(defective); ``defective`` is 1 at or above the anomaly model's threshold.
ANOMALY_COLUMNS = ["wafer_id", "lot", "wafer_index", "anomaly_score", "defective"]
CLASSIFY_COLUMNS = DETECT_COLUMNS + ["pattern", "confidence", "review", "top1", "p_top1",
                                     "top2", "p_top2", "top3", "p_top3", "candidates"]


def is_cnn(model) -> bool:
    """Whether ``model`` is a CNN predictor (``prepare`` / ``forward`` / ``calibrate``)."""
    return all(hasattr(model, a) for a in ("prepare", "forward", "calibrate"))


def check_unit_interval(value: float | None, what: str, *, open_low: bool, open_high: bool
                        ) -> float | None:
    """``value`` as a float checked to lie in the unit interval (None passes through)."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise WafertkError(f"{what} must be a number, got {value!r}") from None
    lo_ok = v > 0 if open_low else v >= 0
    hi_ok = v < 1 if open_high else v <= 1
    if not (np.isfinite(v) and lo_ok and hi_ok):
        rng = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise WafertkError(f"{what} must be in {rng}, got {value}")
    return v


class TwoPhaseClassifier:
    """Phase-1 detector + phase-2 pattern classifier, as one predictor over WaferSet batches.

    Parameters
    ----------
    detector : predictor or None
        A ``cnn-detector`` predictor or an ensemble detector
        (:class:`~wafertk.models.ensemble.EnsembleDetector`); required unless
        ``mode="single-phase"``.
    classifier : predictor or None
        Phase-2 predictor (``classes_``, ``predict_proba``); required unless ``mode="detect"``.
    mode : {"two-phase", "single-phase", "detect"}, default "two-phase"
    threshold : float, optional
        Phase-1 decision threshold on the calibrated P(defective) instead of the detector's
        own, in (0, 1). Not allowed in single-phase mode (there is no phase 1). Below the
        threshold an ensemble detector's screen was fitted for (``screen_threshold``), the
        screen is turned off on a copy of the detector: every wafer gets the whole ensemble.
    review_below : float, optional
        Review flag threshold on the confidence, in [0, 1] (default: the classifier's
        manifest, else 0.6).

    Attributes
    ----------
    columns : list of str
        The prediction columns this mode produces.
    classes_ : list of str
        ``none`` followed by the pattern classes (two-phase), the pattern classes
        (single-phase) or ``["good", "defective"]`` (detect).

    Examples
    --------
    >>> clf = TwoPhaseClassifier(load_model("detector"), load_model("classifier"))  # doctest: +SKIP
    >>> clf.predict(ws)                                                             # doctest: +SKIP
    array(['none', 'Edge-Ring', ...], dtype=object)
    """

    def __init__(self, detector=None, classifier=None, *, mode: str = "two-phase",
                 threshold: float | None = None, review_below: float | None = None) -> None:
        if mode not in MODES:
            raise WafertkError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode != "single-phase" and detector is None:
            raise WafertkError(f"{mode} mode needs a detector")
        if mode != "detect" and classifier is None:
            raise WafertkError(f"{mode} mode needs a pattern classifier")
        if mode == "single-phase" and (detector is not None or threshold is not None):
            raise WafertkError("single-phase mode has no phase 1: a detector or a threshold "
                               "does not apply (use the default two-phase mode)")
        self.detector = detector if mode != "single-phase" else None
        self.classifier = classifier if mode != "detect" else None
        self.mode = mode
        threshold = check_unit_interval(threshold, "detector threshold", open_low=True,
                                        open_high=True)
        if self.detector is not None and threshold is None:
            own = getattr(self.detector, "threshold", None)
            threshold = 0.5 if own is None else float(own)
        self.threshold = threshold
        if getattr(self.detector, "screen_below", None) is not None:
            # the screen keeps every wafer the whole ensemble flags at the threshold it was
            # fitted for; a lower one could flag wafers it passes: the whole ensemble for all
            # (the detector's own threshold when the screen does not record one)
            fitted = getattr(self.detector, "screen_threshold", None)
            if fitted is not None and threshold < float(fitted):
                self.detector = copy.copy(self.detector)
                self.detector.screen_below = None
                log.info("threshold %.6g below the %.6g the detector's screen was fitted "
                         "for: the screen is off (slower)", threshold, float(fitted))
        review_below = check_unit_interval(review_below, "review level", open_low=False,
                                           open_high=False)
        if review_below is None:
            src = self.classifier if self.classifier is not None else self.detector
            man = getattr(src, "manifest", None)
            review_below = man.extra.get("review_below") if man is not None else None
            review_below = check_unit_interval(
                DEFAULT_REVIEW_BELOW if review_below is None else review_below,
                "review level of the model", open_low=False, open_high=False)
        self.review_below = review_below
        self.columns = DETECT_COLUMNS if mode == "detect" else CLASSIFY_COLUMNS
        conformal = None
        if self.classifier is not None:
            man = getattr(self.classifier, "manifest", None)
            conformal = (man.extra or {}).get("conformal") if man is not None else None
        #: Split-conformal threshold of the classifier (``wafertk calibrate``), or None.
        self.conformal_qhat = (float(conformal["qhat"]) if isinstance(conformal, dict)
                               and isinstance(conformal.get("qhat"), (int, float)) else None)
        self._shared_resize = (
            self.detector is not None and self.classifier is not None and is_cnn(self.classifier)
            and getattr(self.classifier, "input_size", None)
            == getattr(self.detector, "input_size", None)
        )

    @property
    def classes_(self) -> list[str]:
        if self.mode == "detect":
            return ["good", "defective"]
        names = [str(c) for c in self.classifier.classes_]
        return names if self.mode == "single-phase" else [NONE_CLASS] + names

    # ---------------------------------------------------------------- preprocessing
    def prepare(self, ws: WaferSet) -> dict:
        """Model-independent CPU work on a batch (resizing), safe to run in a worker thread."""
        from wafertk.data.preprocess import resize_maps

        prep: dict = {}
        if self.detector is not None and getattr(self.detector, "input_size", None):
            prep["det_maps"] = resize_maps(ws, self.detector.input_size)
        if self.detector is not None and hasattr(self.detector, "prepare_features"):
            prep["det_features"] = self.detector.prepare_features(ws)  # ensemble detector
        if self.mode == "single-phase" and is_cnn(self.classifier):
            prep["cls_inputs"] = self.classifier.prepare(ws)
        return prep

    # ---------------------------------------------------------------- inference
    def p_defect(self, ws: WaferSet, prep: dict | None = None, batch_size: int = 1024
                 ) -> np.ndarray:
        """Calibrated P(defective) of each wafer (phase 1), shape (n,)."""
        if self.detector is None:
            raise WafertkError("single-phase mode has no detector")
        if not prep or not {"det_maps", "det_features"} & prep.keys():
            prep = self.prepare(ws)
        if not is_cnn(self.detector):  # an ensemble detector
            return self.detector.p_defect(ws, maps=prep.get("det_maps"),
                                          features=prep.get("det_features"),
                                          batch_size=batch_size)
        return self.detector.calibrate(self.detector.forward((prep["det_maps"],),
                                                             batch_size))[:, 1]

    def pattern_proba(self, ws: WaferSet, rows: np.ndarray, prep: dict | None = None,
                      batch_size: int = 1024) -> np.ndarray:
        """Calibrated phase-2 probabilities of the wafers ``rows`` of ``ws``, shape (k, C)."""
        clf = self.classifier
        prep = prep or {}
        if not is_cnn(clf):
            sub = ws.take(rows) if len(rows) < len(ws) else ws
            return np.asarray(clf.predict_proba(sub), np.float64)
        if "cls_inputs" in prep:  # phase 2 on every wafer, prepared ahead
            return clf.calibrate(clf.forward(prep["cls_inputs"], batch_size))[rows]
        sub = ws.take(rows) if len(rows) < len(ws) else ws
        shared = prep["det_maps"][rows] if self._shared_resize and "det_maps" in prep else None
        return clf.calibrate(clf.forward(clf.prepare(sub, maps=shared), batch_size))

    def predict_columns(self, ws: WaferSet, prep: dict | None = None, batch_size: int = 1024
                        ) -> dict[str, np.ndarray]:
        """Prediction columns of one batch (see :data:`CLASSIFY_COLUMNS`).

        Parameters
        ----------
        ws : WaferSet
        prep : dict, optional
            Output of :meth:`prepare` for ``ws`` (computed here if absent).
        batch_size : int, default 1024
            Forward-pass batch size.

        Returns
        -------
        dict of str to ndarray of shape (n,)
            ``p_defect`` is NaN and ``defective`` is -1 in single-phase mode (no phase 1);
            wafers phase 1 passes get ``pattern = none``, ``confidence = 1 - p_defect`` and
            empty ``top2``/``top3``; classified wafers get the top-3 of phase 2 and
            ``confidence = p_top1``; ``review`` is 1 below :attr:`review_below`.
        """
        if prep is None:
            prep = self.prepare(ws)
        n = len(ws)
        cols: dict[str, np.ndarray] = {
            "wafer_id": ws.wafer_id.astype(str),
            "lot": ws.lot.astype(str),
            "wafer_index": ws.wafer_index.astype(np.int64),
            "p_defect": np.full(n, np.nan),
            "defective": np.full(n, -1, np.int64),
        }
        if self.detector is not None:
            p_def = self.p_defect(ws, prep, batch_size)
            cols["p_defect"] = p_def
            cols["defective"] = (p_def >= self.threshold).astype(np.int64)
        if self.mode == "detect":
            return cols
        two = self.mode == "two-phase"
        rows = np.flatnonzero(cols["defective"] == 1) if two else np.arange(n)
        names = np.asarray(self.classifier.classes_, dtype=object)
        k = min(3, len(names))
        tops = [np.full(n, "", dtype=object) for _ in range(3)]
        ptops = [np.full(n, np.nan) for _ in range(3)]
        candidates = np.full(n, "", dtype=object)
        if two:
            tops[0][:] = NONE_CLASS
            ptops[0][:] = 1.0 - cols["p_defect"]
            if self.conformal_qhat is not None:
                candidates[:] = NONE_CLASS
        if len(rows):
            proba = self.pattern_proba(ws, rows, prep, batch_size)
            order = np.argsort(-proba, axis=1)[:, :k]
            for j in range(k):
                tops[j][rows] = names[order[:, j]]
                ptops[j][rows] = proba[np.arange(len(rows)), order[:, j]]
            if self.conformal_qhat is not None:
                candidates[rows] = _candidate_sets(proba, names, self.conformal_qhat)
        conf = ptops[0].copy()
        cols["pattern"] = tops[0].copy()
        cols["confidence"] = conf
        cols["review"] = (conf < self.review_below).astype(np.int64)
        for j in range(3):
            cols[f"top{j + 1}"] = tops[j]
            cols[f"p_top{j + 1}"] = ptops[j]
        cols["candidates"] = candidates
        return cols

    def predict_proba(self, ws: WaferSet, batch_size: int = 1024) -> np.ndarray:
        """Calibrated probabilities over :attr:`classes_`, shape (n, len(classes_)).

        Two-phase: ``P(none) = 1 - p_defect`` and ``P(pattern) = p_defect * P(pattern |
        defective)``, rows summing to 1 (phase 2 is run on every wafer for this).
        """
        prep = self.prepare(ws)
        if self.mode == "detect":
            p = self.p_defect(ws, prep, batch_size)
            return np.stack([1 - p, p], axis=1)
        proba = self.pattern_proba(ws, np.arange(len(ws)), prep, batch_size)
        if self.mode == "single-phase":
            return proba
        p = self.p_defect(ws, prep, batch_size)[:, None]
        return np.concatenate([1 - p, p * proba], axis=1)

    def predict(self, ws: WaferSet, batch_size: int = 1024) -> np.ndarray:
        """Class name of each wafer (the ``pattern`` column; ``good``/``defective`` in detect)."""
        cols = self.predict_columns(ws, batch_size=batch_size)
        if self.mode == "detect":
            return np.where(cols["defective"] == 1, "defective", "good").astype(object)
        return cols["pattern"]

    def describe(self) -> dict:
        """The resolved settings (for ``run.json`` and the report)."""
        return {"mode": self.mode, "detector": _describe(self.detector),
                "classifier": _describe(self.classifier), "threshold": self.threshold,
                "review_below": self.review_below}

    def __repr__(self) -> str:
        return (f"TwoPhaseClassifier(mode={self.mode!r}, threshold={self.threshold}, "
                f"review_below={self.review_below})")


def _candidate_sets(proba: np.ndarray, names: np.ndarray, qhat: float) -> np.ndarray:
    """Conformal prediction sets as ``"A|B"`` strings, most probable class first."""
    order = np.argsort(-proba, axis=1)
    keep = (1.0 - np.take_along_axis(proba, order, axis=1)) <= qhat
    keep[:, 0] = True  # never empty: the top class is always a candidate
    return np.array(["|".join(names[o[m]]) for o, m in zip(order, keep, strict=True)],
                    dtype=object)


def _describe(model) -> str | None:
    if model is None:
        return None
    man = getattr(model, "manifest", None)
    if man is None:
        return type(model).__name__
    where = getattr(model, "source", None)
    size = man.input_size if man.input_size is not None else getattr(model, "input_size", None)
    return (f"{man.kind} ({man.created or 'unknown date'}, input {size})"
            + (f" from {where}" if where else ""))


def check_score_threshold(value: float | None, what: str) -> float | None:
    """``value`` as a finite float (an anomaly-score threshold has no fixed range), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value):
        raise WafertkError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class AnomalyInspector:
    """An unsupervised anomaly detector as phase 1 (mode ``"anomaly"``).

    Same interface as :class:`TwoPhaseClassifier` for the batch runner (``prepare``,
    ``predict_columns``, ``describe``, ``columns``), with :data:`ANOMALY_COLUMNS`: the
    anomaly score of each wafer (higher = more anomalous) and ``defective`` = 1 at or above
    the threshold.

    Parameters
    ----------
    detector : fitted anomaly detector
        A wafer model of :mod:`wafertk.anomaly` (``wafertk.registry.load_model(run,
        kind="anomaly-detector")``).
    threshold : float, optional
        Decision threshold on the anomaly score instead of the model's own ``threshold_``.
    """

    mode = "anomaly"
    columns = ANOMALY_COLUMNS
    classifier = None

    def __init__(self, detector, *, threshold: float | None = None) -> None:
        if getattr(detector, "input_kind_", "wafers") != "wafers":
            raise WafertkError("this anomaly model was trained on images, not wafer maps")
        self.detector = detector
        threshold = check_score_threshold(threshold, "anomaly threshold")
        self.threshold = float(detector.threshold_) if threshold is None else threshold

    @property
    def classes_(self) -> list[str]:
        return ["good", "defective"]

    def prepare(self, ws: WaferSet) -> dict:
        """The model's inputs of a batch (resized, one-hot), done in the read-ahead thread."""
        return {"x": self.detector._inputs(ws)}

    def score(self, ws: WaferSet, prep: dict | None = None, batch_size: int = 1024
              ) -> np.ndarray:
        """Anomaly score of each wafer (higher = more anomalous)."""
        prep = self.prepare(ws) if prep is None else prep
        return np.asarray(self.detector._score_array(prep["x"], batch_size), np.float64)

    def predict_columns(self, ws: WaferSet, prep: dict | None = None, batch_size: int = 1024
                        ) -> dict[str, np.ndarray]:
        """Prediction columns of one batch (:data:`ANOMALY_COLUMNS`)."""
        s = self.score(ws, prep, batch_size)
        return {"wafer_id": ws.wafer_id.astype(str), "lot": ws.lot.astype(str),
                "wafer_index": ws.wafer_index, "anomaly_score": s,
                "defective": (s >= self.threshold).astype(np.int64)}

    def predict(self, ws: WaferSet, batch_size: int = 1024) -> np.ndarray:
        """``"defective"`` or ``"good"`` per wafer."""
        cols = self.predict_columns(ws, batch_size=batch_size)
        return np.where(cols["defective"] == 1, "defective", "good").astype(object)

    def describe(self) -> dict:
        """The resolved settings (for ``run.json`` and the report)."""
        return {"mode": self.mode, "detector": _describe(self.detector),
                "unsupervised": getattr(self.detector, "name", type(self.detector).__name__),
                "threshold": self.threshold}

    def __repr__(self) -> str:
        return f"AnomalyInspector({type(self.detector).__name__}, threshold={self.threshold})"
