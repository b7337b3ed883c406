"""XGBoost baseline: fit/predict, save/load round trip, wrong or corrupt model files."""

import json

import numpy as np
import pytest
from sklearn.base import clone

from wafertk.baseline import XGBoostTrainConfig, XGBoostWaferClassifier, train_xgboost
from wafertk.data.synthetic import make_wafers
from wafertk.data.waferset import DEFECT_CLASSES
from wafertk.errors import ModelFileError, WafertkError
from wafertk.models import load_predictor

SETS = ["density", "radon", "geometry", "meta"]


@pytest.fixture(scope="module")
def data():
    tr = make_wafers(96, classes=DEFECT_CLASSES, random_state=0)
    va = make_wafers(32, classes=DEFECT_CLASSES, random_state=1)
    return tr, va


@pytest.fixture(scope="module")
def fitted(data):
    tr, va = data
    clf = XGBoostWaferClassifier(feature_sets=SETS, n_estimators=15, n_jobs=1,
                                 early_stopping_rounds=5)
    return clf.fit(tr, eval_set=va)


def test_fit_predict(fitted, data):
    _, va = data
    assert list(fitted.classes_) == list(DEFECT_CLASSES)
    p = fitted.predict_proba(va)
    assert p.shape == (len(va), 8)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert (fitted.predict(va) == va.labels).mean() > 0.5
    assert 0 <= fitted.best_iteration_ < 15


def test_params_and_clone(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params() and not hasattr(c, "booster_")
    assert c.set_params(max_depth=3).max_depth == 3


def test_save_load_round_trip(fitted, data, tmp_path):
    _, va = data
    fitted.save(tmp_path / "m")
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["kind"] == "xgboost-classifier" and man["model_file"] == "model.json"
    assert man["preprocessing"]["feature_sets"] == SETS
    assert len(man["preprocessing"]["feature_names"]) == len(fitted.feature_names_)
    assert "xgboost" in man["versions"]
    loaded = XGBoostWaferClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(va), fitted.predict_proba(va))
    via_registry = load_predictor(tmp_path / "m")
    np.testing.assert_array_equal(via_registry.predict_proba(va), fitted.predict_proba(va))
    assert via_registry.manifest.kind == "xgboost-classifier"


def test_wrong_kind_and_corrupt_files(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    man = json.loads((folder / "manifest.json").read_text())
    man["kind"] = "cnn-classifier"
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="wrong kind"):
        XGBoostWaferClassifier.load(folder)
    folder = fitted.save(tmp_path / "m2")
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt model file"):
        XGBoostWaferClassifier.load(folder)
    with pytest.raises(ModelFileError, match="no such model"):
        XGBoostWaferClassifier.load(tmp_path / "missing")


def test_all_nine_classes_and_errors():
    ws = make_wafers(45, random_state=3)
    clf = XGBoostWaferClassifier(feature_sets=["density", "meta"], n_estimators=3, n_jobs=1)
    assert clf.fit(ws).predict_proba(ws).shape == (45, 9)
    with pytest.raises(WafertkError):
        XGBoostWaferClassifier(classes=["Loc"]).fit(ws)
    with pytest.raises(WafertkError):
        XGBoostWaferClassifier(class_weight="x", feature_sets=["density"]).fit(ws)


def test_train_xgboost_run_folder(tmp_path):
    ws = make_wafers(160, classes=DEFECT_CLASSES, n_lots=16, random_state=5)
    cfg = XGBoostTrainConfig(feature_sets=["density", "geometry", "meta"], n_estimators=8,
                             early_stopping_rounds=3, n_jobs=1)
    out = train_xgboost(ws, tmp_path / "run", cfg)
    for f in ("model.json", "manifest.json", "config.yaml", "report.json", "report.html",
              "confusion_matrix.png"):
        assert (out / f).is_file(), f
    rep = json.loads((out / "report.json").read_text())
    assert rep["metrics"]["classes"] == list(DEFECT_CLASSES)
    assert rep["extra"]["n_train"] + rep["extra"]["n_validation"] == 160
    assert not list(tmp_path.glob(".run*"))  # no temporary folder left


