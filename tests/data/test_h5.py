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


# ------------------------------------------------------------- format rules (issue: one-line
# errors for bad files): each case fails on the old code (traceback or silently accepted)
def _small(tmp_path, name="w.h5", **kw):
    ws = WaferSet.from_maps([np.ones((3, 4), np.uint8)] * 3, wafer_id=["a", "b", "c"],
                            lot=["L1", "L1", "L2"], labels=["none"] * 3, **kw)
    return write_wafers(ws, tmp_path / name)


@pytest.mark.parametrize("key", ["maps_flat", "offsets", "shapes", "wafer_id", "lot", "label",
                                 "die_size", "wafer_index"])
def test_known_dataset_stored_as_group(tmp_path, key):
    p = _small(tmp_path)
    with h5py.File(p, "a") as h5:
        del h5[key]
        h5.create_group(key)
    with pytest.raises(WaferFileError, match=f"'{key}' is an HDF5 group, expected a dataset"):
        read_wafers(p)


def test_fixed_maps_stored_as_group_and_extra_groups_ignored(tmp_path):
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as h5:
        h5.create_group("maps")
    with pytest.raises(WaferFileError, match="'maps' is an HDF5 group"):
        read_wafers(p)
    p = _small(tmp_path, "extra.h5")
    with h5py.File(p, "a") as h5:
        h5.create_group("notes")  # not a wafertk dataset: ignored, also by with_extras
    assert len(read_wafers(p, with_extras=True)) == 3


@pytest.mark.parametrize("key", ["lot", "label", "wafer_id", "partition"])
def test_non_utf8_text(tmp_path, key):
    ws = WaferSet.from_maps([np.ones((3, 4), np.uint8)] * 3, wafer_id=["a", "b", "c"],
                            labels=["none"] * 3, extras={"partition": np.array(["T"] * 3)})
    p = write_wafers(ws, tmp_path / "w.h5")
    with h5py.File(p, "a") as h5:
        vals = h5[key][()].tolist()
        vals[1] = b"\xff\xfeab"
        del h5[key]
        h5.create_dataset(key, data=np.array(vals, dtype=object), dtype=h5py.vlen_dtype(bytes))
    who = "wafer 1" if key == "wafer_id" else "wafer 1 \\(id 'b'\\)"
    with pytest.raises(WaferFileError, match=f"{who}: '{key}' is not valid UTF-8") as exc:
        read_wafers(p, with_extras=True)
    assert exc.value.path == str(p)


def test_non_utf8_fixed_length_bytes(tmp_path):
    p = _small(tmp_path)
    with h5py.File(p, "a") as h5:
        del h5["lot"]
        h5["lot"] = np.array([b"ok", b"ok", b"\xe9t\xe9"])  # latin-1, fixed-length 'S'
    with pytest.raises(WaferFileError, match=r"wafer 2 \(id 'c'\): 'lot' is not valid UTF-8"):
        read_wafers(p)


def test_zero_dimension_maps(tmp_path):
    p = tmp_path / "z.h5"
    with h5py.File(p, "w") as h5:
        h5["maps_flat"] = np.ones(12, np.uint8)
        h5["offsets"] = np.array([0, 12, 12, 12])
        h5["shapes"] = np.array([[3, 4], [0, 0], [0, 5]])
        h5["wafer_id"] = np.array([b"x", b"y", b"z"], dtype=object)
    with pytest.raises(WaferFileError, match=r"wafer 1 \(id 'y'\): map is 0x0 \(a zero "
                                             r"dimension.*; 2 wafers like this"):
        WaferFile(p)
    p = tmp_path / "zf.h5"
    with h5py.File(p, "w") as h5:
        h5["maps"] = np.ones((2, 0, 4), np.uint8)
    with pytest.raises(WaferFileError, match=r"wafer 0 \(id '0'\): map is 0x4"):
        WaferFile(p)


def test_map_without_die_named_on_read(tmp_path):
    p = tmp_path / "nodie.h5"
    maps = np.ones((300, 3, 4), np.uint8)
    maps[217] = 0
    with h5py.File(p, "w") as h5:
        h5["maps"] = maps
        h5["wafer_id"] = np.array([f"w{i}".encode() for i in range(300)], dtype=object)
    with WaferFile(p) as f:  # only reading the maps can find it
        assert len(f.read(0, 200)) == 200
        with pytest.raises(WaferFileError, match=r"wafer 217 \(id 'w217'\): map has no die "
                                                 r"\(every value is 0\)") as exc:
            list(f.iter_batches(64))
    assert exc.value.path == str(p)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, -1.0])
