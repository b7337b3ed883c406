"""Batch inspection of a wafers.h5 file: phase-1 detection and two-phase pattern classification.

:class:`TwoPhaseInspector` is the core: phase 1 (a ``cnn-detector``) flags defective wafers,
phase 2 (a ``cnn-classifier``, or any predictor with ``classes_`` and
``predict_proba(WaferSet)``, e.g. the XGBoost model) names the pattern. :func:`detect` and
:func:`classify` stream a file through it in batches (memory bounded by one batch), with
reading and resizing of the next batch in a background thread while the models run, and
write ``out/predictions.csv`` (one row per wafer, input order) and ``out/report.html``.

Outputs are staged in a temporary folder beside ``out/`` and moved in only when complete, so
an error leaves nothing partial in ``out/``.

Columns of ``predictions.csv``:

* detect: ``wafer_id, lot, wafer_index, p_defect, defective`` (+ ``label`` if labeled)
* classify: the same, then ``pattern, confidence, review, top1, p_top1, top2, p_top2, top3,
  p_top3`` (+ ``label``). ``p_defect`` is the calibrated P(defective); ``defective`` is 1 when
  it reaches the detector's threshold (from its manifest). In two-phase mode wafers that phase 1
  passes get ``pattern = none``, ``confidence = 1 - p_defect``, ``top1 = none`` and empty
  ``top2``/``top3``; flagged wafers get the classifier's calibrated top-3 and
  ``confidence = p_top1`` (conditional on being defective). Without two-phase, phase 2 runs on
  every wafer and ``p_defect``/``defective`` are empty. ``review`` is 1 when ``confidence`` is
  below the model's ``review_below`` (manifest; default 0.6).

A wafer file without ``wafer_id``/``lot``/``wafer_index`` datasets still works: ids default to
the row number, lots to empty and indices to -1 (the report then has a single unnamed lot).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wafertk.data.h5 import WaferFile
from wafertk.data.waferset import NONE_CLASS, WaferSet
from wafertk.errors import ModelFileError, WafertkError

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "models" / "shipped"
DEFAULT_DETECTOR = SHIPPED_DIR / "detector"
DEFAULT_CLASSIFIER = SHIPPED_DIR / "classifier"
DEFAULT_XGBOOST = SHIPPED_DIR / "xgboost"
DEFAULT_REVIEW_BELOW = 0.6

DETECT_COLUMNS = ["wafer_id", "lot", "wafer_index", "p_defect", "defective"]
CLASSIFY_COLUMNS = DETECT_COLUMNS + ["pattern", "confidence", "review", "top1", "p_top1",
                                     "top2", "p_top2", "top3", "p_top3"]
PHASE2_KINDS = ("cnn-classifier", "xgboost-classifier")


def load_detector(path: str | os.PathLike | None = None):
    """Load a phase-1 detector (default: the shipped one); checks kind and classes."""
    from wafertk.models.manifest import load_predictor

    folder = Path(path) if path is not None else DEFAULT_DETECTOR
    det = load_predictor(folder, "cnn-detector")
    if list(det.classes_) != ["good", "defective"]:
        raise ModelFileError(folder, f"detector classes {det.classes_} are not "
                             "['good', 'defective']")
    return det


def load_classifier(path: str | os.PathLike | None = None):
    """Load a phase-2 pattern model: a folder, ``"xgboost"`` (shipped XGBoost) or None (CNN)."""
    from wafertk.models.manifest import load_predictor

    if path is None:
        folder = DEFAULT_CLASSIFIER
    elif str(path) == "xgboost":
        folder = DEFAULT_XGBOOST
        if not folder.is_dir():
            raise ModelFileError(folder, "no shipped XGBoost model in this installation")
    else:
        folder = Path(path)
    model = load_predictor(folder, PHASE2_KINDS)
    if hasattr(model, "n_jobs"):
        # Feature extraction in this (TensorFlow-threaded) process: no forked worker pool.
        model.n_jobs = 1
    return model


def _is_cnn(model) -> bool:
    return hasattr(model, "prepare") and hasattr(model, "forward") and hasattr(model, "calibrate")


class TwoPhaseInspector:
    """Phase 1 detector + phase 2 pattern classifier over WaferSet batches.

    Parameters
    ----------
    detector : predictor or None
        A ``cnn-detector`` predictor (:func:`load_detector`); None = no phase 1.
    classifier : predictor or None
        Phase-2 predictor (``classes_``, ``predict_proba``); None = detection only.
    two_phase : bool, default True
        Run phase 2 only on wafers phase 1 flags (needs both models).
    review_below : float, optional
        Review flag threshold on the confidence (default from the manifests, else 0.6).
    threshold : float, optional
        Phase-1 decision threshold on the calibrated P(defective), overriding the detector's
        (chosen on validation for a target recall; lower it for more recall, raise it for
        more precision). Must be in (0, 1).

    Examples
    --------
    >>> insp = TwoPhaseInspector(load_detector(), load_classifier())   # doctest: +SKIP
    >>> table = insp.inspect_batch(ws)                                 # doctest: +SKIP
    """

    def __init__(self, detector=None, classifier=None, *, two_phase: bool = True,
                 review_below: float | None = None, threshold: float | None = None) -> None:
        if detector is None and classifier is None:
            raise WafertkError("need a detector, a classifier or both")
        if two_phase and (detector is None or classifier is None):
            two_phase = False
        self.detector = detector
        self.classifier = classifier
        self.two_phase = two_phase
        if review_below is None:
            src = classifier if classifier is not None else detector
            man = getattr(src, "manifest", None)
            review_below = (man.extra.get("review_below") if man is not None else None)
        self.review_below = float(DEFAULT_REVIEW_BELOW if review_below is None
                                  else review_below)
        if not 0.0 <= self.review_below <= 1.0:
            raise WafertkError(f"review level must be in [0, 1], got {self.review_below}")
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise WafertkError(f"detector threshold must be in (0, 1), got {threshold}")
        self.threshold = None
        if detector is not None:
            thr = getattr(detector, "threshold", None) if threshold is None else threshold
            self.threshold = 0.5 if thr is None else float(thr)
        self.columns = (DETECT_COLUMNS if classifier is None else CLASSIFY_COLUMNS)
        self._shared_resize = (
            detector is not None and classifier is not None and _is_cnn(classifier)
            and getattr(classifier, "input_size", None) == getattr(detector, "input_size", None)
        )

    # ---------------------------------------------------------------- preprocessing
    def prepare(self, ws: WaferSet) -> dict:
        """CPU-side work that needs no model output (run ahead in a background thread)."""
        from wafertk.data.preprocess import resize_maps

        prep: dict = {}
        if self.detector is not None:
            prep["det_maps"] = resize_maps(ws, self.detector.input_size)
        if self.classifier is not None and not self.two_phase and _is_cnn(self.classifier):
            shared = prep["det_maps"] if self._shared_resize else None
            prep["cls_inputs"] = self.classifier.prepare(ws, maps=shared)
        return prep

    # ---------------------------------------------------------------- inference
    def inspect_batch(self, ws: WaferSet, prep: dict | None = None, batch_size: int = 1024
                      ) -> dict[str, np.ndarray]:
        """Predictions of one batch as columns (see the module docstring).

        Parameters
        ----------
        ws : WaferSet
        prep : dict, optional
            Output of :meth:`prepare` for ``ws`` (computed here if absent).
        batch_size : int
            Forward-pass batch size.

        Returns
        -------
        dict of str to ndarray of shape (n,)
        """
        if prep is None:
            prep = self.prepare(ws)
        n = len(ws)
        cols: dict[str, np.ndarray] = {
            "wafer_id": ws.wafer_id.astype(str),
            "lot": ws.lot.astype(str),
            "wafer_index": ws.wafer_index.astype(np.int64),
        }
        p_def = np.full(n, np.nan)
        defective = np.zeros(n, bool)
        if self.detector is not None:
            raw = self.detector.forward((prep["det_maps"],), batch_size)
            p_def = self.detector.calibrate(raw)[:, 1]
            defective = p_def >= self.threshold
        if self.classifier is None:
            cols["p_defect"] = p_def
            cols["defective"] = defective.astype(np.int64)
            return cols
        cols["p_defect"] = p_def if self.two_phase else np.full(n, np.nan)
        cols["defective"] = (defective.astype(np.int64) if self.two_phase
                             else np.full(n, -1, np.int64))
        rows = np.flatnonzero(defective) if self.two_phase else np.arange(n)
        names = np.asarray(self.classifier.classes_, dtype=object)
        k = min(3, len(names))
        pattern = np.full(n, NONE_CLASS, dtype=object)
        conf = 1.0 - p_def if self.two_phase else np.zeros(n)
        tops = [np.full(n, "", dtype=object) for _ in range(3)]
        ptops = [np.full(n, np.nan) for _ in range(3)]
        if self.two_phase:
            tops[0][:] = NONE_CLASS
            ptops[0][:] = 1.0 - p_def
        if len(rows):
            proba = self._phase2(ws, prep, rows, batch_size)
            order = np.argsort(-proba, axis=1)[:, :k]
            for j in range(k):
                tops[j][rows] = names[order[:, j]]
                ptops[j][rows] = proba[np.arange(len(rows)), order[:, j]]
            pattern[rows] = tops[0][rows]
            conf = conf.copy()
            conf[rows] = ptops[0][rows]
        cols["pattern"] = pattern
        cols["confidence"] = conf
        cols["review"] = (conf < self.review_below).astype(np.int64)
        for j in range(3):
            cols[f"top{j + 1}"] = tops[j]
            cols[f"p_top{j + 1}"] = ptops[j]
        return cols

    def _phase2(self, ws: WaferSet, prep: dict, rows: np.ndarray, batch_size: int) -> np.ndarray:
        clf = self.classifier
        if not _is_cnn(clf):
            return np.asarray(clf.predict_proba(ws.take(rows)), np.float64)
        if "cls_inputs" in prep:  # phase 2 on every wafer, prepared ahead
            return clf.calibrate(clf.forward(prep["cls_inputs"], batch_size))[rows]
        sub = ws.take(rows) if len(rows) < len(ws) else ws
        shared = prep["det_maps"][rows] if self._shared_resize else None
        return clf.calibrate(clf.forward(clf.prepare(sub, maps=shared), batch_size))

    # ---------------------------------------------------------------- files
    def run(self, wafers_path: str | os.PathLike, out_dir: str | os.PathLike, *,
            batch_size: int = 1024, report: bool = True, progress: bool | None = None
            ) -> InspectionResult:
        """Inspect a whole file; write ``predictions.csv`` (and ``report.html``) into ``out_dir``.

        Parameters
        ----------
        wafers_path : str or os.PathLike
            A wafers.h5 file (streamed in batches of ``batch_size``).
        out_dir : str or os.PathLike
            Output folder (created; the two files are replaced when complete).
        batch_size : int, default 1024
        report : bool, default True
            Also write the self-contained ``report.html``.
        progress : bool, optional
            tqdm progress bar; default on when standard error is a terminal.

        Returns
        -------
        InspectionResult
        """
        if batch_size < 1:
            raise WafertkError(f"batch size must be at least 1, got {batch_size}")
        t0 = time.perf_counter()
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise WafertkError(f"{out_dir}: exists and is not a folder")
        builder = None
        if report:
            from wafertk.report import BatchReportBuilder

            builder = BatchReportBuilder(mode=self.mode)
        with WaferFile(wafers_path) as wf:
            n_total = len(wf)
            has_labels = "label" in wf.dataset_names()
            columns = self.columns + (["label"] if has_labels else [])
            parent = out_dir.parent if str(out_dir.parent) else Path(".")
            parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
            try:
                n_def = 0
                with open(stage / "predictions.csv", "w", newline="") as fh:
                    fh.write(",".join(columns) + "\n")
                    bar = _progress(n_total, progress)
                    for ws, prep in _prefetch(wf.iter_batches(batch_size), self.prepare):
                        cols = self.inspect_batch(ws, prep, batch_size)
                        if has_labels:
                            cols["label"] = ws.label_strings().astype(str)
                        _write_rows(fh, cols, columns)
                        n_def += int((cols["defective"] == 1).sum()) if self.detector \
                            is not None and (self.two_phase or self.classifier is None) else 0
                        if builder is not None:
                            builder.add(ws, cols)
                        if bar is not None:
                            bar.update(len(ws))
                    if bar is not None:
                        bar.close()
                t_pred = time.perf_counter() - t0
                if builder is not None:
                    builder.meta.update(source=str(wafers_path), seconds=round(t_pred, 2),
                                        detector=_describe(self.detector),
                                        classifier=_describe(self.classifier),
                                        two_phase=self.two_phase, threshold=self.threshold,
                                        review_below=self.review_below)
                    builder.write(stage / "report.html")
                out_dir.mkdir(parents=True, exist_ok=True)
                for name in ("predictions.csv", "report.html"):
                    if (stage / name).exists():
                        os.replace(stage / name, out_dir / name)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        secs = time.perf_counter() - t0
        log.info("%d wafers in %.1fs (%.0f/s)", n_total, secs, n_total / max(secs, 1e-9))
        return InspectionResult(
            out_dir=out_dir, n_wafers=n_total, n_defective=n_def, seconds=secs, mode=self.mode,
            predictions=out_dir / "predictions.csv",
            report=(out_dir / "report.html") if report else None,
        )

    @property
    def mode(self) -> str:
        if self.classifier is None:
            return "detect"
        return "two-phase" if self.two_phase else "classify"


@dataclass
class InspectionResult:
    """What an inspection run wrote and how long it took."""

    out_dir: Path
    n_wafers: int
    n_defective: int
    seconds: float
    mode: str
    predictions: Path
    report: Path | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the command line."""
        rate = self.n_wafers / max(self.seconds, 1e-9)
        defects = (f", {self.n_defective} defective" if self.mode != "classify" else "")
        return (f"{self.n_wafers} wafers{defects} ({self.mode}, {self.seconds:.1f}s, "
                f"{rate:.0f} wafers/s) -> {self.predictions}"
                + (f", {self.report}" if self.report else ""))


