"""The comparison's method names: display labels in report order, aliases, the variants (``+sim``,
``+views``), each method's shot mode and extra inputs, and resolving what a user typed."""

from __future__ import annotations

import difflib

from cropmeta.errors import InputError

#: method name → display label, in report order (TIML first: it is compared against the others)
METHOD_LABELS = {
    "timl": "TIML",
    "maml": "MAML",
    "pretrained": "Plain pretraining",
    "scratch": "From scratch",
    "random-forest": "Random forest",
    "in-context": "In-context learner",
    "presto": "Presto (frozen) + logistic regression",
    "presto-ft": "Presto fine-tuned",
    "presto-timl": "Task-informed Presto (TIML head)",
    "presto-maml": "Presto + MAML head (no task info)",
    "random-forest-source": "Random forest (other regions)",
    "random-forest-both": "Random forest (local + other regions)",
    "oracle-rf": "Oracle random forest",
    "oracle-lstm": "Oracle LSTM (from scratch)",
}
ALL_METHODS = tuple(METHOD_LABELS)
ALIASES = {
    "rf": "random-forest", "random_forest": "random-forest", "randomforest": "random-forest",
    "from-scratch": "scratch", "from_scratch": "scratch", "pretrain": "pretrained", "pretraining": "pretrained",
    "plain-pretraining": "pretrained", "incontext": "in-context", "in_context": "in-context", "icl": "in-context",
    "presto-r": "presto", "presto-lr": "presto", "presto_ft": "presto-ft", "presto-finetune": "presto-ft",
    "presto_timl": "presto-timl", "task-informed-presto": "presto-timl", "presto_maml": "presto-maml",
    "rf-both": "random-forest-both", "random-forest-local-and-source": "random-forest-both",
    "rf-source": "random-forest-source", "source-rf": "random-forest-source", "rf-other-regions": "random-forest-source",
    "oracle": "oracle-rf", "oracle-random-forest": "oracle-rf", "oracle-lstm-scratch": "oracle-lstm",
}
#: which shot counts a method runs at (methods not listed: "few", k ≥ 4 target labels it is fitted on):
#: "few+zero" also k = 0 — the prepared model predicts the target as it is, with no target label and no
#: fine-tuning (TIML reads the target's task information); "zero" k = 0 only; "fixed" independent of
#: k: one cell per seed (shot key :data:`FIXED_SHOTS`), shown at every shot count
SHOT_MODES = {"timl": "few+zero", "maml": "few+zero", "pretrained": "few+zero", "presto-timl": "few+zero",
              "presto-maml": "few+zero",
              "random-forest-source": "zero", "oracle-rf": "fixed", "oracle-lstm": "fixed"}
FIXED_SHOTS = "any"
#: target data a method needs beyond the shots, by key of ``TargetTask.extra`` (an object with a
#: ``hash``, which enters the cell's cache fingerprint): the oracle rows need the simulated oracle
METHOD_INPUTS = {"oracle-rf": ("oracle",), "oracle-lstm": ("oracle",)}
#: variants of a method, written as suffixes: ``timl+sim`` (pretrained on the simulated world, then
#: the real source: ``--pretrain-source sim``), ``timl+views`` (fitted on labels + generative views:
#: ``--views N``), ``timl+sim+views``
SIM_METHODS = ("timl", "maml", "pretrained", "in-context")
VARIANTS = ("sim", "views")
VARIANT_LABELS = {"sim": " (sim → real)", "views": " + views"}


def split_method(name: str) -> tuple[str, tuple[str, ...]]:
    """``"timl+sim+views"`` → ``("timl", ("sim", "views"))`` (no validation)."""
    parts = [p.strip() for p in str(name).split("+")]
    return parts[0], tuple(parts[1:])


def method_label(name: str) -> str:
    """Display label of a method or variant, e.g. "TIML (sim → real) + views"."""
    base, variants = split_method(name)
    return METHOD_LABELS.get(base, base) + "".join(VARIANT_LABELS.get(v, f" + {v}") for v in variants)


