"""Wafer CNN builders: shapes, heads, metadata branch, save/load round trip."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")


def test_detector_has_one_sigmoid_output():
    from wafertk.models.cnn import build_wafer_cnn_detector

    m = build_wafer_cnn_detector((16, 16, 3), conv_filters=(4, 8), dense_units=8, seed=0)
    assert m.output_shape == (None, 1)
    assert m.get_layer("output").get_config()["activation"] == "sigmoid"
    assert m.loss == "binary_crossentropy"
    y = m(np.zeros((2, 16, 16, 3), np.float32), training=False)
    assert y.shape == (2, 1)


def test_classifier_concatenates_meta_before_dense_head():
    from wafertk.data.preprocess import META_FEATURE_NAMES
    from wafertk.models.cnn import build_wafer_cnn_classifier

    m = build_wafer_cnn_classifier((16, 16, 3), conv_filters=(4, 8), dense_units=8, seed=0)
    assert [tuple(i.shape) for i in m.inputs] == [(None, 16, 16, 3),
                                                 (None, len(META_FEATURE_NAMES))]
    assert m.output_shape == (None, 8)
    assert m.get_layer("output").get_config()["activation"] == "softmax"
    concat = m.get_layer("concat_meta")
    sources = {t._keras_history.operation.name for t in concat.input}
    assert sources == {"gap", "meta_scaling"}
    # the dense head consumes the concatenation (through dropout)
    names = [layer.name for layer in m.layers]
    assert names.index("concat_meta") < names.index("dense") < names.index("output")
    assert m.get_layer("concat_meta").output.shape[-1] == 8 + len(META_FEATURE_NAMES)


def test_build_options():
    from wafertk.models.cnn import build_wafer_cnn

    m = build_wafer_cnn((16, 16, 3), 3, conv_filters=(4,), batch_norm=False, dropout=0.0,
                        l1=1e-3, l2=0.0, activation="elu", dense_units=0)
    assert not any("bn" in layer.name for layer in m.layers)
    assert m.get_layer("conv1").kernel_regularizer is not None
    assert m.output_shape == (None, 3)


def test_save_load_round_trip_identical(tmp_path):
    from wafertk.models.cnn import build_wafer_cnn_classifier

    rng = np.random.default_rng(0)
    m = build_wafer_cnn_classifier((16, 16, 3), conv_filters=(4, 8), dense_units=8, seed=1)
    meta = rng.gamma(2.0, 50.0, (20, m.inputs[1].shape[1])).astype(np.float32)
    m.get_layer("meta_scaling").adapt(meta)
    x = rng.random((20, 16, 16, 3)).astype(np.float32)
    before = np.asarray(m({"maps": x, "meta": meta}, training=False))
    m.save(tmp_path / "m.keras")
    m2 = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    after = np.asarray(m2({"maps": x, "meta": meta}, training=False))
    np.testing.assert_allclose(before, after, rtol=1e-6, atol=1e-7)


def test_meta_scaling_standardises():
    from wafertk.models.cnn import MetaScaling

    rng = np.random.default_rng(0)
    x = np.c_[rng.gamma(2, 100, 500), rng.normal(3, 2, 500)].astype(np.float32)
    layer = MetaScaling(2, log_columns=[0])
    layer.adapt(x)
    y = np.asarray(layer(x))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-3)
