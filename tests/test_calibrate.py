"""``wafertk calibrate``: threshold rules, review level, and a recalibrated model folder."""

import json

import numpy as np
import pytest

from wafertk.calibrate import calibrate_model, review_level, threshold_by_rule
from wafertk.data import WaferSet, write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.errors import WaferFileError, WafertkError
from wafertk.registry import SHIPPED_DIR, load_model


def _scores(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    return y, s


def _figures(y, s, thr):
    pred = s >= thr
    tp = (pred & (y == 1)).sum()
    return tp / max(pred.sum(), 1), tp / (y == 1).sum()


def test_threshold_rules():
    y, s = _scores()
    thrs = np.unique(s)
    f1 = []
    for t in thrs:
        p, r = _figures(y, s, t)
        f1.append(2 * p * r / (p + r) if p + r else 0)
    t = threshold_by_rule(y, s, "f1")
    p, r = _figures(y, s, t)
    assert 2 * p * r / (p + r) == pytest.approx(max(f1))
    t = threshold_by_rule(y, s, "recall", 0.9)
    assert _figures(y, s, t)[1] >= 0.9
    own = s[s >= t].min()  # the score the rule chose: the threshold sits just below it
    assert 0 < own - t <= 1e-6 * (1 + 1e-6) and not ((s > t - 1e-12) & (s < own)).any()
    assert _figures(y, s, np.nextafter(own, 2))[1] < 0.9  # the highest such threshold
    # a wafer scored a rounding error below the chosen score stays positive
    assert _figures(y, s - 1e-8, t) == _figures(y, s, t)
    t = threshold_by_rule(y, s, "precision", 0.8)
    p, r = _figures(y, s, t)
    assert p >= 0.8
    best = max(_figures(y, s, u)[1] for u in thrs if _figures(y, s, u)[0] >= 0.8)
    assert r == pytest.approx(best)
    with pytest.raises(WafertkError, match="no threshold reaches precision"):
        threshold_by_rule(np.array([0, 1, 0, 1]), np.array([0.9, 0.1, 0.8, 0.2]), "precision",
                          0.99)
    with pytest.raises(WafertkError, match="unknown threshold rule"):
        threshold_by_rule(y, s, "auc")


def test_review_level_accepts_most_within_the_error():
    rng = np.random.default_rng(1)
    conf = rng.random(1000)
    correct = rng.random(1000) < conf  # confident wafers are right more often
    level = review_level(conf, correct, 0.05)
    acc = conf >= level
    assert (~correct[acc]).mean() <= 0.05
    lower = conf[conf < level].max()  # one step more would break the bound
    assert (~correct[conf >= lower]).mean() > 0.05
    assert review_level(np.array([0.9, 0.8]), np.array([False, True]), 0.0) == 1.0


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    ws = make_wafers(240, random_state=4)
    path = tmp_path_factory.mktemp("cal") / "fab.h5"
    write_wafers(ws, path)
    return ws, path


@pytest.mark.tf
def test_calibrated_detector_folder(labelled, tmp_path):
    ws, path = labelled
    shipped = json.loads((SHIPPED_DIR / "detector" / "manifest.json").read_text())
    res = calibrate_model("detector", path, tmp_path / "det", min_precision=0.7)
    man = json.loads((tmp_path / "det" / "manifest.json").read_text())
    cal = man["extra"]["calibration"]
    assert cal["wafers"] == len(ws) and cal["rule"] == "precision" and cal["rule_value"] == 0.7
    assert cal["prevalence"] == pytest.approx((ws.label_strings() != "none").mean())
    # the new model applies its new temperature and threshold: figures recomputed from it
    det = load_model(tmp_path / "det", kind="ensemble-detector")  # the shipped detector
    y = (ws.label_strings() != "none").astype(int)
    p = det.predict_proba(ws)[:, 1]
    prec, rec = _figures(y, p, det.threshold)
    assert prec >= 0.7
    assert (prec, rec) == pytest.approx((res.after["precision"], res.after["recall"]))
    # the shipped model is untouched
    assert json.loads((SHIPPED_DIR / "detector" / "manifest.json").read_text()) == shipped


@pytest.mark.tf
def test_calibrated_classifier_review_level(labelled, tmp_path):
    ws, path = labelled
    res = calibrate_model("classifier", path, tmp_path / "cls", max_error=0.1)
    clf = load_model(tmp_path / "cls", kind="cnn-classifier")
    labels = ws.label_strings().astype(str)
    keep = np.isin(labels, clf.classes_)
    p = clf.predict_proba(ws.take(np.flatnonzero(keep)))
    y = np.array([clf.classes_.index(s) for s in labels[keep]])
    acc = p.max(axis=1) >= clf.review_below
    assert (p.argmax(axis=1)[acc] != y[acc]).mean() <= 0.1 + 1e-9
    assert res.n == keep.sum() and "review level" in res.details()


@pytest.mark.tf
def test_calibrated_detector_with_tta(labelled, tmp_path):
    """--tta: the new folder applies the augmentation, fitted on the augmented outputs."""
    ws, path = labelled
    shipped = load_model("detector-fast", kind="cnn-detector").tta
    tta = "flip" if shipped != "flip" else "rot4"
    res = calibrate_model("detector-fast", path, tmp_path / "det", min_precision=0.7,
                          tta=tta)
    assert res.changes["tta"] == (shipped, tta)
    det = load_model(tmp_path / "det", kind="cnn-detector")
    assert det.tta == tta
    y = (ws.label_strings() != "none").astype(int)
    prec, rec = _figures(y, det.predict_proba(ws)[:, 1], det.threshold)
    assert (prec, rec) == pytest.approx((res.after["precision"], res.after["recall"]))
    with pytest.raises(WafertkError, match="not to xgboost-classifier"):
        calibrate_model("xgboost", path, tmp_path / "x", tta="d4")
    with pytest.raises(WafertkError, match="not to ensemble-detector"):  # its CNN has its own
        calibrate_model("detector", path, tmp_path / "x", tta="d4")
    with pytest.raises(WafertkError, match="unknown test-time augmentation"):
        calibrate_model("detector-fast", path, tmp_path / "x", tta="d8")
    assert not (tmp_path / "x").exists()


def test_calibrated_xgboost_review_level(labelled, tmp_path):
    """XGBoost has no temperature: its review level and conformal sets are refitted."""
    ws, path = labelled
    res = calibrate_model("xgboost", path, tmp_path / "xgb", max_error=0.1, coverage=0.8)
    clf = load_model(tmp_path / "xgb", kind="xgboost-classifier")
    labels = ws.label_strings().astype(str)
    keep = np.isin(labels, clf.classes_)
    p = clf.predict_proba(ws.take(np.flatnonzero(keep)))
    y = np.array([list(clf.classes_).index(s) for s in labels[keep]])
    man = json.loads((tmp_path / "xgb" / "manifest.json").read_text())
    level = man["extra"]["review_below"]
    acc = p.max(axis=1) >= level
    assert (p.argmax(axis=1)[acc] != y[acc]).mean() <= 0.1 + 1e-9
    assert man["extra"]["conformal"]["coverage"] == 0.8
    assert "temperature" not in res.details() and res.n == keep.sum()


@pytest.mark.tf
def test_bad_calibration_inputs(labelled, tmp_path):
    ws, path = labelled
    unlabelled = tmp_path / "u.h5"
    write_wafers(WaferSet(ws.maps_flat, ws.offsets, ws.shapes, wafer_id=ws.wafer_id), unlabelled)
    with pytest.raises(WaferFileError, match="no labelled wafers"):
        calibrate_model("detector", unlabelled, tmp_path / "o")
    few = tmp_path / "few.h5"
    write_wafers(ws.take(range(10)), few)
    with pytest.raises(WaferFileError, match="too few wafers"):
        calibrate_model("detector", few, tmp_path / "o")
    with pytest.raises(WafertkError, match="not both"):
        calibrate_model("detector", path, tmp_path / "o", target_recall=0.9, min_precision=0.8)
    with pytest.raises(WafertkError, match="did you mean 'detector'"):
        calibrate_model("detektor", path, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_conformal_threshold_covers_exchangeable_wafers():
    from wafertk.calibrate import conformal_threshold

    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(8) * 0.5, size=4000)
    y = np.array([rng.choice(8, p=row) for row in p])  # labels drawn from the model: calibrated
    cal, test = np.arange(2000), np.arange(2000, 4000)
    q = conformal_threshold(p[cal, y[cal]], 0.9)
    covered = (1 - p[test, y[test]]) <= q
    assert 0.88 <= covered.mean() <= 0.93
    assert conformal_threshold(np.array([0.5, 0.9]), 0.9) == 1.0  # too few wafers: everything


@pytest.mark.tf
def test_classify_writes_conformal_candidates(labelled, tmp_path):
    from wafertk.inspect import classify

    ws, path = labelled
    calibrate_model("classifier", path, tmp_path / "cls", coverage=0.95)
    classify(path, tmp_path / "out", classifier=tmp_path / "cls", report=False, progress=False)
    import csv

    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        cands = r["candidates"].split("|")
        assert cands[0] == r["pattern"]  # most probable first, never empty
        if r["defective"] == "0":
            assert cands == ["none"]
    # without conformal calibration the column is there and empty
    import shutil

    shutil.copytree(SHIPPED_DIR / "classifier", tmp_path / "plain_cls")
    man = json.loads((tmp_path / "plain_cls" / "manifest.json").read_text())
    man["extra"].pop("conformal", None)
    (tmp_path / "plain_cls" / "manifest.json").write_text(json.dumps(man))
    classify(path, tmp_path / "plain", classifier=tmp_path / "plain_cls", report=False,
             progress=False)
    with open(tmp_path / "plain" / "predictions.csv", newline="") as fh:
        assert {r["candidates"] for r in csv.DictReader(fh)} == {""}


@pytest.mark.tf
def test_review_level_chosen_on_the_two_phase_output(labelled, tmp_path):
    from wafertk.inspect import TwoPhaseClassifier

    ws, path = labelled
    res = calibrate_model("classifier", path, tmp_path / "cls", max_error=0.05,
                          detector="detector")
    clf = load_model(tmp_path / "cls", kind="cnn-classifier")
    cols = TwoPhaseClassifier(load_model("detector"), clf).predict_columns(ws)
    correct = cols["pattern"].astype(str) == ws.label_strings().astype(str)
    accepted = cols["confidence"] >= clf.review_below
    assert (~correct[accepted]).mean() <= 0.05 + 1e-9
    assert res.after["pipeline_accepted"] == pytest.approx(accepted.mean())
    assert (cols["review"] == 1).sum() == (~accepted).sum()  # classify flags exactly those