def _registered_learner(name: str) -> bool:
    """Whether ``name`` is a learner registered in :mod:`cropmeta.learners` (a method of the
    comparison through :class:`cropmeta.evaluate.deep.LearnerMethod`, labelled by its kind)."""
    from cropmeta.learners.base import kinds

    return name in kinds()


def _resolve_one(m) -> str:
    raw = str(m).strip().lower().replace(" ", "-")
    base, variants = split_method(raw)
    base = ALIASES.get(base, base)
    if base not in METHOD_LABELS and not _registered_learner(base):
        close = difflib.get_close_matches(base, list(METHOD_LABELS) + list(ALIASES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"unknown method {m!r}{hint}; known: {', '.join(METHOD_LABELS)} "
                         f"(variants: <method>+sim, <method>+views)")
    bad = [v for v in variants if v not in VARIANTS]
    if bad or len(set(variants)) != len(variants):
        raise InputError(f"method {m!r}: unknown or repeated variant {bad or list(variants)}; variants are +sim, +views")
    if "sim" in variants and base not in SIM_METHODS:
        raise InputError(f"method {m!r}: sim pretraining applies to {', '.join(SIM_METHODS)}")
    if "views" in variants and SHOT_MODES.get(base, "few") in ("zero", "fixed"):
        raise InputError(f"method {m!r}: generative views are made from the target's labels; "
                         f"{base} uses none")
    return "+".join([base] + [v for v in VARIANTS if v in variants])


def resolve_methods(methods) -> list[str]:
    """Normalise a list / comma-separated string of method names (aliases accepted, variants
    ``+sim`` / ``+views`` allowed), report order kept as given, duplicates removed. Unknown names →
    :class:`InputError` with close matches."""
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    out: list[str] = []
    for m in methods:
        key = _resolve_one(m)
        if key not in out:
            out.append(key)
    if not out:
        raise InputError("no method selected")
    return out


def expand_methods(methods: list[str], views: int = 0, pretrain_source: str | None = None) -> list[str]:
    """The rows of a comparison: each method, its ``+sim`` variant (``pretrain_source == "sim"``,
    methods that pretrain only) and, with ``views`` > 0, the ``+views`` variant of each of those."""
    if pretrain_source not in (None, "none", "sim"):
        raise InputError(f"--pretrain-source {pretrain_source!r}: expected 'sim' (or none)")
    if int(views or 0) < 0:
        raise InputError(f"--views must be ≥ 0, got {views}")
    out: list[str] = []
    for m in resolve_methods(methods):
        base, variants = split_method(m)
        rows = [m]
        if pretrain_source == "sim" and base in SIM_METHODS and "sim" not in variants:
            rows.append(_resolve_one(m + "+sim"))
        if views and "views" not in variants and SHOT_MODES.get(base, "few") not in ("zero", "fixed"):
            rows += [_resolve_one(r + "+views") for r in list(rows)]
        out += [r for r in rows if r not in out]
    return out


def shot_mode(name: str) -> str:
    """:data:`SHOT_MODES` of a method or variant ("+views" rows are fitted on labels: never zero-shot)."""
    base, variants = split_method(name)
    mode = SHOT_MODES.get(base, "few")
    return "few" if mode == "few+zero" and "views" in variants else mode


def is_zero(k) -> bool:
    """Whether shot count ``k`` is the zero-shot column."""
    return str(k) == "0"


def method_shots(name: str, shots: list) -> list:
    """The cells' shot keys of ``name`` for the shot counts ``shots`` (see :data:`SHOT_MODES`)."""
    mode = shot_mode(name)
    if mode == "fixed":
        return [FIXED_SHOTS]
    if mode == "zero":
        return [k for k in shots if is_zero(k)]
    return list(shots) if mode == "few+zero" else [k for k in shots if not is_zero(k)]


def cell_shots(name: str, k):
    """The shot key of ``name``'s cell shown at shot count ``k`` (None: no cell there)."""
    keys = method_shots(name, [k])
    return keys[0] if keys else None
