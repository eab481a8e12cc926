"""Task-informed Presto: TIML's task information conditioning a head over frozen Presto embeddings,
meta-trained with learn2learn MAML over the same tasks and splits as TIML, then fine-tuned on the
target's shots like TIML.

- **Features**: the frozen Presto encoder's pooled embedding (128 numbers) of each sample
  (:func:`cropmeta.models.presto.presto_inputs`: the sample's own location and start date),
  standardised per dimension with the mean and standard deviation over the meta-training samples
  (kept in the model). The embeddings of the meta-training samples are computed once per
  (source data content hash, weights SHA-256) and cached on disk
  (:class:`cropmeta.models.presto_embed.PrestoEmbedder`).
- **Head** (:class:`PrestoFiLMHead`): the TIML classifier with its LSTM replaced by a linear layer on
  the embedding: FiLM(input) → Linear 128→H + GELU, dropout, BatchNorm (no affine) → FiLM →
  Linear H→H (no bias) + GELU + BatchNorm → FiLM → Linear H→1 (logit). Task-batched parameters
  like :class:`cropmeta.models.timl.TIMLClassifier`, so the task-batched MAML step of
  :func:`cropmeta.train.maml.meta_gradient_step` runs it unchanged.
- **Task encoder**: :class:`cropmeta.models.timl.TaskEncoder` itself (the same 13-number task
  vector, MLP, GroupNorm, dropout and FiLM heads), with "T = 1 step of 128 bands" so that its input
  FiLM maps the embedding (γ = 1 + sigmoid, β = sigmoid) and its two hidden FiLMs the head's hidden
  layers. It is never adapted in the inner loop, and frozen during fine-tuning, as in TIML.
- **Meta-training**: :func:`cropmeta.train.maml.meta_train` itself with this head and the embedding
  bank (its ``model=`` and ``features=`` arguments): the same tasks without the target
  (:func:`cropmeta.train.common.meta_tasks`), the same training/validation split, sampler, seeds,
  task-information noise, task removal, best-by-validation-loss selection, resume checkpoints and
  configuration (``quick`` / ``paper`` presets) as TIML. ``task_info=False`` gives the plain MAML
  variant (the same head, no task encoder).
- **Adaptation**: the shared fine-tuning protocol (:func:`cropmeta.train.finetune.sgd_finetune`:
  SGD ``ft_lr``, ``ft_steps`` class-balanced batches of ``ft_batch`` + ``ft_batch``) on the
  target's embeddings, the FiLM parameters computed once from the target's task information.
  Zero-shot: the meta-trained head with the target's task information, no label used.

Checkpoints: ``model.safetensors`` (head, task encoder, embedding statistics) + ``model.json``
(format ``cropmeta-model``, kind ``presto-timl`` or ``presto-maml``, architecture, configuration,
the SHA-256 of the Presto weights the embeddings came from, task information) through
:func:`cropmeta.train.checkpoint.save_model` — never a pickle. A model refuses Presto weights with
another SHA-256 when it embeds raw samples itself.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError, ModelError
from cropmeta.learners.base import MODEL_FORMAT, MODEL_FORMAT_VERSION, Model
from cropmeta.models.presto_head import EMBED_DIM, PrestoFiLMHead
from cropmeta.models.timl import TaskEncoder
from cropmeta.schema import BANDS
from cropmeta.crops import TASK_INFO_DIM
from cropmeta.train.config import TrainConfig, config_from_dict, resolve_config
from cropmeta.train.presto_base import PrestoBacked, check_labels, schema_bands
from cropmeta.train.trained import seeded_init
from cropmeta.train.common import resolve_device, torch_dtype

__all__ = [
    "KINDS", "EMBED_DIM", "PrestoFiLMHead", "PrestoTIMLModel", "build_head", "meta_train_presto",
    "source_embeddings",
]

#: model kinds: with the task encoder (task-informed) and without (plain MAML over Presto embeddings)
KINDS = ("presto-timl", "presto-maml")
#: enters the source-embedding cache key: bump when the way samples become Presto inputs changes
INPUTS_VERSION = 1


def build_head(cfg: TrainConfig, task_info: bool = True, seed: int = 0) -> tuple[PrestoFiLMHead, TaskEncoder | None]:
    """A freshly initialised head (+ the TIML task encoder when ``task_info``), seeded."""
    with seeded_init(seed):
        head = PrestoFiLMHead(EMBED_DIM, cfg.hidden, cfg.lstm_dropout)
        enc = None
        if task_info:
            enc = TaskEncoder(t=1, n_bands=EMBED_DIM, hidden=cfg.hidden, dims=cfg.encoder_dims,
                              dropout=cfg.encoder_dropout, channels_per_group=cfg.encoder_channels_per_group)
    return head, enc


@dataclass
class PrestoTIMLModel(PrestoBacked, Model):
    """Meta-trained (and, after :meth:`adapt`, fine-tuned) head + task encoder over Presto embeddings.
    Embeddings in, probabilities out (:meth:`predict_embeddings`); raw samples through
    :meth:`predict_proba` (embedded with Presto weights of the recorded SHA-256: the workspace copy
    when none was attached). A model of the learner contract (:mod:`cropmeta.learners`)."""

    what = "a task-informed Presto head"

    head: PrestoFiLMHead
    encoder: TaskEncoder | None
    emb_mean: np.ndarray  # [128]
    emb_std: np.ndarray  # [128]
    config: TrainConfig
    presto_sha256: str
    task_info: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    embedder: object | None = field(default=None, repr=False, compare=False)  # not saved
    bands: tuple | None = None  # the samples' band schema (None: CropHarvest's 18)

    @property
    def kind(self) -> str:
        return KINDS[0] if self.encoder is not None else KINDS[1]

    @property
    def uses_task_info(self) -> bool:
        return self.encoder is not None

    @property
    def t(self) -> int:
        """Time steps of the meta-training samples (Presto itself takes 1 to 24)."""
        return int(self.info.get("t", 12))

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.head.parameters()).dtype

    def to(self, device=None, dtype=None) -> "PrestoTIMLModel":
        self.head.to(device=device, dtype=dtype)
        if self.encoder is not None:
            self.encoder.to(device=device, dtype=dtype)
        if self.embedder is not None and device is not None:  # Presto itself runs where the head does
            self.embedder.model.to(device=device)
        return self

    def copy(self) -> "PrestoTIMLModel":
        emb, self.embedder = self.embedder, None
        try:
            out = copy.deepcopy(self)
        finally:
            self.embedder = emb
        out.embedder = emb
        return out

    # ---- features ---------------------------------------------------------------------------------
    def standardise(self, emb: np.ndarray) -> torch.Tensor:
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != EMBED_DIM:
            raise InputError(f"Presto embeddings must be [N, {EMBED_DIM}], got {list(emb.shape)}")
        z = (emb - self.emb_mean) / self.emb_std
        return torch.as_tensor(z).to(device=self.device, dtype=self.dtype)

    def film(self, task_info=None) -> dict | None:
        """The head's FiLM parameters for one task (encoder in eval mode, no gradient); None without
        a task encoder."""
        if self.encoder is None:
            return None
        ti = self.task_info if task_info is None else task_info
        if ti is None:
            raise InputError(f"this {self.kind} model needs the target's task information ({TASK_INFO_DIM} numbers)")
        ti = torch.as_tensor(np.asarray(ti, dtype=np.float64).ravel(), dtype=self.dtype, device=self.device)
        if ti.numel() != TASK_INFO_DIM:
            raise InputError(f"task information has {ti.numel()} numbers, expected {TASK_INFO_DIM}")
        self.encoder.eval()
        with torch.no_grad():
            return self.encoder(ti.view(1, -1))

    # ---- the Model contract ----------------------------------------------------------------------
    def adapt_embeddings(self, emb: np.ndarray, y: np.ndarray, task_info=None, cfg: TrainConfig | None = None,
                         seed: int = 0) -> "PrestoTIMLModel":
        """A fine-tuned copy (the original untouched): every head weight trained with the shared
        protocol on the target's embeddings ``emb [N, 128]`` and 0/1 labels ``y`` — ``ft_steps`` at
        ``ft_lr``, or under ``finetune.budget = "auto"`` a number of steps chosen from the shots
        (:func:`cropmeta.train.finetune.choose_steps`); the task encoder's FiLM from ``task_info``
        (default: the model's) stays fixed."""
        return self._adapt_embeddings(emb, y, task_info, cfg, seed)[0]

    def _adapt_embeddings(self, emb, y, task_info, cfg, seed):
        from cropmeta.train.finetune import SGDRun, choose_steps

        cfg = cfg or self.config
        y = check_labels(y, len(emb), "fine-tuning")
        n_pos = int((y == 1).sum())
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))

        def copy_for_target():
            m = self.copy()
            m.to(device=resolve_device(cfg.device), dtype=torch_dtype(cfg.dtype))
            if task_info is not None:
                m.task_info = np.asarray(task_info, dtype=np.float32).ravel()
            return m

        steps, lr, budget, oof = int(cfg.ft_steps), cfg.ft_lr, {"rule": "fixed"}, None
        if cfg.ft_budget == "auto":  # the head's length chosen from the shots (cropmeta.train.finetune.auto_finetune)
            def fold_run(f, tr):
                m = copy_for_target()
                run = SGDRun(m.head, m.standardise(emb[tr]), y[tr], m.film(), None, cfg, seed * 1000 + f + 1,
                             lr=cfg.ft_auto_lr)
                return run, lambda val: m.predict_embeddings(emb[val])

            budget, oof = choose_steps(y, cfg, seed, fold_run)
            if budget["rule"] == "auto":
                steps, lr = int(budget["chosen_steps"]), cfg.ft_auto_lr
        m = copy_for_target()
        last = SGDRun(m.head, m.standardise(emb), y, m.film(), None, cfg, seed, lr=lr).run(steps).finish()
        m.info = {**m.info, "finetune": {"n_train": int(len(y)), "n_pos": n_pos, "steps": steps, "lr": float(lr),
                                         "seed": int(seed), "final_loss": last, "budget": budget}}
        return m, oof

    def adapt(self, x, y, *, task_info=None, cfg: TrainConfig | None = None, seed: int = 0, lat=None, lon=None,
              start_dates=None) -> "PrestoTIMLModel":
        """:meth:`adapt_embeddings` on raw canonical samples (embedded by :meth:`embed`: without
        ``lat``/``lon``, at the centre of the task's region)."""
        m = self if task_info is None else self.with_task(task_info)
        return m.adapt_embeddings(m.embed(x, lat, lon, start_dates), y, task_info, cfg, seed)

    def adapt_with_oof(self, x, y, folds, *, task_info=None, cfg: TrainConfig | None = None, seed: int = 0,
                       lat=None, lon=None, start_dates=None):
        """With the auto budget, its cross-validation's out-of-fold predictions (the same folds)."""
        cfg = cfg or self.config
        if cfg.ft_budget != "auto":
            return super().adapt_with_oof(x, y, folds, task_info=task_info, cfg=cfg, seed=seed, lat=lat, lon=lon,
                                          start_dates=start_dates)
        m = self if task_info is None else self.with_task(task_info)
        return m._adapt_embeddings(m.embed(x, lat, lon, start_dates), y, task_info, cfg, seed)

    def zero_shot(self, task_info=None) -> "PrestoTIMLModel":
        return self.with_task(self.task_info if task_info is None else task_info)

    def with_task(self, task_info) -> "PrestoTIMLModel":
        """Zero-shot: a copy that predicts the task of ``task_info`` as meta-trained (no label used)."""
        m = self.copy()
        m.task_info = None if task_info is None else np.asarray(task_info, dtype=np.float32).ravel()
        return m

    def predict_embeddings(self, emb: np.ndarray, batch_size: int | None = None,
                           temperature: float | None = None) -> np.ndarray:
        batch_size = int(batch_size or 8192)
        film = self.film()
        self.head.eval()
        out = np.empty(len(emb), dtype=np.float64)
        with torch.no_grad():
            for i in range(0, len(emb), batch_size):
                z = self.standardise(emb[i : i + batch_size])
                logits = self.head(z.unsqueeze(0), film=film)[0]
                if temperature is not None:
                    logits = logits / float(temperature)
                out[i : i + len(z)] = torch.sigmoid(logits).double().cpu().numpy()
        return out

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None, lat=None,
                      lon=None, start_dates=None) -> np.ndarray:
        return self.predict_embeddings(self.embed(x, lat, lon, start_dates), batch_size, temperature)

    # ---- (de)serialisation ----------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"head.{k}": v.detach().cpu().numpy() for k, v in self.head.state_dict().items()}
        if self.encoder is not None:
            arrays.update({f"encoder.{k}": v.detach().cpu().numpy() for k, v in self.encoder.state_dict().items()})
        arrays["embedding.mean"] = np.ascontiguousarray(self.emb_mean, dtype=np.float32)
        arrays["embedding.std"] = np.ascontiguousarray(self.emb_std, dtype=np.float32)
        meta = {
            "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "kind": self.kind,
            "bands": list(self.bands or BANDS), "backbone": {"name": "presto", "weights_sha256": self.presto_sha256},
            "arch": {"head": self.head.arch(), "encoder": self.encoder.arch() if self.encoder is not None else None},
            "task_info": [float(v) for v in self.task_info] if self.task_info is not None else None,
            "config": self.config.to_dict(), "info": self.info,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "PrestoTIMLModel":
        """Rebuild from :meth:`to_state`; refuses another format, kind or weight shapes."""
        from cropmeta.train.trained import load_module_state

        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise ModelError(f"{source}: not a cropmeta model")
        if meta.get("kind") not in KINDS:
            raise ModelError(f"{source}: a {meta.get('kind')!r} model, not a task-informed Presto head")
        if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise ModelError(f"{source}: model format version {meta.get('format_version')} is newer than this "
                             "cropmeta reads; upgrade cropmeta")
        try:
            ha, ea = dict(meta["arch"]["head"]), meta["arch"].get("encoder")
            head = PrestoFiLMHead(int(ha["dim"]), int(ha["hidden"]), float(ha["dropout"]))
            enc = None
            if ea is not None:
                enc = TaskEncoder(t=int(ea["t"]), n_bands=int(ea["n_bands"]), hidden=int(ea["hidden"]),
                                  dims=ea["dims"], dropout=float(ea["dropout"]),
                                  channels_per_group=int(ea["channels_per_group"]), info_dim=int(ea["info_dim"]))
            sha = str(meta["backbone"]["weights_sha256"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{source}: model architecture record is incomplete ({e})") from e
        if (meta["kind"] == KINDS[0]) != (enc is not None):
            raise ModelError(f"{source}: kind {meta['kind']!r} does not match its task-encoder record")
        load_module_state(head, "head.", arrays, source)
        if enc is not None:
            load_module_state(enc, "encoder.", arrays, source)
        known = {f"head.{k}" for k in head.state_dict()} | {"embedding.mean", "embedding.std"}
        known |= {f"encoder.{k}" for k in enc.state_dict()} if enc is not None else set()
        if set(arrays) != known:
            raise ModelError(f"{source}: weights differ from the architecture "
                             f"({sorted(set(arrays) ^ known)[:5]})")
        mean = np.asarray(arrays["embedding.mean"], dtype=np.float32)
        std = np.asarray(arrays["embedding.std"], dtype=np.float32)
        if mean.shape != (head.dim,) or std.shape != (head.dim,) or not (std > 0).all():
            raise ModelError(f"{source}: embedding statistics have the wrong shape or a zero spread")
        fields_ = set(TrainConfig.__dataclass_fields__)
        cfg = config_from_dict({k: v for k, v in (meta.get("config") or {}).items() if k in fields_},
                               f"{source} (config)")
        ti = np.asarray(meta["task_info"], dtype=np.float32) if meta.get("task_info") is not None else None
        head.eval()
        if enc is not None:
            enc.eval()
        bands = tuple(meta.get("bands") or BANDS)
        return cls(head, enc, mean, std, cfg, sha, ti, dict(meta.get("info") or {}),
                   bands=None if bands == tuple(BANDS) else bands)


# --------------------------------------------------------------------------------------------------
# Meta-training
# --------------------------------------------------------------------------------------------------
def source_embeddings(samples, embedder, rows: np.ndarray) -> np.ndarray:
    """Presto embeddings ``[len(rows), 128]`` of the samples ``rows`` of ``samples`` (each with its own
    location and start date), cached under the key (dataset content hash, rows) in the embedder's
    per-weights-SHA directory."""
    from cropmeta.models.presto_layout import presto_inputs

    rows = np.asarray(rows, dtype=np.int64)
    h = hashlib.sha256(f"{INPUTS_VERSION}:{samples.content_hash()}:".encode())
    h.update(rows.tobytes())
    meta = samples.meta.iloc[rows]
    bands = schema_bands(getattr(samples, "schema", None))
    inputs = presto_inputs(samples.x[rows], meta["lat"].to_numpy(), meta["lon"].to_numpy(),
                           meta["start_date"].tolist(), bands=list(bands) if bands else None)
    return embedder.embed(inputs, key=f"source-{h.hexdigest()[:24]}")


def meta_train_presto(samples, target=None, cfg: TrainConfig | None = None, seed: int = 0, *, embedder=None,
                      task_info: bool = True, workdir: str | Path | None = None, resume: bool = False,
                      progress=False, callback=None) -> PrestoTIMLModel:
    """Meta-train the head (and task encoder, ``task_info=True``) on Presto embeddings of every task
    of ``samples`` except ``target``, through :func:`cropmeta.train.maml.meta_train` (same tasks,
    splits, removal and validation as TIML). ``embedder``: a
    :class:`~cropmeta.models.presto_embed.PrestoEmbedder` (default: the workspace weights)."""
    from cropmeta.train.maml import meta_train

    cfg = cfg or resolve_config("quick")
    if embedder is None:
        from cropmeta.models.presto_embed import PrestoEmbedder

        embedder = PrestoEmbedder(device=str(resolve_device(cfg.device)))
    stats: dict = {}

    def features(rows: np.ndarray) -> np.ndarray:
        emb = source_embeddings(samples, embedder, rows)
        mean = emb.mean(0)
        std = emb.std(0)
        std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        stats.update(mean=mean.astype(np.float32), std=std)
        return (emb - stats["mean"]) / stats["std"]

    head, enc = build_head(cfg, task_info, seed)
    learner = "timl" if task_info else "maml"
    trained = meta_train(samples, target, cfg, learner=learner, seed=seed, workdir=workdir, resume=resume,
                         progress=progress, callback=callback, model=(head, enc), features=features)
    info = {**trained.info, "learner": KINDS[0] if task_info else KINDS[1], "t": int(samples.t)}
    model = PrestoTIMLModel(trained.classifier, trained.encoder, stats["mean"], stats["std"], cfg,
                            embedder.weights_sha, None, info, bands=schema_bands(samples.schema))
    model.embedder = embedder
    return model