def _describe(model) -> str | None:
    if model is None:
        return None
    man = getattr(model, "manifest", None)
    if man is None:
        return type(model).__name__
    return f"{man.kind} ({man.created or 'unknown date'}, input {man.input_size})"


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="wafer", unit_scale=True, leave=False)


_FLOAT_COLS = {"p_defect", "confidence", "p_top1", "p_top2", "p_top3"}


def _write_rows(fh, cols: dict[str, np.ndarray], columns: list[str]) -> None:
    """Append rows as CSV (floats with 4 decimals, NaN and -1 flags as empty)."""
    parts = []
    for c in columns:
        v = cols[c]
        if c in _FLOAT_COLS:
            s = np.char.mod("%.4f", np.asarray(v, np.float64)).astype(object)
            s[np.isnan(np.asarray(v, np.float64))] = ""
        elif c == "defective":
            s = np.asarray(v).astype(str).astype(object)
            s[np.asarray(v) < 0] = ""
        elif c in ("wafer_id", "lot", "label", "pattern", "top1", "top2", "top3"):
            s = np.array([_csv_quote(x) for x in np.asarray(v).astype(str)], dtype=object)
        else:
            s = np.asarray(v).astype(str).astype(object)
        parts.append(s)
    fh.write("".join(",".join(row) + "\n" for row in zip(*parts, strict=True)))


