"""Two-phase inspection on the shipped models: rows, order, columns, atomic outputs, bad input."""

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.errors import ModelFileError, WaferFileError, WafertkError
from wafertk.inspect import (
    CLASSIFY_COLUMNS,
    DEFAULT_CLASSIFIER,
    DEFAULT_DETECTOR,
    DETECT_COLUMNS,
    classify,
    detect,
)

pytestmark = pytest.mark.tf

if not (DEFAULT_DETECTOR / "manifest.json").is_file():
    pytest.skip("shipped models not present", allow_module_level=True)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def wafers(tmp_path_factory):
    ws = make_wafers(60, random_state=3)
    path = tmp_path_factory.mktemp("in") / "wafers.h5"
    write_wafers(ws, path)
    return ws, path


def test_classify_two_phase_rows_order_columns(wafers, tmp_path):
    ws, path = wafers
    res = classify(path, tmp_path / "out", batch_size=16, progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == CLASSIFY_COLUMNS + ["label"]
    assert [r["wafer_id"] for r in rows] == list(ws.wafer_id)
    assert [r["label"] for r in rows] == list(ws.labels)
    assert res.n_wafers == len(ws) == len(rows)
    for r in rows:
        p = float(r["p_defect"])
        assert 0 <= p <= 1 and r["defective"] in ("0", "1")
        if r["defective"] == "0":
            assert r["pattern"] == "none" and r["top2"] == ""
        else:
            assert r["pattern"] != "none" and r["pattern"] == r["top1"]
            assert float(r["p_top1"]) >= float(r["p_top2"]) >= float(r["p_top3"])
        assert r["review"] in ("0", "1")
    assert (tmp_path / "out" / "report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_classify_single_phase_runs_phase2_on_every_wafer(wafers, tmp_path):
    ws, path = wafers
    classify(path, tmp_path / "out", mode="single-phase", batch_size=32, report=False,
             progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert len(rows) == len(ws)
    assert all(r["p_defect"] == "" and r["defective"] == "" for r in rows)
    assert all(r["pattern"] not in ("", "none") and r["top3"] for r in rows)
    assert not (tmp_path / "out" / "report.html").exists()


def test_detect_columns(wafers, tmp_path):
    ws, path = wafers
    detect(path, tmp_path / "out", batch_size=7, progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == DETECT_COLUMNS + ["label"]
    assert [r["wafer_id"] for r in rows] == list(ws.wafer_id)


def test_file_without_metadata_uses_defaults(tmp_path):
    ws = make_wafers(10, random_state=0)
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["schema"] = "wafertk/1"
        h5["maps_flat"], h5["offsets"], h5["shapes"] = ws.maps_flat, ws.offsets, ws.shapes
    classify(path, tmp_path / "out", report=True, progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert [r["wafer_id"] for r in rows] == [str(i) for i in range(10)]
    assert all(r["lot"] == "" and r["wafer_index"] == "-1" for r in rows)
    assert "label" not in rows[0]


def _copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case", ["missing", "corrupt", "truncated", "wrong_kind",
                                  "wrong_size", "corrupt_member", "corrupt_xgb_member"])
def test_bad_models_give_one_error_and_nothing_in_out(case, wafers, tmp_path):
    _, path = wafers
    det = tmp_path / "det"
    if case == "missing":
        det = tmp_path / "nope"
    elif case == "wrong_kind":
        det = _copy_model(DEFAULT_CLASSIFIER, det)
    elif case in ("corrupt_member", "corrupt_xgb_member"):  # the shipped ensemble detector
        _copy_model(DEFAULT_DETECTOR, det)
        member = "0-cnn-detector/model.keras" if case == "corrupt_member" \
            else "1-xgboost-classifier/model.json"
        (det / "members" / member).write_bytes(b"not a model file")
    else:
        _copy_model(DEFAULT_DETECTOR.parent / "detector-fast", det)  # a CNN detector
        model = det / "model.keras"
        if case == "corrupt":
            model.write_bytes(b"not a keras file at all")
        elif case == "truncated":
            model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        else:
            man = json.loads((det / "manifest.json").read_text())
            man["input_size"] = int(man["input_size"]) + 8
            (det / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError) as exc:
        classify(path, tmp_path / "out", detector=det, progress=False)
    msg = str(exc.value)
    assert "\n" not in msg
    expect = {"missing": "no such model", "corrupt": "corrupt model file",
              "truncated": "corrupt model file", "wrong_kind": "wrong kind",
              "wrong_size": "input", "corrupt_member": "corrupt model file",
              "corrupt_xgb_member": "model.json"}[case]
    assert expect in msg
    assert not (tmp_path / "out").exists()


def test_empty_and_missing_input_files(tmp_path):
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as h5:
        h5.attrs["schema"] = "wafertk/1"
        h5["maps_flat"] = np.zeros(0, np.uint8)
        h5["offsets"] = np.zeros(1, np.int64)
        h5["shapes"] = np.zeros((0, 2), np.int64)
    for bad in (empty, tmp_path / "missing.h5"):
        with pytest.raises(WaferFileError):
            classify(bad, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()
    with pytest.raises(WafertkError):
        classify(empty, tmp_path / "out", batch_size=0, progress=False)


def test_error_midway_leaves_out_untouched(wafers, tmp_path, monkeypatch):
    _, path = wafers
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("old\n")
    from wafertk.inspect import TwoPhaseClassifier

    calls = {"n": 0}
    orig = TwoPhaseClassifier.predict_columns

    def boom(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise WafertkError("boom")
        return orig(self, *a, **k)

    monkeypatch.setattr(TwoPhaseClassifier, "predict_columns", boom)
    with pytest.raises(WafertkError, match="boom"):
        classify(path, out, batch_size=16, progress=False)
    assert (out / "predictions.csv").read_text() == "old\n"
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_phase_with_shipped_xgboost_on_real_wafers(tmp_path):
    """Phase 2 by the shipped XGBoost model on real WM-811K wafers of every class."""
    from wafertk.data import read_wafers
    from wafertk.inspect import DEFAULT_XGBOOST

    sample = Path(__file__).resolve().parent / "fixtures" / "all_classes.h5"
    if not (DEFAULT_XGBOOST / "model.json").is_file() or not sample.is_file():
        pytest.skip("shipped XGBoost model or all-classes fixture missing")
    ws = read_wafers(sample)
    labels = ws.label_strings().astype(str)
    pick = np.concatenate([np.flatnonzero(labels == c)[:12] for c in np.unique(labels)])
    sub = ws.take(np.sort(pick))
    write_wafers(sub, tmp_path / "real.h5")
    res = classify(tmp_path / "real.h5", tmp_path / "out", classifier="xgboost",
                   batch_size=40, report=False, progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert res.n_wafers == len(rows) == len(sub)
    got = np.array([r["pattern"] for r in rows])
    flagged = np.array([r["defective"] == "1" for r in rows])
    assert set(got[flagged]) <= set(json.loads(
        (DEFAULT_XGBOOST / "manifest.json").read_text())["classes"])
    assert (got[~flagged] == "none").all()
    # no accuracy here: these wafers come from the Training partition the models learnt from


def test_default_two_phase_on_unseen_production_lots(tmp_path):
    """The bundled demo: whole Test-partition lots that no shipped model trained or tuned on.

    The default (two-phase) calls most good wafers good; single-phase, by construction, calls
    every wafer a defect pattern, which is why it is not the default.
    """
    from wafertk.data import read_wafers

    sample = Path(__file__).resolve().parents[1] / "data" / "wafers.h5"
    ws = read_wafers(sample)
    truth = ws.label_strings().astype(str)
    classify(sample, tmp_path / "two", report=False, progress=False)
    got = np.array([r["pattern"] for r in read_csv(tmp_path / "two" / "predictions.csv")])
    good = truth == "none"
    assert good.mean() > 0.8  # production-like defect mix
    assert (got[good] == "none").mean() > 0.85
    assert (got == truth).mean() > 0.85
    classify(sample, tmp_path / "one", mode="single-phase", report=False, progress=False)
    single = np.array([r["pattern"] for r in read_csv(tmp_path / "one" / "predictions.csv")])
    assert not (single == "none").any()


def test_predict_proba_two_phase_rows_sum_to_one(wafers):
    from wafertk.inspect import TwoPhaseClassifier, load_classifier, load_detector

    ws, _ = wafers
    clf = TwoPhaseClassifier(load_detector(), load_classifier())
    proba = clf.predict_proba(ws)
    assert proba.shape == (len(ws), len(clf.classes_)) and clf.classes_[0] == "none"
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    cols = clf.predict_columns(ws)
    np.testing.assert_allclose(proba[:, 0], 1 - cols["p_defect"], atol=1e-12)
    assert list(clf.predict(ws)) == list(cols["pattern"])


@pytest.mark.parametrize("kwargs, needle", [
    ({"mode": "single-phase", "threshold": 0.5}, "threshold does not apply"),
    ({"mode": "single-phase", "detector": "detector"}, "detector does not apply"),
    ({"mode": "detect"}, "two-phase"),
    ({"threshold": 1.0}, "threshold must be in (0, 1)"),
    ({"threshold": "high"}, "must be a number"),
    ({"review_below": 1.5}, "review level must be in [0, 1]"),
])
def test_options_that_do_not_apply_are_errors(kwargs, needle, wafers, tmp_path):
    _, path = wafers
    with pytest.raises(WafertkError) as exc:
        classify(path, tmp_path / "out", progress=False, **kwargs)
    assert needle in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_no_report_run_replaces_the_whole_folder(wafers, tmp_path):
    _, path = wafers
    out = tmp_path / "out"
    classify(path, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "report.html",
                                                    "run.json"]
    detect(path, out, report=False, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "run.json"]
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "detect" and run["wafers"] == 60 and run["report"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
