"""`wafertk anomaly train|score` in a real process: outputs, one-line errors, exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)
_IN_PROCESS = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
               "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")


def wafertk(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "wafertk.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def fails_before_tensorflow(*args, needles=()):
    """The command exits 2 with one error line holding every needle, without TensorFlow."""
    r = subprocess.run([sys.executable, "-c", _IN_PROCESS, *map(str, args)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert r.stdout.strip().splitlines()[-1] == "2 False", r.stdout


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "wafers.h5"
    ws = make_wafers(72, classes=["none"] * 4 + ["Near-full", "Edge-Ring"], n_lots=8,
                     shape_range=(20, 30), random_state=0)
    write_wafers(ws, path)
    return path


@pytest.mark.tf
def test_train_and_score(labelled, tmp_path):
    run = tmp_path / "run"
    r = wafertk("anomaly", "train", "--model", "vae", labelled, "-o", run, "--epochs", "2",
                "--input-size", "16", "--latent-dim", "4", "--batch-size", "16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {run}: vae on ") and "validation ROC AUC" in r.stdout
    assert r.stderr.count("vae epoch ") == 2  # one line per epoch, nothing else
    assert len(r.stderr.strip().splitlines()) == 2, r.stderr
    for name in ("model.keras", "manifest.json", "config.yaml", "history.csv",
                 "validation.csv", "latent_pca.png", "latent_moments.json",
                 "report/report.json"):
        assert (run / name).is_file(), name
    man = json.loads((run / "manifest.json").read_text())
    assert man["kind"] == "anomaly-detector" and man["extra"]["data"]["normal_class"] == "none"
    assert man["extra"]["config"]["train"]["epochs"] == 2
    hist = pd.read_csv(run / "history.csv")
    assert {"reconstruction", "kl", "grad_norm_kl", "val_auc"} <= set(hist.columns)
    assert "epochs: 2" in (run / "config.yaml").read_text()

    out = tmp_path / "out"  # in-process: one TensorFlow start-up per test is enough
    from click.testing import CliRunner

    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["anomaly", "score", str(run), str(labelled), "-o", str(out)])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert "72 scored" in r.stdout and "ROC AUC" in r.stdout
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:5]) == ["wafer_id", "lot", "wafer_index", "anomaly_score",
                                        "anomalous"]
    assert len(scores) == 72 and (out / "report" / "report.html").is_file()
    bad = scores.label != "none"
    assert scores.anomaly_score[bad].mean() > scores.anomaly_score[~bad].mean()

    # the same wafers through the public function the inspection commands call
    from wafertk.anomaly import score_file

    again = score_file(run, labelled, batch_size=10)
    np.testing.assert_allclose(again.anomaly_score, scores.anomaly_score, rtol=1e-6)


def test_bad_input_is_one_line_before_tensorflow(labelled, tmp_path):
    # a model folder of the wrong kind
    from wafertk.registry import SHIPPED_DIR

    fails_before_tensorflow("anomaly", "score", SHIPPED_DIR / "detector", labelled, "-o",
                            tmp_path / "o", needles=["model of the wrong kind",
                                                     "expected anomaly-detector"])
    # training data without normal samples
    only_bad = tmp_path / "defects.h5"
    write_wafers(make_wafers(12, classes=["Center", "Donut"], n_lots=3, random_state=2),
                 only_bad)
    fails_before_tensorflow("anomaly", "train", only_bad, "-o", tmp_path / "r",
                            needles=[only_bad, "no normal samples"])
    # a single sample
    one = tmp_path / "one.h5"
    write_wafers(make_wafers(1, classes=["none"], random_state=3), one)
    fails_before_tensorflow("anomaly", "train", one, "-o", tmp_path / "r",
                            needles=[one, "1 training sample"])
    # NaN in an image array
    x = np.random.default_rng(0).random((6, 8, 8, 3)).astype(np.float32)
    x[4, 1, 1, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    fails_before_tensorflow("anomaly", "train", tmp_path / "x.npy", "-o", tmp_path / "r",
                            needles=["x.npy", "NaN", "sample 4"])
    # config: unknown key and out-of-range value, naming the file and the keys
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  latent_dims: 3\ntrain:\n  epochs: 0\n"
                   "  pretrain_learning_rate: 0\n")
    fails_before_tensorflow("anomaly", "train", labelled, "-o", tmp_path / "r", "--config",
                            cfg, needles=[cfg, "unknown key 'latent_dims'",
                                          "train.epochs: 0 is not >= 1",
                                          "train.pretrain_learning_rate: 0.0 is not > 0"])
    fails_before_tensorflow("anomaly", "train", labelled, "-o", tmp_path / "r",
                            "--input-size", "30", needles=["--input-size", "divisible"])
    fails_before_tensorflow("anomaly", "train", tmp_path / "missing.h5", "-o", tmp_path / "r",
                            needles=["missing.h5", "no such file"])
    assert not (tmp_path / "r").exists()


def test_features_knn_trim_fraction_flag(labelled, tmp_path):
    """--trim-fraction reaches features-knn (recorded in config and manifest); out of range
    is one line naming the flag, before TensorFlow."""
    run = tmp_path / "knn"
    r = wafertk("anomaly", "train", "--model", "features-knn", labelled, "-o", run,
                "--trim-fraction", "0.1")
    assert r.returncode == 0, r.stderr
    assert "trimmed" in r.stderr and "tensorflow" not in r.stderr.lower(), r.stderr
    assert "trim_fraction: 0.1" in (run / "config.yaml").read_text()
    man = json.loads((run / "manifest.json").read_text())
    assert man["extra"]["params"]["trim_fraction"] == 0.1
    assert man["extra"]["state"]["n_trimmed"] > 0
    fails_before_tensorflow("anomaly", "train", "--model", "features-knn", labelled, "-o",
                            tmp_path / "bad", "--trim-fraction", "0.7",
                            needles=("--trim-fraction",))
    assert not (tmp_path / "bad").exists()
