"""YAML configs loaded into dataclasses: unknown keys and bad values are errors, flags override.

The training configs ship inside the package (the top-level ``configs/`` folder is installed
as ``wafertk/configs``): :func:`resolve_config` turns a name (``detector``) into its file.

Every run writes its resolved config (``config.yaml``) next to its outputs with
:func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from wafertk._atomic import atomic_path
from wafertk.errors import ConfigError, UnknownNameError, did_you_mean

T = TypeVar("T")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


class Problems:
    """Collects ``(dotted key, message)`` problems of a config, to report all of them at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def __bool__(self) -> bool:
        return bool(self.items)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(cls: type[T], data: dict[str, Any], prefix: str, problems: Problems) -> T | None:
    """``cls(**data)`` with every problem recorded in ``problems``.

    A bad value is recorded and replaced by the field's default, so that the remaining keys,
    and the checks across fields (``config_problems()``), are still checked: one run reports
    everything. The returned object is only meaningful when no problem was recorded.
    """
    types_ = _field_types(cls)
    checks = {f.name: f.metadata.get("check") for f in dataclasses.fields(cls)}
    for k in data:
        if k not in types_:
            problems.add(prefix, f"unknown key {k!r}{did_you_mean(k, types_)}")
    kwargs = {}
    for k, v in data.items():
        if k not in types_:
            continue
        key = _join(prefix, k)
        tp = types_[k]
        if dataclasses.is_dataclass(tp):
            if not isinstance(v, dict):
                problems.add(key, f"expected a mapping, got {v!r}")
                continue
            sub = _build(tp, v, key, problems)
            if sub is not None:
                kwargs[k] = sub
            continue
        try:
            value = _coerce(v, tp, key)
        except ConfigError as exc:
            msg = str(exc)
            problems.add(key, msg[len(key):].removeprefix(": ") if msg.startswith(key) else msg)
            continue
        check = checks.get(k)
        problem = check(value) if check is not None and value is not None else None
        if problem:
            problems.add(key, problem)
            continue
        kwargs[k] = value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.add(prefix, str(exc))
        return None
    reported = {k for k, _ in problems.items}
    for key, message in getattr(obj, "config_problems", lambda: [])():
        if _join(prefix, key) not in reported:
            problems.add(_join(prefix, key), message)
    return obj


