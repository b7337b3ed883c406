"""`wafertk import npz` on packs without `label`/`class_names` (the unlabeled WM-811K pack)."""

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import read_wafers
from wafertk.data.importers import import_npz, read_npz_pack
from wafertk.data.synthetic import make_wafers
from wafertk.errors import WaferFileError


def _pack(n=12, seed=0):
    ws = make_wafers(n, n_lots=3, random_state=seed)
    return {
        "maps_flat": ws.maps_flat, "offsets": ws.offsets, "shapes": ws.shapes.astype(np.int16),
        "orig_index": np.arange(100, 100 + n, dtype=np.int32),
        "lotName": ws.lot.astype(str), "waferIndex": ws.wafer_index.astype(np.int16),
        "dieSize": ws.die_size.astype(np.float32),
    }


def test_unlabeled_pack_imports_unlabeled(tmp_path):
    d = _pack()
    src = tmp_path / "unlabeled.npz"
    np.savez(src, **d)
    out = tmp_path / "u.h5"
    s = import_npz(src, out)
    assert (s.wafers, s.labeled, s.classes) == (12, 0, {"": 12})
    ws = read_wafers(out)
    assert not ws.labeled_mask().any()
    assert list(ws.wafer_id[:2]) == ["lswmd-100", "lswmd-101"]
    np.testing.assert_array_equal(ws.maps_flat, d["maps_flat"])
    np.testing.assert_array_equal(ws.lot.astype(str), d["lotName"])


@pytest.mark.parametrize("drop", ["label", "class_names"])
def test_half_labeled_pack_is_refused(tmp_path, drop):
    d = _pack()
    d["label"] = np.zeros(12, np.int8)
    d["class_names"] = np.array(["a", "b"])
    del d[drop]
    src = tmp_path / "half.npz"
    np.savez(src, **d)
    with pytest.raises(WaferFileError, match=f"missing key\\(s\\) {drop}"):
        import_npz(src, tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def test_cli_imports_unlabeled_pack(tmp_path):
    src = tmp_path / "unlabeled.npz"
    np.savez(src, **_pack(8, seed=3))
    out = tmp_path / "u.h5"
    r = CliRunner().invoke(cli, ["import", "npz", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "8 wafers (0 labeled, " in r.output
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert "wafers    8 (0 labeled)" in r.output


def test_real_unlabeled_pack_first_rows(tmp_path, shared_data):
    src = shared_data / "wm811k" / "wm811k_unlabeled_200k.npz"
    with np.load(src) as z:
        assert "label" not in z.files and "class_names" not in z.files
        off = z["offsets"][:301]
        d = {"maps_flat": z["maps_flat"][: off[-1]], "offsets": off,
             **{k: z[k][:300] for k in ("shapes", "orig_index", "lotName", "waferIndex",
                                        "dieSize")}}
    head = tmp_path / "wm811k_unlabeled_head.npz"
    np.savez(head, **d)
    ws = read_npz_pack(head)
    assert len(ws) == 300 and ws.labels is None and ws[0].shape == tuple(d["shapes"][0])
    s = import_npz(head, tmp_path / "u.h5")
    assert s.wafers == 300 and s.labeled == 0
