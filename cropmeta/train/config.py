"""Training configuration: one flat dataclass, two presets, TOML/YAML/JSON files and flag overrides.

Resolution order (later wins): the defaults (= the ``paper`` preset) → the chosen preset → a config
file (``--config F``; keys flat or grouped in tables such as ``[meta]``/``[finetune]``, and an optional
``preset`` key) → explicit overrides (CLI flags). The resolved config is saved in every run directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cropmeta.errors import InputError

__all__ = ["TrainConfig", "PRESETS", "LEARNERS", "resolve_config", "load_config_file"]

LEARNERS = ("timl", "maml", "concat", "in-context")  # in-context: cropmeta.train.incontext


@dataclass
class TrainConfig:
    # ---- model (TIML defaults) -----------------------------------------------------------------
    hidden: int = 128  #: LSTM hidden size (and the hidden linear layer)
    lstm_dropout: float = 0.2  #: variational dropout on the recurrent state
    encoder_dims: list = field(default_factory=lambda: [32, 64, 128])  #: task-encoder MLP widths
    encoder_dropout: float = 0.2
    encoder_channels_per_group: int = 16  #: GroupNorm channels per group in the encoder
    learner: str = "timl"  #: timl (FiLM from the task encoder) | maml (no task info) | concat | in-context
    # ---- tasks ---------------------------------------------------------------------------------
    k_support: int = 10  #: support examples per class (10 + 10)
    k_query: int = 4  #: query examples per class (4 + 4)
    min_per_class: int | None = None  #: task kept with ≥ this many per class (None: k_support + k_query)
    val_fraction: float = 0.1  #: share of tasks used for meta-validation (by hash of the task id)
    # ---- meta-training (learn2learn MAML) --------------------------------------------------------
    tasks_per_step: int = 32  #: tasks per outer step
    iterations: int | None = None  #: outer steps (None: epochs × ⌈train tasks / tasks_per_step⌉)
    epochs: int = 1000  #: passes over the training tasks when iterations is None (paper: 1000)
    inner_lr: float = 1e-3
    inner_steps: int = 1
    first_order: bool = False
    outer_lr: float = 1e-3  #: Adam, cosine-annealed to min_lr
    encoder_lr: float = 1e-3  #: the task encoder's own Adam, same schedule
    min_lr: float = 1e-5
    task_noise: float = 0.1  #: σ of the Gaussian noise on task information during meta-training
    remove_auc: float | None = 0.95  #: drop a task whose mean query AUC over remove_lookback draws ≥ this
    remove_lookback: int = 20
    val_every: int = 1  #: outer steps between meta-validations
    val_repeats: int = 2  #: fixed batches per validation task
    checkpoint_every: int = 20  #: outer steps between resume checkpoints
    # ---- fine-tuning on the target ---------------------------------------------------------------
    ft_lr: float = 1e-3  #: SGD
    ft_steps: int = 250
    ft_batch: int = 10  #: per class
    # ---- plain supervised pretraining (baseline) ---------------------------------------------------
    pt_lr: float = 1e-3
    pt_steps: int = 3000
    pt_val_every: int = 25
    pt_patience: int = 8  #: validations without improvement before early stopping
    # ---- execution ----------------------------------------------------------------------------------
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    dtype: str = "float32"  #: float32 | float64 (tests)
    vectorize: bool = True  #: all tasks of a step in one task-batched clone (False: a clone per task)
    threads: int | None = None  #: torch CPU threads (None: leave torch's setting)
    preset: str = "paper"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "TrainConfig":
        return _validate(dataclasses.replace(self, **kw), "overrides")

    @property
    def min_examples(self) -> int:
        return int(self.min_per_class) if self.min_per_class is not None else self.k_support + self.k_query

    def n_iterations(self, n_train_tasks: int) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        return int(self.epochs) * max(1, -(-n_train_tasks // self.tasks_per_step))


#: preset → values changed from the defaults (which are the paper's)
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # CPU default: a few minutes on 2 cores. Same model and task protocol; fewer, smaller outer steps
    # and first-order MAML (see docs/benchmarks-train.md for the measured speed and accuracy).
    "quick": {
        "threads": 1,
        "iterations": 200,
        "tasks_per_step": 16,
        "first_order": True,
        "outer_lr": 3e-3,
        "encoder_lr": 3e-3,
        "val_every": 20,
        "checkpoint_every": 50,
        "remove_lookback": 10,
        "pt_steps": 800,
        "pt_val_every": 25,
        "pt_patience": 6,
    },
}

_FIELDS = {f.name: f for f in fields(TrainConfig)}
_SECTIONS = {"model", "tasks", "meta", "meta_training", "finetune", "fine_tuning", "pretrain", "run", "train",
             "execution"}


def _flatten(d: dict, source: str) -> dict:
    out: dict[str, Any] = {}
    for k, v in d.items():
        k = str(k).replace("-", "_")
        if isinstance(v, dict) and k in _SECTIONS:
            out.update(_flatten(v, source))
        else:
            out[k] = v
    return out


def load_config_file(path: str | Path) -> dict:
    """Read a TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON config into a flat dict."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise InputError(f"{path}: unknown config format (use .toml, .yaml/.yml or .json)")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser error is the file's fault
        raise InputError(f"{path}: cannot parse config ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a mapping of option = value")
    return _flatten(data, str(path))