def _csv_quote(s: str) -> str:
    if any(ch in s for ch in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


_DONE = object()


def _prefetch(batches, prepare, depth: int = 2):
    """Yield ``(batch, prepare(batch))`` with reading and preparing done in a worker thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for ws in batches:
                if stop.is_set():
                    return
                q.put((ws, prepare(ws)))
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
            return
        q.put(_DONE)

    t = threading.Thread(target=work, name="wafertk-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def detect(wafers_path: str | os.PathLike, out_dir: str | os.PathLike, *, detector=None,
           batch_size: int = 1024, report: bool = True, progress: bool | None = None,
           threshold: float | None = None) -> InspectionResult:
    """Phase 1 only: P(defective) and the good/defective decision for every wafer.

    Parameters
    ----------
    wafers_path : str or os.PathLike
        wafers.h5 file.
    out_dir : str or os.PathLike
        Gets ``predictions.csv`` (columns :data:`DETECT_COLUMNS` [+ label]) and ``report.html``.
    detector : path, predictor or None
        Model folder or loaded predictor; None = shipped detector.
    batch_size : int, default 1024
    report : bool, default True
    progress : bool, optional
    threshold : float, optional
        Decision threshold on P(defective) instead of the detector's own.

    Returns
    -------
    InspectionResult
    """
    det = detector if _is_cnn(detector) else load_detector(detector)
    insp = TwoPhaseInspector(det, None, two_phase=False, threshold=threshold)
    return insp.run(wafers_path, out_dir, batch_size=batch_size, report=report,
                    progress=progress)


def classify(wafers_path: str | os.PathLike, out_dir: str | os.PathLike, *,
             two_phase: bool = True, detector=None, classifier=None, batch_size: int = 1024,
             report: bool = True, progress: bool | None = None, threshold: float | None = None,
             review_below: float | None = None) -> InspectionResult:
    """Defect pattern of every wafer (two-phase: only wafers phase 1 flags go to phase 2).

    Parameters
    ----------
    wafers_path : str or os.PathLike
    out_dir : str or os.PathLike
        Gets ``predictions.csv`` (:data:`CLASSIFY_COLUMNS` [+ label]) and ``report.html``.
    two_phase : bool, default True
    detector : path, predictor or None
        None = shipped detector (loaded only when ``two_phase``).
    classifier : path, ``"xgboost"``, predictor or None
        None = shipped CNN classifier.
    batch_size : int, default 1024
    report : bool, default True
    progress : bool, optional
    threshold : float, optional
        Phase-1 threshold on P(defective) instead of the detector's own.
    review_below : float, optional
        Flag wafers for review below this confidence instead of the model's level.

    Returns
    -------
    InspectionResult
    """
    det = None
    if two_phase:
        det = detector if _is_cnn(detector) else load_detector(detector)
    clf = classifier if hasattr(classifier, "predict_proba") else load_classifier(classifier)
    insp = TwoPhaseInspector(det, clf, two_phase=two_phase, threshold=threshold,
                             review_below=review_below)
    return insp.run(wafers_path, out_dir, batch_size=batch_size, report=report,
                    progress=progress)
