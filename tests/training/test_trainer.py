"""Training runs on tiny synthetic data: split, augmentation, the run steps, run folder, CLI."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.config import load_config
from wafertk.data import read_wafers, write_wafers
from wafertk.data.splits import validation_split
from wafertk.data.synthetic import make_wafers
from wafertk.errors import WaferFileError, WafertkError
from wafertk.training.config import CnnTrainConfig

pytestmark = pytest.mark.tf

TINY = ["--epochs", "2", "--batch-size", "32", "--input-size", "16", "--seed", "0"]


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
                    "train:\n  lr_schedule: step\n  learning_rate: 0.01\n")
    return path


@pytest.fixture(scope="module")
def runs(tiny_h5, tiny_config, tmp_path_factory):
    """Both models trained once through the CLI on the same file and config."""
    from wafertk.cli.main import cli

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for task in ("detector", "classifier"):
        out[task] = root / task
        r = CliRunner().invoke(cli, ["train", task, "--data", str(tiny_h5), "-o",
                                     str(out[task]), "--config", str(tiny_config), *TINY])
        assert r.exit_code == 0, r.output
        out[f"{task}_result"] = r
    return out


@pytest.fixture
def one_line_error():
    """``one_line_error(result, *needles)``: exit 2, one ``wafertk: error:`` line on stderr."""

    def check(r, *needles):
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
        for n in needles:
            assert str(n) in lines[0], lines[0]
        assert r.stdout == "" and "Traceback" not in r.output

    return check


def _validation_rows(folder):
    with open(folder / "validation.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_validation_split_is_lot_disjoint_and_complete():
    ws = make_wafers(270, n_lots=27, random_state=1)
    s = validation_split(ws, 0.2, 0)
    assert len(np.intersect1d(s.train, s.val)) == 0
    assert len(s.train) + len(s.val) == len(ws)
    assert not set(ws.lot[s.train]) & set(ws.lot[s.val])


def test_augmentation_only_on_training_pipeline():
    pytest.importorskip("tensorflow")
    from wafertk.data.preprocess import one_hot
    from wafertk.training.trainer import make_dataset

    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, (64, 8, 8)).astype(np.uint8)
    y = np.zeros(64, np.float32)
    val = np.concatenate([b[0] for b in make_dataset(
        maps, None, y, 16, augment=False, shuffle=False, seed=None).as_numpy_iterator()])
    np.testing.assert_array_equal(val, one_hot(maps))  # validation: unchanged, in order
    tr = np.concatenate([b[0] for b in make_dataset(
        maps, None, y, 16, augment=True, shuffle=False, seed=0).as_numpy_iterator()])
    changed = [not np.array_equal(a, b) for a, b in zip(tr, one_hot(maps), strict=True)]
    assert any(changed)
    # every augmented map is a rotation/flip of its source
    for a, m in zip(tr.argmax(-1), maps, strict=True):
        variants = [np.rot90(m, k) for k in range(4)] + [np.rot90(m, k)[:, ::-1] for k in range(4)]
        assert any(np.array_equal(a, v) for v in variants)


def test_prepare_data_targets_and_split(tiny_h5):
    from wafertk.training.trainer import prepare_data

    ws = read_wafers(tiny_h5)
    cfg = load_config(CnnTrainConfig, None, {"data.input_size": 16})
    det = prepare_data(ws, cfg, "detector")
    cls = prepare_data(ws, cfg, "classifier")
    assert det.x_train.shape[1:] == (16, 16) and det.m_train is None
    assert set(np.unique(det.y_train)) == {0.0, 1.0}
    assert cls.m_train.shape[0] == len(cls.y_train) and cls.y_train.min() >= 0
    assert det.split["split_lots_digest"] == cls.split["split_lots_digest"]
    assert len(det.y_val) > len(cls.y_val) > 0


def test_class_weights_balanced_and_capped():
    from wafertk.training.trainer import class_weight_dict

    y = np.array([0] * 90 + [1] * 9 + [2])
    w = class_weight_dict(y, 4, max_weight=5.0)
    assert w[0] == pytest.approx(100 / (3 * 90)) and w[1] == pytest.approx(100 / 27)
    assert w[2] == 5.0 and w[3] == 1.0  # capped; absent class neutral


def test_build_model_through_registry_and_rejects_wrong_task(tiny_h5):
    from wafertk.training.trainer import build_model, prepare_data

    ws = read_wafers(tiny_h5)
    cfg = load_config(CnnTrainConfig, None, {"data.input_size": 16,
                                             "model.conv_filters": [4], "model.dense_units": 4})
    data = prepare_data(ws, cfg, "classifier")
    model = build_model(cfg, data)
    assert model.name == "wafer_cnn_classifier" and model.output_shape == (None, 8)
    cfg.model.architecture = "wafer_cnn_detector"
    with pytest.raises(WafertkError, match="not a classifier"):
        build_model(cfg, data)


@pytest.mark.parametrize("task", ["detector", "classifier"])
def test_train_cli_writes_every_output(task, runs, tiny_h5):
    from wafertk.models import load_predictor

    out = runs[task]
    for name in ("config.yaml", "history.csv", "validation.csv", "curves_loss.png",
                 "curves_metric.png", "model.keras", "manifest.json", "report/report.json"):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == f"cnn-{task}" and man["input_size"] == 16
    assert man["extra"]["temperature"] > 0
    assert man["extra"]["architecture"] == f"wafer_cnn_{task}"
    if task == "detector":
        assert (out / "curves_roc.png").is_file() and (out / "curves_pr.png").is_file()
        assert man["classes"] == ["good", "defective"]
    else:
        assert len(man["classes"]) == 8
    assert "train:" in (out / "config.yaml").read_text()
    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "epoch" and "val_loss" in rows[0] and len(rows) == 3  # 2 epochs
    summary = runs[f"{task}_result"].stdout.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith(f"wrote {out}: {task}, validation")
    pred = load_predictor(out)
    ws = read_wafers(tiny_h5).slice(0, 10)
    proba = pred.predict_proba(ws)
    assert proba.shape == (10, len(man["classes"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_detector_figures_match_the_saved_model(runs, tiny_h5):
    """Recorded validation figures = figures recomputed from the saved model on the recorded
    validation wafers, and they are clearly better than chance on the synthetic data."""
    from wafertk.evaluate import binary_metrics
    from wafertk.registry import load_model

    out = runs["detector"]
    man = json.loads((out / "manifest.json").read_text())
    ws = read_wafers(tiny_h5)
    ids = [r["wafer_id"] for r in _validation_rows(out)]
    index = {w: i for i, w in enumerate(ws.wafer_id.astype(str))}
    val = ws.take(np.array([index[w] for w in ids]))
    pred = load_model(out, "cnn-detector")
    b = binary_metrics(val.label_strings().astype(str) != "none",
                       pred.predict_proba(val)[:, 1], pred.threshold)
    rec = man["extra"]["validation"]
    assert rec["n"] == b["n"] == man["extra"]["split"]["n_validation"]
    assert rec["n_defective"] == b["n_positive"]
    assert rec["roc_auc"] == pytest.approx(b["roc_auc"], abs=1e-3)
    # the threshold is a validation score: allow one wafer to sit on the other side
    assert abs(rec["recall"] - b["recall"]) <= 1 / b["n_positive"] + 1e-9
    assert rec["roc_auc"] > 0.75


def test_classifier_split_is_the_detectors_restricted_to_defects(runs):
    det = {r["wafer_id"]: r for r in _validation_rows(runs["detector"])}
    cls = _validation_rows(runs["classifier"])
    want = sorted(w for w, r in det.items() if r["label"] != "none")
    assert sorted(r["wafer_id"] for r in cls) == want and want
    mans = [json.loads((runs[t] / "manifest.json").read_text())["extra"]["split"]
            for t in ("detector", "classifier")]
    assert mans[0]["split_lots_digest"] == mans[1]["split_lots_digest"]
    assert mans[1]["n_validation"] == len(want)


def test_quiet_train_prints_nothing(tiny_h5, tiny_config, tmp_path):
    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(tiny_h5), "--out",
                                 str(tmp_path / "d"), "--config", str(tiny_config), *TINY,
                                 "--epochs", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert r.output == "" and (tmp_path / "d" / "model.keras").is_file()


def test_training_data_errors_name_the_file(tmp_path, one_line_error):
    from wafertk.cli.main import cli
    from wafertk.training.trainer import prepare_data

    ws = make_wafers(30, random_state=0)
    ws.labels = None
    unl = write_wafers(ws, tmp_path / "u.h5")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(unl),
                                 "-o", str(tmp_path / "run"), *TINY])
    one_line_error(r, str(unl), "labeled")
    one = make_wafers(30, random_state=0)
    one.labels = np.full(len(one), "Center", dtype=object)
    path = write_wafers(one, tmp_path / "one.h5")
    for task in ("detector", "classifier"):
        r = CliRunner().invoke(cli, ["train", task, "--data", str(path),
                                     "-o", str(tmp_path / "run"), *TINY])
        one_line_error(r, str(path))
    with pytest.raises(WaferFileError, match="only one"):
        prepare_data(one, CnnTrainConfig(), "detector", data_path=path)
    assert not (tmp_path / "run").exists()


def test_train_cli_rejects_bad_config_before_reading_data(tmp_path, one_line_error):
    from wafertk.cli.main import cli

    ws = make_wafers(30, random_state=0)
    data = write_wafers(ws, tmp_path / "w.h5")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(data),
                                 "-o", str(tmp_path / "run"), "--config", str(bad)])
    one_line_error(r, str(bad), "unknown key 'epoch'", "did you mean 'epochs'")
    bad.write_text("model:\n  dropout: 2.0\n  l2: -1\n  activation: relux\n"
                   "train:\n  epochs: 0\n  learning_rate: 0\n  seed: -1\n"
                   "data:\n  validation_fraction: 1.0\n"
                   "decision:\n  target_recall: 0\n  review_below: 1.5\n")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(data),
                                 "-o", str(tmp_path / "run"), "--config", str(bad),
                                 "--input-size", "3", "--batch-size", "0"])
    one_line_error(r, f"{bad}: model.dropout: 2.0 is not in [0, 1)",
                   "model.l2: -1.0 is not >= 0", "did you mean 'relu'",
                   "train.epochs: 0 is not >= 1", "train.learning_rate: 0.0 is not > 0",
                   "data.validation_fraction: 1.0 is not in (0, 1)",
                   "decision.target_recall: 0.0 is not in (0, 1]",
                   "decision.review_below: 1.5 is not in [0, 1]",
                   "--batch-size: 0 is not >= 1",
                   "--input-size: 3 is too small for 3 pooling blocks (needs >= 8)")
    bad.write_bytes(b"model:\n  activation: r\xe9lu\n")
    r = CliRunner().invoke(cli, ["train", "classifier", "--data", str(data),
                                 "-o", str(tmp_path / "run"), "--config", str(bad)])
    one_line_error(r, str(bad), "not a UTF-8 text file")
    assert not (tmp_path / "run").exists()


def test_default_config_is_the_packaged_recipe(monkeypatch, tmp_path):
    """Without --config the trainer gets the packaged config of the task's name."""
    import wafertk.training.trainer as trainer
    from wafertk.cli.main import cli
    from wafertk.config import packaged_configs

    seen = {}

    def fake_train(ws, out, cfg, task, **kwargs):
        seen[task] = cfg
        raise WafertkError("stop here")

    monkeypatch.setattr(trainer, "train", fake_train)
    data = write_wafers(make_wafers(20, random_state=0), tmp_path / "w.h5")
    for task, args in (("detector", []), ("classifier", ["--config", "classifier"])):
        r = CliRunner().invoke(cli, ["train", task, "--data", str(data), "-o",
                                     str(tmp_path / "r"), *args])
        assert r.exit_code == 2 and "stop here" in r.output
        assert seen[task] == load_config(CnnTrainConfig, packaged_configs()[task])
    assert seen["detector"].model.conv_filters == [8, 16, 32]


