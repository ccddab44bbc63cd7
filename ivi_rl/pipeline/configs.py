"""Helpers shared by the bandit and RL config readers: each raises :class:`ConfigError`
with a message naming the key, the value and what is accepted."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ivi_rl.checks import check_choice

from .errors import ConfigError
from .executors import ExecutorKind, ExecutorSpec

__all__ = [
    "NESTED_SETTINGS",
    "AgentSpec",
    "ConfigError",
    "check_defaults",
    "check_known_keys",
    "check_unique_labels",
    "default_label",
    "executor_spec",
    "layer_settings",
    "load_toml_config",
    "pop_why",
    "positive",
    "read_config",
    "seeds",
    "select_by_label",
    "tables",
    "typed",
    "with_defaults",
]


Config = TypeVar("Config")


def load_toml_config(
    path: str | Path,
    parse: Callable[[dict[str, Any], dict[str, Any]], Config],
    validate: Callable[[Config], None],
    overrides: dict[str, Any],
) -> Config:
    """Read TOML with its base configs (:func:`read_config`), ``parse(raw, overrides)``
    (overrides that are None dropped), ``validate``; every failure is one
    :class:`ConfigError` naming the file."""
    path = Path(path)
    overrides = dict(overrides)
    raw = apply_sets(read_config(path), overrides.pop("sets", None) or [])
    try:
        config = parse(raw, {k: v for k, v in overrides.items() if v is not None})
        validate(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


def read_config(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict, with its ``base`` resolved.

    ``base = "other.toml"`` (relative to this file) starts from that config: a key set here
    replaces the base's value whole (``[[agents]]`` and ``[[envs]]`` lists included), except
    the ``[defaults.*]`` tables, which are updated setting by setting
    (:func:`layer_settings`). Bases may have bases;
    a cycle is an error."""
    raw = _read_toml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base={base!r} is not accepted; accepted: a TOML file path")
    base_path = (path.parent / base).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ConfigError(f"{path}: base={base!r} makes a cycle of base configs")
    parent = read_config(base_path, (*_seen, path.resolve()))
    merged = {**parent, **raw}
    if isinstance(parent.get("defaults"), dict) and isinstance(raw.get("defaults"), dict):
        defaults = dict(parent["defaults"])
        for group, settings in raw["defaults"].items():
            below = defaults.get(group)
            both = isinstance(below, dict) and isinstance(settings, dict)
            defaults[group] = layer_settings(below, settings) if both else settings
        merged["defaults"] = defaults
    return merged


NESTED_SETTINGS = ("policy_kwargs",)
"""Settings that are tables of settings themselves: a layer above updates them key by key."""


def layer_settings(*layers: dict[str, Any]) -> dict[str, Any]:
    """Settings layered bottom to top: a key of a higher layer replaces a lower one's, except
    the tables of :data:`NESTED_SETTINGS`, which are updated key by key (so
    ``[defaults.ivi_dqn] policy_kwargs = { optimizer_class = "sgd" }`` stays under an agent's
    own ``policy_kwargs = { net_arch = [64] }``)."""
    out: dict[str, Any] = {}
    for settings in layers:
        for key, value in settings.items():
            below = out.get(key)
            nested = key in NESTED_SETTINGS and isinstance(below, dict)
            out[key] = {**below, **value} if nested and isinstance(value, dict) else value
    return out


