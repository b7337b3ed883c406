"""Transfer architectures through the normal wafer trainer: frozen first phase, fine-tuning,
run folder, reload through the registry, bad weights and backbones (tiny synthetic wafers)."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.config import load_config
from wafertk.data import read_wafers, write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.errors import ConfigError
from wafertk.training.config import CnnTrainConfig

pytestmark = pytest.mark.tf

WEIGHTS_NAME = "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"
TINY = ["--epochs", "1", "--batch-size", "32", "--input-size", "36", "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def weights(squeezenet_weights):
    return squeezenet_weights  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    ws = make_wafers(150, shape_range=(12, 24), n_lots=15, random_state=0)
    path = tmp_path_factory.mktemp("tiny") / "train.h5"
    write_wafers(ws, path)
    return path


def _tiny_cfg(weights, task="classifier", **fine_tune):
    overrides = {"model.architecture": f"wafer_transfer_{task}", "model.weights": str(weights),
                 "model.dense_units": 8, "train.epochs": 1, "train.batch_size": 32,
                 "train.lr_schedule": "constant", "data.input_size": 36,
                 **{f"fine_tune.{k}": v for k, v in fine_tune.items()}}
    return load_config(CnnTrainConfig, None, overrides)


def _history(folder):
    with open(folder / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_classifier_cli_trains_fine_tunes_saves_and_reloads(tiny_h5, weights, tmp_path):
    from wafertk.cli.main import cli
    from wafertk.registry import load_model

    out = tmp_path / "transfer"
    r = CliRunner().invoke(cli, ["train", "classifier", "--data", str(tiny_h5), "-o", str(out),
                                 "--config", "classifier_transfer", "--weights", str(weights),
                                 "--fine-tune-epochs", "1", *TINY])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "cnn-classifier" and man["input_size"] == 36
    tr = man["extra"]["transfer"]
    assert tr["backbone"] == "squeezenet" and tr["weights"] == WEIGHTS_NAME
    assert len(tr["weights_sha256"]) == 16
    assert tr["fine_tune"]["from_layer"] == "fire6_squeeze1x1"
    assert tr["fine_tune"]["epochs_run"] == 1 and tr["fine_tune"]["first_epoch"] == 2
    assert man["extra"]["architecture"] == "wafer_transfer_classifier"
    assert [row["phase"] for row in _history(out)] == ["1", "2"]
    pred = load_model(out, kind="cnn-classifier")
    ws = read_wafers(tiny_h5)
    proba = pred.predict_proba(ws)
    assert proba.shape == (len(ws), len(man["classes"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    # the saved backbone is the file's, and fine-tuning left layers before fire6 alone
    import h5py

    base = pred.model.get_layer("squeezenet")
    with h5py.File(weights, "r") as f:
        g = f["model_weights"]["conv1"] if "model_weights" in f else f["conv1"]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
        kernel = next(np.asarray(g[n]) for n in names if np.asarray(g[n]).ndim == 4)
    np.testing.assert_array_equal(base.get_layer("conv1").kernel.numpy(), kernel)


def test_detector_trains_and_reloads_without_fine_tuning(tiny_h5, weights, tmp_path):
    from wafertk.registry import load_model
    from wafertk.training import train_detector

    cfg = _tiny_cfg(weights, "detector")
    out = train_detector(read_wafers(tiny_h5), tmp_path / "det", cfg)
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "cnn-detector"
    assert man["extra"]["transfer"]["backbone"] == "squeezenet"
    assert man["extra"]["transfer"]["fine_tune"] is None
    assert 0 <= man["extra"]["threshold"] <= 1
    assert "phase" not in _history(out)[0]
    det = load_model(out, kind="cnn-detector")
    p = det.predict_proba(read_wafers(tiny_h5))
    assert p.shape[0] == 150 and np.isfinite(p).all()


@pytest.fixture(scope="module")
def phase_one(tiny_h5, weights):
    """A transfer classifier after its first phase, with its weights before and after."""
    from wafertk.training import trainer

    cfg = _tiny_cfg(weights, enabled=True, from_layer="fire8_squeeze1x1", learning_rate=0.01,
                    epochs=1)
    data = trainer.prepare_data(read_wafers(tiny_h5), cfg, "classifier")
    model = trainer.build_model(cfg, data)
    before = [w.copy() for w in model.get_weights()]
    first = trainer.fit_model(model, data, cfg)
    after = [w.copy() for w in model.get_weights()]
    return {"cfg": cfg, "data": data, "model": model, "first": first,
            "before": before, "after": after}


def _by_layer(model, weights):
    """{backbone layer name: its arrays} out of a ``model.get_weights()`` list."""
    index = {id(v): i for i, v in enumerate(model.weights)}
    base = model.get_layer("squeezenet")
    return {la.name: [weights[index[id(v)]] for v in la.weights] for la in base.layers}


def test_backbone_frozen_in_phase_one(phase_one):
    model, first = phase_one["model"], phase_one["first"]
    before = _by_layer(model, phase_one["before"])
    after = _by_layer(model, phase_one["after"])
    assert sum(len(v) for v in before.values()) == 2 * 25  # conv1 + 8 fires x 3 convs
    for name, arrays in before.items():
        for w0, w1 in zip(arrays, after[name], strict=True):
            np.testing.assert_array_equal(w0, w1, err_msg=f"{name} trained while frozen")
    head = [i for i, v in enumerate(model.weights) if v.path.startswith("dense/")]
    assert head and any(not np.array_equal(phase_one["before"][i], phase_one["after"][i])
                        for i in head)
    assert first.fine_tune is None and len(first.history["loss"]) == 1


def test_fine_tune_unfreezes_from_the_named_layer(phase_one):
    from wafertk.training import trainer
    from wafertk.training.trainer import FitResult

    model, data, cfg = phase_one["model"], phase_one["data"], phase_one["cfg"]
    first = FitResult({"loss": [1.0], "val_loss": [float("inf")]}, 1, 0.0)  # always beaten
    start = [w.copy() for w in model.get_weights()]
    fit = trainer.fine_tune_model(model, data, cfg, first)
    assert fit.fine_tune["kept"] is True and fit.fine_tune["from_layer"] == "fire8_squeeze1x1"
    assert fit.history["phase"] == [1.0, 2.0] and fit.best_epoch == 2
    base = model.get_layer("squeezenet")
    flags = {la.name: la.trainable for la in base.layers}
    assert flags["fire8_squeeze1x1"] and flags["fire9_expand3x3"]
    assert not flags["conv1"] and not flags["fire7_expand3x3"]
    before = _by_layer(model, start)
    now = _by_layer(model, model.get_weights())
    changed = {n for n in before
               if any(not np.array_equal(a, b) for a, b in zip(before[n], now[n], strict=True))}
    assert {"fire8_squeeze1x1", "fire9_expand1x1", "fire9_expand3x3"} <= changed
    assert not changed & {"conv1", "fire2_squeeze1x1", "fire7_expand3x3"}


def test_fine_tune_keeps_first_phase_when_it_does_not_help(tiny_h5, weights):
    from wafertk.training import trainer
    from wafertk.training.trainer import FitResult

    cfg = _tiny_cfg(weights, enabled=True, from_layer=None, epochs=1)
    data = trainer.prepare_data(read_wafers(tiny_h5), cfg, "classifier")
    model = trainer.build_model(cfg, data)
    start = [w.copy() for w in model.get_weights()]
    first = FitResult({"loss": [1.0], "val_loss": [-1.0]}, 1, 0.0)  # never beaten
    fit = trainer.fine_tune_model(model, data, cfg, first)
    assert fit.fine_tune["kept"] is False and fit.best_epoch == 1
    assert model.get_layer("squeezenet").get_layer("conv1").trainable  # unfrozen (all)
    for w0, w1 in zip(start, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)


def test_bad_fine_tune_layer_fails_before_training(tiny_h5, weights):
    from wafertk.training import trainer

    cfg = _tiny_cfg(weights, enabled=True, from_layer="fire6_squeez1x1")
    data = trainer.prepare_data(read_wafers(tiny_h5), cfg, "classifier")
    with pytest.raises(ConfigError, match="fine_tune.from_layer: 'fire6_squeez1x1' is not a "
                                          "layer of squeezenet.*fire6_squeeze1x1"):
        trainer.build_model(cfg, data)


def test_cli_bad_weights_path_and_backbone_are_one_line_errors(tiny_h5, tmp_path):
    from wafertk.cli.main import cli

    missing = tmp_path / "missing.h5"
    r = CliRunner().invoke(cli, ["train", "classifier", "--data", str(tiny_h5), "-o",
                                 str(tmp_path / "o"), "--config", "classifier_transfer",
                                 "--weights", str(missing)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--weights: {missing}: no such weights file" in lines[0]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  architecture: wafer_transfer_detector\n  backbone: squeezent\n")
    r = CliRunner().invoke(cli, ["train", "detector", "--data", str(tiny_h5), "-o",
                                 str(tmp_path / "o"), "--config", str(cfg)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0]
    assert "model.backbone: unknown backbone 'squeezent'" in lines[0]
    assert not (tmp_path / "o").exists()
