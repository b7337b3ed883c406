"""Batch inspection: phase-1 detection and two-phase pattern classification of wafers.h5 files.

* :class:`TwoPhaseClassifier` (:mod:`wafertk.inspect.model`): the decision logic over
  WaferSet batches, no files;
* :class:`OutputFolder` and :class:`PredictionWriter` (:mod:`wafertk.inspect.output`): output
  folders replaced as one unit under a lock, and the ``predictions.csv`` writer;
* :func:`detect`, :func:`classify`, :func:`inspect_file` (:mod:`wafertk.inspect.runner`): a
  whole file streamed through a classifier into an output folder.

Columns of ``predictions.csv``:

* detect: ``wafer_id, lot, wafer_index, p_defect, defective`` (+ ``label`` if labeled)
* detect with an unsupervised anomaly model (:class:`AnomalyInspector`): ``wafer_id, lot,
  wafer_index, anomaly_score, defective`` (+ ``label``); higher score = more anomalous
* classify: the same, then ``pattern, confidence, review, top1, p_top1, top2, p_top2, top3,
  p_top3`` (+ ``label``). ``p_defect`` is the calibrated P(defective); ``defective`` is 1 when
  it reaches the detector's threshold. In the default two-phase mode wafers that phase 1 passes
  get ``pattern = none``, ``confidence = 1 - p_defect``, ``top1 = none`` and empty
  ``top2``/``top3``; flagged wafers get the classifier's calibrated top-3 and ``confidence =
  p_top1`` (conditional on being defective). In single-phase mode (wafers already known to be
  defective) phase 2 runs on every wafer and ``p_defect``/``defective`` are empty. ``review``
  is 1 when ``confidence`` is below the review level (manifest; default 0.6).

A wafer file without ``wafer_id``/``lot``/``wafer_index`` datasets still works: ids default to
the row number, lots to empty and indices to -1 (the report then has a single unnamed lot).
"""

from wafertk.inspect.model import (
    ANOMALY_COLUMNS,
    CLASSIFY_COLUMNS,
    DEFAULT_REVIEW_BELOW,
    DETECT_COLUMNS,
    MODES,
    AnomalyInspector,
    TwoPhaseClassifier,
)
from wafertk.inspect.output import OUTPUT_FILES, RUN_FILE, OutputFolder, PredictionWriter
from wafertk.inspect.runner import (
    DEFAULT_CLASSIFIER,
    DEFAULT_DETECTOR,
    DEFAULT_XGBOOST,
    SHIPPED_DIR,
    InspectionResult,
    classify,
    detect,
    inspect_file,
    load_classifier,
    load_detector,
)

__all__ = [
    "ANOMALY_COLUMNS",
    "CLASSIFY_COLUMNS",
    "DEFAULT_CLASSIFIER",
    "DEFAULT_DETECTOR",
    "DEFAULT_REVIEW_BELOW",
    "DEFAULT_XGBOOST",
    "DETECT_COLUMNS",
    "MODES",
    "OUTPUT_FILES",
    "RUN_FILE",
    "SHIPPED_DIR",
    "InspectionResult",
    "OutputFolder",
    "PredictionWriter",
    "AnomalyInspector",
    "TwoPhaseClassifier",
    "classify",
    "detect",
    "inspect_file",
    "load_classifier",
    "load_detector",
]
