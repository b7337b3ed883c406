"""wafertk.images.data: scan (counts, skips, errors), balance, split, streaming, export."""

import numpy as np
import pytest

from wafertk.errors import WaferFileError, WafertkError
from wafertk.images.data import class_balance, scan_image_folder, stratified_split


def test_scan_counts_classes_and_labels(image_folder):
    root = image_folder(n=6)
    scan = scan_image_folder(root)
    assert scan.classes == ["cats", "dogs"]
    assert len(scan) == 12 and scan.counts().tolist() == [6, 6]
    assert scan.labels.tolist() == [0] * 6 + [1] * 6
    assert scan.skipped == []


def test_bad_files_are_skipped_with_a_warning_and_counted(image_folder, caplog):
    root = image_folder(n=4)
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated garbage")
    good = (root / "dogs" / "img_0.jpg").read_bytes()
    (root / "dogs" / "half.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    (root / "stray.png").write_bytes(b"")
    with caplog.at_level("WARNING"):
        scan = scan_image_folder(root)
    assert len(scan) == 8
    reasons = dict((p.rsplit("/", 1)[-1], r) for p, r in scan.skipped)
    assert set(reasons) == {"notes.txt", "broken.jpg", "half.jpg", "stray.png"}
    assert "not an image file" in reasons["notes.txt"]
    assert "cannot decode" in reasons["broken.jpg"]
    assert "not inside a class" in reasons["stray.png"]
    assert sum("skipped" in r.message for r in caplog.records) == 4


def test_folder_errors_name_the_folder(image_folder, tmp_path):
    with pytest.raises(WaferFileError, match="no such folder"):
        scan_image_folder(tmp_path / "missing")
    one = image_folder("one", classes=("cats",), n=2)
    with pytest.raises(WaferFileError, match=r"one.*1 class sub-folder \(cats\).*at least two"):
        scan_image_folder(one)
    empty = image_folder("empty", n=2)
    for f in (empty / "dogs").iterdir():
        f.unlink()
    (empty / "dogs" / "readme.txt").write_text("x")
    with pytest.raises(WaferFileError, match=r"dogs: class folder holds no readable image"):
        scan_image_folder(empty)
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(WaferFileError, match="is not a folder"):
        scan_image_folder(tmp_path / "file.jpg")
    ok = image_folder("ok", n=2)
    with pytest.raises(WaferFileError, match="no sub-folder for class 'birds'"):
        scan_image_folder(ok, classes=["cats", "birds"])


def test_expected_classes_keep_their_order_and_skip_extras(image_folder):
    root = image_folder(classes=("birds", "cats", "dogs"), n=2)
    scan = scan_image_folder(root, classes=["dogs", "cats"])
    assert scan.classes == ["dogs", "cats"] and scan.labels.tolist() == [0, 0, 1, 1]
    assert any("not one of the model's classes" in r for _, r in scan.skipped)


def test_class_balance_table(image_folder):
    scan = scan_image_folder(image_folder(n=4), max_per_class=None)
    scan = scan.subset(np.array([0, 1, 2, 4]))
    table = class_balance(scan)
    assert table["class"].tolist() == ["cats", "dogs"]
    assert table["count"].tolist() == [3, 1]
    assert table["fraction"].tolist() == [0.75, 0.25]


def test_stratified_split_is_disjoint_stratified_and_seeded():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    tr, va, te = stratified_split(y, (0.6, 0.2, 0.2), seed=3)
    assert len(tr) + len(va) + len(te) == 100
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert np.bincount(y[tr]).tolist() == [30, 18, 12]
    assert np.bincount(y[te]).tolist() == [10, 6, 4]
    again = stratified_split(y, (0.6, 0.2, 0.2), seed=3)
    assert all((a == b).all() for a, b in zip((tr, va, te), again, strict=True))
    assert not (stratified_split(y, seed=4)[0] == tr).all()
    with pytest.raises(WafertkError, match="sum to 1"):
        stratified_split(y, (0.5, 0.2))


@pytest.mark.tf
def test_streamed_dataset_and_npy_export(image_folder, tmp_path):
    from wafertk.images.data import export_npy, make_dataset

    scan = scan_image_folder(image_folder(n=3, size=20))
    ds = make_dataset(scan.files, scan.labels, image_size=16, batch_size=4)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 2]
    x, y = batches[0]
    assert tuple(x.shape[1:]) == (16, 16, 3) and x.dtype.name == "float32"
    assert 0 <= float(np.min(x)) and float(np.max(x)) <= 255
    assert y.numpy().tolist() == [0, 0, 0, 1]
    paths = export_npy(scan, tmp_path / "npy", image_size=16)
    arr = np.load(paths["images"], allow_pickle=False)
    assert arr.shape == (6, 16, 16, 3) and arr.dtype == np.uint8
    assert np.load(paths["labels"]).tolist() == [0, 0, 0, 1, 1, 1]
    assert paths["classes"].read_text().split() == ["cats", "dogs"]
    # the export is what the training stream yields; keras.utils.load_img is close
    streamed = np.concatenate([b[0].numpy() for b in batches])
    assert np.abs(streamed - arr).max() <= 0.5 + 1e-4
    from wafertk.images.data import load_images

    assert np.abs(load_images(scan.files, 16).astype(float) - streamed).mean() < 8
