"""Ensembles of pattern classifiers and of detectors: the weighted mean, its folder,
loading, calibration, use in the two-phase pipeline and errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.data import read_wafers
from wafertk.errors import ModelFileError, WafertkError

pytestmark = pytest.mark.tf

FIXTURE = Path(__file__).parents[1] / "fixtures" / "all_classes.h5"


@pytest.fixture(scope="module")
def wafers():
    ws = read_wafers(FIXTURE)
    return ws.take(np.flatnonzero(ws.label_strings() != "none")[:60])


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    from wafertk.models.ensemble import build_ensemble

    out = tmp_path_factory.mktemp("ens") / "cnn+xgb"
    build_ensemble(["classifier", "xgboost"], out, weights=[3, 1])
    return out


def test_weighted_mean_of_the_members(ensemble, wafers):
    from wafertk.registry import load_model

    ens = load_model(ensemble, kind="ensemble-classifier")
    cnn, xgb = load_model("classifier"), load_model("xgboost")
    np.testing.assert_allclose(ens.weights_, [0.75, 0.25])
    want = 0.75 * cnn.predict_proba(wafers) + 0.25 * xgb.predict_proba(wafers)
    np.testing.assert_allclose(ens.predict_proba(wafers), want, atol=1e-6)
    assert list(ens.predict(wafers)) == list(np.asarray(ens.classes_)[want.argmax(1)])
    # self-contained: the members were copied in
    members = json.loads((ensemble / "members.json").read_text())["members"]
    assert [m["kind"] for m in members] == ["cnn-classifier", "xgboost-classifier"]
    assert all((ensemble / m["path"] / "manifest.json").is_file() for m in members)


def test_calibrated_ensemble_drives_two_phase_classify(ensemble, tmp_path):
    from wafertk.calibrate import calibrate_model
    from wafertk.inspect import classify
    from wafertk.registry import load_model

    res = calibrate_model(ensemble, FIXTURE, tmp_path / "cal", max_error=0.1)
    ens = load_model(tmp_path / "cal", kind="ensemble-classifier")
    assert ens.temperature == pytest.approx(res.changes["temperature"][1])
    assert ens.review_below == res.changes["review level"][1]
    res = classify(FIXTURE, tmp_path / "out", classifier=tmp_path / "cal")
    rows = res.predictions.read_text().splitlines()
    assert len(rows) == 1 + len(read_wafers(FIXTURE)) == 1 + res.n_wafers
    run = json.loads((res.out_dir / "run.json").read_text())
    assert "ensemble-classifier" in json.dumps(run)


def test_bad_ensembles(ensemble, tmp_path):
    import shutil

    from wafertk.models.ensemble import build_ensemble
    from wafertk.registry import load_model

    with pytest.raises(WafertkError, match="at least two"):
        build_ensemble(["classifier"], tmp_path / "e")
    with pytest.raises(WafertkError, match="differ from"):
        build_ensemble(["classifier", "detector-fast"], tmp_path / "e")
    with pytest.raises(WafertkError, match="wrong kind"):  # an ensemble is not a member
        build_ensemble(["classifier", "ensemble"], tmp_path / "e")
    with pytest.raises(WafertkError, match="one non-negative weight per member"):
        build_ensemble(["classifier", "xgboost"], tmp_path / "e", weights=[1, -1])
    assert not (tmp_path / "e").exists()
    bad = tmp_path / "bad"
    shutil.copytree(ensemble, bad)
    members = json.loads((bad / "members.json").read_text())
    members["members"][1]["path"] = "../../elsewhere"
    (bad / "members.json").write_text(json.dumps(members))
    with pytest.raises(ModelFileError, match="outside the ensemble folder"):
        load_model(bad)
    (bad / "members.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="malformed ensemble member list"):
        load_model(bad)


def test_ensemble_cli(tmp_path):
    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["ensemble", "classifier", "xgboost", "--weight", "1",
                                 "-o", str(tmp_path / "e")])
    assert r.exit_code == 2 and "--weight given 1 times for 2 members" in r.stderr
    assert not (tmp_path / "e").exists()
    r = CliRunner().invoke(cli, ["ensemble", "classifier", "xgboost", "-o", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {tmp_path / 'e'}: classifier x 0.50, xgboost x 0.50")


# ------------------------------------------------------------------ ensembles of detectors
@pytest.fixture(scope="module")
def xgb_detector(tmp_path_factory):
    """A small binary XGBoost (good vs defective) trained on synthetic wafers."""
    from wafertk.baseline import XGBoostTrainConfig, train_xgboost
    from wafertk.data.synthetic import make_wafers

    cfg = XGBoostTrainConfig(classes="binary", feature_sets=["density", "geometry", "meta"],
                             n_estimators=10, early_stopping_rounds=3, class_weight=None,
                             n_jobs=1)
    return train_xgboost(make_wafers(240, n_lots=24, random_state=3),
                         tmp_path_factory.mktemp("xgbdet") / "run", cfg)


@pytest.fixture(scope="module")
def detector_ensemble(xgb_detector, tmp_path_factory):
    from wafertk.models.ensemble import build_ensemble

    out = tmp_path_factory.mktemp("detens") / "cnn+xgb"
    build_ensemble(["detector-fast", xgb_detector], out, weights=[1, 3])
    return out


def test_detector_ensemble_is_the_weighted_mean(detector_ensemble, xgb_detector):
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.models.ensemble import EnsembleDetector
    from wafertk.registry import load_model

    ws = read_wafers(FIXTURE)
    ens = load_model(detector_ensemble, kind="ensemble-detector")
    assert isinstance(ens, EnsembleDetector) and ens.classes_ == ["good", "defective"]
    cnn, xgb = load_model("detector-fast"), load_model(xgb_detector)
    assert ens.input_size == cnn.input_size
    want = 0.25 * cnn.predict_proba(ws)[:, 1] + 0.75 * xgb.predict_proba(ws)[:, 1]
    np.testing.assert_allclose(ens.predict_proba(ws)[:, 1], want, atol=1e-6)
    np.testing.assert_allclose(ens.predict_proba(ws).sum(axis=1), 1.0)
    # the pipeline's phase 1 (resize and features prepared ahead) gives the same numbers
    pipe = TwoPhaseClassifier(ens, load_model("classifier"))
    prep = pipe.prepare(ws)
    assert prep["det_features"][0] is None and prep["det_features"][1].shape[0] == len(ws)
    np.testing.assert_allclose(pipe.p_defect(ws, prep), want, atol=1e-6)
    assert list(ens.predict(ws)) == ["defective" if p >= 0.5 else "good" for p in want]
    members = json.loads((detector_ensemble / "manifest.json").read_text())
    assert members["kind"] == "ensemble-detector"


def test_calibrated_detector_ensemble_drives_detect_and_classify(detector_ensemble, tmp_path):
    from wafertk.calibrate import calibrate_model
    from wafertk.inspect import classify, detect
    from wafertk.registry import load_model

    res = calibrate_model(detector_ensemble, FIXTURE, tmp_path / "cal", min_precision=0.5)
    ens = load_model(tmp_path / "cal", kind="ensemble-detector")
    assert ens.temperature == pytest.approx(res.changes["temperature"][1])
    assert ens.threshold == res.changes["threshold"][1]
    ws = read_wafers(FIXTURE)
    p = ens.predict_proba(ws)[:, 1]
    res = detect(FIXTURE, tmp_path / "det", detector=tmp_path / "cal")
    assert res.n_defective == int((p >= ens.threshold).sum())
    res = detect(FIXTURE, tmp_path / "det2", detector=ens)  # a loaded detector is used as is
    assert res.n_defective == int((p >= ens.threshold).sum())
    res = classify(FIXTURE, tmp_path / "cls", detector=tmp_path / "cal")
    run = json.loads((res.out_dir / "run.json").read_text())
    assert "ensemble-detector" in json.dumps(run) and res.n_wafers == len(ws)


def test_detector_ensemble_errors(xgb_detector, tmp_path):
    from wafertk.models.ensemble import build_ensemble

    with pytest.raises(WafertkError, match="differ from"):
        build_ensemble(["detector-fast", "xgboost"], tmp_path / "e")
    with pytest.raises(WafertkError, match="wrong kind"):  # the shipped ensemble detector
        build_ensemble([xgb_detector, "detector"], tmp_path / "e")
    assert not (tmp_path / "e").exists()
    from wafertk.calibrate import calibrate_model

    with pytest.raises(WafertkError, match="calibrate it inside an ensemble detector"):
        calibrate_model(xgb_detector, FIXTURE, tmp_path / "c")
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------- the ensemble's screen
def _with_screen(folder, out, screen):
    import shutil

    shutil.copytree(folder, out)
    man = json.loads((out / "manifest.json").read_text())
    man["extra"]["screen"] = screen
    (out / "manifest.json").write_text(json.dumps(man))
    return out


def test_screen_runs_the_whole_ensemble_only_on_the_wafers_it_lets_through(
        detector_ensemble, tmp_path):
    from wafertk.data.preprocess import resize_maps
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.registry import load_model

    ws = read_wafers(FIXTURE)
    full = load_model(detector_ensemble, kind="ensemble-detector")
    p_full = full.p_defect(ws)
    cnn = full.members[0]
    p0 = cnn.predict_proba(ws)[:, 1]  # detector-fast: no test-time augmentation
    below = float(np.quantile(p0, 0.4))
    ens = load_model(_with_screen(detector_ensemble, tmp_path / "s",
                                  {"member": 0, "below": below}), kind="ensemble-detector")
    assert ens.screen_member == 0 and ens.screen_below == below
    assert "screen=member 0" in repr(ens)
    seen = []
    xgb = ens.members[1]
    orig = xgb.transform_features
    xgb.transform_features = lambda w: seen.append(len(w)) or orig(w)
    p = ens.p_defect(ws)
    kept = p0 >= below
    assert 0 < kept.sum() < len(ws) and seen == [int(kept.sum())]  # features of the kept only
    np.testing.assert_allclose(p[~kept], p0[~kept], atol=1e-6)
    np.testing.assert_allclose(p[kept], p_full[kept], atol=1e-6)
    # the pipeline: no features read ahead, the same numbers
    pipe = TwoPhaseClassifier(ens, load_model("classifier"))
    prep = pipe.prepare(ws)
    assert prep.get("det_features") is None
    np.testing.assert_allclose(pipe.p_defect(ws, prep), p, atol=1e-6)
    # features prepared by the caller are subset to the wafers let through
    feats = [None, orig(ws)]
    np.testing.assert_allclose(ens.p_defect(ws, features=feats), p, atol=1e-6)
    # nothing screened out / everything screened out
    ens.screen_below = 1e-12
    np.testing.assert_allclose(ens.p_defect(ws), p_full, atol=1e-6)
    ens.screen_below = 1 - 1e-9
    np.testing.assert_allclose(ens.p_defect(ws), p0, atol=1e-6)
    # the shipped set-up: the member averages 4 rotations, and reuses the screen's pass
    # (its single pass, not the average) as the identity term
    for e in (full, ens):
        e.members[0].tta = "rot4"
    ens.screen_below = below
    p_rot, p_full_rot = ens.p_defect(ws), full.p_defect(ws)
    assert not np.allclose(p_full_rot, p_full, atol=1e-4)  # the rotations do change it
    np.testing.assert_allclose(p_rot[kept], p_full_rot[kept], atol=1e-6)
    np.testing.assert_allclose(p_rot[~kept], p0[~kept], atol=1e-6)
    inputs = cnn.prepare(ws, maps=resize_maps(ws, cnn.input_size))
    raw0 = cnn.forward(inputs, tta="none")
    np.testing.assert_allclose(cnn.forward(inputs, identity=raw0), cnn.forward(inputs),
                               atol=1e-6)
    with pytest.raises(WafertkError, match="identity outputs for 1 wafers"):
        cnn.forward(inputs, identity=raw0[:1])


def test_a_threshold_below_the_detectors_own_turns_its_screen_off(detector_ensemble,
                                                                  tmp_path):
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.registry import load_model

    folder = _with_screen(detector_ensemble, tmp_path / "s", {"member": 0, "below": 0.3})
    man = json.loads((folder / "manifest.json").read_text())
    man["extra"]["threshold"] = 0.5
    (folder / "manifest.json").write_text(json.dumps(man))
    ens = load_model(folder, kind="ensemble-detector")
    clf = load_model("classifier")
    assert TwoPhaseClassifier(ens, clf).detector.screen_below == 0.3
    assert TwoPhaseClassifier(ens, clf, threshold=0.6).detector.screen_below == 0.3
    low = TwoPhaseClassifier(ens, clf, threshold=0.2)
    assert low.detector.screen_below is None and ens.screen_below == 0.3  # a copy
    assert ens.screen_threshold == 0.5  # not recorded in extra.screen: the manifest's
    ens.threshold = 0.2  # lowered in Python: still below what the screen was fitted for
    assert TwoPhaseClassifier(ens, clf).detector.screen_below is None
    ens.threshold = 0.5
    ws = read_wafers(FIXTURE)
    ens.screen_below = None
    np.testing.assert_allclose(low.p_defect(ws), ens.p_defect(ws), atol=1e-6)


def test_calibrate_fits_refits_and_removes_the_screen(detector_ensemble, tmp_path):
    from wafertk.calibrate import calibrate_model
    from wafertk.registry import load_model

    ws = read_wafers(FIXTURE)
    res = calibrate_model(detector_ensemble, FIXTURE, tmp_path / "a", min_precision=0.5,
                          screen_margin=0.5)
    ens = load_model(tmp_path / "a", kind="ensemble-detector")
    screen = json.loads((tmp_path / "a" / "manifest.json").read_text())["extra"]["screen"]
    ens.screen_below = None
    p_full = ens.p_defect(ws)
    flagged = p_full >= ens.threshold
    p0 = ens.members[0].predict_proba(ws)[:, 1]
    assert screen["below"] == pytest.approx(0.5 * p0[flagged].min(), rel=1e-6)
    assert screen["n_flagged"] == int(flagged.sum()) and res.changes["screen level"][0] is None
    assert screen["passed_on"] == pytest.approx((p0 >= screen["below"]).mean())
    ens.screen_below = screen["below"]  # on its calibration wafers it flags the same wafers
    assert ((ens.p_defect(ws) >= ens.threshold) == flagged).all()
    # recalibrating keeps the screen (own margin) and fits on the whole ensemble: even with
    # a screen that passes every wafer on its single pass, the same decisions come out
    _with_screen(tmp_path / "a", tmp_path / "a2", {"member": 0, "below": 1 - 1e-9,
                                                   "margin": 0.5})
    res = calibrate_model(tmp_path / "a2", FIXTURE, tmp_path / "b", min_precision=0.5)
    again = json.loads((tmp_path / "b" / "manifest.json").read_text())["extra"]
    assert again["screen"]["margin"] == 0.5 and screen["threshold"] == ens.threshold
    assert screen["below"] <= ens.threshold
    # fitted on the whole ensemble again: the same temperature and threshold
    assert again["temperature"] == pytest.approx(ens.temperature, rel=1e-4)
    assert again["threshold"] == pytest.approx(ens.threshold, rel=1e-4)
    assert again["screen"]["below"] == pytest.approx(screen["below"], rel=1e-4)
    res = calibrate_model(tmp_path / "b", FIXTURE, tmp_path / "c", min_precision=0.5,
                          screen_margin=0)
    gone = json.loads((tmp_path / "c" / "manifest.json").read_text())["extra"]
    assert "screen" not in gone and res.changes["screen level"][1] is None
    assert load_model(tmp_path / "c", kind="ensemble-detector").screen_below is None


def test_screen_errors(detector_ensemble, tmp_path):
    from wafertk.calibrate import calibrate_model
    from wafertk.registry import load_model

    for i, (screen, msg) in enumerate([
            ({"member": 1, "below": 0.01}, "not a CNN member"),
            ({"member": 0, "below": 1.5}, r"level must be in \(0, 1\)"),
            ({"below": 0.01}, "must name a member and a level"),
            ({"member": 0.5, "below": 0.01}, "must be an integer index"),
            ({"member": True, "below": 0.01}, "must be an integer index")]):
        folder = _with_screen(detector_ensemble, tmp_path / f"bad{i}", screen)
        with pytest.raises(ModelFileError, match=msg):
            load_model(folder)
    with pytest.raises(WafertkError, match="applies to ensemble detectors"):
        calibrate_model("detector-fast", FIXTURE, tmp_path / "x", screen_margin=0.5)
    with pytest.raises(WafertkError, match=r"must be in \[0, 1\]"):
        calibrate_model(detector_ensemble, FIXTURE, tmp_path / "x", screen_margin=2.0)
    assert not (tmp_path / "x").exists()
