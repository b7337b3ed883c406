"""Spatial fail statistics: hand-made maps with known values (a line, a blob, isolated fails,
two regions, an edge ring against an edge arc, a fully failing map, cells with too few dies),
exact invariance under quarter turns on odd, even and non-square grids, the strip counts
against the Radon sinogram, the die-mask cache, defined values on degenerate maps, and the
batched computation (maps of one shape together) equal to :func:`spatial_one` map by map,
whatever the chunks."""

import numpy as np
import pytest
from wafer_masks import disc, ellipse

from wafertk.features import spatial_features
from wafertk.features.spatial import (
    LINE_ANGLES,
    SPATIAL_FEATURE_NAMES,
    _strip_counts,
    spatial_one,
)
from wafertk.features.wu import sinogram


def _f(m: np.ndarray) -> dict[str, float]:
    return dict(zip(SPATIAL_FEATURE_NAMES, spatial_features([m])[0], strict=True))


def test_a_straight_scratch_is_a_line_at_one_angle():
    m = disc()
    for i in range(8, 33):
        m[i, i] = 2  # a one-die-wide diagonal scratch of 25 dies
    f = _f(m)
    assert f["line_share"] == pytest.approx(1.0)  # the whole scratch in one 2-die strip
    assert f["line_contrast"] > 0.85  # the perpendicular strips hold one die each
    assert f["line_excess"] > 0.5  # 25 dies over a ~41-die diameter
    assert f["region1_share"] == pytest.approx(1.0)  # diagonal neighbours connect (8-conn.)
    assert f["isolated_fail_share"] == 0.0 and f["dense_fail_share"] == 0.0


def test_a_compact_blob_is_dense_and_not_a_line():
    m = disc()
    m[14:27, 14:27] = 2  # 13 x 13 block at the centre
    f = _f(m)
    assert f["region1_share"] == pytest.approx(1.0) and f["region2_share"] == 0.0
    # 121 inner dies have 8 failing neighbours, 44 edge dies 5, the 4 corners 3
    assert f["dense_fail_share"] == pytest.approx(165 / 169)
    assert f["neighbour_fail_ratio"] == pytest.approx((121 + 44 * 5 / 8 + 4 * 3 / 8) / 169)
    p = 169 / (m > 0).sum()
    assert f["neighbour_lift"] == pytest.approx(np.log1p(f["neighbour_fail_ratio"] / p))
    assert f["isolated_fail_share"] == 0.0
    assert f["line_contrast"] < 0.2  # as thick one way as the other
    assert f["sector_max_ring0"] == pytest.approx(1.0)
    assert f["sector_min_ring0"] == pytest.approx(1.0)
    assert f["sector_max_ring4"] == 0.0


def test_isolated_fails_on_a_chessboard_of_gaps():
    m = disc()
    m[2:-2:3, 2:-2:3][m[2:-2:3, 2:-2:3] == 1] = 2  # every third die, no two adjacent
    f = _f(m)
    assert f["isolated_fail_share"] == pytest.approx(1.0)
    assert f["neighbour_fail_ratio"] == 0.0 and f["neighbour_lift"] == 0.0
    assert f["regions_3plus"] == 0.0
    assert f["region1_share"] == pytest.approx(1 / (m == 2).sum())


def test_edge_ring_fills_every_sector_and_an_arc_a_few():
    m = disc()
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


