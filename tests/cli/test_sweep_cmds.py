"""``wafertk lr-find`` and ``wafertk sweep``: one-line errors before TensorFlow, tiny real runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("CI", None)

#: run the command line in a fresh process; print its exit code and whether TF was imported
_IN_PROCESS = ("import sys\nfrom wafertk.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
               "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")


def _run(*args):
    return subprocess.run([sys.executable, "-c", _IN_PROCESS, *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=120)


def _one_line(r, *needles):
    assert r.stdout.split()[-2:] == ["2", "False"], (r.stdout, r.stderr)  # exit 2, no TF
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two classes of 12 tiny PNGs each (dark vs bright), for train and validation."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for part in ("train", "val"):
        for c, base in (("dark", 40), ("bright", 200)):
            (root / part / c).mkdir(parents=True)
            for i in range(12):
                a = np.clip(base + rng.normal(0, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(root / part / c / f"{i}.png")
    return root


def test_sweep_errors_are_one_line_in_a_real_process(tmp_path, images):
    r = _run("sweep", tmp_path / "missing.yaml", "-o", tmp_path / "out")
    _one_line(r, "missing.yaml", "no such config file")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"data:\n  train: {images / 'train'}\ngrid:\n  backbone: [vgg16]\n")
    r = _run("sweep", bad, "-o", tmp_path / "out")
    _one_line(r, bad, "grid: unknown key 'backbone'", "backbones")
    assert not (tmp_path / "out").exists()


def test_lr_find_errors_are_one_line_in_a_real_process(tmp_path, images):
    _one_line(_run("lr-find", "-o", tmp_path / "o"), "either DATA")
    _one_line(_run("lr-find", "--images", tmp_path / "nope", "-o", tmp_path / "o"),
              "nope", "no such folder")
    _one_line(_run("lr-find", "--images", images / "train", "--model", "vgg61", "-o",
                   tmp_path / "o"), "--model", "vgg61")
    _one_line(_run("lr-find", "--images", images / "train", "--start-lr", "1", "--end-lr",
                   "0.1", "-o", tmp_path / "o"), "--end-lr")
    assert not (tmp_path / "o").exists()


def test_sweep_dry_run_lists_the_runs(tmp_path, images):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"data:\n  train: {images / 'train'}\ngrid:\n  backbones: [small_convnet, "
                   "vgg16]\n  input_sizes: [32, 48]\nstages: [1, 2]\ntop_k: 1\n")
    r = CliRunner().invoke(cli, ["sweep", str(cfg), "-o", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "stage 1: 4 runs (augmentation off)"
    assert "  runs/1/vgg16_48px_b32_e2" in r.stdout and "stage 2: augmentation on" in r.stdout
    assert not (tmp_path / "o").exists()


@pytest.mark.tf
def test_tiny_real_lr_find_on_wafers(tmp_path):
    from wafertk.data import write_wafers
    from wafertk.data.synthetic import make_wafers

    h5 = tmp_path / "w.h5"
    write_wafers(make_wafers(120, shape_range=(12, 20), n_lots=12, random_state=0), h5)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model:\n  conv_filters: [4]\n  dense_units: 8\n")
    out = tmp_path / "lr"
    r = CliRunner().invoke(cli, ["lr-find", "--task", "detector", str(h5), "-o", str(out),
                                 "--config", str(cfg), "--input-size", "16", "--batch-size",
                                 "16", "--steps", "20", "--end-lr", "10"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {out}: detector CNN, suggested learning rate ")
    summary = json.loads((out / "lr_find.json").read_text())
    assert 1e-5 <= summary["suggested_lr"] <= 10 and summary["task"] == "detector"
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.csv", "lr_find.json",
                                                     "lr_find.png"]


@pytest.mark.tf
def test_tiny_real_lr_find_on_images(tmp_path, images):
    out = tmp_path / "lr"
    r = CliRunner().invoke(cli, ["lr-find", "--images", str(images / "train"), "--model",
                                 "small_convnet", "--input-size", "16", "--batch-size", "8",
                                 "--steps", "12", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "lr_find.json").read_text())
    assert summary["model.name"] == "small_convnet" and summary["steps"] <= 12


@pytest.mark.tf
def test_tiny_real_sweep_and_resume(tmp_path, images):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"data:\n  train: {images / 'train'}\n  validation: {images / 'val'}\n"
                   "grid:\n  backbones: [small_convnet]\n  input_sizes: [16]\n"
                   "  batch_sizes: [8]\n  epochs: [1]\n"
                   "overrides:\n  model.conv_filters: [4]\n  model.dense_units: 8\n")
    out = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep", str(cfg), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "1 runs ranked (1 trained now, 0 done before, 0 failed)" in r.stdout
    run = out / "runs" / "1" / "small_convnet_16px_b8_e1"
    for name in ("model.keras", "report.json", "history.csv", "architecture.txt",
                 "config.yaml"):
        assert (run / name).is_file(), name
    assert "Total params" in (run / "architecture.txt").read_text()
    for name in ("ranking.csv", "ranking.md", "ranking.png", "sweep.json"):
        assert (out / name).is_file(), name
    r = CliRunner().invoke(cli, ["sweep", str(cfg), "-o", str(out), "-q"])
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads((out / "sweep.json").read_text())["complete"]
