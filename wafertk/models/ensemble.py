"""Ensembles: the weighted mean of their members' probabilities.

Two kinds, built by :func:`build_ensemble` from the members' kinds:

* ``"ensemble-classifier"``: pattern classifiers (``cnn-classifier``, ``xgboost-classifier``)
  with the same classes; phase 2 of the two-phase pipeline. On the production validation
  lots the mean of the CNN classifier and the XGBoost baseline beat both (docs/production.md):
  they err on different wafers.
* ``"ensemble-detector"``: phase-1 detectors (``cnn-detector``, and ``xgboost-classifier``
  trained with ``classes: binary``), all with the classes ``["good", "defective"]``; the
  mean of their P(defective) goes through the ensemble's own temperature and is compared with
  its own threshold (both fitted by ``wafertk calibrate``). The shipped detector is one: the
  rotation-averaged CNN and an XGBoost on the spatial arrangement of the fails, the largest
  fail region's geometry, regional fail density and die metadata.

An ensemble detector may carry a **screen** (``extra.screen``, fitted by ``wafertk calibrate
--screen-margin``): its CNN member's single forward pass, without test-time augmentation, runs
on every wafer first; a wafer whose P(defective) from it is below the screen's level is passed
as good with that probability, and only the others go through the whole ensemble (the
rotation-averaged CNN, the features and the XGBoost). The level is a margin times the lowest
such probability among the wafers the whole ensemble flags on the calibration wafers, so that
none of them would have been screened out (and never above the threshold: a passed wafer is
never flagged). A threshold below the detector's own (``classify --threshold``) turns the
screen off, since it was fitted for that threshold. The screen's cost and effect on the
production lots: docs/production.md, "The detector's screen".

An ensemble folder is self-contained: its members (manifest, model file, config) are copied
into ``members/`` beside ``members.json`` (their relative paths and weights) and the
``manifest.json``, so it is copied, shipped and recalibrated like any model folder. The
temperature is 1.0 until ``wafertk calibrate`` fits one; the manifest's ``review_below``,
``conformal`` and ``threshold`` entries drive the inspection like those of a single model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wafertk.errors import ModelFileError, WafertkError
from wafertk.inspect.model import is_cnn
from wafertk.models.calibration import apply_temperature, logits_from_proba
from wafertk.models.manifest import DETECTOR_CLASSES, Manifest, load_manifest, write_manifest

KIND = "ensemble-classifier"
MEMBER_KINDS = ("cnn-classifier", "xgboost-classifier")
DETECTOR_KIND = "ensemble-detector"
DETECTOR_MEMBER_KINDS = ("cnn-detector", "xgboost-classifier")
MEMBERS_FILE = "members.json"


class EnsembleClassifier:
    """Weighted mean of pattern classifiers' probabilities (same classes, same order).

    Parameters
    ----------
    members : sequence
        Loaded classifiers (:func:`wafertk.registry.load_model`), each with ``classes_`` and
        ``predict_proba``.
    weights : sequence of float
        Non-negative, not all zero; normalised to sum to 1.
    manifest : Manifest
        The ensemble's manifest (``extra.temperature``, ``review_below``, ``conformal``).

    Attributes
    ----------
    classes_ : list of str
    weights_ : ndarray
    temperature : float
    review_below : float
        Wafers whose top probability is below this are flagged for review.
    """

    def __init__(self, members: Sequence, weights: Sequence[float], manifest: Manifest) -> None:
        self.members = list(members)
        self.weights_ = _normalised_weights(weights, len(self.members))
        self.manifest = manifest
        self.kind = manifest.kind
        self.classes_ = list(manifest.classes)
        for m in self.members:
            if [str(c) for c in m.classes_] != self.classes_:
                raise WafertkError(f"ensemble member classes {list(m.classes_)} differ from "
                                   f"the ensemble's {self.classes_}")
        self.temperature = float(manifest.extra.get("temperature", 1.0) or 1.0)
        self.review_below = float(manifest.extra.get("review_below", 0.0) or 0.0)

    def predict_proba(self, ws, batch_size: int = 1024) -> np.ndarray:
        """Calibrated class probabilities, shape (n, len(classes_)), rows summing to 1."""
        total = np.zeros((len(ws), len(self.classes_)))
        if len(ws) == 0:
            return total
        for w, m in zip(self.weights_, self.members, strict=True):
            if is_cnn(m):  # CNNs predict in batches
                p = m.predict_proba(ws, batch_size)
            else:
                p = m.predict_proba(ws)
            total += w * np.asarray(p, np.float64)
        if self.temperature == 1.0:
            return total / total.sum(axis=1, keepdims=True)
        return apply_temperature(logits_from_proba(total), self.temperature)

    def predict(self, ws, batch_size: int = 1024) -> np.ndarray:
        """The most probable class of each wafer."""
        proba = self.predict_proba(ws, batch_size)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{getattr(m, 'kind', type(m).__name__)}:{w:.2f}"
                          for m, w in zip(self.members, self.weights_, strict=True))
        return f"EnsembleClassifier({kinds})"


class EnsembleDetector:
    """Phase-1 detector: the weighted mean of detectors' P(defective), own temperature and
    threshold.

    Parameters
    ----------
    members : sequence
        Loaded detectors with the classes ``["good", "defective"]``: CNN detectors
        (:class:`~wafertk.models.predictors.CnnPredictor`, their own test-time augmentation
        and temperature applied) and XGBoost models trained with ``classes: binary``.
    weights : sequence of float
        Non-negative, not all zero; normalised to sum to 1.
    manifest : Manifest
        The ensemble's manifest (``extra.temperature``, ``extra.threshold``).

    Attributes
    ----------
    classes_ : list of str
        ``["good", "defective"]``.
    input_size : int or None
        Side of the resized maps the first CNN member takes (None without one): the
        two-phase pipeline resizes each batch once for it.
    weights_ : ndarray
    temperature : float
    threshold : float or None
        Decision threshold on the calibrated P(defective).
    screen_member : int or None
        Index of the CNN member that screens the wafers (``extra.screen``), or None.
    screen_below : float or None
        Wafers whose single-pass P(defective) from that member is below this are passed as
        good without the rest of the ensemble (None: no screen; set it to None to run the
        whole ensemble on every wafer).
    screen_threshold : float or None
        The decision threshold the screen was fitted for (``extra.screen.threshold``; the
        manifest's threshold when not recorded): a lower threshold needs the screen off.
    """

    def __init__(self, members: Sequence, weights: Sequence[float], manifest: Manifest) -> None:
        self.members = list(members)
        self.weights_ = _normalised_weights(weights, len(self.members))
        self.manifest = manifest
        self.kind = manifest.kind
        self.classes_ = list(DETECTOR_CLASSES)
        for m in self.members:
            if [str(c) for c in m.classes_] != DETECTOR_CLASSES:
                raise WafertkError(f"ensemble detector member classes {list(m.classes_)} are "
                                   f"not {DETECTOR_CLASSES}")
        cnns = [m for m in self.members if is_cnn(m)]
        self.input_size = int(cnns[0].input_size) if cnns else None
        self.temperature = float(manifest.extra.get("temperature", 1.0) or 1.0)
        thr = manifest.extra.get("threshold")
        self.threshold = None if thr is None else float(thr)
        self.review_below = float(manifest.extra.get("review_below", 0.0) or 0.0)
        self.screen_member, self.screen_below = _screen_of(manifest.extra.get("screen"),
                                                           self.members)
        fitted = (manifest.extra.get("screen") or {}).get("threshold", self.threshold)
        self.screen_threshold = None if self.screen_below is None or fitted is None \
            else float(fitted)

    def prepare_features(self, ws) -> list | None:
        """The feature matrices of the feature-model members (None for the CNNs): the CPU
        work of a batch, which the inspection runs in its read-ahead thread. None with a
        screen: the features of the wafers it lets through are extracted in
        :meth:`p_defect`."""
        if self.screen_below is not None:
            return None
        return [None if is_cnn(m) else m.transform_features(ws) for m in self.members]

    def _maps_for(self, m, ws, maps: np.ndarray | None) -> np.ndarray:
        from wafertk.data.preprocess import resize_maps

        if maps is not None and m.input_size == self.input_size:
            return maps
        return resize_maps(ws, m.input_size)

    def p_defect(self, ws, maps: np.ndarray | None = None, features: list | None = None,
                 batch_size: int = 1024) -> np.ndarray:
        """Calibrated P(defective) of each wafer, shape (n,).

        With a screen (:attr:`screen_below`), the wafers it passes get their single-pass
        P(defective) from the screening CNN; the others the whole ensemble's.

        Parameters
        ----------
        ws : WaferSet
        maps : ndarray, optional
            ``ws`` already resized to :attr:`input_size` (reused by the CNN members of that
            size).
        features : list, optional
            :meth:`prepare_features` of ``ws``.
        batch_size : int, default 1024
        """
        if len(ws) == 0:
            return np.zeros(0)
        if self.screen_below is None:
            return self._p_all(ws, maps, features, batch_size)
        p0, raw0 = self.screen_proba(ws, maps, batch_size)
        out = p0.copy()
        idx = np.flatnonzero(p0 >= self.screen_below)
        if len(idx) == len(ws):  # nothing screened out: no copy of the batch
            return self._p_all(ws, maps, features, batch_size, {self.screen_member: raw0})
        if len(idx):
            feats = None if features is None else [None if f is None else _rows(f, idx)
                                                   for f in features]
            out[idx] = self._p_all(ws.take(idx), None if maps is None else maps[idx], feats,
                                   batch_size, {self.screen_member: raw0[idx]})
        return out

    def screen_proba(self, ws, maps: np.ndarray | None = None, batch_size: int = 1024
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The screening CNN member's single-pass P(defective) and raw outputs on ``ws``.

        Parameters
        ----------
        ws : WaferSet
        maps : ndarray, optional
            ``ws`` already resized to :attr:`input_size`.
        batch_size : int, default 1024

        Returns
        -------
        (ndarray of shape (n,), ndarray of shape (n, 1))
            The member's calibrated P(defective), float64, and its raw sigmoid outputs.

        Raises
        ------
        WafertkError
            The ensemble has no screen.
        """
        if self.screen_member is None:
            raise WafertkError("this ensemble detector has no screen")
        m = self.members[self.screen_member]
        raw = m.forward(m.prepare(ws, maps=self._maps_for(m, ws, maps)), batch_size,
                        tta="none")
        return np.asarray(m.calibrate(raw)[:, 1], np.float64), raw

    def _p_all(self, ws, maps, features, batch_size, identity: dict | None = None
               ) -> np.ndarray:
        """The whole ensemble's calibrated P(defective) (``identity``: member index -> raw
        outputs of the untransformed maps, already computed)."""
        total = np.zeros(len(ws))
        for i, (w, m) in enumerate(zip(self.weights_, self.members, strict=True)):
            if is_cnn(m):
                p = m.calibrate(m.forward(m.prepare(ws, maps=self._maps_for(m, ws, maps)),
                                          batch_size, identity=(identity or {}).get(i)))[:, 1]
            else:
                x = features[i] if features is not None else m.transform_features(ws)
                p = m.predict_proba_features(x)[:, 1]
            total += w * np.asarray(p, np.float64)
        if self.temperature == 1.0:
            return total
        return apply_temperature(logits_from_proba(total), self.temperature)

    def predict_proba(self, ws, batch_size: int = 1024) -> np.ndarray:
        """Calibrated ``[P(good), P(defective)]``, shape (n, 2)."""
        p = self.p_defect(ws, batch_size=batch_size)
        return np.stack([1 - p, p], axis=1)

    def predict(self, ws, batch_size: int = 1024) -> np.ndarray:
        """``defective`` where P(defective) >= :attr:`threshold` (0.5 if unset), else
        ``good``."""
        thr = 0.5 if self.threshold is None else self.threshold
        return np.where(self.p_defect(ws, batch_size=batch_size) >= thr, "defective",
                        "good").astype(object)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{getattr(m, 'kind', type(m).__name__)}:{w:.2f}"
                          for m, w in zip(self.members, self.weights_, strict=True))
        screen = ("" if self.screen_below is None else
                  f", screen=member {self.screen_member} below {self.screen_below:.4g}")
        return f"EnsembleDetector({kinds}, threshold={self.threshold}{screen})"


