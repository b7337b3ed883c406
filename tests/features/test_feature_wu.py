"""Wu et al. features: density regions, Radon of a symmetric map, geometry of a rectangle,
and defined values on degenerate maps (no fail, 1x1, very large)."""

import numpy as np
import pytest

from wafertk.errors import WafertkError
from wafertk.features import density_features, geometry_features, radon_features, sinogram
from wafertk.features.wu import DENSITY_FEATURE_NAMES, GEOMETRY_FEATURE_NAMES, _region_index


def test_regions_partition_the_grid_and_densities_sum():
    h, w = 30, 40
    idx = _region_index(h, w, 0.8)
    assert set(np.unique(idx)) == set(range(13))
    rng = np.random.default_rng(0)
    m = rng.integers(0, 3, (h, w)).astype(np.uint8)
    d = density_features([m])[0]
    dies = np.bincount(idx.ravel(), weights=(m > 0).ravel(), minlength=13)
    # density-weighted die counts give back the total number of fail dies
    assert np.isclose((d * dies).sum(), (m == 2).sum(), atol=1e-3)


def test_density_regions_on_hand_made_maps():
    m = np.ones((30, 30), np.uint8)
    m[:3, 10:20] = 2  # top edge band only
    d = dict(zip(DENSITY_FEATURE_NAMES, density_features([m])[0], strict=True))
    assert d["density_edge_top"] > 0.2
    assert all(v == 0 for k, v in d.items() if k != "density_edge_top")
    c = np.ones((30, 30), np.uint8)
    c[13:17, 13:17] = 2  # centre
    d = dict(zip(DENSITY_FEATURE_NAMES, density_features([c])[0], strict=True))
    assert d["density_inner_11"] > 0 and sum(d.values()) == d["density_inner_11"]
    full = np.full((9, 9), 2, np.uint8)
    assert np.allclose(density_features([full]), 1.0)


def test_radon_of_a_symmetric_map():
    yy, xx = np.mgrid[:41, :41]
    m = np.ones((41, 41), np.uint8)
    m[(yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 2  # centred disc
    f = radon_features([m])[0]
    mean, std = f[:20], f[20:]
    np.testing.assert_allclose(mean, mean[::-1], atol=1e-3)  # symmetric profile
    assert mean[9:11].min() > mean[0] and mean.argmax() in (9, 10)
    assert std.max() < 0.2 * mean.max()  # a disc looks the same from every angle
    sino = sinogram(m == 2, 30)
    np.testing.assert_allclose(sino.sum(axis=0), (m == 2).sum())  # every die projected once


def test_geometry_of_a_known_rectangle():
    m = np.ones((40, 40), np.uint8)
    m[10:14, 5:25] = 2  # 4 x 20 rectangle
    dies = 1600
    diam = np.sqrt(4 * dies / np.pi)
    g = dict(zip(GEOMETRY_FEATURE_NAMES, geometry_features([m], median_size=1)[0], strict=True))
    assert g["geom_area"] == pytest.approx(80 / dies)
    # axes of a uniform a x b rectangle: 4 sqrt((a^2 - 1) / 12)
    assert g["geom_major_axis"] == pytest.approx(4 * np.sqrt(399 / 12) / diam, rel=1e-3)
    assert g["geom_minor_axis"] == pytest.approx(4 * np.sqrt(15 / 12) / diam, rel=1e-3)
    assert g["geom_solidity"] == pytest.approx(1.0)
    assert g["geom_eccentricity"] == pytest.approx(np.sqrt(1 - 15 / 399), rel=1e-3)
    assert g["geom_regions"] == pytest.approx(np.log(2))
    cy, cx = (12 / 40) * 2 - 1, (15 / 40) * 2 - 1
    assert g["geom_centroid_radius"] == pytest.approx(np.hypot(cx, cy) / np.sqrt(2), rel=1e-3)
    # the 3x3 median filter only trims the four corners
    g3 = geometry_features([m])[0]
    assert g3[0] == pytest.approx(76 / dies)


def test_geometry_keeps_thin_lines_removed_by_the_median_filter():
    m = np.ones((30, 30), np.uint8)
    m[15, 3:27] = 2  # one-die-wide scratch
    g = geometry_features([m])[0]
    assert g[0] > 0 and g[4] > 0.99


@pytest.mark.parametrize("m", [
    np.ones((20, 25), np.uint8),  # no fail die
    np.zeros((5, 5), np.uint8),  # no die at all
    np.full((1, 1), 2, np.uint8),
    np.ones((1, 1), np.uint8),
    np.full((1, 7), 2, np.uint8),
])
def test_degenerate_maps_give_finite_values(m):
    for fn, k in ((density_features, 13), (radon_features, 40), (geometry_features, 8)):
        x = fn([m])
        assert x.shape == (1, k) and np.isfinite(x).all()
    if not (m == 2).any():
        assert not radon_features([m]).any() and not geometry_features([m]).any()


def test_large_map_is_finite():
    m = np.ones((1000, 1000), np.uint8)
    m[::7, ::3] = 2
    m[400:600, 400:600] = 2
    for fn in (density_features, radon_features, geometry_features):
        assert np.isfinite(fn([m])).all()


def test_bad_parameters():
    with pytest.raises(WafertkError):
        geometry_features([np.ones((3, 3), np.uint8)], median_size=2)
    with pytest.raises(WafertkError):
        density_features([np.ones((3, 3), np.uint8)], edge_radius=2.0)
    with pytest.raises(WafertkError):
        radon_features([np.ones((3, 3), np.float32)])