@pytest.mark.parametrize("shape", [(41, 41), (40, 40), (31, 44), (44, 31)])
@pytest.mark.parametrize("seed", [0, 3])
def test_a_quarter_turn_keeps_sector_neighbour_and_region_columns(shape, seed):
    rng = np.random.default_rng(seed)
    m = ellipse(*shape)
    m[(m > 0) & (rng.random(m.shape) < 0.1)] = 2
    h, w = shape
    blob = m[h // 8:h // 3, w // 2:w // 2 + w // 5]  # a local pattern off the centre
    blob[blob > 0] = 2
    m[h // 2, w // 2] = 2  # the centre die fails too (it belongs to no sector)
    a = spatial_one(m)
    for k in (1, 2, 3):
        b = spatial_one(np.rot90(m, k).copy())
        for i, n in enumerate(SPATIAL_FEATURE_NAMES):
            if not n.startswith("line_"):  # the projections' rounding is not exact
                assert a[i] == pytest.approx(b[i], rel=1e-6, abs=1e-7), (n, k)
    assert a[SPATIAL_FEATURE_NAMES.index("sector_max_ring1")] > 0


def test_two_regions_and_an_isolated_die():
    m = disc()
    m[10:13, 10:13] = 2  # 9 dies
    m[25:27, 25:27] = 2  # 4 dies
    m[20, 5] = 2  # 1 isolated die
    f = _f(m)
    assert f["region1_share"] == pytest.approx(9 / 14)
    assert f["region2_share"] == pytest.approx(4 / 14)
    assert f["regions_3plus"] == pytest.approx(np.log1p(2))
    assert f["isolated_fail_share"] == pytest.approx(1 / 14)


def test_a_map_whose_dies_all_fail_has_no_line():
    m = disc()
    m[m > 0] = 2
    f = _f(m)
    assert f["line_excess"] == 0.0 and f["line_share"] == 0.0 and f["line_contrast"] == 0.0
    assert f["sector_min_ring4"] == pytest.approx(1.0) and f["dense_fail_share"] > 0.9


def test_sectors_with_too_few_dies_are_left_out():
    m = np.ones((4, 4), np.uint8)  # every ring-sector cell holds fewer than 3 dies
    m[0, 0] = 2
    f = _f(m)
    assert all(f[f"sector_{k}_ring{i}"] == 0.0 for k in ("max", "min") for i in range(5))
    assert f["neighbour_fail_ratio"] == 0.0 and f["isolated_fail_share"] == 1.0


def test_strip_counts_are_pairs_of_sinogram_bins():
    rng = np.random.default_rng(0)
    fail = rng.random((23, 31)) < 0.2
    strips = _strip_counts(fail)
    sino = sinogram(fail, LINE_ANGLES)  # bins of one die, same angles
    padded = np.vstack([np.zeros((1, LINE_ANGLES)), sino, np.zeros((1, LINE_ANGLES))])
    np.testing.assert_allclose(strips, padded[:-1] + padded[1:])
    np.testing.assert_allclose(strips.sum(axis=0), 2 * fail.sum())  # each die in two strips


def test_a_row_of_dies_fills_one_strip_across_it_and_many_along_it():
    row = np.zeros((21, 21), bool)
    row[10, 3:18] = True  # 15 dies along x
    strips = _strip_counts(row)
    across = LINE_ANGLES // 2  # 90 degrees: projection on y, the row is one bin
    assert strips[:, across].max() == 15
    assert strips[:, 0].max() == 2  # 0 degrees: projection on x, one die per bin


def test_cached_die_strips_equal_fresh_counts_and_keep_shapes_apart():
    from wafertk.features import spatial as sp

    rng = np.random.default_rng(1)
    sp._die_strips.cache_clear()
    for _ in range(3):  # one product: the same die mask, different fails
        m = disc(31)
        m[(m > 0) & (rng.random(m.shape) < 0.3)] = 2
        spatial_one(m)
    assert sp._die_strips.cache_info().hits == 2
    die = disc(31) > 0
    cached = sp._die_strips(31, 31, np.packbits(die).tobytes())
    np.testing.assert_array_equal(cached, _strip_counts(die))
    # the same packed bytes for two shapes: each gets its own counts
    bits = np.zeros(16, bool)
    bits[[0, 5, 10, 15]] = True
    packed = np.packbits(bits).tobytes()
    for h, w in ((4, 4), (2, 8)):
        got = sp._die_strips(h, w, packed)
        np.testing.assert_array_equal(got, _strip_counts(bits.reshape(h, w)))


@pytest.mark.parametrize("m", [
    np.zeros((0, 0), np.uint8), np.zeros((5, 5), np.uint8), np.ones((7, 9), np.uint8),
    np.full((1, 1), 2, np.uint8), np.full((1, 6), 2, np.uint8), np.full((6, 6), 2, np.uint8),
])
def test_degenerate_maps_give_finite_values(m):
    f = spatial_features([m])
    assert f.shape == (1, len(SPATIAL_FEATURE_NAMES)) and np.isfinite(f).all()
    if not (m == 2).any():
        assert not f.any()


@pytest.mark.parametrize("shape", [(300, 205), (1000, 1000)])
def test_large_map_is_finite(shape):
    m = np.ones(shape, np.uint8)
    m[::7, ::5] = 2
    m[100:180, 50:120] = 2
    f = spatial_features([m])
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f[0], spatial_one(m))


def _mixed_maps(seed: int = 0) -> list[np.ndarray]:
    """Maps of several shapes and die masks: random fails, blobs, scratches, rings, a map
    without fails, a fully failing one, tiny and non-square grids."""
    rng = np.random.default_rng(seed)
    maps = []
    for shape in [(41, 41), (40, 40), (31, 44), (44, 31), (41, 41), (9, 13)]:
        for k in range(5):
            m = ellipse(*shape)
            if k == 1:  # another die mask of the same shape (a missing die at the edge)
                m[shape[0] // 2, 0] = 0
            m[(m > 0) & (rng.random(m.shape) < rng.choice([0.02, 0.1, 0.4]))] = 2
            h, w = shape
            if k == 2:
                blob = m[h // 4:h // 2, w // 3:w // 2]
                blob[blob > 0] = 2
            if k == 3:
                for i in range(h // 5, 4 * h // 5):
                    if m[i, i * w // h] > 0:
                        m[i, i * w // h] = 2
            maps.append(m)
    maps += [ellipse(21, 21), np.where(ellipse(21, 21) > 0, 2, 0).astype(np.uint8),
             np.full((1, 1), 2, np.uint8), np.ones((1, 6), np.uint8)]
    return [maps[i] for i in rng.permutation(len(maps))]


def test_batched_values_equal_spatial_one_exactly():
    maps = _mixed_maps()
    got = spatial_features(maps)
    want = np.stack([spatial_one(m) for m in maps])
    np.testing.assert_array_equal(got, want)  # same operations, same rounding
    assert (got[:, SPATIAL_FEATURE_NAMES.index("line_excess")] > 0).sum() > 20


def test_values_do_not_depend_on_the_chunks_or_the_other_maps(monkeypatch):
    from wafertk.features import spatial as sp

    maps = _mixed_maps(1)
    whole = spatial_features(maps)
    monkeypatch.setattr(sp, "CHUNK_CELLS", 2 * 44 * 31)  # chunks of 1-2 maps
    np.testing.assert_array_equal(spatial_features(maps), whole)
    order = np.random.default_rng(3).permutation(len(maps))
    np.testing.assert_array_equal(spatial_features([maps[i] for i in order]), whole[order])
    np.testing.assert_array_equal(spatial_features(maps[3:4]), whole[3:4])
    monkeypatch.setattr(sp, "BIN_TABLE_CELLS", 0)  # projection bins on the fly, no table
    np.testing.assert_array_equal(spatial_features(maps), whole)


def test_maps_without_fails_beside_failing_ones_raise_no_warning():
    import warnings

    m = disc(21)
    m[5:8, 5:9] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = spatial_features([np.ones((21, 21), np.uint8), disc(21), m])
    assert not f[:2].any() and f[2].any()


def test_elongated_grids_are_chunked_by_their_strips():
    from wafertk.features import spatial as sp
    from wafertk.features._common import by_shape

    seen = []

    def block(stack):
        seen.append(len(stack))
        return np.zeros((len(stack), 1), np.float32)

    maps = [np.ones((1, 512), np.uint8)] * 300
    by_shape(maps, block, 1, chunk_cells=sp.CHUNK_CELLS, cost=sp._map_cost)
    assert max(seen) * sp._map_cost(1, 512) <= sp.CHUNK_CELLS and sum(seen) == 300
    seen.clear()
    by_shape(maps, block, 1, chunk_cells=sp.CHUNK_CELLS)  # by cells alone: 256 maps
    assert max(seen) == 256