def _rows(x, idx: np.ndarray):
    """Rows ``idx`` of a feature matrix (ndarray or DataFrame)."""
    return x.iloc[idx] if hasattr(x, "iloc") else x[idx]


def _screen_of(screen, members: Sequence) -> tuple[int | None, float | None]:
    """``(member, below)`` of a manifest's ``extra.screen`` (``(None, None)`` without one).

    Raises
    ------
    WafertkError
        Not a mapping with a CNN member's index and a level in (0, 1).
    """
    if screen is None:
        return None, None
    try:
        member, below = screen["member"], float(screen["below"])
    except (KeyError, TypeError, ValueError):
        raise WafertkError(f"extra.screen must name a member and a level, got {screen!r}"
                           ) from None
    if not isinstance(member, (int, np.integer)) or isinstance(member, bool):
        raise WafertkError(f"extra.screen member must be an integer index, got {member!r}")
    if not 0 <= member < len(members) or not is_cnn(members[member]):
        raise WafertkError(f"extra.screen member {member} is not a CNN member of the ensemble")
    if not 0 < below < 1:
        raise WafertkError(f"extra.screen level must be in (0, 1), got {below}")
    return int(member), below


def fit_screen(detector: EnsembleDetector, ws, p_all: np.ndarray, threshold: float, *,
               margin: float = 0.5, member: int | None = None, batch_size: int = 1024,
               maps: np.ndarray | None = None) -> dict:
    """Choose an ensemble detector's screen on calibration wafers.

    The level is ``margin`` times the lowest single-pass P(defective) of the screening CNN
    among the wafers the whole ensemble flags (``p_all >= threshold``), capped at the
    threshold: none of them would have been screened out, with room to spare for new wafers,
    and no wafer it passes is flagged.

    Parameters
    ----------
    detector : EnsembleDetector
    ws : WaferSet
        The calibration wafers (labels not needed).
    p_all : ndarray of shape (n,)
        The whole ensemble's calibrated P(defective) of ``ws`` (no screen).
    threshold : float
        Its decision threshold.
    margin : float, default 0.5
        In (0, 1]; lower keeps more wafers for the whole ensemble.
    member : int, optional
        The screening CNN member; default the detector's screen member, else its first CNN.
    batch_size : int, default 1024
    maps : ndarray, optional
        ``ws`` resized to the detector's :attr:`~EnsembleDetector.input_size`.

    Returns
    -------
    dict
        ``extra.screen``: ``member``, ``below``, ``margin``, ``threshold`` (the one it was
        fitted for), and on these wafers ``n``, ``n_flagged``, ``passed_on`` (share that the
        whole ensemble runs on).

    Raises
    ------
    WafertkError
        A margin outside (0, 1], no CNN member, no wafer flagged, or a level outside (0, 1).
    """
    if not 0 < margin <= 1:
        raise WafertkError(f"screen margin must be in (0, 1], got {margin}")
    if member is None:
        member = detector.screen_member
    if member is None:
        cnns = [i for i, m in enumerate(detector.members) if is_cnn(m)]
        if not cnns:
            raise WafertkError("a screen needs a CNN member in the ensemble detector")
        member = cnns[0]
    saved = detector.screen_member
    detector.screen_member = int(member)
    try:
        _screen_of({"member": member, "below": 0.5}, detector.members)
        p0, _ = detector.screen_proba(ws, maps, batch_size)
    finally:
        detector.screen_member = saved
    flagged = np.asarray(p_all) >= threshold
    if not flagged.any():
        raise WafertkError("no wafer is flagged at the threshold: cannot fit a screen")
    # never above the threshold: a wafer passed with its single-pass P is never flagged
    below = float(min(margin * p0[flagged].min(), threshold))
    if not 0 < below < 1:
        raise WafertkError(f"cannot fit a screen: its level would be {below:.3g} (a flagged "
                           "wafer's single-pass P(defective) is 0, or the threshold is 1)")
    return {"member": int(member), "below": below, "margin": float(margin),
            "threshold": float(threshold), "n": int(len(p0)), "n_flagged": int(flagged.sum()),
            "passed_on": float((p0 >= below).mean())}


