"""Wu et al. features: density regions, Radon of a symmetric map, geometry of a rectangle,
defined values on degenerate maps (no fail, 1x1, very large), and the batched geometry (maps
of one shape together) against scikit-image region by region: convex hull, perimeter, ties,
median filter sizes, chunks."""

import numpy as np
import pytest
from wafer_masks import ellipse

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


def _geometry_maps(seed: int = 0) -> list[np.ndarray]:
    """Real-looking maps of several shapes: random fails, blobs, one-die scratches (which
    the median filter removes), two regions of equal size, a fully failing map."""
    rng = np.random.default_rng(seed)
    maps = []
    for h, w in [(31, 31), (26, 40), (40, 26), (31, 31), (12, 9)]:
        yy, xx = np.mgrid[:h, :w]
        disc = ellipse(h, w) > 0
        for k in range(6):
            m = disc.astype(np.uint8)
            m[disc & (rng.random((h, w)) < rng.choice([0.03, 0.15, 0.5]))] = 2
            if k == 1:  # a blob with a ragged outline
                blob = (np.hypot(yy - h / 3, xx - w / 2) < h / 5) & (rng.random((h, w)) < 0.9)
                m[disc & blob] = 2
            if k == 2:  # a one-die diagonal scratch on a clean wafer
                m = disc.astype(np.uint8)
                for i in range(2, min(h, w) - 2):
                    m[i, i] = 2 if disc[i, i] else 0
            if k == 3:  # two 3x3 blocks: a tie, the first in raster order wins
                m = disc.astype(np.uint8)
                m[h // 2 + 1:h // 2 + 4, w // 2 - 4:w // 2 - 1] = 2
                m[h // 2 - 4:h // 2 - 1, w // 2 + 1:w // 2 + 4] = 2
            maps.append(m)
    maps.append(np.full((15, 15), 2, np.uint8))
    return [maps[i] for i in rng.permutation(len(maps))]


@pytest.mark.parametrize("median_size", [1, 3, 5, 7, 9])
def test_batched_geometry_equals_the_map_by_map_code_exactly(median_size):
    from wafertk.features.reference import geometry_features_loop, geometry_features_ref

    maps = _geometry_maps()
    got = geometry_features(maps, median_size=median_size)
    np.testing.assert_array_equal(got, geometry_features_loop(maps, median_size=median_size))
    # and scikit-image's regionprops (its moments are computed differently: rounding)
    want = geometry_features_ref(maps, median_size=median_size)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert (got[:, GEOMETRY_FEATURE_NAMES.index("geom_area")] > 0).sum() > 20


def test_geometry_edge_cases_equal_the_map_by_map_code():
    from wafertk.features.reference import geometry_features_loop

    big = np.ones((1088, 1088), np.uint8)  # a large diamond: long perimeter sums
    yy, xx = np.mgrid[:1088, :1088]
    big[np.abs(yy - 500) + np.abs(xx - 600) <= 33] = 2
    small = np.full((6, 6), 2, np.uint8)
    small[2, 3] = 1
    for m, size in ((big, 1), (big, 3), (small, 257), (small, 5)):
        np.testing.assert_array_equal(geometry_features([m], median_size=size),
                                      geometry_features_loop([m], median_size=size))


def test_convex_hull_pixels_equal_skimage():
    from skimage.morphology import convex_hull_image

    from wafertk.features.wu import _DIAMOND, _convex_hull_pixels

    rng = np.random.default_rng(4)
    regions = [np.ones((1, 1), bool), np.eye(7, dtype=bool), np.ones((1, 9), bool),
               np.eye(6, dtype=bool)[::-1] | np.eye(6, dtype=bool)]
    regions += [rng.random((rng.integers(2, 30), rng.integers(2, 30))) < p
                for p in (0.05, 0.2, 0.6) for _ in range(20)]
    for region in regions:
        if not region.any():
            continue
        y, x = np.nonzero(region)
        pts = (np.stack([2 * x, 2 * y], 1)[:, None, :] + _DIAMOND).reshape(-1, 2)
        got = _convex_hull_pixels(pts.astype(np.int32), y.min(), y.max(), x.min(), x.max())
        assert got == convex_hull_image(region).sum(), region.shape


@pytest.mark.parametrize("median_size", [1, 3])
def test_geometry_tie_takes_the_first_region_in_raster_order(median_size):
    m = np.ones((20, 20), np.uint8)
    m[12:15, 2:5] = 2  # lower left, second in raster order
    m[3:6, 14:17] = 2  # upper right, first in raster order
    g = dict(zip(GEOMETRY_FEATURE_NAMES, geometry_features([m], median_size=median_size)[0],
                 strict=True))
    cy, cx = (4 + 0.5) / 20 * 2 - 1, (15 + 0.5) / 20 * 2 - 1
    assert g["geom_centroid_radius"] == pytest.approx(np.hypot(cx, cy) / np.sqrt(2))


def test_geometry_does_not_depend_on_chunks_or_other_maps(monkeypatch):
    from wafertk.features import wu

    maps = _geometry_maps(1)
    whole = geometry_features(maps)
    monkeypatch.setattr(wu, "GEOMETRY_CHUNK_CELLS", 2 * 31 * 31)
    np.testing.assert_array_equal(geometry_features(maps), whole)
    order = np.random.default_rng(2).permutation(len(maps))
    np.testing.assert_array_equal(geometry_features([maps[i] for i in order]), whole[order])
