"""``cropmeta train``'s library function (the app layer's :func:`cropmeta.app.train.train` loads the
samples — ingesting if needed — and calls it): meta-train on every other task → fine-tune on the target →
evaluate on its held-out test set → write the run directory.

Run directory::

    config.json        the resolved configuration (+ target, seed, shots, source)
    log.jsonl          one line per outer step: meta-train loss/AUC, lr, active tasks, meta-val loss/AUC
    checkpoint/        resume state (safetensors + JSON), for --resume
    meta/              meta-trained weights before fine-tuning (model.safetensors + model.json)
    model.safetensors  the fine-tuned model (+ model.json: bands, T, normalisation, task info, …)
    metrics.json       held-out metrics (auc_roc, f1, precision, recall, accuracy, iou, kappa, brier, ece)

Runnable under torchrun through the app layer: ``torchrun --nproc_per_node=2 -m cropmeta.app.train --region kenya``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta.errors import InputError
from cropmeta._fs import atomic_write_text, json_text
from cropmeta.logs import log, log_file
from cropmeta.io.store import SampleSet, workspace_home
from cropmeta.metrics import binary_metrics, small_test_set
from cropmeta.regions import slugify
from cropmeta.tasks import Task, check_shots, resolve_target, target_data
from cropmeta.train import checkpoint as ck
from cropmeta.learners.base import Model, get_learner, kinds, learner_class, sample_context
from cropmeta.train.common import META_DIR
from cropmeta.train.config import IN_CONTEXT, in_context_keys, resolve_config
from cropmeta.train.config_base import RESUME_MAY_CHANGE, config_changes
from cropmeta.train.distributed import SINGLE, backend_for, from_env, spawn
from cropmeta.train.common import resolve_device

#: the log file of every run directory
LOG_FILE = "train.log"

__all__ = ["train", "default_run_dir", "METRIC_ORDER"]

METRIC_ORDER = ["auc_roc", "f1", "precision", "recall", "accuracy", "iou", "kappa", "brier", "ece"]



def default_run_dir(task: Task, preset: str, seed: int, shots: int | None = None, home=None) -> Path:
    name = f"{slugify(task.region)}-{task.crop or 'crop'}-{preset}-s{seed}" + (f"-k{shots}" if shots else "")
    return (Path(home) if home is not None else workspace_home()) / "runs" / name


def _overrides(first_order, device, extra) -> dict:
    over = dict(extra or {})
    if first_order is not None:
        over["first_order"] = bool(first_order)
    if device is not None:
        over["device"] = device
    return over


def train(region: str, crop: str | None = None, source=None, preset: str | None = "quick", seed: int = 0,
          out: str | Path | None = None, resume: bool = False, *, config: str | Path | None = None,
          first_order: bool | None = None, device: str | None = None, nprocs: int = 1, shots: int | None = None,
          learner: str | None = None, overrides: dict | None = None, progress=False,
          samples: SampleSet | None = None, pretrain_source: str | None = None, sim_seed: int = 1,
          ic_options: dict | None = None, home: str | Path | None = None, loader=None, load_sim=None) -> dict:
    """The library function behind ``cropmeta train``. Returns ``{"run_dir", "target", "metrics",
    "counts", "meta", "timings", "table"}``, where ``table`` is ``[(metric, value), …]`` in display order.

    ``samples``: the data; else ``loader(progress)`` gives ``(samples, data used)`` after the options
    are checked (:func:`cropmeta.app.train.train` passes one over the workspace's datasets: its
    ``datasets``/``labels``/``label_options``); ``source``: recorded; ``home``: the workspace.
    The run's ``config.json`` records the datasets used (``data``: name, simulated/real, T, size).
    ``load_sim``: the simulated world's loader of ``pretrain_source="sim"``
    (:func:`cropmeta.app.samples.load_sim_samples`).
    ``overrides``: any :class:`~cropmeta.train.config.TrainConfig` field (flags win over ``config``).
    Under torchrun (``WORLD_SIZE`` > 1) every rank meta-trains its share; rank 0 fine-tunes, writes
    and returns the result (other ranks return ``{}``).

    ``learner``: any registered kind (:func:`cropmeta.learners.kinds`: timl, maml, concat, pretrained,
    scratch, in-context, …; default ``cfg.learner``): it fits on the non-target tasks and its model
    adapts to the target's training labels (fine-tuning, or reading them as a support set). A learner's
    own options section (the in-context learner's ``[in_context]``) comes from the config file,
    ``ic_options`` or the ``in_context`` / ``ic_*`` keys of ``overrides``. ``pretrain_source="sim"``: the learner is first trained on the simulated world
    ``sim_seed`` and then continues on this data (:mod:`cropmeta.train.sim_then_real`; phase logs
    and resume state in ``sim/`` and ``real/`` of the run directory). Both run on one process."""
    t_start = time.perf_counter()
    shots = check_shots(shots)  # before any data is loaded
    over = _overrides(first_order, device, overrides)
    if ic_options:
        over[IN_CONTEXT] = {**(over.get(IN_CONTEXT) or {}), **ic_options}
    if learner is not None:
        over["learner"] = learner
    cfg = resolve_config(preset, config, over)  # bad options (in-context ones too) fail before any work
    if pretrain_source in ("none", ""):
        pretrain_source = None
    if pretrain_source not in (None, "sim"):
        raise InputError(f"--pretrain-source {pretrain_source!r}: expected 'sim' (or none)")
    fitter = get_learner(cfg.learner, cfg)
    given_ic = in_context_keys(over)
    if given_ic and fitter.options_section != IN_CONTEXT:
        raise InputError(f"in-context options {given_ic} given for learner {cfg.learner!r}")
    resolve_device(cfg.device)  # fail early: CUDA asked for but absent
    if nprocs is None:
        nprocs = 1
    nprocs = int(nprocs)
    if nprocs < 1:
        raise InputError(f"--nprocs must be >= 1, got {nprocs}")
    dist = from_env(resolve_device(cfg.device)) if nprocs == 1 else SINGLE
    if (not fitter.distributed or pretrain_source) and (nprocs > 1 or dist.active):
        multi = [k for k in kinds() if learner_class(k).distributed]
        raise InputError(f"--nprocs / torchrun: the {cfg.learner} learner and --pretrain-source sim train on one "
                         f"process (distributed: {', '.join(multi)})")
    data_used: list[dict] = [{"dataset": "in-memory samples", "pixels": "given", "t": samples.t,
                              "samples": len(samples)}] if samples is not None else []
    if samples is None:
        if loader is None:
            raise InputError("train: give samples= (cropmeta.app.train.train loads the workspace's)")
        samples, data_used = loader(bool(progress) and dist.is_main)
    task = resolve_target(samples, region, crop)
    # check the target's data before spending time on meta-training
    td = target_data(samples, task, shots=shots, seed=seed)
    run_dir = Path(out) if out is not None else default_run_dir(task, cfg.preset, seed, shots, home)
    run_config = {**cfg.to_dict(), "target": task.to_dict(), "seed": int(seed), "shots": shots,
                  "source": None if source is None else str(source), "nprocs": nprocs, "data": data_used}
    if pretrain_source:
        run_config.update({"pretrain_source": pretrain_source, "sim_seed": int(sim_seed)})
    if fitter.options_section:
        run_config[fitter.options_section] = fitter.section_options(cfg).to_dict()
    if dist.is_main:
        _prepare_run_dir(run_dir, run_config, resume)
    dist.barrier()
    with log_file(run_dir / LOG_FILE) if dist.is_main else contextlib.nullcontext():
        log.info("run %s: target %s, learner %s, preset %s, seed %d, shots %s%s", run_dir, task.name, cfg.learner,
                 cfg.preset, seed, shots, " (resumed)" if resume else "")
        for d in data_used:
            log.info("data: dataset %s (%s pixels, T=%s, %s samples, source %s)", d.get("dataset"), d.get("pixels"),
                     d.get("t"), d.get("samples"), d.get("source"))
        result = _train_in(run_dir, samples, task, td, cfg, seed, shots, resume, progress, dist, nprocs, fitter,
                           pretrain_source, sim_seed, t_start, data_used, load_sim)
        if result:
            log.info("held-out metrics: %s", ", ".join(f"{k} {v:.4f}" for k, v in result["table"]))
        return result


def _train_in(run_dir, samples, task, td, cfg, seed, shots, resume, progress, dist, nprocs, fitter,
              pretrain_source, sim_seed, t_start, data_used, load_sim=None) -> dict:

    t0 = time.perf_counter()
    if pretrain_source == "sim":
        from cropmeta.train.sim_then_real import sim_then_real

        meta_model = sim_then_real(samples, task, cfg, cfg.learner, seed, sim_seed=sim_seed, workdir=run_dir,
                                   resume=resume, progress=progress, load_sim=load_sim)
    elif nprocs > 1:
        backend = backend_for(resolve_device(cfg.device))
        spawn(fitter.fit_worker(), nprocs, args=(samples, task, cfg, seed, str(run_dir), resume, bool(progress)),
              backend=backend, threads=cfg.threads or 1)
        meta_model, _ = ck.load_model(run_dir / META_DIR)
    else:
        meta_model = fitter.fit(samples, task, seed, workdir=run_dir, resume=resume,
                                progress=progress if dist.is_main else False, dist=dist)
    if nprocs == 1 and dist.is_main:
        ck.save_model(run_dir / META_DIR, meta_model)
    t_meta = time.perf_counter() - t0
    if not dist.is_main:
        return {}

    t0 = time.perf_counter()
    # adaptation: fine-tuning, or reading the training labels as a support set (no gradient step)
    # models that read each sample's place and time (Presto) get the samples' own
    model = meta_model.adapt(td.x_train, td.y_train, task_info=task.info, cfg=cfg, seed=seed,
                             **sample_context(meta_model, samples.meta, td.train_index))
    prob = model.predict_proba(td.x_test, **sample_context(model, samples.meta, td.test_index))
    metrics = binary_metrics(td.y_test, prob)
    few = small_test_set(td.y_test)
    if few:
        log.warning("%s: %s", task.name, few)
    t_ft = time.perf_counter() - t0
    model.info.update({"task": task.to_dict(), "shots": shots})
    extra = {"task": task.to_dict(), "seed": int(seed), "data_hash": samples.content_hash(),
             "date_range": _date_range(samples, task), "config": cfg.to_dict()}
    record = ck.save_model(run_dir, model, extra)
    timings = {"meta_train_s": round(t_meta, 2), "finetune_eval_s": round(t_ft, 2),
               "total_s": round(time.perf_counter() - t_start, 2)}
    out_metrics = {**metrics, "target": task.name, "task_id": task.id, "seed": int(seed), "shots": shots,
                   "counts": td.counts, "learner": meta_model.kind, "timings": timings,
                   # the labelled samples fine-tuned on: a compare cell with this seed and shot count fits on these
                   "finetune_ids": samples.meta["sample_id"].astype(str).to_numpy()[td.train_index].tolist(),
                   "meta": {k: meta_model.info.get(k) for k in ("iterations", "best_iteration", "best_val_loss",
                                                                "removed_tasks", "world_size")},
                   "n_meta_train_tasks": len(meta_model.info.get("train_tasks", [])),
                   "n_meta_val_tasks": len(meta_model.info.get("val_tasks", [])),
                   "model_sha256": record["weights_sha256"]}
    if "pretrain" in meta_model.info:
        out_metrics["pretrain"] = meta_model.info["pretrain"]
    atomic_write_text(run_dir / "metrics.json", json_text(out_metrics, default=_nan_safe))
    save_training_points(run_dir, samples)
    return {"run_dir": str(run_dir), "target": task.to_dict(), "metrics": metrics, "counts": td.counts, "data": data_used,
            "meta": out_metrics["meta"], "timings": timings,
            "table": [(k, metrics[k]) for k in METRIC_ORDER if k in metrics]}


def save_training_points(run_dir: Path, samples: SampleSet) -> Path:
    """``training_points.parquet``: id and location of every training-split sample the run could
    have seen (meta-training and fine-tuning); map accuracy leaves these points out."""
    from cropmeta._fs import atomic_path

    m = samples.meta
    tr = m["split"].astype(str).to_numpy() == "train"
    frame = pd.DataFrame({"sample_id": m.loc[tr, "sample_id"].astype(str).to_numpy(),
                          "lat": m.loc[tr, "lat"].to_numpy(float), "lon": m.loc[tr, "lon"].to_numpy(float)})
    with atomic_path(run_dir / "training_points.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return run_dir / "training_points.parquet"


def _nan_safe(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _date_range(samples: SampleSet, task: Task) -> list | None:
    from cropmeta.regions import slugify as _s

    m = samples.meta
    sel = m["region"].astype(str).map(_s) == _s(task.region)
    dates = m.loc[sel, "start_date"].dropna().astype(str)
    if dates.empty:
        return None
    return [dates.min(), dates.max()]


def _prepare_run_dir(run_dir: Path, run_config: dict, resume: bool) -> None:
    cfg_path = run_dir / "config.json"
    if resume:
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            diff = config_changes(old, run_config, RESUME_MAY_CHANGE | {"data"})
            if diff:
                raise InputError(f"{run_dir}: --resume with different settings ({', '.join(diff)}); "
                                 "use the original ones or another --out")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: run directory exists and is not empty; pass --resume to continue it "
                         "or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, json_text(run_config, default=_nan_safe))


def load_meta_model(run_dir: str | Path) -> Model:
    """The meta-trained (not fine-tuned) weights of a run directory."""
    return ck.load_model(Path(run_dir) / META_DIR)[0]

