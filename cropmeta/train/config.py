"""Training configuration: one section per component, two presets, TOML/YAML/JSON files and flags.

Sections (:data:`SECTIONS`; every option with its meaning in docs/configuration.md)::

    [model]       hidden, lstm_dropout, encoder_dims, encoder_dropout, encoder_channels_per_group, learner
    [tasks]       k_support, k_query, min_per_class, val_fraction
    [meta]        tasks_per_step, iterations, epochs, inner_lr, inner_steps, first_order, outer_lr,
                  encoder_lr, min_lr, task_noise, remove_auc, remove_lookback, val_every, val_repeats,
                  checkpoint_every
    [finetune]    lr, steps, batch, budget, auto_lr, max_steps, folds   (flat: ft_lr, ft_steps, …;
                  giving steps or lr without budget means budget = "fixed")
    [ensemble]    prior, trees                            (flat: ens_prior, ens_trees)
    [forest]      trees                                   (flat: rf_trees; the random-forest learner)
    [presto_ft]   train_blocks, precision                 (flat: pft_train_blocks, pft_precision)
    [pretrain]    lr, steps, val_every, patience         (flat: pt_lr, pt_steps, pt_val_every, pt_patience)
    [execution]   device, dtype, vectorize, threads
    [in_context]  d_model, layers, heads, ff, ...        (flat: ic_d_model, …; the in-context learner's own)

Resolution order (later wins), merged once by :func:`resolve_config`: the defaults (= the ``paper``
preset) → the chosen preset → a config file (``--config F``) → explicit overrides (the API's
``overrides`` dict, CLI flags, ``--set section.key=value``). Files and overrides take the same
spellings: nested sections, ``section.key`` dotted names, or the flat names of earlier versions
(``ft_steps``, ``ic_d_model``). Unknown keys are rejected with a suggestion.

``null``: an option whose ``None`` has a meaning (``iterations``, ``min_per_class``, ``threads``,
``remove_auc``, and the in-context ``lr``, ``iterations``, ``max_support``) takes it from a file;
any other ``null`` in a file is rejected. In ``overrides`` ``None`` means "not given" (a flag left
unset). ``remove_auc = false`` switches task removal off (the same as ``remove_auc = null`` in a file).

The resolved config is saved in every run directory (:meth:`TrainConfig.to_dict`, flat).

The in-context options section, the presets, ``--set`` parsing and :func:`config_changes` are in
:mod:`cropmeta.train.config_base` (import them from there).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cropmeta.errors import ConfigError
from cropmeta.train.config_base import InContextOptions, PRESETS, IC_OPTIONAL

__all__ = [
    "config_with_overrides", "TrainConfig", "InContextOptions", "PRESETS", "SECTIONS", "resolve_config",
    "load_config_file", "config_from_dict", "in_context_keys",
]


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
    remove_auc: float | None = 0.95  #: drop a task whose mean query AUC over remove_lookback draws ≥ this; false: off
    remove_lookback: int = 20
    val_every: int = 1  #: outer steps between meta-validations
    val_repeats: int = 2  #: fixed batches per validation task
    checkpoint_every: int = 20  #: outer steps between resume checkpoints
    # ---- fine-tuning on the target ---------------------------------------------------------------
    ft_lr: float = 1e-3  #: SGD
    ft_steps: int = 250
    ft_batch: int = 10  #: per class
    ft_budget: str = "fixed"  #: fixed (ft_steps at ft_lr) | auto (chosen from the shots by inner cross-validation)
    ft_auto_lr: float = 1e-2  #: SGD learning rate of the auto budget
    ft_max_steps: int = 3200  #: the auto budget's longest candidate (candidates 25, 50, 100, … doubling)
    ft_folds: int = 3  #: inner cross-validation folds of the auto budget (stratified over the shots)
    # ---- the ensemble learner (a prior + a random forest on the local labels) -------------------
    ens_prior: str = "pretrained"  #: the learner whose model is the ensemble's prior
    ens_trees: int = 300  #: trees of the ensemble's random forest
    # ---- the random-forest learner (cropmeta train --learner random-forest) ------------------------
    rf_trees: int = 100  #: trees (scikit-learn's default, CropHarvest's baseline)
    # ---- presto-ft (Presto's encoder fine-tuned with a linear head) ---------------------------------
    pft_train_blocks: int = 2  #: last transformer blocks trained (2 = every weight; 1 = the first block frozen, cached)
    pft_precision: str = "auto"  #: fp32 | bf16 | auto (bf16 where the hardware has it natively) for its steps
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
    # ---- the in-context learner's own section ------------------------------------------------------
    in_context: InContextOptions = field(default_factory=InContextOptions)

    def to_dict(self) -> dict:
        """The flat form saved in run directories and checkpoints (and hashed into cache keys):
        every shared option by its flat name; ``in_context`` only when one of its options differs
        from the default, so that configurations written before the section existed keep their form."""
        d = dataclasses.asdict(self)
        ic = d.pop("in_context")
        if ic != InContextOptions().to_dict():
            d["in_context"] = ic
        return d

    def to_nested(self) -> dict:
        """``{section: {option: value}}`` with the section-local names (``finetune.steps``, …):
        the shape of a TOML/YAML config file."""
        flat = dataclasses.asdict(self)
        out: dict = {"preset": flat["preset"]}
        for sec, names in SECTIONS.items():
            out[sec] = {short: flat[name] for short, name in names.items()}
        out[IN_CONTEXT] = flat["in_context"]
        return out

    def replace(self, **kw) -> "TrainConfig":
        """A copy with some options changed (any spelling :func:`resolve_config` accepts)."""
        return _build({**_flat_values(self), **_canonical(kw, "overrides")}, "overrides")

    @property
    def min_examples(self) -> int:
        return int(self.min_per_class) if self.min_per_class is not None else self.k_support + self.k_query

    def n_iterations(self, n_train_tasks: int) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        return int(self.epochs) * max(1, -(-n_train_tasks // self.tasks_per_step))


_FIELDS = {f.name: f for f in fields(TrainConfig) if f.name != "in_context"}
_IC_FIELDS = {f.name: f for f in fields(InContextOptions)}
#: shared options whose ``None`` means something (see :class:`TrainConfig`); ``remove_auc`` also takes false
_OPTIONAL = ("iterations", "min_per_class", "threads", "remove_auc")
IN_CONTEXT = "in_context"


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


#: section → {option name inside the section: flat option name}. The one declaration of which
#: component each option belongs to; files, overrides, ``--set`` and the docs follow it.
SECTIONS: dict[str, dict[str, str]] = {
    "model": _same("hidden", "lstm_dropout", "encoder_dims", "encoder_dropout", "encoder_channels_per_group",
                   "learner"),
    "tasks": _same("k_support", "k_query", "min_per_class", "val_fraction"),
    "meta": _same("tasks_per_step", "iterations", "epochs", "inner_lr", "inner_steps", "first_order", "outer_lr",
                  "encoder_lr", "min_lr", "task_noise", "remove_auc", "remove_lookback", "val_every",
                  "val_repeats", "checkpoint_every"),
    "finetune": {"lr": "ft_lr", "steps": "ft_steps", "batch": "ft_batch", "budget": "ft_budget",
                 "auto_lr": "ft_auto_lr", "max_steps": "ft_max_steps", "folds": "ft_folds"},
    "ensemble": {"prior": "ens_prior", "trees": "ens_trees"},
    "forest": {"trees": "rf_trees"},
    "presto_ft": {"train_blocks": "pft_train_blocks", "precision": "pft_precision"},
    "pretrain": {"lr": "pt_lr", "steps": "pt_steps", "val_every": "pt_val_every", "patience": "pt_patience"},
    "execution": _same("device", "dtype", "vectorize", "threads"),
}
#: other names of the sections (tables that earlier versions flattened)
SECTION_ALIASES = {"meta_training": "meta", "fine_tuning": "finetune", "run": "execution", "incontext": IN_CONTEXT}
_declared = [n for names in SECTIONS.values() for n in names.values()]
assert sorted(_declared) == sorted(set(_FIELDS) - {"preset"}), "every option belongs to exactly one section"


def _spellings() -> list[str]:
    """Every accepted option name, for "did you mean" hints."""
    out = list(_FIELDS) + [f"ic_{n}" for n in _IC_FIELDS]
    out += [f"{sec}.{short}" for sec, names in SECTIONS.items() for short in names]
    out += [f"{IN_CONTEXT}.{n}" for n in _IC_FIELDS]
    return out


def _unknown(key: str, source: str, candidates: list[str], where: str = "",
             what: str = "training option") -> ConfigError:
    owner = [f"{sec}.{short}" for sec, names in SECTIONS.items() for short, flat in names.items() if key == flat]
    close = owner or difflib.get_close_matches(key, list(dict.fromkeys(candidates)), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{source}: unknown {what} {key!r}{where}{hint}")


def _section_of(name: str) -> str | None:
    name = SECTION_ALIASES.get(name, name)
    return name if name in SECTIONS or name == IN_CONTEXT else None


def _section_values(sec: str, d: dict, source: str) -> dict:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = str(k).strip().replace("-", "_")
        if sec == IN_CONTEXT:
            name = key[3:] if key.startswith("ic_") else key
            if name not in _IC_FIELDS:
                raise _unknown(name, source, list(_IC_FIELDS), f" in [{IN_CONTEXT}]", "in-context option")
            out[f"ic_{name}"] = v
            continue
        names = SECTIONS[sec]
        flat = names.get(key) or (key if key in names.values() else None)
        if flat is None:
            raise _unknown(key, source, list(names) + list(names.values()), f" in [{sec}]")
        out[flat] = v
    return out


def _canonical(d: dict, source: str) -> dict:
    """Any accepted spelling (nested sections, ``section.key``, flat names) → ``{flat name: value}``
    (in-context options as ``ic_<name>``). Unknown keys raise :class:`ConfigError` with a suggestion."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: config must be a mapping of option = value")
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = str(k).strip().replace("-", "_")
        head, dot, rest = key.partition(".")
        sec = _section_of(head)
        if dot and sec is not None:
            out.update(_section_values(sec, {rest: v}, source))
        elif not dot and sec is not None and isinstance(v, dict):
            out.update(_section_values(sec, v, source))
        elif key == "train" and isinstance(v, dict):  # earlier versions' catch-all table
            out.update(_canonical(v, source))
        elif key in _FIELDS or (key.startswith("ic_") and key[3:] in _IC_FIELDS):
            out[key] = v
        elif key == IN_CONTEXT and v is None:
            continue
        elif key.startswith("ic_"):
            raise _unknown(key, source, [f"ic_{n}" for n in _IC_FIELDS], what="in-context option")
        else:
            raise _unknown(key, source, _spellings())
    return out


