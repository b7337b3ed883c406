"""``wafertk import`` and ``wafertk info``: success output and one-line errors on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import WaferSet, write_wafers
from wafertk.errors import WaferFileError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_H5 = ROOT / "data" / "wafers.h5"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def small_h5(tmp_path):
    rng = np.random.default_rng(0)
    ws = WaferSet.from_maps([rng.integers(0, 3, (6, 7)) for _ in range(5)],
                            lot=["a", "a", "b", "b", "b"], labels=["none"] * 5)
    return write_wafers(ws, tmp_path / "ok.h5")


def test_info_text_and_json():
    r = run("info", SAMPLE_H5)
    assert r.exit_code == 0, r.output
    assert "wafers    975 (975 labeled)" in r.stdout and "Near-full" in r.stdout
    r = run("info", SAMPLE_H5, "--json")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["wafers"] == 975 and info["lots"]["count"] == 40


def test_import_commands(tmp_path, shared_data):
    out = tmp_path / "w.h5"
    r = run("import", "wm811k", shared_data / "wm811k" / "LSWMD_sample.pkl", "-o", out,
            "--labeled-only", "--partition", "Training")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"wrote 1254 wafers (1254 labeled, 1025 lots) to {out}"
    assert r.stderr == ""
    r = run("import", "wm811k", shared_data / "wm811k" / "LSWMD_sample.pkl", "-o", out, "-q")
    assert r.exit_code == 0 and r.output == ""
    assert json.loads(run("info", out, "--json").stdout)["wafers"] == 1854


def test_import_npz_command(tmp_path, shared_data):
    with np.load(shared_data / "wm811k" / "wm811k_train.npz") as z:
        off = z["offsets"][:51]
        d = {k: z[k][:50] for k in ("shapes", "label", "orig_index", "lotName", "waferIndex",
                                     "dieSize")}
        d.update(offsets=off, maps_flat=z["maps_flat"][: off[-1]], class_names=z["class_names"])
    src = tmp_path / "p.npz"
    np.savez(src, **d)
    r = run("import", "npz", src, "-o", tmp_path / "w.h5")
    assert r.exit_code == 0 and r.stdout.startswith("wrote 50 wafers (50 labeled")


# ---------------------------------------------------------------------- bad wafers.h5 -> info
def _bad_h5(tmp_path, small_h5, case):
    p = tmp_path / f"{case.replace(' ', '_')}.h5"
    if case == "missing":
        return p, "no such file"
    if case == "not hdf5":
        p.write_text("wafer,label\n1,none\n")
        return p, "not an HDF5 file"
    if case == "truncated":
        big = write_wafers(WaferSet.from_maps(
            np.random.default_rng(1).integers(0, 3, (400, 40, 40))), tmp_path / "big.h5",
            compression=None)
        data = big.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p, "truncated"
    if case == "empty":
        write_wafers(WaferSet.from_maps([]), p)
        return p, "contains no wafers"
    with h5py.File(p, "w") as h5:
        h5.attrs["schema"] = "wafertk/1"
        if case == "no maps":
            h5["lot"] = np.array([b"a", b"b"])
            return p, "no wafer maps"
        if case == "float maps":
            h5["maps"] = np.ones((2, 4, 4))
            return p, "dtype float64"
        if case == "values":
            h5["maps"] = np.full((2, 4, 4), 5, np.uint8)
            return p, "outside {0, 1, 2}"
        if case == "short lot":
            h5["maps"] = np.ones((3, 4, 4), np.uint8)
            h5["lot"] = np.array([b"a", b"b"])
            return p, "mismatched lengths"
    raise AssertionError(case)


BAD_H5 = ["missing", "not hdf5", "truncated", "empty", "no maps", "float maps", "values",
          "short lot"]


@pytest.mark.parametrize("case", BAD_H5)
def test_info_bad_files(tmp_path, small_h5, case, one_line_error):
    path, problem = _bad_h5(tmp_path, small_h5, case)
    one_line_error(run("info", path), path, problem)


# ---------------------------------------------------------------------- bad import inputs
def _listing(d):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize(
    "kind, content, problem",
    [
        ("wm811k", None, "no such file"),
        ("wm811k", b"lot,map\n", "not a legacy pickle"),
        ("wm811k", "truncated", "truncated"),
        ("wm811k", "evil", "refusing to load global"),
        ("npz", None, "no such file"),
        ("npz", b"PK not really\n", "not an .npz archive"),
        ("npz", "missing key", "missing key(s) offsets, shapes"),
    ],
)
def test_import_bad_input(tmp_path, shared_data, kind, content, problem, one_line_error):
    src = tmp_path / "in" / ("LSWMD.pkl" if kind == "wm811k" else "pack.npz")
    src.parent.mkdir()
    if content == "truncated":
        data = (shared_data / "wm811k" / "LSWMD_sample.pkl").read_bytes()
        src.write_bytes(data[: len(data) // 3])
    elif content == "evil":
        src.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.")
    elif content == "missing key":
        np.savez(src, maps_flat=np.zeros(4, np.uint8))
    elif content is not None:
        src.write_bytes(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run("import", kind, src, "-o", out_dir / "w.h5")
    one_line_error(r, src, problem)
    assert _listing(out_dir) == []  # neither the output nor a temporary file


def test_unknown_partition(tmp_path, shared_data):
    out = tmp_path / "w.h5"
    r = run("import", "wm811k", shared_data / "wm811k" / "LSWMD_sample.pkl", "-o", out,
            "--partition", "train")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "wafertk: error: unknown partition 'train' (expected Training, Test or all)"]
    assert _listing(tmp_path) == []


def test_verbose_raises(tmp_path):
    missing = tmp_path / "nope.h5"
    r = CliRunner().invoke(cli, ["--verbose", "info", str(missing)])
    assert isinstance(r.exception, WaferFileError)


def test_verbose_prints_traceback(tmp_path):
    missing = tmp_path / "nope.h5"
    p = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "--verbose", "info",
                        str(missing)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode != 0 and p.returncode != 2
    assert "Traceback" in p.stderr and "WaferFileError" in p.stderr


def test_import_output_problems(tmp_path, shared_data, one_line_error):
    src = shared_data / "wm811k" / "LSWMD_sample.pkl"
    folder = tmp_path / "already_a_folder"
    folder.mkdir()
    one_line_error(run("import", "wm811k", src, "-o", folder), folder, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "sub" / "w.h5"  # parent is a file: cannot be created
    r = run("import", "wm811k", src, "-o", out)
    one_line_error(r, out, "cannot write")
