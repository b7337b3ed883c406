import h5py
import numpy as np
import pytest

from wafertk.data import WaferFile, WaferSet, iter_wafers, read_wafers, write_wafers
from wafertk.data.h5 import SCHEMA, WaferWriter
from wafertk.data.synthetic import make_wafers
from wafertk.errors import WaferFileError, WafertkError


def _assert_same(a: WaferSet, b: WaferSet):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.wafer_id.tolist() == b.wafer_id.tolist()
    assert a.lot.tolist() == b.lot.tolist()
    np.testing.assert_array_equal(a.wafer_index, b.wafer_index)
    np.testing.assert_allclose(a.die_size, b.die_size)
    assert a.label_strings().tolist() == b.label_strings().tolist()


@pytest.fixture
def ws():
    return make_wafers(40, random_state=1)


def test_ragged_round_trip(tmp_path, ws):
    p = write_wafers(ws, tmp_path / "w.h5")
    back = read_wafers(p)
    _assert_same(ws, back)
    with h5py.File(p) as f:
        assert f.attrs["schema"] == SCHEMA
        assert f["maps_flat"].compression == "gzip" and f["maps_flat"].chunks
    assert not list(tmp_path.glob(".*tmp"))


def test_fixed_layout_round_trip_and_reader_accepts_both(tmp_path):
    arr = np.random.default_rng(0).integers(0, 3, size=(10, 8, 9)).astype(np.uint8)
    ws = WaferSet.from_maps(arr, labels=["Loc"] * 5 + [""] * 5)
    p = write_wafers(ws, tmp_path / "f.h5", layout="fixed")
    with h5py.File(p) as f:
        assert f["maps"].shape == (10, 8, 9)
    back = read_wafers(p)
    _assert_same(ws, back)
    with pytest.raises(WafertkError, match="one shape"):
        write_wafers(WaferSet.from_maps([np.ones((2, 2), np.uint8), np.ones((3, 2), np.uint8)]),
                     tmp_path / "x.h5", layout="fixed")
    assert not (tmp_path / "x.h5").exists()


def test_minimal_file_written_by_h5py_alone(tmp_path):
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f["maps"] = np.ones((3, 4, 4), np.uint8)
        f["something_else"] = np.arange(7)  # extra datasets are ignored
    ws = read_wafers(p)
    assert len(ws) == 3 and ws.labels is None and ws.wafer_id.tolist() == ["0", "1", "2"]


def test_streaming_batches_cover_file_in_order(tmp_path, ws):
    p = write_wafers(ws, tmp_path / "w.h5")
    batches = list(iter_wafers(p, batch_size=7))
    assert [len(b) for b in batches] == [7] * 5 + [5]
    _assert_same(ws, WaferSet.concat(batches))


def test_writer_appends_batches(tmp_path, ws):
    with WaferWriter(tmp_path / "a.h5") as w:
        for s in range(0, len(ws), 16):
            w.append(ws.slice(s, s + 16))
    _assert_same(ws, read_wafers(tmp_path / "a.h5"))


def test_writer_error_leaves_nothing(tmp_path, ws):
    target = tmp_path / "a.h5"
    with pytest.raises(RuntimeError):
        with WaferWriter(target) as w:
            w.append(ws.slice(0, 5))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_extras_round_trip(tmp_path):
    ws = WaferSet.from_maps([np.ones((2, 2), np.uint8)] * 3,
                            extras={"orig_index": np.array([5, 6, 7]),
                                    "partition": np.array(["Training"] * 3, dtype=object)})
    p = write_wafers(ws, tmp_path / "e.h5")
    assert read_wafers(p).extras == {}
    back = read_wafers(p, with_extras=True)
    assert back.extras["orig_index"].tolist() == [5, 6, 7]
    assert back.extras["partition"].tolist() == ["Training"] * 3


def _ragged(tmp_path, **over):
    p = tmp_path / "bad.h5"
    data = {"maps_flat": np.ones(8, np.uint8), "offsets": np.array([0, 4, 8]),
            "shapes": np.array([[2, 2], [2, 2]]), "lot": np.array([b"a", b"b"])}
    data.update(over)
    with h5py.File(p, "w") as f:
        for k, v in data.items():
            if v is not None:
                f[k] = v
    return p


@pytest.mark.parametrize(
    "over, match",
    [
        ({"maps_flat": np.full(8, 5, np.uint8)}, "outside"),
        ({"maps_flat": np.ones(8, np.float32)}, "dtype float32"),
        ({"offsets": np.array([0, 4])}, "mismatched lengths"),
        ({"offsets": np.array([0, 3, 8])}, "mismatched lengths"),
        ({"lot": np.array([b"a"])}, "mismatched lengths: 'lot'"),
        ({"shapes": None}, "without 'shapes'"),
        ({"maps_flat": None, "offsets": None, "shapes": None}, "no wafer maps"),
        ({"maps_flat": np.zeros(0, np.uint8), "offsets": np.array([0]),
          "shapes": np.zeros((0, 2), np.int16), "lot": None}, "contains no wafers"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path, over, match):
    p = _ragged(tmp_path, **over)
    with pytest.raises(WaferFileError, match=match) as exc:
        read_wafers(p)
    assert str(exc.value).startswith(str(p))
    assert "\n" not in str(exc.value)


def test_unknown_label_and_schema(tmp_path):
    p = _ragged(tmp_path, label=np.array([b"Center", b"Blob"]))
    with pytest.raises(WaferFileError, match="unknown class 'Blob'"):
        read_wafers(p)
    with h5py.File(p, "a") as f:
        f.attrs["schema"] = "other/9"
    with pytest.raises(WaferFileError, match="unsupported schema"):
        WaferFile(p)


def test_missing_not_hdf5_truncated(tmp_path, ws):
    with pytest.raises(WaferFileError, match="no such file"):
        read_wafers(tmp_path / "nope.h5")
    txt = tmp_path / "t.h5"
    txt.write_text("hello")
    with pytest.raises(WaferFileError, match="not an HDF5 file"):
        read_wafers(txt)
    good = write_wafers(ws, tmp_path / "g.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WaferFileError, match="truncated|corrupt"):
        read_wafers(cut)