def config_with_overrides(config, overrides: dict | None):
    """A config file (or dict of options) plus option overrides in any spelling (``--set``): the
    config unchanged without overrides, else one dict, the overrides last (resolved and validated
    by :func:`resolve_config` where it is used)."""
    if not overrides:
        return config
    base = dict(config) if isinstance(config, dict) else (load_config_file(config) if config is not None else {})
    return {**base, **overrides}


def load_config_file(path: str | Path) -> dict:
    """Read a TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON config into ``{flat name: value}``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
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
            raise ConfigError(f"{path}: unknown config format (use .toml, .yaml/.yml or .json)")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser error is the file's fault
        raise ConfigError(f"{path}: cannot parse config ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of option = value")
    return _canonical(data, str(path))


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    if default is dataclasses.MISSING:
        default = _FIELDS[name].default_factory()  # type: ignore[misc]
    if name == "remove_auc" and isinstance(value, bool):
        if value:
            raise ConfigError(f"{source}: option 'remove_auc' = true: give an AUC threshold (e.g. 0.95) "
                             "or false to switch task removal off")
        return None
    if value is None:
        if name in _OPTIONAL:
            return None
        raise ConfigError(f"{source}: option {name!r} cannot be empty")
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
        raise ConfigError(f"{source}: option {name!r} = {value!r} is not a valid {kind.__name__}") from None


def _validate(cfg: TrainConfig, source: str) -> TrainConfig:
    for name in _FIELDS:
        setattr(cfg, name, _coerce(name, getattr(cfg, name), source))
    positive = ["hidden", "k_support", "k_query", "tasks_per_step", "epochs", "inner_steps", "val_every",
                "val_repeats", "checkpoint_every", "ft_steps", "ft_batch", "ft_max_steps", "ens_trees", "rf_trees", "pt_steps", "pt_val_every",
                "pt_patience", "remove_lookback", "encoder_channels_per_group"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{source}: option {name!r} must be ≥ 1, got {getattr(cfg, name)}")
    for name in ("lstm_dropout", "encoder_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"{source}: option {name!r} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.pft_train_blocks not in (1, 2):
        raise ConfigError(f"{source}: presto_ft.train_blocks must be 1 or 2 (Presto has 2 blocks), "
                          f"got {cfg.pft_train_blocks}")
    if cfg.pft_precision not in ("fp32", "bf16", "auto"):
        raise ConfigError(f"{source}: presto_ft.precision must be fp32, bf16 or auto, got {cfg.pft_precision!r}")
    if cfg.ft_budget not in ("fixed", "auto"):
        raise ConfigError(f"{source}: finetune.budget must be fixed or auto, got {cfg.ft_budget!r}")
    if cfg.ft_folds < 2:
        raise ConfigError(f"{source}: finetune.folds must be ≥ 2, got {cfg.ft_folds}")
    if cfg.ft_max_steps < 25:
        raise ConfigError(f"{source}: finetune.max_steps must be ≥ 25 (the auto budget's shortest candidate), "
                          f"got {cfg.ft_max_steps}")
    for name in ("inner_lr", "outer_lr", "encoder_lr", "ft_lr", "ft_auto_lr", "pt_lr"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{source}: option {name!r} must be > 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"{source}: val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.iterations is not None and cfg.iterations < 0:
        raise ConfigError(f"{source}: iterations must be ≥ 0, got {cfg.iterations}")
    # the name is checked against the learner registry where it is used (cropmeta.learners.get_learner:
    # the registry sits above the configuration, so that a learner can declare its own section)
    if not isinstance(cfg.learner, str) or not cfg.learner.strip():
        raise ConfigError(f"{source}: learner must be the name of a registered learner, got {cfg.learner!r}")
    if cfg.dtype not in ("float32", "float64"):
        raise ConfigError(f"{source}: dtype must be float32 or float64, got {cfg.dtype!r}")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"{source}: device must be auto, cpu or cuda, got {cfg.device!r}")
    if not cfg.encoder_dims:
        raise ConfigError(f"{source}: encoder_dims must list at least one width")
    if cfg.min_per_class is not None and cfg.min_per_class < cfg.k_support + cfg.k_query:
        raise ConfigError(f"{source}: min_per_class ({cfg.min_per_class}) must be ≥ k_support + k_query "
                         f"({cfg.k_support + cfg.k_query})")
    return cfg


def _flat_values(cfg: TrainConfig) -> dict:
    vals = {n: copy.deepcopy(getattr(cfg, n)) for n in _FIELDS}
    vals.update({f"ic_{k}": v for k, v in cfg.in_context.to_dict().items()})
    return vals


def _build(values: dict, source: str) -> TrainConfig:
    """The one merge target: a validated :class:`TrainConfig` from ``{flat name: value}`` over the defaults."""
    cfg = TrainConfig()
    opts = InContextOptions()
    for k, v in values.items():
        if k.startswith("ic_"):
            name = k[3:]
            if v is None and name not in IC_OPTIONAL:
                raise ConfigError(f"{source}: in-context option {name!r} cannot be empty")
            setattr(opts, name, v)
        else:
            setattr(cfg, k, v)
    cfg.in_context = opts._validate()
    return _validate(cfg, source)


def resolve_config(preset: str | None = "quick", config_file: str | Path | None = None,
                   overrides: dict | None = None) -> TrainConfig:
    """Defaults → preset → config file → overrides, merged once (``None`` values in overrides:
    not given). Files and overrides accept every spelling of :data:`SECTIONS` (see the module doc).

    >>> resolve_config("quick", overrides={"finetune": {"steps": 9}, "in_context.d_model": 32}).ft_steps
    9
    """
    file_vals: dict = load_config_file(config_file) if config_file is not None else {}
    over = {k: v for k, v in _canonical(overrides or {}, "overrides").items() if v is not None}
    name = str(over.get("preset") or preset or file_vals.get("preset") or "quick").lower()
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; presets: {', '.join(PRESETS)}")
    given = {**{k: v for k, v in file_vals.items() if k != "preset"}, **{k: v for k, v in over.items() if k != "preset"}}
    if ("ft_steps" in given or "ft_lr" in given) and "ft_budget" not in given:
        given["ft_budget"] = "fixed"  # a number of steps or a learning rate asked for is what is run
    if "iterations" in given and "ic_iterations" not in given:
        given["ic_iterations"] = None  # a schedule asked for is every learner's (the preset's own in-context length aside)
    values = {**PRESETS[name], **given, "preset": name}
    return _build(values, str(config_file) if config_file else "config")


def config_from_dict(d: dict, source: str = "config.json") -> TrainConfig:
    """Rebuild a resolved config (e.g. from a run directory's config.json), flat or nested."""
    return _build(_canonical(d, source), source)


def in_context_keys(overrides: dict | None) -> list[str]:
    """The in-context options given (not ``None``) in ``overrides``, in any spelling, as ``ic_<name>``."""
    given = _canonical(overrides or {}, "overrides")
    return sorted(k for k, v in given.items() if k.startswith("ic_") and v is not None)


