"""FeatureKNNDetector (features-knn): fit, score, save/load, the run and inspection paths."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from wafertk.anomaly.features_knn import REFERENCE_FILE, FeatureKNNDetector
from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.errors import ModelFileError, WafertkError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def data():
    normal = make_wafers(60, classes=["none"], shape_range=(20, 30), random_state=0)
    test = make_wafers(40, classes=["none", "Center", "Edge-Ring", "Scratch"],
                       shape_range=(20, 30), random_state=1)
    y = (test.label_strings() != "none").astype(int)
    return normal, test, y


def test_scores_patterns_above_normal_and_reloads(data, tmp_path):
    from wafertk.registry import load_model

    normal, test, y = data
    det = FeatureKNNDetector(feature_sets=("density", "geometry"), k=5, random_state=0)
    det.fit(normal)
    assert det.reference_.shape == (60, len(det.feature_names_))
    s = det.score_samples(test)
    assert roc_auc_score(y, s) > 0.8
    # leave-one-out threshold on the training wafers: about 5 % of them above it
    loo = det._score_array(det.reference_, loo=True)
    assert 0 < (loo >= det.threshold_).mean() <= 0.1
    np.testing.assert_array_equal(det.predict(test), (s >= det.threshold_).astype(int))
    det.save(tmp_path / "run")
    assert (tmp_path / "run" / REFERENCE_FILE).is_file()
    again = load_model(tmp_path / "run", kind="anomaly-detector")
    assert isinstance(again, FeatureKNNDetector)
    np.testing.assert_allclose(again.score_samples(test), s, rtol=1e-5)
    assert again.threshold_ == pytest.approx(det.threshold_)


def test_bad_input(data, tmp_path):
    normal, test, _ = data
    with pytest.raises(WafertkError, match="positive integer"):
        FeatureKNNDetector(k=0).fit(normal)
    with pytest.raises(WafertkError, match="no normal samples"):
        FeatureKNNDetector(k=2).fit(normal, y=np.ones(len(normal)))
    with pytest.raises(WafertkError, match="1 training sample"):
        FeatureKNNDetector(k=2).fit(normal.take([0]))
    with pytest.raises(WafertkError, match="wafer maps"):
        FeatureKNNDetector(k=2).fit(np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(WafertkError, match="not fitted"):
        FeatureKNNDetector().score_samples(test)
    det = FeatureKNNDetector(feature_sets=("density",), k=3).fit(normal)
    det.save(tmp_path / "r")
    (tmp_path / "r" / REFERENCE_FILE).write_bytes(b"not an npz")
    from wafertk.registry import load_model

    with pytest.raises(ModelFileError, match="cannot load the features-knn model"):
        load_model(tmp_path / "r")


def test_train_run_and_detect_unsupervised(tmp_path):
    from wafertk.anomaly.config import AnomalyConfig
    from wafertk.anomaly.run import train_run
    from wafertk.inspect import detect

    ws = make_wafers(80, classes=["none"] * 4 + ["Center", "Edge-Ring"], n_lots=8,
                     shape_range=(20, 30), random_state=2)
    path = tmp_path / "wafers.h5"
    write_wafers(ws, path)
    cfg = AnomalyConfig()
    cfg.model.name = "features-knn"
    cfg.model.feature_sets = ["density", "geometry"]
    cfg.model.k = 5
    run = train_run(path, tmp_path / "run", cfg)
    for name in ("manifest.json", REFERENCE_FILE, "config.yaml", "validation.csv",
                 "report/report.json"):
        assert (run / name).is_file(), name
    res = detect(path, tmp_path / "out", unsupervised=run, batch_size=32)
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert res.n_wafers == 80 and "anomaly_score" in pred.columns
    bad = pred.label != "none"
    assert pred.anomaly_score[bad].mean() > pred.anomaly_score[~bad].mean()


def test_config_rejects_unknown_feature_set(tmp_path):
    from wafertk.anomaly.config import AnomalyConfig

    cfg = AnomalyConfig()
    cfg.model.name = "features-knn"
    cfg.model.feature_sets = ["densty"]
    problems = dict(cfg.config_problems())
    assert "densty" in problems["model.feature_sets"]


def test_trim_fraction_drops_the_contaminating_defects(data, tmp_path):
    """An unlabeled training set holding defects: trimming leaves out mostly those."""
    from wafertk.data.waferset import WaferSet
    from wafertk.registry import load_model

    normal, test, y = data
    defects = make_wafers(12, classes=["Center", "Edge-Ring", "Near-full"],
                          shape_range=(20, 30), random_state=2)
    mixed = WaferSet.concat([normal, defects])  # rows 60..71 are the defects
    plain = FeatureKNNDetector(feature_sets=("density", "geometry"), k=5).fit(mixed)
    assert plain.n_trimmed_ == 0 and len(plain.reference_) == 72
    det = FeatureKNNDetector(feature_sets=("density", "geometry"), k=5,
                             trim_fraction=0.2).fit(mixed)
    assert det.n_trimmed_ == 15 and len(det.reference_) == 57  # ceil(0.2 * 72)
    assert len(det.trimmed_index_) == 15
    assert np.isin(np.arange(60, 72), det.trimmed_index_).sum() >= 9  # of the 12 defects
    # the kept wafers are re-standardised on their own
    np.testing.assert_allclose(det.reference_.mean(axis=0), 0, atol=1e-4)
    assert roc_auc_score(y, det.score_samples(test)) >= roc_auc_score(
        y, plain.score_samples(test)) - 0.02
    det.save(tmp_path / "t")
    again = load_model(tmp_path / "t", kind="anomaly-detector")
    assert again.n_trimmed_ == 15 and again.trim_fraction == 0.2
    for bad in (1.0, -0.1, True, "0.1", float("nan")):
        with pytest.raises(WafertkError, match="trim_fraction must be in"):
            FeatureKNNDetector(trim_fraction=bad).fit(normal)
    # numpy numbers are accepted; a trim never leaves fewer than 2 reference wafers, and k
    # larger than what is left still scores
    few = FeatureKNNDetector(feature_sets=("density",), k=20,
                             trim_fraction=np.float64(0.9)).fit(normal.take(range(4)))
    assert few.n_trimmed_ == 2 and len(few.reference_) == 2
    assert np.isfinite(few.score_samples(test)).all()
    # a model saved before trimming existed (no trim_fraction / n_trimmed) still loads
    import json

    man = json.loads((tmp_path / "t" / "manifest.json").read_text())
    del man["extra"]["params"]["trim_fraction"], man["extra"]["state"]["n_trimmed"]
    (tmp_path / "t" / "manifest.json").write_text(json.dumps(man))
    old = load_model(tmp_path / "t", kind="anomaly-detector")
    assert old.trim_fraction == 0.0 and old.n_trimmed_ == 0


def test_config_trim_fraction_reaches_features_knn():
    from wafertk.anomaly.config import AnomalyConfig, estimator_from_config

    cfg = AnomalyConfig()
    cfg.model.name = "features-knn"
    cfg.train.trim_fraction = 0.1
    est = estimator_from_config(cfg)
    assert isinstance(est, FeatureKNNDetector) and est.trim_fraction == 0.1