def apply_sets(raw: dict[str, Any], sets: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides from the command line, applied to the config (bases resolved).

    KEY is a dotted path: a top-level key (``seeds``), a table's key
    (``defaults.agents.learning_rate``), or an entry of ``agents``/``datasets``/``envs`` by its
    label (``agents.ivi_dqn.learning_rate``). VALUE is read as a TOML value (``0.01``,
    ``[64, 64]``, ``true``, ``"text"``), else taken as a string (``cuda``)."""
    raw = copy.deepcopy(raw)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not accepted; accepted: KEY=VALUE")
        _set_path(raw, key.strip().split("."), _toml_value(text.strip()), item)
    return raw


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_path(raw: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    head, *rest = parts
    target = raw
    if isinstance(raw.get(head), list) and rest:  # agents.<label>.<key>
        if len(rest) < 2:
            raise ConfigError(f"--set {item!r} is not accepted; accepted: {head}.<label>.<key>")
        target, parts = _entry(raw[head], rest[0], head, item), rest[1:]
    *path, last = parts
    for part in path:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {item!r}: {part} is not a table")
    target[last] = value


def default_label(entry: dict[str, Any]) -> Any:
    """An entry's label when it sets none: its ``name`` (agents, datasets), else one made from
    its gymnasium ``id`` (envs: ``ivi_rl/DeepSea-v0`` -> ``deepsea``)."""
    if "name" in entry or not isinstance(entry.get("id"), str):
        return entry.get("name")
    return entry["id"].split("/")[-1].split("-")[0].lower()


def _entry(entries: list, label: str, kind: str, item: str) -> dict[str, Any]:
    """The entry of ``[[kind]]`` whose label (see :func:`default_label`) or env id is
    ``label``."""
    labels = [e.get("label", default_label(e)) for e in entries]
    ids = [e.get("id") for e in entries]
    if label not in labels and label not in ids:
        raise ConfigError(
            f"--set {item!r}: no {kind} entry labelled {label!r}; accepted: "
            f"{kind}.<label>.<key> with a label from {labels}"
        )
    return entries[labels.index(label) if label in labels else ids.index(label)]


def with_defaults(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The entries of the array of tables ``raw[key]`` on top of their defaults:
    ``[defaults.<key>]`` (every entry), then ``[defaults.<name>]`` (entries whose ``name`` is
    that registry name), then the entry's own keys (:func:`layer_settings`: a key replaces
    the default's value whole, except ``policy_kwargs``, updated key by key)."""
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ConfigError("'defaults' must hold tables: [defaults.agents], [defaults.<name>]")
    return [
        layer_settings(defaults.get(key, {}), defaults.get(entry.get("name"), {}), entry)
        for entry in tables(raw, key)
    ]


def select_by_label(specs: list, labels: Any, key: str) -> list:
    """The specs whose labels ``labels`` lists, in the config's order (None: all), so a
    config based on another can run a subset of its agents."""
    if labels is None:
        return specs
    known = [s.label for s in specs]
    if not isinstance(labels, list) or not labels or not set(labels) <= set(known):
        raise ConfigError(
            f"{key}={labels!r} is not accepted; accepted: a non-empty list of labels from {known}"
        )
    return [s for s in specs if s.label in labels]


def check_defaults(raw: dict[str, Any], accepted: Iterable[str]) -> None:
    """``[defaults.X]``: X must be a list key of the config or a registry name."""
    unknown = set(raw.get("defaults", {})) - set(accepted)
    if unknown:
        raise ConfigError(
            f"defaults: unknown tables {sorted(unknown)}; accepted: {sorted(accepted)}"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config {path} is a folder; accepted: a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a text file; accepted: a TOML file") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read by this user") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def check_known_keys(raw: dict[str, Any], accepted: Iterable[str]) -> None:
    unknown = set(raw) - set(accepted)
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}; accepted: {sorted(accepted)}")


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """An agent of a config: its unique label, its registry name and its settings."""

    label: str
    name: str
    settings: dict[str, Any]
    own: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    """The settings its own entry sets (the rest came from defaults): an env's agent
    settings (RL) replace the defaults, never these."""
    why: str = dataclasses.field(default="", compare=False)
    """Why the agent departs from its class's defaults (the entry's ``why``; '' if it does
    not). Not a setting: it changes no result."""


def pop_why(where: str, table: dict[str, Any]) -> str:
    """Remove and return an agent entry's ``why``: a string saying why its settings are not
    the agent's defaults (e.g. a baseline's published tuning)."""
    why = table.pop("why", "")
    if not isinstance(why, str):
        raise ConfigError(f"{where}: why={why!r} is not accepted; accepted: a string")
    return why


