"""The anomaly detectors on tiny synthetic wafers: learning, saving, the centre callback."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from wafertk.anomaly import networks  # noqa: E402
from wafertk.anomaly.estimators import (  # noqa: E402
    DeepSVDDDetector,
    LatentCentreCallback,
    LatentClassifierHybrid,
    LatentHybridDetector,
    OneClassVAEDetector,
    TransformDetector,
    VAEDetector,
    apply_transform,
    load_detector,
    predict_outputs,
    transform_list,
)
from wafertk.data.synthetic import make_wafers  # noqa: E402
from wafertk.errors import WafertkError  # noqa: E402
from wafertk.registry import load_model  # noqa: E402

TINY = dict(conv_filters=(4, 8), input_size=16, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def wafers():
    normal = make_wafers(48, classes=["none"], shape_range=(20, 30), random_state=0)
    test = make_wafers(24, classes=["none", "Near-full"], shape_range=(20, 30), random_state=1)
    y = (test.label_strings() != "none").astype(int)
    return normal, test, y


@pytest.fixture(scope="module")
def vae(wafers):
    normal, test, y = wafers
    return VAEDetector(latent_dim=4, epochs=2, **TINY).fit(normal, X_val=test, y_val=y)


def test_vae_separates_an_obvious_anomaly_and_logs_every_term(vae, wafers):
    _, test, y = wafers
    s = vae.score_samples(test)
    assert roc_auc_score(y, s) > 0.9
    h = vae.history_
    for key in ("loss", "reconstruction", "kl", "grad_norm_reconstruction", "grad_norm_kl",
                "val_auc", "val_score"):
        assert len(h[key]) == 2, key
    assert h["grad_norm_reconstruction"][0] > 0 and h["grad_norm_kl"][0] > 0
    np.testing.assert_allclose(h["loss"], np.add(h["reconstruction"], h["kl"]), rtol=1e-4)
    np.testing.assert_allclose(vae.decision_function(test), s - vae.threshold_)
    np.testing.assert_array_equal(vae.predict(test), (s >= vae.threshold_).astype(int))
    assert vae.transform(test).shape == (len(test), 4)


def test_save_reload_gives_identical_scores(vae, wafers, tmp_path):
    _, test, _ = wafers
    vae.save(tmp_path / "m", extra={"note": "x"})
    again = load_model(tmp_path / "m", kind="anomaly-detector")  # through the registry
    np.testing.assert_array_equal(again.score_samples(test), vae.score_samples(test))
    assert again.threshold_ == vae.threshold_ and again.manifest.extra["note"] == "x"
    assert again.get_params()["latent_dim"] == 4
    with pytest.raises(WafertkError, match="inputs are images"):
        again.score_samples(np.zeros((2, 16, 16, 3), np.float32))


def test_custom_layers_reload(tmp_path):
    model = networks.build_vae((16, 16, 3), 4, conv_filters=(4, 8), attention=True,
                               centre=True, seed=0)
    model.get_layer("centre").centre.assign(np.arange(4, dtype=np.float32))
    model.get_layer("encoder").get_layer("attention").gamma.assign(0.5)
    x = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    for k, v in predict_outputs(model, x).items():
        np.testing.assert_allclose(predict_outputs(again, x)[k], v, rtol=1e-6, atol=1e-6)


def test_attention_starts_as_identity():
    layer = networks.SelfAttention2D(seed=0)
    x = np.random.default_rng(0).random((2, 4, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), x)
    assert len(layer.weights) == 4  # wq, wk, wv, gamma: no bias


def test_centre_callback_moves_the_centre_to_the_barycentre():
    model = networks.build_vae((16, 16, 3), 4, conv_filters=(4,), centre=True, seed=0)
    x = np.random.default_rng(1).random((10, 16, 16, 3)).astype(np.float32)
    cb = LatentCentreCallback(x, batch_size=4)
    cb.set_model(model)
    assert np.allclose(np.asarray(model.get_layer("centre").centre), 0)
    logs = {}
    cb.on_epoch_end(0, logs)
    z = predict_outputs(model, x)["z_mean"]
    np.testing.assert_allclose(np.asarray(model.get_layer("centre").centre), z.mean(0),
                               rtol=1e-5, atol=1e-6)
    assert logs["centre_shift"] == pytest.approx(np.linalg.norm(z.mean(0)), rel=1e-5)
    np.testing.assert_allclose(predict_outputs(model, x)["centre_distance"],
                               ((z - z.mean(0)) ** 2).sum(1), rtol=1e-4, atol=1e-5)


def test_ocvae_picks_a_weight_on_validation(wafers):
    normal, test, y = wafers
    est = OneClassVAEDetector(centre_weight=(0.1, 10.0), latent_dim=4, epochs=1, **TINY)
    est.fit(normal, X_val=test, y_val=y)
    assert [r["centre_weight"] for r in est.weight_search_] == [0.1, 10.0]
    best = max(est.weight_search_, key=lambda r: r["val_auc"])
    assert est.centre_weight_ == best["centre_weight"]
    assert est.centre_weight == (0.1, 10.0)  # parameters unchanged (clone works)
    assert "w10_grad_norm_centre" in est.history_
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(WafertkError, match="needs validation data"):
        clone(est).fit(normal)


def test_deep_svdd_is_bias_free_with_a_fixed_centre(wafers):
    normal, test, y = wafers
    est = DeepSVDDDetector(latent_dim=4, epochs=2, learning_rate=1e-3, **TINY).fit(normal)
    names = [v.path for v in est.model_.weights]
    assert not [n for n in names if n.endswith(("bias", "beta", "gamma"))], names
    c = est.centre_
    assert (np.abs(c) >= 0.1 - 1e-7).all()
    assert "centre" not in [v.name for v in est.model_.trainable_variables]
    d = est.score_samples(normal)
    np.testing.assert_allclose(d, ((est.transform(normal) - c) ** 2).sum(1), rtol=1e-4)
    assert est.radius_ == 0.0 and "grad_norm_distance" in est.history_


def test_deep_svdd_pretraining_has_its_own_learning_rate(wafers):
    normal, _, _ = wafers
    kw = dict(latent_dim=4, epochs=1, pretrain_epochs=2, learning_rate=1e-5, **TINY)
    same = DeepSVDDDetector(**kw).fit(normal)
    own = DeepSVDDDetector(pretrain_learning_rate=1e-2, **kw).fit(normal)
    a, b = same.history_["pretrain_reconstruction"], own.history_["pretrain_reconstruction"]
    assert b[-1] < a[-1]  # the same network, data and seed: only the rate differs
    assert own.get_params()["pretrain_learning_rate"] == 1e-2
    with pytest.raises(WafertkError, match="pretrain_learning_rate must be positive"):
        DeepSVDDDetector(pretrain_learning_rate=0.0, **kw).fit(normal)


def test_deep_svdd_leaky_slope_reaches_every_activation_and_reloads(wafers, tmp_path,
                                                                    monkeypatch):
    normal, test, _ = wafers
    built = []
    real = networks.build_conv_decoder
    monkeypatch.setattr(networks, "build_conv_decoder",
                        lambda *a, **kw: built.append(kw) or real(*a, **kw))
    est = DeepSVDDDetector(latent_dim=4, epochs=1, pretrain_epochs=1, negative_slope=0.01,
                           **TINY).fit(normal)
    assert [kw.get("negative_slope") for kw in built] == [0.01]  # the pre-training decoder
    enc = est.model_.get_layer("encoder")
    slopes = {lay.name: float(lay.negative_slope) for lay in enc.layers
              if isinstance(lay, keras.layers.LeakyReLU)}
    assert slopes == {"act1": pytest.approx(0.01), "act2": pytest.approx(0.01)}
    for slope in (0.1, 0.01):  # the pre-training decoder is built with the same slope
        kw = {} if slope == 0.1 else {"negative_slope": slope}  # 0.1: the default
        dec = networks.build_conv_decoder(4, (16, 16, 3), conv_filters=(4, 8), **kw)
        got = [float(lay.negative_slope) for lay in dec.layers
               if isinstance(lay, keras.layers.LeakyReLU)]
        assert got == pytest.approx([slope, slope])
    est.save(tmp_path / "svdd")
    back = load_detector(tmp_path / "svdd")
    assert back.get_params()["negative_slope"] == 0.01
    np.testing.assert_allclose(back.score_samples(test), est.score_samples(test), rtol=1e-5)
    with pytest.raises(WafertkError, match="negative_slope must be in"):
        DeepSVDDDetector(negative_slope=1.5, **TINY).fit(normal)


def test_trimming_leaves_out_the_highest_losses(wafers):
    est = VAEDetector(trim_fraction=0.25)
    mask = np.asarray(est._trim_mask(np.array([1.0, 5.0, 2.0, 10.0], np.float32)))
    np.testing.assert_array_equal(mask, [1, 1, 1, 0])
    assert float(est._mean(np.array([1.0, 5.0, 2.0, 10.0], np.float32), mask)) == \
        pytest.approx(8 / 3)
    normal, _, _ = wafers
    svdd = DeepSVDDDetector(latent_dim=4, epochs=1, trim_fraction=0.25, **TINY).fit(normal)
    assert np.isfinite(svdd.history_["distance"]).all()


def test_soft_boundary_radius_leaves_about_nu_outside(wafers):
    normal, _, _ = wafers
    est = DeepSVDDDetector(objective="soft-boundary", nu=0.25, warm_up_epochs=1, latent_dim=4,
                           epochs=1, **TINY).fit(normal)
    assert est.radius_ > 0
    outside = (est.score_samples(normal) > 0).mean()
    assert 0.1 <= outside <= 0.4  # the radius is the 1 - nu quantile of training distances


def test_transforms():
    assert len(transform_list(["rotate"], 4)) == 4
    assert len(transform_list(["rotate", "flip"], 4)) == 8
    assert len(transform_list(["rotate", "flip", "translate"], 8)) == 72
    assert transform_list(["translate"], 2)[0] == (0, 0, 0, 0)  # identity first
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(apply_transform(apply_transform(x, (0, 0, 0, 2)),
                                                  (0, 0, 0, 2)), x)
    shifted = apply_transform(x, (0, 2, -1, 0), fill=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(shifted[:, 2:, :-1], x[:, :-2, 1:])
    assert (shifted[:, :2, :, 0] == 1).all() and (shifted[:, :2, :, 1:] == 0).all()
    with pytest.raises(WafertkError, match="unknown transform 'shear'"):
        transform_list(["shear"], 2)


def test_transform_prediction_learns_and_reloads(wafers, tmp_path):
    normal, test, _ = wafers
    est = TransformDetector(transforms=("translate",), dense_units=8, epochs=2, **TINY)
    est.fit(normal)
    assert len(est.transforms_) == 9
    h = est.history_["cross_entropy"]
    assert h[-1] < np.log(9)  # better than chance at naming the shift of a normal wafer
    s = est.score_samples(test)
    est.save(tmp_path / "r")
    np.testing.assert_array_equal(load_detector(tmp_path / "r").score_samples(test), s)


def test_hybrid_on_latent_features(vae, wafers):
    normal, test, y = wafers
    for det in ("iforest", "ocsvm"):
        h = LatentHybridDetector(vae, detector=det, n_estimators=50, random_state=0).fit(normal)
        s = h.score_samples(test)
        assert s.shape == (len(test),) and roc_auc_score(y, s) > 0.7
        assert (h.predict(test) == (s >= h.threshold_)).all()


def test_supervised_hybrid_on_latent_features(vae, wafers):
    _, test, y = wafers
    names = np.where(y, "Edge-Ring", "none")
    order = np.random.default_rng(0).permutation(len(test))
    fit_rows, score_rows = np.sort(order[: len(test) // 2]), np.sort(order[len(test) // 2:])
    assert names[fit_rows].tolist().count("none") not in (0, len(fit_rows))
    for clf in ("xgboost", "random-forest", "dense"):
        h = LatentClassifierHybrid(vae, classifier=clf, n_estimators=30, random_state=0)
        h.fit(test.take(fit_rows), names[fit_rows])
        assert list(h.classes_) == ["Edge-Ring", "none"]
        s = h.score_samples(test.take(score_rows))
        assert roc_auc_score(y[score_rows], s) > 0.7, clf
        p = h.predict_proba(test.take(score_rows))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(s, 1 - p[:, 1], rtol=1e-6)
    with pytest.raises(WafertkError, match="one class"):
        LatentClassifierHybrid(vae).fit(test, np.full(len(test), "none"))
    with pytest.raises(WafertkError, match="normal class 'good'"):
        LatentClassifierHybrid(vae, normal_class="good").fit(test, names)
    with pytest.raises(WafertkError, match="unknown classifier"):
        LatentClassifierHybrid(vae, classifier="svm").fit(test, names)


def test_bad_training_data(wafers):
    normal, _, _ = wafers
    est = VAEDetector(latent_dim=4, epochs=1, **TINY)
    with pytest.raises(WafertkError, match="no normal samples"):
        clone(est).fit(normal, y=np.ones(len(normal)))
    with pytest.raises(WafertkError, match="1 training sample"):
        clone(est).fit(normal.take([0]))
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    x[1, 3, 3, 0] = np.nan
    with pytest.raises(WafertkError, match=r"NaN or infinite values \(sample 1\)"):
        clone(est).fit(x)
    with pytest.raises(WafertkError, match="not fitted"):
        clone(est).score_samples(normal)
    with pytest.raises(WafertkError, match="10x10 are not divisible by 4"):
        clone(est).fit(np.zeros((4, 10, 10, 3), np.float32))
