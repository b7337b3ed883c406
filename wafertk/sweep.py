"""Model-selection sweep over image-folder backbones, from a YAML file, optionally in stages.

A sweep trains every combination of ``grid.backbones`` x ``grid.input_sizes`` x
``grid.batch_sizes`` x ``grid.epochs`` with the images trainer
(:func:`wafertk.images.train.run_image_training`, injectable as ``train_fn``) and ranks the
runs by weighted F1 on the validation folder. With ``stages`` it goes on from there:

1. the grid, without augmentation;
2. augmentation on, for the ``top_k`` runs of stage 1;
3. fine-tuning (``fine_tune.*``) of the ``top_k`` runs of the last training stage;
4. an LR range test (:mod:`wafertk.training.lr_find`) of the ``top_k`` runs of the last
   training stage;
5. those runs retrained at the rates stage 4 suggested (a run whose LR test saw no fall of
   the loss at all has no usable rate and is not retrained).

The output folder::

    sweep.json            state: every run's settings, status and figures (rewritten after
                          each run, atomically)
    config.yaml           the resolved sweep config
    runs/<stage>/<run-id>/   one run: what the images trainer writes (model.keras,
                          manifest.json, config.yaml, history.csv, curves, report.json with
                          the confusion matrix) and architecture.txt (``model.summary``);
                          stage 4: lr_find.csv/json/png
    ranking.csv, ranking.md, ranking.png   every finished training run by weighted F1

Resumable: running the same sweep into the same folder skips every run whose folder holds a
complete report (``report.json`` with ``weighted_f1``; stage 4: ``lr_find.json``), discards
a partial folder and runs it again. A run folder trained with other settings than the config
now asks for is an error (use a new folder), so a resumed sweep never mixes two configs.

Nothing here imports TensorFlow; the trainer does when a run starts.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wafertk._atomic import atomic_path, remove_stale
from wafertk.config import from_dict, in_range, load_config, resolve_config, save_config
from wafertk.errors import ConfigError, WafertkError

log = logging.getLogger(__name__)

__all__ = [
    "FineTuneSettings",
    "GridConfig",
    "LRFindSettings",
    "RunSpec",
    "SweepConfig",
    "SweepData",
    "SweepResult",
    "expand_grid",
    "load_sweep_config",
    "rank_runs",
    "run_sweep",
]

#: the images-config keys a sweep sets itself (an ``overrides`` entry may not name them)
MANAGED_KEYS = ("model.name", "data.image_size", "train.batch_size", "train.epochs",
                "train.learning_rate", "augment.enabled", "fine_tune.enabled",
                "fine_tune.learning_rate", "fine_tune.from_layer")
TRAINING_STAGES = (1, 2, 3, 5)
LR_FIND_STAGE = 4
STATE_FILE = "sweep.json"
RANKING_COLUMNS = ("rank", "stage", "run_id", "backbone", "image_size", "batch_size",
                   "epochs", "augment", "fine_tune", "learning_rate", "accuracy",
                   "weighted_f1", "seconds", "folder")

_POSITIVE = {"check": in_range(0, lo_open=True)}
_AT_LEAST_1 = {"check": in_range(1)}


# --------------------------------------------------------------------------- schema
@dataclass
class SweepData:
    """Where the images are (paths relative to the current folder)."""

    #: training image folder, one sub-folder per class (required)
    train: str = ""
    #: validation image folder; none: the trainer's own split of ``train``
    validation: str | None = None
    #: images config the runs start from (packaged name or path; none: ``images``)
    config: str | None = None

    def config_problems(self) -> list[tuple[str, str]]:
        return [] if self.train else [("train", "required (the training image folder)")]


@dataclass
class GridConfig:
    """The stage-1 grid: every combination of the four lists is one run."""

    backbones: list[str] = field(default_factory=lambda: ["small-cnn"])
    input_sizes: list[int] = field(default_factory=lambda: [64],
                                   metadata={"check": in_range(8)})
    batch_sizes: list[int] = field(default_factory=lambda: [32], metadata=_AT_LEAST_1)
    epochs: list[int] = field(default_factory=lambda: [2], metadata=_AT_LEAST_1)
    #: initial learning rate of every run until stage 5
    learning_rate: float = field(default=1e-3, metadata=_POSITIVE)

    def config_problems(self) -> list[tuple[str, str]]:
        bad = []
        for name in ("backbones", "input_sizes", "batch_sizes", "epochs"):
            values = getattr(self, name)
            if not values:
                bad.append((name, "needs at least one value"))
            elif len(set(values)) != len(values):
                bad.append((name, f"{values!r} repeats a value"))
        return bad


@dataclass
class FineTuneSettings:
    """Stage 3: fine-tuning of the backbone after the head (``fine_tune.*`` of the trainer)."""

    learning_rate: float = field(default=1e-5, metadata=_POSITIVE)
    #: first backbone layer unfrozen (a layer name, e.g. fire6_squeeze1x1); none: the
    #: trainer's default
    from_layer: str | None = None


@dataclass
class LRFindSettings:
    """Stage 4: the LR range test (:func:`wafertk.training.lr_find.lr_range_test`)."""

    start_lr: float = field(default=1e-5, metadata=_POSITIVE)
    end_lr: float = field(default=1.0, metadata=_POSITIVE)
    num_steps: int = field(default=100, metadata={"check": in_range(5)})
    diverge: float = field(default=4.0, metadata={"check": in_range(1, lo_open=True)})

    def config_problems(self) -> list[tuple[str, str]]:
        if self.end_lr <= self.start_lr:
            return [("end_lr", f"{self.end_lr!r} is not > start_lr ({self.start_lr!r})")]
        return []


@dataclass
class SweepConfig:
    """A whole sweep: ``data``, ``grid``, ``stages``, ``top_k``, ``fine_tune``, ``lr_find``,
    ``weights`` (backbone -> pretrained weights file) and ``overrides`` (images-config keys
    applied to every run, e.g. ``data.max_per_class: 200``)."""

    data: SweepData = field(default_factory=SweepData)
    grid: GridConfig = field(default_factory=GridConfig)
    #: which of the stages 1-5 run (1 alone: a plain grid sweep)
    stages: list[int] = field(default_factory=lambda: [1],
                              metadata={"check": in_range(1, 5)})
    #: runs carried from one stage to the next (by weighted F1)
    top_k: int = field(default=5, metadata=_AT_LEAST_1)
    fine_tune: FineTuneSettings = field(default_factory=FineTuneSettings)
    lr_find: LRFindSettings = field(default_factory=LRFindSettings)
    weights: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def config_problems(self) -> list[tuple[str, str]]:
        bad = []
        st = list(self.stages)
        if len(set(st)) != len(st) or st != sorted(st):
            bad.append(("stages", f"{st!r}: list each stage once, in order"))
        elif 1 not in st:
            bad.append(("stages", f"{st!r}: stage 1 (the grid) is needed"))
        elif 5 in st and 4 not in st:
            bad.append(("stages", "stage 5 retrains at the rates of stage 4: add 4"))
        for b in self.weights:
            if b not in self.grid.backbones:
                bad.append((f"weights.{b}", "not one of grid.backbones"))
        for k in self.overrides:
            if k in MANAGED_KEYS:
                bad.append((f"overrides.{k}", "set by the sweep itself (grid, stages, "
                            "fine_tune)"))
            elif not isinstance(k, str) or "." not in k:
                bad.append((f"overrides.{k}", "expected a dotted images-config key "
                            "(section.key)"))
        return bad


def _check_paths(cfg: SweepConfig, where: str) -> None:
    problems = []
    for key in ("train", "validation"):
        value = getattr(cfg.data, key)
        if value and not Path(value).is_dir():
            what = "is not a folder" if Path(value).exists() else "no such folder"
            problems.append(f"data.{key}: {value}: {what}")
    for b, w in cfg.weights.items():
        if not Path(w).is_file():
            problems.append(f"weights.{b}: {w}: no such file")
    problems += _image_config_problems(cfg)
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")


def _image_config_problems(cfg: SweepConfig) -> list[str]:
    """Backbone names, input sizes and ``overrides`` checked against the images config."""
    try:
        from wafertk.images.config import MODEL_NAMES, ImageRunConfig, min_input_size
    except ImportError:  # pragma: no cover - the images trainer is not installed
        return []
    from wafertk.errors import did_you_mean

    problems = []
    for b in cfg.grid.backbones:
        if b not in MODEL_NAMES:
            problems.append(f"grid.backbones: unknown backbone {b!r}"
                            f"{did_you_mean(b, MODEL_NAMES)}")
            continue
        for size in cfg.grid.input_sizes:
            if size < min_input_size(b):
                problems.append(f"grid.input_sizes: {size} is too small for {b} (needs >= "
                                f"{min_input_size(b)})")
    if cfg.overrides or cfg.data.config or cfg.fine_tune.from_layer:
        ov = dict(cfg.overrides)
        if cfg.fine_tune.from_layer is not None:
            ov["fine_tune.from_layer"] = cfg.fine_tune.from_layer
        labels = {k: f"overrides.{k}" for k in cfg.overrides}
        labels["fine_tune.from_layer"] = "fine_tune.from_layer"
        try:
            base = load_config(ImageRunConfig, cfg.data.config or "images", ov, labels=labels)
        except ConfigError as exc:
            problems.append(str(exc))
        else:
            # each run sets train.epochs from the grid: a warm-up must fit the shortest
            short = [e for e in cfg.grid.epochs if e <= base.train.warmup_epochs]
            if short:
                problems.append(f"grid.epochs: {short} must each exceed the images config's "
                                f"train.warmup_epochs ({base.train.warmup_epochs})")
    return problems


def load_sweep_config(path: str | os.PathLike,
                      overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read a sweep YAML (a packaged name such as ``sweep`` or a path) into :class:`SweepConfig`.

    Raises
    ------
    ConfigError
        One line naming the file and every bad key: unknown keys, values of the wrong type
        or out of range, missing folders or weights files, unknown backbones.
    """
    cfg = load_config(SweepConfig, path, overrides)
    _check_paths(cfg, str(resolve_config(path)))
    return cfg


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its stage, id (unique within the stage) and trainer overrides."""

    stage: int
    run_id: str
    overrides: dict[str, Any]
    parent: str | None = None

    @property
    def key(self) -> str:
        """``"<stage>/<run-id>"``, the run's key in ``sweep.json`` and its folder under runs/."""
        return f"{self.stage}/{self.run_id}"

    @property
    def backbone(self) -> str:
        return str(self.overrides["model.name"])


