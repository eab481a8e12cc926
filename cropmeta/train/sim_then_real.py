"""``--pretrain-source sim``: (meta-)train on the simulated world first, then continue on the real
source — generated data as pretraining, measured against the same learner trained on real data only.

Two phases, the same learner and configuration in both (phase 1's can be changed with
``sim_overrides``, e.g. fewer iterations):

1. **sim**: the learner's usual training (TIML / MAML / concat meta-training, plain pretraining, or
   the in-context learner's meta-training) on the simulated world of ``sim_seed`` — every task of
   its training split except the target task (same region and crop as the real target), so the
   generator's own version of the target is never trained on either;
2. **real**: the same training on the real source (a CropHarvest archive, ingested Earth-Engine
   exports, …), starting from phase 1's weights instead of a random initialisation. Optimiser state,
   learning-rate schedule and task bookkeeping start afresh.

Both phases normalise with the statistics of the *real* source's training samples (the model is
used on real data; the simulator writes the same physical units), which the final model carries.

The simulated samples are ingested into their own workspace, ``$CROPMETA_HOME/pretrain-sim/``, so
they never mix with the real datasets in ``$CROPMETA_HOME/datasets/``. The default ``sim_seed`` is
1, not the default world's 0: when the "real" source is itself the seed-0 simulated world
(``cropmeta compare --benchmark sim``), phase 1 then sees another draw of the generator, not the
evaluation data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet, workspace_home
from cropmeta.regions import slugify
from cropmeta.tasks import Task
from cropmeta.train.common import fit_normalizer
from cropmeta.train.config import TrainConfig

__all__ = ["PRETRAIN_SOURCES", "SIM_LEARNERS", "load_sim_samples", "sim_then_real", "DEFAULT_SIM_SEED"]

PRETRAIN_SOURCES = ("none", "sim")
SIM_LEARNERS = ("timl", "maml", "concat", "pretrained", "in-context")
DEFAULT_SIM_SEED = 1


def load_sim_samples(seed: int = DEFAULT_SIM_SEED, regions: list[str] | None = None, home: str | Path | None = None,
                     progress: bool = False) -> SampleSet:
    """The training samples of the simulated world ``seed``, ingested into a workspace of their own
    (``<home>/pretrain-sim/…``, home = ``$CROPMETA_HOME``). ``regions``: a smaller world with only
    these simulated regions (tests). Test-split samples are dropped."""
    from cropmeta.ingest import ingest, list_datasets, load_datasets
    from cropmeta.sim import ensure_world, generate_world, load_world

    base = Path(home) if home is not None else workspace_home()
    if regions:
        key = hashlib.sha256(",".join(sorted(slugify(r) for r in regions)).encode()).hexdigest()[:10]
        world = base / "pretrain-sim" / "worlds" / f"seed-{int(seed)}-{key}"
        try:
            load_world(world)
        except InputError:
            generate_world(world, seed=int(seed), scene_size=32, overwrite=world.exists(), regions=list(regions))
        name = world.name
    else:
        world = Path(ensure_world(seed=int(seed), home=base))
        name = f"seed-{int(seed)}"
    store = base / "pretrain-sim" / "stores" / name
    if not list_datasets(store):
        ingest(source=world / "tiles", labels=world / "labels.parquet", home=store, progress=progress)
    samples = load_datasets(store)
    keep = (samples.meta["split"].astype(str) == "train").to_numpy()
    return samples.subset(keep)


def _call_with_init(fn, init, *args, **kwargs):
    """``fn(*args, **kwargs)``, starting from ``init``'s weights when given (meta_train/pretrain take
    ``init=``)."""
    return fn(*args, **kwargs) if init is None else fn(*args, init=init, **kwargs)


def _train_once(learner: str, samples: SampleSet, target: Task | None, cfg: TrainConfig, seed: int, normalizer,
                workdir: Path | None, resume: bool, progress, init, ic_options: dict | None):
    if learner == "in-context":
        from cropmeta.train.incontext import meta_train_incontext

        return meta_train_incontext(samples, target, cfg, seed, options=ic_options, workdir=workdir, resume=resume,
                                    progress=progress, normalizer=normalizer, init=init)
    if learner == "pretrained":
        from cropmeta.train.pretrain import pretrain

        return _call_with_init(pretrain, init, samples, target, cfg, seed=seed, progress=progress, normalizer=normalizer)
    from cropmeta.train.maml import meta_train

    return _call_with_init(meta_train, init, samples, target, cfg, learner=learner, seed=seed, workdir=workdir,
                           resume=resume, progress=progress, normalizer=normalizer)


def sim_then_real(real: SampleSet, target: Task | None, cfg: TrainConfig, learner: str = "timl", seed: int = 0, *,
                  sim: SampleSet | None = None, sim_seed: int = DEFAULT_SIM_SEED, sim_regions: list[str] | None = None,
                  sim_overrides: dict | None = None, workdir: str | Path | None = None, resume: bool = False,
                  progress=False, ic_options: dict | None = None):
    """Phase 1 on the simulated world, phase 2 on ``real`` from phase 1's weights (module docstring).

    ``learner``: timl, maml, concat, pretrained or in-context. ``sim``: simulated samples to use
    (default: :func:`load_sim_samples` of ``sim_seed`` / ``sim_regions``). ``workdir``: phase
    directories ``sim/`` and ``real/`` (log.jsonl + resume state) go there; ``resume=True``
    continues an interrupted run. Returns the learner's model object (``TrainedModel`` or
    ``InContextModel``) with ``info["pretrain"]`` describing phase 1."""
    if learner not in SIM_LEARNERS:
        raise InputError(f"--pretrain-source sim: unknown learner {learner!r}; one of {', '.join(SIM_LEARNERS)}")
    if sim is None:
        sim = load_sim_samples(sim_seed, regions=sim_regions, progress=bool(progress))
    sim = sim.subset((sim.meta["split"].astype(str) == "train").to_numpy())
    if len(sim) == 0:
        raise InputError("the simulated world has no training samples to pretrain on")
    real.schema.check_compatible(sim.schema, "the simulated world (--pretrain-source sim)")
    if sim.t != real.t:
        raise InputError(f"the simulated world has T={sim.t} time steps, the real source T={real.t}")
    normalizer = fit_normalizer(real)
    cfg_sim = cfg.replace(**sim_overrides) if sim_overrides else cfg
    wd = Path(workdir) if workdir is not None else None
    first = _train_once(learner, sim, target, cfg_sim, seed, normalizer, wd / "sim" if wd else None, resume,
                        progress, None, ic_options)
    model = _train_once(learner, real, target, cfg, seed, normalizer, wd / "real" if wd else None, resume,
                        progress, first, ic_options)
    model.info = {**model.info, "pretrain": {
        "source": "sim", "sim_seed": int(sim_seed), "sim_regions": sim_regions, "sim_samples": int(len(sim)),
        "sim_data_hash": sim.content_hash(), "sim_tasks": first.info.get("train_tasks"),
        "sim_iterations": first.info.get("iterations", first.info.get("steps")),
        "sim_best_val_loss": first.info.get("best_val_loss"), "sim_overrides": dict(sim_overrides or {})}}
    return model
