"""The parts of the training configuration that need no :class:`~cropmeta.train.config.TrainConfig`:
the in-context learner's options section (:class:`InContextOptions`), the presets, ``--set``
parsing and the comparison of a resumed run's settings."""

from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from cropmeta.errors import ConfigError


@dataclass
class InContextOptions:
    """The in-context learner's own options: the ``[in_context]`` section of the configuration
    (``TrainConfig.in_context``; flat spelling ``ic_<name>``). Everything else (tasks, shots, seeds,
    task noise, validation, learning-rate floor, device) is the shared config."""

    d_model: int = 64  #: token width (and LSTM hidden size of the sample encoder)
    layers: int = 2  #: transformer blocks
    heads: int = 4
    ff: int = 128  #: feed-forward width
    dropout: float = 0.1
    use_task_info: bool = True  #: condition on the 13 task-information numbers (a task token)
    flip_prob: float = 0.5  #: probability that a meta-training task has its labels flipped
    vary_support: float = 0.5  #: probability of a random smaller / unbalanced support set
    lr: float | None = None  #: Adam learning rate (None: the config's outer_lr)
    iterations: int | None = None  #: outer steps (None: as TIML, the config's n_iterations)
    max_support: int | None = None  #: support samples read at once (None: 2 · k_support)
    grad_clip: float = 1.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resolve(cls, cfg=None, overrides: dict | None = None) -> "InContextOptions":
        """``cfg.in_context`` (``cfg``: a TrainConfig; defaults when None) ← ``overrides`` (names with or without
        ``ic_``; ``None`` values: not given)."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        vals: dict = {}
        for k, v in (overrides or {}).items():
            key = str(k).replace("-", "_")
            key = key[3:] if key.startswith("ic_") else key
            if key not in names:
                close = difflib.get_close_matches(key, list(names), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"unknown in-context option {k!r}{hint}; known: {', '.join(names)}")
            if v is not None:
                vals[key] = v
        base = getattr(cfg, "in_context", None)
        opts = copy.copy(base) if isinstance(base, cls) else cls()
        for k, v in vals.items():
            setattr(opts, k, v)
        return opts._validate()

    def _validate(self) -> "InContextOptions":
        try:
            for n in ("d_model", "layers", "heads", "ff"):
                setattr(self, n, int(getattr(self, n)))
            for n in ("dropout", "flip_prob", "vary_support", "grad_clip"):
                setattr(self, n, float(getattr(self, n)))
            if isinstance(self.use_task_info, str):
                self.use_task_info = self.use_task_info.strip().lower() in ("1", "true", "yes", "on")
            self.use_task_info = bool(self.use_task_info)
            self.lr = None if self.lr is None else float(self.lr)
            self.iterations = None if self.iterations is None else int(self.iterations)
            self.max_support = None if self.max_support is None else int(self.max_support)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"in-context options: {e}") from None
        if min(self.d_model, self.layers, self.heads, self.ff) < 1:
            raise ConfigError("in-context options: d_model, layers, heads and ff must be ≥ 1")
        if self.d_model % self.heads:
            raise ConfigError(f"in-context options: d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        for n in ("dropout", "flip_prob", "vary_support"):
            if not 0 <= getattr(self, n) <= (1 if n != "dropout" else 0.999):
                raise ConfigError(f"in-context options: {n} must be in [0, 1], got {getattr(self, n)}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"in-context options: lr must be > 0, got {self.lr}")
        if self.iterations is not None and self.iterations < 0:
            raise ConfigError(f"in-context options: iterations must be ≥ 0, got {self.iterations}")
        if self.max_support is not None and self.max_support < 2:
            raise ConfigError(f"in-context options: max_support must be ≥ 2, got {self.max_support}")
        return self


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
        # fine-tuning as long as the target's shots show it helps (inner cross-validation; issue 26)
        "ft_budget": "auto",
        # the in-context learner ignores its support labels after 200 outer steps and reads them after
        # 2,000 (benchmarks/diagnose_incontext.py, docs/learners.md §1.1)
        "ic_iterations": 2000,
        # the learner with the best maps on the real benchmarks (issue 26: docs/results/deafrica-v2,
        # README "Which learner makes the best map"); TIML is `--learner timl`, and the paper preset's
        "learner": "ensemble",
    },
}


#: in-context options whose ``None`` means something (see :class:`InContextOptions`)
IC_OPTIONAL = ("lr", "iterations", "max_support")


#: options a ``--resume`` may change (how the run executes, not what it computes); the one list the
#: run directory's and both learners' resume checks use
RESUME_MAY_CHANGE = frozenset({"device", "threads", "vectorize", "val_every", "checkpoint_every", "nprocs"})


def parse_assignments(items) -> dict:
    """``["finetune.steps=9", "remove_auc=false"]`` (the CLI's ``--set``) → overrides; each value
    is read as a TOML value (numbers, booleans, lists, quoted strings), else kept as a string."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items or ():
        key, eq, raw = str(item).partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. finetune.steps=100")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key.strip()] = value
    return out


def config_changes(old: dict, new: dict, may_change=RESUME_MAY_CHANGE) -> list[str]:
    """The keys whose values differ between two saved configurations, leaving out those a resume
    may change (:data:`RESUME_MAY_CHANGE`)."""
    return sorted(k for k in set(old) | set(new) if k not in may_change and old.get(k) != new.get(k))
