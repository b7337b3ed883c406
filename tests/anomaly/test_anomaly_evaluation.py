"""Scores, thresholds, latent views and inputs of wafertk.anomaly (no TensorFlow)."""

import subprocess
import sys

import numpy as np
import pytest

from wafertk.anomaly.data import (
    as_images,
    global_contrast_normalization,
    read_array_file,
    read_image_folder,
    wafer_inputs,
)
from wafertk.anomaly.evaluation import (
    anomaly_metrics,
    choose_threshold,
    latent_moments,
    plot_latent,
    threshold_sweep,
)
from wafertk.data.synthetic import make_wafers
from wafertk.errors import WaferFileError, WafertkError


def test_light_imports():
    code = ("import wafertk.anomaly, wafertk.anomaly.config, wafertk.anomaly.data, "
            "wafertk.anomaly.evaluation, wafertk.anomaly.run, sys\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_metrics_and_sweep():
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.5, 0.4, 0.9])
    m = anomaly_metrics(y, s, 0.35)
    assert m["roc_auc"] == pytest.approx(7 / 8) and m["pr_auc"] == m["average_precision"]
    assert m["recall"] == 1.0 and m["flagged"] == pytest.approx(0.5)
    rows = threshold_sweep(y, s, chosen=0.35)
    assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows)
    assert rows[0]["recall"] == 1.0 and rows[0]["flagged"] == 1.0  # very sensitive
    assert rows[-1]["flagged"] <= 1 / 6  # very specific
    assert [r["chosen"] for r in rows].count(1) == 1
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls, reverse=True)
    with pytest.raises(WafertkError, match="NaN"):
        anomaly_metrics(y, np.r_[s[:-1], np.nan], 0.3)


def test_choose_threshold():
    s = np.arange(100.0)
    assert choose_threshold(s, contamination=0.1) == pytest.approx(89.1)
    y = (s >= 90).astype(int)  # the top ten are anomalous
    # quantile of the normal samples only
    assert choose_threshold(s, y, contamination=0.5) == pytest.approx(np.quantile(s[:90], 0.5))
    assert choose_threshold(s, y, method="f1") == 90.0
    assert choose_threshold(s, y, method="recall", target_recall=0.5) == 95.0
    with pytest.raises(WafertkError, match="needs labels"):
        choose_threshold(s, method="f1")


def test_latent_views(tmp_path):
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(0, 1, (50, 4)), rng.normal(5, 0.1, (10, 4))]
    lab = np.array(["none"] * 50 + ["Center"] * 10)
    mom = {r["class"]: r for r in latent_moments(z, lab)}
    assert mom["Center"]["n"] == 10 and mom["Center"]["spread"] < mom["none"]["spread"]
    assert mom["Center"]["distance_to_overall_mean"] > mom["none"]["distance_to_overall_mean"]
    p = plot_latent(z, lab, tmp_path / "pca.png")
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_inputs(tmp_path):
    from PIL import Image

    x = wafer_inputs(make_wafers(3, random_state=0), 16)
    assert x.shape == (3, 16, 16, 3) and np.array_equal(x.sum(-1), np.ones((3, 16, 16)))
    img = as_images(np.full((2, 4, 4, 3), 255, np.uint8))
    assert img.dtype == np.float32 and img.max() == 1.0
    g = global_contrast_normalization(np.random.default_rng(0).random((2, 4, 4, 3)))
    assert np.allclose(g.reshape(2, -1).mean(1), 0, atol=1e-6)
    assert np.allclose(np.abs(g.reshape(2, -1)).mean(1), 1, atol=1e-5)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    s = read_image_folder(tmp_path / "imgs")
    assert s.x.shape == (6, 8, 8, 3) and list(s.labels[:3]) == ["cat"] * 3 and s.has_labels
    assert s.files[0] == "cat/0.png"
    assert read_image_folder(tmp_path / "imgs", classes=["dog"], size=4).x.shape == (3, 4, 4, 3)
    with pytest.raises(WaferFileError, match="no images of class 'cow'"):
        read_image_folder(tmp_path / "imgs", classes=["cow"])
    bad = np.zeros((3, 4, 4, 3), np.float32)
    bad[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(WaferFileError, match=r"bad.npy: holds NaN or infinite values \(sample 2"):
        read_array_file(tmp_path / "bad.npy")


def test_read_data_images_one_class(tmp_path):
    from PIL import Image

    from wafertk.anomaly.config import AnomalyConfig
    from wafertk.anomaly.run import read_data

    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    cfg = AnomalyConfig()
    cfg.data.normal_class = "cat"
    d = read_data(tmp_path / "imgs", cfg)
    assert d.kind == "images" and d.info["train_on"] == "normal"
    assert d.info["train"] + (d.val_labels == "cat").sum() == 10  # cats: training or validation
    assert d.y_val is not None and set(d.val_labels[d.y_val]) <= {"dog"}
    cfg.data.normal_class = "cow"
    with pytest.raises(WaferFileError, match="no images of the normal class 'cow'"):
        read_data(tmp_path / "imgs", cfg)


def test_read_data_wafers(tmp_path):
    from wafertk.anomaly.config import AnomalyConfig
    from wafertk.anomaly.run import read_data
    from wafertk.data import write_wafers

    ws = make_wafers(60, classes=["none", "none", "Center"], n_lots=10, random_state=0)
    write_wafers(ws, tmp_path / "l.h5")
    d = read_data(tmp_path / "l.h5", AnomalyConfig())
    assert set(d.train.label_strings()) == {"none"}  # the normal wafers of the training lots
    assert not set(d.train.lot) & set(d.val.lot)  # lot-disjoint
    assert d.y_val.sum() == (d.val_labels == "Center").sum() > 0
    ws.labels = None
    write_wafers(ws, tmp_path / "u.h5")
    d = read_data(tmp_path / "u.h5", AnomalyConfig())
    assert d.info["train_on"] == "all" and d.y_val is None
    assert d.info["train"] + d.info["validation"] == 60