def _normalised_weights(weights: Sequence[float], n: int) -> np.ndarray:
    """``weights`` summing to 1: one non-negative value per member, not all zero."""
    w = np.asarray(weights, np.float64)
    if len(w) != n or not len(w) or (w < 0).any() or w.sum() <= 0:
        raise WafertkError("ensemble weights must be one non-negative value per member, "
                           "not all zero")
    return w / w.sum()


def build_ensemble(members: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                   weights: Sequence[float] | None = None) -> Path:
    """Write an ensemble model folder from model folders or shipped names.

    Parameters
    ----------
    members : sequence of str or os.PathLike
        Two or more pattern classifiers (``cnn-classifier`` / ``xgboost-classifier``
        folders, or shipped names such as ``classifier`` and ``xgboost``) with the same
        classes in the same order: an ``ensemble-classifier``; or two or more detectors
        (``cnn-detector`` folders, ``xgboost-classifier`` folders trained with ``classes:
        binary``): an ``ensemble-detector``.
    out : str or os.PathLike
        The new folder, written atomically.
    weights : sequence of float, optional
        One per member (default equal weights).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    WafertkError
        Fewer than two members, a member of another kind, different classes, detectors
        mixed with pattern classifiers, bad weights, or a member that does not load
        (checked before the folder is put in place).
    """
    from wafertk._atomic import atomic_path
    from wafertk.registry import resolve_model

    if len(members) < 2:
        raise WafertkError("an ensemble needs at least two models")
    weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
    if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
        raise WafertkError(f"give one non-negative weight per member ({len(members)}), "
                           "not all zero")
    folders = [resolve_model(m) for m in members]
    mans = [load_manifest(f, MEMBER_KINDS + DETECTOR_MEMBER_KINDS) for f in folders]
    classes = list(mans[0].classes)
    for f, m in zip(folders[1:], mans[1:], strict=True):
        if list(m.classes) != classes:
            raise WafertkError(f"{f}: classes {list(m.classes)} differ from {folders[0]}'s "
                               f"{classes}")
    detector = classes == DETECTOR_CLASSES
    for f, m in zip(folders, mans, strict=True):
        if m.kind not in (DETECTOR_MEMBER_KINDS if detector else MEMBER_KINDS):
            raise WafertkError(f"{f}: a {m.kind} cannot be a member of an ensemble of "
                               f"{'detectors' if detector else 'pattern classifiers'}")
    with atomic_path(out, directory=True) as tmp:
        entries = []
        for i, (f, m, w) in enumerate(zip(folders, mans, weights, strict=True)):
            rel = f"members/{i}-{m.kind}"
            (tmp / rel).mkdir(parents=True)
            for name in ("manifest.json", m.model_file, "config.yaml"):  # not run outputs
                if (f / name).is_file():
                    shutil.copy2(f / name, tmp / rel / name)
            entries.append({"path": rel, "kind": m.kind, "weight": w, "from": str(f)})
        (tmp / MEMBERS_FILE).write_text(json.dumps({"members": entries}, indent=2) + "\n")
        write_manifest(tmp, Manifest(
            kind=DETECTOR_KIND if detector else KIND, model_file=MEMBERS_FILE,
            classes=classes, input_size=None,
            preprocessing={"members": [e["kind"] for e in entries]},
            extra={"temperature": 1.0, "members": entries}))
        load_ensemble(tmp)  # every member loads: nothing is renamed into place otherwise
    return Path(out)


