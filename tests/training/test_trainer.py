"""Training runs on tiny synthetic data: split, augmentation, run folder, train CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.training.trainer import validation_split

pytestmark = pytest.mark.tf

TINY = ["--epochs", "1", "--batch-size", "32", "--input-size", "16", "--seed", "0"]


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    ws = make_wafers(180, shape_range=(12, 24), n_lots=18, random_state=0)
    path = tmp_path_factory.mktemp("tiny") / "train.h5"
    write_wafers(ws, path)
    return path


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text("model:\n  conv_filters: [4, 8]\n  dense_units: 8\n"
                    "train:\n  lr_schedule: step\n")
    return path


def test_validation_split_is_lot_disjoint_and_complete():
    ws = make_wafers(270, n_lots=27, random_state=1)
    s = validation_split(ws, 0.2, 0)
    assert len(np.intersect1d(s.train, s.val)) == 0
    assert len(s.train) + len(s.val) == len(ws)
    assert not set(ws.lot[s.train]) & set(ws.lot[s.val])
    # the classifier's split is the detector's restricted to defect classes: same seed, same lots
    s2 = validation_split(ws, 0.2, 0)
    np.testing.assert_array_equal(s.val, s2.val)


def test_augmentation_only_on_training_pipeline():
    pytest.importorskip("tensorflow")
    from wafertk.data.preprocess import one_hot
    from wafertk.training.trainer import _dataset

    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, (64, 8, 8)).astype(np.uint8)
    y = np.zeros(64, np.float32)
    val = np.concatenate([b[0] for b in _dataset(maps, None, y, 16, augment=False,
                                                  shuffle=False, seed=None).as_numpy_iterator()])
    np.testing.assert_array_equal(val, one_hot(maps))  # validation: unchanged, in order
    tr = np.concatenate([b[0] for b in _dataset(maps, None, y, 16, augment=True,
                                                 shuffle=False, seed=0).as_numpy_iterator()])
    changed = [not np.array_equal(a, b) for a, b in zip(tr, one_hot(maps), strict=True)]
    assert any(changed)
    # every augmented map is a rotation/flip of its source
    for a, m in zip(tr.argmax(-1), maps, strict=True):
        variants = [np.rot90(m, k) for k in range(4)] + [np.rot90(m, k)[:, ::-1] for k in range(4)]
        assert any(np.array_equal(a, v) for v in variants)


@pytest.mark.parametrize("task", ["detector", "classifier"])
def test_train_cli_writes_every_output(task, tiny_h5, tiny_config, tmp_path):
    from wafertk.cli.main import cli
    from wafertk.data import read_wafers
    from wafertk.models import load_predictor

    out = tmp_path / task
    r = CliRunner().invoke(cli, ["train", task, "--data", str(tiny_h5), "-o", str(out),
                                 "--config", str(tiny_config), *TINY])
    assert r.exit_code == 0, r.output
    for name in ("config.yaml", "history.csv", "curves_loss.png", "curves_metric.png",
                 "model.keras", "manifest.json", "report/report.json"):
        assert (out / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == f"cnn-{task}" and man["input_size"] == 16
    assert man["extra"]["temperature"] > 0
    if task == "detector":
        assert (out / "curves_roc.png").is_file() and (out / "curves_pr.png").is_file()
        assert man["classes"] == ["good", "defective"]
        assert 0 <= man["extra"]["threshold"] <= 1
        assert man["extra"]["validation"]["recall"] >= 0.97
    else:
        assert len(man["classes"]) == 8
    assert "train:" in (out / "config.yaml").read_text()
    assert (out / "history.csv").read_text().startswith("epoch,")
    pred = load_predictor(out)
    ws = read_wafers(tiny_h5).slice(0, 10)
    proba = pred.predict_proba(ws)
    assert proba.shape == (10, len(man["classes"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_train_cli_rejects_unlabeled_and_bad_config(tmp_path):
    from wafertk.cli.main import cli

    ws = make_wafers(30, random_state=0)
    ws.labels = None
    write_wafers(ws, tmp_path / "u.h5")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(tmp_path / "u.h5"),
                                 "-o", str(tmp_path / "run"), *TINY])
    assert r.exit_code == 2 and "labeled" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(tmp_path / "u.h5"),
                                 "-o", str(tmp_path / "run"), "--config", str(bad)])
    assert r.exit_code == 2 and "epoch" in r.output
    assert not (tmp_path / "run").exists()
