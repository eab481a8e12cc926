"""Where samples come from (the app layer): the workspace's datasets, a source ingested first, the
simulated world of ``--pretrain-source sim``. The library (:func:`cropmeta.train.run.train`,
:func:`cropmeta.train.sim_then_real.sim_then_real`, :func:`cropmeta.evaluate.compare.compare`)
receives these samples or one of these functions as its loader; it never ingests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet, workspace_home
from cropmeta.regions import slugify
from cropmeta.train.sim_then_real import DEFAULT_SIM_SEED

__all__ = ["load_samples", "select_samples", "load_sim_samples"]


def load_samples(source=None, seed: int = 0, progress: bool = False, **kw) -> SampleSet:
    """The samples :func:`select_samples` picks (without the description)."""
    return select_samples(source, seed, progress, **kw)[0]


def select_samples(source=None, seed: int = 0, progress: bool = False, *, datasets: list[str] | None = None,
                   labels=None, label_options: dict | None = None,
                   home: str | Path | None = None) -> tuple[SampleSet, list[dict]]:
    """The data a run trains on and what it is: ``(samples, [{dataset, pixels, t, samples, source}])``.

    ``source`` given: it is ingested first (``labels``/``label_options`` as ``cropmeta ingest``) and only
    the datasets that ingest wrote are used; else the stored datasets (the simulated world of
    ``seed`` is ingested when nothing is stored). ``datasets``: use only these stored datasets."""
    from cropmeta.ingest import ingest
    from cropmeta.datasets import describe_datasets, list_datasets, load_datasets

    names = list(datasets) if datasets else None
    if source is not None or labels is not None or not list_datasets(home):
        res = ingest(region=None, source=source, labels=labels, seed=seed, progress=progress, home=home,
                     label_options=label_options)
        if names is None and source is not None:
            names = sorted(res.datasets)
    samples = load_datasets(home, names)
    return samples, describe_datasets(home, names)


def load_sim_samples(seed: int = DEFAULT_SIM_SEED, regions: list[str] | None = None, home: str | Path | None = None,
                     progress: bool = False) -> SampleSet:
    """The training samples of the simulated world ``seed``, ingested into a workspace of their own
    (``<home>/pretrain-sim/…``, home = ``$CROPMETA_HOME``). ``regions``: a smaller world with only
    these simulated regions (tests). Test-split samples are dropped."""
    from cropmeta.ingest import ingest
    from cropmeta.datasets import list_datasets, load_datasets
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