def test_nine_class_residual_focal_smoothing_run(tiny_h5, tmp_path):
    """data.classes: all, residual blocks, focal loss with label smoothing: one real run."""
    import keras

    from wafertk.registry import load_model
    from wafertk.training.trainer import (
        build_model,
        fit_model,
        make_dataset,
        one_hot_targets,
        prepare_data,
    )

    ws = read_wafers(tiny_h5)
    cfg = load_config(CnnTrainConfig, None, {
        "data.input_size": 16, "data.classes": "all", "model.conv_filters": [4, 8],
        "model.residual": True, "model.dense_units": 8, "train.loss": "focal",
        "train.label_smoothing": 0.1, "train.epochs": 1, "train.batch_size": 32})
    data = prepare_data(ws, cfg, "classifier")
    assert "none" in data.classes and len(data.classes) == 9
    assert (data.y_train == data.classes.index("none")).any()  # the none wafers take part
    model = build_model(cfg, data)
    names = [la.name for la in model.layers]
    assert {"add1", "add2", "proj1", "proj2"} <= set(names)  # widths change: projections
    assert isinstance(model.loss, keras.losses.CategoricalFocalCrossentropy)
    assert one_hot_targets(cfg, "classifier")
    _, y = next(iter(make_dataset(data.x_train, data.m_train, data.y_train, 8, augment=False,
                                  shuffle=False, seed=None, n_classes=9)))
    np.testing.assert_array_equal(np.asarray(y).argmax(1), data.y_train[:8])
    fit = fit_model(model, data, cfg)
    assert np.isfinite(fit.history["loss"]).all() and "val_accuracy" in fit.history
    # the whole run through the CLI reloads as a 9-class classifier
    path = tmp_path / "nine.yaml"
    path.write_text("model:\n  conv_filters: [4, 8]\n  residual: true\n  dense_units: 8\n"
                    "train:\n  label_smoothing: 0.1\ndata:\n  classes: all\n")
    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["train", "classifier", "--data", str(tiny_h5), "-o",
                                 str(tmp_path / "run"), "--config", str(path), *TINY])
    assert r.exit_code == 0, r.output
    clf = load_model(tmp_path / "run", kind="cnn-classifier")
    assert "none" in clf.classes_ and clf.predict_proba(ws.take(range(5))).shape == (5, 9)


def test_detector_rejects_nine_classes_and_bad_smoothing(tmp_path):
    from wafertk.training.trainer import prepare_data

    ws = make_wafers(60, n_lots=6, random_state=2)
    cfg = load_config(CnnTrainConfig, None, {"data.classes": "all"})
    with pytest.raises(WafertkError, match="classifier only"):
        prepare_data(ws, cfg, "detector")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  label_smoothing: 0.7\n  loss: huber\n")
    with pytest.raises(WafertkError) as err:
        load_config(CnnTrainConfig, bad)
    assert "train.label_smoothing" in str(err.value) and "train.loss" in str(err.value)
