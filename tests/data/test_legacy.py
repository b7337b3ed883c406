"""The restricted reader of the original WM-811K LSWMD.pkl (legacy Python-2 pandas pickle)."""

import os
import pickle
from collections import Counter

import numpy as np
import pytest

from wafertk.data.legacy import read_lswmd
from wafertk.errors import WaferFileError, WafertkError


@pytest.fixture(scope="module")
def sample_pkl(shared_data):
    return shared_data / "wm811k" / "LSWMD_sample.pkl"


@pytest.fixture(scope="module")
def pack(shared_data):
    with np.load(shared_data / "wm811k" / "wm811k_train.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def sample(sample_pkl):
    return read_lswmd(sample_pkl)


def test_sample_structure(sample):
    ws = sample
    assert len(ws) == 1854
    assert ws.maps_flat.dtype == np.uint8
    assert all(m.flags.c_contiguous and m.dtype == np.uint8 and m.ndim == 2 for m in ws)
    counts = Counter(ws.label_strings().tolist())
    assert counts[""] == 600 and counts["Near-full"] == 54
    assert all(counts[c] == 150 for c in ws.class_names if c != "Near-full")
    part = ws.extras["partition"]
    assert set(part[ws.labeled_mask()]) == {"Training"} and set(part[~ws.labeled_mask()]) == {""}
    orig = ws.extras["orig_index"]
    assert orig.dtype == np.int64 and (np.diff(orig) > 0).all()
    assert list(ws.wafer_id[:2]) == [f"lswmd-{orig[0]}", f"lswmd-{orig[1]}"]
    assert all(isinstance(x, str) for x in ws.lot[:10])


def test_labeled_rows_equal_npz_pack(sample, pack):
    ws = sample
    pos = {int(o): i for i, o in enumerate(pack["orig_index"])}
    names = pack["class_names"]
    off, shapes = pack["offsets"], pack["shapes"]
    labeled = np.flatnonzero(ws.labeled_mask())
    assert len(labeled) == 1254
    for i in labeled:
        j = pos[int(ws.extras["orig_index"][i])]
        ref = pack["maps_flat"][off[j] : off[j + 1]].reshape(shapes[j])
        got = ws[i]
        assert got.shape == ref.shape and got.tobytes() == ref.tobytes()
        assert ws.lot[i] == pack["lotName"][j]
        assert ws.wafer_index[i] == pack["waferIndex"][j]
        assert ws.die_size[i] == pack["dieSize"][j]
        assert ws.labels[i] == names[pack["label"][j]]


def test_filters(sample_pkl, sample):
    lab = read_lswmd(sample_pkl, labeled_only=True)
    assert len(lab) == 1254 and lab.labeled_mask().all()
    tr = read_lswmd(sample_pkl, partition="Training")
    assert len(tr) == 1254 and set(tr.extras["partition"]) == {"Training"}
    np.testing.assert_array_equal(tr.wafer_id, sample.wafer_id[sample.labeled_mask()])
    assert tr[5].tobytes() == sample[np.flatnonzero(sample.labeled_mask())[5]].tobytes()
    assert len(read_lswmd(sample_pkl, partition="Test")) == 0  # the sample has no Test rows


def test_unknown_partition(tmp_path):
    sample_pkl = tmp_path / "LSWMD.pkl"  # the partition is checked before the file
    with pytest.raises(WafertkError, match=r"unknown partition 'train' \(did you mean "
                                           r"'Training'\?\); expected Training, Test or all"):
        read_lswmd(sample_pkl, partition="train")
    with pytest.raises(WafertkError, match=r"'TEST' \(did you mean 'Test'\?\)"):
        read_lswmd(sample_pkl, partition="TEST")
    with pytest.raises(WafertkError, match=r"unknown partition 'xyz'; expected"):
        read_lswmd(sample_pkl, partition="xyz")


def test_range_index_variant(sample_pkl, sample, tmp_path):
    """The full file's row index is a RangeIndex: splice one into the sample's stream."""
    data = sample_pkl.read_bytes()
    # the row index ends at 'REDUCE; BINPUT 33' at byte 15346 (see pickletools.dis)
    at = 15346
    assert data[at : at + 3] == b"R" + b"q" + bytes([33])
    new_index = (
        b"0"  # POP the original Index
        + b"h\x0c"  # BINGET 12: _new_Index
        + b"cpandas.indexes.range\nRangeIndex\n"
        + b"}(U\x05startK\x00U\x04stepK\x01U\x04stopM" + (1854).to_bytes(2, "little")
        + b"U\x04nameNu"  # SETITEMS
        + b"\x86Rq\x21"  # TUPLE2, REDUCE, BINPUT 33
    )
    p = tmp_path / "range.pkl"
    p.write_bytes(data[: at + 3] + new_index + data[at + 3 :])
    ws = read_lswmd(p)
    np.testing.assert_array_equal(ws.extras["orig_index"], np.arange(1854))
    assert ws.wafer_id[7] == "lswmd-7"
    np.testing.assert_array_equal(ws.maps_flat, sample.maps_flat)


def test_refuses_foreign_global(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(WaferFileError, match=r"refusing to load global '(posix|os)\.system'") \
            as exc:
        read_lswmd(p)
    assert str(p) in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"waferMap,lotName\n1,2\n", "not a legacy pickle"),
        (b"", "not a legacy pickle"),
        (pickle.dumps({"a": [1, 2]}, protocol=2), "not laid out like LSWMD.pkl"),
        (pickle.dumps(3, protocol=4), "not a legacy pickle"),
    ],
)
def test_bad_files(tmp_path, content, problem):
    p = tmp_path / "bad.pkl"
    p.write_bytes(content)
    with pytest.raises(WaferFileError, match=problem) as exc:
        read_lswmd(p)
    assert exc.value.path == str(p)


def test_truncated(sample_pkl, tmp_path):
    p = tmp_path / "cut.pkl"
    data = sample_pkl.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(WaferFileError, match="truncated"):
        read_lswmd(p)


def test_missing(tmp_path):
    with pytest.raises(WaferFileError, match="no such file"):
        read_lswmd(tmp_path / "LSWMD.pkl")


def test_arena_grows():
    from wafertk.data.legacy import _Loader

    loader = _Loader(0)
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, (30, 40), dtype=np.uint8) for _ in range(100)]
    offs = [loader.store_map(m.tobytes(order="F"), m.shape, True) for m in maps]
    assert loader.used == 100 * 1200 > 1 << 16
    for m, o in zip(maps, offs, strict=True):
        np.testing.assert_array_equal(loader.arena[o : o + m.size].reshape(m.shape), m)
