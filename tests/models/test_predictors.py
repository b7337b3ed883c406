"""CNN predictors: compiled forward pass, calibration, and the batch metadata they feed."""

import numpy as np
import pytest

from wafertk.data.preprocess import die_metadata, die_metadata_one
from wafertk.data.synthetic import make_wafers


def test_vectorised_metadata_equals_per_map():
    ws = make_wafers(120, shape_range=(3, 40), random_state=0)
    maps = list(ws) + [np.zeros((0, 4), np.uint8), np.zeros((3, 3), np.uint8),
                       np.full((1, 1), 2, np.uint8)]
    got = die_metadata(maps)
    want = np.stack([die_metadata_one(np.asarray(m)) for m in maps])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got_ws = die_metadata(ws)
    want_ws = np.stack([die_metadata_one(np.asarray(m), d) for m, d in zip(ws, ws.die_size,
                                                                          strict=True)])
    np.testing.assert_allclose(got_ws, want_ws, rtol=1e-5, atol=1e-6)


@pytest.mark.tf
def test_forward_pass_matches_model_and_calibration(tmp_path):
    from wafertk.data.preprocess import one_hot, resize_maps
    from wafertk.models.cnn import build_wafer_cnn_detector
    from wafertk.models.manifest import Manifest
    from wafertk.models.predictors import CnnPredictor, forward_pass

    m = build_wafer_cnn_detector((16, 16, 3), conv_filters=(4,), dense_units=4, seed=0)
    ws = make_wafers(37, random_state=1)
    maps = resize_maps(ws, 16)
    got = forward_pass(m, (maps,), batch_size=8)
    want = np.asarray(m(one_hot(maps), training=False))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    man = Manifest(kind="cnn-detector", model_file="model.keras", classes=["good", "defective"],
                   input_size=16, extra={"temperature": 2.0, "threshold": 0.5})
    pred = CnnPredictor(m, man)
    proba = pred.predict_proba(ws, batch_size=10)
    assert proba.shape == (37, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    z = np.log(want[:, 0] / (1 - want[:, 0]))
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z / 2.0)), rtol=1e-4)
    assert set(pred.predict(ws)) <= {"good", "defective"}


@pytest.mark.tf
@pytest.mark.parametrize("task", ["detector", "classifier"])
def test_frozen_forward_folds_batchnorm_and_matches_keras(task):
    """The folded BatchNorm graph gives the Keras model's outputs (trained BN statistics)."""
    import keras

    from wafertk.data.preprocess import one_hot, resize_maps
    from wafertk.models.cnn import build_wafer_cnn_classifier, build_wafer_cnn_detector
    from wafertk.models.predictors import _folded_tf_forward, forward_pass

    if task == "detector":
        m = build_wafer_cnn_detector((20, 20, 3), conv_filters=(4, 6), dense_units=5, seed=1)
    else:
        m = build_wafer_cnn_classifier((20, 20, 3), 8, conv_filters=(4, 6), dense_units=5,
                                       seed=1)
    rng = np.random.default_rng(0)
    for layer in m.layers:  # non-trivial BN statistics and scaling, as after training
        if isinstance(layer, keras.layers.BatchNormalization):
            k = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2, k))
            layer.beta.assign(rng.normal(0, 1, k))
            layer.moving_mean.assign(rng.normal(0, 1, k))
            layer.moving_variance.assign(rng.uniform(0.2, 3, k))
    ws = make_wafers(29, random_state=2)
    maps = resize_maps(ws, 20)
    inputs = (maps,) if task == "detector" else (maps, die_metadata(ws))
    feed = one_hot(maps) if task == "detector" else {"maps": one_hot(maps), "meta": inputs[1]}
    want = np.asarray(m(feed, training=False))
    assert _folded_tf_forward(m) is not None
    got = forward_pass(m, inputs, batch_size=8, frozen=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(forward_pass(m, inputs, batch_size=8), want, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.tf
def test_other_architectures_are_not_folded():
    import keras

    from wafertk.models.predictors import _folded_tf_forward

    x = keras.Input((8, 8, 3), name="maps")
    y = keras.layers.Dense(1, name="output")(keras.layers.Flatten(name="flat")(x))
    assert _folded_tf_forward(keras.Model(x, y)) is None


@pytest.mark.tf
@pytest.mark.parametrize("frozen", [False, True])
def test_forward_cache_does_not_keep_models_alive(frozen):
    """The per-model compiled-forward cache must not hold its (weak) key alive."""
    import gc
    import weakref

    from wafertk.data.preprocess import resize_maps
    from wafertk.models.cnn import build_wafer_cnn_classifier
    from wafertk.models.predictors import _FORWARD_CACHE, forward_pass

    ws = make_wafers(6, random_state=3)
    m = build_wafer_cnn_classifier((16, 16, 3), 8, conv_filters=(4,), dense_units=4, seed=0)
    forward_pass(m, (resize_maps(ws, 16), die_metadata(ws)), frozen=frozen)
    assert m in _FORWARD_CACHE[frozen]
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None