def tables(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A non-empty TOML array of tables."""
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"'{key}' must be a non-empty array of tables ([[{key}]] with a name)")
    return value


MAX_SEEDS = 100_000
"""The largest seed count a config may ask for (checked before any list is built)."""


def seeds(value: Any) -> list[int]:
    """A seed count (seeds 0..n-1) or a list of distinct seeds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        if value > MAX_SEEDS:
            raise ConfigError(f"seeds={value} is not accepted; accepted: at most {MAX_SEEDS:,}")
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        if len(set(value)) != len(value):
            raise ConfigError(f"seeds={value!r} repeats a seed")
        return list(value)
    raise ConfigError(f"seeds={value!r} must be a positive count or a list of distinct ints >= 0")


def positive(value: Any, key: str) -> int | None:
    """None, or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive int")
    return value


def choice(argument: str, value: Any, accepted) -> str:
    """``ivi_rl.checks.check_choice`` as a :class:`ConfigError`."""
    try:
        return check_choice(argument, value, accepted)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def typed(raw: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = raw.get(key, default)
    if not isinstance(value, kind):
        raise ConfigError(f"{key}={value!r} must be a {kind.__name__}")
    return value


def out_folder(raw: dict[str, Any], default: str) -> Path:
    """The config's (or --out's) output folder; an empty string is an error, not '.'."""
    value = typed(raw, "out", str, default)
    if not value.strip():
        raise ConfigError("out='' is not accepted; accepted: a folder path")
    return Path(value)


def check_label(where: str, label: object) -> str:
    """A label names an output folder: a non-empty string that stays inside it (no path
    separator, not '.' or '..', no leading '.')."""
    if (
        not isinstance(label, str)
        or not label
        or "/" in label
        or "\\" in label
        or label.startswith(".")
    ):
        raise ConfigError(
            f"{where} label={label!r} is not accepted; accepted: a non-empty string without "
            "'/' or '\\' that does not start with '.'"
        )
    return label


def check_unique_labels(kind: str, labels: list[str]) -> None:
    """Labels name output folders and table rows, so they must be unique."""
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"{kind} labels {dupes} appear twice; give each a unique 'label'")


EXECUTOR_KEYS = {"kind", "address", "cpus_per_task", "gpus_per_task", "max_retries"}


def executor_spec(raw: dict[str, Any]) -> ExecutorSpec:
    """The config's executor: ``executor = "ray"`` or a table ``[executor]`` with ``kind``
    (in_process, local, ray), ``address``, ``cpus_per_task``, ``gpus_per_task`` and
    ``max_retries``; the top-level ``workers`` sizes the local pool. With ``device = "cuda"``
    a Ray task asks for one GPU unless ``gpus_per_task`` says otherwise. The command line's
    ``--executor``/``--address`` arrive as ``executor_kind``/``executor_address``."""
    value = raw.get("executor", {})
    table = {"kind": value} if isinstance(value, str) else value
    if not isinstance(table, dict):
        raise ConfigError(
            f"executor={value!r} is not accepted; accepted: one of "
            f"{', '.join(ExecutorKind)} or a table with keys {sorted(EXECUTOR_KEYS)}"
        )
    unknown = set(table) - EXECUTOR_KEYS
    if unknown:
        raise ConfigError(
            f"executor: unknown keys {sorted(unknown)}; accepted: {sorted(EXECUTOR_KEYS)}"
        )
    kind = choice("executor", raw.get("executor_kind", table.get("kind", "local")), ExecutorKind)
    address = raw.get("executor_address", table.get("address"))
    if address is not None and (kind != ExecutorKind.RAY or not isinstance(address, str)):
        raise ConfigError(
            f"address={address!r} is not accepted with executor={kind!r}; accepted: a Ray "
            "cluster address (host:port or 'auto') with executor='ray'"
        )
    on_gpu = kind == ExecutorKind.RAY and str(raw.get("device", "cpu")).startswith("cuda")
    gpus = table.get("gpus_per_task", 1 if on_gpu else 0)  # a cuda run asks Ray for a GPU
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not 0 <= gpus:
        raise ConfigError(f"executor.gpus_per_task={gpus!r} must be a number >= 0")
    retries = table.get("max_retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"executor.max_retries={retries!r} must be an int >= 0")
    return ExecutorSpec(
        kind=ExecutorKind(kind),
        workers=positive(raw.get("workers"), "workers"),
        address=address,
        cpus_per_task=positive(table.get("cpus_per_task", 1), "executor.cpus_per_task"),
        gpus_per_task=float(gpus),
        max_retries=retries,
    )
