"""Wafer transfer architectures (wafertk.models.transfer): build, frozen backbone, real
SqueezeNet weights, fine-tuning layer checks, bad backbones and weights files."""

import h5py
import numpy as np
import pytest

from wafertk.data.preprocess import die_metadata, one_hot, resize_maps
from wafertk.data.synthetic import make_wafers
from wafertk.errors import ConfigError, ModelFileError

pytestmark = pytest.mark.tf


def _file_kernel(path, group):
    with h5py.File(path, "r") as f:
        g = f["model_weights"][group] if "model_weights" in f else f[group]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
        return next(np.asarray(g[n]) for n in names if np.asarray(g[n]).ndim == 4)


def test_classifier_loads_real_weights_frozen_and_runs(squeezenet_weights):
    from wafertk.models.transfer import build_wafer_transfer_classifier

    model = build_wafer_transfer_classifier((40, 40, 3), 8, weights=squeezenet_weights,
                                            dense_units=8, seed=0, compile=False)
    base = model.get_layer("squeezenet")
    assert base.trainable is False and not base.trainable_weights
    # the head (dense, output) and nothing of the backbone trains in the first phase
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"gap_bn", "dense", "output"}
    np.testing.assert_array_equal(base.get_layer("fire6_squeeze1x1").kernel.numpy(),
                                  _file_kernel(squeezenet_weights, "fire6/squeeze1x1"))
    assert [t.name for t in model.inputs] == ["maps", "meta"]
    assert model.get_layer("meta_scaling") is not None
    ws = make_wafers(6, n_lots=2, random_state=0)
    out = np.asarray(model({"maps": one_hot(resize_maps(ws, 40)), "meta": die_metadata(ws)},
                           training=False))
    assert out.shape == (6, 8)
    np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-5)


def test_detector_single_input_sigmoid():
    from wafertk.models.transfer import build_wafer_transfer_detector

    model = build_wafer_transfer_detector((36, 36, 3), dense_units=0, dropout=0.0,
                                          compile=False, conv_filters=[4], batch_norm=True)
    assert len(model.inputs) == 1 and model.output_shape == (None, 1)
    out = np.asarray(model(np.zeros((2, 36, 36, 3), np.float32)))
    assert ((out > 0) & (out < 1)).all()


def test_unknown_backbone_and_small_input():
    from wafertk.models.transfer import build_wafer_transfer

    with pytest.raises(ConfigError, match="unknown backbone 'squeezent'.*did you mean "
                                          "'squeezenet'"):
        build_wafer_transfer((64, 64, 3), 8, backbone="squeezent")
    with pytest.raises(ConfigError, match="at least 35 px"):
        build_wafer_transfer((32, 32, 3), 8, backbone="squeezenet")


def test_bad_weights_file_names_it(tmp_path):
    from wafertk.models.transfer import build_wafer_transfer_classifier

    missing = tmp_path / "nope.h5"
    with pytest.raises(ModelFileError, match="nope.h5.*no such weights file"):
        build_wafer_transfer_classifier((40, 40, 3), weights=missing, compile=False)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="junk.h5.*not an HDF5"):
        build_wafer_transfer_classifier((40, 40, 3), weights=junk, compile=False)


def test_fine_tune_layer_checks_and_unfreeze():
    from wafertk.models.transfer import (
        build_wafer_transfer_classifier,
        fine_tune_layer_problem,
        unfreeze_backbone,
    )

    model = build_wafer_transfer_classifier((36, 36, 3), 3, dense_units=4, compile=False)
    assert fine_tune_layer_problem(model, "squeezenet", "fire6/squeeze1x1") is None
    assert "did you mean 'fire6_squeeze1x1'" in fine_tune_layer_problem(
        model, "squeezenet", "fire6_squeez1x1")
    with pytest.raises(ConfigError, match="fine_tune.from_layer"):
        unfreeze_backbone(model, "squeezenet", "fire66")
    assert model.get_layer("squeezenet").trainable is False  # a bad name changes nothing
    unfreeze_backbone(model, "squeezenet", "fire6_squeeze1x1")
    base = model.get_layer("squeezenet")
    flags = {layer.name: layer.trainable for layer in base.layers}
    assert not flags["conv1"] and not flags["fire5_expand3x3"]
    assert flags["fire6_squeeze1x1"] and flags["fire9_expand3x3"]
    # fire6..fire9: squeeze, expand1x1, expand3x3, each kernel + bias
    assert len(base.trainable_weights) == 4 * 3 * 2


def test_transfer_config_validation(tmp_path, squeezenet_weights):
    from wafertk.config import load_config
    from wafertk.training.config import CnnTrainConfig

    cfg = load_config(CnnTrainConfig, "classifier_transfer",
                      {"model.weights": str(squeezenet_weights)})
    assert cfg.model.is_transfer and cfg.model.backbone_name == "squeezenet"
    assert cfg.data.input_size == 64 and cfg.fine_tune.enabled
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  architecture: wafer_transfer_classifier\n"
                   "  backbone: resnet5\n  weights: /no/such/file.h5\n"
                   "fine_tune:\n  epochs: 0\n  from_layr: fire6\n")
    with pytest.raises(ConfigError) as err:
        load_config(CnnTrainConfig, bad)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(bad))
    for needle in ("model.backbone: unknown backbone 'resnet5'", "did you mean 'resnet50'",
                   "model.weights: /no/such/file.h5: no such weights file",
                   "fine_tune.epochs: 0 is not >= 1", "unknown key 'from_layr'"):
        assert needle in msg, msg
    with pytest.raises(ConfigError, match="--input-size: 32 is too small for the squeezenet"):
        load_config(CnnTrainConfig, "classifier_transfer", {"data.input_size": 32},
                    labels={"data.input_size": "--input-size"})
    with pytest.raises(ConfigError, match="model.backbone: applies to transfer architectures "
                                          "only.*fine_tune.enabled: fine-tuning needs"):
        load_config(CnnTrainConfig, "classifier", {"model.backbone": "vgg16",
                                                   "fine_tune.enabled": True})
