"""The model-selection sweep with a fast fake trainer: schema, grid, stages, ranking, resume."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from wafertk.errors import ConfigError
from wafertk.sweep import (
    MANAGED_KEYS,
    expand_grid,
    find_report,
    load_sweep_config,
    run_sweep,
    sweep_plan,
)

#: weighted F1 of the fake trainer by backbone (augmentation, fine-tuning and rate add a bit)
A, B, C, D = "small_convnet", "squeezenet", "mobilenet_v2", "vgg16"
S40, S48, Q40 = "small_convnet_40px_b8_e1", "small_convnet_48px_b8_e1", "squeezenet_40px_b8_e1"
SCORES = {A: 0.9, B: 0.8, C: 0.7, D: 0.6}


class FakeTrainer:
    """Writes a run folder atomically like the images trainer; counts its calls."""

    def __init__(self, fail_on: int | None = None, error: type[BaseException] = KeyboardInterrupt):
        self.calls: list[dict] = []
        self.fail_on, self.error = fail_on, error

    def __call__(self, overrides, out_dir, *, data_dir, validation_dir=None, weights=None,
                 config=None):
        self.calls.append({"overrides": dict(overrides), "weights": weights})
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            Path(out_dir).mkdir(parents=True)  # a non-atomic trainer's partial folder
            (Path(out_dir) / "history.csv").write_text("epoch\n")
            raise self.error("interrupted")
        f1 = (SCORES[overrides["model.name"]] - overrides["data.image_size"] / 10000
              + 0.01 * overrides["augment.enabled"] + 0.02 * overrides["fine_tune.enabled"]
              + (0.03 if overrides["train.learning_rate"] != 1e-3 else 0))
        report = {"accuracy": f1 + 0.01, "weighted_f1": f1}
        tmp = Path(str(out_dir) + ".tmp")
        tmp.mkdir(parents=True)
        (tmp / "report.json").write_text(json.dumps(report))
        os.replace(tmp, out_dir)
        return report


class FakeLRResult:
    def __init__(self, lr, descent=True):
        self.lr, self.descent = lr, descent

    def save(self, folder):
        Path(folder, "lr_find.json").write_text(json.dumps(
            {"suggested_lr": self.lr, "min_loss_lr": self.lr * 10, "descent": self.descent}))


def fake_lr_find(overrides, *, data_dir, weights, config, start_lr, end_lr, num_steps,
                 diverge):
    assert start_lr < end_lr
    return FakeLRResult(3e-3)


def test_stage_5_skips_a_run_whose_lr_test_found_no_descent(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs, "stages: [1, 4, 5]\ntop_k: 2\n"))

    def lr_find(overrides, **kwargs):
        return FakeLRResult(3e-3, descent=overrides["data.image_size"] == 40)

    fake = FakeTrainer()
    res = run_sweep(cfg, tmp_path / "out", train_fn=fake, lr_find_fn=lr_find)
    assert res.lr_found == {S40: 3e-3}
    assert len(fake.calls) == 8 + 1 and fake.calls[-1]["overrides"]["data.image_size"] == 40
    state = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert state["runs"][f"4/{S48}"]["descent"] is False


@pytest.fixture
def image_dirs(tmp_path):
    for part in ("train", "val"):
        for c in ("x", "y"):
            (tmp_path / "imgs" / part / c).mkdir(parents=True)
    return tmp_path / "imgs"


GRID = ("grid:\n  backbones: [small_convnet, squeezenet, mobilenet_v2, vgg16]\n"
        "  input_sizes: [40, 48]\n  batch_sizes: [8]\n  epochs: [1]\n")


def write_cfg(tmp_path, image_dirs, extra=""):
    """The 4 x 2 test sweep; ``extra`` starting with ``grid:`` replaces the grid."""
    p = tmp_path / "sweep.yaml"
    grid = "" if extra.startswith("grid:") else GRID
    p.write_text(f"data:\n  train: {image_dirs / 'train'}\n  validation: {image_dirs / 'val'}\n"
                 + grid + extra)
    return p


def test_grid_expansion(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs))
    runs = expand_grid(cfg)
    assert len(runs) == 8
    assert runs[0].run_id == S40 and runs[0].key == f"1/{S40}"
    assert {r.overrides["augment.enabled"] for r in runs} == {False}
    assert all(set(MANAGED_KEYS) - {"fine_tune.learning_rate", "fine_tune.from_layer"}
               <= set(r.overrides) for r in runs)
    assert sweep_plan(cfg)[0] == "stage 1: 8 runs (augmentation off)"


@pytest.mark.parametrize("extra, needles", [
    ("bogus: 1\n", ["unknown key 'bogus'"]),
    ("top_k: 0\n", ["top_k", "0 is not >= 1"]),
    ("stages: [1, 5]\n", ["stages", "add 4"]),
    ("stages: [2, 3]\n", ["stages", "stage 1"]),
    ("stages: [1, 6]\n", ["stages", "6 is not in [1, 5]"]),
    ("lr_find:\n  start_lr: 1.0\n  end_lr: 0.1\n", ["lr_find.end_lr"]),
    ("overrides:\n  model.name: x\n", ["overrides.model.name", "set by the sweep"]),
    ("weights:\n  z: /nonexistent.h5\n", ["weights.z", "not one of grid.backbones"]),
    ("weights:\n  vgg16: /nonexistent.h5\n", ["weights.vgg16", "no such file"]),
    ("grid:\n  backbones: [vgg61]\n", ["unknown backbone 'vgg61'", "did you mean"]),
    ("grid:\n  backbones: [squeezenet]\n  input_sizes: [32]\n", ["32 is too small for squeezenet"]),
    ("overrides:\n  data.max_per_class: 0\n", ["overrides.data.max_per_class", "0 is not >= 1"]),
    ("overrides:\n  data.bogus: 1\n", ["unknown key 'data.bogus'"]),
    ("overrides:\n  train.lr_schedule: cosine\n  train.warmup_epochs: 1\n",
     ["grid.epochs: [1]", "train.warmup_epochs (1)"]),
])
def test_config_errors_name_the_file_and_key(tmp_path, image_dirs, extra, needles):
    path = write_cfg(tmp_path, image_dirs, extra)
    with pytest.raises(ConfigError) as exc:
        load_sweep_config(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)), msg
    for n in needles:
        assert n in msg, msg


def test_grid_typo_is_reported_with_a_suggestion(tmp_path, image_dirs):
    path = write_cfg(tmp_path, image_dirs).read_text().replace("input_sizes", "input_size")
    (tmp_path / "typo.yaml").write_text(path)
    with pytest.raises(ConfigError, match=r"grid: unknown key 'input_size'.*input_sizes"):
        load_sweep_config(tmp_path / "typo.yaml")


def test_missing_data_folder(tmp_path, image_dirs):
    path = tmp_path / "s.yaml"
    path.write_text(f"data:\n  train: {tmp_path / 'nope'}\n")
    with pytest.raises(ConfigError, match=r"data.train: .*nope: no such folder"):
        load_sweep_config(path)


def test_plain_sweep_ranks_every_run(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs))
    fake = FakeTrainer()
    out = tmp_path / "out"
    res = run_sweep(cfg, out, train_fn=fake)
    assert res.trained == 8 and res.skipped == 0 and res.failed == 0
    assert [r["run_id"] for r in res.ranking][:2] == [S40, S48]
    f1 = [r["weighted_f1"] for r in res.ranking]
    assert f1 == sorted(f1, reverse=True)
    rows = list(csv.DictReader(open(out / "ranking.csv")))
    assert len(rows) == 8 and rows[0]["rank"] == "1" and rows[0]["folder"] == f"runs/1/{S40}"
    md = (out / "ranking.md").read_text()
    assert md.startswith("| rank | stage | run_id") and md.count("\n") == 10
    assert (out / "ranking.png").stat().st_size > 1000
    state = json.loads((out / "sweep.json").read_text())
    assert state["complete"] and state["best"]["run_id"] == "small_convnet_40px_b8_e1"
    assert fake.calls[0]["overrides"]["data.image_size"] == 40
    assert (out / "config.yaml").is_file()


def test_all_stages(tmp_path, image_dirs):
    extra = "stages: [1, 2, 3, 4, 5]\ntop_k: 3\nfine_tune:\n  learning_rate: 1.0e-5\n"
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs, extra))
    fake = FakeTrainer()
    out = tmp_path / "out"
    res = run_sweep(cfg, out, train_fn=fake, lr_find_fn=fake_lr_find)
    # 8 (grid) + 3 (augment) + 3 (fine-tune) + 3 (retrain); stage 4 is not training
    assert len(fake.calls) == 17
    stage2 = [c["overrides"] for c in fake.calls[8:11]]
    assert all(o["augment.enabled"] and not o["fine_tune.enabled"] for o in stage2)
    assert [o["model.name"] for o in stage2] == [A, A, B]
    stage3 = [c["overrides"] for c in fake.calls[11:14]]
    assert all(o["fine_tune.enabled"] and o["fine_tune.learning_rate"] == 1e-5
               and o["augment.enabled"] for o in stage3)
    stage5 = [c["overrides"] for c in fake.calls[14:]]
    assert all(o["train.learning_rate"] == 3e-3 for o in stage5)
    assert res.lr_found == {S40: 3e-3, S48: 3e-3, Q40: 3e-3}
    assert (out / "runs" / "4" / S40 / "lr_find.json").is_file()
    assert res.ranking[0]["stage"] == 5 and len(res.ranking) == 17
    state = json.loads((out / "sweep.json").read_text())
    assert state["selected"]["2"] == [f"1/{S40}", f"1/{S48}", f"1/{Q40}"]
    assert state["runs"][f"5/{S40}"]["parent"] == f"3/{S40}"


def test_resume_after_an_interrupted_run(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs, "stages: [1, 2]\ntop_k: 2\n"))
    out = tmp_path / "out"
    first = FakeTrainer(fail_on=4)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, out, train_fn=first)
    partial = out / "runs" / "1" / "squeezenet_48px_b8_e1"
    assert partial.is_dir() and find_report(partial) is None
    state = json.loads((out / "sweep.json").read_text())
    assert not state["complete"] and len(state["runs"]) == 3
    second = FakeTrainer()
    res = run_sweep(cfg, out, train_fn=second)
    # the 3 complete runs are skipped; the partial one is discarded and run again
    assert [c["overrides"]["model.name"] for c in second.calls[:5]] == [B, C, C, D, D]
    assert res.skipped == 3 and res.trained == 5 + 2
    assert len(res.ranking) == 10
    # a third run of the same sweep trains nothing
    third = FakeTrainer()
    res = run_sweep(cfg, out, train_fn=third)
    assert third.calls == [] and res.skipped == 10


def test_resume_refuses_a_changed_run(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs))
    out = tmp_path / "out"
    run_sweep(cfg, out, train_fn=FakeTrainer())
    cfg.grid.learning_rate = 0.01
    with pytest.raises(ConfigError, match="trained with other settings"):
        run_sweep(cfg, out, train_fn=FakeTrainer())


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, image_dirs):
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs))
    out = tmp_path / "out"
    res = run_sweep(cfg, out, train_fn=FakeTrainer(fail_on=2, error=RuntimeError))
    assert res.failed == 1 and len(res.ranking) == 7
    state = json.loads((out / "sweep.json").read_text())
    assert state["runs"]["1/small_convnet_48px_b8_e1"]["status"] == "failed"
    # resumed: only the failed run is trained again
    again = FakeTrainer()
    res = run_sweep(cfg, out, train_fn=again)
    assert len(again.calls) == 1 and len(res.ranking) == 8


def test_weights_go_to_their_backbone(tmp_path, image_dirs):
    w = tmp_path / "w.h5"
    w.write_bytes(b"x")
    cfg = load_sweep_config(write_cfg(tmp_path, image_dirs, f"weights:\n  squeezenet: {w}\n"))
    fake = FakeTrainer()
    run_sweep(cfg, tmp_path / "out", train_fn=fake)
    got = {c["overrides"]["model.name"]: c["weights"] for c in fake.calls}
    assert got == {A: None, B: str(w), C: None, D: None}


def test_packaged_example_config_loads():
    from wafertk.config import load_config, resolve_config
    from wafertk.sweep import SweepConfig

    cfg = load_config(SweepConfig, resolve_config("sweep"))  # paths not checked here
    assert len(cfg.grid.backbones) >= 4
    assert np.prod([len(cfg.grid.input_sizes), len(cfg.grid.batch_sizes),
                    len(cfg.grid.epochs)]) >= 1