def expand_grid(cfg: SweepConfig) -> list[RunSpec]:
    """The stage-1 runs: backbones x input sizes x batch sizes x epochs, augmentation off.

    Run ids read ``<backbone>_<size>px_b<batch>_e<epochs>``.
    """
    g = cfg.grid
    runs = []
    for backbone, size, batch, epochs in itertools.product(g.backbones, g.input_sizes,
                                                           g.batch_sizes, g.epochs):
        ov = {**cfg.overrides, "model.name": backbone, "data.image_size": size,
              "train.batch_size": batch, "train.epochs": epochs,
              "train.learning_rate": g.learning_rate, "augment.enabled": False,
              "fine_tune.enabled": False}
        runs.append(RunSpec(1, f"{backbone}_{size}px_b{batch}_e{epochs}", ov))
    return runs


def _derive(stage: int, parents: list[RunSpec], cfg: SweepConfig,
            rates: dict[str, float] | None = None) -> list[RunSpec]:
    out = []
    for p in parents:
        ov = dict(p.overrides)
        if stage == 2:
            ov["augment.enabled"] = True
        elif stage == 3:
            ov["fine_tune.enabled"] = True
            ov["fine_tune.learning_rate"] = cfg.fine_tune.learning_rate
            if cfg.fine_tune.from_layer is not None:
                ov["fine_tune.from_layer"] = cfg.fine_tune.from_layer
        elif stage == 5:
            ov["train.learning_rate"] = float(rates[p.run_id])
        out.append(RunSpec(stage, p.run_id, ov, parent=p.key))
    return out


