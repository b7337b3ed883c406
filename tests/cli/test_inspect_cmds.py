"""``wafertk detect`` / ``classify`` on the shipped models (in-process) and one-line errors."""

import csv
import shutil

import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.inspect import CLASSIFY_COLUMNS, DEFAULT_CLASSIFIER, DEFAULT_DETECTOR

pytestmark = pytest.mark.tf

if not (DEFAULT_DETECTOR / "manifest.json").is_file():
    pytest.skip("shipped models not present", allow_module_level=True)


@pytest.fixture(scope="module")
def wafers(tmp_path_factory):
    ws = make_wafers(40, random_state=5)
    path = tmp_path_factory.mktemp("in") / "wafers.h5"
    write_wafers(ws, path)
    return ws, path


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_classify_two_phase_cli(wafers, tmp_path):
    ws, path = wafers
    r = CliRunner().invoke(cli, ["classify", "--two-phase", str(path), "-o", str(tmp_path / "o"),
                                 "--batch-size", "16"])
    assert r.exit_code == 0, r.output
    got = rows(tmp_path / "o" / "predictions.csv")
    assert [g["wafer_id"] for g in got] == list(ws.wafer_id)
    assert list(got[0]) == CLASSIFY_COLUMNS + ["label"]
    assert "40 wafers" in r.output


def test_classify_explicit_models_and_detect_cli(wafers, tmp_path):
    ws, path = wafers
    r = CliRunner().invoke(cli, ["classify", "--single-phase", str(path), "-o",
                                 str(tmp_path / "c"), "--classifier", str(DEFAULT_CLASSIFIER),
                                 "--no-report"])
    assert r.exit_code == 0, r.output
    assert all(g["p_defect"] == "" for g in rows(tmp_path / "c" / "predictions.csv"))
    r = CliRunner().invoke(cli, ["classify", str(path), "-o", str(tmp_path / "c"),
                                 "--classifier", str(DEFAULT_CLASSIFIER), "--no-report"])
    assert r.exit_code == 0, r.output
    # the default is two-phase: phase 1 runs, and passed wafers are "none"
    got = rows(tmp_path / "c" / "predictions.csv")
    assert all(g["p_defect"] != "" for g in got)
    assert all((g["pattern"] == "none") == (g["defective"] == "0") for g in got)
    r = CliRunner().invoke(cli, ["detect", str(path), "-o", str(tmp_path / "d"),
                                 "--model", str(DEFAULT_DETECTOR)])
    assert r.exit_code == 0, r.output
    got = rows(tmp_path / "d" / "predictions.csv")
    assert len(got) == len(ws) and "pattern" not in got[0]
    assert (tmp_path / "d" / "report.html").is_file()


def test_cli_bad_inputs_one_line_exit_2(wafers, tmp_path):
    _, path = wafers
    corrupt = tmp_path / "corrupt"
    shutil.copytree(DEFAULT_DETECTOR, corrupt)  # an ensemble: its CNN member is corrupt
    (corrupt / "members" / "0-cnn-detector" / "model.keras").write_bytes(b"PK\x03\x04garbage")
    cases = [
        ["classify", "--two-phase", str(path), "-o", str(tmp_path / "o"),
         "--detector", str(tmp_path / "missing")],
        ["classify", "--two-phase", str(path), "-o", str(tmp_path / "o"),
         "--detector", str(DEFAULT_CLASSIFIER)],
        ["detect", str(path), "-o", str(tmp_path / "o"), "--model", str(corrupt)],
        ["detect", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "o")],
        ["classify", str(path), "-o", str(tmp_path / "o"), "--classifier",
         str(DEFAULT_DETECTOR)],
        ["detect", str(path), "-o", str(tmp_path / "o"), "--threshold", "1.5"],
        ["classify", "--two-phase", str(path), "-o", str(tmp_path / "o"), "--review-below",
         "-0.1"],
    ]
    for args in cases:
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("wafertk: error:"), r.output
        assert not (tmp_path / "o").exists()


def test_threshold_and_review_level_override_the_models(wafers, tmp_path):
    ws, path = wafers

    def run(*extra):
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        r = CliRunner().invoke(cli, ["classify", "--two-phase", str(path), "-o", str(out),
                                     "--no-report", *extra])
        assert r.exit_code == 0, r.output
        return rows(out / "predictions.csv")

    default = run()
    p = [float(g["p_defect"]) for g in default]
    levels = sorted(set(p))  # printed with 4 decimals: cut between two printed values
    mid = len(levels) // 2
    cut = (levels[mid - 1] + levels[mid]) / 2 if len(levels) > 1 else 0.5
    assert 0 < cut < 1
    got = run("--threshold", str(cut))
    assert [g["defective"] for g in got] == [str(int(x >= cut)) for x in p]
    assert all((g["pattern"] == "none") == (g["defective"] == "0") for g in got)
    everything = run("--review-below", "1.0")
    assert all(g["review"] == "1" for g in everything if float(g["confidence"]) < 1.0)
    nothing = run("--review-below", "0")
    assert all(g["review"] == "0" for g in nothing)
