"""The shared evaluation report: metrics on hand-computed arrays, report files, evaluate_model."""

import json
import re

import numpy as np
import pytest

from wafertk.data import WaferSet, write_wafers
from wafertk.errors import WafertkError
from wafertk.evaluate import (
    binary_metrics,
    classification_metrics,
    evaluate_model,
    write_evaluation_report,
)
from wafertk.models import Manifest, write_manifest


def test_classification_metrics_hand_computed():
    names = ["a", "b", "c"]
    y = ["a", "a", "b", "b", "c", "c"]
    p = ["a", "b", "b", "b", "a", "c"]
    m = classification_metrics(y, p, names)
    assert m["n"] == 6 and m["classes"] == names
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls 1/2, 1, 1/2 ; precisions 1/2, 2/3, 1
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    f1 = [0.5, 0.8, 2 / 3]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["weighted_f1"] == pytest.approx(np.mean(f1))  # equal supports
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert "precision" in m["classification_report"]
    # integer codes give the same result
    codes = {c: i for i, c in enumerate(names)}
    m2 = classification_metrics([codes[v] for v in y], [codes[v] for v in p], names)
    assert m2["confusion_matrix"] == m["confusion_matrix"] and m2["macro_f1"] == m["macro_f1"]


def test_classification_metrics_proba_and_errors():
    proba = np.array([[0.9, 0.1], [0.4, 0.6]])
    m = classification_metrics(["a", "b"], ["a", "b"], ["a", "b"], proba=proba)
    assert m["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.6)) / 2)
    assert m["top2_accuracy"] == 1.0
    with pytest.raises(WafertkError, match="unknown class 'z'"):
        classification_metrics(["z"], ["a"], ["a", "b"])
    with pytest.raises(WafertkError):
        classification_metrics(["a"], ["a", "b"], ["a", "b"])


def test_binary_metrics_hand_computed():
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["precision"] == m["recall"] == m["f1"] == m["accuracy"] == 0.5
    assert set(m["roc_curve"]) == {"fpr", "tpr", "thresholds"}
    assert set(m["pr_curve"]) == {"precision", "recall", "thresholds"}
    rng = np.random.default_rng(0)
    big = binary_metrics(rng.random(5000) > 0.5, rng.random(5000))
    assert len(big["roc_curve"]["fpr"]) <= 200 and len(big["pr_curve"]["recall"]) <= 200
    one = binary_metrics([1, 1], [0.2, 0.8])
    assert one["roc_auc"] is None and one["recall"] == 0.5


def _no_external_urls(text):
    return not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)


def test_report_files(tmp_path):
    m = classification_metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    b = binary_metrics([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.1])
    paths = write_evaluation_report(tmp_path / "rep", title="T <x>", metrics=m, binary=b,
                                    extra={"model": "m"})
    for key in ("json", "md", "html", "confusion_matrix", "confusion_matrix_normalized",
                "roc_curve", "pr_curve"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert paths["confusion_matrix"].read_bytes()[:4] == b"\x89PNG"
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 4 and _no_external_urls(html)
    assert "T &lt;x&gt;" in html
    rep = json.loads(paths["json"].read_text())
    assert rep["metrics"]["confusion_matrix"] == [[1, 0], [1, 1]]
    assert rep["binary"]["roc_auc"] == pytest.approx(1.0)
    assert "| b | 1.0000 | 0.5000 |" in paths["md"].read_text()
    # classification only: no ROC/PR figures
    p2 = write_evaluation_report(tmp_path / "rep2", title="t", metrics=m)
    assert "roc_curve" not in p2 and not (tmp_path / "rep2" / "roc_curve.png").exists()
    with pytest.raises(WafertkError):
        write_evaluation_report(tmp_path / "rep3", title="t")


class _FakeDetector:
    classes_ = ["good", "defective"]

    def predict_proba(self, ws):
        p = np.array([float((m == 2).mean()) for m in ws])
        return np.stack([1 - p, p], axis=1)


def _fake_model(tmp_path, kind, classes, extra=None):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"x")
    write_manifest(folder, Manifest(kind=kind, model_file="model.bin", classes=classes,
                                    extra=extra or {}))
    return folder


def test_evaluate_model_detector(tmp_path, monkeypatch):
    import wafertk.registry as registry

    monkeypatch.setattr(registry, "load_model", lambda folder, kind=None: _FakeDetector())
    model = _fake_model(tmp_path, "cnn-detector", ["good", "defective"], {"threshold": 0.3})
    good = np.ones((6, 6), np.uint8)
    bad = good.copy()
    bad[:3] = 2
    ws = WaferSet.from_maps([good, bad, good, bad, good], labels=["none", "Loc", "none",
                                                                  "Center", ""])
    h5 = write_wafers(ws, tmp_path / "w.h5")
    res = evaluate_model(model, h5, tmp_path / "rep", batch_size=2)
    b = res["binary"]
    assert b["n"] == 4 and b["n_positive"] == 2 and b["threshold"] == 0.3
    assert b["roc_auc"] == 1.0 and b["confusion_matrix"] == [[2, 0], [0, 2]]
    assert res["extra"]["skipped_unlabeled"] == 1
    assert (tmp_path / "rep" / "roc_curve.png").is_file()


def test_evaluate_model_unlabeled_file(tmp_path, monkeypatch):
    import wafertk.registry as registry

    monkeypatch.setattr(registry, "load_model", lambda folder, kind=None: _FakeDetector())
    model = _fake_model(tmp_path, "cnn-detector", ["good", "defective"])
    h5 = write_wafers(WaferSet.from_maps([np.ones((4, 4), np.uint8)]), tmp_path / "u.h5")
    with pytest.raises(WafertkError, match="no labels to evaluate against"):
        evaluate_model(model, h5, tmp_path / "rep")


def test_metrics_from_confusion_match_scikit_learn():
    """The one metrics computation (confusion counts) against scikit-learn's definitions."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
    from sklearn.metrics import precision_recall_fscore_support as prfs

    from wafertk.evaluate import metrics_from_confusion

    rng = np.random.default_rng(5)
    names = [f"c{i}" for i in range(9)]
    y = rng.integers(0, len(names) - 1, 500)  # the last class never occurs as a label
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, len(names), 500))
    cm = np.zeros((9, 9), np.int64)
    np.add.at(cm, (y, p), 1)
    got = metrics_from_confusion(cm, names)
    present = sorted(set(y))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    with pytest.warns(UserWarning):  # the class that never occurs is predicted
        assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, labels=present, average="macro"))
    assert got["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted"))
    prec, rec, f1, sup = prfs(y, p, labels=list(range(9)), zero_division=0)
    for i, c in enumerate(names):
        assert got["per_class"][c] == pytest.approx(
            {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": sup[i]})
