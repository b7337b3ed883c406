"""Inference speed of ``classify --two-phase`` end to end vs the bare forward pass.

    TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1 .venv/bin/python benchmarks/bench_inference.py \
        --data /tmp/wafertk-shipped/train.h5 [--limit N] [--batch-size 1024]

Measures, in one process, on the shipped models. Two pipelines: the **default** (the shipped
``detector``: the mean of the CNN detector with test-time augmentation over 4 rotations and a
binary XGBoost on wafer features; and the ``ensemble`` of the CNN classifier and XGBoost) and
the **fast** one (``--detector detector-fast --classifier classifier``: the same CNN detector
without augmentation or XGBoost, the CNN classifier alone), for which items 3-4 are
measured:

1. ``wafertk.inspect.classify(two_phase=True, report=False)``: read, preprocess, both phases,
   write predictions.csv (wafers/s, peak RSS), for both pipelines; when the default detector
   has a screen (``extra.screen``), also the default pipeline with the screen off, interleaved
   (the A/B of the screen: speed-up, wafers it passes on, decisions that differ);
2. the same with ``report=True`` (the report's extra cost);
3. the bare forward pass of both models on inputs already preprocessed in memory (detector on
   every wafer, classifier on the wafers phase 1 flags), same batch size, the compiled call loop
   the pipeline uses (BatchNorm folded into the convolutions);
4. the detector's compiled loop without the folding, and ``model.predict``, for comparison;
5. what a user sees: the wall time of the ``wafertk classify`` command in a fresh process
   (Python and TensorFlow start-up, model loading, the run, the report), on the same file and
   on the bundled demo sample, and of ``wafertk --help``.

``--data`` defaults to the Training partition as ``wafers.h5``, made from
``../shared/data/wm811k/wm811k_train.npz`` if it is missing.

Writes ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _command_seconds(args: list[str], repeats: int = 2) -> float:
    """Best wall time of a fresh ``wafertk`` process (what a user waits for)."""
    import subprocess

    exe = Path(sys.executable).with_name("wafertk")
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([str(exe), *args], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def _detector_parts(det, ws, maps: np.ndarray, batch_size: int) -> dict:
    """Seconds of each member of an ensemble detector on ``ws``, one after the other (its
    screen's single pass first, if it has one): a CNN member's forward pass with its
    test-time augmentation, a feature member's extraction (each feature set alone, then all
    of them as the member runs them) and its XGBoost, each on every wafer."""
    from wafertk.features import extract_features
    from wafertk.inspect.model import is_cnn

    parts: dict = {}
    if getattr(det, "screen_below", None) is not None:  # the screen's single pass on all
        t = time.perf_counter()
        det.screen_proba(ws, maps, batch_size)
        parts["screen_single_pass_s"] = round(time.perf_counter() - t, 2)
    for i, m in enumerate(getattr(det, "members", [])):
        if is_cnn(m):
            t = time.perf_counter()
            m.calibrate(m.forward(m.prepare(ws, maps=maps), batch_size))
            parts[f"member{i}_cnn_tta_{m.tta}_s"] = round(time.perf_counter() - t, 2)
            continue
        for name in m._sets():
            t = time.perf_counter()
            extract_features(ws, [name], n_jobs=1)
            parts[f"member{i}_features_{name}_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        x = m.transform_features(ws)
        parts[f"member{i}_features_all_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        m.predict_proba_features(x)
        parts[f"member{i}_xgboost_s"] = round(time.perf_counter() - t, 2)
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/wafertk-shipped/train.h5")
    ap.add_argument("--limit", type=int, default=None, help="first N wafers only")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks/results/inference.json"))
    args = ap.parse_args()

    import tensorflow as tf

    from wafertk.data import WaferSet, read_wafers, write_wafers
    from wafertk.data.preprocess import die_metadata, resize_maps
    from wafertk.inspect import classify, load_classifier, load_detector
    from wafertk.models.predictors import forward_pass

    data = Path(args.data)
    if not data.exists():
        from wafertk.data.importers import read_npz_pack

        data.parent.mkdir(parents=True, exist_ok=True)
        write_wafers(read_npz_pack(ROOT.parent / "shared/data/wm811k/wm811k_train.npz"), data)
    tmp = Path(tempfile.mkdtemp(prefix="wafertk-bench-"))
    if args.limit:
        ws_all = read_wafers(data).slice(0, args.limit)
        data = tmp / "wafers.h5"
        write_wafers(ws_all, data)
    rss_start = _rss_mb()
    det, clf = load_detector("detector-fast"), load_classifier("classifier")
    det_d, clf_d = load_detector(), load_classifier()  # the defaults: rot4 TTA, ensemble
    det_u = None  # the default detector without its screen (the whole ensemble on all)
    if getattr(det_d, "screen_below", None) is not None:
        det_u = load_detector()
        det_u.screen_below = None

    # warm-up (graph tracing) on a small batch, not timed
    ws_small = read_wafers(data).slice(0, 256)
    det.forward((resize_maps(ws_small, det.input_size),), args.batch_size)
    clf.forward((resize_maps(ws_small, clf.input_size), die_metadata(ws_small)), args.batch_size)
    for d in (det_d, det_u):
        if d is not None:
            d.p_defect(ws_small, batch_size=args.batch_size)
    clf_d.predict_proba(ws_small.slice(0, 64), args.batch_size)
    del ws_small

    def run_default(detector, name: str) -> float:
        t = time.perf_counter()
        classify(data, tmp / name, detector=detector, classifier=clf_d, two_phase=True,
                 batch_size=args.batch_size, report=False, progress=False)
        return time.perf_counter() - t

    runs, runs_d, runs_u = [], [], []
    for r in range(args.repeats):  # interleaved; the screen's A/B in alternating order
        t = time.perf_counter()
        res = classify(data, tmp / "out", detector=det, classifier=clf, two_phase=True,
                       batch_size=args.batch_size, report=False, progress=False)
        runs.append(time.perf_counter() - t)
        if det_u is not None and r % 2:
            runs_u.append(run_default(det_u, "out_unscreened"))
        runs_d.append(run_default(det_d, "out_default"))
        if det_u is not None and not r % 2:
            runs_u.append(run_default(det_u, "out_unscreened"))
    n = res.n_wafers
    pipeline_s, default_s = min(runs), min(runs_d)
    rss_pipeline = _rss_mb()
    unscreened = None
    if det_u is not None:
        import pandas as pd

        a = pd.read_csv(tmp / "out_default" / "predictions.csv")
        b = pd.read_csv(tmp / "out_unscreened" / "predictions.csv")
        p0, _ = det_d.screen_proba(read_wafers(data), batch_size=args.batch_size)
        unscreened = {
            "what": "the default pipeline with its detector's screen off (the whole ensemble "
                    "on every wafer), interleaved with the runs above",
            "seconds": round(min(runs_u), 2), "wafers_per_s": round(n / min(runs_u)),
            "runs_s": [round(r, 2) for r in runs_u],
            "screened_speedup": round(min(runs_u) / default_s, 3),
            "screen_level": det_d.screen_below,
            "passed_on_by_screen": float((p0 >= det_d.screen_below).mean()),
            "flagged": int((b["defective"] == 1).sum()),
            "flags_differ": int((a["defective"] != b["defective"]).sum()),
            "patterns_differ": int((a["pattern"] != b["pattern"]).sum())}

    t = time.perf_counter()
    res_r = classify(data, tmp / "out_report", detector=det_d, classifier=clf_d,
                     two_phase=True, batch_size=args.batch_size, report=True, progress=False)
    with_report_s = time.perf_counter() - t
    report_kb = (tmp / "out_report" / "report.html").stat().st_size / 1024

    # bare forward pass on preprocessed inputs
    ws: WaferSet = read_wafers(data)
    t = time.perf_counter()
    det_maps = resize_maps(ws, det.input_size)
    resize_s = time.perf_counter() - t
    p = det.calibrate(det.forward((det_maps,), args.batch_size))[:, 1]
    flagged = np.flatnonzero(p >= det.threshold)
    sub = ws.take(flagged)
    t = time.perf_counter()
    cls_maps = (det_maps[flagged] if clf.input_size == det.input_size
                else resize_maps(sub, clf.input_size))
    meta = die_metadata(sub)
    meta_s = time.perf_counter() - t
    fwd = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        det.forward((det_maps,), args.batch_size)
        clf.forward((cls_maps, meta), args.batch_size)
        fwd.append(time.perf_counter() - t)
    forward_s = min(fwd)
    # the default pipeline's model work: the detector on all (an ensemble detector: its
    # features too), the phase-2 ensemble on its flagged wafers
    t = time.perf_counter()
    if hasattr(det_d, "p_defect"):
        p_d = det_d.p_defect(ws, maps=det_maps, batch_size=args.batch_size)
    else:
        p_d = det_d.calibrate(det_d.forward((det_maps,), args.batch_size))[:, 1]
    flagged_d = np.flatnonzero(p_d >= det_d.threshold)
    clf_d.predict_proba(ws.take(flagged_d), args.batch_size)
    default_models_s = time.perf_counter() - t
    # where the default detector's time goes: each member alone, the features set by set
    detector_parts = _detector_parts(det_d, ws, det_maps, args.batch_size)
    t = time.perf_counter()
    det.forward((det_maps,), args.batch_size)
    det_fwd_s = time.perf_counter() - t
    forward_pass(det.model, (det_maps[: args.batch_size],), args.batch_size)  # trace
    t = time.perf_counter()
    forward_pass(det.model, (det_maps,), args.batch_size)  # BatchNorm not folded
    det_unfolded_s = time.perf_counter() - t
    x = np.eye(3, dtype=np.float32)[det_maps]
    det.model.predict(x[: args.batch_size], batch_size=args.batch_size, verbose=0)
    t = time.perf_counter()
    det.model.predict(x, batch_size=args.batch_size, verbose=0)
    predict_s = time.perf_counter() - t

    load_before = os.getloadavg()
    demo = ROOT / "data" / "wafers.h5"
    user = {
        "what": "wall time of a fresh `wafertk` process: start-up, model loading, run, report",
        "help_s": round(_command_seconds(["--help"]), 2),
        "classify_file_s": round(_command_seconds(
            ["classify", str(data), "-o", str(tmp / "cmd"), "-q"], repeats=1), 2),
        "classify_demo_s": round(_command_seconds(
            ["classify", str(demo), "-o", str(tmp / "demo"), "-q"]), 2),
        "classify_file_fast_s": round(_command_seconds(
            ["classify", str(data), "-o", str(tmp / "cmdf"), "-q", "--detector",
             "detector-fast", "--classifier", "classifier"], repeats=1), 2),
        "demo_wafers": 975,
    }
    user["classify_file_wafers_per_s"] = round(n / user["classify_file_s"])
    user["classify_file_fast_wafers_per_s"] = round(n / user["classify_file_fast_s"])

    out = {
        "command": "python benchmarks/bench_inference.py " + " ".join(sys.argv[1:]),
        "data": str(args.data), "wafers": n, "batch_size": args.batch_size,
        "flagged_by_phase1": int(len(flagged)),
        "pipeline": {"what": "fast pipeline (detector-fast + CNN classifier): read + "
                             "preprocess + both phases + CSV",
                     "seconds": round(pipeline_s, 2), "wafers_per_s": round(n / pipeline_s),
                     "runs_s": [round(r, 2) for r in runs]},
        "pipeline_default": {"what": "default pipeline (detector: rot4 CNN + XGBoost on "
                                     "features, behind its screen if it has one; phase 2: "
                                     "CNN/XGBoost ensemble): read + preprocess + both "
                                     "phases + CSV",
                             "seconds": round(default_s, 2),
                             "wafers_per_s": round(n / default_s),
                             "runs_s": [round(r, 2) for r in runs_d],
                             "models_only_seconds": round(default_models_s, 2),
                             "over_models_only": round(default_s / default_models_s, 3),
                             "flagged_by_phase1": int(len(flagged_d))},
        "pipeline_default_unscreened": unscreened,
        "default_detector_parts": detector_parts,
        "pipeline_with_report": {"seconds": round(with_report_s, 2),
                                 "wafers_per_s": round(n / with_report_s),
                                 "report_kb": round(report_kb, 1)},
        "forward_pass": {"what": "detector on all + classifier on flagged, inputs in memory, "
                                 "compiled call loop", "seconds": round(forward_s, 2),
                         "wafers_per_s": round(n / forward_s)},
        "pipeline_over_forward": round(pipeline_s / forward_s, 3),
        "detector_forward_wafers_per_s": round(n / det_fwd_s),
        "detector_forward_unfolded_wafers_per_s": round(n / det_unfolded_s),
        "detector_model_predict_wafers_per_s": round(n / predict_s),
        "preprocess": {"resize_wafers_per_s": round(n / resize_s),
                       "metadata_wafers_per_s": round(len(flagged) / max(meta_s, 1e-9))},
        "peak_rss_mb": {"after_load": round(rss_start), "after_pipeline": round(rss_pipeline),
                        "end": round(_rss_mb())},
        "user_view": user,
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                    "python": platform.python_version(),
                    "load_average_before_user_view": load_before,
                    "load_average_end": os.getloadavg(),
                    "tensorflow": tf.__version__,
                    "env": {k: os.environ.get(k) for k in
                            ("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD",)}},
        "models": {"detector_input": det.input_size, "classifier_input": clf.input_size,
                   "default": [repr(det_d), repr(clf_d)], "fast": [repr(det), repr(clf)]},
        "n_defective_reported": res_r.n_defective,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
