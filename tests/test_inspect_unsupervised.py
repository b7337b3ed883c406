"""`wafertk detect --unsupervised RUN`: an anomaly model as phase 1 (issue 11)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers
from wafertk.inspect.model import ANOMALY_COLUMNS

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)
_IN_PROCESS = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
               "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")


@pytest.fixture(scope="module")
def wafers(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "wafers.h5"
    ws = make_wafers(90, classes=["none"] * 4 + ["Near-full", "Edge-Ring"], n_lots=6,
                     shape_range=(20, 30), random_state=1)
    write_wafers(ws, path)
    return path


@pytest.fixture(scope="module")
def run(wafers, tmp_path_factory):
    from wafertk.anomaly import VAEDetector
    from wafertk.data import read_wafers

    ws = read_wafers(wafers)
    normal = ws.take(np.flatnonzero(ws.label_strings() == "none"))
    det = VAEDetector(input_size=16, latent_dim=4, conv_filters=(8, 16), epochs=2,
                      batch_size=16, random_state=0).fit(normal)
    return det.save(tmp_path_factory.mktemp("runs") / "vae")


@pytest.mark.tf
def test_detect_unsupervised_rows_report_and_scale_out(wafers, run, tmp_path):
    from wafertk.anomaly import score_file
    from wafertk.distributed import inspect_files
    from wafertk.inspect import detect

    res = detect(wafers, tmp_path / "out", unsupervised=run, batch_size=32)
    assert res.mode == "anomaly" and res.n_wafers == 90 and res.n_review is None
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(pred.columns) == ANOMALY_COLUMNS + ["label"]
    ref = score_file(run, wafers)
    np.testing.assert_allclose(pred.anomaly_score, ref.anomaly_score, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pred.defective, ref.anomalous)
    assert res.n_defective == int(pred.defective.sum())
    # the report lists the most anomalous wafers first, highest score on top
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Most anomalous wafers" in html and 'href="#anomalous"' in html
    section = html[html.index('<section id="anomalous">'):]
    top = pred.sort_values("anomaly_score", ascending=False, kind="stable")
    top = top.wafer_id.astype(str).tolist()
    pos = [section.index(f"<td>{w}</td>") for w in top[:3]]
    assert pos == sorted(pos)

    # a threshold on the score, not a probability: every wafer above 0 is flagged
    res = detect(wafers, tmp_path / "t", unsupervised=run, threshold=-1e9)
    assert res.n_defective == 90

    # the distributed path (ranges run in this process) writes the same bytes
    inspect_files([wafers], tmp_path / "ranges", mode="anomaly", detector=run,
                  batch_size=32, rows_per_range=32)
    assert (tmp_path / "ranges" / "predictions.csv").read_bytes() == \
        (tmp_path / "out" / "predictions.csv").read_bytes()
    html2 = (tmp_path / "ranges" / "report.html").read_text()
    assert html2[html2.index('<section id="anomalous">'):].split("</section>")[0] == \
        section.split("</section>")[0]


def test_report_builder_merge_keeps_the_top_scores():
    from wafertk.report import BatchReportBuilder

    ws = make_wafers(40, n_lots=2, shape_range=(10, 14), random_state=3)
    s = np.random.default_rng(0).normal(size=40)

    def cols(lo, hi):
        return {"wafer_id": ws.wafer_id[lo:hi].astype(str), "lot": ws.lot[lo:hi].astype(str),
                "wafer_index": ws.wafer_index[lo:hi], "anomaly_score": s[lo:hi],
                "defective": (s[lo:hi] > 1).astype(int)}

    one = BatchReportBuilder("anomaly", max_review=5)
    one.add(ws, cols(0, 40))
    a, b = BatchReportBuilder("anomaly", max_review=5), BatchReportBuilder("anomaly",
                                                                           max_review=5)
    a.add(ws.slice(0, 17), cols(0, 17))
    b.add(ws.slice(17, 40), cols(17, 40))
    a.merge(b)
    best = sorted(s, reverse=True)[:5]
    for builder in (one, a):
        got = sorted((t[0] for t in builder._anomalous), reverse=True)
        np.testing.assert_allclose(got, best)
    assert one.mode == "detect" and a.anomaly


def _fails_before_tensorflow(*args, needles=()):
    r = subprocess.run([sys.executable, "-c", _IN_PROCESS, *map(str, args)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert r.stdout.strip().splitlines()[-1] == "2 False", r.stdout


def test_cli_bad_unsupervised_is_one_line_before_tensorflow(wafers, tmp_path):
    from wafertk.registry import SHIPPED_DIR

    out = tmp_path / "out"
    # a supervised detector given as the anomaly model: wrong kind
    _fails_before_tensorflow("detect", "--unsupervised", SHIPPED_DIR / "detector", wafers,
                             "-o", out, needles=("wrong kind", "anomaly-detector"))
    _fails_before_tensorflow("detect", "--unsupervised", tmp_path / "nope", wafers, "-o", out,
                             needles=("nope",))
    _fails_before_tensorflow("detect", "--unsupervised", tmp_path / "nope", "--model",
                             "detector", wafers, "-o", out, needles=("exclude each other",))
    assert not out.exists()


@pytest.mark.tf
def test_cli_detect_unsupervised(wafers, run, tmp_path):
    from click.testing import CliRunner

    from wafertk.cli.main import cli

    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["detect", "--unsupervised", str(run), str(wafers), "-o",
                                 str(out), "-q"])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 90 and "anomaly_score" in pred.columns
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "report.html",
                                                     "run.json"]
