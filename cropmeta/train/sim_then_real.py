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

from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet
from cropmeta.tasks import Task
from cropmeta.train.common import fit_normalizer
from cropmeta.train.config import TrainConfig

__all__ = ["PRETRAIN_SOURCES", "sim_learners", "sim_then_real", "DEFAULT_SIM_SEED"]

PRETRAIN_SOURCES = ("none", "sim")
DEFAULT_SIM_SEED = 1


def sim_learners() -> tuple[str, ...]:
    """The registered learners that learn before the target (from scratch does not: nothing to pretrain)."""
    from cropmeta.learners.base import kinds, learner_class

    return tuple(k for k in kinds() if learner_class(k).needs_source)


def _train_once(learner: str, samples: SampleSet, target: Task | None, cfg: TrainConfig, seed: int, normalizer,
                workdir: Path | None, resume: bool, progress, init, ic_options: dict | None):
    from cropmeta.learners.base import get_learner

    return get_learner(learner, cfg, ic_options).fit(samples, target, seed, workdir=workdir, resume=resume,
                                                     progress=progress, normalizer=normalizer, init=init)


def sim_then_real(real: SampleSet, target: Task | None, cfg: TrainConfig, learner: str = "timl", seed: int = 0, *,
                  sim: SampleSet | None = None, sim_seed: int = DEFAULT_SIM_SEED, sim_regions: list[str] | None = None,
                  sim_overrides: dict | None = None, workdir: str | Path | None = None, resume: bool = False,
                  progress=False, ic_options: dict | None = None, load_sim=None):
    """Phase 1 on the simulated world, phase 2 on ``real`` from phase 1's weights (module docstring).

    ``learner``: timl, maml, concat, pretrained or in-context. ``sim``: simulated samples to use
    (default: ``load_sim(sim_seed, regions=sim_regions, progress=…)``, the app layer's
    :func:`cropmeta.app.samples.load_sim_samples`). ``workdir``: phase
    directories ``sim/`` and ``real/`` (log.jsonl + resume state) go there; ``resume=True``
    continues an interrupted run. Returns the learner's model object (``TrainedModel`` or
    ``InContextModel``) with ``info["pretrain"]`` describing phase 1."""
    if learner not in sim_learners():
        raise InputError(f"--pretrain-source sim: unknown learner {learner!r}; one of {', '.join(sim_learners())}")
    if sim is None:
        if load_sim is None:
            raise InputError("sim_then_real: give sim= or load_sim= (cropmeta.app.samples.load_sim_samples)")
        sim = load_sim(sim_seed, regions=sim_regions, progress=bool(progress))
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
