"""LR range test: the ramp, the stop on divergence, the suggestion, the files, the wafer path."""

import json
import math

import numpy as np
import pytest

from wafertk.errors import WafertkError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tiny():
    """A linearly separable 2-class problem and a factory of small compiled models."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ rng.normal(size=8) > 0).astype("int64")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)

    def model():
        m = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Dense(2, activation="softmax",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=2))])
        m.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    return model, ds


def test_the_rate_rises_exponentially_per_batch():
    from wafertk.training.lr_find import LRRangeTest

    cb = LRRangeTest(1e-5, 1e-1, 5)
    assert [round(math.log10(cb.lr_at(i)), 6) for i in range(5)] == [-5, -4, -3, -2, -1]


def test_suggested_rate_lies_in_the_range_before_the_blow_up(tiny):
    from wafertk.training.lr_find import lr_range_test

    make, ds = tiny
    model = make()
    before = [w.copy() for w in model.get_weights()]
    res = lr_range_test(model, ds, start_lr=1e-5, end_lr=100.0, num_steps=120)
    assert res.diverged and len(res.lrs) < 120  # stopped on the blow-up, not at end_lr
    assert np.allclose(np.diff(np.log(res.lrs)), np.log(1e7) / 119)
    assert 1e-5 <= res.suggested_lr < res.min_loss_lr <= res.lrs[-1]
    i = res.suggested_index
    assert res.smoothed[i] < res.smoothed[0]  # the loss is falling there
    assert np.isfinite(res.accuracy).all()
    # weights and learning rate put back
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.01)


def test_the_callback_stops_when_the_loss_exceeds_k_times_the_best(tiny):
    from wafertk.training.lr_find import LRRangeTest

    make, ds = tiny
    model = make()
    cb = LRRangeTest(1.0, 1e6, 50, diverge=2.0)
    model.fit(ds.repeat(), epochs=1, steps_per_epoch=50, callbacks=[cb], shuffle=False,
              verbose=0)
    assert cb.diverged and 5 <= len(cb.lrs) < 50
    best_before = min(cb.smoothed[:-1])
    assert not math.isfinite(cb.smoothed[-1]) or cb.smoothed[-1] > 2.0 * best_before


def test_without_blow_up_the_test_runs_to_end_lr(tiny):
    from wafertk.training.lr_find import lr_range_test

    make, ds = tiny
    res = lr_range_test(make(), ds, start_lr=1e-5, end_lr=1e-2, num_steps=20)
    assert not res.diverged and len(res.lrs) == 20
    assert res.lrs[-1] == pytest.approx(1e-2)


def test_a_flat_loss_is_reported_as_no_descent(tiny):
    from wafertk.training.lr_find import lr_range_test

    make, ds = tiny
    res = lr_range_test(make(), ds, start_lr=1e-9, end_lr=1e-8, num_steps=15)
    assert not res.descent and res.to_dict()["descent"] is False
    res = lr_range_test(make(), ds, start_lr=1e-4, end_lr=100.0, num_steps=60)
    assert res.descent


def test_suggest_lr_picks_the_steepest_descent_before_the_minimum():
    from wafertk.training.lr_find import suggest_lr

    lrs = np.logspace(-5, 1, 61)
    x = np.log10(lrs)
    loss = 1 / (1 + np.exp(3 * (x + 2)))  # steepest at lr = 1e-2 ...
    loss = np.where(x > 0, loss + 10 * x ** 2, loss)  # ... then a blow-up after 1
    lr, i = suggest_lr(lrs, loss)
    assert lr == pytest.approx(1e-2, rel=0.3)
    assert i < int(np.argmin(loss))


def test_suggest_lr_ignores_points_after_a_non_finite_loss():
    from wafertk.training.lr_find import suggest_lr

    lr, _ = suggest_lr([1e-3, 1e-2, 1e-1, 1, 10, 100],
                       [1.0, 0.9, 0.5, 0.45, math.inf, 0.01])
    assert lr < 10
    with pytest.raises(WafertkError, match="usable point"):
        suggest_lr([1e-3, 1e-2, 1e-1], [1.0, math.nan, 0.5])


@pytest.mark.parametrize("kwargs, needle", [
    ({"start_lr": 0.0}, "start_lr"), ({"end_lr": 1e-6}, "end_lr"),
    ({"num_steps": 1}, "num_steps"), ({"diverge": 1.0}, "diverge"),
])
def test_bad_settings(tiny, kwargs, needle):
    from wafertk.training.lr_find import lr_range_test

    make, ds = tiny
    with pytest.raises(WafertkError, match=needle):
        lr_range_test(make(), ds, **{"start_lr": 1e-5, "end_lr": 1.0, **kwargs})


def test_save_writes_csv_json_and_plot(tiny, tmp_path):
    from wafertk.training.lr_find import lr_range_test

    make, ds = tiny
    res = lr_range_test(make(), ds, start_lr=1e-4, end_lr=10.0, num_steps=30,
                        settings={"model": "tiny"})
    res.save(tmp_path)
    summary = json.loads((tmp_path / "lr_find.json").read_text())
    assert summary["suggested_lr"] == res.suggested_lr and summary["model"] == "tiny"
    rows = (tmp_path / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed_loss,accuracy" and len(rows) == len(res.lrs) + 1
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp"))


def test_wafer_entry_point():
    from wafertk.config import from_dict
    from wafertk.data.synthetic import make_wafers
    from wafertk.training.config import CnnTrainConfig
    from wafertk.training.lr_find import wafer_lr_find

    ws = make_wafers(120, shape_range=(12, 20), n_lots=12, random_state=0)
    cfg = from_dict(CnnTrainConfig, {"model": {"conv_filters": [4], "dense_units": 8},
                                     "train": {"batch_size": 16},
                                     "data": {"input_size": 16}})
    res = wafer_lr_find(ws, cfg, "classifier", start_lr=1e-4, end_lr=10.0, num_steps=25)
    assert 5 <= len(res.lrs) <= 25
    assert res.lrs[0] <= res.suggested_lr <= res.lrs[-1]
    assert res.settings["task"] == "classifier" and res.settings["input_size"] == 16