def test_shipped_model_loads_and_predicts():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "wafertk" / "models" / "shipped" / "xgboost"
    clf = load_predictor(folder)
    assert isinstance(clf, XGBoostWaferClassifier)
    assert list(clf.classes_) == list(DEFECT_CLASSES)
    ws = make_wafers(16, classes=DEFECT_CLASSES, random_state=7)
    p = clf.predict_proba(ws)
    assert p.shape == (16, 8) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert (folder / "model.json").stat().st_size < 5_000_000


def test_split_is_the_cnn_validation_split_restricted_to_the_classes():
    """XGBoost and the CNNs trained on one file share their validation lots."""
    from wafertk.baseline import split_for_training
    from wafertk.data.splits import validation_split

    ws = make_wafers(240, random_state=4)
    ws.lot[:] = np.array([f"lot{i // 4}" for i in range(len(ws))], dtype=object)
    cfg = XGBoostTrainConfig(val_fraction=0.25, split_seed=3)
    train, val = split_for_training(ws, cfg)
    sp = validation_split(ws, 0.25, 3)
    labels = ws.label_strings().astype(str)
    want_val = [i for i in sp.val if labels[i] in DEFECT_CLASSES]
    assert list(val.wafer_id) == list(ws.wafer_id[want_val])
    assert "none" not in set(val.label_strings()) | set(train.label_strings())
    assert not set(train.lot) & set(val.lot)
    assert len(train) + len(val) == int(np.isin(labels, DEFECT_CLASSES).sum())
    # with split_seed set, the model seed does not move the validation lots; the split seed
    # does; without it (None), seed seeds both (as before split_seed existed)
    _, val_seed = split_for_training(ws, XGBoostTrainConfig(val_fraction=0.25, split_seed=3,
                                                            seed=7))
    assert list(val_seed.wafer_id) == list(val.wafer_id)
    _, val_split = split_for_training(ws, XGBoostTrainConfig(val_fraction=0.25, split_seed=4))
    assert list(val_split.wafer_id) != list(val.wafer_id)
    _, val_old = split_for_training(ws, XGBoostTrainConfig(val_fraction=0.25, seed=3))
    assert list(val_old.wafer_id) == list(val.wafer_id)
    assert XGBoostTrainConfig(seed=5).resolved_split_seed == 5
    assert XGBoostTrainConfig(seed=5, split_seed=0).resolved_split_seed == 0


def test_train_xgboost_binary_is_a_detector(tmp_path):
    """classes: binary trains good (label none) vs defective (any pattern) on the same split."""
    from wafertk.baseline import split_for_training

    ws = make_wafers(200, n_lots=20, random_state=6)
    cfg = XGBoostTrainConfig(classes="binary", feature_sets=["density", "geometry", "meta"],
                             n_estimators=8, early_stopping_rounds=3, class_weight=None,
                             n_jobs=1)
    labels = ws.label_strings().astype(str)
    target = cfg.target_labels(labels)
    assert set(target) == {"good", "defective"}
    assert ((target == "good") == (labels == "none")).all()
    np.testing.assert_array_equal(XGBoostTrainConfig().target_labels(labels), labels)
    # every labelled wafer is kept, and the lots are those of the 9-class split
    train, val = split_for_training(ws, cfg)
    train9, val9 = split_for_training(ws, XGBoostTrainConfig(classes="all"))
    assert list(val.wafer_id) == list(val9.wafer_id) and len(train) + len(val) == 200
    out = train_xgboost(ws, tmp_path / "run", cfg)
    clf = load_predictor(out)
    assert list(clf.classes_) == ["good", "defective"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["metrics"]["classes"] == ["good", "defective"]
    p = clf.predict_proba(val)[:, 1]
    # it learnt something: defective validation wafers score higher than good ones
    yv = val.label_strings().astype(str) != "none"
    assert p[yv].mean() > p[~yv].mean()
