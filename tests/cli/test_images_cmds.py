"""``wafertk images info|train|evaluate|predict``: outputs, and one-line errors before
TensorFlow in a real process (exit 2, nothing left behind)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)
_IN_PROCESS = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
               "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")


def make_folder(root: Path, classes=("cats", "dogs"), n: int = 6, size: int = 20) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            img = np.clip(rng.normal(60 + 120 * k, 30, (size, size, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def fails_before_tensorflow(*args, needles=()):
    """Exit 2, one ``wafertk: error:`` line holding every needle, TensorFlow never imported."""
    r = subprocess.run([sys.executable, "-c", _IN_PROCESS, *map(str, args)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert r.stdout.strip().splitlines()[-1] == "2 False", r.stdout


def test_bad_input_is_one_line_before_tensorflow(tmp_path):
    good = make_folder(tmp_path / "good", n=2)
    one = make_folder(tmp_path / "one", classes=("cats",), n=2)
    empty = make_folder(tmp_path / "empty", n=1)
    (empty / "dogs" / "0.png").unlink()
    out = tmp_path / "run"
    fails_before_tensorflow("images", "train", tmp_path / "nope", "-o", out,
                            needles=("nope", "no such folder"))
    fails_before_tensorflow("images", "train", one, "-o", out,
                            needles=(one, "1 class sub-folder", "at least two"))
    fails_before_tensorflow("images", "train", empty, "-o", out,
                            needles=("dogs", "holds no readable image"))
    fails_before_tensorflow("images", "train", good, "-o", out, "--epochs", "0",
                            needles=("--epochs: 0 is not >= 1",))
    fails_before_tensorflow("images", "train", good, "-o", out, "--model", "squeezenet",
                            "--weights", tmp_path / "w.h5", needles=("w.h5", "no such file"))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  dropuot: 0.3\n")
    fails_before_tensorflow("images", "train", good, "-o", out, "--config", cfg,
                            needles=("bad.yaml", "unknown key 'dropuot'", "dropout"))
    fails_before_tensorflow("images", "train", good, "-o", out, "--model", "vgg61",
                            needles=("vgg61",))
    fails_before_tensorflow("images", "evaluate", "xgboost", good, "-o", tmp_path / "ev",
                            needles=("wrong kind", "image-classifier"))
    (tmp_path / "notes.txt").write_text("x")
    fails_before_tensorflow("images", "info", good, "--export-npy", tmp_path / "notes.txt",
                            needles=("notes.txt", "not a folder"))
    assert not out.exists() and not (tmp_path / "ev").exists()
    assert not list(tmp_path.glob(".run*"))


def test_info_prints_the_class_balance_and_skips(tmp_path):
    data = make_folder(tmp_path / "d", n=3)
    (data / "cats" / "x.txt").write_text("x")
    r = CliRunner().invoke(cli, ["images", "info", str(data)])
    assert r.exit_code == 0, r.output
    assert "6 images in 2 classes, 1 skipped" in r.stdout
    assert "cats: 3 (50.0%)" in r.stdout


@pytest.mark.tf
def test_train_evaluate_predict(tmp_path):
    data = make_folder(tmp_path / "train")
    val = make_folder(tmp_path / "val", n=3)
    run = tmp_path / "runs" / "convnet"
    r = CliRunner().invoke(cli, ["images", "train", str(data), "--validation", str(val),
                                 "--model", "small_convnet", "--epochs", "1",
                                 "--image-size", "16", "--batch-size", "4", "-o", str(run)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {run}: small_convnet, accuracy ")
    assert "train epoch 1/1" in r.stderr and "cats: 6 (50.0%)" in r.stderr
    report = json.loads((run / "report.json").read_text())
    assert {"accuracy", "weighted_f1"} <= set(report)
    r = CliRunner().invoke(cli, ["images", "evaluate", str(run), str(val), "-o",
                                 str(tmp_path / "ev"), "--tta", "hflip"])
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["n"] == 6 and ev["extra"]["tta"] == "hflip"
    r = CliRunner().invoke(cli, ["images", "evaluate", str(run), str(val), "-o",
                                 str(tmp_path / "ev2"), "--tta", "rot4"])
    assert r.exit_code == 2 and "'rot4' is not one of 'none', 'hflip', 'hflip-shift'" in r.output
    assert not (tmp_path / "ev2").exists()
    # the option's choices (written out: the CLI starts without TensorFlow) are the library's
    from wafertk.images.predict import IMAGE_TTA
    for name in ("evaluate", "predict"):
        opt = next(p for p in cli.commands["images"].commands[name].params if p.name == "tta")
        assert tuple(opt.type.choices) == IMAGE_TTA
    preds = tmp_path / "preds.csv"
    r = CliRunner().invoke(cli, ["images", "predict", str(run), str(val / "cats"),
                                 str(val / "dogs" / "0.png"), "-o", str(preds)])
    assert r.exit_code == 0, r.output
    rows = preds.read_text().splitlines()
    assert rows[0].startswith("file,class,probability") and len(rows) == 5
    assert "4 images" in r.stdout
