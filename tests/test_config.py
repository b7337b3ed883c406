from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from wafertk.config import load_config, save_config
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