def _check_keys(d: dict, source: str) -> None:
    for k in d:
        if k not in _FIELDS:
            close = difflib.get_close_matches(k, list(_FIELDS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"{source}: unknown training option {k!r}{hint}")


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    if default is dataclasses.MISSING:
        default = _FIELDS[name].default_factory()  # type: ignore[misc]
    optional = name in ("iterations", "min_per_class", "threads", "remove_auc")
    if value is None:
        if optional:
            return None
        raise InputError(f"{source}: option {name!r} cannot be empty")
    kind = type(default) if default is not None else (float if name == "remove_auc" else int)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes", "on"):
                    return True
                if value.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is list:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return [int(v) for v in value]
        return str(value)
    except (TypeError, ValueError):
        raise InputError(f"{source}: option {name!r} = {value!r} is not a valid {kind.__name__}") from None


def _validate(cfg: TrainConfig, source: str) -> TrainConfig:
    for name in _FIELDS:
        setattr(cfg, name, _coerce(name, getattr(cfg, name), source))
    positive = ["hidden", "k_support", "k_query", "tasks_per_step", "epochs", "inner_steps", "val_every",
                "val_repeats", "checkpoint_every", "ft_steps", "ft_batch", "pt_steps", "pt_val_every",
                "pt_patience", "remove_lookback", "encoder_channels_per_group"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise InputError(f"{source}: option {name!r} must be ≥ 1, got {getattr(cfg, name)}")
    for name in ("lstm_dropout", "encoder_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            raise InputError(f"{source}: option {name!r} must be in [0, 1), got {getattr(cfg, name)}")
    for name in ("inner_lr", "outer_lr", "encoder_lr", "ft_lr", "pt_lr"):
        if getattr(cfg, name) <= 0:
            raise InputError(f"{source}: option {name!r} must be > 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.val_fraction < 1:
        raise InputError(f"{source}: val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.iterations is not None and cfg.iterations < 0:
        raise InputError(f"{source}: iterations must be ≥ 0, got {cfg.iterations}")
    if cfg.learner not in LEARNERS:
        raise InputError(f"{source}: learner must be one of {', '.join(LEARNERS)}, got {cfg.learner!r}")
    if cfg.dtype not in ("float32", "float64"):
        raise InputError(f"{source}: dtype must be float32 or float64, got {cfg.dtype!r}")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise InputError(f"{source}: device must be auto, cpu or cuda, got {cfg.device!r}")
    if not cfg.encoder_dims:
        raise InputError(f"{source}: encoder_dims must list at least one width")
    if cfg.min_per_class is not None and cfg.min_per_class < cfg.k_support + cfg.k_query:
        raise InputError(f"{source}: min_per_class ({cfg.min_per_class}) must be ≥ k_support + k_query "
                         f"({cfg.k_support + cfg.k_query})")
    return cfg


def resolve_config(preset: str | None = "quick", config_file: str | Path | None = None,
                   overrides: dict | None = None) -> TrainConfig:
    """Defaults → preset → config file → overrides (``None`` values in overrides are ignored)."""
    file_vals: dict = {}
    if config_file is not None:
        file_vals = load_config_file(config_file)
        _check_keys(file_vals, str(config_file))
    over = {k.replace("-", "_"): v for k, v in (overrides or {}).items() if v is not None}
    _check_keys(over, "overrides")
    name = str(over.get("preset") or preset or file_vals.get("preset") or "quick").lower()
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"unknown preset {name!r}{hint}; presets: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in file_vals.items() if k != "preset"},
              **{k: v for k, v in over.items() if k != "preset"}}
    cfg = TrainConfig(preset=name)
    for k, v in values.items():
        setattr(cfg, k, v)
    return _validate(cfg, str(config_file) if config_file else "config")


def config_from_dict(d: dict, source: str = "config.json") -> TrainConfig:
    """Rebuild a resolved config (e.g. from a run directory's config.json)."""
    _check_keys(d, source)
    cfg = TrainConfig()
    for k, v in d.items():
        setattr(cfg, k, v)
    return _validate(cfg, source)
