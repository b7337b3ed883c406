"""Batch inspection of a wafers.h5 file: :func:`detect`, :func:`classify`, :func:`inspect_file`.

The file is streamed in batches (memory bounded by one batch), with reading and resizing of
the next batch in a background thread while the models run. Outputs (``predictions.csv``, one
row per wafer in input order; ``report.html``; ``run.json`` with the resolved settings) are
staged and replace the output folder as one unit (:class:`~wafertk.inspect.output.OutputFolder`).

Order of work: arguments and the input file are checked and the output folder is claimed
(locked) before any model is loaded, so a bad path or a busy folder fails in milliseconds.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wafertk.data.h5 import WaferFile
from wafertk.errors import ModelFileError, WafertkError
from wafertk.inspect.model import (
    AnomalyInspector,
    TwoPhaseClassifier,
    check_score_threshold,
    check_unit_interval,
)
from wafertk.inspect.output import OutputFolder, PredictionWriter, write_run_file
from wafertk.models.manifest import DETECTOR_CLASSES, DETECTOR_KINDS
from wafertk.registry import SHIPPED_DIR, load_model

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = SHIPPED_DIR / "detector"
#: The default phase 2: the shipped mean of the CNN classifier's and XGBoost's probabilities
#: (chosen on the production validation lots: docs/production.md).
DEFAULT_PHASE2 = "ensemble"
DEFAULT_CLASSIFIER = SHIPPED_DIR / DEFAULT_PHASE2
DEFAULT_XGBOOST = SHIPPED_DIR / "xgboost"
PHASE2_KINDS = ("cnn-classifier", "xgboost-classifier", "ensemble-classifier")
#: Kind of the unsupervised phase 1 (``wafertk detect --unsupervised RUN``).
ANOMALY_KIND = "anomaly-detector"


def _loaded(model) -> bool:
    """Whether ``model`` is an already loaded predictor (not a name or folder)."""
    return hasattr(model, "predict_proba")


def _load(spec, default: str, kinds):
    """A predictor from a shipped model name, a model folder, or None (the default name)."""
    return load_model(default if spec is None else spec, kind=kinds)


def check_model(spec, role: str = "classifier"):
    """Check a model name or folder and its manifest, without loading the model (fast).

    ``role`` is ``"detector"`` or ``"classifier"`` (phase 2); a wrong kind, a missing folder,
    an unknown name or a bad manifest raise the same error as loading would.
    """
    from wafertk.models.manifest import load_manifest
    from wafertk.registry import resolve_model

    if role == "anomaly":
        if spec is None:
            raise WafertkError("an unsupervised detector needs a run folder of "
                               "'wafertk anomaly train'")
        return load_manifest(resolve_model(spec), ANOMALY_KIND)
    kinds = DETECTOR_KINDS if role == "detector" else PHASE2_KINDS
    default = "detector" if role == "detector" else DEFAULT_PHASE2
    return load_manifest(resolve_model(default if spec is None else spec), kinds)


def load_anomaly_inspector(spec, threshold: float | None = None) -> AnomalyInspector:
    """An :class:`~wafertk.inspect.model.AnomalyInspector` over an anomaly run folder (or a
    fitted wafer anomaly detector)."""
    if spec is None:
        raise WafertkError("an unsupervised detector needs a run folder of "
                           "'wafertk anomaly train'")
    det = spec if hasattr(spec, "threshold_") else load_model(spec, kind=ANOMALY_KIND)
    try:
        return AnomalyInspector(det, threshold=threshold)
    except WafertkError as exc:
        if hasattr(spec, "threshold_"):
            raise
        raise ModelFileError(spec, str(exc)) from None


def load_detector(spec=None):
    """Load a phase-1 detector: a model folder or shipped name (default: the shipped one)."""
    det = _load(spec, "detector", DETECTOR_KINDS)
    if list(det.classes_) != DETECTOR_CLASSES:
        raise ModelFileError(spec or DEFAULT_DETECTOR,
                             f"detector classes {det.classes_} are not {DETECTOR_CLASSES}")
    return det  # an ensemble's feature members extract in-process (load_ensemble)


def load_classifier(spec=None):
    """Load a phase-2 pattern model: a folder, a shipped name (``classifier``, ``xgboost``)
    or None (:data:`DEFAULT_PHASE2`, the CNN + XGBoost ensemble)."""
    model = _load(spec, DEFAULT_PHASE2, PHASE2_KINDS)
    if hasattr(model, "n_jobs"):  # ensembles' members: already so (load_ensemble)
        # Feature extraction in this (TensorFlow-threaded) process: no forked worker pool.
        model.n_jobs = 1
    return model


@dataclass
class InspectionResult:
    """What an inspection run wrote and how long it took."""

    out_dir: Path
    n_wafers: int
    n_defective: int | None
    n_review: int | None
    seconds: float
    mode: str
    predictions: Path
    report: Path | None = None
    extra: dict = field(default_factory=dict)

    def details(self) -> str:
        """Counts for the command's summary line."""
        parts = [f"{self.n_wafers:,} wafers"]
        if self.n_defective is not None:
            parts.append(f"{self.n_defective:,} defective")
        if self.n_review is not None:
            parts.append(f"{self.n_review:,} to review")
        rate = self.n_wafers / max(self.seconds, 1e-9)
        return ", ".join(parts) + f" ({self.mode}, {rate:,.0f} wafers/s)"


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` as a positive int, or an error."""
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise WafertkError(f"batch size must be a positive integer, got {batch_size}")
    return int(batch_size)


def inspect_file(model: TwoPhaseClassifier, wafers_path: str | os.PathLike,
                 out_dir: str | os.PathLike, *, batch_size: int = 1024, report: bool = True,
                 progress: bool | None = None, _folder: OutputFolder | None = None,
                 _wf: WaferFile | None = None) -> InspectionResult:
    """Run ``model`` over a whole file into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    model : TwoPhaseClassifier
    wafers_path : str or os.PathLike
        A wafers.h5 file.
    out_dir : str or os.PathLike
        Output folder, replaced as one unit when the run completes.
    batch_size : int, default 1024
    report : bool, default True
        Also write ``report.html``.
    progress : bool, optional
        Progress bar on standard error; default on when it is a terminal.

    Returns
    -------
    InspectionResult
    """
    batch_size = check_batch_size(batch_size)
    t0 = time.perf_counter()
    folder = _folder or OutputFolder(out_dir)
    wf = _wf or WaferFile(wafers_path)
    try:
        with folder as stage:
            counts = _stream(model, wf, stage, batch_size, report, progress, t0,
                             str(wafers_path))
    finally:
        wf.close()
    secs = time.perf_counter() - t0
    log.info("%d wafers in %.1fs (%.0f/s)", counts["n"], secs, counts["n"] / max(secs, 1e-9))
    out = Path(out_dir)
    return InspectionResult(
        out_dir=out, n_wafers=counts["n"], n_defective=counts["defective"],
        n_review=counts["review"], seconds=secs, mode=model.mode,
        predictions=out / "predictions.csv", report=(out / "report.html") if report else None)


def _stream(model: TwoPhaseClassifier, wf: WaferFile, stage: Path, batch_size: int,
            report: bool, progress: bool | None, t0: float, source: str) -> dict:
    builder = None
    if report:
        from wafertk.report import BatchReportBuilder

        builder = BatchReportBuilder(mode=model.mode)
    has_labels = wf.has_labels
    columns = model.columns + (["label"] if has_labels else [])
    bar = _progress(len(wf), progress)
    with open(stage / "predictions.csv", "w", newline="", encoding="utf-8") as fh:
        n, n_def, n_rev = stream_predictions(
            model, wf.iter_batches(batch_size), PredictionWriter(fh, columns),
            batch_size=batch_size, labels=has_labels, builder=builder,
            on_batch=None if bar is None else bar.update)
    if bar is not None:
        bar.close()
    seconds = round(time.perf_counter() - t0, 2)
    settings = model.describe()
    if builder is not None:
        builder.meta.update(source=source, seconds=seconds,
                            two_phase=model.mode == "two-phase", **settings)
        builder.write(stage / "report.html")
    counts = {"n": n, "defective": n_def if model.detector is not None else None,
              "review": n_rev if model.mode not in ("detect", "anomaly") else None}
    from wafertk import __version__

    write_run_file(stage, {"wafertk": __version__, "input": os.path.abspath(source),
                           "batch_size": batch_size, "report": report, **settings,
                           "wafers": counts["n"], "defective": counts["defective"],
                           "review": counts["review"], "seconds": seconds})
    return counts


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="wafer", unit_scale=True, leave=False)


_DONE = object()


def stream_predictions(model: TwoPhaseClassifier, batches, writer: PredictionWriter, *,
                       batch_size: int, labels: bool, builder=None,
                       on_batch: Callable[[int], object] | None = None
                       ) -> tuple[int, int, int]:
    """Predict and write every batch of ``batches`` (reading ahead in a thread).

    The one batch loop of the single-process runner and of the distributed workers: each
    batch's columns (+ ``label`` when ``labels``) go to ``writer`` and ``builder`` (a
    report builder, optional); ``on_batch(n_wafers)`` is called after each batch.

    Returns
    -------
    (int, int, int)
        Wafers, wafers flagged defective, wafers flagged for review.
    """
    n = n_def = n_rev = 0
    for ws, prep in _prefetch(batches, model.prepare):
        cols = model.predict_columns(ws, prep, batch_size)
        if labels:
            cols["label"] = ws.label_strings().astype(str)
        writer.write(cols)
        n += len(ws)
        n_def += int((cols["defective"] == 1).sum())
        if "review" in cols:
            n_rev += int(cols["review"].sum())
        if builder is not None:
            builder.add(ws, cols)
        if on_batch is not None:
            on_batch(len(ws))
    return n, n_def, n_rev


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


def _open_checked(wafers_path, out_dir, batch_size) -> tuple[WaferFile, OutputFolder]:
    """Cheap checks first: batch size, output folder, input file (schema), in that order."""
    check_batch_size(batch_size)
    folder = OutputFolder(out_dir)
    folder.check()
    return WaferFile(wafers_path), folder


def detect(wafers_path: str | os.PathLike, out_dir: str | os.PathLike, *, detector=None,
           batch_size: int = 1024, report: bool = True, progress: bool | None = None,
           threshold: float | None = None, unsupervised=None) -> InspectionResult:
    """Phase 1 only: P(defective) and the good/defective decision for every wafer.

    With ``unsupervised`` (an anomaly run folder of ``wafertk anomaly train``) an anomaly
    detector replaces the supervised one: ``predictions.csv`` has ``anomaly_score`` (higher =
    more anomalous) instead of ``p_defect`` (:data:`~wafertk.inspect.ANOMALY_COLUMNS`), and
    the report lists the most anomalous wafers first.

    Parameters
    ----------
    wafers_path : str or os.PathLike
        wafers.h5 file.
    out_dir : str or os.PathLike
        Gets ``predictions.csv`` (:data:`~wafertk.inspect.DETECT_COLUMNS` [+ label]),
        ``report.html`` and ``run.json``.
    detector : str, path, predictor or None
        Shipped model name, model folder or loaded predictor; None = shipped detector.
    batch_size : int, default 1024
    report : bool, default True
    progress : bool, optional
    threshold : float, optional
        Decision threshold on P(defective) instead of the detector's own, in (0, 1); with
        ``unsupervised``, on the anomaly score (any finite number).
    unsupervised : str, path or fitted anomaly detector, optional
        Anomaly run folder (kind ``anomaly-detector``) used as phase 1; ``detector`` must
        then be None.

    Returns
    -------
    InspectionResult
    """
    if unsupervised is not None:
        if detector is not None:
            raise WafertkError("give a supervised detector or an unsupervised one, not both")
        check_score_threshold(threshold, "anomaly threshold")
    else:
        check_unit_interval(threshold, "detector threshold", open_low=True, open_high=True)
    wf, folder = _open_checked(wafers_path, out_dir, batch_size)
    try:
        if unsupervised is not None:
            model = load_anomaly_inspector(unsupervised, threshold)
        else:
            det = detector if _loaded(detector) else load_detector(detector)
            model = TwoPhaseClassifier(det, None, mode="detect", threshold=threshold)
    except BaseException:
        wf.close()
        raise
    return inspect_file(model, wafers_path, out_dir, batch_size=batch_size, report=report,
                        progress=progress, _folder=folder, _wf=wf)


def classify(wafers_path: str | os.PathLike, out_dir: str | os.PathLike, *,
             mode: str = "two-phase", detector=None, classifier=None, batch_size: int = 1024,
             report: bool = True, progress: bool | None = None, threshold: float | None = None,
             review_below: float | None = None, two_phase: bool | None = None
             ) -> InspectionResult:
    """Defect pattern of every wafer; two-phase by default (phase 2 only on flagged wafers).

    Parameters
    ----------
    wafers_path : str or os.PathLike
    out_dir : str or os.PathLike
        Gets ``predictions.csv`` (:data:`~wafertk.inspect.CLASSIFY_COLUMNS` [+ label]),
        ``report.html`` and ``run.json``.
    mode : {"two-phase", "single-phase"}, default "two-phase"
        ``"single-phase"`` runs phase 2 on every wafer, naming a defect pattern for each:
        only for wafers already known to be defective. ``detector`` and ``threshold`` do not
        apply there and are an error.
    detector : str, path, predictor or None
        Shipped model name, folder or predictor; None = shipped detector (two-phase only).
    classifier : str, path, predictor or None
        Shipped model name (``"classifier"``, ``"xgboost"``), folder or predictor; None =
        the shipped ``"ensemble"`` (CNN + XGBoost).
    batch_size : int, default 1024
    report : bool, default True
    progress : bool, optional
    threshold : float, optional
        Phase-1 threshold on P(defective) instead of the detector's own, in (0, 1).
    review_below : float, optional
        Flag wafers for review below this confidence instead of the model's level, in [0, 1].
    two_phase : bool, optional
        Older spelling of ``mode``: True = ``"two-phase"``, False = ``"single-phase"``.

    Returns
    -------
    InspectionResult
    """
    if two_phase is not None:
        mode = "two-phase" if two_phase else "single-phase"
    if mode not in ("two-phase", "single-phase"):
        raise WafertkError(f"classify mode must be 'two-phase' or 'single-phase', got {mode!r}")
    if mode == "single-phase" and (detector is not None or threshold is not None):
        opt = "a detector" if detector is not None else "a threshold"
        raise WafertkError(f"single-phase mode has no phase 1, so {opt} does not apply "
                           "(leave it out, or use the default two-phase mode)")
    check_unit_interval(threshold, "detector threshold", open_low=True, open_high=True)
    check_unit_interval(review_below, "review level", open_low=False, open_high=False)
    wf, folder = _open_checked(wafers_path, out_dir, batch_size)
    try:
        det = None
        if mode == "two-phase":
            det = detector if _loaded(detector) else load_detector(detector)
        clf = classifier if hasattr(classifier, "predict_proba") else load_classifier(classifier)
        model = TwoPhaseClassifier(det, clf, mode=mode, threshold=threshold,
                                   review_below=review_below)
    except BaseException:
        wf.close()
        raise
    return inspect_file(model, wafers_path, out_dir, batch_size=batch_size, report=report,
                        progress=progress, _folder=folder, _wf=wf)
