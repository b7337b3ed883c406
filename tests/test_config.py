from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from wafertk.config import in_range, load_config, save_config
from wafertk.errors import ConfigError


@dataclass
class Inner:
    filters: tuple[int, ...] = (32, 64)
    dropout: float = 0.2


@dataclass
class Cfg:
    epochs: int = 10
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int | None = None
    model: Inner = field(default_factory=Inner)


def test_defaults_file_and_overrides(tmp_path):
    assert load_config(Cfg) == Cfg()
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 3\nmodel:\n  filters: [8, 16, 32]\n")
    cfg = load_config(Cfg, p, {"epochs": None, "model.dropout": 0.5, "optimizer": "sgd"})
    assert cfg.epochs == 3 and cfg.model.filters == (8, 16, 32)
    assert cfg.model.dropout == 0.5 and cfg.optimizer == "sgd"


@pytest.mark.parametrize(
    "text, match",
    [
        ("epoch: 3\n", "unknown key 'epoch' \\(did you mean 'epochs'\\?\\)"),
        ("model:\n  dropot: 0.1\n", "unknown key 'dropot'"),
        ("epochs: three\n", "expected an integer"),
        ("optimizer: rmsprop\n", "not one of"),
        ("- 1\n", "mapping at the top level"),
        ("epochs: [\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(Cfg, p)


def test_unknown_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'model.nope'"):
        load_config(Cfg, None, {"model.nope": 1})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(Cfg, tmp_path / "missing.yaml")


def test_save_resolved_config_round_trips(tmp_path):
    cfg = Cfg(epochs=7, model=Inner(filters=(4,)))
    p = save_config(cfg, tmp_path / "out" / "config.yaml")
    assert yaml.safe_load(p.read_text())["model"]["filters"] == [4]
    assert load_config(Cfg, p) == cfg


@dataclass
class Ranged:
    rate: float = field(default=0.1, metadata={"check": in_range(0, lo_open=True)})
    frac: float = field(default=0.5, metadata={"check": in_range(0, 1, lo_open=True,
                                                                 hi_open=True)})
    sizes: list[int] = field(default_factory=lambda: [1], metadata={"check": in_range(1)})
    model: Inner = field(default_factory=Inner)


def test_every_bad_value_is_reported_at_once(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("rate: -1\nfrac: 1\nsizes: [2, 0]\nmodel:\n  dropot: 1\nnope: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(Ranged, p)
    msg = str(err.value)
    assert msg == (f"{p}: unknown key 'nope'; rate: -1.0 is not > 0; frac: 1.0 is not in "
                   "(0, 1); sizes: 0 is not >= 1; model: unknown key 'dropot' "
                   "(did you mean 'dropout'?)")
    assert "\n" not in msg


def test_overrides_are_checked_and_named_by_their_flag(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("frac: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(Ranged, p, {"rate": 0.0, "frac": None}, labels={"rate": "--rate"})
    assert str(err.value) == f"{p}: frac: 2.0 is not in (0, 1); --rate: 0.0 is not > 0"
    with pytest.raises(ConfigError, match="^override rate: 0.0 is not > 0$"):
        load_config(Ranged, None, {"rate": 0})


def test_config_file_errors_name_the_file(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"epochs: 3 # caf\xe9\n")
    with pytest.raises(ConfigError, match=f"^{p}: not a UTF-8 text file"):
        load_config(Cfg, p)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(Cfg, tmp_path)


def test_cnn_config_values_checked():
    from wafertk.training.config import CnnTrainConfig, min_input_size

    assert min_input_size(3) == 8
    cases = {
        "model.dropout": (2.0, "model.dropout: 2.0 is not in [0, 1)"),
        "model.l2": (-1.0, "model.l2: -1.0 is not >= 0"),
        "model.activation": ("relux", "unknown activation 'relux' (did you mean 'relu'?)"),
        "model.architecture": ("wafer_cnn_detectr", "did you mean 'wafer_cnn_detector'"),
        "model.conv_filters": ([], "needs at least one conv block"),
        "train.epochs": (0, "train.epochs: 0 is not >= 1"),
        "train.learning_rate": (0.0, "train.learning_rate: 0.0 is not > 0"),
        "data.validation_fraction": (0.0, "(0, 1)"),
        "decision.target_recall": (1.2, "decision.target_recall: 1.2 is not in (0, 1]"),
        "decision.review_below": (-0.1, "decision.review_below: -0.1 is not in [0, 1]"),
        "data.input_size": (7, "data.input_size: 7 is too small for 3 pooling blocks"),
    }
    for key, (value, needle) in cases.items():
        with pytest.raises(ConfigError) as err:
            load_config(CnnTrainConfig, None, {key: value}, labels={key: key})
        assert needle in str(err.value), (key, str(err.value))
    cfg = load_config(CnnTrainConfig, None, {"data.input_size": 4, "model.conv_filters": [4, 4]})
    assert cfg.data.input_size == 4 and cfg.decision.target_recall == 0.97
    assert load_config(CnnTrainConfig, None, {"decision.target_recall": 1.0})


def test_xgboost_config_values_checked():
    from wafertk.baseline.train import XGBoostTrainConfig

    with pytest.raises(ConfigError) as err:
        load_config(XGBoostTrainConfig, None, {"val_fraction": 1.0, "subsample": 0.0,
                                               "n_estimators": 0})
    for needle in ("val_fraction: 1.0 is not in (0, 1)", "subsample: 0.0 is not in (0, 1]",
                   "n_estimators: 0 is not >= 1"):
        assert needle in str(err.value)


def test_packaged_configs_by_name():
    from wafertk.baseline.train import XGBoostTrainConfig
    from wafertk.config import packaged_configs, resolve_config
    from wafertk.errors import UnknownNameError
    from wafertk.training.config import CnnTrainConfig

    known = packaged_configs()
    assert set(known) == {"detector", "classifier", "classifier_transfer", "xgboost",
                          "xgboost_detector", "anomaly", "images", "images_cifar10",
                          "images_catsdogs", "sweep"}
    assert resolve_config("detector") == known["detector"]
    assert resolve_config("runs/detector.yaml").name == "detector.yaml"  # a path stays a path
    with pytest.raises(UnknownNameError, match="did you mean 'detector'"):
        resolve_config("detektor")
    det = load_config(CnnTrainConfig, "detector")
    assert det.model.architecture == "wafer_cnn_detector" and det.model.conv_filters == [8, 16, 32]
    assert load_config(CnnTrainConfig, "classifier").model.architecture == "wafer_cnn_classifier"
    assert load_config(XGBoostTrainConfig, "xgboost").classes == "defects"
    assert load_config(XGBoostTrainConfig, "xgboost_detector").classes == "binary"
    transfer = load_config(CnnTrainConfig, "classifier_transfer")
    assert transfer.model.architecture == "wafer_transfer_classifier"
    assert transfer.model.backbone_name == "squeezenet" and transfer.model.weights is None


def test_packaged_configs_are_the_benchmark_recipes():
    """benchmarks/train_shipped.sh trains with the packaged configs (same files)."""
    from pathlib import Path

    from wafertk.config import packaged_configs

    root = Path(__file__).resolve().parents[1]
    script = (root / "benchmarks" / "train_shipped.sh").read_text()
    assert "--config" not in script or "--config \"$task\"" in script
    assert "--config xgboost_detector" in script  # the XGBoost member of the shipped detector
    for name, path in packaged_configs().items():
        assert path.read_bytes() == (root / "configs" / f"{name}.yaml").read_bytes()


def test_wheel_ships_the_configs(tmp_path):
    """A wheel built from the tree contains configs/*.yaml as wafertk/configs/*.yaml."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from importlib import metadata
    from pathlib import Path

    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except metadata.PackageNotFoundError:
        major = 0
    if major < 77:
        pytest.skip("needs setuptools >= 77 (the [test] extra installs it)")
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("wafertk", "cli", "configs"):
        shutil.copytree(root / name, src / name, ignore=ignore)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("wafertk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for cfg in (root / "configs").glob("*.yaml"):
        assert f"wafertk/configs/{cfg.name}" in names
    assert "wafertk/cli/main.py" in names and not any(n.startswith("cli/") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    for dep in (b"scipy", b"pillow", b"scikit-learn", b"matplotlib"):
        assert b"Requires-Dist: " + dep in meta


@pytest.mark.parametrize("text, needles", [
    ("model:\n  dropout: .nan\ntrain:\n  learning_rate: .inf\n",
     ["model.dropout: nan is not in [0, 1)", "train.learning_rate: inf is not > 0"]),
    ("decision:\n  target_recall: .nan\ndata:\n  validation_fraction: .nan\n",
     ["decision.target_recall: nan", "data.validation_fraction: nan"]),
    ("train: 5\n", ["train: expected a mapping, got 5"]),
    ("train:\n  epochs: 3\n  epochs: 4\n", ["key 'epochs' is given twice"]),
])
def test_non_finite_values_bad_sections_and_duplicate_keys(tmp_path, text, needles):
    from wafertk.config import load_config
    from wafertk.errors import ConfigError
    from wafertk.training.config import CnnTrainConfig

    path = tmp_path / "c.yaml"
    path.write_text(text)
    for overrides in (None, {"train.epochs": 1}):  # an override must not hide the section
        with pytest.raises(ConfigError) as exc:
            load_config(CnnTrainConfig, path, overrides)
        msg = str(exc.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg
        for n in needles:
            assert n in msg, msg


def test_xgboost_config_checks_feature_sets(tmp_path):
    from wafertk.baseline.train import XGBoostTrainConfig
    from wafertk.config import load_config
    from wafertk.errors import ConfigError

    path = tmp_path / "x.yaml"
    path.write_text("feature_sets: [filters, densty]\n")
    with pytest.raises(ConfigError, match=r"x.yaml: feature_sets: unknown feature set 'densty' "
                                          r"\(did you mean 'density'\?\)"):
        load_config(XGBoostTrainConfig, path)
    path.write_text("feature_sets: [density]\nfeature_params: {gabor: {orientations: 4}}\n")
    with pytest.raises(ConfigError, match="parameters for 'gabor', which is not in"):
        load_config(XGBoostTrainConfig, path)


def test_packaged_cifar10_recipe_is_the_measured_run():
    """configs/images_cifar10.yaml resolves to the config of the run quoted in docs/images.md
    (benchmarks/cifar10.py --epochs 20 --shift-mode pixels)."""
    import dataclasses
    import json
    from pathlib import Path

    from wafertk.images.config import ImageRunConfig

    root = Path(__file__).resolve().parents[1]
    measured = json.loads((root / "benchmarks" / "results" / "cifar10_pixels_e20.json")
                          .read_text())
    cfg = load_config(ImageRunConfig, "images_cifar10")
    assert dataclasses.asdict(cfg) == _with_keys_added_since(measured["resolved_config"])


def test_packaged_catsdogs_recipe_is_the_measured_run():
    """configs/images_catsdogs.yaml resolves to the config of the convnet run quoted in
    docs/images.md (benchmarks/images_catsdogs.py --parts convnet)."""
    import dataclasses
    import json
    from pathlib import Path

    from wafertk.images.config import ImageRunConfig

    root = Path(__file__).resolve().parents[1]
    measured = json.loads((root / "benchmarks" / "results" / "images_catsdogs.json").read_text())
    run = measured["parts"]["convnet"]
    assert run["config"] == "configs/images_catsdogs.yaml"
    cfg = load_config(ImageRunConfig, "images_catsdogs")
    assert dataclasses.asdict(cfg) == _with_keys_added_since(run["resolved_config"])


def _with_keys_added_since(resolved: dict) -> dict:
    """A run's resolved image config with the keys added after it, at the value the run
    used: ``augment.shift_mode`` did not exist before the whole-pixel shifts (runs before
    it shifted with ``RandomTranslation``, i.e. ``interpolate``); ``model.block`` and
    ``model.pooling`` did not exist before the residual separable blocks (runs before them
    built plain blocks and flattened)."""
    out = {k: dict(v) for k, v in resolved.items()}
    out["augment"].setdefault("shift_mode", "interpolate")
    out["model"].setdefault("block", "plain")
    out["model"].setdefault("pooling", "flatten")
    return out