def test_bad_die_size(tmp_path, value):
    p = _small(tmp_path)
    with h5py.File(p, "a") as h5:
        h5["die_size"][2] = value
    with pytest.raises(WaferFileError, match=r"wafer 2 \(id 'c'\): die_size is .* \(must be "
                                             r"a finite number >= 0\)"):
        WaferFile(p)


def test_duplicate_wafer_id(tmp_path):
    p = _small(tmp_path)
    with h5py.File(p, "a") as h5:
        h5["wafer_id"][2] = "a"
    with pytest.raises(WaferFileError, match=r"duplicate wafer_id 'a' at rows 0, 2 \(wafer ids "
                                             r"must be unique\)"):
        WaferFile(p)


def test_duplicate_wafer_id_across_scan_chunks(tmp_path, monkeypatch):
    import wafertk.data.h5 as h5mod

    monkeypatch.setattr(h5mod, "SCAN_CHUNK", 7)  # the ids are hashed slice by slice
    n = 100
    ids = np.array([f"id{i}".encode() for i in range(n)], dtype=object)
    ids[[55, 99]] = b"id3"
    ids[[80]] = b"id60"
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as h5:
        h5["maps"] = np.ones((n, 2, 2), np.uint8)
        h5.create_dataset("wafer_id", data=ids, dtype=h5py.string_dtype())
    with pytest.raises(WaferFileError, match=r"duplicate wafer_id 'id3' at rows 3, 55, 99 "
                                             r".*; 2 ids are duplicated"):
        WaferFile(p)


def test_integer_wafer_ids_checked_too(tmp_path):
    p = tmp_path / "i.h5"
    with h5py.File(p, "w") as h5:
        h5["maps"] = np.ones((3, 2, 2), np.uint8)
        h5["wafer_id"] = np.array([5, 6, 5])
    with pytest.raises(WaferFileError, match="duplicate wafer_id '5' at rows 0, 2"):
        WaferFile(p)


@pytest.mark.parametrize("case, problem", [
    ("zero", r"wafer 1 \(id '1'\): map is 0x3"),
    ("nodie", r"wafer 1 \(id '1'\): map has no die"),
    ("nan", r"wafer 0 \(id '0'\): die_size is nan"),
    ("dup", r"duplicate wafer_id 'x' at rows 0, 1"),
    ("surrogate", r"wafer 1 \(id '1'\): lot '\\udcff' cannot be stored as UTF-8"),
])
def test_writer_refuses_what_readers_refuse(tmp_path, case, problem):
    maps = [np.ones((2, 3), np.uint8), np.ones((2, 3), np.uint8)]
    kw: dict = {}
    if case == "zero":
        maps[1] = np.zeros((0, 3), np.uint8)
    elif case == "nodie":
        maps[1] = np.zeros((2, 3), np.uint8)
    elif case == "nan":
        kw["die_size"] = [np.nan, 6]
    elif case == "dup":
        kw["wafer_id"] = ["x", "x"]
    elif case == "surrogate":
        kw["lot"] = ["ok", "\udcff"]
    with pytest.raises(WafertkError, match=problem):
        write_wafers(WaferSet.from_maps(maps, **kw), tmp_path / "w.h5")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_writer_finds_duplicates_across_batches(tmp_path):
    a = WaferSet.from_maps([np.ones((2, 2), np.uint8)] * 2, wafer_id=["p", "q"])
    b = WaferSet.from_maps([np.ones((2, 2), np.uint8)] * 2, wafer_id=["r", "p"])
    with pytest.raises(WafertkError, match="duplicate wafer_id 'p' at rows 0, 3"):
        with WaferWriter(tmp_path / "w.h5") as w:
            w.append(a)
            w.append(b)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["not json", '{"a": 1}', "[]", '["a", "a"]', "[1, 2]"])
def test_bad_class_names_attribute(tmp_path, value):
    import h5py

    from wafertk.data.synthetic import make_wafers as _make

    path = tmp_path / "w.h5"
    write_wafers(_make(5, random_state=0), path)
    with h5py.File(path, "a") as h5:
        h5.attrs["class_names"] = value
    with pytest.raises(WaferFileError, match="'class_names' attribute is not a JSON list"):
        read_wafers(path)
