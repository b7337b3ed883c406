import numpy as np
import pytest

from wafertk.data.preprocess import (
    META_FEATURE_NAMES,
    die_metadata,
    one_hot,
    prepare_inputs,
    resize_map,
    resize_maps,
)
from wafertk.data.synthetic import make_wafer, make_wafers
from wafertk.errors import WafertkError


@pytest.mark.parametrize("shape", [(300, 205), (64, 64), (65, 63), (127, 9), (6, 3), (1, 1)])
def test_single_fail_die_survives_resize(shape):
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = np.ones(shape, np.uint8)
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        m[r, c] = 2
        out = resize_map(m, 32)
        assert out.shape == (32, 32)
        assert (out == 2).sum() >= 1


def test_one_die_scratch_survives_and_no_fail_is_invented():
    m = np.ones((250, 250), np.uint8)
    idx = np.arange(20, 230)
    m[idx, idx] = 2  # a 1-die-wide diagonal scratch
    out = resize_map(m, 64)
    fails = {tuple(x) for x in np.argwhere(out == 2).tolist()}
    # rows/cols 20..229 of 250 fall in cells 5..58 of 64: every one of them, and only those
    assert fails == {(k, k) for k in range(20 * 64 // 250, 229 * 64 // 250 + 1)}
    assert (resize_map(np.ones((250, 250), np.uint8), 64) == 2).sum() == 0


def test_resize_keeps_states_and_upsamples_nearest():
    m = np.array([[0, 1], [2, 1]], np.uint8)
    out = resize_map(m, 4)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(m, 2, 0), 2, 1))
    big = make_wafer("Center", (200, 180), rng=1)
    small = resize_map(big, 64)
    assert set(np.unique(small)) <= {0, 1, 2}
    # the no-die corners stay no-die
    assert small[0, 0] == 0 and small[-1, -1] == 0


def test_resize_maps_and_one_hot_shapes():
    ws = make_wafers(9, random_state=0)
    x = resize_maps(ws, 48)
    assert x.shape == (9, 48, 48) and x.dtype == np.uint8
    oh = one_hot(x)
    assert oh.shape == (9, 48, 48, 3)
    np.testing.assert_array_equal(oh.sum(-1), 1)
    np.testing.assert_array_equal(oh.argmax(-1), x)
    with pytest.raises(WafertkError):
        resize_maps(ws, 1)


def test_die_metadata_values():
    m = np.zeros((10, 10), np.uint8)
    m[1:9, 1:9] = 1
    m[4:6, 4:6] = 2  # centre fails
    v = dict(zip(META_FEATURE_NAMES, die_metadata([m])[0], strict=True))
    assert v["die_count"] == 64 and v["fail_count"] == 4
    assert v["fail_ratio"] == pytest.approx(4 / 64)
    assert v["grid_rows"] == 10 and v["aspect"] == 1
    assert v["ring0_fail_ratio"] == 1.0 and v["edge_fail_ratio"] == 0
    assert v["fail_radius_mean"] < 0.2 and v["fail_centroid_radius"] < 0.05
    ring = make_wafer("Edge-Ring", (60, 60), rng=0, noise=0)
    loc = make_wafer("Edge-Loc", (60, 60), rng=0, noise=0)
    meta = die_metadata([ring, loc])
    conc = META_FEATURE_NAMES.index("fail_angular_concentration")
    assert meta[0, conc] < 0.2 < meta[1, conc]
    assert meta[0, META_FEATURE_NAMES.index("edge_fail_ratio")] > 0.5


def test_die_metadata_degenerate_maps_are_finite():
    maps = [np.zeros((1, 1), np.uint8), np.full((1, 1), 2, np.uint8), np.ones((3, 7), np.uint8),
            np.zeros((5, 5), np.uint8)]
    meta = die_metadata(maps)
    assert meta.shape == (4, len(META_FEATURE_NAMES))
    assert np.isfinite(meta).all()


def test_prepare_inputs_uses_die_size():
    ws = make_wafers(5, random_state=2)
    ws.die_size[:] = 1234
    x, meta = prepare_inputs(ws, 32)
    assert x.shape == (5, 32, 32, 3) and (meta[:, 0] == 1234).all()