# --------------------------------------------------------------------------- state
def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_report(folder: Path) -> dict | None:
    """A run folder's complete report (``report.json`` or ``report/report.json`` holding
    ``weighted_f1``), or None."""
    for p in (folder / "report.json", folder / "report" / "report.json"):
        data = _read_json(p)
        if data is not None and isinstance(data.get("weighted_f1"), (int, float)):
            return data
    return None


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _same(a: dict, b: dict) -> bool:
    return json.loads(json.dumps(a, default=str)) == json.loads(json.dumps(b, default=str))


def write_architecture(folder: Path) -> Path | None:
    """``architecture.txt`` (``model.summary``) of an images run folder, if missing.

    The network is rebuilt from the run's ``config.yaml`` and ``manifest.json`` (classes)
    without weights (the same layers and parameter counts, and no deserialisation of
    ``model.keras``); if that fails, ``model.keras`` is loaded. Nothing when the folder holds
    neither (a fake trainer's folder) or both fail (logged).
    """
    out = folder / "architecture.txt"
    if out.exists():
        return out
    model = None
    errors = []
    if (folder / "config.yaml").is_file() and (folder / "manifest.json").is_file():
        try:
            from wafertk.images.config import ImageRunConfig
            from wafertk.images.train import build_image_model

            run_cfg = load_config(ImageRunConfig, folder / "config.yaml")
            classes = json.loads((folder / "manifest.json").read_text())["classes"]
            model = build_image_model(run_cfg, len(classes))
        except Exception as exc:  # noqa: BLE001 - a summary is not worth failing a sweep for
            errors.append(f"rebuild: {exc}")
    if model is None and (folder / "model.keras").is_file():
        try:
            import importlib

            import keras

            importlib.import_module("wafertk.images.models")  # registers its custom layers
            model = keras.saving.load_model(folder / "model.keras", compile=False)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"load: {str(exc).splitlines()[0]}")
    if model is None:
        if errors:
            log.warning("%s: no architecture summary (%s)", folder, "; ".join(errors))
        return None
    lines: list[str] = []
    # Keras renders the summary with rich, which cuts lines at the terminal's width (80
    # columns without a terminal) whatever line_length says: widen it while rendering
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "130"
    try:
        model.summary(print_fn=lambda line, *a, **k: lines.append(line), line_length=120)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out


