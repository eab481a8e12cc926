"""``cropmeta models import-timl``: a checkpoint of the TIML paper code (Tseng, Kerner & Rolnick 2022,
nasaharvest/timl) → a cropmeta run directory (``model.safetensors`` + ``model.json`` +
``config.json``, as :func:`cropmeta.train.checkpoint.save_model` writes them), so ``cropmeta export
--run`` and every loader of :mod:`cropmeta.train.checkpoint` read it.

Inputs:

- ``CLASSIFIER.pth`` (the paper's ``state_dict.pth``) and, for a TIML model, ``ENCODER.pth``
  (``encoder_state_dict.pth``). Both are read with ``torch.load(weights_only=True)`` only (no
  arbitrary unpickling) and must match the paper layout key for key and shape for shape
  (:mod:`cropmeta.models.timl_layout`); anything else is refused in one line naming the file and the
  key, and nothing is written. Without an encoder the classifier is the paper's "no task
  information" model (18 bands per step) or its concatenation ablation (18 + 13 inputs).
- **Normalisation** (not in the state dicts: the paper code sets ``Classifier.normalizing_dict``
  from the training data, CropHarvest's ``normalizing_dict``): ``{"mean": [18], "std": [18]}`` in
  CropHarvest band order (= :data:`cropmeta.schema.BANDS`), as a JSON file or dict; a cropmeta
  ``Normalizer`` JSON (with ``bands``) works too.
- **Task information** of the target (models that use it): ``region`` + ``crop`` (cropmeta's
  :func:`~cropmeta.tasks.make_task`) or the 13 numbers themselves.
- ``ndvi="cropharvest"``: the model was trained on the CropHarvest arrays, whose NDVI column is
  (B7 − B3)/(B7 + B3); the run records it and prediction rebuilds that column from the canonical
  bands (:data:`cropmeta.schema.NDVI_RULES`). Default ``true`` (real NDVI).

The weights are copied exactly (float32, as saved); predictions equal the paper model's to float32
rounding (tests/test_import_timl.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta._fs import atomic_dir, atomic_write_text
from cropmeta.provenance import sha256_file
from cropmeta.models import timl_layout as lay
from cropmeta.models.timl import TaskEncoder, TIMLClassifier
from cropmeta.schema import BANDS, DEFAULT_T, N_BANDS, Normalizer, check_ndvi_rule
from cropmeta.crops import TASK_INFO_DIM

__all__ = ["import_timl", "load_reference_state", "load_normalization"]


def load_reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A paper checkpoint's state dict, read with ``torch.load(weights_only=True)`` (never a full
    unpickle); :class:`InputError` naming the file when it is missing, unreadable or not a dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the restricted loader is one clear line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a weights-only torch state dict ({first})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a state dict (name → tensor)")
    return dict(state)


def load_normalization(normalization, source: str = "normalization") -> Normalizer:
    """A :class:`~cropmeta.schema.Normalizer` from CropHarvest-style ``{"mean", "std"}`` (a dict or a
    JSON file) or a cropmeta normaliser JSON (``bands``, ``count``, ``mean``, ``m2``)."""
    if isinstance(normalization, Normalizer):
        return normalization
    d = normalization
    if isinstance(normalization, (str, Path)):
        source = str(normalization)
        p = Path(normalization)
        if not p.is_file():
            raise InputError(f"{p}: normalisation file not found")
        try:
            d = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or "mean" not in d or ("std" not in d and "m2" not in d):
        raise InputError(f"{source}: expected an object with 'mean' and 'std' ({N_BANDS} numbers each, bands "
                         f"{', '.join(BANDS)})")
    if "bands" in d and list(d["bands"]) != list(BANDS):
        raise InputError(f"{source}: band order {d['bands']} differs from cropmeta's {BANDS}")
    if "m2" in d and "count" in d:
        return Normalizer.from_dict(d, source)
    try:
        return Normalizer.from_mean_std(d["mean"], d["std"], source)
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: mean and std must be lists of numbers ({e})") from None


def _target(task_info, region: str | None, crop: str | None) -> tuple[np.ndarray, dict]:
    if task_info is not None:
        if region is not None:
            raise InputError("give the task either as region/crop or as its 13 task-information numbers, not both")
        try:
            ti = np.asarray(task_info, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise InputError(f"task information must be {TASK_INFO_DIM} numbers ({e})") from None
        if len(ti) != TASK_INFO_DIM or not np.isfinite(ti).all():
            raise InputError(f"task information must be {TASK_INFO_DIM} finite numbers, got {len(ti)}")
        return ti.astype(np.float32), {"info": [float(v) for v in ti]}
    if region is None:
        raise InputError("this checkpoint uses task information: give the target's region and crop "
                         f"(--region, --crop) or its {TASK_INFO_DIM} numbers (--task-info)")
    from cropmeta.tasks import make_task

    task = make_task(region, crop)
    return task.info, task.to_dict()


def import_timl(classifier: str | Path, encoder: str | Path | None, out: str | Path, *, normalization,
                region: str | None = None, crop: str | None = None, task_info=None, ndvi: str | None = None,
                channels_per_group: int = 16, t: int | None = None, overwrite: bool = False) -> dict:
    """Convert a TIML paper checkpoint into the run directory ``out`` (written whole, atomically:
    a temporary directory renamed into place). Returns the run's ``model.json`` record.

    ``t``: time steps (read from the encoder; only needed, default 12, without one).
    ``channels_per_group``: the encoder's GroupNorm channels per group (the paper's default 16;
    ``num_encoder_channels_per_group`` in its ``model_info.json``)."""
    from cropmeta.train import checkpoint as ck
    from cropmeta.train.config import resolve_config
    from cropmeta.train.trained import TrainedModel

    ndvi = check_ndvi_rule(ndvi, "--ndvi")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(f"{out}: already exists and is not empty (pass overwrite to replace it)")
    cpath = Path(classifier)
    cstate = load_reference_state(cpath)
    n_inputs, hidden = lay.classifier_sizes(cstate, str(cpath))
    lay.check_layout(cstate, lay.classifier_layout(n_inputs, hidden), str(cpath))
    epath = Path(encoder) if encoder is not None else None
    estate, sizes = None, None
    if epath is not None:
        estate = load_reference_state(epath)
        sizes = lay.encoder_sizes(estate, N_BANDS, str(epath))
        lay.check_layout(estate, lay.encoder_layout(TASK_INFO_DIM, sizes["dims"], sizes["t"], N_BANDS, hidden),
                         str(epath))
        if n_inputs != N_BANDS:
            raise InputError(f"{cpath}: key 'base.0.rnn.forget_gate.0.weight' takes {n_inputs} bands per step; with a "
                             f"task encoder the paper model takes {N_BANDS}")
        if int(channels_per_group) < 1:
            raise InputError(f"channels per group must be a positive number, got {channels_per_group}")
        bad = [d for d in sizes["dims"] if d % int(channels_per_group)]
        if bad:
            raise InputError(f"{epath}: encoder width {bad[0]} (key 'initial_encoder.{4 * sizes['dims'].index(bad[0])}"
                             f".weight') is not divisible by {channels_per_group} channels per group "
                             "(set channels_per_group)")
        if t is not None and int(t) != sizes["t"]:
            raise InputError(f"{epath}: key 'task_embedding_0_gamma.linear.weight' is for T={sizes['t']} time "
                             f"steps, not the T={int(t)} asked for")
        t = sizes["t"]
    elif n_inputs not in (N_BANDS, N_BANDS + TASK_INFO_DIM):
        raise InputError(f"{cpath}: key 'base.0.rnn.forget_gate.0.weight' takes {n_inputs} inputs per step; the "
                         f"paper model takes {N_BANDS} bands (or {N_BANDS + TASK_INFO_DIM} with task information "
                         "concatenated)")
    t = int(DEFAULT_T if t is None else t)
    if t < 1:
        raise InputError(f"T must be a positive number of time steps, got {t}")
    extra_inputs = n_inputs - N_BANDS
    kind = "timl" if estate is not None else ("concat" if extra_inputs else "maml")
    norm = load_normalization(normalization)
    uses_info = estate is not None or extra_inputs > 0
    ti, task = _target(task_info, region, crop) if uses_info else (None, None)
    if not uses_info and (task_info is not None or region is not None):
        raise InputError(f"{cpath}: without an encoder this classifier ({N_BANDS} inputs) uses no task information; "
                         "pass its ENCODER.pth too, or drop the task options")

    cfg_over = {"hidden": hidden, "lstm_dropout": 0.2, "encoder_dropout": 0.2, "learner": kind,
                "encoder_channels_per_group": int(channels_per_group)}
    if sizes is not None:
        cfg_over["encoder_dims"] = list(sizes["dims"])
    cfg = resolve_config("paper", overrides=cfg_over)
    clf = TIMLClassifier(t=t, n_bands=N_BANDS, hidden=hidden, dropout=cfg.lstm_dropout, extra_inputs=extra_inputs)
    clf.load_state_dict(lay.classifier_from_reference(cstate, n_inputs))
    enc = None
    if estate is not None:
        enc = TaskEncoder(t=t, n_bands=N_BANDS, hidden=hidden, dims=sizes["dims"], dropout=cfg.encoder_dropout,
                          channels_per_group=int(channels_per_group))
        enc.load_state_dict(lay.encoder_from_reference(estate, len(sizes["dims"])))
    imported = {"from": "nasaharvest/timl", "classifier": cpath.name, "classifier_sha256": sha256_file(cpath),
                "encoder": epath.name if epath is not None else None,
                "encoder_sha256": sha256_file(epath) if epath is not None else None}
    model = TrainedModel(kind, clf.eval(), enc.eval() if enc is not None else None, norm, cfg, ti,
                         {"imported": imported, "task": task}, ndvi)
    with atomic_dir(out) as tmp:
        meta = ck.save_model(tmp, model, {"task": task, "seed": None, "date_range": None, "config": cfg.to_dict(),
                                          "imported": imported})
        atomic_write_text(tmp / "config.json", json.dumps({**cfg.to_dict(), "target": task, "seed": None,
                                                            "ndvi": ndvi, "imported": imported}, indent=2))
    return meta