def _message(where: str, problems: Problems, labels: dict[str, str] | None = None) -> str:
    """One line: ``where: key: problem; key: problem`` (keys from overrides named by their
    flag, after the file's)."""
    labels = labels or {}

    def part(key: str, msg: str, label: str | None = None) -> str:
        name = label or key
        return f"{name}: {msg}" if name else msg

    own = [part(k, m) for k, m in problems.items if k not in labels]
    flags = [part(k, m, labels[k]) for k, m in problems.items if k in labels]
    text = "; ".join(own)
    if own and where:
        text = f"{where}: {text}"
    return "; ".join([t for t in (text, *flags) if t])


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config",
              labels: dict[str, str] | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values.

    Every problem is reported at once, in one line: unknown keys (with a suggestion), values
    of the wrong type, values outside a field's range (``metadata={"check": ...}``, see
    :func:`in_range` and :func:`one_of`) and the dataclass's own ``config_problems()``
    (checks across fields), e.g. ``configs/x.yaml: model.dropout: 2.0 is not in [0, 1);
    train.epochs: 0 is not >= 1``.

    Parameters
    ----------
    cls : dataclass type
    data : dict
    where : str
        Prefix of the error message (the file name).
    labels : dict of str to str, optional
        Dotted keys named otherwise in messages (command-line overrides: ``"--epochs"``).

    Returns
    -------
    instance of ``cls``

    Raises
    ------
    ConfigError
        Naming ``where`` and every bad key.
    """
    problems = Problems()
    obj = _build(cls, data, "", problems)
    if problems or obj is None:
        raise ConfigError(_message(where, problems, labels))
    return obj


def in_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> Callable[[Any], str | None]:
    """A field check: the value (or every item of a list) lies between ``lo`` and ``hi``.

    Use as ``field(default=0.3, metadata={"check": in_range(0, 1, hi_open=True)})``.
    Messages read ``2.0 is not in [0, 1)``, ``0 is not >= 1``, ``-1.0 is not > 0``.
    """
    if lo is not None and hi is not None:
        span = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        span = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        span = f"{'<' if hi_open else '<='} {hi:g}"

    def ok(v: float) -> bool:
        if not math.isfinite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    def check(value: Any) -> str | None:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not ok(v):
                return f"{v!r} is not {span}"
        return None

    return check


def one_of(names: Sequence[str], what: str = "value") -> Callable[[Any], str | None]:
    """A field check: the value is one of ``names`` (with a did-you-mean hint)."""

    def check(value: Any) -> str | None:
        if value in names:
            return None
        return f"unknown {what} {value!r}{did_you_mean(value, names)}"

    return check


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain dicts/lists (tuples become lists), ready for YAML or JSON."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def _config_dirs() -> list[Path]:
    """Folders holding the packaged configs: ``wafertk/configs`` when installed from a wheel
    (the top-level ``configs/`` folder is installed there), ``configs/`` in a source tree."""
    import importlib.util

    dirs: list[Path] = []
    try:
        spec = importlib.util.find_spec("wafertk.configs")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) for p in spec.submodule_search_locations]
    here = Path(__file__).resolve().parent
    dirs.append(here / "configs")
    if (here.parent / "pyproject.toml").is_file():  # source checkout or editable install
        dirs.append(here.parent / "configs")
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def packaged_configs() -> dict[str, Path]:
    """The packaged training configs by name (``classifier``, ``detector``, ``xgboost``)."""
    found: dict[str, Path] = {}
    for d in _config_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def resolve_config(spec: str | os.PathLike) -> Path:
    """The config file named by ``spec``: a packaged config's name or a path.

    A string without a path separator and without a ``.yaml``/``.yml`` suffix is a name
    (``detector`` is the packaged ``detector.yaml``, the shipped model's recipe); anything
    else is a path.

    Raises
    ------
    UnknownNameError
        An unknown name (did-you-mean included).
    """
    s = os.fspath(spec)
    if (isinstance(spec, str) and "/" not in s and os.sep not in s
            and not s.endswith((".yaml", ".yml"))):
        known = packaged_configs()
        if s in known:
            return known[s]
        raise UnknownNameError(f"unknown config {s!r}{did_you_mean(s, known)}: packaged "
                               f"configs are {', '.join(known) or 'none'}, or give a YAML path")
    return Path(s)


_UniqueKeyLoader = None


def _unique_key_loader():
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def _read_yaml(p: Path) -> dict[str, Any]:
    import yaml

    global _UniqueKeyLoader
    if _UniqueKeyLoader is None:
        _UniqueKeyLoader = _unique_key_loader()

    if not p.exists():
        raise ConfigError(f"{p}: no such config file")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, expected a YAML config file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {exc.start})") from None
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return loaded


def load_config(cls: type[T], path: str | os.PathLike | None = None,
                overrides: dict[str, Any] | None = None, *,
                labels: dict[str, str] | None = None) -> T:
    """Load a YAML config into ``cls``, then apply overrides (e.g. from command-line flags).

    Parameters
    ----------
    cls : dataclass type
    path : str or os.PathLike, optional
        YAML file, or a packaged config's name (:func:`resolve_config`); without it the
        dataclass defaults are used.
    overrides : dict, optional
        Dotted keys (``"train.epochs"``) to values; ``None`` values are skipped, so unset
        command-line flags do not override the file.
    labels : dict of str to str, optional
        How error messages name the overridden keys (``{"train.epochs": "--epochs"}``).

    Returns
    -------
    instance of ``cls``

    Raises
    ------
    ConfigError
        One line naming the file and every bad key (and the flag of every bad override).
    """
    import copy

    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        p = resolve_config(path)
        where = str(p)
        data = copy.deepcopy(_read_yaml(p))
    problems = Problems()
    used: dict[str, str] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        label = (labels or {}).get(key, f"override {key}")
        parts = key.split(".")
        node, tp = data, cls
        for i, part in enumerate(parts):
            types_ = _field_types(tp) if dataclasses.is_dataclass(tp) else {}
            if part not in types_:
                problems.add("", f"unknown key {key!r}")
                break
            tp = types_[part]
            if i == len(parts) - 1:
                node[part] = list(value) if isinstance(value, tuple) else value
                used[key] = label
            else:
                if node.get(part) is None:
                    node[part] = {}
                elif not isinstance(node[part], dict):  # reported by _build, not replaced
                    break
                node = node[part]
    if not problems:
        obj = _build(cls, data, "", problems)
        if not problems and obj is not None:
            return obj
    raise ConfigError(_message(where, problems, used))


def save_config(obj: Any, path: str | os.PathLike) -> Path:
    """Write a resolved config dataclass as YAML, atomically."""
    import yaml

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
    return Path(path)