# --------------------------------------------------------------------------- ranking
def rank_runs(state: dict) -> list[dict[str, Any]]:
    """Every finished training run of ``state`` (``sweep.json``), best weighted F1 first."""
    rows = []
    for key, r in state.get("runs", {}).items():
        if r.get("status") != "done" or r.get("stage") == LR_FIND_STAGE:
            continue
        ov = r["overrides"]
        rows.append({
            "stage": r["stage"], "run_id": r["run_id"], "backbone": ov.get("model.name"),
            "image_size": ov.get("data.image_size"), "batch_size": ov.get("train.batch_size"),
            "epochs": ov.get("train.epochs"), "augment": bool(ov.get("augment.enabled")),
            "fine_tune": bool(ov.get("fine_tune.enabled")),
            "learning_rate": ov.get("train.learning_rate"),
            "accuracy": r.get("accuracy"), "weighted_f1": r["weighted_f1"],
            "seconds": r.get("seconds"), "folder": f"runs/{key}"})
    rows.sort(key=lambda x: (-x["weighted_f1"], x["stage"], x["run_id"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return [{c: row[c] for c in RANKING_COLUMNS} for row in rows]


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}" if v >= 0.01 or v == 0 else f"{v:.1e}"
    return "" if v is None else str(v)


def ranking_markdown(rows: list[dict[str, Any]]) -> str:
    """The ranking as a Markdown table (the ``folder`` column left out)."""
    cols = [c for c in RANKING_COLUMNS if c != "folder"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_fmt(r[c]) if c != "seconds" or r[c] is None else f"{r[c]:.0f}"
                 for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ranking(rows: list[dict[str, Any]], out_dir: Path) -> None:
    """``ranking.csv``, ``ranking.md`` and ``ranking.png`` (each atomically)."""
    with atomic_path(out_dir / "ranking.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(RANKING_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    with atomic_path(out_dir / "ranking.md") as tmp:
        tmp.write_text(ranking_markdown(rows))
    from matplotlib.figure import Figure

    n = max(len(rows), 1)
    fig = Figure(figsize=(7, 1.2 + 0.32 * n))
    ax = fig.add_subplot()
    labels = [f"s{r['stage']} {r['run_id']}" for r in rows][::-1]
    values = [r["weighted_f1"] for r in rows][::-1]
    colors = [f"C{r['stage'] - 1}" for r in rows][::-1]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("weighted F1 (validation)")
    ax.set_title("Sweep ranking (colour: stage)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_dir / "ranking.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


# --------------------------------------------------------------------------- run
@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the ranking (best first), the output folder, the number of
    runs trained now, skipped (already complete) and failed."""

    ranking: list[dict[str, Any]]
    out_dir: Path
    trained: int = 0
    skipped: int = 0
    failed: int = 0
    lr_found: dict[str, float] = field(default_factory=dict)


def _default_train_fn():
    from wafertk.images.train import run_image_training

    return run_image_training


def _default_lr_find_fn():
    from wafertk.training.lr_find import image_lr_find

    return image_lr_find


class _Sweep:
    """The mutable state of one :func:`run_sweep` call."""

    def __init__(self, cfg: SweepConfig, out_dir: Path, train_fn, lr_find_fn, on_run,
                 config_path: str | None):
        self.cfg, self.out = cfg, out_dir
        self.train_fn, self.lr_find_fn, self.on_run = train_fn, lr_find_fn, on_run
        self.state = _read_json(out_dir / STATE_FILE) or {}
        self.state.setdefault("runs", {})
        self.state["config"] = config_path
        self.state["selected"] = {}
        self.result = SweepResult([], out_dir)

    def save(self) -> None:
        self.state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write_json(self.out / STATE_FILE, self.state)

    def _say(self, text: str) -> None:
        log.info(text)
        if self.on_run is not None:
            self.on_run(text)

    def _weights(self, spec: RunSpec) -> str | None:
        return self.cfg.weights.get(spec.backbone)

    def _prepare(self, spec: RunSpec, complete: Callable[[Path], Any]) -> tuple[Path, Any]:
        folder = self.out / "runs" / str(spec.stage) / spec.run_id
        remove_stale(folder)
        done = complete(folder) if folder.is_dir() else None
        prev = self.state["runs"].get(spec.key)
        if done is not None and prev is not None and not _same(prev.get("overrides", {}),
                                                               spec.overrides):
            raise ConfigError(f"{folder}: trained with other settings than the sweep config "
                              "now gives; resume with the same config or use a new output "
                              "folder")
        if done is None and folder.exists():
            log.warning("%s: incomplete run folder, discarded and run again", folder)
            shutil.rmtree(folder)
        return folder, done

    def train(self, spec: RunSpec) -> dict | None:
        folder, report = self._prepare(spec, find_report)
        entry = {"stage": spec.stage, "run_id": spec.run_id, "parent": spec.parent,
                 "overrides": spec.overrides, "weights": self._weights(spec)}
        if report is not None:
            self.result.skipped += 1
            prev = self.state["runs"].get(spec.key, {})
            seconds = prev.get("seconds")
            self._say(f"{spec.key}: done before (weighted F1 {report['weighted_f1']:.4f})")
        else:
            self._say(f"{spec.key}: training")
            t0 = time.perf_counter()
            try:
                report = self.train_fn(dict(spec.overrides), folder,
                                       data_dir=self.cfg.data.train,
                                       validation_dir=self.cfg.data.validation,
                                       weights=self._weights(spec),
                                       config=self.cfg.data.config)
            except WafertkError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run does not stop the sweep
                log.warning("%s failed: %s", spec.key, exc)
                self.state["runs"][spec.key] = {**entry, "status": "failed",
                                                "error": f"{type(exc).__name__}: {exc}"}
                self.result.failed += 1
                self.save()
                self._say(f"{spec.key}: FAILED ({type(exc).__name__}: {exc})")
                return None
            seconds = time.perf_counter() - t0
            report = find_report(folder) or report
            self.result.trained += 1
            self._say(f"{spec.key}: weighted F1 {report['weighted_f1']:.4f} in {seconds:.0f} s")
        write_architecture(folder)
        self.state["runs"][spec.key] = {
            **entry, "status": "done", "accuracy": _float(report.get("accuracy")),
            "weighted_f1": float(report["weighted_f1"]), "seconds": seconds}
        self.save()
        return report

    def lr_find(self, spec: RunSpec) -> float | None:
        folder, found = self._prepare(spec, lambda f: _read_json(f / "lr_find.json"))
        entry = {"stage": spec.stage, "run_id": spec.run_id, "parent": spec.parent,
                 "overrides": spec.overrides, "weights": self._weights(spec)}
        if found is None:
            self._say(f"{spec.key}: LR range test")
            s = self.cfg.lr_find
            t0 = time.perf_counter()
            try:
                res = self.lr_find_fn(dict(spec.overrides), data_dir=self.cfg.data.train,
                                      weights=self._weights(spec), config=self.cfg.data.config,
                                      start_lr=s.start_lr, end_lr=s.end_lr,
                                      num_steps=s.num_steps, diverge=s.diverge)
            except WafertkError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("%s failed: %s", spec.key, exc)
                self.state["runs"][spec.key] = {**entry, "status": "failed",
                                                "error": f"{type(exc).__name__}: {exc}"}
                self.result.failed += 1
                self.save()
                return None
            with atomic_path(folder, directory=True) as tmp:
                res.save(tmp)
            found = _read_json(folder / "lr_find.json")
            self.result.trained += 1
            seconds = time.perf_counter() - t0
        else:
            self.result.skipped += 1
            seconds = self.state["runs"].get(spec.key, {}).get("seconds")
        lr = float(found["suggested_lr"])
        descent = bool(found.get("descent", True))
        self._say(f"{spec.key}: suggested learning rate {lr:.3g}" if descent else
                  f"{spec.key}: the loss never fell (no usable rate; not retrained)")
        self.state["runs"][spec.key] = {**entry, "status": "done", "suggested_lr": lr,
                                        "min_loss_lr": found.get("min_loss_lr"),
                                        "descent": descent, "seconds": seconds}
        self.save()
        return lr if descent else None

    def top(self, specs: list[RunSpec]) -> list[RunSpec]:
        scored = [(self.state["runs"][s.key]["weighted_f1"], s) for s in specs
                  if self.state["runs"].get(s.key, {}).get("status") == "done"]
        scored.sort(key=lambda t: (-t[0], t[1].run_id))
        return [s for _, s in scored[:self.cfg.top_k]]


def _float(v) -> float | None:
    return None if v is None else float(v)


def run_sweep(cfg: SweepConfig, out_dir: str | os.PathLike, *,
              train_fn: Callable[..., dict] | None = None,
              lr_find_fn: Callable[..., Any] | None = None,
              on_run: Callable[[str], None] | None = None,
              config_path: str | os.PathLike | None = None) -> SweepResult:
    """Run (or resume) a sweep into ``out_dir``.

    Parameters
    ----------
    cfg : SweepConfig
        From :func:`load_sweep_config`.
    out_dir : str or os.PathLike
        Output folder (created; an earlier run of the same sweep is resumed).
    train_fn : callable, optional
        ``train_fn(overrides, out_dir, *, data_dir, validation_dir, weights, config) ->
        report dict`` with ``weighted_f1`` (and ``accuracy``), writing ``out_dir``
        atomically; default :func:`wafertk.images.train.run_image_training`.
    lr_find_fn : callable, optional
        ``lr_find_fn(overrides, *, data_dir, weights, config, start_lr, end_lr, num_steps,
        diverge) -> LRFindResult``; default :func:`wafertk.training.lr_find.image_lr_find`.
    on_run : callable, optional
        Called with one progress line per run.
    config_path : str or os.PathLike, optional
        The YAML file, recorded in ``sweep.json``.

    Returns
    -------
    SweepResult

    Raises
    ------
    WafertkError
        A user error from the trainer (bad data, bad override), or a run folder trained with
        other settings. Other exceptions of a run are recorded (``status: failed`` in
        ``sweep.json``) and the sweep goes on; a resumed sweep tries failed runs again.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sw = _Sweep(cfg, out, train_fn or _default_train_fn(),
                lr_find_fn, on_run, None if config_path is None else str(config_path))
    save_config(cfg, out / "config.yaml")
    stages = list(cfg.stages)
    sw.state["stages"] = stages
    sw.state["complete"] = False
    sw.save()

    rates: dict[str, float] = {}
    lr_parents: list[RunSpec] = []
    current = expand_grid(cfg)
    for spec in current:
        sw.train(spec)
    last_training = current
    for stage in stages[1:]:
        parents = sw.top(last_training)
        sw.state["selected"][str(stage)] = [p.key for p in parents]
        if stage == LR_FIND_STAGE:
            if sw.lr_find_fn is None:
                sw.lr_find_fn = _default_lr_find_fn()
            for spec in _derive(stage, parents, cfg):
                lr = sw.lr_find(spec)
                if lr is not None:
                    rates[spec.run_id] = lr
            sw.result.lr_found = rates
            lr_parents = [p for p in parents if p.run_id in rates]
            continue
        if stage == 5:
            specs = _derive(5, lr_parents, cfg, rates)
        else:
            specs = _derive(stage, parents, cfg)
        for spec in specs:
            sw.train(spec)
        last_training = specs
    sw.result.ranking = rank_runs(sw.state)
    write_ranking(sw.result.ranking, out)
    sw.state["complete"] = True
    sw.state["best"] = sw.result.ranking[0] if sw.result.ranking else None
    sw.save()
    return sw.result


def sweep_plan(cfg: SweepConfig) -> list[str]:
    """Lines describing what :func:`run_sweep` would do (``--dry-run``)."""
    grid = expand_grid(cfg)
    lines = [f"stage 1: {len(grid)} runs (augmentation off)"]
    lines += [f"  runs/1/{s.run_id}" for s in grid]
    k = min(cfg.top_k, len(grid))
    what = {2: f"augmentation on, the top {k} of stage 1",
            3: f"fine-tuning, the top {k} of the last training stage",
            4: f"LR range test, the top {k} of the last training stage",
            5: "the stage-4 runs retrained at their suggested rates"}
    for stage in cfg.stages[1:]:
        lines.append(f"stage {stage}: {what[stage]}")
    return lines


def config_from_mapping(data: dict[str, Any], where: str = "sweep config") -> SweepConfig:
    """:class:`SweepConfig` from a mapping (checked like a file; paths not checked)."""
    return from_dict(SweepConfig, data, where=where)
