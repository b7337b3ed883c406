"""Spatial fail statistics: hand-made maps with known values (a line, a blob, isolated fails,
an edge ring against an edge arc), rotation invariance, the strip counts against the Radon
sinogram, the die-mask cache, and defined values on degenerate maps."""

import numpy as np
import pytest

from wafertk.features import spatial_features
from wafertk.features.spatial import (
    LINE_ANGLES,
    SPATIAL_FEATURE_NAMES,
    _strip_counts,
    spatial_one,
)
from wafertk.features.wu import sinogram


def _disc(n: int = 41) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    m = np.zeros((n, n), np.uint8)
    m[(yy - c) ** 2 + (xx - c) ** 2 <= c * c] = 1
    return m


def _f(m: np.ndarray) -> dict[str, float]:
    return dict(zip(SPATIAL_FEATURE_NAMES, spatial_features([m])[0], strict=True))


def test_a_straight_scratch_is_a_line_at_one_angle():
    m = _disc()
    for i in range(8, 33):
        m[i, i] = 2  # a one-die-wide diagonal scratch of 25 dies
    f = _f(m)
    assert f["line_share"] == pytest.approx(1.0)  # the whole scratch in one 2-die strip
    assert f["line_contrast"] > 0.85  # the perpendicular strips hold one die each
    assert f["line_excess"] > 0.5  # 25 dies over a ~41-die diameter
    assert f["region1_share"] == pytest.approx(1.0)  # diagonal neighbours connect (8-conn.)
    assert f["isolated_fail_share"] == 0.0 and f["dense_fail_share"] == 0.0


def test_a_compact_blob_is_dense_and_not_a_line():
    m = _disc()
    m[14:27, 14:27] = 2  # 13 x 13 block at the centre
    f = _f(m)
    assert f["region1_share"] == pytest.approx(1.0) and f["region2_share"] == 0.0
    inner = (11 * 11) / (13 * 13)  # dies with all 8 neighbours failing
    assert f["dense_fail_share"] >= inner
    assert f["line_contrast"] < 0.2  # as thick one way as the other
    assert f["sector_max_ring0"] == pytest.approx(1.0)
    assert f["sector_min_ring0"] == pytest.approx(1.0)
    assert f["sector_max_ring4"] == 0.0


def test_isolated_fails_on_a_chessboard_of_gaps():
    m = _disc()
    m[2:-2:3, 2:-2:3][m[2:-2:3, 2:-2:3] == 1] = 2  # every third die, no two adjacent
    f = _f(m)
    assert f["isolated_fail_share"] == pytest.approx(1.0)
    assert f["neighbour_fail_ratio"] == 0.0 and f["neighbour_lift"] == 0.0
    assert f["regions_3plus"] == 0.0
    assert f["region1_share"] == pytest.approx(1 / (m == 2).sum())


def test_edge_ring_fills_every_sector_and_an_arc_a_few():
    m = _disc()
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring = m.copy()
    ring[(m > 0) & (r >= 17)] = 2
    arc = m.copy()
    arc[(m > 0) & (r >= 17) & (xx > 28)] = 2  # the right-hand part of the edge only
    fr, fa = _f(ring), _f(arc)
    assert fr["sector_min_ring4"] > 0.5 and fr["sector_max_ring4"] > 0.5
    assert fa["sector_min_ring4"] == 0.0 and fa["sector_max_ring4"] > 0.5
    assert fr["sector_max_ring0"] == 0.0


def test_rotation_by_90_degrees_keeps_the_rotation_invariant_columns():
    rng = np.random.default_rng(3)
    m = _disc()
    m[(m > 0) & (rng.random(m.shape) < 0.1)] = 2
    m[5:12, 22:30] = np.where(m[5:12, 22:30] > 0, 2, 0)
    a, b = spatial_one(m), spatial_one(np.rot90(m).copy())
    exact = [n for n in SPATIAL_FEATURE_NAMES if not n.startswith(("line_", "sector_"))]
    for n in exact:  # neighbours and regions do not depend on the orientation
        i = SPATIAL_FEATURE_NAMES.index(n)
        assert a[i] == pytest.approx(b[i], rel=1e-6), n
    for ring in range(5):  # 8 sectors of 45 degrees: a quarter turn permutes them
        for kind in ("max", "min"):
            i = SPATIAL_FEATURE_NAMES.index(f"sector_{kind}_ring{ring}")
            assert a[i] == pytest.approx(b[i], rel=1e-6)


def test_strip_counts_are_pairs_of_sinogram_bins():
    rng = np.random.default_rng(0)
    fail = rng.random((23, 31)) < 0.2
    ys, xs = np.nonzero(fail)
    strips = _strip_counts(ys, xs, *fail.shape)
    sino = sinogram(fail, LINE_ANGLES)  # bins of one die, same angles
    padded = np.vstack([np.zeros((1, LINE_ANGLES)), sino, np.zeros((1, LINE_ANGLES))])
    np.testing.assert_allclose(strips, padded[:-1] + padded[1:])


def test_cached_die_strips_give_the_same_values_as_fresh_ones():
    from wafertk.features import spatial as sp

    rng = np.random.default_rng(1)
    maps = []
    for _ in range(5):  # one product: the same die mask, different fails
        m = _disc(31)
        m[(m > 0) & (rng.random(m.shape) < 0.3)] = 2
        maps.append(m)
    sp._die_strips.cache_clear()
    first = spatial_features(maps)
    assert sp._die_strips.cache_info().hits == 4
    sp._die_strips.cache_clear()
    again = np.stack([spatial_one(m) for m in maps[::-1]])[::-1]
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("m", [
    np.zeros((0, 0), np.uint8), np.zeros((5, 5), np.uint8), np.ones((7, 9), np.uint8),
    np.full((1, 1), 2, np.uint8), np.full((1, 6), 2, np.uint8), np.full((6, 6), 2, np.uint8),
])
def test_degenerate_maps_give_finite_values(m):
    f = spatial_features([m])
    assert f.shape == (1, len(SPATIAL_FEATURE_NAMES)) and np.isfinite(f).all()
    if not (m == 2).any():
        assert not f.any()


def test_large_map_is_finite():
    m = np.ones((300, 205), np.uint8)
    m[::7, ::5] = 2
    assert np.isfinite(spatial_features([m])).all()
