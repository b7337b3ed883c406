"""``wafertk import`` and ``wafertk info``: success output and one-line errors on bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import WaferSet, write_wafers

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
    assert re.fullmatch(rf"wrote {re.escape(str(out))}: 1,254 wafers \(1,254 labeled, 1,025 "
                        r"lots\) in \d+\.\d s", r.stdout.strip()), r.stdout
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
    r = run("import", "npz", src, "--out", tmp_path / "w.h5")
    assert r.exit_code == 0
    assert r.stdout.startswith(f"wrote {tmp_path / 'w.h5'}: 50 wafers (50 labeled")


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
def test_import_bad_input(tmp_path, request, kind, content, problem, one_line_error):
    src = tmp_path / "in" / ("LSWMD.pkl" if kind == "wm811k" else "pack.npz")
    src.parent.mkdir()
    if content == "truncated":  # the only case that needs ../shared
        shared_data = request.getfixturevalue("shared_data")
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


def test_unknown_partition(tmp_path):
    out = tmp_path / "w.h5"  # the option is checked before the (here missing) input
    r = run("import", "wm811k", tmp_path / "LSWMD.pkl", "-o", out, "--partition", "train")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "wafertk: error: unknown partition 'train' (did you mean 'Training'?); expected "
        "Training, Test or all"]
    assert _listing(tmp_path) == []


def test_verbose_shows_the_traceback_exit_2(tmp_path):
    missing = tmp_path / "nope.h5"
    r = CliRunner().invoke(cli, ["--verbose", "info", str(missing)])
    assert r.exit_code == 2 and "Traceback" in r.stderr
    assert r.stderr.splitlines()[-1] == f"wafertk: error: {missing}: no such file"


def test_verbose_prints_traceback(tmp_path):
    missing = tmp_path / "nope.h5"
    p = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "--verbose", "info",
                        str(missing)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2  # --verbose adds the traceback, not another exit code
    assert "Traceback" in p.stderr and "WaferFileError" in p.stderr


def test_import_output_problems(tmp_path, one_line_error):
    src = tmp_path / "LSWMD.pkl"  # never read: the output is checked first
    src.write_bytes(b"\x80\x02")
    folder = tmp_path / "already_a_folder"
    folder.mkdir()
    one_line_error(run("import", "wm811k", src, "-o", folder), folder, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "sub" / "w.h5"  # parent is a file: cannot be created
    r = run("import", "wm811k", src, "-o", out)
    one_line_error(r, blocker, "is a file, cannot create an output inside it")
    one_line_error(run("import", "npz", tmp_path, "-o", tmp_path / "w.h5"), tmp_path,
                   "is a folder, expected a .npz pack")
    assert _listing(tmp_path) == ["LSWMD.pkl", "already_a_folder", "file"]


# --------------------------------------------- bad wafers.h5 in a real process (no click runner)
def _bad_file(tmp_path, case):
    p = tmp_path / f"{case}.h5"
    ws = WaferSet.from_maps([np.ones((3, 4), np.uint8)] * 3, wafer_id=["a", "b", "c"],
                            lot=["L1", "L1", "L2"], labels=["none"] * 3)
    write_wafers(ws, p)
    with h5py.File(p, "a") as h5:
        if case == "group":
            del h5["maps_flat"]
            h5.create_group("maps_flat")
            return p, "'maps_flat' is an HDF5 group, expected a dataset"
        if case == "utf8":
            del h5["lot"]
            h5.create_dataset("lot", data=np.array([b"L1", b"\xffL", b"L2"], dtype=object),
                              dtype=h5py.vlen_dtype(bytes))
            return p, "wafer 1 (id 'b'): 'lot' is not valid UTF-8 text"
        if case == "nan":
            h5["die_size"][1] = np.nan
            return p, "wafer 1 (id 'b'): die_size is nan"
        if case == "dup":
            h5["wafer_id"][2] = "a"
            return p, "duplicate wafer_id 'a' at rows 0, 2"
        if case in ("zero", "nodie"):
            for k in ("maps_flat", "offsets", "shapes"):
                del h5[k]
            h5["maps_flat"] = np.array([1] * 14 + [0] * 2, np.uint8)
            h5["offsets"] = np.array([0, 12, 12, 16]) if case == "zero" else [0, 12, 14, 16]
            h5["shapes"] = [[3, 4], [0, 4], [2, 2]] if case == "zero" else [[3, 4], [1, 2],
                                                                            [1, 2]]
            return p, ("wafer 1 (id 'b'): map is 0x4" if case == "zero"
                       else "wafer 2 (id 'c'): map has no die (every value is 0)")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["group", "utf8", "zero", "nodie", "nan", "dup"])
def test_info_bad_file_in_a_subprocess(tmp_path, case):
    path, problem = _bad_file(tmp_path, case)
    p = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "info", str(path)],
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}, capture_output=True,
                       text=True, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"wafertk: error: {path}: "), lines[0]
    assert problem in lines[0] and "Traceback" not in p.stderr and p.stdout == ""


def test_import_npz_bad_pack_in_a_subprocess(tmp_path):
    src = tmp_path / "pack.npz"
    np.savez(src, maps_flat=np.array([1, 1, 0, 0], np.uint8), offsets=np.array([0, 2, 4]),
             shapes=np.array([[1, 2], [1, 2]]), label=np.array([0, 0], np.int8),
             class_names=np.array(["a", "b"]), orig_index=np.array([10, 11]),
             lotName=np.array(["L", "L"]), waferIndex=np.array([1, 2]),
             dieSize=np.array([2.0, 2.0], np.float32))
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "import", "npz", str(src),
                        "-o", str(out / "w.h5")], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"wafertk: error: {src}: wafer 1 (id 'lswmd-11'): map has no die (every value is 0)"]
    assert _listing(out) == []
