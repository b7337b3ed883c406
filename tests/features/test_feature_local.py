"""Local fail structures: the segment kernels, a short scratch against a blob and scattered
fails, a small centre cluster against the same cluster off centre, exact invariance under
quarter turns on odd, even and non-square grids, and defined values on degenerate maps."""

import numpy as np
import pytest
from wafer_masks import disc, ellipse

from wafertk.features import FEATURE_SETS, extract_features, feature_names
from wafertk.features.local import (
    LOCAL_FEATURE_NAMES,
    SEGMENT_ANGLES,
    SEGMENT_LENGTHS,
    local_features,
    segment_kernels,
)


def _f(m: np.ndarray) -> dict[str, float]:
    return dict(zip(LOCAL_FEATURE_NAMES, local_features([m])[0], strict=True))


@pytest.mark.parametrize("n", SEGMENT_LENGTHS)
def test_segment_kernels_are_n_cell_lines_closed_under_quarter_turns(n):
    ks = segment_kernels(n)
    assert ks.shape == (SEGMENT_ANGLES, n, n)
    assert (ks.sum(axis=(1, 2)) == n).all()
    assert (ks[:, (n - 1) // 2, (n - 1) // 2] == 1).all()  # through the centre
    for k in ks:
        assert np.array_equal(k, k[::-1, ::-1])  # point-symmetric: correlation = convolution
        # a quarter turn of any kernel is another kernel of the set
        assert any(np.array_equal(np.rot90(k), other) for other in ks)
    assert len({k.tobytes() for k in ks}) == SEGMENT_ANGLES  # 12 distinct directions
    assert np.array_equal(ks[0][(n - 1) // 2], np.ones(n))  # 0 degrees: a row
    assert np.array_equal(np.diag(ks[SEGMENT_ANGLES // 4][::-1]), np.ones(n))  # 45 degrees


def test_segment_kernels_reject_even_lengths():
    with pytest.raises(ValueError, match="odd"):
        segment_kernels(4)


def test_a_short_scratch_is_a_segment_along_one_direction():
    m = disc()
    m[10, 8:17] = 2  # a 9-die horizontal scratch, off centre
    f = _f(m)
    assert f["seg5_max"] == 1.0 and f["seg9_max"] == 1.0
    assert f["seg15_max"] == pytest.approx(9 / 15)
    # through its middle die 9 fails along it, 1 to 3 along the other 11 directions
    assert f["seg9_line"] > 0.7 and f["seg5_line"] > 0.6
    assert f["center_fail_r0.1"] == 0.0 and f["center_region_dies"] == 0.0


def test_a_round_blob_fills_every_direction_alike():
    m = disc()
    yy, xx = np.mgrid[:41, :41]
    m[(yy - 10) ** 2 + (xx - 20) ** 2 <= 25] = 2  # a disc of radius 5 off centre
    f = _f(m)
    assert f["seg5_max"] == 1.0 and f["seg9_max"] == 1.0
    # segments full of fails lie in the disc, where most directions are full too (at its
    # centre all 12 of length 5): a blob stands out far less along one direction than a
    # scratch
    assert f["seg5_line"] < 0.4 and f["seg9_line"] < 0.3


def test_scattered_fails_make_no_segment():
    m = disc()
    m[::4, ::4][m[::4, ::4] > 0] = 2  # isolated fails on a 4-die lattice
    f = _f(m)
    assert f["seg5_max"] == pytest.approx(2 / 5)  # a row or column of 5 meets 2 lattice dies
    assert f["seg15_max"] <= 4 / 15


def test_a_small_centre_cluster_against_the_same_cluster_off_centre():
    centre = disc()
    centre[19:22, 19:22] = 2  # 9 fail dies at the centre
    off = disc()
    off[9:12, 19:22] = 2  # the same 3 x 3 cluster, half way to the edge
    fc, fo = _f(centre), _f(off)
    n_die = int((centre > 0).sum())
    # the normalised radius is 0 at the centre and 1 at the outermost die (|offset| / 20
    # here): radius < 0.1 is |offset| < 2 dies
    assert fc["center_fail_r0.1"] == pytest.approx(9 / 9)
    assert fc["center_lift"] == pytest.approx(np.log1p(fc["center_fail_r0.2"] / (9 / n_die)))
    assert fc["center_region_dies"] == pytest.approx(np.log1p(9))
    assert fc["center_region_share"] == 1.0
    assert fo["center_fail_r0.1"] == 0.0 and fo["center_fail_r0.2"] == 0.0
    assert fo["center_lift"] == 0.0
    assert fo["center_region_dies"] == 0.0 and fo["center_region_share"] == 0.0
    # the segments do not see where the cluster is
    for n in SEGMENT_LENGTHS:
        assert fc[f"seg{n}_max"] == fo[f"seg{n}_max"]


def test_the_centre_region_is_the_largest_region_reaching_the_centre():
    m = disc()
    m[20, 20:26] = 2  # 6 dies from the centre outwards
    m[20, 19] = 2
    m[5:8, 15:25] = 2  # a larger region far from the centre: not a centre region
    f = _f(m)
    assert f["center_region_dies"] == pytest.approx(np.log1p(7))
    assert f["center_region_share"] == pytest.approx(7 / 37)


@pytest.mark.parametrize("shape", [(41, 41), (40, 40), (31, 45)])
def test_quarter_turns_give_the_same_values_exactly(shape):
    rng = np.random.default_rng(3)
    h, w = shape
    m = ellipse(h, w)
    maps = []
    for p in (0.03, 0.2):
        x = m.copy()
        x[(x > 0) & (rng.random(shape) < p)] = 2
        x[h // 2, w // 4: w // 2] = 2 * (x[h // 2, w // 4: w // 2] > 0)  # a scratch
        maps.append(x)
    base = local_features(maps)
    assert base[:, LOCAL_FEATURE_NAMES.index("seg9_max")].min() > 0
    for q in (1, 2, 3):
        np.testing.assert_array_equal(local_features([np.rot90(x, q) for x in maps]), base)


def test_degenerate_maps_give_finite_values():
    maps = [np.zeros((0, 0), np.uint8), np.zeros((5, 5), np.uint8), np.ones((5, 5), np.uint8),
            np.full((1, 1), 2, np.uint8), np.full((3, 4), 2, np.uint8),
            np.full((120, 90), 2, np.uint8)]
    X = local_features(maps)
    assert X.shape == (len(maps), len(LOCAL_FEATURE_NAMES)) and X.dtype == np.float32
    assert np.isfinite(X).all()
    assert (X[:3] == 0).all()  # no dies, or no fail dies
    one = dict(zip(LOCAL_FEATURE_NAMES, X[3], strict=True))
    assert one["seg5_max"] == pytest.approx(1 / 5) and one["center_fail_r0.1"] == 1.0
    full = dict(zip(LOCAL_FEATURE_NAMES, X[5], strict=True))
    # every segment full, also those leaving the wafer (only its dies count): no line
    assert full["seg15_max"] == 1.0 and full["seg15_line"] == 0.0
    assert full["center_lift"] == pytest.approx(np.log1p(1.0))


def test_registered_as_a_feature_set():
    assert "local" in FEATURE_SETS
    assert feature_names(["local"]) == [f"local__{n}" for n in LOCAL_FEATURE_NAMES]
    m = disc(21)
    m[10, 3:12] = 2
    np.testing.assert_array_equal(extract_features([m, m], ["local"]),
                                  local_features([m, m]))


def test_segment_counts_match_a_direct_convolution():
    import cv2

    from wafertk.features.local import _segment_counts

    rng = np.random.default_rng(5)
    stack = rng.random((3, 23, 31)) < 0.3
    counts = _segment_counts(stack)
    for n in SEGMENT_LENGTHS:
        ref = np.stack([np.stack([cv2.filter2D(s.astype(np.float32), -1, k,
                                               borderType=cv2.BORDER_CONSTANT) for s in stack])
                        for k in segment_kernels(n)])
        # cv2 may use a float32 DFT for the larger kernels: its counts rounded
        np.testing.assert_array_equal(counts[n], np.rint(ref))


def test_values_do_not_depend_on_the_maps_sharing_a_call():
    rng = np.random.default_rng(11)
    maps = []
    for shape in [(41, 41), (30, 36), (41, 41), (12, 9), (30, 36), (41, 41), (300, 205)]:
        m = np.ones(shape, np.uint8)
        m[:, 0] = 0  # die masks differ between maps of one shape
        if len(maps) % 2:
            m[0, :] = 0
        m[(m > 0) & (rng.random(shape) < rng.uniform(0.02, 0.4))] = 2
        maps.append(m)
    together = local_features(maps)
    alone = np.vstack([local_features([m]) for m in maps])
    np.testing.assert_array_equal(together, alone)
    order = rng.permutation(len(maps))
    np.testing.assert_array_equal(local_features([maps[i] for i in order]), together[order])


def test_chunks_of_one_shape_give_the_same_values(monkeypatch):
    from wafertk.features import local

    rng = np.random.default_rng(2)
    maps = []
    for _ in range(7):
        m = disc(21)
        m[(m > 0) & (rng.random(m.shape) < 0.15)] = 2
        m[10, 2:12] = 2
        maps.append(m)
    whole = local_features(maps)
    monkeypatch.setattr(local, "CHUNK_CELLS", 2 * 21 * 21)  # chunks of 2 maps: 4 chunks
    np.testing.assert_array_equal(local_features(maps), whole)