def load_ensemble(folder: str | os.PathLike, manifest: Manifest | None = None
                  ) -> EnsembleClassifier | EnsembleDetector:
    """Load an ensemble folder written by :func:`build_ensemble` (the registry's loader).

    Raises
    ------
    ModelFileError
        A missing or malformed ``members.json``, a member folder outside the ensemble, or a
        member that does not load.
    """
    from wafertk.registry import load_model

    folder = Path(folder)
    if manifest is None:
        manifest = load_manifest(folder, (KIND, DETECTOR_KIND))
    detector = manifest.kind == DETECTOR_KIND
    path = folder / manifest.model_file
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["members"]
        rels = [str(e["path"]) for e in entries]
        weights = [float(e["weight"]) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(path, f"malformed ensemble member list ({exc})") from None
    root = folder.resolve()
    members = []
    for rel in rels:
        sub = (folder / rel).resolve()
        if root not in sub.parents:
            raise ModelFileError(path, f"member {rel!r} lies outside the ensemble folder")
        member = load_model(sub, kind=DETECTOR_MEMBER_KINDS if detector else MEMBER_KINDS)
        if hasattr(member, "n_jobs"):
            # features in this (TensorFlow-threaded) process: no worker pool forked from it
            member.n_jobs = 1
        members.append(member)
    try:
        return (EnsembleDetector if detector else EnsembleClassifier)(members, weights,
                                                                      manifest)
    except WafertkError as exc:
        raise ModelFileError(folder, str(exc)) from None
