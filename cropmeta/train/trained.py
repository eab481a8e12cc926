"""A trained (or initialised) model: classifier + optional task encoder + normalisation, and the
functions every method shares (device choice, model construction, prediction)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from cropmeta.errors import InputError, ModelError, NotFittedError
from cropmeta.models.timl import TaskEncoder, TIMLClassifier
from cropmeta.bandschema import BandSchema
from cropmeta.schema import CROPHARVEST, DEFAULT_NDVI_RULE, Normalizer, check_ndvi_rule, model_inputs
from cropmeta.crops import TASK_INFO_DIM
from cropmeta.learners.base import MODEL_FORMAT, MODEL_FORMAT_VERSION, Model, check_record
from cropmeta.train.config import TrainConfig, config_from_dict

__all__ = ["TrainedModel", "PREDICT_BATCH", "build_model", "from_scratch", "predict_proba", "seeded_init"]

#: how a model's weights were obtained
#: how each LSTM learner reads the task information: (through the task encoder's FiLM, concatenated
#: to every step's input); any other learner of the classifier (pretrained, scratch) reads none
TASK_INFO_USE = {"timl": (True, False), "maml": (False, False), "concat": (False, True)}
#: samples per forward pass of :func:`predict_proba`
PREDICT_BATCH = 8192


class seeded_init:
    """Context manager: the global torch RNG seeded for weight initialisation, restored afterwards
    (so building a model never disturbs anyone else's random stream)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def __enter__(self):
        self._ctx = torch.random.fork_rng(devices=[])
        self._ctx.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def build_model(cfg: TrainConfig, t: int, learner: str, seed: int = 0,
                n_bands: int | None = None) -> tuple[TIMLClassifier, TaskEncoder | None]:
    """A freshly initialised classifier (+ encoder for ``timl``: :data:`TASK_INFO_USE`), seeded.
    ``n_bands``: input bands per step (the training samples' ``schema.n_bands``; default the
    CropHarvest layout's)."""
    nb = CROPHARVEST.n_bands if n_bands is None else int(n_bands)
    film, concat = TASK_INFO_USE.get(learner, (False, False))
    with seeded_init(seed):
        extra = TASK_INFO_DIM if concat else 0
        clf = TIMLClassifier(t=t, n_bands=nb, hidden=cfg.hidden, dropout=cfg.lstm_dropout, extra_inputs=extra)
        enc = None
        if film:
            enc = TaskEncoder(t=t, n_bands=nb, hidden=cfg.hidden, dims=cfg.encoder_dims,
                              dropout=cfg.encoder_dropout, channels_per_group=cfg.encoder_channels_per_group)
    return clf, enc


@dataclass
class TrainedModel(Model):
    """Weights + everything needed to use them. ``kind`` says how they were obtained; ``task_info``
    is set by fine-tuning (the target task's 13 numbers) and used by :func:`predict_proba`. ``ndvi``:
    the NDVI rule of the model's input (:data:`cropmeta.schema.NDVI_RULES`; ``cropharvest`` for models
    trained on the CropHarvest arrays' NDVI column), applied by :meth:`inputs`. ``schema``: the band
    schema of its input (the training samples'; default CropHarvest-18), stored in checkpoints and
    checked against every input."""

    kind: str
    classifier: TIMLClassifier
    encoder: TaskEncoder | None
    normalizer: Normalizer | None
    config: TrainConfig
    task_info: np.ndarray | None = None
    info: dict = field(default_factory=dict)  # seed, data hash, task, history summary, …
    ndvi: str = DEFAULT_NDVI_RULE
    schema: BandSchema = CROPHARVEST

    def __post_init__(self) -> None:
        self.schema = model_schema(self.schema, self.classifier.n_bands, self.classifier.t)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Canonical samples (true NDVI) → this model's input bands (its NDVI rule), before normalising."""
        return model_inputs(x, self.ndvi)

    @property
    def t(self) -> int:
        return self.classifier.t

    @property
    def uses_task_info(self) -> bool:
        return self.encoder is not None or self.classifier.extra_inputs > 0

    @property
    def device(self) -> torch.device:
        return next(self.classifier.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.classifier.parameters()).dtype

    def to(self, device=None, dtype=None) -> "TrainedModel":
        self.classifier.to(device=device, dtype=dtype)
        if self.encoder is not None:
            self.encoder.to(device=device, dtype=dtype)
        return self

    def copy(self) -> "TrainedModel":
        return copy.deepcopy(self)

    # ---- the Model contract (cropmeta.learners.base.Model) -----------------------------------------
    def adapt(self, x: np.ndarray, y: np.ndarray, *, task_info=None, cfg: TrainConfig | None = None,
              seed: int = 0) -> "TrainedModel":
        """Fine-tune a copy on the target's labelled samples (:func:`cropmeta.train.finetune.finetune`)."""
        from cropmeta.train.finetune import finetune

        return finetune(self, x, y, task_info=task_info, cfg=cfg, seed=seed)

    def adapt_with_oof(self, x, y, folds, *, task_info=None, cfg: TrainConfig | None = None, seed: int = 0,
                       **context):
        """With the auto budget, its inner cross-validation's out-of-fold predictions (the same
        folds: :func:`cropmeta.train.finetune.shot_folds` of the shots and seed)."""
        cfg = cfg or self.config
        if cfg.ft_budget != "auto":
            return super().adapt_with_oof(x, y, folds, task_info=task_info, cfg=cfg, seed=seed)
        from cropmeta.train.finetune import auto_finetune

        return auto_finetune(self, x, y, task_info=task_info, cfg=cfg, seed=seed)

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None,
                      task_info=None) -> np.ndarray:
        """:func:`predict_proba` of this model."""
        return predict_proba(self, x, task_info=task_info, batch_size=batch_size or PREDICT_BATCH,
                             temperature=temperature)

    def zero_shot(self, task_info=None) -> "TrainedModel":
        """The model as it is, predicting a target it was not adapted to (TIML: from the target's task
        information, when it reads any)."""
        ti = task_info if self.uses_task_info else None
        return dataclasses.replace(self, task_info=None if ti is None else np.asarray(ti, np.float32))

    def check_ready(self, source) -> None:
        """Refuse to serve predictions when the model lacks what it reads (the target's task info)."""
        if self.task_info is None and self.uses_task_info:
            raise ModelError(f"{source}: the model needs task information but model.json records none")

    def task_inputs(self, task_info=None) -> tuple[dict | None, torch.Tensor | None]:
        """(FiLM, info) to pass to the classifier for one task (no gradient, encoder in eval mode)."""
        if not self.uses_task_info:
            return None, None
        ti = self.task_info if task_info is None else task_info
        if ti is None:
            raise InputError(f"this {self.kind} model needs the task information of the target (13 numbers)")
        ti = torch.as_tensor(np.asarray(ti, dtype=np.float64), dtype=self.dtype, device=self.device).view(1, -1)
        if ti.shape[1] != TASK_INFO_DIM:
            raise InputError(f"task information has {ti.shape[1]} numbers, expected {TASK_INFO_DIM}")
        if self.encoder is not None:
            self.encoder.eval()
            with torch.no_grad():
                return self.encoder(ti), None
        return None, ti

    # ---- (de)serialisation as JSON + named arrays (safetensors on disk: see checkpoint.py) ----------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"classifier.{k}": v.detach().cpu().numpy() for k, v in self.classifier.state_dict().items()}
        if self.encoder is not None:
            arrays.update({f"encoder.{k}": v.detach().cpu().numpy() for k, v in self.encoder.state_dict().items()})
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "kind": self.kind,
            "bands": list(self.schema.bands),
            "schema": self.schema.to_dict(),
            "t": self.t,
            "arch": {"classifier": self.classifier.arch(),
                     "encoder": self.encoder.arch() if self.encoder is not None else None},
            "normalizer": self.normalizer.to_dict() if self.normalizer is not None else None,
            "task_info": [float(v) for v in self.task_info] if self.task_info is not None else None,
            "config": self.config.to_dict(),
            "info": self.info,
            "ndvi": self.ndvi,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "TrainedModel":
        """Rebuild from :meth:`to_state` output; refuses another format, band layout, T or weight shapes."""
        kind = check_record(meta, source, cls)
        schema, mt = schema_of_record(meta, source, t)
        known = set(TrainConfig.__dataclass_fields__)  # options of a newer cropmeta are ignored here
        cfg = config_from_dict({k: v for k, v in (meta.get("config") or {}).items() if k in known},
                               f"{source} (config)")
        ca = (meta.get("arch") or {}).get("classifier") or {}
        ea = (meta.get("arch") or {}).get("encoder")
        try:
            clf = TIMLClassifier(t=mt, n_bands=int(ca["n_bands"]), hidden=int(ca["hidden"]),
                                 dropout=float(ca["dropout"]), extra_inputs=int(ca["extra_inputs"]))
            enc = None
            if ea is not None:
                enc = TaskEncoder(t=mt, n_bands=int(ea["n_bands"]), hidden=int(ea["hidden"]), dims=ea["dims"],
                                  dropout=float(ea["dropout"]), channels_per_group=int(ea["channels_per_group"]),
                                  info_dim=int(ea["info_dim"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{source}: model architecture record is incomplete ({e})") from e
        if clf.n_bands != schema.n_bands:
            raise ModelError(f"{source}: the model expects {clf.n_bands} bands per step, its band schema "
                             f"{schema.name!r} has {schema.n_bands}")
        load_module_state(clf, "classifier.", arrays, source)
        if enc is not None:
            load_module_state(enc, "encoder.", arrays, source)
        extra = set(arrays) - {f"classifier.{k}" for k in clf.state_dict()} - (
            {f"encoder.{k}" for k in enc.state_dict()} if enc is not None else set())
        if extra:
            raise ModelError(f"{source}: unexpected weights {sorted(extra)[:5]}")
        norm = (Normalizer.from_dict(meta["normalizer"], f"{source} (normalisation stats)", schema.bands)
                if meta.get("normalizer") else None)
        ti = np.asarray(meta["task_info"], dtype=np.float32) if meta.get("task_info") is not None else None
        clf.eval()
        if enc is not None:
            enc.eval()
        ndvi = check_ndvi_rule(meta.get("ndvi"), f"{source} (ndvi)")
        return cls(kind, clf, enc, norm, cfg, ti, dict(meta.get("info") or {}), ndvi, schema)


def model_schema(schema: BandSchema | None, n_bands: int, t: int) -> BandSchema:
    """The band schema of a model whose network takes ``n_bands`` per step over ``t`` steps (refuses a
    schema of another width: the weights could not read its inputs)."""
    schema = CROPHARVEST if schema is None else schema
    if schema.n_bands != int(n_bands):
        raise ModelError(f"band schema {schema.name!r} has {schema.n_bands} bands, the network takes {n_bands}")
    return schema if schema.t == int(t) else schema.with_t(int(t))


def schema_for_width(n_bands: int, t: int) -> BandSchema:
    """The schema of raw arrays known only by their width (a from-scratch model fitted on bare
    arrays): CropHarvest-18 for 18 bands, else anonymous bands ``band1`` … ``bandN``."""
    if int(n_bands) == CROPHARVEST.n_bands:
        return CROPHARVEST.with_t(int(t))
    return BandSchema(f"{int(n_bands)}-band input", dynamic=tuple(f"band{i + 1}" for i in range(int(n_bands))),
                      t=int(t))


def schema_of_record(meta: dict, source: str, t: int | None = None) -> tuple[BandSchema, int]:
    """(band schema, T) of a model record (``model.json``): its ``schema`` (records written before
    schemas were stored: CropHarvest-18), checked against the record's band list and, when given, the
    data's ``t``."""
    from cropmeta.errors import DataError

    try:
        schema = BandSchema.from_dict(meta["schema"], f"{source} (schema)") if meta.get("schema") else CROPHARVEST
    except DataError as e:
        raise ModelError(str(e)) from e
    if list(meta.get("bands") or []) != list(schema.bands):
        raise ModelError(f"{source}: band layout {meta.get('bands')} differs from its band schema "
                         f"{schema.name!r} ({', '.join(schema.bands)})")
    mt = int(meta.get("t", -1))
    if t is not None and mt != int(t):
        raise ModelError(f"{source}: the model was trained on T={mt} time steps, the data has T={t}")
    return schema, mt


def load_module_state(mod: torch.nn.Module, prefix: str, arrays: dict, source: str) -> None:
    sd = mod.state_dict()
    new = {}
    for k, ref in sd.items():
        key = prefix + k
        if key not in arrays:
            raise ModelError(f"{source}: weight {key!r} missing (another architecture or a damaged file)")
        v = torch.as_tensor(np.asarray(arrays[key]))
        if tuple(v.shape) != tuple(ref.shape):
            raise ModelError(f"{source}: weight {key!r} has shape {tuple(v.shape)}, the architecture needs "
                             f"{tuple(ref.shape)} (another band layout, T or model size)")
        if not torch.isfinite(v.double()).all():
            raise ModelError(f"{source}: weight {key!r} contains NaN or inf")
        new[k] = v.to(ref.dtype)
    mod.load_state_dict(new)


def from_scratch(cfg: TrainConfig | None = None, t: int = 12, seed: int = 0, normalizer: Normalizer | None = None,
                 learner: str = "maml", schema: BandSchema = CROPHARVEST) -> TrainedModel:
    """A randomly initialised classifier (the "from scratch" baseline; ``normalizer=None`` → fitted
    on the fine-tuning data by :func:`~cropmeta.train.finetune.finetune`) for inputs of ``schema``."""
    from cropmeta.train.config import resolve_config

    cfg = cfg or resolve_config("quick")
    clf, enc = build_model(cfg, t, learner, seed, schema.n_bands)
    kind = learner if any(TASK_INFO_USE.get(learner, (False, False))) else "scratch"
    return TrainedModel(kind, clf, enc, normalizer, cfg,
                        info={"seed": int(seed)}, schema=schema)


def predict_proba(model: TrainedModel, x: np.ndarray, task_info=None, batch_size: int = PREDICT_BATCH,
                  temperature: float | None = None) -> np.ndarray:
    """Crop probability of raw samples ``x [N, T, n_bands]`` of the model's band schema (an array, or
    a sample set whose schema is checked; normalised here). ``task_info`` defaults to the one
    fine-tuning stored; ``temperature`` divides the logits (calibration)."""
    x = model.inputs(model.schema.input_array(x))
    if x.shape[1] != model.t:
        raise InputError(f"the model was trained on T={model.t} time steps, the samples have T={x.shape[1]}")
    if model.normalizer is None:
        raise NotFittedError("the model has no normalisation statistics (fine-tune or train it first)")
    film, info = model.task_inputs(task_info)
    model.classifier.eval()
    out = np.empty(len(x), dtype=np.float64)
    mean = torch.as_tensor(model.normalizer.mean, dtype=model.dtype, device=model.device)
    std = torch.as_tensor(model.normalizer.std, dtype=model.dtype, device=model.device)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size], device=model.device).to(model.dtype)
            xb = ((xb - mean) / std).unsqueeze(0)
            logits = model.classifier(xb, film=film, info=info)[0]
            if temperature is not None:
                logits = logits / float(temperature)
            out[i : i + len(xb[0])] = torch.sigmoid(logits).double().cpu().numpy()
    return out
